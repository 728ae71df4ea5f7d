/*
 * error.h: the error codes of the whole trainer and the message buffer that carries detail.
 *
 * Library functions return 0 on success or a negative TR_E* code, and write a human message
 * (naming the file, line, key or row at fault) into a caller-supplied tr_err. Only main.c
 * turns a code into a process exit status, through tr_exit_code(), so every rank and every
 * subcommand exits with the same documented status for the same failure.
 */
#ifndef TRAINER_ERROR_H
#define TRAINER_ERROR_H

#include <stddef.h>

/* X(NAME, meaning, exit status). The list generates the enum and tr_exit_code(). */
#define TR_ERRNO_MAP(X)                                                          \
    X(USAGE, "usage error", 2)                                                   \
    X(CONFIG, "configuration error", 2)                                          \
    X(DATA, "data error", 3)                                                     \
    X(IO, "file I/O error", 4)                                                   \
    X(CKPT, "checkpoint error", 4)                                               \
    X(DIVERGED, "training diverged (non-finite loss or gradient)", 5)            \
    X(NOMEM, "out of memory", 6)                                                 \
    X(MPI, "MPI communication error", 7)                                         \
    X(WATCHDOG, "a rank stopped answering (watchdog)", 8)                        \
    X(INTERNAL, "internal error", 70)                                            \
    X(STOPPED, "stopped by a signal after writing a checkpoint", 75)

typedef enum tr_errcode {
    TR_OK = 0,
#define TR_X_ENUM(name, text, status) TR_E##name,
    TR_ERRNO_FIRST_ = -100,
    TR_ERRNO_MAP(TR_X_ENUM)
#undef TR_X_ENUM
} tr_errcode;

/* Detail of the last failure. `code` is 0 while nothing failed. */
typedef struct tr_err {
    int code;
    char msg[1024];
} tr_err;

/* Records a failure (printf-style detail) and returns `code`, so callers can write
 * `return tr_fail(err, TR_ECONFIG, "%s:%d: ...", file, line);`. `err` may be NULL. */
int tr_fail(tr_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes the message already in `err` with more context ("while loading X: ..."). */
int tr_fail_context(tr_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The documented process exit status for a code (0 for TR_OK). */
int tr_exit_code(int code);

/* Writes s to stderr with write(2) only: safe in a signal handler or a thread about to _exit. */
void tr_write_stderr(const char *s);

#endif
