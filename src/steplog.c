/*
 * steplog.c: the per-step log (steplog.h): steps.csv and steps.h5, written from one column
 * list so both carry the same numbers.
 */
#include "trainer/steplog.h"

#include "trainer/files.h"
#include "trainer/h5io.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const tr_step_log_columns[] = {"step", "epoch", "loss", "running_loss", "grad_norm", "lr", NULL};
enum { N_COLS = 6 };

struct tr_step_log {
    char csv_path[TR_PATH_MAX + 32], h5_path[TR_PATH_MAX + 32];
    FILE *csv;
    hid_t file;
    hid_t dset[N_COLS];
    int64_t rows;
};

static void row_values(const tr_step_row *r, double v[N_COLS])
{
    const double values[N_COLS] = {r->step, r->epoch, r->loss, r->running_loss, r->grad_norm, r->lr};
    memcpy(v, values, sizeof values);
}

/* The rows of an earlier steps.csv up to step `through` (none when it cannot be read). */
static double *read_kept(const char *path, int64_t through, int64_t *n)
{
    *n = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char line[1024];
    double *rows = NULL;
    int64_t cap = 0;
    if (fgets(line, sizeof line, f)) /* the header */
        while (fgets(line, sizeof line, f)) {
            double v[N_COLS];
            char *p = line, *end;
            int k = 0;
            for (; k < N_COLS; k++, p = end + 1) {
                v[k] = strtod(p, &end);
                if (end == p || (*end != ',' && k < N_COLS - 1))
                    break;
            }
            if (k < N_COLS || v[0] > (double)through)
                break; /* a torn last line, or the abandoned continuation */
            if (*n == cap) {
                cap = cap ? 2 * cap : 256;
                double *nr = realloc(rows, (size_t)(cap * N_COLS) * sizeof *nr);
                if (!nr)
                    break;
                rows = nr;
            }
            memcpy(rows + *n * N_COLS, v, sizeof v);
            (*n)++;
        }
    fclose(f);
    return rows;
}

static void csv_row(FILE *f, const double *v)
{
    for (int k = 0; k < N_COLS; k++)
        fprintf(f, "%s%.10g", k ? "," : "", v[k]);
    fputc('\n', f);
}

/* steps.csv with the header and the kept rows, in place of any earlier one. */
static int write_csv(tr_step_log *l, const double *rows, int64_t n, tr_err *err)
{
    tr_atomic a;
    int rc = tr_atomic_begin(&a, l->csv_path, true, TR_EIO, err);
    if (rc)
        return rc;
    for (int k = 0; k < N_COLS; k++)
        fprintf(a.f, "%s%s", k ? "," : "", tr_step_log_columns[k]);
    fputc('\n', a.f);
    for (int64_t r = 0; r < n; r++)
        csv_row(a.f, rows + r * N_COLS);
    return tr_atomic_commit(&a, TR_EIO, err);
}

