/* trainer/model/weights.c — config.json + safetensors -> Model (see model.h).
 *
 * The expected tensors: the embedding, per layer the family's norm weights (family.h) and
 * the seven linears with the biases the config names, the final norm and an untied
 * lm_head. Two passes over that list: the first checks every name, dtype and shape
 * and sizes the conversion buffers; the second points tensors of the wanted dtype into the
 * mapping and converts the rest. A mismatch names the tensor and both shapes.
 *
 * With dtype BF16 only the matrices (2-D slots) become BF16: norm weights and biases are
 * tiny and the ops want them F32. The matrices the step multiplies are never used in place:
 * they are copied (or converted) into memory advised as transparent huge pages
 * (tensor_alloc_pages), because products streaming through a weight in the mapping's 4 KiB
 * pages ran far slower: with the SmolLM-135M shape's F32 weights in place, 2.41 s a step
 * against 1.92 s from huge pages (Zen 5 VM, 2 threads; bf16 weights 1.24 s against 1.23 s).
 * The pages of a source that was copied or converted are dropped from the mapping afterwards
 * (madvise), so resident memory is the copy, not both; they would be re-read from the file
 * if anything touched them again. */
#include "trainer/model/internal.h"

#include <math.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const module_paths[MODULE_COUNT] = {
    "self_attn.q_proj",        "self_attn.k_proj",      "self_attn.v_proj",
    "self_attn.o_proj",        "mlp.gate_proj",         "mlp.up_proj",
    "mlp.down_proj",           "self_attn.qkv_proj",    "mlp.gate_up_proj",
    "linear_attn.in_proj_qkv", "linear_attn.in_proj_z", "linear_attn.in_proj_b",
    "linear_attn.in_proj_a",   "linear_attn.out_proj",  "per_layer_input_gate",
    "per_layer_projection"};

const char *model_module_path(ModelModule mod) {
    return (unsigned)mod < MODULE_COUNT ? module_paths[mod] : "?";
}

const char *model_module_name(ModelModule mod) {
    const char *path = model_module_path(mod), *dot = strrchr(path, '.');
    return dot ? dot + 1 : path;
}

void model_module_list_of(unsigned mask, char *out, size_t len) {
    size_t n = 0;
    if (len) out[0] = '\0';
    for (int m = 0; m < MODULE_COUNT && n < len; m++) {
        if (!(mask & (1u << m))) continue;
        int w = snprintf(out + n, len - n, n ? ", %s" : "%s", model_module_name((ModelModule)m));
        if (w < 0) break;
        n += (size_t)w;
    }
}

void model_module_list(char *out, size_t len) {
    model_module_list_of((1u << MODULE_COUNT) - 1, out, len);
}

/* The attention layers' modules. */
static unsigned attention_modules(const ModelConfig *cfg) {
    unsigned mods = cfg->family ? cfg->family->modules : 0;
    return mods ? mods : (1u << (MODULE_DOWN + 1)) - 1;
}

/* Gemma 4's per-layer gate and projection, in the E models (their weights: norm slots). */
static unsigned ple_modules(const ModelConfig *cfg) {
    return cfg->ple_dim > 0 ? 1u << MODULE_PLE_GATE | 1u << MODULE_PLE_PROJ : 0u;
}

unsigned model_modules(const ModelConfig *cfg) {
    return attention_modules(cfg) | (cfg->family ? cfg->family->linear_modules : 0) |
           ple_modules(cfg);
}

unsigned model_layer_targets(const ModelConfig *cfg, int layer) {
    return model_layer_modules(cfg, layer) | ple_modules(cfg);
}

unsigned model_layer_modules(const ModelConfig *cfg, int layer) {
    if (hf_layer_is_linear(cfg, layer)) return cfg->family->linear_modules;
    bool k_is_v = cfg->full.k_eq_v && !hf_layer_sliding(cfg, layer); /* Gemma 4: no v_proj */
    unsigned kv = 1u << MODULE_K | 1u << MODULE_V;                   /* KV sharing: neither */
    return attention_modules(cfg) & ~(hf_layer_shares_kv(cfg, layer) ? kv
                                      : k_is_v                       ? 1u << MODULE_V
                                                                     : 0u);
}

