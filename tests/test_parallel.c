/*
 * test_parallel.c: data-parallel training under mpirun (CTest runs it with 4 ranks,
 * --oversubscribe). Sub-worlds of 1, 2, 3 and 4 ranks are split from the world in one job,
 * so runs at different rank counts can be compared in memory on rank 0:
 *   - np = 2 and 3 match np = 1 after 20 steps to 1e-5 (SGD and Adam, uneven global batch
 *     of 33 rows, both gradient paths: node-shared and bucketed allreduce);
 *   - the same with synchronised batch norm (before and after the activation), dropout,
 *     gradient-norm clipping and L1/L2 penalties;
 *   - deterministic mode: (np 1, accumulate 4), (np 2, accumulate 2), (np 4, accumulate 1)
 *     give bitwise the same parameters, also with batch norm per micro-batch and dropout;
 *   - compressed gradient sums (bf16, fp16) at np = 2 and 3 stay within 0.2% of np = 1
 *     (bf16 2e-4, fp16 2e-5 here) and differ from the fp32 sums;
 *   - every rank starts from the same parameters;
 *   - distributed evaluation equals single-rank evaluation exactly, also when each rank
 *     reads only its rows of an HDF5 test file.
 * Not Criterion: its forked test workers cannot share one MPI job. A failed check prints
 * its line; the exit status is non-zero if any rank saw a failure.
 */
#include "trainer/dist.h"
#include "trainer/generate.h"
#include "trainer/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures = 0;
static int world_rank = 0;

#define CHECK(cond, ...)                                                                  \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            failures++;                                                                   \
            fprintf(stderr, "[rank %d] %s:%d: check failed: %s: ", world_rank, __FILE__, \
                    __LINE__, #cond);                                                     \
            fprintf(stderr, __VA_ARGS__);                                                 \
            fputc('\n', stderr);                                                          \
        }                                                                                 \
    } while (0)

static const char *base_cfg =
    "[model]\nlayers = 2, 16, 16, 3\nactivations = tanh\noutput_activation = identity\n"
    "[data]\ngenerator = blobs\nn = 1000\nclasses = 3\nsd = 2.0\nseed = 5\ntest_fraction = 0.25\n"
    "[train]\nloss = cross_entropy\nepochs = 1\nbatch_size = 33\nseed = 11\nthreads = 1\n"
    "[output]\ndir = /tmp/trainer-parallel-test\n";

/* A trainer on sub-world `sub` (size > 0) with the given overrides, after `steps` steps of
 * epoch 0; the caller frees it. */
static int run_steps(tr_trainer *t, tr_config *c, tr_dist *sub, const char *const *sets, int n_sets, int64_t steps)
{
    tr_err err = {0};
    int rc = tr_config_load_string(c, "parallel.ini", base_cfg, sets, n_sets, &err);
    if (rc) {
        fprintf(stderr, "config: %s\n", err.msg);
        return rc;
    }
    rc = tr_dist_agree(sub, tr_trainer_init(t, c, sub, NULL, &err));
    if (rc) {
        fprintf(stderr, "[rank %d] init: %s\n", world_rank, err.msg);
        return rc;
    }
    tr_sampler_set_epoch(&t->sampler, 0);
    for (int64_t s = 0; s < steps && !rc; s++) {
        if (s >= tr_sampler_steps(&t->sampler)) {
            fprintf(stderr, "not enough steps in an epoch\n");
            return TR_EINTERNAL;
        }
        rc = tr_trainer_step(t, s, &err);
    }
    if (rc)
        fprintf(stderr, "[rank %d] step: %s\n", world_rank, err.msg);
    return rc;
}

/* Largest |a - b| relative to the largest |a| (per tensor padding is zero in both). */
static double rel_diff(const float *a, const float *b, size_t n)
{
    double d = 0.0, m = 0.0;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        m = fmax(m, fabs((double)a[i]));
    }
    return d / (m > 0 ? m : 1.0);
}

/* Runs the same training on a sub-world of `np` ranks (world ranks 0..np-1) and returns, on
 * world rank 0, a copy of the final parameters. */
