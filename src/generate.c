/*
 * generate.c: the built-in data sets (see generate.h) and saving a set to HDF5 or CSV.
 */
#include "trainer/generate.h"

#include "trainer/csv.h"
#include "trainer/files.h"
#include "trainer/h5io.h"
#include "trainer/rng.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *const tr_generator_names[] = {"moons", "circles", "blobs", "linear", "inverse", "random", NULL};

bool tr_generator_is_classification(const char *name)
{
    return !strcmp(name, "moons") || !strcmp(name, "circles") || !strcmp(name, "blobs") || !strcmp(name, "random");
}

/* Random streams (purpose TR_RNG_GENERATE): the noise of column c uses stream c; the others: */
enum { GEN_SHUFFLE = 1000, GEN_X = 1001, GEN_Y_NOISE = 1002, GEN_CENTERS = 1003 };

static double or_default(double v, double def) { return isnan(v) ? def : v; }

/* Shuffles the rows of tmp into ds (scikit-learn's shuffle=True), consuming tmp. */
static int shuffled(tr_dataset *ds, tr_dataset *tmp, tr_rng rng, tr_err *err)
{
    int64_t *perm = malloc((size_t)tmp->rows * sizeof *perm + 1);
    if (!perm) {
        tr_dataset_free(tmp);
        return tr_fail(err, TR_ENOMEM, "out of memory");
    }
    tr_rng_permutation(perm, tmp->rows, rng, TR_RNG_GENERATE, GEN_SHUFFLE);
    int rc = tr_dataset_take(ds, tmp, perm, tmp->rows, err);
    free(perm);
    tr_dataset_free(tmp);
    return rc;
}

static void add_noise(tr_dataset *ds, double sd, tr_rng rng)
{
    for (int64_t r = 0; r < ds->rows; r++)
        for (int64_t c = 0; c < ds->cols; c++)
            ds->X[r * ds->cols + c] += (float)(sd * tr_rng_normal(rng, TR_RNG_GENERATE, (uint32_t)c, (uint64_t)r));
}

