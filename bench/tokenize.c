/* bench/tokenize: byte-level BPE throughput. Trains a vocabulary (8192 ids,
 * the base model's size) on a text, then times encode and decode of all of
 * it, single-threaded. The text is the file named by the first argument, or
 * 4 MB of seeded pseudo-English (Zipf-distributed words, punctuation,
 * digits, some accents and CJK) when none is given. Prints figures only. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shared/bpe_train.h"
#include "shared/fsutil.h"
#include "shared/tokenizer.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rnd(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint8_t *synthetic(size_t want, size_t *len)
{
    enum { NW = 5000 };
    static char words[NW][16];
    uint64_t s = 1;
    for (int i = 0; i < NW; i++) {
        int n = 1 + (int)(rnd(&s) % 9);
        for (int k = 0; k < n; k++)
            words[i][k] = (char)('a' + rnd(&s) % 26);
        words[i][n] = 0;
    }
    static const char *const extra[] = {", ", ". ", ".\n", "\n\n", " 1984", " caf\xc3\xa9",
                                        " \xe6\x97\xa5\xe6\x9c\xac", "'s", " (", ") ", "  "};
    uint8_t *t = malloc(want + 64);
    size_t n = 0;
    while (n < want) {
        if (rnd(&s) % 8 == 0) {
            const char *e = extra[rnd(&s) % (sizeof extra / sizeof extra[0])];
            memcpy(t + n, e, strlen(e));
            n += strlen(e);
            continue;
        }
        /* Zipf-like: rank = NW^u for uniform u. */
        double u = (double)(rnd(&s) >> 11) / 9007199254740992.0;
        int r = (int)(exp(u * log((double)NW))) - 1;
        t[n++] = ' ';
        size_t l = strlen(words[r]);
        memcpy(t + n, words[r], l);
        n += l;
    }
    *len = n;
    return t;
}

int main(int argc, char **argv)
{
    sl_err err = {0};
    uint8_t *text = NULL;
    size_t n = 0;
    const char *what = "4 MB synthetic text";
    if (argc > 1) {
        if (sl_fs_read_all(argv[1], (size_t)1 << 32, &text, &n, &err)) {
            fprintf(stderr, "bench/tokenize: %s\n", err.msg);
            return 1;
        }
        what = argv[1];
    } else {
        text = synthetic(4u << 20, &n);
    }
    char dir[] = "/tmp/sealora-bench-tok-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    double t0 = now();
    sl_bpe_trainer *tr = NULL;
    sl_tokenizer *tok = NULL;
    if (sl_bpe_train_create(&tr, &err) || sl_bpe_train_feed(tr, text, n, &err) ||
        sl_bpe_train_run(tr, 8192, 2, &err) || sl_bpe_train_write(tr, dir, &err) ||
        sl_tokenizer_load(dir, &tok, &err)) {
        fprintf(stderr, "bench/tokenize: %s\n", err.msg);
        return 1;
    }
    double t1 = now();
    printf("text: %s, %.2f MB\n", what, (double)n / 1e6);
    printf("train-tokenizer (8192 ids, %zu distinct pieces): %.2f s\n", sl_bpe_train_pieces(tr),
           t1 - t0);
    sl_ids ids;
    sl_ids_init(&ids, 0);
    double best = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        ids.n = 0;
        double a = now();
        if (sl_tokenizer_encode(tok, text, n, 0, &ids, &err)) {
            fprintf(stderr, "bench/tokenize: %s\n", err.msg);
            return 1;
        }
        double b = now();
        best = b - a < best ? b - a : best;
    }
    printf("encode: %.1f MB/s (%zu tokens, %.2f bytes/token, best of 3, 1 thread)\n",
           (double)n / 1e6 / best, ids.n, (double)n / (double)ids.n);
    uint8_t *out = malloc(n);
    size_t len = 0;
    double a = now();
    if (sl_tokenizer_decode(tok, ids.v, ids.n, out, n, &len, &err) || len != n ||
        memcmp(out, text, n) != 0) {
        fprintf(stderr, "bench/tokenize: decode did not give the text back\n");
        return 1;
    }
    double b = now();
    printf("decode: %.0f MB/s\n", (double)n / 1e6 / (b - a));
    char cmd[100];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench/tokenize: could not remove %s\n", dir);
    free(out);
    sl_ids_fini(&ids);
    sl_tokenizer_free(tok);
    sl_bpe_train_free(tr);
    free(text);
    return 0;
}
