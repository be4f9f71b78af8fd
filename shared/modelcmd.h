/* shared/modelcmd.h - the model commands both sealora-server and
 * sealora-client expose, implemented once here (docs/cli.md). Each returns a
 * process exit status. */
#ifndef SL_MODELCMD_H
#define SL_MODELCMD_H

int sl_modelcmd_blas(int argc, char **argv);

#define SL_MODELCMD_ENTRIES \
    {"blas", "print the BLAS kernel set and thread count in use", sl_modelcmd_blas},

#endif
