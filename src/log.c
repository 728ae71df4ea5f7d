/*
 * log.c: the metric log (HDF5 with SWMR + CSV twin) and the human output of rank 0.
 *
 * Columns are described once (col_t) and both files are written from that description, so
 * metrics.h5 and metrics.csv always carry the same numbers.
 */
#include "trainer/log.h"

#include "trainer/config.h"
#include "trainer/files.h"
#include "trainer/h5io.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef enum col_kind { COL_SCALAR, COL_PER_CLASS, COL_CONFUSION } col_kind;
typedef enum col_field {
    F_EPOCH, F_STEP, F_TIME, F_LR, F_TRAIN_LOSS, F_TRAIN_ACC, F_PENALTY, F_SPS, F_PHASE,
    F_LOSS, F_ACC, F_MACRO_P, F_MACRO_R, F_MACRO_F1, F_WEIGHTED_P, F_WEIGHTED_R, F_WEIGHTED_F1, F_MSE, F_RMSE, F_MAE,
    F_R2, F_PRECISION, F_RECALL, F_F1, F_CONFUSION
} col_field;

typedef struct col_t {
    char name[48];
    col_kind kind;
    col_field field;
    int set;   /* the set columns': an index of set_names */
    int phase; /* F_PHASE */
    hid_t dset;
} col_t;

#define MAX_COLS 96

struct tr_metric_log {
    tr_log_layout layout;
    int64_t classes;
    col_t cols[MAX_COLS];
    int n_cols;
    hid_t file;
    bool swmr;
    char h5_path[1100], csv_path[1100];
    FILE *csv;
    int64_t rows;
};

#define N_SETS 5
static const char *const set_names[N_SETS] = {"train_eval", "val", "test", "ema_val", "ema_test"};

static void add(tr_metric_log *l, const char *name, col_kind kind, col_field field, int set, int phase)
{
    col_t *c = &l->cols[l->n_cols++];
    snprintf(c->name, sizeof c->name, "%s", name);
    c->kind = kind;
    c->field = field;
    c->set = set;
    c->phase = phase;
    c->dset = -1;
}

static void describe(tr_metric_log *l)
{
    const tr_log_layout *y = &l->layout;
    const bool cls = y->task == TR_TASK_CLASSIFICATION;
    add(l, "epoch", COL_SCALAR, F_EPOCH, 0, 0);
    add(l, "step", COL_SCALAR, F_STEP, 0, 0);
    add(l, "time_s", COL_SCALAR, F_TIME, 0, 0);
    add(l, "lr", COL_SCALAR, F_LR, 0, 0);
    add(l, "train_loss", COL_SCALAR, F_TRAIN_LOSS, 0, 0);
    if (cls)
        add(l, "train_accuracy", COL_SCALAR, F_TRAIN_ACC, 0, 0);
    add(l, "penalty", COL_SCALAR, F_PENALTY, 0, 0);
    add(l, "samples_per_s", COL_SCALAR, F_SPS, 0, 0);
    for (int p = 0; p < TR_LOG_PHASES; p++) {
        char name[48];
        snprintf(name, sizeof name, "%s_ms", y->phase_names[p]);
        add(l, name, COL_SCALAR, F_PHASE, 0, p);
    }
    const bool present[N_SETS] = {y->train_eval, y->val, y->test, y->ema_val, y->ema_test};
    for (int s = 0; s < N_SETS; s++) {
        if (!present[s])
            continue;
        char name[48];
#define COL(suffix, kind, field)                                      \
    do {                                                              \
        snprintf(name, sizeof name, "%s_%s", set_names[s], suffix);   \
        add(l, name, kind, field, s, 0);                              \
    } while (0)
        COL("loss", COL_SCALAR, F_LOSS);
        if (cls) {
            COL("accuracy", COL_SCALAR, F_ACC);
            COL("macro_f1", COL_SCALAR, F_MACRO_F1);
            COL("macro_precision", COL_SCALAR, F_MACRO_P);
            COL("macro_recall", COL_SCALAR, F_MACRO_R);
            COL("weighted_precision", COL_SCALAR, F_WEIGHTED_P);
            COL("weighted_recall", COL_SCALAR, F_WEIGHTED_R);
            COL("weighted_f1", COL_SCALAR, F_WEIGHTED_F1);
        } else {
            COL("mse", COL_SCALAR, F_MSE);
            COL("rmse", COL_SCALAR, F_RMSE);
            COL("mae", COL_SCALAR, F_MAE);
            COL("r2", COL_SCALAR, F_R2);
        }
        if (cls) {
            COL("precision", COL_PER_CLASS, F_PRECISION);
            COL("recall", COL_PER_CLASS, F_RECALL);
            COL("f1", COL_PER_CLASS, F_F1);
            COL("confusion", COL_CONFUSION, F_CONFUSION);
        }
#undef COL
    }
}

