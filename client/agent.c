#include "client/agent.h"

#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "crypto/auditlog.h"
#include "crypto/channel.h"
#include "crypto/dp.h"
#include "crypto/emupkg.h"
#include "crypto/fedmsg.h"
#include "crypto/identity.h"
#include "crypto/secagg_client.h"
#include "shared/cli.h"
#include "shared/dataset.h"
#include "shared/fsutil.h"
#include "shared/gpt2.h"
#include "shared/lora.h"
#include "shared/modeldir.h"
#include "shared/progress.h"
#include "shared/tokenizer.h"
#include "shared/train.h"

#define PMAX 1200

typedef struct agent {
    const sl_agent_opts *o;
    sl_chan_client_cfg cc;
    sl_chan_client *ch;
    uint8_t *sk; /* sodium_malloc'd */
    uint8_t pk[32];
    uint8_t *cert_der;
    size_t cert_len;
    sl_trust *trust;
    uint8_t server_pk[32];
    int joined;
    char state[PMAX], cache[PMAX], receipts[PMAX], logpath[PMAX];
    char files[SL_FEDMSG_MAX_FILES][SL_WIRE_MAX_NAME + 1];
    uint32_t nfiles;
    sl_gpt2 *model;
    sl_tokenizer *tok;
    sl_dataset *ds;
    /* the round in progress */
    uint64_t round;
    sl_secagg_client *sa;
    sl_dp_rng rng;
    void *x;          /* quantised update, dim_padded words */
    size_t x_bytes;
    int contributed;
    uint64_t refused_round; /* a round whose instructions this site refused */
    uint64_t receipt_round; /* latest round whose receipt is handled (POLL acks it) */
} agent;

static volatile sig_atomic_t g_stop;
static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void say(agent *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(agent *a, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s run [%s]: %s\n", sl_cli_prog(), a->cc.name, line);
}

/* The site's own log: JSON Lines, never sent anywhere. */
static void local_log(agent *a, json_t *j)
{
    json_object_set_new(j, "time", json_integer((json_int_t)time(NULL)));
    char *t = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(j);
    if (!t)
        return;
    FILE *f = fopen(a->logpath, "a");
    if (f) {
        fprintf(f, "%s\n", t);
        fclose(f);
    }
    free(t);
}

static void round_reset(agent *a)
{
    sl_secagg_client_free(a->sa);
    a->sa = NULL;
    if (a->x) {
        sodium_memzero(a->x, a->x_bytes);
        free(a->x);
    }
    a->x = NULL;
    a->x_bytes = 0;
    a->round = 0;
}

static int call(agent *a, uint16_t type, const void *p, size_t n, sl_chan_reply *r, sl_err *err)
{
    return sl_chan_client_call(a->ch, type, p, n, r, err);
}

/* ---- joining: server certificate and the model -------------------------- */

static int progress_cb(void *ctx, uint64_t done, uint64_t total)
{
    sl_progress *p = ctx;
    if (total)
        sl_progress_update(p, done, 0, NULL, done == total);
    return g_stop ? 1 : 0;
}

static int load_model(agent *a, sl_err *err)
{
    int rc = sl_modeldir_load(&a->model, a->cache, err);
    if (!rc)
        rc = sl_tokenizer_load(a->cache, &a->tok, err);
    if (rc)
        return rc;
    sl_dataset_opts dopt;
    sl_dataset_opts_init(&dopt);
    char cache[PMAX];
    if ((rc = sl_fs_join(cache, PMAX, a->state, "data.tokcache", err)))
        return rc;
    dopt.cache = cache;
    dopt.val_per_million = 0; /* every private document trains */
    double t = now_s();
    if ((rc = sl_dataset_open(a->o->data, a->tok, &dopt, &a->ds, err)))
        return rc;
    say(a, "private data %s: %llu tokens in %llu documents (%s, %.1f s); it stays here",
        a->o->data, (unsigned long long)sl_dataset_tokens(a->ds, SL_DATASET_TRAIN),
        (unsigned long long)sl_dataset_docs(a->ds, SL_DATASET_TRAIN),
        sl_dataset_built(a->ds) ? "tokenised" : "cached", now_s() - t);
    return 0;
}

/* Removes files of an earlier job from the model cache (a package must
 * hold exactly its listed files); partial downloads of listed files stay
 * so that they resume. */
static int prune_cache(agent *a, sl_err *err)
{
    DIR *d = opendir(a->cache);
    if (!d)
        return sl_err_errno(err, "%s: open folder", a->cache);
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d)) && !rc) {
        if (e->d_name[0] == '.')
            continue;
        int keep = 0;
        for (uint32_t i = 0; i < a->nfiles && !keep; i++) {
            size_t n = strlen(a->files[i]);
            keep = !strncmp(e->d_name, a->files[i], n) &&
                   (!e->d_name[n] || !strcmp(e->d_name + n, ".part") ||
                    !strcmp(e->d_name + n, ".part.info"));
        }
        char p[PMAX];
        if (!keep && !(rc = sl_fs_join(p, PMAX, a->cache, e->d_name, err)) && unlink(p) != 0)
            rc = sl_err_errno(err, "%s: remove", p);
    }
    closedir(d);
    return rc;
}

