/*
 * names.c: lookups over the vocabularies of names.h (NULL-terminated name arrays).
 */
#include "trainer/names.h"

#include <stdio.h>
#include <string.h>

int tr_name_index(const char *const names[], const char *name)
{
    for (int i = 0; names[i]; i++)
        if (strcmp(names[i], name) == 0)
            return i;
    return -1;
}

const char *tr_name_of(const char *const names[], int value)
{
    for (int i = 0; names[i]; i++)
        if (i == value)
            return names[i];
    return "?";
}

const char *tr_names_join(const char *const names[], char *buf, size_t size)
{
    size_t used = 0;
    if (size)
        buf[0] = '\0';
    for (int i = 0; names[i] && used + 1 < size; i++) {
        const int n = snprintf(buf + used, size - used, "%s%s", i ? ", " : "", names[i]);
        if (n < 0)
            break;
        used += (size_t)n < size - used ? (size_t)n : size - used - 1;
    }
    return buf;
}
