#include "shared/sample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int sl_sample_cfg_validate(const sl_sample_cfg *c, sl_err *err)
{
    if (!(c->temperature >= 0 && c->temperature <= 100))
        return sl_err_set(err, SL_EINVAL, "temperature %g must be in 0..100", c->temperature);
    if (c->top_k < 0)
        return sl_err_set(err, SL_EINVAL, "top-k %d must be at least 0", c->top_k);
    if (!(c->top_p > 0 && c->top_p <= 1))
        return sl_err_set(err, SL_EINVAL, "top-p %g must be in (0, 1]", c->top_p);
    return 0;
}

typedef struct {
    float p;
    int32_t id;
} cand;

/* Descending probability, ascending id on ties (deterministic order). */
static int by_p_desc(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->p != y->p)
        return x->p < y->p ? 1 : -1;
    return (x->id > y->id) - (x->id < y->id);
}

static int is_banned(int32_t id, const int32_t *banned, int n)
{
    for (int i = 0; i < n; i++)
        if (banned[i] == id)
            return 1;
    return 0;
}

int32_t sl_sample_next(const float *logits, int V, const sl_sample_cfg *c, sl_rng *rng,
                       void *scratch, const int32_t *banned, int n_banned)
{
    if (n_banned >= V)
        n_banned = 0;
    cand *cs = scratch;
    int n = 0;
    float mx = -INFINITY;
    for (int i = 0; i < V; i++)
        if (!is_banned(i, banned, n_banned) && logits[i] > mx)
            mx = logits[i];
    if (c->temperature == 0) {
        for (int i = 0; i < V; i++)
            if (!is_banned(i, banned, n_banned) && logits[i] == mx)
                return i;
        return 0;
    }
    double sum = 0;
    for (int i = 0; i < V; i++) {
        if (is_banned(i, banned, n_banned))
            continue;
        float p = expf((logits[i] - mx) / c->temperature);
        cs[n].p = p;
        cs[n].id = i;
        sum += p;
        n++;
    }
    qsort(cs, (size_t)n, sizeof *cs, by_p_desc);
    int keep = n;
    if (c->top_k > 0 && c->top_k < keep)
        keep = c->top_k;
    if (c->top_p < 1) {
        double kept = 0, total = 0;
        for (int i = 0; i < keep; i++)
            total += cs[i].p;
        int j = 0;
        while (j < keep) {
            kept += cs[j].p;
            j++;
            if (kept >= c->top_p * total)
                break;
        }
        keep = j;
    }
    sum = 0;
    for (int i = 0; i < keep; i++)
        sum += cs[i].p;
    double u = sl_rng_uniform(rng) * sum, acc = 0;
    for (int i = 0; i < keep; i++) {
        acc += cs[i].p;
        if (u < acc)
            return cs[i].id;
    }
    return cs[keep - 1].id;
}
