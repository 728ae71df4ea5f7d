/*
 * test_dist.c: the parts of the data-parallel machinery that need no second process: the
 * bucket plan, backward cut into row blocks at the bucket boundaries, the exact
 * (fixed-point) gradient sum as the deterministic mode's exchange runs it, the chunked evaluation shares, the rank slices, and each
 * rank's share of the node's CPUs (the BLAS thread default), and the streamed copy of the
 * node-shared parameters.
 */
#include "test_util.h"
#include "trainer/dist.h"
#include "trainer/mem.h"
#include "trainer/optim.h"
#include "trainer/reduce.h"
#include "trainer/model.h"
#include "trainer/rng.h"
#include "trainer/sampler.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static tr_model_config cfg3(void)
{
    tr_model_config c;
    memset(&c, 0, sizeof c);
    c.n_layers = 3;
    const int64_t w[] = {37, 300, 140, 5}; /* weights of more than 128 rows: cut into row blocks */
    for (int i = 0; i < 4; i++)
        c.widths[i] = w[i];
    for (int i = 0; i < 3; i++) {
        c.act[i] = i < 2 ? TR_ACT_TANH : TR_ACT_IDENTITY;
        c.weight_init[i] = (tr_init_spec){.scheme = TR_INIT_DEFAULT};
        c.bias_init[i] = c.weight_init[i];
    }
    c.bias = true;
    c.act_params = (tr_act_params){0.01f, 1.0f};
    return c;
}

Test(buckets, plan_covers_the_buffer_on_row_boundaries)
{
    tr_model_config c = cfg3();
    tr_model m;
    cr_assert_eq(tr_model_init(&m, &c, 8, NULL), 0);
    tr_dist d;
    tr_dist_init_local(&d);
    const size_t targets[] = {0, 256, 4096, 1 << 20};
    for (int k = 0; k < 4; k++) {
        tr_grad_sync *s;
        cr_assert_eq(tr_grad_sync_create(&s, &d, &m, targets[k], TR_COMPRESS_NONE, NULL), 0);
        const size_t *b;
        const int n = tr_grad_sync_buckets(s, &b);
        cr_expect(n >= 1);
        cr_expect_eq(b[0], 0, "the lowest bucket starts at 0");
        for (int i = 1; i < n; i++) {
            cr_expect(b[i] > b[i - 1], "ascending");
            bool on_boundary = false; /* a tensor start, or a row start inside a weight */
            for (int t = 0; t < m.n_tensors; t++) {
                const tr_tensor *T = &m.tensor[t];
                on_boundary |= b[i] == T->offset;
                if (T->is_weight && b[i] > T->offset && b[i] < T->offset + T->size)
                    on_boundary |= (b[i] - T->offset) % (size_t)T->cols == 0;
            }
            cr_expect(on_boundary, "bucket %d begins at %zu, not on a row or tensor boundary", i, b[i]);
        }
        if (targets[k] == 0)
            cr_expect_eq(n, 3, "one bucket per layer");
        if (targets[k] == 256)
            cr_expect(n > 5, "small buckets split the weights (%d buckets)", n);
        for (int i = 0; i < n; i++) { /* a weight's blocks: 128 rows at least, but its lowest */
            const size_t e = i + 1 < n ? b[i + 1] : m.n_params;
            for (int t = 0; t < m.n_tensors; t++) {
                const tr_tensor *T = &m.tensor[t];
                if (T->is_weight && b[i] > T->offset && b[i] < T->offset + T->size) {
                    const size_t end = e < T->offset + T->size ? e : T->offset + T->size;
                    cr_expect((end - b[i]) / (size_t)T->cols >= 128, "target %zu: a block of %zu rows",
                              targets[k], (end - b[i]) / (size_t)T->cols);
                }
            }
        }
        if (targets[k] == (1 << 20))
            cr_expect_eq(n, 1, "everything fits one bucket");
        tr_grad_sync_free(s);
    }
    tr_model_free(&m);
}

typedef struct frontier_log {
    size_t seen[256];
    int n;
} frontier_log;

static void log_ready(void *ctx, size_t frontier)
{
    frontier_log *l = ctx;
    l->seen[l->n++] = frontier;
}

