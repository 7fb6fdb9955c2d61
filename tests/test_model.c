/* tests/test_model.c — the model against the float64 PyTorch reference: logits, loss and
 * LoRA gradients of fixtures, greedy generation, F16/BF16 and sharded checkpoints. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tensor/tensor.h"
#include "tests/test_fixture_util.h"
#include "tests/test_train_util.h"
#include "tests/test_util.h"
#include "trainer/model/model.h"
#include "trainer/store/store.h"

static void check_fixture_tol(const char *model_dir, const char *fx, double loss_tol) {
    fx_check_step(model_dir, fx, loss_tol);
}

static void check_fixture(const char *model_dir, const char *fx) {
    check_fixture_tol(model_dir, fx, 1e-4);
}

START_TEST(test_stories260k_logits_loss_and_grads_match_reference) {
    TEST_NEED_SHARED(shared);
    char model[4096], fx[4096];
    snprintf(model, sizeof model, "%s/models/stories260K", shared);
    snprintf(fx, sizeof fx, "%s/fixtures/stories260K-lora", shared);
    check_fixture(model, fx);
}
END_TEST

START_TEST(test_qwen2_biases_and_untied_head_match_reference) {
    check_fixture("tests/data/train/qwen2-untied/model", "tests/data/train/qwen2-untied");
}
END_TEST

START_TEST(test_llama_bf16_tied_mqa_matches_reference) {
    check_fixture("tests/data/train/llama-bf16-tied/model", "tests/data/train/llama-bf16-tied");
}
END_TEST

/* Qwen3 (issue 24): per-head q/k norms with weights away from 1, head_dim 16 where hidden /
 * heads is 8, GQA 4/2, untied head; and attention_bias (q/k/v/o biases), MQA 4/1, head_dim
 * 12, tied, rsLoRA on four targets: the first step's loss within 1e-6 relative. */
START_TEST(test_qwen3_qk_norm_head_dim_gqa_untied_matches_reference) {
    check_fixture_tol("tests/data/train/qwen3-untied/model", "tests/data/train/qwen3-untied", 1e-6);
}
END_TEST

START_TEST(test_qwen3_attention_bias_mqa_tied_matches_reference) {
    check_fixture_tol("tests/data/train/qwen3-bias-tied/model", "tests/data/train/qwen3-bias-tied",
                      1e-6);
}
END_TEST

/* A sliding window of 8 on both layers of a Mistral model, sequences of 24 (three windows,
 * issue 24's acceptance 5), GQA 4/2, untied: the first loss within 1e-6 relative. */
START_TEST(test_mistral_sliding_window_three_windows_long_matches_reference) {
    check_fixture_tol("tests/data/train/mistral-window/model", "tests/data/train/mistral-window",
                      1e-6);
}
END_TEST

/* Gemma 3 (issue 24): (1 + w) norms with weights away from 0 (four per layer, q/k per head),
 * embeddings times sqrt(hidden), query_pre_attn_scalar 24 where head_dim is 16, GeGLU, two
 * sliding layers (window 5, local RoPE base) and a full one (linear RoPE scaling 4), GQA 4/2,
 * tied head, sequences of 16 (three windows): the first loss within 1e-6 relative. */
START_TEST(test_gemma3_matches_reference) {
    check_fixture_tol("tests/data/train/gemma3-tied/model", "tests/data/train/gemma3-tied", 1e-6);
}
END_TEST

/* Gemma 4, 31B-like (gemma4-keqv): plain-w norms, unscaled scores, weightless V norm, full
 * layers with their own head_dim (32 against 16) and one KV head with K = V (no v_proj),
 * proportional RoPE on them, sliding layers with window 5 in sequences of 16, layer_scalar,
 * logits soft-capped at 5: the first loss within 1e-6 relative, every gradient within 1e-4. */
START_TEST(test_gemma4_k_eq_v_matches_reference) {
    check_fixture_tol("tests/data/train/gemma4-keqv/model", "tests/data/train/gemma4-keqv", 1e-6);
}
END_TEST

/* Gemma 4, E2B-like (gemma4-e2b): per-layer inputs (table, context projection and norm, each
 * layer's gate, projection and norm), the last 3 of 7 layers sharing the K and V of layers 3
 * (sliding) and 1 (full), their MLP twice as wide, MQA 4/1, sliding and full head sizes 16
 * and 32, window 5 in sequences of 16: the first loss within 1e-6, every gradient within
 * 1e-4 (those of k_proj and v_proj of layers 1 and 3 carry the sharing layers' parts). */
