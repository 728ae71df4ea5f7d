/*
 * data.h: data sets in memory, the built-in generators, the train/test split and the checks
 * that the data fit the model.
 *
 * Dimension letters: N = rows, F = feature columns, T = target columns (1 for a class index).
 * Features and targets are float32 row-major; a class label is stored as its float value.
 * Ownership: a tr_dataset owns X and y; tr_data owns its sets.
 */
#ifndef TRAINER_DATA_H
#define TRAINER_DATA_H

#include "trainer/config.h"
#include "trainer/error.h"
#include "trainer/loss.h"

#include <stdint.h>

typedef struct tr_dataset {
    int64_t rows;  /* N */
    int64_t cols;  /* F */
    int64_t tcols; /* T */
    float *X;      /* (N, F) */
    float *y;      /* (N, T) */
} tr_dataset;

typedef struct tr_data {
    tr_dataset train, test;
    char source[TR_PATH_MAX]; /* where the data came from, for messages */
} tr_data;

/* Allocates an N x F / N x T set (zeroed). */
int tr_dataset_alloc(tr_dataset *ds, int64_t rows, int64_t cols, int64_t tcols, tr_err *err);
void tr_dataset_free(tr_dataset *ds);

/* Copies the listed rows of src into dst (allocated here). */
int tr_dataset_take(tr_dataset *dst, const tr_dataset *src, const int64_t *rows, int64_t n, tr_err *err);

/* Built-in generators (scikit-learn's definitions, Philox random numbers):
 * moons:  make_moons(n, noise): two interleaving half circles, labels 0/1, shuffled.
 * linear: x ~ U(x_min, x_max), y = a + b x + U(-noise, noise). */
int tr_generate(tr_dataset *ds, const tr_data_config *dc, tr_err *err);

/* Loads/generates the configured data, splits off the test set, and checks that widths and
 * labels fit the model and loss. Messages name the source and the key. */
int tr_data_load(tr_data *d, const tr_config *c, const tr_loss *L, tr_err *err);
void tr_data_free(tr_data *d);

/* Splits row indices 0..n-1 into test (the first ceil(fraction * n) of a permutation from
 * split_seed, or the last rows when not shuffled) and train (the rest), as scikit-learn's
 * train_test_split. Arrays must hold n entries; counts are returned. */
void tr_split_indices(int64_t n, double test_fraction, uint64_t split_seed, bool shuffle, int64_t *train_idx,
                      int64_t *n_train, int64_t *test_idx, int64_t *n_test);

#endif
