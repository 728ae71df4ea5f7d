/*
 * vmath.h: element-wise math over float arrays (exp, expm1, tanh, erf, log1p) through SLEEF,
 * the vector math library PyTorch's CPU kernels use, in its 1-ULP (u10) variants (tanh: the
 * 3.5-ULP u35, 2.8 times faster, relative error under 4.2e-7, far inside every tolerance the
 * gradient checks and the PyTorch tests use): 16 lanes
 * with AVX-512, 8 with AVX2 + FMA, else one at a time (SLEEF's portable C), chosen once from
 * the CPU's features.
 *
 * Every element is computed by the same vector code wherever it sits in the array (a short
 * tail is padded to a full vector), so a value does not depend on how a batch was cut into
 * ranks or chunks: the deterministic mode stays bitwise for any layout. The AVX2 and AVX-512
 * variants give the same bits (tests/test_layers.c checks it on this machine's CPU);
 * TRAINER_VMATH=avx512|avx2|fma|scalar forces a path (tests and benchmarks).
 * Arrays may alias (y == x).
 */
#ifndef TRAINER_VMATH_H
#define TRAINER_VMATH_H

#include <stdbool.h>
#include <stdint.h>

void tr_vexpf(float *y, const float *x, int64_t n);
void tr_vexpm1f(float *y, const float *x, int64_t n);
void tr_vtanhf(float *y, const float *x, int64_t n);
void tr_verff(float *y, const float *x, int64_t n);
void tr_vlog1pf(float *y, const float *x, int64_t n);

/* The path in use: "avx512", "avx2", "fma" or "scalar". */
const char *tr_vmath_path(void);

/* Switches to a path by name (tests); false when the CPU cannot run it (nothing changes). */
bool tr_vmath_select(const char *name);

#endif
