/* sealora-audit: the privacy auditor's tool. Works from logs, receipts and
 * public keys only. */
#include "audit/cmd_check.h"
#include "audit/cmd_epsilon.h"
#include "shared/cli.h"

static int cmd_about(int argc, char **argv);

static const sl_cli_cmd cmds[] = {
    {"about", "what an auditor can check with this tool", cmd_about},
    {"epsilon", "epsilon of subsampled Gaussian rounds (Renyi DP accountant)", sl_cmd_epsilon_run},
    {"verify", "verify a server's audit log, receipts and privacy budget", sl_cmd_check_verify},
    {"report", "the audit as a round table, JSON or an SVG plot", sl_cmd_check_report},
};

#include <stdio.h>
static int cmd_about(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("sealora-audit verifies a server's hash-chained audit log against its certificate,\n"
           "recomputes the privacy budget from the logged mechanism parameters and\n"
           "reconciles the sites' signed receipts. See docs/audit.md.\n");
    return 0;
}

int main(int argc, char **argv)
{
    return sl_cli_main("sealora-audit",
                       "Privacy auditor of sealora: verifies logs and recomputes the budget.",
                       cmds, (int)(sizeof cmds / sizeof cmds[0]), argc, argv);
}
