/* tests/test_gguf_base.c — a .gguf file as model.path (trainer/model/gguf_base.c,
 * gguf_config.c): the inverse of lorafit's own GGUF writer.
 *
 * A Hugging Face model written as an F32 GGUF (gguf_export_model, what `lorafit merge
 * --format gguf` writes) and loaded back is the same model: the same config, and a first
 * step with the same loss and LoRA gradients, bit for bit — the F32 weights are the same
 * floats (read in place, q/k rows un-permuted for arch llama), and the norms llama.cpp
 * stores as 1 + w (Gemma) come back as fl(1 + w) - 1, to which the op adds 1 again, exactly
 * (Sterbenz) while 1 + w >= 0.5. Gemma 3 with query_pre_attn_scalar != head_dim is the
 * exception: the writer folds the scale into q_norm in double and the reader keeps
 * llama.cpp's scale, so that model agrees to rounding (1e-6 on the loss, 1e-5 on the
 * gradients). A GGUF whose linears are Q8_0 / Q4_K blocks (quantized here by lorafit's
 * reference quantizer, the blocks llama-quantize writes) is the HF base with model.quantize
 * of that type: the same blocks, the same step. */
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tensor/tensor.h"
#include "tests/test_train_util.h"
#include "tests/test_util.h"
#include "trainer/model/model.h"
#include "trainer/store/store.h"

/* A random model of make_model's arch with qwen3-untied's tokenizer (vocab 320), which the
 * GGUF writer needs; rows of 256 and 512, which every K-quant holds. */
static void make_hf(const char *dir, const char *arch) {
    char cmd[8192];
    char *tok = tt_repo_path("tests/data/train/qwen3-untied/model");
    snprintf(cmd, sizeof cmd,
             "'%s/make_model' --out '%s' --arch %s --hidden 256 --intermediate 512 --layers 2 "
             "--heads 4 --kv-heads 2 --vocab 320 --seed 7 --dtype f32 && ln -s '%s/tokenizer.json' "
             "'%s/tokenizer_config.json' '%s/'",
             test_tools_dir(), dir, arch, tok, tok, dir);
    free(tok);
    ck_assert_msg(test_run(cmd, "/dev/null") == 0, "failed: %s", cmd);
}

/* model_dir as an F32 GGUF at path, by lorafit's writer. */
static void export_f32(const char *model_dir, const char *path) {
    char err[2048];
    Model *m = model_load(model_dir, err, sizeof err);
    ck_assert_msg(m != NULL, "%s", err);
    GgufReport rep;
    ck_assert_msg(gguf_export_model(m, NULL, model_dir, NULL, GGML_TYPE_F32, path, &rep, err,
                                    sizeof err) == 0,
                  "%s", err);
    model_free(m);
}

/* The configs agree on everything the model computes. */
static void same_config(const ModelConfig *a, const ModelConfig *b, const char *what) {
    ck_assert_msg(a->family == b->family, "%s: family", what);
    ck_assert(a->hidden_size == b->hidden_size && a->intermediate_size == b->intermediate_size);
    ck_assert(a->num_hidden_layers == b->num_hidden_layers && a->vocab_size == b->vocab_size);
    ck_assert(a->num_attention_heads == b->num_attention_heads);
    ck_assert(a->num_key_value_heads == b->num_key_value_heads);
    ck_assert(a->head_dim == b->head_dim && a->rotary_dim == b->rotary_dim);
    ck_assert_msg(a->max_position_embeddings == b->max_position_embeddings, "%s: positions", what);
    ck_assert_msg((float)a->rms_norm_eps == (float)b->rms_norm_eps, "%s: eps", what);
    ck_assert_msg(a->rope_theta == b->rope_theta, "%s: rope_theta", what);
    ck_assert_msg(a->rope_scaling.linear == b->rope_scaling.linear &&
                      (!a->rope_scaling.linear || a->rope_scaling.factor == b->rope_scaling.factor),
                  "%s: rope scaling", what);
    ck_assert_msg(a->rope_local_theta == b->rope_local_theta, "%s: local theta", what);
    ck_assert_msg(a->tie_word_embeddings == b->tie_word_embeddings, "%s: tied", what);
    ck_assert(a->qkv_bias == b->qkv_bias && a->o_bias == b->o_bias);
    ck_assert_msg(a->attn_softcap == b->attn_softcap && a->final_softcap == b->final_softcap,
                  "%s: soft-caps %g %g vs %g %g", what, a->attn_softcap, a->final_softcap,
                  b->attn_softcap, b->final_softcap);
    for (int l = 0; l < a->num_hidden_layers; l++)
        ck_assert_msg(hf_layer_window(a, l) == hf_layer_window(b, l),
                      "%s: layer %d window %d vs %d", what, l, hf_layer_window(a, l),
                      hf_layer_window(b, l));
}

typedef struct Step {
    double loss;
    float *grads;
    size_t n;
} Step;

/* The first step on m: a LoRA of r 4 on every linear with every A and B random (seeded: the
 * same values for any model of the config), a batch of 2 x 24 random ids. */
