/* Tokenizer and BPE trainer: known ids for a vocabulary built here by hand,
 * the merger against a naive one on random merge tables, round trips on hard
 * text and random bytes, both file layouts giving the same tokenizer, the
 * trainer's known answer and determinism, and malformed files refused with
 * the file and field at fault.
 *
 * Byte ids follow GPT-2's vocab.json: id 0 is "!", the printable bytes come
 * first in byte order, then the other 68 bytes, so "\n" is 198 ("Ċ") and " "
 * is 220 ("Ġ") as in GPT-2's published vocabulary. */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shared/bpe_train.h"
#include "shared/fsutil.h"
#include "shared/pretok.h"
#include "shared/tokenizer.h"
#include "tests/fixtures.h"

/* ---- building vocabularies in the test ---- */

typedef struct vocab_b {
    json_t *vocab;  /* spelled token -> id */
    json_t *merges; /* "a b" strings */
    int next;
} vocab_b;

static const char *spell1(const char *bytes, size_t n, char *buf)
{
    size_t k = sl_pretok_spell((const uint8_t *)bytes, n, buf);
    buf[k] = 0;
    return buf;
}

static void vb_init(vocab_b *b)
{
    b->vocab = json_object();
    b->merges = json_array();
    uint8_t order[256];
    sl_pretok_byte_order(order);
    for (int i = 0; i < 256; i++) {
        char s[4];
        json_object_set_new(b->vocab, spell1((const char *)&order[i], 1, s), json_integer(i));
    }
    b->next = 256;
}

/* Adds merge (a, b) of two byte strings; returns the merged token's id. */
static int vb_merge(vocab_b *b, const char *x, const char *y)
{
    char sx[512], sy[512], sxy[1024], line[1100];
    spell1(x, strlen(x), sx);
    spell1(y, strlen(y), sy);
    snprintf(sxy, sizeof sxy, "%s%s", sx, sy);
    snprintf(line, sizeof line, "%s %s", sx, sy);
    json_array_append_new(b->merges, json_string(line));
    json_t *v = json_object_get(b->vocab, sxy);
    if (v)
        return (int)json_integer_value(v);
    json_object_set_new(b->vocab, sxy, json_integer(b->next));
    return b->next++;
}

static int vb_eot(vocab_b *b)
{
    json_object_set_new(b->vocab, SL_TOKENIZER_EOT, json_integer(b->next));
    return b->next++;
}

/* tokenizer.json text for the builder's state (caller frees). */
static char *vb_tokenizer_json(const vocab_b *b, int eot)
{
    json_t *v = json_deep_copy(b->vocab);
    json_t *root = json_pack("{s:[{s:i, s:s, s:b, s:b, s:b, s:b, s:b}], s:n, "
                             "s:{s:s, s:b, s:b, s:b}, s:{s:s}, "
                             "s:{s:s, s:n, s:o, s:O}}",
                             "added_tokens", "id", eot, "content", SL_TOKENIZER_EOT,
                             "single_word", 0, "lstrip", 0, "rstrip", 0, "normalized", 1,
                             "special", 1, "normalizer", "pre_tokenizer", "type", "ByteLevel",
                             "add_prefix_space", 0, "trim_offsets", 1, "use_regex", 1,
                             "decoder", "type", "ByteLevel", "model", "type", "BPE", "dropout",
                             "vocab", v, "merges", b->merges);
    ck_assert_ptr_nonnull(root);
    char *s = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return s;
}

static char *vb_merges_txt(const vocab_b *b)
{
    size_t cap = 64, n = 0;
    char *s = malloc(cap);
    n += (size_t)sprintf(s, "#version: 0.2\n");
    for (size_t i = 0; i < json_array_size(b->merges); i++) {
        const char *m = json_string_value(json_array_get(b->merges, i));
        size_t l = strlen(m);
        while (n + l + 2 > cap)
            s = realloc(s, cap *= 2);
        memcpy(s + n, m, l);
        n += l;
        s[n++] = '\n';
    }
    s[n] = 0;
    return s;
}

static sl_tokenizer *vb_load_json(const vocab_b *b, int eot)
{
    char *j = vb_tokenizer_json(b, eot);
    sl_tokenizer *t = NULL;
    sl_err err = {0};
    int rc = sl_tokenizer_from_json(j, strlen(j), "test.json", &t, &err);
    ck_assert_msg(rc == 0, "load: %s", err.msg);
    free(j);
    return t;
}

