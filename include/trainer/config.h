/*
 * config.h: the INI run configuration ([model], [data], [train], [output]).
 *
 * Parsed with libinih; every key is declared once in a table in config.c (type, bounds,
 * default, documentation), which drives parsing, defaults, `--set section.key=value`
 * overrides, `trainer help config` and the checkpoint's record of the run. Errors name the
 * file, the line and the key. Keys marked per-layer accept a `.N` suffix (e.g. `init.0`)
 * that overrides the value for weight layer N only.
 */
#ifndef TRAINER_CONFIG_H
#define TRAINER_CONFIG_H

#include "trainer/error.h"
#include "trainer/files.h"
#include "trainer/gemm.h"
#include "trainer/half.h"
#include "trainer/layers.h"
#include "trainer/loss.h"
#include "trainer/names.h"
#include "trainer/optim.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define TR_MAX_LAYERS 64

/* X(ENUM, config name) */
#define TR_INIT_MAP(X)                       \
    X(DEFAULT, "default")                    \
    X(UNIFORM, "uniform")                    \
    X(NORMAL, "normal")                      \
    X(XAVIER_UNIFORM, "xavier_uniform")      \
    X(XAVIER_NORMAL, "xavier_normal")        \
    X(KAIMING_UNIFORM, "kaiming_uniform")    \
    X(KAIMING_NORMAL, "kaiming_normal")      \
    X(ZEROS, "zeros")                        \
    X(CONSTANT, "constant")

typedef enum tr_init_scheme {
#define TR_X_INIT(e, name) TR_INIT_##e,
    TR_INIT_MAP(TR_X_INIT)
#undef TR_X_INIT
        TR_INIT_COUNT
} tr_init_scheme;

extern const char *const tr_init_names[]; /* NULL-terminated, in tr_init_scheme order */

/* torch.nn.init.calculate_gain's nonlinearities (kaiming's `nonlinearity`); PyTorch's default
 * for kaiming first. X(ENUM, name) */
#define TR_NONLINEARITY_MAP(X)            \
    X(TR_NL_LEAKY_RELU, "leaky_relu")     \
    X(TR_NL_RELU, "relu")                 \
    X(TR_NL_TANH, "tanh")                 \
    X(TR_NL_SIGMOID, "sigmoid")           \
    X(TR_NL_LINEAR, "linear")             \
    X(TR_NL_SELU, "selu")

typedef enum tr_nonlinearity { TR_NONLINEARITY_MAP(TR_ENUM_VALUE) } tr_nonlinearity;

extern const char *const tr_nonlinearity_names[];

/* torch.nn.init.calculate_gain(nl, param): param is leaky_relu's negative slope (NAN: 0.01). */
double tr_calculate_gain(tr_nonlinearity nl, double param);


/* How one tensor is initialised (PyTorch torch.nn.init semantics). */
typedef struct tr_init_spec {
    tr_init_scheme scheme;
    double a, b;       /* uniform bounds; kaiming: a = negative slope */
    double mean, std;  /* normal */
    double gain;       /* xavier gain; NAN = auto (torch.nn.init.calculate_gain of the activation) */
    tr_nonlinearity nonlinearity; /* kaiming: gain = calculate_gain(nonlinearity, a) */
    double value;      /* constant */
    bool fan_out;      /* kaiming mode */
} tr_init_spec;

typedef struct tr_model_config {
    int n_layers;                      /* weight layers = len(layers) - 1 */
    int64_t widths[TR_MAX_LAYERS + 1]; /* input width, hidden widths..., output width */
    tr_activation act[TR_MAX_LAYERS];
    bool bias;
    tr_init_spec weight_init[TR_MAX_LAYERS];
    tr_init_spec bias_init[TR_MAX_LAYERS];
    tr_act_params act_params;
    float dropout[TR_MAX_LAYERS];   /* after the activation of hidden layer l (0 = none) */
    bool batchnorm[TR_MAX_LAYERS];  /* BatchNorm1d on hidden layer l */
    bool bn_after;                  /* after the activation (else before it) */
    float bn_eps, bn_momentum;
} tr_model_config;

