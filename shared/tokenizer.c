#include "shared/tokenizer.h"

#include <jansson.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/fsutil.h"
#include "shared/pretok.h"

/* Pieces up to this many bytes are merged by rescanning an array of pair
 * ranks (no allocation); longer ones with a heap, so a 100 MB run of letters
 * costs O(n log n), not O(n^2). Both apply the lowest (rank, position) pair
 * first; tests/check_tokenizer.c checks them against a naive merger. */
#define SHORT_PIECE 48

#define NO_RANK UINT32_MAX
#define EMPTY_KEY UINT64_MAX

typedef struct added_tok {
    int32_t id;
    uint32_t len;
    const uint8_t *bytes; /* into tok_bytes */
} added_tok;

struct sl_tokenizer {
    uint32_t n_vocab;
    int32_t eot;
    uint32_t *tok_off;  /* n_vocab + 1 offsets into tok_bytes */
    uint8_t *tok_bytes; /* the bytes of every token, by id */
    uint8_t *special;   /* n_vocab flags: 1 for added tokens */
    int32_t byte_id[256];
    /* Merge table: open addressing on (left << 32 | right); one slot is one
     * 16-byte entry, so a lookup touches one cache line. */
    struct pair_ent {
        uint64_t key;
        uint32_t rank;
        int32_t nid;
    } *pairs;
    size_t pmask;
    uint32_t n_merges;
    int32_t *merges; /* 2 * n_merges ids in file order, for the hash */
    added_tok *added;
    uint32_t n_added;
    sl_pretok *pre;
    uint8_t hash[SL_TOKENIZER_HASH_BYTES];
};

/* ---- id buffer ---- */

void sl_ids_init(sl_ids *ids, size_t max)
{
    memset(ids, 0, sizeof *ids);
    ids->max = max;
}

void sl_ids_fini(sl_ids *ids)
{
    free(ids->v);
    ids->v = NULL;
    ids->n = ids->cap = 0;
}

static int ids_reserve(sl_ids *ids, size_t extra, sl_err *err)
{
    if (extra > SIZE_MAX / 8 - ids->n)
        return sl_err_set(err, SL_ELIMIT, "token buffer: %zu + %zu ids overflow", ids->n, extra);
    size_t need = ids->n + extra;
    if (ids->max && need > ids->max)
        return sl_err_set(err, SL_ELIMIT, "token buffer: %zu ids exceed its limit of %zu", need,
                          ids->max);
    if (need <= ids->cap)
        return 0;
    size_t cap = ids->cap ? ids->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 16 ? need : cap * 2;
    int32_t *v = realloc(ids->v, cap * sizeof *v);
    if (!v)
        return sl_err_set(err, SL_ENOMEM, "token buffer: cannot grow to %zu ids", cap);
    ids->v = v;
    ids->cap = cap;
    return 0;
}

int sl_ids_push(sl_ids *ids, int32_t id, sl_err *err)
{
    if (ids->n == ids->cap || (ids->max && ids->n >= ids->max)) {
        int rc = ids_reserve(ids, 1, err);
        if (rc)
            return rc;
    }
    ids->v[ids->n++] = id;
    return 0;
}

/* ---- merge table ---- */

static size_t pair_slot(uint64_t key, size_t mask)
{
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 29) & mask;
}

static uint32_t pair_rank(const sl_tokenizer *t, int32_t a, int32_t b, int32_t *nid)
{
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    for (size_t i = pair_slot(key, t->pmask);; i = (i + 1) & t->pmask) {
        if (t->pairs[i].key == key) {
            *nid = t->pairs[i].nid;
            return t->pairs[i].rank;
        }
        if (t->pairs[i].key == EMPTY_KEY)
            return NO_RANK;
    }
}

/* A repeated pair takes the rank of its last line, as Hugging Face's
 * HashMap collect and the reference encoder's dict() both do. */
static void pair_put(sl_tokenizer *t, int32_t a, int32_t b, uint32_t rank, int32_t nid)
{
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    size_t i = pair_slot(key, t->pmask);
    while (t->pairs[i].key != EMPTY_KEY && t->pairs[i].key != key)
        i = (i + 1) & t->pmask;
    t->pairs[i] = (struct pair_ent){key, rank, nid};
}

/* ---- BPE on one piece ---- */

static int bpe_short(const sl_tokenizer *t, const uint8_t *s, size_t n, sl_ids *out, sl_err *err)
{
    int32_t sym[SHORT_PIECE], nid[SHORT_PIECE];
    uint32_t rank[SHORT_PIECE]; /* rank[i]: pair (sym[i], sym[i+1]) */
    size_t m = n;
    for (size_t i = 0; i < n; i++)
        sym[i] = t->byte_id[s[i]];
    for (size_t i = 0; i + 1 < m; i++)
        rank[i] = pair_rank(t, sym[i], sym[i + 1], &nid[i]);
    while (m > 1) {
        size_t best = 0;
        for (size_t i = 1; i + 1 < m; i++)
            if (rank[i] < rank[best])
                best = i;
        if (rank[best] == NO_RANK)
            break;
        sym[best] = nid[best];
        memmove(sym + best + 1, sym + best + 2, (m - best - 2) * sizeof *sym);
        memmove(rank + best + 1, rank + best + 2, (m - best - 2) * sizeof *rank);
        memmove(nid + best + 1, nid + best + 2, (m - best - 2) * sizeof *nid);
        m--;
        if (best > 0)
            rank[best - 1] = pair_rank(t, sym[best - 1], sym[best], &nid[best - 1]);
        if (best + 1 < m)
            rank[best] = pair_rank(t, sym[best], sym[best + 1], &nid[best]);
    }
    int rc = ids_reserve(out, m, err);
    if (rc)
        return rc;
    memcpy(out->v + out->n, sym, m * sizeof *sym);
    out->n += m;
    return 0;
}

