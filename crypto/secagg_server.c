#include "crypto/secagg_server.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/secagg_graph.h"
#include "crypto/secagg_keys.h"
#include "crypto/secagg_msg.h"
#include "crypto/secagg_prg.h"
#include "crypto/secagg_shamir.h"

enum { PH_ADVERTISE, PH_SHARES, PH_MASKED, PH_UNMASK, PH_DONE, PH_ABORTED };
static const char *const phase_name[] = {"key advertisement", "share collection",
                                         "input collection", "unmasking", "finished", "aborted"};

#define SEEDS_PER_BATCH 1024

struct sl_secagg_server {
    sl_secagg_config cfg;
    uint64_t round;
    int phase;
    sl_secagg_server_stats st;
    /* Registry, sorted by id. */
    uint32_t nreg;
    uint32_t *reg_id;
    uint8_t (*reg_pk)[32];
    uint8_t *reg_adv;           /* advertised? */
    sl_secagg_advert *adv;      /* by registry index */
    /* U1 in id order ("nodes"), from end_advertise on. */
    uint32_t n1, k;
    uint32_t *node_reg;         /* node -> registry index */
    uint32_t *nbr;              /* n1 x k neighbour nodes, increasing */
    sl_secagg_graph graph;
    uint8_t *in_u2, *in_u3, *answered;
    uint8_t *bundles;           /* n1 x k x BUNDLE: from node i to nbr[i][j] */
    void *sum;                  /* cfg.dim words */
    uint8_t *need;              /* per node: 0, SL_SECAGG_SHARE_SELF or _KEY */
    uint32_t *nshares;          /* per node: shares held */
    uint8_t *shares;            /* n1 x (k + 1) x SHARE_BYTES */
};

static int refuse(sl_secagg_server *s, int code) /* counts a refused message */
{
    s->st.refused++;
    return code;
}

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

static uint32_t node_id(const sl_secagg_server *s, uint32_t node)
{
    return s->reg_id[s->node_reg[node]];
}

/* Node of a site id, or -1 when the site is not in U1. */
static long node_of(const sl_secagg_server *s, uint32_t id)
{
    long r = find_u32(s->reg_id, s->nreg, id);
    if (r < 0 || !s->reg_adv[r] || s->phase == PH_ADVERTISE)
        return -1;
    /* node_reg is increasing too (U1 in id order). */
    return find_u32(s->node_reg, s->n1, (uint32_t)r);
}

static int check_phase(sl_secagg_server *s, int want, const char *what, sl_err *err)
{
    if (s->phase != want)
        return refuse(s, sl_err_set(err, SL_ESTATE, "secagg server round %llu: %s during %s",
                                    (unsigned long long)s->round, what, phase_name[s->phase]));
    return 0;
}

/* Decodes and checks type, round and (when given) that the message names
 * the sender. */
static int take(sl_secagg_server *s, sl_secagg_msg *m, int type, uint32_t sender,
                const uint8_t *buf, size_t len, sl_err *err)
{
    int rc = sl_secagg_msg_decode(m, buf, len, err);
    if (rc) {
        sl_err_prefix(err, "site %u", sender);
        return refuse(s, rc);
    }
    if (m->type != type)
        rc = sl_err_set(err, SL_EFORMAT, "site %u: %s message where %s was expected", sender,
                        sl_secagg_msg_type_name(m->type), sl_secagg_msg_type_name(type));
    else if (m->round != s->round)
        rc = sl_err_set(err, SL_EFORMAT, "site %u: message for round %llu in round %llu", sender,
                        (unsigned long long)m->round, (unsigned long long)s->round);
    else if (m->site != sender)
        rc = sl_err_set(err, SL_EFORMAT, "site %u: message claims to come from site %u", sender,
                        m->site);
    if (rc) {
        sl_secagg_msg_fini(m);
        return refuse(s, rc);
    }
    s->st.bytes_in += len;
    return 0;
}

