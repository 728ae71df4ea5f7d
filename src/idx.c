/*
 * idx.c: IDX reader through zlib's gzread (transparent for uncompressed files).
 * Header: two zero bytes, a type byte (0x08 = unsigned byte), a dimension count, then each
 * dimension as a big-endian 32-bit integer, then the data in row-major order.
 */
#include "trainer/idx.h"

#include "trainer/files.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define MAX_IDX_DIMS 4

/* Why a gzread stopped: damaged compressed data (a CRC or format error zlib detected), an
 * I/O error, or the end of the file. */
static int stream_failure(gzFile g, const char *path, const char *what, tr_err *err)
{
    int errnum = Z_OK;
    const char *msg = gzerror(g, &errnum);
    if (errnum == Z_DATA_ERROR)
        return tr_fail(err, TR_EDATA, "%s: damaged gzip data (%s) while reading %s", path, msg, what);
    if (errnum == Z_ERRNO)
        return tr_fail(err, TR_EDATA, "%s: read error while reading %s: %s", path, what, strerror(errno));
    if (errnum != Z_OK && errnum != Z_BUF_ERROR)
        return tr_fail(err, TR_EDATA, "%s: %s while reading %s", path, msg, what);
    return tr_fail(err, TR_EDATA, "%s: truncated: the file ends inside %s", path, what);
}

/* Reads exactly n bytes; false on a short read. */
static bool read_full(gzFile g, void *buf, size_t n)
{
    unsigned char *p = buf;
    while (n > 0) {
        unsigned chunk = n > (1u << 30) ? (1u << 30) : (unsigned)n;
        int got = gzread(g, p, chunk);
        if (got <= 0)
            return false;
        p += got;
        n -= (size_t)got;
    }
    return true;
}

/* Reads exactly `want` bytes into a buffer that grows with the data that actually arrives
 * (doubling from 1 MiB), so a header claiming more than the file holds costs no more memory
 * than the file; NULL when the stream ends early (or memory runs out: *oom). */
static unsigned char *read_claimed(gzFile g, size_t want, bool *oom)
{
    *oom = false;
    size_t cap = want < ((size_t)1 << 20) ? want : ((size_t)1 << 20), have = 0;
    unsigned char *buf = malloc(cap ? cap : 1);
    while (buf && have < want) {
        if (have == cap) {
            cap = cap * 2 < want ? cap * 2 : want;
            unsigned char *grown = realloc(buf, cap);
            if (!grown) {
                free(buf);
                *oom = true;
                return NULL;
            }
            buf = grown;
        }
        if (!read_full(g, buf + have, cap - have)) {
            free(buf);
            return NULL;
        }
        have = cap;
    }
    *oom = !buf;
    return buf;
}

/* Reads whatever follows the items to the end of the file, so that zlib checks a gzip
 * file's CRC-32 and length (damage shows only there when the deflate stream itself is
 * well-formed). Trailing bytes are allowed. */
static int drain(gzFile g, const char *path, tr_err *err)
{
    unsigned char scratch[1 << 14];
    int got;
    while ((got = gzread(g, scratch, sizeof scratch)) > 0) {
    }
    return got < 0 ? stream_failure(g, path, "the end of the file", err) : 0;
}

