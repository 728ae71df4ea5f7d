/*
 * trial_queue.h: the units of a search (a trial, or one fold of a trial) handed out to groups
 * of ranks as they become free, the successive-halving decisions, and the table of every
 * unit's outcome.
 *
 * World rank 0 keeps the table and answers; it also trains in group 0, so it answers between
 * its own steps (tr_run calls tr_queue_serve) and while it waits. A group's rank 0 asks for
 * the group and broadcasts the answer to its ranks. The table is saved (state file, written
 * whole then renamed) after every change, so a search stopped anywhere loses no finished unit.
 *
 * Liveness: a group's rank 0 sends a sign of life between its steps; a group that trains a
 * unit and stays silent for 3 x [train] watchdog seconds (not waiting for a decision) ends the
 * search with status 8 naming its rank 0: a group of one rank has no watchdog of its own.
 *
 * Successive halving (ASHA, Li et al. 2020, with Ray Tune's rule): a unit that reaches rung k
 * continues if its metric is at least the (1 - 1/eta) quantile of the metrics the units
 * before it recorded at rung k (the first always continues). "Before it" means lower unit
 * numbers, not earlier in time: a decision waits until every lower unit has recorded rung k
 * or ended, so the decisions, like the trials, are the same on any number of ranks and groups.
 */
#ifndef TRAINER_TRIAL_QUEUE_H
#define TRAINER_TRIAL_QUEUE_H

#include "trainer/dist.h"
#include "trainer/error.h"
#include "trainer/names.h"

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define TR_UNIT_STATUS_MAP(X)              \
    X(TR_UNIT_PENDING, "pending")          \
    X(TR_UNIT_RUNNING, "running")          \
    X(TR_UNIT_DONE, "done")                \
    X(TR_UNIT_PRUNED, "stopped")           \
    X(TR_UNIT_FAILED, "failed")            \
    X(TR_UNIT_INTERRUPTED, "interrupted")
typedef enum tr_unit_status { TR_UNIT_STATUS_MAP(TR_ENUM_VALUE) } tr_unit_status;
extern const char *const tr_unit_status_names[];

/* The metrics every unit reports (NaN where its run has none), in this order. */
#define TR_RESULT_METRICS(X) \
    X("train_loss")          \
    X("train_accuracy")      \
    X("val_loss")            \
    X("val_accuracy")        \
    X("val_r2")              \
    X("test_loss")           \
    X("test_accuracy")       \
    X("test_r2")
extern const char *const tr_result_metric_names[];
enum { TR_MAX_RUNGS = 16, TR_RESULT_COUNT = 8 };

typedef struct tr_unit {
    int32_t status;                   /* tr_unit_status */
    int32_t rungs;                    /* rung values recorded */
    int32_t group;                    /* the group that ran it last */
    int32_t exit_code;                /* a failure's exit status */
    int64_t epochs;                   /* epochs trained */
    double seconds;                   /* training time, all its runs */
    double score;                     /* the search's metric at its end (NaN: none) */
    double rung_value[TR_MAX_RUNGS];
    double metrics[TR_RESULT_COUNT];  /* TR_RESULT_METRICS at its end */
    char message[256];                /* a failure's message */
} tr_unit;

typedef struct tr_queue_plan {
    int64_t trials, folds;       /* units = trials x folds (folds 1 without cross-validation) */
    bool higher_better;          /* how the metric ranks */
    bool asha;
    int64_t eta;
    const char *state_path;      /* the table's file (world rank 0) */
    bool resume;                 /* read the table from state_path: finished units stay finished */
    volatile sig_atomic_t *stop; /* a signal: hand out nothing more */
    FILE *out;                   /* a line per finished unit (world rank 0), or NULL */
    const char *metric;          /* its name, for those lines */
    uint32_t fingerprint;        /* of the search's definition: a resume must have the same */
    double alive_s;              /* a group training a unit and silent this long has a rank that stopped
                                  * answering: the search ends with status 8 (0: never) */
} tr_queue_plan;

typedef struct tr_trial_queue tr_trial_queue;

/* Every rank of the world; group_size ranks per group (consecutive world ranks). */
int tr_queue_open(tr_trial_queue **q, tr_dist *world, int group_size, const tr_queue_plan *plan, tr_err *err);
void tr_queue_close(tr_trial_queue *q);

/* The next unit for the group (every rank of the group calls it): *unit, or -1 when nothing is
 * left; *rungs_done: the rungs it recorded before (a resumed unit). */
int tr_queue_next(tr_trial_queue *q, tr_dist *group, int64_t *unit, int32_t *rungs_done, tr_err *err);

/* The unit reached rung k with `value`: *decision 1 continue, 0 stop (pruned), -1 the search
 * is stopping (keep the checkpoint). Every rank of the group calls it. */
int tr_queue_rung(tr_trial_queue *q, tr_dist *group, int64_t unit, int32_t rung, double value, int *decision,
                  tr_err *err);

/* The unit ended (done, pruned, failed or interrupted) with *result. Every rank of the group
 * calls it; the group's rank 0's result counts. */
int tr_queue_done(tr_trial_queue *q, tr_dist *group, int64_t unit, const tr_unit *result, tr_err *err);

/* World rank 0: answers the messages waiting (never blocks), and ends the search (status 8,
 * the rank named) when a group training a unit has been silent for plan.alive_s. A group's
 * rank 0: sends a sign of life every alive_s / 8. Elsewhere, or with q NULL: nothing. tr_run
 * calls it between steps. */
void tr_queue_serve(tr_trial_queue *q);

/* Every rank, after its group's last unit: world rank 0 answers until every group has been
 * told that nothing is left. TR_ESTOPPED (on every rank, no message) when a signal or an
 * interrupted unit left units unfinished. */
int tr_queue_finish(tr_trial_queue *q, tr_err *err);

/* The table (world rank 0; NULL elsewhere): plan.trials x plan.folds units. */
const tr_unit *tr_queue_units(const tr_trial_queue *q);

/* ASHA's rule on its own: whether `value` passes a rung where `n` earlier units recorded
 * `earlier` (the first always passes; NaN never does). */
bool tr_asha_passes(const double *earlier, int64_t n, double value, bool higher_better, int64_t eta);

#endif
