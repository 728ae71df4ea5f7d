/*
 * mapping.c: read-only maps of data files and the SIGBUS guard over them (see mapping.h).
 */
#define _GNU_SOURCE
#include "trainer/mapping.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* The mapped ranges the SIGBUS handler knows, written before a range is used. */
#define MAX_GUARDED 8
static struct {
    _Atomic(const char *) begin;
    const char *end;
    char path[TR_PATH_MAX];
} guarded[MAX_GUARDED];
static atomic_bool handler_installed;

/* The most one read-ahead request of a mapped file's device reads (see tr_map_will_need): the
 * smallest over the mapped files; the kernel's default until one is known. */
enum { DEFAULT_READ_AHEAD = 128 << 10 };
static _Atomic size_t read_ahead_piece;

/* The device's read_ahead_kb (of the disk, for a file on a partition), or 0. */
static size_t device_read_ahead(dev_t dev)
{
    static const char *const where[] = {"/sys/dev/block/%u:%u/queue/read_ahead_kb",
                                        "/sys/dev/block/%u:%u/../queue/read_ahead_kb"};
    for (int i = 0; i < 2; i++) {
        char path[96];
        snprintf(path, sizeof path, where[i], major(dev), minor(dev));
        FILE *f = fopen(path, "r");
        unsigned long kb = 0;
        const bool ok = f && fscanf(f, "%lu", &kb) == 1;
        if (f)
            fclose(f);
        if (ok && kb > 0)
            return (size_t)kb << 10;
    }
    return 0;
}

static void on_sigbus(int sig, siginfo_t *info, void *ctx)
{
    (void)ctx;
    const char *addr = info->si_addr;
    for (int i = 0; i < MAX_GUARDED; i++) {
        const char *b = atomic_load(&guarded[i].begin);
        if (b && addr >= b && addr < guarded[i].end) {
            tr_write_stderr("trainer: error: ");
            tr_write_stderr(guarded[i].path);
            tr_write_stderr(": a mapped page of the data could not be read: the file was truncated, replaced or lost "
                      "while training (the last checkpoint is intact; restore the file and resume)\n");
            _exit(3); /* TR_EDATA's status; async-signal-safe */
        }
    }
    signal(sig, SIG_DFL); /* not ours: the default action */
    raise(sig);
}

static void guard(const tr_mapping *m)
{
    if (!atomic_exchange(&handler_installed, true)) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_sigbus;
        sa.sa_flags = SA_SIGINFO;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGBUS, &sa, NULL);
    }
    for (int i = 0; i < MAX_GUARDED; i++)
        if (!atomic_load(&guarded[i].begin)) {
            snprintf(guarded[i].path, sizeof guarded[i].path, "%s", m->path);
            guarded[i].end = (const char *)m->map + m->map_size;
            atomic_store(&guarded[i].begin, (const char *)m->map);
            return;
        }
}

static void unguard(const tr_mapping *m)
{
    for (int i = 0; i < MAX_GUARDED; i++)
        if (atomic_load(&guarded[i].begin) == (const char *)m->map)
            atomic_store(&guarded[i].begin, NULL);
}

int tr_map_file(tr_mapping *m, const char *path, int64_t offset, size_t size, tr_err *err)
{
    memset(m, 0, sizeof *m);
    snprintf(m->path, sizeof m->path, "%s", path);
    const int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return tr_fail(err, TR_EIO, "%s: cannot open for mapping: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || offset < 0 || st.st_size < offset || (uint64_t)(st.st_size - offset) < size) {
        close(fd);
        return tr_fail(err, TR_EDATA, "%s: the file is shorter (%lld bytes) than its data claim (%zu bytes at %lld)",
                       path, (long long)st.st_size, size, (long long)offset);
    }
    m->offset = offset;
    m->dev = st.st_dev;
    m->ino = st.st_ino;
    m->file_size = (int64_t)st.st_size;
    const long page = sysconf(_SC_PAGESIZE);
    const int64_t start = offset / page * page;
    m->map_size = (size_t)(offset - start) + size;
    if (m->map_size == 0) { /* nothing to map: an empty set */
        close(fd);
        m->data = "";
        return 0;
    }
    m->map = mmap(NULL, m->map_size, PROT_READ, MAP_SHARED, fd, (off_t)start);
    const int e = errno;
    close(fd);
    if (m->map == MAP_FAILED) {
        m->map = NULL;
        return tr_fail(err, TR_EIO, "%s: cannot map %zu bytes: %s", path, m->map_size, strerror(e));
    }
    m->data = (const char *)m->map + (offset - start);
    m->size = size;
    size_t piece = device_read_ahead(m->dev), was = atomic_load(&read_ahead_piece);
    if (piece < DEFAULT_READ_AHEAD)
        piece = DEFAULT_READ_AHEAD;
    while ((was == 0 || piece < was) && !atomic_compare_exchange_weak(&read_ahead_piece, &was, piece))
        ;
    guard(m);
    return 0;
}

void tr_map_advise(tr_mapping *m, tr_map_pattern pattern)
{
    static const int advice[] = {[TR_MAP_SEQUENTIAL] = MADV_SEQUENTIAL, [TR_MAP_RUNS] = MADV_NORMAL,
                                 [TR_MAP_RANDOM] = MADV_RANDOM};
    if (m && m->map)
        madvise(m->map, m->map_size, advice[pattern]);
}

void tr_map_will_need(const void *begin, size_t len)
{
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), a = (uintptr_t)begin & ~(page - 1);
    const uintptr_t end = (uintptr_t)begin + len;
    /* Linux reads at most the device's read-ahead size (read_ahead_kb, often 128 KiB)
     * of one request and drops the rest: asked for in pieces of that size, all of it is read */
    const size_t loaded = atomic_load(&read_ahead_piece), piece = loaded ? loaded : DEFAULT_READ_AHEAD;
    for (uintptr_t p = a; p < end; p += piece)
        madvise((void *)p, end - p < piece ? end - p : piece, MADV_WILLNEED); /* a hint: failure costs speed */
}

bool tr_map_resident(const tr_mapping *m)
{
    if (!m || !m->map)
        return true; /* nothing mapped: nothing to wait for */
    const size_t page = (size_t)sysconf(_SC_PAGESIZE), pages = (m->map_size + page - 1) / page;
    enum { SPAN = 1 << 16 }; /* pages asked about at once */
    unsigned char in_core[SPAN];
    for (size_t p = 0; p < pages; p += SPAN) {
        const size_t n = pages - p < SPAN ? pages - p : SPAN;
        if (mincore((char *)m->map + p * page, n * page, in_core) != 0)
            return false;
        for (size_t i = 0; i < n; i++)
            if (!(in_core[i] & 1))
                return false;
    }
    return true;
}

void tr_unmap(tr_mapping *m)
{
    if (!m || !m->map)
        return;
    unguard(m);
    munmap(m->map, m->map_size);
    m->map = NULL;
    m->data = NULL;
}
