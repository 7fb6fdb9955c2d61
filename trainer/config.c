/* trainer/config.c — the config schema and the strict YAML loader (see config.h).
 *
 * One table describes every key: its section, name, type, where it lives in Config, its
 * range, and its enum names. Loading, --set, range checks, "did you mean" and the resolved
 * output all walk the same table, so a key added here is handled everywhere.
 *
 * YAML is read with libyaml's document API; the schema is two levels deep (section ->
 * key -> scalar or sequence of scalars), so the walk never recurses into user data and an
 * alias cycle cannot loop. Scalar typing follows YAML 1.2's core schema for plain scalars
 * (so 1e-4 is a float, unlike YAML 1.1); a quoted scalar is always a string. */
#include "trainer/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

typedef enum { K_STR, K_PATH, K_INT, K_FLOAT, K_BOOL, K_ENUM, K_PATHS, K_MODULES } KeyType;

typedef struct Key {
    const char *section, *name;
    KeyType type;
    size_t off;               /* offsetof(Config, ...) */
    bool nullable;            /* null allowed (strings -> NULL, lists -> empty, ints -> 0) */
    double lo, hi;            /* numeric range */
    bool lo_open, hi_open;    /* exclusive bounds */
    const char *const *names; /* K_ENUM: value names, index = enum value */
} Key;

static const char *const DTYPE_NAMES[] = {"f32", "bf16", NULL};
static const char *const OVERFLOW_NAMES[] = {"truncate", "split", "drop", NULL};
static const char *const ON_ERROR_NAMES[] = {"fail", "skip", NULL};
static const char *const SCHEDULER_NAMES[] = {"constant", "linear", "cosine", NULL};
static const char *const MODULE_NAMES[] = {"q_proj",    "k_proj",  "v_proj",    "o_proj",
                                           "gate_proj", "up_proj", "down_proj", NULL};

#define INF                             INFINITY
#define OFF(f)                          offsetof(Config, f)
#define RANGE(lo, hi, lo_open, hi_open) lo, hi, lo_open, hi_open
#define ANY                             RANGE(-INF, INF, false, false)

