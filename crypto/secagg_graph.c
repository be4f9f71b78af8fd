#include "crypto/secagg_graph.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/dp_rng.h"

int sl_secagg_graph_init(sl_secagg_graph *g, uint32_t n, uint32_t k, const uint8_t seed[32],
                         sl_err *err)
{
    if (n < 2)
        return sl_err_set(err, SL_EINVAL, "secagg graph: %u nodes (need >= 2)", n);
    if (k != n - 1 && (k < 2 || k % 2 || k >= n - 1))
        return sl_err_set(err, SL_EINVAL, "secagg graph: degree %u for %u nodes (want n - 1, or "
                          "even and below n - 1)", k, n);
    sl_secagg_graph t = {n, k, NULL, NULL};
    if (k < n - 1) {
        t.pos = malloc((size_t)n * sizeof *t.pos);
        t.at = malloc((size_t)n * sizeof *t.at);
        if (!t.pos || !t.at) {
            free(t.pos);
            free(t.at);
            return sl_err_set(err, SL_ENOMEM, "secagg graph: out of memory for %u nodes", n);
        }
        static const char dom[] = "sealora secagg graph ring v1";
        uint8_t key[32];
        crypto_generichash(key, sizeof key, (const uint8_t *)dom, sizeof dom - 1, seed, 32);
        sl_dp_rng r;
        sl_dp_rng_init_seeded(&r, key);
        for (uint32_t i = 0; i < n; i++)
            t.at[i] = i;
        for (uint32_t i = n - 1; i > 0; i--) {
            uint32_t j = (uint32_t)sl_dp_rng_below(&r, (uint64_t)i + 1), x = t.at[i];
            t.at[i] = t.at[j];
            t.at[j] = x;
        }
        sl_dp_rng_fini(&r);
        for (uint32_t p = 0; p < n; p++)
            t.pos[t.at[p]] = p;
    }
    *g = t;
    return 0;
}

void sl_secagg_graph_fini(sl_secagg_graph *g)
{
    if (!g)
        return;
    free(g->pos);
    free(g->at);
    g->pos = g->at = NULL;
}

int sl_secagg_graph_adjacent(const sl_secagg_graph *g, uint32_t a, uint32_t b)
{
    if (a == b || a >= g->n || b >= g->n)
        return 0;
    if (!g->pos)
        return 1;
    uint32_t d = g->pos[a] > g->pos[b] ? g->pos[a] - g->pos[b] : g->pos[b] - g->pos[a];
    if (d > g->n - d)
        d = g->n - d;
    return d <= g->k / 2;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

uint32_t sl_secagg_graph_neighbours(const sl_secagg_graph *g, uint32_t a, uint32_t *out)
{
    uint32_t m = 0;
    if (!g->pos) {
        for (uint32_t i = 0; i < g->n; i++)
            if (i != a)
                out[m++] = i;
        return m;
    }
    uint32_t p = g->pos[a];
    for (uint32_t j = 1; j <= g->k / 2; j++) {
        out[m++] = g->at[(p + j) % g->n];
        out[m++] = g->at[(p + g->n - j) % g->n];
    }
    qsort(out, m, sizeof *out, cmp_u32);
    return m;
}
