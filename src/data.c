/*
 * data.c: loading the configured data, the non-finite policy, splits, scaling, and the fit
 * checks against the model and loss.
 */
#include "trainer/data.h"

#include "trainer/dist.h"

#include "trainer/csv.h"
#include "trainer/generate.h"
#include "trainer/h5io.h"
#include "trainer/idx.h"
#include "trainer/mem.h"
#include "trainer/rng.h"
#include "trainer/sampler.h"
#include "trainer/sklearn_data.h"

#include <math.h>
#include <zlib.h>
#include <stdlib.h>
#include <string.h>

/* The features of a contiguous float32 dataset used where they lie: a view (its X set once
 * the file is mapped) with the targets read. Returns 1 with the byte offset of the features
 * in *offset, 0 when the layout does not allow it (the caller reads instead), or an error. */
static int hdf5_view(tr_dataset *ds, hid_t f, const char *path, const char *features, const char *targets,
                     int64_t rows, int64_t tcols, int64_t *offset, tr_err *err)
{
    int64_t xr, xc;
    if (!tr_h5_contiguous_f32(f, features, offset, &xr, &xc) || xr != rows)
        return 0;
    int rc = tr_dataset_view(ds, NULL, xr, xc, tcols, err);
    if (!rc) {
        snprintf(ds->source, sizeof ds->source, "%s", path);
        rc = tr_h5_read_rows(f, path, targets, 0, rows, tcols, ds->y, err);
    }
    if (rc) {
        tr_dataset_free(ds);
        return rc;
    }
    return 1;
}

int tr_hdf5_read(tr_dataset *ds, const char *path, const char *features, const char *targets, int64_t row_begin,
                 int64_t row_end, tr_err *err)
{
    return tr_hdf5_load(ds, NULL, path, features, targets, row_begin, row_end, err);
}

/* The feature and class names `trainer data convert` and `data gen` store (/X columns,
 * /y class_names) into the set, when the file has them. */
static void read_names(tr_dataset *ds, hid_t f, const char *path, const char *features, const char *targets)
{
    struct { const char *obj, *attr; char **into; } names[2] = {{features, "columns", &ds->column_names},
                                                              {targets, "class_names", &ds->class_names}};
    for (int i = 0; i < 2; i++) {
        char buf[8192];
        tr_err ignore;
        if (H5Aexists_by_name(f, names[i].obj, names[i].attr, H5P_DEFAULT) > 0 &&
            !tr_h5_get_attr_str(f, path, names[i].obj, names[i].attr, buf, sizeof buf, &ignore) && buf[0])
            *names[i].into = strdup(buf);
    }
}

int tr_hdf5_load(tr_dataset *ds, tr_mapping *map, const char *path, const char *features, const char *targets,
                 int64_t row_begin, int64_t row_end, tr_err *err)
{
    memset(ds, 0, sizeof *ds);
    hid_t f;
    int rc = tr_h5_open(&f, path, err);
    if (rc)
        return rc;
    int64_t xr, xc, yr, yc;
    rc = tr_h5_shape(f, path, features, &xr, &xc, NULL, err);
    if (!rc)
        rc = tr_h5_shape(f, path, targets, &yr, &yc, NULL, err);
    if (!rc && xr != yr)
        rc = tr_fail(err, TR_EDATA, "%s: %s has %lld rows but %s has %lld", path, features, (long long)xr, targets,
                     (long long)yr);
    if (!rc && xr == 0)
        rc = tr_fail(err, TR_EDATA, "%s: %s has no rows", path, features);
    if (!rc && map && row_begin == 0 && row_end < 0) {
        int64_t offset;
        const int view = hdf5_view(ds, f, path, features, targets, xr, yc, &offset, err);
        if (view > 0)
            read_names(ds, f, path, features, targets);
        if (view) {
            tr_h5_close(f); /* first: its crash guard must not outlive the mapping's SIGBUS guard */
            if (view < 0)
                return view;
            rc = tr_map_file(map, path, offset, (size_t)(ds->rows * ds->cols) * sizeof(float), err);
            if (rc)
                tr_dataset_free(ds);
            else
                ds->X = (float *)map->data;
            return rc;
        }
    }
    if (!rc) {
        if (row_end < 0)
            row_end = xr;
        if (row_begin < 0 || row_end > xr || row_begin > row_end)
            rc = tr_fail(err, TR_EDATA, "%s: rows [%lld, %lld) of %lld requested", path, (long long)row_begin,
                         (long long)row_end, (long long)xr);
        if (!rc)
            rc = tr_h5_check_stored(f, path, features, err);
        if (!rc)
            rc = tr_h5_check_stored(f, path, targets, err);
        if (!rc)
            rc = tr_dataset_alloc(ds, row_end - row_begin, xc, yc, err);
        for (int64_t r = 0; !rc && r < ds->rows; r++)
            ds->origin[r] = row_begin + r;
        if (!rc)
            snprintf(ds->source, sizeof ds->source, "%s", path);
    }
    if (!rc)
        rc = tr_h5_read_rows(f, path, features, row_begin, row_end, xc, ds->X, err);
    if (!rc)
        rc = tr_h5_read_rows(f, path, targets, row_begin, row_end, yc, ds->y, err);
    if (!rc)
        read_names(ds, f, path, features, targets);
    tr_h5_close(f);
    if (rc)
        tr_dataset_free(ds);
    return rc;
}

