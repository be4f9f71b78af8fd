/* Emulators (shared/emulator): the layer plan follows Offsite-Tuning's
 * uniform choice; an emulator with drop ratio 0 computes exactly the full
 * model's logits (bit for bit: same weights, same kernels); a thinned one
 * computes what a full model with those blocks would; a LoRA renumbered
 * emulator -> full -> emulator comes back identical, lands on the full
 * model's block indices, and one on a dropped block is refused. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "shared/emulator.h"
#include "shared/hfconfig.h"
#include "shared/train.h"
#include <float.h>
#include "tests/fixtures.h"

static sl_gpt2 *tiny(int layers, uint64_t seed)
{
    sl_gpt2_config c;
    sl_hfconfig_default(&c);
    c.n_layer = layers;
    c.n_head = 2;
    c.n_embd = 16;
    c.n_positions = 16;
    c.vocab_size = 37;
    c.bos_token_id = c.eos_token_id = 36;
    sl_gpt2 *m = NULL;
    sl_err err = {0};
    ck_assert_msg(sl_gpt2_create(&m, &c, &err) == 0, "%s", err.msg);
    sl_gpt2_init_random(m, seed);
    /* non-trivial LayerNorms and biases, so a wrong copy shows */
    sl_test_rng r = {seed};
    for (int i = 0; i < m->ntensors; i++) {
        sl_gpt2_tensor t;
        sl_gpt2_tensor_info(m, i, &t);
        if (t.ndim == 1)
            for (size_t j = 0; j < t.numel; j++)
                t.data[j] += 0.1f * sl_test_randf(&r);
    }
    return m;
}

/* Logits of every position for a fixed random batch. */
static float *logits(sl_gpt2 *m, int B, int T)
{
    sl_err err = {0};
    sl_gpt2_ctx *c = NULL;
    ck_assert_msg(sl_gpt2_ctx_create(&c, m, NULL, NULL, B, T, &err) == 0, "%s", err.msg);
    int32_t in[64];
    sl_test_rng r = {5};
    for (int i = 0; i < B * T; i++)
        in[i] = (int32_t)(sl_test_rand(&r) % (uint64_t)m->V);
    sl_gpt2_forward(c, in, NULL, B, T, 0);
    float *out = malloc(sizeof(float) * (size_t)B * T * m->V);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            sl_gpt2_logits_at(c, b, t, out + ((size_t)b * T + t) * m->V);
    sl_gpt2_ctx_free(c);
    return out;
}

START_TEST(test_plan)
{
    int map[256], n;
    double a;
    sl_err err = {0};
    /* 8 blocks, 2 + 2 adapter, middle 2..5 */
    ck_assert_int_eq(sl_emulator_plan(8, 2, 2, 0.5, NULL, 0, map, &n, &a, &err), 0);
    int want1[] = {0, 1, 2, 5, 6, 7};
    ck_assert_int_eq(n, 6);
    ck_assert_mem_eq(map, want1, sizeof want1);
    ck_assert(a == 0.5);
    ck_assert_int_eq(sl_emulator_plan(8, 2, 2, 0.75, NULL, 0, map, &n, &a, &err), 0);
    int want2[] = {0, 1, 2, 6, 7};
    ck_assert_int_eq(n, 5);
    ck_assert_mem_eq(map, want2, sizeof want2);
    ck_assert_int_eq(sl_emulator_plan(8, 2, 2, 0.0, NULL, 0, map, &n, &a, &err), 0);
    ck_assert_int_eq(n, 8);
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(map[i], i);
    ck_assert(a == 0.0);
    /* 12 blocks, 2 + 2, drop 0.5: 4 of the 8 middle blocks, evenly spread
     * (round(i * 7/3) = 0, 2, 5, 7 -> blocks 2, 4, 7, 9) */
    ck_assert_int_eq(sl_emulator_plan(12, 2, 2, 0.5, NULL, 0, map, &n, &a, &err), 0);
    int want3[] = {0, 1, 2, 4, 7, 9, 10, 11};
    ck_assert_int_eq(n, 8);
    ck_assert_mem_eq(map, want3, sizeof want3);
    /* an explicit list, in any order */
    int keep[] = {5, 3};
    ck_assert_int_eq(sl_emulator_plan(8, 2, 2, 0, keep, 2, map, &n, &a, &err), 0);
    int want4[] = {0, 1, 3, 5, 6, 7};
    ck_assert_int_eq(n, 6);
    ck_assert_mem_eq(map, want4, sizeof want4);
    ck_assert(a == 0.5);
}
END_TEST

