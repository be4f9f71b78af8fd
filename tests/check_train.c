/* Trainer, evaluation windows and sampling: learning happens, state save +
 * load resumes bit for bit, bad state files leave the trainer unchanged,
 * windows predict every token once whatever the batching, and sampling obeys
 * its filters. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "shared/cmd_train.h"
#include "shared/gpt2.h"
#include "shared/lora.h"
#include "shared/sample.h"
#include "shared/train.h"
#include "tests/fixtures.h"

static sl_gpt2 *tiny(int L, int C, int V, int T, uint64_t seed)
{
    sl_gpt2_config cfg;
    sl_hfconfig_default(&cfg);
    cfg.n_layer = L;
    cfg.n_head = 2;
    cfg.n_embd = C;
    cfg.vocab_size = V;
    cfg.n_positions = T;
    cfg.bos_token_id = cfg.eos_token_id = V - 1;
    sl_gpt2 *m = NULL;
    sl_err err = {0};
    ck_assert_msg(sl_gpt2_create(&m, &cfg, &err) == 0, "%s", err.msg);
    sl_gpt2_init_random(m, seed);
    return m;
}

/* A batch of a repeating pattern the model can learn. */
static void pattern_batch(int B, int T, int V, int32_t *x, int32_t *y)
{
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            x[b * T + t] = (b + t * 3) % (V - 1);
            y[b * T + t] = (b + (t + 1) * 3) % (V - 1);
        }
}

START_TEST(test_lora_learns)
{
    sl_gpt2 *m = tiny(2, 16, 23, 16, 3), *ref = tiny(2, 16, 23, 16, 3);
    /* With N(0, 0.02) embeddings the tied lm_head of a width-16 model
     * cannot express confident logits whatever the hidden state; a
     * pretrained model's embeddings are far larger. */
    for (size_t i = 0; i < (size_t)23 * 16; i++) {
        m->wte[i] *= 100;
        ref->wte[i] *= 100;
    }
    sl_lora *l = NULL;
    sl_err err = {0};
    ck_assert_int_eq(sl_lora_create(&l, m, 4, 8, SL_LORA_C_ATTN | SL_LORA_MLP_FC | SL_LORA_MLP_PROJ, NULL, 0, 1,
                                    &err), 0);
    sl_train_cfg c;
    sl_train_cfg_init(&c);
    c.B = 4;
    c.T = 16;
    c.steps = 120;
    c.warmup = 5;
    c.lr = 3e-2f;
    c.lr_min = 3e-3f;
    sl_trainer *t = NULL;
    ck_assert_msg(sl_trainer_create(&t, m, l, NULL, &c, &err) == 0, "%s", err.msg);
    int32_t x[64], y[64];
    pattern_batch(4, 16, 23, x, y);
    sl_train_stats st;
    ck_assert_int_eq(sl_trainer_step_batch(t, x, y, &st, &err), 0);
    float first = st.loss;
    for (int i = 1; i < 120; i++)
        ck_assert_int_eq(sl_trainer_step_batch(t, x, y, &st, &err), 0);
    ck_assert_int_eq(st.step, 120);
    ck_assert_int_eq(sl_trainer_steps_done(t), 120);
    ck_assert_msg(st.loss < 0.5f * first, "loss %g -> %g", first, st.loss);
    /* The model itself is frozen: only the adapter moved. */
    ck_assert_int_eq(memcmp(ref->params, m->params, m->nparams * sizeof(float)), 0);
    sl_trainer_free(t);
    sl_lora_free(l);
    sl_gpt2_free(ref);
    sl_gpt2_free(m);
}
END_TEST

/* Full training for 2k steps vs k steps, save, a fresh trainer on the saved
 * weights, load, k steps: the same weights bit for bit. */
