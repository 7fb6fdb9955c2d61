/* tools/make_gguf_model.c — writes a random Llama-architecture GGUF whose tensors have the
 * types llama-quantize gives a Q4_K_M file, straight from random blocks (no float model,
 * no quantizer run): make bench's QLoRA step at the Llama-3.1-8B shape, where an F32 model
 * to quantize would be 32 GB.
 *
 * make_gguf_model --out FILE [--hidden H] [--intermediate I] [--layers L] [--heads NH]
 *                 [--kv-heads NKV] [--vocab V] [--seed S]
 * Defaults are Llama-3.1-8B's: hidden 4096, intermediate 14336, 32 layers, 32/8 heads, vocab
 * 128256, untied, RoPE base 500000, eps 1e-5, context 8192. The types are llama-quantize's
 * Q4_K_M mix (src/llama-quant.cpp): Q6_K for output.weight, and for attn_v and ffn_down in
 * the layers use_more_bits picks (the first and last eighth, and every third between); Q4_K
 * for the other matrices and token_embd; F32 norms (ones). Each block's bytes are random and
 * its scales fixed so that weights stay within about +-0.05: d = 5e-5 and dmin = 3.75e-4 for
 * Q4_K (w = d sc q - dmin m, the mean near 0), d = 1e-5 for Q6_K. No tokenizer: the bench
 * trains on token ids. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/quant.h"
#include "trainer/store/store.h"

typedef struct {
    GgmlType type;
    uint64_t seed;
} Fill;

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void put_f16(uint8_t *at, float v) {
    uint16_t h = gguf_float_to_f16(v);
    memcpy(at, &h, sizeof h);
}

/* Random blocks of fill->type (Q4_K: d, dmin, scales[12], qs[128]; Q6_K: ql[128], qh[64],
 * scales[16], d), or ones for F32. */
static int fill_tensor(void *ctx, void *dst, size_t nbytes, char *err, size_t errlen) {
    const Fill *f = ctx;
    uint8_t *p = dst;
    if (f->type == GGML_TYPE_F32) {
        for (size_t i = 0; i < nbytes / sizeof(float); i++) ((float *)dst)[i] = 1.0f;
        return 0;
    }
    uint64_t s = f->seed;
    for (size_t i = 0; i + 8 <= nbytes; i += 8) {
        uint64_t r = splitmix(&s);
        memcpy(p + i, &r, 8);
    }
    size_t block = f->type == GGML_TYPE_Q4_K ? 144 : 210;
    if (nbytes % block != 0) {
        snprintf(err, errlen, "make_gguf_model: %zu bytes are not whole blocks", nbytes);
        return -1;
    }
    for (size_t b = 0; b < nbytes; b += block) {
        if (f->type == GGML_TYPE_Q4_K) {
            put_f16(p + b, 5e-5f);
            put_f16(p + b + 2, 3.75e-4f);
        } else {
            put_f16(p + b + 208, 1e-5f);
        }
    }
    return 0;
}

typedef struct {
    GgufWriter *w;
    Fill *fills;
    int n;
    uint64_t seed;
    char *err;
    size_t errlen;
} Tensors;

/* Tensor `name` of type t: rows of ne0 weights, ne1 of them (0: a vector). */
static int add(Tensors *ts, const char *name, GgmlType t, int64_t ne0, int64_t ne1) {
    int64_t ne[2] = {ne0, ne1};
    Fill *f = &ts->fills[ts->n];
    *f = (Fill){t, ts->seed * 1000003u + (uint64_t)ts->n};
    ts->n++;
    return gguf_add_tensor(ts->w, name, t, ne1 ? 2 : 1, ne, NULL, fill_tensor, f, ts->err,
                           ts->errlen);
}

