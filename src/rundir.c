/*
 * rundir.c: the run directory's lock, the files of an earlier run (found, cleared or set
 * aside), and the effective configuration file (see rundir.h).
 */
#include "trainer/rundir.h"

#include "trainer/ckpt.h"
#include "trainer/files.h"
#include "trainer/h5io.h"
#include "trainer/log.h"
#include "trainer/steplog.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LOCK_NAME ".trainer-lock"

static int make_dirs(const char *path, tr_err *err)
{
    char buf[TR_PATH_MAX];
    int rc = tr_path_format(buf, sizeof buf, TR_ECONFIG, err, "%s", path);
    if (rc)
        return tr_fail(err, TR_ECONFIG, "[output] dir: %s", err ? err->msg : "path too long");
    for (char *p = buf + 1;; p++) {
        const bool end = *p == '\0';
        if (*p == '/' || end) {
            const char saved = *p;
            *p = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                return tr_fail(err, TR_EIO, "[output] dir = %s: cannot create %s: %s", path, buf, strerror(errno));
            *p = saved;
        }
        if (end)
            break;
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return tr_fail(err, TR_EIO, "[output] dir = %s: exists and is not a directory", path);
    if (access(path, W_OK) != 0)
        return tr_fail(err, TR_EIO, "[output] dir = %s: not writable", path);
    return 0;
}

/* ------------------------------------------------------------------ the lock ---------- */

static int lock_dir(tr_rundir *r, tr_err *err)
{
    char path[TR_PATH_MAX + 32];
    int rc = tr_path_format(path, sizeof path, TR_EIO, err, "%s/%s", r->dir, LOCK_NAME);
    if (rc)
        return rc;
    const int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0)
        return tr_fail(err, TR_EIO, "%s: cannot create the run directory's lock: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        const int e = errno;
        if (e == EWOULDBLOCK) {
            char holder[256] = "";
            const ssize_t n = pread(fd, holder, sizeof holder - 1, 0);
            holder[n > 0 ? n : 0] = '\0';
            holder[strcspn(holder, "\n")] = '\0';
            close(fd);
            return tr_fail(err, TR_EIO,
                           "[output] dir = %s is in use by another trainer (%s); two runs in one directory would "
                           "splice their checkpoints and logs: wait for it to end, or choose another dir",
                           r->dir, holder[0] ? holder : "holder unknown");
        }
        /* no locks on this file system (Lustre -o noflock, some NFS set-ups): go on, and say so */
        fprintf(stderr,
                "trainer: warning: %s: the file system cannot lock (%s): a second trainer in this directory would "
                "not be refused\n",
                path, strerror(e));
        close(fd);
        return 0;
    }
    char host[128] = "unknown host", line[320], when[64];
    gethostname(host, sizeof host - 1);
    const time_t now = time(NULL);
    struct tm tm;
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", localtime_r(&now, &tm));
    const int len = snprintf(line, sizeof line, "pid %ld on host %s, since %s\n", (long)getpid(), host, when);
    if (ftruncate(fd, 0) != 0 || pwrite(fd, line, (size_t)len, 0) != len) {
        /* the lock holds without the note; only the refusal's detail is missing */
    }
    r->lock_fd = fd;
    return 0;
}

int tr_rundir_open(tr_rundir *r, const char *dir, tr_err *err)
{
    memset(r, 0, sizeof *r);
    r->lock_fd = -1;
    /* room for every name the run writes inside (ckpt-<step>.h5.tmp.<pid>, previous-N/...) */
    if (strlen(dir) > TR_PATH_MAX - 100)
        return tr_fail(err, TR_ECONFIG, "[output] dir: path too long (%zu characters, at most %d): %.60s...",
                       strlen(dir), TR_PATH_MAX - 100, dir);
    int rc = tr_path_format(r->dir, sizeof r->dir, TR_ECONFIG, err, "%s", dir);
    if (!rc)
        rc = make_dirs(dir, err);
    if (!rc)
        rc = lock_dir(r, err);
    return rc;
}

void tr_rundir_close(tr_rundir *r)
{
    if (r && r->lock_fd >= 0) {
        close(r->lock_fd); /* releases the flock */
        r->lock_fd = -1;
    }
}

/* ------------------------------------------------------------------ an earlier run ---- */

typedef enum file_role {
    ROLE_NONE,       /* not the trainer's */
    ROLE_RESULT,     /* a checkpoint, or a metric log with rows: an earlier run's results */
    ROLE_BYPRODUCT,  /* the trainer's, but nothing to lose (a log without rows, a config, a temp file) */
} file_role;

