/* safetensors: byte-exact known answers from the reference implementation,
 * round trips for every writable dtype, the f16/bf16 conversions against a
 * naive nearest-value search, and every malformed header the reference
 * refuses (plus every truncation of a small file) refused with a message
 * naming the file, the tensor and the bad value. */
#include <check.h>
#include <dirent.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "shared/fsutil.h"
#include "shared/safetensors.h"
#include "tests/fixtures.h"

/* A file made of a header text and datalen bytes of data (value i & 0xff). */
static uint8_t *mk(const char *hdr, size_t datalen, size_t *len)
{
    size_t hl = strlen(hdr);
    *len = 8 + hl + datalen;
    uint8_t *b = malloc(*len ? *len : 1);
    ck_assert_ptr_nonnull(b);
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(b + 8, hdr, hl);
    for (size_t i = 0; i < datalen; i++)
        b[8 + hl + i] = (uint8_t)i;
    return b;
}

/* Expects hdr + datalen bytes to be refused with code, and the message to
 * contain each of the given fragments. */
static void refused(const char *hdr, size_t datalen, int code, const char *frag1,
                    const char *frag2)
{
    size_t len;
    uint8_t *b = mk(hdr, datalen, &len);
    sl_st_file *f = (sl_st_file *)0x1;
    sl_err err = {0};
    int rc = sl_st_open_mem(&f, b, len, "x.safetensors", &err);
    if (rc != code)
        ck_abort_msg("header %s: got %d (%s), expected %d", hdr, rc, err.msg, code);
    ck_assert_ptr_eq(f, (sl_st_file *)0x1); /* output untouched */
    ck_assert_msg(strstr(err.msg, "x.safetensors"), "no file name in: %s", err.msg);
    if (frag1)
        ck_assert_msg(strstr(err.msg, frag1), "no '%s' in: %s", frag1, err.msg);
    if (frag2)
        ck_assert_msg(strstr(err.msg, frag2), "no '%s' in: %s", frag2, err.msg);
    free(b);
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

/* ck_assert records every passing check through a pipe; the loops over
 * millions of values use this instead, which only costs on failure. */
#define REQUIRE(c)                                                                   \
    do {                                                                             \
        if (!(c))                                                                    \
            ck_abort_msg("%s:%d: %s", __FILE__, __LINE__, #c);                       \
    } while (0)

static float bits2f(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ---- core --------------------------------------------------------------- */

/* Known answer: huggingface/safetensors, safetensors/src/tensor.rs,
 * test_serialization_forced_alignement: one F32 tensor "attn0" of shape
 * [1,1,2,3] holding 0..5; the 65-byte header is padded with 7 spaces. */
static const uint8_t k_attn0[] = {
    72, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 48, 34, 58, 123, 34, 100, 116, 121,
    112, 101, 34, 58, 34, 70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34, 58, 91, 49, 44,
    49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95, 111, 102, 102, 115, 101, 116, 115,
    34, 58, 91, 48, 44, 50, 52, 93, 125, 125, 32, 32, 32, 32, 32, 32, 32, 0, 0, 0, 0, 0, 0,
    128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64};
/* Same file, test_empty: no tensor, metadata {"framework": "pt"}. */
static const uint8_t k_meta_only[] = {
    40, 0, 0, 0, 0, 0, 0, 0, 123, 34, 95, 95, 109, 101, 116, 97, 100, 97, 116, 97, 95, 95,
    34, 58, 123, 34, 102, 114, 97, 109, 101, 119, 111, 114, 107, 34, 58, 34, 112, 116, 34,
    125, 125, 32, 32, 32, 32, 32};

static void assert_file_is(const char *path, const uint8_t *want, size_t n)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    sl_err err = {0};
    ck_assert_int_eq(sl_fs_read_all(path, 1 << 20, &buf, &len, &err), 0);
    ck_assert_uint_eq(len, n);
    ck_assert_mem_eq(buf, want, n);
    free(buf);
}

START_TEST(test_reference_bytes)
{
    const char *dir = sl_test_tmpdir();
    char path[512];
    sl_err err = {0};
    ck_assert_int_eq(sl_fs_join(path, sizeof path, dir, "a.safetensors", &err), 0);
    const float v[6] = {0, 1, 2, 3, 4, 5};
    sl_st_entry e = {.name = "attn0", .dtype = SL_ST_F32, .ndim = 4, .shape = {1, 1, 2, 3},
                     .data = v};
    ck_assert_int_eq(sl_st_write(path, &e, 1, NULL, 0, &err), 0);
    assert_file_is(path, k_attn0, sizeof k_attn0);

    const char *kv[] = {"framework", "pt"};
    ck_assert_int_eq(sl_st_write(path, NULL, 0, kv, 1, &err), 0);
    assert_file_is(path, k_meta_only, sizeof k_meta_only);

    /* No tensor, no metadata: "{}" and six spaces (test_empty). */
    static const uint8_t k_empty[] = {8, 0, 0, 0, 0, 0, 0, 0, '{', '}', 32, 32, 32, 32, 32, 32};
    ck_assert_int_eq(sl_st_write(path, NULL, 0, NULL, 0, &err), 0);
    assert_file_is(path, k_empty, sizeof k_empty);
    ck_assert_int_eq(count_entries(dir), 1); /* no temporary left behind */

    /* And the reference's bytes read back as what they say. */
    sl_st_file *f = NULL;
    ck_assert_int_eq(sl_st_open_mem(&f, k_attn0, sizeof k_attn0, "k", &err), 0);
    ck_assert_uint_eq(sl_st_count(f), 1);
    const sl_st_tensor *t = sl_st_find(f, "attn0");
    ck_assert_ptr_eq(t, sl_st_at(f, 0));
    ck_assert_int_eq(t->dtype, SL_ST_F32);
    ck_assert_int_eq(t->ndim, 4);
    ck_assert(t->shape[0] == 1 && t->shape[1] == 1 && t->shape[2] == 2 && t->shape[3] == 3);
    ck_assert_uint_eq(t->nelem, 6);
    ck_assert_uint_eq(t->nbytes, 24);
    ck_assert_ptr_eq(t->data, k_attn0 + 80);
    float got[6];
    ck_assert_int_eq(sl_st_read_f32(t, got, 6, &err), 0);
    ck_assert_mem_eq(got, v, sizeof v);
    ck_assert_ptr_null(sl_st_meta(f, "framework"));
    sl_st_close(f);
    ck_assert_int_eq(sl_st_open_mem(&f, k_meta_only, sizeof k_meta_only, "k", &err), 0);
    ck_assert_uint_eq(sl_st_count(f), 0);
    ck_assert_str_eq(sl_st_meta(f, "framework"), "pt");
    sl_st_close(f);
}
END_TEST

/* A file built by hand (the reference's documentation example, header
 * length 60 = '<'): I32 [2,2] of zeros, not written by us. */
START_TEST(test_hand_built_file)
{
    static const char hdr[] = "{\"test\":{\"dtype\":\"I32\",\"shape\":[2,2],"
                              "\"data_offsets\":[0,16]}}";
    ck_assert_uint_eq(strlen(hdr), 60);
    size_t len;
    uint8_t *b = mk(hdr, 16, &len);
    ck_assert_uint_eq(b[0], '<');
    const char *p = sl_test_write(sl_test_tmpdir(), "doc.safetensors", b, len);
    sl_st_file *f = NULL;
    sl_err err = {0};
    ck_assert_int_eq(sl_st_open(&f, p, &err), 0);
    const sl_st_tensor *t = sl_st_find(f, "test");
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->dtype, SL_ST_I32);
    ck_assert_uint_eq(t->nelem, 4);
    ck_assert_mem_eq(t->data, b + 68, 16);
    float out[4];
    ck_assert_int_eq(sl_st_read_f32(t, out, 4, &err), SL_EINVAL); /* not a float type */
    ck_assert_ptr_nonnull(strstr(err.msg, "I32"));
    ck_assert_int_eq(sl_st_read_f32(t, out, 3, &err), SL_EINVAL);
    ck_assert_ptr_null(sl_st_find(f, "tes"));
    ck_assert_ptr_null(sl_st_find(f, "testx"));
    sl_st_close(f);
    free(b);
}
END_TEST

/* Random tensors of every writable dtype round trip through a file: F32
 * bit-exact, F16/BF16 equal to the element-wise conversion; header order,
 * the reference's layout order and element alignment hold. */
START_TEST(test_round_trip_all_dtypes)
{
    sl_test_rng rng = {7};
    const char *dir = sl_test_tmpdir();
    char path[512];
    sl_err err = {0};
    ck_assert_int_eq(sl_fs_join(path, sizeof path, dir, "m.safetensors", &err), 0);
    enum { N = 9 };
    sl_st_entry e[N];
    float *data[N];
    const sl_st_dtype dts[3] = {SL_ST_F16, SL_ST_BF16, SL_ST_F32};
    char names[N][32];
    for (int it = 0; it < 4; it++) {
        for (int i = 0; i < N; i++) {
            memset(&e[i], 0, sizeof e[i]);
            snprintf(names[i], sizeof names[i], "t.%d.w%llu", (N - i) % N,
                     (unsigned long long)(sl_test_rand(&rng) % 1000));
            /* Make names unique whatever the random suffix. */
            names[i][0] = (char)('a' + i);
            e[i].name = names[i];
            e[i].dtype = dts[sl_test_rand(&rng) % 3];
            e[i].ndim = (int)(sl_test_rand(&rng) % 4);
            size_t ne = 1;
            for (int d = 0; d < e[i].ndim; d++) {
                e[i].shape[d] = (int64_t)(sl_test_rand(&rng) % 7); /* zero-sized too */
                ne *= (size_t)e[i].shape[d];
            }
            data[i] = malloc((ne ? ne : 1) * sizeof(float));
            sl_test_fill(&rng, data[i], ne, 100.0f);
            if (ne > 2) {
                data[i][0] = NAN;
                data[i][1] = -INFINITY;
                data[i][2] = 1e-6f; /* a subnormal in f16 */
            }
            e[i].data = data[i];
        }
        const char *kv[] = {"format", "pt", "sealora", "test \"quoted\" \xc3\xa9"};
        ck_assert_int_eq(sl_st_write(path, e, N, kv, 2, &err), 0);
        sl_st_file *f = NULL;
        ck_assert_int_eq(sl_st_open(&f, path, &err), 0);
        ck_assert_uint_eq(sl_st_count(f), N);
        ck_assert_str_eq(sl_st_meta(f, "format"), "pt");
        ck_assert_str_eq(sl_st_meta(f, "sealora"), kv[3]);
        ck_assert_uint_eq(sl_st_meta_count(f), 2);
        const char *k, *v;
        ck_assert_int_eq(sl_st_meta_at(f, 0, &k, &v), 0);
        ck_assert_str_eq(k, "format");
        ck_assert_int_eq(sl_st_meta_at(f, 2, &k, &v), SL_EINVAL);
        /* Header order is the layout order: dtype F32, BF16, F16, then name. */
        for (size_t j = 1; j < N; j++) {
            const sl_st_tensor *a = sl_st_at(f, j - 1), *b = sl_st_at(f, j);
            int ra = a->dtype == SL_ST_F32 ? 2 : a->dtype == SL_ST_BF16;
            int rb = b->dtype == SL_ST_F32 ? 2 : b->dtype == SL_ST_BF16;
            ck_assert(ra > rb || (ra == rb && strcmp(a->name, b->name) < 0));
            ck_assert(a->data + a->nbytes == b->data);
        }
        for (int i = 0; i < N; i++) {
            const sl_st_tensor *t = sl_st_find(f, e[i].name);
            ck_assert_ptr_nonnull(t);
            ck_assert_int_eq(t->dtype, e[i].dtype);
            ck_assert_int_eq(t->ndim, e[i].ndim);
            size_t ne = 1;
            for (int d = 0; d < t->ndim; d++) {
                ck_assert(t->shape[d] == e[i].shape[d]);
                ne *= (size_t)e[i].shape[d];
            }
            ck_assert_uint_eq(t->nelem, ne);
            ck_assert_uint_eq((uintptr_t)t->data % sl_st_dtype_size(t->dtype), 0);
            float *got = malloc((ne ? ne : 1) * sizeof(float));
            ck_assert_int_eq(sl_st_read_f32(t, got, ne, &err), 0);
            for (size_t j = 0; j < ne; j++) {
                float x = data[i][j], want = x;
                if (t->dtype == SL_ST_F16)
                    want = sl_f16_to_f32(sl_f32_to_f16(x));
                else if (t->dtype == SL_ST_BF16)
                    want = sl_bf16_to_f32(sl_f32_to_bf16(x));
                if (isnan(x))
                    REQUIRE(isnan(got[j]));
                else
                    REQUIRE(memcmp(&got[j], &want, 4) == 0);
            }
            free(got);
        }
        sl_st_close(f);
        for (int i = 0; i < N; i++)
            free(data[i]);
    }
    ck_assert_int_eq(count_entries(dir), 1);
}
END_TEST

/* Known values: IEEE 754-2008 binary16 (1.0 = 0x3c00, 65504 = 0x7bff the
 * largest finite, 2^-14 = 0x0400 the smallest normal, 2^-24 = 0x0001 the
 * smallest subnormal) and bfloat16 (1.0 = 0x3f80, the top half of the
 * binary32 encoding). */
START_TEST(test_half_known_values)
{
    ck_assert_uint_eq(sl_f32_to_f16(1.0f), 0x3c00);
    ck_assert_uint_eq(sl_f32_to_f16(-2.0f), 0xc000);
    ck_assert_uint_eq(sl_f32_to_f16(-0.0f), 0x8000);
    ck_assert_uint_eq(sl_f32_to_f16(65504.0f), 0x7bff);
    ck_assert_uint_eq(sl_f32_to_f16(65519.99f), 0x7bff);
    ck_assert_uint_eq(sl_f32_to_f16(65520.0f), 0x7c00); /* tie, odd 0x7bff -> up to Inf */
    ck_assert_uint_eq(sl_f32_to_f16(1e10f), 0x7c00);
    ck_assert_uint_eq(sl_f32_to_f16(INFINITY), 0x7c00);
    ck_assert_uint_eq(sl_f32_to_f16(-INFINITY), 0xfc00);
    ck_assert_uint_eq(sl_f32_to_f16(0x1p-14f), 0x0400);
    ck_assert_uint_eq(sl_f32_to_f16(0x1p-24f), 0x0001);
    ck_assert_uint_eq(sl_f32_to_f16(0x1p-25f), 0x0000);          /* tie -> even 0 */
    ck_assert_uint_eq(sl_f32_to_f16(0x1.8p-25f), 0x0001);        /* above the tie */
    ck_assert_uint_eq(sl_f32_to_f16(0x3p-25f), 0x0002);          /* tie 1.5 -> even 2 */
    ck_assert_uint_eq(sl_f32_to_f16(0x1.ffcp-15f), 0x0400);      /* tie, odd 0x3ff -> normal */
    ck_assert_uint_eq(sl_f32_to_f16(0x1.ff8p-15f), 0x03ff);      /* largest subnormal */
    ck_assert_uint_eq(sl_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);   /* tie -> even */
    ck_assert_uint_eq(sl_f32_to_f16(1.0f + 0x3p-11f), 0x3c02);   /* tie -> even (up) */
    ck_assert_uint_eq(sl_f32_to_f16(1.0f + 0x1.01p-11f), 0x3c01); /* just above the tie */
    ck_assert_uint_eq(sl_f32_to_f16(1e-30f), 0x0000);
    ck_assert_uint_eq(sl_f32_to_f16(-1e-30f), 0x8000);
    uint16_t h = sl_f32_to_f16(NAN);
    ck_assert((h & 0x7c00) == 0x7c00 && (h & 0x3ff));
    h = sl_f32_to_f16(bits2f(0x7f800001u)); /* signalling NaN with a low payload */
    ck_assert((h & 0x7c00) == 0x7c00 && (h & 0x3ff));
    ck_assert(sl_f16_to_f32(0x7bff) == 65504.0f);
    ck_assert(sl_f16_to_f32(0x0001) == 0x1p-24f);
    ck_assert(sl_f16_to_f32(0x03ff) == 0x3ffp-24f);
    ck_assert(isinf(sl_f16_to_f32(0xfc00)) && sl_f16_to_f32(0xfc00) < 0);
    ck_assert(isnan(sl_f16_to_f32(0x7e00)));
    ck_assert(signbit(sl_f16_to_f32(0x8000)));

    ck_assert_uint_eq(sl_f32_to_bf16(1.0f), 0x3f80);
    ck_assert_uint_eq(sl_f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);  /* tie -> even */
    ck_assert_uint_eq(sl_f32_to_bf16(1.0f + 0x3p-8f), 0x3f82);  /* tie -> even (up) */
    ck_assert_uint_eq(sl_f32_to_bf16(1.0f + 0x1p-9f), 0x3f80);
    ck_assert_uint_eq(sl_f32_to_bf16(FLT_MAX), 0x7f80);         /* rounds up to Inf */
    ck_assert_uint_eq(sl_f32_to_bf16(-INFINITY), 0xff80);
    ck_assert_uint_eq(sl_f32_to_bf16(0x1p-149f), 0x0000);       /* tiny subnormal -> 0 */
    ck_assert_uint_eq(sl_f32_to_bf16(0x1p-133f), 0x0001);       /* bf16 subnormal kept */
    h = sl_f32_to_bf16(bits2f(0x7f800001u));
    ck_assert((h & 0x7f80) == 0x7f80 && (h & 0x7f));
    ck_assert(sl_bf16_to_f32(0x3f80) == 1.0f);
}
END_TEST

/* Every 16-bit pattern: decode then encode is the identity (NaN stays NaN),
 * and decoding is monotonic over the positive finite range, which the
 * nearest-value test below relies on. */
START_TEST(test_half_exhaustive)
{
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = sl_f16_to_f32((uint16_t)h);
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) {
            REQUIRE(isnan(f));
            REQUIRE(isnan(sl_f16_to_f32(sl_f32_to_f16(f))));
        } else {
            REQUIRE(sl_f32_to_f16(f) == h);
        }
        float b = sl_bf16_to_f32((uint16_t)h);
        if ((h & 0x7f80) == 0x7f80 && (h & 0x7f))
            REQUIRE(isnan(sl_bf16_to_f32(sl_f32_to_bf16(b))));
        else
            REQUIRE(sl_f32_to_bf16(b) == h);
        if (h > 0 && h <= 0x7c00)
            REQUIRE(sl_f16_to_f32((uint16_t)(h - 1)) < f);
    }
}
END_TEST

