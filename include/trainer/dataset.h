/*
 * dataset.h: a data set in memory, what every reader produces and the loader splits.
 *
 * Dimension letters: N = rows, F = feature columns, T = target columns (1 for a class index).
 * Features and targets are float32 row-major; a class label is stored as its float value.
 * Ownership: a tr_dataset owns X, y and origin.
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
    float *X;            /* (N, F) */
    float *y;            /* (N, T) */
    int64_t *origin;     /* (N) where each row came from: its 1-based line in a text file, else its
                          * 0-based row in the source (kept through drops and splits) */
    bool origin_is_line; /* origin holds text-file lines */
    char source[TR_PATH_MAX + 64]; /* the file (or generator) the rows came from, for messages */
} tr_dataset;

/* Allocates an N x F / N x T set (zeroed; origin = 0, 1, ..., N-1). */
int tr_dataset_alloc(tr_dataset *ds, int64_t rows, int64_t cols, int64_t tcols, tr_err *err);

/* Where row r came from, for messages: "file.csv:17" or "file.h5 row 16". */
void tr_dataset_where(const tr_dataset *ds, int64_t r, char *buf, size_t len);
void tr_dataset_free(tr_dataset *ds);

/* Copies the listed rows of src (with their origins) into dst (allocated here). */
int tr_dataset_take(tr_dataset *dst, const tr_dataset *src, const int64_t *rows, int64_t n, tr_err *err);

/* Removes (drop) or reports (error) rows with a non-finite feature or target. Messages name
 * the row by its origin (file line or source row); `what` is used when the set has no
 * source name. */
int tr_dataset_check_finite(tr_dataset *ds, bool drop, const char *what, int64_t *dropped, tr_err *err);

#endif
