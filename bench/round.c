/* bench/round: the wall time of one federated round over loopback, split
 * into local training, secure aggregation with DP and the server update,
 * against the same round with plain aggregation (docs/performance.md
 * "Federated round").
 *
 *   bench/round                      N in {3, 10, 50}
 *   bench/round N [STEPS [WAIT_MS [ROUNDS]]]  one cohort size; ROUNDS secure
 *                                    rounds in a row, the last one reported
 *
 * The adapter is GPT-2 small's LoRA on the emulator's four adapter blocks
 * (rank 8 on attn.c_attn and attn.c_proj, width 768: 147456 floats).
 *
 * Local training: one site's STEPS steps (default 4, B 4 x T 128) on a
 * 6-block width-768 emulator with random weights and tokens, measured once
 * before the loopback rounds. Sites train in parallel on their own
 * machines, so the round waits for one site's training.
 *
 * Secure round: a server thread and N site threads in this process talk
 * over real nanomsg TCP sockets on 127.0.0.1 through the encrypted channel
 * (crypto/channel; full handshakes with certificates issued by a CA made in
 * a temporary folder, a CRL, one session per site), exchanging the
 * runtime's messages (crypto/fedmsg: JOIN, POLL, WAIT, TASK, SUBMIT, ACK,
 * DONE) in the runtime's order: each site polls, receives TRAIN (the
 * instructions and the global adapter), checks the DP plan and the
 * secure-aggregation configuration as the agent does, DP-encodes its update
 * (sl_dp_encode: clip, rotate, round, noise), advertises its keys, then
 * answers KEYLIST, DELIVER and UNMASK_REQ with crypto/secagg_client; the
 * server drives crypto/secagg_server, ends each phase when every site has
 * answered, unmasks, decodes (sl_dp_decode) and applies FedAvg. Polls with
 * nothing for their site are held as server/fedserver.c holds them (long
 * polling, up to SL_FEDSERVER_HOLD_MS, answered at the phase change), or
 * with WAIT_MS > 0 answered WAIT WAIT_MS at once (the older policy, for
 * comparison). The sites join, then wait until the server opens the round
 * and poll at once: both rounds leave out the delay before a site's first
 * poll of a round.
 *
 * This is a compact driver of the library calls the runtime makes, not
 * server/fedserver and client/agent themselves (those need a model on disk,
 * train it in every site, and are one per process). Left out of the round:
 * Poisson sampling (every site is in the cohort), the budget check and the
 * accountant, the pending checkpoint and the checkpoint after the update,
 * the audit log (mechanism record, signed round close, receipts and their
 * delivery), evaluation, phase deadlines, operator lines and the model
 * download; each site's "training" is a fixed synthetic update (training
 * is measured once, above). Handshakes and JOIN happen before the round.
 *
 * Plain round: the same N sites and server over plain nanomsg REQ/REP
 * (shared/transport, no channel) on loopback: sites poll, receive the same
 * TRAIN message, send their float update unclipped, unmasked and
 * unencrypted; the server sums the vectors as they arrive and averages.
 *
 * On one machine the N sites' work is serialised on its cores, which
 * overstates what N machines would see, so besides the loopback wall time
 * the bench prints the per-site critical path: the CPU time of the slowest
 * site's thread (channel, codecs, DP, secure aggregation) plus the server
 * thread's CPU time in the round (thread CPU clocks; nanomsg's I/O threads
 * and polling waits are not in it). The polling delay is printed apart:
 * for the shares, masked and unmasking phases, the time from the phase's
 * start until the last site's poll fetched its message (with long polling
 * the held polls are answered right after the phase change; with WAIT_MS
 * the sites learn of it only at their next poll).
 *
 * Exactness: the sites' encoded inputs are kept, and the unmasked sum must
 * equal their plain sum modulo 2^32 word for word (and so decode to the same
 * floats); the bench prints whether it does. Prints figures, asserts
 * nothing; exits 1 if a round fails. */
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "crypto/channel.h"
#include "crypto/dp.h"
#include "crypto/fedmsg.h"
#include "crypto/identity.h"
#include "crypto/secagg_client.h"
#include "crypto/secagg_server.h"
#include "server/fedserver.h"
#include "shared/fsutil.h"
#include "shared/gpt2.h"
#include "shared/lora.h"
#include "shared/reader.h"
#include "shared/train.h"
#include "shared/transport.h"
#include "shared/writer.h"
#include "shared/sha256.h"

#define MAX_SITES 200u
#define SERVE_MS 100         /* the server's wait for one request, as the runtime's */
#define CALL_TIMEOUT_MS 60000
#define PMAX 512

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* CPU seconds of the calling thread. */
static double cpu(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void quiet(void *ctx, sl_chan_log_level level, const char *line)
{
    (void)ctx, (void)level, (void)line;
}

static int free_port(sl_err *err)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) ||
        getsockname(fd, (struct sockaddr *)&a, &len)) {
        if (fd >= 0)
            close(fd);
        return sl_err_errno(err, "no free loopback port");
    }
    close(fd);
    return ntohs(a.sin_port);
}

/* ---- credentials ----------------------------------------------------------- */

typedef struct creds {
    char dir[64];
    char ca[PMAX], ca_key[PMAX], crl[PMAX], srv_crt[PMAX], srv_key[PMAX];
    uint32_t nsites;
    uint8_t **certs;     /* nsites DER certificates: the cohort in TRAIN */
    uint32_t *cert_lens;
} creds;

static void site_name(uint32_t i, char out[16])
{
    snprintf(out, 16, "site-%03u", i + 1);
}

static void site_path(const creds *c, uint32_t i, const char *ext, char out[PMAX])
{
    snprintf(out, PMAX, "%s/site-%03u.%s", c->dir, i + 1, ext);
}

/* A CA, an empty CRL, the server's certificate and one per site, as
 * `sealora-server provision` makes them (keys 0600). */
static int creds_make(creds *c, uint32_t nsites, sl_err *err)
{
    memset(c, 0, sizeof *c);
    snprintf(c->dir, sizeof c->dir, "/tmp/sealora-round-XXXXXX");
    if (!mkdtemp(c->dir))
        return sl_err_errno(err, "mkdtemp %s", c->dir);
    snprintf(c->ca, PMAX, "%s/ca.crt", c->dir);
    snprintf(c->ca_key, PMAX, "%s/ca.key", c->dir);
    snprintf(c->crl, PMAX, "%s/crl.pem", c->dir);
    snprintf(c->srv_crt, PMAX, "%s/server.crt", c->dir);
    snprintf(c->srv_key, PMAX, "%s/server.key", c->dir);
    uint8_t pk[32];
    int rc;
    if ((rc = sl_identity_ca_create(c->ca, c->ca_key, NULL, err)) ||
        (rc = sl_identity_crl_write(c->ca, c->ca_key, NULL, 0, c->crl, err)) ||
        (rc = sl_identity_keygen(c->srv_key, pk, err)) ||
        (rc = sl_identity_issue(c->ca, c->ca_key, SL_IDENTITY_SERVER_NAME,
                                SL_IDENTITY_ROLE_SERVER, pk, NULL, c->srv_crt, NULL, err)))
        return rc;
    c->certs = calloc(nsites, sizeof *c->certs);
    c->cert_lens = calloc(nsites, sizeof *c->cert_lens);
    if (!c->certs || !c->cert_lens)
        return sl_err_set(err, SL_ENOMEM, "out of memory");
    for (uint32_t i = 0; i < nsites; i++) {
        char name[16], crt[PMAX], key[PMAX];
        site_name(i, name);
        site_path(c, i, "crt", crt);
        site_path(c, i, "key", key);
        sl_cert *cert = NULL;
        size_t dl = 0;
        if ((rc = sl_identity_keygen(key, pk, err)) ||
            (rc = sl_identity_issue(c->ca, c->ca_key, name, SL_IDENTITY_ROLE_SITE, pk, NULL, crt,
                                    NULL, err)) ||
            (rc = sl_identity_cert_read(crt, &cert, err)) ||
            (rc = sl_identity_cert_der(cert, &c->certs[i], &dl, err))) {
            sl_identity_cert_free(cert);
            return rc;
        }
        sl_identity_cert_free(cert);
        c->cert_lens[i] = (uint32_t)dl;
        c->nsites = i + 1;
    }
    return 0;
}

static void creds_remove(creds *c)
{
    for (uint32_t i = 0; c->certs && i < c->nsites; i++)
        free(c->certs[i]);
    free(c->certs);
    free(c->cert_lens);
    c->certs = NULL;
    c->cert_lens = NULL;
    sl_err e = {0};
    if (c->dir[0] && sl_fs_remove_flat_dir(c->dir, &e))
        fprintf(stderr, "round: %s (left behind)\n", e.msg);
}

