/* trainer/model/family_qwen3_5.c — Qwen3.5's text decoder (Qwen3_5ForCausalLM, model_type
 * qwen3_5_text), as transformers' modeling_qwen3_5.py computes it.
 *
 * Two kinds of layer (Qwen3_5DecoderLayer), from "layer_types" ("linear_attention" /
 * "full_attention") or, without it, every full_attention_interval-th layer (default 4) full:
 *   h = norm_in(x); x = x + mixer(h); h = norm_post(x); x = x + down(silu(gate h) * up h)
 * with every RMSNorm scaling by (1 + w) (Qwen3_5RMSNorm; the final norm too).
 * The Gated DeltaNet mixer (Qwen3_5GatedDeltaNet), NK key heads of DK, NV value heads of DV:
 *   qkv = causal_conv1d_silu(h Wqkv^T) (kernel KW, no bias), split into q (NK*DK), k (NK*DK),
 *   v (NV*DV); q = l2norm(q) / sqrt(DK), k = l2norm(k) (per head, eps 1e-6)
 *   beta = sigmoid(h Wb^T), g = -exp(A_log) softplus(h Wa^T + dt_bias)      (NV each)
 *   o = gated delta rule(q, k, v, g, beta) (tensor.h: the state resets at each packed row)
 *   mixer = (w * rmsnorm(o) * silu(h Wz^T)) Wout^T   (the gated norm per value head, plain w)
 * The gated attention mixer (Qwen3_5Attention): q_proj gives per head D query values then D
 * gate values; q and k per-head (1 + w) RMSNorms, RoPE on the first
 * int(head_dim * partial_rotary_factor) values (0.25 by default; the checkpoints' mrope
 * reduces to this for text: its three position rows are equal), causal GQA scaled by
 * D^-1/2, then mixer = (attention * sigmoid(gate)) Wo^T.
 * LoRA: every projection of both kinds; the default targets are all of them (PEFT has no
 * default for qwen3_5, and Llama's q/v list would leave three layers in four untouched).
 * The published checkpoints wrap this decoder (wrapper_qwen3_5, at the end).
 * Generation: decode_qwen3_5.c (recurrent state and conv window per DeltaNet layer, KV cache
 * per attention layer: constant work per token in the DeltaNet layers).
 * GGUF: llama.cpp's qwen35 (below). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trainer/model/family.h"
#include "trainer/model/internal.h"
#include "trainer/model/lora.h"
#include "trainer/store/store.h"

static Tensor *attention_mixer(const LayerPass *p, Tensor *h, int i) {
    const ModelConfig *c = &p->m->cfg;
    Graph *g = p->g;
    float eps = (float)c->rms_norm_eps;
    int nh = c->num_attention_heads, nkv = c->num_key_value_heads, d = c->head_dim;
    Tensor *qg = layer_linear(p, h, i, MODULE_Q);    /* (N, NH*2D) */
    Tensor *q = op_head_columns(g, qg, nh, 0, d);    /* (N, NH*D) */
    Tensor *gate = op_head_columns(g, qg, nh, d, d); /* (N, NH*D) */
    Tensor *k = layer_linear(p, h, i, MODULE_K);     /* (N, NKV*D) */
    Tensor *v = layer_linear(p, h, i, MODULE_V);     /* (N, NKV*D) */
    q = op_head_rmsnorm_unit_offset(g, q, nh, layer_norm_weight(p, i, NORM_Q), eps);
    k = op_head_rmsnorm_unit_offset(g, k, nkv, layer_norm_weight(p, i, NORM_K), eps);
    q = layer_rope(p, q, nh);
    k = layer_rope(p, k, nkv);
    Tensor *att = layer_attention(p, q, k, v, i); /* (N, NH*D) */
    return layer_linear(p, op_sigmoid_gate(g, att, gate), i, MODULE_O);
}

