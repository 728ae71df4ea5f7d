/*
 * test_gemm.c: the GEMM layer: bf16 rounding against an independent reference, every engine
 * in every precision it offers against plain loops over transpositions, leading dimensions,
 * bias and accumulation, the model's bf16 wiring (which operands are rounded where), the
 * refusal of bf16 where the CPU has none, and the engine timings of gemm = auto.
 */
#include "test_util.h"
#include "trainer/gemm.h"
#include "trainer/half.h"
#include "trainer/model.h"

#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint32_t bits_of(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float float_of(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* The nearest bf16 by comparing distances in double (ties: the even upper half). */
static uint16_t nearest_bf16(uint32_t u)
{
    const float x = float_of(u);
    if (isnan(x))
        return 0; /* checked separately */
    const uint32_t lo = u & 0xffff0000u, hi = lo + 0x10000u; /* toward zero, and one step away */
    const double dl = fabs((double)x - (double)float_of(lo));
    /* one step past bf16's largest value is 2^128, where the rounding to infinity begins */
    const double dh = isinf(float_of(hi)) && !isinf(x) ? ldexp(1.0, 128) - fabs((double)x)
                                                        : fabs((double)float_of(hi) - (double)x);
    if (dl < dh)
        return (uint16_t)(lo >> 16);
    if (dh < dl)
        return (uint16_t)(hi >> 16);
    return (uint16_t)(((lo >> 16) & 1) ? hi >> 16 : lo >> 16);
}