/* Round to nearest, ties to even, checked against the definition: the
 * result is at least as close as both neighbours, and even on a tie. */
static void check_nearest(float x, uint16_t h, float (*dec)(uint16_t), uint16_t maxfin)
{
    double ax = fabs((double)x);
    uint16_t m = h & 0x7fff;
    REQUIRE((h >> 15) == (signbit(x) ? 1u : 0u));
    if (m > maxfin) { /* Inf: x must be at or past the halfway point above maxfin */
        double top = dec(maxfin), next = top + (top - dec((uint16_t)(maxfin - 1)));
        REQUIRE(ax >= (top + next) / 2);
        return;
    }
    double v = dec(m), dlo = m ? fabs(ax - dec((uint16_t)(m - 1))) : INFINITY;
    double d = fabs(ax - v);
    double dhi = m < maxfin ? fabs(ax - dec((uint16_t)(m + 1))) : INFINITY;
    if (!(d <= dlo && d <= dhi))
        ck_abort_msg("not nearest: x=%a h=%04x", (double)x, h);
    if (d == dlo || d == dhi)
        if (m & 1)
            ck_abort_msg("tie not to even: x=%a h=%04x", (double)x, h);
}

START_TEST(test_half_nearest_even_random)
{
    sl_test_rng rng = {11};
    for (int i = 0; i < 200000; i++) {
        uint64_t r = sl_test_rand(&rng);
        /* Random bit patterns over the whole f16 range, biased to ties. */
        uint32_t u = (uint32_t)r & 0x807fffffu;
        u |= (uint32_t)(((r >> 32) % 46) + 98) << 23; /* exponents 2^-29 .. 2^16 */
        if (r & (1ull << 40))
            u = (u & ~0x1fffu) | 0x1000u; /* exact f16-normal tie */
        float x = bits2f(u);
        check_nearest(x, sl_f32_to_f16(x), sl_f16_to_f32, 0x7bff);
        uint32_t w = (uint32_t)(r >> 16);
        if ((w & 0x7f800000u) == 0x7f800000u)
            continue; /* Inf/NaN covered by the known values */
        if (r & (1ull << 41))
            w = (w & ~0xffffu) | 0x8000u; /* exact bf16 tie */
        check_nearest(bits2f(w), sl_f32_to_bf16(bits2f(w)), sl_bf16_to_f32, 0x7f7f);
    }
}
END_TEST

