/* trainer/model/lora.c — adapter memory, fresh init and the PEFT save/load (see lora.h). */
#include "trainer/model/lora.h"

#include <jansson.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trainer/model/family.h"
#include "trainer/store/store.h"

#define LORA_NAME_MAX 112

struct Lora {
    LoraSpec spec;
    int n_layers;
    float *params; /* every A and B, in tensor order */
    float *grads;  /* same layout */
    size_t n_params;
    Tensor *tensors; /* (count) */
    char (*names)[LORA_NAME_MAX];
    int *in_dims; /* (count) fan-in of each tensor's module */
    int count;
    int (*index)[MODULE_COUNT]; /* (L, MODULE_COUNT): tensor index of A, or -1 */
    AdapterBase base;           /* the model's layers as PEFT names them */
};

AdapterBase lora_adapter_base(const ModelConfig *cfg) {
    AdapterBase b = {.n_layers = cfg->num_hidden_layers, .modules = model_modules(cfg)};
    snprintf(b.prefix, sizeof b.prefix, "%s", model_module_prefix(cfg));
    return b;
}

unsigned lora_default_targets(const ModelConfig *cfg) {
    return cfg->family->default_targets & model_modules(cfg); /* LORA_ALL: the family's own */
}

unsigned lora_parse_target(const char *name) {
    for (int mod = 0; mod < MODULE_COUNT; mod++)
        if (strcmp(name, model_module_name((ModelModule)mod)) == 0) return 1u << mod;
    return 0;
}

int lora_check_targets(const ModelConfig *cfg, unsigned targets, char *err, size_t errlen) {
    unsigned has = model_modules(cfg);
    if (targets == LORA_ALL || !(targets & ~has)) return 0;
    char bad[256], mods[256];
    model_module_list_of(targets & ~has, bad, sizeof bad);
    model_module_list_of(has, mods, sizeof mods);
    snprintf(err, errlen, "lora: %s has no %s; its linear modules: %s, or all-linear",
             hf_architecture(cfg), bad, mods);
    return -1;
}

Lora *lora_create(const Model *m, const LoraSpec *spec, char *err, size_t errlen) {
    const ModelConfig *c = model_config(m);
    if (spec->r < 1 || spec->r > 65536 || !(spec->alpha > 0) || !(spec->dropout >= 0) ||
        !(spec->dropout < 1) || (spec->targets & LORA_ALL) == 0 || (spec->targets & ~LORA_ALL)) {
        snprintf(err, errlen,
                 "lora: need r in [1, 65536], alpha > 0, dropout in [0, 1) and at "
                 "least one known target module (got r %d, alpha %g, dropout %g)",
                 spec->r, spec->alpha, spec->dropout);
        return NULL;
    }
    unsigned targets = spec->targets == LORA_ALL ? model_modules(c) : spec->targets;
    if (lora_check_targets(c, spec->targets, err, errlen) != 0) return NULL;
    Lora *l = calloc(1, sizeof *l);
    if (!l) goto oom;
    l->spec = *spec;
    l->spec.targets = targets;
    l->base = lora_adapter_base(c);
    spec = &l->spec;
    l->n_layers = c->num_hidden_layers;
    /* each layer's targeted modules: a Qwen3.5 DeltaNet layer has no q_proj, say */
    int count = 0;
    size_t total = 0;
    for (int i = 0; i < l->n_layers; i++)
        for (int mod = 0; mod < MODULE_COUNT; mod++) {
            if (!(spec->targets & model_layer_targets(c, i) & (1u << mod))) continue;
            int out, in;
            model_layer_module_dims(c, i, (ModelModule)mod, &out, &in);
            total += (size_t)spec->r * (size_t)(in + out);
            count += 2;
        }
    l->tensors = calloc((size_t)(count ? count : 1), sizeof *l->tensors);
    l->names = calloc((size_t)(count ? count : 1), sizeof *l->names);
    l->in_dims = calloc((size_t)(count ? count : 1), sizeof *l->in_dims);
    l->index = calloc((size_t)l->n_layers, sizeof *l->index);
    if (!l->tensors || !l->names || !l->in_dims || !l->index) goto oom;
    l->n_params = total;
    l->params = calloc(total, sizeof(float));
    l->grads = calloc(total, sizeof(float));
    if (!l->params || !l->grads) goto oom;
    size_t at = 0;
    for (int i = 0; i < l->n_layers; i++)
        for (int mod = 0; mod < MODULE_COUNT; mod++) {
            l->index[i][mod] = -1;
            if (!(spec->targets & model_layer_targets(c, i) & (1u << mod))) continue;
            int out, in;
            model_layer_module_dims(c, i, (ModelModule)mod, &out, &in);
            l->index[i][mod] = l->count;
            for (int ab = 0; ab < 2; ab++) {
                int64_t shape[2] = {ab ? out : spec->r, ab ? spec->r : in};
                Tensor *t = &l->tensors[l->count];
                tensor_init(t, l->params + at, 2, shape);
                t->grad = l->grads + at;
                t->requires_grad = true;
                snprintf(l->names[l->count], LORA_NAME_MAX,
                         "base_model.model.%slayers.%d.%s.lora_%c.weight", l->base.prefix, i,
                         model_module_path((ModelModule)mod), ab ? 'B' : 'A');
                l->in_dims[l->count] = in;
                at += (size_t)t->size;
                l->count++;
            }
        }
    return l;
oom:
    lora_free(l);
    snprintf(err, errlen, "lora: out of memory");
    return NULL;
}

