/*
 * search_report.c: trials.csv, trials.h5 and report.md of a search (search_report.h).
 */
#include "trainer/search_report.h"

#include "trainer/files.h"
#include "trainer/h5io.h"

#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { VALUE_LEN = 256, BEST_SHOWN = 10 };

/* A trial over its folds: mean and standard deviation (population, as scikit-learn's
 * cross_val_score reports are usually summarised with numpy's std) of each number. */
typedef struct trial_row {
    int64_t trial;
    int status;  /* the units': failed, else interrupted or unfinished, else stopped, else done */
    int64_t rungs, epochs;
    double seconds;
    double score, score_std;
    double metric[TR_RESULT_COUNT], metric_std[TR_RESULT_COUNT];
    const char *message;
} trial_row;

/* Unit u's value of reported metric k, or of the search's metric (k < 0). */
static double unit_value(const tr_unit *u, int k)
{
    return k < 0 ? u->score : u->metrics[k];
}

/* Mean and standard deviation (ddof 0) of a value over a trial's n fold units. */
static void fold_stats(const tr_unit *u, int64_t n, int k, double *mean, double *sd)
{
    double s = 0.0, q = 0.0;
    for (int64_t f = 0; f < n; f++)
        s += unit_value(&u[f], k);
    *mean = s / (double)n;
    for (int64_t f = 0; f < n; f++)
        q += (unit_value(&u[f], k) - *mean) * (unit_value(&u[f], k) - *mean);
    *sd = n > 1 ? sqrt(q / (double)n) : 0.0;
}

static int status_rank(int status)
{
    static const int order[] = {[TR_UNIT_FAILED] = 5, [TR_UNIT_INTERRUPTED] = 4, [TR_UNIT_RUNNING] = 3,
                                [TR_UNIT_PENDING] = 3, [TR_UNIT_PRUNED] = 2, [TR_UNIT_DONE] = 1};
    return order[status];
}

static void summarise(const tr_search_summary *s, int64_t t, trial_row *r)
{
    const tr_unit *u = s->units + t * s->folds;
    memset(r, 0, sizeof *r);
    r->trial = t;
    r->status = u[0].status;
    r->message = "";
    for (int64_t f = 0; f < s->folds; f++) {
        if (status_rank(u[f].status) > status_rank(r->status))
            r->status = u[f].status;
        if (u[f].message[0] && !r->message[0])
            r->message = u[f].message;
        r->rungs = u[f].rungs > r->rungs ? u[f].rungs : r->rungs;
        r->epochs += u[f].epochs;
        r->seconds += u[f].seconds;
    }
    fold_stats(u, s->folds, -1, &r->score, &r->score_std);
    for (int k = 0; k < TR_RESULT_COUNT; k++)
        fold_stats(u, s->folds, k, &r->metric[k], &r->metric_std[k]);
}

/* The order of the best: the metric's better end first, trials without a value last. */
static bool higher_better_sort;
static int by_score(const void *a, const void *b)
{
    const trial_row *x = a, *y = b;
    const bool nx = isnan(x->score), ny = isnan(y->score);
    if (nx || ny)
        return nx - ny ? (nx ? 1 : -1) : (x->trial > y->trial) - (x->trial < y->trial);
    if (x->score != y->score)
        return (x->score < y->score) == higher_better_sort ? 1 : -1;
    return (x->trial > y->trial) - (x->trial < y->trial);
}

/* ------------------------------------------------------------------ the files --------- */

static void csv_field(FILE *f, const char *v)
{
    if (strpbrk(v, ",\"\n")) {
        fputc('"', f);
        for (const char *p = v; *p; p++) {
            if (*p == '"')
                fputc('"', f);
            fputc(*p, f);
        }
        fputc('"', f);
    } else {
        fputs(v, f);
    }
}

static void csv_number(FILE *f, double v)
{
    if (isnan(v))
        fputs(",", f);
    else
        fprintf(f, ",%.17g", v);
}

