/* peft: adapter_config.json as PEFT's save_pretrained writes it for GPT-2
 * loads (old and new key sets, suffix and full module names); our writer's
 * output loads back to the same configuration on seeded random configs;
 * every setting that would change what the adapter computes is refused
 * naming the key, and a refused load leaves the output untouched. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/fsutil.h"
#include "shared/peft.h"
#include "tests/fixtures.h"

/* PEFT 0.10-0.12 LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05,
 * target_modules=["c_attn", "c_proj"], fan_in_fan_out=True,
 * task_type="CAUSAL_LM").save_pretrained(...) for "gpt2": sorted keys,
 * indent 2, no final newline; the set of targets comes out in any order. */
static const char *k_peft_gpt2 =
    "{\n"
    "  \"alpha_pattern\": {},\n"
    "  \"auto_mapping\": null,\n"
    "  \"base_model_name_or_path\": \"gpt2\",\n"
    "  \"bias\": \"none\",\n"
    "  \"fan_in_fan_out\": true,\n"
    "  \"inference_mode\": true,\n"
    "  \"init_lora_weights\": true,\n"
    "  \"layer_replication\": null,\n"
    "  \"layers_pattern\": null,\n"
    "  \"layers_to_transform\": null,\n"
    "  \"loftq_config\": {},\n"
    "  \"lora_alpha\": 32,\n"
    "  \"lora_dropout\": 0.05,\n"
    "  \"megatron_config\": null,\n"
    "  \"megatron_core\": \"megatron.core\",\n"
    "  \"modules_to_save\": null,\n"
    "  \"peft_type\": \"LORA\",\n"
    "  \"r\": 16,\n"
    "  \"rank_pattern\": {},\n"
    "  \"revision\": null,\n"
    "  \"target_modules\": [\n"
    "    \"c_proj\",\n"
    "    \"c_attn\"\n"
    "  ],\n"
    "  \"task_type\": \"CAUSAL_LM\",\n"
    "  \"use_dora\": false,\n"
    "  \"use_rslora\": false\n"
    "}";

/* A newer PEFT (0.17+) key set, with layers_to_transform and full names. */
static const char *k_peft_new =
    "{\"alora_invocation_tokens\": null, \"alpha_pattern\": {}, \"arrow_config\": null,"
    " \"auto_mapping\": null, \"base_model_name_or_path\": \"/models/gpt2-medium\","
    " \"bias\": \"none\", \"corda_config\": null, \"ensure_weight_tying\": false,"
    " \"eva_config\": null, \"exclude_modules\": null, \"fan_in_fan_out\": true,"
    " \"inference_mode\": false, \"init_lora_weights\": \"gaussian\", \"layer_replication\": null,"
    " \"layers_pattern\": [\"h\"], \"layers_to_transform\": [23, 0, 1, 22],"
    " \"loftq_config\": {}, \"lora_alpha\": 8.5, \"lora_bias\": false, \"lora_dropout\": 0.0,"
    " \"lora_ga_config\": null, \"megatron_config\": null, \"megatron_core\": \"megatron.core\","
    " \"modules_to_save\": null, \"peft_type\": \"LORA\", \"peft_version\": \"0.17.1\","
    " \"qalora_group_size\": 16, \"r\": 4, \"rank_pattern\": {}, \"revision\": null,"
    " \"target_modules\": [\"mlp.c_fc\", \"attn.c_attn\"], \"target_parameters\": null,"
    " \"task_type\": \"CAUSAL_LM\", \"trainable_token_indices\": null, \"use_dora\": false,"
    " \"use_qalora\": false, \"use_rslora\": false}";

static int parse(sl_peft_config *c, const char *text, sl_err *err)
{
    return sl_peft_config_parse(c, text, strlen(text), "adapter_config.json", err);
}

static void assert_same(const sl_peft_config *a, const sl_peft_config *b)
{
    ck_assert_int_eq(a->r, b->r);
    ck_assert(a->lora_alpha == b->lora_alpha);
    ck_assert(a->lora_dropout == b->lora_dropout);
    ck_assert_uint_eq(a->target_mask, b->target_mask);
    ck_assert_int_eq(a->nlayers, b->nlayers);
    for (int i = 0; i < a->nlayers; i++)
        ck_assert_int_eq(a->layers[i], b->layers[i]);
    ck_assert_int_eq(a->fan_in_fan_out, b->fan_in_fan_out);
    ck_assert_str_eq(a->base_model, b->base_model);
    ck_assert_str_eq(a->base_digest, b->base_digest);
}

