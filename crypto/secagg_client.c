#include "crypto/secagg_client.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/secagg_graph.h"
#include "crypto/secagg_keys.h"
#include "crypto/secagg_msg.h"
#include "crypto/secagg_prg.h"
#include "crypto/secagg_shamir.h"

enum { C_NEW, C_ADVERTISED, C_SHARED, C_MASKED, C_DONE };
static const char *const phase_name[] = {"start", "key advertisement", "share exchange",
                                         "masked input", "finished"};

struct secrets {
    uint8_t c_sk[32], s_sk[32], b[32];         /* share key, mask key, self-mask seed */
    uint8_t own_b[SL_SECAGG_SHARE_BYTES];      /* this site's share of its own seed */
    uint8_t own_sk[SL_SECAGG_SHARE_BYTES];     /* ... and of its own mask key */
};

struct sl_secagg_client {
    sl_secagg_config cfg;
    uint64_t round;
    uint32_t id;
    int phase;
    const uint8_t *sign_sk; /* borrowed */
    sl_dp_rng *rng;         /* borrowed */
    uint32_t nreg;
    uint32_t *reg_id;
    uint8_t (*reg_pk)[32];
    struct secrets *sec;    /* sodium_malloc */
    uint8_t c_pk[32], s_pk[32], commit[32];
    uint32_t n1, k, me;
    sl_secagg_advert *adv;  /* the key list, id order */
    uint32_t *nbr;          /* my k neighbours (nodes, increasing) */
    uint8_t *have;          /* per neighbour: bundle delivered */
    uint8_t *bundles;       /* k x BUNDLE */
    uint32_t npeers;
};

