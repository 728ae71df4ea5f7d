/*
 * train.c: the training loop, data-parallel: building the trainer, one optimizer step
 * (tr_trainer_step reads as the data flow: rows -> forward -> loss -> backward -> the
 * gradient exchange of reduce.c, which sums and applies the update), and the distributed
 * evaluation. Nothing is allocated inside the loop.
 */
#include "trainer/train.h"

#include "trainer/data_node.h"
#include "trainer/prefetch.h"
#include "trainer/watchdog.h"

#include "trainer/clock.h"
#include "trainer/fault.h"
#include "trainer/sched.h"

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>


static int alloc_array(void **p, size_t n, size_t elem, tr_err *err)
{
    *p = calloc(n ? n : 1, elem);
    if (!*p)
        return tr_fail(err, TR_ENOMEM, "cannot allocate %zu bytes of training buffers", n * elem);
    return 0;
}

/* Threads of the products per rank (both engines: gemm.h): the config, else the environment,
 * else this rank's share of the CPUs it may run on (dist.h: a rank that mpirun or srun bound
 * to one core gets 1 thread, not the node's CPUs divided by the ranks: two threads on one core
 * take turns at half speed);
 * 1 in deterministic mode, so every rank runs the same kernels. */
static int choose_threads(const tr_config *c, const tr_dist *d)
{
    if (c->train.threads > 0)
        return c->train.threads;
    if (getenv("OPENBLAS_NUM_THREADS") || getenv("OMP_NUM_THREADS"))
        return 0;
    if (c->train.deterministic)
        return 1;
    /* a small network gains nothing from threads: OpenBLAS's hand-over costs more than the
     * products (the moons net, 15k multiply-adds a step: 4.9 us on one thread, 7.2 on two);
     * from about a million per rank and step they pay (784-256-128-10 at batch 128, 30M:
     * 1.5-1.8 ms on one thread, 1.1-1.2 on two) */
    double macs = 0.0;
    for (int l = 0; l < c->model.n_layers; l++)
        macs += (double)c->model.widths[l] * (double)c->model.widths[l + 1];
    const int64_t batch = c->train.batch_size > 0 ? c->train.batch_size : INT64_C(1) << 20;
    if (macs * (double)batch / (double)(d->size > 0 ? d->size : 1) < 1e6)
        return 1;
    return d->cpus > 0 ? d->cpus : 1;
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
    if (tr_loss_takes_class_index(&t->loss)) {
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

/* The loss, from the configuration (local). */
static int init_loss(tr_trainer *t, const tr_config *c, tr_err *err)
{
    const int L = c->model.n_layers;
    t->loss = (tr_loss){.kind = c->train.loss,
                        .reduction = c->train.reduction,
                        .width = c->model.widths[L],
                        .out_act = c->model.act[L - 1],
                        .act_params = c->model.act_params,
                        .huber_delta = (float)c->train.huber_delta,
                        .pos_weight = (float)c->train.pos_weight,
                        .label_smoothing = (float)c->train.label_smoothing};
    return tr_loss_check(&t->loss, err);
}

/* Everything a rank builds on its own once the data are loaded: model, optimizer, buffers.
 * No collective here: a failure on one rank must not leave the others waiting in one. */
/* The batch, evaluation and read-ahead buffers for batches of max_local rows (max_rows with
 * the evaluation's), and the metrics. */
static int alloc_buffers(tr_trainer *t, const tr_config *c, int64_t max_local, int64_t max_rows, tr_err *err)
{
    const int64_t F = c->model.widths[0], O = t->loss.width, T = tr_loss_target_width(&t->loss);
    int64_t eval_rows = t->data.test.rows > t->data.val.rows ? t->data.test.rows : t->data.val.rows;
    if (c->train.eval_train && t->data.train.rows > eval_rows)
        eval_rows = t->data.train.rows;
    int rc = alloc_array((void **)&t->xb, (size_t)(max_local * F), sizeof(float), err);
    if (!rc)
        rc = alloc_array((void **)&t->yb, (size_t)(max_local * T), sizeof(float), err);
    if (!rc)
        rc = alloc_array((void **)&t->dZ, (size_t)(max_rows * O), sizeof(float), err);
    if (!rc)
        rc = alloc_array((void **)&t->eval_Z, (size_t)(eval_rows * O), sizeof(float), err);
    /* a shuffled mapped file is read in single rows (global) or in the blocks the trainer asks
     * for ahead (block): the system's own read-ahead would read rows not needed yet */
    for (int k = 0; k < 2; k++)
        tr_map_advise(&t->data.maps[k], c->train.shuffle != TR_SHUFFLE_NONE ? TR_MAP_RANDOM : TR_MAP_RUNS);
    /* rows of a mapped file not all in memory: gathered ahead by a helper thread, which takes
     * the waits for the disk (a file in the page cache is gathered in place, like memory: the
     * hand-over between threads would cost more than the copy) */
    if (!rc && t->data.train.x_borrowed && !tr_map_resident(&t->data.maps[0]))
        rc = tr_prefetch_create(&t->prefetch, (size_t)(max_local * F), (size_t)(max_local * T),
                                c->train.shuffle == TR_SHUFFLE_BLOCK, err);
    if (!rc && t->prefetch && c->train.shuffle == TR_SHUFFLE_BLOCK) { /* two windows ahead (read_ahead) */
        const int64_t B = t->sampler.block_rows, W = B * t->sampler.window_blocks, n = t->data.train.rows;
        const size_t cap = (size_t)((2 * W < n ? 2 * W : n) + 2 * B); /* tr_sampler_block_rows' bound */
        rc = alloc_array((void **)&t->ahead[0], cap, sizeof(int64_t), err);
        if (!rc)
            rc = alloc_array((void **)&t->ahead[1], cap, sizeof(int64_t), err);
        t->ahead_epoch = -1;
    }
    if (!rc) /* evaluation chunks of views (dataset.h) are gathered here */
        rc = alloc_array((void **)&t->eval_x, (size_t)(c->train.eval_batch * F), sizeof(float), err);
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
    if (!rc)
        rc = tr_metrics_init(&t->ema_val_metrics, task, K, err);
    if (!rc)
        rc = tr_metrics_init(&t->ema_test_metrics, task, K, err);
    return rc;
}

static int init_local(tr_trainer *t, const tr_config *c, tr_dist *d, tr_err *err)
{
    int rc = set_class_weights(t, err);
    if (rc)
        return rc;
    rc = tr_sampler_init(&t->sampler, t->data.train.rows, c->train.batch_size, c->train.accumulate,
                         c->train.shuffle, c->train.drop_last, c->train.seed, d->rank, d->size, err);
    if (!rc && c->train.shuffle == TR_SHUFFLE_BLOCK)
        rc = tr_sampler_use_blocks(&t->sampler, c->train.shuffle_block, c->train.shuffle_window,
                                   t->data.train.origin, err); /* runs of the file, also after a split */
    if (rc)
        return rc;
    if (tr_sampler_micro_batches(&t->sampler) < 1)
        return tr_fail(err, TR_EDATA, "%s: %lld training rows make no full batch of %lld with drop_last = true",
                       t->data.source, (long long)t->data.train.rows, (long long)t->sampler.batch);
    /* OneCycleLR divides by its first phase's length, pct_start x total steps - 1 */
    const int64_t total_steps = c->train.epochs * tr_sampler_steps(&t->sampler);
    if (c->train.lr_schedule == TR_SCHED_ONECYCLE && total_steps > 0 &&
        c->train.onecycle_pct_start * (double)total_steps <= 1.0)
        return tr_fail(err, TR_ECONFIG, "[train] lr_schedule = onecycle: onecycle_pct_start %g x %lld steps (%lld "
                                        "epochs) leaves its rising phase no step: train longer or raise it",
                       c->train.onecycle_pct_start, (long long)total_steps, (long long)c->train.epochs);
    /* deterministic mode computes chunks of chunk_rows rows, dealt out to the ranks */
    int64_t max_local = tr_sampler_max_local_rows(&t->sampler), step_chunks = 0;
    if (c->train.deterministic) {
        int64_t step_rows = t->sampler.batch * t->sampler.accumulate;
        if (step_rows > t->data.train.rows)
            step_rows = t->data.train.rows;
        const int64_t chunks = (step_rows + c->train.chunk_rows - 1) / c->train.chunk_rows;
        t->n_chunk_bufs = (chunks + d->size - 1) / d->size;
        step_chunks = chunks;
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
    t->bn_record_size = tr_model_bn_record_size(&t->model);
    if (step_chunks > 0 && t->bn_record_size > 0) /* deterministic mode with batch norm */
        rc = alloc_array((void **)&t->bn_records, (size_t)step_chunks * t->bn_record_size, sizeof(double), err);
    if (rc)
        return rc;
    rc = tr_optim_init(&t->optim, &c->train.optim, t->model.n_params, err);
    if (!rc)
        rc = tr_ema_init(&t->ema, c->train.ema_decay, &t->model, err);
    if (rc)
        return rc;
    tr_optim_set_rules(&t->optim, &(tr_optim_rules){.l1 = c->train.l1,
                                                    .l2 = c->train.l2,
                                                    .clip = c->train.clip_value,
                                                    .penalize_all = c->train.penalize_all});
    tr_phase_clock_init(&t->clock, t->phase);
    /* batch norm sums its statistics over the ranks (sync_bn), or normalises each rank's
     * slice; in deterministic mode each chunk */
    t->fmode = (tr_forward_mode){.seed = c->train.seed,
                                 .sum = c->train.sync_bn && d->size > 1 && !c->train.deterministic ? sum_over_ranks
                                                                                                   : NULL,
                                 .ctx = d};
    t->batch_factor = tr_lr_batch_factor(&c->train, t->sampler.batch * t->sampler.accumulate);
    t->base_lr = c->train.optim.lr * t->batch_factor;
    t->lr_scale = 1.0;
    return alloc_buffers(t, c, max_local, max_rows, err);
}

/* The collective part, reached by every rank once all have built their part: the check that
 * the replicas start equal, and the gradient exchange. */
static void node_barrier(void *dist) { tr_dist_node_barrier(dist); }

/* The sampler's order (8 bytes a training row, 16 with a block shuffle after a shuffled split)
 * held once per node, like the data: local rank 0 writes it, the others read it. */
static int share_sampler(tr_trainer *t, tr_dist *d, tr_err *err)
{
    void *base;
    const int64_t rows = tr_sampler_order_rows(&t->sampler);
    int rc = tr_node_mem_alloc(d, (size_t)rows * sizeof(int64_t), &base, &t->sampler_mem, err);
    if (rc || !base)
        return rc; /* alone on the node: the sampler keeps its own */
    tr_sampler_share(&t->sampler, base, d->local_rank == 0, node_barrier, d);
    tr_dist_node_barrier(d); /* the writer's copy of the locality is in */
    return 0;
}

/* gemm = auto leaves the fixed choice only for an engine this much faster on the model. */
#define GEMM_AUTO_MARGIN 0.10

/* [train] gemm and precision: the engine every rank computes with. auto times the engines on
 * this model's products at this rank's rows (the timings summed over the ranks decide, so all
 * choose alike); in deterministic mode it takes the fixed choice, since the bits depend on the
 * engine and a timing may come out either way. Collective. */
static int set_gemm(tr_trainer *t, const tr_config *c, tr_dist *d, tr_err *err)
{
    const tr_precision p = c->train.precision;
    tr_gemm_engine e = c->train.gemm;
    t->gemm_how = "set";
    for (int k = 0; k < TR_GEMM_ENGINE_COUNT; k++)
        t->gemm_seconds[k] = NAN;
    if (e == TR_GEMM_AUTO && c->train.deterministic) {
        e = tr_gemm_fixed_choice(p);
        t->gemm_how = "auto: deterministic mode's fixed choice";
    } else if (e == TR_GEMM_AUTO) {
        tr_gemm_shape shapes[3 * TR_MAX_LAYERS];
        const int n = tr_model_gemm_shapes(&t->model, tr_sampler_max_local_rows(&t->sampler), c->train.accumulate > 1,
                                           shapes);
        double *sec = t->gemm_seconds;
        int rc = tr_dist_agree(d, tr_gemm_time_engines(shapes, n, p, sec, err));
        if (!rc)
            rc = tr_dist_sum_f64(d, sec, TR_GEMM_ENGINE_COUNT, err);
        if (rc)
            return rc;
        /* the fixed choice stays unless another engine is clearly faster: timings within the
         * margin would pick either from run to run, and with it the rounding */
        e = tr_gemm_fixed_choice(p); /* none can: its error follows */
        for (int k = TR_GEMM_AUTO + 1; k < TR_GEMM_ENGINE_COUNT; k++)
            if (isfinite(sec[k]) && (!isfinite(sec[e]) || sec[k] < (1.0 - GEMM_AUTO_MARGIN) * sec[e]))
                e = (tr_gemm_engine)k;
        t->gemm_how = "auto: timed";
    }
    t->gemm = e;
    return tr_dist_agree(d, tr_model_set_gemm(&t->model, e, p, err));
}

static int init_shared(tr_trainer *t, const tr_config *c, tr_dist *d, tr_err *err)
{
    /* every rank derives the same parameters from the seed; check rather than trust */
    bool same;
    int rc = tr_dist_same_everywhere(d, t->model.params, t->model.n_params * sizeof(float), &same, err);
    if (!rc && !same)
        rc = tr_fail(err, TR_EINTERNAL, "initial parameters differ between ranks");
    if (rc)
        return rc;
    rc = share_sampler(t, d, err);
    if (rc)
        return rc;
    tr_watch_begin("setting up the gradient exchange"); /* its collectives, as one wait */
    rc = tr_reduce_create(&t->reduce, d, &t->model, &t->optim, &c->train, t->n_chunk_bufs, &t->clock, err);
    tr_watch_end();
    return rc;
}

/* tr_trainer_init, with the data loaded here (data NULL) or borrowed. */
static int init_trainer(tr_trainer *t, const tr_config *c, tr_dist *d, const tr_data *data, FILE *out, tr_err *err)
{
    memset(t, 0, sizeof *t);
    t->cfg = c;
    t->dist = d;
    t->out = d->rank == 0 ? out : NULL;
    t->threads = tr_gemm_set_threads(choose_threads(c, d));
    if (t->threads > d->cpus && d->rank == 0) /* set by hand or the environment */
        fprintf(stderr,
                "trainer: warning: %d BLAS threads per rank, but rank 0 has %d CPU%s to itself (of %d in its affinity "
                "mask): the threads take turns. Give each rank more cores (mpirun --map-by slot:PE=%d, srun "
                "--cpus-per-task=%d) or set [train] threads = %d\n",
                t->threads, d->cpus, d->cpus == 1 ? "" : "s", d->cpus_allowed, t->threads, t->threads, d->cpus);
    /* first: loading waits on the node's loading rank */
    int rc = tr_watchdog_start(d, c->train.watchdog, err);
    if (!rc)
        rc = tr_dist_agree(d, init_loss(t, c, err));
    if (!rc && data) { /* a search's: the sets are someone else's; this model must fit them */
        t->data = *data;
        t->data_borrowed = true;
        t->data.fold_of = NULL; /* the search stores the folds once */
        rc = tr_dist_agree(d, tr_data_check_fit(&t->data, c, &t->loss, err));
    } else if (!rc) { /* once per node (collective, agreed inside) */
        rc = tr_data_load_node(&t->data, c, &t->loss, d, err);
    }
    if (!rc)
        rc = tr_dist_agree(d, init_local(t, c, d, err));
    if (!rc)
        rc = set_gemm(t, c, d, err);
    if (!rc)
        rc = tr_dist_agree(d, init_shared(t, c, d, err));
    if (rc)
        return rc;

    t->fault_nan_step = tr_fault_nan_step(d->rank); /* a test hook (fault.h) */
    return rc;
}

int tr_trainer_init(tr_trainer *t, const tr_config *c, tr_dist *d, FILE *out, tr_err *err)
{
    return init_trainer(t, c, d, NULL, out, err);
}

int tr_trainer_init_with_data(tr_trainer *t, const tr_config *c, tr_dist *d, const tr_data *data, FILE *out,
                              tr_err *err)
{
    return init_trainer(t, c, d, data, out, err);
}

void tr_trainer_settle_config(const tr_trainer *t, tr_config *c)
{
    if (t->data.class_names && tr_class_name_count(t->data.class_names) == tr_loss_classes(&t->loss))
        tr_config_adopt_class_names(c, t->data.class_names); /* every rank holds the same names */
    /* config.ini and the checkpoints store the engine that ran */
    tr_config_record(c, "train", "gemm", tr_name_of(tr_gemm_engine_names, t->gemm), t->gemm_how);
}

int tr_trainer_load_data(tr_data *data, const tr_config *c, tr_dist *d, tr_err *err)
{
    tr_trainer probe;
    memset(&probe, 0, sizeof probe);
    int rc = tr_dist_agree(d, init_loss(&probe, c, err));
    if (!rc)
        rc = tr_data_load_node(data, c, &probe.loss, d, err);
    return rc;
}

void tr_trainer_free(tr_trainer *t)
{
    if (!t)
        return;
    tr_watchdog_stop();
    tr_prefetch_free(t->prefetch); /* first: it may be reading the data into a buffer */
    t->prefetch = NULL;
    free(t->ahead[0]);
    free(t->ahead[1]);
    t->ahead[0] = t->ahead[1] = NULL;
    if (!t->data_borrowed)
        tr_data_free(&t->data);
    tr_sampler_free(&t->sampler);
    tr_node_mem_free(t->sampler_mem); /* after the sampler that points into it */
    tr_model_free(&t->model); /* before the shared memory it may point into */
    tr_optim_free(&t->optim);
    tr_ema_free(&t->ema);
    tr_reduce_free(t->reduce);
    free(t->bn_records);
    free(t->xb);
    free(t->yb);
    free(t->dZ);
    free(t->eval_Z);
    free(t->eval_x);
    free(t->eval_A);
    free(t->eval_loss);
    tr_metrics_free(&t->train_metrics);
    tr_metrics_free(&t->val_metrics);
    tr_metrics_free(&t->test_metrics);
    tr_metrics_free(&t->ema_val_metrics);
    tr_metrics_free(&t->ema_test_metrics);
    memset(t, 0, sizeof *t);
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
    const bool fp16 = t->cfg->train.grad_compression == TR_COMPRESS_FP16 && t->dist->size > 1;
    return tr_fail(err, TR_EDIVERGED,
                   "training diverged at epoch %lld, step %lld: the %s is not finite (try a lower [train] lr%s)",
                   (long long)t->epoch + 1, (long long)t->step + 1, what,
                   fp16 ? ", or grad_compression = bf16: fp16 sums end at 65504" : "");
}

/* Asks the memory system for the listed rows (into the outer caches) ahead of their use. */
static void prefetch_rows(const tr_dataset *ds, const int64_t *rows, int64_t n)
{
    const size_t F = (size_t)ds->cols, T = (size_t)ds->tcols;
    for (int64_t i = 0; i < n; i++) {
        const char *x = (const char *)tr_dataset_stored_row(ds, rows[i]);
        for (size_t b = 0; b < F * sizeof(float); b += 64)
            __builtin_prefetch(x + b, 0, 1);
        __builtin_prefetch(ds->y + (size_t)rows[i] * T, 0, 1);
    }
}

/* The batch's rows into xb, yb when the exchange streamed the last step's parameters to
 * memory (reduce.h): the first layer's weights, which the forward pass reads first, are
 * requested between the rows, so their loads are in flight with the gather's own (784 net at
 * np=2: forward -0.026 ms, gather +0.015 ms). */
static void gather_with_weights(tr_trainer *t, const int64_t *rows, int64_t n)
{
    const tr_dataset *ds = &t->data.train;
    const tr_layer *L0 = &t->model.layer[0];
    const char *w = (const char *)L0->W;
    const size_t bytes = (size_t)(L0->in * L0->out) * sizeof(float);
    const size_t per_row = n > 0 ? (bytes / (size_t)n + 63) / 64 * 64 : bytes;
    size_t at = 0;
    for (int64_t i = 0; i < n; i++) {
        for (const size_t end = at + per_row < bytes ? at + per_row : bytes; at < end; at += 64)
            __builtin_prefetch(w + at, 0, 3);
        tr_dataset_gather(ds, rows + i, 1, t->xb + (size_t)(i * ds->cols), t->yb + (size_t)(i * ds->tcols));
    }
}

/* Block shuffle of a mapped file: the rows the reader (prefetch.h) should ask the disk for with
 * the job of micro-batch j, the rest of this window and the whole next one, in runs of the
 * file; *n = 0 once asked. Two buffers by turns: the reader may still read the last list. */
static const int64_t *read_ahead(tr_trainer *t, int64_t j, int64_t *n)
{
    tr_sampler *s = &t->sampler;
    *n = 0;
    if (!t->ahead[0])
        return NULL;
    const int64_t W = s->block_rows * s->window_blocks, at = j * s->batch;
    if (t->ahead_epoch != s->epoch || t->ahead_pos < at) { /* a new epoch, or a resumed one */
        t->ahead_epoch = s->epoch;
        t->ahead_pos = at;
    }
    int64_t until = (at / W + 2) * W;
    if (until > s->n)
        until = s->n;
    if (t->ahead_pos >= until)
        return NULL;
    int64_t *list = t->ahead[t->ahead_turn];
    t->ahead_turn ^= 1;
    *n = tr_sampler_block_rows(s, t->ahead_pos, until, list, &t->ahead_pos);
    return list;
}

/* Forward, loss and dZ of this rank's rows of micro-batch j; returns the rank's loss sum. */
static double micro_forward(tr_trainer *t, int64_t j, int64_t *n_rows, int64_t *correct)
{
    tr_sampler *s = &t->sampler;
    tr_model *m = &t->model;
    const int L = m->n_layers;
    int64_t G, n;
    const int64_t *rows;
    tr_phase_enter(&t->clock, TR_PHASE_DATA);
    tr_sampler_micro(s, j, &G, &rows, &n);
    const int64_t tag = s->epoch * ((int64_t)1 << 32) + j; /* micro-batch j of this epoch */
    if (t->prefetch && tr_prefetch_take(t->prefetch, tag, &t->xb, &t->yb))
        ; /* the helper gathered it */
    else if (tr_reduce_streams_params(t->reduce))
        gather_with_weights(t, rows, n);
    else
        tr_dataset_gather(&t->data.train, rows, n, t->xb, t->yb);
    if (j + 1 < tr_sampler_micro_batches(s)) { /* the next batch's rows load while this one computes */
        int64_t G2, n2;
        const int64_t *rows2;
        tr_sampler_micro(s, j + 1, &G2, &rows2, &n2);
        if (t->prefetch) { /* a helper thread takes the page faults of a mapped file */
            int64_t n_ahead;
            const int64_t *ahead = read_ahead(t, j + 1, &n_ahead);
            tr_prefetch_start(t->prefetch, &t->data.train, rows2, n2, tag + 1, ahead, n_ahead);
        }
        else
            prefetch_rows(&t->data.train, rows2, n2);
    }
    tr_phase_leave(&t->clock);
    tr_phase_enter(&t->clock, TR_PHASE_FORWARD);
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
        *correct += tr_loss_count_correct(&t->loss, m->layer[L - 1].Z, m->layer[L - 1].A, t->yb, n);
    if (t->fault_nan_step == t->step + 1)
        t->dZ[0] = NAN;
    tr_phase_leave(&t->clock);
    return loss;
}

/* Deterministic mode: the step's rows (in the epoch's order) are cut into chunks of
 * chunk_rows rows, the last one shorter; this rank computes the gradients of its share of
 * the chunks, each on one thread into its own buffer (tr_reduce_chunk), scaled by the
 * step's whole denominator. Nothing here depends on the ranks, threads or accumulation:
 * only on the rows and chunk_rows. Returns this rank's loss sum. */
static double chunk_gradients(tr_trainer *t, int64_t step_in_epoch, int64_t *correct, int64_t *rows_done)
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
        tr_gemm_set_threads(1); /* one thread per chunk: the kernels' order is fixed */
    double loss_sum = 0.0;
    for (int64_t k = c0; k < c1; k++) {
        tr_phase_enter(&t->clock, TR_PHASE_DATA);
        const int64_t *cr = rows + k * C;
        const int64_t nk = n - k * C < C ? n - k * C : C;
        tr_dataset_gather(&t->data.train, cr, nk, t->xb, t->yb);
        tr_phase_leave(&t->clock);
        tr_phase_enter(&t->clock, TR_PHASE_FORWARD);
        t->fmode.step = t->step;
        t->fmode.rows = cr;
        t->fmode.global_rows = (double)nk; /* batch norm normalises the chunk */
        t->fmode.bn_record = t->bn_records ? t->bn_records + (size_t)k * t->bn_record_size : NULL;
        tr_model_forward(m, t->xb, nk, &t->fmode);
        t->fmode.bn_record = NULL;
        double loss = tr_loss_compute(&t->loss, t->dZ, NULL, m->layer[L - 1].Z, m->layer[L - 1].A, t->yb, nk, scale);
        if (tr_loss_task(&t->loss) == TR_TASK_CLASSIFICATION)
            *correct += tr_loss_count_correct(&t->loss, m->layer[L - 1].Z, m->layer[L - 1].A, t->yb, nk);
        if (t->fault_nan_step == t->step + 1)
            t->dZ[0] = NAN;
        tr_phase_leave(&t->clock);
        tr_phase_enter(&t->clock, TR_PHASE_BACKWARD);
        tr_model_backward(m, tr_reduce_chunk(t->reduce, k - c0, loss), t->xb, t->dZ, nk, false, NULL);
        tr_phase_leave(&t->clock);
        loss_sum += loss;
        *rows_done += nk;
    }
    if (t->threads > 1)
        tr_gemm_set_threads(t->threads);
    if (t->bn_records) { /* every chunk's batch-norm statistics, applied in chunk order on every rank */
        const int64_t R = (int64_t)t->bn_record_size;
        if (tr_dist_allgather_f64(t->dist, t->bn_records, c0 * R, (c1 - c0) * R, NULL) && !m->comm_error)
            m->comm_error = 1;
        for (int64_t k = 0; k < nc; k++)
            tr_model_bn_apply(m, t->bn_records + k * R);
    }
    return loss_sum;
}

bool tr_trainer_logs_step(const tr_trainer *t, int64_t step)
{
    const int64_t every = t->cfg->output.log_every_steps;
    return every > 0 && step % every == 0;
}

/*
 * One optimizer step:
 *   for each micro-batch of the step: gather this rank's rows -> forward -> loss and dZ
 *       (scaled by 1 / (accumulate * global denominator)) -> backward into the gradient;
 *       the last backward carries the exchange's hook, which starts summing (and, where the
 *       strategy allows, updating) layers as backward completes them
 *   (deterministic mode: chunks of chunk_rows rows instead of micro-batches)
 *   finish the exchange: the summed gradient, the clipping norm, the optimizer update and
 *   the step's statistics, identical on every rank; then the divergence check
 */
int tr_trainer_step(tr_trainer *t, int64_t step_in_epoch, tr_err *err)
{
    tr_model *m = &t->model;
    const double began = tr_step_seconds();
    const int64_t total_steps = t->cfg->train.epochs * tr_sampler_steps(&t->sampler);
    t->optim.lr = tr_lr_at(&t->cfg->train, t->base_lr, t->epoch, t->step, total_steps, t->lr_scale) *
                  tr_lr_batch_warmup(&t->cfg->train, t->batch_factor, t->step, tr_sampler_steps(&t->sampler));
    double momentum;
    if (tr_momentum_at(&t->cfg->train, t->step, total_steps, &momentum))
        *(tr_optim_cycles_beta1(t->optim.cfg.kind) ? &t->optim.cfg.beta1 : &t->optim.cfg.momentum) = momentum;
    tr_step_stats st = {0};
    tr_reduce_measure_norm(t->reduce, tr_trainer_logs_step(t, t->step + 1));
    tr_reduce_begin(t->reduce);
    tr_model_hold_weights(m, true); /* the update comes after every forward pass of the step */
    if (tr_reduce_kind_of(t->reduce) == TR_REDUCE_EXACT) {
        st.loss = chunk_gradients(t, step_in_epoch, &st.correct, &st.rows);
    } else {
        const int64_t n_micro = tr_sampler_step_micro_batches(&t->sampler, step_in_epoch);
        const int64_t first = step_in_epoch * t->sampler.accumulate;
        for (int64_t j = 0; j < n_micro; j++) {
            int64_t n;
            st.loss += micro_forward(t, first + j, &n, &st.correct);
            st.rows += n;
            /* reductions and updates inside the hooks open their own phases */
            tr_phase_enter(&t->clock, TR_PHASE_BACKWARD);
            const tr_grad_hook *hook = tr_reduce_hook(t->reduce, j == n_micro - 1);
            tr_model_backward(m, m->grads, t->xb, t->dZ, n, tr_reduce_adds(t->reduce, j), hook);
            tr_phase_leave(&t->clock);
        }
    }
    tr_model_hold_weights(m, false);
    st.stop = stop_requested(t) > 0.0;
    int rc = tr_reduce_finish(t->reduce, &st, err);
    t->stop_agreed = st.stop;
    if (!rc) /* a failed product wrote NaN: every rank sees the step as non-finite; this one says why */
        rc = tr_gemm_failed(m->gemm, err);
    if (!rc && st.nonfinite)
        rc = diverged(t, st.nonfinite, err);
    if (!rc && m->comm_error)
        rc = tr_fail(err, TR_EMPI, "summing batch-norm statistics over the ranks failed");
    if (rc)
        return rc;
    if (tr_ema_on(&t->ema)) { /* the average's update is the optimizer's work */
        tr_phase_enter(&t->clock, TR_PHASE_OPTIM);
        tr_ema_update(&t->ema, m);
        tr_phase_leave(&t->clock);
    }
    t->step_loss = st.loss / tr_loss_denominator(&t->loss, st.rows, (double)st.rows);
    t->grad_norm = st.grad_norm;
    t->epoch_loss_sum += st.loss;
    t->epoch_correct += st.correct;
    t->epoch_rows += st.rows;
    t->step++;
    t->phase_steps++;
    tr_watch_step(t->step, tr_step_seconds() - began); /* the watchdog's deadline follows the step time */
    return 0;
}

int tr_trainer_evaluate(tr_trainer *t, const tr_dataset *ds, tr_metrics *met, tr_err *err)
{
    tr_phase_enter(&t->clock, TR_PHASE_EVAL);
    tr_model *mod = &t->model;
    tr_dist *d = t->dist;
    const int L = mod->n_layers;
    const int64_t O = t->loss.width, T = ds->tcols, E = t->cfg->train.eval_batch;
    /* every rank holds the whole set: its rows are its share of whole chunks (possibly none) */
    int64_t b, e;
    tr_chunk_share(ds->rows, E, d->rank, d->size, &b, &e);
    tr_model_hold_weights(mod, true);
    for (int64_t r0 = b; r0 < e; r0 += E) {
        const int64_t n = e - r0 < E ? e - r0 : E;
        tr_model_forward(mod, tr_dataset_block(ds, r0, n, t->eval_x), n, NULL);
        const float *Z = mod->layer[L - 1].Z, *A = mod->layer[L - 1].A;
        memcpy(t->eval_Z + r0 * O, Z, (size_t)(n * O) * sizeof(float));
        memcpy(t->eval_A + r0 * O, A, (size_t)(n * O) * sizeof(float));
        tr_loss_compute(&t->loss, NULL, t->eval_loss + r0, Z, A, ds->y + r0 * T, n, 1.0f);
    }
    tr_model_hold_weights(mod, false);
    /* every rank gets every row's results, so all compute the same metrics */
    int rc = tr_dist_agree(d, tr_gemm_failed(mod->gemm, err));
    if (!rc)
        rc = tr_dist_allgather_f32(d, t->eval_Z, b * O, (e - b) * O, err);
    if (!rc)
        rc = tr_dist_allgather_f32(d, t->eval_A, b * O, (e - b) * O, err);
    if (!rc)
        rc = tr_dist_allgather_f64(d, t->eval_loss, b, e - b, err);
    if (!rc)
        tr_metrics_compute(met, &t->loss, t->eval_Z, t->eval_A, ds->y, t->eval_loss, ds->rows);
    tr_phase_leave(&t->clock);
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

double tr_trainer_penalty(const tr_trainer *t) { return tr_optim_penalty(&t->optim, &t->model); }

/* The validation and test sets (those the run has) into val and test, with the model's
 * current weights; *has_val and *has_test say which were evaluated. */
static int evaluate_held_out(tr_trainer *t, tr_metrics *val, bool *has_val, tr_metrics *test, bool *has_test,
                             tr_err *err)
{
    int rc = 0;
    if (t->data.val.rows > 0) {
        rc = tr_trainer_evaluate(t, &t->data.val, val, err);
        *has_val = !rc;
    }
    if (!rc && t->data.test.rows > 0) {
        rc = tr_trainer_evaluate(t, &t->data.test, test, err);
        *has_test = !rc;
    }
    return rc;
}

int tr_trainer_evaluate_all(tr_trainer *t, tr_err *err)
{
    int rc = tr_trainer_sync_buffers(t, err); /* rank 0's running statistics (sync_bn = false) */
    t->has_train_metrics = t->has_val_metrics = t->has_test_metrics = false;
    t->has_ema_val_metrics = t->has_ema_test_metrics = false;
    if (!rc && t->cfg->train.eval_train) {
        rc = tr_trainer_evaluate(t, &t->data.train, &t->train_metrics, err);
        t->has_train_metrics = !rc;
    }
    if (!rc)
        rc = evaluate_held_out(t, &t->val_metrics, &t->has_val_metrics, &t->test_metrics, &t->has_test_metrics, err);
    if (!rc && tr_ema_on(&t->ema)) { /* the same sets under the average (sync_bn = false: rank 0's statistics) */
        tr_ema_swap(&t->ema, &t->model);
        rc = tr_trainer_sync_buffers(t, err);
        if (!rc)
            rc = evaluate_held_out(t, &t->ema_val_metrics, &t->has_ema_val_metrics, &t->ema_test_metrics,
                                   &t->has_ema_test_metrics, err);
        tr_ema_swap(&t->ema, &t->model);
    }
    bool same = true;
    if (!rc)
        rc = tr_dist_same_everywhere(t->dist, t->model.params, t->model.n_params * sizeof(float), &same, err);
    if (!rc && !same)
        rc = tr_fail(err, TR_EINTERNAL, "the model replicas differ between ranks after %lld steps", (long long)t->step);
    return rc;
}

const tr_metrics *tr_trainer_metrics(const tr_trainer *t, tr_metric_set set)
{
    switch (set) {
    case TR_SET_VAL:
        return t->has_val_metrics ? &t->val_metrics : NULL;
    case TR_SET_TEST:
        return t->has_test_metrics ? &t->test_metrics : NULL;
    case TR_SET_TRAIN:
        return t->has_train_metrics ? &t->train_metrics : NULL;
    case TR_SET_EMA_VAL:
        return t->has_ema_val_metrics ? &t->ema_val_metrics : NULL;
    case TR_SET_EMA_TEST:
        return t->has_ema_test_metrics ? &t->ema_test_metrics : NULL;
    }
    return NULL;
}
