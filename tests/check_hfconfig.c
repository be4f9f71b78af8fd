/* hfconfig: config.json as transformers writes it for GPT-2 loads; our
 * writer's output loads back to the same configuration (seeded random
 * shapes); every wrong type, unsupported setting and out-of-limit value is
 * refused naming the key, and a refused load leaves the output untouched. */
#include <check.h>
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/fsutil.h"
#include "shared/hfconfig.h"
#include "tests/fixtures.h"

/* config.json of the 124M "gpt2" checkpoint as save_pretrained writes it
 * (transformers 4.x: sorted keys, indent 2, task_specific_params kept from
 * the hub file, plus keys this reader ignores). */
static const char *k_hf_gpt2 =
    "{\n"
    "  \"_name_or_path\": \"gpt2\",\n"
    "  \"activation_function\": \"gelu_new\",\n"
    "  \"architectures\": [\n"
    "    \"GPT2LMHeadModel\"\n"
    "  ],\n"
    "  \"attn_pdrop\": 0.1,\n"
    "  \"bos_token_id\": 50256,\n"
    "  \"embd_pdrop\": 0.1,\n"
    "  \"eos_token_id\": 50256,\n"
    "  \"initializer_range\": 0.02,\n"
    "  \"layer_norm_epsilon\": 1e-05,\n"
    "  \"model_type\": \"gpt2\",\n"
    "  \"n_ctx\": 1024,\n"
    "  \"n_embd\": 768,\n"
    "  \"n_head\": 12,\n"
    "  \"n_inner\": null,\n"
    "  \"n_layer\": 12,\n"
    "  \"n_positions\": 1024,\n"
    "  \"reorder_and_upcast_attn\": false,\n"
    "  \"resid_pdrop\": 0.1,\n"
    "  \"scale_attn_by_inverse_layer_idx\": false,\n"
    "  \"scale_attn_weights\": true,\n"
    "  \"summary_activation\": null,\n"
    "  \"summary_first_dropout\": 0.1,\n"
    "  \"summary_proj_to_labels\": true,\n"
    "  \"summary_type\": \"cls_index\",\n"
    "  \"summary_use_proj\": true,\n"
    "  \"task_specific_params\": {\n"
    "    \"text-generation\": {\n"
    "      \"do_sample\": true,\n"
    "      \"max_length\": 50\n"
    "    }\n"
    "  },\n"
    "  \"torch_dtype\": \"float32\",\n"
    "  \"transformers_version\": \"4.40.2\",\n"
    "  \"use_cache\": true,\n"
    "  \"vocab_size\": 50257\n"
    "}\n";

/* What our writer produces for that configuration (same keys, minus the
 * ones describing the writer; jansson drops the exponent's leading zero). */
static const char *k_ours_gpt2 =
    "{\n"
    "  \"activation_function\": \"gelu_new\",\n"
    "  \"architectures\": [\n"
    "    \"GPT2LMHeadModel\"\n"
    "  ],\n"
    "  \"attn_pdrop\": 0.1,\n"
    "  \"bos_token_id\": 50256,\n"
    "  \"embd_pdrop\": 0.1,\n"
    "  \"eos_token_id\": 50256,\n"
    "  \"initializer_range\": 0.02,\n"
    "  \"layer_norm_epsilon\": 1e-5,\n"
    "  \"model_type\": \"gpt2\",\n"
    "  \"n_ctx\": 1024,\n"
    "  \"n_embd\": 768,\n"
    "  \"n_head\": 12,\n"
    "  \"n_inner\": null,\n"
    "  \"n_layer\": 12,\n"
    "  \"n_positions\": 1024,\n"
    "  \"reorder_and_upcast_attn\": false,\n"
    "  \"resid_pdrop\": 0.1,\n"
    "  \"scale_attn_by_inverse_layer_idx\": false,\n"
    "  \"scale_attn_weights\": true,\n"
    "  \"summary_activation\": null,\n"
    "  \"summary_first_dropout\": 0.1,\n"
    "  \"summary_proj_to_labels\": true,\n"
    "  \"summary_type\": \"cls_index\",\n"
    "  \"summary_use_proj\": true,\n"
    "  \"torch_dtype\": \"float32\",\n"
    "  \"use_cache\": true,\n"
    "  \"vocab_size\": 50257\n"
    "}\n";