static sl_tokenizer *vb_load_files(const vocab_b *b)
{
    char *v = json_dumps(b->vocab, JSON_COMPACT), *m = vb_merges_txt(b);
    sl_tokenizer *t = NULL;
    sl_err err = {0};
    int rc = sl_tokenizer_from_files(v, strlen(v), m, strlen(m), "vocab.json", "merges.txt", &t,
                                     &err);
    ck_assert_msg(rc == 0, "load: %s", err.msg);
    free(v);
    free(m);
    return t;
}

static void vb_fini(vocab_b *b)
{
    json_decref(b->vocab);
    json_decref(b->merges);
}

/* The small vocabulary of the known-answer tests. */
static int small_vocab(vocab_b *b)
{
    vb_init(b);
    ck_assert_int_eq(vb_merge(b, " ", "t"), 256);
    ck_assert_int_eq(vb_merge(b, "h", "e"), 257);
    ck_assert_int_eq(vb_merge(b, " t", "he"), 258);
    ck_assert_int_eq(vb_merge(b, "i", "n"), 259);
    ck_assert_int_eq(vb_merge(b, "in", "g"), 260);
    ck_assert_int_eq(vb_merge(b, "'", "s"), 261);
    return vb_eot(b); /* 262 */
}

static void expect_ids(const sl_tokenizer *t, const char *text, unsigned flags,
                       const int32_t *want, size_t nwant)
{
    sl_ids ids;
    sl_ids_init(&ids, 0);
    sl_err err = {0};
    ck_assert_int_eq(sl_tokenizer_encode(t, text, strlen(text), flags, &ids, &err), 0);
    ck_assert_uint_eq(ids.n, nwant);
    for (size_t i = 0; i < nwant; i++)
        ck_assert_msg(ids.v[i] == want[i], "\"%s\": id %zu is %d, want %d", text, i, ids.v[i],
                      want[i]);
    sl_ids_fini(&ids);
}

static void expect_round_trip(const sl_tokenizer *t, const void *text, size_t n, unsigned flags)
{
    sl_ids ids;
    sl_ids_init(&ids, 0);
    sl_err err = {0};
    ck_assert_int_eq(sl_tokenizer_encode(t, text, n, flags, &ids, &err), 0);
    size_t len = 0;
    ck_assert_int_eq(sl_tokenizer_decoded_len(t, ids.v, ids.n, &len, &err), 0);
    ck_assert_uint_eq(len, n);
    uint8_t *out = malloc(n + 1);
    ck_assert_int_eq(sl_tokenizer_decode(t, ids.v, ids.n, out, n, &len, &err), 0);
    ck_assert_uint_eq(len, n);
    ck_assert(n == 0 || memcmp(out, text, n) == 0);
    free(out);
    sl_ids_fini(&ids);
}

/* ---- core ---- */

START_TEST(test_known_ids)
{
    vocab_b b;
    int eot = small_vocab(&b);
    ck_assert_int_eq(eot, 262);
    sl_tokenizer *t = vb_load_json(&b, eot);
    ck_assert_uint_eq(sl_tokenizer_vocab_size(t), 263);
    ck_assert_int_eq(sl_tokenizer_eot(t), 262);
    ck_assert_uint_eq(sl_tokenizer_merges(t), 6);
    /* By hand: "the" -> t + he (no merge (t, he)); " thing" -> " t" h "ing";
     * "'s" is a contraction piece; "\n" is byte 10 = id 188 + 10. 't' = 116 - 33. */
    const int32_t a[] = {83, 257, 256, 71, 260, 261, 198};
    expect_ids(t, "the thing's\n", 0, a, 7);
    /* " the": (" ", t) rank 0 first, then (h, e), then (" t", he). */
    const int32_t b2[] = {258, 258};
    expect_ids(t, " the the", 0, b2, 2);
    /* Special token recognised only with the flag. */
    const int32_t c[] = {83, 257, 262, 261};
    expect_ids(t, "the<|endoftext|>'s", SL_TOKENIZER_SPECIAL, c, 4);
    /* Without: "<|" "endoftext" "|>" as bytes ('<' 27, '|' 91, '>' 29). */
    sl_ids ids;
    sl_ids_init(&ids, 0);
    sl_err err = {0};
    ck_assert_int_eq(sl_tokenizer_encode(t, "<|endoftext|>", 13, 0, &ids, &err), 0);
    ck_assert_uint_eq(ids.n, 13);
    ck_assert_int_eq(ids.v[0], 27);
    ck_assert_int_eq(ids.v[1], 91);
    ck_assert_int_eq(ids.v[12], 29);
    /* Space before a letter run joins it; whitespace before a non-space keeps
     * one space for the next piece: "a  b" -> a, " ", " b". */
    sl_ids_fini(&ids);
    const int32_t d[] = {64, 220, 220, 65};
    expect_ids(t, "a  b", 0, d, 4);
    sl_tokenizer_free(t);
    vb_fini(&b);
}
END_TEST

