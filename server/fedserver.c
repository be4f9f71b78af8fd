#include "server/fedserver.h"

#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "crypto/accountant.h"
#include "crypto/auditlog.h"
#include "crypto/channel.h"
#include "crypto/dp.h"
#include "crypto/dp_record.h"
#include "crypto/fedmsg.h"
#include "crypto/identity.h"
#include "crypto/secagg_msg.h"
#include "crypto/secagg_server.h"
#include "server/checkpoint.h"
#include "server/runcfg.h"
#include "shared/adapter.h"
#include "shared/cli.h"
#include "shared/dataset.h"
#include "shared/emulator.h"
#include "shared/emumeta.h"
#include "shared/fsutil.h"
#include "shared/gpt2.h"
#include "shared/lora.h"
#include "shared/modeldir.h"
#include "shared/tokenizer.h"
#include "shared/train.h"
#include "shared/sha256.h"

#define PMAX 1200
#define ONLINE_SECONDS 30.0 /* a site seen this recently counts as online */

enum { PH_IDLE = 0, PH_TRAIN, PH_SHARES, PH_MASKED, PH_UNMASK, PH_DONE };
static const char *const phase_name[] = {"idle", "train", "shares", "masked", "unmask", "done"};

typedef struct site {
    uint32_t id;           /* position in [run] sites + 1 */
    int joined;
    uint8_t pk[32];        /* Ed25519 key of its certificate */
    uint8_t *cert;         /* that certificate (DER, malloc'd): the cohort's
                            * members check each other's keys with it */
    size_t cert_len;
    double last_seen;
    int sampled;           /* in the current round's cohort */
    int step;              /* 0..4: what it has submitted this round */
    uint8_t input[32];     /* SHA-256 of its masked input message */
    uint64_t *outbox;      /* rounds of undelivered receipts, increasing; each
                            * is a file in STATE/outbox/SITE/ until the site
                            * acknowledges it */
    uint32_t noutbox, capoutbox;
    sl_chan_deferred held; /* its POLL kept unanswered (long polling) */
    int has_held;
    double held_until;
} site;

typedef struct srv {
    const sl_fedserver_opts *o;
    sl_runcfg *rc;
    sl_chan_server_cfg cc;
    sl_chan_server *ch;
    sl_trust *trust;
    uint8_t *sk; /* sodium_malloc'd Ed25519 secret key */
    uint8_t pk[32];
    uint8_t *cert_der;
    size_t cert_len;
    sl_auditlog *log;
    site *sites;
    uint32_t nsites;
    char files[SL_FEDMSG_MAX_FILES][SL_WIRE_MAX_NAME + 1];
    uint32_t nfiles;
    sl_gpt2 *model;
    sl_lora *lora; /* the global adapter */
    int layers[SL_FEDMSG_MAX_LAYERS], nlayers; /* adapter blocks of the full model */
    int emu_layers[SL_FEDMSG_MAX_LAYERS];      /* the same blocks as the sites' model numbers them */
    sl_emumeta *meta;                          /* the emulator package's manifest, or NULL */
    sl_tokenizer *tok;
    sl_dataset *eval;
    sl_gpt2_ctx *eval_ctx;
    sl_ckpt ck;
    char ck_path[PMAX];
    /* the current round */
    int phase;
    uint64_t round;
    double t_round, t_phase, deadline;
    uint32_t sampled;
    sl_secagg_config sa;
    sl_dp_params dpp;
    sl_dp_plan plan;
    sl_secagg_server *agg;
    uint8_t *train_msg, *keylist, *unmask_req;
    size_t train_len, keylist_len, unmask_len;
    double last_loss;  /* server validation NLL after the last round (NAN: none) */
    double base_loss;
    uint32_t released, aborted, skipped;
    double eps;
    char stop_reason[256];
    const sl_chan_deferred *to; /* the held POLL being answered; NULL: the current request */
} srv;

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