static int join(agent *a, sl_err *err)
{
    uint8_t *p;
    size_t n;
    int rc = sl_fed_join_encode(a->cert_der, a->cert_len, &p, &n, err);
    if (rc)
        return rc;
    sl_chan_reply r;
    rc = call(a, SL_WIRE_APP_FED_JOIN, p, n, &r, err);
    free(p);
    if (rc)
        return rc;
    sl_fed_join_ok j;
    sl_cert *c = NULL;
    sl_cert_info ci;
    if (r.type != SL_WIRE_APP_FED_JOIN_OK) {
        rc = sl_err_set(err, SL_EFORMAT, "join: unexpected answer 0x%04x", r.type);
    } else if (!(rc = sl_fed_join_ok_decode(r.payload, r.len, &j, err))) {
        /* The certificate that signs receipts must be the deployment's server. */
        if ((rc = sl_identity_cert_parse_der(j.cert, j.cert_len, &c, err)) ||
            (rc = sl_identity_verify(a->trust, c, SL_IDENTITY_ROLE_SERVER, 0, &ci, err)))
            sl_err_prefix(err, "the server's certificate is refused");
    }
    sl_identity_cert_free(c);
    if (rc) {
        sl_chan_reply_free(&r);
        return rc == SL_EIO ? SL_ECRYPTO : rc;
    }
    memcpy(a->server_pk, ci.pk, 32);
    int same = a->model && j.nfiles == a->nfiles;
    for (uint32_t i = 0; same && i < j.nfiles; i++)
        same = !strcmp(j.files[i], a->files[i]);
    a->nfiles = j.nfiles;
    memcpy(a->files, j.files, sizeof a->files);
    sl_chan_reply_free(&r);
    a->joined = 1;
    if (same)
        return 0;
    /* Download (resumable; BLAKE2b-256 checked against the server's). */
    if ((rc = sl_fs_mkdirs(a->cache, 0700, err)) || (rc = prune_cache(a, err)))
        return rc;
    for (uint32_t i = 0; i < a->nfiles; i++) {
        char dest[PMAX];
        if ((rc = sl_fs_join(dest, PMAX, a->cache, a->files[i], err)))
            return rc;
        /* Kept from an earlier start: the same bytes as the server's. */
        if ((rc = sl_chan_client_have(a->ch, a->files[i], dest, err)) < 0)
            return rc;
        if (rc == 1) {
            say(a, "%s already in the cache (digest verified)", a->files[i]);
            continue;
        }
        sl_progress pr;
        sl_progress_init(&pr, a->files[i], "B/s", 0, 0, a->o->quiet);
        double t = now_s();
        rc = sl_chan_client_fetch(a->ch, a->files[i], dest, progress_cb, &pr, err);
        sl_progress_end(&pr);
        if (rc)
            return rc;
        say(a, "fetched %s (digest verified) in %.1f s", a->files[i], now_s() - t);
    }
    int package = 0;
    for (uint32_t i = 0; i < a->nfiles; i++)
        package |= !strcmp(a->files[i], SL_EMUMETA_FILE);
    if (package) {
        /* An emulator package: signed by the server's key, every file as
         * listed, before a single byte of it is used. */
        sl_emumeta *meta = malloc(sizeof *meta);
        if (!meta)
            return sl_err_set(err, SL_ENOMEM, "out of memory");
        rc = sl_emupkg_verify(a->cache, a->server_pk, NULL, meta, err);
        if (!rc)
            say(a, "emulator package verified: %d of the full model's %d blocks, signed by the "
                "server", meta->nblocks, meta->full_layers);
        free(meta);
        if (rc) {
            sl_err_prefix(err, "emulator package refused");
            return SL_ECRYPTO;
        }
    }
    sl_gpt2_free(a->model);
    sl_tokenizer_free(a->tok);
    sl_dataset_close(a->ds);
    a->model = NULL;
    a->tok = NULL;
    a->ds = NULL;
    if ((rc = load_model(a, err)))
        return SL_EINVAL; /* a model or data that cannot be used is final */
    return 0;
}

