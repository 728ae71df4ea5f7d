/*
 * model.h: the MLP: its table of parameter tensors, the flat buffers, initialisation, and
 * forward/backward through its GEMM engine (gemm.h: openblas or onednn, fp32 or bf16
 * products), with optional batch norm and dropout on hidden layers.
 *
 * Dimension letters: B = rows in the batch, I = a layer's input width, O = its output width.
 * Layer l computes Z = X W^T + b (one product), then [BatchNorm1d before], act, [BatchNorm1d
 * after], [dropout]. Parameters follow PyTorch's layout: W (O, I) row-major, b (O), batch-norm
 * weight and bias (O). All trainable tensors live in one flat `params` buffer (the same layout
 * in `grads` and in every optimizer state), each at a 64-byte aligned offset; batch-norm
 * running statistics live in a separate `buffers` array. Tensor names are those of the
 * equivalent torch.nn.Sequential's state_dict ("0/weight", "1/running_mean", ...), so a
 * checkpoint maps one to one onto PyTorch.
 *
 * Ownership: tr_model owns every buffer it allocates; layer pointers are views.
 */
#ifndef TRAINER_MODEL_H
#define TRAINER_MODEL_H

#include "trainer/config.h"
#include "trainer/error.h"
#include "trainer/gemm.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum tr_tensor_kind { TR_T_WEIGHT, TR_T_BIAS, TR_T_BN_WEIGHT, TR_T_BN_BIAS } tr_tensor_kind;

typedef struct tr_tensor {
    char name[32];   /* "<sequential index>/weight" or ".../bias" */
    int layer;       /* weight layer it belongs to */
    tr_tensor_kind kind;
    bool is_weight;  /* a Linear weight (2-D); the others are vectors */
    int64_t rows, cols; /* (O, I) for a weight, (O, 1) for the others */
    size_t offset;   /* into the flat buffers, in floats */
    size_t size;     /* rows * cols */
} tr_tensor;

/* The part [*a, *b) of the flat range [lo, hi) that lies in tensor T (work on a range is done
 * tensor by tensor: the padding between tensors is never touched); false when none does. */
static inline bool tr_tensor_part(const tr_tensor *T, size_t lo, size_t hi, size_t *a, size_t *b)
{
    *a = T->offset > lo ? T->offset : lo;
    *b = T->offset + T->size < hi ? T->offset + T->size : hi;
    return *a < *b;
}

/* A non-trainable buffer (batch-norm running statistics): name and place in m->buffers. */
typedef struct tr_buffer {
    char name[40];   /* "<sequential index>/running_mean" or ".../running_var" */
    int layer;
    size_t offset, size;
} tr_buffer;

typedef struct tr_layer {
    int64_t in, out;      /* I, O */
    tr_activation act;
    int seq_index;        /* index of this Linear in the equivalent nn.Sequential */
    int bn_seq;           /* index of its BatchNorm1d (-1: none) */
    bool bn;
    float dropout;        /* probability (0: none) */
    int64_t drop_offset;  /* units of the dropout layers below this one (mask counters) */
    float *W, *b;         /* (O, I), (O) or NULL: views into params */
    float *dW, *db;       /* views into m->grads */
    size_t w_off, b_off;  /* offsets of W and b in the flat buffers (b_off unused without bias) */
    float *gamma, *beta;  /* batch-norm affine parameters (O): views into params */
    size_t g_off, be_off;
    float *running_mean, *running_var; /* (O): views into m->buffers */
    int64_t bn_batches;   /* num_batches_tracked */
    size_t bn_record_at;  /* where this layer's statistics lie in a batch-norm record */
    /* workspace views, (max_batch, O) each */
    float *Z;             /* X W^T + b */
    float *Y;             /* batch-norm output (input of the activation, or the layer output) */
    float *A;             /* activation output (A == its input for identity) */
    float *D, *mask;      /* dropout output and mask */
    float *xhat;          /* batch-norm normalised input */
    float *bn_mean, *bn_invstd; /* (O) */
    float *act_in;        /* what the activation read: Z or Y */
    float *output;        /* the layer output: A or Y (before dropout) */
    /* bf16 precision only (else NULL): views into m->half, rounded by the forward pass */
    tr_bf16 *W_half;      /* (O, I) the weights */
    tr_bf16 *in_half;     /* (max_batch, I) the layer's input, for dW in backward */
} tr_layer;

/*
 * How backward reports progress to a communication layer. Gradients are completed from the
 * end of the flat buffer towards its start (last layer first; within a layer the batch-norm
 * parameters, the bias, then the weight rows from the last to the first), and after each
 * piece `ready(ctx, frontier)` says that grads[frontier, n_params) are final. `splits`
 * (ascending offsets, each on a weight row boundary or a tensor boundary) cut the weight
 * gradients into row blocks so that ready() fires exactly at those offsets; `progress` is
 * called between kernels. `layer_done(ctx, frontier)` fires once a layer is finished,
 * including the input gradient that still reads its weights: from then on
 * params[frontier, n_params) may change.
 */
typedef struct tr_grad_hook {
    void (*ready)(void *ctx, size_t frontier);
    void (*layer_done)(void *ctx, size_t frontier);
    void (*progress)(void *ctx);
    void *ctx;
    const size_t *splits;
    int n_splits;
} tr_grad_hook;

