/* trainer/model/decode_qwen3_5.c — Qwen3.5 generation one token at a time (family.h's
 * decoder): constant work per token in the Gated DeltaNet layers, a KV cache in the
 * attention layers.
 *
 * A DeltaNet layer keeps its conv window (CH, KW - 1) and its recurrent state (NV, DK, DV):
 * a token runs tensor_conv1d_silu_step and tensor_gated_delta_step, the one-position forms
 * of the training pass's op_causal_conv1d_silu and op_gated_delta_rule; an attention layer
 * keeps k (after its norm and RoPE) and v of every position so far, and attends the new
 * query to them in float32 with double sums. Everything else is family_qwen3_5.c's layer
 * with N = 1, built from the same ops (projections with LoRA, norms, gates, MLP) in a graph
 * reset per token, so the numbers are the training pass's up to the order of float sums. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "trainer/model/family.h"
#include "trainer/model/internal.h"

typedef struct {
    int max_len, layers;
    float **conv;   /* per layer: (CH, KW - 1) of a DeltaNet layer, else NULL */
    float **state;  /* per layer: (NV, DK, DV) of a DeltaNet layer, else NULL */
    float **k, **v; /* per layer: (max_len, NKV*D) of an attention layer, else NULL */
    double *scores; /* (max_len) */
} Qwen35Decoder;

void qwen3_5_decoder_free(void *p) {
    Qwen35Decoder *d = p;
    if (!d) return;
    for (int i = 0; i < d->layers; i++) {
        if (d->conv) free(d->conv[i]);
        if (d->state) free(d->state[i]);
        if (d->k) free(d->k[i]);
        if (d->v) free(d->v[i]);
    }
    free(d->conv), free(d->state), free(d->k), free(d->v);
    free(d->scores);
    free(d);
}

static int conv_channels(const ModelConfig *c) {
    return 2 * c->linear.n_k_heads * c->linear.k_dim + c->linear.n_v_heads * c->linear.v_dim;
}

void *qwen3_5_decoder_new(const Model *m, int max_len) {
    const ModelConfig *c = &m->cfg;
    int L = c->num_hidden_layers, ch = conv_channels(c), kv = c->num_key_value_heads * c->head_dim;
    size_t state = (size_t)c->linear.n_v_heads * c->linear.k_dim * c->linear.v_dim;
    Qwen35Decoder *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    d->layers = L;
    d->max_len = max_len;
    d->conv = calloc((size_t)L, sizeof *d->conv);
    d->state = calloc((size_t)L, sizeof *d->state);
    d->k = calloc((size_t)L, sizeof *d->k);
    d->v = calloc((size_t)L, sizeof *d->v);
    d->scores = malloc((size_t)max_len * sizeof *d->scores);
    bool ok = d->conv && d->state && d->k && d->v && d->scores;
    for (int i = 0; ok && i < L; i++) {
        if (hf_layer_is_linear(c, i)) {
            d->conv[i] =
                calloc((size_t)ch * (size_t)(c->linear.conv_kernel - 1) + 1, sizeof(float));
            d->state[i] = calloc(state, sizeof(float));
            ok = d->conv[i] && d->state[i];
        } else {
            d->k[i] = malloc((size_t)max_len * (size_t)kv * sizeof(float));
            d->v[i] = malloc((size_t)max_len * (size_t)kv * sizeof(float));
            ok = d->k[i] && d->v[i];
        }
    }
    if (!ok) {
        qwen3_5_decoder_free(d);
        return NULL;
    }
    return d;
}

/* A new (1, n) tensor in g. */
static Tensor *row(Graph *g, int64_t n) {
    return graph_tensor(g, 2, (int64_t[]){1, n});
}

static Tensor *deltanet_step(const LayerPass *p, Qwen35Decoder *d, Tensor *h, int i) {
    const ModelConfig *c = &p->m->cfg;
    Graph *g = p->g;
    int nk = c->linear.n_k_heads, nv = c->linear.n_v_heads, dk = c->linear.k_dim,
        dv = c->linear.v_dim, ch = conv_channels(c);
    int64_t lk = (int64_t)nk * dk, lv = (int64_t)nv * dv;
    Tensor *qkv = layer_linear(p, h, i, MODULE_IN_QKV), *mixed = row(g, ch);
    if (!qkv || !mixed) return NULL;
    tensor_conv1d_silu_step(d->conv[i], mixed->data, qkv->data,
                            layer_norm_weight(p, i, LINEAR_CONV)->data, ch, c->linear.conv_kernel);
    Tensor *q = op_head_l2norm(g, op_columns(g, mixed, 0, lk), nk, 1e-6f, (float)(1.0 / sqrt(dk)));
    Tensor *k = op_head_l2norm(g, op_columns(g, mixed, lk, lk), nk, 1e-6f, 1.0f);
    Tensor *v = op_columns(g, mixed, 2 * lk, lv);
    Tensor *beta = op_sigmoid(g, layer_linear(p, h, i, MODULE_IN_B));
    Tensor *decay = op_deltanet_log_decay(g, layer_linear(p, h, i, MODULE_IN_A),
                                          layer_norm_weight(p, i, LINEAR_A_LOG),
                                          layer_norm_weight(p, i, LINEAR_DT_BIAS));
    Tensor *o = row(g, lv);
    if (!q || !k || !v || !beta || !decay || !o) return NULL;
    tensor_gated_delta_step(d->state[i], o->data, q->data, k->data, v->data, decay->data,
                            beta->data, nk, nv, dk, dv);
    o = op_head_rmsnorm_gated(g, o, layer_linear(p, h, i, MODULE_IN_Z), nv,
                              layer_norm_weight(p, i, NORM_LINEAR_OUT), (float)c->rms_norm_eps);
    return layer_linear(p, o, i, MODULE_OUT);
}

