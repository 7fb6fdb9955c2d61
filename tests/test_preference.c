/* tests/test_preference.c — train.objective dpo and orpo against the float64 reference of
 * TRL's semantics (tests/data/preference, made by tests/reference/make_preference_fixture.py
 * on stories260K): losses, metrics, LoRA gradients and the adapter after 3 AdamW steps for
 * DPO sigmoid / ipo / hinge with both references and ORPO; the log 2 of a policy equal to its
 * reference; TRL's tokenization of the three text forms through `lorafit prepare`; bad
 * records; exact resume after SIGKILL. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/test_train_util.h"
#include "tests/test_util.h"
#include "trainer/train/internal.h"

#define FIXTURE "tests/data/preference"

typedef struct Variant {
    const char *name, *objective, *loss_type, *reference;
} Variant;

static const Variant VARIANTS[] = {
    {"dpo-sigmoid-initial", "dpo", "sigmoid", "initial"},
    {"dpo-sigmoid-base", "dpo", "sigmoid", "base"},
    {"dpo-ipo-initial", "dpo", "ipo", "initial"},
    {"dpo-ipo-base", "dpo", "ipo", "base"},
    {"dpo-hinge-initial", "dpo", "hinge", "initial"},
    {"dpo-hinge-base", "dpo", "hinge", "base"},
    {"orpo", "orpo", "sigmoid", "initial"},
    /* not a fixture variant: dpo-sigmoid-base with the reference log-probabilities
     * precomputed (fixture_config writes the key after the reference) */
    {"dpo-sigmoid-base", "dpo", "sigmoid", "base\n  precompute_ref_log_probs: true"},
};

/* DIR/config.yaml: the fixture's job (stories260K, LoRA r 4 from init_adapter, batch 4 x
 * grad_accum 2, seq_len 40, 3 steps, constant lr, f32) with the variant's objective. */
static char *fixture_config(const char *dir, const char *shared, const Variant *v, bool init_from,
                            int steps, const char *extra) {
    char root[4096], cfg[20000], init[4400] = "";
    ck_assert(realpath(".", root) != NULL);
    if (init_from) snprintf(init, sizeof init, "  init_from: %s/" FIXTURE "/init_adapter\n", root);
    snprintf(cfg, sizeof cfg,
             "model:\n  path: %s/models/stories260K\n"
             "lora:\n  r: 4\n  alpha: 8\n%s"
             "data:\n  train: %s/" FIXTURE "/train.jsonl\n  seq_len: 40\n  shuffle: false\n"
             "train:\n  objective: %s\n  batch_size: 4\n  grad_accum: 2\n  max_steps: %d\n"
             "  lr: 0.01\n  lr_scheduler: constant\n  weight_decay: 0.01\n  max_grad_norm: 1.0\n"
             "  precision: f32\n  threads: 2\n"
             "dpo:\n  loss_type: %s\n  reference: %s\n"
             "output:\n  dir: %s/out\n  save_every: 0\n"
             "log:\n  every: 1\n%s",
             shared, init, root, v->objective, steps, v->loss_type, v->reference, dir,
             extra ? extra : "");
    return tt_write_text(dir, "config.yaml", cfg);
}

static json_t *expected_json(void) {
    json_error_t je;
    json_t *e = json_load_file(FIXTURE "/expected.json", 0, &je);
    ck_assert_msg(e != NULL, "expected.json: %s", je.text);
    return e;
}

/* |got - want| within rel of |want| (an exact 0 must be an exact 0 up to 1e-12). */
static void check_close(const char *what, double got, double want, double rel) {
    double tol = want == 0 ? 1e-12 : rel * fabs(want);
    ck_assert_msg(fabs(got - want) <= tol, "%s: %.12g, reference %.12g (rel %.3g)", what, got, want,
                  want ? fabs(got / want - 1) : fabs(got));
}

/* Step 1's LoRA gradients of the variant, computed in process through the training code
 * (two micro-batches of the fixture, each with weight 1/2), against grad.* of the reference. */
