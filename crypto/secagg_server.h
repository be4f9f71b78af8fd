/* crypto/secagg_server.h - the server's side of secure aggregation
 * (Bonawitz et al. 2017 with the SecAgg+ graph of Bell et al. 2020) as a
 * transport-free state machine. The runtime feeds it each site's message
 * with the sender identity the authenticated channel established, and
 * broadcasts what it returns:
 *
 *   on_advertise* -> end_advertise (KEYLIST to all) -> on_shares* ->
 *   end_shares -> deliver(site) (DELIVER to each) -> on_masked* ->
 *   end_masked (UNMASK_REQ to all) -> on_unmask* -> [ready] -> finish(sum)
 *
 * Masked inputs are added into one running sum as they arrive, so memory
 * is one vector plus O(sites x degree) bundles and shares, independent of
 * how many vectors arrive. A message that breaks the protocol (wrong
 * round, site, length, non-neighbour, duplicate, a share of the wrong
 * kind, both kinds for one site) is refused with an error naming the site
 * and what is wrong, changes nothing, and the round goes on without it.
 * Shares of one site's secrets are kept under one kind only: self-mask
 * shares for sites whose masked input arrived, key shares for those that
 * shared keys but sent no input; the other kind is refused, so the server
 * never holds both. The round aborts (SL_EABORT, nothing released) below
 * min_cohort advertisers, below t masked inputs, or when a needed secret
 * cannot be rebuilt and checked against the site's commitment or public key.
 *
 * Owns all its memory (secrets wiped on free); not thread-safe. */
#ifndef SL_SECAGG_SERVER_H
#define SL_SECAGG_SERVER_H
#include <stddef.h>
#include <stdint.h>

#include "crypto/secagg_config.h"
#include "shared/err.h"

typedef struct sl_secagg_server sl_secagg_server;

typedef struct sl_secagg_server_stats {
    uint32_t advertised;  /* U1: key advertisements accepted */
    uint32_t shared;      /* U2: share messages accepted */
    uint32_t masked;      /* U3: masked inputs in the sum */
    uint32_t unmasked;    /* U5: unmasking answers accepted */
    uint32_t refused;     /* messages refused */
    uint32_t degree;      /* degree in effect (after key advertisement) */
    uint64_t bytes_in, bytes_out; /* message bytes taken and produced */
    uint64_t masks;       /* masks expanded by finish (self + pairwise) */
    uint64_t state_bytes; /* memory the round holds: one sum vector plus
                           * O(sites x degree) bundles and shares */
} sl_secagg_server_stats;

/* Registry: the n_sites sites allowed in the round with their Ed25519
 * identity public keys (any order, distinct ids). cfg must validate. */
int sl_secagg_server_create(sl_secagg_server **out, const sl_secagg_config *cfg, uint64_t round,
                            const uint32_t *site_ids, const uint8_t (*sign_pks)[32],
                            uint32_t n_sites, sl_err *err);
void sl_secagg_server_free(sl_secagg_server *s); /* accepts NULL */

int sl_secagg_server_on_advertise(sl_secagg_server *s, uint32_t sender, const uint8_t *msg,
                                  size_t len, sl_err *err);
/* Closes key advertisement; *out is the KEYLIST for every site (free()).
 * SL_EABORT below min_cohort. */
int sl_secagg_server_end_advertise(sl_secagg_server *s, uint8_t **out, size_t *len, sl_err *err);
int sl_secagg_server_on_shares(sl_secagg_server *s, uint32_t sender, const uint8_t *msg,
                               size_t len, sl_err *err);
/* Closes share collection (the sites that sent shares form U2). */
int sl_secagg_server_end_shares(sl_secagg_server *s, sl_err *err);
/* The DELIVER message for one site of U2 (free()). */
int sl_secagg_server_deliver(sl_secagg_server *s, uint32_t site, uint8_t **out, size_t *len,
                             sl_err *err);
int sl_secagg_server_on_masked(sl_secagg_server *s, uint32_t sender, const uint8_t *msg,
                               size_t len, sl_err *err);
/* Closes input collection; *out is the UNMASK_REQ for the survivors
 * (free()). SL_EABORT below t inputs. */
int sl_secagg_server_end_masked(sl_secagg_server *s, uint8_t **out, size_t *len, sl_err *err);
int sl_secagg_server_on_unmask(sl_secagg_server *s, uint32_t sender, const uint8_t *msg,
                               size_t len, sl_err *err);
/* 1 when every needed secret has enough shares to be rebuilt. */
int sl_secagg_server_ready(const sl_secagg_server *s);
/* Rebuilds the needed secrets, removes every mask and writes the sum of the
 * masked inputs' vectors (cfg.dim words of cfg.bits bits, host order) to
 * sum. SL_EABORT (round over, nothing written) when not ready or a rebuilt
 * secret fails its check. */
int sl_secagg_server_finish(sl_secagg_server *s, void *sum, sl_err *err);

void sl_secagg_server_get_stats(const sl_secagg_server *s, sl_secagg_server_stats *st);
/* Ids of the sites whose masked input is in the sum (after end_masked);
 * returns the count and writes up to cap ids. */
uint32_t sl_secagg_server_contributors(const sl_secagg_server *s, uint32_t *ids, uint32_t cap);
/* How many self-mask and key shares the server holds for one site (for
 * tests and audits of the "never both kinds" rule). */
void sl_secagg_server_share_counts(const sl_secagg_server *s, uint32_t site, uint32_t *n_self,
                                   uint32_t *n_key);

#endif