/* ---- what one run shares between its threads ------------------------------ */

enum { PH_IDLE = 0, PH_TRAIN, PH_SHARES, PH_MASKED, PH_UNMASK, PH_DONE };
#define NPHASES 5 /* train, shares, masked, unmask, finish + decode */
static const char *const phase_label[NPHASES] = {"train task + DP encode + advertise", "shares",
                                                 "masked inputs", "unmasking",
                                                 "unmask sum + decode"};

typedef struct site_stats {
    double cpu_total; /* thread CPU from the first TASK to the last ACK */
    double cpu_dp;    /* sl_dp_encode */
    double cpu_mask;  /* sl_secagg_client_on_deliver */
    double cpu_sa;    /* the other secure-aggregation calls */
    uint32_t polls;   /* POLLs sent in the round */
    double cpu_first; /* cpu_total of the first round (rounds > 1) */
} site_stats;

typedef struct run {
    const creds *cr;
    uint32_t n, dim, words;
    int secure;
    int port;
    uint32_t wait_ms;
    int steps;
    uint32_t rounds;        /* secure rounds in a row; the figures are the last one's */
    const float *global0;   /* dim floats: the global adapter at the round's start */
    uint32_t *inputs;       /* n x words: each site's encoded input (exactness) */
    site_stats *ss;         /* n */
    pthread_mutex_t mu;
    int failed;             /* under mu */
    char why[SL_ERR_MSG_MAX + 64];
    volatile int stop;      /* the server thread stops serving */
    pthread_cond_t opened;  /* signalled (under mu) when the round opens */
    int open;               /* under mu */
    /* results, written by the server thread */
    double t_agg;           /* round start to the decoded (or plain) sum */
    double t_phase[NPHASES];
    double cpu_phase[NPHASES]; /* server thread CPU in each phase */
    double t_fetch[NPHASES]; /* phase start to the last site's fetch of its message */
    double t_update;
    double srv_cpu;         /* server thread CPU in the round */
    double srv_cpu_first, site_cpu_first; /* the first round's (rounds > 1) */
    double srv_finish_cpu, srv_decode_cpu;
    uint32_t *sum;          /* words: the unmasked sum (secure) */
    sl_dp_plan plan;        /* the round's plan (secure) */
    sl_secagg_server_stats st;
    uint32_t contributors;
} run;

static void fail(run *r, const char *who, const sl_err *e)
{
    pthread_mutex_lock(&r->mu);
    if (!r->failed) {
        r->failed = 1;
        snprintf(r->why, sizeof r->why, "%s: %s", who, e && e->msg[0] ? e->msg : "failed");
    }
    r->stop = 1;
    pthread_cond_broadcast(&r->opened);
    pthread_mutex_unlock(&r->mu);
}

/* The server opens the round; sites waiting in await_open poll at once. */
static void open_round(run *r)
{
    pthread_mutex_lock(&r->mu);
    r->open = 1;
    pthread_cond_broadcast(&r->opened);
    pthread_mutex_unlock(&r->mu);
}

static void await_open(run *r)
{
    pthread_mutex_lock(&r->mu);
    while (!r->open && !r->failed)
        pthread_cond_wait(&r->opened, &r->mu);
    pthread_mutex_unlock(&r->mu);
}

static int failed(run *r)
{
    pthread_mutex_lock(&r->mu);
    int f = r->failed;
    pthread_mutex_unlock(&r->mu);
    return f;
}

/* A site's local update: the same fixed pseudo-random vector in both
 * rounds, L2 norm about 2.2 so that clipping to 1 does work. */
static void site_delta(uint32_t site, float *d, uint32_t dim)
{
    for (uint32_t j = 0; j < dim; j++) {
        uint32_t h = (j + 1) * 2654435761u ^ (site + 1) * 40503u;
        h ^= h >> 15;
        h *= 2246822519u;
        h ^= h >> 13;
        d[j] = (float)((h % 2001u) / 1000.0 - 1.0) * 0.01f;
    }
}

/* The round's instructions as the runtime's TRAIN carries them (the
 * cohort as the sites' certificates, which the sites verify). */
static void train_fill(sl_fed_train *t, const run *r, const sl_dp_params *dp,
                       const sl_secagg_config *sa, uint32_t *ids)
{
    memset(t, 0, sizeof *t);
    t->rank = 8;
    t->alpha = 16;
    t->targets = SL_LORA_C_ATTN | SL_LORA_C_PROJ;
    t->nlayers = 4;
    t->layers[0] = 0, t->layers[1] = 1, t->layers[2] = 4, t->layers[3] = 5;
    t->steps = (uint32_t)r->steps;
    t->batch = 4;
    t->seq = 128;
    t->lr = 1e-3f;
    t->seed = 1;
    t->dp = *dp;
    t->sa = *sa;
    t->n_sites = r->n;
    t->ids = ids;
    t->certs = (const uint8_t **)r->cr->certs;
    t->cert_lens = r->cr->cert_lens;
    t->dim = r->dim;
    t->global = (float *)r->global0;
}

/* ---- secure round: the server ----------------------------------------------- */

typedef struct ssite {
    int joined;
    uint8_t pk[32];
    int step; /* 0..4: what it submitted this round */
    uint8_t input[32];
    sl_chan_deferred held; /* its POLL, held (long polling) */
    int has_held;
    double held_until;
} ssite;

typedef struct srv {
    run *r;
    sl_chan_server *ch;
    sl_trust *trust;
    uint8_t *cert_der;
    size_t cert_len;
    ssite *sites;
    int phase;
    double t0, t_mark, cpu0, cpu_mark;
    uint64_t round; /* 1..rounds */
    const sl_chan_deferred *to; /* the held POLL being answered, NULL: the current request */
    sl_secagg_config sa;
    sl_dp_params dpp;
    sl_secagg_server *agg;
    uint8_t *train_msg, *keylist, *unmask_req;
    size_t train_len, keylist_len, unmask_len;
    float *global; /* the server's adapter */
} srv;

static int peer_index(const srv *s, const char *peer)
{
    unsigned long i;
    char *end;
    if (strncmp(peer, "site-", 5) != 0)
        return -1;
    i = strtoul(peer + 5, &end, 10);
    if (*end || i < 1 || i > s->r->n)
        return -1;
    return (int)i - 1;
}

/* Answers the current request or the held POLL s->to (as the runtime). */
static int answer(srv *s, uint16_t type, const void *p, size_t n, sl_err *err)
{
    return s->to ? sl_chan_server_reply_deferred(s->ch, s->to, type, p, n, err)
                 : sl_chan_server_reply(s->ch, type, p, n, err);
}

static int reply_task(srv *s, uint8_t kind, const void *body, size_t len, sl_err *err)
{
    uint8_t *p;
    size_t n;
    int rc = sl_fed_task_encode(s->round, kind, body, len, &p, &n, err);
    if (!rc)
        rc = answer(s, SL_WIRE_APP_FED_TASK, p, n, err);
    free(p);
    return rc;
}

/* Starts round 1 once every site has joined: the configuration and DP plan
 * for the cohort (as the runtime's round_start), the TRAIN message and the
 * secure-aggregation server. */
static int round_start(srv *s, sl_err *err)
{
    run *r = s->r;
    /* The previous round's state goes (rounds > 1). */
    sl_secagg_server_free(s->agg);
    free(s->train_msg);
    free(s->keylist);
    free(s->unmask_req);
    s->agg = NULL;
    s->train_msg = s->keylist = s->unmask_req = NULL;
    for (uint32_t i = 0; i < r->n; i++)
        s->sites[i].step = 0;
    memset(r->t_fetch, 0, sizeof r->t_fetch);
    s->round++;
    s->t0 = s->t_mark = now();
    s->cpu0 = s->cpu_mark = cpu();
    int rc;
    memset(&s->dpp, 0, sizeof s->dpp);
    if ((rc = sl_secagg_config_default(&s->sa, r->n, r->words, 0.3, 32, err)))
        return rc;
    s->dpp.dim = r->dim;
    s->dpp.clip = 1;
    s->dpp.sigma = 1;
    s->dpp.threshold = s->sa.threshold;
    s->dpp.beta = SL_DP_DEFAULT_BETA;
    s->dpp.mode = SL_DP_DISTRIBUTED;
    s->dpp.bits = 32;
    randombytes_buf(s->dpp.rotation_seed, sizeof s->dpp.rotation_seed);
    if ((rc = sl_dp_choose_scale(&s->dpp, r->n, SL_DP_MAX_OVERFLOW_PROB, &s->dpp.scale, err)) ||
        (rc = sl_dp_plan_init(&r->plan, &s->dpp, err)) ||
        (rc = sl_secagg_config_check_dp(&s->sa, &r->plan, SL_DP_MAX_OVERFLOW_PROB, err)))
        return rc;
    uint32_t *ids = malloc(r->n * sizeof *ids);
    uint8_t(*pks)[32] = malloc(r->n * sizeof *pks);
    if (!ids || !pks) {
        free(ids);
        free(pks);
        return sl_err_set(err, SL_ENOMEM, "out of memory");
    }
    for (uint32_t i = 0; i < r->n; i++) {
        ids[i] = i + 1;
        memcpy(pks[i], s->sites[i].pk, 32);
    }
    sl_fed_train tr;
    train_fill(&tr, r, &s->dpp, &s->sa, ids);
    tr.global = s->global;
    rc = sl_fed_train_encode(s->round, &tr, &s->train_msg, &s->train_len, err);
    if (!rc)
        rc = sl_secagg_server_create(&s->agg, &s->sa, s->round, ids,
                                     (const uint8_t(*)[32])pks, r->n, err);
    free(ids);
    free(pks);
    if (!rc)
        s->phase = PH_TRAIN;
    return rc;
}

