/* bench/secagg: secure-aggregation costs next to the ChaCha20 keystream
 * limit measured in the same run (docs/performance.md "Secure aggregation").
 *
 *   bench/secagg            N in {10, 100, 500} x D in {1e5, 1e6}
 *   bench/secagg N D [F]    one round with N sites, D words, dropout F
 *
 * Prints, per round: the degree, the masks a site expands (self + one per
 * neighbour that shared keys), the mean client masking time and the time
 * the fastest keystream needs for those masks, the server's unmasking time
 * and its keystream limit, and the memory the server's round holds.
 * Asserts nothing about time. */
#include <openssl/evp.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto/secagg_prg.h"
#include "crypto/secagg_sim.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

enum { KS_BUF = 8192, KS_TOTAL = 64 << 20, REPS = 5 };

/* Best of REPS: KS_TOTAL bytes of keystream into one L1-resident buffer. */
static double rate_openssl(void)
{
    static uint8_t zero[KS_BUF], out[KS_BUF];
    uint8_t key[32] = {1}, iv[16] = {0};
    double best = 0;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    for (int r = 0; r < REPS; r++) {
        EVP_EncryptInit_ex(c, EVP_chacha20(), NULL, key, iv);
        double t = now();
        int ol;
        for (size_t done = 0; done < KS_TOTAL; done += KS_BUF)
            EVP_EncryptUpdate(c, out, &ol, zero, KS_BUF);
        t = now() - t;
        if (KS_TOTAL / t > best)
            best = KS_TOTAL / t;
    }
    EVP_CIPHER_CTX_free(c);
    return best;
}

static double rate_sodium(void)
{
    static uint8_t out[KS_BUF];
    uint8_t key[32] = {1}, nonce[12] = {0};
    double best = 0;
    for (int r = 0; r < REPS; r++) {
        double t = now();
        uint32_t ic = 0;
        for (size_t done = 0; done < KS_TOTAL; done += KS_BUF, ic += KS_BUF / 64)
            crypto_stream_chacha20_ietf_xor_ic(out, out, KS_BUF, nonce, ic, key);
        t = now() - t;
        if (KS_TOTAL / t > best)
            best = KS_TOTAL / t;
    }
    return best;
}

/* The fused kernel alone: 32 masks into a 10^6-word vector. */
static double rate_fused(void)
{
    size_t n = 1000000;
    uint32_t *v = calloc(n, 4);
    uint8_t seeds[32][32];
    int signs[32];
    for (int i = 0; i < 32; i++) {
        memset(seeds[i], i + 1, 32);
        signs[i] = i & 1 ? -1 : 1;
    }
    sl_secagg_prg *p;
    if (!v || sl_secagg_prg_create(&p, NULL))
        exit(1);
    double best = 0;
    for (int r = 0; r < 3; r++) {
        double t = now();
        sl_secagg_prg_apply(p, v, n, 32, (const uint8_t(*)[32])seeds, signs, 32, NULL);
        t = now() - t;
        if (32.0 * n * 4 / t > best)
            best = 32.0 * n * 4 / t;
    }
    sl_secagg_prg_free(p);
    free(v);
    return best;
}

static int one_round(uint32_t n, uint32_t d, double f, double *rate)
{
    /* The machine is shared: re-measure before each round and keep the
     * fastest keystream seen in this run as the limit. */
    double ro = rate_openssl();
    if (ro > *rate)
        *rate = ro;
    sl_secagg_sim_opts o;
    memset(&o, 0, sizeof o);
    sl_err err = {0};
    if (sl_secagg_config_default(&o.cfg, n, d, f, 32, &err)) {
        fprintf(stderr, "bench/secagg: %s\n", err.msg);
        return 1;
    }
    o.round = 1;
    o.seed = 2024;
    o.first_id = 1;
    uint8_t *drop = calloc(n, 1);
    uint32_t ndrop = (uint32_t)(f * n + 0.5);
    for (uint32_t i = 0; i < ndrop; i++) /* spread over the four phases */
        drop[(i * 7919u + 3) % n] = (uint8_t)(SL_SECAGG_SIM_BEFORE_SHARES + i % 4);
    o.drop = drop;
    sl_secagg_sim_result r;
    int rc = sl_secagg_sim_run(&o, NULL, &r, &err);
    free(drop);
    if (rc || r.aborted) {
        fprintf(stderr, "bench/secagg: N=%u D=%u: %s\n", n, d, rc ? err.msg : r.abort_msg);
        return 1;
    }
    double climit = r.client_masks * d * 4 / *rate;
    double slimit = (double)r.server_masks * d * 4 / *rate;
    printf("%5u %8u %6u %8.1f %12.4f %9.4f %6.2f %12.4f %8llu %9.4f %6.2f %9.1f %6s %8.1f %6.2f\n",
           n, d,
           r.degree, r.client_masks, r.client_mask_seconds, climit, r.client_mask_seconds / climit,
           r.server_finish_seconds, (unsigned long long)r.server_masks, slimit,
           slimit > 0 ? r.server_finish_seconds / slimit : 0, r.server_state_bytes / 1048576.0,
           r.exact ? "yes" : "NO", r.seconds_total, *rate / 1e9);
    fflush(stdout);
    return r.exact ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (sodium_init() < 0)
        return 1;
    double ro = rate_openssl(), rs = rate_sodium(), rf = rate_fused();
    double rate = ro > rs ? ro : rs;
    printf("ChaCha20 keystream, 8 KiB buffer, best of %d x %d MiB:\n", REPS, KS_TOTAL >> 20);
    printf("  OpenSSL EVP_chacha20      %6.2f GB/s\n", ro / 1e9);
    printf("  libsodium chacha20_ietf   %6.2f GB/s\n", rs / 1e9);
    printf("  fused masking (32 masks into 10^6 words, sl_secagg_prg_apply) %6.2f GB/s\n",
           rf / 1e9);
    printf("limits: masks x D x 4 bytes at the fastest keystream rate seen so far (ks_GB/s,\n"
           "re-measured before each round); x = measured / limit\n\n");
    printf("%5s %8s %6s %8s %12s %9s %6s %12s %8s %9s %6s %9s %6s %8s %6s\n", "N", "D", "degree",
           "masks", "client_s", "limit_s", "x", "server_s", "s_masks", "limit_s", "x",
           "server_MB", "exact", "total_s", "ks_GB/s");
    int bad = 0;
    if (argc >= 3) {
        bad |= one_round((uint32_t)atoi(argv[1]), (uint32_t)atoi(argv[2]),
                         argc > 3 ? atof(argv[3]) : 0.1, &rate);
    } else {
        static const uint32_t ns[] = {10, 100, 500}, ds[] = {100000, 1000000};
        for (size_t i = 0; i < 3; i++)
            for (size_t j = 0; j < 2; j++)
                bad |= one_round(ns[i], ds[j], 0.1, &rate);
    }
    return bad;
}
