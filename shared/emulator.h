/* shared/emulator.h - the model side of offsite tuning (Xiao, Lin and Han
 * 2023; docs/offsite.md): which blocks of a full model an emulator keeps
 * (adapter blocks at the bottom and top, a uniformly thinned middle), the
 * emulator model itself (a normal sl_gpt2 whose block i is a copy of the
 * full model's block layer_map[i]), and the renumbering of a LoRA adapter
 * between the emulator's block indices and the full model's, so an adapter
 * tuned on an emulator plugs into the full model unchanged (the `train
 * --emulator` command, the federated runtime and `plugin` all use it).
 *
 * Ownership: models and adapters returned are the caller's (sl_gpt2_free,
 * sl_lora_free); inputs are borrowed. Thread-safe (no shared state). */
#ifndef SL_EMULATOR_H
#define SL_EMULATOR_H
#include "shared/emumeta.h"
#include "shared/err.h"
#include "shared/gpt2.h"
#include "shared/lora.h"
#include "shared/peft.h"

/* Default adapter blocks at each end and drop ratio (the paper's 2 + 2,
 * half of the middle dropped). */
#define SL_EMULATOR_DEFAULT_ADAPTER 2
#define SL_EMULATOR_DEFAULT_DROP 0.5

/* The layer map of an emulator of a full model with L blocks: blocks
 * 0..bottom-1, then the kept middle blocks, then L-top..L-1. With keep
 * (nkeep > 0) the kept middle blocks are exactly keep[] (full-model
 * indices inside bottom..L-top-1, any order, no repeats); otherwise
 * n = max(1, round(M (1 - drop))) of the M middle blocks are kept, evenly
 * spaced and including the first and the last (Offsite-Tuning's
 * uniform_choose_layers: middle index round(i (M-1)/(n-1))), so drop 0
 * keeps every block. map needs L entries; *n receives the count and
 * *achieved (may be NULL) the dropped fraction of the middle. */
int sl_emulator_plan(int L, int bottom, int top, double drop, const int *keep, int nkeep,
                     int *map, int *n, double *achieved, sl_err *err);

/* A new model with full's configuration but n blocks, block i a copy of
 * full's block map[i]; embeddings and final LayerNorm copied. */
int sl_emulator_build(sl_gpt2 **out, const sl_gpt2 *full, const int *map, int n, sl_err *err);

/* The layer map of the package meta as emulator -> full indices, checked
 * against the emulator model (meta->nblocks == emu->L) and, when full is
 * non-NULL, against the full model's block count. */
int sl_emulator_check(const sl_emumeta *meta, const sl_gpt2 *emu, const sl_gpt2 *full,
                      sl_err *err);

/* The adapter blocks of the package as emulator block indices, ascending,
 * into layers (SL_EMUMETA_MAX_LAYERS entries); *n receives the count. */
void sl_emulator_adapter_blocks(const sl_emumeta *meta, int *layers, int *n);

/* Renumbers an adapter's blocks. to_full != 0: src's block i becomes block
 * map[i] of a model with dst_L blocks (emulator -> full). to_full == 0:
 * src's block map[i] becomes block i (full -> emulator; dst_L must be n),
 * and a block of src that the map does not keep is refused, naming it.
 * Same rank, alpha, targets and parameter values (the flat vector keeps
 * its order, since map ascends). On failure *out is untouched. */
int sl_emulator_lora_remap(sl_lora **out, const sl_lora *src, const int *map, int n,
                           int to_full, int dst_L, sl_err *err);

/* Writes an adapter trained on the emulator as a PEFT adapter of the FULL
 * model: blocks renumbered through meta's layer map (layers_to_transform
 * = the full model's indices), base digest = meta's base_sha256, so it
 * plugs into the full model unchanged. */
int sl_emulator_adapter_save(const sl_lora *emu_lora, const sl_emumeta *meta, const char *dir,
                             const char *base_model, sl_err *err);
/* Reads a PEFT adapter of the full model (as sl_emulator_adapter_save
 * writes it) onto the emulator emu: shapes checked against emu's widths
 * with meta->full_layers blocks, a recorded base digest must equal meta's,
 * and every adapted block must be one the emulator keeps. cfg_out may be
 * NULL. On failure *out is untouched. */
int sl_emulator_adapter_load(sl_lora **out, const sl_gpt2 *emu, const sl_emumeta *meta,
                             const char *dir, sl_peft_config *cfg_out, sl_err *err);

/* Plug-in: loads the PEFT adapter in dir onto the full model (shapes and
 * block indices checked against it, naming the tensor or block), refuses
 * it when its recorded base digest differs from full_digest (hex; an
 * adapter without a digest is accepted), and merges it into full's
 * weights (W += scale (B A)^T on each adapted module). *used (may be
 * NULL) receives the adapter, so the caller can unmerge it or save it;
 * *had_digest (may be NULL) says whether the adapter recorded a digest.
 * On failure full is unchanged. */
int sl_emulator_plugin(sl_gpt2 *full, const char *full_digest, const char *dir, sl_lora **used,
                       int *had_digest, sl_err *err);

#endif
