/*
 * fuzz_config.c: the INI configuration parser and validator on arbitrary text, as a file
 * (through inih) and as a string; every input must end in success or a TR_ECONFIG/TR_EUSAGE
 * error with a message, never a crash, a leak or undefined behaviour.
 */
#include "fuzz_util.h"

#include "trainer/config.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    tr_config c;
    tr_err err = {0};
    int rc = tr_config_load_string(&c, "fuzz.ini", text, NULL, 0, &err);
    if (rc == 0) {
        FILE *null = fopen("/dev/null", "w");
        if (null) {
            tr_config_print(&c, null); /* every value prints */
            fclose(null);
        }
    } else if (!err.msg[0]) {
        abort(); /* an error without a message */
    }
    tr_config_free(&c);
    /* the same bytes as a file, with a --set override on top */
    char path[64];
    int fd = fuzz_file(data, size, path, sizeof path);
    if (fd >= 0) {
        const char *sets[] = {"train.epochs=2"};
        if (tr_config_load(&c, path, sets, 1, &err) == 0 || err.msg[0])
            tr_config_free(&c);
        else
            abort();
        close(fd);
    }
    free(text);
    return 0;
}