bool family_layer_has_norm(const ModelConfig *c, int l, const FamilyNorm *n) {
    switch (n->slot) {
    case NORM_LINEAR_OUT:
    case LINEAR_A_LOG:
    case LINEAR_DT_BIAS:
    case LINEAR_CONV:
        return hf_layer_is_linear(c, l);
    case NORM_K:
        return !hf_layer_is_linear(c, l) && !hf_layer_shares_kv(c, l);
    case NORM_Q:
    case NORM_Q_PROJ:
    case NORM_K_PROJ:
        return !hf_layer_is_linear(c, l);
    case PLE_GATE:
    case PLE_PROJ:
    case NORM_PLE:
        return c->ple_dim > 0;
    default:
        return true;
    }
}

/* The shape of linear mod in a layer whose q projection is q wide, k and v kv, the MLP ff. */
static void module_dims(const ModelConfig *cfg, int q, int kv, int ff, ModelModule mod, int *out,
                        int *in) {
    int c = cfg->hidden_size;
    int lk = cfg->linear.n_k_heads * cfg->linear.k_dim,
        lv = cfg->linear.n_v_heads * cfg->linear.v_dim;
    switch (mod) {
    case MODULE_Q:
        *out = cfg->attn_output_gate ? 2 * q : q, *in = c;
        break;
    case MODULE_IN_QKV:
        *out = 2 * lk + lv, *in = c;
        break;
    case MODULE_IN_Z:
        *out = lv, *in = c;
        break;
    case MODULE_IN_B:
    case MODULE_IN_A:
        *out = cfg->linear.n_v_heads, *in = c;
        break;
    case MODULE_OUT:
        *out = c, *in = lv;
        break;
    case MODULE_K:
    case MODULE_V:
        *out = kv, *in = c;
        break;
    case MODULE_O:
        *out = c, *in = q;
        break;
    case MODULE_GATE:
    case MODULE_UP:
        *out = ff, *in = c;
        break;
    case MODULE_QKV:
        *out = q + 2 * kv, *in = c;
        break;
    case MODULE_GATE_UP:
        *out = 2 * ff, *in = c;
        break;
    case MODULE_PLE_GATE:
        *out = cfg->ple_dim, *in = c;
        break;
    case MODULE_PLE_PROJ:
        *out = c, *in = cfg->ple_dim;
        break;
    default:
        *out = c, *in = ff;
        break;
    }
}

void model_module_dims(const ModelConfig *cfg, ModelModule mod, int *out, int *in) {
    module_dims(cfg, cfg->num_attention_heads * cfg->head_dim,
                cfg->num_key_value_heads * cfg->head_dim, cfg->intermediate_size, mod, out, in);
}

void model_layer_module_dims(const ModelConfig *cfg, int layer, ModelModule mod, int *out,
                             int *in) {
    int d = hf_layer_head_dim(cfg, layer);
    module_dims(cfg, cfg->num_attention_heads * d, hf_layer_kv_heads(cfg, layer) * d,
                hf_layer_ff(cfg, layer), mod, out, in);
}

int family_norm_length(const ModelConfig *c, int l, const FamilyNorm *n) {
    if (n->slot == LAYER_SCALAR) return 1;
    if (n->slot == PLE_GATE || n->slot == PLE_PROJ) return c->ple_dim * c->hidden_size;
    if (n->slot == NORM_Q_PROJ) return c->num_attention_heads * c->head_dim;
    if (n->slot == NORM_LINEAR_OUT) return c->linear.v_dim;
    if (n->slot == LINEAR_A_LOG || n->slot == LINEAR_DT_BIAS) return c->linear.n_v_heads;
    if (n->slot == LINEAR_CONV)
        return 2 * c->linear.n_k_heads * c->linear.k_dim + c->linear.n_v_heads * c->linear.v_dim;
    if (n->slot == NORM_K_PROJ) return c->num_key_value_heads * c->head_dim;
    return n->per_head ? hf_layer_head_dim(c, l) : c->hidden_size;
}