void lora_free(Lora *l) {
    if (!l) return;
    free(l->params);
    free(l->grads);
    free(l->tensors);
    free(l->names);
    free(l->in_dims);
    free(l->index);
    free(l);
}

void lora_init_fresh(Lora *l, uint64_t seed) {
    for (int i = 0; i < l->count; i++) {
        Tensor *t = &l->tensors[i];
        bool is_b = i % 2 == 1;
        if (is_b) {
            memset(t->data, 0, (size_t)t->size * sizeof(float));
            continue;
        }
        Rng r;
        rng_seed(&r, seed, (uint64_t)i);
        double bound = 1.0 / sqrt((double)l->in_dims[i]);
        for (int64_t k = 0; k < t->size; k++)
            t->data[k] = (float)((2.0 * rng_uniform(&r) - 1.0) * bound);
    }
}

int lora_count(const Lora *l) {
    return l->count;
}

Tensor *lora_tensor(const Lora *l, int i, const char **peft_name) {
    if (i < 0 || i >= l->count) return NULL;
    if (peft_name) *peft_name = l->names[i];
    return &l->tensors[i];
}

float lora_scaling(const Lora *l) {
    return l->spec.rslora ? (float)(l->spec.alpha / sqrt((double)l->spec.r))
                          : l->spec.alpha / (float)l->spec.r;
}

const LoraSpec *lora_spec(const Lora *l) {
    return &l->spec;
}

bool lora_module(const Lora *l, int layer, ModelModule mod, Tensor **A, Tensor **B) {
    if (layer < 0 || layer >= l->n_layers || (unsigned)mod >= MODULE_COUNT) return false;
    int i = l->index[layer][mod];
    if (i < 0) return false;
    *A = &l->tensors[i];
    *B = &l->tensors[i + 1];
    return true;
}

float *lora_params(const Lora *l, size_t *n) {
    *n = l->n_params;
    return l->params;
}

float *lora_grads(const Lora *l, size_t *n) {
    *n = l->n_params;
    return l->grads;
}

void lora_zero_grad(Lora *l) {
    memset(l->grads, 0, l->n_params * sizeof(float));
}

/* ---- PEFT adapter_config.json ------------------------------------------------------ */

/* The float as the shortest decimal that reads back to it (0.05f -> 0.05, not
 * 0.05000000074505806), as Python writes the value the user typed. */
