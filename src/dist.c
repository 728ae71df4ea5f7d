/*
 * dist.c: the only compilation unit that calls MPI.
 *
 * Every MPI call returns errors (MPI_ERRORS_RETURN on our communicator) and is checked; a
 * failure becomes TR_EMPI with MPI's own message. In a local world (impl == NULL) every
 * collective is the identity.
 */
#include "trainer/dist.h"

#include "trainer/clock.h"
#include "trainer/fault.h"
#include "vector_kernel.h"

#include <mpi.h>

#include <limits.h>
#include <stdatomic.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct tr_dist_impl {
    MPI_Comm comm;  /* our duplicate, with MPI_ERRORS_RETURN */
    MPI_Comm local; /* ranks sharing this node */
    bool owns_mpi;  /* this world called MPI_Init */
};

static int mpi_fail(tr_err *err, int rc, const char *what)
{
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return tr_fail(err, TR_EMPI, "%s failed: %s", what, msg);
}

#define MPI_CHECK(call, what)                  \
    do {                                       \
        int mpi_rc_ = (call);                  \
        if (mpi_rc_ != MPI_SUCCESS)            \
            return mpi_fail(err, mpi_rc_, what); \
    } while (0)

static int wrap(tr_dist *d, MPI_Comm comm, tr_err *err)
{
    d->impl = calloc(1, sizeof *d->impl);
    if (!d->impl)
        return tr_fail(err, TR_ENOMEM, "out of memory");
    d->impl->comm = comm;
    d->impl->local = MPI_COMM_NULL;
    MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm, &d->rank);
    MPI_Comm_size(comm, &d->size);
    MPI_CHECK(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, d->rank, MPI_INFO_NULL, &d->impl->local),
              "MPI_Comm_split_type");
    MPI_Comm_rank(d->impl->local, &d->local_rank);
    MPI_Comm_size(d->impl->local, &d->local_size);
    const int per_node = tr_fault_ranks_per_node(); /* a test hook: "nodes" of K ranks */
    if (per_node > 0 && per_node < d->local_size) {
        MPI_Comm node;
        MPI_CHECK(MPI_Comm_split(d->impl->local, d->local_rank / per_node, d->rank, &node), "MPI_Comm_split");
        MPI_Comm_free(&d->impl->local);
        d->impl->local = node;
        MPI_Comm_rank(node, &d->local_rank);
        MPI_Comm_size(node, &d->local_size);
    }
    return 0;
}

int tr_dist_init(tr_dist *d, int *argc, char ***argv, tr_err *err)
{
    memset(d, 0, sizeof *d);
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
        int rc = MPI_Init(argc, argv);
        if (rc != MPI_SUCCESS)
            return tr_fail(err, TR_EMPI, "MPI_Init failed (code %d)", rc);
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm comm;
    MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &comm), "MPI_Comm_dup");
    int rc = wrap(d, comm, err);
    if (!rc)
        d->impl->owns_mpi = !initialized;
    return rc;
}

void tr_dist_init_local(tr_dist *d)
{
    memset(d, 0, sizeof *d);
    d->size = d->local_size = 1;
}

int tr_dist_split(tr_dist *parent, int color, tr_dist *sub, tr_err *err)
{
    memset(sub, 0, sizeof *sub);
    if (!parent->impl) {
        if (color >= 0)
            tr_dist_init_local(sub);
        return 0;
    }
    MPI_Comm c;
    MPI_CHECK(MPI_Comm_split(parent->impl->comm, color < 0 ? MPI_UNDEFINED : color, parent->rank, &c),
              "MPI_Comm_split");
    if (c == MPI_COMM_NULL)
        return 0;
    return wrap(sub, c, err);
}

void tr_dist_free(tr_dist *d)
{
    if (d->impl) {
        if (d->impl->local != MPI_COMM_NULL)
            MPI_Comm_free(&d->impl->local);
        if (d->impl->comm != MPI_COMM_NULL)
            MPI_Comm_free(&d->impl->comm);
        free(d->impl);
        d->impl = NULL;
    }
}

void tr_dist_finalize(tr_dist *d)
{
    if (!d->impl && d->size == 1)
        return; /* local world: MPI was never started */
    tr_dist_free(d);
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized)
        MPI_Finalize();
}

void tr_dist_barrier(tr_dist *d)
{
    if (d->impl)
        MPI_Barrier(d->impl->comm);
}

int tr_dist_agree(tr_dist *d, int rc)
{
    if (!d->impl || d->size == 1)
        return rc;
    int all = rc;
    if (MPI_Allreduce(&rc, &all, 1, MPI_INT, MPI_MIN, d->impl->comm) != MPI_SUCCESS)
        return rc ? rc : TR_EMPI;
    return all;
}

