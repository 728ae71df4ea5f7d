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

/* One file being read: the text (split into lines in place as it is read), the column
 * layout the first line fixed, and which columns are features and targets. */
typedef struct csv_reader {
    const char *path;
    const tr_csv_options *o;
    char *text, *p;      /* the whole file; the next unread line */
    int64_t n_lines, line_no;
    char *first;         /* the first non-blank line (header or first row) */
    int64_t first_line_no;
    char delim;
    int ncols, nf, nt;
    char **names, **cells; /* (MAX_COLS) */
    int *feat, *targ;      /* (MAX_COLS) column indices */
    char *header_copy;     /* names[] point into it */
    /* a target column of words (stable/unstable, species names) holds class names: each
     * row's word is kept and mapped to its index among the sorted names once all are read */
    const char **words;
    bool text_labels;
} csv_reader;

/* The next line (NUL-terminated in place), or NULL at the end. */
static char *next_line(csv_reader *r)
{
    if (!*r->p)
        return NULL;
    char *nl = strchr(r->p, '\n');
    if (nl)
        *nl = '\0';
    char *line = r->p;
    r->p = nl ? nl + 1 : r->p + strlen(r->p);
    r->line_no++;
    return line;
}

/* The first non-blank line fixes the delimiter (unless set) and the column count; with a
 * header it names every column once and is not a row of numbers (which header = true would
 * drop without a word). */
static int read_first_line(csv_reader *r, tr_err *err)
{
    const tr_csv_options *o = r->o;
    if (r->p[0] == '\xEF' && r->p[1] == '\xBB' && r->p[2] == '\xBF')
        r->p += 3; /* a UTF-8 byte order mark (spreadsheets write one) is not part of the first name */
    for (char *line; !r->first && (line = next_line(r));)
        if (!blank(line))
            r->first = line;
    if (!r->first)
        return tr_fail(err, TR_EDATA, "%s: empty file (no rows)", r->path);
    r->first_line_no = r->line_no;
    r->delim = o->delimiter ? o->delimiter : detect_delimiter(r->first);
    if (!(r->header_copy = strdup(r->first)))
        return tr_fail(err, TR_ENOMEM, "out of memory");
    r->ncols = split(r->header_copy, r->delim, r->names);
    if (r->ncols < 0)
        return tr_fail(err, TR_EDATA, "%s:%lld: more than %d columns", r->path, (long long)r->line_no, MAX_COLS);
    if (!o->header) {
        for (int c = 0; c < r->ncols; c++)
            r->names[c] = ""; /* unnamed */
        return 0;
    }
    bool all_numbers = true;
    for (int c = 0; c < r->ncols; c++) {
        all_numbers = all_numbers && is_number(r->names[c]);
        if (!r->names[c][0])
            return tr_fail(err, TR_EDATA, "%s:%lld: column %d has no name (an empty field in the header line)",
                           r->path, (long long)r->line_no, c + 1);
        for (int d = 0; d < c; d++)
            if (!strcmp(r->names[c], r->names[d]))
                return tr_fail(err, TR_EDATA, "%s:%lld: columns %d and %d are both named '%s'", r->path,
                               (long long)r->line_no, d + 1, c + 1, r->names[c]);
    }
    if (all_numbers)
        return tr_fail(err, TR_EDATA, "%s:%lld: the first line holds numbers, not column names, but [data] header = "
                                      "true would read it as the header: set header = false, or add a header line",
                       r->path, (long long)r->line_no);
    return 0;
}

/* Which columns are targets ([data] target, else the last; none for prediction input, which
 * leaves the training target out when it has it) and which are features ([data] columns,
 * else the rest). */
