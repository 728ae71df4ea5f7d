/*
 * rng.c: Philox4x32-10 from Random123, wrapped as pure functions of
 * (seed, purpose, stream, index). Counter layout: {index lo, index hi, stream, purpose}.
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
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)tr_rng_below(r, purpose, stream, (uint64_t)i, (uint64_t)i + 1);
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}
