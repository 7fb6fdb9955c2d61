/* trainer/config/parse.c — the strict YAML config loader (see config.h); the key table it walks
 * is in config_schema.c.
 *
 * YAML is read with libyaml's document API; the schema is two levels deep (section ->
 * key -> scalar or sequence of scalars), so the walk never recurses into user data and an
 * alias cycle cannot loop. Scalar typing follows YAML 1.2's core schema for plain scalars
 * (so 1e-4 is a float, unlike YAML 1.1); a quoted scalar is always a string. */
#include "trainer/config/config.h"
#include "trainer/config/internal.h"
#include "trainer/store/store.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

/* ---- errors ------------------------------------------------------------------------------ */

/* Where a value came from: a file position or a --set argument. */
typedef struct Origin {
    const char *file; /* NULL for --set */
    const char *set;  /* the --set argument */
    const char *base; /* directory relative paths resolve against */
} Origin;

static void where(const Origin *o, const yaml_node_t *node, char *buf, size_t len) {
    if (o->file && node)
        snprintf(buf, len, "%s:%lu:%lu", o->file, (unsigned long)node->start_mark.line + 1,
                 (unsigned long)node->start_mark.column + 1);
    else if (o->file)
        snprintf(buf, len, "%s", o->file);
    else
        snprintf(buf, len, "--set %s", o->set);
}

/* ---- scalars ----------------------------------------------------------------------------- */

static const char *scalar_text(const yaml_node_t *n) {
    return (const char *)n->data.scalar.value;
}

static bool is_plain(const yaml_node_t *n) {
    return n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

static bool is_null(const yaml_node_t *n) {
    if (!n) return true;
    return is_plain(n) && config_is_null_text(scalar_text(n));
}

/* A config file larger than this is not a config file. */
#define CONFIG_MAX_BYTES (16u << 20)

/* ---- paths ------------------------------------------------------------------------------- */

/* base + "/" + p, or p when it is absolute, normalized. NULL when out of memory. */
static char *resolve_path(const char *base, const char *p) {
    size_t n = strlen(p) + (base ? strlen(base) : 0) + 2;
    char *out = malloc(n);
    if (!out) return NULL;
    if (p[0] == '/' || !base)
        snprintf(out, n, "%s", p);
    else
        snprintf(out, n, "%s/%s", base, p);
    path_normalize(out);
    return out;
}

/* ---- setting one key from a YAML node ---------------------------------------------------- */

/* Short rendering of what was found, for "got ..." in messages. */
static void describe(const yaml_node_t *n, char *buf, size_t len) {
    if (!n)
        snprintf(buf, len, "nothing");
    else if (n->type == YAML_MAPPING_NODE)
        snprintf(buf, len, "a mapping");
    else if (n->type == YAML_SEQUENCE_NODE)
        snprintf(buf, len, "a list");
    else
        snprintf(buf, len, "'%.60s'", scalar_text(n));
}

/* Sets the modules list from names (validated, canonical order, "all-linear" = all); null
 * empties it (the model family's default). */
static int set_modules(ConfigList *l, yaml_document_t *doc, const yaml_node_t *n, const char *kp,
                       const char *at, char *err, size_t errlen) {
    bool want[MODULE_COUNT] = {false};
    int count = 0;
    const yaml_node_t *items[64];
    if (is_null(n)) {
        config_list_free(l);
        return 0;
    }
    if (n->type == YAML_SCALAR_NODE) {
        items[count++] = n;
    } else if (n->type == YAML_SEQUENCE_NODE) {
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
             it++) {
            if (count == 64) {
                store_error(err, errlen, 0, "%s: too many entries (%s)", kp, at);
                return -1;
            }
            items[count++] = yaml_document_get_node(doc, *it);
        }
    }
    if (count == 0) {
        store_error(err, errlen, 0, "%s: expected a non-empty list of module names (%s)", kp, at);
        return -1;
    }
    for (int i = 0; i < count; i++) {
        const yaml_node_t *item = items[i];
        if (!item || item->type != YAML_SCALAR_NODE) {
            store_error(err, errlen, 0, "%s: expected module names, got a nested %s (%s)", kp,
                        item && item->type == YAML_MAPPING_NODE ? "mapping" : "list", at);
            return -1;
        }
        const char *s = scalar_text(item);
        if (!strcmp(s, "all-linear")) {
            for (int m = 0; m < MODULE_COUNT; m++) want[m] = true;
            continue;
        }
        int m = 0;
        while (m < MODULE_COUNT && strcmp(model_module_name((ModelModule)m), s) != 0) m++;
        if (m == MODULE_COUNT) {
            char names[256];
            model_module_list(names, sizeof names);
            store_error(err, errlen, 0,
                        "%s: unknown module '%.60s' (%s); allowed: %s, or all-linear", kp, s, at,
                        names);
            return -1;
        }
        want[m] = true;
    }
    ConfigList fresh = {NULL, 0};
    for (int m = 0; m < MODULE_COUNT; m++)
        if (want[m] && config_list_push(&fresh, strdup(model_module_name((ModelModule)m))) != 0) {
            config_list_free(&fresh);
            store_error(err, errlen, 0, "%s: out of memory", kp);
            return -1;
        }
    config_list_free(l);
    *l = fresh;
    return 0;
}

