#include "client/cmd_enroll.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto/identity.h"
#include "shared/cli.h"
#include "shared/fsutil.h"

static const char *usage =
    "usage: sealora-client enroll --name NAME --out DIR\n"
    "\n"
    "Makes this site's Ed25519 private key DIR/site.key (mode 0600; an existing key\n"
    "is never overwritten) and a certificate signing request DIR/site.csr. Send the\n"
    "request to the operator, who runs\n"
    "    sealora-server provision --out OUT --sign site.csr\n"
    "and sends back site.crt, ca.crt and client.ini from OUT/sites/NAME; put them\n"
    "in DIR. The private key never leaves this machine.\n";

int sl_cmd_enroll(int argc, char **argv)
{
    if (sl_cli_wants_help(argc, argv)) {
        fputs(usage, stdout);
        return 0;
    }
    const char *name = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char **dst = strcmp(argv[i], "--name") == 0 ? &name
                           : strcmp(argv[i], "--out") == 0 ? &out
                                                           : NULL;
        if (!dst || i + 1 >= argc) {
            fprintf(stderr, "%s enroll: %s '%s'\n%s", sl_cli_prog(),
                    dst ? "missing value after" : "unexpected argument", argv[i], usage);
            return 2;
        }
        *dst = argv[++i];
    }
    if (!name || !out) {
        fprintf(stderr, "%s enroll: give --name and --out\n%s", sl_cli_prog(), usage);
        return 2;
    }
    sl_err err = {0};
    if (sl_identity_check_name(name, &err)) {
        fprintf(stderr, "%s enroll: --name: %s\n", sl_cli_prog(), err.msg);
        return 2;
    }
    char key[1024], csr[1024];
    if (sl_fs_join(key, sizeof key, out, "site.key", &err) ||
        sl_fs_join(csr, sizeof csr, out, "site.csr", &err))
        return sl_cli_fail(NULL, "enroll: %s", err.msg);
    if (sl_fs_mkdirs(out, 0700, &err))
        return sl_cli_fail(NULL, "enroll: %s", err.msg);
    if (sl_fs_exists(key))
        return sl_cli_fail(NULL, "enroll: %s already exists: this site is enrolled (remove the "
                           "key deliberately to start over)",
                           key);
    uint8_t pk[SL_IDENTITY_PK_BYTES];
    if (sl_identity_keygen(key, pk, &err))
        return sl_cli_fail(NULL, "enroll: %s", err.msg);
    unlink(csr); /* a request is public and cheap to remake */
    if (sl_identity_csr_write(key, name, csr, &err)) {
        unlink(key);
        return sl_cli_fail(NULL, "enroll: %s", err.msg);
    }
    char fpr[SL_IDENTITY_FPR_CHARS + 1];
    sl_identity_fingerprint(pk, fpr);
    printf("site '%s': key %s (fingerprint %s), request %s\n", name, key, fpr, csr);
    printf("send %s to the operator; put the site.crt, ca.crt and client.ini they return in %s\n",
           csr, out);
    return 0;
}