static double shortest_decimal(float f) {
    char buf[32];
    for (int digits = 1; digits <= 9; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, (double)f);
        double d = strtod(buf, NULL);
        if ((float)d == f) return d;
    }
    return (double)f;
}

static json_t *number_json(float f) {
    double v = shortest_decimal(f);
    return v == floor(v) && fabs(v) < 1e15 ? json_integer((json_int_t)v) : json_real(v);
}

/* A Python regular expression as POSIX ERE matching the whole string (PEFT: re.fullmatch):
 * "(?:" and "\d" rewritten; other "(?" syntax is refused. 0, or -1. */
static int compile_fullmatch(const char *py, regex_t *re) {
    size_t n = strlen(py);
    char *ere = malloc(4 * n + 8), *o = ere; /* "\\d" (2) -> "[0-9]" (5): at most 2.5 n */
    if (!ere) return -1;
    int rc = 0;
    o += sprintf(o, "^(");
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (py[i] == '\\' && py[i + 1] == 'd') {
            o += sprintf(o, "[0-9]"), i++;
        } else if (py[i] == '\\' && py[i + 1]) {
            *o++ = py[i++], *o++ = py[i];
        } else if (py[i] == '(' && py[i + 1] == '?') {
            if (py[i + 2] != ':') rc = -1;
            *o++ = '(', i += 2;
        } else {
            *o++ = py[i];
        }
    }
    sprintf(o, ")$");
    if (rc == 0 && regcomp(re, ere, REG_EXTENDED | REG_NOSUB) != 0) rc = -1;
    free(ere);
    return rc;
}

/* A string target_modules (PEFT: re.fullmatch against every module name) -> the LORA_* mask
 * of the linears it matches in each layer of base; every layer must match the same ones. */
static int regex_targets(const char *py, const AdapterBase *base, const char *path, unsigned *mask,
                         char *err, size_t errlen) {
    regex_t re;
    if (strlen(py) > 4096 || compile_fullmatch(py, &re) != 0) {
        snprintf(err, errlen,
                 "%s: target_modules \"%.200s\" is not a regular expression lorafit can read: "
                 "it reads POSIX extended ones (at most 4096 characters), with Python's (?:...) "
                 "and \\d; or give the list of module names",
                 path, py);
        return -1;
    }
    int rc = 0;
    for (int l = 0; rc == 0 && l < base->n_layers; l++) {
        unsigned layer_mask = 0;
        for (int mod = 0; mod < MODULE_COUNT; mod++) {
            if (!(base->modules & (1u << mod))) continue;
            char name[160];
            snprintf(name, sizeof name, "%slayers.%d.%s", base->prefix, l,
                     model_module_path((ModelModule)mod));
            if (regexec(&re, name, 0, NULL, 0) == 0) layer_mask |= 1u << mod;
        }
        if (l == 0) *mask = layer_mask;
        if (layer_mask != *mask) {
            char a[256], b[256];
            model_module_list_of(*mask, a, sizeof a);
            model_module_list_of(layer_mask, b, sizeof b);
            snprintf(err, errlen,
                     "%s: target_modules \"%s\" matches [%s] in layer 0 but [%s] in layer %d: "
                     "lorafit targets the same modules in every layer",
                     path, py, a, b, l);
            rc = -1;
        }
    }
    regfree(&re);
    if (rc == 0 && *mask == 0) {
        snprintf(err, errlen,
                 "%s: target_modules \"%s\" matches none of the model's linear modules "
                 "(%slayers.N.self_attn.q_proj ...)",
                 path, py, base->prefix);
        rc = -1;
    }
    return rc;
}

/* adapter_config.json's target_modules (a list of names, or a regex against base's module
 * names) -> a LORA_* bit mask. */
