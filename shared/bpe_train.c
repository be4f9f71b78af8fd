#include "shared/bpe_train.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shared/fsutil.h"
#include "shared/pretok.h"
#include "shared/tokenizer.h"

#define NONE UINT32_MAX
#define EMPTY_KEY UINT64_MAX

typedef struct pair_rec {
    int64_t count;   /* occurrences, weighted by piece counts */
    uint32_t *words; /* pieces that contain (or once contained) the pair */
    uint32_t n, cap;
    uint32_t touched; /* step that last raised count, for the heap push */
} pair_rec;

typedef struct heap_ent {
    int64_t count;
    uint64_t key;
} heap_ent;

struct sl_bpe_trainer {
    sl_pretok *pre;
    /* Distinct pieces: bytes in arena, hashed by wtab (indices, NONE free). */
    uint8_t *arena;
    size_t arena_len, arena_cap;
    size_t *woff;
    uint32_t *wlen;
    uint64_t *wcount;
    size_t nw, wcap;
    uint32_t *wtab;
    size_t wmask;
    /* Result. */
    uint32_t n_tokens;  /* merged vocabulary, <|endoftext|> excluded */
    uint32_t *tok_off;  /* n_tokens + 1 offsets */
    uint8_t *tok_bytes;
    int32_t *merges;    /* 2 per merge */
    uint32_t n_merges;
    int trained;
};

static uint64_t hash_bytes(const uint8_t *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 0x100000001b3ull;
    return h ^ (h >> 29);
}

