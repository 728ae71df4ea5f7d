/*
 * predict.c: prediction in a stream of chunks: each chunk's rows are read (HDF5: only the
 * rows a rank predicts; CSV: from the whole file, read once), spread over the ranks in
 * evaluation batches, turned into probabilities or outputs, gathered and appended by rank 0
 * to the output (CSV or HDF5, under a temporary name until complete). Memory does not grow
 * with the input's size for HDF5 input.
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

/* The prediction input: HDF5 read a chunk of rows at a time, CSV read once in full. */
typedef struct pred_in {
    tr_dataset all; /* CSV: every row */
    hid_t h5;       /* HDF5: open file, or -1 */
    const char *name;
    int64_t rows, cols;
} pred_in;

/* An input that still holds the training run's label column (by its `target` name, or the
 * last column when the run's target was the last column): read without that column, and its
 * words must be classes of the model (an unseen label is an error naming its row). *done
 * tells whether it was read so (else the input has no such column and ds is untouched). */
static int read_labeled(tr_dataset *ds, const tr_config *c, const char *columns, bool *done, tr_err *err)
{
    *done = false;
    tr_csv_options co = {.delimiter = (char)tr_csv_delimiter(c->data.delimiter_name), .header = true,
                         .target = c->data.target, .columns = columns};
    tr_dataset labeled;
    int64_t dropped;
    tr_err ignore;
    if (tr_csv_read(&labeled, ds->source, &co, &dropped, &ignore))
        return 0;
    if (labeled.cols != c->model.widths[0] || !labeled.class_names) { /* not the label column */
        tr_dataset_free(&labeled);
        return 0;
    }
    int rc = tr_data_renumber_classes(&labeled, c->data.class_names, err);
    if (rc) {
        tr_dataset_free(&labeled);
        return rc;
    }
    *ds = labeled;
    *done = true;
    return 0;
}

/* The input's feature columns: --columns; else the training run's [data] columns; else, in a
 * file with a header, the columns the model was trained on by name (`trained`, from the
 * checkpoint: another order or a missing column is never read as the model's inputs). */
