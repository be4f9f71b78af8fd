#include "shared/modelcmd.h"

#include <stdio.h>

#include "shared/blas.h"
#include "shared/cli.h"

int sl_modelcmd_blas(int argc, char **argv)
{
    if (sl_cli_wants_help(argc, argv)) {
        printf("usage: %s blas\n\nPrints the OpenBLAS kernel set (core type) and the number of "
               "threads this binary uses.\nSEALORA_BLAS_CORETYPE=keep keeps OPENBLAS_CORETYPE "
               "as set; =NAME forces NAME.\n", sl_cli_prog());
        return 0;
    }
    if (argc > 1)
        return sl_cli_fail(NULL, "blas: unexpected argument '%s'", argv[1]), 2;
    char d[256];
    sl_blas_describe(d, sizeof d);
    printf("%s\n", d);
    return 0;
}