/* One expected tensor: where it goes and what shape it must have. */
typedef struct {
    char name[128];
    Tensor *dst;
    int ndim;
    int64_t shape[3];
    const StTensor *src;
    bool linear; /* a layer's linear weight: quantized when m->quant says so */
    bool stored; /* kept in the checkpoint's dtype whatever the model's (the per-layer table) */
} Slot;

typedef struct {
    Slot *slots;
    int n;
} SlotList;

const char *model_module_prefix(const ModelConfig *cfg) {
    return cfg->wrapper ? cfg->wrapper->prefix : "model.";
}

void model_tensor_name(const Model *m, const char *name, char *out, size_t n) {
    if (strncmp(name, "model.", 6) == 0)
        snprintf(out, n, "%s%s", m->prefix, name + 6);
    else
        snprintf(out, n, "%s", strcmp(name, "lm_head.weight") == 0 ? m->lm_head_name : name);
}

bool model_is_language_tensor(const Model *m, const char *name) {
    return strncmp(name, m->prefix, strlen(m->prefix)) == 0 || strcmp(name, m->lm_head_name) == 0;
}

/* Where the decoder is in the checkpoint: "model." and "lm_head.weight", or a wrapper's
 * prefix and lm_head in the layout whose embeddings the checkpoint holds. */
static int find_layout(Model *m, const char *dir, char *err, size_t errlen) {
    const ModelWrapper *w = m->cfg.wrapper;
    m->prefix = "model.", m->lm_head_name = "lm_head.weight";
    if (!w) return 0;
    char name[128];
    for (int legacy = 0; legacy < 2; legacy++) {
        const char *prefix = legacy ? w->legacy_prefix : w->prefix;
        if (!prefix) continue;
        snprintf(name, sizeof name, "%sembed_tokens.weight", prefix);
        if (st_checkpoint_find(m->ckpt, name)) {
            m->prefix = prefix;
            m->lm_head_name = legacy ? w->legacy_lm_head : w->lm_head;
            return 0;
        }
    }
    snprintf(err, errlen,
             "%s: tensor '%sembed_tokens.weight'%s%s%s is missing: config.json says %s, whose "
             "language model is there",
             dir, w->prefix, w->legacy_prefix ? " (or '" : "",
             w->legacy_prefix ? w->legacy_prefix : "",
             w->legacy_prefix ? "embed_tokens.weight')" : "", w->architecture);
    return -1;
}

static void expect(SlotList *l, Tensor *dst, int64_t d0, int64_t d1, const char *fmt, int layer,
                   const char *a, const char *b, const Model *m) {
    Slot *s = &l->slots[l->n++];
    char name[sizeof s->name];
    snprintf(name, sizeof name, fmt, layer, a, b);
    model_tensor_name(m, name, s->name, sizeof s->name);
    s->dst = dst;
    s->ndim = d1 ? 2 : 1;
    s->shape[0] = d0;
    s->shape[1] = d1;
    s->shape[2] = 0;
}

