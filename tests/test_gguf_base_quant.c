/* tests/test_gguf_base_quant.c — GGUF bases in the ggml block types (trainer/model/gguf_base.c):
 * a file's quantized linears, embeddings and output are read in their blocks and train as
 * the same file in F32 holding the blocks' values, within fp32 rounding (QUANT_VS_F32); linears
 * quantized by lorafit's
 * reference quantizer are model.quantize's blocks of the Hugging Face base; llama-quantize's
 * own mixes (tests/data/gguf_base) load in their types. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/tensor.h"
#include "tests/test_gguf_base_util.h"
#include "tests/test_train_util.h"
#include "tests/test_util.h"
#include "trainer/model/model.h"
#include "trainer/store/store.h"

/* Q8_0 and Q4_K linears in the GGUF (q/k rows in llama.cpp's permuted order): every linear is
 * exactly model.quantize's blocks of the HF base, the embeddings stay F32, and the first step
 * is the quantized HF base's, bit for bit. */
START_TEST(test_quantized_gguf_base_is_the_hf_base_with_model_quantize) {
    char *dir = test_tmpdir(), model[4200], f32[4200], q[4200], err[2048];
    snprintf(model, sizeof model, "%s/llama", dir);
    snprintf(f32, sizeof f32, "%s/llama.gguf", dir);
    gb_make_hf(model, "llama");
    gb_export_f32(model, f32);
    const GgmlType types[] = {GGML_TYPE_Q8_0, GGML_TYPE_Q4_K};
    for (int t = 0; t < 2; t++) {
        snprintf(q, sizeof q, "%s/llama-%s.gguf", dir, ggml_type_name(types[t]));
        gb_requantize(f32, q, types[t], false, false);
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
                /* q and k in place in llama.cpp's row order, read through quant_row_of */
                size_t row = ggml_row_bytes(types[t], a->shape[1]);
                for (int64_t r = 0; r < a->shape[0]; r++) {
                    int64_t stored = a->quant_row_of ? a->quant_row_of[r] : r;
                    ck_assert_msg(memcmp((const char *)a->quant + (size_t)stored * row,
                                         (const char *)b->quant + (size_t)r * row, row) == 0,
                                  "%s layer %d %s row %lld: other blocks than model.quantize's",
                                  ggml_type_name(types[t]), l, model_module_name((ModelModule)mod),
                                  (long long)r);
                }
                ck_assert(!a->quant_row_of == (mod != MODULE_Q && mod != MODULE_K));
            }
        ck_assert(model_lm_head(gg)->data != NULL && model_lm_head(gg)->quant == NULL);
        ck_assert(model_weight_bytes(gg) < model_weight_bytes(hf) + 4096 &&
                  model_weight_bytes(gg) + 4096 > model_weight_bytes(hf));
        GbStep a = gb_first_step(gg), b = gb_first_step(hf);
        gb_same_step(a, b, 0, ggml_type_name(types[t]));
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
 * its first step is that of an F32 GGUF holding their values, within fp32 rounding: the
 * products dequantize tiles of W into single-threaded sgemms, an F32 weight goes whole to
 * oneDNN's f32 matmul (tensor/matmul.h: mm_f32), and the two sum in different orders (they
 * were bit-identical while both were OpenBLAS's sgemm). */
#define QUANT_VS_F32 1e-6
START_TEST(test_each_stored_type_trains_as_its_dequantized_values) {
    char *dir = test_tmpdir(), model[4200], f32[4200], typed[4200], deq[4200], err[2048];
    snprintf(model, sizeof model, "%s/llama", dir);
    snprintf(f32, sizeof f32, "%s/llama.gguf", dir);
    gb_make_hf(model, "llama");
    gb_export_f32(model, f32);
    const GgmlType types[] = {GGML_TYPE_F16,  GGML_TYPE_BF16, GGML_TYPE_Q4_0, GGML_TYPE_Q4_1,
                              GGML_TYPE_Q5_0, GGML_TYPE_Q5_1, GGML_TYPE_Q5_K, GGML_TYPE_Q6_K};
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        const char *name = ggml_type_name(types[t]);
        snprintf(typed, sizeof typed, "%s/%s.gguf", dir, name);
        snprintf(deq, sizeof deq, "%s/%s-deq.gguf", dir, name);
        bool embeddings = t % 2 == 1; /* BF16, Q4_1, Q5_1, Q6_K: token_embd and output too */
        gb_requantize(f32, typed, types[t], false, embeddings);
        gb_requantize(f32, deq, types[t], true, embeddings);
        Model *a = model_load(typed, err, sizeof err), *b = model_load(deq, err, sizeof err);
        ck_assert_msg(a && b, "%s: %s", name, err);
        const Tensor *w = model_weight(a, 1, MODULE_K);
        bool float_type = types[t] == GGML_TYPE_F16 || types[t] == GGML_TYPE_BF16;
        ck_assert_msg(float_type ? w->data != NULL : w->quant_type == types[t], "%s", name);
        if (embeddings && !float_type)
            ck_assert_msg(model_lm_head(a)->quant_type == types[t], "%s: output", name);
        GbStep sa = gb_first_step(a), sb = gb_first_step(b);
        gb_same_step(sa, sb, QUANT_VS_F32, name);
        free(sa.grads);
        free(sb.grads);
        model_free(a);
        model_free(b);
    }
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* llama-quantize's own Q2_K, Q3_K_M, Q4_K_M and Q5_K_M of a small llama
 * (tests/data/gguf_base/README.md): every linear in the file's type (q/k un-permuted: whole
 * rows), the tied head Q6_K, and the first step that of an F32 GGUF holding the dequantized
 * values (within fp32 rounding, QUANT_VS_F32); near the F32 model's (the quantization error
 * only). */
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
    GbStep ref = gb_first_step(f32);
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
        gb_dequantize_file(path, deq);
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
        GbStep a = gb_first_step(q), b = gb_first_step(d);
        gb_same_step(a, b, QUANT_VS_F32, mixes[i].file);
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

Suite *gguf_base_quant_suite(void) {
    Suite *s = suite_create("gguf_base_quant");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_quantized_gguf_base_is_the_hf_base_with_model_quantize);
    tcase_add_test(tc, test_each_stored_type_trains_as_its_dequantized_values);
    tcase_add_test(tc, test_llama_quantize_mixes_load_in_their_types);
    suite_add_tcase(s, tc);
    return s;
}
