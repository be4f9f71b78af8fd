#include "shared/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shared/atomicfile.h"
#include "shared/reader.h"

struct sl_st_file {
    void *map;             /* owned read-only mapping, or NULL (sl_st_open_mem) */
    size_t maplen;
    size_t ntensors;
    sl_st_tensor *tensors; /* header order */
    size_t *by_name;       /* indices into tensors, sorted by name (bsearch) */
    size_t nmeta;
    const char **meta;     /* 2 * nmeta: key, value, key, value ... */
    char *strings;         /* every name, key and value, NUL-terminated */
};

/* ---- dtypes ---------------------------------------------------------- */

static const struct {
    const char *name;
    size_t size;
} g_dtypes[SL_ST_NDTYPES] = {
    [SL_ST_F32] = {"F32", 4}, [SL_ST_F16] = {"F16", 2}, [SL_ST_BF16] = {"BF16", 2},
    [SL_ST_F64] = {"F64", 8}, [SL_ST_I64] = {"I64", 8}, [SL_ST_I32] = {"I32", 4},
    [SL_ST_I16] = {"I16", 2}, [SL_ST_I8] = {"I8", 1},   [SL_ST_U8] = {"U8", 1},
    [SL_ST_BOOL] = {"BOOL", 1},
};

const char *sl_st_dtype_name(sl_st_dtype d)
{
    return (unsigned)d < SL_ST_NDTYPES ? g_dtypes[d].name : "?";
}

size_t sl_st_dtype_size(sl_st_dtype d)
{
    return (unsigned)d < SL_ST_NDTYPES ? g_dtypes[d].size : 0;
}

static int dtype_parse(const char *s, sl_st_dtype *out)
{
    for (int i = 0; i < SL_ST_NDTYPES; i++)
        if (strcmp(s, g_dtypes[i].name) == 0) {
            *out = (sl_st_dtype)i;
            return 0;
        }
    return -1;
}

/* ---- half-precision conversions -------------------------------------- */

