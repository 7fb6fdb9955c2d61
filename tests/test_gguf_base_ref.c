/* tests/test_gguf_base_ref.c — GGUF bases made by llama.cpp's llama-quantize in every type
 * lorafit reads (tests/data/gguf_base: pure F32 ... Q5_1 files, and the Q2_K ... Q5_K_M mixes,
 * which hold Q2_K, Q3_K, Q4_K, Q5_K and Q6_K linears) against the float64 PyTorch reference
 * that reads the same file with gguf-py and dequantizes it with gguf-py's numpy code
 * (tests/reference/ref_gguf.py; fixtures in tests/data/gguf_base/ref, commands in its README);
 * and the tensors lorafit cannot use in the type stored, refused by name. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/tensor.h"
#include "tests/test_fixture_util.h"
#include "tests/test_gguf_base_util.h"
#include "tests/test_train_util.h"
#include "tests/test_util.h"
#include "trainer/model/model.h"
#include "trainer/store/store.h"

/* The files, and the type of every matrix of the pure ones (MIX: a mix, whose types are
 * test_gguf_base_quant.c's), the mixes last. */
enum { MIX = -1 };
static const struct {
    const char *file;
    int pure; /* a GgmlType, or MIX */
} FILES[] = {{"F32", GGML_TYPE_F32},   {"F16", GGML_TYPE_F16},   {"BF16", GGML_TYPE_BF16},
             {"Q8_0", GGML_TYPE_Q8_0}, {"Q4_0", GGML_TYPE_Q4_0}, {"Q4_1", GGML_TYPE_Q4_1},
             {"Q5_0", GGML_TYPE_Q5_0}, {"Q5_1", GGML_TYPE_Q5_1}, {"Q2_K", MIX},
             {"Q3_K_M", MIX},          {"Q4_K_M", MIX},          {"Q5_K_M", MIX}};
enum { NFILES = sizeof FILES / sizeof FILES[0], FIRST_MIX = 8 };

