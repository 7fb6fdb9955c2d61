/* trainer/model/family_gemma4.c — Gemma 4's dense text decoder (Gemma4ForCausalLM,
 * gemma4_text), as transformers' modeling_gemma4.py computes it.
 *
 * Gemma 3's sandwich layer (Gemma4TextDecoderLayer) with these differences:
 *   - every RMSNorm scales by w itself (Gemma4RMSNorm), not 1 + w; the final norm too;
 *   - attention scores are not scaled (Gemma4TextAttention.scaling = 1.0: the q/k norms
 *     carry the scale), and V goes through a weightless RMSNorm per head (v_norm);
 *   - full-attention layers have their own head_dim (global_head_dim, 512) and RoPE:
 *     "proportional" (rope_parameters.full_attention), rotating only the first
 *     partial_rotary_factor of the frequencies of base^(-2i / global_head_dim), pairing
 *     dims i and i + global_head_dim / 2 (hf_rope_inv_freq); sliding layers head_dim (256)
 *     with plain RoPE of their own base, in their window;
 *   - attention_k_eq_v (31B): full layers have no v_proj; V is the raw k_proj output (before
 *     k_norm) through v_norm, with num_global_key_value_heads KV heads;
 *   - the layer's output is multiplied by layer_scalar (a (1) buffer in the checkpoint).
 *   h = norm_in(x); q = rope(qnorm(h Wq^T)); kr = h Wk^T; k = rope(knorm(kr))
 *   v = vnorm(k_eq_v ? kr : h Wv^T); x = x + norm_post_attn(attention(q, k, v) Wo^T)
 *   h = norm_pre_ff(x); x = x + norm_post_ff(down(gelu_tanh(gate h) * up h))
 *   E models: x = x + norm_ple(proj(gelu_tanh(gate x) * input_l)); then x *= layer_scalar
 * The E models (E2B, E4B) add:
 *   - per-layer inputs (hidden_size_per_layer_input P > 0): before the layers, per token,
 *     (norm(embedded Wp^T / sqrt(C)) + table[id] sqrt(P)) / sqrt(2) with the norm over each
 *     layer's P values (gemma4_layer_inputs); layer l's slice enters after its MLP (above).
 *     The table (2.35 B parameters in E2B) stays in its stored dtype, mapped: a pass widens
 *     only its own rows. Nothing before the layers is trained, so none of it has gradients;
 *   - KV sharing: the last num_kv_shared_layers layers have no k_proj / v_proj / k_norm and
 *     attend with the K and V (normed, rotated) of the last earlier layer of their type; the
 *     gradients of those reach that layer (checkpointed.c keeps them across its layer graph);
 *   - use_double_wide_mlp: the sharing layers' intermediate size doubled.
 * Around the layers (forward.c, from the family's flags): embeddings times sqrt(hidden)
 * rounded to the table's dtype (Gemma4TextScaledWordEmbedding), plain final norm, tied
 * lm_head by default, final_logit_softcapping on the logits (inside the fused lm_head +
 * loss). Layer types: layer_types, or every 6th layer full; the last layer is forced full
 * (Gemma4TextConfig.__post_init__ does so with a warning).
 *
 * Not trained: the MoE (enable_moe_block: 26B-A4B), refused by name; per_layer_model_projection
 * (the context projection before the layers: llama.cpp's gemma4 multiplies it without LoRA,
 * so its adapter could not run there). LoRA may target each layer's per_layer_input_gate
 * and per_layer_projection (MODULE_PLE_GATE / PROJ, PEFT's names; all-linear includes them
 * as PEFT's does), their weights kept in the norm slots PLE_GATE / PLE_PROJ. Default LoRA
 * targets: q_proj and v_proj (PEFT's Gemma default).
 *
 * GGUF: llama.cpp's arch "gemma4" as convert_hf_to_gguf.py's Gemma4Model writes it
 * (gemma4_gguf_metadata; the per-layer input tensors, per_layer_* and blk.N.inp_gate / proj /
 * post_norm, and rope_freqs in gguf_model.c), plain-w norms as they are. llama.cpp runs the
 * layers as transformers does, K = V and the weightless V norm included, with one exception
 * lorafit refuses (gemma4_gguf_check): a KV-sharing layer reads the last layer before the
 * sharing ones when full and the one before that when sliding, not the last earlier layer of
 * its type. The E2B shape agrees (layers 13 sliding and 14 full before the 20 sharing ones).
 *
 * The published checkpoints are Gemma4ForConditionalGeneration (gemma4): this decoder under
 * text_config, its tensors under model.language_model., beside vision and audio towers that
 * are never read and are written back unchanged by merge (wrapper_gemma4). Unlike Gemma 3's,
 * its forward soft-caps the logits. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "trainer/model/family.h"
#include "trainer/model/internal.h"
#include "trainer/model/lora.h"
#include "trainer/store/store.h"

/* RoPE of layer i: the full layers' (proportional) tables, or the sliding layers' own. */
static Tensor *gemma4_rope(const LayerPass *p, Tensor *x, int n_heads, int i) {
    const Model *m = p->m;
    bool local = hf_layer_sliding(&m->cfg, i);
    return op_rope(p->g, x, n_heads, hf_layer_head_dim(&m->cfg, i), p->pos,
                   local ? m->rope_local_cos : m->rope_cos, local ? m->rope_local_sin : m->rope_sin,
                   m->max_pos);
}

