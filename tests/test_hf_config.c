/* tests/test_hf_config.c — config.json of Llama, Mistral and Qwen2: transformers' defaults,
 * and malformed configs rejected with the field named. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/test_util.h"
#include "trainer/model/model.h"

#define CFG_BASE                                                                                   \
    "\"hidden_size\": 64, \"intermediate_size\": 172, \"num_hidden_layers\": 2, "                  \
    "\"num_attention_heads\": 8, \"vocab_size\": 512"

static void expect_config_error(const char *json, const char *why) {
    ModelConfig cfg;
    char err[512] = "";
    ck_assert_msg(hf_config_parse(json, strlen(json), "cfg.json", &cfg, err, sizeof err) != 0,
                  "accepted config that should fail with '%s'", why);
    ck_assert_msg(strstr(err, "cfg.json") && strstr(err, why), "error '%s' lacks '%s'", err, why);
}

START_TEST(test_config_defaults_follow_transformers) {
    const char *j = "{\"architectures\": [\"Qwen2ForCausalLM\"], " CFG_BASE "}";
    ModelConfig c;
    char err[512];
    ck_assert_msg(hf_config_parse(j, strlen(j), "cfg.json", &c, err, sizeof err) == 0, "%s", err);
    ck_assert(!strcmp(c.model_type, "qwen2") && c.qkv_bias && !c.o_bias && !c.tie_word_embeddings);
    ck_assert_int_eq(c.num_key_value_heads, 8);
    ck_assert_int_eq(c.head_dim, 8);
    ck_assert(c.rope_theta == 10000.0 && !c.rope_scaling.llama3);
    const char *l =
        "{\"model_type\": \"llama\", \"attention_bias\": true, \"head_dim\": 16, " CFG_BASE "}";
    ck_assert_msg(hf_config_parse(l, strlen(l), "cfg.json", &c, err, sizeof err) == 0, "%s", err);
    ck_assert(!strcmp(c.model_type, "llama") && c.qkv_bias && c.o_bias && c.head_dim == 16);
}
END_TEST

START_TEST(test_malformed_configs_name_the_field) {
    expect_config_error("{\"model_type\": \"llama\", " CFG_BASE, "invalid JSON");
    expect_config_error("{\"model_type\": \"llama\", \"hidden_size\": 64}",
                        "\"intermediate_size\"");
    expect_config_error("{\"model_type\": \"llama\", " CFG_BASE ", \"rope_theta\": \"big\"}",
                        "\"rope_theta\" must be a number");
    expect_config_error("{\"architectures\": [\"GPT2LMHeadModel\"], " CFG_BASE "}",
                        "GPT2LMHeadModel");
    expect_config_error("{\"model_type\": \"llama\", " CFG_BASE
                        ", \"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4}}",
                        "rope_scaling.rope_type \"yarn\"");
    expect_config_error("{\"model_type\": \"llama\", " CFG_BASE ", \"hidden_act\": \"gelu\"}",
                        "hidden_act");
    expect_config_error("{\"model_type\": \"llama\", " CFG_BASE ", \"num_key_value_heads\": 3}",
                        "multiple");
    expect_config_error("{\"model_type\": \"llama\", " CFG_BASE
                        ", \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8}}",
                        "low_freq_factor");
}
END_TEST

/* Issue 24 item 8: a family lorafit does not train is refused by its names, with the list of
 * the ones it does, whether config.json names it by model_type, architectures or both. */
