/* trainer/model/forward.c — the forward pass as tensor/ ops (see decoder.h): the embedding,
 * the decoder layers of the model's family (family_*.c), the final norm, and the shared
 * pieces the families build their layers from (family.h).
 *
 * Training and evaluation stop at the final norm's output (the hidden state) and hand it to
 * op_lm_head_cross_entropy, which never holds all logits; logits = hidden lm_head^T. */
#include "trainer/model/lora.h"
#include "trainer/model/internal.h"

/* Each LoRA module's dropout mask needs its own seed: mix (seed, layer, module). */
static uint64_t module_seed(uint64_t seed, int layer, ModelModule mod) {
    /* The seven q..down numbered layer * 7 + mod + 1, as before the fused modules existed (a
     * run resumed from an older lorafit's checkpoint draws the same masks); the fused ones
     * (Phi-3's) in a range of their own above 2^40, the DeltaNet's (Qwen3.5) above 2^41. */
    uint64_t index =
        mod < MODULE_QKV ? (uint64_t)layer * MODULE_QKV + (uint64_t)mod + 1
        : mod < MODULE_IN_QKV
            ? ((uint64_t)1 << 40) + (uint64_t)layer * 2 + (uint64_t)(mod - MODULE_QKV) + 1
            : ((uint64_t)1 << 41) + (uint64_t)layer * 5 + (uint64_t)(mod - MODULE_IN_QKV) + 1;
    uint64_t s = seed ^ index * 0x9e3779b97f4a7c15ull;
    return rng_splitmix64(&s);
}

Tensor *layer_linear(const LayerPass *p, Tensor *x, int layer, ModelModule mod) {
    const Tensor *w = model_weight(p->m, layer, mod), *b = model_bias(p->m, layer, mod);
    Tensor *A, *B;
    if (p->lora && lora_module(p->lora, layer, mod, &A, &B))
        return op_lora_linear(p->g, x, w, b, A, B, lora_scaling(p->lora), p->dropout,
                              module_seed(p->dropout_seed, layer, mod));
    return op_linear(p->g, x, w, b);
}

const Tensor *layer_norm_weight(const LayerPass *p, int layer, LayerNormSlot s) {
    return &p->m->layers[layer].norm[s];
}

/* longrope's choice for the whole pass (transformers' longrope_frequency_update): the long
 * factors when max(position) + 1 > original_max_position_embeddings. */
static bool pass_uses_long_rope(const LayerPass *p) {
    const ModelConfig *c = &p->m->cfg;
    if (!c->rope_scaling.longrope) return false;
    int64_t n = (int64_t)p->batch * p->seq_len;
    int32_t top = 0;
    for (int64_t i = 0; i < n; i++) top = p->pos[i] > top ? p->pos[i] : top;
    return top + 1 > c->rope_scaling.original_max_position_embeddings;
}

Tensor *layer_rope(const LayerPass *p, Tensor *x, int n_heads) {
    const Model *m = p->m;
    int d = m->cfg.head_dim, rot = m->cfg.rotary_dim;
    bool long_rope = pass_uses_long_rope(p);
    const float *cos_t = long_rope ? m->rope_long_cos : m->rope_cos,
                *sin_t = long_rope ? m->rope_long_sin : m->rope_sin;
    if (rot < d) return op_rope_partial(p->g, x, n_heads, d, rot, p->pos, cos_t, sin_t, m->max_pos);
    return op_rope(p->g, x, n_heads, d, p->pos, cos_t, sin_t, m->max_pos);
}

Tensor *layer_rope_query(const LayerPass *p, Tensor *x, int n_heads) {
    const Model *m = p->m;
    int d = m->cfg.head_dim, rot = m->cfg.rotary_dim;
    if (!m->rope_query_cos) return layer_rope(p, x, n_heads);
    const float *cos_t = m->rope_query_cos, *sin_t = m->rope_query_sin;
    if (rot < d) return op_rope_partial(p->g, x, n_heads, d, rot, p->pos, cos_t, sin_t, m->max_pos);
    return op_rope(p->g, x, n_heads, d, p->pos, cos_t, sin_t, m->max_pos);
}

Tensor *layer_rope_at(const LayerPass *p, Tensor *x, int n_heads, int layer) {
    const Model *m = p->m;
    if (!m->rope_local_cos || !hf_layer_window(&m->cfg, layer)) return layer_rope(p, x, n_heads);
    return op_rope(p->g, x, n_heads, m->cfg.head_dim, p->pos, m->rope_local_cos, m->rope_local_sin,
                   m->max_pos);
}

Tensor *layer_attention(const LayerPass *p, Tensor *q, Tensor *k, Tensor *v, int layer) {
    const ModelConfig *c = &p->m->cfg;
    AttentionSpec spec = {.batch = p->batch,
                          .seq_len = p->seq_len,
                          .n_heads = c->num_attention_heads,
                          .n_kv_heads = c->num_key_value_heads,
                          .head_dim = c->head_dim,
                          .scale = c->attn_scale,
                          .softcap = c->attn_softcap,
                          .window = hf_layer_window(c, layer),
                          .segment = p->segment};
    return op_attention_ex(p->g, q, k, v, &spec);
}

Tensor *model_layer_forward(const Model *m, const Lora *lora, Graph *g, Tensor *x, int layer,
                            const int32_t *pos, const int32_t *segment, int batch, int seq_len,
                            float dropout, uint64_t dropout_seed, PassShared *shared) {
    LayerPass p = {m, lora, g, pos, segment, batch, seq_len, dropout, dropout_seed, shared};
    return m->cfg.family->layer_forward(&p, x, layer);
}

