/*
 * test_data.c: the readers (CSV, IDX, HDF5) on good and bad files, the generators against
 * their definitions, the split and the scaling.
 */
#include "test_util.h"
#include "trainer/csv.h"
#include "trainer/data.h"
#include "trainer/generate.h"
#include "trainer/h5io.h"
#include "trainer/idx.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static char dir[256];
static void setup(void) { make_temp_dir(dir, sizeof dir); }

TestSuite(csv, .init = setup);
TestSuite(idx, .init = setup);
TestSuite(hdf5, .init = setup);

static const char *path_of(const char *name)
{
    static char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return p;
}

/* ------------------------------------------------------------------ CSV -------------- */

static tr_csv_options csv_opts(void)
{
    tr_csv_options o = {.delimiter = 0, .header = true, .target = "", .columns = "", .drop_nonfinite = false};
    return o;
}

static int csv(const char *text, tr_csv_options o, tr_dataset *ds, tr_err *err)
{
    const char *p = path_of("t.csv");
    write_text(p, text);
    int64_t dropped;
    return tr_csv_read(ds, p, &o, &dropped, err);
}

static void expect_csv_error(const char *text, tr_csv_options o, const char *n1, const char *n2)
{
    tr_dataset ds;
    tr_err err = {0};
    cr_expect_eq(csv(text, o, &ds, &err), TR_EDATA, "expected a data error for:\n%s", text);
    cr_expect(strstr(err.msg, "t.csv") != NULL, "no file name in '%s'", err.msg);
    if (n1)
        cr_expect(strstr(err.msg, n1) != NULL, "'%s' lacks '%s'", err.msg, n1);
    if (n2)
        cr_expect(strstr(err.msg, n2) != NULL, "'%s' lacks '%s'", err.msg, n2);
}

Test(csv, semicolon_table_with_named_target)
{
    tr_csv_options o = csv_opts();
    o.target = "stability";
    tr_dataset ds;
    tr_err err = {0};
    cr_assert_eq(csv("tau1;p1;stability;g1\r\n1.5;-2;1;0.25\r\n\r\n\"3\";4e-1;0;-7\r\n", o, &ds, &err), 0, "%s",
                 err.msg);
    cr_expect_eq(ds.rows, 2);
    cr_expect_eq(ds.cols, 3);
    cr_expect_eq(ds.tcols, 1);
    const float X[6] = {1.5f, -2.0f, 0.25f, 3.0f, 0.4f, -7.0f}, y[2] = {1.0f, 0.0f};
    for (int i = 0; i < 6; i++)
        cr_expect(ds.X[i] == X[i], "X[%d] = %g", i, ds.X[i]);
    cr_expect(ds.y[0] == y[0] && ds.y[1] == y[1]);
    tr_dataset_free(&ds);
}

Test(csv, default_target_is_last_column_and_columns_select_features)
{
    tr_csv_options o = csv_opts();
    o.columns = "c, 0";
    tr_dataset ds;
    cr_assert_eq(csv("a,b,c,t\n1,2,3,4\n5,6,7,8\n", o, &ds, NULL), 0);
    cr_expect_eq(ds.cols, 2);
    cr_expect(ds.X[0] == 3 && ds.X[1] == 1 && ds.X[2] == 7 && ds.X[3] == 5);
    cr_expect(ds.y[0] == 4 && ds.y[1] == 8);
    tr_dataset_free(&ds);
}

Test(csv, headerless_with_index_target)
{
    tr_csv_options o = csv_opts();
    o.header = false;
    o.target = "0";
    tr_dataset ds;
    cr_assert_eq(csv("1\t2\t3\n4\t5\t6\n", o, &ds, NULL), 0);
    cr_expect_eq(ds.rows, 2);
    cr_expect(ds.y[0] == 1 && ds.y[1] == 4 && ds.X[0] == 2 && ds.X[3] == 6);
    tr_dataset_free(&ds);
}

Test(csv, one_row_file)
{
    tr_dataset ds;
    cr_assert_eq(csv("x,y\n0.5,1\n", csv_opts(), &ds, NULL), 0);
    cr_expect_eq(ds.rows, 1);
    cr_expect(ds.X[0] == 0.5f && ds.y[0] == 1.0f);
    tr_dataset_free(&ds);
}

Test(csv, bad_files_name_line_and_column)
{
    tr_csv_options o = csv_opts();
    expect_csv_error("x,y\n1,2\n3,abc\n", o, "t.csv:3", "column 2 ('y'): 'abc' is not a number");
    expect_csv_error("x,y\n1,2\n3,4,5\n", o, "t.csv:3", "ragged");
    expect_csv_error("", o, "empty", NULL);
    expect_csv_error("\n\n  \n", o, "empty", NULL);
    expect_csv_error("x,y\n", o, "no data rows", NULL);
    o.target = "stability";
    expect_csv_error("x;y\n1;2\n", o, "no column 'stability'", "x, y");
    o.target = "";
    expect_csv_error("x,y\n1,nan\n", o, "t.csv:2", "on_nonfinite");
    expect_csv_error("x,y\n1,2\n1e999,2\n", o, "t.csv:3", "too large for a 32-bit float");
    expect_csv_error("x\n1\n", o, "no feature columns", NULL);
}