void tr_split_indices(int64_t n, double fraction, uint64_t split_seed, uint32_t stream, bool shuffle, int64_t *kept,
                      int64_t *n_kept, int64_t *held, int64_t *n_held)
{
    int64_t nh = fraction > 0.0 ? (int64_t)ceil(fraction * (double)n - 1e-9) : 0;
    if (nh > n)
        nh = n;
    if (shuffle && nh > 0) { /* the permutation's first nh rows are held out */
        int64_t *perm = kept;
        tr_rng_permutation(perm, n, tr_rng_make(split_seed), TR_RNG_SPLIT, stream);
        memset(held, 0, (size_t)n * sizeof *held); /* held[] as a flag per row first */
        for (int64_t i = 0; i < nh; i++)
            held[perm[i]] = 1;
    } else { /* unshuffled: held out = the last rows */
        for (int64_t i = 0; i < n; i++)
            held[i] = i >= n - nh;
    }
    /* each set keeps the file's row order: a set scattered over a mapped file is then read
     * front to back (an evaluation of a test set larger than memory streams, not thrashes) */
    int64_t a = 0, b = 0;
    for (int64_t i = 0; i < n; i++) {
        if (held[i])
            held[b++] = i; /* b <= i: the flags not yet read lie ahead */
        else
            kept[a++] = i;
    }
    *n_held = nh;
    *n_kept = n - nh;
}

/* A row's place in the stratified order: its class, then its position in the permutation. */
typedef struct fold_key {
    float label;
    int64_t rank, row;
} fold_key;

static int by_class_then_rank(const void *a, const void *b)
{
    const fold_key *x = a, *y = b;
    if (x->label != y->label)
        return x->label < y->label ? -1 : 1;
    return (x->rank > y->rank) - (x->rank < y->rank);
}

int tr_fold_assign(int64_t n, const float *labels, int64_t stride, int64_t folds, uint64_t split_seed, bool shuffle,
                   int32_t *fold_of, tr_err *err)
{
    int64_t *perm = malloc((size_t)n * sizeof *perm + 1);
    fold_key *keys = labels ? malloc((size_t)n * sizeof *keys + 1) : NULL;
    if (!perm || (labels && !keys)) {
        free(perm);
        free(keys);
        return tr_fail(err, TR_ENOMEM, "out of memory");
    }
    if (shuffle) {
        tr_rng_permutation(perm, n, tr_rng_make(split_seed), TR_RNG_SPLIT, 2);
    } else {
        for (int64_t i = 0; i < n; i++)
            perm[i] = i;
    }
    if (!labels) { /* dealt in turn, or unshuffled in consecutive blocks (KFold(shuffle = False)) */
        for (int64_t i = 0; i < n; i++)
            fold_of[perm[i]] = (int32_t)(shuffle ? i % folds : i * folds / n);
    } else {
        for (int64_t i = 0; i < n; i++)
            keys[i] = (fold_key){.label = labels[perm[i] * stride], .rank = i, .row = perm[i]};
        qsort(keys, (size_t)n, sizeof *keys, by_class_then_rank);
        for (int64_t i = 0; i < n; i++)
            fold_of[keys[i].row] = (int32_t)(i % folds);
    }
    free(perm);
    free(keys);
    return 0;
}

/* [data] folds: fold `fold` of the pool is the validation set, the others train; the
 * assignment is kept for the run directory's folds.csv. */