START_TEST(test_unsupported_family_is_refused_by_name_with_the_supported_list) {
    static const char *const supported =
        "lorafit trains llama (LlamaForCausalLM), mistral (MistralForCausalLM), qwen2 "
        "(Qwen2ForCausalLM), qwen3 (Qwen3ForCausalLM)";
    static const char *const configs[][2] = {
        {"{\"model_type\": \"qwen3_moe\", \"architectures\": [\"Qwen3MoeForCausalLM\"], " CFG_BASE
         "}",
         "the model family \"qwen3_moe\" / Qwen3MoeForCausalLM is not supported"},
        {"{\"model_type\": \"gpt_oss\", " CFG_BASE "}",
         "the model family \"gpt_oss\" is not supported"},
        {"{\"architectures\": [\"LlavaForConditionalGeneration\"], " CFG_BASE "}",
         "the model family LlavaForConditionalGeneration is not supported"},
        /* a supported class under another family's model_type is that other family */
        {"{\"model_type\": \"qwen3_moe\", \"architectures\": [\"Qwen3ForCausalLM\"], " CFG_BASE "}",
         "the model family \"qwen3_moe\" / Qwen3ForCausalLM is not supported"},
    };
    for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++) {
        expect_config_error(configs[i][0], configs[i][1]);
        expect_config_error(configs[i][0], supported);
    }
    expect_config_error(
        "{\"model_type\": \"qwen2\", \"architectures\": [\"Qwen3ForCausalLM\"], " CFG_BASE "}",
        "name different families");
}
END_TEST

static ModelConfig parse_ok(const char *json);

/* Qwen3Config: head_dim 128 when absent (not hidden / heads), attention_bias on q/k/v/o, the
 * sliding window only when use_sliding_window (or sliding layer_types) turns it on. */
START_TEST(test_qwen3_config_follows_qwen3config) {
    ModelConfig c = parse_ok("{\"model_type\": \"qwen3\", " CFG_BASE "}");
    ck_assert_str_eq(hf_architecture(&c), "Qwen3ForCausalLM");
    ck_assert(c.head_dim == 128 && !c.head_dim_in_config && !c.qkv_bias && !c.o_bias);
    ck_assert_int_eq(c.max_position_embeddings, 32768);
    ck_assert_int_eq(c.sliding_window, 0);
    c = parse_ok("{\"architectures\": [\"Qwen3ForCausalLM\"], \"head_dim\": 16, "
                 "\"attention_bias\": true, \"sliding_window\": 64, " CFG_BASE "}");
    ck_assert(c.head_dim == 16 && c.head_dim_in_config && c.qkv_bias && c.o_bias);
    ck_assert_int_eq(c.sliding_window, 0);
    c = parse_ok("{\"model_type\": \"qwen3\", \"use_sliding_window\": true, "
                 "\"sliding_window\": 64, " CFG_BASE "}");
    ck_assert_int_eq(c.sliding_window, 64);
}
END_TEST

/* SmolLM3Config: rope_theta 2e6 and tied embeddings when absent; no_rope_layers as given
 * (1 RoPE, 0 none; at least one per layer), else a NoPE layer every no_rope_layer_interval
 * (4 by default). Olmo2Config: rms_norm_eps 1e-5. GraniteConfig: the multipliers 1.0. All
 * three in the supported list. */