static void heap_push(uint64_t *h, size_t *hn, uint64_t v)
{
    size_t i = (*hn)++;
    while (i > 0 && h[(i - 1) / 2] > v) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = v;
}

static uint64_t heap_pop(uint64_t *h, size_t *hn)
{
    uint64_t top = h[0], v = h[--*hn];
    size_t i = 0, n = *hn;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && h[c + 1] < h[c])
            c++;
        if (h[c] >= v)
            break;
        h[i] = h[c];
        i = c;
    }
    if (n)
        h[i] = v;
    return top;
}

static int bpe_long(const sl_tokenizer *t, const uint8_t *s, size_t n, sl_ids *out, sl_err *err)
{
    if (n > UINT32_MAX - 1)
        return sl_err_set(err, SL_ELIMIT, "tokenizer: one piece of %zu bytes exceeds 4 GiB", n);
    int rc = 0;
    int32_t *sym = malloc(n * sizeof *sym);
    uint32_t *next = malloc(n * sizeof *next), *prev = malloc(n * sizeof *prev);
    uint64_t *heap = malloc(3 * n * sizeof *heap); /* n-1 initial + 2 per merge */
    if (!sym || !next || !prev || !heap) {
        rc = sl_err_set(err, SL_ENOMEM, "tokenizer: no memory for a piece of %zu bytes", n);
        goto out;
    }
    size_t hn = 0;
    for (size_t i = 0; i < n; i++) {
        sym[i] = t->byte_id[s[i]];
        next[i] = i + 1 < n ? (uint32_t)(i + 1) : UINT32_MAX;
        prev[i] = i ? (uint32_t)(i - 1) : UINT32_MAX;
    }
    int32_t nid;
    for (size_t i = 0; i + 1 < n; i++) {
        uint32_t r = pair_rank(t, sym[i], sym[i + 1], &nid);
        if (r != NO_RANK)
            heap_push(heap, &hn, (uint64_t)r << 32 | i);
    }
    size_t m = n;
    while (hn) {
        uint64_t top = heap_pop(heap, &hn);
        uint32_t r = (uint32_t)(top >> 32), p = (uint32_t)top;
        uint32_t q = next[p];
        /* Stale if p was absorbed (prev link cut), or its pair changed: a
         * rank names one pair, so an equal rank means the same pair. */
        if (sym[p] < 0 || q == UINT32_MAX || pair_rank(t, sym[p], sym[q], &nid) != r)
            continue;
        sym[p] = nid;
        sym[q] = -1;
        next[p] = next[q];
        if (next[q] != UINT32_MAX)
            prev[next[q]] = p;
        m--;
        if (prev[p] != UINT32_MAX) {
            uint32_t l = prev[p];
            uint32_t r2 = pair_rank(t, sym[l], sym[p], &nid);
            if (r2 != NO_RANK)
                heap_push(heap, &hn, (uint64_t)r2 << 32 | l);
        }
        if (next[p] != UINT32_MAX) {
            uint32_t r2 = pair_rank(t, sym[p], sym[next[p]], &nid);
            if (r2 != NO_RANK)
                heap_push(heap, &hn, (uint64_t)r2 << 32 | p);
        }
    }
    if ((rc = ids_reserve(out, m, err)) != 0)
        goto out;
    for (uint32_t i = 0; i != UINT32_MAX; i = next[i])
        out->v[out->n++] = sym[i];
out:
    free(heap);
    free(prev);
    free(next);
    free(sym);
    return rc;
}

/* Per-call cache of short pieces and their ids: text repeats its common
 * words (Zipf), so most pieces skip the merger. Direct-mapped; a slot with
 * len 0 is empty. Only calls on CACHE_MIN_TEXT bytes or more allocate one. */
#define CACHE_SLOTS 4096u
#define CACHE_BYTES 23u
#define CACHE_IDS 8u
#define CACHE_MIN_TEXT 2048u

typedef struct cache_ent {
    uint8_t len, nids;
    uint8_t bytes[CACHE_BYTES];
    int32_t ids[CACHE_IDS];
} cache_ent;

typedef struct enc_ctx {
    const sl_tokenizer *t;
    sl_ids *out;
    sl_err *err;
    cache_ent *cache; /* NULL: none */
} enc_ctx;

