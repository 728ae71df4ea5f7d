/*
 * gemm_engine.h (private): the interface every GEMM engine implements, one file each
 * (gemm_openblas.c, gemm_onednn.c); gemm.c holds the table of them and is their only caller.
 */
#ifndef TRAINER_GEMM_ENGINE_H
#define TRAINER_GEMM_ENGINE_H

#include "trainer/gemm.h"

typedef struct tr_gemm_engine_ops {
    /* whether the engine computes in p on this CPU; if not, why (in why[len]) */
    bool (*supports)(tr_precision p, char *why, size_t len);
    /* engine state for products in p (*state may stay NULL: a stateless engine) */
    int (*create)(void **state, tr_precision p, tr_err *err);
    void (*destroy)(void *state); /* accepts NULL */
    /* one product (gemm.h); 0, or a failure with its message (nothing written to C) */
    int (*product)(void *state, tr_precision p, const tr_gemm_call *c, tr_err *err);
    /* the library and the kernels it runs here */
    const char *(*describe)(char *buf, size_t len);
} tr_gemm_engine_ops;

extern const tr_gemm_engine_ops tr_gemm_openblas_ops, tr_gemm_onednn_ops;

#endif
