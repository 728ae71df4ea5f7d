/*
 * steplog.h: the per-step log, what a course plots per iteration: every [output]
 * log_every_steps optimizer steps one row of the step, its epoch, the step's mean loss, the
 * epoch's running mean loss, the global L2 norm of the summed gradient before clipping (what
 * clip_grad_norm_ measures: exploding gradients show here first) and the learning rate.
 *
 * RUN/steps.csv is the plain twin of RUN/steps.h5 (/steps/<column>, float64, one extendable
 * dataset per column); both are written by rank 0 and flushed after every row. On a resume
 * the rows after the resumed step are dropped (they belong to the abandoned continuation),
 * read back from the CSV, so a damaged steps.h5 is rebuilt from it.
 */
#ifndef TRAINER_STEPLOG_H
#define TRAINER_STEPLOG_H

#include "trainer/error.h"

#include <stdbool.h>
#include <stdint.h>

/* One row; the columns, in this order, are named by tr_step_log_columns. */
typedef struct tr_step_row {
    double step, epoch, loss, running_loss, grad_norm, lr;
} tr_step_row;

extern const char *const tr_step_log_columns[]; /* NULL-terminated */

typedef struct tr_step_log tr_step_log;

/* Whether a steps.csv or steps.h5 is one the trainer wrote (the CSV's header is exactly the
 * columns above; the HDF5 root holds /steps alone, or the file has HDF5's signature but
 * does not open: its writer was killed). */
bool tr_step_log_written_by_trainer(const char *path);

/* Creates DIR/steps.h5 and DIR/steps.csv, or (keep_through_step >= 0) keeps the rows of an
 * earlier log up to that step and continues it. */
int tr_step_log_open(tr_step_log **log, const char *dir, int64_t keep_through_step, tr_err *err);
int tr_step_log_append(tr_step_log *log, const tr_step_row *row, tr_err *err);
void tr_step_log_close(tr_step_log *log);

#endif
