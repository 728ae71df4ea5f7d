/*
 * test_ckpt.c: checkpoints and resuming: every buffer round-trips, a resumed run ends with
 * bitwise the parameters of an uninterrupted one (also after SIGTERM in mid-epoch), a
 * checkpoint from one rank resumes on two, kill -9 in the middle of a write leaves the last
 * good checkpoint, and damaged or mismatched files are refused with clear errors.
 */
#include "test_util.h"
#include "trainer/ckpt.h"
#include "trainer/ckpt_writer.h"
#include "trainer/h5io.h"
#include "trainer/run.h"
#include "trainer/rundir.h"
#include "trainer/train.h"

#include <criterion/criterion.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

static char dir[256];
static char out[1 << 16];
static void setup(void) { make_temp_dir(dir, sizeof dir); }
TestSuite(ckpt, .init = setup, .timeout = 300);

static const char *cfg_text =
    "[model]\nlayers = 2, 12, 3\nactivations = tanh\noutput_activation = identity\n"
    "[data]\ngenerator = blobs\nn = 600\nclasses = 3\nsd = 1.5\ntest_fraction = 0.2\nval_fraction = 0.1\n"
    "scale = standard\n"
    "[train]\nloss = cross_entropy\noptimizer = adam\nlr = 0.01\nbatch_size = 16\nepochs = 6\nseed = 4\n"
    "[output]\ndir = %s\ncheckpoint_every = 1\nkeep_last = 2\n";

/* Writes the config for run directory `run` and returns its path. */
static const char *config_for(const char *run)
{
    static char path[1400];
    write_config(path, sizeof path, dir, strrchr(run, '/') ? strrchr(run, '/') + 1 : run, cfg_text, run);
    return path;
}

static int trainer(const char *env, int np, const char *args) { return run_trainer(env, np, 200, args, out, sizeof out); }

/* The /model tensors of the config's network (2 -> 12 -> 3, no batch norm). */
static const char *const plain_tensors[] = {"/model/0/weight", "/model/0/bias", "/model/2/weight", "/model/2/bias",
                                            NULL};

/* The named /model datasets of a checkpoint, concatenated (malloc'd). */
static float *model_of(const char *path, const char *const *names, size_t *n)
{
    hid_t f;
    tr_err err = {0};
    cr_assert_eq(tr_h5_open(&f, path, &err), 0, "%s", err.msg);
    float *all = NULL;
    *n = 0;
    for (int i = 0; names[i]; i++) {
        int64_t r, c;
        cr_assert_eq(tr_h5_shape(f, path, names[i], &r, &c, NULL, &err), 0, "%s", err.msg);
        all = realloc(all, (*n + (size_t)(r * c)) * sizeof *all);
        cr_assert_eq(tr_h5_read_rows(f, path, names[i], 0, r, c, all + *n, &err), 0, "%s", err.msg);
        *n += (size_t)(r * c);
    }
    tr_h5_close(f);
    return all;
}

static void expect_same_tensors(const char *a, const char *b, const char *const *names, bool bitwise)
{
    size_t na, nb;
    float *pa = model_of(a, names, &na), *pb = model_of(b, names, &nb);
    cr_assert_eq(na, nb);
    if (bitwise) {
        cr_expect(memcmp(pa, pb, na * sizeof *pa) == 0, "%s and %s differ", a, b);
    } else {
        double d = 0, m = 0;
        for (size_t i = 0; i < na; i++) {
            d = fmax(d, fabs((double)pa[i] - pb[i]));
            m = fmax(m, fabs((double)pa[i]));
        }
        cr_expect(d / m < 1e-5, "%s and %s differ by %g (relative)", a, b, d / m);
    }
    free(pa);
    free(pb);
}

