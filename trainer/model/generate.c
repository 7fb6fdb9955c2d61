/* trainer/model/generate.c — greedy and seeded temperature sampling (see model.h).
 *
 * The whole prefix is recomputed for every new token (no KV cache): the models this is
 * for are small, and it reuses the training forward pass unchanged, so what generate
 * prints is exactly what the trained adapter computes. A family with a decoder of its own
 * (Qwen3.5: recurrent state and KV cache, family.h) feeds one token at a time instead. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trainer/model/internal.h"

/* Index of the sampled token from one row of logits (V). */
static int32_t pick_token(const float *logits, int v, float temperature, Rng *rng) {
    int32_t best = 0;
    for (int i = 1; i < v; i++)
        if (logits[i] > logits[best]) best = i;
    if (temperature <= 0) return best;
    /* softmax(logits / T) in double, then inverse-CDF sampling in index order. */
    double total = 0;
    for (int i = 0; i < v; i++) total += exp(((double)logits[i] - logits[best]) / temperature);
    double u = rng_uniform(rng) * total, acc = 0;
    for (int i = 0; i < v; i++) {
        acc += exp(((double)logits[i] - logits[best]) / temperature);
        if (u < acc) return i;
    }
    return best;
}

int model_generate(const Model *m, const Lora *lora, const int32_t *prompt, int n_prompt, int n_new,
                   float temperature, uint64_t seed, TensorPrecision precision, int32_t *out,
                   char *err, size_t errlen) {
    return model_generate_stream(m, lora, prompt, n_prompt, n_new, temperature, seed, precision,
                                 out, NULL, NULL, NULL, err, errlen);
}

int model_generate_stream(const Model *m, const Lora *lora, const int32_t *prompt, int n_prompt,
                          int n_new, float temperature, uint64_t seed, TensorPrecision precision,
                          int32_t *out, ModelTokenFn on_token, void *ctx, int *n_out, char *err,
                          size_t errlen) {
    const ModelConfig *c = &m->cfg;
    int max_pos = model_max_positions(m);
    if (n_prompt < 1 || n_new < 0 || n_prompt + n_new > max_pos || !(temperature >= 0)) {
        snprintf(err, errlen,
                 "generate: need at least one prompt id, n >= 0, temperature >= 0 "
                 "and prompt + n <= %d positions",
                 max_pos);
        return -1;
    }
    for (int i = 0; i < n_prompt; i++) {
        if (prompt[i] < 0 || prompt[i] >= c->vocab_size) {
            snprintf(err, errlen, "generate: prompt id %d at position %d is outside [0, %d)",
                     prompt[i], i, c->vocab_size);
            return -1;
        }
        out[i] = prompt[i];
    }
    Graph *g = graph_create();
    if (g && graph_set_precision(g, precision) != 0) {
        graph_destroy(g);
        g = NULL;
    }
    if (!g) {
        snprintf(err, errlen, "generate: out of memory");
        return -1;
    }
    const ModelFamily *f = c->family;
    void *dec = f->decoder_new ? f->decoder_new(m, n_prompt + n_new) : NULL;
    if (f->decoder_new && !dec) {
        graph_destroy(g);
        snprintf(err, errlen, "generate: out of memory");
        return -1;
    }
    Rng rng;
    rng_seed(&rng, seed, 0);
    int rc = 0, t;
    for (int i = 0; dec && i < n_prompt - 1; i++) /* the prompt into the cache */
        if (!f->decoder_next(dec, m, lora, g, out[i], i)) {
            snprintf(err, errlen, "generate: prompt position %d: %s", i, graph_error(g));
            rc = -1;
            t = n_prompt;
            goto done;
        }
    for (t = n_prompt; t < n_prompt + n_new; t++) {
        const float *row = NULL;
        if (dec) {
            row = f->decoder_next(dec, m, lora, g, out[t - 1], t - 1);
        } else {
            graph_reset(g);
            Tensor *logits = model_forward_eval(m, lora, g, out, NULL, NULL, 1, t);
            row = logits ? logits->data + (size_t)(t - 1) * c->vocab_size : NULL;
        }
        if (!row) {
            snprintf(err, errlen, "generate: forward pass at position %d: %s", t, graph_error(g));
            rc = -1;
            break;
        }
        out[t] = pick_token(row, c->vocab_size, temperature, &rng);
        int stop = on_token ? on_token(ctx, out[t]) : 0;
        if (stop < 0) {
            snprintf(err, errlen, "generate: stopped by the token consumer at position %d", t);
            rc = -1;
            break;
        }
        if (stop > 0) {
            t++;
            break;
        }
    }
done:
    if (n_out) *n_out = t;
    if (dec) f->decoder_free(dec);
    graph_destroy(g);
    return rc;
}
