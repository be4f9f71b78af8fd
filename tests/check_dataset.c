/* Datasets: the token arrays hold exactly the documents of the sources, each
 * after <|endoftext|>, split by the SHA-256 rule; streaming in small chunks
 * gives the same ids as whole-text encoding; the cache is reused when nothing
 * changed and rebuilt when a source, the tokenizer or an option did, or when
 * it was tampered with; batches are windows of the split with targets shifted
 * by one; bad JSON Lines are refused naming file and line. */
#include <check.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shared/bpe_train.h"
#include "shared/dataset.h"
#include "shared/fsutil.h"
#include "shared/pretok.h"
#include "shared/tokenizer.h"
#include "tests/fixtures.h"

static const char *const WORDS[] = {" the", " cat", " sat", " on", " mat", "\n", ".", ",",
                                    " caf\xc3\xa9", " \xe6\x97\xa5", "  ", "'s", " 42"};
#define NWORDS (sizeof WORDS / sizeof WORDS[0])

static size_t gen_doc(sl_test_rng *r, char *out, size_t max)
{
    size_t n = 0, want = 1 + sl_test_rand(r) % max;
    while (n < want) {
        const char *w = WORDS[sl_test_rand(r) % NWORDS];
        size_t l = strlen(w);
        if (n + l > max)
            break;
        memcpy(out + n, w, l);
        n += l;
    }
    if (n == 0)
        out[n++] = 'x';
    return n;
}

static sl_tokenizer *make_tokenizer(uint32_t vocab)
{
    sl_test_rng r = {99};
    sl_bpe_trainer *tr = NULL;
    sl_err err = {0};
    ck_assert_int_eq(sl_bpe_train_create(&tr, &err), 0);
    char doc[4096];
    for (int i = 0; i < 50; i++) {
        size_t n = gen_doc(&r, doc, sizeof doc);
        ck_assert_int_eq(sl_bpe_train_feed(tr, doc, n, &err), 0);
    }
    ck_assert_int_eq(sl_bpe_train_run(tr, vocab, 1, &err), 0);
    char dir[300];
    snprintf(dir, sizeof dir, "%s/tok", sl_test_tmpdir());
    ck_assert_int_eq(sl_bpe_train_write(tr, dir, &err), 0);
    sl_bpe_train_free(tr);
    sl_tokenizer *t = NULL;
    ck_assert_int_eq(sl_tokenizer_load(dir, &t, &err), 0);
    return t;
}

/* Expected arrays built independently: each document encoded on its own. */
typedef struct expect {
    sl_ids a[2];
    uint64_t docs[2];
} expect;

static void expect_doc(expect *e, const sl_tokenizer *t, const char *s, size_t n, uint32_t ppm)
{
    if (n == 0)
        return;
    uint8_t d[32];
    crypto_hash_sha256(d, (const uint8_t *)s, n);
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | d[i];
    int split = v % 1000000 < ppm;
    sl_err err = {0};
    ck_assert_int_eq(sl_ids_push(&e->a[split], sl_tokenizer_eot(t), &err), 0);
    ck_assert_int_eq(sl_tokenizer_encode(t, s, n, 0, &e->a[split], &err), 0);
    e->docs[split]++;
}

static void check_arrays(const sl_dataset *ds, const expect *e)
{
    for (int s = 0; s < 2; s++) {
        ck_assert_uint_eq(sl_dataset_tokens(ds, s), e->a[s].n);
        ck_assert_uint_eq(sl_dataset_docs(ds, s), e->docs[s]);
        const uint16_t *v = sl_dataset_u16(ds, s);
        ck_assert_ptr_nonnull(v);
        ck_assert_ptr_null(sl_dataset_u32(ds, s));
        for (size_t i = 0; i < e->a[s].n; i++) {
            ck_assert_int_eq(v[i], e->a[s].v[i]);
            ck_assert_uint_eq(sl_dataset_token(ds, s, i), (uint32_t)e->a[s].v[i]);
        }
    }
}

static void write_text(const char *path, const char *s, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(s, 1, n, f), n);
    fclose(f);
}

