/*
 * ckpt.c: checkpoint write (an HDF5 image built in memory, written to a temporary file,
 * fsync, rename, fsync of the directory),
 * read with architecture and shape checks, the newest valid checkpoint of a run directory,
 * and rotation.
 */
#include "trainer/ckpt.h"

#include "trainer/fault.h"
#include "trainer/files.h"

#include "trainer/h5io.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define TR_CKPT_HEADER 512 /* bytes of the checksummed header (an HDF5 user block) */

#ifndef TRAINER_VERSION
#define TRAINER_VERSION "unknown"
#endif

/* "2,20,20,1" / "tanh,tanh,sigmoid" / "Linear,Tanh,..." of a model configuration. */
static void arch_strings(const tr_model_config *mc, char *layers, size_t ll, char *acts, size_t al)
{
    size_t u = 0;
    layers[0] = acts[0] = '\0';
    for (int i = 0; i <= mc->n_layers && u < ll; i++)
        u += (size_t)snprintf(layers + u, ll - u, "%s%lld", i ? "," : "", (long long)mc->widths[i]);
    u = 0;
    for (int i = 0; i < mc->n_layers && u < al; i++)
        u += (size_t)snprintf(acts + u, al - u, "%s%s", i ? "," : "", tr_activation_name(mc->act[i]));
}