/* ---- a round ---------------------------------------------------------- */

static int submit(agent *a, const uint8_t *msg, size_t len, sl_err *err)
{
    uint8_t *p;
    size_t n;
    int rc = sl_fed_submit_encode(a->round, msg, len, &p, &n, err);
    if (rc)
        return rc;
    sl_chan_reply r;
    rc = call(a, SL_WIRE_APP_FED_SUBMIT, p, n, &r, err);
    free(p);
    if (rc)
        return rc;
    if (r.type != SL_WIRE_APP_FED_ACK)
        rc = sl_err_set(err, SL_EFORMAT, "submit: unexpected answer 0x%04x", r.type);
    sl_chan_reply_free(&r);
    return rc;
}

static int dump_update(agent *a, sl_err *err)
{
    if (!a->o->dump)
        return 0;
    char name[128], p[PMAX];
    snprintf(name, sizeof name, "round-%llu-%s.x", (unsigned long long)a->round, a->cc.name);
    int rc = sl_fs_mkdirs(a->o->dump, 0755, err);
    if (!rc)
        rc = sl_fs_join(p, PMAX, a->o->dump, name, err);
    if (!rc)
        rc = sl_fs_write_atomic(p, a->x, a->x_bytes, 0644, err);
    return rc;
}

/* Local training on the private data and the protected update. Errors in
 * the server's instructions are refused (nothing is sent). */
