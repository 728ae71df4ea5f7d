/*
 * ema.c: the moving average of the weights (ema.h). PyTorch's update is torch._foreach_lerp_
 * with weight w = 1 - decay: p_ema + w (p - p_ema) for w < 0.5, which is what decays near 1
 * give; the same expression here, in float.
 */
#include "trainer/ema.h"

#include "trainer/mem.h"

#include <string.h>

int tr_ema_init(tr_ema *e, double decay, const tr_model *m, tr_err *err)
{
    memset(e, 0, sizeof *e);
    e->decay = decay;
    if (decay <= 0.0)
        return 0;
    e->params = tr_big_alloc(m->n_params * sizeof *e->params);
    e->buffers = tr_big_alloc((m->n_buffer_floats + 1) * sizeof *e->buffers);
    if (!e->params || !e->buffers) {
        tr_ema_free(e);
        return tr_fail(err, TR_ENOMEM, "cannot allocate the weights' moving average (%zu floats)", m->n_params);
    }
    return 0;
}

void tr_ema_free(tr_ema *e)
{
    tr_big_free(e->params);
    tr_big_free(e->buffers);
    e->params = e->buffers = NULL;
}

static void lerp(float *restrict avg, const float *restrict now, size_t n, float w)
{
    for (size_t i = 0; i < n; i++)
        avg[i] = avg[i] + w * (now[i] - avg[i]);
}

void tr_ema_update(tr_ema *e, const tr_model *m)
{
    if (!tr_ema_on(e))
        return;
    if (e->n_averaged == 0) {
        memcpy(e->params, m->params, m->n_params * sizeof *e->params);
        memcpy(e->buffers, m->buffers, m->n_buffer_floats * sizeof *e->buffers);
    } else {
        const float w = (float)(1.0 - e->decay);
        for (int t = 0; t < m->n_tensors; t++) /* the tensors: the padding between them stays zero */
            lerp(e->params + m->tensor[t].offset, m->params + m->tensor[t].offset, m->tensor[t].size, w);
        lerp(e->buffers, m->buffers, m->n_buffer_floats, w);
    }
    e->n_averaged++;
}

void tr_ema_swap(tr_ema *e, tr_model *m)
{
    if (tr_ema_on(e))
        tr_model_swap_weights(m, &e->params, &e->buffers);
}
