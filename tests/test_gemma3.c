/* tests/test_gemma3.c — Gemma 3 (gemma3_text) through every command, on the tiny fixture
 * tests/data/train/gemma3-tied (three layers: two sliding with a window of 5 and the local
 * RoPE base, one full with linear RoPE scaling; (1 + w) norms away from 0; query_pre_attn_scalar
 * 24 where head_dim is 16; GQA 4/2; tied; a byte-level tokenizer with Gemma's special tokens
 * and Gemma 3's chat template). Its numbers are held to the float64 reference in
 * test_model.c, test_train.c and test_precision.c (bf16); here: the default LoRA targets,
 * gradient checkpointing byte-identical in f32 and bf16 with packing and dropout, two MPI
 * ranks against one process with twice the batch, eval, generate (ids, and --chat with
 * Gemma's template, which has no system role), merge (HF, and GGUF laid out as llama.cpp's
 * converter writes arch gemma3), the PEFT export and inspect. The llama.cpp run of the
 * GGUFs is in test_gguf_llamacpp.c. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/test_gguf_reader.h"
#include "tests/test_mpi_util.h"
#include "tests/test_train_util.h"
#include "tests/test_util.h"
#include "trainer/model/model.h"
#include "trainer/store/store.h"

#define G3 "tests/data/train/gemma3-tied"

/* ---- lora.target_modules not given: PEFT's default for gemma3_text ------------------- */