static int reduce(tr_dist *d, void *buf, int n, MPI_Datatype type, MPI_Op op, tr_err *err)
{
    if (!d->impl || d->size == 1)
        return 0;
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, buf, n, type, op, d->impl->comm), "MPI_Allreduce");
    return 0;
}

int tr_dist_sum_f64(tr_dist *d, double *buf, int n, tr_err *err) { return reduce(d, buf, n, MPI_DOUBLE, MPI_SUM, err); }
int tr_dist_max_f64(tr_dist *d, double *buf, int n, tr_err *err) { return reduce(d, buf, n, MPI_DOUBLE, MPI_MAX, err); }
int tr_dist_sum_i64(tr_dist *d, int64_t *buf, int n, tr_err *err)
{
    return reduce(d, buf, n, MPI_INT64_T, MPI_SUM, err);
}

int tr_dist_bcast(tr_dist *d, void *buf, size_t bytes, int root, tr_err *err)
{
    if (!d->impl || d->size == 1)
        return 0;
    char *p = buf;
    while (bytes > 0) {
        const int chunk = bytes > (size_t)INT_MAX ? INT_MAX : (int)bytes;
        MPI_CHECK(MPI_Bcast(p, chunk, MPI_BYTE, root, d->impl->comm), "MPI_Bcast");
        p += chunk;
        bytes -= (size_t)chunk;
    }
    return 0;
}

static int allgather(tr_dist *d, void *all, int64_t offset, int64_t count, MPI_Datatype type, tr_err *err)
{
    if (!d->impl || d->size == 1)
        return 0;
    if (count > INT_MAX || offset > INT_MAX)
        return tr_fail(err, TR_EMPI, "allgather of %lld items exceeds MPI's int count", (long long)(offset + count));
    /* every rank's (count, offset): all ranks check all pieces alike and so take the same
     * path, into MPI_Allgatherv or out with the same error */
    int64_t *pieces = malloc((size_t)d->size * 2 * sizeof *pieces);
    int *counts = malloc((size_t)d->size * 2 * sizeof *counts);
    int rc = tr_dist_agree(d, pieces && counts ? 0 : TR_ENOMEM);
    if (rc) {
        free(pieces);
        free(counts);
        return tr_fail(err, rc, "allgather: out of memory on some rank");
    }
    const int64_t mine[2] = {count, offset};
    rc = MPI_Allgather(mine, 2, MPI_INT64_T, pieces, 2, MPI_INT64_T, d->impl->comm);
    if (rc != MPI_SUCCESS) {
        free(pieces);
        free(counts);
        return mpi_fail(err, rc, "MPI_Allgather");
    }
    int64_t off = 0;
    for (int r = 0; r < d->size; r++) {
        if (pieces[2 * r + 1] != off || pieces[2 * r] < 0 || off + pieces[2 * r] > INT_MAX) {
            const long long at = (long long)pieces[2 * r + 1];
            free(pieces);
            free(counts);
            return tr_fail(err, TR_EINTERNAL, "allgather: rank %d's piece is at %lld, expected %lld", r, at,
                           (long long)off);
        }
        counts[r] = (int)pieces[2 * r];
        counts[d->size + r] = (int)off;
        off += pieces[2 * r];
    }
    rc = MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, all, counts, counts + d->size, type, d->impl->comm);
    free(pieces);
    free(counts);
    if (rc != MPI_SUCCESS)
        return mpi_fail(err, rc, "MPI_Allgatherv");
    return 0;
}

int tr_dist_allgather_f32(tr_dist *d, float *all, int64_t offset, int64_t count, tr_err *err)
{
    return allgather(d, all, offset, count, MPI_FLOAT, err);
}

int tr_dist_allgather_f64(tr_dist *d, double *all, int64_t offset, int64_t count, tr_err *err)
{
    return allgather(d, all, offset, count, MPI_DOUBLE, err);
}

int tr_dist_same_everywhere(tr_dist *d, const void *buf, size_t bytes, bool *same, tr_err *err)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    const unsigned char *p = buf;
    for (size_t i = 0; i < bytes; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    uint64_t lo = h, hi = h;
    *same = true;
    if (!d->impl || d->size == 1)
        return 0;
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_UINT64_T, MPI_MIN, d->impl->comm), "MPI_Allreduce");
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &hi, 1, MPI_UINT64_T, MPI_MAX, d->impl->comm), "MPI_Allreduce");
    *same = lo == hi;
    return 0;
}

