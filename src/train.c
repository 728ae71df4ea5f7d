/*
 * train.c: the training loop, data-parallel.
 *
 * One optimizer step (default mode):
 *   zero_grad (one memset)
 *   for each micro-batch of the step:  gather this rank's rows -> forward -> loss and dZ
 *       (scaled by 1 / (accumulate * global denominator)) -> backward, adding into grads;
 *       only the last micro-step communicates: its backward starts the gradient buckets
 *   wait for the buckets, sum the loss statistics, check the gradient is finite,
 *   optimizer update tensor by tensor (identical on every rank)
 * Deterministic mode computes each micro-batch gradient into its own buffer and sums them
 * exactly (tr_grad_sync_exact). Nothing is allocated inside the loop.
 */
#include "trainer/train.h"

#include "trainer/clock.h"
#include "trainer/fault.h"
#include "trainer/sched.h"

#include <cblas.h>
#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const char *const tr_phase_names[TR_PHASE_COUNT] = {"data", "forward", "backward", "comm_wait", "optimizer", "eval"};

static int alloc_array(void **p, size_t n, size_t elem, tr_err *err)
{
    *p = calloc(n ? n : 1, elem);
    if (!*p)
        return tr_fail(err, TR_ENOMEM, "cannot allocate %zu bytes of training buffers", n * elem);
    return 0;
}

/* OpenBLAS threads per rank: the config, else the environment, else the node's CPUs shared
 * by the ranks on the node (1 in deterministic mode, so every rank runs the same kernels). */
static int choose_threads(const tr_config *c, const tr_dist *d)
{
    if (c->train.threads > 0)
        return c->train.threads;
    if (getenv("OPENBLAS_NUM_THREADS") || getenv("OMP_NUM_THREADS"))
        return 0;
    if (c->train.deterministic)
        return 1;
    const int n = tr_dist_cpus() / (d->local_size > 0 ? d->local_size : 1);
    return n > 0 ? n : 1;
}

/* Batch-norm sums over the ranks (synchronised batch norm). */
static int sum_over_ranks(void *ctx, double *buf, int n)
{
    return tr_dist_sum_f64(ctx, buf, n, NULL);
}

/* [train] class_weights: a list, or auto = balanced weights (rows / (classes x rows of the
 * class), scikit-learn's) from the training labels; for the binary losses auto sets
 * pos_weight = negatives / positives. */
static int set_class_weights(tr_trainer *t, tr_err *err)
{
    const tr_train_config *tc = &t->cfg->train;
    if (tc->n_class_weights == 0)
        return 0;
    const tr_dataset *ds = &t->data.train;
    if (t->loss.kind == TR_LOSS_CROSS_ENTROPY) {
        const int64_t K = t->loss.width;
        if (tc->n_class_weights > 0) {
            memcpy(t->class_weights, tc->class_weights, (size_t)K * sizeof(float));
        } else {
            int64_t *count = calloc((size_t)K, sizeof *count);
            if (!count)
                return tr_fail(err, TR_ENOMEM, "out of memory");
            for (int64_t r = 0; r < ds->rows; r++)
                count[(int64_t)ds->y[r]]++;
            for (int64_t k = 0; k < K; k++)
                t->class_weights[k] = count[k] ? (float)((double)ds->rows / ((double)K * (double)count[k])) : 0.0f;
            free(count);
        }
        t->loss.class_weights = t->class_weights;
    } else if (tr_loss_task(&t->loss) == TR_TASK_CLASSIFICATION) {
        double pos = 0.0;
        for (int64_t i = 0; i < ds->rows * ds->tcols; i++)
            pos += ds->y[i];
        const double neg = (double)(ds->rows * ds->tcols) - pos;
        t->loss.pos_weight = pos > 0.0 ? (float)(neg / pos) : 1.0f;
    }
    return 0;
}

/* Everything a rank builds on its own: data, model, optimizer, buffers. No collective here:
 * a failure on one rank must not leave the others waiting in one. */