static Tensor *deltanet_mixer(const LayerPass *p, Tensor *h, int i) {
    const ModelConfig *c = &p->m->cfg;
    Graph *g = p->g;
    int nk = c->linear.n_k_heads, nv = c->linear.n_v_heads, dk = c->linear.k_dim,
        dv = c->linear.v_dim;
    DeltaRuleSpec spec = {.batch = p->batch,
                          .seq_len = p->seq_len,
                          .n_k_heads = nk,
                          .n_v_heads = nv,
                          .k_dim = dk,
                          .v_dim = dv,
                          .segment = p->segment};
    Tensor *qkv = layer_linear(p, h, i, MODULE_IN_QKV); /* (N, 2 NK*DK + NV*DV) */
    /* conv, SiLU, the q and k L2 norms in one op; the delta rule reads q, k, v in place */
    qkv = op_deltanet_qkv(g, qkv, layer_norm_weight(p, i, LINEAR_CONV), &spec,
                          (float)(1.0 / sqrt(dk)), 1e-6f);
    Tensor *beta = op_sigmoid(g, layer_linear(p, h, i, MODULE_IN_B)); /* (N, NV) */
    Tensor *decay = op_deltanet_log_decay(g, layer_linear(p, h, i, MODULE_IN_A),
                                          layer_norm_weight(p, i, LINEAR_A_LOG),
                                          layer_norm_weight(p, i, LINEAR_DT_BIAS)); /* (N, NV) */
    Tensor *o = op_gated_delta_rule_qkv(g, qkv, decay, beta, &spec);                /* (N, NV*DV) */
    Tensor *z = layer_linear(p, h, i, MODULE_IN_Z);                                 /* (N, NV*DV) */
    o = op_head_rmsnorm_gated(g, o, z, nv, layer_norm_weight(p, i, NORM_LINEAR_OUT),
                              (float)c->rms_norm_eps);
    return layer_linear(p, o, i, MODULE_OUT); /* (N, C) */
}

static Tensor *qwen3_5_layer_forward(const LayerPass *p, Tensor *x, int i) {
    const ModelConfig *c = &p->m->cfg;
    Graph *g = p->g;
    float eps = (float)c->rms_norm_eps;
    Tensor *h = op_rmsnorm_unit_offset(g, x, layer_norm_weight(p, i, NORM_ATTN), eps);
    Tensor *mix = hf_layer_is_linear(c, i) ? deltanet_mixer(p, h, i) : attention_mixer(p, h, i);
    x = op_add(g, x, mix);
    h = op_rmsnorm_unit_offset(g, x, layer_norm_weight(p, i, NORM_MLP), eps);
    Tensor *gate = layer_linear(p, h, i, MODULE_GATE); /* (N, FF) */
    Tensor *up = layer_linear(p, h, i, MODULE_UP);     /* (N, FF) */
    return op_add(g, x, layer_linear(p, op_swiglu(g, gate, up), i, MODULE_DOWN));
}

static const FamilyNorm qwen3_5_norms[8] = {
    {NORM_ATTN, "input_layernorm.weight", "attn_norm.weight", false, MODULE_Q},
    {NORM_Q, "self_attn.q_norm.weight", "attn_q_norm.weight", true, MODULE_O},
    {NORM_K, "self_attn.k_norm.weight", "attn_k_norm.weight", true, MODULE_O},
    {LINEAR_CONV, "linear_attn.conv1d.weight", "ssm_conv1d.weight", false, MODULE_IN_QKV},
    {LINEAR_DT_BIAS, "linear_attn.dt_bias", "ssm_dt.bias", false, MODULE_IN_QKV},
    {LINEAR_A_LOG, "linear_attn.A_log", "ssm_a", false, MODULE_IN_QKV},
    {NORM_LINEAR_OUT, "linear_attn.norm.weight", "ssm_norm.weight", false, MODULE_OUT},
    {NORM_MLP, "post_attention_layernorm.weight", "post_attention_norm.weight", false, MODULE_GATE},
};

/* layer_types, or every interval-th layer full (Qwen3_5TextConfig.__post_init__). */
static int read_layer_schedule(const ConfigReader *r, ModelConfig *cfg) {
    memset(cfg->linear_layers, 0, sizeof cfg->linear_layers);
    json_t *types = json_object_get((json_t *)r->root, "layer_types");
    int L = cfg->num_hidden_layers;
    if (!types || json_is_null(types)) {
        int interval;
        if (config_read_int(r, "full_attention_interval", 1, 1 << 30, 4, &interval)) return -1;
        for (int l = 0; l < L; l++)
            if ((l + 1) % interval) cfg->linear_layers[l / 8] |= (unsigned char)(1u << (l % 8));
        return 0;
    }
    if (!json_is_array(types) || (int)json_array_size(types) != L) {
        snprintf(r->err, r->errlen,
                 "%s: \"layer_types\" must be a list of num_hidden_layers (%d) names", r->src, L);
        return -1;
    }
    size_t i;
    json_t *v;
    json_array_foreach(types, i, v) {
        const char *t = json_string_value(v);
        if (t && strcmp(t, "linear_attention") == 0) {
            cfg->linear_layers[i / 8] |= (unsigned char)(1u << (i % 8));
        } else if (!t || strcmp(t, "full_attention") != 0) {
            snprintf(r->err, r->errlen,
                     "%s: layer_types[%zu] must be \"linear_attention\" or \"full_attention\"",
                     r->src, i);
            return -1;
        }
    }
    return 0;
}