START_TEST(test_gemma4_per_layer_inputs_and_kv_sharing_match_reference) {
    check_fixture_tol("tests/data/train/gemma4-e2b/model", "tests/data/train/gemma4-e2b", 1e-6);
    /* gemma4-e2b-ple: LoRA on every layer's per_layer_input_gate and per_layer_projection too */
    check_fixture_tol("tests/data/train/gemma4-e2b/model", "tests/data/train/gemma4-e2b-ple", 1e-6);
    check_fixture_tol("tests/data/train/gemma4-wrapper/model", "tests/data/train/gemma4-wrapper",
                      1e-6);
}
END_TEST

/* fixture.json's list `key` as ids; their count in *n. */
static int32_t *json_ids(json_t *fx, const char *key, int *n) {
    json_t *a = json_object_get(fx, key);
    ck_assert_msg(json_is_array(a), "fixture.json has no %s", key);
    *n = (int)json_array_size(a);
    int32_t *ids = malloc((size_t)*n * sizeof *ids);
    for (int i = 0; i < *n; i++) ids[i] = (int32_t)json_integer_value(json_array_get(a, (size_t)i));
    return ids;
}

/* Greedy decoding of 64 tokens from the fixture's prompt, by the base model and with the
 * initial adapter, gives the float64 reference's ids (make_fixture.py --greedy 64). */
static void check_greedy(const char *fx) {
    char path[4200], err[1024];
    snprintf(path, sizeof path, "%s/fixture.json", fx);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    ck_assert_msg(root != NULL, "%s: %s", path, je.text);
    snprintf(path, sizeof path, "%s/model", fx);
    Model *m = model_load(path, err, sizeof err);
    ck_assert_msg(m != NULL, "%s", err);
    snprintf(path, sizeof path, "%s/init_adapter", fx);
    Lora *lora = lora_load_adapter(m, path, err, sizeof err);
    ck_assert_msg(lora != NULL, "%s", err);
    int n_prompt, n_want;
    int32_t *prompt = json_ids(root, "greedy_prompt", &n_prompt);
    for (int with = 0; with < 2; with++) {
        int32_t *want = json_ids(root, with ? "greedy_adapter" : "greedy_base", &n_want);
        ck_assert_int_eq(n_want, n_prompt + 64);
        int32_t *out = malloc((size_t)n_want * sizeof *out);
        ck_assert_msg(model_generate(m, with ? lora : NULL, prompt, n_prompt, 64, 0.0f, 0,
                                     TENSOR_PRECISION_F32, out, err, sizeof err) == 0,
                      "%s", err);
        for (int i = 0; i < n_want; i++)
            ck_assert_msg(out[i] == want[i], "%s %s: id %d is %d, the reference's %d", fx,
                          with ? "with the adapter" : "base", i, out[i], want[i]);
        free(out);
        free(want);
    }
    free(prompt);
    lora_free(lora);
    model_free(m);
    json_decref(root);
}

/* SmolLM3 (NoPE layers: derived, layer 3 of 4, and a no_rope_layers list, with
 * attention_bias and MQA), OLMo 2 (no input norms, post-sublayer norms, q/k norms over the
 * whole projections, all away from 1), Granite (embedding, attention, residual and logit
 * multipliers): the first step's loss within 1e-6 relative, every gradient within 1e-4. */
START_TEST(test_smollm3_olmo2_granite_match_reference) {
    static const char *const fx[] = {"smollm3-nope", "smollm3-list-bias", "olmo2-untied",
                                     "granite-untied"};
    for (int i = 0; i < 4; i++) {
        char dir[256], model[300];
        snprintf(dir, sizeof dir, "tests/data/train/%s", fx[i]);
        snprintf(model, sizeof model, "%s/model", dir);
        check_fixture_tol(model, dir, 1e-6);
    }
}
END_TEST

START_TEST(test_smollm3_olmo2_granite_greedy_generation_matches_reference) {
    check_greedy("tests/data/train/smollm3-nope");
    check_greedy("tests/data/train/smollm3-list-bias");
    check_greedy("tests/data/train/olmo2-untied");
    check_greedy("tests/data/train/granite-untied");
}
END_TEST

