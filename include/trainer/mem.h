/*
 * mem.h: allocation of the large, long-lived buffers (data sets, parameters, gradients,
 * optimizer state, workspace): 64-byte aligned and zeroed, and backed by transparent huge
 * pages where the kernel offers them, which removes most TLB misses when a batch gathers
 * rows scattered over a large data set.
 */
#ifndef TRAINER_MEM_H
#define TRAINER_MEM_H

#include <stddef.h>

/* Zeroed, 64-byte aligned (2 MiB aligned and huge-page advised above 4 MiB); NULL on
 * failure. Release with tr_big_free. */
void *tr_big_alloc(size_t bytes);
void tr_big_free(void *p);

#endif
