/*
 * fault.c: the test hooks (see fault.h): parsing of their environment variables.
 */
#include "trainer/fault.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int64_t tr_fault_rank_step(const char *variable, int rank)
{
    const char *v = getenv(variable);
    int r;
    long long step;
    return v && sscanf(v, "%d:%lld", &r, &step) == 2 && r == rank ? (int64_t)step : -1;
}

bool tr_fault_pair(const char *variable, int *a, int *b)
{
    const char *v = getenv(variable);
    return v && sscanf(v, "%d:%d", a, b) == 2;
}

bool tr_fault_mpi(const char *site)
{
    const char *v = getenv("TRAINER_FAULT_MPI");
    return v && !strcmp(v, site);
}

int tr_fault_ranks_per_node(void)
{
    const char *v = getenv("TRAINER_TEST_RANKS_PER_NODE");
    const int k = v ? atoi(v) : 0;
    return k > 0 ? k : 0;
}
