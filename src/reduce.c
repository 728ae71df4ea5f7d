/*
 * reduce.c: gradient exchange (see reduce.h): the bucketed allreduce, the exact sum, the
 * node-shared memory, and the step protocol of each strategy. With dist.c the only file that
 * calls MPI. Every MPI failure becomes TR_EMPI with MPI's message and keeps that status.
 */
#include "trainer/reduce.h"

#include "trainer/clock.h"
#include "trainer/fault.h"
#include "trainer/mem.h"
#include "trainer/sampler.h"
#include "dist_impl.h"
#include "vector_kernel.h"

#include <limits.h>
#include <math.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* --------------------------------------------------------------- gradient sync ------- */

/* A weight is cut into row blocks of at least this many rows, whatever the bucket size: each
 * block's gradient is its own product in backward, and thinner ones run below sgemm's speed
 * (1024-2048-2048-10 at np=2 with 256 KiB buckets: blocks of 32 rows, backward 60 ms; of
 * 128 rows, 53-55 ms). */
#define MIN_BLOCK_ROWS ((size_t)128)

/* The most floats one MPI call carries. */
#define MAX_BUCKET_FLOATS ((size_t)1 << 30)

struct tr_grad_sync {
    tr_dist *d;
    const tr_model *m;
    int n;            /* buckets */
    size_t *begin;    /* (n) descending: bucket 0 holds the highest offsets */
    size_t *end;      /* (n) */
    size_t *splits;   /* (n) the begins, ascending, for tr_grad_hook */
    MPI_Request *req; /* (n) */
    int started;      /* buckets started this step (0..n), in descending order */
    float *grads;
    tr_err *async_err; /* first MPI failure inside a hook */
    int async_rc;
    tr_err async_err_buf;
    /* exact mode, allocated on first use */
    int64_t *acc;     /* (n_params + 3) */
    double *maxbuf;   /* (n_tensors + 2) */
    int *exp;         /* (n_tensors) */
};

/* Items (bias tensors, row blocks of weights) from the top of the flat buffer down,
 * packed greedily into buckets of at least `target` floats. */
static int plan(tr_grad_sync *s, size_t target, tr_err *err)
{
    const tr_model *m = s->m;
    const size_t cap = m->n_params + (size_t)m->n_layers * 4 + 4;
    s->begin = malloc(cap * sizeof *s->begin);
    s->end = malloc(cap * sizeof *s->end);
    s->splits = malloc(cap * sizeof *s->splits);
    s->req = malloc(cap * sizeof *s->req);
    if (!s->begin || !s->end || !s->splits || !s->req)
        return tr_fail(err, TR_ENOMEM, "out of memory");
    size_t top = m->n_params, bucket_top = m->n_params;
    s->n = 0;
#define CLOSE(at)                            \
    do {                                     \
        s->begin[s->n] = (at);               \
        s->end[s->n] = bucket_top;           \
        s->n++;                              \
        bucket_top = (at);                   \
    } while (0)
    for (int l = m->n_layers - 1; l >= 0; l--) {
        const tr_layer *L = &m->layer[l];
        if (L->b) {
            top = L->b_off;
            if (target == 0 ? false : bucket_top - top >= target)
                CLOSE(top);
        }
        const size_t I = (size_t)L->in;
        size_t rows_per_block = target ? target / I : (size_t)L->out;
        if (target && rows_per_block < MIN_BLOCK_ROWS)
            rows_per_block = MIN_BLOCK_ROWS;
        if (rows_per_block == 0)
            rows_per_block = 1;
        if (rows_per_block * I > MAX_BUCKET_FLOATS)
            rows_per_block = MAX_BUCKET_FLOATS / I;
        for (size_t r1 = (size_t)L->out; r1 > 0;) {
            const size_t r0 = r1 > rows_per_block ? r1 - rows_per_block : 0;
            top = L->w_off + r0 * I;
            if (target == 0 ? r0 == 0 : (bucket_top - top >= target || bucket_top - top + I > MAX_BUCKET_FLOATS))
                CLOSE(top);
            r1 = r0;
        }
    }
    if (bucket_top > 0)
        CLOSE(0);
#undef CLOSE
    for (int i = 0; i < s->n; i++)
        s->splits[i] = s->begin[s->n - 1 - i];
    return 0;
}

