/*
 * h5io.c: HDF5 helpers. Every hid_t opened here is closed on every path.
 */
#include "trainer/h5io.h"

#include "trainer/files.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <sys/stat.h>
#include <unistd.h>

void tr_h5_no_atexit(void) { H5dont_atexit(); }

void tr_h5_quiet(void)
{
    static bool done = false;
    if (!done) {
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
        done = true;
    }
}

/* The walk of tr_h5_why: the system's reason where a driver call failed, else the innermost
 * description. */
typedef struct why_walk {
    char *buf;
    size_t len;
    bool system;
} why_walk;

static herr_t why_step(unsigned n, const H5E_error2_t *e, void *data)
{
    why_walk *w = data;
    const char *desc = e && e->desc ? e->desc : "";
    const char *m = strstr(desc, "error message = '");
    if (m) {
        m += strlen("error message = '");
        snprintf(w->buf, w->len, "%.*s", (int)strcspn(m, "'"), m);
        w->system = true;
        return 1; /* found: stop */
    }
    if (n == 0 && desc[0])
        snprintf(w->buf, w->len, "HDF5: %s", desc);
    return 0;
}

const char *tr_h5_why(char *buf, size_t len)
{
    snprintf(buf, len, "HDF5 gave no reason");
    why_walk w = {.buf = buf, .len = len};
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, why_step, &w);
    return buf;
}

int tr_h5_finish(hid_t file, const char *path, tr_err *err)
{
    char why[200] = "";
    /* the flush reports what a close may not: data still in HDF5's buffers that did not fit
     * on the disk (H5Fclose of 1.10 can succeed and leave holes where the rows were) */
    const bool flushed = H5Fflush(file, H5F_SCOPE_LOCAL) >= 0;
    if (!flushed)
        tr_h5_why(why, sizeof why);
    const bool closed = H5Fclose(file) >= 0;
    if (flushed && !closed)
        tr_h5_why(why, sizeof why);
    if (!flushed || !closed)
        return tr_fail(err, TR_EIO, "%s: cannot complete the file: %s", path, why);
    return 0;
}

/* libhdf5 1.10 can crash on a damaged file (found by tests/fuzz/fuzz_h5data.c: a NULL
 * copy inside a group lookup). While a user's HDF5 file is open, a crash becomes the data
 * error it is: the file named on stderr and exit status 3, never a core dump that says
 * nothing (also under the sanitizers: a fuzz run then reports the exit). */

static char guarded_path[TR_PATH_MAX + 128];
static size_t guarded_len;
static struct sigaction saved_segv, saved_bus;

static void on_hdf5_crash(int sig)
{
    (void)sig;
    static const char head[] = "trainer: error: ", tail[] = ": libhdf5 crashed while reading this file (a damaged "
                                                             "or truncated HDF5 file?)\n";
    if (write(STDERR_FILENO, head, sizeof head - 1) < 0 || write(STDERR_FILENO, guarded_path, guarded_len) < 0 ||
        write(STDERR_FILENO, tail, sizeof tail - 1) < 0) {
        /* nothing more can be done in a signal handler */
    }
    _exit(3); /* the data-error status (error.h) */
}

static void guard(const char *path)
{
    guarded_len = (size_t)snprintf(guarded_path, sizeof guarded_path, "%s", path);
    if (guarded_len >= sizeof guarded_path)
        guarded_len = sizeof guarded_path - 1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_hdf5_crash;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &saved_segv);
    sigaction(SIGBUS, &sa, &saved_bus);
}

static void unguard(void)
{
    sigaction(SIGSEGV, &saved_segv, NULL);
    sigaction(SIGBUS, &saved_bus, NULL);
}