Test(buckets, backward_in_row_blocks_equals_whole_backward)
{
    tr_model_config c = cfg3();
    tr_model m;
    cr_assert_eq(tr_model_init(&m, &c, 8, NULL), 0);
    tr_model_init_params(&m, 3);
    float X[8 * 37], dZ[8 * 5], dZ2[8 * 5];
    fill_uniform(X, sizeof X / sizeof *X, -1, 1, 4);
    fill_uniform(dZ, sizeof dZ / sizeof *dZ, -1, 1, 5);
    memcpy(dZ2, dZ, sizeof dZ);
    float *whole = calloc(m.n_params, sizeof *whole), *blocks = calloc(m.n_params, sizeof *blocks);
    tr_model_forward(&m, X, 8, NULL);
    tr_model_backward(&m, whole, X, dZ, 8, true, NULL);
    tr_dist d;
    tr_dist_init_local(&d);
    tr_grad_sync *s;
    cr_assert_eq(tr_grad_sync_create(&s, &d, &m, 512, TR_COMPRESS_NONE, NULL), 0);
    const size_t *b;
    const int n = tr_grad_sync_buckets(s, &b);
    frontier_log log = {.n = 0};
    tr_grad_hook hook = {.ready = log_ready, .ctx = &log, .splits = b, .n_splits = n};
    tr_model_forward(&m, X, 8, NULL);
    tr_model_backward(&m, blocks, X, dZ2, 8, true, &hook);
    /* OpenBLAS chooses its kernels by shape, so a row block may round differently in the
     * last bit: equal to float rounding, not bitwise */
    double diff = 0.0, norm = 0.0, maxabs = 0.0;
    for (size_t i = 0; i < m.n_params; i++) {
        diff += ((double)whole[i] - blocks[i]) * ((double)whole[i] - blocks[i]);
        norm += (double)whole[i] * whole[i];
        maxabs = fmax(maxabs, fabs((double)whole[i] - blocks[i]));
    }
    cr_expect(sqrt(diff / norm) < 1e-6, "row blocks change the gradient by %g (norm-wise), %g max", sqrt(diff / norm),
              maxabs);
    for (int i = 1; i < log.n; i++)
        cr_expect(log.seen[i] < log.seen[i - 1], "frontier must move down (%zu after %zu)", log.seen[i],
                  log.seen[i - 1]);
    for (int i = 0; i < n; i++) { /* ready() fires at every bucket start */
        bool hit = false;
        for (int j = 0; j < log.n; j++)
            hit |= log.seen[j] == b[i];
        cr_expect(hit, "no ready() at bucket start %zu", b[i]);
    }
    cr_expect_eq(log.seen[log.n - 1], 0);
    tr_grad_sync_free(s);
    free(whole);
    free(blocks);
    tr_model_free(&m);
}

Test(buckets, backward_overwrites_when_not_accumulating)
{
    tr_model_config c = cfg3();
    tr_model m;
    tr_model_init(&m, &c, 8, NULL);
    tr_model_init_params(&m, 3);
    float X[8 * 37], dZ[8 * 5];
    fill_uniform(X, sizeof X / sizeof *X, -1, 1, 4);
    fill_uniform(dZ, sizeof dZ / sizeof *dZ, -1, 1, 5);
    float *g1 = calloc(m.n_params, sizeof *g1), *g2 = malloc(m.n_params * sizeof *g2);
    for (size_t i = 0; i < m.n_params; i++)
        g2[i] = 123.0f;
    float d1[8 * 5], d2[8 * 5];
    memcpy(d1, dZ, sizeof dZ);
    memcpy(d2, dZ, sizeof dZ);
    tr_model_forward(&m, X, 8, NULL);
    tr_model_backward(&m, g1, X, d1, 8, true, NULL);
    tr_model_forward(&m, X, 8, NULL);
    tr_model_backward(&m, g2, X, d2, 8, false, NULL);
    for (int t = 0; t < m.n_tensors; t++)
        cr_expect(memcmp(g1 + m.tensor[t].offset, g2 + m.tensor[t].offset, m.tensor[t].size * sizeof(float)) == 0,
                  "tensor %s not overwritten", m.tensor[t].name);
    free(g1);
    free(g2);
    tr_model_free(&m);
}

/* One step of the exact strategy, as training runs it (reduce.c's exact_finish), on one
 * rank: the K chunks given in `order`, SGD with lr 1 from zero parameters, so the parameters
 * come out as minus the summed gradient. */
