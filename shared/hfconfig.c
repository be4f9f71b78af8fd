#include "shared/hfconfig.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/fsutil.h"

void sl_hfconfig_default(sl_gpt2_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->n_layer = 12;
    cfg->n_head = 12;
    cfg->n_embd = 768;
    cfg->n_positions = 1024;
    cfg->vocab_size = 50257;
    cfg->n_inner = 0;
    cfg->layer_norm_epsilon = 1e-5f;
    cfg->bos_token_id = 50256;
    cfg->eos_token_id = 50256;
    snprintf(cfg->activation_function, sizeof cfg->activation_function, "gelu_new");
    cfg->tie_word_embeddings = 1;
}

uint64_t sl_hfconfig_nparams(const sl_gpt2_config *c)
{
    uint64_t C = (uint64_t)c->n_embd, I = c->n_inner ? (uint64_t)c->n_inner : 4 * C;
    uint64_t block = 2 * C                 /* ln_1 */
                     + C * 3 * C + 3 * C   /* attn.c_attn */
                     + C * C + C           /* attn.c_proj */
                     + 2 * C               /* ln_2 */
                     + C * I + I           /* mlp.c_fc */
                     + I * C + C;          /* mlp.c_proj */
    uint64_t n = (uint64_t)c->vocab_size * C + (uint64_t)c->n_positions * C +
                 (uint64_t)c->n_layer * block + 2 * C;
    if (!c->tie_word_embeddings)
        n += (uint64_t)c->vocab_size * C;
    return n;
}

#define RANGE(field, lo, hi)                                                                \
    do {                                                                                    \
        if (cfg->field < (lo) || cfg->field > (hi))                                         \
            return sl_err_set(err, SL_EINVAL, #field " = %d is outside %d..%d",             \
                              cfg->field, (int)(lo), (int)(hi));                            \
    } while (0)

int sl_hfconfig_validate(const sl_gpt2_config *cfg, sl_err *err)
{
    RANGE(n_layer, 1, SL_HFCONFIG_MAX_LAYER);
    RANGE(n_head, 1, SL_HFCONFIG_MAX_HEAD);
    RANGE(n_embd, 1, SL_HFCONFIG_MAX_EMBD);
    RANGE(n_positions, 1, SL_HFCONFIG_MAX_POSITIONS);
    RANGE(vocab_size, 1, SL_HFCONFIG_MAX_VOCAB);
    RANGE(n_inner, 0, SL_HFCONFIG_MAX_INNER);
    RANGE(bos_token_id, 0, cfg->vocab_size - 1);
    RANGE(eos_token_id, 0, cfg->vocab_size - 1);
    if (cfg->n_embd % cfg->n_head != 0)
        return sl_err_set(err, SL_EINVAL, "n_embd = %d is not a multiple of n_head = %d",
                          cfg->n_embd, cfg->n_head);
    if (!(cfg->layer_norm_epsilon > 0.0f && cfg->layer_norm_epsilon < 1.0f))
        return sl_err_set(err, SL_EINVAL, "layer_norm_epsilon = %g is outside (0, 1)",
                          (double)cfg->layer_norm_epsilon);
    if (strnlen(cfg->activation_function, sizeof cfg->activation_function) ==
            sizeof cfg->activation_function ||
        strcmp(cfg->activation_function, "gelu_new") != 0)
        return sl_err_set(err, SL_EINVAL, "activation_function \"%.31s\" is not supported "
                          "(only \"gelu_new\", the tanh GELU of GPT-2)",
                          cfg->activation_function);
    if (cfg->tie_word_embeddings != 0 && cfg->tie_word_embeddings != 1)
        return sl_err_set(err, SL_EINVAL, "tie_word_embeddings = %d is not 0 or 1",
                          cfg->tie_word_embeddings);
    uint64_t n = sl_hfconfig_nparams(cfg);
    if (n > SL_HFCONFIG_MAX_PARAMS)
        return sl_err_set(err, SL_ELIMIT, "%llu parameters exceed the limit of %llu",
                          (unsigned long long)n, (unsigned long long)SL_HFCONFIG_MAX_PARAMS);
    return 0;
}

/* A short printable rendering of a JSON value for messages. */
static void show(const json_t *v, char *out, size_t cap)
{
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    if (!s)
        snprintf(out, cap, "(unprintable)");
    else if (strlen(s) > 48)
        snprintf(out, cap, "%.45s...", s);
    else
        snprintf(out, cap, "%s", s);
    free(s);
}

static int bad(sl_err *err, const char *what, const char *key, const json_t *v,
               const char *expect)
{
    char b[64];
    show(v, b, sizeof b);
    return sl_err_set(err, SL_EINVAL, "%s: key '%s' is %s, expected %s", what, key, b, expect);
}

