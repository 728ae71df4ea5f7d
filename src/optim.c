/*
 * optim.c: the update rules, written to follow torch.optim's single-tensor code paths
 * operation by operation (float arithmetic, lerp for Adam's first moment, bias corrections
 * computed in double), so the same gradients give the same parameters to rounding. One
 * deliberate difference: Adam divides sqrt(v) by sqrt(1 - beta2^t) as a multiplication by
 * its reciprocal (PyTorch divides), which may differ in the last bit and saves a vector
 * division per parameter.
 */
#include "trainer/optim.h"

#include "trainer/mem.h"
#include "trainer/model.h"

#include "vector_kernel.h"

#include <math.h>
#if defined(__SSE__)
#include <xmmintrin.h>
#endif
#include <stdlib.h>
#include <string.h>

const char *const tr_optim_names[] = {TR_OPTIM_MAP(TR_ENUM_NAME) NULL};


const char *tr_optim_name(tr_optim_kind kind) { return tr_name_of(tr_optim_names, kind); }

static int add_state(tr_optim *o, const char *name, tr_err *err)
{
    float *p = tr_big_alloc(o->n * sizeof *p);
    if (!p)
        return tr_fail(err, TR_ENOMEM, "cannot allocate optimizer state '%s' (%zu floats)", name, o->n);
    o->state[o->n_state].name = name;
    o->state[o->n_state].data = p;
    o->n_state++;
    return 0;
}

int tr_optim_init(tr_optim *o, const tr_optim_config *cfg, size_t n, tr_err *err)
{
    memset(o, 0, sizeof *o);
    o->cfg = *cfg;
    o->lr = cfg->lr;
    o->n = n;
    int rc = 0;
    switch (cfg->kind) {
    case TR_OPTIM_SGD:
        if (cfg->momentum != 0.0)
            rc = add_state(o, "momentum_buffer", err);
        break;
    case TR_OPTIM_MOMENTUM:
    case TR_OPTIM_NESTEROV:
        rc = add_state(o, "momentum_buffer", err);
        break;
    case TR_OPTIM_RMSPROP:
        rc = add_state(o, "square_avg", err);
        if (!rc && cfg->momentum > 0.0)
            rc = add_state(o, "momentum_buffer", err);
        if (!rc && cfg->centered)
            rc = add_state(o, "grad_avg", err);
        break;
    case TR_OPTIM_ADAM:
    case TR_OPTIM_ADAMW:
        rc = add_state(o, "exp_avg", err);
        if (!rc)
            rc = add_state(o, "exp_avg_sq", err);
        if (!rc && cfg->amsgrad)
            rc = add_state(o, "max_exp_avg_sq", err);
        break;
    case TR_OPTIM_ADAGRAD:
        rc = add_state(o, "sum", err);
        break;
    case TR_OPTIM_LARS:
        if (cfg->momentum != 0.0)
            rc = add_state(o, "momentum_buffer", err);
        break;
    case TR_OPTIM_LAMB:
        rc = add_state(o, "exp_avg", err);
        if (!rc)
            rc = add_state(o, "exp_avg_sq", err);
        break;
    case TR_OPTIM_COUNT:
        rc = tr_fail(err, TR_ECONFIG, "unknown optimizer");
        break;
    }
    if (rc)
        tr_optim_free(o);
    return rc;
}

void tr_optim_free(tr_optim *o)
{
    if (!o)
        return;
    for (int i = 0; i < o->n_state && !o->external; i++)
        tr_big_free(o->state[i].data);
    o->n_state = 0;
}

void tr_optim_use_state(tr_optim *o, float *const *buffers)
{
    for (int i = 0; i < o->n_state; i++) {
        if (!o->external)
            tr_big_free(o->state[i].data);
        o->state[i].data = buffers[i];
    }
    o->external = true;
}

static float *state(tr_optim *o, const char *name)
{
    for (int i = 0; i < o->n_state; i++)
        if (strcmp(o->state[i].name, name) == 0)
            return o->state[i].data;
    return NULL;
}

