/* server/cmd_emulate.h - `sealora-server emulate` (build, optionally
 * distil, and sign an emulator package from a full model) and
 * `sealora-server verify-emulator` (check a package's signature, manifest
 * and files). docs/cli.md, docs/offsite.md. Each returns a process exit
 * status (0 success, 1 failure, 2 usage error). Not thread-safe (one
 * command per process). */
#ifndef SL_SERVER_CMD_EMULATE_H
#define SL_SERVER_CMD_EMULATE_H

int sl_cmd_emulate(int argc, char **argv);
int sl_cmd_verify_emulator(int argc, char **argv);

#define SL_CMD_EMULATE_ENTRIES \
    {"emulate", "build and sign an emulator package (adapter blocks + thinned middle)", \
     sl_cmd_emulate}, \
    {"verify-emulator", "check an emulator package's signature, manifest and files", \
     sl_cmd_verify_emulator},

#endif
