/*
 * csv.c: delimited numeric tables. The file is read whole, lines are split in place, and
 * every cell is checked, so a bad file fails with its line and column and never half-loads.
 */
#include "trainer/csv.h"

#include "trainer/files.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_COLS 65536

int tr_csv_delimiter(const char *name)
{
    if (!strcmp(name, "auto"))
        return 0;
    if (!strcmp(name, "comma"))
        return ',';
    if (!strcmp(name, "semicolon"))
        return ';';
    if (!strcmp(name, "tab") || !strcmp(name, "\\t"))
        return '\t';
    if (!strcmp(name, "space"))
        return ' ';
    if (strlen(name) == 1 && !isalnum((unsigned char)name[0]) && name[0] != '"' && name[0] != '.' &&
        name[0] != '-' && name[0] != '+')
        return name[0];
    return -1;
}

static char *read_all(const char *path, size_t *len, tr_err *err)
{
    FILE *f = tr_input_fopen(path, NULL, TR_EDATA, err);
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (n < cap - 1) {
            if (ferror(f)) {
                free(buf);
                buf = NULL;
                tr_fail(err, TR_EDATA, "%s: read error: %s", path, strerror(errno));
                fclose(f);
                return NULL;
            }
            break;
        }
        cap *= 2;
        char *nb = realloc(buf, cap);
        if (!nb) {
            free(buf);
            buf = NULL;
        }
        buf = nb;
    }
    fclose(f);
    if (!buf) {
        tr_fail(err, TR_ENOMEM, "%s: file too large for memory", path);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        s[--n] = '\0';
    if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
        s[n - 1] = '\0';
        s++;
    }
    return s;
}

/* Splits a line in place at the delimiter; returns the number of cells (or -1 if too many). */
static int split(char *line, char delim, char **cells)
{
    int n = 0;
    char *start = line;
    for (char *p = line;; p++) {
        if (*p == delim || *p == '\0') {
            const bool end = *p == '\0';
            *p = '\0';
            if (n == MAX_COLS)
                return -1;
            cells[n++] = trim(start);
            if (end)
                break;
            start = p + 1;
        }
    }
    return n;
}

static bool blank(const char *s)
{
    for (; *s; s++)
        if (!isspace((unsigned char)*s))
            return false;
    return true;
}

static char detect_delimiter(const char *line)
{
    const char cands[] = {',', ';', '\t'};
    char best = ',';
    size_t best_n = 0;
    for (size_t k = 0; k < sizeof cands; k++) {
        size_t n = 0;
        for (const char *p = line; *p && *p != '\n'; p++)
            n += *p == cands[k];
        if (n > best_n) {
            best_n = n;
            best = cands[k];
        }
    }
    if (best_n == 0) { /* one column, or space separated */
        for (const char *p = line; *p && *p != '\n'; p++)
            if (*p == ' ')
                return ' ';
    }
    return best;
}

/* Resolves a comma-separated list of column names/indices into indices. */
static int resolve_columns(const char *spec, char **names, int ncols, bool header, int *out, int *nout,
                           const char *path, const char *key, tr_err *err)
{
    char *buf = strdup(spec); /* a list of hundreds of names is never cut */
    if (!buf)
        return tr_fail(err, TR_ENOMEM, "out of memory");
    *nout = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        tok = trim(tok);
        int idx = -1;
        if (header)
            for (int c = 0; c < ncols; c++)
                if (!strcmp(names[c], tok)) {
                    idx = c;
                    break;
                }
        if (idx < 0) {
            char *end;
            long v = strtol(tok, &end, 10);
            if (*tok && !*end && v >= 0 && v < ncols)
                idx = (int)v;
        }
        if (idx < 0) {
            char cols[1024] = "";
            if (header) {
                size_t used = 0;
                for (int c = 0; c < ncols && used < sizeof cols - 64; c++)
                    used += (size_t)snprintf(cols + used, sizeof cols - used, "%s%s", c ? ", " : "", names[c]);
            }
            const int rc = tr_fail(err, TR_EDATA, "%s: %s: no column '%s' (the file has %d columns%s%s%s)", path, key,
                                   tok, ncols, header ? ": " : "", cols,
                                   header ? "" : "; without a header give 0-based indices");
            free(buf);
            return rc;
        }
        if (*nout == MAX_COLS) {
            free(buf);
            return tr_fail(err, TR_EDATA, "%s: %s: more than %d columns", path, key, MAX_COLS);
        }
        out[(*nout)++] = idx;
    }
    free(buf);
    return 0;
}

