/* trainer/model/hf_config.c — config.json -> ModelConfig (see hf_config.h).
 *
 * The keys every family shares are read here, with the family's defaults; the family's
 * own keys by its read_config hook (family_*.c). Defaults follow transformers' config
 * classes. Values are range-checked here so that later size arithmetic (V * C, L * ...)
 * cannot overflow. */
#include "trainer/model/hf_config.h"
#include "trainer/model/family.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DIM (1 << 20) /* any single dimension; keeps products of two well inside int64 */

/* The families lorafit trains: each one's file (family_*.c) says what makes it. */
extern const ModelFamily family_llama, family_mistral, family_qwen2, family_qwen3;
extern const ModelFamily family_smollm3, family_olmo2, family_granite;
extern const ModelFamily family_gemma3_text, family_gemma2, family_phi3;
extern const ModelFamily family_ministral3, family_qwen3_5_text;
static const ModelFamily *const families[] = {
    &family_llama,       &family_mistral, &family_qwen2,      &family_qwen3,
    &family_smollm3,     &family_olmo2,   &family_granite,    &family_gemma2,
    &family_gemma3_text, &family_phi3,    &family_ministral3, &family_qwen3_5_text,
};
#define N_FAMILIES ((int)(sizeof families / sizeof families[0]))
/* The multimodal checkpoints around them (family.h's ModelWrapper). */
extern const ModelWrapper wrapper_gemma3, wrapper_mistral3, wrapper_qwen3_5;
static const ModelWrapper *const wrappers[] = {&wrapper_gemma3, &wrapper_mistral3,
                                               &wrapper_qwen3_5};
#define N_WRAPPERS ((int)(sizeof wrappers / sizeof wrappers[0]))

const char *hf_architecture(const ModelConfig *cfg) {
    return cfg->wrapper  ? cfg->wrapper->architecture
           : cfg->family ? cfg->family->architecture
                         : "?";
}

/* An integer field in [lo, hi]; absent -> *out = dflt, or an error when dflt < lo. */
static int get_int(json_t *root, const char *key, int lo, int hi, int dflt, int *out,
                   const char *src, char *err, size_t errlen) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        if (dflt < lo) {
            snprintf(err, errlen, "%s: missing required field \"%s\"", src, key);
            return -1;
        }
        *out = dflt;
        return 0;
    }
    if (!json_is_integer(v)) {
        snprintf(err, errlen, "%s: \"%s\" must be an integer", src, key);
        return -1;
    }
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi) {
        snprintf(err, errlen, "%s: \"%s\" = %lld is out of range [%d, %d]", src, key, (long long)x,
                 lo, hi);
        return -1;
    }
    *out = (int)x;
    return 0;
}

static int get_number(json_t *root, const char *key, double dflt, bool required, double *out,
                      const char *src, char *err, size_t errlen) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        if (required) {
            snprintf(err, errlen, "%s: missing required field \"%s\"", src, key);
            return -1;
        }
        *out = dflt;
        return 0;
    }
    if (!json_is_number(v)) {
        snprintf(err, errlen, "%s: \"%s\" must be a number", src, key);
        return -1;
    }
    *out = json_number_value(v);
    if (!isfinite(*out) || *out <= 0) {
        snprintf(err, errlen, "%s: \"%s\" must be a positive number", src, key);
        return -1;
    }
    return 0;
}

static int get_bool(json_t *root, const char *key, bool dflt, bool *out, const char *src, char *err,
                    size_t errlen) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        *out = dflt;
        return 0;
    }
    if (!json_is_boolean(v)) {
        snprintf(err, errlen, "%s: \"%s\" must be true or false", src, key);
        return -1;
    }
    *out = json_is_true(v);
    return 0;
}

/* "llama (LlamaForCausalLM), mistral (...), ..." into out: the families, then the wrappers. */
static void supported_list(char *out, size_t len) {
    size_t n = 0;
    out[0] = '\0';
    for (int i = 0; i < N_FAMILIES + N_WRAPPERS && n < len; i++) {
        const char *type = i < N_FAMILIES ? families[i]->model_type
                                          : wrappers[i - N_FAMILIES]->model_type,
                   *arch = i < N_FAMILIES ? families[i]->architecture
                                          : wrappers[i - N_FAMILIES]->architecture;
        int w = snprintf(out + n, len - n, "%s%s (%s)", i ? ", " : "", type, arch);
        if (w < 0) break;
        n += (size_t)w;
    }
}

/* The family named by "architectures" and "model_type" (both must agree when both are
 * there). A family lorafit does not train is refused by name, with the supported ones. */
