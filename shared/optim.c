#include "shared/optim.h"

#include <math.h>
#include <stdlib.h>

int sl_adamw_init(sl_adamw *o, size_t n, float weight_decay, sl_err *err)
{
    o->beta1 = 0.9f;
    o->beta2 = 0.999f;
    o->eps = 1e-8f;
    o->weight_decay = weight_decay;
    o->n = n;
    o->t = 0;
    o->m = calloc(n ? n : 1, sizeof(float));
    o->v = calloc(n ? n : 1, sizeof(float));
    if (!o->m || !o->v) {
        sl_adamw_fini(o);
        return sl_err_set(err, SL_ENOMEM, "optimizer: cannot allocate state for %zu parameters", n);
    }
    return 0;
}

void sl_adamw_fini(sl_adamw *o)
{
    free(o->m);
    free(o->v);
    o->m = o->v = NULL;
}

void sl_adamw_step(sl_adamw *o, const sl_param_seg *segs, int nsegs, float lr)
{
    o->t++;
    float b1 = o->beta1, b2 = o->beta2, eps = o->eps;
    float c1 = 1.0f - powf(b1, (float)o->t), c2 = 1.0f - powf(b2, (float)o->t);
    size_t off = 0;
    for (int s = 0; s < nsegs; s++) {
        float *w = segs[s].w, *m = o->m + off, *v = o->v + off;
        const float *g = segs[s].g;
        float wd = segs[s].decay ? o->weight_decay : 0.0f;
        long n = (long)segs[s].n;
#pragma omp parallel for schedule(static)
        for (long i = 0; i < n; i++) {
            float gi = g[i];
            m[i] = b1 * m[i] + (1.0f - b1) * gi;
            v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
            float mh = m[i] / c1, vh = v[i] / c2;
            w[i] -= lr * (mh / (sqrtf(vh) + eps) + wd * w[i]);
        }
        off += segs[s].n;
    }
}

double sl_grad_norm(const sl_param_seg *segs, int nsegs)
{
    double s2 = 0.0;
    for (int s = 0; s < nsegs; s++) {
        const float *g = segs[s].g;
        long n = (long)segs[s].n;
        /* Fixed blocks summed in order: bit-identical for any thread count
         * (an OpenMP reduction combines partials in arrival order). */
        enum { BLK = 1 << 14 };
        long nb = (n + BLK - 1) / BLK;
        for (long b0 = 0; b0 < nb; b0 += 256) {
            double part[256];
            long b1 = b0 + 256 < nb ? b0 + 256 : nb;
#pragma omp parallel for schedule(static)
            for (long b = b0; b < b1; b++) {
                double acc = 0.0;
                long e = (b + 1) * BLK < n ? (b + 1) * BLK : n;
                for (long i = b * BLK; i < e; i++)
                    acc += (double)g[i] * g[i];
                part[b - b0] = acc;
            }
            for (long b = b0; b < b1; b++)
                s2 += part[b - b0];
        }
    }
    return sqrt(s2);
}

double sl_grad_clip(const sl_param_seg *segs, int nsegs, double max_norm)
{
    double norm = sl_grad_norm(segs, nsegs);
    if (max_norm > 0 && norm > max_norm) {
        float k = (float)(max_norm / norm);
        for (int s = 0; s < nsegs; s++) {
            float *g = (float *)segs[s].g;
            long n = (long)segs[s].n;
#pragma omp parallel for schedule(static)
            for (long i = 0; i < n; i++)
                g[i] *= k;
        }
    }
    return norm;
}

float sl_lr_schedule(long step, long total, long warmup, float lr_max, float lr_min)
{
    if (warmup > 0 && step < warmup)
        return lr_max * (float)(step + 1) / (float)warmup;
    long span = total - warmup - 1;
    if (span <= 0)
        return lr_max;
    double p = (double)(step - warmup) / (double)span;
    p = p < 0 ? 0 : p > 1 ? 1 : p;
    return lr_min + (lr_max - lr_min) * (float)(0.5 * (1.0 + cos(M_PI * p)));
}