static float *params_at(tr_dist *world, int np, const char *const *sets, int n_sets, int64_t steps, size_t *n)
{
    tr_dist sub;
    tr_err err = {0};
    if (tr_dist_split(world, world->rank < np ? 0 : -1, &sub, &err)) {
        fprintf(stderr, "split: %s\n", err.msg);
        failures++;
        return NULL;
    }
    float *copy = NULL;
    if (sub.size > 0) {
        tr_trainer t;
        tr_config c;
        int rc = run_steps(&t, &c, &sub, sets, n_sets, steps);
        CHECK(rc == 0, "training on %d ranks failed", np);
        bool same = false;
        CHECK(rc || (tr_dist_same_everywhere(&sub, t.model.params, t.model.n_params * sizeof(float), &same, NULL) == 0
                     && same),
              "np=%d: the replicas differ", np);
        if (!rc && world->rank == 0) {
            *n = t.model.n_params;
            copy = malloc(*n * sizeof *copy);
            memcpy(copy, t.model.params, *n * sizeof *copy);
        }
        tr_trainer_free(&t);
        tr_config_free(&c);
        tr_dist_free(&sub);
    }
    tr_dist_barrier(world);
    return copy;
}

static void test_rank_counts_agree(tr_dist *world)
{
    const char *opts[] = {"train.optimizer=sgd", "train.optimizer=adam"};
    const char *comms[] = {"train.comm=shared", "train.comm=allreduce"};
    for (int o = 0; o < 2; o++) {
        size_t n1 = 0, n;
        const char *sets1[] = {opts[o], "train.lr=0.05"};
        float *p1 = params_at(world, 1, sets1, 2, 20, &n1);
        for (int cm = 0; cm < 2; cm++)
            for (int np = 2; np <= 3; np++) {
                const char *sets[] = {opts[o], "train.lr=0.05", comms[cm]};
                float *p = params_at(world, np, sets, 3, 20, &n);
                if (world->rank == 0 && p1 && p) {
                    const double d = rel_diff(p1, p, n1);
                    CHECK(d < 1e-5, "%s, %s, np=%d: parameters differ from np=1 by %g (relative)", opts[o],
                          comms[cm], np, d);
                    printf("np=%d %-20s %-22s max relative difference to np=1: %.2e\n", np, opts[o], comms[cm], d);
                }
                free(p);
            }
        free(p1);
    }
}

/* Batch norm (synchronised), dropout, clipping and penalties: np = 2 and 3 match np = 1.
 * Dropout masks follow the sample, so every rank count drops the same units; synchronised
 * batch norm normalises over the global batch. Momentum SGD: in front of a batch norm a bias
 * gradient is zero up to rounding, which Adam would blow up into full steps. Control: without
 * synchronisation each rank normalises its own slice and the runs differ. */
static void test_regularisers_agree(tr_dist *world)
{
    const char *sets[] = {"train.optimizer=momentum", "train.lr=0.05", "model.batchnorm=true",
                          "model.dropout=0.3", "train.clip_norm=0.05", "train.l1=1e-4", "train.l2=1e-3",
                          "train.comm=shared"};
    const int n_sets = 8;
    const char *positions[] = {"model.batchnorm_position=before", "model.batchnorm_position=after"};
    for (int pos = 0; pos < 2; pos++) {
        const char *one[9];
        memcpy(one, sets, sizeof sets);
        one[n_sets] = positions[pos];
        size_t n1 = 0, n;
        float *p1 = params_at(world, 1, one, n_sets + 1, 20, &n1);
        for (int cm = 0; cm < 2; cm++)
            for (int np = 2; np <= 3; np++) {
                const char *more[9];
                memcpy(more, one, sizeof one);
                more[n_sets - 1] = cm ? "train.comm=allreduce" : "train.comm=shared";
                float *p = params_at(world, np, more, n_sets + 1, 20, &n);
                if (world->rank == 0 && p1 && p) {
                    const double d = rel_diff(p1, p, n1);
                    CHECK(d < 1e-5, "batch norm %s, dropout, clipping, %s, np=%d: parameters differ from np=1 by %g",
                          positions[pos], more[n_sets - 1], np, d);
                    printf("np=%d batch norm %-6s + dropout + clip + l1/l2 %-20s max relative difference to np=1: "
                           "%.2e\n", np, positions[pos] + 25, more[n_sets - 1], d);
                }
                free(p);
            }
        const char *unsynced[10];
        memcpy(unsynced, one, sizeof one);
        unsynced[n_sets + 1] = "train.sync_bn=false";
        float *p = params_at(world, 2, unsynced, n_sets + 2, 20, &n);
        if (world->rank == 0 && p1 && p)
            CHECK(rel_diff(p1, p, n1) > 1e-3, "control: sync_bn=false at np=2 matches np=1 (%g): the test is vacuous",
                  rel_diff(p1, p, n1));
        free(p);
        free(p1);
    }
}

