/*
 * half.h: the 16-bit float formats gradients travel in between ranks when [train]
 * grad_compression asks for it (as PyTorch DDP's bf16_compress_hook and fp16_compress_hook):
 * rounding float vectors to bf16 or fp16 (nearest even), widening them back, and the
 * element-wise sum of two 16-bit vectors (each sum computed in fp32, rounded once) that the
 * allreduce applies at every step of its tree.
 */
#ifndef TRAINER_HALF_H
#define TRAINER_HALF_H

#include "trainer/names.h"

#include <stddef.h>
#include <stdint.h>

#define TR_COMPRESSION_MAP(X)          \
    X(TR_COMPRESS_NONE, "none")        \
    X(TR_COMPRESS_BF16, "bf16")        \
    X(TR_COMPRESS_FP16, "fp16")
typedef enum tr_compression { TR_COMPRESSION_MAP(TR_ENUM_VALUE) } tr_compression;
extern const char *const tr_compression_names[];

/* fp16 (IEEE binary16): nearest even; beyond 65504 (from 65520 up) infinite, NaN stays a
 * (quiet) NaN with its sign, below 2^-14 subnormal, below 2^-25 zero. The CPU's F16C
 * instructions where it has them, the same bits otherwise. */
void tr_fp16_round(uint16_t *dst, const float *src, size_t n);
void tr_fp16_widen(float *dst, const uint16_t *src, size_t n);
void tr_bf16_widen(float *dst, const uint16_t *src, size_t n);

/* The format's rounding and widening (kind bf16 or fp16). */
void tr_half_round(tr_compression kind, uint16_t *dst, const float *src, size_t n);
void tr_half_widen(tr_compression kind, float *dst, const uint16_t *src, size_t n);

/* inout[i] = round(widen(in[i]) + widen(inout[i])), i < n. */
void tr_half_sum(tr_compression kind, uint16_t *inout, const uint16_t *in, size_t n);

#endif