static int get_int(json_t *root, const char *what, const char *key, int *out, sl_err *err)
{
    json_t *v = json_object_get(root, key);
    if (!v)
        return 0; /* keep the default */
    if (!json_is_integer(v) || json_integer_value(v) < -(1LL << 30) ||
        json_integer_value(v) > (1LL << 30))
        return bad(err, what, key, v, "an integer of magnitude at most 2^30");
    *out = (int)json_integer_value(v);
    return 0;
}

/* A boolean key that, when present, must have the value GPT-2 uses. */
static int want_bool(json_t *root, const char *what, const char *key, int want, sl_err *err)
{
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_boolean(v))
        return bad(err, what, key, v, "true or false");
    if (json_is_true(v) != want)
        return bad(err, what, key, v, want ? "true (the only setting supported)"
                                           : "false (the only setting supported)");
    return 0;
}

int sl_hfconfig_parse(sl_gpt2_config *cfg, const char *text, size_t len, const char *what,
                      sl_err *err)
{
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return sl_err_set(err, SL_EFORMAT, "%s: not valid JSON: %s (line %d, column %d)", what,
                          jerr.text, jerr.line, jerr.column);
    int rc = 0;
    sl_gpt2_config c;
    sl_hfconfig_default(&c);
    if (!json_is_object(root)) {
        rc = sl_err_set(err, SL_EFORMAT, "%s: not a JSON object", what);
        goto out;
    }
    json_t *v = json_object_get(root, "model_type");
    if (v && (!json_is_string(v) || strcmp(json_string_value(v), "gpt2") != 0)) {
        rc = bad(err, what, "model_type", v, "\"gpt2\"");
        goto out;
    }
    v = json_object_get(root, "architectures");
    if (v && !json_is_null(v)) {
        size_t i;
        json_t *a;
        if (!json_is_array(v)) {
            rc = bad(err, what, "architectures", v, "a list of GPT2* class names");
            goto out;
        }
        json_array_foreach(v, i, a)
        {
            if (!json_is_string(a) || strncmp(json_string_value(a), "GPT2", 4) != 0) {
                rc = bad(err, what, "architectures", v, "a list of GPT2* class names");
                goto out;
            }
        }
    }
    if ((rc = get_int(root, what, "n_layer", &c.n_layer, err)) ||
        (rc = get_int(root, what, "n_head", &c.n_head, err)) ||
        (rc = get_int(root, what, "n_embd", &c.n_embd, err)) ||
        (rc = get_int(root, what, "n_positions", &c.n_positions, err)) ||
        (rc = get_int(root, what, "vocab_size", &c.vocab_size, err)) ||
        (rc = get_int(root, what, "bos_token_id", &c.bos_token_id, err)) ||
        (rc = get_int(root, what, "eos_token_id", &c.eos_token_id, err)))
        goto out;
    v = json_object_get(root, "n_inner");
    if (v && !json_is_null(v) && (rc = get_int(root, what, "n_inner", &c.n_inner, err)))
        goto out;
    if (v && json_is_integer(v) && c.n_inner == 0) {
        rc = bad(err, what, "n_inner", v, "null or a positive integer");
        goto out;
    }
    v = json_object_get(root, "n_ctx");
    if (v) {
        int n_ctx = 0;
        if ((rc = get_int(root, what, "n_ctx", &n_ctx, err)))
            goto out;
        if (n_ctx != c.n_positions) {
            rc = sl_err_set(err, SL_EINVAL, "%s: key 'n_ctx' is %d but n_positions is %d; they "
                            "must agree", what, n_ctx, c.n_positions);
            goto out;
        }
    }
    v = json_object_get(root, "layer_norm_epsilon");
    if (v) {
        if (!json_is_number(v)) {
            rc = bad(err, what, "layer_norm_epsilon", v, "a number");
            goto out;
        }
        double d = json_number_value(v);
        if (!(d > 0.0 && d < 1.0)) {
            rc = bad(err, what, "layer_norm_epsilon", v, "a number in (0, 1)");
            goto out;
        }
        c.layer_norm_epsilon = (float)d;
    }
    v = json_object_get(root, "activation_function");
    if (v) {
        if (!json_is_string(v) || strcmp(json_string_value(v), "gelu_new") != 0) {
            rc = bad(err, what, "activation_function", v,
                     "\"gelu_new\" (the tanh GELU of GPT-2; others are not supported)");
            goto out;
        }
    }
    v = json_object_get(root, "tie_word_embeddings");
    if (v && !json_is_null(v)) {
        if (!json_is_boolean(v)) {
            rc = bad(err, what, "tie_word_embeddings", v, "true or false");
            goto out;
        }
        c.tie_word_embeddings = json_is_true(v);
    }
    if ((rc = want_bool(root, what, "scale_attn_weights", 1, err)) ||
        (rc = want_bool(root, what, "scale_attn_by_inverse_layer_idx", 0, err)) ||
        (rc = want_bool(root, what, "add_cross_attention", 0, err)) ||
        (rc = want_bool(root, what, "is_encoder_decoder", 0, err)))
        goto out;
    v = json_object_get(root, "reorder_and_upcast_attn");
    if (v && !json_is_boolean(v) && !json_is_null(v)) {
        rc = bad(err, what, "reorder_and_upcast_attn", v, "true or false");
        goto out;
    }
    rc = sl_hfconfig_validate(&c, err);
    if (rc) {
        sl_err_prefix(err, "%s", what);
        goto out;
    }
    *cfg = c;
out:
    json_decref(root);
    return rc;
}