/* The metric logs of two runs agree, row for row (the time and speed columns aside). */
static void expect_same_metric_logs(const char *run_a, const char *run_b)
{
    char cmd[2000], a[8192], b[8192];
    snprintf(cmd, sizeof cmd, "cut -d, -f1,2,4-7,15- %s/metrics.csv", run_a);
    run_cmd(cmd, a, sizeof a);
    snprintf(cmd, sizeof cmd, "cut -d, -f1,2,4-7,15- %s/metrics.csv", run_b);
    run_cmd(cmd, b, sizeof b);
    cr_expect_str_eq(a, b);
}

static void expect_same_model(const char *a, const char *b, bool bitwise)
{
    expect_same_tensors(a, b, plain_tensors, bitwise);
}

static const char *ckpt(const char *run, int64_t step)
{
    static char path[2][700];
    static int k = 0;
    k ^= 1;
    tr_ckpt_path(path[k], sizeof path[k], run, step);
    return path[k];
}

/* The config for run directory DIR/<name> loaded into *c, and a one-rank trainer *a on it. */
static void trainer_for(const char *name, char *run, size_t len, tr_config *c, tr_dist *d, tr_trainer *a)
{
    char text[2048];
    snprintf(run, len, "%s/%s", dir, name);
    snprintf(text, sizeof text, cfg_text, run);
    tr_err err = {0};
    cr_assert_eq(tr_config_load_string(c, name, text, NULL, 0, &err), 0, "%s", err.msg);
    tr_dist_init_local(d);
    cr_assert_eq(tr_trainer_init(a, c, d, NULL, &err), 0, "%s", err.msg);
}

Test(ckpt, round_trip_of_every_buffer)
{
    char run[400];
    tr_config c;
    tr_err err = {0};
    tr_dist d;
    tr_trainer a, b;
    trainer_for("rt", run, sizeof run, &c, &d, &a);
    tr_sampler_set_epoch(&a.sampler, 0);
    for (int s = 0; s < 7; s++)
        cr_assert_eq(tr_trainer_step(&a, s, &err), 0, "%s", err.msg);
    tr_rundir rd;
    cr_assert_eq(tr_rundir_open(&rd, c.output.dir, &err), 0, "%s", err.msg);
    tr_rundir_close(&rd);
    char path[700];
    snprintf(path, sizeof path, "%s/x.h5", run);
    tr_ckpt_state st = {.epoch = 3, .step = 7, .step_in_epoch = 5, .epoch_loss_sum = 1.25, .epoch_rows = 80,
                        .epoch_correct = 60, .metric_rows = 2, .time_s = 9.5, .lr = 0.01, .best_value = 0.3,
                        .best_epoch = 2, .bad_evals = 1, .plateau_best = 0.4, .plateau_bad = 3, .lr_scale = 0.5};
    cr_assert_eq(tr_ckpt_save(path, &c, &a.model, &a.optim, &a.data.scaler, &st, &err), 0, "%s", err.msg);
    cr_assert_eq(tr_trainer_init(&b, &c, &d, NULL, &err), 0, "%s", err.msg);
    tr_ckpt_state got;
    tr_scaler sc = {.cols = 2, .center = calloc(2, sizeof(float)), .scale = calloc(2, sizeof(float))};
    tr_ckpt_parts parts = {.optim = &b.optim, .scaler = &sc, .state = &got};
    cr_assert_eq(tr_ckpt_load(path, &c, &b.model, &parts, &err), 0, "%s", err.msg);
    cr_expect(memcmp(a.model.params, b.model.params, a.model.n_params * sizeof(float)) == 0, "parameters");
    cr_expect_eq(b.optim.n_state, 2);
    for (int k = 0; k < a.optim.n_state; k++)
        cr_expect(memcmp(a.optim.state[k].data, b.optim.state[k].data, a.model.n_params * sizeof(float)) == 0,
                  "optimizer state %s", a.optim.state[k].name);
    cr_expect_eq(b.optim.step, 7);
    cr_expect(memcmp(&st, &got, sizeof st) == 0, "run state");
    cr_expect(sc.kind == TR_SCALE_STANDARD && sc.center[0] == a.data.scaler.center[0] &&
              sc.scale[1] == a.data.scaler.scale[1], "scaler");
    /* the stored configuration rebuilds the same configuration */
    tr_config back;
    cr_assert_eq(tr_ckpt_read_config(path, &back, &err), 0, "%s", err.msg);
    cr_expect_eq(back.model.n_layers, 2);
    cr_expect_eq(back.train.batch_size, 16);
    cr_expect_str_eq(tr_config_value(&back, "output", "dir"), run);
    tr_config_free(&back);
    free(sc.center);
    free(sc.scale);
    tr_trainer_free(&a);
    tr_trainer_free(&b);
    tr_config_free(&c);
}

