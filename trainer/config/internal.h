/* trainer/config/internal.h — the config schema, shared by config.c (loading),
 * config_schema.c (the key table and the "did you mean") and config_emit.c (output) only.
 * Everyone else goes through trainer/config.h. */
#ifndef LORAFIT_CONFIG_INTERNAL_H
#define LORAFIT_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "trainer/config/config.h"
#include "trainer/model/model.h" /* the LoRA module names */
#include "trainer/store/store.h"

/* K_JSON: a YAML mapping kept as compact JSON text with sorted keys (char *, NULL = null). */
typedef enum { K_STR, K_PATH, K_INT, K_FLOAT, K_BOOL, K_ENUM, K_PATHS, K_MODULES, K_JSON } KeyType;

typedef struct Key {
    const char *section, *name;
    KeyType type;
    size_t off;               /* offsetof(Config, ...) */
    bool nullable;            /* null allowed (strings -> NULL, lists -> empty, ints -> 0) */
    double lo, hi;            /* numeric range */
    bool lo_open, hi_open;    /* exclusive bounds */
    const char *const *names; /* K_ENUM: value names, index = enum value */
} Key;

/* The field of Config c that key k describes, as a T *. */
#define FIELD(c, k, T) ((T *)((char *)(c) + (k)->off))

/* Every key, in file order (config_key_path's order). */
extern const Key config_keys[];
extern const int config_n_keys;

/* The key section.name, or NULL. */
const Key *config_find_key(const char *section, const char *name);
bool config_is_section(const char *s);

/* Writes a "did you mean" hint for an unknown key `name` in `section` (NULL: a section name)
 * to buf, or "" when nothing is close. */
void config_suggest(const char *section, const char *name, char *buf, size_t len);

/* "an integer", "a number", ... for "expected ..." in messages. */
const char *config_type_name(const Key *k);
/* The key's range as text (">= 0", "in [0, 1)"). */
void config_range_text(const Key *k, char *buf, size_t len);
bool config_in_range(const Key *k, double v);

/* A plain scalar's text as the key types read it (YAML 1.2 core schema). 0, or -1 when s is
 * not a bool / an int64 / a float. */
bool config_is_null_text(const char *s); /* "", ~, null, Null, NULL */
int config_parse_bool(const char *s, bool *out);
int config_parse_int(const char *s, int64_t *out);
int config_parse_float(const char *s, double *out);

/* ---- yaml_json.c ---- */
struct yaml_document_s;
struct yaml_node_s;
/* A YAML mapping node as compact JSON text with sorted keys (free()), or NULL with why. */
char *config_yaml_mapping_json(struct yaml_document_s *doc, const struct yaml_node_s *n, char *why,
                               size_t whylen);

/* Frees a list's strings and empties it. */
void config_list_free(ConfigList *l);
/* Appends s (owned; NULL counts as out of memory) to l. 0, or -1 with s freed. */
int config_list_push(ConfigList *l, char *s);

#endif
