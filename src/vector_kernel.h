/*
 * vector_kernel.h (private): TR_VECTOR_KERNEL marks an element-wise kernel that GCC compiles
 * three times, for AVX-512, AVX2 and the x86-64 baseline, picking one at load time (function
 * multiversioning): 16- or 8-wide arithmetic where the CPU has it, from a binary that runs
 * everywhere. The clones give the same bits: element-wise IEEE operations only, and no
 * contraction into FMA (ISO C11 mode, -ffp-contract=off), which would change the rounding of
 * a*b + c. (Adam over the 784-256-128-10 network: 0.090 -> 0.078 ms a step with AVX-512.)
 */
#ifndef TRAINER_VECTOR_KERNEL_H
#define TRAINER_VECTOR_KERNEL_H

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define TR_VECTOR_KERNEL __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define TR_VECTOR_KERNEL
#endif

#endif
