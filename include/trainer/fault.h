/*
 * fault.h: the test hooks, in one place. Tests set these environment variables to make a
 * failure happen at a chosen point of a real run; a normal run never sets them, and every
 * hook costs one cached lookup.
 *
 *   TRAINER_FAULT_NAN=RANK:STEP          that rank's gradient becomes NaN at optimizer step STEP
 *   TRAINER_FAULT_MPI=SITE               the named MPI call fails with an MPI error (sites:
 *                                        cross_sum, the cross-node sum of the node-shared step;
 *                                        sync_buffers, the broadcast of batch-norm statistics)
 *   TRAINER_TEST_SIGNAL_AT_STEP=RANK:STEP that rank sends itself SIGTERM after step STEP
 *   TRAINER_TEST_CKPT_PAUSE=N:SECONDS    the N-th checkpoint write pauses half-way
 *   TRAINER_TEST_RANKS_PER_NODE=K        ranks are grouped into "nodes" of K consecutive
 *                                        ranks of each real node, so one machine runs the
 *                                        multi-node code paths (shared memory inside a group,
 *                                        MPI between groups)
 */
#ifndef TRAINER_FAULT_H
#define TRAINER_FAULT_H

#include <stdbool.h>
#include <stdint.h>

/* The STEP of a RANK:STEP hook for this rank, or -1 when it is not set for it. */
int64_t tr_fault_rank_step(const char *variable, int rank);

/* The two numbers of an A:B hook; false when it is not set. */
bool tr_fault_pair(const char *variable, int *a, int *b);

/* Whether TRAINER_FAULT_MPI names this site. */
bool tr_fault_mpi(const char *site);

/* TRAINER_TEST_RANKS_PER_NODE, or 0 when unset. */
int tr_fault_ranks_per_node(void);

#endif
