/*
 * mapping.h: read-only memory maps of data files.
 *
 * A contiguous, uncompressed float32 HDF5 dataset is used in place: its bytes are mapped
 * read-only, so the ranks of a node share the page cache (one copy per node whatever the
 * rank count) and a file larger than memory streams from disk. A mapped file that shrinks or
 * vanishes while it is read raises SIGBUS; the handler installed here ends the process with a
 * message naming the file and exit status 3 (a data error) instead of a core dump.
 */
#ifndef TRAINER_MAPPING_H
#define TRAINER_MAPPING_H

#include "trainer/error.h"
#include "trainer/files.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct tr_mapping {
    const void *data;      /* the file's byte `offset` */
    int64_t offset;
    size_t size;           /* bytes from there */
    void *map;             /* the page-aligned mapping */
    size_t map_size;
    dev_t dev;             /* the file mapped, to compare with what another rank maps */
    ino_t ino;
    int64_t file_size;
    char path[TR_PATH_MAX];
} tr_mapping;

/* Maps `size` bytes of `path` from `offset` read-only. TR_EIO or TR_EDATA (the file is shorter
 * than offset + size) with a message naming the file. */
int tr_map_file(tr_mapping *m, const char *path, int64_t offset, size_t size, tr_err *err);

/* How the rows will be read next, for the kernel's read-ahead: front to back (a scan: read far
 * ahead), in runs (its default), or at random (none: single rows of a file larger than memory
 * would otherwise each read megabytes around them). */
typedef enum tr_map_pattern { TR_MAP_SEQUENTIAL, TR_MAP_RUNS, TR_MAP_RANDOM } tr_map_pattern;
void tr_map_advise(tr_mapping *m, tr_map_pattern pattern);
/* Starts reading the pages under [begin, begin + len) of a mapping now, without waiting
 * (MADV_WILLNEED): many reads in flight at once instead of one page fault after another. */
void tr_map_will_need(const void *begin, size_t len);

/* Whether every page of the mapping is in memory now (mincore; false if that cannot be told). */
bool tr_map_resident(const tr_mapping *m);

/* Unmaps (accepts a zeroed or already unmapped mapping). */
void tr_unmap(tr_mapping *m);

#endif