static int set_paths(ConfigList *l, yaml_document_t *doc, const yaml_node_t *n, const Key *k,
                     const char *kp, const char *at, const char *base, char *err, size_t errlen) {
    ConfigList fresh = {NULL, 0};
    if (is_null(n)) {
        if (!k->nullable) {
            store_error(err, errlen, 0, "%s: must not be empty; give %s (%s)", kp,
                        config_type_name(k), at);
            return -1;
        }
    } else if (n->type == YAML_SCALAR_NODE) {
        if (config_list_push(&fresh, resolve_path(base, scalar_text(n))) != 0) goto oom;
    } else if (n->type == YAML_SEQUENCE_NODE) {
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
             it++) {
            const yaml_node_t *item = yaml_document_get_node(doc, *it);
            if (!item || item->type != YAML_SCALAR_NODE || is_null(item)) {
                char got[80];
                describe(item, got, sizeof got);
                config_list_free(&fresh);
                store_error(err, errlen, 0, "%s: list entries must be paths, got %s (%s)", kp, got,
                            at);
                return -1;
            }
            if (config_list_push(&fresh, resolve_path(base, scalar_text(item))) != 0) goto oom;
        }
        if (fresh.n == 0 && !k->nullable) {
            store_error(err, errlen, 0, "%s: the list is empty; give at least one path (%s)", kp,
                        at);
            return -1;
        }
    } else {
        store_error(err, errlen, 0, "%s: expected %s, got a mapping (%s)", kp, config_type_name(k),
                    at);
        return -1;
    }
    config_list_free(l);
    *l = fresh;
    return 0;
oom:
    config_list_free(&fresh);
    store_error(err, errlen, 0, "%s: out of memory", kp);
    return -1;
}

