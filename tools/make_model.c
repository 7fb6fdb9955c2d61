/* tools/make_model.c — writes a randomly initialised HF model directory (config.json +
 * model.safetensors, F32) for demos, benchmarks and tests.
 *
 * make_model --out DIR [--preset tiny|smollm-135m|qwen3-0.6b|gemma3-1b|qwen3.5-0.8b|gemma4-e2b]
 *            [--arch llama|qwen2|mistral|qwen3|gemma3_text|qwen3_5_text|gemma4_text] [--hidden H]
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
 * dt_bias 1), vocab 248320, tied, RoPE base 1e7), gemma4-e2b (gemma4_text, Gemma 4 E2B's
 * decoder: hidden 1536, intermediate 6144, 35 layers, every 5th full with head_dim 512 and
 * the others sliding (window 512) with 256, 8/1 heads, plain-w norms, per-layer inputs of 256
 * (a table of 262144 x 35 * 256), the last 4/7 of the layers (20; with --layers L at most
 * L - 5, so that a full layer is left to share from) sharing K and V with their
 * MLP doubled, layer scalars 1, vocab 262144, tied, Gemma4TextConfig's RoPE, soft-cap 30).
 * --dtype bf16 writes every tensor as BF16 (rounded to nearest even): half the file, and a
 * file that model.dtype bf16 maps in place (the Llama-3.2-1B shape: 2.5 GB instead of 4.9).
 * Each tensor is drawn when the file is written (one in memory at a time), from the
 * generator state the tensors before it in the order below leave.
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
    int global_head_dim, ple; /* Gemma 4's full layers' head_dim, per-layer input width */
} Shape;

typedef enum { DRAWN, ONES, ZEROS } Init;

/* A tensor to write: its shape, its values, and the generator at its first draw. */
typedef struct {
    char name[96];
    int ndim;
    int64_t shape[3];
    Init init;
    float std;
    Rng rng;
    bool bf16;
} Spec;

/* Approximately normal: the sum of 4 uniforms, rescaled to unit variance. */
static float normalish(Rng *r) {
    double s = rng_uniform(r) + rng_uniform(r) + rng_uniform(r) + rng_uniform(r) - 2.0;
    return (float)(s * 1.7320508075688772);
}

static size_t numel(const Spec *t) {
    return (size_t)t->shape[0] * (size_t)(t->ndim >= 2 ? t->shape[1] * t->shape[2] : 1);
}

/* st_writer_add_fill's callback: the tensor's values, BF16 through a chunk of floats. */
static int fill(void *ctx, void *dst, size_t nbytes, char *err, size_t errlen) {
    const Spec *t = ctx;
    Rng r = t->rng;
    size_t n = numel(t), chunk = t->bf16 ? (size_t)1 << 20 : n;
    float *f = t->bf16 ? malloc(chunk * sizeof *f) : dst;
    (void)nbytes;
    if (!f) return store_error(err, errlen, 0, "make_model: out of memory");
    for (size_t at = 0; at < n; at += chunk) {
        size_t m = n - at < chunk ? n - at : chunk;
        for (size_t k = 0; k < m; k++)
            f[k] = t->init == ZEROS ? 0.0f : t->init == ONES ? 1.0f : t->std * normalish(&r);
        if (t->bf16) tensor_float_to_bf16_array((uint16_t *)dst + at, f, (int64_t)m);
    }
    if (t->bf16) free(f);
    return 0;
}

static int usage(void) {
    fprintf(stderr, "usage: make_model --out DIR [--preset "
                    "tiny|smollm-135m|qwen3-0.6b|gemma3-1b|qwen3.5-0.8b|gemma4-e2b] "
                    "[--arch llama|qwen2|mistral|qwen3|gemma3_text|qwen3_5_text|gemma4_text] "
                    "[--hidden H] "
                    "[--intermediate I] [--layers L] [--heads NH] [--kv-heads NKV] "
                    "[--head-dim D] [--vocab V] [--tied] [--window W] [--std SIGMA] [--seed S] "
                    "[--dtype f32|bf16] [--max-position P]\n");
    return 2;
}