/* One operator line on stderr: plain, or a JSON object with --json. */
static void say(srv *s, const char *event, json_t *fields, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void say(srv *s, const char *event, json_t *fields, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (s->o->json) {
        json_t *j = fields ? fields : json_object();
        json_object_set_new(j, "event", json_string(event));
        json_object_set_new(j, "message", json_string(line));
        if (s->round)
            json_object_set_new(j, "round", json_integer((json_int_t)s->round));
        char *t = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
        if (t)
            fprintf(stderr, "%s\n", t);
        free(t);
        json_decref(j);
    } else {
        fprintf(stderr, "%s run: %s\n", sl_cli_prog(), line);
        json_decref(fields);
    }
}

static void chan_log(void *ctx, sl_chan_log_level level, const char *line)
{
    srv *s = ctx;
    if (s->o->json) {
        json_t *j = json_pack("{s:s,s:s,s:s}", "event", "channel", "level",
                              level == SL_CHAN_LOG_WARN ? "warn" : "info", "message", line);
        char *t = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        if (t)
            fprintf(stderr, "%s\n", t);
        free(t);
        json_decref(j);
    } else {
        fprintf(stderr, "%s run: channel: %s\n", sl_cli_prog(), line);
    }
}

static int path_in(srv *s, char *out, const char *name, sl_err *err)
{
    return sl_fs_join(out, PMAX, s->o->state, name, err);
}

/* ---- receipts: STATE/outbox/SITE/receipt-NNNNNN.json until acknowledged -- */

static int outbox_dir(srv *s, const site *x, char *out, sl_err *err)
{
    char sub[PMAX];
    int rc = sl_fs_join(sub, PMAX, s->o->state, "outbox", err);
    return rc ? rc : sl_fs_join(out, PMAX, sub, s->rc->sites[x->id - 1], err);
}

static int outbox_file(srv *s, const site *x, uint64_t round, char *out, sl_err *err)
{
    char dir[PMAX], name[64];
    snprintf(name, sizeof name, "receipt-%06llu.json", (unsigned long long)round);
    int rc = outbox_dir(s, x, dir, err);
    return rc ? rc : sl_fs_join(out, PMAX, dir, name, err);
}

static int outbox_append(site *x, uint64_t round, sl_err *err)
{
    if (x->noutbox == x->capoutbox) {
        uint32_t nc = x->capoutbox ? 2 * x->capoutbox : 8;
        uint64_t *v = realloc(x->outbox, nc * sizeof *v);
        if (!v)
            return sl_err_set(err, SL_ENOMEM, "out of memory");
        x->outbox = v;
        x->capoutbox = nc;
    }
    x->outbox[x->noutbox++] = round;
    return 0;
}

/* Queues the receipt of a round just closed (rounds only increase). */
static int outbox_push(site *x, uint64_t round, sl_err *err)
{
    if (x->noutbox && x->outbox[x->noutbox - 1] >= round)
        return 0;
    return outbox_append(x, round, err);
}

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* The receipts a previous run made and the sites did not acknowledge. */
static int outbox_load(srv *s, sl_err *err)
{
    for (uint32_t i = 0; i < s->nsites; i++) {
        site *x = &s->sites[i];
        char dir[PMAX];
        int rc = outbox_dir(s, x, dir, err);
        if (rc)
            return rc;
        DIR *d = opendir(dir);
        if (!d) {
            if (errno == ENOENT)
                continue;
            return sl_err_errno(err, "%s: open folder", dir);
        }
        struct dirent *e;
        while ((e = readdir(d))) {
            unsigned long long r;
            char back[64];
            if (sscanf(e->d_name, "receipt-%llu.json", &r) != 1 || r == 0)
                continue;
            snprintf(back, sizeof back, "receipt-%06llu.json", r);
            if (strcmp(back, e->d_name) != 0)
                continue; /* not a name we write (e.g. a temporary file) */
            if ((rc = outbox_append(x, r, err))) {
                closedir(d);
                return rc;
            }
        }
        closedir(d);
        if (x->noutbox > 1)
            qsort(x->outbox, x->noutbox, sizeof *x->outbox, u64_cmp);
        if (x->noutbox)
            say(s, "receipts", NULL, "site %s: %u receipt%s not yet acknowledged (rounds %llu..%llu)",
                s->rc->sites[i], x->noutbox, x->noutbox == 1 ? "" : "s",
                (unsigned long long)x->outbox[0],
                (unsigned long long)x->outbox[x->noutbox - 1]);
    }
    return 0;
}

/* The site holds every receipt up to `upto`: their files go. */
static void outbox_ack(srv *s, site *x, uint64_t upto)
{
    uint32_t k = 0;
    while (k < x->noutbox && x->outbox[k] <= upto) {
        char p[PMAX];
        sl_err e = {0};
        if (!outbox_file(s, x, x->outbox[k], p, &e) && unlink(p) != 0 && errno != ENOENT)
            say(s, "warning", NULL, "%s: remove: %s", p, strerror(errno));
        k++;
    }
    if (k) {
        memmove(x->outbox, x->outbox + k, (x->noutbox - k) * sizeof *x->outbox);
        x->noutbox -= k;
    }
}

/* status.json for `sealora-server status` (atomic; failures only logged). */
static void write_status(srv *s)
{
    uint32_t online = 0;
    double t = now_s();
    json_t *sites = json_array();
    for (uint32_t i = 0; i < s->nsites; i++) {
        int on = s->sites[i].joined && t - s->sites[i].last_seen < ONLINE_SECONDS;
        online += (uint32_t)on;
        json_array_append_new(sites, json_pack("{s:s,s:b,s:b,s:i}", "site", s->rc->sites[i],
                                               "online", on, "sampled", s->sites[i].sampled,
                                               "step", s->sites[i].step));
    }
    json_t *j = json_pack("{s:i,s:s,s:I,s:I,s:I,s:I,s:I,s:f,s:f,s:f,s:i,s:i,s:o}",
                          "pid", (int)getpid(), "phase", phase_name[s->phase],
                          "round", (json_int_t)s->round, "last_completed",
                          (json_int_t)s->ck.round, "rounds", (json_int_t)s->rc->rounds,
                          "released", (json_int_t)s->released, "aborted",
                          (json_int_t)s->aborted, "epsilon", s->eps, "epsilon_budget",
                          s->rc->epsilon, "delta", s->rc->delta, "online", (int)online,
                          "sampled", (int)s->sampled, "sites", sites);
    if (!j)
        return;
    if (isfinite(s->last_loss))
        json_object_set_new(j, "eval_loss", json_real(s->last_loss));
    json_object_set_new(j, "time", json_integer((json_int_t)time(NULL)));
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(j);
    char p[PMAX];
    sl_err e = {0};
    if (text && !path_in(s, p, SL_FEDSERVER_STATUS, &e))
        sl_fs_write_atomic(p, text, strlen(text), 0644, &e);
    free(text);
}

/* ---- the model the sites tune ----------------------------------------- */

/* Offers the model the sites tune for chunked download: the signed
 * emulator package (every listed file, the manifest and its signature; the
 * sites verify it against the server's key before use), or, without one,
 * the full model directory. */
static int offer(srv *s, const char *dir, const char *name, sl_err *err)
{
    char p[PMAX];
    int rc = sl_fs_join(p, PMAX, dir, name, err);
    if (rc)
        return rc;
    if (s->nfiles == SL_FEDMSG_MAX_FILES)
        return sl_err_set(err, SL_ELIMIT, "%s: more than %u files to serve", dir,
                          SL_FEDMSG_MAX_FILES);
    if ((rc = sl_chan_server_add_file(s->ch, name, p, err)))
        return rc;
    snprintf(s->files[s->nfiles++], sizeof s->files[0], "%s", name);
    return 0;
}

static int serve_model(srv *s, sl_err *err)
{
    int rc;
    if (s->meta) {
        for (int i = 0; i < s->meta->nfiles; i++)
            if ((rc = offer(s, s->rc->emulator, s->meta->files[i].name, err)))
                return rc;
        if ((rc = offer(s, s->rc->emulator, SL_EMUMETA_FILE, err)) ||
            (rc = offer(s, s->rc->emulator, SL_EMUMETA_SIG_FILE, err)))
            return rc;
        return 0;
    }
    static const char *const names[] = {"config.json", "model.safetensors", "tokenizer.json",
                                         "vocab.json", "merges.txt"};
    int have_tok_json = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char p[PMAX];
        if ((rc = sl_fs_join(p, PMAX, s->rc->model, names[i], err)))
            return rc;
        if (!sl_fs_exists(p)) {
            if (i < 2)
                return sl_err_set(err, SL_ENOTFOUND, "%s: missing (the model to serve)", p);
            continue;
        }
        if (i == 2)
            have_tok_json = 1;
        if (i > 2 && have_tok_json)
            continue;
        if ((rc = offer(s, s->rc->model, names[i], err)))
            return rc;
    }
    if (s->nfiles < 3)
        return sl_err_set(err, SL_ENOTFOUND, "%s: no tokenizer (tokenizer.json or vocab.json + "
                          "merges.txt)", s->rc->model);
    return 0;
}

/* The emulator package's manifest, checked against the full model: built
 * from these very weights, and a layer map that fits both models. */
static int load_emulator(srv *s, sl_err *err)
{
    if (!(s->meta = calloc(1, sizeof *s->meta)))
        return sl_err_set(err, SL_ENOMEM, "out of memory");
    int rc = sl_emumeta_read(s->rc->emulator, s->meta, err);
    if (rc)
        return rc;
    char w[PMAX], hex[65];
    uint8_t d[32];
    if ((rc = sl_fs_join(w, PMAX, s->rc->model, SL_MODELDIR_WEIGHTS, err)) ||
        (rc = sl_fs_sha256(w, d, hex, err)))
        return rc;
    if (strcmp(hex, s->meta->base_sha256) != 0)
        return sl_err_set(err, SL_EINVAL, "%s was built from a model with weights %.16s..., "
                          "not %s (%.16s...)", s->rc->emulator, s->meta->base_sha256, w, hex);
    sl_gpt2 *emu = NULL;
    if ((rc = sl_modeldir_load(&emu, s->rc->emulator, err)))
        return rc;
    rc = sl_emulator_check(s->meta, emu, s->model, err);
    sl_gpt2_free(emu);
    if (rc)
        return rc;
    int n = 0;
    sl_emulator_adapter_blocks(s->meta, s->emu_layers, &n);
    s->nlayers = n;
    for (int i = 0; i < n; i++)
        s->layers[i] = s->meta->layer_map[s->emu_layers[i]];
    return 0;
}

static int load_model(srv *s, sl_err *err)
{
    int rc = sl_modeldir_load(&s->model, s->rc->model, err);
    if (rc)
        return rc;
    int L = s->model->L, a = (int)s->rc->adapter_blocks;
    s->nlayers = 0;
    if (s->rc->emulator[0]) {
        if ((rc = load_emulator(s, err)))
            return rc;
    } else {
        for (int l = 0; l < L; l++)
            if (l < a || l >= L - a) {
                s->emu_layers[s->nlayers] = l;
                s->layers[s->nlayers++] = l;
            }
    }
    if ((rc = sl_lora_create(&s->lora, s->model, (int)s->rc->lora_rank, (float)s->rc->lora_alpha,
                             s->rc->lora_targets, s->layers, s->nlayers, s->rc->seed, err)))
        return rc;
    if (s->lora->nparams > SL_FEDMSG_MAX_DIM)
        return sl_err_set(err, SL_ELIMIT, "adapter of %zu floats exceeds %u (lower lora_rank)",
                          s->lora->nparams, SL_FEDMSG_MAX_DIM);
    if (s->rc->seq > (uint32_t)s->model->maxT)
        return sl_err_set(err, SL_EINVAL, "[run] seq %u exceeds the model's context %d",
                          s->rc->seq, s->model->maxT);
    if (s->rc->eval_data[0]) {
        if ((rc = sl_tokenizer_load(s->rc->model, &s->tok, err)))
            return rc;
        sl_dataset_opts dopt;
        sl_dataset_opts_init(&dopt);
        char cache[PMAX];
        if ((rc = path_in(s, cache, "eval.tokcache", err)))
            return rc;
        dopt.cache = cache;
        dopt.val_per_million = 1000000; /* all of it is validation text */
        if ((rc = sl_dataset_open(s->rc->eval_data, s->tok, &dopt, &s->eval, err)))
            return rc;
        int T = (int)s->rc->seq;
        if ((rc = sl_gpt2_ctx_create(&s->eval_ctx, s->model, s->lora, NULL, 4, T, err)))
            return rc;
    }
    return 0;
}