int sl_bpe_train_create(sl_bpe_trainer **out, sl_err *err)
{
    sl_bpe_trainer *t = calloc(1, sizeof *t);
    if (!t)
        return sl_err_set(err, SL_ENOMEM, "BPE trainer: out of memory");
    int rc = sl_pretok_create(&t->pre, err);
    if (rc == 0) {
        t->wmask = (1u << 16) - 1;
        t->wtab = malloc((t->wmask + 1) * sizeof *t->wtab);
        if (!t->wtab)
            rc = sl_err_set(err, SL_ENOMEM, "BPE trainer: out of memory");
        else
            memset(t->wtab, 0xFF, (t->wmask + 1) * sizeof *t->wtab);
    }
    if (rc) {
        sl_bpe_train_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

void sl_bpe_train_free(sl_bpe_trainer *t)
{
    if (!t)
        return;
    sl_pretok_free(t->pre);
    free(t->arena);
    free(t->woff);
    free(t->wlen);
    free(t->wcount);
    free(t->wtab);
    free(t->tok_off);
    free(t->tok_bytes);
    free(t->merges);
    free(t);
}

size_t sl_bpe_train_pieces(const sl_bpe_trainer *t) { return t->nw; }
uint32_t sl_bpe_train_vocab_size(const sl_bpe_trainer *t)
{
    return t->trained ? t->n_tokens + 1 : 0;
}

/* ---- counting pieces ---- */

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 1024;
    while (c < need)
        c *= 2;
    if (c > SIZE_MAX / elem)
        return -1;
    void *q = realloc(*p, c * elem);
    if (!q)
        return -1;
    *p = q;
    *cap = c;
    return 0;
}

static int wtab_grow(sl_bpe_trainer *t)
{
    size_t cap = 2 * (t->wmask + 1);
    uint32_t *tab = malloc(cap * sizeof *tab);
    if (!tab)
        return -1;
    memset(tab, 0xFF, cap * sizeof *tab);
    for (size_t w = 0; w < t->nw; w++) {
        size_t i = hash_bytes(t->arena + t->woff[w], t->wlen[w]) & (cap - 1);
        while (tab[i] != NONE)
            i = (i + 1) & (cap - 1);
        tab[i] = (uint32_t)w;
    }
    free(t->wtab);
    t->wtab = tab;
    t->wmask = cap - 1;
    return 0;
}

typedef struct feed_ctx {
    sl_bpe_trainer *t;
    sl_err *err;
} feed_ctx;

static int add_piece(void *vctx, const uint8_t *s, size_t n)
{
    feed_ctx *c = vctx;
    sl_bpe_trainer *t = c->t;
    if (n > SL_BPE_TRAIN_MAX_PIECE)
        return 0;
    size_t i = hash_bytes(s, n) & t->wmask;
    for (; t->wtab[i] != NONE; i = (i + 1) & t->wmask) {
        uint32_t w = t->wtab[i];
        if (t->wlen[w] == n && memcmp(t->arena + t->woff[w], s, n) == 0) {
            t->wcount[w]++;
            return 0;
        }
    }
    if (t->nw >= UINT32_MAX - 1)
        return sl_err_set(c->err, SL_ELIMIT, "BPE trainer: more than 2^32 distinct pieces");
    if (t->nw == t->wcap) {
        size_t cap = t->wcap ? 2 * t->wcap : 4096;
        size_t *o = realloc(t->woff, cap * sizeof *o);
        if (o)
            t->woff = o;
        uint32_t *l = o ? realloc(t->wlen, cap * sizeof *l) : NULL;
        if (l)
            t->wlen = l;
        uint64_t *k = l ? realloc(t->wcount, cap * sizeof *k) : NULL;
        if (!k)
            return sl_err_set(c->err, SL_ENOMEM, "BPE trainer: out of memory after %zu pieces",
                              t->nw);
        t->wcount = k;
        t->wcap = cap;
    }
    if (grow((void **)&t->arena, &t->arena_cap, t->arena_len + n, 1))
        return sl_err_set(c->err, SL_ENOMEM, "BPE trainer: out of memory after %zu pieces",
                          t->nw);
    memcpy(t->arena + t->arena_len, s, n);
    t->woff[t->nw] = t->arena_len;
    t->wlen[t->nw] = (uint32_t)n;
    t->wcount[t->nw] = 1;
    t->arena_len += n;
    t->wtab[i] = (uint32_t)t->nw++;
    if (2 * t->nw > t->wmask && wtab_grow(t))
        return sl_err_set(c->err, SL_ENOMEM, "BPE trainer: out of memory after %zu pieces",
                          t->nw);
    return 0;
}

int sl_bpe_train_feed(sl_bpe_trainer *t, const void *text, size_t n, sl_err *err)
{
    if (t->trained)
        return sl_err_set(err, SL_ESTATE, "BPE trainer: feed after run");
    const uint8_t *s = text;
    const size_t el = strlen(SL_TOKENIZER_EOT);
    feed_ctx c = {t, err};
    while (n) {
        const uint8_t *e = memmem(s, n, SL_TOKENIZER_EOT, el);
        size_t seg = e ? (size_t)(e - s) : n;
        int rc = seg ? sl_pretok_each(t->pre, s, seg, add_piece, &c, err) : 0;
        if (rc)
            return rc;
        if (!e)
            break;
        s += seg + el;
        n -= seg + el;
    }
    return 0;
}

int sl_bpe_train_feed_file(sl_bpe_trainer *t, const char *path, sl_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? sl_err_set(err, SL_ENOTFOUND, "%s: no such file", path)
                               : sl_err_errno(err, "%s: open", path);
    uint8_t *buf = malloc(SL_BPE_TRAIN_CHUNK);
    int rc = 0;
    if (!buf) {
        rc = sl_err_set(err, SL_ENOMEM, "%s: no memory for a read buffer", path);
        goto out;
    }
    size_t have = 0;
    int eof = 0;
    while (!eof || have) {
        while (!eof && have < SL_BPE_TRAIN_CHUNK) {
            ssize_t r = read(fd, buf + have, SL_BPE_TRAIN_CHUNK - have);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0) {
                rc = sl_err_errno(err, "%s: read", path);
                goto out;
            }
            if (r == 0)
                eof = 1;
            have += (size_t)r;
        }
        /* Cut where pre-tokenisation gives the same pieces (never inside
         * <|endoftext|>, which has no space); a chunk with no such place is
         * taken whole. */
        size_t cut = eof ? have : sl_pretok_safe_cut(buf, have);
        if (cut == 0)
            cut = have;
        if ((rc = sl_bpe_train_feed(t, buf, cut, err)) != 0) {
            sl_err_prefix(err, "%s", path);
            goto out;
        }
        memmove(buf, buf + cut, have - cut);
        have -= cut;
    }
out:
    free(buf);
    close(fd);
    return rc;
}