/* Whether a configuration file starts with the trainer's header. */
static bool written_by_trainer(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    char line[128] = "";
    const bool ours = fgets(line, sizeof line, f) && !strncmp(line, TR_RUNDIR_CONFIG_HEADER,
                                                                  strlen(TR_RUNDIR_CONFIG_HEADER));
    fclose(f);
    return ours;
}

/* Data rows of a CSV log (lines after the header). */
static long long csv_rows(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    long long lines = 0;
    int ch, last = '\n';
    while ((ch = getc(f)) != EOF) {
        lines += ch == '\n';
        last = ch;
    }
    lines += last != '\n';
    fclose(f);
    return lines > 1 ? lines - 1 : 0;
}

/* Rows of metrics.h5 (-1 when it cannot be read: treated as holding results). */
static long long h5_rows(const char *path)
{
    tr_h5_quiet();
    if (H5Fis_hdf5(path) <= 0)
        return -1;
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
    H5Pset_metadata_read_attempts(fapl, 1); /* no retries with sleeps on a damaged file (see log.c) */
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, fapl);
    H5Pclose(fapl);
    if (f < 0)
        return -1;
    long long rows = -1;
    if (tr_h5_exists(f, "/metrics/epoch")) {
        hid_t d = H5Dopen2(f, "/metrics/epoch", H5P_DEFAULT);
        hid_t s = d >= 0 ? H5Dget_space(d) : -1;
        hsize_t dims[1] = {0};
        if (s >= 0 && H5Sget_simple_extent_ndims(s) == 1 && H5Sget_simple_extent_dims(s, dims, NULL) == 1)
            rows = (long long)dims[0];
        if (s >= 0)
            H5Sclose(s);
        if (d >= 0)
            H5Dclose(d);
    }
    H5Fclose(f);
    return rows;
}

/* folds.csv's header: each row of the training pool by its row in the file, or its line in
 * a text file, and its fold. */
#define FOLDS_HEADER_ROW "row,fold"
#define FOLDS_HEADER_LINE "line,fold"

/* The names a run writes in its directory. */
typedef enum file_name {
    NAME_OTHER,      /* not one of the run's */
    NAME_CHECKPOINT, /* ckpt-<step>.h5, best.h5 */
    NAME_TEMP,       /* <one of the run's names>.tmp.<pid>: a write under way, or a dead one's */
    NAME_METRIC_LOG, /* metrics.csv, metrics.h5, metrics.earlier-N.csv/.h5 */
    NAME_STEP_LOG,   /* steps.csv, steps.h5 */
    NAME_CONFIG,     /* config.ini, effective-config.ini */
    NAME_FOLDS,      /* folds.csv ([data] folds) */
} file_name;

static file_name name_kind(const char *name)
{
    long long step;
    char tail[8];
    if ((sscanf(name, "ckpt-%lld.%7s", &step, tail) == 2 && !strcmp(tail, "h5")) || !strcmp(name, "best.h5"))
        return NAME_CHECKPOINT;
    if (strstr(name, ".tmp.") && (!strncmp(name, "ckpt-", 5) || !strncmp(name, "best.h5", 7) ||
                                  !strncmp(name, "metrics.", 8) || !strncmp(name, "steps.", 6) ||
                                  !strncmp(name, "config.ini", 10) || !strncmp(name, "folds.csv", 9) ||
                                  !strncmp(name, "effective-config.ini", 20)))
        return NAME_TEMP;
    int n_earlier, end = 0;
    if (!strcmp(name, "metrics.csv") || !strcmp(name, "metrics.h5") ||
        (sscanf(name, "metrics.earlier-%d.%n", &n_earlier, &end) == 1 && end > 0 &&
         (!strcmp(name + end, "h5") || !strcmp(name + end, "csv"))))
        return NAME_METRIC_LOG;
    if (!strcmp(name, "steps.csv") || !strcmp(name, "steps.h5"))
        return NAME_STEP_LOG;
    if (!strcmp(name, "config.ini") || !strcmp(name, "effective-config.ini"))
        return NAME_CONFIG;
    if (!strcmp(name, "folds.csv"))
        return NAME_FOLDS;
    return NAME_OTHER;
}

/* Whether a file under one of the run's names is the trainer's, by its contents. */
static bool written_here(const char *path, file_name kind)
{
    struct stat st;
    if (kind != NAME_OTHER && stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 0)
        return true; /* empty: a write that was cut short before its first line (nothing to lose) */
    switch (kind) {
    case NAME_CHECKPOINT:
        return tr_ckpt_written_by_trainer(path);
    case NAME_METRIC_LOG:
        return tr_metric_log_written_by_trainer(path);
    case NAME_STEP_LOG:
        return tr_step_log_written_by_trainer(path);
    case NAME_CONFIG:
        return written_by_trainer(path);
    case NAME_FOLDS: {
        char line[32];
        return tr_file_first_line(path, line, sizeof line) && (!strcmp(line, FOLDS_HEADER_ROW) ||
                                                                 !strcmp(line, FOLDS_HEADER_LINE));
    }
    case NAME_TEMP:
        return true; /* named after a process ID: nobody else's */
    case NAME_OTHER:
        break;
    }
    return false;
}

