/* tests/test_config.c — the YAML config: defaults, every error class, --set, round trip,
 * and the resume-compatibility keys. */
#include "trainer/config/config.h"
#include "trainer/model/decoder.h"
#include "tests/test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Without the data section, for tests that write their own. */
static const char NO_DATA[] = "model:\n  path: models/m\noutput:\n  dir: runs/x\n";
static const char MINIMAL[] = "model:\n  path: models/m\n"
                              "data:\n  train: data/train.jsonl\n"
                              "output:\n  dir: runs/x\n";

/* Writes text to DIR/config.yaml and loads it; returns config_load's code. */
static int load_text(const char *dir, const char *text, const char *const *sets, int n_sets,
                     Config *c, char *err, size_t errlen) {
    char path[4200];
    snprintf(path, sizeof path, "%s/config.yaml", dir);
    test_write_file(path, text, strlen(text));
    return config_load(path, sets, n_sets, c, err, errlen);
}

/* Loading text must fail with code 2 and an error containing every needle. */
static void expect_error(const char *text, const char *const *sets, int n_sets, const char *needle1,
                         const char *needle2) {
    char *dir = test_tmpdir(), err[1024] = "";
    Config c;
    int rc = load_text(dir, text, sets, n_sets, &c, err, sizeof err);
    ck_assert_msg(rc == CONFIG_INVALID, "expected CONFIG_INVALID for:\n%s\ngot %d (%s)", text, rc,
                  err);
    ck_assert_msg(strstr(err, needle1) != NULL, "expected '%s' in: %s", needle1, err);
    if (needle2) ck_assert_msg(strstr(err, needle2) != NULL, "expected '%s' in: %s", needle2, err);
    test_rmtree(dir);
    free(dir);
}

