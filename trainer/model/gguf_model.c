/* trainer/model/gguf_model.c — a model (optionally with its adapter merged) as the GGUF file
 * llama.cpp's convert_hf_to_gguf.py writes for it (see export.h).
 *
 * What the converter does for the families (family_*.c: LlamaForCausalLM /
 * MistralForCausalLM are class LlamaModel, arch "llama"; Qwen2ForCausalLM Qwen2Model, arch
 * "qwen2"; Qwen3ForCausalLM Qwen3Model, arch "qwen3"), and lorafit with it:
 *   - metadata: general.type model, the TextModel hyperparameters (block count, context,
 *     widths, heads, rope base, rms eps, key/value length when config.json names head_dim,
 *     file type), for llama also vocab_size and rope.dimension_count, then
 *     general.quantization_version 2 and the tokenizer;
 *   - tensors renamed (tensor_mapping.py): token_embd, blk.N.attn_q / attn_k / attn_v /
 *     attn_output / ffn_gate / ffn_up / ffn_down and the family's norms (attn_norm,
 *     ffn_norm; Qwen3's attn_q_norm, attn_k_norm), output_norm, output (absent when tied),
 *     the biases as .bias; rope_freqs for llama3 rope scaling;
 *   - LlamaModel.permute on q_proj and k_proj (weights and biases) for arch llama: llama.cpp
 *     rotates interleaved pairs where Hugging Face rotates halves (Qwen's are not permuted);
 *   - Gemma 4 (family_gemma4.c): per_layer_token_embd (its first V rows, encoded a chunk of
 *     rows at a time, never widened as a whole), per_layer_model_proj, per_layer_proj_norm,
 *     each layer's inp_gate / proj (matrices of the file type) and post_norm, and rope_freqs
 *     for the full layers: llama.cpp divides base^(-2i / D) by factor i, so the factors are
 *     the model's frequencies relative to those, 1e30 for the proportional RoPE's still pairs;
 *   - 1-D tensors (norms, biases, rope_freqs) stay F32; the matrices take the file type;
 *     a matrix whose rows Q8_0 cannot hold (length not a multiple of 32) falls back to F16,
 *     as the converter's QuantError fallback does.
 * Tensor bytes are produced one tensor at a time at save time (fill callbacks). */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trainer/model/export.h"
#include "trainer/model/internal.h"
#include "trainer/model/lora.h"

int gguf_window_ignored(const ModelConfig *c) {
    if (c->family->gguf_sliding_window) return 0;
    for (int l = 0; l < c->num_hidden_layers; l++)
        if (hf_layer_window(c, l)) return c->sliding_window;
    return 0;
}

int gguf_longrope_original(const ModelConfig *c) {
    return c->rope_scaling.longrope ? c->rope_scaling.original_max_position_embeddings : 0;
}

const char *gguf_arch_name(const ModelConfig *cfg) {
    return cfg->family->gguf_arch;
}

void gguf_permute_rows(float *data, int64_t rows, int64_t cols, int n_head, float *scratch) {
    int64_t hd = rows / n_head, half = hd / 2;
    memcpy(scratch, data, (size_t)(rows * cols) * sizeof *data);
    for (int64_t h = 0; h < n_head; h++)
        for (int64_t i = 0; i < half; i++)
            for (int64_t j = 0; j < 2; j++)
                memcpy(data + (h * hd + 2 * i + j) * cols, scratch + (h * hd + j * half + i) * cols,
                       (size_t)cols * sizeof *data);
}

typedef enum {
    SRC_EMBED,
    SRC_NORM,
    SRC_LINEAR,
    SRC_BIAS,
    SRC_FINAL_NORM,
    SRC_LM_HEAD,
    SRC_ROPE_FREQS,
    SRC_ROPE_LONG, /* longrope's long_factor and short_factor lists (Phi-3) */
    SRC_ROPE_SHORT,
    SRC_PLE_EMBED, /* Gemma 4's per-layer table, its first V rows (encoded in chunks) */
    SRC_PLE_PROJ,  /* its context projection (L*P, C) */
    SRC_PLE_NORM   /* and that projection's norm (P) */
} Source;

