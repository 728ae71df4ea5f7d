/*
 * model.c: tensor table, flat buffers, initialisation schemes, and the BLAS forward and
 * backward passes of the MLP.
 *
 * Dimension letters: B rows, I layer input width, O layer output width (Ni, No in code:
 * cblas.h pulls in complex.h, whose macro I would clash).
 * Forward per layer:  Z (B,O) = X (B,I) W^T (I,O) + b     one sgemm (bias pre-filled rows)
 *                     A (B,O) = act(Z)
 * Backward per layer: dW (O,I) += dZ^T (O,B) X (B,I)      one sgemm
 *                     db (O)   += dZ^T (O,B) 1 (B)        one sgemv
 *                     dX (B,I)  = dZ (B,O) W (O,I)        one sgemm, then act' of the layer below
 */
#include "trainer/model.h"

#include "trainer/mem.h"
#include "trainer/rng.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define ALIGN_FLOATS 16 /* 64 bytes */

static size_t align_up(size_t n) { return (n + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS; }

static float *alloc_floats(size_t n)
{
    return tr_big_alloc(align_up(n ? n : 1) * sizeof(float));
}

/* nn.Sequential index of each Linear: Linear, then the activation module unless identity. */
static void sequential_indices(tr_model *m)
{
    int s = 0;
    for (int l = 0; l < m->n_layers; l++) {
        m->layer[l].seq_index = s++;
        if (m->layer[l].act != TR_ACT_IDENTITY)
            s++;
    }
}

int tr_model_init(tr_model *m, const tr_model_config *cfg, int64_t max_batch, tr_err *err)
{
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->n_layers = cfg->n_layers;
    m->max_batch = max_batch < 1 ? 1 : max_batch;
    if (cfg->n_layers < 1 || cfg->n_layers > TR_MAX_LAYERS)
        return tr_fail(err, TR_ECONFIG, "model needs 1 to %d weight layers", TR_MAX_LAYERS);

    /* tensor table: weight then bias of each layer, in Sequential order */
    size_t off = 0;
    int64_t max_width = cfg->widths[0];
    for (int l = 0; l < m->n_layers; l++) {
        tr_layer *L = &m->layer[l];
        L->in = cfg->widths[l];
        L->out = cfg->widths[l + 1];
        L->act = cfg->act[l];
        max_width = L->out > max_width ? L->out : max_width;
    }
    sequential_indices(m);
    for (int l = 0; l < m->n_layers; l++) {
        tr_layer *L = &m->layer[l];
        for (int k = 0; k < (cfg->bias ? 2 : 1); k++) {
            tr_tensor *t = &m->tensor[m->n_tensors++];
            t->layer = l;
            t->is_weight = k == 0;
            t->rows = L->out;
            t->cols = k == 0 ? L->in : 1;
            t->size = (size_t)t->rows * (size_t)t->cols;
            t->offset = off;
            snprintf(t->name, sizeof t->name, "%d/%s", L->seq_index, k == 0 ? "weight" : "bias");
            off = align_up(off + t->size);
            m->n_trainable += t->size;
        }
    }
    m->n_params = off;
    m->max_width = max_width;

    /* workspace: Z and A per layer (A shares Z for identity layers) */
    size_t work = 0;
    for (int l = 0; l < m->n_layers; l++) {
        const size_t zs = align_up((size_t)m->max_batch * (size_t)m->layer[l].out);
        work += m->layer[l].act == TR_ACT_IDENTITY ? zs : 2 * zs;
    }
    const size_t delta = align_up((size_t)m->max_batch * (size_t)max_width);
    m->params = alloc_floats(m->n_params);
    m->grads = alloc_floats(m->n_params);
    m->work = alloc_floats(work);
    m->delta[0] = alloc_floats(delta);
    m->delta[1] = alloc_floats(delta);
    m->ones = alloc_floats((size_t)m->max_batch);
    if (!m->params || !m->grads || !m->work || !m->delta[0] || !m->delta[1] || !m->ones) {
        tr_model_free(m);
        return tr_fail(err, TR_ENOMEM, "cannot allocate the model (%zu parameters, %lld-row workspace)",
                       m->n_params, (long long)max_batch);
    }
    for (int64_t i = 0; i < m->max_batch; i++)
        m->ones[i] = 1.0f;

    /* views */
    tr_model_use_buffers(m, m->params, m->grads);
    m->external = false;
    float *w = m->work;
    for (int l = 0; l < m->n_layers; l++) {
        tr_layer *L = &m->layer[l];
        const size_t zs = align_up((size_t)m->max_batch * (size_t)L->out);
        L->Z = w;
        w += zs;
        if (L->act == TR_ACT_IDENTITY) {
            L->A = L->Z;
        } else {
            L->A = w;
            w += zs;
        }
    }
    return 0;
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
    for (int t = 0; t < m->n_tensors; t++) {
        tr_tensor *T = &m->tensor[t];
        tr_layer *L = &m->layer[T->layer];
        if (T->is_weight) {
            L->W = m->params + T->offset;
            L->dW = m->grads + T->offset;
            L->w_off = T->offset;
        } else {
            L->b = m->params + T->offset;
            L->db = m->grads + T->offset;
            L->b_off = T->offset;
        }
    }
}

void tr_model_free(tr_model *m)
{
    if (!m)
        return;
    if (!m->external) {
        tr_big_free(m->params);
        tr_big_free(m->grads);
    }
    tr_big_free(m->work);
    tr_big_free(m->delta[0]);
    tr_big_free(m->delta[1]);
    tr_big_free(m->ones);
    m->params = m->grads = m->work = m->delta[0] = m->delta[1] = m->ones = NULL;
}

/* ------------------------------------------------------------------- initialisation --- */

double tr_init_gain(tr_activation act, double leaky_slope)
{
    switch (act) {
    case TR_ACT_TANH:
        return 5.0 / 3.0;
    case TR_ACT_RELU:
        return sqrt(2.0);
    case TR_ACT_LEAKY_RELU:
        return sqrt(2.0 / (1.0 + leaky_slope * leaky_slope));
    case TR_ACT_SELU:
        return 0.75;
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
        const double gain = sqrt(2.0 / (1.0 + s->a * s->a));
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
        const tr_init_spec *s = T->is_weight ? &m->cfg.weight_init[T->layer] : &m->cfg.bias_init[T->layer];
        init_tensor(m->params + T->offset, T, t, s, L, &m->cfg, rng);
    }
}

/* ------------------------------------------------------------------- forward/backward - */

const float *tr_model_forward(tr_model *m, const float *X, int64_t B)
{
    const float *in = X;
    for (int l = 0; l < m->n_layers; l++) {
        tr_layer *L = &m->layer[l];
        const int Ni = (int)L->in, No = (int)L->out;
        float beta = 0.0f;
        if (L->b) {
            for (int64_t r = 0; r < B; r++)
                memcpy(L->Z + r * No, L->b, (size_t)No * sizeof(float));
            beta = 1.0f;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, No, Ni, 1.0f, in, Ni, L->W, Ni, beta, L->Z, No);
        if (L->A != L->Z)
            tr_act_forward(L->A, L->Z, B, No, L->act, &m->cfg.act_params);
        in = L->A;
    }
    return m->layer[m->n_layers - 1].A;
}

/* dW rows [r0, r1) = beta dW + dZ[:, r0:r1]^T X: one sgemm on a column block of dZ. */
static void weight_rows(float *dW, const float *dZ, const float *X, int64_t B, int Ni, int No, int r0, int r1,
                        float beta)
{
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r1 - r0, Ni, (int)B, 1.0f, dZ + r0, No, X, Ni, beta,
                dW + (size_t)r0 * (size_t)Ni, Ni);
}

