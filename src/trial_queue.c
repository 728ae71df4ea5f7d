/*
 * trial_queue.c: the search's unit table on world rank 0 and the messages groups send it
 * (trial_queue.h). World rank 0 handles its own group's requests by the same code, directly.
 */
#define _GNU_SOURCE
#include "trainer/trial_queue.h"

#include "trainer/clock.h"
#include "trainer/files.h"
#include "trainer/watchdog.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const char *const tr_unit_status_names[] = {TR_UNIT_STATUS_MAP(TR_ENUM_NAME) NULL};
#define RESULT_NAME(name) name,
const char *const tr_result_metric_names[] = {TR_RESULT_METRICS(RESULT_NAME) NULL};
#undef RESULT_NAME

enum { TAG_ASK = 7301, TAG_ANSWER = 7302 };
enum { ASK_NEXT, ASK_RUNG, ASK_DONE, ASK_ALIVE, ASK_BYE };

typedef struct ask {
    int32_t kind, rung;
    int64_t unit;
    double value;
    tr_unit result;
} ask;

typedef struct answer {
    int64_t unit;
    int32_t rungs_done, decision;
} answer;

typedef struct waiting_decision {
    int64_t unit;
    int32_t rung, asker; /* world rank */
} waiting_decision;

struct tr_trial_queue {
    tr_dist *world;
    int group_size, n_groups;
    bool server;
    bool leader;             /* this rank asks for its group (world rank % group_size == 0) */
    double last_beat;        /* a leader's last sign of life to world rank 0 */
    tr_queue_plan plan;
    /* world rank 0 */
    int64_t n_units;
    tr_unit *units;
    waiting_decision *waiting;
    int64_t n_waiting;
    int groups_told_none;
    bool *said_bye;          /* (n_groups) which groups' rank 0 took the end of the search (tr_queue_finish) */
    int64_t finished;        /* units that ended (for the progress lines) */
    bool closing;            /* a signal or an interrupted unit: nothing more is handed out */
    answer self;             /* an answer to world rank 0 itself */
    bool self_answered;
    char state_path[TR_PATH_MAX + 64];
    double *heard;           /* (n_groups) when each group's rank 0 was last heard from */
    int error;               /* the first failure to save the table */
    tr_err save_err;
};

/* ------------------------------------------------------------------ ASHA's rule ------- */

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

bool tr_asha_passes(const double *earlier, int64_t n, double value, bool higher_better, int64_t eta)
{
    if (isnan(value))
        return false;
    double *s = malloc((size_t)(n + 1) * sizeof *s);
    int64_t m = 0;
    for (int64_t i = 0; s && i < n; i++)
        if (!isnan(earlier[i]))
            s[m++] = higher_better ? earlier[i] : -earlier[i];
    if (!s || m == 0) {
        free(s);
        return true;
    }
    qsort(s, (size_t)m, sizeof *s, cmp_double);
    /* numpy's percentile with linear interpolation, at (1 - 1/eta) x 100 */
    const double pos = (1.0 - 1.0 / (double)eta) * (double)(m - 1);
    const int64_t lo = (int64_t)floor(pos);
    const int64_t hi = lo + 1 < m ? lo + 1 : lo;
    const double cutoff = s[lo] + (pos - (double)lo) * (s[hi] - s[lo]);
    free(s);
    return (higher_better ? value : -value) >= cutoff;
}

/* ------------------------------------------------------------------ the table file ---- */

static bool ended(const tr_unit *u)
{
    return u->status == TR_UNIT_DONE || u->status == TR_UNIT_PRUNED || u->status == TR_UNIT_FAILED;
}

/* One line per unit: number, status, rungs, epochs, seconds, score, exit code, group, the
 * metrics, the rung values, then a tab and a failure's message. Written whole (synced), then
 * renamed over the last. */