/* Query (NH*D) against the cached k and v of positions 0..t -> out (NH*D). */
static void attend(const ModelConfig *c, Qwen35Decoder *d, int i, int t, const float *q,
                   float *out) {
    int nh = c->num_attention_heads, nkv = c->num_key_value_heads, D = c->head_dim;
    int kvw = nkv * D;
    double scale = c->attn_scale > 0 ? c->attn_scale : 1.0 / sqrt((double)D);
    for (int h = 0; h < nh; h++) {
        const float *qh = q + (size_t)h * D;
        int kh = h / (nh / nkv);
        double top = -INFINITY, total = 0.0;
        for (int s = 0; s <= t; s++) {
            const float *ks = d->k[i] + (size_t)s * kvw + (size_t)kh * D;
            double dot = 0.0;
            for (int j = 0; j < D; j++) dot += (double)qh[j] * ks[j];
            d->scores[s] = dot * scale;
            top = d->scores[s] > top ? d->scores[s] : top;
        }
        for (int s = 0; s <= t; s++) total += d->scores[s] = exp(d->scores[s] - top);
        for (int j = 0; j < D; j++) {
            double acc = 0.0;
            for (int s = 0; s <= t; s++)
                acc += d->scores[s] * d->v[i][(size_t)s * kvw + (size_t)kh * D + j];
            out[(size_t)h * D + j] = (float)(acc / total);
        }
    }
}

static Tensor *attention_step(const LayerPass *p, Qwen35Decoder *d, Tensor *h, int i, int t) {
    const ModelConfig *c = &p->m->cfg;
    Graph *g = p->g;
    float eps = (float)c->rms_norm_eps;
    int nh = c->num_attention_heads, nkv = c->num_key_value_heads, D = c->head_dim;
    Tensor *qg = layer_linear(p, h, i, MODULE_Q);
    Tensor *q = op_head_columns(g, qg, nh, 0, D), *gate = op_head_columns(g, qg, nh, D, D);
    Tensor *k = layer_linear(p, h, i, MODULE_K), *v = layer_linear(p, h, i, MODULE_V);
    q = layer_rope(p, op_head_rmsnorm_unit_offset(g, q, nh, layer_norm_weight(p, i, NORM_Q), eps),
                   nh);
    k = layer_rope(p, op_head_rmsnorm_unit_offset(g, k, nkv, layer_norm_weight(p, i, NORM_K), eps),
                   nkv);
    Tensor *att = row(g, (int64_t)nh * D);
    if (!q || !gate || !k || !v || !att) return NULL;
    size_t kvw = (size_t)nkv * D;
    memcpy(d->k[i] + (size_t)t * kvw, k->data, kvw * sizeof(float));
    memcpy(d->v[i] + (size_t)t * kvw, v->data, kvw * sizeof(float));
    attend(c, d, i, t, q->data, att->data);
    return layer_linear(p, op_sigmoid_gate(g, att, gate), i, MODULE_O);
}

const float *qwen3_5_decoder_next(void *dp, const Model *m, const Lora *lora, Graph *g, int32_t id,
                                  int pos) {
    Qwen35Decoder *d = dp;
    const ModelConfig *c = &m->cfg;
    if (pos < 0 || pos >= d->max_len) return NULL;
    graph_reset(g);
    Tensor *pt = graph_tensor(g, 1, (int64_t[]){1});
    if (!pt) return NULL;
    int32_t *at = (int32_t *)(void *)pt->data;
    *at = pos;
    PassShared none = {0};
    LayerPass p = {m, lora, g, at, NULL, 1, 1, 0.0f, 0, &none};
    float eps = (float)c->rms_norm_eps;
    Tensor *x = model_embed(m, g, &id, 1); /* (1, C) */
    for (int i = 0; x && i < c->num_hidden_layers; i++) {
        Tensor *h = op_rmsnorm_unit_offset(g, x, layer_norm_weight(&p, i, NORM_ATTN), eps);
        Tensor *mix = hf_layer_is_linear(c, i) ? deltanet_step(&p, d, h, i)
                                               : attention_step(&p, d, h, i, pos);
        x = op_add(g, x, mix);
        h = op_rmsnorm_unit_offset(g, x, layer_norm_weight(&p, i, NORM_MLP), eps);
        Tensor *ff =
            op_swiglu(g, layer_linear(&p, h, i, MODULE_GATE), layer_linear(&p, h, i, MODULE_UP));
        x = op_add(g, x, layer_linear(&p, ff, i, MODULE_DOWN));
    }
    Tensor *logits = op_linear(g, model_final_norm(m, g, x), model_lm_head(m), NULL);
    return logits && !graph_failed(g) ? logits->data : NULL;
}
