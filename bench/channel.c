/* bench/channel.c - handshakes per second and encrypted-channel throughput
 * over loopback, next to libsodium's raw XChaCha20-Poly1305 rate measured in
 * the same run (the ratio is the figure; docs/performance.md).
 *
 * The server runs in a thread of this process on a real nanomsg socket on
 * 127.0.0.1; the site is the main thread. A message of the throughput test
 * is sealed by the site, sent, opened by the server, answered with an empty
 * sealed reply: the channel's work per message is one seal and one open.
 * Two ways of sending: lockstep (sl_chan_client_call, one request at a
 * time) and pipelined (sl_chan_client_send/recv, SL_CHAN_WINDOW in flight,
 * so the site's seal of the next message overlaps the server's open of
 * this one on the other core). Raw rates: libsodium sealing only, and
 * sealing then opening, in place, on the same sizes. The four figures are
 * measured in five alternating slices and the median of each is printed,
 * with the load average before and after (the machine is shared).
 * Prints figures; asserts nothing. Optional argument: scale (default 1). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "crypto/channel.h"
#include "crypto/identity.h"
#include "shared/transport.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what, const sl_err *err)
{
    fprintf(stderr, "bench channel: %s: %s\n", what, err ? err->msg : "");
    exit(1);
}

static void quiet(void *ctx, sl_chan_log_level level, const char *line)
{
    (void)ctx, (void)level, (void)line;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) ||
        getsockname(fd, (struct sockaddr *)&a, &len))
        die("free port", NULL);
    close(fd);
    return ntohs(a.sin_port);
}

typedef struct srv {
    sl_chan_server *s;
    volatile int stop;
} srv;

static void *serve(void *arg)
{
    srv *t = arg;
    sl_err err = {0};
    while (!t->stop) {
        sl_chan_request req;
        if (sl_chan_server_next(t->s, 50, &req, &err))
            break;
        if (req.type)
            sl_chan_server_reply(t->s, req.type, NULL, 0, &err);
    }
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median5(double v[5])
{
    qsort(v, 5, sizeof v[0], cmp_double);
    return v[2];
}

/* CPU seconds of the whole process (site, server and nanomsg threads). */
static double cpu_s(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           (double)(u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

/* MB/s of count n-byte messages through the channel, lockstep or pipelined;
 * *cores: CPU time over wall time (how many cores it kept busy). */
static double channel_mbs(sl_chan_client *c, const uint8_t *payload, size_t n, size_t count,
                          int pipelined, double *cores)
{
    sl_err err = {0};
    double t0 = now_s(), c0 = cpu_s();
    size_t sent = 0, got = 0;
    while (got < count) {
        sl_chan_reply rep;
        if (!pipelined) {
            if (sl_chan_client_call(c, 1, payload, n, &rep, &err))
                die("call", &err);
        } else {
            while (sent < count && sent - got < SL_CHAN_WINDOW) {
                if (sl_chan_client_send(c, 1, payload, n, &err))
                    die("send", &err);
                sent++;
            }
            if (sl_chan_client_recv(c, &rep, &err))
                die("recv", &err);
        }
        sl_chan_reply_free(&rep);
        got++;
    }
    double wall = now_s() - t0;
    if (cores)
        *cores = (cpu_s() - c0) / wall;
    return (double)count * (double)n / wall / 1e6;
}

/* MB/s of libsodium sealing (and opening) n-byte messages in place. */
static void raw_rates(size_t n, double seconds, double *seal_mbs, double *both_mbs)
{
    uint8_t *buf = malloc(n), key[32], nonce[24], tag[16], ad[64] = {0};
    randombytes_buf(buf, n);
    randombytes_buf(key, 32);
    randombytes_buf(nonce, 24);
    double t0 = now_s(), t;
    size_t k = 0;
    do {
        crypto_aead_xchacha20poly1305_ietf_encrypt_detached(buf, tag, NULL, buf, n, ad, 64, NULL,
                                                            nonce, key);
        k++;
    } while ((t = now_s() - t0) < seconds);
    *seal_mbs = (double)k * (double)n / t / 1e6;
    t0 = now_s();
    k = 0;
    do {
        crypto_aead_xchacha20poly1305_ietf_encrypt_detached(buf, tag, NULL, buf, n, ad, 64, NULL,
                                                            nonce, key);
        if (crypto_aead_xchacha20poly1305_ietf_decrypt_detached(buf, NULL, buf, n, tag, ad, 64,
                                                                nonce, key) != 0)
            die("raw open", NULL);
        k++;
    } while ((t = now_s() - t0) < seconds);
    *both_mbs = (double)k * (double)n / t / 1e6;
    free(buf);
}

int main(int argc, char **argv)
{
    double scale = argc > 1 ? atof(argv[1]) : 1.0;
    if (scale <= 0)
        scale = 1.0;
    if (sodium_init() < 0)
        die("sodium_init", NULL);
    char dir[] = "/tmp/sealora-bench-XXXXXX";
    if (!mkdtemp(dir))
        die("mkdtemp", NULL);
    char ca[256], cak[256], sc[256], sk[256], cc[256], ck[256], crl[256];
    snprintf(ca, sizeof ca, "%s/ca.crt", dir);
    snprintf(cak, sizeof cak, "%s/ca.key", dir);
    snprintf(sc, sizeof sc, "%s/server.crt", dir);
    snprintf(sk, sizeof sk, "%s/server.key", dir);
    snprintf(cc, sizeof cc, "%s/site.crt", dir);
    snprintf(ck, sizeof ck, "%s/site.key", dir);
    snprintf(crl, sizeof crl, "%s/crl.pem", dir);
    sl_err err = {0};
    uint8_t pk[32];
    if (sl_identity_ca_create(ca, cak, NULL, &err) ||
        sl_identity_crl_write(ca, cak, NULL, 0, crl, &err) ||
        sl_identity_keygen(sk, pk, &err) ||
        sl_identity_issue(ca, cak, "server", SL_IDENTITY_ROLE_SERVER, pk, NULL, sc, NULL, &err) ||
        sl_identity_keygen(ck, pk, &err) ||
        sl_identity_issue(ca, cak, "bench", SL_IDENTITY_ROLE_SITE, pk, NULL, cc, NULL, &err))
        die("credentials", &err);
    int port = free_port();
    sl_chan_server_cfg scfg;
    memset(&scfg, 0, sizeof scfg);
    snprintf(scfg.listen, sizeof scfg.listen, "127.0.0.1:%d", port);
    snprintf(scfg.cert, sizeof scfg.cert, "%s", sc);
    snprintf(scfg.key, sizeof scfg.key, "%s", sk);
    snprintf(scfg.ca, sizeof scfg.ca, "%s", ca);
    snprintf(scfg.crl, sizeof scfg.crl, "%s", crl);
    scfg.log = quiet;
    sl_chan_client_cfg ccfg;
    memset(&ccfg, 0, sizeof ccfg);
    snprintf(ccfg.server, sizeof ccfg.server, "127.0.0.1:%d", port);
    snprintf(ccfg.cert, sizeof ccfg.cert, "%s", cc);
    snprintf(ccfg.key, sizeof ccfg.key, "%s", ck);
    snprintf(ccfg.ca, sizeof ccfg.ca, "%s", ca);
    ccfg.timeout_ms = 30000;

    /* 1. Handshakes in process: the crypto and codec cost alone. */
    sl_chan_server *ms = NULL;
    sl_chan_client *mc = NULL;
    scfg.max_sessions = 16;
    if (sl_chan_server_create(&scfg, &ms, &err) || sl_chan_client_create(&ccfg, &mc, &err))
        die("create", &err);
    int nhs = (int)(300 * scale);
    double t0 = now_s();
    for (int i = 0; i < nhs; i++) {
        uint8_t *f = NULL, *next = NULL;
        size_t n = 0, nn = 0, rl = 0;
        const uint8_t *r;
        sl_chan_request req;
        if (sl_chan_client_start(mc, 0, &f, &n, &err))
            die("start", &err);
        while (f) {
            if (sl_chan_server_process(ms, f, n, NULL, 0, &req, &r, &rl, &err))
                die("server", &err);
            uint8_t *copy = malloc(rl);
            memcpy(copy, r, rl);
            sl_transport_free(f);
            if (sl_chan_client_handle(mc, copy, rl, &next, &nn, &err))
                die("client", &err);
            free(copy);
            f = next;
            n = nn;
        }
    }
    double hs_mem = nhs / (now_s() - t0);
    /* Resumptions in process. */
    t0 = now_s();
    for (int i = 0; i < nhs; i++) {
        uint8_t *f = NULL, *next = NULL;
        size_t n = 0, nn = 0, rl = 0;
        const uint8_t *r;
        sl_chan_request req;
        if (sl_chan_client_start(mc, 1, &f, &n, &err) ||
            sl_chan_client_get_state(mc) != SL_CHAN_RESUME_SENT)
            die("resume start", &err);
        if (sl_chan_server_process(ms, f, n, NULL, 0, &req, &r, &rl, &err))
            die("resume server", &err);
        uint8_t *copy = malloc(rl);
        memcpy(copy, r, rl);
        sl_transport_free(f);
        if (sl_chan_client_handle(mc, copy, rl, &next, &nn, &err))
            die("resume client", &err);
        free(copy);
    }
    double res_mem = nhs / (now_s() - t0);
    sl_chan_client_free(mc);
    sl_chan_server_free(ms);

    /* 2. Over loopback sockets. */
    scfg.max_sessions = 64;
    srv t = {0};
    if (sl_chan_server_create(&scfg, &t.s, &err) || sl_chan_server_listen(t.s, &err))
        die("listen", &err);
    char fpath[300];
    snprintf(fpath, sizeof fpath, "%s/emulator.bin", dir);
    size_t fsize = (size_t)(64 * scale) << 20;
    {
        FILE *fp = fopen(fpath, "wb");
        uint8_t *blk = malloc(1 << 20);
        randombytes_buf(blk, 1 << 20);
        for (size_t o = 0; o < fsize; o += 1 << 20)
            fwrite(blk, 1, 1 << 20, fp);
        fclose(fp);
        free(blk);
    }
    if (sl_chan_server_add_file(t.s, "emulator.bin", fpath, &err))
        die("add file", &err);
    pthread_t th;
    pthread_create(&th, NULL, serve, &t);
    sl_chan_client *c = NULL;
    if (sl_chan_client_create(&ccfg, &c, &err) || sl_chan_client_connect(c, &err))
        die("connect", &err);
    /* Full handshakes: connect, then close (which also drops the ticket). */
    int nnet = (int)(200 * scale);
    t0 = now_s();
    for (int i = 0; i < nnet; i++)
        if (sl_chan_client_close(c, &err) || sl_chan_client_connect(c, &err))
            die("reconnect", &err);
    double hs_net = nnet / (now_s() - t0);
    double load0[3] = {0}, load1[3] = {0};
    getloadavg(load0, 3);
    struct {
        size_t size;
        double lock, pipe, seal, both, lock_cores, pipe_cores;
    } rows[2] = {{1u << 20, 0, 0, 0, 0, 0, 0}, {64u << 10, 0, 0, 0, 0, 0, 0}};
    uint8_t *payload = malloc(1u << 20);
    randombytes_buf(payload, 1u << 20);
    /* Lockstep, pipelined and raw rates alternate in short slices, five
     * times; the median of each is kept. */
    for (int r = 0; r < 2; r++) {
        size_t n = rows[r].size;
        size_t count = ((size_t)(256 * scale) << 20) / n / 5;
        channel_mbs(c, payload, n, 8, 0, NULL); /* warm-up */
        channel_mbs(c, payload, n, 8, 1, NULL);
        double lock[5], pipe[5], seal[5], both[5], lc[5], pc[5];
        for (int k = 0; k < 5; k++) {
            lock[k] = channel_mbs(c, payload, n, count, 0, &lc[k]);
            pipe[k] = channel_mbs(c, payload, n, count, 1, &pc[k]);
            raw_rates(n, 0.2, &seal[k], &both[k]);
        }
        rows[r].lock_cores = median5(lc);
        rows[r].pipe_cores = median5(pc);
        rows[r].lock = median5(lock);
        rows[r].pipe = median5(pipe);
        rows[r].seal = median5(seal);
        rows[r].both = median5(both);
    }
    char dest[300];
    snprintf(dest, sizeof dest, "%s/got.bin", dir);
    t0 = now_s();
    if (sl_chan_client_fetch(c, "emulator.bin", dest, NULL, NULL, &err))
        die("fetch", &err);
    double fetch_mbs = (double)fsize / (now_s() - t0) / 1e6;
    getloadavg(load1, 3);
    sl_chan_client_close(c, &err);
    t.stop = 1;
    pthread_join(th, NULL);
    sl_chan_server_stats sst;
    sl_chan_server_get_stats(t.s, &sst);
    sl_chan_client_free(c);
    sl_chan_server_free(t.s);

    printf("channel benchmark (libsodium %s, scale %.2g)\n", sodium_version_string(), scale);
    printf("  full handshakes, in process:        %8.0f /s  (X25519 x2, Ed25519 sign+verify x2, "
           "2 certificate verifications)\n",
           hs_mem);
    printf("  resumptions, in process:            %8.0f /s\n", res_mem);
    printf("  full handshake + close, loopback:   %8.0f /s\n", hs_net);
    printf("  load average before %.2f %.2f %.2f, after %.2f %.2f %.2f (2 cores shared)\n",
           load0[0], load0[1], load0[2], load1[0], load1[1], load1[2]);
    printf("  medians of 5 slices, MB/s (cores: CPU time / wall time of the channel runs):\n");
    printf("  %-7s %9s %10s %9s %9s %10s %10s %9s %6s %6s\n", "message", "lockstep", "pipelined",
           "raw seal", "raw s+o", "pipe/seal", "lock/seal", "pipe/s+o", "cores", "cores");
    printf("  %-7s %9s %10s %9s %9s %10s %10s %9s %6s %6s\n", "", "", "", "", "", "", "", "",
           "lock", "pipe");
    for (int r = 0; r < 2; r++)
        printf("  %-7s %9.0f %10.0f %9.0f %9.0f %9.0f%% %9.0f%% %8.0f%% %6.2f %6.2f\n",
               rows[r].size == (1u << 20) ? "1 MiB" : "64 KiB", rows[r].lock, rows[r].pipe,
               rows[r].seal, rows[r].both, 100 * rows[r].pipe / rows[r].seal,
               100 * rows[r].lock / rows[r].seal, 100 * rows[r].pipe / rows[r].both,
               rows[r].lock_cores, rows[r].pipe_cores);
    printf("  fetch of %zu MiB in 1 MiB chunks, %u in flight: %6.0f MB/s\n", fsize >> 20,
           SL_CHAN_WINDOW, fetch_mbs);
    printf("  server: %llu requests, %llu re-sends answered from the cache, %llu refused\n",
           (unsigned long long)sst.requests, (unsigned long long)sst.resent,
           (unsigned long long)sst.refused);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench channel: could not remove %s\n", dir);
    free(payload);
    return 0;
}