int sl_secagg_server_create(sl_secagg_server **out, const sl_secagg_config *cfg, uint64_t round,
                            const uint32_t *site_ids, const uint8_t (*sign_pks)[32],
                            uint32_t n_sites, sl_err *err)
{
    int rc = sl_secagg_config_validate(cfg, err);
    if (rc)
        return rc;
    if (n_sites < 2 || n_sites > SL_SECAGG_MAX_SITES)
        return sl_err_set(err, SL_EINVAL, "secagg server: registry of %u sites (2..%u)", n_sites,
                          SL_SECAGG_MAX_SITES);
    sl_secagg_server *s = calloc(1, sizeof *s);
    if (!s)
        return sl_err_set(err, SL_ENOMEM, "secagg server: out of memory");
    s->cfg = *cfg;
    s->round = round;
    s->nreg = n_sites;
    s->reg_id = malloc(n_sites * sizeof *s->reg_id);
    s->reg_pk = malloc(n_sites * sizeof *s->reg_pk);
    s->reg_adv = calloc(n_sites, 1);
    s->adv = calloc(n_sites, sizeof *s->adv);
    s->sum = calloc(cfg->dim, cfg->bits / 8);
    if (!s->reg_id || !s->reg_pk || !s->reg_adv || !s->adv || !s->sum) {
        rc = sl_err_set(err, SL_ENOMEM, "secagg server: out of memory for %u sites, dim %u",
                        n_sites, cfg->dim);
        goto fail;
    }
    /* Insertion by rank keeps the registry sorted without a comparator. */
    for (uint32_t i = 0; i < n_sites; i++) {
        uint32_t j = i;
        while (j > 0 && s->reg_id[j - 1] > site_ids[i]) {
            s->reg_id[j] = s->reg_id[j - 1];
            memcpy(s->reg_pk[j], s->reg_pk[j - 1], 32);
            j--;
        }
        if (j > 0 && s->reg_id[j - 1] == site_ids[i]) {
            rc = sl_err_set(err, SL_EINVAL, "secagg server: site %u twice in the registry",
                            site_ids[i]);
            goto fail;
        }
        s->reg_id[j] = site_ids[i];
        memcpy(s->reg_pk[j], sign_pks[i], 32);
    }
    s->phase = PH_ADVERTISE;
    *out = s;
    return 0;
fail:
    sl_secagg_server_free(s);
    return rc;
}

void sl_secagg_server_free(sl_secagg_server *s)
{
    if (!s)
        return;
    free(s->reg_id);
    free(s->reg_pk);
    free(s->reg_adv);
    free(s->adv);
    free(s->node_reg);
    free(s->nbr);
    sl_secagg_graph_fini(&s->graph);
    free(s->in_u2);
    free(s->in_u3);
    free(s->answered);
    free(s->bundles);
    if (s->sum)
        sodium_memzero(s->sum, (size_t)s->cfg.dim * (s->cfg.bits / 8));
    free(s->sum);
    free(s->need);
    free(s->nshares);
    if (s->shares)
        sodium_memzero(s->shares, (size_t)s->n1 * (s->k + 1) * SL_SECAGG_SHARE_BYTES);
    free(s->shares);
    free(s);
}

int sl_secagg_server_on_advertise(sl_secagg_server *s, uint32_t sender, const uint8_t *buf,
                                  size_t len, sl_err *err)
{
    int rc = check_phase(s, PH_ADVERTISE, "key advertisement", err);
    if (rc)
        return rc;
    long r = find_u32(s->reg_id, s->nreg, sender);
    if (r < 0)
        return refuse(s, sl_err_set(err, SL_EINVAL, "site %u is not registered for round %llu",
                                    sender, (unsigned long long)s->round));
    if (s->reg_adv[r])
        return refuse(s, sl_err_set(err, SL_ESTATE, "site %u: second key advertisement", sender));
    sl_secagg_msg m;
    if ((rc = take(s, &m, SL_SECAGG_MSG_ADVERTISE, sender, buf, len, err)))
        return rc;
    const sl_secagg_advert *a = &m.advert;
    rc = sl_secagg_keys_verify_advert(a->sig, s->round, a->site, a->c_pk, a->s_pk, a->commit,
                                      s->reg_pk[r], err);
    if (!rc && sodium_memcmp(a->c_pk, a->s_pk, 32) == 0)
        rc = sl_err_set(err, SL_EFORMAT, "site %u: the same key advertised twice", sender);
    if (rc) {
        s->st.bytes_in -= len;
        sl_secagg_msg_fini(&m);
        return refuse(s, rc);
    }
    s->adv[r] = *a;
    s->reg_adv[r] = 1;
    s->st.advertised++;
    sl_secagg_msg_fini(&m);
    return 0;
}

