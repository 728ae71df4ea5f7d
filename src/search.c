/*
 * search.c: `trainer search` (search.h): the groups, the data held once per node, each unit
 * trained in segments between successive-halving rungs, and the search directory.
 */
#include "trainer/search.h"

#include "trainer/clock.h"
#include "trainer/config.h"
#include "trainer/loss.h"
#include "trainer/run.h"
#include "trainer/rundir.h"
#include "trainer/search_report.h"
#include "trainer/space.h"
#include "trainer/train.h"
#include "trainer/trial_queue.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define STATE_FILE "search.state"

typedef struct search {
    const tr_search_options *o;
    tr_dist *world;
    tr_dist group;
    tr_space space;
    tr_config base;
    int64_t trials, folds;    /* folds: 1 without cross-validation */
    int64_t *epochs;          /* each trial's configured epochs */
    tr_data *data;            /* (folds) */
    int n_data;               /* loaded */
    char metric[64];
    bool higher_better;
    tr_trial_queue *q;
    tr_rundir rd;             /* world rank 0 holds the search directory */
    char dir[TR_PATH_MAX];
    bool fresh_units;         /* --overwrite: a unit's first run replaces what its directory holds */
    bool checkpoint_at_ends;  /* [output] checkpoint_every left at its default: a unit writes checkpoints at
                               * its rungs, its end and on a signal (a checkpoint every epoch costs a small
                               * network more than its training) */
} search;

enum { MAX_UNIT_SETS = 300 };

/* The overrides of unit (trial, fold): the command line's, the trial's values, its
 * directory (resumed from its checkpoint when it has one) and the fold. Strings go into buf. */
static int unit_sets(const search *s, int64_t trial, int64_t fold, const char **sets, int *n,
                     char (*buf)[TR_PATH_MAX + 128], tr_err *err)
{
    int k = 0, b = 0;
    if (s->o->n_sets + s->space.n_dims + 5 > MAX_UNIT_SETS)
        return tr_fail(err, TR_EUSAGE, "too many --set options with this space");
    for (int i = 0; i < s->o->n_sets; i++)
        sets[k++] = s->o->sets[i];
    for (int d = 0; d < s->space.n_dims; d++) {
        char value[TR_PATH_MAX];
        tr_space_value(&s->space, trial, d, value, sizeof value);
        snprintf(buf[b], sizeof buf[b], "%s=%s", s->space.dims[d].key, value);
        sets[k++] = buf[b++];
    }
    if (s->folds > 1)
        snprintf(buf[b], sizeof buf[b], "output.dir=%s/trials/%04lld/fold-%lld", s->dir, (long long)trial,
                 (long long)fold);
    else
        snprintf(buf[b], sizeof buf[b], "output.dir=%s/trials/%04lld", s->dir, (long long)trial);
    sets[k++] = buf[b++];
    snprintf(buf[b], sizeof buf[b], "output.resume=auto");
    sets[k++] = buf[b++];
    if (s->checkpoint_at_ends) {
        snprintf(buf[b], sizeof buf[b], "output.checkpoint_every=0");
        sets[k++] = buf[b++];
    }
    if (s->folds > 1) {
        snprintf(buf[b], sizeof buf[b], "data.folds=%lld", (long long)s->folds);
        sets[k++] = buf[b++];
        snprintf(buf[b], sizeof buf[b], "data.fold=%lld", (long long)fold);
        sets[k++] = buf[b++];
    }
    *n = k;
    return 0;
}

static int load_unit_config(const search *s, int64_t trial, int64_t fold, tr_config *c, tr_err *err)
{
    static const char *sets[MAX_UNIT_SETS];
    static char buf[64][TR_PATH_MAX + 128];
    int n = 0;
    memset(c, 0, sizeof *c);
    int rc = unit_sets(s, trial, fold, sets, &n, buf, err);
    if (!rc)
        rc = tr_config_load(c, s->o->config, sets, n, err);
    return rc;
}

/* ------------------------------------------------------------------ a unit ------------ */

/* One run of the unit's trainer until `pause` epochs (0: its end), on the group; fresh: the
 * first of a unit of a search started with --overwrite, which replaces what its directory
 * holds instead of resuming it. *ended: the run ended by itself (early stopping, stop_at). */
