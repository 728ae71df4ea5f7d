/*
 * run.c: the epoch loop of a run and everything around it: resume and --init-from, the
 * evaluation schedule, the metric log, best.h5, periodic checkpoints with rotation, and the
 * stop on a signal. Rank 0 writes files; every decision that ends the run is agreed, so all
 * ranks return the same code.
 */
#include "trainer/run.h"

#include "trainer/ckpt_writer.h"
#include "trainer/clock.h"
#include "trainer/fault.h"
#include "trainer/files.h"
#include "trainer/rundir.h"
#include "trainer/steplog.h"
#include "trainer/sched.h"

#include <errno.h>
#include <signal.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct run_state {
    tr_metric_log *log;
    tr_step_log *steps; /* the per-step log, or NULL */
    tr_ckpt_writer *writer; /* rank 0: writes the checkpoints behind the training */
    double time_base;   /* training seconds of the run before this process */
    double t_start;
    char monitor[32];
    bool lower_better, has_monitor;
    double best_value;
    int64_t best_epoch;
    int64_t last_ckpt_step;
    bool progress;
    double last_progress;
    bool quiet;
    tr_plateau plateau;
    tr_early_stop es;
    bool stop_early;
    tr_stop_target target;     /* [train] stop_at */
    bool has_target;
    double t_command;          /* tr_seconds() when the command started */
    int64_t pause_epoch;       /* tr_run_options */
    tr_trial_queue *queue;
    double last_served;        /* when the queue was last answered */
} run_state;

/* ------------------------------------------------------------------ monitor ----------- */

bool tr_run_metric(const tr_trainer *t, const char *want, double *value)
{
    tr_metric_set set;
    const char *metric;
    if (!tr_metric_split(want, &set, &metric))
        return false;
    const tr_metrics *m = tr_trainer_metrics(t, set);
    if (m)
        return tr_metrics_get(m, metric, value);
    if (set == TR_SET_TRAIN) { /* the running means of the epoch */
        if (!strcmp(metric, "loss"))
            *value = t->train_loss;
        else if (!strcmp(metric, "accuracy") && tr_loss_task(&t->loss) == TR_TASK_CLASSIFICATION)
            *value = t->train_accuracy;
        else
            return false;
        return true;
    }
    return false;
}

bool tr_run_monitor(const tr_trainer *t, char *name, size_t len, bool *lower_better, double *value)
{
    const char *want = t->cfg->output.best_metric;
    if (!strcmp(want, "none"))
        return false;
    if (!strcmp(want, "auto"))
        want = t->data.val.rows > 0 ? "val_loss" : t->data.test.rows > 0 ? "test_loss" : "train_loss";
    snprintf(name, len, "%s", want);
    const tr_best_mode mode = t->cfg->output.best_mode;
    tr_metric_set set;
    const char *metric = "loss";
    tr_metric_split(want, &set, &metric); /* the configuration took only names that split */
    *lower_better = mode == TR_BEST_MIN || (mode == TR_BEST_AUTO && !tr_metric_higher_is_better(metric));
    return tr_run_metric(t, want, value);
}

/* A metric a key names (SET_METRIC) exists in this run, or the configuration contradicts
 * its data: a set the run does not have (val_loss without validation rows), the other
 * task's metric (test_r2 of a classifier), a training metric only eval_train computes. */
static int check_metric(const tr_trainer *t, const char *key, const char *value, const char *want, tr_err *err)
{
    tr_metric_set set;
    const char *metric;
    if (!tr_metric_split(want, &set, &metric))
        return tr_fail(err, TR_ECONFIG, "%s = %s: not a metric's name", key, value);
    const bool cls = tr_loss_task(&t->loss) == TR_TASK_CLASSIFICATION;
    if ((set == TR_SET_EMA_VAL || set == TR_SET_EMA_TEST) && !tr_ema_on(&t->ema))
        return tr_fail(err, TR_ECONFIG, "%s = %s: the weights' moving average is not kept (set [train] ema_decay, "
                                        "e.g. 0.999)", key, value);
    if ((set == TR_SET_VAL || set == TR_SET_EMA_VAL) && t->data.val.rows == 0)
        return tr_fail(err, TR_ECONFIG, "%s = %s: the run has no validation rows (set [data] val_fraction, or "
                                        "choose a test_ or train_ metric)", key, value);
    if ((set == TR_SET_TEST || set == TR_SET_EMA_TEST) && t->data.test.rows == 0)
        return tr_fail(err, TR_ECONFIG, "%s = %s: the run has no test rows (set [data] test_fraction or test_path, "
                                        "or choose a val_ or train_ metric)", key, value);
    tr_metrics probe = {.task = cls ? TR_TASK_CLASSIFICATION : TR_TASK_REGRESSION};
    double v;
    if (!tr_metrics_get(&probe, metric, &v))
        return tr_fail(err, TR_ECONFIG, "%s = %s: %s is a %s metric, and this run %s ([train] loss = %s)", key, value,
                       metric, cls ? "regression" : "classification", cls ? "classifies" : "regresses",
                       tr_loss_name(t->loss.kind));
    if (set == TR_SET_TRAIN && !t->cfg->train.eval_train && strcmp(metric, "loss") && strcmp(metric, "accuracy"))
        return tr_fail(err, TR_ECONFIG, "%s = %s: the training set's %s is computed only with [train] eval_train = "
                                        "true (without it: train_loss, train_accuracy)", key, value, metric);
    return 0;
}

