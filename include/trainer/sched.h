/*
 * sched.h: what changes from epoch to epoch: the learning-rate schedule (constant, step,
 * exponential, cosine, reduce-on-plateau, with linear warm-up) and early stopping. Pure
 * functions of the configuration and a small state, so a checkpoint can carry the state and
 * the tests can compare every value with its formula.
 */
#ifndef TRAINER_SCHED_H
#define TRAINER_SCHED_H

#include "trainer/config.h"

#include <stdbool.h>
#include <stdint.h>

/* The learning rate for epoch `epoch` (0-based) at optimizer step `step` (0-based) of a run
 * of total_steps optimizer steps:
 *   constant      lr
 *   step          lr * gamma^floor(epoch / step_size)
 *   exponential   lr * gamma^epoch
 *   cosine        eta_min + (lr - eta_min) (1 + cos(pi * min(epoch, T) / T)) / 2,  T = cosine_epochs or epochs
 *   plateau       lr * plateau_scale (plateau_scale from tr_plateau_update)
 * then times (step + 1) / warmup_steps while step < warmup_steps; or per optimizer step:
 *   cosine_steps  lr (step + 1) / W for step < W = warmup_steps, then eta_min + (lr - eta_min)
 *                 (1 + cos(pi (step - W) / (S - W))) / 2, S = total_steps (PyTorch's
 *                 SequentialLR of LinearLR(1 / W, total_iters = W - 1) and CosineAnnealingLR(S - W))
 *   onecycle      PyTorch's OneCycleLR(max_lr = lr, total_steps = S, pct_start, div_factor,
 *                 final_div_factor, anneal_strategy = cos, three_phase = False): from lr /
 *                 div_factor up to lr over the first pct_start S - 1 steps, then down to lr /
 *                 (div_factor final_div_factor) at step S - 1 (and there after it). */
double tr_lr_at(const tr_train_config *tc, double lr, int64_t epoch, int64_t step, int64_t total_steps,
                double plateau_scale);

/* [train] lr_scaling: the factor on lr for a global batch of batch_rows rows per optimizer
 * step: linear B / lr_base_batch (Goyal et al. 2017), sqrt sqrt(B / lr_base_batch), none 1. */
double tr_lr_batch_factor(const tr_train_config *tc, int64_t batch_rows);

/* Goyal et al.'s gradual warm-up of the scaled rate: the factor on the scheduled rate at
 * optimizer step `step` (0-based), (1 + (factor - 1) step / W) / factor for step < W =
 * lr_scaling_warmup_epochs x steps_per_epoch (rounded), else 1: the first step at the
 * unscaled rate, rising by the same amount each step to the scaled one. */
double tr_lr_batch_warmup(const tr_train_config *tc, double factor, int64_t step, int64_t steps_per_epoch);

/* onecycle with onecycle_cycle_momentum: the momentum (SGD's momentum, Adam's beta1) at this
 * step, from max_momentum down to base_momentum while the rate rises and back; false (and
 * *momentum untouched) for every other schedule. */
bool tr_momentum_at(const tr_train_config *tc, int64_t step, int64_t total_steps, double *momentum);

/* ReduceLROnPlateau (PyTorch, threshold mode rel, no cooldown). */
typedef struct tr_plateau {
    bool has_best;
    double best;
    int64_t bad;   /* evaluations without improvement */
    double scale;  /* the factor on the base learning rate so far */
} tr_plateau;

void tr_plateau_init(tr_plateau *p);

/* One evaluation's monitored value; returns true when it reduced the rate (scale *= factor,
 * not below min_lr / lr). */
bool tr_plateau_update(tr_plateau *p, const tr_train_config *tc, double lr, double value, bool lower_better);

/* Early stopping: stop after `patience` evaluations without an improvement of more than
 * min_delta over the best value so far. */
typedef struct tr_early_stop {
    bool has_best;
    double best;
    int64_t bad;
} tr_early_stop;

void tr_early_stop_init(tr_early_stop *e);

/* Returns true when training should stop after this evaluation. */
bool tr_early_stop_update(tr_early_stop *e, double value, bool lower_better, double min_delta, int64_t patience);

/* [train] stop_at: "SET_METRIC >= VALUE" or "SET_METRIC <= VALUE" (e.g. test_accuracy >= 0.9). */
typedef struct tr_stop_target {
    char metric[32]; /* e.g. test_accuracy */
    bool at_least;   /* >= (else <=) */
    double value;
} tr_stop_target;

/* Parses a stop_at value (spaces around the operator optional); false when it is not of that
 * form or the value is not a finite number. The metric's name is not checked here. */
bool tr_stop_target_parse(const char *text, tr_stop_target *target);

/* The target is met by this value of its metric (never by NaN). */
bool tr_stop_target_met(const tr_stop_target *target, double value);

#endif
