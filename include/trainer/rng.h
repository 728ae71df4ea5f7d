/*
 * rng.h: counter-based random numbers (Random123 Philox4x32-10).
 *
 * A value is a pure function of (seed, purpose, stream, index): no hidden state, nothing
 * depends on how many values were drawn before or on which rank draws them. That is what
 * makes initialisation, shuffles and dropout masks identical for every number of ranks and
 * lets a resumed run continue the exact random sequence it left.
 */
#ifndef TRAINER_RNG_H
#define TRAINER_RNG_H

#include <stddef.h>
#include <stdint.h>

/* What a random value is for; part of the counter, so purposes never share values. */
typedef enum tr_rng_purpose {
    TR_RNG_INIT = 1,     /* stream: tensor index, index: element */
    TR_RNG_SHUFFLE = 2,  /* stream: epoch, index: position */
    TR_RNG_DROPOUT = 3,  /* stream: step, index: sample * units + unit */
    TR_RNG_SPLIT = 4,    /* stream: 0, index: position */
    TR_RNG_GENERATE = 5, /* stream: generator field, index: row */
    TR_RNG_BLOCKS = 6,   /* block shuffle: stream: epoch, index: position among the blocks */
    TR_RNG_WINDOW = 7,   /* block shuffle: stream: epoch, index: position among the rows */
    TR_RNG_SEARCH = 8,   /* search space samples: stream: sampled key, index: sample */
} tr_rng_purpose;

typedef struct tr_rng {
    uint32_t key[2]; /* the 64-bit seed */
} tr_rng;

tr_rng tr_rng_make(uint64_t seed);

/* The four 32-bit words at counter (purpose, stream, index). */
void tr_rng_words(tr_rng r, uint32_t purpose, uint32_t stream, uint64_t index, uint32_t out[4]);

/* The words of n consecutive indices first, first + 1, ...: out[4 i + k] is word k of index
 * first + i (what tr_rng_words gives, computed several counters at a time). */
void tr_rng_blocks(tr_rng r, uint32_t purpose, uint32_t stream, uint64_t first, size_t n, uint32_t *out);

/* Uniform double in [0, 1) with 53 random bits. */
double tr_rng_uniform(tr_rng r, uint32_t purpose, uint32_t stream, uint64_t index);

/* Standard normal (Box-Muller on the two 53-bit uniforms of one counter). */
double tr_rng_normal(tr_rng r, uint32_t purpose, uint32_t stream, uint64_t index);

/* Uniform integer in [0, n), n >= 1 (modulo of 64 random bits: bias below n / 2^64). */
uint64_t tr_rng_below(tr_rng r, uint32_t purpose, uint32_t stream, uint64_t index, uint64_t n);

/* A permutation of 0..n-1 (Fisher-Yates driven by counters (purpose, stream, i)). */
void tr_rng_permutation(int64_t *perm, int64_t n, tr_rng r, uint32_t purpose, uint32_t stream);

#endif
