/*
 * rng.c: Philox4x32-10 from Random123, wrapped as pure functions of
 * (seed, purpose, stream, index). Counter layout: {index lo, index hi, stream, purpose}.
 * tr_rng_blocks computes the same function for a run of consecutive counters, eight at a
 * time with AVX2 where the CPU has it (dropout masks need one word per unit per step).
 */
#include "trainer/rng.h"

#include <Random123/philox.h>
#include <math.h>

tr_rng tr_rng_make(uint64_t seed)
{
    tr_rng r = {{(uint32_t)seed, (uint32_t)(seed >> 32)}};
    return r;
}

void tr_rng_words(tr_rng r, uint32_t purpose, uint32_t stream, uint64_t index, uint32_t out[4])
{
    philox4x32_ctr_t ctr = {{(uint32_t)index, (uint32_t)(index >> 32), stream, purpose}};
    philox4x32_key_t key = {{r.key[0], r.key[1]}};
    philox4x32_ctr_t v = philox4x32(ctr, key);
    for (int i = 0; i < 4; i++)
        out[i] = v.v[i];
}

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define HAVE_AVX2_PHILOX 1

/* 32 x 32 -> 64-bit products of the eight lanes of a and m: low and high halves. */
__attribute__((target("avx2"))) static inline void mulhilo8(__m256i a, __m256i m, __m256i *lo, __m256i *hi)
{
    const __m256i even = _mm256_mul_epu32(a, m);                         /* lanes 0, 2, 4, 6 */
    const __m256i odd = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), m);   /* lanes 1, 3, 5, 7 */
    *lo = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
    *hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
}

/* Random123's Philox4x32-10 of counters {index lo, index hi, stream, purpose} for the eight
 * indices first .. first + 7, one lane each: the same rounds and key schedule. */
__attribute__((target("avx2"))) static void philox8_avx2(const uint32_t key[2], uint32_t purpose, uint32_t stream,
                                                          uint64_t first, uint32_t out[32])
{
    uint32_t lo[8], hi[8];
    for (int i = 0; i < 8; i++) {
        lo[i] = (uint32_t)(first + (uint64_t)i);
        hi[i] = (uint32_t)((first + (uint64_t)i) >> 32);
    }
    __m256i c0 = _mm256_loadu_si256((const __m256i *)lo), c1 = _mm256_loadu_si256((const __m256i *)hi);
    __m256i c2 = _mm256_set1_epi32((int)stream), c3 = _mm256_set1_epi32((int)purpose);
    const __m256i m0 = _mm256_set1_epi32((int)PHILOX_M4x32_0), m1 = _mm256_set1_epi32((int)PHILOX_M4x32_1);
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        if (round > 0) {
            k0 += PHILOX_W32_0;
            k1 += PHILOX_W32_1;
        }
        __m256i lo0, hi0, lo1, hi1;
        mulhilo8(c0, m0, &lo0, &hi0);
        mulhilo8(c2, m1, &lo1, &hi1);
        c0 = _mm256_xor_si256(_mm256_xor_si256(hi1, c1), _mm256_set1_epi32((int)k0));
        c1 = lo1;
        c2 = _mm256_xor_si256(_mm256_xor_si256(hi0, c3), _mm256_set1_epi32((int)k1));
        c3 = lo0;
    }
    uint32_t w[4][8];
    _mm256_storeu_si256((__m256i *)w[0], c0);
    _mm256_storeu_si256((__m256i *)w[1], c1);
    _mm256_storeu_si256((__m256i *)w[2], c2);
    _mm256_storeu_si256((__m256i *)w[3], c3);
    for (int i = 0; i < 8; i++)
        for (int k = 0; k < 4; k++)
            out[4 * i + k] = w[k][i];
}
#endif

void tr_rng_blocks(tr_rng r, uint32_t purpose, uint32_t stream, uint64_t first, size_t n, uint32_t *out)
{
    size_t b = 0;
#ifdef HAVE_AVX2_PHILOX
    if (__builtin_cpu_supports("avx2"))
        for (; b + 8 <= n; b += 8)
            philox8_avx2(r.key, purpose, stream, first + b, out + 4 * b);
#endif
    for (; b < n; b++)
        tr_rng_words(r, purpose, stream, first + b, out + 4 * b);
}

/* 53-bit uniform in [0, 1) from two words. */
static double u53(uint32_t hi, uint32_t lo)
{
    return ((double)(hi >> 5) * 67108864.0 + (double)(lo >> 6)) * (1.0 / 9007199254740992.0);
}

double tr_rng_uniform(tr_rng r, uint32_t purpose, uint32_t stream, uint64_t index)
{
    uint32_t w[4];
    tr_rng_words(r, purpose, stream, index, w);
    return u53(w[0], w[1]);
}

double tr_rng_normal(tr_rng r, uint32_t purpose, uint32_t stream, uint64_t index)
{
    uint32_t w[4];
    tr_rng_words(r, purpose, stream, index, w);
    double u1 = 1.0 - u53(w[0], w[1]); /* (0, 1]: log is finite */
    double u2 = u53(w[2], w[3]);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

uint64_t tr_rng_below(tr_rng r, uint32_t purpose, uint32_t stream, uint64_t index, uint64_t n)
{
    uint32_t w[4];
    tr_rng_words(r, purpose, stream, index, w);
    uint64_t x = ((uint64_t)w[0] << 32) | w[1];
    return x % n;
}

void tr_rng_permutation(int64_t *perm, int64_t n, tr_rng r, uint32_t purpose, uint32_t stream)
{
    for (int64_t i = 0; i < n; i++)
        perm[i] = i;
    /* Fisher-Yates from the top: swap i with tr_rng_below(..., i, i + 1). The words of 64
     * indices at a time come from tr_rng_blocks (8 Philox lanes at once): the same values. */
    enum { BLOCK = 64 };
    uint32_t w[4 * BLOCK];
    for (int64_t hi = n - 1; hi > 0; hi -= BLOCK) {
        const int64_t lo = hi - BLOCK + 1 > 1 ? hi - BLOCK + 1 : 1;
        tr_rng_blocks(r, purpose, stream, (uint64_t)lo, (size_t)(hi - lo + 1), w);
        for (int64_t i = hi; i >= lo; i--) {
            const uint32_t *v = w + 4 * (i - lo);
            const uint64_t x = ((uint64_t)v[0] << 32) | v[1];
            const int64_t j = (int64_t)(x % ((uint64_t)i + 1));
            const int64_t t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
    }
}
