#include "shared/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int sl_err_set(sl_err *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

int sl_err_prefix(sl_err *err, const char *fmt, ...)
{
    if (!err)
        return 0;
    char head[SL_ERR_MSG_MAX], old[SL_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%s: %s", head, old);
    return err->code;
}

int sl_err_errno(sl_err *err, const char *fmt, ...)
{
    int saved = errno;
    if (err) {
        char head[SL_ERR_MSG_MAX];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(head, sizeof head, fmt, ap);
        va_end(ap);
        snprintf(err->msg, sizeof err->msg, "%s: %s", head, strerror(saved));
        err->code = SL_EIO;
    }
    return SL_EIO;
}

void sl_err_clear(sl_err *err)
{
    if (err) {
        err->code = 0;
        err->msg[0] = '\0';
    }
}

const char *sl_err_name(int code)
{
    switch (code) {
    case SL_OK: return "ok";
    case SL_EINVAL: return "invalid";
    case SL_EFORMAT: return "format";
    case SL_EIO: return "io";
    case SL_ENOMEM: return "nomem";
    case SL_ELIMIT: return "limit";
    case SL_ECRYPTO: return "crypto";
    case SL_ESTATE: return "state";
    case SL_ENOTFOUND: return "notfound";
    case SL_EBUDGET: return "budget";
    case SL_EABORT: return "abort";
    default: return "unknown";
    }
}