static int parse_targets(json_t *targets, const AdapterBase *base, const char *path, unsigned *mask,
                         char *err, size_t errlen) {
    size_t i;
    json_t *t;
    *mask = 0;
    if (json_is_string(targets)) {
        if (strcmp(json_string_value(targets), "all-linear") == 0) {
            *mask = base->modules;
            return 0;
        }
        return regex_targets(json_string_value(targets), base, path, mask, err, errlen);
    }
    json_array_foreach(targets, i, t) {
        unsigned bit = json_is_string(t) ? lora_parse_target(json_string_value(t)) : 0;
        if (!bit) {
            char names[256];
            model_module_list(names, sizeof names);
            if (json_is_string(t))
                snprintf(err, errlen,
                         "%s: target_modules[%zu] is \"%s\", which lorafit does not adapt (it "
                         "trains LoRA on %s); to start from this adapter, drop that module from "
                         "target_modules and its lora_A / lora_B tensors from the adapter",
                         path, i, json_string_value(t), names);
            else
                snprintf(err, errlen, "%s: target_modules[%zu] is not a module name (one of %s)",
                         path, i, names);
            return -1;
        }
        *mask |= bit;
    }
    return 0;
}

/* A PEFT key whose value is set (not null, false, an empty list or an empty object). */
static bool peft_key_set(json_t *root, const char *key) {
    json_t *v = json_object_get(root, key);
    return v && !json_is_null(v) && !json_is_false(v) &&
           !(json_is_array(v) && json_array_size(v) == 0) &&
           !(json_is_object(v) && json_object_size(v) == 0);
}

/* PEFT settings that change what the adapter's tensors mean or where they apply: lorafit
 * would apply such an adapter wrongly (alpha_pattern: with the same shapes, silently), so
 * it refuses them by name. 0, or -1 with err set. */
static int refuse_peft_features(json_t *root, const char *path, char *err, size_t errlen) {
    static const char *const keys[][2] = {
        {"rank_pattern", "per-module ranks"},
        {"alpha_pattern", "per-module alphas"},
        {"layers_to_transform", "LoRA on some layers only"},
        {"exclude_modules", "modules excluded from target_modules"},
        {"modules_to_save", "fully trained modules saved beside the adapter"},
        {"trainable_token_indices", "trained token embeddings"},
        {"lora_bias", "biases on lora_B"},
        {"use_dora", "DoRA adapters"},
        {"fan_in_fan_out", "transposed (Conv1D) weights"},
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (peft_key_set(root, keys[i][0])) {
            snprintf(err, errlen, "%s: %s is set (%s): lorafit does not support that", path,
                     keys[i][0], keys[i][1]);
            return -1;
        }
    return 0;
}

/* adapter_config.json as lorafit reads it: a plain LoRA adapter's shape. */
typedef struct {
    LoraSpec spec;
    double alpha;    /* lora_alpha as written (spec.alpha is it as a float) */
    bool has_rslora; /* use_rslora is there */
} PeftConfig;

/* Reads and checks the adapter_config.json at path, for a model of base's layers. 0, or -1
 * with err naming the key. */
static int read_peft_config(const char *path, const AdapterBase *base, PeftConfig *pc, char *err,
                            size_t errlen) {
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) {
        snprintf(err, errlen, "%s:%d:%d: %s", path, je.line, je.column, je.text);
        return -1;
    }
    json_t *r = json_object_get(root, "r"), *alpha = json_object_get(root, "lora_alpha"),
           *targets = json_object_get(root, "target_modules"),
           *rs = json_object_get(root, "use_rslora"), *peft = json_object_get(root, "peft_type"),
           *bias = json_object_get(root, "bias");
    memset(pc, 0, sizeof *pc);
    int rc = -1;
    if (!json_is_object(root)) {
        snprintf(err, errlen, "%s: not a JSON object", path);
    } else if (peft && (!json_is_string(peft) || strcmp(json_string_value(peft), "LORA"))) {
        snprintf(err, errlen, "%s: peft_type must be \"LORA\"", path);
    } else if (refuse_peft_features(root, path, err, errlen) != 0) {
        /* err says which */
    } else if (bias && (!json_is_string(bias) || strcmp(json_string_value(bias), "none"))) {
        snprintf(err, errlen, "%s: bias must be \"none\" (trained biases are not supported)", path);
    } else if (!json_is_integer(r) || json_integer_value(r) < 1 || json_integer_value(r) > 65536 ||
               !json_is_number(alpha) || !(json_is_array(targets) || json_is_string(targets))) {
        snprintf(err, errlen,
                 "%s: need integer \"r\" >= 1, numeric \"lora_alpha\" and \"target_modules\" "
                 "(a list, or a regular expression)",
                 path);
    } else {
        pc->spec.r = (int)json_integer_value(r);
        pc->alpha = json_number_value(alpha);
        pc->spec.alpha = (float)pc->alpha;
        pc->spec.rslora = json_is_true(rs);
        pc->has_rslora = rs != NULL;
        rc = parse_targets(targets, base, path, &pc->spec.targets, err, errlen);
    }
    json_decref(root);
    return rc;
}

