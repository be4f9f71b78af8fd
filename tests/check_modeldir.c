/* Model directories: our save loads back exactly (F32) or within the
 * dtype's rounding (BF16, F16); checkpoints in Hugging Face's other naming
 * style load; malformed or mismatched weights are refused naming the tensor. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/hfconfig.h"
#include "shared/modeldir.h"
#include "tests/fixtures.h"

static sl_gpt2 *small_model(void)
{
    sl_gpt2_config c;
    sl_hfconfig_default(&c);
    c.n_layer = 2;
    c.n_head = 2;
    c.n_embd = 8;
    c.n_positions = 12;
    c.vocab_size = 19;
    c.bos_token_id = c.eos_token_id = 18;
    sl_gpt2 *m = NULL;
    sl_err err = {0};
    ck_assert_msg(sl_gpt2_create(&m, &c, &err) == 0, "%s", err.msg);
    sl_gpt2_init_random(m, 3);
    sl_test_rng r = {4};
    for (size_t i = 0; i < m->nparams; i++)
        m->params[i] += 0.1f * sl_test_randf(&r);
    return m;
}

START_TEST(test_round_trip)
{
    sl_gpt2 *m = small_model();
    const char *dir = sl_test_tmpdir();
    sl_err err = {0};
    sl_st_dtype dts[] = {SL_ST_F32, SL_ST_BF16, SL_ST_F16};
    /* half an ulp relative (8 and 11 significant bits), and for F16 half its
     * smallest subnormal step (2^-25) absolute */
    double tol[] = {0, 1.0 / 256, 1.0 / 2048}, tol_abs[] = {0, 0, 0x1p-25};
    for (int k = 0; k < 3; k++) {
        ck_assert_msg(sl_modeldir_save(m, dir, dts[k], &err) == 0, "%s", err.msg);
        sl_st_dtype got;
        ck_assert_int_eq(sl_modeldir_dtype(dir, &got, &err), 0);
        ck_assert_int_eq(got, dts[k]);
        sl_gpt2 *b = NULL;
        ck_assert_msg(sl_modeldir_load(&b, dir, &err) == 0, "%s", err.msg);
        ck_assert_uint_eq(b->nparams, m->nparams);
        ck_assert_int_eq(b->cfg.n_layer, 2);
        for (size_t i = 0; i < m->nparams; i++)
            ck_assert_double_le(fabs(b->params[i] - m->params[i]),
                                tol[k] * fabs(m->params[i]) + tol_abs[k]);
        sl_gpt2_free(b);
    }
    sl_gpt2_free(m);
}
END_TEST

/* Writes m's tensors with names rewritten by `style` plus extra tensors. */
static void write_custom(const sl_gpt2 *m, const char *dir, int strip_prefix, int skip,
                         const char *extra_name, const float *extra, int64_t e0, int64_t e1,
                         int bad_shape_idx)
{
    sl_err err = {0};
    char path[512];
    snprintf(path, sizeof path, "%s/config.json", dir);
    ck_assert_int_eq(sl_hfconfig_save(&m->cfg, path, &err), 0);
    sl_st_entry e[64];
    sl_gpt2_tensor t[64];
    char names[64][100];
    int n = 0;
    for (int i = 0; i < m->ntensors; i++) {
        if (i == skip)
            continue;
        sl_gpt2_tensor_info(m, i, &t[n]);
        snprintf(names[n], sizeof names[n], "%s", t[n].name + (strip_prefix ? 12 : 0));
        e[n] = (sl_st_entry){names[n], SL_ST_F32, t[n].ndim, {t[n].shape[0], t[n].shape[1]},
                             t[n].data};
        if (i == bad_shape_idx) { /* transposed, as a Linear (not Conv1D) export would be */
            e[n].shape[0] = t[n].shape[1];
            e[n].shape[1] = t[n].shape[0];
        }
        n++;
    }
    if (extra_name)
        e[n++] = (sl_st_entry){extra_name, SL_ST_F32, e1 ? 2 : 1, {e0, e1}, extra};
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    ck_assert_msg(sl_st_write(path, e, (size_t)n, NULL, 0, &err) == 0, "%s", err.msg);
}

START_TEST(test_hf_styles)
{
    sl_gpt2 *m = small_model();
    sl_err err = {0};
    sl_gpt2 *b = NULL;
    /* GPT2Model naming (no "transformer."), a causal-mask buffer and a tied
     * lm_head equal to wte: loads. */
    const char *dir = sl_test_tmpdir();
    float mask[144];
    for (int i = 0; i < 144; i++)
        mask[i] = 1.0f;
    write_custom(m, dir, 1, -1, "h.0.attn.bias", mask, 12, 12, -1);
    ck_assert_msg(sl_modeldir_load(&b, dir, &err) == 0, "%s", err.msg);
    ck_assert_mem_eq(b->params, m->params, sizeof(float) * m->nparams);
    sl_gpt2_free(b);
    dir = sl_test_tmpdir();
    write_custom(m, dir, 0, -1, "lm_head.weight", m->wte, m->V, m->C, -1);
    ck_assert_msg(sl_modeldir_load(&b, dir, &err) == 0, "%s", err.msg);
    sl_gpt2_free(b);
    sl_gpt2_free(m);
}
END_TEST

START_TEST(test_refusals)
{
    sl_gpt2 *m = small_model();
    sl_err err = {0};
    sl_gpt2 *b = (sl_gpt2 *)0x1;
    const char *dir = sl_test_tmpdir();
    write_custom(m, dir, 0, 5, NULL, NULL, 0, 0, -1); /* tensor 5 (c_attn.bias) missing */
    ck_assert_int_eq(sl_modeldir_load(&b, dir, &err), SL_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "missing tensor 'transformer.h.0.attn.c_attn.bias'"));
    dir = sl_test_tmpdir();
    write_custom(m, dir, 0, -1, NULL, NULL, 0, 0, 4); /* c_attn transposed */
    ck_assert_int_eq(sl_modeldir_load(&b, dir, &err), SL_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "c_attn.weight"));
    ck_assert_ptr_nonnull(strstr(err.msg, "[24, 8]"));
    dir = sl_test_tmpdir();
    float junk[8] = {0};
    write_custom(m, dir, 0, -1, "transformer.h.0.mlp.gate.weight", junk, 8, 0, -1);
    ck_assert_int_eq(sl_modeldir_load(&b, dir, &err), SL_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "unexpected tensor 'transformer.h.0.mlp.gate.weight'"));
    dir = sl_test_tmpdir();
    float *other = calloc((size_t)m->V * m->C, sizeof(float));
    write_custom(m, dir, 0, -1, "lm_head.weight", other, m->V, m->C, -1);
    ck_assert_int_eq(sl_modeldir_load(&b, dir, &err), SL_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "untied"));
    free(other);
    ck_assert_int_eq(sl_modeldir_load(&b, "/nonexistent/model", &err), SL_ENOTFOUND);
    ck_assert_ptr_eq(b, (sl_gpt2 *)0x1); /* untouched on failure */
    sl_gpt2_free(m);
}
END_TEST

Suite *modeldir_suite(void)
{
    Suite *s = suite_create("modeldir");
    TCase *core = tcase_create("core");
    tcase_add_test(core, test_round_trip);
    tcase_add_test(core, test_hf_styles);
    suite_add_tcase(s, core);
    TCase *bad = tcase_create("malformed");
    tcase_add_test(bad, test_refusals);
    suite_add_tcase(s, bad);
    return s;
}
