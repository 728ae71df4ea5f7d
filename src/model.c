/*
 * model.c: tensor table, flat buffers, initialisation schemes, and the forward and backward
 * passes of the MLP, whose matrix products go through the model's GEMM engine (gemm.h).
 *
 * Dimension letters: B rows, I layer input width, O layer output width (Ni, No in code:
 * complex.h, which the BLAS headers pull in elsewhere, defines a macro I).
 * Forward per layer:  Z (B,O) = X (B,I) W^T (I,O) + b     one product (bias included)
 *                     A (B,O) = act(Z)
 * Backward per layer: dW (O,I) += dZ^T (O,B) X (B,I)      one product (per row block)
 *                     db (O)   += dZ^T (O,B) 1 (B)        column sums, in float
 *                     dX (B,I)  = dZ (B,O) W (O,I)        one product, then act' of the layer below
 * In bf16 the products read bf16 copies of their operands, each rounded once: W and the layer
 * input X in the forward pass (X is kept for dW), dZ once per layer in backward.
 */
#include "trainer/model.h"

#include "trainer/layers.h"
#include "trainer/mem.h"
#include "trainer/rng.h"

#include "vector_kernel.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define ALIGN_FLOATS 16 /* 64 bytes */

static size_t align_up(size_t n) { return (n + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS; }

static float *alloc_floats(size_t n)
{
    return tr_big_alloc(align_up(n ? n : 1) * sizeof(float));
}

/* nn.Sequential indices: Linear, [BatchNorm1d before], activation unless identity,
 * [BatchNorm1d after], [Dropout]. */
static void sequential_indices(tr_model *m)
{
    int s = 0;
    for (int l = 0; l < m->n_layers; l++) {
        tr_layer *L = &m->layer[l];
        L->seq_index = s++;
        L->bn_seq = -1;
        if (L->bn && !m->cfg.bn_after)
            L->bn_seq = s++;
        if (L->act != TR_ACT_IDENTITY)
            s++;
        if (L->bn && m->cfg.bn_after)
            L->bn_seq = s++;
        if (L->dropout > 0.0f)
            s++;
    }
}

static tr_tensor *add_tensor(tr_model *m, int l, tr_tensor_kind kind, int seq, int64_t rows, int64_t cols,
                             size_t *off)
{
    static const char *const suffix[] = {"weight", "bias", "weight", "bias"};
    tr_tensor *t = &m->tensor[m->n_tensors++];
    t->layer = l;
    t->kind = kind;
    t->is_weight = kind == TR_T_WEIGHT;
    t->rows = rows;
    t->cols = cols;
    t->size = (size_t)rows * (size_t)cols;
    t->offset = *off;
    snprintf(t->name, sizeof t->name, "%d/%s", seq, suffix[kind]);
    *off = align_up(*off + t->size);
    m->n_trainable += t->size;
    return t;
}

/* The layers' shapes, activations, batch norm and dropout from the configuration; the
 * widest layer. */
static int64_t plan_layers(tr_model *m, const tr_model_config *cfg)
{
    int64_t max_width = cfg->widths[0];
    size_t bn_record = 0;
    for (int l = 0; l < m->n_layers; l++) {
        tr_layer *L = &m->layer[l];
        L->in = cfg->widths[l];
        L->out = cfg->widths[l + 1];
        L->act = cfg->act[l];
        L->bn = cfg->batchnorm[l];
        L->dropout = cfg->dropout[l];
        L->drop_offset = m->dropout_units;
        if (L->dropout > 0.0f)
            m->dropout_units += L->out;
        L->bn_record_at = bn_record;
        if (L->bn)
            bn_record += 2 * (size_t)L->out + 1;
        max_width = L->out > max_width ? L->out : max_width;
    }
    return max_width;
}

/* The tensor table in Sequential order (Linear weight, bias, then batch-norm weight, bias)
 * and the batch-norm running statistics, with their offsets in the flat buffers. */
static void build_tensor_table(tr_model *m)
{
    sequential_indices(m);
    size_t off = 0, boff = 0;
    for (int l = 0; l < m->n_layers; l++) {
        tr_layer *L = &m->layer[l];
        add_tensor(m, l, TR_T_WEIGHT, L->seq_index, L->out, L->in, &off);
        if (m->cfg.bias)
            add_tensor(m, l, TR_T_BIAS, L->seq_index, L->out, 1, &off);
        if (L->bn) {
            add_tensor(m, l, TR_T_BN_WEIGHT, L->bn_seq, L->out, 1, &off);
            add_tensor(m, l, TR_T_BN_BIAS, L->bn_seq, L->out, 1, &off);
            for (int k = 0; k < 2; k++) {
                tr_buffer *b = &m->buffer[m->n_buffers++];
                snprintf(b->name, sizeof b->name, "%d/%s", L->bn_seq, k ? "running_var" : "running_mean");
                b->layer = l;
                b->offset = boff;
                b->size = (size_t)L->out;
                boff = align_up(boff + b->size);
            }
        }
    }
    m->n_params = off;
    m->n_buffer_floats = boff;
}

/* Each batch norm layer's running statistics, in m->buffers. */
static void point_at_buffers(tr_model *m)
{
    for (int b = 0; b < m->n_buffers; b++) {
        tr_layer *L = &m->layer[m->buffer[b].layer];
        if (strstr(m->buffer[b].name, "running_mean"))
            L->running_mean = m->buffers + m->buffer[b].offset;
        else
            L->running_var = m->buffers + m->buffer[b].offset;
    }
}

/* Each layer's views into the workspace (Z, [Y, xhat, mean, invstd], [A], [D, mask]) and
 * into the running statistics. */
static void bind_workspace(tr_model *m)
{
    const size_t B = (size_t)m->max_batch;
    float *w = m->work;
    for (int l = 0; l < m->n_layers; l++) {
        tr_layer *L = &m->layer[l];
        const size_t zs = align_up(B * (size_t)L->out);
        L->Z = w;
        w += zs;
        L->act_in = L->Z;
        if (L->bn) {
            L->Y = w;
            w += zs;
            L->xhat = w;
            w += zs;
            L->bn_mean = w;
            w += align_up((size_t)L->out);
            L->bn_invstd = w;
            w += align_up((size_t)L->out);
            if (!m->cfg.bn_after)
                L->act_in = L->Y;
        }
        if (L->act == TR_ACT_IDENTITY) {
            L->A = L->act_in;
        } else {
            L->A = w;
            w += zs;
        }
        L->output = L->bn && m->cfg.bn_after ? L->Y : L->A;
        if (L->dropout > 0.0f) {
            L->D = w;
            w += zs;
            L->mask = w;
            w += zs;
        }
    }
    point_at_buffers(m);
}

int tr_model_init(tr_model *m, const tr_model_config *cfg, int64_t max_batch, tr_err *err)
{
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->n_layers = cfg->n_layers;
    m->max_batch = max_batch < 1 ? 1 : max_batch;
    if (cfg->n_layers < 1 || cfg->n_layers > TR_MAX_LAYERS)
        return tr_fail(err, TR_ECONFIG, "model needs 1 to %d weight layers", TR_MAX_LAYERS);
    const int64_t max_width = plan_layers(m, cfg);
    build_tensor_table(m);
    m->max_width = max_width;

    /* workspace per layer: Z, [Y], [A], [D, mask], [xhat, mean, invstd] */
    const size_t B = (size_t)m->max_batch;
    size_t work = 0;
    for (int l = 0; l < m->n_layers; l++) {
        const tr_layer *L = &m->layer[l];
        const size_t zs = align_up(B * (size_t)L->out);
        work += zs;                                   /* Z */
        work += L->act != TR_ACT_IDENTITY ? zs : 0;   /* A */
        work += L->bn ? 2 * zs + 2 * align_up((size_t)L->out) : 0; /* Y, xhat, mean, invstd */
        work += L->dropout > 0.0f ? 2 * zs : 0;       /* D, mask */
    }
    const size_t delta = align_up(B * (size_t)max_width);
    m->params = alloc_floats(m->n_params);
    m->grads = alloc_floats(m->n_params);
    m->buffers = alloc_floats(m->n_buffer_floats);
    m->work = alloc_floats(work);
    m->delta[0] = alloc_floats(delta);
    m->delta[1] = alloc_floats(delta);
    m->ones = alloc_floats(B);
    m->sums = tr_big_alloc(4 * (size_t)max_width * sizeof(double));
    if (!m->params || !m->grads || !m->buffers || !m->work || !m->delta[0] || !m->delta[1] || !m->ones || !m->sums) {
        tr_model_free(m);
        return tr_fail(err, TR_ENOMEM, "cannot allocate the model (%zu parameters, %lld-row workspace)",
                       m->n_params, (long long)max_batch);
    }
    for (size_t i = 0; i < B; i++)
        m->ones[i] = 1.0f;

    tr_model_use_buffers(m, m->params, m->grads);
    m->external = false;
    bind_workspace(m);
    int rc = tr_model_set_gemm(m, TR_GEMM_OPENBLAS, TR_PRECISION_FP32, err);
    if (rc)
        tr_model_free(m);
    return rc;
}

int tr_model_set_gemm(tr_model *m, tr_gemm_engine engine, tr_precision p, tr_err *err)
{
    tr_gemm *g;
    int rc = tr_gemm_create(&g, engine, p, err);
    if (rc)
        return rc;
    tr_bf16 *half = NULL;
    if (p == TR_PRECISION_BF16) { /* per layer: W (O, I) and its input (B, I); one dZ (B, max width) */
        const size_t B = (size_t)m->max_batch;
        size_t n = align_up(B * (size_t)m->max_width);
        for (int l = 0; l < m->n_layers; l++)
            n += align_up((size_t)(m->layer[l].out * m->layer[l].in)) + align_up(B * (size_t)m->layer[l].in);
        half = tr_big_alloc(n * sizeof *half);
        if (!half) {
            tr_gemm_free(g);
            return tr_fail(err, TR_ENOMEM, "cannot allocate the bf16 copies of the model (%zu values)", n);
        }
        tr_bf16 *h = half;
        for (int l = 0; l < m->n_layers; l++) {
            tr_layer *L = &m->layer[l];
            L->W_half = h;
            h += align_up((size_t)(L->out * L->in));
            L->in_half = h;
            h += align_up(B * (size_t)L->in);
        }
        m->dZ_half = h;
    } else {
        for (int l = 0; l < m->n_layers; l++)
            m->layer[l].W_half = m->layer[l].in_half = NULL;
        m->dZ_half = NULL;
    }
    tr_gemm_free(m->gemm);
    tr_big_free(m->half);
    m->gemm = g;
    m->half = half;
    m->held_rounded = false; /* new copies hold nothing yet */
    return 0;
}

/* Each layer's tensors, in m->params and m->grads. */
static void point_at_params(tr_model *m)
{
    for (int t = 0; t < m->n_tensors; t++) {
        tr_tensor *T = &m->tensor[t];
        tr_layer *L = &m->layer[T->layer];
        switch (T->kind) {
        case TR_T_WEIGHT:
            L->W = m->params + T->offset;
            L->dW = m->grads + T->offset;
            L->w_off = T->offset;
            break;
        case TR_T_BIAS:
            L->b = m->params + T->offset;
            L->db = m->grads + T->offset;
            L->b_off = T->offset;
            break;
        case TR_T_BN_WEIGHT:
            L->gamma = m->params + T->offset;
            L->g_off = T->offset;
            break;
        case TR_T_BN_BIAS:
            L->beta = m->params + T->offset;
            L->be_off = T->offset;
            break;
        }
    }
}

void tr_model_use_buffers(tr_model *m, float *params, float *grads)
{
    if (!m->external) {
        if (m->params != params)
            tr_big_free(m->params);
        if (m->grads != grads)
            tr_big_free(m->grads);
    }
    m->params = params;
    m->grads = grads;
    m->external = true;
    point_at_params(m);
}

void tr_model_swap_weights(tr_model *m, float **params, float **buffers)
{
    float *p = m->params, *b = m->buffers;
    m->params = *params;
    m->buffers = *buffers;
    *params = p;
    *buffers = b;
    point_at_params(m);
    point_at_buffers(m);
}


void tr_model_free(tr_model *m)
{
    if (!m)
        return;
    if (!m->external) {
        tr_big_free(m->params);
        tr_big_free(m->grads);
    }
    tr_big_free(m->buffers);
    tr_big_free(m->work);
    tr_big_free(m->delta[0]);
    tr_big_free(m->delta[1]);
    tr_big_free(m->ones);
    tr_big_free(m->sums);
    tr_big_free(m->half);
    tr_gemm_free(m->gemm);
    m->half = NULL;
    m->gemm = NULL;
    m->params = m->grads = m->buffers = m->work = m->delta[0] = m->delta[1] = m->ones = NULL;
    m->sums = NULL;
}

/* ------------------------------------------------------------------- initialisation --- */

double tr_init_gain(tr_activation act, double leaky_slope)
{
    switch (act) {
    case TR_ACT_TANH:
        return tr_calculate_gain(TR_NL_TANH, NAN);
    case TR_ACT_RELU:
        return tr_calculate_gain(TR_NL_RELU, NAN);
    case TR_ACT_LEAKY_RELU:
        return tr_calculate_gain(TR_NL_LEAKY_RELU, leaky_slope);
    case TR_ACT_SELU:
        return tr_calculate_gain(TR_NL_SELU, NAN);
    default:
        return 1.0;
    }
}

static void init_tensor(float *p, const tr_tensor *t, int tensor_index, const tr_init_spec *s, const tr_layer *L,
                        const tr_model_config *cfg, tr_rng rng)
{
    const double fan_in = (double)L->in, fan_out = (double)L->out;
    const size_t n = t->size;
    const uint32_t stream = (uint32_t)tensor_index;
    double lo = 0.0, hi = 0.0, mean = 0.0, std = 0.0;
    bool normal = false;
    switch (s->scheme) {
    case TR_INIT_DEFAULT:
        hi = 1.0 / sqrt(fan_in);
        lo = -hi;
        break;
    case TR_INIT_UNIFORM:
        lo = s->a;
        hi = s->b;
        break;
    case TR_INIT_NORMAL:
        normal = true;
        mean = s->mean;
        std = s->std;
        break;
    case TR_INIT_XAVIER_UNIFORM:
    case TR_INIT_XAVIER_NORMAL: {
        const double gain = isnan(s->gain) ? tr_init_gain(L->act, cfg->act_params.leaky_slope) : s->gain;
        std = gain * sqrt(2.0 / (fan_in + fan_out));
        normal = s->scheme == TR_INIT_XAVIER_NORMAL;
        hi = sqrt(3.0) * std;
        lo = -hi;
        break;
    }
    case TR_INIT_KAIMING_UNIFORM:
    case TR_INIT_KAIMING_NORMAL: {
        const double gain = tr_calculate_gain(s->nonlinearity, s->a);
        std = gain / sqrt(s->fan_out ? fan_out : fan_in);
        normal = s->scheme == TR_INIT_KAIMING_NORMAL;
        hi = sqrt(3.0) * std;
        lo = -hi;
        break;
    }
    case TR_INIT_ZEROS:
    case TR_INIT_CONSTANT: {
        const float v = s->scheme == TR_INIT_ZEROS ? 0.0f : (float)s->value;
        for (size_t i = 0; i < n; i++)
            p[i] = v;
        return;
    }
    case TR_INIT_COUNT:
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (normal)
            p[i] = (float)(mean + std * tr_rng_normal(rng, TR_RNG_INIT, stream, i));
        else
            p[i] = (float)(lo + (hi - lo) * tr_rng_uniform(rng, TR_RNG_INIT, stream, i));
    }
}

void tr_model_init_params(tr_model *m, uint64_t seed)
{
    tr_rng rng = tr_rng_make(seed);
    memset(m->params, 0, m->n_params * sizeof *m->params);
    for (int t = 0; t < m->n_tensors; t++) {
        const tr_tensor *T = &m->tensor[t];
        const tr_layer *L = &m->layer[T->layer];
        float *p = m->params + T->offset;
        if (T->kind == TR_T_BN_WEIGHT || T->kind == TR_T_BN_BIAS) { /* PyTorch: weight 1, bias 0 */
            for (size_t i = 0; i < T->size; i++)
                p[i] = T->kind == TR_T_BN_WEIGHT ? 1.0f : 0.0f;
            continue;
        }
        const tr_init_spec *s = T->is_weight ? &m->cfg.weight_init[T->layer] : &m->cfg.bias_init[T->layer];
        init_tensor(p, T, t, s, L, &m->cfg, rng);
    }
    for (int b = 0; b < m->n_buffers; b++) { /* running mean 0, running variance 1 */
        const tr_buffer *B = &m->buffer[b];
        const float v = strstr(B->name, "running_var") ? 1.0f : 0.0f;
        for (size_t i = 0; i < B->size; i++)
            m->buffers[B->offset + i] = v;
    }
    for (int l = 0; l < m->n_layers; l++)
        m->layer[l].bn_batches = 0;
}

/* ------------------------------------------------------------------- forward/backward - */

/* Batch norm of a layer, forward: batch statistics (summed over the ranks when synchronised)
 * in training, running statistics in evaluation. */
static void bn_forward(tr_model *m, tr_layer *L, const float *in, int64_t B, const tr_forward_mode *mode)
{
    const int64_t O = L->out;
    if (!mode) {
        tr_bn_forward_eval(L->Y, in, L->running_mean, L->running_var, L->gamma, L->beta, B, O, m->cfg.bn_eps);
        return;
    }
    double *sums = m->sums;
    memset(sums, 0, 2 * (size_t)O * sizeof *sums);
    tr_bn_sums(sums, in, B, O);
    double count = (double)B;
    if (mode->sum) {
        if (mode->sum(mode->ctx, sums, (int)(2 * O)) && !m->comm_error)
            m->comm_error = 1;
        count = mode->global_rows;
    }
    if (count < 1.0)
        count = 1.0;
    tr_bn_forward_train(L->Y, L->xhat, L->bn_mean, L->bn_invstd, in, sums, count, L->gamma, L->beta, B, O,
                        m->cfg.bn_eps);
    if (mode->bn_record) { /* recorded for tr_model_bn_apply */
        double *rec = mode->bn_record + L->bn_record_at;
        memcpy(rec, sums, 2 * (size_t)O * sizeof *rec);
        rec[2 * O] = count;
        return;
    }
    tr_bn_update_running(L->running_mean, L->running_var, sums, count, O, m->cfg.bn_momentum);
    L->bn_batches++;
}

size_t tr_model_bn_record_size(const tr_model *m)
{
    size_t n = 0;
    for (int l = 0; l < m->n_layers; l++)
        if (m->layer[l].bn)
            n += 2 * (size_t)m->layer[l].out + 1;
    return n;
}

void tr_model_bn_apply(tr_model *m, const double *record)
{
    for (int l = 0; l < m->n_layers; l++) {
        tr_layer *L = &m->layer[l];
        if (!L->bn)
            continue;
        const double *rec = record + L->bn_record_at;
        tr_bn_update_running(L->running_mean, L->running_var, rec, rec[2 * L->out], L->out, m->cfg.bn_momentum);
        L->bn_batches++;
    }
}

/* Batch norm backward, in place on d (B, O): the affine gradients into grads. */
static void bn_backward(tr_model *m, tr_layer *L, float *grads, float *d, int64_t B, bool accumulate)
{
    const int64_t O = L->out;
    double *local = m->sums, *global = m->sums + 2 * O;
    memset(local, 0, 2 * (size_t)O * sizeof *local);
    tr_bn_backward_sums(local, d, L->xhat, B, O);
    memcpy(global, local, 2 * (size_t)O * sizeof *local);
    double count = (double)B;
    const tr_forward_mode *mode = m->mode;
    if (mode && mode->sum) {
        if (mode->sum(mode->ctx, global, (int)(2 * O)) && !m->comm_error)
            m->comm_error = 1;
        count = mode->global_rows;
    }
    if (count < 1.0)
        count = 1.0;
    float *dgamma = grads + L->g_off, *dbeta = grads + L->be_off;
    if (!accumulate) {
        memset(dgamma, 0, (size_t)O * sizeof *dgamma);
        memset(dbeta, 0, (size_t)O * sizeof *dbeta);
    }
    tr_bn_backward(d, dgamma, dbeta, d, L->xhat, L->bn_invstd, L->gamma, local, global, count, B, O);
}

const float *tr_model_forward(tr_model *m, const float *X, int64_t B, const tr_forward_mode *mode)
{
    m->mode = mode;
    const float *in = X;
    for (int l = 0; l < m->n_layers; l++) {
        tr_layer *L = &m->layer[l];
        const int64_t Ni = L->in, No = L->out;
        const void *X_op = in, *W_op = L->W;
        if (L->W_half) { /* bf16: the products' operands, rounded once */
            tr_bf16_round(L->in_half, in, (size_t)(B * Ni));
            if (!m->held_rounded)
                tr_bf16_round(L->W_half, L->W, (size_t)(No * Ni));
            X_op = L->in_half;
            W_op = L->W_half;
        }
        /* a rank without rows still walks every layer: batch norm's sums are collective */
        tr_gemm_product(m->gemm, &(tr_gemm_call){.tb = true, .M = B, .N = No, .K = Ni, .A = X_op, .lda = Ni,
                                                 .B = W_op, .ldb = Ni, .bias = L->b, .C = L->Z, .ldc = No});
        if (L->bn && !m->cfg.bn_after)
            bn_forward(m, L, L->Z, B, mode);
        if (L->A != L->act_in)
            tr_act_forward(L->A, L->act_in, B, No, L->act, &m->cfg.act_params);
        if (L->bn && m->cfg.bn_after)
            bn_forward(m, L, L->A, B, mode);
        in = L->output;
        if (L->dropout > 0.0f && mode) { /* inverted dropout: training only */
            tr_dropout_mask(L->mask, mode->rows, B, No, L->dropout, mode->seed, mode->step, L->drop_offset,
                            m->dropout_units);
            const size_t n = (size_t)B * (size_t)No;
            for (size_t i = 0; i < n; i++)
                L->D[i] = L->output[i] * L->mask[i];
            in = L->D;
        }
    }
    m->held_rounded = m->hold_weights;
    return m->layer[m->n_layers - 1].A;
}

void tr_model_hold_weights(tr_model *m, bool hold)
{
    m->hold_weights = hold;
    m->held_rounded = false;
}

/* The operands of a backward product: dZ (B, No) and X (B, Ni), float or bf16 (gemm.h). */
typedef struct backward_ops {
    const void *dZ, *X;
    size_t elem; /* bytes per value */
} backward_ops;

/* dW rows [r0, r1) = beta dW + dZ[:, r0:r1]^T X: one product on a column block of dZ (with no
 * rows, the zero product: beta dW). */
static void weight_rows(tr_gemm *g, float *dW, const backward_ops *op, int64_t B, int64_t Ni, int64_t No, int64_t r0,
                        int64_t r1, float beta)
{
    tr_gemm_product(g, &(tr_gemm_call){.ta = true, .M = r1 - r0, .N = Ni, .K = B,
                                       .A = (const char *)op->dZ + (size_t)r0 * op->elem, .lda = No, .B = op->X,
                                       .ldb = Ni, .beta = beta, .C = dW + (size_t)r0 * (size_t)Ni, .ldc = Ni});
}

/* Weight gradient of one layer, in row blocks cut at the hook's splits, last block first. */
static void weight_grad(tr_gemm *g, const tr_layer *L, float *grads, const backward_ops *op, int64_t B, float beta,
                        const tr_grad_hook *hook)
{
    const int64_t Ni = L->in, No = L->out;
    float *dW = grads + L->w_off;
    int64_t r1 = No;
    if (hook && hook->splits) {
        for (int k = hook->n_splits - 1; k >= 0; k--) {
            const size_t s = hook->splits[k];
            if (s <= L->w_off || s >= L->w_off + (size_t)No * (size_t)Ni)
                continue;
            const int64_t r0 = (int64_t)((s - L->w_off) / (size_t)Ni); /* splits are on row boundaries */
            if (r0 >= r1)
                continue;
            weight_rows(g, dW, op, B, Ni, No, r0, r1, beta);
            if (hook->ready)
                hook->ready(hook->ctx, L->w_off + (size_t)r0 * (size_t)Ni);
            r1 = r0;
        }
    }
    if (r1 > 0)
        weight_rows(g, dW, op, B, Ni, No, 0, r1, beta);
    if (hook && hook->ready)
        hook->ready(hook->ctx, L->w_off);
}

/* From the gradient of a hidden layer's output to the gradient of its Z, in place:
 * dropout, [batch norm after], activation, [batch norm before]. */
static void hidden_backward(tr_model *m, tr_layer *L, float *grads, float *d, int64_t B, bool accumulate,
                            const tr_grad_hook *hook)
{
    const int64_t O = L->out;
    if (L->dropout > 0.0f && m->mode) {
        const size_t n = (size_t)B * (size_t)O;
        for (size_t i = 0; i < n; i++)
            d[i] *= L->mask[i];
    }
    if (L->bn && m->cfg.bn_after)
        bn_backward(m, L, grads, d, B, accumulate);
    tr_act_backward(d, d, L->act_in, L->A, B, O, L->act, &m->cfg.act_params);
    if (L->bn && !m->cfg.bn_after)
        bn_backward(m, L, grads, d, B, accumulate);
    if (L->bn && hook && hook->ready) /* the batch-norm parameters sit above the bias */
        hook->ready(hook->ctx, L->g_off);
}

void tr_model_backward(tr_model *m, float *grads, const float *X, float *dZ_out, int64_t B, bool accumulate,
                       const tr_grad_hook *hook)
{
    const float beta = accumulate ? 1.0f : 0.0f;
    float *dZ = dZ_out;
    int scratch = 0;
    for (int l = m->n_layers - 1; l >= 0; l--) {
        tr_layer *L = &m->layer[l];
        const int64_t Ni = L->in, No = L->out;
        const tr_layer *below = l > 0 ? &m->layer[l - 1] : NULL;
        const float *in = X;
        if (below)
            in = below->dropout > 0.0f && m->mode ? below->D : below->output;
        if (L->b) {
            tr_gemm_column_sums(grads + L->b_off, dZ, m->ones, B, No, beta);
            if (hook && hook->ready)
                hook->ready(hook->ctx, L->b_off);
        }
        /* the products' operands: in bf16, dZ rounded here and the input as the forward pass
         * rounded it (the same rows: forward ran on this X) */
        backward_ops op = {.dZ = dZ, .X = in, .elem = sizeof(float)};
        const void *W_op = L->W;
        if (m->dZ_half) {
            tr_bf16_round(m->dZ_half, dZ, (size_t)(B * No));
            op = (backward_ops){.dZ = m->dZ_half, .X = L->in_half, .elem = sizeof(tr_bf16)};
            W_op = L->W_half;
        }
        weight_grad(m->gemm, L, grads, &op, B, beta, hook);
        if (l == 0) {
            if (hook && hook->layer_done)
                hook->layer_done(hook->ctx, L->w_off);
            break;
        }
        /* gradient w.r.t. this layer's input = the layer below's output */
        float *dA = m->delta[scratch];
        if (dA == dZ)
            dA = m->delta[scratch ^= 1];
        tr_gemm_product(m->gemm, &(tr_gemm_call){.M = B, .N = Ni, .K = No, .A = op.dZ, .lda = No, .B = W_op,
                                                 .ldb = Ni, .C = dA, .ldc = Ni});
        if (hook && hook->layer_done) /* W is no longer read: the layer may be updated */
            hook->layer_done(hook->ctx, L->w_off);
        if (hook && hook->progress)
            hook->progress(hook->ctx);
        hidden_backward(m, &m->layer[l - 1], grads, dA, B, accumulate, hook);
        dZ = dA;
    }
}

int tr_model_gemm_shapes(const tr_model *m, int64_t B, bool accumulate, tr_gemm_shape *shapes)
{
    int n = 0;
    for (int l = 0; l < m->n_layers; l++) {
        const tr_layer *L = &m->layer[l];
        shapes[n++] = (tr_gemm_shape){.tb = true, .M = B, .N = L->out, .K = L->in, .bias = L->b != NULL};
        shapes[n++] = (tr_gemm_shape){.ta = true, .M = L->out, .N = L->in, .K = B, .beta = accumulate ? 1.0f : 0.0f};
        if (l > 0)
            shapes[n++] = (tr_gemm_shape){.M = B, .N = L->in, .K = L->out};
    }
    return n;
}

void tr_model_zero_grad(tr_model *m)
{
    memset(m->grads, 0, m->n_params * sizeof *m->grads);
}

/* ------------------------------------------------------------------- references ------- */

void tr_dense_forward_ref(float *Z, const float *X, const float *W, const float *b, int64_t B, int64_t Ni, int64_t No)
{
    for (int64_t r = 0; r < B; r++)
        for (int64_t o = 0; o < No; o++) {
            double s = b ? b[o] : 0.0;
            for (int64_t i = 0; i < Ni; i++)
                s += (double)X[r * Ni + i] * W[o * Ni + i];
            Z[r * No + o] = (float)s;
        }
}

void tr_dense_backward_ref(float *dX, float *dW, float *db, const float *dZ, const float *X, const float *W,
                           int64_t B, int64_t Ni, int64_t No)
{
    for (int64_t o = 0; o < No; o++) {
        for (int64_t i = 0; i < Ni; i++) {
            double s = 0.0;
            for (int64_t r = 0; r < B; r++)
                s += (double)dZ[r * No + o] * X[r * Ni + i];
            dW[o * Ni + i] += (float)s;
        }
        if (db) {
            double s = 0.0;
            for (int64_t r = 0; r < B; r++)
                s += dZ[r * No + o];
            db[o] += (float)s;
        }
    }
    if (dX)
        for (int64_t r = 0; r < B; r++)
            for (int64_t i = 0; i < Ni; i++) {
                double s = 0.0;
                for (int64_t o = 0; o < No; o++)
                    s += (double)dZ[r * No + o] * W[o * Ni + i];
                dX[r * Ni + i] = (float)s;
            }
}

/* ------------------------------------------------------------------- summary ---------- */

/* Calls f for each module of the equivalent nn.Sequential. */
static void each_module(const tr_model *m, void (*f)(void *, const char *, int64_t, int64_t), void *ctx)
{
    for (int l = 0; l < m->n_layers; l++) {
        const tr_layer *L = &m->layer[l];
        f(ctx, "Linear", L->out, L->in * L->out + (L->b ? L->out : 0));
        if (L->bn && !m->cfg.bn_after)
            f(ctx, "BatchNorm1d", L->out, 2 * L->out);
        if (L->act != TR_ACT_IDENTITY)
            f(ctx, tr_activation_torch_name(L->act), L->out, 0);
        if (L->bn && m->cfg.bn_after)
            f(ctx, "BatchNorm1d", L->out, 2 * L->out);
        if (L->dropout > 0.0f) {
            char name[32];
            snprintf(name, sizeof name, "Dropout(%g)", (double)L->dropout);
            f(ctx, name, L->out, 0);
        }
    }
}

typedef struct summary_ctx {
    FILE *f;
    int index;
} summary_ctx;

static void summary_row(void *ctx, const char *name, int64_t width, int64_t params)
{
    summary_ctx *c = ctx;
    char label[64], shape[32];
    snprintf(label, sizeof label, "%s: %d", name, c->index++);
    snprintf(shape, sizeof shape, "[-1, %lld]", (long long)width);
    fprintf(c->f, "%-28s %-20s %14lld\n", label, shape, (long long)params);
}

void tr_model_summary(const tr_model *m, FILE *f)
{
    const char *rule = "================================================================";
    fprintf(f, "%s\n%-28s %-20s %14s\n%s\n", rule, "Layer (type:index)", "Output Shape", "Param #", rule);
    summary_ctx c = {f, 0};
    each_module(m, summary_row, &c);
    fprintf(f, "%s\n", rule);
    fprintf(f, "Input shape: [-1, %lld]\n", (long long)m->layer[0].in);
    size_t running = 0;
    for (int b = 0; b < m->n_buffers; b++)
        running += m->buffer[b].size;
    fprintf(f, "Total params: %zu\nTrainable params: %zu\nNon-trainable params: 0", m->n_trainable, m->n_trainable);
    if (running)
        fprintf(f, " (+ %zu batch-norm running statistics)", running);
    fputc('\n', f);
    fprintf(f, "Params size (MB): %.2f\n%s\n", (double)m->n_trainable * 4.0 / (1024.0 * 1024.0), rule);
}

typedef struct seq_ctx {
    char *buf;
    size_t len, used;
} seq_ctx;

static void seq_row(void *ctx, const char *name, int64_t width, int64_t params)
{
    (void)width;
    (void)params;
    seq_ctx *c = ctx;
    if (c->used < c->len)
        c->used += (size_t)snprintf(c->buf + c->used, c->len - c->used, "%s%s", c->used ? "," : "", name);
}

void tr_model_sequential(const tr_model *m, char *buf, size_t len)
{
    seq_ctx c = {buf, len, 0};
    buf[0] = '\0';
    each_module(m, seq_row, &c);
}