static int read_qwen3_5(const ConfigReader *r, ModelConfig *cfg) {
    bool bias = false;
    if (config_read_bool(r, "attention_bias", false, &bias) ||
        config_read_number(r, "partial_rotary_factor", 0.25, &cfg->partial_rotary_factor) ||
        config_read_int(r, "linear_num_key_heads", 1, 4096, 16, &cfg->linear.n_k_heads) ||
        config_read_int(r, "linear_num_value_heads", 1, 4096, 32, &cfg->linear.n_v_heads) ||
        config_read_int(r, "linear_key_head_dim", 1, 4096, 128, &cfg->linear.k_dim) ||
        config_read_int(r, "linear_value_head_dim", 1, 4096, 128, &cfg->linear.v_dim) ||
        config_read_int(r, "linear_conv_kernel_dim", 1, 64, 4, &cfg->linear.conv_kernel) ||
        read_layer_schedule(r, cfg))
        return -1;
    cfg->qkv_bias = cfg->o_bias = bias;
    cfg->attn_output_gate = true;
    /* mrope_section: the checkpoints' [11, 11, 10] when absent (the converter's default) */
    static const int dflt[4] = {11, 11, 10, 0};
    memcpy(cfg->linear.mrope_section, dflt, sizeof dflt);
    json_t *rp = json_object_get((json_t *)r->root, "rope_parameters");
    json_t *ms = json_is_object(rp) ? json_object_get(rp, "mrope_section") : NULL;
    if (ms && !json_is_null(ms)) {
        if (!json_is_array(ms) || json_array_size(ms) > 4) {
            snprintf(r->err, r->errlen,
                     "%s: rope_parameters.mrope_section must be a list of at most 4 integers",
                     r->src);
            return -1;
        }
        memset(cfg->linear.mrope_section, 0, sizeof cfg->linear.mrope_section);
        for (size_t i = 0; i < json_array_size(ms); i++) {
            json_t *v = json_array_get(ms, i);
            if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 4096) {
                snprintf(r->err, r->errlen,
                         "%s: rope_parameters.mrope_section[%zu] must be an integer in [0, 4096]",
                         r->src, i);
                return -1;
            }
            cfg->linear.mrope_section[i] = (int)json_integer_value(v);
        }
    }
    if (cfg->linear.n_v_heads % cfg->linear.n_k_heads != 0) {
        snprintf(r->err, r->errlen,
                 "%s: \"linear_num_value_heads\" (%d) must be a multiple of "
                 "\"linear_num_key_heads\" (%d)",
                 r->src, cfg->linear.n_v_heads, cfg->linear.n_k_heads);
        return -1;
    }
    return 0;
}

/* ---- GGUF: llama.cpp's qwen35 as convert_hf_to_gguf.py's Qwen3_5TextModel writes it ----
 * Value heads reordered from grouped by key head (HF: key head g's r = NV/NK value heads
 * together) to tiled (GGUF position j*NK + g holds HF head g*r + j): the V rows of
 * in_proj_qkv and of the conv, the rows of in_proj_z, in_proj_a, in_proj_b, A_log and
 * dt_bias, the columns of out_proj; an adapter's B rows and out_proj's A columns the same
 * (B A reordered is the reordered B times A, and B times the reordered A). A_log as
 * -exp(A_log), every (1 + w) norm + 1 (the gated norm's plain w as it is). */

/* The layer period P of llama.cpp's qwen35 (layer l is linear when (l + 1) % P != 0) that
 * gives the model's layers; 0 when none does. */
static int full_attention_period(const ModelConfig *c) {
    for (int p = 1; p <= c->num_hidden_layers + 1; p++) {
        bool same = true;
        for (int l = 0; same && l < c->num_hidden_layers; l++)
            same = hf_layer_is_linear(c, l) == ((l + 1) % p != 0);
        if (same) return p;
    }
    return 0;
}

