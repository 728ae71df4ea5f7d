/*
 * run.h: a whole training run around the trainer's steps: resuming or initialising from a
 * checkpoint, the epoch loop, evaluations, the metric log and the human lines, best.h5,
 * periodic checkpoints with rotation, and stopping on a signal with a checkpoint.
 */
#ifndef TRAINER_RUN_H
#define TRAINER_RUN_H

#include "trainer/ckpt.h"
#include "trainer/log.h"
#include "trainer/train.h"
#include "trainer/trial_queue.h"

#include <signal.h>

typedef struct tr_run_options {
    const char *resume_dir; /* --resume DIR; NULL: [output] resume decides */
    const char *init_from;  /* --init-from FILE: parameters only; NULL: none */
    bool non_strict;        /* --non-strict: --init-from takes the tensors that match (ckpt.h) */
    volatile sig_atomic_t *stop; /* set by a signal handler; NULL: no signals */
    bool quiet;             /* no human lines (tests) */
    bool overwrite;         /* --overwrite: an earlier run in [output] dir is deleted */
    bool new_data;          /* --new-data: resume although the training data differ from the checkpoint's */
    double started;         /* tr_seconds() at the command's start, for stop_at's time to target (0: tr_run's) */
    int64_t pause_epoch;    /* > 0: end after this epoch (evaluated, checkpointed), to be resumed later: a
                             * search's rung (trial_queue.h) */
    struct tr_trial_queue *queue; /* a search's queue: answered (world rank 0) or told this group lives (its
                                   * rank 0) between steps, or NULL */
} tr_run_options;

/* Trains the configured epochs. Rank 0 writes the metric log, the checkpoints and best.h5.
 * Returns the same code on every rank: 0, TR_ESTOPPED after a signal (a checkpoint was
 * written), or the failure. */
int tr_run(tr_trainer *t, const tr_run_options *o, tr_err *err);

/* The monitor of best.h5 and early stopping: its name ("val_loss", ...), whether lower is
 * better, and its value in the trainer's last evaluation (false when it has none). */
bool tr_run_monitor(const tr_trainer *t, char *name, size_t len, bool *lower_better, double *value);

/* The value of a logged metric (SET_METRIC: val_loss, test_accuracy, ...) after the trainer's
 * last evaluation (train_loss, train_accuracy: the last epoch's running means); false when the
 * run has none. */
bool tr_run_metric(const tr_trainer *t, const char *name, double *value);

#endif