static const tr_metrics *set_of(const tr_log_row *r, int s)
{
    const tr_metrics *const sets[N_SETS] = {r->train_eval, r->val, r->test, r->ema_val, r->ema_test};
    return sets[s];
}

static double scalar(const col_t *c, const tr_log_row *r)
{
    const tr_metrics *m = set_of(r, c->set);
    switch (c->field) {
    case F_EPOCH: return (double)r->epoch;
    case F_STEP: return (double)r->step;
    case F_TIME: return r->time_s;
    case F_LR: return r->lr;
    case F_TRAIN_LOSS: return r->train_loss;
    case F_TRAIN_ACC: return r->train_accuracy;
    case F_PENALTY: return r->penalty;
    case F_SPS: return r->samples_per_s;
    case F_PHASE: return r->phase_ms[c->phase];
    case F_LOSS: return m ? m->loss : NAN;
    case F_ACC: return m ? m->accuracy : NAN;
    case F_MACRO_F1: return m ? m->macro_f1 : NAN;
    case F_MACRO_P: return m ? m->macro_precision : NAN;
    case F_MACRO_R: return m ? m->macro_recall : NAN;
    case F_WEIGHTED_P: return m ? m->weighted_precision : NAN;
    case F_WEIGHTED_R: return m ? m->weighted_recall : NAN;
    case F_WEIGHTED_F1: return m ? m->weighted_f1 : NAN;
    case F_MSE: return m ? m->mse : NAN;
    case F_RMSE: return m ? m->rmse : NAN;
    case F_MAE: return m ? m->mae : NAN;
    case F_R2: return m ? m->r2 : NAN;
    default: return NAN;
    }
}

/* ------------------------------------------------------------------ HDF5 --------------- */

/* A column's dataset: (rows), (rows, classes) or (rows, classes, classes); counts are int64. */
static int col_rank(const col_t *c) { return c->kind == COL_SCALAR ? 1 : c->kind == COL_PER_CLASS ? 2 : 3; }
static hid_t col_type(const col_t *c) { return c->kind == COL_CONFUSION ? H5T_NATIVE_INT64 : H5T_NATIVE_DOUBLE; }

