/* shared/cmd_text.h - the `eval` and `generate` model commands (docs/cli.md),
 * listed in SL_MODELCMD_ENTRIES, and the model + adapter loader they share
 * with other commands that evaluate. Not thread-safe (run from main). */
#ifndef SL_CMD_TEXT_H
#define SL_CMD_TEXT_H
#include "shared/err.h"
#include "shared/gpt2.h"
#include "shared/tokenizer.h"

int sl_cmd_eval(int argc, char **argv);
int sl_cmd_generate(int argc, char **argv);
/* Loads the model directory and its tokenizer and, when adapter_dir is not
 * NULL, merges that PEFT adapter (refused if it names other base weights).
 * The caller frees both. */
int sl_text_load(const char *model_dir, const char *adapter_dir, sl_gpt2 **m, sl_tokenizer **tok,
                 sl_err *err);
#endif