static int save_table(tr_trial_queue *q, tr_err *err)
{
    tr_atomic a;
    int rc = tr_atomic_begin(&a, q->state_path, true, TR_EIO, err);
    if (rc)
        return rc;
    FILE *f = a.f;
    fprintf(f, "# trainer search state 1: unit status rungs epochs seconds score exit_code group %d metrics, rung "
               "values, tab, message\nunits %lld folds %lld search %08llx\n",
            TR_RESULT_COUNT, (long long)q->n_units, (long long)q->plan.folds, (unsigned long long)q->plan.fingerprint);
    for (int64_t i = 0; i < q->n_units; i++) {
        const tr_unit *u = &q->units[i];
        fprintf(f, "%lld %s %d %lld %.17g %.17g %d %d", (long long)i, tr_name_of(tr_unit_status_names, u->status),
                u->rungs, (long long)u->epochs, u->seconds, u->score, u->exit_code, u->group);
        for (int m = 0; m < TR_RESULT_COUNT; m++)
            fprintf(f, " %.17g", u->metrics[m]);
        for (int k = 0; k < u->rungs; k++)
            fprintf(f, " %.17g", u->rung_value[k]);
        fprintf(f, "\t%s\n", u->message);
    }
    return tr_atomic_commit(&a, TR_EIO, err);
}

static void save_or_remember(tr_trial_queue *q)
{
    if (!q->error)
        q->error = save_table(q, &q->save_err);
}

static int load_table(tr_trial_queue *q, tr_err *err)
{
    FILE *f = fopen(q->state_path, "r");
    if (!f)
        return tr_fail(err, TR_EUSAGE, "--resume: cannot read %s: %s (is this a search directory?)", q->state_path,
                       strerror(errno));
    char line[8192];
    long long units = -1, folds = -1;
    unsigned long long fingerprint = 0;
    int rc = 0, n = 0;
    while (!rc && fgets(line, sizeof line, f)) {
        n++;
        if (line[0] == '#')
            continue;
        if (units < 0) {
            if (sscanf(line, "units %lld folds %lld search %llx", &units, &folds, &fingerprint) != 3)
                rc = tr_fail(err, TR_EUSAGE, "%s:%d: not a search state file", q->state_path, n);
            else if (units != q->n_units || folds != q->plan.folds || fingerprint != q->plan.fingerprint)
                rc = tr_fail(err, TR_EUSAGE, "--resume: %s holds another search (%lld units, %lld folds, fingerprint "
                                             "%08llx; this one: %lld, %lld, %08llx): the configuration, the space, "
                                             "--folds, --set or the settings changed; resume with the same ones",
                             q->state_path, units, folds, fingerprint, (long long)q->n_units, (long long)q->plan.folds,
                             (unsigned long long)q->plan.fingerprint);
            continue;
        }
        char *tab = strchr(line, '\t');
        if (tab) {
            *tab++ = '\0';
            tab[strcspn(tab, "\n")] = '\0';
        }
        char *save = NULL, *tok = strtok_r(line, " \n", &save);
        long long i = tok ? strtoll(tok, NULL, 10) : -1;
        bool ok = i >= 0 && i < q->n_units;
        tr_unit u = {0};
        char *status = ok ? strtok_r(NULL, " \n", &save) : NULL;
        ok = ok && status && (u.status = tr_name_index(tr_unit_status_names, status)) >= 0;
        double num[8 + TR_RESULT_COUNT + TR_MAX_RUNGS];
        int got = 0;
        for (char *t; ok && got < (int)(sizeof num / sizeof *num) && (t = strtok_r(NULL, " \n", &save));)
            num[got++] = strtod(t, NULL);
        ok = ok && got >= 6 + TR_RESULT_COUNT;
        if (ok) {
            u.rungs = (int32_t)num[0];
            u.epochs = (int64_t)num[1];
            u.seconds = num[2];
            u.score = num[3];
            u.exit_code = (int32_t)num[4];
            u.group = (int32_t)num[5];
            memcpy(u.metrics, num + 6, sizeof u.metrics);
            ok = u.rungs >= 0 && u.rungs <= TR_MAX_RUNGS && got == 6 + TR_RESULT_COUNT + u.rungs;
            if (ok)
                memcpy(u.rung_value, num + 6 + TR_RESULT_COUNT, (size_t)u.rungs * sizeof(double));
            snprintf(u.message, sizeof u.message, "%s", tab ? tab : "");
        }
        if (!ok) {
            rc = tr_fail(err, TR_EUSAGE, "%s:%d: not a unit's line of a search state file", q->state_path, n);
            break;
        }
        if (!ended(&u)) /* it runs again, from its checkpoint; its rungs stay recorded */
            u.status = TR_UNIT_PENDING;
        q->units[i] = u;
    }
    fclose(f);
    if (!rc && units < 0)
        rc = tr_fail(err, TR_EUSAGE, "%s: not a search state file", q->state_path);
    return rc;
}