static int write_csv(const tr_search_summary *s, const trial_row *rows, FILE *f)
{
    fputs("trial,status,rungs,epochs,seconds", f);
    for (int d = 0; d < s->space->n_dims; d++) {
        fputc(',', f);
        csv_field(f, s->space->dims[d].key);
    }
    fprintf(f, ",%s", s->metric);
    if (s->folds > 1)
        fprintf(f, ",%s_std", s->metric);
    for (int k = 0; k < TR_RESULT_COUNT; k++) {
        fprintf(f, ",%s", tr_result_metric_names[k]);
        if (s->folds > 1)
            fprintf(f, ",%s_std", tr_result_metric_names[k]);
    }
    fputc('\n', f);
    for (int64_t t = 0; t < s->trials; t++) {
        const trial_row *r = &rows[t];
        fprintf(f, "%lld,%s,%lld,%lld,%.6f", (long long)t, tr_name_of(tr_unit_status_names, r->status),
                (long long)r->rungs, (long long)r->epochs, r->seconds);
        for (int d = 0; d < s->space->n_dims; d++) {
            char v[VALUE_LEN];
            tr_space_value(s->space, t, d, v, sizeof v);
            fputc(',', f);
            csv_field(f, v);
        }
        csv_number(f, r->score);
        if (s->folds > 1)
            csv_number(f, r->score_std);
        for (int k = 0; k < TR_RESULT_COUNT; k++) {
            csv_number(f, r->metric[k]);
            if (s->folds > 1)
                csv_number(f, r->metric_std[k]);
        }
        fputc('\n', f);
    }
    return 0;
}

static int write_h5(const tr_search_summary *s, const trial_row *rows, const char *tmp, const char *path, tr_err *err)
{
    tr_h5_quiet();
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0)
        return tr_fail(err, TR_EIO, "%s: cannot create", tmp);
    const int64_t T = s->trials, U = s->trials * s->folds;
    int64_t *i64 = calloc((size_t)U + 1, sizeof *i64);
    double *f64 = calloc((size_t)(U * (TR_MAX_RUNGS + TR_RESULT_COUNT)) + 1, sizeof *f64);
    const char **str = calloc((size_t)U + 1, sizeof *str);
    char *values = calloc((size_t)T + 1, VALUE_LEN);
    int rc = i64 && f64 && str && values ? 0 : tr_fail(err, TR_ENOMEM, "out of memory");
#define COLUMN_I64(name, expr)                                                                       \
    for (int64_t t = 0; !rc && t < T; t++)                                                           \
        i64[t] = (expr);                                                                             \
    if (!rc)                                                                                         \
        rc = tr_h5_write_i64(f, path, name, i64, T, err);