static void check_gradients(const char *cfg_path, const Variant *v) {
    Config cfg;
    char err[2048];
    ck_assert_msg(config_load(cfg_path, NULL, 0, &cfg, err, sizeof err) == CONFIG_OK, "%s", err);
    Model *m = train_load_model(&cfg, err, sizeof err);
    ck_assert_msg(m != NULL, "%s", err);
    LoraSpec spec;
    ck_assert_int_eq(train_lora_spec(&cfg, &spec, err, sizeof err), 0);
    spec.targets = lora_default_targets(model_config(m));
    Lora *lora = lora_create(m, &spec, err, sizeof err);
    ck_assert_msg(lora && lora_load_peft(lora, cfg.lora.init_from, err, sizeof err) == 0, "%s",
                  err);
    TrainText text;
    ck_assert_msg(train_text_load(&cfg, &text, err, sizeof err) == 0, "%s", err);
    DataOptions o;
    train_data_options(&cfg, TRAIN_DATA_TRAIN, model_config(m)->vocab_size, &o);
    train_text_attach(&text, &o);
    DataReader *r = data_open(&o, err, sizeof err);
    ck_assert_msg(r != NULL, "%s", err);
    Graph *g = graph_create();
    PrefRun pr;
    ck_assert_msg(pref_run_init(&pr, &cfg, m, lora, g, NULL, err, sizeof err) == 0, "%s", err);
    lora_zero_grad(lora);
    for (int i = 0; i < 2; i++) {
        Batch b;
        ck_assert_int_eq(data_next_batch(r, &b, err, sizeof err), 1);
        double loss, metrics[PREF_N];
        ck_assert_msg(pref_micro_batch(&pr, &b, NULL, lora, true, 1, 0.5, &loss, metrics, err,
                                       sizeof err) == 0,
                      "%s", err);
    }
    char path[256];
    snprintf(path, sizeof path, FIXTURE "/expected-%s.safetensors", v->name);
    SafeTensors *ex = st_open(path, err, sizeof err);
    ck_assert_msg(ex != NULL, "%s", err);
    for (int k = 0; k < lora_count(lora); k++) {
        const char *name;
        Tensor *p = lora_tensor(lora, k, &name);
        char key[256];
        snprintf(key, sizeof key, "grad.%s", name);
        float *want = tt_expected_floats(ex, key, p->size);
        double d2 = 0, r2 = 0;
        for (int64_t e = 0; e < p->size; e++) {
            d2 += ((double)p->grad[e] - want[e]) * ((double)p->grad[e] - want[e]);
            r2 += (double)want[e] * want[e];
        }
        free(want);
        ck_assert_msg(r2 > 0, "%s %s: the reference gradient is 0", v->name, key);
        ck_assert_msg(sqrt(d2) <= 1e-4 * sqrt(r2), "%s %s: relative error %.3g", v->name, key,
                      sqrt(d2 / r2));
    }
    st_close(ex);
    pref_run_free(&pr);
    graph_destroy(g);
    data_close(r);
    train_text_free(&text);
    lora_free(lora);
    model_free(m);
    config_free(&cfg);
}

/* The run's metrics lines against the reference: step 1's loss within 1e-6 and its metrics
 * within 1e-5 (relative), the later steps' within 1e-3; the adapter after 3 steps. */