typedef struct Item {
    const Model *m;
    const Lora *lora;
    Source src;
    int layer;
    ModelModule mod;
    LayerNormSlot norm; /* SRC_NORM */
    GgmlType type;
    int64_t rows, cols; /* PyTorch shape (rows, cols); a bias is (OUT, 1) to permute rows */
    bool vector;        /* stored 1-D, F32 */
    bool keep_f32;      /* a matrix stored F32 whatever the file type (Qwen3.5's conv) */
    int permute_heads;  /* 0: no permutation */
} Item;

/* rope_freqs: llama.cpp divides each frequency base^(-2i / D) by factor i. Gemma 4's full
 * layers (Gemma4Model.generate_extra_tensors): the model's own frequencies as such factors,
 * 1e30 where a pair stands still (the proportional RoPE's last pairs). */
static int rope_factors(const ModelConfig *c, float *out) {
    const RopeScaling *r = &c->rope_scaling;
    if (!r->llama3) {
        int d = c->rotary_dim;
        double *inv = malloc((size_t)(d / 2) * sizeof *inv);
        if (!inv) return -1;
        hf_rope_inv_freq(c, inv);
        for (int i = 0; i < d / 2; i++)
            out[i] =
                inv[i] == 0.0 ? 1e30f : (float)(pow(c->rope_theta, -(double)(2 * i) / d) / inv[i]);
        free(inv);
        return 0;
    }
    int dim = c->head_dim;
    float low_wavelen = (float)(r->original_max_position_embeddings / r->low_freq_factor);
    float high_wavelen = (float)(r->original_max_position_embeddings / r->high_freq_factor);
    for (int i = 0; i < dim / 2; i++) {
        float freq = 1.0f / powf((float)c->rope_theta, (float)(2 * i) / (float)dim);
        float wavelen = (float)(2 * M_PI) / freq;
        if (wavelen < high_wavelen)
            out[i] = 1.0f;
        else if (wavelen > low_wavelen)
            out[i] = (float)r->factor;
        else {
            float smooth =
                ((float)r->original_max_position_embeddings / wavelen - (float)r->low_freq_factor) /
                (float)(r->high_freq_factor - r->low_freq_factor);
            out[i] = 1.0f / ((1.0f - smooth) / (float)r->factor + smooth);
        }
    }
    return 0;
}

/* Rows [row0, row0 + rows) of a frozen weight t (F32, BF16 or a ggml type) of cols values
 * each, as floats (rows, cols). */
static void widen_rows(const Tensor *t, int64_t row0, int64_t rows, int64_t cols, float *out) {
    if (t->quant)
        tensor_dequantize_rows(out, t, row0, rows);
    else if (t->bf16 && t->room) /* rows of cols + room: model_make_lora_room */
        tensor_bf16_rows_to_float(out, t, row0, rows);
    else if (t->bf16)
        tensor_bf16_to_float(out, t->bf16 + row0 * cols, rows * cols);
    else
        memcpy(out, t->data + row0 * cols, (size_t)(rows * cols) * sizeof *out);
}

/* The per-layer table (PV, L*P) in chunks of rows: never widened to floats as a whole. */
static int fill_ple_table(const Item *it, void *dst, char *err, size_t errlen) {
    int64_t chunk = (1 << 22) / it->cols + 1;
    float *f = malloc((size_t)(chunk * it->cols) * sizeof *f);
    if (!f) return store_error(err, errlen, 0, "gguf: out of memory converting a tensor");
    int rc = 0;
    for (int64_t r = 0; rc == 0 && r < it->rows; r += chunk) {
        int64_t n = r + chunk < it->rows ? chunk : it->rows - r;
        widen_rows(&it->m->ple_embed, r, n, it->cols, f);
        rc = gguf_encode(it->type, f, n * it->cols, it->cols,
                         (char *)dst + r * ggml_row_bytes(it->type, it->cols));
    }
    free(f);
    return rc == 0 ? 0 : store_error(err, errlen, 0, "gguf: cannot encode a tensor");
}

/* The LoRA module of a norm slot that is one (Gemma 4's per-layer gate and projection), or
 * MODULE_COUNT. */
static ModelModule ple_module(const Item *it) {
    return it->norm == PLE_GATE   ? MODULE_PLE_GATE
           : it->norm == PLE_PROJ ? MODULE_PLE_PROJ
                                  : MODULE_COUNT;
}