int sl_secagg_server_end_advertise(sl_secagg_server *s, uint8_t **out, size_t *len, sl_err *err)
{
    int rc = check_phase(s, PH_ADVERTISE, "closing key advertisement", err);
    if (rc)
        return rc;
    uint32_t n1 = s->st.advertised;
    if (n1 < s->cfg.min_cohort) {
        s->phase = PH_ABORTED;
        return sl_err_set(err, SL_EABORT, "secagg round %llu aborted: %u of %u sites advertised "
                          "keys, below the minimum cohort %u", (unsigned long long)s->round, n1,
                          s->cfg.cohort, s->cfg.min_cohort);
    }
    uint32_t k = sl_secagg_config_degree(&s->cfg, n1);
    if (s->cfg.share_threshold > k + 1) {
        s->phase = PH_ABORTED;
        return sl_err_set(err, SL_EABORT, "secagg round %llu aborted: with %u sites a share group "
                          "has %u shares, below the share threshold %u",
                          (unsigned long long)s->round, n1, k + 1, s->cfg.share_threshold);
    }
    sl_secagg_msg m;
    memset(&m, 0, sizeof m);
    m.type = SL_SECAGG_MSG_KEYLIST;
    m.round = s->round;
    m.params = (sl_secagg_round_params){s->cfg.degree, s->cfg.share_threshold, s->cfg.threshold,
                                        s->cfg.min_cohort, s->cfg.dim, (uint8_t)s->cfg.bits};
    m.count = n1;
    m.adverts = malloc(n1 * sizeof *m.adverts);
    uint32_t *node_reg = malloc(n1 * sizeof *node_reg);
    uint32_t *nbr = malloc((size_t)n1 * k * sizeof *nbr);
    uint8_t *u2 = calloc(n1, 1), *u3 = calloc(n1, 1), *ans = calloc(n1, 1), *need = calloc(n1, 1);
    uint32_t *nsh = calloc(n1, sizeof *nsh);
    uint8_t *bundles = malloc((size_t)n1 * k * SL_SECAGG_BUNDLE_BYTES);
    uint8_t *shares = malloc((size_t)n1 * (k + 1) * SL_SECAGG_SHARE_BYTES);
    uint8_t *msg = NULL;
    size_t mlen = 0;
    sl_secagg_graph g = {0};
    if (!m.adverts || !node_reg || !nbr || !u2 || !u3 || !ans || !need || !nsh || !bundles ||
        !shares) {
        rc = sl_err_set(err, SL_ENOMEM, "secagg server: out of memory for %u sites", n1);
        goto fail;
    }
    for (uint32_t r = 0, i = 0; r < s->nreg; r++)
        if (s->reg_adv[r]) {
            node_reg[i] = r;
            m.adverts[i++] = s->adv[r];
        }
    if ((rc = sl_secagg_msg_encode(&m, &msg, &mlen, err)))
        goto fail;
    /* The graph comes from the bytes every site receives. */
    static const char dom[] = "sealora secagg graph seed v1";
    uint8_t seed[32];
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, sizeof seed);
    crypto_generichash_update(&st, (const uint8_t *)dom, sizeof dom - 1);
    crypto_generichash_update(&st, msg, mlen);
    crypto_generichash_final(&st, seed, sizeof seed);
    if ((rc = sl_secagg_graph_init(&g, n1, k, seed, err)))
        goto fail;
    for (uint32_t i = 0; i < n1; i++)
        sl_secagg_graph_neighbours(&g, i, nbr + (size_t)i * k);
    free(m.adverts);
    s->n1 = n1;
    s->k = k;
    s->node_reg = node_reg;
    s->nbr = nbr;
    s->graph = g;
    s->in_u2 = u2;
    s->in_u3 = u3;
    s->answered = ans;
    s->need = need;
    s->nshares = nsh;
    s->bundles = bundles;
    s->shares = shares;
    s->st.degree = k;
    s->st.bytes_out += mlen;
    s->phase = PH_SHARES;
    *out = msg;
    *len = mlen;
    return 0;