/* best_metric and stop_at name metrics the run has; best_metric = none while early stopping
 * or the plateau schedule follow it would never choose best.h5 nor fire, silently. */
static int check_monitor(const tr_trainer *t, tr_err *err)
{
    const tr_config *c = t->cfg;
    const char *want = c->output.best_metric;
    const tr_train_config *tc = &c->train;
    if (!strcmp(want, "none") && (tc->early_stopping || tc->lr_schedule == TR_SCHED_PLATEAU))
        return tr_fail(err, TR_ECONFIG, "[output] best_metric = none, but %s follows it: choose the metric to "
                                        "follow (e.g. val_loss)", tc->early_stopping ? "[train] early_stopping"
                                                                                     : "[train] lr_schedule = plateau");
    int rc = 0;
    if (strcmp(want, "none") && strcmp(want, "auto"))
        rc = check_metric(t, "[output] best_metric", want, want, err);
    tr_stop_target target;
    if (!rc && tc->stop_at[0] && tr_stop_target_parse(tc->stop_at, &target))
        rc = check_metric(t, "[train] stop_at", tc->stop_at, target.metric, err);
    return rc;
}

/* ------------------------------------------------------------------ checkpoints ------- */

/* The run's state a checkpoint carries (ckpt.h TR_CKPT_STATE) and where each field lives in
 * the trainer (t) or the run (r): state_of saves and restore_state resumes from this one list.
 * The fields not listed are derived: step_in_epoch, metric_rows, time_s, lr, the
 * has_best flags and plateau_best (NaN: none). */
#define RUN_STATE(X)                          \
    X(epoch, t->epoch)                        \
    X(step, t->step)                          \
    X(epoch_loss_sum, t->epoch_loss_sum)      \
    X(epoch_rows, t->epoch_rows)              \
    X(epoch_correct, t->epoch_correct)        \
    X(best_value, r->best_value)              \
    X(best_epoch, r->best_epoch)              \
    X(lr_scale, t->lr_scale)                  \
    X(plateau_bad, r->plateau.bad)            \
    X(es_best, r->es.best)                    \
    X(bad_evals, r->es.bad)

static tr_ckpt_state state_of(const tr_trainer *t, const run_state *r, int64_t step_in_epoch)
{
    tr_ckpt_state s = {0};
#define SAVE(field, place) s.field = place;
    RUN_STATE(SAVE)
#undef SAVE
    s.step_in_epoch = step_in_epoch;
    if (step_in_epoch == 0) { /* at an epoch's end the next one starts its sums afresh */
        s.epoch_loss_sum = 0.0;
        s.epoch_rows = s.epoch_correct = 0;
    }
    s.metric_rows = tr_metric_log_rows(r->log);
    s.time_s = r->time_base + (tr_seconds() - r->t_start);
    s.lr = t->optim.lr;
    s.plateau_best = r->plateau.has_best ? r->plateau.best : NAN;
    s.es_has_best = r->es.has_best;
    s.data = (tr_ckpt_data){.rows = t->data.train.rows,
                            .cols = t->data.train.cols,
                            .fingerprint = t->data.fingerprint,
                            .known = true,
                            .columns = t->data.feature_names};
    s.ema = &t->ema;
    return s;
}

/* The inverse of state_of: the trainer and the run continue where the checkpoint was. */
static void restore_state(tr_trainer *t, run_state *r, const tr_ckpt_state *st)
{
#define RESTORE(field, place) place = st->field;
    RUN_STATE(RESTORE)
#undef RESTORE
    r->time_base = st->time_s;
    r->plateau.has_best = !isnan(st->plateau_best);
    r->plateau.best = st->plateau_best;
    r->plateau.scale = st->lr_scale;
    r->es.has_best = st->es_has_best != 0;
    r->last_ckpt_step = st->step;
}

/* Rank 0 builds the checkpoint of `path` in memory and hands it to the writer thread;
 * everyone agrees on the result (and waits: the parameters must not change while rank 0
 * copies them). The result includes an earlier write's failure: the writer's errors reach
 * the run at the next checkpoint, or at the end (writes_done). */
static int save(tr_trainer *t, run_state *r, const char *path, int64_t step_in_epoch, bool rotate, tr_err *err)
{
    int rc = tr_trainer_sync_buffers(t, err); /* rank 0's batch-norm statistics go in the file */
    if (rc)
        return rc;
    if (t->dist->rank == 0) {
        tr_ckpt_state s = state_of(t, r, step_in_epoch);
        tr_ckpt_image img;
        rc = tr_ckpt_build(&img, path, t->cfg, &t->model, &t->optim, &t->data.scaler, &s, err);
        if (!rc)
            rc = tr_ckpt_writer_submit(r->writer, &img, rotate ? t->cfg->output.dir : NULL,
                                       t->cfg->output.keep_last, t->step, err);
    }
    rc = tr_dist_agree(t->dist, rc);
    if (rc && t->dist->rank != 0)
        tr_fail(err, rc, "rank 0 could not write a checkpoint (its message names the file)");
    return rc;
}

