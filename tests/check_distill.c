/* Emulator distillation (server/distill): on a tiny model it lowers the
 * held-out hidden-state error of the emulator against the full model and
 * changes only the middle blocks; the loss's gradients (MSE at the last
 * middle block, plus the logit KL term) match finite differences; an
 * interrupted run resumes to the same weights bit for bit; an emulator
 * without middle blocks is refused. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/distill.h"
#include "shared/bpe_train.h"
#include "shared/emulator.h"
#include "shared/fsutil.h"
#include "shared/hfconfig.h"
#include "tests/fixtures.h"
#include "tests/gradcheck.h"

static const char *const WORDS[] = {" the", " cat", " sat", " on", " mat", "\n", ".", ",",
                                    " dog", " ran", " far", " away", " 42", " and"};
#define NWORDS (sizeof WORDS / sizeof WORDS[0])

/* A folder with a tokenizer (vocabulary 300) and a text of ~40 KB of
 * seeded word salad in documents. Returns the folder; *text the file. */
static const char *make_corpus(char *text, size_t cap)
{
    static char dir[300];
    snprintf(dir, sizeof dir, "%s", sl_test_tmpdir());
    sl_test_rng r = {99};
    size_t n = 0, max = 40000;
    char *buf = malloc(max + 64);
    while (n < max) {
        const char *w = WORDS[sl_test_rand(&r) % NWORDS];
        size_t l = strlen(w);
        memcpy(buf + n, w, l);
        n += l;
        if (sl_test_rand(&r) % 200 == 0) {
            memcpy(buf + n, "<|endoftext|>", 13);
            n += 13;
        }
    }
    snprintf(text, cap, "%s", sl_test_write(dir, "text.txt", buf, n));
    sl_bpe_trainer *tr = NULL;
    sl_err err = {0};
    ck_assert_int_eq(sl_bpe_train_create(&tr, &err), 0);
    ck_assert_int_eq(sl_bpe_train_feed(tr, buf, n, &err), 0);
    ck_assert_int_eq(sl_bpe_train_run(tr, 300, 1, &err), 0);
    ck_assert_int_eq(sl_bpe_train_write(tr, dir, &err), 0);
    sl_bpe_train_free(tr);
    free(buf);
    return dir;
}

static sl_gpt2 *tiny(int layers, uint64_t seed)
{
    sl_gpt2_config c;
    sl_hfconfig_default(&c);
    c.n_layer = layers;
    c.n_head = 2;
    c.n_embd = 32;
    c.n_positions = 32;
    c.vocab_size = 300;
    c.bos_token_id = c.eos_token_id = 299;
    sl_gpt2 *m = NULL;
    sl_err err = {0};
    ck_assert_msg(sl_gpt2_create(&m, &c, &err) == 0, "%s", err.msg);
    sl_gpt2_init_random(m, seed);
    /* weights away from the initial point, so that blocks differ enough for
     * dropping one to matter */
    sl_test_rng r = {seed};
    for (size_t i = 0; i < m->nparams; i++)
        m->params[i] += 0.05f * sl_test_randf(&r);
    return m;
}

typedef struct pair {
    sl_gpt2 *full, *emu;
    sl_emumeta meta;
} pair;

static void make_pair(pair *p, int layers, double drop)
{
    memset(p, 0, sizeof *p);
    p->full = tiny(layers, 5);
    sl_err err = {0};
    ck_assert_int_eq(sl_emulator_plan(layers, 2, 2, drop, NULL, 0, p->meta.layer_map,
                                      &p->meta.nblocks, &p->meta.drop_ratio, &err), 0);
    ck_assert_int_eq(sl_emulator_build(&p->emu, p->full, p->meta.layer_map, p->meta.nblocks, &err),
                     0);
    memset(p->meta.base_sha256, 'a', 64);
    p->meta.full_layers = layers;
    p->meta.bottom = p->meta.top = 2;
    strcpy(p->meta.drop_mode, "uniform");
}

static void free_pair(pair *p)
{
    sl_gpt2_free(p->emu);
    sl_gpt2_free(p->full);
}

