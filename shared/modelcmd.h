/* shared/modelcmd.h - the model commands both sealora-server and
 * sealora-client expose, implemented once here (docs/cli.md). Each returns a
 * process exit status. */
#ifndef SL_MODELCMD_H
#define SL_MODELCMD_H

#include "shared/cmd_tokenize.h"
#include "shared/cmd_text.h"
#include "shared/cmd_train.h"

int sl_modelcmd_blas(int argc, char **argv);
int sl_modelcmd_inspect(int argc, char **argv);
int sl_modelcmd_init_model(int argc, char **argv);

#define SL_MODELCMD_ENTRIES \
    {"blas", "print the BLAS kernel set and thread count in use", sl_modelcmd_blas}, \
    {"inspect", "describe a model directory (shape, parameters, dtype, BLAS)", \
     sl_modelcmd_inspect}, \
    {"init-model", "write a randomly initialised GPT-2 model directory (to pretrain)", \
     sl_modelcmd_init_model}, \
    {"tokenize", "text on stdin to token ids, or ids back to text (--decode)", \
     sl_cmd_tokenize_run}, \
    {"train-tokenizer", "train a byte-level BPE tokenizer on text files", \
     sl_cmd_tokenize_train}, \
    {"train", "train a LoRA adapter (or every weight) on text, with checkpoints", \
     sl_cmd_train}, \
    {"eval", "perplexity of a model (and adapter) on text", sl_cmd_eval}, \
    {"generate", "continue a prompt with a model (and adapter)", sl_cmd_generate},

#endif