/* The configuration's own vocabularies (names.h): X(constant, name). */
#define TR_SCALE_MAP(X)                 \
    X(TR_SCALE_NONE, "none")            \
    X(TR_SCALE_STANDARD, "standard")    \
    X(TR_SCALE_MINMAX, "minmax")        \
    X(TR_SCALE_DIVIDE, "divide")        /* written divide:K */
#define TR_FORMAT_MAP(X)                \
    X(TR_FORMAT_AUTO, "auto")           \
    X(TR_FORMAT_HDF5, "hdf5")           \
    X(TR_FORMAT_CSV, "csv")             \
    X(TR_FORMAT_IDX, "idx")
#define TR_NONFINITE_MAP(X)             \
    X(TR_NONFINITE_ERROR, "error")      \
    X(TR_NONFINITE_DROP, "drop")
#define TR_SCHEDULE_MAP(X)              \
    X(TR_SCHED_CONSTANT, "constant")    \
    X(TR_SCHED_STEP, "step")            \
    X(TR_SCHED_EXPONENTIAL, "exponential") \
    X(TR_SCHED_COSINE, "cosine")        \
    X(TR_SCHED_PLATEAU, "plateau")      \
    X(TR_SCHED_COSINE_STEPS, "cosine_steps") \
    X(TR_SCHED_ONECYCLE, "onecycle")
#define TR_LR_SCALING_MAP(X)            \
    X(TR_LR_SCALING_NONE, "none")       \
    X(TR_LR_SCALING_LINEAR, "linear")   \
    X(TR_LR_SCALING_SQRT, "sqrt")
#define TR_COMM_MAP(X)                  \
    X(TR_COMM_AUTO, "auto")             \
    X(TR_COMM_SHARED, "shared")         \
    X(TR_COMM_ALLREDUCE, "allreduce")
#define TR_BEST_MODE_MAP(X)             \
    X(TR_BEST_AUTO, "auto")             \
    X(TR_BEST_MIN, "min")               \
    X(TR_BEST_MAX, "max")
#define TR_RESUME_MAP(X)                \
    X(TR_RESUME_NEVER, "never")         \
    X(TR_RESUME_AUTO, "auto")
#define TR_SHUFFLE_MAP(X)               \
    X(TR_SHUFFLE_NONE, "false")         \
    X(TR_SHUFFLE_GLOBAL, "true")        \
    X(TR_SHUFFLE_BLOCK, "block")
#define TR_PROGRESS_MAP(X)              \
    X(TR_PROGRESS_AUTO, "auto")         \
    X(TR_PROGRESS_ALWAYS, "always")     \
    X(TR_PROGRESS_NEVER, "never")

typedef enum tr_scale_kind { TR_SCALE_MAP(TR_ENUM_VALUE) } tr_scale_kind;
typedef enum tr_data_format { TR_FORMAT_MAP(TR_ENUM_VALUE) } tr_data_format;
typedef enum tr_nonfinite { TR_NONFINITE_MAP(TR_ENUM_VALUE) } tr_nonfinite;
typedef enum tr_lr_schedule { TR_SCHEDULE_MAP(TR_ENUM_VALUE) } tr_lr_schedule;
typedef enum tr_lr_scaling { TR_LR_SCALING_MAP(TR_ENUM_VALUE) } tr_lr_scaling;
typedef enum tr_comm_mode { TR_COMM_MAP(TR_ENUM_VALUE) } tr_comm_mode;
typedef enum tr_best_mode { TR_BEST_MODE_MAP(TR_ENUM_VALUE) } tr_best_mode;
typedef enum tr_resume_mode { TR_RESUME_MAP(TR_ENUM_VALUE) } tr_resume_mode;
typedef enum tr_progress_mode { TR_PROGRESS_MAP(TR_ENUM_VALUE) } tr_progress_mode;
typedef enum tr_shuffle_mode { TR_SHUFFLE_MAP(TR_ENUM_VALUE) } tr_shuffle_mode;