START_TEST(test_lowers_error)
{
    char text[400];
    const char *dir = make_corpus(text, sizeof text);
    pair p;
    make_pair(&p, 6, 0.5); /* blocks 0 1 2 4 5: block 3 dropped */
    ck_assert_int_eq(p.meta.nblocks, 5);
    sl_gpt2 *before = NULL;
    sl_err err = {0};
    ck_assert_int_eq(sl_emulator_build(&before, p.full, p.meta.layer_map, p.meta.nblocks, &err),
                     0);
    sl_distill_cfg cfg;
    sl_distill_cfg_init(&cfg);
    cfg.text = text;
    char work[400];
    snprintf(work, sizeof work, "%s/work", dir);
    cfg.work = work;
    cfg.steps = 40;
    cfg.B = 4;
    cfg.T = 16;
    cfg.lr = 1e-3f;
    cfg.quiet = 1;
    sl_emumeta_distill rec;
    ck_assert_msg(sl_distill_run(p.full, p.emu, &p.meta, dir, &cfg, &rec, &err) == 0, "%s",
                  err.msg);
    ck_assert_int_eq(rec.present, 1);
    ck_assert_int_eq(rec.steps, 40);
    ck_assert_int_eq(strlen(rec.text_sha256), 64);
    /* The error at the last middle block's output drops by well over half:
     * the single kept middle block learns to stand in for two. */
    ck_assert_msg(rec.mse_after < 0.5 * rec.mse_before, "MSE %g -> %g", rec.mse_before,
                  rec.mse_after);
    /* only the middle block moved */
    for (int i = 0; i < p.emu->ntensors; i++) {
        sl_gpt2_tensor a, b;
        sl_gpt2_tensor_info(p.emu, i, &a);
        sl_gpt2_tensor_info(before, i, &b);
        int same = memcmp(a.data, b.data, sizeof(float) * a.numel) == 0;
        if (a.layer == 2 && a.ndim == 2)
            ck_assert_msg(!same, "%s did not train", a.name);
        else if (a.layer != 2)
            ck_assert_msg(same, "%s changed", a.name);
    }
    /* the work folder is gone after success */
    ck_assert(!sl_fs_exists(work));
    sl_gpt2_free(before);
    free_pair(&p);
}
END_TEST

typedef struct gctx {
    pair *p;
    sl_gpt2_ctx *c;
    int32_t *x;
    float kl;
} gctx;

static double loss_of(void *u)
{
    gctx *g = u;
    double l;
    sl_err err = {0};
    ck_assert_int_eq(sl_distill_batch_loss(g->p->full, g->p->emu, &g->p->meta, g->c, g->x, 2, 6,
                                           g->kl, 0, &l, &err), 0);
    return l;
}

/* Gradients of MSE + KL with respect to the middle block match central
 * differences (tolerance as tests/check_gpt2.c's whole-model checks;
 * observed <= 1.3e-4). 20 probes: a stride that is a multiple of the 3C
 * columns of c_attn would probe only query column 0, whose gradient is
 * tiny and all rounding noise. */
START_TEST(test_gradients)
{
    pair p;
    make_pair(&p, 6, 0.5);
    uint8_t *mask = calloc((size_t)p.emu->ntensors, 1);
    for (int k = 0; k < SL_T_PER_LAYER; k++)
        mask[SL_GPT2_LAYER0 + 2 * SL_T_PER_LAYER + k] = 1;
    sl_gpt2_ctx *c = NULL;
    sl_err err = {0};
    ck_assert_int_eq(sl_gpt2_ctx_create(&c, p.emu, NULL, mask, 2, 6, &err), 0);
    int32_t x[12];
    sl_test_rng r = {3};
    for (int i = 0; i < 12; i++)
        x[i] = (int32_t)(sl_test_rand(&r) % 300);
    /* a middle block far from the teacher's, so the MSE term is not tiny */
    sl_gpt2_tensor t;
    sl_gpt2_tensor_info(p.emu, SL_GPT2_LAYER0 + 2 * SL_T_PER_LAYER + SL_T_FC_W, &t);
    for (size_t j = 0; j < t.numel; j++)
        t.data[j] += 0.2f * sl_test_randf(&r);
    const float kls[] = {0.0f, 0.5f};
    for (int v = 0; v < 2; v++) {
        gctx g = {&p, c, x, kls[v]};
        double l;
        sl_gpt2_zero_grad(c);
        ck_assert_int_eq(sl_distill_batch_loss(p.full, p.emu, &p.meta, c, x, 2, 6, kls[v], 1, &l,
                                               &err), 0);
        const int kinds[] = {SL_T_ATTN_W, SL_T_FC_W, SL_T_LN2_W, SL_T_FCPROJ_B};
        for (int k = 0; k < 4; k++) {
            int i = SL_GPT2_LAYER0 + 2 * SL_T_PER_LAYER + kinds[k];
            sl_gpt2_tensor_info(p.emu, i, &t);
            float *gc = malloc(sizeof(float) * t.numel);
            memcpy(gc, sl_gpt2_grad(c, i), sizeof(float) * t.numel);
            double e = sl_gradcheck(t.data, t.numel, gc, loss_of, &g, 1e-2f, 20);
            ck_assert_msg(e < 2e-3, "%s (kl %g): relative error %g", t.name, (double)kls[v], e);
            free(gc);
        }
    }
    sl_gpt2_ctx_free(c);
    free(mask);
    free_pair(&p);
}
END_TEST

