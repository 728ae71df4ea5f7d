/*
 * bench.c: per-phase timing of training steps and the sgemm-only roofline.
 *
 * Roofline: per layer and micro-step, the forward product (B, O, I), the weight gradient
 * (O, I, B) and, above the first layer, the input gradient (B, I, O), with B this rank's
 * rows, timed on scratch buffers while every rank does the same (so memory contention is
 * as in training).
 */
#include "trainer/bench.h"

#include "trainer/clock.h"
#include "trainer/mem.h"
#include "trainer/rng.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int tr_bench_data_sets(const tr_config *c, int64_t steps, int64_t warmup, char sets[][128], int max)
{
    const int L = c->model.n_layers;
    const int64_t out = c->model.widths[L];
    const int64_t classes = (c->train.loss == TR_LOSS_CROSS_ENTROPY || c->train.loss == TR_LOSS_NLL) ? out : 2;
    int64_t batch = c->train.batch_size > 0 ? c->train.batch_size : 1024;
    /* at most 64 steps of distinct rows: the bench wraps around them (epochs) */
    const int64_t distinct = steps + warmup < 64 ? steps + warmup : 64;
    const int64_t rows = batch * c->train.accumulate * distinct;
    int n = 0;
    if (max < 8)
        return 0;
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

/* Buffers laid out like the model's: one weight, gradient and activation buffer per layer. */
typedef struct roofline {
    const tr_model *m;
    int64_t B;
    float *act[TR_MAX_LAYERS + 1], *W[TR_MAX_LAYERS], *G[TR_MAX_LAYERS], *dZ, *dX;
} roofline;

static void roofline_free(roofline *r)
{
    for (int l = 0; l <= TR_MAX_LAYERS; l++) {
        tr_big_free(r->act[l]);
        if (l < TR_MAX_LAYERS) {
            tr_big_free(r->W[l]);
            tr_big_free(r->G[l]);
        }
    }
    tr_big_free(r->dZ);
    tr_big_free(r->dX);
    memset(r, 0, sizeof *r);
}

static int roofline_init(roofline *r, const tr_model *m, int64_t B, tr_err *err)
{
    memset(r, 0, sizeof *r);
    r->m = m;
    r->B = B;
    const int L = m->n_layers;
    r->dZ = tr_big_alloc((size_t)(B * m->max_width) * sizeof(float));
    r->dX = tr_big_alloc((size_t)(B * m->max_width) * sizeof(float));
    bool ok = r->dZ && r->dX;
    tr_rng g = tr_rng_make(1);
    for (int l = 0; l <= L && ok; l++) {
        const int64_t w = l == 0 ? m->layer[0].in : m->layer[l - 1].out;
        r->act[l] = tr_big_alloc((size_t)(B * w) * sizeof(float));
        ok = r->act[l] != NULL;
        for (int64_t i = 0; ok && i < B * w; i++)
            r->act[l][i] = (float)tr_rng_uniform(g, 7, (uint32_t)l, (uint64_t)i);
        if (ok && l < L) {
            const size_t n = (size_t)(m->layer[l].in * m->layer[l].out);
            r->W[l] = tr_big_alloc(n * sizeof(float));
            r->G[l] = tr_big_alloc(n * sizeof(float));
            ok = r->W[l] && r->G[l];
            for (size_t i = 0; ok && i < n; i++)
                r->W[l][i] = (float)tr_rng_uniform(g, 7, 100u + (uint32_t)l, i) - 0.5f;
        }
    }
    for (int64_t i = 0; ok && i < B * m->max_width; i++)
        r->dZ[i] = (float)tr_rng_uniform(g, 7, 200, (uint64_t)i) - 0.5f;
    if (!ok) {
        roofline_free(r);
        return tr_fail(err, TR_ENOMEM, "out of memory for the sgemm roofline buffers");
    }
    return 0;
}

/* The sgemm calls of `micro` micro-steps (forward, weight gradient, input gradient). */
static void roofline_run(const roofline *r, int64_t micro)
{
    const tr_model *m = r->m;
    const int L = m->n_layers, b = (int)r->B;
    for (int64_t k = 0; k < micro; k++) {
        for (int l = 0; l < L; l++) {
            const int Ni = (int)m->layer[l].in, No = (int)m->layer[l].out;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, b, No, Ni, 1.0f, r->act[l], Ni, r->W[l], Ni, 1.0f,
                        r->act[l + 1], No);
        }
        for (int l = L - 1; l >= 0; l--) {
            const int Ni = (int)m->layer[l].in, No = (int)m->layer[l].out;
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, No, Ni, b, 1.0f, r->dZ, No, r->act[l], Ni, 1.0f,
                        r->G[l], Ni);
            if (l > 0)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, b, Ni, No, 1.0f, r->dZ, No, r->W[l], Ni, 0.0f,
                            r->dX, Ni);
        }
    }
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#define MAX_ROUNDS 64
#define ROUND_STEPS 20

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
    /* short rounds: ROUND_STEPS training steps, then the same sgemm calls alone, so both see
     * the same conditions of a shared machine while caches stay as they are in training;
     * medians over the rounds */
    int ROUNDS = (int)((steps + ROUND_STEPS - 1) / ROUND_STEPS);
    if (ROUNDS > MAX_ROUNDS)
        ROUNDS = MAX_ROUNDS;
    if (ROUNDS < 1)
        ROUNDS = 1;
    const int64_t per_round = (steps + ROUNDS - 1) / ROUNDS;
    const int64_t B = tr_sampler_max_local_rows(&t.sampler);
    double step_s[MAX_ROUNDS], sgemm_s[MAX_ROUNDS], phase[MAX_ROUNDS][TR_PHASE_COUNT];
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
        sgemm_s[k] = times[1];
    }
    roofline_free(&roof);
    if (!rc) {
        double ratio[MAX_ROUNDS], st[MAX_ROUNDS];
        for (int k = 0; k < ROUNDS; k++) {
            ratio[k] = sgemm_s[k] / step_s[k];
            st[k] = step_s[k];
        }
        qsort(st, ROUNDS, sizeof *st, cmp_double);
        qsort(sgemm_s, ROUNDS, sizeof *sgemm_s, cmp_double);
        qsort(ratio, ROUNDS, sizeof *ratio, cmp_double);
        r->step_ms = 1e3 * st[ROUNDS / 2] / (double)per_round;
        r->sgemm_ms = 1e3 * sgemm_s[ROUNDS / 2] / (double)per_round;
        r->sgemm_fraction = ratio[ROUNDS / 2];
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
    }
    tr_trainer_free(&t);
    return rc;
}