int tr_h5_open(hid_t *file, const char *path, tr_err *err)
{
    tr_h5_quiet();
    const int rc = tr_input_check(path, NULL, TR_EDATA, err); /* never block on a FIFO */
    if (rc)
        return rc;
    htri_t is = H5Fis_hdf5(path);
    if (is <= 0) {
        FILE *f = fopen(path, "rb");
        if (!f)
            return tr_fail(err, TR_EDATA, "%s: cannot open: %s", path, strerror(errno));
        fclose(f);
        return tr_fail(err, TR_EDATA, "%s: not an HDF5 file (or a truncated or corrupt one)", path);
    }
    guard(path);
    *file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (*file < 0) {
        char why[200];
        tr_h5_why(why, sizeof why);
        unguard();
        if (strstr(why, "temporarily unavailable")) /* EAGAIN from flock: HDF5's file locking */
            return tr_fail(err, TR_EDATA, "%s: locked by another process that has it open for writing (HDF5's file "
                                          "locking): wait until it is done, or read a copy", path);
        if (strstr(why, "already open for write"))
            return tr_fail(err, TR_EDATA, "%s: marked as open for writing by another process (if that process was "
                                          "killed, `h5clear -s %s` clears the mark)", path, path);
        return tr_fail(err, TR_EDATA, "%s: cannot open as HDF5 (%s; damaged or truncated?)", path, why);
    }
    return 0;
}

bool tr_h5_is_file(const char *path)
{
    tr_h5_quiet();
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && H5Fis_hdf5(path) > 0;
}

static herr_t root_name_known(hid_t group, const char *name, const H5L_info_t *info, void *data)
{
    (void)group;
    (void)info;
    for (const char *const *n = data; *n; n++)
        if (!strcmp(name, *n))
            return 0;
    return 1; /* stops the iteration: a name not in the list */
}

/* Opens an existing file for a look at its root: as a SWMR reader first (a metric log whose
 * writer was killed stays marked as open for writing), then plainly; one read attempt, no
 * retries with sleeps on a damaged file. */
static hid_t open_to_look(const char *path)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
    H5Pset_metadata_read_attempts(fapl, 1);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, fapl);
    H5Pclose(fapl);
    return f >= 0 ? f : H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
}

int tr_h5_root_check(const char *path, const char *const *names)
{
    if (!tr_h5_is_file(path))
        return 0;
    hid_t f = open_to_look(path);
    if (f < 0)
        return -1;
    hsize_t idx = 0;
    const herr_t st = H5Literate(f, H5_INDEX_NAME, H5_ITER_NATIVE, &idx, root_name_known, (void *)names);
    H5Fclose(f);
    return st == 0 ? 1 : 0;
}

bool tr_h5_root_holds_only(const char *path, const char *const *names) { return tr_h5_root_check(path, names) == 1; }

void tr_h5_close(hid_t file)
{
    if (file >= 0) {
        H5Fclose(file);
        unguard();
    }
}

bool tr_h5_exists(hid_t file, const char *name)
{
    /* check every prefix so a missing intermediate group is not an error */
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", name);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            const char saved = *p;
            *p = '\0';
            if (H5Lexists(file, buf, H5P_DEFAULT) <= 0)
                return false;
            if (saved == '\0')
                break;
            *p = saved;
        }
    }
    return true;
}

int tr_h5_shape(hid_t file, const char *path, const char *name, int64_t *rows, int64_t *cols, bool *is_integer,
                tr_err *err)
{
    if (!tr_h5_exists(file, name))
        return tr_fail(err, TR_EDATA, "%s: no dataset %s", path, name);
    hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
    if (d < 0)
        return tr_fail(err, TR_EDATA, "%s: %s is not a dataset", path, name);
    hid_t s = H5Dget_space(d), t = H5Dget_type(d);
    int rc = 0;
    const H5T_class_t cls = H5Tget_class(t);
    const int nd = H5Sget_simple_extent_ndims(s);
    hsize_t dims[2] = {0, 0};
    if (cls != H5T_FLOAT && cls != H5T_INTEGER) {
        rc = tr_fail(err, TR_EDATA, "%s: %s holds neither integers nor floating-point numbers", path, name);
    } else if (nd < 1 || nd > 2) {
        rc = tr_fail(err, TR_EDATA, "%s: %s has %d dimensions; expected 1 (a column) or 2 (rows, columns)", path,
                     name, nd);
    } else {
        H5Sget_simple_extent_dims(s, dims, NULL);
        *rows = (int64_t)dims[0];
        *cols = nd == 2 ? (int64_t)dims[1] : 1;
        if (is_integer)
            *is_integer = cls == H5T_INTEGER;
    }
    H5Tclose(t);
    H5Sclose(s);
    H5Dclose(d);
    return rc;
}

