/*
 * grad_sync.c: the bucket plan over the flat gradient and the bucketed MPI_Iallreduce
 * (grad_sync.h), in fp32 or compressed (grad_wire.h). Every MPI failure becomes TR_EMPI with
 * MPI's message.
 */
#include "trainer/grad_sync.h"

#include "dist_impl.h"
#include "grad_wire.h"

#include <stdlib.h>
#include <string.h>

/* A weight is cut into row blocks of at least this many rows, whatever the bucket size: each
 * block's gradient is its own product in backward, and thinner ones run below sgemm's speed
 * (1024-2048-2048-10 at np=2 with 256 KiB buckets: blocks of 32 rows, backward 60 ms; of
 * 128 rows, 53-55 ms). */
#define MIN_BLOCK_ROWS ((size_t)128)


struct tr_grad_sync {
    tr_dist *d;
    const tr_model *m;
    int n;            /* buckets */
    size_t *begin;    /* (n) descending: bucket 0 holds the highest offsets */
    size_t *end;      /* (n) */
    size_t *splits;   /* (n) the begins, ascending, for tr_grad_hook */
    MPI_Request *req; /* (n) */
    tr_grad_wire wire; /* the format buckets travel in */
    int started;      /* buckets started this step (0..n), in descending order */
    float *grads;
    tr_err *async_err; /* first MPI failure inside a hook */
    int async_rc;
    tr_err async_err_buf;
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
        if (rows_per_block * I > TR_MPI_MAX_COUNT)
            rows_per_block = TR_MPI_MAX_COUNT / I;
        for (size_t r1 = (size_t)L->out; r1 > 0;) {
            const size_t r0 = r1 > rows_per_block ? r1 - rows_per_block : 0;
            top = L->w_off + r0 * I;
            if (target == 0 ? r0 == 0 : (bucket_top - top >= target || bucket_top - top + I > TR_MPI_MAX_COUNT))
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

int tr_grad_sync_create(tr_grad_sync **out, tr_dist *d, const tr_model *m, size_t bucket_bytes,
                        tr_compression compression, tr_err *err)
{
    tr_grad_sync *s = calloc(1, sizeof *s);
    if (!s)
        return tr_fail(err, TR_ENOMEM, "out of memory");
    s->d = d;
    s->m = m;
    s->wire.op = MPI_OP_NULL;
    int rc = plan(s, bucket_bytes / sizeof(float), err);
    if (!rc && d->size > 1)
        rc = tr_grad_wire_init(&s->wire, compression, m->n_params, err);
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
    tr_grad_wire_free(&s->wire);
    free(s);
}

int tr_grad_sync_buckets(const tr_grad_sync *s, const size_t **begins)
{
    *begins = s->splits;
    return s->n;
}

struct tr_grad_wire *tr_grad_sync_wire(tr_grad_sync *s) { return &s->wire; }

static bool communicating(const tr_grad_sync *s) { return s->d->impl && s->d->size > 1; }

static void start_bucket(tr_grad_sync *s, int i)
{
    const size_t b = s->begin[i], n = s->end[i] - b;
    int rc = tr_grad_wire_start(&s->wire, s->grads, b, n, s->d->impl->comm, &s->req[i]);
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

int tr_grad_sync_finish(tr_grad_sync *s, tr_err *err)
{
    if (!communicating(s))
        return 0;
    while (s->started < s->n)
        start_bucket(s, s->started++);
    tr_watch_begin("the gradient exchange");
    int rc = MPI_Waitall(s->n, s->req, MPI_STATUSES_IGNORE);
    tr_watch_end();
    if (s->async_rc) {
        if (err)
            *err = s->async_err_buf;
        return s->async_rc;
    }
    if (rc != MPI_SUCCESS)
        return mpi_fail(err, rc, "MPI_Waitall (gradient buckets)");
    for (int i = 0; i < s->n; i++)
        tr_grad_wire_land(&s->wire, s->grads, s->begin[i], s->end[i] - s->begin[i]);
    return 0;
}