static double evaluate(srv *s)
{
    if (!s->eval_ctx)
        return NAN;
    sl_eval_result r;
    sl_err e = {0};
    if (sl_eval_split(s->eval_ctx, 4, (int)s->rc->seq, s->eval, SL_DATASET_VAL,
                      s->rc->eval_tokens, &r, &e)) {
        say(s, "warning", NULL, "evaluation failed: %s", e.msg);
        return NAN;
    }
    return r.nll;
}

/* ---- rounds ------------------------------------------------------------ */

static void round_reset(srv *s)
{
    sl_secagg_server_free(s->agg);
    s->agg = NULL;
    free(s->train_msg);
    free(s->keylist);
    free(s->unmask_req);
    s->train_msg = s->keylist = s->unmask_req = NULL;
    s->train_len = s->keylist_len = s->unmask_len = 0;
    for (uint32_t i = 0; i < s->nsites; i++) {
        s->sites[i].sampled = 0;
        s->sites[i].step = 0;
    }
    s->sampled = 0;
    s->phase = PH_IDLE;
}

static int audit_event(srv *s, const char *type, json_t *fields, int sign, sl_err *err)
{
    if (s->round && !json_object_get(fields, "round"))
        json_object_set_new(fields, "round", json_integer((json_int_t)s->round));
    int rc = sign ? sl_auditlog_append_signed(s->log, type, fields, NULL, err)
                  : sl_auditlog_append(s->log, type, fields, NULL, err);
    json_decref(fields);
    return rc;
}

/* The mechanism a round with the current plan releases at worst: the
 * fewest survivors a released round can have (the threshold). */
static int worst_mech(srv *s, uint32_t sampled, sl_acct_mech *m, sl_dp_round_record *rec,
                      sl_err *err)
{
    sl_dp_record_fill(rec, &s->plan, s->round, s->rc->sample_rate, sampled, s->sa.threshold,
                      s->sa.threshold);
    return sl_auditlog_mech_from_dp(rec, m, err);
}

static void closing(srv *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void closing(srv *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->stop_reason, sizeof s->stop_reason, fmt, ap);
    va_end(ap);
    s->phase = PH_DONE;
}

/* Samples the cohort, checks the budget, records the round as pending and
 * prepares the instructions. Returns an error only for failures that must
 * stop the server (log, checkpoint). */
static int round_start(srv *s, sl_err *err)
{
    int rc;
    round_reset(s);
    s->round = s->ck.next_round;
    s->t_round = now_s();
    /* Poisson sampling of the enrolled sites that are online. */
    double t = now_s();
    uint32_t online = 0;
    json_t *names = json_array();
    for (uint32_t i = 0; i < s->nsites; i++) {
        site *x = &s->sites[i];
        if (!x->joined || t - x->last_seen > ONLINE_SECONDS)
            continue;
        online++;
        uint64_t r = ((uint64_t)randombytes_random() << 21) ^ randombytes_random();
        double u = (double)(r & ((1ull << 53) - 1)) / (double)(1ull << 53);
        if (u < s->rc->sample_rate) {
            x->sampled = 1;
            s->sampled++;
            json_array_append_new(names, json_string(s->rc->sites[i]));
        }
    }
    s->ck.next_round = s->round + 1;
    if ((rc = audit_event(s, "round_start", json_object(), 0, err)) ||
        (rc = audit_event(s, "sampled",
                          json_pack("{s:f,s:i,s:i,s:o}", "q", s->rc->sample_rate, "online",
                                    (int)online, "enrolled", (int)s->nsites, "sites", names),
                          0, err)))
        return rc;
    if (s->sampled < s->rc->min_sites) {
        s->skipped++;
        say(s, "skipped", NULL, "round %llu: sampled %u of %u online sites (q=%g), fewer than "
            "min_sites %u: skipped, nothing released", (unsigned long long)s->round, s->sampled,
            online, s->rc->sample_rate, s->rc->min_sites);
        if ((rc = sl_auditlog_close_round(s->log, (int64_t)s->round, 0, NULL, 0, s->eps, NULL,
                                          NULL, err)) ||
            (rc = sl_ckpt_save(s->ck_path, &s->ck, err)))
            return rc;
        round_reset(s);
        return 0;
    }
    /* Secure aggregation and DP plans for this cohort. */
    memset(&s->dpp, 0, sizeof s->dpp);
    uint32_t dim = (uint32_t)s->lora->nparams, block;
    uint32_t words = sl_dp_layout(dim, &block); /* the DP plan's padded length */
    if ((rc = sl_secagg_config_default(&s->sa, s->sampled, words, s->rc->dropout, 32, err)))
        goto refuse;
    s->dpp.dim = dim;
    s->dpp.clip = s->rc->clip;
    s->dpp.sigma = s->rc->noise_multiplier;
    s->dpp.threshold = s->sa.threshold;
    s->dpp.beta = SL_DP_DEFAULT_BETA;
    s->dpp.mode = s->rc->central ? SL_DP_CENTRAL : SL_DP_DISTRIBUTED;
    s->dpp.bits = 32;
    randombytes_buf(s->dpp.rotation_seed, sizeof s->dpp.rotation_seed);
    if ((rc = sl_dp_choose_scale(&s->dpp, s->sampled, SL_DP_MAX_OVERFLOW_PROB, &s->dpp.scale,
                                 err)) ||
        (rc = sl_dp_plan_init(&s->plan, &s->dpp, err)) ||
        (rc = sl_secagg_config_check_dp(&s->sa, &s->plan, SL_DP_MAX_OVERFLOW_PROB, err)))
        goto refuse;
    /* Budget: refuse a round whose worst case would overspend. */
    sl_acct_mech m;
    sl_acct_eps after;
    sl_dp_round_record worst;
    if ((rc = worst_mech(s, s->sampled, &m, &worst, err)) ||
        (rc = sl_acct_preview(&s->ck.acct, &m, s->rc->delta, &after, err)))
        goto refuse;
    if (after.epsilon > s->rc->epsilon) {
        char why[256];
        snprintf(why, sizeof why,
                 "privacy budget: round %llu would bring epsilon to %.4g, above the budget of "
                 "%.4g at delta %g (spent so far %.4g); stopping before overspending",
                 (unsigned long long)s->round, after.epsilon, s->rc->epsilon, s->rc->delta,
                 s->eps);
        say(s, "budget", NULL, "%s", why);
        if ((rc = audit_event(s, "refusal",
                              json_pack("{s:s,s:f,s:f,s:f}", "reason", "budget",
                                        "epsilon_after", after.epsilon, "epsilon_budget",
                                        s->rc->epsilon, "epsilon_spent", s->eps),
                              1, err)) ||
            (rc = sl_auditlog_close_round(s->log, (int64_t)s->round, 0, NULL, 0, s->eps, NULL,
                                          NULL, err)))
            return rc;
        round_reset(s);
        closing(s, "%s", why);
        return sl_ckpt_save(s->ck_path, &s->ck, err);
    }
    /* Pending: a crash from here on charges this round. The planned worst
     * case goes to the log first, so an auditor can recompute the charge;
     * nothing of the round leaves the server before the checkpoint. */
    if ((rc = sl_auditlog_mechanism_planned(s->log, &worst, err)))
        return rc;
    s->ck.pending_round = s->round;
    s->ck.pending = m;
    if ((rc = sl_ckpt_save(s->ck_path, &s->ck, err)))
        return rc;
    /* Instructions. */
    uint32_t *ids = malloc(s->sampled * sizeof *ids), *cert_lens = malloc(s->sampled * 4);
    uint8_t(*pks)[32] = malloc(s->sampled * sizeof *pks);
    const uint8_t **certs = malloc(s->sampled * sizeof *certs);
    if (!ids || !pks || !certs || !cert_lens) {
        free(ids);
        free(pks);
        free(certs);
        free(cert_lens);
        return sl_err_set(err, SL_ENOMEM, "out of memory");
    }
    uint32_t k = 0;
    for (uint32_t i = 0; i < s->nsites; i++)
        if (s->sites[i].sampled) {
            ids[k] = s->sites[i].id;
            memcpy(pks[k], s->sites[i].pk, 32);
            certs[k] = s->sites[i].cert;
            cert_lens[k] = (uint32_t)s->sites[i].cert_len;
            k++;
        }
    sl_fed_train tr;
    memset(&tr, 0, sizeof tr);
    tr.rank = s->rc->lora_rank;
    tr.alpha = (float)s->rc->lora_alpha;
    tr.targets = s->rc->lora_targets;
    tr.nlayers = (uint32_t)s->nlayers;
    for (int i = 0; i < s->nlayers; i++)
        tr.layers[i] = (uint32_t)s->emu_layers[i];
    tr.steps = s->rc->local_steps;
    tr.batch = s->rc->batch;
    tr.seq = s->rc->seq;
    tr.lr = (float)s->rc->lr;
    tr.seed = s->round;
    tr.dp = s->dpp;
    tr.sa = s->sa;
    tr.n_sites = s->sampled;
    tr.ids = ids;
    tr.certs = certs;
    tr.cert_lens = cert_lens;
    tr.dim = dim;
    tr.global = s->lora->params;
    rc = sl_fed_train_encode(s->round, &tr, &s->train_msg, &s->train_len, err);
    if (!rc)
        rc = sl_secagg_server_create(&s->agg, &s->sa, s->round, ids, (const uint8_t(*)[32])pks,
                                     s->sampled, err);
    free(ids);
    free(pks);
    free(certs);
    free(cert_lens);
    if (rc)
        return rc;
    s->phase = PH_TRAIN;
    s->t_phase = now_s();
    s->deadline = s->t_phase + s->rc->train_timeout;
    say(s, "round", NULL, "round %llu: sampled %u of %u online sites (q=%g); threshold %u; "
        "phase train (deadline %us)", (unsigned long long)s->round, s->sampled, online,
        s->rc->sample_rate, s->sa.threshold, s->rc->train_timeout);
    write_status(s);
    return 0;
refuse:
    /* A configuration this cohort cannot satisfy: nothing was sent. */
    say(s, "skipped", NULL, "round %llu: %s; skipped", (unsigned long long)s->round, err->msg);
    s->skipped++;
    sl_err e2 = {0};
    if (audit_event(s, "refusal", json_pack("{s:s,s:s}", "reason", "config", "message", err->msg),
                    1, &e2) ||
        sl_auditlog_close_round(s->log, (int64_t)s->round, 0, NULL, 0, s->eps, NULL, NULL, &e2) ||
        sl_ckpt_save(s->ck_path, &s->ck, &e2)) {
        *err = e2;
        return e2.code ? e2.code : SL_EIO;
    }
    round_reset(s);
    return 0;
}

