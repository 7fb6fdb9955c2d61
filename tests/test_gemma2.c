/* tests/test_gemma2.c — Gemma 2 (gemma2) through the commands on the tiny fixture
 * tests/data/train/gemma2-tied (three layers, 0 and 2 sliding with a window of 5; scores
 * soft-capped at 2 and logits at 3; (1 + w) norms away from 0; GQA 4/2; tied; the Gemma
 * tokenizer of gemma3-tied). Its numbers are held to the float64 reference in test_model.c
 * and test_train.c, its GGUFs to llama.cpp in test_gguf_llamacpp.c; here: eval (the fused
 * soft-capped loss) and generate give the reference's, gradient checkpointing is
 * byte-identical, the GGUF is laid out as llama.cpp's converter writes arch gemma2, and a
 * Gemma 2 llama.cpp would compute differently is refused with the reason. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/test_gguf_reader.h"
#include "tests/test_train_util.h"
#include "tests/test_util.h"
#include "trainer/store/store.h"

#define G2 "tests/data/train/gemma2-tied"

/* eval --adapter on the fixture's first batch: the reference's first loss (1e-6), through
 * the fused lm_head's soft-cap; generate --adapter: the reference's 64 greedy ids. */
START_TEST(test_eval_and_generate_give_the_reference) {
    char *dir = test_tmpdir(), *model = tt_repo_path(G2 "/model");
    char *adapter = tt_repo_path(G2 "/init_adapter"), *train = tt_repo_path(G2 "/train.jsonl");
    char *rows = test_read_file(train, NULL);
    char *second = strchr(strchr(rows, '\n') + 1, '\n');
    second[1] = '\0';
    char *valid = tt_write_text(dir, "valid.jsonl", rows), extra[8192], args[8192];
    snprintf(extra, sizeof extra,
             "data:\n  train: %s\n  valid: %s\n  seq_len: 16\n  shuffle: false\n"
             "train:\n  batch_size: 2\n  precision: f32\n",
             valid, valid);
    char *cfg = tt_write_config(dir, model, extra);
    snprintf(args, sizeof args, "eval '%s' --adapter '%s'", cfg, adapter);
    ck_assert_int_eq(tt_lorafit(dir, args), 0);
    char *log = tt_log(dir);
    const char *at = strstr(log, "\"eval_loss\":");
    ck_assert_msg(at != NULL, "%s", log);
    double got = strtod(at + strlen("\"eval_loss\":"), NULL);
    json_t *fx = json_load_file(G2 "/fixture.json", 0, NULL);
    double want = json_number_value(json_array_get(json_object_get(fx, "losses"), 0));
    ck_assert_msg(fabs(got - want) <= 1e-6 * want, "eval_loss %.9g, reference %.9g", got, want);
    snprintf(args, sizeof args, "--model '%s' --adapter '%s'", model, adapter);
    tt_check_generates(dir, args, G2);
    json_decref(fx);
    free(log);
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

START_TEST(test_checkpointing_is_byte_identical) {
    char *ref = test_tmpdir(), *cut = test_tmpdir(), *model = tt_repo_path(G2 "/model");
    char rows[4400], extra[8192], args[4400];
    for (int i = 0; i < 2; i++) {
        const char *dir = i ? cut : ref;
        snprintf(rows, sizeof rows, "%s/rows.jsonl", dir);
        tt_random_rows(rows, 24, 3, 30, 320, 19);
        snprintf(extra, sizeof extra,
                 "lora:\n  r: 4\n  alpha: 8\n  dropout: 0.1\n  target_modules: all-linear\n"
                 "data:\n  train: %s\n  seq_len: 32\n  packing: true\n  overflow: split\n"
                 "train:\n  batch_size: 2\n  grad_accum: 2\n  max_steps: 3\n  lr: 1.0e-2\n"
                 "  precision: f32\n  gradient_checkpointing: %s\n",
                 rows, i ? "true" : "false");
        char *cfg = tt_write_config(dir, model, extra);
        snprintf(args, sizeof args, "train '%s'", cfg);
        tt_expect(dir, args, 0, NULL);
        free(cfg);
    }
    tt_assert_same_run(ref, cut, "f32");
    test_rmtree(ref);
    test_rmtree(cut);
    free(ref);
    free(cut);
    free(model);
}
END_TEST

/* As convert_hf_to_gguf.py's Gemma2Model writes it: arch gemma2, both soft-caps,
 * sliding_window, no pattern (llama.cpp's default: the even layers), four norms per layer,
 * each + 1, and no output.weight. */
START_TEST(test_merge_gguf_is_laid_out_as_llamacpp_gemma2) {
    char *dir = test_tmpdir(), *model = tt_repo_path(G2 "/model"), args[8192], path[4400];
    snprintf(path, sizeof path, "%s/m.gguf", dir);
    snprintf(args, sizeof args, "merge --model '%s' --out '%s'", model, path);
    tt_expect(dir, args, 0, "arch gemma2");
    TgFile f;
    tg_read(path, &f);
    char *s = tg_str(&f, "general.architecture");
    ck_assert_str_eq(s, "gemma2");
    free(s);
    ck_assert_float_eq(tg_f32(&f, "gemma2.attn_logit_softcapping"), 2.0f);
    ck_assert_float_eq(tg_f32(&f, "gemma2.final_logit_softcapping"), 3.0f);
    ck_assert_uint_eq(tg_u32(&f, "gemma2.attention.sliding_window"), 5);
    ck_assert_uint_eq(tg_u32(&f, "gemma2.attention.key_length"), 16);
    ck_assert(!tg_kv(&f, "gemma2.attention.sliding_window_pattern"));
    ck_assert_int_eq(f.n_tensors, 2 + 3 * 11);
    ck_assert(!tg_tensor(&f, "output.weight") && !tg_tensor(&f, "blk.0.attn_q_norm.weight"));
    char err[512];
    snprintf(path, sizeof path, "%s/model.safetensors", model);
    SafeTensors *st = st_open(path, err, sizeof err);
    ck_assert_msg(st != NULL, "%s", err);
    const TgTensor *t = tg_tensor(&f, "blk.1.post_ffw_norm.weight");
    const StTensor *w = st_find(st, "model.layers.1.post_feedforward_layernorm.weight");
    ck_assert(t && w);
    uint64_t n;
    float *got = tg_floats(t, &n), want[32];
    ck_assert(n == 32 && st_to_float(w, want, err, sizeof err) == 0);
    for (int i = 0; i < 32; i++) ck_assert(got[i] == want[i] + 1.0f);
    free(got);
    st_close(st);
    tg_free(&f);
    free(model);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* llama.cpp's gemma2 scales scores by 1/sqrt(head_dim) and knows sliding layers only as a
 * period: a model with another query_pre_attn_scalar, or sliding layers 1 and 2 of 3, is
 * refused with the reason. */
START_TEST(test_gguf_llamacpp_would_compute_differently_is_refused) {
    char *dir = test_tmpdir(), *model = tt_repo_path(G2 "/model"), args[8192], m[4400];
    static const char *const why[] = {"query_pre_attn_scalar differs", "follow no period"};
    for (int k = 0; k < 2; k++) {
        snprintf(m, sizeof m, "%s/m%d", dir, k);
        json_t *edits = k ? json_pack("{s:[s,s,s]}", "layer_types", "full_attention",
                                      "sliding_attention", "sliding_attention")
                          : json_pack("{s:i}", "query_pre_attn_scalar", 24);
        tt_model_with_config(model, m, edits);
        json_decref(edits);
        snprintf(args, sizeof args, "merge --model '%s' --out '%s/m%d.gguf'", m, dir, k);
        tt_expect(dir, args, 1, why[k]);
    }
    free(model);
    test_rmtree(dir);
    free(dir);
}
END_TEST

Suite *gemma2_suite(void) {
    Suite *s = suite_create("gemma2");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_eval_and_generate_give_the_reference);
    tcase_add_test(tc, test_checkpointing_is_byte_identical);
    tcase_add_test(tc, test_merge_gguf_is_laid_out_as_llamacpp_gemma2);
    tcase_add_test(tc, test_gguf_llamacpp_would_compute_differently_is_refused);
    suite_add_tcase(s, tc);
    return s;
}
