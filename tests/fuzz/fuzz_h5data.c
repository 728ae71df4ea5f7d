/*
 * fuzz_h5data.c: a user's HDF5 data file on arbitrary bytes, loaded the way `trainer train`
 * loads it (tr_data_load: /X and /y, their shapes, types and values, the split, the
 * non-finite policy, the label checks, the scaler), for a classifier, a binary model and a
 * regression, with the file as the training set and as the test set. Every input ends in
 * data or a TR_EDATA/TR_ECONFIG error with a message.
 */
#include "fuzz_util.h"

#include "trainer/config.h"
#include "trainer/data.h"
#include "trainer/h5io.h"
#include "trainer/loss.h"

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
    static const struct {
        const char *model, *train, *data;
        tr_loss loss;
    } cases[] = {
        {"layers = 2, 4, 1\noutput_activation = sigmoid", "loss = bce", "test_fraction = 0.25",
         {.kind = TR_LOSS_BCE, .width = 1, .out_act = TR_ACT_SIGMOID}},
        {"layers = 4, 4, 3", "loss = cross_entropy", "val_fraction = 0.2\non_nonfinite = drop",
         {.kind = TR_LOSS_CROSS_ENTROPY, .width = 3, .out_act = TR_ACT_IDENTITY}},
        {"layers = 1, 4, 1", "loss = mse", "test_path = %s\nscale = minmax",
         {.kind = TR_LOSS_MSE, .width = 1, .out_act = TR_ACT_IDENTITY}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char extra[128], text[1024];
        snprintf(extra, sizeof extra, cases[i].data, path);
        snprintf(text, sizeof text, "[model]\n%s\n[data]\npath = %s\n%s\n[train]\n%s\n", cases[i].model, path, extra,
                 cases[i].train);
        tr_config c;
        tr_err err = {0};
        if (tr_config_load_string(&c, "fuzz.ini", text, NULL, 0, &err) != 0)
            abort(); /* the configurations themselves are valid */
        tr_data d;
        const int rc = tr_data_load(&d, &c, &cases[i].loss, &err);
        if (rc != 0 && !err.msg[0])
            abort();
        if (getenv("FUZZ_VERBOSE"))
            fprintf(stderr, "case %zu: %d %s\n", i, rc, err.msg);
        if (rc == 0) {
            if (d.train.rows <= 0 || d.train.cols != c.model.widths[0])
                abort();
            tr_data_free(&d);
        }
        tr_config_free(&c);
    }
    unlink(path);
    return 0;
}