int tr_dist_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* --------------------------------------------------------------- gradient sync ------- */

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
    const double t0 = tr_seconds();
    int rc = MPI_Waitall(s->n, s->req, MPI_STATUSES_IGNORE);
    if (wait_seconds)
        *wait_seconds += tr_seconds() - t0;
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

#define EXACT_BITS 40 /* |value| < 2^40 grid units: 2^23 values sum without overflow */

/* acc[i] += round(g[i] * scale) for |g[i] * scale| < 2^51: adding 1.5 * 2^52 leaves the
 * rounded integer (nearest, ties to even, as llrint) in the low bits of the double, which
 * vectorises where llrint does not. scale is a power of two, so g * scale is exact. */
TR_VECTOR_KERNEL static void add_fixed(int64_t *restrict acc, const float *restrict g, size_t n, double scale)
{
    const double magic = 6755399441055744.0; /* 1.5 * 2^52 */
    int64_t magic_bits;
    memcpy(&magic_bits, &magic, sizeof magic_bits);
    for (size_t i = 0; i < n; i++) {
        const double y = (double)g[i] * scale + magic;
        int64_t bits;
        memcpy(&bits, &y, sizeof bits);
        acc[i] += bits - magic_bits;
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

/* out[i] = acc[i] * scale, rounded once to float (scale a power of two). */
TR_VECTOR_KERNEL static void from_fixed(float *restrict out, const int64_t *restrict acc, size_t n, double scale)
{
    for (size_t i = 0; i < n; i++)
        out[i] = (float)((double)acc[i] * scale);
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
    /* 1. the largest magnitude per tensor (and of the loss sums) on any rank; any non-finite? */
    double *mx = s->maxbuf;
    bool bad = false;
    for (int t = 0; t <= T; t++)
        mx[t] = 0.0;
    for (int j = 0; j < n_micro; j++) {
        for (int t = 0; t < T; t++) {
            const tr_tensor *tt = &m->tensor[t];
            const float a = max_abs(micro[j] + tt->offset, tt->size, &bad);
            mx[t] = a > mx[t] ? a : mx[t];
        }
        const double l = fabs(loss[j]);
        bad |= !isfinite(l);
        mx[T] = l > mx[T] ? l : mx[T];
    }
    mx[T + 1] = bad ? 1.0 : 0.0;
    if (bad)
        for (int t = 0; t <= T; t++)
            mx[t] = 0.0;
    int rc = tr_dist_max_f64(s->d, mx, T + 2, err);
    if (rc)
        return rc;
    if (mx[T + 1] != 0.0)
        return tr_fail(err, TR_EDIVERGED, "a gradient or loss is not finite");
    /* 2. one grid per tensor: 2^(e - 40) with max < 2^e */
    for (int t = 0; t <= T; t++) {
        int e = 0;
        if (mx[t] > 0.0)
            frexp(mx[t], &e);
        s->exp[t] = e - EXACT_BITS;
    }
    /* 3. round every value once to its grid and add the integers (associative) */
    memset(s->acc, 0, (P + 3) * sizeof *s->acc);
    for (int j = 0; j < n_micro; j++)
        for (int t = 0; t < T; t++) {
            const tr_tensor *tt = &m->tensor[t];
            const float *g = micro[j] + tt->offset;
            add_fixed(s->acc + tt->offset, g, tt->size, ldexp(1.0, -s->exp[t])); /* values < 2^40 */
        }
    for (int j = 0; j < n_micro; j++)
        s->acc[P] += llrint(ldexp(loss[j], -s->exp[T]));
    s->acc[P + 1] = counts[0];
    s->acc[P + 2] = counts[1];
    if (communicating(s)) {
        for (size_t off = 0; off < P + 3; off += MAX_BUCKET_FLOATS) {
            const size_t n = P + 3 - off < MAX_BUCKET_FLOATS ? P + 3 - off : MAX_BUCKET_FLOATS;
            MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, s->acc + off, (int)n, MPI_INT64_T, MPI_SUM, s->d->impl->comm),
                      "MPI_Allreduce (exact gradient sum)");
        }
    }
    /* 4. back to floats */
    memset(out, 0, P * sizeof *out);
    for (int t = 0; t < T; t++) {
        const tr_tensor *tt = &m->tensor[t];
        from_fixed(out + tt->offset, s->acc + tt->offset, tt->size, ldexp(1.0, s->exp[t]));
    }
    *loss_total = ldexp((double)s->acc[P], s->exp[T]);
    counts_total[0] = s->acc[P + 1];
    counts_total[1] = s->acc[P + 2];
    return 0;
}