START_TEST(test_smollm3_olmo2_granite_configs_follow_transformers) {
    ModelConfig c = parse_ok("{\"model_type\": \"smollm3\", \"num_hidden_layers\": 9, "
                             "\"hidden_size\": 64, \"intermediate_size\": 172, "
                             "\"num_attention_heads\": 8, \"vocab_size\": 512}");
    ck_assert(c.rope_theta == 2e6 && c.tie_word_embeddings && !c.qkv_bias);
    for (int l = 0; l < 9; l++) ck_assert_int_eq(hf_layer_has_rope(&c, l), (l + 1) % 4 != 0);
    c = parse_ok("{\"model_type\": \"smollm3\", \"no_rope_layer_interval\": 2, "
                 "\"tie_word_embeddings\": false, \"rope_theta\": 5e4, " CFG_BASE "}");
    ck_assert(!hf_layer_has_rope(&c, 1) && hf_layer_has_rope(&c, 0) && !c.tie_word_embeddings);
    ck_assert(c.rope_theta == 5e4);
    c = parse_ok("{\"architectures\": [\"SmolLM3ForCausalLM\"], \"no_rope_layers\": [0, 1, 1], "
                 "\"attention_bias\": true, " CFG_BASE "}");
    ck_assert(!hf_layer_has_rope(&c, 0) && hf_layer_has_rope(&c, 1) && c.qkv_bias && c.o_bias);
    expect_config_error("{\"model_type\": \"smollm3\", \"no_rope_layers\": [1], " CFG_BASE "}",
                        "\"no_rope_layers\" must be a list of at least num_hidden_layers (2)");
    expect_config_error("{\"model_type\": \"smollm3\", \"no_rope_layers\": [1, 2], " CFG_BASE "}",
                        "no_rope_layers[1] must be 0 or 1");
    expect_config_error("{\"model_type\": \"smollm3\", \"no_rope_layer_interval\": 0, " CFG_BASE
                        "}",
                        "\"no_rope_layer_interval\" = 0 is out of range");
    c = parse_ok("{\"model_type\": \"olmo2\", " CFG_BASE "}");
    ck_assert(c.rms_norm_eps == 1e-5 && !c.tie_word_embeddings &&
              c.max_position_embeddings == 2048);
    for (int l = 0; l < 2; l++) ck_assert(hf_layer_has_rope(&c, l));
    c = parse_ok("{\"model_type\": \"olmo2\", \"rms_norm_eps\": 1e-6, " CFG_BASE "}");
    ck_assert(c.rms_norm_eps == 1e-6);
    c = parse_ok("{\"model_type\": \"granite\", " CFG_BASE "}");
    ck_assert(c.embedding_multiplier == 1 && c.attention_multiplier == 1 &&
              c.residual_multiplier == 1 && c.logits_scaling == 1);
    c = parse_ok("{\"architectures\": [\"GraniteForCausalLM\"], \"embedding_multiplier\": 12, "
                 "\"attention_multiplier\": 0.015625, \"residual_multiplier\": 0.22, "
                 "\"logits_scaling\": 8.0, " CFG_BASE "}");
    ck_assert(c.embedding_multiplier == 12 && c.attention_multiplier == 0.015625 &&
              c.residual_multiplier == 0.22 && c.logits_scaling == 8);
    expect_config_error("{\"model_type\": \"granite\", \"logits_scaling\": 0, " CFG_BASE "}",
                        "\"logits_scaling\" must be a positive number");
    expect_config_error("{\"model_type\": \"gpt_oss\", " CFG_BASE "}",
                        "smollm3 (SmolLM3ForCausalLM), olmo2 (Olmo2ForCausalLM), granite "
                        "(GraniteForCausalLM)");
}
END_TEST

static ModelConfig parse_ok(const char *json) {
    ModelConfig c;
    char err[512];
    ck_assert_msg(hf_config_parse(json, strlen(json), "cfg.json", &c, err, sizeof err) == 0,
                  "%s: %s", json, err);
    return c;
}

#define LLAMA3_SCALING                                                                             \
    "\"factor\": 32.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, "                      \
    "\"original_max_position_embeddings\": 8192"

START_TEST(test_transformers5_rope_parameters_give_theta_and_scaling) {
    /* transformers 5 writes RoPE only as rope_parameters: read alone, the top-level keys
     * would leave RoPE at the default base 10000 without a word */
    ModelConfig c = parse_ok("{\"model_type\": \"qwen2\", " CFG_BASE
                             ", \"rope_parameters\": {\"rope_type\": \"default\", "
                             "\"rope_theta\": 1000000.0}}");
    ck_assert(c.rope_theta == 1e6 && !c.rope_scaling.llama3);
    ModelConfig v5 = parse_ok("{\"model_type\": \"llama\", " CFG_BASE
                              ", \"rope_parameters\": {\"rope_type\": \"llama3\", "
                              "\"rope_theta\": 500000.0, " LLAMA3_SCALING "}}");
    ModelConfig v4 = parse_ok("{\"model_type\": \"llama\", " CFG_BASE
                              ", \"rope_theta\": 500000.0, \"rope_scaling\": {\"rope_type\": "
                              "\"llama3\", " LLAMA3_SCALING "}}");
    ck_assert(v5.rope_theta == 5e5 && v5.rope_scaling.llama3);
    ck_assert(memcmp(&v5.rope_scaling, &v4.rope_scaling, sizeof v4.rope_scaling) == 0);
    /* both forms, agreeing: fine; disagreeing: which one transformers would read depends on
     * its version, so neither is guessed */
    parse_ok("{\"model_type\": \"llama\", " CFG_BASE
             ", \"rope_theta\": 500000.0, \"rope_parameters\": {\"rope_theta\": 500000.0}}");
    expect_config_error("{\"model_type\": \"llama\", " CFG_BASE
                        ", \"rope_theta\": 10000.0, \"rope_parameters\": {\"rope_type\": "
                        "\"default\", \"rope_theta\": 500000.0}}",
                        "disagree");
    expect_config_error("{\"model_type\": \"llama\", " CFG_BASE
                        ", \"rope_scaling\": null, \"rope_parameters\": {\"rope_type\": "
                        "\"yarn\", \"rope_theta\": 10000.0, \"factor\": 4}}",
                        "rope_parameters.rope_type \"yarn\"");
    expect_config_error("{\"model_type\": \"llama\", " CFG_BASE
                        ", \"rope_parameters\": {\"rope_theta\": 10000.0, "
                        "\"partial_rotary_factor\": 0.5}}",
                        "partial_rotary_factor");
    expect_config_error("{\"model_type\": \"llama\", " CFG_BASE
                        ", \"rope_parameters\": {\"full_attention\": {\"rope_theta\": 1e6}}}",
                        "per layer type");
}
END_TEST

