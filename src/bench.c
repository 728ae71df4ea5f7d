/*
 * bench.c: per-phase timing of training steps and the products-only roofline.
 *
 * Roofline: per layer and micro-step, the forward product (B, O, I), the weight gradient
 * (O, I, B) and, above the first layer, the input gradient (B, I, O), with B this rank's
 * rows, in the run's engine and precision (the model's tr_gemm), timed on scratch buffers
 * while every rank does the same (so memory contention is as in training).
 */
#include "trainer/bench.h"

#include "trainer/clock.h"
#include "trainer/mem.h"
#include "trainer/rng.h"

#include <math.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int tr_bench_data_sets(const tr_config *c, int64_t steps, int64_t warmup, char sets[][128], int max)
{
    const int L = c->model.n_layers;
    const int64_t out = c->model.widths[L];
    const int64_t classes = (c->train.loss == TR_LOSS_CROSS_ENTROPY || c->train.loss == TR_LOSS_NLL) ? out : 2;
    int64_t batch = c->train.batch_size > 0 ? c->train.batch_size : 1024;
    /* at most 64 steps of distinct rows (the bench wraps around them: epochs), but at least
     * 64 MiB of them, twice a large L3 cache: the batch gather then reads from memory and
     * pushes the optimizer's state out of the caches as a real data set does (the 784 net's
     * Adam pass took 0.072 ms with 25 MB of rows, 0.116 ms with Fashion-MNIST's 188 MB) */
    const int64_t distinct = steps + warmup < 64 ? steps + warmup : 64;
    int64_t rows = batch * c->train.accumulate * distinct;
    const int64_t row_bytes = (c->model.widths[0] + 1) * (int64_t)sizeof(float);
    if (rows * row_bytes < ((int64_t)64 << 20))
        rows = ((int64_t)64 << 20) / row_bytes;
    int n = 0;
    if (max < 15)
        return 0;
    /* whatever source the configuration names (files, a built-in set) gives way to the
     * random rows: one source */
    static const char *const sources[] = {"path", "test_path", "images", "labels", "test_images", "test_labels",
                                          "builtin"};
    for (size_t i = 0; i < sizeof sources / sizeof *sources; i++)
        snprintf(sets[n++], 128, "data.%s=", sources[i]);
    snprintf(sets[n++], 128, "data.generator=random");
    snprintf(sets[n++], 128, "data.n=%lld", (long long)rows);
    snprintf(sets[n++], 128, "data.n_features=%lld", (long long)c->model.widths[0]);
    snprintf(sets[n++], 128, "data.classes=%lld", (long long)classes);
    snprintf(sets[n++], 128, "data.test_fraction=0");
    snprintf(sets[n++], 128, "data.val_fraction=0");
    snprintf(sets[n++], 128, "data.format=auto");
    snprintf(sets[n++], 128, "train.batch_size=%lld", (long long)batch);
    return n;
}

/* Buffers laid out like the model's: one weight, gradient and activation buffer per layer;
 * the products' inputs (act, W, dZ) in the precision's type. */
typedef struct roofline {
    const tr_model *m;
    int64_t B;
    void *act[TR_MAX_LAYERS + 1], *W[TR_MAX_LAYERS], *dZ;
    float *out[TR_MAX_LAYERS + 1], *G[TR_MAX_LAYERS], *dX;
} roofline;

static void roofline_free(roofline *r)
{
    for (int l = 0; l <= TR_MAX_LAYERS; l++) {
        tr_big_free(r->act[l]);
        tr_big_free(r->out[l]);
        if (l < TR_MAX_LAYERS) {
            tr_big_free(r->W[l]);
            tr_big_free(r->G[l]);
        }
    }
    tr_big_free(r->dZ);
    tr_big_free(r->dX);
    memset(r, 0, sizeof *r);
}

