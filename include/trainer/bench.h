/*
 * bench.h: measuring where a training step's time goes, against the time the same matrix
 * products take alone in the run's engine and precision (the roofline of this design), and
 * against the machine's limit (peak.h): this core's FMA peak and every engine's products on
 * the model's shapes.
 *
 * The benchmark trains the configured model and optimizer on random data (features U(0,1),
 * random class labels) so that nothing but the step is measured.
 */
#ifndef TRAINER_BENCH_H
#define TRAINER_BENCH_H

#include "trainer/config.h"
#include "trainer/dist.h"
#include "trainer/error.h"
#include "trainer/peak.h"
#include "trainer/train.h"

typedef struct tr_bench_result {
    double step_ms;                   /* wall time per optimizer step (slowest rank) */
    double phase_ms[TR_PHASE_COUNT];  /* per step, each the slowest rank's */
    double gemm_ms;                   /* the step's products alone, per step (slowest rank) */
    double gemm_fraction;             /* median over rounds of products time / step time */
    double samples_per_s;
    int64_t local_rows;               /* rows per rank per micro-step */
    int threads;
    size_t params;
    tr_gemm_engine gemm;              /* the engine the run chose */
    double mflop_per_sample;          /* the products of one sample's forward and backward pass */
    double core_rtt_ns;               /* a cache line's round trip between local ranks 0 and 1 (NAN: one) */
} tr_bench_result;

/* The machine's limit beside the model's products (trainer bench --limit). */
typedef struct tr_bench_limit {
    tr_peak peak;                                     /* this core's, the best over the ranks */
    double seconds[TR_PRECISION_COUNT][TR_GEMM_ENGINE_COUNT]; /* one step's products (INFINITY: cannot) */
    double gflops[TR_PRECISION_COUNT][TR_GEMM_ENGINE_COUNT];
} tr_bench_limit;

/* Runs `warmup` steps, then `steps` optimizer steps of the configuration (its data replaced
 * by random rows) in rounds, each followed by the same products alone; reports medians.
 * Collective. */
int tr_bench_run(const tr_config *c, tr_dist *d, int64_t steps, int64_t warmup, tr_bench_result *r, tr_err *err);

/* Measures the limit on every rank at once: the FMA peaks, then each engine in each precision
 * (where the CPU has it) on the products of one training step at `rows` rows per rank.
 * Collective. */
int tr_bench_measure_limit(const tr_config *c, tr_dist *d, int64_t rows, tr_bench_limit *l, tr_err *err);

/* The --set overrides that replace a configuration's data with random rows for the bench. */
int tr_bench_data_sets(const tr_config *c, int64_t steps, int64_t warmup, char sets[][128], int max);

#endif