/* An aborted round releases nothing and costs nothing (docs/audit.md). */
static int round_abort(srv *s, const char *why, sl_err *err)
{
    say(s, "aborted", NULL, "round %llu aborted in phase %s: %s", (unsigned long long)s->round,
        phase_name[s->phase], why);
    s->aborted++;
    int rc = audit_event(s, "phase", json_pack("{s:s,s:s}", "phase", "abort", "reason", why), 0,
                         err);
    if (!rc)
        rc = sl_auditlog_close_round(s->log, (int64_t)s->round, 0, NULL, 0, s->eps, NULL, NULL,
                                     err);
    s->ck.pending_round = 0;
    memset(&s->ck.pending, 0, sizeof s->ck.pending);
    if (!rc)
        rc = sl_ckpt_save(s->ck_path, &s->ck, err);
    round_reset(s);
    write_status(s);
    return rc;
}

static void server_update(srv *s, const float *sum, uint32_t n)
{
    float *g = s->lora->params;
    uint32_t dim = (uint32_t)s->lora->nparams;
    double lr = s->rc->server_lr;
    if (!s->rc->fedadam) {
        for (uint32_t i = 0; i < dim; i++)
            g[i] += (float)(lr * sum[i] / n);
    } else {
        /* FedAdam (Reddi et al. 2021): the averaged delta as a pseudo-gradient. */
        const double b1 = 0.9, b2 = 0.99, tau = 1e-3;
        s->ck.adam_t++;
        for (uint32_t i = 0; i < dim; i++) {
            double d = sum[i] / n;
            s->ck.m[i] = (float)(b1 * s->ck.m[i] + (1 - b1) * d);
            s->ck.v[i] = (float)(b2 * s->ck.v[i] + (1 - b2) * d * d);
            g[i] += (float)(lr * s->ck.m[i] / (sqrt(s->ck.v[i]) + tau));
        }
    }
    memcpy(s->ck.global, g, (size_t)dim * sizeof *g);
}

static int dump_sum(srv *s, const void *sum, sl_err *err)
{
    if (!s->o->dump)
        return 0;
    char name[64], p[PMAX];
    snprintf(name, sizeof name, "round-%llu.sum", (unsigned long long)s->round);
    int rc = sl_fs_mkdirs(s->o->dump, 0755, err);
    if (!rc)
        rc = sl_fs_join(p, PMAX, s->o->dump, name, err);
    if (!rc)
        rc = sl_fs_write_atomic(p, sum, (size_t)s->sa.dim * 4, 0644, err);
    return rc;
}

