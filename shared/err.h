/* shared/err.h - error codes and the message buffer every fallible call fills.
 * Calls return 0 or a negative SL_E* code; on failure they format a message
 * naming the file, field or offset at fault into the caller's sl_err (Redis
 * anet style). Messages never contain secrets. Owns nothing; thread-safe as
 * long as each thread uses its own sl_err. */
#ifndef SL_ERR_H
#define SL_ERR_H
#include <stddef.h>

enum {
    SL_OK = 0,
    SL_EINVAL = -1,   /* bad argument or configuration value */
    SL_EFORMAT = -2,  /* malformed untrusted bytes (file, message, log) */
    SL_EIO = -3,      /* operating-system I/O failure */
    SL_ENOMEM = -4,   /* allocation failed */
    SL_ELIMIT = -5,   /* a size or count exceeds a named limit */
    SL_ECRYPTO = -6,  /* signature, MAC or certificate check failed */
    SL_ESTATE = -7,   /* call not valid in the current protocol state */
    SL_ENOTFOUND = -8,/* a named file, key or tensor does not exist */
    SL_EBUDGET = -9,  /* privacy budget would be exceeded */
    SL_EABORT = -10,  /* protocol round aborted (e.g. below threshold) */
};

#define SL_ERR_MSG_MAX 512

typedef struct sl_err {
    int code;                  /* last SL_E* code, 0 if none */
    char msg[SL_ERR_MSG_MAX];  /* NUL-terminated human-readable message */
} sl_err;

/* Sets err (if non-NULL) and returns code, so callers can write
 * `return sl_err_set(err, SL_EFORMAT, "%s: bad magic", path);`. */
int sl_err_set(sl_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prefixes the existing message with more context ("loading X: ..."). */
int sl_err_prefix(sl_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Sets an SL_EIO error whose message ends with strerror(errno). */
int sl_err_errno(sl_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void sl_err_clear(sl_err *err);
/* Short name of a code, e.g. "format" for SL_EFORMAT. */
const char *sl_err_name(int code);

#endif