static int parse_family(json_t *root, ModelConfig *cfg, const char *src, char *err, size_t errlen) {
    json_t *archs = json_object_get(root, "architectures"),
           *type = json_object_get(root, "model_type");
    const char *arch = NULL, *type_name = NULL;
    if (archs && !json_is_null(archs)) {
        arch = json_string_value(json_array_get(archs, 0));
        if (!json_is_array(archs) || json_array_size(archs) != 1 || !arch) {
            snprintf(err, errlen, "%s: \"architectures\" must be an array of one string", src);
            return -1;
        }
    }
    if (type && !json_is_null(type)) {
        if (!json_is_string(type)) {
            snprintf(err, errlen, "%s: \"model_type\" must be a string", src);
            return -1;
        }
        type_name = json_string_value(type);
    }
    if (!arch && !type_name) {
        snprintf(err, errlen,
                 "%s: missing \"architectures\" and \"model_type\" (cannot tell "
                 "the model family)",
                 src);
        return -1;
    }
    const ModelFamily *by_arch = NULL, *by_type = NULL;
    for (int i = 0; i < N_FAMILIES; i++) {
        if (arch && strcmp(arch, families[i]->architecture) == 0) by_arch = families[i];
        if (type_name && strcmp(type_name, families[i]->model_type) == 0) by_type = families[i];
    }
    char supported[1024];
    supported_list(supported, sizeof supported);
    if ((arch && !by_arch) || (type_name && !by_type)) {
        snprintf(err, errlen, "%s: the model family %s%s%s%s%s is not supported; lorafit trains %s",
                 src, type_name ? "\"" : "", type_name ? type_name : "", type_name ? "\"" : "",
                 arch && type_name ? " / " : "", arch ? arch : "", supported);
        return -1;
    }
    if (by_arch && by_type && by_arch != by_type) {
        snprintf(err, errlen,
                 "%s: \"model_type\" \"%s\" and \"architectures\" [\"%s\"] name different "
                 "families",
                 src, type_name, arch);
        return -1;
    }
    cfg->family = by_arch ? by_arch : by_type;
    snprintf(cfg->model_type, sizeof cfg->model_type, "%s", cfg->family->model_type);
    return 0;
}

/* longrope's short_factor or long_factor list into out: *n numbers, each positive. */
static int get_factors(json_t *o, const char *key, double *out, int *n, const char *where,
                       char *err, size_t errlen) {
    json_t *a = json_object_get(o, key), *v;
    size_t i;
    if (!json_is_array(a) || json_array_size(a) == 0 || json_array_size(a) > HF_MAX_ROPE_FACTORS) {
        snprintf(err, errlen, "%s.%s must be a list of 1 to %d numbers", where, key,
                 HF_MAX_ROPE_FACTORS);
        return -1;
    }
    json_array_foreach(a, i, v) {
        out[i] = json_number_value(v);
        if (!json_is_number(v) || !isfinite(out[i]) || out[i] <= 0) {
            snprintf(err, errlen, "%s.%s[%zu] must be a positive number", where, key, i);
            return -1;
        }
    }
    *n = (int)json_array_size(a);
    return 0;
}

/* longrope's keys: both factor lists (of one length), and what may stand in the object:
 * original_max_position_embeddings, factor, attention_factor (0 when absent; completed by
 * finish_longrope). */
static int parse_longrope(json_t *o, const char *where, RopeScaling *r, char *err, size_t errlen) {
    int n_short = 0, n_long = 0;
    r->longrope = true;
    if (get_factors(o, "short_factor", r->short_factor, &n_short, where, err, errlen) ||
        get_factors(o, "long_factor", r->long_factor, &n_long, where, err, errlen) ||
        get_number(o, "factor", 0, false, &r->factor, where, err, errlen) ||
        get_number(o, "attention_factor", 0, false, &r->attention_factor, where, err, errlen) ||
        get_int(o, "original_max_position_embeddings", 0, 1 << 30, 0,
                &r->original_max_position_embeddings, where, err, errlen))
        return -1;
    if (n_short != n_long) {
        snprintf(err, errlen, "%s: short_factor has %d numbers, long_factor %d", where, n_short,
                 n_long);
        return -1;
    }
    r->high_freq_factor = n_short; /* checked against rotary_dim / 2 in finish_longrope */
    return 0;
}

/* A number >= 0 (0 when absent or null): yarn's mscale, mscale_all_dim, beta_fast and
 * beta_slow, which transformers reads with `or` defaults (0 meaning the default). */
static int get_nonnegative(json_t *o, const char *key, double *out, const char *where, char *err,
                           size_t errlen) {
    json_t *v = json_object_get(o, key);
    *out = 0;
    if (!v || json_is_null(v)) return 0;
    *out = json_number_value(v);
    if (!json_is_number(v) || !isfinite(*out) || *out < 0) {
        snprintf(err, errlen, "%s.%s must be a number >= 0", where, key);
        return -1;
    }
    return 0;
}

/* yarn's keys (_compute_yarn_parameters); factor, original_max_position_embeddings and
 * attention_factor 0 when absent (finish_yarn completes them). */
