/*
 * reduce.c: the gradient exchange's step protocol for each strategy (reduce.h): when the
 * buckets are summed, by whom, and when the optimizer updates what. The building blocks are
 * grad_sync.c (buckets and the allreduce), fixed_sum.c (the exact sum) and node_group.c
 * (node-shared memory). Every MPI failure becomes TR_EMPI with MPI's message and keeps that
 * status.
 */
#include "trainer/reduce.h"

#include "trainer/clock.h"
#include "trainer/fixed_sum.h"
#include "trainer/mem.h"
#include "trainer/sampler.h"
#include "dist_impl.h"
#include "node_group.h"

#include <math.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* In-place sum of n int64 (or the double maxima) over comm. */
static int allreduce_pieces(void *buf, size_t n, MPI_Datatype type, MPI_Op op, MPI_Comm comm, const char *what,
                            tr_err *err)
{
    tr_watch_begin("the gradient exchange");
    const int rc = mpi_allreduce_pieces(buf, n, 8, type, op, comm);
    tr_watch_end();
    MPI_CHECK(rc, what);
    return 0;
}


struct tr_reduce {
    tr_reduce_kind kind;
    tr_dist *d;
    tr_model *m;
    tr_optim *o;               /* applied to the ranges this rank owns, as they are summed */
    double clip_norm;          /* > 0: the global norm first, then the update */
    tr_phase_clock *clock;     /* the trainer's: comm_wait and optimizer open inside its phases */
    tr_grad_sync *sync;        /* bucket plan (all); MPI requests (allreduce); exact buffers */
    tr_node_group *node;       /* shared; exact when the node can share memory */
    tr_grad_hook hook;
    /* the step in progress */
    bool update_finite;
    float *params_out;         /* shared: where this step's updates go (the buffer nobody reads in it) */
    float *scratch;            /* shared, from STREAM_MIN parameters: (STREAM_BLOCK) updated values on
                                * their way to params_out, which is then written with streaming stores */
    bool measure;              /* this step sums the gradient's squared norm into step_sq */
    double step_sq;
    int local_top;             /* local: tensors [local_top, n_tensors) updated this step */
    int n_buckets;
    const size_t *bucket_begin; /* ascending */
    int signalled, updated;    /* shared: buckets signalled / reduced and updated, from the top */
    int64_t round;             /* shared: this process's steps (the node's counters start at 0) */
    int step_rc;               /* the first failure inside a hook, and its message */
    tr_err step_err;
    /* exact: this rank's header and chunk gradients, in its node slot (or private) */
    int64_t n_chunk_bufs, n_chunks;
    double *header;            /* (header_len) see exact_header_at */
    float **chunk;             /* (n_chunk_bufs) x (n_params) */
    double *chunk_loss;        /* (n_chunk_bufs) */
    size_t header_len, chunk_stride;
    MPI_Comm exact_cross;      /* the sum across nodes (or ranks, without a node group); NULL: none */
    float **gather;            /* (local_size * n_chunk_bufs) the node's chunks, for the sum */
    double *maxima;            /* (n_tensors + 3) */
    int *exp;                  /* (n_tensors + 1) */
    int64_t *cross_acc;        /* (shard + 3): the integers summed across nodes */
    float *owned_grads;        /* exact with a node group: the model's private gradient, now ours */
    /* deferred updates (clip_norm, lars, lamb): the norms over whole tensors come first */
    bool deferred;
    int n_parts;               /* the parts of tensors this rank updates in every step */
    int *part_tensor, *part_cell;
    size_t *part_begin, *part_end;
    int n_cells;               /* the norms' sums: a rank's parts add into cells, cells into tensors */
    int *cell_first;           /* (n_tensors + 1): tensor t's cells are [cell_first[t], cell_first[t + 1]) */
    double *cell_sum;          /* (2 n_cells) */
    bool cells_merged;         /* the cells are spread over the ranks: merged by MPI_MAX */
    double tensor_sq[2 * TR_OPTIM_MAX_TENSORS];
};

/* shared: parameters updated at once into the scratch block (in this core's cache), then
 * streamed to the node's buffer (mem.h). Only from STREAM_MIN parameters (256 KiB): a small
 * model's parameters stay in the caches, and streamed out they would be read back from
 * memory (the moons net at np=2, 501 parameters: 5.0 us a step streamed, 4.1 us plain;
 * the 784 net, 235k: the optimizer 0.065 ms streamed, 0.10 plain) */
#define STREAM_BLOCK ((size_t)8192)
#define STREAM_MIN ((size_t)1 << 16)

/* The logged gradient norm, before the update: the gradient as it arrived, unclipped. */
static void measure(tr_reduce *r, size_t lo, size_t hi)
{
    if (r->measure)
        r->step_sq += tr_optim_grad_sq_norm(r->o, r->m, lo, hi);
}

