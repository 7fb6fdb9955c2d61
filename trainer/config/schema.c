/* trainer/config/schema.c — the config schema: one table describing every key (its section,
 * name, type, where it lives in Config, its range and its enum names), and the "did you mean"
 * for names it does not know.
 *
 * Loading, --set, range checks, the suggestions and the resolved output all walk the same
 * table, so a key added here is handled everywhere. */
#include "trainer/config/internal.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const DTYPE_NAMES[] = {"f32", "bf16", NULL};
static const char *const QUANTIZE_NAMES[] = {"none", "q8_0", "q4_0", "q4_k", "q5_k", "q6_k", NULL};
static const char *const OVERFLOW_NAMES[] = {"truncate", "split", "drop", NULL};
static const char *const ON_ERROR_NAMES[] = {"fail", "skip", NULL};
static const char *const SCHEDULER_NAMES[] = {"constant", "linear", "cosine", NULL};
static const char *const ON_NONFINITE_NAMES[] = {"stop", "skip", NULL};
static const char *const PRECISION_NAMES[] = {"auto", "f32", "bf16", NULL};
static const char *const OBJECTIVE_NAMES[] = {"sft", "dpo", "orpo", NULL};
static const char *const DPO_LOSS_NAMES[] = {"sigmoid", "ipo", "hinge", NULL};
static const char *const DPO_REFERENCE_NAMES[] = {"initial", "base", NULL};
static const char *const FORMAT_NAMES[] = {"auto",   "tokens", "text", "completion",
                                           "alpaca", "chat",   NULL};

#define INF                             INFINITY
#define OFF(f)                          offsetof(Config, f)
#define RANGE(lo, hi, lo_open, hi_open) lo, hi, lo_open, hi_open
#define ANY                             RANGE(-INF, INF, false, false)

const Key config_keys[] = {
    {"model", "path", K_PATH, OFF(model.path), false, ANY, NULL},
    {"model", "dtype", K_ENUM, OFF(model.dtype), false, ANY, DTYPE_NAMES},
    {"model", "quantize", K_ENUM, OFF(model.quantize), false, ANY, QUANTIZE_NAMES},
    {"lora", "r", K_INT, OFF(lora.r), false, RANGE(1, 65536, false, false), NULL},
    {"lora", "alpha", K_FLOAT, OFF(lora.alpha), false, RANGE(0, INF, true, false), NULL},
    {"lora", "dropout", K_FLOAT, OFF(lora.dropout), false, RANGE(0, 1, false, true), NULL},
    {"lora", "target_modules", K_MODULES, OFF(lora.target_modules), true, ANY, NULL},
    {"lora", "rslora", K_BOOL, OFF(lora.rslora), false, ANY, NULL},
    {"lora", "init_from", K_PATH, OFF(lora.init_from), true, ANY, NULL},
    {"data", "train", K_PATHS, OFF(data.train), false, ANY, NULL},
    {"data", "valid", K_PATHS, OFF(data.valid), true, ANY, NULL},
    {"data", "format", K_ENUM, OFF(data.format), false, ANY, FORMAT_NAMES},
    {"data", "tokenizer", K_PATH, OFF(data.tokenizer), true, ANY, NULL},
    {"data", "chat_template", K_STR, OFF(data.chat_template), true, ANY, NULL},
    {"data", "chat_template_kwargs", K_JSON, OFF(data.chat_template_kwargs), true, ANY, NULL},
    {"data", "add_eos", K_BOOL, OFF(data.add_eos), false, ANY, NULL},
    {"data", "train_on_prompt", K_BOOL, OFF(data.train_on_prompt), false, ANY, NULL},
    {"data", "input_field", K_STR, OFF(data.input_field), false, ANY, NULL},
    {"data", "labels_field", K_STR, OFF(data.labels_field), true, ANY, NULL},
    {"data", "text_field", K_STR, OFF(data.text_field), false, ANY, NULL},
    {"data", "prompt_field", K_STR, OFF(data.prompt_field), false, ANY, NULL},
    {"data", "completion_field", K_STR, OFF(data.completion_field), false, ANY, NULL},
    {"data", "messages_field", K_STR, OFF(data.messages_field), false, ANY, NULL},
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
    {"train", "precision", K_ENUM, OFF(train.precision), false, ANY, PRECISION_NAMES},
    {"train", "gradient_checkpointing", K_BOOL, OFF(train.gradient_checkpointing), false, ANY,
     NULL},
    {"train", "on_nonfinite", K_ENUM, OFF(train.on_nonfinite), false, ANY, ON_NONFINITE_NAMES},
    {"train", "max_nonfinite_skips", K_INT, OFF(train.max_nonfinite_skips), false,
     RANGE(1, 1e9, false, false), NULL},
    {"train", "objective", K_ENUM, OFF(train.objective), false, ANY, OBJECTIVE_NAMES},
    {"dpo", "beta", K_FLOAT, OFF(dpo.beta), false, RANGE(0, INF, true, false), NULL},
    {"dpo", "loss_type", K_ENUM, OFF(dpo.loss_type), false, ANY, DPO_LOSS_NAMES},
    {"dpo", "reference", K_ENUM, OFF(dpo.reference), false, ANY, DPO_REFERENCE_NAMES},
    {"dpo", "precompute_ref_log_probs", K_BOOL, OFF(dpo.precompute_ref_log_probs), false, ANY,
     NULL},
    {"orpo", "beta", K_FLOAT, OFF(orpo.beta), false, RANGE(0, INF, true, false), NULL},
    {"eval", "every", K_INT, OFF(eval.every), false, RANGE(0, 1e15, false, false), NULL},
    {"eval", "max_batches", K_INT, OFF(eval.max_batches), false, RANGE(0, 1e15, false, false),
     NULL},
    {"output", "dir", K_PATH, OFF(output.dir), false, ANY, NULL},
    {"output", "save_every", K_INT, OFF(output.save_every), false, RANGE(0, 1e15, false, false),
     NULL},
    {"output", "keep", K_INT, OFF(output.keep), false, RANGE(1, 1e6, false, false), NULL},
    {"log", "every", K_INT, OFF(log.every), false, RANGE(1, 1e15, false, false), NULL},
};
#define N_KEYS ((int)(sizeof config_keys / sizeof config_keys[0]))
const int config_n_keys = N_KEYS;

