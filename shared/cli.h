/* shared/cli.h - the sub-command front end every sealora binary shares:
 * `prog COMMAND [options]`, `prog --help`, `prog COMMAND --help`,
 * `prog --version`. Each command is one function taking (argc, argv) with
 * argv[0] the command name, returning the process exit status (0 success,
 * 1 failure, 2 usage error). Not thread-safe (runs once in main). */
#ifndef SL_CLI_H
#define SL_CLI_H

#define SL_VERSION "0.1.0"

typedef struct sl_cli_cmd {
    const char *name;
    const char *summary; /* one line for the command list */
    int (*run)(int argc, char **argv);
} sl_cli_cmd;

/* Boots OpenBLAS (sl_blas_boot), then dispatches. */
int sl_cli_main(const char *prog, const char *about, const sl_cli_cmd *cmds, int ncmds,
                int argc, char **argv);
/* 1 if any argument is -h or --help. */
int sl_cli_wants_help(int argc, char **argv);
/* Prints "prog: message" to stderr; returns 1 (failure exit status). */
int sl_cli_fail(const char *prog, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Option values: parse v as an integer in lo..hi (or a finite number in
 * lo..hi) into *out; otherwise print "CMD: --NAME 'v' must be ..." and
 * return 2 (the usage-error exit status). */
int sl_cli_long(const char *cmd, const char *name, const char *v, long lo, long hi, long *out);
int sl_cli_int(const char *cmd, const char *name, const char *v, int lo, int hi, int *out);
int sl_cli_float(const char *cmd, const char *name, const char *v, double lo, double hi,
                 float *out);
/* Name of the running program as given to sl_cli_main (for messages). */
const char *sl_cli_prog(void);

#endif
