/*
 * reduce.h: gradient exchange. Every way of summing the ranks' gradients and of applying the
 * optimizer to the sum lives behind this interface, in src/reduce.c (with dist.c the only
 * file that calls MPI):
 *
 *   local      one rank: each tensor is updated as soon as backward is done with it, while
 *              its gradient is still in cache
 *   allreduce  the flat gradient is cut into buckets, each MPI_Iallreduce'd as soon as
 *              backward has finished it (overlapping the backward of earlier layers); then
 *              every rank updates every parameter (a replicated optimizer)
 *   shared     parameters and optimizer state live once per node in MPI-3 shared memory;
 *              every rank writes its gradient into its own slot there, and once all ranks
 *              of the node have finished a bucket, each rank sums its shard of the bucket
 *              over the slots (in slot order), across nodes with the same-numbered rank of
 *              every other node, and updates that shard: nothing is broadcast and the
 *              optimizer's work is divided by the ranks of a node
 *   exact      deterministic mode: each chunk's gradient is rounded once to a fixed-point
 *              grid and the integers are summed, which is associative, so the sum cannot
 *              depend on which rank computed which chunk. The chunks, parameters and
 *              optimizer state live in the node's shared memory as in `shared`: each rank
 *              sums its shard over every chunk of the node, then across nodes, and updates
 *              it (without a node group every rank is its own node)
 *
 * One optimizer step:
 *   tr_reduce_begin(r)
 *   for each micro-step j: forward; backward(grads, add = tr_reduce_adds(r, j),
 *                                            hook = tr_reduce_hook(r, j is the last))
 *     (exact: for each chunk: forward; backward into tr_reduce_chunk(r, i, loss))
 *   tr_reduce_finish(r, &stats)   the sum, the global norm for clip_norm, the update, and
 *                                 the step's statistics summed over the ranks
 * Adding a strategy (say reduce-scatter with a sharded optimizer) touches this file's enum
 * and reduce.c only.
 */
#ifndef TRAINER_REDUCE_H
#define TRAINER_REDUCE_H

#include "trainer/config.h"
#include "trainer/dist.h"
#include "trainer/error.h"
#include "trainer/model.h"
#include "trainer/optim.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum tr_reduce_kind { TR_REDUCE_LOCAL, TR_REDUCE_ALLREDUCE, TR_REDUCE_SHARED, TR_REDUCE_EXACT } tr_reduce_kind;

/* What the trainer does to a range of parameters; the exchange decides which ranges, when,
 * and on which rank. */
typedef struct tr_update_ops {
    void *ctx;
    void (*begin)(void *ctx);                                      /* an optimizer step starts */
    /* false: a non-finite value. out: where the updated values of [lo, hi) go, from out[0]
     * (NULL: in place) */
    bool (*update)(void *ctx, size_t lo, size_t hi, float scale, float *out);
    double (*sq_norm)(void *ctx, size_t lo, size_t hi);            /* of the regularised gradient */
} tr_update_ops;

/* A step's statistics: this rank's going into tr_reduce_finish, all ranks' coming out. */
typedef struct tr_step_stats {
    double loss;           /* loss sum */
    int64_t correct, rows; /* correct predictions (classification), rows */
    bool stop;             /* in: this rank was asked to stop; out: some rank was */
    const char *nonfinite; /* out: "loss", "gradient", "loss or gradient", or NULL */
    double grad_norm;      /* out: the global L2 norm of the summed, regularised gradient before
                            * clipping when tr_reduce_measure_norm asked for it, else NAN */
} tr_step_stats;

typedef struct tr_reduce tr_reduce;

/* Chooses the strategy from [train] comm and deterministic and the world, and builds it:
 * for `shared`, moves the model's parameters and the optimizer's state into the node's
 * shared memory. chunk_bufs: gradient buffers for the exact strategy (chunks one rank
 * computes in a step). Phase times go to *comm_s and *optim_s. Collective. */