static const char *const SECTIONS[] = {"model", "lora", "data",   "train", "dpo",
                                       "orpo",  "eval", "output", "log"};
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
    {"activation_checkpointing", "gradient_checkpointing"},
    {"enable_activation_checkpointing", "gradient_checkpointing"},
};

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
void config_suggest(const char *section, const char *name, char *buf, size_t len) {
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
        if (strcmp(config_keys[k].name, name) == 0) {
            snprintf(buf, len, "; did you mean `%s.%s`?", config_keys[k].section, name);
            return;
        }
    for (int k = 0; k < N_KEYS; k++) {
        if (strcmp(config_keys[k].section, section) != 0) continue;
        int d = levenshtein(name, config_keys[k].name);
        if (d < best_d && close_enough(config_keys[k].name, d))
            best_d = d, best = config_keys[k].name;
    }
    for (size_t a = 0; a < sizeof ALIASES / sizeof ALIASES[0]; a++) {
        int d = levenshtein(name, ALIASES[a][0]);
        if (d >= best_d || !close_enough(ALIASES[a][0], d)) continue;
        for (int k = 0; k < N_KEYS; k++)
            if (strcmp(config_keys[k].name, ALIASES[a][1]) == 0 &&
                strcmp(config_keys[k].section, section) == 0) {
                best_d = d, best = config_keys[k].name, best_section = section;
                break;
            }
    }
    if (best) snprintf(buf, len, "; did you mean `%s.%s`?", best_section, best);
}

/* ---- lookups and descriptions ----------------------------------------------------------- */

const Key *config_find_key(const char *section, const char *name) {
    for (int k = 0; k < N_KEYS; k++)
        if (!strcmp(config_keys[k].section, section) && !strcmp(config_keys[k].name, name))
            return &config_keys[k];
    return NULL;
}

bool config_is_section(const char *s) {
    for (int i = 0; i < N_SECTIONS; i++)
        if (!strcmp(SECTIONS[i], s)) return true;
    return false;
}

const char *config_type_name(const Key *k) {
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
    case K_JSON:
        return "a mapping";
    default:
        return "a string";
    }
}

