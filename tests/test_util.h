/*
 * test_util.h: helpers shared by the tests: deterministic random fills, norm-wise relative
 * error, running the trainer binary, temporary files.
 */
#ifndef TRAINER_TEST_UTIL_H
#define TRAINER_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* x[i] ~ U(lo, hi) from counters (seed, i). */
void fill_uniform(float *x, size_t n, float lo, float hi, uint64_t seed);

/* ||a - b|| / max(||a||, ||b||, tiny), in double. */
double rel_error(const double *a, const double *b, size_t n);

/* Largest |v|. */
double max_abs(const double *v, size_t n);

/* Runs `cmd` through the shell, capturing stdout and stderr (up to outlen - 1 bytes) into out;
 * returns the exit status (or -1 if it did not exit normally). */
int run_cmd(const char *cmd, char *out, size_t outlen);

/* Runs the trainer binary with `args`: under `mpirun -np np --oversubscribe` when np > 0,
 * with the `env` assignments ("A=1 B=2", or "") in front, killed after timeout_s seconds
 * when timeout_s > 0; output as run_cmd. The harness every C test runs the trainer with. */
int run_trainer(const char *env, int np, int timeout_s, const char *args, char *out, size_t outlen);

/* A new empty directory under /tmp (path written into buf). */
void make_temp_dir(char *buf, size_t len);

/* Writes text to path (aborts the test on failure). */
void write_text(const char *path, const char *text);

/* Writes the configuration DIR/NAME.ini from fmt, a configuration text with one %s (usually
 * its run directory) filled with arg; its path into path. With run_trainer: the harness of
 * "configuration text -> run -> read the checkpoint". */
void write_config(char *path, size_t len, const char *dir, const char *name, const char *fmt, const char *arg);

#endif
