/*
 * test_layers.c: activation kernels against their definitions and central differences.
 */
#include "test_util.h"
#include "trainer/layers.h"

#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#define B 4
#define W 5
#define N (B * W)

static const tr_act_params params = {.leaky_slope = 0.01f, .elu_alpha = 1.0f};

static double objective(tr_activation act, const float *Z, const double *w)
{
    float A[N];
    tr_act_forward(A, Z, B, W, act, &params);
    double s = 0.0;
    for (int i = 0; i < N; i++)
        s += w[i] * A[i];
    return s;
}

/* d objective / dZ_i by central differences with Richardson extrapolation. */
static double numeric(tr_activation act, float *Z, const double *w, int i, float h)
{
    const float z0 = Z[i];
    double d[2];
    for (int k = 0; k < 2; k++) {
        const float hk = k ? h / 2 : h;
        Z[i] = z0 + hk;
        const double fp = objective(act, Z, w);
        Z[i] = z0 - hk;
        const double fm = objective(act, Z, w);
        d[k] = (fp - fm) / ((double)(z0 + hk) - (double)(z0 - hk));
    }
    Z[i] = z0;
    return (4.0 * d[1] - d[0]) / 3.0;
}

static void gradient_check(tr_activation act)
{
    float Z[N], A[N], dA[N], dZ[N];
    double w[N], analytic[N], approx[N];
    fill_uniform(Z, N, -2.5f, 2.5f, 11 + act);
    for (int i = 0; i < N; i++) /* keep away from the kinks at 0 */
        if (fabsf(Z[i]) < 0.1f)
            Z[i] = Z[i] < 0 ? -0.3f : 0.3f;
    float wf[N];
    fill_uniform(wf, N, -1.0f, 1.0f, 77);
    for (int i = 0; i < N; i++) {
        w[i] = wf[i];
        dA[i] = wf[i];
    }
    tr_act_forward(A, Z, B, W, act, &params);
    tr_act_backward(dZ, dA, Z, A, B, W, act, &params);
    for (int i = 0; i < N; i++) {
        analytic[i] = dZ[i];
        approx[i] = numeric(act, Z, w, i, 1e-2f);
    }
    double e = rel_error(analytic, approx, N);
    cr_expect(max_abs(analytic, N) > 1e-3, "%s: gradient is all zero", tr_activation_name(act));
    cr_expect(e < 1e-3, "%s: relative error %g", tr_activation_name(act), e);

    /* in place (dZ == dA) gives the same */
    float inplace[N];
    memcpy(inplace, dA, sizeof inplace);
    tr_act_backward(inplace, inplace, Z, A, B, W, act, &params);
    cr_expect(memcmp(inplace, dZ, sizeof dZ) == 0, "%s: in-place backward differs", tr_activation_name(act));
}

Test(activation, every_backward_matches_central_difference)
{
    for (int a = 0; a < TR_ACT_COUNT; a++)
        gradient_check((tr_activation)a);
}

Test(activation, forward_matches_definitions)
{
    const float z[6] = {-3.0f, -1.0f, -0.25f, 0.5f, 1.0f, 25.0f};
    float a[6];
    for (int k = 0; k < TR_ACT_COUNT; k++) {
        if (k == TR_ACT_SOFTMAX)
            continue;
        tr_act_forward(a, z, 1, 6, (tr_activation)k, &params);
        for (int i = 0; i < 6; i++) {
            const double x = z[i];
            double want = 0.0;
            switch (k) {
            case TR_ACT_IDENTITY: want = x; break;
            case TR_ACT_SIGMOID: want = 1.0 / (1.0 + exp(-x)); break;
            case TR_ACT_TANH: want = tanh(x); break;
            case TR_ACT_RELU: want = x > 0 ? x : 0; break;
            case TR_ACT_LEAKY_RELU: want = x > 0 ? x : 0.01 * x; break;
            case TR_ACT_ELU: want = x > 0 ? x : exp(x) - 1; break;
            case TR_ACT_SELU: want = 1.0507009873554804934 * (x > 0 ? x : 1.6732632423543772848 * (exp(x) - 1)); break;
            case TR_ACT_GELU: want = 0.5 * x * (1 + erf(x / sqrt(2.0))); break;
            case TR_ACT_SILU: want = x / (1.0 + exp(-x)); break;
            case TR_ACT_SOFTPLUS: want = x > 20 ? x : log1p(exp(x)); break;
            default: break;
            }
            cr_expect(fabs(a[i] - want) <= 2e-6 * (1 + fabs(want)), "%s(%g) = %.9g, want %.9g",
                      tr_activation_name((tr_activation)k), x, a[i], want);
        }
    }
}

Test(activation, softmax_rows_sum_to_one_and_survive_large_logits)
{
    const float z[6] = {1000.0f, 1001.0f, 999.0f, -5.0f, 0.0f, 5.0f};
    float a[6];
    tr_act_forward(a, z, 2, 3, TR_ACT_SOFTMAX, &params);
    for (int r = 0; r < 2; r++) {
        double s = 0;
        for (int j = 0; j < 3; j++) {
            cr_expect(isfinite(a[r * 3 + j]));
            s += a[r * 3 + j];
        }
        cr_expect(fabs(s - 1.0) < 1e-6, "row %d sums to %g", r, s);
    }
    cr_expect(fabs(a[1] - 0.66524096) < 1e-6, "softmax(1000,1001,999)[1] = %g", a[1]);
}

Test(activation, relu_gradient_at_zero_is_zero_like_pytorch)
{
    float z[2] = {0.0f, -0.0f}, a[2], da[2] = {1.0f, 1.0f}, dz[2];
    tr_act_forward(a, z, 1, 2, TR_ACT_RELU, &params);
    tr_act_backward(dz, da, z, a, 1, 2, TR_ACT_RELU, &params);
    cr_expect(dz[0] == 0.0f && dz[1] == 0.0f);
}

Test(activation, names_round_trip)
{
    for (int a = 0; a < TR_ACT_COUNT; a++)
        cr_expect_eq(tr_activation_from_name(tr_activation_name((tr_activation)a)), a);
    cr_expect_eq(tr_activation_from_name("Relu"), -1);
}