int tr_h5_contiguous_f32(hid_t file, const char *name, int64_t *offset, int64_t *rows, int64_t *cols)
{
    if (!tr_h5_exists(file, name))
        return 0;
    hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
    if (d < 0)
        return 0;
    hid_t s = H5Dget_space(d), t = H5Dget_type(d), dcpl = H5Dget_create_plist(d);
    int ok = s >= 0 && t >= 0 && dcpl >= 0 && H5Tequal(t, H5T_NATIVE_FLOAT) > 0 &&
             H5Pget_layout(dcpl) == H5D_CONTIGUOUS && H5Pget_nfilters(dcpl) == 0 && H5Pget_external_count(dcpl) == 0;
    const int nd = ok ? H5Sget_simple_extent_ndims(s) : 0;
    hsize_t dims[2] = {0, 1};
    ok = ok && (nd == 1 || nd == 2) && H5Sget_simple_extent_dims(s, dims, NULL) == nd;
    const haddr_t at = ok ? H5Dget_offset(d) : HADDR_UNDEF;
    /* written (storage allocated, the size the shape claims) at a known address */
    ok = ok && at != HADDR_UNDEF && H5Dget_storage_size(d) == dims[0] * dims[1] * sizeof(float) &&
         at <= (haddr_t)INT64_MAX;
    if (ok) {
        *offset = (int64_t)at;
        *rows = (int64_t)dims[0];
        *cols = (int64_t)dims[1];
    }
    if (dcpl >= 0)
        H5Pclose(dcpl);
    if (t >= 0)
        H5Tclose(t);
    if (s >= 0)
        H5Sclose(s);
    H5Dclose(d);
    return ok;
}

/* Values of a wider type that do not fit a float32 (HDF5 would store an infinity). */
typedef struct overflow {
    int64_t count;
    double first;
} overflow;

static H5T_conv_ret_t on_overflow(H5T_conv_except_t what, hid_t src, hid_t dst, void *src_buf, void *dst_buf,
                                  void *ctx)
{
    (void)dst;
    (void)dst_buf;
    overflow *ov = ctx;
    if (what == H5T_CONV_EXCEPT_RANGE_HI || what == H5T_CONV_EXCEPT_RANGE_LOW) {
        if (ov->count++ == 0) {
            const size_t size = H5Tget_size(src);
            double v = what == H5T_CONV_EXCEPT_RANGE_HI ? HUGE_VAL : -HUGE_VAL;
            if (H5Tget_class(src) == H5T_FLOAT && size == sizeof(double))
                memcpy(&v, src_buf, sizeof v);
            else if (H5Tget_class(src) == H5T_FLOAT && size == sizeof(long double))
                v = (double)*(const long double *)src_buf;
            ov->first = v;
        }
    }
    return H5T_CONV_UNHANDLED;
}

/* Whether a datatype is a plain number libhdf5 converts safely: an integer of 1, 2, 4 or 8
 * bytes using all its bits (also as an enum's base), or a float of 2, 4 or 8 bytes likewise.
 * A damaged file can claim other precisions, on which libhdf5 1.10's conversion overruns its
 * stack (found by tests/fuzz/fuzz_h5data.c). */
static bool plain_number(hid_t type)
{
    const size_t size = H5Tget_size(type);
    switch (H5Tget_class(type)) {
    case H5T_INTEGER:
        return (size == 1 || size == 2 || size == 4 || size == 8) && H5Tget_precision(type) == size * 8 &&
               H5Tget_offset(type) == 0;
    case H5T_FLOAT: /* half (as h5py writes float16), single or double, all bits in use */
        return (size == 2 || size == 4 || size == 8) && H5Tget_precision(type) == size * 8 &&
               H5Tget_offset(type) == 0;
    case H5T_ENUM: { /* h5py's bool */
        hid_t base = H5Tget_super(type);
        const bool ok = base >= 0 && plain_number(base);
        if (base >= 0)
            H5Tclose(base);
        return ok;
    }
    default:
        return false;
    }
}

