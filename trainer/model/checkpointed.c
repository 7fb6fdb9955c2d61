/* trainer/model/checkpointed.c — gradient checkpointing: the training pass with one decoder
 * layer's activations alive at a time (see decoder.h).
 *
 * Why a second graph rather than dropping tensors from the first: a Graph's arena only
 * rewinds as a whole. The layer graph is reset before every layer, so its arena grows to
 * one layer's forward + backward and is then reused by every layer and every step; g keeps
 * what lives for the whole pass: the embedding, the L + 1 layer boundaries, the head.
 * The last layer is left built after the forward pass (its internals coexist with the
 * head's), so backward starts with it and recomputes only the L - 1 layers below.
 *
 * Why the result is bit-identical to the plain pass (model_forward_hidden, graph_backward):
 *   - a layer is built by model_layer_forward either way, from the same input bits, with
 *     the same positions, segments, dropout seeds (mixed with the layer index), precision
 *     and thread count, and every op is deterministic: the recomputed layer is the first
 *     one, bit for bit, and its tape is the same sequence of entries;
 *   - the layer input is a leaf that requires a gradient exactly when the plain pass's did
 *     (not for layer 0, whose input is the frozen embedding), so the same ops record;
 *   - gradients: in the plain pass a layer boundary x gets its gradient only from the
 *     layer above (residual add first, then that layer's first RMSNorm, both into a zeroed
 *     buffer), and only after that layer's whole backward; the recomputed layer's leaf
 *     gets the same terms in the same order into its own zeroed buffer, and the layer
 *     below is seeded with a copy of those bits (graph_backward_from). The head's backward
 *     reaches the last boundary the same way. Every LoRA tensor belongs to one layer, so
 *     each of its gradient elements receives the same additions in the same order;
 *   - the loss is computed once, by the same head ops in g.
 * KV sharing (Gemma 4): a source layer's K and V (PassShared.kv) are copied into g after its
 * forward, with zeroed gradient buffers there, and the sharing layers above read the copies
 * (the same bits). Backward reaches the sharing layers first: their attention adds into
 * those buffers, in the order the plain pass's tape adds into the source's tensors; the
 * recomputed source layer then takes the buffers as its fresh K's and V's gradients, to
 * which its own attention adds last, as in the plain pass. The per-layer inputs are built
 * once in g without gradients.
 * Memory: the head and the layers' backward run at different times, so neither holds its
 * memory through the other's: after the head's backward g's op buffers (the lm_head's chunk
 * of logits, its weight blocks and their bf16 operands: 300 MB at Llama-3's vocabulary of
 * 128,256) are given back to the kernel (graph_release_buffers), and after the last layer's
 * backward the layer graph's arena and buffers (a layer's forward + backward: 730 MB at
 * Llama-3.1-8B's shape and 1024 tokens). Peak memory is then g's tensors plus the larger
 * of (one layer's forward + the head) and (one layer's forward + backward), not their sum;
 * each step faults the pages in again (huge pages where the kernel gives them). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trainer/model/lora.h"
#include "trainer/model/internal.h"

struct Checkpointing {
    Graph *layer;   /* the layer graph */
    int cap;        /* boundaries the array holds */
    Tensor **saved; /* (L + 1) layer boundaries in g: saved[l] = input of layer l */
    Tensor input;   /* the leaf a layer is built on: *saved[l] without its gradient */
    Tensor *held;   /* the last layer's output, still built in the layer graph after the
                       forward pass (its backward needs no recomputation); NULL otherwise */
    /* the pass in flight, for the recomputation; g NULL when there is none */
    const Model *m;
    const Lora *lora;
    Graph *g;
    const int32_t *pos, *segment; /* copies in g */
    int batch, seq_len;
    float dropout;
    uint64_t dropout_seed;
    PassShared shared;  /* the layers' shared inputs; kv[q] in g once its source has run */
    Tensor *kv_kept[4]; /* the sources' K and V copied into g, gradients accumulating there */
    char error[640];    /* why the pass failed, when the layer graph (or ck) failed */
};

Checkpointing *checkpointing_create(void) {
    Checkpointing *ck = calloc(1, sizeof *ck);
    if (!ck) return NULL;
    ck->layer = graph_create();
    if (!ck->layer) {
        free(ck);
        return NULL;
    }
    return ck;
}

void checkpointing_free(Checkpointing *ck) {
    if (!ck) return;
    graph_destroy(ck->layer);
    free(ck->saved);
    free(ck);
}