static void assert_same(const sl_gpt2_config *a, const sl_gpt2_config *b)
{
    ck_assert_int_eq(a->n_layer, b->n_layer);
    ck_assert_int_eq(a->n_head, b->n_head);
    ck_assert_int_eq(a->n_embd, b->n_embd);
    ck_assert_int_eq(a->n_positions, b->n_positions);
    ck_assert_int_eq(a->vocab_size, b->vocab_size);
    ck_assert_int_eq(a->n_inner, b->n_inner);
    ck_assert(a->layer_norm_epsilon == b->layer_norm_epsilon);
    ck_assert_int_eq(a->bos_token_id, b->bos_token_id);
    ck_assert_int_eq(a->eos_token_id, b->eos_token_id);
    ck_assert_str_eq(a->activation_function, b->activation_function);
    ck_assert_int_eq(a->tie_word_embeddings, b->tie_word_embeddings);
}

static int parse(sl_gpt2_config *c, const char *text, sl_err *err)
{
    return sl_hfconfig_parse(c, text, strlen(text), "config.json", err);
}

START_TEST(test_hf_written_loads)
{
    const char *dir = sl_test_tmpdir();
    const char *p = sl_test_write(dir, "config.json", k_hf_gpt2, strlen(k_hf_gpt2));
    sl_gpt2_config c, d;
    sl_err err = {0};
    ck_assert_int_eq(sl_hfconfig_load(&c, p, &err), 0);
    sl_hfconfig_default(&d);
    assert_same(&c, &d);
    ck_assert(c.layer_norm_epsilon == 1e-5f);
    /* gpt2 has 124,439,808 parameters (tied head), the figure HF reports. */
    ck_assert_uint_eq(sl_hfconfig_nparams(&c), 124439808ull);

    /* The older hub file (no n_inner, scale keys or torch_dtype). */
    static const char *hub = "{\"activation_function\": \"gelu_new\", \"architectures\": "
                             "[\"GPT2LMHeadModel\"], \"bos_token_id\": 50256, \"eos_token_id\":"
                             " 50256, \"layer_norm_epsilon\": 1e-05, \"model_type\": \"gpt2\", "
                             "\"n_ctx\": 1024, \"n_embd\": 1024, \"n_head\": 16, \"n_layer\": 24,"
                             " \"n_positions\": 1024, \"vocab_size\": 50257}";
    ck_assert_int_eq(parse(&c, hub, &err), 0);
    ck_assert_int_eq(c.n_layer, 24);
    ck_assert_int_eq(c.n_head, 16);
    ck_assert_int_eq(c.n_embd, 1024);
    ck_assert_uint_eq(sl_hfconfig_nparams(&c), 354823168ull); /* gpt2-medium */

    /* An empty object is GPT2Config(): the defaults. */
    ck_assert_int_eq(parse(&c, "{}", &err), 0);
    assert_same(&c, &d);
}
END_TEST

START_TEST(test_save_as_hf_writes)
{
    const char *dir = sl_test_tmpdir();
    char path[512];
    sl_err err = {0};
    ck_assert_int_eq(sl_fs_join(path, sizeof path, dir, "config.json", &err), 0);
    sl_gpt2_config c;
    sl_hfconfig_default(&c);
    ck_assert_int_eq(sl_hfconfig_save(&c, path, &err), 0);
    uint8_t *buf = NULL;
    size_t n = 0;
    ck_assert_int_eq(sl_fs_read_all(path, 1 << 16, &buf, &n, &err), 0);
    ck_assert_str_eq((char *)buf, k_ours_gpt2);
    free(buf);

    c.tie_word_embeddings = 0;
    c.n_inner = 1000;
    ck_assert_int_eq(sl_hfconfig_save(&c, path, &err), 0);
    ck_assert_int_eq(sl_fs_read_all(path, 1 << 16, &buf, &n, &err), 0);
    ck_assert_ptr_nonnull(strstr((char *)buf, "\n  \"tie_word_embeddings\": false,\n"));
    ck_assert_ptr_nonnull(strstr((char *)buf, "\n  \"n_inner\": 1000,\n"));
    free(buf);
}
END_TEST