START_TEST(test_peft_written_loads)
{
    const char *p = sl_test_write(sl_test_tmpdir(), "adapter_config.json", k_peft_gpt2,
                                  strlen(k_peft_gpt2));
    sl_peft_config c;
    sl_err err = {0};
    ck_assert_int_eq(sl_peft_config_load(&c, p, &err), 0);
    ck_assert_int_eq(c.r, 16);
    ck_assert(c.lora_alpha == 32.0f);
    ck_assert(c.lora_dropout == 0.05f);
    /* "c_proj" matches both attn.c_proj and mlp.c_proj by suffix, as in PEFT. */
    ck_assert_uint_eq(c.target_mask,
                      SL_PEFT_ATTN_C_ATTN | SL_PEFT_ATTN_C_PROJ | SL_PEFT_MLP_C_PROJ);
    ck_assert_int_eq(c.nlayers, 0);
    ck_assert_int_eq(c.fan_in_fan_out, 1);
    ck_assert_str_eq(c.base_model, "gpt2");
    ck_assert_str_eq(c.base_digest, "");
    for (int l = 0; l < 48; l++)
        ck_assert(sl_peft_layer_selected(&c, l));

    ck_assert_int_eq(parse(&c, k_peft_new, &err), 0);
    ck_assert_int_eq(c.r, 4);
    ck_assert(c.lora_alpha == 8.5f);
    ck_assert(c.lora_dropout == 0.0f);
    ck_assert_uint_eq(c.target_mask, SL_PEFT_ATTN_C_ATTN | SL_PEFT_MLP_C_FC);
    ck_assert_int_eq(c.nlayers, 4);
    const int want[4] = {0, 1, 22, 23}; /* sorted */
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(c.layers[i], want[i]);
    ck_assert(sl_peft_layer_selected(&c, 22) && !sl_peft_layer_selected(&c, 2));
    ck_assert_str_eq(c.base_model, "/models/gpt2-medium");

    /* A single index, PEFT's defaults for absent keys (alpha 8, targets
     * c_attn, no dropout), and the sealora digest. */
    ck_assert_int_eq(parse(&c, "{\"peft_type\": \"LORA\", \"r\": 2, \"fan_in_fan_out\": true, "
                               "\"layers_to_transform\": 5, \"sealora_base_sha256\": "
                               "\"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\""
                               "}", &err), 0);
    ck_assert_int_eq(c.nlayers, 1);
    ck_assert_int_eq(c.layers[0], 5);
    ck_assert(c.lora_alpha == 8.0f && c.lora_dropout == 0.0f);
    ck_assert_uint_eq(c.target_mask, SL_PEFT_ATTN_C_ATTN);
    ck_assert_str_eq(c.base_digest,
                     "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
}
END_TEST

/* Our writer on the first example's configuration, in its unambiguous
 * form: the same keys PEFT writes, targets spelled out. */
static const char *k_ours =
    "{\n"
    "  \"alpha_pattern\": {},\n"
    "  \"auto_mapping\": null,\n"
    "  \"base_model_name_or_path\": \"gpt2\",\n"
    "  \"bias\": \"none\",\n"
    "  \"fan_in_fan_out\": true,\n"
    "  \"inference_mode\": true,\n"
    "  \"init_lora_weights\": true,\n"
    "  \"layer_replication\": null,\n"
    "  \"layers_pattern\": null,\n"
    "  \"layers_to_transform\": null,\n"
    "  \"loftq_config\": {},\n"
    "  \"lora_alpha\": 32,\n"
    "  \"lora_dropout\": 0.05,\n"
    "  \"megatron_config\": null,\n"
    "  \"megatron_core\": \"megatron.core\",\n"
    "  \"modules_to_save\": null,\n"
    "  \"peft_type\": \"LORA\",\n"
    "  \"r\": 16,\n"
    "  \"rank_pattern\": {},\n"
    "  \"revision\": null,\n"
    "  \"target_modules\": [\n"
    "    \"attn.c_attn\",\n"
    "    \"attn.c_proj\",\n"
    "    \"mlp.c_proj\"\n"
    "  ],\n"
    "  \"task_type\": \"CAUSAL_LM\",\n"
    "  \"use_dora\": false,\n"
    "  \"use_rslora\": false\n"
    "}";

START_TEST(test_save_as_peft_writes)
{
    const char *dir = sl_test_tmpdir();
    char path[512];
    sl_err err = {0};
    ck_assert_int_eq(sl_fs_join(path, sizeof path, dir, "adapter_config.json", &err), 0);
    sl_peft_config c;
    ck_assert_int_eq(parse(&c, k_peft_gpt2, &err), 0);
    ck_assert_int_eq(sl_peft_config_save(&c, path, &err), 0);
    uint8_t *buf = NULL;
    size_t n = 0;
    ck_assert_int_eq(sl_fs_read_all(path, 1 << 16, &buf, &n, &err), 0);
    ck_assert_str_eq((char *)buf, k_ours);
    free(buf);

    /* Layers and digest: sorted list, pattern "h", the extension key. */
    c.nlayers = 3;
    c.layers[0] = 11;
    c.layers[1] = 0;
    c.layers[2] = 5;
    memset(c.base_digest, 'a', 64);
    c.base_digest[64] = 0;
    c.lora_alpha = 0.1f;
    ck_assert_int_eq(sl_peft_config_save(&c, path, &err), 0);
    ck_assert_int_eq(sl_fs_read_all(path, 1 << 16, &buf, &n, &err), 0);
    ck_assert_ptr_nonnull(strstr((char *)buf, "\"layers_to_transform\": [\n    0,\n    5,\n"
                                              "    11\n  ],"));
    ck_assert_ptr_nonnull(strstr((char *)buf, "\"layers_pattern\": \"h\","));
    ck_assert_ptr_nonnull(strstr((char *)buf, "\"lora_alpha\": 0.1,"));
    ck_assert_ptr_nonnull(strstr((char *)buf, "\"sealora_base_sha256\": \"aaaa"));
    free(buf);
}
END_TEST

START_TEST(test_round_trip_random)
{
    sl_test_rng rng = {9};
    const char *dir = sl_test_tmpdir();
    char path[512];
    sl_err err = {0};
    ck_assert_int_eq(sl_fs_join(path, sizeof path, dir, "adapter_config.json", &err), 0);
    for (int it = 0; it < 40; it++) {
        sl_peft_config c;
        sl_peft_config_default(&c);
        c.r = 1 + (int)(sl_test_rand(&rng) % 256);
        c.lora_alpha = (sl_test_rand(&rng) & 1)
                           ? (float)(1 + sl_test_rand(&rng) % 128)
                           : (float)((double)(1 + (sl_test_rand(&rng) >> 40)) * 0x1p-18);
        c.lora_dropout = (float)((double)(sl_test_rand(&rng) >> 11) * 0x1p-53);
        c.target_mask = 1 + (unsigned)(sl_test_rand(&rng) % 15);
        c.nlayers = 0;
        if (sl_test_rand(&rng) & 1) {
            uint8_t used[256] = {0};
            int want = 1 + (int)(sl_test_rand(&rng) % 40);
            while (c.nlayers < want) {
                int l = (int)(sl_test_rand(&rng) % 256);
                if (!used[l]++)
                    c.layers[c.nlayers++] = l;
            }
            /* load returns them sorted: sort our copy to compare */
            for (int i = 1; i < c.nlayers; i++)
                for (int j = i; j > 0 && c.layers[j - 1] > c.layers[j]; j--) {
                    int t = c.layers[j];
                    c.layers[j] = c.layers[j - 1];
                    c.layers[j - 1] = t;
                }
        }
        snprintf(c.base_model, sizeof c.base_model, "org/model-%llu \"q\" \xc3\xa9",
                 (unsigned long long)(sl_test_rand(&rng) % 1000));
        if (sl_test_rand(&rng) & 1)
            for (int i = 0; i < 64; i++)
                c.base_digest[i] = "0123456789abcdef"[sl_test_rand(&rng) % 16];
        ck_assert_int_eq(sl_peft_config_validate(&c, &err), 0);
        ck_assert_int_eq(sl_peft_config_save(&c, path, &err), 0);
        sl_peft_config d;
        memset(&d, 0x5a, sizeof d);
        ck_assert_msg(sl_peft_config_load(&d, path, &err) == 0, "%s", err.msg);
        assert_same(&c, &d);
    }
}
END_TEST

START_TEST(test_tensor_names)
{
    char name[128];
    sl_err err = {0};
    ck_assert_int_eq(sl_peft_tensor_name(name, sizeof name, 3, SL_PEFT_ATTN_C_ATTN, 0, &err), 0);
    ck_assert_str_eq(name, "base_model.model.transformer.h.3.attn.c_attn.lora_A.weight");
    ck_assert_int_eq(sl_peft_tensor_name(name, sizeof name, 11, SL_PEFT_MLP_C_PROJ, 1, &err), 0);
    ck_assert_str_eq(name, "base_model.model.transformer.h.11.mlp.c_proj.lora_B.weight");
    ck_assert_int_eq(sl_peft_tensor_name(name, 20, 3, SL_PEFT_MLP_C_FC, 0, &err), SL_ELIMIT);
    ck_assert_int_eq(sl_peft_tensor_name(name, sizeof name, 3, 3u, 0, &err), SL_EINVAL);
    ck_assert_int_eq(sl_peft_tensor_name(name, sizeof name, -1, 1u, 0, &err), SL_EINVAL);
    ck_assert_str_eq(sl_peft_module_name(SL_PEFT_ATTN_C_PROJ), "attn.c_proj");
    ck_assert_ptr_null(sl_peft_module_name(0));
}
END_TEST

/* ---- limits and malformed ------------------------------------------------ */

#define HEAD "{\"peft_type\": \"LORA\", \"fan_in_fan_out\": true, "

static void refused(const char *text, int code, const char *frag1, const char *frag2)
{
    sl_peft_config c;
    memset(&c, 0xA5, sizeof c);
    sl_peft_config before = c;
    sl_err err = {0};
    int rc = parse(&c, text, &err);
    if (rc != code)
        ck_abort_msg("%s: got %d (%s), expected %d", text, rc, err.msg, code);
    ck_assert_mem_eq(&c, &before, sizeof c);
    ck_assert_msg(strstr(err.msg, "adapter_config.json"), "no file in: %s", err.msg);
    if (frag1)
        ck_assert_msg(strstr(err.msg, frag1), "no '%s' in: %s", frag1, err.msg);
    if (frag2)
        ck_assert_msg(strstr(err.msg, frag2), "no '%s' in: %s", frag2, err.msg);
}

START_TEST(test_limits)
{
    sl_peft_config c;
    sl_err err = {0};
    ck_assert_int_eq(parse(&c, HEAD "\"r\": 4096}", &err), 0);
    refused(HEAD "\"r\": 4097}", SL_EINVAL, "'r' is 4097", NULL);
    refused(HEAD "\"r\": 0}", SL_EINVAL, "'r' is 0", NULL);
    refused(HEAD "\"r\": -3}", SL_EINVAL, "'r'", NULL);
    refused(HEAD "\"r\": 8, \"lora_alpha\": 0}", SL_EINVAL, "'lora_alpha' is 0", NULL);
    refused(HEAD "\"r\": 8, \"lora_alpha\": -16}", SL_EINVAL, "'lora_alpha'", NULL);
    refused(HEAD "\"r\": 8, \"lora_alpha\": 1e300}", SL_EINVAL, "'lora_alpha'", NULL);
    refused(HEAD "\"r\": 8, \"lora_dropout\": 1.0}", SL_EINVAL, "'lora_dropout' is 1.0", NULL);
    refused(HEAD "\"r\": 8, \"lora_dropout\": 0.99999999999}", SL_EINVAL, "'lora_dropout'",
            NULL);
    refused(HEAD "\"r\": 8, \"lora_dropout\": -0.1}", SL_EINVAL, "'lora_dropout'", NULL);
    refused(HEAD "\"r\": 8, \"layers_to_transform\": [256]}", SL_EINVAL,
            "'layers_to_transform' is [256]", NULL);
    refused(HEAD "\"r\": 8, \"layers_to_transform\": [-1]}", SL_EINVAL, "'layers_to_transform'",
            NULL);
    refused(HEAD "\"r\": 8, \"layers_to_transform\": [1, 2, 1]}", SL_EINVAL, "[1,2,1]",
            "distinct");
    /* 257 entries: over the limit even before the duplicate check. */
    char big[2048] = HEAD "\"r\": 8, \"layers_to_transform\": [";
    for (int i = 0; i < 257; i++)
        snprintf(big + strlen(big), sizeof big - strlen(big), "%s%d", i ? "," : "", i % 256);
    snprintf(big + strlen(big), sizeof big - strlen(big), "]}");
    refused(big, SL_EINVAL, "'layers_to_transform'", NULL);
    /* base_model_name_or_path of 512 bytes does not fit with its NUL. */
    char longname[1024];
    char name[513];
    memset(name, 'm', 512);
    name[512] = 0;
    snprintf(longname, sizeof longname, HEAD "\"r\": 8, \"base_model_name_or_path\": \"%s\"}",
             name);
    refused(longname, SL_EINVAL, "'base_model_name_or_path'", "at most 511 bytes");
    name[511] = 0;
    snprintf(longname, sizeof longname, HEAD "\"r\": 8, \"base_model_name_or_path\": \"%s\"}",
             name);
    ck_assert_int_eq(parse(&c, longname, &err), 0);
    ck_assert_uint_eq(strlen(c.base_model), 511);

    /* File size limit, missing file. */
    size_t n = SL_PEFT_MAX_BYTES + 1;
    char *text = malloc(n);
    memset(text, ' ', n);
    text[0] = '{';
    text[n - 1] = '}';
    const char *p = sl_test_write(sl_test_tmpdir(), "adapter_config.json", text, n);
    free(text);
    ck_assert_int_eq(sl_peft_config_load(&c, p, &err), SL_ELIMIT);
    ck_assert_int_eq(sl_peft_config_load(&c, "/nonexistent/adapter_config.json", &err),
                     SL_ENOTFOUND);

    /* validate: the struct-level checks, and save refuses before writing. */
    const char *dir = sl_test_tmpdir();
    char path[512];
    ck_assert_int_eq(sl_fs_join(path, sizeof path, dir, "adapter_config.json", &err), 0);
    sl_peft_config_default(&c);
    c.nlayers = 257;
    ck_assert_int_eq(sl_peft_config_save(&c, path, &err), SL_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "nlayers = 257"));
    sl_peft_config_default(&c);
    c.target_mask = 0x10;
    ck_assert_int_eq(sl_peft_config_validate(&c, &err), SL_EINVAL);
    c.target_mask = 0;
    ck_assert_int_eq(sl_peft_config_validate(&c, &err), SL_EINVAL);
    sl_peft_config_default(&c);
    c.fan_in_fan_out = 0;
    ck_assert_int_eq(sl_peft_config_validate(&c, &err), SL_EINVAL);
    sl_peft_config_default(&c);
    c.lora_alpha = NAN;
    ck_assert_int_eq(sl_peft_config_validate(&c, &err), SL_EINVAL);
    sl_peft_config_default(&c);
    snprintf(c.base_digest, sizeof c.base_digest, "abc");
    ck_assert_int_eq(sl_peft_config_validate(&c, &err), SL_EINVAL);
    sl_peft_config_default(&c);
    memset(c.base_model, 'x', sizeof c.base_model);
    ck_assert_int_eq(sl_peft_config_validate(&c, &err), SL_EINVAL);
    sl_peft_config_default(&c);
    snprintf(c.base_model, sizeof c.base_model, "bad\xff");
    ck_assert_int_eq(sl_peft_config_save(&c, path, &err), SL_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "UTF-8"));
    ck_assert(!sl_fs_exists(path));
}
END_TEST

