/*
 * loss.h: losses, their gradients with respect to the output layer's pre-activation, and
 * the evaluation metrics (accuracy, confusion matrix, per-class P/R/F1, MSE, MAE, R2).
 *
 * Dimension letters: B = rows, O = output width of the network, T = target width
 * (T = O for mse/l1/bce/bce_logits; T = 1, a class index, for cross_entropy and nll).
 * Semantics follow PyTorch: BCE clamps each log at -100; bce_logits and cross_entropy take
 * logits; nll takes log-probabilities (NLLLoss after a log_softmax output); `mean` divides by
 * B*O for the element-wise losses and by B (or the sum of the class weights of the batch) for
 * cross_entropy and nll. cross_entropy and nll read the output layer's activation A (its
 * pre-activation Z when the output is identity): PyTorch accepts any input, so does this.
 */
#ifndef TRAINER_LOSS_H
#define TRAINER_LOSS_H

#include "trainer/error.h"
#include "trainer/names.h"
#include "trainer/layers.h"

#include <stdbool.h>
#include <stdint.h>

/* X(ENUM, config name) */
#define TR_LOSS_MAP(X)            \
    X(MSE, "mse")                 \
    X(L1, "l1")                   \
    X(HUBER, "huber")             \
    X(BCE, "bce")                 \
    X(BCE_LOGITS, "bce_logits")   \
    X(CROSS_ENTROPY, "cross_entropy")   \
    X(NLL, "nll")

typedef enum tr_loss_kind {
#define TR_X_LOSS(e, name) TR_LOSS_##e,
    TR_LOSS_MAP(TR_X_LOSS)
#undef TR_X_LOSS
        TR_LOSS_COUNT
} tr_loss_kind;

#define TR_REDUCTION_MAP(X)        \
    X(TR_REDUCTION_MEAN, "mean") \
    X(TR_REDUCTION_SUM, "sum")

typedef enum tr_reduction { TR_REDUCTION_MAP(TR_ENUM_VALUE) } tr_reduction;

extern const char *const tr_loss_names[];      /* NULL-terminated, in tr_loss_kind order */
extern const char *const tr_reduction_names[]; /* in tr_reduction order */

/* The metric names of tr_metrics_get, and which of them are better higher. */
extern const char *const tr_metric_names[];
bool tr_metric_higher_is_better(const char *metric);

/* The sets a logged metric is computed on (SET_METRIC: val_loss, ema_test_accuracy, ...):
 * train (the running means, or eval_train's pass), the validation and test sets, and both
 * under the weights' moving average ([train] ema_decay). */
#define TR_METRIC_SET_MAP(X)          \
    X(TR_SET_VAL, "val")              \
    X(TR_SET_TEST, "test")            \
    X(TR_SET_TRAIN, "train")          \
    X(TR_SET_EMA_VAL, "ema_val")      \
    X(TR_SET_EMA_TEST, "ema_test")
typedef enum tr_metric_set { TR_METRIC_SET_MAP(TR_ENUM_VALUE) } tr_metric_set;
extern const char *const tr_metric_set_names[];

/* Splits SET_METRIC into its set and metric name; false when either is not one of the names. */
bool tr_metric_split(const char *name, tr_metric_set *set, const char **metric);

typedef enum tr_task { TR_TASK_REGRESSION, TR_TASK_CLASSIFICATION } tr_task;

typedef struct tr_loss {
    tr_loss_kind kind;
    tr_reduction reduction;
    int64_t width;              /* O */
    tr_activation out_act;      /* the output layer's activation */
    tr_act_params act_params;
    float huber_delta;          /* HuberLoss delta (1.0) */
    const float *class_weights; /* (classes) or NULL; borrowed */
    float pos_weight;           /* bce_logits positive-class weight (1.0 = none) */
    float label_smoothing;      /* cross_entropy: PyTorch's label_smoothing (0 = none) */
} tr_loss;

const char *tr_loss_name(tr_loss_kind kind);

/* Checks that the loss can follow the output activation and width (e.g. bce needs a sigmoid
 * output, cross_entropy O >= 2). Message names `[train] loss`. */
int tr_loss_check(const tr_loss *L, tr_err *err);

