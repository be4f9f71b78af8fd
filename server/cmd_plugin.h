/* server/cmd_plugin.h - `sealora-server plugin`: merge a PEFT adapter (from
 * offsite tuning or a federated run) into the full model and export the
 * merged model directory plus the unmerged adapter beside it (docs/cli.md,
 * docs/offsite.md). Returns a process exit status. Not thread-safe (one
 * command per process). */
#ifndef SL_SERVER_CMD_PLUGIN_H
#define SL_SERVER_CMD_PLUGIN_H

int sl_cmd_plugin(int argc, char **argv);

#define SL_CMD_PLUGIN_ENTRY \
    {"plugin", "merge a LoRA adapter into the full model; export model and adapter", \
     sl_cmd_plugin},

#endif
