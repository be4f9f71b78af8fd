/* sealora-client: the data site's agent (enrolment, local LoRA training on
 * the emulator, protected updates) plus the shared model commands. */
#include "shared/cli.h"
#include "shared/modelcmd.h"
#include "client/cmd_chanping.h"
#include "client/cmd_enroll.h"
#include "client/cmd_run.h"

static const sl_cli_cmd cmds[] = {
    {"enroll", "make this site's key and a certificate signing request", sl_cmd_enroll},
    {"channel-ping", "diagnostics: check connectivity and credentials with the server", sl_cmd_channel_ping},
    {"run", "the site agent: join the server, train locally, send protected updates", sl_cmd_client_run},
    SL_MODELCMD_ENTRIES
};

int main(int argc, char **argv)
{
    return sl_cli_main("sealora-client",
                       "Site agent of sealora: trains LoRA adapters on a model emulator with "
                       "private data that never leaves the site.",
                       cmds, (int)(sizeof cmds / sizeof cmds[0]), argc, argv);
}
