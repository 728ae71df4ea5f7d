/*
 * train.h: the training run: data, model, loss, optimizer and sampler wired together, the
 * step loop (micro-steps, accumulation, optimizer step) and evaluation.
 *
 * Ownership: tr_trainer owns everything it builds; the config and the dist context are
 * borrowed and must outlive it.
 */
#ifndef TRAINER_TRAIN_H
#define TRAINER_TRAIN_H

#include "trainer/config.h"
#include "trainer/data.h"
#include "trainer/dist.h"
#include "trainer/error.h"
#include "trainer/loss.h"
#include "trainer/model.h"
#include "trainer/optim.h"
#include "trainer/sampler.h"

#include <stdio.h>

typedef struct tr_trainer {
    const tr_config *cfg;
    tr_dist *dist;
    tr_data data;
    tr_loss loss;
    tr_model model;
    tr_optim optim;
    tr_sampler sampler;
    /* step buffers, sized once: this rank's rows of one micro-batch */
    float *xb;   /* (max_local, F) */
    float *yb;   /* (max_local, T) */
    float *dZ;   /* (max_local, O) */
    /* evaluation buffers: the largest evaluated set */
    float *eval_Z, *eval_A; /* (rows, O) */
    double *eval_loss;      /* (rows) */
    /* progress */
    int64_t epoch;          /* epochs completed */
    int64_t step;           /* optimizer steps taken */
    double epoch_loss_sum;  /* running sums over the current epoch's batches */
    int64_t epoch_rows, epoch_correct;
    double train_loss;      /* running mean loss of the last finished epoch */
    double train_accuracy;  /* running accuracy of the last finished epoch (classification) */
    tr_metrics train_metrics, val_metrics, test_metrics; /* last evaluation */
    bool has_train_metrics, has_val_metrics, has_test_metrics;
    double seconds;         /* training wall time */
    FILE *out;              /* human output (rank 0), NULL elsewhere */
} tr_trainer;

/* Loads data, builds and initialises the model, optimizer and sampler. */
int tr_trainer_init(tr_trainer *t, const tr_config *c, tr_dist *d, FILE *out, tr_err *err);
void tr_trainer_free(tr_trainer *t);

/* Trains the configured epochs, evaluating every eval_every epochs and after the last. */
int tr_trainer_fit(tr_trainer *t, tr_err *err);

/* Evaluates a data set in evaluation mode into m (initialised by the caller). */
int tr_trainer_evaluate(tr_trainer *t, const tr_dataset *ds, tr_metrics *m, tr_err *err);

/* Creates the run directory (with parents) and writes the effective configuration to
 * DIR/config.ini (through a temporary file and a rename). Rank 0 calls it. */
int tr_run_dir_prepare(const tr_config *c, tr_err *err);

/* Prints the confusion matrix and per-class report (classification) or regression metrics. */
void tr_print_report(FILE *f, const tr_metrics *m, const char *title);

#endif