/* v_norm: RMSNorm per head without a weight (a weight of ones: x r 1 is x r, bit for bit). */
static Tensor *weightless_head_norm(Graph *g, Tensor *x, int n_heads, int d, float eps) {
    Tensor *ones = graph_tensor(g, 1, (int64_t[]){d}); /* lives until graph_reset */
    if (!ones) return NULL;
    for (int j = 0; j < d; j++) ones->data[j] = 1.0f;
    return op_head_rmsnorm(g, x, n_heads, ones, eps);
}

/* Layer i's K and V (N, NKV*D): its own, normed and rotated (a KV-sharing source leaves them
 * in p->shared for the sharing layers), or, on a sharing layer, its source's. */
static void layer_kv(const LayerPass *p, Tensor *h, int i, Tensor **k, Tensor **v) {
    const ModelConfig *c = &p->m->cfg;
    Tensor **kept = &p->shared->kv[2 * !hf_layer_sliding(c, i)];
    if (hf_layer_shares_kv(c, i)) {
        *k = kept[0], *v = kept[1];
        return;
    }
    float eps = (float)c->rms_norm_eps;
    int nkv = hf_layer_kv_heads(c, i), d = hf_layer_head_dim(c, i);
    Tensor *kr = layer_linear(p, h, i, MODULE_K); /* (N, NKV*D) */
    bool k_is_v = !(model_layer_modules(c, i) & (1u << MODULE_V));
    Tensor *vr = k_is_v ? kr : layer_linear(p, h, i, MODULE_V);
    *k = gemma4_rope(p, op_head_rmsnorm(p->g, kr, nkv, layer_norm_weight(p, i, NORM_K), eps), nkv,
                     i);
    *v = weightless_head_norm(p->g, vr, nkv, d, eps);
    if (c->kv_shared && hf_layer_kv_source(c, i) == i) /* the last of its type before them */
        kept[0] = *k, kept[1] = *v;
}

/* The per-layer input's residual branch (E models), after the MLP:
 * x + norm(proj(gelu_tanh(gate x) * input_i)), input_i the pass's columns of layer i. */