static int choose_columns(csv_reader *r, tr_err *err)
{
    const tr_csv_options *o = r->o;
    int rc = 0;
    if (o->no_target) {
        if (o->target && *o->target && o->header && !(o->columns && *o->columns)) {
            tr_err ignore;
            if (resolve_columns(o->target, r->names, r->ncols, true, r->targ, &r->nt, r->path, "[data] target",
                                &ignore))
                r->nt = 0;
        }
    } else if (o->target && *o->target) {
        rc = resolve_columns(o->target, r->names, r->ncols, o->header, r->targ, &r->nt, r->path, "[data] target", err);
    } else {
        r->targ[0] = r->ncols - 1;
        r->nt = 1;
    }
    if (rc)
        return rc;
    const int n_left_out = r->nt; /* prediction: columns dropped, not targets */
    if (o->no_target)
        r->nt = 0;
    if (o->columns && *o->columns) {
        rc = resolve_columns(o->columns, r->names, r->ncols, o->header, r->feat, &r->nf, r->path,
                             o->columns_key ? o->columns_key : "[data] columns", err);
        if (rc)
            return rc;
    } else {
        for (int c = 0; c < r->ncols; c++) {
            bool is_t = false;
            for (int k = 0; k < (o->no_target ? n_left_out : r->nt); k++)
                is_t |= r->targ[k] == c;
            if (!is_t)
                r->feat[r->nf++] = c;
        }
    }
    if (r->nf == 0)
        return tr_fail(err, TR_EDATA, "%s: no feature columns (the file has %d column%s, all used as targets)",
                       r->path, r->ncols, r->ncols == 1 ? "" : "s");
    for (int i = 0; i < r->nf; i++)
        for (int k = 0; k < r->nt; k++)
            if (r->feat[i] == r->targ[k])
                return tr_fail(err, TR_EDATA, "%s: column %d is both a feature ([data] columns) and a target",
                               r->path, r->feat[i]);
    return 0;
}

/* One cell of line `line_no`, column `col`, as a float; *finite false for NaN or infinity
 * (an error unless [data] on_nonfinite = drop). */
static int read_cell(const csv_reader *r, const char *cell, int col, int64_t line_no, float *out, bool *finite,
                     tr_err *err)
{
    const tr_csv_options *o = r->o;
    const char *open = o->header ? " ('" : "", *name = o->header ? r->names[col] : "", *close = o->header ? "')" : "";
    char *end;
    errno = 0;
    const double v = strtod(cell, &end);
    if (end == cell || *end)
        return tr_fail(err, TR_EDATA, "%s:%lld: column %d%s%s%s: '%s' is not a number", r->path, (long long)line_no,
                       col + 1, open, name, close, cell);
    const bool overflow = errno == ERANGE ? isinf(v) : isfinite(v) && fabs(v) > 3.4028234663852886e38;
    if (overflow)
        return tr_fail(err, TR_EDATA, "%s:%lld: column %d%s%s%s: %s is too large for a 32-bit float (|x| <= 3.4e38)",
                       r->path, (long long)line_no, col + 1, open, name, close, cell);
    if (!isfinite(v)) {
        if (!o->drop_nonfinite)
            return tr_fail(err, TR_EDATA,
                           "%s:%lld: column %d%s%s%s: %s is not a finite float (set [data] on_nonfinite = drop to "
                           "skip such rows)",
                           r->path, (long long)line_no, col + 1, open, name, close, cell);
        *finite = false;
    }
    *out = (float)v;
    return 0;
}

/* Every data row into ds (the first line too without a header); rows with a non-finite
 * value are counted in *dropped when they may be dropped. Returns the rows kept in *rows. */
