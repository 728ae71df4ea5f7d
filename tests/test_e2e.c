/*
 * test_e2e.c: the shipped example configurations train to known accuracies on real data
 * (CTest label e2e: minutes, not seconds).
 */
#include "trainer/run.h"
#include "trainer/train.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void in_source_dir(void)
{
    cr_assert_eq(chdir(SOURCE_DIR), 0, "chdir %s", SOURCE_DIR);
}

TestSuite(e2e, .init = in_source_dir, .timeout = 900);

/* Trains datasets/configs/<name>.ini (with overrides) and returns the trainer. */
static void run_config(tr_trainer *t, tr_config *c, tr_dist *d, const char *name, const char *const *sets, int n)
{
    char path[256];
    snprintf(path, sizeof path, "datasets/configs/%s.ini", name);
    tr_err err = {0};
    char dir[64] = "/tmp/trainer-e2e-XXXXXX", set_dir[100];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(set_dir, sizeof set_dir, "output.dir=%s", dir);
    const char *all[16];
    for (int i = 0; i < n; i++)
        all[i] = sets[i];
    all[n] = set_dir;
    cr_assert_eq(tr_config_load(c, path, all, n + 1, &err), 0, "%s", err.msg);
    tr_dist_init_local(d);
    cr_assert_eq(tr_trainer_init(t, c, d, stdout, &err), 0, "%s", err.msg);
    cr_assert_eq(tr_run(t, &(tr_run_options){.quiet = true}, &err), 0, "%s", err.msg);
    cr_assert(t->has_test_metrics);
}

Test(e2e, fashion_mnist_mlp_reaches_88_percent_test_accuracy)
{
    if (access("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", R_OK) != 0)
        cr_skip_test("dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)");
    tr_trainer t;
    tr_config c;
    tr_dist d;
    const char *sets[] = {"train.eval_every=5"};
    run_config(&t, &c, &d, "fashion_mnist", sets, 1);
    cr_expect_eq(t.data.train.rows, 60000);
    cr_expect_eq(t.data.test.rows, 10000);
    cr_expect(t.test_metrics.accuracy >= 0.88, "Fashion-MNIST test accuracy %.4f < 0.88", t.test_metrics.accuracy);
    tr_trainer_free(&t);
    tr_config_free(&c);
}

Test(e2e, fashion_mnist_with_batch_norm_dropout_and_early_stopping_reaches_89_percent)
{
    if (access("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", R_OK) != 0)
        cr_skip_test("dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)");
    tr_trainer t;
    tr_config c;
    tr_dist d;
    run_config(&t, &c, &d, "fashion_mnist_regularized", NULL, 0);
    cr_expect_eq(t.data.train.rows, 54000);
    cr_expect_eq(t.data.val.rows, 6000);
    cr_expect(t.test_metrics.accuracy >= 0.89, "test accuracy %.4f < 0.89", t.test_metrics.accuracy);
    tr_trainer_free(&t);
    tr_config_free(&c);
}

Test(e2e, circles_small_relu_net_reaches_95_percent)
{
    tr_trainer t;
    tr_config c;
    tr_dist d;
    run_config(&t, &c, &d, "circles", NULL, 0);
    cr_expect_eq(t.data.train.rows + t.data.test.rows, 5000);
    cr_expect(t.test_metrics.accuracy >= 0.95, "circles test accuracy %.4f", t.test_metrics.accuracy);
    tr_trainer_free(&t);
    tr_config_free(&c);
}

Test(e2e, moons_reaches_97_percent)
{
    tr_trainer t;
    tr_config c;
    tr_dist d;
    run_config(&t, &c, &d, "moons", NULL, 0);
    cr_expect(t.test_metrics.accuracy >= 0.97, "moons test accuracy %.4f", t.test_metrics.accuracy);
    tr_trainer_free(&t);
    tr_config_free(&c);
}

Test(e2e, inverse_regression_reaches_r2_090)
{
    tr_trainer t;
    tr_config c;
    tr_dist d;
    run_config(&t, &c, &d, "inverse", NULL, 0);
    cr_expect(t.test_metrics.r2 >= 0.90, "inverse test R2 %.4f", t.test_metrics.r2);
    tr_trainer_free(&t);
    tr_config_free(&c);
}

Test(e2e, linear_regression_recovers_coefficients)
{
    tr_trainer t;
    tr_config c;
    tr_dist d;
    run_config(&t, &c, &d, "linear", NULL, 0);
    cr_expect(fabsf(t.model.layer[0].W[0] - 0.7f) < 0.05f && fabsf(t.model.layer[0].b[0] - 2.0f) < 0.05f,
              "w %g b %g", t.model.layer[0].W[0], t.model.layer[0].b[0]);
    tr_trainer_free(&t);
    tr_config_free(&c);
}

Test(e2e, grid_stability_csv_trains)
{
    tr_trainer t;
    tr_config c;
    tr_dist d;
    run_config(&t, &c, &d, "grid_csv", NULL, 0);
    cr_expect_eq(t.data.train.rows, 80);
    cr_expect_eq(t.data.train.cols, 12);
    cr_expect(t.train_loss < 0.6, "training loss %g did not fall", t.train_loss);
    tr_trainer_free(&t);
    tr_config_free(&c);
}