static void check_variant(const char *shared, const Variant *v, json_t *expected) {
    char *dir = test_tmpdir();
    char *cfg = fixture_config(dir, shared, v, true, 3, NULL);
    char args[4400];
    snprintf(args, sizeof args, "train '%s'", cfg);
    int rc = tt_lorafit(dir, args);
    char *log = tt_log(dir);
    ck_assert_msg(rc == 0, "%s: lorafit train failed (%d):\n%s", v->name, rc, log);
    free(log);
    char out[4400];
    snprintf(out, sizeof out, "%s/out", dir);
    json_t *metrics = tt_metrics(out);
    json_t *want = json_object_get(json_object_get(expected, "variants"), v->name);
    ck_assert_msg(want != NULL, "expected.json has no %s", v->name);
    ck_assert_int_eq((int)json_array_size(metrics), 3);
    for (size_t s = 0; s < 3; s++) {
        json_t *line = json_array_get(metrics, s);
        /* later steps follow an AdamW update of f32 gradients: the metrics are differences
         * of log-probabilities of a slightly different adapter */
        double rel = s == 0 ? 1e-5 : 1e-3;
        char what[128];
        snprintf(what, sizeof what, "%s step %zu loss", v->name, s + 1);
        check_close(what, json_number_value(json_object_get(line, "loss")),
                    json_number_value(json_array_get(json_object_get(want, "losses"), s)),
                    s == 0 ? 1e-6 : 1e-3);
        const char *key;
        json_t *value;
        json_object_foreach(json_array_get(json_object_get(want, "metrics"), s), key, value) {
            json_t *got = json_object_get(line, key);
            ck_assert_msg(json_is_number(got), "%s step %zu: no %s in metrics.jsonl", v->name,
                          s + 1, key);
            snprintf(what, sizeof what, "%s step %zu %s", v->name, s + 1, key);
            check_close(what, json_number_value(got), json_number_value(value), rel);
        }
    }
    char adapter[4500], exp_path[256];
    snprintf(adapter, sizeof adapter, "%s/adapter/adapter_model.safetensors", out);
    snprintf(exp_path, sizeof exp_path, FIXTURE "/expected-%s.safetensors", v->name);
    double diff = tt_adapter_rel_diff(adapter, exp_path, "final.");
    ck_assert_msg(diff < 2e-3, "%s: the adapter after 3 steps differs by %.3g", v->name, diff);
    check_gradients(cfg, v);
    json_decref(metrics);
    free(cfg);
    test_rmtree(dir);
    free(dir);
}

START_TEST(test_dpo_sigmoid_matches_trl_reference) {
    TEST_NEED_SHARED(shared);
    json_t *e = expected_json();
    check_variant(shared, &VARIANTS[0], e);
    check_variant(shared, &VARIANTS[1], e);
    json_decref(e);
}
END_TEST

START_TEST(test_dpo_ipo_matches_trl_reference) {
    TEST_NEED_SHARED(shared);
    json_t *e = expected_json();
    check_variant(shared, &VARIANTS[2], e);
    check_variant(shared, &VARIANTS[3], e);
    json_decref(e);
}
END_TEST

START_TEST(test_dpo_hinge_matches_trl_reference) {
    TEST_NEED_SHARED(shared);
    json_t *e = expected_json();
    check_variant(shared, &VARIANTS[4], e);
    check_variant(shared, &VARIANTS[5], e);
    json_decref(e);
}
END_TEST

START_TEST(test_orpo_matches_trl_reference) {
    TEST_NEED_SHARED(shared);
    json_t *e = expected_json();
    check_variant(shared, &VARIANTS[6], e);
    json_decref(e);
}
END_TEST

/* A fresh LoRA (B = 0): the policy is its reference, so the first sigmoid loss is log 2
 * and every reward 0; the model card names the objective. */