/* ------------------------------------------------------------------ world rank 0 ------ */

static void reply(tr_trial_queue *q, int to, answer a)
{
    if (to == 0) {
        q->self = a;
        q->self_answered = true;
        return;
    }
    tr_err ignore;
    tr_dist_send(q->world, to, TAG_ANSWER, &a, sizeof a, &ignore); /* a lost rank: mpirun's to report */
}

/* Answers the rung decisions whose lower units have all recorded that rung or ended. */
static void decide_waiting(tr_trial_queue *q)
{
    for (int64_t w = 0; w < q->n_waiting;) {
        const waiting_decision d = q->waiting[w];
        int decision = -1;
        if (!q->closing) {
            bool ready = true;
            for (int64_t j = 0; j < d.unit && ready; j++)
                ready = q->units[j].rungs > d.rung || ended(&q->units[j]);
            if (!ready) {
                w++;
                continue;
            }
            double *earlier = malloc((size_t)(d.unit + 1) * sizeof *earlier);
            int64_t n = 0;
            for (int64_t j = 0; earlier && j < d.unit; j++)
                if (q->units[j].rungs > d.rung)
                    earlier[n++] = q->units[j].rung_value[d.rung];
            decision = tr_asha_passes(earlier, n, q->units[d.unit].rung_value[d.rung], q->plan.higher_better,
                                      q->plan.eta);
            free(earlier);
        }
        reply(q, d.asker, (answer){.unit = d.unit, .decision = decision});
        q->waiting[w] = q->waiting[--q->n_waiting];
    }
}

static void print_done(tr_trial_queue *q, int64_t i)
{
    const tr_unit *u = &q->units[i];
    FILE *out = q->plan.out;
    if (!out)
        return;
    char name[64];
    if (q->plan.folds > 1)
        snprintf(name, sizeof name, "trial %lld fold %lld", (long long)(i / q->plan.folds),
                 (long long)(i % q->plan.folds));
    else
        snprintf(name, sizeof name, "trial %lld", (long long)i);
    fprintf(out, "[%lld/%lld] %s: %s after %lld epoch%s, %s %.4f (%.2f s, group %d)%s%s\n", (long long)q->finished,
            (long long)q->n_units, name, tr_name_of(tr_unit_status_names, u->status), (long long)u->epochs,
            u->epochs == 1 ? "" : "s", q->plan.metric, u->score, u->seconds, u->group, u->message[0] ? ": " : "",
            u->message);
    fflush(out);
}

static void handle(tr_trial_queue *q, const ask *m, int from)
{
    q->heard[from / q->group_size] = tr_seconds();
    if (m->kind == ASK_ALIVE)
        return;
    if (m->kind == ASK_BYE) {
        q->said_bye[from / q->group_size] = true;
        return;
    }
    if (m->kind == ASK_NEXT) {
        int64_t next = -1;
        for (int64_t i = 0; !q->closing && i < q->n_units && next < 0; i++)
            if (q->units[i].status == TR_UNIT_PENDING)
                next = i;
        if (next < 0) {
            q->groups_told_none++;
            reply(q, from, (answer){.unit = -1});
            return;
        }
        q->units[next].status = TR_UNIT_RUNNING;
        q->units[next].group = from / q->group_size;
        reply(q, from, (answer){.unit = next, .rungs_done = q->units[next].rungs});
        return;
    }
    if (m->unit < 0 || m->unit >= q->n_units)
        return;
    tr_unit *u = &q->units[m->unit];
    if (m->kind == ASK_RUNG) {
        if (m->rung == u->rungs && m->rung < TR_MAX_RUNGS) {
            u->rung_value[u->rungs++] = m->value;
            save_or_remember(q);
        }
        q->waiting[q->n_waiting++] = (waiting_decision){.unit = m->unit, .rung = m->rung, .asker = from};
    } else { /* ASK_DONE */
        const int32_t rungs = u->rungs;
        double rung_value[TR_MAX_RUNGS];
        memcpy(rung_value, u->rung_value, sizeof rung_value);
        *u = m->result;
        u->rungs = rungs; /* the table's record of them, not the group's */
        memcpy(u->rung_value, rung_value, sizeof rung_value);
        u->group = from / q->group_size;
        if (u->status == TR_UNIT_INTERRUPTED)
            q->closing = true;
        else
            q->finished++;
        save_or_remember(q);
        if (u->status != TR_UNIT_INTERRUPTED)
            print_done(q, m->unit);
    }
    decide_waiting(q);
}

