/*
 * gemm_onednn.c: the onednn engine: products through oneDNN's matmul primitive (fp32, or bf16
 * inputs with fp32 accumulation and output), which dispatches on the CPU itself (AVX2,
 * AVX-512, avx512_bf16, AMX). The bias is the primitive's own bias argument, beta = 1 its
 * "sum" post-op.
 *
 * A primitive is built for one shape (sizes, transpositions, leading dimensions, bias, beta):
 * building takes tens of microseconds, running one on the 784 network's shapes a few, so each
 * is built at its first use and kept in a small hash table of the engine state (a run meets a
 * handful: the batch, the ragged last batch, the evaluation chunk, the bucket's row blocks).
 * The operands are bound to the primitive's memory objects at each call.
 */
#include "gemm_engine.h"

#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { CACHE_SLOTS = 256 }; /* a power of two; emptied when three quarters full */

typedef struct shape_key {
    int64_t M, N, K, lda, ldb, ldc;
    bool ta, tb, bias, accumulate;
} shape_key;

typedef struct cached {
    bool used;
    shape_key key;
    dnnl_primitive_t prim;
    dnnl_memory_t a, b, c, bias;
} cached;

typedef struct onednn_state {
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    int n_cached;
    cached slot[CACHE_SLOTS];
} onednn_state;

/* Whether the CPU, as oneDNN sees it (ONEDNN_MAX_CPU_ISA included), has native bf16 products. */
static bool has_bf16(void)
{
    const unsigned isa = (unsigned)dnnl_get_effective_cpu_isa();
    return (isa & (unsigned)dnnl_cpu_isa_avx512_core_bf16) == (unsigned)dnnl_cpu_isa_avx512_core_bf16;
}

static const char *isa_name(void)
{
    const dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    switch (isa) {
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_sse41: return "sse41";
    default: return "other";
    }
}

static bool onednn_supports(tr_precision p, char *why, size_t len)
{
    if (p == TR_PRECISION_FP32 || has_bf16())
        return true;
    snprintf(why, len, "this CPU has no native bf16 products (oneDNN sees %s; bf16 needs avx512_bf16 or AMX)%s",
             isa_name(), getenv("ONEDNN_MAX_CPU_ISA") || getenv("DNNL_MAX_CPU_ISA") ? ", as ONEDNN_MAX_CPU_ISA limits it" : "");
    return false;
}

static int dnnl_failure(tr_err *err, const char *what, dnnl_status_t s)
{
    return tr_fail(err, s == dnnl_out_of_memory ? TR_ENOMEM : TR_EINTERNAL, "oneDNN: %s failed: %s", what,
                   dnnl_status2str(s));
}

static void uncache(cached *e)
{
    if (e->prim)
        dnnl_primitive_destroy(e->prim);
    if (e->a)
        dnnl_memory_destroy(e->a);
    if (e->b)
        dnnl_memory_destroy(e->b);
    if (e->c)
        dnnl_memory_destroy(e->c);
    if (e->bias)
        dnnl_memory_destroy(e->bias);
    memset(e, 0, sizeof *e);
}

static void onednn_destroy(void *state)
{
    onednn_state *s = state;
    if (!s)
        return;
    for (int i = 0; i < CACHE_SLOTS; i++)
        uncache(&s->slot[i]);
    if (s->stream)
        dnnl_stream_destroy(s->stream);
    if (s->engine)
        dnnl_engine_destroy(s->engine);
    free(s);
}

static int onednn_create(void **state, tr_precision p, tr_err *err)
{
    *state = NULL;
    onednn_state *s = calloc(1, sizeof *s);
    if (!s)
        return tr_fail(err, TR_ENOMEM, "out of memory for the oneDNN engine");
    dnnl_status_t st = dnnl_engine_create(&s->engine, dnnl_cpu, 0);
    if (st == dnnl_success)
        st = dnnl_stream_create(&s->stream, s->engine, dnnl_stream_default_flags);
    if (st != dnnl_success) {
        onednn_destroy(s);
        return dnnl_failure(err, "creating the CPU engine", st);
    }
    *state = s;
    return 0;
}

static shape_key key_of(const tr_gemm_call *c)
{
    shape_key k;
    memset(&k, 0, sizeof k); /* the padding too: keys are compared bytewise */
    k.M = c->M, k.N = c->N, k.K = c->K, k.lda = c->lda, k.ldb = c->ldb, k.ldc = c->ldc;
    k.ta = c->ta, k.tb = c->tb, k.bias = c->bias != NULL, k.accumulate = c->beta != 0.0f;
    return k;
}

static size_t hash_key(const shape_key *k)
{
    const unsigned char *p = (const unsigned char *)k;
    uint64_t h = 1469598103934665603u; /* FNV-1a */
    for (size_t i = 0; i < sizeof *k; i++)
        h = (h ^ p[i]) * 1099511628211u;
    return (size_t)(h ^ (h >> 29));
}