static int fill_item(void *ctx, void *dst, size_t nbytes, char *err, size_t errlen) {
    const Item *it = ctx;
    Tensor *A, *B;
    const Model *m = it->m;
    int64_t n = it->rows * it->cols;
    (void)nbytes;
    if (it->src == SRC_PLE_EMBED) return fill_ple_table(it, dst, err, errlen);
    bool reorder = it->src == SRC_LINEAR && m->cfg.family->gguf_reorder;
    float *f = malloc((size_t)n * sizeof *f * (it->permute_heads || reorder ? 2 : 1));
    if (!f) return store_error(err, errlen, 0, "gguf: out of memory converting a tensor");
    const float *from = NULL;
    switch (it->src) {
    case SRC_EMBED:
        from = m->embed.data;
        break;
    case SRC_NORM: /* a vector, or Gemma 4's per-layer gate and projection (with LoRA) */
        if (ple_module(it) != MODULE_COUNT && it->lora &&
            lora_module(it->lora, it->layer, ple_module(it), &A, &B))
            merge_linear(m, it->lora, it->layer, ple_module(it), f);
        else
            widen_rows(&m->layers[it->layer].norm[it->norm], 0, it->rows, it->cols, f);
        break;
    case SRC_PLE_PROJ:
        widen_rows(&m->ple_proj, 0, it->rows, it->cols, f);
        break;
    case SRC_PLE_NORM:
        widen_rows(&m->ple_norm, 0, 1, it->cols, f);
        break;
    case SRC_PLE_EMBED: /* fill_ple_table */
        break;
    case SRC_BIAS:
        from = m->layers[it->layer].b[it->mod].data;
        break;
    case SRC_FINAL_NORM:
        from = m->final_norm.data;
        break;
    case SRC_LM_HEAD:
        from = m->lm_head.data;
        break;
    case SRC_LINEAR:
        merge_linear(m, it->lora, it->layer, it->mod, f);
        break;
    case SRC_ROPE_FREQS:
        if (rope_factors(&m->cfg, f) != 0) {
            free(f);
            return store_error(err, errlen, 0, "gguf: out of memory converting a tensor");
        }
        break;
    case SRC_ROPE_LONG:
    case SRC_ROPE_SHORT:
        for (int64_t i = 0; i < n; i++)
            f[i] = (float)(it->src == SRC_ROPE_LONG ? m->cfg.rope_scaling.long_factor[i]
                                                    : m->cfg.rope_scaling.short_factor[i]);
        break;
    }
    if (from) memcpy(f, from, (size_t)n * sizeof *f);
    if ((it->src == SRC_NORM || it->src == SRC_FINAL_NORM) && m->cfg.family->gguf_norm)
        m->cfg.family->gguf_norm(&m->cfg, it->src == SRC_NORM ? it->norm : NORM_SLOTS, f, n);
    if (it->permute_heads) gguf_permute_rows(f, it->rows, it->cols, it->permute_heads, f + n);
    for (int side = 0; reorder && side < 2; side++)
        m->cfg.family->gguf_reorder(&m->cfg, it->mod, f, it->rows, it->cols, side == 0, f + n);
    int rc = gguf_encode(it->type, f, n, it->vector ? n : it->cols, dst);
    free(f);
    return rc == 0 ? 0 : store_error(err, errlen, 0, "gguf: cannot encode a tensor");
}

/* Phi-3's fused gate_up_proj is llama.cpp's ffn_up; Qwen3.5's DeltaNet in_proj_qkv its
 * attn_qkv, in_proj_z attn_gate, in_proj_b ssm_beta, in_proj_a ssm_alpha, out_proj ssm_out;
 * Gemma 4's per-layer gate and projection inp_gate and proj (written as norm slots). */
static const char *const gguf_module_names[MODULE_COUNT] = {
    "attn_q",    "attn_k",   "attn_v",   "attn_output", "ffn_gate",  "ffn_up",
    "ffn_down",  "attn_qkv", "ffn_up",   "attn_qkv",    "attn_gate", "ssm_beta",
    "ssm_alpha", "ssm_out",  "inp_gate", "proj"};

const char *gguf_module_name(ModelModule mod) {
    return gguf_module_names[mod];
}

typedef struct Builder {
    GgufWriter *w;
    Item *items;
    int n;
    GgmlType dtype;
    GgufReport *report;
} Builder;