/* Whether a dataset's stored bytes can hold what its layout claims. libhdf5 1.10 trusts a
 * damaged file here and copies past its own buffers (found by tests/fuzz/fuzz_h5data.c: an
 * unfiltered chunk stored shorter than the chunk), so the sizes are checked first. Filtered
 * (compressed) chunks are decoded into whole-chunk buffers and need no size check; every
 * chunk must fit the dataset's fixed dimensions. */
static bool storage_consistent(hid_t d)
{
    hid_t dcpl = H5Dget_create_plist(d), type = H5Dget_type(d), space = H5Dget_space(d);
    const size_t elem = H5Tget_size(type);
    const hssize_t n = H5Sget_simple_extent_npoints(space);
    const hsize_t stored = H5Dget_storage_size(d);
    bool ok = dcpl >= 0 && elem > 0 && n >= 0 && plain_number(type);
    if (ok) {
        const H5D_layout_t layout = H5Pget_layout(dcpl);
        const hsize_t whole = (hsize_t)n * elem;
        if (layout == H5D_COMPACT) {
            ok = stored == whole;
        } else if (layout == H5D_CONTIGUOUS) {
            ok = stored == 0 || stored == whole; /* 0: never written, read as the fill value */
        } else if (layout == H5D_CHUNKED) {
            /* HDF5 creates no chunk larger than a fixed dimension: a file claiming one is
             * damaged, and libhdf5 1.10 reads freed memory on it (fuzz_h5data, a deflated
             * chunk of 5 x 512 in a 20 x 2 dataset) */
            hsize_t dims[H5S_MAX_RANK], cur[H5S_MAX_RANK], max[H5S_MAX_RANK];
            const int rank = H5Pget_chunk(dcpl, H5S_MAX_RANK, dims);
            const int drank = H5Sget_simple_extent_dims(space, cur, max);
            ok = rank > 0 && rank == drank;
            for (int i = 0; ok && i < rank; i++)
                ok = dims[i] > 0 && (max[i] == H5S_UNLIMITED || dims[i] <= max[i]);
            if (ok && H5Pget_nfilters(dcpl) == 0) {
                hsize_t chunk = elem;
                for (int i = 0; i < rank; i++)
                    chunk *= dims[i];
                ok = chunk > 0 && stored % chunk == 0;
            }
        }
    }
    if (dcpl >= 0)
        H5Pclose(dcpl);
    if (type >= 0)
        H5Tclose(type);
    if (space >= 0)
        H5Sclose(space);
    return ok;
}

/* The deflated chunks of rows [row_begin, row_end) inflate to exactly a chunk's bytes.
 * libhdf5 1.10 trusts a damaged chunk that inflates to fewer and copies past its buffer
 * (fuzz_h5data); the check inflates each raw chunk with zlib first. Pipelines of shuffle,
 * deflate and a final fletcher32 are checked; other filters are left to HDF5. */
/* Whether a chunk pipeline is made of shuffle, deflate and fletcher32 only (the ones the
 * checks below understand); the positions of deflate and fletcher32 in it (-1: absent). */
static bool deflate_pipeline(hid_t dcpl, int *deflate, int *fletcher)
{
    *deflate = *fletcher = -1;
    const int nf = H5Pget_nfilters(dcpl);
    for (int i = 0; i < nf; i++) {
        unsigned flags, cd[8];
        size_t ncd = 8;
        const H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &flags, &ncd, cd, 0, NULL, NULL);
        if (id == H5Z_FILTER_DEFLATE)
            *deflate = i;
        else if (id == H5Z_FILTER_FLETCHER32)
            *fletcher = i;
        else if (id != H5Z_FILTER_SHUFFLE)
            return false;
    }
    return true;
}