static int segment(search *s, tr_config *c, int64_t fold, int64_t pause, bool fresh, tr_unit *res, bool *ended,
                   tr_err *err)
{
    c->output.resume = fresh ? TR_RESUME_NEVER : TR_RESUME_AUTO;
    tr_trainer t;
    int rc = tr_trainer_init_with_data(&t, c, &s->group, &s->data[fold], NULL, err);
    if (!rc)
        tr_trainer_settle_config(&t, c);
    if (!rc) {
        tr_run_options ro = {.stop = s->o->stop, .quiet = true, .pause_epoch = pause, .overwrite = fresh,
                             .queue = s->q};
        rc = tr_run(&t, &ro, err);
    }
    if (!rc && !t.has_val_metrics && !t.has_test_metrics) /* resumed where it had ended: nothing evaluated */
        rc = tr_trainer_evaluate_all(&t, err);
    if (!rc) {
        *ended = t.stopped_early || isfinite(t.time_to_target);
        res->epochs = t.epoch;
        res->seconds = t.seconds;
        for (int m = 0; m < TR_RESULT_COUNT; m++)
            if (!tr_run_metric(&t, tr_result_metric_names[m], &res->metrics[m]))
                res->metrics[m] = NAN;
        if (!tr_run_metric(&t, s->metric, &res->score))
            res->score = NAN;
    }
    tr_trainer_free(&t);
    return rc;
}

/* A failure of the unit's own (its configuration, its data, divergence) ends the unit; any
 * other (MPI, the watchdog, files, memory) ends the search. */
static bool unit_failure(int rc)
{
    return rc == TR_ECONFIG || rc == TR_EDATA || rc == TR_EDIVERGED || rc == TR_EUSAGE;
}

/* TR_ESTOPPED on every rank of the group when a signal reached any of them (before a segment). */
static int group_stop(search *s)
{
    return tr_dist_agree(&s->group, s->o->stop && *s->o->stop ? TR_ESTOPPED : 0);
}

static int run_unit(search *s, int64_t unit, int32_t rungs_done, tr_err *err)
{
    const int64_t trial = unit / s->folds, fold = unit % s->folds;
    tr_unit res = {.status = TR_UNIT_DONE, .score = NAN};
    for (int m = 0; m < TR_RESULT_COUNT; m++)
        res.metrics[m] = NAN;
    tr_config c;
    int rc = load_unit_config(s, trial, fold, &c, err);
    bool fresh = rungs_done == 0 && s->fresh_units, trained = false, ended_early = false;
    int64_t last_rung_epoch = 0;
    if (!rc && s->space.set.asha) {
        int64_t rung_epoch = s->space.set.min_epochs;
        for (int32_t k = 0; !rc && k < TR_MAX_RUNGS && rung_epoch < c.train.epochs; k++) {
            if (k >= rungs_done) {
                rc = group_stop(s);
                if (!rc)
                    rc = segment(s, &c, fold, rung_epoch, fresh, &res, &ended_early, err);
                if (rc)
                    break;
                fresh = false;
                trained = true;
                if (ended_early) /* by itself (early_stopping, stop_at), at or before the rung: done */
                    break;
            }
            int decision = 1;
            rc = tr_queue_rung(s->q, &s->group, unit, k, res.score, &decision, err);
            last_rung_epoch = rung_epoch;
            if (!rc && decision <= 0) {
                res.status = decision == 0 ? TR_UNIT_PRUNED : TR_UNIT_INTERRUPTED;
                break;
            }
            rung_epoch *= s->space.set.eta;
        }
    }
    if (!rc && res.status == TR_UNIT_DONE && !ended_early) {
        rc = group_stop(s);
        if (!rc)
            rc = segment(s, &c, fold, 0, fresh, &res, &ended_early, err);
    } else if (!rc && res.status == TR_UNIT_PRUNED && !trained) { /* decided again after a resume */
        rc = segment(s, &c, fold, last_rung_epoch, false, &res, &ended_early, err);
    }
    tr_config_free(&c);
    int back = 0;
    if (rc == TR_ESTOPPED) {
        res.status = TR_UNIT_INTERRUPTED;
        back = rc;
    } else if (rc && unit_failure(rc)) {
        res.status = TR_UNIT_FAILED;
        res.exit_code = tr_exit_code(rc);
        snprintf(res.message, sizeof res.message, "%.*s", (int)sizeof res.message - 1, err->msg);
    } else if (rc) {
        res.status = TR_UNIT_INTERRUPTED;
        res.exit_code = tr_exit_code(rc);
        snprintf(res.message, sizeof res.message, "%.*s", (int)sizeof res.message - 1, err->msg);
        back = rc;
    }
    tr_err done_err;
    const int done = tr_queue_done(s->q, &s->group, unit, &res, &done_err);
    if (done && !back) {
        *err = done_err;
        back = done;
    }
    return back;
}

