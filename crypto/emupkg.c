#include "crypto/emupkg.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "crypto/identity.h"
#include "shared/fsutil.h"

/* The folder's files except manifest and signature, sorted, with sizes
 * (digests when want_digest). */
static int list_dir(const char *dir, sl_emumeta_file *files, int *nfiles, int want_digest,
                    sl_err *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? sl_err_set(err, SL_ENOTFOUND, "%s: no such folder", dir)
                               : sl_err_errno(err, "%s: open folder", dir);
    int n = 0, rc = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
            !strcmp(e->d_name, SL_EMUMETA_FILE) || !strcmp(e->d_name, SL_EMUMETA_SIG_FILE))
            continue;
        if (!sl_emumeta_name_ok(e->d_name)) {
            rc = sl_err_set(err, SL_EFORMAT, "%s: unexpected entry '%.80s' (not a package file)",
                            dir, e->d_name);
            goto out;
        }
        if (n == SL_EMUMETA_MAX_FILES) {
            rc = sl_err_set(err, SL_ELIMIT, "%s: more than %d files", dir, SL_EMUMETA_MAX_FILES);
            goto out;
        }
        char p[PATH_MAX];
        struct stat st;
        if ((rc = sl_fs_join(p, sizeof p, dir, e->d_name, err)))
            goto out;
        if (lstat(p, &st)) {
            rc = sl_err_errno(err, "%s: stat", p);
            goto out;
        }
        if (!S_ISREG(st.st_mode)) {
            rc = sl_err_set(err, SL_EFORMAT, "%s: not a regular file (packages hold only files)",
                            p);
            goto out;
        }
        snprintf(files[n].name, sizeof files[n].name, "%s", e->d_name);
        files[n].bytes = (uint64_t)st.st_size;
        files[n].sha256[0] = 0;
        if (want_digest) {
            uint8_t dg[32];
            if ((rc = sl_fs_sha256(p, dg, files[n].sha256, err)))
                goto out;
        }
        n++;
    }
    qsort(files, (size_t)n, sizeof *files, sl_emumeta_cmp_file);
    *nfiles = n;
out:
    closedir(d);
    return rc;
}

int sl_emupkg_sign(const char *dir, const sl_emumeta *meta, const uint8_t sk[64],
                   sl_emumeta *files_out, sl_err *err)
{
    int rc;
    if ((rc = sl_emumeta_validate(meta, err)))
        return sl_err_prefix(err, "%s: manifest", dir), rc;
    if (sodium_init() < 0)
        return sl_err_set(err, SL_ECRYPTO, "libsodium failed to initialise");
    sl_emumeta *m = malloc(sizeof *m);
    char *text = NULL;
    size_t n = 0;
    if (!m)
        return sl_err_set(err, SL_ENOMEM, "%s: out of memory", dir);
    *m = *meta;
    if ((rc = list_dir(dir, m->files, &m->nfiles, 1, err)) ||
        (rc = sl_emumeta_encode(m, &text, &n, err)))
        goto out;
    /* Parse what we are about to sign, so a package we write is one that
     * verification accepts (e.g. config.json and the weights present). */
    sl_emumeta *check = malloc(sizeof *check);
    if (!check) {
        rc = sl_err_set(err, SL_ENOMEM, "%s: out of memory", dir);
        goto out;
    }
    rc = sl_emumeta_parse(text, n, dir, check, err);
    free(check);
    if (rc)
        goto out;
    char path[PATH_MAX];
    uint8_t sig[SL_EMUPKG_SIG_BYTES];
    crypto_sign_detached(sig, NULL, (const uint8_t *)text, n, sk);
    if (!(rc = sl_fs_join(path, sizeof path, dir, SL_EMUMETA_FILE, err)) &&
        !(rc = sl_fs_write_atomic(path, text, n, 0644, err)) &&
        !(rc = sl_fs_join(path, sizeof path, dir, SL_EMUMETA_SIG_FILE, err)))
        rc = sl_fs_write_atomic(path, sig, sizeof sig, 0644, err);
    if (!rc && files_out)
        *files_out = *m;
out:
    free(text);
    free(m);
    return rc;
}