/* n values of purpose `p` in [-0.5, 0.5) (+ 0.5 for activations) into dst, in the precision's type. */
static void fill(void *dst, float *tmp, size_t n, bool half, uint32_t p, float shift)
{
    tr_rng g = tr_rng_make(1);
    for (size_t i = 0; i < n; i++)
        tmp[i] = (float)tr_rng_uniform(g, 7, p, (uint64_t)i) - shift;
    if (half)
        tr_bf16_round(dst, tmp, n);
    else
        memcpy(dst, tmp, n * sizeof(float));
}

static int roofline_init(roofline *r, const tr_model *m, int64_t B, tr_err *err)
{
    memset(r, 0, sizeof *r);
    r->m = m;
    r->B = B;
    const int L = m->n_layers;
    const bool half = tr_gemm_precision_of(m->gemm) == TR_PRECISION_BF16;
    const size_t in = half ? sizeof(tr_bf16) : sizeof(float);
    size_t most = (size_t)(B * m->max_width);
    for (int l = 0; l < L; l++)
        most = (size_t)(m->layer[l].in * m->layer[l].out) > most ? (size_t)(m->layer[l].in * m->layer[l].out) : most;
    float *tmp = tr_big_alloc(most * sizeof(float));
    r->dZ = tr_big_alloc((size_t)(B * m->max_width) * in);
    r->dX = tr_big_alloc((size_t)(B * m->max_width) * sizeof(float));
    bool ok = tmp && r->dZ && r->dX;
    for (int l = 0; l <= L && ok; l++) {
        const int64_t w = l == 0 ? m->layer[0].in : m->layer[l - 1].out;
        r->act[l] = tr_big_alloc((size_t)(B * w) * in);
        r->out[l] = tr_big_alloc((size_t)(B * w) * sizeof(float));
        ok = r->act[l] && r->out[l];
        if (ok)
            fill(r->act[l], tmp, (size_t)(B * w), half, (uint32_t)l, 0.0f);
        if (ok && l < L) {
            const size_t n = (size_t)(m->layer[l].in * m->layer[l].out);
            r->W[l] = tr_big_alloc(n * in);
            r->G[l] = tr_big_alloc(n * sizeof(float));
            ok = r->W[l] && r->G[l];
            if (ok)
                fill(r->W[l], tmp, n, half, 100u + (uint32_t)l, 0.5f);
        }
    }
    if (ok)
        fill(r->dZ, tmp, (size_t)(B * m->max_width), half, 200, 0.5f);
    tr_big_free(tmp);
    if (!ok) {
        roofline_free(r);
        return tr_fail(err, TR_ENOMEM, "out of memory for the roofline buffers");
    }
    return 0;
}

/* The products of `micro` micro-steps (forward, weight gradient, input gradient), through the
 * model's engine. */
static void roofline_run(const roofline *r, int64_t micro)
{
    const tr_model *m = r->m;
    const int L = m->n_layers;
    const int64_t b = r->B;
    for (int64_t k = 0; k < micro; k++) {
        for (int l = 0; l < L; l++) {
            const int64_t Ni = m->layer[l].in, No = m->layer[l].out;
            tr_gemm_product(m->gemm, &(tr_gemm_call){.tb = true, .M = b, .N = No, .K = Ni, .A = r->act[l], .lda = Ni,
                                                     .B = r->W[l], .ldb = Ni, .bias = m->layer[l].b,
                                                     .C = r->out[l + 1], .ldc = No});
        }
        for (int l = L - 1; l >= 0; l--) {
            const int64_t Ni = m->layer[l].in, No = m->layer[l].out;
            tr_gemm_product(m->gemm, &(tr_gemm_call){.ta = true, .M = No, .N = Ni, .K = b, .A = r->dZ, .lda = No,
                                                     .B = r->act[l], .ldb = Ni, .beta = 1.0f, .C = r->G[l], .ldc = Ni});
            if (l > 0)
                tr_gemm_product(m->gemm, &(tr_gemm_call){.M = b, .N = Ni, .K = No, .A = r->dZ, .lda = No,
                                                         .B = r->W[l], .ldb = Ni, .C = r->dX, .ldc = Ni});
        }
    }
}

