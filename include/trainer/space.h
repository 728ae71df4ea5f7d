/*
 * space.h: a search space file (`trainer search CONFIG SPACE`) and the trials it gives.
 *
 * One line per searched key, as the grid files of slurm/sweep.sbatch write them, plus sampled
 * ranges and the search's own settings:
 *
 *     model.activations = relu tanh sigmoid        a grid axis: every value in turn
 *     train.lr = loguniform 1e-4 1e-1              sampled: log-uniform in [lo, hi]
 *     model.dropout = uniform 0 0.5                sampled: uniform in [lo, hi]
 *     train.batch_size = choice 32 64 128          sampled: one of the values
 *     search.trials = 32                           a setting (TR_SEARCH_SETTINGS below)
 *
 * The trials are the product of the grid axes (the last axis varying fastest) times `trials`
 * samples of the sampled keys (random: Philox uniforms from `seed`; sobol: the Sobol sequence
 * shifted by a Philox vector from `seed`); trial i is grid point i / trials with sample
 * i % trials. Trial i's values are a pure function of the file and the seed: the same trials
 * on any number of ranks and groups.
 */
#ifndef TRAINER_SPACE_H
#define TRAINER_SPACE_H

#include "trainer/error.h"
#include "trainer/names.h"

#include <stdio.h>

#include <stdbool.h>
#include <stdint.h>

#define TR_DIM_KIND_MAP(X)                  \
    X(TR_DIM_GRID, "grid")                  \
    X(TR_DIM_UNIFORM, "uniform")            \
    X(TR_DIM_LOGUNIFORM, "loguniform")      \
    X(TR_DIM_CHOICE, "choice")
typedef enum tr_dim_kind { TR_DIM_KIND_MAP(TR_ENUM_VALUE) } tr_dim_kind;
extern const char *const tr_dim_kind_names[];

#define TR_SAMPLER_MAP(X)              \
    X(TR_SAMPLER_AUTO, "auto")         \
    X(TR_SAMPLER_RANDOM, "random")     \
    X(TR_SAMPLER_SOBOL, "sobol")
typedef enum tr_sampler_kind { TR_SAMPLER_MAP(TR_ENUM_VALUE) } tr_sampler_kind;
extern const char *const tr_sampler_kind_names[];

/* The search's settings: X(field, key, default text, help). `search.KEY = VALUE` lines of the
 * space file and `trainer search --set search.KEY=VALUE` set them. */
#define TR_SEARCH_SETTINGS(X)                                                                          \
    X(sampler, "sampler", "auto", "random or sobol: how the sampled keys are drawn (auto: random)")      \
    X(trials, "trials", "0", "samples of the sampled keys per grid point (0: 16 with sampled keys, else 1)") \
    X(seed, "seed", "1", "the sampler's seed: the same seed, the same trials")                        \
    X(metric, "metric", "auto", "the metric trials are ranked by (val_accuracy, test_loss, ...; auto: " \
                                "the configuration's best_metric)")                                    \
    X(asha, "asha", "false", "asynchronous successive halving: stop the trials that fall behind")     \
    X(min_epochs, "min_epochs", "1", "ASHA's first rung (rungs at min_epochs x eta^k epochs)")         \
    X(eta, "eta", "3", "ASHA's reduction factor: a trial passes a rung in the top 1/eta")              \
    X(folds, "folds", "0", "K-fold cross-validation of every trial (0: none; at least 2)")             \
    X(ranks_per_trial, "ranks_per_trial", "1", "ranks that train one trial together (divides the ranks)")

typedef struct tr_search_settings {
    tr_sampler_kind sampler;
    int64_t trials;
    uint64_t seed;
    char metric[64];
    bool asha;
    int64_t min_epochs, eta;
    int64_t folds;
    int64_t ranks_per_trial;
} tr_search_settings;

typedef struct tr_space_dim {
    char key[96];       /* section.key */
    tr_dim_kind kind;
    double lo, hi;      /* uniform, loguniform */
    char **values;      /* grid, choice */
    int n_values;
    int line;           /* in the space file, for messages */
} tr_space_dim;

typedef struct tr_space {
    char path[1024];
    tr_space_dim *dims;
    int n_dims;
    int n_sampled;      /* dims that are not grid axes */
    int64_t grid_points;
    tr_search_settings set;
    double *samples;    /* (trials, n_sampled) points in [0, 1) */
} tr_space;

/* Reads the space file, then applies `search.KEY=VALUE` overrides. Errors name the file and
 * line (or the override). */
int tr_space_load(tr_space *s, const char *path, const char *const *sets, int n_sets, tr_err *err);
void tr_space_free(tr_space *s);

/* How many trials the space gives: grid points x samples. */
int64_t tr_space_trials(const tr_space *s);

/* Trial i's value of dim d as configuration text, into buf. */
void tr_space_value(const tr_space *s, int64_t trial, int d, char *buf, size_t len);

/* Documents the settings and the line forms (Markdown) for `trainer help search`. */
void tr_space_print_reference(FILE *f);

#endif