static int add(Builder *b, const char *name, Item it, char *err, size_t errlen) {
    bool matrix = !it.vector;
    it.type = matrix && !it.keep_f32 ? b->dtype : GGML_TYPE_F32;
    if (ggml_row_bytes(it.type, it.cols) == 0) { /* the converter's QuantError fallback */
        it.type = GGML_TYPE_F16;
        if (b->report && b->report->fell_back_f16++ == 0)
            snprintf(b->report->fallback_example, sizeof b->report->fallback_example, "%s", name);
    }
    b->items[b->n] = it;
    int64_t ne[2] = {it.cols, it.rows};
    if (it.vector) ne[0] = it.rows * it.cols;
    if (gguf_add_tensor(b->w, name, it.type, matrix ? 2 : 1, ne, NULL, fill_item, &b->items[b->n],
                        err, errlen) != 0)
        return -1;
    b->n++;
    return 0;
}

/* The family's norm weights of layer l that the GGUF lists before linear `before` (Gemma 4's
 * per-layer gate and projection among them, merged with lora's deltas). */
static int add_norms(Builder *b, const Model *m, const Lora *lora, int l, ModelModule before,
                     char *err, size_t errlen) {
    const ModelConfig *c = &m->cfg;
    for (int k = 0; k < c->family->n_norms; k++) {
        const FamilyNorm *n = &c->family->norms[k];
        if (n->gguf_before != before || !family_layer_has_norm(c, l, n)) continue;
        Item it = {.m = m,
                   .lora = lora,
                   .layer = l,
                   .src = SRC_NORM,
                   .norm = n->slot,
                   .vector = true,
                   .rows = 1,
                   .cols = family_norm_length(c, l, n)};
        if (n->slot == LINEAR_CONV) /* (CH, KW), F32 as the converter keeps ssm_conv1d */
            it.vector = false, it.keep_f32 = true, it.rows = it.cols,
            it.cols = c->linear.conv_kernel;
        if (n->slot == PLE_GATE || n->slot == PLE_PROJ) /* (P, C), (C, P): matrices */
            it.vector = false, it.rows = n->slot == PLE_GATE ? c->ple_dim : c->hidden_size,
            it.cols = n->slot == PLE_GATE ? c->hidden_size : c->ple_dim;
        char name[96];
        snprintf(name, sizeof name, "blk.%d.%s", l, n->gguf_name);
        if (add(b, name, it, err, errlen) != 0) return -1;
    }
    return 0;
}

