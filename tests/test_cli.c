/*
 * test_cli.c: the `trainer` binary's command line: help, version, exit codes and messages.
 */
#include "test_util.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static char out[65536];
static char dir[256];

static const char *moons_cfg =
    "[model]\nlayers = 2, 8, 1\nactivations = tanh\noutput_activation = sigmoid\n"
    "[data]\ngenerator = moons\nn = 200\n[train]\nloss = bce\noptimizer = adam\nepochs = 2\n"
    "[output]\ndir = %s/run\n";

static void setup(void) { make_temp_dir(dir, sizeof dir); }

TestSuite(cli, .init = setup);
TestSuite(mpi, .init = setup); /* each test in its own directory, as the cli tests */

/* DIR/NAME.ini holding moons_cfg (its run directory under DIR); the path into path. */
static void write_moons_config(char *path, size_t len, const char *name)
{
    write_config(path, len, dir, name, moons_cfg, dir);
}

static int trainer(const char *args) { return run_trainer("", 0, 0, args, out, sizeof out); }

Test(cli, version_and_help)
{
    cr_expect_eq(trainer("--version"), 0);
    cr_expect(strncmp(out, "trainer ", 8) == 0, "%s", out);
    cr_expect_eq(trainer("--help"), 0);
    cr_expect(strstr(out, "train CONFIG.ini") && strstr(out, "summary"), "%s", out);
    cr_expect_eq(trainer("train --help"), 0);
    cr_expect(strstr(out, "--set section.key=value"), "%s", out);
    cr_expect_eq(trainer("help config"), 0);
    cr_expect(strstr(out, "| `batch_size` | 32 |"), "%s", out);
}

Test(cli, usage_errors_exit_2)
{
    cr_expect_eq(trainer(""), 2);
    cr_expect_eq(trainer("frobnicate"), 2);
    cr_expect(strstr(out, "unknown command 'frobnicate'"), "%s", out);
    cr_expect_eq(trainer("train"), 2);
    cr_expect(strstr(out, "needs a config file"), "%s", out);
    cr_expect_eq(trainer("train x.ini --bogus"), 2);
    cr_expect_eq(trainer("train /nonexistent.ini"), 2);
    cr_expect(strstr(out, "/nonexistent.ini"), "%s", out);
}

static void expect_config_error(const char *body, const char *key)
{
    char path[512], args[1024];
    snprintf(path, sizeof path, "%s/bad.ini", dir);
    write_text(path, body);
    snprintf(args, sizeof args, "train %s", path);
    cr_expect_eq(trainer(args), 2, "exit code for:\n%s\noutput: %s", body, out);
    cr_expect(strstr(out, key) != NULL, "message lacks '%s': %s", key, out);
    cr_expect(strstr(out, "bad.ini") != NULL, "message lacks the file name: %s", out);
}

Test(cli, config_errors_exit_2_naming_the_key)
{
    expect_config_error("[model]\nlayers = 2, 1\nwidth = 3\n[train]\nloss = mse\n", "width");
    expect_config_error("[model]\nlayers = 2, 1\n[train]\nloss = mse\nlr = fast\n", "lr");
    expect_config_error("[model]\nlayers = 2, 3, 1\nactivations = rleu\n[train]\nloss = mse\n", "activations");
    expect_config_error("[model]\nlayers = 2, 3, 3, 1\nactivations = relu, relu\n[train]\nloss = mse\n",
                        "activations");
    expect_config_error("[model]\nlayers = 2, 1\n", "loss");
}

Test(cli, set_override_errors_exit_2)
{
    char path[512], args[1024];
    write_moons_config(path, sizeof path, "ok");
    snprintf(args, sizeof args, "train %s --set train.nope=1", path);
    cr_expect_eq(trainer(args), 2);
    cr_expect(strstr(out, "--set") && strstr(out, "nope"), "%s", out);
}

Test(cli, summary_prints_layers_and_total)
{
    char path[512], args[1024];
    write_moons_config(path, sizeof path, "ok");
    snprintf(args, sizeof args, "summary %s", path);
    cr_expect_eq(trainer(args), 0, "%s", out);
    cr_expect(strstr(out, "Linear: 0") && strstr(out, "Tanh: 1") && strstr(out, "Sigmoid: 3"), "%s", out);
    cr_expect(strstr(out, "Total params: 33"), "%s", out); /* 2*8+8 + 8+1 */
}