static Tensor *per_layer_input(const LayerPass *p, Tensor *x, int i) {
    const ModelConfig *c = &p->m->cfg;
    Graph *g = p->g;
    int P = c->ple_dim;
    Tensor *in = op_columns(g, p->shared->layer_inputs, (int64_t)i * P, P); /* (N, P) */
    Tensor *gate = layer_linear(p, x, i, MODULE_PLE_GATE);                  /* (N, P) */
    Tensor *y = layer_linear(p, op_geglu(g, gate, in), i, MODULE_PLE_PROJ); /* (N, C) */
    return op_add(g, x,
                  op_rmsnorm(g, y, layer_norm_weight(p, i, NORM_PLE), (float)c->rms_norm_eps));
}

static Tensor *gemma4_layer_forward(const LayerPass *p, Tensor *x, int i) {
    const ModelConfig *c = &p->m->cfg;
    Graph *g = p->g;
    float eps = (float)c->rms_norm_eps;
    int nh = c->num_attention_heads, nkv = hf_layer_kv_heads(c, i), d = hf_layer_head_dim(c, i);
    Tensor *h = op_rmsnorm(g, x, layer_norm_weight(p, i, NORM_ATTN), eps);
    Tensor *q = layer_linear(p, h, i, MODULE_Q); /* (N, NH*D) */
    q = gemma4_rope(p, op_head_rmsnorm(g, q, nh, layer_norm_weight(p, i, NORM_Q), eps), nh, i);
    Tensor *k, *v; /* (N, NKV*D) */
    layer_kv(p, h, i, &k, &v);
    AttentionSpec spec = {.batch = p->batch,
                          .seq_len = p->seq_len,
                          .n_heads = nh,
                          .n_kv_heads = nkv,
                          .head_dim = d,
                          .scale = 1.0f,
                          .window = hf_layer_window(c, i),
                          .segment = p->segment};
    Tensor *att = layer_linear(p, op_attention_ex(g, q, k, v, &spec), i, MODULE_O); /* (N, C) */
    x = op_add(g, x, op_rmsnorm(g, att, layer_norm_weight(p, i, NORM_POST_ATTN), eps));
    h = op_rmsnorm(g, x, layer_norm_weight(p, i, NORM_MLP), eps);
    Tensor *gate = layer_linear(p, h, i, MODULE_GATE);                   /* (N, FF) */
    Tensor *up = layer_linear(p, h, i, MODULE_UP);                       /* (N, FF) */
    Tensor *ff = layer_linear(p, op_geglu(g, gate, up), i, MODULE_DOWN); /* (N, C) */
    x = op_add(g, x, op_rmsnorm(g, ff, layer_norm_weight(p, i, NORM_POST_MLP), eps));
    if (c->ple_dim) x = per_layer_input(p, x, i);
    const Tensor *scalar = layer_norm_weight(p, i, LAYER_SCALAR);
    return scalar->data && x ? op_scale(g, x, scalar->data[0]) : NULL;
}

static const FamilyNorm gemma4_norms[10] = {
    {NORM_ATTN, "input_layernorm.weight", "attn_norm.weight", false, MODULE_Q},
    {NORM_Q, "self_attn.q_norm.weight", "attn_q_norm.weight", true, MODULE_O},
    {NORM_K, "self_attn.k_norm.weight", "attn_k_norm.weight", true, MODULE_O},
    {NORM_POST_ATTN, "post_attention_layernorm.weight", "post_attention_norm.weight", false,
     MODULE_GATE},
    {NORM_MLP, "pre_feedforward_layernorm.weight", "ffn_norm.weight", false, MODULE_GATE},
    {NORM_POST_MLP, "post_feedforward_layernorm.weight", "post_ffw_norm.weight", false,
     MODULE_COUNT},
    {PLE_GATE, "per_layer_input_gate.weight", "inp_gate.weight", false, MODULE_COUNT},
    {PLE_PROJ, "per_layer_projection.weight", "proj.weight", false, MODULE_COUNT},
    {NORM_PLE, "post_per_layer_input_norm.weight", "post_norm.weight", false, MODULE_COUNT},
    {LAYER_SCALAR, "layer_scalar", "layer_output_scale.weight", false, MODULE_COUNT},
};

