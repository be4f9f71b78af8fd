/* server/cmd_run.h - `sealora-server run` (the federated runtime,
 * server/fedserver) and `sealora-server status` (what a running server
 * reports in its state folder). */
#ifndef SL_CMD_RUN_H
#define SL_CMD_RUN_H

int sl_cmd_run(int argc, char **argv);
int sl_cmd_status(int argc, char **argv);

#define SL_CMD_RUN_ENTRIES \
    {"run", "run the federated rounds: serve the model, aggregate, account, checkpoint", sl_cmd_run}, \
    {"status", "show what a running (or stopped) server reports in its state folder", sl_cmd_status},

#endif