fail:
    sl_secagg_graph_fini(&g);
    free(m.adverts);
    free(node_reg);
    free(nbr);
    free(u2);
    free(u3);
    free(ans);
    free(need);
    free(nsh);
    free(bundles);
    free(shares);
    free(msg);
    return rc;
}

int sl_secagg_server_on_shares(sl_secagg_server *s, uint32_t sender, const uint8_t *buf,
                               size_t len, sl_err *err)
{
    int rc = check_phase(s, PH_SHARES, "shares", err);
    if (rc)
        return rc;
    long u = node_of(s, sender);
    if (u < 0)
        return refuse(s, sl_err_set(err, SL_EINVAL, "site %u: shares from a site that did not "
                                    "advertise keys", sender));
    if (s->in_u2[u])
        return refuse(s, sl_err_set(err, SL_ESTATE, "site %u: second share message", sender));
    sl_secagg_msg m;
    if ((rc = take(s, &m, SL_SECAGG_MSG_SHARES, sender, buf, len, err)))
        return rc;
    /* Exactly one bundle per neighbour: the list increases and every entry
     * is a neighbour, so with k entries it is the neighbour list itself. */
    for (uint32_t j = 0; j < m.count && !rc; j++) {
        long v = node_of(s, m.sealed[j].peer);
        if (v < 0 || !sl_secagg_graph_adjacent(&s->graph, (uint32_t)u, (uint32_t)v))
            rc = sl_err_set(err, SL_EFORMAT, "site %u: shares for site %u, which is not its "
                            "neighbour", sender, m.sealed[j].peer);
    }
    if (!rc && m.count != s->k)
        rc = sl_err_set(err, SL_EFORMAT, "site %u: %u bundles of shares for its %u neighbours",
                        sender, m.count, s->k);
    if (rc) {
        s->st.bytes_in -= len;
        sl_secagg_msg_fini(&m);
        return refuse(s, rc);
    }
    for (uint32_t j = 0; j < s->k; j++) /* same order as nb: increasing ids = nodes */
        memcpy(s->bundles + ((size_t)u * s->k + j) * SL_SECAGG_BUNDLE_BYTES, m.sealed[j].bundle,
               SL_SECAGG_BUNDLE_BYTES);
    s->in_u2[u] = 1;
    s->st.shared++;
    sl_secagg_msg_fini(&m);
    return 0;
}

int sl_secagg_server_end_shares(sl_secagg_server *s, sl_err *err)
{
    int rc = check_phase(s, PH_SHARES, "closing share collection", err);
    if (rc)
        return rc;
    if (s->st.shared < s->cfg.threshold) {
        s->phase = PH_ABORTED;
        return sl_err_set(err, SL_EABORT, "secagg round %llu aborted: %u sites sent shares, below "
                          "the threshold %u", (unsigned long long)s->round, s->st.shared,
                          s->cfg.threshold);
    }
    s->phase = PH_MASKED;
    return 0;
}

/* Slot of node v in u's neighbour list, or -1. */
static long slot_of(const sl_secagg_server *s, uint32_t u, uint32_t v)
{
    return find_u32(s->nbr + (size_t)u * s->k, s->k, v);
}

