/*
 * half.c: the 16-bit float formats of compressed gradients (half.h). fp16 rounding on the
 * bits (nearest even through one float addition for the subnormal range) or with the CPU's
 * F16C conversion (the same bits, 8 values an instruction); bf16 rounding is gemm.c's.
 */
#include "trainer/half.h"

#include "trainer/gemm.h"
#include "vector_kernel.h"

#include <stdbool.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

const char *const tr_compression_names[] = {TR_COMPRESSION_MAP(TR_ENUM_NAME) NULL};

/* One float's bits to fp16: NaN keeps its sign and the top of its payload, quieted; from
 * 65520 up the rounding carries into the infinite exponent; normal values re-biased and
 * rounded on the 13 dropped bits; below 2^-14 the float addition of 0.5 lines the value's
 * bits up with fp16's subnormal unit (2^-24) and rounds them to nearest even. */
static uint16_t fp16_of(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    const uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    const uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u)
        return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
    if (a >= 0x47800000u) /* 65536 and beyond, infinity included */
        return (uint16_t)(sign | 0x7c00u);
    if (a >= 0x38800000u) { /* 2^-14: fp16's smallest normal */
        const uint32_t v = a - 0x38000000u; /* exponent bias 127 -> 15 */
        return (uint16_t)(sign | ((v + 0xfffu + ((v >> 13) & 1u)) >> 13));
    }
    float f;
    memcpy(&f, &a, sizeof f);
    f += 0.5f;
    uint32_t t;
    memcpy(&t, &f, sizeof t);
    return (uint16_t)(sign | (t - 0x3f000000u));
}

static float float_of_fp16(uint16_t h)
{
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    uint32_t u;
    if (e == 0x1f) {
        u = sign | 0x7f800000u | (m << 13);
    } else if (e != 0) {
        u = sign | ((e + 112u) << 23) | (m << 13);
    } else { /* zero or subnormal: m x 2^-24, exact in float */
        float f = (float)m * 0x1p-24f;
        memcpy(&u, &f, sizeof u);
        u |= sign;
    }
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

TR_VECTOR_KERNEL static void fp16_round_bits(uint16_t *restrict dst, const float *restrict src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = fp16_of(src[i]);
}

TR_VECTOR_KERNEL static void fp16_widen_bits(float *restrict dst, const uint16_t *restrict src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = float_of_fp16(src[i]);
}

#if defined(__x86_64__)
__attribute__((target("avx,f16c"))) static void fp16_round_native(uint16_t *restrict dst, const float *restrict src,
                                                                  size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(void *)(dst + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    fp16_round_bits(dst + i, src + i, n - i);
}

__attribute__((target("avx,f16c"))) static void fp16_widen_native(float *restrict dst, const uint16_t *restrict src,
                                                                  size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(src + i))));
    fp16_widen_bits(dst + i, src + i, n - i);
}

/* AVX (whose check includes the OS's saving of the ymm registers) and F16C (CPUID leaf 1,
 * ECX; clang's __builtin_cpu_supports does not know "f16c"). */
static bool has_f16c(void)
{
    static int yes = -1; /* decided once; a race only writes the same value */
    if (yes < 0) {
        unsigned int a, b, c, d;
        __builtin_cpu_init();
        yes = __builtin_cpu_supports("avx") && __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
    }
    return yes;
}
#endif

void tr_fp16_round(uint16_t *dst, const float *src, size_t n)
{
#if defined(__x86_64__)
    if (has_f16c()) {
        fp16_round_native(dst, src, n);
        return;
    }
#endif
    fp16_round_bits(dst, src, n);
}

void tr_fp16_widen(float *dst, const uint16_t *src, size_t n)
{
#if defined(__x86_64__)
    if (has_f16c()) {
        fp16_widen_native(dst, src, n);
        return;
    }
#endif
    fp16_widen_bits(dst, src, n);
}

TR_VECTOR_KERNEL static void bf16_widen_bits(float *restrict dst, const uint16_t *restrict src, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const uint32_t u = (uint32_t)src[i] << 16;
        memcpy(&dst[i], &u, sizeof u);
    }
}

void tr_bf16_widen(float *dst, const uint16_t *src, size_t n) { bf16_widen_bits(dst, src, n); }

void tr_half_round(tr_compression kind, uint16_t *dst, const float *src, size_t n)
{
    if (kind == TR_COMPRESS_FP16)
        tr_fp16_round(dst, src, n);
    else
        tr_bf16_round(dst, src, n);
}

void tr_half_widen(tr_compression kind, float *dst, const uint16_t *src, size_t n)
{
    if (kind == TR_COMPRESS_FP16)
        tr_fp16_widen(dst, src, n);
    else
        tr_bf16_widen(dst, src, n);
}

TR_VECTOR_KERNEL static void add_floats(float *restrict a, const float *restrict b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        a[i] += b[i];
}

void tr_half_sum(tr_compression kind, uint16_t *inout, const uint16_t *in, size_t n)
{
    enum { BLOCK = 512 }; /* two blocks of floats on the stack, in L1 */
    float a[BLOCK], b[BLOCK];
    for (size_t i = 0; i < n; i += BLOCK) {
        const size_t k = n - i < BLOCK ? n - i : BLOCK;
        tr_half_widen(kind, a, inout + i, k);
        tr_half_widen(kind, b, in + i, k);
        add_floats(a, b, k);
        tr_half_round(kind, inout + i, a, k);
    }
}
