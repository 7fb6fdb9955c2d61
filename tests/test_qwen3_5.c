/* tests/test_qwen3_5.c — Qwen3.5 (issue 25) through the commands, on the tiny fixture
 * tests/data/train/qwen35-text (three Gated DeltaNet layers and one gated attention layer).
 * The numbers are held to the float64 reference in test_model.c (loss, gradients, greedy),
 * test_train.c (3 AdamW steps), test_packing.c and test_precision.c (bf16); here: the layer
 * schedule from the config, the default LoRA targets reaching the DeltaNet layers, gradient
 * checkpointing byte-identical in f32 and bf16 with packing and dropout across delta-rule
 * chunks, a run killed and resumed byte-identical, the HF merge generating the adapter's
 * ids, and the GGUF export's refusal. */
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/test_train_util.h"
#include "tests/test_util.h"
#include "trainer/model/family.h"
#include "trainer/model/model.h"
#include "trainer/store/store.h"

#define Q35 "tests/data/train/qwen35-text"

/* ---- the config ----------------------------------------------------------------------- */

static int parse(const char *json, ModelConfig *c, char *err, size_t errlen) {
    return hf_config_parse(json, strlen(json), "config.json", c, err, errlen);
}

#define Q35_KEYS                                                                                   \
    "\"model_type\": \"qwen3_5_text\", \"hidden_size\": 32, \"intermediate_size\": 48, "           \
    "\"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"head_dim\": 16, "                   \
    "\"vocab_size\": 97, \"linear_num_key_heads\": 2, \"linear_num_value_heads\": 4, "             \
    "\"linear_key_head_dim\": 8, \"linear_value_head_dim\": 12"

/* Qwen3_5TextConfig: without layer_types every full_attention_interval-th layer is full
 * (4 by default); partial_rotary_factor 0.25; q_proj twice as wide; a DeltaNet layer has
 * in_proj_* and out_proj, an attention layer q k v o, both the MLP. */
START_TEST(test_layer_schedule_and_modules_from_the_config) {
    ModelConfig c;
    char err[512];
    ck_assert_msg(parse("{" Q35_KEYS ", \"num_hidden_layers\": 8}", &c, err, sizeof err) == 0, "%s",
                  err);
    for (int l = 0; l < 8; l++) ck_assert_int_eq(hf_layer_is_linear(&c, l), (l + 1) % 4 != 0);
    ck_assert_int_eq(c.rotary_dim, 4);
    int out, in;
    model_module_dims(&c, MODULE_Q, &out, &in);
    ck_assert_int_eq(out, 2 * 4 * 16);
    model_module_dims(&c, MODULE_IN_QKV, &out, &in);
    ck_assert_int_eq(out, 2 * 2 * 8 + 4 * 12);
    model_module_dims(&c, MODULE_OUT, &out, &in);
    ck_assert(out == 32 && in == 4 * 12);
    unsigned mlp = 1u << MODULE_GATE | 1u << MODULE_UP | 1u << MODULE_DOWN;
    ck_assert_uint_eq(model_layer_modules(&c, 0), mlp | 1u << MODULE_IN_QKV | 1u << MODULE_IN_Z |
                                                      1u << MODULE_IN_B | 1u << MODULE_IN_A |
                                                      1u << MODULE_OUT);
    ck_assert_uint_eq(model_layer_modules(&c, 3),
                      mlp | 1u << MODULE_Q | 1u << MODULE_K | 1u << MODULE_V | 1u << MODULE_O);

    ck_assert(parse("{" Q35_KEYS ", \"num_hidden_layers\": 4, \"full_attention_interval\": 2}", &c,
                    err, sizeof err) == 0);
    for (int l = 0; l < 4; l++) ck_assert_int_eq(hf_layer_is_linear(&c, l), l % 2 == 0);
    ck_assert(parse("{" Q35_KEYS ", \"num_hidden_layers\": 2, \"layer_types\": "
                    "[\"full_attention\", \"linear_attention\"]}",
                    &c, err, sizeof err) == 0);
    ck_assert(!hf_layer_is_linear(&c, 0) && hf_layer_is_linear(&c, 1));

    ck_assert(parse("{" Q35_KEYS ", \"num_hidden_layers\": 2, \"layer_types\": "
                    "[\"full_attention\", \"sliding_attention\"]}",
                    &c, err, sizeof err) != 0);
    ck_assert_msg(strstr(err, "layer_types[1]") && strstr(err, "linear_attention"), "%s", err);
    ck_assert(parse("{\"model_type\": \"qwen3_5_text\", \"hidden_size\": 32, "
                    "\"intermediate_size\": 48, \"num_attention_heads\": 4, \"vocab_size\": 97, "
                    "\"num_hidden_layers\": 2, \"linear_num_key_heads\": 2, "
                    "\"linear_num_value_heads\": 3}",
                    &c, err, sizeof err) != 0);
    ck_assert_msg(strstr(err, "linear_num_value_heads"), "%s", err);
    ck_assert(
        parse("{\"model_type\": \"qwen3_5_moe\", \"hidden_size\": 32}", &c, err, sizeof err) != 0);
    ck_assert_msg(strstr(err, "qwen3_5_moe") && strstr(err, "not supported"), "%s", err);
}
END_TEST