/* The primitive and memory objects of one shape. */
static int build(onednn_state *s, tr_precision p, const shape_key *k, cached *e, tr_err *err)
{
    const dnnl_data_type_t in = p == TR_PRECISION_BF16 ? dnnl_bf16 : dnnl_f32;
    dnnl_memory_desc_t ad, bd, cd, biasd;
    dnnl_dims_t adims = {k->M, k->K}, bdims = {k->K, k->N}, cdims = {k->M, k->N}, biasdims = {1, k->N};
    dnnl_dims_t as = {k->ta ? 1 : k->lda, k->ta ? k->lda : 1}, bs = {k->tb ? 1 : k->ldb, k->tb ? k->ldb : 1};
    dnnl_dims_t cs = {k->ldc, 1}, biass = {k->N, 1};
    dnnl_status_t st = dnnl_memory_desc_init_by_strides(&ad, 2, adims, in, as);
    if (st == dnnl_success)
        st = dnnl_memory_desc_init_by_strides(&bd, 2, bdims, in, bs);
    if (st == dnnl_success)
        st = dnnl_memory_desc_init_by_strides(&cd, 2, cdims, dnnl_f32, cs);
    if (st == dnnl_success && k->bias)
        st = dnnl_memory_desc_init_by_strides(&biasd, 2, biasdims, dnnl_f32, biass);
    dnnl_matmul_desc_t md;
    if (st == dnnl_success)
        st = dnnl_matmul_desc_init(&md, &ad, &bd, k->bias ? &biasd : NULL, &cd);
    if (st != dnnl_success)
        return dnnl_failure(err, "describing a matrix product", st);
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t ops = NULL;
    st = dnnl_primitive_attr_create(&attr);
    if (st == dnnl_success && k->accumulate) { /* C += product */
        st = dnnl_post_ops_create(&ops);
        if (st == dnnl_success)
            st = dnnl_post_ops_append_sum(ops, 1.0f);
        if (st == dnnl_success)
            st = dnnl_primitive_attr_set_post_ops(attr, ops);
    }
    dnnl_primitive_desc_t pd = NULL;
    if (st == dnnl_success)
        st = dnnl_primitive_desc_create(&pd, &md, attr, s->engine, NULL);
    if (st == dnnl_success)
        st = dnnl_primitive_create(&e->prim, pd);
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    if (ops)
        dnnl_post_ops_destroy(ops);
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    if (st == dnnl_success)
        st = dnnl_memory_create(&e->a, &ad, s->engine, DNNL_MEMORY_NONE);
    if (st == dnnl_success)
        st = dnnl_memory_create(&e->b, &bd, s->engine, DNNL_MEMORY_NONE);
    if (st == dnnl_success)
        st = dnnl_memory_create(&e->c, &cd, s->engine, DNNL_MEMORY_NONE);
    if (st == dnnl_success && k->bias)
        st = dnnl_memory_create(&e->bias, &biasd, s->engine, DNNL_MEMORY_NONE);
    if (st != dnnl_success) {
        uncache(e);
        char what[160];
        snprintf(what, sizeof what, "building the %s product (%lld x %lld) x (%lld x %lld)",
                 p == TR_PRECISION_BF16 ? "bf16" : "fp32", (long long)k->M, (long long)k->K, (long long)k->K,
                 (long long)k->N);
        return dnnl_failure(err, what, st);
    }
    e->used = true;
    e->key = *k;
    return 0;
}

/* The cached primitive of c's shape, built if new. */
static int lookup(onednn_state *s, tr_precision p, const tr_gemm_call *c, cached **out, tr_err *err)
{
    const shape_key k = key_of(c);
    size_t i = hash_key(&k) & (CACHE_SLOTS - 1);
    for (; s->slot[i].used; i = (i + 1) & (CACHE_SLOTS - 1))
        if (!memcmp(&s->slot[i].key, &k, sizeof k)) {
            *out = &s->slot[i];
            return 0;
        }
    if (s->n_cached >= CACHE_SLOTS * 3 / 4) { /* a run with many shapes: start over */
        for (int j = 0; j < CACHE_SLOTS; j++)
            uncache(&s->slot[j]);
        s->n_cached = 0;
        i = hash_key(&k) & (CACHE_SLOTS - 1);
    }
    int rc = build(s, p, &k, &s->slot[i], err);
    if (rc)
        return rc;
    s->n_cached++;
    *out = &s->slot[i];
    return 0;
}

static int onednn_product(void *state, tr_precision p, const tr_gemm_call *c, tr_err *err)
{
    onednn_state *s = state;
    cached *e;
    int rc = lookup(s, p, c, &e, err);
    if (rc)
        return rc;
    dnnl_memory_set_data_handle(e->a, (void *)c->A);
    dnnl_memory_set_data_handle(e->b, (void *)c->B);
    dnnl_memory_set_data_handle(e->c, c->C);
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, e->a}, {DNNL_ARG_WEIGHTS, e->b}, {DNNL_ARG_DST, e->c}};
    int n = 3;
    if (e->bias) {
        dnnl_memory_set_data_handle(e->bias, (void *)c->bias);
        args[n++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, e->bias};
    }
    dnnl_status_t st = dnnl_primitive_execute(e->prim, s->stream, n, args);
    if (st == dnnl_success)
        st = dnnl_stream_wait(s->stream);
    return st == dnnl_success ? 0 : dnnl_failure(err, "running a matrix product", st);
}

static const char *onednn_describe(char *buf, size_t len)
{
    const dnnl_version_t *v = dnnl_version();
    snprintf(buf, len, "oneDNN %d.%d.%d %s", v->major, v->minor, v->patch, isa_name());
    return buf;
}

const tr_gemm_engine_ops tr_gemm_onednn_ops = {.supports = onednn_supports,
                                               .create = onednn_create,
                                               .destroy = onednn_destroy,
                                               .product = onednn_product,
                                               .describe = onednn_describe};
