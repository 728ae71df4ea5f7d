/*
 * layers.c: activation kernels (forward and backward) with PyTorch's definitions:
 * ReLU'(0) = 0, LeakyReLU slope 0.01, ELU alpha 1, SELU's fixed constants, exact (erf) GELU,
 * Softplus with beta 1 and threshold 20, row-wise max-subtracted Softmax.
 */
#include "trainer/layers.h"

#include "vector_kernel.h"

#include <math.h>
#include <string.h>

static const char *const act_names[] = {
#define TR_X_NAME(e, name, torch) name,
    TR_ACTIVATION_MAP(TR_X_NAME)
#undef TR_X_NAME
};
static const char *const act_torch_names[] = {
#define TR_X_TORCH(e, name, torch) torch,
    TR_ACTIVATION_MAP(TR_X_TORCH)
#undef TR_X_TORCH
};

int tr_activation_from_name(const char *name)
{
    for (int i = 0; i < TR_ACT_COUNT; i++)
        if (strcmp(name, act_names[i]) == 0)
            return i;
    return -1;
}

const char *tr_activation_name(tr_activation act)
{
    return (act >= 0 && act < TR_ACT_COUNT) ? act_names[act] : "?";
}

const char *tr_activation_torch_name(tr_activation act)
{
    return (act >= 0 && act < TR_ACT_COUNT) ? act_torch_names[act] : "?";
}

#define SELU_ALPHA 1.6732632423543772848170429916717f
#define SELU_SCALE 1.0507009873554804934193349852946f
#define INV_SQRT2 0.70710678118654752440f
#define INV_SQRT_2PI 0.39894228040143267794f

static inline float sigmoidf(float z) { return 1.0f / (1.0f + expf(-z)); }

static void softmax_rows(float *A, const float *Z, int64_t B, int64_t W)
{
    for (int64_t r = 0; r < B; r++) {
        const float *z = Z + r * W;
        float *a = A + r * W;
        float mx = z[0];
        for (int64_t j = 1; j < W; j++)
            mx = z[j] > mx ? z[j] : mx;
        float sum = 0.0f;
        for (int64_t j = 0; j < W; j++) {
            a[j] = expf(z[j] - mx);
            sum += a[j];
        }
        float inv = 1.0f / sum;
        for (int64_t j = 0; j < W; j++)
            a[j] *= inv;
    }
}

TR_VECTOR_KERNEL void tr_act_forward(float *A, const float *Z, int64_t B, int64_t W, tr_activation act,
                    const tr_act_params *p)
{
    const int64_t n = B * W;
    switch (act) {
    case TR_ACT_IDENTITY:
        memcpy(A, Z, (size_t)n * sizeof *A);
        break;
    case TR_ACT_SIGMOID:
        for (int64_t i = 0; i < n; i++)
            A[i] = sigmoidf(Z[i]);
        break;
    case TR_ACT_TANH:
        for (int64_t i = 0; i < n; i++)
            A[i] = tanhf(Z[i]);
        break;
    case TR_ACT_RELU:
        for (int64_t i = 0; i < n; i++)
            A[i] = Z[i] > 0.0f ? Z[i] : 0.0f;
        break;
    case TR_ACT_LEAKY_RELU: {
        const float s = p->leaky_slope;
        for (int64_t i = 0; i < n; i++)
            A[i] = Z[i] > 0.0f ? Z[i] : s * Z[i];
        break;
    }
    case TR_ACT_ELU: {
        const float a = p->elu_alpha;
        for (int64_t i = 0; i < n; i++)
            A[i] = Z[i] > 0.0f ? Z[i] : a * expm1f(Z[i]);
        break;
    }
    case TR_ACT_SELU:
        for (int64_t i = 0; i < n; i++)
            A[i] = SELU_SCALE * (Z[i] > 0.0f ? Z[i] : SELU_ALPHA * expm1f(Z[i]));
        break;
    case TR_ACT_GELU:
        for (int64_t i = 0; i < n; i++)
            A[i] = 0.5f * Z[i] * (1.0f + erff(Z[i] * INV_SQRT2));
        break;
    case TR_ACT_SILU:
        for (int64_t i = 0; i < n; i++)
            A[i] = Z[i] * sigmoidf(Z[i]);
        break;
    case TR_ACT_SOFTPLUS:
        for (int64_t i = 0; i < n; i++)
            A[i] = Z[i] > 20.0f ? Z[i] : log1pf(expf(Z[i]));
        break;
    case TR_ACT_SOFTMAX:
        softmax_rows(A, Z, B, W);
        break;
    case TR_ACT_COUNT:
        break;
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
        break;
    case TR_ACT_SIGMOID:
        for (int64_t i = 0; i < n; i++)
            dZ[i] = dA[i] * A[i] * (1.0f - A[i]);
        break;
    case TR_ACT_TANH:
        for (int64_t i = 0; i < n; i++)
            dZ[i] = dA[i] * (1.0f - A[i] * A[i]);
        break;
    case TR_ACT_RELU:
        for (int64_t i = 0; i < n; i++)
            dZ[i] = Z[i] > 0.0f ? dA[i] : 0.0f;
        break;
    case TR_ACT_LEAKY_RELU: {
        const float s = p->leaky_slope;
        for (int64_t i = 0; i < n; i++)
            dZ[i] = Z[i] > 0.0f ? dA[i] : s * dA[i];
        break;
    }
    case TR_ACT_ELU: {
        const float a = p->elu_alpha;
        for (int64_t i = 0; i < n; i++)
            dZ[i] = Z[i] > 0.0f ? dA[i] : dA[i] * a * expf(Z[i]);
        break;
    }
    case TR_ACT_SELU:
        for (int64_t i = 0; i < n; i++)
            dZ[i] = dA[i] * SELU_SCALE * (Z[i] > 0.0f ? 1.0f : SELU_ALPHA * expf(Z[i]));
        break;
    case TR_ACT_GELU:
        for (int64_t i = 0; i < n; i++) {
            const float z = Z[i];
            const float cdf = 0.5f * (1.0f + erff(z * INV_SQRT2));
            const float pdf = INV_SQRT_2PI * expf(-0.5f * z * z);
            dZ[i] = dA[i] * (cdf + z * pdf);
        }
        break;
    case TR_ACT_SILU:
        for (int64_t i = 0; i < n; i++) {
            const float s = sigmoidf(Z[i]);
            dZ[i] = dA[i] * s * (1.0f + Z[i] * (1.0f - s));
        }
        break;
    case TR_ACT_SOFTPLUS:
        for (int64_t i = 0; i < n; i++)
            dZ[i] = Z[i] > 20.0f ? dA[i] : dA[i] * sigmoidf(Z[i]);
        break;
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
        break;
    case TR_ACT_COUNT:
        break;
    }
}
