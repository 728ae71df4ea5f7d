/*
 * fuzz_csv.c: the CSV reader on arbitrary bytes with the option sets the trainer uses
 * (header or not, detected or fixed delimiter, named or last target, dropping non-finite
 * rows, prediction input without targets). Every input ends in a dataset or a TR_EDATA
 * error with a message.
 */
#include "fuzz_util.h"

#include "trainer/csv.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    int fd = fuzz_file(data, size, path, sizeof path);
    if (fd < 0)
        return 0;
    const tr_csv_options opts[] = {
        {.delimiter = 0, .header = true, .target = "", .columns = ""},
        {.delimiter = ',', .header = false, .target = "0", .columns = "1,2"},
        {.delimiter = ';', .header = true, .target = "y", .columns = "", .drop_nonfinite = true},
        {.delimiter = 0, .header = true, .target = "y", .columns = "", .no_target = true},
    };
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
        tr_dataset ds = {0};
        tr_err err = {0};
        int64_t dropped = 0;
        int rc = tr_csv_read(&ds, path, &opts[i], &dropped, &err);
        if (rc != 0 && !err.msg[0])
            abort();
        if (rc == 0 && (ds.rows < 0 || ds.cols < 0))
            abort();
        tr_dataset_free(&ds);
    }
    close(fd);
    return 0;
}