static int all_at(const srv *s, int step)
{
    for (uint32_t i = 0; i < s->r->n; i++)
        if (s->sites[i].step < step)
            return 0;
    return 1;
}

static void mark(srv *s, int ph)
{
    double t = now(), c = cpu();
    s->r->t_phase[ph] = t - s->t_mark;
    s->r->cpu_phase[ph] = c - s->cpu_mark;
    s->t_mark = t;
    s->cpu_mark = c;
}

/* Unmask, decode, FedAvg. */
static int round_finish(srv *s, sl_err *err)
{
    run *r = s->r;
    float *out = malloc((size_t)r->dim * sizeof *out);
    if (!out)
        return sl_err_set(err, SL_ENOMEM, "out of memory");
    double c = cpu();
    int rc = sl_secagg_server_finish(s->agg, r->sum, err);
    r->srv_finish_cpu = cpu() - c;
    c = cpu();
    if (!rc)
        rc = sl_dp_decode(&r->plan, r->sum, out, err);
    r->srv_decode_cpu = cpu() - c;
    if (rc) {
        free(out);
        return rc;
    }
    mark(s, 4);
    r->t_agg = now() - s->t0;
    r->srv_cpu = cpu() - s->cpu0;
    r->contributors = sl_secagg_server_contributors(s->agg, NULL, 0);
    sl_secagg_server_get_stats(s->agg, &r->st);
    double t = now();
    for (uint32_t j = 0; j < r->dim; j++)
        s->global[j] += out[j] / (float)r->contributors;
    r->t_update = now() - t;
    free(out);
    if (s->round == 1)
        r->srv_cpu_first = r->srv_cpu;
    if (s->round < r->rounds)
        return round_start(s, err); /* held POLLs get the next TRAIN */
    s->phase = PH_DONE;
    return 0;
}

static int advance(srv *s, sl_err *err)
{
    int rc = 0;
    switch (s->phase) {
    case PH_TRAIN:
        if (!all_at(s, 1))
            return 0;
        rc = sl_secagg_server_end_advertise(s->agg, &s->keylist, &s->keylist_len, err);
        break;
    case PH_SHARES:
        if (!all_at(s, 2))
            return 0;
        rc = sl_secagg_server_end_shares(s->agg, err);
        break;
    case PH_MASKED:
        if (!all_at(s, 3))
            return 0;
        rc = sl_secagg_server_end_masked(s->agg, &s->unmask_req, &s->unmask_len, err);
        break;
    case PH_UNMASK:
        if (!all_at(s, 4))
            return 0;
        if (!sl_secagg_server_ready(s->agg))
            return sl_err_set(err, SL_EABORT, "every site answered the unmasking but the "
                              "server cannot rebuild the secrets");
        mark(s, PH_UNMASK - 1);
        return round_finish(s, err);
    default:
        return 0;
    }
    if (!rc) {
        mark(s, s->phase - 1);
        s->phase++;
    }
    return rc;
}

static int on_join(srv *s, ssite *x, const char *peer, const sl_chan_request *q, sl_err *err)
{
    const uint8_t *der;
    size_t dl;
    sl_cert *c = NULL;
    sl_cert_info ci;
    int rc = sl_fed_join_decode(q->payload, q->len, &der, &dl, err);
    if (!rc)
        rc = sl_identity_cert_parse_der(der, dl, &c, err);
    if (!rc)
        rc = sl_identity_verify(s->trust, c, SL_IDENTITY_ROLE_SITE, 0, &ci, err);
    sl_identity_cert_free(c);
    if (!rc && strcmp(ci.name, peer) != 0)
        rc = sl_err_set(err, SL_ECRYPTO, "site '%s' joined with the certificate of '%s'", peer,
                        ci.name);
    if (rc)
        return rc;
    memcpy(x->pk, ci.pk, 32);
    x->joined = 1;
    sl_fed_join_ok j;
    memset(&j, 0, sizeof j);
    j.cert = s->cert_der;
    j.cert_len = s->cert_len;
    uint8_t *p;
    size_t n;
    rc = sl_fed_join_ok_encode(&j, &p, &n, err);
    if (!rc)
        rc = sl_chan_server_reply(s->ch, SL_WIRE_APP_FED_JOIN_OK, p, n, err);
    free(p);
    return rc;
}

static int poll_has_news(const srv *s, const ssite *x)
{
    return s->phase == PH_DONE ||
           (s->phase >= PH_TRAIN && s->phase <= PH_UNMASK && x->step == s->phase - 1);
}

/* The runtime's answer_poll: with nothing for the site the POLL is held
 * (long polling, r->wait_ms == 0) or answered WAIT wait_ms. */
static int answer_poll(srv *s, uint32_t i, int may_hold, sl_err *err)
{
    ssite *x = &s->sites[i];
    uint8_t *p;
    size_t n;
    int rc;
    if (!poll_has_news(s, x)) {
        if (may_hold && s->r->wait_ms == 0) {
            if ((rc = sl_chan_server_defer(s->ch, &x->held, err)))
                return rc;
            x->has_held = 1;
            x->held_until = now() + SL_FEDSERVER_HOLD_MS / 1000.0;
            return 0;
        }
        uint32_t ms = s->r->wait_ms == 0 && !may_hold ? 0 : s->r->wait_ms;
        if ((rc = sl_fed_u32_encode(ms, &p, &n, err)))
            return rc;
        rc = answer(s, SL_WIRE_APP_FED_WAIT, p, n, err);
        free(p);
        return rc;
    }
    if (s->phase == PH_DONE) {
        if ((rc = sl_fed_text_encode("bench round over", &p, &n, err)))
            return rc;
        rc = answer(s, SL_WIRE_APP_FED_DONE, p, n, err);
        free(p);
        return rc;
    }
    double lat = now() - s->t_mark;
    if (lat > s->r->t_fetch[s->phase - 1])
        s->r->t_fetch[s->phase - 1] = lat;
    if (s->phase == PH_TRAIN)
        return answer(s, SL_WIRE_APP_FED_TASK, s->train_msg, s->train_len, err);
    if (s->phase == PH_SHARES)
        return reply_task(s, SL_FED_TASK_KEYLIST, s->keylist, s->keylist_len, err);
    if (s->phase == PH_MASKED) {
        if ((rc = sl_secagg_server_deliver(s->agg, i + 1, &p, &n, err)))
            return rc;
        rc = reply_task(s, SL_FED_TASK_DELIVER, p, n, err);
        free(p);
        return rc;
    }
    return reply_task(s, SL_FED_TASK_UNMASK_REQ, s->unmask_req, s->unmask_len, err);
}

static int on_poll(srv *s, uint32_t i, sl_err *err)
{
    s->sites[i].has_held = 0;
    return answer_poll(s, i, 1, err);
}

/* The runtime's release_held: held POLLs with news, or held long enough. */
static int release_held(srv *s, sl_err *err)
{
    double t = now();
    for (uint32_t i = 0; i < s->r->n; i++) {
        ssite *x = &s->sites[i];
        if (!x->has_held || (t < x->held_until && !poll_has_news(s, x)))
            continue;
        x->has_held = 0;
        s->to = &x->held;
        int rc = answer_poll(s, i, 0, err);
        s->to = NULL;
        if (rc)
            return rc;
    }
    return 0;
}