/* A regular file with one name (what lstat says): the only kind the run replaces or deletes. */
static bool plain_file(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1;
}

static file_role role_of(const char *dir, const char *name, char *what, size_t len)
{
    char path[TR_PATH_MAX + 300];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(what, len, "%s", name);
    const file_name kind = name_kind(name);
    if (kind == NAME_OTHER || !plain_file(path) || !written_here(path, kind))
        return ROLE_NONE; /* a user's file, or a link: never deleted or moved */
    if (kind == NAME_CHECKPOINT)
        return ROLE_RESULT;
    /* steps.* go with metrics.*; config.ini and folds.csv describe the run, not its results */
    if (kind == NAME_TEMP || kind == NAME_CONFIG || kind == NAME_FOLDS || kind == NAME_STEP_LOG)
        return ROLE_BYPRODUCT;
    if (strcmp(name, "metrics.csv") && strcmp(name, "metrics.h5"))
        return ROLE_RESULT; /* a metric log a resume kept under another name */
    if (!strcmp(name, "metrics.csv")) {
        const long long n = csv_rows(path);
        snprintf(what, len, "%s (%lld rows)", name, n);
        return n > 0 ? ROLE_RESULT : ROLE_BYPRODUCT;
    }
    const long long n = h5_rows(path);
    if (n >= 0)
        snprintf(what, len, "%s (%lld rows)", name, n);
    else
        snprintf(what, len, "%s (unreadable)", name);
    return n != 0 ? ROLE_RESULT : ROLE_BYPRODUCT;
}

int tr_rundir_check_files(const tr_rundir *r, const char *const *reads, int n_reads, tr_err *err)
{
    DIR *d = opendir(r->dir);
    if (!d)
        return 0;
    struct dirent *e;
    int rc = 0;
    while (!rc && (e = readdir(d))) {
        const file_name kind = name_kind(e->d_name);
        /* config.ini is never refused: when it is not the trainer's to replace it is kept
         * (tr_rundir_write_config) */
        if (kind == NAME_OTHER || kind == NAME_CONFIG)
            continue;
        char path[TR_PATH_MAX + 300];
        snprintf(path, sizeof path, "%s/%s", r->dir, e->d_name);
        for (int i = 0; !rc && i < n_reads; i++)
            if (reads[i] && reads[i][0] && tr_same_file(path, reads[i]))
                rc = tr_fail(err, TR_ECONFIG,
                             "[output] dir = %s: %s is %s, which this run reads; the run writes that name: move "
                             "the file, or choose another dir", r->dir, e->d_name,
                             strcmp(path, reads[i]) ? reads[i] : "an input");
        if (!rc)
            rc = tr_output_not_linked(path, "[output] dir:", TR_ECONFIG, err);
        if (!rc && !written_here(path, kind))
            rc = tr_fail(err, TR_ECONFIG,
                         "[output] dir = %s: %s exists and is not a file the trainer wrote; the run would replace "
                         "it: move it away, or choose another dir", r->dir, e->d_name);
    }
    closedir(d);
    return rc;
}

/* Calls fn for each of the trainer's files in the directory; stops at a non-zero return. */
static int each_file(const tr_rundir *r, int (*fn)(const tr_rundir *r, const char *name, file_role role,
                                                   const char *what, void *ctx),
                     void *ctx)
{
    DIR *d = opendir(r->dir);
    if (!d)
        return 0;
    struct dirent *e;
    int rc = 0;
    while (!rc && (e = readdir(d))) {
        char what[TR_PATH_MAX];
        const file_role role = role_of(r->dir, e->d_name, what, sizeof what);
        if (role != ROLE_NONE)
            rc = fn(r, e->d_name, role, what, ctx);
    }
    closedir(d);
    return rc;
}

typedef struct listing {
    char *list;
    size_t len, used;
    int n;
} listing;

static int list_result(const tr_rundir *r, const char *name, file_role role, const char *what, void *ctx)
{
    (void)r;
    (void)name;
    listing *l = ctx;
    if (role != ROLE_RESULT)
        return 0;
    if (l->n < 6 && l->used < l->len)
        l->used += (size_t)snprintf(l->list + l->used, l->len - l->used, "%s%s", l->n ? ", " : "", what);
    else if (l->n == 6 && l->used < l->len)
        l->used += (size_t)snprintf(l->list + l->used, l->len - l->used, ", ...");
    l->n++;
    return 0;
}