int tr_grad_sync_create(tr_grad_sync **out, tr_dist *d, const tr_model *m, size_t bucket_bytes, bool exact,
                        tr_err *err)
{
    tr_grad_sync *s = calloc(1, sizeof *s);
    if (!s)
        return tr_fail(err, TR_ENOMEM, "out of memory");
    s->d = d;
    s->m = m;
    int rc = plan(s, bucket_bytes / sizeof(float), err);
    if (!rc && exact) { /* allocated here, not in the step: a failure must not split the ranks */
        s->acc = malloc((m->n_params + 3) * sizeof *s->acc);
        s->maxbuf = malloc((size_t)(m->n_tensors + 2) * sizeof *s->maxbuf);
        s->exp = malloc((size_t)(m->n_tensors + 1) * sizeof *s->exp);
        if (!s->acc || !s->maxbuf || !s->exp)
            rc = tr_fail(err, TR_ENOMEM, "cannot allocate the exact-sum buffers (%zu parameters)", m->n_params);
    }
    if (rc) {
        tr_grad_sync_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void tr_grad_sync_free(tr_grad_sync *s)
{
    if (!s)
        return;
    free(s->begin);
    free(s->end);
    free(s->splits);
    free(s->req);
    free(s->acc);
    free(s->maxbuf);
    free(s->exp);
    free(s);
}

int tr_grad_sync_buckets(const tr_grad_sync *s, const size_t **begins)
{
    *begins = s->splits;
    return s->n;
}

static bool communicating(const tr_grad_sync *s) { return s->d->impl && s->d->size > 1; }

static void start_bucket(tr_grad_sync *s, int i)
{
    const size_t b = s->begin[i], n = s->end[i] - b;
    int rc = MPI_Iallreduce(MPI_IN_PLACE, s->grads + b, (int)n, MPI_FLOAT, MPI_SUM, s->d->impl->comm, &s->req[i]);
    if (rc != MPI_SUCCESS && !s->async_rc) {
        s->req[i] = MPI_REQUEST_NULL;
        s->async_rc = mpi_fail(&s->async_err_buf, rc, "MPI_Iallreduce");
    }
}

static void on_ready(void *ctx, size_t frontier)
{
    tr_grad_sync *s = ctx;
    while (s->started < s->n && s->begin[s->started] >= frontier)
        start_bucket(s, s->started++);
    if (s->started > 0) { /* drive progress of what is in flight */
        int flag;
        MPI_Testall(s->started, s->req, &flag, MPI_STATUSES_IGNORE);
    }
}

static void on_progress(void *ctx)
{
    tr_grad_sync *s = ctx;
    if (s->started > 0) {
        int flag;
        MPI_Testall(s->started, s->req, &flag, MPI_STATUSES_IGNORE);
    }
}

void tr_grad_sync_begin(tr_grad_sync *s, float *grads, tr_grad_hook *hook)
{
    s->grads = grads;
    s->started = 0;
    s->async_rc = 0;
    memset(hook, 0, sizeof *hook);
    if (!communicating(s))
        return;
    hook->ready = on_ready;
    hook->progress = on_progress;
    hook->ctx = s;
    hook->splits = s->splits;
    hook->n_splits = s->n;
}

int tr_grad_sync_finish(tr_grad_sync *s, double *wait_seconds, tr_err *err)
{
    if (!communicating(s))
        return 0;
    while (s->started < s->n)
        start_bucket(s, s->started++);
    const double t0 = tr_step_seconds();
    tr_watch_begin("the gradient exchange");
    int rc = MPI_Waitall(s->n, s->req, MPI_STATUSES_IGNORE);
    tr_watch_end();
    if (wait_seconds)
        *wait_seconds += tr_step_seconds() - t0;
    if (s->async_rc) {
        if (err)
            *err = s->async_err_buf;
        return s->async_rc;
    }
    if (rc != MPI_SUCCESS)
        return mpi_fail(err, rc, "MPI_Waitall (gradient buckets)");
    return 0;
}

/* --------------------------------------------------------------- exact sum ----------- */

#define EXACT_BITS 40   /* |value| < 2^40 grid units: 2^23 values sum without overflow */
#define FIXED_BLOCK 512 /* values summed per block: the integers stay in L1 */
#define MAX_SMALL_SUM 2048 /* sums of this many values stay below 2^51 (from_fixed's `small`) */

/* 1.5 * 2^52: for |x| < 2^51, the double MAGIC + x holds x as an integer in its low bits,
 * so adding it rounds a double to an integer (nearest, ties to even, as llrint) and its bit
 * pattern turns an integer back into a double: both vectorise where llrint and the int64 to
 * double conversion (AVX-512 only) do not. */
#define MAGIC 6755399441055744.0
#define MAGIC_BITS INT64_C(0x4338000000000000)

/* acc[i] (+)= round(g[i] * scale) for |g[i] * scale| < 2^51 (first: = instead of +=). scale
 * is a power of two, so g * scale is exact. */
TR_VECTOR_KERNEL static void add_fixed(int64_t *restrict acc, const float *restrict g, size_t n, double scale,
                                       bool first)
{
    if (first)
        for (size_t i = 0; i < n; i++) {
            const double y = (double)g[i] * scale + MAGIC;
            int64_t bits;
            memcpy(&bits, &y, sizeof bits);
            acc[i] = bits - MAGIC_BITS;
        }
    else
        for (size_t i = 0; i < n; i++) {
            const double y = (double)g[i] * scale + MAGIC;
            int64_t bits;
            memcpy(&bits, &y, sizeof bits);
            acc[i] += bits - MAGIC_BITS;
        }
}

/* The largest |g[i]|; *bad when any is NaN or infinite. For non-negative floats the bit
 * patterns order as the values, so this is an integer max (vectorised). */
TR_VECTOR_KERNEL static float max_abs(const float *restrict g, size_t n, bool *bad)
{
    uint32_t mx = 0, nonfinite = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t b;
        memcpy(&b, &g[i], sizeof b);
        b &= 0x7fffffffu;
        mx = b > mx ? b : mx;
        nonfinite |= b >= 0x7f800000u;
    }
    *bad |= nonfinite != 0;
    float a;
    memcpy(&a, &mx, sizeof a);
    return a;
}

/* out[i] = acc[i] * scale rounded to float (scale a power of two); `small` promises
 * |acc[i]| < 2^51, where the bit pattern converts the integer exactly, as (double) does. */
TR_VECTOR_KERNEL static void from_fixed(float *restrict out, const int64_t *restrict acc, size_t n, double scale,
                                        bool small)
{
    if (small)
        for (size_t i = 0; i < n; i++) {
            const int64_t bits = acc[i] + MAGIC_BITS;
            double y;
            memcpy(&y, &bits, sizeof y);
            out[i] = (float)((y - MAGIC) * scale);
        }
    else
        for (size_t i = 0; i < n; i++)
            out[i] = (float)((double)acc[i] * scale);
}

/* Merges n gradients into the maxima mx: mx[t] = max |g| of tensor t (t < T), mx[T] = max
 * |loss|, mx[T + 1] = 1 when any value is not finite. */
static void exact_maxima(const tr_model *m, float *const *g, const double *loss, int n, double *mx)
{
    const int T = m->n_tensors;
    bool bad = false;
    for (int j = 0; j < n; j++) {
        for (int t = 0; t < T; t++) {
            const float a = max_abs(g[j] + m->tensor[t].offset, m->tensor[t].size, &bad);
            mx[t] = a > mx[t] ? a : mx[t];
        }
        const double l = fabs(loss[j]);
        bad |= !isfinite(l);
        mx[T] = l > mx[T] ? l : mx[T];
    }
    if (bad)
        mx[T + 1] = 1.0;
}

/* One grid per tensor and for the loss: 2^(e - 40) with every magnitude below 2^e. */
static void exact_grid(const double *mx, int T, int *exp)
{
    for (int t = 0; t <= T; t++) {
        int e = 0;
        if (mx[t] > 0.0)
            frexp(mx[t], &e);
        exp[t] = e - EXACT_BITS;
    }
}

/* The sum of n gradients over [lo, hi), each value rounded once to its tensor's grid and the
 * integers added, which is exact and so independent of the order of the gradients. With acc
 * (indexed from lo) the integers are kept there (for a sum across nodes); else each block is
 * rounded once back to float into out. */
static void fixed_point_sum(const tr_model *m, const int *exp, float *const *g, int n, size_t lo, size_t hi,
                            int64_t *acc, float *out)
{
    int64_t block[FIXED_BLOCK];
    for (int t = 0; t < m->n_tensors; t++) {
        size_t a, b;
        if (!tr_tensor_part(&m->tensor[t], lo, hi, &a, &b))
            continue;
        const double scale = ldexp(1.0, -exp[t]), inv = ldexp(1.0, exp[t]);
        for (size_t i0 = a; i0 < b; i0 += FIXED_BLOCK) {
            const size_t nb = b - i0 < FIXED_BLOCK ? b - i0 : FIXED_BLOCK;
            int64_t *dst = acc ? acc + (i0 - lo) : block;
            if (n == 0)
                memset(dst, 0, nb * sizeof *dst);
            for (int j = 0; j < n; j++)
                add_fixed(dst, g[j] + i0, nb, scale, j == 0);
            if (!acc)
                from_fixed(out + i0, dst, nb, inv, n <= MAX_SMALL_SUM);
        }
    }
}

/* The integers of fixed_point_sum (acc indexed from lo), sums of at most `terms` values
 * each, back to floats. */
static void fixed_to_float(const tr_model *m, const int *exp, const int64_t *acc, size_t lo, size_t hi, double terms,
                           float *out)
{
    for (int t = 0; t < m->n_tensors; t++) {
        size_t a, b;
        if (tr_tensor_part(&m->tensor[t], lo, hi, &a, &b))
            from_fixed(out + a, acc + (a - lo), b - a, ldexp(1.0, exp[t]), terms <= MAX_SMALL_SUM);
    }
}

static int64_t fixed_loss(const double *loss, int n, int exp)
{
    int64_t sum = 0;
    for (int j = 0; j < n; j++)
        sum += llrint(ldexp(loss[j], -exp));
    return sum;
}

/* In-place sum of n int64 (or double maxima) over comm, in pieces one MPI call can carry. */
static int allreduce_pieces(void *buf, size_t n, MPI_Datatype type, MPI_Op op, MPI_Comm comm, const char *what,
                            tr_err *err)
{
    int rc = MPI_SUCCESS;
    tr_watch_begin("the gradient exchange");
    for (size_t off = 0; off < n && rc == MPI_SUCCESS; off += MAX_BUCKET_FLOATS) {
        const size_t k = n - off < MAX_BUCKET_FLOATS ? n - off : MAX_BUCKET_FLOATS;
        rc = MPI_Allreduce(MPI_IN_PLACE, (char *)buf + off * 8, (int)k, type, op, comm);
    }
    tr_watch_end();
    MPI_CHECK(rc, what);
    return 0;
}

int tr_grad_sync_exact(tr_grad_sync *s, float *const *micro, const double *loss, int n_micro,
                       const int64_t counts[2], float *out, double *loss_total, int64_t counts_total[2],
                       tr_err *err)
{
    const tr_model *m = s->m;
    const int T = m->n_tensors;
    const size_t P = m->n_params;
    if (!s->acc)
        return tr_fail(err, TR_EINTERNAL, "the gradient sync was created without exact-sum buffers");
    for (int t = 0; t <= T + 1; t++)
        s->maxbuf[t] = 0.0;
    exact_maxima(m, micro, loss, n_micro, s->maxbuf);
    int rc = tr_dist_max_f64(s->d, s->maxbuf, T + 2, err);
    if (rc)
        return rc;
    if (s->maxbuf[T + 1] != 0.0)
        return tr_fail(err, TR_EDIVERGED, "a gradient or loss is not finite");
    exact_grid(s->maxbuf, T, s->exp);
    fixed_point_sum(m, s->exp, micro, n_micro, 0, P, s->acc, NULL);
    s->acc[P] = fixed_loss(loss, n_micro, s->exp[T]);
    s->acc[P + 1] = counts[0];
    s->acc[P + 2] = counts[1];
    if (communicating(s) &&
        (rc = allreduce_pieces(s->acc, P + 3, MPI_INT64_T, MPI_SUM, s->d->impl->comm, "MPI_Allreduce (exact gradient sum)",
                               err)))
        return rc;
    fixed_to_float(m, s->exp, s->acc, 0, P, INFINITY, out);
    *loss_total = ldexp((double)s->acc[P], s->exp[T]);
    counts_total[0] = s->acc[P + 1];
    counts_total[1] = s->acc[P + 2];
    return 0;
}

/* --------------------------------------------------------------- node-shared step --- */

typedef struct tr_node_group tr_node_group;

struct tr_node_group {
    tr_dist *d;
    MPI_Win win;
    MPI_Comm cross;     /* same local rank on every node (MPI_COMM_NULL on one node) */
    int local_size;
    size_t n_params;
    float *params[2];   /* the parameters; the second buffer only where updates go out of place */
    float **state;      /* (n_state) */
    void **slots;       /* (local_size) each rank's slot: its gradient (shared), chunks (exact) */
    _Atomic int64_t *counters; /* (n_counters) */
};

static void node_group_free(tr_node_group *g);

static void *align64(void *p) { return (void *)(((uintptr_t)p + 63) & ~(uintptr_t)63); }

static int node_group_create(tr_node_group **out, tr_dist *d, size_t n_params, int n_param_bufs, int n_state,
                             int n_counters, size_t slot_bytes, tr_err *err)
{
    *out = NULL;
    if (!d->impl || d->size == 1)
        return 0;
    /* every node must have the same number of ranks */
    int sizes[2] = {d->local_size, -d->local_size};
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, sizes, 2, MPI_INT, MPI_MAX, d->impl->comm), "MPI_Allreduce");
    if (sizes[0] != -sizes[1])
        return 0;
    if (!ATOMIC_LLONG_LOCK_FREE)
        return 0; /* counters in shared memory need lock-free atomics */
    tr_node_group *g = calloc(1, sizeof *g);
    if (g) {
        g->d = d;
        g->local_size = d->local_size;
        g->n_params = n_params;
        g->cross = MPI_COMM_NULL;
        g->win = MPI_WIN_NULL;
        g->state = calloc((size_t)n_state + 1, sizeof *g->state);
        g->slots = calloc((size_t)d->local_size, sizeof *g->slots);
    }
    /* agreed before the collective allocation: a rank that failed here must not leave the
     * others waiting in it */
    const int ok = tr_dist_agree(d, g && g->state && g->slots ? 0 : TR_ENOMEM);
    if (ok) {
        node_group_free(g);
        return tr_fail(err, ok, "out of memory for the node-shared step (on some rank)");
    }
    const size_t buf = n_params * sizeof(float) + 64;
    const size_t counters = ((size_t)n_counters * sizeof(int64_t) + 63) / 64 * 64 + 64;
    /* local rank 0 holds the counters, the parameters and the state; everyone a slot */
    const size_t mine = slot_bytes + 64 + (d->local_rank == 0 ? counters + buf * (size_t)(n_param_bufs + n_state) : 0);
    MPI_Info info;
    MPI_Info_create(&info);
    MPI_Info_set(info, "alloc_shared_noncontig", "true");
    void *base = NULL;
    int rc = MPI_Win_allocate_shared((MPI_Aint)mine, 1, info, d->impl->local, &base, &g->win);
    MPI_Info_free(&info);
    if (rc != MPI_SUCCESS) {
        g->win = MPI_WIN_NULL;
        node_group_free(g);
        return mpi_fail(err, rc, "MPI_Win_allocate_shared (node-shared parameters)");
    }
    for (int r = 0; r < d->local_size; r++) {
        MPI_Aint size;
        int unit;
        void *p;
        MPI_Win_shared_query(g->win, r, &size, &unit, &p);
        char *c = align64(p);
        if (r == 0) {
            g->counters = (_Atomic int64_t *)(void *)c;
            c = align64(c + counters - 64);
            for (int i = 0; i < n_param_bufs; i++) {
                g->params[i] = (float *)(void *)c;
                c = align64(c + buf - 64);
            }
            for (int i = 0; i < n_state; i++) {
                g->state[i] = (float *)(void *)c;
                c = align64(c + buf - 64);
            }
        }
        g->slots[r] = c;
    }
    if (d->local_rank == 0) {
        for (int b = 0; b < n_counters; b++)
            atomic_init(&g->counters[b], 0);
        for (int i = 0; i < n_param_bufs; i++)
            memset(g->params[i], 0, n_params * sizeof(float));
        for (int i = 0; i < n_state; i++)
            memset(g->state[i], 0, n_params * sizeof(float));
    }
    memset(g->slots[d->local_rank], 0, slot_bytes);
    if (sizes[0] < d->size) { /* several nodes */
        rc = MPI_Comm_split(d->impl->comm, d->local_rank, d->rank, &g->cross);
        if (rc != MPI_SUCCESS) {
            g->cross = MPI_COMM_NULL;
            node_group_free(g);
            return mpi_fail(err, rc, "MPI_Comm_split (cross-node)");
        }
        MPI_Comm_set_errhandler(g->cross, MPI_ERRORS_RETURN);
    }
    MPI_Barrier(d->impl->local); /* everything initialised before anyone uses it */
    *out = g;
    return 0;
}

