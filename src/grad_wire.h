/*
 * grad_wire.h (private): the gradient as it travels between ranks: fp32, or compressed to a
 * 16-bit format ([train] grad_compression, half.h) in a buffer beside it and summed there by
 * an MPI operation of ours on MPI_UINT16_T. A slice of the gradient keeps its offset in the
 * 16-bit buffer, so slices in flight together never share memory.
 */
#ifndef TRAINER_GRAD_WIRE_H
#define TRAINER_GRAD_WIRE_H

#include "trainer/error.h"
#include "trainer/half.h"
#include "dist_impl.h"

#include <stddef.h>
#include <stdint.h>

typedef struct tr_grad_wire {
    tr_compression kind;
    MPI_Op op;     /* the 16-bit sum; MPI_OP_NULL in fp32 */
    uint16_t *buf; /* (n) the compressed gradient; NULL in fp32 */
} tr_grad_wire;

/* For a gradient of n floats. */
int tr_grad_wire_init(tr_grad_wire *w, tr_compression kind, size_t n, tr_err *err);
void tr_grad_wire_free(tr_grad_wire *w);

/* Starts summing x[off, off + n) over comm (n <= TR_MPI_MAX_COUNT); MPI's return code. After
 * the request completes, tr_grad_wire_land puts the sum back into x. */
int tr_grad_wire_start(tr_grad_wire *w, float *x, size_t off, size_t n, MPI_Comm comm, MPI_Request *req);
void tr_grad_wire_land(const tr_grad_wire *w, float *x, size_t off, size_t n);

/* Sums x[off, off + n) over comm and puts the sum into x; MPI's return code. */
int tr_grad_wire_sum(tr_grad_wire *w, float *x, size_t off, size_t n, MPI_Comm comm);

#endif