static void list_slots(Model *m, SlotList *l) {
    const ModelConfig *c = &m->cfg;
    expect(l, &m->embed, c->vocab_size, c->hidden_size, "model.embed_tokens.weight%.0d%s%s", 0, "",
           "", m);
    const ModelFamily *f = c->family;
    for (int i = 0; i < c->num_hidden_layers; i++) {
        ModelLayer *L = &m->layers[i];
        for (int k = 0; k < f->n_norms; k++) {
            const FamilyNorm *n = &f->norms[k];
            if (!family_layer_has_norm(c, i, n)) continue;
            expect(l, &L->norm[n->slot], family_norm_length(c, i, n), 0, "model.layers.%d.%s%s", i,
                   n->hf_name, "", m);
            if (n->slot == LINEAR_CONV) { /* (CH, 1, KW), kept F32 (slot_bf16) */
                Slot *s = &l->slots[l->n - 1];
                s->ndim = 3;
                s->shape[1] = 1;
                s->shape[2] = c->linear.conv_kernel;
            }
            if (n->slot == PLE_GATE || n->slot == PLE_PROJ) { /* (P, C) and (C, P) */
                Slot *s = &l->slots[l->n - 1];
                bool gate = n->slot == PLE_GATE;
                s->ndim = 2;
                s->shape[0] = gate ? c->ple_dim : c->hidden_size;
                s->shape[1] = gate ? c->hidden_size : c->ple_dim;
            }
        }
        for (int mod = 0; mod < MODULE_COUNT; mod++) {
            if (!(model_layer_modules(c, i) & (1u << mod))) continue;
            int out, in;
            model_layer_module_dims(c, i, (ModelModule)mod, &out, &in);
            const char *leaf = module_paths[mod];
            expect(l, &L->w[mod], out, in, "model.layers.%d.%s%s", i, leaf, ".weight", m);
            l->slots[l->n - 1].linear = true;
            bool bias = ((mod <= MODULE_V || mod == MODULE_QKV) && c->qkv_bias) ||
                        (mod == MODULE_O && c->o_bias);
            if (bias) expect(l, &L->b[mod], out, 0, "model.layers.%d.%s%s", i, leaf, ".bias", m);
        }
    }
    if (c->ple_dim) { /* Gemma 4's per-layer inputs */
        int64_t lp = (int64_t)c->num_hidden_layers * c->ple_dim;
        expect(l, &m->ple_embed, c->ple_vocab, lp, "model.embed_tokens_per_layer.weight%.0d%s%s", 0,
               "", "", m);
        l->slots[l->n - 1].stored = true;
        expect(l, &m->ple_proj, lp, c->hidden_size,
               "model.per_layer_model_projection.weight%.0d%s%s", 0, "", "", m);
        expect(l, &m->ple_norm, c->ple_dim, 0, "model.per_layer_projection_norm.weight%.0d%s%s", 0,
               "", "", m);
    }
    expect(l, &m->final_norm, c->hidden_size, 0, "model.norm.weight%.0d%s%s", 0, "", "", m);
    if (!c->tie_word_embeddings)
        expect(l, &m->lm_head, c->vocab_size, c->hidden_size, "lm_head.weight%.0d%s%s", 0, "", "",
               m);
}

static void shape_str(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t at = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < ndim && at < n; d++)
        at += (size_t)snprintf(buf + at, n - at, d ? ", %lld" : "%lld", (long long)shape[d]);
    if (at < n) snprintf(buf + at, n - at, "]");
}

/* Does slot s end up BF16 in memory? A stored one when the checkpoint's is. */
static bool slot_bf16(const Model *m, const Slot *s) {
    if (s->stored) return s->src->dtype == ST_BF16;
    return m->dtype == MODEL_BF16 && s->ndim == 2;
}

/* A stored F16 slot: used in place as ggml F16 rows (op_embedding widens the rows it reads). */
static bool slot_f16(const Slot *s) {
    return s->stored && s->src->dtype == ST_F16;
}

static bool slot_quantized(const Model *m, const Slot *s) {
    return s->linear && m->quant != GGML_TYPE_F32;
}

/* A matrix the step's products read: a layer's linear, lm_head, the per-layer projections,
 * and the embedding when lm_head shares it (an untied embedding is only read by rows, and a
 * stored table is the per-layer inputs' rows). */
static bool slot_multiplied(const Model *m, const Slot *s) {
    return s->ndim == 2 && !s->stored && (s->dst != &m->embed || m->cfg.tie_word_embeddings);
}

static bool slot_in_place(const Model *m, const Slot *s) {
    if (slot_multiplied(m, s)) return false;
    if (slot_bf16(m, s))
        return s->src->dtype == ST_BF16 && (uintptr_t)s->src->data % sizeof(uint16_t) == 0;
    return s->src->dtype == ST_F32 && (uintptr_t)s->src->data % sizeof(float) == 0;
}

