/* server/cmd_offsite_eval.h - `sealora-server offsite-eval`: the offsite
 * table (server/offsite) for a full model, an emulator (a package or one
 * built on the spot) and a domain corpus, as text, JSON and an SVG bar
 * chart (docs/cli.md, docs/offsite.md). Returns a process exit status. Not
 * thread-safe (one command per process). */
#ifndef SL_SERVER_CMD_OFFSITE_EVAL_H
#define SL_SERVER_CMD_OFFSITE_EVAL_H

int sl_cmd_offsite_eval(int argc, char **argv);

#define SL_CMD_OFFSITE_EVAL_ENTRY \
    {"offsite-eval", "the offsite table: full vs emulator vs plugged-in LoRA perplexities", \
     sl_cmd_offsite_eval},

#endif
