/*
 * data.h: data sets in memory, loading them from any configured source (generator, HDF5,
 * CSV, IDX), the train/validation/test split, feature scaling, and the checks that the data
 * fit the model.
 *
 * Dimension letters: N = rows, F = feature columns, T = target columns (1 for a class index).
 * Features and targets are float32 row-major; a class label is stored as its float value.
 * Ownership: a tr_dataset owns X and y; tr_data owns its sets and its scaler.
 */
#ifndef TRAINER_DATA_H
#define TRAINER_DATA_H

#include "trainer/config.h"
#include "trainer/error.h"
#include "trainer/loss.h"

#include <stdint.h>

typedef struct tr_dataset {
    int64_t rows;        /* N */
    int64_t cols;        /* F */
    int64_t tcols;       /* T */
    float *X;            /* (N, F) */
    float *y;            /* (N, T) */
    int64_t *origin;     /* (N) where each row came from: its 1-based line in a text file, else its
                          * 0-based row in the source (kept through drops and splits) */
    bool origin_is_line; /* origin holds text-file lines */
    char source[TR_PATH_MAX + 64]; /* the file (or generator) the rows came from, for messages */
} tr_dataset;

/* Feature scaling x' = (x - center) / scale, fitted on the training rows. */
typedef struct tr_scaler {
    tr_scale_kind kind;
    int64_t cols;
    float *center; /* (F): mean (standard), minimum (minmax), 0 (divide) */
    float *scale;  /* (F): standard deviation, max - min, K; 1 where that is 0 (scikit-learn) */
} tr_scaler;

typedef struct tr_data {
    tr_dataset train, val, test;
    tr_scaler scaler;
    char source[TR_PATH_MAX + 64]; /* where the data came from, for messages */
    int64_t dropped;               /* rows dropped for non-finite values */
} tr_data;

/* Allocates an N x F / N x T set (zeroed; origin = 0, 1, ..., N-1). */
int tr_dataset_alloc(tr_dataset *ds, int64_t rows, int64_t cols, int64_t tcols, tr_err *err);

/* Where row r came from, for messages: "file.csv:17" or "file.h5 row 16". */
void tr_dataset_where(const tr_dataset *ds, int64_t r, char *buf, size_t len);
void tr_dataset_free(tr_dataset *ds);

/* Copies the listed rows of src (with their origins) into dst (allocated here). */
int tr_dataset_take(tr_dataset *dst, const tr_dataset *src, const int64_t *rows, int64_t n, tr_err *err);

/* Reads features and targets of an HDF5 file (rows [row_begin, row_end), or all when
 * row_end < 0) from the configured dataset paths. */
int tr_hdf5_read(tr_dataset *ds, const char *path, const char *features, const char *targets, int64_t row_begin,
                 int64_t row_end, tr_err *err);

/* Loads/generates the configured data, handles non-finite rows, splits off the test and
 * validation sets, fits the scaler on the training rows and applies it to every set, and
 * checks that widths and labels fit the model and loss. Messages name the file and its line
 * (or row). Every rank holds every set whole, so every rank sees the same row counts: the
 * decisions that lead to collectives (how many rows to evaluate, which sets exist) are the
 * same everywhere. */
int tr_data_load(tr_data *d, const tr_config *c, const tr_loss *L, tr_err *err);
void tr_data_free(tr_data *d);

/* Splits row indices 0..n-1 into held-out (the first ceil(fraction * n) of a permutation of
 * (split_seed, stream), or the last rows when not shuffled) and kept (the rest, in order), as
 * scikit-learn's train_test_split. Arrays must hold n entries; counts are returned. */
void tr_split_indices(int64_t n, double fraction, uint64_t split_seed, uint32_t stream, bool shuffle,
                      int64_t *kept, int64_t *n_kept, int64_t *held, int64_t *n_held);

int tr_scaler_fit(tr_scaler *s, tr_scale_kind kind, double divisor, const tr_dataset *train, tr_err *err);
void tr_scaler_apply(const tr_scaler *s, float *X, int64_t rows);
void tr_scaler_free(tr_scaler *s);

/* Removes (drop) or reports (error) rows with a non-finite feature or target. Messages name
 * the row by its origin (file line or source row); `what` is used when the set has no
 * source name. */
int tr_dataset_check_finite(tr_dataset *ds, bool drop, const char *what, int64_t *dropped, tr_err *err);

#endif
