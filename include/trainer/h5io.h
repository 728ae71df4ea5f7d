/*
 * h5io.h: the small set of HDF5 operations the trainer needs (reading row ranges of 1-D and
 * 2-D datasets as float32, writing whole datasets and attributes), with errors returned as
 * messages that name the file and the dataset. HDF5's own error printing is switched off.
 *
 * Rows are the first dimension; a 1-D dataset is read as one column. Reads select a
 * hyperslab [row_begin, row_end) so a rank can read only its rows.
 */
#ifndef TRAINER_H5IO_H
#define TRAINER_H5IO_H

#include "trainer/error.h"

#include <hdf5.h>
#include <stdbool.h>
#include <stdint.h>

/* Opens a user's HDF5 file for reading (a regular file in HDF5 format). Until tr_h5_close, a
 * crash inside libhdf5 (which a damaged file can cause) ends the process with the file
 * named and the data-error status 3. */
int tr_h5_open(hid_t *file, const char *path, tr_err *err);
void tr_h5_close(hid_t file);

/* Shape of a dataset: rows and columns (cols = 1 for a 1-D dataset), and whether it holds
 * integers. Fails (naming path and dataset) when missing, or not 1-D/2-D numeric. */
int tr_h5_shape(hid_t file, const char *path, const char *name, int64_t *rows, int64_t *cols, bool *is_integer,
                tr_err *err);

/* 1 when dataset `name` is stored as one contiguous run of native float32 in the file, with
 * no filter and no external storage, written, of 1 or 2 dimensions: then its byte offset in
 * the file and shape are returned and its bytes can be used in place (mapping.h); else 0. */
int tr_h5_contiguous_f32(hid_t file, const char *name, int64_t *offset, int64_t *rows, int64_t *cols);

/* Reads rows [row_begin, row_end) of a dataset with `cols` columns into out (row-major
 * float32; HDF5 converts from the stored type). */
int tr_h5_read_rows(hid_t file, const char *path, const char *name, int64_t row_begin, int64_t row_end,
                    int64_t cols, float *out, tr_err *err);

/* Writes a new dataset (rows, cols) of float32 (or a 1-D dataset when cols == 0), creating
 * intermediate groups. */
int tr_h5_write_f32(hid_t file, const char *path, const char *name, const float *data, int64_t rows, int64_t cols,
                    tr_err *err);
int tr_h5_write_i64(hid_t file, const char *path, const char *name, const int64_t *data, int64_t rows,
                    tr_err *err);
int tr_h5_write_f64(hid_t file, const char *path, const char *name, const double *data, int64_t rows, int64_t cols,
                    tr_err *err);
/* A 1-D dataset of variable-length UTF-8 strings (what h5py reads as str after .asstr()). */
int tr_h5_write_strings(hid_t file, const char *path, const char *name, const char *const *strings, int64_t rows,
                        tr_err *err);
/* A new dataset of float32 (rows, cols) or int64 (rows) written later, rows at a time. */
int tr_h5_create_f32(hid_t file, const char *path, const char *name, int64_t rows, int64_t cols, tr_err *err);
int tr_h5_create_i64(hid_t file, const char *path, const char *name, int64_t rows, tr_err *err);
/* Writes rows [row_begin, row_begin + n) of a dataset created so (cols as created). */
int tr_h5_write_rows_f32(hid_t file, const char *path, const char *name, int64_t row_begin, int64_t n, int64_t cols,
                         const float *data, tr_err *err);
int tr_h5_write_rows_i64(hid_t file, const char *path, const char *name, int64_t row_begin, int64_t n,
                         const int64_t *data, tr_err *err);
/* Targets: class labels (one column of whole numbers) as int64 (rows), else float32 (rows,
 * cols): the layout `trainer data gen` and `trainer data convert` write. */
int tr_h5_write_targets(hid_t file, const char *path, const char *name, const float *y, int64_t rows, int64_t cols,
                        bool labels, tr_err *err);

/* Scalar attributes on an object (a group or dataset path, "/" for the file). */
int tr_h5_attr_str(hid_t file, const char *path, const char *obj, const char *name, const char *value, tr_err *err);
int tr_h5_attr_i64(hid_t file, const char *path, const char *obj, const char *name, int64_t value, tr_err *err);
int tr_h5_attr_f64(hid_t file, const char *path, const char *obj, const char *name, double value, tr_err *err);

/* Reading attributes back; a missing attribute is an error naming it. */
int tr_h5_get_attr_str(hid_t file, const char *path, const char *obj, const char *name, char *buf, size_t len,
                       tr_err *err);
int tr_h5_get_attr_i64(hid_t file, const char *path, const char *obj, const char *name, int64_t *value, tr_err *err);
int tr_h5_get_attr_f64(hid_t file, const char *path, const char *obj, const char *name, double *value, tr_err *err);

bool tr_h5_exists(hid_t file, const char *name);

/* Silences HDF5's automatic error stack printing (idempotent). */
void tr_h5_quiet(void);

/* Called first thing by a program (before any other HDF5 call): no exit-time cleanup by the
 * library, which in HDF5 1.10 crashes on a file whose flush failed (a full disk); the
 * trainer closes its files itself. */
void tr_h5_no_atexit(void);

/* Why the HDF5 call that just failed failed, into buf (returned): the system's reason where
 * a file operation failed ("No space left on device"), else HDF5's innermost description.
 * Call it before any other HDF5 call, which clears the error stack. */
const char *tr_h5_why(char *buf, size_t len);

/* 0 when the file stores as many bytes for dataset `name` as its shape claims (allowing for
 * deflate's at most ~1032-fold compression); else TR_EDATA: a damaged file that claims
 * gigabytes in a few kilobytes is refused before anything is allocated for it. */
int tr_h5_check_stored(hid_t file, const char *path, const char *name, tr_err *err);

/* Flushes and closes a file the trainer wrote: TR_EIO naming `path` and the reason when
 * either fails (the file is closed either way). */
int tr_h5_finish(hid_t file, const char *path, tr_err *err);

/* Whether path is a regular file in HDF5 format. */
bool tr_h5_is_file(const char *path);

/* Whether path is an HDF5 file whose root holds no link but those in names (NULL-ended). */
bool tr_h5_root_holds_only(const char *path, const char *const *names);

/* The same, telling a file that does not open apart: 1 holds only those names, 0 holds
 * others or is not an HDF5 file, -1 has HDF5's signature but does not open (damaged, or its
 * writer was killed while writing). */
int tr_h5_root_check(const char *path, const char *const *names);

#endif