/* A model above the size from which the node-shared step streams its updates into the
 * parameter buffer the step does not read (reduce.c, STREAM_MIN: 65536 parameters; this one
 * has 92103, and zero padding between its tensors that must stay zero): at np=2 it gives the
 * bits of the allreduce exchange (a sum of two is the same in either order), with clipping
 * (the update after the global norm) and without, and with LAMB (each tensor's norms summed
 * over the ranks' shards), and np=3 matches np=1 to rounding (Adam magnifies the rounding of
 * near-zero gradients: 1.6e-5 here). */
static void test_streamed_updates(tr_dist *world)
{
    const char *opts[] = {"train.optimizer=adam", "train.optimizer=momentum", "train.optimizer=lamb"};
    const char *clips[] = {"train.clip_norm=0", "train.clip_norm=0.5"};
    for (int o = 0; o < 3; o++)
        for (int k = 0; k < 2; k++) {
            /* one engine for all runs (auto times them anew in each): the bits are compared */
            const char *shared[] = {"model.layers=2,300,300,3", opts[o], "train.lr=0.01", clips[k],
                                    "train.comm=shared", "train.gemm=openblas"};
            const char *allreduce[] = {"model.layers=2,300,300,3", opts[o], "train.lr=0.01", clips[k],
                                       "train.comm=allreduce", "train.gemm=openblas"};
            size_t n1 = 0, n2 = 0, n3 = 0, na = 0;
            float *p1 = params_at(world, 1, shared, 6, 12, &n1);
            float *p2 = params_at(world, 2, shared, 6, 12, &n2);
            float *pa = params_at(world, 2, allreduce, 6, 12, &na);
            float *p3 = params_at(world, 3, shared, 6, 12, &n3);
            if (world->rank == 0 && p1 && p2 && pa && p3) {
                CHECK(memcmp(p2, pa, n2 * sizeof *p2) == 0, "%s, %s: np=2 shared differs from allreduce by %g",
                      opts[o], clips[k], rel_diff(pa, p2, n2));
                CHECK(rel_diff(p1, p3, n1) < 1e-4, "%s, %s: np=3 differs from np=1 by %g", opts[o], clips[k],
                      rel_diff(p1, p3, n1));
                printf("92103 parameters, %s, %s: np=2 shared = allreduce bit for bit; np=3 vs np=1 %.2e\n", opts[o],
                       clips[k], rel_diff(p1, p3, n1));
            }
            free(p1);
            free(p2);
            free(pa);
            free(p3);
        }
}

/* grad_compression over the bucketed allreduce: each rank's gradient rounded to 16 bits and
 * summed in 16 bits; the replicas stay equal (params_at checks) and near the fp32 result. */
static void test_compressed_sums(tr_dist *world)
{
    size_t n1 = 0, n;
    const char *fp32[] = {"train.optimizer=sgd", "train.lr=0.05", "train.comm=allreduce", "train.grad_compression=none"};
    float *p1 = params_at(world, 1, fp32, 4, 20, &n1);
    float *p2 = params_at(world, 2, fp32, 4, 20, &n);
    const char *kinds[] = {"train.grad_compression=bf16", "train.grad_compression=fp16"};
    for (int k = 0; k < 2; k++)
        for (int np = 2; np <= 3; np++) {
            const char *sets[] = {"train.optimizer=sgd", "train.lr=0.05", "train.comm=allreduce", kinds[k]};
            float *p = params_at(world, np, sets, 4, 20, &n);
            if (world->rank == 0 && p1 && p2 && p) {
                const double d = rel_diff(p1, p, n1);
                CHECK(d < 2e-3, "%s, np=%d: parameters differ from np=1 by %g", kinds[k], np, d);
                if (np == 2)
                    CHECK(memcmp(p, p2, n * sizeof *p) != 0, "%s: the same bits as fp32 sums: nothing compressed",
                          kinds[k]);
                printf("np=%d %-28s max relative difference to np=1: %.2e\n", np, kinds[k], d);
            }
            free(p);
        }
    free(p1);
    free(p2);
}