START_TEST(test_resume_bit_exact)
{
    sl_err err = {0};
    sl_train_cfg c;
    sl_train_cfg_init(&c);
    c.B = 2;
    c.T = 8;
    c.steps = 10;
    c.warmup = 2;
    c.lr = 5e-3f;
    c.weight_decay = 0.1f;
    int32_t x[16], y[16];
    pattern_batch(2, 8, 19, x, y);
    sl_gpt2 *a = tiny(2, 8, 19, 8, 5), *b = tiny(2, 8, 19, 8, 5);
    sl_trainer *ta = NULL, *tb = NULL;
    ck_assert_int_eq(sl_trainer_create(&ta, a, NULL, NULL, &c, &err), 0);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(sl_trainer_step_batch(ta, x, y, NULL, &err), 0);

    ck_assert_int_eq(sl_trainer_create(&tb, b, NULL, NULL, &c, &err), 0);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(sl_trainer_step_batch(tb, x, y, NULL, &err), 0);
    const char *dir = sl_test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/state.safetensors", dir);
    ck_assert_msg(sl_trainer_save_state(tb, path, &err) == 0, "%s", err.msg);
    sl_trainer_free(tb);
    tb = NULL;
    /* A new trainer (fresh moments) over the same weights, then the state. */
    ck_assert_int_eq(sl_trainer_create(&tb, b, NULL, NULL, &c, &err), 0);
    ck_assert_int_eq(sl_trainer_steps_done(tb), 0);
    ck_assert_msg(sl_trainer_load_state(tb, path, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(sl_trainer_steps_done(tb), 5);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(sl_trainer_step_batch(tb, x, y, NULL, &err), 0);
    ck_assert_int_eq(memcmp(a->params, b->params, a->nparams * sizeof(float)), 0);

    /* Without the state (fresh moments) the result differs: the check above
     * can fail. */
    sl_gpt2 *d = tiny(2, 8, 19, 8, 5);
    sl_trainer *td = NULL;
    ck_assert_int_eq(sl_trainer_create(&td, d, NULL, NULL, &c, &err), 0);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(sl_trainer_step_batch(td, x, y, NULL, &err), 0);
    sl_trainer_free(td);
    td = NULL;
    ck_assert_int_eq(sl_trainer_create(&td, d, NULL, NULL, &c, &err), 0);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(sl_trainer_step_batch(td, x, y, NULL, &err), 0);
    ck_assert_int_ne(memcmp(a->params, d->params, a->nparams * sizeof(float)), 0);

    sl_trainer_free(ta);
    sl_trainer_free(tb);
    sl_trainer_free(td);
    sl_gpt2_free(a);
    sl_gpt2_free(b);
    sl_gpt2_free(d);
}
END_TEST

START_TEST(test_state_refused)
{
    sl_err err = {0};
    sl_train_cfg c;
    sl_train_cfg_init(&c);
    c.B = 2;
    c.T = 8;
    c.steps = 10;
    int32_t x[16], y[16];
    pattern_batch(2, 8, 19, x, y);
    sl_gpt2 *a = tiny(2, 8, 19, 8, 5);
    sl_trainer *t = NULL, *u = NULL;
    ck_assert_int_eq(sl_trainer_create(&t, a, NULL, NULL, &c, &err), 0);
    ck_assert_int_eq(sl_trainer_step_batch(t, x, y, NULL, &err), 0);
    const char *dir = sl_test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/state.safetensors", dir);
    ck_assert_int_eq(sl_trainer_save_state(t, path, &err), 0);
    /* Another schedule: refused, naming it, and the trainer is unchanged. */
    c.steps = 11;
    ck_assert_int_eq(sl_trainer_create(&u, a, NULL, NULL, &c, &err), 0);
    ck_assert_int_eq(sl_trainer_load_state(u, path, &err), SL_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "schedule"));
    ck_assert_int_eq(sl_trainer_steps_done(u), 0);
    sl_trainer_free(u);
    u = NULL;
    /* Another trained size (LoRA instead of full): refused. */
    c.steps = 10;
    sl_lora *l = NULL;
    ck_assert_int_eq(sl_lora_create(&l, a, 2, 4, SL_LORA_C_ATTN, NULL, 0, 1, &err), 0);
    ck_assert_int_eq(sl_trainer_create(&u, a, l, NULL, &c, &err), 0);
    ck_assert_int_eq(sl_trainer_load_state(u, path, &err), SL_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "parameters"));
    sl_trainer_free(u);
    /* A truncated file: refused with its name. */
    FILE *f = fopen(path, "r+b");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(ftruncate(fileno(f), 40), 0);
    fclose(f);
    ck_assert_int_ne(sl_trainer_load_state(t, path, &err), 0);
    ck_assert_ptr_nonnull(strstr(err.msg, "state.safetensors"));
    ck_assert_int_eq(sl_trainer_steps_done(t), 1);
    sl_lora_free(l);
    sl_trainer_free(t);
    sl_gpt2_free(a);
}
END_TEST