START_TEST(test_layouts_agree)
{
    vocab_b b;
    int eot = small_vocab(&b);
    sl_tokenizer *t1 = vb_load_json(&b, eot), *t2 = vb_load_files(&b);
    ck_assert_mem_eq(sl_tokenizer_hash(t1), sl_tokenizer_hash(t2), SL_TOKENIZER_HASH_BYTES);
    ck_assert_int_eq(sl_tokenizer_eot(t2), eot);
    ck_assert(sl_tokenizer_is_special(t2, eot));
    ck_assert(!sl_tokenizer_is_special(t2, 0));
    const char *text = "the thing's the <|endoftext|> rings\n";
    sl_ids i1, i2;
    sl_ids_init(&i1, 0);
    sl_ids_init(&i2, 0);
    sl_err err = {0};
    ck_assert_int_eq(sl_tokenizer_encode(t1, text, strlen(text), 1, &i1, &err), 0);
    ck_assert_int_eq(sl_tokenizer_encode(t2, text, strlen(text), 1, &i2, &err), 0);
    ck_assert_uint_eq(i1.n, i2.n);
    ck_assert_mem_eq(i1.v, i2.v, i1.n * sizeof *i1.v);
    /* A different merge table gives a different hash. */
    vb_merge(&b, "t", "h");
    sl_tokenizer *t3 = vb_load_files(&b);
    ck_assert(memcmp(sl_tokenizer_hash(t1), sl_tokenizer_hash(t3), SL_TOKENIZER_HASH_BYTES));
    sl_ids_fini(&i1);
    sl_ids_fini(&i2);
    sl_tokenizer_free(t1);
    sl_tokenizer_free(t2);
    sl_tokenizer_free(t3);
    vb_fini(&b);
}
END_TEST

/* Naive merger (the reference encoder's loop): find the lowest-rank pair,
 * merge all of its occurrences left to right, repeat. */
static size_t naive_bpe(int32_t *w, size_t n, const int32_t (*m)[3], size_t nm)
{
    for (;;) {
        size_t best = nm;
        for (size_t i = 0; i + 1 < n; i++)
            for (size_t r = 0; r < best; r++)
                if (m[r][0] == w[i] && m[r][1] == w[i + 1]) {
                    best = r;
                    break;
                }
        if (best == nm)
            return n;
        size_t j = 0;
        for (size_t i = 0; i < n;) {
            if (i + 1 < n && w[i] == m[best][0] && w[i + 1] == m[best][1]) {
                w[j++] = m[best][2];
                i += 2;
            } else {
                w[j++] = w[i++];
            }
        }
        n = j;
    }
}

START_TEST(test_merger_matches_naive)
{
    sl_test_rng rng = {7};
    for (int round = 0; round < 6; round++) {
        /* Merge tables in training order over the letters a, b, c: each merge
         * joins two existing tokens, so every new pair ranks after the
         * merge that made its token (as in any trained table). */
        vocab_b b;
        vb_init(&b);
        char toks[200][256];
        int ids[200], nt = 3;
        strcpy(toks[0], "a");
        strcpy(toks[1], "b");
        strcpy(toks[2], "c");
        ids[0] = 'a' - 33;
        ids[1] = 'b' - 33;
        ids[2] = 'c' - 33;
        int32_t m[200][3];
        size_t nm = 0;
        while (nm < 120 && nt < 200) {
            int x = (int)(sl_test_rand(&rng) % (uint64_t)nt);
            int y = (int)(sl_test_rand(&rng) % (uint64_t)nt);
            if (strlen(toks[x]) + strlen(toks[y]) > 40)
                continue;
            int dup = 0;
            for (size_t r = 0; r < nm; r++)
                dup |= m[r][0] == ids[x] && m[r][1] == ids[y];
            if (dup)
                continue;
            int id = vb_merge(&b, toks[x], toks[y]);
            m[nm][0] = ids[x];
            m[nm][1] = ids[y];
            m[nm][2] = id;
            nm++;
            if (id == b.next - 1) {
                size_t lx = strlen(toks[x]), ly = strlen(toks[y]);
                memcpy(toks[nt], toks[x], lx);
                memcpy(toks[nt] + lx, toks[y], ly + 1);
                ids[nt++] = id;
            }
        }
        int eot = vb_eot(&b);
        sl_tokenizer *t = vb_load_json(&b, eot);
        for (int it = 0; it < 300; it++) {
            /* Lengths on both sides of the short/heap switch (48 bytes). */
            size_t n = 1 + sl_test_rand(&rng) % (it % 3 == 0 ? 400 : 60);
            char word[512];
            int32_t w[512];
            for (size_t i = 0; i < n; i++) {
                word[i] = (char)('a' + sl_test_rand(&rng) % 3);
                w[i] = word[i] - 33;
            }
            size_t k = naive_bpe(w, n, (const int32_t(*)[3])m, nm);
            sl_ids got;
            sl_ids_init(&got, 0);
            sl_err err = {0};
            ck_assert_int_eq(sl_tokenizer_encode(t, word, n, 0, &got, &err), 0);
            ck_assert_uint_eq(got.n, k);
            ck_assert_mem_eq(got.v, w, k * sizeof *w);
            sl_ids_fini(&got);
        }
        sl_tokenizer_free(t);
        vb_fini(&b);
    }
}
END_TEST

