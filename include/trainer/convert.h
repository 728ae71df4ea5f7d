/*
 * convert.h: `trainer data convert`, any input the trainer reads to the layout it maps.
 *
 * CSV (a text label column becomes class indices, the names kept), IDX (gzip or not) and
 * HDF5 (any numeric type, chunked or compressed) become an HDF5 file with /X float32 (rows,
 * features), contiguous and unfiltered, so training uses it in place (mapping.h), and /y
 * (int64 class labels, else float32 targets). The feature and class names are attributes
 * (/X columns, /y class_names) and `source` names the input. The output is written beside its
 * final name and renamed when complete (files.h): never half-written under that name.
 */
#ifndef TRAINER_CONVERT_H
#define TRAINER_CONVERT_H

#include "trainer/config.h"
#include "trainer/error.h"

#include <stdbool.h>
#include <stdio.h>

/* Reads `input` as the [data] keys in dc describe it (format, delimiter, header, target,
 * columns, features, targets, labels, on_nonfinite; the format from the extension when
 * auto) and writes `output`. A progress line goes to `progress` (NULL: none); the summary
 * line to `out`. */
int tr_convert(const tr_data_config *dc, const char *input, const char *output, FILE *progress, FILE *out,
               tr_err *err);

#endif