static int add_tensors(Builder *b, const Model *m, const Lora *lora, char *err, size_t errlen) {
    const ModelConfig *c = &m->cfg;
    bool permute = c->family->gguf_permute_qk;
    Item base = {.m = m, .lora = lora};
    char name[64];
    Item it = base;
    if (c->rope_scaling.llama3 || c->family->gguf_rope_freqs) {
        it.src = SRC_ROPE_FREQS, it.vector = true, it.rows = 1;
        it.cols = (c->rope_scaling.llama3 ? c->head_dim : c->rotary_dim) / 2;
        if (add(b, "rope_freqs.weight", it, err, errlen) != 0) return -1;
    }
    if (c->rope_scaling.longrope) { /* Phi3MiniModel.generate_extra_tensors */
        it.src = SRC_ROPE_LONG, it.vector = true, it.rows = 1, it.cols = c->rotary_dim / 2;
        if (add(b, "rope_factors_long.weight", it, err, errlen) != 0) return -1;
        it.src = SRC_ROPE_SHORT;
        if (add(b, "rope_factors_short.weight", it, err, errlen) != 0) return -1;
    }
    it = base, it.src = SRC_EMBED, it.rows = c->vocab_size, it.cols = c->hidden_size;
    if (add(b, "token_embd.weight", it, err, errlen) != 0) return -1;
    if (c->ple_dim) { /* the table's rows past the vocabulary are never read */
        it = base, it.src = SRC_PLE_EMBED, it.rows = c->vocab_size;
        it.cols = (int64_t)c->num_hidden_layers * c->ple_dim;
        if (add(b, "per_layer_token_embd.weight", it, err, errlen) != 0) return -1;
        it.src = SRC_PLE_PROJ, it.rows = it.cols, it.cols = c->hidden_size;
        if (add(b, "per_layer_model_proj.weight", it, err, errlen) != 0) return -1;
        it = base, it.src = SRC_PLE_NORM, it.vector = true, it.rows = 1, it.cols = c->ple_dim;
        if (add(b, "per_layer_proj_norm.weight", it, err, errlen) != 0) return -1;
    }
    for (int l = 0; l < c->num_hidden_layers; l++) {
        for (int k = 0; k < MODULE_COUNT; k++) {
            if (add_norms(b, m, lora, l, (ModelModule)k, err, errlen) != 0) return -1;
            if (!(model_layer_modules(c, l) & (1u << k))) continue;
            int out, in;
            model_layer_module_dims(c, l, (ModelModule)k, &out, &in);
            int heads = !permute        ? 0
                        : k == MODULE_Q ? c->num_attention_heads
                        : k == MODULE_K ? c->num_key_value_heads
                                        : 0;
            it = base, it.layer = l, it.mod = (ModelModule)k, it.src = SRC_LINEAR, it.rows = out,
            it.cols = in, it.permute_heads = heads;
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, gguf_module_names[k]);
            if (add(b, name, it, err, errlen) != 0) return -1;
            if (m->layers[l].b[k].data) { /* permuted like the weight's rows */
                it.src = SRC_BIAS, it.rows = out, it.cols = 1, it.vector = true;
                snprintf(name, sizeof name, "blk.%d.%s.bias", l, gguf_module_names[k]);
                if (add(b, name, it, err, errlen) != 0) return -1;
            }
        }
        if (add_norms(b, m, lora, l, MODULE_COUNT, err, errlen) != 0) return -1;
    }
    it = base, it.src = SRC_FINAL_NORM, it.vector = true, it.rows = 1, it.cols = c->hidden_size;
    if (add(b, "output_norm.weight", it, err, errlen) != 0) return -1;
    if (!c->tie_word_embeddings) {
        it = base, it.src = SRC_LM_HEAD, it.rows = c->vocab_size, it.cols = c->hidden_size;
        if (add(b, "output.weight", it, err, errlen) != 0) return -1;
    }
    return 0;
}

static uint32_t file_type(GgmlType t) { /* llama_ftype: ALL_F32, MOSTLY_F16, _Q8_0, _BF16 */
    return t == GGML_TYPE_F16 ? 1 : t == GGML_TYPE_Q8_0 ? 7 : t == GGML_TYPE_BF16 ? 32 : 0;
}

static int add_metadata(GgufWriter *w, const ModelConfig *c, const char *name, GgmlType dtype,
                        char *err, size_t errlen) {
    const char *arch = gguf_arch_name(c);
    char key[96];
#define KEY(suffix) (snprintf(key, sizeof key, "%s." suffix, arch), key)
    int rc = gguf_set_str(w, "general.architecture", arch, err, errlen);
    if (rc == 0) rc = gguf_set_str(w, "general.type", "model", err, errlen);
    if (rc == 0 && *name) rc = gguf_set_str(w, "general.name", name, err, errlen);
    if (rc == 0)
        rc = gguf_set_u32(w, KEY("block_count"), (uint32_t)c->num_hidden_layers, err, errlen);
    if (rc == 0)
        rc = gguf_set_u32(w, KEY("context_length"), (uint32_t)c->max_position_embeddings, err,
                          errlen);
    if (rc == 0)
        rc = gguf_set_u32(w, KEY("embedding_length"), (uint32_t)c->hidden_size, err, errlen);
    if (rc == 0)
        rc = gguf_set_u32(w, KEY("feed_forward_length"), (uint32_t)c->intermediate_size, err,
                          errlen);
    if (rc == 0)
        rc = gguf_set_u32(w, KEY("attention.head_count"), (uint32_t)c->num_attention_heads, err,
                          errlen);
    if (rc == 0)
        rc = gguf_set_u32(w, KEY("attention.head_count_kv"), (uint32_t)c->num_key_value_heads, err,
                          errlen);
    if (rc == 0) rc = gguf_set_f32(w, KEY("rope.freq_base"), (float)c->rope_theta, err, errlen);
    if (rc == 0)
        rc = gguf_set_f32(w, KEY("attention.layer_norm_rms_epsilon"), (float)c->rms_norm_eps, err,
                          errlen);
    /* the converter writes them when config.json names head_dim; lorafit also when head_dim
     * is not hidden / heads (a default of the family's), which llama.cpp would assume */
    if (rc == 0 &&
        (c->head_dim_in_config || c->head_dim * c->num_attention_heads != c->hidden_size)) {
        rc = gguf_set_u32(w, KEY("attention.key_length"), (uint32_t)c->head_dim, err, errlen);
        if (rc == 0)
            rc = gguf_set_u32(w, KEY("attention.value_length"), (uint32_t)c->head_dim, err, errlen);
    }
    if (rc == 0) rc = gguf_set_u32(w, "general.file_type", file_type(dtype), err, errlen);
    if (rc == 0 && c->family->gguf_llama_hparams) {
        rc = gguf_set_u32(w, KEY("vocab_size"), (uint32_t)c->vocab_size, err, errlen);
        if (rc == 0)
            rc = gguf_set_u32(w, KEY("rope.dimension_count"), (uint32_t)c->head_dim, err, errlen);
    }
    if (rc == 0 && c->family->gguf_metadata) rc = c->family->gguf_metadata(w, c, err, errlen);
    if (rc == 0) rc = gguf_set_u32(w, "general.quantization_version", 2, err, errlen);
#undef KEY
    return rc;
}