/* An integer key whose null means 0 (transformers tests it for truth: `if config.key:`). */
static int read_int_or_null(const ConfigReader *r, const char *key, int hi, int dflt, int *out) {
    json_t *v = json_object_get((json_t *)r->root, key);
    if (v && json_is_null(v)) {
        *out = 0;
        return 0;
    }
    return config_read_int(r, key, 0, hi, dflt, out);
}

/* Keys of variants lorafit does not train: refused by name. */
static int refuse_variants(const ConfigReader *r, bool moe) {
    const char *what = moe ? "\"enable_moe_block\": true (the 26B-A4B MoE)" : NULL;
    if (json_object_get((json_t *)r->root, "per_layer_config"))
        what = "\"per_layer_config\" (write global_head_dim and num_global_key_value_heads "
               "instead)";
    if (!what) return 0;
    snprintf(r->err, r->errlen, "%s: Gemma 4 with %s is not supported yet", r->src, what);
    return -1;
}

/* Per-layer inputs and KV sharing as transformers can run them. */
static int check_e_model(const ConfigReader *r, const ModelConfig *cfg) {
    int L = cfg->num_hidden_layers;
    if (cfg->ple_dim && cfg->ple_vocab < cfg->vocab_size) {
        snprintf(r->err, r->errlen,
                 "%s: \"vocab_size_per_layer_input\" (%d) is smaller than \"vocab_size\" (%d): "
                 "the per-layer table has no row for the last token ids",
                 r->src, cfg->ple_vocab, cfg->vocab_size);
        return -1;
    }
    if ((int64_t)L * cfg->ple_dim > 1 << 20) {
        snprintf(r->err, r->errlen, "%s: \"hidden_size_per_layer_input\" %d is too large", r->src,
                 cfg->ple_dim);
        return -1;
    }
    if (cfg->kv_shared >= L && cfg->kv_shared) {
        snprintf(r->err, r->errlen,
                 "%s: \"num_kv_shared_layers\" (%d) must be less than \"num_hidden_layers\" (%d): "
                 "a sharing layer reuses an earlier layer's K and V",
                 r->src, cfg->kv_shared, L);
        return -1;
    }
    for (int l = L - cfg->kv_shared; l < L; l++)
        if (hf_layer_kv_source(cfg, l) < 0) {
            snprintf(r->err, r->errlen,
                     "%s: layer %d shares K and V (num_kv_shared_layers) but no earlier layer is "
                     "%s: it has none to reuse",
                     r->src, l, hf_layer_sliding(cfg, l) ? "sliding" : "full");
            return -1;
        }
    return 0;
}

/* The per-layer inputs (Gemma4TextModel.get_per_layer_inputs, project_per_layer_inputs):
 * ((norm(embedded Wp^T / sqrt(C)) per layer) + table[ids] sqrt(P)) / sqrt(2), (N, L*P), no
 * gradient (nothing before the layers is trained). */
static Tensor *gemma4_layer_inputs(const Model *m, Graph *g, const int32_t *ids, Tensor *x) {
    const ModelConfig *c = &m->cfg;
    if (!x) return NULL;
    int64_t n = x->shape[0];
    Tensor *tok = op_embedding(g, &m->ple_embed, ids, n); /* (N, L*P): only these rows widen */
    if (!tok) return NULL;
    for (int64_t k = 0; k < tok->size; k++) tok->data[k] *= m->ple_scale;
    Tensor *ctx = op_scale(g, op_linear(g, x, &m->ple_proj, NULL),
                           (float)(1.0 / sqrt((double)c->hidden_size)));
    ctx = op_head_rmsnorm(g, ctx, c->num_hidden_layers, &m->ple_norm, (float)c->rms_norm_eps);
    return op_scale(g, op_add(g, ctx, tok), (float)(1.0 / sqrt(2.0)));
}