/* ------------------------------------------------------------------ setting up -------- */

/* The metric that ranks the trials: search.metric, else the configuration's best_metric,
 * else the validation loss (the test loss, the training loss) as best_metric = auto. */
static int choose_metric(search *s, tr_err *err)
{
    const char *want = s->space.set.metric;
    if (!strcmp(want, "auto"))
        want = s->base.output.best_metric;
    const tr_data *d = &s->data[0];
    if (!strcmp(want, "auto") || !strcmp(want, "none"))
        want = d->val.rows > 0 ? "val_loss" : d->test.rows > 0 ? "test_loss" : "train_loss";
    tr_metric_set set;
    const char *name;
    if (!tr_metric_split(want, &set, &name))
        return tr_fail(err, TR_ECONFIG, "search.metric = %s: not a metric's name (val_loss, val_accuracy, ...)", want);
    const bool val = set == TR_SET_VAL || set == TR_SET_EMA_VAL, test = set == TR_SET_TEST || set == TR_SET_EMA_TEST;
    if ((val && d->val.rows == 0) || (test && d->test.rows == 0))
        return tr_fail(err, TR_ECONFIG, "search.metric = %s: the runs have no %s rows", want,
                       val ? "validation" : "test");
    if ((set == TR_SET_EMA_VAL || set == TR_SET_EMA_TEST) && !(s->base.train.ema_decay > 0.0))
        return tr_fail(err, TR_ECONFIG, "search.metric = %s: the configuration keeps no moving average "
                                        "([train] ema_decay)", want);
    const tr_loss loss = {.kind = s->base.train.loss};
    tr_metrics probe = {.task = tr_loss_task(&loss)};
    double unused;
    if (!tr_metrics_get(&probe, name, &unused))
        return tr_fail(err, TR_ECONFIG, "search.metric = %s: %s is not a metric of a %s run ([train] loss = %s)", want,
                       name, probe.task == TR_TASK_CLASSIFICATION ? "classification" : "regression",
                       tr_loss_name(loss.kind));
    if (set == TR_SET_TRAIN && strcmp(name, "loss") && strcmp(name, "accuracy") && !s->base.train.eval_train)
        return tr_fail(err, TR_ECONFIG, "search.metric = %s: the training set's %s needs [train] eval_train = true",
                       want, name);
    snprintf(s->metric, sizeof s->metric, "%s", want);
    s->higher_better = tr_metric_higher_is_better(name);
    return 0;
}

/* Every trial's configuration loads (a bad value names the trial and its key), and its
 * epochs for the reports. Every rank checks alike. */
static int check_trials(search *s, tr_err *err)
{
    s->epochs = calloc((size_t)s->trials, sizeof *s->epochs);
    if (!s->epochs)
        return tr_fail(err, TR_ENOMEM, "out of memory");
    for (int64_t i = 0; i < s->trials; i++) {
        tr_config c;
        const int rc = load_unit_config(s, i, 0, &c, err);
        s->epochs[i] = c.train.epochs;
        tr_config_free(&c);
        if (rc)
            return tr_fail_context(err, "%s: trial %lld", s->o->space, (long long)i);
    }
    return 0;
}

/* World rank 0 claims the search directory: a search there is resumed (--resume) or
 * replaced (--overwrite), never silently mixed with a new one. */
static int claim_search_dir(search *s, tr_err *err)
{
    int rc = tr_rundir_open(&s->rd, s->dir, err);
    char state[TR_PATH_MAX + 64];
    snprintf(state, sizeof state, "%s/" STATE_FILE, s->dir);
    const bool exists = access(state, F_OK) == 0;
    if (!rc && s->o->resume && !exists)
        rc = tr_fail(err, TR_EUSAGE, "--resume: %s holds no search (no %s)", s->dir, STATE_FILE);
    if (!rc && !s->o->resume && exists && !s->o->overwrite)
        rc = tr_fail(err, TR_ECONFIG, "[output] dir = %s holds a search (%s): continue it with --resume, choose "
                                      "another dir, or replace it with --overwrite", s->dir, STATE_FILE);
    if (!rc && exists && s->o->overwrite && unlink(state) != 0)
        rc = tr_fail(err, TR_EIO, "%s: cannot delete: %s", state, strerror(errno));
    return rc;
}