static bool deflated_chunks_whole(hid_t d, hid_t dcpl, size_t elem, int64_t row_begin, int64_t row_end)
{
    int deflate, fletcher;
    if (!deflate_pipeline(dcpl, &deflate, &fletcher) || deflate < 0 ||
        (fletcher >= 0 && fletcher != H5Pget_nfilters(dcpl) - 1))
        return true; /* another pipeline: HDF5's to decode */
    hsize_t dims[H5S_MAX_RANK];
    const int rank = H5Pget_chunk(dcpl, H5S_MAX_RANK, dims);
    size_t bytes = elem;
    for (int i = 0; i < rank; i++)
        bytes *= (size_t)dims[i];
    hsize_t n = 0;
    hid_t space = H5Dget_space(d); /* libhdf5 1.10 refuses H5S_ALL here, whatever its manual says */
    if (rank < 1 || space < 0 || H5Dget_num_chunks(d, space, &n) < 0) {
        if (space >= 0)
            H5Sclose(space);
        return false;
    }
    unsigned char *raw = NULL, *plain = malloc(bytes + 1);
    bool ok = plain != NULL;
    for (hsize_t i = 0; ok && i < n; i++) {
        hsize_t offset[H5S_MAX_RANK];
        unsigned mask = 0;
        haddr_t addr;
        hsize_t size = 0;
        ok = H5Dget_chunk_info(d, space, i, offset, &mask, &addr, &size) >= 0;
        if (!ok || (int64_t)offset[0] >= row_end || (int64_t)(offset[0] + dims[0]) <= row_begin)
            continue; /* not among the rows read */
        hsize_t stored = 0; /* what H5Dread_chunk will read: the index must say the same */
        ok = H5Dget_chunk_storage_size(d, offset, &stored) >= 0 && stored == size;
        if (!ok)
            continue;
        const size_t tail = fletcher >= 0 && !(mask & (1u << fletcher)) ? 4 : 0;
        if (mask & (1u << deflate)) { /* stored without deflate: whole, or the checksum's 4 bytes more */
            ok = size == bytes + tail;
            continue;
        }
        unsigned char *grown = realloc(raw, (size_t)size + 1);
        ok = grown && size > tail;
        raw = grown ? grown : raw;
        uint32_t read_mask = mask;
        ok = ok && H5Dread_chunk(d, H5P_DEFAULT, offset, &read_mask, raw) >= 0;
        uLongf got = (uLongf)bytes + 1; /* room for one byte too many: a longer chunk shows */
        ok = ok && uncompress(plain, &got, raw, (uLong)(size - tail)) == Z_OK && got == bytes;
    }
    free(raw);
    free(plain);
    H5Sclose(space);
    return ok;
}

int tr_h5_check_stored(hid_t file, const char *path, const char *name, tr_err *err)
{
    hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
    if (d < 0)
        return tr_fail(err, TR_EDATA, "%s: no dataset %s", path, name);
    hid_t dcpl = H5Dget_create_plist(d), type = H5Dget_type(d), space = H5Dget_space(d);
    const hssize_t n = H5Sget_simple_extent_npoints(space);
    const double claimed = (double)(n > 0 ? n : 0) * (double)H5Tget_size(type);
    const double stored = (double)H5Dget_storage_size(d);
    bool plausible = true;
    if (claimed > 0 && H5Pget_layout(dcpl) == H5D_CHUNKED) {
        int deflate, fletcher;
        const bool deflate_only = deflate_pipeline(dcpl, &deflate, &fletcher);
        /* unfiltered chunks hold at least the values; deflate shrinks at most ~1032 times */
        plausible = H5Pget_nfilters(dcpl) == 0 ? stored >= claimed : !deflate_only || stored * 1100.0 >= claimed;
    } else if (claimed > 0) {
        plausible = stored >= claimed; /* contiguous or compact: every value stored */
    }
    H5Sclose(space);
    H5Tclose(type);
    H5Pclose(dcpl);
    H5Dclose(d);
    if (!plausible)
        return tr_fail(err, TR_EDATA, "%s: %s claims %.0f bytes of values but the file stores %.0f for it (damaged or "
                                      "truncated?)", path, name, claimed, stored);
    return 0;
}

