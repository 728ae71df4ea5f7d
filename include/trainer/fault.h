/*
 * fault.h: the test hooks, in one place. Tests set these environment variables to make a
 * failure happen at a chosen point of a real run, or to pin a code path; a normal run never
 * sets them. They are read and checked once, when the program starts (tr_faults_load: a
 * malformed value is an error naming the variable), and every hook is then a field lookup.
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
 *   TRAINER_VMATH=PATH                   the vector-math path (vmath.h: avx512, avx2, fma,
 *                                        scalar) instead of the widest the CPU runs
 */
#ifndef TRAINER_FAULT_H
#define TRAINER_FAULT_H

#include "trainer/error.h"

#include <stdbool.h>
#include <stdint.h>

/* Reads and checks every hook (TR_EUSAGE naming the variable and its value when one is
 * malformed, or TRAINER_VMATH names a path this CPU cannot run). Without it, the first hook
 * asked for reads them and ignores what is malformed (unit tests). */
int tr_faults_load(tr_err *err);

/* TRAINER_FAULT_NAN's step for this rank, or -1. */
int64_t tr_fault_nan_step(int rank);
/* TRAINER_TEST_SIGNAL_AT_STEP's step for this rank, or -1. */
int64_t tr_fault_signal_step(int rank);
/* TRAINER_TEST_CKPT_PAUSE: true and its two numbers when set. */
bool tr_fault_ckpt_pause(int *nth, int *seconds);
/* Whether TRAINER_FAULT_MPI names this site. */
bool tr_fault_mpi(const char *site);
/* TRAINER_TEST_RANKS_PER_NODE, or 0 when unset. */
int tr_fault_ranks_per_node(void);

#endif