void tr_optim_begin_step(tr_optim *o)
{
    o->step++;
    if (o->cfg.kind == TR_OPTIM_ADAM || o->cfg.kind == TR_OPTIM_ADAMW || o->cfg.kind == TR_OPTIM_LAMB) {
        const double bc1 = 1.0 - pow(o->cfg.beta1, (double)o->step);
        const double bc2 = 1.0 - pow(o->cfg.beta2, (double)o->step);
        o->step_size = (float)(o->lr / bc1);
        o->inv_bc1 = (float)(1.0 / bc1);
        o->inv_bc2_sqrt = (float)(1.0 / sqrt(bc2));
    }
}

/* Bit 31 set when x is inf or NaN (exponent all ones): (exp bits) + (one exponent step)
 * carries into the sign position only then. Integer ops, so the OR-reduction vectorises. */
static inline uint32_t nonfinite_bits(float x)
{
    uint32_t b;
    memcpy(&b, &x, sizeof b);
    return (b & 0x7f800000u) + 0x00800000u;
}
#define NONFINITE_BITS(x) nonfinite_bits(x)

/* SGD, and LARS's step once its trust ratio is known (timm's Lars: the decayed gradient times
 * the ratio, then PyTorch's SGD momentum; trust is 1 for plain SGD, an exact no-op). */
TR_VECTOR_KERNEL static uint32_t sgd(tr_optim *o, const float *pin, float *pout, float *restrict g, size_t n,
                                    float wd, float trust, size_t off)
{
    uint32_t bad = 0;
    const float lr = (float)o->lr;
    const float mu = (float)o->cfg.momentum;
    const float damp = (float)(1.0 - o->cfg.dampening);
    float *restrict buf = state(o, "momentum_buffer");
    const bool nesterov = o->cfg.kind == TR_OPTIM_NESTEROV;
    if (!buf) {
#pragma GCC ivdep
        for (size_t i = 0; i < n; i++) {
            bad |= NONFINITE_BITS(g[i]);
            const float pi = pin[i];
            pout[i] = pi - lr * ((g[i] + wd * pi) * trust);
            g[i] = 0.0f;
        }
        return bad;
    }
    buf += off;
    const bool first = o->step == 1; /* PyTorch: the buffer starts as a copy of d_p */
#pragma GCC ivdep
    for (size_t i = 0; i < n; i++) {
        bad |= NONFINITE_BITS(g[i]);
        const float pi = pin[i];
        const float d = (g[i] + wd * pi) * trust;
        g[i] = 0.0f;
        buf[i] = first ? d : buf[i] * mu + damp * d;
        const float step = nesterov ? d + mu * buf[i] : buf[i];
        pout[i] = pi - lr * step;
    }
    return bad;
}

TR_VECTOR_KERNEL static uint32_t rmsprop(tr_optim *o, const float *pin, float *pout, float *restrict g, size_t n,
                                        float wd, size_t off)
{
    uint32_t bad = 0;
    const float lr = (float)o->lr;
    const float alpha = (float)o->cfg.alpha;
    const float one_m_alpha = (float)(1.0 - o->cfg.alpha);
    const float eps = (float)o->cfg.eps;
    const float mu = (float)o->cfg.momentum;
    float *restrict sq = state(o, "square_avg") + off;
    float *restrict buf = state(o, "momentum_buffer");
    float *restrict gavg = state(o, "grad_avg");
    if (buf)
        buf += off;
    if (gavg)
        gavg += off;
#pragma GCC ivdep
    for (size_t i = 0; i < n; i++) {
        bad |= NONFINITE_BITS(g[i]);
        const float pi = pin[i];
        const float d = g[i] + wd * pi;
        g[i] = 0.0f;
        sq[i] = sq[i] * alpha + one_m_alpha * d * d;
        float avg;
        if (gavg) {
            gavg[i] = gavg[i] + one_m_alpha * (d - gavg[i]);
            avg = sqrtf(sq[i] - gavg[i] * gavg[i]) + eps;
        } else {
            avg = sqrtf(sq[i]) + eps;
        }
        if (buf) {
            buf[i] = buf[i] * mu + d / avg;
            pout[i] = pi - lr * buf[i];
        } else {
            pout[i] = pi - lr * (d / avg);
        }
    }
    return bad;
}