START_TEST(test_round_trip_random)
{
    sl_test_rng rng = {5};
    const char *dir = sl_test_tmpdir();
    char path[512];
    sl_err err = {0};
    ck_assert_int_eq(sl_fs_join(path, sizeof path, dir, "config.json", &err), 0);
    for (int it = 0; it < 50; it++) {
        sl_gpt2_config c;
        sl_hfconfig_default(&c);
        c.n_head = 1 + (int)(sl_test_rand(&rng) % 32);
        c.n_embd = c.n_head * (1 + (int)(sl_test_rand(&rng) % 128));
        c.n_layer = 1 + (int)(sl_test_rand(&rng) % 64);
        c.n_positions = 1 + (int)(sl_test_rand(&rng) % 4096);
        c.vocab_size = 1 + (int)(sl_test_rand(&rng) % 100000);
        c.n_inner = (sl_test_rand(&rng) & 1) ? (int)(sl_test_rand(&rng) % 8192) : 0;
        c.bos_token_id = (int)(sl_test_rand(&rng) % (uint64_t)c.vocab_size);
        c.eos_token_id = (int)(sl_test_rand(&rng) % (uint64_t)c.vocab_size);
        /* Any float in (0, 1) must survive the shortest decimal form. */
        float eps = 0;
        while (!(eps > 0 && eps < 1))
            eps = (float)((double)(sl_test_rand(&rng) >> 11) * 0x1p-53) *
                  (sl_test_rand(&rng) & 1 ? 1.0f : 1e-6f);
        c.layer_norm_epsilon = eps;
        c.tie_word_embeddings = (int)(sl_test_rand(&rng) & 1);
        ck_assert_int_eq(sl_hfconfig_validate(&c, &err), 0);
        ck_assert_int_eq(sl_hfconfig_save(&c, path, &err), 0);
        sl_gpt2_config d;
        memset(&d, 0x55, sizeof d);
        ck_assert_msg(sl_hfconfig_load(&d, path, &err) == 0, "%s", err.msg);
        assert_same(&c, &d);
    }
}
END_TEST

/* ---- limits ------------------------------------------------------------- */

static void refused(const char *text, int code, const char *frag1, const char *frag2)
{
    sl_gpt2_config c;
    memset(&c, 0xA5, sizeof c);
    sl_gpt2_config before = c;
    sl_err err = {0};
    int rc = parse(&c, text, &err);
    if (rc != code)
        ck_abort_msg("%s: got %d (%s), expected %d", text, rc, err.msg, code);
    ck_assert_mem_eq(&c, &before, sizeof c); /* untouched */
    ck_assert_msg(strstr(err.msg, "config.json"), "no file in: %s", err.msg);
    if (frag1)
        ck_assert_msg(strstr(err.msg, frag1), "no '%s' in: %s", frag1, err.msg);
    if (frag2)
        ck_assert_msg(strstr(err.msg, frag2), "no '%s' in: %s", frag2, err.msg);
}