static int load_data(search *s, tr_err *err)
{
    s->data = calloc((size_t)s->folds, sizeof *s->data);
    if (!s->data)
        return tr_fail(err, TR_ENOMEM, "out of memory");
    for (int64_t f = 0; f < s->folds; f++) {
        tr_config c;
        int rc = load_unit_config(s, 0, f, &c, err);
        if (!rc)
            rc = tr_trainer_load_data(&s->data[f], &c, s->world, err);
        tr_config_free(&c);
        if (rc)
            return rc;
        s->n_data++;
    }
    return 0;
}

/* What a resume must find unchanged: every unit's configuration (the configuration file's
 * effective values with the unit's overrides) and the settings that decide the units. */
static uint32_t fingerprint(const search *s)
{
    uLong crc = crc32(0L, Z_NULL, 0);
    for (int i = 0; i < s->base.n_entries; i++) {
        const tr_config_entry *e = &s->base.entries[i];
        if (strcmp(e->section, "output")) /* where the files go and how often: not the search's definition */
            crc = crc32(crc, (const Bytef *)e->value, (uInt)strlen(e->value) + 1);
    }
    for (int64_t t = 0; t < s->trials; t++)
        for (int d = 0; d < s->space.n_dims; d++) {
            char v[TR_PATH_MAX];
            tr_space_value(&s->space, t, d, v, sizeof v);
            crc = crc32(crc, (const Bytef *)s->space.dims[d].key, (uInt)strlen(s->space.dims[d].key) + 1);
            crc = crc32(crc, (const Bytef *)v, (uInt)strlen(v) + 1);
        }
    const tr_search_settings *st = &s->space.set;
    const int64_t settings[] = {s->folds, st->asha, st->min_epochs, st->eta, s->higher_better};
    crc = crc32(crc, (const Bytef *)settings, sizeof settings);
    crc = crc32(crc, (const Bytef *)s->metric, (uInt)strlen(s->metric));
    return (uint32_t)crc;
}

static void print_start(const search *s)
{
    FILE *out = s->o->out;
    if (!out)
        return;
    const tr_search_settings *st = &s->space.set;
    fprintf(out, "trainer search: %s over %s: %lld trial%s", s->o->config, s->o->space, (long long)s->trials,
            s->trials == 1 ? "" : "s");
    if (s->folds > 1)
        fprintf(out, " x %lld folds", (long long)s->folds);
    fprintf(out, ", %d group%s of %lld rank%s, ranked by %s", s->world->size / (int)st->ranks_per_trial,
            s->world->size / st->ranks_per_trial == 1 ? "" : "s", (long long)st->ranks_per_trial,
            st->ranks_per_trial == 1 ? "" : "s", s->metric);
    if (st->asha)
        fprintf(out, ", ASHA rungs at %lld x %lld^k epochs", (long long)st->min_epochs, (long long)st->eta);
    fprintf(out, "; directory %s%s\n", s->dir, s->o->resume ? " (resumed)" : "");
    fflush(out);
}