static int read_rows(csv_reader *r, tr_dataset *ds, int64_t *rows_out, int64_t *dropped, tr_err *err)
{
    const int nf = r->nf, nt = r->nt;
    int64_t rows = 0;
    char *line = r->o->header ? NULL : r->first;
    int64_t cur_line = r->first_line_no;
    for (;; line = NULL) {
        if (!line) {
            if (!(line = next_line(r)))
                break;
            cur_line = r->line_no;
        }
        if (blank(line))
            continue;
        const int n = split(line, r->delim, r->cells);
        if (n != r->ncols)
            return tr_fail(err, TR_EDATA, "%s:%lld: %d column%s, expected %d like line %lld (ragged row)", r->path,
                           (long long)cur_line, n, n == 1 ? "" : "s", r->ncols, (long long)r->first_line_no);
        if (!r->text_labels && rows == 0 && nt == 1 && !r->o->no_target && !is_number(r->cells[r->targ[0]])) {
            r->text_labels = true;
            if (!(r->words = malloc((size_t)r->n_lines * sizeof *r->words + 1)))
                return tr_fail(err, TR_ENOMEM, "out of memory");
        }
        bool finite = true;
        for (int i = 0; i < nf; i++) {
            const int rc = read_cell(r, r->cells[r->feat[i]], r->feat[i], cur_line, ds->X + rows * nf + i, &finite, err);
            if (rc)
                return rc;
        }
        if (r->text_labels)
            r->words[rows] = r->cells[r->targ[0]]; /* points into text, kept until the end */
        else
            for (int k = 0; k < nt; k++) {
                const int rc = read_cell(r, r->cells[r->targ[k]], r->targ[k], cur_line, ds->y + rows * nt + k, &finite,
                                         err);
                if (rc)
                    return rc;
            }
        if (finite)
            ds->origin[rows++] = cur_line;
        else
            (*dropped)++;
    }
    *rows_out = rows;
    if (rows == 0)
        return tr_fail(err, TR_EDATA, "%s: no data rows%s", r->path, *dropped ? " left after dropping non-finite ones" : "");
    return 0;
}

/* The feature columns' names, "a, b, ...", for converted files. */
static int keep_column_names(tr_dataset *ds, const csv_reader *r, tr_err *err)
{
    size_t bytes = 1;
    for (int i = 0; i < r->nf; i++)
        bytes += strlen(r->names[r->feat[i]]) + 2;
    if (!(ds->column_names = malloc(bytes)))
        return tr_fail(err, TR_ENOMEM, "out of memory");
    size_t used = 0;
    ds->column_names[0] = '\0';
    for (int i = 0; i < r->nf; i++)
        used += (size_t)snprintf(ds->column_names + used, bytes - used, "%s%s", i ? ", " : "", r->names[r->feat[i]]);
    return 0;
}

int tr_csv_read(tr_dataset *ds, const char *path, const tr_csv_options *o, int64_t *dropped, tr_err *err)
{
    memset(ds, 0, sizeof *ds);
    *dropped = 0;
    csv_reader r = {.path = path, .o = o};
    size_t len;
    r.text = read_all(path, &len, err);
    if (!r.text)
        return err ? err->code : TR_EDATA;
    r.p = r.text;
    for (size_t i = 0; i < len; i++)
        r.n_lines += r.text[i] == '\n';
    r.n_lines += len > 0 && r.text[len - 1] != '\n';
    r.cells = malloc(MAX_COLS * sizeof *r.cells);
    r.names = malloc(MAX_COLS * sizeof *r.names);
    r.feat = malloc(MAX_COLS * sizeof *r.feat);
    r.targ = malloc(MAX_COLS * sizeof *r.targ);
    int rc = r.cells && r.names && r.feat && r.targ ? 0 : tr_fail(err, TR_ENOMEM, "out of memory");
    if (!rc)
        rc = read_first_line(&r, err);
    if (!rc)
        rc = choose_columns(&r, err);
    if (!rc)
        rc = tr_dataset_alloc(ds, r.n_lines, r.nf, r.nt, err);
    int64_t rows = 0;
    if (!rc)
        rc = read_rows(&r, ds, &rows, dropped, err);
    if (!rc && r.text_labels)
        rc = map_words(ds, r.words, rows, path, o->header ? r.names[r.targ[0]] : NULL, err);
    if (!rc && o->header)
        rc = keep_column_names(ds, &r, err);
    if (!rc) {
        ds->rows = rows;
        ds->origin_is_line = true;
        snprintf(ds->source, sizeof ds->source, "%s", path);
    }
    free(r.words);
    free(r.text);
    free(r.cells);
    free(r.names);
    free(r.feat);
    free(r.targ);
    free(r.header_copy);
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
