/* client/cmd_enroll.h - `sealora-client enroll`: a site that keeps its private
 * key at home makes it here, with a certificate signing request for the
 * operator (docs/cli.md). Returns a process exit status. */
#ifndef SL_CLIENT_CMD_ENROLL_H
#define SL_CLIENT_CMD_ENROLL_H

int sl_cmd_enroll(int argc, char **argv);

#endif