Test(cli, train_runs_and_reports)
{
    char path[512], args[1024];
    write_moons_config(path, sizeof path, "ok");
    snprintf(args, sizeof args, "train %s --set train.epochs=3", path);
    cr_expect_eq(trainer(args), 0, "%s", out);
    cr_expect(strstr(out, "epoch   3/3") != NULL, "%s", out);
    cr_expect(strstr(out, "confusion matrix") == NULL, "no test set, no report: %s", out);
}

Test(cli, configuration_reference_is_current)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/datasets/configs/README.md", SOURCE_DIR);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "cannot open %s", path);
    static char readme[1 << 18];
    size_t n = fread(readme, 1, sizeof readme - 1, f);
    readme[n] = '\0';
    fclose(f);
    const char *begin = strstr(readme, "<!-- config-reference:begin -->\n\n");
    const char *end = strstr(readme, "<!-- config-reference:end -->");
    cr_assert(begin && end && end > begin, "%s lacks the config-reference markers", path);
    begin += strlen("<!-- config-reference:begin -->\n\n");
    cr_assert_eq(trainer("help config"), 0);
    size_t len = strlen(out);
    while (len > 0 && out[len - 1] == '\n')
        len--;
    cr_expect(strncmp(begin, out, len) == 0 && begin[len] == '\n',
              "datasets/configs/README.md's reference is stale: run scripts/update-readme.sh");
}

Test(cli, data_gen_writes_hdf5_and_csv)
{
    char args[1024];
    snprintf(args, sizeof args, "data gen circles --out %s/c.h5 --n 300 --sd 0.1 --seed 3", dir);
    cr_expect_eq(trainer(args), 0, "%s", out);
    cr_expect(strstr(out, "300 rows, 2 features, class labels"), "%s", out);
    snprintf(args, sizeof args, "data gen linear --out %s/l.csv --n 5", dir);
    cr_expect_eq(trainer(args), 0, "%s", out);
    char path[512], cmd[1024];
    snprintf(path, sizeof path, "%s/l.csv", dir);
    snprintf(cmd, sizeof cmd, "wc -l < %s", path);
    run_cmd(cmd, out, sizeof out);
    cr_expect(atoi(out) == 6, "header + 5 rows, got %s", out);
    /* a config trains on the written file */
    char cfg[1024];
    snprintf(path, sizeof path, "%s/h5.ini", dir);
    snprintf(cfg, sizeof cfg,
             "[model]\nlayers = 2, 8, 1\nactivations = relu\noutput_activation = sigmoid\n"
             "[data]\npath = %s/c.h5\ntest_fraction = 0.2\n[train]\nloss = bce\nepochs = 2\n[output]\ndir = %s/run\n",
             dir, dir);
    write_text(path, cfg);
    snprintf(args, sizeof args, "train %s", path);
    cr_expect_eq(trainer(args), 0, "%s", out);
    cr_expect(strstr(out, "240 training rows") && strstr(out, "60 test rows"), "%s", out);
}

Test(cli, data_gen_usage_errors_exit_2)
{
    char args[1024];
    snprintf(args, sizeof args, "data gen spirals --out %s/x.h5", dir);
    cr_expect_eq(trainer(args), 2);
    cr_expect(strstr(out, "unknown data set 'spirals'"), "%s", out);
    cr_expect_eq(trainer("data gen moons"), 2);
    cr_expect(strstr(out, "--out"), "%s", out);
    snprintf(args, sizeof args, "data gen moons --out %s/x.txt", dir);
    cr_expect_eq(trainer(args), 2);
    snprintf(args, sizeof args, "data gen moons --out %s/x.h5 --noise -1", dir);
    cr_expect_eq(trainer(args), 2);
    cr_expect(strstr(out, "noise"), "%s", out);
}

static void expect_data_error(const char *data_section, const char *needle)
{
    char path[512], args[1024], cfg[2048];
    snprintf(path, sizeof path, "%s/d.ini", dir);
    snprintf(cfg, sizeof cfg, "[model]\nlayers = 2, 4, 1\noutput_activation = sigmoid\n[data]\n%s\n"
                              "[train]\nloss = bce\nepochs = 1\n[output]\ndir = %s/run\n", data_section, dir);
    write_text(path, cfg);
    snprintf(args, sizeof args, "train %s", path);
    cr_expect_eq(trainer(args), 3, "exit status for [data] %s: %s", data_section, out);
    cr_expect(strstr(out, needle) != NULL, "'%s' lacks '%s'", out, needle);
}

