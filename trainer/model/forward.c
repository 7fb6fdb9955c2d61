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
    uint64_t s =
        seed ^ ((uint64_t)layer * MODULE_COUNT + (uint64_t)mod + 1) * 0x9e3779b97f4a7c15ull;
    return rng_splitmix64(&s);
}

Tensor *layer_linear(const LayerPass *p, Tensor *x, int layer, ModelModule mod) {
    const ModelLayer *L = &p->m->layers[layer];
    const Tensor *b = L->b[mod].data ? &L->b[mod] : NULL;
    Tensor *A, *B;
    if (p->lora && lora_module(p->lora, layer, mod, &A, &B))
        return op_lora_linear(p->g, x, &L->w[mod], b, A, B, lora_scaling(p->lora), p->dropout,
                              module_seed(p->dropout_seed, layer, mod));
    return op_linear(p->g, x, &L->w[mod], b);
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

Tensor *model_layer_forward(const Model *m, const Lora *lora, Graph *g, Tensor *x, int layer,
                            const int32_t *pos, const int32_t *segment, int batch, int seq_len,
                            float dropout, uint64_t dropout_seed) {
    LayerPass p = {m, lora, g, pos, segment, batch, seq_len, dropout, dropout_seed};
    return m->cfg.family->layer_forward(&p, x, layer);
}

Tensor *model_final_norm(const Model *m, Graph *g, Tensor *x) {
    Tensor *h = op_rmsnorm(g, x, &m->final_norm, (float)m->cfg.rms_norm_eps); /* (N, C) */
    double s = m->cfg.logits_scaling; /* logits / s = (h / s) lm_head^T */
    return s && s != 1.0 ? op_scale(g, h, (float)(1.0 / s)) : h;
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

static Tensor *hidden(const Model *m, const Lora *lora, Graph *g, const int32_t *ids,
                      const int32_t *pos, const int32_t *segment, int batch, int seq_len,
                      float dropout, uint64_t dropout_seed) {
    if (!pos) pos = model_default_positions(g, batch, seq_len);
    if (!pos) return NULL;
    Tensor *x = op_embedding(g, &m->embed, ids, (int64_t)batch * seq_len); /* (N, C) */
    for (int i = 0; i < m->cfg.num_hidden_layers; i++)
        x = model_layer_forward(m, lora, g, x, i, pos, segment, batch, seq_len, dropout,
                                dropout_seed);
    return model_final_norm(m, g, x);
}

Tensor *model_forward(const Model *m, const Lora *lora, Graph *g, const int32_t *ids,
                      const int32_t *pos, const int32_t *segment, int batch, int seq_len,
                      uint64_t dropout_seed) {
    Tensor *x = model_forward_hidden(m, lora, g, ids, pos, segment, batch, seq_len, dropout_seed);
    return op_linear(g, x, &m->lm_head, NULL); /* (N, V) */
}

Tensor *model_forward_eval(const Model *m, const Lora *lora, Graph *g, const int32_t *ids,
                           const int32_t *pos, const int32_t *segment, int batch, int seq_len) {
    Tensor *x = model_forward_hidden_eval(m, lora, g, ids, pos, segment, batch, seq_len);
    return op_linear(g, x, &m->lm_head, NULL); /* (N, V) */
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
