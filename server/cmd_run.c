#include "server/cmd_run.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/fedserver.h"
#include "shared/cli.h"
#include "shared/fsutil.h"

static const char run_usage[] =
    "usage: sealora-server run --config server.ini --state DIR [--json] [--repair-log]\n"
    "\n"
    "Runs the federated job of server.ini's [run] section (docs/runtime.md): serves the\n"
    "model to the enrolled sites over the authenticated channel, samples a cohort each\n"
    "round, collects the sites' clipped, noised, quantised and masked updates with\n"
    "secure aggregation, applies FedAvg (or FedAdam) to the unmasked sum, logs every\n"
    "round in DIR/audit.jsonl, hands receipts to the contributors and checkpoints\n"
    "atomically to DIR/checkpoint.bin. Refuses a round that would overspend the\n"
    "privacy budget, and says so. On an existing DIR it resumes at the last completed\n"
    "round; a round in flight at a crash is abandoned and its budget charged.\n"
    "At the end the global adapter is written to DIR/adapter (PEFT layout).\n"
    "\n"
    "  --json         operator lines on stderr as JSON objects\n"
    "  --repair-log   accept an audit log whose last line was torn by a crash (the\n"
    "                 torn bytes are kept aside and recorded)\n"
    "  --dump DIR     write each round's unmasked sum to DIR (tests)\n"
    "\n"
    "`sealora-server status --state DIR` shows the server's progress.\n";

int sl_cmd_run(int argc, char **argv)
{
    if (sl_cli_wants_help(argc, argv)) {
        fputs(run_usage, stdout);
        return 0;
    }
    sl_fedserver_opts o;
    memset(&o, 0, sizeof o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--json"))
            o.json = 1;
        else if (!strcmp(a, "--repair-log"))
            o.repair_log = 1;
        else if (i + 1 < argc && !strcmp(a, "--config"))
            o.config = argv[++i];
        else if (i + 1 < argc && !strcmp(a, "--state"))
            o.state = argv[++i];
        else if (i + 1 < argc && !strcmp(a, "--dump"))
            o.dump = argv[++i];
        else {
            fprintf(stderr, "%s run: unexpected argument '%s'\n%s", sl_cli_prog(), a, run_usage);
            return 2;
        }
    }
    if (!o.config || !o.state) {
        fprintf(stderr, "%s run: give --config server.ini and --state DIR\n%s", sl_cli_prog(),
                run_usage);
        return 2;
    }
    sl_err err = {0};
    if (sl_fedserver_run(&o, &err))
        return sl_cli_fail(NULL, "run: %s", err.msg);
    return 0;
}

static const char status_usage[] =
    "usage: sealora-server status --state DIR [--json]\n"
    "\n"
    "Prints what the server running on DIR last reported (DIR/status.json, rewritten\n"
    "at every phase): whether it is running, the round and phase, the sites online and\n"
    "sampled, rounds released and aborted, the privacy budget spent, the evaluation\n"
    "loss. Exit status 0 when a status was read, 1 otherwise.\n";

int sl_cmd_status(int argc, char **argv)
{
    if (sl_cli_wants_help(argc, argv)) {
        fputs(status_usage, stdout);
        return 0;
    }
    const char *state = NULL;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            json = 1;
        else if (i + 1 < argc && !strcmp(argv[i], "--state"))
            state = argv[++i];
        else {
            fprintf(stderr, "%s status: unexpected argument '%s'\n%s", sl_cli_prog(), argv[i],
                    status_usage);
            return 2;
        }
    }
    if (!state) {
        fprintf(stderr, "%s status: give --state DIR\n%s", sl_cli_prog(), status_usage);
        return 2;
    }
    char p[1200];
    sl_err err = {0};
    uint8_t *buf = NULL;
    size_t n;
    if (sl_fs_join(p, sizeof p, state, SL_FEDSERVER_STATUS, &err) ||
        sl_fs_read_all(p, 1u << 20, &buf, &n, &err))
        return sl_cli_fail(NULL, "status: %s (is a server running on %s?)", err.msg, state);
    json_error_t je;
    json_t *j = json_loadb((const char *)buf, n, JSON_REJECT_DUPLICATES, &je);
    free(buf);
    if (!j || !json_is_object(j)) {
        json_decref(j);
        return sl_cli_fail(NULL, "status: %s: line %d: %s", p, je.line, je.text);
    }
    json_int_t pid = json_integer_value(json_object_get(j, "pid"));
    int alive = pid > 0 && kill((pid_t)pid, 0) == 0;
    if (json) {
        json_object_set_new(j, "running", json_boolean(alive));
        char *t = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
        if (t)
            puts(t);
        free(t);
        json_decref(j);
        return 0;
    }
    const char *phase = json_string_value(json_object_get(j, "phase"));
    time_t when = (time_t)json_integer_value(json_object_get(j, "time"));
    printf("server: %s (pid %lld), reported %lld s ago\n", alive ? "running" : "not running",
           (long long)pid, (long long)(time(NULL) - when));
    printf("round: %lld of %lld, phase %s; last completed %lld\n",
           (long long)json_integer_value(json_object_get(j, "round")),
           (long long)json_integer_value(json_object_get(j, "rounds")), phase ? phase : "?",
           (long long)json_integer_value(json_object_get(j, "last_completed")));
    printf("rounds released %lld, aborted %lld\n",
           (long long)json_integer_value(json_object_get(j, "released")),
           (long long)json_integer_value(json_object_get(j, "aborted")));
    printf("privacy: epsilon %.4g of %.4g at delta %g\n",
           json_number_value(json_object_get(j, "epsilon")),
           json_number_value(json_object_get(j, "epsilon_budget")),
           json_number_value(json_object_get(j, "delta")));
    json_t *el = json_object_get(j, "eval_loss");
    if (el)
        printf("evaluation loss: %.4f\n", json_number_value(el));
    json_t *sites = json_object_get(j, "sites");
    size_t i;
    json_t *x;
    printf("sites: %lld online, %lld sampled\n",
           (long long)json_integer_value(json_object_get(j, "online")),
           (long long)json_integer_value(json_object_get(j, "sampled")));
    json_array_foreach(sites, i, x) {
        printf("  %-20s %-8s %s\n", json_string_value(json_object_get(x, "site")),
               json_is_true(json_object_get(x, "online")) ? "online" : "offline",
               json_is_true(json_object_get(x, "sampled")) ? "sampled" : "");
    }
    json_decref(j);
    return 0;
}
