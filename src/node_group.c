/*
 * node_group.c: the node-shared memory of the gradient exchange (node_group.h), in a window
 * dist.c allocates, and the cross-node communicator of each local rank.
 */
#include "node_group.h"

#include "trainer/fault.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct tr_node_group {
    tr_dist *d;
    tr_node_mem *mem;
    MPI_Comm cross;     /* same local rank on every node (MPI_COMM_NULL on one node) */
    int local_size;
    size_t n_params;
    float *params[2];   /* the parameters; the second buffer only where updates go out of place */
    float **state;      /* (n_state) */
    void **slots;       /* (local_size) each rank's slot: its gradient (shared), chunks (exact) */
    _Atomic int64_t *counters; /* (n_counters) */
};



static void *align64(void *p) { return (void *)(((uintptr_t)p + 63) & ~(uintptr_t)63); }

int tr_node_group_create(tr_node_group **out, tr_dist *d, size_t n_params, int n_param_bufs, int n_state,
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
    const size_t counters = ((size_t)n_counters * sizeof(int64_t) + 63) / 64 * 64 + 64;
    /* local rank 0 holds the counters, the parameters and the state; everyone a slot */
    const size_t mine = slot_bytes + 64 + (d->local_rank == 0 ? counters + buf * (size_t)(n_param_bufs + n_state) : 0);
    int rc = tr_node_mem_alloc_parts(d, mine, &g->mem, err);
    if (rc) {
        tr_node_group_free(g);
        return rc;
    }
    for (int r = 0; r < d->local_size; r++) {
        char *c = align64(tr_node_mem_part(g->mem, r));
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
            tr_node_group_free(g);
            return mpi_fail(err, rc, "MPI_Comm_split (cross-node)");
        }
        MPI_Comm_set_errhandler(g->cross, MPI_ERRORS_RETURN);
    }
    tr_dist_node_barrier(d); /* everything initialised before anyone uses it */
    *out = g;
    return 0;
}

void tr_node_group_free(tr_node_group *g)
{
    if (!g)
        return;
    if (g->cross != MPI_COMM_NULL)
        MPI_Comm_free(&g->cross);
    tr_node_mem_free(g->mem);
    free(g->state);
    free(g->slots);
    free(g);
}

float *tr_node_group_params(tr_node_group *g, int i) { return g->params[i]; }
float *tr_node_group_state(tr_node_group *g, int i) { return g->state[i]; }
void *tr_node_group_slot(tr_node_group *g, int local_rank) { return g->slots[local_rank]; }
MPI_Comm tr_node_group_cross(const tr_node_group *g) { return g->cross; }

void tr_node_group_signal(tr_node_group *g, int b, int64_t r)
{
    (void)r;
    atomic_fetch_add_explicit(&g->counters[b], 1, memory_order_release);
}

bool tr_node_group_complete(const tr_node_group *g, int b, int64_t r)
{
    return atomic_load_explicit(&g->counters[b], memory_order_acquire) >= r * g->local_size;
}

int tr_node_group_cross_sum(tr_node_group *g, tr_grad_wire *wire, float *grads, size_t off, size_t n, tr_err *err)
{
    if (g->cross == MPI_COMM_NULL)
        return 0;
    if (tr_fault_mpi("cross_sum")) /* a test hook (fault.h) */
        return mpi_fail(err, MPI_ERR_OTHER, "MPI_Allreduce (cross-node gradient shard)");
    tr_watch_begin("the gradient exchange between nodes");
    const int rc = tr_grad_wire_sum(wire, grads, off, n, g->cross);
    tr_watch_end();
    MPI_CHECK(rc, "MPI_Allreduce (cross-node gradient shard)");
    return 0;
}
