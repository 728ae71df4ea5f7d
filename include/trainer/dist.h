/*
 * dist.h: the process group. src/dist.c is the only file that calls MPI; everything else
 * sees this context and these functions.
 *
 * A single rank started without mpirun is a world of size 1 (MPI singleton), so the same
 * binary serves a laptop, `mpirun -np N` and `srun`.
 */
#ifndef TRAINER_DIST_H
#define TRAINER_DIST_H

#include "trainer/error.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct tr_dist_impl tr_dist_impl;

typedef struct tr_dist {
    int rank, size;
    int local_rank, local_size; /* on this node */
    tr_dist_impl *impl;         /* the communicator and requests (dist.c) */
} tr_dist;

/* MPI_Init (errors returned, not fatal) and the world context. */
int tr_dist_init(tr_dist *d, int *argc, char ***argv, tr_err *err);

/* A world of one rank without MPI (unit tests, tools that never communicate): every
 * collective below is then a local no-op. */
void tr_dist_init_local(tr_dist *d);
void tr_dist_finalize(tr_dist *d);

/* Ends every rank of the job with `status` (a failure the other ranks cannot see). */
void tr_dist_abort(tr_dist *d, int status);

void tr_dist_barrier(tr_dist *d);

#endif
