/* shared/fsutil.h - file helpers every role uses: whole-file reads with a
 * size limit, and durable atomic writes (temporary file in the same folder,
 * fsync, rename, fsync of the folder) so that a process killed at any instant
 * leaves either the old or the new file, never a torn one. Thread-safe. */
#ifndef SL_FSUTIL_H
#define SL_FSUTIL_H
#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"

/* Reads all of path into a malloc'd buffer (NUL-terminated for convenience,
 * the NUL not counted in *len). Refuses files larger than max bytes with
 * SL_ELIMIT. On failure *out is untouched. */
int sl_fs_read_all(const char *path, size_t max, uint8_t **out, size_t *len, sl_err *err);
/* Writes n bytes to path atomically and durably, with the given mode. */
int sl_fs_write_atomic(const char *path, const void *buf, size_t n, unsigned mode, sl_err *err);
/* fsyncs the folder that holds path (after a rename or create). */
int sl_fs_sync_dir_of(const char *path, sl_err *err);
/* mkdir -p with the given mode; existing folders are fine. */
int sl_fs_mkdirs(const char *path, unsigned mode, sl_err *err);
int sl_fs_exists(const char *path);
/* snprintf into out, SL_ELIMIT if it would not fit. */
int sl_fs_join(char *out, size_t cap, const char *dir, const char *name, sl_err *err);
/* SHA-256 of a file's bytes, streamed; hex (may be NULL) gets 64 lowercase
 * hex digits and a NUL. */
int sl_fs_sha256(const char *path, uint8_t digest[32], char hex[65], sl_err *err);
/* Copies src to dst atomically (dst's mode 0644). */
int sl_fs_copy(const char *src, const char *dst, sl_err *err);
/* Removes a folder holding only regular files (a checkpoint); a missing
 * folder is fine. Refuses (SL_EINVAL) a folder with sub-folders. */
int sl_fs_remove_flat_dir(const char *path, sl_err *err);

#endif