static bool update(tr_reduce *r, size_t lo, size_t hi, float scale)
{
    bool ok = true;
    if (!r->params_out) {
        ok = tr_optim_step_range(r->o, r->m, lo, hi, scale, NULL);
    } else if (!r->scratch) {
        ok = tr_optim_step_range(r->o, r->m, lo, hi, scale, r->params_out + lo);
    } else {
        for (int t = 0; t < r->m->n_tensors; t++) { /* the tensors' ranges: the padding stays zero */
            size_t a, e;
            if (!tr_tensor_part(&r->m->tensor[t], lo, hi, &a, &e))
                continue;
            while (a < e) { /* blocks end on multiples of STREAM_BLOCK */
                const size_t b = (a / STREAM_BLOCK + 1) * STREAM_BLOCK < e ? (a / STREAM_BLOCK + 1) * STREAM_BLOCK : e;
                ok &= tr_optim_step_range(r->o, r->m, a, b, scale, r->scratch);
                tr_stream_floats(r->params_out + a, r->scratch, b - a);
                a = b;
            }
        }
        tr_stream_fence(); /* before this rank's signal or the step's closing sum */
    }
    r->update_finite &= ok;
    return ok;
}

/* torch.nn.utils.clip_grad_norm_: scale by max_norm / (norm + 1e-6) when that is below 1. */
static float clip_scale(const tr_reduce *r, double sq)
{
    if (r->clip_norm <= 0.0)
        return 1.0f;
    const double coef = r->clip_norm / (sqrt(sq) + 1e-6);
    return coef < 1.0 ? (float)coef : 1.0f;
}

/*
 * Deferred updates. clip_norm needs the norm of the whole gradient, and lars and lamb the
 * norms of each whole tensor, before any update. The sums must be the same to the bit on
 * every rank, and in the exact strategy they must not depend on the layout either, while
 * the ranks own pieces of tensors (shards). So each rank adds its parts into cells: in the
 * exact strategy a fixed grid of NORM_CELL parameters per tensor, which the shards are
 * aligned to (whatever the number of ranks, each cell is summed by one rank in the same
 * order); in the shared strategy one cell per tensor and rank of the node; else one per
 * tensor. Every node computes the same cells, so merging them over all ranks by MPI_MAX
 * (each cell has one value, zero elsewhere) gives every rank the same cells, which are then
 * added in order.
 */
#define NORM_CELL ((size_t)512)

enum norm_sums { SUMS_CLIP, SUMS_LAYER };

/* Each tensor's sums over all its parts into tensor_sq: SUMS_CLIP the squared norm of the
 * regularised gradient (tensor_sq[2t]), SUMS_LAYER lars/lamb's stage one (tensor_sq[2t],
 * [2t + 1]: optim.h). */
static int norm_sums(tr_reduce *r, enum norm_sums what, float scale, tr_err *err)
{
    memset(r->cell_sum, 0, 2 * (size_t)r->n_cells * sizeof *r->cell_sum);
    for (int i = 0; i < r->n_parts; i++) {
        double *cell = r->cell_sum + 2 * r->part_cell[i];
        const size_t a = r->part_begin[i], b = r->part_end[i];
        if (what == SUMS_CLIP)
            cell[0] += tr_optim_grad_sq_norm(r->o, r->m, a, b);
        else
            r->update_finite &= tr_optim_layer_sums(r->o, r->m, r->part_tensor[i], a, b, scale, cell);
    }
    if (r->cells_merged) {
        const int rc = allreduce_pieces(r->cell_sum, 2 * (size_t)r->n_cells, MPI_DOUBLE, MPI_MAX, r->d->impl->comm,
                                        "MPI_Allreduce (the norms of the tensors)", err);
        if (rc)
            return rc;
    }
    for (int t = 0; t < r->m->n_tensors; t++) {
        double *sq = r->tensor_sq + 2 * t;
        sq[0] = sq[1] = 0.0;
        for (int c = r->cell_first[t]; c < r->cell_first[t + 1]; c++) {
            sq[0] += r->cell_sum[2 * c];
            sq[1] += r->cell_sum[2 * c + 1];
        }
    }
    return 0;
}

/* The step's updates of this rank's parts: the norms first where they are needed (the
 * collectives are reached by every rank). */
static int update_parts(tr_reduce *r, tr_err *err)
{
    for (int i = 0; i < r->n_parts; i++)
        measure(r, r->part_begin[i], r->part_end[i]);
    float scale = 1.0f;
    int rc = 0;
    if (r->clip_norm > 0.0) {
        rc = norm_sums(r, SUMS_CLIP, 1.0f, err);
        double sq = 0.0;
        for (int t = 0; t < r->m->n_tensors; t++)
            sq += r->tensor_sq[2 * t];
        scale = clip_scale(r, sq);
    }
    if (!rc && tr_optim_layerwise(r->o)) {
        rc = norm_sums(r, SUMS_LAYER, scale, err);
        for (int t = 0; t < r->m->n_tensors; t++)
            tr_optim_set_trust(r->o, r->m, t, r->tensor_sq + 2 * t);
    }
    for (int i = 0; !rc && i < r->n_parts; i++)
        update(r, r->part_begin[i], r->part_end[i], scale);
    return rc;
}

