/* tests/test_train.c — `lorafit train` against the float64 PyTorch reference, and the loss
 * convention that makes batch_size 2k equal batch_size k with grad_accum 2. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/test_fixture_util.h"
#include "tests/test_train_util.h"
#include "tests/test_util.h"

static void check_fixture(const char *fixture_rel, const char *model_rel) {
    fx_check_train(fixture_rel, model_rel);
}

START_TEST(test_train_matches_stories260k_reference) {
    TEST_NEED_SHARED(shared);
    char fixture[4200], model[4200];
    snprintf(fixture, sizeof fixture, "%s/fixtures/stories260K-lora", shared);
    snprintf(model, sizeof model, "%s/models/stories260K", shared);
    check_fixture(fixture, model);
}
END_TEST

START_TEST(test_train_matches_qwen2_untied_rslora_reference) {
    check_fixture("tests/data/train/qwen2-untied", "tests/data/train/qwen2-untied/model");
}
END_TEST

START_TEST(test_train_matches_llama_bf16_tied_reference) {
    check_fixture("tests/data/train/llama-bf16-tied", "tests/data/train/llama-bf16-tied/model");
}
END_TEST

START_TEST(test_train_matches_qwen3_untied_reference) {
    check_fixture("tests/data/train/qwen3-untied", "tests/data/train/qwen3-untied/model");
}
END_TEST

START_TEST(test_train_matches_qwen3_attention_bias_tied_rslora_reference) {
    check_fixture("tests/data/train/qwen3-bias-tied", "tests/data/train/qwen3-bias-tied/model");
}
END_TEST

/* SmolLM3, OLMo 2 and Granite: lorafit train's losses, first gradient norm and adapter
 * after 3 AdamW steps against the float64 reference. */
START_TEST(test_train_matches_smollm3_olmo2_granite_references) {
    check_fixture("tests/data/train/smollm3-nope", "tests/data/train/smollm3-nope/model");
    check_fixture("tests/data/train/smollm3-list-bias", "tests/data/train/smollm3-list-bias/model");
    check_fixture("tests/data/train/olmo2-untied", "tests/data/train/olmo2-untied/model");
    check_fixture("tests/data/train/granite-untied", "tests/data/train/granite-untied/model");
}
END_TEST

START_TEST(test_train_matches_mistral_sliding_window_reference) {
    check_fixture("tests/data/train/mistral-window", "tests/data/train/mistral-window/model");
}
END_TEST

START_TEST(test_train_matches_gemma3_reference) {
    check_fixture("tests/data/train/gemma3-tied", "tests/data/train/gemma3-tied/model");
}
END_TEST

/* Gemma3ForConditionalGeneration: the decoder under model.language_model. beside a vision
 * tower, init_adapter's target_modules the regex PEFT needs for it. */
START_TEST(test_train_matches_gemma3_wrapper_reference) {
    check_fixture("tests/data/train/gemma3-wrapper", "tests/data/train/gemma3-wrapper/model");
}
END_TEST

/* Mistral3ForConditionalGeneration: ministral3-yarn's decoder under model.language_model.
 * beside a Pixtral tower (whose q/k/v/o_proj and gate/up/down_proj the regex must miss). */
START_TEST(test_train_matches_mistral3_wrapper_reference) {
    check_fixture("tests/data/train/mistral3-wrapper", "tests/data/train/mistral3-wrapper/model");
}
END_TEST

/* Gemma 4, 31B-like (gemma4-keqv: K = V full layers of their own head_dim, proportional
 * RoPE, sliding layers, layer_scalar, soft-capped logits) and E2B-like (gemma4-e2b:
 * per-layer inputs, KV sharing, double-wide MLP; gemma4-e2b-ple: the same model with LoRA
 * on per_layer_input_gate and per_layer_projection too): lorafit train's losses, first
 * gradient norm and adapter after 3 AdamW steps against the float64 reference. */
START_TEST(test_train_matches_gemma4_k_eq_v_reference) {
    check_fixture("tests/data/train/gemma4-keqv", "tests/data/train/gemma4-keqv/model");
    check_fixture("tests/data/train/gemma4-e2b", "tests/data/train/gemma4-e2b/model");
    check_fixture("tests/data/train/gemma4-e2b-ple", "tests/data/train/gemma4-e2b/model");
    check_fixture("tests/data/train/gemma4-wrapper", "tests/data/train/gemma4-wrapper/model");
}
END_TEST

START_TEST(test_train_matches_gemma2_reference) {
    check_fixture("tests/data/train/gemma2-tied", "tests/data/train/gemma2-tied/model");
}
END_TEST

/* Phi-3 (fused linears, window 5 in sequences of 24) and Phi-4-mini-style (partial rotary,
 * longrope past original_max_position_embeddings, tied, rsLoRA): lorafit train's losses,
 * first gradient norm and adapter after 3 AdamW steps against the float64 reference. */
START_TEST(test_train_matches_phi3_references) {
    check_fixture("tests/data/train/phi3-window", "tests/data/train/phi3-window/model");
    check_fixture("tests/data/train/phi4mini-longrope", "tests/data/train/phi4mini-longrope/model");
}
END_TEST

/* Ministral 3 (yarn RoPE, the llama 4 query scale past position 16 of 24): lorafit train's
 * losses, first gradient norm and adapter after 3 AdamW steps against the float64 reference. */
START_TEST(test_train_matches_ministral3_reference) {
    check_fixture("tests/data/train/ministral3-yarn", "tests/data/train/ministral3-yarn/model");
}
END_TEST

