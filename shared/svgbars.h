/* shared/svgbars.h - a self-contained SVG bar chart (no scripts, no
 * external references): one bar per labelled value, its value printed
 * above it, for tables the tools write beside their results (the offsite
 * table). Text is XML-escaped (shared/svgchart); non-finite values are
 * drawn as an empty slot marked "n/a". Pure function; reentrant. */
#ifndef SL_SVGBARS_H
#define SL_SVGBARS_H
#include <stddef.h>
#include <stdio.h>

typedef struct sl_svg_bar {
    const char *label;   /* under the bar; may hold '\n' for a second line */
    double value;
    const char *colour;  /* SVG colour, e.g. "#1f77b4" */
} sl_svg_bar;

/* Writes the chart: title, y axis from 0 with ticks and ylabel, the bars
 * with their values (printed with fmt, e.g. "%.2f"). Returns 0, or -1 if
 * writing failed. */
int sl_svg_bars(FILE *f, const sl_svg_bar *bars, size_t n, const char *title, const char *ylabel,
                const char *fmt);

#endif
