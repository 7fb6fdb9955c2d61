/* trainer/model/gguf_config.c — a GGUF base's metadata -> ModelConfig, the inverse of
 * gguf_model.c's add_metadata and the families' gguf_metadata hooks.
 *
 * The metadata is turned into the config.json the file was converted from and parsed by
 * hf_config.c, so a GGUF base gets exactly the defaults, checks and derived values (RoPE
 * tables, sliding layers, head_dim) of a Hugging Face directory. The shared keys are read
 * here, an arch's own by its family's gguf_config hook. What llama.cpp would assume when a
 * key is absent is what the config says: rope.freq_base 10000, head_count_kv = head_count,
 * key_length = embedding_length / head_count. rope.dimension_count below the head size is
 * partial_rotary_factor (read by Phi-3 only; another family refuses it). The vocabulary size is
 * token_embd's rows and the head is tied when the file has no output.weight (llama.cpp's fallback).
 *
 * Refused, naming the key: an arch no family loads (with the list of those that do),
 * key_length != value_length, RoPE scaling other than none / linear. llama3's RoPE is in the file
 * as factors (rope_freqs.weight), not as the scaling parameters: the frequencies are divided by
 * them as llama.cpp does (RopeScaling.gguf_factors), which is transformers' llama3 RoPE to
 * rounding. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trainer/model/family.h"
#include "trainer/model/internal.h"

static const GgufKv *arch_kv(const GgufConfigReader *r, const char *key) {
    char full[160];
    snprintf(full, sizeof full, "%s.%s", r->arch, key);
    return gguf_find_kv(r->f, full);
}

int gguf_config_copy(const GgufConfigReader *r, const char *key, const char *hf_key, bool real) {
    const GgufKv *kv = arch_kv(r, key);
    if (!kv) return 0;
    int64_t i;
    double d;
    json_t *v = NULL;
    if (!real && gguf_kv_int(kv, &i))
        v = json_integer(i);
    else if (real && gguf_kv_float(kv, &d))
        v = json_real(d);
    else if (real && gguf_kv_int(kv, &i))
        v = json_real((double)i);
    if (!v) {
        snprintf(r->err, r->errlen, "%s: %s.%s must be %s, not %s", gguf_file_path(r->f), r->arch,
                 key, real ? "a number" : "an integer", gguf_type_name(kv->type));
        return -1;
    }
    json_object_set_new(r->cfg, hf_key, v);
    return 1;
}

int gguf_config_sliding_layers(const GgufConfigReader *r, int dflt) {
    const GgufKv *kv = arch_kv(r, "attention.sliding_window_pattern");
    int64_t period = dflt;
    json_t *types = json_array();
    if (!types) return snprintf(r->err, r->errlen, "out of memory"), -1;
    if (kv && kv->type == GGUF_TYPE_ARRAY && kv->n != (uint64_t)r->layers) {
        json_decref(types);
        snprintf(r->err, r->errlen,
                 "%s: %s.attention.sliding_window_pattern has %llu flags for %d layers",
                 gguf_file_path(r->f), r->arch, (unsigned long long)kv->n, r->layers);
        return -1;
    }
    if (kv && kv->type != GGUF_TYPE_ARRAY && (!gguf_kv_int(kv, &period) || period < 0)) {
        json_decref(types);
        snprintf(r->err, r->errlen,
                 "%s: %s.attention.sliding_window_pattern must be a period or a list of flags",
                 gguf_file_path(r->f), r->arch);
        return -1;
    }
    for (int l = 0; l < r->layers; l++) {
        int64_t flag = 0;
        bool slides = kv && kv->type == GGUF_TYPE_ARRAY
                          ? gguf_elem_int(kv, (uint64_t)l, &flag) && flag != 0
                          : period == 0 || l % period < period - 1;
        json_array_append_new(types, json_string(slides ? "sliding_attention" : "full_attention"));
    }
    json_object_set_new(r->cfg, "layer_types", types);
    return 0;
}

/* A required integer key of the arch, in [1, 2^30]. */
static int need_int(const GgufConfigReader *r, const char *key, int *out) {
    const GgufKv *kv = arch_kv(r, key);
    int64_t v;
    if (!kv || !gguf_kv_int(kv, &v) || v < 1 || v > (1 << 30)) {
        snprintf(r->err, r->errlen, "%s: %s.%s is %s (a positive integer is needed)",
                 gguf_file_path(r->f), r->arch, key, kv ? "not a valid count" : "missing");
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* The shared keys (gguf_model.c's add_metadata, inverted). */
static int shared_keys(GgufConfigReader *r, const ModelFamily *fam) {
    const char *path = gguf_file_path(r->f);
    json_t *c = r->cfg;
    int ff;
    if (need_int(r, "block_count", &r->layers) || need_int(r, "embedding_length", &r->hidden) ||
        need_int(r, "attention.head_count", &r->heads) || need_int(r, "feed_forward_length", &ff))
        return -1;
    json_object_set_new(c, "architectures", json_pack("[s]", fam->architecture));
    json_object_set_new(c, "model_type", json_string(fam->model_type));
    json_object_set_new(c, "num_hidden_layers", json_integer(r->layers));
    json_object_set_new(c, "hidden_size", json_integer(r->hidden));
    json_object_set_new(c, "num_attention_heads", json_integer(r->heads));
    json_object_set_new(c, "intermediate_size", json_integer(ff));
    json_object_set_new(c, "rope_theta", json_real(10000.0)); /* llama.cpp's default */
    if (gguf_config_copy(r, "attention.head_count_kv", "num_key_value_heads", false) < 0 ||
        gguf_config_copy(r, "context_length", "max_position_embeddings", false) < 0 ||
        gguf_config_copy(r, "rope.freq_base", "rope_theta", true) < 0 ||
        gguf_config_copy(r, "attention.layer_norm_rms_epsilon", "rms_norm_eps", true) < 0)
        return -1;
    int64_t k = r->hidden / r->heads, v = k, dims;
    const GgufKv *kk = arch_kv(r, "attention.key_length"),
                 *vk = arch_kv(r, "attention.value_length");
    if ((kk && !gguf_kv_int(kk, &k)) || (vk && !gguf_kv_int(vk, &v)) || k != v) {
        snprintf(r->err, r->errlen,
                 "%s: %s.attention.key_length and value_length must be equal integers (lorafit's "
                 "families have one head size)",
                 path, r->arch);
        return -1;
    }
    if (kk) json_object_set_new(c, "head_dim", json_integer(k));
    const GgufKv *dk = arch_kv(r, "rope.dimension_count");
    if (dk && (!gguf_kv_int(dk, &dims) || dims < 2 || dims > k)) {
        snprintf(r->err, r->errlen, "%s: %s.rope.dimension_count must be 2 .. the head size %lld",
                 path, r->arch, (long long)k);
        return -1;
    }
    if (dk && dims != k) /* partial RoPE; checked against the family's reading below */
        json_object_set_new(c, "partial_rotary_factor", json_real((double)dims / (double)k));
    const GgufKv *st = arch_kv(r, "rope.scaling.type");
    const char *type = "none";
    size_t tlen = 4;
    if (st && !gguf_kv_str(st, &type, &tlen)) type = "?", tlen = 1;
    if (tlen == 6 && memcmp(type, "linear", 6) == 0) {
        double factor = 1.0;
        const GgufKv *fk = arch_kv(r, "rope.scaling.factor");
        if (fk && !gguf_kv_float(fk, &factor)) factor = 0;
        json_object_set_new(c, "rope_scaling",
                            json_pack("{s:s, s:f}", "rope_type", "linear", "factor", factor));
    } else if (tlen == 4 && memcmp(type, "yarn", 4) == 0 && fam->yarn && fam->gguf_config) {
        /* the family's hook reads yarn's keys */
    } else if (!(tlen == 4 && memcmp(type, "none", 4) == 0)) {
        snprintf(r->err, r->errlen,
                 "%s: %s.rope.scaling.type \"%.*s\" is not read by lorafit (none and linear "
                 "are)",
                 path, r->arch, (int)tlen, type);
        return -1;
    }
    const GgufTensorInfo *embd = gguf_find_tensor(r->f, "token_embd.weight");
    if (!embd || embd->n_dims != 2) {
        snprintf(r->err, r->errlen, "%s: tensor token_embd.weight is %s", path,
                 embd ? "not a matrix" : "missing");
        return -1;
    }
    json_object_set_new(c, "vocab_size", json_integer(embd->ne[1]));
    json_object_set_new(c, "tie_word_embeddings",
                        json_boolean(gguf_find_tensor(r->f, "output.weight") == NULL));
    static const char *const ids[2][2] = {{"tokenizer.ggml.bos_token_id", "bos_token_id"},
                                          {"tokenizer.ggml.eos_token_id", "eos_token_id"}};
    for (int i = 0; i < 2; i++) {
        const GgufKv *kv = gguf_find_kv(r->f, ids[i][0]);
        int64_t id;
        if (kv && gguf_kv_int(kv, &id)) json_object_set_new(c, ids[i][1], json_integer(id));
    }
    return 0;
}

/* rope_freqs.weight (llama3 RoPE as the converter writes it, LlamaModel.
 * generate_extra_tensors): the frequencies' divisors, used as llama.cpp uses them. */
static int rope_freqs(const GgufFile *f, ModelConfig *cfg, char *err, size_t errlen) {
    const GgufTensorInfo *t = gguf_find_tensor(f, "rope_freqs.weight");
    if (!t) return 0;
    int half = cfg->rotary_dim / 2;
    if (t->type != GGML_TYPE_F32 || t->n_dims != 1 || t->ne[0] != half ||
        cfg->rope_scaling.linear) {
        snprintf(err, errlen,
                 "%s: tensor rope_freqs.weight must be %d F32 factors (rotary dimensions / 2), "
                 "without another RoPE scaling",
                 gguf_file_path(f), half);
        return -1;
    }
    for (int i = 0; i < half; i++) {
        float v;
        memcpy(&v, (const uint8_t *)t->data + 4 * i, sizeof v);
        if (!(v > 0) || !isfinite(v)) {
            snprintf(err, errlen, "%s: rope_freqs.weight[%d] = %g is not a positive factor",
                     gguf_file_path(f), i, v);
            return -1;
        }
        cfg->rope_scaling.short_factor[i] = v;
    }
    cfg->rope_scaling.gguf_factors = true;
    return 0;
}

int gguf_base_config(const GgufFile *f, ModelConfig *cfg, char *err, size_t errlen) {
    const GgufKv *a = gguf_find_kv(f, "general.architecture");
    const char *arch;
    size_t len;
    char name[64], supported[512];
    if (!a || !gguf_kv_str(a, &arch, &len) || len == 0 || len >= sizeof name) {
        snprintf(err, errlen, "%s: general.architecture is %s", gguf_file_path(f),
                 a ? "not a short string" : "missing");
        return -1;
    }
    snprintf(name, sizeof name, "%.*s", (int)len, arch);
    const ModelFamily *fam = hf_family_of_gguf_arch(name, supported, sizeof supported);
    if (!fam) {
        snprintf(err, errlen,
                 "%s: general.architecture \"%s\" is not supported as a base; lorafit loads "
                 "GGUF files of %s",
                 gguf_file_path(f), name, supported);
        return -1;
    }
    GgufConfigReader r = {.f = f, .arch = name, .cfg = json_object(), .err = err, .errlen = errlen};
    int rc = r.cfg ? shared_keys(&r, fam) : -1;
    if (!r.cfg) snprintf(err, errlen, "out of memory");
    if (rc == 0 && fam->gguf_config) rc = fam->gguf_config(&r);
    char *text = rc == 0 ? json_dumps(r.cfg, JSON_SORT_KEYS) : NULL;
    if (rc == 0 && !text) rc = -1, snprintf(err, errlen, "out of memory");
    if (rc == 0) {
        char what[4200];
        snprintf(what, sizeof what, "%s (its metadata as config.json)", gguf_file_path(f));
        rc = hf_config_parse(text, strlen(text), what, cfg, err, errlen);
    }
    if (rc == 0) rc = rope_freqs(f, cfg, err, errlen);
    char key[96];
    snprintf(key, sizeof key, "%s.rope.dimension_count", name);
    const GgufKv *dk = gguf_find_kv(f, key);
    int64_t dims = 0;
    if (rc == 0 && dk && gguf_kv_int(dk, &dims) && dims != cfg->rotary_dim) {
        snprintf(err, errlen,
                 "%s: %s.rope.dimension_count %lld rotates part of a head of %d, which lorafit "
                 "reads for phi3 only",
                 gguf_file_path(f), name, (long long)dims, cfg->head_dim);
        rc = -1;
    }
    free(text);
    json_decref(r.cfg);
    return rc;
}