/* fsync a path (a directory after a rename). */
static int sync_path(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static void dir_of(const char *path, char *dir, size_t len)
{
    snprintf(dir, len, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(dir, len, ".");
}

/* A model's tensors under group/<Sequential name>: the parameters, batch norm's running
 * statistics and num_batches_tracked (the model's). */
static int write_weights(hid_t f, const char *path, const char *group, const tr_model *m, const float *params,
                         const float *buffers, tr_err *err)
{
    int rc = 0;
    for (int t = 0; !rc && t < m->n_tensors; t++) {
        const tr_tensor *T = &m->tensor[t];
        char name[64];
        snprintf(name, sizeof name, "%s/%s", group, T->name);
        rc = tr_h5_write_f32(f, path, name, params + T->offset, T->rows, T->is_weight ? T->cols : 0, err);
    }
    for (int b = 0; !rc && b < m->n_buffers; b++) { /* batch norm: running statistics */
        const tr_buffer *B = &m->buffer[b];
        char name[64];
        snprintf(name, sizeof name, "%s/%s", group, B->name);
        rc = tr_h5_write_f32(f, path, name, buffers + B->offset, (int64_t)B->size, 0, err);
        if (!rc && strstr(B->name, "running_mean")) {
            char nbt[64];
            snprintf(nbt, sizeof nbt, "%s/%d/num_batches_tracked", group, m->layer[B->layer].bn_seq);
            rc = tr_h5_write_i64(f, path, nbt, &m->layer[B->layer].bn_batches, 1, err);
        }
    }
    return rc;
}

static int write_contents(hid_t f, const char *path, const tr_config *c, const tr_model *m, const tr_optim *o,
                          const tr_scaler *sc, const tr_ckpt_state *st, tr_err *err)
{
    int rc = tr_h5_attr_str(f, path, "/", "format", "trainer-checkpoint", err);
    if (!rc)
        rc = tr_h5_attr_i64(f, path, "/", "format_version", TR_CKPT_FORMAT_VERSION, err);
    if (!rc)
        rc = tr_h5_attr_str(f, path, "/", "trainer_version", TRAINER_VERSION, err);
    /* every configuration value */
    hid_t g = H5Gcreate2(f, "/config", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0 && !rc)
        rc = tr_fail(err, TR_ECKPT, "%s: cannot create /config", path);
    if (g >= 0)
        H5Gclose(g);
    for (int i = 0; !rc && i < c->n_entries; i++) {
        char name[80];
        snprintf(name, sizeof name, "%s.%s", c->entries[i].section, c->entries[i].key);
        rc = tr_h5_attr_str(f, path, "/config", name, c->entries[i].value, err);
    }
    /* the model: tensors under their Sequential names, the architecture as attributes */
    if (!rc)
        rc = write_weights(f, path, "/model", m, m->params, m->buffers, err);
    const tr_ema *ema = st ? st->ema : NULL;
    if (!rc && ema && tr_ema_on(ema)) {
        rc = write_weights(f, path, "/ema", m, ema->params, ema->buffers, err);
        if (!rc)
            rc = tr_h5_attr_f64(f, path, "/ema", "decay", ema->decay, err);
        if (!rc)
            rc = tr_h5_attr_i64(f, path, "/ema", "n_averaged", ema->n_averaged, err);
    }
    char layers[512], acts[512], seq[1024];
    arch_strings(&m->cfg, layers, sizeof layers, acts, sizeof acts);
    tr_model_sequential(m, seq, sizeof seq);
    if (!rc)
        rc = tr_h5_attr_str(f, path, "/model", "layers", layers, err);
    if (!rc)
        rc = tr_h5_attr_str(f, path, "/model", "activations", acts, err);
    if (!rc)
        rc = tr_h5_attr_i64(f, path, "/model", "bias", m->cfg.bias, err);
    if (!rc)
        rc = tr_h5_attr_str(f, path, "/model", "sequential", seq, err);
    /* the optimizer */
    if (!rc && o) {
        g = H5Gcreate2(f, "/optimizer", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (g >= 0)
            H5Gclose(g);
        rc = tr_h5_attr_str(f, path, "/optimizer", "kind", tr_optim_name(o->cfg.kind), err);
        if (!rc)
            rc = tr_h5_attr_i64(f, path, "/optimizer", "step", o->step, err);
        if (!rc)
            rc = tr_h5_attr_f64(f, path, "/optimizer", "lr", o->lr, err);
        for (int s = 0; !rc && s < o->n_state; s++)
            for (int t = 0; !rc && t < m->n_tensors; t++) {
                const tr_tensor *T = &m->tensor[t];
                char name[96];
                snprintf(name, sizeof name, "/optimizer/%s/%s", o->state[s].name, T->name);
                rc = tr_h5_write_f32(f, path, name, o->state[s].data + T->offset, T->rows,
                                     T->is_weight ? T->cols : 0, err);
            }
    }
    /* the data scaling */
    if (!rc && sc && sc->center) {
        rc = tr_h5_write_f32(f, path, "/scaler/center", sc->center, sc->cols, 0, err);
        if (!rc)
            rc = tr_h5_write_f32(f, path, "/scaler/scale", sc->scale, sc->cols, 0, err);
        if (!rc)
            rc = tr_h5_attr_i64(f, path, "/scaler", "kind", sc->kind, err);
    }
    /* progress */
    if (!rc && st) {
        g = H5Gcreate2(f, "/state", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (g >= 0)
            H5Gclose(g);
#define PUT_STATE(type, name, meaning)                                                                   \
    if (!rc)                                                                                             \
        rc = _Generic(st->name, int64_t: tr_h5_attr_i64, double: tr_h5_attr_f64)(f, path, "/state", #name, \
                                                                                   st->name, err);
        TR_CKPT_STATE(PUT_STATE)
#undef PUT_STATE
        if (!rc && st->data.known) {
            g = H5Gcreate2(f, "/data", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
            if (g >= 0)
                H5Gclose(g);
            rc = tr_h5_attr_i64(f, path, "/data", "rows", st->data.rows, err);
            if (!rc)
                rc = tr_h5_attr_i64(f, path, "/data", "cols", st->data.cols, err);
            if (!rc)
                rc = tr_h5_attr_i64(f, path, "/data", "fingerprint", st->data.fingerprint, err);
            if (!rc && st->data.columns)
                rc = tr_h5_attr_str(f, path, "/data", "columns", st->data.columns, err);
        }
        /* the seeds, for a reader (a resume takes them from /config) */
        const struct {
            const char *name;
            int64_t v;
        } seeds[] = {{"seed", (int64_t)c->train.seed},
                     {"data_seed", (int64_t)c->data.seed},
                     {"split_seed", (int64_t)c->data.split_seed}};
        for (size_t i = 0; !rc && i < sizeof seeds / sizeof seeds[0]; i++)
            rc = tr_h5_attr_i64(f, path, "/state", seeds[i].name, seeds[i].v, err);
    }
    return rc;
}

/* Every checkpoint starts with a 512-byte HDF5 user block (which HDF5, h5py and h5dump skip)
 * holding a text header with the CRC-32 of the rest of the file:
 *     trainer checkpoint\nbytes <n>\ncrc32 <8 hex digits>\n
 * A loader checks it before HDF5 parses anything, so a truncated, damaged or foreign file is
 * a clear error and never reaches HDF5's parser (whose handling of damaged files can crash:
 * found by tests/fuzz/fuzz_ckpt.c). scripts/trainer_h5.py stamps the files it writes. */
#define TR_CKPT_MAGIC "trainer checkpoint\n"

static void stamp_header(unsigned char *image, size_t size)
{
    const size_t body = size - TR_CKPT_HEADER;
    unsigned long c = crc32(0L, Z_NULL, 0);
    for (size_t done = 0; done < body;) { /* crc32 takes at most 4 GiB at a time */
        const size_t chunk = body - done > (1u << 30) ? (1u << 30) : body - done;
        c = crc32(c, image + TR_CKPT_HEADER + done, (uInt)chunk);
        done += chunk;
    }
    memset(image, 0, TR_CKPT_HEADER);
    snprintf((char *)image, TR_CKPT_HEADER, TR_CKPT_MAGIC "bytes %llu\ncrc32 %08lx\n", (unsigned long long)body, c);
}

/* Checks the header block of a checkpoint file against its contents (0, or TR_ECKPT naming
 * what is wrong). A file without any header passes when plain_ok (a plain HDF5 file). */
static int verify_header(const char *path, bool plain_ok, tr_err *err)
{
    const int rc = tr_input_check(path, "checkpoint", TR_ECKPT, err); /* no directory, FIFO or device */
    if (rc)
        return rc;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return tr_fail(err, TR_ECKPT, "%s: cannot open the checkpoint: %s", path, strerror(errno));
    char head[TR_CKPT_HEADER + 1] = {0};
    ssize_t got = read(fd, head, TR_CKPT_HEADER);
    unsigned long long bytes = 0;
    unsigned long want = 0;
    if (plain_ok && (got < (ssize_t)strlen(TR_CKPT_MAGIC) || strncmp(head, TR_CKPT_MAGIC, strlen(TR_CKPT_MAGIC)))) {
        close(fd);
        return 0;
    }
    if (got != TR_CKPT_HEADER || strncmp(head, TR_CKPT_MAGIC, strlen(TR_CKPT_MAGIC)) != 0 ||
        sscanf(head + strlen(TR_CKPT_MAGIC), "bytes %llu\ncrc32 %lx", &bytes, &want) != 2) {
        close(fd);
        return tr_fail(err, TR_ECKPT,
                       "%s: not a trainer checkpoint (no checksummed header: truncated, damaged, or written by "
                       "another program; scripts/from_torch.py writes files for --init-from)",
                       path);
    }
    const size_t chunk = (size_t)1 << 20;
    unsigned char *buf = malloc(chunk);
    if (!buf) {
        close(fd);
        return tr_fail(err, TR_ENOMEM, "%s: out of memory", path);
    }
    unsigned long c = crc32(0L, Z_NULL, 0);
    unsigned long long seen = 0;
    ssize_t n;
    while ((n = read(fd, buf, chunk)) > 0) {
        c = crc32(c, buf, (uInt)n);
        seen += (unsigned long long)n;
    }
    const int read_errno = errno;
    free(buf);
    close(fd);
    if (n < 0)
        return tr_fail(err, TR_ECKPT, "%s: read error: %s", path, strerror(read_errno));
    if (seen != bytes)
        return tr_fail(err, TR_ECKPT, "%s: truncated or extended: %llu bytes after the header, the header says %llu",
                       path, seen, bytes);
    if (c != want)
        return tr_fail(err, TR_ECKPT, "%s: damaged: CRC-32 %08lx of the contents, the header says %08lx", path, c,
                       want);
    return 0;
}

/* Writes all of buf to fd (short writes and EINTR retried); -1 with errno on failure.
 * Test hook TRAINER_TEST_CKPT_PAUSE=N:SECONDS: the N-th checkpoint write of this process
 * pauses half-way, so a test can kill the process in the middle of a write. */
static int write_all(int fd, const unsigned char *buf, size_t n)
{
    static int writes = 0;
    writes++;
    int nth, secs;
    const bool pause_here = tr_fault_ckpt_pause(&nth, &secs) && nth == writes;
    size_t done = 0;
    while (done < n) {
        size_t chunk = n - done;
        if (pause_here && done < n / 2)
            chunk = n / 2 - done;
        const ssize_t w = write(fd, buf + done, chunk);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        if (w == 0) {
            errno = ENOSPC;
            return -1;
        }
        done += (size_t)w;
        if (pause_here && done == n / 2)
            sleep((unsigned)secs);
    }
    return 0;
}

/* The checkpoint is built in memory (HDF5's core driver, no backing store) and written with
 * plain POSIX calls: HDF5 never sees a full disk or an I/O error, whose handling in the
 * library (a file that cannot be flushed on close) crashes at exit; here each failure is a
 * clear error and the previous checkpoint stays as it was. */
int tr_ckpt_build(tr_ckpt_image *img, const char *path, const tr_config *c, const tr_model *m, const tr_optim *o,
                  const tr_scaler *sc, const tr_ckpt_state *st, tr_err *err)
{
    memset(img, 0, sizeof *img);
    tr_h5_quiet();
    int rc = tr_path_format(img->path, sizeof img->path, TR_ECKPT, err, "%s", path);
    if (rc)
        return rc;
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0 || H5Pset_fapl_core(fapl, (size_t)1 << 20, 0) < 0) {
        if (fapl >= 0)
            H5Pclose(fapl);
        return tr_fail(err, TR_ENOMEM, "%s: cannot set up the in-memory checkpoint image", path);
    }
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    H5Pset_userblock(fcpl, TR_CKPT_HEADER);
    /* the core driver without a backing store never creates this name */
    hid_t f = H5Fcreate(img->path, H5F_ACC_TRUNC, fcpl, fapl);
    H5Pclose(fcpl);
    H5Pclose(fapl);
    if (f < 0)
        return tr_fail(err, TR_ENOMEM, "%s: cannot create the in-memory checkpoint image", path);
    rc = write_contents(f, path, c, m, o, sc, st, err);
    if (!rc && H5Fflush(f, H5F_SCOPE_GLOBAL) < 0)
        rc = tr_fail(err, TR_ECKPT, "%s: cannot complete the checkpoint image", path);
    if (!rc) {
        /* the image HDF5 hands out leaves the user block out: the header goes in front */
        const ssize_t size = H5Fget_file_image(f, NULL, 0);
        img->bytes = size > 0 ? malloc(TR_CKPT_HEADER + (size_t)size) : NULL;
        if (!img->bytes || H5Fget_file_image(f, img->bytes + TR_CKPT_HEADER, (size_t)size) != size)
            rc = tr_fail(err, TR_ENOMEM, "%s: cannot take the checkpoint image (%lld bytes)", path, (long long)size);
        img->size = TR_CKPT_HEADER + (size_t)size;
    }
    H5Fclose(f); /* in memory: nothing to flush to disk */
    if (rc)
        tr_ckpt_image_free(img);
    return rc;
}

void tr_ckpt_image_free(tr_ckpt_image *img)
{
    free(img->bytes);
    img->bytes = NULL;
    img->size = 0;
}

int tr_ckpt_write(tr_ckpt_image *img, tr_err *err)
{
    const char *path = img->path;
    char tmp[TR_PATH_MAX + 96];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    stamp_header(img->bytes, img->size);
    int rc = 0;
    unlink(tmp); /* a dead process's leftover under this process's ID, or a link: never written through */
    const int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = tr_fail(err, TR_ECKPT, "%s: cannot create the checkpoint: %s", tmp, strerror(errno));
        tr_ckpt_image_free(img);
        return rc;
    }
    if (write_all(fd, img->bytes, img->size) != 0)
        rc = tr_fail(err, TR_ECKPT, "%s: cannot write the checkpoint (%lld bytes): %s; the earlier checkpoints are "
                     "kept", path, (long long)img->size, strerror(errno));
    else if (fsync(fd) != 0)
        rc = tr_fail(err, TR_ECKPT, "%s: fsync failed: %s", tmp, strerror(errno));
    if (close(fd) != 0 && !rc)
        rc = tr_fail(err, TR_ECKPT, "%s: closing the checkpoint failed: %s", tmp, strerror(errno));
    tr_ckpt_image_free(img);
    if (!rc && rename(tmp, path) != 0)
        rc = tr_fail(err, TR_ECKPT, "%s: cannot rename the checkpoint into place: %s", path, strerror(errno));
    if (rc) {
        unlink(tmp); /* the previous checkpoint stays as it was */
        return rc;
    }
    char dir[sizeof img->path];
    dir_of(path, dir, sizeof dir);
    sync_path(dir); /* the rename itself survives a crash */
    return 0;
}

bool tr_ckpt_written_by_trainer(const char *path)
{
    char line[64];
    return tr_file_first_line(path, line, sizeof line) && strlen(line) == strlen(TR_CKPT_MAGIC) - 1 &&
           !strncmp(line, TR_CKPT_MAGIC, strlen(line));
}

int tr_ckpt_save(const char *path, const tr_config *c, const tr_model *m, const tr_optim *o, const tr_scaler *sc,
                 const tr_ckpt_state *st, tr_err *err)
{
    tr_ckpt_image img;
    const int rc = tr_ckpt_build(&img, path, c, m, o, sc, st, err);
    return rc ? rc : tr_ckpt_write(&img, err);
}

/* ------------------------------------------------------------------ reading ----------- */

static int open_checked(hid_t *f, const char *path, bool plain_ok, tr_err *err)
{
    tr_h5_quiet();
    struct stat sb;
    if (stat(path, &sb) != 0)
        return tr_fail(err, TR_ECKPT, "%s: cannot open the checkpoint: %s", path, strerror(errno));
    int rc = verify_header(path, plain_ok, err);
    if (rc)
        return rc;
    if (H5Fis_hdf5(path) <= 0)
        return tr_fail(err, TR_ECKPT, "%s: not a checkpoint (not an HDF5 file, or truncated)", path);
    *f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (*f < 0)
        return tr_fail(err, TR_ECKPT, "%s: cannot open (truncated or corrupt HDF5 file)", path);
    return 0;
}

/* "Linear,ReLU,Dropout(0.2)" -> "Linear,ReLU,Dropout". */
static void modules_without_rates(char *dst, size_t len, const char *src)
{
    size_t u = 0;
    bool skip = false;
    for (const char *p = src; *p && u + 1 < len; p++) {
        if (*p == '(')
            skip = true;
        if (!skip)
            dst[u++] = *p;
        if (*p == ')')
            skip = false;
    }
    dst[u] = '\0';
}

/* The checkpoint's architecture against the configuration's: every difference listed. */
static int check_architecture(hid_t f, const char *path, const tr_config *c, const tr_model *m, tr_err *err)
{
    char layers[512], acts[512], want_l[512], want_a[512];
    int64_t bias;
    int rc = tr_h5_get_attr_str(f, path, "/model", "layers", layers, sizeof layers, err);
    if (!rc)
        rc = tr_h5_get_attr_str(f, path, "/model", "activations", acts, sizeof acts, err);
    if (!rc)
        rc = tr_h5_get_attr_i64(f, path, "/model", "bias", &bias, err);
    if (rc)
        return tr_fail(err, TR_ECKPT, "%s: no model architecture in the file (not a trainer checkpoint?)", path);
    arch_strings(&c->model, want_l, sizeof want_l, want_a, sizeof want_a);
    char diff[900] = "";
    size_t u = 0;
    if (strcmp(layers, want_l))
        u += (size_t)snprintf(diff + u, sizeof diff - u, "; layers %s in the checkpoint, %s in the config", layers,
                              want_l);
    if (strcmp(acts, want_a) && u < sizeof diff)
        u += (size_t)snprintf(diff + u, sizeof diff - u, "; activations %s in the checkpoint, %s in the config", acts,
                              want_a);
    if ((bias != 0) != c->model.bias && u < sizeof diff)
        u += (size_t)snprintf(diff + u, sizeof diff - u, "; bias %s in the checkpoint, %s in the config",
                              bias ? "true" : "false", c->model.bias ? "true" : "false");
    char seq[1024], want_seq[1024], a[1024], b[1024];
    if (m && tr_h5_get_attr_str(f, path, "/model", "sequential", seq, sizeof seq, NULL) == 0) {
        tr_model_sequential(m, want_seq, sizeof want_seq);
        modules_without_rates(a, sizeof a, seq); /* a dropout rate may change (fine-tuning) */
        modules_without_rates(b, sizeof b, want_seq);
        if (strcmp(a, b) && u < sizeof diff)
            u += (size_t)snprintf(diff + u, sizeof diff - u, "; modules %s in the checkpoint, %s in the config", seq,
                                  want_seq);
    }
    if (u)
        return tr_fail(err, TR_ECKPT, "%s: the architecture differs from the configuration%s", path, diff);
    return 0;
}

/* Reads one tensor, checking its shape. */
static int read_tensor(hid_t f, const char *path, const char *name, const tr_tensor *T, float *dst, tr_err *err)
{
    int64_t rows, cols;
    int rc = tr_h5_shape(f, path, name, &rows, &cols, NULL, err);
    if (rc)
        return tr_fail(err, TR_ECKPT, "%s: %s is missing", path, name);
    if (rows != T->rows || cols != (T->is_weight ? T->cols : 1))
        return tr_fail(err, TR_ECKPT, "%s: %s is %lld x %lld, the model needs %lld x %lld", path, name,
                       (long long)rows, (long long)cols, (long long)T->rows, (long long)(T->is_weight ? T->cols : 1));
    rc = tr_h5_read_rows(f, path, name, 0, rows, cols, dst, err);
    return rc ? tr_fail(err, TR_ECKPT, "%s: cannot read %s (truncated or corrupt)", path, name) : 0;
}

/* Every floating-point dataset of a checkpoint (parameters, batch-norm statistics,
 * optimizer moments, scaler) must be finite, whichever parts a command uses: a NaN weight,
 * statistic, moment or scale would turn predictions into NaN or pass for a divergence. */
typedef struct finite_scan {
    const char *path;
    tr_err *err;
    int rc;
} finite_scan;

static herr_t scan_dataset(hid_t f, const char *name, const H5O_info_t *info, void *data)
{
    finite_scan *sc = data;
    if (info->type != H5O_TYPE_DATASET)
        return 0;
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    if (d < 0)
        return 0; /* reported by the reader that needs it */
    hid_t type = H5Dget_type(d), space = H5Dget_space(d);
    const hssize_t n = H5Sget_simple_extent_npoints(space);
    if (H5Tget_class(type) == H5T_FLOAT && n > 0) {
        double *v = malloc((size_t)n * sizeof *v);
        if (!v) {
            sc->rc = tr_fail(sc->err, TR_ENOMEM, "out of memory");
        } else if (H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0) {
            for (hssize_t i = 0; i < n && !sc->rc; i++)
                if (!isfinite(v[i]))
                    sc->rc = tr_fail(sc->err, TR_ECKPT,
                                     "%s: /%s holds a non-finite value (%g at index %lld): the checkpoint is "
                                     "damaged or was saved from a diverged run",
                                     sc->path, name, v[i], (long long)i);
        }
        free(v);
    }
    H5Sclose(space);
    H5Tclose(type);
    H5Dclose(d);
    return sc->rc ? 1 : 0;
}

static int check_finite(hid_t f, const char *path, tr_err *err)
{
    finite_scan sc = {.path = path, .err = err};
    H5Ovisit(f, H5_INDEX_NAME, H5_ITER_INC, scan_dataset, &sc);
    return sc.rc;
}

/* The /model datasets a model does not have (unexpected keys, as PyTorch's load_state_dict
 * calls them): counted, and the first few named. */
typedef struct key_scan {
    const tr_model *m;
    int unknown;
    char names[256];
} key_scan;

static bool model_has(const tr_model *m, const char *name)
{
    for (int t = 0; t < m->n_tensors; t++)
        if (!strcmp(name, m->tensor[t].name))
            return true;
    for (int b = 0; b < m->n_buffers; b++) {
        char nbt[48];
        snprintf(nbt, sizeof nbt, "%d/num_batches_tracked", m->layer[m->buffer[b].layer].bn_seq);
        if (!strcmp(name, m->buffer[b].name) || !strcmp(name, nbt))
            return true;
    }
    return false;
}

static herr_t scan_key(hid_t g, const char *name, const H5O_info_t *info, void *data)
{
    (void)g;
    key_scan *k = data;
    if (info->type != H5O_TYPE_DATASET || model_has(k->m, name))
        return 0;
    if (k->unknown++ < 4) {
        const size_t u = strlen(k->names);
        snprintf(k->names + u, sizeof k->names - u, "%s/model/%s", u ? ", " : "", name);
    }
    return 0;
}

/* Everything tr_ckpt_load reads, held until all of it has been read: a bad file changes
 * nothing. */
typedef struct staged {
    float *params;                  /* (n_params) */
    float *bufs;                    /* (n_buffer_floats) batch-norm running statistics */
    int64_t batches[TR_MAX_LAYERS]; /* num_batches_tracked */
    bool have_bufs;
    float *state[3];                /* the optimizer's */
    int64_t ostep;
    double olr;
    float *center, *scale;          /* the scaler (NULL: none in the file) */
    int64_t scale_kind;
    tr_ckpt_state run;
    float *ema_params, *ema_bufs;   /* /ema (NULL: not read, or none in the file) */
    int64_t ema_count;
} staged;

/* The file is a trainer checkpoint of a format this trainer reads (a file exported from
 * PyTorch carries only /model: full false), with this configuration's architecture. */
static int check_format(hid_t f, const char *path, bool full, const tr_config *c, const tr_model *m, tr_err *err)
{
    int rc = 0;
    if (full) {
        char fmt[64] = "";
        int64_t version = 0;
        rc = tr_h5_get_attr_str(f, path, "/", "format", fmt, sizeof fmt, err);
        if (!rc && strcmp(fmt, "trainer-checkpoint"))
            rc = tr_fail(err, TR_ECKPT, "%s: format '%s' is not a trainer checkpoint", path, fmt);
        if (!rc)
            rc = tr_h5_get_attr_i64(f, path, "/", "format_version", &version, err);
        if (!rc && version > TR_CKPT_FORMAT_VERSION)
            rc = tr_fail(err, TR_ECKPT, "%s: format version %lld is newer than this trainer's (%d)", path,
                         (long long)version, TR_CKPT_FORMAT_VERSION);
    }
    if (!rc && !tr_h5_exists(f, "/model"))
        return tr_fail(err, TR_ECKPT, "%s: no /model group (a trainer checkpoint, or for --init-from /model/<i>/weight "
                                      "and /model/<i>/bias named as nn.Sequential names them)", path);
    if (!rc && H5Aexists_by_name(f, "/model", "layers", H5P_DEFAULT) > 0)
        rc = check_architecture(f, path, c, m, err);
    return rc;
}

/* The parameters, tensor by tensor; strict as PyTorch's load_state_dict unless non_strict
 * (then a tensor the file lacks keeps the model's value, and parts->note says what was
 * skipped). */
static int read_params(hid_t f, const char *path, const tr_model *m, const tr_ckpt_parts *parts, staged *g,
                       tr_err *err)
{
    const bool non_strict = parts && parts->non_strict;
    key_scan keys = {.m = m};
    if (H5Ovisit_by_name(f, "/model", H5_INDEX_NAME, H5_ITER_INC, scan_key, &keys, H5P_DEFAULT) < 0)
        return tr_fail(err, TR_ECKPT, "%s: cannot list /model", path);
    if (keys.unknown && !non_strict)
        return tr_fail(err, TR_ECKPT, "%s: %d tensor%s the model does not have (%s%s): refused, as PyTorch's "
                                      "load_state_dict(strict=True) refuses unexpected keys; --non-strict loads the "
                                      "tensors that match and leaves the others as initialised", path, keys.unknown,
                       keys.unknown == 1 ? "" : "s", keys.names, keys.unknown > 4 ? ", ..." : "");
    if (parts && parts->skip_params)
        return 0;
    int rc = 0, missing = 0;
    char missing_names[256] = "";
    for (int t = 0; !rc && t < m->n_tensors; t++) {
        const tr_tensor *T = &m->tensor[t];
        char name[64];
        snprintf(name, sizeof name, "/model/%s", T->name);
        if (non_strict && !tr_h5_exists(f, name)) { /* a missing key keeps its initial value */
            memcpy(g->params + T->offset, m->params + T->offset, T->size * sizeof *g->params);
            if (missing++ < 4)
                snprintf(missing_names + strlen(missing_names), sizeof missing_names - strlen(missing_names), "%s%s",
                         missing > 1 ? ", " : "", name);
            continue;
        }
        rc = read_tensor(f, path, name, T, g->params + T->offset, err);
    }
    if (!rc && non_strict && (missing || keys.unknown) && parts->note)
        fprintf(parts->note, "trainer: note: --non-strict: %s: %d tensor%s of the model not in the file, kept as "
                             "initialised%s%s%s; %d in the file not in the model, ignored%s%s%s\n", path, missing,
                missing == 1 ? "" : "s", missing ? " (" : "", missing_names, missing > 4 ? ", ...)" : missing ? ")" : "",
                keys.unknown, keys.unknown ? " (" : "", keys.names, keys.unknown > 4 ? ", ...)" : keys.unknown ? ")" : "");
    return rc;
}

/* One running statistic (name: its dataset) of B's shape into dst. */
static int read_buffer(hid_t f, const char *path, const char *name, const tr_buffer *B, float *dst, tr_err *err)
{
    int64_t rows, cols;
    int rc = tr_h5_shape(f, path, name, &rows, &cols, NULL, err);
    if (!rc && (rows != (int64_t)B->size || cols != 1))
        rc = tr_fail(err, TR_ECKPT, "%s: %s has %lld values, the model needs %zu", path, name, (long long)rows,
                     B->size);
    return rc ? rc : tr_h5_read_rows(f, path, name, 0, rows, 1, dst, err);
}

/* Batch-norm running statistics: required in a full checkpoint, kept as they are when a file
 * exported from PyTorch lacks them. */
static int read_buffers(hid_t f, const char *path, const tr_model *m, bool full, staged *g, tr_err *err)
{
    g->have_bufs = m->n_buffers > 0;
    for (int b = 0; g->have_bufs && b < m->n_buffers; b++) {
        const tr_buffer *B = &m->buffer[b];
        char name[64];
        snprintf(name, sizeof name, "/model/%s", B->name);
        if (!tr_h5_exists(f, name)) {
            g->have_bufs = false;
            return full ? tr_fail(err, TR_ECKPT, "%s: %s is missing", path, name) : 0;
        }
        int rc = read_buffer(f, path, name, B, g->bufs + B->offset, err);
        char nbt[64];
        snprintf(nbt, sizeof nbt, "/model/%d/num_batches_tracked", m->layer[B->layer].bn_seq);
        if (!rc && strstr(B->name, "running_mean") && tr_h5_exists(f, nbt)) {
            float v;
            rc = tr_h5_read_rows(f, path, nbt, 0, 1, 1, &v, err);
            g->batches[B->layer] = (int64_t)v;
        }
        if (rc)
            return rc;
    }
    return 0;
}

/* /ema's tensors and statistics (ckpt.h), when the file has them; `required`: an error if not. */
static int read_ema(hid_t f, const char *path, const tr_model *m, bool required, staged *g, tr_err *err)
{
    if (!tr_h5_exists(f, "/ema"))
        return required ? tr_fail(err, TR_ECKPT, "%s: no /ema: the run kept no moving average of its weights "
                                                 "([train] ema_decay)", path)
                        : 0;
    g->ema_params = calloc(m->n_params + 1, sizeof(float));
    g->ema_bufs = calloc(m->n_buffer_floats + 1, sizeof(float));
    if (!g->ema_params || !g->ema_bufs)
        return tr_fail(err, TR_ENOMEM, "out of memory");
    int rc = tr_h5_get_attr_i64(f, path, "/ema", "n_averaged", &g->ema_count, err);
    for (int t = 0; !rc && t < m->n_tensors; t++) {
        char name[64];
        snprintf(name, sizeof name, "/ema/%s", m->tensor[t].name);
        rc = read_tensor(f, path, name, &m->tensor[t], g->ema_params + m->tensor[t].offset, err);
    }
    for (int b = 0; !rc && b < m->n_buffers; b++) {
        const tr_buffer *B = &m->buffer[b];
        char name[64];
        snprintf(name, sizeof name, "/ema/%s", B->name);
        rc = read_buffer(f, path, name, B, g->ema_bufs + B->offset, err);
    }
    return rc;
}

/* The optimizer's kind (it must be the configuration's), step, rate and state buffers. */
static int read_optimizer(hid_t f, const char *path, const tr_model *m, const tr_optim *o, staged *g, tr_err *err)
{
    char kind[32];
    int rc = tr_h5_get_attr_str(f, path, "/optimizer", "kind", kind, sizeof kind, err);
    if (!rc && strcmp(kind, tr_optim_name(o->cfg.kind)))
        rc = tr_fail(err, TR_ECKPT, "%s: the checkpoint's optimizer is %s, the configuration's %s", path, kind,
                     tr_optim_name(o->cfg.kind));
    if (!rc)
        rc = tr_h5_get_attr_i64(f, path, "/optimizer", "step", &g->ostep, err);
    if (!rc)
        rc = tr_h5_get_attr_f64(f, path, "/optimizer", "lr", &g->olr, err);
    if (!rc && !isfinite(g->olr))
        rc = tr_fail(err, TR_ECKPT, "%s: /optimizer lr is %g, not a finite number", path, g->olr);
    for (int s = 0; !rc && s < o->n_state; s++) {
        if (!(g->state[s] = calloc(m->n_params + 1, sizeof(float))))
            return tr_fail(err, TR_ENOMEM, "out of memory");
        for (int t = 0; !rc && t < m->n_tensors; t++) {
            char name[96];
            snprintf(name, sizeof name, "/optimizer/%s/%s", o->state[s].name, m->tensor[t].name);
            if (read_tensor(f, path, name, &m->tensor[t], g->state[s] + m->tensor[t].offset, err))
                rc = tr_fail(err, TR_ECKPT, "%s: optimizer state %s is missing or damaged (optimizer options "
                                            "changed since the checkpoint?)", path, name);
        }
    }
    return rc;
}

/* The feature scaling, when the file has one: as wide as the model's input. */
static int read_scaler(hid_t f, const char *path, const tr_model *m, staged *g, tr_err *err)
{
    if (!tr_h5_exists(f, "/scaler/center"))
        return 0;
    int64_t rows, cols;
    int rc = tr_h5_shape(f, path, "/scaler/center", &rows, &cols, NULL, err);
    if (!rc && rows != m->layer[0].in)
        rc = tr_fail(err, TR_ECKPT, "%s: scaler of %lld features for a model of %lld inputs", path, (long long)rows,
                     (long long)m->layer[0].in);
    if (rc)
        return rc;
    /* rows is the model's input width now, not whatever the file claims */
    g->center = calloc((size_t)rows + 1, sizeof *g->center);
    g->scale = calloc((size_t)rows + 1, sizeof *g->scale);
    if (!g->center || !g->scale)
        return tr_fail(err, TR_ENOMEM, "out of memory");
    rc = tr_h5_read_rows(f, path, "/scaler/center", 0, rows, 1, g->center, err);
    if (!rc)
        rc = tr_h5_read_rows(f, path, "/scaler/scale", 0, rows, 1, g->scale, err);
    if (!rc)
        rc = tr_h5_get_attr_i64(f, path, "/scaler", "kind", &g->scale_kind, err);
    return rc;
}

/* The run's progress (/state, TR_CKPT_STATE) and the data it was trained on (/data). */
static int read_run_state(hid_t f, const char *path, staged *g, tr_err *err)
{
    tr_ckpt_state *s = &g->run;
    int rc = 0;
#define GET_STATE(type, name, meaning)                                                                            \
    if (!rc)                                                                                                      \
        rc = _Generic(s->name, int64_t: tr_h5_get_attr_i64, double: tr_h5_get_attr_f64)(f, path, "/state", #name, \
                                                                                          &s->name, err);
    TR_CKPT_STATE(GET_STATE)
#undef GET_STATE
    s->data.known = !rc && tr_h5_exists(f, "/data") &&
                    tr_h5_get_attr_i64(f, path, "/data", "rows", &s->data.rows, NULL) == 0 &&
                    tr_h5_get_attr_i64(f, path, "/data", "cols", &s->data.cols, NULL) == 0 &&
                    tr_h5_get_attr_i64(f, path, "/data", "fingerprint", &s->data.fingerprint, NULL) == 0;
    if (rc)
        return tr_fail(err, TR_ECKPT, "%s: the run state is missing or damaged: %s", path, err ? err->msg : "");
    if (!(isfinite(s->lr) && isfinite(s->lr_scale) && isfinite(s->time_s) && isfinite(s->epoch_loss_sum)))
        return tr_fail(err, TR_ECKPT, "%s: the run state (/state lr, lr_scale, time_s, epoch_loss_sum) holds a "
                                      "non-finite value", path);
    return 0;
}

/* Everything read: into the model, the optimizer, the scaler and the state asked for. */
static void commit(tr_model *m, const tr_ckpt_parts *parts, staged *g)
{
    if (parts && parts->ema_weights) { /* --ema: the average's weights are the model's */
        memcpy(g->params, g->ema_params, m->n_params * sizeof *g->params);
        memcpy(g->bufs, g->ema_bufs, m->n_buffer_floats * sizeof *g->bufs);
    }
    tr_ema *ema = parts ? parts->ema : NULL;
    if (ema && tr_ema_on(ema) && g->ema_params) {
        memcpy(ema->params, g->ema_params, m->n_params * sizeof *g->ema_params);
        memcpy(ema->buffers, g->ema_bufs, m->n_buffer_floats * sizeof *g->ema_bufs);
        ema->n_averaged = g->ema_count;
    }
    if (!(parts && parts->skip_params)) {
        memcpy(m->params, g->params, m->n_params * sizeof *g->params);
        if (g->have_bufs) {
            memcpy(m->buffers, g->bufs, m->n_buffer_floats * sizeof *g->bufs);
            for (int l = 0; l < m->n_layers; l++)
                m->layer[l].bn_batches = g->batches[l];
        }
    }
    tr_optim *o = parts ? parts->optim : NULL;
    if (o) {
        for (int k = 0; k < o->n_state; k++)
            memcpy(o->state[k].data, g->state[k], m->n_params * sizeof(float));
        o->step = g->ostep;
        o->lr = g->olr;
    }
    tr_scaler *sc = parts ? parts->scaler : NULL;
    if (sc && g->center) { /* the scaler takes the file's arrays, whatever it held before */
        free(sc->center);
        free(sc->scale);
        sc->center = g->center;
        sc->scale = g->scale;
        sc->cols = m->layer[0].in;
        sc->kind = (tr_scale_kind)g->scale_kind;
        g->center = g->scale = NULL;
    }
    if (parts && parts->state)
        *parts->state = g->run;
}

int tr_ckpt_load(const char *path, const tr_config *c, tr_model *m, const tr_ckpt_parts *parts, tr_err *err)
{
    hid_t f;
    int rc = open_checked(&f, path, parts && parts->plain_ok, err);
    if (rc)
        return rc;
    const bool full = tr_h5_exists(f, "/config"); /* else a file exported from PyTorch: /model only */
    staged g = {.params = calloc(m->n_params + 1, sizeof(float)), .bufs = calloc(m->n_buffer_floats + 1, sizeof(float))};
    rc = check_finite(f, path, err);
    if (!rc && (!g.params || !g.bufs))
        rc = tr_fail(err, TR_ENOMEM, "out of memory");
    if (!rc)
        rc = check_format(f, path, full, c, m, err);
    if (!rc)
        rc = read_params(f, path, m, parts, &g, err);
    if (!rc && !(parts && parts->skip_params))
        rc = read_buffers(f, path, m, full, &g, err);
    if (!rc && parts && parts->optim)
        rc = read_optimizer(f, path, m, parts->optim, &g, err);
    if (!rc && parts && parts->scaler)
        rc = read_scaler(f, path, m, &g, err);
    if (!rc && parts && parts->state)
        rc = read_run_state(f, path, &g, err);
    if (!rc && parts && (parts->ema_weights || (parts->ema && tr_ema_on(parts->ema))))
        rc = read_ema(f, path, m, parts->ema_weights, &g, err);
    H5Fclose(f);
    if (!rc)
        commit(m, parts, &g);
    free(g.params);
    free(g.bufs);
    for (int k = 0; k < 3; k++)
        free(g.state[k]);
    free(g.center);
    free(g.scale);
    free(g.ema_params);
    free(g.ema_bufs);
    return rc;
}

typedef struct attr_list {
    char (*sets)[1100];
    int n, cap;
} attr_list;

static herr_t collect_attr(hid_t loc, const char *name, const H5A_info_t *info, void *data)
{
    (void)info;
    attr_list *a = data;
    if (a->n == a->cap)
        return 0;
    char value[1024] = "";
    hid_t at = H5Aopen(loc, name, H5P_DEFAULT);
    if (at >= 0) {
        hid_t t = H5Aget_type(at);
        size_t n = H5Tget_size(t);
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, n);
        H5Tset_cset(mt, H5Tget_cset(t));
        if (n < sizeof value && H5Tget_class(t) == H5T_STRING)
            H5Aread(at, mt, value);
        value[n < sizeof value ? n : sizeof value - 1] = '\0';
        H5Tclose(mt);
        H5Tclose(t);
        H5Aclose(at);
    }
    snprintf(a->sets[a->n++], sizeof a->sets[0], "%s=%s", name, value);
    return 0;
}

int tr_ckpt_read_columns(const char *path, char **names, tr_err *err)
{
    *names = NULL;
    hid_t f;
    int rc = open_checked(&f, path, true, err);
    if (rc)
        return rc;
    if (tr_h5_exists(f, "/data") && H5Aexists_by_name(f, "/data", "columns", H5P_DEFAULT) > 0) {
        hid_t a = H5Aopen_by_name(f, "/data", "columns", H5P_DEFAULT, H5P_DEFAULT);
        hid_t t = a >= 0 ? H5Aget_type(a) : -1;
        const size_t n = t >= 0 ? H5Tget_size(t) : 0;
        *names = n > 0 ? calloc(n + 1, 1) : NULL;
        if (!*names)
            rc = tr_fail(err, TR_ECKPT, "%s: cannot read /data columns", path);
        else
            rc = tr_h5_get_attr_str(f, path, "/data", "columns", *names, n + 1, err);
        if (t >= 0)
            H5Tclose(t);
        if (a >= 0)
            H5Aclose(a);
        if (rc) {
            free(*names);
            *names = NULL;
        }
    }
    H5Fclose(f);
    return rc;
}

int tr_ckpt_read_config(const char *path, tr_config *c, tr_err *err)
{
    hid_t f;
    memset(c, 0, sizeof *c);
    int rc = open_checked(&f, path, false, err);
    if (rc)
        return rc;
    if (!tr_h5_exists(f, "/config")) {
        H5Fclose(f);
        return tr_fail(err, TR_ECKPT, "%s: no /config (a file from from_torch.py needs a configuration: use "
                                      "--init-from with trainer train)", path);
    }
    attr_list a = {.cap = 512};
    a.sets = calloc((size_t)a.cap, sizeof *a.sets);
    const char **sets = calloc((size_t)a.cap, sizeof *sets);
    if (!a.sets || !sets) {
        H5Fclose(f);
        free(a.sets);
        free(sets);
        return tr_fail(err, TR_ENOMEM, "out of memory");
    }
    hid_t g = H5Gopen2(f, "/config", H5P_DEFAULT);
    hsize_t idx = 0;
    H5Aiterate2(g, H5_INDEX_NAME, H5_ITER_NATIVE, &idx, collect_attr, &a);
    H5Gclose(g);
    H5Fclose(f);
    int n = 0;
    for (int i = 0; i < a.n; i++) /* empty values are the keys' defaults */
        if (a.sets[i][strlen(a.sets[i]) - 1] != '=')
            sets[n++] = a.sets[i];
    rc = tr_config_load_string(c, path, "", sets, n, err);
    free(a.sets);
    free(sets);
    if (rc)
        return tr_fail(err, TR_ECKPT, "%s: the stored configuration does not load: %s", path, err ? err->msg : "");
    return 0;
}

void tr_ckpt_path(char *buf, size_t len, const char *dir, int64_t step)
{
    snprintf(buf, len, "%s/ckpt-%09lld.h5", dir, (long long)step);
}

/* ckpt-*.h5 of DIR, newest (largest step) first; *n entries in *names (malloc'd). */
static int list_ckpts(const char *dir, char (**names)[256], int *n, tr_err *err)
{
    *n = 0;
    *names = NULL;
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : tr_fail(err, TR_ECKPT, "%s: cannot list: %s", dir, strerror(errno));
    int cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        long long step;
        char tail[8];
        if (sscanf(e->d_name, "ckpt-%lld.%7s", &step, tail) != 2 || strcmp(tail, "h5") != 0)
            continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            char(*nn)[256] = realloc(*names, (size_t)cap * sizeof **names);
            if (!nn) {
                closedir(d);
                return tr_fail(err, TR_ENOMEM, "out of memory");
            }
            *names = nn;
        }
        snprintf((*names)[(*n)++], 256, "%s", e->d_name);
    }
    closedir(d);
    /* zero-padded steps: names sort like steps; newest first */
    for (int i = 1; i < *n; i++)
        for (int j = i; j > 0 && strcmp((*names)[j - 1], (*names)[j]) < 0; j--) {
            char t[256];
            memcpy(t, (*names)[j], sizeof t);
            memcpy((*names)[j], (*names)[j - 1], sizeof t);
            memcpy((*names)[j - 1], t, sizeof t);
        }
    return 0;
}

