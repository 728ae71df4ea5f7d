/*
 * predict.h: inference with a checkpoint: the architecture, the feature scaling and the
 * input columns come from the checkpoint itself, so only the checkpoint and the input are
 * needed. Classifiers give class probabilities and the predicted class, regressors their
 * outputs. Under mpirun every rank computes its share of evaluation chunks and rank 0
 * writes the output.
 */
#ifndef TRAINER_PREDICT_H
#define TRAINER_PREDICT_H

#include "trainer/dist.h"
#include "trainer/error.h"

typedef struct tr_predict_options {
    const char *checkpoint;
    const char *input;    /* .h5/.hdf5 (features dataset) or .csv */
    const char *output;   /* .csv or .h5/.hdf5 */
    const char *features; /* HDF5 dataset of the input; NULL: the training run's [data] features */
    const char *columns;  /* CSV feature columns (names or indices); NULL: the training run's */
    int layer;            /* >= 0: write the activations of this weight layer instead; -1: predictions */
    bool ema;             /* the checkpoint's moving average of the weights (/ema) instead of /model */
} tr_predict_options;

/* Writes the predictions for every input row. Collective; returns the same code everywhere. */
int tr_predict(tr_dist *d, const tr_predict_options *o, int64_t *rows_out, tr_err *err);

#endif
