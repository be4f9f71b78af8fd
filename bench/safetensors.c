/* bench/safetensors - throughput of the safetensors writer and reader.
 *
 * Writes a GPT-2-like set of [768 x 3072] tensors (16 Mi floats by
 * default, 64 MiB as F32) as F32, F16 and BF16 into $TMPDIR, then opens
 * each file (mmap + full header validation) and converts every tensor back
 * to float32. Prints MB/s of float32 data for writing (conversion, buffered
 * writes, fsync and rename included) and reading (first touch of the
 * mapping included), the time to open, plus the
 * in-memory f32 -> f16 / bf16 conversion rates. Medians of 3 runs; nothing
 * is asserted.
 *
 * Usage: bench/safetensors [--mfloats N]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shared/safetensors.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double median3(double a, double b, double c)
{
    if (a > b) { double t = a; a = b; b = t; }
    if (b > c) { double t = b; b = c; c = t; }
    return a > b ? a : b;
}

int main(int argc, char **argv)
{
    size_t mfloats = 16;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--mfloats") == 0 && i + 1 < argc)
            mfloats = (size_t)strtoul(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: %s [--mfloats N]\n", argv[0]);
            return 2;
        }
    }
    const size_t per = 768 * 3072;
    size_t ntensors = (mfloats << 20) / per;
    if (ntensors < 1)
        ntensors = 1;
    size_t total = ntensors * per;
    float *data = malloc(total * sizeof *data), *back = malloc(per * sizeof *back);
    uint16_t *half = malloc(total * sizeof *half);
    sl_st_entry *e = calloc(ntensors, sizeof *e);
    char (*names)[64] = calloc(ntensors, sizeof *names);
    if (!data || !back || !half || !e || !names) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    uint64_t s = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < total; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        data[i] = (float)((double)(s >> 40) / (double)(1 << 24) - 0.5) * 0.04f;
    }
    const char *tmp = getenv("TMPDIR");
    char path[512];
    snprintf(path, sizeof path, "%s/sealora-bench-%ld.safetensors", tmp && *tmp ? tmp : "/tmp",
             (long)getpid());
    double mb = (double)total * 4 / 1e6;
    printf("safetensors: %zu tensors [768 x 3072], %.1f MB of float32\n", ntensors, mb);

    const sl_st_dtype dts[3] = {SL_ST_F32, SL_ST_F16, SL_ST_BF16};
    for (int d = 0; d < 3; d++) {
        for (size_t i = 0; i < ntensors; i++) {
            snprintf(names[i], sizeof names[i], "transformer.h.%zu.mlp.c_fc.weight", i);
            e[i] = (sl_st_entry){.name = names[i], .dtype = dts[d], .ndim = 2,
                                 .shape = {768, 3072}, .data = data + i * per};
        }
        double tw[3], to[3], tr[3];
        for (int rep = 0; rep < 3; rep++) {
            sl_err err = {0};
            double t0 = now();
            if (sl_st_write(path, e, ntensors, NULL, 0, &err)) {
                fprintf(stderr, "%s\n", err.msg);
                return 1;
            }
            double t1 = now();
            sl_st_file *f = NULL;
            if (sl_st_open(&f, path, &err)) {
                fprintf(stderr, "%s\n", err.msg);
                return 1;
            }
            double t2 = now();
            for (size_t i = 0; i < sl_st_count(f); i++)
                if (sl_st_read_f32(sl_st_at(f, i), back, per, &err)) {
                    fprintf(stderr, "%s\n", err.msg);
                    return 1;
                }
            double t3 = now();
            sl_st_close(f);
            tw[rep] = t1 - t0;
            to[rep] = t2 - t1;
            tr[rep] = t3 - t2;
        }
        printf("  %-4s write %6.0f MB/s   open %6.3f ms   read_f32 %6.0f MB/s\n",
               sl_st_dtype_name(dts[d]), mb / median3(tw[0], tw[1], tw[2]),
               1e3 * median3(to[0], to[1], to[2]), mb / median3(tr[0], tr[1], tr[2]));
    }
    unlink(path);

    double tc[2][3];
    for (int rep = 0; rep < 3; rep++) {
        double t0 = now();
        for (size_t i = 0; i < total; i++)
            half[i] = sl_f32_to_f16(data[i]);
        double t1 = now();
        for (size_t i = 0; i < total; i++)
            half[i] = sl_f32_to_bf16(data[i]);
        double t2 = now();
        tc[0][rep] = t1 - t0;
        tc[1][rep] = t2 - t1;
    }
    volatile uint16_t sink = half[total / 2];
    (void)sink;
    printf("  convert in memory: f32->f16 %.0f MB/s, f32->bf16 %.0f MB/s\n",
           mb / median3(tc[0][0], tc[0][1], tc[0][2]), mb / median3(tc[1][0], tc[1][1], tc[1][2]));
    free(names);
    free(e);
    free(half);
    free(back);
    free(data);
    return 0;
}