static void test_deterministic_bitwise(tr_dist *world)
{
    /* micro-batches of 16 rows: 300 training rows -> 18 full steps of 64 rows */
    const char *a[] = {"train.deterministic=true", "train.optimizer=adam", "train.batch_size=16", "train.accumulate=4",
                       "train.lr=0.01"};
    const char *b[] = {"train.deterministic=true", "train.optimizer=adam", "train.batch_size=32", "train.accumulate=2",
                       "train.lr=0.01"};
    const char *c4[] = {"train.deterministic=true", "train.optimizer=adam", "train.batch_size=64",
                        "train.accumulate=1", "train.lr=0.01"};
    size_t n1 = 0, n2 = 0, n4 = 0;
    /* control: the default float sums differ in the last bits, or this test proves nothing */
    const char *a0[] = {"train.deterministic=false", "train.optimizer=adam", "train.batch_size=16",
                        "train.accumulate=4", "train.lr=0.01", "train.comm=allreduce"};
    const char *b0[] = {"train.deterministic=false", "train.optimizer=adam", "train.batch_size=32",
                        "train.accumulate=2", "train.lr=0.01", "train.comm=allreduce"};
    float *q1 = params_at(world, 1, a0, 6, 4, &n1);
    float *q2 = params_at(world, 2, b0, 6, 4, &n2);
    if (world->rank == 0 && q1 && q2)
        CHECK(memcmp(q1, q2, n1 * sizeof *q1) != 0, "control: float sums are bitwise equal too; the test is vacuous");
    free(q1);
    free(q2);
    float *p1 = params_at(world, 1, a, 5, 4, &n1);
    float *p2 = params_at(world, 2, b, 5, 4, &n2);
    float *p4 = world->size >= 4 ? params_at(world, 4, c4, 5, 4, &n4) : NULL;
    if (world->rank == 0 && p1 && p2) {
        CHECK(n1 == n2 && memcmp(p1, p2, n1 * sizeof *p1) == 0,
              "deterministic np=2 x accumulate 2 differs from np=1 x accumulate 4 (max relative %g)",
              rel_diff(p1, p2, n1));
        if (p4)
            CHECK(n1 == n4 && memcmp(p1, p4, n1 * sizeof *p1) == 0,
                  "deterministic np=4 x accumulate 1 differs from np=1 x accumulate 4 (max relative %g)",
                  rel_diff(p1, p4, n1));
        printf("deterministic: np1xacc4 %s np2xacc2%s\n", memcmp(p1, p2, n1 * sizeof *p1) ? "!=" : "==",
               p4 ? (memcmp(p1, p4, n1 * sizeof *p1) ? " != np4xacc1" : " == np4xacc1") : "");
    }
    free(p1);
    free(p2);
    free(p4);
    /* with batch norm per micro-batch (sync_bn = false) and dropout: still bitwise */
    const char *bn1[] = {"train.deterministic=true", "train.optimizer=momentum", "train.batch_size=16",
                         "train.accumulate=4", "train.lr=0.01", "model.batchnorm=true", "model.dropout=0.2",
                         "train.sync_bn=false"};
    const char *bn2[] = {"train.deterministic=true", "train.optimizer=momentum", "train.batch_size=32",
                         "train.accumulate=2", "train.lr=0.01", "model.batchnorm=true", "model.dropout=0.2",
                         "train.sync_bn=false"};
    p1 = params_at(world, 1, bn1, 8, 4, &n1);
    p2 = params_at(world, 2, bn2, 8, 4, &n2);
    if (world->rank == 0 && p1 && p2) {
        CHECK(n1 == n2 && memcmp(p1, p2, n1 * sizeof *p1) == 0,
              "deterministic with batch norm and dropout: np=2 x accumulate 2 differs from np=1 x accumulate 4 "
              "(max relative %g)", rel_diff(p1, p2, n1));
        printf("deterministic, batch norm + dropout: np1xacc4 %s np2xacc2\n",
               memcmp(p1, p2, n1 * sizeof *p1) ? "!=" : "==");
    }
    free(p1);
    free(p2);
}

