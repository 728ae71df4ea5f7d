/*
 * watchdog.h: no rank waits forever for another.
 *
 * Every wait of this rank on other ranks (a collective, the gradient exchange, a node-shared
 * spin) is bracketed by tr_watch_begin / tr_watch_end, which only store a time stamp and a
 * phase name. A watchdog thread per rank looks at them ten times a second. When a wait has
 * lasted longer than the deadline ([train] watchdog seconds; at least 20 times the slowest
 * step so far; 3 times the setting before the first step ends, which covers loading), the
 * thread sends its status (step, phase, how long it waited) to every other rank's watchdog
 * (UDP datagrams, not MPI: MPI may be what is stuck) and collects theirs for a few seconds:
 * every rank's watchdog answers as soon as it hears, whatever its main thread is doing. The ranks that did not answer are
 * the missing ones (stopped, hung in the kernel, or on a lost node). The lowest rank that
 * answered prints one message naming them, their hosts, the step and the phase, and every rank
 * that answered exits with status 8 (TR_EWATCHDOG), which slurm/train.sbatch requeues: the job
 * resumes from the last checkpoint (checkpoints are written whole or not at all).
 *
 * With TRAINER_STATUS_FILE set (scripts/mpirun.sh sets it), a rank appends "8 watchdog rank R"
 * to that file before it exits, so a launcher that cannot end the job itself (mpirun waiting
 * for a lost node's daemon) learns the verdict and ends it.
 *
 * A wait that ends before the deadline (a rank stopped with SIGSTOP and continued in time, a
 * slow file system that recovers) changes nothing. Alone, or with watchdog = 0, nothing runs.
 */
#ifndef TRAINER_WATCHDOG_H
#define TRAINER_WATCHDOG_H

#include "trainer/dist.h"
#include "trainer/error.h"

#include <stdint.h>

/* Starts this rank's watchdog (collective over the world: the ports, addresses and host
 * names). deadline_s <= 0 or a world of one: nothing. */
int tr_watchdog_start(tr_dist *d, double deadline_s, tr_err *err);
/* Stops the thread (local; accepts a watchdog never started). */
void tr_watchdog_stop(void);

/* The main thread waits on other ranks in `what` (a static string), until tr_watch_end.
 * Nested pairs count as the outer one. */
void tr_watch_begin(const char *what);
void tr_watch_end(void);
/* An optimizer step ended (the step count, and how long it took): the deadline scales with
 * the slowest step. */
void tr_watch_step(int64_t step, double seconds);

/* Ends this process as the watchdog ends a rank whose wait passed its deadline: `message` on
 * stderr, the verdict in TRAINER_STATUS_FILE (scripts/mpirun.sh ends a job whose mpirun waits
 * for a lost node), status 8. For liveness checks outside the exchanges (a search's,
 * trial_queue.c); `rank` names this process in the verdict. */
_Noreturn void tr_watchdog_exit(int rank, const char *message);

#endif
