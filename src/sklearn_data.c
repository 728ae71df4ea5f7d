/*
 * sklearn_data.c: reading the data sets of Debian's python3-sklearn package (see
 * sklearn_data.h) in scikit-learn's own file format.
 */
#include "trainer/sklearn_data.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

/* How a file lays out its rows. */
typedef enum layout {
    COUNTS_CLASSES, /* "rows,features,class names..." then rows of features and a class index */
    COUNTS_NAMES,   /* "rows,features,,," then a line of quoted column names, then rows */
    PLAIN_LABELED,  /* rows of features and a class index, no header */
    SPLIT_FILES,    /* whitespace-separated features in one file, the targets in another */
} layout;

typedef struct set_desc {
    const char *name, *file, *target_file;
    layout layout;
    int features;
    const char *feature_names; /* ", "-separated, or NULL: from the file (or generated) */
    const char *class_names;   /* NULL: from the file (or the digits 0..9: numbers) */
    bool classification;
} set_desc;

static const set_desc sets[] = {
    {"iris", "iris.csv", NULL, COUNTS_CLASSES, 4,
     "sepal length (cm), sepal width (cm), petal length (cm), petal width (cm)", NULL, true},
    {"wine", "wine_data.csv", NULL, COUNTS_CLASSES, 13,
     "alcohol, malic_acid, ash, alcalinity_of_ash, magnesium, total_phenols, flavanoids, nonflavanoid_phenols, "
     "proanthocyanins, color_intensity, hue, od280/od315_of_diluted_wines, proline",
     NULL, true},
    {"breast_cancer", "breast_cancer.csv", NULL, COUNTS_CLASSES, 30,
     "mean radius, mean texture, mean perimeter, mean area, mean smoothness, mean compactness, mean concavity, "
     "mean concave points, mean symmetry, mean fractal dimension, radius error, texture error, perimeter error, "
     "area error, smoothness error, compactness error, concavity error, concave points error, symmetry error, "
     "fractal dimension error, worst radius, worst texture, worst perimeter, worst area, worst smoothness, "
     "worst compactness, worst concavity, worst concave points, worst symmetry, worst fractal dimension",
     NULL, true},
    {"digits", "digits.csv.gz", NULL, PLAIN_LABELED, 64, NULL, NULL, true},
    {"boston", "boston_house_prices.csv", NULL, COUNTS_NAMES, 13, NULL, NULL, false},
    {"diabetes", "diabetes_data_raw.csv.gz", "diabetes_target.csv.gz", SPLIT_FILES, 10,
     "age, sex, bmi, bp, s1, s2, s3, s4, s5, s6", NULL, false},
};
enum { N_SETS = sizeof sets / sizeof sets[0] };

const char *const tr_sklearn_set_names[] = {"iris", "wine", "breast_cancer", "digits", "boston", "diabetes", NULL};

static const set_desc *find_set(const char *name)
{
    for (int i = 0; i < N_SETS; i++)
        if (!strcmp(sets[i].name, name))
            return &sets[i];
    return NULL;
}

bool tr_sklearn_is_classification(const char *name)
{
    const set_desc *s = find_set(name);
    return s && s->classification;
}

/* The whole file (gzip or not), NUL-terminated, or NULL with err set. */
static char *read_file(const char *path, const char *set, tr_err *err)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        tr_fail(err, TR_EDATA,
                "%s: %s (the data set '%s' comes from Debian's python3-sklearn package: apt-get install "
                "python3-sklearn, or set [data] builtin_dir to the folder that holds its files)",
                path, strerror(errno), set);
        return NULL;
    }
    gzFile f = gzopen(path, "rb");
    if (!f) {
        tr_fail(err, TR_EDATA, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            gzclose(f);
            tr_fail(err, TR_ENOMEM, "%s: out of memory", path);
            return NULL;
        }
        const int got = gzread(f, buf + n, (unsigned)(cap - n - 1));
        if (got < 0) {
            int zerr;
            tr_fail(err, TR_EDATA, "%s: read error: %s", path, gzerror(f, &zerr));
            free(buf);
            gzclose(f);
            return NULL;
        }
        n += (size_t)got;
        if (got == 0)
            break;
        if (n == cap - 1) {
            char *nb = realloc(buf, cap * 2);
            if (!nb)
                free(buf);
            buf = nb;
            cap *= 2;
        }
    }
    gzclose(f);
    buf[n] = '\0';
    return buf;
}

/* Splits a line (modified in place) at commas, or at runs of blanks when `blanks`; returns
 * the number of cells (at most max). */
