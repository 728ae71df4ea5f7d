/*
 * layers.h: the element-wise and row-wise layer kernels, as pure functions.
 *
 * Dimension letters: B = rows in the batch, W = width of the layer (units).
 * Every buffer is row-major (B, W). Argument order: outputs, then const inputs, then sizes.
 * Backward kernels may be called with dZ == dA (in place).
 */
#ifndef TRAINER_LAYERS_H
#define TRAINER_LAYERS_H

#include "trainer/names.h"

#include <stdbool.h>
#include <stdint.h>

/* X(ENUM, config name, torch module name) */
#define TR_ACTIVATION_MAP(X)               \
    X(IDENTITY, "identity", "Identity")    \
    X(SIGMOID, "sigmoid", "Sigmoid")       \
    X(TANH, "tanh", "Tanh")                \
    X(RELU, "relu", "ReLU")                \
    X(LEAKY_RELU, "leaky_relu", "LeakyReLU") \
    X(ELU, "elu", "ELU")                   \
    X(SELU, "selu", "SELU")                \
    X(GELU, "gelu", "GELU")                \
    X(SILU, "silu", "SiLU")                \
    X(SOFTPLUS, "softplus", "Softplus")    \
    X(SOFTMAX, "softmax", "Softmax")         \
    X(LOG_SOFTMAX, "log_softmax", "LogSoftmax")

typedef enum tr_activation {
#define TR_X_ACT(e, name, torch) TR_ACT_##e,
    TR_ACTIVATION_MAP(TR_X_ACT)
#undef TR_X_ACT
        TR_ACT_COUNT
} tr_activation;

/* Parameters of the parametrised activations (PyTorch defaults: slope 0.01, alpha 1). */
typedef struct tr_act_params {
    float leaky_slope;
    float elu_alpha;
} tr_act_params;

/* Name lookups; tr_activation_from_name returns -1 for an unknown name. */
extern const char *const tr_activation_names[]; /* NULL-terminated, in tr_activation order */
int tr_activation_from_name(const char *name);
const char *tr_activation_name(tr_activation act);
const char *tr_activation_torch_name(tr_activation act);

/* A = act(Z), (B, W). Softmax and log_softmax are taken along each row (max-subtracted). A must not alias Z:
 * backward reads both. */
void tr_act_forward(float *A, const float *Z, int64_t B, int64_t W, tr_activation act,
                    const tr_act_params *p);

/* dZ = dA * act'(Z) (softmax: the row Jacobian-vector product). Uses Z and/or A = act(Z). */
void tr_act_backward(float *dZ, const float *dA, const float *Z, const float *A, int64_t B,
                     int64_t W, tr_activation act, const tr_act_params *p);

/* ------------------------------------------------------------------ batch norm ------ */

/* BatchNorm1d over B rows of W features (PyTorch: eps 1e-5, momentum 0.1, affine, biased
 * batch variance for normalising, unbiased for the running variance). Statistics are
 * computed from sums so that ranks can add their sums first (synchronised batch norm). */

/* sums (2W): sums[j] += sum_r X[r][j], sums[W + j] += sum_r X[r][j]^2. */
void tr_bn_sums(double *sums, const float *X, int64_t B, int64_t W);

/* Training forward from the (possibly global) sums of `count` rows: Y = gamma * xhat + beta,
 * keeping xhat (B, W), mean and invstd (W) for backward. */
void tr_bn_forward_train(float *Y, float *xhat, float *mean, float *invstd, const float *X, const double *sums,
                         double count, const float *gamma, const float *beta, int64_t B, int64_t W, float eps);

/* Evaluation forward with the running statistics. */
void tr_bn_forward_eval(float *Y, const float *X, const float *running_mean, const float *running_var,
                        const float *gamma, const float *beta, int64_t B, int64_t W, float eps);

/* running = (1 - momentum) running + momentum batch (variance unbiased: * count/(count-1)). */
void tr_bn_update_running(float *running_mean, float *running_var, const double *sums, double count, int64_t W,
                          float momentum);

/* sums (2W): sums[j] += sum_r dY[r][j], sums[W + j] += sum_r dY[r][j] xhat[r][j]. */
void tr_bn_backward_sums(double *sums, const float *dY, const float *xhat, int64_t B, int64_t W);

/* dgamma += sum dY xhat and dbeta += sum dY over this rank's rows (local_sums); dX from the
 * (possibly global) sums of `count` rows:
 * dX = gamma invstd / count (count dY - sum dY - xhat sum(dY xhat)). dX may alias dY. */
void tr_bn_backward(float *dX, float *dgamma, float *dbeta, const float *dY, const float *xhat, const float *invstd,
                    const float *gamma, const double *local_sums, const double *sums, double count, int64_t B,
                    int64_t W);

/* ------------------------------------------------------------------ dropout --------- */

/* Inverted dropout mask (B, W): 1/(1-p) for kept units, 0 for dropped ones. Unit j of the
 * sample with dataset row id rows[r] is dropped with probability p, decided by the
 * counter (seed, step, rows[r] * units + unit_offset + j): the same sample gets the same mask
 * whichever rank or micro-step computes it. */
void tr_dropout_mask(float *mask, const int64_t *rows, int64_t B, int64_t W, float p, uint64_t seed, int64_t step,
                     int64_t unit_offset, int64_t units);

#endif
