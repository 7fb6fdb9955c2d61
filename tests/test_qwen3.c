/* tests/test_qwen3.c — Qwen3 through every command, on the tiny fixtures of tests/data/train:
 * qwen3-untied (per-head q/k norms with weights away from 1, head_dim 16 where hidden / heads
 * is 8, GQA 4/2, untied head, a Qwen-style byte-level tokenizer with Qwen3's chat template)
 * and qwen3-bias-tied (attention_bias: q/k/v/o biases). The numbers themselves are held to
 * the float64 reference in test_model.c and test_train.c; here: the family's default LoRA
 * targets, gradient checkpointing byte-identical in f32 and bf16 with packing and dropout,
 * eval, generate (ids, --chat with enable_thinking), merge (HF, and GGUF in four dtypes
 * laid out as llama.cpp's converter writes arch qwen3), the PEFT export and inspect. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/test_gguf_reader.h"
#include "tests/test_train_util.h"
#include "tests/test_util.h"
#include "trainer/model/model.h"

#define UNTIED "tests/data/train/qwen3-untied"
#define BIASED "tests/data/train/qwen3-bias-tied"

/* ---- lora.target_modules not given: the family's default ----------------------------- */

static void check_default_targets(const char *fx, const char *want_yaml, int want_n) {
    char *dir = test_tmpdir(), *model = NULL, extra[4096], path[4400];
    snprintf(path, sizeof path, "%s/model", fx);
    model = tt_repo_path(path);
    char *data = NULL;
    snprintf(path, sizeof path, "%s/train.jsonl", fx);
    data = tt_repo_path(path);
    snprintf(extra, sizeof extra,
             "data:\n  train: %s\n  seq_len: 16\n  shuffle: false\n"
             "train:\n  batch_size: 2\n  max_steps: 1\n  precision: f32\n",
             data);
    char *cfg = tt_write_config(dir, model, extra), args[4400];
    snprintf(args, sizeof args, "train '%s'", cfg);
    tt_expect(dir, args, 0, NULL);
    snprintf(path, sizeof path, "%s/out/config.resolved.yaml", dir);
    char *resolved = test_read_file(path, NULL);
    ck_assert_msg(resolved && strstr(resolved, want_yaml), "%s: '%s' not in\n%s", fx, want_yaml,
                  resolved);
    snprintf(path, sizeof path, "%s/out/adapter/adapter_config.json", dir);
    json_error_t je;
    json_t *ac = json_load_file(path, 0, &je);
    ck_assert_msg(ac != NULL, "%s: %s", path, je.text);
    ck_assert_int_eq((int)json_array_size(json_object_get(ac, "target_modules")), want_n);
    json_decref(ac);
    free(resolved);
    free(cfg);
    free(data);
    free(model);
    test_rmtree(dir);
    free(dir);
}

/* PEFT's default for qwen3 is q_proj and v_proj; Llama-family runs keep all seven. */
START_TEST(test_default_target_modules_are_the_family_defaults) {
    check_default_targets(UNTIED, "target_modules: [\"q_proj\", \"v_proj\"]", 2);
    check_default_targets("tests/data/train/qwen2-untied",
                          "target_modules: [\"q_proj\", \"k_proj\", \"v_proj\", \"o_proj\", "
                          "\"gate_proj\", \"up_proj\", \"down_proj\"]",
                          7);
}
END_TEST

/* ---- gradient checkpointing, packing, bf16 -------------------------------------------- */

/* A packed job with dropout on every linear and two micro-batches per step, trained without
 * and with gradient checkpointing in `precision`: the same adapter bytes and metrics. */