static int set_key(Config *c, const Key *k, yaml_document_t *doc, const yaml_node_t *n,
                   const Origin *o, char *err, size_t errlen) {
    char kp[64], at[4200], got[80];
    snprintf(kp, sizeof kp, "%s.%s", k->section, k->name);
    where(o, n, at, sizeof at);
    if (k->type == K_MODULES)
        return set_modules(FIELD(c, k, ConfigList), doc, n, kp, at, err, errlen);
    if (k->type == K_PATHS)
        return set_paths(FIELD(c, k, ConfigList), doc, n, k, kp, at, o->base, err, errlen);
    if (k->type == K_JSON && !is_null(n)) {
        char why[200];
        char *v = config_yaml_mapping_json(doc, n, why, sizeof why);
        if (!v) return store_error(err, errlen, 0, "%s: %s (%s)", kp, why, at);
        free(*FIELD(c, k, char *));
        *FIELD(c, k, char *) = v;
        return 0;
    }
    if (is_null(n)) {
        if (!k->nullable) {
            store_error(err, errlen, 0, "%s: expected %s, got null (%s)", kp, config_type_name(k),
                        at);
            return -1;
        }
        if (k->type == K_INT)
            *FIELD(c, k, int64_t) = 0;
        else {
            free(*FIELD(c, k, char *));
            *FIELD(c, k, char *) = NULL;
        }
        return 0;
    }
    describe(n, got, sizeof got);
    if (n->type != YAML_SCALAR_NODE) {
        store_error(err, errlen, 0, "%s: expected %s, got %s (%s)", kp, config_type_name(k), got,
                    at);
        return -1;
    }
    const char *s = scalar_text(n);
    switch (k->type) {
    case K_STR:
    case K_PATH: {
        if (!*s) {
            store_error(err, errlen, 0, "%s: must not be empty (%s)", kp, at);
            return -1;
        }
        /* data.chat_template is inline Jinja (it has a '{') or a file path, resolved like one */
        bool path = k->type == K_PATH || (!strcmp(k->section, "data") &&
                                          !strcmp(k->name, "chat_template") && !strchr(s, '{'));
        char *v = path ? resolve_path(o->base, s) : strdup(s);
        if (!v) {
            store_error(err, errlen, 0, "%s: out of memory", kp);
            return -1;
        }
        free(*FIELD(c, k, char *));
        *FIELD(c, k, char *) = v;
        return 0;
    }
    case K_BOOL:
        if (!is_plain(n) || config_parse_bool(s, FIELD(c, k, bool)) != 0) {
            store_error(err, errlen, 0, "%s: expected true or false, got %s (%s)", kp, got, at);
            return -1;
        }
        return 0;
    case K_ENUM: {
        for (int i = 0; k->names[i]; i++)
            if (!strcmp(k->names[i], s)) {
                *FIELD(c, k, int) = i;
                return 0;
            }
        char allowed[128] = "";
        for (int i = 0; k->names[i]; i++) {
            size_t len = strlen(allowed);
            snprintf(allowed + len, sizeof allowed - len, "%s%s", i ? " | " : "", k->names[i]);
        }
        store_error(err, errlen, 0, "%s: invalid value %s (%s); allowed: %s", kp, got, at, allowed);
        return -1;
    }
    case K_INT: {
        int64_t v;
        if (!is_plain(n) || config_parse_int(s, &v) != 0) {
            store_error(err, errlen, 0, "%s: expected an integer, got %s (%s)", kp, got, at);
            return -1;
        }
        if (!config_in_range(k, (double)v)) {
            char r[96];
            config_range_text(k, r, sizeof r);
            store_error(err, errlen, 0, "%s: must be %s, got %s (%s)", kp, r, s, at);
            return -1;
        }
        *FIELD(c, k, int64_t) = v;
        return 0;
    }
    case K_FLOAT: {
        double v;
        if (!is_plain(n) || config_parse_float(s, &v) != 0) {
            store_error(err, errlen, 0, "%s: expected a number, got %s (%s)", kp, got, at);
            return -1;
        }
        if (!isfinite(v)) {
            store_error(err, errlen, 0, "%s: must be a finite number, got %s (%s)", kp, s, at);
            return -1;
        }
        if (!config_in_range(k, v)) {
            char r[96];
            config_range_text(k, r, sizeof r);
            store_error(err, errlen, 0, "%s: must be %s, got %s (%s)", kp, r, s, at);
            return -1;
        }
        *FIELD(c, k, double) = v;
        return 0;
    }
    default:
        return -1;
    }
}

/* ---- the document walk ------------------------------------------------------------------- */

/* Checks a mapping's keys are plain scalars and unique. */
static int check_mapping_keys(yaml_document_t *doc, const yaml_node_t *map, const char *prefix,
                              const Origin *o, char *err, size_t errlen) {
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        const yaml_node_t *key = yaml_document_get_node(doc, p->key);
        char at[4200];
        where(o, key, at, sizeof at);
        if (!key || key->type != YAML_SCALAR_NODE) {
            store_error(err, errlen, 0, "%s%skeys must be plain names (%s)", prefix,
                        *prefix ? ": " : "", at);
            return -1;
        }
        for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
            const yaml_node_t *prev = yaml_document_get_node(doc, q->key);
            if (prev && prev->type == YAML_SCALAR_NODE &&
                !strcmp(scalar_text(prev), scalar_text(key))) {
                store_error(err, errlen, 0, "%s%s%s: duplicate key (%s; first at line %lu)", prefix,
                            *prefix ? "." : "", scalar_text(key), at,
                            (unsigned long)prev->start_mark.line + 1);
                return -1;
            }
        }
    }
    return 0;
}