static void exact_step(tr_model *m, float *const *chunks, const double *loss, const int *order, int K,
                       tr_step_stats *st)
{
    tr_dist d;
    tr_dist_init_local(&d);
    tr_optim o;
    cr_assert_eq(tr_optim_init(&o, &(tr_optim_config){.kind = TR_OPTIM_SGD, .lr = 1.0}, m->n_params, NULL), 0);
    const tr_train_config tc = {.deterministic = true, .comm = TR_COMM_AUTO};
    double seconds[TR_PHASE_COUNT] = {0};
    tr_phase_clock clock;
    tr_phase_clock_init(&clock, seconds);
    tr_reduce *r;
    cr_assert_eq(tr_reduce_create(&r, &d, m, &o, &tc, K, &clock, NULL), 0);
    memset(m->params, 0, m->n_params * sizeof(float));
    tr_reduce_begin(r);
    for (int i = 0; i < K; i++)
        memcpy(tr_reduce_chunk(r, i, loss[order[i]]), chunks[order[i]], m->n_params * sizeof(float));
    *st = (tr_step_stats){.correct = 3, .rows = 9};
    cr_assert_eq(tr_reduce_finish(r, st, NULL), 0);
    tr_reduce_free(r);
    tr_optim_free(&o);
}

Test(exact_sum, is_order_independent_and_close_to_the_float_sum)
{
    tr_model_config c = cfg3();
    tr_model m;
    tr_model_init(&m, &c, 8, NULL);
    enum { K = 4 };
    float *micro[K];
    const double loss[K] = {1.5, 2.25, 1e-3, 7.0};
    const int forward[K] = {0, 1, 2, 3}, backward[K] = {3, 2, 1, 0};
    for (int j = 0; j < K; j++) {
        micro[j] = calloc(m.n_params, sizeof(float));
        for (int t = 0; t < m.n_tensors; t++) /* magnitudes spread over orders of magnitude */
            fill_uniform(micro[j] + m.tensor[t].offset, m.tensor[t].size, -powf(10.0f, (float)(t - 3)),
                         powf(10.0f, (float)(t - 3)), 100 + (uint64_t)(j * 10 + t));
    }
    float *out1 = calloc(m.n_params, sizeof(float)), *out2 = calloc(m.n_params, sizeof(float));
    tr_step_stats s1, s2;
    exact_step(&m, micro, loss, forward, K, &s1);
    memcpy(out1, m.params, m.n_params * sizeof(float));
    exact_step(&m, micro, loss, backward, K, &s2);
    memcpy(out2, m.params, m.n_params * sizeof(float));
    cr_expect(s1.nonfinite == NULL && s2.nonfinite == NULL);
    cr_expect(memcmp(out1, out2, m.n_params * sizeof(float)) == 0, "the exact sum depends on the order");
    cr_expect(s1.loss == s2.loss && fabs(s1.loss - 10.751) < 1e-9, "loss sum %.17g", s1.loss);
    cr_expect(s1.correct == 3 && s1.rows == 9);
    /* close to the sum in double (the parameters are minus the sum) */
    double worst = 0.0;
    for (int t = 0; t < m.n_tensors; t++)
        for (size_t i = 0; i < m.tensor[t].size; i++) {
            const size_t k = m.tensor[t].offset + i;
            double want = 0.0;
            for (int j = 0; j < K; j++)
                want += micro[j][k];
            const double err = fabs(-out1[k] - want) / (fabs(want) + 1e-30);
            worst = err > worst && fabs(want) > 1e-6 * powf(10.0f, (float)(t - 3)) ? err : worst;
        }
    cr_expect(worst < 1e-6, "relative error %g", worst);
    /* control: a float sum in the two orders differs somewhere, or the test proves nothing */
    bool float_orders_differ = false;
    for (size_t k = 0; k < m.n_params && !float_orders_differ; k++)
        float_orders_differ = ((micro[0][k] + micro[1][k]) + micro[2][k]) + micro[3][k] !=
                              ((micro[3][k] + micro[2][k]) + micro[1][k]) + micro[0][k];
    cr_expect(float_orders_differ, "control: the float sums agree in both orders");
    /* a non-finite value anywhere is a divergence, not garbage */
    micro[1][m.tensor[2].offset + 3] = NAN;
    exact_step(&m, micro, loss, forward, K, &s1);
    cr_expect(s1.nonfinite != NULL, "a NaN gradient passed the exact sum");
    for (int j = 0; j < K; j++)
        free(micro[j]);
    free(out1);
    free(out2);
    tr_model_free(&m);
}