/* ---- training ---- */

typedef struct run_state {
    pair_rec *recs;
    size_t nrec, rcap;
    uint64_t *pkey;  /* open addressing: key -> recs index in pidx */
    uint32_t *pidx;
    size_t pmask, npairs;
    heap_ent *heap;
    size_t hn, hcap;
    uint64_t *touched;
    size_t ntouched, tcap;
} run_state;

static uint64_t pkey_of(int32_t a, int32_t b) { return (uint64_t)(uint32_t)a << 32 | (uint32_t)b; }

static size_t pslot(uint64_t key, size_t mask)
{
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 23) & mask;
}

static int pairs_grow(run_state *st)
{
    size_t cap = st->pmask ? 2 * (st->pmask + 1) : (1u << 16);
    uint64_t *k = malloc(cap * sizeof *k);
    uint32_t *v = malloc(cap * sizeof *v);
    if (!k || !v) {
        free(k);
        free(v);
        return -1;
    }
    memset(k, 0xFF, cap * sizeof *k);
    for (size_t i = 0; st->pmask && i <= st->pmask; i++) {
        if (st->pkey[i] == EMPTY_KEY)
            continue;
        size_t j = pslot(st->pkey[i], cap - 1);
        while (k[j] != EMPTY_KEY)
            j = (j + 1) & (cap - 1);
        k[j] = st->pkey[i];
        v[j] = st->pidx[i];
    }
    free(st->pkey);
    free(st->pidx);
    st->pkey = k;
    st->pidx = v;
    st->pmask = cap - 1;
    return 0;
}

/* Record of a pair, created on first use; NULL when out of memory. */
static pair_rec *pair_get(run_state *st, uint64_t key, int create)
{
    size_t i = pslot(key, st->pmask);
    for (; st->pkey[i] != EMPTY_KEY; i = (i + 1) & st->pmask)
        if (st->pkey[i] == key)
            return &st->recs[st->pidx[i]];
    if (!create)
        return NULL;
    if (grow((void **)&st->recs, &st->rcap, st->nrec + 1, sizeof *st->recs))
        return NULL;
    st->pkey[i] = key;
    st->pidx[i] = (uint32_t)st->nrec;
    pair_rec *r = &st->recs[st->nrec++];
    memset(r, 0, sizeof *r);
    r->touched = NONE;
    if (2 * ++st->npairs > st->pmask && pairs_grow(st))
        return NULL;
    return pair_get(st, key, 0);
}

static int rec_add_word(pair_rec *r, uint32_t w)
{
    if (r->n && r->words[r->n - 1] == w)
        return 0;
    if (r->n == r->cap) {
        uint32_t cap = r->cap ? 2 * r->cap : 4;
        uint32_t *p = realloc(r->words, cap * sizeof *p);
        if (!p)
            return -1;
        r->words = p;
        r->cap = cap;
    }
    r->words[r->n++] = w;
    return 0;
}

static int heap_before(const heap_ent *a, const heap_ent *b)
{
    return a->count > b->count || (a->count == b->count && a->key < b->key);
}