int tr_rundir_earlier_run(const tr_rundir *r, char *list, size_t len)
{
    listing l = {.list = list, .len = len};
    if (len)
        list[0] = '\0';
    each_file(r, list_result, &l);
    return l.n;
}

static int remove_file(const tr_rundir *r, const char *name, file_role role, const char *what, void *ctx)
{
    (void)role;
    (void)what;
    tr_err *err = ctx;
    char path[TR_PATH_MAX + 300];
    snprintf(path, sizeof path, "%s/%s", r->dir, name);
    if (unlink(path) != 0 && errno != ENOENT)
        return tr_fail(err, TR_EIO, "%s: cannot delete the earlier run's file: %s", path, strerror(errno));
    return 0;
}

int tr_rundir_clear(tr_rundir *r, tr_err *err) { return each_file(r, remove_file, err); }

typedef struct aside {
    const char *to;
    tr_err *err;
} aside;

static int move_file(const tr_rundir *r, const char *name, file_role role, const char *what, void *ctx)
{
    (void)role;
    (void)what;
    aside *a = ctx;
    char from[TR_PATH_MAX + 300], to[2 * TR_PATH_MAX + 300];
    snprintf(from, sizeof from, "%s/%s", r->dir, name);
    snprintf(to, sizeof to, "%s/%s", a->to, name);
    if (rename(from, to) != 0)
        return tr_fail(a->err, TR_EIO, "%s: cannot move the earlier run's file to %s: %s", from, a->to,
                       strerror(errno));
    return 0;
}

int tr_rundir_set_aside(tr_rundir *r, char *where, size_t len, tr_err *err)
{
    char to[TR_PATH_MAX + 32];
    for (int n = 1;; n++) {
        int rc = tr_path_format(to, sizeof to, TR_EIO, err, "%s/previous-%d", r->dir, n);
        if (rc)
            return rc;
        if (mkdir(to, 0777) == 0)
            break;
        if (errno != EEXIST)
            return tr_fail(err, TR_EIO, "%s: cannot create: %s", to, strerror(errno));
    }
    snprintf(where, len, "%s", to);
    aside a = {.to = to, .err = err};
    const int rc = each_file(r, move_file, &a);
    tr_sync_dir_of(to);
    return rc;
}

/* ------------------------------------------------------------------ configuration ----- */

int tr_rundir_write_config(const tr_rundir *r, const tr_config *c, tr_err *err)
{
    char path[TR_PATH_MAX + 32];
    int rc = tr_path_format(path, sizeof path, TR_EIO, err, "%s/config.ini", r->dir);
    if (rc)
        return rc;
    /* kept: the user's own, a link, or the configuration this run reads (a run started from
     * an earlier run's config.ini) */
    struct stat st;
    if (lstat(path, &st) == 0 && (!plain_file(path) || !written_by_trainer(path) || tr_same_file(path, c->path))) {
        rc = tr_path_format(path, sizeof path, TR_EIO, err, "%s/effective-config.ini", r->dir);
        if (rc)
            return rc;
        if (lstat(path, &st) == 0 &&
            (!plain_file(path) || !written_by_trainer(path) || tr_same_file(path, c->path))) {
            fprintf(stderr, "trainer: note: %s/config.ini and %s are kept (the user's own, or this run's "
                            "configuration); the effective configuration is not written\n", r->dir, path);
            return 0;
        }
    }
    tr_atomic a;
    rc = tr_atomic_begin(&a, path, true, TR_EIO, err);
    if (rc)
        return rc;
    fprintf(a.f, TR_RUNDIR_CONFIG_HEADER " (source: %s)\n", c->path);
    tr_config_print(c, a.f);
    return tr_atomic_commit(&a, TR_EIO, err);
}

int tr_rundir_write_folds(const tr_rundir *r, const tr_data *d, tr_err *err)
{
    if (!d->fold_of)
        return 0;
    char path[TR_PATH_MAX + 32];
    int rc = tr_path_format(path, sizeof path, TR_EIO, err, "%s/folds.csv", r->dir);
    tr_atomic a;
    if (!rc)
        rc = tr_atomic_begin(&a, path, true, TR_EIO, err);
    if (rc)
        return rc;
    fprintf(a.f, "%s\n", d->fold_origin_is_line ? FOLDS_HEADER_LINE : FOLDS_HEADER_ROW);
    for (int64_t i = 0; i < d->n_fold_rows; i++)
        fprintf(a.f, "%lld,%d\n", (long long)d->fold_origin[i], (int)d->fold_of[i]);
    return tr_atomic_commit(&a, TR_EIO, err);
}
