/*
 * vmath.c: SLEEF's vector math over arrays (see vmath.h), one dispatch per process.
 */
#include "trainer/vmath.h"

#include <stdlib.h>
/* sleef.h declares each ISA's functions only where the compiler targets that ISA (it tests
 * __AVX2__, __AVX512F__, and FP_FAST_FMA for the scalar FMA path): they are declared for
 * all; each is called only from a function compiled for its ISA, after the CPU check. GCC:
 * its target pragma around the include. clang has no such pragma and wants the callee's own
 * target on a vector argument, so the functions used are declared here with theirs
 * (ALL_PATHS, below). */
#if defined(__clang__)
#include <immintrin.h>
#include <sleef.h>
#define SLEEF_ISA_DECLS(sleef, u)                                                              \
    __attribute__((target("avx512f"))) extern __m512 sleef##16_##u##avx512f(__m512);           \
    __attribute__((target("avx2,fma"))) extern __m256 sleef##8_##u##avx2(__m256);               \
    __attribute__((target("fma"))) extern float sleef##1_##u##purecfma(float);
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma")
#include <immintrin.h>
#include <sleef.h>
#pragma GCC pop_options
#define SLEEF_ISA_DECLS(sleef, u)
#endif
#include <string.h>

typedef void (*array_fn)(float *, const float *, int64_t);

/* Unaligned loads and stores without intrinsics (theirs carry the ISA of the include above,
 * which does not inline into an AVX2 function). */
__attribute__((target("avx2"))) static inline __m256 load8(const float *p)
{
    __m256 v;
    memcpy(&v, p, sizeof v);
    return v;
}
__attribute__((target("avx2"))) static inline void store8(float *p, __m256 v) { memcpy(p, &v, sizeof v); }
__attribute__((target("avx512f"))) static inline __m512 load16(const float *p)
{
    __m512 v;
    memcpy(&v, p, sizeof v);
    return v;
}
__attribute__((target("avx512f"))) static inline void store16(float *p, __m512 v) { memcpy(p, &v, sizeof v); }

/* One function `fn` over an array, `lanes` at a time: whole vectors, then the tail padded
 * into a full vector (the same code computes every element). */
#define VECTOR_ARRAY(name, path, isa, lanes, load, store, fn)                                  \
    __attribute__((target(isa))) static void name##_##path(float *y, const float *x, int64_t n) \
    {                                                                                           \
        int64_t i = 0;                                                                          \
        for (; i + lanes <= n; i += lanes)                                                      \
            store(y + i, fn(load(x + i)));                                                      \
        if (i < n) {                                                                            \
            float in[lanes] = {0}, out[lanes];                                                  \
            memcpy(in, x + i, (size_t)(n - i) * sizeof *in);                                    \
            store(out, fn(load(in)));                                                           \
            memcpy(y + i, out, (size_t)(n - i) * sizeof *out);                                  \
        }                                                                                       \
    }
#define SCALAR_ARRAY(name, sleef, u)                                                             \
    static void name##_fma(float *y, const float *x, int64_t n)                                 \
    {                                                                                           \
        for (int64_t i = 0; i < n; i++)                                                         \
            y[i] = sleef##1_##u##purecfma(x[i]);                                                  \
    }                                                                                           \
    static void name##_scalar(float *y, const float *x, int64_t n)                              \
    {                                                                                           \
        for (int64_t i = 0; i < n; i++)                                                         \
            y[i] = sleef##1_##u##purec(x[i]);                                                     \
    }
#define ALL_PATHS(name, sleef, u)                                                               \
    SLEEF_ISA_DECLS(sleef, u)                                                                   \
    VECTOR_ARRAY(name, avx512, "avx512f", 16, load16, store16, sleef##16_##u##avx512f)          \
    VECTOR_ARRAY(name, avx2, "avx2,fma", 8, load8, store8, sleef##8_##u##avx2)                  \
    SCALAR_ARRAY(name, sleef, u)

ALL_PATHS(vexp, Sleef_expf, u10)
ALL_PATHS(vexpm1, Sleef_expm1f, u10)
ALL_PATHS(vtanh, Sleef_tanhf, u35) /* 3.5 ULP: 2.8x faster than u10 (0.66 vs 1.87 us per 1280) */
ALL_PATHS(verf, Sleef_erff, u10)
ALL_PATHS(vlog1p, Sleef_log1pf, u10)

enum { P_AVX512, P_AVX2, P_FMA, P_SCALAR, N_PATHS };
static const char *const path_names[N_PATHS] = {"avx512", "avx2", "fma", "scalar"};

#define TABLE(name) {name##_avx512, name##_avx2, name##_fma, name##_scalar}
static const array_fn table_exp[N_PATHS] = TABLE(vexp), table_expm1[N_PATHS] = TABLE(vexpm1),
                      table_tanh[N_PATHS] = TABLE(vtanh), table_erf[N_PATHS] = TABLE(verf),
                      table_log1p[N_PATHS] = TABLE(vlog1p);

static int path = P_SCALAR;

static bool available(int p)
{
    __builtin_cpu_init();
    const bool fma = __builtin_cpu_supports("fma");
    switch (p) {
    case P_AVX512: return __builtin_cpu_supports("avx512f");
    case P_AVX2: return __builtin_cpu_supports("avx2") && fma;
    case P_FMA: return fma;
    default: return true;
    }
}

bool tr_vmath_select(const char *name)
{
    for (int p = 0; p < N_PATHS; p++)
        if (!strcmp(name, path_names[p]) && available(p)) {
            path = p;
            return true;
        }
    return false;
}

/* The widest path the CPU runs (the TRAINER_VMATH test hook may select another: fault.h). */
__attribute__((constructor)) static void choose_path(void)
{
    for (path = 0; !available(path); path++)
        ;
}

const char *tr_vmath_path(void) { return path_names[path]; }

void tr_vexpf(float *y, const float *x, int64_t n) { table_exp[path](y, x, n); }
void tr_vexpm1f(float *y, const float *x, int64_t n) { table_expm1[path](y, x, n); }
void tr_vtanhf(float *y, const float *x, int64_t n) { table_tanh[path](y, x, n); }
void tr_verff(float *y, const float *x, int64_t n) { table_erf[path](y, x, n); }
void tr_vlog1pf(float *y, const float *x, int64_t n) { table_log1p[path](y, x, n); }
