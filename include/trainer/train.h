/*
 * train.h: the training run: data, model, loss, optimizer, sampler and gradient sync wired
 * together, the step loop (micro-steps, accumulation, allreduce, optimizer step) and the
 * distributed evaluation.
 *
 * Every rank holds the whole model and runs the same loop on its slice of each global
 * micro-batch; after the gradients are summed every rank applies the same update, so the
 * replicas stay identical (checked at every evaluation).
 *
 * Ownership: tr_trainer owns everything it builds; the config and the dist context are
 * borrowed and must outlive it.
 */
#ifndef TRAINER_TRAIN_H
#define TRAINER_TRAIN_H

#include "trainer/config.h"
#include "trainer/data.h"
#include "trainer/dist.h"
#include "trainer/ema.h"
#include "trainer/error.h"
#include "trainer/loss.h"
#include "trainer/model.h"
#include "trainer/optim.h"
#include "trainer/phase.h"
#include "trainer/reduce.h"
#include "trainer/sampler.h"

#include <signal.h>
#include <stdio.h>


typedef struct tr_trainer {
    const tr_config *cfg;
    tr_dist *dist;
    tr_data data;
    bool data_borrowed;     /* data are a search's (tr_trainer_init_with_data): not freed here */
    tr_loss loss;
    tr_model model;
    tr_optim optim;
    tr_ema ema;             /* [train] ema_decay: the weights' moving average (off: no buffers) */
    tr_sampler sampler;
    struct tr_node_mem *sampler_mem; /* the sampler's order, held once per node (or NULL) */
    tr_reduce *reduce;      /* the gradient exchange (reduce.h) */
    /* step buffers, sized once: this rank's rows of one micro-batch */
    float *xb;   /* (max_local, F) */
    float *yb;   /* (max_local, T) */
    float *dZ;   /* (max_local, O) */
    int64_t n_chunk_bufs;   /* deterministic mode: chunks this rank computes in a step, at most */
    /* evaluation buffers: the largest evaluated set, whole (every rank gathers all rows) */
    float *eval_Z, *eval_A;          /* (rows, O), (rows, O) */
    float *eval_x;                   /* (eval_batch, F): an evaluation chunk of a view */
    struct tr_prefetch *prefetch;    /* the helper gathering the next micro-batch, or NULL */
    int64_t *ahead[2];               /* block shuffle of a mapped file: rows to read ahead, by turns */
    int64_t ahead_epoch, ahead_pos;  /* positions of the epoch's order read ahead: [.., ahead_pos) */
    int ahead_turn;
    double *bn_records;              /* deterministic mode: (chunks of a step, bn_record_size) batch-norm statistics */
    size_t bn_record_size;
    double *eval_loss;               /* (rows) */
    /* progress */
    int64_t epoch;          /* epochs completed */
    int64_t step;           /* optimizer steps taken */
    double epoch_loss_sum;  /* running sums over the current epoch's batches (all ranks) */
    int64_t epoch_rows, epoch_correct;
    double train_loss;      /* running mean loss of the last finished epoch */
    double train_accuracy;  /* running accuracy of the last finished epoch (classification) */
    double step_loss;       /* the last step's mean loss */
    double grad_norm;       /* the last step's gradient norm before clipping (NAN when not measured) */
    tr_metrics train_metrics, val_metrics, test_metrics; /* last evaluation */
    bool has_train_metrics, has_val_metrics, has_test_metrics;
    tr_metrics ema_val_metrics, ema_test_metrics;        /* the same sets under the moving average */
    bool has_ema_val_metrics, has_ema_test_metrics;
    double phase[TR_PHASE_COUNT]; /* seconds since the last evaluation line */
    tr_phase_clock clock;         /* charges phase[] */
    int64_t phase_steps;          /* steps behind phase[] */
    double seconds;         /* training wall time */
    int threads;            /* BLAS threads per rank in use */
    /* the products' engine ([train] gemm resolved) and how it was chosen; with auto, the
     * engines' summed timings over the ranks (seconds of one step's products; INFINITY: cannot) */
    tr_gemm_engine gemm;
    const char *gemm_how;   /* "set", "auto: timed", "auto: deterministic mode" */
    double gemm_seconds[TR_GEMM_ENGINE_COUNT];
    FILE *out;              /* human output (rank 0), NULL elsewhere */
    /* test hook: poison this rank's gradient at this step (TRAINER_FAULT_NAN=rank:step) */
    int64_t fault_nan_step;
    tr_forward_mode fmode;  /* training-mode forward (dropout, batch norm) */
    float class_weights[1024];
    double base_lr, lr_scale; /* the configured rate (times batch_factor) and the plateau schedule's factor */
    double batch_factor;      /* lr_scaling's factor for the global batch (sched.h) */
    /* stopping on a signal: the flag a handler sets, and the agreement of the last step */
    volatile sig_atomic_t *stop_flag;
    bool stop_agreed;
    bool stopped_early;     /* early stopping ended the run */
    double time_to_target;  /* stop_at met: seconds from the command's start (NaN: not met) */
    int64_t target_epoch, target_step;
} tr_trainer;