Test(bf16, rounding_is_nearest_even_and_keeps_nan_and_infinity)
{
    const struct {
        uint32_t in;
        uint16_t out;
    } cases[] = {
        {0x3f800000u, 0x3f80}, /* 1 */
        {0x3f808000u, 0x3f80}, /* 1 + 2^-8: a tie, to the even 1 */
        {0x3f818000u, 0x3f82}, /* a tie above an odd value: up */
        {0x3f808001u, 0x3f81}, /* just above a tie: up */
        {0x3f807fffu, 0x3f80}, /* just below: down */
        {0xbf818000u, 0xbf82}, /* negative: the same on the magnitude */
        {0x7f800000u, 0x7f80}, /* +inf */
        {0xff800000u, 0xff80}, /* -inf */
        {0x7f7fffffu, 0x7f80}, /* FLT_MAX rounds past bf16's largest: inf */
        {0x00000001u, 0x0000}, /* the smallest subnormal: to zero */
        {0x80000000u, 0x8000}, /* -0 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const float x = float_of(cases[i].in);
        tr_bf16 h;
        tr_bf16_round(&h, &x, 1);
        cr_expect_eq(h, cases[i].out, "0x%08x -> 0x%04x, want 0x%04x", cases[i].in, h, cases[i].out);
    }
    const uint32_t nans[] = {0x7fc00000u, 0x7f800001u, 0xffffffffu, 0x7fffffffu};
    for (size_t i = 0; i < sizeof nans / sizeof nans[0]; i++) {
        const float x = float_of(nans[i]);
        tr_bf16 h;
        tr_bf16_round(&h, &x, 1);
        cr_expect(isnan(tr_bf16_to_float(h)), "NaN 0x%08x -> 0x%04x is not a NaN", nans[i], h);
        cr_expect_eq(h >> 15, nans[i] >> 31, "NaN 0x%08x lost its sign", nans[i]);
    }
    /* a million bit patterns over the whole range, through the vector kernel at once */
    enum { N = 1 << 20 };
    float *x = malloc(N * sizeof *x);
    tr_bf16 *h = malloc(N * sizeof *h);
    cr_assert(x && h);
    uint64_t s = 88172645463325252u;
    for (int i = 0; i < N; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        uint32_t u = (uint32_t)s;
        if (i % 4 == 0) /* many exact ties */
            u = (u & 0xffff0000u) | 0x8000u;
        x[i] = float_of(u);
    }
    tr_bf16_round(h, x, N);
    int bad = 0;
    for (int i = 0; i < N && bad < 5; i++) { /* one value at a time: the bit-level path, not the CPU's */
        tr_bf16 one;
        tr_bf16_round(&one, &x[i], 1);
        if (one != h[i]) {
            bad++;
            cr_expect_eq(one, h[i], "0x%08x: alone 0x%04x, in a block 0x%04x", bits_of(x[i]), one, h[i]);
        }
    }
    for (int i = 0; i < N && bad < 5; i++) {
        if (isnan(x[i])) {
            bad += !isnan(tr_bf16_to_float(h[i]));
            continue;
        }
        const uint16_t want = nearest_bf16(bits_of(x[i]));
        if (h[i] != want) {
            bad++;
            cr_expect_eq(h[i], want, "0x%08x -> 0x%04x, want 0x%04x", bits_of(x[i]), h[i], want);
        }
    }
    cr_expect_eq(bad, 0);
    free(x);
    free(h);
}

/* C (M, N) = op(A) op(B) + bias + beta C in double, from the operands as the engine reads
 * them (bf16: their rounded values); bound[i] = sum of |terms| of each result. */
static void reference(double *C, double *bound, const tr_gemm_call *c, const float *Af, const float *Bf,
                      const float *C0)
{
    for (int64_t i = 0; i < c->M; i++)
        for (int64_t j = 0; j < c->N; j++) {
            double s = 0.0, b = 0.0;
            for (int64_t k = 0; k < c->K; k++) {
                const double a = Af[c->ta ? k * c->lda + i : i * c->lda + k];
                const double w = Bf[c->tb ? j * c->ldb + k : k * c->ldb + j];
                s += a * w;
                b += fabs(a * w);
            }
            if (c->bias) {
                s += c->bias[j];
                b += fabs(c->bias[j]);
            }
            if (c->beta != 0.0f) {
                s += C0[i * c->ldc + j];
                b += fabs(C0[i * c->ldc + j]);
            }
            C[i * c->N + j] = s;
            bound[i * c->N + j] = b;
        }
}

/* One engine and precision on one shape: the result against reference() within the error of
 * an fp32 accumulation ((K + 3) float roundings of the terms' magnitudes). */
static void check_product(tr_gemm *g, tr_precision p, bool ta, bool tb, int64_t M, int64_t N, int64_t K, int64_t pad,
                          bool bias, float beta, uint64_t seed)
{
    const int64_t lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
    const size_t na = (size_t)((ta ? K : M) * lda) + 1, nb = (size_t)((tb ? N : K) * ldb) + 1,
                 nc = (size_t)(M * ldc) + 1;
    float *Af = malloc(na * sizeof *Af), *Bf = malloc(nb * sizeof *Bf), *C = malloc(nc * sizeof *C);
    float *C0 = malloc(nc * sizeof *C0), *bv = malloc((size_t)N * sizeof *bv + 4);
    tr_bf16 *Ah = malloc(na * sizeof *Ah), *Bh = malloc(nb * sizeof *Bh);
    double *R = malloc((size_t)(M * N) * sizeof *R + 8), *bound = malloc((size_t)(M * N) * sizeof *bound + 8);
    cr_assert(Af && Bf && C && C0 && bv && Ah && Bh && R && bound);
    fill_uniform(Af, na, -1, 1, seed);
    fill_uniform(Bf, nb, -1, 1, seed + 1);
    fill_uniform(C0, nc, -1, 1, seed + 2);
    fill_uniform(bv, (size_t)N, -1, 1, seed + 3);
    const bool half = p == TR_PRECISION_BF16;
    if (half) { /* the reference reads the values the engine reads */
        tr_bf16_round(Ah, Af, na);
        tr_bf16_round(Bh, Bf, nb);
        for (size_t i = 0; i < na; i++)
            Af[i] = tr_bf16_to_float(Ah[i]);
        for (size_t i = 0; i < nb; i++)
            Bf[i] = tr_bf16_to_float(Bh[i]);
    }
    memcpy(C, C0, nc * sizeof *C);
    const tr_gemm_call call = {.ta = ta, .tb = tb, .M = M, .N = N, .K = K, .A = half ? (void *)Ah : (void *)Af,
                               .lda = lda, .B = half ? (void *)Bh : (void *)Bf, .ldb = ldb,
                               .bias = bias ? bv : NULL, .beta = beta, .C = C, .ldc = ldc};
    tr_gemm_product(g, &call);
    cr_assert_eq(tr_gemm_failed(g, NULL), 0);
    reference(R, bound, &call, Af, Bf, C0);
    int bad = 0;
    for (int64_t i = 0; i < M && bad < 3; i++)
        for (int64_t j = 0; j < N && bad < 3; j++) {
            const double got = C[i * ldc + j], want = R[i * N + j];
            const double tol = (double)(K + 3) * FLT_EPSILON * bound[i * N + j] + 1e-30;
            if (fabs(got - want) > tol) {
                bad++;
                cr_expect(0, "%s %s ta %d tb %d M %lld N %lld K %lld pad %lld bias %d beta %g: C[%lld,%lld] = %.9g, "
                             "want %.9g (tolerance %.3g)",
                          tr_name_of(tr_gemm_engine_names, tr_gemm_engine_of(g)), tr_name_of(tr_precision_names, p), ta,
                          tb, (long long)M, (long long)N, (long long)K, (long long)pad, bias, (double)beta,
                          (long long)i, (long long)j, got, want, tol);
            }
        }
    /* the padding between rows of C is not written */
    for (int64_t i = 0; i < M && pad > 0; i++)
        for (int64_t j = N; j < ldc; j++)
            cr_expect_eq(bits_of(C[i * ldc + j]), bits_of(C0[i * ldc + j]), "padding C[%lld,%lld] written",
                         (long long)i, (long long)j);
    free(Af), free(Bf), free(C), free(C0), free(bv), free(Ah), free(Bh), free(R), free(bound);
}

/* fp16's value of bits h, from its fields with ldexp (not the code under test). */
static double fp16_value(uint16_t h)
{
    const int e = (h >> 10) & 0x1f, m = h & 0x3ff;
    const double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(1024 + m, e - 25);
    return h & 0x8000 ? -v : v;
}

/* The nearest fp16 by distances in double (ties: the even one; from 65520 up: infinity, the
 * tie between 65504 and the next step 65536 going to the even 65536 = infinity). */
static uint16_t nearest_fp16(float x)
{
    const uint16_t sign = signbit(x) ? 0x8000 : 0;
    const double a = fabs((double)x);
    if (a >= 65520.0)
        return sign | 0x7c00;
    uint16_t lo = 0, hi = 0x7bff; /* the largest finite value not above a, by bisection */
    while (lo < hi) {
        const uint16_t mid = (uint16_t)((lo + hi + 1) / 2);
        if (fp16_value(mid) <= a)
            lo = mid;
        else
            hi = (uint16_t)(mid - 1);
    }
    const uint16_t up = (uint16_t)(lo + 1);
    const double dl = a - fp16_value(lo), du = up == 0x7c00 ? 65536.0 - a : fp16_value(up) - a;
    return sign | (dl < du ? lo : du < dl ? up : (lo & 1) ? up : lo);
}

Test(fp16, rounding_is_nearest_even_widening_exact_for_every_value)
{
    /* every fp16 value widens to its value, and rounds back to itself */
    for (uint32_t h = 0; h < 65536; h++) {
        const uint16_t b = (uint16_t)h;
        float f;
        tr_fp16_widen(&f, &b, 1);
        const double want = fp16_value(b);
        if (isnan(want)) {
            cr_expect(isnan(f) && (signbit(f) != 0) == (h >> 15 != 0), "0x%04x: widened to %g", h, f);
            continue;
        }
        cr_expect((double)f == want && (signbit(f) != 0) == (h >> 15 != 0), "0x%04x: widened to %.9g, want %.9g", h, f, want);
        uint16_t back;
        tr_fp16_round(&back, &f, 1);
        cr_expect_eq(back, b, "0x%04x: round trip gives 0x%04x", h, back);
    }
    const struct {
        float in;
        uint16_t out;
    } cases[] = {
        {1.0f, 0x3c00},           {1.0f + 0x1p-11f, 0x3c00}, /* a tie, to the even 1 */
        {1.0f + 0x3p-11f, 0x3c02}, /* a tie above an odd value: up */
        {65504.0f, 0x7bff},       {65519.99f, 0x7bff},       {65520.0f, 0x7c00}, /* the start of infinity */
        {-65520.0f, 0xfc00},      {INFINITY, 0x7c00},        {0x1p-24f, 0x0001}, /* the smallest subnormal */
        {0x1p-25f, 0x0000},       /* half of it: a tie, to zero */
        {0x3p-26f, 0x0001},       /* above the tie */
        {0x3p-25f, 0x0002},       /* 1.5 units: a tie, to the even 2 */
        {0x1p-14f, 0x0400},       /* the smallest normal */
        {0x1.ff8p-15f, 0x03ff},   /* the largest subnormal */
        {0x1.ffcp-15f, 0x0400},   /* its tie with the smallest normal: up to the even one */
        {-0.0f, 0x8000},          {1e-30f, 0x0000},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t h;
        tr_fp16_round(&h, &cases[i].in, 1);
        cr_expect_eq(h, cases[i].out, "%a -> 0x%04x, want 0x%04x", cases[i].in, h, cases[i].out);
    }
    const uint32_t nans[] = {0x7fc00000u, 0x7f800001u, 0xffffffffu, 0x7fffffffu};
    for (size_t i = 0; i < 4; i++) {
        const float x = float_of(nans[i]);
        uint16_t h[8];
        float xs[8] = {x, x, x, x, x, x, x, x};
        tr_fp16_round(h, xs, 8);      /* the CPU's conversion */
        tr_fp16_round(h + 1, &x, 1);  /* the bits */
        cr_expect(h[0] == h[1], "NaN 0x%08x: 0x%04x in a block, 0x%04x alone", nans[i], h[0], h[1]);
        cr_expect(isnan(fp16_value(h[0])) && (h[0] >> 15) == (nans[i] >> 31), "NaN 0x%08x -> 0x%04x", nans[i], h[0]);
    }
    /* a million floats around fp16's range, half of them ties, in a block and one at a time */
    enum { N = 1 << 20 };
    float *x = malloc(N * sizeof *x);
    uint16_t *h = malloc(N * sizeof *h);
    cr_assert(x && h);
    uint64_t s = 88172645463325252u;
    for (int i = 0; i < N; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        /* exponents 2^-28 .. 2^17, either sign */
        uint32_t u = (uint32_t)(s & 0x807fffffu) | ((uint32_t)(99 + (s >> 32) % 46) << 23);
        if (i % 2 == 0) /* a tie at fp16's precision where the value is normal there */
            u = (u & ~0x1fffu) | 0x1000u;
        x[i] = float_of(u);
    }
    tr_fp16_round(h, x, N);
    int bad = 0;
    for (int i = 0; i < N && bad < 5; i++) {
        uint16_t one;
        tr_fp16_round(&one, &x[i], 1);
        const uint16_t want = nearest_fp16(x[i]);
        if (one != h[i] || h[i] != want) {
            bad++;
            cr_expect(0, "%a: block 0x%04x, alone 0x%04x, nearest 0x%04x", x[i], h[i], one, want);
        }
    }
    free(x);
    free(h);
}

Test(fp16, compressed_sums_round_the_float_sum_once)
{
    enum { N = 1000 };
    float a[N], b[N];
    uint64_t s = 1234567u;
    for (int i = 0; i < N; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        a[i] = (float)((double)(s % 20001) - 10000.0) * 0.37f;
        b[i] = (float)((double)((s >> 20) % 20001) - 10000.0) * (i < 10 ? 7.0f : 0.013f); /* some overflow fp16 */
    }
    for (int kind = TR_COMPRESS_BF16; kind <= TR_COMPRESS_FP16; kind++) {
        uint16_t ha[N], hb[N], want[N];
        float wa[N], wb[N], sum[N];
        tr_half_round((tr_compression)kind, ha, a, N);
        tr_half_round((tr_compression)kind, hb, b, N);
        tr_half_widen((tr_compression)kind, wa, ha, N);
        tr_half_widen((tr_compression)kind, wb, hb, N);
        for (int i = 0; i < N; i++)
            sum[i] = wa[i] + wb[i];
        tr_half_round((tr_compression)kind, want, sum, N);
        for (int i = 0; i < N; i++) /* the reference rounding, value by value */
            cr_assert_eq(want[i], kind == TR_COMPRESS_FP16 ? nearest_fp16(sum[i]) : nearest_bf16(bits_of(sum[i])),
                         "%s: %g", tr_compression_names[kind], sum[i]);
        tr_half_sum((tr_compression)kind, ha, hb, N);
        cr_expect(memcmp(ha, want, sizeof want) == 0, "%s: the sum differs from round(a + b)",
                  tr_compression_names[kind]);
    }
}

Test(gemm, every_engine_matches_plain_loops_in_every_layout)
{
    const int64_t sizes[][3] = {{1, 1, 1}, {7, 13, 5}, {33, 17, 64}, {128, 10, 128}, {10, 128, 3}, {5, 9, 0}};
    int engines_checked = 0;
    for (int e = TR_GEMM_AUTO + 1; e < TR_GEMM_ENGINE_COUNT; e++)
        for (int p = 0; p < TR_PRECISION_COUNT; p++) {
            char why[256];
            if (!tr_gemm_supported((tr_gemm_engine)e, (tr_precision)p, why, sizeof why))
                continue;
            tr_gemm *g;
            cr_assert_eq(tr_gemm_create(&g, (tr_gemm_engine)e, (tr_precision)p, NULL), 0);
            engines_checked++;
            uint64_t seed = 100;
            for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
                for (int t = 0; t < 4; t++)
                    for (int v = 0; v < 3; v++) /* plain; padded rows + accumulate; bias */
                        check_product(g, (tr_precision)p, t & 1, t >> 1, sizes[s][0], sizes[s][1], sizes[s][2],
                                      v == 1 ? 3 : 0, v == 2, v == 1 ? 1.0f : 0.0f, seed += 10);
            tr_gemm_free(g);
        }
    cr_expect_geq(engines_checked, 2, "at least openblas and onednn in fp32");
}

Test(gemm, bf16_is_refused_where_the_cpu_has_no_bf16_products)
{
    char why[256] = "";
    cr_expect(!tr_gemm_supported(TR_GEMM_OPENBLAS, TR_PRECISION_BF16, why, sizeof why));
    cr_expect(strstr(why, "fp32 only"), "%s", why);
    /* oneDNN reads the limit once, at its first use: this test's process has not used it yet */
    setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE", 1);
    cr_expect(!tr_gemm_supported(TR_GEMM_ONEDNN, TR_PRECISION_BF16, why, sizeof why));
    cr_expect(strstr(why, "no native bf16"), "%s", why);
    cr_expect(strstr(why, "ONEDNN_MAX_CPU_ISA"), "%s", why);
    tr_gemm *g = NULL;
    tr_err err = {0};
    cr_expect_eq(tr_gemm_create(&g, TR_GEMM_ONEDNN, TR_PRECISION_BF16, &err), TR_ECONFIG);
    cr_expect(strstr(err.msg, "precision = bf16"), "%s", err.msg);
    cr_expect_null(g);
    cr_expect(tr_gemm_supported(TR_GEMM_ONEDNN, TR_PRECISION_FP32, why, sizeof why), "fp32 stays available");
}

Test(gemm, timings_cover_each_engine_that_can_compute_the_precision)
{
    const tr_gemm_shape shapes[] = {{.tb = true, .M = 32, .N = 64, .K = 48, .bias = true},
                                    {.ta = true, .M = 64, .N = 48, .K = 32, .beta = 1.0f},
                                    {.M = 32, .N = 48, .K = 64}};
    double sec[TR_GEMM_ENGINE_COUNT];
    cr_assert_eq(tr_gemm_time_engines(shapes, 3, TR_PRECISION_FP32, sec, NULL), 0);
    cr_expect(isfinite(sec[TR_GEMM_OPENBLAS]) && sec[TR_GEMM_OPENBLAS] > 0.0);
    cr_expect(isfinite(sec[TR_GEMM_ONEDNN]) && sec[TR_GEMM_ONEDNN] > 0.0);
    cr_expect(isinf(sec[TR_GEMM_AUTO]));
    cr_assert_eq(tr_gemm_time_engines(shapes, 3, TR_PRECISION_BF16, sec, NULL), 0);
    cr_expect(isinf(sec[TR_GEMM_OPENBLAS]), "openblas has no bf16");
    char why[256];
    cr_expect_eq(isfinite(sec[TR_GEMM_ONEDNN]), tr_gemm_supported(TR_GEMM_ONEDNN, TR_PRECISION_BF16, why, sizeof why));
    cr_expect_eq(tr_gemm_fixed_choice(TR_PRECISION_FP32), TR_GEMM_OPENBLAS);
    cr_expect_eq(tr_gemm_fixed_choice(TR_PRECISION_BF16), TR_GEMM_ONEDNN);
}

/* ------------------------------------------------------------------ the model in bf16 -- */

static void round_in_place(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        tr_bf16 h;
        tr_bf16_round(&h, &x[i], 1);
        x[i] = tr_bf16_to_float(h);
    }
}

