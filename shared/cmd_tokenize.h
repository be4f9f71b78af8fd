/* shared/cmd_tokenize.h - the `tokenize` and `train-tokenizer` model
 * commands (docs/cli.md), listed in SL_MODELCMD_ENTRIES so that both
 * sealora-server and sealora-client expose them. Each takes (argc, argv) with
 * argv[0] the command name and returns the exit status: 0 success, 1 failure,
 * 2 usage error. Not thread-safe (they run once, from main). */
#ifndef SL_CMD_TOKENIZE_H
#define SL_CMD_TOKENIZE_H

/* Bytes `tokenize` reads from stdin at most. */
#define SL_CMD_TOKENIZE_MAX_INPUT (1u << 30)

int sl_cmd_tokenize_run(int argc, char **argv);
int sl_cmd_tokenize_train(int argc, char **argv);

#endif