static const Key KEYS[] = {
    {"model", "path", K_PATH, OFF(model.path), false, ANY, NULL},
    {"model", "dtype", K_ENUM, OFF(model.dtype), false, ANY, DTYPE_NAMES},
    {"lora", "r", K_INT, OFF(lora.r), false, RANGE(1, 65536, false, false), NULL},
    {"lora", "alpha", K_FLOAT, OFF(lora.alpha), false, RANGE(0, INF, true, false), NULL},
    {"lora", "dropout", K_FLOAT, OFF(lora.dropout), false, RANGE(0, 1, false, true), NULL},
    {"lora", "target_modules", K_MODULES, OFF(lora.target_modules), false, ANY, NULL},
    {"lora", "rslora", K_BOOL, OFF(lora.rslora), false, ANY, NULL},
    {"lora", "init_from", K_PATH, OFF(lora.init_from), true, ANY, NULL},
    {"data", "train", K_PATHS, OFF(data.train), false, ANY, NULL},
    {"data", "valid", K_PATHS, OFF(data.valid), true, ANY, NULL},
    {"data", "input_field", K_STR, OFF(data.input_field), false, ANY, NULL},
    {"data", "labels_field", K_STR, OFF(data.labels_field), true, ANY, NULL},
    {"data", "seq_len", K_INT, OFF(data.seq_len), false, RANGE(2, 1 << 20, false, false), NULL},
    {"data", "packing", K_BOOL, OFF(data.packing), false, ANY, NULL},
    {"data", "overflow", K_ENUM, OFF(data.overflow), false, ANY, OVERFLOW_NAMES},
    {"data", "shuffle", K_BOOL, OFF(data.shuffle), false, ANY, NULL},
    {"data", "shuffle_buffer", K_INT, OFF(data.shuffle_buffer), false, RANGE(1, 1e8, false, false),
     NULL},
    {"data", "on_error", K_ENUM, OFF(data.on_error), false, ANY, ON_ERROR_NAMES},
    {"train", "batch_size", K_INT, OFF(train.batch_size), false, RANGE(1, 1 << 20, false, false),
     NULL},
    {"train", "grad_accum", K_INT, OFF(train.grad_accum), false, RANGE(1, 1 << 20, false, false),
     NULL},
    {"train", "max_steps", K_INT, OFF(train.max_steps), false, RANGE(1, 1e15, false, false), NULL},
    {"train", "epochs", K_INT, OFF(train.epochs), true, RANGE(1, 1e9, false, false), NULL},
    {"train", "lr", K_FLOAT, OFF(train.lr), false, RANGE(0, INF, true, false), NULL},
    {"train", "lr_scheduler", K_ENUM, OFF(train.lr_scheduler), false, ANY, SCHEDULER_NAMES},
    {"train", "warmup_steps", K_INT, OFF(train.warmup_steps), false, RANGE(0, 1e15, false, false),
     NULL},
    {"train", "min_lr_ratio", K_FLOAT, OFF(train.min_lr_ratio), false, RANGE(0, 1, false, false),
     NULL},
    {"train", "weight_decay", K_FLOAT, OFF(train.weight_decay), false, RANGE(0, INF, false, false),
     NULL},
    {"train", "adam_beta1", K_FLOAT, OFF(train.adam_beta1), false, RANGE(0, 1, false, true), NULL},
    {"train", "adam_beta2", K_FLOAT, OFF(train.adam_beta2), false, RANGE(0, 1, false, true), NULL},
    {"train", "adam_eps", K_FLOAT, OFF(train.adam_eps), false, RANGE(0, INF, true, false), NULL},
    {"train", "max_grad_norm", K_FLOAT, OFF(train.max_grad_norm), false,
     RANGE(0, INF, false, false), NULL},
    {"train", "seed", K_INT, OFF(train.seed), false, RANGE(0, 9.2e18, false, false), NULL},
    {"train", "threads", K_INT, OFF(train.threads), false, RANGE(0, 4096, false, false), NULL},
    {"eval", "every", K_INT, OFF(eval.every), false, RANGE(0, 1e15, false, false), NULL},
    {"eval", "max_batches", K_INT, OFF(eval.max_batches), false, RANGE(0, 1e15, false, false),
     NULL},
    {"output", "dir", K_PATH, OFF(output.dir), false, ANY, NULL},
    {"output", "save_every", K_INT, OFF(output.save_every), false, RANGE(0, 1e15, false, false),
     NULL},
    {"output", "keep", K_INT, OFF(output.keep), false, RANGE(1, 1e6, false, false), NULL},
    {"log", "every", K_INT, OFF(log.every), false, RANGE(1, 1e15, false, false), NULL},
};
#define N_KEYS ((int)(sizeof KEYS / sizeof KEYS[0]))

static const char *const SECTIONS[] = {"model", "lora", "data", "train", "eval", "output", "log"};
#define N_SECTIONS ((int)(sizeof SECTIONS / sizeof SECTIONS[0]))

/* Names users bring from PEFT / HF Trainer / axolotl, mapped to ours for suggestions. */
static const char *const ALIASES[][2] = {
    {"learning_rate", "lr"},
    {"lora_alpha", "alpha"},
    {"lora_dropout", "dropout"},
    {"rank", "r"},
    {"lora_r", "r"},
    {"use_rslora", "rslora"},
    {"warmup", "warmup_steps"},
    {"gradient_accumulation_steps", "grad_accum"},
    {"num_epochs", "epochs"},
    {"num_train_epochs", "epochs"},
    {"max_seq_length", "seq_len"},
    {"sequence_len", "seq_len"},
    {"lr_scheduler_type", "lr_scheduler"},
    {"scheduler", "lr_scheduler"},
    {"micro_batch_size", "batch_size"},
    {"save_steps", "save_every"},
    {"logging_steps", "every"},
    {"eval_steps", "every"},
    {"save_total_limit", "keep"},
    {"output_dir", "dir"},
};