static int check_slot(const Model *m, Slot *s, const char *dir, size_t *convert_floats,
                      size_t *convert_halves, size_t *quant_bytes, char *err, size_t errlen) {
    s->src = st_checkpoint_find(m->ckpt, s->name);
    if (!s->src) {
        snprintf(err, errlen, "%s: tensor '%s' is missing (config.json needs it%s)", dir, s->name,
                 strstr(s->name, "lm_head") ? ": tie_word_embeddings is false" : "");
        return -1;
    }
    const StTensor *t = s->src;
    bool same = t->ndim == s->ndim;
    for (int d = 0; same && d < s->ndim; d++) same = t->shape[d] == s->shape[d];
    if (!same) {
        char want[64], got[128];
        shape_str(want, sizeof want, s->ndim, s->shape);
        shape_str(got, sizeof got, t->ndim, t->shape);
        snprintf(err, errlen, "%s: tensor '%s' has shape %s but config.json implies %s", dir,
                 s->name, got, want);
        return -1;
    }
    if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16) {
        snprintf(err, errlen, "%s: tensor '%s' has dtype %s (expected F32, F16 or BF16)", dir,
                 s->name, st_dtype_name(t->dtype));
        return -1;
    }
    if (slot_quantized(m, s))
        *quant_bytes += model_quant_bytes(m->quant, s->shape[0], s->shape[1]);
    else if (!slot_f16(s) && !slot_in_place(m, s))
        *(slot_bf16(m, s) ? convert_halves : convert_floats) += (size_t)t->numel;
    return 0;
}

/* An F32, F16 or BF16 source rounded to BF16 (nearest even). */
static void to_bf16(const StTensor *t, uint16_t *out) {
    const uint8_t *p = t->data;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < t->numel; i++) {
        if (t->dtype == ST_F32) {
            uint32_t u = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 |
                         (uint32_t)p[4 * i + 2] << 16 | (uint32_t)p[4 * i + 3] << 24;
            float f;
            memcpy(&f, &u, sizeof f);
            out[i] = tensor_float_to_bf16(f);
        } else {
            uint16_t h = (uint16_t)(p[2 * i] | p[2 * i + 1] << 8);
            out[i] = t->dtype == ST_F16 ? tensor_float_to_bf16(st_f16_to_float(h)) : h;
        }
    }
}

/* Points slot s at its data: in place, or converted at *next_f / *next_h. */
static int place_slot(Model *m, Slot *s, float **next_f, uint16_t **next_h, uint8_t **next_q,
                      char *err, size_t errlen) {
    const StTensor *t = s->src;
    if (slot_quantized(m, s)) {
        if (model_quantize_weight(s->dst, t, m->quant, *next_q, err, errlen) != 0) return -1;
        tensor_release_pages(t->data, t->nbytes);
        size_t bytes = model_quant_bytes(m->quant, s->shape[0], s->shape[1]);
        *next_q += bytes;
        m->weight_bytes += bytes;
        return 0;
    }
    if (slot_f16(s)) {
        if (tensor_init_quant(s->dst, t->data, GGML_TYPE_F16, s->shape[0], s->shape[1]) != 0) {
            snprintf(err, errlen, "tensor '%s': cannot use its F16 rows in place", s->name);
            return -1;
        }
        m->weight_bytes += t->nbytes;
        return 0;
    }
    if (slot_bf16(m, s)) {
        const uint16_t *bits = t->data;
        if (!slot_in_place(m, s)) {
            to_bf16(t, *next_h);
            tensor_release_pages(t->data, t->nbytes);
            bits = *next_h;
            *next_h += t->numel;
        }
        tensor_init_bf16(s->dst, bits, s->ndim, s->shape);
        m->weight_bytes += (size_t)t->numel * sizeof(uint16_t);
        return 0;
    }
    float *data = (float *)t->data; /* read-only mapping; frozen weights are never written */
    if (!slot_in_place(m, s)) {
        data = *next_f;
        *next_f += t->numel;
        if (st_to_float(t, data, err, errlen) != 0) return -1;
        tensor_release_pages(t->data, t->nbytes);
    }
    if (s->ndim == 3) /* the DeltaNet conv (CH, 1, KW) as the op takes it, (CH, KW) */
        tensor_init(s->dst, data, 2, (int64_t[]){s->shape[0], s->shape[2]});
    else
        tensor_init(s->dst, data, s->ndim, s->shape);
    m->weight_bytes += (size_t)t->numel * sizeof(float);
    return 0;
}

