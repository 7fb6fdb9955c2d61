/* tests/test_model_bf16.c — model.dtype bf16: frozen weight matrices kept BF16 in memory.
 * A BF16 file gives logits and LoRA gradients bit-identical to loading it as F32; an F32 file
 * is rounded once (within BF16 precision) into half the bytes; `lorafit train` with
 * model.dtype bf16 on a BF16 model writes the same adapter bytes as with f32. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/test_train_util.h"
#include "tests/test_util.h"
#include "trainer/model/model.h"

#define BF16_MODEL "tests/data/train/llama-bf16-tied/model"
#define BF16_ADAPT "tests/data/train/llama-bf16-tied/init_adapter"
#define F32_MODEL  "tests/data/train/qwen2-untied/model"
#define BATCH      2
#define SEQ        12
#define N_ROWS     (BATCH * SEQ)

/* Logits (N, V) of fixed tokens, and when with_lora the LoRA gradients of sum(logits * w). */
typedef struct {
    float *logits;
    int64_t n_logits;
    float *grads;
    size_t n_grads;
} ForwardRun;

/* The logits (N, V) of fixed tokens in g, model_forward_eval's tensor. */
static Tensor *fixed_logits(const Model *m, const Lora *lora, Graph *g) {
    int32_t ids[N_ROWS];
    for (int i = 0; i < N_ROWS; i++) ids[i] = (int32_t)((i * 37 + 5) % model_config(m)->vocab_size);
    Tensor *lg = model_forward_eval(m, lora, g, ids, NULL, NULL, BATCH, SEQ);
    ck_assert(lg != NULL && !graph_failed(g));
    return lg;
}

/* The same without an adapter in a graph of the given precision, copied out. */
static float *plain_logits(const Model *m, TensorPrecision precision, int64_t *n) {
    Graph *g = graph_create();
    ck_assert(g && graph_set_precision(g, precision) == 0);
    Tensor *lg = fixed_logits(m, NULL, g);
    float *out = malloc((size_t)lg->size * sizeof(float));
    memcpy(out, lg->data, (size_t)lg->size * sizeof(float));
    *n = lg->size;
    graph_destroy(g);
    return out;
}

static ForwardRun run_forward(const char *dir, ModelDtype dtype, const char *adapter) {
    char err[1024];
    Model *m = model_load_dtype(dir, dtype, err, sizeof err);
    ck_assert_msg(m != NULL, "%s", err);
    ck_assert_int_eq(model_dtype(m), dtype);
    Lora *lora = NULL;
    if (adapter) {
        LoraSpec spec;
        ck_assert_msg(lora_read_peft_spec(adapter, model_config(m), &spec, err, sizeof err) == 0,
                      "%s", err);
        lora = lora_create(m, &spec, err, sizeof err);
        ck_assert_msg(lora != NULL, "%s", err);
        ck_assert_msg(lora_load_peft(lora, adapter, err, sizeof err) == 0, "%s", err);
    }
    Graph *g = graph_create();
    Tensor *lg = fixed_logits(m, lora, g);
    ForwardRun r = {malloc((size_t)lg->size * sizeof(float)), lg->size, NULL, 0};
    memcpy(r.logits, lg->data, (size_t)lg->size * sizeof(float));
    if (lora) {
        Tensor *w = tensor_new(lg->ndim, lg->shape, false);
        uint64_t seed = 3;
        for (int64_t i = 0; i < w->size; i++) w->data[i] = test_rand_uniform(&seed, -1, 1);
        Tensor *s = op_weighted_sum(g, lg, w);
        ck_assert(s && graph_backward(g, s, 1.0f) == 0);
        float *grads = lora_grads(lora, &r.n_grads);
        r.grads = malloc(r.n_grads * sizeof(float));
        memcpy(r.grads, grads, r.n_grads * sizeof(float));
        tensor_free(w);
    }
    graph_destroy(g);
    lora_free(lora);
    model_free(m);
    return r;
}

