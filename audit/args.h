/* audit/args.h - the option parsing every sealora-audit command shares:
 * "--name value" or "--name=value", numbers parsed strictly (the whole
 * argument, finite, in range) with errors that quote the flag and value.
 * Borrows argv; allocates nothing. Not thread-safe (one command per run). */
#ifndef SL_AUDIT_ARGS_H
#define SL_AUDIT_ARGS_H
#include <stdint.h>

typedef struct sl_args {
    int argc;
    char **argv;     /* borrowed; argv[0] is the command name */
    int i;           /* next argument to look at */
    const char *cmd; /* command name for messages */
} sl_args;

void sl_args_init(sl_args *a, int argc, char **argv);
/* If argv[i] is the flag `name` ("--q"), stores its value (next argument or
 * the text after '='), advances and returns 1; returns 0 if it is another
 * argument; returns -1 after printing an error if the value is missing. */
int sl_args_value(sl_args *a, const char *name, const char **val);
/* If argv[i] is the switch `name`, advances and returns 1, else 0. */
int sl_args_switch(sl_args *a, const char *name);
/* Strict conversions: 0 on success, else print "prog cmd: flag: bad value"
 * and return 2 (the usage-error exit status). */
int sl_args_double(const sl_args *a, const char *flag, const char *s, double *out);
int sl_args_u64(const sl_args *a, const char *flag, const char *s, uint64_t *out);
/* Prints "unknown option" (or "unexpected argument") for argv[i]; returns 2. */
int sl_args_unknown(const sl_args *a);

#endif