int sl_secagg_server_deliver(sl_secagg_server *s, uint32_t site, uint8_t **out, size_t *len,
                             sl_err *err)
{
    if (s->phase != PH_MASKED)
        return sl_err_set(err, SL_ESTATE, "secagg server: delivering shares during %s",
                          phase_name[s->phase]);
    long u = node_of(s, site);
    if (u < 0 || !s->in_u2[u])
        return sl_err_set(err, SL_ESTATE, "secagg server: site %u sent no shares; nothing to "
                          "deliver", site);
    sl_secagg_msg m;
    memset(&m, 0, sizeof m);
    m.type = SL_SECAGG_MSG_DELIVER;
    m.round = s->round;
    m.site = site;
    m.sealed = malloc(s->k * sizeof *m.sealed);
    if (!m.sealed)
        return sl_err_set(err, SL_ENOMEM, "secagg server: out of memory");
    const uint32_t *nb = s->nbr + (size_t)u * s->k;
    for (uint32_t j = 0; j < s->k; j++) {
        uint32_t v = nb[j];
        if (!s->in_u2[v])
            continue;
        long slot = slot_of(s, v, (uint32_t)u);
        m.sealed[m.count].peer = node_id(s, v);
        memcpy(m.sealed[m.count].bundle,
               s->bundles + ((size_t)v * s->k + (size_t)slot) * SL_SECAGG_BUNDLE_BYTES,
               SL_SECAGG_BUNDLE_BYTES);
        m.count++;
    }
    int rc = sl_secagg_msg_encode(&m, out, len, err);
    free(m.sealed);
    if (!rc)
        s->st.bytes_out += *len;
    return rc;
}

int sl_secagg_server_on_masked(sl_secagg_server *s, uint32_t sender, const uint8_t *buf,
                               size_t len, sl_err *err)
{
    int rc = check_phase(s, PH_MASKED, "masked input", err);
    if (rc)
        return rc;
    long u = node_of(s, sender);
    if (u < 0 || !s->in_u2[u])
        return refuse(s, sl_err_set(err, SL_EINVAL, "site %u: masked input from a site that sent "
                                    "no shares", sender));
    if (s->in_u3[u])
        return refuse(s, sl_err_set(err, SL_ESTATE, "site %u: second masked input refused (the "
                                    "first one stays in the sum)", sender));
    sl_secagg_msg m;
    if ((rc = take(s, &m, SL_SECAGG_MSG_MASKED, sender, buf, len, err)))
        return rc;
    if (m.bits != s->cfg.bits || m.dim != s->cfg.dim) {
        rc = sl_err_set(err, SL_EFORMAT, "site %u: masked vector of %u words mod 2^%u, expected "
                        "%u words mod 2^%u", sender, m.dim, m.bits, s->cfg.dim, s->cfg.bits);
        s->st.bytes_in -= len;
        sl_secagg_msg_fini(&m);
        return refuse(s, rc);
    }
    /* Streamed aggregation: add now, keep nothing of this vector. */
    const uint8_t *w = m.words;
    if (s->cfg.bits == 32) {
        uint32_t *acc = s->sum;
        for (size_t i = 0; i < s->cfg.dim; i++, w += 4)
            acc[i] += (uint32_t)w[0] | (uint32_t)w[1] << 8 | (uint32_t)w[2] << 16 |
                      (uint32_t)w[3] << 24;
    } else {
        uint64_t *acc = s->sum;
        for (size_t i = 0; i < s->cfg.dim; i++, w += 8) {
            uint64_t v = 0;
            for (int b = 7; b >= 0; b--)
                v = v << 8 | w[b];
            acc[i] += v;
        }
    }
    s->in_u3[u] = 1;
    s->st.masked++;
    sl_secagg_msg_fini(&m);
    return 0;
}