int main(int argc, char **argv) {
    Shape s = {"llama", 64, 172, 2, 8, 4, 512, false, 0, 0, 0, 0, 0, 0, 0};
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
            s = (Shape){"llama", 576, 1536, 30, 9, 3, 49152, true, 0, 0, 0, 0, 0, 0, 0};
        else if (strcmp(a, "--preset") == 0 && strcmp(v, "tiny") == 0)
            s = (Shape){"llama", 64, 172, 2, 8, 4, 512, true, 0, 0, 0, 0, 0, 0, 0};
        else if (strcmp(a, "--preset") == 0 && strcmp(v, "qwen3-0.6b") == 0)
            s = (Shape){"qwen3", 1024, 3072, 28, 16, 8, 151936, true, 128, 0, 0, 0, 0, 0, 0};
        else if (strcmp(a, "--preset") == 0 && strcmp(v, "gemma3-1b") == 0)
            s = (Shape){"gemma3_text", 1152, 6912, 26, 4, 1, 262144, true, 256, 512, 0, 0, 0, 0, 0};
        else if (strcmp(a, "--preset") == 0 && strcmp(v, "qwen3.5-0.8b") == 0)
            s = (Shape){
                "qwen3_5_text", 1024, 3584, 24, 8, 2, 248320, true, 256, 0, 16, 16, 128, 0, 0};
        else if (strcmp(a, "--preset") == 0 && strcmp(v, "gemma4-e2b") == 0)
            s = (Shape){"gemma4_text", 1536, 6144, 35, 8, 1,   262144, true,
                        256,           512,  0,    0,  0, 512, 256};
        else
            return usage();
    }
    enum { LLAMA, QWEN2, MISTRAL, QWEN3, GEMMA3, QWEN35, GEMMA4, ARCHS };
    const char *archs[ARCHS][2] = {
        {"llama", "LlamaForCausalLM"},        {"qwen2", "Qwen2ForCausalLM"},
        {"mistral", "MistralForCausalLM"},    {"qwen3", "Qwen3ForCausalLM"},
        {"gemma3_text", "Gemma3ForCausalLM"}, {"qwen3_5_text", "Qwen3_5ForCausalLM"},
        {"gemma4_text", "Gemma4ForCausalLM"}};
    int ai = -1;
    for (int i = 0; i < ARCHS; i++)
        if (strcmp(s.arch, archs[i][0]) == 0) ai = i;
    if (!s.head_dim && s.heads > 0) s.head_dim = s.hidden / s.heads;
    if (!s.window) s.window = 512;
    bool g4 = ai == GEMMA4, gemma = ai == GEMMA3 || g4, q35 = ai == QWEN35;
    bool qk_norms = ai == QWEN3 || gemma || q35;
    bool unit_offset = ai == GEMMA3 || q35; /* (1 + w) norms: identity at 0 */
    if (g4 && !s.global_head_dim) s.global_head_dim = 512;
    /* Gemma 4's KV-sharing layers, the last ones: 4/7 of them, leaving layer 4 (the first full
     * one) among those they share from */
    int shared = g4 ? s.layers * 4 / 7 : 0;
    if (shared > s.layers - 5) shared = s.layers > 5 ? s.layers - 5 : 0;
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
    int64_t c = s.hidden;
    /* Every tensor's shape and values, in the order the generator draws them. */
    Spec *t = calloc(8 + 20 * 64, sizeof *t);
    int n = 0;
    if (!t) return 1;
