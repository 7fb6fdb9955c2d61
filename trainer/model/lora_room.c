/* trainer/model/lora_room.c — room for a LoRA beside the BF16 weights it adapts
 * (Tensor.room, tensor.h's graph_lora_uses_room).
 *
 * Each adapted BF16 matrix W (OUT, IN) is copied into one new huge-page allocation as
 * (OUT + R) rows of IN + R, W in the top-left; op_lora_linear writes B^T's columns beside W
 * and A's rows below it just before its products read them, so LoRA's rank-R spreads
 * (y += s h B^T, dx += dh A) ride in the products with W instead of taking a pass of their
 * own over y and dx each. The old copies' pages are given back (resident memory grows by
 * R / IN + R / OUT of the adapted matrices: 3% at the SmolLM-135M shape with r 8). */
#include "trainer/model/lora.h"
#include "trainer/model/internal.h"

#include <stdio.h>
#include <stdlib.h>

/* The adapted matrix of (layer, mod) when it can take room: BF16, not quantized. */
static Tensor *roomy(Model *m, const Lora *l, int layer, ModelModule mod) {
    Tensor *A, *B;
    if (!lora_module(l, layer, mod, &A, &B)) return NULL;
    Tensor *w = (Tensor *)model_weight(m, layer, mod);
    return w->bf16 && !w->quant && !w->data && w->ndim == 2 && w->room == 0 ? w : NULL;
}

/* Whether t's BF16 bits (with their room) overlap [lo, hi). */
static bool overlaps(const Tensor *t, const void *lo, const void *hi) {
    if (!t->bf16 || t->size <= 0) return false;
    int64_t rows = t->size / t->shape[t->ndim - 1];
    const uint16_t *end = t->bf16 + (rows + t->room) * tensor_bf16_ld(t);
    return (const void *)t->bf16 < hi && (const void *)end > lo;
}

/* Whether any other matrix of the model reads bytes of [lo, hi). */
static bool shared_bytes(const Model *m, const Tensor *self, const void *lo, const void *hi) {
    for (int layer = 0; layer < m->cfg.num_hidden_layers; layer++)
        for (int mod = 0; mod < MODULE_COUNT; mod++) {
            const Tensor *t = model_weight(m, layer, (ModelModule)mod);
            if (t != self && overlaps(t, lo, hi)) return true;
        }
    const Tensor *others[] = {&m->embed, &m->lm_head, &m->ple_proj};
    for (size_t i = 0; i < sizeof others / sizeof *others; i++)
        if (overlaps(others[i], lo, hi)) return true;
    return false;
}

int model_make_lora_room(Model *m, const Lora *l, char *err, size_t errlen) {
    int r = lora_spec(l)->r;
    size_t total = 0;
    for (int layer = 0; layer < m->cfg.num_hidden_layers; layer++)
        for (int mod = 0; mod < MODULE_COUNT; mod++) {
            const Tensor *w = roomy(m, l, layer, (ModelModule)mod);
            if (w) total += (size_t)(w->shape[0] + r) * (size_t)(w->shape[1] + r);
        }
    if (total == 0) return 0;
    uint16_t *room = tensor_alloc_pages(total * sizeof(uint16_t));
    if (!room) {
        snprintf(err, errlen, "out of memory: %zu MB for the BF16 weights with room for LoRA",
                 total * sizeof(uint16_t) >> 20);
        return -1;
    }
    uint16_t *next = room;
    for (int layer = 0; layer < m->cfg.num_hidden_layers; layer++)
        for (int mod = 0; mod < MODULE_COUNT; mod++) {
            Tensor *w = roomy(m, l, layer, (ModelModule)mod);
            if (!w) continue;
            int64_t out = w->shape[0], in = w->shape[1], ld = in + r;
            const uint16_t *old = w->bf16;
            for (int64_t o = 0; o < out; o++)
                memcpy(next + o * ld, old + o * in, (size_t)in * sizeof *old);
            w->bf16 = next;
            w->room = r;
            next += (size_t)(out + r) * (size_t)ld;
            if (!shared_bytes(m, w, old, old + w->size))
                tensor_release_pages(old, (size_t)w->size * sizeof(uint16_t));
        }
    free(m->lora_room);
    m->lora_room = room;
    return 0;
}