/* Per-token NLL of ids[0..n) by one forward over the whole sequence. */
static double direct_nll(sl_gpt2 *m, const int32_t *ids, int n)
{
    sl_err err = {0};
    sl_gpt2_ctx *c = NULL;
    ck_assert_int_eq(sl_gpt2_ctx_create(&c, m, NULL, NULL, 1, n - 1, &err), 0);
    float l = sl_gpt2_forward(c, ids, ids + 1, 1, n - 1, 0);
    sl_gpt2_ctx_free(c);
    return l;
}

START_TEST(test_eval_windows)
{
    sl_gpt2 *m = tiny(2, 16, 31, 32, 9);
    sl_err err = {0};
    int32_t ids[70];
    sl_test_rng r = {42};
    for (int i = 0; i < 70; i++)
        ids[i] = (int32_t)(sl_test_rand(&r) % 30);
    sl_gpt2_ctx *c = NULL;
    ck_assert_int_eq(sl_gpt2_ctx_create(&c, m, NULL, NULL, 3, 32, &err), 0);
    sl_eval_result a, b, d;
    /* One window covering everything equals a direct forward. */
    ck_assert_int_eq(sl_eval_ids(c, 1, 32, ids, 33, &a, &err), 0);
    ck_assert_uint_eq(a.tokens, 32);
    ck_assert_double_eq_tol(a.nll, direct_nll(m, ids, 33), 1e-5);
    ck_assert_double_eq_tol(a.ppl, exp(a.nll), 1e-9 * a.ppl);
    /* 70 tokens, T = 10: 7 windows (the last of 9), 69 predictions, and
     * the mean of the windows' direct sums whatever the batch. */
    ck_assert_int_eq(sl_eval_ids(c, 1, 10, ids, 70, &a, &err), 0);
    ck_assert_int_eq(sl_eval_ids(c, 3, 10, ids, 70, &b, &err), 0);
    ck_assert_uint_eq(a.tokens, 69);
    ck_assert_uint_eq(b.tokens, 69);
    double sum = 0;
    for (int w = 0; w < 7; w++) {
        int len = w < 6 ? 11 : 10;
        sum += direct_nll(m, ids + w * 10, len) * (len - 1);
    }
    ck_assert_double_eq_tol(a.nll, sum / 69, 1e-5);
    ck_assert_double_eq_tol(b.nll, a.nll, 1e-5);
    /* Too short, and ids outside the vocabulary. */
    ck_assert_int_eq(sl_eval_ids(c, 1, 10, ids, 1, &d, &err), SL_EINVAL);
    int32_t bad[4] = {1, 2, 31, 3};
    ck_assert_int_eq(sl_eval_ids(c, 1, 10, bad, 4, &d, &err), SL_EINVAL);
    sl_gpt2_ctx_free(c);
    sl_gpt2_free(m);
}
END_TEST