/* Every checkpoint handed over is on disk (or the first failure is the run's error): before
 * the run says a checkpoint exists. */
static int writes_done(tr_trainer *t, run_state *r, tr_err *err)
{
    const int rc = tr_dist_agree(t->dist, r->writer ? tr_ckpt_writer_wait(r->writer, err) : 0);
    if (rc && t->dist->rank != 0)
        tr_fail(err, rc, "rank 0 could not write a checkpoint (its message names the file)");
    return rc;
}

static int save_step(tr_trainer *t, run_state *r, int64_t step_in_epoch, tr_err *err)
{
    char path[TR_PATH_MAX + 64];
    tr_ckpt_path(path, sizeof path, t->cfg->output.dir, t->step);
    const int rc = save(t, r, path, step_in_epoch, true, err);
    if (!rc)
        r->last_ckpt_step = t->step;
    return rc;
}

/* Loads a checkpoint on every rank; in the node-shared mode one rank per node writes the
 * shared parameters and optimizer state. */
static int load(tr_trainer *t, const char *path, bool full, bool non_strict, tr_ckpt_state *st, tr_err *err)
{
    const bool writer = !tr_reduce_shares_params(t->reduce) || t->dist->local_rank == 0;
    tr_ckpt_parts parts = {.skip_params = !writer,
                           .optim = full && writer ? &t->optim : NULL,
                           .scaler = NULL,
                           .state = full ? st : NULL,
                           .ema = full ? &t->ema : NULL, /* every rank keeps its own */
                           .plain_ok = !full,
                           .non_strict = non_strict,
                           .note = t->dist->rank == 0 ? stderr : NULL};
    int rc = tr_ckpt_load(path, t->cfg, &t->model, &parts, err);
    rc = tr_dist_agree(t->dist, rc);
    if (!rc && full && !writer) { /* the others keep their own copy of the optimizer's counters */
        int64_t s = st->step;
        t->optim.step = s;
        t->optim.lr = st->lr;
    }
    bool same = true;
    if (!rc)
        rc = tr_dist_same_everywhere(t->dist, t->model.params, t->model.n_params * sizeof(float), &same, err);
    if (!rc && !same)
        rc = tr_fail(err, TR_EINTERNAL, "%s: the ranks loaded different parameters", path);
    return rc;
}

/* Finds the checkpoint to resume from (rank 0 looks, everyone gets the same path). */
static int find_resume(tr_trainer *t, const tr_run_options *o, char *path, size_t len, tr_err *err)
{
    path[0] = '\0';
    const char *dir = o->resume_dir ? o->resume_dir : t->cfg->output.resume == TR_RESUME_AUTO ? t->cfg->output.dir
                                                                                             : NULL;
    if (!dir)
        return 0;
    int rc = 0;
    if (t->dist->rank == 0) {
        rc = tr_ckpt_find_latest(dir, path, len, err);
        if (rc == 1) {
            path[0] = '\0';
            rc = o->resume_dir ? tr_fail(err, TR_ECKPT, "--resume %s: no valid checkpoint (ckpt-*.h5) there", dir) : 0;
            if (!rc && !o->quiet && t->out)
                fprintf(t->out, "resume = auto: no checkpoint in %s yet, starting a new run\n", dir);
        }
    }
    rc = tr_dist_agree(t->dist, rc);
    if (!rc)
        rc = tr_dist_bcast(t->dist, path, len, 0, err);
    return rc;
}

/* The settings that give a run's numbers their meaning: a resume may not change them, or
 * best.h5 and the metric log would compare values of different kinds. */
static const char *const resume_fixed[][2] = {
    {"train", "loss"}, {"train", "reduction"}, {"output", "best_metric"}, {"output", "best_mode"}};

/* The engine and precision a checkpoint's run computed with; checkpoints from before they were
 * recorded hold the default "auto", and those runs computed with OpenBLAS. */
static const char *stored_engine(const tr_config *was)
{
    const char *e = tr_config_value(was, "train", "gemm");
    return !e[0] || !strcmp(e, "auto") ? "openblas" : e;
}

/* Refuses a resume whose loss (and so task), reduction or best-model metric differs from
 * the checkpoint's, naming each difference; and one whose GEMM engine or precision differs
 * in deterministic mode, where the bits depend on them (elsewhere it continues with a
 * warning: the numbers then differ in rounding). Rank 0. */