/* The adapter at path has the run's shape (init_from, resume). */
static int check_adapter_config(const Lora *l, const char *path, char *err, size_t errlen) {
    PeftConfig pc;
    if (read_peft_config(path, &l->base, &pc, err, errlen) != 0) return -1;
    if (pc.spec.r != l->spec.r) {
        snprintf(err, errlen, "%s: r is %d but the run uses lora.r = %d", path, pc.spec.r,
                 l->spec.r);
    } else if (fabs(pc.alpha - l->spec.alpha) > 1e-6 * fabs(l->spec.alpha)) {
        snprintf(err, errlen, "%s: lora_alpha is %g but the run uses lora.alpha = %g", path,
                 pc.alpha, l->spec.alpha);
    } else if (pc.has_rslora && pc.spec.rslora != l->spec.rslora) {
        snprintf(err, errlen, "%s: use_rslora is %s but the run uses lora.rslora = %s", path,
                 pc.spec.rslora ? "true" : "false", l->spec.rslora ? "true" : "false");
    } else if (pc.spec.targets != l->spec.targets) {
        snprintf(err, errlen, "%s: target_modules differ from the run's lora.target_modules", path);
    } else {
        return 0;
    }
    return -1;
}

int lora_read_peft_spec(const char *dir, const ModelConfig *cfg, LoraSpec *spec, char *err,
                        size_t errlen) {
    char path[4096];
    memset(spec, 0, sizeof *spec);
    if (path_join(path, sizeof path, dir, "adapter_config.json", err, errlen) != 0) return -1;
    PeftConfig pc;
    AdapterBase base = lora_adapter_base(cfg);
    if (read_peft_config(path, &base, &pc, err, errlen) != 0) return -1;
    *spec = pc.spec;
    return 0;
}

static const StTensor *find_adapter_tensor(const SafeTensors *st, const char *name) {
    const StTensor *t = st_find(st, name);
    if (t) return t;
    /* PEFT in memory calls them "...lora_A.default.weight"; files normally drop ".default". */
    char alt[LORA_NAME_MAX + 16];
    const char *dot = strrchr(name, '.'); /* ".weight" */
    snprintf(alt, sizeof alt, "%.*s.default%s", (int)(dot - name), name, dot);
    return st_find(st, alt);
}

/* An adapter that holds a NaN or an infinity (a diverged run, written by an older lorafit or
 * another tool) is refused where it is read, naming the tensor: merged, resumed, evaluated
 * or trained on, it would only spread the value. */
static int check_finite(const Tensor *t, const char *path, const char *name, char *err,
                        size_t errlen) {
    for (int64_t i = 0; i < t->size; i++)
        if (!isfinite(t->data[i])) {
            snprintf(err, errlen,
                     "%s: tensor '%s' holds %s at element %lld: this adapter is broken (its run "
                     "diverged?) and lorafit will not use it",
                     path, name,
                     isnan(t->data[i]) ? "NaN"
                     : t->data[i] > 0  ? "inf"
                                       : "-inf",
                     (long long)i);
            return -1;
        }
    return 0;
}