/* Every rank holds the summed gradient: the norms and the update are the same everywhere. */
static void update_all(tr_reduce *r)
{
    tr_phase_enter(r->clock, TR_PHASE_OPTIM);
    tr_optim_begin_step(r->o);
    r->update_finite = true;
    update_parts(r, NULL); /* no collective: every part is this rank's */
    tr_phase_leave(r->clock);
}

/* local: the tensors at or above `frontier` are final and no longer read by backward:
 * update them now. */
static void local_layer_done(void *ctx, size_t frontier)
{
    tr_reduce *r = ctx;
    tr_model *m = r->m;
    tr_phase_enter(r->clock, TR_PHASE_OPTIM);
    while (r->local_top > 0 && m->tensor[r->local_top - 1].offset >= frontier) {
        const int t = --r->local_top;
        const tr_tensor *T = &m->tensor[t];
        measure(r, T->offset, T->offset + T->size);
        if (tr_optim_layerwise(r->o)) {
            double sq[2] = {0.0, 0.0};
            r->update_finite &= tr_optim_layer_sums(r->o, m, t, T->offset, T->offset + T->size, 1.0f, sq);
            tr_optim_set_trust(r->o, m, t, sq);
        }
        update(r, T->offset, T->offset + T->size, 1.0f);
    }
    tr_phase_leave(r->clock);
}

/* shared: this rank's shard of bucket k. */
static void shard_of(const tr_reduce *r, int k, size_t *sb, size_t *se)
{
    const size_t b = r->bucket_begin[k], e = k + 1 < r->n_buckets ? r->bucket_begin[k + 1] : r->m->n_params;
    int64_t lo, hi;
    tr_share((int64_t)(e - b), r->d->local_rank, r->d->local_size, &lo, &hi);
    *sb = b + (size_t)lo;
    *se = b + (size_t)hi;
}

/* shared: buckets whose layers every rank of the node has finished are reduced (this rank's
 * shard: the sum over the node's gradient slots in slot order, then across nodes) and,
 * unless the gradient norm must be known first (clip_norm), updated. Called between kernels
 * of the backward pass and after it. */
static void shared_update_ready(tr_reduce *r)
{
    const tr_dist *d = r->d;
    const int L = d->local_size;
    while (r->updated < r->signalled) {
        const int k = r->n_buckets - 1 - r->updated; /* descending: the top bucket first */
        if (!tr_node_group_complete(r->node, k, r->round))
            return;
        size_t sb, se;
        shard_of(r, k, &sb, &se);
        /* my shard of my own slot becomes the node sum: nobody else reads this range of it */
        tr_phase_enter(r->clock, TR_PHASE_COMM);
        float *restrict mine = r->m->grads;
        for (int j = 0; j < L; j++) {
            if (j == d->local_rank)
                continue;
            const float *restrict other = tr_node_group_slot(r->node, j);
            if (j < d->local_rank) /* fixed order: slot 0 + slot 1 + ... */
                for (size_t i = sb; i < se; i++)
                    mine[i] = other[i] + mine[i];
            else
                for (size_t i = sb; i < se; i++)
                    mine[i] += other[i];
        }
        /* every shard is summed even after a failure (the other nodes wait in the same
         * calls); the first failure is the step's result, with its own status */
        tr_err cerr;
        const int crc = tr_node_group_cross_sum(r->node, tr_grad_sync_wire(r->sync), mine, sb, se - sb, &cerr);
        if (crc && !r->step_rc) {
            r->step_rc = crc;
            r->step_err = cerr;
        }
        tr_phase_leave(r->clock);
        if (!r->deferred) {
            tr_phase_enter(r->clock, TR_PHASE_OPTIM);
            measure(r, sb, se);
            update(r, sb, se, 1.0f);
            tr_phase_leave(r->clock);
        }
        r->updated++;
    }
}

static void shared_layer_done(void *ctx, size_t frontier)
{
    tr_reduce *r = ctx;
    while (r->signalled < r->n_buckets && r->bucket_begin[r->n_buckets - 1 - r->signalled] >= frontier)
        tr_node_group_signal(r->node, r->n_buckets - 1 - r->signalled++, r->round);
    shared_update_ready(r);
}

/* The first layer's weights are not read again once its gradient is computed (there is no
 * input gradient below it), so its buckets are shared as backward completes them. */
static void shared_ready(void *ctx, size_t frontier)
{
    const tr_reduce *r = ctx;
    const size_t top = r->m->n_layers > 1 ? r->m->layer[1].w_off : r->m->n_params;
    if (frontier < top)
        shared_layer_done(ctx, frontier);
}

static void shared_progress(void *ctx) { shared_update_ready(ctx); }

/* Waiting for the other ranks of the node: a pause lets an SMT sibling (or the core's other
 * work) run at full speed; after a while, give the CPU away (more ranks than cores). Every
 * loop around it is a wait on other ranks: bracketed by tr_watch_begin/end (watchdog.h). */
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

static int fail_with(tr_reduce *r, tr_err *err)
{
    if (err)
        *err = r->step_err;
    return r->step_rc;
}

