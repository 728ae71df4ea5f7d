/*
 * test_util.c: see test_util.h.
 */
#include "test_util.h"

#include "trainer/rng.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

void fill_uniform(float *x, size_t n, float lo, float hi, uint64_t seed)
{
    tr_rng r = tr_rng_make(seed);
    for (size_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * (float)tr_rng_uniform(r, 99, 0, i);
}

double rel_error(const double *a, const double *b, size_t n)
{
    double d = 0.0, na = 0.0, nb = 0.0;
    for (size_t i = 0; i < n; i++) {
        d += (a[i] - b[i]) * (a[i] - b[i]);
        na += a[i] * a[i];
        nb += b[i] * b[i];
    }
    double den = sqrt(na > nb ? na : nb);
    return sqrt(d) / (den > 1e-30 ? den : 1e-30);
}

double max_abs(const double *v, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++)
        m = fabs(v[i]) > m ? fabs(v[i]) : m;
    return m;
}

int run_cmd(const char *cmd, char *out, size_t outlen)
{
    char full[8192];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    cr_assert_not_null(p, "popen(%s)", cmd);
    size_t n = 0;
    if (out && outlen)
        out[0] = '\0';
    char buf[4096];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, p)) > 0) {
        if (out && n + 1 < outlen) {
            size_t take = got < outlen - 1 - n ? got : outlen - 1 - n;
            memcpy(out + n, buf, take);
            n += take;
            out[n] = '\0';
        }
    }
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int run_trainer(const char *env, int np, int timeout_s, const char *args, char *out, size_t outlen)
{
    char limit[32] = "", launcher[600] = "", cmd[8192];
    if (timeout_s > 0)
        snprintf(limit, sizeof limit, "timeout %d", timeout_s);
    if (np > 0)
        snprintf(launcher, sizeof launcher, "%s -np %d --oversubscribe", MPIEXEC, np);
    snprintf(cmd, sizeof cmd, "%s %s %s %s %s", env ? env : "", limit, launcher, TRAINER_BIN, args);
    return run_cmd(cmd, out, outlen);
}

void make_temp_dir(char *buf, size_t len)
{
    snprintf(buf, len, "/tmp/trainer-test-XXXXXX");
    cr_assert_not_null(mkdtemp(buf), "mkdtemp");
}

void write_config(char *path, size_t len, const char *dir, const char *name, const char *fmt, const char *arg)
{
    char text[8192];
    snprintf(path, len, "%s/%s.ini", dir, name);
    snprintf(text, sizeof text, fmt, arg);
    write_text(path, text);
}

void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}