static int split_folds(tr_data *d, const tr_data_config *dc, const tr_dataset *pool, bool stratify, tr_err *err)
{
    const int64_t n = pool->rows;
    if (n < dc->folds)
        return tr_fail(err, TR_EDATA, "%s: %lld training rows cannot make folds = %lld", d->source, (long long)n,
                       (long long)dc->folds);
    d->fold_of = malloc((size_t)n * sizeof *d->fold_of + 1);
    d->fold_origin = malloc((size_t)n * sizeof *d->fold_origin + 1);
    int64_t *kept = malloc((size_t)n * sizeof *kept + 1), *held = malloc((size_t)n * sizeof *held + 1);
    int rc = d->fold_of && d->fold_origin && kept && held ? 0 : tr_fail(err, TR_ENOMEM, "out of memory");
    if (!rc)
        rc = tr_fold_assign(n, stratify ? pool->y : NULL, pool->tcols, dc->folds, dc->split_seed, dc->split_shuffle,
                            d->fold_of, err);
    if (!rc) {
        int64_t nk = 0, nh = 0;
        for (int64_t r = 0; r < n; r++) {
            if (d->fold_of[r] == dc->fold)
                held[nh++] = r;
            else
                kept[nk++] = r;
            d->fold_origin[r] = pool->origin ? pool->origin[r] : r;
        }
        d->n_fold_rows = n;
        d->fold_origin_is_line = pool->origin_is_line;
        rc = tr_dataset_take(&d->train, pool, kept, nk, err);
        if (!rc)
            rc = tr_dataset_take(&d->val, pool, held, nh, err);
    }
    free(kept);
    free(held);
    return rc;
}

/* Splits `all` into kept and held-out sets (consumes nothing; all stays valid). */
static int split_set(const tr_dataset *all, double fraction, uint64_t seed, uint32_t stream, bool shuffle,
                     tr_dataset *kept, tr_dataset *held, tr_err *err)
{
    int64_t *k = malloc((size_t)all->rows * sizeof *k + 1), *h = malloc((size_t)all->rows * sizeof *h + 1);
    int rc = 0;
    if (!k || !h) {
        rc = tr_fail(err, TR_ENOMEM, "out of memory");
    } else {
        int64_t nk, nh;
        tr_split_indices(all->rows, fraction, seed, stream, shuffle, k, &nk, h, &nh);
        rc = tr_dataset_take(kept, all, k, nk, err);
        if (!rc)
            rc = tr_dataset_take(held, all, h, nh, err);
    }
    free(k);
    free(h);
    return rc;
}

int tr_scaler_fit(tr_scaler *s, tr_scale_kind kind, double divisor, const tr_dataset *train, tr_err *err)
{
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->cols = train->cols;
    const int64_t F = train->cols, N = train->rows;
    s->center = calloc((size_t)F + 1, sizeof *s->center);
    s->scale = calloc((size_t)F + 1, sizeof *s->scale);
    double *a = calloc((size_t)F + 1, sizeof *a), *b = calloc((size_t)F + 1, sizeof *b);
    int rc = 0;
    if (!s->center || !s->scale || !a || !b) {
        rc = tr_fail(err, TR_ENOMEM, "out of memory");
        goto done;
    }
    switch (kind) {
    case TR_SCALE_NONE:
    case TR_SCALE_DIVIDE:
        for (int64_t c = 0; c < F; c++) {
            s->center[c] = 0.0f;
            s->scale[c] = kind == TR_SCALE_DIVIDE ? (float)divisor : 1.0f;
        }
        break;
    case TR_SCALE_STANDARD: /* two passes in double: mean, then population variance (ddof 0) */
        for (int64_t r = 0; r < N; r++) {
            const float *x = tr_dataset_stored_row(train, r);
            for (int64_t c = 0; c < F; c++)
                a[c] += x[c];
        }
        for (int64_t c = 0; c < F; c++)
            a[c] /= (double)N;
        for (int64_t r = 0; r < N; r++) {
            const float *x = tr_dataset_stored_row(train, r);
            for (int64_t c = 0; c < F; c++) {
                const double d = x[c] - a[c];
                b[c] += d * d;
            }
        }
        for (int64_t c = 0; c < F; c++) {
            const double sd = sqrt(b[c] / (double)N);
            s->center[c] = (float)a[c];
            s->scale[c] = sd > 0.0 ? (float)sd : 1.0f;
        }
        break;
    case TR_SCALE_MINMAX:
        for (int64_t c = 0; c < F; c++) {
            a[c] = INFINITY;
            b[c] = -INFINITY;
        }
        for (int64_t r = 0; r < N; r++) {
            const float *x = tr_dataset_stored_row(train, r);
            for (int64_t c = 0; c < F; c++) {
                const double v = x[c];
                a[c] = v < a[c] ? v : a[c];
                b[c] = v > b[c] ? v : b[c];
            }
        }
        for (int64_t c = 0; c < F; c++) {
            s->center[c] = (float)a[c];
            s->scale[c] = b[c] > a[c] ? (float)(b[c] - a[c]) : 1.0f;
        }
        break;
    }
done:
    free(a);
    free(b);
    if (rc)
        tr_scaler_free(s);
    return rc;
}