void config_range_text(const Key *k, char *buf, size_t len) {
    char lo[32], hi[32];
    snprintf(lo, sizeof lo, "%g", k->lo);
    snprintf(hi, sizeof hi, "%g", k->hi);
    if (isinf(k->hi))
        snprintf(buf, len, "%s %s", k->lo_open ? ">" : ">=", lo);
    else
        snprintf(buf, len, "in %s%s, %s%s", k->lo_open ? "(" : "[", lo, hi, k->hi_open ? ")" : "]");
}

bool config_in_range(const Key *k, double v) {
    if (isnan(v)) return false;
    if (k->lo_open ? !(v > k->lo) : !(v >= k->lo)) return false;
    if (k->hi_open ? !(v < k->hi) : !(v <= k->hi)) return false;
    return true;
}

const char *config_key_path(int i) {
    static char paths[N_KEYS][48];
    if (i < 0 || i >= N_KEYS) return NULL;
    if (!paths[i][0])
        snprintf(paths[i], sizeof paths[i], "%s.%s", config_keys[i].section, config_keys[i].name);
    return paths[i];
}

const char *const *config_key_choices(int i) {
    if (i < 0 || i >= N_KEYS) return NULL;
    static const char *const BOOL_NAMES[] = {"true", "false", NULL};
    return config_keys[i].type == K_ENUM   ? config_keys[i].names
           : config_keys[i].type == K_BOOL ? BOOL_NAMES
                                           : NULL;
}

/* ---- values as text ---------------------------------------------------------------------- */

bool config_is_null_text(const char *s) {
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

int config_parse_bool(const char *s, bool *out) {
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE")) return *out = true, 0;
    if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE")) return *out = false, 0;
    return -1;
}

int config_parse_int(const char *s, int64_t *out) {
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
int config_parse_float(const char *s, double *out) {
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

/* ---- defaults and ownership -------------------------------------------------------------- */

void config_list_free(ConfigList *l) {
    for (int i = 0; i < l->n; i++) free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

int config_list_push(ConfigList *l, char *s) {
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

int config_defaults(Config *c) {
    memset(c, 0, sizeof *c);
    c->model.dtype = CONFIG_DTYPE_F32;
    c->model.quantize = CONFIG_QUANTIZE_NONE;
    c->lora.r = 8;
    c->lora.alpha = 16;
    c->lora.dropout = 0.0;
    c->lora.rslora = false;
    c->data.input_field = strdup("input_ids");
    c->data.labels_field = strdup("labels");
    c->data.format = CONFIG_FORMAT_AUTO;
    c->data.add_eos = true;
    c->data.train_on_prompt = false;
    c->data.text_field = strdup("text");
    c->data.prompt_field = strdup("prompt");
    c->data.completion_field = strdup("completion");
    c->data.messages_field = strdup("messages");
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
    c->train.precision = CONFIG_PRECISION_AUTO;
    c->train.gradient_checkpointing = false;
    c->train.on_nonfinite = ON_NONFINITE_STOP;
    c->train.max_nonfinite_skips = 10;
    c->train.objective = OBJECTIVE_SFT;
    c->dpo.beta = 0.1;
    c->dpo.loss_type = DPO_LOSS_SIGMOID;
    c->dpo.reference = DPO_REFERENCE_INITIAL;
    c->dpo.precompute_ref_log_probs = false;
    c->orpo.beta = 0.1;
    c->eval.every = 0;
    c->eval.max_batches = 0;
    c->output.save_every = 100;
    c->output.keep = 3;
    c->log.every = 10;
    /* lora.target_modules stays empty: the model family's default, resolved by train */
    int ok = c->data.input_field && c->data.labels_field && c->data.text_field &&
             c->data.prompt_field && c->data.completion_field && c->data.messages_field;
    if (!ok) config_free(c);
    return ok ? 0 : -1;
}

void config_free(Config *c) {
    if (!c) return;
    free(c->model.path);
    free(c->lora.init_from);
    config_list_free(&c->lora.target_modules);
    config_list_free(&c->data.train);
    config_list_free(&c->data.valid);
    free(c->data.input_field);
    free(c->data.labels_field);
    free(c->data.tokenizer);
    free(c->data.chat_template);
    free(c->data.chat_template_kwargs);
    free(c->data.text_field);
    free(c->data.prompt_field);
    free(c->data.completion_field);
    free(c->data.messages_field);
    free(c->output.dir);
    memset(c, 0, sizeof *c);
}
