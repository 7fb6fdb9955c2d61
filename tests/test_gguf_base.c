/* tests/test_gguf_base.c — a .gguf file as model.path (trainer/model/gguf_base.c,
 * gguf_config.c): the inverse of lorafit's own GGUF writer.
 *
 * A Hugging Face model written as an F32 GGUF (gguf_export_model, what `lorafit merge
 * --format gguf` writes) and loaded back is the same model: the same config, and a first
 * step with the same loss and LoRA gradients, bit for bit — the F32 weights are the same
 * floats (read in place, q/k rows un-permuted for arch llama), and the norms llama.cpp
 * stores as 1 + w (Gemma) come back as fl(1 + w) - 1, to which the op adds 1 again, exactly
 * (Sterbenz) while 1 + w >= 0.5. Gemma 3 with query_pre_attn_scalar != head_dim is the
 * exception: the writer folds the scale into q_norm in double and the reader keeps
 * llama.cpp's scale, so that model agrees to rounding (1e-6 on the loss, 1e-5 on the
 * gradients). The block types: test_gguf_base_quant.c. */
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tensor/tensor.h"
#include "tests/test_gguf_base_util.h"
#include "tests/test_train_util.h"
#include "tests/test_util.h"
#include "trainer/model/model.h"
#include "trainer/store/store.h"

/* The configs agree on everything the model computes. */
static void same_config(const ModelConfig *a, const ModelConfig *b, const char *what) {
    ck_assert_msg(a->family == b->family, "%s: family", what);
    ck_assert(a->hidden_size == b->hidden_size && a->intermediate_size == b->intermediate_size);
    ck_assert(a->num_hidden_layers == b->num_hidden_layers && a->vocab_size == b->vocab_size);
    ck_assert(a->num_attention_heads == b->num_attention_heads);
    ck_assert(a->num_key_value_heads == b->num_key_value_heads);
    ck_assert(a->head_dim == b->head_dim && a->rotary_dim == b->rotary_dim);
    ck_assert_msg(a->max_position_embeddings == b->max_position_embeddings, "%s: positions", what);
    ck_assert_msg((float)a->rms_norm_eps == (float)b->rms_norm_eps, "%s: eps", what);
    ck_assert_msg(a->rope_theta == b->rope_theta, "%s: rope_theta", what);
    ck_assert_msg(a->rope_scaling.linear == b->rope_scaling.linear &&
                      (!a->rope_scaling.linear || a->rope_scaling.factor == b->rope_scaling.factor),
                  "%s: rope scaling", what);
    ck_assert_msg(a->rope_local_theta == b->rope_local_theta, "%s: local theta", what);
    ck_assert_msg(a->tie_word_embeddings == b->tie_word_embeddings, "%s: tied", what);
    ck_assert(a->qkv_bias == b->qkv_bias && a->o_bias == b->o_bias);
    ck_assert_msg(a->attn_softcap == b->attn_softcap && a->final_softcap == b->final_softcap,
                  "%s: soft-caps %g %g vs %g %g", what, a->attn_softcap, a->final_softcap,
                  b->attn_softcap, b->final_softcap);
    for (int l = 0; l < a->num_hidden_layers; l++)
        ck_assert_msg(hf_layer_window(a, l) == hf_layer_window(b, l),
                      "%s: layer %d window %d vs %d", what, l, hf_layer_window(a, l),
                      hf_layer_window(b, l));
}

