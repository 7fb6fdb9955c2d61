/* tests/test_cli.c — the command line as a user meets it: config errors exit 2 naming the
 * key, export writes PEFT's exact layout (checked by lorafit's reader and by an independent
 * Python reader), eval reports the loss the trainer saw. */
#include <sys/stat.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/test_train_util.h"
#include "tests/test_util.h"
#include "trainer/store/store.h"

static const char *BASE_CONFIG = "model:\n  path: %s/tests/data/train/qwen2-untied/model\n"
                                 "lora:\n  r: 2\n  alpha: 4\n"
                                 "data:\n  train: %s/tests/data/train/qwen2-untied/train.jsonl\n"
                                 "  seq_len: 16\n  shuffle: false\n"
                                 "train:\n  batch_size: 3\n  max_steps: 2\n  lr: 1.0e-2\n"
                                 "output:\n  dir: out\n  save_every: 1\n"
                                 "%s";

static char *config_with(const char *dir, const char *extra) {
    char root[4096], cfg[16384];
    ck_assert(realpath(".", root) != NULL);
    snprintf(cfg, sizeof cfg, BASE_CONFIG, root, root, extra);
    return tt_write_text(dir, "config.yaml", cfg);
}

/* Runs `lorafit train CONFIG SETS` and expects exit 2 with every needle in the output. */
static void expect_config_error(const char *extra, const char *sets, const char *needle1,
                                const char *needle2) {
    char *dir = test_tmpdir();
    char *cfg = config_with(dir, extra);
    char args[8192];
    snprintf(args, sizeof args, "train '%s' %s", cfg, sets);
    tt_expect(dir, args, 2, needle1);
    if (needle2) tt_expect(dir, args, 2, needle2);
    free(cfg);
    test_rmtree(dir);
    free(dir);
}

START_TEST(test_unknown_key_exits_2_with_did_you_mean) {
    expect_config_error("eval:\n  evry: 5\n", "", "eval.evry", "did you mean");
    expect_config_error("", "--set train.lerning_rate=1", "train.lerning_rate", "train.lr");
}
END_TEST

START_TEST(test_wrong_type_exits_2_naming_key_and_position) {
    expect_config_error("log:\n  every: often\n", "", "log.every", "config.yaml:");
}
END_TEST

START_TEST(test_out_of_range_exits_2_naming_key) {
    expect_config_error("", "--set lora.dropout=1.5", "lora.dropout", NULL);
    expect_config_error("", "--set train.batch_size=0", "train.batch_size", NULL);
}
END_TEST

START_TEST(test_missing_files_exit_2_naming_key) {
    expect_config_error("", "--set model.path=/nonexistent/model", "model.path", "does not exist");
    expect_config_error("", "--set data.train=/nonexistent/train.jsonl", "data.train",
                        "does not exist");
    expect_config_error("", "--set 'data.valid=/nonexistent/*.jsonl'", "data.valid", "no file");
    expect_config_error("", "--set lora.init_from=/nonexistent/adapter", "lora.init_from", NULL);
}
END_TEST

START_TEST(test_usage_errors_exit_2) {
    char *dir = test_tmpdir();
    ck_assert_int_eq(tt_lorafit(dir, "train"), 2);
    ck_assert_int_eq(tt_lorafit(dir, "frobnicate"), 2);
    ck_assert_int_eq(tt_lorafit(dir, "train x.yaml --bogus"), 2);
    ck_assert_int_eq(tt_lorafit(dir, "export"), 2);
    ck_assert_int_eq(tt_lorafit(dir, "export a --out b --dtype f64"), 2);
    ck_assert_int_eq(tt_lorafit(dir, "train --help"), 0);
    ck_assert_int_eq(tt_lorafit(dir, "--version"), 0);
    char *log = tt_log(dir);
    ck_assert_msg(strncmp(log, "lorafit ", 8) == 0, "%s", log);
    free(log);
    test_rmtree(dir);
    free(dir);
}
END_TEST