int tr_reduce_create(tr_reduce **r, tr_dist *d, tr_model *m, tr_optim *o, const tr_train_config *tc,
                     int64_t chunk_bufs, const tr_update_ops *ops, double *comm_s, double *optim_s, tr_err *err);
/* Frees the exchange; the model and optimizer that point into its shared memory must be
 * freed first. Accepts NULL. */
void tr_reduce_free(tr_reduce *r);

tr_reduce_kind tr_reduce_kind_of(const tr_reduce *r);

/* Whether the parameters and optimizer state live once per node in shared memory (then only
 * local rank 0 writes them, e.g. when loading a checkpoint). */
bool tr_reduce_shares_params(const tr_reduce *r);

/* Whether each step's updated parameters go to memory with streaming stores (the shared
 * exchange of a large model): the next forward pass then reads them from memory. */
bool tr_reduce_streams_params(const tr_reduce *r);

void tr_reduce_begin(tr_reduce *r);

/* Whether the coming step measures the gradient's norm (tr_step_stats.grad_norm): one more
 * pass over the gradient as it is applied, and no extra collective. Call before
 * tr_reduce_begin. */
void tr_reduce_measure_norm(tr_reduce *r, bool on);

/* Whether the backward of micro-step j adds into the gradient buffer (else it overwrites). */
bool tr_reduce_adds(const tr_reduce *r, int64_t j);

/* The hook for a micro-step's backward (NULL: none); `last` marks the step's last one. */
const tr_grad_hook *tr_reduce_hook(tr_reduce *r, bool last);

/* Exact strategy: the buffer for chunk i of this rank's chunks in this step (i < chunk_bufs),
 * whose loss sum is `loss`. */
float *tr_reduce_chunk(tr_reduce *r, int64_t i, double loss);

/* Completes the step: every rank's gradient summed, the optimizer applied, the statistics
 * summed. An MPI failure keeps its own status (TR_EMPI) whatever else happened. Collective. */
int tr_reduce_finish(tr_reduce *r, tr_step_stats *st, tr_err *err);

/* ------------------------------------------------ building blocks (exposed for tests) -- */

typedef struct tr_grad_sync tr_grad_sync;

/* Plans buckets of about bucket_bytes (0 = one bucket per layer) over the model's flat
 * gradient layout, cutting large weight tensors at row boundaries. Collective. */
int tr_grad_sync_create(tr_grad_sync **s, tr_dist *d, const tr_model *m, size_t bucket_bytes, bool exact,
                        tr_err *err);
void tr_grad_sync_free(tr_grad_sync *s);

/* Number of buckets and their begin offsets (ascending). */
int tr_grad_sync_buckets(const tr_grad_sync *s, const size_t **begins);

/* Arms the sync for one step on `grads` and fills `hook` for tr_model_backward: buckets
 * start as backward completes them. */
void tr_grad_sync_begin(tr_grad_sync *s, float *grads, tr_grad_hook *hook);

/* Starts any bucket not started yet, waits for all, and adds the time spent waiting to
 * *wait_seconds. After it, every rank holds the sum of all ranks' gradients. */
int tr_grad_sync_finish(tr_grad_sync *s, double *wait_seconds, tr_err *err);

/*
 * Exact sum of gradients: micro[j] (j < n_micro) are this rank's gradients (flat layout),
 * loss[j] their loss sums, counts[0..1] this rank's (correct predictions, rows). Every value
 * is rounded once to a 64-bit fixed-point grid per tensor, 2^(e-40) with 2^e above the
 * largest magnitude of that tensor on any rank, and the integers are summed, which is
 * associative. Writes the sum to out (flat layout), the total loss and counts. Returns
 * TR_EDIVERGED on every rank when any value anywhere is not finite.
 */
int tr_grad_sync_exact(tr_grad_sync *s, float *const *micro, const double *loss, int n_micro,
                       const int64_t counts[2], float *out, double *loss_total, int64_t counts_total[2],
                       tr_err *err);

#endif