static int parse_yarn(json_t *o, const char *where, RopeScaling *r, char *err, size_t errlen) {
    bool truncate = true;
    r->yarn = true;
    if (get_number(o, "factor", 0, false, &r->factor, where, err, errlen) ||
        get_number(o, "attention_factor", 0, false, &r->attention_factor, where, err, errlen) ||
        get_int(o, "original_max_position_embeddings", 0, 1 << 30, 0,
                &r->original_max_position_embeddings, where, err, errlen) ||
        get_nonnegative(o, "beta_fast", &r->beta_fast, where, err, errlen) ||
        get_nonnegative(o, "beta_slow", &r->beta_slow, where, err, errlen) ||
        get_nonnegative(o, "mscale", &r->mscale, where, err, errlen) ||
        get_nonnegative(o, "mscale_all_dim", &r->mscale_all_dim, where, err, errlen) ||
        get_bool(o, "truncate", true, &truncate, where, err, errlen))
        return -1;
    r->yarn_no_truncate = !truncate;
    if (!r->beta_fast) r->beta_fast = 32; /* rope_parameters.get("beta_fast") or 32 */
    if (!r->beta_slow) r->beta_slow = 1;
    return 0;
}

/* One RoPE description: transformers 4's "rope_scaling" (null: plain RoPE) or transformers
 * 5's "rope_parameters" (which also holds rope_theta). Its rope_type (or the older "type")
 * is "default" (plain), "linear", "llama3", "longrope" or "yarn" (none given: plain when
 * untyped_is_default, as rope_parameters may leave it out); `where` names it in messages. */
static int parse_rope_object(json_t *o, const char *where, bool untyped_is_default, bool yarn_ok,
                             RopeScaling *r, char *err, size_t errlen) {
    memset(r, 0, sizeof *r);
    if (!json_is_object(o)) {
        snprintf(err, errlen, "%s must be null or an object", where);
        return -1;
    }
    json_t *t = json_object_get(o, "rope_type");
    if (!t) t = json_object_get(o, "type");
    const char *type = json_string_value(t);
    if ((type && strcmp(type, "default") == 0) || (!t && untyped_is_default)) return 0;
    if (type && strcmp(type, "linear") == 0) {
        r->linear = true;
        return get_number(o, "factor", 0, true, &r->factor, where, err, errlen);
    }
    if (type && strcmp(type, "longrope") == 0) return parse_longrope(o, where, r, err, errlen);
    if (type && strcmp(type, "yarn") == 0 && yarn_ok) return parse_yarn(o, where, r, err, errlen);
    if (!type || strcmp(type, "llama3") != 0) {
        snprintf(err, errlen,
                 "%s.rope_type \"%s\" is not supported (only \"default\", \"linear\", \"llama3\", "
                 "\"longrope\", and \"yarn\" for Ministral 3)",
                 where, type ? type : "(missing)");
        return -1;
    }
    r->llama3 = true;
    if (get_number(o, "factor", 0, true, &r->factor, where, err, errlen) ||
        get_number(o, "low_freq_factor", 0, true, &r->low_freq_factor, where, err, errlen) ||
        get_number(o, "high_freq_factor", 0, true, &r->high_freq_factor, where, err, errlen) ||
        get_int(o, "original_max_position_embeddings", 1, 1 << 30, 0,
                &r->original_max_position_embeddings, where, err, errlen))
        return -1;
    if (r->high_freq_factor <= r->low_freq_factor) {
        snprintf(err, errlen, "%s.high_freq_factor must exceed low_freq_factor", where);
        return -1;
    }
    return 0;
}

/* transformers 5's rope_parameters of a model with local RoPE (Gemma 3): one description per
 * layer type, {"full_attention": {...}, "sliding_attention": {...}}; the full layers' is
 * the model's RoPE, the sliding layers' must be plain (its rope_theta the local base). */
static int parse_rope_per_layer_type(json_t *rp, ModelConfig *cfg, const char *where, char *err,
                                     size_t errlen) {
    json_t *full = json_object_get(rp, "full_attention"),
           *local = json_object_get(rp, "sliding_attention");
    char at[700];
    RopeScaling none;
    if (!local || !full) {
        snprintf(err, errlen, "%s needs both \"full_attention\" and \"sliding_attention\"", where);
        return -1;
    }
    snprintf(at, sizeof at, "%s.sliding_attention", where);
    if (parse_rope_object(local, at, true, false, &none, err, errlen) ||
        get_number(local, "rope_theta", 0, true, &cfg->rope_local_theta, at, err, errlen))
        return -1;
    if (none.llama3 || none.linear) {
        snprintf(err, errlen, "%s: the sliding layers' RoPE must be plain (\"default\")", at);
        return -1;
    }
    snprintf(at, sizeof at, "%s.full_attention", where);
    return parse_rope_object(full, at, true, false, &cfg->rope_scaling, err, errlen) ||
           get_number(full, "rope_theta", cfg->rope_theta, false, &cfg->rope_theta, at, err,
                      errlen);
}

