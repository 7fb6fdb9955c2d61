/* tests/test_gguf_base_util.c — see test_gguf_base_util.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/tensor.h"
#include "tests/test_gguf_base_util.h"
#include "tests/test_train_util.h"
#include "tests/test_util.h"
#include "trainer/model/lora.h"

/* A random model of make_model's arch with qwen3-untied's tokenizer (vocab 320), which the
 * GGUF writer needs; rows of 256 and 512, which every K-quant holds. */
void gb_make_hf(const char *dir, const char *arch) {
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
void gb_export_f32(const char *model_dir, const char *path) {
    char err[2048];
    Model *m = model_load(model_dir, err, sizeof err);
    ck_assert_msg(m != NULL, "%s", err);
    GgufReport rep;
    ck_assert_msg(gguf_export_model(m, NULL, model_dir, NULL, GGML_TYPE_F32, path, &rep, err,
                                    sizeof err) == 0,
                  "%s", err);
    model_free(m);
}

/* The first step on m: a LoRA of r 4 on every linear with every A and B random (seeded: the
 * same values for any model of the config), a batch of 2 x 24 random ids. */
GbStep gb_first_step(const Model *m) {
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
    GbStep s = {.loss = loss->data[0] / (double)count, .n = n};
    s.grads = malloc(n * sizeof *s.grads);
    memcpy(s.grads, lora_grads(lora, &n), n * sizeof *s.grads);
    graph_destroy(g);
    lora_free(lora);
    return s;
}

/* The steps agree: bit for bit (tol 0), or the loss within tol relative and every gradient
 * within 10 tol of the gradient norm. */
void gb_same_step(GbStep a, GbStep b, double tol, const char *what) {
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

static bool is_linear_name(const char *name) {
    static const char *const leaves[] = {
        ".attn_q.weight",   ".attn_k.weight", ".attn_v.weight",  ".attn_output.weight",
        ".ffn_gate.weight", ".ffn_up.weight", ".ffn_down.weight"};
    for (size_t i = 0; i < sizeof leaves / sizeof leaves[0]; i++)
        if (strncmp(name, "blk.", 4) == 0 && strstr(name, leaves[i])) return true;
    return false;
}

/* Every key-value of f into w (the types lorafit's writer and llama-quantize use) but those
 * whose key starts with skip_prefix (NULL: none). */
void gb_copy_metadata(const GgufFile *f, GgufWriter *w, const char *skip_prefix) {
    char err[1024];
    for (int i = 0; i < gguf_kv_total(f); i++) {
        const GgufKv *kv = gguf_kv_at(f, i);
        if (skip_prefix && strncmp(kv->key, skip_prefix, strlen(skip_prefix)) == 0) continue;
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

/* See test_gguf_base_util.h. src's metadata and tensors into dst, the layers' linears in
 * `type`; with dequantized: the same linears stored F32 holding the blocks' values;
 * with embeddings, token_embd and output in that type too (as llama-quantize's mixes have
 * them). */
void gb_requantize(const char *src, const char *dst, GgmlType type, bool dequantized,
                   bool embeddings) {
    char err[2048];
    GgufFile *f = gguf_open(src, err, sizeof err);
    ck_assert_msg(f != NULL, "%s", err);
    GgufWriter *w = gguf_writer_new();
    gb_copy_metadata(f, w, NULL);
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

/* src with every quantized tensor dequantized: an F32 GGUF of the values the blocks hold. */
void gb_dequantize_file(const char *src, const char *dst) {
    char err[2048];
    GgufFile *f = gguf_open(src, err, sizeof err);
    ck_assert_msg(f != NULL, "%s", err);
    GgufWriter *w = gguf_writer_new();
    gb_copy_metadata(f, w, NULL);
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

/* src into dst, tensor `name` (none when NULL) stored in `type`, the keys starting with
 * skip_prefix (none when NULL) left out. */
static void rewrite(const char *src, const char *dst, const char *name, GgmlType type,
                    const char *skip_prefix) {
    char err[2048];
    GgufFile *f = gguf_open(src, err, sizeof err);
    ck_assert_msg(f != NULL, "%s", err);
    GgufWriter *w = gguf_writer_new();
    gb_copy_metadata(f, w, skip_prefix);
    uint8_t *q = NULL;
    bool found = false;
    for (int i = 0; i < gguf_tensor_total(f); i++) {
        const GgufTensorInfo *t = gguf_tensor_at(f, i);
        const void *data = t->data;
        GgmlType to = t->type;
        if (name && strcmp(t->name, name) == 0) {
            ck_assert_msg(t->type == GGML_TYPE_F32, "%s is not F32", name);
            size_t row = ggml_row_bytes(type, t->ne[0]);
            int64_t rows = t->n_dims == 1 ? 1 : t->ne[1];
            ck_assert(row > 0);
            data = q = malloc(row * (size_t)rows);
            for (int64_t r = 0; r < rows; r++)
                ck_assert(quant_quantize_row(type, (const float *)t->data + r * t->ne[0],
                                             q + r * row, t->ne[0]) == 0);
            to = type, found = true;
        }
        ck_assert_msg(gguf_add_tensor(w, t->name, to, t->n_dims, t->ne, data, NULL, NULL, err,
                                      sizeof err) == 0,
                      "%s", err);
    }
    ck_assert_msg(found || !name, "%s has no tensor %s", src, name);
    ck_assert_msg(gguf_writer_save(w, dst, err, sizeof err) == 0, "%s", err);
    gguf_writer_free(w);
    free(q);
    gguf_close(f);
}

void gb_retype(const char *src, const char *dst, const char *name, GgmlType type) {
    rewrite(src, dst, name, type, NULL);
}

void gb_without_keys(const char *src, const char *dst, const char *prefix) {
    rewrite(src, dst, NULL, GGML_TYPE_F32, prefix);
}