static int on_submit(srv *s, uint32_t i, const sl_chan_request *q, sl_err *err)
{
    ssite *x = &s->sites[i];
    uint64_t round;
    const uint8_t *m;
    size_t ml;
    int rc = sl_fed_submit_decode(q->payload, q->len, &round, &m, &ml, err);
    if (rc)
        return rc;
    if (round != s->round || s->phase < PH_TRAIN || s->phase > PH_UNMASK ||
        x->step != s->phase - 1)
        return sl_err_set(err, SL_ESTATE, "site %u: submission for round %llu out of turn "
                          "(phase %d, step %d)", i + 1, (unsigned long long)round, s->phase,
                          x->step);
    switch (s->phase) {
    case PH_TRAIN: rc = sl_secagg_server_on_advertise(s->agg, i + 1, m, ml, err); break;
    case PH_SHARES: rc = sl_secagg_server_on_shares(s->agg, i + 1, m, ml, err); break;
    case PH_MASKED: rc = sl_secagg_server_on_masked(s->agg, i + 1, m, ml, err); break;
    default: rc = sl_secagg_server_on_unmask(s->agg, i + 1, m, ml, err); break;
    }
    if (rc)
        return rc;
    /* the runtime keeps it for the receipt */
    if (s->phase == PH_MASKED && (rc = sl_sha256(m, ml, x->input, err)))
        return rc;
    x->step = s->phase;
    return sl_chan_server_reply(s->ch, SL_WIRE_APP_FED_ACK, NULL, 0, err);
}

static int serve_one(srv *s, sl_err *err)
{
    sl_chan_request q;
    int rc = sl_chan_server_next(s->ch, SERVE_MS, &q, err);
    if (rc || !q.type)
        return rc;
    int i = peer_index(s, q.peer);
    if (i < 0)
        return sl_err_set(err, SL_EINVAL, "unknown peer '%s'", q.peer);
    if (q.type == SL_WIRE_APP_FED_JOIN)
        return on_join(s, &s->sites[i], q.peer, &q, err);
    if (!s->sites[i].joined)
        return sl_err_set(err, SL_ESTATE, "site '%s' did not join", q.peer);
    if (q.type == SL_WIRE_APP_FED_POLL)
        return on_poll(s, (uint32_t)i, err);
    if (q.type == SL_WIRE_APP_FED_SUBMIT)
        return on_submit(s, (uint32_t)i, &q, err);
    return sl_err_set(err, SL_EFORMAT, "site '%s': request type 0x%04x", q.peer, q.type);
}

static void *secure_server(void *arg)
{
    srv *s = arg;
    run *r = s->r;
    sl_err err = {0};
    while (!r->stop) {
        if (release_held(s, &err) || serve_one(s, &err))
            break;
        if (s->phase == PH_IDLE) {
            uint32_t k = 0;
            for (uint32_t i = 0; i < r->n; i++)
                k += (uint32_t)s->sites[i].joined;
            if (k == r->n) {
                if (round_start(s, &err))
                    break;
                open_round(r);
            }
        } else if (s->phase < PH_DONE && advance(s, &err)) {
            break;
        }
    }
    if (err.code)
        fail(r, "server", &err);
    return NULL;
}

/* ---- secure round: a site ------------------------------------------------------ */

typedef struct site_arg {
    run *r;
    uint32_t i;
} site_arg;

typedef struct csite {
    run *r;
    uint32_t i;
    sl_chan_client *ch;
    sl_trust *trust; /* the CA: checks the cohort's certificates */
    uint8_t *sk; /* sodium_malloc'd Ed25519 secret key */
    uint8_t pk[32];
    float *delta;
    uint32_t *x;
    sl_secagg_client *sa;
    sl_dp_rng rng;
    double cpu0;
    uint64_t round; /* the round it works on (0 before the first TRAIN) */
} csite;

static int submit(csite *c, const uint8_t *m, size_t ml, sl_err *err)
{
    uint8_t *p;
    size_t n;
    int rc = sl_fed_submit_encode(c->round, m, ml, &p, &n, err);
    if (rc)
        return rc;
    sl_chan_reply rep;
    rc = sl_chan_client_call(c->ch, SL_WIRE_APP_FED_SUBMIT, p, n, &rep, err);
    free(p);
    if (rc)
        return rc;
    if (rep.type != SL_WIRE_APP_FED_ACK)
        rc = sl_err_set(err, SL_EFORMAT, "submit: answer 0x%04x", rep.type);
    sl_chan_reply_free(&rep);
    return rc;
}

/* TRAIN as the agent handles it, training aside: decode, check the plan
 * and configuration, encode the update, advertise. */
static int on_train(csite *c, const uint8_t *body, size_t len, sl_err *err)
{
    run *r = c->r;
    site_stats *ss = &r->ss[c->i];
    sl_fed_train t;
    sl_dp_plan plan;
    int rc = sl_fed_train_decode(body, len, &t, err);
    if (rc)
        return rc;
    if ((rc = sl_fed_cohort_verify(&t, c->trust, err)))
        goto out;
    uint32_t me = 0;
    for (uint32_t k = 0; k < t.n_sites; k++)
        if (sodium_memcmp(t.pks[k], c->pk, 32) == 0)
            me = t.ids[k];
    if (!me)
        rc = sl_err_set(err, SL_EINVAL, "this site's key is not in the cohort");
    if (!rc)
        rc = sl_dp_plan_init(&plan, &t.dp, err);
    if (!rc)
        rc = sl_secagg_config_validate(&t.sa, err);
    if (!rc)
        rc = sl_secagg_config_check_dp(&t.sa, &plan, SL_DP_MAX_OVERFLOW_PROB, err);
    if (!rc && (t.dp.sigma <= 0 || t.dim != r->dim || plan.dim_padded != r->words))
        rc = sl_err_set(err, SL_EINVAL, "instructions: sigma %g, dim %u, words %u", t.dp.sigma,
                        t.dim, plan.dim_padded);
    if (rc)
        goto out;
    double c0 = cpu();
    if ((rc = sl_dp_encode(&plan, c->delta, c->x, &c->rng, NULL, err)))
        goto out;
    ss->cpu_dp = cpu() - c0;
    memcpy(r->inputs + (size_t)c->i * r->words, c->x, (size_t)r->words * 4);
    uint8_t *m;
    size_t ml;
    c0 = cpu();
    sl_secagg_client_free(c->sa);
    c->sa = NULL;
    rc = sl_secagg_client_create(&c->sa, &t.sa, c->round, me, c->sk, t.ids,
                                 (const uint8_t(*)[32])t.pks, t.n_sites, &c->rng, err);
    if (!rc)
        rc = sl_secagg_client_advertise(c->sa, &m, &ml, err);
    ss->cpu_sa += cpu() - c0;
    if (!rc) {
        rc = submit(c, m, ml, err);
        free(m);
    }
out:
    sl_fed_train_fini(&t);
    return rc;
}

static int on_step(csite *c, const sl_fed_task *t, int *last, sl_err *err)
{
    site_stats *ss = &c->r->ss[c->i];
    if (!c->sa)
        return sl_err_set(err, SL_ESTATE, "task kind %u before TRAIN", t->kind);
    uint8_t *m = NULL;
    size_t ml = 0;
    int rc;
    double c0 = cpu();
    if (t->kind == SL_FED_TASK_KEYLIST) {
        rc = sl_secagg_client_on_keylist(c->sa, t->body, t->len, &m, &ml, err);
        ss->cpu_sa += cpu() - c0;
    } else if (t->kind == SL_FED_TASK_DELIVER) {
        rc = sl_secagg_client_on_deliver(c->sa, t->body, t->len, c->x, &m, &ml, err);
        ss->cpu_mask = cpu() - c0;
    } else if (t->kind == SL_FED_TASK_UNMASK_REQ) {
        rc = sl_secagg_client_on_unmask_request(c->sa, t->body, t->len, &m, &ml, err);
        ss->cpu_sa += cpu() - c0;
        *last = 1;
    } else {
        rc = sl_err_set(err, SL_EFORMAT, "task kind %u", t->kind);
    }
    if (!rc)
        rc = submit(c, m, ml, err);
    free(m);
    return rc;
}

static int site_join(csite *c, const char *crt, sl_err *err)
{
    sl_cert *cert = NULL;
    uint8_t *der = NULL, *p = NULL;
    size_t dl = 0, n = 0;
    sl_chan_reply rep;
    int rc = sl_identity_cert_read(crt, &cert, err);
    if (!rc)
        rc = sl_identity_cert_der(cert, &der, &dl, err);
    sl_identity_cert_free(cert);
    if (!rc)
        rc = sl_fed_join_encode(der, dl, &p, &n, err);
    free(der);
    if (!rc)
        rc = sl_chan_client_call(c->ch, SL_WIRE_APP_FED_JOIN, p, n, &rep, err);
    free(p);
    if (rc)
        return rc;
    sl_fed_join_ok j;
    if (rep.type != SL_WIRE_APP_FED_JOIN_OK)
        rc = sl_err_set(err, SL_EFORMAT, "join: answer 0x%04x", rep.type);
    else
        rc = sl_fed_join_ok_decode(rep.payload, rep.len, &j, err);
    sl_chan_reply_free(&rep);
    return rc;
}

