#include "server/cmd_provision.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crypto/identity.h"
#include "shared/cli.h"
#include "shared/fsutil.h"
#include "shared/transport.h"

#define PMAX 1024
#define INDEX_MAX (16u << 20) /* index.json size limit */

static const char *provision_usage =
    "usage: sealora-server provision --out DIR --server HOST:PORT [--sites a,b,c]\n"
    "                                [--days N] [--start YYYY-MM-DD]\n"
    "       sealora-server provision --out DIR --add-site NAME [--days N] [--start DATE]\n"
    "       sealora-server provision --out DIR --sign CSR [--days N] [--start DATE]\n"
    "\n"
    "Creates a deployment's certificate authority (Ed25519 X.509) in DIR/ca, the\n"
    "server's certificate, key and server.ini in DIR/server, and for every site a\n"
    "startup kit in DIR/sites/NAME: site.crt, site.key (mode 0600), ca.crt and a\n"
    "client.ini naming the server's address. --add-site adds one kit later without\n"
    "touching the others. --sign issues a certificate for a signing request made on\n"
    "a site by `sealora-client enroll` (its key never leaves the site); the kit then\n"
    "holds site.crt, ca.crt and client.ini to send back.\n"
    "\n"
    "  --days N      validity of the certificates issued now (default 365)\n"
    "  --start DATE  first day of validity, YYYY-MM-DD in UTC (default now)\n"
    "\n"
    "Site names: 1 to 63 characters from a-z 0-9 _ -, starting with a letter or digit.\n"
    "A folder that already holds a CA is never overwritten: a new CA means a new DIR,\n"
    "and kits from the old one are refused with a message naming both CAs.\n";

static const char *renew_usage =
    "usage: sealora-server renew --out DIR NAME [--days N] [--start YYYY-MM-DD]\n"
    "\n"
    "Issues a new certificate for the same key of site NAME (or of the server when\n"
    "NAME is 'server'), from the same CA, and replaces DIR/sites/NAME/site.crt\n"
    "(or DIR/server/server.crt). Send the new site.crt to the site. The previous\n"
    "certificate stays valid until its own expiry.\n";

static const char *revoke_usage =
    "usage: sealora-server revoke --out DIR NAME\n"
    "\n"
    "Revokes every certificate issued to site NAME: rewrites the revocation list\n"
    "DIR/ca/crl.pem and DIR/server/crl.pem. A running server reads it again at the\n"
    "next handshake or message, so the site is refused at once and its sessions\n"
    "end. If the server runs from a copy of DIR/server, copy crl.pem there.\n";

typedef struct layout {
    char out[PMAX];
    char ca_dir[PMAX], ca_crt[PMAX], ca_key[PMAX], crl[PMAX], index[PMAX];
    char srv_dir[PMAX], srv_crt[PMAX], srv_key[PMAX], srv_ini[PMAX], srv_ca[PMAX], srv_crl[PMAX];
    char sites[PMAX];
} layout;

static int join(char *out, const char *a, const char *b, sl_err *err)
{
    return sl_fs_join(out, PMAX, a, b, err);
}

static int layout_init(layout *l, const char *out, sl_err *err)
{
    memset(l, 0, sizeof *l);
    if (snprintf(l->out, PMAX, "%s", out) >= PMAX)
        return sl_err_set(err, SL_ELIMIT, "--out: path too long");
    int rc = 0;
    rc |= join(l->ca_dir, out, "ca", err);
    rc |= join(l->ca_crt, l->ca_dir, "ca.crt", err);
    rc |= join(l->ca_key, l->ca_dir, "ca.key", err);
    rc |= join(l->crl, l->ca_dir, "crl.pem", err);
    rc |= join(l->index, l->ca_dir, "index.json", err);
    rc |= join(l->srv_dir, out, "server", err);
    rc |= join(l->srv_crt, l->srv_dir, "server.crt", err);
    rc |= join(l->srv_key, l->srv_dir, "server.key", err);
    rc |= join(l->srv_ini, l->srv_dir, "server.ini", err);
    rc |= join(l->srv_ca, l->srv_dir, "ca.crt", err);
    rc |= join(l->srv_crl, l->srv_dir, "crl.pem", err);
    rc |= join(l->sites, out, "sites", err);
    return rc ? SL_ELIMIT : 0;
}