TR_VECTOR_KERNEL static uint32_t adam(tr_optim *o, const float *pin, float *pout, float *restrict g, size_t n,
                                     float wd, size_t off)
{
    uint32_t bad = 0;
    const bool decoupled = o->cfg.kind == TR_OPTIM_ADAMW;
    const float w1 = (float)(1.0 - o->cfg.beta1); /* lerp weight */
    const float b2 = (float)o->cfg.beta2;
    const float one_m_b2 = (float)(1.0 - o->cfg.beta2);
    const float eps = (float)o->cfg.eps;
    const float step_size = o->step_size;
    const float inv_bc2_sqrt = o->inv_bc2_sqrt;
    const float decay = (float)(1.0 - o->lr * wd);
    float *restrict m = state(o, "exp_avg") + off;
    float *restrict v = state(o, "exp_avg_sq") + off;
    float *restrict vmax = state(o, "max_exp_avg_sq");
    /* decoupled decay multiplies p, coupled decay adds to the gradient: one of them is a no-op */
    const float pmul = decoupled ? decay : 1.0f, gadd = decoupled ? 0.0f : wd;
    if (vmax) {
        vmax += off;
#pragma GCC ivdep
        for (size_t i = 0; i < n; i++) {
            bad |= NONFINITE_BITS(g[i]);
            const float pi = pin[i] * pmul;
            const float d = g[i] + gadd * pin[i];
            g[i] = 0.0f;
            m[i] = m[i] + w1 * (d - m[i]);
            v[i] = v[i] * b2 + one_m_b2 * d * d;
            vmax[i] = vmax[i] > v[i] ? vmax[i] : v[i];
            const float denom = sqrtf(vmax[i]) * inv_bc2_sqrt + eps;
            pout[i] = pi - step_size * (m[i] / denom);
        }
        return bad;
    }
#pragma GCC ivdep
    for (size_t i = 0; i < n; i++) {
        bad |= NONFINITE_BITS(g[i]);
        const float pi = pin[i] * pmul;
        const float d = g[i] + gadd * pin[i];
        g[i] = 0.0f;
        m[i] = m[i] + w1 * (d - m[i]);
        v[i] = v[i] * b2 + one_m_b2 * d * d;
        const float denom = sqrtf(v[i]) * inv_bc2_sqrt + eps;
        pout[i] = pi - step_size * (m[i] / denom);
    }
    return bad;
}

/* PyTorch's Adagrad: sum += d^2 (the sum starts at initial_accumulator_value: set at the
 * first step, as the state may be a node's shared buffer that arrives zeroed), then
 * p -= clr d / (sqrt(sum) + eps) with clr = lr / (1 + (t - 1) lr_decay). */
TR_VECTOR_KERNEL static uint32_t adagrad(tr_optim *o, const float *pin, float *pout, float *restrict g, size_t n,
                                        float wd, size_t off)
{
    uint32_t bad = 0;
    const float clr = (float)(o->lr / (1.0 + (double)(o->step - 1) * o->cfg.lr_decay));
    const float eps = (float)o->cfg.eps, init = (float)o->cfg.initial_accumulator_value;
    const bool first = o->step == 1;
    float *restrict sum = state(o, "sum") + off;
#pragma GCC ivdep
    for (size_t i = 0; i < n; i++) {
        bad |= NONFINITE_BITS(g[i]);
        const float pi = pin[i];
        const float d = g[i] + wd * pi;
        g[i] = 0.0f;
        sum[i] = (first ? init : sum[i]) + d * d;
        pout[i] = pi - clr * (d / (sqrtf(sum[i]) + eps));
    }
    return bad;
}

/* LAMB (You et al. 2019, Algorithm 2), as timm's Lamb with grad_averaging and bias correction:
 * m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2, u = (m / bc1) / (sqrt(v) / sqrt(bc2) + eps)
 * + wd p, then p -= lr r u with r = ||p|| / ||u|| over the tensor. Stage one advances the
 * moments and sums ||p||^2 and ||u||^2; stage two recomputes u from them (the same
 * operations, the same bits) and steps. */
