/* audit/svgplot.h - the auditor's plot: epsilon against rounds with the
 * budget line, as a self-contained SVG document (no scripts, no external
 * references). Text is XML-escaped; infinite or missing values are drawn
 * at the top edge and marked, never written as numbers. Pure function of
 * its inputs; reentrant. */
#ifndef SL_AUDIT_SVGPLOT_H
#define SL_AUDIT_SVGPLOT_H
#include <stddef.h>
#include <stdio.h>

typedef struct sl_svgplot_series {
    const double *x;  /* round numbers, n values, non-decreasing */
    const double *y;  /* epsilon after each round (may be +inf) */
    size_t n;
} sl_svgplot_series;

/* Writes the plot to f: `eps` as a line with points, `claimed` (may have
 * n == 0) as hollow markers, a dashed budget line when budget > 0, and the
 * title (plain text). Returns 0, or -1 if writing failed. */
int sl_svgplot_epsilon(FILE *f, const sl_svgplot_series *eps, const sl_svgplot_series *claimed,
                       double budget, double delta, const char *title);

#endif
