/*
 * files.c: regular-file checks for inputs, same-file detection for outputs, checked path
 * formatting, and outputs written through a temporary file and a rename (see files.h).
 */
#define _GNU_SOURCE /* SEEK_HOLE */
#include "trainer/files.h"

#include "trainer/h5io.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

int tr_path_format(char *buf, size_t len, int code, tr_err *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const int n = vsnprintf(buf, len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= len) {
        const int shown = 60;
        char head[64];
        snprintf(head, sizeof head, "%.*s", shown, buf);
        buf[0] = '\0';
        return tr_fail(err, code, "path too long (%d characters, at most %zu): %s...", n, len - 1, head);
    }
    return 0;
}

/* "a directory", "a FIFO", ... for anything that is not a regular file. */
static const char *kind_of(mode_t m)
{
    if (S_ISDIR(m))
        return "a directory";
    if (S_ISFIFO(m))
        return "a FIFO (named pipe)";
    if (S_ISSOCK(m))
        return "a socket";
    if (S_ISCHR(m))
        return "a character device";
    if (S_ISBLK(m))
        return "a block device";
    return "not a regular file";
}

static int not_regular(const char *path, const char *what, mode_t m, int code, tr_err *err)
{
    return tr_fail(err, code, "%s%s%s: is %s, not a regular file", what ? what : "", what ? " " : "", path,
                   kind_of(m));
}

