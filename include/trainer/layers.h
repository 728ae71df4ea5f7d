/*
 * layers.h: the element-wise and row-wise layer kernels, as pure functions.
 *
 * Dimension letters: B = rows in the batch, W = width of the layer (units).
 * Every buffer is row-major (B, W). Argument order: outputs, then const inputs, then sizes.
 * Backward kernels may be called with dZ == dA (in place).
 */
#ifndef TRAINER_LAYERS_H
#define TRAINER_LAYERS_H

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
    X(SOFTMAX, "softmax", "Softmax")

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
int tr_activation_from_name(const char *name);
const char *tr_activation_name(tr_activation act);
const char *tr_activation_torch_name(tr_activation act);

/* A = act(Z), (B, W). Softmax is taken along each row (max-subtracted). A must not alias Z:
 * backward reads both. */
void tr_act_forward(float *A, const float *Z, int64_t B, int64_t W, tr_activation act,
                    const tr_act_params *p);

/* dZ = dA * act'(Z) (softmax: the row Jacobian-vector product). Uses Z and/or A = act(Z). */
void tr_act_backward(float *dZ, const float *dA, const float *Z, const float *A, int64_t B,
                     int64_t W, tr_activation act, const tr_act_params *p);

#endif