static void test_same_start(tr_dist *world)
{
    const char *comms[] = {"train.comm=allreduce", "train.comm=shared"};
    for (int cm = 0; cm < 2; cm++) {
        tr_trainer t;
        tr_config c;
        int rc = run_steps(&t, &c, world, comms + cm, 1, 0);
        CHECK(rc == 0, "init failed");
        bool same = false;
        tr_err err;
        CHECK(tr_dist_same_everywhere(world, t.model.params, t.model.n_params * sizeof(float), &same, &err) == 0,
              "hash");
        CHECK(same, "%s: the initial parameters differ between ranks", comms[cm]);
        rc = tr_trainer_step(&t, 0, &err);
        CHECK(rc == 0 && tr_dist_same_everywhere(world, t.model.params, t.model.n_params * sizeof(float), &same,
                                                 &err) == 0 && same,
              "%s: replicas differ after a step", comms[cm]);
        tr_trainer_free(&t);
        tr_config_free(&c);
    }
}

/* Metrics of the configured test set on `np` ranks with the parameters `params`. */
static void eval_at(tr_dist *world, int np, const char *const *sets, int n_sets, const float *params,
                    tr_metrics *out)
{
    tr_dist sub;
    tr_dist_split(world, world->rank < np ? 0 : -1, &sub, NULL);
    if (sub.size > 0) {
        tr_trainer t;
        tr_config c;
        int rc = run_steps(&t, &c, &sub, sets, n_sets, 0);
        CHECK(rc == 0, "eval setup on %d ranks", np);
        tr_err err;
        if (sub.rank == 0 || tr_reduce_kind_of(t.reduce) != TR_REDUCE_SHARED)
            memcpy(t.model.params, params, t.model.n_params * sizeof(float));
        tr_dist_barrier(&sub);
        tr_metrics m;
        tr_metrics_init(&m, tr_loss_task(&t.loss), tr_loss_classes(&t.loss), NULL);
        CHECK(tr_trainer_evaluate(&t, &t.data.test, &m, &err) == 0, "evaluate on %d ranks: %s", np, err.msg);
        if (world->rank == 0) {
            *out = m;
            out->confusion = malloc((size_t)(m.classes * m.classes) * sizeof *out->confusion);
            memcpy(out->confusion, m.confusion, (size_t)(m.classes * m.classes) * sizeof *out->confusion);
            out->precision = out->recall = out->f1 = NULL;
        }
        tr_metrics_free(&m);
        tr_trainer_free(&t);
        tr_config_free(&c);
        tr_dist_free(&sub);
    }
    tr_dist_barrier(world);
}

