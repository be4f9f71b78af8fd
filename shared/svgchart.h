/* shared/svgchart.h - self-contained SVG line charts (no scripts, no
 * external references) for figures the tools write beside their results:
 * the training loss curve, the auditor's epsilon plot. Text is XML-escaped;
 * non-finite values are skipped. Pure functions of their inputs; reentrant. */
#ifndef SL_SVGCHART_H
#define SL_SVGCHART_H
#include <stddef.h>
#include <stdio.h>

typedef struct sl_svg_series {
    const char *name;    /* legend entry */
    const char *colour;  /* SVG colour, e.g. "#1f77b4" */
    const double *x, *y; /* n points, x non-decreasing */
    size_t n;
} sl_svg_series;

/* Writes a chart of the series with axis titles and a legend. y_from_zero:
 * the y axis starts at 0, otherwise at the data's minimum. Returns 0, or -1
 * if writing failed. */
int sl_svg_lines(FILE *f, const sl_svg_series *s, int ns, const char *title, const char *xlabel,
                 const char *ylabel, int y_from_zero);
/* XML-escapes s onto f (control characters dropped). */
void sl_svg_escape(FILE *f, const char *s);
/* A tick step of 1, 2 or 5 times a power of ten giving about n ticks. */
double sl_svg_nice_step(double span, int n);
#endif