#define COLUMN_F64(name, expr)                                                                       \
    for (int64_t t = 0; !rc && t < T; t++)                                                           \
        f64[t] = (expr);                                                                             \
    if (!rc)                                                                                         \
        rc = tr_h5_write_f64(f, path, name, f64, T, 0, err);
    COLUMN_I64("/trial", t)
    COLUMN_I64("/rungs", rows[t].rungs)
    COLUMN_I64("/epochs", rows[t].epochs)
    COLUMN_F64("/seconds", rows[t].seconds)
    COLUMN_F64("/score", rows[t].score)
    if (s->folds > 1) {
        COLUMN_F64("/score_std", rows[t].score_std)
    }
    for (int k = 0; k < TR_RESULT_COUNT; k++) {
        char name[96];
        snprintf(name, sizeof name, "/metrics/%s", tr_result_metric_names[k]);
        COLUMN_F64(name, rows[t].metric[k])
        if (s->folds > 1) {
            snprintf(name, sizeof name, "/metrics_std/%s", tr_result_metric_names[k]);
            COLUMN_F64(name, rows[t].metric_std[k])
        }
    }
    for (int64_t t = 0; !rc && t < T; t++)
        str[t] = tr_name_of(tr_unit_status_names, rows[t].status);
    if (!rc)
        rc = tr_h5_write_strings(f, path, "/status", str, T, err);
    for (int d = 0; !rc && d < s->space->n_dims; d++) {
        for (int64_t t = 0; t < T; t++) {
            tr_space_value(s->space, t, d, values + t * VALUE_LEN, VALUE_LEN);
            str[t] = values + t * VALUE_LEN;
        }
        char name[160];
        snprintf(name, sizeof name, "/values/%s", s->space->dims[d].key);
        rc = tr_h5_write_strings(f, path, name, str, T, err);
    }
    /* every unit (trial x fold), in unit order */
    for (int64_t u = 0; !rc && u < U; u++)
        str[u] = tr_name_of(tr_unit_status_names, s->units[u].status);
    if (!rc)
        rc = tr_h5_write_strings(f, path, "/units/status", str, U, err);
    for (int64_t u = 0; !rc && u < U; u++)
        i64[u] = s->units[u].epochs;
    if (!rc)
        rc = tr_h5_write_i64(f, path, "/units/epochs", i64, U, err);
    for (int64_t u = 0; !rc && u < U; u++)
        f64[u] = s->units[u].score;
    if (!rc)
        rc = tr_h5_write_f64(f, path, "/units/score", f64, U, 0, err);
    for (int64_t u = 0; !rc && u < U; u++)
        memcpy(f64 + u * TR_RESULT_COUNT, s->units[u].metrics, sizeof s->units[u].metrics);
    if (!rc)
        rc = tr_h5_write_f64(f, path, "/units/metrics", f64, U, TR_RESULT_COUNT, err);
    for (int64_t u = 0; !rc && u < U; u++)
        for (int k = 0; k < TR_MAX_RUNGS; k++)
            f64[u * TR_MAX_RUNGS + k] = k < s->units[u].rungs ? s->units[u].rung_value[k] : NAN;
    if (!rc)
        rc = tr_h5_write_f64(f, path, "/units/rung_values", f64, U, TR_MAX_RUNGS, err);
    char names[512] = "";
    for (int k = 0; k < TR_RESULT_COUNT; k++)
        snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", k ? "," : "",
                 tr_result_metric_names[k]);
    if (!rc)
        rc = tr_h5_attr_str(f, path, "/units/metrics", "columns", names, err);
    if (!rc)
        rc = tr_h5_attr_str(f, path, "/", "metric", s->metric, err);
    if (!rc)
        rc = tr_h5_attr_i64(f, path, "/", "higher_is_better", s->higher_better, err);
    if (!rc)
        rc = tr_h5_attr_i64(f, path, "/", "folds", s->folds > 1 ? s->folds : 0, err);
    if (!rc)
        rc = tr_h5_attr_str(f, path, "/", "config", s->config, err);
    if (!rc)
        rc = tr_h5_attr_str(f, path, "/", "space", s->space_path, err);
#undef COLUMN_I64
#undef COLUMN_F64
    free(i64);
    free(f64);
    free(str);
    free(values);
    if (rc) {
        H5Fclose(f);
        return rc;
    }
    return tr_h5_finish(f, path, err);
}

/* The index of a reported metric by name (-1: not one of TR_RESULT_METRICS). */
static int metric_index(const char *name)
{
    for (int k = 0; k < TR_RESULT_COUNT; k++)
        if (!strcmp(tr_result_metric_names[k], name))
            return k;
    return -1;
}

static void md_value(FILE *f, double v, double sd, bool folds)
{
    if (isnan(v))
        fputs(" - |", f);
    else if (folds)
        fprintf(f, " %.4f ± %.4f |", v, sd);
    else
        fprintf(f, " %.4f |", v);
}

