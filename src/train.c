/*
 * train.c: the training loop.
 *
 * One optimizer step:
 *   zero_grad (one memset)
 *   for each micro-batch of the step:  gather this rank's rows -> forward -> loss and dZ
 *                                      (scaled by 1 / (accumulate * global denominator)) -> backward
 *   check the gradient is finite, optimizer update tensor by tensor
 * Nothing is allocated inside the loop: every buffer is sized in tr_trainer_init.
 */
#include "trainer/train.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int alloc_array(void **p, size_t n, size_t elem, tr_err *err)
{
    *p = calloc(n ? n : 1, elem);
    if (!*p)
        return tr_fail(err, TR_ENOMEM, "cannot allocate %zu bytes of training buffers", n * elem);
    return 0;
}

int tr_trainer_init(tr_trainer *t, const tr_config *c, tr_dist *d, FILE *out, tr_err *err)
{
    memset(t, 0, sizeof *t);
    t->cfg = c;
    t->dist = d;
    t->out = out;
    if (c->train.threads > 0)
        openblas_set_num_threads(c->train.threads);

    const int L = c->model.n_layers;
    t->loss = (tr_loss){.kind = c->train.loss,
                        .reduction = c->train.reduction,
                        .width = c->model.widths[L],
                        .out_act = c->model.act[L - 1],
                        .act_params = c->model.act_params,
                        .huber_delta = (float)c->train.huber_delta,
                        .pos_weight = (float)c->train.pos_weight};
    int rc = tr_loss_check(&t->loss, err);
    if (rc)
        return rc;
    rc = tr_data_load(&t->data, c, &t->loss, err);
    if (rc)
        return rc;
    rc = tr_sampler_init(&t->sampler, t->data.train.rows, c->train.batch_size, c->train.accumulate,
                         c->train.shuffle, c->train.drop_last, c->train.seed, d->rank, d->size, err);
    if (rc)
        return rc;
    if (tr_sampler_micro_batches(&t->sampler) < 1)
        return tr_fail(err, TR_EDATA,
                       "%s: %lld training rows make no full batch of %lld with drop_last = true",
                       t->data.source, (long long)t->data.train.rows, (long long)t->sampler.batch);
    const int64_t max_local = tr_sampler_max_local_rows(&t->sampler);
    rc = tr_model_init(&t->model, &c->model, max_local, err);
    if (rc)
        return rc;
    tr_model_init_params(&t->model, c->train.seed);
    rc = tr_optim_init(&t->optim, &c->train.optim, t->model.n_params, err);
    if (rc)
        return rc;

    const int64_t F = c->model.widths[0], O = t->loss.width, T = tr_loss_target_width(&t->loss);
    int64_t eval_rows = t->data.test.rows > t->data.val.rows ? t->data.test.rows : t->data.val.rows;
    if (c->train.eval_train && t->data.train.rows > eval_rows)
        eval_rows = t->data.train.rows;
    rc = alloc_array((void **)&t->xb, (size_t)(max_local * F), sizeof(float), err);
    if (!rc)
        rc = alloc_array((void **)&t->yb, (size_t)(max_local * T), sizeof(float), err);
    if (!rc)
        rc = alloc_array((void **)&t->dZ, (size_t)(max_local * O), sizeof(float), err);
    if (!rc)
        rc = alloc_array((void **)&t->eval_Z, (size_t)(eval_rows * O), sizeof(float), err);
    if (!rc)
        rc = alloc_array((void **)&t->eval_A, (size_t)(eval_rows * O), sizeof(float), err);
    if (!rc)
        rc = alloc_array((void **)&t->eval_loss, (size_t)eval_rows, sizeof(double), err);
    const tr_task task = tr_loss_task(&t->loss);
    const int64_t K = tr_loss_classes(&t->loss);
    if (!rc)
        rc = tr_metrics_init(&t->train_metrics, task, K, err);
    if (!rc)
        rc = tr_metrics_init(&t->val_metrics, task, K, err);
    if (!rc)
        rc = tr_metrics_init(&t->test_metrics, task, K, err);
    return rc;
}

