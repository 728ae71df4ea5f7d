/*
 * sklearn_data.h: the real data sets that Debian's python3-sklearn package ships as plain
 * files (its sklearn/datasets/data/ folder), read in C: no Python at run time.
 *
 *   iris           150 x 4, 3 classes (setosa, versicolor, virginica)
 *   wine           178 x 13, 3 classes (class_0..class_2)
 *   breast_cancer  569 x 30, 2 classes (malignant = 0, benign = 1)
 *   digits         1797 x 64 (8x8 images, values 0..16), 10 classes
 *   boston         506 x 13, regression (MEDV, median home value in $1000s)
 *   diabetes       442 x 10 (raw, unscaled: load_diabetes(scaled=False)), regression
 *
 * The files are scikit-learn's own format: a first line with the row and column counts (and
 * the class names), Boston a second line naming the columns, digits no header, diabetes two
 * whitespace-separated files (features, targets); gzip or not (zlib reads both). The feature
 * and class names are those scikit-learn's loaders give.
 */
#ifndef TRAINER_SKLEARN_DATA_H
#define TRAINER_SKLEARN_DATA_H

#include "trainer/dataset.h"
#include "trainer/error.h"

#include <stdbool.h>

/* Where Debian's python3-sklearn installs the files ([data] builtin_dir's default). */
#define TR_SKLEARN_DATA_DIR "/usr/lib/python3/dist-packages/sklearn/datasets/data"

/* The names of the sets, NULL-terminated, in the order above. */
extern const char *const tr_sklearn_set_names[];

/* True for the sets whose target is a class label. */
bool tr_sklearn_is_classification(const char *name);

/* Reads set `name` from the files in `dir` into ds (features, targets, column and class
 * names; origin = the file line of each row). A missing file is an error naming it and the
 * package to install; a malformed one names the file and line. */
int tr_sklearn_read(tr_dataset *ds, const char *name, const char *dir, tr_err *err);

#endif
