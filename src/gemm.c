/*
 * gemm.c: the one entry to the matrix products (gemm.h): the table of engines, the product
 * with its failure rule, the column sums, bf16 rounding, the thread policy of both libraries,
 * and the engine timings behind [train] gemm = auto.
 */
#include "trainer/gemm.h"

#include "trainer/clock.h"
#include "trainer/mem.h"
#include "gemm_engine.h"
#include "vector_kernel.h"

#include <cblas.h>
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const tr_gemm_engine_names[] = {TR_GEMM_ENGINE_MAP(TR_ENUM_NAME) NULL};
const char *const tr_precision_names[] = {TR_PRECISION_MAP(TR_ENUM_NAME) NULL};

/* Indexed by tr_gemm_engine; auto has none. */
static const tr_gemm_engine_ops *const engines[TR_GEMM_ENGINE_COUNT] = {
    [TR_GEMM_OPENBLAS] = &tr_gemm_openblas_ops,
    [TR_GEMM_ONEDNN] = &tr_gemm_onednn_ops,
};

struct tr_gemm {
    tr_gemm_engine engine;
    tr_precision precision;
    const tr_gemm_engine_ops *ops;
    void *state;
    tr_err failure; /* the first failed product's (code 0: none) */
};

bool tr_gemm_supported(tr_gemm_engine engine, tr_precision p, char *why, size_t len)
{
    if (engine <= TR_GEMM_AUTO || engine >= TR_GEMM_ENGINE_COUNT) {
        snprintf(why, len, "no such engine");
        return false;
    }
    return engines[engine]->supports(p, why, len);
}

int tr_gemm_create(tr_gemm **g, tr_gemm_engine engine, tr_precision p, tr_err *err)
{
    *g = NULL;
    char why[256];
    if (!tr_gemm_supported(engine, p, why, sizeof why))
        return tr_fail(err, TR_ECONFIG, "[train] gemm = %s, precision = %s: %s", tr_name_of(tr_gemm_engine_names, engine),
                       tr_name_of(tr_precision_names, p), why);
    tr_gemm *n = calloc(1, sizeof *n);
    if (!n)
        return tr_fail(err, TR_ENOMEM, "out of memory");
    n->engine = engine;
    n->precision = p;
    n->ops = engines[engine];
    int rc = n->ops->create(&n->state, p, err);
    if (rc) {
        free(n);
        return rc;
    }
    *g = n;
    return 0;
}

void tr_gemm_free(tr_gemm *g)
{
    if (!g)
        return;
    g->ops->destroy(g->state);
    free(g);
}

tr_gemm_engine tr_gemm_engine_of(const tr_gemm *g) { return g->engine; }
tr_precision tr_gemm_precision_of(const tr_gemm *g) { return g->precision; }

/* C (M, N) = beta C + bias: the product of an empty sum (K = 0), which BLAS may skip. */
static void empty_product(const tr_gemm_call *c)
{
    for (int64_t r = 0; r < c->M; r++)
        for (int64_t j = 0; j < c->N; j++) {
            float *x = &c->C[r * c->ldc + j];
            *x = (c->beta != 0.0f ? *x : 0.0f) + (c->bias ? c->bias[j] : 0.0f);
        }
}

void tr_gemm_product(tr_gemm *g, const tr_gemm_call *c)
{
    if (c->M <= 0 || c->N <= 0)
        return;
    if (c->K <= 0) {
        empty_product(c);
        return;
    }
    tr_err err = {0};
    if (!g->ops->product(g->state, g->precision, c, &err))
        return;
    if (!g->failure.code)
        g->failure = err;
    for (int64_t r = 0; r < c->M; r++) /* every rank's agreed finiteness check stops the step */
        for (int64_t j = 0; j < c->N; j++)
            c->C[r * c->ldc + j] = NAN;
}

void tr_gemm_column_sums(float *y, const float *A, const float *ones, int64_t M, int64_t N, float beta)
{
    if (M <= 0) {
        if (beta == 0.0f)
            memset(y, 0, (size_t)N * sizeof *y);
        return;
    }
    cblas_sgemv(CblasRowMajor, CblasTrans, (int)M, (int)N, 1.0f, A, (int)N, ones, 1, beta, y, 1);
}