/* Weight gradient of one layer, in row blocks cut at the hook's splits, last block first. */
static void weight_grad(const tr_layer *L, float *grads, const float *dZ, const float *X, int64_t B, float beta,
                        const tr_grad_hook *hook)
{
    const int Ni = (int)L->in, No = (int)L->out;
    float *dW = grads + L->w_off;
    int r1 = No;
    if (hook && hook->splits) {
        for (int k = hook->n_splits - 1; k >= 0; k--) {
            const size_t s = hook->splits[k];
            if (s <= L->w_off || s >= L->w_off + (size_t)No * (size_t)Ni)
                continue;
            const int r0 = (int)((s - L->w_off) / (size_t)Ni); /* splits are on row boundaries */
            if (r0 >= r1)
                continue;
            weight_rows(dW, dZ, X, B, Ni, No, r0, r1, beta);
            if (hook->ready)
                hook->ready(hook->ctx, L->w_off + (size_t)r0 * (size_t)Ni);
            r1 = r0;
        }
    }
    if (r1 > 0)
        weight_rows(dW, dZ, X, B, Ni, No, 0, r1, beta);
    if (hook && hook->ready)
        hook->ready(hook->ctx, L->w_off);
}

void tr_model_backward(tr_model *m, float *grads, const float *X, float *dZ_out, int64_t B, bool accumulate,
                       const tr_grad_hook *hook)
{
    const float beta = accumulate ? 1.0f : 0.0f;
    float *dZ = dZ_out;
    int scratch = 0;
    for (int l = m->n_layers - 1; l >= 0; l--) {
        tr_layer *L = &m->layer[l];
        const int Ni = (int)L->in, No = (int)L->out;
        const float *in = l > 0 ? m->layer[l - 1].A : X;
        if (L->b) {
            cblas_sgemv(CblasRowMajor, CblasTrans, (int)B, No, 1.0f, dZ, No, m->ones, 1, beta, grads + L->b_off, 1);
            if (hook && hook->ready)
                hook->ready(hook->ctx, L->b_off);
        }
        weight_grad(L, grads, dZ, in, B, beta, hook);
        if (l == 0) {
            if (hook && hook->layer_done)
                hook->layer_done(hook->ctx, L->w_off);
            break;
        }
        /* gradient w.r.t. this layer's input = the layer below's output, then through its activation */
        float *dA = m->delta[scratch];
        if (dA == dZ)
            dA = m->delta[scratch ^= 1];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)B, Ni, No, 1.0f, dZ, No, L->W, Ni, 0.0f, dA, Ni);
        if (hook && hook->layer_done) /* W is no longer read: the layer may be updated */
            hook->layer_done(hook->ctx, L->w_off);
        if (hook && hook->progress)
            hook->progress(hook->ctx);
        const tr_layer *below = &m->layer[l - 1];
        tr_act_backward(dA, dA, below->Z, below->A, B, Ni, below->act, &m->cfg.act_params);
        dZ = dA;
    }
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