/* HF directory vs its F32 GGUF: config and first step (tol as gb_same_step's). */
static void check_round_trip(const char *model_dir, const char *gguf, double tol,
                             const char *what) {
    char err[2048];
    gb_export_f32(model_dir, gguf);
    Model *hf = model_load(model_dir, err, sizeof err);
    ck_assert_msg(hf != NULL, "%s", err);
    Model *gg = model_load(gguf, err, sizeof err);
    ck_assert_msg(gg != NULL, "%s: %s", what, err);
    same_config(model_config(gg), model_config(hf), what);
    const ModelConfig *ca = model_config(gg), *cb = model_config(hf);
    double fa[512], fb[512];
    hf_rope_inv_freq(ca, fa);
    hf_rope_inv_freq(cb, fb);
    for (int i = 0; i < ca->rotary_dim / 2; i++)
        ck_assert_msg(fabs(fa[i] - fb[i]) <= 1e-6 * fb[i], "%s: inv_freq[%d] %.10g vs %.10g", what,
                      i, fa[i], fb[i]);
    ck_assert_msg(fabs(hf_rope_attention_factor(ca) / hf_rope_attention_factor(cb) - 1) < 1e-6 &&
                      fabs(hf_query_scale(ca, 100) / hf_query_scale(cb, 100) - 1) < 1e-6,
                  "%s: RoPE's attention factor or query scale", what);
    ck_assert(model_param_count(gg) == model_param_count(hf));
    ck_assert_msg(strncmp(model_base_identity(gg), "gguf ", 5) == 0, "%s", model_base_identity(gg));
    ck_assert_str_eq(model_base_identity(hf), "");
    GbStep a = gb_first_step(gg), b = gb_first_step(hf);
    gb_same_step(a, b, tol, what);
    free(a.grads);
    free(b.grads);
    model_free(gg);
    model_free(hf);
}

START_TEST(test_f32_gguf_bases_give_their_hf_models_first_step_bit_for_bit) {
    char *dir = test_tmpdir(), model[4200], gguf[4200];
    const char *archs[] = {"llama", "qwen2", "qwen3", "gemma3_text"};
    for (int i = 0; i < 4; i++) {
        snprintf(model, sizeof model, "%s/%s", dir, archs[i]);
        snprintf(gguf, sizeof gguf, "%s/%s.gguf", dir, archs[i]);
        gb_make_hf(model, archs[i]);
        check_round_trip(model, gguf, 0, archs[i]);
    }
    /* Gemma 2: soft-caps, sliding layers, tied head (the training fixture's model) */
    char *fx = tt_repo_path("tests/data/train/gemma2-tied/model");
    snprintf(gguf, sizeof gguf, "%s/gemma2.gguf", dir);
    check_round_trip(fx, gguf, 0, "gemma2");
    free(fx);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* The training fixtures of the other archs lorafit writes, with their quirks: OLMo 2's
 * post-norms and whole-projection q/k norms, SmolLM3's NoPE layers (every fourth, what
 * llama.cpp assumes), Granite's multipliers (float32 in the file: to rounding), and Phi-4-mini
 * (arch phi3: fused qkv / gate_up, partial RoPE, longrope factors whose attention factor is
 * float32 in the file: to rounding). */