static void check_checkpointing(const char *precision) {
    char *ref = test_tmpdir(), *cut = test_tmpdir(), *model = tt_repo_path(UNTIED "/model");
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

/* ---- eval ---------------------------------------------------------------------------- */

/* eval --adapter on the fixture's first batch gives the reference's first-step loss. */
START_TEST(test_eval_gives_the_reference_loss) {
    char *dir = test_tmpdir(), *model = tt_repo_path(UNTIED "/model");
    char *adapter = tt_repo_path(UNTIED "/init_adapter"),
         *train = tt_repo_path(UNTIED "/train.jsonl");
    size_t len;
    char *rows = test_read_file(train, &len);
    char *second = strchr(strchr(rows, '\n') + 1, '\n'); /* batch 0: rows 0 and 1 */
    second[1] = '\0';
    char *valid = tt_write_text(dir, "valid.jsonl", rows), extra[8192], args[8192];
    snprintf(extra, sizeof extra,
             "data:\n  train: %s\n  valid: %s\n  seq_len: 24\n  shuffle: false\n"
             "train:\n  batch_size: 2\n  precision: f32\n",
             valid, valid);
    char *cfg = tt_write_config(dir, model, extra);
    snprintf(args, sizeof args, "eval '%s' --adapter '%s'", cfg, adapter);
    char *out = tt_run_stdout(dir, args);
    json_t *line = json_loads(out, 0, NULL), *fx = tt_fixture(UNTIED);
    ck_assert_msg(line != NULL, "%s", out);
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

/* ---- generate ------------------------------------------------------------------------ */

/* `generate --prompt-ids` with the adapter prints the reference's 64 greedy ids. */
START_TEST(test_generate_ids_match_the_reference) {
    char *dir = test_tmpdir(), *model = tt_repo_path(UNTIED "/model");
    char *adapter = tt_repo_path(UNTIED "/init_adapter"), args[8192];
    snprintf(args, sizeof args, "--model '%s' --adapter '%s'", model, adapter);
    tt_check_generates(dir, args, UNTIED);
    free(adapter);
    free(model);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* --chat renders Qwen3's template with --chat-template-kwargs: with enable_thinking false the
 * prompt ends in an empty think block. The reply printed is the decoded continuation of
 * exactly the ids `lorafit tokenize` renders for the same messages and variables, up to the
 * first end-of-turn token; without the variable the prompt (and so the reply) differs. */
START_TEST(test_generate_chat_renders_qwen3_template_with_enable_thinking) {
    char *dir = test_tmpdir(), *model = tt_repo_path(UNTIED "/model"), args[8192];
    const char *kw = "{\"enable_thinking\": false}";
    free(tt_write_text(dir, "msg.jsonl",
                       "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi there\"}], "
                       "\"add_generation_prompt\": true, \"enable_thinking\": false}\n"));
    snprintf(args, sizeof args, "tokenize '%s' < '%s/msg.jsonl'", model, dir);
    char *rendered = tt_run_stdout(dir, args);
    json_t *r = json_loads(rendered, 0, NULL);
    ck_assert_msg(r != NULL, "%s", rendered);
    const char *text = json_string_value(json_object_get(r, "text"));
    ck_assert_msg(text && strstr(text, "<|im_start|>assistant\n<think>\n\n</think>\n\n"), "%s",
                  text);
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
    /* the continuation's ids up to the first end of turn (<|endoftext|> 304, <|im_end|> 306) */
    char cont[2048] = "[";
    int k = 0;
    char *tok = strtok(gen, " \n");
    for (int i = 0; tok; i++, tok = strtok(NULL, " \n")) {
        if (i < n_prompt) continue;
        int id = atoi(tok);
        if (id == 304 || id == 306) break;
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
             "generate --model '%s' --prompt 'Hi there' --chat --chat-template-kwargs '%s' -n 16 "
             "--precision f32",
             model, kw);
    char *reply = tt_run_stdout(dir, args);
    reply[strlen(reply) - 1] = '\0'; /* the newline generate ends with */
    ck_assert_msg(!strcmp(reply, json_string_value(json_object_get(d, "text"))),
                  "--chat printed '%s', the rendered prompt's continuation is '%s'", reply,
                  json_string_value(json_object_get(d, "text")));
    snprintf(args, sizeof args,
             "generate --model '%s' --prompt 'Hi there' --chat -n 16 --precision f32", model);
    char *thinking = tt_run_stdout(dir, args);
    thinking[strlen(thinking) - 1] = '\0';
    ck_assert_msg(strcmp(thinking, reply) != 0, "enable_thinking changed nothing: '%s'", reply);
    tt_expect(dir, "generate --model x --prompt-ids 1 --chat-template-kwargs '{}'", 2,
              "--chat-template-kwargs with --chat");
    free(thinking);
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

/* The merged Hugging Face directory generates the adapter's greedy ids on its own; the
 * PEFT export of the adapter holds the same tensors; inspect names the family. */
START_TEST(test_merge_hf_export_peft_and_inspect) {
    char *dir = test_tmpdir(), *model = tt_repo_path(UNTIED "/model"), args[8192], path[4400];
    char *adapter = tt_repo_path(UNTIED "/init_adapter");
    tt_check_merged_generates(dir, model, adapter, UNTIED);
    snprintf(args, sizeof args, "export '%s' --out '%s/peft'", adapter, dir);
    tt_expect(dir, args, 0, NULL);
    snprintf(path, sizeof path, "%s/peft/adapter_model.safetensors", dir);
    char src[4400];
    snprintf(src, sizeof src, "%s/adapter_model.safetensors", adapter);
    ck_assert_msg(tt_adapter_rel_diff(path, src, "") == 0.0, "the PEFT export changed tensors");
    snprintf(args, sizeof args, "inspect '%s'", model);
    char *out = tt_run_stdout(dir, args);
    ck_assert_msg(strstr(out, "model Qwen3ForCausalLM (qwen3)") && strstr(out, "head_dim 16"), "%s",
                  out);
    free(out);
    free(adapter);
    free(model);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* The merged GGUF as convert_hf_to_gguf.py's Qwen3Model writes it: arch qwen3, the
 * TextModel keys with key/value length (config.json names head_dim), no LlamaModel keys,
 * q_norm / k_norm as attn_q_norm / attn_k_norm, q and k rows as Hugging Face has them (no
 * permutation), the tokenizer as gpt2 / qwen2; matrices in the asked dtype, norms F32. */
START_TEST(test_merge_gguf_is_laid_out_as_llamacpp_qwen3) {
    char *dir = test_tmpdir(), *model = tt_repo_path(UNTIED "/model"), args[8192], path[4400];
    char *adapter = tt_repo_path(UNTIED "/init_adapter"), err[1024];
    static const char *const dtypes[] = {"f32", "f16", "bf16", "q8_0"};
    static const uint32_t types[] = {0, 1, 30, 8}, ftypes[] = {0, 1, 32, 7};
    Model *m = model_load(model, err, sizeof err);
    ck_assert_msg(m != NULL, "%s", err);
    Lora *lora = lora_load_adapter(m, adapter, err, sizeof err);
    ck_assert_msg(lora != NULL, "%s", err);
    for (int d = 0; d < 4; d++) {
        snprintf(path, sizeof path, "%s/m-%s.gguf", dir, dtypes[d]);
        snprintf(args, sizeof args, "merge --model '%s' --adapter '%s' --out '%s' --dtype %s",
                 model, adapter, path, dtypes[d]);
        tt_expect(dir, args, 0, "arch qwen3");
        TgFile f;
        tg_read(path, &f);
        char *s = tg_str(&f, "general.architecture");
        ck_assert_str_eq(s, "qwen3");
        free(s);
        s = tg_str(&f, "tokenizer.ggml.pre");
        ck_assert_str_eq(s, "qwen2");
        free(s);
        ck_assert_uint_eq(tg_u32(&f, "general.file_type"), ftypes[d]);
        ck_assert_uint_eq(tg_u32(&f, "qwen3.block_count"), 2);
        ck_assert_uint_eq(tg_u32(&f, "qwen3.embedding_length"), 32);
        ck_assert_uint_eq(tg_u32(&f, "qwen3.feed_forward_length"), 64);
        ck_assert_uint_eq(tg_u32(&f, "qwen3.attention.head_count"), 4);
        ck_assert_uint_eq(tg_u32(&f, "qwen3.attention.head_count_kv"), 2);
        ck_assert_uint_eq(tg_u32(&f, "qwen3.attention.key_length"), 16);
        ck_assert_uint_eq(tg_u32(&f, "qwen3.attention.value_length"), 16);
        ck_assert_float_eq(tg_f32(&f, "qwen3.rope.freq_base"), 1e6f);
        ck_assert(!tg_kv(&f, "qwen3.vocab_size") && !tg_kv(&f, "qwen3.rope.dimension_count"));
        ck_assert_uint_eq(tg_u32(&f, "tokenizer.ggml.eos_token_id"), 306);
        ck_assert_uint_eq(tg_arr_n(&f, "tokenizer.ggml.tokens"), 320);
        ck_assert_int_eq(f.n_tensors, 3 + 2 * 11); /* embd, output_norm, output; 4 norms + 7 */
        for (int l = 0; l < 2; l++) {
            static const char *const norms[] = {"attn_norm", "attn_q_norm", "attn_k_norm",
                                                "ffn_norm"};
            for (int k = 0; k < 4; k++) {
                snprintf(path, sizeof path, "blk.%d.%s.weight", l, norms[k]);
                const TgTensor *t = tg_tensor(&f, path);
                ck_assert_msg(t && t->type == 0 && t->n_dims == 1, "%s", path);
                ck_assert_uint_eq(t->ne[0], k == 1 || k == 2 ? 16 : 32);
            }
            snprintf(path, sizeof path, "blk.%d.attn_k.weight", l);
            const TgTensor *tk = tg_tensor(&f, path);
            ck_assert_msg(tk && tk->type == types[d] && tk->ne[0] == 32 && tk->ne[1] == 32, "%s",
                          path);
            if (d == 0) { /* merged rows in Hugging Face's order */
                float *want = malloc(32 * 32 * sizeof *want);
                merge_linear(m, lora, l, MODULE_K, want);
                uint64_t cnt;
                float *got = tg_floats(tk, &cnt);
                ck_assert(memcmp(got, want, 32 * 32 * sizeof *got) == 0);
                free(got);
                free(want);
            }
        }
        ck_assert(tg_tensor(&f, "output.weight") && !tg_tensor(&f, "rope_freqs.weight"));
        tg_free(&f);
    }
    lora_free(lora);
    model_free(m);
    free(adapter);
    free(model);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* llama.cpp's qwen3 loads no attn_output bias and would refuse the file: the GGUF export of
 * an attention_bias model says so instead of writing it; the HF merge works. */
START_TEST(test_gguf_of_an_o_proj_bias_is_refused_with_the_reason) {
    char *dir = test_tmpdir(), *model = tt_repo_path(BIASED "/model"), args[8192];
    char *adapter = tt_repo_path(BIASED "/init_adapter");
    snprintf(args, sizeof args, "merge --model '%s' --out '%s/m.gguf'", model, dir);
    tt_expect(dir, args, 1, "o_proj has a bias (attention_bias), which llama.cpp's qwen3");
    snprintf(args, sizeof args, "merge --model '%s' --adapter '%s' --out '%s/hf'", model, adapter,
             dir);
    tt_expect(dir, args, 0, NULL);
    free(adapter);
    free(model);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* A Qwen3 MoE checkpoint (another family) is refused by train with the family named and the
 * supported list. */
START_TEST(test_train_refuses_qwen3_moe_by_name) {
    char *dir = test_tmpdir(), *model = tt_repo_path(UNTIED "/model"),
         *data = tt_repo_path(UNTIED "/train.jsonl");
    char moe[4400], extra[8192], args[4400];
    snprintf(moe, sizeof moe, "%s/moe", dir);
    json_t *edits = json_pack("{s:s, s:[s]}", "model_type", "qwen3_moe", "architectures",
                              "Qwen3MoeForCausalLM");
    tt_model_with_config(model, moe, edits);
    json_decref(edits);
    snprintf(extra, sizeof extra, "data:\n  train: %s\n  seq_len: 16\ntrain:\n  max_steps: 1\n",
             data);
    char *cfg = tt_write_config(dir, moe, extra);
    snprintf(args, sizeof args, "train '%s'", cfg);
    tt_expect(dir, args, 1,
              "the model family \"qwen3_moe\" / Qwen3MoeForCausalLM is not supported; lorafit "
              "trains llama (LlamaForCausalLM), mistral (MistralForCausalLM), qwen2 "
              "(Qwen2ForCausalLM), qwen3 (Qwen3ForCausalLM)");
    free(cfg);
    free(data);
    free(model);
    test_rmtree(dir);
    free(dir);
}
END_TEST

Suite *qwen3_suite(void) {
    Suite *s = suite_create("qwen3");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_default_target_modules_are_the_family_defaults);
    tcase_add_test(tc, test_checkpointing_is_byte_identical_f32_and_bf16_packed);
    tcase_add_test(tc, test_eval_gives_the_reference_loss);
    tcase_add_test(tc, test_generate_ids_match_the_reference);
    tcase_add_test(tc, test_generate_chat_renders_qwen3_template_with_enable_thinking);
    tcase_add_test(tc, test_merge_hf_export_peft_and_inspect);
    tcase_add_test(tc, test_merge_gguf_is_laid_out_as_llamacpp_qwen3);
    tcase_add_test(tc, test_gguf_of_an_o_proj_bias_is_refused_with_the_reason);
    tcase_add_test(tc, test_train_refuses_qwen3_moe_by_name);
    suite_add_tcase(s, tc);
    return s;
}
