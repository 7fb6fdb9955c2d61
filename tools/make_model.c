/* tools/make_model.c — writes a randomly initialised HF model directory (config.json +
 * model.safetensors, F32) for demos, benchmarks and tests.
 *
 * make_model --out DIR [--preset tiny|smollm-135m|qwen3-0.6b|gemma3-1b|qwen3.5-0.8b]
 *            [--arch llama|qwen2|mistral|qwen3|gemma3_text|qwen3_5_text] [--hidden H]
 * [--intermediate I]
 *            [--layers L] [--heads NH] [--kv-heads NKV] [--head-dim D] [--vocab V] [--tied]
 *            [--window W] [--seed S] [--dtype f32|bf16] [--max-position P]
 * Linear weights ~ N(0, 0.02^2) (sum of uniforms), norms at their identity (1; Gemma's
 * (1 + w) norms 0), Qwen2 biases 0. Qwen3 adds the per-head q/k norms, head_dim its own key
 * (--head-dim, default hidden / heads), RoPE base 1e6 and eps 1e-6. Gemma 3 (gemma3_text)
 * adds them and the post-attention and pre/post-feedforward norms; its config has
 * Gemma-3-1B's other settings: sliding window --window (default 512) on 5 of every 6 layers,
 * query_pre_attn_scalar = head_dim, RoPE bases 10000 (local) and 1e6 (global),
 * gelu_pytorch_tanh, and final_logit_softcapping 30 (Gemma 2's, which the 1B does not set:
 * so the soft-capped lm_head is part of the step).
 * Presets: qwen3-0.6b (hidden 1024, intermediate 3072, 28 layers, 16/8 heads of 128, vocab
 * 151936, tied), gemma3-1b (hidden 1152, intermediate 6912, 26 layers, 4/1 heads of 256,
 * vocab 262144, tied, window 512), qwen3.5-0.8b (qwen3_5_text: hidden 1024, intermediate 3584,
 * 24 layers, every 4th full attention (8/2 heads of 256, q_proj twice as wide for the output
 * gate), the others Gated DeltaNet (16 key / 16 value heads of 128, conv kernel 4; A_log 0,
 * dt_bias 1), vocab 248320, tied, RoPE base 1e7).
 * --dtype bf16 writes every tensor as BF16 (rounded to nearest even): half the file, and a
 * file that model.dtype bf16 maps in place (the Llama-3.2-1B shape: 2.5 GB instead of 4.9).
 * --max-position sets max_position_embeddings (default 2048), the longest sequence lorafit
 * trains the model on. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/rng.h"
#include "tensor/tensor.h"
#include "trainer/store/store.h"

typedef struct {
    const char *arch;
    int hidden, inter, layers, heads, kv, vocab;
    bool tied;
    int head_dim, window; /* 0: hidden / heads; Gemma 3's sliding window (0: 512) */
    int lk, lv, ldim;     /* Qwen3.5's linear key / value heads and their dim (0: 16, 16, 128) */
} Shape;

/* Approximately normal: the sum of 4 uniforms, rescaled to unit variance. */
static float normalish(Rng *r) {
    double s = rng_uniform(r) + rng_uniform(r) + rng_uniform(r) + rng_uniform(r) - 2.0;
    return (float)(s * 1.7320508075688772);
}

static int usage(void) {
    fprintf(stderr, "usage: make_model --out DIR [--preset "
                    "tiny|smollm-135m|qwen3-0.6b|gemma3-1b|qwen3.5-0.8b] "
                    "[--arch llama|qwen2|mistral|qwen3|gemma3_text|qwen3_5_text] [--hidden H] "
                    "[--intermediate I] [--layers L] [--heads NH] [--kv-heads NKV] "
                    "[--head-dim D] [--vocab V] [--tied] [--window W] [--std SIGMA] [--seed S] "
                    "[--dtype f32|bf16] [--max-position P]\n");
    return 2;
}

