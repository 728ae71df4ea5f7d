/*
 * ckpt.h: HDF5 checkpoints: the whole truth about a run, written atomically.
 *
 * Layout (PyTorch-compatible names: /model/<i>/weight is state_dict key "<i>.weight" of the
 * equivalent torch.nn.Sequential):
 *   /                     attrs: format = "trainer-checkpoint", format_version, trainer_version
 *   /config               attrs: every configuration key ("train.lr", "model.init.0", ...)
 *   /model                attrs: layers, activations, bias, sequential (module list)
 *   /model/<i>/weight     float32 (out, in)      /model/<i>/bias  float32 (out)
 *   /model/<i>/running_mean, running_var  float32 (out), num_batches_tracked int64 (BatchNorm1d)
 *   /ema                  attrs: decay, n_averaged; with [train] ema_decay, the weights' moving
 *                         average (ema.h): /ema/<i>/weight, bias, running_mean, running_var as in /model
 *   /optimizer            attrs: kind, step, lr
 *   /optimizer/<state>/<i>/weight|bias           (momentum_buffer, exp_avg, exp_avg_sq, ...)
 *   /scaler               attrs: kind; datasets center, scale (float32 (features))
 *   /state                attrs: epoch, step, step_in_epoch, running epoch sums, metric_rows,
 *                         time_s, seeds, schedule and early-stopping state
 *   /data                 attrs: rows, cols, fingerprint of the training set; columns, the feature
 *                         columns' names when its file named them (predict reads inputs by them)
 * A checkpoint is written to a temporary file in the same directory, flushed, synced, closed
 * and renamed over its name, so a crash at any moment leaves the previous one readable.
 */
#ifndef TRAINER_CKPT_H
#define TRAINER_CKPT_H

#include "trainer/config.h"
#include "trainer/data.h"
#include "trainer/ema.h"
#include "trainer/error.h"
#include "trainer/model.h"
#include "trainer/optim.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define TR_CKPT_FORMAT_VERSION 1

/* The run's progress and everything beyond the buffers that resuming needs: one attribute
 * of /state per field, X(type, name, meaning), int64_t or double. This list is the only
 * place the fields are spelled out: the struct, the writer and the loader come from it. */
#define TR_CKPT_STATE(X)                                                                    \
    X(int64_t, epoch, "epochs completed")                                                   \
    X(int64_t, step, "optimizer steps taken")                                               \
    X(int64_t, step_in_epoch, "steps of the current epoch already taken")                   \
    X(double, epoch_loss_sum, "running loss sum of the current epoch")                      \
    X(int64_t, epoch_rows, "rows of the current epoch so far")                              \
    X(int64_t, epoch_correct, "correct predictions of the current epoch so far")            \
    X(int64_t, metric_rows, "rows of metrics.h5 this state belongs to")                     \
    X(double, time_s, "training wall time so far")                                          \
    X(double, lr, "current learning rate")                                                  \
    X(double, best_value, "best.h5: the best monitored value")                              \
    X(int64_t, best_epoch, "best.h5: its epoch")                                            \
    X(double, es_best, "early stopping: the best value so far")                             \
    X(int64_t, es_has_best, "early stopping: whether es_best holds a value")                \
    X(int64_t, bad_evals, "early stopping: evaluations without improvement")                \
    X(double, plateau_best, "reduce-on-plateau: the best value so far")                     \
    X(int64_t, plateau_bad, "reduce-on-plateau: evaluations without improvement")           \
    X(double, lr_scale, "reduce-on-plateau: the factor on the configured learning rate")

/* The training data a run was trained on (/data; optional in a file: older checkpoints lack
 * it, and `known` is then false). */
typedef struct tr_ckpt_data {
    int64_t rows, cols, fingerprint; /* of the training set (data.h tr_data_fingerprint) */
    bool known;
    const char *columns; /* writing: the feature columns' names ("a, b, ...") or NULL; not read back here
                          * (tr_ckpt_read_columns) */
} tr_ckpt_data;

typedef struct tr_ckpt_state {
#define TR_CKPT_STATE_FIELD(type, name, meaning) type name;
    TR_CKPT_STATE(TR_CKPT_STATE_FIELD)
#undef TR_CKPT_STATE_FIELD
    tr_ckpt_data data;
    const tr_ema *ema; /* writing: the moving average for /ema (NULL or off: none); not read back here */
} tr_ckpt_state;

