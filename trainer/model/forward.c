/* trainer/model/forward.c — the Llama-family forward pass as tensor/ ops (see model.h).
 *
 * Per layer (HF LlamaDecoderLayer):
 *   h = rmsnorm(x); q, k, v = h Wq^T, h Wk^T, h Wv^T (+ biases, + LoRA); rope(q), rope(k)
 *   x = x + attention(q, k, v) Wo^T;  h = rmsnorm(x)
 *   x = x + (silu(h Wgate^T) * (h Wup^T)) Wdown^T
 * then logits = rmsnorm(x) lm_head^T. Training and evaluation stop at rmsnorm(x) (the
 * hidden state) and hand it to op_lm_head_cross_entropy, which never holds all logits. */
#include "trainer/model/lora.h"
#include "trainer/model/internal.h"

/* Each LoRA module's dropout mask needs its own seed: mix (seed, layer, module). */
static uint64_t module_seed(uint64_t seed, int layer, ModelModule mod) {
    uint64_t s =
        seed ^ ((uint64_t)layer * MODULE_COUNT + (uint64_t)mod + 1) * 0x9e3779b97f4a7c15ull;
    return rng_splitmix64(&s);
}

static Tensor *linear(Graph *g, const Model *m, const Lora *lora, Tensor *x, int layer,
                      ModelModule mod, float dropout, uint64_t dropout_seed) {
    const ModelLayer *L = &m->layers[layer];
    const Tensor *b = L->b[mod].data ? &L->b[mod] : NULL;
    Tensor *A, *B;
    if (lora && lora_module(lora, layer, mod, &A, &B))
        return op_lora_linear(g, x, &L->w[mod], b, A, B, lora_scaling(lora), dropout,
                              module_seed(dropout_seed, layer, mod));
    return op_linear(g, x, &L->w[mod], b);
}

Tensor *model_layer_forward(const Model *m, const Lora *lora, Graph *g, Tensor *x, int layer,
                            const int32_t *pos, const int32_t *segment, int batch, int seq_len,
                            float dropout, uint64_t dropout_seed) {
    const ModelConfig *c = &m->cfg;
    const ModelLayer *L = &m->layers[layer];
    float eps = (float)c->rms_norm_eps;
    int nh = c->num_attention_heads, nkv = c->num_key_value_heads, d = c->head_dim, i = layer;
    Tensor *h = op_rmsnorm(g, x, &L->attn_norm, eps);
    Tensor *q = linear(g, m, lora, h, i, MODULE_Q, dropout, dropout_seed); /* (N, NH*D) */
    Tensor *k = linear(g, m, lora, h, i, MODULE_K, dropout, dropout_seed); /* (N, NKV*D) */
    Tensor *v = linear(g, m, lora, h, i, MODULE_V, dropout, dropout_seed); /* (N, NKV*D) */
    q = op_rope(g, q, nh, d, pos, m->rope_cos, m->rope_sin, m->max_pos);
    k = op_rope(g, k, nkv, d, pos, m->rope_cos, m->rope_sin, m->max_pos);
    Tensor *att = op_attention(g, q, k, v, batch, seq_len, nh, nkv, d, segment);
    x = op_add(g, x, linear(g, m, lora, att, i, MODULE_O, dropout, dropout_seed));
    h = op_rmsnorm(g, x, &L->ffn_norm, eps);
    Tensor *gate = linear(g, m, lora, h, i, MODULE_GATE, dropout, dropout_seed); /* (N, FF) */
    Tensor *up = linear(g, m, lora, h, i, MODULE_UP, dropout, dropout_seed);     /* (N, FF) */
    Tensor *ff = op_swiglu(g, gate, up);
    return op_add(g, x, linear(g, m, lora, ff, i, MODULE_DOWN, dropout, dropout_seed));
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
    return op_rmsnorm(g, x, &m->final_norm, (float)m->cfg.rms_norm_eps); /* (N, C) */
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
