#include "shared/atomicfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shared/fsutil.h"

int sl_afile_open(sl_afile *a, const char *path, unsigned mode, sl_err *err)
{
    a->fd = -1;
    a->nbuf = 0;
    a->written = 0;
    if (snprintf(a->path, sizeof a->path, "%s", path) >= (int)sizeof a->path ||
        snprintf(a->tmp, sizeof a->tmp, "%s.tmp.XXXXXX", path) >= (int)sizeof a->tmp)
        return sl_err_set(err, SL_ELIMIT, "path too long: %.64s...", path);
    int fd = mkostemp(a->tmp, O_CLOEXEC);
    if (fd < 0)
        return sl_err_errno(err, "%s: create temporary", path);
    if (fchmod(fd, (mode_t)mode) != 0) {
        int rc = sl_err_errno(err, "%s: chmod", a->tmp);
        close(fd);
        unlink(a->tmp);
        return rc;
    }
    a->fd = fd;
    return 0;
}

void sl_afile_abort(sl_afile *a)
{
    if (a->fd < 0)
        return;
    close(a->fd);
    unlink(a->tmp);
    a->fd = -1;
    a->nbuf = 0;
}

static int flush(sl_afile *a, sl_err *err)
{
    const uint8_t *p = a->buf;
    size_t left = a->nbuf;
    while (left) {
        ssize_t w = write(a->fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            int rc = sl_err_errno(err, "%s: write", a->tmp);
            sl_afile_abort(a);
            return rc;
        }
        p += w;
        left -= (size_t)w;
    }
    a->nbuf = 0;
    return 0;
}

int sl_afile_write(sl_afile *a, const void *p, size_t n, sl_err *err)
{
    if (a->fd < 0)
        return sl_err_set(err, SL_ESTATE, "%s: write after abort", a->path);
    const uint8_t *s = p;
    while (n) {
        size_t k = SL_AFILE_BUF - a->nbuf;
        if (k > n)
            k = n;
        memcpy(a->buf + a->nbuf, s, k);
        a->nbuf += k;
        a->written += k;
        s += k;
        n -= k;
        if (a->nbuf == SL_AFILE_BUF) {
            int rc = flush(a, err);
            if (rc)
                return rc;
        }
    }
    return 0;
}

int sl_afile_commit(sl_afile *a, sl_err *err)
{
    if (a->fd < 0)
        return sl_err_set(err, SL_ESTATE, "%s: commit after abort", a->path);
    int rc = flush(a, err);
    if (rc)
        return rc;
    if (fsync(a->fd) != 0) {
        rc = sl_err_errno(err, "%s: fsync", a->tmp);
        sl_afile_abort(a);
        return rc;
    }
    if (close(a->fd) != 0) {
        a->fd = -1;
        rc = sl_err_errno(err, "%s: close", a->tmp);
        unlink(a->tmp);
        return rc;
    }
    a->fd = -1;
    if (rename(a->tmp, a->path) != 0) {
        rc = sl_err_errno(err, "%s: rename to %s", a->tmp, a->path);
        unlink(a->tmp);
        return rc;
    }
    return sl_fs_sync_dir_of(a->path, err);
}
