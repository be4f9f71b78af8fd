#include "client/cmd_chanping.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto/channel.h"
#include "shared/cli.h"

static const char *usage =
    "usage: sealora-client channel-ping --config client.ini [--count N] [--bytes N]\n"
    "                                   [--fetch NAME --to PATH [--stop-after BYTES]]\n"
    "\n"
    "Diagnostics: connects to the server named in client.ini, authenticates both ways\n"
    "with the site's kit (certificate, key, CA), sends N echo requests (default 3)\n"
    "of random bytes (default 64), checks each answer and prints the round-trip\n"
    "time. Run `sealora-server channel-echo` on the server side. --fetch downloads\n"
    "a file the server offers to PATH in chunks, resuming an interrupted download\n"
    "and checking its BLAKE2b-256 digest; --stop-after stops it after BYTES, leaving\n"
    "a resumable partial download (to check resumption).\n";

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int parse_u64(const char *flag, const char *s, uint64_t max, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *end || errno || s[0] == '-' || v > max) {
        fprintf(stderr, "%s channel-ping: %s: '%s' is not a number in 0..%llu\n", sl_cli_prog(),
                flag, s, (unsigned long long)max);
        return 2;
    }
    *out = v;
    return 0;
}

typedef struct fetch_ctx {
    uint64_t stop_after; /* 0: never */
    uint64_t first;
    int seen;
} fetch_ctx;

static int on_progress(void *ctx, uint64_t done, uint64_t total)
{
    fetch_ctx *f = ctx;
    (void)total;
    if (!f->seen) {
        f->seen = 1;
        f->first = done;
    }
    return f->stop_after && done >= f->stop_after;
}

int sl_cmd_channel_ping(int argc, char **argv)
{
    if (sl_cli_wants_help(argc, argv)) {
        fputs(usage, stdout);
        return 0;
    }
    const char *config = NULL, *fetch = NULL, *to = NULL;
    uint64_t count = 3, bytes = 64, stop_after = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) {
            fprintf(stderr, "%s channel-ping: unexpected argument '%s'\n%s", sl_cli_prog(), a,
                    usage);
            return 2;
        }
        const char *v = argv[++i];
        int rc = 0;
        if (!strcmp(a, "--config"))
            config = v;
        else if (!strcmp(a, "--fetch"))
            fetch = v;
        else if (!strcmp(a, "--to"))
            to = v;
        else if (!strcmp(a, "--count"))
            rc = parse_u64(a, v, 1000000, &count);
        else if (!strcmp(a, "--bytes"))
            rc = parse_u64(a, v, SL_WIRE_MAX_PAYLOAD, &bytes);
        else if (!strcmp(a, "--stop-after"))
            rc = parse_u64(a, v, UINT64_MAX, &stop_after);
        else {
            fprintf(stderr, "%s channel-ping: unexpected argument '%s'\n%s", sl_cli_prog(), a,
                    usage);
            return 2;
        }
        if (rc)
            return rc;
    }
    if (!config || (!fetch != !to)) {
        fprintf(stderr, "%s channel-ping: give --config, and --to with --fetch\n%s",
                sl_cli_prog(), usage);
        return 2;
    }
    sl_err err = {0};
    sl_chan_client_cfg cfg;
    if (sl_chan_client_config_load(config, &cfg, &err))
        return sl_cli_fail(NULL, "channel-ping: %s", err.msg);
    sl_chan_client *c = NULL;
    if (sl_chan_client_create(&cfg, &c, &err))
        return sl_cli_fail(NULL, "channel-ping: %s", err.msg);
    int rc = 0;
    uint8_t *buf = malloc(bytes ? bytes : 1);
    double t0 = now_s();
    if (!buf) {
        rc = sl_cli_fail(NULL, "channel-ping: out of memory");
        goto out;
    }
    if (sl_chan_client_connect(c, &err)) {
        rc = sl_cli_fail(NULL, "channel-ping: %s", err.msg);
        goto out;
    }
    printf("authenticated to %s as site '%s' in %.1f ms\n", cfg.server, sl_chan_client_peer(c),
           (now_s() - t0) * 1e3);
    double total = 0;
    for (uint64_t k = 0; k < count; k++) {
        randombytes_buf(buf, bytes);
        sl_chan_reply r;
        double t = now_s();
        if (sl_chan_client_call(c, 1, buf, bytes, &r, &err)) {
            rc = sl_cli_fail(NULL, "channel-ping: echo %llu: %s", (unsigned long long)k + 1,
                             err.msg);
            goto out;
        }
        total += now_s() - t;
        int same = r.type == 1 && r.len == bytes && (!bytes || !memcmp(r.payload, buf, bytes));
        sl_chan_reply_free(&r);
        if (!same) {
            rc = sl_cli_fail(NULL, "channel-ping: echo %llu came back different",
                             (unsigned long long)k + 1);
            goto out;
        }
    }
    if (count)
        printf("%llu echoes of %llu bytes: %.2f ms per round trip\n", (unsigned long long)count,
               (unsigned long long)bytes, total / (double)count * 1e3);
    if (fetch) {
        fetch_ctx fc = {.stop_after = stop_after};
        double t = now_s();
        int frc = sl_chan_client_fetch(c, fetch, to, on_progress, &fc, &err);
        if (frc == SL_EABORT) {
            printf("%s\n", err.msg);
        } else if (frc) {
            rc = sl_cli_fail(NULL, "channel-ping: %s", err.msg);
            goto out;
        } else {
            if (fc.first)
                printf("resumed '%s' at byte %llu\n", fetch, (unsigned long long)fc.first);
            printf("fetched '%s' to %s in %.2f s, digest verified\n", fetch, to, now_s() - t);
        }
    }
    sl_chan_client_close(c, &err);
out:
    free(buf);
    sl_chan_client_free(c);
    return rc;
}