START_TEST(test_sliding_window_is_kept_where_it_applies) {
    /* Mistral's window applies; Qwen2's only with use_sliding_window or sliding layer_types;
     * Llama has none */
    ck_assert_int_eq(
        parse_ok("{\"model_type\": \"mistral\", " CFG_BASE ", \"sliding_window\": 4096}")
            .sliding_window,
        4096);
    ck_assert_int_eq(
        parse_ok("{\"model_type\": \"mistral\", " CFG_BASE ", \"sliding_window\": null}")
            .sliding_window,
        0);
    ck_assert_int_eq(parse_ok("{\"model_type\": \"qwen2\", " CFG_BASE
                              ", \"sliding_window\": 32768, \"use_sliding_window\": false}")
                         .sliding_window,
                     0);
    ck_assert_int_eq(parse_ok("{\"model_type\": \"qwen2\", " CFG_BASE
                              ", \"sliding_window\": 64, \"use_sliding_window\": true}")
                         .sliding_window,
                     64);
    ck_assert_int_eq(parse_ok("{\"model_type\": \"qwen2\", " CFG_BASE
                              ", \"sliding_window\": 64, \"layer_types\": [\"full_attention\", "
                              "\"sliding_attention\"]}")
                         .sliding_window,
                     64);
    ck_assert_int_eq(parse_ok("{\"model_type\": \"llama\", " CFG_BASE ", \"sliding_window\": 64}")
                         .sliding_window,
                     0);
    expect_config_error("{\"model_type\": \"qwen2\", " CFG_BASE
                        ", \"layer_types\": [\"full_attention\", \"chunked_attention\"]}",
                        "layer_types[1]");
    expect_config_error("{\"model_type\": \"qwen2\", " CFG_BASE
                        ", \"layer_types\": [\"full_attention\"]}",
                        "num_hidden_layers (2)");
    /* per layer: Mistral's every layer; Qwen2's named ones, or from max_window_layers on */
    ModelConfig c = parse_ok("{\"model_type\": \"mistral\", " CFG_BASE ", \"sliding_window\": 64}");
    ck_assert(hf_layer_window(&c, 0) == 64 && hf_layer_window(&c, 1) == 64);
    c = parse_ok("{\"model_type\": \"qwen2\", " CFG_BASE
                 ", \"sliding_window\": 64, \"layer_types\": [\"sliding_attention\", "
                 "\"full_attention\"]}");
    ck_assert(hf_layer_window(&c, 0) == 64 && hf_layer_window(&c, 1) == 0);
    c = parse_ok("{\"model_type\": \"qwen3\", " CFG_BASE
                 ", \"sliding_window\": 64, \"use_sliding_window\": true, "
                 "\"max_window_layers\": 1}");
    ck_assert(hf_layer_window(&c, 0) == 0 && hf_layer_window(&c, 1) == 64);
    c = parse_ok("{\"model_type\": \"qwen2\", " CFG_BASE
                 ", \"sliding_window\": 64, \"use_sliding_window\": true}");
    ck_assert(hf_layer_window(&c, 0) == 0 && hf_layer_window(&c, 1) == 0); /* default 28 */
}
END_TEST

