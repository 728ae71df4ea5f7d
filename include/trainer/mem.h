/*
 * mem.h: allocation of the large, long-lived buffers (data sets, parameters, gradients,
 * optimizer state, workspace): 64-byte aligned and zeroed, and backed by transparent huge
 * pages where the kernel offers them, which removes most TLB misses when a batch gathers
 * rows scattered over a large data set; and stores that bypass the cache, for buffers other
 * cores read next.
 */
#ifndef TRAINER_MEM_H
#define TRAINER_MEM_H

#include <stddef.h>

/* Zeroed, 64-byte aligned (2 MiB aligned and huge-page advised above 4 MiB); NULL on
 * failure. Release with tr_big_free. */
void *tr_big_alloc(size_t bytes);
void tr_big_free(void *p);

/* dst[0, n) = src[0, n) with non-temporal stores: the destination's lines are not read first,
 * and copies other cores hold are dropped in one pass instead of one invalidation per store.
 * For memory this core writes and others read next (the node-shared parameters: at np=2 the
 * optimizer's stores into lines the other rank had read cost more than its arithmetic).
 * Plain copies where the CPU has no such stores. tr_stream_fence orders the streamed stores
 * before later ones (before telling other cores to read). */
void tr_stream_floats(float *dst, const float *src, size_t n);
void tr_stream_fence(void);

#endif
