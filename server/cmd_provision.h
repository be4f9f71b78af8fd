/* server/cmd_provision.h - the deployment's certificate authority and the
 * sites' startup kits: `sealora-server provision` (new deployment,
 * --add-site, --sign CSR), `renew` and `revoke` (docs/cli.md; the folder
 * layout and index.json are in docs/formats.md). The CA's state lives in
 * OUT/ca/index.json, rewritten atomically after every change. Each returns a
 * process exit status. Not thread-safe (one command per process). */
#ifndef SL_SERVER_CMD_PROVISION_H
#define SL_SERVER_CMD_PROVISION_H

int sl_cmd_provision(int argc, char **argv);
int sl_cmd_renew(int argc, char **argv);
int sl_cmd_revoke(int argc, char **argv);

#endif
