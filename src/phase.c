/*
 * phase.c: the phase clock (phase.h).
 */
#include "trainer/phase.h"

#include "trainer/clock.h"

#include <stddef.h>

const char *const tr_phase_names[TR_PHASE_COUNT] = {"data", "forward", "backward", "comm_wait", "optimizer", "eval"};

void tr_phase_clock_init(tr_phase_clock *c, double *seconds)
{
    c->seconds = seconds;
    c->depth = c->too_deep = 0;
    c->mark = 0.0;
}

/* Charges the time since the last change to the innermost open phase. */
static void charge(tr_phase_clock *c)
{
    const double now = tr_step_seconds();
    if (c->depth > 0)
        c->seconds[c->open[c->depth - 1]] += now - c->mark;
    c->mark = now;
}

void tr_phase_enter(tr_phase_clock *c, tr_phase p)
{
    if (c->depth == TR_PHASE_DEPTH) { /* deeper than any step nests: charged to the phase outside */
        c->too_deep++;
        return;
    }
    charge(c);
    c->open[c->depth++] = p;
}

void tr_phase_leave(tr_phase_clock *c)
{
    if (c->too_deep > 0) {
        c->too_deep--;
        return;
    }
    charge(c);
    if (c->depth > 0)
        c->depth--;
}