static int enc_piece(void *vctx, const uint8_t *s, size_t n)
{
    enc_ctx *c = vctx;
    if (n == 1)
        return sl_ids_push(c->out, c->t->byte_id[s[0]], c->err);
    if (n > SHORT_PIECE)
        return bpe_long(c->t, s, n, c->out, c->err);
    if (!c->cache || n > CACHE_BYTES)
        return bpe_short(c->t, s, n, c->out, c->err);
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 16777619u;
    cache_ent *e = &c->cache[(h ^ (h >> 15)) & (CACHE_SLOTS - 1)];
    if (e->len == n && memcmp(e->bytes, s, n) == 0) {
        int rc = ids_reserve(c->out, e->nids, c->err);
        if (rc)
            return rc;
        memcpy(c->out->v + c->out->n, e->ids, e->nids * sizeof *e->ids);
        c->out->n += e->nids;
        return 0;
    }
    size_t at = c->out->n;
    int rc = bpe_short(c->t, s, n, c->out, c->err);
    if (rc == 0 && c->out->n - at <= CACHE_IDS) {
        e->len = (uint8_t)n;
        e->nids = (uint8_t)(c->out->n - at);
        memcpy(e->bytes, s, n);
        memcpy(e->ids, c->out->v + at, e->nids * sizeof *e->ids);
    }
    return rc;
}

static int encode_plain(const sl_tokenizer *t, const uint8_t *s, size_t n, cache_ent *cache,
                        sl_ids *ids, sl_err *err)
{
    enc_ctx c = {t, ids, err, cache};
    return n ? sl_pretok_each(t->pre, s, n, enc_piece, &c, err) : 0;
}

int sl_tokenizer_encode(const sl_tokenizer *t, const void *text, size_t n, unsigned flags,
                        sl_ids *ids, sl_err *err)
{
    const uint8_t *s = text;
    size_t n0 = ids->n;
    int rc = 0;
    cache_ent *cache = n >= CACHE_MIN_TEXT ? calloc(CACHE_SLOTS, sizeof *cache) : NULL;
    if (!(flags & SL_TOKENIZER_SPECIAL) || t->n_added == 0) {
        rc = encode_plain(t, s, n, cache, ids, err);
        goto out;
    }
    /* Cut out added tokens, leftmost first and longest at a tie (Hugging
     * Face's AddedVocabulary). hit[k] caches token k's next occurrence. */
    size_t hit_small[8], *hit = t->n_added <= 8 ? hit_small : malloc(t->n_added * sizeof *hit);
    if (!hit) {
        rc = sl_err_set(err, SL_ENOMEM, "tokenizer: out of memory");
        goto out;
    }
    for (uint32_t k = 0; k < t->n_added; k++)
        hit[k] = 0;
    int first = 1;
    size_t at = 0;
    while (at < n && rc == 0) {
        size_t best = n;
        uint32_t bk = 0;
        for (uint32_t k = 0; k < t->n_added; k++) {
            const added_tok *a = &t->added[k];
            if (first || (hit[k] < at && hit[k] != SIZE_MAX)) {
                const uint8_t *f = a->len ? memmem(s + at, n - at, a->bytes, a->len) : NULL;
                hit[k] = f ? (size_t)(f - s) : SIZE_MAX;
            }
            if (hit[k] != SIZE_MAX && hit[k] >= at &&
                (hit[k] < best || (hit[k] == best && a->len > t->added[bk].len))) {
                best = hit[k];
                bk = k;
            }
        }
        first = 0;
        rc = encode_plain(t, s + at, best - at, cache, ids, err);
        if (rc == 0 && best < n) {
            rc = sl_ids_push(ids, t->added[bk].id, err);
            at = best + t->added[bk].len;
        } else {
            at = n;
        }
    }
    if (hit != hit_small)
        free(hit);
out:
    free(cache);
    if (rc)
        ids->n = n0;
    return rc;
}

/* ---- decode ---- */

int sl_tokenizer_decoded_len(const sl_tokenizer *t, const int32_t *ids, size_t n, size_t *len,
                             sl_err *err)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || (uint32_t)ids[i] >= t->n_vocab)
            return sl_err_set(err, SL_EINVAL, "decode: id %ld at position %zu is outside the "
                              "vocabulary of %u", (long)ids[i], i, t->n_vocab);
        total += t->tok_off[ids[i] + 1] - t->tok_off[ids[i]];
    }
    *len = total;
    return 0;
}

int sl_tokenizer_decode(const sl_tokenizer *t, const int32_t *ids, size_t n, uint8_t *out,
                        size_t cap, size_t *len, sl_err *err)
{
    size_t need;
    int rc = sl_tokenizer_decoded_len(t, ids, n, &need, err);
    if (rc)
        return rc;
    if (need > cap)
        return sl_err_set(err, SL_ELIMIT, "decode: %zu bytes do not fit in a buffer of %zu",
                          need, cap);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t a = t->tok_off[ids[i]], b = t->tok_off[ids[i] + 1];
        memcpy(out + o, t->tok_bytes + a, b - a);
        o += b - a;
    }
    *len = o;
    return 0;
}

const uint8_t *sl_tokenizer_token(const sl_tokenizer *t, int32_t id, size_t *len)
{
    if (id < 0 || (uint32_t)id >= t->n_vocab)
        return NULL;
    *len = t->tok_off[id + 1] - t->tok_off[id];
    return t->tok_bytes + t->tok_off[id];
}

