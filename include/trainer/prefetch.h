/*
 * prefetch.h: the next micro-batch's rows gathered by a helper thread while the current one
 * computes.
 *
 * For a view over a mapped file (dataset.h, mapping.h) the gather takes the page faults: with
 * the data on disk they are the slow part. One helper thread per rank gathers micro-batch
 * j + 1 into a spare pair of buffers while micro-batch j runs forward and backward; taking it
 * swaps the buffers. Identical results: the same tr_dataset_gather, on another thread. With a
 * block shuffle a second thread asks the kernel for the next window's blocks while the current
 * window trains: the reads are queued in long runs, and queuing them (the kernel allocating the
 * pages) holds up neither the gather nor the step.
 */
#ifndef TRAINER_PREFETCH_H
#define TRAINER_PREFETCH_H

#include "trainer/dataset.h"
#include "trainer/error.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct tr_prefetch tr_prefetch;

/* A helper with spare buffers of x_floats and y_floats; with read_ahead, a second thread (the
 * reader) for the lists of rows to read ahead (tr_prefetch_start). */
int tr_prefetch_create(tr_prefetch **p, size_t x_floats, size_t y_floats, bool read_ahead, tr_err *err);
/* Waits for a gather in flight and stops the thread; accepts NULL. */
void tr_prefetch_free(tr_prefetch *p);

/* Starts gathering `rows` of ds (which must stay valid until taken) as micro-batch `tag`.
 * With n_ahead > 0 (and a reader), `ahead` lists rows coming later (the next window of a file
 * on disk, in long runs; valid until the next start with a list has returned), which the reader
 * asks the system to read in the background; a start with a list waits for the reader to be
 * done with the last one. Without lists, a job that had to wait for the disk makes the next
 * jobs ask for all their rows at once first. */
void tr_prefetch_start(tr_prefetch *p, const tr_dataset *ds, const int64_t *rows, int64_t n, int64_t tag,
                       const int64_t *ahead, int64_t n_ahead);

/* If the gather in flight (or done) is `tag`: waits for it and swaps its buffers with *x and
 * *y (the caller's current buffers become the spare ones), true. Else waits for whatever is
 * in flight to finish and returns false: the caller gathers itself. */
bool tr_prefetch_take(tr_prefetch *p, int64_t tag, float **x, float **y);

#endif
