/*
 * test_layers.c: activation kernels against their definitions and central differences.
 */
#include "test_util.h"
#include "trainer/layers.h"
#include "trainer/vmath.h"
#include "trainer/rng.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
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
        double lse = 0.0; /* log_softmax: z - log(sum exp z) */
        for (int i = 0; i < 6; i++)
            lse += exp((double)z[i]);
        lse = log(lse);
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
            case TR_ACT_LOG_SOFTMAX: want = x - lse; break;
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

/* ------------------------------------------------------------------ dropout --------- */

Test(dropout, drops_at_the_rate_and_scales_the_kept_units)
{
    enum { ROWS = 1000, UNITS = 100 };
    static float mask[ROWS * UNITS];
    static int64_t rows[ROWS];
    for (int r = 0; r < ROWS; r++)
        rows[r] = r;
    const float rates[] = {0.1f, 0.3f, 0.5f, 0.9f};
    for (int k = 0; k < 4; k++) {
        const float p = rates[k];
        tr_dropout_mask(mask, rows, ROWS, UNITS, p, 17, 3, 0, UNITS);
        double dropped = 0;
        bool scaled = true;
        for (int i = 0; i < ROWS * UNITS; i++) {
            dropped += mask[i] == 0.0f;
            scaled &= mask[i] == 0.0f || mask[i] == 1.0f / (1.0f - p);
        }
        const double n = ROWS * UNITS, sd = sqrt(p * (1 - p) / n);
        cr_expect(fabs(dropped / n - p) < 5 * sd, "p %g: dropped %g", (double)p, dropped / n);
        cr_expect(scaled, "p %g: kept units are not scaled by 1/(1-p)", (double)p);
    }
}

Test(dropout, a_sample_gets_its_mask_wherever_it_is_computed)
{
    /* rows 7 and 2 in one batch, or each alone in another order: the same masks */
    const int64_t both[2] = {7, 2}, seven[1] = {7}, two[1] = {2};
    float m_both[2 * 10], m7[10], m2[10];
    tr_dropout_mask(m_both, both, 2, 10, 0.5f, 1, 4, 0, 10);
    tr_dropout_mask(m2, two, 1, 10, 0.5f, 1, 4, 0, 10);
    tr_dropout_mask(m7, seven, 1, 10, 0.5f, 1, 4, 0, 10);
    cr_expect(memcmp(m_both, m7, sizeof m7) == 0 && memcmp(m_both + 10, m2, sizeof m2) == 0);
    /* a layer's units sit at its offset in the row's counters: units 3..7 of a 10-unit row */
    float part[5];
    tr_dropout_mask(part, seven, 1, 5, 0.5f, 1, 4, 3, 10);
    cr_expect(memcmp(part, m7 + 3, sizeof part) == 0);
    /* another step, seed or row: another mask */
    float other[10];
    tr_dropout_mask(other, seven, 1, 10, 0.5f, 1, 5, 0, 10);
    cr_expect(memcmp(other, m7, sizeof m7) != 0, "step does not change the mask");
    tr_dropout_mask(other, seven, 1, 10, 0.5f, 2, 4, 0, 10);
    cr_expect(memcmp(other, m7, sizeof m7) != 0, "seed does not change the mask");
    cr_expect(memcmp(m2, m7, sizeof m7) != 0, "rows share a mask");
}

/* ------------------------------------------------------------------ batch norm ------ */

Test(batch_norm, sums_of_slices_add_up_to_the_batch)
{
    /* synchronised batch norm adds the ranks' sums: slices must give the whole batch's */
    enum { ROWS = 12, F = 3 };
    float X[ROWS * F], dY[ROWS * F], xhat[ROWS * F];
    fill_uniform(X, ROWS * F, -2.0f, 3.0f, 5);
    fill_uniform(dY, ROWS * F, -1.0f, 1.0f, 6);
    fill_uniform(xhat, ROWS * F, -1.0f, 1.0f, 7);
    double whole[2 * F] = {0}, parts[2 * F] = {0}, bwhole[2 * F] = {0}, bparts[2 * F] = {0};
    tr_bn_sums(whole, X, ROWS, F);
    tr_bn_sums(parts, X, 5, F);
    tr_bn_sums(parts, X + 5 * F, ROWS - 5, F);
    tr_bn_backward_sums(bwhole, dY, xhat, ROWS, F);
    tr_bn_backward_sums(bparts, dY, xhat, 5, F);
    tr_bn_backward_sums(bparts, dY + 5 * F, xhat + 5 * F, ROWS - 5, F);
    for (int j = 0; j < 2 * F; j++) {
        cr_expect(fabs(whole[j] - parts[j]) < 1e-9 * (1 + fabs(whole[j])));
        cr_expect(fabs(bwhole[j] - bparts[j]) < 1e-9 * (1 + fabs(bwhole[j])));
    }
    double mean0 = 0;
    for (int r = 0; r < ROWS; r++)
        mean0 += X[r * F];
    cr_expect(fabs(whole[0] - mean0) < 1e-9 && whole[F] > 0);
}