static int open_idx(gzFile *g, const char *path, int want_dims, uint32_t dims[MAX_IDX_DIMS], tr_err *err)
{
    int rc = tr_input_check(path, NULL, TR_EDATA, err);
    if (rc)
        return rc;
    *g = gzopen(path, "rb");
    if (!*g)
        return tr_fail(err, TR_EDATA, "%s: cannot open: %s", path, errno ? strerror(errno) : "zlib error");
    unsigned char head[4];
    if (!read_full(*g, head, 4)) {
        int errnum = Z_OK;
        gzerror(*g, &errnum);
        return errnum == Z_OK || errnum == Z_BUF_ERROR
                   ? tr_fail(err, TR_EDATA, "%s: too short for an IDX header (empty or truncated file)", path)
                   : stream_failure(*g, path, "the IDX header", err);
    }
    if (head[0] != 0 || head[1] != 0)
        return tr_fail(err, TR_EDATA, "%s: not an IDX file (bad magic number)", path);
    if (head[2] != 0x08)
        return tr_fail(err, TR_EDATA, "%s: IDX data type 0x%02x is not supported (only unsigned bytes, 0x08)", path,
                       head[2]);
    if (head[3] != want_dims)
        return tr_fail(err, TR_EDATA, "%s: %d dimensions, expected %d (%s)", path, head[3], want_dims,
                       want_dims == 3 ? "images: count, height, width" : "labels: count");
    for (int i = 0; i < want_dims; i++) {
        unsigned char b[4];
        if (!read_full(*g, b, 4))
            return stream_failure(*g, path, "the IDX header", err);
        dims[i] = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
    }
    return 0;
}

int tr_idx_read(tr_dataset *ds, const char *images, const char *labels, tr_err *err)
{
    memset(ds, 0, sizeof *ds);
    gzFile gi = NULL, gl = NULL;
    uint32_t di[MAX_IDX_DIMS] = {0}, dl[MAX_IDX_DIMS] = {0};
    unsigned char *buf = NULL;
    int rc = open_idx(&gi, images, 3, di, err);
    if (!rc)
        rc = open_idx(&gl, labels, 1, dl, err);
    if (rc)
        goto done;
    if (di[0] != dl[0]) {
        rc = tr_fail(err, TR_EDATA, "%s has %u images but %s has %u labels", images, di[0], labels, dl[0]);
        goto done;
    }
    if (di[0] == 0 || di[1] == 0 || di[2] == 0) {
        rc = tr_fail(err, TR_EDATA, "%s: no images (%u x %u x %u)", images, di[0], di[1], di[2]);
        goto done;
    }
    /* the float copy must be addressable: count x height x width x 4 bytes within 2^62 */
    if ((uint64_t)di[1] * di[2] > (UINT64_C(1) << 60) / 4 / di[0]) {
        rc = tr_fail(err, TR_EDATA, "%s: %u images of %u x %u pixels: implausibly large header", images, di[0],
                     di[1], di[2]);
        goto done;
    }
    const int64_t n = di[0], F = (int64_t)di[1] * di[2];
    /* the labels first (n bytes), then the images, each only as far as the data goes */
    bool oom;
    char what[96];
    snprintf(what, sizeof what, "%lld labels", (long long)n);
    buf = read_claimed(gl, (size_t)n, &oom);
    if (!buf) {
        rc = oom ? tr_fail(err, TR_ENOMEM, "%s: cannot allocate %lld bytes", labels, (long long)n)
                 : stream_failure(gl, labels, what, err);
        goto done;
    }
    snprintf(what, sizeof what, "%lld images of %lld pixels", (long long)n, (long long)F);
    unsigned char *pixels = read_claimed(gi, (size_t)(n * F), &oom);
    if (!pixels) {
        rc = oom ? tr_fail(err, TR_ENOMEM, "%s: cannot allocate %lld bytes", images, (long long)(n * F))
                 : stream_failure(gi, images, what, err);
        goto done;
    }
    /* read on to the end: a gzip file's CRC is checked at its end */
    rc = drain(gl, labels, err);
    if (!rc)
        rc = drain(gi, images, err);
    if (rc) {
        free(pixels);
        goto done;
    }
    rc = tr_dataset_alloc(ds, n, F, 1, err);
    if (!rc) {
        for (int64_t i = 0; i < n * F; i++)
            ds->X[i] = (float)pixels[i] / 255.0f;
        for (int64_t i = 0; i < n; i++)
            ds->y[i] = (float)buf[i];
        snprintf(ds->source, sizeof ds->source, "%s", images);
    }
    free(pixels);
done:
    free(buf);
    if (gi)
        gzclose(gi);
    if (gl)
        gzclose(gl);
    if (rc)
        tr_dataset_free(ds);
    return rc;
}