/* ---- errors ------------------------------------------------------------------------------ */

__attribute__((format(printf, 3, 4))) static void set_err(char *err, size_t errlen, const char *fmt,
                                                          ...) {
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

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

/* ---- did you mean ----------------------------------------------------------------------- */

static int levenshtein(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63) return 99;
    int row[64];
    for (size_t j = 0; j <= lb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j];
            int sub = diag + (tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]));
            int best = up + 1 < row[j - 1] + 1 ? up + 1 : row[j - 1] + 1;
            row[j] = sub < best ? sub : best;
            diag = up;
        }
    }
    return row[lb];
}

static int close_enough(const char *cand, int dist) {
    int len = (int)strlen(cand);
    return dist <= (len <= 4 ? 1 : len / 3 > 2 ? len / 3 : 2);
}

/* Appends a suggestion for an unknown key `name` in `section` (NULL: a section name). */
static void suggest(const char *section, const char *name, char *buf, size_t len) {
    buf[0] = '\0';
    const char *best = NULL, *best_section = section;
    int best_d = 99;
    if (!section) {
        for (int s = 0; s < N_SECTIONS; s++) {
            int d = levenshtein(name, SECTIONS[s]);
            if (d < best_d && close_enough(SECTIONS[s], d)) best_d = d, best = SECTIONS[s];
        }
        if (best) snprintf(buf, len, "; did you mean `%s`?", best);
        return;
    }
    /* The exact name under another section (train.seq_len -> data.seq_len). */
    for (int k = 0; k < N_KEYS; k++)
        if (strcmp(KEYS[k].name, name) == 0) {
            snprintf(buf, len, "; did you mean `%s.%s`?", KEYS[k].section, name);
            return;
        }
    for (int k = 0; k < N_KEYS; k++) {
        if (strcmp(KEYS[k].section, section) != 0) continue;
        int d = levenshtein(name, KEYS[k].name);
        if (d < best_d && close_enough(KEYS[k].name, d)) best_d = d, best = KEYS[k].name;
    }
    for (size_t a = 0; a < sizeof ALIASES / sizeof ALIASES[0]; a++) {
        int d = levenshtein(name, ALIASES[a][0]);
        if (d >= best_d || !close_enough(ALIASES[a][0], d)) continue;
        for (int k = 0; k < N_KEYS; k++)
            if (strcmp(KEYS[k].name, ALIASES[a][1]) == 0 && strcmp(KEYS[k].section, section) == 0) {
                best_d = d, best = KEYS[k].name, best_section = section;
                break;
            }
    }
    if (best) snprintf(buf, len, "; did you mean `%s.%s`?", best_section, best);
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
    if (!is_plain(n)) return false;
    const char *s = scalar_text(n);
    return !*s || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
           strcmp(s, "NULL") == 0;
}

static int parse_bool(const char *s, bool *out) {
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE")) return *out = true, 0;
    if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE")) return *out = false, 0;
    return -1;
}

static int parse_int(const char *s, int64_t *out) {
    const char *p = s + (*s == '-' || *s == '+');
    if (!isdigit((unsigned char)*p)) return -1;
    for (const char *q = p; *q; q++)
        if (!isdigit((unsigned char)*q)) return -1;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno == ERANGE || *end) return -1;
    *out = v;
    return 0;
}

/* YAML 1.2 core float: [-+]? ( . digits | digits [. digits*] ) ([eE] [-+]? digits)?, or an
 * integer; .inf/.nan are recognised so the range check can reject them by name. */
