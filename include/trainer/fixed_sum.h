/*
 * fixed_sum.h: the exact sum of gradients. Every value is rounded once to a 64-bit
 * fixed-point grid per tensor, 2^(e-40) with 2^e above the largest magnitude of that tensor
 * anywhere, and the integers are added, which is associative: the sum cannot depend on
 * which rank or thread computed which gradient, nor in which order they arrive. The exact
 * strategy of the gradient exchange (reduce.c) runs these steps: maxima, grid, sum (kept as
 * integers to be summed across nodes, then converted), loss.
 */
#ifndef TRAINER_FIXED_SUM_H
#define TRAINER_FIXED_SUM_H

#include "trainer/model.h"

#include <stddef.h>
#include <stdint.h>

/* Merges n gradients (flat layout) and their losses into the maxima mx (n_tensors + 2
 * values): mx[t] = max |g| of tensor t, mx[T] = max |loss|, mx[T + 1] = 1 when any value is
 * not finite. */
void tr_fixed_maxima(const tr_model *m, float *const *g, const double *loss, int n, double *mx);

/* From the maxima, one grid exponent per tensor and for the loss (exp[0..T]). */
void tr_fixed_grid(const double *mx, int T, int *exp);

/* The sum of n gradients over [lo, hi): with acc (indexed from lo) the integers are kept
 * there; else the sum is written to out (flat layout) as floats. */
void tr_fixed_sum(const tr_model *m, const int *exp, float *const *g, int n, size_t lo, size_t hi, int64_t *acc,
                  float *out);

/* tr_fixed_sum's integers (acc indexed from lo), sums of at most `terms` values each, to
 * floats in out (flat layout). */
void tr_fixed_to_float(const tr_model *m, const int *exp, const int64_t *acc, size_t lo, size_t hi, double terms,
                       float *out);

/* The n losses on the loss grid 2^exp, summed as integers. */
int64_t tr_fixed_loss(const double *loss, int n, int exp);

#endif