void tr_trainer_free(tr_trainer *t)
{
    if (!t)
        return;
    tr_data_free(&t->data);
    tr_sampler_free(&t->sampler);
    tr_model_free(&t->model);
    tr_optim_free(&t->optim);
    free(t->xb);
    free(t->yb);
    free(t->dZ);
    free(t->eval_Z);
    free(t->eval_A);
    free(t->eval_loss);
    tr_metrics_free(&t->train_metrics);
    tr_metrics_free(&t->val_metrics);
    tr_metrics_free(&t->test_metrics);
    memset(t, 0, sizeof *t);
}

/* Copies the listed rows of ds into the step buffers. */
static void gather_rows(tr_trainer *t, const tr_dataset *ds, const int64_t *rows, int64_t n)
{
    const size_t F = (size_t)ds->cols, T = (size_t)ds->tcols;
    for (int64_t i = 0; i < n; i++) {
        memcpy(t->xb + (size_t)i * F, ds->X + (size_t)rows[i] * F, F * sizeof(float));
        memcpy(t->yb + (size_t)i * T, ds->y + (size_t)rows[i] * T, T * sizeof(float));
    }
}

/* True when every gradient is finite (x * 0 is NaN exactly for inf and NaN). */
static bool grads_finite(const tr_model *m)
{
    float acc = 0.0f;
    for (size_t i = 0; i < m->n_params; i++)
        acc += m->grads[i] * 0.0f;
    return acc == 0.0f;
}

static int train_step(tr_trainer *t, int64_t step_in_epoch, tr_err *err)
{
    tr_sampler *s = &t->sampler;
    tr_model *m = &t->model;
    const tr_dataset *ds = &t->data.train;
    const int L = m->n_layers;
    const int64_t n_micro = tr_sampler_step_micro_batches(s, step_in_epoch);
    double loss_sum = 0.0;

    tr_model_zero_grad(m);
    for (int64_t j = 0; j < n_micro; j++) {
        int64_t G, n;
        const int64_t *rows;
        tr_sampler_micro(s, step_in_epoch * s->accumulate + j, &G, &rows, &n);
        gather_rows(t, ds, rows, n);
        tr_model_forward(m, t->xb, n);
        const double denom = tr_loss_denominator(&t->loss, G, (double)G);
        const float scale = (float)(1.0 / ((double)s->accumulate * denom));
        loss_sum += tr_loss_compute(&t->loss, t->dZ, NULL, m->layer[L - 1].Z, m->layer[L - 1].A, t->yb, n, scale);
        if (tr_loss_task(&t->loss) == TR_TASK_CLASSIFICATION)
            t->epoch_correct += tr_loss_count_correct(&t->loss, m->layer[L - 1].Z, t->yb, n);
        t->epoch_rows += n;
        tr_model_backward(m, t->xb, t->dZ, n, NULL);
    }
    if (!isfinite(loss_sum) || !grads_finite(m))
        return tr_fail(err, TR_EDIVERGED,
                       "training diverged at epoch %lld, step %lld: the %s is not finite (try a lower [train] lr)",
                       (long long)t->epoch + 1, (long long)t->step + 1,
                       isfinite(loss_sum) ? "gradient" : "loss");
    t->epoch_loss_sum += loss_sum;

    tr_optim_begin_step(&t->optim);
    for (int i = 0; i < m->n_tensors; i++) {
        const tr_tensor *T = &m->tensor[i];
        tr_optim_update(&t->optim, m->params, m->grads, T->offset, T->offset + T->size, true);
    }
    t->step++;
    return 0;
}

