/* trainer/model/hf_config.c — config.json -> ModelConfig (see hf_config.h).
 *
 * The keys every family shares are read here, with the family's defaults; the family's
 * own keys by its read_config hook (family_*.c). Defaults follow transformers' config
 * classes. Values are range-checked here so that later size arithmetic (V * C, L * ...)
 * cannot overflow. */
#include "trainer/model/hf_config.h"
#include "trainer/model/family.h"
#include "trainer/model/hf_json.h"

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
extern const ModelFamily family_ministral3, family_qwen3_5_text, family_gemma4_text;
static const ModelFamily *const families[] = {
    &family_llama,       &family_mistral, &family_qwen2,      &family_qwen3,
    &family_smollm3,     &family_olmo2,   &family_granite,    &family_gemma2,
    &family_gemma3_text, &family_phi3,    &family_ministral3, &family_qwen3_5_text,
    &family_gemma4_text,
};
#define N_FAMILIES ((int)(sizeof families / sizeof families[0]))
/* The multimodal checkpoints around them (family.h's ModelWrapper). */
extern const ModelWrapper wrapper_gemma3, wrapper_mistral3, wrapper_qwen3_5, wrapper_gemma4;
static const ModelWrapper *const wrappers[] = {&wrapper_gemma3, &wrapper_mistral3, &wrapper_qwen3_5,
                                               &wrapper_gemma4};
#define N_WRAPPERS ((int)(sizeof wrappers / sizeof wrappers[0]))

const char *hf_architecture(const ModelConfig *cfg) {
    return cfg->wrapper  ? cfg->wrapper->architecture
           : cfg->family ? cfg->family->architecture
                         : "?";
}

int hf_get_int(json_t *root, const char *key, int lo, int hi, int dflt, int *out, const char *src,
               char *err, size_t errlen) {
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

int hf_get_number(json_t *root, const char *key, double dflt, bool required, double *out,
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

int hf_get_bool(json_t *root, const char *key, bool dflt, bool *out, const char *src, char *err,
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

const ModelFamily *hf_family_of_gguf_arch(const char *arch, char *supported, size_t len) {
    size_t n = 0;
    const ModelFamily *found = NULL;
    if (len) supported[0] = '\0';
    for (int i = 0; i < N_FAMILIES; i++) {
        const ModelFamily *f = families[i];
        if (!f->gguf_load || !f->gguf_arch) continue;
        if (!found && strcmp(arch, f->gguf_arch) == 0) found = f;
        bool listed = false;
        for (int j = 0; j < i; j++)
            listed |= families[j]->gguf_load && strcmp(families[j]->gguf_arch, f->gguf_arch) == 0;
        if (n < len && !listed) {
            int w = snprintf(supported + n, len - n, "%s%s", n ? ", " : "", f->gguf_arch);
            if (w > 0) n += (size_t)w;
        }
    }
    return found;
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

int config_read_bool(const ConfigReader *r, const char *key, bool dflt, bool *out) {
    return hf_get_bool((json_t *)r->root, key, dflt, out, r->src, r->err, r->errlen);
}

int config_read_int(const ConfigReader *r, const char *key, int lo, int hi, int dflt, int *out) {
    return hf_get_int((json_t *)r->root, key, lo, hi, dflt, out, r->src, r->err, r->errlen);
}

int config_read_number(const ConfigReader *r, const char *key, double dflt, double *out) {
    return hf_get_number((json_t *)r->root, key, dflt, false, out, r->src, r->err, r->errlen);
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
    if (hf_get_int(root, "hidden_size", 1, MAX_DIM, 0, &cfg->hidden_size, src, err, errlen) ||
        hf_get_int(root, "intermediate_size", 1, MAX_DIM, 0, &cfg->intermediate_size, src, err,
                   errlen) ||
        hf_get_int(root, "num_hidden_layers", 1, HF_MAX_LAYERS, 0, &cfg->num_hidden_layers, src,
                   err, errlen) ||
        hf_get_int(root, "num_attention_heads", 1, 4096, 0, &cfg->num_attention_heads, src, err,
                   errlen) ||
        hf_get_int(root, "num_key_value_heads", 1, 4096, cfg->num_attention_heads,
                   &cfg->num_key_value_heads, src, err, errlen) ||
        hf_get_int(root, "vocab_size", 1, 1 << 24, 0, &cfg->vocab_size, src, err, errlen) ||
        hf_get_int(root, "max_position_embeddings", 1, 1 << 24, max_pos_default,
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
    if (hf_get_int(root, "head_dim", 2, MAX_DIM, hd_default >= 2 ? hd_default : 0, &cfg->head_dim,
                   src, err, errlen))
        return -1;
    if (cfg->head_dim % 2 != 0 || (int64_t)cfg->head_dim * cfg->num_attention_heads > MAX_DIM) {
        snprintf(err, errlen, "%s: \"head_dim\" %d must be even and heads * head_dim at most %d",
                 src, cfg->head_dim, MAX_DIM);
        return -1;
    }
    if (hf_get_number(root, "rms_norm_eps", 1e-6, false, &cfg->rms_norm_eps, src, err, errlen) ||
        hf_get_bool(root, "tie_word_embeddings", f->default_tied, &cfg->tie_word_embeddings, src,
                    err, errlen))
        return -1;
    bool mlp_bias = false;
    if (hf_get_bool(root, "mlp_bias", false, &mlp_bias, src, err, errlen)) return -1;
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
    if (hf_rope_parse(root, cfg, src, err, errlen)) return -1;
    double partial = cfg->partial_rotary_factor ? cfg->partial_rotary_factor : 1.0;
    int rope_dim = cfg->full.head_dim ? cfg->full.head_dim : cfg->head_dim; /* the full layers' */
    cfg->rotary_dim = (int)(rope_dim * partial); /* transformers' int(head_dim * factor) */
    if (partial > 1.0 || cfg->rotary_dim < 2 || cfg->rotary_dim % 2 != 0) {
        snprintf(err, errlen,
                 "%s: \"partial_rotary_factor\" %g gives %d rotary dimensions of head_dim %d "
                 "(need an even number, at least 2, at most head_dim)",
                 src, partial, cfg->rotary_dim, rope_dim);
        return -1;
    }
    return hf_rope_finish(root, cfg, src, err, errlen);
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
