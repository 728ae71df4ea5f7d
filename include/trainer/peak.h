/*
 * peak.h: this core's arithmetic limit, measured: a loop of independent fused multiply-adds
 * that touches no memory (sixteen register accumulators, more than the FMA latency times the
 * FMA units needs), timed on the calling thread. Every performance figure is stated as a share
 * of it (trainer bench --limit).
 */
#ifndef TRAINER_PEAK_H
#define TRAINER_PEAK_H

typedef struct tr_peak {
    double fp32_gflops;   /* fp32 FMA (the wider of AVX-512 and AVX2 loops), 2 FLOP each */
    const char *fp32_isa; /* "avx512f", "avx2+fma" or "scalar" */
    double bf16_gflops;   /* AVX-512 BF16 dot products (vdpbf16ps: 2 FLOP a bf16 pair); 0 without */
} tr_peak;

/* Measures both limits on this thread (about a tenth of a second each). */
void tr_peak_measure(tr_peak *p);

#endif
