/*
 * gemm.h: every matrix product of the trainer, behind one interface, with engines (openblas,
 * onednn) and precisions (fp32, bf16).
 *
 * A product is row-major  C (M, N) = op(A) op(B) [+ bias] [+ C],  op(X) = X or X^T. In fp32,
 * A and B are float; in bf16 they are tr_bf16 values (the caller rounds its float operands
 * with tr_bf16_round, once per operand, and keeps them for the products that reuse them) and
 * the engine accumulates and returns float. Everything else (bias, C, reductions) is float.
 *
 * The engines live in src/gemm_<engine>.c behind the table of src/gemm_engine.h; this module
 * picks one, holds its state, sets the threads of both libraries (one policy: OpenBLAS's own
 * pool and the OpenMP pool oneDNN computes with get the same count), rounds to bf16, and times
 * the engines on a model's shapes for [train] gemm = auto. A product that fails (oneDNN could
 * not build a kernel, out of memory) fills its output with NaN, so the step that used it is
 * seen as non-finite by every rank's agreed check, and the first failure's message is kept
 * for tr_gemm_failed.
 *
 * Ownership: a tr_gemm owns its engine's state (oneDNN: one primitive per product shape,
 * built at its first use and kept); the operands stay the caller's.
 */
#ifndef TRAINER_GEMM_H
#define TRAINER_GEMM_H

#include "trainer/error.h"
#include "trainer/names.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* [train] gemm and precision: X(constant, name) */
#define TR_GEMM_ENGINE_MAP(X)           \
    X(TR_GEMM_AUTO, "auto")             \
    X(TR_GEMM_OPENBLAS, "openblas")     \
    X(TR_GEMM_ONEDNN, "onednn")
#define TR_PRECISION_MAP(X)             \
    X(TR_PRECISION_FP32, "fp32")        \
    X(TR_PRECISION_BF16, "bf16")

typedef enum tr_gemm_engine { TR_GEMM_ENGINE_MAP(TR_ENUM_VALUE) TR_GEMM_ENGINE_COUNT } tr_gemm_engine;
typedef enum tr_precision { TR_PRECISION_MAP(TR_ENUM_VALUE) TR_PRECISION_COUNT } tr_precision;

extern const char *const tr_gemm_engine_names[], *const tr_precision_names[];

/* A bfloat16 value: the upper half of a float's bits. */
typedef uint16_t tr_bf16;

/* One product. A is (M, K) after op, stored (K, M) when ta; B is (K, N) after op, stored
 * (N, K) when tb. bias (N) is added to every row (NULL: none; only with beta = 0); beta is 0
 * (C is overwritten) or 1 (the product is added to C). */
typedef struct tr_gemm_call {
    bool ta, tb;
    int64_t M, N, K;
    const void *A; /* float or tr_bf16, by the precision */
    int64_t lda;
    const void *B;
    int64_t ldb;
    const float *bias;
    float beta;
    float *C;
    int64_t ldc;
} tr_gemm_call;

typedef struct tr_gemm tr_gemm;

/* Whether `engine` can compute products in `p` on this CPU, as the engine sees it (oneDNN
 * honours ONEDNN_MAX_CPU_ISA / DNNL_MAX_CPU_ISA); if not, why, in why[len]. */
bool tr_gemm_supported(tr_gemm_engine engine, tr_precision p, char *why, size_t len);

/* An engine (not auto) for products in precision p; TR_ECONFIG naming the reason when the
 * engine cannot compute in p here. Release with tr_gemm_free (accepts NULL). */
int tr_gemm_create(tr_gemm **g, tr_gemm_engine engine, tr_precision p, tr_err *err);
void tr_gemm_free(tr_gemm *g);

tr_gemm_engine tr_gemm_engine_of(const tr_gemm *g);
tr_precision tr_gemm_precision_of(const tr_gemm *g);

/* Computes one product (see tr_gemm_call); M, N > 0. With K = 0 the product is zero. */
void tr_gemm_product(tr_gemm *g, const tr_gemm_call *c);

/* y (N) = A^T ones + beta y for A (M, N) float, row-major (the column sums: bias gradients),
 * in float whatever the precision; ones holds M values of 1. */
void tr_gemm_column_sums(float *y, const float *A, const float *ones, int64_t M, int64_t N, float beta);

/* 0, or TR_EINTERNAL with the first failed product's message; clears the failure. */
int tr_gemm_failed(tr_gemm *g, tr_err *err);

/* dst[i] = src[i] rounded to the nearest bfloat16, ties to even (NaN stays NaN, infinities
 * stay infinite, finite values beyond bf16's range become infinite), as PyTorch's and
 * oneDNN's conversions round. */
void tr_bf16_round(tr_bf16 *dst, const float *src, size_t n);
float tr_bf16_to_float(tr_bf16 h);

/* Threads of the products in this process (OpenBLAS's pool and the OpenMP pool oneDNN uses);
 * n = 0 leaves what the environment set (OPENBLAS_NUM_THREADS, OMP_NUM_THREADS) and makes
 * both use OpenBLAS's count. Returns the count in force. */
int tr_gemm_set_threads(int n);

/* One product of a training step, by its shape (for the timings of gemm = auto and the
 * bench's roofline): the forward product (ta = 0, tb = 1), the weight gradient (ta = 1,
 * tb = 0, beta as accumulation wants) or the input gradient (ta = tb = 0). */
typedef struct tr_gemm_shape {
    bool ta, tb;
    int64_t M, N, K;
    float beta;
    bool bias;
} tr_gemm_shape;

/* Seconds one pass over the n shapes takes with each engine that can compute in p (the best
 * of a few passes after a warm-up, on scratch operands), in seconds[engine]; an engine that
 * cannot gets INFINITY, seconds[TR_GEMM_AUTO] is unused. Local: the caller agrees on the
 * choice with the other ranks. */
int tr_gemm_time_engines(const tr_gemm_shape *shapes, int n, tr_precision p, double seconds[TR_GEMM_ENGINE_COUNT],
                         tr_err *err);

/* The engine of an `auto` setting that does not time (deterministic mode: the choice must not
 * depend on a measurement): openblas for fp32, onednn for bf16. */
tr_gemm_engine tr_gemm_fixed_choice(tr_precision p);

/* What the engine runs on this CPU, e.g. "OpenBLAS 0.3.21 Haswell" or "oneDNN 2.6.3
 * avx512_core_bf16" (for the first line of a run and the bench). */
const char *tr_gemm_describe(tr_gemm_engine engine, char *buf, size_t len);

#endif