uint32_t sl_tokenizer_vocab_size(const sl_tokenizer *t) { return t->n_vocab; }
int32_t sl_tokenizer_eot(const sl_tokenizer *t) { return t->eot; }
uint32_t sl_tokenizer_merges(const sl_tokenizer *t) { return t->n_merges; }
const uint8_t *sl_tokenizer_hash(const sl_tokenizer *t) { return t->hash; }

int sl_tokenizer_is_special(const sl_tokenizer *t, int32_t id)
{
    return id >= 0 && (uint32_t)id < t->n_vocab && t->special[id];
}

void sl_tokenizer_free(sl_tokenizer *t)
{
    if (!t)
        return;
    sl_pretok_free(t->pre);
    free(t->added);
    free(t->merges);
    free(t->pairs);
    free(t->special);
    free(t->tok_bytes);
    free(t->tok_off);
    free(t);
}

/* ---- loading ---- */

/* One merge as two borrowed UTF-8 strings. */
typedef struct merge_src {
    const char *a, *b;
    size_t alen, blen;
} merge_src;

/* What the two file layouts have in common once parsed. */
typedef struct build_in {
    const char *vocab_name, *merges_name, *added_name; /* for messages */
    json_t *vocab;             /* object: byte-level string -> id */
    merge_src *merges;
    size_t n_merges;
    json_t *added;             /* array of added tokens, or NULL */
} build_in;

/* Decodes one UTF-8 code point of a jansson-validated string. */
static uint32_t utf8_next(const uint8_t *s, size_t n, size_t *i)
{
    uint8_t c = s[*i];
    int len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    if ((size_t)len > n - *i)
        len = 1;
    uint32_t v = len == 1 ? c : len == 2 ? c & 0x1Fu : len == 3 ? c & 0x0Fu : c & 0x07u;
    for (int k = 1; k < len; k++)
        v = v << 6 | (s[*i + k] & 0x3Fu);
    *i += (size_t)len;
    return v;
}

/* Token bytes from its byte-level spelling; characters outside the alphabet
 * stand for their own UTF-8 (Hugging Face's ByteLevel decoder does that). */
static size_t unspell(const char *key, size_t klen, uint8_t *out)
{
    const uint8_t *s = (const uint8_t *)key;
    size_t i = 0, o = 0;
    while (i < klen) {
        size_t at = i;
        int b = sl_pretok_char_byte(utf8_next(s, klen, &i));
        if (b >= 0) {
            out[o++] = (uint8_t)b;
        } else {
            memcpy(out + o, s + at, i - at);
            o += i - at;
        }
    }
    return o;
}

static void hash_u32(crypto_hash_sha256_state *st, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    crypto_hash_sha256_update(st, b, 4);
}

static void compute_hash(sl_tokenizer *t)
{
    static const char tag[] = "sealora tokenizer v1";
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const uint8_t *)tag, sizeof tag);
    hash_u32(&st, t->n_vocab);
    for (uint32_t id = 0; id < t->n_vocab; id++) {
        uint32_t a = t->tok_off[id], b = t->tok_off[id + 1];
        hash_u32(&st, b - a);
        crypto_hash_sha256_update(&st, t->tok_bytes + a, b - a);
        uint8_t sp = t->special[id];
        crypto_hash_sha256_update(&st, &sp, 1);
    }
    hash_u32(&st, t->n_merges);
    for (uint32_t i = 0; i < 2 * t->n_merges; i++)
        hash_u32(&st, (uint32_t)t->merges[i]);
    crypto_hash_sha256_final(&st, t->hash);
}

static int json_id(json_t *v, int64_t *id)
{
    if (!json_is_integer(v))
        return -1;
    *id = json_integer_value(v);
    return *id >= 0 && *id < (int64_t)SL_TOKENIZER_MAX_VOCAB ? 0 : -1;
}