Test(cli, data_errors_exit_3_naming_file_and_row)
{
    char csv[512], text[256], sec[1024];
    snprintf(csv, sizeof csv, "%s/bad.csv", dir);
    write_text(csv, "a,b,label\n1,2,0\n3,x,1\n");
    snprintf(sec, sizeof sec, "path = %s", csv);
    snprintf(text, sizeof text, "bad.csv:3");
    expect_data_error(sec, text);
    snprintf(sec, sizeof sec, "path = %s/missing.h5", dir);
    expect_data_error(sec, "missing.h5: cannot open");
    write_text(csv, "a,b,label\n1,2,0\n3,4,2\n");
    snprintf(sec, sizeof sec, "path = %s", csv);
    expect_data_error(sec, "target 2 of a bce loss must be in [0, 1]");
    write_text(csv, "a,b,c,label\n1,2,5,0\n");
    expect_data_error(sec, "3 feature columns but [model] layers starts with 2");
}

/* ------------------------------------------------------------------ under mpirun ------ */

static int mpirun(int np, const char *env, const char *args, double *seconds)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    const int rc = run_trainer(env, np, 120, args, out, sizeof out);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (seconds)
        *seconds = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    return rc;
}

Test(mpi, nan_on_one_rank_stops_every_rank_at_that_step)
{
    char path[512], args[1024];
    write_moons_config(path, sizeof path, "nan");
    const char *modes[] = {"shared", "allreduce"};
    for (int k = 0; k < 2; k++) {
        snprintf(args, sizeof args, "train %s --set train.epochs=50 --set train.comm=%s", path, modes[k]);
        double s;
        int rc = mpirun(2, "TRAINER_FAULT_NAN=1:7", args, &s);
        cr_expect_eq(rc, 5, "%s: exit status %d (124 = hung until the timeout): %s", modes[k], rc, out);
        cr_expect(strstr(out, "diverged at epoch 1, step 7") != NULL, "%s: %s", modes[k], out);
        cr_expect(s < 60.0, "%s: took %.1f s", modes[k], s);
        /* one message, from rank 0 (the other rank only shares the status) */
        const char *first = strstr(out, "trainer: error");
        cr_expect(first && !strstr(first + 1, "trainer: error"), "%s: the error is printed more than once: %s",
                  modes[k], out);
    }
    snprintf(args, sizeof args, "train %s --set train.epochs=50 --set train.deterministic=true", path);
    cr_expect_eq(mpirun(2, "TRAINER_FAULT_NAN=0:3", args, NULL), 5, "deterministic: %s", out);
    cr_expect(strstr(out, "step 3") != NULL, "%s", out);
}

Test(mpi, ranks_without_rows_take_part)
{
    /* a batch of 2 rows on 3 ranks: one rank has no rows in every step */
    char path[512], args[1024];
    write_moons_config(path, sizeof path, "few");
    const char *modes[] = {"shared", "allreduce"};
    for (int k = 0; k < 2; k++) {
        snprintf(args, sizeof args, "train %s --overwrite --set train.batch_size=2 --set data.n=20 --set train.comm=%s", path,
                 modes[k]);
        cr_expect_eq(mpirun(3, "", args, NULL), 0, "%s: %s", modes[k], out);
        cr_expect(strstr(out, "epoch   2/2") != NULL, "%s: %s", modes[k], out);
    }
}

Test(mpi, same_epoch_lines_on_one_and_two_ranks)
{
    char path[512], args[1024];
    write_moons_config(path, sizeof path, "same");
    snprintf(args, sizeof args, "train %s --overwrite --set train.deterministic=true --set train.epochs=3", path);
    cr_assert_eq(mpirun(1, "", args, NULL), 0, "%s", out);
    char one[4096];
    const char *e = strstr(out, "epoch");
    cr_assert_not_null(e);
    snprintf(one, sizeof one, "%s", e);
    cr_assert_eq(mpirun(2, "", args, NULL), 0, "%s", out);
    e = strstr(out, "epoch");
    cr_assert_not_null(e);
    /* identical losses and accuracies (the samples/s column differs) */
    cr_expect(strncmp(one, e, strstr(one, "lr ") - one) == 0, "np=1:\n%s\nnp=2:\n%s", one, e);
}

Test(mpi, an_mpi_failure_in_the_cross_node_sum_is_an_mpi_error)
{
    /* "nodes" of one rank (fault.h), so the node-shared step sums across nodes; that sum
     * fails: exit status 7 with the MPI call named, not a divergence (5) */
    char path[512], args[1024];
    write_moons_config(path, sizeof path, "cross");
    snprintf(args, sizeof args, "train %s --overwrite --set train.comm=shared", path);
    cr_expect_eq(mpirun(2, "TRAINER_TEST_RANKS_PER_NODE=1", args, NULL), 0, "the multi-node path trains: %s", out);
    cr_expect(strstr(out, "epoch   2/2") != NULL, "%s", out);
    cr_expect_eq(mpirun(2, "TRAINER_TEST_RANKS_PER_NODE=1 TRAINER_FAULT_MPI=cross_sum", args, NULL), 7, "%s", out);
    cr_expect(strstr(out, "MPI_Allreduce (cross-node gradient shard) failed") != NULL, "%s", out);
    cr_expect(strstr(out, "diverged") == NULL, "%s", out);
}