START_TEST(test_read_f64_and_atomic_failure)
{
    /* F64 source: values convert with float rounding; beyond range -> Inf. */
    double d[4] = {0.1, -3.5, 1e300, 0x1.fffffefffffffp127};
    char hdr[128];
    snprintf(hdr, sizeof hdr,
             "{\"d\":{\"dtype\":\"F64\",\"shape\":[4],\"data_offsets\":[0,32]}}");
    size_t len;
    uint8_t *b = mk(hdr, 32, &len);
    memcpy(b + len - 32, d, 32); /* little-endian host, as the test machines are */
    sl_st_file *f = NULL;
    sl_err err = {0};
    ck_assert_int_eq(sl_st_open_mem(&f, b, len, "d", &err), 0);
    float out[4];
    ck_assert_int_eq(sl_st_read_f32(sl_st_at(f, 0), out, 4, &err), 0);
    ck_assert(out[0] == 0.1f && out[1] == -3.5f);
    ck_assert(isinf(out[2]) && out[2] > 0);
    ck_assert(out[3] == FLT_MAX); /* just below the rounding midpoint */
    sl_st_close(f);
    free(b);

    /* A refused write leaves the previous file and no temporary. */
    const char *dir = sl_test_tmpdir();
    char path[512];
    ck_assert_int_eq(sl_fs_join(path, sizeof path, dir, "keep.safetensors", &err), 0);
    const float v[6] = {0, 1, 2, 3, 4, 5};
    sl_st_entry e[2] = {{.name = "attn0", .dtype = SL_ST_F32, .ndim = 4, .shape = {1, 1, 2, 3},
                         .data = v},
                        {.name = "x", .dtype = SL_ST_I32, .ndim = 1, .shape = {1}, .data = v}};
    ck_assert_int_eq(sl_st_write(path, e, 1, NULL, 0, &err), 0);
    ck_assert_int_eq(sl_st_write(path, e, 2, NULL, 0, &err), SL_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "'x'"));
    ck_assert_ptr_nonnull(strstr(err.msg, "I32"));
    e[1] = e[0]; /* duplicate name, other dtype */
    e[1].dtype = SL_ST_F16;
    ck_assert_int_eq(sl_st_write(path, e, 2, NULL, 0, &err), SL_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "attn0"));
    e[1].name = "__metadata__";
    ck_assert_int_eq(sl_st_write(path, e, 2, NULL, 0, &err), SL_EINVAL);
    e[1].name = "";
    ck_assert_int_eq(sl_st_write(path, e, 2, NULL, 0, &err), SL_EINVAL);
    e[1].name = "bad\xff";
    ck_assert_int_eq(sl_st_write(path, e, 2, NULL, 0, &err), SL_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "UTF-8"));
    const char *kv[] = {"k", "v", "k", "w"};
    ck_assert_int_eq(sl_st_write(path, e, 1, kv, 2, &err), SL_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "'k'"));
    char missing[600];
    snprintf(missing, sizeof missing, "%s/no/such/dir/x.safetensors", dir);
    ck_assert_int_eq(sl_st_write(missing, e, 1, NULL, 0, &err), SL_EIO);
    assert_file_is(path, k_attn0, sizeof k_attn0);
    ck_assert_int_eq(count_entries(dir), 1);
}
END_TEST

