/*
 * search.h: `trainer search CONFIG SPACE`: many models in one job.
 *
 * The world is split into groups of ranks_per_trial consecutive ranks; each group trains one
 * unit at a time (a trial of the space, or one fold of it with folds = K) with the usual
 * data-parallel machinery on its own communicator, and asks the trial queue for the next
 * when it is done (trial_queue.h). The data are loaded once per node for the whole search
 * (one copy per fold with cross-validation) and every group's trainer borrows them.
 *
 * The search directory is [output] dir: the state table (search.state), folds.csv with
 * folds, one run directory per unit (trials/NNNN, or trials/NNNN/fold-F), and the reports
 * (search_report.h). A signal stops every group at its next step with a checkpoint; --resume
 * continues every unit that had not ended, from its checkpoint.
 */
#ifndef TRAINER_SEARCH_H
#define TRAINER_SEARCH_H

#include "trainer/dist.h"
#include "trainer/error.h"

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>

typedef struct tr_search_options {
    const char *config, *space;
    const char *const *sets;        /* section.key=value overrides of the configuration */
    int n_sets;
    const char *const *search_sets; /* search.KEY=VALUE overrides of the space's settings */
    int n_search_sets;
    bool resume, overwrite;
    volatile sig_atomic_t *stop;    /* set by a signal handler */
    FILE *out;                      /* progress and summary (world rank 0), or NULL */
} tr_search_options;

/* Runs the search; the same code on every rank: 0, TR_ESTOPPED after a signal (resumable),
 * or the failure that ended it. */
int tr_search(const tr_search_options *o, tr_dist *world, tr_err *err);

#endif
