/* client/cmd_run.h - `sealora-client run`: the site agent (client/agent). */
#ifndef SL_CLIENT_CMD_RUN_H
#define SL_CLIENT_CMD_RUN_H

int sl_cmd_client_run(int argc, char **argv);

#endif
