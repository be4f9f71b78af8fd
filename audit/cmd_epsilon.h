/* audit/cmd_epsilon.h - `sealora-audit epsilon`: the privacy accountant on
 * the command line, for one subsampled Gaussian (--q --sigma --steps) or a
 * schedule of heterogeneous rounds (--schedule FILE). docs/cli.md. */
#ifndef SL_AUDIT_CMD_EPSILON_H
#define SL_AUDIT_CMD_EPSILON_H
#include <stddef.h>
#include <stdint.h>

#include "crypto/accountant.h"
#include "shared/err.h"

/* Largest schedule file accepted, and most rounds in it. */
#define SL_CMD_EPSILON_MAX_SCHEDULE (16u << 20)
#define SL_CMD_EPSILON_MAX_ROUNDS 1000000u

int sl_cmd_epsilon_run(int argc, char **argv);
/* Composes a schedule into a: text holds one round per line, "q sigma
 * [steps]" separated by blanks or commas, '#' starts a comment. `name`
 * (the file) prefixes messages, which give the line. On failure a and
 * *rounds are untouched. */
int sl_cmd_epsilon_schedule(const char *text, size_t len, const char *name, sl_acct *a,
                            uint64_t *rounds, sl_err *err);
/* Fills a's orders from a grid name: "fine" (default), "opacus", "tf", or a
 * comma-separated list of orders. */
int sl_cmd_epsilon_grid(const char *spec, sl_acct *a, sl_err *err);

#endif