static int secure_site_run(csite *c, sl_err *err)
{
    run *r = c->r;
    site_stats *ss = &r->ss[c->i];
    char crt[PMAX], key[PMAX];
    site_path(r->cr, c->i, "crt", crt);
    site_path(r->cr, c->i, "key", key);
    sl_chan_client_cfg cc;
    memset(&cc, 0, sizeof cc);
    snprintf(cc.server, sizeof cc.server, "127.0.0.1:%d", r->port);
    site_name(c->i, cc.name);
    snprintf(cc.cert, sizeof cc.cert, "%s", crt);
    snprintf(cc.key, sizeof cc.key, "%s", key);
    snprintf(cc.ca, sizeof cc.ca, "%s", r->cr->ca);
    cc.timeout_ms = CALL_TIMEOUT_MS;
    cc.log = quiet;
    int rc;
    if (!(c->sk = sodium_malloc(SL_IDENTITY_SK_BYTES)))
        return sl_err_set(err, SL_ENOMEM, "out of locked memory");
    if ((rc = sl_identity_load_secret(key, c->sk, err)))
        return rc;
    memcpy(c->pk, c->sk + 32, 32);
    if ((rc = sl_identity_trust_load(r->cr->ca, NULL, &c->trust, err)) ||
        (rc = sl_chan_client_create(&cc, &c->ch, err)) ||
        (rc = sl_chan_client_connect(c->ch, err)) || (rc = site_join(c, crt, err)))
        return rc;
    await_open(r);
    int last = 0;
    while (!r->stop) {
        uint8_t *p;
        size_t n;
        sl_chan_reply rep;
        if ((rc = sl_fed_poll_encode(c->round, 0, &p, &n, err)))
            return rc;
        rc = sl_chan_client_call(c->ch, SL_WIRE_APP_FED_POLL, p, n, &rep, err);
        free(p);
        if (rc)
            return rc;
        if (c->round)
            ss->polls++;
        int done = 0;
        if (rep.type == SL_WIRE_APP_FED_WAIT) {
            uint32_t ms;
            if (!(rc = sl_fed_u32_decode(rep.payload, rep.len, &ms, err)))
                usleep((useconds_t)(ms > 5000 ? 5000 : ms) * 1000u);
        } else if (rep.type == SL_WIRE_APP_FED_DONE) {
            done = 1;
        } else if (rep.type == SL_WIRE_APP_FED_TASK) {
            sl_fed_task t;
            if (!(rc = sl_fed_task_decode(rep.payload, rep.len, &t, err))) {
                if (t.kind == SL_FED_TASK_TRAIN && t.round > c->round) {
                    /* A new round: its figures replace the last one's. */
                    if (c->round == 1)
                        ss->cpu_first = ss->cpu_total;
                    c->round = t.round;
                    c->cpu0 = cpu();
                    ss->polls = 1;
                    ss->cpu_sa = 0;
                    last = 0;
                    rc = on_train(c, t.body, t.len, err);
                } else {
                    rc = on_step(c, &t, &last, err);
                    if (!rc && last)
                        ss->cpu_total = cpu() - c->cpu0;
                }
            }
        } else {
            rc = sl_err_set(err, SL_EFORMAT, "poll: answer 0x%04x", rep.type);
        }
        sl_chan_reply_free(&rep);
        if (rc || done)
            break;
    }
    if (!rc)
        rc = sl_chan_client_close(c->ch, err);
    return rc;
}

/* Starts the N site threads, waits for them all (a site that cannot be
 * started fails the run), then tells the server to stop serving. */