/* Loads data, builds and initialises the model, optimizer, sampler and gradient sync. Every
 * rank must call it; the caller agrees on the result (tr_dist_agree). */
int tr_trainer_init(tr_trainer *t, const tr_config *c, tr_dist *d, FILE *out, tr_err *err);
void tr_trainer_free(tr_trainer *t);

/* What the data and the start settled goes into the run's configuration (c is the one the
 * trainer borrows): the data's class names when the configuration names none, and the GEMM
 * engine [train] gemm = auto chose; so config.ini and the checkpoints store what ran, and a
 * resume computes with the same engine. */
void tr_trainer_settle_config(const tr_trainer *t, tr_config *c);

/* A search's: the configured data loaded once per node of `d` (data_node.h), for trainers of
 * sub-worlds of d to borrow; released with tr_data_free (collective over d's nodes). */
int tr_trainer_load_data(tr_data *data, const tr_config *c, tr_dist *d, tr_err *err);
/* tr_trainer_init on data from tr_trainer_load_data (which must outlive the trainer), checked
 * against this configuration's model and loss. */
int tr_trainer_init_with_data(tr_trainer *t, const tr_config *c, tr_dist *d, const tr_data *data, FILE *out,
                              tr_err *err);

/* Whether the per-step log (steplog.h) takes a row after optimizer step `step` (1-based):
 * the step measures its gradient norm then, and the run writes the row. */
bool tr_trainer_logs_step(const tr_trainer *t, int64_t step);

/* One optimizer step (micro-steps `step_in_epoch * accumulate ...` of the current epoch).
 * Afterwards t->stop_agreed says whether any rank has been asked to stop. */
int tr_trainer_step(tr_trainer *t, int64_t step_in_epoch, tr_err *err);

/* Evaluates a data set in evaluation mode into m (initialised by the caller). Each rank
 * computes its share of fixed-size chunks; the per-row results are gathered, so every rank
 * gets metrics identical to a single-rank evaluation. Collective. */
int tr_trainer_evaluate(tr_trainer *t, const tr_dataset *ds, tr_metrics *m, tr_err *err);

/* Broadcasts rank 0's batch-norm running statistics (they differ between ranks when each
 * normalises its own slice, sync_bn = false). Collective. */
int tr_trainer_sync_buffers(tr_trainer *t, tr_err *err);

/* The L1/L2 penalty's value at the current parameters (0 without penalties). */
double tr_trainer_penalty(const tr_trainer *t);

/* Evaluates every configured set (training set if eval_train, validation, test, and the
 * last two under the weights' moving average) and checks that the replicas are identical.
 * Collective. */
int tr_trainer_evaluate_all(tr_trainer *t, tr_err *err);

/* The last evaluation's metrics of a set (loss.h), or NULL when it was not evaluated. */
const tr_metrics *tr_trainer_metrics(const tr_trainer *t, tr_metric_set set);

#endif