static int heap_push(run_state *st, int64_t count, uint64_t key)
{
    if (grow((void **)&st->heap, &st->hcap, st->hn + 1, sizeof *st->heap))
        return -1;
    heap_ent v = {count, key};
    size_t i = st->hn++;
    while (i > 0 && heap_before(&v, &st->heap[(i - 1) / 2])) {
        st->heap[i] = st->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    st->heap[i] = v;
    return 0;
}

static heap_ent heap_pop(run_state *st)
{
    heap_ent top = st->heap[0], v = st->heap[--st->hn];
    size_t i = 0, n = st->hn;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && heap_before(&st->heap[c + 1], &st->heap[c]))
            c++;
        if (!heap_before(&st->heap[c], &v))
            break;
        st->heap[i] = st->heap[c];
        i = c;
    }
    if (n)
        st->heap[i] = v;
    return top;
}

static void run_free(run_state *st)
{
    for (size_t i = 0; i < st->nrec; i++)
        free(st->recs[i].words);
    free(st->recs);
    free(st->pkey);
    free(st->pidx);
    free(st->heap);
    free(st->touched);
}

/* Token ids by their bytes, to reuse the id of a merge that spells an
 * existing token. */
typedef struct tok_index {
    uint32_t *tab;
    size_t mask;
} tok_index;

static uint32_t tok_find(const tok_index *x, const uint8_t *bytes, const uint32_t *off,
                         const uint8_t *s, size_t n, size_t *slot)
{
    size_t i = hash_bytes(s, n) & x->mask;
    for (; x->tab[i] != NONE; i = (i + 1) & x->mask) {
        uint32_t id = x->tab[i];
        if (off[id + 1] - off[id] == n && memcmp(bytes + off[id], s, n) == 0)
            return id;
    }
    *slot = i;
    return NONE;
}