TR_VECTOR_KERNEL static uint32_t lamb_moments(tr_optim *o, const float *p, float *restrict g, size_t n, float wd,
                                             size_t off, double sq[2])
{
    uint32_t bad = 0;
    const float b1 = (float)o->cfg.beta1, one_m_b1 = (float)(1.0 - o->cfg.beta1);
    const float b2 = (float)o->cfg.beta2, one_m_b2 = (float)(1.0 - o->cfg.beta2);
    const float eps = (float)o->cfg.eps, inv_bc1 = o->inv_bc1, inv_bc2_sqrt = o->inv_bc2_sqrt;
    float *restrict m = state(o, "exp_avg") + off;
    float *restrict v = state(o, "exp_avg_sq") + off;
    double pp = 0.0, uu = 0.0;
    for (size_t i = 0; i < n; i++) {
        bad |= NONFINITE_BITS(g[i]);
        m[i] = m[i] * b1 + one_m_b1 * g[i];
        v[i] = v[i] * b2 + one_m_b2 * g[i] * g[i];
        g[i] = 0.0f;
        const float u = (m[i] * inv_bc1) / (sqrtf(v[i]) * inv_bc2_sqrt + eps) + wd * p[i];
        pp += (double)p[i] * p[i];
        uu += (double)u * u;
    }
    sq[0] += pp;
    sq[1] += uu;
    return bad;
}

TR_VECTOR_KERNEL static void lamb_step(tr_optim *o, const float *pin, float *pout, size_t n, float wd, float trust,
                                       size_t off)
{
    const float lr = (float)o->lr;
    const float eps = (float)o->cfg.eps, inv_bc1 = o->inv_bc1, inv_bc2_sqrt = o->inv_bc2_sqrt;
    const float *restrict m = state(o, "exp_avg") + off;
    const float *restrict v = state(o, "exp_avg_sq") + off;
#pragma GCC ivdep
    for (size_t i = 0; i < n; i++) {
        const float pi = pin[i];
        const float u = (m[i] * inv_bc1) / (sqrtf(v[i]) * inv_bc2_sqrt + eps) + wd * pi;
        pout[i] = pi - lr * (u * trust);
    }
}

const tr_optim_range tr_optim_plain = {.decay = true, .l1 = 0.0f, .l2 = 0.0f, .scale = 1.0f, .clip = 0.0f,
                                       .trust = 1.0f};

static inline float sign_of(float x) { return (float)((x > 0.0f) - (x < 0.0f)); }

/* The penalty gradients, the norm clipping scale and the value clipping, in place. */
TR_VECTOR_KERNEL static void prepare(float *restrict g, const float *restrict p, size_t n, const tr_optim_range *r)
{
    const float l1 = r->l1, l2x2 = 2.0f * r->l2, scale = r->scale, clip = r->clip;
    for (size_t i = 0; i < n; i++) {
        float v = (g[i] + l1 * sign_of(p[i]) + l2x2 * p[i]) * scale;
        if (clip > 0.0f)
            v = v > clip ? clip : (v < -clip ? -clip : v);
        g[i] = v;
    }
}

double tr_optim_sq_norm(const float *params, const float *grads, size_t begin, size_t end, float l1, float l2)
{
    double s = 0.0;
    for (size_t i = begin; i < end; i++) {
        const double v = (double)grads[i] + (double)l1 * sign_of(params[i]) + 2.0 * l2 * (double)params[i];
        s += v * v;
    }
    return s;
}

double tr_penalty(const float *params, size_t begin, size_t end, double l1, double l2)
{
    double a = 0.0, q = 0.0;
    for (size_t i = begin; i < end; i++) {
        a += fabs((double)params[i]);
        q += (double)params[i] * params[i];
    }
    return l1 * a + l2 * q;
}

bool tr_optim_update(tr_optim *o, float *params, float *grads, size_t begin, size_t end, const tr_optim_range *r)
{
    return tr_optim_update_to(o, params, params + begin, grads, begin, end, r);
}

