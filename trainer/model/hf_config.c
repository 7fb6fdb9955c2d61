/* trainer/model/hf_config.c — config.json -> ModelConfig (see hf_config.h).
 *
 * Defaults follow transformers' LlamaConfig / MistralConfig / Qwen2Config. Values are
 * range-checked here so that later size arithmetic (V * C, L * ...) cannot overflow. */
#include "trainer/model/hf_config.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DIM (1 << 20) /* any single dimension; keeps products of two well inside int64 */

static const struct {
    const char *arch, *type;
    ModelArch id;
    int default_max_pos;
} known[] = {{"LlamaForCausalLM", "llama", ARCH_LLAMA, 2048},
             {"MistralForCausalLM", "mistral", ARCH_MISTRAL, 4096 * 32},
             {"Qwen2ForCausalLM", "qwen2", ARCH_QWEN2, 32768}};
#define N_KNOWN ((int)(sizeof known / sizeof known[0]))

const char *hf_arch_name(ModelArch a) {
    for (int i = 0; i < N_KNOWN; i++)
        if (known[i].id == a) return known[i].arch;
    return "?";
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

static int parse_arch(json_t *root, ModelConfig *cfg, const char *src, char *err, size_t errlen) {
    json_t *archs = json_object_get(root, "architectures"),
           *type = json_object_get(root, "model_type");
    int found = -1;
    if (archs && !json_is_null(archs)) {
        const char *a = json_string_value(json_array_get(archs, 0));
        if (!json_is_array(archs) || json_array_size(archs) != 1 || !a) {
            snprintf(err, errlen, "%s: \"architectures\" must be an array of one string", src);
            return -1;
        }
        for (int i = 0; i < N_KNOWN; i++)
            if (strcmp(a, known[i].arch) == 0) found = i;
        if (found < 0) {
            snprintf(err, errlen,
                     "%s: \"architectures\": unsupported architecture \"%s\" "
                     "(supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM)",
                     src, a);
            return -1;
        }
    }
    if (type && !json_is_null(type)) {
        if (!json_is_string(type)) {
            snprintf(err, errlen, "%s: \"model_type\" must be a string", src);
            return -1;
        }
        int t = -1;
        for (int i = 0; i < N_KNOWN; i++)
            if (strcmp(json_string_value(type), known[i].type) == 0) t = i;
        if (t < 0 || (found >= 0 && t != found)) {
            snprintf(err, errlen,
                     "%s: \"model_type\": unsupported or inconsistent \"%s\" "
                     "(supported: llama, mistral, qwen2, matching \"architectures\")",
                     src, json_string_value(type));
            return -1;
        }
        found = t;
    }
    if (found < 0) {
        snprintf(err, errlen,
                 "%s: missing \"architectures\" and \"model_type\" (cannot tell "
                 "the architecture)",
                 src);
        return -1;
    }
    cfg->arch = known[found].id;
    snprintf(cfg->model_type, sizeof cfg->model_type, "%s", known[found].type);
    return 0;
}

static int parse_rope_scaling(json_t *root, ModelConfig *cfg, const char *src, char *err,
                              size_t errlen) {
    json_t *rs = json_object_get(root, "rope_scaling");
    memset(&cfg->rope_scaling, 0, sizeof cfg->rope_scaling);
    if (!rs || json_is_null(rs)) return 0;
    if (!json_is_object(rs)) {
        snprintf(err, errlen, "%s: \"rope_scaling\" must be null or an object", src);
        return -1;
    }
    json_t *t = json_object_get(rs, "rope_type");
    if (!t) t = json_object_get(rs, "type");
    const char *type = json_string_value(t);
    if (!type || strcmp(type, "llama3") != 0) {
        snprintf(err, errlen,
                 "%s: rope_scaling.rope_type \"%s\" is not supported (only "
                 "\"llama3\")",
                 src, type ? type : "(missing)");
        return -1;
    }
    RopeScaling *r = &cfg->rope_scaling;
    char where[600];
    snprintf(where, sizeof where, "%s: rope_scaling", src);
    r->llama3 = true;
    if (get_number(rs, "factor", 0, true, &r->factor, where, err, errlen) ||
        get_number(rs, "low_freq_factor", 0, true, &r->low_freq_factor, where, err, errlen) ||
        get_number(rs, "high_freq_factor", 0, true, &r->high_freq_factor, where, err, errlen) ||
        get_int(rs, "original_max_position_embeddings", 1, 1 << 30, 0,
                &r->original_max_position_embeddings, where, err, errlen))
        return -1;
    if (r->high_freq_factor <= r->low_freq_factor) {
        snprintf(err, errlen, "%s.high_freq_factor must exceed low_freq_factor", where);
        return -1;
    }
    return 0;
}

static int parse_root(json_t *root, ModelConfig *cfg, const char *src, char *err, size_t errlen) {
    if (!json_is_object(root)) {
        snprintf(err, errlen, "%s: config must be a JSON object", src);
        return -1;
    }
    memset(cfg, 0, sizeof *cfg);
    if (parse_arch(root, cfg, src, err, errlen)) return -1;
    int max_pos_default = 2048;
    for (int i = 0; i < N_KNOWN; i++)
        if (known[i].id == cfg->arch) max_pos_default = known[i].default_max_pos;
    if (get_int(root, "hidden_size", 1, MAX_DIM, 0, &cfg->hidden_size, src, err, errlen) ||
        get_int(root, "intermediate_size", 1, MAX_DIM, 0, &cfg->intermediate_size, src, err,
                errlen) ||
        get_int(root, "num_hidden_layers", 1, 4096, 0, &cfg->num_hidden_layers, src, err, errlen) ||
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
    int hd_default = cfg->hidden_size / cfg->num_attention_heads;
    if (get_int(root, "head_dim", 2, MAX_DIM, hd_default >= 2 ? hd_default : 0, &cfg->head_dim, src,
                err, errlen))
        return -1;
    if (cfg->head_dim % 2 != 0 || (int64_t)cfg->head_dim * cfg->num_attention_heads > MAX_DIM) {
        snprintf(err, errlen, "%s: \"head_dim\" %d must be even and heads * head_dim at most %d",
                 src, cfg->head_dim, MAX_DIM);
        return -1;
    }
    if (get_number(root, "rms_norm_eps", 1e-6, false, &cfg->rms_norm_eps, src, err, errlen) ||
        get_number(root, "rope_theta", 10000.0, false, &cfg->rope_theta, src, err, errlen) ||
        get_bool(root, "tie_word_embeddings", false, &cfg->tie_word_embeddings, src, err, errlen))
        return -1;
    bool attention_bias = false, mlp_bias = false;
    if (get_bool(root, "attention_bias", false, &attention_bias, src, err, errlen) ||
        get_bool(root, "mlp_bias", false, &mlp_bias, src, err, errlen))
        return -1;
    if (mlp_bias) {
        snprintf(err, errlen, "%s: \"mlp_bias\": true is not supported", src);
        return -1;
    }
    /* Qwen2 always has q/k/v biases and never an o bias; HF Llama's attention_bias adds
     * biases to all four attention projections. */
    cfg->qkv_bias = cfg->arch == ARCH_QWEN2 || attention_bias;
    cfg->o_bias = cfg->arch != ARCH_QWEN2 && attention_bias;
    json_t *act = json_object_get(root, "hidden_act");
    if (act && !json_is_null(act) &&
        (!json_is_string(act) || strcmp(json_string_value(act), "silu") != 0)) {
        snprintf(err, errlen,
                 "%s: \"hidden_act\" must be \"silu\" (the only supported "
                 "activation)",
                 src);
        return -1;
    }
    return parse_rope_scaling(root, cfg, src, err, errlen);
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

void hf_rope_inv_freq(const ModelConfig *cfg, double *inv_freq) {
    int d = cfg->head_dim;
    for (int i = 0; i < d / 2; i++) inv_freq[i] = 1.0 / pow(cfg->rope_theta, (double)(2 * i) / d);
    const RopeScaling *r = &cfg->rope_scaling;
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