/* Whether t points at src's bytes in the mapping (not at a converted copy). */
static bool in_place(const Tensor *t, const StTensor *src) {
    const void *d = t->quant ? t->quant : t->bf16 ? (const void *)t->bf16 : (const void *)t->data;
    return d == src->data;
}

static int load_weights(Model *m, const char *dir, char *err, size_t errlen) {
    const ModelConfig *c = &m->cfg;
    int max_slots = 6 + c->num_hidden_layers * (c->family->n_norms + 2 * MODULE_COUNT);
    SlotList l = {calloc((size_t)max_slots, sizeof(Slot)), 0};
    if (!l.slots) {
        snprintf(err, errlen, "%s: out of memory", dir);
        return -1;
    }
    list_slots(m, &l);
    size_t convert = 0, convert_bf16 = 0, quant_bytes = 0;
    int rc = 0;
    for (int i = 0; rc == 0 && i < l.n; i++)
        rc = check_slot(m, &l.slots[i], dir, &convert, &convert_bf16, &quant_bytes, err, errlen);
    if (rc == 0 && quant_bytes) {
        m->quantized = tensor_alloc_pages(quant_bytes);
        m->converted_bytes += quant_bytes;
        if (!m->quantized) {
            snprintf(err, errlen, "%s: out of memory for %zu bytes of quantized weights", dir,
                     quant_bytes);
            rc = -1;
        }
    }
    if (rc == 0 && convert) {
        m->converted = tensor_alloc_pages(convert * sizeof(float));
        m->converted_bytes += convert * sizeof(float);
        if (!m->converted) {
            snprintf(err, errlen, "%s: out of memory converting %zu weights to F32", dir, convert);
            rc = -1;
        }
    }
    if (rc == 0 && convert_bf16) {
        m->converted_bf16 = tensor_alloc_pages(convert_bf16 * sizeof(uint16_t));
        m->converted_bytes += convert_bf16 * sizeof(uint16_t);
        if (!m->converted_bf16) {
            snprintf(err, errlen, "%s: out of memory converting %zu weights to BF16", dir,
                     convert_bf16);
            rc = -1;
        }
    }
    float *next_f = m->converted;
    uint16_t *next_h = m->converted_bf16;
    uint8_t *next_q = m->quantized;
    for (int i = 0; rc == 0 && i < l.n; i++) {
        rc = place_slot(m, &l.slots[i], &next_f, &next_h, &next_q, err, errlen);
        m->param_count += (size_t)l.slots[i].src->numel;
    }
    if (c->tie_word_embeddings) m->lm_head = m->embed;
    for (int i = 0; rc == 0 && !c->tie_word_embeddings && i < l.n; i++)
        if (l.slots[i].dst == &m->embed && in_place(&m->embed, l.slots[i].src)) {
            const SafeTensors *shard = st_checkpoint_shard_of(m->ckpt, l.slots[i].src);
            if (shard)
                rc = model_embed_from_file(m, st_path(shard), st_file_offset(shard, l.slots[i].src),
                                           err, errlen);
        }
    free(l.slots);
    return rc;
}

/* cos/sin of pos * inv_freq times the attention factor (longrope's or yarn's, else 1), and for
 * the queries' tables (query true) times hf_query_scale(pos), in double, rounded to float
 * once, into new (max_pos, half) tables: half is rotary_dim/2, or head_dim/2 for the local
 * tables (Gemma 4's sliding layers have a head_dim of their own). */
