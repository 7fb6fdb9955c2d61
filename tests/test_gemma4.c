/* tests/test_gemma4.c — Gemma 4 (gemma4_text, and the gemma4 wrapper): its config.json keys
 * as configuration_gemma4.py reads them, the variants refused by name, and the 31B-like
 * fixture tests/data/train/gemma4-keqv (three sliding layers with head_dim 16 and window 5,
 * two full layers with head_dim 32, one KV head and K = V, proportional RoPE 0.25, layer
 * scalars, logits soft-capped at 5) through the commands. Its numbers are held to the float64
 * reference (tests/reference/ref_gemma4.py) in test_model.c (loss, gradients, greedy ids) and
 * test_train.c (3 AdamW steps); here: gradient checkpointing byte-identical in f32 and bf16
 * with packing and dropout, the default targets, merge (HF) and the GGUF export's refusal. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/test_train_util.h"
#include "tests/test_util.h"
#include "trainer/model/family.h"
#include "trainer/model/lora.h"
#include "trainer/model/model.h"
#include "trainer/store/store.h"

#define G4 "tests/data/train/gemma4-keqv"

static int parse(const char *json, ModelConfig *c, char *err, size_t errlen) {
    return hf_config_parse(json, strlen(json), "config.json", c, err, errlen);
}

/* ---- the config ----------------------------------------------------------------------- */

/* A Gemma4ForConditionalGeneration config shaped as the 31B's text_config (the keys of
 * configuration_gemma4.py; 8 layers instead of 60, 5 sliding : 1 full, the last full). */
#define G4_31B_TEXT                                                                                \
    "\"model_type\": \"gemma4_text\", \"hidden_size\": 5376, \"intermediate_size\": 21504, "       \
    "\"num_hidden_layers\": 8, \"num_attention_heads\": 32, \"num_key_value_heads\": 16, "         \
    "\"head_dim\": 256, \"global_head_dim\": 512, \"num_global_key_value_heads\": 4, "             \
    "\"attention_k_eq_v\": true, \"sliding_window\": 1024, \"final_logit_softcapping\": 30.0, "    \
    "\"hidden_size_per_layer_input\": 0, \"num_kv_shared_layers\": 0, "                            \
    "\"use_bidirectional_attention\": \"vision\", \"vocab_size\": 262144, "                        \
    "\"layer_types\": [\"sliding_attention\", \"sliding_attention\", \"sliding_attention\", "      \
    "\"sliding_attention\", \"sliding_attention\", \"full_attention\", \"sliding_attention\", "    \
    "\"sliding_attention\"], "                                                                     \
    "\"rope_parameters\": {\"sliding_attention\": {\"rope_type\": \"default\", \"rope_theta\": "   \
    "10000.0}, \"full_attention\": {\"rope_type\": \"proportional\", "                             \
    "\"partial_rotary_factor\": 0.25, \"rope_theta\": 1000000.0}}"

/* The full layers: head_dim 512, 4 KV heads, no v_proj (K = V), proportional RoPE whose
 * tables span 512 dims with only the first 64 of 256 frequencies non-zero, base^(-2i / 512);
 * the sliding layers: head_dim 256, 16 KV heads, window 1024, local base 1e4; the last layer
 * full although layer_types says sliding; scores unscaled; the wrapper soft-caps the logits. */
START_TEST(test_31b_shaped_config_reads_every_key) {
    ModelConfig c;
    char err[512];
    const char *j = "{\"architectures\": [\"Gemma4ForConditionalGeneration\"], \"model_type\": "
                    "\"gemma4\", \"text_config\": {" G4_31B_TEXT "}}";
    ck_assert_msg(parse(j, &c, err, sizeof err) == 0, "%s", err);
    ck_assert_str_eq(c.model_type, "gemma4");
    ck_assert_str_eq(model_module_prefix(&c), "model.language_model.");
    ck_assert(c.full.head_dim == 512 && c.full.kv_heads == 4 && c.full.k_eq_v);
    ck_assert(c.head_dim == 256 && c.num_key_value_heads == 16 && c.sliding_window == 1024);
    ck_assert(c.attn_scale == 1.0f && c.final_softcap == 30.0f && c.tie_word_embeddings);
    for (int l = 0; l < 8; l++) {
        bool full = l == 5 || l == 7;
        ck_assert_int_eq(hf_layer_window(&c, l), full ? 0 : 1024);
        ck_assert_int_eq(hf_layer_head_dim(&c, l), full ? 512 : 256);
        ck_assert_int_eq(hf_layer_kv_heads(&c, l), full ? 4 : 16);
        unsigned mods = model_layer_modules(&c, l);
        ck_assert_int_eq(!!(mods & (1u << MODULE_V)), !full);
        int out, in;
        model_layer_module_dims(&c, l, MODULE_K, &out, &in);
        ck_assert(out == (full ? 4 * 512 : 16 * 256) && in == 5376);
        model_layer_module_dims(&c, l, MODULE_O, &out, &in);
        ck_assert(out == 5376 && in == 32 * (full ? 512 : 256));
    }
    ck_assert(c.rope_scaling.proportional && c.rope_scaling.proportion == 0.25);
    ck_assert(c.rotary_dim == 512 && c.rope_theta == 1e6 && c.rope_local_theta == 1e4);
    double inv[256];
    hf_rope_inv_freq(&c, inv);
    ck_assert(inv[0] == 1.0 && fabs(inv[63] - pow(1e6, -126.0 / 512)) < 1e-18 && inv[64] == 0.0 &&
              inv[255] == 0.0);
    ck_assert(fabs(inv[1] - pow(1e6, -2.0 / 512)) < 1e-18);
}
END_TEST

