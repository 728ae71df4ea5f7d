/*
 * dist.c: the process group, its small collectives and node-shared memory (dist.h). The
 * other files that call MPI are named in dist_impl.h.
 *
 * Every MPI call returns errors (MPI_ERRORS_RETURN on our communicator) and is checked; a
 * failure becomes TR_EMPI with MPI's own message. In a local world (impl == NULL) every
 * collective is the identity.
 */
#define _GNU_SOURCE /* sched_getaffinity, cpu_set_t */
#include "trainer/dist.h"

#include "trainer/fault.h"
#include "dist_impl.h"

#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { MASK_WORDS = CPU_SETSIZE / 64 };

/* This process's affinity mask as 64-bit words; the CPUs in it. */
static int affinity(uint64_t mask[MASK_WORDS])
{
    memset(mask, 0, MASK_WORDS * sizeof *mask);
    cpu_set_t set;
    int n = 0;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        for (int c = 0; c < CPU_SETSIZE; c++)
            if (CPU_ISSET(c, &set)) {
                mask[c / 64] |= (uint64_t)1 << (c % 64);
                n++;
            }
    }
    if (n == 0) { /* no mask to read: every online CPU */
        const long online = sysconf(_SC_NPROCESSORS_ONLN);
        n = online > 0 ? (int)online : 1;
        for (int c = 0; c < n && c < CPU_SETSIZE; c++)
            mask[c / 64] |= (uint64_t)1 << (c % 64);
    }
    return n;
}

/* cpus_allowed and cpus of every rank of the node (collective over the node). */
static int count_cpus(tr_dist *d, tr_err *err)
{
    uint64_t mine[MASK_WORDS];
    d->cpus_allowed = d->cpus = affinity(mine);
    if (!d->impl || d->local_size == 1)
        return 0;
    uint64_t *all = malloc((size_t)d->local_size * sizeof mine);
    const int ok = all != NULL;
    int all_ok = ok;
    int rc = MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, d->impl->local);
    if (rc == MPI_SUCCESS && all_ok)
        rc = MPI_Allgather(mine, MASK_WORDS, MPI_UINT64_T, all, MASK_WORDS, MPI_UINT64_T, d->impl->local);
    if (rc == MPI_SUCCESS && all_ok)
        d->cpus = tr_cpu_share(all, MASK_WORDS, d->local_size, d->local_rank);
    free(all);
    MPI_CHECK(rc, "MPI_Allgather (CPU affinity masks)");
    return all_ok ? 0 : tr_fail(err, TR_ENOMEM, "out of memory (on some rank)");
}

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
    return count_cpus(d, err);
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
    count_cpus(d, NULL);
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
    if (d->impl) {
        tr_watch_begin("a barrier");
        MPI_Barrier(d->impl->comm);
        tr_watch_end();
    }
}

int tr_dist_agree(tr_dist *d, int rc)
{
    if (!d->impl || d->size == 1)
        return rc;
    int all = rc;
    tr_watch_begin("the ranks' agreement on success");
    const int mpi_rc = MPI_Allreduce(&rc, &all, 1, MPI_INT, MPI_MIN, d->impl->comm);
    tr_watch_end();
    if (mpi_rc != MPI_SUCCESS)
        return rc ? rc : TR_EMPI;
    return all;
}

static int reduce(tr_dist *d, void *buf, int n, MPI_Datatype type, MPI_Op op, tr_err *err)
{
    if (!d->impl || d->size == 1)
        return 0;
    tr_watch_begin("a reduction of statistics");
    const int rc = MPI_Allreduce(MPI_IN_PLACE, buf, n, type, op, d->impl->comm);
    tr_watch_end();
    MPI_CHECK(rc, "MPI_Allreduce");
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
    int rc = MPI_SUCCESS;
    tr_watch_begin("a broadcast");
    while (bytes > 0 && rc == MPI_SUCCESS) {
        const int chunk = bytes > (size_t)INT_MAX ? INT_MAX : (int)bytes;
        rc = MPI_Bcast(p, chunk, MPI_BYTE, root, d->impl->comm);
        p += chunk;
        bytes -= (size_t)chunk;
    }
    tr_watch_end();
    MPI_CHECK(rc, "MPI_Bcast");
    return 0;
}

int tr_dist_send(tr_dist *d, int dest, int tag, const void *buf, size_t bytes, tr_err *err)
{
    if (!d->impl)
        return tr_fail(err, TR_EINTERNAL, "a message to rank %d in a world without MPI", dest);
    MPI_CHECK(MPI_Send(buf, (int)bytes, MPI_BYTE, dest, tag, d->impl->comm), "MPI_Send");
    return 0;
}

int tr_dist_send_taken(tr_dist *d, int dest, int tag, const void *buf, size_t bytes, double within_s, bool *taken,
                       tr_err *err)
{
    *taken = false;
    if (!d->impl)
        return tr_fail(err, TR_EINTERNAL, "a message to rank %d in a world without MPI", dest);
    MPI_Request req;
    MPI_CHECK(MPI_Issend(buf, (int)bytes, MPI_BYTE, dest, tag, d->impl->comm, &req), "MPI_Issend");
    const double until = MPI_Wtime() + within_s;
    for (;;) {
        int done = 0;
        MPI_CHECK(MPI_Test(&req, &done, MPI_STATUS_IGNORE), "MPI_Test");
        if (done) {
            *taken = true;
            return 0;
        }
        if (within_s > 0.0 && MPI_Wtime() > until)
            return 0; /* left pending: the caller ends the process */
        nanosleep(&(struct timespec){.tv_nsec = 100000}, NULL);
    }
}