static int qwen3_5_gguf_check(const ModelConfig *c, char *err, size_t errlen) {
    if (c->linear.k_dim != c->linear.v_dim) {
        snprintf(err, errlen,
                 "gguf: llama.cpp's qwen35 takes linear_key_head_dim (%d) for "
                 "linear_value_head_dim (%d) too and would compute another model. Use the "
                 "Hugging Face format (--format hf)",
                 c->linear.k_dim, c->linear.v_dim);
        return -1;
    }
    const int *ms = c->linear.mrope_section;
    if (ms[0] + ms[1] + ms[2] + ms[3] > c->rotary_dim / 2) {
        snprintf(err, errlen,
                 "gguf: rope_parameters.mrope_section sums to %d, more than the %d rotary pairs; "
                 "llama.cpp's qwen35 would abort. Use the Hugging Face format (--format hf)",
                 ms[0] + ms[1] + ms[2] + ms[3], c->rotary_dim / 2);
        return -1;
    }
    if (full_attention_period(c) == 0) {
        snprintf(err, errlen,
                 "gguf: the model's layer_types follow no full_attention_interval, and llama.cpp's "
                 "qwen35 knows only \"every P-th layer full\". Use the Hugging Face format "
                 "(--format hf)");
        return -1;
    }
    return 0;
}

/* Rows [r0, r0 + NV*hd) of x (rows of `cols` floats) from grouped to tiled value heads. */
static void tile_rows(const ModelConfig *c, float *x, int64_t r0, int64_t hd, int64_t cols,
                      float *scratch) {
    int nk = c->linear.n_k_heads, r = c->linear.n_v_heads / nk;
    size_t head = (size_t)(hd * cols);
    memcpy(scratch, x + r0 * cols, head * (size_t)(nk * r) * sizeof *x);
    for (int g = 0; g < nk; g++)
        for (int j = 0; j < r; j++)
            memcpy(x + r0 * cols + (size_t)(j * nk + g) * head,
                   scratch + (size_t)(g * r + j) * head, head * sizeof *x);
}

static void qwen3_5_gguf_reorder(const ModelConfig *c, ModelModule mod, float *w, int64_t rows,
                                 int64_t cols, bool out_side, float *scratch) {
    int nk = c->linear.n_k_heads, nv = c->linear.n_v_heads, dv = c->linear.v_dim;
    if (nk == nv) return; /* grouped and tiled are the same order */
    int64_t lk = (int64_t)nk * c->linear.k_dim;
    if (out_side && mod == MODULE_IN_QKV) tile_rows(c, w, 2 * lk, dv, cols, scratch);
    if (out_side && mod == MODULE_IN_Z) tile_rows(c, w, 0, dv, cols, scratch);
    if (out_side && (mod == MODULE_IN_A || mod == MODULE_IN_B))
        tile_rows(c, w, 0, 1, cols, scratch);
    if (!out_side && mod == MODULE_OUT)
        for (int64_t i = 0; i < rows; i++) tile_rows(c, w + i * cols, 0, dv, 1, scratch);
}

/* tile_rows inverted: rows [r0, r0 + NV*hd) from tiled back to grouped value heads. */
static void untile_rows(const ModelConfig *c, float *x, int64_t r0, int64_t hd, int64_t cols,
                        float *scratch) {
    int nk = c->linear.n_k_heads, r = c->linear.n_v_heads / nk;
    size_t head = (size_t)(hd * cols);
    memcpy(scratch, x + r0 * cols, head * (size_t)(nk * r) * sizeof *x);
    for (int g = 0; g < nk; g++)
        for (int j = 0; j < r; j++)
            memcpy(x + r0 * cols + (size_t)(g * r + j) * head,
                   scratch + (size_t)(j * nk + g) * head, head * sizeof *x);
}

/* A GGUF base's norms and DeltaNet tensors back (qwen3_5_gguf_norm inverted): value heads
 * grouped again, A_log = log(-A) (to float rounding), the (1 + w) norms - 1. The linears'
 * order is undone by gguf_base.c from qwen3_5_gguf_reorder itself. */
