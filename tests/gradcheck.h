/* tests/gradcheck.h - central finite differences against analytic gradients.
 *
 * The scalar under test is computed by a callback; it should accumulate in
 * double (e.g. sum_i out_i * R_i with a fixed random R) so that the only float
 * rounding is in the kernel itself. For each probed coordinate x_j the check
 * compares (f(x_j + h) - f(x_j - h)) / 2h with the analytic value, and reports
 * the relative error of the probed vectors: ||fd - an|| / max(||fd||, ||an||).
 *
 * Why the tolerances used with it hold: with h = 1e-2 on inputs of order 1
 * the truncation error of the central difference is O(h^2 f''') ~ 1e-4
 * relative for the smooth kernels here, and float32 rounding of the forward
 * pass (~6e-8 relative per value, summed in double) contributes about
 * 1e-6 / h ~ 1e-4 relative at worst; observed errors are 1e-6 to 4e-5
 * (SL_GRADCHECK_VERBOSE=1 prints them). The suites use 5e-4: ten times the
 * worst observed, while a gradient off by 1% already gives 1e-2 and a wrong
 * sign, transpose or missing term gives errors of order 1. */
#ifndef SL_TEST_GRADCHECK_H
#define SL_TEST_GRADCHECK_H
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

typedef double (*sl_gc_fn)(void *ctx);

/* Probes up to max_probe coordinates of x[n] (evenly spread), restoring x.
 * Returns the relative error. */
static inline double sl_gradcheck(float *x, size_t n, const float *analytic, sl_gc_fn f,
                                  void *ctx, float h, size_t max_probe)
{
    size_t step = n > max_probe ? n / max_probe : 1;
    double dd = 0, nf = 0, na = 0;
    for (size_t j = 0; j < n; j += step) {
        float keep = x[j];
        x[j] = keep + h;
        double fp = f(ctx);
        x[j] = keep - h;
        double fm = f(ctx);
        x[j] = keep;
        /* divide by the actual float step, not h: keep+h is rounded */
        double fd = (fp - fm) / ((double)(keep + h) - (double)(keep - h));
        double an = analytic[j];
        dd += (fd - an) * (fd - an);
        nf += fd * fd;
        na += an * an;
    }
    double den = sqrt(nf > na ? nf : na);
    double rel = den > 0 ? sqrt(dd) / den : sqrt(dd);
    if (getenv("SL_GRADCHECK_VERBOSE")) /* to see the margin under the tolerance */
        fprintf(stderr, "gradcheck: n=%zu probed=%zu rel=%.3g\n", n, (n + step - 1) / step, rel);
    return rel;
}

#endif