int main(int argc, char **argv) {
    Shape s = {"llama", 64, 172, 2, 8, 4, 512, false, 0, 0, 0, 0, 0};
    const char *out = NULL;
    unsigned long long seed = 1;
    float std = 0.02f; /* of every weight matrix, as Hugging Face's initializer_range */
    bool bf16 = false;
    int max_position = 2048;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--tied") == 0) {
            s.tied = true;
            continue;
        }
        if (!v) return usage();
        i++;
        if (strcmp(a, "--out") == 0)
            out = v;
        else if (strcmp(a, "--arch") == 0)
            s.arch = v;
        else if (strcmp(a, "--hidden") == 0)
            s.hidden = atoi(v);
        else if (strcmp(a, "--intermediate") == 0)
            s.inter = atoi(v);
        else if (strcmp(a, "--layers") == 0)
            s.layers = atoi(v);
        else if (strcmp(a, "--heads") == 0)
            s.heads = atoi(v);
        else if (strcmp(a, "--kv-heads") == 0)
            s.kv = atoi(v);
        else if (strcmp(a, "--head-dim") == 0)
            s.head_dim = atoi(v);
        else if (strcmp(a, "--window") == 0)
            s.window = atoi(v);
        else if (strcmp(a, "--vocab") == 0)
            s.vocab = atoi(v);
        else if (strcmp(a, "--seed") == 0)
            seed = strtoull(v, NULL, 10);
        else if (strcmp(a, "--max-position") == 0)
            max_position = atoi(v);
        else if (strcmp(a, "--std") == 0)
            std = strtof(v, NULL);
        else if (strcmp(a, "--dtype") == 0 && (strcmp(v, "f32") == 0 || strcmp(v, "bf16") == 0))
            bf16 = strcmp(v, "bf16") == 0;
        else if (strcmp(a, "--preset") == 0 && strcmp(v, "smollm-135m") == 0)
            s = (Shape){"llama", 576, 1536, 30, 9, 3, 49152, true, 0, 0, 0, 0, 0};
        else if (strcmp(a, "--preset") == 0 && strcmp(v, "tiny") == 0)
            s = (Shape){"llama", 64, 172, 2, 8, 4, 512, true, 0, 0, 0, 0, 0};
        else if (strcmp(a, "--preset") == 0 && strcmp(v, "qwen3-0.6b") == 0)
            s = (Shape){"qwen3", 1024, 3072, 28, 16, 8, 151936, true, 128, 0, 0, 0, 0};
        else if (strcmp(a, "--preset") == 0 && strcmp(v, "gemma3-1b") == 0)
            s = (Shape){"gemma3_text", 1152, 6912, 26, 4, 1, 262144, true, 256, 512, 0, 0, 0};
        else if (strcmp(a, "--preset") == 0 && strcmp(v, "qwen3.5-0.8b") == 0)
            s = (Shape){"qwen3_5_text", 1024, 3584, 24, 8, 2, 248320, true, 256, 0, 16, 16, 128};
        else
            return usage();
    }
    enum { LLAMA, QWEN2, MISTRAL, QWEN3, GEMMA3, QWEN35, ARCHS };
    const char *archs[ARCHS][2] = {
        {"llama", "LlamaForCausalLM"},        {"qwen2", "Qwen2ForCausalLM"},
        {"mistral", "MistralForCausalLM"},    {"qwen3", "Qwen3ForCausalLM"},
        {"gemma3_text", "Gemma3ForCausalLM"}, {"qwen3_5_text", "Qwen3_5ForCausalLM"}};
    int ai = -1;
    for (int i = 0; i < ARCHS; i++)
        if (strcmp(s.arch, archs[i][0]) == 0) ai = i;
    if (!s.head_dim && s.heads > 0) s.head_dim = s.hidden / s.heads;
    if (!s.window) s.window = 512;
    bool gemma = ai == GEMMA3, q35 = ai == QWEN35, qk_norms = ai == QWEN3 || gemma || q35;
    bool unit_offset = gemma || q35; /* (1 + w) norms: identity at 0 */
    if (!s.lk) s.lk = 16, s.lv = 16, s.ldim = 128;
    if (!out || ai < 0 || s.hidden < 2 || s.inter < 1 || s.layers < 1 || s.heads < 1 || s.kv < 1 ||
        s.heads % s.kv || s.head_dim < 2 || s.head_dim % 2 || s.vocab < 1 || s.window < 1 ||
        max_position < 1 || (!qk_norms && s.head_dim * s.heads != s.hidden))
        return usage();
    char err[1024], path[4096];
    if (fsio_mkdirs(out, err, sizeof err) != 0) {
        fprintf(stderr, "make_model: %s\n", err);
        return 1;
    }
    int64_t c = s.hidden, d = s.head_dim, q = s.heads * d, kv = s.kv * d, ff = s.inter;
    /* Every tensor's shape, then one allocation for all of them. */
    struct {
        char name[96];
        int ndim;
        int64_t shape[3];
        bool norm;
    } t[8 + 16 * 64];
    int n = 0;