static int parse_float(const char *s, double *out) {
    const char *p = s + (*s == '-' || *s == '+');
    if (!strcmp(p, ".inf") || !strcmp(p, ".Inf") || !strcmp(p, ".INF"))
        return *out = *s == '-' ? -INFINITY : INFINITY, 0;
    if (!strcmp(p, ".nan") || !strcmp(p, ".NaN") || !strcmp(p, ".NAN")) return *out = NAN, 0;
    int digits = 0;
    while (isdigit((unsigned char)*p)) p++, digits++;
    if (*p == '.') {
        p++;
        while (isdigit((unsigned char)*p)) p++, digits++;
    }
    if (!digits) return -1;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '-' || *p == '+') p++;
        if (!isdigit((unsigned char)*p)) return -1;
        while (isdigit((unsigned char)*p)) p++;
    }
    if (*p) return -1;
    *out = strtod(s, NULL);
    return 0;
}

static void range_text(const Key *k, char *buf, size_t len) {
    char lo[32], hi[32];
    snprintf(lo, sizeof lo, "%g", k->lo);
    snprintf(hi, sizeof hi, "%g", k->hi);
    if (isinf(k->hi))
        snprintf(buf, len, "%s %s", k->lo_open ? ">" : ">=", lo);
    else
        snprintf(buf, len, "in %s%s, %s%s", k->lo_open ? "(" : "[", lo, hi, k->hi_open ? ")" : "]");
}

static bool in_range(const Key *k, double v) {
    if (isnan(v)) return false;
    if (k->lo_open ? !(v > k->lo) : !(v >= k->lo)) return false;
    if (k->hi_open ? !(v < k->hi) : !(v <= k->hi)) return false;
    return true;
}

/* ---- paths ------------------------------------------------------------------------------- */

/* base + "/" + p, or p when it is absolute. NULL when out of memory. */
static char *resolve_path(const char *base, const char *p) {
    if (p[0] == '/' || !base) return strdup(p);
    if (p[0] == '.' && p[1] == '/') p += 2;
    size_t n = strlen(base) + strlen(p) + 2;
    char *out = malloc(n);
    if (out) snprintf(out, n, "%s/%s", base, p);
    return out;
}

static void list_free(ConfigList *l) {
    for (int i = 0; i < l->n; i++) free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

static int list_push(ConfigList *l, char *s) {
    if (!s) return -1;
    char **grown = realloc(l->items, (size_t)(l->n + 1) * sizeof *grown);
    if (!grown) {
        free(s);
        return -1;
    }
    l->items = grown;
    l->items[l->n++] = s;
    return 0;
}

/* ---- setting one key from a YAML node ---------------------------------------------------- */

#define FIELD(c, k, T) ((T *)((char *)(c) + (k)->off))

static const char *type_name(const Key *k) {
    switch (k->type) {
    case K_INT:
        return "an integer";
    case K_FLOAT:
        return "a number";
    case K_BOOL:
        return "true or false";
    case K_PATHS:
        return "a path or a list of paths";
    case K_MODULES:
        return "a list of module names";
    default:
        return "a string";
    }
}

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

/* Sets the modules list from names (validated, canonical order, "all-linear" = all). */
static int set_modules(ConfigList *l, yaml_document_t *doc, const yaml_node_t *n, const char *kp,
                       const char *at, char *err, size_t errlen) {
    bool want[7] = {false};
    int count = 0;
    const yaml_node_t *items[64];
    if (n->type == YAML_SCALAR_NODE) {
        items[count++] = n;
    } else if (n->type == YAML_SEQUENCE_NODE) {
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
             it++) {
            if (count == 64) {
                set_err(err, errlen, "%s: too many entries (%s)", kp, at);
                return -1;
            }
            items[count++] = yaml_document_get_node(doc, *it);
        }
    }
    if (count == 0) {
        set_err(err, errlen, "%s: expected a non-empty list of module names (%s)", kp, at);
        return -1;
    }
    for (int i = 0; i < count; i++) {
        const yaml_node_t *item = items[i];
        if (!item || item->type != YAML_SCALAR_NODE) {
            set_err(err, errlen, "%s: expected module names, got a nested %s (%s)", kp,
                    item && item->type == YAML_MAPPING_NODE ? "mapping" : "list", at);
            return -1;
        }
        const char *s = scalar_text(item);
        if (!strcmp(s, "all-linear")) {
            for (int m = 0; m < 7; m++) want[m] = true;
            continue;
        }
        int m = 0;
        while (MODULE_NAMES[m] && strcmp(MODULE_NAMES[m], s) != 0) m++;
        if (!MODULE_NAMES[m]) {
            set_err(err, errlen,
                    "%s: unknown module '%.60s' (%s); allowed: q_proj, k_proj, v_proj, o_proj, "
                    "gate_proj, up_proj, down_proj, or all-linear",
                    kp, s, at);
            return -1;
        }
        want[m] = true;
    }
    ConfigList fresh = {NULL, 0};
    for (int m = 0; m < 7; m++)
        if (want[m] && list_push(&fresh, strdup(MODULE_NAMES[m])) != 0) {
            list_free(&fresh);
            set_err(err, errlen, "%s: out of memory", kp);
            return -1;
        }
    list_free(l);
    *l = fresh;
    return 0;
}