int sl_bpe_train_run(sl_bpe_trainer *t, uint32_t vocab_size, uint64_t min_count, sl_err *err)
{
    if (t->trained)
        return sl_err_set(err, SL_ESTATE, "BPE trainer: already trained");
    if (vocab_size < 257 || vocab_size > SL_BPE_TRAIN_MAX_VOCAB)
        return sl_err_set(err, SL_EINVAL, "BPE trainer: vocabulary size %u not in [257, %u]",
                          vocab_size, SL_BPE_TRAIN_MAX_VOCAB);
    if (min_count < 1)
        min_count = 1;
    int rc = 0;
    run_state st;
    memset(&st, 0, sizeof st);
    tok_index tx = {NULL, 0};
    uint32_t target = vocab_size - 1; /* the last id is <|endoftext|> */
    size_t nsym = 0;
    for (size_t w = 0; w < t->nw; w++)
        nsym += t->wlen[w];
    int32_t *sym = malloc((nsym + 1) * sizeof *sym);
    size_t *wstart = malloc((t->nw + 1) * sizeof *wstart);
    uint32_t *stamp = malloc((t->nw + 1) * sizeof *stamp);
    t->tok_off = calloc((size_t)target + 2, sizeof *t->tok_off);
    size_t tcap = 1u << 16;
    t->tok_bytes = malloc(tcap);
    t->merges = malloc(2 * (size_t)target * sizeof *t->merges);
    tx.mask = 1;
    while (tx.mask < 2 * (size_t)target)
        tx.mask = 2 * tx.mask + 1;
    tx.tab = malloc((tx.mask + 1) * sizeof *tx.tab);
    if (!sym || !wstart || !stamp || !t->tok_off || !t->tok_bytes || !t->merges || !tx.tab ||
        pairs_grow(&st)) {
        rc = sl_err_set(err, SL_ENOMEM, "BPE trainer: out of memory for %zu symbols", nsym);
        goto out;
    }
    memset(tx.tab, 0xFF, (tx.mask + 1) * sizeof *tx.tab);
    /* Byte tokens in GPT-2's order. */
    uint8_t order[256];
    int32_t byte_id[256];
    sl_pretok_byte_order(order);
    for (uint32_t i = 0; i < 256; i++) {
        byte_id[order[i]] = (int32_t)i;
        t->tok_bytes[i] = order[i];
        t->tok_off[i + 1] = i + 1;
        size_t slot;
        (void)tok_find(&tx, t->tok_bytes, t->tok_off, &order[i], 1, &slot);
        tx.tab[slot] = i;
    }
    uint32_t ntok = 256;
    /* Symbols and initial pair counts. */
    size_t at = 0;
    for (size_t w = 0; w < t->nw; w++) {
        wstart[w] = at;
        stamp[w] = NONE;
        const uint8_t *s = t->arena + t->woff[w];
        for (uint32_t i = 0; i < t->wlen[w]; i++)
            sym[at + i] = byte_id[s[i]];
        for (uint32_t i = 0; i + 1 < t->wlen[w]; i++) {
            pair_rec *r = pair_get(&st, pkey_of(sym[at + i], sym[at + i + 1]), 1);
            if (!r || rec_add_word(r, (uint32_t)w)) {
                rc = sl_err_set(err, SL_ENOMEM, "BPE trainer: out of memory counting pairs");
                goto out;
            }
            r->count += (int64_t)t->wcount[w];
        }
        at += t->wlen[w];
    }
    for (size_t i = 0; i <= st.pmask; i++)
        if (st.pkey[i] != EMPTY_KEY && heap_push(&st, st.recs[st.pidx[i]].count, st.pkey[i])) {
            rc = sl_err_set(err, SL_ENOMEM, "BPE trainer: out of memory for the pair heap");
            goto out;
        }
    uint32_t step = 0;
    while (ntok < target && st.hn) {
        heap_ent top = heap_pop(&st);
        pair_rec *r = pair_get(&st, top.key, 0);
        if (r->count != top.count) { /* stale: counts only fell since */
            if (r->count > 0 && heap_push(&st, r->count, top.key)) {
                rc = sl_err_set(err, SL_ENOMEM, "BPE trainer: out of memory for the pair heap");
                goto out;
            }
            continue;
        }
        if (top.count < (int64_t)min_count)
            break;
        int32_t a = (int32_t)(top.key >> 32), b = (int32_t)(uint32_t)top.key;
        /* The merged token: a new id, or the id of a token it already spells. */
        uint32_t la = t->tok_off[a + 1] - t->tok_off[a], lb = t->tok_off[b + 1] - t->tok_off[b];
        if (grow((void **)&t->tok_bytes, &tcap, (size_t)t->tok_off[ntok] + la + lb, 1)) {
            rc = sl_err_set(err, SL_ENOMEM, "BPE trainer: out of memory at merge %u",
                            t->n_merges);
            goto out;
        }
        uint8_t *dst = t->tok_bytes + t->tok_off[ntok];
        memcpy(dst, t->tok_bytes + t->tok_off[a], la);
        memcpy(dst + la, t->tok_bytes + t->tok_off[b], lb);
        size_t slot;
        uint32_t nid = tok_find(&tx, t->tok_bytes, t->tok_off, dst, la + lb, &slot);
        if (nid == NONE) {
            nid = ntok++;
            t->tok_off[ntok] = t->tok_off[nid] + la + lb;
            tx.tab[slot] = nid;
        }
        t->merges[2 * t->n_merges] = a;
        t->merges[2 * t->n_merges + 1] = b;
        t->n_merges++;
        /* Rewrite every piece that holds (a, b). */
        uint32_t *list = r->words, nlist = r->n;
        r->words = NULL;
        r->n = r->cap = 0;
        st.ntouched = 0;
        for (uint32_t k = 0; k < nlist && rc == 0; k++) {
            uint32_t w = list[k];
            if (stamp[w] == step)
                continue;
            stamp[w] = step;
            int32_t *s = sym + wstart[w];
            uint32_t m = t->wlen[w];
            int64_t c = (int64_t)t->wcount[w];
            for (uint32_t i = 0; i + 1 < m; i++)
                pair_get(&st, pkey_of(s[i], s[i + 1]), 0)->count -= c;
            uint32_t j = 0;
            for (uint32_t i = 0; i < m;) {
                if (i + 1 < m && s[i] == a && s[i + 1] == b) {
                    s[j++] = (int32_t)nid;
                    i += 2;
                } else {
                    s[j++] = s[i++];
                }
            }
            t->wlen[w] = m = j;
            for (uint32_t i = 0; i + 1 < m; i++) {
                uint64_t key = pkey_of(s[i], s[i + 1]);
                int fresh = s[i] == (int32_t)nid || s[i + 1] == (int32_t)nid;
                pair_rec *p = pair_get(&st, key, fresh);
                if (!p || (fresh && rec_add_word(p, w))) {
                    rc = sl_err_set(err, SL_ENOMEM, "BPE trainer: out of memory at merge %u",
                                    t->n_merges);
                    break;
                }
                p->count += c;
                if (fresh && p->touched != step) {
                    if (grow((void **)&st.touched, &st.tcap, st.ntouched + 1,
                             sizeof *st.touched)) {
                        rc = sl_err_set(err, SL_ENOMEM, "BPE trainer: out of memory at merge %u",
                                        t->n_merges);
                        break;
                    }
                    st.touched[st.ntouched++] = key;
                    p->touched = step;
                }
            }
        }
        free(list);
        for (size_t k = 0; k < st.ntouched && rc == 0; k++) {
            pair_rec *p = pair_get(&st, st.touched[k], 0);
            if (p->count > 0 && heap_push(&st, p->count, st.touched[k]))
                rc = sl_err_set(err, SL_ENOMEM, "BPE trainer: out of memory for the pair heap");
        }
        if (rc)
            goto out;
        step++;
    }
    t->n_tokens = ntok;
    t->trained = 1;
out:
    if (rc) {
        free(t->tok_off);
        free(t->tok_bytes);
        free(t->merges);
        t->tok_off = NULL;
        t->tok_bytes = NULL;
        t->merges = NULL;
        t->n_merges = 0;
    }
    run_free(&st);
    free(tx.tab);
    free(stamp);
    free(wstart);
    free(sym);
    return rc;
}