/* MFLOP of one micro-step's products at B rows per rank. */
static double step_mflop(const tr_model *m, int64_t B)
{
    tr_gemm_shape shapes[3 * TR_MAX_LAYERS];
    const int n = tr_model_gemm_shapes(m, B, false, shapes);
    double flop = 0.0;
    for (int i = 0; i < n; i++)
        flop += 2.0 * (double)shapes[i].M * (double)shapes[i].N * (double)shapes[i].K;
    return flop / 1e6;
}

int tr_bench_measure_limit(const tr_config *c, tr_dist *d, int64_t rows, tr_bench_limit *l, tr_err *err)
{
    memset(l, 0, sizeof *l);
    tr_model m;
    int rc = tr_dist_agree(d, tr_model_init(&m, &c->model, rows, err));
    if (rc)
        return rc;
    tr_dist_barrier(d);
    tr_peak_measure(&l->peak);
    double peaks[2] = {l->peak.fp32_gflops, l->peak.bf16_gflops};
    rc = tr_dist_max_f64(d, peaks, 2, err);
    l->peak.fp32_gflops = peaks[0];
    l->peak.bf16_gflops = peaks[1];
    tr_gemm_shape shapes[3 * TR_MAX_LAYERS];
    const int n = tr_model_gemm_shapes(&m, rows, c->train.accumulate > 1, shapes);
    const double mflop = step_mflop(&m, rows);
    for (int p = 0; !rc && p < TR_PRECISION_COUNT; p++) {
        tr_dist_barrier(d);
        rc = tr_dist_agree(d, tr_gemm_time_engines(shapes, n, (tr_precision)p, l->seconds[p], err));
        if (!rc) /* the slowest rank's */
            rc = tr_dist_max_f64(d, l->seconds[p], TR_GEMM_ENGINE_COUNT, err);
        for (int e = 0; e < TR_GEMM_ENGINE_COUNT; e++)
            l->gflops[p][e] = isfinite(l->seconds[p][e]) ? mflop / l->seconds[p][e] / 1e3 : 0.0;
    }
    tr_model_free(&m);
    return rc;
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#define MAX_ROUNDS 64
#define ROUND_STEPS 20

/* The round trip of one cache line between local ranks 0 and 1 (a flag each sets in turn in
 * node-shared memory), in ns; NAN with fewer than two ranks on the node. What the node-shared
 * exchange pays per line that crosses cores: the host of a virtual machine may place its two
 * CPUs on one core complex (about 60 ns here) or on two (about 370 ns), and the 784 network's
 * backward pass at np=2 then takes 0.18 or 0.31 ms; a benchmark table must say which it saw.
 * Collective. */
static double core_round_trip_ns(tr_dist *d, tr_err *err)
{
    enum { TRIPS = 10000 };
    void *base;
    tr_node_mem *mem;
    if (tr_node_mem_alloc(d, 64, &base, &mem, err))
        return NAN;
    double ns = NAN;
    _Atomic int *flag = base;
    if (mem && d->local_rank == 0)
        atomic_store(flag, 0);
    tr_dist_node_barrier(d);
    if (mem && d->local_rank < 2) {
        const int me = d->local_rank;
        const double t0 = tr_seconds();
        for (int i = 0; i < TRIPS; i++) { /* rank 0 turns 0 into 1, rank 1 turns 1 into 0 */
            for (int spins = 0; atomic_load_explicit(flag, memory_order_acquire) != me; spins++)
                if (spins > 1000) /* the other rank may share this CPU (oversubscribed) */
                    sched_yield();
            atomic_store_explicit(flag, 1 - me, memory_order_release);
        }
        ns = 1e9 * (tr_seconds() - t0) / TRIPS;
    }
    tr_dist_node_barrier(d);
    tr_node_mem_free(mem);
    return ns;
}

int tr_bench_run(const tr_config *c, tr_dist *d, int64_t steps, int64_t warmup, tr_bench_result *r, tr_err *err)
{
    memset(r, 0, sizeof *r);
    tr_trainer t;
    int rc = tr_trainer_init(&t, c, d, NULL, err);
    rc = tr_dist_agree(d, rc);
    if (rc) {
        tr_trainer_free(&t);
        return rc;
    }
    tr_sampler_set_epoch(&t.sampler, 0);
    for (int64_t s = 0; s < warmup && !rc; s++)
        rc = tr_trainer_step(&t, s, err);
    /* short rounds: ROUND_STEPS training steps, then the same products alone, so both see
     * the same conditions of a shared machine while caches stay as they are in training;
     * medians over the rounds */
    int ROUNDS = (int)((steps + ROUND_STEPS - 1) / ROUND_STEPS);
    if (ROUNDS > MAX_ROUNDS)
        ROUNDS = MAX_ROUNDS;
    if (ROUNDS < 1)
        ROUNDS = 1;
    const int64_t per_round = (steps + ROUNDS - 1) / ROUNDS;
    const int64_t B = tr_sampler_max_local_rows(&t.sampler);
    double step_s[MAX_ROUNDS], gemm_s[MAX_ROUNDS], phase[MAX_ROUNDS][TR_PHASE_COUNT];
    roofline roof;
    rc = tr_dist_agree(d, roofline_init(&roof, &t.model, B, err));
    int64_t s = warmup;
    for (int k = 0; k < ROUNDS && !rc; k++) {
        memset(t.phase, 0, sizeof t.phase);
        double times[2] = {0.0, 0.0};
        for (int64_t i = 0; i < per_round && !rc; i++, s++) {
            if (s >= tr_sampler_steps(&t.sampler)) { /* wrap around the random data */
                tr_sampler_set_epoch(&t.sampler, t.sampler.epoch + 1);
                s = 0;
            }
            const double t0 = tr_seconds();
            rc = tr_trainer_step(&t, s, err);
            times[0] += tr_seconds() - t0;
        }
        tr_dist_barrier(d);
        const double t1 = tr_seconds();
        roofline_run(&roof, per_round * c->train.accumulate);
        times[1] = tr_seconds() - t1;
        tr_dist_barrier(d);
        memcpy(phase[k], t.phase, sizeof t.phase);
        rc = tr_dist_agree(d, rc);
        if (!rc) /* each phase as the slowest rank spent it */
            rc = tr_dist_max_f64(d, phase[k], TR_PHASE_COUNT, err);
        if (!rc)
            rc = tr_dist_max_f64(d, times, 2, err); /* the slowest rank sets the pace */
        step_s[k] = times[0];
        gemm_s[k] = times[1];
    }
    roofline_free(&roof);
    r->core_rtt_ns = NAN;
    if (!rc)
        r->core_rtt_ns = core_round_trip_ns(d, err);
    if (!rc) {
        double ratio[MAX_ROUNDS], st[MAX_ROUNDS];
        for (int k = 0; k < ROUNDS; k++) {
            ratio[k] = gemm_s[k] / step_s[k];
            st[k] = step_s[k];
        }
        qsort(st, ROUNDS, sizeof *st, cmp_double);
        qsort(gemm_s, ROUNDS, sizeof *gemm_s, cmp_double);
        qsort(ratio, ROUNDS, sizeof *ratio, cmp_double);
        r->step_ms = 1e3 * st[ROUNDS / 2] / (double)per_round;
        r->gemm_ms = 1e3 * gemm_s[ROUNDS / 2] / (double)per_round;
        r->gemm_fraction = ratio[ROUNDS / 2];
        for (int p = 0; p < TR_PHASE_COUNT; p++) {
            double v[MAX_ROUNDS];
            for (int k = 0; k < ROUNDS; k++)
                v[k] = phase[k][p];
            qsort(v, ROUNDS, sizeof *v, cmp_double);
            r->phase_ms[p] = 1e3 * v[ROUNDS / 2] / (double)per_round;
        }
        r->samples_per_s = (double)(t.sampler.batch * c->train.accumulate * per_round) / st[ROUNDS / 2];
        r->local_rows = B;
        r->threads = t.threads;
        r->params = t.model.n_trainable;
        r->gemm = t.gemm;
        r->mflop_per_sample = step_mflop(&t.model, B) / (double)B;
    }
    tr_trainer_free(&t);
    return rc;
}
