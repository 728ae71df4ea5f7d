/*
 * reduce.h: gradient exchange. Every way of summing the ranks' gradients and of applying the
 * optimizer to the sum lives behind this interface. src/reduce.c holds the step protocol of
 * each strategy, on three building blocks: grad_sync.c (the bucket plan and the bucketed
 * MPI_Iallreduce), fixed_sum.c (the fixed-point sum) and node_group.c (the node-shared
 * memory). Calls go one way: train.c -> reduce.c -> optim.c.
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
#include "trainer/grad_sync.h"
#include "trainer/model.h"
#include "trainer/optim.h"
#include "trainer/phase.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum tr_reduce_kind { TR_REDUCE_LOCAL, TR_REDUCE_ALLREDUCE, TR_REDUCE_SHARED, TR_REDUCE_EXACT } tr_reduce_kind;

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
 * shared memory. The exchange applies o (its rules included) to the ranges it owns as they
 * are summed. chunk_bufs: gradient buffers for the exact strategy (chunks one rank computes
 * in a step). Summing opens comm_wait and updating optimizer on `clock`. Collective. */
int tr_reduce_create(tr_reduce **r, tr_dist *d, tr_model *m, tr_optim *o, const tr_train_config *tc,
                     int64_t chunk_bufs, tr_phase_clock *clock, tr_err *err);
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

#endif