static int check_resumable(const tr_config *c, const char *path, tr_err *err)
{
    tr_config was;
    int rc = tr_ckpt_read_config(path, &was, err);
    if (rc)
        return rc;
    char diff[1024] = "";
    size_t u = 0;
    for (size_t i = 0; i < sizeof resume_fixed / sizeof resume_fixed[0]; i++) {
        const char *a = tr_config_value(&was, resume_fixed[i][0], resume_fixed[i][1]);
        const char *b = tr_config_value(c, resume_fixed[i][0], resume_fixed[i][1]);
        if (strcmp(a, b) && u < sizeof diff)
            u += (size_t)snprintf(diff + u, sizeof diff - u, "%s[%s] %s = %s in the checkpoint, %s in the configuration",
                                  u ? "; " : "", resume_fixed[i][0], resume_fixed[i][1], a, b);
    }
    char engine[256] = "";
    const char *e0 = stored_engine(&was), *p0 = tr_config_value(&was, "train", "precision");
    const char *e1 = tr_config_value(c, "train", "gemm"), *p1 = tr_config_value(c, "train", "precision");
    if (strcmp(e0, e1) || strcmp(p0[0] ? p0 : "fp32", p1))
        snprintf(engine, sizeof engine, "the checkpoint's run computed with gemm = %s, precision = %s; this one with %s, %s",
                 e0, p0[0] ? p0 : "fp32", e1, p1);
    tr_config_free(&was);
    if (u)
        return tr_fail(err, TR_ECONFIG,
                       "%s: cannot resume: %s (best.h5 and the metric log would compare values of different kinds); "
                       "resume with the checkpoint's settings, or start a new run with --init-from %s",
                       path, diff, path);
    if (engine[0] && c->train.deterministic)
        return tr_fail(err, TR_ECONFIG,
                       "%s: cannot resume in deterministic mode: %s, and the bits depend on them; set [train] gemm and "
                       "precision as the checkpoint's run had them", path, engine);
    if (engine[0])
        fprintf(stderr, "trainer: warning: %s: %s (the results differ in rounding from an uninterrupted run)\n", path,
                engine);
    return 0;
}

/* The step of the epoch a checkpoint resumes at, in this run's steps. A checkpoint saved in
 * the middle of an epoch has trained that epoch's first rows (its steps x its rows per step)
 * in an order that depends only on the keys below; the run continues exactly after them when
 * the order is the same and they are whole steps of this run's size, and refuses otherwise
 * (another batch size would read the position as its own steps, skipping or repeating rows). */
static int resume_position(const tr_config *c, const char *path, const tr_ckpt_state *st, int64_t *start,
                           FILE *out, tr_err *err)
{
    *start = st->step_in_epoch;
    if (st->step_in_epoch == 0)
        return 0;
    tr_config was;
    int rc = tr_ckpt_read_config(path, &was, err);
    if (rc)
        return rc;
    static const char *const order_keys[][2] = {{"train", "seed"},          {"train", "shuffle"},
                                                {"train", "shuffle_block"}, {"train", "shuffle_window"},
                                                {"train", "drop_last"}};
    for (size_t i = 0; !rc && i < sizeof order_keys / sizeof order_keys[0]; i++) {
        const char *a = tr_config_value(&was, order_keys[i][0], order_keys[i][1]);
        const char *b = tr_config_value(c, order_keys[i][0], order_keys[i][1]);
        if (strcmp(a, b))
            rc = tr_fail(err, TR_ECONFIG,
                         "%s was saved in the middle of epoch %lld, whose remaining rows follow that epoch's order; "
                         "[%s] %s = %s there and %s now gives another order: resume with %s, or from a checkpoint "
                         "at the end of an epoch", path, (long long)st->epoch + 1, order_keys[i][0],
                         order_keys[i][1], a, b, a);
    }
    const int64_t old_rows = was.train.batch_size * was.train.accumulate;
    const int64_t new_rows = c->train.batch_size * c->train.accumulate;
    const int64_t done = st->step_in_epoch * old_rows;
    if (!rc && done % new_rows != 0)
        rc = tr_fail(err, TR_ECONFIG,
                     "%s was saved after %lld rows of epoch %lld (%lld steps of batch_size %lld x accumulate %lld); "
                     "steps of %lld rows (batch_size %lld x accumulate %lld) cannot continue exactly there: resume "
                     "with batch_size = %lld and accumulate = %lld, or from a checkpoint at the end of an epoch",
                     path, (long long)done, (long long)st->epoch + 1, (long long)st->step_in_epoch,
                     (long long)was.train.batch_size, (long long)was.train.accumulate, (long long)new_rows,
                     (long long)c->train.batch_size, (long long)c->train.accumulate,
                     (long long)was.train.batch_size, (long long)was.train.accumulate);
    if (!rc && new_rows != old_rows) {
        *start = done / new_rows;
        if (out)
            fprintf(out, "the checkpoint was saved after %lld rows of epoch %lld: the run continues there, at step "
                         "%lld of %lld rows\n", (long long)done, (long long)st->epoch + 1, (long long)*start + 1,
                    (long long)new_rows);
    }
    tr_config_free(&was);
    return rc;
}

/* Makes the run directory this run's: an earlier run there (not the one being resumed) is
 * refused, deleted (--overwrite) or set aside (resume = auto found nothing to resume).
 * Rank 0. */
