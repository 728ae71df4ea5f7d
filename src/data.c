/*
 * data.c: generators, split, and the checks that a data set fits the model and the loss.
 */
#include "trainer/data.h"

#include "trainer/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int tr_dataset_alloc(tr_dataset *ds, int64_t rows, int64_t cols, int64_t tcols, tr_err *err)
{
    memset(ds, 0, sizeof *ds);
    ds->rows = rows;
    ds->cols = cols;
    ds->tcols = tcols;
    ds->X = calloc((size_t)(rows * cols) + 1, sizeof *ds->X);
    ds->y = calloc((size_t)(rows * tcols) + 1, sizeof *ds->y);
    if (!ds->X || !ds->y) {
        tr_dataset_free(ds);
        return tr_fail(err, TR_ENOMEM, "cannot allocate a %lld x %lld data set", (long long)rows, (long long)cols);
    }
    return 0;
}

void tr_dataset_free(tr_dataset *ds)
{
    if (!ds)
        return;
    free(ds->X);
    free(ds->y);
    ds->X = ds->y = NULL;
    ds->rows = 0;
}

int tr_dataset_take(tr_dataset *dst, const tr_dataset *src, const int64_t *rows, int64_t n, tr_err *err)
{
    int rc = tr_dataset_alloc(dst, n, src->cols, src->tcols, err);
    if (rc)
        return rc;
    for (int64_t i = 0; i < n; i++) {
        memcpy(dst->X + i * src->cols, src->X + rows[i] * src->cols, (size_t)src->cols * sizeof(float));
        memcpy(dst->y + i * src->tcols, src->y + rows[i] * src->tcols, (size_t)src->tcols * sizeof(float));
    }
    return 0;
}

/* Generator random streams (purpose TR_RNG_GENERATE): noise of column c uses stream c,
 * the row shuffle uses GEN_SHUFFLE, the linear generator's x and noise their own. */
enum { GEN_SHUFFLE = 1000, GEN_X = 1001, GEN_Y_NOISE = 1002 };

static int gen_moons(tr_dataset *ds, const tr_data_config *dc, tr_rng rng, tr_err *err)
{
    const int64_t n = dc->n, n_out = n / 2, n_in = n - n_out;
    tr_dataset tmp;
    int rc = tr_dataset_alloc(&tmp, n, 2, 1, err);
    if (rc)
        return rc;
    for (int64_t i = 0; i < n_out; i++) {
        const double t = n_out > 1 ? M_PI * (double)i / (double)(n_out - 1) : 0.0;
        tmp.X[2 * i] = (float)cos(t);
        tmp.X[2 * i + 1] = (float)sin(t);
        tmp.y[i] = 0.0f;
    }
    for (int64_t i = 0; i < n_in; i++) {
        const double t = n_in > 1 ? M_PI * (double)i / (double)(n_in - 1) : 0.0;
        tmp.X[2 * (n_out + i)] = (float)(1.0 - cos(t));
        tmp.X[2 * (n_out + i) + 1] = (float)(1.0 - sin(t) - 0.5);
        tmp.y[n_out + i] = 1.0f;
    }
    int64_t *perm = malloc((size_t)n * sizeof *perm);
    if (!perm) {
        tr_dataset_free(&tmp);
        return tr_fail(err, TR_ENOMEM, "out of memory");
    }
    tr_rng_permutation(perm, n, rng, TR_RNG_GENERATE, GEN_SHUFFLE);
    rc = tr_dataset_take(ds, &tmp, perm, n, err);
    free(perm);
    tr_dataset_free(&tmp);
    if (rc)
        return rc;
    for (int64_t r = 0; r < n; r++)
        for (int c = 0; c < 2; c++)
            ds->X[2 * r + c] += (float)(dc->noise * tr_rng_normal(rng, TR_RNG_GENERATE, (uint32_t)c, (uint64_t)r));
    return 0;
}

static int gen_linear(tr_dataset *ds, const tr_data_config *dc, tr_rng rng, tr_err *err)
{
    int rc = tr_dataset_alloc(ds, dc->n, 1, 1, err);
    if (rc)
        return rc;
    for (int64_t r = 0; r < dc->n; r++) {
        const double x = dc->x_min + (dc->x_max - dc->x_min) * tr_rng_uniform(rng, TR_RNG_GENERATE, GEN_X, (uint64_t)r);
        const double e = dc->noise * (2.0 * tr_rng_uniform(rng, TR_RNG_GENERATE, GEN_Y_NOISE, (uint64_t)r) - 1.0);
        ds->X[r] = (float)x;
        ds->y[r] = (float)(dc->a + dc->b * x + e);
    }
    return 0;
}

int tr_generate(tr_dataset *ds, const tr_data_config *dc, tr_err *err)
{
    tr_rng rng = tr_rng_make(dc->seed);
    if (strcmp(dc->generator, "moons") == 0)
        return gen_moons(ds, dc, rng, err);
    if (strcmp(dc->generator, "linear") == 0)
        return gen_linear(ds, dc, rng, err);
    return tr_fail(err, TR_ECONFIG, "[data] generator = %s: unknown generator", dc->generator);
}

