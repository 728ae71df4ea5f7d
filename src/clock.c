/*
 * clock.c: the calibration of the step clock (clock.h).
 */
#include "trainer/clock.h"

#include <stdio.h>
#include <string.h>

double tr_tsc_seconds_per_tick = 0.0;
int tr_tsc_state = 0;

/* Whether /proc/cpuinfo lists both flags that make the counter a clock: it ticks at one rate
 * whatever the frequency and sleep state. */
static int invariant_tsc(void)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return 0;
    char line[8192];
    int ok = 0;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "flags", 5)) {
            ok = strstr(line, " constant_tsc") && strstr(line, " nonstop_tsc");
            break;
        }
    fclose(f);
    return ok;
}

void tr_clock_calibrate(void)
{
#if defined(__x86_64__) || defined(__i386__)
    if (invariant_tsc()) {
        const double t0 = tr_seconds();
        const unsigned long long c0 = __rdtsc();
        double t1;
        do
            t1 = tr_seconds();
        while (t1 - t0 < 0.002);
        const unsigned long long c1 = __rdtsc();
        if (c1 > c0) {
            tr_tsc_seconds_per_tick = (t1 - t0) / (double)(c1 - c0);
            tr_tsc_state = 1;
            return;
        }
    }
#endif
    tr_tsc_state = -1;
}