static int round_finish(srv *s, sl_err *err)
{
    int rc;
    double t0 = now_s();
    uint32_t words = s->sa.dim, dim = (uint32_t)s->lora->nparams;
    uint32_t *sum = malloc((size_t)words * 4);
    float *out = malloc((size_t)dim * sizeof *out);
    uint32_t *contrib = malloc(s->sampled * sizeof *contrib);
    sl_auditlog_contrib *ac = calloc(s->sampled, sizeof *ac);
    if (!sum || !out || !contrib || !ac) {
        rc = sl_err_set(err, SL_ENOMEM, "out of memory for the sum");
        goto out;
    }
    sl_err e = {0};
    if ((rc = sl_secagg_server_finish(s->agg, sum, &e))) {
        rc = round_abort(s, e.msg, err);
        goto out;
    }
    if (s->plan.central_noise) {
        sl_dp_rng nr;
        sl_dp_rng_init_system(&nr);
        rc = sl_dp_add_central_noise(&s->plan, sum, &nr, err);
        sl_dp_rng_fini(&nr);
        if (rc)
            goto out;
    }
    if ((rc = dump_sum(s, sum, err)) || (rc = sl_dp_decode(&s->plan, sum, out, err)))
        goto out;
    uint32_t nc = sl_secagg_server_contributors(s->agg, contrib, s->sampled);
    sl_secagg_server_stats st;
    sl_secagg_server_get_stats(s->agg, &st);
    for (uint32_t j = 0; j < nc; j++) {
        site *x = &s->sites[contrib[j] - 1];
        ac[j].site = s->rc->sites[contrib[j] - 1];
        memcpy(ac[j].input, x->input, 32);
    }
    /* Budget first: the mechanism and the signed close are on disk before
     * the result changes anything. */
    sl_dp_round_record rec;
    sl_dp_record_fill(&rec, &s->plan, s->round, s->rc->sample_rate, s->sampled, nc, st.unmasked);
    sl_acct_mech m;
    sl_acct acct = s->ck.acct;
    sl_acct_eps eps;
    if ((rc = sl_auditlog_mechanism(s->log, &rec, err)) ||
        (rc = sl_auditlog_mech_from_dp(&rec, &m, err)) ||
        (rc = sl_acct_add_mech(&acct, &m, err)) ||
        (rc = sl_acct_epsilon(&acct, s->rc->delta, &eps, err)))
        goto out;
    json_t *extra = json_pack("{s:i,s:i,s:i}", "sampled", (int)s->sampled, "survivors",
                              (int)st.unmasked, "dropped", (int)(s->sampled - nc));
    rc = sl_auditlog_close_round(s->log, (int64_t)s->round, 1, ac, nc, eps.epsilon, extra, NULL,
                                 err);
    json_decref(extra);
    if (rc)
        goto out;
    /* Receipts go to disk before anything else changes: a restart delivers
     * them all the same. */
    for (uint32_t j = 0; j < nc; j++) {
        site *x = &s->sites[contrib[j] - 1];
        char *text = NULL, dir[PMAX];
        size_t tl = 0;
        if ((rc = sl_auditlog_receipt(s->log, ac[j].site, &text, &tl, err)) ||
            (rc = outbox_dir(s, x, dir, err)) ||
            (rc = sl_auditlog_receipt_store(dir, (const uint8_t *)text, tl, s->pk, err)) ||
            (rc = outbox_push(x, s->round, err))) {
            free(text);
            goto out;
        }
        free(text);
    }
    s->ck.acct = acct;
    s->eps = eps.epsilon;
    server_update(s, out, nc);
    s->ck.round = s->round;
    s->ck.pending_round = 0;
    memset(&s->ck.pending, 0, sizeof s->ck.pending);
    if ((rc = sl_ckpt_save(s->ck_path, &s->ck, err)))
        goto out;
    double norm = sl_dp_l2norm(out, dim);
    double t_update = now_s() - t0;
    s->last_loss = evaluate(s);
    if (isfinite(s->last_loss))
        audit_event(s, "evaluation", json_pack("{s:f,s:f}", "loss", s->last_loss, "ppl",
                                               exp(s->last_loss)), 0, err);
    s->released++;
    char lossbuf[64] = "";
    if (isfinite(s->last_loss))
        snprintf(lossbuf, sizeof lossbuf, ", eval loss %.4f (ppl %.2f)", s->last_loss,
                 exp(s->last_loss));
    say(s, "released",
        json_pack("{s:i,s:i,s:i,s:f,s:f,s:f,s:f}", "sites_in", (int)nc, "dropped",
                  (int)(s->sampled - nc), "survivors", (int)st.unmasked, "seconds",
                  now_s() - s->t_round, "epsilon", s->eps, "update_norm", norm, "update_seconds",
                  t_update),
        "round %llu released: %u sites in, %u dropped, %u answered unmasking, %.1f s, update "
        "norm %.4g%s, epsilon %.4g of %.4g (delta %g)", (unsigned long long)s->round, nc,
        s->sampled - nc, st.unmasked, now_s() - s->t_round, norm, lossbuf, s->eps,
        s->rc->epsilon, s->rc->delta);
    round_reset(s);
    write_status(s);
out:
    free(sum);
    free(out);
    free(contrib);
    free(ac);
    return rc;
}

static int all_at(srv *s, int step)
{
    for (uint32_t i = 0; i < s->nsites; i++)
        if (s->sites[i].sampled && s->sites[i].step == step - 1)
            return 0;
    return 1;
}

static void phase_enter(srv *s, int ph)
{
    s->phase = ph;
    s->t_phase = now_s();
    s->deadline = s->t_phase + s->rc->phase_timeout;
    sl_secagg_server_stats st;
    sl_secagg_server_get_stats(s->agg, &st);
    say(s, "phase", NULL, "round %llu: phase %s (%u advertised, %u shared, %u masked)",
        (unsigned long long)s->round, phase_name[ph], st.advertised, st.shared, st.masked);
    sl_err e = {0};
    audit_event(s, "phase", json_pack("{s:s,s:i,s:i,s:i}", "phase", phase_name[ph], "advertised",
                                      (int)st.advertised, "shared", (int)st.shared, "masked",
                                      (int)st.masked), 0, &e);
    write_status(s);
}

/* Moves the round on when every site of the phase answered or the
 * deadline passed. */
static int advance(srv *s, sl_err *err)
{
    double t = now_s();
    int late = t >= s->deadline;
    sl_err e = {0};
    int rc;
    switch (s->phase) {
    case PH_TRAIN:
        if (!all_at(s, 1) && !late)
            return 0;
        rc = sl_secagg_server_end_advertise(s->agg, &s->keylist, &s->keylist_len, &e);
        if (rc)
            return round_abort(s, e.msg, err);
        phase_enter(s, PH_SHARES);
        return 0;
    case PH_SHARES:
        if (!all_at(s, 2) && !late)
            return 0;
        if ((rc = sl_secagg_server_end_shares(s->agg, &e)))
            return round_abort(s, e.msg, err);
        phase_enter(s, PH_MASKED);
        return 0;
    case PH_MASKED:
        if (!all_at(s, 3) && !late)
            return 0;
        if ((rc = sl_secagg_server_end_masked(s->agg, &s->unmask_req, &s->unmask_len, &e)))
            return round_abort(s, e.msg, err);
        phase_enter(s, PH_UNMASK);
        return 0;
    case PH_UNMASK:
        if (!all_at(s, 4) && !late)
            return 0;
        if (!sl_secagg_server_ready(s->agg))
            return round_abort(s, "too few unmasking answers before the deadline", err);
        return round_finish(s, err);
    default:
        return 0;
    }
}

/* ---- requests ------------------------------------------------------------ */

/* Answers the request being handled: the current one, or the held POLL
 * s->to. */
static int answer(srv *s, uint16_t type, const void *p, size_t n, sl_err *err)
{
    return s->to ? sl_chan_server_reply_deferred(s->ch, s->to, type, p, n, err)
                 : sl_chan_server_reply(s->ch, type, p, n, err);
}

static int answer_error(srv *s, uint16_t code, const char *msg, sl_err *err)
{
    return s->to ? sl_chan_server_reply_deferred_error(s->ch, s->to, code, msg, err)
                 : sl_chan_server_reply_error(s->ch, code, msg, err);
}

static int reply_u32(srv *s, uint16_t type, uint32_t v, sl_err *err)
{
    uint8_t *p;
    size_t n;
    int rc = sl_fed_u32_encode(v, &p, &n, err);
    if (!rc)
        rc = answer(s, type, p, n, err);
    free(p);
    return rc;
}

static int reply_task_at(srv *s, uint64_t round, uint8_t kind, const void *body, size_t len,
                         sl_err *err)
{
    uint8_t *p;
    size_t n;
    int rc = sl_fed_task_encode(round, kind, body, len, &p, &n, err);
    if (!rc)
        rc = answer(s, SL_WIRE_APP_FED_TASK, p, n, err);
    free(p);
    return rc;
}

static int reply_task(srv *s, uint8_t kind, const void *body, size_t len, sl_err *err)
{
    return reply_task_at(s, s->round, kind, body, len, err);
}

