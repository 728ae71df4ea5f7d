/*
 * model.h: the MLP: its table of parameter tensors, the flat buffers, initialisation, and
 * forward/backward through cblas_sgemm.
 *
 * Dimension letters: B = rows in the batch, I = a layer's input width, O = its output width.
 * Layer l computes Z = X W^T + b (sgemm), A = act(Z). Parameters follow PyTorch's nn.Linear
 * layout: W (O, I) row-major, b (O). All tensors live in one flat `params` buffer (and the
 * same layout in `grads` and in every optimizer state), each tensor at a 64-byte aligned
 * offset. Tensor names are those of the equivalent torch.nn.Sequential's state_dict
 * ("0/weight", "0/bias", "2/weight", ...), so a checkpoint maps one to one onto PyTorch.
 *
 * Ownership: tr_model owns every buffer it allocates; layer pointers are views.
 */
#ifndef TRAINER_MODEL_H
#define TRAINER_MODEL_H

#include "trainer/config.h"
#include "trainer/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct tr_tensor {
    char name[32];   /* "<sequential index>/weight" or ".../bias" */
    int layer;       /* weight layer it belongs to */
    bool is_weight;  /* false: bias */
    int64_t rows, cols; /* (O, I) for a weight, (O, 1) for a bias */
    size_t offset;   /* into the flat buffers, in floats */
    size_t size;     /* rows * cols */
} tr_tensor;

typedef struct tr_layer {
    int64_t in, out;      /* I, O */
    tr_activation act;
    int seq_index;        /* index of this Linear in the equivalent nn.Sequential */
    float *W, *b;         /* (O, I), (O) or NULL: views into params */
    float *dW, *db;       /* views into m->grads */
    size_t w_off, b_off;  /* offsets of W and b in the flat buffers (b_off unused without bias) */
    float *Z, *A;         /* (max_batch, O) views into the workspace; A == Z for identity */
} tr_layer;

/*
 * How backward reports progress to a communication layer. Gradients are completed from the
 * end of the flat buffer towards its start (last layer first; within a layer the bias, then
 * the weight rows from the last to the first), and after each piece `ready(ctx, frontier)`
 * says that grads[frontier, n_params) are final. `splits` (ascending offsets, each on a
 * weight row boundary or a tensor boundary) cut the weight gradients into row blocks so that
 * ready() fires exactly at those offsets; `progress` is called between kernels.
 * `layer_done(ctx, frontier)` fires once a layer is finished, including the input gradient
 * that still reads its weights: from then on params[frontier, n_params) may change.
 */
typedef struct tr_grad_hook {
    void (*ready)(void *ctx, size_t frontier);
    void (*layer_done)(void *ctx, size_t frontier);
    void (*progress)(void *ctx);
    void *ctx;
    const size_t *splits;
    int n_splits;
} tr_grad_hook;

typedef struct tr_model {
    tr_model_config cfg;
    int n_layers;
    tr_layer layer[TR_MAX_LAYERS];
    int n_tensors;
    tr_tensor tensor[2 * TR_MAX_LAYERS];
    size_t n_params;     /* length of the flat buffers (with alignment padding) */
    size_t n_trainable;  /* parameters without padding */
    float *params;       /* (n_params) */
    float *grads;        /* (n_params) */
    bool external;       /* params and grads belong to someone else (tr_model_use_buffers) */
    int64_t max_batch;   /* rows the workspace holds */
    int64_t max_width;
    float *work;         /* every layer's Z and A */
    float *delta[2];     /* (max_batch, max_width) backward scratch */
    float *ones;         /* (max_batch) of 1.0f: bias gradients as one sgemv */
} tr_model;

/* Builds the tensor table and allocates every buffer for batches of up to max_batch rows.
 * Parameters start at zero; call tr_model_init_params. */
int tr_model_init(tr_model *m, const tr_model_config *cfg, int64_t max_batch, tr_err *err);
void tr_model_free(tr_model *m);

/* Makes the model use caller-owned parameter and gradient buffers (flat layout, n_params
 * floats each, 64-byte aligned), e.g. node-shared memory; its own are released. The
 * parameter values are not copied. */
void tr_model_use_buffers(tr_model *m, float *params, float *grads);

/* Initialises every tensor with its configured scheme, from counters (seed, tensor, element):
 * the same seed gives bitwise the same parameters on any machine and rank count. */
void tr_model_init_params(tr_model *m, uint64_t seed);

/* Forward pass of B <= max_batch rows of X (B, I0). Returns the output activation (B, O_last);
 * the output pre-activation is m->layer[L-1].Z. */
const float *tr_model_forward(tr_model *m, const float *X, int64_t B);

/* Backward pass after tr_model_forward on the same X: dZ_out (B, O_last) is the gradient of
 * the loss w.r.t. the output pre-activation (it is overwritten). Gradients are ADDED into
 * `grads` (the flat layout, usually m->grads) when `accumulate`, else they overwrite it (the
 * first micro-step of an optimizer step: no zeroing pass needed; the alignment padding
 * between tensors is never written and stays zero). hook may be NULL. */
void tr_model_backward(tr_model *m, float *grads, const float *X, float *dZ_out, int64_t B, bool accumulate,
                       const tr_grad_hook *hook);

void tr_model_zero_grad(tr_model *m);

/* Plain-loop reference implementations (tests compare the BLAS path against them). */
void tr_dense_forward_ref(float *Z, const float *X, const float *W, const float *b, int64_t B, int64_t I,
                          int64_t O);
void tr_dense_backward_ref(float *dX, float *dW, float *db, const float *dZ, const float *X, const float *W,
                           int64_t B, int64_t I, int64_t O);

/* torch.nn.init.calculate_gain for an activation (1 where PyTorch has no entry). */
double tr_init_gain(tr_activation act, double leaky_slope);

/* Prints the torchinfo-style table: one row per module with output shape and parameters. */
void tr_model_summary(const tr_model *m, FILE *f);

#endif