/* "--name value" or "--name=value" at argv[*i]: 1 (value set, *i moved), 0
 * (another argument), -1 (value missing; message printed). */
static int opt(int argc, char **argv, int *i, const char *name, const char **val)
{
    size_t n = strlen(name);
    const char *a = argv[*i];
    if (strncmp(a, name, n) != 0)
        return 0;
    if (a[n] == '=') {
        *val = a + n + 1;
        return 1;
    }
    if (a[n] != 0)
        return 0;
    if (*i + 1 >= argc) {
        fprintf(stderr, "%s %s: %s needs a value\n", sl_cli_prog(), argv[0], name);
        return -1;
    }
    *val = argv[++*i];
    return 1;
}

static int parse_days(const char *cmd, const char *s, int *days)
{
    char *end = NULL;
    errno = 0;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || !*s || *end || errno || v < 1 || v > SL_IDENTITY_MAX_DAYS) {
        fprintf(stderr, "%s %s: --days: '%s' is not a number of days in 1..%d\n", sl_cli_prog(),
                cmd, s ? s : "", SL_IDENTITY_MAX_DAYS);
        return 2;
    }
    *days = (int)v;
    return 0;
}

static int parse_start(const char *cmd, const char *s, time_t *start)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = s ? strptime(s, "%Y-%m-%d", &tm) : NULL;
    if (!end || *end) {
        fprintf(stderr, "%s %s: --start: '%s' is not a date YYYY-MM-DD\n", sl_cli_prog(), cmd,
                s ? s : "");
        return 2;
    }
    *start = timegm(&tm);
    return 0;
}

static int copy_file(const char *from, const char *to, unsigned mode, sl_err *err)
{
    uint8_t *buf = NULL;
    size_t n = 0;
    int rc = sl_fs_read_all(from, SL_IDENTITY_MAX_PEM, &buf, &n, err);
    if (!rc)
        rc = sl_fs_write_atomic(to, buf, n, mode, err);
    free(buf);
    return rc;
}

static void fmt_utc(int64_t t, char out[32])
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || !strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(out, 32, "%lld", (long long)t);
}

/* ---- index.json --------------------------------------------------------- */

static json_t *index_load(const layout *l, sl_err *err)
{
    uint8_t *buf = NULL;
    size_t n = 0;
    if (sl_fs_read_all(l->index, INDEX_MAX, &buf, &n, err)) {
        if (err && err->code == SL_ENOTFOUND)
            sl_err_set(err, SL_ENOTFOUND,
                       "%s: no such file: is %s a folder made by `sealora-server provision`?",
                       l->index, l->out);
        return NULL;
    }
    json_error_t je;
    json_t *root = json_loadb((const char *)buf, n, JSON_REJECT_DUPLICATES, &je);
    free(buf);
    if (!root) {
        sl_err_set(err, SL_EFORMAT, "%s:%d:%d: %s", l->index, je.line, je.column, je.text);
        return NULL;
    }
    json_t *certs = json_object_get(root, "certs");
    const char *fmt = json_string_value(json_object_get(root, "format"));
    if (!json_is_object(root) || !fmt || strcmp(fmt, "sealora-ca-index") != 0 ||
        json_integer_value(json_object_get(root, "version")) != 1 || !json_is_array(certs) ||
        !json_is_string(json_object_get(root, "server"))) {
        json_decref(root);
        sl_err_set(err, SL_EFORMAT,
                   "%s: not a sealora CA index (format \"sealora-ca-index\", version 1, "
                   "server, certs)",
                   l->index);
        return NULL;
    }
    size_t i;
    json_t *e;
    json_array_foreach(certs, i, e)
    {
        const char *name = json_string_value(json_object_get(e, "name"));
        const char *serial = json_string_value(json_object_get(e, "serial"));
        if (!name || !serial || strlen(serial) > 40 || strlen(serial) % 2) {
            json_decref(root);
            sl_err_set(err, SL_EFORMAT, "%s: certs[%zu]: missing name or bad serial", l->index,
                       i);
            return NULL;
        }
    }
    return root;
}