/* Text that exercises every branch of the pattern. */
static const char *const HARD[] = {
    " ", "\t", "\n", "\r\n", "\v", "\f", "\xc2\x85" /* U+0085 */, "\xc2\xa0" /* U+00A0 */,
    "\xe2\x80\xa8" /* U+2028 */, "\xe2\x80\xa9", "\xe3\x80\x80" /* U+3000 */,
    "\xef\xbb\xbf" /* U+FEFF */, "\xe1\xa0\x8e" /* U+180E */, "\xe1\x9a\x80", "\xe2\x80\x8a",
    "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "don't", " I'm", "2024", " 3.14",
    "\xd9\xa3" /* Arabic-Indic 3 */, "caf\xc3\xa9", "e\xcc\x81" /* e + combining acute */,
    "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e" /* CJK */, "\xed\x95\x9c",
    "\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa7" /* ZWJ */,
    "\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd", "!!", "...", " --", "\xe2\x80\x94", "<|endoftext|>",
    "<|", "|>", "the", " thing", "\xff", "\xc3", "\xe2\x80", "\xed\xa0\x80" /* surrogate */,
    "\xf4\x90\x80\x80" /* > U+10FFFF */, "\xc0\xaf" /* overlong */, "\x80\x80", "", "a",
};

START_TEST(test_round_trip_hard)
{
    vocab_b b;
    int eot = small_vocab(&b);
    sl_tokenizer *t = vb_load_json(&b, eot);
    sl_test_rng rng = {11};
    size_t nh = sizeof HARD / sizeof HARD[0];
    for (int it = 0; it < 400; it++) {
        char text[4096];
        size_t n = 0;
        while (n < 2000) {
            const char *h = HARD[sl_test_rand(&rng) % nh];
            size_t l = strlen(h);
            memcpy(text + n, h, l);
            n += l;
            if (sl_test_rand(&rng) % 5 == 0)
                text[n++] = 0; /* NUL bytes are text */
        }
        expect_round_trip(t, text, n, 0);
        expect_round_trip(t, text, n, SL_TOKENIZER_SPECIAL);
    }
    /* Random bytes, mostly invalid UTF-8. */
    for (int it = 0; it < 200; it++) {
        uint8_t text[1024];
        size_t n = sl_test_rand(&rng) % sizeof text;
        for (size_t i = 0; i < n; i++)
            text[i] = (uint8_t)sl_test_rand(&rng);
        expect_round_trip(t, text, n, SL_TOKENIZER_SPECIAL);
    }
    sl_tokenizer_free(t);
    vb_fini(&b);
}
END_TEST

typedef struct cat_ctx {
    uint8_t buf[8192];
    size_t n, pieces;
    size_t len[16]; /* lengths of the first pieces */
} cat_ctx;

static int cat_piece(void *v, const uint8_t *p, size_t n)
{
    cat_ctx *c = v;
    ck_assert_uint_gt(n, 0);
    memcpy(c->buf + c->n, p, n);
    c->n += n;
    if (c->pieces < 16)
        c->len[c->pieces] = n;
    c->pieces++;
    return 0;
}