START_TEST(test_limits)
{
    sl_gpt2_config c;
    sl_err err = {0};
    ck_assert_int_eq(parse(&c, "{\"n_layer\": 256, \"n_embd\": 64, \"n_head\": 2}", &err), 0);
    refused("{\"n_layer\": 257}", SL_EINVAL, "n_layer = 257", "1..256");
    refused("{\"n_layer\": 0}", SL_EINVAL, "n_layer = 0", NULL);
    refused("{\"n_head\": 0}", SL_EINVAL, "n_head = 0", NULL);
    refused("{\"n_embd\": 770}", SL_EINVAL, "n_embd = 770 is not a multiple of n_head = 12",
            NULL);
    refused("{\"n_embd\": 40000, \"n_head\": 1}", SL_EINVAL, "n_embd = 40000", NULL);
    refused("{\"n_positions\": 1000000, \"n_ctx\": 1000000}", SL_EINVAL, "n_positions", NULL);
    refused("{\"vocab_size\": 100, \"bos_token_id\": 99, \"eos_token_id\": 100}", SL_EINVAL,
            "eos_token_id = 100", "0..99");
    refused("{\"vocab_size\": 10}", SL_EINVAL, "bos_token_id = 50256", NULL);
    refused("{\"bos_token_id\": -1}", SL_EINVAL, "bos_token_id = -1", NULL);
    refused("{\"n_layer\": 99999999999}", SL_EINVAL, "'n_layer'", "99999999999");
    refused("{\"n_inner\": -5}", SL_EINVAL, "n_inner = -5", NULL);
    refused("{\"n_inner\": 0}", SL_EINVAL, "'n_inner'", NULL);
    refused("{\"layer_norm_epsilon\": 0}", SL_EINVAL, "'layer_norm_epsilon'", "(0, 1)");
    refused("{\"layer_norm_epsilon\": 1.5}", SL_EINVAL, "'layer_norm_epsilon'", NULL);
    refused("{\"layer_norm_epsilon\": 1e-300}", SL_EINVAL, "layer_norm_epsilon", NULL);
    /* Total parameters: 256 layers of width 32768 is far past the limit. */
    refused("{\"n_layer\": 256, \"n_embd\": 32768, \"n_head\": 256}", SL_ELIMIT, "parameters",
            NULL);

    /* The file-size limit, before parsing. */
    size_t big = SL_HFCONFIG_MAX_BYTES + 1;
    char *text = malloc(big);
    memset(text, ' ', big);
    text[0] = '{';
    text[big - 1] = '}';
    const char *p = sl_test_write(sl_test_tmpdir(), "config.json", text, big);
    free(text);
    ck_assert_int_eq(sl_hfconfig_load(&c, p, &err), SL_ELIMIT);
    ck_assert_ptr_nonnull(strstr(err.msg, "config.json"));
    ck_assert_int_eq(sl_hfconfig_load(&c, "/nonexistent/config.json", &err), SL_ENOTFOUND);

    /* Saving validates first and leaves no file. */
    sl_hfconfig_default(&c);
    c.n_head = 7;
    char path[512];
    const char *dir = sl_test_tmpdir();
    ck_assert_int_eq(sl_fs_join(path, sizeof path, dir, "config.json", &err), 0);
    ck_assert_int_eq(sl_hfconfig_save(&c, path, &err), SL_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "n_head = 7"));
    ck_assert(!sl_fs_exists(path));
    sl_hfconfig_default(&c);
    snprintf(c.activation_function, sizeof c.activation_function, "relu");
    ck_assert_int_eq(sl_hfconfig_validate(&c, &err), SL_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "relu"));
    memset(c.activation_function, 'x', sizeof c.activation_function); /* no NUL */
    ck_assert_int_eq(sl_hfconfig_validate(&c, &err), SL_EINVAL);
    sl_hfconfig_default(&c);
    c.layer_norm_epsilon = NAN;
    ck_assert_int_eq(sl_hfconfig_validate(&c, &err), SL_EINVAL);
}
END_TEST

/* ---- malformed ---------------------------------------------------------- */