START_TEST(test_sample)
{
    float logits[6] = {0.1f, 2.0f, -1.0f, 1.9f, 2.0f, 0.0f};
    float scratch[12];
    sl_rng r;
    sl_rng_seed(&r, 3);
    sl_sample_cfg g = {0, 0, 1};
    /* Greedy: the arg-max, lowest id on a tie. */
    ck_assert_int_eq(sl_sample_next(logits, 6, &g, &r, scratch, NULL, 0), 1);
    int32_t ban1[1] = {1};
    ck_assert_int_eq(sl_sample_next(logits, 6, &g, &r, scratch, ban1, 1), 4);
    /* top-k 2 at high temperature: only ids 1 and 4 ever come out. */
    sl_sample_cfg k2 = {5.0f, 2, 1};
    int seen[6] = {0};
    for (int i = 0; i < 400; i++)
        seen[sl_sample_next(logits, 6, &k2, &r, scratch, NULL, 0)]++;
    ck_assert_int_eq(seen[0] + seen[2] + seen[3] + seen[5], 0);
    ck_assert_int_gt(seen[1], 100);
    ck_assert_int_gt(seen[4], 100);
    /* A tiny nucleus keeps only the most likely id. */
    sl_sample_cfg p = {1.0f, 0, 1e-6f};
    for (int i = 0; i < 50; i++)
        ck_assert_int_eq(sl_sample_next(logits, 6, &p, &r, scratch, NULL, 0), 1);
    /* Full distribution at temperature 1: frequencies follow softmax. */
    sl_sample_cfg t1 = {1.0f, 0, 1};
    memset(seen, 0, sizeof seen);
    int N = 20000;
    for (int i = 0; i < N; i++)
        seen[sl_sample_next(logits, 6, &t1, &r, scratch, NULL, 0)]++;
    double z = 0;
    for (int i = 0; i < 6; i++)
        z += exp(logits[i]);
    for (int i = 0; i < 6; i++) {
        double pr = exp(logits[i]) / z, sd = sqrt(pr * (1 - pr) / N);
        ck_assert_msg(fabs((double)seen[i] / N - pr) < 5 * sd + 1e-9, "id %d: %g vs %g", i,
                      (double)seen[i] / N, pr);
    }
    /* The same seed gives the same draws. */
    sl_rng r1, r2;
    sl_rng_seed(&r1, 77);
    sl_rng_seed(&r2, 77);
    for (int i = 0; i < 20; i++)
        ck_assert_int_eq(sl_sample_next(logits, 6, &t1, &r1, scratch, NULL, 0),
                         sl_sample_next(logits, 6, &t1, &r2, scratch, NULL, 0));
    sl_err err = {0};
    sl_sample_cfg badc = {-1, 0, 1};
    ck_assert_int_eq(sl_sample_cfg_validate(&badc, &err), SL_EINVAL);
    badc = (sl_sample_cfg){1, 0, 0};
    ck_assert_int_eq(sl_sample_cfg_validate(&badc, &err), SL_EINVAL);
}
END_TEST

START_TEST(test_cfg_and_lists)
{
    sl_err err = {0};
    sl_train_cfg c;
    sl_train_cfg_init(&c);
    ck_assert_int_eq(sl_train_cfg_validate(&c, 256, &err), 0);
    c.T = 300;
    ck_assert_int_eq(sl_train_cfg_validate(&c, 256, &err), SL_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "context 300"));
    sl_train_cfg_init(&c);
    c.warmup = 200;
    ck_assert_int_eq(sl_train_cfg_validate(&c, 256, &err), SL_EINVAL);
    unsigned mask;
    ck_assert_int_eq(sl_train_parse_targets("c_attn,mlp.c_proj", &mask, &err), 0);
    ck_assert_uint_eq(mask, SL_LORA_C_ATTN | SL_LORA_MLP_PROJ);
    ck_assert_int_eq(sl_train_parse_targets("c_attn,c_proj", &mask, &err), SL_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "'c_proj'"));
    int layers[16], n;
    ck_assert_int_eq(sl_train_parse_layers("0,1,6-7", 8, layers, &n, &err), 0);
    ck_assert_int_eq(n, 4);
    ck_assert_int_eq(layers[3], 7);
    ck_assert_int_eq(sl_train_parse_layers("0,8", 8, layers, &n, &err), SL_EINVAL);
    ck_assert_int_eq(sl_train_parse_layers("1,1", 8, layers, &n, &err), SL_EINVAL);
    ck_assert_int_eq(sl_train_parse_layers("3-1", 8, layers, &n, &err), SL_EINVAL);
    ck_assert_int_eq(sl_train_parse_layers("x", 8, layers, &n, &err), SL_EINVAL);
}
END_TEST

Suite *train_suite(void)
{
    Suite *s = suite_create("train");
    TCase *core = tcase_create("core");
    tcase_add_test(core, test_lora_learns);
    tcase_add_test(core, test_resume_bit_exact);
    tcase_add_test(core, test_eval_windows);
    tcase_add_test(core, test_sample);
    suite_add_tcase(s, core);
    TCase *mal = tcase_create("malformed");
    tcase_add_test(mal, test_state_refused);
    tcase_add_test(mal, test_cfg_and_lists);
    suite_add_tcase(s, mal);
    return s;
}