static int write_md(const tr_search_summary *s, const trial_row *rows, FILE *f)
{
    int64_t count[16] = {0}, epochs = 0, budget = 0;
    for (int64_t t = 0; t < s->trials; t++) {
        count[rows[t].status]++;
        epochs += rows[t].epochs;
        budget += s->epochs[t] * s->folds;
    }
    fprintf(f, "# Search: %s over %s\n\n", s->config, s->space_path);
    fprintf(f, "- %lld trials", (long long)s->trials);
    if (s->folds > 1)
        fprintf(f, " x %lld folds (metrics: mean ± standard deviation over the folds)", (long long)s->folds);
    fprintf(f, "; %d group%s of %d rank%s; %.2f s\n", s->groups, s->groups == 1 ? "" : "s", s->ranks_per_group,
            s->ranks_per_group == 1 ? "" : "s", s->seconds);
    fputs("- status:", f);
    for (int st = 0; tr_unit_status_names[st]; st++)
        if (count[st])
            fprintf(f, " %s %lld", tr_unit_status_names[st], (long long)count[st]);
    fprintf(f, "\n- epochs trained: %lld of %lld (every trial to its configured epochs): %.1f%%\n", (long long)epochs,
            (long long)budget, budget ? 100.0 * (double)epochs / (double)budget : 0.0);
    fprintf(f, "- ranked by %s (%s is better)\n\n", s->metric, s->higher_better ? "higher" : "lower");
    fputs("## Best trials\n\n| rank | trial |", f);
    for (int d = 0; d < s->space->n_dims; d++)
        fprintf(f, " %s |", s->space->dims[d].key);
    /* the test set's accuracy and loss beside the metric, unless it is one of them */
    int beside[2], n_beside = 0;
    const char *const test_columns[] = {"test_accuracy", "test_loss"};
    for (int k = 0; k < 2; k++)
        if (strcmp(test_columns[k], s->metric))
            beside[n_beside++] = metric_index(test_columns[k]);
    fprintf(f, " %s |", s->metric);
    for (int k = 0; k < n_beside; k++)
        fprintf(f, " %s |", tr_result_metric_names[beside[k]]);
    fputs(" epochs | status |\n|", f);
    for (int d = 0; d < s->space->n_dims + 5 + n_beside; d++)
        fputs(" --- |", f);
    fputc('\n', f);
    trial_row *sorted = malloc((size_t)s->trials * sizeof *sorted);
    if (!sorted)
        return TR_ENOMEM;
    memcpy(sorted, rows, (size_t)s->trials * sizeof *sorted);
    higher_better_sort = s->higher_better;
    qsort(sorted, (size_t)s->trials, sizeof *sorted, by_score);
    for (int64_t i = 0; i < s->trials && i < BEST_SHOWN; i++) {
        const trial_row *r = &sorted[i];
        fprintf(f, "| %lld | %lld |", (long long)i + 1, (long long)r->trial);
        for (int d = 0; d < s->space->n_dims; d++) {
            char v[VALUE_LEN];
            tr_space_value(s->space, r->trial, d, v, sizeof v);
            fprintf(f, " %s |", v);
        }
        md_value(f, r->score, r->score_std, s->folds > 1);
        for (int k = 0; k < n_beside; k++)
            md_value(f, r->metric[beside[k]], r->metric_std[beside[k]], s->folds > 1);
        fprintf(f, " %lld | %s |\n", (long long)r->epochs, tr_name_of(tr_unit_status_names, r->status));
    }
    bool failures = false;
    for (int64_t t = 0; t < s->trials; t++)
        if (rows[t].message[0]) {
            if (!failures)
                fputs("\n## Trials that failed or were interrupted\n\n", f);
            failures = true;
            fprintf(f, "- trial %lld (%s): %s\n", (long long)t, tr_name_of(tr_unit_status_names, rows[t].status),
                    rows[t].message);
        }
    fputs("\nEach trial's run directory is trials/NNNN (trials/NNNN/fold-F with folds); trials.csv and trials.h5 "
          "hold every trial, scripts/plot_search.py draws them.\n",
          f);
    free(sorted);
    return 0;
}

/* A text file written whole through a temporary name. */
static int write_text(const char *dir, const char *name, const tr_search_summary *s, const trial_row *rows,
                      int (*body)(const tr_search_summary *, const trial_row *, FILE *), tr_err *err)
{
    char path[TR_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    tr_atomic a;
    int rc = tr_atomic_begin(&a, path, true, TR_EIO, err);
    if (!rc && body(s, rows, a.f) != 0) {
        tr_atomic_abort(&a);
        return tr_fail(err, TR_ENOMEM, "out of memory");
    }
    return rc ? rc : tr_atomic_commit(&a, TR_EIO, err);
}

int tr_search_report(const tr_search_summary *s, tr_err *err)
{
    trial_row *rows = calloc((size_t)s->trials + 1, sizeof *rows);
    if (!rows)
        return tr_fail(err, TR_ENOMEM, "out of memory");
    for (int64_t t = 0; t < s->trials; t++)
        summarise(s, t, &rows[t]);
    int rc = write_text(s->dir, "trials.csv", s, rows, write_csv, err);
    if (!rc)
        rc = write_text(s->dir, "report.md", s, rows, write_md, err);
    char path[TR_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/trials.h5", s->dir);
    tr_atomic a;
    if (!rc)
        rc = tr_atomic_begin(&a, path, false, TR_EIO, err);
    if (!rc) {
        rc = write_h5(s, rows, a.tmp, path, err);
        rc = rc ? (tr_atomic_abort(&a), rc) : tr_atomic_commit(&a, TR_EIO, err);
    }
    free(rows);
    return rc;
}
