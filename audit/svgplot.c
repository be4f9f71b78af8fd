#include "audit/svgplot.h"

#include <math.h>
#include <string.h>

#include "shared/svgchart.h"

#define W 760.0
#define H 440.0
#define ML 72.0 /* margins: room for tick labels and axis titles */
#define MR 24.0
#define MT 48.0
#define MB 56.0

int sl_svgplot_epsilon(FILE *f, const sl_svgplot_series *eps, const sl_svgplot_series *claimed,
                       double budget, double delta, const char *title)
{
    double xmin = INFINITY, xmax = -INFINITY, ymax = budget > 0 ? budget : 0;
    const sl_svgplot_series *all[2] = {eps, claimed};
    for (int s = 0; s < 2; s++)
        for (size_t i = 0; all[s] && i < all[s]->n; i++) {
            if (isfinite(all[s]->x[i])) {
                xmin = fmin(xmin, all[s]->x[i]);
                xmax = fmax(xmax, all[s]->x[i]);
            }
            if (isfinite(all[s]->y[i]))
                ymax = fmax(ymax, all[s]->y[i]);
        }
    if (!(xmin <= xmax)) {
        xmin = 0;
        xmax = 1;
    }
    if (xmax == xmin)
        xmax = xmin + 1;
    if (!(ymax > 0))
        ymax = 1;
    double ystep = sl_svg_nice_step(ymax * 1.08, 6);
    double ytop = ceil(ymax * 1.08 / ystep) * ystep;
    double xstep = fmax(1, sl_svg_nice_step(xmax - xmin, 8));
    double pw = W - ML - MR, ph = H - MT - MB;
#define PX(x) (ML + ((x) - xmin) / (xmax - xmin) * pw)
#define PY(y) (MT + ph - (isfinite(y) ? fmin(y, ytop) : ytop) / ytop * ph)
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
               "viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" font-size=\"12\">\n",
            W, H, W, H);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    fprintf(f, "<text x=\"%.1f\" y=\"24\" font-size=\"15\">", ML);
    sl_svg_escape(f, title);
    fprintf(f, "</text>\n");
    /* Grid, ticks and labels. */
    fprintf(f, "<g stroke=\"#dddddd\">\n");
    for (double y = 0; y <= ytop * (1 + 1e-9); y += ystep)
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", ML, PY(y), ML + pw,
                PY(y));
    fprintf(f, "</g>\n<g text-anchor=\"end\">\n");
    for (double y = 0; y <= ytop * (1 + 1e-9); y += ystep)
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">%g</text>\n", ML - 6, PY(y) + 4, y);
    fprintf(f, "</g>\n<g text-anchor=\"middle\">\n");
    for (double x = ceil(xmin / xstep) * xstep; x <= xmax + 1e-9; x += xstep)
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">%g</text>\n", PX(x), MT + ph + 18, x);
    fprintf(f, "</g>\n");
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
               "stroke=\"#444444\"/>\n",
            ML, MT, pw, ph);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">round</text>\n", ML + pw / 2,
            H - 14);
    fprintf(f, "<text transform=\"translate(18 %.1f) rotate(-90)\" text-anchor=\"middle\">"
               "epsilon (delta %g)</text>\n",
            MT + ph / 2, delta);
    /* Budget. */
    if (budget > 0) {
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#c0392b\" "
                   "stroke-width=\"1.5\" stroke-dasharray=\"6 4\"/>\n",
                ML, PY(budget), ML + pw, PY(budget));
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" fill=\"#c0392b\">budget "
                   "%g</text>\n",
                ML + pw - 4, PY(budget) - 5, budget);
    }
    /* Recomputed epsilon. */
    if (eps && eps->n) {
        fprintf(f, "<polyline fill=\"none\" stroke=\"#1f5fa8\" stroke-width=\"2\" points=\"");
        for (size_t i = 0; i < eps->n; i++)
            fprintf(f, "%s%.1f,%.1f", i ? " " : "", PX(eps->x[i]), PY(eps->y[i]));
        fprintf(f, "\"/>\n<g fill=\"#1f5fa8\">\n");
        for (size_t i = 0; i < eps->n; i++) {
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\"/>\n", PX(eps->x[i]),
                    PY(eps->y[i]));
            if (!isfinite(eps->y[i]))
                fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">inf</text>\n",
                        PX(eps->x[i]), PY(eps->y[i]) - 6);
        }
        fprintf(f, "</g>\n");
    } else {
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">no released round</text>\n",
                ML + pw / 2, MT + ph / 2);
    }
    /* Claimed epsilon. */
    if (claimed && claimed->n) {
        fprintf(f, "<g fill=\"none\" stroke=\"#7f8c8d\">\n");
        for (size_t i = 0; i < claimed->n; i++)
            if (isfinite(claimed->y[i]))
                fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"7\" height=\"7\"/>\n",
                        PX(claimed->x[i]) - 3.5, PY(claimed->y[i]) - 3.5);
        fprintf(f, "</g>\n");
    }
    /* Legend. */
    double lx = ML + 10, ly = MT + 14;
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#1f5fa8\" "
               "stroke-width=\"2\"/><text x=\"%.1f\" y=\"%.1f\">recomputed by the auditor</text>\n",
            lx, ly, lx + 22, ly, lx + 28, ly + 4);
    if (claimed && claimed->n)
        fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"7\" height=\"7\" fill=\"none\" "
                   "stroke=\"#7f8c8d\"/><text x=\"%.1f\" y=\"%.1f\">claimed in the log</text>\n",
                lx + 7.5, ly + 14.5, lx + 28, ly + 22);
    fprintf(f, "</svg>\n");
#undef PX
#undef PY
    return ferror(f) ? -1 : 0;
}