static int jinja_file(const struct dirent *e) {
    return is_named_template(e->d_name);
}

static int by_name(const struct dirent **a, const struct dirent **b) {
    return strcmp((*a)->d_name, (*b)->d_name);
}

static void template_files_free(GgufTemplateFiles *f) {
    free(f->jinja);
    for (size_t i = 0; i < f->n; i++) free(f->names[i]), free(f->texts[i]);
    free(f->names);
    free(f->texts);
}

/* dir/CHAT_TEMPLATE_FILE when there (*text NULL when not); -1 when it cannot be read. */
static int read_default_template(const char *dir, char **text, char *err, size_t errlen) {
    char path[4200];
    bool failed = false;
    *text = NULL;
    if (path_join(path, sizeof path, dir, CHAT_TEMPLATE_FILE, err, errlen) != 0) return -1;
    *text = store_read_file_if_there(path, (size_t)16 << 20, NULL, &failed, err, errlen);
    return failed ? -1 : 0;
}

/* model_dir's chat template files: chat_template.jinja (adapter_dir's instead when it has
 * one), additional_chat_templates/NAME.jinja in name order. A file that is there but cannot
 * be read is an error. */
static int read_template_files(const char *model_dir, const char *adapter_dir, GgufTemplateFiles *f,
                               char *err, size_t errlen) {
    *f = (GgufTemplateFiles){0};
    char path[4200];
    if (adapter_dir && read_default_template(adapter_dir, &f->jinja, err, errlen) != 0) return -1;
    if (!f->jinja && read_default_template(model_dir, &f->jinja, err, errlen) != 0) return -1;
    if (path_join(path, sizeof path, model_dir, NAMED_TEMPLATES_DIR, err, errlen) != 0) return -1;
    struct dirent **list = NULL;
    int n = scandir(path, &list, jinja_file, by_name);
    if (n <= 0) return 0; /* no folder, or nothing in it */
    f->names = calloc((size_t)n, sizeof *f->names);
    f->texts = calloc((size_t)n, sizeof *f->texts);
    int rc = f->names && f->texts ? 0 : store_error(err, errlen, 0, "out of memory");
    for (int i = 0; i < n; i++) {
        char file[4500];
        size_t len = strlen(list[i]->d_name) - 6; /* without ".jinja" */
        snprintf(file, sizeof file, "%s/%s", path, list[i]->d_name);
        if (rc == 0 &&
            !(f->texts[f->n] = store_read_file(file, (size_t)16 << 20, NULL, err, errlen)))
            rc = -1;
        if (rc == 0 && !(f->names[f->n++] = strndup(list[i]->d_name, len)))
            rc = store_error(err, errlen, 0, "out of memory");
        free(list[i]);
    }
    free(list);
    return rc;
}

/* The tokenizer of model_dir: tokenizer.json, with tokenizer_config.json, config.json and the
 * chat template files when there (adapter_dir's default template over the base's). */