/* Gemma3TextConfig / Gemma2Config defaults, and what their configs can say: the sliding
 * layers from sliding_window_pattern (Gemma 3: every 6th full) or the even ones (Gemma 2),
 * tied, query_pre_attn_scalar 256, rope_theta 1e6 (Gemma 3) with a local base of 1e4,
 * transformers 5's rope_parameters per layer type, the soft-caps (Gemma 2: 50 and 30 when
 * absent, off when null); an embedding model (bidirectional) and another activation refused. */
START_TEST(test_gemma_configs_follow_transformers) {
    ModelConfig c = parse_ok("{\"model_type\": \"gemma3_text\", \"num_hidden_layers\": 7, "
                             "\"hidden_size\": 64, \"intermediate_size\": 172, "
                             "\"num_attention_heads\": 8, \"vocab_size\": 512}");
    ck_assert(c.tie_word_embeddings && c.head_dim == 256 && c.rope_theta == 1e6 &&
              c.rope_local_theta == 1e4 && c.sliding_window == 4096);
    ck_assert(fabsf(c.attn_scale - 1.0f / 16.0f) < 1e-9f && c.attn_softcap == 0 &&
              c.final_softcap == 0);
    for (int l = 0; l < 7; l++) ck_assert_int_eq(hf_layer_window(&c, l), l == 5 ? 0 : 4096);
    c = parse_ok("{\"model_type\": \"gemma3_text\", " CFG_BASE
                 ", \"rope_parameters\": {\"full_attention\": {\"rope_type\": \"linear\", "
                 "\"factor\": 8.0, \"rope_theta\": 1e6}, \"sliding_attention\": "
                 "{\"rope_type\": \"default\", \"rope_theta\": 1e4}}}");
    ck_assert(c.rope_scaling.linear && c.rope_scaling.factor == 8.0 && c.rope_theta == 1e6 &&
              c.rope_local_theta == 1e4);
    c = parse_ok("{\"model_type\": \"gemma2\", " CFG_BASE "}");
    ck_assert(c.attn_softcap == 50.0f && c.final_softcap == 30.0f && c.rope_theta == 1e4);
    ck_assert(hf_layer_window(&c, 0) == 4096 && hf_layer_window(&c, 1) == 0);
    c = parse_ok("{\"model_type\": \"gemma2\", " CFG_BASE
                 ", \"final_logit_softcapping\": null, \"query_pre_attn_scalar\": 144}");
    ck_assert(c.final_softcap == 0 && fabsf(c.attn_scale - 1.0f / 12.0f) < 1e-9f);
    expect_config_error("{\"model_type\": \"gemma3_text\", " CFG_BASE
                        ", \"use_bidirectional_attention\": true}",
                        "use_bidirectional_attention");
    expect_config_error("{\"model_type\": \"gemma2\", " CFG_BASE
                        ", \"hidden_activation\": \"gelu\"}",
                        "gelu_pytorch_tanh");
}
END_TEST

Suite *hf_config_suite(void) {
    Suite *s = suite_create("hf_config");
    TCase *tc = tcase_create("config_json");
    tcase_add_test(tc, test_config_defaults_follow_transformers);
    tcase_add_test(tc, test_malformed_configs_name_the_field);
    tcase_add_test(tc, test_unsupported_family_is_refused_by_name_with_the_supported_list);
    tcase_add_test(tc, test_qwen3_config_follows_qwen3config);
    tcase_add_test(tc, test_smollm3_olmo2_granite_configs_follow_transformers);
    tcase_add_test(tc, test_transformers5_rope_parameters_give_theta_and_scaling);
    tcase_add_test(tc, test_sliding_window_is_kept_where_it_applies);
    tcase_add_test(tc, test_gemma_configs_follow_transformers);
    suite_add_tcase(s, tc);
    return s;
}
