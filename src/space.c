/*
 * space.c: reading a search space file and drawing its trials (space.h).
 */
#include "trainer/space.h"

#include "trainer/files.h"
#include "trainer/rng.h"

#include <ctype.h>
#include <errno.h>
#include <gsl/gsl_qrng.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const tr_dim_kind_names[] = {TR_DIM_KIND_MAP(TR_ENUM_NAME) NULL};
const char *const tr_sampler_kind_names[] = {TR_SAMPLER_MAP(TR_ENUM_NAME) NULL};

enum { MAX_DIMS = 32, MAX_VALUES = 256, SOBOL_MAX_DIMS = 40 };

static bool parse_i64(const char *s, int64_t lo, int64_t *out)
{
    char *end;
    errno = 0;
    const long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo)
        return false;
    *out = v;
    return true;
}

static bool parse_f64(const char *s, double *out)
{
    char *end;
    errno = 0;
    const double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v))
        return false;
    *out = v;
    return true;
}

/* One search.KEY = VALUE; `where` names the line or the override in messages. */
static int apply_setting(tr_search_settings *st, const char *key, const char *value, const char *where, tr_err *err)
{
    bool ok = true;
    if (!strcmp(key, "sampler")) {
        const int k = tr_name_index(tr_sampler_kind_names, value);
        ok = k >= 0;
        if (ok)
            st->sampler = (tr_sampler_kind)k;
    } else if (!strcmp(key, "trials")) {
        ok = parse_i64(value, 0, &st->trials);
    } else if (!strcmp(key, "seed")) {
        int64_t v = 0;
        ok = parse_i64(value, 0, &v);
        st->seed = (uint64_t)v;
    } else if (!strcmp(key, "metric")) {
        ok = strlen(value) < sizeof st->metric && value[0];
        if (ok)
            snprintf(st->metric, sizeof st->metric, "%s", value);
    } else if (!strcmp(key, "asha")) {
        ok = !strcmp(value, "true") || !strcmp(value, "false");
        st->asha = !strcmp(value, "true");
    } else if (!strcmp(key, "min_epochs")) {
        ok = parse_i64(value, 1, &st->min_epochs);
    } else if (!strcmp(key, "eta")) {
        ok = parse_i64(value, 2, &st->eta);
    } else if (!strcmp(key, "folds")) {
        ok = parse_i64(value, 0, &st->folds) && st->folds != 1;
    } else if (!strcmp(key, "ranks_per_trial")) {
        ok = parse_i64(value, 1, &st->ranks_per_trial);
    } else {
        return tr_fail(err, TR_ECONFIG, "%s: unknown setting search.%s (see trainer help search)", where, key);
    }
    if (!ok)
        return tr_fail(err, TR_ECONFIG, "%s: search.%s = %s is not valid (see trainer help search)", where, key, value);
    return 0;
}

static int defaults(tr_search_settings *st, tr_err *err)
{
    memset(st, 0, sizeof *st);
#define SET_DEFAULT(field, key, text, help)                                 \
    if (apply_setting(st, key, text, "the default", err))                   \
        return TR_EINTERNAL;
    TR_SEARCH_SETTINGS(SET_DEFAULT)
#undef SET_DEFAULT
    return 0;
}

