/*
 * mem.c: aligned, zeroed allocations with a huge-page hint (madvise MADV_HUGEPAGE) for
 * large buffers. Memory comes from posix_memalign, so tr_big_free is free().
 */
#include "trainer/mem.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

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
