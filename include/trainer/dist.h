/*
 * dist.h: the process group and every collective the trainer uses. src/dist.c is the only
 * file that calls MPI; everything else sees this context and these functions.
 *
 * A single rank started without mpirun is a world of size 1 (MPI singleton), so the same
 * binary serves a laptop, `mpirun -np N` and `srun`. tr_dist_init_local gives a world of one
 * without MPI at all (unit tests); every collective is then a local no-op.
 *
 * Gradient synchronisation (tr_grad_sync) sums the flat gradient buffer over the ranks in
 * buckets: contiguous ranges planned from the model's tensor table, last layer first, each
 * started with MPI_Iallreduce as soon as backward has finished it (see tr_grad_hook), so the
 * communication of late layers overlaps the backward pass of early ones. The exact variant
 * (deterministic mode) sums micro-batch gradients in 64-bit fixed point, which is
 * associative, so the result does not depend on how micro-batches are spread over ranks.
 */
#ifndef TRAINER_DIST_H
#define TRAINER_DIST_H

#include "trainer/error.h"
#include "trainer/model.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tr_dist_impl tr_dist_impl;

typedef struct tr_dist {
    int rank, size;
    int local_rank, local_size; /* on this node */
    tr_dist_impl *impl;         /* the communicator (dist.c); NULL in a local world */
} tr_dist;

/* MPI_Init (errors returned, not fatal) and the world context. */
int tr_dist_init(tr_dist *d, int *argc, char ***argv, tr_err *err);

/* A world of one rank without MPI (unit tests, tools that never communicate). */
void tr_dist_init_local(tr_dist *d);

/* A sub-world of the ranks of `parent` that pass the same `color` (MPI_Comm_split), ordered
 * by parent rank. Ranks that pass color < 0 get no sub-world (sub->size = 0). Collective. */
int tr_dist_split(tr_dist *parent, int color, tr_dist *sub, tr_err *err);

/* Releases a sub-world from tr_dist_split. */
void tr_dist_free(tr_dist *d);

/* Frees the world and calls MPI_Finalize. */
void tr_dist_finalize(tr_dist *d);

void tr_dist_barrier(tr_dist *d);

/* Agreement on failure: every rank passes its own result code; every rank gets the most
 * negative code of all ranks (0 when all succeeded). Collective. */
int tr_dist_agree(tr_dist *d, int rc);

/* Blocking reductions of small arrays, in place on every rank. */
int tr_dist_sum_f64(tr_dist *d, double *buf, int n, tr_err *err);
int tr_dist_max_f64(tr_dist *d, double *buf, int n, tr_err *err);
int tr_dist_sum_i64(tr_dist *d, int64_t *buf, int n, tr_err *err);

/* Broadcast of `bytes` bytes from root. */
int tr_dist_bcast(tr_dist *d, void *buf, size_t bytes, int root, tr_err *err);

/* In-place gather of contiguous pieces: every rank's `count` items already sit in `all` at
 * `offset`, the pieces are in rank order without gaps (offset = the counts of the lower
 * ranks); afterwards every rank holds all of them. */
int tr_dist_allgather_f32(tr_dist *d, float *all, int64_t offset, int64_t count, tr_err *err);
int tr_dist_allgather_f64(tr_dist *d, double *all, int64_t offset, int64_t count, tr_err *err);

/* Sets *same to whether `bytes` bytes at buf are identical on every rank (64-bit hash). */
int tr_dist_same_everywhere(tr_dist *d, const void *buf, size_t bytes, bool *same, tr_err *err);

/* Number of logical CPUs of this node (for the BLAS thread default). */
int tr_dist_cpus(void);

/* --------------------------------------------------------------- gradient sync ------- */

typedef struct tr_grad_sync tr_grad_sync;

/* Plans buckets of about bucket_bytes (0 = one bucket per layer) over the model's flat
 * gradient layout, cutting large weight tensors at row boundaries. */
int tr_grad_sync_create(tr_grad_sync **s, tr_dist *d, const tr_model *m, size_t bucket_bytes, bool exact,
                        tr_err *err);
void tr_grad_sync_free(tr_grad_sync *s);

/* Number of buckets and their begin offsets (ascending), for tests and reports. */
int tr_grad_sync_buckets(const tr_grad_sync *s, const size_t **begins);

/* Arms the sync for one step on `grads` and fills `hook` for tr_model_backward: buckets
 * start as backward completes them. */
void tr_grad_sync_begin(tr_grad_sync *s, float *grads, tr_grad_hook *hook);

/* Starts any bucket not started yet, waits for all, and adds the time spent waiting to
 * *wait_seconds. After it, every rank holds the sum of all ranks' gradients. */
int tr_grad_sync_finish(tr_grad_sync *s, double *wait_seconds, tr_err *err);

/*
 * Deterministic mode: exact sum of micro-batch gradients. micro[j] (j < n_micro) are this
 * rank's micro-batch gradients (flat layout), loss[j] their loss sums, counts[0..1] this
 * rank's (correct predictions, rows). Every value is rounded once to a 64-bit fixed-point
 * grid per tensor, 2^(e-40) with 2^e above the largest magnitude of that tensor on any rank,
 * and the integers are summed, which is associative. Writes the sum to out (flat layout),
 * the total loss and counts. Returns TR_EDIVERGED on every rank when any value anywhere is
 * not finite.
 */
int tr_grad_sync_exact(tr_grad_sync *s, float *const *micro, const double *loss, int n_micro,
                       const int64_t counts[2], float *out, double *loss_total, int64_t counts_total[2],
                       tr_err *err);

/* --------------------------------------------------------------- node-shared step --- */

/*
 * The node-shared step (default on one node): the parameters and the optimizer state live
 * once per node in MPI-3 shared memory, every rank accumulates its gradient into its own
 * slot of that memory, and once all ranks of the node have finished a bucket, each rank sums
 * its shard of the bucket over the slots (and, across nodes, allreduces that shard with the
 * same-numbered rank of every other node) and applies the optimizer to it. Every rank then
 * reads the same parameters, so nothing is broadcast, the optimizer work is divided by the
 * ranks of a node, and the replicas cannot drift apart. Needs the same number of ranks on
 * every node.
 */
typedef struct tr_node_group tr_node_group;

/* Collective. Sets *g to NULL (and returns 0) when the world cannot use it (nodes with
 * different numbers of ranks). n_params floats per buffer; n_state optimizer buffers;
 * n_buckets completion counters. */
int tr_node_group_create(tr_node_group **g, tr_dist *d, size_t n_params, int n_state, int n_buckets, tr_err *err);
void tr_node_group_free(tr_node_group *g);

float *tr_node_group_params(tr_node_group *g);
float *tr_node_group_state(tr_node_group *g, int i);
float *tr_node_group_slot(tr_node_group *g, int local_rank);

/* This rank has finished bucket b of round r (r = 1, 2, ...). */
void tr_node_group_signal(tr_node_group *g, int b, int64_t r);
/* Every rank of the node has finished bucket b of round r. */
bool tr_node_group_complete(const tr_node_group *g, int b, int64_t r);

/* Sums buf over the same-numbered ranks of all nodes (no-op on one node). */
int tr_node_group_cross_sum(tr_node_group *g, float *buf, int64_t n, tr_err *err);

/* Whether there is more than one node. */
bool tr_node_group_multinode(const tr_node_group *g);

#endif