/* World rank 0: a group that trains a unit and has not been heard from for the deadline has
 * a rank that stopped answering (stopped, hung, or on a lost node) where no watchdog of its
 * group sees it (a group of one rank waits on nobody). The search ends as the watchdog ends a
 * run: the rank named, status 8; search.state already holds every ended unit. */
static void check_alive(tr_trial_queue *q)
{
    const double now = tr_seconds();
    for (int64_t i = 0; i < q->n_units; i++) {
        const tr_unit *u = &q->units[i];
        if (u->status != TR_UNIT_RUNNING || u->group == 0 || now - q->heard[u->group] <= q->plan.alive_s)
            continue;
        bool asked = false; /* waiting for a decision is waiting on this rank, not silence */
        for (int64_t w = 0; w < q->n_waiting && !asked; w++)
            asked = q->waiting[w].unit == i;
        if (asked)
            continue;
        char who[96], msg[640];
        const int first = u->group * q->group_size;
        if (q->group_size == 1)
            snprintf(who, sizeof who, "rank %d (a group of its own", first);
        else
            snprintf(who, sizeof who, "group %d (ranks %d-%d: one of them stopped answering", u->group, first,
                     first + q->group_size - 1);
        snprintf(msg, sizeof msg, "trainer: error: watchdog: %s, training unit %lld of the search) sent no sign of "
                                  "life for %.0f s (deadline %.0f s: 3 x [train] watchdog): stopped, hung or on a "
                                  "lost node; ending the search with status 8 (%.200s keeps every ended unit: "
                                  "continue with --resume)\n",
                 who, (long long)i, now - q->heard[u->group], q->plan.alive_s, q->state_path);
        tr_watchdog_exit(q->world->rank, msg); /* status 8: the launcher ends the other ranks */
    }
}

static int tell(tr_trial_queue *q, const ask *m, tr_err *err); /* a group's side, below */

/* A group's rank 0: whether its next sign of life to world rank 0 is due. */
static bool beat_due(const tr_trial_queue *q)
{
    return q->plan.alive_s > 0.0 && tr_seconds() - q->last_beat > q->plan.alive_s / 8.0;
}

void tr_queue_serve(tr_trial_queue *q)
{
    if (!q)
        return;
    if (!q->server) { /* a group's rank 0: a sign of life now and then */
        if (q->leader && beat_due(q)) {
            tr_err ignore;
            tell(q, &(ask){.kind = ASK_ALIVE}, &ignore); /* an MPI failure shows in the group's next exchange */
        }
        return;
    }
    if (!q->closing && q->plan.stop && *q->plan.stop)
        q->closing = true;
    int from;
    while (tr_dist_probe(q->world, TAG_ASK, &from)) {
        ask m;
        tr_err ignore;
        if (tr_dist_recv(q->world, from, TAG_ASK, &m, sizeof m, NULL, &ignore))
            return;
        handle(q, &m, from);
    }
    if (q->closing)
        decide_waiting(q); /* each waiting group is told the search stops */
    if (q->plan.alive_s > 0.0)
        check_alive(q);
}

/* World rank 0 waits for its own answer, answering the others meanwhile. */
static answer wait_self(tr_trial_queue *q)
{
    while (!q->self_answered) {
        tr_queue_serve(q);
        if (!q->self_answered)
            nanosleep(&(struct timespec){.tv_nsec = 100000}, NULL);
    }
    q->self_answered = false;
    return q->self;
}

/* ------------------------------------------------------------------ a group's side ---- */

/* World rank 0 took no request of this group's rank 0 for the deadline: it stopped answering
 * (stopped, hung, or on a lost node), and the groups would wait for it forever. The search
 * ends as the watchdog ends a run; search.state holds every ended unit. */
