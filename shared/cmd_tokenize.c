#include "shared/cmd_tokenize.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>
#include <unistd.h>

#include "shared/bpe_train.h"
#include "shared/cli.h"
#include "shared/tokenizer.h"

/* Reads all of stdin (binary) into a malloc'd buffer. */
static int read_stdin(uint8_t **out, size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    if (!buf)
        return sl_cli_fail(NULL, "tokenize: out of memory");
    for (;;) {
        if (n == cap) {
            if (cap >= SL_CMD_TOKENIZE_MAX_INPUT) {
                free(buf);
                return sl_cli_fail(NULL, "tokenize: stdin exceeds the limit of %u bytes",
                                   SL_CMD_TOKENIZE_MAX_INPUT);
            }
            uint8_t *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                return sl_cli_fail(NULL, "tokenize: out of memory reading stdin");
            }
            buf = nb;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n, stdin);
        n += r;
        if (r == 0) {
            if (ferror(stdin)) {
                free(buf);
                return sl_cli_fail(NULL, "tokenize: reading stdin: %s", strerror(errno));
            }
            break;
        }
    }
    *out = buf;
    *len = n;
    return 0;
}

/* Parses ids: a JSON array of integers, or decimal integers separated by
 * whitespace. */
static int parse_ids(const uint8_t *s, size_t n, sl_ids *ids)
{
    sl_err err = {0};
    size_t i = 0;
    while (i < n && isspace(s[i]))
        i++;
    if (i < n && s[i] == '[') {
        json_error_t je;
        json_t *a = json_loadb((const char *)s, n, 0, &je);
        if (!a || !json_is_array(a)) {
            json_decref(a);
            return sl_cli_fail(NULL, "tokenize --decode: stdin: not a JSON array of ids (line %d "
                               "column %d: %s)", je.line, je.column, a ? "not an array" : je.text);
        }
        for (size_t k = 0; k < json_array_size(a); k++) {
            json_t *v = json_array_get(a, k);
            if (!json_is_integer(v) || json_integer_value(v) < 0 ||
                json_integer_value(v) > INT32_MAX) {
                json_decref(a);
                return sl_cli_fail(NULL, "tokenize --decode: stdin: element %zu is not a token "
                                   "id", k);
            }
            if (sl_ids_push(ids, (int32_t)json_integer_value(v), &err)) {
                json_decref(a);
                return sl_cli_fail(NULL, "tokenize --decode: %s", err.msg);
            }
        }
        json_decref(a);
        return 0;
    }
    for (size_t k = 0; i < n; k++) {
        size_t st = i;
        long long v = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9' && v <= INT32_MAX)
            v = v * 10 + (s[i++] - '0');
        if (i == st || v > INT32_MAX || (i < n && !isspace(s[i])))
            return sl_cli_fail(NULL, "tokenize --decode: stdin: id %zu (\"%.20s\") is not a "
                               "non-negative integer", k, (const char *)s + st);
        if (sl_ids_push(ids, (int32_t)v, &err))
            return sl_cli_fail(NULL, "tokenize --decode: %s", err.msg);
        while (i < n && isspace(s[i]))
            i++;
    }
    return 0;
}

static void usage_tokenize(FILE *f)
{
    fprintf(f,
            "usage: %s tokenize --tokenizer DIR [--json] [--no-special]\n"
            "       %s tokenize --tokenizer DIR --decode\n\n"
            "Reads all of stdin as one text and prints its token ids on one line, separated by\n"
            "single spaces (--json: a JSON array). With --decode, reads ids (whitespace\n"
            "separated, or a JSON array) and writes the exact text back.\n\n"
            "  --tokenizer DIR  folder with tokenizer.json, or vocab.json + merges.txt\n"
            "                   (a model folder works)\n"
            "  --json           print a JSON array\n"
            "  --no-special     encode <|endoftext|> in the text as plain text, not as its\n"
            "                   special id\n"
            "  --decode         ids on stdin to text on stdout\n",
            sl_cli_prog(), sl_cli_prog());
}

int sl_cmd_tokenize_run(int argc, char **argv)
{
    if (sl_cli_wants_help(argc, argv)) {
        usage_tokenize(stdout);
        return 0;
    }
    const char *dir = NULL;
    int json = 0, decode = 0, special = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--tokenizer") == 0 && i + 1 < argc)
            dir = argv[++i];
        else if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else if (strcmp(argv[i], "--decode") == 0)
            decode = 1;
        else if (strcmp(argv[i], "--no-special") == 0)
            special = 0;
        else
            return sl_cli_fail(NULL, "tokenize: unexpected argument '%s' (see --help)",
                               argv[i]), 2;
    }
    if (!dir)
        return sl_cli_fail(NULL, "tokenize: --tokenizer DIR is required"), 2;
    sl_err err = {0};
    sl_tokenizer *tok = NULL;
    if (sl_tokenizer_load(dir, &tok, &err))
        return sl_cli_fail(NULL, "tokenize: %s", err.msg);
    uint8_t *in = NULL, *text = NULL;
    size_t n = 0;
    sl_ids ids;
    sl_ids_init(&ids, 0);
    int rc = read_stdin(&in, &n);
    if (rc)
        goto out;
    if (decode) {
        size_t len;
        if ((rc = parse_ids(in, n, &ids)) != 0)
            goto out;
        if (sl_tokenizer_decoded_len(tok, ids.v, ids.n, &len, &err) ||
            !(text = malloc(len + 1)) ||
            sl_tokenizer_decode(tok, ids.v, ids.n, text, len, &len, &err)) {
            rc = sl_cli_fail(NULL, "tokenize --decode: %s", text || err.code ? err.msg
                                                                            : "out of memory");
            goto out;
        }
        if (fwrite(text, 1, len, stdout) != len || fflush(stdout) != 0) {
            rc = sl_cli_fail(NULL, "tokenize: writing stdout: %s", strerror(errno));
            goto out;
        }
        goto out;
    }
    if (sl_tokenizer_encode(tok, in, n, special ? SL_TOKENIZER_SPECIAL : 0, &ids, &err)) {
        rc = sl_cli_fail(NULL, "tokenize: %s", err.msg);
        goto out;
    }
    if (json)
        putchar('[');
    for (size_t i = 0; i < ids.n; i++)
        printf(i ? (json ? ", %d" : " %d") : "%d", ids.v[i]);
    if (json)
        putchar(']');
    putchar('\n');
    if (fflush(stdout) != 0)
        rc = sl_cli_fail(NULL, "tokenize: writing stdout: %s", strerror(errno));
