/* client/cmd_chanping.h - `sealora-client channel-ping`: diagnostics that
 * connect to the server with the site's kit, authenticate both ways, echo a
 * few messages and optionally fetch an offered file (docs/cli.md). Returns a
 * process exit status. */
#ifndef SL_CLIENT_CMD_CHANPING_H
#define SL_CLIENT_CMD_CHANPING_H

int sl_cmd_channel_ping(int argc, char **argv);

#endif