static int split_cells(char *line, bool blanks, char **cells, int max)
{
    int n = 0;
    char *p = line;
    if (blanks) {
        while (n < max) {
            while (*p == ' ' || *p == '\t' || *p == '\r')
                p++;
            if (!*p)
                break;
            cells[n++] = p;
            while (*p && *p != ' ' && *p != '\t' && *p != '\r')
                p++;
            if (*p)
                *p++ = '\0';
        }
        return n;
    }
    while (n < max) {
        cells[n++] = p;
        char *c = strchr(p, ',');
        if (!c)
            break;
        *c = '\0';
        p = c + 1;
    }
    for (int i = 0; i < n; i++) { /* trim blanks, a carriage return and quotes */
        char *s = cells[i];
        while (*s == ' ' || *s == '"')
            s++;
        char *e = s + strlen(s);
        while (e > s && (e[-1] == ' ' || e[-1] == '\r' || e[-1] == '"'))
            *--e = '\0';
        cells[i] = s;
    }
    return n;
}

/* The next line of text (NUL-terminated in place), or NULL at the end; *line counts. */
static char *next_line(char **p, int64_t *line)
{
    if (!**p)
        return NULL;
    char *s = *p, *e = strchr(s, '\n');
    if (e) {
        *e = '\0';
        *p = e + 1;
    } else {
        *p = s + strlen(s);
    }
    (*line)++;
    return s;
}

static int parse_number(const char *cell, const char *path, int64_t line, int col, float *out, tr_err *err)
{
    char *end;
    const double v = strtod(cell, &end);
    if (end == cell || *end)
        return tr_fail(err, TR_EDATA, "%s:%lld: column %d: '%s' is not a number", path, (long long)line, col + 1, cell);
    *out = (float)v;
    return 0;
}

/* ", "-joined cells into a new string. */
static char *join_names(char **cells, int n)
{
    size_t bytes = 1;
    for (int i = 0; i < n; i++)
        bytes += strlen(cells[i]) + 2;
    char *s = malloc(bytes);
    if (!s)
        return NULL;
    size_t used = 0;
    s[0] = '\0';
    for (int i = 0; i < n; i++)
        used += (size_t)snprintf(s + used, bytes - used, "%s%s", i ? ", " : "", cells[i]);
    return s;
}

/* Counts the non-empty lines from p on. */
static int64_t count_rows(const char *p)
{
    int64_t n = 0;
    for (const char *s = p; *s;) {
        const char *e = strchr(s, '\n');
        const size_t len = e ? (size_t)(e - s) : strlen(s);
        n += len > 0 && !(len == 1 && s[0] == '\r');
        s = e ? e + 1 : s + len;
    }
    return n;
}

enum { MAX_CELLS = 128 };

/* The rows of one file from *p on: the F features (when `features`) and then the target (when
 * `target`) of each row, one row per line. */
static int read_rows(tr_dataset *ds, char *p, int64_t line, const char *path, bool blanks, bool features, bool target,
                     bool classes, int64_t n_classes, tr_err *err)
{
    char *cells[MAX_CELLS];
    const int F = (int)ds->cols, want = (features ? F : 0) + (target ? 1 : 0);
    int64_t r = 0;
    for (char *s; (s = next_line(&p, &line));) {
        if (!*s || !strcmp(s, "\r"))
            continue;
        if (r >= ds->rows)
            return tr_fail(err, TR_EDATA, "%s:%lld: more rows than the %lld expected", path, (long long)line,
                           (long long)ds->rows);
        const int n = split_cells(s, blanks, cells, MAX_CELLS);
        if (n != want)
            return tr_fail(err, TR_EDATA, "%s:%lld: %d columns, expected %d", path, (long long)line, n, want);
        for (int c = 0; features && c < F; c++)
            if (parse_number(cells[c], path, line, c, &ds->X[r * F + c], err))
                return err->code;
        if (target) {
            const int c = want - 1;
            if (parse_number(cells[c], path, line, c, &ds->y[r], err))
                return err->code;
            const float t = ds->y[r];
            if (classes && !(t >= 0.0f && t < (float)n_classes && t == (float)(int64_t)t))
                return tr_fail(err, TR_EDATA, "%s:%lld: class label '%s' is not one of 0..%lld", path,
                               (long long)line, cells[c], (long long)n_classes - 1);
        }
        if (features)
            ds->origin[r] = line;
        r++;
    }
    if (r != ds->rows)
        return tr_fail(err, TR_EDATA, "%s: %lld rows, expected %lld", path, (long long)r, (long long)ds->rows);
    return 0;
}