static Step first_step(const Model *m) {
    char err[1024];
    LoraSpec spec = {.r = 4, .alpha = 8, .targets = LORA_ALL};
    Lora *lora = lora_create(m, &spec, err, sizeof err);
    ck_assert_msg(lora != NULL, "%s", err);
    size_t n;
    float *p = lora_params(lora, &n);
    uint64_t rng = 99;
    for (size_t i = 0; i < n; i++) p[i] = test_rand_uniform(&rng, -0.05f, 0.05f);
    enum { B = 2, T = 24 };
    int32_t ids[B * T], targets[B * T];
    int v = model_config(m)->vocab_size;
    for (int i = 0; i < B * T; i++) ids[i] = (int32_t)(test_rand_u64(&rng) % (uint64_t)v);
    for (int i = 0; i < B * T; i++) targets[i] = i % T == T - 1 ? -100 : ids[i + 1];
    Graph *g = graph_create();
    Tensor *h = model_forward_hidden(m, lora, g, ids, NULL, NULL, B, T, 1);
    int64_t count = 0;
    Tensor *loss = h ? model_loss(m, g, h, targets, &count) : NULL;
    ck_assert_msg(loss != NULL && count > 0, "%s", graph_error(g));
    ck_assert_int_eq(graph_backward(g, loss, 1.0f / (float)count), 0);
    Step s = {.loss = loss->data[0] / (double)count, .n = n};
    s.grads = malloc(n * sizeof *s.grads);
    memcpy(s.grads, lora_grads(lora, &n), n * sizeof *s.grads);
    graph_destroy(g);
    lora_free(lora);
    return s;
}

/* The steps agree: bit for bit (tol 0), or the loss within tol relative and every gradient
 * within 10 tol of the gradient norm. */
static void same_step(Step a, Step b, double tol, const char *what) {
    ck_assert(a.n == b.n);
    if (tol == 0) {
        ck_assert_msg(a.loss == b.loss, "%s: loss %.17g vs %.17g", what, a.loss, b.loss);
        ck_assert_msg(memcmp(a.grads, b.grads, a.n * sizeof(float)) == 0,
                      "%s: the LoRA gradients differ", what);
        return;
    }
    ck_assert_msg(fabs(a.loss - b.loss) <= tol * fabs(b.loss), "%s: loss %.17g vs %.17g", what,
                  a.loss, b.loss);
    double d2 = 0, r2 = 0;
    for (size_t i = 0; i < a.n; i++) {
        d2 += ((double)a.grads[i] - b.grads[i]) * ((double)a.grads[i] - b.grads[i]);
        r2 += (double)b.grads[i] * b.grads[i];
    }
    ck_assert_msg(sqrt(d2) <= 10 * tol * sqrt(r2), "%s: gradients differ by %g relative", what,
                  sqrt(d2 / r2));
}

/* HF directory vs its F32 GGUF: config and first step (tol as same_step's). */
static void check_round_trip(const char *model_dir, const char *gguf, double tol,
                             const char *what) {
    char err[2048];
    export_f32(model_dir, gguf);
    Model *hf = model_load(model_dir, err, sizeof err);
    ck_assert_msg(hf != NULL, "%s", err);
    Model *gg = model_load(gguf, err, sizeof err);
    ck_assert_msg(gg != NULL, "%s: %s", what, err);
    same_config(model_config(gg), model_config(hf), what);
    const ModelConfig *ca = model_config(gg), *cb = model_config(hf);
    double fa[512], fb[512];
    hf_rope_inv_freq(ca, fa);
    hf_rope_inv_freq(cb, fb);
    for (int i = 0; i < ca->rotary_dim / 2; i++)
        ck_assert_msg(fabs(fa[i] - fb[i]) <= 1e-6 * fb[i], "%s: inv_freq[%d] %.10g vs %.10g", what,
                      i, fa[i], fb[i]);
    ck_assert_msg(fabs(hf_rope_attention_factor(ca) / hf_rope_attention_factor(cb) - 1) < 1e-6 &&
                      fabs(hf_query_scale(ca, 100) / hf_query_scale(cb, 100) - 1) < 1e-6,
                  "%s: RoPE's attention factor or query scale", what);
    ck_assert(model_param_count(gg) == model_param_count(hf));
    ck_assert_msg(strncmp(model_base_identity(gg), "gguf ", 5) == 0, "%s", model_base_identity(gg));
    ck_assert_str_eq(model_base_identity(hf), "");
    Step a = first_step(gg), b = first_step(hf);
    same_step(a, b, tol, what);
    free(a.grads);
    free(b.grads);
    model_free(gg);
    model_free(hf);
}

START_TEST(test_f32_gguf_bases_give_their_hf_models_first_step_bit_for_bit) {
    char *dir = test_tmpdir(), model[4200], gguf[4200];
    const char *archs[] = {"llama", "qwen2", "qwen3", "gemma3_text"};
    for (int i = 0; i < 4; i++) {
        snprintf(model, sizeof model, "%s/%s", dir, archs[i]);
        snprintf(gguf, sizeof gguf, "%s/%s.gguf", dir, archs[i]);
        make_hf(model, archs[i]);
        check_round_trip(model, gguf, 0, archs[i]);
    }
    /* Gemma 2: soft-caps, sliding layers, tied head (the training fixture's model) */
    char *fx = tt_repo_path("tests/data/train/gemma2-tied/model");
    snprintf(gguf, sizeof gguf, "%s/gemma2.gguf", dir);
    check_round_trip(fx, gguf, 0, "gemma2");
    free(fx);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* The training fixtures of the other archs lorafit writes, with their quirks: OLMo 2's
 * post-norms and whole-projection q/k norms, SmolLM3's NoPE layers (every fourth, what
 * llama.cpp assumes), Granite's multipliers (float32 in the file: to rounding), and Phi-4-mini
 * (arch phi3: fused qkv / gate_up, partial RoPE, longrope factors whose attention factor is
 * float32 in the file: to rounding). */