extern const char *const tr_scale_names[], *const tr_format_names[], *const tr_nonfinite_names[],
    *const tr_schedule_names[], *const tr_lr_scaling_names[], *const tr_comm_names[], *const tr_best_mode_names[], *const tr_resume_names[],
    *const tr_progress_names[], *const tr_shuffle_names[];

typedef struct tr_data_config {
    /* built-in generator ("" = read files); NAN parameters take the generator's defaults */
    char generator[32];
    int64_t n;
    double noise, sd, r1, r2, a, b, x_min, x_max, box;
    int64_t classes, n_features;
    uint64_t seed;
    /* a real data set of python3-sklearn's files (sklearn_data.h), "" = none */
    char builtin[32];
    char builtin_dir[TR_PATH_MAX];
    /* files */
    tr_data_format format;
    char path[TR_PATH_MAX], test_path[TR_PATH_MAX];
    char features_dset[256], targets_dset[256]; /* HDF5 dataset paths */
    char delimiter_name[16];
    bool header;
    char target[256], columns[1024];             /* CSV column selection */
    char images[TR_PATH_MAX], labels[TR_PATH_MAX]; /* IDX */
    char test_images[TR_PATH_MAX], test_labels[TR_PATH_MAX];
    tr_nonfinite on_nonfinite;
    bool mmap; /* use contiguous float32 HDF5 features where they lie (mapping.h) */
    /* split and scaling */
    double test_fraction, val_fraction;
    int64_t folds, fold;            /* K-fold cross-validation: fold `fold` of `folds` validates (0: none) */
    uint64_t split_seed;
    bool split_shuffle;
    tr_scale_kind scale;
    double scale_divisor;
    char class_names[2048]; /* "name, name, ..." for reports and plots; empty = 0, 1, ... */
} tr_data_config;

typedef struct tr_train_config {
    tr_loss_kind loss;
    tr_reduction reduction;
    double huber_delta;
    double pos_weight;
    double label_smoothing; /* cross_entropy: PyTorch's label_smoothing */
    double ema_decay;       /* > 0: a moving average of the weights is kept (ema.h) */
    int64_t n_class_weights;        /* 0: none; -1: auto (balanced, from the training labels) */
    float class_weights[1024];
    bool sync_bn;
    double l1, l2;
    bool penalize_all;              /* l1, l2, weight_decay on every parameter (else weights only) */
    double clip_norm, clip_value;
    tr_lr_schedule lr_schedule;
    int64_t step_size, cosine_epochs, warmup_steps, plateau_patience;
    tr_lr_scaling lr_scaling;       /* the rate for the global batch (sched.h) */
    int64_t lr_base_batch;
    double lr_scaling_warmup_epochs;
    double gamma, eta_min, plateau_factor, plateau_threshold, min_lr;
    double onecycle_pct_start, onecycle_div_factor, onecycle_final_div_factor; /* PyTorch's OneCycleLR */
    bool onecycle_cycle_momentum;
    double onecycle_base_momentum, onecycle_max_momentum;
    bool early_stopping;
    int64_t patience;
    double min_delta;
    char stop_at[64];   /* "" or a target, SET_METRIC >= VALUE or <= VALUE (sched.h) */
    tr_optim_config optim;
    int64_t epochs;
    int64_t batch_size; /* global rows per micro-step; 0 = the whole training set */
    tr_shuffle_mode shuffle;        /* none, global, or blocks of shuffle_block rows */
    int64_t shuffle_block, shuffle_window;
    bool drop_last;
    uint64_t seed;
    int64_t eval_every;
    bool eval_train;
    int64_t accumulate;
    int threads;        /* BLAS threads per rank; 0 = environment, else CPUs / ranks on the node */
    tr_gemm_engine gemm;    /* the products' engine (auto: chosen at start-up, see train.c) */
    tr_precision precision; /* the products' input precision */
    bool deterministic; /* exact (fixed-point) gradient sums: bitwise equal for any rank count */
    int64_t chunk_rows; /* deterministic mode: rows per chunk of an optimizer step */
    int64_t bucket_kb;  /* gradient allreduce bucket size */
    tr_comm_mode comm;  /* how gradients are summed over ranks */
    tr_compression grad_compression; /* the gradient's format between ranks (between nodes with comm = shared) */
    int64_t eval_batch; /* rows per evaluation chunk */
    double watchdog;    /* seconds a wait on other ranks may last (watchdog.h); 0 = off */
} tr_train_config;