static void node_group_free(tr_node_group *g)
{
    if (!g)
        return;
    if (g->cross != MPI_COMM_NULL)
        MPI_Comm_free(&g->cross);
    if (g->win != MPI_WIN_NULL)
        MPI_Win_free(&g->win);
    free(g->state);
    free(g->slots);
    free(g);
}

static float *node_group_params(tr_node_group *g, int i) { return g->params[i]; }
static float *node_group_state(tr_node_group *g, int i) { return g->state[i]; }
static void *node_group_slot(tr_node_group *g, int local_rank) { return g->slots[local_rank]; }
static bool node_group_multinode(const tr_node_group *g) { return g->cross != MPI_COMM_NULL; }

static void node_group_signal(tr_node_group *g, int b, int64_t r)
{
    (void)r;
    atomic_fetch_add_explicit(&g->counters[b], 1, memory_order_release);
}

static bool node_group_complete(const tr_node_group *g, int b, int64_t r)
{
    return atomic_load_explicit(&g->counters[b], memory_order_acquire) >= r * g->local_size;
}

static int node_group_cross_sum(tr_node_group *g, float *buf, int64_t n, tr_err *err)
{
    if (g->cross == MPI_COMM_NULL)
        return 0;
    if (tr_fault_mpi("cross_sum")) /* a test hook (fault.h) */
        return mpi_fail(err, MPI_ERR_OTHER, "MPI_Allreduce (cross-node gradient shard)");
    int rc = MPI_SUCCESS;
    tr_watch_begin("the gradient exchange between nodes");
    for (int64_t off = 0; off < n && rc == MPI_SUCCESS; off += (int64_t)MAX_BUCKET_FLOATS) {
        const int64_t k = n - off < (int64_t)MAX_BUCKET_FLOATS ? n - off : (int64_t)MAX_BUCKET_FLOATS;
        rc = MPI_Allreduce(MPI_IN_PLACE, buf + off, (int)k, MPI_FLOAT, MPI_SUM, g->cross);
    }
    tr_watch_end();
    MPI_CHECK(rc, "MPI_Allreduce (cross-node gradient shard)");
    return 0;
}

