/* sealora-server: the model owner's tool (provisioning, emulator building,
 * round orchestration, plug-in and export) plus the shared model commands. */
#include "server/cmd_simulate_secagg.h"
#include "shared/cli.h"
#include "shared/modelcmd.h"
#include "server/cmd_chanecho.h"
#include "server/cmd_provision.h"
#include "server/cmd_emulate.h"
#include "server/cmd_plugin.h"
#include "server/cmd_offsite_eval.h"
#include "server/cmd_run.h"

static const sl_cli_cmd cmds[] = {
    {"provision", "create the CA and startup kits; add a site; sign a site's request", sl_cmd_provision},
    {"renew", "issue a new certificate for a site's (or the server's) existing key", sl_cmd_renew},
    {"revoke", "revoke a site's certificates (takes effect at the next message)", sl_cmd_revoke},
    {"channel-echo", "diagnostics: echo server to check connectivity and credentials", sl_cmd_channel_echo},
    SL_MODELCMD_ENTRIES
    SL_CMD_SIMULATE_SECAGG_ENTRY
    SL_CMD_EMULATE_ENTRIES
    SL_CMD_PLUGIN_ENTRY
    SL_CMD_OFFSITE_EVAL_ENTRY
    SL_CMD_RUN_ENTRIES
};

int main(int argc, char **argv)
{
    return sl_cli_main("sealora-server",
                       "Aggregation server of sealora: federated offsite tuning with secure "
                       "aggregation and differential privacy.",
                       cmds, (int)(sizeof cmds / sizeof cmds[0]), argc, argv);
}
