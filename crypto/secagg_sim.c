#include "crypto/secagg_sim.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto/dp_rng.h"
#include "crypto/secagg_client.h"
#include "crypto/secagg_server.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Site i's input: from the callback, given, or a stream keyed by (seed, i). */
static int input_of(const sl_secagg_sim_opts *o, uint32_t i, uint8_t *out, size_t bytes,
                    sl_err *err)
{
    if (o->input)
        return o->input(o->input_ctx, i, out, err);
    if (o->inputs) {
        memcpy(out, (const uint8_t *)o->inputs + (size_t)i * bytes, bytes);
        return 0;
    }
    uint8_t key[32], in[16];
    for (int b = 0; b < 8; b++) {
        in[b] = (uint8_t)(o->seed >> (8 * b));
        in[8 + b] = (uint8_t)((uint64_t)i >> (8 * b));
    }
    static const char dom[] = "sealora secagg sim input v1";
    crypto_generichash(key, sizeof key, in, sizeof in, (const uint8_t *)dom, sizeof dom - 1);
    randombytes_buf_deterministic(out, bytes, key);
    return 0;
}

static void add_words(void *acc, const void *x, size_t n, unsigned bits)
{
    if (bits == 32)
        for (size_t i = 0; i < n; i++)
            ((uint32_t *)acc)[i] += ((const uint32_t *)x)[i];
    else
        for (size_t i = 0; i < n; i++)
            ((uint64_t *)acc)[i] += ((const uint64_t *)x)[i];
}