static int set_up(search *s, tr_err *err)
{
    int rc = tr_dist_agree(s->world, tr_space_load(&s->space, s->o->space, s->o->search_sets, s->o->n_search_sets, err));
    if (!rc)
        rc = tr_dist_agree(s->world, tr_config_load(&s->base, s->o->config, s->o->sets, s->o->n_sets, err));
    if (rc)
        return rc;
    const tr_search_settings *st = &s->space.set;
    s->trials = tr_space_trials(&s->space);
    s->folds = st->folds > 1 ? st->folds : 1;
    snprintf(s->dir, sizeof s->dir, "%s", s->base.output.dir);
    s->fresh_units = s->o->overwrite;
    for (int i = 0; i < s->base.n_entries; i++) {
        const tr_config_entry *e = &s->base.entries[i];
        if (!strcmp(e->section, "output") && !strcmp(e->key, "checkpoint_every"))
            s->checkpoint_at_ends = !strcmp(e->origin, "default");
    }
    if (s->world->size % st->ranks_per_trial != 0)
        return tr_fail(err, TR_EUSAGE, "--ranks-per-trial %lld does not divide the %d ranks into groups",
                       (long long)st->ranks_per_trial, s->world->size);
    if (st->asha && s->folds > 1)
        return tr_fail(err, TR_EUSAGE, "successive halving (search.asha) and cross-validation (--folds) together "
                                       "are not supported: search with a validation split, then cross-validate the "
                                       "best trial with --folds and a one-point space");
    if (s->base.data.folds > 0)
        return tr_fail(err, TR_ECONFIG, "%s: [data] folds is set; a search's folds are --folds K (search.folds)",
                       s->o->config);
    rc = tr_dist_agree(s->world, check_trials(s, err));
    if (!rc)
        rc = load_data(s, err); /* collective and agreed inside */
    if (!rc)
        rc = tr_dist_agree(s->world, choose_metric(s, err));
    if (!rc) /* last of the checks: --overwrite deletes nothing of a search that would be refused */
        rc = tr_dist_agree(s->world, s->world->rank == 0 ? claim_search_dir(s, err) : 0);
    if (!rc && s->folds > 1)
        rc = tr_dist_agree(s->world, s->world->rank == 0 ? tr_rundir_write_folds(&s->rd, &s->data[0], err) : 0);
    if (!rc) {
        const int color = s->world->rank / (int)st->ranks_per_trial;
        rc = tr_dist_agree(s->world, tr_dist_split(s->world, color, &s->group, err));
    }
    if (rc)
        return rc;
    char state[TR_PATH_MAX + 64];
    snprintf(state, sizeof state, "%s/" STATE_FILE, s->dir);
    tr_queue_plan plan = {.trials = s->trials, .folds = s->folds, .higher_better = s->higher_better,
                          .asha = st->asha, .eta = st->eta, .state_path = state, .resume = s->o->resume,
                          .stop = s->o->stop, .out = s->o->out, .metric = s->metric,
                          .fingerprint = fingerprint(s), .alive_s = 3.0 * s->base.train.watchdog};
    print_start(s);
    return tr_queue_open(&s->q, s->world, (int)st->ranks_per_trial, &plan, err);
}

static void tear_down(search *s)
{
    tr_queue_close(s->q);
    for (int i = 0; i < s->n_data; i++)
        tr_data_free(&s->data[i]); /* collective over the node */
    free(s->data);
    free(s->epochs);
    tr_dist_free(&s->group);
    tr_rundir_close(&s->rd);
    tr_config_free(&s->base);
    tr_space_free(&s->space);
}

int tr_search(const tr_search_options *o, tr_dist *world, tr_err *err)
{
    const double t0 = tr_seconds();
    search s = {.o = o, .world = world, .rd = {.lock_fd = -1}};
    int rc = set_up(&s, err);
    /* the first stop or failure of this rank's group ends its part; it asks on and is told
     * that nothing is left, so every group reaches the end */
    int ended = 0;
    tr_err ended_err = {0};
    while (!rc) {
        int64_t unit;
        int32_t rungs_done;
        rc = tr_queue_next(s.q, &s.group, &unit, &rungs_done, err);
        if (rc || unit < 0)
            break;
        const int r = run_unit(&s, unit, rungs_done, err);
        if (r && !ended) {
            ended = r;
            ended_err = *err;
        }
        if (r == TR_EMPI || r == TR_EWATCHDOG)
            rc = r; /* the group cannot ask on */
    }
    if (!rc && s.q) {
        rc = tr_queue_finish(s.q, err);
        if (rc == TR_ESTOPPED) { /* stopped before every unit ended (perhaps before any began) */
            rc = 0;
            if (!ended)
                ended = TR_ESTOPPED;
        }
    }
    if (!rc && world->rank == 0) {
        const tr_search_summary sum = {.dir = s.dir, .config = o->config, .space_path = o->space, .space = &s.space,
                                       .units = tr_queue_units(s.q), .trials = s.trials, .folds = s.folds,
                                       .epochs = s.epochs, .metric = s.metric, .higher_better = s.higher_better,
                                       .groups = world->size / (int)s.space.set.ranks_per_trial,
                                       .ranks_per_group = (int)s.space.set.ranks_per_trial,
                                       .seconds = tr_seconds() - t0};
        rc = tr_search_report(&sum, err);
        if (!rc && o->out)
            fprintf(o->out, "search %s in %.2f s; reports in %s (report.md, trials.csv, trials.h5)\n",
                    ended ? "stopped" : "finished", tr_seconds() - t0, s.dir);
    }
    tear_down(&s);
    if (!rc && ended == TR_ESTOPPED) {
        rc = tr_fail(err, TR_ESTOPPED, "the search stopped on a signal: the running trials wrote their checkpoints; "
                                       "continue with trainer search %s %s --resume (and the same options)",
                     o->config, o->space);
    } else if (!rc && ended) {
        *err = ended_err;
        rc = ended;
    }
    return rc; /* this rank's own: the caller agrees and prints the failing ranks' messages */
}