/* What tr_ckpt_load restores besides the parameters. */
typedef struct tr_ckpt_parts {
    bool skip_params;      /* leave the parameters alone (another rank of the node loads them) */
    tr_optim *optim;       /* NULL: not restored (--init-from) */
    tr_scaler *scaler;     /* NULL: not restored */
    tr_ckpt_state *state;  /* NULL: not restored */
    tr_ema *ema;           /* the moving average /ema holds, restored (NULL: not; a file without /ema leaves
                            * it to start afresh) */
    bool ema_weights;      /* eval/predict --ema: the model gets /ema's weights and statistics instead of
                            * /model's (an error when the file has none) */
    bool plain_ok;         /* --init-from: a plain HDF5 file without the checksummed header (a PyTorch
                            * state_dict written with h5py) is accepted; the header is checked where
                            * there is one, the shapes and finiteness always */
    bool non_strict;       /* --non-strict (PyTorch's strict=False): /model tensors the model does not have
                            * are ignored and the model's tensors the file lacks keep their values;
                            * otherwise either is an error */
    FILE *note;            /* where --non-strict says what it skipped (NULL: silent) */
} tr_ckpt_parts;

/* Writes a checkpoint of the run to `path` atomically (rank 0): tr_ckpt_build, then
 * tr_ckpt_write. */
int tr_ckpt_save(const char *path, const tr_config *c, const tr_model *m, const tr_optim *o, const tr_scaler *sc,
                 const tr_ckpt_state *st, tr_err *err);

/* A checkpoint built in memory and not yet written: everything it holds is a copy, so the
 * run may go on changing its parameters while the image is written (ckpt_writer.h). */
typedef struct tr_ckpt_image {
    char path[TR_PATH_MAX + 32]; /* where it goes */
    unsigned char *bytes;        /* the header block (stamped by tr_ckpt_write), then the HDF5 file */
    size_t size;
} tr_ckpt_image;

/* The checkpoint of the run as it is now, in memory (HDF5's own work: the calling thread). */
int tr_ckpt_build(tr_ckpt_image *img, const char *path, const tr_config *c, const tr_model *m, const tr_optim *o,
                  const tr_scaler *sc, const tr_ckpt_state *st, tr_err *err);

/* Stamps the header (length and CRC-32), writes a temporary file beside the path, syncs it,
 * renames it over the path and syncs the directory; frees the image either way. Plain POSIX
 * calls: any thread. On failure the temporary file is removed and the earlier file kept. */
int tr_ckpt_write(tr_ckpt_image *img, tr_err *err);

/* Whether the file starts with the header every checkpoint the trainer writes has. */
bool tr_ckpt_written_by_trainer(const char *path);

/* Frees an image that will not be written. */
void tr_ckpt_image_free(tr_ckpt_image *img);

/* Loads the parameters (and the parts asked for) into a model built from `c`. A different
 * architecture is an error listing every difference, and so is a /model tensor the model
 * does not have (unless non_strict); a truncated or corrupt file, a missing
 * or mis-shaped tensor, an optimizer of another kind are errors naming the file. */
int tr_ckpt_load(const char *path, const tr_config *c, tr_model *m, const tr_ckpt_parts *parts, tr_err *err);

/* The names of the feature columns the checkpoint's model was trained on ("a, b, ..."),
 * malloc'd into *names, or NULL when the file does not record them. */
int tr_ckpt_read_columns(const char *path, char **names, tr_err *err);

/* Rebuilds the configuration a checkpoint was trained with (for predict). */
int tr_ckpt_read_config(const char *path, tr_config *c, tr_err *err);

/* Path of checkpoint number `step` in a run directory: DIR/ckpt-000000123.h5. */
void tr_ckpt_path(char *buf, size_t len, const char *dir, int64_t step);

/* The newest checkpoint of DIR that opens and passes the format checks; returns 1 (and an
 * empty path) when there is none, 0 when found. Invalid files are skipped with a note. */
int tr_ckpt_find_latest(const char *dir, char *path, size_t len, tr_err *err);

/* Deletes all but the newest `keep` ckpt-*.h5 of DIR up to step `newest` (the one just
 * written); files of higher steps (damaged ones a resume skipped) are neither counted nor
 * deleted, so they can never push out the run's own checkpoints. best.h5 is never deleted. */
int tr_ckpt_rotate(const char *dir, int64_t keep, int64_t newest, tr_err *err);

#endif