static void run_free(ForwardRun *r) {
    free(r->logits);
    free(r->grads);
}

START_TEST(test_bf16_file_gives_bit_identical_logits_in_bf16_memory) {
    ForwardRun f = run_forward(BF16_MODEL, MODEL_F32, NULL);
    ForwardRun h = run_forward(BF16_MODEL, MODEL_BF16, NULL);
    ck_assert_int_eq(f.n_logits, h.n_logits);
    ck_assert_msg(memcmp(f.logits, h.logits, (size_t)f.n_logits * sizeof(float)) == 0,
                  "BF16-in-memory logits differ from F32-in-memory logits of a BF16 file");
    run_free(&f);
    run_free(&h);
}
END_TEST

START_TEST(test_bf16_file_gives_bit_identical_lora_gradients) {
    ForwardRun f = run_forward(BF16_MODEL, MODEL_F32, BF16_ADAPT);
    ForwardRun h = run_forward(BF16_MODEL, MODEL_BF16, BF16_ADAPT);
    ck_assert_int_eq(f.n_grads, h.n_grads);
    ck_assert(f.n_grads > 0);
    ck_assert(memcmp(f.logits, h.logits, (size_t)f.n_logits * sizeof(float)) == 0);
    ck_assert_msg(memcmp(f.grads, h.grads, f.n_grads * sizeof(float)) == 0,
                  "LoRA gradients differ between model.dtype f32 and bf16");
    double norm = 0;
    for (size_t i = 0; i < f.n_grads; i++) norm += fabs(f.grads[i]);
    ck_assert(norm > 0);
    run_free(&f);
    run_free(&h);
}
END_TEST

START_TEST(test_f32_file_in_bf16_memory_within_bf16_precision) {
    ForwardRun f = run_forward(F32_MODEL, MODEL_F32, NULL);
    ForwardRun h = run_forward(F32_MODEL, MODEL_BF16, NULL);
    double max_diff = 0, max_abs = 0;
    for (int64_t i = 0; i < f.n_logits; i++) {
        max_diff = fmax(max_diff, fabs((double)f.logits[i] - h.logits[i]));
        max_abs = fmax(max_abs, fabs((double)f.logits[i]));
    }
    /* BF16 keeps 8 significant bits: weights move by up to 2^-9 relative. */
    ck_assert_msg(max_diff < 0.05 * fmax(1.0, max_abs),
                  "BF16 logits differ from F32 by %g (max %g)", max_diff, max_abs);
    ck_assert_msg(max_diff > 0, "BF16 rounding changed nothing: weights were not converted?");
    run_free(&f);
    run_free(&h);
}
END_TEST

/* The elements of the matrices a step's products read: the layers' linears and lm_head (the
 * embedding when tied). */
static size_t product_matrix_elements(const Model *m) {
    size_t n = (size_t)model_lm_head(m)->size;
    for (int l = 0; l < model_config(m)->num_hidden_layers; l++)
        for (int mod = 0; mod < MODULE_COUNT; mod++) {
            const Tensor *w = model_weight(m, l, (ModelModule)mod);
            if (w && (w->data || w->bf16)) n += (size_t)w->size;
        }
    return n;
}