static int add_vocab(GgufWriter *w, const char *model_dir, const char *adapter_dir, int vocab_size,
                     GgufReport *report, char *err, size_t errlen) {
    char path[4200];
    size_t len;
    if (path_join(path, sizeof path, model_dir, "tokenizer.json", err, errlen) != 0) return -1;
    char why[512];
    char *tok = store_read_file(path, (size_t)1 << 30, &len, why, sizeof why);
    if (!tok) /* why, not err: the message quotes it */
        return store_error(err, errlen, 0,
                           "%s/tokenizer.json is needed: llama.cpp loads a model only with its "
                           "tokenizer (%s)",
                           model_dir, why);
    char side[2][4200], ignore[256];
    char *text[2] = {NULL, NULL};
    const char *names[2] = {"tokenizer_config.json", "config.json"};
    for (int i = 0; i < 2; i++)
        if (path_join(side[i], sizeof side[i], model_dir, names[i], ignore, sizeof ignore) == 0)
            text[i] = store_read_file(side[i], (size_t)64 << 20, NULL, ignore, sizeof ignore);
    GgufTemplateFiles files;
    int rc = read_template_files(model_dir, adapter_dir, &files, err, errlen);
    if (rc == 0)
        rc = gguf_vocab_from_json(w, tok, len, text[0], text[1], &files, vocab_size, path, report,
                                  err, errlen);
    template_files_free(&files);
    free(tok);
    free(text[0]);
    free(text[1]);
    return rc;
}

/* The directory's last component ("models/stories260K/" -> "stories260K"). */
static void base_name(const char *dir, char *out, size_t len) {
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    size_t start = n;
    while (start > 0 && dir[start - 1] != '/') start--;
    snprintf(out, len, "%.*s", (int)(n - start), dir + start);
}

int gguf_export_model(const Model *m, const Lora *lora, const char *model_dir,
                      const char *adapter_dir, GgmlType dtype, const char *path, GgufReport *report,
                      char *err, size_t errlen) {
    if (m->gguf)
        return store_error(err, errlen, 0,
                           "gguf: %s is a GGUF base, which gguf_merge_base writes back", model_dir);
    if (m->dtype != MODEL_F32)
        return store_error(err, errlen, 0, "gguf: the model must be loaded as F32");
    if (!ggml_type_name(dtype))
        return store_error(err, errlen, 0, "gguf: unknown tensor type %d", (int)dtype);
    if (m->cfg.mlp_bias)
        return store_error(err, errlen, 0, "gguf: %s: mlp_bias is not written by lorafit",
                           model_dir);
    const ModelConfig *c = &m->cfg;
    if (c->o_bias && !c->family->gguf_o_bias)
        return store_error(err, errlen, 0,
                           "gguf: %s: o_proj has a bias (attention_bias), which llama.cpp's %s "
                           "does not load: it would refuse the file (llama.cpp's converter "
                           "writes it anyway). Use the Hugging Face format (--format hf)",
                           model_dir, c->family->gguf_arch);
    if (c->family->gguf_check && c->family->gguf_check(c, err, errlen) != 0) return -1;
    int max_items = 8 + c->num_hidden_layers * (c->family->n_norms + 2 * MODULE_COUNT);
    Builder b = {.w = gguf_writer_new(),
                 .items = calloc((size_t)max_items, sizeof(Item)),
                 .dtype = dtype,
                 .report = report};
    if (report) memset(report, 0, sizeof *report);
    int rc = b.w && b.items ? 0 : store_error(err, errlen, 0, "gguf: out of memory");
    char name[256];
    base_name(model_dir, name, sizeof name);
    if (rc == 0) rc = add_metadata(b.w, c, name, dtype, err, errlen);
    if (rc == 0) rc = add_vocab(b.w, model_dir, adapter_dir, c->vocab_size, report, err, errlen);
    if (rc == 0) rc = add_tensors(&b, m, lora, err, errlen);
    if (rc == 0) rc = gguf_writer_save(b.w, path, err, errlen);
    if (rc == 0 && report) {
        report->tensors = b.n;
        snprintf(report->arch, sizeof report->arch, "%s", gguf_arch_name(c));
        report->window_ignored = gguf_window_ignored(c);
        report->longrope_original = gguf_longrope_original(c);
    }
    gguf_writer_free(b.w);
    free(b.items);
    return rc;
}
