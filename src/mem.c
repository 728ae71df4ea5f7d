/*
 * mem.c: aligned, zeroed allocations with a huge-page hint (madvise MADV_HUGEPAGE) for
 * large buffers (memory comes from posix_memalign, so tr_big_free is free()), and streaming
 * stores (SSE2, in every x86-64 CPU).
 */
#include "trainer/mem.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#if defined(__x86_64__)
#include <emmintrin.h>
#endif

#define HUGE_PAGE ((size_t)2 << 20)

void *tr_big_alloc(size_t bytes)
{
    if (bytes == 0)
        bytes = 64;
    const size_t align = bytes >= 2 * HUGE_PAGE ? HUGE_PAGE : 64;
    const size_t size = (bytes + align - 1) / align * align;
    void *p = NULL;
    if (posix_memalign(&p, align, size) != 0)
        return NULL;
#ifdef MADV_HUGEPAGE
    if (align == HUGE_PAGE)
        madvise(p, size, MADV_HUGEPAGE); /* a hint: failure only costs speed */
#endif
    memset(p, 0, size);
    return p;
}

void tr_big_free(void *p)
{
    free(p);
}

void tr_stream_floats(float *dst, const float *src, size_t n)
{
#if defined(__x86_64__)
    size_t i = 0;
    for (; i < n && ((uintptr_t)(dst + i) & 15) != 0; i++) /* to a 16-byte boundary */
        dst[i] = src[i];
    for (; i + 4 <= n; i += 4)
        _mm_stream_ps(dst + i, _mm_loadu_ps(src + i));
    for (; i < n; i++)
        dst[i] = src[i];
#else
    memcpy(dst, src, n * sizeof *dst);
#endif
}

void tr_stream_fence(void)
{
#if defined(__x86_64__)
    _mm_sfence();
#endif
}