static int claim_dir(tr_rundir *rd, const tr_run_options *o, const tr_config *c, const char *resume_path,
                     FILE *out, tr_err *err)
{
    char dir_of_ckpt[TR_PATH_MAX + 300];
    snprintf(dir_of_ckpt, sizeof dir_of_ckpt, "%s", resume_path);
    char *slash = strrchr(dir_of_ckpt, '/');
    if (slash)
        *slash = '\0';
    const bool own = resume_path[0] && tr_same_file(dir_of_ckpt, rd->dir);
    /* nothing the run reads is written over, moved or deleted, and nothing is written
     * through a link or over a file the trainer did not write (rundir.h); a resume of this
     * directory's own run reads its own checkpoint, which rotation deletes in its time */
    const tr_data_config *dc = &c->data;
    const char *const reads[] = {c->path,        dc->path,        dc->test_path,  dc->images,     dc->labels,
                                 dc->test_images, dc->test_labels, o->init_from,   own ? NULL : resume_path};
    const int checked = tr_rundir_check_files(rd, reads, (int)(sizeof reads / sizeof *reads), err);
    if (checked || own)
        return checked;
    char list[1024];
    if (tr_rundir_earlier_run(rd, list, sizeof list) == 0)
        return 0;
    if (o->overwrite) {
        if (out && !o->quiet)
            fprintf(out, "--overwrite: deleting the earlier run in %s (%s)\n", rd->dir, list);
        return tr_rundir_clear(rd, err);
    }
    if (!resume_path[0] && !o->resume_dir && c->output.resume == TR_RESUME_AUTO) {
        char where[TR_PATH_MAX + 64];
        const int rc = tr_rundir_set_aside(rd, where, sizeof where, err);
        if (!rc)
            fprintf(stderr, "trainer: note: resume = auto found no valid checkpoint in %s; the earlier run's files "
                            "(%s) were moved to %s and a new run starts\n", rd->dir, list, where);
        return rc;
    }
    return tr_fail(err, TR_ECONFIG,
                   "[output] dir = %s holds an earlier run (%s): resume it (--resume %s or [output] resume = auto), "
                   "choose another dir, or replace it with --overwrite",
                   rd->dir, list, rd->dir);
}

/* ------------------------------------------------------------------ the loop ---------- */

/* A row of the per-step log (rank 0). */
static int log_step(const tr_trainer *t, run_state *r, tr_err *err)
{
    const double denom = tr_loss_denominator(&t->loss, t->epoch_rows, (double)t->epoch_rows);
    const tr_step_row row = {.step = (double)t->step, .epoch = (double)t->epoch + 1, .loss = t->step_loss,
                             .running_loss = denom > 0 ? t->epoch_loss_sum / denom : NAN, .grad_norm = t->grad_norm,
                             .lr = t->optim.lr};
    return tr_step_log_append(r->steps, &row, err);
}

static void fill_row(const tr_trainer *t, const run_state *r, double seconds, int64_t rows, tr_log_row *row)
{
    memset(row, 0, sizeof *row);
    row->epoch = t->epoch;
    row->step = t->step;
    row->time_s = r->time_base + (tr_seconds() - r->t_start);
    row->lr = t->optim.lr;
    row->train_loss = t->train_loss;
    row->train_accuracy = t->train_accuracy;
    row->train_eval = tr_trainer_metrics(t, TR_SET_TRAIN);
    row->val = tr_trainer_metrics(t, TR_SET_VAL);
    row->test = tr_trainer_metrics(t, TR_SET_TEST);
    row->ema_val = tr_trainer_metrics(t, TR_SET_EMA_VAL);
    row->ema_test = tr_trainer_metrics(t, TR_SET_EMA_TEST);
    row->samples_per_s = seconds > 0 ? (double)rows / seconds : 0.0;
    row->penalty = tr_trainer_penalty(t);
    const double steps = t->phase_steps > 0 ? (double)t->phase_steps : 1.0;
    for (int p = 0; p < TR_LOG_PHASES && p < TR_PHASE_COUNT; p++)
        row->phase_ms[p] = 1e3 * t->phase[p] / steps;
}

