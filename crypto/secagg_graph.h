/* crypto/secagg_graph.h - the masking graph of SecAgg+ (Bell et al. 2020):
 * which sites mask with, and share their secrets with, which. Nodes are the
 * indices 0..n-1 of the participating sites in increasing site-id order.
 * Complete graph when k = n - 1; otherwise a Harary graph on a random ring:
 * the nodes are placed on a ring in an order drawn from the seed (Fisher-
 * Yates on a stream keyed by BLAKE2b(seed)) and each is joined to the k/2
 * nearest on either side, so every node has exactly k neighbours. The seed
 * is a hash of the signed key list the server broadcasts, so every site
 * rebuilds the same graph and can check the neighbours the server uses;
 * the server cannot pick the graph without changing the list (docs/secagg.md).
 * Owns two arrays; fini frees them. Read-only after init: thread-safe. */
#ifndef SL_SECAGG_GRAPH_H
#define SL_SECAGG_GRAPH_H
#include <stdint.h>

#include "shared/err.h"

typedef struct sl_secagg_graph {
    uint32_t n, k; /* nodes, degree (k = n - 1: complete) */
    uint32_t *pos; /* pos[i]: ring place of node i (NULL when complete) */
    uint32_t *at;  /* at[p]: node at ring place p (NULL when complete) */
} sl_secagg_graph;

/* k must be n - 1, or even with 2 <= k < n - 1; n >= 2. */
int sl_secagg_graph_init(sl_secagg_graph *g, uint32_t n, uint32_t k, const uint8_t seed[32],
                         sl_err *err);
void sl_secagg_graph_fini(sl_secagg_graph *g); /* accepts a zeroed graph */
int sl_secagg_graph_adjacent(const sl_secagg_graph *g, uint32_t a, uint32_t b);
/* Writes the k neighbours of a, in increasing order, to out; returns k. */
uint32_t sl_secagg_graph_neighbours(const sl_secagg_graph *g, uint32_t a, uint32_t *out);

#endif