int lora_load_peft(Lora *l, const char *dir, char *err, size_t errlen) {
    char path[4096];
    if (path_join(path, sizeof path, dir, "adapter_config.json", err, errlen) != 0 ||
        check_adapter_config(l, path, err, errlen) != 0 ||
        path_join(path, sizeof path, dir, "adapter_model.safetensors", err, errlen) != 0)
        return -1;
    SafeTensors *st = st_open(path, err, errlen);
    if (!st) return -1;
    int rc = 0;
    char ours[96];
    snprintf(ours, sizeof ours, "base_model.model.%slayers.", l->base.prefix);
    for (int i = 0; rc == 0 && i < st_count(st); i++)
        if (strncmp(st_tensor_at(st, i)->name, ours, strlen(ours)) != 0) {
            /* PEFT with a target_modules list on a wrapper: the vision tower's q_proj ... too */
            snprintf(err, errlen,
                     "%s: tensor '%s' is not on the language model's layers (%s...): lorafit "
                     "trains and applies adapters of the language model only",
                     path, st_tensor_at(st, i)->name, ours);
            rc = -1;
        }
    if (rc == 0 && st_count(st) != l->count) {
        snprintf(err, errlen, "%s: %d tensors but r/target_modules imply %d", path, st_count(st),
                 l->count);
        rc = -1;
    }
    for (int i = 0; rc == 0 && i < l->count; i++) {
        Tensor *t = &l->tensors[i];
        const StTensor *s = find_adapter_tensor(st, l->names[i]);
        if (!s) {
            snprintf(err, errlen, "%s: tensor '%s' is missing", path, l->names[i]);
            rc = -1;
        } else if (s->ndim != 2 || s->shape[0] != t->shape[0] || s->shape[1] != t->shape[1]) {
            snprintf(err, errlen, "%s: tensor '%s' must have shape [%lld, %lld]", path, l->names[i],
                     (long long)t->shape[0], (long long)t->shape[1]);
            rc = -1;
        } else {
            rc = st_to_float(s, t->data, err, errlen);
            if (rc == 0) rc = check_finite(t, path, s->name, err, errlen);
        }
    }
    st_close(st);
    return rc;
}

/* A wrapper's target_modules: a regex (PEFT re.fullmatch-es it against each module name)
 * that reaches the language model's linears only, where the list of names would also wrap
 * the vision tower's q_proj, k_proj, v_proj: "model\.language_model\.layers\.[0-9]+\.
 * (self_attn|mlp)\.(q_proj|v_proj)"; with Gemma 4's per-layer gate or projection the parent
 * is optional: "...[0-9]+\.((self_attn|mlp)\.)?(q_proj|per_layer_input_gate)". */
static json_t *targets_regex(const Lora *l) {
    char re[512];
    size_t at = 0;
    for (const char *p = l->base.prefix; *p && at + 4 < sizeof re; p++) {
        if (*p == '.') re[at++] = '\\';
        re[at++] = *p;
    }
    /* Qwen3.5's DeltaNet projections are under linear_attn; Gemma 4's per-layer gate and
     * projection are the layer's own (no parent) */
    bool linear = l->base.modules & (1u << MODULE_IN_QKV | 1u << MODULE_OUT),
         own = l->spec.targets & (1u << MODULE_PLE_GATE | 1u << MODULE_PLE_PROJ);
    at += (size_t)snprintf(re + at, sizeof re - at,
                           own ? "layers\\.[0-9]+\\.((%s)\\.)?(" : "layers\\.[0-9]+\\.(%s)\\.(",
                           linear ? "self_attn|linear_attn|mlp" : "self_attn|mlp");
    char mods[256];
    model_module_list_of(l->spec.targets, mods, sizeof mods);
    for (const char *p = mods; *p && at + 2 < sizeof re; p++)
        if (*p != ' ') re[at++] = *p == ',' ? '|' : *p;
    snprintf(re + at, sizeof re - at, ")");
    return json_string(re);
}