static int on_train(agent *a, uint64_t round, const uint8_t *body, size_t len, sl_err *err)
{
    round_reset(a);
    sl_fed_train t;
    int rc = sl_fed_train_decode(body, len, &t, err);
    if (rc)
        return rc;
    sl_dp_plan plan;
    sl_lora *lora = NULL;
    sl_trainer *tr = NULL;
    float *delta = NULL;
    int layers[SL_FEDMSG_MAX_LAYERS];
    uint32_t me = 0;
    /* Every member's key comes from its certificate, checked against the
     * deployment CA here: the server cannot slip in a key of its own. */
    if ((rc = sl_fed_cohort_verify(&t, a->trust, err))) {
        sl_err_prefix(err, "round %llu", (unsigned long long)round);
        goto out;
    }
    for (uint32_t i = 0; i < t.n_sites; i++)
        if (sodium_memcmp(t.pks[i], a->pk, 32) == 0)
            me = t.ids[i];
    if (!me) {
        rc = sl_err_set(err, SL_EINVAL, "round %llu: this site's key is not in the cohort",
                        (unsigned long long)round);
        goto out;
    }
    /* The privacy parameters are checked here, not taken on trust. */
    if ((rc = sl_dp_plan_init(&plan, &t.dp, err)) ||
        (rc = sl_secagg_config_validate(&t.sa, err)) ||
        (rc = sl_secagg_config_check_dp(&t.sa, &plan, SL_DP_MAX_OVERFLOW_PROB, err)))
        goto out;
    if (t.dp.sigma <= 0) {
        rc = sl_err_set(err, SL_EINVAL, "round %llu: the server asks for no noise; refused",
                        (unsigned long long)round);
        goto out;
    }
    for (uint32_t i = 0; i < t.nlayers; i++)
        layers[i] = (int)t.layers[i];
    if ((rc = sl_lora_create(&lora, a->model, (int)t.rank, t.alpha, t.targets, layers,
                             (int)t.nlayers, 1, err)))
        goto out;
    if (lora->nparams != t.dim) {
        rc = sl_err_set(err, SL_EINVAL, "round %llu: adapter of %u floats, the model makes %zu",
                        (unsigned long long)round, t.dim, lora->nparams);
        goto out;
    }
    memcpy(lora->params, t.global, (size_t)t.dim * sizeof(float));
    sl_train_cfg tc;
    sl_train_cfg_init(&tc);
    tc.B = (int)t.batch;
    tc.T = (int)t.seq;
    tc.steps = t.steps;
    tc.warmup = 0;
    tc.lr = tc.lr_min = t.lr;
    tc.clip = 1;
    tc.seed = t.seed ^ ((uint64_t)randombytes_random() << 32 | randombytes_random());
    if ((rc = sl_train_cfg_validate(&tc, a->model->maxT, err)) ||
        (rc = sl_trainer_create(&tr, a->model, lora, NULL, &tc, err)))
        goto out;
    sl_progress pr;
    sl_progress_init(&pr, "train", "tok/s", t.steps, 0, a->o->quiet);
    double t0 = now_s(), first = NAN, last = NAN;
    for (uint32_t s = 0; s < t.steps && !g_stop; s++) {
        sl_train_stats st;
        if ((rc = sl_trainer_step(tr, a->ds, &st, err)))
            goto out;
        if (s == 0)
            first = st.loss;
        last = st.loss;
        char extra[64];
        snprintf(extra, sizeof extra, "loss %.4f", st.loss);
        sl_progress_update(&pr, s + 1, (double)t.batch * t.seq, extra, 0);
    }
    sl_progress_end(&pr);
    if (g_stop) {
        rc = sl_err_set(err, SL_EABORT, "stopped by a signal");
        goto out;
    }
    if (!(delta = malloc((size_t)t.dim * sizeof *delta))) {
        rc = sl_err_set(err, SL_ENOMEM, "out of memory");
        goto out;
    }
    for (uint32_t i = 0; i < t.dim; i++)
        delta[i] = lora->params[i] - t.global[i];
    a->x_bytes = (size_t)plan.dim_padded * (t.dp.bits / 8);
    if (!(a->x = malloc(a->x_bytes))) {
        rc = sl_err_set(err, SL_ENOMEM, "out of memory");
        goto out;
    }
    sl_dp_local_report rep;
    if ((rc = sl_dp_encode(&plan, delta, a->x, &a->rng, &rep, err)))
        goto out;
    a->round = round;
    if ((rc = sl_secagg_client_create(&a->sa, &t.sa, round, me, a->sk, t.ids,
                                      (const uint8_t(*)[32])t.pks, t.n_sites, &a->rng, err)))
        goto out;
    local_log(a, json_pack("{s:s,s:I,s:i,s:f,s:f,s:f,s:f,s:b,s:f}", "event", "trained", "round",
                           (json_int_t)round, "steps", (int)t.steps, "loss_first", first,
                           "loss_last", last, "pre_clip_norm", rep.pre_clip_norm, "clip",
                           t.dp.clip, "clipped", rep.pre_clip_norm > t.dp.clip, "seconds",
                           now_s() - t0));
    say(a, "round %llu: trained %u steps in %.1f s (loss %.4f -> %.4f); update clipped to %g, "
        "noised and quantised", (unsigned long long)round, t.steps, now_s() - t0, first, last,
        t.dp.clip);
    uint8_t *m;
    size_t ml;
    if ((rc = sl_secagg_client_advertise(a->sa, &m, &ml, err)))
        goto out;
    rc = submit(a, m, ml, err);
    free(m);
out:
    free(delta);
    sl_trainer_free(tr);
    sl_lora_free(lora);
    sl_fed_train_fini(&t);
    if (rc && rc != SL_EIO && rc != SL_ESTATE)
        round_reset(a);
    return rc;
}