/* The writer thread: an image built before the parameters change holds the old ones; the
 * rotation follows the write; a failed write names its file, is returned by the next wait
 * and submit, and nothing handed over after it is written. */
Test(ckpt, the_writer_thread_writes_copies_in_order_and_a_failure_sticks)
{
    char run[400];
    tr_config c;
    tr_err err = {0};
    tr_dist d;
    tr_trainer a;
    trainer_for("wr", run, sizeof run, &c, &d, &a);
    tr_rundir rd;
    cr_assert_eq(tr_rundir_open(&rd, run, &err), 0, "%s", err.msg);
    tr_rundir_close(&rd);
    tr_ckpt_writer *w;
    cr_assert_eq(tr_ckpt_writer_open(&w, &err), 0, "%s", err.msg);
    tr_sampler_set_epoch(&a.sampler, 0);
    float *before = malloc(a.model.n_params * sizeof(float));
    for (int64_t s = 1; s <= 4; s++) {
        cr_assert_eq(tr_trainer_step(&a, s - 1, &err), 0, "%s", err.msg);
        tr_ckpt_state st = {.epoch = 0, .step = s, .step_in_epoch = s, .lr = 0.01, .lr_scale = 1};
        tr_ckpt_image img;
        cr_assert_eq(tr_ckpt_build(&img, ckpt(run, s), &c, &a.model, &a.optim, &a.data.scaler, &st, &err), 0, "%s",
                     err.msg);
        cr_assert_eq(tr_ckpt_writer_submit(w, &img, run, 2, s, &err), 0, "%s", err.msg);
        cr_expect_null(img.bytes, "the writer took the image over");
        if (s == 4) /* changed after the hand-over: the file holds the parameters as they were */
            memcpy(before, a.model.params, a.model.n_params * sizeof(float));
    }
    cr_assert_eq(tr_trainer_step(&a, 4, &err), 0, "%s", err.msg);
    cr_assert_eq(tr_ckpt_writer_wait(w, &err), 0, "%s", err.msg);
    cr_expect(access(ckpt(run, 1), F_OK) != 0 && access(ckpt(run, 2), F_OK) != 0, "rotated after the writes");
    cr_expect(access(ckpt(run, 3), R_OK) == 0, "ckpt 3 kept");
    tr_trainer b;
    cr_assert_eq(tr_trainer_init(&b, &c, &d, NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(tr_ckpt_load(ckpt(run, 4), &c, &b.model, &(tr_ckpt_parts){0}, &err), 0, "%s", err.msg);
    cr_expect(memcmp(before, b.model.params, a.model.n_params * sizeof(float)) == 0, "the image is a copy");
    cr_expect(memcmp(a.model.params, b.model.params, a.model.n_params * sizeof(float)) != 0, "a step was taken");
    /* a write that fails: its reason and file, at the wait and at every later submit */
    char missing[600], later[600];
    snprintf(missing, sizeof missing, "%s/no-such-dir/ckpt-5.h5", run);
    snprintf(later, sizeof later, "%s/later.h5", run);
    tr_ckpt_state st = {.step = 5, .lr = 0.01, .lr_scale = 1};
    tr_ckpt_image img;
    cr_assert_eq(tr_ckpt_build(&img, missing, &c, &a.model, &a.optim, &a.data.scaler, &st, &err), 0, "%s", err.msg);
    cr_assert_eq(tr_ckpt_writer_submit(w, &img, NULL, 0, 5, &err), 0, "%s", err.msg);
    tr_err e = {0};
    cr_expect_eq(tr_ckpt_writer_wait(w, &e), TR_ECKPT);
    cr_expect(strstr(e.msg, "no-such-dir/ckpt-5.h5") && strstr(e.msg, "No such file or directory"), "%s", e.msg);
    cr_assert_eq(tr_ckpt_build(&img, later, &c, &a.model, &a.optim, &a.data.scaler, &st, &err), 0, "%s", err.msg);
    e = (tr_err){0};
    cr_expect_eq(tr_ckpt_writer_submit(w, &img, NULL, 0, 5, &e), TR_ECKPT);
    cr_expect(strstr(e.msg, "no-such-dir/ckpt-5.h5") != NULL, "%s", e.msg);
    cr_expect_null(img.bytes, "a refused image is freed");
    tr_ckpt_writer_close(w);
    cr_expect(access(later, F_OK) != 0, "nothing is written after a failure");
    free(before);
    tr_trainer_free(&a);
    tr_trainer_free(&b);
    tr_config_free(&c);
}

Test(ckpt, resume_gives_bitwise_the_uninterrupted_parameters)
{
    char full[400], part[400], args[4096];
    snprintf(full, sizeof full, "%s/full", dir);
    snprintf(part, sizeof part, "%s/part", dir);
    snprintf(args, sizeof args, "train %s", config_for(full));
    cr_assert_eq(trainer("", 0, args), 0, "%s", out);
    /* stop after 3 of the 6 epochs, then continue */
    snprintf(args, sizeof args, "train %s --set train.epochs=3", config_for(part));
    cr_assert_eq(trainer("", 0, args), 0, "%s", out);
    snprintf(args, sizeof args, "train %s --resume %s", config_for(part), part);
    cr_assert_eq(trainer("", 0, args), 0, "%s", out);
    cr_expect(strstr(out, "resumed from") != NULL, "%s", out);
    expect_same_model(ckpt(full, 162), ckpt(part, 162), true); /* 6 epochs x 27 steps (420 training rows, batches of 16) */
    expect_same_metric_logs(full, part);
}

Test(ckpt, sigterm_in_mid_epoch_checkpoints_and_resumes_to_the_same_parameters)
{
    char full[400], sig[400], args[4096];
    snprintf(full, sizeof full, "%s/full", dir);
    snprintf(sig, sizeof sig, "%s/sig", dir);
    snprintf(args, sizeof args, "train %s", config_for(full));
    cr_assert_eq(trainer("", 0, args), 0, "%s", out);
    snprintf(args, sizeof args, "train %s", config_for(sig));
    cr_assert_eq(trainer("TRAINER_TEST_SIGNAL_AT_STEP=0:40", 0, args), 75, "exit status: %s", out);
    cr_expect(strstr(out, "stopped by a signal") && strstr(out, "step 40"), "%s", out);
    cr_expect(access(ckpt(sig, 40), R_OK) == 0, "no checkpoint at step 40");
    snprintf(args, sizeof args, "train %s --set output.resume=auto", config_for(sig));
    cr_assert_eq(trainer("", 0, args), 0, "%s", out);
    cr_expect(strstr(out, "resumed from") && strstr(out, "step 40"), "%s", out);
    expect_same_model(ckpt(full, 162), ckpt(sig, 162), true);
}

Test(ckpt, signal_on_one_rank_stops_both_and_resume_matches)
{
    char full[400], sig[400], args[4096];
    snprintf(full, sizeof full, "%s/full2", dir);
    snprintf(sig, sizeof sig, "%s/sig2", dir);
    snprintf(args, sizeof args, "train %s", config_for(full));
    cr_assert_eq(trainer("", 2, args), 0, "%s", out);
    snprintf(args, sizeof args, "train %s", config_for(sig));
    cr_assert_eq(trainer("TRAINER_TEST_SIGNAL_AT_STEP=1:50", 2, args), 75, "exit status: %s", out);
    snprintf(args, sizeof args, "train %s --resume %s", config_for(sig), sig);
    cr_assert_eq(trainer("", 2, args), 0, "%s", out);
    expect_same_model(ckpt(full, 162), ckpt(sig, 162), true);
}

Test(ckpt, a_one_rank_checkpoint_resumes_on_two_ranks)
{
    char full[400], part[400], args[4096];
    snprintf(full, sizeof full, "%s/f1", dir);
    snprintf(part, sizeof part, "%s/p1", dir);
    snprintf(args, sizeof args, "train %s", config_for(full));
    cr_assert_eq(trainer("", 0, args), 0, "%s", out);
    snprintf(args, sizeof args, "train %s --set train.epochs=2", config_for(part));
    cr_assert_eq(trainer("", 0, args), 0, "%s", out);
    snprintf(args, sizeof args, "train %s --resume %s", config_for(part), part);
    cr_assert_eq(trainer("", 2, args), 0, "%s", out);
    expect_same_model(ckpt(full, 162), ckpt(part, 162), false);
}

Test(ckpt, kill_9_during_a_write_leaves_the_last_checkpoint)
{
    char run[400], args[4096];
    snprintf(run, sizeof run, "%s/killed", dir);
    snprintf(args, sizeof args, "%s train %s", TRAINER_BIN, config_for(run));
    pid_t pid = fork();
    if (pid == 0) {
        setenv("TRAINER_TEST_CKPT_PAUSE", "4:120", 1); /* writes: best, ckpt-27, best, ckpt-54 (pauses) */
        int fd = open("/dev/null", 1);
        dup2(fd, 1);
        dup2(fd, 2);
        execl("/bin/sh", "sh", "-c", args, (char *)NULL);
        _exit(127);
    }
    /* wait for the half-written second checkpoint */
    char tmp_glob[800];
    snprintf(tmp_glob, sizeof tmp_glob, "ls %s/ckpt-*.h5.tmp.* 2>/dev/null | wc -l", run);
    bool seen = false;
    for (int i = 0; i < 1800 && !seen; i++) {
        usleep(50000);
        run_cmd(tmp_glob, out, sizeof out);
        seen = atoi(out) > 0;
    }
    cr_assert(seen, "the second checkpoint write never started");
    cr_expect(access(ckpt(run, 54), F_OK) != 0, "the paused checkpoint is already in place");
    kill(pid, SIGKILL);
    char pk[1500];
    snprintf(pk, sizeof pk, "pkill -9 -f '%s' ; true", config_for(run));
    run_cmd(pk, NULL, 0);
    waitpid(pid, NULL, 0);
    /* the first checkpoint is intact; resume = auto picks it up and finishes the run */
    cr_expect(access(ckpt(run, 27), R_OK) == 0, "the first checkpoint is gone");
    snprintf(args, sizeof args, "eval %s --checkpoint %s", config_for(run), ckpt(run, 27));
    cr_expect_eq(trainer("", 0, args), 0, "the last checkpoint does not load: %s", out);
    snprintf(args, sizeof args, "train %s --set output.resume=auto", config_for(run));
    cr_expect_eq(trainer("", 0, args), 0, "%s", out);
    cr_expect(strstr(out, "resumed from") && strstr(out, "step 27"), "%s", out);
}

static void expect_ckpt_error(const char *ckpt_path, const char *args_extra, const char *n1, const char *n2)
{
    char args[4096];
    snprintf(args, sizeof args, "eval %s --checkpoint %s %s", config_for("/tmp/unused-run"), ckpt_path, args_extra);
    cr_expect_eq(trainer("", 0, args), 4, "exit status for %s: %s", ckpt_path, out);
    if (n1)
        cr_expect(strstr(out, n1) != NULL, "'%s' lacks '%s'", out, n1);
    if (n2)
        cr_expect(strstr(out, n2) != NULL, "'%s' lacks '%s'", out, n2);
}

/* Rewrites the checksummed header of a checkpoint after its HDF5 part was edited (what
 * scripts/trainer_h5.py's stamp_checkpoint does). */
static void restamp(const char *path)
{
    FILE *fp = fopen(path, "r+b");
    cr_assert_not_null(fp);
    fseek(fp, 0, SEEK_END);
    const long n = ftell(fp) - 512;
    unsigned char *body = malloc((size_t)n);
    fseek(fp, 512, SEEK_SET);
    cr_assert_eq(fread(body, 1, (size_t)n, fp), (size_t)n);
    char head[512] = {0};
    snprintf(head, sizeof head, "trainer checkpoint\nbytes %ld\ncrc32 %08lx\n", n,
             crc32(crc32(0L, Z_NULL, 0), body, (uInt)n));
    fseek(fp, 0, SEEK_SET);
    fwrite(head, 1, sizeof head, fp);
    fclose(fp);
    free(body);
}

Test(ckpt, damaged_or_mismatched_files_are_refused_clearly)
{
    char run[400], args[4096], good[800], path[900], cmd[2000];
    snprintf(run, sizeof run, "%s/good", dir);
    snprintf(args, sizeof args, "train %s --set train.epochs=1", config_for(run));
    cr_assert_eq(trainer("", 0, args), 0, "%s", out);
    snprintf(good, sizeof good, "%s", ckpt(run, 27));
    /* architecture: every difference is listed */
    snprintf(args, sizeof args, "--set model.layers=2,30,3 --set model.activations=relu");
    expect_ckpt_error(good, args, "layers 2,12,3 in the checkpoint, 2,30,3 in the config",
                      "activations tanh,identity in the checkpoint, relu,identity in the config");
    /* truncated */
    snprintf(path, sizeof path, "%s/truncated.h5", dir);
    snprintf(cmd, sizeof cmd, "head -c 3000 %s > %s", good, path);
    run_cmd(cmd, NULL, 0);
    expect_ckpt_error(path, "", "truncated.h5: truncated or extended: 2488 bytes after the header", NULL);
    /* one bit flipped in the middle: the checksum catches it before HDF5 reads anything */
    snprintf(path, sizeof path, "%s/flipped.h5", dir);
    snprintf(cmd, sizeof cmd, "cp %s %s", good, path);
    run_cmd(cmd, NULL, 0);
    FILE *fp = fopen(path, "r+b");
    cr_assert_not_null(fp);
    fseek(fp, 4000, SEEK_SET);
    const int byte = fgetc(fp);
    fseek(fp, 4000, SEEK_SET);
    fputc(byte ^ 0x10, fp);
    fclose(fp);
    expect_ckpt_error(path, "", "flipped.h5: damaged: CRC-32", NULL);
    /* not HDF5 at all */
    snprintf(path, sizeof path, "%s/junk.h5", dir);
    write_text(path, "not a checkpoint\n");
    expect_ckpt_error(path, "", "not a trainer checkpoint (no checksummed header", NULL);
    /* missing file */
    expect_ckpt_error("/nonexistent/ckpt.h5", "", "/nonexistent/ckpt.h5", NULL);
    /* a tensor removed */
    snprintf(path, sizeof path, "%s/missing.h5", dir);
    snprintf(cmd, sizeof cmd, "cp %s %s", good, path);
    run_cmd(cmd, NULL, 0);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    cr_assert(f >= 0);
    H5Ldelete(f, "/model/2/bias", H5P_DEFAULT);
    H5Fclose(f);
    expect_ckpt_error(path, "", "missing.h5: damaged: CRC-32", NULL); /* changed after it was written */
    restamp(path); /* as if written so: the loader's own checks name the tensor */
    expect_ckpt_error(path, "", "/model/2/bias is missing", NULL);
    /* resuming a run whose optimizer changed */
    snprintf(args, sizeof args, "train %s --set train.optimizer=sgd --resume %s", config_for(run), run);
    cr_expect_eq(trainer("", 0, args), 4, "%s", out);
    cr_expect(strstr(out, "optimizer is adam, the configuration's sgd"), "%s", out);
    /* an explicit --resume with nothing there */
    snprintf(args, sizeof args, "train %s --resume %s/empty", config_for(run), dir);
    cr_expect_eq(trainer("", 0, args), 4, "%s", out);
    cr_expect(strstr(out, "no valid checkpoint"), "%s", out);
}

Test(ckpt, rotation_keeps_the_newest_and_best)
{
    char run[400], args[4096], cmd[900];
    snprintf(run, sizeof run, "%s/rot", dir);
    snprintf(args, sizeof args, "train %s", config_for(run));
    cr_assert_eq(trainer("", 0, args), 0, "%s", out);
    snprintf(cmd, sizeof cmd, "ls %s", run);
    run_cmd(cmd, out, sizeof out);
    cr_expect(strstr(out, "ckpt-000000162.h5") && strstr(out, "ckpt-000000135.h5") && !strstr(out, "ckpt-000000108"),
              "keep_last = 2: %s", out);
    cr_expect(strstr(out, "best.h5") && strstr(out, "metrics.h5") && strstr(out, "metrics.csv") &&
                  strstr(out, "config.ini"),
              "%s", out);
    cr_expect(!strstr(out, ".tmp."), "a temporary file was left behind: %s", out);
}

Test(ckpt, eval_and_predict_use_the_checkpoint)
{
    char run[400], args[4096], pred[800], in[800];
    snprintf(run, sizeof run, "%s/ev", dir);
    snprintf(args, sizeof args, "train %s", config_for(run));
    cr_assert_eq(trainer("", 0, args), 0, "%s", out);
    const char *test_acc = strstr(out, "test (120 rows)");
    cr_assert_not_null(test_acc, "%s", out);
    char train_report[512];
    snprintf(train_report, sizeof train_report, "%.200s", test_acc);
    snprintf(args, sizeof args, "eval %s --checkpoint %s", config_for(run), ckpt(run, 162));
    cr_assert_eq(trainer("", 0, args), 0, "%s", out);
    cr_expect(strstr(out, train_report) != NULL, "eval differs from the end of training:\n%s\nvs\n%s", out,
              train_report);
    /* the same under mpirun */
    cr_assert_eq(trainer("", 2, args), 0, "%s", out);
    cr_expect(strstr(out, train_report) != NULL, "eval on 2 ranks differs:\n%s", out);
    /* predict: probabilities that sum to one, classes that are their argmax, same on 2 ranks */
    snprintf(in, sizeof in, "%s/in.h5", dir);
    snprintf(args, sizeof args, "data gen blobs --out %s --n 77 --classes 3 --seed 3", in);
    cr_assert_eq(trainer("", 0, args), 0, "%s", out);
    snprintf(pred, sizeof pred, "%s/p1.csv", dir);
    snprintf(args, sizeof args, "predict --checkpoint %s --input %s --output %s", ckpt(run, 162), in, pred);
    cr_assert_eq(trainer("", 0, args), 0, "%s", out);
    char one[1 << 15], two[1 << 15], cmd[2000];
    snprintf(cmd, sizeof cmd, "cat %s", pred);
    run_cmd(cmd, one, sizeof one);
    cr_expect(strncmp(one, "p0,p1,p2,class\n", 15) == 0, "%s", one);
    int lines = 0;
    for (char *line = strchr(one, '\n'); line && line[1]; line = strchr(line + 1, '\n')) {
        double p[3];
        int k;
        cr_assert_eq(sscanf(line + 1, "%lf,%lf,%lf,%d", &p[0], &p[1], &p[2], &k), 4);
        cr_expect(fabs(p[0] + p[1] + p[2] - 1.0) < 1e-5);
        cr_expect(p[k] >= p[0] && p[k] >= p[1] && p[k] >= p[2]);
        lines++;
    }
    cr_expect_eq(lines, 77);
    snprintf(pred, sizeof pred, "%s/p2.csv", dir);
    snprintf(args, sizeof args, "predict --checkpoint %s --input %s --output %s", ckpt(run, 162), in, pred);
    cr_assert_eq(trainer("", 2, args), 0, "%s", out);
    snprintf(cmd, sizeof cmd, "cat %s", pred);
    run_cmd(cmd, two, sizeof two);
    cr_expect_str_eq(one, two);
}

Test(ckpt, deterministic_resume_on_another_rank_count_is_bitwise)
{
    /* 448 training rows: 28 optimizer steps of 16 rows per epoch; micro-batches of 8 rows as
     * (1 rank, accumulate 2) and as (2 ranks x 8 rows, accumulate 1) */
    char full[400], part[400], args[4096];
    const char *one = "--set data.n=640 --set train.deterministic=true --set train.threads=1 "
                      "--set train.batch_size=8 --set train.accumulate=2";
    const char *two = "--set data.n=640 --set train.deterministic=true --set train.threads=1 "
                      "--set train.batch_size=16 --set train.accumulate=1";
    snprintf(full, sizeof full, "%s/dfull", dir);
    snprintf(part, sizeof part, "%s/dpart", dir);
    snprintf(args, sizeof args, "train %s %s", config_for(full), one);
    cr_assert_eq(trainer("", 0, args), 0, "%s", out);
    snprintf(args, sizeof args, "train %s %s --set train.epochs=2", config_for(part), one);
    cr_assert_eq(trainer("", 0, args), 0, "%s", out);
    snprintf(args, sizeof args, "train %s %s --resume %s", config_for(part), two, part);
    cr_assert_eq(trainer("", 2, args), 0, "%s", out);
    expect_same_model(ckpt(full, 168), ckpt(part, 168), true); /* 6 epochs x 28 steps */
}

Test(ckpt, resume_with_batch_norm_dropout_schedule_and_early_stopping_is_bitwise_on_two_ranks)
{
    /* Linear, BatchNorm1d, Tanh, Dropout, Linear; cosine over 6 epochs whatever epochs says
     * (the first part stops after 3). min_delta 1e9: nothing improves after the
     * first evaluation, so patience 4 stops the run after epoch 5 of 6 -- but only if the
     * resumed run remembers the two evaluations without improvement before it stopped */
    const char *const names[] = {"/model/0/weight", "/model/0/bias", "/model/1/weight", "/model/1/bias",
                                 "/model/1/running_mean", "/model/1/running_var", "/model/4/weight",
                                 "/model/4/bias", NULL};
    const char *sets = "--set model.batchnorm=true --set model.dropout=0.2 --set train.lr_schedule=cosine "
                       "--set train.cosine_epochs=6 --set train.warmup_steps=10 --set train.clip_norm=0.5 --set train.l2=1e-4 "
                       "--set train.early_stopping=true --set train.patience=4 --set train.min_delta=1e9";
    char full[400], part[400], args[4096];
    snprintf(full, sizeof full, "%s/rfull", dir);
    snprintf(part, sizeof part, "%s/rpart", dir);
    snprintf(args, sizeof args, "train %s %s", config_for(full), sets);
    cr_assert_eq(trainer("", 2, args), 0, "%s", out);
    cr_expect(strstr(out, "early stopping after epoch 5") != NULL, "%s", out);
    snprintf(args, sizeof args, "train %s %s --set train.epochs=3", config_for(part), sets);
    cr_assert_eq(trainer("", 2, args), 0, "%s", out);
    snprintf(args, sizeof args, "train %s %s --resume %s", config_for(part), sets, part);
    cr_assert_eq(trainer("", 2, args), 0, "%s", out);
    cr_expect(strstr(out, "resumed from") && strstr(out, "early stopping after epoch 5"), "%s", out);
    expect_same_tensors(ckpt(full, 135), ckpt(part, 135), names, true); /* 5 epochs x 27 steps */
    cr_expect(access(ckpt(part, 162), F_OK) != 0, "the resumed run went on past the early stop");
    expect_same_metric_logs(full, part); /* the rates of the cosine schedule included */
}
