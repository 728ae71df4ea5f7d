/*
 * dist.h: the process group, the small collectives the trainer uses and node-shared
 * memory. The files that call MPI are dist.c, the gradient exchange (reduce.c, grad_sync.c,
 * node_group.c) and watchdog.c (src/dist_impl.h); everything else sees this context and
 * these functions.
 *
 * A single rank started without mpirun is a world of size 1 (MPI singleton), so the same
 * binary serves a laptop, `mpirun -np N` and `srun`. tr_dist_init_local gives a world of one
 * without MPI at all (unit tests); every collective is then a local no-op.
 */
#ifndef TRAINER_DIST_H
#define TRAINER_DIST_H

#include "trainer/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tr_dist_impl tr_dist_impl;

typedef struct tr_dist {
    int rank, size;
    int local_rank, local_size; /* on this node */
    int cpus_allowed;           /* CPUs this rank may run on: its affinity mask (a launcher's binding) */
    int cpus;                   /* its share of them: a CPU that k ranks of the node may use counts 1/k
                                 * (rounded down, at least 1); the BLAS thread default */
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

/* Point-to-point messages of a few hundred bytes (the search's trial queue, trial_queue.h).
 * Not watched by the watchdog: an answer may rightly take as long as another group's epoch.
 * tr_dist_probe never blocks: whether a message with `tag` from any rank waits (*from: its
 * sender). tr_dist_recv blocks; from < 0 takes any sender (*sender, when not NULL, says which). */
int tr_dist_send(tr_dist *d, int dest, int tag, const void *buf, size_t bytes, tr_err *err);
bool tr_dist_probe(tr_dist *d, int tag, int *from);
int tr_dist_recv(tr_dist *d, int from, int tag, void *buf, size_t bytes, int *sender, tr_err *err);
/* A send that returns once `dest` has taken the message (a synchronous send: proof that it is
 * alive and listening), with *taken = true, or after within_s seconds without that, with
 * *taken = false and the message still pending: the caller ends the process. within_s <= 0
 * waits without a limit. */
int tr_dist_send_taken(tr_dist *d, int dest, int tag, const void *buf, size_t bytes, double within_s, bool *taken,
                       tr_err *err);

/* Sets *same to whether `bytes` bytes at buf are identical on every rank (64-bit hash). */
int tr_dist_same_everywhere(tr_dist *d, const void *buf, size_t bytes, bool *same, tr_err *err);

/* Node-shared memory (an MPI-3 shared window): local rank 0 provides `bytes`, every rank of
 * the node gets *base pointing at them. Alone on the node (or without MPI) nothing is
 * allocated: *base and *mem are NULL and the caller keeps its own memory. Collective over
 * the world (every rank calls it, whatever its node's size). */
typedef struct tr_node_mem tr_node_mem;
int tr_node_mem_alloc(tr_dist *d, size_t bytes, void **base, tr_node_mem **mem, tr_err *err);
/* The same with a part from every rank of the node, `mine` bytes from this one (the parts
 * need not be contiguous); tr_node_mem_part gives each part's address on this rank (a node
 * of one rank has one part), even alone on the node. Needs MPI (d->impl). Collective over
 * the world, like tr_node_mem_alloc. */
int tr_node_mem_alloc_parts(tr_dist *d, size_t mine, tr_node_mem **mem, tr_err *err);
void *tr_node_mem_part(const tr_node_mem *mem, int local_rank);
/* Collective over the node; accepts NULL. */
void tr_node_mem_free(tr_node_mem *mem);

/* Broadcast from local rank 0 to the ranks of its node, and a barrier of the node. */
int tr_dist_node_bcast(tr_dist *d, void *buf, size_t bytes, tr_err *err);
void tr_dist_node_barrier(tr_dist *d);

/* A rank's share of CPUs from the node's affinity masks (`words` 64-bit words per rank, n
 * ranks): each CPU in rank me's mask counts 1/k, k the ranks whose masks hold it. Ranks bound
 * to their own cores get all of theirs; unbound ranks split the node. At least 1. */
int tr_cpu_share(const uint64_t *masks, int words, int n, int me);

#endif
