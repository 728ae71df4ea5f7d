/*
 * layers.c: activation kernels (forward and backward) with PyTorch's definitions:
 * ReLU'(0) = 0, LeakyReLU slope 0.01, ELU alpha 1, SELU's fixed constants, exact (erf) GELU,
 * Softplus with beta 1 and threshold 20, row-wise max-subtracted Softmax.
 */
#include "trainer/layers.h"

#include "trainer/rng.h"
#include "trainer/vmath.h"

#include "vector_kernel.h"

#include <math.h>
#include <string.h>

const char *const tr_activation_names[] = {
#define TR_X_NAME(e, name, torch) name,
    TR_ACTIVATION_MAP(TR_X_NAME)
#undef TR_X_NAME
        NULL};
static const char *const act_torch_names[] = {
#define TR_X_TORCH(e, name, torch) torch,
    TR_ACTIVATION_MAP(TR_X_TORCH)
#undef TR_X_TORCH
};

int tr_activation_from_name(const char *name) { return tr_name_index(tr_activation_names, name); }

const char *tr_activation_name(tr_activation act) { return tr_name_of(tr_activation_names, act); }

const char *tr_activation_torch_name(tr_activation act)
{
    return (act >= 0 && act < TR_ACT_COUNT) ? act_torch_names[act] : "?";
}

#define SELU_ALPHA 1.6732632423543772848170429916717f
#define SELU_SCALE 1.0507009873554804934193349852946f
#define INV_SQRT2 0.70710678118654752440f
#define INV_SQRT_2PI 0.39894228040143267794f


/* The transcendental parts go through vmath.h (SLEEF, whole vectors) in chunks of VCHUNK
 * elements with scratch on the stack; the arithmetic around them is plain loops the AVX2
 * clone vectorises. An element's value depends only on its inputs, never on its position. */
enum { VCHUNK = 512 };

/* s = sigmoid(z) = 1 / (1 + exp(-z)) over n <= VCHUNK elements. */
static void sigmoid_chunk(float *s, const float *z, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        s[i] = -z[i];
    tr_vexpf(s, s, n);
    for (int64_t i = 0; i < n; i++)
        s[i] = 1.0f / (1.0f + s[i]);
}

/* a = exp(z - max z) over one row of W; returns max z (the shift both softmaxes share). */
static float exp_shifted(float *a, const float *z, int64_t W)
{
    float mx = z[0];
    for (int64_t j = 1; j < W; j++)
        mx = z[j] > mx ? z[j] : mx;
    for (int64_t j = 0; j < W; j++)
        a[j] = z[j] - mx;
    tr_vexpf(a, a, W);
    return mx;
}

static void softmax_rows(float *A, const float *Z, int64_t B, int64_t W)
{
    for (int64_t r = 0; r < B; r++) {
        float *a = A + r * W;
        exp_shifted(a, Z + r * W, W);
        float sum = 0.0f;
        for (int64_t j = 0; j < W; j++)
            sum += a[j];
        const float inv = 1.0f / sum;
        for (int64_t j = 0; j < W; j++)
            a[j] *= inv;
    }
}

/* a = z - max - log(sum exp(z - max)), PyTorch's LogSoftmax(dim=1). */
static void log_softmax_rows(float *A, const float *Z, int64_t B, int64_t W)
{
    for (int64_t r = 0; r < B; r++) {
        const float *z = Z + r * W;
        float *a = A + r * W;
        const float mx = exp_shifted(a, z, W); /* a holds exp(z - max) for the sum, then is overwritten */
        double sum = 0.0;
        for (int64_t j = 0; j < W; j++)
            sum += a[j];
        const float lse = mx + (float)log(sum);
        for (int64_t j = 0; j < W; j++)
            a[j] = z[j] - lse;
    }
}

