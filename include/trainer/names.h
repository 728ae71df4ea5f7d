/*
 * names.h: vocabularies, the names of an enum's values written once.
 *
 * Every enum a user can name (in the configuration, a checkpoint or a message) has one X-macro
 * list `X(ENUM_CONSTANT, "name")` next to its type. TR_ENUM_VALUE generates the enum from it and
 * TR_ENUM_NAME a NULL-terminated name array in value order (defined once, in the module that
 * owns the type); the configuration table, `trainer help config` and every "choose one of"
 * message read that array through the helpers below, so a new value is added in one place.
 */
#ifndef TRAINER_NAMES_H
#define TRAINER_NAMES_H

#include <stddef.h>

#define TR_ENUM_VALUE(constant, name) constant,
#define TR_ENUM_NAME(constant, name) name,

/* The value whose name is `name`, or -1 when the vocabulary has no such name. */
int tr_name_index(const char *const names[], const char *name);

/* The name of `value`, or "?" when it is out of range. */
const char *tr_name_of(const char *const names[], int value);

/* The names joined with ", " into buf (cut to fit, always terminated); returns buf. */
const char *tr_names_join(const char *const names[], char *buf, size_t size);

#endif
