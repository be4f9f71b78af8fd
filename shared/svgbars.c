#include "shared/svgbars.h"

#include <math.h>
#include <string.h>

#include "shared/svgchart.h"

#define H 460.0
#define ML 72.0
#define MR 24.0
#define MT 48.0
#define MB 84.0 /* room for two lines of labels */
#define SLOT 150.0

/* Writes one label line by line (split at '\n'), escaped. */
static void label(FILE *f, double x, double y, const char *s)
{
    int line = 0;
    while (*s) {
        size_t n = strcspn(s, "\n");
        char buf[128];
        if (n >= sizeof buf)
            n = sizeof buf - 1;
        memcpy(buf, s, n);
        buf[n] = 0;
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", x, y + 15.0 * line);
        sl_svg_escape(f, buf);
        fprintf(f, "</text>\n");
        s += n;
        if (*s == '\n')
            s++;
        line++;
    }
}

int sl_svg_bars(FILE *f, const sl_svg_bar *bars, size_t n, const char *title, const char *ylabel,
                const char *fmt)
{
    double ymax = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(bars[i].value) && bars[i].value > ymax)
            ymax = bars[i].value;
    if (!(ymax > 0))
        ymax = 1;
    double step = sl_svg_nice_step(ymax * 1.12, 6);
    double ytop = ceil(ymax * 1.12 / step) * step;
    double pw = SLOT * (double)(n ? n : 1), W = ML + pw + MR, ph = H - MT - MB;
#define PY(y) (MT + ph - (y) / ytop * ph)
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
               "viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" font-size=\"12\">\n",
            W, H, W, H);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    fprintf(f, "<text x=\"%.1f\" y=\"24\" font-size=\"15\">", ML);
    sl_svg_escape(f, title);
    fprintf(f, "</text>\n<g stroke=\"#dddddd\">\n");
    for (double y = 0; y <= ytop * (1 + 1e-9); y += step)
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", ML, PY(y),
                ML + pw, PY(y));
    fprintf(f, "</g>\n<g text-anchor=\"end\">\n");
    for (double y = 0; y <= ytop * (1 + 1e-9); y += step)
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">%g</text>\n", ML - 6, PY(y) + 4, y);
    fprintf(f, "</g>\n<text transform=\"translate(18 %.1f) rotate(-90)\" "
               "text-anchor=\"middle\">",
            MT + ph / 2);
    sl_svg_escape(f, ylabel);
    fprintf(f, "</text>\n");
    for (size_t i = 0; i < n; i++) {
        double cx = ML + SLOT * ((double)i + 0.5), bw = SLOT * 0.6;
        if (isfinite(bars[i].value) && bars[i].value >= 0) {
            double v = fmin(bars[i].value, ytop);
            fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"",
                    cx - bw / 2, PY(v), bw, PY(0) - PY(v));
            sl_svg_escape(f, bars[i].colour ? bars[i].colour : "#1f5fa8");
            fprintf(f, "\"/>\n<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", cx,
                    PY(v) - 6);
            fprintf(f, fmt, bars[i].value);
            fprintf(f, "</text>\n");
        } else {
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">n/a</text>\n", cx,
                    PY(0) - 6);
        }
        label(f, cx, MT + ph + 18, bars[i].label ? bars[i].label : "");
    }
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#444444\"/>\n", ML,
            PY(0), ML + pw, PY(0));
    fprintf(f, "</svg>\n");
#undef PY
    return ferror(f) ? -1 : 0;
}
