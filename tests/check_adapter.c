/* PEFT adapter directories: save/load round trip (bit-exact, F32), the
 * config names the adapted layers and modules, and mismatched or stray
 * tensors are refused naming them. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/adapter.h"
#include "shared/hfconfig.h"
#include "shared/safetensors.h"
#include "tests/fixtures.h"

static sl_gpt2 *model(int layers)
{
    sl_gpt2_config c;
    sl_hfconfig_default(&c);
    c.n_layer = layers;
    c.n_head = 2;
    c.n_embd = 8;
    c.n_positions = 8;
    c.vocab_size = 11;
    c.bos_token_id = c.eos_token_id = 10;
    sl_gpt2 *m = NULL;
    sl_err err = {0};
    ck_assert_msg(sl_gpt2_create(&m, &c, &err) == 0, "%s", err.msg);
    return m;
}

START_TEST(test_round_trip)
{
    sl_gpt2 *m = model(4);
    sl_lora *a = NULL, *b = NULL;
    sl_err err = {0};
    int layers[] = {0, 3};
    ck_assert_int_eq(sl_lora_create(&a, m, 3, 12.0f, SL_LORA_C_ATTN | SL_LORA_MLP_FC, layers, 2,
                                    9, &err), 0);
    sl_test_rng r = {8};
    sl_test_fill(&r, a->params, a->nparams, 1.0f);
    const char *dir = sl_test_tmpdir();
    ck_assert_msg(sl_adapter_save(a, dir, "models/base", NULL, &err) == 0, "%s", err.msg);
    sl_peft_config c;
    ck_assert_msg(sl_adapter_load(&b, m, dir, &c, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(c.r, 3);
    ck_assert_int_eq(c.nlayers, 2);
    ck_assert_int_eq(c.layers[0], 0);
    ck_assert_int_eq(c.layers[1], 3);
    ck_assert_str_eq(c.base_model, "models/base");
    ck_assert_int_eq(b->nslots, a->nslots);
    ck_assert_float_eq(b->scale, a->scale);
    ck_assert_uint_eq(b->nparams, a->nparams);
    ck_assert_mem_eq(b->params, a->params, sizeof(float) * a->nparams);
    /* the weights file uses PEFT's names and shapes */
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, SL_ADAPTER_WEIGHTS);
    sl_st_file *f = NULL;
    ck_assert_int_eq(sl_st_open(&f, path, &err), 0);
    const sl_st_tensor *t =
        sl_st_find(f, "base_model.model.transformer.h.3.mlp.c_fc.lora_B.weight");
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->shape[0], 32);
    ck_assert_int_eq(t->shape[1], 3);
    ck_assert_uint_eq(sl_st_count(f), 8);
    sl_st_close(f);
    sl_lora_free(a);
    sl_lora_free(b);
    sl_gpt2_free(m);
}
END_TEST

START_TEST(test_refusals)
{
    sl_gpt2 *m4 = model(4), *m2 = model(2);
    sl_lora *a = NULL, *b = (sl_lora *)0x1;
    sl_err err = {0};
    int layers[] = {3};
    ck_assert_int_eq(sl_lora_create(&a, m4, 2, 4.0f, SL_LORA_C_PROJ, layers, 1, 1, &err), 0);
    const char *dir = sl_test_tmpdir();
    ck_assert_int_eq(sl_adapter_save(a, dir, "", NULL, &err), 0);
    /* an adapter for block 3 cannot go on a 2-block model */
    ck_assert_int_ne(sl_adapter_load(&b, m2, dir, NULL, &err), 0);
    ck_assert_ptr_nonnull(strstr(err.msg, "block 3"));
    ck_assert_ptr_eq(b, (sl_lora *)0x1);
    /* a stray tensor is named */
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, SL_ADAPTER_WEIGHTS);
    const sl_lora_slot *s = &a->slots[0];
    float z[64] = {0};
    sl_st_entry e[3] = {
        {"base_model.model.transformer.h.3.attn.c_proj.lora_A.weight", SL_ST_F32, 2, {2, 8}, s->A},
        {"base_model.model.transformer.h.3.attn.c_proj.lora_B.weight", SL_ST_F32, 2, {8, 2}, s->B},
        {"base_model.model.transformer.h.1.attn.c_proj.lora_B.weight", SL_ST_F32, 2, {8, 2}, z}};
    ck_assert_int_eq(sl_st_write(path, e, 3, NULL, 0, &err), 0);
    ck_assert_int_eq(sl_adapter_load(&b, m4, dir, NULL, &err), SL_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "h.1.attn.c_proj.lora_B"));
    /* a factor of the wrong shape is named with both shapes */
    e[1].shape[0] = 7;
    ck_assert_int_eq(sl_st_write(path, e, 2, NULL, 0, &err), 0);
    ck_assert_int_eq(sl_adapter_load(&b, m4, dir, NULL, &err), SL_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "[7, 2]"));
    /* a missing factor */
    ck_assert_int_eq(sl_st_write(path, e, 1, NULL, 0, &err), 0);
    ck_assert_int_eq(sl_adapter_load(&b, m4, dir, NULL, &err), SL_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "missing tensor"));
    ck_assert_ptr_eq(b, (sl_lora *)0x1);
    sl_lora_free(a);
    sl_gpt2_free(m4);
    sl_gpt2_free(m2);
}
END_TEST

Suite *adapter_suite(void)
{
    Suite *s = suite_create("adapter");
    TCase *core = tcase_create("core");
    tcase_add_test(core, test_round_trip);
    suite_add_tcase(s, core);
    TCase *bad = tcase_create("malformed");
    tcase_add_test(bad, test_refusals);
    suite_add_tcase(s, bad);
    return s;
}