/* steps.h5 with the kept rows, in place of any earlier one. */
static int write_h5(tr_step_log *l, const double *rows, int64_t n, tr_err *err)
{
    tr_atomic a;
    int rc = tr_atomic_begin(&a, l->h5_path, false, TR_EIO, err);
    if (rc)
        return rc;
    tr_h5_quiet();
    hid_t f = H5Fcreate(a.tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t g = f >= 0 ? H5Gcreate2(f, "/steps", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) : -1;
    char why[200];
    rc = g < 0 ? tr_fail(err, TR_EIO, "%s: cannot create: %s", l->h5_path, tr_h5_why(why, sizeof why)) : 0;
    double *col = calloc((size_t)n + 1, sizeof *col);
    if (!rc && !col)
        rc = tr_fail(err, TR_ENOMEM, "out of memory");
    for (int k = 0; !rc && k < N_COLS; k++) {
        hsize_t dims[1] = {(hsize_t)n}, maxd[1] = {H5S_UNLIMITED}, chunk[1] = {256};
        hid_t space = H5Screate_simple(1, dims, maxd), dcpl = H5Pcreate(H5P_DATASET_CREATE);
        H5Pset_chunk(dcpl, 1, chunk);
        char name[64];
        snprintf(name, sizeof name, "/steps/%s", tr_step_log_columns[k]);
        hid_t d = H5Dcreate2(f, name, H5T_NATIVE_DOUBLE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
        for (int64_t r = 0; r < n; r++)
            col[r] = rows[r * N_COLS + k];
        if (d < 0 || (n > 0 && H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, col) < 0))
            rc = tr_fail(err, TR_EIO, "%s: cannot write %s: %s", l->h5_path, name, tr_h5_why(why, sizeof why));
        if (d >= 0)
            H5Dclose(d);
        H5Pclose(dcpl);
        H5Sclose(space);
    }
    free(col);
    if (g >= 0)
        H5Gclose(g);
    if (f >= 0 && rc)
        H5Fclose(f);
    else if (f >= 0)
        rc = tr_h5_finish(f, l->h5_path, err);
    if (rc) {
        tr_atomic_abort(&a);
        return rc;
    }
    return tr_atomic_commit(&a, TR_EIO, err);
}

bool tr_step_log_written_by_trainer(const char *path)
{
    const size_t n = strlen(path);
    if (n > 4 && !strcmp(path + n - 4, ".csv")) {
        char line[256], want[256] = "";
        for (int k = 0; k < N_COLS; k++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%s", k ? "," : "", tr_step_log_columns[k]);
        return tr_file_first_line(path, line, sizeof line) && !strcmp(line, want);
    }
    static const char *const root[] = {"steps", NULL};
    return tr_h5_root_check(path, root) != 0; /* one that does not open: a killed writer's */
}

int tr_step_log_open(tr_step_log **out, const char *dir, int64_t keep_through_step, tr_err *err)
{
    *out = NULL;
    tr_step_log *l = calloc(1, sizeof *l);
    if (!l)
        return tr_fail(err, TR_ENOMEM, "out of memory");
    l->file = -1;
    for (int k = 0; k < N_COLS; k++)
        l->dset[k] = -1;
    int rc = tr_path_format(l->csv_path, sizeof l->csv_path, TR_EIO, err, "%s/steps.csv", dir);
    if (!rc)
        rc = tr_path_format(l->h5_path, sizeof l->h5_path, TR_EIO, err, "%s/steps.h5", dir);
    int64_t n = 0;
    double *kept = !rc && keep_through_step >= 0 ? read_kept(l->csv_path, keep_through_step, &n) : NULL;
    if (!rc)
        rc = write_csv(l, kept, n, err);
    if (!rc)
        rc = write_h5(l, kept, n, err);
    free(kept);
    l->rows = n;
    if (!rc && !(l->csv = fopen(l->csv_path, "a")))
        rc = tr_fail(err, TR_EIO, "%s: cannot open: %s", l->csv_path, strerror(errno));
    if (!rc && (l->file = H5Fopen(l->h5_path, H5F_ACC_RDWR, H5P_DEFAULT)) < 0)
        rc = tr_fail(err, TR_EIO, "%s: cannot open", l->h5_path);
    for (int k = 0; !rc && k < N_COLS; k++) {
        char name[64];
        snprintf(name, sizeof name, "/steps/%s", tr_step_log_columns[k]);
        if ((l->dset[k] = H5Dopen2(l->file, name, H5P_DEFAULT)) < 0)
            rc = tr_fail(err, TR_EIO, "%s: cannot open %s", l->h5_path, name);
    }
    if (rc) {
        tr_step_log_close(l);
        return rc;
    }
    *out = l;
    return 0;
}

int tr_step_log_append(tr_step_log *l, const tr_step_row *row, tr_err *err)
{
    double v[N_COLS];
    row_values(row, v);
    csv_row(l->csv, v);
    if (ferror(l->csv) || fflush(l->csv) != 0)
        return tr_fail(err, TR_EIO, "%s: write failed: %s", l->csv_path, strerror(errno));
    const hsize_t at[1] = {(hsize_t)l->rows}, one[1] = {1}, size[1] = {(hsize_t)l->rows + 1};
    for (int k = 0; k < N_COLS; k++) {
        char why[200];
        if (H5Dset_extent(l->dset[k], size) < 0)
            return tr_fail(err, TR_EIO, "%s: cannot extend /steps: %s", l->h5_path, tr_h5_why(why, sizeof why));
        hid_t fs = H5Dget_space(l->dset[k]), ms = H5Screate_simple(1, one, NULL);
        H5Sselect_hyperslab(fs, H5S_SELECT_SET, at, NULL, one, NULL);
        const herr_t st = H5Dwrite(l->dset[k], H5T_NATIVE_DOUBLE, ms, fs, H5P_DEFAULT, &v[k]);
        if (st < 0)
            tr_h5_why(why, sizeof why);
        H5Sclose(ms);
        H5Sclose(fs);
        if (st < 0)
            return tr_fail(err, TR_EIO, "%s: write failed: %s", l->h5_path, why);
    }
    l->rows++;
    char why[200];
    if (H5Fflush(l->file, H5F_SCOPE_LOCAL) < 0)
        return tr_fail(err, TR_EIO, "%s: flush failed: %s", l->h5_path, tr_h5_why(why, sizeof why));
    return 0;
}

void tr_step_log_close(tr_step_log *l)
{
    if (!l)
        return;
    for (int k = 0; k < N_COLS; k++)
        if (l->dset[k] >= 0)
            H5Dclose(l->dset[k]);
    if (l->file >= 0)
        H5Fclose(l->file);
    if (l->csv)
        fclose(l->csv);
    free(l);
}