static int build(const build_in *in, sl_tokenizer **out, sl_err *err)
{
    int rc = 0;
    int32_t *slot = NULL; /* id -> 0 free, 1 vocab, 2 added */
    uint8_t *scratch = NULL;
    sl_tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        return sl_err_set(err, SL_ENOMEM, "%s: out of memory", in->vocab_name);
    if (!json_is_object(in->vocab)) {
        rc = sl_err_set(err, SL_EFORMAT, "%s: vocabulary is not a JSON object", in->vocab_name);
        goto fail;
    }
    size_t nv = json_object_size(in->vocab);
    size_t na = in->added ? json_array_size(in->added) : 0;
    if (in->added && !json_is_array(in->added)) {
        rc = sl_err_set(err, SL_EFORMAT, "%s: added_tokens is not an array", in->added_name);
        goto fail;
    }
    if (nv + na > SL_TOKENIZER_MAX_VOCAB || na > SL_TOKENIZER_MAX_ADDED) {
        rc = sl_err_set(err, SL_ELIMIT, "%s: %zu tokens and %zu added tokens exceed the limits "
                        "of %u and %u", in->vocab_name, nv, na, SL_TOKENIZER_MAX_VOCAB,
                        SL_TOKENIZER_MAX_ADDED);
        goto fail;
    }
    /* Pass 1: ids, dense and distinct; total token bytes. */
    slot = calloc(nv + na + 1, sizeof *slot);
    if (!slot) {
        rc = sl_err_set(err, SL_ENOMEM, "%s: out of memory", in->vocab_name);
        goto fail;
    }
    size_t total = 0, max_id = 0, n_ids = 0;
    const char *key;
    json_t *val;
    json_object_foreach(in->vocab, key, val) {
        int64_t id;
        size_t klen = strlen(key);
        if (json_id(val, &id) || (size_t)id >= nv + na) {
            rc = sl_err_set(err, SL_EFORMAT, "%s: token \"%.64s\": id is not an integer in "
                            "[0, %zu)", in->vocab_name, key, nv + na);
            goto fail;
        }
        if (klen > 2 * SL_TOKENIZER_MAX_TOKEN) {
            rc = sl_err_set(err, SL_ELIMIT, "%s: token \"%.64s...\" (id %lld) is longer than "
                            "%u bytes", in->vocab_name, key, (long long)id,
                            SL_TOKENIZER_MAX_TOKEN);
            goto fail;
        }
        if (slot[id]) {
            rc = sl_err_set(err, SL_EFORMAT, "%s: id %lld is given to two tokens (one is "
                            "\"%.64s\")", in->vocab_name, (long long)id, key);
            goto fail;
        }
        slot[id] = 1;
        n_ids++;
        total += klen;
        if ((size_t)id > max_id)
            max_id = (size_t)id;
    }
    for (size_t k = 0; k < na; k++) {
        json_t *a = json_array_get(in->added, k);
        json_t *content = json_object_get(a, "content");
        int64_t id;
        if (!json_is_object(a) || json_id(json_object_get(a, "id"), &id) ||
            (size_t)id >= nv + na || !json_is_string(content)) {
            rc = sl_err_set(err, SL_EFORMAT, "%s: added_tokens[%zu]: needs an integer \"id\" "
                            "in [0, %zu) and a string \"content\"", in->added_name, k, nv + na);
            goto fail;
        }
        static const char *const opts[] = {"lstrip", "rstrip", "single_word"};
        for (int o = 0; o < 3; o++) {
            json_t *f = json_object_get(a, opts[o]);
            if (f && !json_is_false(f)) {
                rc = sl_err_set(err, SL_EFORMAT, "%s: added_tokens[%zu].%s: only false is "
                                "supported", in->added_name, k, opts[o]);
                goto fail;
            }
        }
        size_t clen = json_string_length(content);
        if (clen == 0 || clen > SL_TOKENIZER_MAX_TOKEN) {
            rc = sl_err_set(err, SL_EFORMAT, "%s: added_tokens[%zu].content: length %zu not in "
                            "[1, %u]", in->added_name, k, clen, SL_TOKENIZER_MAX_TOKEN);
            goto fail;
        }
        json_t *v = json_object_getn(in->vocab, json_string_value(content), clen);
        int64_t vid;
        if (v && (json_id(v, &vid) || vid != id)) {
            rc = sl_err_set(err, SL_EFORMAT, "%s: added_tokens[%zu]: \"%.64s\" has id %lld but "
                            "the vocabulary gives it another", in->added_name, k,
                            json_string_value(content), (long long)id);
            goto fail;
        }
        if (!v) {
            if (slot[id]) {
                rc = sl_err_set(err, SL_EFORMAT, "%s: added_tokens[%zu]: id %lld is already "
                                "taken", in->added_name, k, (long long)id);
                goto fail;
            }
            n_ids++;
            if ((size_t)id > max_id)
                max_id = (size_t)id;
        }
        slot[id] = 2;
        total += clen;
    }
    if (n_ids == 0 || max_id + 1 != n_ids) {
        rc = sl_err_set(err, SL_EFORMAT, "%s: ids are not dense: %zu tokens but the largest id "
                        "is %zu", in->vocab_name, n_ids, max_id);
        goto fail;
    }
    t->n_vocab = (uint32_t)n_ids;
    t->tok_off = calloc(n_ids + 1, sizeof *t->tok_off);
    t->tok_bytes = malloc(total + 1);
    t->special = calloc(n_ids, 1);
    t->added = calloc(na + 1, sizeof *t->added);
    scratch = malloc(2 * SL_TOKENIZER_MAX_TOKEN + 8);
    if (!t->tok_off || !t->tok_bytes || !t->special || !t->added || !scratch) {
        rc = sl_err_set(err, SL_ENOMEM, "%s: out of memory", in->vocab_name);
        goto fail;
    }
    /* Pass 2: token bytes. Lengths first (by id), then the bytes. */
    uint32_t *len = t->tok_off + 1; /* len[id], turned into offsets below */
    json_object_foreach(in->vocab, key, val) {
        int64_t id = json_integer_value(val);
        if (slot[id] == 1)
            len[id] = (uint32_t)unspell(key, strlen(key), scratch);
    }
    for (size_t k = 0; k < na; k++) {
        json_t *a = json_array_get(in->added, k);
        len[json_integer_value(json_object_get(a, "id"))] =
            (uint32_t)json_string_length(json_object_get(a, "content"));
    }
    for (size_t id = 0; id < n_ids; id++) {
        if (len[id] > SL_TOKENIZER_MAX_TOKEN) {
            rc = sl_err_set(err, SL_ELIMIT, "%s: token id %zu is longer than %u bytes",
                            in->vocab_name, id, SL_TOKENIZER_MAX_TOKEN);
            goto fail;
        }
        t->tok_off[id + 1] += t->tok_off[id];
    }
    json_object_foreach(in->vocab, key, val) {
        int64_t id = json_integer_value(val);
        if (slot[id] == 1)
            unspell(key, strlen(key), t->tok_bytes + t->tok_off[id]);
    }
    t->eot = -1;
    for (size_t k = 0; k < na; k++) {
        json_t *a = json_array_get(in->added, k);
        json_t *content = json_object_get(a, "content");
        int32_t id = (int32_t)json_integer_value(json_object_get(a, "id"));
        memcpy(t->tok_bytes + t->tok_off[id], json_string_value(content),
               json_string_length(content));
        t->special[id] = 1;
        t->added[t->n_added++] = (added_tok){id, t->tok_off[id + 1] - t->tok_off[id],
                                             t->tok_bytes + t->tok_off[id]};
    }
    /* <|endoftext|>: an added token, or (vocab.json files) a vocabulary entry
     * that the reference tokenizer treats as special. */
    json_t *ev = json_object_get(in->vocab, SL_TOKENIZER_EOT);
    if (ev) {
        t->eot = (int32_t)json_integer_value(ev);
        if (!t->special[t->eot]) {
            t->special[t->eot] = 1;
            uint32_t a = t->tok_off[t->eot];
            memcpy(t->tok_bytes + a, SL_TOKENIZER_EOT, strlen(SL_TOKENIZER_EOT));
            t->added[t->n_added++] = (added_tok){t->eot, t->tok_off[t->eot + 1] - a,
                                                 t->tok_bytes + a};
        }
    } else {
        for (uint32_t k = 0; k < t->n_added; k++)
            if (t->added[k].len == strlen(SL_TOKENIZER_EOT) &&
                memcmp(t->added[k].bytes, SL_TOKENIZER_EOT, t->added[k].len) == 0)
                t->eot = t->added[k].id;
    }
    if (t->eot < 0) {
        rc = sl_err_set(err, SL_EFORMAT, "%s: no \"%s\" token", in->vocab_name, SL_TOKENIZER_EOT);
        goto fail;
    }
    /* Every byte needs its byte-level token, or text could not be encoded. */
    for (unsigned b = 0; b < 256; b++) {
        char sp[4];
        size_t sl = sl_pretok_spell((const uint8_t[]){(uint8_t)b}, 1, sp);
        json_t *v = json_object_getn(in->vocab, sp, sl);
        if (!v) {
            rc = sl_err_set(err, SL_EFORMAT, "%s: no token for byte 0x%02x (\"%.*s\")",
                            in->vocab_name, b, (int)sl, sp);
            goto fail;
        }
        t->byte_id[b] = (int32_t)json_integer_value(v);
    }
    /* Merges. */
    if (in->n_merges >= SL_TOKENIZER_MAX_VOCAB) {
        rc = sl_err_set(err, SL_ELIMIT, "%s: %zu merges exceed the limit of %u", in->merges_name,
                        in->n_merges, SL_TOKENIZER_MAX_VOCAB);
        goto fail;
    }
    size_t cap = 16;
    while (cap < 2 * in->n_merges + 16)
        cap *= 2;
    t->pmask = cap - 1;
    t->pairs = malloc(cap * sizeof *t->pairs);
    t->merges = malloc((2 * in->n_merges + 1) * sizeof *t->merges);
    if (!t->pairs || !t->merges) {
        rc = sl_err_set(err, SL_ENOMEM, "%s: out of memory", in->merges_name);
        goto fail;
    }
    for (size_t i = 0; i < cap; i++)
        t->pairs[i].key = EMPTY_KEY;
    for (size_t i = 0; i < in->n_merges; i++) {
        const merge_src *m = &in->merges[i];
        json_t *va = json_object_getn(in->vocab, m->a, m->alen);
        json_t *vb = json_object_getn(in->vocab, m->b, m->blen);
        if (!va || !vb) {
            rc = sl_err_set(err, SL_EFORMAT, "%s: merge %zu (\"%.*s %.*s\"): \"%.*s\" is not in "
                            "the vocabulary", in->merges_name, i, (int)(m->alen > 64 ? 64 : m->alen),
                            m->a, (int)(m->blen > 64 ? 64 : m->blen), m->b,
                            (int)((va ? m->blen : m->alen) > 64 ? 64 : (va ? m->blen : m->alen)),
                            va ? m->b : m->a);
            goto fail;
        }
        if (m->alen + m->blen > 2 * SL_TOKENIZER_MAX_TOKEN) {
            rc = sl_err_set(err, SL_ELIMIT, "%s: merge %zu is too long", in->merges_name, i);
            goto fail;
        }
        memcpy(scratch, m->a, m->alen);
        memcpy(scratch + m->alen, m->b, m->blen);
        json_t *vn = json_object_getn(in->vocab, (const char *)scratch, m->alen + m->blen);
        if (!vn) {
            rc = sl_err_set(err, SL_EFORMAT, "%s: merge %zu (\"%.*s %.*s\"): the merged token "
                            "is not in the vocabulary", in->merges_name, i,
                            (int)(m->alen > 64 ? 64 : m->alen), m->a,
                            (int)(m->blen > 64 ? 64 : m->blen), m->b);
            goto fail;
        }
        int32_t a = (int32_t)json_integer_value(va), b = (int32_t)json_integer_value(vb);
        t->merges[2 * i] = a;
        t->merges[2 * i + 1] = b;
        pair_put(t, a, b, (uint32_t)i, (int32_t)json_integer_value(vn));
    }
    t->n_merges = (uint32_t)in->n_merges;
    if ((rc = sl_pretok_create(&t->pre, err)) != 0)
        goto fail;
    if (sodium_init() < 0) {
        rc = sl_err_set(err, SL_ECRYPTO, "tokenizer: libsodium failed to initialise");
        goto fail;
    }
    compute_hash(t);
    free(scratch);
    free(slot);
    *out = t;
    return 0;
fail:
    free(scratch);
    free(slot);
    sl_tokenizer_free(t);
    return rc;
}

