#include "shared/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>
#include <sodium.h>
#include <unistd.h>

#include "shared/atomicfile.h"
#include "shared/sha256.h"

int sl_fs_read_all(const char *path, size_t max, uint8_t **out, size_t *len, sl_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? sl_err_set(err, SL_ENOTFOUND, "%s: no such file", path)
                               : sl_err_errno(err, "%s: open", path);
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return sl_err_errno(err, "%s: stat", path);
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return sl_err_set(err, SL_EINVAL, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > max) {
        close(fd);
        return sl_err_set(err, SL_ELIMIT, "%s: %lld bytes exceeds the limit of %zu", path,
                          (long long)st.st_size, max);
    }
    size_t n = (size_t)st.st_size;
    uint8_t *buf = malloc(n + 1);
    if (!buf) {
        close(fd);
        return sl_err_set(err, SL_ENOMEM, "%s: cannot allocate %zu bytes", path, n);
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            int rc = r < 0 ? sl_err_errno(err, "%s: read", path)
                           : sl_err_set(err, SL_EIO, "%s: file shrank while reading", path);
            free(buf);
            close(fd);
            return rc;
        }
        got += (size_t)r;
    }
    close(fd);
    buf[n] = 0;
    *out = buf;
    *len = n;
    return 0;
}

int sl_fs_sync_dir_of(const char *path, sl_err *err)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp)
        return sl_err_set(err, SL_ELIMIT, "path too long: %.64s...", path);
    const char *dir = dirname(tmp);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return sl_err_errno(err, "%s: open folder", dir);
    int rc = 0;
    if (fsync(fd) != 0 && errno != EINVAL)
        rc = sl_err_errno(err, "%s: fsync folder", dir);
    close(fd);
    return rc;
}

int sl_fs_write_atomic(const char *path, const void *buf, size_t n, unsigned mode, sl_err *err)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return sl_err_set(err, SL_ELIMIT, "path too long: %.64s...", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return sl_err_errno(err, "%s: create", tmp);
    const uint8_t *p = buf;
    size_t left = n;
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            int rc = sl_err_errno(err, "%s: write", tmp);
            close(fd);
            unlink(tmp);
            return rc;
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0) {
        int rc = sl_err_errno(err, "%s: fsync", tmp);
        close(fd);
        unlink(tmp);
        return rc;
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        int rc = sl_err_errno(err, "%s: rename to %s", tmp, path);
        unlink(tmp);
        return rc;
    }
    return sl_fs_sync_dir_of(path, err);
}

int sl_fs_mkdirs(const char *path, unsigned mode, sl_err *err)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp)
        return sl_err_set(err, SL_ELIMIT, "path too long: %.64s...", path);
    for (char *s = tmp + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = 0;
        if (mkdir(tmp, mode) != 0 && errno != EEXIST)
            return sl_err_errno(err, "%s: mkdir", tmp);
        *s = '/';
    }
    if (mkdir(tmp, mode) != 0 && errno != EEXIST)
        return sl_err_errno(err, "%s: mkdir", tmp);
    struct stat st;
    if (stat(tmp, &st) != 0 || !S_ISDIR(st.st_mode))
        return sl_err_set(err, SL_EINVAL, "%s: exists and is not a folder", tmp);
    return 0;
}

int sl_fs_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

int sl_fs_join(char *out, size_t cap, const char *dir, const char *name, sl_err *err)
{
    int n = snprintf(out, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap)
        return sl_err_set(err, SL_ELIMIT, "path too long: %.64s/%.64s", dir, name);
    return 0;
}

int sl_fs_sha256(const char *path, uint8_t digest[32], char hex[65], sl_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sl_err_errno(err, "%s", path);
    sl_sha256_ctx *st = NULL;
    int rc = sl_sha256_begin(&st, err);
    uint8_t buf[1 << 16];
    while (!rc) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            rc = sl_err_errno(err, "%s: read", path);
        else if (r == 0)
            break;
        else
            rc = sl_sha256_update(st, buf, (size_t)r, err);
    }
    close(fd);
    if (rc) {
        sl_sha256_free(st);
        return rc;
    }
    if ((rc = sl_sha256_end(st, digest, err)))
        return rc;
    if (hex)
        sodium_bin2hex(hex, 65, digest, 32);
    return 0;
}

int sl_fs_copy(const char *src, const char *dst, sl_err *err)
{
    int fd = open(src, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sl_err_errno(err, "%s", src);
    sl_afile a;
    int rc = sl_afile_open(&a, dst, 0644, err);
    if (rc) {
        close(fd);
        return rc;
    }
    uint8_t buf[1 << 16];
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = sl_err_errno(err, "%s: read", src);
            break;
        }
        if (r == 0)
            break;
        if ((rc = sl_afile_write(&a, buf, (size_t)r, err)))
            break;
    }
    close(fd);
    if (rc) {
        sl_afile_abort(&a);
        return rc;
    }
    return sl_afile_commit(&a, err);
}

int sl_fs_remove_flat_dir(const char *path, sl_err *err)
{
    DIR *d = opendir(path);
    if (!d)
        return errno == ENOENT ? 0 : sl_err_errno(err, "%s", path);
    struct dirent *e;
    int rc = 0;
    char p[PATH_MAX];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if ((rc = sl_fs_join(p, sizeof p, path, e->d_name, err)))
            break;
        struct stat s;
        if (lstat(p, &s) == 0 && S_ISDIR(s.st_mode)) {
            rc = sl_err_set(err, SL_EINVAL, "%s: holds a folder (%s); not removing it", path,
                            e->d_name);
            break;
        }
        if (unlink(p) && errno != ENOENT) {
            rc = sl_err_errno(err, "%s: unlink", p);
            break;
        }
    }
    closedir(d);
    if (!rc && rmdir(path) && errno != ENOENT)
        rc = sl_err_errno(err, "%s: rmdir", path);
    return rc;
}