static int index_save(const layout *l, json_t *root, sl_err *err)
{
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (!text)
        return sl_err_set(err, SL_ENOMEM, "%s: cannot encode", l->index);
    size_t n = strlen(text);
    text[n] = 0;
    char *withnl = malloc(n + 2);
    int rc;
    if (!withnl) {
        rc = sl_err_set(err, SL_ENOMEM, "%s: out of memory", l->index);
    } else {
        memcpy(withnl, text, n);
        withnl[n] = '\n';
        rc = sl_fs_write_atomic(l->index, withnl, n + 1, 0600, err);
    }
    free(withnl);
    free(text);
    return rc;
}

static void index_add(json_t *root, const sl_cert_info *ci, const char *how)
{
    char serial[41], nb[32], na[32];
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < ci->serial_len; i++) {
        serial[2 * i] = hex[ci->serial[i] >> 4];
        serial[2 * i + 1] = hex[ci->serial[i] & 15];
    }
    serial[2 * ci->serial_len] = 0;
    fmt_utc(ci->not_before, nb);
    fmt_utc(ci->not_after, na);
    json_t *e = json_object();
    json_object_set_new(e, "name", json_string(ci->name));
    json_object_set_new(e, "role",
                        json_string(ci->role == SL_IDENTITY_ROLE_SERVER ? "server" : "site"));
    json_object_set_new(e, "serial", json_string(serial));
    json_object_set_new(e, "not_before", json_string(nb));
    json_object_set_new(e, "not_after", json_string(na));
    json_object_set_new(e, "issued_from", json_string(how));
    json_object_set_new(e, "revoked", json_null());
    json_array_append_new(json_object_get(root, "certs"), e);
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Every revoked serial in the index, for the CRL. */
static int revoked_list(json_t *root, sl_identity_revoked **out, size_t *n, sl_err *err)
{
    json_t *certs = json_object_get(root, "certs");
    size_t cap = json_array_size(certs), k = 0, i;
    sl_identity_revoked *r = calloc(cap ? cap : 1, sizeof *r);
    if (!r)
        return sl_err_set(err, SL_ENOMEM, "out of memory");
    json_t *e;
    json_array_foreach(certs, i, e)
    {
        const char *when = json_string_value(json_object_get(e, "revoked"));
        if (!when)
            continue;
        const char *s = json_string_value(json_object_get(e, "serial"));
        size_t len = strlen(s) / 2;
        for (size_t b = 0; b < len; b++) {
            int hi = hexval(s[2 * b]), lo = hexval(s[2 * b + 1]);
            if (hi < 0 || lo < 0) {
                free(r);
                return sl_err_set(err, SL_EFORMAT, "index: serial '%s' is not hex", s);
            }
            r[k].serial[b] = (uint8_t)(hi << 4 | lo);
        }
        r[k].serial_len = len;
        struct tm tm;
        memset(&tm, 0, sizeof tm);
        const char *end = strptime(when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        r[k].when = end && !*end ? timegm(&tm) : time(NULL);
        k++;
    }
    *out = r;
    *n = k;
    return 0;
}

static int write_crl(const layout *l, json_t *root, sl_err *err)
{
    sl_identity_revoked *r = NULL;
    size_t n = 0;
    int rc = revoked_list(root, &r, &n, err);
    if (!rc)
        rc = sl_identity_crl_write(l->ca_crt, l->ca_key, r, n, l->crl, err);
    if (!rc && sl_fs_exists(l->srv_dir))
        rc = copy_file(l->crl, l->srv_crl, 0644, err);
    free(r);
    return rc;
}

/* ---- kits ----------------------------------------------------------------- */

static int write_text(const char *path, const char *text, unsigned mode, sl_err *err)
{
    return sl_fs_write_atomic(path, text, strlen(text), mode, err);
}

static int write_client_ini(const char *dir, const char *name, const char *server, sl_err *err)
{
    char path[PMAX], text[1024];
    int rc = join(path, dir, "client.ini", err);
    if (rc)
        return rc;
    snprintf(text, sizeof text,
             "# startup kit of site '%s', written by sealora-server provision\n"
             "[site]\n"
             "name = %s\n"
             "cert = site.crt\n"
             "key = site.key\n"
             "ca = ca.crt\n"
             "\n"
             "[server]\n"
             "address = %s\n"
             "timeout = 120\n",
             name, name, server);
    return write_text(path, text, 0644, err);
}

/* The bind address: the given host when it is an IP literal, else all
 * interfaces (nanomsg binds to addresses or interface names, not to DNS
 * names). */
static void listen_addr(const char *server, char *out, size_t cap)
{
    const char *colon = strrchr(server, ':');
    int ip = server[0] == '[';
    if (!ip) {
        ip = 1;
        for (const char *p = server; p < colon; p++)
            if (!((*p >= '0' && *p <= '9') || *p == '.'))
                ip = 0;
    }
    if (ip)
        snprintf(out, cap, "%s", server);
    else
        snprintf(out, cap, "*%s", colon);
}

static int write_server_ini(const layout *l, const char *server, sl_err *err)
{
    char text[1024], lst[300];
    listen_addr(server, lst, sizeof lst);
    snprintf(text, sizeof text,
             "# server configuration, written by sealora-server provision\n"
             "[server]\n"
             "listen = %s\n"
             "cert = server.crt\n"
             "key = server.key\n"
             "ca = ca.crt\n"
             "crl = crl.pem\n"
             "session_ttl = 3600\n"
             "ticket_ttl = 86400\n"
             "max_sessions = 256\n",
             lst);
    return write_text(l->srv_ini, text, 0600, err);
}

/* Kit folder for name; generate: make the key here (else the site has it). */
static int make_kit(const layout *l, json_t *root, const char *name, const uint8_t *site_pk,
                    const sl_identity_validity *v, sl_err *err)
{
    char dir[PMAX], key[PMAX], crt[PMAX], ca[PMAX];
    int rc = join(dir, l->sites, name, err);
    if (!rc)
        rc = join(key, dir, "site.key", err);
    if (!rc)
        rc = join(crt, dir, "site.crt", err);
    if (!rc)
        rc = join(ca, dir, "ca.crt", err);
    if (rc)
        return rc;
    if (sl_fs_exists(dir))
        return sl_err_set(err, SL_EINVAL,
                          "%s already exists: site '%s' has a kit (renew or revoke it, or remove "
                          "the folder after revoking)",
                          dir, name);
    if (mkdir(dir, 0700) != 0)
        return sl_err_errno(err, "%s: mkdir", dir);
    uint8_t pk[32];
    if (site_pk)
        memcpy(pk, site_pk, 32);
    else if ((rc = sl_identity_keygen(key, pk, err)))
        goto fail;
    sl_cert_info ci;
    if ((rc = sl_identity_issue(l->ca_crt, l->ca_key, name, SL_IDENTITY_ROLE_SITE, pk, v, crt, &ci,
                                err)) ||
        (rc = copy_file(l->ca_crt, ca, 0644, err)) ||
        (rc = write_client_ini(dir, name, json_string_value(json_object_get(root, "server")),
                               err)))
        goto fail;
    index_add(root, &ci, site_pk ? "csr" : "kit");
    return 0;
fail:
    unlink(key);
    unlink(crt);
    unlink(ca);
    char ini[PMAX];
    if (join(ini, dir, "client.ini", NULL) == 0)
        unlink(ini);
    rmdir(dir);
    return rc;
}

/* ---- provision -------------------------------------------------------------- */

static int fail(const char *cmd, const sl_err *err)
{
    fprintf(stderr, "%s %s: %s\n", sl_cli_prog(), cmd, err->msg);
    return 1;
}

static int provision_new(const layout *l, const char *server, const char *sites,
                         const sl_identity_validity *v)
{
    sl_err err = {0};
    char url[SL_TRANSPORT_URL_MAX];
    if (sl_transport_url(server, url, &err)) {
        fprintf(stderr, "%s provision: --server: %s\n", sl_cli_prog(), err.msg);
        return 2;
    }
    /* Validate every name before creating anything. */
    char list[4096];
    if (snprintf(list, sizeof list, "%s", sites ? sites : "") >= (int)sizeof list) {
        fprintf(stderr, "%s provision: --sites: list too long\n", sl_cli_prog());
        return 2;
    }
    char *names[256];
    int nn = 0;
    for (char *save = NULL, *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (sl_identity_check_name(t, &err)) {
            fprintf(stderr, "%s provision: --sites: %s\n", sl_cli_prog(), err.msg);
            return 2;
        }
        for (int k = 0; k < nn; k++)
            if (strcmp(names[k], t) == 0) {
                fprintf(stderr, "%s provision: --sites: '%s' appears twice\n", sl_cli_prog(), t);
                return 2;
            }
        if (nn == 256) {
            fprintf(stderr, "%s provision: --sites: at most 256 at once\n", sl_cli_prog());
            return 2;
        }
        names[nn++] = t;
    }
    if (sl_fs_exists(l->ca_crt)) {
        fprintf(stderr,
                "%s provision: %s already holds a CA; refusing to replace it (a new CA needs a "
                "new --out folder). Use --add-site, --sign, renew or revoke to change it.\n",
                sl_cli_prog(), l->out);
        return 1;
    }
    json_t *root = NULL;
    int rc = sl_fs_mkdirs(l->out, 0755, &err);
    if (!rc && mkdir(l->ca_dir, 0700) != 0)
        rc = sl_err_errno(&err, "%s: mkdir", l->ca_dir);
    if (!rc && mkdir(l->srv_dir, 0700) != 0)
        rc = sl_err_errno(&err, "%s: mkdir", l->srv_dir);
    if (!rc && mkdir(l->sites, 0755) != 0)
        rc = sl_err_errno(&err, "%s: mkdir", l->sites);
    if (rc)
        return fail("provision", &err);
    sl_identity_validity cav = {.start = v->start, .days = 0};
    uint8_t pk[32];
    sl_cert_info si;
    if ((rc = sl_identity_ca_create(l->ca_crt, l->ca_key, &cav, &err)))
        return fail("provision", &err);
    root = json_pack("{s:s, s:i, s:s, s:[]}", "format", "sealora-ca-index", "version", 1,
                     "server", server, "certs");
    if (!root)
        return fail("provision", &(sl_err){SL_ENOMEM, "out of memory"});
    if ((rc = sl_identity_keygen(l->srv_key, pk, &err)) ||
        (rc = sl_identity_issue(l->ca_crt, l->ca_key, SL_IDENTITY_SERVER_NAME,
                                SL_IDENTITY_ROLE_SERVER, pk, v, l->srv_crt, &si, &err)))
        goto out;
    index_add(root, &si, "kit");
    if ((rc = copy_file(l->ca_crt, l->srv_ca, 0644, &err)) || (rc = write_crl(l, root, &err)) ||
        (rc = write_server_ini(l, server, &err)))
        goto out;
    for (int k = 0; k < nn; k++)
        if ((rc = make_kit(l, root, names[k], NULL, v, &err)))
            goto out;
    if ((rc = index_save(l, root, &err)))
        goto out;
    char fpr[SL_IDENTITY_FPR_CHARS + 1];
    uint8_t capk[32];
    sl_identity_cert_pubkey(l->ca_crt, capk, NULL);
    sl_identity_fingerprint(capk, fpr);
    printf("CA 'sealora CA %s' in %s\n", fpr, l->ca_dir);
    printf("server kit in %s (listens as in server.ini; sites connect to %s)\n", l->srv_dir,
           server);
    for (int k = 0; k < nn; k++)
        printf("site kit '%s' in %s/%s\n", names[k], l->sites, names[k]);
out:
    json_decref(root);
    return rc ? fail("provision", &err) : 0;
}

static int provision_add(const layout *l, const char *name, const char *csr,
                         const sl_identity_validity *v)
{
    sl_err err = {0};
    char csr_name[SL_IDENTITY_NAME_MAX + 1];
    uint8_t pk[32];
    if (name && sl_identity_check_name(name, &err)) {
        fprintf(stderr, "%s provision: --add-site: %s\n", sl_cli_prog(), err.msg);
        return 2;
    }
    if (csr) {
        if (sl_identity_csr_read(csr, csr_name, pk, &err))
            return fail("provision", &err);
        name = csr_name;
    }
    json_t *root = index_load(l, &err);
    if (!root)
        return fail("provision", &err);
    int rc = make_kit(l, root, name, csr ? pk : NULL, v, &err);
    if (!rc)
        rc = index_save(l, root, &err);
    json_decref(root);
    if (rc)
        return fail("provision", &err);
    if (csr)
        printf("signed the request of site '%s': send %s/%s/site.crt, ca.crt and client.ini to "
               "the site (its key stays there)\n",
               name, l->sites, name);
    else
        printf("site kit '%s' in %s/%s\n", name, l->sites, name);
    return 0;
}

int sl_cmd_provision(int argc, char **argv)
{
    if (sl_cli_wants_help(argc, argv)) {
        fputs(provision_usage, stdout);
        return 0;
    }
    const char *out = NULL, *server = NULL, *sites = NULL, *add = NULL, *csr = NULL,
               *days = NULL, *start = NULL;
    for (int i = 1; i < argc; i++) {
        int r;
        if ((r = opt(argc, argv, &i, "--out", &out)) || (r = opt(argc, argv, &i, "--server", &server)) ||
            (r = opt(argc, argv, &i, "--sites", &sites)) ||
            (r = opt(argc, argv, &i, "--add-site", &add)) ||
            (r = opt(argc, argv, &i, "--sign", &csr)) || (r = opt(argc, argv, &i, "--days", &days)) ||
            (r = opt(argc, argv, &i, "--start", &start))) {
            if (r < 0)
                return 2;
            continue;
        }
        fprintf(stderr, "%s provision: unexpected argument '%s'\n%s", sl_cli_prog(), argv[i],
                provision_usage);
        return 2;
    }
    int modes = (server != NULL) + (add != NULL) + (csr != NULL);
    if (!out || modes != 1 || (sites && !server)) {
        fprintf(stderr, "%s provision: give --out and exactly one of --server (with --sites), "
                "--add-site or --sign\n%s",
                sl_cli_prog(), provision_usage);
        return 2;
    }
    sl_identity_validity v = {0};
    int rc;
    if ((days && (rc = parse_days("provision", days, &v.days))) ||
        (start && (rc = parse_start("provision", start, &v.start))))
        return rc;
    layout l;
    sl_err err = {0};
    if (layout_init(&l, out, &err))
        return fail("provision", &err);
    if (server)
        return provision_new(&l, server, sites, &v);
    return provision_add(&l, add, csr, &v);
}

/* ---- renew / revoke --------------------------------------------------------- */

static int name_arg(const char *cmd, int argc, char **argv, const char **out, const char **days,
                    const char **start, const char **name, const char *usage)
{
    for (int i = 1; i < argc; i++) {
        int r;
        if ((r = opt(argc, argv, &i, "--out", out)) ||
            (days && (r = opt(argc, argv, &i, "--days", days))) ||
            (start && (r = opt(argc, argv, &i, "--start", start)))) {
            if (r < 0)
                return 2;
            continue;
        }
        if (argv[i][0] == '-' || *name) {
            fprintf(stderr, "%s %s: unexpected argument '%s'\n%s", sl_cli_prog(), cmd, argv[i],
                    usage);
            return 2;
        }
        *name = argv[i];
    }
    if (!*out || !*name) {
        fprintf(stderr, "%s %s: give --out DIR and a NAME\n%s", sl_cli_prog(), cmd, usage);
        return 2;
    }
    return 0;
}

int sl_cmd_renew(int argc, char **argv)
{
    if (sl_cli_wants_help(argc, argv)) {
        fputs(renew_usage, stdout);
        return 0;
    }
    const char *out = NULL, *days = NULL, *start = NULL, *name = NULL;
    int rc = name_arg("renew", argc, argv, &out, &days, &start, &name, renew_usage);
    if (rc)
        return rc;
    sl_identity_validity v = {0};
    if ((days && (rc = parse_days("renew", days, &v.days))) ||
        (start && (rc = parse_start("renew", start, &v.start))))
        return rc;
    sl_err err = {0};
    int is_server = strcmp(name, SL_IDENTITY_SERVER_NAME) == 0;
    if (!is_server && sl_identity_check_name(name, &err)) {
        fprintf(stderr, "%s renew: %s\n", sl_cli_prog(), err.msg);
        return 2;
    }
    layout l;
    if (layout_init(&l, out, &err))
        return fail("renew", &err);
    char dir[PMAX], crt[PMAX];
    if (is_server)
        snprintf(crt, sizeof crt, "%s", l.srv_crt);
    else if (join(dir, l.sites, name, &err) || join(crt, dir, "site.crt", &err))
        return fail("renew", &err);
    json_t *root = index_load(&l, &err);
    if (!root)
        return fail("renew", &err);
    size_t i;
    json_t *e;
    int live = 0, revoked = 0;
    json_array_foreach(json_object_get(root, "certs"), i, e)
    {
        if (strcmp(json_string_value(json_object_get(e, "name")), name) != 0)
            continue;
        if (json_is_string(json_object_get(e, "revoked")))
            revoked++;
        else
            live++;
    }
    if (!live) {
        json_decref(root);
        sl_err_set(&err, SL_EINVAL, "'%s' has %s", name,
                   revoked ? "only revoked certificates; provision a new kit instead"
                           : "no certificate in this CA");
        return fail("renew", &err);
    }
    uint8_t pk[32];
    sl_cert_info ci;
    if ((rc = sl_identity_cert_pubkey(crt, pk, &err)) ||
        (rc = sl_identity_issue(l.ca_crt, l.ca_key, name,
                                is_server ? SL_IDENTITY_ROLE_SERVER : SL_IDENTITY_ROLE_SITE, pk, &v,
                                crt, &ci, &err)))
        goto out;
    index_add(root, &ci, "renew");
    if ((rc = index_save(&l, root, &err)))
        goto out;
    char na[32];
    fmt_utc(ci.not_after, na);
    printf("renewed '%s': %s now valid until %s (same key)\n", name, crt, na);
out:
    json_decref(root);
    return rc ? fail("renew", &err) : 0;
}

int sl_cmd_revoke(int argc, char **argv)
{
    if (sl_cli_wants_help(argc, argv)) {
        fputs(revoke_usage, stdout);
        return 0;
    }
    const char *out = NULL, *name = NULL;
    int rc = name_arg("revoke", argc, argv, &out, NULL, NULL, &name, revoke_usage);
    if (rc)
        return rc;
    sl_err err = {0};
    if (strcmp(name, SL_IDENTITY_SERVER_NAME) == 0) {
        fprintf(stderr, "%s revoke: the server's certificate is not revoked this way: a "
                "compromised server key needs a new CA (a new provision folder)\n",
                sl_cli_prog());
        return 2;
    }
    if (sl_identity_check_name(name, &err)) {
        fprintf(stderr, "%s revoke: %s\n", sl_cli_prog(), err.msg);
        return 2;
    }
    layout l;
    if (layout_init(&l, out, &err))
        return fail("revoke", &err);
    json_t *root = index_load(&l, &err);
    if (!root)
        return fail("revoke", &err);
    char now[32];
    fmt_utc((int64_t)time(NULL), now);
    size_t i, count = 0, known = 0;
    json_t *e;
    json_array_foreach(json_object_get(root, "certs"), i, e)
    {
        if (strcmp(json_string_value(json_object_get(e, "name")), name) != 0)
            continue;
        known++;
        if (json_is_string(json_object_get(e, "revoked")))
            continue;
        json_object_set_new(e, "revoked", json_string(now));
        count++;
    }
    if (!known) {
        json_decref(root);
        sl_err_set(&err, SL_ENOTFOUND, "no certificate of '%s' in this CA", name);
        return fail("revoke", &err);
    }
    /* The index first, then the lists built from it: revoking again after
     * a failure rewrites the lists. */
    if (!(rc = index_save(&l, root, &err)))
        rc = write_crl(&l, root, &err);
    json_decref(root);
    if (rc)
        return fail("revoke", &err);
    if (count)
        printf("revoked %zu certificate%s of '%s'; %s and %s updated\n", count,
               count == 1 ? "" : "s", name, l.crl, l.srv_crl);
    else
        printf("'%s' was already revoked; %s and %s rewritten\n", name, l.crl, l.srv_crl);
    return 0;
}
