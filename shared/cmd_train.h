/* shared/cmd_train.h - the `train` model command (docs/cli.md), listed in
 * SL_MODELCMD_ENTRIES, and the option parsers other training commands share.
 * Not thread-safe (runs once, from main). */
#ifndef SL_CMD_TRAIN_H
#define SL_CMD_TRAIN_H
#include "shared/err.h"

int sl_cmd_train(int argc, char **argv);
/* "c_attn,mlp.c_fc" (or "all") to SL_LORA_* bits. */
int sl_train_parse_targets(const char *s, unsigned *mask, sl_err *err);
/* "0,1,10-11" to distinct block indices below max_layer (layers holds at
 * least max_layer entries). */
int sl_train_parse_layers(const char *s, int max_layer, int *layers, int *n, sl_err *err);
#endif
