/*
 * vector_kernel.h (private): TR_VECTOR_KERNEL marks an element-wise kernel that GCC compiles
 * twice, for AVX2 and for the x86-64 baseline, picking one at load time (function
 * multiversioning): 8-wide arithmetic where the CPU has it, from a binary that runs
 * everywhere. No FMA is enabled: contraction would change the rounding of a*b + c.
 */
#ifndef TRAINER_VECTOR_KERNEL_H
#define TRAINER_VECTOR_KERNEL_H

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define TR_VECTOR_KERNEL __attribute__((target_clones("avx2", "default")))
#else
#define TR_VECTOR_KERNEL
#endif

#endif
