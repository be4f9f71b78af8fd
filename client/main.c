/* sealora-client: the data site's agent (enrolment, local LoRA training on
 * the emulator, protected updates) plus the shared model commands. */
#include "shared/cli.h"
#include "shared/modelcmd.h"

static const sl_cli_cmd cmds[] = {
    SL_MODELCMD_ENTRIES
};

int main(int argc, char **argv)
{
    return sl_cli_main("sealora-client",
                       "Site agent of sealora: trains LoRA adapters on a model emulator with "
                       "private data that never leaves the site.",
                       cmds, (int)(sizeof cmds / sizeof cmds[0]), argc, argv);
}