static int read_gemma4(const ConfigReader *r, ModelConfig *cfg) {
    bool bias = false, moe = false, typed;
    int global_kv;
    double cap;
    if (config_read_bool(r, "attention_bias", false, &bias) ||
        config_read_bool(r, "enable_moe_block", false, &moe) || refuse_variants(r, moe) ||
        config_read_bool(r, "attention_k_eq_v", false, &cfg->full.k_eq_v) ||
        read_int_or_null(r, "hidden_size_per_layer_input", 1 << 16, 256, &cfg->ple_dim) ||
        config_read_int(r, "vocab_size_per_layer_input", 1, 1 << 24, 262144, &cfg->ple_vocab) ||
        read_int_or_null(r, "num_kv_shared_layers", HF_MAX_LAYERS, 0, &cfg->kv_shared) ||
        config_read_bool(r, "use_double_wide_mlp", false, &cfg->double_wide_mlp) ||
        config_read_int(r, "global_head_dim", 2, 4096, 512, &cfg->full.head_dim) ||
        read_int_or_null(r, "num_global_key_value_heads", 4096, 0, &global_kv) ||
        config_read_number(r, "final_logit_softcapping", 0, &cap) ||
        config_read_int(r, "sliding_window", 1, 1 << 30, 512, &cfg->sliding_window) ||
        config_read_layer_types(r, cfg, &typed))
        return -1;
    cfg->qkv_bias = cfg->o_bias = bias;
    cfg->final_softcap = (float)cap;
    cfg->attn_scale = 1.0f;
    cfg->rope_local_theta = 10000.0; /* the sliding layers' base until rope_parameters say */
    json_t *bidir = json_object_get((json_t *)r->root, "use_bidirectional_attention"),
           *act = json_object_get((json_t *)r->root, "hidden_activation");
    const char *b = json_string_value(bidir);
    if (bidir && !json_is_null(bidir) && !(b && strcmp(b, "vision") == 0)) {
        snprintf(r->err, r->errlen,
                 "%s: \"use_bidirectional_attention\" must be null or \"vision\" (text attends "
                 "causally); \"all\" (an embedding model) is not supported",
                 r->src);
        return -1;
    }
    if (act && !json_is_null(act) &&
        (!json_is_string(act) || strcmp(json_string_value(act), "gelu_pytorch_tanh") != 0)) {
        snprintf(r->err, r->errlen,
                 "%s: \"hidden_activation\" must be \"gelu_pytorch_tanh\" (Gemma's)", r->src);
        return -1;
    }
    if (cfg->full.head_dim % 2 ||
        (int64_t)cfg->full.head_dim * cfg->num_attention_heads > 1 << 20) {
        snprintf(r->err, r->errlen, "%s: \"global_head_dim\" %d must be even and fit the heads",
                 r->src, cfg->full.head_dim);
        return -1;
    }
    /* num_global_key_value_heads counts only with attention_k_eq_v (Gemma4TextAttention) */
    cfg->full.kv_heads = cfg->full.k_eq_v ? global_kv : 0;
    if (cfg->full.kv_heads && cfg->num_attention_heads % cfg->full.kv_heads) {
        snprintf(r->err, r->errlen,
                 "%s: \"num_attention_heads\" (%d) must be a multiple of "
                 "\"num_global_key_value_heads\" (%d)",
                 r->src, cfg->num_attention_heads, cfg->full.kv_heads);
        return -1;
    }
    int L = cfg->num_hidden_layers;
    if (!typed) /* Gemma4TextConfig: every 6th layer full */
        for (int l = 0; l < L; l++)
            if ((l + 1) % 6) cfg->sliding_layers[l / 8] |= (unsigned char)(1u << (l % 8));
    cfg->sliding_layers[(L - 1) / 8] &= (unsigned char)~(1u << ((L - 1) % 8)); /* last full */
    return check_e_model(r, cfg);
}