int sl_secagg_server_end_masked(sl_secagg_server *s, uint8_t **out, size_t *len, sl_err *err)
{
    int rc = check_phase(s, PH_MASKED, "closing input collection", err);
    if (rc)
        return rc;
    if (s->st.masked < s->cfg.threshold) {
        s->phase = PH_ABORTED;
        return sl_err_set(err, SL_EABORT, "secagg round %llu aborted: %u masked inputs, below the "
                          "threshold %u; nothing is released", (unsigned long long)s->round,
                          s->st.masked, s->cfg.threshold);
    }
    sl_secagg_msg m;
    memset(&m, 0, sizeof m);
    m.type = SL_SECAGG_MSG_UNMASK_REQ;
    m.round = s->round;
    m.ids = malloc(s->st.masked * sizeof *m.ids);
    if (!m.ids)
        return sl_err_set(err, SL_ENOMEM, "secagg server: out of memory");
    for (uint32_t i = 0; i < s->n1; i++)
        if (s->in_u3[i])
            m.ids[m.count++] = node_id(s, i);
    rc = sl_secagg_msg_encode(&m, out, len, err);
    free(m.ids);
    if (rc)
        return rc;
    /* Which secret each site's shares must rebuild: the self-mask seed of
     * every survivor; the mask key of every site that shared keys, sent no
     * input, and has a survivor among its neighbours (who masked with it). */
    for (uint32_t v = 0; v < s->n1; v++) {
        if (s->in_u3[v]) {
            s->need[v] = SL_SECAGG_SHARE_SELF;
        } else if (s->in_u2[v]) {
            const uint32_t *nb = s->nbr + (size_t)v * s->k;
            for (uint32_t j = 0; j < s->k; j++)
                if (s->in_u3[nb[j]])
                    s->need[v] = SL_SECAGG_SHARE_KEY;
        }
    }
    s->st.bytes_out += *len;
    s->phase = PH_UNMASK;
    return 0;
}

/* x coordinate of the share that node `holder` keeps of node `owner`'s
 * secrets: 1 + rank of holder in owner's group (neighbours and owner). */
static uint32_t share_x(const sl_secagg_server *s, uint32_t owner, uint32_t holder)
{
    const uint32_t *nb = s->nbr + (size_t)owner * s->k;
    uint32_t rank = 0;
    for (uint32_t j = 0; j < s->k; j++)
        rank += nb[j] < holder;
    rank += owner < holder;
    return rank + 1;
}

int sl_secagg_server_on_unmask(sl_secagg_server *s, uint32_t sender, const uint8_t *buf,
                               size_t len, sl_err *err)
{
    int rc = check_phase(s, PH_UNMASK, "unmasking answer", err);
    if (rc)
        return rc;
    long u = node_of(s, sender);
    if (u < 0 || !s->in_u3[u])
        return refuse(s, sl_err_set(err, SL_EINVAL, "site %u: unmasking answer from a site whose "
                                    "masked input is not in the sum", sender));
    if (s->answered[u])
        return refuse(s, sl_err_set(err, SL_ESTATE, "site %u: second unmasking answer", sender));
    sl_secagg_msg m;
    if ((rc = take(s, &m, SL_SECAGG_MSG_UNMASK, sender, buf, len, err)))
        return rc;
    /* Validate every entry before storing any. */
    for (uint32_t i = 0; i < m.count && !rc; i++) {
        const sl_secagg_unmask_share *e = &m.shares[i];
        const char *kind = e->kind == SL_SECAGG_SHARE_SELF ? "self-mask" : "key";
        long a = node_of(s, e->about);
        if (i + 1 < m.count && m.shares[i + 1].about == e->about)
            rc = m.shares[i + 1].kind != e->kind
                     ? sl_err_set(err, SL_EFORMAT, "site %u: asks to reveal both kinds of shares "
                                  "(self-mask and key) of site %u; refused", sender, e->about)
                     : sl_err_set(err, SL_EFORMAT, "site %u: two %s shares of site %u", sender,
                                  kind, e->about);
        else if (a < 0)
            rc = sl_err_set(err, SL_EFORMAT, "site %u: share of site %u, which is not in the round",
                            sender, e->about);
        else if (a != u && !sl_secagg_graph_adjacent(&s->graph, (uint32_t)u, (uint32_t)a))
            rc = sl_err_set(err, SL_EFORMAT, "site %u: share of site %u, which is not its "
                            "neighbour", sender, e->about);
        else if (!s->in_u2[a])
            rc = sl_err_set(err, SL_EFORMAT, "site %u: share of site %u, which never sent shares",
                            sender, e->about);
        else if (s->in_u3[a] && e->kind != SL_SECAGG_SHARE_SELF)
            rc = sl_err_set(err, SL_EFORMAT, "site %u: key share of site %u, whose input is in "
                            "the sum (only self-mask shares of survivors are taken)", sender,
                            e->about);
        else if (!s->in_u3[a] && e->kind != SL_SECAGG_SHARE_KEY)
            rc = sl_err_set(err, SL_EFORMAT, "site %u: self-mask share of site %u, which sent no "
                            "input (only key shares of dropped sites are taken)", sender,
                            e->about);
        else if (e->share[0] != share_x(s, (uint32_t)a, (uint32_t)u))
            rc = sl_err_set(err, SL_EFORMAT, "site %u: share of site %u at point %u, expected %u",
                            sender, e->about, e->share[0], share_x(s, (uint32_t)a, (uint32_t)u));
    }
    if (rc) {
        s->st.bytes_in -= len;
        sl_secagg_msg_fini(&m);
        return refuse(s, rc);
    }
    for (uint32_t i = 0; i < m.count; i++) {
        uint32_t a = (uint32_t)node_of(s, m.shares[i].about);
        if (!s->need[a])
            continue; /* valid but not needed (no surviving neighbour) */
        memcpy(s->shares + ((size_t)a * (s->k + 1) + s->nshares[a]) * SL_SECAGG_SHARE_BYTES,
               m.shares[i].share, SL_SECAGG_SHARE_BYTES);
        s->nshares[a]++;
    }
    s->answered[u] = 1;
    s->st.unmasked++;
    sl_secagg_msg_fini(&m);
    return 0;
}