static int rope_tables(const Model *m, const double *inv_freq, int half, bool query,
                       float **cos_out, float **sin_out) {
    double attention_factor = hf_rope_attention_factor(&m->cfg);
    size_t n = (size_t)m->max_pos * (size_t)half;
    float *c = malloc(n * sizeof(float)), *s = malloc(n * sizeof(float));
    if (!c || !s) {
        free(c);
        free(s);
        return -1;
    }
    for (int p = 0; p < m->max_pos; p++) {
        double scale = attention_factor * (query ? hf_query_scale(&m->cfg, p) : 1.0);
        for (int i = 0; i < half; i++) {
            double a = (double)p * inv_freq[i];
            c[(size_t)p * half + i] = (float)(cos(a) * scale);
            s[(size_t)p * half + i] = (float)(sin(a) * scale);
        }
    }
    *cos_out = c, *sin_out = s;
    return 0;
}

static int build_rope_tables(Model *m, char *err, size_t errlen) {
    int half = m->cfg.rotary_dim / 2, local_half = m->cfg.head_dim / 2;
    m->max_pos = m->cfg.max_position_embeddings < MODEL_MAX_ROPE_POSITIONS
                     ? m->cfg.max_position_embeddings
                     : MODEL_MAX_ROPE_POSITIONS;
    double *inv_freq = malloc((size_t)(half > local_half ? half : local_half) * sizeof *inv_freq);
    int rc = inv_freq ? 0 : -1;
    if (rc == 0) {
        hf_rope_inv_freq(&m->cfg, inv_freq);
        rc = rope_tables(m, inv_freq, half, false, &m->rope_cos, &m->rope_sin);
    }
    if (rc == 0 && m->cfg.llama4_scaling_beta)
        rc = rope_tables(m, inv_freq, half, true, &m->rope_query_cos, &m->rope_query_sin);
    if (rc == 0 && m->cfg.rope_local_theta > 0) {
        hf_rope_local_inv_freq(&m->cfg, inv_freq);
        rc = rope_tables(m, inv_freq, local_half, false, &m->rope_local_cos, &m->rope_local_sin);
    }
    if (rc == 0 && m->cfg.rope_scaling.longrope) {
        hf_rope_inv_freq_long(&m->cfg, inv_freq);
        rc = rope_tables(m, inv_freq, half, false, &m->rope_long_cos, &m->rope_long_sin);
    }
    free(inv_freq);
    if (rc != 0) snprintf(err, errlen, "out of memory for the RoPE tables");
    return rc;
}

/* Gemma's sqrt(hidden) as Gemma3TextScaledWordEmbedding applies it: a float32 scalar rounded
 * to the embedding table's dtype (sqrt(1152) = 33.941 is 34.0 for a BF16 checkpoint). */
static float scale_in_dtype_of(const Model *m, const char *table, int dim) {
    float s = sqrtf((float)dim);
    char name[128];
    model_tensor_name(m, table, name, sizeof name);
    const StTensor *t = m->ckpt ? st_checkpoint_find(m->ckpt, name) : NULL; /* GGUF: f32 */
    if (t && t->dtype == ST_BF16) s = st_bf16_to_float(tensor_float_to_bf16(s));
    if (t && t->dtype == ST_F16) s = st_f16_to_float(tensor_float_to_f16(s));
    return s;
}

/* The same for Gemma 4's per-layer table, sqrt(P) (its own Gemma4TextScaledWordEmbedding). */
static void set_embed_scale(Model *m) {
    if (!m->cfg.family->embed_scale) return;
    m->embed_scale = scale_in_dtype_of(m, "model.embed_tokens.weight", m->cfg.hidden_size);
    if (m->cfg.ple_dim)
        m->ple_scale = scale_in_dtype_of(m, "model.embed_tokens_per_layer.weight", m->cfg.ple_dim);
}