Test(dropout, mask_is_the_scalar_philox_word_against_p)
{
    /* the vectorised generator and the chunked mask against Random123 one counter at a time,
     * with unaligned offsets, rows longer than a chunk, and indices around 2^32 and 2^34 */
    enum { UNITS = 300 };
    const int64_t rows[3] = {0, 14316557, 57266230}; /* x 300 units: just below 2^32, 2^34 */
    static float mask[3 * UNITS];
    const float p = 0.37f;
    tr_dropout_mask(mask, rows, 3, UNITS, p, 99, 12, 5, 1000);
    const tr_rng rng = tr_rng_make(99);
    int mismatches = 0;
    for (int r = 0; r < 3; r++)
        for (int j = 0; j < UNITS; j++) {
            const uint64_t u = (uint64_t)rows[r] * 1000 + 5 + (uint64_t)j;
            uint32_t w[4];
            tr_rng_words(rng, TR_RNG_DROPOUT, 12, u / 4, w);
            const float want = (double)w[u % 4] < (double)p * 4294967296.0 ? 0.0f : 1.0f / (1.0f - p);
            mismatches += mask[r * UNITS + j] != want;
        }
    cr_expect_eq(mismatches, 0, "%d units differ from the scalar generator", mismatches);
    uint32_t blocks[4 * 21];
    tr_rng_blocks(rng, TR_RNG_DROPOUT, 3, (1ull << 32) - 9, 21, blocks);
    for (int i = 0; i < 21; i++) {
        uint32_t w[4];
        tr_rng_words(rng, TR_RNG_DROPOUT, 3, (1ull << 32) - 9 + (uint64_t)i, w);
        cr_expect(memcmp(w, blocks + 4 * i, sizeof w) == 0, "counter 2^32 - 9 + %d", i);
    }
}

/* The vector math (SLEEF): within 1 ULP-ish of double-precision libm everywhere it is used,
 * and the AVX-512, AVX2 and scalar-FMA paths give the same bits (so ranks on CPUs with and
 * without AVX-512 agree), whatever the position of an element (tails are padded vectors). */
Test(vmath, every_path_agrees_and_is_accurate)
{
    enum { NV = 200003 };
    float *x = malloc(NV * sizeof *x), *y = malloc(NV * sizeof *y), *ref = malloc(NV * sizeof *ref),
          *first = malloc(NV * sizeof *first);
    uint64_t s = 12345;
    for (int i = 0; i < NV; i++) { /* spread over [-30, 30] with dense small values */
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        const double u = (double)(s >> 11) / 9007199254740992.0;
        x[i] = (float)(i % 3 == 0 ? 60.0 * u - 30.0 : 8.0 * u - 4.0);
    }
    x[0] = 0.0f;
    x[1] = -0.0f;
    x[2] = 88.0f;  /* exp near overflow */
    x[3] = -104.0f; /* exp underflows to a denormal or 0 */
    typedef void (*fn)(float *, const float *, int64_t);
    const fn fns[] = {tr_vexpf, tr_vexpm1f, tr_vtanhf, tr_verff, tr_vlog1pf};
    const char *names[] = {"exp", "expm1", "tanh", "erf", "log1p"};
    const char *paths[] = {"avx512", "avx2", "fma"};
    const char *was = tr_vmath_path();
    for (int f = 0; f < 5; f++) {
        for (int i = 0; i < NV; i++) {
            const double v = f == 4 ? fabs((double)x[i]) : (double)x[i]; /* log1p on x >= 0 */
            const double r = f == 0 ? exp(v) : f == 1 ? expm1(v) : f == 2 ? tanh(v) : f == 3 ? erf(v) : log1p(v);
            ref[i] = (float)r;
        }
        float *in = malloc(NV * sizeof *in);
        for (int i = 0; i < NV; i++)
            in[i] = f == 4 ? fabsf(x[i]) : x[i];
        int have = 0;
        for (int p = 0; p < 3; p++) {
            if (!tr_vmath_select(paths[p]))
                continue;
            fns[f](y, in, NV);
            int bad = 0;
            for (int i = 0; i < NV && bad < 3; i++) {
                const double tol = (f == 2 ? 4.5e-7 : 2.5e-7) * fabs((double)ref[i]) + 1e-37; /* tanh: 3.5 ULP */
                if (!(fabs((double)y[i] - (double)ref[i]) <= tol) && !(isinf(y[i]) && isinf(ref[i]))) {
                    cr_expect(0, "%s (%s) of %.9g = %.9g, libm %.9g", names[f], paths[p], (double)in[i], (double)y[i],
                              (double)ref[i]);
                    bad++;
                }
            }
            if (have++ == 0)
                memcpy(first, y, NV * sizeof *y);
            else
                cr_expect(memcmp(first, y, NV * sizeof *y) == 0, "%s: the %s path differs from the wider one", names[f],
                          paths[p]);
            /* the tail of a short array: the same bits as inside a long one */
            float tail[5];
            fns[f](tail, in + 7, 5);
            cr_expect(memcmp(tail, y + 7, sizeof tail) == 0, "%s (%s): a padded tail differs", names[f], paths[p]);
        }
        free(in);
    }
    tr_vmath_select(was);
    free(x);
    free(y);
    free(ref);
    free(first);
}
