/*
 * peak.c: the FMA peak of one core (peak.h). Each loop keeps sixteen accumulators in
 * registers and updates each once per iteration, so the chains never wait on each other and
 * the loop runs at the FMA units' throughput; the best of three timed runs counts. The
 * kernels are compiled for their instruction set only and called after a CPU check.
 */
#include "trainer/peak.h"

#include "trainer/clock.h"

#include <immintrin.h>
#include <stdint.h>

enum { CHAINS = 16 };

/* Keeps a result alive without a memory store inside the loop. */
static volatile float sink;

#define TIMED_LOOP(type, init, step, reduce)                                                                           \
    do {                                                                                                               \
        type acc[CHAINS];                                                                                              \
        for (int i = 0; i < CHAINS; i++)                                                                               \
            acc[i] = init;                                                                                             \
        for (int64_t k = 0; k < iters; k++) {                                                                          \
            _Pragma("GCC unroll 16") for (int i = 0; i < CHAINS; i++) acc[i] = step;                                   \
        }                                                                                                              \
        float s = 0.0f;                                                                                                \
        for (int i = 0; i < CHAINS; i++)                                                                               \
            s += reduce;                                                                                               \
        sink = s;                                                                                                      \
    } while (0)

__attribute__((target("avx512f"))) static double fp32_avx512(int64_t iters)
{
    const __m512 x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-7f);
    const double t0 = tr_seconds();
    TIMED_LOOP(__m512, _mm512_set1_ps((float)i), _mm512_fmadd_ps(acc[i], x, y), _mm512_reduce_add_ps(acc[i]));
    return (double)iters * CHAINS * 16 * 2 / (tr_seconds() - t0) / 1e9;
}

__attribute__((target("avx2,fma"))) static double fp32_avx2(int64_t iters)
{
    const __m256 x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-7f);
    const double t0 = tr_seconds();
    TIMED_LOOP(__m256, _mm256_set1_ps((float)i), _mm256_fmadd_ps(acc[i], x, y), acc[i][0]);
    return (double)iters * CHAINS * 8 * 2 / (tr_seconds() - t0) / 1e9;
}

__attribute__((target("avx512f,avx512bf16"))) static double bf16_avx512(int64_t iters)
{
    const __m512bh x = (__m512bh)_mm512_set1_epi16(0x3f80), y = (__m512bh)_mm512_set1_epi16(0x3380);
    const double t0 = tr_seconds();
    TIMED_LOOP(__m512, _mm512_set1_ps((float)i), _mm512_dpbf16_ps(acc[i], x, y), _mm512_reduce_add_ps(acc[i]));
    return (double)iters * CHAINS * 32 * 2 / (tr_seconds() - t0) / 1e9;
}

static double best_of_three(double (*loop)(int64_t))
{
    const int64_t iters = 4000000; /* 64M instructions: 20-40 ms at one or two a cycle */
    double best = 0.0;
    for (int r = 0; r < 3; r++) {
        const double g = loop(iters);
        best = g > best ? g : best;
    }
    return best;
}

void tr_peak_measure(tr_peak *p)
{
    __builtin_cpu_init();
    *p = (tr_peak){.fp32_isa = "scalar"};
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        p->fp32_gflops = best_of_three(fp32_avx2);
        p->fp32_isa = "avx2+fma";
    }
    if (__builtin_cpu_supports("avx512f")) {
        const double g = best_of_three(fp32_avx512);
        if (g > p->fp32_gflops) {
            p->fp32_gflops = g;
            p->fp32_isa = "avx512f";
        }
    }
    if (__builtin_cpu_supports("avx512bf16"))
        p->bf16_gflops = best_of_three(bf16_avx512);
}
