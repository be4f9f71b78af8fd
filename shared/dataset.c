#include "shared/dataset.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shared/fsutil.h"
#include "shared/pretok.h"
#include "shared/reader.h"
#include "shared/writer.h"

struct sl_dataset {
    uint8_t *map; /* the whole cache file, read-only */
    size_t map_len;
    sl_dataset_header h;
    int built;
    char cache[PATH_MAX];
};

void sl_dataset_opts_init(sl_dataset_opts *o)
{
    memset(o, 0, sizeof *o);
    o->val_per_million = SL_DATASET_VAL_DEFAULT;
}

/* ---- header ---- */

static void header_encode(const sl_dataset_header *h, uint8_t out[SL_DATASET_HEADER])
{
    sl_writer w;
    sl_writer_init(&w, SL_DATASET_HEADER);
    sl_writer_bytes(&w, SL_DATASET_MAGIC, 8);
    sl_writer_u32le(&w, SL_DATASET_VERSION);
    sl_writer_u32le(&w, h->width);
    sl_writer_u32le(&w, h->vocab_size);
    sl_writer_u32le(&w, h->eot);
    sl_writer_u32le(&w, h->val_per_million);
    sl_writer_u32le(&w, 0); /* reserved */
    sl_writer_bytes(&w, h->vocab_hash, 32);
    sl_writer_bytes(&w, h->source_key, 32);
    sl_writer_u64le(&w, h->n[0]);
    sl_writer_u64le(&w, h->n[1]);
    sl_writer_u64le(&w, h->docs[0]);
    sl_writer_u64le(&w, h->docs[1]);
    size_t len;
    uint8_t *b = sl_writer_take(&w, &len);
    memset(out, 0, SL_DATASET_HEADER);
    if (b)
        memcpy(out, b, len);
    free(b);
}

int sl_dataset_parse(const uint8_t *buf, size_t n, sl_dataset_header *out, sl_err *err)
{
    sl_reader r;
    sl_reader_init(&r, buf, n < SL_DATASET_HEADER ? n : SL_DATASET_HEADER);
    sl_dataset_header h;
    const uint8_t *magic = sl_reader_bytes(&r, 8);
    uint32_t version = sl_reader_u32le(&r);
    h.width = sl_reader_u32le(&r);
    h.vocab_size = sl_reader_u32le(&r);
    h.eot = sl_reader_u32le(&r);
    h.val_per_million = sl_reader_u32le(&r);
    uint32_t reserved = sl_reader_u32le(&r);
    sl_reader_copy(&r, h.vocab_hash, 32);
    sl_reader_copy(&r, h.source_key, 32);
    h.n[0] = sl_reader_u64le(&r);
    h.n[1] = sl_reader_u64le(&r);
    h.docs[0] = sl_reader_u64le(&r);
    h.docs[1] = sl_reader_u64le(&r);
    if (!sl_reader_ok(&r))
        return sl_err_set(err, SL_EFORMAT, "token cache: %zu bytes, shorter than its %u-byte "
                          "header", n, SL_DATASET_HEADER);
    if (memcmp(magic, SL_DATASET_MAGIC, 8) != 0)
        return sl_err_set(err, SL_EFORMAT, "token cache: bad magic (not \"%s\")",
                          SL_DATASET_MAGIC);
    if (version != SL_DATASET_VERSION)
        return sl_err_set(err, SL_EFORMAT, "token cache: version %u, expected %u", version,
                          SL_DATASET_VERSION);
    if (h.vocab_size == 0 || h.vocab_size > SL_TOKENIZER_MAX_VOCAB || h.eot >= h.vocab_size)
        return sl_err_set(err, SL_EFORMAT, "token cache: vocab_size %u / eot %u out of range",
                          h.vocab_size, h.eot);
    if (h.width != (h.vocab_size <= 65536 ? 2u : 4u))
        return sl_err_set(err, SL_EFORMAT, "token cache: width %u does not fit vocab_size %u",
                          h.width, h.vocab_size);
    if (h.val_per_million > 1000000 || reserved != 0)
        return sl_err_set(err, SL_EFORMAT, "token cache: val_per_million %u / reserved %u out "
                          "of range", h.val_per_million, reserved);
    uint64_t body = (uint64_t)(n - SL_DATASET_HEADER);
    if (h.n[0] > body / h.width || h.n[1] > body / h.width - h.n[0] ||
        (h.n[0] + h.n[1]) * h.width != body)
        return sl_err_set(err, SL_EFORMAT, "token cache: %llu + %llu tokens of %u bytes do not "
                          "match the %llu bytes after the header",
                          (unsigned long long)h.n[0], (unsigned long long)h.n[1], h.width,
                          (unsigned long long)body);
    if (h.docs[0] > h.n[0] || h.docs[1] > h.n[1])
        return sl_err_set(err, SL_EFORMAT, "token cache: more documents than tokens");
    const uint8_t *p = buf + SL_DATASET_HEADER;
    uint64_t total = h.n[0] + h.n[1];
    for (uint64_t i = 0; i < total; i++) {
        uint32_t id = h.width == 2 ? (uint32_t)(p[2 * i] | p[2 * i + 1] << 8)
                                   : (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 |
                                         (uint32_t)p[4 * i + 2] << 16 |
                                         (uint32_t)p[4 * i + 3] << 24;
        if (id >= h.vocab_size)
            return sl_err_set(err, SL_EFORMAT, "token cache: id %u at token %llu is outside "
                              "the vocabulary of %u", id, (unsigned long long)i, h.vocab_size);
    }
    *out = h;
    return 0;
}

/* ---- sources ---- */

typedef struct src_file {
    char *path; /* full path */
    const char *rel; /* into path: relative to the source root */
    int jsonl;
    uint64_t size;
} src_file;

typedef struct src_list {
    src_file *f;
    size_t n, cap;
} src_list;

static void src_free(src_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->f[i].path);
    free(l->f);
}