/* The model's bf16 forward and backward against the same passes in plain loops on operands
 * rounded where the model's definition rounds them: W and each layer's input in the forward
 * pass, dZ once per layer in backward (dW from dZ and the rounded input, dX from dZ and the
 * rounded W); everything else float. */
Test(gemm, model_in_bf16_rounds_exactly_the_products_operands)
{
    char why[256];
    if (!tr_gemm_supported(TR_GEMM_ONEDNN, TR_PRECISION_BF16, why, sizeof why))
        cr_skip_test("%s", why);
    enum { B = 9, L = 3 };
    const int64_t w[L + 1] = {6, 11, 7, 4};
    tr_model_config c;
    memset(&c, 0, sizeof c);
    c.n_layers = L;
    for (int i = 0; i <= L; i++)
        c.widths[i] = w[i];
    for (int i = 0; i < L; i++) {
        c.act[i] = i < L - 1 ? TR_ACT_TANH : TR_ACT_IDENTITY;
        c.weight_init[i] = c.bias_init[i] = (tr_init_spec){.scheme = TR_INIT_DEFAULT, .b = 1, .std = 1, .gain = 1};
    }
    c.bias = true;
    tr_model m;
    cr_assert_eq(tr_model_init(&m, &c, B, NULL), 0);
    tr_model_init_params(&m, 5);
    cr_assert_eq(tr_model_set_gemm(&m, TR_GEMM_ONEDNN, TR_PRECISION_BF16, NULL), 0);
    float X[B * 6], dOut[B * 4];
    fill_uniform(X, B * 6, -2, 2, 11);
    fill_uniform(dOut, B * 4, -1, 1, 12);

    float Z[L][B * 11], A[L][B * 11], Wr[L][11 * 11], in_r[L][B * 11];
    const float *in = X;
    for (int l = 0; l < L; l++) {
        const int64_t Ni = w[l], No = w[l + 1];
        memcpy(Wr[l], m.layer[l].W, (size_t)(No * Ni) * sizeof(float));
        memcpy(in_r[l], in, (size_t)(B * Ni) * sizeof(float));
        round_in_place(Wr[l], (size_t)(No * Ni));
        round_in_place(in_r[l], (size_t)(B * Ni));
        tr_dense_forward_ref(Z[l], in_r[l], Wr[l], m.layer[l].b, B, Ni, No);
        tr_act_forward(A[l], Z[l], B, No, c.act[l], &c.act_params);
        in = A[l];
    }
    const float *out = tr_model_forward(&m, X, B, NULL);
    for (int64_t i = 0; i < B * 4; i++)
        cr_expect(fabsf(out[i] - A[L - 1][i]) <= 2e-6f * (1 + fabsf(A[L - 1][i])), "out[%lld] %.9g vs %.9g",
                  (long long)i, out[i], A[L - 1][i]);
    /* the same outputs in fp32 differ: the bf16 path really rounds */
    tr_model f;
    cr_assert_eq(tr_model_init(&f, &c, B, NULL), 0);
    memcpy(f.params, m.params, m.n_params * sizeof(float));
    const float *out32 = tr_model_forward(&f, X, B, NULL);
    double diff = 0.0;
    for (int64_t i = 0; i < B * 4; i++)
        diff += fabs((double)out32[i] - out[i]);
    cr_expect(diff > 1e-4, "bf16 outputs equal the fp32 ones (sum of differences %g)", diff);
    tr_model_free(&f);

    float dW[L][11 * 11], db[L][11], dZ[B * 11], dX[B * 11];
    memset(dW, 0, sizeof dW);
    memset(db, 0, sizeof db);
    memcpy(dZ, dOut, sizeof dOut);
    for (int l = L - 1; l >= 0; l--) {
        const int64_t Ni = w[l], No = w[l + 1];
        float dZr[B * 11];
        memcpy(dZr, dZ, (size_t)(B * No) * sizeof(float));
        round_in_place(dZr, (size_t)(B * No));
        tr_dense_backward_ref(l ? dX : NULL, dW[l], NULL, dZr, in_r[l], Wr[l], B, Ni, No);
        for (int64_t o = 0; o < No; o++) /* the bias gradient sums the float dZ */
            for (int64_t r = 0; r < B; r++)
                db[l][o] += dZ[r * No + o];
        if (l)
            tr_act_backward(dZ, dX, Z[l - 1], A[l - 1], B, Ni, c.act[l - 1], &c.act_params);
    }
    float dcopy[B * 4];
    memcpy(dcopy, dOut, sizeof dOut);
    tr_model_backward(&m, m.grads, X, dcopy, B, false, NULL);
    for (int l = 0; l < L; l++) {
        for (int64_t i = 0; i < w[l] * w[l + 1]; i++)
            cr_expect(fabsf(m.layer[l].dW[i] - dW[l][i]) <= 2e-6f * (1 + fabsf(dW[l][i])), "dW%d[%lld] %.9g vs %.9g",
                      l, (long long)i, m.layer[l].dW[i], dW[l][i]);
        for (int64_t i = 0; i < w[l + 1]; i++)
            cr_expect(fabsf(m.layer[l].db[i] - db[l][i]) <= 2e-6f * (1 + fabsf(db[l][i])), "db%d[%lld]", l,
                      (long long)i);
    }
    tr_model_free(&m);
}