TR_VECTOR_KERNEL void tr_act_forward(float *A, const float *Z, int64_t B, int64_t W, tr_activation act,
                                     const tr_act_params *p)
{
    const int64_t n = B * W;
    switch (act) {
    case TR_ACT_IDENTITY:
        memcpy(A, Z, (size_t)n * sizeof *A);
        return;
    case TR_ACT_TANH:
        tr_vtanhf(A, Z, n);
        return;
    case TR_ACT_RELU:
        for (int64_t i = 0; i < n; i++)
            A[i] = Z[i] > 0.0f ? Z[i] : 0.0f;
        return;
    case TR_ACT_LEAKY_RELU: {
        const float s = p->leaky_slope;
        for (int64_t i = 0; i < n; i++)
            A[i] = Z[i] > 0.0f ? Z[i] : s * Z[i];
        return;
    }
    case TR_ACT_SOFTMAX:
        softmax_rows(A, Z, B, W);
        return;
    case TR_ACT_LOG_SOFTMAX:
        log_softmax_rows(A, Z, B, W);
        return;
    default:
        break;
    }
    float t[VCHUNK];
    for (int64_t c0 = 0; c0 < n; c0 += VCHUNK) {
        const int64_t m = n - c0 < VCHUNK ? n - c0 : VCHUNK;
        const float *z = Z + c0;
        float *a = A + c0;
        switch (act) {
        case TR_ACT_SIGMOID:
            sigmoid_chunk(a, z, m);
            break;
        case TR_ACT_ELU: {
            const float al = p->elu_alpha;
            tr_vexpm1f(t, z, m);
            for (int64_t i = 0; i < m; i++)
                a[i] = z[i] > 0.0f ? z[i] : al * t[i];
            break;
        }
        case TR_ACT_SELU:
            tr_vexpm1f(t, z, m);
            for (int64_t i = 0; i < m; i++)
                a[i] = SELU_SCALE * (z[i] > 0.0f ? z[i] : SELU_ALPHA * t[i]);
            break;
        case TR_ACT_GELU:
            for (int64_t i = 0; i < m; i++)
                t[i] = z[i] * INV_SQRT2;
            tr_verff(t, t, m);
            for (int64_t i = 0; i < m; i++)
                a[i] = 0.5f * z[i] * (1.0f + t[i]);
            break;
        case TR_ACT_SILU:
            sigmoid_chunk(t, z, m);
            for (int64_t i = 0; i < m; i++)
                a[i] = z[i] * t[i];
            break;
        case TR_ACT_SOFTPLUS:
            for (int64_t i = 0; i < m; i++)
                t[i] = z[i] > 20.0f ? 0.0f : z[i]; /* the threshold's side needs no exp */
            tr_vexpf(t, t, m);
            tr_vlog1pf(t, t, m);
            for (int64_t i = 0; i < m; i++)
                a[i] = z[i] > 20.0f ? z[i] : t[i];
            break;
        default:
            break;
        }
    }
}