bool tr_dist_probe(tr_dist *d, int tag, int *from)
{
    if (!d->impl)
        return false;
    int flag = 0;
    MPI_Status st;
    if (MPI_Iprobe(MPI_ANY_SOURCE, tag, d->impl->comm, &flag, &st) != MPI_SUCCESS || !flag)
        return false;
    *from = st.MPI_SOURCE;
    return true;
}

int tr_dist_recv(tr_dist *d, int from, int tag, void *buf, size_t bytes, int *sender, tr_err *err)
{
    if (!d->impl)
        return tr_fail(err, TR_EINTERNAL, "a message from rank %d in a world without MPI", from);
    MPI_Status st;
    MPI_CHECK(MPI_Recv(buf, (int)bytes, MPI_BYTE, from < 0 ? MPI_ANY_SOURCE : from, tag, d->impl->comm, &st),
              "MPI_Recv");
    if (sender)
        *sender = st.MPI_SOURCE;
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
    tr_watch_begin("a gather of results");
    rc = MPI_Allgather(mine, 2, MPI_INT64_T, pieces, 2, MPI_INT64_T, d->impl->comm);
    tr_watch_end();
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
    tr_watch_begin("a gather of results");
    rc = MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, all, counts, counts + d->size, type, d->impl->comm);
    tr_watch_end();
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
    tr_watch_begin("a comparison between ranks");
    int rc = MPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_UINT64_T, MPI_MIN, d->impl->comm);
    if (rc == MPI_SUCCESS)
        rc = MPI_Allreduce(MPI_IN_PLACE, &hi, 1, MPI_UINT64_T, MPI_MAX, d->impl->comm);
    tr_watch_end();
    MPI_CHECK(rc, "MPI_Allreduce");
    *same = lo == hi;
    return 0;
}

int tr_cpu_share(const uint64_t *masks, int words, int n, int me)
{
    double share = 0.0;
    for (int w = 0; w < words; w++)
        for (int b = 0; b < 64; b++) {
            const uint64_t bit = (uint64_t)1 << b;
            if (!(masks[(size_t)me * (size_t)words + (size_t)w] & bit))
                continue;
            int k = 0;
            for (int r = 0; r < n; r++)
                k += (masks[(size_t)r * (size_t)words + (size_t)w] & bit) != 0;
            share += 1.0 / k;
        }
    /* 1e-9: a third counted three times is still one */
    const int whole = (int)(share + 1e-9);
    return whole > 0 ? whole : 1;
}

/* ------------------------------------------------------------------ node memory -------- */

struct tr_node_mem {
    MPI_Win win;
};

int tr_node_mem_alloc(tr_dist *d, size_t bytes, void **base, tr_node_mem **out, tr_err *err)
{
    *base = NULL;
    *out = NULL;
    if (!d->impl)
        return 0;
    if (d->local_size == 1) /* alone on the node: the caller keeps its own memory; the world's
                             * agreement of the other nodes' allocations still runs */
        return tr_dist_agree(d, 0) ? tr_fail(err, TR_ENOMEM, "out of memory (on some rank)") : 0;
    const int rc = tr_node_mem_alloc_parts(d, d->local_rank == 0 ? (bytes ? bytes : 1) : 0, out, err);
    if (!rc)
        *base = tr_node_mem_part(*out, 0);
    return rc;
}

int tr_node_mem_alloc_parts(tr_dist *d, size_t mine, tr_node_mem **out, tr_err *err)
{
    *out = NULL;
    if (!d->impl)
        return tr_fail(err, TR_EINTERNAL, "node-shared memory needs MPI");
    /* agreed before the collective allocation: a rank that failed here must not leave the
     * others waiting in it (every rank of the world calls this) */
    tr_node_mem *m = calloc(1, sizeof *m);
    if (tr_dist_agree(d, m ? 0 : TR_ENOMEM)) {
        free(m);
        return tr_fail(err, TR_ENOMEM, "out of memory (on some rank)");
    }
    MPI_Info info;
    MPI_Info_create(&info);
    MPI_Info_set(info, "alloc_shared_noncontig", "true");
    void *base = NULL;
    tr_watch_begin("an allocation of node-shared memory");
    int rc = MPI_Win_allocate_shared((MPI_Aint)mine, 1, info, d->impl->local, &base, &m->win);
    tr_watch_end();
    MPI_Info_free(&info);
    if (rc != MPI_SUCCESS) {
        free(m);
        return mpi_fail(err, rc, "MPI_Win_allocate_shared (node-shared memory)");
    }
    *out = m;
    return 0;
}

void *tr_node_mem_part(const tr_node_mem *m, int local_rank)
{
    MPI_Aint size;
    int unit;
    void *p = NULL;
    MPI_Win_shared_query(m->win, local_rank, &size, &unit, &p);
    return p;
}

void tr_node_mem_free(tr_node_mem *m)
{
    if (!m)
        return;
    MPI_Win_free(&m->win);
    free(m);
}

int tr_dist_node_bcast(tr_dist *d, void *buf, size_t bytes, tr_err *err)
{
    if (!d->impl || d->local_size == 1)
        return 0;
    char *p = buf;
    int rc = MPI_SUCCESS;
    tr_watch_begin("the node's data loading");
    while (bytes > 0 && rc == MPI_SUCCESS) {
        const int chunk = bytes > (size_t)INT_MAX ? INT_MAX : (int)bytes;
        rc = MPI_Bcast(p, chunk, MPI_BYTE, 0, d->impl->local);
        p += chunk;
        bytes -= (size_t)chunk;
    }
    tr_watch_end();
    MPI_CHECK(rc, "MPI_Bcast (node)");
    return 0;
}

void tr_dist_node_barrier(tr_dist *d)
{
    if (d->impl && d->local_size > 1) {
        tr_watch_begin("a barrier of the node");
        MPI_Barrier(d->impl->local);
        tr_watch_end();
    }
}