START_TEST(test_pretok_pieces_and_cuts)
{
    sl_pretok *p = NULL;
    sl_err err = {0};
    ck_assert_int_eq(sl_pretok_create(&p, &err), 0);
    /* Whitespace before a word leaves its last space to the word. */
    cat_ctx c = {.n = 0};
    const char *s = "Hello   world\xc2\x85 \xe1\xa0\x8e!";
    ck_assert_int_eq(sl_pretok_each(p, s, strlen(s), cat_piece, &c, &err), 0);
    /* Hello | "  " | " world" | U+0085 (ws, followed by ' ' then U+180E:
     * \s+(?!\S) takes U+0085 only) | " " + U+180E + "!" as punctuation. */
    ck_assert_uint_eq(c.pieces, 5);
    const size_t want[] = {5, 2, 6, 2, 5};
    for (int i = 0; i < 5; i++)
        ck_assert_uint_eq(c.len[i], want[i]);
    ck_assert_mem_eq(c.buf, s, strlen(s));
    /* Cutting at sl_pretok_safe_cut gives the same pieces as the whole. */
    sl_test_rng rng = {3};
    size_t nh = sizeof HARD / sizeof HARD[0];
    for (int it = 0; it < 200; it++) {
        char text[3000];
        size_t n = 0;
        while (n < 1500) {
            const char *h = HARD[sl_test_rand(&rng) % nh];
            memcpy(text + n, h, strlen(h));
            n += strlen(h);
        }
        cat_ctx whole = {.n = 0}, a = {.n = 0}, bb = {.n = 0};
        ck_assert_int_eq(sl_pretok_each(p, text, n, cat_piece, &whole, &err), 0);
        size_t lim = 1 + sl_test_rand(&rng) % n;
        size_t cut = sl_pretok_safe_cut((const uint8_t *)text, lim);
        if (cut == 0)
            continue;
        ck_assert_int_eq(sl_pretok_each(p, text, cut, cat_piece, &a, &err), 0);
        ck_assert_int_eq(sl_pretok_each(p, text + cut, n - cut, cat_piece, &bb, &err), 0);
        ck_assert_uint_eq(a.pieces + bb.pieces, whole.pieces);
    }
    /* Every byte value maps to one alphabet code point and back. */
    for (int x = 0; x < 256; x++)
        ck_assert_int_eq(sl_pretok_char_byte(sl_pretok_byte_char((uint8_t)x)), x);
    ck_assert_uint_eq(sl_pretok_byte_char(' '), 0x120);  /* "Ġ" */
    ck_assert_uint_eq(sl_pretok_byte_char('\n'), 0x10A); /* "Ċ" */
    sl_pretok_free(p);
}
END_TEST

static char *read_file(const char *dir, const char *name, size_t *n)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    uint8_t *buf = NULL;
    sl_err err = {0};
    ck_assert_msg(sl_fs_read_all(path, 1 << 26, &buf, n, &err) == 0, "%s", err.msg);
    return (char *)buf;
}

START_TEST(test_train_known_answer)
{
    /* Pieces "ab" once, " ab" twice: (a, b) occurs 3 times, then (" ", ab)
     * twice; min count 2 stops there. The separator never joins a piece. */
    sl_bpe_trainer *tr = NULL;
    sl_err err = {0};
    ck_assert_int_eq(sl_bpe_train_create(&tr, &err), 0);
    const char *text = "ab ab<|endoftext|> ab";
    ck_assert_int_eq(sl_bpe_train_feed(tr, text, strlen(text), &err), 0);
    ck_assert_uint_eq(sl_bpe_train_pieces(tr), 2);
    ck_assert_int_eq(sl_bpe_train_run(tr, 1000, 2, &err), 0);
    ck_assert_uint_eq(sl_bpe_train_vocab_size(tr), 259);
    char dir[300];
    snprintf(dir, sizeof dir, "%s/tok", sl_test_tmpdir());
    ck_assert_int_eq(sl_bpe_train_write(tr, dir, &err), 0);
    size_t n;
    char *m = read_file(dir, "merges.txt", &n);
    ck_assert_str_eq(m, "#version: 0.2\na b\n\xc4\xa0 ab\n");
    free(m);
    sl_tokenizer *t = NULL;
    ck_assert_int_eq(sl_tokenizer_load(dir, &t, &err), 0);
    ck_assert_int_eq(sl_tokenizer_eot(t), 258);
    expect_ids(t, "ab ab<|endoftext|>", SL_TOKENIZER_SPECIAL, (const int32_t[]){256, 257, 258}, 3);
    sl_tokenizer_free(t);
    sl_bpe_train_free(tr);
}
END_TEST

static void train_dir(const char *corpus, size_t n, uint32_t vocab, const char *dir)
{
    sl_bpe_trainer *tr = NULL;
    sl_err err = {0};
    ck_assert_int_eq(sl_bpe_train_create(&tr, &err), 0);
    ck_assert_int_eq(sl_bpe_train_feed(tr, corpus, n, &err), 0);
    ck_assert_int_eq(sl_bpe_train_run(tr, vocab, 1, &err), 0);
    ck_assert_msg(sl_bpe_train_write(tr, dir, &err) == 0, "%s", err.msg);
    sl_bpe_train_free(tr);
}

