/*
 * convert.c: `trainer data convert` (see convert.h).
 */
#include "trainer/convert.h"

#include "trainer/data.h"
#include "trainer/files.h"
#include "trainer/h5io.h"

#include <hdf5.h>
#include <math.h>
#include <string.h>

/* The files this command writes: an HDF5 root of /X and /y only. */
static const char *const converted_names[] = {"X", "y", NULL};
static const tr_output_kind converted_file = {"trainer data convert", converted_names, NULL};

/* Whether every target is a whole number in [0, 2^31) in one column: class labels. */
static bool class_labels(const tr_dataset *ds)
{
    if (ds->tcols != 1)
        return false;
    for (int64_t r = 0; r < ds->rows; r++) {
        const float v = ds->y[r];
        if (!(v >= 0.0f && v < 2147483648.0f && v == floorf(v)))
            return false;
    }
    return true;
}

/* /X written in blocks of rows (the progress line moves with them), contiguous: mappable. */
static int write_features(hid_t f, const char *path, const tr_dataset *ds, FILE *progress, tr_err *err)
{
    hsize_t dims[2] = {(hsize_t)ds->rows, (hsize_t)ds->cols};
    hid_t space = H5Screate_simple(2, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_layout(dcpl, H5D_CONTIGUOUS);
    H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY); /* one run of bytes, at a known offset */
    hid_t d = H5Dcreate2(f, "/X", H5T_NATIVE_FLOAT, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    char why[200];
    int rc = d < 0 ? tr_fail(err, TR_EIO, "%s: cannot create /X: %s", path, tr_h5_why(why, sizeof why)) : 0;
    H5Pclose(dcpl);
    const int64_t block = ds->cols > 0 && ds->cols < (1 << 20) ? (1 << 22) / ds->cols + 1 : 1;
    for (int64_t r0 = 0; !rc && r0 < ds->rows; r0 += block) {
        const int64_t n = ds->rows - r0 < block ? ds->rows - r0 : block;
        hsize_t start[2] = {(hsize_t)r0, 0}, count[2] = {(hsize_t)n, (hsize_t)ds->cols};
        hid_t mem = H5Screate_simple(2, count, NULL);
        H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, count, NULL);
        if (H5Dwrite(d, H5T_NATIVE_FLOAT, mem, space, H5P_DEFAULT, tr_dataset_stored_row(ds, r0)) < 0)
            rc = tr_fail(err, TR_EIO, "%s: cannot write /X rows %lld..: %s", path, (long long)r0,
                         tr_h5_why(why, sizeof why));
        H5Sclose(mem);
        if (progress)
            fprintf(progress, "\rwriting %s: %3.0f%% of %lld rows", path, 100.0 * (double)(r0 + n) / (double)ds->rows,
                    (long long)ds->rows);
    }
    if (progress)
        fputc('\n', progress);
    if (d >= 0)
        H5Dclose(d);
    H5Sclose(space);
    return rc;
}

/* An attribute of names, when HDF5 can hold it (64 KiB per object header). */
static int names_attr(hid_t f, const char *path, const char *obj, const char *name, const char *value, FILE *out,
                      tr_err *err)
{
    if (!value || !value[0])
        return 0;
    if (strlen(value) > 60000) {
        if (out)
            fprintf(out, "note: the %s of %s are too long for an HDF5 attribute and were not stored\n", name, obj);
        return 0;
    }
    return tr_h5_attr_str(f, path, obj, name, value, err);
}

static int write_converted(const tr_dataset *ds, const char *tmp, const char *path, const char *input,
                           FILE *progress, FILE *out, tr_err *err)
{
    tr_h5_quiet();
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    char why[200];
    if (f < 0)
        return tr_fail(err, TR_EIO, "%s: cannot create: %s", path, tr_h5_why(why, sizeof why));
    int rc = write_features(f, path, ds, progress, err);
    if (!rc)
        rc = tr_h5_write_targets(f, path, "/y", ds->y, ds->rows, ds->tcols, class_labels(ds), err);
    if (!rc)
        rc = names_attr(f, path, "/X", "columns", ds->column_names, out, err);
    if (!rc)
        rc = names_attr(f, path, "/y", "class_names", ds->class_names, out, err);
    if (!rc)
        rc = tr_h5_attr_str(f, path, "/", "source", input, err);
    if (rc)
        H5Fclose(f);
    else
        rc = tr_h5_finish(f, path, err);
    return rc;
}

int tr_convert(const tr_data_config *dc, const char *input, const char *output, FILE *progress, FILE *out,
               tr_err *err)
{
    size_t n = strlen(output);
    if (!(n > 3 && !strcmp(output + n - 3, ".h5")) && !(n > 5 && !strcmp(output + n - 5, ".hdf5")))
        return tr_fail(err, TR_EUSAGE, "%s: the output of trainer data convert must end in .h5 or .hdf5", output);
    const char *reads[] = {input, dc->labels};
    int rc = tr_output_check(output, "the output", reads, dc->labels[0] ? 2 : 1, &converted_file, TR_EUSAGE, err);
    if (rc)
        return rc;
    if (progress)
        fprintf(progress, "reading %s ...\n", input);
    tr_dataset ds;
    int64_t dropped = 0;
    rc = tr_data_read_file(&ds, dc, input, &dropped, err);
    if (rc)
        return rc;
    tr_atomic a;
    rc = tr_atomic_begin(&a, output, false, TR_EIO, err);
    if (!rc) {
        rc = write_converted(&ds, a.tmp, output, input, progress, out, err);
        if (rc)
            tr_atomic_abort(&a);
        else
            rc = tr_atomic_commit(&a, TR_EIO, err);
    }
    if (!rc && out) {
        fprintf(out, "wrote %s: %lld rows, %lld feature%s, %s", output, (long long)ds.rows, (long long)ds.cols,
                ds.cols == 1 ? "" : "s", class_labels(&ds) ? "class labels" : "real targets");
        if (ds.class_names)
            fprintf(out, " (classes %s)", ds.class_names);
        if (dropped)
            fprintf(out, "; %lld rows with non-finite values dropped", (long long)dropped);
        fputc('\n', out);
    }
    tr_dataset_free(&ds);
    return rc;
}