static uint64_t fnv1a(uint64_t h, const void *data, size_t n) {
    const uint8_t *b = data;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* Every tensor of the file dequantized by lorafit hashes (FNV-1a 64 of its floats, the
 * file's order) to what gguf-py's dequantization of it hashed to; the pure file's matrices
 * are all of its type. */
static void check_dequantized(const char *path, const char *fx, int pure) {
    char jpath[4200], err[2048];
    snprintf(jpath, sizeof jpath, "%s/fixture.json", fx);
    json_t *fj = json_load_file(jpath, 0, NULL);
    json_t *want = json_object_get(fj, "gguf_dequantized_fnv1a");
    ck_assert_msg(json_is_object(want), "%s: no gguf_dequantized_fnv1a", jpath);
    GgufFile *f = gguf_open(path, err, sizeof err);
    ck_assert_msg(f != NULL, "%s", err);
    ck_assert_int_eq(gguf_tensor_total(f), (int)json_object_size(want));
    for (int i = 0; i < gguf_tensor_total(f); i++) {
        const GgufTensorInfo *t = gguf_tensor_at(f, i);
        if (pure != MIX && t->n_dims == 2)
            ck_assert_msg((int)t->type == pure, "%s: %s is %s", path, t->name,
                          ggml_type_name(t->type));
        size_t row = ggml_row_bytes(t->type, t->ne[0]);
        int64_t rows = (int64_t)(t->nbytes / row);
        float *d = malloc((size_t)t->ne[0] * sizeof *d);
        uint64_t h = 0xcbf29ce484222325ull;
        for (int64_t r = 0; r < rows; r++) {
            ck_assert(quant_dequantize_row(t->type, (const uint8_t *)t->data + (size_t)r * row, d,
                                           t->ne[0]) == 0);
            h = fnv1a(h, d, (size_t)t->ne[0] * sizeof *d);
        }
        free(d);
        char got[17];
        snprintf(got, sizeof got, "%016llx", (unsigned long long)h);
        const char *ref = json_string_value(json_object_get(want, t->name));
        ck_assert_msg(ref && strcmp(got, ref) == 0,
                      "%s: %s (%s) dequantizes to other values than gguf-py's (%s vs %s)", path,
                      t->name, ggml_type_name(t->type), got, ref ? ref : "absent");
    }
    gguf_close(f);
    json_decref(fj);
}

/* In f32: the dequantized values gguf-py's, bit for bit; the first step's loss within 1e-6
 * relative of the reference's, every LoRA gradient within 1e-4 (fx_check_step). */
START_TEST(test_every_type_gives_the_float64_references_first_step) {
    char rel[256];
    for (int i = 0; i < NFILES; i++) {
        snprintf(rel, sizeof rel, "tests/data/gguf_base/%s.gguf", FILES[i].file);
        char *path = tt_repo_path(rel);
        snprintf(rel, sizeof rel, "tests/data/gguf_base/ref/%s", FILES[i].file);
        char *fx = tt_repo_path(rel);
        check_dequantized(path, fx, FILES[i].pure);
        fx_check_step(path, fx, 1e-6);
        free(path);
        free(fx);
    }
}
END_TEST

/* `lorafit train` on files [from, to), 3 AdamW steps in f32: the losses, and the adapter within
 * 2e-3 of the reference's (fx_check_train). */
static void check_training(int from, int to) {
    char gguf[256], fx[256];
    for (int i = from; i < to; i++) {
        snprintf(gguf, sizeof gguf, "tests/data/gguf_base/%s.gguf", FILES[i].file);
        snprintf(fx, sizeof fx, "tests/data/gguf_base/ref/%s", FILES[i].file);
        fx_check_train(fx, gguf);
    }
}

START_TEST(test_the_float_and_32_block_types_train_as_the_float64_reference) {
    check_training(0, FIRST_MIX);
}
END_TEST

START_TEST(test_the_k_quant_mixes_train_as_the_float64_reference) {
    check_training(FIRST_MIX, NFILES);
}
END_TEST

/* Q4_K_M.gguf without its tokenizer (no tokenizer.* keys, as a converter may write it): the
 * same model, which trains on token ids: the reference's first step (its rows are ids). */
START_TEST(test_a_gguf_without_a_tokenizer_gives_the_same_first_step) {
    char *dir = test_tmpdir(), bare[4200];
    char *path = tt_repo_path("tests/data/gguf_base/Q4_K_M.gguf");
    char *fx = tt_repo_path("tests/data/gguf_base/ref/Q4_K_M");
    snprintf(bare, sizeof bare, "%s/no-tokenizer.gguf", dir);
    gb_without_keys(path, bare, "tokenizer.");
    char err[1024];
    GgufFile *f = gguf_open(bare, err, sizeof err);
    ck_assert_msg(f != NULL, "%s", err);
    ck_assert(gguf_find_kv(f, "tokenizer.ggml.model") == NULL);
    gguf_close(f);
    check_dequantized(bare, fx, MIX);
    fx_check_step(bare, fx, 1e-6);
    free(path);
    free(fx);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* bad as a base: model_load and `lorafit train` refuse it (exit 1) with `needle` (which names
 * the tensor and its type). */
static void check_refused(const char *dir, const char *bad, const char *needle) {
    char err[2048], rows[4200], cfg[8192], args[4400];
    ck_assert(model_load(bad, err, sizeof err) == NULL);
    ck_assert_msg(strstr(err, needle) && strstr(err, bad), "%s", err);
    snprintf(rows, sizeof rows, "%s/rows.jsonl", dir);
    tt_random_rows(rows, 8, 8, 40, 320, 3);
    snprintf(cfg, sizeof cfg,
             "lora:\n  r: 4\ndata:\n  train: %s\n  seq_len: 16\ntrain:\n  batch_size: 2\n"
             "  max_steps: 1\n",
             rows);
    free(tt_write_config(dir, bad, cfg));
    snprintf(args, sizeof args, "train '%s/config.yaml'", dir);
    tt_expect(dir, args, 1, needle);
}

/* A norm weight stored Q8_0 (llama-quantize never writes one; a damaged or hand-made file
 * may): refused naming the tensor and its type. */
START_TEST(test_a_quantized_norm_weight_is_refused_by_name) {
    char *dir = test_tmpdir(), bad[4200];
    char *f32 = tt_repo_path("tests/data/gguf_base/F32.gguf");
    snprintf(bad, sizeof bad, "%s/norm-q8.gguf", dir);
    gb_retype(f32, bad, "blk.0.attn_norm.weight", GGML_TYPE_Q8_0);
    check_refused(dir, bad, "tensor blk.0.attn_norm.weight is Q8_0; lorafit reads norm weights");
    free(f32);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* Qwen3.5's out_proj (ssm_out), whose columns llama.cpp's converter reorders (value heads):
 * lorafit cannot undo that inside quantized blocks, so a Q8_0 one is refused by name. */
START_TEST(test_a_quantized_out_proj_with_reordered_columns_is_refused_by_name) {
    char *dir = test_tmpdir(), f32[4200], bad[4200];
    char *model = tt_repo_path("tests/data/train/qwen35-gguf/model");
    snprintf(f32, sizeof f32, "%s/qwen35.gguf", dir);
    snprintf(bad, sizeof bad, "%s/ssm-out-q8.gguf", dir);
    gb_export_f32(model, f32);
    gb_retype(f32, bad, "blk.0.ssm_out.weight", GGML_TYPE_Q8_0);
    check_refused(dir, bad, "tensor blk.0.ssm_out.weight is Q8_0, and lorafit cannot undo");
    free(model);
    test_rmtree(dir);
    free(dir);
}
END_TEST

Suite *gguf_base_ref_suite(void) {
    Suite *s = suite_create("gguf_base_ref");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_every_type_gives_the_float64_references_first_step);
    tcase_add_test(tc, test_the_float_and_32_block_types_train_as_the_float64_reference);
    tcase_add_test(tc, test_the_k_quant_mixes_train_as_the_float64_reference);
    tcase_add_test(tc, test_a_gguf_without_a_tokenizer_gives_the_same_first_step);
    tcase_add_test(tc, test_a_quantized_norm_weight_is_refused_by_name);
    tcase_add_test(tc, test_a_quantized_out_proj_with_reordered_columns_is_refused_by_name);
    suite_add_tcase(s, tc);
    return s;
}