int tr_ckpt_find_latest(const char *dir, char *path, size_t len, tr_err *err)
{
    char(*names)[256];
    int n;
    path[0] = '\0';
    int rc = list_ckpts(dir, &names, &n, err);
    if (rc)
        return rc;
    int found = 1;
    for (int i = 0; i < n && found; i++) {
        char p[TR_PATH_MAX + 300];
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        hid_t f;
        tr_err e2 = {0};
        if (open_checked(&f, p, false, &e2) == 0) {
            char fmt[64] = "";
            int64_t step;
            const bool ok = tr_h5_get_attr_str(f, p, "/", "format", fmt, sizeof fmt, &e2) == 0 &&
                            !strcmp(fmt, "trainer-checkpoint") &&
                            tr_h5_get_attr_i64(f, p, "/state", "step", &step, &e2) == 0;
            H5Fclose(f);
            if (ok) {
                snprintf(path, len, "%s", p);
                found = 0;
                continue;
            }
        }
        fprintf(stderr, "trainer: note: skipping %s: %s\n", p, e2.msg[0] ? e2.msg : "not a valid checkpoint");
    }
    free(names);
    return found;
}

int tr_ckpt_rotate(const char *dir, int64_t keep, int64_t newest, tr_err *err)
{
    char(*names)[256];
    int n;
    int rc = list_ckpts(dir, &names, &n, err);
    int64_t kept = 0;
    for (int i = 0; !rc && i < n; i++) { /* newest first */
        long long step;
        if (sscanf(names[i], "ckpt-%lld", &step) != 1 || step > newest)
            continue; /* not this run's past: never counted, never deleted */
        if (kept++ < keep)
            continue;
        char p[TR_PATH_MAX + 300];
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        struct stat st;
        if (lstat(p, &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1 || !tr_ckpt_written_by_trainer(p))
            continue; /* a link, or a file the trainer did not write: never deleted */
        if (unlink(p) != 0 && errno != ENOENT)
            rc = tr_fail(err, TR_ECKPT, "%s: cannot delete an old checkpoint: %s", p, strerror(errno));
    }
    free(names);
    return rc;
}
