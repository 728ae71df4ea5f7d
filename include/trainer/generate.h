/*
 * generate.h: the built-in data sets, with scikit-learn's definitions where one exists and
 * Philox random numbers keyed by (seed, field, row), so a data set depends only on its
 * parameters and seed.
 *
 *   moons    make_moons: two interleaving half circles, labels 0 (upper) / 1 (lower), shuffled,
 *            Gaussian noise of sd `noise` on both coordinates.
 *   circles  make_circles generalised to two radii: class 0 on the circle of radius r1, class 1
 *            on radius r2, angles evenly spaced, Gaussian noise of sd `sd`, shuffled.
 *   blobs    make_blobs: `classes` isotropic Gaussian clusters (sd `sd`) in `n_features`
 *            dimensions, centres uniform in [-box, box], rows split evenly, shuffled.
 *   linear   x ~ U(x_min, x_max), y = a + b x + U(-noise, noise).
 *   inverse  x ~ U(x_min, x_max) (default [2, 10]), y = b / x + a + noise * N(0, 1)
 *            (defaults: y = 5/x + 2 + N(0,1)/7).
 *   random   `n_features` features U(0, 1), labels uniform in [0, classes): no structure
 *            (benchmarks).
 */
#ifndef TRAINER_GENERATE_H
#define TRAINER_GENERATE_H

#include "trainer/config.h"
#include "trainer/dataset.h"
#include "trainer/error.h"

#include <stdbool.h>

/* Names of the generators, NULL-terminated. */
extern const char *const tr_generator_names[];

/* Generates the configured set. NAN ("auto") parameters take the generator's defaults. */
int tr_generate(tr_dataset *ds, const tr_data_config *dc, tr_err *err);

/* True for the generators whose target is a class label. */
bool tr_generator_is_classification(const char *name);

/* Writes a data set to .h5 (/X float32 (N, F); /y int64 (N) for labels or float32 (N, T))
 * or .csv (by the extension), through a temporary file and a rename. */
int tr_dataset_save(const tr_dataset *ds, const char *path, bool labels, tr_err *err);

#endif
