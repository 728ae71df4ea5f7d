/*
 * sampler.c: epoch permutations and the rank slices of every micro-batch.
 */
#include "trainer/sampler.h"

#include <stdlib.h>
#include <string.h>

void tr_share(int64_t n, int rank, int size, int64_t *begin, int64_t *end)
{
    *begin = n * rank / size;
    *end = n * (rank + 1) / size;
}

void tr_chunk_share(int64_t n, int64_t chunk, int rank, int size, int64_t *begin, int64_t *end)
{
    const int64_t chunks = (n + chunk - 1) / chunk;
    int64_t cb, ce;
    tr_share(chunks, rank, size, &cb, &ce);
    *begin = cb * chunk < n ? cb * chunk : n;
    *end = ce * chunk < n ? ce * chunk : n;
}

int tr_sampler_init(tr_sampler *s, int64_t n, int64_t batch, int64_t accumulate, bool shuffle, bool drop_last,
                    uint64_t seed, int rank, int size, tr_err *err)
{
    memset(s, 0, sizeof *s);
    s->n = n;
    s->batch = (batch <= 0 || batch > n) ? n : batch;
    s->accumulate = accumulate < 1 ? 1 : accumulate;
    s->shuffle = shuffle;
    s->drop_last = drop_last;
    s->rng = tr_rng_make(seed);
    s->rank = rank;
    s->size = size;
    s->epoch = -1;
    s->perm = malloc((size_t)(n > 0 ? n : 1) * sizeof *s->perm);
    if (!s->perm)
        return tr_fail(err, TR_ENOMEM, "cannot allocate the sampler for %lld rows", (long long)n);
    return 0;
}

void tr_sampler_free(tr_sampler *s)
{
    if (!s)
        return;
    free(s->perm);
    s->perm = NULL;
}

void tr_sampler_set_epoch(tr_sampler *s, int64_t epoch)
{
    if (s->epoch == epoch)
        return;
    if (s->shuffle)
        tr_rng_permutation(s->perm, s->n, s->rng, TR_RNG_SHUFFLE, (uint32_t)epoch);
    else
        for (int64_t i = 0; i < s->n; i++)
            s->perm[i] = i;
    s->epoch = epoch;
}

int64_t tr_sampler_micro_batches(const tr_sampler *s)
{
    if (s->batch <= 0)
        return 0;
    return s->drop_last ? s->n / s->batch : (s->n + s->batch - 1) / s->batch;
}

int64_t tr_sampler_steps(const tr_sampler *s)
{
    return (tr_sampler_micro_batches(s) + s->accumulate - 1) / s->accumulate;
}

int64_t tr_sampler_step_micro_batches(const tr_sampler *s, int64_t step)
{
    const int64_t left = tr_sampler_micro_batches(s) - step * s->accumulate;
    return left < s->accumulate ? left : s->accumulate;
}

void tr_sampler_micro(const tr_sampler *s, int64_t j, int64_t *global_rows, const int64_t **rows, int64_t *n_rows)
{
    const int64_t start = j * s->batch;
    int64_t end = start + s->batch;
    if (end > s->n)
        end = s->n;
    const int64_t G = end - start;
    int64_t b, e;
    tr_share(G, s->rank, s->size, &b, &e);
    *global_rows = G;
    *rows = s->perm + start + b;
    *n_rows = e - b;
}

void tr_sampler_micro_all(const tr_sampler *s, int64_t j, const int64_t **rows, int64_t *n)
{
    const int64_t start = j * s->batch;
    int64_t end = start + s->batch;
    if (end > s->n)
        end = s->n;
    *rows = s->perm + start;
    *n = end - start;
}

void tr_sampler_step_rows(const tr_sampler *s, int64_t step, const int64_t **rows, int64_t *n)
{
    const int64_t first = step * s->accumulate, count = tr_sampler_step_micro_batches(s, step);
    const int64_t start = first * s->batch;
    int64_t end = (first + count) * s->batch;
    if (end > s->n)
        end = s->n;
    *rows = s->perm + start;
    *n = end > start ? end - start : 0;
}

int64_t tr_sampler_max_local_rows(const tr_sampler *s)
{
    return (s->batch + s->size - 1) / s->size;
}