int tr_h5_read_rows(hid_t file, const char *path, const char *name, int64_t row_begin, int64_t row_end, int64_t cols,
                    float *out, tr_err *err)
{
    int64_t rows, c;
    int rc = tr_h5_shape(file, path, name, &rows, &c, NULL, err);
    if (rc)
        return rc;
    if (c != cols || row_begin < 0 || row_end > rows || row_begin > row_end)
        return tr_fail(err, TR_EDATA, "%s: %s: cannot read rows [%lld, %lld) x %lld columns of a %lld x %lld dataset",
                       path, name, (long long)row_begin, (long long)row_end, (long long)cols, (long long)rows,
                       (long long)c);
    if (row_end == row_begin)
        return 0;
    hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
    bool whole = d >= 0 && storage_consistent(d);
    if (whole) {
        hid_t dcpl = H5Dget_create_plist(d), type = H5Dget_type(d);
        if (H5Pget_layout(dcpl) == H5D_CHUNKED && H5Pget_nfilters(dcpl) > 0)
            whole = deflated_chunks_whole(d, dcpl, H5Tget_size(type), row_begin, row_end);
        H5Tclose(type);
        H5Pclose(dcpl);
    }
    if (d < 0 || !whole) {
        if (d >= 0)
            H5Dclose(d);
        return tr_fail(err, TR_EDATA, "%s: %s: the stored data do not match the dataset's type or size (corrupt or "
                                      "truncated file?)", path, name);
    }
    hid_t fs = H5Dget_space(d);
    const int nd = H5Sget_simple_extent_ndims(fs);
    hsize_t start[2] = {(hsize_t)row_begin, 0}, count[2] = {(hsize_t)(row_end - row_begin), (hsize_t)cols};
    herr_t st = H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
    hid_t ms = H5Screate_simple(nd, count, NULL);
    overflow ov = {0};
    hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
    H5Pset_type_conv_cb(dxpl, on_overflow, &ov);
    if (st >= 0)
        st = H5Dread(d, H5T_NATIVE_FLOAT, ms, fs, dxpl, out);
    H5Pclose(dxpl);
    H5Sclose(ms);
    H5Sclose(fs);
    H5Dclose(d);
    if (st < 0)
        return tr_fail(err, TR_EDATA, "%s: reading %s rows [%lld, %lld) failed (corrupt or truncated file?)", path,
                       name, (long long)row_begin, (long long)row_end);
    if (ov.count > 0) { /* the converted value is an infinity: find its row */
        int64_t at = 0;
        const int64_t n = (row_end - row_begin) * cols;
        while (at < n && !isinf(out[at]))
            at++;
        return tr_fail(err, TR_EDATA, "%s: %s row %lld: %g is too large for a 32-bit float (|x| <= 3.4e38)", path,
                       name, (long long)(row_begin + (at < n ? at / cols : 0)), ov.first);
    }
    return 0;
}

/* Creates the groups along `name` (not the last component). */
static int make_groups(hid_t file, const char *path, const char *name, tr_err *err)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", name);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (H5Lexists(file, buf, H5P_DEFAULT) <= 0) {
            hid_t g = H5Gcreate2(file, buf, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
            if (g < 0) {
                char why[200];
                return tr_fail(err, TR_EIO, "%s: cannot create group %s: %s", path, buf, tr_h5_why(why, sizeof why));
            }
            H5Gclose(g);
        }
        *p = '/';
    }
    return 0;
}