/* --------------------------------------------------------------- node-shared step --- */

struct tr_node_group {
    tr_dist *d;
    MPI_Win win;
    MPI_Comm cross;     /* same local rank on every node (MPI_COMM_NULL on one node) */
    int local_size;
    size_t n_params;
    float *params;
    float **state;      /* (n_state) */
    float **slots;      /* (local_size) */
    _Atomic int64_t *counters; /* (n_buckets) */
};

static void *align64(void *p) { return (void *)(((uintptr_t)p + 63) & ~(uintptr_t)63); }

int tr_node_group_create(tr_node_group **out, tr_dist *d, size_t n_params, int n_state, int n_buckets, tr_err *err)
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
        tr_node_group_free(g);
        return tr_fail(err, ok, "out of memory for the node-shared step (on some rank)");
    }
    const size_t buf = n_params * sizeof(float) + 64;
    const size_t counters = ((size_t)n_buckets * sizeof(int64_t) + 63) / 64 * 64 + 64;
    /* local rank 0 holds the counters, the parameters and the state; everyone a gradient slot */
    const size_t mine = buf + (d->local_rank == 0 ? counters + buf * (size_t)(1 + n_state) : 0);
    MPI_Info info;
    MPI_Info_create(&info);
    MPI_Info_set(info, "alloc_shared_noncontig", "true");
    void *base = NULL;
    int rc = MPI_Win_allocate_shared((MPI_Aint)mine, 1, info, d->impl->local, &base, &g->win);
    MPI_Info_free(&info);
    if (rc != MPI_SUCCESS) {
        g->win = MPI_WIN_NULL;
        tr_node_group_free(g);
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
            g->params = (float *)(void *)c;
            c = align64(c + buf - 64);
            for (int i = 0; i < n_state; i++) {
                g->state[i] = (float *)(void *)c;
                c = align64(c + buf - 64);
            }
        }
        g->slots[r] = (float *)(void *)c;
    }
    if (d->local_rank == 0) {
        for (int b = 0; b < n_buckets; b++)
            atomic_init(&g->counters[b], 0);
        memset(g->params, 0, n_params * sizeof(float));
        for (int i = 0; i < n_state; i++)
            memset(g->state[i], 0, n_params * sizeof(float));
    }
    memset(g->slots[d->local_rank], 0, n_params * sizeof(float));
    if (sizes[0] < d->size) { /* several nodes */
        rc = MPI_Comm_split(d->impl->comm, d->local_rank, d->rank, &g->cross);
        if (rc != MPI_SUCCESS) {
            g->cross = MPI_COMM_NULL;
            tr_node_group_free(g);
            return mpi_fail(err, rc, "MPI_Comm_split (cross-node)");
        }
        MPI_Comm_set_errhandler(g->cross, MPI_ERRORS_RETURN);
    }
    MPI_Barrier(d->impl->local); /* everything initialised before anyone uses it */
    *out = g;
    return 0;
}

void tr_node_group_free(tr_node_group *g)
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

float *tr_node_group_params(tr_node_group *g) { return g->params; }
float *tr_node_group_state(tr_node_group *g, int i) { return g->state[i]; }
float *tr_node_group_slot(tr_node_group *g, int local_rank) { return g->slots[local_rank]; }
bool tr_node_group_multinode(const tr_node_group *g) { return g->cross != MPI_COMM_NULL; }

void tr_node_group_signal(tr_node_group *g, int b, int64_t r)
{
    (void)r;
    atomic_fetch_add_explicit(&g->counters[b], 1, memory_order_release);
}

bool tr_node_group_complete(const tr_node_group *g, int b, int64_t r)
{
    return atomic_load_explicit(&g->counters[b], memory_order_acquire) >= r * g->local_size;
}

int tr_node_group_cross_sum(tr_node_group *g, float *buf, int64_t n, tr_err *err)
{
    if (g->cross == MPI_COMM_NULL)
        return 0;
    if (tr_fault_mpi("cross_sum")) /* a test hook (fault.h) */
        return mpi_fail(err, MPI_ERR_OTHER, "MPI_Allreduce (cross-node gradient shard)");
    for (int64_t off = 0; off < n; off += (int64_t)MAX_BUCKET_FLOATS) {
        const int64_t k = n - off < (int64_t)MAX_BUCKET_FLOATS ? n - off : (int64_t)MAX_BUCKET_FLOATS;
        MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, buf + off, (int)k, MPI_FLOAT, MPI_SUM, g->cross),
                  "MPI_Allreduce (cross-node gradient shard)");
    }
    return 0;
}