/* --------------------------------------------------------------- the exchange -------- */

struct tr_reduce {
    tr_reduce_kind kind;
    tr_dist *d;
    tr_model *m;
    tr_update_ops ops;
    double clip_norm;          /* > 0: the global norm first, then the update */
    double *comm_s, *optim_s;  /* the trainer's phase times */
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
};

/* shared: parameters updated at once into the scratch block (in this core's cache), then
 * streamed to the node's buffer (mem.h). Only from STREAM_MIN parameters (256 KiB): a small
 * model's parameters stay in the caches, and streamed out they would be read back from
 * memory (the moons net at np=2, 501 parameters: 5.0 us a step streamed, 4.1 us plain;
 * the 784 net, 235k: the optimizer 0.065 ms streamed, 0.10 plain) */
#define STREAM_BLOCK ((size_t)8192)
#define STREAM_MIN ((size_t)1 << 16)

static bool update(tr_reduce *r, size_t lo, size_t hi, float scale)
{
    if (r->measure) /* before the update: the gradient as it arrived, unclipped */
        r->step_sq += r->ops.sq_norm(r->ops.ctx, lo, hi);
    bool ok = true;
    if (!r->params_out) {
        ok = r->ops.update(r->ops.ctx, lo, hi, scale, NULL);
    } else if (!r->scratch) {
        ok = r->ops.update(r->ops.ctx, lo, hi, scale, r->params_out + lo);
    } else {
        for (int t = 0; t < r->m->n_tensors; t++) { /* the tensors' ranges: the padding stays zero */
            size_t a, e;
            if (!tr_tensor_part(&r->m->tensor[t], lo, hi, &a, &e))
                continue;
            while (a < e) { /* blocks end on multiples of STREAM_BLOCK */
                const size_t b = (a / STREAM_BLOCK + 1) * STREAM_BLOCK < e ? (a / STREAM_BLOCK + 1) * STREAM_BLOCK : e;
                ok &= r->ops.update(r->ops.ctx, a, b, scale, r->scratch);
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

/* Every rank holds the summed gradient: the norm and the update are the same everywhere. */
static void update_all(tr_reduce *r)
{
    const double t0 = tr_step_seconds();
    r->ops.begin(r->ops.ctx);
    r->update_finite = true;
    const size_t P = r->m->n_params;
    update(r, 0, P, clip_scale(r, r->clip_norm > 0.0 ? r->ops.sq_norm(r->ops.ctx, 0, P) : 0.0));
    *r->optim_s += tr_step_seconds() - t0;
}

/* local: the tensors at or above `frontier` are final and no longer read by backward:
 * update them now. */
static void local_layer_done(void *ctx, size_t frontier)
{
    tr_reduce *r = ctx;
    const tr_model *m = r->m;
    const double t0 = tr_step_seconds();
    while (r->local_top > 0 && m->tensor[r->local_top - 1].offset >= frontier) {
        const tr_tensor *T = &m->tensor[--r->local_top];
        update(r, T->offset, T->offset + T->size, 1.0f);
    }
    *r->optim_s += tr_step_seconds() - t0;
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
        if (!node_group_complete(r->node, k, r->round))
            return;
        size_t sb, se;
        shard_of(r, k, &sb, &se);
        /* my shard of my own slot becomes the node sum: nobody else reads this range of it */
        const double t0 = tr_step_seconds();
        float *restrict mine = r->m->grads;
        for (int j = 0; j < L; j++) {
            if (j == d->local_rank)
                continue;
            const float *restrict other = node_group_slot(r->node, j);
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
        const int crc = node_group_multinode(r->node)
                            ? node_group_cross_sum(r->node, mine + sb, (int64_t)(se - sb), &cerr)
                            : 0;
        if (crc && !r->step_rc) {
            r->step_rc = crc;
            r->step_err = cerr;
        }
        const double t1 = tr_step_seconds();
        *r->comm_s += t1 - t0;
        if (r->clip_norm <= 0.0)
            update(r, sb, se, 1.0f);
        *r->optim_s += tr_step_seconds() - t1;
        r->updated++;
    }
}

static void shared_layer_done(void *ctx, size_t frontier)
{
    tr_reduce *r = ctx;
    while (r->signalled < r->n_buckets && r->bucket_begin[r->n_buckets - 1 - r->signalled] >= frontier)
        node_group_signal(r->node, r->n_buckets - 1 - r->signalled++, r->round);
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

/* shared: the rest of the step after the last backward. */
static int shared_finish(tr_reduce *r, tr_step_stats *st, tr_err *err)
{
    shared_layer_done(r, 0);
    const double t0 = tr_step_seconds();
    const double nested0 = *r->optim_s + *r->comm_s;
    tr_watch_begin("the node's gradient sum");
    for (int spins = 0; r->updated < r->n_buckets; spins++) {
        shared_update_ready(r);
        if (r->updated < r->n_buckets)
            relax(spins); /* the others are still in backward; do not slow them down */
    }
    tr_watch_end();
    if (r->clip_norm > 0.0) { /* the global norm first, then the updates */
        double sq = 0.0;
        for (int k = 0; k < r->n_buckets; k++) {
            size_t sb, se;
            shard_of(r, k, &sb, &se);
            sq += r->ops.sq_norm(r->ops.ctx, sb, se);
        }
        int rc = tr_dist_sum_f64(r->d, &sq, 1, err);
        if (rc)
            return rc;
        sq /= (double)(r->d->size / r->d->local_size); /* every node holds every shard */
        const float scale = clip_scale(r, sq);
        const double t1 = tr_step_seconds();
        for (int k = 0; k < r->n_buckets; k++) {
            size_t sb, se;
            shard_of(r, k, &sb, &se);
            update(r, sb, se, scale);
        }
        *r->optim_s += tr_step_seconds() - t1;
    }
    atomic_thread_fence(memory_order_seq_cst);
    /* the sum of the statistics is also the barrier: after it every shard is updated */
    double stats[6] = {st->loss, (double)st->correct, (double)st->rows, r->update_finite ? 0.0 : 1.0,
                       st->stop ? 1.0 : 0.0, r->step_sq};
    int rc = tr_dist_sum_f64(r->d, stats, 6, err);
    atomic_thread_fence(memory_order_seq_cst);
    *r->comm_s += tr_step_seconds() - t0 - (*r->optim_s + *r->comm_s - nested0);
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
    int rc = tr_grad_sync_finish(r->sync, r->comm_s, err);
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
    return r->node ? node_group_slot(r->node, local_rank) : r->header;
}

static float *exact_chunk_of(tr_reduce *r, int local_rank, int64_t i)
{
    return (float *)(void *)(exact_header_of(r, local_rank) + r->header_len) + (size_t)i * r->chunk_stride;
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
    const int T = m->n_tensors, L = r->node ? r->d->local_size : 1, me = r->node ? r->d->local_rank : 0;
    const double t0 = tr_step_seconds();
    double *h = r->header;
    for (int t = 0; t <= T + 1; t++)
        h[H_MAXIMA + t] = 0.0;
    exact_maxima(m, r->chunk, r->chunk_loss, (int)r->n_chunks, h + H_MAXIMA);
    memcpy(h + H_LOSSES(T), r->chunk_loss, (size_t)r->n_chunks * sizeof *h);
    h[H_CHUNKS] = (double)r->n_chunks;
    h[H_CORRECT] = (double)st->correct;
    h[H_ROWS] = (double)st->rows;
    if (r->node) {
        r->round++;
        node_group_signal(r->node, 0, r->round);
        tr_watch_begin("the node's gradient sum");
        for (int spins = 0; !node_group_complete(r->node, 0, r->round); spins++)
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
        exact_grid(mx, T, r->exp);
        int64_t lo, hi;
        tr_share((int64_t)m->n_params, me, L, &lo, &hi);
        sb = (size_t)lo;
        se = (size_t)hi;
        int64_t loss = 0;
        for (int j = 0; j < L; j++) {
            const double *hj = exact_header_of(r, j);
            loss += fixed_loss(hj + H_LOSSES(T), (int)hj[H_CHUNKS], r->exp[T]);
        }
        if (r->exact_cross == MPI_COMM_NULL) {
            fixed_point_sum(m, r->exp, r->gather, n, sb, se, NULL, m->grads);
        } else {
            int64_t *acc = r->cross_acc;
            const size_t k = se - sb;
            fixed_point_sum(m, r->exp, r->gather, n, sb, se, acc, NULL);
            acc[k] = loss;
            acc[k + 1] = node_counts[0];
            acc[k + 2] = node_counts[1];
            rc = allreduce_pieces(acc, k + 3, MPI_INT64_T, MPI_SUM, r->exact_cross, "MPI_Allreduce (exact gradient sum)",
                                  err);
            if (!rc)
                fixed_to_float(m, r->exp, acc, sb, se, mx[T + 2] * (r->d->size / L), m->grads);
            loss = acc[k];
            node_counts[0] = acc[k + 1];
            node_counts[1] = acc[k + 2];
        }
        st->loss = ldexp((double)loss, r->exp[T]);
        st->correct = node_counts[0];
        st->rows = node_counts[1];
    }
    const double t1 = tr_step_seconds();
    *r->comm_s += t1 - t0;
    /* the update of this rank's shard (every rank reaches the collectives below) */
    double sq = 0.0;
    if (!rc && finite) {
        r->ops.begin(r->ops.ctx);
        if (r->clip_norm > 0.0) {
            sq = r->ops.sq_norm(r->ops.ctx, sb, se);
            rc = tr_dist_sum_f64(r->d, &sq, 1, err);
            sq /= (double)(r->d->size / L); /* every node holds every shard */
        }
        if (!rc)
            update(r, sb, se, clip_scale(r, sq));
    }
    *r->optim_s += tr_step_seconds() - t1;
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
    int rc = node_group_create(&r->node, d, r->m->n_params, n_param_bufs, o->n_state, n_counters, slot_bytes, err);
    if (rc || !r->node)
        return rc;
    float *states[3];
    for (int i = 0; i < o->n_state; i++)
        states[i] = node_group_state(r->node, i);
    tr_optim_use_state(o, states);
    float *params = node_group_params(r->node, 0);
    if (d->local_rank == 0)
        memcpy(params, r->m->params, r->m->n_params * sizeof(float));
    if (!grads_in_slot && !r->m->external)
        r->owned_grads = r->m->grads; /* the model no longer frees it once its buffers are external */
    tr_model_use_buffers(r->m, params, grads_in_slot ? node_group_slot(r->node, d->local_rank) : r->m->grads);
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
    r->header = r->node ? node_group_slot(r->node, me) : tr_big_alloc(slot);
    if (r->node)
        r->exact_cross = node_group_multinode(r->node) ? r->node->cross : MPI_COMM_NULL;
    else if (d->size > 1)
        r->exact_cross = d->impl->comm;
    r->chunk = calloc((size_t)chunk_bufs + 1, sizeof *r->chunk);
    r->chunk_loss = calloc((size_t)chunk_bufs + 1, sizeof *r->chunk_loss);
    r->gather = calloc((size_t)L * (size_t)chunk_bufs + 1, sizeof *r->gather);
    r->maxima = calloc((size_t)T + 3, sizeof *r->maxima);
    r->exp = calloc((size_t)T + 1, sizeof *r->exp);
    const size_t shard = (m->n_params + (size_t)L - 1) / (size_t)L;
    if (r->exact_cross != MPI_COMM_NULL)
        r->cross_acc = tr_big_alloc((shard + 3) * sizeof *r->cross_acc);
    const bool ok = r->header && r->chunk && r->chunk_loss && r->gather && r->maxima && r->exp &&
                    (r->exact_cross == MPI_COMM_NULL || r->cross_acc);
    for (int64_t i = 0; ok && i < chunk_bufs; i++)
        r->chunk[i] = exact_chunk_of(r, me, i);
    return tr_dist_agree(d, ok ? 0 : tr_fail(err, TR_ENOMEM, "cannot allocate %lld chunk gradient buffers",
                                             (long long)chunk_bufs));
}

int tr_reduce_create(tr_reduce **out, tr_dist *d, tr_model *m, tr_optim *o, const tr_train_config *tc,
                     int64_t chunk_bufs, const tr_update_ops *ops, double *comm_s, double *optim_s, tr_err *err)
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
    r->ops = *ops;
    r->clip_norm = tc->clip_norm;
    r->comm_s = comm_s;
    r->optim_s = optim_s;
    /* the exact strategy keeps its own buffers (exact_create): the sync only plans buckets */
    rc = tr_grad_sync_create(&r->sync, d, m, (size_t)tc->bucket_kb * 1024, false, err);
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
    node_group_free(r->node);
    free(r->chunk);
    free(r->chunk_loss);
    free(r->gather);
    free(r->maxima);
    free(r->exp);
    tr_big_free(r->cross_acc);
    tr_big_free(r->scratch);
    tr_big_free(r->owned_grads);
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
        r->ops.begin(r->ops.ctx);
        r->local_top = r->m->n_tensors;
    } else if (r->kind == TR_REDUCE_SHARED) {
        r->round++;
        r->signalled = r->updated = 0;
        r->ops.begin(r->ops.ctx);
        /* the other buffer: every rank reads this step's parameters until the step ends */
        const float *now = r->m->params;
        r->params_out = node_group_params(r->node, now == node_group_params(r->node, 0) ? 1 : 0);
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
