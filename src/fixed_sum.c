/*
 * fixed_sum.c: the exact sum of gradients on a fixed-point grid (fixed_sum.h): vectorised
 * conversions between floats and 64-bit integers, and the per-tensor grids.
 */
#include "trainer/fixed_sum.h"

#include "vector_kernel.h"

#include <math.h>
#include <string.h>

#define EXACT_BITS 40   /* |value| < 2^40 grid units: 2^23 values sum without overflow */
#define FIXED_BLOCK 512 /* values summed per block: the integers stay in L1 */
#define MAX_SMALL_SUM 2048 /* sums of this many values stay below 2^51 (from_fixed's `small`) */

/* 1.5 * 2^52: for |x| < 2^51, the double MAGIC + x holds x as an integer in its low bits,
 * so adding it rounds a double to an integer (nearest, ties to even, as llrint) and its bit
 * pattern turns an integer back into a double: both vectorise where llrint and the int64 to
 * double conversion (AVX-512 only) do not. */
#define MAGIC 6755399441055744.0
#define MAGIC_BITS INT64_C(0x4338000000000000)

/* acc[i] (+)= round(g[i] * scale) for |g[i] * scale| < 2^51 (first: = instead of +=). scale
 * is a power of two, so g * scale is exact. */
TR_VECTOR_KERNEL static void add_fixed(int64_t *restrict acc, const float *restrict g, size_t n, double scale,
                                       bool first)
{
    if (first)
        for (size_t i = 0; i < n; i++) {
            const double y = (double)g[i] * scale + MAGIC;
            int64_t bits;
            memcpy(&bits, &y, sizeof bits);
            acc[i] = bits - MAGIC_BITS;
        }
    else
        for (size_t i = 0; i < n; i++) {
            const double y = (double)g[i] * scale + MAGIC;
            int64_t bits;
            memcpy(&bits, &y, sizeof bits);
            acc[i] += bits - MAGIC_BITS;
        }
}

/* The largest |g[i]|; *bad when any is NaN or infinite. For non-negative floats the bit
 * patterns order as the values, so this is an integer max (vectorised). */
TR_VECTOR_KERNEL static float max_abs(const float *restrict g, size_t n, bool *bad)
{
    uint32_t mx = 0, nonfinite = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t b;
        memcpy(&b, &g[i], sizeof b);
        b &= 0x7fffffffu;
        mx = b > mx ? b : mx;
        nonfinite |= b >= 0x7f800000u;
    }
    *bad |= nonfinite != 0;
    float a;
    memcpy(&a, &mx, sizeof a);
    return a;
}

/* out[i] = acc[i] * scale rounded to float (scale a power of two); `small` promises
 * |acc[i]| < 2^51, where the bit pattern converts the integer exactly, as (double) does. */
TR_VECTOR_KERNEL static void from_fixed(float *restrict out, const int64_t *restrict acc, size_t n, double scale,
                                        bool small)
{
    if (small)
        for (size_t i = 0; i < n; i++) {
            const int64_t bits = acc[i] + MAGIC_BITS;
            double y;
            memcpy(&y, &bits, sizeof y);
            out[i] = (float)((y - MAGIC) * scale);
        }
    else
        for (size_t i = 0; i < n; i++)
            out[i] = (float)((double)acc[i] * scale);
}

/* Merges n gradients into the maxima mx: mx[t] = max |g| of tensor t (t < T), mx[T] = max
 * |loss|, mx[T + 1] = 1 when any value is not finite. */
void tr_fixed_maxima(const tr_model *m, float *const *g, const double *loss, int n, double *mx)
{
    const int T = m->n_tensors;
    bool bad = false;
    for (int j = 0; j < n; j++) {
        for (int t = 0; t < T; t++) {
            const float a = max_abs(g[j] + m->tensor[t].offset, m->tensor[t].size, &bad);
            mx[t] = a > mx[t] ? a : mx[t];
        }
        const double l = fabs(loss[j]);
        bad |= !isfinite(l);
        mx[T] = l > mx[T] ? l : mx[T];
    }
    if (bad)
        mx[T + 1] = 1.0;
}

/* One grid per tensor and for the loss: 2^(e - 40) with every magnitude below 2^e. */
void tr_fixed_grid(const double *mx, int T, int *exp)
{
    for (int t = 0; t <= T; t++) {
        int e = 0;
        if (mx[t] > 0.0)
            frexp(mx[t], &e);
        exp[t] = e - EXACT_BITS;
    }
}

/* The sum of n gradients over [lo, hi), each value rounded once to its tensor's grid and the
 * integers added, which is exact and so independent of the order of the gradients. With acc
 * (indexed from lo) the integers are kept there (for a sum across nodes); else each block is
 * rounded once back to float into out. */
void tr_fixed_sum(const tr_model *m, const int *exp, float *const *g, int n, size_t lo, size_t hi,
                            int64_t *acc, float *out)
{
    int64_t block[FIXED_BLOCK];
    for (int t = 0; t < m->n_tensors; t++) {
        size_t a, b;
        if (!tr_tensor_part(&m->tensor[t], lo, hi, &a, &b))
            continue;
        const double scale = ldexp(1.0, -exp[t]), inv = ldexp(1.0, exp[t]);
        for (size_t i0 = a; i0 < b; i0 += FIXED_BLOCK) {
            const size_t nb = b - i0 < FIXED_BLOCK ? b - i0 : FIXED_BLOCK;
            int64_t *dst = acc ? acc + (i0 - lo) : block;
            if (n == 0)
                memset(dst, 0, nb * sizeof *dst);
            for (int j = 0; j < n; j++)
                add_fixed(dst, g[j] + i0, nb, scale, j == 0);
            if (!acc)
                from_fixed(out + i0, dst, nb, inv, n <= MAX_SMALL_SUM);
        }
    }
}

/* The integers of tr_fixed_sum (acc indexed from lo), sums of at most `terms` values
 * each, back to floats. */
void tr_fixed_to_float(const tr_model *m, const int *exp, const int64_t *acc, size_t lo, size_t hi, double terms,
                           float *out)
{
    for (int t = 0; t < m->n_tensors; t++) {
        size_t a, b;
        if (tr_tensor_part(&m->tensor[t], lo, hi, &a, &b))
            from_fixed(out + a, acc + (a - lo), b - a, ldexp(1.0, exp[t]), terms <= MAX_SMALL_SUM);
    }
}

int64_t tr_fixed_loss(const double *loss, int n, int exp)
{
    int64_t sum = 0;
    for (int j = 0; j < n; j++)
        sum += llrint(ldexp(loss[j], -exp));
    return sum;
}