Test(shares, rank_slices_and_evaluation_chunks)
{
    /* rank slices of a 33-row batch on 2 ranks: 16 and 17 */
    int64_t b, e;
    tr_share(33, 0, 2, &b, &e);
    cr_expect(b == 0 && e == 16);
    tr_share(33, 1, 2, &b, &e);
    cr_expect(b == 16 && e == 33);
    /* evaluation chunks: 1000 rows in chunks of 256 on 3 ranks: chunks {0}, {1}, {2, 3} */
    int64_t total = 0, prev = 0;
    for (int r = 0; r < 3; r++) {
        tr_chunk_share(1000, 256, r, 3, &b, &e);
        cr_expect_eq(b, prev, "contiguous");
        cr_expect(b % 256 == 0, "starts on a chunk");
        total += e - b;
        prev = e;
    }
    cr_expect_eq(total, 1000);
    /* more ranks than chunks: some ranks get nothing, one gets the chunk */
    tr_chunk_share(100, 256, 0, 4, &b, &e);
    cr_expect(b == e);
    tr_chunk_share(100, 256, 3, 4, &b, &e);
    cr_expect(b == 0 && e == 100);
}

Test(shares, sampler_slices_cover_every_row_once)
{
    tr_sampler s2, s1;
    cr_assert_eq(tr_sampler_init(&s1, 103, 33, 2, true, false, 9, 0, 1, NULL), 0);
    tr_sampler_set_epoch(&s1, 3);
    int seen[103] = {0};
    for (int r = 0; r < 2; r++) {
        cr_assert_eq(tr_sampler_init(&s2, 103, 33, 2, true, false, 9, r, 2, NULL), 0);
        tr_sampler_set_epoch(&s2, 3);
        cr_expect(memcmp(s1.perm, s2.perm, 103 * sizeof(int64_t)) == 0, "the order depends only on (seed, epoch)");
        for (int64_t j = 0; j < tr_sampler_micro_batches(&s2); j++) {
            int64_t G, n;
            const int64_t *rows;
            tr_sampler_micro(&s2, j, &G, &rows, &n);
            cr_expect(n == G / 2 || n == G / 2 + 1, "slices differ by at most one row");
            for (int64_t i = 0; i < n; i++)
                seen[rows[i]]++;
        }
        tr_sampler_free(&s2);
    }
    for (int i = 0; i < 103; i++)
        cr_expect_eq(seen[i], 1, "row %d seen %d times", i, seen[i]);
    cr_expect_eq(tr_sampler_steps(&s1), 2, "4 micro-batches in groups of 2");
    tr_sampler_free(&s1);
}

/* shuffle = block: a permutation, a pure function of (seed, epoch), whose every window holds
 * whole blocks of rows consecutive in the source (here the rows lie in reverse file order). */
Test(shares, block_shuffle_reads_whole_blocks_of_the_source)
{
    enum { N = 1000, B = 50, W = 3 };
    int64_t source[N];
    for (int i = 0; i < N; i++)
        source[i] = N - 1 - i;
    tr_sampler s, again;
    cr_assert_eq(tr_sampler_init(&s, N, 64, 1, true, false, 7, 0, 1, NULL), 0);
    cr_assert_eq(tr_sampler_use_blocks(&s, B, W, source, NULL), 0);
    cr_assert_eq(tr_sampler_init(&again, N, 64, 1, true, false, 7, 0, 1, NULL), 0);
    cr_assert_eq(tr_sampler_use_blocks(&again, B, W, source, NULL), 0);
    tr_sampler_set_epoch(&s, 2);
    tr_sampler_set_epoch(&again, 2);
    cr_expect(memcmp(s.perm, again.perm, sizeof(int64_t) * N) == 0, "the order is a function of (seed, epoch)");
    bool seen[N] = {false};
    for (int i = 0; i < N; i++) {
        cr_assert(s.perm[i] >= 0 && s.perm[i] < N && !seen[s.perm[i]], "a permutation");
        seen[s.perm[i]] = true;
    }
    for (int w0 = 0; w0 < N; w0 += B * W) { /* each window: whole source blocks only */
        int count[N / B] = {0};
        const int w1 = w0 + B * W < N ? w0 + B * W : N;
        for (int p = w0; p < w1; p++)
            count[source[s.perm[p]] / B]++;
        for (int b = 0; b < N / B; b++)
            cr_expect(count[b] == 0 || count[b] == B, "window at %d holds %d rows of block %d", w0, count[b], b);
    }
    int64_t first[N];
    memcpy(first, s.perm, sizeof first);
    tr_sampler_set_epoch(&s, 3);
    cr_expect(memcmp(first, s.perm, sizeof first) != 0, "another epoch, another order");
    tr_sampler_free(&s);
    tr_sampler_free(&again);
}