int sl_secagg_server_ready(const sl_secagg_server *s)
{
    if (s->phase != PH_UNMASK)
        return 0;
    for (uint32_t v = 0; v < s->n1; v++)
        if (s->need[v] && s->nshares[v] < s->cfg.share_threshold)
            return 0;
    return 1;
}

static int abort_round(sl_secagg_server *s, int rc, sl_err *err)
{
    s->phase = PH_ABORTED;
    sl_err_prefix(err, "secagg round %llu aborted, nothing released", (unsigned long long)s->round);
    return rc == SL_ENOMEM ? rc : SL_EABORT;
}

int sl_secagg_server_finish(sl_secagg_server *s, void *out, sl_err *err)
{
    int rc = check_phase(s, PH_UNMASK, "finishing", err);
    if (rc)
        return rc;
    for (uint32_t v = 0; v < s->n1; v++)
        if (s->need[v] && s->nshares[v] < s->cfg.share_threshold) {
            sl_err_set(err, SL_EABORT, "%u of %u %s shares of site %u arrived", s->nshares[v],
                       s->cfg.share_threshold,
                       s->need[v] == SL_SECAGG_SHARE_SELF ? "self-mask" : "key", node_id(s, v));
            return abort_round(s, SL_EABORT, err);
        }
    /* Pass 1: rebuild and check every secret; collect the masks to remove. */
    size_t nseeds = 0, cap = 0;
    for (uint32_t v = 0; v < s->n1; v++)
        if (s->need[v] == SL_SECAGG_SHARE_SELF)
            cap++;
        else if (s->need[v] == SL_SECAGG_SHARE_KEY)
            cap += s->k;
    uint8_t (*seeds)[32] = cap ? malloc(cap * sizeof *seeds) : NULL;
    int *signs = cap ? malloc(cap * sizeof *signs) : NULL;
    sl_secagg_prg *prg = NULL;
    if (cap && (!seeds || !signs)) {
        rc = sl_err_set(err, SL_ENOMEM, "secagg server: out of memory for %zu masks", cap);
        goto out;
    }
    for (uint32_t v = 0; v < s->n1 && !rc; v++) {
        if (!s->need[v])
            continue;
        const uint8_t *pick[SL_SECAGG_SHAMIR_MAX_SHARES];
        for (uint32_t i = 0; i < s->cfg.share_threshold; i++)
            pick[i] = s->shares + ((size_t)v * (s->k + 1) + i) * SL_SECAGG_SHARE_BYTES;
        uint8_t secret[32];
        if ((rc = sl_secagg_shamir_combine(secret, 32, pick, s->cfg.share_threshold, err)))
            break;
        const sl_secagg_advert *a = &s->adv[s->node_reg[v]];
        uint32_t vid = node_id(s, v);
        if (s->need[v] == SL_SECAGG_SHARE_SELF) {
            uint8_t c[32];
            sl_secagg_keys_commit(c, secret, s->round, vid);
            if (sodium_memcmp(c, a->commit, 32) != 0)
                rc = sl_err_set(err, SL_ECRYPTO, "the rebuilt self-mask seed of site %u does not "
                                "match its commitment (a bad share)", vid);
            memcpy(seeds[nseeds], secret, 32);
            signs[nseeds++] = -1;
        } else {
            uint8_t pk[32];
            crypto_scalarmult_base(pk, secret);
            if (sodium_memcmp(pk, a->s_pk, 32) != 0)
                rc = sl_err_set(err, SL_ECRYPTO, "the rebuilt mask key of site %u does not match "
                                "its public key (a bad share)", vid);
            const uint32_t *nb = s->nbr + (size_t)v * s->k;
            for (uint32_t j = 0; j < s->k && !rc; j++) {
                uint32_t u = nb[j];
                if (!s->in_u3[u])
                    continue;
                uint32_t uid = node_id(s, u);
                rc = sl_secagg_keys_pair_seed(seeds[nseeds], secret, a->s_pk,
                                              s->adv[s->node_reg[u]].s_pk, vid, uid, s->round,
                                              err);
                /* u added +mask when uid < vid, else -mask: take it back. */
                signs[nseeds++] = uid < vid ? -1 : 1;
            }
        }
        sodium_memzero(secret, sizeof secret);
    }
    if (rc)
        goto out;
    /* Pass 2: expand and subtract, many masks per pass over the sum. */
    if ((rc = sl_secagg_prg_create(&prg, err)))
        goto out;
    for (size_t i = 0; i < nseeds && !rc; i += SEEDS_PER_BATCH) {
        size_t b = nseeds - i < SEEDS_PER_BATCH ? nseeds - i : SEEDS_PER_BATCH;
        rc = sl_secagg_prg_apply(prg, s->sum, s->cfg.dim, s->cfg.bits, seeds + i, signs + i, b,
                                 err);
    }
    if (!rc) {
        memcpy(out, s->sum, (size_t)s->cfg.dim * (s->cfg.bits / 8));
        s->st.masks = nseeds;
    }
out:
    sl_secagg_prg_free(prg);
    if (seeds)
        sodium_memzero(seeds, cap * sizeof *seeds);
    free(seeds);
    free(signs);
    sodium_memzero(s->shares, (size_t)s->n1 * (s->k + 1) * SL_SECAGG_SHARE_BYTES);
    if (rc)
        return abort_round(s, rc, err);
    s->phase = PH_DONE;
    return 0;
}