static int set_paths(ConfigList *l, yaml_document_t *doc, const yaml_node_t *n, const Key *k,
                     const char *kp, const char *at, const char *base, char *err, size_t errlen) {
    ConfigList fresh = {NULL, 0};
    if (is_null(n)) {
        if (!k->nullable) {
            set_err(err, errlen, "%s: must not be empty; give %s (%s)", kp, type_name(k), at);
            return -1;
        }
    } else if (n->type == YAML_SCALAR_NODE) {
        if (list_push(&fresh, resolve_path(base, scalar_text(n))) != 0) goto oom;
    } else if (n->type == YAML_SEQUENCE_NODE) {
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
             it++) {
            const yaml_node_t *item = yaml_document_get_node(doc, *it);
            if (!item || item->type != YAML_SCALAR_NODE || is_null(item)) {
                char got[80];
                describe(item, got, sizeof got);
                list_free(&fresh);
                set_err(err, errlen, "%s: list entries must be paths, got %s (%s)", kp, got, at);
                return -1;
            }
            if (list_push(&fresh, resolve_path(base, scalar_text(item))) != 0) goto oom;
        }
        if (fresh.n == 0 && !k->nullable) {
            set_err(err, errlen, "%s: the list is empty; give at least one path (%s)", kp, at);
            return -1;
        }
    } else {
        set_err(err, errlen, "%s: expected %s, got a mapping (%s)", kp, type_name(k), at);
        return -1;
    }
    list_free(l);
    *l = fresh;
    return 0;
oom:
    list_free(&fresh);
    set_err(err, errlen, "%s: out of memory", kp);
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
    if (is_null(n)) {
        if (!k->nullable) {
            set_err(err, errlen, "%s: expected %s, got null (%s)", kp, type_name(k), at);
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
        set_err(err, errlen, "%s: expected %s, got %s (%s)", kp, type_name(k), got, at);
        return -1;
    }
    const char *s = scalar_text(n);
    switch (k->type) {
    case K_STR:
    case K_PATH: {
        if (!*s) {
            set_err(err, errlen, "%s: must not be empty (%s)", kp, at);
            return -1;
        }
        char *v = k->type == K_PATH ? resolve_path(o->base, s) : strdup(s);
        if (!v) {
            set_err(err, errlen, "%s: out of memory", kp);
            return -1;
        }
        free(*FIELD(c, k, char *));
        *FIELD(c, k, char *) = v;
        return 0;
    }
    case K_BOOL:
        if (!is_plain(n) || parse_bool(s, FIELD(c, k, bool)) != 0) {
            set_err(err, errlen, "%s: expected true or false, got %s (%s)", kp, got, at);
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
        set_err(err, errlen, "%s: invalid value %s (%s); allowed: %s", kp, got, at, allowed);
        return -1;
    }
    case K_INT: {
        int64_t v;
        if (!is_plain(n) || parse_int(s, &v) != 0) {
            set_err(err, errlen, "%s: expected an integer, got %s (%s)", kp, got, at);
            return -1;
        }
        if (!in_range(k, (double)v)) {
            char r[96];
            range_text(k, r, sizeof r);
            set_err(err, errlen, "%s: must be %s, got %s (%s)", kp, r, s, at);
            return -1;
        }
        *FIELD(c, k, int64_t) = v;
        return 0;
    }
    case K_FLOAT: {
        double v;
        if (!is_plain(n) || parse_float(s, &v) != 0) {
            set_err(err, errlen, "%s: expected a number, got %s (%s)", kp, got, at);
            return -1;
        }
        if (!isfinite(v)) {
            set_err(err, errlen, "%s: must be a finite number, got %s (%s)", kp, s, at);
            return -1;
        }
        if (!in_range(k, v)) {
            char r[96];
            range_text(k, r, sizeof r);
            set_err(err, errlen, "%s: must be %s, got %s (%s)", kp, r, s, at);
            return -1;
        }
        *FIELD(c, k, double) = v;
        return 0;
    }
    default:
        return -1;
    }
}