/* shuffle = block: the rows to read ahead for positions [a, b) of the order are whole blocks
 * that hold them (rows are mixed inside windows), each in source order, none twice; with a
 * short last block anywhere in the order. */
Test(shares, block_read_ahead_lists_whole_blocks_in_source_order)
{
    enum { N = 1037, B = 50, W = 3 };
    int64_t source[N];
    for (int i = 0; i < N; i++)
        source[i] = (i * 7) % N; /* 7 and 1037 are coprime: a permutation */
    tr_sampler s;
    cr_assert_eq(tr_sampler_init(&s, N, 64, 1, true, false, 11, 0, 1, NULL), 0);
    cr_assert_eq(tr_sampler_use_blocks(&s, B, W, source, NULL), 0);
    for (int epoch = 0; epoch < 4; epoch++) {
        tr_sampler_set_epoch(&s, epoch);
        for (int64_t a = 0; a < N; a += 37) {
            const int64_t b = a + 151 < N ? a + 151 : N;
            int64_t out[151 + 2 * B * W + 2 * B], next;
            const int64_t n = tr_sampler_block_rows(&s, a, b, out, &next);
            cr_assert(n >= b - a && n <= b - a + 2 * B * W + 2 * B, "%lld rows for positions [%lld, %lld)",
                      (long long)n, (long long)a, (long long)b);
            cr_expect(next >= b && next <= N, "next %lld after [%lld, %lld)", (long long)next, (long long)a,
                      (long long)b);
            bool listed[N] = {false};
            for (int64_t i = 0; i < n; i++) {
                listed[out[i]] = true;
                /* the rows of a block are consecutive in the source */
                if (i > 0 && source[out[i]] / B == source[out[i - 1]] / B)
                    cr_expect_eq(source[out[i]], source[out[i - 1]] + 1, "a block's rows in source order");
            }
            for (int64_t p = a; p < b; p++)
                cr_expect(listed[s.perm[p]], "position %lld's row listed", (long long)p);
            int64_t count = 0; /* exactly the rows of positions [first block start, next) */
            for (int64_t i = 0; i < N; i++)
                count += listed[i];
            cr_expect_eq(count, n, "no row twice");
        }
    }
    int64_t out[1];
    tr_sampler_free(&s);
    cr_assert_eq(tr_sampler_init(&s, N, 64, 1, true, false, 11, 0, 1, NULL), 0);
    tr_sampler_set_epoch(&s, 0); /* a global shuffle has no blocks to read ahead */
    int64_t next;
    cr_expect_eq(tr_sampler_block_rows(&s, 0, 10, out, &next), 0);
    tr_sampler_free(&s);
}

/* The epoch permutation (words generated 64 indices at a time, 8 Philox lanes at once) is
 * exactly Fisher-Yates with tr_rng_below drawn one index at a time: orders are unchanged. */
Test(sampler, permutation_is_fisher_yates_of_rng_below)
{
    const int64_t sizes[] = {1, 2, 7, 64, 65, 129, 1000};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        const int64_t n = sizes[k];
        int64_t *got = malloc((size_t)n * sizeof *got), *want = malloc((size_t)n * sizeof *want);
        const tr_rng r = tr_rng_make(77);
        tr_rng_permutation(got, n, r, TR_RNG_SHUFFLE, 3);
        for (int64_t i = 0; i < n; i++)
            want[i] = i;
        for (int64_t i = n - 1; i > 0; i--) {
            const int64_t j = (int64_t)tr_rng_below(r, TR_RNG_SHUFFLE, 3, (uint64_t)i, (uint64_t)i + 1);
            const int64_t t = want[i];
            want[i] = want[j];
            want[j] = t;
        }
        cr_expect(memcmp(got, want, (size_t)n * sizeof *got) == 0, "n = %lld", (long long)n);
        free(got);
        free(want);
    }
}