static json_t *parse_json(const void *buf, size_t n, const char *name, sl_err *err)
{
    json_error_t je;
    json_t *j = json_loadb(buf, n, JSON_REJECT_DUPLICATES, &je);
    if (!j)
        sl_err_set(err, SL_EFORMAT, "%s: JSON error at line %d column %d: %s", name, je.line,
                   je.column, je.text);
    return j;
}

/* Splits "a b" on its single space, as Hugging Face does (a line with any
 * other number of spaces is an error). */
static int split_merge(const char *s, size_t n, merge_src *m)
{
    const char *sp = memchr(s, ' ', n);
    if (!sp || sp == s || sp == s + n - 1 || memchr(sp + 1, ' ', (size_t)(s + n - sp - 1)))
        return -1;
    *m = (merge_src){s, sp + 1, (size_t)(sp - s), (size_t)(s + n - sp - 1)};
    return 0;
}

static int get_false(json_t *obj, const char *field, int dflt)
{
    json_t *v = json_object_get(obj, field);
    if (!v || json_is_null(v))
        return dflt;
    return json_is_false(v) ? 0 : 1;
}

static int empty_string_or_null(json_t *obj, const char *field)
{
    json_t *v = json_object_get(obj, field);
    return !v || json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0);
}

static int type_is(json_t *obj, const char *type)
{
    json_t *v = json_object_get(obj, "type");
    return json_is_string(v) && strcmp(json_string_value(v), type) == 0;
}

