/*
 * optim.c: the update rules, written to follow torch.optim's single-tensor code paths
 * operation by operation (float arithmetic, lerp for Adam's first moment, bias corrections
 * computed in double), so the same gradients give the same parameters to rounding.
 */
#include "trainer/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const optim_names[] = {
#define TR_X_NAME(e, name) name,
    TR_OPTIM_MAP(TR_X_NAME)
#undef TR_X_NAME
};

int tr_optim_from_name(const char *name)
{
    for (int i = 0; i < TR_OPTIM_COUNT; i++)
        if (strcmp(name, optim_names[i]) == 0)
            return i;
    return -1;
}

const char *tr_optim_name(tr_optim_kind kind)
{
    return (kind >= 0 && kind < TR_OPTIM_COUNT) ? optim_names[kind] : "?";
}

static int add_state(tr_optim *o, const char *name, tr_err *err)
{
    float *p = calloc(o->n ? o->n : 1, sizeof *p);
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
    for (int i = 0; i < o->n_state; i++)
        free(o->state[i].data);
    o->n_state = 0;
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
    if (o->cfg.kind == TR_OPTIM_ADAM || o->cfg.kind == TR_OPTIM_ADAMW) {
        const double bc1 = 1.0 - pow(o->cfg.beta1, (double)o->step);
        const double bc2 = 1.0 - pow(o->cfg.beta2, (double)o->step);
        o->step_size = (float)(o->lr / bc1);
        o->bc2_sqrt = (float)sqrt(bc2);
    }
}

static void sgd(tr_optim *o, float *p, const float *g, size_t n, float wd, size_t off)
{
    const float lr = (float)o->lr;
    const float mu = (float)o->cfg.momentum;
    const float damp = (float)(1.0 - o->cfg.dampening);
    float *buf = state(o, "momentum_buffer");
    const bool nesterov = o->cfg.kind == TR_OPTIM_NESTEROV;
    if (!buf) {
        for (size_t i = 0; i < n; i++)
            p[i] -= lr * (g[i] + wd * p[i]);
        return;
    }
    buf += off;
    const bool first = o->step == 1; /* PyTorch: the buffer starts as a copy of d_p */
    for (size_t i = 0; i < n; i++) {
        const float d = g[i] + wd * p[i];
        buf[i] = first ? d : buf[i] * mu + damp * d;
        const float step = nesterov ? d + mu * buf[i] : buf[i];
        p[i] -= lr * step;
    }
}

static void rmsprop(tr_optim *o, float *p, const float *g, size_t n, float wd, size_t off)
{
    const float lr = (float)o->lr;
    const float alpha = (float)o->cfg.alpha;
    const float one_m_alpha = (float)(1.0 - o->cfg.alpha);
    const float eps = (float)o->cfg.eps;
    const float mu = (float)o->cfg.momentum;
    float *sq = state(o, "square_avg") + off;
    float *buf = state(o, "momentum_buffer");
    float *gavg = state(o, "grad_avg");
    if (buf)
        buf += off;
    if (gavg)
        gavg += off;
    for (size_t i = 0; i < n; i++) {
        const float d = g[i] + wd * p[i];
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
            p[i] -= lr * buf[i];
        } else {
            p[i] -= lr * (d / avg);
        }
    }
}

static void adam(tr_optim *o, float *p, const float *g, size_t n, float wd, size_t off)
{
    const bool decoupled = o->cfg.kind == TR_OPTIM_ADAMW;
    const float w1 = (float)(1.0 - o->cfg.beta1); /* lerp weight */
    const float b2 = (float)o->cfg.beta2;
    const float one_m_b2 = (float)(1.0 - o->cfg.beta2);
    const float eps = (float)o->cfg.eps;
    const float step_size = o->step_size;
    const float bc2_sqrt = o->bc2_sqrt;
    const float decay = (float)(1.0 - o->lr * wd);
    float *m = state(o, "exp_avg") + off;
    float *v = state(o, "exp_avg_sq") + off;
    float *vmax = state(o, "max_exp_avg_sq");
    if (vmax)
        vmax += off;
    for (size_t i = 0; i < n; i++) {
        float d = g[i];
        if (decoupled)
            p[i] *= decay;
        else
            d += wd * p[i];
        m[i] = m[i] + w1 * (d - m[i]);
        v[i] = v[i] * b2 + one_m_b2 * d * d;
        float vv = v[i];
        if (vmax) {
            vmax[i] = vmax[i] > vv ? vmax[i] : vv;
            vv = vmax[i];
        }
        const float denom = sqrtf(vv) / bc2_sqrt + eps;
        p[i] -= step_size * (m[i] / denom);
    }
}

void tr_optim_update(tr_optim *o, float *params, const float *grads, size_t begin, size_t end,
                     bool decay)
{
    const float wd = decay ? (float)o->cfg.weight_decay : 0.0f;
    const size_t n = end - begin;
    float *p = params + begin;
    const float *g = grads + begin;
    switch (o->cfg.kind) {
    case TR_OPTIM_SGD:
    case TR_OPTIM_MOMENTUM:
    case TR_OPTIM_NESTEROV:
        sgd(o, p, g, n, wd, begin);
        break;
    case TR_OPTIM_RMSPROP:
        rmsprop(o, p, g, n, wd, begin);
        break;
    case TR_OPTIM_ADAM:
    case TR_OPTIM_ADAMW:
        adam(o, p, g, n, wd, begin);
        break;
    case TR_OPTIM_COUNT:
        break;
    }
}