/* Phi-3 (fused qkv_proj / gate_up_proj, a sliding window of 5 in sequences of 24, GQA 6/2,
 * untied) and Phi-4-mini-style (partial rotary 0.75, longrope with sequences past
 * original_max_position_embeddings 16: the long factors and the attention factor, tied):
 * the first step's loss within 1e-6 relative, every gradient within 1e-4; greedy ids base
 * and adapter equal to the reference's for 64 tokens (from a 4-token prompt: the longrope
 * fixture switches to the long factors on the way). */
START_TEST(test_phi3_matches_reference) {
    check_fixture_tol("tests/data/train/phi3-window/model", "tests/data/train/phi3-window", 1e-6);
    check_fixture_tol("tests/data/train/phi4mini-longrope/model",
                      "tests/data/train/phi4mini-longrope", 1e-6);
    check_greedy("tests/data/train/phi3-window");
    check_greedy("tests/data/train/phi4mini-longrope");
}
END_TEST

/* Ministral 3 (ministral3-yarn): yarn RoPE with original_max_position_embeddings 16 (a
 * correction range whose middle dimension blends, attention factor get_mscale(8, 1) /
 * get_mscale(8, 0.5)) and the llama 4 query scale (beta 0.2) past position 16, in sequences
 * of 24 and greedy runs to 68; head_dim 12 where hidden / heads is 8, GQA 4/2, untied: the
 * first step's loss within 1e-6 relative, every gradient within 1e-4, the greedy ids base
 * and adapter the reference's. */
START_TEST(test_ministral3_matches_reference) {
    check_fixture_tol("tests/data/train/ministral3-yarn/model", "tests/data/train/ministral3-yarn",
                      1e-6);
    check_greedy("tests/data/train/ministral3-yarn");
}
END_TEST

START_TEST(test_qwen3_greedy_generation_matches_reference) {
    check_greedy("tests/data/train/qwen3-untied");
    check_greedy("tests/data/train/qwen3-bias-tied");
}
END_TEST

START_TEST(test_gemma3_greedy_generation_matches_reference) {
    check_greedy("tests/data/train/gemma3-tied");
}
END_TEST

START_TEST(test_gemma4_greedy_generation_matches_reference) {
    check_greedy("tests/data/train/gemma4-keqv");
    check_greedy("tests/data/train/gemma4-e2b");
}
END_TEST

/* The Gemma3ForConditionalGeneration fixture (test_wrapper.c): logits, loss and every LoRA
 * gradient, and the greedy ids, against the reference run on the wrapper checkpoint. */
START_TEST(test_gemma3_wrapper_matches_reference) {
    check_fixture_tol("tests/data/train/gemma3-wrapper/model", "tests/data/train/gemma3-wrapper",
                      1e-6);
    check_greedy("tests/data/train/gemma3-wrapper");
}
END_TEST

/* The Mistral3ForConditionalGeneration fixture (test_wrapper.c): ministral3-yarn's decoder
 * beside a Pixtral tower, against the reference run on the wrapper checkpoint. */
START_TEST(test_mistral3_wrapper_matches_reference) {
    check_fixture_tol("tests/data/train/mistral3-wrapper/model",
                      "tests/data/train/mistral3-wrapper", 1e-6);
    check_greedy("tests/data/train/mistral3-wrapper");
}
END_TEST

/* Gemma 2: Gemma 3's layer without q/k norms, one RoPE, scores soft-capped at 2 and logits
 * at 3 (both well into tanh's curve), layers 0 and 2 sliding (window 5), GQA 4/2, tied. */
START_TEST(test_gemma2_matches_reference) {
    check_fixture_tol("tests/data/train/gemma2-tied/model", "tests/data/train/gemma2-tied", 1e-6);
    check_greedy("tests/data/train/gemma2-tied");
}
END_TEST

/* Qwen3.5 (issue 25): three Gated DeltaNet layers and one gated attention layer, sequences
 * of 160 (three delta-rule chunks), GQA 4/2 in attention and 2 key / 4 value heads (of 32 and
 * 16) in the DeltaNet, (1 + w) norms away from 0, partial rotary 0.25, LoRA on all twelve
 * projections:
 * the first loss within 1e-6 relative and every gradient within 1e-4 of the float64
 * reference, which runs the recurrence token by token; greedy ids for 64 tokens. */