typedef struct tr_output_config {
    char dir[TR_PATH_MAX];
    int64_t checkpoint_every;       /* epochs; 0 = only at the end */
    int64_t checkpoint_every_steps; /* 0 = off */
    int64_t log_every_steps;        /* the per-step log (steplog.h); 0 = off */
    int64_t keep_last;
    char best_metric[32];           /* auto, none, val_loss, test_accuracy, ... */
    tr_best_mode best_mode;
    tr_resume_mode resume;
    tr_progress_mode progress;
} tr_output_config;

/* One key = value as it was applied (the checkpoint stores these). */
typedef struct tr_config_entry {
    char section[16];
    char key[48];   /* with the .N suffix for per-layer overrides */
    char value[1024];
    char origin[TR_PATH_MAX + 16]; /* "file.ini:12", "--set" or "default" */
} tr_config_entry;

/* The activations text as read; resolved once the layer count is known. */
typedef struct tr_pending_activations {
    char list[512], output[32];
    char list_where[TR_PATH_MAX + 16], output_where[TR_PATH_MAX + 16];
    char dropout[512], batchnorm[512];     /* lists resolved against the hidden layers */
    char dropout_where[TR_PATH_MAX + 16], batchnorm_where[TR_PATH_MAX + 16];
    float dropout_layer[TR_MAX_LAYERS];    /* dropout.N overrides (NAN: none) */
    signed char batchnorm_layer[TR_MAX_LAYERS]; /* batchnorm.N overrides (-1: none) */
} tr_pending_activations;

typedef struct tr_config {
    char path[TR_PATH_MAX];
    tr_pending_activations pending_act;
    tr_model_config model;
    tr_data_config data;
    tr_train_config train;
    tr_output_config output;
    /* every key with its effective text value, defaults included, in table order */
    tr_config_entry *entries;
    int n_entries;
} tr_config;

/*
 * Loads `path`, then applies the `n_sets` overrides "section.key=value" (in order), then
 * fills defaults and validates. On failure returns TR_ECONFIG with a message naming the file,
 * line and key. The config must be released with tr_config_free (also after a failure).
 */
int tr_config_load(tr_config *c, const char *path, const char *const *sets, int n_sets, tr_err *err);

/* Same from an in-memory INI text (`name` is used in messages). */
int tr_config_load_string(tr_config *c, const char *name, const char *text, const char *const *sets,
                          int n_sets, tr_err *err);

void tr_config_free(tr_config *c);

/* Records what a setting resolved to (gemm = auto's choice, ...) as its effective text value,
 * so config.ini and the checkpoints store what ran; origin says where it came from. */
void tr_config_record(tr_config *c, const char *section, const char *key, const char *value, const char *origin);

/* The class names the data gave (text labels, names stored with the data) become [data]
 * class_names when the configuration names none, so checkpoints, `predict` and `eval` keep
 * them. Names too long for the key are not adopted (the reports then number the classes). */
void tr_config_adopt_class_names(tr_config *c, const char *names);

/* The effective text value of section.key ("" if unknown). */
const char *tr_config_value(const tr_config *c, const char *section, const char *key);

/* Writes the documentation of every key (Markdown table per section) to f. */
void tr_config_print_reference(FILE *f);

/* Writes the effective configuration as an INI file (for logs and run directories). */
void tr_config_print(const tr_config *c, FILE *f);

/* [data] class_names: how many names the comma-separated list has (0 for ""), and name k
 * (trimmed) in buf, or k as a number when the list is empty or shorter. */
int64_t tr_class_name_count(const char *list);
const char *tr_class_name(const char *list, int64_t k, char *buf, size_t size);

#endif
