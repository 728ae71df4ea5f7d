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
    if (!s->shared) {
        free(s->perm);
        free(s->locality);
    }
    free(s->blocks);
    s->perm = s->blocks = s->locality = NULL;
}

int64_t tr_sampler_order_rows(const tr_sampler *s) { return s->locality ? 2 * s->n : s->n; }

void tr_sampler_share(tr_sampler *s, int64_t *shared, bool writer, void (*barrier)(void *ctx), void *ctx)
{
    if (s->locality) {
        if (writer)
            memcpy(shared + s->n, s->locality, (size_t)s->n * sizeof *s->locality);
        free(s->locality);
        s->locality = shared + s->n;
    }
    free(s->perm);
    s->perm = shared;
    s->shared = true;
    s->writer = writer;
    s->barrier = barrier;
    s->barrier_ctx = ctx;
    s->epoch = -1; /* built anew, by the writer */
}

typedef struct row_place {
    int64_t source, row;
} row_place;

static int by_source(const void *a, const void *b)
{
    const row_place *x = a, *y = b;
    return x->source < y->source ? -1 : x->source > y->source ? 1 : (x->row > y->row) - (x->row < y->row);
}

int tr_sampler_use_blocks(tr_sampler *s, int64_t block_rows, int64_t window_blocks, const int64_t *source_row,
                          tr_err *err)
{
    free(s->locality);
    s->locality = NULL;
    bool in_source_order = true; /* (a set in file order, split or not): nothing to sort or hold */
    for (int64_t i = 1; source_row && i < s->n && in_source_order; i++)
        in_source_order = source_row[i - 1] < source_row[i];
    if (!in_source_order) { /* the rows sorted by where they lie in the source */
        row_place *p = malloc((size_t)(s->n > 0 ? s->n : 1) * sizeof *p);
        s->locality = malloc((size_t)(s->n > 0 ? s->n : 1) * sizeof *s->locality);
        if (!p || !s->locality) {
            free(p);
            return tr_fail(err, TR_ENOMEM, "cannot allocate the block shuffle's row order (%lld rows)",
                           (long long)s->n);
        }
        for (int64_t i = 0; i < s->n; i++)
            p[i] = (row_place){source_row[i], i};
        qsort(p, (size_t)s->n, sizeof *p, by_source);
        for (int64_t i = 0; i < s->n; i++)
            s->locality[i] = p[i].row;
        free(p);
    }
    /* larger than the data is the same order as the whole data: no product overflows */
    const int64_t n = s->n > 0 ? s->n : 1;
    s->block_rows = block_rows < 1 ? 1 : block_rows > n ? n : block_rows;
    const int64_t nb = (s->n + s->block_rows - 1) / s->block_rows;
    s->window_blocks = window_blocks < 1 ? 1 : window_blocks > nb ? (nb > 0 ? nb : 1) : window_blocks;
    s->epoch = -1; /* the next epoch builds its order anew */
    free(s->blocks);
    s->blocks = malloc((size_t)(nb > 0 ? nb : 1) * sizeof *s->blocks);
    return s->blocks ? 0 : tr_fail(err, TR_ENOMEM, "cannot allocate the block order (%lld blocks)", (long long)nb);
}

/* The block-shuffled order of an epoch (see tr_sampler_use_blocks): the blocks' order, and
 * with build_perm the rows' order from it. */
static void block_order(tr_sampler *s, int64_t epoch, bool build_perm)
{
    const int64_t B = s->block_rows, nb = (s->n + B - 1) / B;
    int64_t *blocks = s->blocks;
    tr_rng_permutation(blocks, nb, s->rng, TR_RNG_BLOCKS, (uint32_t)epoch);
    if (!build_perm)
        return;
    int64_t at = 0;
    for (int64_t k = 0; k < nb; k++)
        for (int64_t r = blocks[k] * B; r < s->n && r < (blocks[k] + 1) * B; r++)
            s->perm[at++] = s->locality ? s->locality[r] : r;
    const int64_t W = B * s->window_blocks;
    for (int64_t a = 0; a < s->n; a += W) { /* Fisher-Yates inside each window */
        const int64_t b = a + W < s->n ? a + W : s->n;
        for (int64_t i = b - 1; i > a; i--) {
            const int64_t j = a + (int64_t)tr_rng_below(s->rng, TR_RNG_WINDOW, (uint32_t)epoch, (uint64_t)i,
                                                        (uint64_t)(i - a + 1));
            const int64_t t = s->perm[i];
            s->perm[i] = s->perm[j];
            s->perm[j] = t;
        }
    }
}

/* Block shuffle: the index in the epoch's block order of the block holding position p. Every
 * block has block_rows rows but the last of the file (id nb - 1), which may be shorter and lies
 * anywhere in the order. */
static int64_t block_at(const tr_sampler *s, int64_t k_short, int64_t p)
{
    const int64_t B = s->block_rows, last = s->n - ((s->n + B - 1) / B - 1) * B;
    return p < k_short * B + last ? p / B : (p + B - last) / B;
}

/* ... and the position where the block at index k of the order begins. */
static int64_t block_start(const tr_sampler *s, int64_t k_short, int64_t k)
{
    const int64_t B = s->block_rows, last = s->n - ((s->n + B - 1) / B - 1) * B;
    return k <= k_short ? k * B : k * B - (B - last);
}

int64_t tr_sampler_block_rows(const tr_sampler *s, int64_t a, int64_t b, int64_t *out, int64_t *next)
{
    *next = b;
    if (!s->shuffle || s->block_rows <= 0 || a >= b || a >= s->n)
        return 0;
    const int64_t B = s->block_rows, nb = (s->n + B - 1) / B, W = B * s->window_blocks;
    a = a / W * W; /* whole windows: their rows are mixed */
    b = (b + W - 1) / W * W < s->n ? (b + W - 1) / W * W : s->n;
    int64_t k_short = 0; /* where the short block is in the order */
    while (k_short < nb && s->blocks[k_short] != nb - 1)
        k_short++;
    int64_t written = 0, k = block_at(s, k_short, a);
    const int64_t k_end = block_at(s, k_short, b - 1) + 1;
    for (; k < k_end && k < nb; k++)
        for (int64_t r = s->blocks[k] * B; r < s->n && r < (s->blocks[k] + 1) * B; r++)
            out[written++] = s->locality ? s->locality[r] : r;
    *next = k < nb ? block_start(s, k_short, k) : s->n; /* the first position after them */
    return written;
}

void tr_sampler_set_epoch(tr_sampler *s, int64_t epoch)
{
    if (s->epoch == epoch)
        return;
    if (s->shared) /* nobody still reads the old order */
        s->barrier(s->barrier_ctx);
    const bool build = !s->shared || s->writer; /* else the node's writer builds it */
    if (s->shuffle && s->block_rows > 0)
        block_order(s, epoch, build); /* every rank knows the blocks' order (read-ahead lists) */
    else if (build && s->shuffle)
        tr_rng_permutation(s->perm, s->n, s->rng, TR_RNG_SHUFFLE, (uint32_t)epoch);
    else if (build)
        for (int64_t i = 0; i < s->n; i++)
            s->perm[i] = i;
    if (s->shared) /* everybody reads the new one */
        s->barrier(s->barrier_ctx);
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
