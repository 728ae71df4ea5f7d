/*
 * idx.h: the IDX format of MNIST and Fashion-MNIST (gzip-compressed or not; zlib reads both).
 * Images are unsigned bytes, scaled to [0, 1]; labels are unsigned bytes (class indices).
 */
#ifndef TRAINER_IDX_H
#define TRAINER_IDX_H

#include "trainer/dataset.h"
#include "trainer/error.h"

/* Reads an images file (n, h, w) and a labels file (n) into ds: (n, h*w) features in [0, 1]
 * and one target column. Errors name the file: bad magic, truncation, count mismatch. */
int tr_idx_read(tr_dataset *ds, const char *images, const char *labels, tr_err *err);

#endif