int tr_gemm_failed(tr_gemm *g, tr_err *err)
{
    if (!g || !g->failure.code)
        return 0;
    const int code = tr_fail(err, g->failure.code, "%s", g->failure.msg);
    g->failure.code = 0;
    return code;
}

/* Round to nearest even on the bits: add 0x7fff plus the lowest kept bit, keep the upper half;
 * a NaN keeps its sign and becomes the quiet NaN (the addition could carry it into infinity). */
TR_VECTOR_KERNEL static void round_bits(tr_bf16 *restrict dst, const float *restrict src, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &src[i], sizeof u);
        const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
        const bool nan = (u & 0x7fffffffu) > 0x7f800000u;
        dst[i] = (tr_bf16)(nan ? ((u >> 16) | 0x40u) : rounded);
    }
}

/* The same with the CPU's own conversion (vcvtneps2bf16: nearest even, NaN quieted alike),
 * 16 values an instruction. It reads subnormal inputs as zero, so a block holding one is
 * rounded on the bits instead: the results are round_bits' to the last bit. */
__attribute__((target("avx512f,avx512bf16"))) static void round_native(tr_bf16 *restrict dst,
                                                                       const float *restrict src, size_t n)
{
    const __m512i exponent = _mm512_set1_epi32(0x7f800000), mantissa = _mm512_set1_epi32(0x007fffff);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512i u = _mm512_loadu_si512(src + i);
        const __mmask16 subnormal = _mm512_testn_epi32_mask(u, exponent) & _mm512_test_epi32_mask(u, mantissa);
        if (subnormal) {
            round_bits(dst + i, src + i, 16);
            continue;
        }
        const __m256bh h = _mm512_cvtneps_pbh(_mm512_castsi512_ps(u));
        _mm256_storeu_si256((__m256i *)(dst + i), (__m256i)h);
    }
    round_bits(dst + i, src + i, n - i);
}

void tr_bf16_round(tr_bf16 *restrict dst, const float *restrict src, size_t n)
{
    static int native = -1; /* decided once; a race only writes the same value */
    if (native < 0) {
        __builtin_cpu_init();
        native = __builtin_cpu_supports("avx512bf16") ? 1 : 0;
    }
    if (native)
        round_native(dst, src, n);
    else
        round_bits(dst, src, n);
}