static const Key *find_key(const char *section, const char *name) {
    for (int k = 0; k < N_KEYS; k++)
        if (!strcmp(KEYS[k].section, section) && !strcmp(KEYS[k].name, name)) return &KEYS[k];
    return NULL;
}

static bool is_section(const char *s) {
    for (int i = 0; i < N_SECTIONS; i++)
        if (!strcmp(SECTIONS[i], s)) return true;
    return false;
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
            set_err(err, errlen, "%s%skeys must be plain names (%s)", prefix, *prefix ? ": " : "",
                    at);
            return -1;
        }
        for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
            const yaml_node_t *prev = yaml_document_get_node(doc, q->key);
            if (prev && prev->type == YAML_SCALAR_NODE &&
                !strcmp(scalar_text(prev), scalar_text(key))) {
                set_err(err, errlen, "%s%s%s: duplicate key (%s; first at line %lu)", prefix,
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
        set_err(err, errlen,
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
        if (!is_section(name)) {
            char hint[128];
            suggest(NULL, name, hint, sizeof hint);
            set_err(err, errlen, "%.60s: unknown section (%s)%s", name, at, hint);
            return -1;
        }
        if (is_null(sec)) continue;
        where(o, sec, at, sizeof at);
        if (sec->type != YAML_MAPPING_NODE) {
            set_err(err, errlen, "%s: expected a mapping of keys, got %s (%s)", name,
                    sec->type == YAML_SEQUENCE_NODE ? "a list" : "a scalar", at);
            return -1;
        }
        if (check_mapping_keys(doc, sec, name, o, err, errlen) != 0) return -1;
        for (yaml_node_pair_t *q = sec->data.mapping.pairs.start; q < sec->data.mapping.pairs.top;
             q++) {
            const yaml_node_t *k = yaml_document_get_node(doc, q->key);
            const Key *key_def = find_key(name, scalar_text(k));
            if (!key_def) {
                char hint[128];
                suggest(name, scalar_text(k), hint, sizeof hint);
                where(o, k, at, sizeof at);
                set_err(err, errlen, "%s.%.60s: unknown key (%s)%s", name, scalar_text(k), at,
                        hint);
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
        set_err(err, errlen, "out of memory initialising the YAML parser");
        return -1;
    }
    yaml_parser_set_input_string(&parser, text, len);
    if (!yaml_parser_load(&parser, doc)) {
        if (o->file)
            set_err(err, errlen, "%s:%lu:%lu: YAML syntax error: %s%s%s", o->file,
                    (unsigned long)parser.problem_mark.line + 1,
                    (unsigned long)parser.problem_mark.column + 1,
                    parser.problem ? parser.problem : "malformed input", parser.context ? " " : "",
                    parser.context ? parser.context : "");
        else
            set_err(err, errlen, "--set %s: the value is not valid YAML: %s", o->set,
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
        set_err(err, errlen,
                "--set %s: expected KEY=VALUE with a dotted key, e.g. --set "
                "train.lr=1e-4",
                arg);
        return -1;
    }
    char section[64], name[64];
    if ((size_t)(dot - arg) >= sizeof section || (size_t)(eq - dot - 1) >= sizeof name) {
        set_err(err, errlen, "--set %s: unknown key", arg);
        return -1;
    }
    snprintf(section, sizeof section, "%.*s", (int)(dot - arg), arg);
    snprintf(name, sizeof name, "%.*s", (int)(eq - dot - 1), dot + 1);
    char hint[128];
    if (!is_section(section)) {
        suggest(NULL, section, hint, sizeof hint);
        set_err(err, errlen, "--set %s: unknown section `%s`%s", arg, section, hint);
        return -1;
    }
    const Key *k = find_key(section, name);
    if (!k) {
        suggest(section, name, hint, sizeof hint);
        set_err(err, errlen, "--set %s: unknown key `%s.%s`%s", arg, section, name, hint);
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
        set_err(err, errlen,
                "%s: required key missing (%s); add it to the config or pass --set "
                "%s=...",
                missing, file, missing);
        return -1;
    }
    return 0;
}

/* ---- public ------------------------------------------------------------------------------ */

int config_defaults(Config *c) {
    memset(c, 0, sizeof *c);
    c->model.dtype = CONFIG_DTYPE_F32;
    c->lora.r = 8;
    c->lora.alpha = 16;
    c->lora.dropout = 0.0;
    c->lora.rslora = false;
    c->data.input_field = strdup("input_ids");
    c->data.labels_field = strdup("labels");
    c->data.seq_len = 512;
    c->data.packing = false;
    c->data.overflow = OVERFLOW_TRUNCATE;
    c->data.shuffle = true;
    c->data.shuffle_buffer = 10000;
    c->data.on_error = ON_ERROR_FAIL;
    c->train.batch_size = 4;
    c->train.grad_accum = 1;
    c->train.max_steps = 1000;
    c->train.epochs = 0;
    c->train.lr = 2.0e-4;
    c->train.lr_scheduler = LR_COSINE;
    c->train.warmup_steps = 0;
    c->train.min_lr_ratio = 0.0;
    c->train.weight_decay = 0.0;
    c->train.adam_beta1 = 0.9;
    c->train.adam_beta2 = 0.999;
    c->train.adam_eps = 1.0e-8;
    c->train.max_grad_norm = 1.0;
    c->train.seed = 42;
    c->train.threads = 0;
    c->eval.every = 0;
    c->eval.max_batches = 0;
    c->output.save_every = 100;
    c->output.keep = 3;
    c->log.every = 10;
    int ok = c->data.input_field && c->data.labels_field;
    for (int m = 0; ok && m < 7; m++)
        ok = list_push(&c->lora.target_modules, strdup(MODULE_NAMES[m])) == 0;
    if (!ok) config_free(c);
    return ok ? 0 : -1;
}

void config_free(Config *c) {
    if (!c) return;
    free(c->model.path);
    free(c->lora.init_from);
    list_free(&c->lora.target_modules);
    list_free(&c->data.train);
    list_free(&c->data.valid);
    free(c->data.input_field);
    free(c->data.labels_field);
    free(c->output.dir);
    memset(c, 0, sizeof *c);
}

/* Reads the whole file. NULL with err on failure. */
static char *read_text(const char *path, size_t *len, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        set_err(err, errlen, "%s: cannot open the config: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0, got;
    char *buf = malloc(cap);
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n < cap) continue;
        char *grown = cap < (16u << 20) ? realloc(buf, cap * 2) : NULL;
        if (!grown) free(buf);
        buf = grown;
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf || bad) {
        free(buf);
        set_err(err, errlen, "%s: cannot read the config (%s)", path,
                bad ? "read error" : "too large or out of memory");
        return NULL;
    }
    *len = n;
    return buf;
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
        set_err(err, errlen, "out of memory");
        return 1;
    }
    size_t len;
    char *text = read_text(path, &len, err, errlen);
    if (!text) {
        config_free(out);
        return 1;
    }
    char *base = config_dir(path);
    char *cwd = getcwd(NULL, 0);
    int rc = 2;
    yaml_document_t doc;
    Origin o = {path, NULL, base};
    if (!base || !cwd) {
        set_err(err, errlen, "%s: cannot resolve the config's directory: %s", path,
                strerror(errno));
        rc = 1;
    } else if (memchr(text, '\0', len)) {
        set_err(err, errlen, "%s: contains NUL bytes; is it a YAML text file?", path);
    } else if (parse_yaml((unsigned char *)text, len, &doc, &o, err, errlen) == 0) {
        int bad = apply_document(out, &doc, &o, err, errlen);
        yaml_document_delete(&doc);
        for (int i = 0; !bad && i < n_sets; i++) bad = apply_set(out, sets[i], cwd, err, errlen);
        if (!bad) bad = check_required(out, path, err, errlen);
        if (!bad) rc = 0;
    }
    free(text);
    free(base);
    free(cwd);
    if (rc != 0) config_free(out);
    return rc;
}

const char *config_key_path(int i) {
    static char paths[N_KEYS][48];
    if (i < 0 || i >= N_KEYS) return NULL;
    if (!paths[i][0]) snprintf(paths[i], sizeof paths[i], "%s.%s", KEYS[i].section, KEYS[i].name);
    return paths[i];
}

/* Appends s to buf as a YAML double-quoted scalar. */
static int put_quoted(char *buf, size_t len, size_t *pos, const char *s) {
    if (*pos < len) buf[(*pos)++] = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\')
            snprintf(esc, sizeof esc, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            snprintf(esc, sizeof esc, "\\x%02x", *p);
        else
            snprintf(esc, sizeof esc, "%c", *p);
        for (char *e = esc; *e; e++)
            if (*pos < len)
                buf[(*pos)++] = *e;
            else
                return -1;
    }
    if (*pos < len) buf[(*pos)++] = '"';
    return *pos < len ? 0 : -1;
}

int config_format_value(const Config *c, int i, char *buf, size_t len) {
    if (i < 0 || i >= N_KEYS || len == 0) return -1;
    const Key *k = &KEYS[i];
    Config *cc = (Config *)c; /* FIELD casts away const; nothing is written */
    int n = 0;
    switch (k->type) {
    case K_STR:
    case K_PATH: {
        const char *s = *FIELD(cc, k, char *);
        if (!s)
            n = snprintf(buf, len, "null");
        else {
            size_t pos = 0;
            if (put_quoted(buf, len, &pos, s) != 0) return -1;
            buf[pos] = '\0';
            n = (int)pos;
        }
        break;
    }
    case K_INT:
        if (k->nullable && *FIELD(cc, k, int64_t) == 0)
            n = snprintf(buf, len, "null");
        else
            n = snprintf(buf, len, "%lld", (long long)*FIELD(cc, k, int64_t));
        break;
    case K_FLOAT:
        n = snprintf(buf, len, "%.17g", *FIELD(cc, k, double));
        break;
    case K_BOOL:
        n = snprintf(buf, len, "%s", *FIELD(cc, k, bool) ? "true" : "false");
        break;
    case K_ENUM:
        n = snprintf(buf, len, "%s", k->names[*FIELD(cc, k, int)]);
        break;
    case K_PATHS:
    case K_MODULES: {
        const ConfigList *l = FIELD(cc, k, ConfigList);
        if (l->n == 0) {
            n = snprintf(buf, len, "null");
            break;
        }
        size_t pos = 0;
        for (int j = 0; j < l->n; j++) {
            const char *sep = j ? ", " : "[";
            for (; *sep; sep++)
                if (pos < len) buf[pos++] = *sep;
            if (put_quoted(buf, len, &pos, l->items[j]) != 0) return -1;
        }
        if (pos + 1 >= len) return -1;
        buf[pos++] = ']';
        buf[pos] = '\0';
        n = (int)pos;
        break;
    }
    }
    return n >= 0 && (size_t)n < len ? n : -1;
}