START_TEST(test_train_round_trip_and_determinism)
{
    sl_test_rng rng = {5};
    size_t nh = sizeof HARD / sizeof HARD[0];
    static const char *const words[] = {" the", " cat", " sat", " on", " mat", "\n", ".", ","};
    size_t cap = 200000, n = 0;
    char *corpus = malloc(cap + 64);
    while (n < cap) {
        const char *w = sl_test_rand(&rng) % 4 ? words[sl_test_rand(&rng) % 8]
                                               : HARD[sl_test_rand(&rng) % nh];
        memcpy(corpus + n, w, strlen(w));
        n += strlen(w);
    }
    const char *tmp = sl_test_tmpdir();
    char d1[300], d2[300];
    snprintf(d1, sizeof d1, "%s/a", tmp);
    snprintf(d2, sizeof d2, "%s/b", tmp);
    train_dir(corpus, n, 400, d1);
    train_dir(corpus, n, 400, d2);
    static const char *const files[] = {"vocab.json", "merges.txt", "tokenizer.json"};
    for (int f = 0; f < 3; f++) {
        size_t n1, n2;
        char *x = read_file(d1, files[f], &n1), *y = read_file(d2, files[f], &n2);
        ck_assert_uint_eq(n1, n2);
        ck_assert_mem_eq(x, y, n1);
        free(x);
        free(y);
    }
    sl_tokenizer *t = NULL;
    sl_err err = {0};
    ck_assert_int_eq(sl_tokenizer_load(d1, &t, &err), 0);
    ck_assert_uint_eq(sl_tokenizer_vocab_size(t), 400);
    ck_assert_int_eq(sl_tokenizer_eot(t), 399);
    expect_round_trip(t, corpus, n, SL_TOKENIZER_SPECIAL);
    /* Frequent words became single tokens. */
    sl_ids ids;
    sl_ids_init(&ids, 0);
    ck_assert_int_eq(sl_tokenizer_encode(t, " the cat", 8, 0, &ids, &err), 0);
    ck_assert_uint_eq(ids.n, 2);
    /* The vocab.json + merges.txt layout gives the same tokenizer. */
    char p[400];
    snprintf(p, sizeof p, "%s/tokenizer.json", d1);
    ck_assert_int_eq(unlink(p), 0);
    sl_tokenizer *t2 = NULL;
    ck_assert_int_eq(sl_tokenizer_load(d1, &t2, &err), 0);
    ck_assert_mem_eq(sl_tokenizer_hash(t), sl_tokenizer_hash(t2), SL_TOKENIZER_HASH_BYTES);
    sl_tokenizer_free(t2);
    sl_tokenizer_free(t);
    sl_ids_fini(&ids);
    free(corpus);
}
END_TEST

/* ---- limits ---- */

START_TEST(test_buffer_limits)
{
    vocab_b b;
    int eot = small_vocab(&b);
    sl_tokenizer *t = vb_load_json(&b, eot);
    sl_ids ids;
    sl_ids_init(&ids, 5);
    sl_err err = {0};
    ck_assert_int_eq(sl_tokenizer_encode(t, " the", 4, 0, &ids, &err), 0);
    ck_assert_uint_eq(ids.n, 1);
    /* 8 more ids would pass the limit of 5: refused, n restored. */
    ck_assert_int_eq(sl_tokenizer_encode(t, "abcdefgh", 8, 0, &ids, &err), SL_ELIMIT);
    ck_assert_uint_eq(ids.n, 1);
    ck_assert_int_eq(ids.v[0], 258);
    uint8_t out[4];
    size_t len = 99;
    int32_t two[] = {258, 258};
    ck_assert_int_eq(sl_tokenizer_decode(t, two, 2, out, sizeof out, &len, &err), SL_ELIMIT);
    ck_assert_uint_eq(len, 99);
    int32_t bad[] = {1, 263};
    ck_assert_int_eq(sl_tokenizer_decode(t, bad, 2, out, sizeof out, &len, &err), SL_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "263"));
    ck_assert_ptr_nonnull(strstr(err.msg, "position 1"));
    ck_assert_ptr_null(sl_tokenizer_token(t, -1, &len));
    sl_ids_fini(&ids);
    /* A piece of 1 MB (one letter run) goes through the heap merger. */
    size_t big = 1 << 20;
    char *s = malloc(big);
    for (size_t i = 0; i < big; i++)
        s[i] = "thing"[i % 5];
    expect_round_trip(t, s, big, 0);
    free(s);
    sl_tokenizer_free(t);
    vb_fini(&b);
}
END_TEST