/* ---- writing ---- */

static char *spell(const sl_bpe_trainer *t, uint32_t id, char *buf)
{
    size_t n = sl_pretok_spell(t->tok_bytes + t->tok_off[id], t->tok_off[id + 1] - t->tok_off[id],
                               buf);
    buf[n] = 0;
    return buf;
}

static int write_json(const char *dir, const char *name, json_t *j, size_t flags, sl_err *err)
{
    char path[4096];
    int rc = sl_fs_join(path, sizeof path, dir, name, err);
    if (rc)
        return rc;
    char *s = j ? json_dumps(j, flags) : NULL;
    if (!s)
        return sl_err_set(err, SL_ENOMEM, "%s: cannot serialise JSON", path);
    size_t n = strlen(s);
    s[n] = '\n'; /* json_dumps's NUL becomes the final newline */
    rc = sl_fs_write_atomic(path, s, n + 1, 0644, err);
    free(s);
    return rc;
}

int sl_bpe_train_write(const sl_bpe_trainer *t, const char *dir, sl_err *err)
{
    if (!t->trained)
        return sl_err_set(err, SL_ESTATE, "BPE trainer: write before run");
    int rc = sl_fs_mkdirs(dir, 0755, err);
    if (rc)
        return rc;
    char a[2 * SL_BPE_TRAIN_MAX_PIECE + 1], b[2 * SL_BPE_TRAIN_MAX_PIECE + 1];
    char line[4 * SL_BPE_TRAIN_MAX_PIECE + 4];
    json_t *vocab = json_object(), *merges = json_array(), *tok = NULL, *cfg = NULL;
    char *mtxt = NULL;
    size_t mlen = 0, mcap = 0;
    int oom = !vocab || !merges;
    for (uint32_t id = 0; id < t->n_tokens && !oom; id++)
        oom = json_object_set_new(vocab, spell(t, id, a), json_integer(id)) != 0;
    oom = oom || json_object_set_new(vocab, SL_TOKENIZER_EOT, json_integer(t->n_tokens)) != 0;
    static const char head[] = "#version: 0.2\n";
    if (!oom && grow((void **)&mtxt, &mcap, sizeof head, 1) == 0) {
        memcpy(mtxt, head, sizeof head - 1);
        mlen = sizeof head - 1;
    } else {
        oom = 1;
    }
    for (uint32_t i = 0; i < t->n_merges && !oom; i++) {
        int n = snprintf(line, sizeof line, "%s %s", spell(t, (uint32_t)t->merges[2 * i], a),
                         spell(t, (uint32_t)t->merges[2 * i + 1], b));
        oom = json_array_append_new(merges, json_stringn(line, (size_t)n)) != 0 ||
              grow((void **)&mtxt, &mcap, mlen + (size_t)n + 1, 1) != 0;
        if (!oom) {
            memcpy(mtxt + mlen, line, (size_t)n);
            mtxt[mlen + (size_t)n] = '\n';
            mlen += (size_t)n + 1;
        }
    }
    if (!oom) {
        tok = json_pack("{s:s, s:n, s:n, s:[{s:i, s:s, s:b, s:b, s:b, s:b, s:b}], s:n, "
                        "s:{s:s, s:b, s:b, s:b}, s:{s:s, s:b, s:b, s:b}, s:{s:s, s:b, s:b, s:b}, "
                        "s:{s:s, s:n, s:n, s:s, s:s, s:b, s:b, s:O, s:O}}",
                        "version", "1.0", "truncation", "padding", "added_tokens",
                        "id", (int)t->n_tokens, "content", SL_TOKENIZER_EOT, "single_word", 0,
                        "lstrip", 0, "rstrip", 0, "normalized", 1, "special", 1,
                        "normalizer",
                        "pre_tokenizer", "type", "ByteLevel", "add_prefix_space", 0,
                        "trim_offsets", 1, "use_regex", 1,
                        "post_processor", "type", "ByteLevel", "add_prefix_space", 1,
                        "trim_offsets", 0, "use_regex", 1,
                        "decoder", "type", "ByteLevel", "add_prefix_space", 1,
                        "trim_offsets", 1, "use_regex", 1,
                        "model", "type", "BPE", "dropout", "unk_token",
                        "continuing_subword_prefix", "", "end_of_word_suffix", "",
                        "fuse_unk", 0, "byte_fallback", 0, "vocab", vocab, "merges", merges);
        cfg = json_pack("{s:s, s:s, s:s, s:s, s:b, s:b}", "tokenizer_class", "GPT2Tokenizer",
                        "bos_token", SL_TOKENIZER_EOT, "eos_token", SL_TOKENIZER_EOT,
                        "unk_token", SL_TOKENIZER_EOT, "add_prefix_space", 0,
                        "add_bos_token", 0);
        oom = !tok || !cfg;
    }
    if (oom) {
        rc = sl_err_set(err, SL_ENOMEM, "%s: out of memory writing the tokenizer", dir);
        goto out;
    }
    char path[4096];
    if ((rc = write_json(dir, "vocab.json", vocab, JSON_COMPACT, err)) != 0 ||
        (rc = sl_fs_join(path, sizeof path, dir, "merges.txt", err)) != 0 ||
        (rc = sl_fs_write_atomic(path, mtxt, mlen, 0644, err)) != 0 ||
        (rc = write_json(dir, "tokenizer.json", tok, JSON_INDENT(2), err)) != 0 ||
        (rc = write_json(dir, "tokenizer_config.json", cfg, JSON_INDENT(2), err)) != 0)
        goto out;
out:
    free(mtxt);
    json_decref(cfg);
    json_decref(tok);
    json_decref(merges);
    json_decref(vocab);
    return rc;
}