START_TEST(test_f32_gguf_bases_of_the_other_archs) {
    static const struct {
        const char *fixture;
        double tol;
    } cases[] = {{"olmo2-untied", 0},         {"smollm3-nope", 0},       {"granite-untied", 1e-6},
                 {"phi4mini-longrope", 1e-6}, {"ministral3-yarn", 1e-6}, {"qwen35-gguf", 1e-6}};
    char *dir = test_tmpdir(), gguf[4200], rel[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(rel, sizeof rel, "tests/data/train/%s/model", cases[i].fixture);
        char *fx = tt_repo_path(rel);
        snprintf(gguf, sizeof gguf, "%s/%s.gguf", dir, cases[i].fixture);
        check_round_trip(fx, gguf, cases[i].tol, cases[i].fixture);
        free(fx);
    }
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* Gemma 3 with linear RoPE scaling, layer types of period 3 and query_pre_attn_scalar 24 for
 * head_dim 16 (folded into q_norm by the writer): the same model to rounding. */
START_TEST(test_gemma3_gguf_with_a_folded_attention_scale_agrees_to_rounding) {
    char *dir = test_tmpdir(), gguf[4200];
    char *fx = tt_repo_path("tests/data/train/gemma3-tied/model");
    snprintf(gguf, sizeof gguf, "%s/gemma3.gguf", dir);
    check_round_trip(fx, gguf, 1e-6, "gemma3 folded");
    free(fx);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* Llama 3 RoPE: the writer stores it as rope_freqs factors (LlamaModel.
 * generate_extra_tensors) and the reader divides the frequencies by them as llama.cpp does:
 * transformers' llama3 frequencies to rounding (the factors are float32), and the same step
 * to 1e-6. original_max_position_embeddings 64 puts the head's 32 frequencies in all three
 * bands (kept, smoothed, divided by 8). */
START_TEST(test_llama3_rope_factors_give_transformers_frequencies) {
    char *dir = test_tmpdir(), model[4200], gguf[4200], path[4300], err[2048];
    snprintf(model, sizeof model, "%s/llama3", dir);
    snprintf(gguf, sizeof gguf, "%s/llama3.gguf", dir);
    make_hf(model, "llama");
    snprintf(path, sizeof path, "%s/config.json", model);
    json_t *cfg = json_load_file(path, 0, NULL);
    ck_assert(cfg != NULL);
    json_object_set_new(cfg, "rope_scaling",
                        json_pack("{s:s, s:f, s:f, s:f, s:i}", "rope_type", "llama3", "factor", 8.0,
                                  "low_freq_factor", 1.0, "high_freq_factor", 4.0,
                                  "original_max_position_embeddings", 64));
    ck_assert_int_eq(json_dump_file(cfg, path, 0), 0);
    json_decref(cfg);
    check_round_trip(model, gguf, 1e-6, "llama3 rope");
    Model *hf = model_load(model, err, sizeof err), *gg = model_load(gguf, err, sizeof err);
    ck_assert_msg(hf && gg, "%s", err);
    const ModelConfig *a = model_config(gg), *b = model_config(hf);
    ck_assert(a->rope_scaling.gguf_factors && !a->rope_scaling.llama3 && b->rope_scaling.llama3);
    double fa[128], fb[128], plain = 0, scaled = 0;
    hf_rope_inv_freq(a, fa);
    hf_rope_inv_freq(b, fb);
    for (int i = 0; i < a->rotary_dim / 2; i++) {
        ck_assert_msg(fabs(fa[i] - fb[i]) <= 1e-6 * fb[i], "inv_freq[%d] %.10g vs %.10g", i, fa[i],
                      fb[i]);
        double base = 1.0 / pow(b->rope_theta, 2.0 * i / b->rotary_dim);
        plain += fabs(fb[i] - base) < 1e-12 * base, scaled += fabs(fb[i] * 8 - base) < 1e-9 * base;
    }
    ck_assert_msg(plain > 0 && scaled > 0 && plain + scaled < a->rotary_dim / 2,
                  "the bands: %g kept, %g divided", plain, scaled);
    model_free(hf);
    model_free(gg);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- quantized GGUF bases ----------------------------------------------------------- */

static bool is_linear_name(const char *name) {
    static const char *const leaves[] = {
        ".attn_q.weight",   ".attn_k.weight", ".attn_v.weight",  ".attn_output.weight",
        ".ffn_gate.weight", ".ffn_up.weight", ".ffn_down.weight"};
    for (size_t i = 0; i < sizeof leaves / sizeof leaves[0]; i++)
        if (strncmp(name, "blk.", 4) == 0 && strstr(name, leaves[i])) return true;
    return false;
}

/* src's metadata and tensors into dst, the layers' linear matrices quantized to `type` row by
 * row (norms, embeddings and output as they are): what llama-quantize writes for them without
 * an importance matrix. */
/* Every key-value of f into w (the types lorafit's writer and llama-quantize use). */
static void copy_metadata(const GgufFile *f, GgufWriter *w) {
    char err[1024];
    for (int i = 0; i < gguf_kv_total(f); i++) {
        const GgufKv *kv = gguf_kv_at(f, i);
        int64_t iv;
        double dv;
        const char *s;
        size_t len;
        int rc = -1;
        if (kv->type == GGUF_TYPE_STRING && gguf_kv_str(kv, &s, &len)) {
            char *z = strndup(s, len);
            rc = gguf_set_str(w, kv->key, z, err, sizeof err);
            free(z);
        } else if (kv->type == GGUF_TYPE_UINT32 && gguf_kv_int(kv, &iv)) {
            rc = gguf_set_u32(w, kv->key, (uint32_t)iv, err, sizeof err);
        } else if (kv->type == GGUF_TYPE_INT32 && gguf_kv_int(kv, &iv)) {
            rc = gguf_set_i32(w, kv->key, (int32_t)iv, err, sizeof err);
        } else if (kv->type == GGUF_TYPE_FLOAT32 && gguf_kv_float(kv, &dv)) {
            rc = gguf_set_f32(w, kv->key, (float)dv, err, sizeof err);
        } else if (kv->type == GGUF_TYPE_BOOL && gguf_kv_int(kv, &iv)) {
            rc = gguf_set_bool(w, kv->key, iv != 0, err, sizeof err);
        } else if (kv->type == GGUF_TYPE_ARRAY) {
            size_t n = (size_t)kv->n;
            if (kv->arr_type == GGUF_TYPE_STRING) {
                const char **v = malloc(n * sizeof *v);
                size_t *lens = malloc(n * sizeof *lens);
                for (size_t e = 0; e < n; e++) ck_assert(gguf_elem_str(kv, e, &v[e], &lens[e]));
                rc = gguf_set_arr_str(w, kv->key, v, lens, n, err, sizeof err);
                free(v);
                free(lens);
            } else if (kv->arr_type == GGUF_TYPE_FLOAT32) {
                float *v = malloc(n * sizeof *v);
                for (size_t e = 0; e < n; e++)
                    ck_assert(gguf_elem_float(kv, e, &dv)), v[e] = (float)dv;
                rc = gguf_set_arr_f32(w, kv->key, v, n, err, sizeof err);
                free(v);
            } else if (kv->arr_type == GGUF_TYPE_INT32) {
                int32_t *v = malloc(n * sizeof *v);
                for (size_t e = 0; e < n; e++)
                    ck_assert(gguf_elem_int(kv, e, &iv)), v[e] = (int32_t)iv;
                rc = gguf_set_arr_i32(w, kv->key, v, n, err, sizeof err);
                free(v);
            }
        }
        ck_assert_msg(rc == 0, "key %s (%s): %s", kv->key, gguf_type_name(kv->type), err);
    }
}

static void requantize_as(const char *src, const char *dst, GgmlType type, bool dequantized,
                          bool embeddings);

static void requantize(const char *src, const char *dst, GgmlType type) {
    requantize_as(src, dst, type, false, false);
}

/* requantize, or with dequantized: the same linears stored F32 holding the blocks' values;
 * with embeddings, token_embd and output in that type too (as llama-quantize's mixes have
 * them). */
static void requantize_as(const char *src, const char *dst, GgmlType type, bool dequantized,
                          bool embeddings) {
    char err[2048];
    GgufFile *f = gguf_open(src, err, sizeof err);
    ck_assert_msg(f != NULL, "%s", err);
    GgufWriter *w = gguf_writer_new();
    copy_metadata(f, w);
    int n = gguf_tensor_total(f);
    void **bufs = calloc((size_t)n, sizeof *bufs);
    for (int i = 0; i < n; i++) {
        const GgufTensorInfo *t = gguf_tensor_at(f, i);
        ck_assert(t->type == GGML_TYPE_F32);
        bool embedding =
            strcmp(t->name, "token_embd.weight") == 0 || strcmp(t->name, "output.weight") == 0;
        GgmlType to = is_linear_name(t->name) || (embeddings && embedding) ? type : GGML_TYPE_F32;
        const void *data = t->data;
        if (to != GGML_TYPE_F32) {
            size_t row = ggml_row_bytes(to, t->ne[0]);
            ck_assert(row > 0);
            uint8_t *q = bufs[i] = malloc(row * (size_t)t->ne[1]);
            for (int64_t r = 0; r < t->ne[1]; r++)
                ck_assert(quant_quantize_row(to, (const float *)t->data + r * t->ne[0], q + r * row,
                                             t->ne[0]) == 0);
            data = q;
            if (dequantized) {
                float *d = malloc((size_t)(t->ne[0] * t->ne[1]) * sizeof *d);
                for (int64_t r = 0; r < t->ne[1]; r++)
                    ck_assert(quant_dequantize_row(to, q + r * row, d + r * t->ne[0], t->ne[0]) ==
                              0);
                free(q);
                data = bufs[i] = d;
                to = GGML_TYPE_F32;
            }
        }
        ck_assert_msg(gguf_add_tensor(w, t->name, to, t->n_dims, t->ne, data, NULL, NULL, err,
                                      sizeof err) == 0,
                      "%s", err);
    }
    ck_assert_msg(gguf_writer_save(w, dst, err, sizeof err) == 0, "%s", err);
    gguf_writer_free(w);
    for (int i = 0; i < n; i++) free(bufs[i]);
    free(bufs);
    gguf_close(f);
}

/* Q8_0 and Q4_K linears in the GGUF (q/k rows in llama.cpp's permuted order): every linear is
 * exactly model.quantize's blocks of the HF base, the embeddings stay F32, and the first step
 * is the quantized HF base's, bit for bit. */
START_TEST(test_quantized_gguf_base_is_the_hf_base_with_model_quantize) {
    char *dir = test_tmpdir(), model[4200], f32[4200], q[4200], err[2048];
    snprintf(model, sizeof model, "%s/llama", dir);
    snprintf(f32, sizeof f32, "%s/llama.gguf", dir);
    make_hf(model, "llama");
    export_f32(model, f32);
    const GgmlType types[] = {GGML_TYPE_Q8_0, GGML_TYPE_Q4_K};
    for (int t = 0; t < 2; t++) {
        snprintf(q, sizeof q, "%s/llama-%s.gguf", dir, ggml_type_name(types[t]));
        requantize(f32, q, types[t]);
        Model *gg = model_load(q, err, sizeof err);
        ck_assert_msg(gg != NULL, "%s", err);
        Model *hf = model_load_quantized(model, MODEL_F32, types[t], err, sizeof err);
        ck_assert_msg(hf != NULL, "%s", err);
        const ModelConfig *c = model_config(gg);
        for (int l = 0; l < c->num_hidden_layers; l++)
            for (int mod = 0; mod <= MODULE_DOWN; mod++) {
                const Tensor *a = model_weight(gg, l, (ModelModule)mod),
                             *b = model_weight(hf, l, (ModelModule)mod);
                ck_assert_msg(a->quant && a->quant_type == types[t], "layer %d %s: not %s", l,
                              model_module_name((ModelModule)mod), ggml_type_name(types[t]));
                size_t bytes = (size_t)a->shape[0] * ggml_row_bytes(types[t], a->shape[1]);
                ck_assert_msg(memcmp(a->quant, b->quant, bytes) == 0,
                              "%s layer %d %s: other blocks than model.quantize's",
                              ggml_type_name(types[t]), l, model_module_name((ModelModule)mod));
            }
        ck_assert(model_lm_head(gg)->data != NULL && model_lm_head(gg)->quant == NULL);
        ck_assert(model_weight_bytes(gg) < model_weight_bytes(hf) + 4096 &&
                  model_weight_bytes(gg) + 4096 > model_weight_bytes(hf));
        Step a = first_step(gg), b = first_step(hf);
        same_step(a, b, 0, ggml_type_name(types[t]));
        free(a.grads);
        free(b.grads);
        model_free(hf);
        /* with BF16 matrices around them the blocks stay as they are */
        Model *bf = model_load_dtype(q, MODEL_BF16, err, sizeof err);
        ck_assert_msg(bf != NULL, "%s", err);
        ck_assert(model_weight(bf, 0, MODULE_Q)->quant_type == types[t]);
        ck_assert(model_lm_head(bf)->bf16 != NULL);
        model_free(bf);
        model_free(gg);
    }
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* Every type lorafit's quantizer writes, as a GGUF's linears (q/k permuted), every other one
 * with token_embd and output in it too: the file loads those blocks (F16 and BF16 converted to
 * F32 once; quantized embeddings and output read by op_embedding and the fused lm_head) and
 * its first step is that of an F32 GGUF holding their values. Bit for bit: the products dequantize
 * tiles of W and feed the same sgemm (measured bit-identical; test_quantize_load holds the same to
 * 1e-6). */
START_TEST(test_each_stored_type_trains_as_its_dequantized_values) {
    char *dir = test_tmpdir(), model[4200], f32[4200], typed[4200], deq[4200], err[2048];
    snprintf(model, sizeof model, "%s/llama", dir);
    snprintf(f32, sizeof f32, "%s/llama.gguf", dir);
    make_hf(model, "llama");
    export_f32(model, f32);
    const GgmlType types[] = {GGML_TYPE_F16,  GGML_TYPE_BF16, GGML_TYPE_Q4_0, GGML_TYPE_Q4_1,
                              GGML_TYPE_Q5_0, GGML_TYPE_Q5_1, GGML_TYPE_Q5_K, GGML_TYPE_Q6_K};
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        const char *name = ggml_type_name(types[t]);
        snprintf(typed, sizeof typed, "%s/%s.gguf", dir, name);
        snprintf(deq, sizeof deq, "%s/%s-deq.gguf", dir, name);
        bool embeddings = t % 2 == 1; /* BF16, Q4_1, Q5_1, Q6_K: token_embd and output too */
        requantize_as(f32, typed, types[t], false, embeddings);
        requantize_as(f32, deq, types[t], true, embeddings);
        Model *a = model_load(typed, err, sizeof err), *b = model_load(deq, err, sizeof err);
        ck_assert_msg(a && b, "%s: %s", name, err);
        const Tensor *w = model_weight(a, 1, MODULE_K);
        bool float_type = types[t] == GGML_TYPE_F16 || types[t] == GGML_TYPE_BF16;
        ck_assert_msg(float_type ? w->data != NULL : w->quant_type == types[t], "%s", name);
        if (embeddings && !float_type)
            ck_assert_msg(model_lm_head(a)->quant_type == types[t], "%s: output", name);
        Step sa = first_step(a), sb = first_step(b);
        same_step(sa, sb, 0, name);
        free(sa.grads);
        free(sb.grads);
        model_free(a);
        model_free(b);
    }
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* src with every quantized tensor dequantized: an F32 GGUF of the values the blocks hold. */
static void dequantize_file(const char *src, const char *dst) {
    char err[2048];
    GgufFile *f = gguf_open(src, err, sizeof err);
    ck_assert_msg(f != NULL, "%s", err);
    GgufWriter *w = gguf_writer_new();
    copy_metadata(f, w);
    int n = gguf_tensor_total(f);
    float **bufs = calloc((size_t)n, sizeof *bufs);
    for (int i = 0; i < n; i++) {
        const GgufTensorInfo *t = gguf_tensor_at(f, i);
        size_t row = ggml_row_bytes(t->type, t->ne[0]);
        int64_t rows = (int64_t)(t->nbytes / row);
        float *d = bufs[i] = malloc((size_t)(rows * t->ne[0]) * sizeof *d);
        for (int64_t r = 0; r < rows; r++)
            ck_assert(quant_dequantize_row(t->type, (const uint8_t *)t->data + (size_t)r * row,
                                           d + r * t->ne[0], t->ne[0]) == 0);
        ck_assert_msg(gguf_add_tensor(w, t->name, GGML_TYPE_F32, t->n_dims, t->ne, d, NULL, NULL,
                                      err, sizeof err) == 0,
                      "%s", err);
    }
    ck_assert_msg(gguf_writer_save(w, dst, err, sizeof err) == 0, "%s", err);
    gguf_writer_free(w);
    for (int i = 0; i < n; i++) free(bufs[i]);
    free(bufs);
    gguf_close(f);
}

/* llama-quantize's own Q2_K, Q3_K_M, Q4_K_M and Q5_K_M of a small llama
 * (tests/data/gguf_base/README.md): every linear in the file's type (q/k un-permuted: whole
 * rows), the tied head Q6_K, and the first step bit for bit that of an F32 GGUF holding the
 * dequantized values; near the F32 model's (the quantization error only). */
START_TEST(test_llama_quantize_mixes_load_in_their_types) {
    char *dir = test_tmpdir(), model[4200], deq[4200], cmd[8192], err[2048], rel[256];
    snprintf(model, sizeof model, "%s/m", dir);
    snprintf(cmd, sizeof cmd,
             "'%s/make_model' --out '%s' --arch llama --hidden 256 --intermediate 256 --layers 1 "
             "--heads 2 --kv-heads 1 --vocab 320 --seed 31 --dtype f32 --tied",
             test_tools_dir(), model);
    ck_assert(test_run(cmd, "/dev/null") == 0);
    Model *f32 = model_load(model, err, sizeof err);
    ck_assert_msg(f32 != NULL, "%s", err);
    Step ref = first_step(f32);
    static const struct {
        const char *file;
        GgmlType q, o, v; /* q k gate up, o, v */
        double loss_tol;
    } mixes[] = {{"Q2_K", GGML_TYPE_Q2_K, GGML_TYPE_Q3_K, GGML_TYPE_Q3_K, 0.05},
                 {"Q3_K_M", GGML_TYPE_Q3_K, GGML_TYPE_Q4_K, GGML_TYPE_Q5_K, 0.02},
                 {"Q4_K_M", GGML_TYPE_Q4_K, GGML_TYPE_Q4_K, GGML_TYPE_Q6_K, 0.01},
                 {"Q5_K_M", GGML_TYPE_Q5_K, GGML_TYPE_Q5_K, GGML_TYPE_Q6_K, 0.01}};
    for (size_t i = 0; i < sizeof mixes / sizeof mixes[0]; i++) {
        snprintf(rel, sizeof rel, "tests/data/gguf_base/%s.gguf", mixes[i].file);
        char *path = tt_repo_path(rel);
        snprintf(deq, sizeof deq, "%s/%s-deq.gguf", dir, mixes[i].file);
        dequantize_file(path, deq);
        Model *q = model_load(path, err, sizeof err), *d = model_load(deq, err, sizeof err);
        ck_assert_msg(q && d, "%s: %s", mixes[i].file, err);
        /* q k v o gate up (the README lists down too) */
        const GgmlType want[] = {mixes[i].q, mixes[i].q, mixes[i].v,
                                 mixes[i].o, mixes[i].q, mixes[i].q};
        for (int mod = 0; mod < 6; mod++)
            ck_assert_msg(model_weight(q, 0, (ModelModule)mod)->quant_type == want[mod],
                          "%s %s: %s", mixes[i].file, model_module_name((ModelModule)mod),
                          ggml_type_name(model_weight(q, 0, (ModelModule)mod)->quant_type));
        ck_assert(model_lm_head(q)->quant_type == GGML_TYPE_Q6_K);
        Step a = first_step(q), b = first_step(d);
        same_step(a, b, 0, mixes[i].file);
        ck_assert_msg(fabs(a.loss - ref.loss) < mixes[i].loss_tol * ref.loss,
                      "%s: loss %.6f, the F32 model's %.6f", mixes[i].file, a.loss, ref.loss);
        free(a.grads);
        free(b.grads);
        model_free(q);
        model_free(d);
        free(path);
    }
    free(ref.grads);
    model_free(f32);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- the commands ------------------------------------------------------------------ */

static void write_train_config_with(const char *dir, const char *model, const char *rows,
                                    int max_steps, const char *train_extra) {
    char text[16384];
    int n = snprintf(text, sizeof text,
                     "model:\n  path: %s\nlora:\n  r: 4\n  alpha: 8\n"
                     "data:\n  train: %s\n  seq_len: 32\n  packing: true\n"
                     "train:\n  batch_size: 2\n  max_steps: %d\n  lr: 1.0e-2\n  seed: 5\n"
                     "  precision: f32\n%s"
                     "output:\n  dir: %s/out\n  save_every: 1\nlog:\n  every: 1\n",
                     model, rows, max_steps, train_extra, dir);
    ck_assert(n > 0 && (size_t)n < sizeof text);
    free(tt_write_text(dir, "config.yaml", text));
}

static void write_train_config(const char *dir, const char *model, const char *rows,
                               int max_steps) {
    write_train_config_with(dir, model, rows, max_steps, "");
}

/* The commands on a GGUF base: `lorafit generate --model FILE.gguf` continues as on the
 * Hugging Face model it was made from, `lorafit eval` gives its loss, and a run with
 * gradient checkpointing ends byte-identical to one without. */
START_TEST(test_generate_eval_and_checkpointing_on_a_gguf_base) {
    char *dir = test_tmpdir(), model[4200], gguf[4200], rows[4200], args[16384];
    snprintf(model, sizeof model, "%s/llama", dir);
    snprintf(gguf, sizeof gguf, "%s/llama.gguf", dir);
    snprintf(rows, sizeof rows, "%s/rows.jsonl", dir);
    make_hf(model, "llama");
    export_f32(model, gguf);
    tt_random_rows(rows, 12, 8, 40, 320, 5);
    char *out[2], *loss[2];
    const char *base[2] = {model, gguf};
    for (int k = 0; k < 2; k++) {
        snprintf(args, sizeof args,
                 "generate --model '%s' --prompt-ids '1 2 3' -n 12 --precision f32", base[k]);
        out[k] = tt_run_stdout(dir, args);
        char *run = test_tmpdir();
        write_train_config(run, base[k], rows, 1);
        snprintf(args, sizeof args, "eval '%s/config.yaml' --precision f32", run);
        loss[k] = tt_run_stdout(run, args);
        test_rmtree(run);
        free(run);
    }
    ck_assert_msg(strcmp(out[0], out[1]) == 0, "generate: %s vs %s", out[0], out[1]);
    ck_assert_msg(strstr(loss[0], "eval_loss") && strcmp(loss[0], loss[1]) == 0, "eval: %s vs %s",
                  loss[0], loss[1]);
    char *run[2];
    for (int k = 0; k < 2; k++) {
        run[k] = test_tmpdir();
        write_train_config_with(run[k], gguf, rows, 2, k ? "  gradient_checkpointing: true\n" : "");
        snprintf(args, sizeof args, "train '%s/config.yaml'", run[k]);
        tt_expect(run[k], args, 0, "done: 2 steps");
    }
    tt_assert_same_run(run[0], run[1], "gradient checkpointing on a GGUF base");
    for (int k = 0; k < 2; k++) {
        test_rmtree(run[k]);
        free(run[k]);
        free(out[k]);
        free(loss[k]);
    }
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- refusals --------------------------------------------------------------------- */

static void copy_file(const char *from, const char *to) {
    size_t len;
    char *data = test_read_file(from, &len);
    ck_assert(data != NULL);
    test_write_file(to, data, len);
    free(data);
}

/* A run on base.gguf resumes on the same file, and is refused once base.gguf is another
 * file (same name, same config keys): the file's identity is in the fingerprint. Killed
 * (SIGKILL) after step 2 and resumed, it ends byte-identical to the run without a kill
 * (adapter and metrics). Its adapter
 * exports as a GGUF adapter without --model (from the run's config). */
START_TEST(test_resume_on_another_gguf_file_is_refused) {
    char *dir = test_tmpdir(), model[4200], f32[4200], q8[4200], base[4200], rows[4200];
    snprintf(model, sizeof model, "%s/llama", dir);
    snprintf(f32, sizeof f32, "%s/llama.gguf", dir);
    snprintf(q8, sizeof q8, "%s/llama-q8.gguf", dir);
    snprintf(base, sizeof base, "%s/base.gguf", dir);
    snprintf(rows, sizeof rows, "%s/rows.jsonl", dir);
    make_hf(model, "llama");
    export_f32(model, f32);
    requantize(f32, q8, GGML_TYPE_Q8_0);
    tt_random_rows(rows, 24, 8, 40, 320, 3);
    char args_resume[4400];
    snprintf(args_resume, sizeof args_resume, "train '%s/config.yaml' --resume", dir);
    copy_file(f32, base);
    write_train_config(dir, base, rows, 3);
    char cfg_path[4400], log_path[4400];
    snprintf(cfg_path, sizeof cfg_path, "%s/config.yaml", dir);
    snprintf(log_path, sizeof log_path, "%s/log.txt", dir);
    const char *argv[] = {"train", cfg_path, NULL};
    ck_assert_int_eq(tt_wait(tt_spawn_fault(argv, log_path, "kill:step:2")), 128 + SIGKILL);
    copy_file(q8, base);
    tt_expect(dir, args_resume, 2, "is not the base file the run was trained on");
    copy_file(f32, base);
    tt_expect(dir, args_resume, 0, "resuming from");
    /* ... and ends as a run of 3 steps without the kill */
    char *ref = test_tmpdir(), ref_args[4400];
    write_train_config(ref, base, rows, 3);
    snprintf(ref_args, sizeof ref_args, "train '%s/config.yaml'", ref);
    tt_expect(ref, ref_args, 0, "done: 3 steps");
    tt_assert_same_run(ref, dir, "resumed on the GGUF base");
    test_rmtree(ref);
    free(ref);
    /* the GGUF adapter of a run on a GGUF base: found from the run's config, the tensors of
     * the one for the Hugging Face model it was made from */
    char a[4400], b[4400], args[16384], err[1024];
    snprintf(a, sizeof a, "%s/a.gguf", dir);
    snprintf(b, sizeof b, "%s/b.gguf", dir);
    snprintf(args, sizeof args, "export '%s/out/adapter' --format gguf --out '%s'", dir, a);
    tt_expect(dir, args, 0, "arch llama");
    snprintf(args, sizeof args, "export '%s/out/adapter' --format gguf --model '%s' --out '%s'",
             dir, model, b);
    tt_expect(dir, args, 0, "arch llama");
    GgufFile *fa = gguf_open(a, err, sizeof err), *fb = gguf_open(b, err, sizeof err);
    ck_assert_msg(fa && fb, "%s", err);
    ck_assert_int_eq(gguf_tensor_total(fa), gguf_tensor_total(fb));
    for (int i = 0; i < gguf_tensor_total(fa); i++) {
        const GgufTensorInfo *ta = gguf_tensor_at(fa, i), *tb = gguf_tensor_at(fb, i);
        ck_assert_str_eq(ta->name, tb->name);
        ck_assert(ta->nbytes == tb->nbytes && memcmp(ta->data, tb->data, ta->nbytes) == 0);
    }
    gguf_close(fa);
    gguf_close(fb);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* general.architecture no family loads: refused naming it and the archs that load; a file cut
 * short: refused naming the file (exit 1 or 2), never a crash. */
START_TEST(test_unknown_arch_and_truncated_file_are_refused) {
    char *dir = test_tmpdir(), model[4200], f32[4200], bad[4200], rows[4200], err[2048];
    snprintf(model, sizeof model, "%s/qwen3", dir);
    snprintf(f32, sizeof f32, "%s/qwen3.gguf", dir);
    snprintf(bad, sizeof bad, "%s/bad.gguf", dir);
    snprintf(rows, sizeof rows, "%s/rows.jsonl", dir);
    make_hf(model, "qwen3");
    export_f32(model, f32);
    size_t len;
    char *data = test_read_file(f32, &len);
    char *at = memmem(data, len, "general.architecture", 20);
    ck_assert(at != NULL);
    ck_assert(memcmp(at + 20 + 4 + 8, "qwen3", 5) == 0); /* type u32, length u64, value */
    memcpy(at + 20 + 4 + 8, "bert5", 5);
    test_write_file(bad, data, len);
    ck_assert(model_load(bad, err, sizeof err) == NULL);
    ck_assert_msg(strstr(err, "\"bert5\" is not supported") && strstr(err, "llama, qwen2, qwen3") &&
                      strstr(err, "gemma3"),
                  "%s", err);
    char args_train[4400];
    snprintf(args_train, sizeof args_train, "train '%s/config.yaml'", dir);
    tt_random_rows(rows, 8, 8, 40, 320, 3);
    write_train_config(dir, bad, rows, 1);
    tt_expect(dir, args_train, 1, "is not supported as a base");
    test_write_file(bad, data, len / 2);
    ck_assert(model_load(bad, err, sizeof err) == NULL);
    ck_assert_msg(strstr(err, bad) != NULL, "%s", err);
    int rc = tt_lorafit(dir, args_train);
    char *log = tt_log(dir);
    ck_assert_msg((rc == 1 || rc == 2) && strstr(log, "bad.gguf"), "exit %d: %s", rc, log);
    free(log);
    free(data);
    test_rmtree(dir);
    free(dir);
}
END_TEST

Suite *gguf_base_suite(void) {
    Suite *s = suite_create("gguf_base");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_f32_gguf_bases_give_their_hf_models_first_step_bit_for_bit);
    tcase_add_test(tc, test_f32_gguf_bases_of_the_other_archs);
    tcase_add_test(tc, test_gemma3_gguf_with_a_folded_attention_scale_agrees_to_rounding);
    tcase_add_test(tc, test_llama3_rope_factors_give_transformers_frequencies);
    tcase_add_test(tc, test_quantized_gguf_base_is_the_hf_base_with_model_quantize);
    tcase_add_test(tc, test_each_stored_type_trains_as_its_dequantized_values);
    tcase_add_test(tc, test_llama_quantize_mixes_load_in_their_types);
    tcase_add_test(tc, test_resume_on_another_gguf_file_is_refused);
    tcase_add_test(tc, test_generate_eval_and_checkpointing_on_a_gguf_base);
    tcase_add_test(tc, test_unknown_arch_and_truncated_file_are_refused);
    suite_add_tcase(s, tc);
    return s;
}
