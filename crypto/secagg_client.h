/* crypto/secagg_client.h - a site's side of secure aggregation as a
 * transport-free state machine (docs/secagg.md). The runtime passes each
 * server message in and sends back what comes out:
 *
 *   advertise -> ADVERTISE          (two fresh X25519 keys, signed)
 *   on_keylist(KEYLIST) -> SHARES   (checks every signature and the round's
 *                                    parameters, rebuilds the graph, Shamir-
 *                                    shares its self-mask seed and mask key
 *                                    among its neighbours and itself, seals
 *                                    each neighbour's pair of shares to it)
 *   on_deliver(DELIVER, x) -> MASKED (y = x + PRG(self seed)
 *                                    +- PRG(pair seed) for each neighbour
 *                                    whose shares arrived, mod 2^bits)
 *   on_unmask_request(UNMASK_REQ) -> UNMASK (for each neighbour: the self-
 *                                    mask share if it survived, else the key
 *                                    share; never both; nothing at all when
 *                                    fewer than t survivors are claimed)
 *
 * x is the site's quantised update (crypto/dp encodes it). A bad message is
 * refused with an error and leaves the state as it was. Secrets live in
 * sodium_malloc'd memory, wiped on free; the identity key is borrowed and
 * must outlive the client; rng is borrowed (libsodium's CSPRNG in
 * production). Not thread-safe. */
#ifndef SL_SECAGG_CLIENT_H
#define SL_SECAGG_CLIENT_H
#include <stddef.h>
#include <stdint.h>

#include "crypto/dp_rng.h"
#include "crypto/secagg_config.h"
#include "shared/err.h"

typedef struct sl_secagg_client sl_secagg_client;

/* Registry of the sites' Ed25519 identity public keys as in the server;
 * sign_sk is this site's Ed25519 secret key (libsodium's 64-byte form). */
int sl_secagg_client_create(sl_secagg_client **out, const sl_secagg_config *cfg, uint64_t round,
                            uint32_t site, const uint8_t sign_sk[64], const uint32_t *site_ids,
                            const uint8_t (*sign_pks)[32], uint32_t n_sites, sl_dp_rng *rng,
                            sl_err *err);
void sl_secagg_client_free(sl_secagg_client *c); /* accepts NULL; wipes secrets */

int sl_secagg_client_advertise(sl_secagg_client *c, uint8_t **out, size_t *len, sl_err *err);
int sl_secagg_client_on_keylist(sl_secagg_client *c, const uint8_t *msg, size_t len,
                                uint8_t **out, size_t *out_len, sl_err *err);
/* input: cfg.dim words of cfg.bits bits (host order). */
int sl_secagg_client_on_deliver(sl_secagg_client *c, const uint8_t *msg, size_t len,
                                const void *input, uint8_t **out, size_t *out_len, sl_err *err);
int sl_secagg_client_on_unmask_request(sl_secagg_client *c, const uint8_t *msg, size_t len,
                                       uint8_t **out, size_t *out_len, sl_err *err);
/* Neighbours whose shares this site received (after on_deliver). */
uint32_t sl_secagg_client_peers(const sl_secagg_client *c);

#endif