START_TEST(test_bf16_memory_holds_half_the_weight_bytes) {
    char err[1024];
    Model *f = model_load_dtype(F32_MODEL, MODEL_F32, err, sizeof err);
    Model *h = model_load_dtype(F32_MODEL, MODEL_BF16, err, sizeof err);
    ck_assert_msg(f && h, "%s", err);
    size_t params = model_param_count(f);
    ck_assert_uint_eq(model_param_count(h), params);
    ck_assert_uint_eq(model_weight_bytes(f), params * sizeof(float));
    /* F32 used in place from the mapping, but for the matrices the products read: those are
     * copied into huge-page memory (weights.c) */
    ck_assert_uint_eq(model_converted_bytes(f), product_matrix_elements(f) * sizeof(float));
    /* Matrices at 2 bytes, norms and biases (a few hundred floats) at 4. */
    ck_assert(model_weight_bytes(h) < params * sizeof(uint16_t) + params / 50 * sizeof(float));
    ck_assert(model_weight_bytes(h) >= params * sizeof(uint16_t));
    ck_assert(model_converted_bytes(h) <= model_weight_bytes(h));
    ck_assert(model_converted_bytes(h) > model_weight_bytes(h) * 9 / 10);
    model_free(f);
    model_free(h);
    /* A BF16 file is converted as a whole in F32 memory; in BF16 memory its matrices are
     * copied into huge-page memory, the rest used in place or converted to F32. */
    Model *b = model_load_dtype(BF16_MODEL, MODEL_BF16, err, sizeof err);
    Model *b32 = model_load_dtype(BF16_MODEL, MODEL_F32, err, sizeof err);
    ck_assert_msg(b && b32, "%s", err);
    ck_assert(model_converted_bytes(b32) > model_param_count(b32) * sizeof(float) * 9 / 10);
    ck_assert_uint_ge(model_converted_bytes(b), product_matrix_elements(b) * sizeof(uint16_t));
    ck_assert_uint_le(model_converted_bytes(b), model_weight_bytes(b));
    ck_assert(model_weight_bytes(b) * 2 < model_weight_bytes(b32) * 11 / 10);
    model_free(b);
    model_free(b32);
}
END_TEST

/* model_make_lora_room copies the adapted BF16 matrices with room for the LoRA and gives the
 * old copies' pages back: the adapted ones (q and v here) get room r, the others none, and
 * every weight keeps its values (each linear merged with a LoRA of random A and B, and the
 * model's logits in both precisions, bit-identical to a model without room). */
START_TEST(test_lora_room_keeps_every_weight) {
    char err[1024];
    Model *p = model_load_dtype(BF16_MODEL, MODEL_BF16, err, sizeof err);
    Model *m = model_load_dtype(BF16_MODEL, MODEL_BF16, err, sizeof err);
    ck_assert_msg(p && m, "%s", err);
    LoraSpec spec = {4, 8.0f, false, 0.0f, LORA_Q | LORA_V};
    Lora *lora = lora_create(m, &spec, err, sizeof err);
    ck_assert_msg(lora != NULL, "%s", err);
    size_t np;
    float *params = lora_params(lora, &np);
    uint64_t seed = 5;
    for (size_t i = 0; i < np; i++) params[i] = test_rand_uniform(&seed, -0.5, 0.5);
    ck_assert_msg(model_make_lora_room(m, lora, err, sizeof err) == 0, "%s", err);
    const ModelConfig *c = model_config(m);
    int adapted = 0;
    for (int l = 0; l < c->num_hidden_layers; l++)
        for (int mod = 0; mod < MODULE_COUNT; mod++) {
            const Tensor *w = model_weight(m, l, (ModelModule)mod);
            if (!w->bf16) continue;
            Tensor *A, *B;
            bool has = lora_module(lora, l, (ModelModule)mod, &A, &B);
            adapted += has;
            ck_assert_int_eq(w->room, has ? spec.r : 0);
            float *a = malloc((size_t)w->size * sizeof(float)), *b = malloc((size_t)w->size * 4);
            ck_assert(a && b);
            merge_linear(m, lora, l, (ModelModule)mod, a);
            merge_linear(p, lora, l, (ModelModule)mod, b);
            ck_assert_msg(memcmp(a, b, (size_t)w->size * sizeof(float)) == 0, "layer %d module %d",
                          l, mod);
            free(a), free(b);
        }
    ck_assert_int_eq(adapted, 2 * c->num_hidden_layers);
    for (int prec = 0; prec < 2; prec++) {
        TensorPrecision tp = prec ? TENSOR_PRECISION_BF16 : TENSOR_PRECISION_F32;
        int64_t n1, n2;
        float *l1 = plain_logits(m, tp, &n1), *l2 = plain_logits(p, tp, &n2);
        ck_assert(n1 == n2 && memcmp(l1, l2, (size_t)n1 * sizeof(float)) == 0);
        free(l1), free(l2);
    }
    lora_free(lora);
    model_free(m), model_free(p);
}
END_TEST