TR_VECTOR_KERNEL void tr_act_backward(float *dZ, const float *dA, const float *Z, const float *A, int64_t B,
                                      int64_t W, tr_activation act, const tr_act_params *p)
{
    const int64_t n = B * W;
    switch (act) {
    case TR_ACT_IDENTITY:
        if (dZ != dA)
            memcpy(dZ, dA, (size_t)n * sizeof *dZ);
        return;
    case TR_ACT_SIGMOID:
        for (int64_t i = 0; i < n; i++)
            dZ[i] = dA[i] * A[i] * (1.0f - A[i]);
        return;
    case TR_ACT_TANH:
        for (int64_t i = 0; i < n; i++)
            dZ[i] = dA[i] * (1.0f - A[i] * A[i]);
        return;
    case TR_ACT_RELU:
        for (int64_t i = 0; i < n; i++)
            dZ[i] = Z[i] > 0.0f ? dA[i] : 0.0f;
        return;
    case TR_ACT_LEAKY_RELU: {
        const float s = p->leaky_slope;
        for (int64_t i = 0; i < n; i++)
            dZ[i] = Z[i] > 0.0f ? dA[i] : s * dA[i];
        return;
    }
    case TR_ACT_ELU: { /* alpha e^z = A + alpha where z <= 0 */
        const float a = p->elu_alpha;
        for (int64_t i = 0; i < n; i++)
            dZ[i] = Z[i] > 0.0f ? dA[i] : dA[i] * (A[i] + a);
        return;
    }
    case TR_ACT_SELU: /* scale alpha e^z = A + scale alpha where z <= 0 */
        for (int64_t i = 0; i < n; i++)
            dZ[i] = Z[i] > 0.0f ? dA[i] * SELU_SCALE : dA[i] * (A[i] + SELU_SCALE * SELU_ALPHA);
        return;
    case TR_ACT_SOFTMAX:
        for (int64_t r = 0; r < B; r++) {
            const float *a = A + r * W;
            const float *da = dA + r * W;
            float *dz = dZ + r * W;
            float dot = 0.0f;
            for (int64_t j = 0; j < W; j++)
                dot += da[j] * a[j];
            for (int64_t j = 0; j < W; j++)
                dz[j] = a[j] * (da[j] - dot);
        }
        return;
    case TR_ACT_LOG_SOFTMAX: /* dz = da - softmax(z) sum(da) */
        for (int64_t r = 0; r < B; r++) {
            const float *a = A + r * W;
            const float *da = dA + r * W;
            float *dz = dZ + r * W;
            float sum = 0.0f;
            for (int64_t j = 0; j < W; j++)
                sum += da[j];
            for (int64_t j0 = 0; j0 < W; j0 += VCHUNK) {
                float e[VCHUNK];
                const int64_t m = W - j0 < VCHUNK ? W - j0 : VCHUNK;
                tr_vexpf(e, a + j0, m);
                for (int64_t j = 0; j < m; j++)
                    dz[j0 + j] = da[j0 + j] - e[j] * sum;
            }
        }
        return;
    default:
        break;
    }
    float t[VCHUNK], u[VCHUNK];
    for (int64_t c0 = 0; c0 < n; c0 += VCHUNK) {
        const int64_t m = n - c0 < VCHUNK ? n - c0 : VCHUNK;
        const float *z = Z + c0, *da = dA + c0;
        float *dz = dZ + c0;
        switch (act) {
        case TR_ACT_GELU:
            for (int64_t i = 0; i < m; i++) {
                t[i] = z[i] * INV_SQRT2;
                u[i] = -0.5f * z[i] * z[i];
            }
            tr_verff(t, t, m);
            tr_vexpf(u, u, m);
            for (int64_t i = 0; i < m; i++)
                dz[i] = da[i] * (0.5f * (1.0f + t[i]) + z[i] * INV_SQRT_2PI * u[i]);
            break;
        case TR_ACT_SILU:
            sigmoid_chunk(t, z, m);
            for (int64_t i = 0; i < m; i++)
                dz[i] = da[i] * t[i] * (1.0f + z[i] * (1.0f - t[i]));
            break;
        case TR_ACT_SOFTPLUS:
            sigmoid_chunk(t, z, m);
            for (int64_t i = 0; i < m; i++)
                dz[i] = z[i] > 20.0f ? da[i] : da[i] * t[i];
            break;
        default:
            break;
        }
    }
}

/* ------------------------------------------------------------------ batch norm ------ */

void tr_bn_sums(double *sums, const float *X, int64_t B, int64_t W)
{
    for (int64_t r = 0; r < B; r++) {
        const float *x = X + r * W;
        for (int64_t j = 0; j < W; j++) {
            sums[j] += x[j];
            sums[W + j] += (double)x[j] * x[j];
        }
    }
}

void tr_bn_forward_train(float *Y, float *xhat, float *mean, float *invstd, const float *X, const double *sums,
                         double count, const float *gamma, const float *beta, int64_t B, int64_t W, float eps)
{
    for (int64_t j = 0; j < W; j++) {
        const double mu = sums[j] / count;
        double var = sums[W + j] / count - mu * mu; /* biased, as PyTorch normalises */
        if (var < 0.0)
            var = 0.0;
        mean[j] = (float)mu;
        invstd[j] = (float)(1.0 / sqrt(var + eps));
    }
    for (int64_t r = 0; r < B; r++)
        for (int64_t j = 0; j < W; j++) {
            const float h = (X[r * W + j] - mean[j]) * invstd[j];
            xhat[r * W + j] = h;
            Y[r * W + j] = gamma[j] * h + beta[j];
        }
}