int sl_emupkg_verify(const char *dir, const uint8_t pk[32], const char *expected_base,
                     sl_emumeta *meta, sl_err *err)
{
    char mpath[PATH_MAX], spath[PATH_MAX];
    uint8_t *text = NULL, *sig = NULL;
    size_t tn = 0, sn = 0;
    sl_emumeta *m = NULL;
    sl_emumeta_file *have = NULL;
    int rc;
    if ((rc = sl_fs_join(mpath, sizeof mpath, dir, SL_EMUMETA_FILE, err)) ||
        (rc = sl_fs_join(spath, sizeof spath, dir, SL_EMUMETA_SIG_FILE, err)))
        return rc;
    if (sodium_init() < 0)
        return sl_err_set(err, SL_ECRYPTO, "libsodium failed to initialise");
    if ((rc = sl_fs_read_all(spath, SL_EMUPKG_SIG_BYTES, &sig, &sn, err)) ||
        (rc = sl_fs_read_all(mpath, SL_EMUMETA_MAX_BYTES, &text, &tn, err)))
        goto out;
    if (sn != SL_EMUPKG_SIG_BYTES) {
        rc = sl_err_set(err, SL_EFORMAT, "%s: %zu bytes, expected a %d-byte Ed25519 signature",
                        spath, sn, SL_EMUPKG_SIG_BYTES);
        goto out;
    }
    if (crypto_sign_verify_detached(sig, text, tn, pk) != 0) {
        char fpr[SL_IDENTITY_FPR_CHARS + 1];
        sl_identity_fingerprint(pk, fpr);
        rc = sl_err_set(err, SL_ECRYPTO,
                        "%s: signature does not verify over %s with the key %s (wrong signer "
                        "or a modified manifest)",
                        spath, SL_EMUMETA_FILE, fpr);
        goto out;
    }
    m = calloc(1, sizeof *m);
    have = calloc(SL_EMUMETA_MAX_FILES, sizeof *have);
    if (!m || !have) {
        rc = sl_err_set(err, SL_ENOMEM, "%s: out of memory", dir);
        goto out;
    }
    if ((rc = sl_emumeta_parse((const char *)text, tn, mpath, m, err)))
        goto out;
    if (expected_base && strcmp(expected_base, m->base_sha256)) {
        rc = sl_err_set(err, SL_EINVAL,
                        "%s: base_model_sha256 %s is not the expected base model's %.64s (the "
                        "package was built from another model)",
                        mpath, m->base_sha256, expected_base);
        goto out;
    }
    int nhave = 0;
    if ((rc = list_dir(dir, have, &nhave, 0, err)))
        goto out;
    /* Both lists are sorted by name: walk them together. */
    int i = 0, j = 0;
    while (i < m->nfiles || j < nhave) {
        int c = i == m->nfiles ? 1 : j == nhave ? -1 : strcmp(m->files[i].name, have[j].name);
        if (c < 0) {
            rc = sl_err_set(err, SL_ENOTFOUND, "%s: %s lists '%s', which is missing", dir,
                            SL_EMUMETA_FILE, m->files[i].name);
            goto out;
        }
        if (c > 0) {
            rc = sl_err_set(err, SL_EFORMAT, "%s: file '%s' is not listed in %s", dir,
                            have[j].name, SL_EMUMETA_FILE);
            goto out;
        }
        i++, j++;
    }
    for (i = 0; i < m->nfiles; i++) {
        const sl_emumeta_file *f = &m->files[i];
        char p[PATH_MAX], hex[65];
        uint8_t dg[32];
        if ((rc = sl_fs_join(p, sizeof p, dir, f->name, err)))
            goto out;
        if (have[i].bytes != f->bytes) {
            rc = sl_err_set(err, SL_ECRYPTO, "%s: %llu bytes, the manifest says %llu (modified)",
                            p, (unsigned long long)have[i].bytes, (unsigned long long)f->bytes);
            goto out;
        }
        if ((rc = sl_fs_sha256(p, dg, hex, err)))
            goto out;
        if (strcmp(hex, f->sha256)) {
            rc = sl_err_set(err, SL_ECRYPTO,
                            "%s: SHA-256 %s differs from the manifest's %s (modified)", p, hex,
                            f->sha256);
            goto out;
        }
    }
    if (meta)
        *meta = *m;
out:
    free(have);
    free(m);
    free(text);
    free(sig);
    return rc;
}