/* llama-quant.cpp's use_more_bits(i_layer, n_layers). */
static bool use_more_bits(int i, int n) {
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

static int usage(void) {
    fprintf(stderr, "usage: make_gguf_model --out FILE [--hidden H] [--intermediate I] "
                    "[--layers L] [--heads NH] [--kv-heads NKV] [--vocab V] [--seed S]\n");
    return 2;
}

int main(int argc, char **argv) {
    const char *out = NULL;
    long hidden = 4096, inter = 14336, layers = 32, heads = 32, kv = 8, vocab = 128256, seed = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        long *dst = strcmp(a, "--hidden") == 0         ? &hidden
                    : strcmp(a, "--intermediate") == 0 ? &inter
                    : strcmp(a, "--layers") == 0       ? &layers
                    : strcmp(a, "--heads") == 0        ? &heads
                    : strcmp(a, "--kv-heads") == 0     ? &kv
                    : strcmp(a, "--vocab") == 0        ? &vocab
                    : strcmp(a, "--seed") == 0         ? &seed
                                                       : NULL;
        if (strcmp(a, "--out") == 0)
            out = v;
        else if (!dst || (*dst = strtol(v, NULL, 10)) < 1)
            return usage();
    }
    if (!out || argc % 2 == 0 || hidden % 256 || inter % 256 || hidden % heads || heads % kv ||
        layers > 1000)
        return usage();
    long hd = hidden / heads;
    char err[1024], name[64];
    GgufWriter *w = gguf_writer_new();
    int nt = 3 + 9 * (int)layers;
    Fill *fills = calloc((size_t)nt, sizeof *fills);
    if (!w || !fills) return 1;
    int rc = gguf_set_str(w, "general.architecture", "llama", err, sizeof err) ||
             gguf_set_str(w, "general.name", "lorafit random Q4_K_M", err, sizeof err) ||
             gguf_set_u32(w, "general.file_type", 15, err, sizeof err) || /* MOSTLY_Q4_K_M */
             gguf_set_u32(w, "llama.block_count", (uint32_t)layers, err, sizeof err) ||
             gguf_set_u32(w, "llama.context_length", 8192, err, sizeof err) ||
             gguf_set_u32(w, "llama.embedding_length", (uint32_t)hidden, err, sizeof err) ||
             gguf_set_u32(w, "llama.feed_forward_length", (uint32_t)inter, err, sizeof err) ||
             gguf_set_u32(w, "llama.attention.head_count", (uint32_t)heads, err, sizeof err) ||
             gguf_set_u32(w, "llama.attention.head_count_kv", (uint32_t)kv, err, sizeof err) ||
             gguf_set_f32(w, "llama.rope.freq_base", 500000.0f, err, sizeof err) ||
             gguf_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f, err, sizeof err) ||
             gguf_set_u32(w, "llama.rope.dimension_count", (uint32_t)hd, err, sizeof err) ||
             gguf_set_u32(w, "llama.vocab_size", (uint32_t)vocab, err, sizeof err);
    Tensors ts = {w, fills, 0, (uint64_t)seed, err, sizeof err};
    rc = rc || add(&ts, "token_embd.weight", GGML_TYPE_Q4_K, hidden, vocab);
    for (int l = 0; l < layers && !rc; l++) {
        GgmlType more = use_more_bits(l, (int)layers) ? GGML_TYPE_Q6_K : GGML_TYPE_Q4_K;
        static const char *const names[] = {"attn_norm", "attn_q",      "attn_k",
                                            "attn_v",    "attn_output", "ffn_norm",
                                            "ffn_gate",  "ffn_up",      "ffn_down"};
        const GgmlType types[] = {GGML_TYPE_F32,  GGML_TYPE_Q4_K, GGML_TYPE_Q4_K,
                                  more,           GGML_TYPE_Q4_K, GGML_TYPE_F32,
                                  GGML_TYPE_Q4_K, GGML_TYPE_Q4_K, more};
        const long rows_in[] = {hidden, hidden, hidden, hidden, hidden,
                                hidden, hidden, hidden, inter};
        const long rows[] = {0, hidden, kv * hd, kv * hd, hidden, 0, inter, inter, hidden};
        for (int i = 0; i < 9 && !rc; i++) {
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, names[i]);
            rc = add(&ts, name, types[i], rows_in[i], rows[i]);
        }
    }
    rc = rc || add(&ts, "output_norm.weight", GGML_TYPE_F32, hidden, 0) ||
         add(&ts, "output.weight", GGML_TYPE_Q6_K, hidden, vocab);
    rc = rc || gguf_writer_save(w, out, err, sizeof err);
    if (rc) fprintf(stderr, "make_gguf_model: %s\n", err);
    gguf_writer_free(w);
    free(fills);
    return rc ? 1 : 0;
}