Test(csv, drop_nonfinite_rows)
{
    tr_csv_options o = csv_opts();
    o.drop_nonfinite = true;
    const char *p = path_of("t.csv");
    write_text(p, "x,y\n1,2\nnan,3\n4,inf\n5,6\n");
    tr_dataset ds;
    int64_t dropped;
    cr_assert_eq(tr_csv_read(&ds, p, &o, &dropped, NULL), 0);
    cr_expect_eq(ds.rows, 2);
    cr_expect_eq(dropped, 2);
    cr_expect(ds.X[1] == 5 && ds.y[1] == 6);
    tr_dataset_free(&ds);
}

Test(csv, missing_file_is_a_data_error)
{
    tr_dataset ds;
    tr_err err = {0};
    int64_t dropped;
    tr_csv_options o = csv_opts();
    cr_expect_eq(tr_csv_read(&ds, "/nonexistent/x.csv", &o, &dropped, &err), TR_EDATA);
    cr_expect(strstr(err.msg, "/nonexistent/x.csv") != NULL);
}

Test(csv, delimiter_names)
{
    cr_expect_eq(tr_csv_delimiter("semicolon"), ';');
    cr_expect_eq(tr_csv_delimiter(";"), ';');
    cr_expect_eq(tr_csv_delimiter("tab"), '\t');
    cr_expect_eq(tr_csv_delimiter("auto"), 0);
    cr_expect_eq(tr_csv_delimiter("x"), -1);
    cr_expect_eq(tr_csv_delimiter("."), -1);
}

/* ------------------------------------------------------------------ IDX -------------- */

static void write_idx(const char *name, bool gz, unsigned char type, int ndims, const uint32_t *dims,
                      const unsigned char *data, size_t n, size_t cut)
{
    unsigned char head[4 + 16] = {0, 0, type, (unsigned char)ndims};
    size_t hn = 4;
    for (int i = 0; i < ndims; i++) {
        head[hn++] = (unsigned char)(dims[i] >> 24);
        head[hn++] = (unsigned char)(dims[i] >> 16);
        head[hn++] = (unsigned char)(dims[i] >> 8);
        head[hn++] = (unsigned char)dims[i];
    }
    unsigned char *all = malloc(hn + n);
    memcpy(all, head, hn);
    memcpy(all + hn, data, n);
    size_t total = cut ? cut : hn + n;
    if (gz) {
        gzFile g = gzopen(path_of(name), "wb");
        gzwrite(g, all, (unsigned)total);
        gzclose(g);
    } else {
        FILE *f = fopen(path_of(name), "wb");
        fwrite(all, 1, total, f);
        fclose(f);
    }
    free(all);
}

static void write_pair(bool gz)
{
    const uint32_t di[3] = {3, 2, 2}, dl[1] = {3};
    const unsigned char img[12] = {0, 255, 51, 102, 1, 2, 3, 4, 255, 255, 0, 0}, lab[3] = {7, 0, 9};
    write_idx("img", gz, 0x08, 3, di, img, 12, 0);
    write_idx("lab", gz, 0x08, 1, dl, lab, 3, 0);
}

static void expect_pair(void)
{
    tr_dataset ds;
    char img[512], lab[512];
    snprintf(img, sizeof img, "%s", path_of("img"));
    snprintf(lab, sizeof lab, "%s", path_of("lab"));
    tr_err err = {0};
    cr_assert_eq(tr_idx_read(&ds, img, lab, &err), 0, "%s", err.msg);
    cr_expect_eq(ds.rows, 3);
    cr_expect_eq(ds.cols, 4);
    cr_expect(ds.X[1] == 1.0f && ds.X[0] == 0.0f && fabsf(ds.X[2] - 0.2f) < 1e-7f);
    cr_expect(ds.y[0] == 7 && ds.y[1] == 0 && ds.y[2] == 9);
    tr_dataset_free(&ds);
}

Test(idx, reads_gzip_and_plain_files_scaled_to_unit_interval)
{
    write_pair(true);
    expect_pair();
    write_pair(false);
    expect_pair();
}

static void expect_idx_error(const char *needle)
{
    tr_dataset ds;
    char img[512], lab[512];
    snprintf(img, sizeof img, "%s", path_of("img"));
    snprintf(lab, sizeof lab, "%s", path_of("lab"));
    tr_err err = {0};
    cr_expect_eq(tr_idx_read(&ds, img, lab, &err), TR_EDATA);
    cr_expect(strstr(err.msg, needle) != NULL, "'%s' lacks '%s'", err.msg, needle);
}