static int create_datasets(tr_metric_log *l, tr_err *err)
{
    hid_t g = H5Gcreate2(l->file, "/metrics", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    char why[200];
    if (g < 0)
        return tr_fail(err, TR_EIO, "%s: cannot create /metrics: %s", l->h5_path, tr_h5_why(why, sizeof why));
    H5Gclose(g);
    const hsize_t K = (hsize_t)(l->classes > 0 ? l->classes : 1);
    for (int i = 0; i < l->n_cols; i++) {
        col_t *c = &l->cols[i];
        const int rank = col_rank(c);
        hsize_t dims[3] = {0, K, K}, maxd[3] = {H5S_UNLIMITED, K, K}, chunk[3] = {64, K, K};
        hid_t space = H5Screate_simple(rank, dims, maxd);
        hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
        H5Pset_chunk(dcpl, rank, chunk);
        char path[80];
        snprintf(path, sizeof path, "/metrics/%s", c->name);
        c->dset = H5Dcreate2(l->file, path, col_type(c), space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
        if (c->dset < 0)
            tr_h5_why(why, sizeof why);
        H5Pclose(dcpl);
        H5Sclose(space);
        if (c->dset < 0)
            return tr_fail(err, TR_EIO, "%s: cannot create %s: %s", l->h5_path, path, why);
    }
    return 0;
}

/* Reopens the datasets of an existing log; false if the file's columns are not exactly ours. */
static bool open_datasets(tr_metric_log *l, int64_t *rows)
{
    *rows = -1;
    H5G_info_t info;
    if (!tr_h5_exists(l->file, "/metrics") || H5Gget_info_by_name(l->file, "/metrics", &info, H5P_DEFAULT) < 0 ||
        info.nlinks != (hsize_t)l->n_cols)
        return false;
    for (int i = 0; i < l->n_cols; i++) {
        col_t *c = &l->cols[i];
        char path[80];
        snprintf(path, sizeof path, "/metrics/%s", c->name);
        if (!tr_h5_exists(l->file, path))
            return false;
        c->dset = H5Dopen2(l->file, path, H5P_DEFAULT);
        if (c->dset < 0)
            return false;
        hid_t s = H5Dget_space(c->dset);
        hsize_t dims[3];
        const int rank = H5Sget_simple_extent_dims(s, dims, NULL);
        H5Sclose(s);
        const int want = col_rank(c);
        if (rank != want || (rank > 1 && dims[1] != (hsize_t)l->classes))
            return false;
        if (*rows < 0 || (int64_t)dims[0] < *rows)
            *rows = (int64_t)dims[0];
    }
    return true;
}

static void close_datasets(tr_metric_log *l)
{
    for (int i = 0; i < l->n_cols; i++)
        if (l->cols[i].dset >= 0) {
            H5Dclose(l->cols[i].dset);
            l->cols[i].dset = -1;
        }
}

static int set_rows(tr_metric_log *l, int64_t rows)
{
    const hsize_t K = (hsize_t)(l->classes > 0 ? l->classes : 1);
    for (int i = 0; i < l->n_cols; i++) {
        hsize_t dims[3] = {(hsize_t)rows, K, K};
        if (H5Dset_extent(l->cols[i].dset, dims) < 0)
            return -1;
    }
    return 0;
}

static hid_t latest_fapl(void)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
    /* one read attempt: on a checksum failure a SWMR file is otherwise re-read with growing
     * sleeps (minutes on a damaged log; found by tests/fuzz/fuzz_metrics.c). Only this run
     * writes the log (it holds the directory's lock), so there is nothing to wait for. */
    H5Pset_metadata_read_attempts(fapl, 1);
    return fapl;
}

/* ------------------------------------------------------------------ CSV ---------------- */

static void csv_header(tr_metric_log *l)
{
    bool first = true;
    for (int i = 0; i < l->n_cols; i++)
        if (l->cols[i].kind == COL_SCALAR) {
            fprintf(l->csv, "%s%s", first ? "" : ",", l->cols[i].name);
            first = false;
        }
    fputc('\n', l->csv);
}

static int n_scalars(const tr_metric_log *l)
{
    int n = 0;
    for (int i = 0; i < l->n_cols; i++)
        n += l->cols[i].kind == COL_SCALAR;
    return n;
}

/* Reads the first `rows` rows of an existing CSV into vals (rows x scalar columns): 1 when
 * it has this log's header and that many well-formed rows, 0 when there is none, -1 when it
 * is damaged or has other columns. */
static int csv_read(tr_metric_log *l, int64_t rows, double *vals)
{
    FILE *in = fopen(l->csv_path, "r");
    if (!in)
        return errno == ENOENT ? 0 : -1;
    char want[MAX_COLS * 50] = "";
    size_t used = 0;
    for (int i = 0; i < l->n_cols; i++)
        if (l->cols[i].kind == COL_SCALAR)
            used += (size_t)snprintf(want + used, sizeof want - used, "%s%s", used ? "," : "", l->cols[i].name);
    const int k = n_scalars(l);
    char *line = NULL;
    size_t cap = 0;
    int ok = getline(&line, &cap, in) > 0 && !strcmp(strtok(line, "\r\n") ? line : "", want) ? 1 : -1;
    for (int64_t r = 0; ok == 1 && r < rows; r++) {
        if (getline(&line, &cap, in) <= 0) {
            ok = -1;
            break;
        }
        char *p = line;
        for (int j = 0; j < k && ok == 1; j++) {
            char *end;
            vals[r * k + j] = strtod(p, &end);
            if (end == p || *end != (j + 1 < k ? ',' : '\n'))
                ok = -1;
            p = end + 1;
        }
    }
    free(line);
    fclose(in);
    return ok;
}

/* Writes the header and `rows` rows of vals as the CSV (temporary file and rename). */
static int csv_write(tr_metric_log *l, const double *vals, int64_t rows, tr_err *err)
{
    tr_atomic a;
    int rc = tr_atomic_begin(&a, l->csv_path, true, TR_EIO, err);
    if (rc)
        return rc;
    FILE *keep = l->csv;
    l->csv = a.f;
    csv_header(l);
    l->csv = keep;
    const int k = n_scalars(l);
    for (int64_t r = 0; r < rows; r++)
        for (int j = 0; j < k; j++)
            fprintf(a.f, "%.10g%c", vals[r * k + j], j + 1 < k ? ',' : '\n');
    return tr_atomic_commit(&a, TR_EIO, err);
}

/* The first `rows` rows of column c from its dataset `dset` (in this log's file or another
 * with the same columns) into buf, in the column's type; 0, or -1 when they cannot be read. */
static int read_column(hid_t dset, const col_t *c, int64_t rows, size_t K, void *buf)
{
    if (rows <= 0)
        return 0;
    const hsize_t start[3] = {0, 0, 0}, count[3] = {(hsize_t)rows, K, K};
    hid_t fs = H5Dget_space(dset);
    bool ok = fs >= 0 && H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) >= 0;
    hid_t ms = H5Screate_simple(col_rank(c), count, NULL);
    ok = ok && H5Dread(dset, col_type(c), ms, fs, H5P_DEFAULT, buf) >= 0;
    H5Sclose(ms);
    if (fs >= 0)
        H5Sclose(fs);
    return ok ? 0 : -1;
}