/* The update's arithmetic flushes subnormal results and operands to zero (x86's FTZ and DAZ
 * bits, set for the pass and restored after). A state that decays geometrically, such as
 * Adam's or momentum's first moment of a weight whose gradient stays zero (a pixel that is
 * blank in every image), reaches values whose decrement is subnormal, and every operation on
 * those takes a slow microcode path: on Fashion-MNIST the 784 network's Adam pass grew from
 * 0.113 to 0.149 ms a step after the second epoch. Flushed, such a state stays at its last
 * value (below 1.2e-37 for Adam's first moment) instead of creeping towards zero, and the
 * steps it makes are far below any weight's last bit. PyTorch keeps subnormals unless
 * torch.set_flush_denormal(True); TensorFlow flushes them on CPUs. */
static unsigned int flush_subnormals_begin(void)
{
#if defined(__SSE__)
    const unsigned int csr = _mm_getcsr();
    _mm_setcsr(csr | 0x8040u); /* FTZ (bit 15) and DAZ (bit 6) */
    return csr;
#else
    return 0;
#endif
}

static void flush_subnormals_end(unsigned int csr)
{
#if defined(__SSE__)
    _mm_setcsr(csr);
#else
    (void)csr;
#endif
}

bool tr_optim_update_to(tr_optim *o, const float *params, float *out, float *grads, size_t begin, size_t end,
                        const tr_optim_range *r)
{
    uint32_t bad = 0;
    if (!r)
        r = &tr_optim_plain;
    const float wd = r->decay ? (float)o->cfg.weight_decay : 0.0f;
    const float trust = tr_optim_layerwise(o) ? r->trust : 1.0f; /* stage two sets it (stage_two_range) */
    if (r->l1 != 0.0f || r->l2 != 0.0f || r->scale != 1.0f || r->clip > 0.0f)
        prepare(grads + begin, params + begin, end - begin, r);
    const size_t n = end - begin;
    const float *p = params + begin;
    float *q = out;
    float *g = grads + begin;
    const unsigned int csr = flush_subnormals_begin();
    switch (o->cfg.kind) {
    case TR_OPTIM_SGD:
    case TR_OPTIM_MOMENTUM:
    case TR_OPTIM_NESTEROV:
    case TR_OPTIM_LARS:
        bad = sgd(o, p, q, g, n, wd, trust, begin);
        break;
    case TR_OPTIM_RMSPROP:
        bad = rmsprop(o, p, q, g, n, wd, begin);
        break;
    case TR_OPTIM_ADAM:
    case TR_OPTIM_ADAMW:
        bad = adam(o, p, q, g, n, wd, begin);
        break;
    case TR_OPTIM_ADAGRAD:
        bad = adagrad(o, p, q, g, n, wd, begin);
        break;
    case TR_OPTIM_LAMB: /* the moments (and the finite check) were stage one's */
        lamb_step(o, p, q, n, wd, trust, begin);
        break;
    case TR_OPTIM_COUNT:
        break;
    }
    flush_subnormals_end(csr);
    return (bad >> 31) == 0;
}

void tr_optim_set_rules(tr_optim *o, const tr_optim_rules *rules) { o->rules = *rules; }

static bool penalized(const tr_optim *o, const tr_tensor *T) { return o->rules.penalize_all || T->is_weight; }

bool tr_optim_layerwise(const tr_optim *o) { return o->cfg.kind == TR_OPTIM_LARS || o->cfg.kind == TR_OPTIM_LAMB; }

/* The regularisation and clipping of tensor T in this step (see tr_optim_range). */
static tr_optim_range range_of(const tr_optim *o, const tr_tensor *T, float scale)
{
    const bool pen = penalized(o, T);
    return (tr_optim_range){.decay = pen,
                            .l1 = pen ? (float)o->rules.l1 : 0.0f,
                            .l2 = pen ? (float)o->rules.l2 : 0.0f,
                            .scale = scale,
                            .clip = (float)o->rules.clip,
                            .trust = 1.0f};
}