START_TEST(test_qwen3_5_matches_reference) {
    check_fixture_tol("tests/data/train/qwen35-text/model", "tests/data/train/qwen35-text", 1e-6);
    check_greedy("tests/data/train/qwen35-text");
    /* the published form (Qwen3_5ForConditionalGeneration): the same decoder under
     * model.language_model., beside a vision tower and an MTP head */
    check_fixture_tol("tests/data/train/qwen35-wrapper/model", "tests/data/train/qwen35-wrapper",
                      1e-6);
    check_greedy("tests/data/train/qwen35-wrapper");
}
END_TEST

/* 68 positions, far past the window of 8. */
START_TEST(test_mistral_window_greedy_generation_matches_reference) {
    check_greedy("tests/data/train/mistral-window");
}
END_TEST

START_TEST(test_greedy_generation_reproduces_expected_ids) {
    TEST_NEED_SHARED(shared);
    char path[4096], err[1024];
    snprintf(path, sizeof path, "%s/models/stories260K/expected_greedy_ids.json", shared);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    ck_assert(root != NULL);
    json_t *want = json_object_get(root, "greedy_ids");
    int total = (int)json_array_size(want); /* includes the BOS prompt */
    ck_assert_int_eq(total, 200);
    snprintf(path, sizeof path, "%s/models/stories260K", shared);
    Model *m = model_load(path, err, sizeof err);
    ck_assert_msg(m != NULL, "%s", err);
    int32_t prompt[1] = {1}, out[200];
    ck_assert_msg(model_generate(m, NULL, prompt, 1, total - 1, 0.0f, 0, TENSOR_PRECISION_F32, out,
                                 err, sizeof err) == 0,
                  "%s", err);
    for (int i = 0; i < total; i++)
        ck_assert_int_eq(out[i], (int)json_integer_value(json_array_get(want, (size_t)i)));
    json_decref(root);
    model_free(m);
}
END_TEST

static void copy_config(const char *from, const char *to) {
    char src[4096], dst[4096];
    size_t len;
    snprintf(src, sizeof src, "%s/config.json", from);
    snprintf(dst, sizeof dst, "%s/config.json", to);
    char *text = test_read_file(src, &len);
    ck_assert(text != NULL);
    test_write_file(dst, text, len);
    free(text);
}

/* Rewrites a model's weights as dtype (F32 = values rounded through `round_as` first), into
 * `shards` files (+ index when > 1). */
static void write_variant(const char *from, const char *to, StDtype dtype, StDtype round_as,
                          int shards) {
    char path[4096], err[1024];
    snprintf(path, sizeof path, "%s/model.safetensors", from);
    SafeTensors *st = st_open(path, err, sizeof err);
    ck_assert_msg(st != NULL, "%s", err);
    copy_config(from, to);
    int n = st_count(st);
    uint16_t **half = calloc((size_t)n, sizeof *half);
    float **full = calloc((size_t)n, sizeof *full);
    StWriter *w[2] = {st_writer_new(), st_writer_new()};
    json_t *map = json_object();
    for (int i = 0; i < n; i++) {
        const StTensor *t = st_tensor_at(st, i);
        int s = shards > 1 ? i % 2 : 0;
        full[i] = malloc((size_t)t->numel * sizeof(float) + 4);
        ck_assert_int_eq(st_to_float(t, full[i], err, sizeof err), 0);
        const void *data = full[i];
        if (dtype == ST_BF16 || dtype == ST_F16 || round_as != ST_F32) {
            StDtype h = dtype == ST_F32 ? round_as : dtype;
            half[i] = malloc((size_t)t->numel * 2 + 2);
            for (int64_t k = 0; k < t->numel; k++) {
                half[i][k] = h == ST_BF16 ? tensor_float_to_bf16(full[i][k])
                                          : tensor_float_to_f16(full[i][k]);
                full[i][k] =
                    h == ST_BF16 ? st_bf16_to_float(half[i][k]) : st_f16_to_float(half[i][k]);
            }
            if (dtype != ST_F32) data = half[i];
        }
        ck_assert(st_writer_add(w[s], t->name, dtype, t->ndim, t->shape, data, err, sizeof err) ==
                  0);
        json_object_set_new(map, t->name,
                            json_string(s ? "model-00002-of-00002.safetensors"
                                          : "model-00001-of-00002.safetensors"));
    }
    if (shards > 1) {
        for (int s = 0; s < 2; s++) {
            snprintf(path, sizeof path, "%s/model-0000%d-of-00002.safetensors", to, s + 1);
            ck_assert_msg(st_writer_save(w[s], path, err, sizeof err) == 0, "%s", err);
        }
        json_t *index = json_pack("{s:{s:i}, s:o}", "metadata", "total_size", 0, "weight_map", map);
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", to);
        ck_assert_int_eq(json_dump_file(index, path, 0), 0);
        json_decref(index);
    } else {
        snprintf(path, sizeof path, "%s/model.safetensors", to);
        ck_assert_msg(st_writer_save(w[0], path, err, sizeof err) == 0, "%s", err);
        json_decref(map);
    }
    for (int i = 0; i < n; i++) free(half[i]), free(full[i]);
    free(half);
    free(full);
    st_writer_free(w[0]);
    st_writer_free(w[1]);
    st_close(st);
}