static int on_step(agent *a, const sl_fed_task *t, sl_err *err)
{
    if (!a->sa || t->round != a->round)
        return sl_err_set(err, SL_ESTATE, "round %llu: no local state for it (this site is in "
                          "round %llu)", (unsigned long long)t->round,
                          (unsigned long long)a->round);
    uint8_t *m = NULL;
    size_t ml = 0;
    int rc;
    if (t->kind == SL_FED_TASK_KEYLIST)
        rc = sl_secagg_client_on_keylist(a->sa, t->body, t->len, &m, &ml, err);
    else if (t->kind == SL_FED_TASK_DELIVER) {
        rc = sl_secagg_client_on_deliver(a->sa, t->body, t->len, a->x, &m, &ml, err);
        if (!rc)
            rc = dump_update(a, err);
    } else
        rc = sl_secagg_client_on_unmask_request(a->sa, t->body, t->len, &m, &ml, err);
    if (!rc)
        rc = submit(a, m, ml, err);
    free(m);
    if (!rc && t->kind == SL_FED_TASK_DELIVER) {
        say(a, "round %llu: masked input sent", (unsigned long long)a->round);
        a->contributed = 1;
        if (a->o->stall_round == a->round) {
            say(a, "round %llu: stalling on purpose (--stall-after-masked)",
                (unsigned long long)a->round);
            while (!g_stop)
                pause();
        }
    }
    if (!rc && t->kind == SL_FED_TASK_UNMASK_REQ)
        say(a, "round %llu: unmasking answered", (unsigned long long)a->round);
    return rc;
}

static int on_receipt(agent *a, const sl_fed_task *t, sl_err *err)
{
    sl_receipt r;
    int rc = sl_auditlog_receipt_verify(t->body, t->len, a->server_pk, &r, err);
    if (!rc && strcmp(r.site, a->cc.name) != 0)
        rc = sl_err_set(err, SL_ECRYPTO, "receipt for site '%s', not this site", r.site);
    if (!rc)
        rc = sl_auditlog_receipt_store(a->receipts, t->body, t->len, a->server_pk, err);
    /* Handled either way: the next POLL acknowledges it, so a receipt this
     * site refuses (logged) does not come back forever. */
    if (t->round > a->receipt_round)
        a->receipt_round = t->round;
    if (rc)
        return sl_err_prefix(err, "round %llu: receipt refused", (unsigned long long)t->round);
    if ((uint64_t)r.round > a->receipt_round)
        a->receipt_round = (uint64_t)r.round;
    say(a, "round %lld: signed receipt stored", (long long)r.round);
    char hex[65];
    sl_auditlog_hex(r.input, 32, hex);
    local_log(a, json_pack("{s:s,s:I,s:s,s:I}", "event", "receipt", "round", (json_int_t)r.round,
                           "input", hex, "log_seq", (json_int_t)r.log_seq));
    return 0;
}