/* Stage two of a layer-wise step: stage one regularised and clipped the gradient already. */
static tr_optim_range stage_two_range(const tr_optim *o, const tr_model *m, int t)
{
    return (tr_optim_range){.decay = penalized(o, &m->tensor[t]), .scale = 1.0f, .trust = o->trust[t]};
}

bool tr_optim_step_range(tr_optim *o, struct tr_model *m, size_t lo, size_t hi, float scale, float *out)
{
    bool finite = true;
    for (int i = 0; i < m->n_tensors; i++) {
        const tr_tensor *T = &m->tensor[i];
        size_t a, b;
        if (tr_tensor_part(T, lo, hi, &a, &b)) {
            const tr_optim_range r = tr_optim_layerwise(o) ? stage_two_range(o, m, i) : range_of(o, T, scale);
            finite &= tr_optim_update_to(o, m->params, out ? out + (a - lo) : m->params + a, m->grads, a, b, &r);
        }
    }
    return finite;
}

bool tr_optim_layer_sums(tr_optim *o, struct tr_model *m, int t, size_t a, size_t b, float scale, double sq[2])
{
    const tr_tensor *T = &m->tensor[t];
    const tr_optim_range r = range_of(o, T, scale);
    float *g = m->grads + a;
    const float *p = m->params + a;
    const size_t n = b - a;
    if (r.l1 != 0.0f || r.l2 != 0.0f || r.scale != 1.0f || r.clip > 0.0f)
        prepare(g, p, n, &r);
    const unsigned int csr = flush_subnormals_begin();
    uint32_t bad = 0;
    if (o->cfg.kind == TR_OPTIM_LAMB) {
        bad = lamb_moments(o, p, g, n, r.decay ? (float)o->cfg.weight_decay : 0.0f, a, sq);
    } else {
        double pp = 0.0, gg = 0.0;
        for (size_t i = 0; i < n; i++) {
            bad |= NONFINITE_BITS(g[i]);
            pp += (double)p[i] * p[i];
            gg += (double)g[i] * g[i];
        }
        sq[0] += pp;
        sq[1] += gg;
    }
    flush_subnormals_end(csr);
    return (bad >> 31) == 0;
}

/* The ratio applies to the tensors weight decay covers (weights; every tensor with
 * penalize_all), as the large-batch recipes exclude biases and batch norm's parameters from
 * both (timm's parameter groups, MLPerf's LARS); the others step with the plain rate.
 *   lars  eta ||p|| / (||g|| + wd ||p|| + eps)   (timm's Lars, trust_clip off)
 *   lamb  ||p|| / ||u||
 * both 1 when either norm is zero. */
void tr_optim_set_trust(tr_optim *o, const struct tr_model *m, int t, const double sq[2])
{
    const double w = sqrt(sq[0]), u = sqrt(sq[1]);
    double ratio = 1.0;
    if (penalized(o, &m->tensor[t]) && w > 0.0 && u > 0.0)
        ratio = o->cfg.kind == TR_OPTIM_LARS
                    ? o->cfg.trust_coefficient * w / (u + o->cfg.weight_decay * w + o->cfg.eps)
                    : w / u;
    o->trust[t] = (float)ratio;
}

double tr_optim_grad_sq_norm(const tr_optim *o, const struct tr_model *m, size_t lo, size_t hi)
{
    double sq = 0.0;
    for (int i = 0; i < m->n_tensors; i++) {
        const tr_tensor *T = &m->tensor[i];
        size_t a, b;
        if (tr_tensor_part(T, lo, hi, &a, &b)) {
            const tr_optim_range r = range_of(o, T, 1.0f);
            sq += tr_optim_sq_norm(m->params, m->grads, a, b, r.l1, r.l2);
        }
    }
    return sq;
}

double tr_optim_penalty(const tr_optim *o, const struct tr_model *m)
{
    if (o->rules.l1 == 0.0 && o->rules.l2 == 0.0)
        return 0.0;
    double p = 0.0;
    for (int i = 0; i < m->n_tensors; i++) {
        const tr_tensor *T = &m->tensor[i];
        if (penalized(o, T))
            p += tr_penalty(m->params, T->offset, T->offset + T->size, o->rules.l1, o->rules.l2);
    }
    return p;
}