/* A combination PyTorch accepts but that is likely a mistake (a softmax output under
 * cross_entropy applies the softmax twice; nll without log_softmax), as one sentence, or NULL. */
const char *tr_loss_warning(const tr_loss *L);

/* True for the losses whose target is one class index per row (cross_entropy, nll). */
bool tr_loss_takes_class_index(const tr_loss *L);

tr_task tr_loss_task(const tr_loss *L);

/* Columns of the target array (1 for cross_entropy, O otherwise). */
int64_t tr_loss_target_width(const tr_loss *L);

/* Number of classes of a classification loss (O for cross_entropy, 2 for a 1-wide BCE). */
int64_t tr_loss_classes(const tr_loss *L);

/* What a `mean` reduction divides the summed per-row losses by, for `rows` rows with the
 * given class-weight sum (used only by weighted cross_entropy). 1 for `sum`. */
double tr_loss_denominator(const tr_loss *L, int64_t rows, double weight_sum);

/* Sum over the rows of y of the class weight of each row (rows when unweighted). */
double tr_loss_weight_sum(const tr_loss *L, const float *y, int64_t B);

/*
 * The loss of B rows. Returns the sum over rows of the per-row loss (each row's loss summed
 * over its outputs), in double. If row_loss is not NULL it receives each row's loss.
 * If dZ is not NULL it receives grad_scale * d(sum)/dZ, the gradient with respect to the
 * output layer's PRE-activation Z (fused for softmax+CE, sigmoid+BCE, logits+BCE; through
 * the output activation's backward otherwise). dZ (B, O) may not alias Z or A.
 * Z and A are the output layer's pre-activation and activation, (B, O); y is (B, T).
 */
double tr_loss_compute(const tr_loss *L, float *dZ, double *row_loss, const float *Z,
                       const float *A, const float *y, int64_t B, float grad_scale);

/* Number of rows whose predicted class equals the target (classification; for BCE with
 * O > 1, the number of correct elements). Z and A as for tr_loss_compute. */
int64_t tr_loss_count_correct(const tr_loss *L, const float *Z, const float *A, const float *y, int64_t B);

/* Class predicted for one row (argmax of what cross_entropy or nll reads; for the binary
 * losses z > 0, which is sigmoid(z) > 0.5). */
int64_t tr_loss_predict_class(const tr_loss *L, const float *z_row, const float *a_row);

/* Class probabilities of one row into p (O values): softmax of the logits (cross_entropy),
 * exp of a log_softmax output (nll; softmax of other outputs), sigmoid (bce, bce_logits). */
void tr_loss_probabilities(const tr_loss *L, const float *z_row, const float *a_row, float *p);

/* Metrics over a whole evaluation set. */
typedef struct tr_metrics {
    tr_task task;
    int64_t rows;
    double loss;        /* reduced as configured (mean or sum) */
    /* classification */
    int64_t classes;
    double accuracy;
    int64_t *confusion; /* (classes, classes): row = true class, column = predicted */
    double *precision, *recall, *f1; /* (classes) */
    /* scikit-learn's classification_report averages: macro over the classes present in the
     * targets or the predictions, weighted by each class's support (its true rows) */
    double macro_precision, macro_recall, macro_f1;
    double weighted_precision, weighted_recall, weighted_f1;
    /* regression (averaged over outputs, as scikit-learn's uniform_average) */
    double mse, rmse, mae, r2;
} tr_metrics;

/* Allocates the per-class arrays for `classes` classes (0 for regression). */
int tr_metrics_init(tr_metrics *m, tr_task task, int64_t classes, tr_err *err);
void tr_metrics_free(tr_metrics *m);

/*
 * Fills m from whole-set arrays: Z (N, O) the network's pre-activation outputs, y (N, T),
 * row_loss (N). The same function serves one rank and N ranks (rank 0 after a gather), so
 * distributed metrics equal single-rank metrics exactly.
 */
void tr_metrics_compute(tr_metrics *m, const tr_loss *L, const float *Z, const float *A,
                        const float *y, const double *row_loss, int64_t N);

/* The value a monitor named `name` (tr_metric_names) has in m;
 * returns false for an unknown name or one that does not apply to the task. */
bool tr_metrics_get(const tr_metrics *m, const char *name, double *value);

#endif