/* shared: the rest of the step after the last backward, as comm_wait (the updates inside it
 * as optimizer). */
static int shared_complete(tr_reduce *r, tr_step_stats *st, tr_err *err);

static int shared_finish(tr_reduce *r, tr_step_stats *st, tr_err *err)
{
    shared_layer_done(r, 0);
    tr_phase_enter(r->clock, TR_PHASE_COMM);
    const int rc = shared_complete(r, st, err);
    tr_phase_leave(r->clock);
    return rc;
}

static int shared_complete(tr_reduce *r, tr_step_stats *st, tr_err *err)
{
    tr_watch_begin("the node's gradient sum");
    for (int spins = 0; r->updated < r->n_buckets; spins++) {
        shared_update_ready(r);
        if (r->updated < r->n_buckets)
            relax(spins); /* the others are still in backward; do not slow them down */
    }
    tr_watch_end();
    if (r->deferred) { /* the norms first, then the updates */
        tr_phase_enter(r->clock, TR_PHASE_OPTIM);
        const int rc = update_parts(r, err);
        tr_phase_leave(r->clock);
        if (rc)
            return rc;
    }
    atomic_thread_fence(memory_order_seq_cst);
    /* the sum of the statistics is also the barrier: after it every shard is updated */
    double stats[6] = {st->loss, (double)st->correct, (double)st->rows, r->update_finite ? 0.0 : 1.0,
                       st->stop ? 1.0 : 0.0, r->step_sq};
    int rc = tr_dist_sum_f64(r->d, stats, 6, err);
    atomic_thread_fence(memory_order_seq_cst);
    if (rc)
        return rc;
    if (r->step_rc)
        return fail_with(r, err);
    st->loss = stats[0];
    st->correct = (int64_t)stats[1];
    st->rows = (int64_t)stats[2];
    st->stop = stats[4] > 0.0;
    st->nonfinite = !isfinite(stats[0]) ? "loss" : stats[3] != 0.0 ? "gradient" : NULL;
    tr_model_use_buffers(r->m, r->params_out, r->m->grads); /* every shard written: the next step reads it */
    /* the node's ranks updated disjoint shards; every node all of them */
    st->grad_norm = r->measure ? sqrt(stats[5] / (double)(r->d->size / r->d->local_size)) : NAN;
    return 0;
}

/* allreduce (and one rank with clip_norm): wait for the buckets, sum the statistics, then
 * the whole update on every rank. */
static int allreduce_finish(tr_reduce *r, tr_step_stats *st, tr_err *err)
{
    tr_phase_enter(r->clock, TR_PHASE_COMM);
    int rc = tr_grad_sync_finish(r->sync, err);
    tr_phase_leave(r->clock);
    double stats[4] = {st->loss, (double)st->correct, (double)st->rows, st->stop ? 1.0 : 0.0};
    if (!rc)
        rc = tr_dist_sum_f64(r->d, stats, 4, err);
    if (rc)
        return rc;
    st->loss = stats[0];
    st->correct = (int64_t)stats[1];
    st->rows = (int64_t)stats[2];
    st->stop = stats[3] > 0.0;
    /* the reduced values are the same on every rank, so every rank decides the same */
    if (!isfinite(st->loss)) {
        st->nonfinite = "loss";
        return 0;
    }
    update_all(r);
    st->nonfinite = r->update_finite ? NULL : "gradient";
    st->grad_norm = r->measure ? sqrt(r->step_sq) : NAN;
    return 0;
}

/* exact: a rank's header in front of its chunks: its chunk count and statistics, then the
 * maxima of exact_maxima (n_tensors + 2, the last the non-finite flag), then the chunks' losses */
enum { H_CHUNKS, H_CORRECT, H_ROWS, H_MAXIMA };
#define H_LOSSES(T) (H_MAXIMA + (T) + 2)

static double *exact_header_of(tr_reduce *r, int local_rank)
{
    return r->node ? tr_node_group_slot(r->node, local_rank) : r->header;
}

static float *exact_chunk_of(tr_reduce *r, int local_rank, int64_t i)
{
    return (float *)(void *)(exact_header_of(r, local_rank) + r->header_len) + (size_t)i * r->chunk_stride;
}

/* exact: this rank's shard of the parameters, whole cells of the norms' grid (the last ranks'
 * may be empty for a small model). */
static void exact_shard(const tr_reduce *r, size_t *sb, size_t *se)
{
    const size_t P = r->m->n_params, cells = (P + NORM_CELL - 1) / NORM_CELL;
    int64_t lo, hi;
    tr_share((int64_t)cells, r->node ? r->d->local_rank : 0, r->node ? r->d->local_size : 1, &lo, &hi);
    *sb = (size_t)lo * NORM_CELL < P ? (size_t)lo * NORM_CELL : P;
    *se = (size_t)hi * NORM_CELL < P ? (size_t)hi * NORM_CELL : P;
}

