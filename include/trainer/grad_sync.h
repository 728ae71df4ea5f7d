/*
 * grad_sync.h: the bucket plan over the model's flat gradient, and the bucketed allreduce.
 * Buckets are cut from the top of the flat buffer down (the order backward completes it),
 * large weights at row boundaries; each bucket's MPI_Iallreduce starts as soon as backward has
 * finished it, overlapping the backward of the layers below. The other strategies of the
 * exchange (reduce.h) use the plan alone, and the shared one the wire format for its sums
 * across nodes.
 */
#ifndef TRAINER_GRAD_SYNC_H
#define TRAINER_GRAD_SYNC_H

#include "trainer/dist.h"
#include "trainer/error.h"
#include "trainer/half.h"
#include "trainer/model.h"

#include <stddef.h>

typedef struct tr_grad_sync tr_grad_sync;

/* Plans buckets of about bucket_bytes (0 = one bucket per layer) over the model's flat
 * gradient layout, cutting large weight tensors at row boundaries; between ranks the buckets
 * travel in fp32 or compressed to 16 bits (half.h). Collective. */
int tr_grad_sync_create(tr_grad_sync **s, tr_dist *d, const tr_model *m, size_t bucket_bytes,
                        tr_compression compression, tr_err *err);
void tr_grad_sync_free(tr_grad_sync *s);

/* The format between ranks (grad_wire.h, private). */
struct tr_grad_wire *tr_grad_sync_wire(tr_grad_sync *s);

/* Number of buckets and their begin offsets (ascending). */
int tr_grad_sync_buckets(const tr_grad_sync *s, const size_t **begins);

/* Arms the sync for one step on `grads` and fills `hook` for tr_model_backward: buckets
 * start as backward completes them. */
void tr_grad_sync_begin(tr_grad_sync *s, float *grads, tr_grad_hook *hook);

/* Starts any bucket not started yet and waits for all. After it, every rank holds the sum of
 * all ranks' gradients. */
int tr_grad_sync_finish(tr_grad_sync *s, tr_err *err);

#endif
