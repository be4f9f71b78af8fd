/* sealora-server: the model owner's tool (provisioning, emulator building,
 * round orchestration, plug-in and export) plus the shared model commands. */
#include "shared/cli.h"
#include "shared/modelcmd.h"

static const sl_cli_cmd cmds[] = {
    SL_MODELCMD_ENTRIES
};

int main(int argc, char **argv)
{
    return sl_cli_main("sealora-server",
                       "Aggregation server of sealora: federated offsite tuning with secure "
                       "aggregation and differential privacy.",
                       cmds, (int)(sizeof cmds / sizeof cmds[0]), argc, argv);
}