static int write_dataset(hid_t file, const char *path, const char *name, hid_t type, const void *data, int64_t rows,
                         int64_t cols, tr_err *err)
{
    int rc = make_groups(file, path, name, err);
    if (rc)
        return rc;
    hsize_t dims[2] = {(hsize_t)rows, (hsize_t)cols};
    hid_t s = H5Screate_simple(cols > 0 ? 2 : 1, dims, NULL);
    hid_t d = H5Dcreate2(file, name, type, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t st = d < 0 ? -1 : 0;
    if (st >= 0 && rows > 0 && data) /* no data: created, written later by rows */
        st = H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    char why[200];
    if (st < 0)
        tr_h5_why(why, sizeof why);
    if (d >= 0)
        H5Dclose(d);
    H5Sclose(s);
    if (st < 0)
        return tr_fail(err, TR_EIO, "%s: cannot write dataset %s: %s", path, name, why);
    return 0;
}

int tr_h5_create_f32(hid_t file, const char *path, const char *name, int64_t rows, int64_t cols, tr_err *err)
{
    return write_dataset(file, path, name, H5T_NATIVE_FLOAT, NULL, rows, cols, err);
}

int tr_h5_create_i64(hid_t file, const char *path, const char *name, int64_t rows, tr_err *err)
{
    return write_dataset(file, path, name, H5T_NATIVE_INT64, NULL, rows, 0, err);
}

/* Writes rows [row_begin, row_begin + n) of an existing dataset of `cols` columns (0: 1-D). */
static int write_rows(hid_t file, const char *path, const char *name, hid_t type, int64_t row_begin, int64_t n,
                      int64_t cols, const void *data, tr_err *err)
{
    if (n <= 0)
        return 0;
    hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
    hid_t fs = d < 0 ? -1 : H5Dget_space(d);
    const hsize_t start[2] = {(hsize_t)row_begin, 0}, count[2] = {(hsize_t)n, (hsize_t)cols};
    const int rank = cols > 0 ? 2 : 1;
    hid_t ms = H5Screate_simple(rank, count, NULL);
    herr_t st = fs < 0 ? -1 : H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
    if (st >= 0)
        st = H5Dwrite(d, type, ms, fs, H5P_DEFAULT, data);
    char why[200];
    if (st < 0)
        tr_h5_why(why, sizeof why);
    H5Sclose(ms);
    if (fs >= 0)
        H5Sclose(fs);
    if (d >= 0)
        H5Dclose(d);
    if (st < 0)
        return tr_fail(err, TR_EIO, "%s: cannot write rows %lld..%lld of %s: %s", path, (long long)row_begin,
                       (long long)(row_begin + n - 1), name, why);
    return 0;
}

int tr_h5_write_rows_f32(hid_t file, const char *path, const char *name, int64_t row_begin, int64_t n, int64_t cols,
                         const float *data, tr_err *err)
{
    return write_rows(file, path, name, H5T_NATIVE_FLOAT, row_begin, n, cols, data, err);
}

int tr_h5_write_rows_i64(hid_t file, const char *path, const char *name, int64_t row_begin, int64_t n,
                         const int64_t *data, tr_err *err)
{
    return write_rows(file, path, name, H5T_NATIVE_INT64, row_begin, n, 0, data, err);
}

int tr_h5_write_f32(hid_t file, const char *path, const char *name, const float *data, int64_t rows, int64_t cols,
                    tr_err *err)
{
    return write_dataset(file, path, name, H5T_NATIVE_FLOAT, data, rows, cols, err);
}

int tr_h5_write_i64(hid_t file, const char *path, const char *name, const int64_t *data, int64_t rows, tr_err *err)
{
    return write_dataset(file, path, name, H5T_NATIVE_INT64, data, rows, 0, err);
}

int tr_h5_write_f64(hid_t file, const char *path, const char *name, const double *data, int64_t rows, int64_t cols,
                    tr_err *err)
{
    return write_dataset(file, path, name, H5T_NATIVE_DOUBLE, data, rows, cols, err);
}

int tr_h5_write_strings(hid_t file, const char *path, const char *name, const char *const *strings, int64_t rows,
                        tr_err *err)
{
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, H5T_VARIABLE);
    H5Tset_cset(type, H5T_CSET_UTF8);
    const int rc = write_dataset(file, path, name, type, strings, rows, 0, err);
    H5Tclose(type);
    return rc;
}

int tr_h5_write_targets(hid_t file, const char *path, const char *name, const float *y, int64_t rows, int64_t cols,
                        bool labels, tr_err *err)
{
    if (!labels)
        return tr_h5_write_f32(file, path, name, y, rows, cols, err);
    int64_t *lab = malloc((size_t)rows * sizeof *lab + 1);
    if (!lab)
        return tr_fail(err, TR_ENOMEM, "out of memory");
    for (int64_t r = 0; r < rows; r++)
        lab[r] = (int64_t)y[r];
    const int rc = tr_h5_write_i64(file, path, name, lab, rows, err);
    free(lab);
    return rc;
}

static int write_attr(hid_t file, const char *path, const char *obj, const char *name, hid_t type, const void *v,
                      tr_err *err)
{
    if (H5Aexists_by_name(file, obj, name, H5P_DEFAULT) > 0)
        H5Adelete_by_name(file, obj, name, H5P_DEFAULT);
    hid_t s = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate_by_name(file, obj, name, type, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t st = a < 0 ? -1 : H5Awrite(a, type, v);
    char why[200];
    if (st < 0)
        tr_h5_why(why, sizeof why);
    if (a >= 0)
        H5Aclose(a);
    H5Sclose(s);
    if (st < 0)
        return tr_fail(err, TR_EIO, "%s: cannot write attribute %s of %s: %s", path, name, obj, why);
    return 0;
}

int tr_h5_attr_str(hid_t file, const char *path, const char *obj, const char *name, const char *value, tr_err *err)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(value) + 1);
    H5Tset_strpad(t, H5T_STR_NULLTERM);
    H5Tset_cset(t, H5T_CSET_UTF8);
    int rc = write_attr(file, path, obj, name, t, value, err);
    H5Tclose(t);
    return rc;
}