#define ADD(nd, a, b, isnorm, ...)                                                                 \
    do {                                                                                           \
        snprintf(t[n].name, sizeof t[n].name, __VA_ARGS__);                                        \
        t[n].ndim = nd, t[n].shape[0] = a, t[n].shape[1] = b, t[n].shape[2] = 1;                   \
        t[n].norm = isnorm;                                                                        \
        n++;                                                                                       \
    } while (0)
    if (s.layers > 64) return usage();
    ADD(2, s.vocab, c, false, "model.embed_tokens.weight");
    ADD(1, c, 0, true, "model.norm.weight");
    if (!s.tied) ADD(2, s.vocab, c, false, "lm_head.weight");
    for (int l = 0; l < s.layers; l++) {
        ADD(1, c, 0, true, "model.layers.%d.input_layernorm.weight", l);
        ADD(1, c, 0, true, "model.layers.%d.post_attention_layernorm.weight", l);
        if (q35 && (l + 1) % 4 != 0) { /* a Gated DeltaNet layer (full_attention_interval 4) */
            int64_t lk = (int64_t)s.lk * s.ldim, lv = (int64_t)s.lv * s.ldim;
            ADD(2, 2 * lk + lv, c, false, "model.layers.%d.linear_attn.in_proj_qkv.weight", l);
            ADD(2, lv, c, false, "model.layers.%d.linear_attn.in_proj_z.weight", l);
            ADD(2, s.lv, c, false, "model.layers.%d.linear_attn.in_proj_b.weight", l);
            ADD(2, s.lv, c, false, "model.layers.%d.linear_attn.in_proj_a.weight", l);
            ADD(2, c, lv, false, "model.layers.%d.linear_attn.out_proj.weight", l);
            ADD(3, 2 * lk + lv, 1, false, "model.layers.%d.linear_attn.conv1d.weight", l);
            t[n - 1].shape[2] = 4; /* kernel 4 */
            ADD(1, s.lv, 0, false, "model.layers.%d.linear_attn.A_log", l);
            ADD(1, s.lv, 0, false, "model.layers.%d.linear_attn.dt_bias", l);
            ADD(1, s.ldim, 0, true, "model.layers.%d.linear_attn.norm.weight", l);
        } else {
            ADD(2, q35 ? 2 * q : q, c, false, "model.layers.%d.self_attn.q_proj.weight", l);
            ADD(2, kv, c, false, "model.layers.%d.self_attn.k_proj.weight", l);
            ADD(2, kv, c, false, "model.layers.%d.self_attn.v_proj.weight", l);
            ADD(2, c, q, false, "model.layers.%d.self_attn.o_proj.weight", l);
            if (qk_norms) {
                ADD(1, d, 0, true, "model.layers.%d.self_attn.q_norm.weight", l);
                ADD(1, d, 0, true, "model.layers.%d.self_attn.k_norm.weight", l);
            }
        }
        ADD(2, ff, c, false, "model.layers.%d.mlp.gate_proj.weight", l);
        ADD(2, ff, c, false, "model.layers.%d.mlp.up_proj.weight", l);
        ADD(2, c, ff, false, "model.layers.%d.mlp.down_proj.weight", l);
        if (gemma) {
            ADD(1, c, 0, true, "model.layers.%d.pre_feedforward_layernorm.weight", l);
            ADD(1, c, 0, true, "model.layers.%d.post_feedforward_layernorm.weight", l);
        }
        if (ai == QWEN2) {
            ADD(1, q, 0, false, "model.layers.%d.self_attn.q_proj.bias", l);
            ADD(1, kv, 0, false, "model.layers.%d.self_attn.k_proj.bias", l);
            ADD(1, kv, 0, false, "model.layers.%d.self_attn.v_proj.bias", l);
        }
    }
    size_t total = 0, largest = 0;
    for (int i = 0; i < n; i++) {
        size_t numel =
            (size_t)t[i].shape[0] * (size_t)(t[i].ndim >= 2 ? t[i].shape[1] * t[i].shape[2] : 1);
        total += numel;
        largest = numel > largest ? numel : largest;
    }
    /* F32: one allocation for every tensor. BF16: the tensors' BF16 bits, each drawn in F32
     * into one scratch tensor first (the same draws as the F32 file, rounded). */
    float *data = malloc((bf16 ? largest : total) * sizeof *data);
    uint16_t *half = bf16 ? malloc(total * sizeof *half) : NULL;
    StWriter *w = st_writer_new();
    if (!data || (bf16 && !half) || !w) {
        fprintf(stderr, "make_model: out of memory (%zu parameters)\n", total);
        return 1;
    }
    Rng rng;
    rng_seed(&rng, seed, 0);
    float *p = data;
    uint16_t *h = half;
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        size_t numel =
            (size_t)t[i].shape[0] * (size_t)(t[i].ndim >= 2 ? t[i].shape[1] * t[i].shape[2] : 1);
        bool bias = strstr(t[i].name, ".bias") != NULL;
        /* the DeltaNet's norm.weight is a plain w (1); A_log 0 (A = 1), dt_bias 1 (HF's init) */
        bool plain = strstr(t[i].name, "linear_attn.norm") || strstr(t[i].name, "dt_bias");
        bool zero = (unit_offset && !plain && t[i].norm) || strstr(t[i].name, "A_log");
        for (size_t k = 0; k < numel; k++)
            p[k] = zero        ? 0.0f
                   : plain     ? 1.0f
                   : t[i].norm ? 1.0f
                   : bias      ? 0.0f
                               : std * normalish(&rng);
        if (bf16) {
            tensor_float_to_bf16_array(h, p, (int64_t)numel);
            rc = st_writer_add(w, t[i].name, ST_BF16, t[i].ndim, t[i].shape, h, err, sizeof err);
            h += numel;
        } else {
            rc = st_writer_add(w, t[i].name, ST_F32, t[i].ndim, t[i].shape, p, err, sizeof err);
            p += numel;
        }
    }
    snprintf(path, sizeof path, "%s/model.safetensors", out);
    if (rc == 0) rc = st_writer_save(w, path, err, sizeof err);
    st_writer_free(w);
    free(data);
    free(half);
    if (rc == 0) {
        json_t *cfg = json_pack(
            "{s:[s], s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:f, s:f, s:s, s:b, s:i, s:i, s:s}",
            "architectures", archs[ai][1], "model_type", archs[ai][0], "hidden_size", (int)c,
            "intermediate_size", (int)ff, "num_hidden_layers", s.layers, "num_attention_heads",
            s.heads, "num_key_value_heads", s.kv, "vocab_size", s.vocab, "max_position_embeddings",
            max_position, "rms_norm_eps", 1e-5, "rope_theta", 10000.0, "hidden_act", "silu",
            "tie_word_embeddings", s.tied, "bos_token_id", 1, "eos_token_id", 2, "torch_dtype",
            bf16 ? "bfloat16" : "float32");
        if (qk_norms) json_object_set_new(cfg, "head_dim", json_integer(d));
        if (qk_norms) { /* Qwen3's and Gemma 3's */
            json_object_set_new(cfg, "rope_theta", json_real(1e6));
            json_object_set_new(cfg, "rms_norm_eps", json_real(1e-6));
        }
        if (q35) { /* Qwen3.5-0.8B's other settings */
            json_object_set_new(cfg, "rope_theta", json_real(1e7));
            json_object_set_new(cfg, "full_attention_interval", json_integer(4));
            json_object_set_new(cfg, "linear_num_key_heads", json_integer(s.lk));
            json_object_set_new(cfg, "linear_num_value_heads", json_integer(s.lv));
            json_object_set_new(cfg, "linear_key_head_dim", json_integer(s.ldim));
            json_object_set_new(cfg, "linear_value_head_dim", json_integer(s.ldim));
            json_object_set_new(cfg, "linear_conv_kernel_dim", json_integer(4));
        }
        if (gemma) {
            json_object_set_new(cfg, "hidden_activation", json_string("gelu_pytorch_tanh"));
            json_object_set_new(cfg, "hidden_act", json_string("gelu_pytorch_tanh"));
            json_object_set_new(cfg, "sliding_window", json_integer(s.window));
            json_object_set_new(cfg, "sliding_window_pattern", json_integer(6));
            json_object_set_new(cfg, "query_pre_attn_scalar", json_integer(d));
            json_object_set_new(cfg, "rope_local_base_freq", json_real(10000.0));
            json_object_set_new(cfg, "final_logit_softcapping", json_real(30.0));
        }
        char *text = json_dumps(cfg, JSON_INDENT(2));
        snprintf(path, sizeof path, "%s/config.json", out);
        rc = text ? fsio_write_file(path, text, strlen(text), err, sizeof err) : -1;
        free(text);
        json_decref(cfg);
    }
    if (rc != 0) {
        fprintf(stderr, "make_model: %s\n", err);
        return 1;
    }
    printf("make_model: wrote %s (%zu parameters)\n", out, total);
    return 0;
}