/*
 * exact: the rest of the step after this rank's chunks.
 *   1. this rank's maxima, statistics and chunk losses go into its header; the node's ranks
 *      wait for each other (a counter in shared memory)
 *   2. the maxima of every chunk of the node, then across nodes: one grid per tensor
 *   3. each rank sums its shard of the parameters over every chunk of the node (integers),
 *      then across nodes, rounds it once to float and updates it (clip_norm: after the
 *      global norm); the loss and counts are summed the same way
 *   4. the step's flags summed over all ranks, which is also the barrier after which the
 *      chunks and headers may be overwritten
 * Without a node group every rank is its own node: the shard is everything and the sum
 * across nodes is an allreduce over all ranks.
 */
static int exact_finish(tr_reduce *r, tr_step_stats *st, tr_err *err)
{
    const tr_model *m = r->m;
    const int T = m->n_tensors, L = r->node ? r->d->local_size : 1;
    tr_phase_enter(r->clock, TR_PHASE_COMM);
    double *h = r->header;
    for (int t = 0; t <= T + 1; t++)
        h[H_MAXIMA + t] = 0.0;
    tr_fixed_maxima(m, r->chunk, r->chunk_loss, (int)r->n_chunks, h + H_MAXIMA);
    memcpy(h + H_LOSSES(T), r->chunk_loss, (size_t)r->n_chunks * sizeof *h);
    h[H_CHUNKS] = (double)r->n_chunks;
    h[H_CORRECT] = (double)st->correct;
    h[H_ROWS] = (double)st->rows;
    if (r->node) {
        r->round++;
        tr_node_group_signal(r->node, 0, r->round);
        tr_watch_begin("the node's gradient sum");
        for (int spins = 0; !tr_node_group_complete(r->node, 0, r->round); spins++)
            relax(spins);
        tr_watch_end();
    }
    double *mx = r->maxima; /* exact_maxima's, then the most chunks a node has */
    for (int t = 0; t <= T + 2; t++)
        mx[t] = 0.0;
    int n = 0;
    int64_t node_counts[2] = {0, 0};
    for (int j = 0; j < L; j++) {
        const double *hj = exact_header_of(r, j);
        for (int t = 0; t <= T + 1; t++)
            mx[t] = hj[H_MAXIMA + t] > mx[t] ? hj[H_MAXIMA + t] : mx[t];
        for (int64_t i = 0; i < (int64_t)hj[H_CHUNKS]; i++)
            r->gather[n++] = exact_chunk_of(r, j, i);
        node_counts[0] += (int64_t)hj[H_CORRECT];
        node_counts[1] += (int64_t)hj[H_ROWS];
    }
    mx[T + 2] = n;
    int rc = 0;
    if (r->exact_cross != MPI_COMM_NULL)
        rc = allreduce_pieces(mx, (size_t)T + 3, MPI_DOUBLE, MPI_MAX, r->exact_cross,
                              "MPI_Allreduce (exact gradient sum: maxima)", err);
    const bool finite = !rc && mx[T + 1] == 0.0;
    size_t sb = 0, se = m->n_params;
    if (finite) {
        tr_fixed_grid(mx, T, r->exp);
        exact_shard(r, &sb, &se);
        int64_t loss = 0;
        for (int j = 0; j < L; j++) {
            const double *hj = exact_header_of(r, j);
            loss += tr_fixed_loss(hj + H_LOSSES(T), (int)hj[H_CHUNKS], r->exp[T]);
        }
        if (r->exact_cross == MPI_COMM_NULL) {
            tr_fixed_sum(m, r->exp, r->gather, n, sb, se, NULL, m->grads);
        } else {
            int64_t *acc = r->cross_acc;
            const size_t k = se - sb;
            tr_fixed_sum(m, r->exp, r->gather, n, sb, se, acc, NULL);
            acc[k] = loss;
            acc[k + 1] = node_counts[0];
            acc[k + 2] = node_counts[1];
            rc = allreduce_pieces(acc, k + 3, MPI_INT64_T, MPI_SUM, r->exact_cross, "MPI_Allreduce (exact gradient sum)",
                                  err);
            if (!rc)
                tr_fixed_to_float(m, r->exp, acc, sb, se, mx[T + 2] * (r->d->size / L), m->grads);
            loss = acc[k];
            node_counts[0] = acc[k + 1];
            node_counts[1] = acc[k + 2];
        }
        st->loss = ldexp((double)loss, r->exp[T]);
        st->correct = node_counts[0];
        st->rows = node_counts[1];
    }
    tr_phase_leave(r->clock);
    /* the update of this rank's shard (every rank reaches the collectives below) */
    tr_phase_enter(r->clock, TR_PHASE_OPTIM);
    if (!rc && finite) {
        tr_optim_begin_step(r->o);
        rc = update_parts(r, err);
    }
    tr_phase_leave(r->clock);
    atomic_thread_fence(memory_order_seq_cst);
    double flags[4] = {r->update_finite ? 0.0 : 1.0, st->stop ? 1.0 : 0.0, rc ? 1.0 : 0.0, r->step_sq};
    const int frc = tr_dist_sum_f64(r->d, flags, 4, rc ? NULL : err);
    atomic_thread_fence(memory_order_seq_cst);
    if (rc || frc)
        return rc ? rc : frc;
    st->stop = flags[1] > 0.0;
    st->nonfinite = !finite ? "loss or gradient" : flags[0] > 0.0 ? "gradient" : NULL;
    st->grad_norm = r->measure ? sqrt(flags[3] / (double)(r->d->size / L)) : NAN; /* every node holds every shard */
    return 0;
}