static int save_config(const Lora *l, const char *dir, const char *base_model_name, char *err,
                       size_t errlen) {
    json_t *targets = strcmp(l->base.prefix, "model.") != 0 ? targets_regex(l) : json_array();
    for (int mod = 0; json_is_array(targets) && mod < MODULE_COUNT; mod++)
        if (l->spec.targets & (1u << mod))
            json_array_append_new(targets, json_string(model_module_name((ModelModule)mod)));
    json_t *root = json_pack(
        "{s:s, s:s, s:i, s:o, s:o, s:o, s:s, s:b, s:b, s:b, s:b, s:b, s:s?, s:n}", "peft_type",
        "LORA", "task_type", "CAUSAL_LM", "r", l->spec.r, "lora_alpha", number_json(l->spec.alpha),
        "lora_dropout", json_real(shortest_decimal(l->spec.dropout)), "target_modules", targets,
        "bias", "none", "use_rslora", l->spec.rslora, "use_dora", 0, "fan_in_fan_out", 0,
        "init_lora_weights", 1, "inference_mode", 1, "base_model_name_or_path", base_model_name,
        "modules_to_save");
    char *text =
        root ? json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(9)) : NULL;
    json_decref(root);
    if (!text) {
        snprintf(err, errlen,
                 "%s: cannot build adapter_config.json (out of memory or "
                 "base model name not UTF-8)",
                 dir);
        return -1;
    }
    char path[4096];
    size_t n = strlen(text);
    text[n] = '\n'; /* json_dumps leaves no newline; the NUL is not written */
    int rc = path_join(path, sizeof path, dir, "adapter_config.json", err, errlen);
    if (rc == 0) rc = fsio_write_file(path, text, n + 1, err, errlen);
    free(text);
    return rc;
}

int lora_save_peft(const Lora *l, const char *dir, const char *base_model_name, LoraDtype dtype,
                   char *err, size_t errlen) {
    StWriter *w = st_writer_new();
    uint16_t *half = NULL;
    if (!w || (dtype != LORA_F32 && !(half = malloc(l->n_params * sizeof *half)))) {
        st_writer_free(w);
        snprintf(err, errlen, "%s: out of memory saving the adapter", dir);
        return -1;
    }
    StDtype st_dtype = dtype == LORA_BF16 ? ST_BF16 : dtype == LORA_F16 ? ST_F16 : ST_F32;
    int rc = 0;
    for (int i = 0; rc == 0 && i < l->count; i++) {
        const Tensor *t = &l->tensors[i];
        const void *data = t->data;
        if (half) {
            uint16_t *h = half + (t->data - l->params);
            tensor_floats_to_half(h, t->data, t->size, dtype == LORA_BF16);
            data = h;
        }
        rc = st_writer_add(w, l->names[i], st_dtype, 2, t->shape, data, err, errlen);
    }
    char path[4096];
    if (rc == 0) rc = path_join(path, sizeof path, dir, "adapter_model.safetensors", err, errlen);
    if (rc == 0) rc = st_writer_save(w, path, err, errlen);
    st_writer_free(w);
    free(half);
    if (rc == 0) rc = save_config(l, dir, base_model_name ? base_model_name : "", err, errlen);
    return rc;
}

Lora *lora_load_adapter(const Model *m, const char *dir, char *err, size_t errlen) {
    LoraSpec spec;
    if (lora_read_peft_spec(dir, model_config(m), &spec, err, errlen) != 0) return NULL;
    Lora *l = lora_create(m, &spec, err, errlen);
    if (l && lora_load_peft(l, dir, err, errlen) != 0) {
        lora_free(l);
        return NULL;
    }
    return l;
}