/* The latest round of the receipts kept in dir (0: none). */
static uint64_t last_receipt(const char *dir)
{
    uint64_t last = 0;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        unsigned long long r;
        char back[64];
        if (sscanf(e->d_name, "receipt-%llu.json", &r) != 1)
            continue;
        snprintf(back, sizeof back, "receipt-%06llu.json", r);
        if (strcmp(back, e->d_name) == 0 && r > last)
            last = r;
    }
    closedir(d);
    return last;
}

/* One POLL and what it asks for. *done set when the server says so. */
static int step(agent *a, int *done, sl_err *err)
{
    uint8_t *p;
    size_t n;
    int rc = sl_fed_poll_encode(a->round, a->receipt_round, &p, &n, err);
    if (rc)
        return rc;
    sl_chan_reply r;
    rc = call(a, SL_WIRE_APP_FED_POLL, p, n, &r, err);
    free(p);
    if (rc)
        return rc;
    if (r.type == SL_WIRE_APP_FED_WAIT) {
        uint32_t ms;
        if (!(rc = sl_fed_u32_decode(r.payload, r.len, &ms, err)))
            usleep((useconds_t)(ms > 5000 ? 5000 : ms) * 1000u);
    } else if (r.type == SL_WIRE_APP_FED_DONE) {
        char why[SL_WIRE_MAX_TEXT + 1];
        if (!(rc = sl_fed_text_decode(r.payload, r.len, why, err))) {
            say(a, "the server ended the job: %s", why);
            *done = 1;
        }
    } else if (r.type == SL_WIRE_APP_FED_TASK) {
        sl_fed_task t;
        sl_err e = {0};
        if (!(rc = sl_fed_task_decode(r.payload, r.len, &t, err))) {
            if (t.kind == SL_FED_TASK_TRAIN && t.round == a->refused_round)
                usleep(500000); /* refused already: wait for the next round */
            else if (t.kind == SL_FED_TASK_TRAIN)
                rc = on_train(a, t.round, t.body, t.len, &e);
            else if (t.kind == SL_FED_TASK_RECEIPT)
                rc = on_receipt(a, &t, &e);
            else
                rc = on_step(a, &t, &e);
            if (rc) {
                *err = e;
                if (rc == SL_EINVAL || rc == SL_ESTATE || rc == SL_ECRYPTO ||
                    rc == SL_EFORMAT || rc == SL_EABORT) {
                    /* A refused instruction or a refused submission: logged;
                     * the server goes on without this site. */
                    say(a, "round %llu: %s", (unsigned long long)t.round, e.msg);
                    if (t.kind == SL_FED_TASK_TRAIN)
                        a->refused_round = t.round;
                    local_log(a, json_pack("{s:s,s:I,s:s}", "event", "refused", "round",
                                           (json_int_t)t.round, "message", e.msg));
                    rc = 0;
                }
            }
        }
    } else {
        rc = sl_err_set(err, SL_EFORMAT, "unexpected answer 0x%04x", r.type);
    }
    sl_chan_reply_free(&r);
    return rc;
}

