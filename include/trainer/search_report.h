/*
 * search_report.h: what a search leaves for a person to read, in its directory:
 *
 *   trials.csv   one row per trial: its values, status, rungs reached, epochs, seconds, the
 *                search metric and every reported metric (mean and standard deviation over
 *                the folds with cross-validation)
 *   trials.h5    the same table as columns (/values/<key>, /metrics/<name>, /metrics_std/<name>,
 *                /status, ...) and every unit (trial x fold) under /units
 *   report.md    the search in a few lines and the best trials
 *
 * Written by world rank 0 when the search ends (also after a stop: the units so far).
 */
#ifndef TRAINER_SEARCH_REPORT_H
#define TRAINER_SEARCH_REPORT_H

#include "trainer/error.h"
#include "trainer/space.h"
#include "trainer/trial_queue.h"

typedef struct tr_search_summary {
    const char *dir, *config, *space_path;
    const tr_space *space;
    const tr_unit *units;      /* trials x folds */
    int64_t trials, folds;
    const int64_t *epochs;     /* each trial's configured epochs */
    const char *metric;
    bool higher_better;
    int groups, ranks_per_group;
    double seconds;            /* the search's wall time */
} tr_search_summary;

int tr_search_report(const tr_search_summary *s, tr_err *err);

#endif