static int ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

static int src_add(src_list *l, const char *path, size_t root_len, const struct stat *st,
                   crypto_hash_sha256_state *key, sl_err *err)
{
    if (l->n >= SL_DATASET_MAX_FILES)
        return sl_err_set(err, SL_ELIMIT, "%s: more than %u files", path, SL_DATASET_MAX_FILES);
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        src_file *f = realloc(l->f, cap * sizeof *f);
        if (!f)
            return sl_err_set(err, SL_ENOMEM, "%s: out of memory listing files", path);
        l->f = f;
        l->cap = cap;
    }
    char *p = strdup(path);
    if (!p)
        return sl_err_set(err, SL_ENOMEM, "%s: out of memory listing files", path);
    const char *rel = p + (root_len < strlen(p) ? root_len : 0);
    while (*rel == '/')
        rel++;
    l->f[l->n++] = (src_file){p, rel, ends_with(p, ".jsonl"), (uint64_t)st->st_size};
    /* The key: relative path, size and modification time of each file. */
    uint8_t meta[24];
    uint64_t v[3] = {(uint64_t)st->st_size, (uint64_t)st->st_mtim.tv_sec,
                     (uint64_t)st->st_mtim.tv_nsec};
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 8; k++)
            meta[8 * i + k] = (uint8_t)(v[i] >> (8 * k));
    crypto_hash_sha256_update(key, (const uint8_t *)rel, strlen(rel) + 1);
    crypto_hash_sha256_update(key, meta, sizeof meta);
    return 0;
}

static int skip_name(const char *name)
{
    return name[0] == '.' || ends_with(name, ".tokcache") || strstr(name, ".tokcache.tmp.");
}

