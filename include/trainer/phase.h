/*
 * phase.h: where a training step's time goes. A phase clock charges the time between its
 * readings to the innermost open phase: backward that starts a gradient bucket and updates a
 * finished layer opens `comm_wait` and `optimizer` inside `backward`, and their time leaves
 * backward's by construction, with nothing subtracted afterwards. Time outside every phase
 * is charged to none.
 */
#ifndef TRAINER_PHASE_H
#define TRAINER_PHASE_H

typedef enum tr_phase {
    TR_PHASE_DATA,     /* gathering the batch rows */
    TR_PHASE_FORWARD,  /* forward pass and loss */
    TR_PHASE_BACKWARD, /* backward pass (starting gradient buckets) */
    TR_PHASE_COMM,     /* waiting for the gradient exchange */
    TR_PHASE_OPTIM,    /* optimizer update */
    TR_PHASE_EVAL,     /* evaluation */
    TR_PHASE_COUNT
} tr_phase;

extern const char *const tr_phase_names[TR_PHASE_COUNT];

#define TR_PHASE_DEPTH 8

typedef struct tr_phase_clock {
    double *seconds;              /* (TR_PHASE_COUNT) where the time goes; owned by the caller */
    tr_phase open[TR_PHASE_DEPTH]; /* the open phases, innermost last */
    int depth, too_deep;
    double mark;                  /* tr_step_seconds at the last change */
} tr_phase_clock;

void tr_phase_clock_init(tr_phase_clock *c, double *seconds);
/* Opens phase p inside whatever is open (the outer phase stops being charged). */
void tr_phase_enter(tr_phase_clock *c, tr_phase p);
/* Closes the innermost phase (the next outer one is charged again). */
void tr_phase_leave(tr_phase_clock *c);

#endif