int sl_tokenizer_from_json(const void *buf, size_t n, const char *name, sl_tokenizer **out,
                           sl_err *err)
{
    int rc = 0;
    merge_src *ms = NULL;
    char vname[300], mname[300], aname[300];
    snprintf(vname, sizeof vname, "%s: model.vocab", name);
    snprintf(mname, sizeof mname, "%s: model.merges", name);
    snprintf(aname, sizeof aname, "%s", name);
    if (n > SL_TOKENIZER_MAX_FILE)
        return sl_err_set(err, SL_ELIMIT, "%s: %zu bytes exceed the limit of %u", name, n,
                          SL_TOKENIZER_MAX_FILE);
    json_t *root = parse_json(buf, n, name, err);
    if (!root)
        return SL_EFORMAT;
    json_t *model = json_object_get(root, "model");
    json_t *pre = json_object_get(root, "pre_tokenizer");
    json_t *norm = json_object_get(root, "normalizer");
    json_t *dec = json_object_get(root, "decoder");
    const char *bad = NULL;
    if (!json_is_object(root))
        bad = "the top level is not an object";
    else if (!json_is_object(model))
        bad = "model: missing or not an object";
    else if (json_object_get(model, "type") && !type_is(model, "BPE"))
        bad = "model.type: only \"BPE\" is supported";
    else if (get_false(model, "byte_fallback", 0) || get_false(model, "ignore_merges", 0))
        bad = "model.byte_fallback / model.ignore_merges: only false is supported";
    else if (!empty_string_or_null(model, "continuing_subword_prefix") ||
             !empty_string_or_null(model, "end_of_word_suffix"))
        bad = "model.continuing_subword_prefix / end_of_word_suffix: must be empty";
    else if (json_object_get(model, "dropout") && !json_is_null(json_object_get(model, "dropout")))
        bad = "model.dropout: only null is supported";
    else if (!json_is_object(pre) || !type_is(pre, "ByteLevel"))
        bad = "pre_tokenizer: must be {\"type\": \"ByteLevel\", ...}";
    else if (get_false(pre, "add_prefix_space", 1))
        bad = "pre_tokenizer.add_prefix_space: only false is supported (GPT-2)";
    else if (json_object_get(pre, "use_regex") && !json_is_true(json_object_get(pre, "use_regex")))
        bad = "pre_tokenizer.use_regex: only true is supported";
    else if (norm && !json_is_null(norm))
        bad = "normalizer: only null is supported (GPT-2 has none)";
    else if (dec && !json_is_null(dec) && !type_is(dec, "ByteLevel"))
        bad = "decoder: only ByteLevel (or null) is supported";
    if (bad) {
        rc = sl_err_set(err, SL_EFORMAT, "%s: %s", name, bad);
        goto out;
    }
    json_t *merges = json_object_get(model, "merges");
    if (!json_is_array(merges)) {
        rc = sl_err_set(err, SL_EFORMAT, "%s: model.merges: missing or not an array", name);
        goto out;
    }
    size_t nm = json_array_size(merges);
    ms = malloc((nm + 1) * sizeof *ms);
    if (!ms) {
        rc = sl_err_set(err, SL_ENOMEM, "%s: out of memory", name);
        goto out;
    }
    for (size_t i = 0; i < nm; i++) {
        json_t *m = json_array_get(merges, i);
        int ok = 0;
        if (json_is_string(m)) {
            ok = split_merge(json_string_value(m), json_string_length(m), &ms[i]) == 0;
        } else if (json_is_array(m) && json_array_size(m) == 2 &&
                   json_is_string(json_array_get(m, 0)) && json_is_string(json_array_get(m, 1))) {
            json_t *a = json_array_get(m, 0), *b = json_array_get(m, 1);
            ms[i] = (merge_src){json_string_value(a), json_string_value(b), json_string_length(a),
                                json_string_length(b)};
            ok = ms[i].alen && ms[i].blen;
        }
        if (!ok) {
            rc = sl_err_set(err, SL_EFORMAT, "%s: model.merges[%zu]: not \"left right\" or "
                            "[\"left\", \"right\"]", name, i);
            goto out;
        }
    }
    json_t *added = json_object_get(root, "added_tokens");
    if (added && json_is_null(added))
        added = NULL;
    build_in in = {vname, mname, aname, json_object_get(model, "vocab"), ms, nm, added};
    rc = build(&in, out, err);
out:
    free(ms);
    json_decref(root);
    return rc;
}