static void server_silent(const tr_trial_queue *q)
{
    char msg[512];
    snprintf(msg, sizeof msg,
             "trainer: error: watchdog: world rank 0 (it keeps the search's unit table) took no message from rank "
             "%d for %.0f s (deadline: 3 x [train] watchdog): stopped, hung or on a lost node; ending the search "
             "with status 8 (search.state keeps every ended unit: continue with --resume)\n",
             q->world->rank, q->plan.alive_s);
    tr_watchdog_exit(q->world->rank, msg);
}

/* A group's rank 0 sends world rank 0 a request and returns when world rank 0 took it. World
 * rank 0 takes requests between its own steps and while it waits, so a request that stays
 * untaken for the deadline (3 x [train] watchdog; none when it is 0) means it stopped. Every
 * request is taken before the next is sent: none is left in flight at the end. */
static int tell(tr_trial_queue *q, const ask *m, tr_err *err)
{
    bool taken = false;
    const int rc = tr_dist_send_taken(q->world, 0, TAG_ASK, m, sizeof *m, q->plan.alive_s, &taken, err);
    if (!rc && !taken)
        server_silent(q);
    q->last_beat = tr_seconds();
    return rc;
}

/* A group's rank 0 waits for world rank 0's answer, which may rightly take as long as another
 * group's epochs (a rung decision waits for the lower units); meanwhile it sends a sign of life
 * now and then, which world rank 0 must take within the deadline. */
static int wait_answer(tr_trial_queue *q, answer *a, tr_err *err)
{
    int from, rc = 0;
    while (!rc && !tr_dist_probe(q->world, TAG_ANSWER, &from)) {
        if (beat_due(q))
            rc = tell(q, &(ask){.kind = ASK_ALIVE}, err);
        else
            nanosleep(&(struct timespec){.tv_nsec = 200000}, NULL);
    }
    return rc ? rc : tr_dist_recv(q->world, 0, TAG_ANSWER, a, sizeof *a, NULL, err);
}

/* The group's rank 0 asks; every rank of the group gets the answer. */
static int ask_and_share(tr_trial_queue *q, tr_dist *group, const ask *m, answer *a, tr_err *err)
{
    int rc = 0;
    if (group->rank == 0) {
        if (q->server) {
            handle(q, m, 0);
            if (m->kind != ASK_DONE)
                *a = wait_self(q);
        } else {
            rc = tell(q, m, err);
            if (!rc && m->kind != ASK_DONE)
                rc = wait_answer(q, a, err);
        }
    }
    if (m->kind == ASK_DONE)
        return tr_dist_agree(group, rc);
    rc = tr_dist_agree(group, rc);
    if (!rc)
        rc = tr_dist_bcast(group, a, sizeof *a, 0, err);
    return rc;
}

int tr_queue_next(tr_trial_queue *q, tr_dist *group, int64_t *unit, int32_t *rungs_done, tr_err *err)
{
    answer a = {.unit = -1};
    const int rc = ask_and_share(q, group, &(ask){.kind = ASK_NEXT}, &a, err);
    *unit = a.unit;
    *rungs_done = a.rungs_done;
    return rc;
}

int tr_queue_rung(tr_trial_queue *q, tr_dist *group, int64_t unit, int32_t rung, double value, int *decision,
                  tr_err *err)
{
    answer a = {.decision = -1};
    const int rc = ask_and_share(q, group, &(ask){.kind = ASK_RUNG, .unit = unit, .rung = rung, .value = value}, &a,
                                 err);
    *decision = a.decision;
    return rc;
}

int tr_queue_done(tr_trial_queue *q, tr_dist *group, int64_t unit, const tr_unit *result, tr_err *err)
{
    static ask m; /* large: not on the stack */
    m = (ask){.kind = ASK_DONE, .unit = unit, .result = *result};
    answer none;
    int rc = ask_and_share(q, group, &m, &none, err);
    if (!rc && q->server && group->rank == 0 && q->error)
        rc = tr_fail(err, q->error, "%s", q->save_err.msg);
    return rc;
}