START_TEST(test_bad_values)
{
    refused("{\"n_layer\": \"12\"}", SL_EINVAL, "'n_layer' is \"12\"", "integer");
    refused("{\"n_head\": 12.0}", SL_EINVAL, "'n_head' is 12.0", NULL);
    refused("{\"n_embd\": null}", SL_EINVAL, "'n_embd' is null", NULL);
    refused("{\"vocab_size\": [50257]}", SL_EINVAL, "'vocab_size'", NULL);
    refused("{\"n_inner\": \"3072\"}", SL_EINVAL, "'n_inner'", NULL);
    refused("{\"layer_norm_epsilon\": \"1e-5\"}", SL_EINVAL, "'layer_norm_epsilon'", NULL);
    refused("{\"activation_function\": \"gelu\"}", SL_EINVAL, "'activation_function' is \"gelu\"",
            "gelu_new");
    refused("{\"activation_function\": \"relu\"}", SL_EINVAL, "'activation_function'", NULL);
    refused("{\"activation_function\": 1}", SL_EINVAL, "'activation_function'", NULL);
    refused("{\"model_type\": \"llama\"}", SL_EINVAL, "'model_type' is \"llama\"", NULL);
    refused("{\"architectures\": [\"LlamaForCausalLM\"]}", SL_EINVAL, "'architectures'", NULL);
    refused("{\"architectures\": \"GPT2LMHeadModel\"}", SL_EINVAL, "'architectures'", NULL);
    refused("{\"n_ctx\": 512}", SL_EINVAL, "'n_ctx' is 512 but n_positions is 1024", NULL);
    refused("{\"scale_attn_weights\": false}", SL_EINVAL, "'scale_attn_weights'", NULL);
    refused("{\"scale_attn_by_inverse_layer_idx\": true}", SL_EINVAL,
            "'scale_attn_by_inverse_layer_idx'", NULL);
    refused("{\"add_cross_attention\": true}", SL_EINVAL, "'add_cross_attention'", NULL);
    refused("{\"tie_word_embeddings\": 1}", SL_EINVAL, "'tie_word_embeddings' is 1", NULL);
    refused("{\"reorder_and_upcast_attn\": \"no\"}", SL_EINVAL, "'reorder_and_upcast_attn'",
            NULL);
    refused("{\"n_layer\": 12, \"n_layer\": 24}", SL_EFORMAT, "duplicate", NULL);
    refused("[]", SL_EFORMAT, "not a JSON object", NULL);
    refused("", SL_EFORMAT, "not valid JSON", NULL);
    refused("{\"n_layer\": 12,}", SL_EFORMAT, "line 1", NULL);
    refused("{\"_name_or_path\": \"\xff\"}", SL_EFORMAT, "not valid JSON", NULL);

    /* Every proper prefix of the HF file up to its closing brace is refused. */
    const char *close = strrchr(k_hf_gpt2, '}');
    for (size_t cut = 0; cut <= (size_t)(close - k_hf_gpt2); cut++) {
        sl_gpt2_config c;
        sl_err err = {0};
        if (sl_hfconfig_parse(&c, k_hf_gpt2, cut, "cut", &err) == 0)
            ck_abort_msg("prefix of %zu bytes accepted", cut);
    }
    /* Accepted extras: the fields with no effect on our computation. */
    sl_gpt2_config c;
    sl_err err = {0};
    ck_assert_int_eq(parse(&c, "{\"reorder_and_upcast_attn\": true, \"use_cache\": false, "
                               "\"scale_attn_weights\": null, \"tie_word_embeddings\": false, "
                               "\"n_inner\": 100, \"id2label\": {\"0\": \"LABEL_0\"}}", &err),
                     0);
    ck_assert_int_eq(c.tie_word_embeddings, 0);
    ck_assert_int_eq(c.n_inner, 100);
}
END_TEST

Suite *hfconfig_suite(void)
{
    Suite *s = suite_create("hfconfig");
    TCase *core = tcase_create("core");
    tcase_add_test(core, test_hf_written_loads);
    tcase_add_test(core, test_save_as_hf_writes);
    tcase_add_test(core, test_round_trip_random);
    suite_add_tcase(s, core);
    TCase *lim = tcase_create("limits");
    tcase_add_test(lim, test_limits);
    suite_add_tcase(s, lim);
    TCase *bad = tcase_create("malformed");
    tcase_add_test(bad, test_bad_values);
    suite_add_tcase(s, bad);
    return s;
}
