/*
 * gemm_openblas.c: the openblas engine: fp32 products through cblas_sgemm, the bias
 * broadcast into C first and added to by the product. No bf16: Debian's OpenBLAS 0.3.21 is
 * built without its bfloat16 product (sbgemm).
 */
#include "gemm_engine.h"
#include "vector_kernel.h"

#include <cblas.h>
#include <stdio.h>

static bool openblas_supports(tr_precision p, char *why, size_t len)
{
    if (p == TR_PRECISION_FP32)
        return true;
    snprintf(why, len, "the openblas engine computes in fp32 only (Debian's OpenBLAS has no bf16 product): use "
                       "gemm = onednn or auto with precision = bf16");
    return false;
}

static int openblas_create(void **state, tr_precision p, tr_err *err)
{
    *state = NULL;
    return 0;
}

static void openblas_destroy(void *state) {}

/* C = the bias in every row (the product is then added onto it): one loop, not a call per row
 * (on a 20-unit layer the calls cost more than the copying). */
TR_VECTOR_KERNEL static void broadcast_rows(float *restrict C, const float *restrict b, int64_t M, int64_t N,
                                            int64_t ldc)
{
    for (int64_t r = 0; r < M; r++)
        for (int64_t j = 0; j < N; j++)
            C[r * ldc + j] = b[j];
}

static int openblas_product(void *state, tr_precision p, const tr_gemm_call *c, tr_err *err)
{
    float beta = c->beta;
    if (c->bias) {
        broadcast_rows(c->C, c->bias, c->M, c->N, c->ldc);
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, c->ta ? CblasTrans : CblasNoTrans, c->tb ? CblasTrans : CblasNoTrans, (int)c->M,
                (int)c->N, (int)c->K, 1.0f, c->A, (int)c->lda, c->B, (int)c->ldb, beta, c->C, (int)c->ldc);
    return 0;
}

static const char *openblas_describe(char *buf, size_t len)
{
    snprintf(buf, len, "%s", openblas_get_config());
    return buf;
}

const tr_gemm_engine_ops tr_gemm_openblas_ops = {.supports = openblas_supports,
                                                 .create = openblas_create,
                                                 .destroy = openblas_destroy,
                                                 .product = openblas_product,
                                                 .describe = openblas_describe};
