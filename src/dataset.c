/*
 * dataset.c: a data set in memory (see dataset.h): allocation, row origins for messages,
 * taking rows, and the non-finite policy.
 */
#include "trainer/dataset.h"
#include "trainer/mapping.h"

#include "trainer/mem.h"
#include "vector_kernel.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tr_dataset_alloc(tr_dataset *ds, int64_t rows, int64_t cols, int64_t tcols, tr_err *err)
{
    memset(ds, 0, sizeof *ds);
    int64_t nx, ny, bytes; /* a file may claim any shape: no product may overflow */
    if (rows < 0 || cols < 0 || tcols < 0 || __builtin_mul_overflow(rows, cols, &nx) ||
        __builtin_mul_overflow(rows, tcols, &ny) || __builtin_mul_overflow(nx > ny ? nx : ny, (int64_t)8, &bytes))
        return tr_fail(err, TR_ENOMEM, "cannot allocate a %lld x %lld data set (too large)", (long long)rows,
                       (long long)cols);
    ds->rows = rows;
    ds->cols = cols;
    ds->tcols = tcols;
    ds->X = tr_big_alloc((size_t)nx * sizeof *ds->X);
    ds->y = tr_big_alloc((size_t)ny * sizeof *ds->y);
    ds->origin = tr_big_alloc((size_t)rows * sizeof *ds->origin);
    if (!ds->X || !ds->y || !ds->origin) {
        tr_dataset_free(ds);
        return tr_fail(err, TR_ENOMEM, "cannot allocate a %lld x %lld data set", (long long)rows, (long long)cols);
    }
    for (int64_t r = 0; r < rows; r++)
        ds->origin[r] = r;
    return 0;
}

int tr_dataset_view(tr_dataset *ds, const float *X, int64_t rows, int64_t cols, int64_t tcols, tr_err *err)
{
    int rc = tr_dataset_alloc(ds, 0, cols, tcols, err); /* shape checks */
    tr_dataset_free(ds);
    int64_t ny = 0;
    if (!rc && (rows < 0 || __builtin_mul_overflow(rows, tcols, &ny)))
        rc = tr_fail(err, TR_ENOMEM, "cannot hold the targets of a %lld-row data set", (long long)rows);
    if (rc)
        return rc;
    memset(ds, 0, sizeof *ds);
    ds->rows = rows;
    ds->cols = cols;
    ds->tcols = tcols;
    ds->X = (float *)X;
    ds->x_borrowed = true;
    ds->y = tr_big_alloc((size_t)ny * sizeof *ds->y + 1);
    ds->origin = tr_big_alloc((size_t)rows * sizeof *ds->origin + 1);
    if (!ds->y || !ds->origin) {
        tr_dataset_free(ds);
        return tr_fail(err, TR_ENOMEM, "cannot allocate the targets of a %lld-row data set", (long long)rows);
    }
    for (int64_t r = 0; r < rows; r++)
        ds->origin[r] = r;
    return 0;
}

void tr_dataset_free(tr_dataset *ds)
{
    if (!ds)
        return;
    if (!ds->borrowed) {
        if (!ds->x_borrowed)
            tr_big_free(ds->X);
        tr_big_free(ds->y);
        tr_big_free(ds->origin);
        tr_big_free((void *)ds->index);
        free(ds->class_names);
        free(ds->column_names);
    }
    ds->class_names = ds->column_names = NULL;
    ds->X = ds->y = NULL;
    ds->origin = NULL;
    ds->index = NULL;
    ds->rows = 0;
}

const float *tr_dataset_stored_row(const tr_dataset *ds, int64_t r)
{
    return ds->X + (size_t)(ds->index ? ds->index[r] : r) * (size_t)ds->cols;
}

void tr_scale_row(float *out, const float *x, const float *center, const float *scale, int64_t F)
{
    for (int64_t c = 0; c < F; c++)
        out[c] = (x[c] - center[c]) / scale[c];
}

/* Row r as the model uses it, into out. */
static void read_row(const tr_dataset *ds, int64_t r, float *out)
{
    const float *x = tr_dataset_stored_row(ds, r);
    if (ds->center)
        tr_scale_row(out, x, ds->center, ds->scale, ds->cols);
    else
        memcpy(out, x, (size_t)ds->cols * sizeof(float));
}

void tr_dataset_gather(const tr_dataset *ds, const int64_t *rows, int64_t n, float *x, float *y)
{
    const size_t F = (size_t)ds->cols, T = (size_t)ds->tcols;
    for (int64_t i = 0; i < n; i++) {
        read_row(ds, rows[i], x + (size_t)i * F);
        memcpy(y + (size_t)i * T, ds->y + (size_t)rows[i] * T, T * sizeof(float));
    }
}

void tr_dataset_will_need(const tr_dataset *ds, const int64_t *rows, int64_t n)
{
    if (!ds->x_borrowed || n <= 0)
        return;
    const size_t row_bytes = (size_t)ds->cols * sizeof(float), near = 4096;
    const char *run = NULL, *end = NULL; /* the run of bytes asked for next */
    for (int64_t i = 0; i < n; i++) {
        const char *r = (const char *)tr_dataset_stored_row(ds, rows[i]);
        if (run && r >= run && r <= end + near) { /* ascending and close: one request */
            if (r + row_bytes > end)
                end = r + row_bytes;
            continue;
        }
        if (run)
            tr_map_will_need(run, (size_t)(end - run));
        run = r;
        end = r + row_bytes;
    }
    tr_map_will_need(run, (size_t)(end - run));
}