Test(idx, bad_files_are_named)
{
    const uint32_t di[3] = {3, 2, 2}, dl[1] = {3}, dl2[1] = {2};
    const unsigned char img[12] = {0}, lab[3] = {0};
    write_idx("lab", true, 0x08, 1, dl, lab, 3, 0);
    write_idx("img", true, 0x08, 3, di, img, 12, 20); /* truncated pixels */
    expect_idx_error("truncated");
    write_idx("img", true, 0x0D, 3, di, img, 12, 0); /* float data */
    expect_idx_error("not supported");
    write_idx("img", false, 0x08, 2, di, img, 12, 0); /* wrong rank */
    expect_idx_error("dimensions");
    write_text(path_of("img"), "PK\003\004 not idx at all");
    expect_idx_error("bad magic");
    write_text(path_of("img"), "");
    expect_idx_error("too short");
    write_idx("img", true, 0x08, 3, di, img, 12, 0);
    write_idx("lab", true, 0x08, 1, dl2, lab, 2, 0);
    expect_idx_error("has 3 images but");
}

Test(idx, reads_debian_fashion_mnist_when_installed)
{
    const char *base = "/usr/share/datasets/fashion-mnist/";
    char img[256], lab[256];
    snprintf(img, sizeof img, "%st10k-images-idx3-ubyte.gz", base);
    snprintf(lab, sizeof lab, "%st10k-labels-idx1-ubyte.gz", base);
    FILE *f = fopen(img, "rb");
    if (!f)
        cr_skip_test("dataset-fashion-mnist is not installed");
    fclose(f);
    tr_dataset ds;
    cr_assert_eq(tr_idx_read(&ds, img, lab, NULL), 0);
    cr_expect_eq(ds.rows, 10000);
    cr_expect_eq(ds.cols, 784);
    int counts[10] = {0};
    for (int64_t r = 0; r < ds.rows; r++)
        counts[(int)ds.y[r]]++;
    for (int c = 0; c < 10; c++)
        cr_expect_eq(counts[c], 1000, "class %d has %d test images", c, counts[c]);
    tr_dataset_free(&ds);
}

/* ------------------------------------------------------------------ HDF5 ------------- */

