/*
 * fuzz_util.h: what the fuzz harnesses share: the libFuzzer entry point, and fuzz input
 * turned into a file the readers can open by path (an in-memory memfd, no disk I/O).
 */
#ifndef TRAINER_FUZZ_UTIL_H
#define TRAINER_FUZZ_UTIL_H

#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Writes data to a new memfd and its /proc/self/fd path to `path`; returns the fd (close it
 * when done) or -1. */
static inline int fuzz_file(const uint8_t *data, size_t size, char *path, size_t len)
{
    int fd = memfd_create("fuzz", MFD_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t done = 0;
    while (done < size) {
        ssize_t w = write(fd, data + done, size - done);
        if (w <= 0) {
            close(fd);
            return -1;
        }
        done += (size_t)w;
    }
    snprintf(path, len, "/proc/self/fd/%d", fd);
    return fd;
}

/* The same as a real file under /dev/shm (in memory too): for HDF5, which cannot open a
 * memfd through /proc/self/fd. Remove it with unlink(path) when done; 0 or -1. */
static inline int fuzz_shm_file(const uint8_t *data, size_t size, char *path, size_t len)
{
    snprintf(path, len, "/dev/shm/trainer-fuzz-%ld.h5", (long)getpid());
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    const int ok = fwrite(data, 1, size, f) == size;
    return fclose(f) == 0 && ok ? 0 : -1;
}

#endif
