/*
 * dataset.h: a data set, what every reader produces and the loader splits.
 *
 * Dimension letters: N = rows, F = feature columns, T = target columns (1 for a class index).
 * Features and targets are float32 row-major; a class label is stored as its float value.
 *
 * A set is plain (X holds its N rows as the model uses them) or a view: X is someone else's
 * rows (a mapped file, mapping.h), `index` picks the set's rows from them and the feature
 * scaling is applied as rows are read. The model reads a set only through tr_dataset_gather
 * and tr_dataset_block, which give the same bits for both. y and origin are always the set's
 * own, one entry per set row.
 * Ownership: a tr_dataset owns X, y, origin and index, except X when `x_borrowed` (a view)
 * and all of them when `borrowed` (the node-shared copy of data_node.h).
 */
#ifndef TRAINER_DATASET_H
#define TRAINER_DATASET_H

#include "trainer/error.h"
#include "trainer/files.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tr_dataset {
    int64_t rows;        /* N */
    int64_t cols;        /* F */
    int64_t tcols;       /* T */
    float *X;            /* (N, F); a view: the rows index picks from (read-only) */
    float *y;            /* (N, T) */
    int64_t *origin;     /* (N) where each row came from: its 1-based line in a text file, else its
                          * 0-based row in the source (kept through drops and splits) */
    bool origin_is_line; /* origin holds text-file lines */
    char source[TR_PATH_MAX + 64]; /* the file (or generator) the rows came from, for messages */
    bool borrowed;                 /* X, y, origin and index are not this set's to free (read-only) */
    bool x_borrowed;               /* X is not this set's (a view) */
    const int64_t *index;          /* (N) a view's rows of X; NULL: rows 0..N-1 */
    const float *center, *scale;   /* a view: x' = (x - center) / scale as rows are read; NULL: none */
    char *class_names;             /* "name, name, ..." when the file named its classes (text labels), or NULL */
    char *column_names;            /* "name, name, ..." of the feature columns when the file names them, or NULL */
} tr_dataset;

/* Allocates an N x F / N x T set (zeroed; origin = 0, 1, ..., N-1). */
int tr_dataset_alloc(tr_dataset *ds, int64_t rows, int64_t cols, int64_t tcols, tr_err *err);

/* Where row r came from, for messages: "file.csv:17" or "file.h5 row 16". */
void tr_dataset_where(const tr_dataset *ds, int64_t r, char *buf, size_t len);
void tr_dataset_free(tr_dataset *ds);

/* Feature scaling, the one expression of it: out = (x - center) / scale over F columns (out
 * may be x). The in-place scaling of a loaded set and a view's scaling as it reads both use
 * it, so the two give the same bits. */
void tr_scale_row(float *out, const float *x, const float *center, const float *scale, int64_t F);

/* The listed rows of the set (positions 0..N-1) into x (n x F), as the model uses them, and
 * their targets into y (n x T). */
void tr_dataset_gather(const tr_dataset *ds, const int64_t *rows, int64_t n, float *x, float *y);
/* For a mapped set (x_borrowed): asks the kernel to start reading these rows' pages now, one
 * request per run of nearby rows, so that a gather that follows waits for the disk once per
 * batch, not once per row. No effect on other sets. */
void tr_dataset_will_need(const tr_dataset *ds, const int64_t *rows, int64_t n);

/* Rows [begin, begin + n) as the model uses them: in place for a plain set, else gathered
 * into buf (n x F). */
const float *tr_dataset_block(const tr_dataset *ds, int64_t begin, int64_t n, float *buf);

/* Row r as stored (before scaling): for checks and scaler fitting. */
const float *tr_dataset_stored_row(const tr_dataset *ds, int64_t r);

/* A set that reads X where it lies: the rows of X (rows x cols, not owned) with their own
 * targets and origins (allocated here, origin = 0..rows-1). */
int tr_dataset_view(tr_dataset *ds, const float *X, int64_t rows, int64_t cols, int64_t tcols, tr_err *err);

/* The listed rows of src (with their origins) into dst: copied for a plain set, a view of
 * the same X for a view. */
int tr_dataset_take(tr_dataset *dst, const tr_dataset *src, const int64_t *rows, int64_t n, tr_err *err);

/* Removes (drop) or reports (error) rows with a non-finite feature or target. Messages name
 * the row by its origin (file line or source row); `what` is used when the set has no
 * source name. */
int tr_dataset_check_finite(tr_dataset *ds, bool drop, const char *what, int64_t *dropped, tr_err *err);

#endif