static int on_join(srv *s, site *x, const char *peer, const sl_chan_request *q, sl_err *err)
{
    const uint8_t *der;
    size_t dl;
    sl_err e = {0};
    sl_cert *c = NULL;
    sl_cert_info ci;
    if (sl_fed_join_decode(q->payload, q->len, &der, &dl, &e) ||
        sl_identity_cert_parse_der(der, dl, &c, &e) ||
        sl_identity_verify(s->trust, c, SL_IDENTITY_ROLE_SITE, 0, &ci, &e)) {
        sl_identity_cert_free(c);
        say(s, "refused", NULL, "site '%s': join refused: %s", peer, e.msg);
        /* The reason goes back to the site, cut to the wire's limit and
         * printable ASCII (it names a version or a certificate problem). */
        char why[SL_WIRE_MAX_TEXT + 1];
        snprintf(why, sizeof why, "join refused: %s", e.msg);
        for (char *c = why; *c; c++)
            if (*c < 0x20 || *c > 0x7e)
                *c = '?';
        return sl_chan_server_reply_error(s->ch, SL_WIRE_ERR_APP, why, err);
    }
    sl_identity_cert_free(c);
    if (strcmp(ci.name, peer) != 0) {
        say(s, "refused", NULL, "site '%s' joined with the certificate of '%s'", peer, ci.name);
        return sl_chan_server_reply_error(s->ch, SL_WIRE_ERR_APP,
                                          "join refused: certificate of another site", err);
    }
    if (!x->cert || x->cert_len != dl || memcmp(x->cert, der, dl) != 0) {
        uint8_t *copy = malloc(dl);
        if (!copy)
            return sl_err_set(err, SL_ENOMEM, "out of memory");
        memcpy(copy, der, dl);
        free(x->cert);
        x->cert = copy;
        x->cert_len = dl;
    }
    if (!x->joined || sodium_memcmp(x->pk, ci.pk, 32) != 0) {
        memcpy(x->pk, ci.pk, 32);
        char fpr[SL_IDENTITY_FPR_CHARS + 1];
        sl_identity_fingerprint(ci.pk, fpr);
        say(s, "join", NULL, "site '%s' joined (key %s)", peer, fpr);
        audit_event(s, "key_event", json_pack("{s:s,s:s,s:s}", "event", "join", "site", peer,
                                              "key", fpr), 0, &e);
    }
    x->joined = 1;
    x->last_seen = now_s();
    sl_fed_join_ok j;
    memset(&j, 0, sizeof j);
    j.cert = s->cert_der;
    j.cert_len = s->cert_len;
    j.nfiles = s->nfiles;
    memcpy(j.files, s->files, sizeof j.files);
    uint8_t *p;
    size_t n;
    int rc = sl_fed_join_ok_encode(&j, &p, &n, err);
    if (!rc)
        rc = sl_chan_server_reply(s->ch, SL_WIRE_APP_FED_JOIN_OK, p, n, err);
    free(p);
    write_status(s);
    return rc;
}

/* 1 when a POLL of site x would get something other than WAIT now. */
static int poll_has_news(const srv *s, const site *x)
{
    if (x->noutbox || s->phase == PH_DONE)
        return 1;
    return x->sampled && s->phase >= PH_TRAIN && s->phase <= PH_UNMASK &&
           x->step == s->phase - PH_TRAIN;
}

/* Answers a POLL of site x (the current request, or the held one in
 * s->to). With nothing for the site and may_hold, the POLL is held
 * (sl_chan_server_defer) until there is, at most SL_FEDSERVER_HOLD_MS:
 * release_held answers it then. */
static int answer_poll(srv *s, site *x, int may_hold, sl_err *err)
{
    sl_err e = {0};
    if (may_hold && !poll_has_news(s, x)) {
        int rc = sl_chan_server_defer(s->ch, &x->held, err);
        if (!rc) {
            x->has_held = 1;
            x->held_until = now_s() + SL_FEDSERVER_HOLD_MS / 1000.0;
        }
        return rc;
    }
    while (x->noutbox) {
        /* The oldest receipt first: the next POLL acknowledges it. A file
         * that cannot be read (removed or damaged by hand) is reported and
         * skipped rather than stopping the job; the audit log still lists
         * the round's contributors and their input digests. */
        char p[PMAX];
        uint8_t *text = NULL;
        size_t tl = 0;
        if (!outbox_file(s, x, x->outbox[0], p, &e) &&
            !sl_fs_read_all(p, SL_AUDITLOG_MAX_RECORD, &text, &tl, &e)) {
            int rc = reply_task_at(s, x->outbox[0], SL_FED_TASK_RECEIPT, text, tl, err);
            free(text);
            return rc;
        }
        say(s, "warning", NULL, "receipt of round %llu for site %s not delivered: %s",
            (unsigned long long)x->outbox[0], s->rc->sites[x->id - 1], e.msg);
        memmove(x->outbox, x->outbox + 1, (x->noutbox - 1) * sizeof *x->outbox);
        x->noutbox--;
    }
    if (s->phase == PH_DONE) {
        uint8_t *p;
        size_t n;
        int rc = sl_fed_text_encode(s->stop_reason, &p, &n, err);
        if (!rc)
            rc = answer(s, SL_WIRE_APP_FED_DONE, p, n, err);
        free(p);
        return rc;
    }
    if (x->sampled) {
        if (s->phase == PH_TRAIN && x->step == 0) /* sl_fed_train_encode made the whole TASK */
            return answer(s, SL_WIRE_APP_FED_TASK, s->train_msg, s->train_len, err);
        if (s->phase == PH_SHARES && x->step == 1)
            return reply_task(s, SL_FED_TASK_KEYLIST, s->keylist, s->keylist_len, err);
        if (s->phase == PH_MASKED && x->step == 2) {
            uint8_t *d;
            size_t dl;
            if (sl_secagg_server_deliver(s->agg, x->id, &d, &dl, &e))
                return answer_error(s, SL_WIRE_ERR_APP, e.msg, err);
            int rc = reply_task(s, SL_FED_TASK_DELIVER, d, dl, err);
            free(d);
            return rc;
        }
        if (s->phase == PH_UNMASK && x->step == 3)
            return reply_task(s, SL_FED_TASK_UNMASK_REQ, s->unmask_req, s->unmask_len, err);
    }
    /* Nothing yet, and the POLL was held as long as it may be: poll again
     * at once (it will be held again). */
    return reply_u32(s, SL_WIRE_APP_FED_WAIT, may_hold ? SL_FEDSERVER_WAIT_MS : 0, err);
}

static int on_poll(srv *s, site *x, const sl_chan_request *q, sl_err *err)
{
    uint64_t working = 0, held = 0;
    sl_err e = {0};
    if (sl_fed_poll_decode(q->payload, q->len, &working, &held, &e))
        return sl_chan_server_reply_error(s->ch, SL_WIRE_ERR_MALFORMED, e.msg, err);
    x->last_seen = now_s();
    outbox_ack(s, x, held);
    x->has_held = 0; /* a new POLL: any one held before was given up by the site */
    return answer_poll(s, x, 1, err);
}

/* Answers the held POLLs that have news, or whose hold is over (all of
 * them when force). A site that gave up waiting or lost its session is
 * skipped: its next POLL is answered as usual. */
static int release_held(srv *s, int force, sl_err *err)
{
    double t = now_s();
    for (uint32_t i = 0; i < s->nsites; i++) {
        site *x = &s->sites[i];
        if (!x->has_held || (!force && t < x->held_until && !poll_has_news(s, x)))
            continue;
        x->has_held = 0;
        s->to = &x->held;
        sl_err e = {0};
        int rc = answer_poll(s, x, 0, &e);
        s->to = NULL;
        if (rc == SL_ESTATE || rc == SL_EIO)
            continue; /* moved on, session gone, or not sent: it will ask again */
        if (rc) {
            *err = e;
            return rc;
        }
    }
    return 0;
}