static int init_local(tr_trainer *t, const tr_config *c, tr_dist *d, tr_err *err)
{
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
    rc = set_class_weights(t, err);
    if (rc)
        return rc;
    rc = tr_sampler_init(&t->sampler, t->data.train.rows, c->train.batch_size, c->train.accumulate,
                         c->train.shuffle, c->train.drop_last, c->train.seed, d->rank, d->size, err);
    if (rc)
        return rc;
    if (tr_sampler_micro_batches(&t->sampler) < 1)
        return tr_fail(err, TR_EDATA, "%s: %lld training rows make no full batch of %lld with drop_last = true",
                       t->data.source, (long long)t->data.train.rows, (long long)t->sampler.batch);
    /* deterministic mode computes chunks of chunk_rows rows, dealt out to the ranks */
    int64_t max_local = tr_sampler_max_local_rows(&t->sampler);
    if (c->train.deterministic) {
        int64_t step_rows = t->sampler.batch * t->sampler.accumulate;
        if (step_rows > t->data.train.rows)
            step_rows = t->data.train.rows;
        const int64_t chunks = (step_rows + c->train.chunk_rows - 1) / c->train.chunk_rows;
        t->n_chunk_bufs = (chunks + d->size - 1) / d->size;
        if (c->train.chunk_rows > max_local)
            max_local = c->train.chunk_rows;
    }
    int64_t max_rows = max_local;
    if (c->train.eval_batch > max_rows)
        max_rows = c->train.eval_batch;
    rc = tr_model_init(&t->model, &c->model, max_rows, err);
    if (rc)
        return rc;
    tr_model_init_params(&t->model, c->train.seed);
    rc = tr_optim_init(&t->optim, &c->train.optim, t->model.n_params, err);
    if (rc)
        return rc;
    rc = tr_grad_sync_create(&t->sync, d, &t->model, (size_t)c->train.bucket_kb * 1024, c->train.deterministic,
                             err);
    if (rc)
        return rc;
    t->n_buckets = tr_grad_sync_buckets(t->sync, &t->bucket_begin);
    /* batch norm sums its statistics over the ranks (sync_bn), or normalises each rank's
     * slice; in deterministic mode each chunk */
    t->fmode = (tr_forward_mode){.seed = c->train.seed,
                                 .sum = c->train.sync_bn && d->size > 1 && !c->train.deterministic ? sum_over_ranks
                                                                                                   : NULL,
                                 .ctx = d};
    t->base_lr = c->train.optim.lr;
    t->lr_scale = 1.0;

    const int64_t F = c->model.widths[0], O = t->loss.width, T = tr_loss_target_width(&t->loss);
    int64_t eval_rows = t->data.test.rows > t->data.val.rows ? t->data.test.rows : t->data.val.rows;
    if (c->train.eval_train && t->data.train.rows > eval_rows)
        eval_rows = t->data.train.rows;
    rc = alloc_array((void **)&t->xb, (size_t)(max_local * F), sizeof(float), err);
    if (!rc)
        rc = alloc_array((void **)&t->yb, (size_t)(max_local * T), sizeof(float), err);
    if (!rc)
        rc = alloc_array((void **)&t->dZ, (size_t)(max_rows * O), sizeof(float), err);
    if (!rc)
        rc = alloc_array((void **)&t->eval_Z, (size_t)(eval_rows * O), sizeof(float), err);
    if (!rc)
        rc = alloc_array((void **)&t->eval_A, (size_t)(eval_rows * O), sizeof(float), err);
    if (!rc)
        rc = alloc_array((void **)&t->eval_loss, (size_t)eval_rows, sizeof(double), err);
    if (!rc && c->train.deterministic) {
        const int64_t k = t->n_chunk_bufs;
        rc = alloc_array((void **)&t->micro, (size_t)k, sizeof(float *), err);
        if (!rc)
            rc = alloc_array((void **)&t->micro_loss, (size_t)k, sizeof(double), err);
        for (int64_t j = 0; !rc && j < k; j++)
            rc = alloc_array((void **)&t->micro[j], t->model.n_params, sizeof(float), err);
    }
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

/* The collective part, reached by every rank once all have built their part: the check that
 * the replicas start equal, and the node-shared memory. */
static int init_shared(tr_trainer *t, const tr_config *c, tr_dist *d, tr_err *err)
{
    /* every rank derives the same parameters from the seed; check rather than trust */
    bool same;
    int rc = tr_dist_same_everywhere(d, t->model.params, t->model.n_params * sizeof(float), &same, err);
    if (!rc && !same)
        rc = tr_fail(err, TR_EINTERNAL, "initial parameters differ between ranks");
    if (rc)
        return rc;
    if (d->size > 1 && !c->train.deterministic && c->train.comm != TR_COMM_ALLREDUCE) {
        rc = tr_node_group_create(&t->node, d, t->model.n_params, t->optim.n_state, t->n_buckets, err);
        if (rc)
            return rc;
        if (!t->node && c->train.comm == TR_COMM_SHARED)
            return tr_fail(err, TR_ECONFIG, "[train] comm = shared needs the same number of ranks on every node");
    }
    if (t->node) { /* parameters and optimizer state once per node; gradients in this rank's slot */
        float *states[3];
        for (int i = 0; i < t->optim.n_state; i++)
            states[i] = tr_node_group_state(t->node, i);
        tr_optim_use_state(&t->optim, states);
        float *params = tr_node_group_params(t->node);
        if (d->local_rank == 0)
            memcpy(params, t->model.params, t->model.n_params * sizeof(float));
        tr_model_use_buffers(&t->model, params, tr_node_group_slot(t->node, d->local_rank));
        tr_dist_barrier(d); /* the parameters are in place before anyone reads them */
    }
    return 0;
}

int tr_trainer_init(tr_trainer *t, const tr_config *c, tr_dist *d, FILE *out, tr_err *err)
{
    memset(t, 0, sizeof *t);
    t->cfg = c;
    t->dist = d;
    t->out = d->rank == 0 ? out : NULL;
    const int threads = choose_threads(c, d);
    if (threads > 0)
        openblas_set_num_threads(threads);
    t->threads = openblas_get_num_threads();
    int rc = tr_dist_agree(d, init_local(t, c, d, err));
    if (!rc)
        rc = tr_dist_agree(d, init_shared(t, c, d, err));
    if (rc)
        return rc;

    t->fault_nan_step = tr_fault_rank_step("TRAINER_FAULT_NAN", d->rank); /* a test hook (fault.h) */
    return rc;
}

void tr_trainer_free(tr_trainer *t)
{
    if (!t)
        return;
    tr_data_free(&t->data);
    tr_sampler_free(&t->sampler);
    tr_grad_sync_free(t->sync);
    tr_model_free(&t->model); /* before the shared memory it may point into */
    tr_optim_free(&t->optim);
    tr_node_group_free(t->node);
    free(t->xb);
    free(t->yb);
    free(t->dZ);
    if (t->micro)
        for (int64_t j = 0; j < t->n_chunk_bufs; j++)
            free(t->micro[j]);
    free(t->micro);
    free(t->micro_loss);
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

/* 1 when this rank was asked to stop (a signal), summed over ranks with the statistics. */
static double stop_requested(const tr_trainer *t)
{
    return t->stop_flag && *t->stop_flag ? 1.0 : 0.0;
}

/* The run stops: every rank sees the same reduced values, so all take this path together.
 * The parameters may already hold the bad update; nothing is saved after this. */
static int diverged(const tr_trainer *t, const char *what, tr_err *err)
{
    return tr_fail(err, TR_EDIVERGED,
                   "training diverged at epoch %lld, step %lld: the %s is not finite (try a lower [train] lr)",
                   (long long)t->epoch + 1, (long long)t->step + 1, what);
}

/* Asks the memory system for the listed rows (into the outer caches) ahead of their use. */
static void prefetch_rows(const tr_dataset *ds, const int64_t *rows, int64_t n)
{
    const size_t F = (size_t)ds->cols, T = (size_t)ds->tcols;
    for (int64_t i = 0; i < n; i++) {
        const char *x = (const char *)(ds->X + (size_t)rows[i] * F);
        for (size_t b = 0; b < F * sizeof(float); b += 64)
            __builtin_prefetch(x + b, 0, 1);
        __builtin_prefetch(ds->y + (size_t)rows[i] * T, 0, 1);
    }
}

/* Forward, loss and dZ of this rank's rows of micro-batch j; returns the rank's loss sum. */
static double micro_forward(tr_trainer *t, int64_t j, int64_t *n_rows, int64_t *correct)
{
    tr_sampler *s = &t->sampler;
    tr_model *m = &t->model;
    const int L = m->n_layers;
    int64_t G, n;
    const int64_t *rows;
    double t0 = tr_seconds();
    tr_sampler_micro(s, j, &G, &rows, &n);
    gather_rows(t, &t->data.train, rows, n);
    if (j + 1 < tr_sampler_micro_batches(s)) { /* the next batch's rows load while this one computes */
        int64_t G2, n2;
        const int64_t *rows2;
        tr_sampler_micro(s, j + 1, &G2, &rows2, &n2);
        prefetch_rows(&t->data.train, rows2, n2);
    }
    double t1 = tr_seconds();
    t->phase[TR_PHASE_DATA] += t1 - t0;
    *n_rows = n;
    /* a rank without rows of this micro-batch (more ranks than rows) still runs the forward
     * pass on zero rows: synchronised batch norm sums over every rank */
    t->fmode.step = t->step;
    t->fmode.rows = rows;
    t->fmode.global_rows = (double)G;
    tr_model_forward(m, t->xb, n, &t->fmode);
    /* the global denominator: every rank knows the micro-batch's rows (and labels), so the
     * scaled gradients just add up; weighted cross-entropy divides by the weight sum */
    double wsum = (double)G;
    if (t->loss.class_weights) {
        const int64_t *all;
        int64_t g;
        tr_sampler_micro_all(s, j, &all, &g);
        wsum = 0.0;
        for (int64_t i = 0; i < g; i++)
            wsum += t->loss.class_weights[(int64_t)t->data.train.y[all[i]]];
    }
    const double denom = tr_loss_denominator(&t->loss, G, wsum);
    const float scale = (float)(1.0 / ((double)s->accumulate * denom));
    const double loss = tr_loss_compute(&t->loss, t->dZ, NULL, m->layer[L - 1].Z, m->layer[L - 1].A, t->yb, n, scale);
    if (tr_loss_task(&t->loss) == TR_TASK_CLASSIFICATION)
        *correct += tr_loss_count_correct(&t->loss, m->layer[L - 1].Z, t->yb, n);
    if (t->fault_nan_step == t->step + 1)
        t->dZ[0] = NAN;
    t->phase[TR_PHASE_FORWARD] += tr_seconds() - t1;
    return loss;
}

/* The regularisation and clipping of tensor T in this step (see tr_optim_range). */
static tr_optim_range range_of(const tr_trainer *t, const tr_tensor *T, float scale)
{
    const tr_train_config *tc = &t->cfg->train;
    const bool pen = tc->penalize_all || T->is_weight;
    return (tr_optim_range){.decay = pen,
                            .l1 = pen ? (float)tc->l1 : 0.0f,
                            .l2 = pen ? (float)tc->l2 : 0.0f,
                            .scale = scale,
                            .clip = (float)tc->clip_value};
}

/* The squared norm of (gradient + penalty gradient) over [lo, hi), tensor by tensor. */
static double range_sq_norm(const tr_trainer *t, size_t lo, size_t hi)
{
    const tr_model *m = &t->model;
    double sq = 0.0;
    for (int i = 0; i < m->n_tensors; i++) {
        const tr_tensor *T = &m->tensor[i];
        const size_t a = T->offset > lo ? T->offset : lo, b = T->offset + T->size < hi ? T->offset + T->size : hi;
        if (a < b) {
            const tr_optim_range r = range_of(t, T, 1.0f);
            sq += tr_optim_sq_norm(m->params, m->grads, a, b, r.l1, r.l2);
        }
    }
    return sq;
}

/* torch.nn.utils.clip_grad_norm_: scale by max_norm / (norm + 1e-6) when that is below 1. */
static float clip_scale(const tr_trainer *t, double sq)
{
    const double max_norm = t->cfg->train.clip_norm;
    if (max_norm <= 0.0)
        return 1.0f;
    const double coef = max_norm / (sqrt(sq) + 1e-6);
    return coef < 1.0 ? (float)coef : 1.0f;
}

/* Updates the parameters in [lo, hi), tensor by tensor. */
static void update_range(tr_trainer *t, size_t lo, size_t hi, float scale)
{
    tr_model *m = &t->model;
    for (int i = 0; i < m->n_tensors; i++) {
        const tr_tensor *T = &m->tensor[i];
        const size_t a = T->offset > lo ? T->offset : lo, b = T->offset + T->size < hi ? T->offset + T->size : hi;
        if (a < b) {
            const tr_optim_range r = range_of(t, T, scale);
            t->update_finite &= tr_optim_update(&t->optim, m->params, m->grads, a, b, &r);
        }
    }
}

/* This rank's shard of bucket k. */
static void shard_of(const tr_trainer *t, int k, size_t *sb, size_t *se)
{
    const tr_model *m = &t->model;
    const size_t b = t->bucket_begin[k], e = k + 1 < t->n_buckets ? t->bucket_begin[k + 1] : m->n_params;
    int64_t lo, hi;
    tr_share((int64_t)(e - b), t->dist->local_rank, t->dist->local_size, &lo, &hi);
    *sb = b + (size_t)lo;
    *se = b + (size_t)hi;
}

/* One rank: the tensors at or above `frontier` are final and no longer read by backward:
 * update them now. */
static void local_layer_done(void *ctx, size_t frontier)
{
    tr_trainer *t = ctx;
    tr_model *m = &t->model;
    const double t0 = tr_seconds();
    while (t->local_top > 0 && m->tensor[t->local_top - 1].offset >= frontier) {
        const tr_tensor *T = &m->tensor[--t->local_top];
        const tr_optim_range r = range_of(t, T, 1.0f);
        t->update_finite &= tr_optim_update(&t->optim, m->params, m->grads, T->offset, T->offset + T->size, &r);
    }
    t->phase[TR_PHASE_OPTIM] += tr_seconds() - t0;
}

/* Node-shared step: buckets whose layers every rank of the node has finished are reduced
 * (this rank's shard: the sum over the node's gradient slots, then across nodes) and, unless
 * the gradient norm must be known first (clip_norm), updated. Called between kernels of the
 * backward pass and after it. */
static void shared_update_ready(tr_trainer *t)
{
    tr_model *m = &t->model;
    tr_dist *d = t->dist;
    const int L = d->local_size;
    const bool clip = t->cfg->train.clip_norm > 0.0;
    while (t->updated < t->signalled) {
        const int k = t->n_buckets - 1 - t->updated; /* descending: the top bucket first */
        if (!tr_node_group_complete(t->node, k, t->round))
            return;
        size_t sb, se;
        shard_of(t, k, &sb, &se);
        /* my shard of my own slot becomes the node sum: nobody else reads this range of it */
        const double tr0 = tr_seconds();
        float *restrict mine = m->grads;
        for (int j = 0; j < L; j++) {
            if (j == d->local_rank)
                continue;
            const float *restrict other = tr_node_group_slot(t->node, j);
            if (j < d->local_rank) /* fixed order: slot 0 + slot 1 + ... */
                for (size_t i = sb; i < se; i++)
                    mine[i] = other[i] + mine[i];
            else
                for (size_t i = sb; i < se; i++)
                    mine[i] += other[i];
        }
        /* every shard is summed even after a failure (the other nodes wait in the same calls);
         * the first failure is the step's result, with its own status */
        tr_err cerr;
        const int crc = tr_node_group_multinode(t->node)
                            ? tr_node_group_cross_sum(t->node, mine + sb, (int64_t)(se - sb), &cerr)
                            : 0;
        if (crc && !t->step_rc) {
            t->step_rc = crc;
            t->step_err = cerr;
        }
        const double t0 = tr_seconds();
        t->phase[TR_PHASE_COMM] += t0 - tr0;
        if (!clip)
            update_range(t, sb, se, 1.0f);
        t->phase[TR_PHASE_OPTIM] += tr_seconds() - t0;
        t->updated++;
    }
}

static void shared_layer_done(void *ctx, size_t frontier)
{
    tr_trainer *t = ctx;
    while (t->signalled < t->n_buckets && t->bucket_begin[t->n_buckets - 1 - t->signalled] >= frontier)
        tr_node_group_signal(t->node, t->n_buckets - 1 - t->signalled++, t->round);
    shared_update_ready(t);
}

/* The first layer's weights are not read again once its gradient is computed (there is no
 * input gradient below it), so its buckets are shared as backward completes them. */
static void shared_ready(void *ctx, size_t frontier)
{
    tr_trainer *t = ctx;
    const tr_model *m = &t->model;
    const size_t top = m->n_layers > 1 ? m->layer[1].w_off : m->n_params;
    if (frontier < top)
        shared_layer_done(ctx, frontier);
}

static void shared_progress(void *ctx) { shared_update_ready(ctx); }

/* Waiting for the other ranks of the node: a pause lets an SMT sibling (or the core's other
 * work) run at full speed; after a while, give the CPU away (more ranks than cores). */
static void relax(int spins)
{
    if (spins < 20000) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    } else {
        sched_yield();
    }
}

/* One optimizer step with node-shared parameters. */
static int shared_step(tr_trainer *t, int64_t step_in_epoch, tr_err *err)
{
    tr_sampler *s = &t->sampler;
    tr_model *m = &t->model;
    const int64_t n_micro = tr_sampler_step_micro_batches(s, step_in_epoch);
    const int64_t first = step_in_epoch * s->accumulate;
    double loss_total = 0.0;
    int64_t correct = 0, rows = 0;
    t->round++; /* counts this process's shared steps: the node's counters start at zero */
    t->signalled = t->updated = 0;
    t->step_rc = 0;
    t->update_finite = true;
    tr_optim_begin_step(&t->optim);
    bool have_grad = false; /* the others read this slot until the end of the last step: */
    for (int64_t j = 0; j < n_micro; j++) { /* its first backward overwrites it, later ones add */
        int64_t n;
        loss_total += micro_forward(t, first + j, &n, &correct);
        rows += n;
        const double t0 = tr_seconds();
        const double nested0 = t->phase[TR_PHASE_OPTIM] + t->phase[TR_PHASE_COMM];
        const bool last = j == n_micro - 1; /* only the last micro-step shares its gradient */
        tr_grad_hook hook = {.ready = shared_ready,
                             .layer_done = shared_layer_done,
                             .progress = shared_progress,
                             .ctx = t,
                             .splits = t->bucket_begin,
                             .n_splits = t->n_buckets};
        tr_model_backward(m, m->grads, t->xb, t->dZ, n, have_grad, last ? &hook : NULL);
        have_grad = true;
        /* reductions and updates done inside the hooks are counted as comm and optimizer */
        t->phase[TR_PHASE_BACKWARD] +=
            tr_seconds() - t0 - (t->phase[TR_PHASE_OPTIM] + t->phase[TR_PHASE_COMM] - nested0);
    }
    shared_layer_done(t, 0);
    const double t0 = tr_seconds();
    const double nested0 = t->phase[TR_PHASE_OPTIM] + t->phase[TR_PHASE_COMM];
    for (int spins = 0; t->updated < t->n_buckets; spins++) {
        shared_update_ready(t);
        if (t->updated < t->n_buckets)
            relax(spins); /* the others are still in backward; do not slow them down */
    }
    if (t->cfg->train.clip_norm > 0.0) { /* the global norm first, then the updates */
        double sq = 0.0;
        for (int k = 0; k < t->n_buckets; k++) {
            size_t sb, se;
            shard_of(t, k, &sb, &se);
            sq += range_sq_norm(t, sb, se);
        }
        int rc = tr_dist_sum_f64(t->dist, &sq, 1, err);
        if (rc)
            return rc;
        sq /= (double)(t->dist->size / t->dist->local_size); /* every node holds every shard */
        const float scale = clip_scale(t, sq);
        const double t1 = tr_seconds();
        for (int k = 0; k < t->n_buckets; k++) {
            size_t sb, se;
            shard_of(t, k, &sb, &se);
            update_range(t, sb, se, scale);
        }
        t->phase[TR_PHASE_OPTIM] += tr_seconds() - t1;
    }
    atomic_thread_fence(memory_order_seq_cst);
    /* the sum of the statistics is also the barrier: after it every shard is updated */
    double stats[5] = {loss_total, (double)correct, (double)rows, t->update_finite ? 0.0 : 1.0, stop_requested(t)};
    int rc = tr_dist_sum_f64(t->dist, stats, 5, err);
    t->stop_agreed = stats[4] > 0.0;
    atomic_thread_fence(memory_order_seq_cst);
    t->phase[TR_PHASE_COMM] += tr_seconds() - t0 - (t->phase[TR_PHASE_OPTIM] + t->phase[TR_PHASE_COMM] - nested0);
    if (rc)
        return rc;
    if (t->step_rc) {
        if (err)
            *err = t->step_err;
        return t->step_rc;
    }
    if (!isfinite(stats[0]))
        return diverged(t, "loss", err);
    if (stats[3] != 0.0)
        return diverged(t, "gradient", err);
    t->epoch_loss_sum += stats[0];
    t->epoch_correct += (int64_t)stats[1];
    t->epoch_rows += (int64_t)stats[2];
    t->step++;
    t->phase_steps++;
    return 0;
}

static int replicated_step(tr_trainer *t, int64_t step_in_epoch, tr_err *err);

/* Deterministic mode: the step's rows (in the epoch's order) are cut into chunks of
 * chunk_rows rows, the last one shorter; this rank computes the gradients of its
 * share of the chunks, each on one thread into its own buffer (t->micro[i], the
 * loss sum in t->micro_loss[i]), scaled by the step's whole denominator. Nothing here
 * depends on the ranks, threads or accumulation: only on the rows and chunk_rows. Returns
 * the number of chunks computed. */
static int64_t chunk_gradients(tr_trainer *t, int64_t step_in_epoch, int64_t *correct, int64_t *rows_done)
{
    tr_model *m = &t->model;
    const int L = m->n_layers;
    const int64_t C = t->cfg->train.chunk_rows;
    const int64_t *rows;
    int64_t n;
    tr_sampler_step_rows(&t->sampler, step_in_epoch, &rows, &n);
    double wsum = (double)n;
    if (t->loss.class_weights) {
        wsum = 0.0;
        for (int64_t i = 0; i < n; i++)
            wsum += t->loss.class_weights[(int64_t)t->data.train.y[rows[i]]];
    }
    const float scale = (float)(1.0 / tr_loss_denominator(&t->loss, n, wsum));
    /* contiguous shares, the larger ones first: with fewer chunks than ranks the low ranks
     * work and the others wait in the sum */
    const int64_t nc = (n + C - 1) / C, P = t->dist->size, r = t->dist->rank;
    const int64_t c0 = (r * nc + P - 1) / P, c1 = ((r + 1) * nc + P - 1) / P;
    if (t->threads > 1)
        openblas_set_num_threads(1); /* one thread per chunk: the kernels' order is fixed */
    for (int64_t k = c0; k < c1; k++) {
        const double t0 = tr_seconds();
        const int64_t *cr = rows + k * C;
        const int64_t nk = n - k * C < C ? n - k * C : C;
        gather_rows(t, &t->data.train, cr, nk);
        const double t1 = tr_seconds();
        t->fmode.step = t->step;
        t->fmode.rows = cr;
        t->fmode.global_rows = (double)nk; /* batch norm normalises the chunk */
        tr_model_forward(m, t->xb, nk, &t->fmode);
        double loss = tr_loss_compute(&t->loss, t->dZ, NULL, m->layer[L - 1].Z, m->layer[L - 1].A, t->yb, nk, scale);
        if (tr_loss_task(&t->loss) == TR_TASK_CLASSIFICATION)
            *correct += tr_loss_count_correct(&t->loss, m->layer[L - 1].Z, t->yb, nk);
        if (t->fault_nan_step == t->step + 1)
            t->dZ[0] = NAN;
        const double t2 = tr_seconds();
        tr_model_backward(m, t->micro[k - c0], t->xb, t->dZ, nk, false, NULL);
        t->micro_loss[k - c0] = loss;
        *rows_done += nk;
        t->phase[TR_PHASE_DATA] += t1 - t0;
        t->phase[TR_PHASE_FORWARD] += t2 - t1;
        t->phase[TR_PHASE_BACKWARD] += tr_seconds() - t2;
    }
    if (t->threads > 1)
        openblas_set_num_threads(t->threads);
    return c1 - c0;
}

int tr_trainer_step(tr_trainer *t, int64_t step_in_epoch, tr_err *err)
{
    t->optim.lr = tr_lr_at(&t->cfg->train, t->base_lr, t->epoch, t->step, t->lr_scale);
    int rc = t->node ? shared_step(t, step_in_epoch, err) : replicated_step(t, step_in_epoch, err);
    if (!rc && t->model.comm_error)
        rc = tr_fail(err, TR_EMPI, "summing batch-norm statistics over the ranks failed");
    return rc;
}

static int replicated_step(tr_trainer *t, int64_t step_in_epoch, tr_err *err)
{
    tr_sampler *s = &t->sampler;
    tr_model *m = &t->model;
    const int64_t n_micro = tr_sampler_step_micro_batches(s, step_in_epoch);
    const int64_t first = step_in_epoch * s->accumulate;
    double loss_total = 0.0;
    int64_t correct = 0, rows = 0;
    int rc = 0;

    if (t->cfg->train.deterministic) {
        const int64_t n_chunks = chunk_gradients(t, step_in_epoch, &correct, &rows);
        const double t0 = tr_seconds();
        int64_t counts[2] = {correct, rows}, totals[2];
        rc = tr_grad_sync_exact(t->sync, t->micro, t->micro_loss, (int)n_chunks, counts, m->grads, &loss_total, totals,
                                err);
        t->phase[TR_PHASE_COMM] += tr_seconds() - t0;
        if (rc == TR_EDIVERGED)
            return tr_fail(err, TR_EDIVERGED,
                           "training diverged at epoch %lld, step %lld: a loss or gradient is not finite on some rank "
                           "(try a lower [train] lr)",
                           (long long)t->epoch + 1, (long long)t->step + 1);
        if (rc)
            return rc;
        correct = totals[0];
        rows = totals[1];
        double stop = stop_requested(t);
        rc = tr_dist_max_f64(t->dist, &stop, 1, err);
        if (rc)
            return rc;
        t->stop_agreed = stop > 0.0;
    } else {
        /* one rank: each layer is updated as soon as backward is done with it, while its
         * gradient is still in cache; several ranks: after the bucketed allreduce */
        /* (clipping needs the whole gradient's norm first) */
        const bool local = t->dist->size == 1 && t->cfg->train.clip_norm <= 0.0;
        if (local) {
            tr_optim_begin_step(&t->optim);
            t->local_top = m->n_tensors;
            t->update_finite = true;
        }
        for (int64_t j = 0; j < n_micro; j++) {
            int64_t n;
            loss_total += micro_forward(t, first + j, &n, &correct);
            rows += n;
            const double t0 = tr_seconds();
            const double opt0 = t->phase[TR_PHASE_OPTIM];
            tr_grad_hook hook = {.layer_done = local_layer_done, .ctx = t};
            const bool last = j == n_micro - 1; /* only the last micro-step communicates */
            if (last && !local)
                tr_grad_sync_begin(t->sync, m->grads, &hook);
            /* the optimizer left the gradient zero: every micro-step adds into it */
            tr_model_backward(m, m->grads, t->xb, t->dZ, n, true, last ? &hook : NULL);
            t->phase[TR_PHASE_BACKWARD] += tr_seconds() - t0 - (t->phase[TR_PHASE_OPTIM] - opt0);
        }
        if (local) {
            t->stop_agreed = stop_requested(t) > 0.0;
            if (!isfinite(loss_total))
                return diverged(t, "loss", err);
            if (!t->update_finite)
                return diverged(t, "gradient", err);
        } else {
            rc = tr_grad_sync_finish(t->sync, &t->phase[TR_PHASE_COMM], err);
            double stats[4] = {loss_total, (double)correct, (double)rows, stop_requested(t)};
            if (!rc)
                rc = tr_dist_sum_f64(t->dist, stats, 4, err);
            if (rc)
                return rc;
            t->stop_agreed = stats[3] > 0.0;
            loss_total = stats[0];
            correct = (int64_t)stats[1];
            rows = (int64_t)stats[2];
            /* the reduced values are the same on every rank, so every rank decides the same */
            if (!isfinite(loss_total))
                return diverged(t, "loss", err);
        }
    }
    t->epoch_loss_sum += loss_total;
    t->epoch_correct += correct;
    t->epoch_rows += rows;

    if (t->cfg->train.deterministic || t->dist->size > 1 || t->cfg->train.clip_norm > 0.0) {
        /* the summed gradient is the same on every rank: so are the norm and the update */
        const double t0 = tr_seconds();
        tr_optim_begin_step(&t->optim);
        t->update_finite = true; /* checked in the optimizer's own pass over the gradient */
        const float scale = clip_scale(t, t->cfg->train.clip_norm > 0.0 ? range_sq_norm(t, 0, m->n_params) : 0.0);
        update_range(t, 0, m->n_params, scale);
        t->phase[TR_PHASE_OPTIM] += tr_seconds() - t0;
        if (!t->update_finite)
            return diverged(t, "gradient", err);
    }
    t->step++;
    t->phase_steps++;
    return 0;
}

int tr_trainer_evaluate(tr_trainer *t, const tr_dataset *ds, tr_metrics *met, tr_err *err)
{
    const double t0 = tr_seconds();
    tr_model *mod = &t->model;
    tr_dist *d = t->dist;
    const int L = mod->n_layers;
    const int64_t O = t->loss.width, F = ds->cols, T = ds->tcols, E = t->cfg->train.eval_batch;
    /* every rank holds the whole set: its rows are its share of whole chunks (possibly none) */
    int64_t b, e;
    tr_chunk_share(ds->rows, E, d->rank, d->size, &b, &e);
    for (int64_t r0 = b; r0 < e; r0 += E) {
        const int64_t n = e - r0 < E ? e - r0 : E;
        tr_model_forward(mod, ds->X + r0 * F, n, NULL);
        const float *Z = mod->layer[L - 1].Z, *A = mod->layer[L - 1].A;
        memcpy(t->eval_Z + r0 * O, Z, (size_t)(n * O) * sizeof(float));
        memcpy(t->eval_A + r0 * O, A, (size_t)(n * O) * sizeof(float));
        tr_loss_compute(&t->loss, NULL, t->eval_loss + r0, Z, A, ds->y + r0 * T, n, 1.0f);
    }
    /* every rank gets every row's results, so all compute the same metrics */
    int rc = tr_dist_allgather_f32(d, t->eval_Z, b * O, (e - b) * O, err);
    if (!rc)
        rc = tr_dist_allgather_f32(d, t->eval_A, b * O, (e - b) * O, err);
    if (!rc)
        rc = tr_dist_allgather_f64(d, t->eval_loss, b, e - b, err);
    if (!rc)
        tr_metrics_compute(met, &t->loss, t->eval_Z, t->eval_A, ds->y, t->eval_loss, ds->rows);
    t->phase[TR_PHASE_EVAL] += tr_seconds() - t0;
    return rc;
}

int tr_trainer_sync_buffers(tr_trainer *t, tr_err *err)
{
    tr_model *m = &t->model;
    if (t->dist->size == 1 || m->n_buffers == 0)
        return 0;
    if (tr_fault_mpi("sync_buffers")) /* a test hook (fault.h); every rank fails alike */
        return tr_fail(err, TR_EMPI, "MPI_Bcast (batch-norm running statistics) failed: injected fault");
    int rc = tr_dist_bcast(t->dist, m->buffers, m->n_buffer_floats * sizeof(float), 0, err);
    for (int l = 0; !rc && l < m->n_layers; l++)
        rc = tr_dist_bcast(t->dist, &m->layer[l].bn_batches, sizeof(int64_t), 0, err);
    return rc;
}

double tr_trainer_penalty(const tr_trainer *t)
{
    const tr_train_config *tc = &t->cfg->train;
    if (tc->l1 == 0.0 && tc->l2 == 0.0)
        return 0.0;
    double p = 0.0;
    for (int i = 0; i < t->model.n_tensors; i++) {
        const tr_tensor *T = &t->model.tensor[i];
        if (tc->penalize_all || T->is_weight)
            p += tr_penalty(t->model.params, T->offset, T->offset + T->size, tc->l1, tc->l2);
    }
    return p;
}

int tr_trainer_evaluate_all(tr_trainer *t, tr_err *err)
{
    int rc = tr_trainer_sync_buffers(t, err); /* rank 0's running statistics (sync_bn = false) */
    t->has_train_metrics = t->has_val_metrics = t->has_test_metrics = false;
    if (!rc && t->cfg->train.eval_train) {
        rc = tr_trainer_evaluate(t, &t->data.train, &t->train_metrics, err);
        t->has_train_metrics = !rc;
    }
    if (!rc && t->data.val.rows > 0) {
        rc = tr_trainer_evaluate(t, &t->data.val, &t->val_metrics, err);
        t->has_val_metrics = !rc;
    }
    if (!rc && t->data.test.rows > 0) {
        rc = tr_trainer_evaluate(t, &t->data.test, &t->test_metrics, err);
        t->has_test_metrics = !rc;
    }
    bool same = true;
    if (!rc)
        rc = tr_dist_same_everywhere(t->dist, t->model.params, t->model.n_params * sizeof(float), &same, err);
    if (!rc && !same)
        rc = tr_fail(err, TR_EINTERNAL, "the model replicas differ between ranks after %lld steps", (long long)t->step);
    return rc;
}