static int local_finish(tr_reduce *r, tr_step_stats *st)
{
    st->nonfinite = !isfinite(st->loss) ? "loss" : !r->update_finite ? "gradient" : NULL;
    st->grad_norm = r->measure ? sqrt(r->step_sq) : NAN;
    return 0;
}

/* The node's shared memory: parameters (n_param_bufs buffers) and optimizer state once per
 * node, a slot of slot_bytes per rank, n_counters step counters. The model's gradient becomes
 * this rank's slot (shared), or stays its own buffer (exact: the slot holds the chunks). NULL
 * (and 0) when the world cannot use it. */
static int make_shared(tr_reduce *r, tr_optim *o, int n_param_bufs, int n_counters, size_t slot_bytes,
                       bool grads_in_slot, tr_err *err)
{
    tr_dist *d = r->d;
    int rc = tr_node_group_create(&r->node, d, r->m->n_params, n_param_bufs, o->n_state, n_counters, slot_bytes, err);
    if (rc || !r->node)
        return rc;
    float *states[3];
    for (int i = 0; i < o->n_state; i++)
        states[i] = tr_node_group_state(r->node, i);
    tr_optim_use_state(o, states);
    float *params = tr_node_group_params(r->node, 0);
    if (d->local_rank == 0)
        memcpy(params, r->m->params, r->m->n_params * sizeof(float));
    if (!grads_in_slot && !r->m->external)
        r->owned_grads = r->m->grads; /* the model no longer frees it once its buffers are external */
    tr_model_use_buffers(r->m, params, grads_in_slot ? tr_node_group_slot(r->node, d->local_rank) : r->m->grads);
    tr_dist_barrier(d); /* the parameters are in place before anyone reads them */
    return 0;
}

/* exact: a header and chunk_bufs chunk gradients per rank, in the node's shared memory with
 * the parameters and optimizer state there too (or private, every rank its own node). */
static int exact_create(tr_reduce *r, tr_optim *o, const tr_train_config *tc, int64_t chunk_bufs, tr_err *err)
{
    tr_dist *d = r->d;
    const tr_model *m = r->m;
    const int T = m->n_tensors;
    r->kind = TR_REDUCE_EXACT;
    r->n_chunk_bufs = chunk_bufs;
    r->exact_cross = MPI_COMM_NULL;
    r->chunk_stride = (m->n_params + 15) / 16 * 16;                          /* whole cache lines */
    r->header_len = ((size_t)H_LOSSES(T) + (size_t)chunk_bufs + 7) / 8 * 8; /* likewise */
    const size_t slot = r->header_len * sizeof(double) + (size_t)chunk_bufs * r->chunk_stride * sizeof(float);
    int rc = 0;
    if (d->size > 1 && tc->comm != TR_COMM_ALLREDUCE)
        rc = make_shared(r, o, 1, 1, slot, false, err);
    if (!rc && !r->node && d->size > 1 && tc->comm == TR_COMM_SHARED)
        rc = tr_fail(err, TR_ECONFIG, "[train] comm = shared needs the same number of ranks on every node");
    if (rc)
        return rc;
    const int L = r->node ? d->local_size : 1, me = r->node ? d->local_rank : 0;
    r->header = r->node ? tr_node_group_slot(r->node, me) : tr_big_alloc(slot);
    if (r->node)
        r->exact_cross = tr_node_group_cross(r->node);
    else if (d->size > 1)
        r->exact_cross = d->impl->comm;
    r->chunk = calloc((size_t)chunk_bufs + 1, sizeof *r->chunk);
    r->chunk_loss = calloc((size_t)chunk_bufs + 1, sizeof *r->chunk_loss);
    r->gather = calloc((size_t)L * (size_t)chunk_bufs + 1, sizeof *r->gather);
    r->maxima = calloc((size_t)T + 3, sizeof *r->maxima);
    r->exp = calloc((size_t)T + 1, sizeof *r->exp);
    const size_t shard = ((m->n_params + NORM_CELL - 1) / NORM_CELL + (size_t)L - 1) / (size_t)L * NORM_CELL;
    if (r->exact_cross != MPI_COMM_NULL)
        r->cross_acc = tr_big_alloc((shard + 3) * sizeof *r->cross_acc);
    const bool ok = r->header && r->chunk && r->chunk_loss && r->gather && r->maxima && r->exp &&
                    (r->exact_cross == MPI_COMM_NULL || r->cross_acc);
    for (int64_t i = 0; ok && i < chunk_bufs; i++)
        r->chunk[i] = exact_chunk_of(r, me, i);
    return tr_dist_agree(d, ok ? 0 : tr_fail(err, TR_ENOMEM, "cannot allocate %lld chunk gradient buffers",
                                             (long long)chunk_bufs));
}