static bool is_number(const char *cell)
{
    char *end;
    strtod(cell, &end);
    return end != cell && !*end;
}

static int compare_words(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Text labels: the distinct words sorted (scikit-learn's LabelEncoder: by code point), each
 * row's label its word's index, the names kept in ds->class_names ("a, b, c"). */
static int map_words(tr_dataset *ds, const char **words, int64_t rows, const char *path, const char *column,
                     tr_err *err)
{
    const char **sorted = malloc((size_t)rows * sizeof *sorted);
    if (!sorted)
        return tr_fail(err, TR_ENOMEM, "out of memory");
    memcpy(sorted, words, (size_t)rows * sizeof *sorted);
    qsort(sorted, (size_t)rows, sizeof *sorted, compare_words);
    int64_t k = 0;
    size_t bytes = 1;
    for (int64_t i = 0; i < rows; i++)
        if (i == 0 || strcmp(sorted[i], sorted[k - 1])) {
            sorted[k++] = sorted[i];
            bytes += strlen(sorted[i]) + 2;
        }
    int rc = 0;
    for (int64_t i = 0; !rc && i < k; i++)
        if (!sorted[i][0] || strchr(sorted[i], ','))
            rc = tr_fail(err, TR_EDATA, "%s: target column%s%s: the class name '%s' is empty or holds a comma", path,
                         column ? " " : "", column ? column : "", sorted[i]);
    if (!rc && k > 1000000)
        rc = tr_fail(err, TR_EDATA, "%s: target column%s%s holds %lld distinct words: not class names", path,
                     column ? " " : "", column ? column : "", (long long)k);
    if (!rc && !(ds->class_names = malloc(bytes)))
        rc = tr_fail(err, TR_ENOMEM, "out of memory");
    if (!rc) {
        size_t used = 0;
        for (int64_t i = 0; i < k; i++)
            used += (size_t)snprintf(ds->class_names + used, bytes - used, "%s%s", i ? ", " : "", sorted[i]);
        for (int64_t r = 0; r < rows; r++) {
            const char **hit = bsearch(&words[r], sorted, (size_t)k, sizeof *sorted, compare_words);
            ds->y[r] = (float)(hit - sorted);
        }
    }
    free(sorted);
    return rc;
}

int tr_csv_read(tr_dataset *ds, const char *path, const tr_csv_options *o, int64_t *dropped, tr_err *err)
{
    memset(ds, 0, sizeof *ds);
    *dropped = 0;
    size_t len;
    char *text = read_all(path, &len, err);
    if (!text)
        return err ? err->code : TR_EDATA;
    int rc = 0;
    char **cells = malloc(MAX_COLS * sizeof *cells);
    char **names = malloc(MAX_COLS * sizeof *names);
    int *feat = malloc(MAX_COLS * sizeof *feat), *targ = malloc(MAX_COLS * sizeof *targ);
    char *header_copy = NULL;
    /* a target column of words (stable/unstable, species names) holds class names: each row's
     * word is kept and mapped to its index among the sorted names once all are read */
    const char **words = NULL;
    bool text_labels = false;
    if (!cells || !names || !feat || !targ) {
        rc = tr_fail(err, TR_ENOMEM, "out of memory");
        goto done;
    }

    /* line starts */
    int64_t n_lines = 0;
    for (size_t i = 0; i < len; i++)
        n_lines += text[i] == '\n';
    n_lines += len > 0 && text[len - 1] != '\n';

    char *p = text;
    if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3))
        p += 3; /* a UTF-8 byte order mark (spreadsheets write one) is not part of the first name */
    int64_t line_no = 0;
    /* first non-blank line: header or first row; fixes the column count */
    char *first = NULL;
    while (*p) {
        char *nl = strchr(p, '\n');
        if (nl)
            *nl = '\0';
        line_no++;
        char *line = p;
        p = nl ? nl + 1 : p + strlen(p);
        if (!blank(line)) {
            first = line;
            break;
        }
    }
    if (!first) {
        rc = tr_fail(err, TR_EDATA, "%s: empty file (no rows)", path);
        goto done;
    }
    const char delim = o->delimiter ? o->delimiter : detect_delimiter(first);
    header_copy = strdup(first);
    const int64_t first_line_no = line_no;
    int ncols = split(header_copy, delim, names);
    if (ncols < 0) {
        rc = tr_fail(err, TR_EDATA, "%s:%lld: more than %d columns", path, (long long)line_no, MAX_COLS);
        goto done;
    }
    if (!o->header)
        for (int c = 0; c < ncols; c++)
            names[c] = ""; /* unnamed */
    /* a header names every column once, and is not a row of numbers (which header = true would
     * drop without a word) */
    bool all_numbers = true;
    for (int c = 0; o->header && !rc && c < ncols; c++) {
        all_numbers = all_numbers && is_number(names[c]);
        if (!names[c][0])
            rc = tr_fail(err, TR_EDATA, "%s:%lld: column %d has no name (an empty field in the header line)", path,
                         (long long)line_no, c + 1);
        for (int d = 0; !rc && d < c; d++)
            if (!strcmp(names[c], names[d]))
                rc = tr_fail(err, TR_EDATA, "%s:%lld: columns %d and %d are both named '%s'", path,
                             (long long)line_no, d + 1, c + 1, names[c]);
    }
    if (o->header && !rc && all_numbers)
        rc = tr_fail(err, TR_EDATA, "%s:%lld: the first line holds numbers, not column names, but [data] header = "
                                    "true would read it as the header: set header = false, or add a header line",
                     path, (long long)line_no);
    if (rc)
        goto done;

    int nt = 0, nf = 0;
    if (o->no_target) {
        /* prediction input: leave out the training target column if the file has it */
        if (o->target && *o->target && o->header && !(o->columns && *o->columns)) {
            tr_err ignore;
            if (resolve_columns(o->target, names, ncols, true, targ, &nt, path, "[data] target", &ignore))
                nt = 0;
        }
    } else if (o->target && *o->target) {
        rc = resolve_columns(o->target, names, ncols, o->header, targ, &nt, path, "[data] target", err);
    } else {
        targ[0] = ncols - 1;
        nt = 1;
    }
    if (rc)
        goto done;
    const int n_left_out = nt; /* prediction: columns dropped, not targets */
    if (o->no_target)
        nt = 0;
    if (o->columns && *o->columns) {
        rc = resolve_columns(o->columns, names, ncols, o->header, feat, &nf, path,
                             o->columns_key ? o->columns_key : "[data] columns", err);
        if (rc)
            goto done;
    } else {
        for (int c = 0; c < ncols; c++) {
            bool is_t = false;
            for (int k = 0; k < (o->no_target ? n_left_out : nt); k++)
                is_t |= targ[k] == c;
            if (!is_t)
                feat[nf++] = c;
        }
    }
    if (nf == 0) {
        rc = tr_fail(err, TR_EDATA, "%s: no feature columns (the file has %d column%s, all used as targets)", path,
                     ncols, ncols == 1 ? "" : "s");
        goto done;
    }
    for (int i = 0; i < nf; i++)
        for (int k = 0; k < nt; k++)
            if (feat[i] == targ[k]) {
                rc = tr_fail(err, TR_EDATA, "%s: column %d is both a feature ([data] columns) and a target", path,
                             feat[i]);
                goto done;
            }

    rc = tr_dataset_alloc(ds, n_lines, nf, nt, err);
    if (rc)
        goto done;

    int64_t rows = 0;
    /* rows: the first line too when there is no header */
    char *line = o->header ? NULL : first;
    int64_t cur_line = o->header ? line_no : first_line_no;
    for (;;) {
        if (!line) {
            if (!*p)
                break;
            char *nl = strchr(p, '\n');
            if (nl)
                *nl = '\0';
            line = p;
            p = nl ? nl + 1 : p + strlen(p);
            cur_line = ++line_no;
        }
        if (blank(line)) {
            line = NULL;
            continue;
        }
        int n = split(line, delim, cells);
        if (n != ncols) {
            rc = tr_fail(err, TR_EDATA, "%s:%lld: %d column%s, expected %d like line %lld (ragged row)", path,
                         (long long)cur_line, n, n == 1 ? "" : "s", ncols, (long long)first_line_no);
            goto done;
        }
        bool finite = true;
        if (!text_labels && rows == 0 && nt == 1 && !o->no_target && !is_number(cells[targ[0]])) {
            text_labels = true;
            words = malloc((size_t)n_lines * sizeof *words + 1);
            if (!words) {
                rc = tr_fail(err, TR_ENOMEM, "out of memory");
                goto done;
            }
        }
        for (int pass = 0; pass < 2; pass++) {
            const int *idx = pass ? targ : feat;
            const int cnt = pass ? nt : nf;
            float *dst = pass ? ds->y + rows * nt : ds->X + rows * nf;
            if (pass && text_labels) {
                words[rows] = cells[idx[0]]; /* points into text, kept until the end */
                continue;
            }
            for (int i = 0; i < cnt; i++) {
                const char *cell = cells[idx[i]];
                char *end;
                errno = 0;
                double v = strtod(cell, &end);
                if (end == cell || *end) {
                    rc = tr_fail(err, TR_EDATA, "%s:%lld: column %d%s%s%s: '%s' is not a number", path,
                                 (long long)cur_line, idx[i] + 1, o->header ? " ('" : "",
                                 o->header ? names[idx[i]] : "", o->header ? "')" : "", cell);
                    goto done;
                }
                const bool overflow = errno == ERANGE ? isinf(v) : isfinite(v) && fabs(v) > 3.4028234663852886e38;
                if (overflow) {
                    rc = tr_fail(err, TR_EDATA, "%s:%lld: column %d%s%s%s: %s is too large for a 32-bit float "
                                 "(|x| <= 3.4e38)", path, (long long)cur_line, idx[i] + 1, o->header ? " ('" : "",
                                 o->header ? names[idx[i]] : "", o->header ? "')" : "", cell);
                    goto done;
                }
                if (!isfinite(v)) {
                    if (!o->drop_nonfinite) {
                        rc = tr_fail(err, TR_EDATA,
                                     "%s:%lld: column %d%s%s%s: %s is not a finite float (set [data] on_nonfinite = "
                                     "drop to skip such rows)",
                                     path, (long long)cur_line, idx[i] + 1, o->header ? " ('" : "",
                                     o->header ? names[idx[i]] : "", o->header ? "')" : "", cell);
                        goto done;
                    }
                    finite = false;
                }
                dst[i] = (float)v;
            }
        }
        if (finite)
            ds->origin[rows++] = cur_line;
        else
            (*dropped)++;
        line = NULL;
    }
    if (rows == 0) {
        rc = tr_fail(err, TR_EDATA, "%s: no data rows%s", path, *dropped ? " left after dropping non-finite ones" : "");
        goto done;
    }
    if (text_labels) {
        rc = map_words(ds, words, rows, path, o->header ? names[targ[0]] : NULL, err);
        if (rc)
            goto done;
    }
    if (o->header) { /* the feature columns' names, for converted files */
        size_t bytes = 1;
        for (int i = 0; i < nf; i++)
            bytes += strlen(names[feat[i]]) + 2;
        if (!(ds->column_names = malloc(bytes))) {
            rc = tr_fail(err, TR_ENOMEM, "out of memory");
            goto done;
        }
        size_t used = 0;
        ds->column_names[0] = '\0';
        for (int i = 0; i < nf; i++)
            used += (size_t)snprintf(ds->column_names + used, bytes - used, "%s%s", i ? ", " : "", names[feat[i]]);
    }
    ds->rows = rows;
    ds->origin_is_line = true;
    snprintf(ds->source, sizeof ds->source, "%s", path);

done:
    free(words);
    free(text);
    free(cells);
    free(names);
    free(feat);
    free(targ);
    free(header_copy);
    if (rc)
        tr_dataset_free(ds);
    return rc;
}

int tr_csv_write(const tr_dataset *ds, FILE *f, const char *path, char delimiter, tr_err *err)
{
    for (int64_t c = 0; c < ds->cols; c++) {
        if (c)
            fputc(delimiter, f);
        fprintf(f, "x%lld", (long long)c);
    }
    for (int64_t c = 0; c < ds->tcols; c++) {
        fputc(delimiter, f);
        if (ds->tcols == 1)
            fputs("y", f);
        else
            fprintf(f, "y%lld", (long long)c);
    }
    fputc('\n', f);
    for (int64_t r = 0; r < ds->rows; r++) {
        for (int64_t c = 0; c < ds->cols; c++) {
            if (c)
                fputc(delimiter, f);
            fprintf(f, "%.9g", (double)ds->X[r * ds->cols + c]);
        }
        for (int64_t c = 0; c < ds->tcols; c++)
            fprintf(f, "%c%.9g", delimiter, (double)ds->y[r * ds->tcols + c]);
        fputc('\n', f);
    }
    /* a write that failed on the way (a full disk) leaves the stream's error flag */
    if (ferror(f) || fflush(f) != 0)
        return tr_fail(err, TR_EIO, "%s: write failed: %s", path, strerror(errno));
    return 0;
}