Test(mpi, a_failed_statistics_sync_is_reported_also_with_eval_train)
{
    char path[512], args[1024];
    write_moons_config(path, sizeof path, "bn");
    for (int eval_train = 0; eval_train < 2; eval_train++) {
        snprintf(args, sizeof args,
                 "train %s --overwrite --set model.batchnorm=true --set train.sync_bn=false --set train.eval_train=%s",
                 path, eval_train ? "true" : "false");
        cr_expect_eq(mpirun(2, "TRAINER_FAULT_MPI=sync_buffers", args, NULL), 7, "eval_train %d: %s", eval_train, out);
        cr_expect(strstr(out, "batch-norm running statistics") != NULL, "eval_train %d: %s", eval_train, out);
    }
}

Test(cli, gemm_choice_is_printed_and_recorded_and_bf16_needs_the_cpu)
{
    char path[512], args[1024], ini[512];
    write_moons_config(path, sizeof path, "ok");
    snprintf(args, sizeof args, "train %s --set train.gemm=onednn", path);
    cr_expect_eq(trainer(args), 0, "%s", out);
    cr_expect(strstr(out, "gemm onednn fp32 (set)") != NULL, "first line: %s", out);
    snprintf(ini, sizeof ini, "%s/run/config.ini", dir);
    FILE *f = fopen(ini, "r");
    cr_assert_not_null(f);
    char line[256];
    bool recorded = false;
    while (fgets(line, sizeof line, f))
        recorded |= !strcmp(line, "gemm = onednn\n");
    fclose(f);
    cr_expect(recorded, "config.ini records gemm = onednn");
    /* auto: timed, and what it chose is the recorded value */
    snprintf(args, sizeof args, "train %s --overwrite", path);
    cr_expect_eq(trainer(args), 0, "%s", out);
    cr_expect(strstr(out, "(auto: timed, openblas ") != NULL && strstr(out, " ms, onednn ") != NULL, "first line: %s",
              out);
    /* a CPU without bf16 products, as oneDNN's ISA limit simulates it: refused, status 2, named */
    snprintf(args, sizeof args, "train %s --overwrite --set train.precision=bf16", path);
    cr_expect_eq(run_trainer("ONEDNN_MAX_CPU_ISA=AVX512_CORE", 0, 0, args, out, sizeof out), 2, "%s", out);
    cr_expect(strstr(out, "no native bf16") != NULL && strstr(out, "precision = bf16") != NULL, "%s", out);
}

Test(cli, checkpoints_move_between_precisions)
{
    char path[512], args[1024];
    write_moons_config(path, sizeof path, "ok");
    /* bf16 where the CPU has it (else the fp32 run alone, checked the same way) */
    snprintf(args, sizeof args, "train %s --set train.precision=bf16 --set train.epochs=1", path);
    const bool bf16 = trainer(args) == 0;
    if (!bf16)
        cr_log_warn("no native bf16 here: %s", out);
    /* a bf16 run's checkpoint continues in fp32 with a warning that names both */
    snprintf(args, sizeof args, "train %s --set train.epochs=2 --set train.gemm=openblas --resume %s/run", path, dir);
    if (bf16) {
        cr_expect_eq(trainer(args), 0, "%s", out);
        cr_expect(strstr(out, "warning") && strstr(out, "precision = bf16") && strstr(out, "openblas, fp32"), "%s", out);
        cr_expect(strstr(out, "epoch   2/2") != NULL, "%s", out);
    }
    /* and in deterministic mode the same resume is refused */
    snprintf(args, sizeof args, "train %s --overwrite --set train.deterministic=true --set train.epochs=1", path);
    cr_expect_eq(trainer(args), 0, "%s", out);
    snprintf(args, sizeof args,
             "train %s --set train.deterministic=true --set train.epochs=2 --set train.gemm=onednn --resume %s/run",
             path, dir);
    cr_expect_eq(trainer(args), 2, "%s", out);
    cr_expect(strstr(out, "cannot resume in deterministic mode") && strstr(out, "gemm = openblas"), "%s", out);
}