/* Gemma4TextConfig's defaults (Gemma4ForCausalLM with only the shapes): every 6th layer
 * full and the last one too, global_head_dim 512, window 512, rope_parameters' defaults
 * (proportional 0.25 of base 1e6 on the full layers, 1e4 on the sliding ones), tied,
 * num_global_key_value_heads unused without attention_k_eq_v; no soft-cap. */
START_TEST(test_causal_lm_defaults_follow_gemma4_text_config) {
    ModelConfig c;
    char err[512];
    const char *j = "{\"architectures\": [\"Gemma4ForCausalLM\"], \"hidden_size\": 64, "
                    "\"intermediate_size\": 128, \"num_hidden_layers\": 8, "
                    "\"num_attention_heads\": 4, \"num_key_value_heads\": 1, \"vocab_size\": 97, "
                    "\"num_global_key_value_heads\": 2, \"hidden_size_per_layer_input\": null}";
    ck_assert_msg(parse(j, &c, err, sizeof err) == 0, "%s", err);
    ck_assert_str_eq(c.model_type, "gemma4_text");
    for (int l = 0; l < 8; l++) ck_assert_int_eq(hf_layer_window(&c, l) == 0, l == 5 || l == 7);
    ck_assert(c.head_dim == 256 && c.full.head_dim == 512 && c.full.kv_heads == 0);
    ck_assert(!c.full.k_eq_v && c.sliding_window == 512 && c.tie_word_embeddings);
    ck_assert(c.rope_scaling.proportional && c.rope_scaling.proportion == 0.25);
    ck_assert(c.rope_theta == 1e6 && c.rope_local_theta == 1e4 && c.final_softcap == 0);
    ck_assert_int_eq(hf_layer_kv_heads(&c, 5), 1);
    ck_assert_uint_eq(lora_default_targets(&c), LORA_Q | LORA_V);
}
END_TEST

static void expect_refused(const char *extra, const char *why) {
    char json[4096], err[512] = "";
    ModelConfig c;
    snprintf(json, sizeof json,
             "{\"model_type\": \"gemma4_text\", \"hidden_size\": 64, \"intermediate_size\": 128, "
             "\"num_hidden_layers\": 4, \"num_attention_heads\": 4, \"vocab_size\": 97%s}",
             extra);
    ck_assert_msg(parse(json, &c, err, sizeof err) != 0, "accepted %s", extra);
    ck_assert_msg(strstr(err, "config.json") && strstr(err, why), "'%s' lacks '%s'", err, why);
}

/* The MoE (26B-A4B), per-layer inputs and KV sharing (E2B, E4B: not yet), bidirectional
 * attention, per_layer_config, another activation: refused with the key named. Per-layer
 * inputs are Gemma4TextConfig's default (256): a config must say 0 or null. */
START_TEST(test_unsupported_variants_are_refused_by_name) {
    expect_refused(", \"hidden_size_per_layer_input\": 0, \"enable_moe_block\": true", "26B-A4B");
    expect_refused("", "hidden_size_per_layer_input");
    expect_refused(", \"hidden_size_per_layer_input\": 0, \"num_kv_shared_layers\": 2",
                   "num_kv_shared_layers");
    expect_refused(", \"hidden_size_per_layer_input\": 0, \"use_bidirectional_attention\": \"all\"",
                   "use_bidirectional_attention");
    expect_refused(", \"hidden_size_per_layer_input\": 0, \"per_layer_config\": {}",
                   "per_layer_config");
    expect_refused(", \"hidden_size_per_layer_input\": 0, \"hidden_activation\": \"silu\"",
                   "gelu_pytorch_tanh");
    expect_refused(", \"hidden_size_per_layer_input\": 0, \"rope_parameters\": "
                   "{\"sliding_attention\": {\"rope_type\": \"default\", \"rope_theta\": 1e4}, "
                   "\"full_attention\": {\"rope_type\": \"dynamic\", \"rope_theta\": 1e6}}",
                   "rope_type \"dynamic\"");
    expect_refused(", \"hidden_size_per_layer_input\": 0, \"attention_k_eq_v\": true, "
                   "\"num_global_key_value_heads\": 3",
                   "num_global_key_value_heads");
}
END_TEST