/* rope_theta and the scaling: from "rope_parameters" when the config has it (transformers
 * 5 writes only that: reading the top-level keys alone would silently give RoPE the default
 * base), else from "rope_theta" and "rope_scaling". Where both are there they must agree. */
static int parse_rope(json_t *root, ModelConfig *cfg, const char *src, char *err, size_t errlen) {
    char where[600];
    snprintf(where, sizeof where, "%s: rope_scaling", src);
    json_t *rs = json_object_get(root, "rope_scaling"),
           *rp = json_object_get(root, "rope_parameters");
    double theta_default =
        cfg->family->default_rope_theta > 0 ? cfg->family->default_rope_theta : 10000.0;
    if (get_number(root, "rope_theta", theta_default, false, &cfg->rope_theta, src, err, errlen))
        return -1;
    memset(&cfg->rope_scaling, 0, sizeof cfg->rope_scaling);
    bool yarn_ok = cfg->family->yarn;
    if ((!rs || json_is_null(rs)) && (!rp || json_is_null(rp)) &&
        cfg->family->default_rope_parameters) {
        /* the config class's default rope_parameters, its rope_theta over the top-level one
         * (convert_rope_params_to_dict only sets a rope_theta the dict lacks) */
        json_t *d = json_loads(cfg->family->default_rope_parameters, 0, NULL);
        snprintf(where, sizeof where, "%s: %s's default rope_parameters", src,
                 cfg->family->architecture);
        if (!d) {
            snprintf(err, errlen, "%s: out of memory", where);
            return -1;
        }
        int rc = parse_rope_object(d, where, true, yarn_ok, &cfg->rope_scaling, err, errlen);
        if (rc == 0)
            rc = get_number(d, "rope_theta", cfg->rope_theta, false, &cfg->rope_theta, where, err,
                            errlen);
        json_decref(d);
        return rc;
    }
    if (rs && !json_is_null(rs) &&
        parse_rope_object(rs, where, false, yarn_ok, &cfg->rope_scaling, err, errlen))
        return -1;
    if (!rp || json_is_null(rp)) return 0;
    snprintf(where, sizeof where, "%s: rope_parameters", src);
    if (json_is_object(rp) &&
        (json_object_get(rp, "full_attention") || json_object_get(rp, "sliding_attention"))) {
        if (!(cfg->rope_local_theta > 0)) {
            snprintf(err, errlen, "%s: RoPE per layer type is not supported", where);
            return -1;
        }
        return parse_rope_per_layer_type(rp, cfg, where, err, errlen);
    }
    RopeScaling r;
    double theta, partial, family_partial = cfg->partial_rotary_factor;
    if (parse_rope_object(rp, where, true, yarn_ok, &r, err, errlen) ||
        get_number(rp, "rope_theta", cfg->rope_theta, false, &theta, where, err, errlen) ||
        get_number(rp, "partial_rotary_factor", family_partial ? family_partial : 1.0, false,
                   &partial, where, err, errlen))
        return -1;
    if (partial != 1.0 && !family_partial) {
        snprintf(err, errlen, "%s.partial_rotary_factor %g is not supported (only 1)", where,
                 partial);
        return -1;
    }
    if (family_partial) cfg->partial_rotary_factor = partial;
    bool has_theta =
        json_object_get(root, "rope_theta") && !json_is_null(json_object_get(root, "rope_theta"));
    bool has_scaling = rs && !json_is_null(rs);
    if ((has_theta && theta != cfg->rope_theta) ||
        (has_scaling && memcmp(&r, &cfg->rope_scaling, sizeof r) != 0)) {
        snprintf(err, errlen,
                 "%s: rope_parameters and the top-level rope_theta / rope_scaling disagree "
                 "(rope_theta %g vs %g); keep one of them",
                 src, theta, cfg->rope_theta);
        return -1;
    }
    cfg->rope_theta = theta;
    cfg->rope_scaling = r;
    return 0;
}

int config_read_bool(const ConfigReader *r, const char *key, bool dflt, bool *out) {
    return get_bool((json_t *)r->root, key, dflt, out, r->src, r->err, r->errlen);
}

int config_read_int(const ConfigReader *r, const char *key, int lo, int hi, int dflt, int *out) {
    return get_int((json_t *)r->root, key, lo, hi, dflt, out, r->src, r->err, r->errlen);
}

int config_read_number(const ConfigReader *r, const char *key, double dflt, double *out) {
    return get_number((json_t *)r->root, key, dflt, false, out, r->src, r->err, r->errlen);
}