void tr_data_use_scaler(tr_dataset *ds, const tr_scaler *s)
{
    if (!ds->x_borrowed) {
        tr_scaler_apply(s, ds->X, ds->rows);
    } else if (s->kind != TR_SCALE_NONE) { /* a view scales as it reads */
        ds->center = s->center;
        ds->scale = s->scale;
    }
}

void tr_scaler_apply(const tr_scaler *s, float *X, int64_t rows)
{
    if (s->kind == TR_SCALE_NONE)
        return;
    const int64_t F = s->cols;
    for (int64_t r = 0; r < rows; r++)
        tr_scale_row(X + r * F, X + r * F, s->center, s->scale, F);
}

void tr_scaler_free(tr_scaler *s)
{
    if (!s)
        return;
    free(s->center);
    free(s->scale);
    s->center = s->scale = NULL;
}

/* Checks widths and labels of one set against the model and loss. */
static int check_fit(const tr_dataset *ds, const char *what, const tr_config *c, const tr_loss *L, tr_err *err)
{
    const char *src = ds->source;
    const int64_t in = c->model.widths[0];
    if (ds->cols != in)
        return tr_fail(err, TR_EDATA,
                       "%s: the %s data have %lld feature column%s but [model] layers starts with %lld inputs",
                       src, what, (long long)ds->cols, ds->cols == 1 ? "" : "s", (long long)in);
    const int64_t tw = tr_loss_target_width(L);
    if (ds->tcols != tw)
        return tr_fail(err, TR_EDATA,
                       "%s: the %s data have %lld target column%s but loss %s with %lld output%s needs %lld", src, what,
                       (long long)ds->tcols, ds->tcols == 1 ? "" : "s", tr_loss_name(L->kind), (long long)L->width,
                       L->width == 1 ? "" : "s", (long long)tw);
    if (tr_loss_task(L) == TR_TASK_CLASSIFICATION) {
        const int64_t K = tr_loss_classes(L);
        for (int64_t r = 0; r < ds->rows; r++)
            for (int64_t j = 0; j < ds->tcols; j++) {
                const float t = ds->y[r * ds->tcols + j];
                char where[TR_PATH_MAX + 96];
                if (tr_loss_takes_class_index(L)) {
                    if (t == floorf(t) && t >= 0.0f && t < (float)K)
                        continue;
                    tr_dataset_where(ds, r, where, sizeof where);
                    if (t != floorf(t))
                        return tr_fail(err, TR_EDATA, "%s: %s label %g is not an integer class (classes are 0 to %lld)",
                                       where, what, (double)t, (long long)K - 1);
                    return tr_fail(err, TR_EDATA,
                                   "%s: %s class label %g is outside [0, %lld) (the output layer has %lld units)",
                                   where, what, (double)t, (long long)K, (long long)K);
                } else if (!(t >= 0.0f && t <= 1.0f)) {
                    tr_dataset_where(ds, r, where, sizeof where);
                    return tr_fail(err, TR_EDATA, "%s: %s target %g of a %s loss must be in [0, 1]", where, what,
                                   (double)t, tr_loss_name(L->kind));
                }
            }
    }
    return 0;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

static bool csv_name(const char *path)
{
    return ends_with(path, ".csv") || ends_with(path, ".txt") || ends_with(path, ".CSV");
}

static tr_data_format resolve_format(const tr_data_config *dc)
{
    if (dc->format != TR_FORMAT_AUTO)
        return dc->format;
    if (dc->images[0])
        return TR_FORMAT_IDX;
    if (csv_name(dc->path))
        return TR_FORMAT_CSV;
    return TR_FORMAT_HDF5;
}

/* Reads one file set: path (HDF5, CSV) or images + labels (IDX). */
static int read_source(tr_dataset *ds, tr_mapping *map, const tr_data_config *dc, tr_data_format fmt, const char *path,
                       const char *images, const char *labels, int64_t *dropped, tr_err *err)
{
    *dropped = 0;
    switch (fmt) {
    case TR_FORMAT_CSV: {
        tr_csv_options o = {.delimiter = (char)tr_csv_delimiter(dc->delimiter_name),
                            .header = dc->header,
                            .target = dc->target,
                            .columns = dc->columns,
                            .drop_nonfinite = dc->on_nonfinite == TR_NONFINITE_DROP};
        return tr_csv_read(ds, path, &o, dropped, err);
    }
    case TR_FORMAT_IDX: {
        int rc = tr_idx_read(ds, images, labels, err);
        return rc;
    }
    case TR_FORMAT_HDF5:
    case TR_FORMAT_AUTO: {
        int rc = tr_hdf5_load(ds, dc->mmap ? map : NULL, path, dc->features_dset, dc->targets_dset, 0, -1, err);
        if (!rc && dc->mmap) /* the checks and the scaler's fit scan the file front to back */
            tr_map_advise(map, TR_MAP_SEQUENTIAL);
        if (!rc)
            rc = tr_dataset_check_finite(ds, dc->on_nonfinite == TR_NONFINITE_DROP, path, dropped, err);
        return rc;
    }
    }
    return 0;
}

int tr_data_read_file(tr_dataset *ds, const tr_data_config *dc, const char *path, int64_t *dropped, tr_err *err)
{
    tr_data_config one = *dc;
    snprintf(one.path, sizeof one.path, "%s", path);
    if (one.format == TR_FORMAT_AUTO && !csv_name(path) && !ends_with(path, ".h5") && !ends_with(path, ".hdf5"))
        one.format = TR_FORMAT_IDX; /* train-images-idx3-ubyte(.gz) */
    const tr_data_format fmt = resolve_format(&one);
    if (fmt == TR_FORMAT_IDX && !dc->labels[0])
        return tr_fail(err, TR_EUSAGE, "%s: an IDX images file needs its labels file (--labels FILE)", path);
    memset(ds, 0, sizeof *ds);
    return read_source(ds, NULL, &one, fmt, path, path, dc->labels, dropped, err);
}

int tr_data_renumber_classes(tr_dataset *ds, const char *classes, tr_err *err)
{
    if (!ds->class_names)
        return 0;
    int64_t n = tr_class_name_count(ds->class_names);
    int64_t *to = malloc((size_t)n * sizeof *to + 1);
    if (!to)
        return tr_fail(err, TR_ENOMEM, "out of memory");
    const int64_t m = tr_class_name_count(classes);
    for (int64_t i = 0; i < n; i++) {
        char name[512], other[512];
        tr_class_name(ds->class_names, i, name, sizeof name);
        to[i] = -1;
        for (int64_t j = 0; j < m && to[i] < 0; j++)
            if (!strcmp(name, tr_class_name(classes, j, other, sizeof other)))
                to[i] = j;
    }
    int rc = 0;
    for (int64_t r = 0; !rc && r < ds->rows; r++) {
        const int64_t k = (int64_t)ds->y[r];
        if (to[k] < 0) { /* the first row with a word the classes do not have */
            char where[TR_PATH_MAX + 96], name[512];
            tr_dataset_where(ds, r, where, sizeof where);
            rc = tr_fail(err, TR_EDATA, "%s: label '%s' is not one of the classes (%s)", where,
                         tr_class_name(ds->class_names, k, name, sizeof name), classes);
        }
        ds->y[r] = (float)to[k];
    }
    free(to);
    if (!rc) {
        free(ds->class_names);
        if (!(ds->class_names = strdup(classes)))
            rc = tr_fail(err, TR_ENOMEM, "out of memory");
    }
    return rc;
}

/* Text labels of a test file take the training file's class numbering: the same word, the
 * same class, whatever words each file happens to hold. */
static int renumber_classes(tr_dataset *test, const tr_dataset *train, tr_err *err)
{
    if (test->class_names && !train->class_names)
        return tr_fail(err, TR_EDATA, "%s: the test labels are words (%s) but the training labels are numbers",
                       test->source, test->class_names);
    return tr_data_renumber_classes(test, train->class_names, err);
}

/* The configured primary set (generator, built-in, IDX, HDF5 or CSV) into *all, its text
 * labels numbered by [data] class_names when that names them (a checkpoint's classes, for
 * eval and --init-from: the same word is the same class whatever words this file holds; a
 * word not among them is an error naming its row). */
static int load_primary(tr_data *d, const tr_config *c, tr_data_format fmt, tr_dataset *all, tr_err *err)
{
    const tr_data_config *dc = &c->data;
    int64_t dropped = 0;
    int rc;
    if (dc->generator[0]) {
        snprintf(d->source, sizeof d->source, "[data] generator = %s", dc->generator);
        rc = tr_generate(all, dc, err);
    } else if (dc->builtin[0]) {
        snprintf(d->source, sizeof d->source, "[data] builtin = %s", dc->builtin);
        rc = tr_sklearn_read(all, dc->builtin, dc->builtin_dir, err);
    } else if (fmt == TR_FORMAT_IDX) {
        if (!dc->images[0] || !dc->labels[0])
            return tr_fail(err, TR_ECONFIG, "%s: [data] format = idx needs both images and labels", c->path);
        snprintf(d->source, sizeof d->source, "%s", dc->images);
        rc = read_source(all, &d->maps[0], dc, fmt, NULL, dc->images, dc->labels, &dropped, err);
    } else if (dc->path[0]) {
        snprintf(d->source, sizeof d->source, "%s", dc->path);
        rc = read_source(all, &d->maps[0], dc, fmt, dc->path, NULL, NULL, &dropped, err);
    } else {
        return tr_fail(err, TR_ECONFIG,
                       "%s: [data] has no source: set generator, builtin, path (HDF5 or CSV) or images and labels (IDX)",
                       c->path);
    }
    if (rc)
        return rc;
    if (!all->source[0])
        snprintf(all->source, sizeof all->source, "%s", d->source);
    d->dropped += dropped;
    if (dc->class_names[0] && all->class_names)
        return tr_data_renumber_classes(all, dc->class_names, err);
    return 0;
}

/* The test set from its own files (then all of *all goes to *rest), else a held-out fraction
 * of *all. */
static int load_test(tr_data *d, const tr_config *c, tr_data_format fmt, tr_dataset *all, tr_dataset *rest,
                     tr_err *err)
{
    const tr_data_config *dc = &c->data;
    if (!dc->test_path[0] && !dc->test_images[0])
        return split_set(all, dc->test_fraction, dc->split_seed, 0, dc->split_shuffle, rest, &d->test, err);
    const char *tsrc = fmt == TR_FORMAT_IDX ? dc->test_images : dc->test_path;
    if (fmt == TR_FORMAT_IDX && !dc->test_labels[0])
        return tr_fail(err, TR_ECONFIG, "%s: [data] test_images needs test_labels", c->path);
    if (fmt != TR_FORMAT_IDX && !dc->test_path[0])
        return tr_fail(err, TR_ECONFIG, "%s: [data] test_images/test_labels are for format = idx; use test_path",
                       c->path);
    int64_t dropped = 0;
    int rc = read_source(&d->test, &d->maps[1], dc, fmt, tsrc, dc->test_images, dc->test_labels, &dropped, err);
    if (rc)
        return rc;
    if (!d->test.source[0])
        snprintf(d->test.source, sizeof d->test.source, "%s", tsrc);
    rc = renumber_classes(&d->test, all, err);
    if (rc)
        return rc;
    d->dropped += dropped;
    *rest = *all;
    memset(all, 0, sizeof *all);
    return 0;
}

/* The validation set from the training rows; at least one training row must remain, and the
 * test set must have the training set's columns. */
static int split_validation(tr_data *d, const tr_config *c, const tr_loss *L, tr_dataset *rest, tr_err *err)
{
    const tr_data_config *dc = &c->data;
    const bool test_files = dc->test_path[0] || dc->test_images[0];
    const double val_of_rest = test_files ? dc->val_fraction : dc->val_fraction / (1.0 - dc->test_fraction);
    /* folds are stratified by the class a row's one target names */
    const bool stratify = tr_loss_task(L) == TR_TASK_CLASSIFICATION && rest->tcols == 1;
    int rc = dc->folds > 1 ? split_folds(d, dc, rest, stratify, err)
                           : split_set(rest, val_of_rest, dc->split_seed, 1, dc->split_shuffle, &d->train, &d->val, err);
    if (rc)
        return rc;
    if (d->train.rows < 1)
        return tr_fail(err, TR_EDATA, "%s: no training rows left after the split (%lld rows, test_fraction %g, "
                                      "val_fraction %g)",
                       d->source, (long long)(rest->rows), dc->test_fraction, dc->val_fraction);
    if (d->test.rows > 0 && d->test.cols != d->train.cols)
        return tr_fail(err, TR_EDATA, "%s: the test data have %lld feature columns, the training data %lld",
                       dc->test_path[0] ? dc->test_path : dc->test_images, (long long)d->test.cols,
                       (long long)d->train.cols);
    return 0;
}

/* The scaling fitted on the training rows only and applied to every set; the training set's
 * fingerprint and names; every set checked against the model and loss. */
static int finish_sets(tr_data *d, const tr_config *c, const tr_loss *L, tr_err *err)
{
    const tr_data_config *dc = &c->data;
    int rc = tr_scaler_fit(&d->scaler, dc->scale, dc->scale_divisor, &d->train, err);
    if (rc)
        return rc;
    tr_dataset *sets[3] = {&d->train, &d->val, &d->test};
    for (int i = 0; i < 3; i++)
        tr_data_use_scaler(sets[i], &d->scaler);
    for (int k = 0; k < 2; k++) /* the fingerprint samples single rows: no megabytes read around each */
        tr_map_advise(&d->maps[k], TR_MAP_RANDOM);
    d->fingerprint = tr_data_fingerprint(&d->train);
    if ((d->train.class_names && !(d->class_names = strdup(d->train.class_names))) ||
        (d->train.column_names && !(d->feature_names = strdup(d->train.column_names))))
        return tr_fail(err, TR_ENOMEM, "out of memory");
    return tr_data_check_fit(d, c, L, err);
}

int tr_data_check_fit(const tr_data *d, const tr_config *c, const tr_loss *L, tr_err *err)
{
    int rc = check_fit(&d->train, "training", c, L, err);
    if (!rc)
        rc = check_fit(&d->val, "validation", c, L, err);
    if (!rc)
        rc = check_fit(&d->test, "test", c, L, err);
    return rc;
}

int tr_data_load(tr_data *d, const tr_config *c, const tr_loss *L, tr_err *err)
{
    memset(d, 0, sizeof *d);
    tr_dataset all = {0}, rest = {0};
    const tr_data_format fmt = resolve_format(&c->data);
    int rc = load_primary(d, c, fmt, &all, err);
    if (!rc)
        rc = load_test(d, c, fmt, &all, &rest, err);
    if (!rc)
        rc = split_validation(d, c, L, &rest, err);
    if (!rc)
        rc = finish_sets(d, c, L, err);
    tr_dataset_free(&all);
    tr_dataset_free(&rest);
    if (rc)
        tr_data_free(d);
    return rc;
}

int64_t tr_data_fingerprint(const tr_dataset *ds)
{
    uLong crc = crc32(0L, Z_NULL, 0);
    const int64_t shape[3] = {ds->rows, ds->cols, ds->tcols};
    crc = crc32_z(crc, (const Bytef *)shape, sizeof shape);
    if (ds->rows > 0)
        crc = crc32_z(crc, (const Bytef *)ds->y, (size_t)(ds->rows * ds->tcols) * sizeof(float));
    const int64_t step = ds->rows > 4096 ? ds->rows / 4096 : 1;
    for (int64_t r = 0; r < ds->rows; r += step)
        crc = crc32_z(crc, (const Bytef *)tr_dataset_stored_row(ds, r), (size_t)ds->cols * sizeof(float));
    return (int64_t)crc;
}

void tr_data_free(tr_data *d)
{
    if (!d)
        return;
    tr_dataset_free(&d->train);
    tr_dataset_free(&d->val);
    tr_dataset_free(&d->test);
    tr_scaler_free(&d->scaler);
    free(d->fold_of);
    free(d->fold_origin);
    tr_node_mem_free(d->shared);
    d->shared = NULL;
    tr_unmap(&d->maps[0]);
    tr_unmap(&d->maps[1]);
    free(d->class_names);
    d->class_names = NULL;
    free(d->feature_names);
    d->feature_names = NULL;
}