static int apply_document(Config *c, yaml_document_t *doc, const Origin *o, char *err,
                          size_t errlen) {
    const yaml_node_t *root = yaml_document_get_root_node(doc);
    char at[4200];
    if (!root || is_null(root)) return 0; /* empty file: defaults; required keys caught later */
    where(o, root, at, sizeof at);
    if (root->type != YAML_MAPPING_NODE) {
        store_error(err, errlen, 0,
                    "the config must be a mapping of sections (model, lora, data, train, "
                    "eval, output, log) (%s)",
                    at);
        return -1;
    }
    if (check_mapping_keys(doc, root, "", o, err, errlen) != 0) return -1;
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        const yaml_node_t *key = yaml_document_get_node(doc, p->key);
        const yaml_node_t *sec = yaml_document_get_node(doc, p->value);
        const char *name = scalar_text(key);
        where(o, key, at, sizeof at);
        if (!config_is_section(name)) {
            char hint[128];
            config_suggest(NULL, name, hint, sizeof hint);
            store_error(err, errlen, 0, "%.60s: unknown section (%s)%s", name, at, hint);
            return -1;
        }
        if (is_null(sec)) continue;
        where(o, sec, at, sizeof at);
        if (sec->type != YAML_MAPPING_NODE) {
            store_error(err, errlen, 0, "%s: expected a mapping of keys, got %s (%s)", name,
                        sec->type == YAML_SEQUENCE_NODE ? "a list" : "a scalar", at);
            return -1;
        }
        if (check_mapping_keys(doc, sec, name, o, err, errlen) != 0) return -1;
        for (yaml_node_pair_t *q = sec->data.mapping.pairs.start; q < sec->data.mapping.pairs.top;
             q++) {
            const yaml_node_t *k = yaml_document_get_node(doc, q->key);
            const Key *key_def = config_find_key(name, scalar_text(k));
            if (!key_def) {
                char hint[128];
                config_suggest(name, scalar_text(k), hint, sizeof hint);
                where(o, k, at, sizeof at);
                store_error(err, errlen, 0, "%s.%.60s: unknown key (%s)%s", name, scalar_text(k),
                            at, hint);
                return -1;
            }
            if (set_key(c, key_def, doc, yaml_document_get_node(doc, q->value), o, err, errlen) !=
                0)
                return -1;
        }
    }
    return 0;
}

/* Parses YAML text into doc. 0, or -1 with a positioned syntax error. */
static int parse_yaml(const unsigned char *text, size_t len, yaml_document_t *doc, const Origin *o,
                      char *err, size_t errlen) {
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        store_error(err, errlen, 0, "out of memory initialising the YAML parser");
        return -1;
    }
    yaml_parser_set_input_string(&parser, text, len);
    if (!yaml_parser_load(&parser, doc)) {
        if (o->file)
            store_error(err, errlen, 0, "%s:%lu:%lu: YAML syntax error: %s%s%s", o->file,
                        (unsigned long)parser.problem_mark.line + 1,
                        (unsigned long)parser.problem_mark.column + 1,
                        parser.problem ? parser.problem : "malformed input",
                        parser.context ? " " : "", parser.context ? parser.context : "");
        else
            store_error(err, errlen, 0, "--set %s: the value is not valid YAML: %s", o->set,
                        parser.problem ? parser.problem : "malformed input");
        yaml_parser_delete(&parser);
        return -1;
    }
    yaml_parser_delete(&parser);
    return 0;
}