/* After an evaluation: log it, print it, and keep best.h5. */
static int after_eval(tr_trainer *t, run_state *r, double seconds, int64_t rows, tr_err *err)
{
    tr_log_row row;
    fill_row(t, r, seconds, rows, &row);
    int rc = 0;
    if (t->dist->rank == 0 && r->log)
        rc = tr_metric_log_append(r->log, &row, err);
    rc = tr_dist_agree(t->dist, rc);
    if (rc)
        return rc;
    if (t->out && !r->quiet)
        tr_log_eval_line(t->out, &row, t->cfg->train.epochs, tr_loss_task(&t->loss));
    for (int p = 0; p < TR_PHASE_COUNT; p++)
        t->phase[p] = 0.0;
    t->phase_steps = 0;
    double v;
    if (r->has_monitor && tr_run_monitor(t, r->monitor, sizeof r->monitor, &r->lower_better, &v) && isfinite(v) &&
        (r->best_epoch < 0 || (r->lower_better ? v < r->best_value : v > r->best_value))) {
        r->best_value = v;
        r->best_epoch = t->epoch;
        char path[TR_PATH_MAX + 16];
        snprintf(path, sizeof path, "%s/best.h5", t->cfg->output.dir);
        rc = save(t, r, path, 0, false, err);
    }
    /* the plateau schedule and early stopping follow the same monitor */
    const tr_train_config *tc = &t->cfg->train;
    char name[32];
    bool lower;
    if (!rc && (tc->lr_schedule == TR_SCHED_PLATEAU || tc->early_stopping) &&
        tr_run_monitor(t, name, sizeof name, &lower, &v)) {
        if (tc->lr_schedule == TR_SCHED_PLATEAU && tr_plateau_update(&r->plateau, tc, t->base_lr, v, lower)) {
            t->lr_scale = r->plateau.scale;
            if (t->out && !r->quiet)
                fprintf(t->out, "%s has not improved for %lld evaluations: learning rate now %.3g\n", name,
                        (long long)tc->plateau_patience, t->base_lr * t->lr_scale);
        }
        if (tc->early_stopping && tr_early_stop_update(&r->es, v, lower, tc->min_delta, tc->patience)) {
            r->stop_early = true;
            if (t->out && !r->quiet)
                fprintf(t->out, "early stopping after epoch %lld: %s has not improved by more than %g for %lld "
                                "evaluations (best %.6g at epoch %lld, in best.h5)\n",
                        (long long)t->epoch, name, tc->min_delta, (long long)tc->patience, r->best_value,
                        (long long)r->best_epoch);
        }
    }
    /* the target: every rank holds the same metrics, so every rank stops at the same epoch */
    if (!rc && r->has_target && tr_run_metric(t, r->target.metric, &v) && tr_stop_target_met(&r->target, v)) {
        r->stop_early = true;
        t->time_to_target = tr_seconds() - r->t_command;
        t->target_epoch = t->epoch;
        t->target_step = t->step;
        if (t->out && !r->quiet)
            fprintf(t->out, "stop_at %s: %s = %.6g after epoch %lld (step %lld), %.2f s from the start\n",
                    tc->stop_at, r->target.metric, v, (long long)t->epoch, (long long)t->step, t->time_to_target);
    }
    return rc;
}

/* A checkpoint resumed: its data must be the run's (unless --new-data), its position one
 * this configuration can continue at, and then the trainer and the run continue where it
 * was. */
static int resume_from(tr_trainer *t, run_state *r, const tr_run_options *o, const char *path,
                       int64_t *start_in_epoch, int64_t *keep_rows, tr_err *err)
{
    const tr_config *c = t->cfg;
    tr_ckpt_state st = {0};
    int rc = load(t, path, true, false, &st, err);
    if (!rc && st.data.known && !o->new_data &&
        (st.data.rows != t->data.train.rows || st.data.cols != t->data.train.cols ||
         st.data.fingerprint != t->data.fingerprint))
        rc = tr_fail(err, TR_EDATA,
                     "%s was trained on other data than %s gives now (training rows %lld, columns %lld, "
                     "fingerprint %08llx; now %lld, %lld, %08llx): the file changed, or the split or "
                     "filtering did; restore the data, or pass --new-data to continue on these",
                     path, t->data.source, (long long)st.data.rows, (long long)st.data.cols,
                     (unsigned long long)st.data.fingerprint, (long long)t->data.train.rows,
                     (long long)t->data.train.cols, (unsigned long long)t->data.fingerprint);
    if (!rc)
        rc = resume_position(c, path, &st, start_in_epoch, t->dist->rank == 0 && !o->quiet ? t->out : NULL, err);
    if (rc)
        return rc;
    restore_state(t, r, &st);
    *keep_rows = st.metric_rows;
    if (t->out && !o->quiet)
        fprintf(t->out, "resumed from %s: epoch %lld, step %lld\n", path, (long long)st.epoch, (long long)st.step);
    if (o->init_from && t->dist->rank == 0) /* resume = auto found the run: a requeued job */
        fprintf(stderr, "trainer: note: --init-from %s is not used: resume = auto continues the run in %s, "
                        "which started from it\n", o->init_from, c->output.dir);
    return 0;
}

/* Where the run starts, in the run directory rank 0 holds: a checkpoint to resume (path,
 * else ""), --init-from, or the configured initialisation; then the effective configuration
 * is written. *keep_rows: the metric-log rows the resumed checkpoint belongs to (-1: new). */