int model_pass_shared(const Model *m, Graph *g, const int32_t *ids, Tensor *x, PassShared *shared) {
    *shared = (PassShared){0};
    if (!m->cfg.family->layer_inputs || !m->cfg.ple_dim) return 0;
    shared->layer_inputs = m->cfg.family->layer_inputs(m, g, ids, x);
    return shared->layer_inputs ? 0 : -1;
}

const int32_t *model_default_positions(Graph *g, int batch, int seq_len) {
    /* 0..T-1 per row, in an arena tensor reinterpreted as int32 (same size, aligned). */
    int64_t n = (int64_t)batch * seq_len;
    Tensor *p = graph_tensor(g, 1, (int64_t[]){n});
    if (!p) return NULL;
    int32_t *pp = (int32_t *)(void *)p->data;
    for (int64_t i = 0; i < n; i++) pp[i] = (int32_t)(i % seq_len);
    return pp;
}

Tensor *model_embed(const Model *m, Graph *g, const int32_t *ids, int64_t n) {
    Tensor *x = m->embed_from_file ? model_embed_rows_read(m, g, ids, n)
                                   : op_embedding(g, &m->embed, ids, n);
    if (x && m->embed_scale) /* Gemma; no gradient flows into the frozen table: in place */
        for (int64_t k = 0; k < x->size; k++) x->data[k] *= m->embed_scale;
    return x;
}

Tensor *model_final_norm(const Model *m, Graph *g, Tensor *x) {
    float eps = (float)m->cfg.rms_norm_eps;
    if (m->cfg.family->unit_offset_norm) return op_rmsnorm_unit_offset(g, x, &m->final_norm, eps);
    Tensor *h = op_rmsnorm(g, x, &m->final_norm, eps); /* (N, C) */
    double s = m->cfg.logits_scaling;                  /* Granite: logits / s = (h / s) lm_head^T */
    return s && s != 1.0 ? op_scale(g, h, (float)(1.0 / s)) : h;
}

static Tensor *hidden(const Model *m, const Lora *lora, Graph *g, const int32_t *ids,
                      const int32_t *pos, const int32_t *segment, int batch, int seq_len,
                      float dropout, uint64_t dropout_seed) {
    if (!pos) pos = model_default_positions(g, batch, seq_len);
    if (!pos) return NULL;
    Tensor *x = model_embed(m, g, ids, (int64_t)batch * seq_len); /* (N, C) */
    PassShared shared;
    if (!x || model_pass_shared(m, g, ids, x, &shared) != 0) return NULL;
    for (int i = 0; i < m->cfg.num_hidden_layers; i++)
        x = model_layer_forward(m, lora, g, x, i, pos, segment, batch, seq_len, dropout,
                                dropout_seed, &shared);
    return model_final_norm(m, g, x); /* (N, C) */
}

/* hidden (N, C) -> logits (N, V), soft-capped when the config says (Gemma 2). */
static Tensor *logits(const Model *m, Graph *g, Tensor *hidden) {
    Tensor *l = op_linear(g, hidden, &m->lm_head, NULL);
    return m->cfg.final_softcap > 0 ? op_softcap(g, l, m->cfg.final_softcap) : l;
}

Tensor *model_loss(const Model *m, Graph *g, Tensor *hidden, const int32_t *targets,
                   int64_t *n_targets) {
    return op_lm_head_cross_entropy_softcap(g, hidden, &m->lm_head, targets, m->cfg.final_softcap,
                                            n_targets);
}

Tensor *model_token_losses(const Model *m, Graph *g, Tensor *hidden, const int32_t *targets,
                           int64_t *n_targets) {
    return op_lm_head_token_losses(g, hidden, &m->lm_head, targets, m->cfg.final_softcap,
                                   n_targets);
}

Tensor *model_forward(const Model *m, const Lora *lora, Graph *g, const int32_t *ids,
                      const int32_t *pos, const int32_t *segment, int batch, int seq_len,
                      uint64_t dropout_seed) {
    Tensor *x = model_forward_hidden(m, lora, g, ids, pos, segment, batch, seq_len, dropout_seed);
    return logits(m, g, x); /* (N, V) */
}

Tensor *model_forward_eval(const Model *m, const Lora *lora, Graph *g, const int32_t *ids,
                           const int32_t *pos, const int32_t *segment, int batch, int seq_len) {
    Tensor *x = model_forward_hidden_eval(m, lora, g, ids, pos, segment, batch, seq_len);
    return logits(m, g, x); /* (N, V) */
}

Tensor *model_forward_hidden(const Model *m, const Lora *lora, Graph *g, const int32_t *ids,
                             const int32_t *pos, const int32_t *segment, int batch, int seq_len,
                             uint64_t dropout_seed) {
    float dropout = lora ? lora_spec(lora)->dropout : 0.0f;
    return hidden(m, lora, g, ids, pos, segment, batch, seq_len, dropout, dropout_seed);
}

Tensor *model_forward_hidden_eval(const Model *m, const Lora *lora, Graph *g, const int32_t *ids,
                                  const int32_t *pos, const int32_t *segment, int batch,
                                  int seq_len) {
    return hidden(m, lora, g, ids, pos, segment, batch, seq_len, 0.0f, 0);
}

const Tensor *model_lm_head(const Model *m) {
    return &m->lm_head;
}
