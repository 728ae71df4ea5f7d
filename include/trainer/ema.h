/*
 * ema.h: an exponential moving average of the weights, as PyTorch's
 * torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay),
 * use_buffers=True) computes it: after every optimizer step, each parameter and each batch
 * norm running statistic p_ema = lerp(p_ema, p, 1 - decay), the first update a copy
 * (n_averaged 0). The average is evaluated beside the model (the ema_val_ and ema_test_
 * metrics), checkpointed under /ema, and read by `eval --ema` and `predict --ema`.
 *
 * Every rank keeps its own copy: the replicas' parameters are equal, so are the averages.
 */
#ifndef TRAINER_EMA_H
#define TRAINER_EMA_H

#include "trainer/error.h"
#include "trainer/model.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct tr_ema {
    double decay;       /* 0: no average is kept */
    int64_t n_averaged; /* updates so far (AveragedModel's n_averaged) */
    float *params;      /* (n_params) the model's flat layout */
    float *buffers;     /* (n_buffer_floats) batch norm's running statistics */
} tr_ema;

/* An average of m's parameters (none when decay is 0: then every call below does nothing). */
int tr_ema_init(tr_ema *e, double decay, const tr_model *m, tr_err *err);
void tr_ema_free(tr_ema *e);

static inline bool tr_ema_on(const tr_ema *e) { return e->params != NULL; }

/* After an optimizer step: the average takes in the model's parameters and statistics. */
void tr_ema_update(tr_ema *e, const tr_model *m);

/* Exchanges the model's parameters and statistics with the average's (pointers only): the
 * model computes with the average until the second call puts them back. */
void tr_ema_swap(tr_ema *e, tr_model *m);

#endif