static void check_with_python(const char *adapter_dir, const char *dtype) {
    char cmd[16384], root[4096];
    ck_assert(realpath(".", root) != NULL);
    snprintf(cmd, sizeof cmd,
             "python3 '%s/tests/check_peft_adapter.py' '%s' "
             "'%s/tests/data/train/qwen2-untied/model/config.json' %s",
             root, adapter_dir, root, dtype);
    char out[4400];
    snprintf(out, sizeof out, "%s/../py.txt", adapter_dir);
    int rc = test_run(cmd, out);
    char *text = test_read_file(out, NULL);
    ck_assert_msg(rc == 0 && text && strncmp(text, "ok ", 3) == 0, "%s: %s", adapter_dir,
                  text ? text : "(no output)");
    free(text);
}

START_TEST(test_export_writes_peft_layout_checked_by_two_readers) {
    char *dir = test_tmpdir();
    char *cfg = config_with(dir, "");
    char args[8192];
    snprintf(args, sizeof args, "train '%s' --set lora.dropout=0.05", cfg);
    int rc = tt_lorafit(dir, args);
    char *log = tt_log(dir);
    ck_assert_msg(rc == 0, "train failed:\n%s", log);
    free(log);
    /* The value the user wrote, not its float32 rounding (0.05000000074505806). */
    char acfg[4400];
    snprintf(acfg, sizeof acfg, "%s/out/adapter/adapter_config.json", dir);
    char *text = test_read_file(acfg, NULL);
    ck_assert_msg(text && strstr(text, "\"lora_dropout\": 0.05,"), "%s", text ? text : "");
    free(text);
    char final_dir[4200], exp32[4200], exp16[4200], path[4400], err[1024];
    snprintf(final_dir, sizeof final_dir, "%s/out/adapter", dir);
    snprintf(exp32, sizeof exp32, "%s/export32", dir);
    snprintf(exp16, sizeof exp16, "%s/exportbf16", dir);
    snprintf(args, sizeof args, "export '%s/out/checkpoint-2' --out '%s'", dir, exp32);
    ck_assert_int_eq(tt_lorafit(dir, args), 0);
    snprintf(args, sizeof args, "export '%s/out/checkpoint-2' --out '%s' --dtype bf16", dir, exp16);
    ck_assert_int_eq(tt_lorafit(dir, args), 0);
    check_with_python(final_dir, "F32");
    check_with_python(exp32, "F32");
    check_with_python(exp16, "BF16");
    /* lorafit's own reader: F32 by default, {"format": "pt"}, [r, in] and [out, r]. */
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", exp32);
    SafeTensors *st = st_open(path, err, sizeof err);
    ck_assert_msg(st != NULL, "%s", err);
    ck_assert_str_eq(st_metadata(st, "format"), "pt");
    const StTensor *a =
        st_find(st, "base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight");
    const StTensor *b = st_find(st, "base_model.model.model.layers.0.mlp.down_proj.lora_B.weight");
    ck_assert(a && b);
    ck_assert_int_eq(a->dtype, ST_F32);
    ck_assert_int_eq(a->shape[0], 2);  /* r */
    ck_assert_int_eq(a->shape[1], 32); /* hidden */
    ck_assert_int_eq(b->shape[0], 32); /* hidden */
    ck_assert_int_eq(b->shape[1], 2);
    st_close(st);
    /* The checkpoint of the last step and the final adapter hold the same tensors. */
    char fin[4400];
    snprintf(fin, sizeof fin, "%s/adapter_model.safetensors", final_dir);
    ck_assert(tt_same_bytes(path, fin));
    char p16[4400];
    snprintf(p16, sizeof p16, "%s/adapter_model.safetensors", exp16);
    ck_assert_double_lt(tt_adapter_rel_diff(p16, path, ""), 1e-2);
    /* inspect reads what export wrote. */
    snprintf(args, sizeof args, "inspect '%s'", exp16);
    ck_assert_int_eq(tt_lorafit(dir, args), 0);
    log = tt_log(dir);
    ck_assert_msg(strstr(log, "BF16") != NULL, "%s", log);
    free(log);
    free(cfg);
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_eval_reports_the_loss_the_trainer_saw) {
    /* The qwen2 fixture's first batch with its initial adapter has a known loss. */
    char *dir = test_tmpdir();
    char root[4096];
    ck_assert(realpath(".", root) != NULL);
    char *cfg = config_with(dir, "eval:\n  max_batches: 1\n");
    char args[8192];
    snprintf(args, sizeof args,
             "eval '%s' --set lora.rslora=true --adapter "
             "'%s/tests/data/train/qwen2-untied/init_adapter'",
             cfg, root);
    int rc = tt_lorafit(dir, args);
    char *log = tt_log(dir);
    ck_assert_msg(rc == 0, "eval failed (%d):\n%s", rc, log);
    const char *j = strstr(log, "{\"eval_loss\"");
    ck_assert_msg(j != NULL, "%s", log);
    json_t *res = json_loads(j, JSON_DISABLE_EOF_CHECK, NULL);
    ck_assert(res != NULL);
    char fx[4200];
    snprintf(fx, sizeof fx, "%s/tests/data/train/qwen2-untied/fixture.json", root);
    json_t *fixture = json_load_file(fx, 0, NULL);
    double want = json_number_value(json_array_get(json_object_get(fixture, "losses"), 0));
    double got = json_number_value(json_object_get(res, "eval_loss"));
    ck_assert_msg(got > want * (1 - 1e-4) && got < want * (1 + 1e-4), "eval %.9g, reference %.9g",
                  got, want);
    /* with gradient checkpointing (one layer's activations at a time): the same line */
    char *line = strndup(j, strcspn(j, "\n"));
    free(log);
    strcat(args, " --set train.gradient_checkpointing=true");
    ck_assert_int_eq(tt_lorafit(dir, args), 0);
    log = tt_log(dir);
    ck_assert_msg(strstr(log, line) != NULL, "'%s' not in\n%s", line, log);
    free(line);
    json_decref(res);
    json_decref(fixture);
    free(log);
    free(cfg);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* eval_loss of `lorafit eval CFG` on the model directory `model` (sets: more --set). */
static double eval_loss_of(const char *dir, const char *cfg, const char *model, const char *sets) {
    char args[12288];
    snprintf(args, sizeof args, "eval '%s' --set model.path='%s' %s", cfg, model, sets);
    int rc = tt_lorafit(dir, args);
    char *log = tt_log(dir);
    const char *at = strstr(log, "\"eval_loss\":");
    ck_assert_msg(rc == 0 && at, "lorafit %s: exit %d\n%s", args, rc, log);
    double loss = strtod(at + strlen("\"eval_loss\":"), NULL);
    free(log);
    return loss;
}

START_TEST(test_sliding_windows_apply_per_layer_past_the_window) {
    /* the qwen2 fixture (2 layers, seq_len 16) with use_sliding_window and a window of 8:
     * transformers slides the layers from max_window_layers on. Layer 1 sliding changes the
     * loss; with max_window_layers 2 no layer slides (the loss without a window); within the
     * window (seq_len 8) the window changes nothing. */
    char *dir = test_tmpdir();
    char root[4096], src[4300], dst[8192], win1[4400], win2[4400];
    ck_assert(realpath(".", root) != NULL);
    snprintf(src, sizeof src, "%s/tests/data/train/qwen2-untied/model", root);
    snprintf(win1, sizeof win1, "%s/win1", dir);
    snprintf(win2, sizeof win2, "%s/win2", dir);
    for (int k = 1; k <= 2; k++) {
        snprintf(dst, sizeof dst, "%s/win%d", dir, k);
        json_t *edits = json_pack("{s:b, s:i, s:i}", "use_sliding_window", 1, "sliding_window", 8,
                                  "max_window_layers", k);
        tt_model_with_config(src, dst, edits);
        json_decref(edits);
    }
    char *cfg = config_with(dir, "");
    double full = eval_loss_of(dir, cfg, src, ""), slid = eval_loss_of(dir, cfg, win1, ""),
           none = eval_loss_of(dir, cfg, win2, "");
    ck_assert_msg(slid != full && none == full,
                  "losses: full %.9g, layer 1 sliding %.9g, none %.9g", full, slid, none);
    ck_assert(eval_loss_of(dir, cfg, win1, "--set data.seq_len=8") ==
              eval_loss_of(dir, cfg, src, "--set data.seq_len=8"));
    /* llama.cpp's qwen3 has no window: the GGUF is written, with a warning saying from where
     * it differs */
    char q3[4400], args[12288];
    snprintf(src, sizeof src, "%s/tests/data/train/qwen3-untied/model", root);
    snprintf(q3, sizeof q3, "%s/q3", dir);
    json_t *edits = json_pack("{s:b, s:i, s:i}", "use_sliding_window", 1, "sliding_window", 8,
                              "max_window_layers", 0);
    tt_model_with_config(src, q3, edits);
    json_decref(edits);
    for (int k = 0; k < 2; k++) {
        const char *f = k ? "tokenizer_config.json" : "tokenizer.json";
        snprintf(args, sizeof args, "%s/%s", src, f);
        snprintf(dst, sizeof dst, "%s/%s", q3, f);
        ck_assert_int_eq(symlink(args, dst), 0);
    }
    snprintf(args, sizeof args, "merge --model '%s' --out '%s/q3.gguf'", q3, dir);
    tt_expect(dir, args, 0,
              "warning: llama.cpp's qwen3 has no sliding window: past 8 positions (the model's "
              "sliding_window) its results differ");
    free(cfg);
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_train_prints_one_plain_line_per_logged_step_with_eta) {
    /* stderr is not a terminal here: one line per metrics line, each ending in the ETA */
    char *dir = test_tmpdir();
    char *cfg = config_with(dir, "log:\n  every: 1\n");
    char args[8192];
    snprintf(args, sizeof args, "train '%s' --set train.max_steps=3", cfg);
    ck_assert_int_eq(tt_lorafit(dir, args), 0);
    char *log = tt_log(dir);
    for (int step = 1; step <= 3; step++) {
        char head[32];
        snprintf(head, sizeof head, "step %d/3  loss ", step);
        const char *line = strstr(log, head);
        ck_assert_msg(line != NULL, "no '%s' in\n%s", head, log);
        const char *eta = strstr(line, " tok/s  eta ");
        size_t len = strcspn(line, "\n");
        ck_assert_msg(eta && eta < line + len, "no ETA in '%.*s'", (int)len, line);
        unsigned minutes, seconds;
        char end;
        ck_assert_msg(sscanf(eta, " tok/s  eta %u:%2u%c", &minutes, &seconds, &end) == 3 &&
                          end == '\n' && seconds < 60,
                      "ETA not M:SS at the line's end: '%.*s'", (int)len, line);
        if (step == 3) ck_assert_msg(minutes == 0 && seconds == 0, "the last step has no ETA");
    }
    free(log);
    free(cfg);
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_generate_command_prints_prompt_and_ids) {
    TEST_NEED_SHARED(shared);
    char *dir = test_tmpdir();
    char cmd[8192], out[4200];
    snprintf(out, sizeof out, "%s/out.txt", dir);
    /* stdout only: the precision note goes to stderr */
    snprintf(
        cmd, sizeof cmd,
        "{ %s generate --model %s/models/stories260K --prompt-ids '1 403' -n 3 --precision f32 "
        "2>/dev/null; }",
        test_lorafit_bin(), shared);
    ck_assert_int_eq(test_run(cmd, out), 0);
    char *text = test_read_file(out, NULL);
    ck_assert_str_eq(text, "1 403 407 261 378\n"); /* expected_greedy_ids continues 407 261 378 */
    free(text);
    snprintf(cmd, sizeof cmd,
             "%s generate --model %s/models/stories260K --prompt-ids 'x' 2>/dev/null",
             test_lorafit_bin(), shared);
    ck_assert_int_eq(test_run(cmd, NULL), 2);
    snprintf(cmd, sizeof cmd, "%s generate --model %s --prompt-ids 1 2>/dev/null",
             test_lorafit_bin(), dir);
    ck_assert_int_eq(test_run(cmd, NULL), 1);
    test_rmtree(dir);
    free(dir);
}
END_TEST

Suite *cli_suite(void) {
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("cli");
    tcase_add_test(tc, test_generate_command_prints_prompt_and_ids);
    tcase_add_test(tc, test_unknown_key_exits_2_with_did_you_mean);
    tcase_add_test(tc, test_wrong_type_exits_2_naming_key_and_position);
    tcase_add_test(tc, test_out_of_range_exits_2_naming_key);
    tcase_add_test(tc, test_missing_files_exit_2_naming_key);
    tcase_add_test(tc, test_usage_errors_exit_2);
    tcase_add_test(tc, test_export_writes_peft_layout_checked_by_two_readers);
    tcase_add_test(tc, test_eval_reports_the_loss_the_trainer_saw);
    tcase_add_test(tc, test_train_prints_one_plain_line_per_logged_step_with_eta);
    tcase_add_test(tc, test_sliding_windows_apply_per_layer_past_the_window);
    suite_add_tcase(s, tc);
    return s;
}