START_TEST(test_defaults_match_spec_and_paths_resolve_against_config_dir) {
    char *dir = test_tmpdir(), err[1024], want[4300];
    Config c;
    ck_assert_msg(load_text(dir, MINIMAL, NULL, 0, &c, err, sizeof err) == 0, "%s", err);
    char *real = realpath(dir, NULL);
    snprintf(want, sizeof want, "%s/models/m", real);
    ck_assert_str_eq(c.model.path, want);
    snprintf(want, sizeof want, "%s/data/train.jsonl", real);
    ck_assert_int_eq(c.data.train.n, 1);
    ck_assert_str_eq(c.data.train.items[0], want);
    ck_assert_int_eq(c.data.valid.n, 0);
    ck_assert_int_eq(c.model.dtype, CONFIG_DTYPE_F32);
    ck_assert_int_eq(c.lora.r, 8);
    ck_assert_double_eq(c.lora.alpha, 16);
    ck_assert_double_eq(c.lora.dropout, 0.0);
    ck_assert_int_eq(c.lora.target_modules.n, 0); /* the model family's default, at train */
    ck_assert(!c.lora.rslora);
    ck_assert_ptr_null(c.lora.init_from);
    ck_assert_str_eq(c.data.input_field, "input_ids");
    ck_assert_str_eq(c.data.labels_field, "labels");
    ck_assert_int_eq(c.data.seq_len, 512);
    ck_assert(!c.data.packing);
    ck_assert_int_eq(c.data.overflow, OVERFLOW_TRUNCATE);
    ck_assert(c.data.shuffle);
    ck_assert_int_eq(c.data.shuffle_buffer, 10000);
    ck_assert_int_eq(c.data.on_error, ON_ERROR_FAIL);
    ck_assert_int_eq(c.train.batch_size, 4);
    ck_assert_int_eq(c.train.grad_accum, 1);
    ck_assert_int_eq(c.train.max_steps, 1000);
    ck_assert_int_eq(c.train.epochs, 0);
    ck_assert_double_eq(c.train.lr, 2.0e-4);
    ck_assert_int_eq(c.train.lr_scheduler, LR_COSINE);
    ck_assert_int_eq(c.train.warmup_steps, 0);
    ck_assert_double_eq(c.train.min_lr_ratio, 0.0);
    ck_assert_double_eq(c.train.weight_decay, 0.0);
    ck_assert_double_eq(c.train.adam_beta1, 0.9);
    ck_assert_double_eq(c.train.adam_beta2, 0.999);
    ck_assert_double_eq(c.train.adam_eps, 1.0e-8);
    ck_assert_double_eq(c.train.max_grad_norm, 1.0);
    ck_assert_int_eq(c.train.seed, 42);
    ck_assert_int_eq(c.train.threads, 0);
    ck_assert_int_eq(c.train.on_nonfinite, ON_NONFINITE_STOP);
    ck_assert_int_eq(c.train.max_nonfinite_skips, 10);
    ck_assert_int_eq(c.eval.every, 0);
    ck_assert_int_eq(c.eval.max_batches, 0);
    ck_assert_int_eq(c.output.save_every, 100);
    ck_assert_int_eq(c.output.keep, 3);
    ck_assert_int_eq(c.log.every, 10);
    config_free(&c);
    free(real);
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_full_spec_example_loads) {
    const char *text =
        "model:\n  path: /abs/models/stories260K\n  dtype: bf16\n"
        "lora:\n  r: 16\n  alpha: 32\n  dropout: 0.05\n  target_modules: [q_proj, v_proj]\n"
        "  rslora: true\n  init_from: null\n"
        "data:\n  train: [a.jsonl, 'b/*.csv.gz']\n  valid: v.jsonl\n  input_field: ids\n"
        "  labels_field: null\n  seq_len: 256\n  packing: true\n  overflow: split\n"
        "  shuffle: false\n  shuffle_buffer: 7\n  on_error: skip\n"
        "train:\n  batch_size: 8\n  grad_accum: 2\n  max_steps: 1000\n  epochs: null\n"
        "  lr: 1e-4\n  lr_scheduler: linear\n  warmup_steps: 5\n  min_lr_ratio: 0.1\n"
        "  weight_decay: 0.01\n  adam_beta1: 0.8\n  adam_beta2: 0.95\n  adam_eps: 1.0e-6\n"
        "  max_grad_norm: 0\n  seed: 7\n  threads: 2\n"
        "eval:\n  every: 50\n  max_batches: 4\n"
        "output:\n  dir: /abs/runs/example\n  save_every: 0\n  keep: 1\n"
        "log:\n  every: 1\n";
    char *dir = test_tmpdir(), err[1024];
    Config c;
    ck_assert_msg(load_text(dir, text, NULL, 0, &c, err, sizeof err) == 0, "%s", err);
    ck_assert_str_eq(c.model.path, "/abs/models/stories260K");
    ck_assert_int_eq(c.model.dtype, CONFIG_DTYPE_BF16);
    ck_assert_int_eq(c.lora.target_modules.n, 2);
    ck_assert_str_eq(c.lora.target_modules.items[1], "v_proj");
    ck_assert(c.lora.rslora);
    ck_assert_int_eq(c.data.train.n, 2);
    ck_assert_ptr_nonnull(strstr(c.data.train.items[1], "/b/*.csv.gz"));
    ck_assert_int_eq(c.data.valid.n, 1);
    ck_assert_ptr_null(c.data.labels_field);
    ck_assert_int_eq(c.data.overflow, OVERFLOW_SPLIT);
    ck_assert_int_eq(c.data.on_error, ON_ERROR_SKIP);
    ck_assert_double_eq(c.train.lr, 1e-4); /* YAML 1.2: 1e-4 is a float */
    ck_assert_int_eq(c.train.lr_scheduler, LR_LINEAR);
    ck_assert_double_eq(c.train.max_grad_norm, 0.0);
    ck_assert_int_eq(c.output.keep, 1);
    config_free(&c);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* all-linear names every module kind; training resolves it to the family's own (setup.c). */
START_TEST(test_all_linear_means_every_module_kind) {
    char *dir = test_tmpdir(), err[1024], text[1024];
    const char *forms[] = {"all-linear", "[all-linear]"};
    for (int i = 0; i < 2; i++) {
        snprintf(text, sizeof text, "%slora:\n  target_modules: %s\n", MINIMAL, forms[i]);
        Config c;
        ck_assert_msg(load_text(dir, text, NULL, 0, &c, err, sizeof err) == 0, "%s", err);
        ck_assert_int_eq(c.lora.target_modules.n, MODULE_COUNT);
        ck_assert_str_eq(c.lora.target_modules.items[0], "q_proj");
        ck_assert_str_eq(c.lora.target_modules.items[MODULE_COUNT - 1], "per_layer_projection");
        config_free(&c);
    }
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_unknown_keys_suggest_the_right_one) {
    char text[1024];
    snprintf(text, sizeof text, "%strain:\n  lerning_rate: 1e-4\n", MINIMAL);
    expect_error(text, NULL, 0, "train.lerning_rate: unknown key (", "did you mean `train.lr`?");
    snprintf(text, sizeof text, "%strain:\n  batch_sise: 4\n", MINIMAL);
    expect_error(text, NULL, 0, "config.yaml:8:3", "did you mean `train.batch_size`?");
    snprintf(text, sizeof text, "%strain:\n  seq_len: 4\n", MINIMAL);
    expect_error(text, NULL, 0, "did you mean `data.seq_len`?", NULL);
    snprintf(text, sizeof text, "%straning:\n  lr: 1\n", MINIMAL);
    expect_error(text, NULL, 0, "traning: unknown section", "did you mean `train`?");
    snprintf(text, sizeof text, "%strain:\n  on_nonfinit: skip\n", MINIMAL);
    expect_error(text, NULL, 0, "did you mean `train.on_nonfinite`?", NULL);
    snprintf(text, sizeof text, "%strain:\n  max_nonfinite_skip: 3\n", MINIMAL);
    expect_error(text, NULL, 0, "did you mean `train.max_nonfinite_skips`?", NULL);
    snprintf(text, sizeof text, "%slora:\n  zzzzzzzzzz: 1\n", MINIMAL);
    expect_error(text, NULL, 0, "lora.zzzzzzzzzz: unknown key", NULL);
}
END_TEST

START_TEST(test_wrong_types_name_key_and_position) {
    char text[1024];
    snprintf(text, sizeof text, "%strain:\n  lr: 1e-4\n  batch_size: four\n", MINIMAL);
    expect_error(text, NULL, 0, "train.batch_size: expected an integer, got 'four'",
                 "config.yaml:9:15)");
    snprintf(text, sizeof text, "%strain:\n  batch_size: 4.5\n", MINIMAL);
    expect_error(text, NULL, 0, "train.batch_size: expected an integer", NULL);
    snprintf(text, sizeof text, "%strain:\n  batch_size: '4'\n", MINIMAL);
    expect_error(text, NULL, 0, "expected an integer, got '4'", NULL);
    snprintf(text, sizeof text, "%strain:\n  lr: fast\n", MINIMAL);
    expect_error(text, NULL, 0, "train.lr: expected a number, got 'fast'", NULL);
    snprintf(text, sizeof text, "%sdata:\n  train: t\n  packing: yes\n", NO_DATA);
    expect_error(text, NULL, 0, "data.packing: expected true or false", NULL);
    snprintf(text, sizeof text, "%slora:\n  r: [1, 2]\n", MINIMAL);
    expect_error(text, NULL, 0, "lora.r: expected an integer, got a list", NULL);
    snprintf(text, sizeof text, "%sdata:\n  train: {a: 1}\n", NO_DATA);
    expect_error(text, NULL, 0, "data.train: expected a path or a list of paths, got a mapping",
                 NULL);
    snprintf(text, sizeof text, "%strain: 5\n", MINIMAL);
    expect_error(text, NULL, 0, "train: expected a mapping", NULL);
    expect_error("- a\n- b\n", NULL, 0, "must be a mapping of sections", NULL);
    expect_error("model:\n  path: m\n  dtype: f16\ndata:\n  train: t\noutput:\n  dir: o\n", NULL, 0,
                 "model.dtype: invalid value 'f16'", "allowed: f32 | bf16");
    expect_error("model:\n  path: m\ndata:\n  train: t\noutput:\n  dir: o\n  keep: 0\n", NULL, 0,
                 "output.keep: must be in [1, ", NULL);
    snprintf(text, sizeof text, "%strain:\n  max_nonfinite_skips: many\n", MINIMAL);
    expect_error(text, NULL, 0, "train.max_nonfinite_skips: expected an integer, got 'many'", NULL);
    snprintf(text, sizeof text, "%strain:\n  batch_size: 99999999999999999999999\n", MINIMAL);
    expect_error(text, NULL, 0, "train.batch_size: expected an integer", NULL);
}
END_TEST

START_TEST(test_out_of_range_values_are_rejected) {
    const char *cases[][2] = {
        {"lora:\n  r: 0\n", "lora.r: must be in [1, "},
        {"lora:\n  dropout: 1.0\n", "lora.dropout: must be in [0, 1), got 1.0"},
        {"lora:\n  dropout: -0.1\n", "lora.dropout: must be in [0, 1)"},
        {"train:\n  lr: 0\n", "train.lr: must be > 0, got 0"},
        {"train:\n  lr: .nan\n", "train.lr: must be a finite number, got .nan"},
        {"train:\n  lr: .inf\n", "train.lr: must be a finite number, got .inf"},
        {"train:\n  batch_size: 0\n", "train.batch_size: must be in [1, "},
        {"data:\n  seq_len: 1\n", "data.seq_len: must be in [2, "},
        {"train:\n  adam_beta1: 1\n", "train.adam_beta1: must be in [0, 1)"},
        {"train:\n  adam_beta2: -0.5\n", "train.adam_beta2: must be in [0, 1)"},
        {"train:\n  adam_eps: 0\n", "train.adam_eps: must be > 0"},
        {"log:\n  every: 0\n", "log.every: must be in [1, "},
        {"train:\n  min_lr_ratio: 1.5\n", "train.min_lr_ratio: must be in [0, 1]"},
        {"train:\n  max_grad_norm: -1\n", "train.max_grad_norm: must be >= 0"},
        {"train:\n  epochs: 0\n", "train.epochs: must be in [1, "},
        {"train:\n  lr_scheduler: cosine_with_restarts\n", "allowed: constant | linear | cosine"},
        {"data:\n  overflow: wrap\n", "allowed: truncate | split | drop"},
        {"train:\n  on_nonfinite: ignore\n", "allowed: stop | skip"},
        {"train:\n  max_nonfinite_skips: 0\n", "train.max_nonfinite_skips: must be in [1, "},
        {"lora:\n  target_modules: [q_proj, lm_head]\n", "unknown module 'lm_head'"},
        {"lora:\n  target_modules: []\n", "non-empty list"},
        {"data:\n  train: []\n", "data.train: the list is empty"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[1024];
        if (!strncmp(cases[i][0], "data:", 5))
            snprintf(text, sizeof text, "%sdata:\n%s%s", NO_DATA,
                     strstr(cases[i][0], "train:") ? "" : "  train: t\n", cases[i][0] + 6);
        else
            snprintf(text, sizeof text, "%s%s", MINIMAL, cases[i][0]);
        expect_error(text, NULL, 0, cases[i][1], NULL);
    }
}
END_TEST

START_TEST(test_duplicate_missing_and_syntax_errors) {
    char text[1024];
    snprintf(text, sizeof text, "%strain:\n  lr: 1\n  lr: 2\n", MINIMAL);
    expect_error(text, NULL, 0, "train.lr: duplicate key (", "first at line 8");
    snprintf(text, sizeof text, "%smodel:\n  dtype: f32\n", MINIMAL);
    expect_error(text, NULL, 0, "model: duplicate key", NULL);
    expect_error("data:\n  train: a\noutput:\n  dir: o\n", NULL, 0,
                 "model.path: required key missing", NULL);
    expect_error("model:\n  path: m\noutput:\n  dir: o\n", NULL, 0,
                 "data.train: required key missing", NULL);
    expect_error("model:\n  path: m\ndata:\n  train: a\n", NULL, 0,
                 "output.dir: required key missing", NULL);
    expect_error("", NULL, 0, "model.path: required key missing", NULL);
    expect_error("model:\n  path: [unclosed\n", NULL, 0, "config.yaml:", "YAML syntax error");
    expect_error("model:\n path: a\n  dtype: f32\n", NULL, 0, "config.yaml:3:", "YAML syntax");
    expect_error("model: &a\n  path: *a\n", NULL, 0, "model.path: expected a string", NULL);
}
END_TEST

START_TEST(test_set_overrides_by_dotted_path) {
    char *dir = test_tmpdir(), err[1024], cwd[4096];
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
    const char *sets[] = {"train.lr=1e-5",
                          "lora.r=16",
                          "lora.target_modules=[q_proj, v_proj]",
                          "data.valid=[v1.jsonl, /abs/v2.jsonl]",
                          "train.epochs=3",
                          "model.path=rel/model",
                          "lora.init_from=null"};
    Config c;
    ck_assert_msg(load_text(dir, MINIMAL, sets, 7, &c, err, sizeof err) == 0, "%s", err);
    ck_assert_double_eq(c.train.lr, 1e-5);
    ck_assert_int_eq(c.lora.r, 16);
    ck_assert_int_eq(c.lora.target_modules.n, 2);
    ck_assert_int_eq(c.data.valid.n, 2);
    ck_assert_str_eq(c.data.valid.items[1], "/abs/v2.jsonl");
    ck_assert_int_eq(c.train.epochs, 3);
    char want[4200];
    snprintf(want, sizeof want, "%s/rel/model", cwd); /* --set paths: against the cwd */
    ck_assert_str_eq(c.model.path, want);
    config_free(&c);
    /* Later --set wins over earlier ones and over the file. */
    const char *twice[] = {"lora.r=4", "lora.r=2"};
    ck_assert_int_eq(load_text(dir, MINIMAL, twice, 2, &c, err, sizeof err), 0);
    ck_assert_int_eq(c.lora.r, 2);
    config_free(&c);
    test_rmtree(dir);
    free(dir);

    const char *bad1[] = {"train.lerning_rate=1"};
    expect_error(MINIMAL, bad1, 1, "--set train.lerning_rate=1: unknown key", "`train.lr`?");
    const char *bad2[] = {"train.batch_size=four"};
    expect_error(MINIMAL, bad2, 1, "train.batch_size: expected an integer, got 'four'",
                 "--set train.batch_size=four");
    const char *bad3[] = {"lr=1"};
    expect_error(MINIMAL, bad3, 1, "expected KEY=VALUE with a dotted key", NULL);
    const char *bad4[] = {"train.lr"};
    expect_error(MINIMAL, bad4, 1, "expected KEY=VALUE", NULL);
    const char *bad5[] = {"lora.target_modules=[q_proj"};
    expect_error(MINIMAL, bad5, 1, "not valid YAML", NULL);
    const char *bad6[] = {"model.path="};
    expect_error(MINIMAL, bad6, 1, "model.path: expected a string, got null", NULL);
}
END_TEST

START_TEST(test_io_error_is_code_1) {
    char err[512] = "";
    Config c;
    ck_assert_int_eq(config_load("/nonexistent/dir/config.yaml", NULL, 0, &c, err, sizeof err),
                     CONFIG_UNREADABLE);
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/dir/config.yaml: cannot open"));
}
END_TEST

static void assert_configs_equal(const Config *a, const Config *b) {
    char va[16384], vb[16384];
    for (int i = 0; config_key_path(i); i++) {
        ck_assert_int_ge(config_format_value(a, i, va, sizeof va), 0);
        ck_assert_int_ge(config_format_value(b, i, vb, sizeof vb), 0);
        ck_assert_msg(strcmp(va, vb) == 0, "%s: %s vs %s", config_key_path(i), va, vb);
    }
    ck_assert_mem_eq(&a->train.lr, &b->train.lr, sizeof(double));
    ck_assert_mem_eq(&a->lora.dropout, &b->lora.dropout, sizeof(double));
}

START_TEST(test_relative_paths_are_normalized) {
    char *dir = test_tmpdir(), err[1024], want[4300];
    Config c;
    const char *text = "model:\n  path: ./models/../models//m/.\n"
                       "data:\n  train: [sub/../data/*.jsonl, ../x.jsonl]\n"
                       "output:\n  dir: configs/../runs/x/\n";
    ck_assert_msg(load_text(dir, text, NULL, 0, &c, err, sizeof err) == 0, "%s", err);
    char *real = realpath(dir, NULL);
    snprintf(want, sizeof want, "%s/models/m", real);
    ck_assert_str_eq(c.model.path, want);
    snprintf(want, sizeof want, "%s/data/*.jsonl", real);
    ck_assert_str_eq(c.data.train.items[0], want);
    char *up = strdup(real);
    *strrchr(up, '/') = '\0';
    snprintf(want, sizeof want, "%s/x.jsonl", up);
    ck_assert_str_eq(c.data.train.items[1], want);
    snprintf(want, sizeof want, "%s/runs/x", real);
    ck_assert_str_eq(c.output.dir, want);
    free(up);
    free(real);
    config_free(&c);
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_resolved_config_round_trips) {
    char *dir = test_tmpdir(), err[1024], path[4200];
    const char *sets[] = {"train.lr=0.00012345678901234567",
                          "lora.dropout=0.1",
                          "data.valid=[\"we\\\"ird\\tname.jsonl\", 'x y.csv']",
                          "data.labels_field=null",
                          "train.epochs=2",
                          "lora.init_from=peft/a",
                          "lora.target_modules=[down_proj, q_proj]"};
    Config a, b;
    ck_assert_msg(load_text(dir, MINIMAL, sets, 7, &a, err, sizeof err) == 0, "%s", err);
    snprintf(path, sizeof path, "%s/sub", dir);
    ck_assert_int_eq(mkdir(path, 0755), 0);
    snprintf(path, sizeof path, "%s/sub/config.resolved.yaml", dir);
    ck_assert_msg(config_write_resolved(&a, path, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(config_load(path, NULL, 0, &b, err, sizeof err) == 0, "%s", err);
    assert_configs_equal(&a, &b);
    ck_assert_str_eq(a.data.valid.items[0], b.data.valid.items[0]);
    ck_assert_ptr_null(b.data.labels_field);
    ck_assert_int_eq(b.train.epochs, 2);
    char *text = test_read_file(path, NULL);
    ck_assert_ptr_nonnull(strstr(text, "train:\n"));
    ck_assert_ptr_nonnull(strstr(text, "  max_steps: 1000\n"));
    free(text);
    config_free(&a);
    config_free(&b);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* data.chat_template_kwargs: a mapping of any template variables, typed as YAML types them,
 * kept as sorted compact JSON, round-tripped through config.resolved.yaml and --set. */
START_TEST(test_chat_template_kwargs_are_a_typed_mapping) {
    char *dir = test_tmpdir(), err[1024], path[4200];
    const char *text = "model:\n  path: models/m\noutput:\n  dir: runs/x\n"
                       "data:\n  train: t.jsonl\n  chat_template_kwargs:\n"
                       "    enable_thinking: false\n    mode: \"false\"\n"
                       "    tools: [{name: f, n: 3}]\n    temperature: 0.5\n    none: null\n";
    Config a, b;
    ck_assert_msg(load_text(dir, text, NULL, 0, &a, err, sizeof err) == 0, "%s", err);
    ck_assert_str_eq(a.data.chat_template_kwargs, "{\"enable_thinking\":false,\"mode\":\"false\","
                                                  "\"none\":null,\"temperature\":0.5,\"tools\":[{"
                                                  "\"n\":3,\"name\":\"f\"}]}");
    snprintf(path, sizeof path, "%s/config.resolved.yaml", dir);
    ck_assert_msg(config_write_resolved(&a, path, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(config_load(path, NULL, 0, &b, err, sizeof err) == 0, "%s", err);
    ck_assert_str_eq(a.data.chat_template_kwargs, b.data.chat_template_kwargs);
    config_free(&b);
    /* --set takes a flow mapping, and null clears it */
    const char *set[] = {"data.chat_template_kwargs={enable_thinking: true}"};
    ck_assert_msg(load_text(dir, MINIMAL, set, 1, &b, err, sizeof err) == 0, "%s", err);
    ck_assert_str_eq(b.data.chat_template_kwargs, "{\"enable_thinking\":true}");
    config_free(&b);
    const char *unset[] = {"data.chat_template_kwargs=null"};
    ck_assert_msg(load_text(dir, text, unset, 1, &b, err, sizeof err) == 0, "%s", err);
    ck_assert_ptr_null(b.data.chat_template_kwargs);
    /* it changes what is trained on, so it is part of the result */
    char *ka = config_result_keys(&a), *kb = config_result_keys(&b);
    ck_assert_ptr_nonnull(strstr(ka, "data.chat_template_kwargs={"));
    ck_assert_str_ne(ka, kb);
    free(ka), free(kb);
    config_free(&a);
    config_free(&b);
    test_rmtree(dir);
    free(dir);
    const char *scalar[] = {"data.chat_template_kwargs=enable_thinking"};
    expect_error(MINIMAL, scalar, 1, "data.chat_template_kwargs: expected a mapping", "--set");
}
END_TEST

/* A checkpoint of an older lorafit lacks the keys added since: they count as what that
 * lorafit did (their defaults; train.precision f32), so it still resumes, and a config
 * that asks for something else is still refused by name. */
static char *without_line(const char *keys, const char *kp) {
    char *out = strdup(keys), *at = strstr(out, kp);
    ck_assert_ptr_nonnull(at);
    char *nl = strchr(at, '\n');
    memmove(at, nl + 1, strlen(nl + 1) + 1);
    return out;
}

START_TEST(test_checkpoints_from_before_a_key_existed_resume) {
    char *dir = test_tmpdir(), err[1024], diff[512];
    const char *f32[] = {"train.precision=f32"};
    Config c;
    ck_assert_int_eq(load_text(dir, MINIMAL, f32, 1, &c, err, sizeof err), 0);
    char *now = config_result_keys(&c);
    char *old = without_line(now, "train.precision=");
    char *older = without_line(old, "data.chat_template_kwargs=");
    ck_assert_int_eq(config_diff_result_keys(older, now, diff, sizeof diff), 0);
    config_free(&c);
    free(now);
    const char *other[] = {"train.precision=bf16", "data.chat_template_kwargs={a: 1}"};
    ck_assert_int_eq(load_text(dir, MINIMAL, other, 2, &c, err, sizeof err), 0);
    now = config_result_keys(&c);
    ck_assert_int_eq(config_diff_result_keys(older, now, diff, sizeof diff), 2);
    ck_assert_msg(strstr(diff, "train.precision") && strstr(diff, "data.chat_template_kwargs"),
                  "%s", diff);
    /* a key the checkpoint has and the config lost still counts */
    ck_assert_int_eq(config_diff_result_keys(now, older, diff, sizeof diff), 2);
    free(now), free(old), free(older);
    config_free(&c);
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_result_keys_and_diff) {
    char *dir = test_tmpdir(), err[1024], out[1024];
    Config a, b;
    ck_assert_int_eq(load_text(dir, MINIMAL, NULL, 0, &a, err, sizeof err), 0);
    /* none of these changes the trained weights: a run stopped at a step that is not finite
     * may resume with train.on_nonfinite: skip */
    const char *sets[] = {"train.max_steps=5000",
                          "train.threads=1",
                          "eval.every=5",
                          "log.every=1",
                          "output.keep=9",
                          "data.valid=v.jsonl",
                          "train.on_nonfinite=skip",
                          "train.max_nonfinite_skips=3"};
    ck_assert_int_eq(load_text(dir, MINIMAL, sets, 8, &b, err, sizeof err), 0);
    ck_assert_int_eq(b.train.on_nonfinite, ON_NONFINITE_SKIP);
    ck_assert_int_eq(b.train.max_nonfinite_skips, 3);
    char *ka = config_result_keys(&a), *kb = config_result_keys(&b);
    ck_assert_ptr_nonnull(strstr(ka, "lora.r=8\n"));
    ck_assert_ptr_nonnull(strstr(ka, "train.seed=42\n"));
    ck_assert_ptr_null(strstr(ka, "train.max_steps"));
    ck_assert_ptr_null(strstr(ka, "output."));
    ck_assert_ptr_null(strstr(ka, "data.valid"));
    ck_assert(strstr(ka, "data.seq_len=") < strstr(ka, "lora.r=")); /* sorted */
    ck_assert_int_eq(config_diff_result_keys(ka, kb, out, sizeof out), 0);
    ck_assert_str_eq(out, "");
    config_free(&b);
    free(kb);
    const char *changed[] = {"train.seed=1", "lora.r=4", "train.batch_size=2"};
    ck_assert_int_eq(load_text(dir, MINIMAL, changed, 3, &b, err, sizeof err), 0);
    kb = config_result_keys(&b);
    ck_assert_int_eq(config_diff_result_keys(ka, kb, out, sizeof out), 3);
    ck_assert_str_eq(out, "lora.r, train.batch_size, train.seed");
    /* A key only one side has (an older fingerprint) counts too. */
    ck_assert_int_eq(
        config_diff_result_keys("lora.r=8\n", "lora.r=8\nnew.key=1\n", out, sizeof out), 1);
    ck_assert_str_eq(out, "new.key");
    free(ka);
    free(kb);
    config_free(&a);
    config_free(&b);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* Deterministic mutations of a valid config (byte flips, cuts, inserted YAML punctuation):
 * every one loads or fails with code 2, never crashes (run under ASan in CI). */
START_TEST(test_mutated_configs_never_crash) {
    static const char base[] = "model:\n  path: m\n  dtype: f32\nlora:\n  r: 8\n"
                               "  target_modules: [q_proj, v_proj]\ndata:\n  train: [a, b]\n"
                               "  valid: null\ntrain:\n  lr: 2.0e-4\n  epochs: null\n"
                               "output:\n  dir: o\n";
    static const char junk[] = ":-[]{}&*!|>'\"%@`#,?\n\t 0";
    char *dir = test_tmpdir(), err[1024], text[sizeof base + 8];
    uint64_t seed = 99;
    int loaded = 0;
    for (int iter = 0; iter < 400; iter++) {
        memcpy(text, base, sizeof base);
        size_t len = sizeof base - 1;
        for (int k = 0; k < 3 && len > 0; k++) {
            size_t at = (size_t)(test_rand_u64(&seed) % len);
            switch (test_rand_u64(&seed) % 3) {
            case 0:
                text[at] = junk[test_rand_u64(&seed) % (sizeof junk - 1)];
                break;
            case 1:
                len = at;
                break;
            default:
                text[at] = (char)(test_rand_u64(&seed) % 255 + 1);
                break;
            }
        }
        text[len] = '\0';
        Config c;
        int rc = load_text(dir, text, NULL, 0, &c, err, sizeof err);
        ck_assert_msg(rc == CONFIG_OK || rc == CONFIG_INVALID, "rc %d for:\n%s", rc, text);
        if (rc == 0)
            loaded++, config_free(&c);
        else
            ck_assert_msg(err[0] != '\0', "empty error for:\n%s", text);
    }
    ck_assert_int_lt(loaded, 400);
    test_rmtree(dir);
    free(dir);
}
END_TEST

Suite *config_suite(void) {
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_defaults_match_spec_and_paths_resolve_against_config_dir);
    tcase_add_test(tc, test_full_spec_example_loads);
    tcase_add_test(tc, test_all_linear_means_every_module_kind);
    tcase_add_test(tc, test_unknown_keys_suggest_the_right_one);
    tcase_add_test(tc, test_wrong_types_name_key_and_position);
    tcase_add_test(tc, test_out_of_range_values_are_rejected);
    tcase_add_test(tc, test_duplicate_missing_and_syntax_errors);
    tcase_add_test(tc, test_set_overrides_by_dotted_path);
    tcase_add_test(tc, test_io_error_is_code_1);
    tcase_add_test(tc, test_resolved_config_round_trips);
    tcase_add_test(tc, test_relative_paths_are_normalized);
    tcase_add_test(tc, test_result_keys_and_diff);
    tcase_add_test(tc, test_chat_template_kwargs_are_a_typed_mapping);
    tcase_add_test(tc, test_checkpoints_from_before_a_key_existed_resume);
    tcase_add_test(tc, test_mutated_configs_never_crash);
    suite_add_tcase(s, tc);
    return s;
}