/* masks of n ranks, one 64-bit word each except where a test needs two */
static int share1(const uint64_t *masks, int n, int me) { return tr_cpu_share(masks, 1, n, me); }

Test(cpus, share_follows_the_launchers_binding)
{
    /* mpirun's default for 2 ranks: each bound to its own core -> one thread each, not the
     * node's 4 CPUs divided by 2 */
    const uint64_t bound[] = {0x1, 0x2};
    cr_expect_eq(share1(bound, 2, 0), 1);
    cr_expect_eq(share1(bound, 2, 1), 1);
    /* --map-by slot:PE=2 (srun --cpus-per-task=2): two cores each */
    const uint64_t pe2[] = {0x3, 0xc};
    cr_expect_eq(share1(pe2, 2, 0), 2);
    cr_expect_eq(share1(pe2, 2, 1), 2);
    /* unbound (--bind-to none): the node's CPUs split between the ranks, rounded down */
    const uint64_t none2[] = {0xf, 0xf}, none3[] = {0xf, 0xf, 0xf};
    cr_expect_eq(share1(none2, 2, 0), 2);
    cr_expect_eq(share1(none3, 3, 2), 1);
    /* three ranks on three CPUs: a third counted three times is one */
    const uint64_t three[] = {0x7, 0x7, 0x7};
    for (int r = 0; r < 3; r++)
        cr_expect_eq(share1(three, 3, r), 1);
    /* overlapping masks: CPU 2 is shared, so rank 0 has 2.5 -> 2 and rank 1 has 1.5 -> 1 */
    const uint64_t overlap[] = {0x7, 0xc};
    cr_expect_eq(share1(overlap, 2, 0), 2);
    cr_expect_eq(share1(overlap, 2, 1), 1);
    /* more ranks than CPUs (oversubscribed): still one thread */
    const uint64_t over[] = {0x1, 0x1, 0x1, 0x1};
    cr_expect_eq(share1(over, 4, 3), 1);
    /* alone: every CPU of its mask; an empty mask (nothing read) still one */
    const uint64_t alone[] = {0xff}, empty[] = {0x0};
    cr_expect_eq(share1(alone, 1, 0), 8);
    cr_expect_eq(share1(empty, 1, 0), 1);
    /* CPUs past 63 count: rank 0 {0, 64, 65}, rank 1 {65} -> 2.5 and 0.5 */
    const uint64_t wide[] = {0x1, 0x3, 0x0, 0x2};
    cr_expect_eq(tr_cpu_share(wide, 2, 2, 0), 2);
    cr_expect_eq(tr_cpu_share(wide, 2, 2, 1), 1);
}

Test(cpus, local_world_counts_its_affinity_mask)
{
    tr_dist d;
    tr_dist_init_local(&d);
    cr_expect_geq(d.cpus_allowed, 1);
    cr_expect_eq(d.cpus, d.cpus_allowed); /* alone on the node */
}

/* The node-shared step streams its updated parameters (mem.h): every alignment of the
 * destination and every length around the 16-byte steps copies exactly. */
Test(stream, streamed_copy_equals_the_source)
{
    enum { M = 300 };
    float src[M], dst[M + 8];
    for (int i = 0; i < M; i++)
        src[i] = (float)i * 0.5f - 7.0f;
    for (int shift = 0; shift < 4; shift++)
        for (int n = 0; n <= 37; n++) {
            for (int i = 0; i < M + 8; i++)
                dst[i] = -1.0f;
            tr_stream_floats(dst + shift, src + 1, (size_t)n);
            tr_stream_fence();
            for (int i = 0; i < M + 8; i++) {
                const float want = i >= shift && i < shift + n ? src[1 + i - shift] : -1.0f;
                cr_assert(dst[i] == want, "shift %d, n %d: dst[%d] = %g, want %g", shift, n, i, dst[i], want);
            }
        }
    tr_stream_floats(dst, src, M); /* a long run */
    tr_stream_fence();
    cr_expect(memcmp(dst, src, sizeof src) == 0);
}