static void run_sites(run *r, pthread_t *th, site_arg *args, void *(*fn)(void *))
{
    uint32_t started = 0;
    for (; started < r->n; started++) {
        args[started].r = r;
        args[started].i = started;
        if (pthread_create(&th[started], NULL, fn, &args[started])) {
            fail(r, "bench", NULL);
            break;
        }
    }
    for (uint32_t i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    /* Every site has closed its session (or failed): stop serving. */
    r->stop = 1;
}

static void *secure_site(void *arg)
{
    site_arg *a = arg;
    csite c;
    memset(&c, 0, sizeof c);
    c.r = a->r;
    c.i = a->i;
    sl_err err = {0};
    sl_dp_rng_init_system(&c.rng);
    c.delta = malloc((size_t)a->r->dim * sizeof *c.delta);
    c.x = malloc((size_t)a->r->words * 4);
    if (!c.delta || !c.x)
        sl_err_set(&err, SL_ENOMEM, "out of memory");
    else {
        site_delta(a->i, c.delta, a->r->dim);
        secure_site_run(&c, &err);
    }
    if (err.code) {
        char who[32];
        snprintf(who, sizeof who, "site %u", a->i + 1);
        fail(a->r, who, &err);
    }
    sl_secagg_client_free(c.sa);
    sl_chan_client_free(c.ch);
    sl_identity_trust_free(c.trust);
    sl_dp_rng_fini(&c.rng);
    if (c.sk)
        sodium_free(c.sk);
    free(c.delta);
    free(c.x);
    return NULL;
}

static int secure_round(run *r, sl_err *err)
{
    srv s;
    memset(&s, 0, sizeof s);
    s.r = r;
    sl_chan_server_cfg sc;
    memset(&sc, 0, sizeof sc);
    int port = free_port(err);
    if (port < 0)
        return port;
    r->port = port;
    snprintf(sc.listen, sizeof sc.listen, "127.0.0.1:%d", port);
    snprintf(sc.cert, sizeof sc.cert, "%s", r->cr->srv_crt);
    snprintf(sc.key, sizeof sc.key, "%s", r->cr->srv_key);
    snprintf(sc.ca, sizeof sc.ca, "%s", r->cr->ca);
    snprintf(sc.crl, sizeof sc.crl, "%s", r->cr->crl);
    sc.max_sessions = r->n + 16;
    sc.log = quiet;
    sl_cert *cert = NULL;
    pthread_t *th = calloc(r->n, sizeof *th);
    site_arg *args = calloc(r->n, sizeof *args);
    s.sites = calloc(r->n, sizeof *s.sites);
    s.global = malloc((size_t)r->dim * sizeof *s.global);
    int rc = 0;
    if (!th || !args || !s.sites || !s.global) {
        rc = sl_err_set(err, SL_ENOMEM, "out of memory");
        goto out;
    }
    memcpy(s.global, r->global0, (size_t)r->dim * sizeof *s.global);
    if ((rc = sl_identity_cert_read(r->cr->srv_crt, &cert, err)) ||
        (rc = sl_identity_cert_der(cert, &s.cert_der, &s.cert_len, err)) ||
        (rc = sl_identity_trust_load(r->cr->ca, r->cr->crl, &s.trust, err)) ||
        (rc = sl_chan_server_create(&sc, &s.ch, err)) || (rc = sl_chan_server_listen(s.ch, err)))
        goto out;
    pthread_t server;
    if (pthread_create(&server, NULL, secure_server, &s)) {
        rc = sl_err_set(err, SL_EIO, "cannot start the server thread");
        goto out;
    }
    pthread_setname_np(server, "round-server"); /* for perf --comm */
    run_sites(r, th, args, secure_site);
    pthread_join(server, NULL);
    if (failed(r))
        rc = sl_err_set(err, SL_EABORT, "%s", r->why);
    else if (s.phase != PH_DONE)
        rc = sl_err_set(err, SL_EABORT, "the round did not complete");
out:
    sl_identity_cert_free(cert);
    sl_secagg_server_free(s.agg);
    sl_chan_server_free(s.ch);
    sl_identity_trust_free(s.trust);
    free(s.cert_der);
    free(s.train_msg);
    free(s.keylist);
    free(s.unmask_req);
    free(s.sites);
    free(s.global);
    free(th);
    free(args);
    return rc;
}

/* ---- plain round ------------------------------------------------------------------ */

/* Plain frames: u16 type (SL_WIRE_APP_FED_*) | u32 site | payload. JOIN,
 * POLL (u64 round) and SUBMIT (u64 round, dim x f32) from sites; WAIT (u32
 * ms), TASK (the TRAIN message), DONE and ACK from the server. */

static int plain_frame(uint16_t type, uint32_t site, uint64_t round, const float *v, uint32_t n,
                       uint8_t **out, size_t *len, sl_err *err)
{
    sl_writer w;
    sl_writer_init(&w, SL_WIRE_MAX_FRAME);
    sl_writer_u16le(&w, type);
    sl_writer_u32le(&w, site);
    sl_writer_u64le(&w, round);
    for (uint32_t j = 0; v && j < n; j++) {
        uint32_t b;
        memcpy(&b, &v[j], 4);
        sl_writer_u32le(&w, b);
    }
    if (!sl_writer_ok(&w)) {
        sl_writer_fini(&w);
        return sl_err_set(err, SL_ELIMIT, "plain frame of %u floats too large", n);
    }
    *out = sl_writer_take(&w, len);
    return 0;
}

typedef struct psrv {
    run *r;
    sl_transport *t;
    int *joined, *submitted;
    uint32_t njoined, nsubmitted;
    int phase; /* PH_IDLE, PH_TRAIN (open), PH_DONE */
    double t0, cpu0;
    float *sum, *global;
    uint8_t *train_msg;
    size_t train_len;
    sl_dp_params dp;
    sl_secagg_config sa;
} psrv;

static int plain_reply(psrv *s, const sl_transport_msg *m, uint16_t type, const void *p,
                       size_t n, sl_err *err)
{
    uint8_t *buf = malloc(2 + n);
    if (!buf)
        return sl_err_set(err, SL_ENOMEM, "out of memory");
    buf[0] = (uint8_t)(type & 0xff);
    buf[1] = (uint8_t)(type >> 8);
    if (n)
        memcpy(buf + 2, p, n);
    int rc = sl_transport_reply(s->t, m, buf, 2 + n, err);
    free(buf);
    return rc;
}

static int plain_serve(psrv *s, sl_err *err)
{
    run *r = s->r;
    sl_transport_msg m;
    int rc = sl_transport_recv(s->t, SERVE_MS, &m, err);
    if (rc || !m.data)
        return rc;
    sl_reader rd;
    sl_reader_init(&rd, m.data, m.len);
    uint16_t type = sl_reader_u16le(&rd);
    uint32_t site = sl_reader_u32le(&rd);
    uint64_t round = sl_reader_u64le(&rd);
    if (!sl_reader_ok(&rd) || site >= r->n) {
        rc = sl_err_set(err, SL_EFORMAT, "plain request of %zu bytes, site %u", m.len, site);
        goto out;
    }
    if (type == SL_WIRE_APP_FED_JOIN) {
        if (!s->joined[site]++)
            s->njoined++;
        rc = plain_reply(s, &m, SL_WIRE_APP_FED_ACK, NULL, 0, err);
    } else if (type == SL_WIRE_APP_FED_POLL) {
        if (s->phase == PH_DONE) {
            rc = plain_reply(s, &m, SL_WIRE_APP_FED_DONE, NULL, 0, err);
        } else if (s->phase == PH_TRAIN && !s->submitted[site]) {
            rc = plain_reply(s, &m, SL_WIRE_APP_FED_TASK, s->train_msg, s->train_len, err);
        } else {
            uint32_t w = r->wait_ms ? r->wait_ms : SL_FEDSERVER_WAIT_MS;
            uint8_t ms[4] = {(uint8_t)w, (uint8_t)(w >> 8), (uint8_t)(w >> 16),
                             (uint8_t)(w >> 24)};
            rc = plain_reply(s, &m, SL_WIRE_APP_FED_WAIT, ms, 4, err);
        }
    } else if (type == SL_WIRE_APP_FED_SUBMIT) {
        if (s->phase != PH_TRAIN || round != 1 || s->submitted[site] ||
            sl_reader_remaining(&rd) != (size_t)r->dim * 4) {
            rc = sl_err_set(err, SL_EFORMAT, "plain submission from site %u: round %llu, %zu "
                            "bytes", site + 1, (unsigned long long)round,
                            sl_reader_remaining(&rd));
            goto out;
        }
        for (uint32_t j = 0; j < r->dim; j++) {
            uint32_t b = sl_reader_u32le(&rd);
            float f;
            memcpy(&f, &b, 4);
            s->sum[j] += f;
        }
        if ((rc = sl_reader_finish(&rd, err, "plain submission")))
            goto out;
        s->submitted[site] = 1;
        if (++s->nsubmitted == r->n) {
            r->t_agg = now() - s->t0;
            r->srv_cpu = cpu() - s->cpu0;
            double t = now();
            for (uint32_t j = 0; j < r->dim; j++)
                s->global[j] += s->sum[j] / (float)r->n;
            r->t_update = now() - t;
            s->phase = PH_DONE;
        }
        rc = plain_reply(s, &m, SL_WIRE_APP_FED_ACK, NULL, 0, err);
    } else {
        rc = sl_err_set(err, SL_EFORMAT, "plain request type 0x%04x", type);
    }
out:
    sl_transport_msg_free(&m);
    return rc;
}

static void *plain_server(void *arg)
{
    psrv *s = arg;
    run *r = s->r;
    sl_err err = {0};
    while (!r->stop) {
        if (plain_serve(s, &err))
            break;
        if (s->phase == PH_IDLE && s->njoined == r->n) {
            s->t0 = now();
            s->cpu0 = cpu();
            sl_fed_train tr;
            uint32_t *ids = calloc(r->n, sizeof *ids);
            if (!ids) {
                sl_err_set(&err, SL_ENOMEM, "out of memory");
            } else {
                for (uint32_t i = 0; i < r->n; i++)
                    ids[i] = i + 1;
                train_fill(&tr, r, &s->dp, &s->sa, ids);
                tr.global = s->global;
                sl_fed_train_encode(1, &tr, &s->train_msg, &s->train_len, &err);
            }
            free(ids);
            if (err.code)
                break;
            s->phase = PH_TRAIN;
            open_round(r);
        }
    }
    if (err.code)
        fail(r, "plain server", &err);
    return NULL;
}

static int plain_call(sl_transport *t, const uint8_t *p, size_t n, sl_transport_msg *m,
                      uint16_t *type, sl_err *err)
{
    int rc = sl_transport_send(t, p, n, err);
    if (!rc)
        rc = sl_transport_recv(t, CALL_TIMEOUT_MS, m, err);
    if (!rc && !m->data)
        rc = sl_err_set(err, SL_EIO, "plain server: no answer in %d ms", CALL_TIMEOUT_MS);
    if (!rc && m->len < 2) {
        sl_transport_msg_free(m);
        rc = sl_err_set(err, SL_EFORMAT, "plain answer of %zu bytes", m->len);
    }
    if (!rc)
        *type = (uint16_t)(m->data[0] | m->data[1] << 8);
    return rc;
}

static int plain_site_run(run *r, uint32_t i, sl_transport **tp, sl_err *err)
{
    site_stats *ss = &r->ss[i];
    float *delta = malloc((size_t)r->dim * sizeof *delta);
    uint8_t *p = NULL;
    size_t n;
    sl_transport_msg m;
    uint16_t type;
    char addr[64];
    int rc = 0, started = 0;
    if (!delta)
        return sl_err_set(err, SL_ENOMEM, "out of memory");
    site_delta(i, delta, r->dim);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", r->port);
    sl_transport_opts o = {.max_msg = SL_WIRE_MAX_FRAME, .sockbuf_bytes = 1 << 20};
    if ((rc = sl_transport_connect(addr, &o, tp, err)) ||
        (rc = plain_frame(SL_WIRE_APP_FED_JOIN, i, 0, NULL, 0, &p, &n, err)) ||
        (rc = plain_call(*tp, p, n, &m, &type, err)))
        goto out;
    sl_transport_msg_free(&m);
    await_open(r);
    while (!r->stop) {
        free(p);
        p = NULL;
        if ((rc = plain_frame(SL_WIRE_APP_FED_POLL, i, (uint64_t)started, NULL, 0, &p, &n, err)) ||
            (rc = plain_call(*tp, p, n, &m, &type, err)))
            break;
        if (started)
            ss->polls++;
        int done = 0;
        if (type == SL_WIRE_APP_FED_WAIT && m.len == 6) {
            uint32_t ms = (uint32_t)m.data[2] | (uint32_t)m.data[3] << 8 |
                          (uint32_t)m.data[4] << 16 | (uint32_t)m.data[5] << 24;
            usleep((useconds_t)(ms > 5000 ? 5000 : ms) * 1000u);
        } else if (type == SL_WIRE_APP_FED_DONE) {
            done = 1;
        } else if (type == SL_WIRE_APP_FED_TASK && !started) {
            started = 1;
            ss->polls = 1;
            double c0 = cpu();
            sl_fed_task t;
            sl_fed_train tr;
            memset(&tr, 0, sizeof tr);
            if (!(rc = sl_fed_task_decode(m.data + 2, m.len - 2, &t, err)))
                rc = sl_fed_train_decode(t.body, t.len, &tr, err);
            if (!rc && tr.dim != r->dim)
                rc = sl_err_set(err, SL_EINVAL, "plain task: dim %u", tr.dim);
            sl_fed_train_fini(&tr);
            free(p);
            p = NULL;
            sl_transport_msg_free(&m);
            if (!rc)
                rc = plain_frame(SL_WIRE_APP_FED_SUBMIT, i, 1, delta, r->dim, &p, &n, err);
            if (!rc)
                rc = plain_call(*tp, p, n, &m, &type, err);
            if (!rc && type != SL_WIRE_APP_FED_ACK)
                rc = sl_err_set(err, SL_EFORMAT, "plain submit: answer 0x%04x", type);
            ss->cpu_total = cpu() - c0;
        } else {
            rc = sl_err_set(err, SL_EFORMAT, "plain poll: answer 0x%04x, %zu bytes", type,
                            m.len);
        }
        sl_transport_msg_free(&m);
        if (rc || done)
            break;
    }
out:
    free(p);
    free(delta);
    return rc;
}

static void *plain_site(void *arg)
{
    site_arg *a = arg;
    sl_err err = {0};
    sl_transport *t = NULL;
    if (plain_site_run(a->r, a->i, &t, &err)) {
        char who[32];
        snprintf(who, sizeof who, "plain site %u", a->i + 1);
        fail(a->r, who, &err);
    }
    sl_transport_close(t);
    return NULL;
}

static int plain_round(run *r, const sl_dp_params *dp, const sl_secagg_config *sa, sl_err *err)
{
    psrv s;
    memset(&s, 0, sizeof s);
    s.r = r;
    s.dp = *dp;
    s.sa = *sa;
    int port = free_port(err);
    if (port < 0)
        return port;
    r->port = port;
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    pthread_t *th = calloc(r->n, sizeof *th);
    site_arg *args = calloc(r->n, sizeof *args);
    s.joined = calloc(r->n, sizeof *s.joined);
    s.submitted = calloc(r->n, sizeof *s.submitted);
    s.sum = calloc(r->dim, sizeof *s.sum);
    s.global = malloc((size_t)r->dim * sizeof *s.global);
    int rc = 0;
    if (!th || !args || !s.joined || !s.submitted || !s.sum || !s.global) {
        rc = sl_err_set(err, SL_ENOMEM, "out of memory");
        goto out;
    }
    memcpy(s.global, r->global0, (size_t)r->dim * sizeof *s.global);
    sl_transport_opts o = {.max_msg = SL_WIRE_MAX_FRAME, .sockbuf_bytes = 1 << 20};
    if ((rc = sl_transport_listen(addr, &o, &s.t, err)))
        goto out;
    pthread_t server;
    if (pthread_create(&server, NULL, plain_server, &s)) {
        rc = sl_err_set(err, SL_EIO, "cannot start the server thread");
        goto out;
    }
    run_sites(r, th, args, plain_site);
    pthread_join(server, NULL);
    if (failed(r))
        rc = sl_err_set(err, SL_EABORT, "%s", r->why);
    else if (s.phase != PH_DONE)
        rc = sl_err_set(err, SL_EABORT, "the plain round did not complete");
out:
    sl_transport_close(s.t);
    free(s.train_msg);
    free(s.joined);
    free(s.submitted);
    free(s.sum);
    free(s.global);
    free(th);
    free(args);
    return rc;
}

/* ---- local training ------------------------------------------------------------- */

static int train_time(int steps, double *secs, uint32_t *dim, sl_err *err)
{
    sl_gpt2_config cfg;
    memset(&cfg, 0, sizeof cfg);
    sl_hfconfig_default(&cfg);
    cfg.n_layer = 6;
    cfg.n_embd = 768;
    cfg.n_head = 12;
    cfg.n_positions = 128;
    cfg.vocab_size = 8192;
    cfg.bos_token_id = cfg.eos_token_id = 8191;
    sl_gpt2 *m = NULL;
    sl_lora *l = NULL;
    sl_trainer *tr = NULL;
    int32_t *in = NULL, *tg = NULL;
    int layers[] = {0, 1, 4, 5};
    int rc = sl_gpt2_create(&m, &cfg, err);
    if (rc)
        return rc;
    sl_gpt2_init_random(m, 7);
    if ((rc = sl_lora_create(&l, m, 8, 16, SL_LORA_C_ATTN | SL_LORA_C_PROJ, layers, 4, 1, err)))
        goto out;
    *dim = (uint32_t)l->nparams;
    sl_train_cfg tc;
    sl_train_cfg_init(&tc);
    tc.B = 4;
    tc.T = 128;
    tc.steps = steps + 1;
    tc.warmup = 0;
    if ((rc = sl_trainer_create(&tr, m, l, NULL, &tc, err)))
        goto out;
    in = malloc(4 * 128 * sizeof *in);
    tg = malloc(4 * 128 * sizeof *tg);
    if (!in || !tg) {
        rc = sl_err_set(err, SL_ENOMEM, "out of memory");
        goto out;
    }
    for (int i = 0; i < 4 * 128; i++) {
        in[i] = (int32_t)((i * 2654435761u) % 8192u);
        tg[i] = (int32_t)((i * 40503u + 7) % 8192u);
    }
    sl_train_stats st;
    if ((rc = sl_trainer_step_batch(tr, in, tg, &st, err))) /* warm-up */
        goto out;
    double t = now();
    for (int s = 0; s < steps; s++)
        if ((rc = sl_trainer_step_batch(tr, in, tg, &st, err)))
            goto out;
    *secs = now() - t;
out:
    free(in);
    free(tg);
    sl_trainer_free(tr);
    sl_lora_free(l);
    sl_gpt2_free(m);
    return rc;
}

/* ---- one cohort size --------------------------------------------------------- */

static void run_init(run *r, const creds *cr, uint32_t n, uint32_t dim, uint32_t words,
                     int steps, uint32_t wait_ms, const float *global0, int secure)
{
    memset(r, 0, sizeof *r);
    r->rounds = 1;
    r->cr = cr;
    r->n = n;
    r->dim = dim;
    r->words = words;
    r->steps = steps;
    r->wait_ms = wait_ms;
    r->global0 = global0;
    r->secure = secure;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->opened, NULL);
}

