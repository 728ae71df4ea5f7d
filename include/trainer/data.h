/*
 * data.h: loading the configured data from any source (generator, HDF5, CSV, IDX), the
 * train/validation/test split, feature scaling, and the checks that the data fit the model.
 * The sets themselves are tr_dataset (dataset.h). Ownership: tr_data owns its sets and its
 * scaler.
 */
#ifndef TRAINER_DATA_H
#define TRAINER_DATA_H

#include "trainer/config.h"
#include "trainer/dataset.h"
#include "trainer/error.h"
#include "trainer/loss.h"
#include "trainer/mapping.h"

#include <stdint.h>

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
    int64_t fingerprint;           /* of the training set (tr_data_fingerprint), stored in checkpoints */
    char *class_names;             /* the classes the data named (text labels), "a, b, ..." or NULL */
    char *feature_names;           /* the training set's feature columns as its file names them, "a, b, ..."
                                    * or NULL (on the ranks that loaded it); stored in checkpoints */
    struct tr_node_mem *shared;    /* the node-shared memory the sets borrow (data_node.h), or NULL */
    int32_t *fold_of;              /* [data] folds: the fold of each row of the training pool (the rows the
                                    * test set leaves, in the pool's order), or NULL */
    int64_t *fold_origin;          /* (n_fold_rows) each such row's origin (dataset.h) */
    int64_t n_fold_rows;
    bool fold_origin_is_line;
    tr_mapping maps[2];            /* the mapped training and test files the views read */
} tr_data;

/* Reads features and targets of an HDF5 file (rows [row_begin, row_end), or all when
 * row_end < 0) from the configured dataset paths. */
int tr_hdf5_read(tr_dataset *ds, const char *path, const char *features, const char *targets, int64_t row_begin,
                 int64_t row_end, tr_err *err);
/* The same, but whole contiguous float32 features are mapped into *map (a view) when map is
 * not NULL. */
int tr_hdf5_load(tr_dataset *ds, tr_mapping *map, const char *path, const char *features, const char *targets,
                 int64_t row_begin, int64_t row_end, tr_err *err);

/* Reads one file as the [data] keys describe it (its format from dc->format, else from the
 * extension: .csv/.txt CSV, .h5/.hdf5 HDF5, anything else IDX images with dc->labels), without
 * splitting or scaling, into memory (never mapped). */
int tr_data_read_file(tr_dataset *ds, const tr_data_config *dc, const char *path, int64_t *dropped, tr_err *err);

/* Loads/generates the configured data, handles non-finite rows, splits off the test and
 * validation sets, fits the scaler on the training rows and applies it to every set, and
 * checks that widths and labels fit the model and loss. Messages name the file and its line
 * (or row). Every rank holds every set whole, so every rank sees the same row counts: the
 * decisions that lead to collectives (how many rows to evaluate, which sets exist) are the
 * same everywhere. */
int tr_data_load(tr_data *d, const tr_config *c, const tr_loss *L, tr_err *err);
/* Checks that every set's widths and labels fit the model and loss of `c` (what
 * tr_data_load checks; for data loaded for another configuration of the same data). */
int tr_data_check_fit(const tr_data *d, const tr_config *c, const tr_loss *L, tr_err *err);
/* Frees the sets; with node-shared sets this is collective over the node (every rank of the
 * node frees its tr_data at the same point). */
void tr_data_free(tr_data *d);

/* CRC-32 of a set's shape, its targets and up to 4096 of its rows as stored (evenly spaced):
 * what a resume compares to tell other data from the same, without reading all of it. */
int64_t tr_data_fingerprint(const tr_dataset *ds);

/* Splits row indices 0..n-1 into held-out (the rows among the first ceil(fraction * n) of a
 * permutation of (split_seed, stream), or the last rows when not shuffled) and kept (the rest),
 * as scikit-learn's train_test_split chooses them; both lists ascend (the file's order: the
 * training order is the sampler's business). Arrays must hold n entries; counts are returned. */
void tr_split_indices(int64_t n, double fraction, uint64_t split_seed, uint32_t stream, bool shuffle,
                      int64_t *kept, int64_t *n_kept, int64_t *held, int64_t *n_held);

/* K-fold cross-validation: the fold (0..folds-1) of each of n rows, from a permutation of
 * (split_seed, stream 2), or the file's order when not shuffled. With labels (row r's class
 * at labels[r * stride]) the rows of each class, in that order, are dealt to the folds in
 * turn, the count running on from one class to the next: every fold holds each class's rows
 * in proportion to one row, and the folds' sizes differ by at most one (stratified); without
 * labels the permutation is dealt alike, or unshuffled rows go in consecutive blocks. */
int tr_fold_assign(int64_t n, const float *labels, int64_t stride, int64_t folds, uint64_t split_seed, bool shuffle,
                   int32_t *fold_of, tr_err *err);

/* Text labels (ds->class_names with y the index of each row's word) renumbered to the classes
 * `classes` ("a, b, ..."): the same word, the same class. A word that is not among them is an
 * error naming the first row that holds it. No effect on a set without text labels. */
int tr_data_renumber_classes(tr_dataset *ds, const char *classes, tr_err *err);

int tr_scaler_fit(tr_scaler *s, tr_scale_kind kind, double divisor, const tr_dataset *train, tr_err *err);
void tr_scaler_apply(const tr_scaler *s, float *X, int64_t rows);
/* A plain set is scaled in place; a view (dataset.h) scales as it reads. */
void tr_data_use_scaler(tr_dataset *ds, const tr_scaler *s);
void tr_scaler_free(tr_scaler *s);

#endif