#define ADD(nd, a, b, how, ...)                                                                    \
    do {                                                                                           \
        snprintf(t[n].name, sizeof t[n].name, __VA_ARGS__);                                        \
        t[n].ndim = nd, t[n].shape[0] = a, t[n].shape[1] = b, t[n].shape[2] = 1;                   \
        t[n].init = how;                                                                           \
        n++;                                                                                       \
    } while (0)
    Init NORM = unit_offset ? ZEROS : ONES; /* a norm weight at its identity */
    if (s.layers > 64) return usage();
    ADD(2, s.vocab, c, DRAWN, "model.embed_tokens.weight");
    ADD(1, c, 0, NORM, "model.norm.weight");
    if (!s.tied) ADD(2, s.vocab, c, DRAWN, "lm_head.weight");
    if (g4) { /* the per-layer inputs: table, context projection, its norm */
        ADD(2, s.vocab, (int64_t)s.layers * s.ple, DRAWN, "model.embed_tokens_per_layer.weight");
        ADD(2, (int64_t)s.layers * s.ple, c, DRAWN, "model.per_layer_model_projection.weight");
        ADD(1, s.ple, 0, NORM, "model.per_layer_projection_norm.weight");
    }
    for (int l = 0; l < s.layers; l++) {
        bool full = g4 && ((l + 1) % 5 == 0 || l == s.layers - 1), shares = l >= s.layers - shared;
        int64_t d = full ? s.global_head_dim : s.head_dim, q = s.heads * d, kv = s.kv * d;
        int64_t ff = s.inter * (shares ? 2 : 1);
        ADD(1, c, 0, NORM, "model.layers.%d.input_layernorm.weight", l);
        ADD(1, c, 0, NORM, "model.layers.%d.post_attention_layernorm.weight", l);
        if (q35 && (l + 1) % 4 != 0) { /* a Gated DeltaNet layer (full_attention_interval 4) */
            int64_t lk = (int64_t)s.lk * s.ldim, lv = (int64_t)s.lv * s.ldim;
            ADD(2, 2 * lk + lv, c, DRAWN, "model.layers.%d.linear_attn.in_proj_qkv.weight", l);
            ADD(2, lv, c, DRAWN, "model.layers.%d.linear_attn.in_proj_z.weight", l);
            ADD(2, s.lv, c, DRAWN, "model.layers.%d.linear_attn.in_proj_b.weight", l);
            ADD(2, s.lv, c, DRAWN, "model.layers.%d.linear_attn.in_proj_a.weight", l);
            ADD(2, c, lv, DRAWN, "model.layers.%d.linear_attn.out_proj.weight", l);
            ADD(3, 2 * lk + lv, 1, DRAWN, "model.layers.%d.linear_attn.conv1d.weight", l);
            t[n - 1].shape[2] = 4; /* kernel 4 */
            /* A_log 0 (A = 1), dt_bias 1 (HF's init); the gated norm is a plain w */
            ADD(1, s.lv, 0, ZEROS, "model.layers.%d.linear_attn.A_log", l);
            ADD(1, s.lv, 0, ONES, "model.layers.%d.linear_attn.dt_bias", l);
            ADD(1, s.ldim, 0, ONES, "model.layers.%d.linear_attn.norm.weight", l);
        } else {
            ADD(2, q35 ? 2 * q : q, c, DRAWN, "model.layers.%d.self_attn.q_proj.weight", l);
            if (!shares) {
                ADD(2, kv, c, DRAWN, "model.layers.%d.self_attn.k_proj.weight", l);
                ADD(2, kv, c, DRAWN, "model.layers.%d.self_attn.v_proj.weight", l);
            }
            ADD(2, c, q, DRAWN, "model.layers.%d.self_attn.o_proj.weight", l);
            if (qk_norms) {
                ADD(1, d, 0, NORM, "model.layers.%d.self_attn.q_norm.weight", l);
                if (!shares) ADD(1, d, 0, NORM, "model.layers.%d.self_attn.k_norm.weight", l);
            }
        }
        ADD(2, ff, c, DRAWN, "model.layers.%d.mlp.gate_proj.weight", l);
        ADD(2, ff, c, DRAWN, "model.layers.%d.mlp.up_proj.weight", l);
        ADD(2, c, ff, DRAWN, "model.layers.%d.mlp.down_proj.weight", l);
        if (gemma) {
            ADD(1, c, 0, NORM, "model.layers.%d.pre_feedforward_layernorm.weight", l);
            ADD(1, c, 0, NORM, "model.layers.%d.post_feedforward_layernorm.weight", l);
        }
        if (g4) {
            ADD(2, s.ple, c, DRAWN, "model.layers.%d.per_layer_input_gate.weight", l);
            ADD(2, c, s.ple, DRAWN, "model.layers.%d.per_layer_projection.weight", l);
            ADD(1, c, 0, NORM, "model.layers.%d.post_per_layer_input_norm.weight", l);
            ADD(1, 1, 0, ONES, "model.layers.%d.layer_scalar", l);
        }
        if (ai == QWEN2) {
            ADD(1, q, 0, ZEROS, "model.layers.%d.self_attn.q_proj.bias", l);
            ADD(1, kv, 0, ZEROS, "model.layers.%d.self_attn.k_proj.bias", l);
            ADD(1, kv, 0, ZEROS, "model.layers.%d.self_attn.v_proj.bias", l);
        }
    }
    /* Each drawn tensor from where the ones before it leave the generator. */
    Rng rng;
    rng_seed(&rng, seed, 0);
    size_t total = 0;
    StWriter *w = st_writer_new();
    int rc = w ? 0 : -1;
    for (int i = 0; i < n && rc == 0; i++) {
        t[i].rng = rng, t[i].std = std, t[i].bf16 = bf16;
        total += numel(&t[i]);
        if (t[i].init == DRAWN)
            for (size_t k = 4 * numel(&t[i]); k > 0; k--) rng_next(&rng); /* normalish's 4 */
        rc = st_writer_add_fill(w, t[i].name, bf16 ? ST_BF16 : ST_F32, t[i].ndim, t[i].shape, fill,
                                &t[i], err, sizeof err);
    }
    if (!w) snprintf(err, sizeof err, "out of memory");
    snprintf(path, sizeof path, "%s/model.safetensors", out);
    if (rc == 0) rc = st_writer_save(w, path, err, sizeof err);
    st_writer_free(w);
    free(t);
    int64_t d = s.head_dim, ff = s.inter;
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
        if (g4) { /* Gemma 4 E2B's other settings (configuration_gemma4.py's keys) */
            json_t *types = json_array();
            for (int l = 0; l < s.layers; l++)
                json_array_append_new(types, json_string((l + 1) % 5 && l < s.layers - 1
                                                             ? "sliding_attention"
                                                             : "full_attention"));
            json_object_set_new(cfg, "layer_types", types);
            json_object_set_new(cfg, "global_head_dim", json_integer(s.global_head_dim));
            json_object_set_new(cfg, "num_global_key_value_heads", json_null());
            json_object_set_new(cfg, "attention_k_eq_v", json_false());
            json_object_set_new(cfg, "hidden_size_per_layer_input", json_integer(s.ple));
            json_object_set_new(cfg, "vocab_size_per_layer_input", json_integer(s.vocab));
            json_object_set_new(cfg, "num_kv_shared_layers", json_integer(shared));
            json_object_set_new(cfg, "use_double_wide_mlp", json_true());
            json_object_set_new(cfg, "enable_moe_block", json_false());
            json_object_set_new(cfg, "rope_parameters",
                                json_pack("{s:{s:s, s:f}, s:{s:s, s:f, s:f}}", "sliding_attention",
                                          "rope_type", "default", "rope_theta", 10000.0,
                                          "full_attention", "rope_type", "proportional",
                                          "partial_rotary_factor", 0.25, "rope_theta", 1e6));
        }
        if (gemma) {
            json_object_set_new(cfg, "hidden_activation", json_string("gelu_pytorch_tanh"));
            json_object_set_new(cfg, "hidden_act", json_string("gelu_pytorch_tanh"));
            json_object_set_new(cfg, "sliding_window", json_integer(s.window));
        }
        if (ai == GEMMA3) {
            json_object_set_new(cfg, "sliding_window_pattern", json_integer(6));
            json_object_set_new(cfg, "query_pre_attn_scalar", json_integer(d));
            json_object_set_new(cfg, "rope_local_base_freq", json_real(10000.0));
        }
        if (gemma) json_object_set_new(cfg, "final_logit_softcapping", json_real(30.0));
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
