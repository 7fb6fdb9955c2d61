/* tests/test_gemma4.c — Gemma 4 (gemma4_text, and the gemma4 wrapper): its config.json keys
 * as configuration_gemma4.py reads them, the variants refused by name, and the fixtures
 * (tests/test_gemma4.h) through the commands. Their numbers are held to the float64
 * reference (tests/reference/ref_gemma4.py) in test_model.c (loss, gradients, greedy ids)
 * and test_train.c (3 AdamW steps); here: gradient checkpointing byte-identical in f32 and
 * bf16 with packing and dropout, two ranks, killed-and-resumed byte-identical, the per-layer
 * table kept in its stored dtype, the chat template in generate. Merges, adapters, the GGUF
 * export and the wrapper form: test_gemma4_export.c. */
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/test_gemma4.h"
#include "tests/test_mpi_util.h"
#include "tests/test_train_util.h"
#include "tests/test_util.h"
#include "trainer/model/family.h"
#include "trainer/model/lora.h"
#include "trainer/model/model.h"
#include "trainer/store/store.h"

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

/* The MoE (26B-A4B), bidirectional attention, per_layer_config, another activation, another
 * RoPE, KV heads that do not divide the heads: refused with the key named. */
START_TEST(test_unsupported_variants_are_refused_by_name) {
    expect_refused(", \"hidden_size_per_layer_input\": 0, \"enable_moe_block\": true", "26B-A4B");
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

/* E2B's shape (35 layers, 4 sliding : 1 full, per-layer inputs of 256, the last 20 layers
 * sharing K and V with a doubled MLP): layers 15..34 have no k_proj, v_proj or k_norm, an
 * intermediate size of 2 * 6144, and read layer 13 (sliding) or 14 (full). */
START_TEST(test_e2b_shaped_config_shares_kv_and_doubles_the_mlp) {
    char json[8192], types[4096] = "";
    for (int l = 0; l < 35; l++)
        strcat(types, (l + 1) % 5 ? "\"sliding_attention\", " : "\"full_attention\", ");
    types[strlen(types) - 2] = '\0';
    snprintf(json, sizeof json,
             "{\"model_type\": \"gemma4_text\", \"hidden_size\": 1536, \"intermediate_size\": "
             "6144, \"num_hidden_layers\": 35, \"num_attention_heads\": 8, "
             "\"num_key_value_heads\": 1, \"head_dim\": 256, \"global_head_dim\": 512, "
             "\"vocab_size\": 262144, \"vocab_size_per_layer_input\": 262144, "
             "\"hidden_size_per_layer_input\": 256, \"num_kv_shared_layers\": 20, "
             "\"use_double_wide_mlp\": true, \"sliding_window\": 512, \"layer_types\": [%s]}",
             types);
    ModelConfig c;
    char err[512];
    ck_assert_msg(parse(json, &c, err, sizeof err) == 0, "%s", err);
    ck_assert(c.ple_dim == 256 && c.ple_vocab == 262144 && c.kv_shared == 20);
    unsigned kv = 1u << MODULE_K | 1u << MODULE_V;
    for (int l = 0; l < 35; l++) {
        bool shares = l >= 15;
        ck_assert_int_eq(hf_layer_shares_kv(&c, l), shares);
        ck_assert_uint_eq(model_layer_modules(&c, l) & kv, shares ? 0 : kv);
        int out, in;
        model_layer_module_dims(&c, l, MODULE_GATE, &out, &in);
        ck_assert_int_eq(out, shares ? 12288 : 6144);
        if (shares) ck_assert_int_eq(hf_layer_kv_source(&c, l), (l + 1) % 5 ? 13 : 14);
    }
    ck_assert_int_eq(hf_layer_kv_heads(&c, 34), 1); /* no attention_k_eq_v: the sliding one */
}
END_TEST

/* KV sharing transformers could not run, and a per-layer table without rows for every id. */
START_TEST(test_impossible_e_models_are_refused) {
    expect_refused(", \"num_kv_shared_layers\": 4", "less than \"num_hidden_layers\"");
    expect_refused(", \"num_kv_shared_layers\": 2, \"layer_types\": [\"full_attention\", "
                   "\"full_attention\", \"sliding_attention\", \"full_attention\"]",
                   "layer 2 shares K and V (num_kv_shared_layers) but no earlier layer is sliding");
    expect_refused(", \"num_kv_shared_layers\": 1, \"vocab_size_per_layer_input\": 96",
                   "vocab_size_per_layer_input");
}
END_TEST

/* ---- the commands on the fixtures ----------------------------------------------------- */

static void check_checkpointing(const char *fixture, const char *precision) {
    char *ref = test_tmpdir(), *cut = test_tmpdir(), model_rel[256];
    snprintf(model_rel, sizeof model_rel, "%s/model", fixture);
    char *model = tt_repo_path(model_rel);
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
    check_checkpointing(G4, "f32");
    check_checkpointing(G4, "bf16");
}
END_TEST

/* KV sharing across the layer graph: the sharing layers' gradients reach layers 1 and 3. */
START_TEST(test_checkpointing_with_kv_sharing_is_byte_identical_f32_and_bf16) {
    check_checkpointing(E2B, "f32");
    check_checkpointing(E2B, "bf16");
}
END_TEST

/* Two MPI ranks with batch 2 each train what one process trains with batch 4 (the KV-sharing
 * and per-layer-input model). */
START_TEST(test_two_ranks_train_what_one_process_trains_with_twice_the_batch) {
    NEED_MPIRUN();
    check_fixture_two_ranks("gemma4-e2b", 97);
}
END_TEST

/* A 4-step E2B-like job saving every 2 steps, killed after step 3 and resumed from
 * checkpoint-2, ends byte-identical to the uninterrupted run. */
START_TEST(test_killed_and_resumed_is_byte_identical) {
    char *ref = test_tmpdir(), *cut = test_tmpdir(), args[4400], log_path[4400], rows[4400];
    char *model = tt_repo_path(E2B "/model"), extra[8192], *cfg[2];
    for (int i = 0; i < 2; i++) {
        const char *dir = i ? cut : ref;
        snprintf(rows, sizeof rows, "%s/rows.jsonl", dir);
        tt_random_rows(rows, 24, 3, 30, 97, 23);
        snprintf(extra, sizeof extra,
                 "lora:\n  r: 4\n  alpha: 8\n  dropout: 0.1\n  target_modules: all-linear\n"
                 "data:\n  train: %s\n  seq_len: 32\n  packing: true\n  shuffle: true\n"
                 "train:\n  batch_size: 2\n  grad_accum: 2\n  max_steps: 4\n  lr: 1.0e-2\n"
                 "  precision: f32\n  seed: 5\n",
                 rows);
        cfg[i] = tt_write_config(dir, model, extra);
    }
    snprintf(args, sizeof args, "train '%s' --set output.save_every=2", cfg[0]);
    tt_expect(ref, args, 0, NULL);
    const char *argv[] = {"train", cfg[1], "--set", "output.save_every=2", "--resume", NULL};
    snprintf(log_path, sizeof log_path, "%s/log.txt", cut);
    ck_assert_int_eq(tt_wait(tt_spawn_fault(argv, log_path, "kill:step:3")), 128 + SIGKILL);
    unlink(log_path);
    ck_assert_int_eq(tt_wait(tt_spawn(argv, log_path)), 0);
    char *log = test_read_file(log_path, NULL);
    ck_assert_msg(log && strstr(log, "resuming from") && strstr(log, "checkpoint-2"), "%s", log);
    free(log);
    tt_assert_same_run(ref, cut, "killed after step 3 and resumed");
    for (int i = 0; i < 2; i++) free(cfg[i]);
    free(model);
    test_rmtree(ref);
    test_rmtree(cut);
    free(ref);
    free(cut);
}
END_TEST

/* A BF16 checkpoint (merge --dtype bf16 of the adapted fixture) loaded in F32: every weight widened
 * into the conversion buffer but the per-layer table, which stays mapped in BF16 (2 bytes a value).
 */
START_TEST(test_per_layer_table_stays_in_its_stored_dtype) {
    char *dir = test_tmpdir(), *model = tt_repo_path(E2B "/model"), args[8192], path[4400];
    char *adapter = tt_repo_path(E2B "/init_adapter"), err[1024];
    snprintf(args, sizeof args, "merge --model '%s' --adapter '%s' --out '%s/bf16' --dtype bf16",
             model, adapter, dir);
    tt_expect(dir, args, 0, NULL);
    snprintf(path, sizeof path, "%s/bf16", dir);
    Model *m = model_load(path, err, sizeof err);
    ck_assert_msg(m != NULL, "%s", err);
    const ModelConfig *c = model_config(m);
    size_t table = (size_t)c->ple_vocab * (size_t)(c->num_hidden_layers * c->ple_dim);
    size_t params = model_param_count(m);
    ck_assert_uint_eq(model_converted_bytes(m), (params - table) * sizeof(float));
    ck_assert_uint_eq(model_weight_bytes(m), (params - table) * sizeof(float) + table * 2);
    model_free(m);
    free(adapter);
    free(model);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* `lorafit tokenize DIR` of one JSON line: the parsed reply (caller decrefs). */
static json_t *tokenize(const char *dir, const char *model, const char *line) {
    char args[8192];
    free(tt_write_text(dir, "in.jsonl", line));
    snprintf(args, sizeof args, "tokenize '%s' < '%s/in.jsonl'", model, dir);
    char *out = tt_run_stdout(dir, args);
    json_t *r = json_loads(out, 0, NULL);
    ck_assert_msg(r != NULL, "%s", out);
    free(out);
    return r;
}

/* gemma4-chat (an E2B-like model with a 311-token byte-level tokenizer holding Gemma 4's
 * specials and the 31B's chat template, tests/data/chat/template_gemma4.json): --chat renders
 * <bos><|turn>user\n...<turn|>\n<|turn>model\n and the empty thought channel, as the reference
 * renderer does, and prints the decoded continuation of exactly those ids up to the first
 * end-of-turn token (<eos> 305, <turn|> 308). */
START_TEST(test_generate_chat_renders_gemma4_template) {
    char *dir = test_tmpdir(), *model = tt_repo_path(CHAT "/model"), args[8192];
    json_t *r = tokenize(dir, model,
                         "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, "
                         "{\"role\": \"user\", \"content\": \"Hi there\"}], "
                         "\"add_generation_prompt\": true}\n");
    ck_assert_str_eq(json_string_value(json_object_get(r, "text")),
                     "<bos><|turn>system\nBe brief.<turn|>\n<|turn>user\nHi there<turn|>\n"
                     "<|turn>model\n<|channel>thought\n<channel|>");
    json_decref(r);
    r = tokenize(dir, model,
                 "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi there\"}], "
                 "\"add_generation_prompt\": true}\n");
    json_t *ids = json_object_get(r, "input_ids");
    char prompt[4096] = "";
    size_t at = 0;
    for (size_t i = 0; i < json_array_size(ids); i++)
        at += (size_t)snprintf(prompt + at, sizeof prompt - at, i ? " %lld" : "%lld",
                               (long long)json_integer_value(json_array_get(ids, i)));
    int n_prompt = (int)json_array_size(ids);
    json_decref(r);
    snprintf(args, sizeof args, "generate --model '%s' --prompt-ids '%s' -n 24 --precision f32",
             model, prompt);
    char *gen = tt_run_stdout(dir, args), cont[2048] = "[";
    int k = 0;
    char *tok = strtok(gen, " \n");
    for (int i = 0; tok; i++, tok = strtok(NULL, " \n")) {
        if (i < n_prompt) continue;
        int id = atoi(tok);
        if (id == 305 || id == 308) break;
        snprintf(cont + strlen(cont), sizeof cont - strlen(cont), k++ ? ", %d" : "%d", id);
    }
    char line[4096];
    snprintf(line, sizeof line, "{\"input_ids\": %s]}\n", cont);
    free(tt_write_text(dir, "cont.jsonl", line));
    snprintf(args, sizeof args, "tokenize '%s' --decode < '%s/cont.jsonl'", model, dir);
    char *decoded = tt_run_stdout(dir, args);
    json_t *d = json_loads(decoded, 0, NULL);
    ck_assert_msg(d != NULL, "%s", decoded);
    snprintf(args, sizeof args,
             "generate --model '%s' --prompt 'Hi there' --chat -n 24 --precision f32", model);
    char *reply = tt_run_stdout(dir, args);
    reply[strlen(reply) - 1] = '\0';
    ck_assert_msg(!strcmp(reply, json_string_value(json_object_get(d, "text"))),
                  "--chat printed '%s', the rendered prompt's continuation is '%s'", reply,
                  json_string_value(json_object_get(d, "text")));
    free(reply);
    json_decref(d);
    free(decoded);
    free(gen);
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
    tcase_add_test(tc, test_e2b_shaped_config_shares_kv_and_doubles_the_mlp);
    tcase_add_test(tc, test_impossible_e_models_are_refused);
    tcase_add_test(tc, test_checkpointing_is_byte_identical_f32_and_bf16_packed);
    tcase_add_test(tc, test_checkpointing_with_kv_sharing_is_byte_identical_f32_and_bf16);
    tcase_add_test(tc, test_two_ranks_train_what_one_process_trains_with_twice_the_batch);
    tcase_add_test(tc, test_killed_and_resumed_is_byte_identical);
    tcase_add_test(tc, test_per_layer_table_stays_in_its_stored_dtype);
    tcase_add_test(tc, test_generate_chat_renders_gemma4_template);
    suite_add_tcase(s, tc);
    return s;
}