static void qwen3_5_gguf_unnorm(const ModelConfig *c, LayerNormSlot slot, float *w, int64_t n) {
    int64_t lk = (int64_t)c->linear.n_k_heads * c->linear.k_dim;
    bool tiled = c->linear.n_k_heads != c->linear.n_v_heads;
    float *scratch = tiled ? malloc((size_t)n * sizeof *scratch) : NULL;
    if (tiled && !scratch) return; /* gguf_base.c checks the values it gets (finite) */
    switch (slot) {
    case NORM_LINEAR_OUT:
        break;
    case LINEAR_A_LOG:
        if (tiled) untile_rows(c, w, 0, 1, 1, scratch);
        for (int64_t i = 0; i < n; i++) w[i] = logf(-w[i]);
        break;
    case LINEAR_DT_BIAS:
        if (tiled) untile_rows(c, w, 0, 1, 1, scratch);
        break;
    case LINEAR_CONV: /* (CH, KW): the V channels' rows */
        if (tiled) untile_rows(c, w, 2 * lk, c->linear.v_dim, c->linear.conv_kernel, scratch);
        break;
    default:
        for (int64_t i = 0; i < n; i++) w[i] -= 1.0f;
    }
    free(scratch);
}

/* qwen3_5_gguf_metadata inverted: the DeltaNet's sizes (the value head size is inner_size /
 * time_step_rank), the layer schedule and mrope_section (rope_parameters, beside rope_theta). */
static int qwen3_5_gguf_config(const GgufConfigReader *r) {
    if (gguf_config_copy(r, "ssm.conv_kernel", "linear_conv_kernel_dim", false) < 0 ||
        gguf_config_copy(r, "ssm.state_size", "linear_key_head_dim", false) < 0 ||
        gguf_config_copy(r, "ssm.group_count", "linear_num_key_heads", false) < 0 ||
        gguf_config_copy(r, "ssm.time_step_rank", "linear_num_value_heads", false) < 0 ||
        gguf_config_copy(r, "ssm.inner_size", "linear_value_head_dim", false) < 0 ||
        gguf_config_copy(r, "full_attention_interval", "full_attention_interval", false) < 0)
        return -1;
    json_t *c = r->cfg, *nv = json_object_get(c, "linear_num_value_heads"),
           *inner = json_object_get(c, "linear_value_head_dim");
    if (inner && nv && json_integer_value(nv) > 0)
        json_object_set_new(c, "linear_value_head_dim",
                            json_integer(json_integer_value(inner) / json_integer_value(nv)));
    char key[96];
    snprintf(key, sizeof key, "%s.rope.dimension_sections", r->arch);
    const GgufKv *kv = gguf_find_kv(r->f, key);
    json_t *sections = json_array();
    for (uint64_t i = 0; kv && kv->type == GGUF_TYPE_ARRAY && i < kv->n && i < 4; i++) {
        int64_t v = 0;
        if (!gguf_elem_int(kv, i, &v)) v = -1; /* refused by read_qwen3_5 */
        json_array_append_new(sections, json_integer(v));
    }
    json_object_set_new(c, "rope_parameters",
                        json_pack("{s:s, s:O, s:o}", "rope_type", "default", "rope_theta",
                                  json_object_get(c, "rope_theta"), "mrope_section", sections));
    return 0;
}

static void qwen3_5_gguf_norm(const ModelConfig *c, LayerNormSlot slot, float *w, int64_t n) {
    int64_t lk = (int64_t)c->linear.n_k_heads * c->linear.k_dim;
    bool tiled = c->linear.n_k_heads != c->linear.n_v_heads;
    float scratch[4096];
    switch (slot) {
    case NORM_LINEAR_OUT:
        return;
    case LINEAR_A_LOG:
        for (int64_t i = 0; i < n; i++) w[i] = -expf(w[i]);
        if (tiled && n <= 4096) tile_rows(c, w, 0, 1, 1, scratch);
        return;
    case LINEAR_DT_BIAS:
        if (tiled && n <= 4096) tile_rows(c, w, 0, 1, 1, scratch);
        return;
    case LINEAR_CONV: { /* (CH, KW): the V channels' rows */
        int64_t kw = c->linear.conv_kernel, vrows = n / kw - 2 * lk;
        float *big = tiled ? malloc((size_t)(vrows * kw) * sizeof *big) : NULL;
        if (big) tile_rows(c, w, 2 * lk, c->linear.v_dim, kw, big);
        free(big);
        return;
    }
    default:
        for (int64_t i = 0; i < n; i++) w[i] += 1.0f;
    }
}