START_TEST(test_f32_gguf_bases_of_the_other_archs) {
    static const struct {
        const char *fixture;
        double tol;
    } cases[] = {{"olmo2-untied", 0},         {"smollm3-nope", 0},       {"granite-untied", 1e-6},
                 {"phi4mini-longrope", 1e-6}, {"ministral3-yarn", 1e-6}, {"qwen35-gguf", 1e-6}};
    char *dir = test_tmpdir(), gguf[4200], rel[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(rel, sizeof rel, "tests/data/train/%s/model", cases[i].fixture);
        char *fx = tt_repo_path(rel);
        snprintf(gguf, sizeof gguf, "%s/%s.gguf", dir, cases[i].fixture);
        check_round_trip(fx, gguf, cases[i].tol, cases[i].fixture);
        free(fx);
    }
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* Gemma 3 with linear RoPE scaling, layer types of period 3 and query_pre_attn_scalar 24 for
 * head_dim 16 (folded into q_norm by the writer): the same model to rounding. */
START_TEST(test_gemma3_gguf_with_a_folded_attention_scale_agrees_to_rounding) {
    char *dir = test_tmpdir(), gguf[4200];
    char *fx = tt_repo_path("tests/data/train/gemma3-tied/model");
    snprintf(gguf, sizeof gguf, "%s/gemma3.gguf", dir);
    check_round_trip(fx, gguf, 1e-6, "gemma3 folded");
    free(fx);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* Llama 3 RoPE: the writer stores it as rope_freqs factors (LlamaModel.
 * generate_extra_tensors) and the reader divides the frequencies by them as llama.cpp does:
 * transformers' llama3 frequencies to rounding (the factors are float32), and the same step
 * to 1e-6. original_max_position_embeddings 64 puts the head's 32 frequencies in all three
 * bands (kept, smoothed, divided by 8). */
START_TEST(test_llama3_rope_factors_give_transformers_frequencies) {
    char *dir = test_tmpdir(), model[4200], gguf[4200], path[4300], err[2048];
    snprintf(model, sizeof model, "%s/llama3", dir);
    snprintf(gguf, sizeof gguf, "%s/llama3.gguf", dir);
    gb_make_hf(model, "llama");
    snprintf(path, sizeof path, "%s/config.json", model);
    json_t *cfg = json_load_file(path, 0, NULL);
    ck_assert(cfg != NULL);
    json_object_set_new(cfg, "rope_scaling",
                        json_pack("{s:s, s:f, s:f, s:f, s:i}", "rope_type", "llama3", "factor", 8.0,
                                  "low_freq_factor", 1.0, "high_freq_factor", 4.0,
                                  "original_max_position_embeddings", 64));
    ck_assert_int_eq(json_dump_file(cfg, path, 0), 0);
    json_decref(cfg);
    check_round_trip(model, gguf, 1e-6, "llama3 rope");
    Model *hf = model_load(model, err, sizeof err), *gg = model_load(gguf, err, sizeof err);
    ck_assert_msg(hf && gg, "%s", err);
    const ModelConfig *a = model_config(gg), *b = model_config(hf);
    ck_assert(a->rope_scaling.gguf_factors && !a->rope_scaling.llama3 && b->rope_scaling.llama3);
    double fa[128], fb[128], plain = 0, scaled = 0;
    hf_rope_inv_freq(a, fa);
    hf_rope_inv_freq(b, fb);
    for (int i = 0; i < a->rotary_dim / 2; i++) {
        ck_assert_msg(fabs(fa[i] - fb[i]) <= 1e-6 * fb[i], "inv_freq[%d] %.10g vs %.10g", i, fa[i],
                      fb[i]);
        double base = 1.0 / pow(b->rope_theta, 2.0 * i / b->rotary_dim);
        plain += fabs(fb[i] - base) < 1e-12 * base, scaled += fabs(fb[i] * 8 - base) < 1e-9 * base;
    }
    ck_assert_msg(plain > 0 && scaled > 0 && plain + scaled < a->rotary_dim / 2,
                  "the bands: %g kept, %g divided", plain, scaled);
    model_free(hf);
    model_free(gg);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- the commands ------------------------------------------------------------------ */

static void write_train_config_with(const char *dir, const char *model, const char *rows,
                                    int max_steps, const char *train_extra) {
    char text[16384];
    int n = snprintf(text, sizeof text,
                     "model:\n  path: %s\nlora:\n  r: 4\n  alpha: 8\n"
                     "data:\n  train: %s\n  seq_len: 32\n  packing: true\n"
                     "train:\n  batch_size: 2\n  max_steps: %d\n  lr: 1.0e-2\n  seed: 5\n"
                     "  precision: f32\n%s"
                     "output:\n  dir: %s/out\n  save_every: 1\nlog:\n  every: 1\n",
                     model, rows, max_steps, train_extra, dir);
    ck_assert(n > 0 && (size_t)n < sizeof text);
    free(tt_write_text(dir, "config.yaml", text));
}

static void write_train_config(const char *dir, const char *model, const char *rows,
                               int max_steps) {
    write_train_config_with(dir, model, rows, max_steps, "");
}

/* The commands on a GGUF base: `lorafit generate --model FILE.gguf` continues as on the
 * Hugging Face model it was made from, `lorafit eval` gives its loss, and a run with
 * gradient checkpointing ends byte-identical to one without. */
START_TEST(test_generate_eval_and_checkpointing_on_a_gguf_base) {
    char *dir = test_tmpdir(), model[4200], gguf[4200], rows[4200], args[16384];
    snprintf(model, sizeof model, "%s/llama", dir);
    snprintf(gguf, sizeof gguf, "%s/llama.gguf", dir);
    snprintf(rows, sizeof rows, "%s/rows.jsonl", dir);
    gb_make_hf(model, "llama");
    gb_export_f32(model, gguf);
    tt_random_rows(rows, 12, 8, 40, 320, 5);
    char *out[2], *loss[2];
    const char *base[2] = {model, gguf};
    for (int k = 0; k < 2; k++) {
        snprintf(args, sizeof args,
                 "generate --model '%s' --prompt-ids '1 2 3' -n 12 --precision f32", base[k]);
        out[k] = tt_run_stdout(dir, args);
        char *run = test_tmpdir();
        write_train_config(run, base[k], rows, 1);
        snprintf(args, sizeof args, "eval '%s/config.yaml' --precision f32", run);
        loss[k] = tt_run_stdout(run, args);
        test_rmtree(run);
        free(run);
    }
    ck_assert_msg(strcmp(out[0], out[1]) == 0, "generate: %s vs %s", out[0], out[1]);
    ck_assert_msg(strstr(loss[0], "eval_loss") && strcmp(loss[0], loss[1]) == 0, "eval: %s vs %s",
                  loss[0], loss[1]);
    char *run[2];
    for (int k = 0; k < 2; k++) {
        run[k] = test_tmpdir();
        write_train_config_with(run[k], gguf, rows, 2, k ? "  gradient_checkpointing: true\n" : "");
        snprintf(args, sizeof args, "train '%s/config.yaml'", run[k]);
        tt_expect(run[k], args, 0, "done: 2 steps");
    }
    tt_assert_same_run(run[0], run[1], "gradient checkpointing on a GGUF base");
    for (int k = 0; k < 2; k++) {
        test_rmtree(run[k]);
        free(run[k]);
        free(out[k]);
        free(loss[k]);
    }
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- refusals --------------------------------------------------------------------- */

static void copy_file(const char *from, const char *to) {
    size_t len;
    char *data = test_read_file(from, &len);
    ck_assert(data != NULL);
    test_write_file(to, data, len);
    free(data);
}

/* A run on base.gguf resumes on the same file, and is refused once base.gguf is another
 * file (same name, same config keys): the file's identity is in the fingerprint. Killed
 * (SIGKILL) after step 2 and resumed, it ends byte-identical to the run without a kill
 * (adapter and metrics). Its adapter
 * exports as a GGUF adapter without --model (from the run's config). */
START_TEST(test_resume_on_another_gguf_file_is_refused) {
    char *dir = test_tmpdir(), model[4200], f32[4200], q8[4200], base[4200], rows[4200];
    snprintf(model, sizeof model, "%s/llama", dir);
    snprintf(f32, sizeof f32, "%s/llama.gguf", dir);
    snprintf(q8, sizeof q8, "%s/llama-q8.gguf", dir);
    snprintf(base, sizeof base, "%s/base.gguf", dir);
    snprintf(rows, sizeof rows, "%s/rows.jsonl", dir);
    gb_make_hf(model, "llama");
    gb_export_f32(model, f32);
    gb_requantize(f32, q8, GGML_TYPE_Q8_0, false, false);
    tt_random_rows(rows, 24, 8, 40, 320, 3);
    char args_resume[4400];
    snprintf(args_resume, sizeof args_resume, "train '%s/config.yaml' --resume", dir);
    copy_file(f32, base);
    write_train_config(dir, base, rows, 3);
    char cfg_path[4400], log_path[4400];
    snprintf(cfg_path, sizeof cfg_path, "%s/config.yaml", dir);
    snprintf(log_path, sizeof log_path, "%s/log.txt", dir);
    const char *argv[] = {"train", cfg_path, NULL};
    ck_assert_int_eq(tt_wait(tt_spawn_fault(argv, log_path, "kill:step:2")), 128 + SIGKILL);
    copy_file(q8, base);
    tt_expect(dir, args_resume, 2, "is not the base file the run was trained on");
    copy_file(f32, base);
    tt_expect(dir, args_resume, 0, "resuming from");
    /* ... and ends as a run of 3 steps without the kill */
    char *ref = test_tmpdir(), ref_args[4400];
    write_train_config(ref, base, rows, 3);
    snprintf(ref_args, sizeof ref_args, "train '%s/config.yaml'", ref);
    tt_expect(ref, ref_args, 0, "done: 3 steps");
    tt_assert_same_run(ref, dir, "resumed on the GGUF base");
    test_rmtree(ref);
    free(ref);
    /* the GGUF adapter of a run on a GGUF base: found from the run's config, the tensors of
     * the one for the Hugging Face model it was made from */
    char a[4400], b[4400], args[16384], err[1024];
    snprintf(a, sizeof a, "%s/a.gguf", dir);
    snprintf(b, sizeof b, "%s/b.gguf", dir);
    snprintf(args, sizeof args, "export '%s/out/adapter' --format gguf --out '%s'", dir, a);
    tt_expect(dir, args, 0, "arch llama");
    snprintf(args, sizeof args, "export '%s/out/adapter' --format gguf --model '%s' --out '%s'",
             dir, model, b);
    tt_expect(dir, args, 0, "arch llama");
    GgufFile *fa = gguf_open(a, err, sizeof err), *fb = gguf_open(b, err, sizeof err);
    ck_assert_msg(fa && fb, "%s", err);
    ck_assert_int_eq(gguf_tensor_total(fa), gguf_tensor_total(fb));
    for (int i = 0; i < gguf_tensor_total(fa); i++) {
        const GgufTensorInfo *ta = gguf_tensor_at(fa, i), *tb = gguf_tensor_at(fb, i);
        ck_assert_str_eq(ta->name, tb->name);
        ck_assert(ta->nbytes == tb->nbytes && memcmp(ta->data, tb->data, ta->nbytes) == 0);
    }
    gguf_close(fa);
    gguf_close(fb);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* general.architecture no family loads: refused naming it and the archs that load; a file cut
 * short: refused naming the file (exit 1 or 2), never a crash. */
START_TEST(test_unknown_arch_and_truncated_file_are_refused) {
    char *dir = test_tmpdir(), model[4200], f32[4200], bad[4200], rows[4200], err[2048];
    snprintf(model, sizeof model, "%s/qwen3", dir);
    snprintf(f32, sizeof f32, "%s/qwen3.gguf", dir);
    snprintf(bad, sizeof bad, "%s/bad.gguf", dir);
    snprintf(rows, sizeof rows, "%s/rows.jsonl", dir);
    gb_make_hf(model, "qwen3");
    gb_export_f32(model, f32);
    size_t len;
    char *data = test_read_file(f32, &len);
    char *at = memmem(data, len, "general.architecture", 20);
    ck_assert(at != NULL);
    ck_assert(memcmp(at + 20 + 4 + 8, "qwen3", 5) == 0); /* type u32, length u64, value */
    memcpy(at + 20 + 4 + 8, "bert5", 5);
    test_write_file(bad, data, len);
    ck_assert(model_load(bad, err, sizeof err) == NULL);
    ck_assert_msg(strstr(err, "\"bert5\" is not supported") && strstr(err, "llama, qwen2, qwen3") &&
                      strstr(err, "gemma3"),
                  "%s", err);
    char args_train[4400];
    snprintf(args_train, sizeof args_train, "train '%s/config.yaml'", dir);
    tt_random_rows(rows, 8, 8, 40, 320, 3);
    write_train_config(dir, bad, rows, 1);
    tt_expect(dir, args_train, 1, "is not supported as a base");
    test_write_file(bad, data, len / 2);
    ck_assert(model_load(bad, err, sizeof err) == NULL);
    ck_assert_msg(strstr(err, bad) != NULL, "%s", err);
    int rc = tt_lorafit(dir, args_train);
    char *log = tt_log(dir);
    ck_assert_msg((rc == 1 || rc == 2) && strstr(log, "bad.gguf"), "exit %d: %s", rc, log);
    free(log);
    free(data);
    test_rmtree(dir);
    free(dir);
}
END_TEST

Suite *gguf_base_suite(void) {
    Suite *s = suite_create("gguf_base");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_f32_gguf_bases_give_their_hf_models_first_step_bit_for_bit);
    tcase_add_test(tc, test_f32_gguf_bases_of_the_other_archs);
    tcase_add_test(tc, test_gemma3_gguf_with_a_folded_attention_scale_agrees_to_rounding);
    tcase_add_test(tc, test_llama3_rope_factors_give_transformers_frequencies);
    tcase_add_test(tc, test_resume_on_another_gguf_file_is_refused);
    tcase_add_test(tc, test_generate_eval_and_checkpointing_on_a_gguf_base);
    tcase_add_test(tc, test_unknown_arch_and_truncated_file_are_refused);
    suite_add_tcase(s, tc);
    return s;
}