START_TEST(test_folder_split_and_reuse)
{
    sl_tokenizer *t = make_tokenizer(300);
    const char *root = sl_test_tmpdir();
    char dir[400], path[500];
    snprintf(dir, sizeof dir, "%s/data", root);
    sl_err err = {0};
    ck_assert_int_eq(sl_fs_mkdirs(dir, 0755, &err), 0);
    snprintf(path, sizeof path, "%s/sub", dir);
    ck_assert_int_eq(sl_fs_mkdirs(path, 0755, &err), 0);
    const uint32_t ppm = 300000; /* 30%: both splits get documents */
    expect e;
    memset(&e, 0, sizeof e);
    sl_ids_init(&e.a[0], 0);
    sl_ids_init(&e.a[1], 0);
    sl_test_rng r = {1};
    /* Files in name order: a.txt (3 documents joined by the marker),
     * b.jsonl (2 records, the second holding 2 documents), sub/c.txt. */
    char doc[3][600], all[4000];
    size_t dl[3], n = 0;
    for (int i = 0; i < 3; i++) {
        dl[i] = gen_doc(&r, doc[i], 500);
        memcpy(all + n, doc[i], dl[i]);
        n += dl[i];
        if (i < 2) {
            memcpy(all + n, SL_TOKENIZER_EOT, 13);
            n += 13;
        }
        expect_doc(&e, t, doc[i], dl[i], ppm);
    }
    snprintf(path, sizeof path, "%s/a.txt", dir);
    write_text(path, all, n);
    json_t *j1 = json_pack("{s:s#}", "body", doc[0], (int)dl[0]);
    char both[1300];
    size_t bn = 0;
    memcpy(both, doc[1], dl[1]);
    bn += dl[1];
    memcpy(both + bn, SL_TOKENIZER_EOT, 13);
    bn += 13;
    memcpy(both + bn, doc[2], dl[2]);
    bn += dl[2];
    json_t *j2 = json_pack("{s:s#, s:i}", "body", both, (int)bn, "x", 1);
    char *l1 = json_dumps(j1, JSON_COMPACT), *l2 = json_dumps(j2, JSON_COMPACT);
    char jl[4000];
    int jn = snprintf(jl, sizeof jl, "%s\n\n%s\n", l1, l2);
    snprintf(path, sizeof path, "%s/b.jsonl", dir);
    write_text(path, jl, (size_t)jn);
    expect_doc(&e, t, doc[0], dl[0], ppm);
    expect_doc(&e, t, doc[1], dl[1], ppm);
    expect_doc(&e, t, doc[2], dl[2], ppm);
    free(l1);
    free(l2);
    json_decref(j1);
    json_decref(j2);
    char big[20000];
    size_t bigl = 0;
    while (bigl < 15000)
        bigl += gen_doc(&r, big + bigl, 500);
    snprintf(path, sizeof path, "%s/sub/c.txt", dir);
    write_text(path, big, bigl);
    expect_doc(&e, t, big, bigl, ppm);

    sl_dataset_opts o;
    sl_dataset_opts_init(&o);
    o.text_field = "body";
    o.val_per_million = ppm;
    o.chunk = 256; /* many chunk cuts inside c.txt */
    sl_dataset *ds = NULL;
    ck_assert_msg(sl_dataset_open(dir, t, &o, &ds, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(sl_dataset_built(ds), 1);
    ck_assert_uint_eq(sl_dataset_width(ds), 2);
    ck_assert_uint_gt(e.docs[0], 0);
    ck_assert_uint_gt(e.docs[1], 0);
    check_arrays(ds, &e);
    char cache[500];
    snprintf(cache, sizeof cache, "%s.tokcache", dir);
    ck_assert_str_eq(sl_dataset_cache_path(ds), cache);
    sl_dataset_close(ds);
    /* Unchanged: reused. The folder's trailing slash names the same cache. */
    char slash[500];
    snprintf(slash, sizeof slash, "%s/", dir);
    ck_assert_int_eq(sl_dataset_open(slash, t, &o, &ds, &err), 0);
    ck_assert_int_eq(sl_dataset_built(ds), 0);
    check_arrays(ds, &e);
    sl_dataset_close(ds);
    /* Another split share: rebuilt. */
    o.val_per_million = 0;
    ck_assert_int_eq(sl_dataset_open(dir, t, &o, &ds, &err), 0);
    ck_assert_int_eq(sl_dataset_built(ds), 1);
    ck_assert_uint_eq(sl_dataset_docs(ds, SL_DATASET_VAL), 0);
    ck_assert_uint_eq(sl_dataset_docs(ds, SL_DATASET_TRAIN), 7);
    sl_dataset_close(ds);
    o.val_per_million = ppm;
    /* A source changed (size and time): rebuilt, and it shows. */
    snprintf(path, sizeof path, "%s/sub/c.txt", dir);
    write_text(path, "new text", 8);
    ck_assert_int_eq(sl_dataset_open(dir, t, &o, &ds, &err), 0);
    ck_assert_int_eq(sl_dataset_built(ds), 1);
    uint64_t total = sl_dataset_tokens(ds, 0) + sl_dataset_tokens(ds, 1);
    ck_assert_uint_lt(total, e.a[0].n + e.a[1].n);
    sl_dataset_close(ds);
    /* Another tokenizer: rebuilt. */
    sl_tokenizer *t2 = make_tokenizer(280);
    ck_assert_int_eq(sl_dataset_open(dir, t2, &o, &ds, &err), 0);
    ck_assert_int_eq(sl_dataset_built(ds), 1);
    sl_dataset_close(ds);
    sl_tokenizer_free(t2);
    sl_ids_fini(&e.a[0]);
    sl_ids_fini(&e.a[1]);
    sl_tokenizer_free(t);
}
END_TEST

START_TEST(test_streaming_equals_whole)
{
    /* One document cut into 64-byte chunks: the same ids as encoding it
     * whole, because cuts fall where pre-tokenisation allows. */
    sl_tokenizer *t = make_tokenizer(300);
    sl_test_rng r = {2};
    char *text = malloc(100000);
    size_t n = 0;
    while (n < 90000)
        n += gen_doc(&r, text + n, 1000);
    const char *dir = sl_test_tmpdir();
    char path[400];
    snprintf(path, sizeof path, "%s/one.txt", dir);
    write_text(path, text, n);
    expect e;
    memset(&e, 0, sizeof e);
    expect_doc(&e, t, text, n, 0);
    for (size_t chunk = 64; chunk <= 1u << 20; chunk *= 128) {
        sl_dataset_opts o;
        sl_dataset_opts_init(&o);
        o.val_per_million = 0;
        o.chunk = chunk;
        o.rebuild = 1;
        sl_dataset *ds = NULL;
        sl_err err = {0};
        ck_assert_int_eq(sl_dataset_open(path, t, &o, &ds, &err), 0);
        check_arrays(ds, &e);
        sl_dataset_close(ds);
    }
    sl_ids_fini(&e.a[0]);
    free(text);
    sl_tokenizer_free(t);
}
END_TEST

START_TEST(test_batches)
{
    sl_tokenizer *t = make_tokenizer(300);
    sl_test_rng r = {3};
    char text[20000];
    size_t n = 0;
    while (n < 15000)
        n += gen_doc(&r, text + n, 1000);
    const char *dir = sl_test_tmpdir();
    char path[400];
    snprintf(path, sizeof path, "%s/t.txt", dir);
    write_text(path, text, n);
    sl_dataset *ds = NULL;
    sl_err err = {0};
    sl_dataset_opts o;
    sl_dataset_opts_init(&o);
    o.val_per_million = 0;
    ck_assert_int_eq(sl_dataset_open(path, t, &o, &ds, &err), 0);
    const uint16_t *v = sl_dataset_u16(ds, 0);
    uint64_t nt = sl_dataset_tokens(ds, 0);
    enum { B = 4, T = 16 };
    int32_t in[B * T], tg[B * T], in2[B * T], tg2[B * T];
    uint64_t s1 = 42, s2 = 42, s3 = 43;
    ck_assert_int_eq(sl_dataset_batch(ds, 0, &s1, B, T, in, tg), 0);
    ck_assert_int_eq(sl_dataset_batch(ds, 0, &s2, B, T, in2, tg2), 0);
    ck_assert_mem_eq(in, in2, sizeof in); /* seeded: reproducible */
    ck_assert_mem_eq(tg, tg2, sizeof tg);
    ck_assert_int_eq(sl_dataset_batch(ds, 0, &s3, B, T, in2, tg2), 0);
    ck_assert(memcmp(in, in2, sizeof in) != 0);
    for (int b = 0; b < B; b++) {
        /* Each row is a window of the array, targets one token ahead. */
        int found = 0;
        for (uint64_t s = 0; s + T < nt && !found; s++) {
            int ok = 1;
            for (int k = 0; k < T && ok; k++)
                ok = in[b * T + k] == v[s + k] && tg[b * T + k] == v[s + k + 1];
            found = ok;
        }
        ck_assert_msg(found, "row %d is not a window of the split", b);
    }
    sl_dataset_close(ds);
    sl_tokenizer_free(t);
}
END_TEST

/* ---- limits ---- */

START_TEST(test_limits)
{
    sl_tokenizer *t = make_tokenizer(300);
    const char *dir = sl_test_tmpdir();
    char path[400];
    snprintf(path, sizeof path, "%s/s.txt", dir);
    write_text(path, "a b c", 5);
    sl_dataset *ds = NULL;
    sl_err err = {0};
    sl_ids ids;
    sl_ids_init(&ids, 0);
    ck_assert_int_eq(sl_tokenizer_encode(t, "a b c", 5, 0, &ids, &err), 0);
    int nt = 1 + (int)ids.n; /* <|endoftext|> first */
    sl_ids_fini(&ids);
    sl_dataset_opts o;
    sl_dataset_opts_init(&o);
    o.val_per_million = 0;
    ck_assert_int_eq(sl_dataset_open(path, t, &o, &ds, &err), 0);
    ck_assert_uint_eq(sl_dataset_tokens(ds, 0), (uint64_t)nt);
    int32_t in[8], tg[8];
    uint64_t seed = 1;
    /* T = n - 1: one window, starting at <|endoftext|>. */
    ck_assert_int_eq(sl_dataset_batch(ds, 0, &seed, 1, nt - 1, in, tg), 0);
    ck_assert_int_eq(in[0], sl_tokenizer_eot(t));
    ck_assert_int_eq(tg[nt - 2], (int)sl_dataset_token(ds, 0, (uint64_t)nt - 1));
    /* T = n - 2: two windows, both drawn (a miss in 1000 draws: 2^-999). */
    int seen[2] = {0, 0};
    for (int it = 0; it < 1000; it++) {
        ck_assert_int_eq(sl_dataset_batch(ds, 0, &seed, 1, nt - 2, in, tg), 0);
        seen[in[0] != sl_tokenizer_eot(t)]++;
    }
    ck_assert_int_gt(seen[0], 0);
    ck_assert_int_gt(seen[1], 0);
    memset(in, 0x55, sizeof in);
    ck_assert_int_eq(sl_dataset_batch(ds, 0, &seed, 1, nt, in, tg), SL_ELIMIT);
    ck_assert_int_eq(in[0], 0x55555555); /* untouched */
    ck_assert_int_eq(sl_dataset_batch(ds, 1, &seed, 1, 1, in, tg), SL_ELIMIT); /* empty */
    ck_assert_int_eq(sl_dataset_batch(ds, 0, &seed, 0, 1, in, tg), SL_EINVAL);
    sl_dataset_close(ds);
    o.val_per_million = 1000001;
    ck_assert_int_eq(sl_dataset_open(path, t, &o, &ds, &err), SL_EINVAL);
    sl_tokenizer_free(t);
}
END_TEST

START_TEST(test_wide_vocabulary)
{
    /* More than 65536 ids: uint32 arrays. */
    json_t *v = json_object();
    uint8_t order[256];
    sl_pretok_byte_order(order);
    for (int i = 0; i < 256; i++) {
        char s[4];
        size_t k = sl_pretok_spell(&order[i], 1, s);
        json_object_set_new(v, (s[k] = 0, s), json_integer(i));
    }
    int id = 256;
    for (; id < 70000; id++) {
        char s[16];
        snprintf(s, sizeof s, "\xc4\x80%d", id); /* unreachable filler tokens */
        json_object_set_new(v, s, json_integer(id));
    }
    json_object_set_new(v, SL_TOKENIZER_EOT, json_integer(id));
    char *vs = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    sl_tokenizer *t = NULL;
    sl_err err = {0};
    ck_assert_int_eq(sl_tokenizer_from_files(vs, strlen(vs), "", 0, "v", "m", &t, &err), 0);
    free(vs);
    const char *dir = sl_test_tmpdir();
    char path[400];
    snprintf(path, sizeof path, "%s/w.txt", dir);
    write_text(path, "hi", 2);
    sl_dataset *ds = NULL;
    sl_dataset_opts o;
    sl_dataset_opts_init(&o);
    o.val_per_million = 0;
    ck_assert_int_eq(sl_dataset_open(path, t, &o, &ds, &err), 0);
    ck_assert_uint_eq(sl_dataset_width(ds), 4);
    const uint32_t *w = sl_dataset_u32(ds, 0);
    ck_assert_ptr_nonnull(w);
    ck_assert_ptr_null(sl_dataset_u16(ds, 0));
    ck_assert_uint_eq(sl_dataset_tokens(ds, 0), 3);
    ck_assert_uint_eq(w[0], 70000);
    ck_assert_uint_eq(w[1], 'h' - 33);
    sl_dataset_close(ds);
    sl_tokenizer_free(t);
}
END_TEST

/* ---- malformed ---- */

START_TEST(test_bad_jsonl)
{
    sl_tokenizer *t = make_tokenizer(300);
    struct {
        const char *text, *want;
    } cases[] = {
        {"{\"text\": \"ok\"}\n{\"text\": 5}\n", "b.jsonl:2: field \"text\""},
        {"{\"text\": \"ok\"}\n{\"other\": \"x\"}\n", "b.jsonl:2: field"},
        {"{\"text\": \"ok\"}\n\n{\"text\": \"a\", \"text\": \"b\"}\n", "b.jsonl:3: JSON"},
        {"[1, 2]\n", "b.jsonl:1"},
        {"{\"text\": \"unterminated\n", "b.jsonl:1: JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *dir = sl_test_tmpdir();
        char path[400];
        snprintf(path, sizeof path, "%s/b.jsonl", dir);
        write_text(path, cases[i].text, strlen(cases[i].text));
        sl_dataset *ds = (sl_dataset *)0x1;
        sl_err err = {0};
        ck_assert_int_eq(sl_dataset_open(dir, t, NULL, &ds, &err), SL_EFORMAT);
        ck_assert_ptr_eq(ds, (sl_dataset *)0x1);
        ck_assert_msg(strstr(err.msg, cases[i].want), "case %zu: %s", i, err.msg);
        char cache[400];
        snprintf(cache, sizeof cache, "%s.tokcache", dir);
        ck_assert(!sl_fs_exists(cache)); /* nothing left behind */
    }
    sl_dataset *ds = NULL;
    sl_err err = {0};
    ck_assert_int_eq(sl_dataset_open("/nonexistent/x", t, NULL, &ds, &err), SL_ENOTFOUND);
    ck_assert_int_eq(sl_dataset_open(sl_test_tmpdir(), t, NULL, &ds, &err), SL_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(err.msg, "no text files"));
    sl_tokenizer_free(t);
}
END_TEST

START_TEST(test_tampered_cache)
{
    sl_tokenizer *t = make_tokenizer(300);
    const char *dir = sl_test_tmpdir();
    char path[400];
    snprintf(path, sizeof path, "%s/d.txt", dir);
    write_text(path, " the cat sat<|endoftext|> on the mat", 36);
    sl_dataset_opts o;
    sl_dataset_opts_init(&o);
    o.val_per_million = 500000;
    sl_dataset *ds = NULL;
    sl_err err = {0};
    ck_assert_int_eq(sl_dataset_open(path, t, &o, &ds, &err), 0);
    char cache[500];
    snprintf(cache, sizeof cache, "%s", sl_dataset_cache_path(ds));
    sl_dataset_close(ds);
    uint8_t *good = NULL;
    size_t n = 0;
    ck_assert_int_eq(sl_fs_read_all(cache, 1 << 20, &good, &n, &err), 0);
    sl_dataset_header h;
    ck_assert_int_eq(sl_dataset_parse(good, n, &h, &err), 0);
    ck_assert_uint_eq(h.n[0] + h.n[1], (n - SL_DATASET_HEADER) / 2);
    /* Every truncation and every flipped header byte is refused by the
     * parser, or (hash, key bytes) would not match at open. */
    for (size_t cut = 0; cut < n; cut++)
        ck_assert_int_eq(sl_dataset_parse(good, cut, &h, &err), SL_EFORMAT);
    uint8_t *bad = malloc(n);
    for (size_t i = 0; i < SL_DATASET_HEADER; i++) {
        if (i >= 16 && i < 28)
            continue; /* vocab_size, eot, val_per_million: open compares them */
        if (i >= 32 && i < 96)
            continue; /* hashes: any value parses; open compares them */
        memcpy(bad, good, n);
        bad[i] ^= 0x40;
        ck_assert_msg(sl_dataset_parse(bad, n, &h, &err) == SL_EFORMAT, "byte %zu", i);
    }
    /* An id outside the vocabulary. */
    memcpy(bad, good, n);
    bad[SL_DATASET_HEADER + 2] = 0xFF;
    bad[SL_DATASET_HEADER + 3] = 0xFF;
    ck_assert_int_eq(sl_dataset_parse(bad, n, &h, &err), SL_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "token 1"));
    /* A tampered cache on disk is rebuilt, not trusted: a bad id, and each
     * field that only open can judge. */
    size_t flips[] = {SL_DATASET_HEADER + 2, 16, 20, 24, 40, 70};
    for (size_t k = 0; k < sizeof flips / sizeof flips[0]; k++) {
        memcpy(bad, good, n);
        bad[flips[k]] ^= k == 0 ? 0xFF : 0x01;
        if (k == 0)
            bad[flips[k] + 1] = 0xFF;
        FILE *f = fopen(cache, "wb");
        ck_assert_uint_eq(fwrite(bad, 1, n, f), n);
        fclose(f);
        ck_assert_int_eq(sl_dataset_open(path, t, &o, &ds, &err), 0);
        ck_assert_msg(sl_dataset_built(ds) == 1, "flip at byte %zu trusted", flips[k]);
        sl_dataset_close(ds);
        uint8_t *again = NULL;
        size_t n2 = 0;
        ck_assert_int_eq(sl_fs_read_all(cache, 1 << 20, &again, &n2, &err), 0);
        ck_assert_uint_eq(n2, n);
        ck_assert_mem_eq(again, good, n);
        free(again);
    }
    free(bad);
    free(good);
    sl_tokenizer_free(t);
}
END_TEST

Suite *dataset_suite(void)
{
    Suite *s = suite_create("dataset");
    TCase *core = tcase_create("core");
    tcase_set_timeout(core, 120); /* sanitizer builds on a shared 2-core machine */
    tcase_add_test(core, test_folder_split_and_reuse);
    tcase_add_test(core, test_streaming_equals_whole);
    tcase_add_test(core, test_batches);
    suite_add_tcase(s, core);
    TCase *lim = tcase_create("limits");
    tcase_set_timeout(lim, 120); /* sanitizer builds on a shared 2-core machine */
    tcase_add_test(lim, test_limits);
    tcase_add_test(lim, test_wide_vocabulary);
    suite_add_tcase(s, lim);
    TCase *bad = tcase_create("malformed");
    tcase_set_timeout(bad, 120); /* sanitizer builds on a shared 2-core machine */
    tcase_add_test(bad, test_bad_jsonl);
    tcase_add_test(bad, test_tampered_cache);
    suite_add_tcase(s, bad);
    return s;
}