/* What llama.cpp's gemma4 cannot run as transformers does: -1 with the difference in err. */
static int gemma4_gguf_check(const ModelConfig *c, char *err, size_t errlen) {
    int L = c->num_hidden_layers, first = L - c->kv_shared; /* the first sharing layer */
    const char *fix = "Use the Hugging Face format (--format hf)";
    if (first < 2) {
        snprintf(err, errlen,
                 "gguf: llama.cpp's gemma4 needs at least 2 layers with their own K and V (it "
                 "stops on an assertion with %d). %s",
                 first, fix);
        return -1;
    }
    for (int l = first; l < L; l++) {
        /* llama.cpp (llama_model::create_memory's reuse): the last layer before the sharing
         * ones for a full layer, the one before it for a sliding layer */
        int llama = first - (hf_layer_sliding(c, l) ? 2 : 1), hf = hf_layer_kv_source(c, l);
        if (llama != hf) {
            snprintf(err, errlen,
                     "gguf: layer %d shares the K and V of layer %d (the last earlier %s layer, as "
                     "transformers does), but llama.cpp's gemma4 would give it layer %d's (it "
                     "takes layer %d for the full layers and %d for the sliding ones): it would "
                     "compute another model. %s",
                     l, hf, hf_layer_sliding(c, l) ? "sliding" : "full", llama, first - 1,
                     first - 2, fix);
            return -1;
        }
    }
    if (c->rope_scaling.longrope || c->rope_scaling.yarn) {
        snprintf(err, errlen,
                 "gguf: llama.cpp's gemma4 has no %s RoPE for the full layers (only frequency "
                 "factors). %s",
                 c->rope_scaling.yarn ? "yarn" : "longrope", fix);
        return -1;
    }
    return 0;
}

/* Gemma4Model.set_gguf_parameters' keys (convert_hf_to_gguf.py) beyond the shared ones: the
 * full layers' head size as key / value_length and rope.dimension_count (the proportional
 * RoPE's still pairs are rope_freqs' 1e30 factors, gguf_model.c), the sliding layers' as the
 * _swa keys, per-layer KV head counts and MLP widths where they differ, the sliding layers
 * as a list, the window and its RoPE base, the sharing layers, the per-layer input width.
 * llama.cpp scales the embeddings by sqrt(hidden) and the per-layer rows by sqrt(P)
 * unrounded, transformers (and lorafit) by those values rounded to the checkpoint's dtype:
 * a BF16 checkpoint's results differ there in the last bits (README). */