static int start_run(tr_trainer *t, run_state *r, tr_rundir *rd, const tr_run_options *o, char *path, size_t len,
                     int64_t *start_in_epoch, int64_t *keep_rows, tr_err *err)
{
    const tr_config *c = t->cfg;
    int rc = find_resume(t, o, path, len, err);
    if (!rc && path[0])
        rc = tr_dist_agree(t->dist, t->dist->rank == 0 ? check_resumable(c, path, err) : 0);
    if (!rc)
        rc = tr_dist_agree(t->dist, t->dist->rank == 0 ? claim_dir(rd, o, c, path, t->out, err) : 0);
    if (!rc && path[0]) {
        rc = resume_from(t, r, o, path, start_in_epoch, keep_rows, err);
    } else if (!rc && o->init_from) {
        rc = load(t, o->init_from, false, o->non_strict, NULL, err);
        if (!rc && t->out && !o->quiet)
            fprintf(t->out, "initialised from %s (parameters only)\n", o->init_from);
    }
    if (!rc && t->dist->rank == 0)
        rc = tr_rundir_write_config(rd, c, err);
    if (!rc && t->dist->rank == 0)
        rc = tr_rundir_write_folds(rd, &t->data, err);
    return tr_dist_agree(t->dist, rc);
}

/* Rank 0's outputs besides the checkpoints: the metric log (keeping keep_rows rows of a
 * resumed one), the checkpoint writer, the per-step log; and whether a progress line shows. */
static int open_outputs(tr_trainer *t, run_state *r, const tr_run_options *o, bool resumed, int64_t keep_rows,
                        tr_err *err)
{
    const tr_config *c = t->cfg;
    int rc = 0;
    if (t->dist->rank == 0) {
        tr_log_layout layout = {.task = tr_loss_task(&t->loss),
                                .classes = tr_loss_classes(&t->loss),
                                .train_eval = c->train.eval_train,
                                .val = t->data.val.rows > 0,
                                .test = t->data.test.rows > 0,
                                .ema_val = tr_ema_on(&t->ema) && t->data.val.rows > 0,
                                .ema_test = tr_ema_on(&t->ema) && t->data.test.rows > 0,
                                .phase_names = tr_phase_names};
        rc = tr_metric_log_open(&r->log, c->output.dir, &layout, keep_rows, err);
        if (!rc)
            rc = tr_ckpt_writer_open(&r->writer, err);
        if (!rc && c->output.log_every_steps > 0)
            rc = tr_step_log_open(&r->steps, c->output.dir, resumed ? t->step : -1, err);
    }
    /* auto: a terminal, and not under a launcher (mpirun hands ranks a pseudo-terminal even
     * when its own output goes to a file) */
    const bool launched = getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK") ||
                          getenv("SLURM_PROCID");
    r->progress = t->out && !o->quiet &&
                  (c->output.progress == TR_PROGRESS_ALWAYS ||
                   (c->output.progress == TR_PROGRESS_AUTO && !launched && isatty(fileno(t->out))));
    return tr_dist_agree(t->dist, rc);
}

/* The stop every rank agreed on (a signal): a checkpoint at this step, every write done, and
 * TR_ESTOPPED with the command that continues. */
static int stop_with_checkpoint(tr_trainer *t, run_state *r, int64_t step_in_epoch, tr_err *err)
{
    if (r->progress)
        tr_log_progress_end(t->out);
    int rc = save_step(t, r, step_in_epoch, err);
    if (!rc)
        rc = writes_done(t, r, err);
    if (rc)
        return rc;
    char p[TR_PATH_MAX + 64];
    tr_ckpt_path(p, sizeof p, t->cfg->output.dir, t->step);
    return tr_fail(err, TR_ESTOPPED,
                   "stopped by a signal at epoch %lld, step %lld; checkpoint %s written; continue with "
                   "trainer train CONFIG --resume %s",
                   (long long)t->epoch + 1, (long long)t->step, p, t->cfg->output.dir);
}

/* The steps of the current epoch from step `first`, with the per-step log, the stop on a
 * signal, step checkpoints and the progress line. signal_step: the test hook's (fault.h). */
static int epoch_steps(tr_trainer *t, run_state *r, int64_t first, int64_t signal_step, tr_err *err)
{
    const tr_config *c = t->cfg;
    const int64_t steps = tr_sampler_steps(&t->sampler);
    for (int64_t s = first; s < steps; s++) {
        if (t->step + 1 == signal_step) /* the real handler and the agreement, exercised */
            raise(SIGTERM);
        int rc = tr_trainer_step(t, s, err);
        if (!rc && tr_trainer_logs_step(t, t->step))
            rc = tr_dist_agree(t->dist, r->steps ? log_step(t, r, err) : 0);
        if (!rc && t->stop_agreed)
            rc = stop_with_checkpoint(t, r, s + 1, err);
        if (!rc && c->output.checkpoint_every_steps > 0 && t->step % c->output.checkpoint_every_steps == 0 &&
            s + 1 < steps)
            rc = save_step(t, r, s + 1, err);
        if (rc)
            return rc;
        if (r->queue && tr_seconds() - r->last_served > 1e-3) { /* a search's other groups wait for answers */
            tr_queue_serve(r->queue);
            r->last_served = tr_seconds();
        }
        if (r->progress && tr_seconds() - r->last_progress > 0.1) {
            r->last_progress = tr_seconds();
            const double denom = tr_loss_denominator(&t->loss, t->epoch_rows, (double)t->epoch_rows);
            tr_log_progress(t->out, t->epoch + 1, c->train.epochs, s + 1, steps,
                            denom > 0 ? t->epoch_loss_sum / denom : 0.0);
        }
    }
    if (r->progress)
        tr_log_progress_end(t->out);
    return 0;
}