static uint32_t f2u(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float u2f(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float sl_bf16_to_f32(uint16_t h) { return u2f((uint32_t)h << 16); }

uint16_t sl_f32_to_bf16(float f)
{
    uint32_t x = f2u(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) /* NaN: keep sign and top payload, force quiet */
        return (uint16_t)((x >> 16) | 0x0040u);
    /* Round to nearest even: add 0x7fff plus the lowest kept bit, truncate.
     * A carry out of the mantissa bumps the exponent, which is exactly the
     * right result (up to Inf for the largest finite values). */
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

float sl_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0) { /* zero or subnormal: m * 2^-24, exact in float */
        float v = (float)m * 0x1p-24f;
        return sign ? -v : v;
    }
    if (e == 31) /* Inf or NaN (payload kept) */
        return u2f(sign | 0x7f800000u | (m << 13));
    return u2f(sign | ((e + 112u) << 23) | (m << 13));
}

uint16_t sl_f32_to_f16(float f)
{
    uint32_t x = f2u(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) /* NaN */
        return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
    /* 65520 = 0x477ff000 is halfway between 65504 (largest finite, odd
     * mantissa) and 65536: ties to even go up, so from there on it is Inf. */
    if (ax >= 0x477ff000u)
        return (uint16_t)(sign | 0x7c00u);
    if (ax >= 0x38800000u) { /* normal in f16 (>= 2^-14): rebias, round, shift */
        uint32_t r = ax - 0x38000000u;
        r += 0xfffu + ((r >> 13) & 1u);
        return (uint16_t)(sign | (r >> 13));
    }
    /* Subnormal in f16: result = round(value * 2^24). value = m * 2^(e-150)
     * with the implicit bit, so result = m >> (126 - e), rounded. */
    uint32_t e = ax >> 23;
    if (e < 102) /* below 2^-25: rounds to zero */
        return sign;
    uint32_t m = (ax & 0x7fffffu) | 0x800000u;
    uint32_t s = 126u - e; /* 14 .. 24 */
    uint32_t q = m >> s, rem = m & ((1u << s) - 1u), half = 1u << (s - 1u);
    if (rem > half || (rem == half && (q & 1u)))
        q++; /* may carry into the smallest normal, which is the right encoding */
    return (uint16_t)(sign | q);
}

/* ---- reading ------------------------------------------------------------ */

static void file_free(sl_st_file *f)
{
    if (!f)
        return;
    if (f->map)
        munmap(f->map, f->maplen);
    free(f->tensors);
    free(f->by_name);
    free(f->meta);
    free(f->strings);
    free(f);
}

void sl_st_close(sl_st_file *f) { file_free(f); }

/* A short printable rendering of a JSON value for messages. */
static void show(const json_t *v, char *out, size_t cap)
{
    char *s = v ? json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    if (!s) {
        snprintf(out, cap, "%s", v ? "(unprintable)" : "(missing)");
        return;
    }
    if (strlen(s) > 48)
        snprintf(out, cap, "%.45s...", s);
    else
        snprintf(out, cap, "%s", s);
    free(s);
}

static const char *jtype(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a real number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

/* Non-negative JSON integer, else -1. */
static int64_t juint(const json_t *v)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -1;
    return (int64_t)json_integer_value(v);
}

typedef struct span {
    uint64_t begin, end;
    size_t idx;
} span;

static int span_cmp(const void *a, const void *b)
{
    const span *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int name_cmp(const void *a, const void *b, void *ctx)
{
    const sl_st_tensor *t = ctx;
    return strcmp(t[*(const size_t *)a].name, t[*(const size_t *)b].name);
}

#define BAD(...) sl_err_set(err, SL_EFORMAT, __VA_ARGS__)

/* Parses one tensor entry into t (name set by the caller) and its span. */
static int parse_tensor(const char *what, const char *name, json_t *info, uint64_t data_len,
                        sl_st_tensor *t, span *sp, sl_err *err)
{
    char buf[64];
    if (!json_is_object(info))
        return BAD("%s: tensor '%s': entry is %s, not an object", what, name, jtype(info));
    const char *key;
    json_t *v;
    json_object_foreach(info, key, v)
    {
        if (strcmp(key, "dtype") && strcmp(key, "shape") && strcmp(key, "data_offsets"))
            return BAD("%s: tensor '%s': unknown field '%.64s'", what, name, key);
    }
    json_t *jd = json_object_get(info, "dtype");
    json_t *js = json_object_get(info, "shape");
    json_t *jo = json_object_get(info, "data_offsets");
    if (!json_is_string(jd)) {
        show(jd, buf, sizeof buf);
        return BAD("%s: tensor '%s': dtype is %s, not a dtype string", what, name, buf);
    }
    if (dtype_parse(json_string_value(jd), &t->dtype) != 0) {
        show(jd, buf, sizeof buf);
        return BAD("%s: tensor '%s': unsupported dtype %s (expected F32, F16, BF16, F64, I64, "
                   "I32, I16, I8, U8 or BOOL)", what, name, buf);
    }
    if (!json_is_array(js)) {
        show(js, buf, sizeof buf);
        return BAD("%s: tensor '%s': shape is %s, not an array", what, name, buf);
    }
    size_t nd = json_array_size(js);
    if (nd > SL_ST_MAX_DIMS)
        return sl_err_set(err, SL_ELIMIT, "%s: tensor '%s': shape has %zu dimensions, more than "
                          "the limit of %d", what, name, nd, SL_ST_MAX_DIMS);
    size_t nelem = 1;
    int overflow = 0;
    for (size_t d = 0; d < nd; d++) {
        int64_t dim = juint(json_array_get(js, d));
        if (dim < 0) {
            show(json_array_get(js, d), buf, sizeof buf);
            return BAD("%s: tensor '%s': shape[%zu] is %s, not a non-negative integer", what,
                       name, d, buf);
        }
        t->shape[d] = dim;
        if ((uint64_t)dim > SIZE_MAX || __builtin_mul_overflow(nelem, (size_t)dim, &nelem))
            overflow = 1;
    }
    t->ndim = (int)nd;
    size_t nbytes = 0;
    if (overflow || __builtin_mul_overflow(nelem, g_dtypes[t->dtype].size, &nbytes))
        return BAD("%s: tensor '%s': shape times the %s element size overflows", what, name,
                   g_dtypes[t->dtype].name);
    if (!json_is_array(jo) || json_array_size(jo) != 2) {
        show(jo, buf, sizeof buf);
        return BAD("%s: tensor '%s': data_offsets is %s, not [begin, end]", what, name, buf);
    }
    int64_t b = juint(json_array_get(jo, 0)), e = juint(json_array_get(jo, 1));
    if (b < 0 || e < 0) {
        show(jo, buf, sizeof buf);
        return BAD("%s: tensor '%s': data_offsets %s are not non-negative integers", what, name,
                   buf);
    }
    if (e < b)
        return BAD("%s: tensor '%s': data_offsets [%lld, %lld] end before they begin", what,
                   name, (long long)b, (long long)e);
    if ((uint64_t)e > data_len)
        return BAD("%s: tensor '%s': data_offsets [%lld, %lld] run past the end of the %llu-byte "
                   "data buffer", what, name, (long long)b, (long long)e,
                   (unsigned long long)data_len);
    if ((uint64_t)(e - b) != (uint64_t)nbytes)
        return BAD("%s: tensor '%s': data_offsets [%lld, %lld] hold %lld bytes but dtype %s and "
                   "shape need %zu", what, name, (long long)b, (long long)e,
                   (long long)(e - b), g_dtypes[t->dtype].name, nbytes);
    t->nelem = nelem;
    t->nbytes = nbytes;
    sp->begin = (uint64_t)b;
    sp->end = (uint64_t)e;
    return 0;
}

/* Validates buf and builds the file object; map (owned, may be NULL) is
 * adopted by the result on success only. */
static int parse(sl_st_file **out, const uint8_t *buf, size_t len, const char *what,
                 sl_err *err)
{
    sl_reader r;
    sl_reader_init(&r, buf, len);
    if (len < 8)
        return BAD("%s: %zu bytes, too short for the 8-byte header length", what, len);
    uint64_t n = sl_reader_u64le(&r);
    if (n > SL_ST_MAX_HEADER)
        return sl_err_set(err, SL_ELIMIT, "%s: header length %llu exceeds the limit of %u bytes",
                          what, (unsigned long long)n, SL_ST_MAX_HEADER);
    if (n > sl_reader_remaining(&r))
        return BAD("%s: header length %llu runs past the end of the file (%zu bytes)", what,
                   (unsigned long long)n, len);
    const uint8_t *hdr = sl_reader_bytes(&r, (size_t)n);
    size_t data_len = sl_reader_remaining(&r);
    const uint8_t *data = sl_reader_bytes(&r, data_len);
    int rc = sl_reader_finish(&r, err, what);
    if (rc)
        return rc;

    json_error_t jerr;
    json_t *root = json_loadb((const char *)hdr, (size_t)n, JSON_REJECT_DUPLICATES, &jerr);
    sl_st_file *f = NULL;
    span *spans = NULL;
    if (!root)
        return BAD("%s: header is not valid JSON: %s (line %d, column %d)", what, jerr.text,
                   jerr.line, jerr.column);
    if (!json_is_object(root)) {
        rc = BAD("%s: header is %s, not a JSON object", what, jtype(root));
        goto out;
    }
    json_t *jmeta = json_object_get(root, "__metadata__");
    size_t ntensors = json_object_size(root) - (jmeta ? 1 : 0);
    if (ntensors > SL_ST_MAX_TENSORS) {
        rc = sl_err_set(err, SL_ELIMIT, "%s: %zu tensors exceed the limit of %u", what, ntensors,
                        SL_ST_MAX_TENSORS);
        goto out;
    }
    if (jmeta && !json_is_object(jmeta) && !json_is_null(jmeta)) {
        rc = BAD("%s: __metadata__ is %s, not an object of strings", what, jtype(jmeta));
        goto out;
    }
    size_t nmeta = json_is_object(jmeta) ? json_object_size(jmeta) : 0;
    size_t strbytes = 0;
    const char *key;
    json_t *v;
    if (nmeta) {
        json_object_foreach(jmeta, key, v)
        {
            if (!json_is_string(v)) {
                char b[64];
                show(v, b, sizeof b);
                rc = BAD("%s: __metadata__ '%.64s' is %s, not a string", what, key, b);
                goto out;
            }
            size_t kl = strlen(key), vl = json_string_length(v);
            if (kl > SL_ST_MAX_NAME || vl > SL_ST_MAX_NAME) {
                rc = sl_err_set(err, SL_ELIMIT, "%s: __metadata__ '%.64s' is longer than %u bytes",
                                what, key, SL_ST_MAX_NAME);
                goto out;
            }
            if (strlen(json_string_value(v)) != vl) {
                rc = BAD("%s: __metadata__ '%.64s' contains a NUL character", what, key);
                goto out;
            }
            strbytes += kl + vl + 2;
        }
    }

    rc = SL_ENOMEM;
    f = calloc(1, sizeof *f);
    if (!f)
        goto nomem;
    f->tensors = calloc(ntensors ? ntensors : 1, sizeof *f->tensors);
    f->by_name = calloc(ntensors ? ntensors : 1, sizeof *f->by_name);
    f->meta = calloc(nmeta ? 2 * nmeta : 1, sizeof *f->meta);
    spans = calloc(ntensors ? ntensors : 1, sizeof *spans);
    if (!f->tensors || !f->by_name || !f->meta || !spans)
        goto nomem;

    /* Pass 1: validate every tensor entry; names still point into the JSON. */
    size_t i = 0;
    json_object_foreach(root, key, v)
    {
        if (strcmp(key, "__metadata__") == 0)
            continue;
        size_t kl = strlen(key);
        if (kl == 0) {
            rc = BAD("%s: a tensor has an empty name", what);
            goto out;
        }
        if (kl > SL_ST_MAX_NAME) {
            rc = sl_err_set(err, SL_ELIMIT, "%s: tensor name '%.64s...' is longer than %u bytes",
                            what, key, SL_ST_MAX_NAME);
            goto out;
        }
        f->tensors[i].name = key;
        spans[i].idx = i;
        rc = parse_tensor(what, key, v, data_len, &f->tensors[i], &spans[i], err);
        if (rc)
            goto out;
        strbytes += kl + 1;
        i++;
    }

    /* The byte ranges must tile [0, data_len) exactly, as the reference
     * requires: sorted by offset, each begins where the previous ended. */
    qsort(spans, ntensors, sizeof *spans, span_cmp);
    uint64_t at = 0;
    for (size_t k = 0; k < ntensors; k++) {
        const sl_st_tensor *t = &f->tensors[spans[k].idx];
        if (spans[k].begin < at) {
            rc = BAD("%s: tensor '%s': data_offsets [%llu, %llu] overlap tensor '%s' which ends "
                     "at byte %llu", what, t->name, (unsigned long long)spans[k].begin,
                     (unsigned long long)spans[k].end, f->tensors[spans[k - 1].idx].name,
                     (unsigned long long)at);
            goto out;
        }
        if (spans[k].begin > at) {
            rc = BAD("%s: tensor '%s': data_offsets [%llu, %llu] leave bytes [%llu, %llu) of the "
                     "data buffer to no tensor", what, t->name,
                     (unsigned long long)spans[k].begin, (unsigned long long)spans[k].end,
                     (unsigned long long)at, (unsigned long long)spans[k].begin);
            goto out;
        }
        at = spans[k].end;
    }
    if (at != data_len) {
        rc = BAD("%s: %llu bytes after the last tensor (from byte %llu of the data buffer) "
                 "belong to no tensor", what, (unsigned long long)(data_len - at),
                 (unsigned long long)at);
        goto out;
    }

    /* Pass 2: copy the strings out of the JSON and point the views. */
    f->strings = malloc(strbytes ? strbytes : 1);
    if (!f->strings)
        goto nomem;
    char *s = f->strings;
    for (size_t k = 0; k < ntensors; k++) {
        sl_st_tensor *t = &f->tensors[spans[k].idx];
        t->data = data + spans[k].begin;
        size_t kl = strlen(t->name) + 1;
        memcpy(s, t->name, kl);
        t->name = s;
        s += kl;
        f->by_name[k] = k;
    }
    if (nmeta) {
        size_t m = 0;
        json_object_foreach(jmeta, key, v)
        {
            size_t kl = strlen(key) + 1, vl = json_string_length(v) + 1;
            memcpy(s, key, kl);
            f->meta[2 * m] = s;
            s += kl;
            memcpy(s, json_string_value(v), vl);
            f->meta[2 * m + 1] = s;
            s += vl;
            m++;
        }
    }
    qsort_r(f->by_name, ntensors, sizeof *f->by_name, name_cmp, f->tensors);
    f->ntensors = ntensors;
    f->nmeta = nmeta;
    rc = 0;
    goto out;
nomem:
    rc = sl_err_set(err, SL_ENOMEM, "%s: cannot allocate the tensor index", what);
out:
    free(spans);
    json_decref(root);
    if (rc)
        file_free(f);
    else
        *out = f;
    return rc;
}

int sl_st_open_mem(sl_st_file **out, const void *buf, size_t len, const char *what,
                   sl_err *err)
{
    return parse(out, buf, len, what ? what : "safetensors buffer", err);
}

int sl_st_open(sl_st_file **out, const char *path, sl_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? sl_err_set(err, SL_ENOTFOUND, "%s: no such file", path)
                               : sl_err_errno(err, "%s: open", path);
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int rc = sl_err_errno(err, "%s: stat", path);
        close(fd);
        return rc;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return sl_err_set(err, SL_EINVAL, "%s: not a regular file", path);
    }
    if (st.st_size < 8) { /* nothing to map; let the parser word the refusal */
        close(fd);
        return parse(out, (const uint8_t *)"", (size_t)st.st_size, path, err);
    }
    size_t len = (size_t)st.st_size;
    void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    int saved = errno;
    close(fd);
    if (map == MAP_FAILED) {
        errno = saved;
        return sl_err_errno(err, "%s: mmap %zu bytes", path, len);
    }
    sl_st_file *f = NULL;
    int rc = parse(&f, map, len, path, err);
    if (rc) {
        munmap(map, len);
        return rc;
    }
    f->map = map;
    f->maplen = len;
    *out = f;
    return 0;
}

size_t sl_st_count(const sl_st_file *f) { return f ? f->ntensors : 0; }

const sl_st_tensor *sl_st_at(const sl_st_file *f, size_t i)
{
    return f && i < f->ntensors ? &f->tensors[i] : NULL;
}

const sl_st_tensor *sl_st_find(const sl_st_file *f, const char *name)
{
    if (!f || !name)
        return NULL;
    size_t lo = 0, hi = f->ntensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const sl_st_tensor *t = &f->tensors[f->by_name[mid]];
        int c = strcmp(name, t->name);
        if (c == 0)
            return t;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

const char *sl_st_meta(const sl_st_file *f, const char *key)
{
    if (!f || !key)
        return NULL;
    for (size_t i = 0; i < f->nmeta; i++)
        if (strcmp(f->meta[2 * i], key) == 0)
            return f->meta[2 * i + 1];
    return NULL;
}

size_t sl_st_meta_count(const sl_st_file *f) { return f ? f->nmeta : 0; }

int sl_st_meta_at(const sl_st_file *f, size_t i, const char **key, const char **value)
{
    if (!f || i >= f->nmeta)
        return SL_EINVAL;
    *key = f->meta[2 * i];
    *value = f->meta[2 * i + 1];
    return 0;
}

static uint16_t ld16(const uint8_t *p) { return (uint16_t)(p[0] | (uint16_t)p[1] << 8); }

static uint32_t ld32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static float f64_to_f32(const uint8_t *p)
{
    uint64_t u = (uint64_t)ld32(p) | (uint64_t)ld32(p + 4) << 32;
    double d;
    memcpy(&d, &u, 8);
    /* Out-of-range double -> float conversion is undefined in ISO C; do the
     * IEEE rounding ourselves: from FLT_MAX + half an ulp (a tie, and
     * FLT_MAX's mantissa is odd) upwards the nearest-even result is Inf. */
    if (fabs(d) > (double)FLT_MAX && !isinf(d) && !isnan(d)) {
        float r = fabs(d) >= 0x1.ffffffp127 ? INFINITY : FLT_MAX;
        return d < 0 ? -r : r;
    }
    return (float)d;
}

int sl_st_read_f32(const sl_st_tensor *t, float *out, size_t n, sl_err *err)
{
    if (n != t->nelem)
        return sl_err_set(err, SL_EINVAL, "tensor '%s': asked for %zu values, it holds %zu",
                          t->name, n, t->nelem);
    const uint8_t *p = t->data;
    switch (t->dtype) {
    case SL_ST_F32:
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        if (n)
            memcpy(out, p, n * 4); /* the file's layout is the host's */
#else
        for (size_t i = 0; i < n; i++)
            out[i] = u2f(ld32(p + 4 * i));
#endif
        return 0;
    case SL_ST_F16:
        for (size_t i = 0; i < n; i++)
            out[i] = sl_f16_to_f32(ld16(p + 2 * i));
        return 0;
    case SL_ST_BF16:
        for (size_t i = 0; i < n; i++)
            out[i] = sl_bf16_to_f32(ld16(p + 2 * i));
        return 0;
    case SL_ST_F64:
        for (size_t i = 0; i < n; i++)
            out[i] = f64_to_f32(p + 8 * i);
        return 0;
    default:
        return sl_err_set(err, SL_EINVAL, "tensor '%s': dtype %s is not a float type", t->name,
                          sl_st_dtype_name(t->dtype));
    }
}

/* ---- writing ------------------------------------------------------------ */

/* Rank in the reference's Dtype ordering (declaration order, which is
 * increasing alignment): its writer puts larger ranks first. */
static int write_rank(sl_st_dtype d) { return d == SL_ST_F32 ? 2 : d == SL_ST_BF16 ? 1 : 0; }

static int entry_cmp(const void *a, const void *b, void *ctx)
{
    const sl_st_entry *e = ctx;
    const sl_st_entry *x = &e[*(const size_t *)a], *y = &e[*(const size_t *)b];
    int rx = write_rank(x->dtype), ry = write_rank(y->dtype);
    if (rx != ry)
        return ry - rx;
    return strcmp(x->name, y->name);
}

/* Converts and streams one tensor's data in blocks. */
static int write_data(sl_afile *a, const sl_st_entry *e, size_t nelem, sl_err *err)
{
    enum { BLOCK = 4096 };
    uint8_t buf[BLOCK * 4];
    for (size_t i = 0; i < nelem; i += BLOCK) {
        size_t k = nelem - i < BLOCK ? nelem - i : BLOCK, nb;
        const float *x = e->data + i;
        if (e->dtype == SL_ST_F32) {
            for (size_t j = 0; j < k; j++) {
                uint32_t u = f2u(x[j]);
                buf[4 * j] = (uint8_t)u;
                buf[4 * j + 1] = (uint8_t)(u >> 8);
                buf[4 * j + 2] = (uint8_t)(u >> 16);
                buf[4 * j + 3] = (uint8_t)(u >> 24);
            }
            nb = 4 * k;
        } else {
            for (size_t j = 0; j < k; j++) {
                uint16_t h = e->dtype == SL_ST_F16 ? sl_f32_to_f16(x[j]) : sl_f32_to_bf16(x[j]);
                buf[2 * j] = (uint8_t)h;
                buf[2 * j + 1] = (uint8_t)(h >> 8);
            }
            nb = 2 * k;
        }
        int rc = sl_afile_write(a, buf, nb, err);
        if (rc)
            return rc;
    }
    return 0;
}

/* Builds the header JSON (compact, reference order) into root. */
static int build_header(const char *path, const sl_st_entry *e, size_t n, const size_t *order,
                        const char *const *meta_kv, size_t nmeta, json_t *root, size_t *nelems,
                        sl_err *err)
{
    if (nmeta) {
        json_t *m = json_object();
        if (!m || json_object_set_new(root, "__metadata__", m) != 0)
            return sl_err_set(err, SL_ENOMEM, "%s: cannot build the header", path);
        for (size_t i = 0; i < nmeta; i++) {
            const char *k = meta_kv[2 * i], *v = meta_kv[2 * i + 1];
            if (!k || !v)
                return sl_err_set(err, SL_EINVAL, "%s: metadata pair %zu has a NULL key or value",
                                  path, i);
            if (json_object_get(m, k))
                return sl_err_set(err, SL_EINVAL, "%s: metadata key '%.64s' given twice", path, k);
            json_t *js = json_string(v);
            if (!js || json_object_set_new(m, k, js) != 0)
                return sl_err_set(err, SL_EINVAL, "%s: metadata '%.64s' is not valid UTF-8",
                                  path, k);
        }
    }
    uint64_t off = 0;
    for (size_t j = 0; j < n; j++) {
        const sl_st_entry *x = &e[order[j]];
        json_t *info = json_object(), *shape = json_array(), *offs = json_array();
        if (!info || !shape || !offs) {
            json_decref(info);
            json_decref(shape);
            json_decref(offs);
            return sl_err_set(err, SL_ENOMEM, "%s: cannot build the header", path);
        }
        for (int d = 0; d < x->ndim; d++)
            json_array_append_new(shape, json_integer(x->shape[d]));
        uint64_t nb = (uint64_t)nelems[order[j]] * sl_st_dtype_size(x->dtype);
        json_array_append_new(offs, json_integer((json_int_t)off));
        json_array_append_new(offs, json_integer((json_int_t)(off + nb)));
        off += nb;
        json_object_set_new(info, "dtype", json_string(sl_st_dtype_name(x->dtype)));
        json_object_set_new(info, "shape", shape);
        json_object_set_new(info, "data_offsets", offs);
        if (json_object_get(root, x->name)) {
            json_decref(info);
            return sl_err_set(err, SL_EINVAL, "%s: tensor name '%.64s' given twice", path,
                              x->name);
        }
        if (json_object_set_new(root, x->name, info) != 0)
            return sl_err_set(err, SL_EINVAL, "%s: tensor name '%.64s' is not valid UTF-8", path,
                              x->name);
    }
    return 0;
}

int sl_st_write(const char *path, const sl_st_entry *e, size_t n,
                const char *const *meta_kv, size_t nmeta_pairs, sl_err *err)
{
    if (n > SL_ST_MAX_TENSORS)
        return sl_err_set(err, SL_ELIMIT, "%s: %zu tensors exceed the limit of %u", path, n,
                          SL_ST_MAX_TENSORS);
    if (nmeta_pairs && !meta_kv)
        return sl_err_set(err, SL_EINVAL, "%s: %zu metadata pairs but no array", path,
                          nmeta_pairs);
    size_t *order = calloc(n ? n : 1, sizeof *order);
    size_t *nelems = calloc(n ? n : 1, sizeof *nelems);
    json_t *root = json_object();
    char *hdr = NULL;
    sl_afile *a = NULL;
    int rc = 0;
    if (!order || !nelems || !root) {
        rc = sl_err_set(err, SL_ENOMEM, "%s: cannot allocate the header", path);
        goto out;
    }
    /* Validate every entry before touching the disk. */
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        const sl_st_entry *x = &e[i];
        const char *nm = x->name ? x->name : "(null)";
        if (!x->name || !x->name[0] || strcmp(x->name, "__metadata__") == 0 ||
            strlen(x->name) > SL_ST_MAX_NAME) {
            rc = sl_err_set(err, SL_EINVAL, "%s: entry %zu: invalid tensor name '%.64s'", path, i,
                            nm);
            goto out;
        }
        if (x->dtype != SL_ST_F32 && x->dtype != SL_ST_F16 && x->dtype != SL_ST_BF16) {
            rc = sl_err_set(err, SL_EINVAL, "%s: tensor '%s': cannot write dtype %s (F32, F16 or "
                            "BF16 only)", path, nm, sl_st_dtype_name(x->dtype));
            goto out;
        }
        if (x->ndim < 0 || x->ndim > SL_ST_MAX_DIMS) {
            rc = sl_err_set(err, SL_EINVAL, "%s: tensor '%s': ndim %d outside 0..%d", path, nm,
                            x->ndim, SL_ST_MAX_DIMS);
            goto out;
        }
        size_t ne = 1;
        for (int d = 0; d < x->ndim; d++) {
            if (x->shape[d] < 0 || (uint64_t)x->shape[d] > SIZE_MAX ||
                __builtin_mul_overflow(ne, (size_t)x->shape[d], &ne)) {
                rc = sl_err_set(err, SL_EINVAL, "%s: tensor '%s': bad shape[%d] = %lld", path, nm,
                                d, (long long)x->shape[d]);
                goto out;
            }
        }
        uint64_t nb;
        if (__builtin_mul_overflow((uint64_t)ne, (uint64_t)sl_st_dtype_size(x->dtype), &nb) ||
            __builtin_add_overflow(total, nb, &total) || total > (uint64_t)INT64_MAX) {
            rc = sl_err_set(err, SL_ELIMIT, "%s: tensor '%s': data size overflows", path, nm);
            goto out;
        }
        if (ne && !x->data) {
            rc = sl_err_set(err, SL_EINVAL, "%s: tensor '%s': no data", path, nm);
            goto out;
        }
        nelems[i] = ne;
        order[i] = i;
    }
    qsort_r(order, n, sizeof *order, entry_cmp, (void *)e);
    rc = build_header(path, e, n, order, meta_kv, nmeta_pairs, root, nelems, err);
    if (rc)
        goto out;
    if (json_object_size(root) != n + (nmeta_pairs ? 1 : 0)) {
        rc = sl_err_set(err, SL_EINVAL, "%s: tensor names are not unique", path);
        goto out;
    }
    hdr = json_dumps(root, JSON_COMPACT);
    if (!hdr) {
        rc = sl_err_set(err, SL_ENOMEM, "%s: cannot encode the header", path);
        goto out;
    }
    size_t hl = strlen(hdr), pad = (8 - hl % 8) % 8;
    if (hl + pad > SL_ST_MAX_HEADER) {
        rc = sl_err_set(err, SL_ELIMIT, "%s: header of %zu bytes exceeds the limit of %u", path,
                        hl + pad, SL_ST_MAX_HEADER);
        goto out;
    }
    a = malloc(sizeof *a);
    if (!a) {
        rc = sl_err_set(err, SL_ENOMEM, "%s: cannot allocate the write buffer", path);
        goto out;
    }
    rc = sl_afile_open(a, path, 0644, err);
    if (rc) {
        free(a);
        a = NULL;
        goto out;
    }
    uint8_t len8[8];
    for (int b = 0; b < 8; b++)
        len8[b] = (uint8_t)((uint64_t)(hl + pad) >> (8 * b));
    rc = sl_afile_write(a, len8, 8, err);
    if (!rc)
        rc = sl_afile_write(a, hdr, hl, err);
    if (!rc)
        rc = sl_afile_write(a, "       ", pad, err);
    for (size_t j = 0; !rc && j < n; j++)
        rc = write_data(a, &e[order[j]], nelems[order[j]], err);
    if (!rc)
        rc = sl_afile_commit(a, err);
out:
    if (a)
        sl_afile_abort(a); /* no-op after a commit */
    free(a);
    free(hdr);
    json_decref(root);
    free(nelems);
    free(order);
    return rc;
}