static int src_walk(src_list *l, const char *path, size_t root_len, crypto_hash_sha256_state *key,
                    sl_err *err)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return errno == ENOENT ? sl_err_set(err, SL_ENOTFOUND, "%s: no such file or folder", path)
                               : sl_err_errno(err, "%s: stat", path);
    if (S_ISREG(st.st_mode))
        return src_add(l, path, root_len, &st, key, err);
    if (!S_ISDIR(st.st_mode))
        return 0; /* sockets, devices: not text */
    struct dirent **names = NULL;
    int n = scandir(path, &names, NULL, alphasort);
    if (n < 0)
        return sl_err_errno(err, "%s: read folder", path);
    int rc = 0;
    for (int i = 0; i < n; i++) {
        if (rc == 0 && !skip_name(names[i]->d_name)) {
            char sub[PATH_MAX];
            if (snprintf(sub, sizeof sub, "%s/%s", path, names[i]->d_name) >= (int)sizeof sub)
                rc = sl_err_set(err, SL_ELIMIT, "%s/%s: path too long", path, names[i]->d_name);
            else
                rc = src_walk(l, sub, root_len, key, err);
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

/* ---- building ---- */

typedef struct doc_rec {
    uint64_t start, n; /* in the token stream */
    int val;
} doc_rec;

typedef struct build {
    const sl_tokenizer *tok;
    unsigned width;
    uint32_t val_ppm;
    int fd;                  /* token stream (unlinked temporary) */
    uint8_t buf[1 << 16];
    size_t blen;
    uint64_t ntok;           /* tokens in the stream */
    sl_ids ids;
    crypto_hash_sha256_state h;
    uint64_t doc_start, doc_bytes;
    doc_rec *docs;
    size_t ndocs, dcap;
    sl_err *err;
    const char *where;       /* file being read, for messages */
    size_t chunk;            /* bytes of text read at a time */
} build;

static int write_full(int fd, const uint8_t *p, size_t n, off_t off, const char *what,
                      sl_err *err)
{
    while (n) {
        ssize_t w = off < 0 ? write(fd, p, n) : pwrite(fd, p, n, off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return sl_err_errno(err, "%s: write", what);
        p += w;
        n -= (size_t)w;
        if (off >= 0)
            off += w;
    }
    return 0;
}

static int flush_stream(build *b)
{
    int rc = write_full(b->fd, b->buf, b->blen, -1, "token cache stream", b->err);
    b->blen = 0;
    return rc;
}

static void put_id(uint8_t *p, uint32_t id, unsigned width)
{
    p[0] = (uint8_t)id;
    p[1] = (uint8_t)(id >> 8);
    if (width == 4) {
        p[2] = (uint8_t)(id >> 16);
        p[3] = (uint8_t)(id >> 24);
    }
}

static uint32_t get_id(const uint8_t *p, unsigned width)
{
    return width == 2 ? (uint32_t)(p[0] | p[1] << 8)
                      : (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                            (uint32_t)p[3] << 24;
}

static void doc_begin(build *b)
{
    crypto_hash_sha256_init(&b->h);
    b->doc_start = b->ntok;
    b->doc_bytes = 0;
}

static int doc_text(build *b, const uint8_t *s, size_t n)
{
    if (n == 0)
        return 0;
    crypto_hash_sha256_update(&b->h, s, n);
    b->doc_bytes += n;
    b->ids.n = 0;
    int rc = sl_tokenizer_encode(b->tok, s, n, 0, &b->ids, b->err);
    if (rc)
        return sl_err_prefix(b->err, "%s", b->where);
    for (size_t i = 0; i < b->ids.n; i++) {
        if (b->blen + 4 > sizeof b->buf && (rc = flush_stream(b)) != 0)
            return rc;
        put_id(b->buf + b->blen, (uint32_t)b->ids.v[i], b->width);
        b->blen += b->width;
    }
    b->ntok += b->ids.n;
    return 0;
}

static int doc_end(build *b)
{
    uint8_t d[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final(&b->h, d);
    if (b->doc_bytes == 0)
        return 0;
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | d[i];
    if (b->ndocs == b->dcap) {
        size_t cap = b->dcap ? 2 * b->dcap : 1024;
        doc_rec *r = realloc(b->docs, cap * sizeof *r);
        if (!r)
            return sl_err_set(b->err, SL_ENOMEM, "%s: out of memory after %zu documents",
                              b->where, b->ndocs);
        b->docs = r;
        b->dcap = cap;
    }
    b->docs[b->ndocs++] = (doc_rec){b->doc_start, b->ntok - b->doc_start,
                                    v % 1000000u < b->val_ppm};
    return 0;
}

/* Text of the current document(s): a literal <|endoftext|> ends one
 * document and begins the next. */
static int feed_text(build *b, const uint8_t *s, size_t n)
{
    const size_t el = strlen(SL_TOKENIZER_EOT);
    while (n) {
        const uint8_t *e = memmem(s, n, SL_TOKENIZER_EOT, el);
        size_t seg = e ? (size_t)(e - s) : n;
        int rc = doc_text(b, s, seg);
        if (rc)
            return rc;
        if (!e)
            break;
        if ((rc = doc_end(b)) != 0)
            return rc;
        doc_begin(b);
        s += seg + el;
        n -= seg + el;
    }
    return 0;
}

static int read_some(int fd, uint8_t *buf, size_t cap, size_t *got, const char *path,
                     sl_err *err)
{
    for (;;) {
        ssize_t r = read(fd, buf, cap);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return sl_err_errno(err, "%s: read", path);
        *got = (size_t)r;
        return 0;
    }
}

static int feed_plain(build *b, const src_file *f, uint8_t *chunk)
{
    int fd = open(f->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sl_err_errno(b->err, "%s: open", f->path);
    int rc = 0, eof = 0;
    size_t have = 0;
    doc_begin(b);
    while (!eof || have) {
        while (!eof && have < b->chunk) {
            size_t got = 0;
            if ((rc = read_some(fd, chunk + have, b->chunk - have, &got, f->path,
                                b->err)) != 0)
                goto out;
            eof = got == 0;
            have += got;
        }
        size_t cut = eof ? have : sl_pretok_safe_cut(chunk, have);
        if (cut == 0)
            cut = have; /* no safe place in a chunk: pieces may differ at the cut */
        if ((rc = feed_text(b, chunk, cut)) != 0)
            goto out;
        memmove(chunk, chunk + cut, have - cut);
        have -= cut;
    }
    rc = doc_end(b);
out:
    close(fd);
    return rc;
}

static int feed_jsonl(build *b, const src_file *f, const char *field)
{
    FILE *fp = fopen(f->path, "rb");
    if (!fp)
        return sl_err_errno(b->err, "%s: open", f->path);
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t len;
    int rc = 0;
    while (rc == 0 && (len = getline(&line, &cap, fp)) >= 0) {
        lineno++;
        if ((size_t)len > SL_DATASET_MAX_LINE) {
            rc = sl_err_set(b->err, SL_ELIMIT, "%s:%zu: line of %zd bytes exceeds the limit "
                            "of %u", f->path, lineno, len, SL_DATASET_MAX_LINE);
            break;
        }
        size_t k = 0;
        while (k < (size_t)len && (line[k] == ' ' || line[k] == '\t' || line[k] == '\r' ||
                                   line[k] == '\n'))
            k++;
        if (k == (size_t)len)
            continue; /* blank line */
        json_error_t je;
        json_t *j = json_loadb(line, (size_t)len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
        json_t *t = json_is_object(j) ? json_object_get(j, field) : NULL;
        if (!j) {
            rc = sl_err_set(b->err, SL_EFORMAT, "%s:%zu: JSON error at column %d: %s", f->path,
                            lineno, je.column, je.text);
        } else if (!json_is_string(t)) {
            rc = sl_err_set(b->err, SL_EFORMAT, "%s:%zu: field \"%s\" missing or not a string",
                            f->path, lineno, field);
        } else {
            doc_begin(b);
            rc = feed_text(b, (const uint8_t *)json_string_value(t), json_string_length(t));
            if (rc == 0)
                rc = doc_end(b);
        }
        json_decref(j);
    }
    if (rc == 0 && ferror(fp))
        rc = sl_err_errno(b->err, "%s: read", f->path);
    free(line);
    fclose(fp);
    return rc;
}

/* Second pass: the stream's documents into the cache, each preceded by
 * <|endoftext|>, training documents first. */
static int write_cache(build *b, const char *tmp, sl_dataset_header *h)
{
    int rc = 0;
    uint8_t *in = NULL, *out[2] = {NULL, NULL};
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return sl_err_errno(b->err, "%s: create", tmp);
    for (size_t i = 0; i < b->ndocs; i++) {
        h->n[b->docs[i].val] += 1 + b->docs[i].n;
        h->docs[b->docs[i].val]++;
    }
    const size_t BUF = 1 << 20;
    in = malloc(BUF);
    out[0] = malloc(BUF);
    out[1] = malloc(BUF);
    if (!in || !out[0] || !out[1]) {
        rc = sl_err_set(b->err, SL_ENOMEM, "%s: out of memory", tmp);
        goto out;
    }
    off_t pos[2] = {SL_DATASET_HEADER, (off_t)(SL_DATASET_HEADER + h->n[0] * b->width)};
    size_t olen[2] = {0, 0};
    size_t inlen = 0, inoff = 0;
    if (lseek(b->fd, 0, SEEK_SET) < 0) {
        rc = sl_err_errno(b->err, "token cache stream: seek");
        goto out;
    }
    /* The stream holds the documents' tokens back to back, in order. */
    for (size_t d = 0; d < b->ndocs && rc == 0; d++) {
        int s = b->docs[d].val;
        for (uint64_t k = 0; k <= b->docs[d].n && rc == 0; k++) {
            uint32_t id = (uint32_t)sl_tokenizer_eot(b->tok);
            if (k > 0) {
                if (inoff + b->width > inlen) {
                    memmove(in, in + inoff, inlen - inoff);
                    inlen -= inoff;
                    inoff = 0;
                    size_t got = 0;
                    rc = read_some(b->fd, in + inlen, BUF - inlen, &got, "token cache stream",
                                   b->err);
                    if (rc == 0 && (inlen += got) < b->width)
                        rc = sl_err_set(b->err, SL_EIO, "token cache stream: ended early");
                    if (rc)
                        break;
                }
                id = get_id(in + inoff, b->width);
                inoff += b->width;
            }
            if (olen[s] + b->width > BUF) {
                if ((rc = write_full(fd, out[s], olen[s], pos[s], tmp, b->err)) != 0)
                    break;
                pos[s] += (off_t)olen[s];
                olen[s] = 0;
            }
            put_id(out[s] + olen[s], id, b->width);
            olen[s] += b->width;
        }
    }
    for (int s = 0; s < 2 && rc == 0; s++)
        rc = write_full(fd, out[s], olen[s], pos[s], tmp, b->err);
    uint8_t hb[SL_DATASET_HEADER];
    header_encode(h, hb);
    if (rc == 0)
        rc = write_full(fd, hb, sizeof hb, 0, tmp, b->err);
    if (rc == 0 && fsync(fd) != 0)
        rc = sl_err_errno(b->err, "%s: fsync", tmp);
out:
    free(out[1]);
    free(out[0]);
    free(in);
    if (close(fd) != 0 && rc == 0)
        rc = sl_err_errno(b->err, "%s: close", tmp);
    return rc;
}

static int build_cache(const src_list *l, const sl_tokenizer *tok, const sl_dataset_opts *o,
                       const char *field, const uint8_t key[32], const char *cache, sl_err *err)
{
    build *b = calloc(1, sizeof *b);
    size_t chunk_len = o->chunk ? o->chunk : SL_DATASET_CHUNK;
    uint8_t *chunk = malloc(chunk_len);
    char tmp[PATH_MAX + 32], stream[PATH_MAX + 48];
    int rc = 0;
    if (!b || !chunk) {
        free(b);
        free(chunk);
        return sl_err_set(err, SL_ENOMEM, "%s: out of memory", cache);
    }
    b->tok = tok;
    b->width = sl_tokenizer_vocab_size(tok) <= 65536 ? 2 : 4;
    b->val_ppm = o->val_per_million;
    b->chunk = chunk_len;
    b->err = err;
    b->fd = -1;
    sl_ids_init(&b->ids, 0);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", cache, (long)getpid());
    snprintf(stream, sizeof stream, "%s.tmp.%ld.stream", cache, (long)getpid());
    b->fd = open(stream, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (b->fd < 0) {
        rc = sl_err_errno(err, "%s: create", stream);
        goto out;
    }
    unlink(stream); /* vanishes with the process */
    for (size_t i = 0; i < l->n && rc == 0; i++) {
        b->where = l->f[i].path;
        rc = l->f[i].jsonl ? feed_jsonl(b, &l->f[i], field) : feed_plain(b, &l->f[i], chunk);
    }
    if (rc == 0)
        rc = flush_stream(b);
    if (rc == 0) {
        sl_dataset_header h;
        memset(&h, 0, sizeof h);
        h.width = b->width;
        h.vocab_size = sl_tokenizer_vocab_size(tok);
        h.eot = (uint32_t)sl_tokenizer_eot(tok);
        h.val_per_million = o->val_per_million;
        memcpy(h.vocab_hash, sl_tokenizer_hash(tok), 32);
        memcpy(h.source_key, key, 32);
        rc = write_cache(b, tmp, &h);
        if (rc == 0 && rename(tmp, cache) != 0)
            rc = sl_err_errno(err, "%s: rename to %s", tmp, cache);
        if (rc == 0)
            rc = sl_fs_sync_dir_of(cache, err);
        if (rc)
            unlink(tmp);
    }
out:
    if (b->fd >= 0)
        close(b->fd);
    sl_ids_fini(&b->ids);
    free(b->docs);
    free(b);
    free(chunk);
    return rc;
}

/* Maps and checks a cache; SL_ESTATE if it is sound but for other sources or
 * another tokenizer. */
static int map_cache(sl_dataset *ds, const char *cache, const sl_tokenizer *tok,
                     const uint8_t key[32], uint32_t val_ppm, sl_err *err)
{
    int fd = open(cache, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? sl_err_set(err, SL_ENOTFOUND, "%s: no cache", cache)
                               : sl_err_errno(err, "%s: open", cache);
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < (off_t)SL_DATASET_HEADER) {
        close(fd);
        return sl_err_set(err, SL_EFORMAT, "%s: not a token cache", cache);
    }
    size_t len = (size_t)st.st_size;
    void *m = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return sl_err_errno(err, "%s: mmap", cache);
    int rc = sl_dataset_parse(m, len, &ds->h, err);
    if (rc) {
        sl_err_prefix(err, "%s", cache);
    } else if (memcmp(ds->h.vocab_hash, sl_tokenizer_hash(tok), 32) != 0 ||
               memcmp(ds->h.source_key, key, 32) != 0 || ds->h.val_per_million != val_ppm ||
               ds->h.vocab_size != sl_tokenizer_vocab_size(tok) ||
               ds->h.eot != (uint32_t)sl_tokenizer_eot(tok)) {
        rc = sl_err_set(err, SL_ESTATE, "%s: made from other sources or another tokenizer",
                        cache);
    }
    if (rc) {
        munmap(m, len);
        return rc;
    }
    ds->map = m;
    ds->map_len = len;
    return 0;
}

int sl_dataset_open(const char *path, const sl_tokenizer *tok, const sl_dataset_opts *opts,
                    sl_dataset **out, sl_err *err)
{
    sl_dataset_opts o;
    if (opts)
        o = *opts;
    else
        sl_dataset_opts_init(&o);
    if (o.val_per_million > 1000000)
        return sl_err_set(err, SL_EINVAL, "dataset: val_per_million %u exceeds 1000000",
                          o.val_per_million);
    const char *field = o.text_field ? o.text_field : "text";
    if (sodium_init() < 0)
        return sl_err_set(err, SL_ECRYPTO, "dataset: libsodium failed to initialise");
    sl_dataset *ds = calloc(1, sizeof *ds);
    if (!ds)
        return sl_err_set(err, SL_ENOMEM, "dataset: out of memory");
    src_list l = {NULL, 0, 0};
    int rc = 0;
    /* Cache path: PATH.tokcache (a folder's path without its trailing '/'). */
    char base[PATH_MAX];
    snprintf(base, sizeof base, "%s", path);
    for (size_t k = strlen(base); k > 1 && base[k - 1] == '/'; k--)
        base[k - 1] = 0;
    int n = o.cache ? snprintf(ds->cache, sizeof ds->cache, "%s", o.cache)
                    : snprintf(ds->cache, sizeof ds->cache, "%s.tokcache", base);
    if (n < 0 || (size_t)n >= sizeof ds->cache) {
        rc = sl_err_set(err, SL_ELIMIT, "%s: cache path too long", path);
        goto fail;
    }
    crypto_hash_sha256_state ks;
    crypto_hash_sha256_init(&ks);
    uint8_t opt[8] = {'s', 'l', 't', 'k', 1, 0, 0, 0};
    crypto_hash_sha256_update(&ks, opt, sizeof opt);
    crypto_hash_sha256_update(&ks, (const uint8_t *)field, strlen(field) + 1);
    if ((rc = src_walk(&l, base, strlen(base), &ks, err)) != 0)
        goto fail;
    if (l.n == 0) {
        rc = sl_err_set(err, SL_ENOTFOUND, "%s: no text files", path);
        goto fail;
    }
    uint8_t key[32];
    crypto_hash_sha256_final(&ks, key);
    if (!o.rebuild && map_cache(ds, ds->cache, tok, key, o.val_per_million, err) == 0) {
        ds->built = 0;
    } else {
        sl_err_clear(err);
        if ((rc = build_cache(&l, tok, &o, field, key, ds->cache, err)) != 0)
            goto fail;
        if ((rc = map_cache(ds, ds->cache, tok, key, o.val_per_million, err)) != 0)
            goto fail;
        ds->built = 1;
    }
    src_free(&l);
    *out = ds;
    return 0;
fail:
    src_free(&l);
    free(ds);
    return rc;
}

void sl_dataset_close(sl_dataset *ds)
{
    if (!ds)
        return;
    if (ds->map)
        munmap(ds->map, ds->map_len);
    free(ds);
}

int sl_dataset_built(const sl_dataset *ds) { return ds->built; }
const char *sl_dataset_cache_path(const sl_dataset *ds) { return ds->cache; }
uint64_t sl_dataset_tokens(const sl_dataset *ds, int split) { return ds->h.n[split != 0]; }
uint64_t sl_dataset_docs(const sl_dataset *ds, int split) { return ds->h.docs[split != 0]; }
unsigned sl_dataset_width(const sl_dataset *ds) { return ds->h.width; }

static const uint8_t *split_base(const sl_dataset *ds, int split)
{
    return ds->map + SL_DATASET_HEADER + (split ? ds->h.n[0] * ds->h.width : 0);
}

/* The cache is little-endian and the header 128 bytes, so on little-endian
 * hosts (all that sealora builds for) the ids are aligned native arrays. */
const uint16_t *sl_dataset_u16(const sl_dataset *ds, int split)
{
    return ds->h.width == 2 ? (const uint16_t *)(const void *)split_base(ds, split != 0) : NULL;
}

const uint32_t *sl_dataset_u32(const sl_dataset *ds, int split)
{
    return ds->h.width == 4 ? (const uint32_t *)(const void *)split_base(ds, split != 0) : NULL;
}

uint32_t sl_dataset_token(const sl_dataset *ds, int split, uint64_t i)
{
    return get_id(split_base(ds, split != 0) + i * ds->h.width, ds->h.width);
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

int sl_dataset_batch(const sl_dataset *ds, int split, uint64_t *rng, int B, int T,
                     int32_t *inputs, int32_t *targets)
{
    if (B < 1 || T < 1)
        return SL_EINVAL;
    uint64_t n = sl_dataset_tokens(ds, split);
    if (n < (uint64_t)T + 1)
        return SL_ELIMIT;
    uint64_t range = n - (uint64_t)T; /* window starts 0 .. n-T-1 */
    uint64_t limit = UINT64_MAX - UINT64_MAX % range;
    const uint8_t *base = split_base(ds, split != 0);
    unsigned w = ds->h.width;
    for (int b = 0; b < B; b++) {
        uint64_t x;
        do
            x = splitmix(rng);
        while (x >= limit); /* unbiased */
        uint64_t s = x % range;
        int32_t *in = inputs + (size_t)b * (size_t)T, *tg = targets + (size_t)b * (size_t)T;
        for (int t = 0; t < T; t++) {
            in[t] = (int32_t)get_id(base + (s + (uint64_t)t) * w, w);
            tg[t] = (int32_t)get_id(base + (s + (uint64_t)t + 1) * w, w);
        }
    }
    return 0;
}