START_TEST(test_unsupported_settings)
{
    refused("{\"peft_type\": \"PREFIX_TUNING\", \"r\": 8, \"fan_in_fan_out\": true}", SL_EINVAL,
            "'peft_type' is \"PREFIX_TUNING\"", "\"LORA\"");
    refused("{\"r\": 8, \"fan_in_fan_out\": true}", SL_EINVAL, "'peft_type' is missing", NULL);
    refused(HEAD "\"r\": 8, \"task_type\": \"SEQ_CLS\"}", SL_EINVAL, "'task_type'", NULL);
    refused(HEAD "\"r\": 8, \"bias\": \"all\"}", SL_EINVAL, "'bias' is \"all\"", NULL);
    refused(HEAD "\"r\": 8, \"bias\": \"lora_only\"}", SL_EINVAL, "'bias'", NULL);
    refused(HEAD "\"r\": 8, \"use_dora\": true}", SL_EINVAL, "'use_dora'", "DoRA");
    refused(HEAD "\"r\": 8, \"use_rslora\": true}", SL_EINVAL, "'use_rslora'", NULL);
    refused(HEAD "\"r\": 8, \"lora_bias\": true}", SL_EINVAL, "'lora_bias'", NULL);
    refused(HEAD "\"r\": 8, \"rank_pattern\": {\"c_attn\": 4}}", SL_EINVAL, "'rank_pattern'",
            NULL);
    refused(HEAD "\"r\": 8, \"alpha_pattern\": {\"c_fc\": 2}}", SL_EINVAL, "'alpha_pattern'",
            NULL);
    refused(HEAD "\"r\": 8, \"modules_to_save\": [\"lm_head\"]}", SL_EINVAL,
            "'modules_to_save'", NULL);
    refused(HEAD "\"r\": 8, \"layer_replication\": [[0, 4]]}", SL_EINVAL,
            "'layer_replication'", NULL);
    refused(HEAD "\"r\": 8, \"exclude_modules\": [\"c_fc\"]}", SL_EINVAL, "'exclude_modules'",
            NULL);
    refused(HEAD "\"r\": 8, \"target_modules\": \"c_attn\"}", SL_EINVAL, "'target_modules'",
            "regular expression");
    refused(HEAD "\"r\": 8, \"target_modules\": [\"c_attn\", \"q_proj\"]}", SL_EINVAL,
            "names \"q_proj\"", NULL);
    refused(HEAD "\"r\": 8, \"target_modules\": [\"h.0.attn.c_attn\"]}", SL_EINVAL,
            "\"h.0.attn.c_attn\"", NULL);
    refused(HEAD "\"r\": 8, \"target_modules\": [\"lm_head\"]}", SL_EINVAL, "\"lm_head\"", NULL);
    refused(HEAD "\"r\": 8, \"target_modules\": []}", SL_EINVAL, "'target_modules'", NULL);
    refused(HEAD "\"r\": 8, \"target_modules\": [1]}", SL_EINVAL, "names 1", NULL);
    refused("{\"peft_type\": \"LORA\", \"r\": 8, \"fan_in_fan_out\": false}", SL_EINVAL,
            "'fan_in_fan_out' is false", "Conv1D");
    refused("{\"peft_type\": \"LORA\", \"r\": 8}", SL_EINVAL, "'fan_in_fan_out' is missing",
            NULL);
    refused(HEAD "\"r\": 8, \"layers_to_transform\": [1], \"layers_pattern\": \"layers\"}",
            SL_EINVAL, "'layers_pattern' is \"layers\"", NULL);
    refused(HEAD "\"r\": 8, \"layers_to_transform\": []}", SL_EINVAL, "'layers_to_transform'",
            NULL);
    refused(HEAD "\"r\": 8, \"layers_to_transform\": [\"0\"]}", SL_EINVAL,
            "'layers_to_transform'", NULL);
    refused(HEAD "\"r\": 8, \"sealora_base_sha256\": \"abc\"}", SL_EINVAL,
            "'sealora_base_sha256' is \"abc\"", NULL);
    refused(HEAD "\"r\": 8, \"sealora_base_sha256\": "
                 "\"00112233445566778899AABBCCDDEEFF00112233445566778899aabbccddeeff\"}",
            SL_EINVAL, "'sealora_base_sha256'", "lowercase");
    refused(HEAD "\"r\": 8, \"base_model_name_or_path\": 7}", SL_EINVAL,
            "'base_model_name_or_path' is 7", NULL);
    refused(HEAD "\"r\": \"8\"}", SL_EINVAL, "'r' is \"8\"", NULL);
    refused(HEAD "\"r\": 8.0}", SL_EINVAL, "'r' is 8.0", NULL);
    refused(HEAD "\"r\": 8, \"lora_alpha\": \"16\"}", SL_EINVAL, "'lora_alpha'", NULL);
    refused(HEAD "\"r\": 8, \"r\": 4}", SL_EFORMAT, "duplicate", NULL);
    refused("[]", SL_EFORMAT, "not a JSON object", NULL);
    refused("", SL_EFORMAT, "not valid JSON", NULL);

    /* Every proper prefix of the PEFT-written file is refused. */
    size_t len = strlen(k_peft_gpt2);
    for (size_t cut = 0; cut < len; cut++) {
        sl_peft_config c;
        sl_err err = {0};
        if (sl_peft_config_parse(&c, k_peft_gpt2, cut, "cut", &err) == 0)
            ck_abort_msg("prefix of %zu bytes accepted", cut);
    }
}
END_TEST

Suite *peft_suite(void)
{
    Suite *s = suite_create("peft");
    TCase *core = tcase_create("core");
    tcase_add_test(core, test_peft_written_loads);
    tcase_add_test(core, test_save_as_peft_writes);
    tcase_add_test(core, test_round_trip_random);
    tcase_add_test(core, test_tensor_names);
    suite_add_tcase(s, core);
    TCase *lim = tcase_create("limits");
    tcase_add_test(lim, test_limits);
    suite_add_tcase(s, lim);
    TCase *bad = tcase_create("malformed");
    tcase_add_test(bad, test_unsupported_settings);
    suite_add_tcase(s, bad);
    return s;
}