START_TEST(test_train_limits)
{
    sl_bpe_trainer *tr = NULL;
    sl_err err = {0};
    ck_assert_int_eq(sl_bpe_train_create(&tr, &err), 0);
    ck_assert_int_eq(sl_bpe_train_write(tr, "/nonexistent", &err), SL_ESTATE);
    ck_assert_int_eq(sl_bpe_train_run(tr, 256, 1, &err), SL_EINVAL);
    ck_assert_int_eq(sl_bpe_train_run(tr, SL_BPE_TRAIN_MAX_VOCAB + 1, 1, &err), SL_EINVAL);
    /* A piece over the length limit is not counted. */
    char big[SL_BPE_TRAIN_MAX_PIECE + 1];
    memset(big, 'x', sizeof big);
    ck_assert_int_eq(sl_bpe_train_feed(tr, big, sizeof big, &err), 0);
    ck_assert_uint_eq(sl_bpe_train_pieces(tr), 0);
    /* Nothing to merge: the vocabulary is the bytes and <|endoftext|>. */
    ck_assert_int_eq(sl_bpe_train_run(tr, 1000, 1, &err), 0);
    ck_assert_uint_eq(sl_bpe_train_vocab_size(tr), 257);
    ck_assert_int_eq(sl_bpe_train_feed(tr, "a", 1, &err), SL_ESTATE);
    sl_bpe_train_free(tr);
}
END_TEST

/* ---- malformed ---- */

static void expect_json_refused(const char *json, const char *want)
{
    sl_tokenizer *t = (sl_tokenizer *)0x1;
    sl_err err = {0};
    int rc = sl_tokenizer_from_json(json, strlen(json), "dir/tokenizer.json", &t, &err);
    ck_assert_msg(rc < 0, "accepted a file that should fail with \"%s\"", want);
    ck_assert_ptr_eq(t, (sl_tokenizer *)0x1);
    ck_assert_msg(strstr(err.msg, "dir/tokenizer.json") && strstr(err.msg, want),
                  "message \"%s\" lacks \"%s\"", err.msg, want);
}

/* Edits a valid tokenizer.json: path "a.b" set to a JSON value. */
static char *edited(const vocab_b *b, int eot, const char *obj, const char *key, const char *val)
{
    char *s = vb_tokenizer_json(b, eot);
    json_t *root = json_loads(s, 0, NULL);
    free(s);
    json_t *target = obj ? json_object_get(root, obj) : root;
    if (val)
        json_object_set_new(target, key, json_loads(val, JSON_DECODE_ANY, NULL));
    else
        json_object_del(target, key);
    s = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return s;
}