/* ---- limits ------------------------------------------------------------- */

START_TEST(test_limits)
{
    /* Header length above the reference's 100 MB limit: refused before any
     * allocation, even though the file is tiny. */
    uint8_t b[16] = {0};
    uint64_t n = (uint64_t)SL_ST_MAX_HEADER + 1;
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(n >> (8 * i));
    sl_st_file *f = (sl_st_file *)0x1;
    sl_err err = {0};
    ck_assert_int_eq(sl_st_open_mem(&f, b, sizeof b, "h", &err), SL_ELIMIT);
    ck_assert_ptr_nonnull(strstr(err.msg, "100000001"));
    memset(b, 0xff, 8); /* 2^64 - 1 */
    ck_assert_int_eq(sl_st_open_mem(&f, b, sizeof b, "h", &err), SL_ELIMIT);
    ck_assert_ptr_eq(f, (sl_st_file *)0x1);

    refused("{\"t\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1,
            SL_ELIMIT, "'t'", "9 dimensions");
    /* Eight dimensions are fine. */
    size_t len;
    uint8_t *ok = mk("{\"t\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1],"
                     "\"data_offsets\":[0,1]}}", 1, &len);
    ck_assert_int_eq(sl_st_open_mem(&f, ok, len, "ok", &err), 0);
    sl_st_close(f);
    free(ok);
    /* shape product and byte size overflow size_t: refused, not wrapped. */
    refused("{\"t\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],"
            "\"data_offsets\":[0,0]}}", 0, SL_EFORMAT, "'t'", "overflow");
    refused("{\"t\":{\"dtype\":\"F64\",\"shape\":[4611686018427387904],"
            "\"data_offsets\":[0,0]}}", 0, SL_EFORMAT, "'t'", "overflow");
    refused("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,"
            "99999999999999999999999]}}", 4, SL_EFORMAT, "not valid JSON", NULL);

    /* More tensors than SL_ST_MAX_TENSORS. */
    size_t cap = (SL_ST_MAX_TENSORS + 1) * 64 + 16, at = 0;
    char *hdr = malloc(cap);
    at += (size_t)snprintf(hdr + at, cap - at, "{");
    for (unsigned i = 0; i <= SL_ST_MAX_TENSORS; i++)
        at += (size_t)snprintf(hdr + at, cap - at,
                               "%s\"t%u\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}",
                               i ? "," : "", i);
    snprintf(hdr + at, cap - at, "}");
    refused(hdr, 0, SL_ELIMIT, "65537 tensors", NULL);
    free(hdr);

    /* Writer limits. */
    const char *dir = sl_test_tmpdir();
    char path[512];
    ck_assert_int_eq(sl_fs_join(path, sizeof path, dir, "w.safetensors", &err), 0);
    float v = 1;
    sl_st_entry e = {.name = "t", .dtype = SL_ST_F32, .ndim = 9, .data = &v};
    ck_assert_int_eq(sl_st_write(path, &e, 1, NULL, 0, &err), SL_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "ndim 9"));
    e.ndim = 2;
    e.shape[0] = 1;
    e.shape[1] = -1;
    ck_assert_int_eq(sl_st_write(path, &e, 1, NULL, 0, &err), SL_EINVAL);
    e.shape[0] = INT64_MAX;
    e.shape[1] = INT64_MAX;
    ck_assert_int_eq(sl_st_write(path, &e, 1, NULL, 0, &err), SL_EINVAL);
    e.shape[1] = 1;
    ck_assert_int_eq(sl_st_write(path, &e, 1, NULL, 0, &err), SL_ELIMIT);
    ck_assert_int_eq(count_entries(dir), 0);
}
END_TEST