float tr_bf16_to_float(tr_bf16 h)
{
    const uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

int tr_gemm_set_threads(int n)
{
    if (n > 0)
        openblas_set_num_threads(n);
    const int in_force = openblas_get_num_threads();
    omp_set_num_threads(in_force); /* the pool oneDNN computes with follows OpenBLAS's */
    return in_force;
}

tr_gemm_engine tr_gemm_fixed_choice(tr_precision p)
{
    return p == TR_PRECISION_BF16 ? TR_GEMM_ONEDNN : TR_GEMM_OPENBLAS;
}

const char *tr_gemm_describe(tr_gemm_engine engine, char *buf, size_t len)
{
    if (engine <= TR_GEMM_AUTO || engine >= TR_GEMM_ENGINE_COUNT) {
        snprintf(buf, len, "?");
        return buf;
    }
    return engines[engine]->describe(buf, len);
}

/* ---- timing the engines (gemm = auto) ---- */

/* Scratch operands for every shape: the largest of each, values in [-0.5, 0.5). */
typedef struct scratch {
    void *A, *B;
    float *C, *bias;
} scratch;

static void scratch_free(scratch *s)
{
    tr_big_free(s->A);
    tr_big_free(s->B);
    tr_big_free(s->C);
    tr_big_free(s->bias);
}

static int scratch_init(scratch *s, const tr_gemm_shape *shapes, int n, tr_precision p, tr_err *err)
{
    memset(s, 0, sizeof *s);
    size_t a = 1, b = 1, c = 1, nb = 1;
    for (int i = 0; i < n; i++) {
        const tr_gemm_shape *x = &shapes[i];
        a = (size_t)(x->M * x->K) > a ? (size_t)(x->M * x->K) : a;
        b = (size_t)(x->K * x->N) > b ? (size_t)(x->K * x->N) : b;
        c = (size_t)(x->M * x->N) > c ? (size_t)(x->M * x->N) : c;
        nb = (size_t)x->N > nb ? (size_t)x->N : nb;
    }
    const size_t in = p == TR_PRECISION_BF16 ? sizeof(tr_bf16) : sizeof(float);
    s->A = tr_big_alloc(a * in);
    s->B = tr_big_alloc(b * in);
    s->C = tr_big_alloc(c * sizeof(float));
    s->bias = tr_big_alloc(nb * sizeof(float));
    float *f = tr_big_alloc((a > b ? a : b) * sizeof(float));
    if (!s->A || !s->B || !s->C || !s->bias || !f) {
        tr_big_free(f);
        scratch_free(s);
        return tr_fail(err, TR_ENOMEM, "out of memory for the engine timings");
    }
    uint32_t x = 12345u;
    for (size_t i = 0; i < (a > b ? a : b); i++) {
        x = x * 1664525u + 1013904223u;
        f[i] = (float)(x >> 8) / 16777216.0f - 0.5f;
    }
    if (p == TR_PRECISION_BF16) {
        tr_bf16_round(s->A, f, a);
        tr_bf16_round(s->B, f, b);
    } else {
        memcpy(s->A, f, a * sizeof(float));
        memcpy(s->B, f, b * sizeof(float));
    }
    tr_big_free(f);
    return 0;
}

/* One pass over the shapes; seconds. */
static double timed_pass(tr_gemm *g, const scratch *s, const tr_gemm_shape *shapes, int n)
{
    const double t0 = tr_seconds();
    for (int i = 0; i < n; i++) {
        const tr_gemm_shape *x = &shapes[i];
        tr_gemm_product(g, &(tr_gemm_call){.ta = x->ta, .tb = x->tb, .M = x->M, .N = x->N, .K = x->K,
                                           .A = s->A, .lda = x->ta ? x->M : x->K,
                                           .B = s->B, .ldb = x->tb ? x->K : x->N,
                                           .bias = x->bias ? s->bias : NULL, .beta = x->beta,
                                           .C = s->C, .ldc = x->N});
    }
    return tr_seconds() - t0;
}

int tr_gemm_time_engines(const tr_gemm_shape *shapes, int n, tr_precision p, double seconds[TR_GEMM_ENGINE_COUNT],
                         tr_err *err)
{
    enum { PASSES = 3 };
    const double budget = 0.05; /* seconds of timed passes per engine, after the first */
    tr_gemm *g[TR_GEMM_ENGINE_COUNT] = {NULL};
    scratch s;
    const int no_scratch = scratch_init(&s, shapes, n, p, err);
    int rc = no_scratch;
    for (int e = 0; e < TR_GEMM_ENGINE_COUNT; e++) {
        seconds[e] = INFINITY;
        char why[256];
        if (rc || e == TR_GEMM_AUTO || !tr_gemm_supported((tr_gemm_engine)e, p, why, sizeof why))
            continue;
        rc = tr_gemm_create(&g[e], (tr_gemm_engine)e, p, err);
        if (!rc)
            timed_pass(g[e], &s, shapes, n); /* warm-up: oneDNN builds its primitives */
        if (!rc)
            rc = tr_gemm_failed(g[e], err);
    }
    /* the engines in turn, so a drifting machine treats them alike */
    double spent = 0.0;
    for (int k = 0; !rc && k < PASSES && (k == 0 || spent < budget); k++)
        for (int e = 0; e < TR_GEMM_ENGINE_COUNT; e++) {
            if (!g[e])
                continue;
            const double t = timed_pass(g[e], &s, shapes, n);
            spent += t / 2;
            if (t < seconds[e])
                seconds[e] = t;
        }
    for (int e = 0; e < TR_GEMM_ENGINE_COUNT; e++) {
        if (!rc && g[e])
            rc = tr_gemm_failed(g[e], err);
        tr_gemm_free(g[e]);
    }
    if (!no_scratch)
        scratch_free(&s);
    return rc;
}