/* `key = tokens...` into a dimension (or a setting). */
static int parse_dim(tr_space *s, const char *key, char *rest, int line, tr_err *err)
{
    char *tok[MAX_VALUES + 1];
    int n = 0;
    for (char *p = strtok(rest, " \t"); p; p = strtok(NULL, " \t")) {
        if (n == MAX_VALUES + 1)
            return tr_fail(err, TR_ECONFIG, "%s:%d: %s: more than %d values", s->path, line, key, MAX_VALUES);
        tok[n++] = p;
    }
    char where[1100];
    snprintf(where, sizeof where, "%s:%d", s->path, line);
    if (n == 0)
        return tr_fail(err, TR_ECONFIG, "%s: %s has no values", where, key);
    if (!strncmp(key, "search.", 7)) {
        if (n != 1)
            return tr_fail(err, TR_ECONFIG, "%s: %s takes one value", where, key);
        return apply_setting(&s->set, key + 7, tok[0], where, err);
    }
    if (strncmp(key, "model.", 6) && strncmp(key, "train.", 6))
        return tr_fail(err, TR_ECONFIG, "%s: %s: a search varies [model] and [train] keys only (the data are loaded once "
                                        "per node for every trial; [output] dir is the search's)", where, key);
    for (int d = 0; d < s->n_dims; d++)
        if (!strcmp(s->dims[d].key, key))
            return tr_fail(err, TR_ECONFIG, "%s: %s is already searched (line %d)", where, key, s->dims[d].line);
    if (s->n_dims == MAX_DIMS)
        return tr_fail(err, TR_ECONFIG, "%s: more than %d searched keys", where, MAX_DIMS);
    if (strlen(key) >= sizeof s->dims[0].key)
        return tr_fail(err, TR_ECONFIG, "%s: %s: key too long", where, key);
    tr_space_dim *dim = &s->dims[s->n_dims];
    memset(dim, 0, sizeof *dim);
    snprintf(dim->key, sizeof dim->key, "%s", key);
    dim->line = line;
    const int kind = tr_name_index(tr_dim_kind_names, tok[0]);
    dim->kind = kind > 0 ? (tr_dim_kind)kind : TR_DIM_GRID;
    char **vals = tok + (kind > 0);
    const int nv = n - (kind > 0);
    if (dim->kind == TR_DIM_UNIFORM || dim->kind == TR_DIM_LOGUNIFORM) {
        if (nv != 2 || !parse_f64(vals[0], &dim->lo) || !parse_f64(vals[1], &dim->hi) || !(dim->lo < dim->hi) ||
            (dim->kind == TR_DIM_LOGUNIFORM && !(dim->lo > 0.0)))
            return tr_fail(err, TR_ECONFIG, "%s: %s = %s LO HI needs two numbers LO < HI%s", where, key, tok[0],
                           dim->kind == TR_DIM_LOGUNIFORM ? ", LO > 0" : "");
    } else {
        if (nv < 1)
            return tr_fail(err, TR_ECONFIG, "%s: %s = choice needs at least one value", where, key);
        dim->values = calloc((size_t)nv, sizeof *dim->values);
        if (!dim->values)
            return tr_fail(err, TR_ENOMEM, "out of memory");
        for (int v = 0; v < nv; v++)
            if (!(dim->values[v] = strdup(vals[v]))) {
                dim->n_values = v;
                return tr_fail(err, TR_ENOMEM, "out of memory");
            }
        dim->n_values = nv;
    }
    s->n_dims++;
    return 0;
}

static int read_file(tr_space *s, tr_err *err)
{
    int rc = tr_input_check(s->path, "the search space", TR_EUSAGE, err);
    if (rc)
        return rc;
    FILE *f = fopen(s->path, "r");
    if (!f)
        return tr_fail(err, TR_EUSAGE, "cannot read the search space %s: %s", s->path, strerror(errno));
    char buf[8192];
    int line = 0;
    while (!rc && fgets(buf, sizeof buf, f)) {
        line++;
        if (!strchr(buf, '\n') && !feof(f)) {
            rc = tr_fail(err, TR_ECONFIG, "%s:%d: line too long (at most %zu characters)", s->path, line,
                         sizeof buf - 2);
            break;
        }
        char *hash = strchr(buf, '#');
        if (hash)
            *hash = '\0';
        char *l = tr_trim(buf);
        if (!*l)
            continue;
        char *eq = strchr(l, '=');
        if (!eq) {
            rc = tr_fail(err, TR_ECONFIG, "%s:%d: expected 'section.key = value value ...' (or a distribution: "
                                          "uniform LO HI, loguniform LO HI, choice V V ...)", s->path, line);
            break;
        }
        *eq = '\0';
        char *key = tr_trim(l);
        const char *dot = strchr(key, '.');
        bool ok = dot && dot != key && dot[1];
        for (const char *p = key; ok && *p; p++)
            ok = isalnum((unsigned char)*p) || *p == '_' || *p == '.';
        if (!ok) {
            rc = tr_fail(err, TR_ECONFIG, "%s:%d: '%s' is not a section.key", s->path, line, key);
            break;
        }
        rc = parse_dim(s, key, eq + 1, line, err);
    }
    if (!rc && ferror(f))
        rc = tr_fail(err, TR_EIO, "%s: read error", s->path);
    fclose(f);
    return rc;
}