const Graph *checkpointing_graph(const Checkpointing *ck) {
    return ck ? ck->layer : NULL;
}

const char *checkpointing_error(const Checkpointing *ck, const Graph *g) {
    if (ck && ck->error[0]) return ck->error;
    return graph_error(g);
}

/* Records why the pass failed (the first failure only): in layer `layer` of the layer
 * graph, or (layer -1) `what` itself. Returns NULL for the callers' convenience. */
static void *fail(Checkpointing *ck, int layer, const char *what) {
    if (!ck->error[0]) {
        if (layer >= 0)
            snprintf(ck->error, sizeof ck->error, "decoder layer %d (%s): %s", layer, what,
                     graph_error(ck->layer));
        else
            snprintf(ck->error, sizeof ck->error, "gradient checkpointing: %s", what);
    }
    return NULL;
}

/* The layer graph reset, in g's precision, with layer l built on saved[l]; its output. */
static Tensor *build_layer(Checkpointing *ck, int l) {
    ck->held = NULL;
    graph_reset(ck->layer);
    if (graph_precision(ck->layer) != graph_precision(ck->g))
        graph_set_precision(ck->layer, graph_precision(ck->g));
    graph_set_dropout_rows(ck->layer, graph_dropout_rows(ck->g));
    ck->input = *ck->saved[l];
    ck->input.grad = NULL;
    return model_layer_forward(ck->m, ck->lora, ck->layer, &ck->input, l, ck->pos, ck->segment,
                               ck->batch, ck->seq_len, ck->dropout, ck->dropout_seed, &ck->shared);
}

/* The K and V a source layer has just set in the layer graph (shared.kv differs from
 * `before`) copied into g with zeroed gradients, for the sharing layers above. -1 on OOM. */
static int keep_shared_kv(Checkpointing *ck, Graph *g, Tensor *const before[4]) {
    for (int q = 0; q < 4; q++) {
        Tensor *t = ck->shared.kv[q];
        if (!t || t == before[q]) continue;
        Tensor *keep = graph_tensor(g, t->ndim, t->shape);
        Tensor *grad = t->requires_grad ? graph_tensor(g, t->ndim, t->shape) : NULL;
        if (!keep || (t->requires_grad && !grad)) return -1;
        memcpy(keep->data, t->data, (size_t)t->size * sizeof(float));
        if (grad) memset(grad->data, 0, (size_t)t->size * sizeof(float));
        keep->requires_grad = t->requires_grad;
        keep->grad = grad ? grad->data : NULL;
        ck->shared.kv[q] = ck->kv_kept[q] = keep;
    }
    return 0;
}

/* n ids copied into g's arena (an F32 tensor reinterpreted: same size, aligned); backward
 * needs positions and segments again, after the caller may have reused its buffers. */
static const int32_t *copy_ids(Graph *g, const int32_t *src, int64_t n) {
    Tensor *t = graph_tensor(g, 1, (int64_t[]){n});
    if (!t) return NULL;
    memcpy(t->data, src, (size_t)n * sizeof(int32_t));
    return (const int32_t *)(const void *)t->data;
}

static Tensor *build_pass(const Model *m, const Lora *lora, Graph *g, Checkpointing *ck,
                          const int32_t *ids, const int32_t *pos, const int32_t *segment, int batch,
                          int seq_len, float dropout, uint64_t dropout_seed) {
    if (!m || !g || !ck || !ids || batch < 1 || seq_len < 1) return NULL;
    ck->error[0] = '\0';
    ck->g = NULL;
    ck->held = NULL;
    int L = m->cfg.num_hidden_layers;
    if (L + 1 > ck->cap) {
        Tensor **grown = realloc(ck->saved, (size_t)(L + 1) * sizeof *grown);
        if (!grown) return fail(ck, -1, "out of memory for the layer boundaries");
        ck->saved = grown;
        ck->cap = L + 1;
    }
    int64_t n = (int64_t)batch * seq_len, C = m->cfg.hidden_size;
    ck->m = m, ck->lora = lora, ck->batch = batch, ck->seq_len = seq_len;
    ck->dropout = dropout, ck->dropout_seed = dropout_seed;
    ck->pos = pos ? copy_ids(g, pos, n) : model_default_positions(g, batch, seq_len);
    ck->segment = segment ? copy_ids(g, segment, n) : NULL;
    if (!ck->pos || (segment && !ck->segment)) return NULL;
    ck->g = g;
    Tensor *x = model_embed(m, g, ids, n); /* (N, C) */
    if (!x || model_pass_shared(m, g, ids, x, &ck->shared) != 0) return NULL;
    memset(ck->kv_kept, 0, sizeof ck->kv_kept);
    ck->saved[0] = x;
    Tensor *out = NULL;
    for (int l = 0; l < L; l++) {
        Tensor *before[4];
        memcpy(before, ck->shared.kv, sizeof before);
        out = build_layer(ck, l);
        if (!out || graph_failed(ck->layer)) return fail(ck, l, "forward");
        if (keep_shared_kv(ck, g, before) != 0) return NULL;
        Tensor *keep = graph_tensor(g, 2, (int64_t[]){n, C});
        if (!keep) return NULL;
        memcpy(keep->data, out->data, (size_t)(n * C) * sizeof(float));
        keep->requires_grad = out->requires_grad;
        ck->saved[l + 1] = keep;
    }
    ck->held = out; /* the last layer stays built: backward starts with it, unrecomputed */
    return model_final_norm(m, g, ck->saved[L]); /* (N, C) */
}

