/*
 * prefetch.h: the next micro-batch's rows gathered by a helper thread while the current one
 * computes.
 *
 * For a view over a mapped file (dataset.h, mapping.h) the gather takes the page faults: with
 * the data on disk they are the slow part. One helper thread per rank gathers micro-batch
 * j + 1 into a spare pair of buffers while micro-batch j runs forward and backward; taking it
 * swaps the buffers. Identical results: the same tr_dataset_gather, on another thread.
 */
#ifndef TRAINER_PREFETCH_H
#define TRAINER_PREFETCH_H

#include "trainer/dataset.h"
#include "trainer/error.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct tr_prefetch tr_prefetch;

/* A helper with spare buffers of x_floats and y_floats. */
int tr_prefetch_create(tr_prefetch **p, size_t x_floats, size_t y_floats, tr_err *err);
/* Waits for a gather in flight and stops the thread; accepts NULL. */
void tr_prefetch_free(tr_prefetch *p);

/* Starts gathering `rows` of ds (which must stay valid until taken) as micro-batch `tag`. */
void tr_prefetch_start(tr_prefetch *p, const tr_dataset *ds, const int64_t *rows, int64_t n, int64_t tag);

/* If the gather in flight (or done) is `tag`: waits for it and swaps its buffers with *x and
 * *y (the caller's current buffers become the spare ones), true. Else waits for whatever is
 * in flight to finish and returns false: the caller gathers itself. */
bool tr_prefetch_take(tr_prefetch *p, int64_t tag, float **x, float **y);

#endif