static int gemma4_gguf_metadata(GgufWriter *w, const ModelConfig *c, char *err, size_t errlen) {
    int L = c->num_hidden_layers;
    uint32_t ff[HF_MAX_LAYERS], kv[HF_MAX_LAYERS];
    bool swa[HF_MAX_LAYERS], ff_same = true, kv_same = true;
    for (int l = 0; l < L; l++) {
        ff[l] = (uint32_t)hf_layer_ff(c, l);
        kv[l] = (uint32_t)hf_layer_kv_heads(c, l);
        swa[l] = hf_layer_sliding(c, l);
        ff_same = ff_same && ff[l] == ff[0];
        kv_same = kv_same && kv[l] == kv[0];
    }
    uint32_t full_dim = (uint32_t)c->full.head_dim, swa_dim = (uint32_t)c->head_dim;
    int rc = gguf_set_u32(w, "gemma4.attention.key_length", full_dim, err, errlen);
    if (rc == 0) rc = gguf_set_u32(w, "gemma4.attention.value_length", full_dim, err, errlen);
    if (rc == 0) rc = gguf_set_u32(w, "gemma4.attention.key_length_swa", swa_dim, err, errlen);
    if (rc == 0) rc = gguf_set_u32(w, "gemma4.attention.value_length_swa", swa_dim, err, errlen);
    if (rc == 0) rc = gguf_set_u32(w, "gemma4.rope.dimension_count", full_dim, err, errlen);
    if (rc == 0) rc = gguf_set_u32(w, "gemma4.rope.dimension_count_swa", swa_dim, err, errlen);
    if (rc == 0)
        rc = ff_same
                 ? gguf_set_u32(w, "gemma4.feed_forward_length", ff[0], err, errlen)
                 : gguf_set_arr_u32(w, "gemma4.feed_forward_length", ff, (size_t)L, err, errlen);
    if (rc == 0)
        rc = kv_same ? gguf_set_u32(w, "gemma4.attention.head_count_kv", kv[0], err, errlen)
                     : gguf_set_arr_u32(w, "gemma4.attention.head_count_kv", kv, (size_t)L, err,
                                        errlen);
    if (rc == 0)
        rc = gguf_set_f32(w, "gemma4.rope.freq_base_swa", (float)c->rope_local_theta, err, errlen);
    if (rc == 0)
        rc = gguf_set_u32(w, "gemma4.attention.sliding_window", (uint32_t)c->sliding_window, err,
                          errlen);
    if (rc == 0)
        rc = gguf_set_arr_bool(w, "gemma4.attention.sliding_window_pattern", swa, (size_t)L, err,
                               errlen);
    if (rc == 0)
        rc = gguf_set_u32(w, "gemma4.attention.shared_kv_layers", (uint32_t)c->kv_shared, err,
                          errlen);
    if (rc == 0)
        rc = gguf_set_u32(w, "gemma4.embedding_length_per_layer_input", (uint32_t)c->ple_dim, err,
                          errlen);
    if (rc == 0 && c->final_softcap > 0)
        rc = gguf_set_f32(w, "gemma4.final_logit_softcapping", c->final_softcap, err, errlen);
    return rc;
}

const ModelFamily family_gemma4_text = {
    .model_type = "gemma4_text",
    .architecture = "Gemma4ForCausalLM",
    .default_max_positions = 131072,
    .default_head_dim = 256,
    .default_rope_theta = 1e6,
    .default_tied = true,
    .read_config = read_gemma4,
    .norms = gemma4_norms,
    .n_norms = 10,
    .layer_forward = gemma4_layer_forward,
    .layer_inputs = gemma4_layer_inputs,
    .gguf_arch = "gemma4",
    .gguf_sliding_window = true,
    .gguf_rope_freqs = true,
    .gguf_check = gemma4_gguf_check,
    .gguf_metadata = gemma4_gguf_metadata,
    .default_targets = LORA_Q | LORA_V,
    .embed_scale = true,
    .own_activation = true,
    .proportional_rope = true,
    /* Gemma4TextConfig's default rope_parameters */
    .default_rope_parameters =
        "{\"sliding_attention\": {\"rope_type\": \"default\", \"rope_theta\": 10000.0}, "
        "\"full_attention\": {\"rope_type\": \"proportional\", \"partial_rotary_factor\": 0.25, "
        "\"rope_theta\": 1000000.0}}",
};

const ModelWrapper wrapper_gemma4 = {
    .model_type = "gemma4",
    .architecture = "Gemma4ForConditionalGeneration",
    .text = &family_gemma4_text,
    .text_type_default = "gemma4_text", /* Gemma4Config's */
    /* Gemma4TextConfig's defaults (transformers' configuration_gemma4.py; the Gemma 4 keys
     * are read_gemma4's) */
    .text_defaults = "{\"vocab_size\": 262144, \"hidden_size\": 2304, \"intermediate_size\": 9216, "
                     "\"num_hidden_layers\": 30, \"num_attention_heads\": 8, "
                     "\"num_key_value_heads\": 4, \"head_dim\": 256, "
                     "\"max_position_embeddings\": 131072, \"rms_norm_eps\": 1e-6, "
                     "\"tie_word_embeddings\": true}",
    .prefix = "model.language_model.",
    .lm_head = "lm_head.weight",
    .final_softcap = true,
};