static void check_half_weights(const char *shared, StDtype dtype, double loose) {
    char orig[4096], half[4096], rounded[4096];
    snprintf(orig, sizeof orig, "%s/models/stories260K", shared);
    char *tmp = test_tmpdir();
    snprintf(half, sizeof half, "%s/half", tmp);
    snprintf(rounded, sizeof rounded, "%s/rounded", tmp);
    ck_assert_int_eq(mkdir(half, 0755), 0);
    ck_assert_int_eq(mkdir(rounded, 0755), 0);
    write_variant(orig, half, dtype, dtype, 1);
    write_variant(orig, rounded, ST_F32, dtype, 1); /* the same values, stored as F32 */
    int64_t n0, n1, n2;
    float *a = tt_fixed_batch_logits(orig, NULL, 0, &n0),
          *b = tt_fixed_batch_logits(half, NULL, 0, &n1),
          *c = tt_fixed_batch_logits(rounded, NULL, 0, &n2);
    ck_assert_int_eq(n0, n1);
    double max_diff = 0;
    for (int i = 0; i < n0; i++) {
        ck_assert_msg(b[i] == c[i], "converted weights differ from F32 at logit %d", i);
        max_diff = fmax(max_diff, fabs((double)a[i] - b[i]));
    }
    ck_assert_msg(max_diff < loose, "half-precision logits differ from F32 by %g", max_diff);
    ck_assert_msg(max_diff > 0, "half-precision weights changed nothing: conversion not used?");
    free(a), free(b), free(c);
    test_rmtree(tmp);
    free(tmp);
}

START_TEST(test_bf16_weights_match_f32_within_bf16_precision) {
    TEST_NEED_SHARED(shared);
    check_half_weights(shared, ST_BF16, 0.5);
}
END_TEST

START_TEST(test_f16_weights_match_f32_within_f16_precision) {
    TEST_NEED_SHARED(shared);
    check_half_weights(shared, ST_F16, 0.02);
}
END_TEST

START_TEST(test_sharded_checkpoint_gives_identical_logits) {
    TEST_NEED_SHARED(shared);
    char orig[4096];
    snprintf(orig, sizeof orig, "%s/models/stories260K", shared);
    char *tmp = test_tmpdir();
    write_variant(orig, tmp, ST_F32, ST_F32, 2);
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", tmp);
    ck_assert_int_ne(access(path, F_OK), 0);
    int64_t n0, n1;
    float *a = tt_fixed_batch_logits(orig, NULL, 0, &n0),
          *b = tt_fixed_batch_logits(tmp, NULL, 0, &n1);
    ck_assert_int_eq(n0, n1);
    ck_assert_int_eq(memcmp(a, b, (size_t)n0 * sizeof *a), 0);
    free(a), free(b);
    test_rmtree(tmp);
    free(tmp);
}
END_TEST

