/*
 * csv.h: reading numeric tables from delimited text files.
 *
 * Numbers only (strtod syntax, surrounding spaces and double quotes allowed); one row per
 * line, empty lines skipped, CRLF accepted. Errors name the file, the line and the column:
 * a non-numeric cell, a ragged row, an empty file, an unknown column.
 */
#ifndef TRAINER_CSV_H
#define TRAINER_CSV_H

#include "trainer/dataset.h"
#include "trainer/error.h"

#include <stdbool.h>

typedef struct tr_csv_options {
    char delimiter;      /* ',' ';' '\t' ' ' ...; 0 = detect from the first line */
    bool header;         /* the first line names the columns */
    const char *target;  /* comma-separated target column names or 0-based indices; "" = the last column */
    const char *columns; /* feature columns, same syntax; "" = every column but the targets */
    const char *columns_key; /* what `columns` is called in a message (NULL: "[data] columns") */
    bool drop_nonfinite; /* drop rows with nan/inf instead of failing */
    bool no_target;      /* features only (prediction input): `target` names columns to leave out if present */
} tr_csv_options;

/* Reads path into ds. *dropped receives the number of rows dropped for non-finite values. */
int tr_csv_read(tr_dataset *ds, const char *path, const tr_csv_options *o, int64_t *dropped, tr_err *err);

/* Parses a delimiter name: comma, semicolon, tab, space, auto, or a single character.
 * Returns -1 if unknown, 0 for auto. */
int tr_csv_delimiter(const char *name);

/* Writes ds as CSV (header x0..., y or y0...) to f; `path` names the file in a message.
 * Checks the stream: a write that failed (a full disk) is TR_EIO with the system's reason. */
int tr_csv_write(const tr_dataset *ds, FILE *f, const char *path, char delimiter, tr_err *err);

#endif