/* ---- malformed ---------------------------------------------------------- */

static const char *k_two = "{\"__metadata__\":{\"format\":\"pt\"},"
                           "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                           "\"b\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[8,14]}}";

START_TEST(test_every_truncation_refused)
{
    size_t len;
    uint8_t *b = mk(k_two, 14, &len);
    sl_st_file *f = NULL;
    sl_err err = {0};
    ck_assert_int_eq(sl_st_open_mem(&f, b, len, "two", &err), 0);
    ck_assert_str_eq(sl_st_at(f, 0)->name, "a"); /* header order */
    ck_assert_str_eq(sl_st_at(f, 1)->name, "b");
    sl_st_close(f);
    const char *dir = sl_test_tmpdir();
    for (size_t cut = 0; cut < len; cut++) {
        f = (sl_st_file *)0x1;
        int rc = sl_st_open_mem(&f, b, cut, "cut.safetensors", &err);
        ck_assert_int_ne(rc, 0);
        ck_assert_ptr_eq(f, (sl_st_file *)0x1);
        ck_assert_msg(strstr(err.msg, "cut.safetensors"), "%s", err.msg);
        /* And through the file path (mmap) for a few sizes, including < 8. */
        if (cut % 13 == 0 || cut < 9) {
            const char *p = sl_test_write(dir, "cut.safetensors", b, cut);
            ck_assert_int_ne(sl_st_open(&f, p, &err), 0);
            ck_assert_ptr_eq(f, (sl_st_file *)0x1);
        }
    }
    /* One byte more is a byte no tensor covers. */
    uint8_t *longer = malloc(len + 1);
    memcpy(longer, b, len);
    longer[len] = 0;
    ck_assert_int_eq(sl_st_open_mem(&f, longer, len + 1, "long", &err), SL_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "belong to no tensor"));
    free(longer);
    free(b);
}
END_TEST