/* build_pass, leaving no pass in flight when it fails (a backward then refuses to run). */
static Tensor *forward(const Model *m, const Lora *lora, Graph *g, Checkpointing *ck,
                       const int32_t *ids, const int32_t *pos, const int32_t *segment, int batch,
                       int seq_len, float dropout, uint64_t dropout_seed) {
    Tensor *h =
        build_pass(m, lora, g, ck, ids, pos, segment, batch, seq_len, dropout, dropout_seed);
    if (!h && ck) ck->g = NULL;
    return h;
}

Tensor *model_forward_hidden_checkpointed(const Model *m, const Lora *lora, Graph *g,
                                          Checkpointing *ck, const int32_t *ids, const int32_t *pos,
                                          const int32_t *segment, int batch, int seq_len,
                                          uint64_t dropout_seed) {
    float dropout = lora ? lora_spec(lora)->dropout : 0.0f;
    return forward(m, lora, g, ck, ids, pos, segment, batch, seq_len, dropout, dropout_seed);
}

Tensor *model_forward_hidden_checkpointed_eval(const Model *m, const Lora *lora, Graph *g,
                                               Checkpointing *ck, const int32_t *ids,
                                               const int32_t *pos, const int32_t *segment,
                                               int batch, int seq_len) {
    return forward(m, lora, g, ck, ids, pos, segment, batch, seq_len, 0.0f, 0);
}

int model_backward_checkpointed(Graph *g, Checkpointing *ck, Tensor *root, float seed) {
    if (!g || !ck || !root) return -1;
    if (ck->g != g) {
        fail(ck, -1, "a backward pass without a checkpointed forward pass in this graph");
        return -1;
    }
    ck->g = NULL; /* one backward per forward pass */
    if (graph_backward(g, root, seed) != 0) return -1;
    graph_release_buffers(g); /* the head's: idle until the next step (memory, see top) */
    int L = ck->m->cfg.num_hidden_layers;
    Tensor *top = ck->saved[L];
    float *d = top->grad; /* d(boundary l + 1), in g: the head's, then each layer's */
    size_t bytes = (size_t)top->size * sizeof(float);
    ck->g = g; /* build_layer reads the precision from g */
    int rc = 0;
    for (int l = L - 1; l >= 0 && d; l--) {
        Tensor *kept[4];
        memcpy(kept, ck->shared.kv, sizeof kept);
        Tensor *out = l == L - 1 && ck->held ? ck->held : build_layer(ck, l);
        if (!out || graph_failed(ck->layer)) {
            fail(ck, l, "recomputed for backward");
            rc = -1;
            break;
        }
        for (int q = 0; q < 4; q++) /* a source: its fresh K, V take the sharing layers' */
            if (ck->shared.kv[q] != kept[q] && ck->kv_kept[q])
                ck->shared.kv[q]->grad = ck->kv_kept[q]->grad;
        memcpy(ck->shared.kv, kept, sizeof kept);
        if (graph_backward_from(ck->layer, out, d) != 0) {
            fail(ck, l, "backward");
            rc = -1;
            break;
        }
        if (!ck->input.grad) break; /* layer 0, or no gradient flows further down */
        memcpy(d, ck->input.grad, bytes);
    }
    ck->g = NULL;
    ck->held = NULL;
    graph_release(ck->layer); /* idle until the next step's forward (memory, see top) */
    return rc;
}
