/*
 * log.h: what a run tells the world: the metric log (RUN/metrics.h5 and its plain twin
 * RUN/metrics.csv), the human lines on rank 0 (one per evaluation, the final report) and a
 * progress line while an epoch runs when stdout is a terminal.
 *
 * metrics.h5 holds one extendable dataset per column under /metrics (float64; per-class
 * arrays (rows, classes) and confusion matrices (rows, classes, classes) for
 * classification), appended after every evaluation and flushed, and written in HDF5's
 * single-writer/multiple-reader mode (SWMR) so a reader (h5py: File(path, "r", swmr=True))
 * can follow a running training. Only rank 0 writes.
 */
#ifndef TRAINER_LOG_H
#define TRAINER_LOG_H

#include "trainer/error.h"
#include "trainer/loss.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define TR_LOG_PHASES 6

/* Which columns a run has (fixed when the log is created). */
typedef struct tr_log_layout {
    tr_task task;
    int64_t classes;
    bool train_eval, val, test; /* evaluated sets besides the running train loss */
    bool ema_val, ema_test;     /* the validation and test sets under the weights' moving average */
    const char *const *phase_names; /* TR_LOG_PHASES names */
} tr_log_layout;

/* One evaluation. */
typedef struct tr_log_row {
    int64_t epoch, step;
    double time_s;          /* training wall time so far (across resumes) */
    double lr;
    double train_loss;      /* running mean over the epoch's batches */
    double train_accuracy;  /* running (classification) */
    double penalty;         /* L1/L2 penalty in the loss (0 without) */
    const tr_metrics *train_eval, *val, *test; /* NULL when not evaluated */
    const tr_metrics *ema_val, *ema_test;      /* the same under the moving average (NULL: none) */
    double samples_per_s;
    double phase_ms[TR_LOG_PHASES]; /* per optimizer step */
} tr_log_row;

typedef struct tr_metric_log tr_metric_log;

/* Creates DIR/metrics.h5 and DIR/metrics.csv (keep_rows < 0), or reopens them for a
 * resumed run keeping their first keep_rows rows (the rows a later checkpoint wrote after
 * the one resumed from are dropped). */
int tr_metric_log_open(tr_metric_log **log, const char *dir, const tr_log_layout *layout, int64_t keep_rows,
                       tr_err *err);
int tr_metric_log_append(tr_metric_log *log, const tr_log_row *row, tr_err *err);
int64_t tr_metric_log_rows(const tr_metric_log *log);
/* [train] stop_at was met: its text, the seconds from the command's start, the epoch and
 * step, as attributes of /metrics in metrics.h5 (the log takes no row after it). */
int tr_metric_log_mark_target(tr_metric_log *log, const char *stop_at, double seconds, int64_t epoch, int64_t step,
                              tr_err *err);

/* Whether a metrics.csv or metrics.h5 (or a metrics.earlier-N.* kept by a resume) is one
 * the trainer wrote: the CSV header starts with epoch,step; the HDF5 root holds /metrics
 * alone, or the file has HDF5's signature but does not open (its writer was killed). */
bool tr_metric_log_written_by_trainer(const char *path);
void tr_metric_log_close(tr_metric_log *log);

/* The evaluation line: epoch, step, losses and accuracies (or R2), lr, samples/s. */
void tr_log_eval_line(FILE *f, const tr_log_row *row, int64_t epochs, tr_task task);

/* The confusion matrix and per-class report (classification) or regression metrics. */
void tr_print_report(FILE *f, const tr_metrics *m, const char *title, const char *class_names);

/* A progress line (carriage return, no newline) while an epoch runs; `done` of `total`
 * steps. Writes only when enabled; tr_log_progress_end clears the line. */
void tr_log_progress(FILE *f, int64_t epoch, int64_t epochs, int64_t done, int64_t total, double loss);
void tr_log_progress_end(FILE *f);

#endif