int tr_h5_attr_i64(hid_t file, const char *path, const char *obj, const char *name, int64_t value, tr_err *err)
{
    return write_attr(file, path, obj, name, H5T_NATIVE_INT64, &value, err);
}

int tr_h5_attr_f64(hid_t file, const char *path, const char *obj, const char *name, double value, tr_err *err)
{
    return write_attr(file, path, obj, name, H5T_NATIVE_DOUBLE, &value, err);
}

static hid_t open_attr(hid_t file, const char *path, const char *obj, const char *name, tr_err *err)
{
    if (H5Oexists_by_name(file, obj, H5P_DEFAULT) <= 0 || H5Aexists_by_name(file, obj, name, H5P_DEFAULT) <= 0) {
        tr_fail(err, TR_ECKPT, "%s: attribute %s of %s is missing", path, name, obj);
        return -1;
    }
    hid_t a = H5Aopen_by_name(file, obj, name, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0)
        tr_fail(err, TR_ECKPT, "%s: cannot read attribute %s of %s", path, name, obj);
    return a;
}

int tr_h5_get_attr_str(hid_t file, const char *path, const char *obj, const char *name, char *buf, size_t len,
                       tr_err *err)
{
    hid_t a = open_attr(file, path, obj, name, err);
    if (a < 0)
        return TR_ECKPT;
    hid_t ft = H5Aget_type(a);
    int rc = 0;
    if (H5Tget_class(ft) != H5T_STRING) {
        rc = tr_fail(err, TR_ECKPT, "%s: attribute %s of %s is not a string", path, name, obj);
    } else if (H5Tis_variable_str(ft) > 0) { /* as h5py writes str attributes */
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5Tget_cset(ft));
        char *v = NULL;
        if (H5Aread(a, mt, &v) < 0 || !v)
            rc = tr_fail(err, TR_ECKPT, "%s: cannot read attribute %s of %s", path, name, obj);
        else
            snprintf(buf, len, "%s", v);
        if (v)
            H5free_memory(v);
        H5Tclose(mt);
    } else {
        size_t n = H5Tget_size(ft);
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, n);
        H5Tset_cset(mt, H5Tget_cset(ft)); /* UTF-8 and ASCII do not convert into each other */
        char tmp[8192];
        if (n >= sizeof tmp || H5Aread(a, mt, tmp) < 0) {
            rc = tr_fail(err, TR_ECKPT, "%s: cannot read attribute %s of %s", path, name, obj);
        } else {
            tmp[n] = '\0';
            snprintf(buf, len, "%s", tmp);
        }
        H5Tclose(mt);
    }
    H5Tclose(ft);
    H5Aclose(a);
    return rc;
}

int tr_h5_get_attr_i64(hid_t file, const char *path, const char *obj, const char *name, int64_t *value, tr_err *err)
{
    hid_t a = open_attr(file, path, obj, name, err);
    if (a < 0)
        return TR_ECKPT;
    herr_t st = H5Aread(a, H5T_NATIVE_INT64, value);
    H5Aclose(a);
    return st < 0 ? tr_fail(err, TR_ECKPT, "%s: cannot read attribute %s of %s", path, name, obj) : 0;
}

int tr_h5_get_attr_f64(hid_t file, const char *path, const char *obj, const char *name, double *value, tr_err *err)
{
    hid_t a = open_attr(file, path, obj, name, err);
    if (a < 0)
        return TR_ECKPT;
    herr_t st = H5Aread(a, H5T_NATIVE_DOUBLE, value);
    H5Aclose(a);
    return st < 0 ? tr_fail(err, TR_ECKPT, "%s: cannot read attribute %s of %s", path, name, obj) : 0;
}
