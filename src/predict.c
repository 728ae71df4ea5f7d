/*
 * predict.c: reading prediction input, the forward pass in evaluation chunks spread over
 * the ranks, probabilities from the output layer, and writing CSV or HDF5 (temporary file
 * and rename).
 */
#include "trainer/predict.h"

#include "trainer/ckpt.h"
#include "trainer/csv.h"
#include "trainer/data.h"
#include "trainer/files.h"
#include "trainer/h5io.h"
#include "trainer/loss.h"
#include "trainer/model.h"
#include "trainer/sampler.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

static bool is_h5(const char *p) { return ends_with(p, ".h5") || ends_with(p, ".hdf5"); }

/* Features of every input row (N, F); the training run's column choice for CSV. */
static int read_input(tr_dataset *ds, const tr_config *c, const tr_predict_options *o, tr_err *err)
{
    if (is_h5(o->input)) {
        const char *name = o->features ? o->features : c->data.features_dset;
        hid_t f;
        int rc = tr_h5_open(&f, o->input, err);
        if (rc)
            return rc;
        int64_t rows, cols;
        rc = tr_h5_shape(f, o->input, name, &rows, &cols, NULL, err);
        if (!rc)
            rc = tr_dataset_alloc(ds, rows, cols, 0, err);
        if (!rc)
            rc = tr_h5_read_rows(f, o->input, name, 0, rows, cols, ds->X, err);
        tr_h5_close(f);
        return rc;
    }
    if (!ends_with(o->input, ".csv") && !ends_with(o->input, ".txt"))
        return tr_fail(err, TR_EUSAGE, "--input %s: expected a .h5, .hdf5 or .csv file", o->input);
    tr_csv_options co = {.delimiter = (char)tr_csv_delimiter(c->data.delimiter_name),
                         .header = c->data.header,
                         .target = c->data.target,
                         .columns = o->columns ? o->columns : c->data.columns,
                         .no_target = true};
    int64_t dropped;
    int rc = tr_csv_read(ds, o->input, &co, &dropped, err);
    const int64_t F = c->model.widths[0];
    if (!rc && ds->cols != F && !o->columns && c->data.header) {
        /* `trainer data gen`'s layout x0, x1, ..., y: take the x columns */
        char cols[4096];
        size_t u = 0;
        for (int64_t k = 0; k < F && u < sizeof cols - 24; k++)
            u += (size_t)snprintf(cols + u, sizeof cols - u, "%sx%lld", k ? "," : "", (long long)k);
        tr_dataset alt;
        co.columns = cols;
        tr_err ignore;
        if (u < sizeof cols - 24 && tr_csv_read(&alt, o->input, &co, &dropped, &ignore) == 0) {
            tr_dataset_free(ds);
            *ds = alt;
        }
    }
    return rc;
}

/* Output columns: class probabilities (+ class) or the network's outputs. */
typedef struct out_layout {
    int64_t width;    /* value columns */
    bool with_class;  /* + one class column */
} out_layout;

static void row_values(const tr_loss *L, const float *z, const float *a, float *v, int64_t *cls)
{
    const int64_t O = L->width;
    if (L->kind == TR_LOSS_CROSS_ENTROPY) { /* softmax of the logits */
        float mx = z[0];
        for (int64_t j = 1; j < O; j++)
            mx = z[j] > mx ? z[j] : mx;
        double sum = 0.0;
        for (int64_t j = 0; j < O; j++)
            sum += exp((double)z[j] - mx);
        for (int64_t j = 0; j < O; j++)
            v[j] = (float)(exp((double)z[j] - mx) / sum);
        *cls = tr_loss_predict_class(L, z);
    } else if (L->kind == TR_LOSS_BCE || L->kind == TR_LOSS_BCE_LOGITS) {
        for (int64_t j = 0; j < O; j++)
            v[j] = (float)(1.0 / (1.0 + exp(-(double)z[j])));
        *cls = tr_loss_predict_class(L, z);
    } else {
        memcpy(v, a, (size_t)O * sizeof *v);
        *cls = 0;
    }
}