START_TEST(test_drop_zero_exact)
{
    sl_gpt2 *full = tiny(5, 11), *emu = NULL;
    int map[8], n;
    sl_err err = {0};
    ck_assert_int_eq(sl_emulator_plan(5, 2, 2, 0.0, NULL, 0, map, &n, NULL, &err), 0);
    ck_assert_int_eq(n, 5);
    ck_assert_msg(sl_emulator_build(&emu, full, map, n, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(emu->nparams, full->nparams);
    float *a = logits(full, 2, 7), *b = logits(emu, 2, 7);
    ck_assert_mem_eq(a, b, sizeof(float) * 2 * 7 * full->V);
    free(a);
    free(b);
    sl_gpt2_free(emu);
    sl_gpt2_free(full);
}
END_TEST

/* A thinned emulator equals a full model whose dropped blocks are the
 * identity: zero the residual branches' output weights and biases of the
 * dropped blocks (attn.c_proj, mlp.c_proj), and the block passes its input
 * through unchanged. */
START_TEST(test_drop_equals_identity_blocks)
{
    sl_gpt2 *full = tiny(6, 12), *emu = NULL;
    int map[8], n;
    sl_err err = {0};
    ck_assert_int_eq(sl_emulator_plan(6, 2, 2, 0.5, NULL, 0, map, &n, NULL, &err), 0);
    ck_assert_int_eq(n, 5); /* 0 1 2 4 5 */
    ck_assert_int_eq(sl_emulator_build(&emu, full, map, n, &err), 0);
    sl_gpt2_layer *d = &full->layers[3];
    memset(d->attnproj_w, 0, sizeof(float) * full->C * full->C);
    memset(d->attnproj_b, 0, sizeof(float) * full->C);
    memset(d->fcproj_w, 0, sizeof(float) * full->F * full->C);
    memset(d->fcproj_b, 0, sizeof(float) * full->C);
    float *a = logits(full, 1, 9), *b = logits(emu, 1, 9);
    /* Adding exact zeros leaves the residual stream's floats unchanged, so
     * the logits agree bit for bit. */
    ck_assert_mem_eq(a, b, sizeof(float) * 9 * full->V);
    free(a);
    free(b);
    sl_gpt2_free(emu);
    sl_gpt2_free(full);
}
END_TEST

START_TEST(test_lora_remap)
{
    sl_gpt2 *full = tiny(8, 13), *emu = NULL;
    int map[8], n;
    sl_err err = {0};
    ck_assert_int_eq(sl_emulator_plan(8, 2, 2, 0.5, NULL, 0, map, &n, NULL, &err), 0);
    ck_assert_int_eq(sl_emulator_build(&emu, full, map, n, &err), 0);
    sl_emumeta meta;
    memset(&meta, 0, sizeof meta);
    memset(meta.base_sha256, 'e', 64);
    meta.full_layers = 8;
    meta.nblocks = n;
    memcpy(meta.layer_map, map, sizeof(int) * (size_t)n);
    meta.bottom = meta.top = 2;
    strcpy(meta.drop_mode, "uniform");
    meta.drop_ratio = 0.5;
    ck_assert_int_eq(sl_emulator_check(&meta, emu, full, &err), 0);
    ck_assert_int_eq(sl_emulator_check(&meta, full, NULL, &err), SL_EINVAL);
    int ad[8], na;
    sl_emulator_adapter_blocks(&meta, ad, &na);
    int want_ad[] = {0, 1, 4, 5};
    ck_assert_int_eq(na, 4);
    ck_assert_mem_eq(ad, want_ad, sizeof want_ad);
    sl_lora *le = NULL, *lf = NULL, *back = NULL;
    ck_assert_int_eq(sl_lora_create(&le, emu, 4, 8.0f, SL_LORA_C_ATTN | SL_LORA_MLP_PROJ, ad, na,
                                    3, &err), 0);
    sl_test_rng r = {3};
    sl_test_fill(&r, le->params, le->nparams, 0.5f);
    ck_assert_msg(sl_emulator_lora_remap(&lf, le, map, n, 1, 8, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(lf->L, 8);
    ck_assert_int_eq(lf->nslots, le->nslots);
    ck_assert_ptr_nonnull(sl_lora_slot_at(lf, 6, 0));
    ck_assert_ptr_nonnull(sl_lora_slot_at(lf, 7, 3));
    ck_assert_ptr_null(sl_lora_slot_at(lf, 4, 0));
    ck_assert_ptr_null(sl_lora_slot_at(lf, 2, 0));
    /* the factor of emulator block 4 is the full model's block 6 */
    const sl_lora_slot *se = sl_lora_slot_at(le, 4, 3), *sf = sl_lora_slot_at(lf, 6, 3);
    ck_assert_mem_eq(se->A, sf->A, sizeof(float) * (size_t)le->r * se->in);
    ck_assert_mem_eq(se->B, sf->B, sizeof(float) * (size_t)le->r * se->out);
    ck_assert_msg(sl_emulator_lora_remap(&back, lf, map, n, 0, n, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(back->nparams, le->nparams);
    ck_assert_mem_eq(back->params, le->params, sizeof(float) * le->nparams);
    for (int s = 0; s < le->nslots; s++)
        ck_assert_int_eq(back->slots[s].layer, le->slots[s].layer);
    sl_lora_free(back);
    back = NULL;
    /* a full-model adapter on a dropped block cannot go to the emulator */
    sl_lora *on3 = NULL;
    int l3[] = {3};
    ck_assert_int_eq(sl_lora_create(&on3, full, 2, 4.0f, SL_LORA_C_ATTN, l3, 1, 1, &err), 0);
    ck_assert_int_eq(sl_emulator_lora_remap(&back, on3, map, n, 0, n, &err), SL_EINVAL);
    ck_assert_ptr_null(back);
    ck_assert_msg(strstr(err.msg, "block 3"), "%s", err.msg);
    sl_lora_free(on3);
    sl_lora_free(lf);
    sl_lora_free(le);
    sl_gpt2_free(emu);
    sl_gpt2_free(full);
}
END_TEST

static void meta_for(sl_emumeta *meta, const int *map, int n, int L)
{
    memset(meta, 0, sizeof *meta);
    memset(meta->base_sha256, 'e', 64);
    meta->full_layers = L;
    meta->nblocks = n;
    memcpy(meta->layer_map, map, sizeof(int) * (size_t)n);
    meta->bottom = meta->top = 2;
    strcpy(meta->drop_mode, "uniform");
    meta->drop_ratio = 0.5;
}

/* A LoRA trained on the emulator (a few AdamW steps on random tokens),
 * saved with full-model indices and plugged into the full model, changes
 * exactly the adapted modules of the adapter blocks; unmerging restores
 * them within float rounding. */
START_TEST(test_plugin_blocks)
{
    sl_gpt2 *full = tiny(8, 21), *emu = NULL, *orig = tiny(8, 21);
    int map[8], n;
    sl_err err = {0};
    ck_assert_int_eq(sl_emulator_plan(8, 2, 2, 0.5, NULL, 0, map, &n, NULL, &err), 0);
    ck_assert_int_eq(sl_emulator_build(&emu, full, map, n, &err), 0);
    sl_emumeta meta;
    meta_for(&meta, map, n, 8);
    int ad[8], na;
    sl_emulator_adapter_blocks(&meta, ad, &na);
    sl_lora *le = NULL;
    unsigned targets = SL_LORA_C_ATTN | SL_LORA_MLP_FC;
    ck_assert_int_eq(sl_lora_create(&le, emu, 2, 4.0f, targets, ad, na, 5, &err), 0);
    sl_train_cfg cfg;
    sl_train_cfg_init(&cfg);
    cfg.B = 2;
    cfg.T = 8;
    cfg.steps = 5;
    cfg.warmup = 0;
    cfg.lr = 1e-2f;
    sl_trainer *tr = NULL;
    ck_assert_msg(sl_trainer_create(&tr, emu, le, NULL, &cfg, &err) == 0, "%s", err.msg);
    int32_t in[16], tg[16];
    sl_test_rng r = {77};
    for (int s = 0; s < 5; s++) {
        for (int i = 0; i < 16; i++) {
            in[i] = (int32_t)(sl_test_rand(&r) % 37);
            tg[i] = (int32_t)(sl_test_rand(&r) % 37);
        }
        sl_train_stats st;
        ck_assert_msg(sl_trainer_step_batch(tr, in, tg, &st, &err) == 0, "%s", err.msg);
    }
    sl_trainer_free(tr);
    const char *dir = sl_test_tmpdir();
    ck_assert_msg(sl_emulator_adapter_save(le, &meta, dir, "emu", &err) == 0, "%s", err.msg);
    /* the saved adapter reads back onto the emulator unchanged */
    sl_lora *back = NULL;
    ck_assert_msg(sl_emulator_adapter_load(&back, emu, &meta, dir, NULL, &err) == 0, "%s",
                  err.msg);
    ck_assert_mem_eq(back->params, le->params, sizeof(float) * le->nparams);
    sl_lora_free(back);
    char digest[65];
    memset(digest, 'e', 64);
    digest[64] = 0;
    sl_lora *used = NULL;
    int had = 0;
    ck_assert_msg(sl_emulator_plugin(full, digest, dir, &used, &had, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(had, 1);
    int changed_tensors = 0;
    for (int i = 0; i < full->ntensors; i++) {
        sl_gpt2_tensor a, b;
        sl_gpt2_tensor_info(full, i, &a);
        sl_gpt2_tensor_info(orig, i, &b);
        int adapted = a.layer >= 0 && (a.layer <= 1 || a.layer >= 6) &&
                      (a.kind == SL_T_ATTN_W || a.kind == SL_T_FC_W);
        size_t diff = 0;
        for (size_t j = 0; j < a.numel; j++)
            diff += a.data[j] != b.data[j];
        if (adapted) {
            ck_assert_msg(diff > a.numel / 2, "%s: only %zu of %zu changed", a.name, diff,
                          a.numel);
            changed_tensors++;
        } else {
            ck_assert_msg(diff == 0, "%s changed (%zu values)", a.name, diff);
        }
    }
    ck_assert_int_eq(changed_tensors, 8);
    /* Unmerge: W1 = fl(W0 + d), W2 = fl(W1 - d) with d the same rank-2
     * product (re-computed by the same sgemm, accumulated in float): each
     * step rounds once, plus the product's own rounding in each, so
     * |W2 - W0| stays within a few ulp of |W0| + |W1|; 8 eps covers it
     * with margin and is far below the update itself. */
    float *merged = malloc(sizeof(float) * full->nparams);
    memcpy(merged, full->params, sizeof(float) * full->nparams);
    sl_lora_merge(full, used, -1.0f);
    for (int i = 0; i < full->ntensors; i++) {
        sl_gpt2_tensor a, b;
        sl_gpt2_tensor_info(full, i, &a);
        sl_gpt2_tensor_info(orig, i, &b);
        for (size_t j = 0; j < a.numel; j++) {
            float w1 = merged[(size_t)(a.data - full->params) + j];
            float tol = 8 * FLT_EPSILON * (fabsf(b.data[j]) + fabsf(w1)) + 1e-12f;
            ck_assert_msg(fabsf(a.data[j] - b.data[j]) <= tol, "%s[%zu]: %g vs %g", a.name, j,
                          (double)a.data[j], (double)b.data[j]);
        }
    }
    free(merged);
    /* another base model's digest is refused, and the model stays as it is */
    memset(digest, 'f', 64);
    sl_lora *none = NULL;
    float w0 = full->layers[0].attn_w[0];
    ck_assert_int_eq(sl_emulator_plugin(full, digest, dir, &none, NULL, &err), SL_EINVAL);
    ck_assert_msg(strstr(err.msg, "SHA-256"), "%s", err.msg);
    ck_assert_ptr_null(none);
    ck_assert(full->layers[0].attn_w[0] == w0);
    /* an adapter for another emulator's base is refused when loaded onto it */
    sl_emumeta other = meta;
    memset(other.base_sha256, 'd', 64);
    ck_assert_int_eq(sl_emulator_adapter_load(&none, emu, &other, dir, NULL, &err), SL_EINVAL);
    sl_lora_free(used);
    sl_lora_free(le);
    sl_gpt2_free(emu);
    sl_gpt2_free(orig);
    sl_gpt2_free(full);
}
END_TEST

START_TEST(test_limits)
{
    int map[256], n;
    sl_err err = {0};
    /* no middle at all: the emulator is the adapter */
    ck_assert_int_eq(sl_emulator_plan(4, 2, 2, 0.5, NULL, 0, map, &n, NULL, &err), 0);
    ck_assert_int_eq(n, 4);
    /* a large drop keeps one middle block */
    ck_assert_int_eq(sl_emulator_plan(12, 2, 2, 0.99, NULL, 0, map, &n, NULL, &err), 0);
    ck_assert_int_eq(n, 5);
    ck_assert_int_eq(sl_emulator_plan(256, 0, 0, 0.0, NULL, 0, map, &n, NULL, &err), 0);
    ck_assert_int_eq(n, 256);
    ck_assert_int_eq(sl_emulator_plan(257, 0, 0, 0.0, NULL, 0, map, &n, NULL, &err), SL_EINVAL);
}
END_TEST

START_TEST(test_malformed)
{
    int map[16], n = -7;
    sl_err err = {0};
    ck_assert_int_eq(sl_emulator_plan(8, 5, 4, 0.5, NULL, 0, map, &n, NULL, &err), SL_EINVAL);
    ck_assert_int_eq(sl_emulator_plan(8, 2, 2, 1.0, NULL, 0, map, &n, NULL, &err), SL_EINVAL);
    ck_assert_int_eq(sl_emulator_plan(8, 2, 2, -0.1, NULL, 0, map, &n, NULL, &err), SL_EINVAL);
    int k1[] = {1};
    ck_assert_int_eq(sl_emulator_plan(8, 2, 2, 0, k1, 1, map, &n, NULL, &err), SL_EINVAL);
    ck_assert_msg(strstr(err.msg, "kept block 1"), "%s", err.msg);
    int k2[] = {3, 3};
    ck_assert_int_eq(sl_emulator_plan(8, 2, 2, 0, k2, 2, map, &n, NULL, &err), SL_EINVAL);
    ck_assert_int_eq(n, -7); /* untouched */
    sl_gpt2 *full = tiny(4, 1), *emu = NULL;
    int bad[] = {0, 2, 1};
    ck_assert_int_eq(sl_emulator_build(&emu, full, bad, 3, &err), SL_EINVAL);
    int big[] = {0, 4};
    ck_assert_int_eq(sl_emulator_build(&emu, full, big, 2, &err), SL_EINVAL);
    ck_assert_ptr_null(emu);
    sl_gpt2_free(full);
}
END_TEST

Suite *emulator_suite(void)
{
    Suite *s = suite_create("emulator");
    TCase *core = tcase_create("core");
    tcase_add_test(core, test_plan);
    tcase_add_test(core, test_drop_zero_exact);
    tcase_add_test(core, test_drop_equals_identity_blocks);
    tcase_add_test(core, test_lora_remap);
    tcase_add_test(core, test_plugin_blocks);
    suite_add_tcase(s, core);
    TCase *lim = tcase_create("limits");
    tcase_add_test(lim, test_limits);
    suite_add_tcase(s, lim);
    TCase *bad = tcase_create("malformed");
    tcase_add_test(bad, test_malformed);
    suite_add_tcase(s, bad);
    return s;
}