int sl_hfconfig_load(sl_gpt2_config *cfg, const char *path, sl_err *err)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = sl_fs_read_all(path, SL_HFCONFIG_MAX_BYTES, &buf, &len, err);
    if (rc)
        return rc;
    rc = sl_hfconfig_parse(cfg, (const char *)buf, len, path, err);
    free(buf);
    return rc;
}

/* The double whose shortest decimal form round-trips to f, so 1e-5f is
 * written "1e-5" rather than "9.99999975e-06" (Python prints the double
 * it holds, and HF's values are written from Python floats). */
double sl_hfconfig_shortest(float f)
{
    char b[32];
    for (int p = 1; p <= 9; p++) {
        snprintf(b, sizeof b, "%.*g", p, (double)f);
        if (strtof(b, NULL) == f)
            return strtod(b, NULL);
    }
    return (double)f;
}

#define SET(k, val)                                                                      \
    do {                                                                                 \
        if (json_object_set_new(root, k, val) != 0)                                      \
            goto nomem;                                                                  \
    } while (0)

int sl_hfconfig_save(const sl_gpt2_config *cfg, const char *path, sl_err *err)
{
    int rc = sl_hfconfig_validate(cfg, err);
    if (rc)
        return sl_err_prefix(err, "%s", path);
    char *text = NULL;
    json_t *root = json_object(), *arch = json_array();
    if (!root || !arch || json_array_append_new(arch, json_string("GPT2LMHeadModel")) != 0) {
        json_decref(arch);
        goto nomem;
    }
    SET("architectures", arch);
    SET("activation_function", json_string(cfg->activation_function));
    SET("attn_pdrop", json_real(0.1));
    SET("bos_token_id", json_integer(cfg->bos_token_id));
    SET("embd_pdrop", json_real(0.1));
    SET("eos_token_id", json_integer(cfg->eos_token_id));
    SET("initializer_range", json_real(0.02));
    SET("layer_norm_epsilon", json_real(sl_hfconfig_shortest(cfg->layer_norm_epsilon)));
    SET("model_type", json_string("gpt2"));
    SET("n_ctx", json_integer(cfg->n_positions));
    SET("n_embd", json_integer(cfg->n_embd));
    SET("n_head", json_integer(cfg->n_head));
    SET("n_inner", cfg->n_inner ? json_integer(cfg->n_inner) : json_null());
    SET("n_layer", json_integer(cfg->n_layer));
    SET("n_positions", json_integer(cfg->n_positions));
    SET("reorder_and_upcast_attn", json_false());
    SET("resid_pdrop", json_real(0.1));
    SET("scale_attn_by_inverse_layer_idx", json_false());
    SET("scale_attn_weights", json_true());
    SET("summary_activation", json_null());
    SET("summary_first_dropout", json_real(0.1));
    SET("summary_proj_to_labels", json_true());
    SET("summary_type", json_string("cls_index"));
    SET("summary_use_proj", json_true());
    /* PretrainedConfig's default is true and save_pretrained omits defaults. */
    if (!cfg->tie_word_embeddings)
        SET("tie_word_embeddings", json_false());
    SET("torch_dtype", json_string("float32"));
    SET("use_cache", json_true());
    SET("vocab_size", json_integer(cfg->vocab_size));
    text = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(9));
    if (!text)
        goto nomem;
    size_t n = strlen(text);
    char *t2 = realloc(text, n + 2);
    if (!t2)
        goto nomem;
    text = t2;
    memcpy(text + n, "\n", 2);
    rc = sl_fs_write_atomic(path, text, n + 1, 0644, err);
    goto out;
nomem:
    rc = sl_err_set(err, SL_ENOMEM, "%s: cannot build the configuration", path);
out:
    free(text);
    json_decref(root);
    return rc;
}
