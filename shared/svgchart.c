#include "shared/svgchart.h"

#include <math.h>

#define W 760.0
#define H 440.0
#define ML 72.0
#define MR 24.0
#define MT 48.0
#define MB 56.0

void sl_svg_escape(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default:
            if ((unsigned char)*s >= 0x20)
                fputc(*s, f);
        }
    }
}

double sl_svg_nice_step(double span, int n)
{
    if (!(span > 0))
        return 1;
    double raw = span / n, p = pow(10, floor(log10(raw))), m = raw / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

int sl_svg_lines(FILE *f, const sl_svg_series *s, int ns, const char *title, const char *xlabel,
                 const char *ylabel, int y_from_zero)
{
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int k = 0; k < ns; k++)
        for (size_t i = 0; i < s[k].n; i++)
            if (isfinite(s[k].x[i]) && isfinite(s[k].y[i])) {
                x0 = fmin(x0, s[k].x[i]);
                x1 = fmax(x1, s[k].x[i]);
                y0 = fmin(y0, s[k].y[i]);
                y1 = fmax(y1, s[k].y[i]);
            }
    if (!(x0 <= x1)) {
        x0 = 0;
        x1 = 1;
        y0 = 0;
        y1 = 1;
    }
    if (x1 == x0)
        x1 = x0 + 1;
    if (y_from_zero || (y0 > 0 && y0 < 0.1 * y1))
        y0 = fmin(0, y0);
    if (y1 == y0)
        y1 = y0 + 1;
    double ys = sl_svg_nice_step(y1 - y0, 6), xs = sl_svg_nice_step(x1 - x0, 8);
    double yb = floor(y0 / ys) * ys, yt = ceil(y1 / ys) * ys;
    double pw = W - ML - MR, ph = H - MT - MB;
#define PX(v) (ML + ((v) - x0) / (x1 - x0) * pw)
#define PY(v) (MT + ph - ((v) - yb) / (yt - yb) * ph)
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
               "viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" font-size=\"12\">\n"
               "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
               "<text x=\"%.1f\" y=\"24\" font-size=\"15\">",
            W, H, W, H, ML);
    sl_svg_escape(f, title);
    fprintf(f, "</text>\n<g stroke=\"#dddddd\">\n");
    for (double y = yb; y <= yt + ys * 1e-9; y += ys)
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", ML, PY(y), ML + pw,
                PY(y));
    fprintf(f, "</g>\n<g text-anchor=\"end\">\n");
    for (double y = yb; y <= yt + ys * 1e-9; y += ys)
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">%g</text>\n", ML - 6, PY(y) + 4, y);
    fprintf(f, "</g>\n<g text-anchor=\"middle\">\n");
    for (double x = ceil(x0 / xs) * xs; x <= x1 + xs * 1e-9; x += xs)
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">%g</text>\n", PX(x), MT + ph + 18, x);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">", ML + pw / 2, H - 12);
    sl_svg_escape(f, xlabel);
    fprintf(f, "</text>\n</g>\n<text transform=\"translate(16 %.1f) rotate(-90)\" "
               "text-anchor=\"middle\">",
            MT + ph / 2);
    sl_svg_escape(f, ylabel);
    fprintf(f, "</text>\n<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
               "fill=\"none\" stroke=\"#888888\"/>\n",
            ML, MT, pw, ph);
    for (int k = 0; k < ns; k++) {
        fprintf(f, "<polyline fill=\"none\" stroke-width=\"1.6\" stroke=\"");
        sl_svg_escape(f, s[k].colour);
        fprintf(f, "\" points=\"");
        for (size_t i = 0; i < s[k].n; i++)
            if (isfinite(s[k].x[i]) && isfinite(s[k].y[i]))
                fprintf(f, "%.1f,%.1f ", PX(s[k].x[i]), PY(s[k].y[i]));
        fprintf(f, "\"/>\n<text x=\"%.1f\" y=\"%.1f\" fill=\"", ML + pw - 160, MT + 18 + 16.0 * k);
        sl_svg_escape(f, s[k].colour);
        fprintf(f, "\">");
        sl_svg_escape(f, s[k].name);
        fprintf(f, "</text>\n");
    }
#undef PX
#undef PY
    fprintf(f, "</svg>\n");
    return ferror(f) ? -1 : 0;
}