/* The first line "rows,features[,names...]": the counts checked against the set's. */
static int read_counts(char **p, int64_t *line, const char *path, const set_desc *s, int64_t *rows, char **cells,
                       int *n_cells, tr_err *err)
{
    char *first = next_line(p, line);
    *n_cells = first ? split_cells(first, false, cells, MAX_CELLS) : 0;
    char *end;
    *rows = *n_cells >= 2 ? strtoll(cells[0], &end, 10) : 0;
    if (*n_cells < 2 || *rows < 1 || atoi(cells[1]) != s->features)
        return tr_fail(err, TR_EDATA, "%s:1: expected 'rows,%d,...' (scikit-learn's header line)", path, s->features);
    return 0;
}

int tr_sklearn_read(tr_dataset *ds, const char *name, const char *dir, tr_err *err)
{
    memset(ds, 0, sizeof *ds);
    const set_desc *s = find_set(name);
    if (!s)
        return tr_fail(err, TR_ECONFIG, "unknown data set '%s'", name);
    char path[TR_PATH_MAX], tpath[TR_PATH_MAX] = "";
    snprintf(path, sizeof path, "%s/%s", dir, s->file);
    if (s->target_file)
        snprintf(tpath, sizeof tpath, "%s/%s", dir, s->target_file);
    char *text = read_file(path, name, err), *ttext = NULL;
    if (!text)
        return err->code;
    if (s->target_file && !(ttext = read_file(tpath, name, err))) {
        free(text);
        return err->code;
    }
    char *p = text, *cells[MAX_CELLS];
    int64_t line = 0, rows = 0, n_classes = 0;
    int n_cells = 0, rc = 0;
    char *names = NULL, *classes = NULL;
    switch (s->layout) {
    case COUNTS_CLASSES:
        rc = read_counts(&p, &line, path, s, &rows, cells, &n_cells, err);
        n_classes = n_cells - 2;
        if (!rc && n_classes < 2)
            rc = tr_fail(err, TR_EDATA, "%s:1: no class names after the counts", path);
        if (!rc && !(classes = join_names(cells + 2, n_cells - 2)))
            rc = tr_fail(err, TR_ENOMEM, "out of memory");
        break;
    case COUNTS_NAMES:
        rc = read_counts(&p, &line, path, s, &rows, cells, &n_cells, err);
        if (!rc) {
            char *second = next_line(&p, &line);
            n_cells = second ? split_cells(second, false, cells, MAX_CELLS) : 0;
            if (n_cells != s->features + 1)
                rc = tr_fail(err, TR_EDATA, "%s:2: expected %d column names", path, s->features + 1);
            else if (!(names = join_names(cells, s->features)))
                rc = tr_fail(err, TR_ENOMEM, "out of memory");
        }
        break;
    case PLAIN_LABELED:
        rows = count_rows(p);
        n_classes = 10;
        break;
    case SPLIT_FILES:
        rows = count_rows(p);
        break;
    }
    if (!rc)
        rc = tr_dataset_alloc(ds, rows, s->features, 1, err);
    if (!rc) {
        snprintf(ds->source, sizeof ds->source, "%s", path);
        ds->origin_is_line = true;
        rc = read_rows(ds, p, line, path, s->layout == SPLIT_FILES, true, !ttext, s->classification, n_classes, err);
    }
    if (!rc && ttext) /* the targets, one per line, in the same order */
        rc = read_rows(ds, ttext, 0, tpath, true, false, true, false, 0, err);
    if (!rc && s->layout == PLAIN_LABELED) { /* pixel_<row>_<column> as scikit-learn names them */
        if (!(names = malloc((size_t)s->features * 12 + 1)))
            rc = tr_fail(err, TR_ENOMEM, "out of memory");
        size_t used = 0;
        for (int k = 0; !rc && k < s->features; k++)
            used += (size_t)sprintf(names + used, "%spixel_%d_%d", k ? ", " : "", k / 8, k % 8);
    }
    if (!rc && !names && s->feature_names && !(names = strdup(s->feature_names)))
        rc = tr_fail(err, TR_ENOMEM, "out of memory");
    if (!rc) {
        ds->column_names = names;
        ds->class_names = classes;
        names = classes = NULL;
    } else {
        tr_dataset_free(ds);
    }
    free(names);
    free(classes);
    free(text);
    free(ttext);
    return rc;
}