const float *tr_dataset_block(const tr_dataset *ds, int64_t begin, int64_t n, float *buf)
{
    if (!ds->index && !ds->center)
        return ds->X + (size_t)begin * (size_t)ds->cols;
    for (int64_t i = 0; i < n; i++)
        read_row(ds, begin + i, buf + (size_t)i * (size_t)ds->cols);
    return buf;
}

void tr_dataset_where(const tr_dataset *ds, int64_t r, char *buf, size_t len)
{
    const char *src = ds->source[0] ? ds->source : "data";
    const long long o = ds->origin ? (long long)ds->origin[r] : (long long)r;
    if (ds->origin_is_line)
        snprintf(buf, len, "%s:%lld", src, o);
    else
        snprintf(buf, len, "%s: row %lld (0-based)", src, o);
}

int tr_dataset_take(tr_dataset *dst, const tr_dataset *src, const int64_t *rows, int64_t n, tr_err *err)
{
    const bool view = src->x_borrowed || src->index;
    int64_t *index = NULL;
    int rc = view ? tr_dataset_view(dst, src->X, n, src->cols, src->tcols, err)
                  : tr_dataset_alloc(dst, n, src->cols, src->tcols, err);
    if (!rc && view && !(index = tr_big_alloc((size_t)n * sizeof *index + 1))) {
        tr_dataset_free(dst);
        rc = tr_fail(err, TR_ENOMEM, "out of memory");
    }
    if (rc)
        return rc;
    for (int64_t i = 0; i < n; i++) {
        if (view)
            index[i] = src->index ? src->index[rows[i]] : rows[i];
        else
            memcpy(dst->X + i * src->cols, src->X + rows[i] * src->cols, (size_t)src->cols * sizeof(float));
        memcpy(dst->y + i * src->tcols, src->y + rows[i] * src->tcols, (size_t)src->tcols * sizeof(float));
        dst->origin[i] = src->origin[rows[i]];
    }
    if ((src->class_names && !(dst->class_names = strdup(src->class_names))) ||
        (src->column_names && !(dst->column_names = strdup(src->column_names)))) {
        tr_dataset_free(dst);
        return tr_fail(err, TR_ENOMEM, "out of memory");
    }
    dst->index = index;
    dst->center = src->center;
    dst->scale = src->scale;
    dst->origin_is_line = src->origin_is_line;
    memcpy(dst->source, src->source, sizeof dst->source);
    return 0;
}

/* Whether n floats are all finite: the exponent bits of each, or-ed together branch-free, so
 * that the scan of a large file runs at memory speed (a mapped file is checked row by row). */
TR_VECTOR_KERNEL static bool all_finite(const float *x, int64_t n)
{
    uint32_t bad = 0;
    for (int64_t c = 0; c < n; c++) {
        uint32_t bits;
        memcpy(&bits, x + c, sizeof bits);
        bad |= (uint32_t)((bits & 0x7f800000u) == 0x7f800000u);
    }
    return !bad;
}

int tr_dataset_check_finite(tr_dataset *ds, bool drop, const char *what, int64_t *dropped, tr_err *err)
{
    int64_t kept = 0;
    *dropped = 0;
    for (int64_t r = 0; r < ds->rows; r++) {
        int64_t bad = -1;
        bool in_target = false;
        const float *x = tr_dataset_stored_row(ds, r);
        if (!all_finite(x, ds->cols)) /* which one, for the message */
            for (int64_t c = 0; c < ds->cols && bad < 0; c++)
                if (!isfinite(x[c]))
                    bad = c;
        for (int64_t c = 0; c < ds->tcols && bad < 0; c++)
            if (!isfinite(ds->y[r * ds->tcols + c])) {
                bad = c;
                in_target = true;
            }
        if (bad >= 0 && !drop) {
            const float v = in_target ? ds->y[r * ds->tcols + bad] : x[bad];
            char where[TR_PATH_MAX + 96];
            if (ds->source[0])
                tr_dataset_where(ds, r, where, sizeof where);
            else
                snprintf(where, sizeof where, "%s: row %lld (0-based)", what, (long long)ds->origin[r]);
            return tr_fail(err, TR_EDATA,
                           "%s: a non-finite %s (%g in %s column %lld); set [data] on_nonfinite = drop to skip such "
                           "rows",
                           where, in_target ? "target" : "feature", (double)v, in_target ? "target" : "feature",
                           (long long)bad);
        }
        if (bad >= 0) {
            (*dropped)++;
            continue;
        }
        if (kept != r) {
            if (ds->x_borrowed && !ds->index) { /* a view drops rows from its index */
                int64_t *index = tr_big_alloc((size_t)ds->rows * sizeof *index + 1);
                if (!index)
                    return tr_fail(err, TR_ENOMEM, "out of memory");
                for (int64_t i = 0; i < ds->rows; i++)
                    index[i] = i;
                ds->index = index;
            }
            if (ds->x_borrowed)
                ((int64_t *)ds->index)[kept] = ds->index[r];
            else
                memmove(ds->X + kept * ds->cols, ds->X + r * ds->cols, (size_t)ds->cols * sizeof(float));
            memmove(ds->y + kept * ds->tcols, ds->y + r * ds->tcols, (size_t)ds->tcols * sizeof(float));
            ds->origin[kept] = ds->origin[r];
        }
        kept++;
    }
    ds->rows = kept;
    if (kept == 0)
        return tr_fail(err, TR_EDATA, "%s: no rows%s", ds->source[0] ? ds->source : what,
                       *dropped ? " left after dropping non-finite ones" : "");
    return 0;
}
