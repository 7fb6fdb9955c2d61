/* tests/test_hf_config.c — config.json of Llama, Mistral and Qwen2: transformers' defaults,
 * and malformed configs rejected with the field named. */
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
    ck_assert(c.arch == ARCH_QWEN2 && c.qkv_bias && !c.o_bias && !c.tie_word_embeddings);
    ck_assert_int_eq(c.num_key_value_heads, 8);
    ck_assert_int_eq(c.head_dim, 8);
    ck_assert(c.rope_theta == 10000.0 && !c.rope_scaling.llama3);
    const char *l =
        "{\"model_type\": \"llama\", \"attention_bias\": true, \"head_dim\": 16, " CFG_BASE "}";
    ck_assert_msg(hf_config_parse(l, strlen(l), "cfg.json", &c, err, sizeof err) == 0, "%s", err);
    ck_assert(c.arch == ARCH_LLAMA && c.qkv_bias && c.o_bias && c.head_dim == 16);
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

Suite *hf_config_suite(void) {
    Suite *s = suite_create("hf_config");
    TCase *tc = tcase_create("config_json");
    tcase_add_test(tc, test_config_defaults_follow_transformers);
    tcase_add_test(tc, test_malformed_configs_name_the_field);
    suite_add_tcase(s, tc);
    return s;
}
