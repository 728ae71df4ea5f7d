/*
 * test_train.c: end-to-end training on one rank: known accuracies and recovered
 * coefficients, bitwise reproducibility, and gradient accumulation.
 */
#include "test_util.h"
#include "trainer/run.h"
#include "trainer/train.h"

#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

/* Loads the config with the overrides and a fresh run directory, and trains. */
static void train(tr_trainer *t, tr_config *c, tr_dist *d, const char *text, const char *const *sets, int n_sets)
{
    tr_err err = {0};
    char dir[256], set_dir[300];
    make_temp_dir(dir, sizeof dir);
    snprintf(set_dir, sizeof set_dir, "output.dir=%s", dir);
    const char *all[32];
    for (int i = 0; i < n_sets; i++)
        all[i] = sets[i];
    all[n_sets] = set_dir;
    cr_assert_eq(tr_config_load_string(c, "test.ini", text, all, n_sets + 1, &err), 0, "%s", err.msg);
    tr_dist_init_local(d);
    cr_assert_eq(tr_trainer_init(t, c, d, NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(tr_run(t, &(tr_run_options){.quiet = true}, &err), 0, "%s", err.msg);
}

static const char *moons =
    "[model]\nlayers = 2, 20, 20, 1\nactivations = tanh\noutput_activation = sigmoid\n"
    "[data]\ngenerator = moons\nn = 1000\nnoise = 0.1\n"
    "[train]\nloss = bce\noptimizer = adam\nlr = 0.01\nbatch_size = 32\nepochs = 100\neval_train = true\n"
    "eval_every = 100\n";

Test(train, two_moons_reaches_97_percent_train_accuracy, .timeout = 120)
{
    tr_trainer t;
    tr_config c;
    tr_dist d;
    train(&t, &c, &d, moons, NULL, 0);
    cr_assert(t.has_train_metrics);
    cr_expect(t.train_metrics.accuracy >= 0.97, "train accuracy %.4f", t.train_metrics.accuracy);
    cr_expect_eq(t.train_metrics.rows, 1000);
    cr_expect_eq(t.step, 100 * 32); /* ceil(1000 / 32) = 32 steps per epoch */
    tr_trainer_free(&t);
    tr_config_free(&c);
}

static const char *linear =
    "[model]\nlayers = 1, 1\nactivations = identity\n"
    "[data]\ngenerator = linear\nn = 1000\na = 2\nb = 0.7\nnoise = 0.5\nx_min = 0\nx_max = 10\n"
    "[train]\nloss = mse\noptimizer = sgd\nlr = 0.01\nbatch_size = 32\nepochs = 100\n";

Test(train, linear_regression_recovers_slope_and_intercept, .timeout = 120)
{
    tr_trainer t;
    tr_config c;
    tr_dist d;
    train(&t, &c, &d, linear, NULL, 0);
    const float w = t.model.layer[0].W[0], b = t.model.layer[0].b[0];
    cr_expect(fabsf(w - 0.7f) < 0.05f, "w = %g", w);
    cr_expect(fabsf(b - 2.0f) < 0.05f, "b = %g", b);
    tr_trainer_free(&t);
    tr_config_free(&c);
}

Test(train, same_config_and_seed_give_bitwise_same_parameters, .timeout = 120)
{
    tr_trainer t1, t2, t3;
    tr_config c1, c2, c3;
    tr_dist d;
    const char *sets[] = {"train.epochs=5", "train.eval_train=false"};
    const char *sets3[] = {"train.epochs=5", "train.eval_train=false", "train.seed=1"};
    train(&t1, &c1, &d, moons, sets, 2);
    train(&t2, &c2, &d, moons, sets, 2);
    train(&t3, &c3, &d, moons, sets3, 3);
    cr_expect(memcmp(t1.model.params, t2.model.params, t1.model.n_params * sizeof(float)) == 0);
    cr_expect(memcmp(t1.model.params, t3.model.params, t1.model.n_params * sizeof(float)) != 0);
    tr_trainer_free(&t1);
    tr_trainer_free(&t2);
    tr_trainer_free(&t3);
    tr_config_free(&c1);
    tr_config_free(&c2);
    tr_config_free(&c3);
}

/* accumulate = 4 micro-batches of 8 equals batches of 32 (equal-sized micro-batches, so
 * PyTorch's divide-by-k recipe is the mean over the 32 rows) without shuffling */
Test(train, accumulation_equals_the_larger_batch, .timeout = 120)
{
    tr_trainer t1, t2;
    tr_config c1, c2;
    tr_dist d;
    const char *big[] = {"train.epochs=3", "train.eval_train=false", "data.n=960", "train.shuffle=false",
                         "train.optimizer=sgd", "train.lr=0.1"};
    const char *acc[] = {"train.epochs=3", "train.eval_train=false", "data.n=960", "train.shuffle=false",
                         "train.optimizer=sgd", "train.lr=0.1", "train.batch_size=8", "train.accumulate=4"};
    train(&t1, &c1, &d, moons, big, 6);
    train(&t2, &c2, &d, moons, acc, 8);
    cr_expect_eq(t1.step, t2.step);
    float maxdiff = 0.0f;
    for (size_t i = 0; i < t1.model.n_params; i++) {
        const float dd = fabsf(t1.model.params[i] - t2.model.params[i]);
        maxdiff = dd > maxdiff ? dd : maxdiff;
    }
    cr_expect(maxdiff < 1e-5f, "max parameter difference %g", maxdiff);
    tr_trainer_free(&t1);
    tr_trainer_free(&t2);
    tr_config_free(&c1);
    tr_config_free(&c2);
}

/* A trailing partial group still steps, divided by k (PyTorch's recipe). */
Test(train, trailing_partial_group_steps, .timeout = 60)
{
    tr_trainer t;
    tr_config c;
    tr_dist d;
    const char *sets[] = {"train.epochs=1", "train.eval_train=false", "data.n=100", "train.batch_size=10",
                          "train.accumulate=3"};
    train(&t, &c, &d, moons, sets, 5);
    cr_expect_eq(t.step, 4); /* 10 micro-batches: 3 + 3 + 3 + 1 */
    tr_trainer_free(&t);
    tr_config_free(&c);
}

Test(train, divergence_is_reported_with_epoch_and_step, .timeout = 60)
{
    tr_config c;
    tr_dist d;
    tr_trainer t;
    tr_err err = {0};
    char dir[256], set_dir[300];
    make_temp_dir(dir, sizeof dir);
    snprintf(set_dir, sizeof set_dir, "output.dir=%s", dir);
    const char *sets[] = {"train.lr=1e30", "train.optimizer=sgd", "train.loss=mse", "model.output_activation=identity",
                          "train.eval_train=false", set_dir};
    cr_assert_eq(tr_config_load_string(&c, "test.ini", moons, sets, 6, &err), 0, "%s", err.msg);
    tr_dist_init_local(&d);
    cr_assert_eq(tr_trainer_init(&t, &c, &d, NULL, &err), 0, "%s", err.msg);
    cr_expect_eq(tr_run(&t, &(tr_run_options){.quiet = true}, &err), TR_EDIVERGED);
    cr_expect(strstr(err.msg, "epoch 1") && strstr(err.msg, "step"), "%s", err.msg);
    tr_trainer_free(&t);
    tr_config_free(&c);
}

/* ---------------------------------------------------------------- regularisation ------ */

/* The parameter change of one plain SGD step (lr 1) on the whole training set. */
static double *one_step_change(const char *const *extra, int n_extra, size_t *n)
{
    const char *sets[16] = {"train.optimizer=sgd", "train.lr=1", "train.batch_size=0", "train.eval_train=false"};
    for (int i = 0; i < n_extra; i++)
        sets[4 + i] = extra[i];
    sets[4 + n_extra] = "train.epochs=0";
    tr_trainer t0, t1;
    tr_config c0, c1;
    tr_dist d;
    train(&t0, &c0, &d, moons, sets, 5 + n_extra);
    sets[4 + n_extra] = "train.epochs=1";
    train(&t1, &c1, &d, moons, sets, 5 + n_extra);
    cr_assert_eq(t1.step, 1);
    *n = t0.model.n_params;
    double *delta = malloc(*n * sizeof *delta);
    for (size_t i = 0; i < *n; i++)
        delta[i] = (double)t1.model.params[i] - t0.model.params[i];
    tr_trainer_free(&t0);
    tr_trainer_free(&t1);
    tr_config_free(&c0);
    tr_config_free(&c1);
    return delta;
}

Test(train, clip_norm_and_clip_value_bound_the_step, .timeout = 60)
{
    size_t n;
    double *free_step = one_step_change(NULL, 0, &n);
    double norm = 0;
    for (size_t i = 0; i < n; i++)
        norm += free_step[i] * free_step[i];
    norm = sqrt(norm);
    cr_assert(norm > 0.1, "unclipped step norm %g: too small to test clipping with", norm);
    /* clip_norm: the whole step has norm clip_norm (clip_grad_norm_'s max_norm / (norm + 1e-6)) */
    const char *by_norm[] = {"train.clip_norm=0.01"};
    double *step = one_step_change(by_norm, 1, &n), clipped = 0, cos = 0;
    for (size_t i = 0; i < n; i++) {
        clipped += step[i] * step[i];
        cos += step[i] * free_step[i];
    }
    clipped = sqrt(clipped);
    cr_expect(fabs(clipped - 0.01) < 1e-6, "clipped step norm %.9g, want 0.01", clipped);
    cr_expect(cos / (clipped * norm) > 1 - 1e-6, "clipping changed the direction of the step");
    free(step);
    /* clip_value: every element within [-0.001, 0.001] (up to the rounding of p - 0.001 in
     * float), the large ones at the bound */
    const char *by_value[] = {"train.clip_value=0.001"};
    step = one_step_change(by_value, 1, &n);
    int at_bound = 0;
    for (size_t i = 0; i < n; i++) {
        cr_expect(fabs(step[i]) <= 0.001 + 1e-6, "element %zu moved by %g", i, step[i]);
        if (fabs(free_step[i]) > 0.0011)
            cr_expect(fabs(fabs(step[i]) - 0.001) < 1e-6 && step[i] * free_step[i] > 0, "element %zu: %g", i, step[i]);
        at_bound += fabs(free_step[i]) > 0.0011;
    }
    cr_expect(at_bound > 0, "no element was large enough to be clipped");
    free(step);
    free(free_step);
}

Test(train, batch_norm_and_dropout_two_moons_reach_95_percent, .timeout = 120)
{
    tr_trainer t;
    tr_config c;
    tr_dist d;
    const char *sets[] = {"train.epochs=40", "model.batchnorm=true", "model.dropout=0.1", "train.lr_schedule=cosine"};
    train(&t, &c, &d, moons, sets, 4);
    cr_assert(t.has_train_metrics);
    cr_expect(t.train_metrics.accuracy >= 0.95, "train accuracy %.4f (evaluation mode: running statistics, "
              "no dropout)", t.train_metrics.accuracy);
    cr_expect(t.model.layer[0].bn_batches == 40 * 32, "num_batches_tracked %lld", (long long)t.model.layer[0].bn_batches);
    tr_trainer_free(&t);
    tr_config_free(&c);
}

Test(train, balanced_class_weights_follow_the_training_labels, .timeout = 60)
{
    tr_trainer t;
    tr_config c;
    tr_dist d;
    const char *sets[] = {"train.epochs=1", "train.class_weights=auto", "train.loss=cross_entropy",
                          "model.layers=2,8,2", "model.output_activation=identity", "data.n=301"};
    train(&t, &c, &d, moons, sets, 6);
    int64_t count[2] = {0, 0};
    for (int64_t r = 0; r < t.data.train.rows; r++)
        count[(int)t.data.train.y[r]]++;
    for (int k = 0; k < 2; k++) {
        const double want = (double)t.data.train.rows / (2.0 * (double)count[k]);
        cr_expect(fabs(t.class_weights[k] - want) < 1e-6 * want, "class %d: weight %g want %g", k,
                  (double)t.class_weights[k], want);
    }
    cr_expect(count[0] != count[1], "the split should be uneven for this test to mean anything");
    tr_trainer_free(&t);
    tr_config_free(&c);
}