/* The sampled keys' points: trials x n_sampled numbers in [0, 1). */
static int draw_samples(tr_space *s, tr_err *err)
{
    const int64_t n = s->set.trials, q = s->n_sampled;
    s->samples = calloc((size_t)(n * q) + 1, sizeof(double));
    if (!s->samples)
        return tr_fail(err, TR_ENOMEM, "out of memory");
    const tr_rng rng = tr_rng_make(s->set.seed);
    if (s->set.sampler != TR_SAMPLER_SOBOL) {
        for (int64_t j = 0; j < n; j++)
            for (int64_t d = 0; d < q; d++)
                s->samples[j * q + d] = tr_rng_uniform(rng, TR_RNG_SEARCH, (uint32_t)d, (uint64_t)j);
        return 0;
    }
    if (q > SOBOL_MAX_DIMS)
        return tr_fail(err, TR_ECONFIG, "%s: sampler = sobol draws at most %d keys (%lld are sampled)", s->path,
                       SOBOL_MAX_DIMS, (long long)q);
    if (q == 0)
        return 0;
    gsl_qrng *g = gsl_qrng_alloc(gsl_qrng_sobol, (unsigned)q);
    if (!g)
        return tr_fail(err, TR_ENOMEM, "out of memory");
    /* a random shift of the whole sequence (Cranley-Patterson): the seed gives other trials
     * with the same evenness */
    double x[SOBOL_MAX_DIMS];
    for (int64_t j = 0; j < n; j++) {
        gsl_qrng_get(g, x);
        for (int64_t d = 0; d < q; d++) {
            const double shifted = x[d] + tr_rng_uniform(rng, TR_RNG_SEARCH, (uint32_t)(SOBOL_MAX_DIMS + d), 0);
            s->samples[j * q + d] = shifted >= 1.0 ? shifted - 1.0 : shifted;
        }
    }
    gsl_qrng_free(g);
    return 0;
}

int tr_space_load(tr_space *s, const char *path, const char *const *sets, int n_sets, tr_err *err)
{
    memset(s, 0, sizeof *s);
    if (strlen(path) >= sizeof s->path)
        return tr_fail(err, TR_EUSAGE, "the search space's path is too long");
    snprintf(s->path, sizeof s->path, "%s", path);
    int rc = defaults(&s->set, err);
    s->dims = calloc(MAX_DIMS, sizeof *s->dims);
    if (!rc && !s->dims)
        rc = tr_fail(err, TR_ENOMEM, "out of memory");
    if (!rc)
        rc = read_file(s, err);
    for (int i = 0; !rc && i < n_sets; i++) {
        char key[64], where[128];
        const char *eq = strchr(sets[i], '=');
        if (!eq || strncmp(sets[i], "search.", 7) || (size_t)(eq - sets[i]) - 7 >= sizeof key)
            return tr_fail(err, TR_EUSAGE, "--set %s: expected search.KEY=VALUE", sets[i]);
        snprintf(key, sizeof key, "%.*s", (int)(eq - sets[i]) - 7, sets[i] + 7);
        snprintf(where, sizeof where, "--set %.100s", sets[i]);
        rc = apply_setting(&s->set, key, eq + 1, where, err);
    }
    if (rc)
        return rc;
    s->grid_points = 1;
    for (int d = 0; d < s->n_dims; d++) {
        if (s->dims[d].kind == TR_DIM_GRID)
            s->grid_points *= s->dims[d].n_values;
        else
            s->n_sampled++;
    }
    if (s->set.trials == 0)
        s->set.trials = s->n_sampled > 0 ? 16 : 1;
    if (s->n_sampled == 0 && s->set.trials > 1)
        return tr_fail(err, TR_ECONFIG, "%s: search.trials = %lld, but no key is sampled (uniform, loguniform, "
                                        "choice): every sample would be the same trial", s->path,
                       (long long)s->set.trials);
    if (s->grid_points * s->set.trials > 1000000)
        return tr_fail(err, TR_ECONFIG, "%s: %lld trials: at most a million", s->path,
                       (long long)(s->grid_points * s->set.trials));
    return draw_samples(s, err);
}

