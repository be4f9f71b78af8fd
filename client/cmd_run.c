#include "client/cmd_run.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/agent.h"
#include "shared/cli.h"

static const char usage[] =
    "usage: sealora-client run --kit DIR --data PATH [--state DIR] [options]\n"
    "\n"
    "The site agent (docs/runtime.md): connects to the server named in DIR/client.ini\n"
    "with the startup kit's certificate and key, downloads the model to tune (chunked,\n"
    "resumable, digest-checked) and, in every round it is sampled for, trains a LoRA\n"
    "adapter on the private text at PATH (a text file, a JSON Lines file with a \"text\"\n"
    "field, or a folder of them), then sends only its clipped, noised, quantised and\n"
    "masked update. Keeps the server's signed receipts in STATE/receipts and its own\n"
    "log in STATE/agent.jsonl (STATE defaults to DIR/state). Reconnects with backoff\n"
    "after network failures; refuses a server whose certificate does not verify.\n"
    "Exits 0 when the server ends the job.\n"
    "\n"
    "  --timeout S          seconds to wait for one answer (default: client.ini)\n"
    "  --max-backoff S      longest pause between reconnection attempts (default 30)\n"
    "  --give-up S          stop after S seconds without the server (default: never)\n"
    "  --quiet              no progress bars\n"
    "  --dump DIR           tests: write each quantised update (before masking) to DIR\n"
    "  --stall-after-masked R  tests: stop answering after the masked input of round R\n";

static int num(const char *flag, const char *v, long lo, long hi, long *out)
{
    return sl_cli_long("run", flag, v, lo, hi, out);
}

int sl_cmd_client_run(int argc, char **argv)
{
    if (sl_cli_wants_help(argc, argv)) {
        fputs(usage, stdout);
        return 0;
    }
    sl_agent_opts o;
    memset(&o, 0, sizeof o);
    o.quiet = !isatty(2);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        long v = 0;
        int rc = 0;
        if (!strcmp(a, "--quiet")) {
            o.quiet = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "%s run: unexpected argument '%s'\n%s", sl_cli_prog(), a, usage);
            return 2;
        }
        const char *val = argv[++i];
        if (!strcmp(a, "--kit"))
            o.kit = val;
        else if (!strcmp(a, "--data"))
            o.data = val;
        else if (!strcmp(a, "--state"))
            o.state = val;
        else if (!strcmp(a, "--dump"))
            o.dump = val;
        else if (!strcmp(a, "--timeout"))
            rc = num(a, val, 1, 86400, &v), o.timeout_s = (int)v;
        else if (!strcmp(a, "--max-backoff"))
            rc = num(a, val, 1, 3600, &v), o.max_backoff_s = (int)v;
        else if (!strcmp(a, "--give-up"))
            rc = num(a, val, 1, 86400 * 30, &v), o.give_up_s = (int)v;
        else if (!strcmp(a, "--stall-after-masked"))
            rc = num(a, val, 1, 1000000000, &v), o.stall_round = (uint64_t)v;
        else {
            fprintf(stderr, "%s run: unexpected argument '%s'\n%s", sl_cli_prog(), a, usage);
            return 2;
        }
        if (rc)
            return rc;
    }
    if (!o.kit || !o.data) {
        fprintf(stderr, "%s run: give --kit DIR and --data PATH\n%s", sl_cli_prog(), usage);
        return 2;
    }
    sl_err err = {0};
    if (sl_agent_run(&o, &err))
        return sl_cli_fail(NULL, "run: %s", err.msg);
    return 0;
}