/* ---- training ------------------------------------------------------------------------- */

static char *write_job(const char *dir, const char *extra_train) {
    char rows[4400], extra[8192];
    snprintf(rows, sizeof rows, "%s/rows.jsonl", dir);
    tt_random_rows(rows, 24, 30, 90, 97, 17); /* ~2-5 rows to a sequence of 160 */
    char *model = tt_repo_path(Q35 "/model");
    snprintf(extra, sizeof extra,
             "lora:\n  r: 4\n  alpha: 8\n  dropout: 0.1\n"
             "data:\n  train: %s\n  seq_len: 160\n  packing: true\n  overflow: split\n"
             "  shuffle: true\n  shuffle_buffer: 8\n"
             "train:\n  batch_size: 2\n  grad_accum: 2\n  lr: 1.0e-2\n  seed: 5\n%s",
             rows, extra_train);
    char *cfg = tt_write_config(dir, model, extra);
    free(model);
    return cfg;
}

/* Without lora.target_modules a run adapts all twelve projections, the DeltaNet's included. */
START_TEST(test_default_targets_reach_the_deltanet_layers) {
    char *dir = test_tmpdir(), args[4400], path[4400];
    char *cfg = write_job(dir, "  max_steps: 1\n  precision: f32\n");
    snprintf(args, sizeof args, "train '%s'", cfg);
    tt_expect(dir, args, 0, NULL);
    snprintf(path, sizeof path, "%s/out/adapter/adapter_config.json", dir);
    json_error_t je;
    json_t *ac = json_load_file(path, 0, &je);
    ck_assert_msg(ac != NULL, "%s: %s", path, je.text);
    json_t *t = json_object_get(ac, "target_modules");
    ck_assert_int_eq((int)json_array_size(t), 12);
    bool out_proj = false, in_qkv = false;
    for (size_t i = 0; i < json_array_size(t); i++) {
        const char *s = json_string_value(json_array_get(t, i));
        out_proj |= strcmp(s, "out_proj") == 0;
        in_qkv |= strcmp(s, "in_proj_qkv") == 0;
    }
    ck_assert(out_proj && in_qkv);
    json_decref(ac);
    free(cfg);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* A packed job with dropout on every projection, two micro-batches per step, sequences of
 * three delta-rule chunks, trained without and with gradient checkpointing in `precision`:
 * the same adapter bytes and metrics. */
static void check_checkpointing(const char *precision) {
    char *ref = test_tmpdir(), *cut = test_tmpdir(), extra[256], args[4400];
    for (int i = 0; i < 2; i++) {
        const char *dir = i ? cut : ref;
        snprintf(extra, sizeof extra,
                 "  max_steps: 3\n  precision: %s\n  gradient_checkpointing: %s\n", precision,
                 i ? "true" : "false");
        char *cfg = write_job(dir, extra);
        snprintf(args, sizeof args, "train '%s'", cfg);
        tt_expect(dir, args, 0, NULL);
        free(cfg);
    }
    tt_assert_same_run(ref, cut, precision);
    test_rmtree(ref);
    test_rmtree(cut);
    free(ref);
    free(cut);
}

START_TEST(test_checkpointing_is_byte_identical_f32_and_bf16_packed) {
    check_checkpointing("f32");
    check_checkpointing("bf16");
}
END_TEST

/* A 4-step job with checkpoints every 2 steps, killed after step 3 and resumed from
 * checkpoint-2, ends byte-identical to the uninterrupted run (adapter, optimizer, data
 * position, dropout masks). */
START_TEST(test_killed_and_resumed_is_byte_identical) {
    char *ref = test_tmpdir(), *cut = test_tmpdir(), args[4400], log_path[4400];
    const char *extra = "  max_steps: 4\n  precision: f32\n";
    char *ref_cfg = write_job(ref, extra), *cut_cfg = write_job(cut, extra);
    snprintf(args, sizeof args, "train '%s' --set output.save_every=2", ref_cfg);
    tt_expect(ref, args, 0, NULL);
    const char *argv[] = {"train", cut_cfg, "--set", "output.save_every=2", "--resume", NULL};
    snprintf(log_path, sizeof log_path, "%s/log.txt", cut);
    ck_assert_int_eq(tt_wait(tt_spawn_fault(argv, log_path, "kill:step:3")), 128 + SIGKILL);
    unlink(log_path);
    ck_assert_int_eq(tt_wait(tt_spawn(argv, log_path)), 0);
    char *log = test_read_file(log_path, NULL);
    ck_assert_msg(log && strstr(log, "resuming from") && strstr(log, "checkpoint-2"), "%s", log);
    free(log);
    tt_assert_same_run(ref, cut, "killed after step 3 and resumed");
    free(ref_cfg);
    free(cut_cfg);
    test_rmtree(ref);
    test_rmtree(cut);
    free(ref);
    free(cut);
}
END_TEST

/* ---- generation ----------------------------------------------------------------------- */

/* The family's decoder (recurrent state, conv window, KV cache; one token at a time) gives
 * the logits of the full forward pass at every position of a 150-token sequence (three
 * delta-rule chunks), with the adapter: within 1e-4 of the largest logit. */
START_TEST(test_decoder_logits_equal_the_forward_pass) {
    char err[1024];
    Model *m = model_load(Q35 "/model", err, sizeof err);
    ck_assert_msg(m != NULL, "%s", err);
    Lora *lora = lora_load_adapter(m, Q35 "/init_adapter", err, sizeof err);
    ck_assert_msg(lora != NULL, "%s", err);
    const ModelConfig *c = model_config(m);
    enum { T = 150 };
    int32_t ids[T];
    uint64_t seed = 3;
    for (int t = 0; t < T; t++) ids[t] = (int32_t)(test_rand_uniform(&seed, 0.0f, 96.99f));
    Graph *g = graph_create(), *gd = graph_create();
    Tensor *logits = model_forward_eval(m, lora, g, ids, NULL, NULL, 1, T);
    ck_assert_msg(logits != NULL, "%s", graph_error(g));
    void *d = c->family->decoder_new(m, T);
    ck_assert(d != NULL);
    for (int t = 0; t < T; t++) {
        const float *row = c->family->decoder_next(d, m, lora, gd, ids[t], t);
        ck_assert_msg(row != NULL, "%s", graph_error(gd));
        const float *want = logits->data + (size_t)t * c->vocab_size;
        double top = 0, diff = 0;
        for (int v = 0; v < c->vocab_size; v++) {
            top = fmax(top, fabs(want[v]));
            diff = fmax(diff, fabs((double)row[v] - want[v]));
        }
        ck_assert_msg(diff <= 1e-4 * top, "position %d: logits differ by %g (largest %g)", t, diff,
                      top);
    }
    c->family->decoder_free(d);
    graph_destroy(g);
    graph_destroy(gd);
    lora_free(lora);
    model_free(m);
}
END_TEST

/* ---- merge ------------------------------------------------------------------------------ */

/* The merged Hugging Face directory (the DeltaNet's conv, A_log, dt_bias and norms copied
 * as they are) generates the initial adapter's greedy ids on its own; inspect tells the
 * layer kinds and the DeltaNet's heads. GGUF is refused for
 * this fixture with a message: llama.cpp's qwen35 takes the key head size for the value
 * heads (32 and 16 here) and knows only periodic layer types (these are L L F L). The GGUF
 * export itself runs in llama.cpp in test_gguf_llamacpp.c (fixture qwen35-gguf). */
START_TEST(test_merge_hf_generates_the_adapter_ids_and_gguf_is_refused) {
    char *dir = test_tmpdir(), *model = tt_repo_path(Q35 "/model"),
         *adapter = tt_repo_path(Q35 "/init_adapter"), args[8800];
    tt_check_merged_generates(dir, model, adapter, Q35);
    snprintf(args, sizeof args, "inspect '%s'", model);
    char *out = tt_run_stdout(dir, args);
    ck_assert_msg(strstr(out, "Gated DeltaNet on 3 of 4 layers: 2 key heads of 32, 4 value heads "
                              "of 16, conv kernel 4; rotary dims 4 of head_dim 16"),
                  "%s", out);
    free(out);
    snprintf(args, sizeof args, "merge --model '%s' --out '%s/m.gguf'", model, dir);
    tt_expect(dir, args, 1, "linear_key_head_dim (32) for linear_value_head_dim (16)");
    free(model);
    free(adapter);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* The published form: merged with the initial adapter, every tensor off the language model
 * (model.visual.*, mtp.*) is written back byte-identical, and the merged checkpoint loads as
 * the wrapper and generates the adapter's greedy ids. */
START_TEST(test_wrapper_merge_keeps_the_vision_tower_and_mtp_head) {
    const char *fx = "tests/data/train/qwen35-wrapper";
    char *dir = test_tmpdir(), path[4400], args[8800], err[1024];
    snprintf(path, sizeof path, "%s/model", fx);
    char *model = tt_repo_path(path);
    snprintf(path, sizeof path, "%s/init_adapter", fx);
    char *adapter = tt_repo_path(path);
    snprintf(args, sizeof args, "merge --model '%s' --adapter '%s' --out '%s/merged'", model,
             adapter, dir);
    tt_expect(dir, args, 0, "merged");
    snprintf(path, sizeof path, "%s/model.safetensors", model);
    SafeTensors *a = st_open(path, err, sizeof err);
    ck_assert_msg(a != NULL, "%s", err);
    snprintf(path, sizeof path, "%s/merged/model.safetensors", dir);
    SafeTensors *b = st_open(path, err, sizeof err);
    ck_assert_msg(b != NULL, "%s", err);
    ck_assert_int_eq(st_count(a), st_count(b));
    int others = 0;
    for (int i = 0; i < st_count(a); i++) {
        const StTensor *x = st_tensor_at(a, i), *y = st_find(b, x->name);
        ck_assert_msg(y != NULL, "'%s' is missing", x->name);
        if (strncmp(x->name, "model.language_model.", 21) == 0 ||
            strcmp(x->name, "lm_head.weight") == 0)
            continue;
        others++;
        ck_assert_msg(x->dtype == y->dtype && x->nbytes == y->nbytes &&
                          memcmp(x->data, y->data, x->nbytes) == 0,
                      "%s: not byte-identical", x->name);
    }
    ck_assert_int_eq(others, 8); /* 4 of the vision tower, 4 of the MTP head */
    st_close(a);
    st_close(b);
    snprintf(path, sizeof path, "%s/fixture.json", fx);
    json_t *fj = json_load_file(path, 0, NULL);
    ck_assert(fj != NULL);
    char prompt[256] = "", want[2048] = "";
    json_t *p = json_object_get(fj, "greedy_prompt"), *w = json_object_get(fj, "greedy_adapter");
    for (size_t i = 0; i < json_array_size(p); i++)
        snprintf(prompt + strlen(prompt), sizeof prompt - strlen(prompt), i ? " %lld" : "%lld",
                 (long long)json_integer_value(json_array_get(p, i)));
    for (size_t i = 0; i < json_array_size(w); i++)
        snprintf(want + strlen(want), sizeof want - strlen(want), i ? " %lld" : "%lld",
                 (long long)json_integer_value(json_array_get(w, i)));
    snprintf(args, sizeof args,
             "generate --model '%s/merged' --prompt-ids '%s' -n 64 --precision f32", dir, prompt);
    char *out = tt_run_stdout(dir, args);
    ck_assert_msg(strstr(out, want) != NULL, "merged wrapper generated\n%s\nwant\n%s", out, want);
    free(out);
    json_decref(fj);
    free(model);
    free(adapter);
    test_rmtree(dir);
    free(dir);
}
END_TEST

Suite *qwen3_5_suite(void) {
    Suite *s = suite_create("qwen3_5");
    TCase *tc = tcase_create("qwen3_5");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_layer_schedule_and_modules_from_the_config);
    tcase_add_test(tc, test_default_targets_reach_the_deltanet_layers);
    tcase_add_test(tc, test_checkpointing_is_byte_identical_f32_and_bf16_packed);
    tcase_add_test(tc, test_killed_and_resumed_is_byte_identical);
    tcase_add_test(tc, test_decoder_logits_equal_the_forward_pass);
    tcase_add_test(tc, test_merge_hf_generates_the_adapter_ids_and_gguf_is_refused);
    tcase_add_test(tc, test_wrapper_merge_keeps_the_vision_tower_and_mtp_head);
    suite_add_tcase(s, tc);
    return s;
}