int config_read_layer_types(const ConfigReader *r, ModelConfig *cfg, bool *present) {
    json_t *types = json_object_get((json_t *)r->root, "layer_types");
    memset(cfg->sliding_layers, 0, sizeof cfg->sliding_layers);
    *present = types && !json_is_null(types);
    if (!*present) return 0;
    if (!json_is_array(types) || (int)json_array_size(types) != cfg->num_hidden_layers) {
        snprintf(r->err, r->errlen,
                 "%s: \"layer_types\" must be a list of num_hidden_layers (%d) names", r->src,
                 cfg->num_hidden_layers);
        return -1;
    }
    size_t i;
    json_t *v;
    json_array_foreach(types, i, v) {
        const char *t = json_string_value(v);
        if (t && strcmp(t, "sliding_attention") == 0) {
            cfg->sliding_layers[i / 8] |= (unsigned char)(1u << (i % 8));
        } else if (!t || strcmp(t, "full_attention") != 0) {
            snprintf(r->err, r->errlen,
                     "%s: layer_types[%zu] must be \"full_attention\" or "
                     "\"sliding_attention\"",
                     r->src, i);
            return -1;
        }
    }
    return 0;
}

/* Layers from..L-1 slide. */
static void slide_from(ModelConfig *cfg, int from) {
    for (int l = from < 0 ? 0 : from; l < cfg->num_hidden_layers; l++)
        cfg->sliding_layers[l / 8] |= (unsigned char)(1u << (l % 8));
}

static bool any_sliding(const ModelConfig *cfg) {
    for (int l = 0; l < cfg->num_hidden_layers; l++)
        if (cfg->sliding_layers[l / 8] & (1u << (l % 8))) return true;
    return false;
}

int config_read_sliding_window(const ConfigReader *r, bool always, ModelConfig *cfg) {
    cfg->sliding_window = 0;
    bool typed, use = false;
    int max_window_layers;
    if (config_read_layer_types(r, cfg, &typed) ||
        config_read_bool(r, "use_sliding_window", false, &use) ||
        config_read_int(r, "max_window_layers", 0, 1 << 30, 28, &max_window_layers))
        return -1;
    if (!typed) slide_from(cfg, always ? 0 : use ? max_window_layers : cfg->num_hidden_layers);
    json_t *w = json_object_get((json_t *)r->root, "sliding_window");
    if (!(always || use || any_sliding(cfg)) || !w || json_is_null(w)) {
        memset(cfg->sliding_layers, 0, sizeof cfg->sliding_layers);
        return 0;
    }
    return config_read_int(r, "sliding_window", 1, 1 << 30, 0, &cfg->sliding_window);
}

int hf_layer_window(const ModelConfig *cfg, int layer) {
    return cfg->sliding_layers[layer / 8] & (1u << (layer % 8)) ? cfg->sliding_window : 0;
}

/* longrope as _compute_longrope_parameters completes it: original_max_position_embeddings
 * from the rope object or config.json's top level (Phi3Config's attribute); with it, factor
 * = max_position_embeddings / original (the object's factor is then unused), without it
 * original = max_position_embeddings and the object's factor; attention_factor when the
 * object has none: sqrt(1 + ln(factor) / ln(original)) for factor > 1, else 1. */
static int finish_longrope(json_t *root, ModelConfig *cfg, const char *src, char *err,
                           size_t errlen) {
    RopeScaling *r = &cfg->rope_scaling;
    int n = (int)r->high_freq_factor;
    r->high_freq_factor = 0;
    if (n != cfg->rotary_dim / 2) {
        snprintf(err, errlen,
                 "%s: rope_scaling's short_factor and long_factor have %d numbers; the rotary "
                 "dimensions (%d) need %d",
                 src, n, cfg->rotary_dim, cfg->rotary_dim / 2);
        return -1;
    }
    if (!r->original_max_position_embeddings &&
        get_int(root, "original_max_position_embeddings", 0, 1 << 30, 0,
                &r->original_max_position_embeddings, src, err, errlen))
        return -1;
    double orig = r->original_max_position_embeddings, factor = r->factor;
    if (orig)
        factor = cfg->max_position_embeddings / orig;
    else
        r->original_max_position_embeddings = cfg->max_position_embeddings;
    orig = r->original_max_position_embeddings;
    if (!r->attention_factor)
        r->attention_factor = factor > 1.0 ? sqrt(1 + log(factor) / log(orig)) : 1.0;
    return 0;
}

static int parse_root(json_t *root, ModelConfig *cfg, const char *src, char *err, size_t errlen);

/* The wrapper config.json names ("architectures" or "model_type"), or NULL. */
static const ModelWrapper *find_wrapper(json_t *root) {
    const char *arch = json_string_value(json_array_get(json_object_get(root, "architectures"), 0)),
               *type = json_string_value(json_object_get(root, "model_type"));
    for (int i = 0; i < N_WRAPPERS; i++)
        if ((arch && strcmp(arch, wrappers[i]->architecture) == 0) ||
            (type && strcmp(type, wrappers[i]->model_type) == 0))
            return wrappers[i];
    return NULL;
}

