/*
 * fault.c: the test hooks (see fault.h): their environment variables, read and checked once.
 */
#include "trainer/fault.h"

#include "trainer/vmath.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct rank_step {
    int rank; /* -1: unset */
    int64_t step;
} rank_step;

static struct {
    rank_step nan, signal;
    int pause_nth, pause_seconds; /* nth 0: unset */
    char mpi_site[32];            /* "": unset */
    int ranks_per_node;
    /* the first malformed variable, its value and what was wrong */
    char bad[256];
} hooks;

static const char *const mpi_sites[] = {"cross_sum", "sync_buffers", NULL};

static void complain(const char *variable, const char *value, const char *want)
{
    if (!hooks.bad[0])
        snprintf(hooks.bad, sizeof hooks.bad, "%s=%s: %s", variable, value, want);
}

/* A whole "A:B" of integers, A >= 0 and B >= 0 (a test hook's rank and step, or count). */
static bool read_pair(const char *variable, long long *a, long long *b)
{
    const char *v = getenv(variable);
    if (!v)
        return false;
    int used = -1;
    if (sscanf(v, "%lld:%lld%n", a, b, &used) == 2 && used == (int)strlen(v) && *a >= 0 && *b >= 0)
        return true;
    complain(variable, v, "expected two non-negative integers, A:B");
    return false;
}

static void read_hooks(void)
{
    long long a, b;
    hooks.nan.rank = hooks.signal.rank = -1;
    if (read_pair("TRAINER_FAULT_NAN", &a, &b))
        hooks.nan = (rank_step){(int)a, (int64_t)b};
    if (read_pair("TRAINER_TEST_SIGNAL_AT_STEP", &a, &b))
        hooks.signal = (rank_step){(int)a, (int64_t)b};
    if (read_pair("TRAINER_TEST_CKPT_PAUSE", &a, &b)) {
        if (a > 0) {
            hooks.pause_nth = (int)a;
            hooks.pause_seconds = (int)b;
        } else { /* writes count from 1: a 0 would never pause, silently */
            complain("TRAINER_TEST_CKPT_PAUSE", getenv("TRAINER_TEST_CKPT_PAUSE"), "N:SECONDS counts writes from 1");
        }
    }
    const char *site = getenv("TRAINER_FAULT_MPI");
    if (site) {
        bool known = false;
        for (int i = 0; mpi_sites[i]; i++)
            known |= !strcmp(site, mpi_sites[i]);
        if (known)
            snprintf(hooks.mpi_site, sizeof hooks.mpi_site, "%s", site);
        else
            complain("TRAINER_FAULT_MPI", site, "expected cross_sum or sync_buffers");
    }
    const char *k = getenv("TRAINER_TEST_RANKS_PER_NODE");
    if (k) {
        char *end;
        const long v = strtol(k, &end, 10);
        if (*k && !*end && v > 0 && v < 1 << 20)
            hooks.ranks_per_node = (int)v;
        else
            complain("TRAINER_TEST_RANKS_PER_NODE", k, "expected a positive number of ranks");
    }
    const char *path = getenv("TRAINER_VMATH");
    if (path && !tr_vmath_select(path))
        complain("TRAINER_VMATH", path, "not a path this CPU runs (avx512, avx2, fma or scalar)");
}

static pthread_once_t once = PTHREAD_ONCE_INIT;

int tr_faults_load(tr_err *err)
{
    pthread_once(&once, read_hooks);
    return hooks.bad[0] ? tr_fail(err, TR_EUSAGE, "%s", hooks.bad) : 0;
}

static void load(void) { pthread_once(&once, read_hooks); }

int64_t tr_fault_nan_step(int rank)
{
    load();
    return hooks.nan.rank == rank ? hooks.nan.step : -1;
}

int64_t tr_fault_signal_step(int rank)
{
    load();
    return hooks.signal.rank == rank ? hooks.signal.step : -1;
}

bool tr_fault_ckpt_pause(int *nth, int *seconds)
{
    load();
    *nth = hooks.pause_nth;
    *seconds = hooks.pause_seconds;
    return hooks.pause_nth > 0;
}

bool tr_fault_mpi(const char *site)
{
    load();
    return hooks.mpi_site[0] && !strcmp(hooks.mpi_site, site);
}

int tr_fault_ranks_per_node(void)
{
    load();
    return hooks.ranks_per_node;
}