/* An epoch is done: its running loss and accuracy, the evaluation when one is due (with the
 * seconds and rows since the last), and the epoch's checkpoint. */
static int end_epoch(tr_trainer *t, run_state *r, double *since_eval, int64_t *rows_since_eval, tr_err *err)
{
    const tr_config *c = t->cfg;
    t->epoch++;
    const double rows = (double)t->epoch_rows;
    t->train_loss = t->epoch_loss_sum / tr_loss_denominator(&t->loss, t->epoch_rows, rows);
    const double per_row = tr_loss_takes_class_index(&t->loss) ? 1.0 : (double)t->loss.width;
    t->train_accuracy = tr_loss_task(&t->loss) == TR_TASK_CLASSIFICATION
                            ? (double)t->epoch_correct / (rows * per_row)
                            : NAN;
    *rows_since_eval += t->epoch_rows;
    if (t->epoch % c->train.eval_every == 0 || t->epoch == c->train.epochs || t->epoch == r->pause_epoch) {
        int rc = tr_trainer_evaluate_all(t, err);
        if (!rc)
            rc = after_eval(t, r, *since_eval, *rows_since_eval, err);
        if (rc)
            return rc;
        *since_eval = 0.0;
        *rows_since_eval = 0;
    }
    const bool last = t->epoch == c->train.epochs || r->stop_early;
    if ((c->output.checkpoint_every > 0 && t->epoch % c->output.checkpoint_every == 0) || last)
        return save_step(t, r, 0, err);
    return 0;
}

int tr_run(tr_trainer *t, const tr_run_options *o, tr_err *err)
{
    const tr_config *c = t->cfg;
    run_state r = {.t_start = tr_seconds(), .best_epoch = -1, .last_ckpt_step = -1, .quiet = o->quiet};
    r.t_command = o->started > 0.0 ? o->started : r.t_start;
    r.pause_epoch = o->pause_epoch;
    r.queue = o->queue;
    r.has_target = c->train.stop_at[0] && tr_stop_target_parse(c->train.stop_at, &r.target);
    t->time_to_target = NAN;
    tr_plateau_init(&r.plateau);
    tr_early_stop_init(&r.es);
    t->stop_flag = o->stop;
    r.has_monitor = strcmp(c->output.best_metric, "none") != 0;

    /* a contradiction in the configuration first (every rank sees the same data sizes) */
    int rc = check_monitor(t, err);
    if (rc)
        return rc;
    /* the run directory (rank 0 owns it for the whole run), then where to start */
    tr_rundir rd = {.lock_fd = -1};
    rc = tr_dist_agree(t->dist, t->dist->rank == 0 ? tr_rundir_open(&rd, c->output.dir, err) : 0);
    char path[TR_PATH_MAX + 300];
    int64_t start_in_epoch = 0, keep_rows = -1;
    if (!rc)
        rc = start_run(t, &r, &rd, o, path, sizeof path, &start_in_epoch, &keep_rows, err);
    if (!rc)
        rc = open_outputs(t, &r, o, path[0] != '\0', keep_rows, err);
    const int64_t signal_step = tr_fault_signal_step(t->dist->rank);
    double since_eval = 0.0;
    int64_t rows_since_eval = 0;
    while (!rc && t->epoch < c->train.epochs && !r.stop_early && !(r.pause_epoch > 0 && t->epoch >= r.pause_epoch)) {
        const double t0 = tr_seconds();
        tr_sampler_set_epoch(&t->sampler, t->epoch);
        if (start_in_epoch == 0) {
            t->epoch_loss_sum = 0.0;
            t->epoch_rows = t->epoch_correct = 0;
        }
        rc = epoch_steps(t, &r, start_in_epoch, signal_step, err);
        start_in_epoch = 0;
        since_eval += tr_seconds() - t0;
        if (!rc)
            rc = end_epoch(t, &r, &since_eval, &rows_since_eval, err);
    }
    if (!rc) {
        t->stopped_early = r.stop_early;
        if (r.last_ckpt_step != t->step) /* a resumed run that had nothing left to do still leaves one */
            rc = save_step(t, &r, 0, err);
        if (!rc)
            rc = writes_done(t, &r, err);
        if (!rc && r.log && isfinite(t->time_to_target))
            rc = tr_metric_log_mark_target(r.log, c->train.stop_at, t->time_to_target, t->target_epoch,
                                           t->target_step, err);
        rc = tr_dist_agree(t->dist, rc);
        t->seconds = r.time_base + (tr_seconds() - r.t_start);
    }
    tr_ckpt_writer_close(r.writer); /* an error on the way out: what was handed over is still written */
    tr_metric_log_close(r.log);
    tr_step_log_close(r.steps);
    tr_rundir_close(&rd);
    return rc;
}