void sl_secagg_server_get_stats(const sl_secagg_server *s, sl_secagg_server_stats *st)
{
    *st = s->st;
    uint64_t n = s->nreg, n1 = s->n1, k = s->k;
    st->state_bytes = sizeof *s + (uint64_t)s->cfg.dim * (s->cfg.bits / 8) +
                      n * (4 + 32 + 1 + sizeof(sl_secagg_advert)) +
                      n1 * (4 + 4 * k + 4 + 4 + k * SL_SECAGG_BUNDLE_BYTES +
                            (k + 1) * SL_SECAGG_SHARE_BYTES);
}

uint32_t sl_secagg_server_contributors(const sl_secagg_server *s, uint32_t *ids, uint32_t cap)
{
    uint32_t n = 0;
    if (s->phase == PH_ADVERTISE || !s->in_u3)
        return 0;
    for (uint32_t i = 0; i < s->n1; i++)
        if (s->in_u3[i]) {
            if (n < cap)
                ids[n] = node_id(s, i);
            n++;
        }
    return n;
}

void sl_secagg_server_share_counts(const sl_secagg_server *s, uint32_t site, uint32_t *n_self,
                                   uint32_t *n_key)
{
    *n_self = *n_key = 0;
    long v = node_of(s, site);
    if (v < 0 || !s->need)
        return;
    if (s->need[v] == SL_SECAGG_SHARE_SELF)
        *n_self = s->nshares[v];
    else if (s->need[v] == SL_SECAGG_SHARE_KEY)
        *n_key = s->nshares[v];
}