START_TEST(test_llama3_rope_scaling_matches_transformers) {
    json_error_t je;
    json_t *ref = json_load_file("tests/data/model/llama3_rope.json", 0, &je);
    ck_assert_msg(ref != NULL, "%s", je.text);
    json_t *rc = json_object_get(ref, "config");
    char text[1024], err[512];
    snprintf(text, sizeof text,
             "{\"model_type\": \"llama\", \"hidden_size\": 32, \"intermediate_size\": 8, "
             "\"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"vocab_size\": 8, "
             "\"head_dim\": %d, \"rope_theta\": %.17g, \"rope_scaling\": {\"rope_type\": "
             "\"llama3\", \"factor\": %.17g, \"low_freq_factor\": %.17g, "
             "\"high_freq_factor\": %.17g, \"original_max_position_embeddings\": %d}}",
             (int)json_integer_value(json_object_get(rc, "head_dim")),
             json_number_value(json_object_get(rc, "rope_theta")),
             json_number_value(json_object_get(rc, "factor")),
             json_number_value(json_object_get(rc, "low_freq_factor")),
             json_number_value(json_object_get(rc, "high_freq_factor")),
             (int)json_integer_value(json_object_get(rc, "original_max_position_embeddings")));
    ModelConfig cfg;
    ck_assert_msg(hf_config_parse(text, strlen(text), "llama3", &cfg, err, sizeof err) == 0, "%s",
                  err);
    ck_assert(cfg.rope_scaling.llama3);
    double inv[64];
    hf_rope_inv_freq(&cfg, inv);
    json_t *want = json_object_get(ref, "inv_freq_llama3"),
           *plain = json_object_get(ref, "inv_freq_plain");
    int changed = 0;
    for (int i = 0; i < cfg.head_dim / 2; i++) {
        double w = json_number_value(json_array_get(want, (size_t)i));
        ck_assert_msg(fabs(inv[i] - w) <= 1e-12 * w, "inv_freq[%d] %.17g vs %.17g", i, inv[i], w);
        changed += w != json_number_value(json_array_get(plain, (size_t)i));
    }
    /* The fixture exercises all three bands: kept, smoothed and divided by factor. */
    ck_assert_int_gt(changed, 1);
    ck_assert_int_lt(changed, cfg.head_dim / 2);
    json_decref(ref);
}
END_TEST

Suite *model_suite(void) {
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("reference");
    tcase_add_test(tc, test_stories260k_logits_loss_and_grads_match_reference);
    tcase_add_test(tc, test_qwen2_biases_and_untied_head_match_reference);
    tcase_add_test(tc, test_llama_bf16_tied_mqa_matches_reference);
    tcase_add_test(tc, test_qwen3_qk_norm_head_dim_gqa_untied_matches_reference);
    tcase_add_test(tc, test_qwen3_attention_bias_mqa_tied_matches_reference);
    tcase_add_test(tc, test_qwen3_greedy_generation_matches_reference);
    tcase_add_test(tc, test_smollm3_olmo2_granite_match_reference);
    tcase_add_test(tc, test_smollm3_olmo2_granite_greedy_generation_matches_reference);
    tcase_add_test(tc, test_mistral_sliding_window_three_windows_long_matches_reference);
    tcase_add_test(tc, test_mistral_window_greedy_generation_matches_reference);
    tcase_add_test(tc, test_gemma3_matches_reference);
    tcase_add_test(tc, test_gemma3_greedy_generation_matches_reference);
    tcase_add_test(tc, test_gemma3_wrapper_matches_reference);
    tcase_add_test(tc, test_gemma4_k_eq_v_matches_reference);
    tcase_add_test(tc, test_gemma4_per_layer_inputs_and_kv_sharing_match_reference);
    tcase_add_test(tc, test_gemma4_greedy_generation_matches_reference);
    tcase_add_test(tc, test_mistral3_wrapper_matches_reference);
    tcase_add_test(tc, test_gemma2_matches_reference);
    tcase_add_test(tc, test_qwen3_5_matches_reference);
    tcase_add_test(tc, test_phi3_matches_reference);
    tcase_add_test(tc, test_ministral3_matches_reference);
    tcase_add_test(tc, test_greedy_generation_reproduces_expected_ids);
    tcase_add_test(tc, test_bf16_weights_match_f32_within_bf16_precision);
    tcase_add_test(tc, test_f16_weights_match_f32_within_f16_precision);
    tcase_add_test(tc, test_sharded_checkpoint_gives_identical_logits);
    tcase_add_test(tc, test_llama3_rope_scaling_matches_transformers);
    suite_add_tcase(s, tc);
    return s;
}