START_TEST(test_resume_exact)
{
    char text[400];
    const char *dir = make_corpus(text, sizeof text);
    pair a, b;
    make_pair(&a, 6, 0.5);
    make_pair(&b, 6, 0.5);
    sl_distill_cfg cfg;
    sl_distill_cfg_init(&cfg);
    cfg.text = text;
    char work[400];
    snprintf(work, sizeof work, "%s/work", dir);
    cfg.work = work;
    cfg.steps = 12;
    cfg.B = 2;
    cfg.T = 16;
    cfg.kl_weight = 0.1f;
    cfg.ckpt_every = 4;
    cfg.quiet = 1;
    sl_err err = {0};
    sl_emumeta_distill ra, rb;
    ck_assert_msg(sl_distill_run(a.full, a.emu, &a.meta, dir, &cfg, &ra, &err) == 0, "%s",
                  err.msg);
    cfg.stop_at = 6;
    ck_assert_int_eq(sl_distill_run(b.full, b.emu, &b.meta, dir, &cfg, &rb, &err), SL_EABORT);
    ck_assert_msg(strstr(err.msg, "--resume"), "%s", err.msg);
    /* a fresh process: the emulator as built, the checkpoint on disk */
    sl_gpt2_free(b.emu);
    ck_assert_int_eq(sl_emulator_build(&b.emu, b.full, b.meta.layer_map, b.meta.nblocks, &err), 0);
    cfg.stop_at = 0;
    cfg.resume = 1;
    ck_assert_msg(sl_distill_run(b.full, b.emu, &b.meta, dir, &cfg, &rb, &err) == 0, "%s",
                  err.msg);
    ck_assert_mem_eq(a.emu->params, b.emu->params, sizeof(float) * a.emu->nparams);
    ck_assert(ra.mse_before == rb.mse_before && ra.mse_after == rb.mse_after);
    free_pair(&a);
    free_pair(&b);
}
END_TEST

START_TEST(test_limits)
{
    /* 4 blocks, 2 + 2 adapter: no middle to distil */
    pair p;
    make_pair(&p, 4, 0.5);
    sl_distill_cfg cfg;
    sl_distill_cfg_init(&cfg);
    cfg.text = "/nonexistent";
    cfg.work = "/nonexistent";
    sl_err err = {0};
    ck_assert_int_eq(sl_distill_run(p.full, p.emu, &p.meta, "/nonexistent", &cfg, NULL, &err),
                     SL_EINVAL);
    ck_assert_msg(strstr(err.msg, "no middle block"), "%s", err.msg);
    free_pair(&p);
}
END_TEST

START_TEST(test_malformed)
{
    char text[400];
    const char *dir = make_corpus(text, sizeof text);
    pair p;
    make_pair(&p, 6, 0.5);
    sl_distill_cfg cfg;
    sl_distill_cfg_init(&cfg);
    char work[400];
    snprintf(work, sizeof work, "%s/work", dir);
    cfg.work = work;
    cfg.quiet = 1;
    sl_err err = {0};
    /* a text that does not exist is named */
    cfg.text = "/nonexistent/text.txt";
    ck_assert_int_ne(sl_distill_run(p.full, p.emu, &p.meta, dir, &cfg, NULL, &err), 0);
    ck_assert_msg(strstr(err.msg, "/nonexistent"), "%s", err.msg);
    /* a manifest that does not describe these models is refused */
    cfg.text = text;
    p.meta.full_layers = 7;
    ck_assert_int_eq(sl_distill_run(p.full, p.emu, &p.meta, dir, &cfg, NULL, &err), SL_EINVAL);
    p.meta.full_layers = 6;
    /* a corrupt checkpoint is refused on resume, the emulator untouched */
    cfg.steps = 8;
    cfg.B = 2;
    cfg.T = 16;
    cfg.stop_at = 2;
    ck_assert_int_eq(sl_distill_run(p.full, p.emu, &p.meta, dir, &cfg, NULL, &err), SL_EABORT);
    char f[500];
    snprintf(f, sizeof f, "%s/checkpoint", work);
    sl_test_write(f, "trainer_state.safetensors", "garbage", 7);
    float w = p.emu->layers[2].fc_w[0];
    cfg.stop_at = 0;
    cfg.resume = 1;
    ck_assert_int_ne(sl_distill_run(p.full, p.emu, &p.meta, dir, &cfg, NULL, &err), 0);
    ck_assert_msg(strstr(err.msg, "trainer_state"), "%s", err.msg);
    ck_assert(p.emu->layers[2].fc_w[0] == w);
    free_pair(&p);
}
END_TEST

Suite *distill_suite(void)
{
    Suite *s = suite_create("distill");
    TCase *core = tcase_create("core");
    tcase_add_test(core, test_lowers_error);
    tcase_add_test(core, test_gradients);
    tcase_add_test(core, test_resume_exact);
    suite_add_tcase(s, core);
    TCase *lim = tcase_create("limits");
    tcase_add_test(lim, test_limits);
    suite_add_tcase(s, lim);
    TCase *bad = tcase_create("malformed");
    tcase_add_test(bad, test_malformed);
    suite_add_tcase(s, bad);
    return s;
}
