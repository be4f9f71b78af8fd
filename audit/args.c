#include "audit/args.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "shared/cli.h"

void sl_args_init(sl_args *a, int argc, char **argv)
{
    a->argc = argc;
    a->argv = argv;
    a->i = 1;
    a->cmd = argc > 0 ? argv[0] : "?";
}

int sl_args_value(sl_args *a, const char *name, const char **val)
{
    if (a->i >= a->argc)
        return 0;
    const char *s = a->argv[a->i];
    size_t n = strlen(name);
    if (strncmp(s, name, n) != 0)
        return 0;
    if (s[n] == '=') {
        *val = s + n + 1;
        a->i++;
        return 1;
    }
    if (s[n] != '\0')
        return 0;
    if (a->i + 1 >= a->argc) {
        sl_cli_fail(NULL, "%s: option %s needs a value", a->cmd, name);
        return -1;
    }
    *val = a->argv[a->i + 1];
    a->i += 2;
    return 1;
}

int sl_args_switch(sl_args *a, const char *name)
{
    if (a->i < a->argc && strcmp(a->argv[a->i], name) == 0) {
        a->i++;
        return 1;
    }
    return 0;
}

int sl_args_double(const sl_args *a, const char *flag, const char *s, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || !isfinite(v)) {
        sl_cli_fail(NULL, "%s: %s: '%s' is not a finite number", a->cmd, flag, s);
        return 2;
    }
    *out = v;
    return 0;
}

int sl_args_u64(const sl_args *a, const char *flag, const char *s, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    if (*s < '0' || *s > '9') {
        sl_cli_fail(NULL, "%s: %s: '%s' is not a non-negative integer", a->cmd, flag, s);
        return 2;
    }
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || errno) {
        sl_cli_fail(NULL, "%s: %s: '%s' is not a non-negative integer", a->cmd, flag, s);
        return 2;
    }
    *out = v;
    return 0;
}

int sl_args_unknown(const sl_args *a)
{
    const char *s = a->argv[a->i];
    if (s[0] == '-')
        sl_cli_fail(NULL, "%s: unknown option '%s' (see --help)", a->cmd, s);
    else
        sl_cli_fail(NULL, "%s: unexpected argument '%s' (see --help)", a->cmd, s);
    return 2;
}