/* One part of tensor t the step updates, and the cell its norms add into (update_parts);
 * counted only until the arrays exist. */
static void plan_part(tr_reduce *r, int t, size_t a, size_t b, int cell)
{
    if (r->part_tensor) {
        r->part_tensor[r->n_parts] = t;
        r->part_cell[r->n_parts] = cell;
        r->part_begin[r->n_parts] = a;
        r->part_end[r->n_parts] = b;
    }
    r->n_parts++;
}

static void plan_range(tr_reduce *r, size_t lo, size_t hi)
{
    const tr_model *m = r->m;
    for (int t = 0; t < m->n_tensors; t++) {
        const tr_tensor *T = &m->tensor[t];
        size_t a, b;
        if (!tr_tensor_part(T, lo, hi, &a, &b))
            continue;
        if (r->kind == TR_REDUCE_EXACT) { /* cut at the grid */
            while (a < b) {
                const size_t e = (a / NORM_CELL + 1) * NORM_CELL < b ? (a / NORM_CELL + 1) * NORM_CELL : b;
                plan_part(r, t, a, e, r->cell_first[t] + (int)(a / NORM_CELL - T->offset / NORM_CELL));
                a = e;
            }
        } else {
            plan_part(r, t, a, b, r->kind == TR_REDUCE_SHARED ? r->cell_first[t] + r->d->local_rank : t);
        }
    }
}

static void plan_ranges(tr_reduce *r)
{
    r->n_parts = 0;
    size_t sb = 0, se = r->m->n_params;
    if (r->kind == TR_REDUCE_SHARED) {
        for (int k = 0; k < r->n_buckets; k++) {
            shard_of(r, k, &sb, &se);
            plan_range(r, sb, se);
        }
        return;
    }
    if (r->kind == TR_REDUCE_EXACT)
        exact_shard(r, &sb, &se);
    plan_range(r, sb, se);
}

/* The parts of the parameters this rank updates in every step and the norms' cells. */
static int plan_parts(tr_reduce *r, tr_err *err)
{
    const tr_model *m = r->m;
    const int T = m->n_tensors, L = r->node ? r->d->local_size : 1;
    r->deferred = r->clip_norm > 0.0 || tr_optim_layerwise(r->o);
    r->cell_first = calloc((size_t)T + 1, sizeof *r->cell_first);
    if (!r->cell_first)
        return tr_fail(err, TR_ENOMEM, "out of memory");
    for (int t = 0; t < T; t++) {
        const tr_tensor *X = &m->tensor[t];
        const int cells = r->kind == TR_REDUCE_EXACT ? (int)((X->offset + X->size - 1) / NORM_CELL - X->offset / NORM_CELL) + 1
                          : r->kind == TR_REDUCE_SHARED ? L
                                                        : 1;
        r->cell_first[t + 1] = r->cell_first[t] + cells;
    }
    r->n_cells = r->cell_first[T];
    r->cells_merged = (r->kind == TR_REDUCE_SHARED || r->kind == TR_REDUCE_EXACT) && L > 1;
    plan_ranges(r); /* counts */
    const size_t n = (size_t)r->n_parts + 1;
    r->part_tensor = calloc(n, sizeof *r->part_tensor);
    r->part_cell = calloc(n, sizeof *r->part_cell);
    r->part_begin = calloc(n, sizeof *r->part_begin);
    r->part_end = calloc(n, sizeof *r->part_end);
    r->cell_sum = calloc(2 * (size_t)r->n_cells + 1, sizeof *r->cell_sum);
    if (!r->part_tensor || !r->part_cell || !r->part_begin || !r->part_end || !r->cell_sum)
        return tr_fail(err, TR_ENOMEM, "out of memory");
    plan_ranges(r);
    return 0;
}