/* World rank 0: a group's rank 0 that does not take the end of the search within the deadline. */
static void leader_silent(const tr_trial_queue *q, double waited)
{
    char msg[512];
    int n = snprintf(msg, sizeof msg, "trainer: error: watchdog: the end of the search was not taken for %.0f s "
                                      "(deadline: 3 x [train] watchdog) by rank",
                     waited);
    for (int g = 1, named = 0; g < q->n_groups && n < (int)sizeof msg - 96; g++)
        if (!q->said_bye[g])
            n += snprintf(msg + n, sizeof msg - (size_t)n, "%s %d", named++ ? "," : "", g * q->group_size);
    snprintf(msg + n, sizeof msg - (size_t)n, " (stopped, hung or on a lost node); every unit has ended: "
                                              "ending with status 8\n");
    tr_watchdog_exit(q->world->rank, msg);
}

static bool all_said_bye(const tr_trial_queue *q)
{
    for (int g = 1; g < q->n_groups; g++)
        if (!q->said_bye[g])
            return false;
    return true;
}

int tr_queue_finish(tr_trial_queue *q, tr_err *err)
{
    int rc = 0;
    if (q->server) {
        while (q->groups_told_none < q->n_groups) {
            tr_queue_serve(q);
            nanosleep(&(struct timespec){.tv_nsec = 100000}, NULL);
        }
        /* each group's rank 0 waits for the end (watching world rank 0 meanwhile), takes it and
         * says goodbye, its last message: after every goodbye nothing is left in flight */
        for (int g = 1; g < q->n_groups; g++)
            reply(q, g * q->group_size, (answer){.unit = -1});
        const double since = tr_seconds();
        while (!all_said_bye(q)) {
            tr_queue_serve(q);
            if (q->plan.alive_s > 0.0 && tr_seconds() - since > q->plan.alive_s)
                leader_silent(q, tr_seconds() - since);
            nanosleep(&(struct timespec){.tv_nsec = 100000}, NULL);
        }
    } else if (q->leader) {
        answer end;
        rc = wait_answer(q, &end, err);
        if (!rc)
            rc = tell(q, &(ask){.kind = ASK_BYE}, err);
    }
    if (!rc && q->server && q->error)
        rc = tr_fail(err, q->error, "%s", q->save_err.msg);
    bool unfinished = false;
    for (int64_t i = 0; q->server && i < q->n_units; i++)
        unfinished |= !ended(&q->units[i]);
    if (!rc && q->server && q->closing && unfinished)
        rc = TR_ESTOPPED;
    return tr_dist_agree(q->world, rc);
}

const tr_unit *tr_queue_units(const tr_trial_queue *q)
{
    return q->server ? q->units : NULL;
}

int tr_queue_open(tr_trial_queue **qp, tr_dist *world, int group_size, const tr_queue_plan *plan, tr_err *err)
{
    tr_trial_queue *q = calloc(1, sizeof *q);
    *qp = q;
    int rc = q ? 0 : tr_fail(err, TR_ENOMEM, "out of memory");
    if (!rc) {
        q->world = world;
        q->group_size = group_size;
        q->n_groups = world->size / group_size;
        q->server = world->rank == 0;
        q->leader = world->rank % group_size == 0;
        q->last_beat = tr_seconds();
        q->plan = *plan;
        q->n_units = plan->trials * plan->folds;
    }
    if (!rc && q->server) {
        snprintf(q->state_path, sizeof q->state_path, "%s", plan->state_path);
        q->units = calloc((size_t)q->n_units, sizeof *q->units);
        q->waiting = calloc((size_t)q->n_units, sizeof *q->waiting);
        q->heard = calloc((size_t)q->n_groups, sizeof *q->heard);
        q->said_bye = calloc((size_t)q->n_groups, sizeof *q->said_bye);
        if (!q->units || !q->waiting || !q->heard || !q->said_bye)
            rc = tr_fail(err, TR_ENOMEM, "out of memory");
        for (int64_t i = 0; !rc && i < q->n_units; i++) {
            q->units[i].score = NAN;
            for (int m = 0; m < TR_RESULT_COUNT; m++)
                q->units[i].metrics[m] = NAN;
        }
        if (!rc && plan->resume)
            rc = load_table(q, err);
        if (!rc)
            rc = save_table(q, err);
        for (int64_t i = 0; !rc && i < q->n_units; i++)
            q->finished += ended(&q->units[i]);
    }
    return tr_dist_agree(world, rc);
}

void tr_queue_close(tr_trial_queue *q)
{
    if (!q)
        return;
    free(q->units);
    free(q->waiting);
    free(q->heard);
    free(q->said_bye);
    free(q);
}