void tr_model_summary(const tr_model *m, FILE *f)
{
    const char *rule = "================================================================";
    fprintf(f, "%s\n%-28s %-20s %14s\n%s\n", rule, "Layer (type:index)", "Output Shape", "Param #", rule);
    int s = 0;
    for (int l = 0; l < m->n_layers; l++) {
        const tr_layer *L = &m->layer[l];
        char name[64], shape[32];
        snprintf(shape, sizeof shape, "[-1, %lld]", (long long)L->out);
        snprintf(name, sizeof name, "Linear: %d", s++);
        long long params = (long long)(L->in * L->out + (L->b ? L->out : 0));
        fprintf(f, "%-28s %-20s %14lld\n", name, shape, params);
        if (L->act != TR_ACT_IDENTITY) {
            snprintf(name, sizeof name, "%s: %d", tr_activation_torch_name(L->act), s++);
            fprintf(f, "%-28s %-20s %14d\n", name, shape, 0);
        }
    }
    fprintf(f, "%s\n", rule);
    fprintf(f, "Input shape: [-1, %lld]\n", (long long)m->layer[0].in);
    fprintf(f, "Total params: %zu\nTrainable params: %zu\nNon-trainable params: 0\n", m->n_trainable,
            m->n_trainable);
    fprintf(f, "Params size (MB): %.2f\n%s\n", (double)m->n_trainable * 4.0 / (1024.0 * 1024.0), rule);
}