/* Qwen3.5 (three DeltaNet layers, one gated attention layer, sequences of 160, LoRA on all
 * twelve projections): lorafit train's losses, first gradient norm and adapter after 3 AdamW
 * steps against the float64 reference that runs the recurrence token by token. */
START_TEST(test_train_matches_qwen3_5_reference) {
    check_fixture("tests/data/train/qwen35-text", "tests/data/train/qwen35-text/model");
    check_fixture("tests/data/train/qwen35-wrapper", "tests/data/train/qwen35-wrapper/model");
}
END_TEST

/* Runs 4 steps with the given batch shape on the same rows; returns the output dir. */
static char *run_batch_shape(const char *dir, const char *rows, int batch, int accum,
                             const char *name) {
    char cfg[4096];
    snprintf(cfg, sizeof cfg,
             "model:\n  path: %s/tests/data/train/qwen2-untied/model\n"
             "lora:\n  r: 4\n  alpha: 8\n  dropout: 0.0\n"
             "data:\n  train: %s\n  seq_len: 24\n  shuffle: true\n  shuffle_buffer: 7\n"
             "train:\n  batch_size: %d\n  grad_accum: %d\n  max_steps: 4\n  lr: 1.0e-2\n"
             "  weight_decay: 0.01\n  warmup_steps: 1\n  seed: 3\n"
             "output:\n  dir: %s/%s\n"
             "log:\n  every: 1\n",
             getenv("LORAFIT_ROOT") ? getenv("LORAFIT_ROOT") : ".", rows, batch, accum, dir, name);
    char file[64];
    snprintf(file, sizeof file, "%s.yaml", name);
    char *cfg_path = tt_write_text(dir, file, cfg);
    char args[4400];
    snprintf(args, sizeof args, "train '%s'", cfg_path);
    int rc = tt_lorafit(dir, args);
    char *log = tt_log(dir);
    ck_assert_msg(rc == 0, "lorafit train failed (%d):\n%s", rc, log);
    free(log);
    free(cfg_path);
    char *out = malloc(4200);
    snprintf(out, 4200, "%s/%s", dir, name);
    return out;
}

START_TEST(test_batch_2k_equals_batch_k_with_grad_accum_2) {
    char *dir = test_tmpdir();
    char rows[4200];
    snprintf(rows, sizeof rows, "%s/rows.jsonl", dir);
    /* Rows of different lengths, so the micro-batches have different token counts and a
     * per-micro-batch mean would differ from the mean over the step. */
    tt_random_rows(rows, 40, 3, 30, 97, 11);
    char *big = run_batch_shape(dir, rows, 4, 1, "big");
    char *acc = run_batch_shape(dir, rows, 2, 2, "accum");
    json_t *mb = tt_metrics(big), *ma = tt_metrics(acc);
    double lb[8], la[8];
    ck_assert_int_eq(tt_losses(mb, lb, 8), 4);
    ck_assert_int_eq(tt_losses(ma, la, 8), 4);
    for (int s = 0; s < 4; s++)
        ck_assert_msg(fabs(lb[s] - la[s]) <= 1e-5 * fabs(lb[s]), "step %d: %.9g vs %.9g", s + 1,
                      lb[s], la[s]);
    for (int s = 0; s < 4; s++) {
        json_t *tb = json_object_get(json_array_get(mb, (size_t)s), "tokens");
        json_t *ta = json_object_get(json_array_get(ma, (size_t)s), "tokens");
        ck_assert_int_eq(json_integer_value(tb), json_integer_value(ta));
    }
    char a[4400], b[4400];
    snprintf(a, sizeof a, "%s/adapter/adapter_model.safetensors", acc);
    snprintf(b, sizeof b, "%s/adapter/adapter_model.safetensors", big);
    double rel = tt_adapter_rel_diff(a, b, "");
    ck_assert_msg(rel < 1e-4, "adapters differ by %.3g", rel);
    json_decref(mb);
    json_decref(ma);
    free(big);
    free(acc);
    test_rmtree(dir);
    free(dir);
}
END_TEST

Suite *train_suite(void) {
    Suite *s = suite_create("train");
    TCase *tc = tcase_create("reference");
    tcase_add_test(tc, test_train_matches_stories260k_reference);
    tcase_add_test(tc, test_train_matches_qwen2_untied_rslora_reference);
    tcase_add_test(tc, test_train_matches_llama_bf16_tied_reference);
    tcase_add_test(tc, test_train_matches_qwen3_untied_reference);
    tcase_add_test(tc, test_train_matches_qwen3_attention_bias_tied_rslora_reference);
    tcase_add_test(tc, test_train_matches_smollm3_olmo2_granite_references);
    tcase_add_test(tc, test_train_matches_mistral_sliding_window_reference);
    tcase_add_test(tc, test_train_matches_gemma3_reference);
    tcase_add_test(tc, test_train_matches_gemma2_reference);
    tcase_add_test(tc, test_train_matches_gemma3_wrapper_reference);
    tcase_add_test(tc, test_train_matches_gemma4_k_eq_v_reference);
    tcase_add_test(tc, test_train_matches_mistral3_wrapper_reference);
    tcase_add_test(tc, test_train_matches_phi3_references);
    tcase_add_test(tc, test_train_matches_ministral3_reference);
    tcase_add_test(tc, test_train_matches_qwen3_5_reference);
    tcase_add_test(tc, test_batch_2k_equals_batch_k_with_grad_accum_2);
    suite_add_tcase(s, tc);
    return s;
}