/* A wrapper's config.json: its text_config over the wrapper's defaults, as the decoder's
 * config (see hf_config.h). */
static int parse_wrapper(json_t *root, const ModelWrapper *w, ModelConfig *cfg, const char *src,
                         char *err, size_t errlen) {
    json_t *text = json_object_get(root, "text_config");
    const char *arch = json_string_value(json_array_get(json_object_get(root, "architectures"), 0)),
               *type = json_string_value(json_object_get(root, "model_type"));
    const char *text_type = json_string_value(json_object_get(text, "model_type"));
    if (!text_type) text_type = w->text_type_default;
    if ((arch && strcmp(arch, w->architecture) != 0) ||
        (type && strcmp(type, w->model_type) != 0)) {
        snprintf(err, errlen,
                 "%s: \"model_type\" \"%s\" and \"architectures\" [\"%s\"] name different "
                 "families",
                 src, type ? type : "", arch ? arch : "");
        return -1;
    }
    if (!json_is_object(text) || (text_type && strcmp(text_type, w->text->model_type) != 0)) {
        snprintf(err, errlen,
                 "%s: a %s config needs a \"text_config\" object of model_type \"%s\" (the "
                 "language model lorafit trains); it has %s%s%s",
                 src, w->architecture, w->text->model_type, json_is_object(text) ? "\"" : "none",
                 json_is_object(text) ? text_type : "", json_is_object(text) ? "\"" : "");
        return -1;
    }
    json_t *merged = json_loads(w->text_defaults, 0, NULL);
    if (!merged || json_object_update(merged, text) != 0) {
        json_decref(merged);
        snprintf(err, errlen, "%s: out of memory", src);
        return -1;
    }
    static const char *const from_top[] = {"tie_word_embeddings", "bos_token_id", "eos_token_id"};
    for (size_t i = 0; i < sizeof from_top / sizeof from_top[0]; i++)
        if (!json_object_get(text, from_top[i]) && json_object_get(root, from_top[i]))
            json_object_set(merged, from_top[i], json_object_get(root, from_top[i]));
    json_object_set_new(merged, "model_type", json_string(w->text->model_type));
    json_object_del(merged, "architectures");
    char where[600];
    snprintf(where, sizeof where, "%s: text_config", src);
    int rc = parse_root(merged, cfg, where, err, errlen);
    json_decref(merged);
    if (rc != 0) return -1;
    cfg->wrapper = w;
    snprintf(cfg->model_type, sizeof cfg->model_type, "%s", w->model_type);
    if (!w->final_softcap) cfg->final_softcap = 0;
    return 0;
}

/* _compute_yarn_parameters' get_mscale: 1 up to a factor of 1. */
static double yarn_mscale(double factor, double mscale) {
    return factor <= 1 ? 1.0 : 0.1 * mscale * log(factor) + 1.0;
}

/* yarn as transformers 5 completes it (standardize_rope_params, _compute_yarn_parameters):
 * original_max_position_embeddings from the rope object, else config.json's top level, else
 * max_position_embeddings; factor, when the object has none, max_position_embeddings /
 * original; attention_factor, when the object has none, get_mscale(factor, mscale) /
 * get_mscale(factor, mscale_all_dim) when both are non-zero, else get_mscale(factor). */
static int finish_yarn(json_t *root, ModelConfig *cfg, const char *src, char *err, size_t errlen) {
    RopeScaling *r = &cfg->rope_scaling;
    if (!r->original_max_position_embeddings &&
        get_int(root, "original_max_position_embeddings", 1, 1 << 30, cfg->max_position_embeddings,
                &r->original_max_position_embeddings, src, err, errlen))
        return -1;
    if (!r->factor)
        r->factor = (double)cfg->max_position_embeddings / r->original_max_position_embeddings;
    if (!r->attention_factor)
        r->attention_factor =
            r->mscale && r->mscale_all_dim
                ? yarn_mscale(r->factor, r->mscale) / yarn_mscale(r->factor, r->mscale_all_dim)
                : yarn_mscale(r->factor, 1.0);
    return 0;
}