static int on_submit(srv *s, site *x, const char *peer, const sl_chan_request *q, sl_err *err)
{
    uint64_t round;
    const uint8_t *m;
    size_t ml;
    sl_err e = {0};
    x->last_seen = now_s();
    if (sl_fed_submit_decode(q->payload, q->len, &round, &m, &ml, &e))
        return sl_chan_server_reply_error(s->ch, SL_WIRE_ERR_MALFORMED, e.msg, err);
    if (round != s->round || !x->sampled || s->phase < PH_TRAIN || s->phase > PH_UNMASK) {
        char why[160];
        snprintf(why, sizeof why, "round %llu is not open for this site (current round %llu, "
                 "phase %s)", (unsigned long long)round, (unsigned long long)s->round,
                 phase_name[s->phase]);
        return sl_chan_server_reply_error(s->ch, SL_WIRE_ERR_STATE, why, err);
    }
    int want = s->phase; /* TRAIN expects step 1 (advertise), ... UNMASK step 4 */
    if (x->step != want - 1) {
        char why[160];
        snprintf(why, sizeof why, "round %llu phase %s: not expecting this site's message now",
                 (unsigned long long)round, phase_name[s->phase]);
        return sl_chan_server_reply_error(s->ch, SL_WIRE_ERR_STATE, why, err);
    }
    int rc;
    switch (s->phase) {
    case PH_TRAIN: rc = sl_secagg_server_on_advertise(s->agg, x->id, m, ml, &e); break;
    case PH_SHARES: rc = sl_secagg_server_on_shares(s->agg, x->id, m, ml, &e); break;
    case PH_MASKED: rc = sl_secagg_server_on_masked(s->agg, x->id, m, ml, &e); break;
    default: rc = sl_secagg_server_on_unmask(s->agg, x->id, m, ml, &e); break;
    }
    if (rc) {
        say(s, "refused", NULL, "round %llu: site '%s': %s", (unsigned long long)round, peer,
            e.msg);
        return sl_chan_server_reply_error(s->ch, SL_WIRE_ERR_APP, e.msg, err);
    }
    if (s->phase == PH_MASKED && (rc = sl_sha256(m, ml, x->input, err)))
        return rc;
    x->step = want;
    return sl_chan_server_reply(s->ch, SL_WIRE_APP_FED_ACK, NULL, 0, err);
}

static int serve(srv *s, int timeout_ms, sl_err *err)
{
    sl_chan_request q;
    int rc = sl_chan_server_next(s->ch, timeout_ms, &q, err);
    if (rc || !q.type)
        return rc;
    int i = sl_runcfg_site(s->rc, q.peer);
    if (i < 0) {
        say(s, "refused", NULL, "site '%s' is not enrolled in [run] sites", q.peer);
        return sl_chan_server_reply_error(s->ch, SL_WIRE_ERR_DENIED, "site not enrolled", err);
    }
    site *x = &s->sites[i];
    if (q.type == SL_WIRE_APP_FED_JOIN)
        return on_join(s, x, q.peer, &q, err);
    if (!x->joined)
        return sl_chan_server_reply_error(s->ch, SL_WIRE_ERR_STATE, "join first", err);
    if (q.type == SL_WIRE_APP_FED_POLL)
        return on_poll(s, x, &q, err);
    if (q.type == SL_WIRE_APP_FED_SUBMIT)
        return on_submit(s, x, q.peer, &q, err);
    return sl_chan_server_reply_error(s->ch, SL_WIRE_ERR_STATE, "unknown request type", err);
}

/* ---- start-up and restart ------------------------------------------------- */

static int open_state(srv *s, sl_err *err)
{
    int rc = sl_fs_mkdirs(s->o->state, 0700, err);
    if (rc || (rc = path_in(s, s->ck_path, SL_CKPT_FILE, err)))
        return rc;
    uint32_t dim = (uint32_t)s->lora->nparams;
    char logp[PMAX];
    if ((rc = path_in(s, logp, SL_AUDITLOG_FILE, err)))
        return rc;
    int have_ck = sl_fs_exists(s->ck_path), have_log = sl_fs_exists(logp);
    if (have_ck != have_log)
        return sl_err_set(err, SL_ESTATE, "%s: holds %s but not %s; refusing to guess (restore "
                          "both or start from an empty folder)", s->o->state,
                          have_ck ? SL_CKPT_FILE : SL_AUDITLOG_FILE,
                          have_ck ? SL_AUDITLOG_FILE : SL_CKPT_FILE);
    if (!have_ck) {
        if ((rc = sl_ckpt_init(&s->ck, dim, s->rc->fedadam ? SL_CKPT_FEDADAM : SL_CKPT_FEDAVG,
                               err)))
            return rc;
        memcpy(s->ck.global, s->lora->params, (size_t)dim * sizeof(float));
        sl_auditlog_config ac = {"server", s->rc->epsilon, s->rc->delta,
                                 s->rc->noise_multiplier,
                                 s->rc->central ? SL_ACCT_CENTRAL : SL_ACCT_DISTRIBUTED};
        if ((rc = sl_auditlog_create(&s->log, s->o->state, s->sk, &ac, err)) ||
            (rc = sl_ckpt_save(s->ck_path, &s->ck, err)))
            return rc;
        say(s, "start", NULL, "new state in %s: adapter of %u floats on %d blocks (%s), "
            "budget epsilon %g at delta %g", s->o->state, dim, s->nlayers,
            s->meta ? "the emulator's adapter blocks" : "first and last of the model",
            s->rc->epsilon, s->rc->delta);
        return 0;
    }
    if ((rc = sl_ckpt_load(s->ck_path, &s->ck, err)))
        return rc;
    if (s->ck.dim != dim || (s->ck.optimizer == SL_CKPT_FEDADAM) != s->rc->fedadam)
        return sl_err_set(err, SL_ESTATE, "%s: adapter of %u floats (%s), the configuration makes "
                          "%u (%s): the state belongs to another configuration", s->ck_path,
                          s->ck.dim, s->ck.optimizer ? "fedadam" : "fedavg", dim,
                          s->rc->fedadam ? "fedadam" : "fedavg");
    memcpy(s->lora->params, s->ck.global, (size_t)dim * sizeof(float));
    if ((rc = sl_auditlog_open(&s->log, s->o->state, s->sk,
                               s->o->repair_log ? SL_AUDITLOG_REPAIR_TORN : 0, err)))
        return rc;
    int64_t last = sl_auditlog_last_round(s->log), open = sl_auditlog_open_round(s->log);
    /* Never reuse a round number the log has seen. */
    if (last >= 0 && (uint64_t)last >= s->ck.next_round)
        s->ck.next_round = (uint64_t)last + 1;
    if (open >= 0 && (uint64_t)open >= s->ck.next_round)
        s->ck.next_round = (uint64_t)open + 1;
    sl_acct_eps e;
    if (s->ck.pending_round) {
        /* In flight at a crash: charged with its worst case, released or
         * not. If its round_close is in the log the sum was released and
         * only the update was lost (the sites have their receipts: they are
         * written before the update); otherwise the round is abandoned,
         * which the log records for the auditor. */
        uint64_t r = s->ck.pending_round;
        int released = last >= 0 && (uint64_t)last >= r;
        if ((rc = sl_acct_add_mech(&s->ck.acct, &s->ck.pending, err)) ||
            (rc = sl_acct_epsilon(&s->ck.acct, s->rc->delta, &e, err)))
            return rc;
        s->ck.pending_round = 0;
        memset(&s->ck.pending, 0, sizeof s->ck.pending);
        rc = released ? audit_event(s, "round_update_lost",
                                    json_pack("{s:I,s:f}", "round", (json_int_t)r,
                                              "epsilon_charged", e.epsilon),
                                    0, err)
                      : sl_auditlog_round_abandoned(s->log, (int64_t)r, e.epsilon,
                                                    "in flight at a crash; charged with its "
                                                    "planned worst case (threshold survivors)",
                                                    err);
        if (rc || (rc = sl_ckpt_save(s->ck_path, &s->ck, err)))
            return rc;
        if (released)
            say(s, "resume", NULL, "round %llu was released but its update was not "
                "checkpointed before a crash: the update is lost, its budget charged (epsilon "
                "now %.4g)", (unsigned long long)r, e.epsilon);
        else
            say(s, "resume", NULL, "round %llu was in flight at a crash: abandoned, its budget "
                "charged (epsilon now %.4g)", (unsigned long long)r, e.epsilon);
    }
    if ((rc = sl_acct_epsilon(&s->ck.acct, s->rc->delta, &e, err)))
        return rc;
    s->eps = s->ck.acct.steps ? e.epsilon : 0;
    say(s, "resume", NULL, "resumed from %s: last completed round %llu, next round %llu, "
        "epsilon spent %.4g of %g", s->o->state, (unsigned long long)s->ck.round,
        (unsigned long long)s->ck.next_round, s->eps, s->rc->epsilon);
    return 0;
}

