/* shared/progress.h - progress of long work on stderr: on a terminal one
 * line redrawn in place at most 10 times a second (bar, count, rate, ETA and
 * the caller's figures); otherwise a plain line every 10% of the work or
 * every 30 seconds, so logs stay readable. Not thread-safe. */
#ifndef SL_PROGRESS_H
#define SL_PROGRESS_H
#include <stdint.h>

typedef struct sl_progress {
    const char *label;       /* e.g. "train" */
    const char *unit;        /* rate unit, e.g. "tok/s" */
    uint64_t total;          /* steps of the whole run */
    uint64_t start_done;     /* steps already done when this run began */
    double t0, last_print;   /* monotonic seconds */
    uint64_t last_done;
    int tty, quiet, drawn;
} sl_progress;

/* quiet: print nothing. Work already done (a resumed run) counts for the
 * bar, not for the rate. */
void sl_progress_init(sl_progress *p, const char *label, const char *unit, uint64_t total,
                      uint64_t done, int quiet);
/* done steps of total; per_step units (tokens) per step for the rate; extra
 * is printed after the figures (may be NULL). force: print now. */
void sl_progress_update(sl_progress *p, uint64_t done, double per_step, const char *extra,
                        int force);
/* Ends the redrawn line (prints a newline if needed). */
void sl_progress_end(sl_progress *p);
/* Seconds on the monotonic clock. */
double sl_now(void);
#endif