void tr_split_indices(int64_t n, double test_fraction, uint64_t split_seed, bool shuffle, int64_t *train_idx,
                      int64_t *n_train, int64_t *test_idx, int64_t *n_test)
{
    int64_t nt = (int64_t)ceil(test_fraction * (double)n - 1e-9);
    if (test_fraction <= 0.0)
        nt = 0;
    if (nt > n)
        nt = n;
    int64_t *perm = train_idx; /* build the permutation in place, then partition */
    if (shuffle && nt > 0) {
        tr_rng_permutation(perm, n, tr_rng_make(split_seed), TR_RNG_SPLIT, 0);
    } else {
        /* unshuffled: train = the first rows, test = the last rows */
        for (int64_t i = 0; i < n; i++)
            perm[i] = (i + (n - nt)) % n;
    }
    for (int64_t i = 0; i < nt; i++)
        test_idx[i] = perm[i];
    memmove(train_idx, perm + nt, (size_t)(n - nt) * sizeof *train_idx);
    *n_test = nt;
    *n_train = n - nt;
}

/* Checks widths and labels of one set against the model and loss. */
static int check_fit(const tr_dataset *ds, const char *what, const tr_config *c, const tr_loss *L, const char *src,
                     tr_err *err)
{
    const int64_t in = c->model.widths[0];
    if (ds->cols != in)
        return tr_fail(err, TR_EDATA,
                       "%s: the %s data have %lld feature column%s but [model] layers starts with %lld inputs",
                       src, what, (long long)ds->cols, ds->cols == 1 ? "" : "s", (long long)in);
    const int64_t tw = tr_loss_target_width(L);
    if (ds->tcols != tw)
        return tr_fail(err, TR_EDATA, "%s: the %s data have %lld target column%s but loss %s with %lld outputs needs %lld",
                       src, what, (long long)ds->tcols, ds->tcols == 1 ? "" : "s", tr_loss_name(L->kind),
                       (long long)L->width, (long long)tw);
    if (tr_loss_task(L) == TR_TASK_CLASSIFICATION) {
        const int64_t K = tr_loss_classes(L);
        for (int64_t r = 0; r < ds->rows; r++)
            for (int64_t j = 0; j < ds->tcols; j++) {
                const float t = ds->y[r * ds->tcols + j];
                if (L->kind == TR_LOSS_CROSS_ENTROPY) {
                    if (!(t >= 0.0f && t < (float)K && t == floorf(t)))
                        return tr_fail(err, TR_EDATA,
                                       "%s: %s row %lld: class label %g is outside [0, %lld) (the output layer has "
                                       "%lld units)", src, what, (long long)r, (double)t, (long long)K,
                                       (long long)K);
                } else if (!(t >= 0.0f && t <= 1.0f)) {
                    return tr_fail(err, TR_EDATA, "%s: %s row %lld: target %g of a %s loss must be in [0, 1]", src,
                                   what, (long long)r, (double)t, tr_loss_name(L->kind));
                }
            }
    }
    return 0;
}

int tr_data_load(tr_data *d, const tr_config *c, const tr_loss *L, tr_err *err)
{
    memset(d, 0, sizeof *d);
    const tr_data_config *dc = &c->data;
    snprintf(d->source, sizeof d->source, "generator %s", dc->generator);
    tr_dataset all;
    int rc = tr_generate(&all, dc, err);
    if (rc)
        return rc;
    int64_t *train_idx = malloc((size_t)all.rows * sizeof *train_idx + 1);
    int64_t *test_idx = malloc((size_t)all.rows * sizeof *test_idx + 1);
    if (!train_idx || !test_idx) {
        rc = tr_fail(err, TR_ENOMEM, "out of memory");
        goto done;
    }
    int64_t n_train, n_test;
    tr_split_indices(all.rows, dc->test_fraction, dc->split_seed, dc->split_shuffle, train_idx, &n_train, test_idx,
                     &n_test);
    if (n_train < 1) {
        rc = tr_fail(err, TR_EDATA, "%s: no training rows left after the split (test_fraction = %g of %lld rows)",
                     d->source, dc->test_fraction, (long long)all.rows);
        goto done;
    }
    rc = tr_dataset_take(&d->train, &all, train_idx, n_train, err);
    if (!rc)
        rc = tr_dataset_take(&d->test, &all, test_idx, n_test, err);
    if (!rc)
        rc = check_fit(&d->train, "training", c, L, d->source, err);
    if (!rc)
        rc = check_fit(&d->test, "test", c, L, d->source, err);
done:
    free(train_idx);
    free(test_idx);
    tr_dataset_free(&all);
    if (rc)
        tr_data_free(d);
    return rc;
}

void tr_data_free(tr_data *d)
{
    if (!d)
        return;
    tr_dataset_free(&d->train);
    tr_dataset_free(&d->test);
}