int sl_tokenizer_from_files(const void *vocab_json, size_t vn, const void *merges_txt, size_t mn,
                            const char *vocab_name, const char *merges_name, sl_tokenizer **out,
                            sl_err *err)
{
    if (vn > SL_TOKENIZER_MAX_FILE || mn > SL_TOKENIZER_MAX_FILE)
        return sl_err_set(err, SL_ELIMIT, "%s: file exceeds the limit of %u bytes",
                          vn > SL_TOKENIZER_MAX_FILE ? vocab_name : merges_name,
                          SL_TOKENIZER_MAX_FILE);
    int rc = 0;
    merge_src *ms = NULL;
    json_t *vocab = parse_json(vocab_json, vn, vocab_name, err);
    if (!vocab)
        return SL_EFORMAT;
    /* Lines as Rust's BufRead::lines() gives them ("\n" or "\r\n" ends a
     * line; no empty last line); "#version" lines are skipped. */
    const char *s = merges_txt;
    size_t nl = 0;
    for (size_t i = 0; i < mn; i++)
        nl += s[i] == '\n';
    ms = malloc((nl + 2) * sizeof *ms);
    if (!ms) {
        rc = sl_err_set(err, SL_ENOMEM, "%s: out of memory", merges_name);
        goto out;
    }
    size_t nm = 0, line = 0;
    for (size_t at = 0; at < mn;) {
        const char *e = memchr(s + at, '\n', mn - at);
        size_t end = e ? (size_t)(e - s) : mn, len = end - at;
        line++;
        if (len && s[at + len - 1] == '\r')
            len--;
        if (!(len >= 8 && memcmp(s + at, "#version", 8) == 0)) {
            if (split_merge(s + at, len, &ms[nm]) != 0) {
                rc = sl_err_set(err, SL_EFORMAT, "%s: line %zu: not \"left right\": \"%.*s\"",
                                merges_name, line, (int)(len > 64 ? 64 : len), s + at);
                goto out;
            }
            nm++;
        }
        at = end + 1;
    }
    build_in in = {vocab_name, merges_name, vocab_name, vocab, ms, nm, NULL};
    rc = build(&in, out, err);
out:
    free(ms);
    json_decref(vocab);
    return rc;
}

int sl_tokenizer_load(const char *dir, sl_tokenizer **out, sl_err *err)
{
    char p1[4096], p2[4096];
    uint8_t *b1 = NULL, *b2 = NULL;
    size_t n1 = 0, n2 = 0;
    int rc;
    if ((rc = sl_fs_join(p1, sizeof p1, dir, "tokenizer.json", err)) != 0)
        return rc;
    if (sl_fs_exists(p1)) {
        if ((rc = sl_fs_read_all(p1, SL_TOKENIZER_MAX_FILE, &b1, &n1, err)) == 0)
            rc = sl_tokenizer_from_json(b1, n1, p1, out, err);
        free(b1);
        return rc;
    }
    if ((rc = sl_fs_join(p1, sizeof p1, dir, "vocab.json", err)) != 0 ||
        (rc = sl_fs_join(p2, sizeof p2, dir, "merges.txt", err)) != 0)
        return rc;
    if (!sl_fs_exists(p1) && !sl_fs_exists(p2))
        return sl_err_set(err, SL_ENOTFOUND, "%s: no tokenizer.json, nor vocab.json and "
                          "merges.txt", dir);
    if ((rc = sl_fs_read_all(p1, SL_TOKENIZER_MAX_FILE, &b1, &n1, err)) == 0 &&
        (rc = sl_fs_read_all(p2, SL_TOKENIZER_MAX_FILE, &b2, &n2, err)) == 0)
        rc = sl_tokenizer_from_files(b1, n1, b2, n2, p1, p2, out, err);
    free(b2);
    free(b1);
    return rc;
}