static int setup(agent *a, sl_err *err)
{
    const sl_agent_opts *o = a->o;
    char ini[PMAX];
    int rc = sl_fs_join(ini, PMAX, o->kit, "client.ini", err);
    if (rc || (rc = sl_chan_client_config_load(ini, &a->cc, err)))
        return rc;
    if (o->timeout_s)
        a->cc.timeout_ms = o->timeout_s * 1000;
    if (o->state)
        snprintf(a->state, PMAX, "%s", o->state);
    else if ((rc = sl_fs_join(a->state, PMAX, o->kit, "state", err)))
        return rc;
    if ((rc = sl_fs_join(a->cache, PMAX, a->state, "model", err)) ||
        (rc = sl_fs_join(a->receipts, PMAX, a->state, "receipts", err)) ||
        (rc = sl_fs_join(a->logpath, PMAX, a->state, "agent.jsonl", err)) ||
        (rc = sl_fs_mkdirs(a->state, 0700, err)) || (rc = sl_fs_mkdirs(a->receipts, 0700, err)))
        return rc;
    a->receipt_round = last_receipt(a->receipts);
    if (!sl_fs_exists(o->data))
        return sl_err_set(err, SL_ENOTFOUND, "%s: no such file or folder (--data)", o->data);
    sl_cert *c = NULL;
    sl_cert_info ci;
    rc = sl_identity_cert_read(a->cc.cert, &c, err);
    if (!rc)
        rc = sl_identity_cert_der(c, &a->cert_der, &a->cert_len, err);
    if (!rc)
        rc = sl_identity_cert_info(c, &ci, err);
    sl_identity_cert_free(c);
    if (rc)
        return rc;
    if (!(a->sk = sodium_malloc(SL_IDENTITY_SK_BYTES)))
        return sl_err_set(err, SL_ENOMEM, "out of locked memory");
    if ((rc = sl_identity_load_secret(a->cc.key, a->sk, err)))
        return rc;
    memcpy(a->pk, ci.pk, 32);
    if (sodium_memcmp(a->sk + 32, a->pk, 32) != 0)
        return sl_err_set(err, SL_ECRYPTO, "%s does not hold the key of %s", a->cc.key,
                          a->cc.cert);
    if ((rc = sl_identity_trust_load(a->cc.ca, a->cc.crl[0] ? a->cc.crl : NULL, &a->trust, err)))
        return rc;
    return sl_chan_client_create(&a->cc, &a->ch, err);
}

int sl_agent_run(const sl_agent_opts *o, sl_err *err)
{
    struct rlimit nocore = {0, 0};
    setrlimit(RLIMIT_CORE, &nocore);
    if (sodium_init() < 0)
        return sl_err_set(err, SL_ECRYPTO, "libsodium failed to initialise");
    agent a;
    memset(&a, 0, sizeof a);
    a.o = o;
    sl_dp_rng_init_system(&a.rng);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    int rc = setup(&a, err);
    if (rc)
        goto out;
    int max_backoff = o->max_backoff_s > 0 ? o->max_backoff_s : 30;
    int backoff = 1, done = 0;
    double last_ok = now_s();
    say(&a, "connecting to %s", a.cc.server);
    while (!g_stop && !done) {
        sl_err e = {0};
        rc = a.joined ? step(&a, &done, &e) : join(&a, &e);
        if (!rc) {
            if (backoff > 1)
                say(&a, "connected again");
            backoff = 1;
            last_ok = now_s();
            continue;
        }
        if (rc == SL_ECRYPTO || rc == SL_ENOTFOUND || (!a.joined && rc == SL_EINVAL) ||
            (!a.joined && rc == SL_EFORMAT)) {
            /* A server we must not trust, a kit it refuses, a model that
             * does not verify or cannot be used: final. */
            *err = e;
            goto out;
        }
        if (o->give_up_s && now_s() - last_ok > o->give_up_s) {
            rc = sl_err_set(err, SL_EIO, "no answer from %s for %d s: giving up (%s)",
                            a.cc.server, o->give_up_s, e.msg);
            goto out;
        }
        say(&a, "%s; retrying in %d s", e.msg, backoff);
        a.joined = 0;
        for (int i = 0; i < backoff * 10 && !g_stop; i++)
            usleep(100000);
        backoff = backoff * 2 > max_backoff ? max_backoff : backoff * 2;
    }
    rc = 0;
    if (done) {
        sl_err e = {0};
        sl_chan_client_close(a.ch, &e);
    }
out:
    round_reset(&a);
    sl_dp_rng_fini(&a.rng);
    sl_chan_client_free(a.ch);
    sl_identity_trust_free(a.trust);
    if (a.sk)
        sodium_free(a.sk);
    free(a.cert_der);
    sl_dataset_close(a.ds);
    sl_tokenizer_free(a.tok);
    sl_gpt2_free(a.model);
    return rc;
}
