/*
 * grad_wire.c: the gradient between ranks in fp32 or a 16-bit format (grad_wire.h). The
 * compressed sum works like PyTorch DDP's bf16 and fp16 compression hooks: every rank's
 * values are rounded once, each sum of the allreduce is computed in fp32 and rounded back,
 * and the result is widened to fp32. The values sent are each rank's share of the batch's
 * mean gradient (the loss is divided by the global batch before backward): what the fp16
 * hook sends after dividing by the world size, so fp16's range is used the same way.
 */
#include "grad_wire.h"

#include "trainer/mem.h"

static void sum_bf16(void *in, void *inout, int *len, MPI_Datatype *type)
{
    (void)type;
    tr_half_sum(TR_COMPRESS_BF16, inout, in, (size_t)*len);
}

static void sum_fp16(void *in, void *inout, int *len, MPI_Datatype *type)
{
    (void)type;
    tr_half_sum(TR_COMPRESS_FP16, inout, in, (size_t)*len);
}

int tr_grad_wire_init(tr_grad_wire *w, tr_compression kind, size_t n, tr_err *err)
{
    w->kind = kind;
    w->op = MPI_OP_NULL;
    w->buf = NULL;
    if (kind == TR_COMPRESS_NONE)
        return 0;
    w->buf = tr_big_alloc((n ? n : 1) * sizeof *w->buf);
    if (!w->buf)
        return tr_fail(err, TR_ENOMEM, "out of memory for the compressed gradient");
    /* commutative: a + b rounds the same as b + a, and MPI may then pick any tree */
    MPI_CHECK(MPI_Op_create(kind == TR_COMPRESS_BF16 ? sum_bf16 : sum_fp16, 1, &w->op), "MPI_Op_create");
    return 0;
}

void tr_grad_wire_free(tr_grad_wire *w)
{
    if (w->op != MPI_OP_NULL)
        MPI_Op_free(&w->op);
    tr_big_free(w->buf);
    w->buf = NULL;
}

int tr_grad_wire_start(tr_grad_wire *w, float *x, size_t off, size_t n, MPI_Comm comm, MPI_Request *req)
{
    if (w->kind == TR_COMPRESS_NONE)
        return MPI_Iallreduce(MPI_IN_PLACE, x + off, (int)n, MPI_FLOAT, MPI_SUM, comm, req);
    tr_half_round(w->kind, w->buf + off, x + off, n);
    return MPI_Iallreduce(MPI_IN_PLACE, w->buf + off, (int)n, MPI_UINT16_T, w->op, comm, req);
}

void tr_grad_wire_land(const tr_grad_wire *w, float *x, size_t off, size_t n)
{
    if (w->kind != TR_COMPRESS_NONE)
        tr_half_widen(w->kind, x + off, w->buf + off, n);
}

int tr_grad_wire_sum(tr_grad_wire *w, float *x, size_t off, size_t n, MPI_Comm comm)
{
    if (w->kind == TR_COMPRESS_NONE)
        return mpi_allreduce_pieces(x + off, n, sizeof *x, MPI_FLOAT, MPI_SUM, comm);
    tr_half_round(w->kind, w->buf + off, x + off, n);
    const int rc = mpi_allreduce_pieces(w->buf + off, n, sizeof *w->buf, MPI_UINT16_T, w->op, comm);
    if (rc == MPI_SUCCESS)
        tr_grad_wire_land(w, x, off, n);
    return rc;
}
