#include "shared/progress.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

double sl_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void sl_progress_init(sl_progress *p, const char *label, const char *unit, uint64_t total,
                      uint64_t done, int quiet)
{
    memset(p, 0, sizeof *p);
    p->label = label;
    p->unit = unit;
    p->total = total;
    p->start_done = p->last_done = done;
    p->t0 = p->last_print = sl_now();
    p->tty = isatty(STDERR_FILENO);
    p->quiet = quiet;
}

static void fmt_secs(char *out, size_t cap, double s)
{
    if (!(s >= 0) || s > 1e7)
        snprintf(out, cap, "--:--");
    else if (s >= 3600)
        snprintf(out, cap, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
    else
        snprintf(out, cap, "%dm%02ds", (int)(s / 60), (int)s % 60);
}

void sl_progress_update(sl_progress *p, uint64_t done, double per_step, const char *extra,
                        int force)
{
    if (p->quiet)
        return;
    double now = sl_now(), el = now - p->t0;
    int due;
    if (p->tty)
        due = now - p->last_print >= 0.1;
    else {
        uint64_t tenth = p->total / 10 ? p->total / 10 : 1;
        due = done / tenth != p->last_done / tenth || now - p->last_print >= 30;
    }
    if (!due && !force && done != p->total)
        return;
    double rate = el > 0 ? (double)(done - p->start_done) / el : 0;
    double eta = rate > 0 ? (double)(p->total - (done < p->total ? done : p->total)) / rate : -1;
    char es[16], ts[16];
    fmt_secs(es, sizeof es, el);
    fmt_secs(ts, sizeof ts, eta);
    double frac = p->total ? (double)done / (double)p->total : 1;
    if (frac > 1)
        frac = 1;
    if (p->tty) {
        char bar[21];
        int fill = (int)(frac * 20);
        for (int i = 0; i < 20; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[20] = 0;
        fprintf(stderr, "\r\033[K%s [%s] %llu/%llu %.0f %s %s%s elapsed %s ETA %s", p->label, bar,
                (unsigned long long)done, (unsigned long long)p->total, rate * per_step, p->unit,
                extra ? extra : "", extra ? "," : "", es, ts);
        p->drawn = 1;
    } else {
        fprintf(stderr, "%s: %llu/%llu (%.0f%%) %.0f %s %s%s elapsed %s ETA %s\n", p->label,
                (unsigned long long)done, (unsigned long long)p->total, 100 * frac,
                rate * per_step, p->unit, extra ? extra : "", extra ? "," : "", es, ts);
    }
    fflush(stderr);
    p->last_print = now;
    p->last_done = done;
}

void sl_progress_end(sl_progress *p)
{
    if (!p->quiet && p->tty && p->drawn)
        fputc('\n', stderr);
    p->drawn = 0;
}