/* The scalar columns of the first `rows` rows of the open HDF5 log into vals. */
static int h5_read_scalars(tr_metric_log *l, int64_t rows, double *vals)
{
    const int k = n_scalars(l);
    double *col = malloc((size_t)(rows > 0 ? rows : 1) * sizeof *col);
    int rc = col ? 0 : -1;
    for (int i = 0, j = 0; !rc && i < l->n_cols; i++) {
        if (l->cols[i].kind != COL_SCALAR)
            continue;
        rc = read_column(l->cols[i].dset, &l->cols[i], rows, 1, col);
        for (int64_t r = 0; !rc && r < rows; r++)
            vals[r * k + j] = col[r];
        j++;
    }
    free(col);
    return rc;
}

/* A new HDF5 log from the CSV's rows: the scalar columns, per-class metrics NaN and
 * confusion counts -1 (the CSV does not carry them). Leaves l->file closed. */
static int h5_write_from_csv(tr_metric_log *l, const double *vals, int64_t rows, hid_t fapl, tr_err *err)
{
    tr_atomic a;
    int rc = tr_atomic_begin(&a, l->h5_path, false, TR_EIO, err);
    if (rc)
        return rc;
    const char *tmp = a.tmp;
    l->file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    if (l->file < 0) {
        char why[200];
        tr_h5_why(why, sizeof why);
        tr_atomic_abort(&a);
        return tr_fail(err, TR_EIO, "%s: cannot create: %s", l->h5_path, why);
    }
    const int k = n_scalars(l);
    const size_t K = (size_t)(l->classes > 0 ? l->classes : 1);
    double *buf = malloc((size_t)(rows > 0 ? rows : 1) * K * K * sizeof(double));
    rc = !buf ? tr_fail(err, TR_ENOMEM, "out of memory") : create_datasets(l, err);
    if (!rc && set_rows(l, rows) < 0)
        rc = tr_fail(err, TR_EIO, "%s: cannot extend", tmp);
    for (int i = 0, j = 0; !rc && rows > 0 && i < l->n_cols; i++) {
        const col_t *c = &l->cols[i];
        const size_t per_row = c->kind == COL_SCALAR ? 1 : c->kind == COL_PER_CLASS ? K : K * K;
        for (int64_t r = 0; r < rows; r++)
            for (size_t q = 0; q < per_row; q++) {
                double *d = &buf[(size_t)r * per_row + q];
                if (c->kind == COL_SCALAR)
                    *d = vals[r * k + j];
                else if (c->kind == COL_PER_CLASS)
                    *d = NAN;
                else
                    ((int64_t *)buf)[(size_t)r * per_row + q] = -1;
            }
        j += c->kind == COL_SCALAR;
        char why[200];
        if (H5Dwrite(c->dset, col_type(c), H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
            rc = tr_fail(err, TR_EIO, "%s: cannot write %s: %s", l->h5_path, c->name, tr_h5_why(why, sizeof why));
    }
    free(buf);
    close_datasets(l);
    if (rc)
        H5Fclose(l->file);
    else
        rc = tr_h5_finish(l->file, l->h5_path, err);
    l->file = -1;
    if (rc) {
        tr_atomic_abort(&a);
        return rc;
    }
    return tr_atomic_commit(&a, TR_EIO, err);
}

/* Moves DIR/metrics.h5 and DIR/metrics.csv (those that exist) to the first free
 * DIR/metrics.earlier-N.{h5,csv}; `which` 1 = h5, 2 = csv, 3 = both. Names them in `said`. */
static int set_aside(tr_metric_log *l, int which, char *said, size_t len, tr_err *err)
{
    const char *paths[2] = {l->h5_path, l->csv_path}, *ext[2] = {"h5", "csv"};
    char to[2][TR_PATH_MAX + 64];
    size_t dir_len = strlen(l->h5_path) - strlen("metrics.h5");
    for (int n = 1;; n++) {
        bool free_name = true;
        for (int f = 0; f < 2; f++) {
            int rc = tr_path_format(to[f], sizeof to[f], TR_EIO, err, "%.*smetrics.earlier-%d.%s", (int)dir_len,
                                    l->h5_path, n, ext[f]);
            if (rc)
                return rc;
            free_name = free_name && access(to[f], F_OK) != 0;
        }
        if (free_name)
            break;
    }
    said[0] = '\0';
    for (int f = 0; f < 2; f++) {
        if (!(which & (1 << f)) || access(paths[f], F_OK) != 0)
            continue;
        if (rename(paths[f], to[f]) != 0)
            return tr_fail(err, TR_EIO, "%s: cannot move to %s: %s", paths[f], to[f], strerror(errno));
        const size_t u = strlen(said);
        snprintf(said + u, len - u, "%s%s", u ? " and " : "", to[f]);
    }
    tr_sync_dir_of(l->h5_path);
    return 0;
}

/* A SWMR log whose writer was killed stays marked "open for writing" and cannot be opened
 * for writing again (h5clear --status would clear it). Readers can still open it, so the
 * first `keep_rows` rows are copied into a new file that replaces it; 0 on success. */
static int rebuild_log(tr_metric_log *l, int64_t keep_rows, hid_t fapl, tr_err *err)
{
    /* (fapl allows one read attempt: see latest_fapl) */
    hid_t old = H5Fopen(l->h5_path, H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, fapl);
    if (old < 0)
        return -1;
    tr_metric_log src = *l; /* the same columns, in the old file */
    src.file = old;
    int64_t rows = 0;
    int rc = -1;
    tr_atomic a;
    if (tr_atomic_begin(&a, l->h5_path, false, TR_EIO, err)) {
        H5Fclose(old);
        return -1;
    }
    l->file = -1;
    const size_t K = (size_t)(l->classes > 0 ? l->classes : 1);
    double *buf = NULL; /* one column's rows; int64 counts have the same size */
    if (open_datasets(&src, &rows) && rows >= keep_rows) {
        l->file = H5Fcreate(a.tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
        buf = malloc((size_t)(keep_rows > 0 ? keep_rows : 1) * K * K * sizeof(double));
        if (l->file >= 0 && buf && !create_datasets(l, err) && set_rows(l, keep_rows) == 0)
            rc = 0;
    }
    for (int i = 0; !rc && i < l->n_cols && keep_rows > 0; i++)
        if (read_column(src.cols[i].dset, &l->cols[i], keep_rows, K, buf) < 0 ||
            H5Dwrite(l->cols[i].dset, col_type(&l->cols[i]), H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
            rc = -1;
    free(buf);
    close_datasets(&src);
    H5Fclose(old);
    close_datasets(l);
    if (l->file >= 0 && (rc ? H5Fclose(l->file) : tr_h5_finish(l->file, l->h5_path, NULL)) != 0)
        rc = -1;
    l->file = -1;
    if (rc || tr_atomic_commit(&a, TR_EIO, err)) {
        tr_atomic_abort(&a);
        return -1;
    }
    return 0;
}

/* Whether every column's first `rows` rows can be read: damage inside a dataset (its chunk
 * index) shows here, before the log turns to SWMR writing, where libhdf5 would retry a
 * damaged read with sleeps for minutes (found by tests/fuzz/fuzz_metrics.c). */
static bool all_readable(tr_metric_log *l, int64_t rows)
{
    const size_t K = (size_t)(l->classes > 0 ? l->classes : 1);
    double *buf = malloc((size_t)(rows > 0 ? rows : 1) * K * K * sizeof(double));
    bool ok = buf != NULL;
    for (int i = 0; ok && i < l->n_cols; i++)
        ok = read_column(l->cols[i].dset, &l->cols[i], rows, K, buf) == 0;
    free(buf);
    return ok;
}

/* A resumed run's log: keep the first keep_rows rows. The two files are twins; when one is
 * missing or damaged it is rebuilt from the other, and when neither fits this run (other
 * columns: eval_train or the validation/test sets changed; too few rows) both are kept
 * under other names and a new log starts. Every such step is said on stderr. Returns 0 with
 * l->file open and l->csv open for appending, or 1 when a new log must be created. */
static int reopen_log(tr_metric_log *l, int64_t keep_rows, hid_t fapl, tr_err *err)
{
    const int k = n_scalars(l);
    double *vals = malloc((size_t)(keep_rows > 0 ? keep_rows : 1) * (size_t)k * sizeof *vals);
    if (!vals)
        return tr_fail(err, TR_ENOMEM, "out of memory");
    int64_t rows = 0;
    const bool h5_there = access(l->h5_path, F_OK) == 0;
    if (H5Fis_hdf5(l->h5_path) > 0) {
        l->file = H5Fopen(l->h5_path, H5F_ACC_RDWR, fapl);
        if (l->file < 0 && rebuild_log(l, keep_rows, fapl, err) == 0) /* its writer was killed */
            l->file = H5Fopen(l->h5_path, H5F_ACC_RDWR, fapl);
    }
    const bool h5_ok = l->file >= 0 && open_datasets(l, &rows) && rows >= keep_rows && all_readable(l, keep_rows) &&
                       set_rows(l, keep_rows) == 0;
    const int csv = csv_read(l, keep_rows, vals);
    char said[2 * TR_PATH_MAX + 200];
    int rc = 0;
    if (h5_ok) {
        if (csv == 1) {
            rc = csv_write(l, vals, keep_rows, err); /* drop the rows after the checkpoint */
        } else {
            if (csv < 0)
                rc = set_aside(l, 2, said, sizeof said, err);
            if (!rc && h5_read_scalars(l, keep_rows, vals) < 0)
                rc = tr_fail(err, TR_EIO, "%s: cannot read", l->h5_path);
            if (!rc)
                rc = csv_write(l, vals, keep_rows, err);
            if (!rc)
                fprintf(stderr, "trainer: note: %s was %s; rebuilt from %s%s%s\n", l->csv_path,
                        csv < 0 ? "damaged or from another run layout" : "missing", l->h5_path,
                        csv < 0 ? "; the old one is kept as " : "", csv < 0 ? said : "");
        }
    } else {
        close_datasets(l);
        if (l->file >= 0)
            H5Fclose(l->file);
        l->file = -1;
        if (csv == 1) {
            said[0] = '\0';
            if (h5_there)
                rc = set_aside(l, 1, said, sizeof said, err);
            if (!rc)
                rc = h5_write_from_csv(l, vals, keep_rows, fapl, err);
            if (!rc)
                rc = csv_write(l, vals, keep_rows, err);
            if (!rc) {
                l->file = H5Fopen(l->h5_path, H5F_ACC_RDWR, fapl);
                if (l->file < 0 || !open_datasets(l, &rows))
                    rc = tr_fail(err, TR_EIO, "%s: cannot reopen the rebuilt metric log", l->h5_path);
            }
            if (!rc)
                fprintf(stderr,
                        "trainer: note: %s was %s; rebuilt from %s (per-class metrics and confusion matrices of "
                        "the first %lld rows are not in the CSV: NaN and -1)%s%s\n",
                        l->h5_path, h5_there ? "damaged or from another run layout" : "missing", l->csv_path,
                        (long long)keep_rows, said[0] ? "; the old one is kept as " : "", said);
        } else {
            rc = set_aside(l, 3, said, sizeof said, err);
            if (!rc && said[0])
                fprintf(stderr,
                        "trainer: note: the metric log in this directory does not fit the resumed run (other "
                        "columns, damaged or fewer than %lld rows); it is kept as %s and a new log starts\n",
                        (long long)keep_rows, said);
            rc = rc ? rc : 1;
        }
    }
    free(vals);
    if (rc)
        return rc;
    l->rows = keep_rows;
    l->csv = fopen(l->csv_path, "a");
    return 0;
}

/* ------------------------------------------------------------------ public ------------- */

bool tr_metric_log_written_by_trainer(const char *path)
{
    const size_t n = strlen(path);
    if (n > 4 && !strcmp(path + n - 4, ".csv")) {
        char line[64];
        return tr_file_first_line(path, line, sizeof line) && !strncmp(line, "epoch,step,", 11);
    }
    /* one that does not open is a killed writer's (a resume rebuilds or sets it aside) */
    static const char *const root[] = {"metrics", NULL};
    return tr_h5_root_check(path, root) != 0;
}

int tr_metric_log_open(tr_metric_log **out, const char *dir, const tr_log_layout *layout, int64_t keep_rows,
                       tr_err *err)
{
    *out = NULL;
    tr_h5_quiet();
    tr_metric_log *l = calloc(1, sizeof *l);
    if (!l)
        return tr_fail(err, TR_ENOMEM, "out of memory");
    l->layout = *layout;
    l->classes = layout->task == TR_TASK_CLASSIFICATION ? layout->classes : 0;
    l->file = -1;
    describe(l);
    snprintf(l->h5_path, sizeof l->h5_path, "%s/metrics.h5", dir);
    snprintf(l->csv_path, sizeof l->csv_path, "%s/metrics.csv", dir);
    int rc = 0;
    bool fresh = keep_rows < 0;
    hid_t fapl = latest_fapl();
    if (!fresh) {
        rc = reopen_log(l, keep_rows, fapl, err);
        if (rc < 0)
            goto fail;
        fresh = rc == 1;
        rc = 0;
    }
    if (fresh) {
        l->rows = 0;
        l->file = H5Fcreate(l->h5_path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
        if (l->file < 0) {
            char why[200];
            rc = tr_fail(err, TR_EIO, "%s: cannot create the metric log: %s", l->h5_path, tr_h5_why(why, sizeof why));
            goto fail;
        }
        rc = create_datasets(l, err);
        if (rc)
            goto fail;
        l->csv = fopen(l->csv_path, "w");
        if (l->csv)
            csv_header(l);
    }
    if (!l->csv) {
        rc = tr_fail(err, TR_EIO, "%s: cannot write: %s", l->csv_path, strerror(errno));
        goto fail;
    }
    fflush(l->csv);
    /* readers may follow the file from now on; without SWMR (e.g. no file locking on the
     * file system) every row is still flushed */
    l->swmr = H5Fstart_swmr_write(l->file) >= 0;
    H5Pclose(fapl);
    *out = l;
    return 0;
fail:
    H5Pclose(fapl);
    tr_metric_log_close(l);
    return rc;
}

int tr_metric_log_append(tr_metric_log *l, const tr_log_row *r, tr_err *err)
{
    const int64_t K = l->classes;
    const hsize_t row = (hsize_t)l->rows;
    char why[200];
    if (set_rows(l, l->rows + 1) < 0)
        return tr_fail(err, TR_EIO, "%s: cannot extend the metric log: %s", l->h5_path, tr_h5_why(why, sizeof why));
    bool first = true;
    for (int i = 0; i < l->n_cols; i++) {
        col_t *c = &l->cols[i];
        const tr_metrics *m = set_of(r, c->set);
        hsize_t start[3] = {row, 0, 0}, count[3] = {1, (hsize_t)(K > 0 ? K : 1), (hsize_t)(K > 0 ? K : 1)};
        const int rank = col_rank(c);
        hid_t fs = H5Dget_space(c->dset);
        H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
        hid_t ms = H5Screate_simple(rank, count, NULL);
        herr_t st = 0;
        if (c->kind == COL_SCALAR) {
            const double v = scalar(c, r);
            st = H5Dwrite(c->dset, H5T_NATIVE_DOUBLE, ms, fs, H5P_DEFAULT, &v);
            fprintf(l->csv, "%s%.10g", first ? "" : ",", v);
            first = false;
        } else if (c->kind == COL_PER_CLASS) {
            double v[1024];
            for (int64_t k = 0; k < K && k < 1024; k++)
                v[k] = !m ? NAN : c->field == F_PRECISION ? m->precision[k] : c->field == F_RECALL ? m->recall[k]
                                                                                                   : m->f1[k];
            if (K <= 1024)
                st = H5Dwrite(c->dset, H5T_NATIVE_DOUBLE, ms, fs, H5P_DEFAULT, v);
        } else if (m) {
            st = H5Dwrite(c->dset, H5T_NATIVE_INT64, ms, fs, H5P_DEFAULT, m->confusion);
        }
        if (st < 0)
            tr_h5_why(why, sizeof why);
        H5Sclose(ms);
        H5Sclose(fs);
        if (st >= 0 && l->swmr && H5Dflush(c->dset) < 0) {
            st = -1;
            tr_h5_why(why, sizeof why);
        }
        if (st < 0)
            return tr_fail(err, TR_EIO, "%s: cannot write %s: %s", l->h5_path, c->name, why);
    }
    fputc('\n', l->csv);
    if (ferror(l->csv) || fflush(l->csv) != 0)
        return tr_fail(err, TR_EIO, "%s: write failed: %s", l->csv_path, strerror(errno));
    if (!l->swmr && H5Fflush(l->file, H5F_SCOPE_LOCAL) < 0)
        return tr_fail(err, TR_EIO, "%s: cannot flush the metric log: %s", l->h5_path, tr_h5_why(why, sizeof why));
    l->rows++;
    return 0;
}

int64_t tr_metric_log_rows(const tr_metric_log *l) { return l ? l->rows : 0; }

int tr_metric_log_mark_target(tr_metric_log *l, const char *stop_at, double seconds, int64_t epoch, int64_t step,
                              tr_err *err)
{
    /* a SWMR writer cannot add attributes: the file is closed and opened again without it
     * (no row follows: the target ended the run) */
    close_datasets(l);
    H5Fclose(l->file);
    hid_t fapl = latest_fapl();
    l->file = H5Fopen(l->h5_path, H5F_ACC_RDWR, fapl);
    H5Pclose(fapl);
    l->swmr = false;
    char why[200];
    if (l->file < 0)
        return tr_fail(err, TR_EIO, "%s: cannot reopen the metric log: %s", l->h5_path, tr_h5_why(why, sizeof why));
    int rc = tr_h5_attr_str(l->file, l->h5_path, "/metrics", "stop_at", stop_at, err);
    if (!rc)
        rc = tr_h5_attr_f64(l->file, l->h5_path, "/metrics", "time_to_target_s", seconds, err);
    if (!rc)
        rc = tr_h5_attr_i64(l->file, l->h5_path, "/metrics", "target_epoch", epoch, err);
    if (!rc)
        rc = tr_h5_attr_i64(l->file, l->h5_path, "/metrics", "target_step", step, err);
    if (!rc && H5Fflush(l->file, H5F_SCOPE_LOCAL) < 0)
        rc = tr_fail(err, TR_EIO, "%s: cannot flush the metric log: %s", l->h5_path, tr_h5_why(why, sizeof why));
    return rc;
}

void tr_metric_log_close(tr_metric_log *l)
{
    if (!l)
        return;
    close_datasets(l);
    if (l->file >= 0)
        H5Fclose(l->file);
    if (l->csv)
        fclose(l->csv);
    free(l);
}

/* ------------------------------------------------------------------ human output ------- */

void tr_log_eval_line(FILE *f, const tr_log_row *r, int64_t epochs, tr_task task)
{
    const bool cls = task == TR_TASK_CLASSIFICATION;
    fprintf(f, "epoch %*lld/%lld  step %lld  train_loss %.6f", epochs >= 100 ? 4 : 3, (long long)r->epoch,
            (long long)epochs, (long long)r->step, r->train_eval ? r->train_eval->loss : r->train_loss);
    if (cls)
        fprintf(f, "  train_acc %.4f", r->train_eval ? r->train_eval->accuracy : r->train_accuracy);
    else if (r->train_eval)
        fprintf(f, "  train_r2 %.4f", r->train_eval->r2);
    if (r->penalty > 0)
        fprintf(f, "  penalty %.6f", r->penalty);
    for (int s = 1; s < N_SETS; s++) { /* the held-out sets (the training set is printed above) */
        const tr_metrics *m = set_of(r, s);
        if (!m)
            continue;
        fprintf(f, "  %s_loss %.6f", set_names[s], m->loss);
        if (cls)
            fprintf(f, "  %s_acc %.4f", set_names[s], m->accuracy);
        else
            fprintf(f, "  %s_r2 %.4f", set_names[s], m->r2);
    }
    fprintf(f, "  lr %.3g  %.0f samples/s\n", r->lr, r->samples_per_s);
    fflush(f);
}

void tr_print_report(FILE *f, const tr_metrics *m, const char *title, const char *class_names)
{
    fprintf(f, "\n%s (%lld rows): loss %.6f\n", title, (long long)m->rows, m->loss);
    if (m->task == TR_TASK_REGRESSION) {
        fprintf(f, "  mse %.6g  rmse %.6g  mae %.6g  r2 %.6f\n", m->mse, m->rmse, m->mae, m->r2);
        return;
    }
    const int64_t K = m->classes;
    fprintf(f, "  accuracy %.4f  macro_f1 %.4f\n", m->accuracy, m->macro_f1);
    /* row labels: the class names (at most 16 characters), else the class indices */
    char name[64];
    int label_width = 12; /* "weighted avg" */
    for (int64_t i = 0; i < K; i++) {
        const int len = (int)strlen(tr_class_name(class_names, i, name, sizeof name));
        label_width = len > label_width ? (len < 16 ? len : 16) : label_width;
    }
    if (K <= 50) {
        fprintf(f, "  confusion matrix (rows: true class, columns: predicted class)\n  %*s", label_width, "");
        for (int64_t j = 0; j < K; j++)
            fprintf(f, " %7lld", (long long)j);
        fprintf(f, "\n");
        for (int64_t i = 0; i < K; i++) {
            fprintf(f, "  %*.*s", label_width, 16, tr_class_name(class_names, i, name, sizeof name));
            for (int64_t j = 0; j < K; j++)
                fprintf(f, " %7lld", (long long)m->confusion[i * K + j]);
            fprintf(f, "\n");
        }
    } else {
        fprintf(f, "  (%lld classes: the confusion matrix is in metrics.h5)\n", (long long)K);
    }
    fprintf(f, "  %*s %10s %10s %10s %10s\n", label_width, "class", "precision", "recall", "f1-score", "support");
    int64_t total = 0;
    for (int64_t i = 0; i < K; i++) {
        int64_t support = 0;
        for (int64_t j = 0; j < K; j++)
            support += m->confusion[i * K + j];
        total += support;
        fprintf(f, "  %*.*s %10.4f %10.4f %10.4f %10lld\n", label_width, 16,
                tr_class_name(class_names, i, name, sizeof name), m->precision[i], m->recall[i], m->f1[i],
                (long long)support);
    }
    /* scikit-learn's classification_report closing rows */
    fprintf(f, "\n  %*s %10s %10s %10.4f %10lld\n", label_width, "accuracy", "", "", m->accuracy, (long long)total);
    fprintf(f, "  %*s %10.4f %10.4f %10.4f %10lld\n", label_width, "macro avg", m->macro_precision, m->macro_recall,
            m->macro_f1, (long long)total);
    fprintf(f, "  %*s %10.4f %10.4f %10.4f %10lld\n", label_width, "weighted avg", m->weighted_precision,
            m->weighted_recall, m->weighted_f1, (long long)total);
}

void tr_log_progress(FILE *f, int64_t epoch, int64_t epochs, int64_t done, int64_t total, double loss)
{
    const int width = 30;
    const int fill = total > 0 ? (int)(width * done / total) : width;
    fprintf(f, "\repoch %lld/%lld [", (long long)epoch, (long long)epochs);
    for (int i = 0; i < width; i++)
        fputc(i < fill ? '=' : (i == fill ? '>' : ' '), f);
    fprintf(f, "] %3d%%  loss %.5f ", total > 0 ? (int)(100 * done / total) : 100, loss);
    fflush(f);
}

void tr_log_progress_end(FILE *f)
{
    fprintf(f, "\r%*s\r", 79, "");
    fflush(f);
}