out:
    free(text);
    free(in);
    sl_ids_fini(&ids);
    sl_tokenizer_free(tok);
    return rc;
}

/* ---- train-tokenizer ---- */

static int feed_path(sl_bpe_trainer *tr, const char *path, size_t *files, sl_err *err);

static int feed_dir(sl_bpe_trainer *tr, const char *dir, size_t *files, sl_err *err)
{
    struct dirent **list = NULL;
    int n = scandir(dir, &list, NULL, alphasort); /* sorted: deterministic order */
    if (n < 0)
        return sl_err_errno(err, "%s: scandir", dir);
    int rc = 0;
    for (int i = 0; i < n; i++) {
        if (rc == 0 && list[i]->d_name[0] != '.') {
            char p[4096];
            if (snprintf(p, sizeof p, "%s/%s", dir, list[i]->d_name) >= (int)sizeof p)
                rc = sl_err_set(err, SL_ELIMIT, "%s/%s: path too long", dir, list[i]->d_name);
            else
                rc = feed_path(tr, p, files, err);
        }
        free(list[i]);
    }
    free(list);
    return rc;
}

static int feed_path(sl_bpe_trainer *tr, const char *path, size_t *files, sl_err *err)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return errno == ENOENT ? sl_err_set(err, SL_ENOTFOUND, "%s: no such file", path)
                               : sl_err_errno(err, "%s: stat", path);
    if (S_ISDIR(st.st_mode))
        return feed_dir(tr, path, files, err);
    (*files)++;
    return sl_bpe_train_feed_file(tr, path, err);
}

int sl_cmd_tokenize_train(int argc, char **argv)
{
    if (sl_cli_wants_help(argc, argv)) {
        printf("usage: %s train-tokenizer --vocab-size N --out DIR [--min-count N] PATH...\n\n"
               "Trains a GPT-2-style byte-level BPE tokenizer on the text files given (folders\n"
               "are read recursively, in name order) and writes vocab.json, merges.txt,\n"
               "tokenizer.json and tokenizer_config.json into DIR. <|endoftext|> in the text\n"
               "separates documents; it gets the last id. The same input gives the same files.\n\n"
               "  --vocab-size N  tokens in the vocabulary, <|endoftext|> included (257..%u)\n"
               "  --min-count N   stop early when no pair occurs N times (default 2)\n",
               sl_cli_prog(), SL_BPE_TRAIN_MAX_VOCAB);
        return 0;
    }
    const char *out = NULL;
    long vocab = 0;
    long long minc = 2;
    int first_path = argc;
    for (int i = 1; i < argc; i++) {
        char *end = NULL;
        if (strcmp(argv[i], "--vocab-size") == 0 && i + 1 < argc) {
            vocab = strtol(argv[++i], &end, 10);
            if (*end || vocab < 257 || vocab > (long)SL_BPE_TRAIN_MAX_VOCAB)
                return sl_cli_fail(NULL, "train-tokenizer: --vocab-size '%s' is not in "
                                   "[257, %u]", argv[i], SL_BPE_TRAIN_MAX_VOCAB), 2;
        } else if (strcmp(argv[i], "--min-count") == 0 && i + 1 < argc) {
            minc = strtoll(argv[++i], &end, 10);
            if (*end || minc < 1)
                return sl_cli_fail(NULL, "train-tokenizer: --min-count '%s' is not a positive "
                                   "integer", argv[i]), 2;
        } else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) {
            out = argv[++i];
        } else if (argv[i][0] == '-') {
            return sl_cli_fail(NULL, "train-tokenizer: unexpected argument '%s' (see --help)",
                               argv[i]), 2;
        } else {
            first_path = i;
            break;
        }
    }
    if (!out || !vocab || first_path >= argc)
        return sl_cli_fail(NULL, "train-tokenizer: needs --vocab-size N, --out DIR and at least "
                           "one PATH"), 2;
    sl_err err = {0};
    sl_bpe_trainer *tr = NULL;
    size_t files = 0;
    int rc = sl_bpe_train_create(&tr, &err);
    for (int i = first_path; rc == 0 && i < argc; i++)
        rc = feed_path(tr, argv[i], &files, &err);
    if (rc == 0)
        rc = sl_bpe_train_run(tr, (uint32_t)vocab, (uint64_t)minc, &err);
    if (rc == 0)
        rc = sl_bpe_train_write(tr, out, &err);
    if (rc == 0)
        fprintf(stderr, "train-tokenizer: %zu files, %zu distinct pieces, %u tokens -> %s\n",
                files, sl_bpe_train_pieces(tr), sl_bpe_train_vocab_size(tr), out);
    sl_bpe_train_free(tr);
    return rc ? sl_cli_fail(NULL, "train-tokenizer: %s", err.msg) : 0;
}