int tr_reduce_create(tr_reduce **out, tr_dist *d, tr_model *m, tr_optim *o, const tr_train_config *tc,
                     int64_t chunk_bufs, tr_phase_clock *clock, tr_err *err)
{
    *out = NULL;
    tr_reduce *r = calloc(1, sizeof *r);
    int rc = tr_dist_agree(d, r ? 0 : TR_ENOMEM); /* collectives follow: nobody may be missing */
    if (rc) {
        free(r);
        return tr_fail(err, rc, "out of memory for the gradient exchange (on some rank)");
    }
    r->d = d;
    r->m = m;
    r->o = o;
    r->clip_norm = tc->clip_norm;
    r->clock = clock;
    /* the exact strategy keeps its own buffers (exact_create): the sync only plans buckets */
    rc = tr_grad_sync_create(&r->sync, d, m, (size_t)tc->bucket_kb * 1024,
                             tc->deterministic ? TR_COMPRESS_NONE : tc->grad_compression, err);
    if (!rc)
        r->n_buckets = tr_grad_sync_buckets(r->sync, &r->bucket_begin);
    if (!rc && tc->deterministic) {
        rc = exact_create(r, o, tc, chunk_bufs, err);
    } else if (!rc && d->size == 1) {
        r->kind = tc->clip_norm > 0.0 ? TR_REDUCE_ALLREDUCE : TR_REDUCE_LOCAL; /* clipping needs the norm first */
    } else if (!rc) {
        r->kind = TR_REDUCE_ALLREDUCE;
        if (tc->comm != TR_COMM_ALLREDUCE)
            rc = make_shared(r, o, 2, r->n_buckets, m->n_params * sizeof(float), true, err);
        if (!rc && r->node && m->n_params >= STREAM_MIN) {
            r->scratch = tr_big_alloc(STREAM_BLOCK * sizeof(float));
            rc = tr_dist_agree(d, r->scratch ? 0 : tr_fail(err, TR_ENOMEM, "out of memory"));
        }
        if (!rc && r->node)
            r->kind = TR_REDUCE_SHARED;
        else if (!rc && tc->comm == TR_COMM_SHARED)
            rc = tr_fail(err, TR_ECONFIG, "[train] comm = shared needs the same number of ranks on every node");
    }
    if (!rc)
        rc = tr_dist_agree(d, plan_parts(r, err));
    if (rc) {
        tr_reduce_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

void tr_reduce_free(tr_reduce *r)
{
    if (!r)
        return;
    tr_grad_sync_free(r->sync);
    if (!r->node)
        tr_big_free(r->header);
    tr_node_group_free(r->node);
    free(r->chunk);
    free(r->chunk_loss);
    free(r->gather);
    free(r->maxima);
    free(r->exp);
    tr_big_free(r->cross_acc);
    tr_big_free(r->scratch);
    tr_big_free(r->owned_grads);
    free(r->part_tensor);
    free(r->part_cell);
    free(r->part_begin);
    free(r->part_end);
    free(r->cell_first);
    free(r->cell_sum);
    free(r);
}

tr_reduce_kind tr_reduce_kind_of(const tr_reduce *r) { return r->kind; }

bool tr_reduce_shares_params(const tr_reduce *r) { return r->node != NULL; }

bool tr_reduce_streams_params(const tr_reduce *r) { return r->scratch != NULL; }

void tr_reduce_measure_norm(tr_reduce *r, bool on)
{
    r->measure = on;
    r->step_sq = 0.0;
}

void tr_reduce_begin(tr_reduce *r)
{
    r->update_finite = true;
    r->step_rc = 0;
    r->n_chunks = 0;
    if (r->kind == TR_REDUCE_LOCAL) {
        tr_optim_begin_step(r->o);
        r->local_top = r->m->n_tensors;
    } else if (r->kind == TR_REDUCE_SHARED) {
        r->round++;
        r->signalled = r->updated = 0;
        tr_optim_begin_step(r->o);
        /* the other buffer: every rank reads this step's parameters until the step ends */
        const float *now = r->m->params;
        r->params_out = tr_node_group_params(r->node, now == tr_node_group_params(r->node, 0) ? 1 : 0);
    }
}

/* shared: the others read this rank's slot until the end of the last step, so the first
 * backward overwrites it; elsewhere the optimizer left the gradient zero and every
 * micro-step adds into it. */
bool tr_reduce_adds(const tr_reduce *r, int64_t j) { return r->kind != TR_REDUCE_SHARED || j > 0; }

const tr_grad_hook *tr_reduce_hook(tr_reduce *r, bool last)
{
    if (!last) /* only the step's last backward completes the gradient */
        return NULL;
    switch (r->kind) {
    case TR_REDUCE_LOCAL:
        r->hook = (tr_grad_hook){.layer_done = local_layer_done, .ctx = r};
        return &r->hook;
    case TR_REDUCE_ALLREDUCE:
        tr_grad_sync_begin(r->sync, r->m->grads, &r->hook);
        return &r->hook;
    case TR_REDUCE_SHARED:
        r->hook = (tr_grad_hook){.ready = shared_ready,
                                 .layer_done = shared_layer_done,
                                 .progress = shared_progress,
                                 .ctx = r,
                                 .splits = r->bucket_begin,
                                 .n_splits = r->n_buckets};
        return &r->hook;
    case TR_REDUCE_EXACT:
        break;
    }
    return NULL;
}

float *tr_reduce_chunk(tr_reduce *r, int64_t i, double loss)
{
    r->chunk_loss[i] = loss;
    if (i + 1 > r->n_chunks)
        r->n_chunks = i + 1;
    return r->chunk[i];
}

int tr_reduce_finish(tr_reduce *r, tr_step_stats *st, tr_err *err)
{
    st->nonfinite = NULL;
    st->grad_norm = NAN;
    switch (r->kind) {
    case TR_REDUCE_LOCAL:
        return local_finish(r, st);
    case TR_REDUCE_ALLREDUCE:
        return allreduce_finish(r, st, err);
    case TR_REDUCE_SHARED:
        return shared_finish(r, st, err);
    case TR_REDUCE_EXACT:
        return exact_finish(r, st, err);
    }
    return tr_fail(err, TR_EINTERNAL, "unknown gradient exchange");
}