static void test_distributed_eval(tr_dist *world, const char *h5dir)
{
    /* a trained model to evaluate */
    size_t n = 0;
    const char *train_sets[] = {"train.optimizer=adam", "train.lr=0.02"};
    float *params = params_at(world, 1, train_sets, 2, 9, &n);
    tr_dist_bcast(world, &n, sizeof n, 0, NULL);
    if (world->rank != 0)
        params = malloc(n * sizeof *params);
    tr_dist_bcast(world, params, n * sizeof *params, 0, NULL);

    char h5sets[2][512];
    snprintf(h5sets[0], sizeof h5sets[0], "data.path=%s/train.h5", h5dir);
    snprintf(h5sets[1], sizeof h5sets[1], "data.test_path=%s/test.h5", h5dir);
    const char *file_sets[] = {"data.generator=", h5sets[0], h5sets[1], "data.test_fraction=0",
                               "train.eval_batch_size=16"};
    struct {
        const char *name;
        const char *const *sets;
        int n;
    } cases[] = {{"split test set", NULL, 0}, {"HDF5 test file read by hyperslab", file_sets, 5}};
    for (int k = 0; k < 2; k++) {
        tr_metrics m1, mp;
        eval_at(world, 1, cases[k].sets, cases[k].n, params, &m1);
        for (int np = 2; np <= world->size && np <= 3; np++) {
            eval_at(world, np, cases[k].sets, cases[k].n, params, &mp);
            if (world->rank == 0) {
                CHECK(m1.rows == mp.rows, "%s: rows %lld vs %lld", cases[k].name, (long long)m1.rows,
                      (long long)mp.rows);
                CHECK(memcmp(&m1.loss, &mp.loss, sizeof m1.loss) == 0, "%s, np=%d: loss %.17g vs %.17g",
                      cases[k].name, np, m1.loss, mp.loss);
                CHECK(m1.accuracy == mp.accuracy, "%s, np=%d: accuracy %.17g vs %.17g", cases[k].name, np,
                      m1.accuracy, mp.accuracy);
                CHECK(memcmp(m1.confusion, mp.confusion, (size_t)(m1.classes * m1.classes) * sizeof(int64_t)) == 0,
                      "%s, np=%d: confusion matrices differ", cases[k].name, np);
                printf("eval %-34s np=%d: loss %.17g accuracy %.4f (np=1: %.17g)\n", cases[k].name, np, mp.loss,
                       mp.accuracy, m1.loss);
                free(mp.confusion);
            }
        }
        if (world->rank == 0)
            free(m1.confusion);
    }
    free(params);
}

/* Writes the blobs data as separate HDF5 train and test files (rank 0). */
static void write_h5_files(tr_dist *world, char *dir, size_t len)
{
    snprintf(dir, len, "/tmp/trainer-parallel-XXXXXX");
    if (world->rank == 0 && !mkdtemp(dir))
        failures++;
    tr_dist_bcast(world, dir, len, 0, NULL);
    if (world->rank == 0) { /* one generated set: 900 training rows, 101 test rows */
        tr_config c;
        tr_config_load_string(&c, "parallel.ini", base_cfg, NULL, 0, NULL);
        c.data.n = 1001;
        tr_dataset all, part;
        char p[600];
        tr_generate(&all, &c.data, NULL);
        int64_t *idx = malloc(1001 * sizeof *idx);
        for (int64_t i = 0; i < 1001; i++)
            idx[i] = i;
        tr_dataset_take(&part, &all, idx, 900, NULL);
        snprintf(p, sizeof p, "%s/train.h5", dir);
        CHECK(tr_dataset_save(&part, p, true, NULL) == 0, "write %s", p);
        tr_dataset_free(&part);
        tr_dataset_take(&part, &all, idx + 900, 101, NULL);
        snprintf(p, sizeof p, "%s/test.h5", dir);
        CHECK(tr_dataset_save(&part, p, true, NULL) == 0, "write %s", p);
        tr_dataset_free(&part);
        tr_dataset_free(&all);
        free(idx);
        tr_config_free(&c);
    }
    tr_dist_barrier(world);
}

int main(int argc, char **argv)
{
    tr_dist world;
    tr_err err = {0};
    if (tr_dist_init(&world, &argc, &argv, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    world_rank = world.rank;
    if (world.size < 3 && world.rank == 0)
        fprintf(stderr, "run with at least 3 ranks (4 for the np=4 deterministic case)\n");
    char dir[256];
    write_h5_files(&world, dir, sizeof dir);
    test_same_start(&world);
    test_rank_counts_agree(&world);
    test_regularisers_agree(&world);
    test_streamed_updates(&world);
    test_compressed_sums(&world);
    test_deterministic_bitwise(&world);
    test_distributed_eval(&world, dir);
    int total = failures;
    int64_t all = total;
    tr_dist_sum_i64(&world, &all, 1, NULL);
    if (world.rank == 0) {
        printf("%s: %lld failed checks over %d ranks\n", all ? "FAIL" : "PASS", (long long)all, world.size);
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", dir);
    }
    tr_dist_finalize(&world);
    return all ? 1 : 0;
}
