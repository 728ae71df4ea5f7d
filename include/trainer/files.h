/*
 * files.h: how the trainer touches the file system, in one place, so that every command
 * keeps the same promises:
 *   - an input must be a regular file: a directory, FIFO, socket or device given where a
 *     file is expected is an error naming it (never a spin, an endless read or a block on a
 *     FIFO with no writer);
 *   - a path that does not fit a buffer is refused, never truncated into another path;
 *   - an output never replaces a file the same command reads (compared by device and
 *     inode, so links and other spellings of a path are caught) nor anything but a regular
 *     file, and never a symbolic link or a file with other hard links (nothing is written
 *     through a link);
 *   - an output appears under its final name complete or not at all (a temporary file in
 *     the same directory, flushed, synced and renamed; then the directory is synced).
 */
#ifndef TRAINER_FILES_H
#define TRAINER_FILES_H

#include "trainer/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* The longest path the trainer accepts anywhere (configuration values, command-line
 * options); longer ones are refused with a message, never cut. */
#define TR_PATH_MAX 1024

/* Formats a path into buf (printf-style). A result that does not fit is `code` naming the
 * start of the path and the limit; nothing is truncated. */
int tr_path_format(char *buf, size_t len, int code, tr_err *err, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* 0 when `path` names a regular file (after symlinks); else `code` with "<what> <path>: is a
 * directory" (FIFO, socket, device, ...) or the system's reason it cannot be reached. */
int tr_input_check(const char *path, const char *what, int code, tr_err *err);

/* Opens a regular file for reading (never blocking on a FIFO); NULL with the message of
 * tr_input_check, or of fopen. */
FILE *tr_input_fopen(const char *path, const char *what, int code, tr_err *err);

/* Whether a and b exist and are the same file (device and inode). */
bool tr_same_file(const char *a, const char *b);

/* The start of a regular file's first line (at most len - 1 bytes, without its end of line)
 * into buf; false when the file cannot be read or is empty. */
bool tr_file_first_line(const char *path, char *buf, size_t len);

/* 0 when an existing file may be replaced or appended to by an output: a regular file (not
 * a symbolic link, which the trainer never writes through or replaces) with no other hard
 * link (whose other names would change too, or keep what the trainer deletes); else `code`
 * naming `what` and `path`. A missing file passes. */
int tr_output_not_linked(const char *path, const char *what, int code, tr_err *err);

/* Which existing files an output may replace: only those an earlier run of the same
 * command wrote, recognised by their contents (a user's data, a checkpoint or any other
 * file is never replaced). */
typedef struct tr_output_kind {
    const char *command;                  /* "trainer predict", for the refusal */
    const char *const *h5_names;          /* an HDF5 file's root holds only these (NULL-ended) */
    bool (*csv_field)(const char *field); /* every field of a CSV file's header passes */
} tr_output_kind;

/* Checks that `path` may be written as an output: it does not exist or is a regular file,
 * it is none of the n files in `reads` (the command's inputs), and when it exists it is of
 * `kind` (NULL: any regular file). `what` names the option ("--output"). Errors are `code`. */
int tr_output_check(const char *path, const char *what, const char *const *reads, int n_reads,
                    const tr_output_kind *kind, int code, tr_err *err);

/* An output being written: a temporary file beside the final path. */
typedef struct tr_atomic {
    char path[TR_PATH_MAX + 64]; /* the final name */
    char tmp[TR_PATH_MAX + 96];  /* PATH.tmp.<pid> */
    FILE *f;             /* open on tmp (NULL for writers that open tmp themselves, e.g. HDF5) */
} tr_atomic;

/* Prepares a temporary name for `path` and, when open_file, opens it for writing. */
int tr_atomic_begin(tr_atomic *a, const char *path, bool open_file, int code, tr_err *err);

/* Flushes, syncs and closes the temporary file and renames it over the final name (then
 * syncs the directory). On failure the temporary file is removed and the final name keeps
 * what it had. */
int tr_atomic_commit(tr_atomic *a, int code, tr_err *err);

/* Abandons the output: closes and removes the temporary file. */
void tr_atomic_abort(tr_atomic *a);

/* fsync of a directory (after a rename into it); errors are ignored (some file systems do
 * not support it). */
void tr_sync_dir_of(const char *path);

/* s without its leading and trailing white space (the end is cut in place). */
char *tr_trim(char *s);

#endif
