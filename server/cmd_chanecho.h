/* server/cmd_chanecho.h - `sealora-server channel-echo`: diagnostics that run
 * the channel with the server's credentials and echo every request, so a
 * site can check connectivity and credentials with `sealora-client
 * channel-ping` before the real runtime exists (docs/cli.md). Returns a
 * process exit status. */
#ifndef SL_SERVER_CMD_CHANECHO_H
#define SL_SERVER_CMD_CHANECHO_H

int sl_cmd_channel_echo(int argc, char **argv);

#endif
