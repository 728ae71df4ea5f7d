/*
 * dist.c: the only compilation unit that calls MPI.
 */
#include "trainer/dist.h"

#include <mpi.h>

#include <stdlib.h>
#include <string.h>

struct tr_dist_impl {
    MPI_Comm comm;  /* duplicate of MPI_COMM_WORLD with MPI_ERRORS_RETURN */
    MPI_Comm local; /* ranks sharing this node */
};

static int mpi_fail(tr_err *err, int rc, const char *what)
{
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return tr_fail(err, TR_EMPI, "%s failed: %s", what, msg);
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
    d->impl = calloc(1, sizeof *d->impl);
    if (!d->impl)
        return tr_fail(err, TR_ENOMEM, "out of memory");
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    int rc = MPI_Comm_dup(MPI_COMM_WORLD, &d->impl->comm);
    if (rc != MPI_SUCCESS)
        return mpi_fail(err, rc, "MPI_Comm_dup");
    MPI_Comm_set_errhandler(d->impl->comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(d->impl->comm, &d->rank);
    MPI_Comm_size(d->impl->comm, &d->size);
    rc = MPI_Comm_split_type(d->impl->comm, MPI_COMM_TYPE_SHARED, d->rank, MPI_INFO_NULL, &d->impl->local);
    if (rc != MPI_SUCCESS)
        return mpi_fail(err, rc, "MPI_Comm_split_type");
    MPI_Comm_rank(d->impl->local, &d->local_rank);
    MPI_Comm_size(d->impl->local, &d->local_size);
    return 0;
}

void tr_dist_init_local(tr_dist *d)
{
    memset(d, 0, sizeof *d);
    d->size = d->local_size = 1;
}

void tr_dist_finalize(tr_dist *d)
{
    if (!d->impl && d->size == 1)
        return; /* local world: MPI was never started */
    if (d->impl) {
        if (d->impl->local != MPI_COMM_NULL && d->impl->local)
            MPI_Comm_free(&d->impl->local);
        if (d->impl->comm != MPI_COMM_NULL && d->impl->comm)
            MPI_Comm_free(&d->impl->comm);
        free(d->impl);
        d->impl = NULL;
    }
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized)
        MPI_Finalize();
}

void tr_dist_abort(tr_dist *d, int status)
{
    if (d && !d->impl)
        exit(status);
    MPI_Abort(d ? d->impl->comm : MPI_COMM_WORLD, status);
}

void tr_dist_barrier(tr_dist *d)
{
    if (d->impl)
        MPI_Barrier(d->impl->comm);
}