int tr_input_check(const char *path, const char *what, int code, tr_err *err)
{
    struct stat st;
    if (!path || !*path)
        return tr_fail(err, code, "%s: no file name given", what ? what : "input");
    if (strlen(path) >= TR_PATH_MAX)
        return tr_fail(err, code, "%s%spath too long (%zu characters, at most %d)", what ? what : "", what ? ": " : "",
                       strlen(path), TR_PATH_MAX - 1);
    if (stat(path, &st) != 0)
        return tr_fail(err, code, "%s%s%s: cannot open: %s", what ? what : "", what ? " " : "", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return not_regular(path, what, st.st_mode, code, err);
    return 0;
}

FILE *tr_input_fopen(const char *path, const char *what, int code, tr_err *err)
{
    if (tr_input_check(path, what, code, err))
        return NULL;
    /* O_NONBLOCK: a FIFO put in place after the check cannot block the open */
    const int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd < 0) {
        tr_fail(err, code, "%s%s%s: cannot open: %s", what ? what : "", what ? " " : "", path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        not_regular(path, what, st.st_mode, code, err);
        close(fd);
        return NULL;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        tr_fail(err, code, "%s: cannot open: %s", path, strerror(errno));
        close(fd);
    }
    return f;
}

bool tr_same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    if (!a || !b || stat(a, &sa) != 0 || stat(b, &sb) != 0)
        return false;
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

bool tr_file_first_line(const char *path, char *buf, size_t len)
{
    struct stat st;
    if (len == 0 || stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return false;
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    const bool ok = fgets(buf, (int)len, f) != NULL;
    fclose(f);
    if (ok)
        buf[strcspn(buf, "\r\n")] = '\0';
    return ok;
}

int tr_output_not_linked(const char *path, const char *what, int code, tr_err *err)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return 0;
    if (S_ISLNK(st.st_mode))
        return tr_fail(err, code, "%s %s: is a symbolic link; the trainer never writes through a link or replaces "
                                  "one (remove the link, or choose another name)", what, path);
    if (!S_ISREG(st.st_mode))
        return tr_fail(err, code, "%s %s: is %s; the output must be a regular file", what, path,
                       kind_of(st.st_mode));
    if (st.st_nlink > 1)
        return tr_fail(err, code, "%s %s: the file has %lu other hard link%s; the trainer does not replace a file "
                                  "that other names share (remove the other links, or choose another name)",
                       what, path, (unsigned long)st.st_nlink - 1, st.st_nlink == 2 ? "" : "s");
    return 0;
}

/* Whether an existing file is of `kind`: an HDF5 file with only its datasets at the root, or
 * a CSV file whose header fields all pass its test. */
static bool of_kind(const char *path, const tr_output_kind *kind)
{
    if (tr_h5_is_file(path))
        return kind->h5_names && tr_h5_root_holds_only(path, kind->h5_names);
    FILE *f = fopen(path, "r");
    if (!f || !kind->csv_field) {
        if (f)
            fclose(f);
        return false;
    }
    char line[4096];
    bool ok = fgets(line, sizeof line, f) && strchr(line, '\n');
    fclose(f);
    char *save = NULL;
    int fields = 0;
    for (char *t = ok ? strtok_r(line, ",\r\n", &save) : NULL; t; t = strtok_r(NULL, ",\r\n", &save), fields++)
        ok = ok && kind->csv_field(t);
    return ok && fields > 0;
}

int tr_output_check(const char *path, const char *what, const char *const *reads, int n_reads,
                    const tr_output_kind *kind, int code, tr_err *err)
{
    if (!path || !*path)
        return tr_fail(err, code, "%s: no file name given", what);
    if (strlen(path) >= TR_PATH_MAX)
        return tr_fail(err, code, "%s: path too long (%zu characters, at most %d)", what, strlen(path),
                       TR_PATH_MAX - 1);
    for (int i = 0; i < n_reads; i++)
        if (reads[i] && tr_same_file(path, reads[i]))
            return tr_fail(err, code, "%s %s is %s, which this command reads: refusing to write over it", what, path,
                           strcmp(path, reads[i]) ? reads[i] : "the same file");
    const int rc = tr_output_not_linked(path, what, code, err);
    if (rc)
        return rc;
    if (kind && access(path, F_OK) == 0 && !of_kind(path, kind))
        return tr_fail(err, code, "%s %s: the file exists and is not one %s wrote; refusing to replace it (remove it "
                                  "or choose another name)", what, path, kind->command);
    return 0;
}

int tr_atomic_begin(tr_atomic *a, const char *path, bool open_file, int code, tr_err *err)
{
    memset(a, 0, sizeof *a);
    int rc = tr_path_format(a->path, sizeof a->path, code, err, "%s", path);
    if (!rc)
        rc = tr_path_format(a->tmp, sizeof a->tmp, code, err, "%s.tmp.%ld", path, (long)getpid());
    if (rc)
        return rc;
    /* the name carries this process's ID: whatever holds it is a dead process's leftover (or a
     * link someone made); it goes, and the file is created anew, never opened through a link */
    unlink(a->tmp);
    if (open_file) {
        const int fd = open(a->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        a->f = fd >= 0 ? fdopen(fd, "w") : NULL;
        if (!a->f) {
            rc = tr_fail(err, code, "%s: cannot write: %s", path, strerror(errno));
            if (fd >= 0)
                close(fd);
            unlink(a->tmp);
            a->tmp[0] = '\0';
        }
    }
    return rc;
}

void tr_sync_dir_of(const char *path)
{
    char dir[TR_PATH_MAX + 64];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    const int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

/* libhdf5 1.10 can lose a failed write: on a full disk, rows that went through its sieve
 * buffer are dropped while every call, the flush and the close report success, and the file
 * keeps holes where they belong. Every range of a file it wrote was written, so a hole is
 * that loss. */
static int check_no_holes(int fd, const char *path, int code, tr_err *err)
{
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size == 0)
        return 0;
    const off_t hole = lseek(fd, 0, SEEK_HOLE);
    if (hole < 0 || hole >= st.st_size)
        return 0;
    struct statvfs vfs;
    const bool full = fstatvfs(fd, &vfs) == 0 && (unsigned long long)vfs.f_bavail * vfs.f_frsize < (1u << 20);
    return tr_fail(err, code, "%s: write failed: %s (bytes from offset %lld were never written; the HDF5 library "
                              "reported success)", path, full ? strerror(ENOSPC) : "data lost", (long long)hole);
}

int tr_atomic_commit(tr_atomic *a, int code, tr_err *err)
{
    int rc = 0;
    if (a->f) {
        /* a write that failed earlier (a full disk) leaves the stream's error flag set even
         * when the final flush succeeds */
        const bool ok = !ferror(a->f) && fflush(a->f) == 0 && fsync(fileno(a->f)) == 0;
        const int e = errno;
        if (fclose(a->f) != 0 || !ok)
            rc = tr_fail(err, code, "%s: write failed: %s", a->path, strerror(ok ? errno : e));
        a->f = NULL;
    } else if (a->tmp[0]) { /* written by someone else (HDF5): sync it here */
        const int fd = open(a->tmp, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fsync(fd) != 0)
            rc = tr_fail(err, code, "%s: write failed: %s", a->path, strerror(errno));
        else
            rc = check_no_holes(fd, a->path, code, err);
        if (fd >= 0)
            close(fd);
    }
    if (!rc && rename(a->tmp, a->path) != 0)
        rc = tr_fail(err, code, "%s: cannot rename into place: %s", a->path, strerror(errno));
    if (rc) {
        tr_atomic_abort(a);
        return rc;
    }
    a->tmp[0] = '\0';
    tr_sync_dir_of(a->path);
    return 0;
}

void tr_atomic_abort(tr_atomic *a)
{
    if (a->f) {
        fclose(a->f);
        a->f = NULL;
    }
    if (a->tmp[0]) {
        unlink(a->tmp);
        a->tmp[0] = '\0';
    }
}

char *tr_trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}