static int write_csv(const char *path, const float *v, const int64_t *cls, int64_t n, const out_layout *lay,
                     const tr_loss *L, tr_err *err)
{
    tr_atomic a;
    int rc = tr_atomic_begin(&a, path, true, TR_EIO, err);
    if (rc)
        return rc;
    FILE *f = a.f;
    const bool cls_names = tr_loss_task(L) == TR_TASK_CLASSIFICATION;
    for (int64_t j = 0; j < lay->width; j++) {
        if (j)
            fputc(',', f);
        if (cls_names && L->kind != TR_LOSS_CROSS_ENTROPY && lay->width == 1)
            fputs("p1", f);
        else
            fprintf(f, "%s%lld", cls_names ? "p" : "y", (long long)j);
    }
    fputs(lay->with_class ? ",class\n" : "\n", f);
    for (int64_t r = 0; r < n; r++) {
        for (int64_t j = 0; j < lay->width; j++)
            fprintf(f, "%s%.9g", j ? "," : "", (double)v[r * lay->width + j]);
        if (lay->with_class)
            fprintf(f, ",%lld", (long long)cls[r]);
        fputc('\n', f);
    }
    return tr_atomic_commit(&a, TR_EIO, err);
}

static int write_h5(const char *path, const float *v, const int64_t *cls, int64_t n, const out_layout *lay,
                    tr_err *err)
{
    tr_atomic a;
    int rc = tr_atomic_begin(&a, path, false, TR_EIO, err);
    if (rc)
        return rc;
    tr_h5_quiet();
    hid_t f = H5Fcreate(a.tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) {
        tr_atomic_abort(&a);
        return tr_fail(err, TR_EIO, "--output %s: cannot create", path);
    }
    rc = tr_h5_write_f32(f, path, lay->with_class ? "/probabilities" : "/predictions", v, n, lay->width, err);
    if (!rc && lay->with_class)
        rc = tr_h5_write_i64(f, path, "/class", cls, n, err);
    if (H5Fclose(f) < 0 && !rc)
        rc = tr_fail(err, TR_EIO, "--output %s: write failed (disk full?)", path);
    if (rc) {
        tr_atomic_abort(&a);
        return rc;
    }
    return tr_atomic_commit(&a, TR_EIO, err);
}

/* The output header fields a prediction file has: p<k>, y<k>, class. */
static bool prediction_field(const char *f)
{
    if (!strcmp(f, "class"))
        return true;
    if ((f[0] != 'p' && f[0] != 'y') || !f[1])
        return false;
    for (const char *c = f + 1; *c; c++)
        if (*c < '0' || *c > '9')
            return false;
    return true;
}

static const char *const prediction_datasets[] = {"probabilities", "class", "predictions", NULL};
static const tr_output_kind prediction_file = {"trainer predict", prediction_datasets, prediction_field};

/* The command's files before anything is read: the checkpoint and the input are regular
 * files, and the output is neither of them nor any file but an earlier prediction. */
static int check_files(const tr_predict_options *o, tr_err *err)
{
    int rc = tr_input_check(o->checkpoint, "--checkpoint", TR_EIO, err);
    if (!rc)
        rc = tr_input_check(o->input, "--input", TR_EDATA, err);
    const char *const reads[] = {o->checkpoint, o->input};
    if (!rc)
        rc = tr_output_check(o->output, "--output", reads, 2, &prediction_file, TR_EUSAGE, err);
    return rc;
}