static int parse_root(json_t *root, ModelConfig *cfg, const char *src, char *err, size_t errlen) {
    if (!json_is_object(root)) {
        snprintf(err, errlen, "%s: config must be a JSON object", src);
        return -1;
    }
    memset(cfg, 0, sizeof *cfg);
    const ModelWrapper *wrapper = find_wrapper(root);
    if (wrapper) return parse_wrapper(root, wrapper, cfg, src, err, errlen);
    if (parse_family(root, cfg, src, err, errlen)) return -1;
    const ModelFamily *f = cfg->family;
    int max_pos_default = f->default_max_positions;
    if (get_int(root, "hidden_size", 1, MAX_DIM, 0, &cfg->hidden_size, src, err, errlen) ||
        get_int(root, "intermediate_size", 1, MAX_DIM, 0, &cfg->intermediate_size, src, err,
                errlen) ||
        get_int(root, "num_hidden_layers", 1, HF_MAX_LAYERS, 0, &cfg->num_hidden_layers, src, err,
                errlen) ||
        get_int(root, "num_attention_heads", 1, 4096, 0, &cfg->num_attention_heads, src, err,
                errlen) ||
        get_int(root, "num_key_value_heads", 1, 4096, cfg->num_attention_heads,
                &cfg->num_key_value_heads, src, err, errlen) ||
        get_int(root, "vocab_size", 1, 1 << 24, 0, &cfg->vocab_size, src, err, errlen) ||
        get_int(root, "max_position_embeddings", 1, 1 << 24, max_pos_default,
                &cfg->max_position_embeddings, src, err, errlen))
        return -1;
    /* Informational only, and some configs hold lists or null: -1 unless a plain integer. */
    json_t *bos = json_object_get(root, "bos_token_id"),
           *eos = json_object_get(root, "eos_token_id");
    cfg->bos_token_id = json_is_integer(bos) ? (int)json_integer_value(bos) : -1;
    cfg->eos_token_id = json_is_integer(eos) ? (int)json_integer_value(eos) : -1;
    if (cfg->num_attention_heads % cfg->num_key_value_heads != 0) {
        snprintf(err, errlen,
                 "%s: \"num_attention_heads\" (%d) must be a multiple of "
                 "\"num_key_value_heads\" (%d)",
                 src, cfg->num_attention_heads, cfg->num_key_value_heads);
        return -1;
    }
    int hd_default =
        f->default_head_dim ? f->default_head_dim : cfg->hidden_size / cfg->num_attention_heads;
    json_t *hd = json_object_get(root, "head_dim");
    cfg->head_dim_in_config = hd && !json_is_null(hd);
    if (get_int(root, "head_dim", 2, MAX_DIM, hd_default >= 2 ? hd_default : 0, &cfg->head_dim, src,
                err, errlen))
        return -1;
    if (cfg->head_dim % 2 != 0 || (int64_t)cfg->head_dim * cfg->num_attention_heads > MAX_DIM) {
        snprintf(err, errlen, "%s: \"head_dim\" %d must be even and heads * head_dim at most %d",
                 src, cfg->head_dim, MAX_DIM);
        return -1;
    }
    if (get_number(root, "rms_norm_eps", 1e-6, false, &cfg->rms_norm_eps, src, err, errlen) ||
        get_bool(root, "tie_word_embeddings", f->default_tied, &cfg->tie_word_embeddings, src, err,
                 errlen))
        return -1;
    bool mlp_bias = false;
    if (get_bool(root, "mlp_bias", false, &mlp_bias, src, err, errlen)) return -1;
    if (mlp_bias) {
        snprintf(err, errlen, "%s: \"mlp_bias\": true is not supported", src);
        return -1;
    }
    json_t *act = json_object_get(root, "hidden_act");
    if (!f->own_activation && act && !json_is_null(act) &&
        (!json_is_string(act) || strcmp(json_string_value(act), "silu") != 0)) {
        snprintf(err, errlen,
                 "%s: \"hidden_act\" must be \"silu\" (the only supported "
                 "activation)",
                 src);
        return -1;
    }
    ConfigReader r = {root, src, err, errlen};
    if (f->read_config(&r, cfg)) return -1;
    if (parse_rope(root, cfg, src, err, errlen)) return -1;
    double partial = cfg->partial_rotary_factor ? cfg->partial_rotary_factor : 1.0;
    cfg->rotary_dim = (int)(cfg->head_dim * partial); /* transformers' int(head_dim * factor) */
    if (partial > 1.0 || cfg->rotary_dim < 2 || cfg->rotary_dim % 2 != 0) {
        snprintf(err, errlen,
                 "%s: \"partial_rotary_factor\" %g gives %d rotary dimensions of head_dim %d "
                 "(need an even number, at least 2, at most head_dim)",
                 src, partial, cfg->rotary_dim, cfg->head_dim);
        return -1;
    }
    if (cfg->rope_scaling.yarn) return finish_yarn(root, cfg, src, err, errlen);
    return cfg->rope_scaling.longrope ? finish_longrope(root, cfg, src, err, errlen) : 0;
}

int hf_config_parse(const char *json, size_t len, const char *what_for, ModelConfig *cfg, char *err,
                    size_t errlen) {
    json_error_t je;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        snprintf(err, errlen, "%s:%d:%d: invalid JSON: %s", what_for, je.line, je.column, je.text);
        return -1;
    }
    int rc = parse_root(root, cfg, what_for, err, errlen);
    json_decref(root);
    return rc;
}