static void write_h5(const char *name, int xrank, hsize_t rows, hsize_t cols, hid_t xtype, const void *X,
                     hsize_t yrows, hid_t ytype, const void *y)
{
    hid_t f = H5Fcreate(path_of(name), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert(f >= 0);
    hsize_t dx[2] = {rows, cols}, dy[1] = {yrows};
    hid_t sx = H5Screate_simple(xrank, dx, NULL), sy = H5Screate_simple(1, dy, NULL);
    hid_t g = H5Gcreate2(f, "/data", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t d1 = H5Dcreate2(f, "/data/features", xtype, sx, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (rows)
        H5Dwrite(d1, xtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, X);
    hid_t d2 = H5Dcreate2(f, "/data/labels", ytype, sy, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (yrows)
        H5Dwrite(d2, ytype, H5S_ALL, H5S_ALL, H5P_DEFAULT, y);
    H5Dclose(d1);
    H5Dclose(d2);
    H5Gclose(g);
    H5Sclose(sx);
    H5Sclose(sy);
    H5Fclose(f);
}

Test(hdf5, float64_features_and_integer_labels_with_a_hyperslab)
{
    const double X[4 * 3] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    const int32_t y[4] = {0, 1, 2, 1};
    write_h5("a.h5", 2, 4, 3, H5T_NATIVE_DOUBLE, X, 4, H5T_NATIVE_INT32, y);
    char p[512];
    snprintf(p, sizeof p, "%s", path_of("a.h5"));
    tr_dataset ds;
    tr_err err = {0};
    cr_assert_eq(tr_hdf5_read(&ds, p, "/data/features", "/data/labels", 0, -1, &err), 0, "%s", err.msg);
    cr_expect_eq(ds.rows, 4);
    cr_expect_eq(ds.cols, 3);
    for (int i = 0; i < 12; i++)
        cr_expect(ds.X[i] == (float)X[i]);
    cr_expect(ds.y[2] == 2.0f);
    tr_dataset_free(&ds);
    /* rows [1, 3) only */
    cr_assert_eq(tr_hdf5_read(&ds, p, "/data/features", "/data/labels", 1, 3, &err), 0, "%s", err.msg);
    cr_expect_eq(ds.rows, 2);
    cr_expect(ds.X[0] == 4.0f && ds.X[5] == 9.0f && ds.y[0] == 1.0f && ds.y[1] == 2.0f);
    tr_dataset_free(&ds);
}

Test(hdf5, one_dimensional_features_and_one_row)
{
    const float X[1] = {2.5f}, y[1] = {0.75f};
    write_h5("b.h5", 1, 1, 1, H5T_NATIVE_FLOAT, X, 1, H5T_NATIVE_FLOAT, y);
    char p[512];
    snprintf(p, sizeof p, "%s", path_of("b.h5"));
    tr_dataset ds;
    cr_assert_eq(tr_hdf5_read(&ds, p, "/data/features", "/data/labels", 0, -1, NULL), 0);
    cr_expect(ds.rows == 1 && ds.cols == 1 && ds.X[0] == 2.5f && ds.y[0] == 0.75f);
    tr_dataset_free(&ds);
}

static void expect_h5_error(const char *file, const char *feat, const char *needle)
{
    char p[512];
    snprintf(p, sizeof p, "%s", path_of(file));
    tr_dataset ds;
    tr_err err = {0};
    cr_expect_eq(tr_hdf5_read(&ds, p, feat, "/data/labels", 0, -1, &err), TR_EDATA);
    cr_expect(strstr(err.msg, needle) != NULL, "'%s' lacks '%s'", err.msg, needle);
    cr_expect(strstr(err.msg, file) != NULL, "'%s' lacks the file name", err.msg);
}

Test(hdf5, bad_files_are_named)
{
    const float X[6] = {1, 2, 3, 4, 5, 6}, y[3] = {0, 1, 0};
    write_h5("rows.h5", 2, 3, 2, H5T_NATIVE_FLOAT, X, 2, H5T_NATIVE_FLOAT, y);
    expect_h5_error("rows.h5", "/data/features", "has 3 rows but /data/labels has 2");
    write_h5("ok.h5", 2, 3, 2, H5T_NATIVE_FLOAT, X, 3, H5T_NATIVE_FLOAT, y);
    expect_h5_error("ok.h5", "/X", "no dataset /X");
    expect_h5_error("ok.h5", "/nogroup/X", "no dataset /nogroup/X");
    expect_h5_error("ok.h5", "/data", "not a dataset");
    write_h5("empty.h5", 2, 0, 2, H5T_NATIVE_FLOAT, X, 0, H5T_NATIVE_FLOAT, y);
    expect_h5_error("empty.h5", "/data/features", "no rows");
    write_text(path_of("junk.h5"), "this is not an HDF5 file\n");
    expect_h5_error("junk.h5", "/data/features", "not an HDF5 file");
    expect_h5_error("missing.h5", "/data/features", "cannot open");
    /* a valid file cut in half */
    char src[512], cmd[1200];
    snprintf(src, sizeof src, "%s", path_of("ok.h5"));
    snprintf(cmd, sizeof cmd, "head -c 1000 %s > %s", src, path_of("cut.h5"));
    cr_assert_eq(system(cmd), 0);
    expect_h5_error("cut.h5", "/data/features", "");
}

Test(hdf5, nonfinite_rows_rejected_with_row_or_dropped)
{
    const float X[6] = {1, 2, NAN, 4, 5, 6}, y[3] = {0, 1, 0};
    write_h5("nan.h5", 2, 3, 2, H5T_NATIVE_FLOAT, X, 3, H5T_NATIVE_FLOAT, y);
    char p[512];
    snprintf(p, sizeof p, "%s", path_of("nan.h5"));
    tr_dataset ds;
    tr_err err = {0};
    cr_assert_eq(tr_hdf5_read(&ds, p, "/data/features", "/data/labels", 0, -1, &err), 0);
    tr_dataset keep = ds;
    int64_t dropped;
    cr_expect_eq(tr_dataset_check_finite(&ds, false, "nan.h5", &dropped, &err), TR_EDATA);
    cr_expect(strstr(err.msg, "row 1") && strstr(err.msg, "on_nonfinite"), "%s", err.msg);
    cr_expect_eq(tr_dataset_check_finite(&keep, true, "nan.h5", &dropped, &err), 0);
    cr_expect_eq(keep.rows, 2);
    cr_expect_eq(dropped, 1);
    cr_expect(keep.X[2] == 5.0f);
    tr_dataset_free(&keep);
}

/* ------------------------------------------------------------------ generators ------- */

static tr_data_config gen_cfg(const char *kind, int64_t n)
{
    tr_data_config dc;
    memset(&dc, 0, sizeof dc);
    snprintf(dc.generator, sizeof dc.generator, "%s", kind);
    dc.n = n;
    dc.noise = dc.sd = dc.a = dc.b = dc.x_min = dc.x_max = NAN;
    dc.r1 = 2;
    dc.r2 = 1;
    dc.classes = 3;
    dc.n_features = 2;
    dc.box = 10;
    dc.seed = 42;
    return dc;
}

Test(generators, moons_matches_make_moons)
{
    tr_data_config dc = gen_cfg("moons", 20001);
    dc.noise = 0.0;
    tr_dataset ds;
    cr_assert_eq(tr_generate(&ds, &dc, NULL), 0);
    /* make_moons: n_out = n // 2 on the upper half circle, n_in = n - n_out on the lower one */
    const int64_t n_out = 10000, n_in = 10001;
    double want[2][2] = {{0, 0}, {0, 0}}, got[2][2] = {{0, 0}, {0, 0}};
    int64_t count[2] = {0, 0};
    for (int64_t i = 0; i < n_out; i++) {
        const double t = M_PI * (double)i / (double)(n_out - 1);
        want[0][0] += cos(t) / n_out;
        want[0][1] += sin(t) / n_out;
    }
    for (int64_t i = 0; i < n_in; i++) {
        const double t = M_PI * (double)i / (double)(n_in - 1);
        want[1][0] += (1 - cos(t)) / n_in;
        want[1][1] += (1 - sin(t) - 0.5) / n_in;
    }
    for (int64_t r = 0; r < ds.rows; r++) {
        const int c = (int)ds.y[r];
        count[c]++;
        got[c][0] += ds.X[2 * r];
        got[c][1] += ds.X[2 * r + 1];
        /* each point is on its half circle */
        const double cx = c ? 1.0 : 0.0, cy = c ? 0.5 : 0.0;
        const double rad = hypot(ds.X[2 * r] - cx, ds.X[2 * r + 1] - cy);
        cr_expect(fabs(rad - 1.0) < 1e-6, "row %lld off its circle (%g)", (long long)r, rad);
    }
    cr_expect_eq(count[0], n_out);
    cr_expect_eq(count[1], n_in);
    for (int c = 0; c < 2; c++)
        for (int k = 0; k < 2; k++)
            cr_expect(fabs(got[c][k] / count[c] - want[c][k]) < 1e-6, "class %d mean[%d] %g want %g", c, k,
                      got[c][k] / count[c], want[c][k]);
    /* shuffled: the labels are not sorted */
    int changes = 0;
    for (int64_t r = 1; r < ds.rows; r++)
        changes += ds.y[r] != ds.y[r - 1];
    cr_expect(changes > 5000, "rows are not shuffled (%d label changes)", changes);
    tr_dataset_free(&ds);

    /* noise: the deviation from the noiseless curve has the configured sd */
    dc.noise = 0.1;
    tr_dataset noisy, clean;
    cr_assert_eq(tr_generate(&noisy, &dc, NULL), 0);
    dc.noise = 0.0;
    cr_assert_eq(tr_generate(&clean, &dc, NULL), 0);
    double s2 = 0.0;
    for (int64_t i = 0; i < 2 * noisy.rows; i++)
        s2 += (noisy.X[i] - clean.X[i]) * (noisy.X[i] - clean.X[i]);
    const double sd = sqrt(s2 / (2.0 * (double)noisy.rows));
    cr_expect(fabs(sd - 0.1) < 0.003, "noise sd %g", sd);
    tr_dataset_free(&noisy);
    tr_dataset_free(&clean);
}

Test(generators, circles_have_their_radii_and_noise)
{
    tr_data_config dc = gen_cfg("circles", 20000);
    dc.sd = 0.0;
    tr_dataset ds;
    cr_assert_eq(tr_generate(&ds, &dc, NULL), 0);
    int64_t count[2] = {0, 0};
    double mx[2] = {0, 0};
    for (int64_t r = 0; r < ds.rows; r++) {
        const int c = (int)ds.y[r];
        count[c]++;
        mx[c] += ds.X[2 * r];
        cr_expect(fabs(hypot(ds.X[2 * r], ds.X[2 * r + 1]) - (c ? 1.0 : 2.0)) < 1e-6);
    }
    cr_expect(count[0] == 10000 && count[1] == 10000);
    cr_expect(fabs(mx[0] / 10000) < 1e-6 && fabs(mx[1] / 10000) < 1e-6, "evenly spaced angles centre on 0");
    tr_dataset_free(&ds);
    dc.sd = 0.2;
    cr_assert_eq(tr_generate(&ds, &dc, NULL), 0);
    double s = 0, s2 = 0;
    for (int64_t r = 0; r < ds.rows; r++) {
        const double rad = hypot(ds.X[2 * r], ds.X[2 * r + 1]) - (ds.y[r] ? 1.0 : 2.0);
        s += rad;
        s2 += rad * rad;
    }
    const double sd_rad = sqrt(s2 / 20000 - (s / 20000) * (s / 20000));
    cr_expect(fabs(sd_rad - 0.2) < 0.01, "radial spread %g", sd_rad);
    tr_dataset_free(&ds);
}

Test(generators, blobs_balanced_with_cluster_sd)
{
    tr_data_config dc = gen_cfg("blobs", 30001);
    dc.sd = 0.5;
    dc.classes = 3;
    dc.n_features = 4;
    tr_dataset ds;
    cr_assert_eq(tr_generate(&ds, &dc, NULL), 0);
    cr_expect_eq(ds.cols, 4);
    double mean[3][4] = {{0}}, sq[3][4] = {{0}};
    int64_t count[3] = {0};
    for (int64_t r = 0; r < ds.rows; r++) {
        const int c = (int)ds.y[r];
        count[c]++;
        for (int f = 0; f < 4; f++) {
            mean[c][f] += ds.X[r * 4 + f];
            sq[c][f] += ds.X[r * 4 + f] * ds.X[r * 4 + f];
        }
    }
    cr_expect(count[0] == 10001 && count[1] == 10000 && count[2] == 10000, "n // k each, remainder first");
    for (int c = 0; c < 3; c++)
        for (int f = 0; f < 4; f++) {
            const double m = mean[c][f] / count[c], sd = sqrt(sq[c][f] / count[c] - m * m);
            cr_expect(fabs(m) <= 10.05, "centre inside the box");
            cr_expect(fabs(sd - 0.5) < 0.02, "class %d feature %d sd %g", c, f, sd);
        }
    tr_dataset_free(&ds);
}

/* least-squares fit of y on g(x) = x or 1/x: returns slope and intercept */
static void fit(const tr_dataset *ds, bool inverse, double *slope, double *icpt, double *resid_sd)
{
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    const double n = (double)ds->rows;
    for (int64_t r = 0; r < ds->rows; r++) {
        const double x = inverse ? 1.0 / ds->X[r] : ds->X[r], y = ds->y[r];
        sx += x;
        sy += y;
        sxx += x * x;
        sxy += x * y;
    }
    *slope = (n * sxy - sx * sy) / (n * sxx - sx * sx);
    *icpt = (sy - *slope * sx) / n;
    double ss = 0;
    for (int64_t r = 0; r < ds->rows; r++) {
        const double x = inverse ? 1.0 / ds->X[r] : ds->X[r];
        const double e = ds->y[r] - (*icpt + *slope * x);
        ss += e * e;
    }
    *resid_sd = sqrt(ss / n);
}

Test(generators, linear_and_inverse_follow_their_formulas)
{
    tr_data_config dc = gen_cfg("linear", 50000);
    tr_dataset ds;
    cr_assert_eq(tr_generate(&ds, &dc, NULL), 0);
    double b, a, sd;
    fit(&ds, false, &b, &a, &sd);
    cr_expect(fabs(b - 0.7) < 0.002 && fabs(a - 2.0) < 0.01, "linear: y = %g + %g x", a, b);
    cr_expect(fabs(sd - 0.5 / sqrt(3.0)) < 0.005, "uniform noise sd %g", sd);
    for (int64_t r = 0; r < ds.rows; r++)
        cr_expect(ds.X[r] >= 0.0f && ds.X[r] < 10.0f && fabs(ds.y[r] - (2 + 0.7 * ds.X[r])) <= 0.5 + 1e-5);
    tr_dataset_free(&ds);

    dc = gen_cfg("inverse", 50000);
    cr_assert_eq(tr_generate(&ds, &dc, NULL), 0);
    fit(&ds, true, &b, &a, &sd);
    cr_expect(fabs(b - 5.0) < 0.03 && fabs(a - 2.0) < 0.01, "inverse: y = %g / x + %g", b, a);
    cr_expect(fabs(sd - 1.0 / 7.0) < 0.003, "gaussian noise sd %g", sd);
    for (int64_t r = 0; r < ds.rows; r++)
        cr_expect(ds.X[r] >= 2.0f && ds.X[r] < 10.0f);
    tr_dataset_free(&ds);
}

Test(generators, same_seed_same_data_other_seed_other_data)
{
    tr_data_config dc = gen_cfg("moons", 100);
    tr_dataset a, b, c;
    tr_generate(&a, &dc, NULL);
    tr_generate(&b, &dc, NULL);
    dc.seed = 43;
    tr_generate(&c, &dc, NULL);
    cr_expect(memcmp(a.X, b.X, 200 * sizeof(float)) == 0);
    cr_expect(memcmp(a.X, c.X, 200 * sizeof(float)) != 0);
    tr_dataset_free(&a);
    tr_dataset_free(&b);
    tr_dataset_free(&c);
}

/* ------------------------------------------------------------------ split and scale -- */

Test(split, disjoint_complete_reproducible)
{
    enum { N = 1000 };
    int64_t k1[N], h1[N], k2[N], h2[N], k3[N], h3[N], nk, nh;
    tr_split_indices(N, 0.25, 7, 0, true, k1, &nk, h1, &nh);
    cr_expect_eq(nh, 250);
    cr_expect_eq(nk, 750);
    int seen[N] = {0};
    for (int i = 0; i < nk; i++)
        seen[k1[i]]++;
    for (int i = 0; i < nh; i++)
        seen[h1[i]]++;
    for (int i = 0; i < N; i++)
        cr_expect_eq(seen[i], 1, "row %d appears %d times", i, seen[i]);
    for (int i = 1; i < nk; i++) /* file order: a scattered set is read front to back */
        cr_expect_lt(k1[i - 1], k1[i], "kept rows ascend (at %d)", i);
    for (int i = 1; i < nh; i++)
        cr_expect_lt(h1[i - 1], h1[i], "held-out rows ascend (at %d)", i);
    cr_expect(h1[nh - 1] - h1[0] > N / 2, "held-out rows spread over the file");
    tr_split_indices(N, 0.25, 7, 0, true, k2, &nk, h2, &nh);
    cr_expect(memcmp(h1, h2, sizeof h1[0] * 250) == 0, "same seed, same split");
    tr_split_indices(N, 0.25, 8, 0, true, k3, &nk, h3, &nh);
    cr_expect(memcmp(h1, h3, sizeof h1[0] * 250) != 0, "other seed, other split");
    tr_split_indices(N, 0.1, 7, 0, false, k3, &nk, h3, &nh);
    cr_expect(h3[0] == 900 && h3[99] == 999 && k3[0] == 0 && k3[899] == 899, "unshuffled: the last rows");
    tr_split_indices(N, 0.001, 7, 0, true, k3, &nk, h3, &nh);
    cr_expect_eq(nh, 1, "ceil, like scikit-learn");
}

static const char *table_cfg =
    "[model]\nlayers = 2, 4, 1\nactivations = tanh\noutput_activation = sigmoid\n"
    "[data]\ngenerator = moons\nn = 2000\nnoise = 0.3\ntest_fraction = 0.25\nval_fraction = 0.15\n"
    "scale = standard\nsplit_seed = 3\n"
    "[train]\nloss = bce\n";

static void load_data(tr_data *d, tr_config *c, const char *const *sets, int n_sets)
{
    tr_err err = {0};
    cr_assert_eq(tr_config_load_string(c, "t.ini", table_cfg, sets, n_sets, &err), 0, "%s", err.msg);
    tr_loss L = {.kind = c->train.loss, .width = 1, .out_act = TR_ACT_SIGMOID};
    cr_assert_eq(tr_data_load(d, c, &L, &err), 0, "%s", err.msg);
}

static void col_stats(const tr_dataset *ds, int col, double *mean, double *sd)
{
    double s = 0, s2 = 0;
    for (int64_t r = 0; r < ds->rows; r++) {
        s += ds->X[r * ds->cols + col];
        s2 += (double)ds->X[r * ds->cols + col] * ds->X[r * ds->cols + col];
    }
    *mean = s / (double)ds->rows;
    *sd = sqrt(s2 / (double)ds->rows - *mean * *mean);
}

Test(split, train_validation_test_partition_and_scaling_on_train_only)
{
    tr_data d;
    tr_config c;
    load_data(&d, &c, NULL, 0);
    cr_expect_eq(d.test.rows, 500);
    cr_expect_eq(d.val.rows, 300);
    cr_expect_eq(d.train.rows, 1200);
    double m, sd;
    for (int col = 0; col < 2; col++) {
        col_stats(&d.train, col, &m, &sd);
        cr_expect(fabs(m) < 1e-5 && fabs(sd - 1.0) < 1e-4, "train column %d: mean %g sd %g", col, m, sd);
        col_stats(&d.test, col, &m, &sd);
        cr_expect(fabs(m) > 1e-4 || fabs(sd - 1.0) > 1e-3, "test statistics are exactly 0/1: fitted on test?");
    }
    cr_expect_eq(d.scaler.kind, TR_SCALE_STANDARD);
    tr_data_free(&d);
    tr_config_free(&c);

    const char *sets[] = {"data.scale=minmax"};
    load_data(&d, &c, sets, 1);
    float lo = INFINITY, hi = -INFINITY;
    for (int64_t i = 0; i < d.train.rows * 2; i++) {
        lo = d.train.X[i] < lo ? d.train.X[i] : lo;
        hi = d.train.X[i] > hi ? d.train.X[i] : hi;
    }
    cr_expect(lo == 0.0f && fabsf(hi - 1.0f) < 1e-6f, "minmax train range [%g, %g]", lo, hi);
    tr_data_free(&d);
    tr_config_free(&c);
}

Test(split, scaler_divide_and_constant_columns)
{
    tr_dataset ds;
    tr_dataset_alloc(&ds, 3, 2, 1, NULL);
    const float X[6] = {255, 7, 0, 7, 51, 7};
    memcpy(ds.X, X, sizeof X);
    tr_scaler s;
    cr_assert_eq(tr_scaler_fit(&s, TR_SCALE_DIVIDE, 255, &ds, NULL), 0);
    tr_scaler_apply(&s, ds.X, ds.rows);
    cr_expect(ds.X[0] == 1.0f && fabsf(ds.X[4] - 0.2f) < 1e-7f);
    tr_scaler_free(&s);
    memcpy(ds.X, X, sizeof X);
    cr_assert_eq(tr_scaler_fit(&s, TR_SCALE_STANDARD, 1, &ds, NULL), 0);
    cr_expect(s.scale[1] == 1.0f, "a constant column keeps scale 1 (scikit-learn)");
    tr_scaler_apply(&s, ds.X, ds.rows);
    cr_expect(ds.X[1] == 0.0f && isfinite(ds.X[0]));
    tr_scaler_free(&s);
    tr_dataset_free(&ds);
}

Test(split, labels_out_of_range_are_data_errors)
{
    tr_config c;
    tr_err err = {0};
    const char *sets[] = {"model.layers = 2, 4, 3", "model.output_activation = identity", "train.loss = cross_entropy",
                          "data.generator = blobs", "data.classes = 4"};
    cr_assert_eq(tr_config_load_string(&c, "t.ini", table_cfg, sets, 5, &err), 0, "%s", err.msg);
    tr_loss L = {.kind = TR_LOSS_CROSS_ENTROPY, .width = 3, .out_act = TR_ACT_IDENTITY};
    tr_data d;
    cr_expect_eq(tr_data_load(&d, &c, &L, &err), TR_EDATA);
    cr_expect(strstr(err.msg, "class label 3 is outside [0, 3)"), "%s", err.msg);
    tr_config_free(&c);
}

Test(split, feature_count_must_match_the_model)
{
    tr_config c;
    tr_err err = {0};
    const char *sets[] = {"model.layers = 3, 4, 1"};
    cr_assert_eq(tr_config_load_string(&c, "t.ini", table_cfg, sets, 1, &err), 0, "%s", err.msg);
    tr_loss L = {.kind = TR_LOSS_BCE, .width = 1, .out_act = TR_ACT_SIGMOID};
    tr_data d;
    cr_expect_eq(tr_data_load(&d, &c, &L, &err), TR_EDATA);
    cr_expect(strstr(err.msg, "2 feature columns but [model] layers starts with 3 inputs"), "%s", err.msg);
    tr_config_free(&c);
}

/* K-fold assignment: 1000 rows of three classes (600/300/100) in 7 folds. Stratified, each
 * fold holds every class's count / 7 to one row and the folds' sizes differ by at most one;
 * the same seed gives the same folds, another seed others; without labels the sizes still
 * differ by at most one. */
Test(folds, stratified_folds_partition_the_rows_and_keep_the_class_proportions)
{
    enum { N = 1000, K = 7 };
    float labels[N];
    for (int i = 0; i < N; i++)
        labels[i] = (float)(i % 10 < 6 ? 0 : i % 10 < 9 ? 1 : 2);
    static int32_t a[N], b[N], c[N], plain[N];
    cr_assert_eq(tr_fold_assign(N, labels, 1, K, 5, true, a, NULL), 0);
    cr_assert_eq(tr_fold_assign(N, labels, 1, K, 5, true, b, NULL), 0);
    cr_assert_eq(tr_fold_assign(N, labels, 1, K, 6, true, c, NULL), 0);
    cr_assert_eq(tr_fold_assign(N, NULL, 1, K, 5, true, plain, NULL), 0);
    cr_expect(memcmp(a, b, sizeof a) == 0, "the same seed, the same folds");
    cr_expect(memcmp(a, c, sizeof a) != 0, "another seed, other folds");
    int count[K][3] = {{0}}, size[K] = {0}, plain_size[K] = {0};
    for (int i = 0; i < N; i++) {
        cr_assert(a[i] >= 0 && a[i] < K && plain[i] >= 0 && plain[i] < K);
        count[a[i]][(int)labels[i]]++;
        size[a[i]]++;
        plain_size[plain[i]]++;
    }
    const int per_class[3] = {600, 300, 100};
    for (int k = 0; k < K; k++) {
        for (int cl = 0; cl < 3; cl++)
            cr_expect(abs(count[k][cl] * K - per_class[cl]) < K, "fold %d holds %d of class %d's %d rows", k,
                      count[k][cl], cl, per_class[cl]);
        cr_expect(size[k] == N / K || size[k] == N / K + 1, "fold %d: %d rows", k, size[k]);
        cr_expect(plain_size[k] == N / K || plain_size[k] == N / K + 1, "unstratified fold %d: %d rows", k,
                  plain_size[k]);
    }
    /* the rows of a fold are not a block of the file: they were shuffled */
    int runs = 0;
    for (int i = 1; i < N; i++)
        runs += a[i] != a[i - 1];
    cr_expect(runs > N / 2, "the folds interleave in the file's order (%d changes)", runs);
    /* unshuffled (split_shuffle = false), without labels: consecutive blocks of the file */
    cr_assert_eq(tr_fold_assign(N, NULL, 1, K, 5, false, plain, NULL), 0);
    for (int i = 1; i < N; i++)
        cr_expect(plain[i] == plain[i - 1] || plain[i] == plain[i - 1] + 1, "row %d: fold %d after %d", i, plain[i],
                  plain[i - 1]);
    cr_expect(plain[0] == 0 && plain[N - 1] == K - 1);
}