START_TEST(test_default_target_modules_are_q_and_v) {
    char *dir = test_tmpdir(), *model = tt_repo_path(G3 "/model"),
         *data = tt_repo_path(G3 "/train.jsonl");
    char extra[8192], args[4400], path[4400];
    snprintf(extra, sizeof extra,
             "data:\n  train: %s\n  seq_len: 16\n  shuffle: false\n"
             "train:\n  batch_size: 2\n  max_steps: 1\n  precision: f32\n",
             data);
    char *cfg = tt_write_config(dir, model, extra);
    snprintf(args, sizeof args, "train '%s'", cfg);
    tt_expect(dir, args, 0, NULL);
    snprintf(path, sizeof path, "%s/out/config.resolved.yaml", dir);
    char *resolved = test_read_file(path, NULL);
    ck_assert_msg(resolved && strstr(resolved, "target_modules: [\"q_proj\", \"v_proj\"]"), "%s",
                  resolved);
    free(resolved);
    free(cfg);
    free(data);
    free(model);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- gradient checkpointing, packing, bf16 ------------------------------------------- */

static void check_checkpointing(const char *precision) {
    char *ref = test_tmpdir(), *cut = test_tmpdir(), *model = tt_repo_path(G3 "/model");
    char rows[4400], extra[8192], args[4400];
    for (int i = 0; i < 2; i++) {
        const char *dir = i ? cut : ref;
        snprintf(rows, sizeof rows, "%s/rows.jsonl", dir);
        tt_random_rows(rows, 24, 3, 30, 320, 17);
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

/* ---- two MPI ranks ----------------------------------------------------------------- */

START_TEST(test_two_ranks_train_what_one_process_trains_with_twice_the_batch) {
    NEED_MPIRUN();
    check_fixture_two_ranks("gemma3-tied", 320);
}
END_TEST

/* ---- eval and generate --------------------------------------------------------------- */

START_TEST(test_eval_gives_the_reference_loss) {
    char *dir = test_tmpdir(), *model = tt_repo_path(G3 "/model");
    char *adapter = tt_repo_path(G3 "/init_adapter"), *train = tt_repo_path(G3 "/train.jsonl");
    char *rows = test_read_file(train, NULL);
    char *second = strchr(strchr(rows, '\n') + 1, '\n'); /* batch 0: rows 0 and 1 */
    second[1] = '\0';
    char *valid = tt_write_text(dir, "valid.jsonl", rows), extra[8192], args[8192];
    snprintf(extra, sizeof extra,
             "data:\n  train: %s\n  valid: %s\n  seq_len: 16\n  shuffle: false\n"
             "train:\n  batch_size: 2\n  precision: f32\n",
             valid, valid);
    char *cfg = tt_write_config(dir, model, extra);
    snprintf(args, sizeof args, "eval '%s' --adapter '%s'", cfg, adapter);
    char *out = tt_run_stdout(dir, args);
    json_t *line = json_loads(out, 0, NULL), *fx = json_load_file(G3 "/fixture.json", 0, NULL);
    ck_assert_msg(line && fx, "%s", out);
    double got = json_number_value(json_object_get(line, "eval_loss"));
    double want = json_number_value(json_array_get(json_object_get(fx, "losses"), 0));
    ck_assert_msg(fabs(got - want) <= 1e-6 * want, "eval_loss %.9g, reference %.9g", got, want);
    json_decref(line);
    json_decref(fx);
    free(out);
    free(cfg);
    free(valid);
    free(rows);
    free(train);
    free(adapter);
    free(model);
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_generate_ids_match_the_reference) {
    char *dir = test_tmpdir(), *model = tt_repo_path(G3 "/model");
    char *adapter = tt_repo_path(G3 "/init_adapter"), args[8192];
    snprintf(args, sizeof args, "--model '%s' --adapter '%s'", model, adapter);
    tt_check_generates(dir, args, G3);
    free(adapter);
    free(model);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* --chat renders Gemma 3's template: <bos><start_of_turn>user\n...<end_of_turn>\n then
 * <start_of_turn>model\n; a system message has no turn of its own but opens the first user
 * turn. The reply printed is the decoded continuation of exactly the ids `lorafit tokenize`
 * renders, up to the first end-of-turn token (<eos> 316, <end_of_turn> 319). */
START_TEST(test_generate_chat_renders_gemma3_template) {
    char *dir = test_tmpdir(), *model = tt_repo_path(G3 "/model"), args[8192];
    free(tt_write_text(dir, "msg.jsonl",
                       "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, "
                       "{\"role\": \"user\", \"content\": \"Hi there\"}], "
                       "\"add_generation_prompt\": true}\n"));
    snprintf(args, sizeof args, "tokenize '%s' < '%s/msg.jsonl'", model, dir);
    char *rendered = tt_run_stdout(dir, args);
    json_t *r = json_loads(rendered, 0, NULL);
    ck_assert_msg(r != NULL, "%s", rendered);
    const char *text = json_string_value(json_object_get(r, "text"));
    ck_assert_msg(text && !strcmp(text, "<bos><start_of_turn>user\nBe brief.\n\nHi "
                                        "there<end_of_turn>\n<start_of_turn>model\n"),
                  "%s", text);
    free(tt_write_text(dir, "user.jsonl",
                       "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi there\"}], "
                       "\"add_generation_prompt\": true}\n"));
    snprintf(args, sizeof args, "tokenize '%s' < '%s/user.jsonl'", model, dir);
    json_decref(r);
    free(rendered);
    rendered = tt_run_stdout(dir, args);
    r = json_loads(rendered, 0, NULL);
    json_t *ids = json_object_get(r, "input_ids");
    char prompt[4096] = "";
    size_t at = 0;
    for (size_t i = 0; i < json_array_size(ids); i++)
        at += (size_t)snprintf(prompt + at, sizeof prompt - at, i ? " %lld" : "%lld",
                               (long long)json_integer_value(json_array_get(ids, i)));
    int n_prompt = (int)json_array_size(ids);
    snprintf(args, sizeof args, "generate --model '%s' --prompt-ids '%s' -n 16 --precision f32",
             model, prompt);
    char *gen = tt_run_stdout(dir, args);
    char cont[2048] = "[";
    int k = 0;
    char *tok = strtok(gen, " \n");
    for (int i = 0; tok; i++, tok = strtok(NULL, " \n")) {
        if (i < n_prompt) continue;
        int id = atoi(tok);
        if (id == 316 || id == 319) break;
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
             "generate --model '%s' --prompt 'Hi there' --chat -n 16 --precision f32", model);
    char *reply = tt_run_stdout(dir, args);
    reply[strlen(reply) - 1] = '\0';
    ck_assert_msg(!strcmp(reply, json_string_value(json_object_get(d, "text"))),
                  "--chat printed '%s', the rendered prompt's continuation is '%s'", reply,
                  json_string_value(json_object_get(d, "text")));
    free(reply);
    json_decref(d);
    free(decoded);
    free(gen);
    json_decref(r);
    free(rendered);
    free(model);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- merge and export ---------------------------------------------------------------- */

START_TEST(test_merge_hf_export_peft_and_inspect) {
    char *dir = test_tmpdir(), *model = tt_repo_path(G3 "/model"), args[8192], path[4400];
    char *adapter = tt_repo_path(G3 "/init_adapter");
    tt_check_merged_generates(dir, model, adapter, G3);
    snprintf(args, sizeof args, "export '%s' --out '%s/peft'", adapter, dir);
    tt_expect(dir, args, 0, NULL);
    snprintf(path, sizeof path, "%s/peft/adapter_model.safetensors", dir);
    char src[4400];
    snprintf(src, sizeof src, "%s/adapter_model.safetensors", adapter);
    ck_assert_msg(tt_adapter_rel_diff(path, src, "") == 0.0, "the PEFT export changed tensors");
    snprintf(args, sizeof args, "inspect '%s'", model);
    char *out = tt_run_stdout(dir, args);
    ck_assert_msg(strstr(out, "model Gemma3ForCausalLM (gemma3_text)") &&
                      strstr(out, "head_dim 16"),
                  "%s", out);
    free(out);
    free(adapter);
    free(model);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* The merged GGUF as convert_hf_to_gguf.py's Gemma3Model writes it: arch gemma3, its keys
 * (key/value length, rope.freq_base of the full layers and freq_base_swa of the sliding
 * ones, linear scaling, sliding_window), every norm weight + 1, tied (no output.weight);
 * and what llama.cpp would otherwise derive wrong: sliding_window_pattern 3 (its default is
 * 6), and q_norm times sqrt(16 / 24) (llama.cpp scales scores by 1/sqrt(head_dim), the model
 * by query_pre_attn_scalar^-1/2). */
START_TEST(test_merge_gguf_is_laid_out_as_llamacpp_gemma3) {
    char *dir = test_tmpdir(), *model = tt_repo_path(G3 "/model"), args[8192], path[4400];
    char err[1024];
    snprintf(path, sizeof path, "%s/m.gguf", dir);
    snprintf(args, sizeof args, "merge --model '%s' --out '%s'", model, path);
    tt_expect(dir, args, 0, "arch gemma3");
    TgFile f;
    tg_read(path, &f);
    char *s = tg_str(&f, "general.architecture");
    ck_assert_str_eq(s, "gemma3");
    free(s);
    ck_assert_uint_eq(tg_u32(&f, "gemma3.block_count"), 3);
    ck_assert_uint_eq(tg_u32(&f, "gemma3.attention.key_length"), 16);
    ck_assert_uint_eq(tg_u32(&f, "gemma3.attention.head_count_kv"), 2);
    ck_assert_uint_eq(tg_u32(&f, "gemma3.attention.sliding_window"), 5);
    ck_assert_uint_eq(tg_u32(&f, "gemma3.attention.sliding_window_pattern"), 3);
    ck_assert_float_eq(tg_f32(&f, "gemma3.rope.freq_base"), 1e6f);
    ck_assert_float_eq(tg_f32(&f, "gemma3.rope.freq_base_swa"), 1e4f);
    ck_assert_float_eq(tg_f32(&f, "gemma3.rope.scaling.factor"), 4.0f);
    s = tg_str(&f, "gemma3.rope.scaling.type");
    ck_assert_str_eq(s, "linear");
    free(s);
    ck_assert(!tg_kv(&f, "gemma3.final_logit_softcapping"));
    ck_assert_int_eq(f.n_tensors, 2 + 3 * 13); /* embd, output_norm; 6 norms + 7 per layer */
    ck_assert(!tg_tensor(&f, "output.weight"));
    static const char *const names[] = {"attn_norm",     "post_attention_norm", "ffn_norm",
                                        "post_ffw_norm", "attn_q_norm",         "attn_k_norm"};
    static const char *const hf[] = {"input_layernorm",           "post_attention_layernorm",
                                     "pre_feedforward_layernorm", "post_feedforward_layernorm",
                                     "self_attn.q_norm",          "self_attn.k_norm"};
    snprintf(path, sizeof path, "%s/model.safetensors", model);
    SafeTensors *st = st_open(path, err, sizeof err);
    ck_assert_msg(st != NULL, "%s", err);
    for (int l = 0; l < 3; l++)
        for (int k = 0; k < 6; k++) {
            snprintf(path, sizeof path, "blk.%d.%s.weight", l, names[k]);
            const TgTensor *t = tg_tensor(&f, path);
            ck_assert_msg(t && t->type == 0 && t->n_dims == 1, "%s", path);
            uint64_t n;
            float *got = tg_floats(t, &n);
            snprintf(path, sizeof path, "model.layers.%d.%s.weight", l, hf[k]);
            const StTensor *w = st_find(st, path);
            ck_assert_msg(w && (uint64_t)w->numel == n, "%s", path);
            float *hw = malloc(n * sizeof *hw);
            ck_assert(st_to_float(w, hw, err, sizeof err) == 0);
            double fold = k == 4 ? sqrt(16.0 / 24.0) : 1.0;
            for (uint64_t i = 0; i < n; i++)
                ck_assert_msg(fabs(got[i] - (1.0 + hw[i]) * fold) <= 1e-6,
                              "%s[%llu] %g, want (1 + %g) * %g", path, (unsigned long long)i,
                              got[i], hw[i], fold);
            free(hw);
            free(got);
        }
    st_close(st);
    tg_free(&f);
    free(model);
    test_rmtree(dir);
    free(dir);
}
END_TEST

Suite *gemma3_suite(void) {
    Suite *s = suite_create("gemma3");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_default_target_modules_are_q_and_v);
    tcase_add_test(tc, test_checkpointing_is_byte_identical_f32_and_bf16_packed);
    tcase_add_test(tc, test_two_ranks_train_what_one_process_trains_with_twice_the_batch);
    tcase_add_test(tc, test_eval_gives_the_reference_loss);
    tcase_add_test(tc, test_generate_ids_match_the_reference);
    tcase_add_test(tc, test_generate_chat_renders_gemma3_template);
    tcase_add_test(tc, test_merge_hf_export_peft_and_inspect);
    tcase_add_test(tc, test_merge_gguf_is_laid_out_as_llamacpp_gemma3);
    suite_add_tcase(s, tc);
    return s;
}