void tr_bn_forward_eval(float *Y, const float *X, const float *running_mean, const float *running_var,
                        const float *gamma, const float *beta, int64_t B, int64_t W, float eps)
{
    for (int64_t r = 0; r < B; r++)
        for (int64_t j = 0; j < W; j++) {
            const float inv = 1.0f / sqrtf(running_var[j] + eps);
            Y[r * W + j] = gamma[j] * ((X[r * W + j] - running_mean[j]) * inv) + beta[j];
        }
}

void tr_bn_update_running(float *running_mean, float *running_var, const double *sums, double count, int64_t W,
                          float momentum)
{
    for (int64_t j = 0; j < W; j++) {
        const double mu = sums[j] / count;
        double var = sums[W + j] / count - mu * mu;
        if (var < 0.0)
            var = 0.0;
        const double unbiased = count > 1.0 ? var * count / (count - 1.0) : var;
        running_mean[j] = (float)((1.0 - momentum) * running_mean[j] + momentum * mu);
        running_var[j] = (float)((1.0 - momentum) * running_var[j] + momentum * unbiased);
    }
}

void tr_bn_backward_sums(double *sums, const float *dY, const float *xhat, int64_t B, int64_t W)
{
    for (int64_t r = 0; r < B; r++)
        for (int64_t j = 0; j < W; j++) {
            sums[j] += dY[r * W + j];
            sums[W + j] += (double)dY[r * W + j] * xhat[r * W + j];
        }
}

void tr_bn_backward(float *dX, float *dgamma, float *dbeta, const float *dY, const float *xhat, const float *invstd,
                    const float *gamma, const double *local_sums, const double *sums, double count, int64_t B,
                    int64_t W)
{
    for (int64_t j = 0; j < W; j++) {
        dbeta[j] += (float)local_sums[j];
        dgamma[j] += (float)local_sums[W + j];
    }
    for (int64_t r = 0; r < B; r++)
        for (int64_t j = 0; j < W; j++) {
            const double k = (double)gamma[j] * invstd[j] / count;
            const double v = count * dY[r * W + j] - sums[j] - (double)xhat[r * W + j] * sums[W + j];
            dX[r * W + j] = (float)(k * v);
        }
}

/* ------------------------------------------------------------------ dropout --------- */

/* m[j] = 0 where the word is below the threshold, else keep. */
TR_VECTOR_KERNEL static void mask_from_words(float *m, const uint32_t *w, int64_t n, uint32_t threshold, float keep)
{
    for (int64_t j = 0; j < n; j++)
        m[j] = w[j] < threshold ? 0.0f : keep;
}

void tr_dropout_mask(float *mask, const int64_t *rows, int64_t B, int64_t W, float p, uint64_t seed, int64_t step,
                     int64_t unit_offset, int64_t units)
{
    enum { CHUNK = 64 }; /* counters (of 4 words) per tr_rng_blocks call */
    const tr_rng rng = tr_rng_make(seed);
    /* drop when the 32-bit word w < p 2^32, i.e. w < ceil(p 2^32) for integer w (below 2^32:
     * p <= 1 - 2^-24 as a float below 1) */
    const uint32_t threshold = (uint32_t)ceil((double)p * 4294967296.0);
    const float keep = 1.0f / (1.0f - p);
    uint32_t words[4 * CHUNK];
    for (int64_t r = 0; r < B; r++) {
        const uint64_t base = (uint64_t)rows[r] * (uint64_t)units + (uint64_t)unit_offset;
        float *m = mask + r * W;
        for (int64_t j0 = 0; j0 < W;) { /* units base + j0 ... in the counters from (base + j0) / 4 */
            const uint64_t u0 = base + (uint64_t)j0, first = u0 / 4;
            const int64_t skip = (int64_t)(u0 % 4), n = W - j0 < 4 * CHUNK - skip ? W - j0 : 4 * CHUNK - skip;
            tr_rng_blocks(rng, TR_RNG_DROPOUT, (uint32_t)step, first, (size_t)((skip + n + 3) / 4), words);
            mask_from_words(m + j0, words + skip, n, threshold, keep);
            j0 += n;
        }
    }
}