static double site_max(const run *r, size_t off, uint32_t *who)
{
    double m = 0;
    for (uint32_t i = 0; i < r->n; i++) {
        double v = *(const double *)((const char *)&r->ss[i] + off);
        if (v > m) {
            m = v;
            if (who)
                *who = i;
        }
    }
    return m;
}

static double site_mean(const run *r, size_t off)
{
    double s = 0;
    for (uint32_t i = 0; i < r->n; i++)
        s += *(const double *)((const char *)&r->ss[i] + off);
    return s / r->n;
}

static int one(const creds *cr, uint32_t n, uint32_t dim, double t_train, int steps,
               uint32_t wait_ms, uint32_t rounds)
{
    sl_err err = {0};
    uint32_t block, words = sl_dp_layout(dim, &block); /* the DP plan's padded length */
    float *global0 = malloc((size_t)dim * sizeof *global0);
    uint32_t *inputs = malloc((size_t)n * words * 4);
    uint32_t *sum = malloc((size_t)words * 4), *ref = calloc(words, 4);
    site_stats *ss_sec = calloc(n, sizeof *ss_sec), *ss_pl = calloc(n, sizeof *ss_pl);
    int rc = 1;
    run sec, pl;
    run_init(&sec, cr, n, dim, words, steps, wait_ms, global0, 1);
    sec.rounds = rounds;
    run_init(&pl, cr, n, dim, words, steps, wait_ms, global0, 0);
    if (!global0 || !inputs || !sum || !ref || !ss_sec || !ss_pl) {
        fprintf(stderr, "round: out of memory for %u sites\n", n);
        goto out;
    }
    for (uint32_t j = 0; j < dim; j++)
        global0[j] = (float)((j * 2654435761u) % 2001u / 1000.0 - 1.0) * 0.05f;
    sec.inputs = inputs;
    sec.sum = sum;
    sec.ss = ss_sec;
    pl.ss = ss_pl;
    if (secure_round(&sec, &err)) {
        fprintf(stderr, "round: %u sites, secure round: %s\n", n, err.msg);
        goto out;
    }
    sl_secagg_config sa;
    if (sl_secagg_config_default(&sa, n, words, 0.3, 32, &err) ||
        plain_round(&pl, &sec.plan.p, &sa, &err)) {
        fprintf(stderr, "round: %u sites, plain round: %s\n", n, err.msg);
        goto out;
    }
    /* Exactness: the unmasked sum against the plain modular sum of the
     * encoded inputs, and both decoded. */
    for (uint32_t i = 0; i < n; i++)
        for (uint32_t j = 0; j < words; j++)
            ref[j] += inputs[(size_t)i * words + j];
    uint32_t bad = 0;
    for (uint32_t j = 0; j < words; j++)
        bad += sum[j] != ref[j];
    float *d1 = malloc((size_t)dim * sizeof *d1), *d2 = malloc((size_t)dim * sizeof *d2);
    int dec_same = d1 && d2 && !sl_dp_decode(&sec.plan, sum, d1, &err) &&
                   !sl_dp_decode(&sec.plan, ref, d2, &err) &&
                   memcmp(d1, d2, (size_t)dim * sizeof *d1) == 0;
    free(d1);
    free(d2);

    uint32_t slow = 0;
    double s_cpu = site_max(&sec, offsetof(site_stats, cpu_total), &slow);
    double p_cpu = site_max(&pl, offsetof(site_stats, cpu_total), NULL);
    double sec_total = t_train + sec.t_agg + sec.t_update;
    double pl_total = t_train + pl.t_agg + pl.t_update;
    double sec_cp = s_cpu + sec.srv_cpu, pl_cp = p_cpu + pl.srv_cpu;
    double cp_sec_total = t_train + sec_cp + sec.t_update;
    double cp_pl_total = t_train + pl_cp + pl.t_update;
    double polls = 0;
    for (uint32_t i = 0; i < n; i++)
        polls += sec.ss[i].polls;
    if (wait_ms == 0)
        printf("%u sites (threshold %u, degree %u; long polling: a POLL with nothing for its site "
               "is held up to %u ms and answered when the phase changes)\n", n,
               sec.plan.p.threshold, sec.st.degree, SL_FEDSERVER_HOLD_MS);
    else
        printf("%u sites (threshold %u, degree %u; polls with nothing for their site answered "
               "WAIT %u ms)\n", n, sec.plan.p.threshold, sec.st.degree, wait_ms);
    printf("  local training (one site's: sites train in parallel) %8.3f s  (%d steps)\n",
           t_train, steps);
    printf("  secure aggregation + DP, loopback wall                %8.3f s\n", sec.t_agg);
    for (int p = 0; p < NPHASES - 1; p++)
        printf("    %-36s %8.3f s  (the last site fetched its message after %.3f s; server "
               "CPU %.3f s)\n", phase_label[p], sec.t_phase[p], sec.t_fetch[p],
               sec.cpu_phase[p]);
    printf("    %-36s %8.3f s  (server CPU %.3f s)\n", phase_label[NPHASES - 1],
           sec.t_phase[NPHASES - 1], sec.cpu_phase[NPHASES - 1]);
    printf("  server update (FedAvg)                                %8.5f s\n", sec.t_update);
    printf("  round total, secure (loopback)                        %8.3f s\n", sec_total);
    printf("  round total, plain (loopback; plain aggregation %.3f s, update %.5f s) %8.3f s\n",
           pl.t_agg, pl.t_update, pl_total);
    printf("  overhead of security and privacy, loopback            %7.1f%%\n",
           100 * (sec_total - pl_total) / pl_total);
    printf("  per-site critical path: slowest site CPU %.3f s (site %u; mean over sites: DP "
           "encode %.3f, masking %.3f, other secagg %.3f, total %.3f) + server CPU %.3f s "
           "(unmask %.3f, decode %.3f) = %.3f s; plain: site %.4f + server %.4f = %.4f s\n",
           s_cpu, slow + 1, site_mean(&sec, offsetof(site_stats, cpu_dp)),
           site_mean(&sec, offsetof(site_stats, cpu_mask)),
           site_mean(&sec, offsetof(site_stats, cpu_sa)),
           site_mean(&sec, offsetof(site_stats, cpu_total)), sec.srv_cpu, sec.srv_finish_cpu,
           sec.srv_decode_cpu, sec_cp, p_cpu, pl.srv_cpu, pl_cp);
    printf("  overhead of security and privacy, per-site critical path %4.1f%%\n",
           100 * (cp_sec_total - cp_pl_total) / cp_pl_total);
    if (rounds > 1) {
        double f_site = site_max(&sec, offsetof(site_stats, cpu_first), NULL);
        double f_total = t_train + f_site + sec.srv_cpu_first + sec.t_update;
        printf("  (the figures are round %u of %u in a row; the first round: slowest site CPU "
               "%.3f s + server CPU %.3f s, overhead %4.1f%%)\n", rounds, rounds, f_site,
               sec.srv_cpu_first, 100 * (f_total - cp_pl_total) / cp_pl_total);
    }
    /* A phase's message waits for each site's next poll (WAIT_MS apart);
     * the plain round has no phase change after the round opens. */
    double t_poll = sec.t_fetch[1] + sec.t_fetch[2] + sec.t_fetch[3];
    printf("  polling delay of the shares, masked and unmasking phases %.3f s; critical path + "
           "polling delay: overhead %4.1f%%\n", t_poll,
           100 * (cp_sec_total + t_poll - cp_pl_total) / cp_pl_total);
    printf("  secure-aggregation traffic at the server: %.1f MiB in, %.1f MiB out; %.1f polls "
           "per site in the round\n", (double)sec.st.bytes_in / (1 << 20),
           (double)sec.st.bytes_out / (1 << 20), polls / n);
    printf("  exactness: unmasked sum %s the sum of the %u encoded inputs mod 2^32 (%u of %u "
           "words differ); decoded: %s\n", bad ? "DIFFERS FROM" : "equals", sec.contributors,
           bad, words, dec_same ? "identical" : "DIFFERENT");
    fflush(stdout);
    rc = bad || !dec_same;
out:
    pthread_mutex_destroy(&sec.mu);
    pthread_mutex_destroy(&pl.mu);
    pthread_cond_destroy(&sec.opened);
    pthread_cond_destroy(&pl.opened);
    free(global0);
    free(inputs);
    free(sum);
    free(ref);
    free(ss_sec);
    free(ss_pl);
    return rc;
}