int tr_trainer_evaluate(tr_trainer *t, const tr_dataset *ds, tr_metrics *m, tr_err *err)
{
    (void)err;
    tr_model *mod = &t->model;
    const int L = mod->n_layers;
    const int64_t O = t->loss.width, F = ds->cols, T = ds->tcols;
    for (int64_t r0 = 0; r0 < ds->rows; r0 += mod->max_batch) {
        int64_t n = ds->rows - r0;
        if (n > mod->max_batch)
            n = mod->max_batch;
        const float *X = ds->X + r0 * F;
        tr_model_forward(mod, X, n);
        const float *Z = mod->layer[L - 1].Z, *A = mod->layer[L - 1].A;
        memcpy(t->eval_Z + r0 * O, Z, (size_t)(n * O) * sizeof(float));
        memcpy(t->eval_A + r0 * O, A, (size_t)(n * O) * sizeof(float));
        tr_loss_compute(&t->loss, NULL, t->eval_loss + r0, Z, A, ds->y + r0 * T, n, 1.0f);
    }
    tr_metrics_compute(m, &t->loss, t->eval_Z, t->eval_A, ds->y, t->eval_loss, ds->rows);
    return 0;
}

static void print_eval_line(tr_trainer *t, double epoch_seconds, int64_t epoch_rows)
{
    if (!t->out)
        return;
    const bool cls = tr_loss_task(&t->loss) == TR_TASK_CLASSIFICATION;
    FILE *f = t->out;
    fprintf(f, "epoch %*lld/%lld  step %lld  train_loss %.6f", t->cfg->train.epochs >= 100 ? 4 : 3,
            (long long)t->epoch, (long long)t->cfg->train.epochs, (long long)t->step,
            t->has_train_metrics ? t->train_metrics.loss : t->train_loss);
    if (cls)
        fprintf(f, "  train_acc %.4f", t->has_train_metrics ? t->train_metrics.accuracy : t->train_accuracy);
    else if (t->has_train_metrics)
        fprintf(f, "  train_r2 %.4f", t->train_metrics.r2);
    const struct {
        bool has;
        const tr_metrics *m;
        const char *name;
    } sets[] = {{t->has_val_metrics, &t->val_metrics, "val"}, {t->has_test_metrics, &t->test_metrics, "test"}};
    for (int i = 0; i < 2; i++) {
        if (!sets[i].has)
            continue;
        fprintf(f, "  %s_loss %.6f", sets[i].name, sets[i].m->loss);
        if (cls)
            fprintf(f, "  %s_acc %.4f", sets[i].name, sets[i].m->accuracy);
        else
            fprintf(f, "  %s_r2 %.4f", sets[i].name, sets[i].m->r2);
    }
    fprintf(f, "  lr %.3g  %.0f samples/s\n", t->optim.lr, epoch_seconds > 0 ? (double)epoch_rows / epoch_seconds : 0.0);
    fflush(f);
}

int tr_trainer_fit(tr_trainer *t, tr_err *err)
{
    const tr_train_config *tc = &t->cfg->train;
    const bool cls = tr_loss_task(&t->loss) == TR_TASK_CLASSIFICATION;
    const double t_start = now_seconds();
    double since_eval = 0.0;
    int64_t rows_since_eval = 0;
    while (t->epoch < tc->epochs) {
        const double t0 = now_seconds();
        tr_sampler_set_epoch(&t->sampler, t->epoch);
        t->epoch_loss_sum = 0.0;
        t->epoch_rows = t->epoch_correct = 0;
        const int64_t steps = tr_sampler_steps(&t->sampler);
        for (int64_t s = 0; s < steps; s++) {
            int rc = train_step(t, s, err);
            if (rc)
                return rc;
        }
        t->epoch++;
        const double rows = (double)t->epoch_rows;
        t->train_loss = t->epoch_loss_sum / tr_loss_denominator(&t->loss, t->epoch_rows, rows);
        t->train_accuracy = cls ? (double)t->epoch_correct / (rows * (t->loss.kind == TR_LOSS_CROSS_ENTROPY ? 1.0 : (double)t->loss.width)) : NAN;
        since_eval += now_seconds() - t0;
        rows_since_eval += t->epoch_rows;
        if (t->epoch % tc->eval_every == 0 || t->epoch == tc->epochs) {
            if (tc->eval_train) {
                int rc = tr_trainer_evaluate(t, &t->data.train, &t->train_metrics, err);
                if (rc)
                    return rc;
                t->has_train_metrics = true;
            }
            if (t->data.val.rows > 0) {
                int rc = tr_trainer_evaluate(t, &t->data.val, &t->val_metrics, err);
                if (rc)
                    return rc;
                t->has_val_metrics = true;
            }
            if (t->data.test.rows > 0) {
                int rc = tr_trainer_evaluate(t, &t->data.test, &t->test_metrics, err);
                if (rc)
                    return rc;
                t->has_test_metrics = true;
            }
            print_eval_line(t, since_eval, rows_since_eval);
            since_eval = 0.0;
            rows_since_eval = 0;
        }
    }
    t->seconds = now_seconds() - t_start;
    return 0;
}