START_TEST(test_dpo_with_b_zero_starts_at_log_2) {
    TEST_NEED_SHARED(shared);
    char *dir = test_tmpdir();
    char *cfg = fixture_config(dir, shared, &VARIANTS[0], false, 1, NULL);
    char args[4400];
    snprintf(args, sizeof args, "train '%s'", cfg);
    int rc = tt_lorafit(dir, args);
    char *log = tt_log(dir);
    ck_assert_msg(rc == 0, "lorafit train failed (%d):\n%s", rc, log);
    free(log);
    char out[4400];
    snprintf(out, sizeof out, "%s/out", dir);
    json_t *metrics = tt_metrics(out);
    json_t *line = json_array_get(metrics, 0);
#define GET(k) json_number_value(json_object_get(line, k))
    ck_assert_msg(fabs(GET("loss") - M_LN2) < 1e-12, "loss %.17g", GET("loss"));
    ck_assert(GET("rewards/chosen") == 0 && GET("rewards/rejected") == 0);
    ck_assert(GET("rewards/margins") == 0 && GET("rewards/accuracies") == 0);
    ck_assert(GET("logps/chosen") < -10 && GET("logps/rejected") < -10);
#undef GET
    /* the model card says what was trained */
    char card_path[4500];
    snprintf(card_path, sizeof card_path, "%s/adapter/README.md", out);
    char *card = test_read_file(card_path, NULL);
    ck_assert(card != NULL);
    ck_assert_msg(strstr(card, "| objective | DPO (sigmoid loss, beta 0.1, reference: the base "
                               "model) |"),
                  "%s", card);
    free(card);
    json_decref(metrics);
    free(cfg);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* `lorafit prepare` of a preference set (one file of data.train) into FILE; its summary. */
static char *prepare(const char *dir, const char *shared, const char *data, int seq_len,
                     const char *extra, const char *out) {
    char root[4096], cfg[20000], args[9000];
    ck_assert(realpath(".", root) != NULL);
    snprintf(cfg, sizeof cfg,
             "model:\n  path: %s/models/stories260K\n"
             "data:\n  train: %s/" FIXTURE "/%s\n  seq_len: %d\n%s"
             "train:\n  objective: dpo\n"
             "output:\n  dir: %s/out\n",
             shared, root, data, seq_len, extra ? extra : "", dir);
    char *path = tt_write_text(dir, "prepare.yaml", cfg);
    snprintf(args, sizeof args, "prepare '%s' --out '%s/%s'", path, dir, out);
    free(path);
    return tt_run_stdout(dir, args);
}

/* The file's triples from `lorafit prepare` against expected_ids.json's (TRL's rules over
 * the reference's own tokenizer); pairs the reference drops are absent. Also the cut rows:
 * prompt + completion kept up to seq_len, masks 0 on the prompt and 1 on the completion. */
static void check_prepared(const char *dir, const char *out, const char *file, int seq_len,
                           bool honour_drops) {
    json_error_t je;
    json_t *e = json_load_file(FIXTURE "/expected_ids.json", 0, &je);
    ck_assert_msg(e != NULL, "%s", je.text);
    json_t *want = json_object_get(json_object_get(e, "files"), file);
    ck_assert(json_array_size(want) > 0);
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", dir, out);
    char *text = test_read_file(path, NULL);
    ck_assert(text != NULL);
    char *line = text;
    size_t i;
    json_t *w;
    int seen = 0;
    json_array_foreach(want, i, w) {
        if (honour_drops && json_is_true(json_object_get(w, "dropped"))) continue;
        ck_assert_msg(line && *line, "%s: prepare wrote only %d pairs", file, seen);
        char *nl = strchr(line, '\n');
        json_t *got = json_loadb(line, (size_t)(nl - line), 0, &je);
        ck_assert_msg(got != NULL, "%s", je.text);
        static const char *const parts[] = {"prompt", "chosen", "rejected"};
        for (int k = 0; k < 3; k++) {
            char key[32];
            snprintf(key, sizeof key, "%s_ids", parts[k]);
            ck_assert_msg(json_equal(json_object_get(got, key), json_object_get(w, parts[k])),
                          "%s pair %zu: %s differs from TRL's", file, i, key);
        }
        size_t np = json_array_size(json_object_get(w, "prompt"));
        for (int k = 1; k < 3; k++) {
            char key[48];
            snprintf(key, sizeof key, "%s_input_ids", parts[k]);
            json_t *row = json_object_get(got, key);
            snprintf(key, sizeof key, "%s_completion_mask", parts[k]);
            json_t *mask = json_object_get(got, key);
            json_t *comp = json_object_get(w, parts[k]);
            size_t n = np + json_array_size(comp), len = n < (size_t)seq_len ? n : (size_t)seq_len;
            ck_assert_int_eq(json_array_size(row), len);
            ck_assert_int_eq(json_array_size(mask), len);
            for (size_t t = 0; t < len; t++) {
                json_t *id = t < np ? json_array_get(json_object_get(w, "prompt"), t)
                                    : json_array_get(comp, t - np);
                ck_assert(json_integer_value(json_array_get(row, t)) == json_integer_value(id));
                ck_assert(json_integer_value(json_array_get(mask, t)) == (t >= np));
            }
        }
        json_decref(got);
        line = nl + 1;
        seen++;
    }
    ck_assert_msg(*line == '\0', "%s: prepare wrote more pairs than TRL keeps", file);
    free(text);
    json_decref(e);
}

START_TEST(test_prepare_tokenizes_the_three_forms_as_trl) {
    TEST_NEED_SHARED(shared);
    char *dir = test_tmpdir();
    /* standard text: EOS appended (one chosen ends with it already), cut at 40, the pair
     * whose prompt fills 40 tokens dropped and counted */
    char *summary = prepare(dir, shared, "train.jsonl", 40, NULL, "text.jsonl");
    ck_assert_msg(strstr(summary, "\"pairs\": 24") && strstr(summary, "\"dropped\": 2"), "%s",
                  summary);
    free(summary);
    check_prepared(dir, "text.jsonl", "train.jsonl", 40, true);
    /* implicit prompt: extract_prompt's shared start, its corners included */
    free(prepare(dir, shared, "implicit.jsonl", 512, NULL, "implicit.jsonl"));
    check_prepared(dir, "implicit.jsonl", "implicit.jsonl", 512, false);
    /* conversational, explicit and implicit prompt, through the fixture's chat template */
    json_error_t je;
    json_t *e = json_load_file(FIXTURE "/expected_ids.json", 0, &je);
    ck_assert(e != NULL);
    char extra[1024];
    char *tpl = json_dumps(json_object_get(e, "chat_template"), JSON_ENCODE_ANY);
    snprintf(extra, sizeof extra, "  chat_template: %s\n", tpl);
    free(tpl);
    json_decref(e);
    free(prepare(dir, shared, "chat.jsonl", 512, extra, "chat.jsonl"));
    check_prepared(dir, "chat.jsonl", "chat.jsonl", 512, false);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* A bad preference record stops the run (and lorafit eval) with file:line and why;
 * on_error: skip counts them. */
START_TEST(test_bad_preference_records_are_named) {
    TEST_NEED_SHARED(shared);
    char *dir = test_tmpdir();
    char *data =
        tt_write_text(dir, "bad.jsonl",
                      "{\"prompt\": \"A cat.\", \"chosen\": \" It sat.\", \"rejected\": \" "
                      "Sat it.\"}\n"
                      "{\"prompt\": \"A dog.\", \"chosen\": \" It ran.\"}\n"
                      "{\"prompt\": \"A dog.\", \"chosen\": \" It ran.\", \"rejected\": 7}\n"
                      "{\"prompt_ids\": [1, 2], \"chosen_ids\": [3, 999], "
                      "\"rejected_ids\": [4]}\n");
    char cfg[20000];
    snprintf(cfg, sizeof cfg,
             "model:\n  path: %s/models/stories260K\n"
             "data:\n  train: %s\n  seq_len: 32\n  shuffle: false\n"
             "train:\n  objective: dpo\n  batch_size: 1\n  epochs: 1\n"
             "output:\n  dir: %s/out\n",
             shared, data, dir);
    char *path = tt_write_text(dir, "c.yaml", cfg);
    char args[4400], needle[4400];
    snprintf(args, sizeof args, "train '%s'", path);
    snprintf(needle, sizeof needle, "%s:2: missing field 'rejected'", data);
    tt_expect(dir, args, 1, needle);
    snprintf(args, sizeof args, "prepare '%s' --set data.on_error=skip --out '%s/p.jsonl'", path,
             dir);
    char *summary = tt_run_stdout(dir, args);
    ck_assert_msg(strstr(summary, "\"pairs\": 1,") && strstr(summary, "\"skipped\": 3"), "%s",
                  summary);
    free(summary);
    snprintf(args, sizeof args, "eval '%s'", path);
    tt_expect(dir, args, 1, needle);
    free(path);
    free(data);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* A DPO run killed with SIGKILL after steps 1..3 and resumed ends byte-identical to an
 * uninterrupted one (shuffled pairs, checkpoints every 2 steps, metrics every 3 steps so a
 * checkpoint holds pending preference metrics), with the reference pass in each step or
 * precomputed. */
static void check_resume(const char *shared, bool precompute) {
    const Variant *v = &VARIANTS[precompute ? 7 : 1];
    char *ref = test_tmpdir(), *cut = test_tmpdir();
    char *ref_cfg = fixture_config(ref, shared, v, true, 4, NULL);
    char *cut_cfg = fixture_config(cut, shared, v, true, 4, NULL);
    char args[9000];
    snprintf(args, sizeof args,
             "train '%s' --set data.shuffle=true --set output.save_every=2 --set log.every=3",
             ref_cfg);
    int rc = tt_lorafit(ref, args);
    char *log = tt_log(ref);
    ck_assert_msg(rc == 0, "uninterrupted run failed (%d):\n%s", rc, log);
    free(log);
    for (int kill_at = 1; kill_at <= 3; kill_at++) {
        char out[4400], log_path[4400], fault[32];
        snprintf(out, sizeof out, "%s/out", cut);
        snprintf(log_path, sizeof log_path, "%s/log.txt", cut);
        test_rmtree(out);
        snprintf(fault, sizeof fault, "kill:step:%d", kill_at);
        const char *argv[] = {"train",
                              cut_cfg,
                              "--resume",
                              "--set",
                              "data.shuffle=true",
                              "--set",
                              "output.save_every=2",
                              "--set",
                              "log.every=3",
                              NULL};
        int code = tt_wait(tt_spawn_fault(argv, log_path, fault));
        ck_assert_msg(code == 128 + SIGKILL, "%s: exit %d", fault, code);
        code = tt_wait(tt_spawn(argv, log_path));
        log = test_read_file(log_path, NULL);
        ck_assert_msg(code == 0, "resume after %s failed (%d):\n%s", fault, code, log);
        free(log);
        tt_assert_same_run(ref, cut, fault);
    }
    free(ref_cfg);
    free(cut_cfg);
    test_rmtree(ref);
    test_rmtree(cut);
    free(ref);
    free(cut);
}

START_TEST(test_dpo_killed_and_resumed_is_byte_identical) {
    TEST_NEED_SHARED(shared);
    check_resume(shared, false);
}
END_TEST

START_TEST(test_dpo_precomputed_killed_and_resumed_is_byte_identical) {
    TEST_NEED_SHARED(shared);
    check_resume(shared, true);
}
END_TEST

/* dpo.precompute_ref_log_probs gives the run of the reference pass in each step (the same
 * batches of the same pairs: the same bits), and the log says it precomputed. */
START_TEST(test_precomputed_reference_gives_the_same_run) {
    TEST_NEED_SHARED(shared);
    char *a = test_tmpdir(), *b = test_tmpdir();
    char *ca = fixture_config(a, shared, &VARIANTS[1], true, 3, NULL);
    char *cb = fixture_config(b, shared, &VARIANTS[7], true, 3, NULL);
    char args[4400];
    snprintf(args, sizeof args, "train '%s'", ca);
    ck_assert_int_eq(tt_lorafit(a, args), 0);
    snprintf(args, sizeof args, "train '%s'", cb);
    ck_assert_int_eq(tt_lorafit(b, args), 0);
    char *log = tt_log(b);
    ck_assert_msg(strstr(log, "reference log-probabilities of 24 training pairs precomputed"), "%s",
                  log);
    free(log);
    tt_assert_same_run(a, b, "precomputed reference");
    free(ca);
    free(cb);
    test_rmtree(a);
    test_rmtree(b);
    free(a);
    free(b);
}
END_TEST

/* train.gradient_checkpointing and train.precision bf16 with BF16 weights change nothing
 * (checkpointing) or run (bf16) for the preference objectives: DPO with the frozen initial
 * adapter as reference, and ORPO (its NLL over the prompt tokens too). */
START_TEST(test_gradient_checkpointing_gives_the_same_preference_run) {
    TEST_NEED_SHARED(shared);
    const Variant *vs[2] = {&VARIANTS[0], &VARIANTS[6]};
    for (int k = 0; k < 2; k++) {
        char *a = test_tmpdir(), *b = test_tmpdir();
        char *ca = fixture_config(a, shared, vs[k], true, 3, NULL);
        char *cb = fixture_config(b, shared, vs[k], true, 3, NULL);
        char args[4400];
        snprintf(args, sizeof args, "train '%s'", ca);
        ck_assert_int_eq(tt_lorafit(a, args), 0);
        snprintf(args, sizeof args, "train '%s' --set train.gradient_checkpointing=true", cb);
        ck_assert_int_eq(tt_lorafit(b, args), 0);
        tt_assert_same_run(a, b, vs[k]->name);
        snprintf(args, sizeof args,
                 "train '%s' --set train.precision=bf16 --set model.dtype=bf16 --set "
                 "output.dir='%s/bf16'",
                 cb, b);
        ck_assert_msg(tt_lorafit(b, args) == 0, "%s bf16", vs[k]->name);
        free(ca);
        free(cb);
        test_rmtree(a);
        test_rmtree(b);
        free(a);
        free(b);
    }
}
END_TEST

/* `lorafit eval --adapter` on a preference config reports what the training's final
 * evaluation logged for the same adapter: eval_loss and every metric with TRL's eval_ names
 * (to its 9 printed digits), and the pairs; DPO with the frozen initial adapter as the
 * reference, and ORPO (its nll_loss and log-odds too). */
START_TEST(test_eval_reports_the_training_evaluation) {
    TEST_NEED_SHARED(shared);
    const Variant *vs[2] = {&VARIANTS[0], &VARIANTS[6]};
    for (int k = 0; k < 2; k++) {
        char *dir = test_tmpdir(), args[8800];
        char *cfg = fixture_config(dir, shared, vs[k], true, 2, NULL);
        char *valid = tt_repo_path(FIXTURE "/implicit.jsonl");
        snprintf(args, sizeof args, "train '%s' --set data.valid='%s'", cfg, valid);
        ck_assert_int_eq(tt_lorafit(dir, args), 0);
        char out_dir[4200];
        snprintf(out_dir, sizeof out_dir, "%s/out", dir);
        json_t *m = tt_metrics(out_dir);
        json_t *logged = json_array_get(m, json_array_size(m) - 1);
        ck_assert_msg(json_object_get(logged, "eval_loss") != NULL, "no final evaluation");
        snprintf(args, sizeof args, "eval '%s' --set data.valid='%s' --adapter '%s/out/adapter'",
                 cfg, valid, dir);
        char *out = tt_run_stdout(dir, args);
        json_error_t je;
        json_t *got = json_loads(out, 0, &je);
        ck_assert_msg(got != NULL, "not JSON: %s", out);
        const char *key;
        json_t *want;
        int n = 0;
        json_object_foreach(logged, key, want) {
            if (!strcmp(key, "step")) continue;
            json_t *g = json_object_get(got, key);
            ck_assert_msg(g != NULL, "%s: %s missing in %s", vs[k]->name, key, out);
            if (json_is_integer(want)) {
                ck_assert_int_eq(json_integer_value(g), json_integer_value(want));
                continue;
            }
            check_close(key, json_number_value(g), json_number_value(want), 1e-8);
            n++;
        }
        ck_assert_int_eq(n, k == 0 ? 7 : 10);                /* eval_loss and the metrics */
        ck_assert_int_eq((int)json_object_size(got), n + 2); /* + eval_pairs, data */
        json_decref(got);
        json_decref(m);
        free(out);
        free(valid);
        free(cfg);
        test_rmtree(dir);
        free(dir);
    }
}
END_TEST

Suite *preference_suite(void) {
    Suite *s = suite_create("preference");
    TCase *tc = tcase_create("preference");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_dpo_sigmoid_matches_trl_reference);
    tcase_add_test(tc, test_dpo_ipo_matches_trl_reference);
    tcase_add_test(tc, test_dpo_hinge_matches_trl_reference);
    tcase_add_test(tc, test_orpo_matches_trl_reference);
    tcase_add_test(tc, test_dpo_with_b_zero_starts_at_log_2);
    tcase_add_test(tc, test_prepare_tokenizes_the_three_forms_as_trl);
    tcase_add_test(tc, test_bad_preference_records_are_named);
    tcase_add_test(tc, test_dpo_killed_and_resumed_is_byte_identical);
    tcase_add_test(tc, test_dpo_precomputed_killed_and_resumed_is_byte_identical);
    tcase_add_test(tc, test_precomputed_reference_gives_the_same_run);
    tcase_add_test(tc, test_gradient_checkpointing_gives_the_same_preference_run);
    tcase_add_test(tc, test_eval_reports_the_training_evaluation);
    suite_add_tcase(s, tc);
    return s;
}