/* ---- the commands on gemma4-keqv ------------------------------------------------------ */

static void check_checkpointing(const char *precision) {
    char *ref = test_tmpdir(), *cut = test_tmpdir(), *model = tt_repo_path(G4 "/model");
    char rows[4400], extra[8192], args[4400];
    for (int i = 0; i < 2; i++) {
        const char *dir = i ? cut : ref;
        snprintf(rows, sizeof rows, "%s/rows.jsonl", dir);
        tt_random_rows(rows, 24, 3, 30, 97, 19);
        snprintf(extra, sizeof extra,
                 "lora:\n  r: 4\n  alpha: 8\n  dropout: 0.1\n  target_modules: all-linear\n"
                 "data:\n  train: %s\n  seq_len: 32\n  packing: true\n  overflow: split\n"
                 "train:\n  batch_size: 2\n  grad_accum: 2\n  max_steps: 3\n  lr: 1.0e-2\n"
                 "  precision: %s\n  gradient_checkpointing: %s\n",
                 rows, precision, i ? "true" : "false");
        char *cfg = tt_write_config(dir, model, extra);
        snprintf(args, sizeof args, "train '%s'", cfg);
        tt_expect(dir, args, 0, NULL);
        free(cfg);
    }
    tt_assert_same_run(ref, cut, precision);
    test_rmtree(ref);
    test_rmtree(cut);
    free(ref);
    free(cut);
    free(model);
}

START_TEST(test_checkpointing_is_byte_identical_f32_and_bf16_packed) {
    check_checkpointing("f32");
    check_checkpointing("bf16");
}
END_TEST

/* fixture.json's integer list `key` as "1 2 3" (caller frees). */
static char *fixture_ids(const char *key) {
    json_error_t je;
    json_t *fx = json_load_file(G4 "/fixture.json", 0, &je), *a = json_object_get(fx, key);
    ck_assert_msg(json_is_array(a), "fixture.json has no %s", key);
    char *s = malloc(json_array_size(a) * 12 + 1);
    size_t at = 0;
    s[0] = '\0';
    for (size_t i = 0; i < json_array_size(a); i++)
        at += (size_t)sprintf(s + at, i ? " %lld" : "%lld",
                              (long long)json_integer_value(json_array_get(a, i)));
    json_decref(fx);
    return s;
}

/* merge --format hf folds the adapter (v_proj's only on the sliding layers: the full ones
 * have none) and the merged model generates the adapter's greedy ids; the GGUF export is
 * refused with the reason and the way out. */
START_TEST(test_merge_hf_generates_the_adapter_ids_and_gguf_is_refused) {
    char *dir = test_tmpdir(), *model = tt_repo_path(G4 "/model"), args[8192];
    char *adapter = tt_repo_path(G4 "/init_adapter");
    char *prompt = fixture_ids("greedy_prompt"), *want = fixture_ids("greedy_adapter");
    snprintf(args, sizeof args, "merge --model '%s' --adapter '%s' --out '%s/merged'", model,
             adapter, dir);
    tt_expect(dir, args, 0, "merged");
    snprintf(args, sizeof args,
             "generate --model '%s/merged' --prompt-ids '%s' -n 64 --precision f32", dir, prompt);
    char *out = tt_run_stdout(dir, args);
    out[strcspn(out, "\n")] = '\0';
    ck_assert_str_eq(out, want);
    free(out);
    snprintf(args, sizeof args, "merge --model '%s' --adapter '%s' --out '%s/m.gguf'", model,
             adapter, dir);
    tt_expect(dir, args, 1, "--format hf");
    free(prompt);
    free(want);
    free(adapter);
    free(model);
    test_rmtree(dir);
    free(dir);
}
END_TEST

Suite *gemma4_suite(void) {
    Suite *s = suite_create("gemma4");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_31b_shaped_config_reads_every_key);
    tcase_add_test(tc, test_causal_lm_defaults_follow_gemma4_text_config);
    tcase_add_test(tc, test_unsupported_variants_are_refused_by_name);
    tcase_add_test(tc, test_checkpointing_is_byte_identical_f32_and_bf16_packed);
    tcase_add_test(tc, test_merge_hf_generates_the_adapter_ids_and_gguf_is_refused);
    suite_add_tcase(s, tc);
    return s;
}