Model *model_load(const char *dir, char *err, size_t errlen) {
    return model_load_dtype(dir, MODEL_F32, err, errlen);
}

Model *model_load_dtype(const char *dir, ModelDtype dtype, char *err, size_t errlen) {
    return model_load_quantized(dir, dtype, GGML_TYPE_F32, err, errlen);
}

Model *model_load_quantized(const char *dir, ModelDtype dtype, GgmlType quant, char *err,
                            size_t errlen) {
    Model *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, errlen, "%s: out of memory", dir);
        return NULL;
    }
    m->dtype = dtype;
    m->quant = quant;
    char path[4096];
    int rc = 0;
    bool offered = quant == GGML_TYPE_Q8_0 || quant == GGML_TYPE_Q4_0 || quant == GGML_TYPE_Q4_K ||
                   quant == GGML_TYPE_Q5_K || quant == GGML_TYPE_Q6_K; /* decoder.h's list */
    if (quant != GGML_TYPE_F32 && !offered) {
        snprintf(err, errlen,
                 "%s: cannot quantize the weights to %s (q8_0, q4_0, q4_k, q5_k, "
                 "q6_k)",
                 dir, ggml_type_name(quant) ? ggml_type_name(quant) : "this type");
        rc = -1;
    }
    bool gguf = model_path_is_gguf(dir);
    if (rc == 0 && gguf) rc = gguf_base_load(m, dir, err, errlen);
    if (rc == 0 && !gguf) rc = path_join(path, sizeof path, dir, "config.json", err, errlen);
    if (rc == 0 && !gguf) rc = hf_config_load(path, &m->cfg, err, errlen);
    if (rc == 0 && !gguf &&
        !(m->layers = calloc((size_t)m->cfg.num_hidden_layers, sizeof *m->layers))) {
        snprintf(err, errlen, "%s: out of memory", dir);
        rc = -1;
    }
    if (rc == 0 && !gguf && !(m->ckpt = st_checkpoint_open(dir, err, errlen))) rc = -1;
    if (rc == 0 && !gguf) rc = find_layout(m, dir, err, errlen);
    if (rc == 0 && !gguf) rc = load_weights(m, dir, err, errlen);
    if (rc == 0) rc = build_rope_tables(m, err, errlen);
    if (rc == 0) set_embed_scale(m);
    if (rc != 0) {
        model_free(m);
        return NULL;
    }
    return m;
}

void model_free(Model *m) {
    if (!m) return;
    model_embed_file_close(m);
    st_checkpoint_close(m->ckpt);
    gguf_close(m->gguf);
    free(m->gguf_owned);
    free(m->converted);
    free(m->converted_bf16);
    free(m->lora_room);
    free(m->quantized);
    free(m->layers);
    free(m->rope_cos);
    free(m->rope_sin);
    free(m->rope_local_cos);
    free(m->rope_local_sin);
    free(m->rope_long_cos);
    free(m->rope_long_sin);
    free(m->rope_query_cos);
    free(m->rope_query_sin);
    free(m);
}

const ModelConfig *model_config(const Model *m) {
    return &m->cfg;
}

int model_max_positions(const Model *m) {
    return m->max_pos;
}

size_t model_param_count(const Model *m) {
    return m->param_count;
}

size_t model_converted_bytes(const Model *m) {
    return m->converted_bytes;
}

size_t model_weight_bytes(const Model *m) {
    return m->weight_bytes;
}

ModelDtype model_dtype(const Model *m) {
    return m->dtype;
}

const Tensor *model_weight(const Model *m, int layer, ModelModule mod) {
    if (mod == MODULE_PLE_GATE) return &m->layers[layer].norm[PLE_GATE];
    if (mod == MODULE_PLE_PROJ) return &m->layers[layer].norm[PLE_PROJ];
    return &m->layers[layer].w[mod];
}

const Tensor *model_bias(const Model *m, int layer, ModelModule mod) {
    return m->layers[layer].b[mod].data ? &m->layers[layer].b[mod] : NULL;
}