int sl_secagg_sim_run(const sl_secagg_sim_opts *o, void *sum_out, sl_secagg_sim_result *res,
                      sl_err *err)
{
    const sl_secagg_config *cfg = &o->cfg;
    int rc = sl_secagg_config_validate(cfg, err);
    if (rc)
        return rc;
    uint32_t n = cfg->cohort;
    size_t bytes = (size_t)cfg->dim * (cfg->bits / 8);
    sl_secagg_sim_result r;
    memset(&r, 0, sizeof r);
    uint32_t *ids = malloc(n * sizeof *ids);
    uint8_t (*pk)[32] = malloc(n * sizeof *pk);
    uint8_t (*sk)[64] = sodium_malloc((size_t)n * 64);
    sl_secagg_client **cl = calloc(n, sizeof *cl);
    sl_dp_rng *rng = malloc(n * sizeof *rng);
    uint64_t *sent = calloc(n, sizeof *sent), *recv = calloc(n, sizeof *recv);
    uint8_t *alive = calloc(n, 1), *x = malloc(bytes), *plain = calloc(1, bytes),
            *sum = malloc(bytes);
    uint32_t *contrib = malloc(n * sizeof *contrib);
    sl_secagg_server *srv = NULL;
    uint8_t *bc = NULL; /* broadcast message */
    size_t bclen = 0;
    uint32_t nrng = 0;
    if (!ids || !pk || !sk || !cl || !rng || !sent || !recv || !alive || !x ||
        !plain || !sum || !contrib) {
        rc = sl_err_set(err, SL_ENOMEM, "secagg sim: out of memory for %u sites, dim %u", n,
                        cfg->dim);
        goto out;
    }
    for (uint32_t i = 0; i < n; i++) {
        uint8_t seed[32] = {0};
        for (int b = 0; b < 8; b++)
            seed[b] = (uint8_t)(o->seed >> (8 * b));
        for (int b = 0; b < 4; b++)
            seed[8 + b] = (uint8_t)(i >> (8 * b));
        seed[12] = 0x5a;
        crypto_sign_seed_keypair(pk[i], sk[i], seed);
        ids[i] = o->first_id + i;
        seed[12] = 0xa5;
        sl_dp_rng_init_seeded(&rng[i], seed);
        nrng++;
    }
    for (uint32_t i = 0; i < n; i++)
        if ((rc = sl_secagg_client_create(&cl[i], cfg, o->round, ids[i], sk[i], ids,
                                          (const uint8_t(*)[32])pk, n, &rng[i], err)))
            goto out;
    if ((rc = sl_secagg_server_create(&srv, cfg, o->round, ids, (const uint8_t(*)[32])pk, n, err)))
        goto out;
#define DROP(i) (o->drop ? o->drop[i] : SL_SECAGG_SIM_STAY)
    double t0 = now(), t;
    /* 1. Advertise keys. */
    t = now();
    for (uint32_t i = 0; i < n; i++) {
        if (DROP(i) == SL_SECAGG_SIM_NO_ADVERT)
            continue;
        uint8_t *m;
        size_t ml;
        if ((rc = sl_secagg_client_advertise(cl[i], &m, &ml, err)))
            goto out;
        sent[i] += ml;
        rc = sl_secagg_server_on_advertise(srv, ids[i], m, ml, err);
        free(m);
        if (rc)
            goto out;
        alive[i] = 1;
    }
    if ((rc = sl_secagg_server_end_advertise(srv, &bc, &bclen, err)))
        goto abort;
    r.seconds[SL_SECAGG_SIM_ADVERTISE] = now() - t;
    /* 2. Share keys. */
    t = now();
    for (uint32_t i = 0; i < n; i++) {
        if (!alive[i])
            continue;
        recv[i] += bclen;
        if (DROP(i) == SL_SECAGG_SIM_BEFORE_SHARES) {
            alive[i] = 0;
            continue;
        }
        uint8_t *m;
        size_t ml;
        if ((rc = sl_secagg_client_on_keylist(cl[i], bc, bclen, &m, &ml, err)))
            goto out;
        sent[i] += ml;
        rc = sl_secagg_server_on_shares(srv, ids[i], m, ml, err);
        free(m);
        if (rc)
            goto out;
    }
    free(bc);
    bc = NULL;
    if ((rc = sl_secagg_server_end_shares(srv, err)))
        goto abort;
    r.seconds[SL_SECAGG_SIM_SHARE_KEYS] = now() - t;
    /* 3. Masked input. */
    t = now();
    double mask_time = 0, masks = 0;
    uint32_t masked_sites = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (!alive[i])
            continue;
        uint8_t *d, *m;
        size_t dl, ml;
        if ((rc = sl_secagg_server_deliver(srv, ids[i], &d, &dl, err)))
            goto out;
        recv[i] += dl;
        if (DROP(i) == SL_SECAGG_SIM_BEFORE_INPUT) {
            free(d);
            alive[i] = 0;
            continue;
        }
        if ((rc = input_of(o, i, x, bytes, err)))
            goto out;
        double tm = now();
        rc = sl_secagg_client_on_deliver(cl[i], d, dl, x, &m, &ml, err);
        mask_time += now() - tm;
        masked_sites++;
        masks += 1 + sl_secagg_client_peers(cl[i]);
        free(d);
        if (rc)
            goto out;
        sent[i] += ml;
        rc = sl_secagg_server_on_masked(srv, ids[i], m, ml, err);
        free(m);
        if (rc)
            goto out;
    }
    r.client_mask_seconds = masked_sites ? mask_time / masked_sites : 0;
    r.client_masks = masked_sites ? masks / masked_sites : 0;
    if ((rc = sl_secagg_server_end_masked(srv, &bc, &bclen, err)))
        goto abort;
    r.seconds[SL_SECAGG_SIM_MASKED_INPUT] = now() - t;
    /* 4. Unmasking; late sites answer last. */
    t = now();
    int finished = 0;
    for (int pass = 0; pass < 2; pass++)
        for (uint32_t i = 0; i < n; i++) {
            if (!alive[i] || DROP(i) == SL_SECAGG_SIM_BEFORE_UNMASK)
                continue;
            if ((DROP(i) == SL_SECAGG_SIM_LATE_UNMASK) != (pass == 1))
                continue;
            recv[i] += bclen;
            uint8_t *m;
            size_t ml;
            if ((rc = sl_secagg_client_on_unmask_request(cl[i], bc, bclen, &m, &ml, err)))
                goto out;
            sent[i] += ml;
            int src = sl_secagg_server_on_unmask(srv, ids[i], m, ml, NULL);
            free(m);
            if (src && !finished) {
                rc = sl_err_set(err, SL_EINVAL, "secagg sim: server refused site %u's answer",
                                ids[i]);
                goto out;
            }
            if (!finished && !o->wait_all && sl_secagg_server_ready(srv)) {
                double tf = now();
                if ((rc = sl_secagg_server_finish(srv, sum, err)))
                    goto abort;
                r.server_finish_seconds = now() - tf;
                finished = 1;
            }
        }
    if (!finished) {
        double tf = now();
        if ((rc = sl_secagg_server_finish(srv, sum, err)))
            goto abort;
        r.server_finish_seconds = now() - tf;
    }
    r.seconds[SL_SECAGG_SIM_UNMASK] = now() - t;
    r.seconds_total = now() - t0;
    /* The reference: plain modular sum of the contributors' inputs. */
    uint32_t nc = sl_secagg_server_contributors(srv, contrib, n);
    for (uint32_t j = 0; j < nc; j++) {
        if ((rc = input_of(o, contrib[j] - o->first_id, x, bytes, err)))
            goto out;
        add_words(plain, x, cfg->dim, cfg->bits);
    }
    r.exact = memcmp(plain, sum, bytes) == 0;
    if (sum_out)
        memcpy(sum_out, sum, bytes);
    goto stats;
abort:
    if (rc != SL_EABORT)
        goto out;
    r.aborted = 1;
    snprintf(r.abort_msg, sizeof r.abort_msg, "%s", err ? err->msg : "aborted");
    r.seconds_total = now() - t0;
    rc = 0;
stats:;
    sl_secagg_server_stats st;
    sl_secagg_server_get_stats(srv, &st);
    r.advertised = st.advertised;
    r.shared = st.shared;
    r.contributors = st.masked;
    r.answered = st.unmasked;
    r.refused = st.refused;
    r.degree = st.degree;
    r.server_masks = st.masks;
    r.server_state_bytes = st.state_bytes;
    double ts = 0, tr = 0;
    for (uint32_t i = 0; i < n; i++) {
        ts += (double)sent[i];
        tr += (double)recv[i];
    }
    r.bytes_sent_per_site = ts / n;
    r.bytes_received_per_site = tr / n;
    *res = r;
out:
#undef DROP
    free(bc);
    sl_secagg_server_free(srv);
    for (uint32_t i = 0; cl && i < n; i++)
        sl_secagg_client_free(cl[i]);
    for (uint32_t i = 0; i < nrng; i++)
        sl_dp_rng_fini(&rng[i]);
    free(ids);
    free(pk);
    if (sk)
        sodium_free(sk);
    free(cl);
    free(rng);
    free(sent);
    free(recv);
    free(alive);
    free(x);
    free(plain);
    free(sum);
    free(contrib);
    return rc;
}