START_TEST(test_bad_headers)
{
    /* Header length past the end of the file. */
    uint8_t b[12] = {100, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' '};
    sl_st_file *f = (sl_st_file *)0x1;
    sl_err err = {0};
    ck_assert_int_eq(sl_st_open_mem(&f, b, sizeof b, "p", &err), SL_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "header length 100 runs past the end"));

    /* Offsets: overlapping, out of range, with a hole, reversed, uncovered. */
    refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
            "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, SL_EFORMAT,
            "'b'", "overlap tensor 'a'");
    refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
            "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, SL_EFORMAT,
            "overlap", NULL);
    refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 12, SL_EFORMAT,
            "'a'", "run past the end of the 12-byte");
    refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
            "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[6,10]}}", 10, SL_EFORMAT,
            "'b'", "bytes [4, 6)");
    refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, SL_EFORMAT,
            "'a'", "bytes [0, 4)");
    refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]}}", 8, SL_EFORMAT,
            "'a'", "end before");
    refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 6, SL_EFORMAT,
            "2 bytes after the last tensor", NULL);
    refused("{}", 1, SL_EFORMAT, "1 bytes after", NULL);
    refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 0, SL_EFORMAT,
            "'a'", "[-4,0]");
    refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, SL_EFORMAT,
            "'a'", "[begin, end]");
    refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8, SL_EFORMAT,
            "'a'", "[0,4,8]");

    /* dtype and shape. */
    refused("{\"a\":{\"dtype\":\"F128\",\"shape\":[1],\"data_offsets\":[0,16]}}", 16, SL_EFORMAT,
            "'a'", "\"F128\"");
    refused("{\"a\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, SL_EFORMAT,
            "unsupported dtype \"f32\"", NULL);
    refused("{\"a\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, SL_EFORMAT,
            "'a'", "dtype is 7");
    refused("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, SL_EFORMAT, "'a'",
            "(missing)");
    refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, SL_EFORMAT,
            "'a'", "need 12");
    refused("{\"a\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,4]}}", 4, SL_EFORMAT,
            "hold 4 bytes but dtype F16", NULL);
    refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", 4, SL_EFORMAT,
            "shape[0] is 1.0", NULL);
    refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, SL_EFORMAT,
            "shape[0] is -1", NULL);
    refused("{\"a\":{\"dtype\":\"F32\",\"shape\":\"1\",\"data_offsets\":[0,4]}}", 4, SL_EFORMAT,
            "'a'", "shape is \"1\"");
    refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4,
            SL_EFORMAT, "unknown field 'x'", NULL);
    refused("{\"a\":[1]}", 0, SL_EFORMAT, "'a'", "not an object");

    /* Whole-header problems. */
    refused("[1,2]", 0, SL_EFORMAT, "is an array, not a JSON object", NULL);
    refused("\"s\"", 0, SL_EFORMAT, "not valid JSON", NULL);
    refused("{\"a\":", 0, SL_EFORMAT, "not valid JSON", "line 1");
    refused("", 0, SL_EFORMAT, "not valid JSON", NULL);
    refused("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
            "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}", 2, SL_EFORMAT,
            "duplicate", NULL);
    refused("{\"\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, SL_EFORMAT,
            "empty name", NULL);
    refused("{\"\xc3\x28\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
            SL_EFORMAT, "not valid JSON", NULL);
    refused("{\"a\\u0000b\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
            SL_EFORMAT, "not valid JSON", NULL);
    refused("{\"__metadata__\":{\"k\":1}}", 0, SL_EFORMAT, "__metadata__ 'k' is 1", NULL);
    refused("{\"__metadata__\":[\"k\"]}", 0, SL_EFORMAT, "__metadata__ is an array", NULL);
    refused("{\"__metadata__\":{\"k\":\"a\\u0000\"}}", 0, SL_EFORMAT, "not valid JSON", NULL);
    refused("{} \x01", 0, SL_EFORMAT, "not valid JSON", NULL);

    /* Accepted: null metadata, leading whitespace, zero-sized tensors. */
    size_t len;
    uint8_t *ok = mk(" {\"__metadata__\":null,\"z\":{\"dtype\":\"BOOL\",\"shape\":[0,3],"
                     "\"data_offsets\":[0,0]},\"s\":{\"dtype\":\"I64\",\"shape\":[],"
                     "\"data_offsets\":[0,8]}}   ", 8, &len);
    ck_assert_int_eq(sl_st_open_mem(&f, ok, len, "ok", &err), 0);
    ck_assert_uint_eq(sl_st_find(f, "z")->nelem, 0);
    ck_assert_uint_eq(sl_st_find(f, "s")->nelem, 1);
    ck_assert_uint_eq(sl_st_meta_count(f), 0);
    sl_st_close(f);
    free(ok);

    /* Not a regular file; missing file. */
    ck_assert_int_eq(sl_st_open(&f, sl_test_tmpdir(), &err), SL_EINVAL);
    ck_assert_int_eq(sl_st_open(&f, "/nonexistent/m.safetensors", &err), SL_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(err.msg, "/nonexistent/m.safetensors"));
}
END_TEST

