/*
 * bench.h: measuring where a training step's time goes, against the time the same matrix
 * products take in cblas_sgemm alone (the roofline of this design).
 *
 * The benchmark trains the configured model and optimizer on random data (features U(0,1),
 * random class labels) so that nothing but the step is measured.
 */
#ifndef TRAINER_BENCH_H
#define TRAINER_BENCH_H

#include "trainer/config.h"
#include "trainer/dist.h"
#include "trainer/error.h"
#include "trainer/train.h"

typedef struct tr_bench_result {
    double step_ms;                   /* wall time per optimizer step (slowest rank) */
    double phase_ms[TR_PHASE_COUNT];  /* per step, each the slowest rank's */
    double sgemm_ms;                  /* the step's sgemm calls alone, per step (slowest rank) */
    double sgemm_fraction;            /* median over rounds of sgemm time / step time */
    double samples_per_s;
    int64_t local_rows;               /* rows per rank per micro-step */
    int threads;
    size_t params;
} tr_bench_result;

/* Runs `warmup` steps, then `steps` optimizer steps of the configuration (its data replaced
 * by random rows) in 5 rounds, each followed by the same sgemm calls alone; reports medians.
 * Collective. */
int tr_bench_run(const tr_config *c, tr_dist *d, int64_t steps, int64_t warmup, tr_bench_result *r, tr_err *err);

/* The --set overrides that replace a configuration's data with random rows for the bench. */
int tr_bench_data_sets(const tr_config *c, int64_t steps, int64_t warmup, char sets[][128], int max);

#endif
