#include "server/cmd_chanecho.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "crypto/channel.h"
#include "shared/cli.h"

static const char *usage =
    "usage: sealora-server channel-echo --config server.ini [--offer NAME=PATH]...\n"
    "                                   [--requests N] [--seconds S]\n"
    "\n"
    "Diagnostics: runs the authenticated channel with the server's credentials and\n"
    "answers every request with its own payload, so that `sealora-client\n"
    "channel-ping` on a site checks connectivity, certificates and keys end to end.\n"
    "--offer makes a file available to `channel-ping --fetch NAME` (repeatable).\n"
    "Logs handshakes and refusals (revoked, expired, other CA, bad signature,\n"
    "replay, ...) on stderr. Stops on Ctrl-C or SIGTERM, after N application\n"
    "requests, or after S seconds.\n";

static volatile sig_atomic_t g_stop;
static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static long number(const char *flag, const char *s)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < 0) {
        fprintf(stderr, "%s channel-echo: %s: '%s' is not a non-negative number\n",
                sl_cli_prog(), flag, s);
        return -1;
    }
    return v;
}

int sl_cmd_channel_echo(int argc, char **argv)
{
    if (sl_cli_wants_help(argc, argv)) {
        fputs(usage, stdout);
        return 0;
    }
    const char *config = NULL;
    const char *offers[SL_CHAN_MAX_FILES];
    int noffers = 0;
    long requests = 0, seconds = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc || (strcmp(a, "--config") && strcmp(a, "--offer") &&
                              strcmp(a, "--requests") && strcmp(a, "--seconds"))) {
            fprintf(stderr, "%s channel-echo: unexpected argument '%s'\n%s", sl_cli_prog(), a,
                    usage);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--config"))
            config = v;
        else if (!strcmp(a, "--offer")) {
            if (noffers == (int)SL_CHAN_MAX_FILES || !strchr(v, '=')) {
                fprintf(stderr, "%s channel-echo: --offer NAME=PATH, at most %u\n",
                        sl_cli_prog(), SL_CHAN_MAX_FILES);
                return 2;
            }
            offers[noffers++] = v;
        } else if ((!strcmp(a, "--requests") && (requests = number(a, v)) < 0) ||
                   (!strcmp(a, "--seconds") && (seconds = number(a, v)) < 0))
            return 2;
    }
    if (!config) {
        fprintf(stderr, "%s channel-echo: give --config server.ini\n%s", sl_cli_prog(), usage);
        return 2;
    }
    /* A daemon holding keys writes no core files. */
    struct rlimit nocore = {0, 0};
    setrlimit(RLIMIT_CORE, &nocore);
    sl_err err = {0};
    sl_chan_server_cfg cfg;
    if (sl_chan_server_config_load(config, &cfg, &err))
        return sl_cli_fail(NULL, "channel-echo: %s", err.msg);
    sl_chan_server *s = NULL;
    if (sl_chan_server_create(&cfg, &s, &err))
        return sl_cli_fail(NULL, "channel-echo: %s", err.msg);
    int rc = 0;
    for (int k = 0; k < noffers && !rc; k++) {
        char name[128];
        const char *eq = strchr(offers[k], '=');
        snprintf(name, sizeof name, "%.*s", (int)(eq - offers[k]), offers[k]);
        if (sl_chan_server_add_file(s, name, eq + 1, &err))
            rc = sl_cli_fail(NULL, "channel-echo: --offer %s: %s", offers[k], err.msg);
    }
    if (!rc && sl_chan_server_listen(s, &err))
        rc = sl_cli_fail(NULL, "channel-echo: %s", err.msg);
    if (rc) {
        sl_chan_server_free(s);
        return rc;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    time_t until = seconds ? time(NULL) + seconds : 0;
    long served = 0;
    while (!g_stop && (!requests || served < requests) && (!until || time(NULL) < until)) {
        sl_chan_request req;
        if (sl_chan_server_next(s, 200, &req, &err)) {
            rc = sl_cli_fail(NULL, "channel-echo: %s", err.msg);
            break;
        }
        if (!req.type)
            continue;
        served++;
        if (sl_chan_server_reply(s, req.type, req.payload, req.len, &err))
            fprintf(stderr, "%s channel-echo: %s\n", sl_cli_prog(), err.msg);
    }
    sl_chan_server_stats st;
    sl_chan_server_get_stats(s, &st);
    fprintf(stderr,
            "%s channel-echo: %ld requests echoed; %llu handshakes, %llu resumptions, %llu "
            "re-sends, %llu refused\n",
            sl_cli_prog(), served, (unsigned long long)st.handshakes,
            (unsigned long long)st.resumptions, (unsigned long long)st.resent,
            (unsigned long long)st.refused);
    sl_chan_server_free(s);
    return rc;
}