static long find_u32(const uint32_t *a, uint32_t n, uint32_t v)
{
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (a[mid] < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && a[lo] == v ? (long)lo : -1;
}

static long node_of(const sl_secagg_client *c, uint32_t id)
{
    uint32_t lo = 0, hi = c->n1;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (c->adv[mid].site < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < c->n1 && c->adv[lo].site == id ? (long)lo : -1;
}

static int check_phase(const sl_secagg_client *c, int want, const char *what, sl_err *err)
{
    if (c->phase != want)
        return sl_err_set(err, SL_ESTATE, "secagg site %u round %llu: %s during %s", c->id,
                          (unsigned long long)c->round, what, phase_name[c->phase]);
    return 0;
}

static int take(const sl_secagg_client *c, sl_secagg_msg *m, int type, const uint8_t *buf,
                size_t len, sl_err *err)
{
    int rc = sl_secagg_msg_decode(m, buf, len, err);
    if (rc) {
        sl_err_prefix(err, "secagg site %u: from the server", c->id);
        return rc;
    }
    if (m->type != type)
        rc = sl_err_set(err, SL_EFORMAT, "secagg site %u: %s message from the server where %s was "
                        "expected", c->id, sl_secagg_msg_type_name(m->type),
                        sl_secagg_msg_type_name(type));
    else if (m->round != c->round)
        rc = sl_err_set(err, SL_EFORMAT, "secagg site %u: server message for round %llu in round "
                        "%llu", c->id, (unsigned long long)m->round, (unsigned long long)c->round);
    if (rc)
        sl_secagg_msg_fini(m);
    return rc;
}

int sl_secagg_client_create(sl_secagg_client **out, const sl_secagg_config *cfg, uint64_t round,
                            uint32_t site, const uint8_t sign_sk[64], const uint32_t *site_ids,
                            const uint8_t (*sign_pks)[32], uint32_t n_sites, sl_dp_rng *rng,
                            sl_err *err)
{
    int rc = sl_secagg_config_validate(cfg, err);
    if (rc)
        return rc;
    if (n_sites < 2 || n_sites > SL_SECAGG_MAX_SITES)
        return sl_err_set(err, SL_EINVAL, "secagg site %u: registry of %u sites (2..%u)", site,
                          n_sites, SL_SECAGG_MAX_SITES);
    sl_secagg_client *c = calloc(1, sizeof *c);
    if (!c)
        return sl_err_set(err, SL_ENOMEM, "secagg site %u: out of memory", site);
    c->cfg = *cfg;
    c->round = round;
    c->id = site;
    c->sign_sk = sign_sk;
    c->rng = rng;
    c->nreg = n_sites;
    c->reg_id = malloc(n_sites * sizeof *c->reg_id);
    c->reg_pk = malloc(n_sites * sizeof *c->reg_pk);
    c->sec = sodium_malloc(sizeof *c->sec);
    if (!c->reg_id || !c->reg_pk || !c->sec) {
        rc = sl_err_set(err, SL_ENOMEM, "secagg site %u: out of memory", site);
        goto fail;
    }
    sodium_memzero(c->sec, sizeof *c->sec);
    int found = 0;
    for (uint32_t i = 0; i < n_sites; i++) {
        uint32_t j = i;
        while (j > 0 && c->reg_id[j - 1] > site_ids[i]) {
            c->reg_id[j] = c->reg_id[j - 1];
            memcpy(c->reg_pk[j], c->reg_pk[j - 1], 32);
            j--;
        }
        if (j > 0 && c->reg_id[j - 1] == site_ids[i]) {
            rc = sl_err_set(err, SL_EINVAL, "secagg site %u: site %u twice in the registry", site,
                            site_ids[i]);
            goto fail;
        }
        c->reg_id[j] = site_ids[i];
        memcpy(c->reg_pk[j], sign_pks[i], 32);
        found |= site_ids[i] == site;
    }
    if (!found) {
        rc = sl_err_set(err, SL_EINVAL, "secagg site %u: not in the registry", site);
        goto fail;
    }
    c->phase = C_NEW;
    *out = c;
    return 0;
fail:
    sl_secagg_client_free(c);
    return rc;
}

void sl_secagg_client_free(sl_secagg_client *c)
{
    if (!c)
        return;
    free(c->reg_id);
    free(c->reg_pk);
    if (c->sec)
        sodium_free(c->sec); /* wipes */
    free(c->adv);
    free(c->nbr);
    free(c->have);
    free(c->bundles);
    free(c);
}

uint32_t sl_secagg_client_peers(const sl_secagg_client *c) { return c->npeers; }

int sl_secagg_client_advertise(sl_secagg_client *c, uint8_t **out, size_t *len, sl_err *err)
{
    int rc = check_phase(c, C_NEW, "advertising keys", err);
    if (rc)
        return rc;
    sl_secagg_keys_x25519(c->c_pk, c->sec->c_sk, c->rng);
    sl_secagg_keys_x25519(c->s_pk, c->sec->s_sk, c->rng);
    sl_dp_rng_bytes(c->rng, c->sec->b, 32);
    sl_secagg_keys_commit(c->commit, c->sec->b, c->round, c->id);
    sl_secagg_msg m;
    memset(&m, 0, sizeof m);
    m.type = SL_SECAGG_MSG_ADVERTISE;
    m.round = c->round;
    m.advert.site = c->id;
    memcpy(m.advert.c_pk, c->c_pk, 32);
    memcpy(m.advert.s_pk, c->s_pk, 32);
    memcpy(m.advert.commit, c->commit, 32);
    sl_secagg_keys_sign_advert(m.advert.sig, c->round, c->id, c->c_pk, c->s_pk, c->commit,
                               c->sign_sk);
    if ((rc = sl_secagg_msg_encode(&m, out, len, err)))
        return rc;
    c->phase = C_ADVERTISED;
    return 0;
}

int sl_secagg_client_on_keylist(sl_secagg_client *c, const uint8_t *buf, size_t len,
                                uint8_t **out, size_t *out_len, sl_err *err)
{
    int rc = check_phase(c, C_ADVERTISED, "key list", err);
    if (rc)
        return rc;
    sl_secagg_msg m, sh;
    memset(&sh, 0, sizeof sh);
    if ((rc = take(c, &m, SL_SECAGG_MSG_KEYLIST, buf, len, err)))
        return rc;
    const sl_secagg_round_params *p = &m.params;
    uint32_t *nbr = NULL;
    uint8_t *shares = NULL;
    sl_secagg_graph g = {0};
    if (p->degree != c->cfg.degree || p->share_threshold != c->cfg.share_threshold ||
        p->threshold != c->cfg.threshold || p->min_cohort != c->cfg.min_cohort ||
        p->dim != c->cfg.dim || p->bits != c->cfg.bits) {
        rc = sl_err_set(err, SL_EFORMAT, "secagg site %u: the server's round parameters (degree "
                        "%u, share threshold %u, threshold %u, min cohort %u, dim %u, bits %u) "
                        "differ from this site's (%u, %u, %u, %u, %u, %u)", c->id, p->degree,
                        p->share_threshold, p->threshold, p->min_cohort, p->dim, p->bits,
                        c->cfg.degree, c->cfg.share_threshold, c->cfg.threshold,
                        c->cfg.min_cohort, c->cfg.dim, c->cfg.bits);
        goto out;
    }
    if (m.count < c->cfg.min_cohort) {
        rc = sl_err_set(err, SL_EABORT, "secagg site %u: only %u sites in the key list, below the "
                        "minimum cohort %u", c->id, m.count, c->cfg.min_cohort);
        goto out;
    }
    long me = -1;
    for (uint32_t i = 0; i < m.count && !rc; i++) {
        const sl_secagg_advert *a = &m.adverts[i];
        long r = find_u32(c->reg_id, c->nreg, a->site);
        if (r < 0)
            rc = sl_err_set(err, SL_EFORMAT, "secagg site %u: the key list names unregistered "
                            "site %u", c->id, a->site);
        else
            rc = sl_secagg_keys_verify_advert(a->sig, c->round, a->site, a->c_pk, a->s_pk,
                                              a->commit, c->reg_pk[r], err);
        if (a->site == c->id) {
            me = i;
            if (!rc && (memcmp(a->c_pk, c->c_pk, 32) || memcmp(a->s_pk, c->s_pk, 32) ||
                        memcmp(a->commit, c->commit, 32)))
                rc = sl_err_set(err, SL_ECRYPTO, "secagg site %u: the key list carries other "
                                "keys for this site", c->id);
        }
    }
    if (rc)
        goto out;
    if (me < 0) {
        rc = sl_err_set(err, SL_EFORMAT, "secagg site %u: the key list leaves this site out",
                        c->id);
        goto out;
    }
    uint32_t k = sl_secagg_config_degree(&c->cfg, m.count), g1 = k + 1;
    if (c->cfg.share_threshold > g1) {
        rc = sl_err_set(err, SL_EABORT, "secagg site %u: %u sites leave share groups of %u, below "
                        "the share threshold %u", c->id, m.count, g1, c->cfg.share_threshold);
        goto out;
    }
    static const char dom[] = "sealora secagg graph seed v1";
    uint8_t seed[32];
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, sizeof seed);
    crypto_generichash_update(&st, (const uint8_t *)dom, sizeof dom - 1);
    crypto_generichash_update(&st, buf, len);
    crypto_generichash_final(&st, seed, sizeof seed);
    if ((rc = sl_secagg_graph_init(&g, m.count, k, seed, err)))
        goto out;
    nbr = malloc(k * sizeof *nbr);
    shares = sodium_malloc((size_t)2 * g1 * SL_SECAGG_SHARE_BYTES);
    sh.sealed = malloc(k * sizeof *sh.sealed);
    if (!nbr || !shares || !sh.sealed) {
        rc = sl_err_set(err, SL_ENOMEM, "secagg site %u: out of memory", c->id);
        goto out;
    }
    sl_secagg_graph_neighbours(&g, (uint32_t)me, nbr);
    /* Share i goes to the i-th member of the group (neighbours and this
     * site, increasing): that member's share has x = i + 1. */
    uint8_t *sb = shares, *ss = shares + (size_t)g1 * SL_SECAGG_SHARE_BYTES;
    if ((rc = sl_secagg_shamir_split(sb, c->sec->b, 32, c->cfg.share_threshold, g1, c->rng, err)) ||
        (rc = sl_secagg_shamir_split(ss, c->sec->s_sk, 32, c->cfg.share_threshold, g1, c->rng,
                                     err)))
        goto out;
    sh.type = SL_SECAGG_MSG_SHARES;
    sh.round = c->round;
    sh.site = c->id;
    int placed = 0;
    for (uint32_t i = 0, j = 0; i < g1; i++) {
        const uint8_t *xb = sb + (size_t)i * SL_SECAGG_SHARE_BYTES;
        const uint8_t *xs = ss + (size_t)i * SL_SECAGG_SHARE_BYTES;
        if (!placed && (j == k || nbr[j] > (uint32_t)me)) { /* this site's own slot */
            memcpy(c->sec->own_b, xb, SL_SECAGG_SHARE_BYTES);
            memcpy(c->sec->own_sk, xs, SL_SECAGG_SHARE_BYTES);
            placed = 1;
            continue;
        }
        const sl_secagg_advert *to = &m.adverts[nbr[j]];
        uint8_t pt[SL_SECAGG_BUNDLE_PLAIN];
        for (int b = 0; b < 4; b++) {
            pt[b] = (uint8_t)(c->id >> (8 * b));
            pt[4 + b] = (uint8_t)(to->site >> (8 * b));
        }
        for (int b = 0; b < 8; b++)
            pt[8 + b] = (uint8_t)(c->round >> (8 * b));
        memcpy(pt + 16, xb, SL_SECAGG_SHARE_BYTES);
        memcpy(pt + 16 + SL_SECAGG_SHARE_BYTES, xs, SL_SECAGG_SHARE_BYTES);
        sh.sealed[j].peer = to->site;
        rc = sl_secagg_keys_seal(sh.sealed[j].bundle, pt, c->sec->c_sk, c->c_pk, to->c_pk,
                                 c->round, c->id, to->site, c->rng, err);
        sodium_memzero(pt, sizeof pt);
        if (rc)
            goto out;
        j++;
    }
    sh.count = k;
    if ((rc = sl_secagg_msg_encode(&sh, out, out_len, err)))
        goto out;
    /* Commit the new state. */
    c->n1 = m.count;
    c->k = k;
    c->me = (uint32_t)me;
    c->adv = m.adverts;
    m.adverts = NULL;
    c->nbr = nbr;
    nbr = NULL;
    c->phase = C_SHARED;
out:
    if (shares)
        sodium_free(shares);
    free(sh.sealed);
    free(nbr);
    sl_secagg_graph_fini(&g);
    sl_secagg_msg_fini(&m);
    return rc;
}

int sl_secagg_client_on_deliver(sl_secagg_client *c, const uint8_t *buf, size_t len,
                                const void *input, uint8_t **out, size_t *out_len, sl_err *err)
{
    int rc = check_phase(c, C_SHARED, "delivered shares", err);
    if (rc)
        return rc;
    sl_secagg_msg m;
    if ((rc = take(c, &m, SL_SECAGG_MSG_DELIVER, buf, len, err)))
        return rc;
    uint8_t *have = calloc(c->k ? c->k : 1, 1);
    uint8_t *bundles = malloc((size_t)(c->k ? c->k : 1) * SL_SECAGG_BUNDLE_BYTES);
    size_t wb = c->cfg.bits / 8;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    void *y = malloc(1); /* masking happens in the message buffer */
#else
    void *y = malloc((size_t)c->cfg.dim * wb);
#endif
    uint8_t (*seeds)[32] = sodium_malloc((size_t)(c->k + 1) * 32);
    int *signs = malloc((c->k + 1) * sizeof *signs);
    sl_secagg_prg *prg = NULL;
    sl_secagg_msg mk;
    memset(&mk, 0, sizeof mk);
    if (!have || !bundles || !y || !seeds || !signs) {
        rc = sl_err_set(err, SL_ENOMEM, "secagg site %u: out of memory for dim %u", c->id,
                        c->cfg.dim);
        goto out;
    }
    if (m.site != c->id) {
        rc = sl_err_set(err, SL_EFORMAT, "secagg site %u: shares addressed to site %u", c->id,
                        m.site);
        goto out;
    }
    uint32_t npeers = 0;
    for (uint32_t i = 0; i < m.count && !rc; i++) {
        long v = node_of(c, m.sealed[i].peer);
        long slot = v < 0 ? -1 : find_u32(c->nbr, c->k, (uint32_t)v);
        if (slot < 0) {
            rc = sl_err_set(err, SL_EFORMAT, "secagg site %u: delivered shares from site %u, "
                            "which is not its neighbour", c->id, m.sealed[i].peer);
            break;
        }
        have[slot] = 1;
        memcpy(bundles + (size_t)slot * SL_SECAGG_BUNDLE_BYTES, m.sealed[i].bundle,
               SL_SECAGG_BUNDLE_BYTES);
        npeers++;
    }
    if (rc)
        goto out;
    if (npeers + 1 < c->cfg.share_threshold) {
        rc = sl_err_set(err, SL_EABORT, "secagg site %u: shares from only %u neighbours; with "
                        "itself below the share threshold %u", c->id, npeers,
                        c->cfg.share_threshold);
        goto out;
    }
    /* y = x + PRG(b) + sum over neighbours v that shared of
     * (+PRG(s_uv) if u < v else -PRG(s_uv)). */
    size_t ns = 0;
    memcpy(seeds[ns], c->sec->b, 32);
    signs[ns++] = 1;
    for (uint32_t j = 0; j < c->k && !rc; j++) {
        if (!have[j])
            continue;
        const sl_secagg_advert *a = &c->adv[c->nbr[j]];
        rc = sl_secagg_keys_pair_seed(seeds[ns], c->sec->s_sk, c->s_pk, a->s_pk, c->id, a->site,
                                      c->round, err);
        signs[ns++] = c->id < a->site ? 1 : -1;
    }
    if (rc)
        goto out;
    mk.type = SL_SECAGG_MSG_MASKED;
    mk.round = c->round;
    mk.site = c->id;
    mk.bits = (uint8_t)c->cfg.bits;
    mk.dim = c->cfg.dim;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    /* Encode x, then mask the message's words in place: on a little-endian
     * host they are the vector, so nothing is copied twice. */
    mk.vec = input;
    uint8_t *enc = NULL;
    size_t enc_len = 0;
    if ((rc = sl_secagg_msg_encode(&mk, &enc, &enc_len, err)))
        goto out;
    void *words = enc + enc_len - (size_t)c->cfg.dim * wb;
    if ((rc = sl_secagg_prg_create(&prg, err)) ||
        (rc = sl_secagg_prg_apply(prg, words, c->cfg.dim, c->cfg.bits,
                                  (const uint8_t(*)[32])seeds, signs, ns, err))) {
        sodium_memzero(enc, enc_len); /* holds the unmasked x */
        free(enc);
        goto out;
    }
    *out = enc;
    *out_len = enc_len;
#else
    memcpy(y, input, (size_t)c->cfg.dim * wb);
    if ((rc = sl_secagg_prg_create(&prg, err)) ||
        (rc = sl_secagg_prg_apply(prg, y, c->cfg.dim, c->cfg.bits, (const uint8_t(*)[32])seeds,
                                  signs, ns, err)))
        goto out;
    mk.vec = y;
    if ((rc = sl_secagg_msg_encode(&mk, out, out_len, err)))
        goto out;
#endif
    c->have = have;
    c->bundles = bundles;
    have = NULL;
    bundles = NULL;
    c->npeers = npeers;
    c->phase = C_MASKED;
out:
    sl_secagg_prg_free(prg);
    if (seeds)
        sodium_free(seeds);
    free(signs);
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
    if (y) /* the unmasked copy of x may be left after a failure */
        sodium_memzero(y, (size_t)c->cfg.dim * wb);
#endif
    free(y);
    free(have);
    free(bundles);
    sl_secagg_msg_fini(&m);
    return rc;
}

int sl_secagg_client_on_unmask_request(sl_secagg_client *c, const uint8_t *buf, size_t len,
                                       uint8_t **out, size_t *out_len, sl_err *err)
{
    int rc = check_phase(c, C_MASKED, "unmasking request", err);
    if (rc)
        return rc;
    sl_secagg_msg m, um;
    memset(&um, 0, sizeof um);
    if ((rc = take(c, &m, SL_SECAGG_MSG_UNMASK_REQ, buf, len, err)))
        return rc;
    if (m.count < c->cfg.threshold) {
        rc = sl_err_set(err, SL_EABORT, "secagg site %u: the server names %u survivors, below the "
                        "threshold %u; revealing nothing", c->id, m.count, c->cfg.threshold);
        goto out;
    }
    if (find_u32(m.ids, m.count, c->id) < 0) {
        rc = sl_err_set(err, SL_ESTATE, "secagg site %u: not among the survivors; nothing to "
                        "reveal", c->id);
        goto out;
    }
    for (uint32_t i = 0; i < m.count && !rc; i++)
        if (node_of(c, m.ids[i]) < 0)
            rc = sl_err_set(err, SL_EFORMAT, "secagg site %u: survivor %u is not in the key list",
                            c->id, m.ids[i]);
    if (rc)
        goto out;
    um.shares = sodium_malloc((size_t)(c->k + 1) * sizeof *um.shares);
    if (!um.shares) {
        rc = sl_err_set(err, SL_ENOMEM, "secagg site %u: out of memory", c->id);
        goto out;
    }
    um.type = SL_SECAGG_MSG_UNMASK;
    um.round = c->round;
    um.site = c->id;
    /* In id order: neighbours below this site, itself, neighbours above. */
    int placed = 0;
    for (uint32_t j = 0; j <= c->k; j++) {
        if (!placed && (j == c->k || c->nbr[j] > c->me)) {
            sl_secagg_unmask_share *e = &um.shares[um.count++];
            e->about = c->id;
            e->kind = SL_SECAGG_SHARE_SELF;
            memcpy(e->share, c->sec->own_b, SL_SECAGG_SHARE_BYTES);
            placed = 1;
        }
        if (j == c->k)
            break;
        if (!c->have[j])
            continue;
        const sl_secagg_advert *a = &c->adv[c->nbr[j]];
        uint8_t pt[SL_SECAGG_BUNDLE_PLAIN];
        if (sl_secagg_keys_open(pt, c->bundles + (size_t)j * SL_SECAGG_BUNDLE_BYTES, c->sec->c_sk,
                                c->c_pk, a->c_pk, c->round, a->site, c->id, NULL))
            continue; /* a bad bundle from v: v's secret gets one share fewer */
        int survived = find_u32(m.ids, m.count, a->site) >= 0;
        sl_secagg_unmask_share *e = &um.shares[um.count++];
        e->about = a->site;
        /* Exactly one kind per site: the seed share of a survivor (its
         * self-mask comes off), the key share of a dropped site (its pair
         * masks come off). Never both. */
        e->kind = survived ? SL_SECAGG_SHARE_SELF : SL_SECAGG_SHARE_KEY;
        memcpy(e->share, pt + 16 + (survived ? 0 : SL_SECAGG_SHARE_BYTES), SL_SECAGG_SHARE_BYTES);
        sodium_memzero(pt, sizeof pt);
    }
    if ((rc = sl_secagg_msg_encode(&um, out, out_len, err)))
        goto out;
    c->phase = C_DONE;
    sodium_memzero(c->sec, sizeof *c->sec); /* the round is over for this site */
out:
    if (um.shares)
        sodium_free(um.shares);
    sl_secagg_msg_fini(&m);
    return rc;
}
