/*
 * fuzz_ckpt.c: the checkpoint loader on arbitrary bytes: the configuration stored in the
 * file (what `trainer predict` reads first), then the parameters, optimizer state, scaling,
 * run state and the weights' moving average into the model that configuration describes,
 * and the average alone as the model's weights (--ema). Every input ends in success
 * or a TR_ECKPT error with a message.
 */
#include "fuzz_util.h"

#include "trainer/ckpt.h"
#include "trainer/ema.h"
#include "trainer/h5io.h"
#include "trainer/model.h"
#include "trainer/optim.h"

#include <stdlib.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int once = 0;
    if (!once++)
        tr_h5_no_atexit();
    char path[64];
    if (fuzz_shm_file(data, size, path, sizeof path) != 0)
        return 0;
    tr_config c;
    tr_err err = {0};
    int rc = tr_ckpt_read_config(path, &c, &err);
    if (rc != 0 && !err.msg[0])
        abort();
    if (getenv("FUZZ_VERBOSE"))
        fprintf(stderr, "read_config: %d %s\n", rc, err.msg);
    if (rc == 0) {
        tr_model m = {0};
        if (tr_model_init(&m, &c.model, 4, &err) == 0) {
            tr_optim o = {0};
            tr_scaler sc = {0};
            tr_ckpt_state st = {0};
            const bool have_optim = tr_optim_init(&o, &c.train.optim, m.n_params, &err) == 0;
            tr_ema ema;
            const bool have_ema = tr_ema_init(&ema, c.train.ema_decay, &m, &err) == 0;
            tr_ckpt_parts parts = {.optim = have_optim ? &o : NULL, .scaler = &sc, .state = &st,
                                   .ema = have_ema ? &ema : NULL};
            rc = tr_ckpt_load(path, &c, &m, &parts, &err);
            if (rc != 0 && !err.msg[0])
                abort();
            /* eval --ema and predict --ema: the average's weights as the model's */
            rc = tr_ckpt_load(path, &c, &m, &(tr_ckpt_parts){.ema_weights = true}, &err);
            if (rc != 0 && !err.msg[0])
                abort();
            if (have_ema)
                tr_ema_free(&ema);
            if (have_optim)
                tr_optim_free(&o);
            tr_scaler_free(&sc);
            tr_model_free(&m);
        }
        tr_config_free(&c);
    }
    unlink(path);
    return 0;
}