void tr_space_free(tr_space *s)
{
    for (int d = 0; s->dims && d < s->n_dims; d++) {
        for (int v = 0; v < s->dims[d].n_values; v++)
            free(s->dims[d].values[v]);
        free(s->dims[d].values);
    }
    free(s->dims);
    free(s->samples);
    memset(s, 0, sizeof *s);
}

int64_t tr_space_trials(const tr_space *s)
{
    return s->grid_points * s->set.trials;
}

void tr_space_value(const tr_space *s, int64_t trial, int d, char *buf, size_t len)
{
    const int64_t point = trial / s->set.trials, sample = trial % s->set.trials;
    const tr_space_dim *dim = &s->dims[d];
    if (dim->kind == TR_DIM_GRID) { /* mixed radix over the grid axes, the last fastest */
        int64_t rest = point, index = 0;
        for (int e = s->n_dims - 1; e >= d; e--)
            if (s->dims[e].kind == TR_DIM_GRID) {
                index = rest % s->dims[e].n_values;
                rest /= s->dims[e].n_values;
            }
        snprintf(buf, len, "%s", dim->values[index]);
        return;
    }
    int q = 0; /* which sampled key */
    for (int e = 0; e < d; e++)
        q += s->dims[e].kind != TR_DIM_GRID;
    const double u = s->samples[sample * s->n_sampled + q];
    if (dim->kind == TR_DIM_CHOICE) {
        int64_t k = (int64_t)(u * dim->n_values);
        snprintf(buf, len, "%s", dim->values[k < dim->n_values ? k : dim->n_values - 1]);
    } else if (dim->kind == TR_DIM_UNIFORM) {
        snprintf(buf, len, "%.6g", dim->lo + u * (dim->hi - dim->lo));
    } else {
        snprintf(buf, len, "%.6g", exp(log(dim->lo) + u * (log(dim->hi) - log(dim->lo))));
    }
}

void tr_space_print_reference(FILE *f)
{
    fputs("A search space file has one line per searched key (`#` starts a comment):\n\n"
          "| line | meaning |\n| --- | --- |\n"
          "| `section.key = V V ...` | a grid axis: every value in turn (the trials are the product of the axes) |\n"
          "| `section.key = uniform LO HI` | sampled uniformly in [LO, HI] |\n"
          "| `section.key = loguniform LO HI` | sampled log-uniformly in [LO, HI] (LO > 0) |\n"
          "| `section.key = choice V V ...` | sampled: one of the values |\n"
          "| `search.KEY = VALUE` | a setting of the search (below) |\n\n"
          "Only [model] and [train] keys are searched. Settings (also `--set search.KEY=VALUE`):\n\n"
          "| setting | default | meaning |\n| --- | --- | --- |\n",
          f);
#define PRINT_SETTING(field, key, text, help) fprintf(f, "| `%s` | %s | %s |\n", key, text, help);
    TR_SEARCH_SETTINGS(PRINT_SETTING)
#undef PRINT_SETTING
}