static int qwen3_5_gguf_metadata(GgufWriter *w, const ModelConfig *c, char *err, size_t errlen) {
    int32_t sections[4]; /* for text (three equal positions) any split is plain RoPE */
    for (int i = 0; i < 4; i++) sections[i] = c->linear.mrope_section[i];
    int rc = gguf_set_u32(w, "qwen35.rope.dimension_count", (uint32_t)c->rotary_dim, err, errlen);
    if (rc == 0)
        rc = gguf_set_arr_i32(w, "qwen35.rope.dimension_sections", sections, 4, err, errlen);
    if (rc == 0)
        rc =
            gguf_set_u32(w, "qwen35.ssm.conv_kernel", (uint32_t)c->linear.conv_kernel, err, errlen);
    if (rc == 0)
        rc = gguf_set_u32(w, "qwen35.ssm.state_size", (uint32_t)c->linear.k_dim, err, errlen);
    if (rc == 0)
        rc = gguf_set_u32(w, "qwen35.ssm.group_count", (uint32_t)c->linear.n_k_heads, err, errlen);
    if (rc == 0)
        rc = gguf_set_u32(w, "qwen35.ssm.time_step_rank", (uint32_t)c->linear.n_v_heads, err,
                          errlen);
    if (rc == 0)
        rc = gguf_set_u32(w, "qwen35.ssm.inner_size",
                          (uint32_t)(c->linear.v_dim * c->linear.n_v_heads), err, errlen);
    if (rc == 0)
        rc = gguf_set_u32(w, "qwen35.full_attention_interval", (uint32_t)full_attention_period(c),
                          err, errlen);
    return rc;
}

#define ATTENTION_MODULES (LORA_Q | LORA_K | LORA_V | LORA_O)
#define MLP_MODULES       (LORA_GATE | LORA_UP | LORA_DOWN)
#define DELTANET_MODULES  (LORA_IN_QKV | LORA_IN_Z | LORA_IN_B | LORA_IN_A | LORA_OUT)

const ModelFamily family_qwen3_5_text = {
    .model_type = "qwen3_5_text",
    .architecture = "Qwen3_5ForCausalLM",
    .default_max_positions = 32768,
    .default_head_dim = 256,
    .read_config = read_qwen3_5,
    .norms = qwen3_5_norms,
    .n_norms = 8,
    .layer_forward = qwen3_5_layer_forward,
    .gguf_arch = "qwen35",
    .gguf_check = qwen3_5_gguf_check,
    .gguf_norm = qwen3_5_gguf_norm,
    .gguf_reorder = qwen3_5_gguf_reorder,
    .gguf_metadata = qwen3_5_gguf_metadata,
    .gguf_load = true,
    .gguf_config = qwen3_5_gguf_config,
    .gguf_unnorm = qwen3_5_gguf_unnorm,
    .modules = ATTENTION_MODULES | MLP_MODULES,
    .linear_modules = DELTANET_MODULES | MLP_MODULES,
    .default_targets = ATTENTION_MODULES | MLP_MODULES | DELTANET_MODULES,
    .unit_offset_norm = true,
    .decoder_new = qwen3_5_decoder_new,
    .decoder_next = qwen3_5_decoder_next,
    .decoder_free = qwen3_5_decoder_free,
};

/* The published checkpoints (Qwen3_5ForConditionalGeneration, model_type qwen3_5): the
 * decoder under text_config and model.language_model.; the vision tower (model.visual.*) and
 * the multi-token-prediction head (mtp.*) never read, and written back unchanged by merge. */
const ModelWrapper wrapper_qwen3_5 = {
    .model_type = "qwen3_5",
    .architecture = "Qwen3_5ForConditionalGeneration",
    .text = &family_qwen3_5_text,
    .text_type_default = "qwen3_5_text", /* Qwen3_5Config's */
    /* Qwen3_5TextConfig's defaults (transformers' configuration_qwen3_5.py; the linear_*
     * ones are read_qwen3_5's) */
    .text_defaults =
        "{\"vocab_size\": 248320, \"hidden_size\": 4096, \"intermediate_size\": 12288, "
        "\"num_hidden_layers\": 32, \"num_attention_heads\": 16, "
        "\"num_key_value_heads\": 4, \"head_dim\": 256, "
        "\"max_position_embeddings\": 32768, \"rms_norm_eps\": 1e-6, "
        "\"tie_word_embeddings\": false}",
    .prefix = "model.language_model.",
    .lm_head = "lm_head.weight",
};
