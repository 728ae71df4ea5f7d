/*
 * fuzz_idx.c: the IDX reader (images and labels, plain or gzip) on arbitrary bytes. The
 * first byte chooses where the input is cut into the images file and the labels file.
 */
#include "fuzz_util.h"

#include "trainer/idx.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const size_t cut = 1 + (size - 1) * data[0] / 255;
    char images[64], labels[64];
    int fi = fuzz_file(data + 1, cut - 1, images, sizeof images);
    int fl = fuzz_file(data + cut, size - cut, labels, sizeof labels);
    if (fi >= 0 && fl >= 0) {
        tr_dataset ds = {0};
        tr_err err = {0};
        int rc = tr_idx_read(&ds, images, labels, &err);
        if (rc != 0 && !err.msg[0])
            abort();
        tr_dataset_free(&ds);
    }
    if (fi >= 0)
        close(fi);
    if (fl >= 0)
        close(fl);
    return 0;
}
