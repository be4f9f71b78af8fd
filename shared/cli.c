#include "shared/cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "shared/blas.h"

static const char *g_prog = "sealora";

const char *sl_cli_prog(void) { return g_prog; }

int sl_cli_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            return 1;
    }
    return 0;
}

int sl_cli_fail(const char *prog, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", prog ? prog : g_prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

static void usage(FILE *f, const char *prog, const char *about, const sl_cli_cmd *cmds, int n)
{
    fprintf(f, "usage: %s COMMAND [options]\n\n%s\n\ncommands:\n", prog, about);
    for (int i = 0; i < n; i++)
        fprintf(f, "  %-18s %s\n", cmds[i].name, cmds[i].summary);
    fprintf(f, "\n'%s COMMAND --help' describes a command. See docs/cli.md.\n", prog);
}

int sl_cli_main(const char *prog, const char *about, const sl_cli_cmd *cmds, int ncmds,
                int argc, char **argv)
{
    sl_blas_boot(argc, argv);
    g_prog = prog;
    if (argc < 2) {
        usage(stderr, prog, about, cmds, ncmds);
        return 2;
    }
    const char *c = argv[1];
    if (strcmp(c, "-h") == 0 || strcmp(c, "--help") == 0 || strcmp(c, "help") == 0) {
        usage(stdout, prog, about, cmds, ncmds);
        return 0;
    }
    if (strcmp(c, "--version") == 0 || strcmp(c, "version") == 0) {
        char blas[256];
        sl_blas_describe(blas, sizeof blas);
        printf("%s %s\nBLAS: %s\n", prog, SL_VERSION, blas);
        return 0;
    }
    for (int i = 0; i < ncmds; i++)
        if (strcmp(c, cmds[i].name) == 0)
            return cmds[i].run(argc - 1, argv + 1);
    fprintf(stderr, "%s: unknown command '%s'\n\n", prog, c);
    usage(stderr, prog, about, cmds, ncmds);
    return 2;
}

int sl_cli_long(const char *cmd, const char *name, const char *v, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (!*v || *end || errno || x < lo || x > hi) {
        sl_cli_fail(NULL, "%s: --%s '%s' must be an integer in %ld..%ld", cmd, name, v, lo, hi);
        return 2;
    }
    *out = x;
    return 0;
}

int sl_cli_int(const char *cmd, const char *name, const char *v, int lo, int hi, int *out)
{
    long x;
    int rc = sl_cli_long(cmd, name, v, lo, hi, &x);
    if (!rc)
        *out = (int)x;
    return rc;
}

int sl_cli_float(const char *cmd, const char *name, const char *v, double lo, double hi,
                 float *out)
{
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (!*v || *end || errno || !isfinite(x) || x < lo || x > hi) {
        sl_cli_fail(NULL, "%s: --%s '%s' must be a number in %g..%g", cmd, name, v, lo, hi);
        return 2;
    }
    *out = (float)x;
    return 0;
}