int hf_config_load(const char *path, ModelConfig *cfg, char *err, size_t errlen) {
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        snprintf(err, errlen, "%s:%d:%d: %s", path, je.line, je.column, je.text);
        return -1;
    }
    int rc = parse_root(root, cfg, path, err, errlen);
    json_decref(root);
    return rc;
}

/* longrope: 1 / (ext_factor[i] * base^(2i / dim)). */
static void longrope_inv_freq(const ModelConfig *cfg, const double *ext, double *inv_freq) {
    int d = cfg->rotary_dim;
    for (int i = 0; i < d / 2; i++)
        inv_freq[i] = 1.0 / (ext[i] * pow(cfg->rope_theta, (double)(2 * i) / d));
}

void hf_rope_inv_freq_long(const ModelConfig *cfg, double *inv_freq) {
    longrope_inv_freq(cfg, cfg->rope_scaling.long_factor, inv_freq);
}

double hf_rope_attention_factor(const ModelConfig *cfg) {
    const RopeScaling *r = &cfg->rope_scaling;
    return r->longrope || r->yarn ? r->attention_factor : 1.0;
}

double hf_query_scale(const ModelConfig *cfg, int pos) {
    /* _get_llama_4_attn_scale: 1 + beta * log(1 + floor(pos / original)) */
    int orig = cfg->rope_scaling.original_max_position_embeddings;
    if (!cfg->llama4_scaling_beta || orig <= 0) return 1.0;
    return 1.0 + cfg->llama4_scaling_beta * log(1.0 + floor((double)pos / orig));
}

/* _compute_yarn_parameters: the dimensions below the correction dim of beta_fast keep their
 * frequency (extrapolation), those above beta_slow's are divided by factor (interpolation),
 * a linear ramp blends the ones between. */
static void yarn_inv_freq(const ModelConfig *cfg, double *inv_freq) {
    const RopeScaling *r = &cfg->rope_scaling;
    int d = cfg->rotary_dim;
    double base = cfg->rope_theta, orig = r->original_max_position_embeddings;
    double low = d * log(orig / (r->beta_fast * 2 * M_PI)) / (2 * log(base));
    double high = d * log(orig / (r->beta_slow * 2 * M_PI)) / (2 * log(base));
    if (!r->yarn_no_truncate) low = floor(low), high = ceil(high);
    low = low > 0 ? low : 0;
    high = high < d - 1 ? high : d - 1;
    if (low == high) high += 0.001; /* linear_ramp_factor's guard against a singularity */
    for (int i = 0; i < d / 2; i++) {
        double ramp = (i - low) / (high - low);
        ramp = ramp < 0 ? 0 : ramp > 1 ? 1 : ramp;
        double extrapolation = 1.0 - ramp, pos_freq = pow(base, (double)(2 * i) / d);
        inv_freq[i] =
            1.0 / (r->factor * pos_freq) * (1 - extrapolation) + 1.0 / pos_freq * extrapolation;
    }
}

void hf_rope_inv_freq(const ModelConfig *cfg, double *inv_freq) {
    int d = cfg->rotary_dim;
    if (cfg->rope_scaling.longrope) {
        longrope_inv_freq(cfg, cfg->rope_scaling.short_factor, inv_freq);
        return;
    }
    if (cfg->rope_scaling.yarn) {
        yarn_inv_freq(cfg, inv_freq);
        return;
    }
    for (int i = 0; i < d / 2; i++) inv_freq[i] = 1.0 / pow(cfg->rope_theta, (double)(2 * i) / d);
    const RopeScaling *r = &cfg->rope_scaling;
    if (r->linear) { /* _compute_linear_scaling_rope_parameters: positions / factor */
        for (int i = 0; i < d / 2; i++) inv_freq[i] /= r->factor;
        return;
    }
    if (!r->llama3) return;
    /* transformers' _compute_llama3_parameters: low frequencies are divided by factor,
     * high ones kept, and the band between interpolated smoothly. */
    double old_len = r->original_max_position_embeddings;
    double low_freq_wavelen = old_len / r->low_freq_factor;
    double high_freq_wavelen = old_len / r->high_freq_factor;
    for (int i = 0; i < d / 2; i++) {
        double f = inv_freq[i], wavelen = 2 * M_PI / f;
        double scaled = wavelen > low_freq_wavelen ? f / r->factor : f;
        if (!(wavelen < high_freq_wavelen) && !(wavelen > low_freq_wavelen)) {
            double smooth = (old_len / wavelen - r->low_freq_factor) /
                            (r->high_freq_factor - r->low_freq_factor);
            scaled = (1 - smooth) * scaled / r->factor + smooth * scaled;
        }
        inv_freq[i] = scaled;
    }
}

void hf_rope_local_inv_freq(const ModelConfig *cfg, double *inv_freq) {
    int d = cfg->head_dim;
    for (int i = 0; i < d / 2; i++)
        inv_freq[i] = 1.0 / pow(cfg->rope_local_theta, (double)(2 * i) / d);
}