/* `lorafit train` of the llama-bf16-tied fixture for 3 steps with the given model.dtype;
 * returns the output directory's parent (caller removes and frees). */
static char *train_with_dtype(const char *dtype) {
    char model[4096], fixture[4096];
    ck_assert(realpath(BF16_MODEL, model) != NULL);
    ck_assert(realpath("tests/data/train/llama-bf16-tied", fixture) != NULL);
    char *dir = test_tmpdir();
    char cfg[20000];
    snprintf(cfg, sizeof cfg,
             "model:\n  path: %s\n"
             "lora:\n  r: 8\n  alpha: 8\n  dropout: 0.1\n  target_modules: [k_proj, o_proj, "
             "gate_proj, up_proj]\n"
             "  init_from: %s/init_adapter\n"
             "data:\n  train: %s/train.jsonl\n  seq_len: 24\n"
             "train:\n  batch_size: 2\n  max_steps: 3\n  lr: 0.002\n"
             "output:\n  dir: %s/out\n  save_every: 0\n"
             "log:\n  every: 1\n",
             model, fixture, fixture, dir);
    char *cfg_path = tt_write_text(dir, "config.yaml", cfg);
    char args[20400];
    snprintf(args, sizeof args, "train '%s' --set model.dtype=%s", cfg_path, dtype);
    int rc = tt_lorafit(dir, args);
    char *log = tt_log(dir);
    ck_assert_msg(rc == 0, "lorafit train (model.dtype %s) failed (%d):\n%s", dtype, rc, log);
    free(log);
    free(cfg_path);
    return dir;
}

START_TEST(test_train_bf16_dtype_writes_the_same_adapter_bytes) {
    char *f = train_with_dtype("f32");
    char *h = train_with_dtype("bf16");
    char a[4400], b[4400];
    snprintf(a, sizeof a, "%s/out/adapter/adapter_model.safetensors", f);
    snprintf(b, sizeof b, "%s/out/adapter/adapter_model.safetensors", h);
    ck_assert_msg(tt_same_bytes(a, b), "adapters differ between model.dtype f32 and bf16");
    snprintf(a, sizeof a, "%s/out", f);
    snprintf(b, sizeof b, "%s/out", h);
    json_t *ma = tt_metrics(a), *mb = tt_metrics(b);
    double la[8], lb[8];
    ck_assert_int_eq(tt_losses(ma, la, 8), 3);
    ck_assert_int_eq(tt_losses(mb, lb, 8), 3);
    for (int i = 0; i < 3; i++) ck_assert(la[i] == lb[i]);
    json_decref(ma);
    json_decref(mb);
    test_rmtree(f);
    test_rmtree(h);
    free(f);
    free(h);
}
END_TEST

Suite *model_bf16_suite(void) {
    Suite *s = suite_create("model_bf16");
    TCase *tc = tcase_create("bf16");
    tcase_add_test(tc, test_bf16_file_gives_bit_identical_logits_in_bf16_memory);
    tcase_add_test(tc, test_bf16_file_gives_bit_identical_lora_gradients);
    tcase_add_test(tc, test_f32_file_in_bf16_memory_within_bf16_precision);
    tcase_add_test(tc, test_bf16_memory_holds_half_the_weight_bytes);
    tcase_add_test(tc, test_lora_room_keeps_every_weight);
    tcase_add_test(tc, test_train_bf16_dtype_writes_the_same_adapter_bytes);
    suite_add_tcase(s, tc);
    return s;
}
