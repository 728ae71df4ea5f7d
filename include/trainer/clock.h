/*
 * clock.h: the clocks the trainer measures time with, in seconds.
 *
 *   tr_seconds        monotonic (clock_gettime): timeouts, epochs, anything compared
 *                     across processes or long spans.
 *   tr_step_seconds   for the phases of one step (a dozen readings per step: on a tiny
 *                     network clock_gettime alone was 4% of the step): the CPU's time-stamp
 *                     counter scaled to seconds where it is invariant (constant_tsc and
 *                     nonstop_tsc), calibrated against tr_seconds over 2 ms at first use;
 *                     elsewhere tr_seconds itself. Only differences of its readings mean
 *                     anything.
 */
#ifndef TRAINER_CLOCK_H
#define TRAINER_CLOCK_H

#include <time.h>

static inline double tr_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Seconds per time-stamp-counter tick (0: the counter is not used), set by tr_clock_calibrate. */
extern double tr_tsc_seconds_per_tick;
extern int tr_tsc_state; /* 0 not calibrated, 1 the counter, -1 clock_gettime */
void tr_clock_calibrate(void);

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
static inline double tr_step_seconds(void)
{
    if (__builtin_expect(tr_tsc_state == 0, 0))
        tr_clock_calibrate();
    if (tr_tsc_state > 0)
        return (double)__rdtsc() * tr_tsc_seconds_per_tick;
    return tr_seconds();
}
#else
static inline double tr_step_seconds(void) { return tr_seconds(); }
#endif

#endif