int tr_predict(tr_dist *d, const tr_predict_options *o, int64_t *rows_out, tr_err *err)
{
    tr_config c;
    tr_model m;
    tr_dataset in = {0};
    tr_scaler sc = {0};
    memset(&c, 0, sizeof c);
    memset(&m, 0, sizeof m);
    float *vals = NULL;
    int64_t *cls = NULL;
    int rc = tr_dist_agree(d, d->rank == 0 ? check_files(o, err) : 0);
    if (!rc)
        rc = tr_ckpt_read_config(o->checkpoint, &c, err);
    if (!rc)
        rc = tr_model_init(&m, &c.model, c.train.eval_batch, err);
    if (!rc) {
        sc.cols = c.model.widths[0];
        sc.center = calloc((size_t)sc.cols, sizeof *sc.center);
        sc.scale = calloc((size_t)sc.cols, sizeof *sc.scale);
        for (int64_t k = 0; sc.scale && k < sc.cols; k++)
            sc.scale[k] = 1.0f;
        if (!sc.center || !sc.scale)
            rc = tr_fail(err, TR_ENOMEM, "out of memory");
    }
    if (!rc) {
        tr_ckpt_parts parts = {.scaler = &sc};
        rc = tr_ckpt_load(o->checkpoint, &c, &m, &parts, err);
    }
    if (!rc)
        rc = read_input(&in, &c, o, err);
    if (!rc && in.cols != c.model.widths[0])
        rc = tr_fail(err, TR_EDATA, "%s: %lld feature columns, the model takes %lld (choose them with --columns)",
                     o->input, (long long)in.cols, (long long)c.model.widths[0]);
    int64_t bad_row = -1;
    for (int64_t i = 0; !rc && i < in.rows * in.cols && bad_row < 0; i++)
        if (!isfinite(in.X[i]))
            bad_row = i / in.cols;
    if (bad_row >= 0)
        rc = tr_fail(err, TR_EDATA, "%s: row %lld (0-based) has a non-finite feature", o->input, (long long)bad_row);
    rc = tr_dist_agree(d, rc);
    const int L = c.model.n_layers;
    /* (L is 0 when the checkpoint could not be read: rc is set then and nothing below runs) */
    const tr_loss loss = {.kind = c.train.loss, .width = c.model.widths[L],
                          .out_act = L > 0 ? c.model.act[L - 1] : TR_ACT_IDENTITY, .act_params = c.model.act_params};
    const bool classify = !rc && tr_loss_task(&loss) == TR_TASK_CLASSIFICATION;
    const out_layout lay = {.width = loss.width, .with_class = classify};
    if (!rc) {
        tr_scaler_apply(&sc, in.X, in.rows);
        vals = calloc((size_t)(in.rows * lay.width) + 1, sizeof *vals);
        cls = calloc((size_t)in.rows + 1, sizeof *cls);
        if (!vals || !cls)
            rc = tr_fail(err, TR_ENOMEM, "out of memory for %lld predictions", (long long)in.rows);
    }
    rc = tr_dist_agree(d, rc);
    if (!rc) {
        const int64_t E = c.train.eval_batch;
        int64_t b, e;
        tr_chunk_share(in.rows, E, d->rank, d->size, &b, &e);
        for (int64_t r0 = b; r0 < e; r0 += E) {
            const int64_t n = e - r0 < E ? e - r0 : E;
            tr_model_forward(&m, in.X + r0 * in.cols, n, NULL);
            const float *Z = m.layer[L - 1].Z, *A = m.layer[L - 1].A;
            for (int64_t r = 0; r < n; r++)
                row_values(&loss, Z + r * loss.width, A + r * loss.width, vals + (r0 + r) * lay.width, cls + r0 + r);
        }
        rc = tr_dist_allgather_f32(d, vals, b * lay.width, (e - b) * lay.width, err);
        double *cd = rc ? NULL : calloc((size_t)in.rows + 1, sizeof *cd); /* classes travel as doubles */
        if (!rc && !cd)
            rc = tr_fail(err, TR_ENOMEM, "out of memory");
        for (int64_t r = b; cd && r < e; r++)
            cd[r] = (double)cls[r];
        if (!rc)
            rc = tr_dist_allgather_f64(d, cd, b, e - b, err);
        for (int64_t r = 0; cd && r < in.rows; r++)
            cls[r] = (int64_t)cd[r];
        free(cd);
    }
    if (!rc && d->rank == 0)
        rc = is_h5(o->output) ? write_h5(o->output, vals, cls, in.rows, &lay, err)
                              : ends_with(o->output, ".csv") ? write_csv(o->output, vals, cls, in.rows, &lay, &loss, err)
                                                             : tr_fail(err, TR_EUSAGE,
                                                                       "--output %s: expected .csv, .h5 or .hdf5",
                                                                       o->output);
    rc = tr_dist_agree(d, rc);
    if (rows_out)
        *rows_out = in.rows;
    free(vals);
    free(cls);
    tr_scaler_free(&sc);
    tr_dataset_free(&in);
    tr_model_free(&m);
    tr_config_free(&c);
    return rc;
}