START_TEST(test_malformed_json)
{
    vocab_b b;
    int eot = small_vocab(&b);
    struct {
        const char *obj, *key, *val, *want;
    } cases[] = {
        {"model", "type", "\"WordPiece\"", "model.type"},
        {"model", "byte_fallback", "true", "byte_fallback"},
        {"model", "merges", "[\"h e x\"]", "model.merges[0]"},
        {"model", "merges", "[\"qq z\"]", "\"qq\" is not in"},
        {"model", "merges", "[\"t t\"]", "merged token"},
        {"model", "merges", "{}", "model.merges"},
        {"model", "vocab", "{\"a\": 0}", "added_tokens[0]"},
        {"model", "vocab", "[]", "model.vocab"},
        {"pre_tokenizer", "add_prefix_space", "true", "add_prefix_space"},
        {"pre_tokenizer", "type", "\"Whitespace\"", "pre_tokenizer"},
        {NULL, "normalizer", "{\"type\": \"NFC\"}", "normalizer"},
        {NULL, "model", NULL, "model"},
        {NULL, "added_tokens", "[{\"id\": 5, \"content\": \"<|endoftext|>\"}]", "added_tokens[0]"},
        {NULL, "added_tokens", "[{\"id\": 999, \"content\": \"x\"}]", "added_tokens[0]"},
        {NULL, "added_tokens", "[{\"id\": 262, \"content\": \"<|eot|>\", \"lstrip\": true}]",
         "lstrip"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *s = edited(&b, eot, cases[i].obj, cases[i].key, cases[i].val);
        expect_json_refused(s, cases[i].want);
        free(s);
    }
    /* Id given twice; a byte without its token; no <|endoftext|>. */
    json_t *v = json_object_get(b.vocab, "ing");
    json_integer_set(v, 259);
    char *s = vb_tokenizer_json(&b, eot);
    expect_json_refused(s, "id 259 is given to two");
    free(s);
    json_integer_set(v, 260);
    char key[4];
    json_t *saved = json_incref(json_object_get(b.vocab, spell1("\x01", 1, key)));
    json_object_del(b.vocab, key);
    json_object_set_new(b.vocab, "zz", saved); /* keeps ids dense */
    s = vb_tokenizer_json(&b, eot);
    expect_json_refused(s, "no token for byte 0x01");
    free(s);
    vb_fini(&b);
    vb_init(&b);
    s = vb_tokenizer_json(&b, 256);
    json_t *root = json_loads(s, 0, NULL);
    free(s);
    json_object_set_new(root, "added_tokens", json_array());
    s = json_dumps(root, 0);
    json_decref(root);
    expect_json_refused(s, "no \"<|endoftext|>\"");
    free(s);
    vb_fini(&b);
    /* Duplicate keys, and every truncation of a valid file. */
    expect_json_refused("{\"model\": {}, \"model\": {}}", "duplicate");
    small_vocab(&b);
    s = vb_tokenizer_json(&b, eot);
    size_t n = strlen(s);
    for (size_t cut = 0; cut < n; cut += 1 + cut / 64) {
        sl_tokenizer *t = NULL;
        sl_err err = {0};
        ck_assert_int_eq(sl_tokenizer_from_json(s, cut, "dir/tokenizer.json", &t, &err),
                         SL_EFORMAT);
        ck_assert_ptr_nonnull(strstr(err.msg, "dir/tokenizer.json"));
    }
    free(s);
    vb_fini(&b);
}
END_TEST

START_TEST(test_malformed_files)
{
    vocab_b b;
    small_vocab(&b);
    char *v = json_dumps(b.vocab, JSON_COMPACT);
    struct {
        const char *merges, *want;
    } cases[] = {
        {"#version: 0.2\nh e\n\ni n\n", "line 3"},
        {"h  e\n", "line 1"},
        {"h\n", "line 1"},
        {"#version: 0.2\nh e\r\nx y\n", "merge 1"},
        {"h e\nq q\n", "merge 1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sl_tokenizer *t = NULL;
        sl_err err = {0};
        int rc = sl_tokenizer_from_files(v, strlen(v), cases[i].merges, strlen(cases[i].merges),
                                         "d/vocab.json", "d/merges.txt", &t, &err);
        ck_assert_int_lt(rc, 0);
        ck_assert_ptr_null(t);
        ck_assert_msg(strstr(err.msg, "d/merges.txt") && strstr(err.msg, cases[i].want),
                      "case %zu: \"%s\"", i, err.msg);
    }
    /* "\r\n" line ends are accepted as Hugging Face accepts them. */
    sl_tokenizer *t = NULL;
    sl_err err = {0};
    const char *crlf = "#version: 0.2\r\nh e\r\n";
    ck_assert_int_eq(sl_tokenizer_from_files(v, strlen(v), crlf, strlen(crlf), "d/vocab.json",
                                             "d/merges.txt", &t, &err), 0);
    sl_tokenizer_free(t);
    /* Broken vocab.json. */
    ck_assert_int_eq(sl_tokenizer_from_files("{\"a\": -1}", 9, "", 0, "d/vocab.json",
                                             "d/merges.txt", &t, &err), SL_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "d/vocab.json"));
    ck_assert_int_eq(sl_tokenizer_from_files("[1,", 3, "", 0, "d/vocab.json", "d/merges.txt",
                                             &t, &err), SL_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "d/vocab.json"));
    /* Missing folder / files. */
    ck_assert_int_eq(sl_tokenizer_load(sl_test_tmpdir(), &t, &err), SL_ENOTFOUND);
    free(v);
    vb_fini(&b);
}
END_TEST

Suite *tokenizer_suite(void)
{
    Suite *s = suite_create("tokenizer");
    TCase *core = tcase_create("core");
    tcase_set_timeout(core, 120); /* sanitizer builds on a shared 2-core machine */
    tcase_add_test(core, test_known_ids);
    tcase_add_test(core, test_layouts_agree);
    tcase_add_test(core, test_merger_matches_naive);
    tcase_add_test(core, test_round_trip_hard);
    tcase_add_test(core, test_pretok_pieces_and_cuts);
    tcase_add_test(core, test_train_known_answer);
    tcase_add_test(core, test_train_round_trip_and_determinism);
    suite_add_tcase(s, core);
    TCase *lim = tcase_create("limits");
    tcase_set_timeout(lim, 120); /* sanitizer builds on a shared 2-core machine */
    tcase_add_test(lim, test_buffer_limits);
    tcase_add_test(lim, test_train_limits);
    suite_add_tcase(s, lim);
    TCase *bad = tcase_create("malformed");
    tcase_set_timeout(bad, 120); /* sanitizer builds on a shared 2-core machine */
    tcase_add_test(bad, test_malformed_json);
    tcase_add_test(bad, test_malformed_files);
    suite_add_tcase(s, bad);
    return s;
}
