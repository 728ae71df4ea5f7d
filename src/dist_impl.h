/*
 * dist_impl.h (private): the MPI side of tr_dist, shared by the files that call MPI: dist.c
 * (the process group, small collectives, node-shared memory), the gradient exchange
 * (reduce.c, grad_sync.c, node_group.c) and watchdog.c (its status exchange).
 * Every blocking wait on other ranks there is bracketed by tr_watch_begin/end (watchdog.h).
 */
#ifndef TRAINER_DIST_IMPL_H
#define TRAINER_DIST_IMPL_H

#include "trainer/dist.h"
#include "trainer/watchdog.h"

#include <mpi.h>
#include <stdbool.h>

struct tr_dist_impl {
    MPI_Comm comm;  /* our duplicate, with MPI_ERRORS_RETURN */
    MPI_Comm local; /* ranks sharing this node */
    bool owns_mpi;  /* this world called MPI_Init */
};

/* The most elements one MPI call carries (its counts are int). */
#define TR_MPI_MAX_COUNT ((size_t)1 << 30)

/* MPI_Allreduce in place of n values of `type` (elem bytes each) over comm, in pieces one MPI
 * call can carry; MPI's return code. */
static inline int mpi_allreduce_pieces(void *buf, size_t n, size_t elem, MPI_Datatype type, MPI_Op op, MPI_Comm comm)
{
    int rc = MPI_SUCCESS;
    for (size_t off = 0; off < n && rc == MPI_SUCCESS; off += TR_MPI_MAX_COUNT) {
        const size_t k = n - off < TR_MPI_MAX_COUNT ? n - off : TR_MPI_MAX_COUNT;
        rc = MPI_Allreduce(MPI_IN_PLACE, (char *)buf + off * elem, (int)k, type, op, comm);
    }
    return rc;
}

static inline int mpi_fail(tr_err *err, int rc, const char *what)
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

#endif