/* Random byte flips of a valid file: each either is refused or opens into
 * a file whose tensors still tile the data buffer exactly. */
START_TEST(test_random_corruption)
{
    size_t len;
    uint8_t *b = mk(k_two, 14, &len);
    uint8_t *c = malloc(len);
    sl_test_rng rng = {3};
    for (int it = 0; it < 3000; it++) {
        memcpy(c, b, len);
        int flips = 1 + (int)(sl_test_rand(&rng) % 3);
        for (int k = 0; k < flips; k++)
            c[sl_test_rand(&rng) % len] ^= (uint8_t)(1u << (sl_test_rand(&rng) % 8));
        sl_st_file *f = NULL;
        sl_err err = {0};
        if (sl_st_open_mem(&f, c, len, "flip", &err) != 0) {
            ck_assert(err.msg[0]);
            continue;
        }
        size_t total = 0;
        for (size_t i = 0; i < sl_st_count(f); i++) {
            const sl_st_tensor *t = sl_st_at(f, i);
            ck_assert(t->data >= c && t->data + t->nbytes <= c + len);
            ck_assert_uint_eq(t->nbytes, t->nelem * sl_st_dtype_size(t->dtype));
            total += t->nbytes;
        }
        ck_assert_uint_eq(total, 14);
        sl_st_close(f);
    }
    free(c);
    free(b);
}
END_TEST

Suite *safetensors_suite(void)
{
    Suite *s = suite_create("safetensors");
    TCase *core = tcase_create("core");
    tcase_add_test(core, test_reference_bytes);
    tcase_add_test(core, test_hand_built_file);
    tcase_add_test(core, test_round_trip_all_dtypes);
    tcase_add_test(core, test_half_known_values);
    tcase_add_test(core, test_half_exhaustive);
    tcase_add_test(core, test_half_nearest_even_random);
    tcase_add_test(core, test_read_f64_and_atomic_failure);
    suite_add_tcase(s, core);
    TCase *lim = tcase_create("limits");
    tcase_add_test(lim, test_limits);
    tcase_set_timeout(lim, 30);
    suite_add_tcase(s, lim);
    TCase *bad = tcase_create("malformed");
    tcase_add_test(bad, test_every_truncation_refused);
    tcase_add_test(bad, test_bad_headers);
    tcase_add_test(bad, test_random_corruption);
    suite_add_tcase(s, bad);
    return s;
}