static int load_identity(srv *s, sl_err *err)
{
    sl_cert *c = NULL;
    sl_cert_info ci;
    int rc = sl_identity_cert_read(s->cc.cert, &c, err);
    if (!rc)
        rc = sl_identity_cert_der(c, &s->cert_der, &s->cert_len, err);
    if (!rc)
        rc = sl_identity_cert_info(c, &ci, err);
    sl_identity_cert_free(c);
    if (rc)
        return rc;
    memcpy(s->pk, ci.pk, 32);
    if (!(s->sk = sodium_malloc(SL_IDENTITY_SK_BYTES)))
        return sl_err_set(err, SL_ENOMEM, "out of locked memory");
    if ((rc = sl_identity_load_secret(s->cc.key, s->sk, err)))
        return rc;
    if (sodium_memcmp(s->sk + 32, s->pk, 32) != 0)
        return sl_err_set(err, SL_ECRYPTO, "%s does not hold the key of %s", s->cc.key,
                          s->cc.cert);
    return sl_identity_trust_load(s->cc.ca, s->cc.crl[0] ? s->cc.crl : NULL, &s->trust, err);
}

/* The global adapter, on the full model's blocks, in the PEFT layout, and
 * plugged into the full model (merged weights in the model's own dtype,
 * with its tokenizer), so either can be loaded by Hugging Face tools. */
static int export_adapter(srv *s, sl_err *err)
{
    char p[PMAX], m[PMAX];
    char w[PMAX], hex[65];
    uint8_t d[32];
    int rc = path_in(s, p, "adapter", err);
    /* The base digest lets `plugin` refuse another base model. */
    if (!rc)
        rc = sl_fs_join(w, PMAX, s->rc->model, SL_MODELDIR_WEIGHTS, err);
    if (!rc)
        rc = sl_fs_sha256(w, d, hex, err);
    if (!rc)
        rc = sl_adapter_save(s->lora, p, s->rc->model, hex, err);
    if (!rc)
        rc = path_in(s, m, "merged", err);
    sl_st_dtype dt;
    if (!rc)
        rc = sl_modeldir_dtype(s->rc->model, &dt, err);
    if (rc)
        return rc;
    sl_lora_merge(s->model, s->lora, 1.0f);
    rc = sl_modeldir_save(s->model, m, dt, err);
    sl_lora_merge(s->model, s->lora, -1.0f);
    static const char *const tok[] = {"tokenizer.json", "vocab.json", "merges.txt",
                                       "tokenizer_config.json"};
    for (size_t i = 0; !rc && i < sizeof tok / sizeof tok[0]; i++) {
        char from[PMAX], to[PMAX];
        if ((rc = sl_fs_join(from, PMAX, s->rc->model, tok[i], err)) ||
            (rc = sl_fs_join(to, PMAX, m, tok[i], err)))
            break;
        if (sl_fs_exists(from))
            rc = sl_fs_copy(from, to, err);
    }
    if (!rc)
        say(s, "export", NULL, "global adapter (round %llu) written to %s (PEFT layout) and "
            "plugged into the full model in %s", (unsigned long long)s->ck.round, p, m);
    return rc;
}

int sl_fedserver_run(const sl_fedserver_opts *o, sl_err *err)
{
    struct rlimit nocore = {0, 0};
    setrlimit(RLIMIT_CORE, &nocore);
    if (sodium_init() < 0)
        return sl_err_set(err, SL_ECRYPTO, "libsodium failed to initialise");
    srv s;
    memset(&s, 0, sizeof s);
    s.o = o;
    s.last_loss = s.base_loss = NAN;
    int rc;
    if (!(s.rc = malloc(sizeof *s.rc)))
        return sl_err_set(err, SL_ENOMEM, "out of memory");
    if ((rc = sl_chan_server_config_load(o->config, &s.cc, err)) ||
        (rc = sl_runcfg_load(o->config, s.rc, err)))
        goto out;
    s.cc.log = chan_log;
    s.cc.log_ctx = &s;
    s.nsites = s.rc->nsites;
    if (!(s.sites = calloc(s.nsites, sizeof *s.sites))) {
        rc = sl_err_set(err, SL_ENOMEM, "out of memory");
        goto out;
    }
    for (uint32_t i = 0; i < s.nsites; i++)
        s.sites[i].id = i + 1;
    if ((rc = load_identity(&s, err)) || (rc = sl_fs_mkdirs(o->state, 0700, err)) ||
        (rc = load_model(&s, err)) || (rc = open_state(&s, err)) ||
        (rc = outbox_load(&s, err)) ||
        (rc = sl_chan_server_create(&s.cc, &s.ch, err)) || (rc = serve_model(&s, err)) ||
        (rc = sl_chan_server_listen(s.ch, err)))
        goto out;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    s.base_loss = s.last_loss = evaluate(&s);
    if (isfinite(s.base_loss))
        say(&s, "eval", NULL, "evaluation text: loss %.4f (ppl %.2f) with the adapter of round "
            "%llu", s.base_loss, exp(s.base_loss), (unsigned long long)s.ck.round);
    write_status(&s);
    double t_wait = now_s();
    while (!g_stop) {
        if (s.phase == PH_IDLE) {
            if (s.ck.next_round > s.rc->rounds) {
                closing(&s, "all %u rounds done", s.rc->rounds);
            } else {
                uint32_t online = 0;
                double t = now_s();
                for (uint32_t i = 0; i < s.nsites; i++)
                    online += s.sites[i].joined && t - s.sites[i].last_seen < ONLINE_SECONDS;
                if (online == s.nsites ||
                    (online >= s.rc->min_sites && t - t_wait > s.rc->wait_sites)) {
                    if ((rc = round_start(&s, err)))
                        goto out;
                    t_wait = now_s();
                }
            }
            if (s.phase == PH_DONE) {
                say(&s, "done", NULL, "%s; telling the sites for %us", s.stop_reason,
                    s.rc->linger);
                write_status(&s);
                if ((rc = export_adapter(&s, err)))
                    goto out;
                double until = now_s() + s.rc->linger;
                while (!g_stop && now_s() < until)
                    if ((rc = release_held(&s, 0, err)) || (rc = serve(&s, 100, err)))
                        goto out;
                break;
            }
        }
        /* Held POLLs first: a phase or round that just began is news. */
        if ((rc = release_held(&s, 0, err)) || (rc = serve(&s, 100, err)))
            goto out;
        if (s.phase >= PH_TRAIN && s.phase <= PH_UNMASK && (rc = advance(&s, err)))
            goto out;
    }
    if (g_stop) {
        sl_err e = {0};
        (void)release_held(&s, 1, &e); /* the sites hear WAIT now instead of timing out */
    }
    if (g_stop && s.phase != PH_DONE)
        say(&s, "stop", NULL, "stopped by a signal in round %llu phase %s%s",
            (unsigned long long)s.round, phase_name[s.phase],
            s.phase != PH_IDLE ? " (the round is abandoned; its budget stays charged)" : "");
    if (s.phase != PH_DONE && (rc = export_adapter(&s, err)))
        goto out;
    if (s.phase == PH_DONE) {
        write_status(&s);
        rc = sl_auditlog_close(s.log, err);
        s.log = NULL;
    }
out:
    round_reset(&s);
    for (uint32_t i = 0; s.sites && i < s.nsites; i++) {
        free(s.sites[i].outbox);
        free(s.sites[i].cert);
    }
    free(s.sites);
    sl_auditlog_free(s.log);
    sl_chan_server_free(s.ch);
    sl_identity_trust_free(s.trust);
    if (s.sk)
        sodium_free(s.sk);
    free(s.cert_der);
    sl_gpt2_ctx_free(s.eval_ctx);
    sl_dataset_close(s.eval);
    sl_tokenizer_free(s.tok);
    sl_lora_free(s.lora);
    sl_gpt2_free(s.model);
    sl_ckpt_fini(&s.ck);
    free(s.meta);
    free(s.rc);
    return rc;
}