int main(int argc, char **argv)
{
    if (sodium_init() < 0)
        return 1;
    signal(SIGPIPE, SIG_IGN);
    uint32_t n_one = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 10) : 0;
    int steps = argc > 2 ? atoi(argv[2]) : 4;
    long wait = argc > 3 ? strtol(argv[3], NULL, 10) : 0;
    long rounds = argc > 4 ? strtol(argv[4], NULL, 10) : 1;
    if ((argc > 1 && (n_one < 2 || n_one > MAX_SITES)) || steps < 1 || wait < 0 ||
        wait > 5000 || rounds < 1 || rounds > 20) {
        fprintf(stderr, "usage: round [N (2..%u) [STEPS (>= 1) [WAIT_MS (0..5000) [ROUNDS "
                "(1..20)]]]]\n"
                "WAIT_MS 0 (default): long polling as server/fedserver.c; above 0: polls with "
                "nothing for their site are answered WAIT_MS at once (the older policy)\n"
                "ROUNDS: secure rounds in a row with the same server and sites (default 1); "
                "the figures are the last round's\n",
                MAX_SITES);
        return 2;
    }
    sl_err err = {0};
    double t_train = 0;
    uint32_t dim = 0;
    if (train_time(steps, &t_train, &dim, &err)) {
        fprintf(stderr, "round: local training: %s\n", err.msg);
        return 1;
    }
    printf("adapter: %u floats (GPT-2 small width, rank 8 on c_attn + c_proj of 4 blocks); "
           "local training B 4 x T 128 on a 6-block emulator, one site\n", dim);
    static const uint32_t ns[] = {3, 10, 50};
    uint32_t maxn = n_one ? n_one : 50;
    creds cr;
    if (creds_make(&cr, maxn, &err)) {
        fprintf(stderr, "round: credentials: %s\n", err.msg);
        creds_remove(&cr);
        return 1;
    }
    int rc = 0;
    if (n_one)
        rc = one(&cr, n_one, dim, t_train, steps, (uint32_t)wait, (uint32_t)rounds);
    for (size_t i = 0; !n_one && !rc && i < 3; i++)
        rc = one(&cr, ns[i], dim, t_train, steps, (uint32_t)wait, 1);
    creds_remove(&cr);
    return rc;
}