static int gen_moons(tr_dataset *ds, const tr_data_config *dc, tr_rng rng, tr_err *err)
{
    const int64_t n = dc->n, n_out = n / 2, n_in = n - n_out;
    tr_dataset tmp;
    int rc = tr_dataset_alloc(&tmp, n, 2, 1, err);
    if (rc)
        return rc;
    for (int64_t i = 0; i < n_out; i++) { /* np.linspace(0, pi, n_out) */
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
    rc = shuffled(ds, &tmp, rng, err);
    if (!rc)
        add_noise(ds, or_default(dc->noise, 0.1), rng);
    return rc;
}

static int gen_circles(tr_dataset *ds, const tr_data_config *dc, tr_rng rng, tr_err *err)
{
    const int64_t n = dc->n, n_out = n / 2, n_in = n - n_out;
    tr_dataset tmp;
    int rc = tr_dataset_alloc(&tmp, n, 2, 1, err);
    if (rc)
        return rc;
    for (int64_t i = 0; i < n_out; i++) { /* np.linspace(0, 2 pi, n_out, endpoint=False) */
        const double t = 2.0 * M_PI * (double)i / (double)n_out;
        tmp.X[2 * i] = (float)(dc->r1 * cos(t));
        tmp.X[2 * i + 1] = (float)(dc->r1 * sin(t));
        tmp.y[i] = 0.0f;
    }
    for (int64_t i = 0; i < n_in; i++) {
        const double t = 2.0 * M_PI * (double)i / (double)n_in;
        tmp.X[2 * (n_out + i)] = (float)(dc->r2 * cos(t));
        tmp.X[2 * (n_out + i) + 1] = (float)(dc->r2 * sin(t));
        tmp.y[n_out + i] = 1.0f;
    }
    rc = shuffled(ds, &tmp, rng, err);
    if (!rc)
        add_noise(ds, or_default(dc->sd, 0.2), rng);
    return rc;
}

static int gen_blobs(tr_dataset *ds, const tr_data_config *dc, tr_rng rng, tr_err *err)
{
    const int64_t n = dc->n, k = dc->classes, F = dc->n_features;
    const double sd = or_default(dc->sd, 1.0);
    tr_dataset tmp;
    int rc = tr_dataset_alloc(&tmp, n, F, 1, err);
    if (rc)
        return rc;
    /* rows per class: n / k, the first n % k classes one more (scikit-learn) */
    int64_t r = 0;
    for (int64_t c = 0; c < k; c++) {
        const int64_t count = n / k + (c < n % k);
        for (int64_t i = 0; i < count; i++, r++) {
            for (int64_t f = 0; f < F; f++) {
                const double center =
                    -dc->box + 2.0 * dc->box * tr_rng_uniform(rng, TR_RNG_GENERATE, GEN_CENTERS, (uint64_t)(c * F + f));
                tmp.X[r * F + f] = (float)center;
            }
            tmp.y[r] = (float)c;
        }
    }
    rc = shuffled(ds, &tmp, rng, err);
    if (!rc)
        add_noise(ds, sd, rng);
    return rc;
}

static int gen_regression(tr_dataset *ds, const tr_data_config *dc, tr_rng rng, bool inverse, tr_err *err)
{
    int rc = tr_dataset_alloc(ds, dc->n, 1, 1, err);
    if (rc)
        return rc;
    const double x0 = or_default(dc->x_min, inverse ? 2.0 : 0.0), x1 = or_default(dc->x_max, 10.0);
    const double a = or_default(dc->a, 2.0), b = or_default(dc->b, inverse ? 5.0 : 0.7);
    const double noise = or_default(dc->noise, inverse ? 1.0 / 7.0 : 0.5);
    if (!(x1 > x0))
        return tr_fail(err, TR_ECONFIG, "[data] x_max (%g) must be greater than x_min (%g)", x1, x0);
    if (inverse && x0 <= 0.0 && x1 >= 0.0)
        return tr_fail(err, TR_ECONFIG, "[data] generator = inverse: [x_min, x_max) = [%g, %g) contains 0", x0, x1);
    for (int64_t r = 0; r < dc->n; r++) {
        const double x = x0 + (x1 - x0) * tr_rng_uniform(rng, TR_RNG_GENERATE, GEN_X, (uint64_t)r);
        double y;
        if (inverse)
            y = b / x + a + noise * tr_rng_normal(rng, TR_RNG_GENERATE, GEN_Y_NOISE, (uint64_t)r);
        else
            y = a + b * x + noise * (2.0 * tr_rng_uniform(rng, TR_RNG_GENERATE, GEN_Y_NOISE, (uint64_t)r) - 1.0);
        ds->X[r] = (float)x;
        ds->y[r] = (float)y;
    }
    return 0;
}

/* Features U(0, 1) and uniform random class labels: no structure, for benchmarks. */
static int gen_random(tr_dataset *ds, const tr_data_config *dc, tr_rng rng, tr_err *err)
{
    const int64_t F = dc->n_features;
    int rc = tr_dataset_alloc(ds, dc->n, F, 1, err);
    if (rc)
        return rc;
    for (int64_t r = 0; r < dc->n; r++) {
        for (int64_t f = 0; f < F; f++)
            ds->X[r * F + f] = (float)tr_rng_uniform(rng, TR_RNG_GENERATE, (uint32_t)f, (uint64_t)r);
        ds->y[r] = (float)tr_rng_below(rng, TR_RNG_GENERATE, GEN_Y_NOISE, (uint64_t)r, (uint64_t)dc->classes);
    }
    return 0;
}

int tr_generate(tr_dataset *ds, const tr_data_config *dc, tr_err *err)
{
    memset(ds, 0, sizeof *ds);
    tr_rng rng = tr_rng_make(dc->seed);
    if (!strcmp(dc->generator, "moons"))
        return gen_moons(ds, dc, rng, err);
    if (!strcmp(dc->generator, "circles"))
        return gen_circles(ds, dc, rng, err);
    if (!strcmp(dc->generator, "blobs"))
        return gen_blobs(ds, dc, rng, err);
    if (!strcmp(dc->generator, "linear"))
        return gen_regression(ds, dc, rng, false, err);
    if (!strcmp(dc->generator, "inverse"))
        return gen_regression(ds, dc, rng, true, err);
    if (!strcmp(dc->generator, "random"))
        return gen_random(ds, dc, rng, err);
    return tr_fail(err, TR_ECONFIG, "[data] generator = %s: unknown generator (choose one of: moons, circles, blobs, "
                                    "linear, inverse, random)", dc->generator);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

static int save_h5(const tr_dataset *ds, const char *tmp, const char *path, bool labels, tr_err *err)
{
    tr_h5_quiet();
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    char why[200];
    if (f < 0)
        return tr_fail(err, TR_EIO, "%s: cannot create: %s", path, tr_h5_why(why, sizeof why));
    int rc = tr_h5_write_f32(f, path, "/X", ds->X, ds->rows, ds->cols, err);
    if (!rc)
        rc = tr_h5_write_targets(f, path, "/y", ds->y, ds->rows, ds->tcols, labels, err);
    if (!rc && ds->column_names)
        rc = tr_h5_attr_str(f, path, "/X", "columns", ds->column_names, err);
    if (!rc && ds->class_names)
        rc = tr_h5_attr_str(f, path, "/y", "class_names", ds->class_names, err);
    if (rc)
        H5Fclose(f);
    else
        rc = tr_h5_finish(f, path, err);
    return rc;
}

/* The files `trainer data gen` writes: HDF5 /X and /y, CSV x<k>..., y. */
static bool dataset_field(const char *f)
{
    if (!strcmp(f, "y"))
        return true;
    if (f[0] != 'x' || !f[1])
        return false;
    for (const char *c = f + 1; *c; c++)
        if (*c < '0' || *c > '9')
            return false;
    return true;
}

static const char *const dataset_names[] = {"X", "y", NULL};
static const tr_output_kind generated_file = {"trainer data gen", dataset_names, dataset_field};

int tr_dataset_save(const tr_dataset *ds, const char *path, bool labels, tr_err *err)
{
    const bool csv = ends_with(path, ".csv");
    if (!csv && !ends_with(path, ".h5") && !ends_with(path, ".hdf5"))
        return tr_fail(err, TR_EUSAGE, "%s: the output must end in .h5, .hdf5 or .csv", path);
    int rc = tr_output_check(path, "--out", NULL, 0, &generated_file, TR_EUSAGE, err);
    tr_atomic a;
    if (!rc)
        rc = tr_atomic_begin(&a, path, csv, TR_EIO, err);
    if (rc)
        return rc;
    rc = csv ? tr_csv_write(ds, a.f, path, ',', err) : save_h5(ds, a.tmp, path, labels, err);
    if (rc) {
        tr_atomic_abort(&a);
        return rc;
    }
    return tr_atomic_commit(&a, TR_EIO, err);
}