void tr_print_report(FILE *f, const tr_metrics *m, const char *title)
{
    fprintf(f, "\n%s (%lld rows): loss %.6f\n", title, (long long)m->rows, m->loss);
    if (m->task == TR_TASK_REGRESSION) {
        fprintf(f, "  mse %.6g  mae %.6g  r2 %.6f\n", m->mse, m->mae, m->r2);
        return;
    }
    const int64_t K = m->classes;
    fprintf(f, "  accuracy %.4f  macro_f1 %.4f\n", m->accuracy, m->macro_f1);
    if (K > 50) {
        fprintf(f, "  (%lld classes: confusion matrix in metrics.h5)\n", (long long)K);
        return;
    }
    fprintf(f, "  confusion matrix (rows: true class, columns: predicted class)\n  %6s", "");
    for (int64_t j = 0; j < K; j++)
        fprintf(f, " %7lld", (long long)j);
    fprintf(f, "\n");
    for (int64_t i = 0; i < K; i++) {
        fprintf(f, "  %6lld", (long long)i);
        for (int64_t j = 0; j < K; j++)
            fprintf(f, " %7lld", (long long)m->confusion[i * K + j]);
        fprintf(f, "\n");
    }
    fprintf(f, "  %6s %10s %10s %10s %10s\n", "class", "precision", "recall", "f1-score", "support");
    for (int64_t i = 0; i < K; i++) {
        int64_t support = 0;
        for (int64_t j = 0; j < K; j++)
            support += m->confusion[i * K + j];
        fprintf(f, "  %6lld %10.4f %10.4f %10.4f %10lld\n", (long long)i, m->precision[i], m->recall[i], m->f1[i],
                (long long)support);
    }
}

/* mkdir -p */
static int make_dirs(const char *path, tr_err *err)
{
    char buf[TR_PATH_MAX];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1;; p++) {
        const bool end = *p == '\0';
        if (*p == '/' || end) {
            const char saved = *p;
            *p = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                return tr_fail(err, TR_EIO, "[output] dir = %s: cannot create %s: %s", path, buf, strerror(errno));
            *p = saved;
        }
        if (end)
            break;
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return tr_fail(err, TR_EIO, "[output] dir = %s: exists and is not a directory", path);
    return 0;
}

int tr_run_dir_prepare(const tr_config *c, tr_err *err)
{
    int rc = make_dirs(c->output.dir, err);
    if (rc)
        return rc;
    char path[TR_PATH_MAX + 32], tmp[TR_PATH_MAX + 48];
    snprintf(path, sizeof path, "%s/config.ini", c->output.dir);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f)
        return tr_fail(err, TR_EIO, "%s: cannot write: %s", tmp, strerror(errno));
    fprintf(f, "# effective configuration of a trainer run (source: %s)\n", c->path);
    tr_config_print(c, f);
    const bool ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (fclose(f) != 0 || !ok) {
        unlink(tmp);
        return tr_fail(err, TR_EIO, "%s: write failed: %s", tmp, strerror(errno));
    }
    if (rename(tmp, path) != 0) {
        unlink(tmp);
        return tr_fail(err, TR_EIO, "%s: cannot rename into place: %s", path, strerror(errno));
    }
    return 0;
}