/* One --set KEY=VALUE. */
static int apply_set(Config *c, const char *arg, const char *cwd, char *err, size_t errlen) {
    const char *eq = strchr(arg, '=');
    const char *dot = eq ? memchr(arg, '.', (size_t)(eq - arg)) : NULL;
    if (!eq || !dot || dot == arg || dot + 1 == eq) {
        store_error(err, errlen, 0,
                    "--set %s: expected KEY=VALUE with a dotted key, e.g. --set "
                    "train.lr=1e-4",
                    arg);
        return -1;
    }
    char section[64], name[64];
    if ((size_t)(dot - arg) >= sizeof section || (size_t)(eq - dot - 1) >= sizeof name) {
        store_error(err, errlen, 0, "--set %s: unknown key", arg);
        return -1;
    }
    snprintf(section, sizeof section, "%.*s", (int)(dot - arg), arg);
    snprintf(name, sizeof name, "%.*s", (int)(eq - dot - 1), dot + 1);
    char hint[128];
    if (!config_is_section(section)) {
        config_suggest(NULL, section, hint, sizeof hint);
        store_error(err, errlen, 0, "--set %s: unknown section `%s`%s", arg, section, hint);
        return -1;
    }
    const Key *k = config_find_key(section, name);
    if (!k) {
        config_suggest(section, name, hint, sizeof hint);
        store_error(err, errlen, 0, "--set %s: unknown key `%s.%s`%s", arg, section, name, hint);
        return -1;
    }
    Origin o = {NULL, arg, cwd};
    yaml_document_t doc;
    const char *value = eq + 1;
    if (parse_yaml((const unsigned char *)value, strlen(value), &doc, &o, err, errlen) != 0)
        return -1;
    const yaml_node_t *root = yaml_document_get_root_node(&doc);
    int rc = set_key(c, k, &doc, root, &o, err, errlen);
    yaml_document_delete(&doc);
    return rc;
}

static int check_required(const Config *c, const char *file, char *err, size_t errlen) {
    const char *missing = !c->model.path         ? "model.path"
                          : c->data.train.n == 0 ? "data.train"
                          : !c->output.dir       ? "output.dir"
                                                 : NULL;
    if (missing) {
        store_error(err, errlen, 0,
                    "%s: required key missing (%s); add it to the config or pass --set "
                    "%s=...",
                    missing, file, missing);
        return -1;
    }
    return 0;
}

/* The absolute directory holding path. NULL when out of memory or it cannot be resolved. */
static char *config_dir(const char *path) {
    char *copy = strdup(path);
    if (!copy) return NULL;
    char *slash = strrchr(copy, '/');
    const char *dir = slash ? (slash == copy ? "/" : (*slash = '\0', copy)) : ".";
    char *abs = realpath(dir, NULL);
    free(copy);
    return abs;
}

int config_load(const char *path, const char *const *sets, int n_sets, Config *out, char *err,
                size_t errlen) {
    if (config_defaults(out) != 0) {
        store_error(err, errlen, 0, "out of memory");
        return CONFIG_UNREADABLE;
    }
    size_t len;
    char *text = store_read_file(path, CONFIG_MAX_BYTES, &len, err, errlen);
    if (!text) {
        config_free(out);
        return CONFIG_UNREADABLE;
    }
    char *base = config_dir(path);
    char *cwd = getcwd(NULL, 0);
    int rc = CONFIG_INVALID;
    yaml_document_t doc;
    Origin o = {path, NULL, base};
    if (!base || !cwd) {
        store_error(err, errlen, 0, "%s: cannot resolve the config's directory: %s", path,
                    strerror(errno));
        rc = CONFIG_UNREADABLE;
    } else if (memchr(text, '\0', len)) {
        store_error(err, errlen, 0, "%s: contains NUL bytes; is it a YAML text file?", path);
    } else if (parse_yaml((unsigned char *)text, len, &doc, &o, err, errlen) == 0) {
        int bad = apply_document(out, &doc, &o, err, errlen);
        yaml_document_delete(&doc);
        for (int i = 0; !bad && i < n_sets; i++) bad = apply_set(out, sets[i], cwd, err, errlen);
        if (!bad) bad = check_required(out, path, err, errlen);
        if (!bad) rc = CONFIG_OK;
    }
    free(text);
    free(base);
    free(cwd);
    if (rc != 0) config_free(out);
    return rc;
}