/* Training-mode forward: batch statistics for batch norm, dropout masks. NULL = evaluation. */
typedef struct tr_forward_mode {
    uint64_t seed;           /* dropout masks: counters (seed, step, row id, unit) */
    int64_t step;
    const int64_t *rows;     /* (B) dataset row ids of the batch */
    double global_rows;      /* rows of the micro-batch over all ranks (synchronised batch norm) */
    /* sums over the ranks, in place (NULL: batch norm over this rank's rows only) */
    int (*sum)(void *ctx, double *buf, int n);
    void *ctx;
    /* non-NULL: batch norm writes its batch statistics here (tr_model_bn_record_size doubles)
     * instead of updating the running statistics; tr_model_bn_apply applies them later, so
     * records from several ranks can be applied in one fixed order (deterministic mode) */
    double *bn_record;
} tr_forward_mode;

_Static_assert(4 * TR_MAX_LAYERS <= TR_OPTIM_MAX_TENSORS, "the optimizer keeps a trust ratio per tensor");

typedef struct tr_model {
    tr_model_config cfg;
    int n_layers;
    tr_layer layer[TR_MAX_LAYERS];
    int n_tensors;
    tr_tensor tensor[4 * TR_MAX_LAYERS];
    int n_buffers;
    tr_buffer buffer[2 * TR_MAX_LAYERS];
    size_t n_params;     /* length of the flat buffers (with alignment padding) */
    size_t n_trainable;  /* parameters without padding */
    float *params;       /* (n_params) */
    float *grads;        /* (n_params) */
    bool external;       /* params and grads belong to someone else (tr_model_use_buffers) */
    float *buffers;      /* (n_buffer_floats) batch-norm running statistics */
    size_t n_buffer_floats;
    int64_t dropout_units; /* units of all dropout layers: the mask counter's row stride */
    int64_t max_batch;   /* rows the workspace holds */
    int64_t max_width;
    float *work;         /* every layer's workspace */
    float *delta[2];     /* (max_batch, max_width) backward scratch */
    float *ones;         /* (max_batch) of 1.0f: bias gradients as one sgemv */
    double *sums;        /* (4 max_width) batch-norm sums */
    tr_gemm *gemm;       /* the products' engine and precision (owned) */
    tr_bf16 *half;       /* bf16 precision: the layers' W_half and in_half, and dZ_half */
    tr_bf16 *dZ_half;    /* (max_batch, max_width) backward's dZ, rounded */
    bool hold_weights;   /* the parameters do not change (tr_model_hold_weights) */
    bool held_rounded;   /* ... and the W_half already hold them */
    const tr_forward_mode *mode; /* of the last forward (backward needs it) */
    int comm_error;      /* a failed sum of a synchronised batch norm (0: none) */
} tr_model;

/* Doubles one forward pass's batch-norm record takes (0 without batch norm). */
size_t tr_model_bn_record_size(const tr_model *m);
/* Updates the running statistics from one record, as the forward pass would have. */
void tr_model_bn_apply(tr_model *m, const double *record);

/* Builds the tensor table and allocates every buffer for batches of up to max_batch rows.
 * Parameters start at zero; call tr_model_init_params. Products run in OpenBLAS fp32 until
 * tr_model_set_gemm says otherwise. */
int tr_model_init(tr_model *m, const tr_model_config *cfg, int64_t max_batch, tr_err *err);
void tr_model_free(tr_model *m);

/* The engine and precision of every product from now on (not auto: gemm.h's choice is the
 * caller's); bf16 allocates the rounded copies. On failure the model keeps what it had. */
int tr_model_set_gemm(tr_model *m, tr_gemm_engine engine, tr_precision p, tr_err *err);

/* Between hold = true and hold = false the caller promises that the parameters do not change
 * (the chunks of one evaluation, the micro-batches of one optimizer step): bf16 then rounds the
 * weights once, in the first forward pass, instead of in every one. */
void tr_model_hold_weights(tr_model *m, bool hold);

/* The products of one training step on B rows (forward, weight and input gradients per layer),
 * as gemm.h's shapes; returns how many (at most 3 per layer). */
int tr_model_gemm_shapes(const tr_model *m, int64_t B, bool accumulate, tr_gemm_shape *shapes);

/* Makes the model use caller-owned parameter and gradient buffers (flat layout, n_params
 * floats each, 64-byte aligned), e.g. node-shared memory; its own are released. The
 * parameter values are not copied. */
void tr_model_use_buffers(tr_model *m, float *params, float *grads);

/* Exchanges the model's parameters and batch norm statistics with *params and *buffers (the
 * same layouts): the model computes with the others until the next exchange. */
void tr_model_swap_weights(tr_model *m, float **params, float **buffers);

/* Initialises every tensor with its configured scheme, from counters (seed, tensor, element):
 * the same seed gives bitwise the same parameters on any machine and rank count. Batch norm
 * starts as PyTorch's: weight 1, bias 0, running mean 0, running variance 1. */
void tr_model_init_params(tr_model *m, uint64_t seed);

/* Forward pass of B <= max_batch rows of X (B, I0); mode NULL = evaluation. Returns the
 * output activation (B, O_last); the output pre-activation is m->layer[L-1].Z. In training
 * mode the batch-norm running statistics are updated (once per call). */
const float *tr_model_forward(tr_model *m, const float *X, int64_t B, const tr_forward_mode *mode);

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

/* The nn.Sequential module list ("Linear,BatchNorm1d,ReLU,Dropout(0.2),...") and whether a
 * tensor is penalised (weights only unless `all`). */
void tr_model_sequential(const tr_model *m, char *buf, size_t len);

#endif
