/* server/cmd_simulate_secagg.h - `sealora-server simulate-secagg`: one
 * whole secure-aggregation round with N simulated sites in this process
 * (crypto/secagg_sim), optionally with the DP pipeline (crypto/dp) in front,
 * printing time per phase, bytes per site and whether the unmasked sum was
 * exact (docs/cli.md). Returns the exit status. */
#ifndef SL_CMD_SIMULATE_SECAGG_H
#define SL_CMD_SIMULATE_SECAGG_H

int sl_cmd_simulate_secagg(int argc, char **argv);

#define SL_CMD_SIMULATE_SECAGG_ENTRY                                                               \
    {"simulate-secagg", "run one secure-aggregation round with N simulated sites",                 \
     sl_cmd_simulate_secagg},

#endif