static int read_csv(tr_dataset *ds, const tr_config *c, const tr_predict_options *o, const char *trained,
                    tr_err *err)
{
    const bool by_training_names = !o->columns && !c->data.columns[0] && trained && c->data.header;
    tr_csv_options co = {.delimiter = (char)tr_csv_delimiter(c->data.delimiter_name),
                         .header = c->data.header,
                         .target = c->data.target,
                         .columns = o->columns ? o->columns : by_training_names ? trained : c->data.columns,
                         .columns_key = by_training_names ? "the columns the model was trained on" : NULL,
                         .no_target = true};
    int64_t dropped;
    if (c->data.class_names[0] && c->data.header && !o->columns) {
        snprintf(ds->source, sizeof ds->source, "%s", o->input);
        bool done;
        const int rc = read_labeled(ds, c, co.columns, &done, err);
        if (rc || done)
            return rc;
    }
    int rc = tr_csv_read(ds, o->input, &co, &dropped, err);
    const int64_t F = c->model.widths[0];
    if (!rc && ds->cols != F && !o->columns && !by_training_names && c->data.header) {
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

static int in_open(pred_in *in, const tr_config *c, const tr_predict_options *o, const char *trained, tr_err *err)
{
    memset(in, 0, sizeof *in);
    in->h5 = -1;
    if (is_h5(o->input)) {
        in->name = o->features ? o->features : c->data.features_dset;
        int rc = tr_h5_open(&in->h5, o->input, err);
        if (!rc)
            rc = tr_h5_shape(in->h5, o->input, in->name, &in->rows, &in->cols, NULL, err);
        /* a file that names its columns must name those the model was trained on, in order */
        if (!rc && trained && H5Aexists_by_name(in->h5, in->name, "columns", H5P_DEFAULT) > 0) {
            const size_t len = strlen(trained) + 2;
            char *names = calloc(len + 1, 1);
            tr_err ignore;
            if (names && !tr_h5_get_attr_str(in->h5, o->input, in->name, "columns", names, len, &ignore) &&
                strcmp(names, trained))
                rc = tr_fail(err, TR_EDATA, "%s: the columns of %s are %.300s; the model was trained on %.300s (another "
                                            "order or other columns would be read as its inputs)", o->input, in->name,
                             names, trained);
            else if (names && strcmp(names, trained)) /* longer than the trained list: not the same */
                rc = tr_fail(err, TR_EDATA, "%s: the columns of %s are not those the model was trained on (%.300s)",
                             o->input, in->name, trained);
            free(names);
        }
        return rc;
    }
    if (!ends_with(o->input, ".csv") && !ends_with(o->input, ".txt"))
        return tr_fail(err, TR_EUSAGE, "--input %s: expected a .h5, .hdf5 or .csv file", o->input);
    int rc = read_csv(&in->all, c, o, trained, err);
    in->rows = in->all.rows;
    in->cols = in->all.cols;
    return rc;
}

/* Rows [r0, r1) into out (r1 - r0 rows of in->cols). */
static int in_rows(pred_in *in, const char *path, int64_t r0, int64_t r1, float *out, tr_err *err)
{
    if (r1 <= r0)
        return 0;
    if (in->h5 >= 0)
        return tr_h5_read_rows(in->h5, path, in->name, r0, r1, in->cols, out, err);
    memcpy(out, in->all.X + r0 * in->cols, (size_t)((r1 - r0) * in->cols) * sizeof *out);
    return 0;
}

static void in_close(pred_in *in)
{
    if (in->h5 >= 0)
        tr_h5_close(in->h5);
    in->h5 = -1;
    tr_dataset_free(&in->all);
}

/* Output columns: class probabilities (+ class) or the network's outputs. */
typedef struct out_layout {
    int64_t width;    /* value columns */
    bool activations; /* a layer's activations (a<k>, /activations) */
    bool with_class;  /* + one class column */
    const char *class_names; /* + a label column (CSV) / a class_names attribute (HDF5), or NULL */
} out_layout;

static void row_values(const tr_loss *L, const float *z, const float *a, float *v, int64_t *cls)
{
    if (tr_loss_task(L) == TR_TASK_CLASSIFICATION) {
        tr_loss_probabilities(L, z, a, v);
        *cls = tr_loss_predict_class(L, z, a);
    } else {
        memcpy(v, a, (size_t)L->width * sizeof *v);
        *cls = 0;
    }
}

/* The output, written by rank 0 a chunk at a time under a temporary name. */
typedef struct pred_out {
    tr_atomic a;
    hid_t h5; /* HDF5 output, or -1 (CSV: a.f) */
    bool begun;
} pred_out;

static const char *values_name(const out_layout *lay)
{
    return lay->activations ? "/activations" : lay->with_class ? "/probabilities" : "/predictions";
}

static int out_begin(pred_out *w, const char *path, int64_t rows, const out_layout *lay, const tr_loss *L, tr_err *err)
{
    w->h5 = -1;
    const bool h5 = is_h5(path);
    if (!h5 && !ends_with(path, ".csv"))
        return tr_fail(err, TR_EUSAGE, "--output %s: expected .csv, .h5 or .hdf5", path);
    int rc = tr_atomic_begin(&w->a, path, !h5, TR_EIO, err);
    if (rc)
        return rc;
    w->begun = true;
    if (h5) {
        tr_h5_quiet();
        w->h5 = H5Fcreate(w->a.tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
        char why[200];
        if (w->h5 < 0)
            return tr_fail(err, TR_EIO, "--output %s: cannot create: %s", path, tr_h5_why(why, sizeof why));
        rc = tr_h5_create_f32(w->h5, path, values_name(lay), rows, lay->width, err);
        if (!rc && lay->with_class)
            rc = tr_h5_create_i64(w->h5, path, "/class", rows, err);
        if (!rc && lay->class_names)
            rc = tr_h5_attr_str(w->h5, path, "/class", "class_names", lay->class_names, err);
        return rc;
    }
    FILE *f = w->a.f;
    const bool cls_names = tr_loss_task(L) == TR_TASK_CLASSIFICATION;
    for (int64_t j = 0; j < lay->width; j++) {
        if (j)
            fputc(',', f);
        if (lay->activations)
            fprintf(f, "a%lld", (long long)j);
        else if (cls_names && !tr_loss_takes_class_index(L) && lay->width == 1)
            fputs("p1", f);
        else
            fprintf(f, "%s%lld", cls_names ? "p" : "y", (long long)j);
    }
    fputs(lay->with_class ? (lay->class_names ? ",class,label\n" : ",class\n") : "\n", f);
    return 0;
}

/* Appends rows [r0, r0 + n) of the output. */
static int out_rows(pred_out *w, const char *path, int64_t r0, const float *v, const int64_t *cls, int64_t n,
                    const out_layout *lay, tr_err *err)
{
    if (w->h5 >= 0) {
        int rc = tr_h5_write_rows_f32(w->h5, path, values_name(lay), r0, n, lay->width, v, err);
        if (!rc && lay->with_class)
            rc = tr_h5_write_rows_i64(w->h5, path, "/class", r0, n, cls, err);
        return rc;
    }
    FILE *f = w->a.f;
    for (int64_t r = 0; r < n; r++) {
        for (int64_t j = 0; j < lay->width; j++)
            fprintf(f, "%s%.9g", j ? "," : "", (double)v[r * lay->width + j]);
        if (lay->with_class)
            fprintf(f, ",%lld", (long long)cls[r]);
        if (lay->class_names) {
            char name[512];
            fprintf(f, ",%s", tr_class_name(lay->class_names, cls[r], name, sizeof name));
        }
        fputc('\n', f);
    }
    return ferror(f) ? tr_fail(err, TR_EIO, "--output %s: write failed: %s", path, strerror(errno)) : 0;
}

/* Completes the output when rc is 0, else removes the temporary file. */
static int out_end(pred_out *w, const char *path, int rc, tr_err *err)
{
    if (!w->begun)
        return rc;
    w->begun = false;
    if (w->h5 >= 0 && rc)
        H5Fclose(w->h5);
    else if (w->h5 >= 0)
        rc = tr_h5_finish(w->h5, path, err);
    w->h5 = -1;
    if (rc) {
        tr_atomic_abort(&w->a);
        return rc;
    }
    return tr_atomic_commit(&w->a, TR_EIO, err);
}

/* The output header fields a prediction file has: p<k>, y<k>, class. */
static bool prediction_field(const char *f)
{
    if (!strcmp(f, "class") || !strcmp(f, "label"))
        return true;
    if ((f[0] != 'p' && f[0] != 'y' && f[0] != 'a') || !f[1])
        return false;
    for (const char *c = f + 1; *c; c++)
        if (*c < '0' || *c > '9')
            return false;
    return true;
}

static const char *const prediction_datasets[] = {"probabilities", "class", "predictions", "activations", NULL};
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

/* The products in the engine and precision the checkpoint's run trained with (its /config;
 * "auto" there is a checkpoint from before they were recorded: OpenBLAS fp32). Where this CPU
 * cannot compute in that precision, fp32 with a warning: the predictions are then the
 * model's exact fp32 ones rather than its bf16 ones. */
static int use_training_gemm(tr_model *m, const tr_config *c, const tr_dist *d, tr_err *err)
{
    tr_gemm_engine e = c->train.gemm == TR_GEMM_AUTO ? tr_gemm_fixed_choice(c->train.precision) : c->train.gemm;
    tr_precision p = c->train.precision;
    char why[256];
    if (!tr_gemm_supported(e, p, why, sizeof why)) {
        if (d->rank == 0)
            fprintf(stderr, "trainer: warning: the model trained with gemm = %s, precision = %s, but %s: predicting "
                            "in fp32\n", tr_name_of(tr_gemm_engine_names, e), tr_name_of(tr_precision_names, p), why);
        p = TR_PRECISION_FP32;
    }
    return tr_model_set_gemm(m, e, p, err);
}

/* Rows per chunk for every rank together: evaluation batches, a few per rank. */
enum { BATCHES_PER_RANK = 8 };

/* One prediction: the model and its scaling from the checkpoint, the input and output, and
 * the buffers of one chunk. */
typedef struct prediction {
    tr_config c;
    tr_model m;
    tr_scaler sc;
    pred_in in;
    pred_out out;
    char *trained; /* the feature columns the model was trained on, when the checkpoint names them */
    tr_loss loss;
    out_layout lay;
    bool acts;     /* --layer: activations, not predictions */
    int64_t E, F, per_rank, chunk;
    float *x, *vals;
    int64_t *cls;
    double *cd;    /* classes travel as doubles */
} prediction;

/* The checkpoint's configuration, model (in the training run's engine) and scaling; the
 * input opened and checked against the model's width. */
static int load_model(prediction *p, tr_dist *d, const tr_predict_options *o, tr_err *err)
{
    tr_scaler *sc = &p->sc;
    int rc = tr_dist_agree(d, d->rank == 0 ? check_files(o, err) : 0);
    if (!rc)
        rc = tr_ckpt_read_config(o->checkpoint, &p->c, err);
    if (!rc)
        rc = tr_model_init(&p->m, &p->c.model, p->c.train.eval_batch, err);
    if (!rc)
        rc = use_training_gemm(&p->m, &p->c, d, err);
    if (!rc) {
        sc->cols = p->c.model.widths[0];
        sc->center = calloc((size_t)sc->cols, sizeof *sc->center);
        sc->scale = calloc((size_t)sc->cols, sizeof *sc->scale);
        for (int64_t k = 0; sc->scale && k < sc->cols; k++)
            sc->scale[k] = 1.0f;
        if (!sc->center || !sc->scale)
            rc = tr_fail(err, TR_ENOMEM, "out of memory");
    }
    if (!rc) {
        tr_ckpt_parts parts = {.scaler = sc, .ema_weights = o->ema};
        rc = tr_ckpt_load(o->checkpoint, &p->c, &p->m, &parts, err);
    }
    if (!rc)
        rc = tr_ckpt_read_columns(o->checkpoint, &p->trained, err);
    if (!rc)
        rc = in_open(&p->in, &p->c, o, p->trained, err);
    if (!rc && p->in.cols != p->c.model.widths[0])
        rc = tr_fail(err, TR_EDATA, "%s: %lld feature columns, the model takes %lld (choose them with --columns)",
                     o->input, (long long)p->in.cols, (long long)p->c.model.widths[0]);
    return tr_dist_agree(d, rc);
}

/* What the output holds (predictions with classes, values, or a layer's activations) and the
 * buffers of one chunk: BATCHES_PER_RANK evaluation batches per rank. */
static int plan_output(prediction *p, tr_dist *d, const tr_predict_options *o, tr_err *err)
{
    const tr_config *c = &p->c;
    const int L = c->model.n_layers;
    p->loss = (tr_loss){.kind = c->train.loss, .width = c->model.widths[L], .out_act = c->model.act[L - 1],
                        .act_params = c->model.act_params};
    if (o->layer >= L)
        return tr_fail(err, TR_EUSAGE, "--layer %d: the model has weight layers 0 to %d", o->layer, L - 1);
    p->acts = o->layer >= 0;
    const bool classify = !p->acts && tr_loss_task(&p->loss) == TR_TASK_CLASSIFICATION;
    p->lay = (out_layout){.width = p->acts ? c->model.widths[o->layer + 1] : p->loss.width,
                          .activations = p->acts,
                          .with_class = classify,
                          .class_names = classify && c->data.class_names[0] ? c->data.class_names : NULL};
    p->E = c->train.eval_batch;
    p->F = p->in.cols;
    p->per_rank = p->E * BATCHES_PER_RANK;
    p->chunk = p->per_rank * d->size;
    p->x = calloc((size_t)(p->per_rank * p->F) + 1, sizeof *p->x);
    p->vals = calloc((size_t)(p->chunk * p->lay.width) + 1, sizeof *p->vals);
    p->cls = calloc((size_t)p->chunk + 1, sizeof *p->cls);
    p->cd = calloc((size_t)p->chunk + 1, sizeof *p->cd);
    if (!p->x || !p->vals || !p->cls || !p->cd)
        return tr_fail(err, TR_ENOMEM, "out of memory for a chunk of %lld predictions", (long long)p->chunk);
    return 0;
}

/* The chunk of n rows from row c0: each rank reads and predicts its share, every rank gets
 * every row's results, and rank 0 appends them to the output. A non-finite feature is an
 * error naming the first such row, on every rank. */
static int predict_chunk(prediction *p, tr_dist *d, const tr_predict_options *o, int64_t c0, int64_t n, tr_err *err)
{
    const int64_t E = p->E, F = p->F, W = p->lay.width;
    const int L = p->c.model.n_layers;
    int64_t b, e; /* this rank's rows of the chunk */
    tr_chunk_share(n, E, d->rank, d->size, &b, &e);
    int rc = in_rows(&p->in, o->input, c0 + b, c0 + e, p->x, err);
    double first_bad = -INFINITY; /* minus the first row with a non-finite feature, over all ranks */
    for (int64_t i = 0; !rc && i < (e - b) * F; i++)
        if (!isfinite(p->x[i])) {
            first_bad = -(double)(c0 + b + i / F);
            break;
        }
    rc = tr_dist_agree(d, rc);
    if (!rc) /* every rank names the row, rank 0 (which reports) included */
        rc = tr_dist_max_f64(d, &first_bad, 1, err);
    if (!rc && first_bad > -INFINITY)
        rc = tr_fail(err, TR_EDATA, "%s: row %lld (0-based) has a non-finite feature", o->input,
                     (long long)-first_bad);
    if (rc)
        return rc;
    tr_scaler_apply(&p->sc, p->x, e - b);
    tr_model_hold_weights(&p->m, true); /* the loaded parameters: bf16 rounds them once */
    for (int64_t r0 = b; r0 < e; r0 += E) {
        const int64_t k = e - r0 < E ? e - r0 : E;
        tr_model_forward(&p->m, p->x + (r0 - b) * F, k, NULL);
        const float *Z = p->m.layer[L - 1].Z, *A = p->m.layer[L - 1].A;
        if (p->acts) /* the layer's output as the next layer reads it (evaluation: no dropout) */
            memcpy(p->vals + r0 * W, p->m.layer[o->layer].output, (size_t)(k * W) * sizeof *p->vals);
        for (int64_t r = 0; !p->acts && r < k; r++)
            row_values(&p->loss, Z + r * p->loss.width, A + r * p->loss.width, p->vals + (r0 + r) * W,
                       p->cls + r0 + r);
    }
    tr_model_hold_weights(&p->m, false);
    for (int64_t r = b; r < e; r++)
        p->cd[r] = (double)p->cls[r];
    rc = tr_dist_allgather_f32(d, p->vals, b * W, (e - b) * W, err);
    if (!rc)
        rc = tr_dist_allgather_f64(d, p->cd, b, e - b, err);
    for (int64_t r = 0; !rc && r < n; r++)
        p->cls[r] = (int64_t)p->cd[r];
    if (!rc && d->rank == 0)
        rc = out_rows(&p->out, o->output, c0, p->vals, p->cls, n, &p->lay, err);
    return tr_dist_agree(d, rc);
}

int tr_predict(tr_dist *d, const tr_predict_options *o, int64_t *rows_out, tr_err *err)
{
    prediction p = {.in = {.h5 = -1}, .out = {.h5 = -1}};
    int rc = load_model(&p, d, o, err);
    if (!rc)
        rc = tr_dist_agree(d, plan_output(&p, d, o, err));
    if (!rc && d->rank == 0)
        rc = out_begin(&p.out, o->output, p.in.rows, &p.lay, &p.loss, err);
    rc = tr_dist_agree(d, rc);
    for (int64_t c0 = 0; !rc && c0 < p.in.rows; c0 += p.chunk)
        rc = predict_chunk(&p, d, o, c0, p.in.rows - c0 < p.chunk ? p.in.rows - c0 : p.chunk, err);
    if (d->rank == 0)
        rc = out_end(&p.out, o->output, rc, err);
    rc = tr_dist_agree(d, rc);
    if (rows_out)
        *rows_out = p.in.rows;
    free(p.x);
    free(p.vals);
    free(p.cls);
    free(p.cd);
    free(p.trained);
    tr_scaler_free(&p.sc);
    in_close(&p.in);
    tr_model_free(&p.m);
    tr_config_free(&p.c);
    return rc;
}
