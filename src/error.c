/*
 * error.c: failure recording and the code -> text / exit status tables generated from
 * TR_ERRNO_MAP in error.h.
 */
#include "trainer/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int tr_fail(tr_err *err, int code, const char *fmt, ...)
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

int tr_fail_context(tr_err *err, const char *fmt, ...)
{
    if (!err)
        return TR_EINTERNAL;
    char prefix[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char joined[sizeof prefix + sizeof err->msg + 2];
    snprintf(joined, sizeof joined, "%s: %s", prefix, err->msg);
    memcpy(err->msg, joined, sizeof err->msg - 1);
    err->msg[sizeof err->msg - 1] = '\0';
    return err->code;
}

int tr_exit_code(int code)
{
    switch (code) {
    case TR_OK:
        return 0;
#define TR_X_STATUS(name, text, status) \
    case TR_E##name:                    \
        return status;
        TR_ERRNO_MAP(TR_X_STATUS)
#undef TR_X_STATUS
    default:
        return 70;
    }
}

void tr_write_stderr(const char *s)
{
    for (size_t n = strlen(s); n > 0;) {
        const ssize_t w = write(STDERR_FILENO, s, n);
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}
