/* libFuzzer target for the handshake parsers: arbitrary frames handed to the
 * server (HELLO, FINISH, RESUME, DATA, anything) and to a site in each state
 * that parses server frames (HELLO_SENT, RESUME_SENT, REQUEST_SENT). Every
 * input must be refused or handled without crashing, and a refused frame
 * must leave the site's state unchanged. Credentials are made once, in a
 * temporary folder, at start. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crypto/channel.h"
#include "crypto/identity.h"
#include "shared/transport.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static sl_chan_server *g_srv;
static sl_chan_client *g_cli[3]; /* waiting for HELLO_REPLY, RESUME_OK, REPLY */
static uint64_t g_now = 1000;
static char g_dir[] = "/tmp/sealora-fuzz-XXXXXX";

static uint64_t clock_fn(void *ctx)
{
    (void)ctx;
    return g_now;
}
static void quiet(void *ctx, sl_chan_log_level level, const char *line)
{
    (void)ctx, (void)level, (void)line;
}

static void cleanup(void)
{
    for (int i = 0; i < 3; i++)
        sl_chan_client_free(g_cli[i]);
    sl_chan_server_free(g_srv);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "fuzz_handshake: could not remove %s\n", g_dir);
}

/* Runs one real handshake between site c and the server. */
static void handshake(sl_chan_client *c)
{
    sl_err err;
    uint8_t *f = NULL, *next = NULL;
    size_t n = 0, nn = 0, rl = 0;
    const uint8_t *r;
    sl_chan_request req;
    if (sl_chan_client_start(c, 0, &f, &n, &err))
        abort();
    while (f) {
        if (sl_chan_server_process(g_srv, f, n, NULL, 0, &req, &r, &rl, &err))
            abort();
        uint8_t *copy = malloc(rl);
        memcpy(copy, r, rl);
        sl_transport_free(f);
        if (sl_chan_client_handle(c, copy, rl, &next, &nn, &err))
            abort();
        free(copy);
        f = next;
        n = nn;
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    if (!mkdtemp(g_dir))
        abort();
    char ca[96], cak[96], crl[96];
    snprintf(ca, sizeof ca, "%s/ca.crt", g_dir);
    snprintf(cak, sizeof cak, "%s/ca.key", g_dir);
    snprintf(crl, sizeof crl, "%s/crl.pem", g_dir);
    sl_chan_server_cfg s;
    sl_chan_client_cfg c;
    memset(&s, 0, sizeof s);
    memset(&c, 0, sizeof c);
    snprintf(s.cert, sizeof s.cert, "%s/s.crt", g_dir);
    snprintf(s.key, sizeof s.key, "%s/s.key", g_dir);
    snprintf(c.cert, sizeof c.cert, "%s/a.crt", g_dir);
    snprintf(c.key, sizeof c.key, "%s/a.key", g_dir);
    sl_err err;
    uint8_t pk[32];
    if (sl_identity_ca_create(ca, cak, NULL, &err) ||
        sl_identity_crl_write(ca, cak, NULL, 0, crl, &err) ||
        sl_identity_keygen(s.key, pk, &err) ||
        sl_identity_issue(ca, cak, "server", SL_IDENTITY_ROLE_SERVER, pk, NULL, s.cert, NULL,
                          &err) ||
        sl_identity_keygen(c.key, pk, &err) ||
        sl_identity_issue(ca, cak, "a", SL_IDENTITY_ROLE_SITE, pk, NULL, c.cert, NULL, &err)) {
        fprintf(stderr, "fuzz_handshake: %s\n", err.msg);
        abort();
    }
    snprintf(s.ca, sizeof s.ca, "%s", ca);
    snprintf(s.crl, sizeof s.crl, "%s", crl);
    snprintf(c.ca, sizeof c.ca, "%s", ca);
    s.log = c.log = quiet;
    s.clock = c.clock = clock_fn;
    s.max_sessions = 8;
    if (sl_chan_server_create(&s, &g_srv, &err)) {
        fprintf(stderr, "fuzz_handshake: %s\n", err.msg);
        abort();
    }
    for (int i = 0; i < 3; i++)
        if (sl_chan_client_create(&c, &g_cli[i], &err)) {
            fprintf(stderr, "fuzz_handshake: %s\n", err.msg);
            abort();
        }
    atexit(cleanup);
    return 0;
}

/* Puts client i in the state its fuzz case needs, cheaply when it is
 * already there (a refused frame leaves it there). */
static void prepare(int i)
{
    sl_chan_client *c = g_cli[i];
    sl_chan_client_state want = i == 0 ? SL_CHAN_HELLO_SENT
                                : i == 1 ? SL_CHAN_RESUME_SENT
                                         : SL_CHAN_REQUEST_SENT;
    if (sl_chan_client_get_state(c) == want)
        return;
    sl_err err;
    uint8_t *f = NULL;
    size_t n = 0;
    if (i > 0)
        handshake(c);
    int rc = i == 2 ? sl_chan_client_seal(c, 1, "q", 1, &f, &n, &err)
                    : sl_chan_client_start(c, i == 1, &f, &n, &err);
    if (rc || sl_chan_client_get_state(c) != want)
        abort();
    sl_transport_free(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    g_now += 1;
    sl_err err;
    uint8_t *buf = malloc(size);
    memcpy(buf, data + 1, size - 1);
    size_t n = size - 1;
    switch (data[0] % 4) {
    case 0: { /* the server parses anything a site could send */
        sl_chan_request req;
        const uint8_t *r = NULL;
        size_t rl = 0;
        int rc = sl_chan_server_process(g_srv, buf, n, NULL, 0, &req, &r, &rl, &err);
        if (rc == 0 && req.type) {
            if (sl_chan_server_seal_reply(g_srv, req.type, req.payload, req.len, &r, &rl, &err))
                abort();
        } else if (rc != 0 && !r) {
            abort(); /* a refusal always comes with an ERROR frame */
        }
        break;
    }
    default: { /* a site waiting for HELLO_REPLY, RESUME_OK or REPLY */
        int i = data[0] % 4 - 1;
        prepare(i);
        sl_chan_client *c = g_cli[i];
        sl_chan_client_state before = sl_chan_client_get_state(c);
        int rc;
        if (i == 2) {
            sl_wire_app app;
            rc = sl_chan_client_open(c, buf, n, &app, &err);
        } else {
            uint8_t *next = NULL;
            size_t nn = 0;
            rc = sl_chan_client_handle(c, buf, n, &next, &nn, &err);
            sl_transport_free(next);
        }
        /* Refused: unchanged, or back to IDLE on an ERROR frame that ends
         * the handshake or session. */
        if (rc != 0 && sl_chan_client_get_state(c) != before &&
            sl_chan_client_get_state(c) != SL_CHAN_IDLE)
            abort();
        break;
    }
    }
    free(buf);
    return 0;
}
