/* shared/atomicfile.h - streaming counterpart of sl_fs_write_atomic for
 * files too large to build in memory (model weights, checkpoints): bytes go
 * through a small buffer into a uniquely named temporary file beside the
 * target; commit fsyncs it, renames it over the target and fsyncs the
 * folder (sl_fs_sync_dir_of), so a process killed at any instant leaves the
 * old file or the new one, never a torn one. Abort (or a failed commit)
 * removes the temporary and leaves the target untouched.
 *
 * Ownership: an sl_afile lives in caller storage and owns its descriptor
 * and temporary until commit or abort. Not thread-safe: one writer per
 * thread; different files may be written concurrently. */
#ifndef SL_ATOMICFILE_H
#define SL_ATOMICFILE_H
#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"

#define SL_AFILE_BUF (64u << 10)
#define SL_AFILE_PATH_MAX 4096

typedef struct sl_afile {
    int fd;                        /* -1 when closed */
    char path[SL_AFILE_PATH_MAX];  /* final destination */
    char tmp[SL_AFILE_PATH_MAX];   /* temporary beside it */
    uint64_t written;              /* bytes accepted so far */
    size_t nbuf;                   /* bytes pending in buf */
    uint8_t buf[SL_AFILE_BUF];
} sl_afile;

/* Creates the temporary (mode applied with fchmod, umask ignored). On
 * failure nothing is left behind and a->fd is -1. */
int sl_afile_open(sl_afile *a, const char *path, unsigned mode, sl_err *err);
/* Appends n bytes. On failure the file is aborted (temporary removed). */
int sl_afile_write(sl_afile *a, const void *p, size_t n, sl_err *err);
/* Flushes, fsyncs, renames over path, fsyncs the folder. On failure the
 * temporary is removed and path keeps its previous content. */
int sl_afile_commit(sl_afile *a, sl_err *err);
/* Discards the temporary; accepts an already closed or aborted file. */
void sl_afile_abort(sl_afile *a);

#endif
