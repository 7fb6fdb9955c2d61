/* tests/test_wrapper.c — multimodal wrapper checkpoints (trainer/model/family.h's ModelWrapper)
 * on two fixtures (tests/data/train/README.md): gemma3-wrapper, a
 * Gemma3ForConditionalGeneration whose language model is gemma3-tied's (the same weights under
 * model.language_model.), beside a one-layer SigLIP vision tower and the projector in
 * bfloat16, its text_config naming only what differs from Gemma3TextConfig's defaults, and
 * final_logit_softcapping 30, which the wrapper never applies; and mistral3-wrapper, a
 * Mistral3ForConditionalGeneration whose language model is ministral3-yarn's (untied: its
 * lm_head.weight at the top), beside a one-layer Pixtral tower (whose attention q/k/v/o_proj
 * and feed_forward gate/up/down_proj a plain target_modules list would reach) and the
 * projector. Their numbers against the float64 reference run on the wrapper are in test_model.c
 * and test_train.c, the llama.cpp run of its GGUFs in test_gguf_llamacpp.c; here: the
 * decoder is the text model's to the bit without the vision tower in memory, the config's
 * refusals, eval, generate, merge (every non-language tensor byte-identical, the merged model
 * generating what generate --adapter does), the PEFT export as PEFT needs it (names, a regex
 * target_modules reaching the language model only), the GGUF files (the language model only),
 * the older tensor layout, and an adapter reaching the vision tower refused. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tests/test_gguf_reader.h"
#include "tests/test_train_util.h"
#include "tests/test_util.h"
#include "trainer/model/model.h"
#include "trainer/store/store.h"

#define LM "model.language_model."

/* A wrapper fixture: its directory, the text fixture whose decoder it holds, and what it has. */
typedef struct {
    const char *dir, *text_dir; /* repo-relative */
    const char *architecture, *model_type;
    int seq, layers;      /* the fixture's sequence length; decoder layers */
    int vision_tensors;   /* tensors outside the language model */
    int gguf_tensors;     /* in the merged GGUF */
    const char *vision_q; /* a vision tower linear of 16 x 16 that a list of names reaches */
    void (*check_config)(const ModelConfig *c);
} WrapperFixture;

/* text_config's and Gemma3TextConfig's defaults; the soft-cap dropped (the wrapper's forward
 * never applies it) */
static void check_gemma3_config(const ModelConfig *c) {
    ck_assert_int_eq(c->num_attention_heads, 4);
    ck_assert_int_eq(c->max_position_embeddings, 131072);
    ck_assert(c->tie_word_embeddings);
    ck_assert(c->final_softcap == 0.0f);
    ck_assert(c->rope_theta == 1e6 && c->rope_local_theta == 1e4);
    ck_assert_int_eq(hf_layer_window(c, 0), 5);
    ck_assert_int_eq(hf_layer_window(c, 2), 0);
}

/* text_config's and Ministral3Config's defaults (untied, no window) */
static void check_mistral3_config(const ModelConfig *c) {
    ck_assert_int_eq(c->num_attention_heads, 4);
    ck_assert_int_eq(c->head_dim, 12);
    ck_assert_int_eq(c->max_position_embeddings, 128);
    ck_assert(!c->tie_word_embeddings);
    ck_assert(fabs(c->rms_norm_eps - 1e-5) < 1e-12);
    ck_assert_int_eq(hf_layer_window(c, 0), 0);
    ck_assert(c->rope_scaling.yarn && c->rope_scaling.factor == 8 &&
              c->rope_scaling.original_max_position_embeddings == 16);
    ck_assert(fabs(c->llama4_scaling_beta - 0.2) < 1e-12);
}

static const WrapperFixture fixtures[] = {
    {"tests/data/train/gemma3-wrapper", "tests/data/train/gemma3-tied",
     "Gemma3ForConditionalGeneration", "gemma3", 16, 3, 23, 2 + 3 * 13, /* 6 norms + 7 */
     "base_model.model.model.vision_tower.vision_model.encoder.layers.0.self_attn.q_proj.lora_",
     check_gemma3_config},
    {"tests/data/train/mistral3-wrapper", "tests/data/train/ministral3-yarn",
     "Mistral3ForConditionalGeneration", "mistral3", 24, 2, 15, 3 + 2 * 9, /* 2 norms + 7 */
     "base_model.model.model.vision_tower.transformer.layers.0.attention.q_proj.lora_",
     check_mistral3_config},
};
#define N_FIXTURES ((int)(sizeof fixtures / sizeof fixtures[0]))

/* fx's file `name` ("model", "init_adapter/...") as a repo-relative path. */
static const char *fx_path(const WrapperFixture *fx, const char *name) {
    static char buf[4][600];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", fx->dir, name);
    return p;
}

/* ---- the decoder, and nothing else ------------------------------------------------- */

START_TEST(test_wrapper_computes_its_text_model_without_the_vision_tower) {
    const WrapperFixture *fx = &fixtures[_i];
    char err[1024], text[600];
    Model *w = model_load(fx_path(fx, "model"), err, sizeof err);
    ck_assert_msg(w != NULL, "%s", err);
    snprintf(text, sizeof text, "%s/model", fx->text_dir);
    Model *t = model_load(text, err, sizeof err);
    ck_assert_msg(t != NULL, "%s", err);
    const ModelConfig *c = model_config(w);
    ck_assert_str_eq(hf_architecture(c), fx->architecture);
    ck_assert_str_eq(c->model_type, fx->model_type);
    ck_assert(c->wrapper != NULL);
    fx->check_config(c);
    /* the vision tower and projector are not read: the same weights as the text model */
    ck_assert_uint_eq(model_weight_bytes(w), model_weight_bytes(t));
    ck_assert_uint_eq(model_param_count(w), model_param_count(t));
    ck_assert_uint_eq(model_converted_bytes(w), model_converted_bytes(t));
    model_free(w);
    model_free(t);
    int64_t nw, nt;
    char text_adapter[600];
    snprintf(text_adapter, sizeof text_adapter, "%s/init_adapter", fx->text_dir);
    float *a = tt_fixed_batch_logits(fx_path(fx, "model"), fx_path(fx, "init_adapter"), 320, &nw);
    float *b = tt_fixed_batch_logits(text, text_adapter, 320, &nt);
    ck_assert_int_eq(nw, nt);
    ck_assert_msg(memcmp(a, b, (size_t)nw * sizeof *a) == 0,
                  "the wrapper's logits are not the text model's");
    free(a);
    free(b);
}
END_TEST

static void expect_config_error(const char *json, const char *needle) {
    ModelConfig cfg;
    char err[1024] = "";
    ck_assert_msg(hf_config_parse(json, strlen(json), "config.json", &cfg, err, sizeof err) != 0,
                  "accepted: %s", json);
    ck_assert_msg(strstr(err, needle) != NULL, "'%s' lacks '%s'", err, needle);
}

START_TEST(test_wrapper_configs_are_checked) {
    expect_config_error("{\"model_type\": \"gemma3\"}", "\"text_config\"");
    expect_config_error(
        "{\"model_type\": \"gemma3\", \"text_config\": {\"model_type\": \"llama\", "
        "\"hidden_size\": 32, \"intermediate_size\": 48, \"num_hidden_layers\": 2}}",
        "model_type \"gemma3_text\"");
    expect_config_error("{\"architectures\": [\"Gemma3ForConditionalGeneration\"], "
                        "\"model_type\": \"gemma3_text\", \"text_config\": {}}",
                        "name different");
    /* a bad value inside text_config is named there */
    expect_config_error("{\"model_type\": \"gemma3\", \"text_config\": {\"hidden_size\": -1}}",
                        "config.json: text_config: \"hidden_size\"");
    /* another multimodal family: refused by name, the wrappers listed among the supported */
    expect_config_error("{\"architectures\": [\"LlavaForConditionalGeneration\"], "
                        "\"model_type\": \"llava\"}",
                        "gemma3 (Gemma3ForConditionalGeneration)");
    expect_config_error("{\"model_type\": \"llava\"}",
                        "mistral3 (Mistral3ForConditionalGeneration)");
    /* a 4B-style config.json: text_config with what differs from the defaults only */
    const char *small = "{\"architectures\": [\"Gemma3ForConditionalGeneration\"], "
                        "\"model_type\": \"gemma3\", \"text_config\": {\"hidden_size\": 2560, "
                        "\"intermediate_size\": 10240, \"model_type\": \"gemma3_text\", "
                        "\"num_hidden_layers\": 34, \"rope_scaling\": {\"factor\": 8.0, "
                        "\"rope_type\": \"linear\"}, \"sliding_window\": 1024}, "
                        "\"vision_config\": {\"hidden_size\": 1152}}";
    ModelConfig cfg;
    char err[1024];
    ck_assert_msg(hf_config_parse(small, strlen(small), "4b", &cfg, err, sizeof err) == 0, "%s",
                  err);
    ck_assert_int_eq(cfg.vocab_size, 262208);
    ck_assert_int_eq(cfg.num_attention_heads, 8);
    ck_assert_int_eq(cfg.num_key_value_heads, 4);
    ck_assert_int_eq(cfg.head_dim, 256);
    ck_assert(fabs(cfg.attn_scale - 1.0 / 16.0) < 1e-9);
    ck_assert(cfg.tie_word_embeddings && cfg.rope_scaling.linear && cfg.rope_scaling.factor == 8);
    int sliding = 0;
    for (int l = 0; l < 34; l++) sliding += hf_layer_window(&cfg, l) == 1024;
    ck_assert_int_eq(sliding, 29); /* every 6th layer full */
}
END_TEST

/* Mistral3Config reads a text_config without model_type as Mistral's (Mistral Small 3.1's
 * wrapper), which is not Ministral 3's decoder: refused, as is "mistral" said outright. */
START_TEST(test_mistral3_wrapper_configs_are_checked) {
    expect_config_error("{\"model_type\": \"mistral3\", \"text_config\": {\"hidden_size\": 32, "
                        "\"intermediate_size\": 48, \"num_hidden_layers\": 2}}",
                        "model_type \"ministral3\" (the language model lorafit trains); it has "
                        "\"mistral\"");
    expect_config_error("{\"architectures\": [\"Mistral3ForConditionalGeneration\"], "
                        "\"text_config\": {\"model_type\": \"mistral\"}}",
                        "it has \"mistral\"");
    expect_config_error("{\"architectures\": [\"Mistral3ForConditionalGeneration\"]}",
                        "it has none");
    /* a Ministral-3-style config.json naming little in text_config: Ministral3Config's
     * defaults, its default yarn rope_parameters, the wrapper's tie_word_embeddings */
    const char *small = "{\"architectures\": [\"Mistral3ForConditionalGeneration\"], "
                        "\"model_type\": \"mistral3\", \"text_config\": {\"hidden_size\": 3072, "
                        "\"intermediate_size\": 9216, \"model_type\": \"ministral3\", "
                        "\"num_hidden_layers\": 26}, \"tie_word_embeddings\": true, "
                        "\"vision_config\": {\"model_type\": \"pixtral\"}}";
    ModelConfig cfg;
    char err[1024];
    ck_assert_msg(hf_config_parse(small, strlen(small), "3b", &cfg, err, sizeof err) == 0, "%s",
                  err);
    ck_assert_str_eq(hf_architecture(&cfg), "Mistral3ForConditionalGeneration");
    ck_assert_int_eq(cfg.vocab_size, 131072);
    ck_assert_int_eq(cfg.num_attention_heads, 32);
    ck_assert_int_eq(cfg.num_key_value_heads, 8);
    ck_assert_int_eq(cfg.head_dim, 128);
    ck_assert_int_eq(cfg.max_position_embeddings, 262144);
    ck_assert(cfg.tie_word_embeddings);
    ck_assert(cfg.rope_scaling.yarn && cfg.rope_scaling.factor == 16 &&
              cfg.rope_scaling.original_max_position_embeddings == 16384);
    ck_assert(fabs(cfg.llama4_scaling_beta - 0.1) < 1e-12);
    ck_assert_int_eq(hf_layer_window(&cfg, 0), 0);
}
END_TEST

/* ---- eval, generate, merge ----------------------------------------------------------- */

START_TEST(test_wrapper_eval_and_generate_give_the_reference) {
    const WrapperFixture *wf = &fixtures[_i];
    char *dir = test_tmpdir(), *model = tt_repo_path(fx_path(wf, "model"));
    char *adapter = tt_repo_path(fx_path(wf, "init_adapter"));
    char *train = tt_repo_path(fx_path(wf, "train.jsonl"));
    char *rows = test_read_file(train, NULL);
    char *second = strchr(strchr(rows, '\n') + 1, '\n'); /* batch 0: rows 0 and 1 */
    second[1] = '\0';
    char *valid = tt_write_text(dir, "valid.jsonl", rows), extra[8192], args[8192];
    snprintf(extra, sizeof extra,
             "data:\n  train: %s\n  valid: %s\n  seq_len: %d\n  shuffle: false\n"
             "train:\n  batch_size: 2\n  precision: f32\n",
             valid, valid, wf->seq);
    char *cfg = tt_write_config(dir, model, extra);
    snprintf(args, sizeof args, "eval '%s' --adapter '%s'", cfg, adapter);
    char *out = tt_run_stdout(dir, args);
    json_t *line = json_loads(out, 0, NULL);
    json_t *fx = json_load_file(fx_path(wf, "fixture.json"), 0, NULL);
    ck_assert_msg(line && fx, "%s", out);
    double got = json_number_value(json_object_get(line, "eval_loss"));
    double want = json_number_value(json_array_get(json_object_get(fx, "losses"), 0));
    ck_assert_msg(fabs(got - want) <= 1e-6 * want, "eval_loss %.9g, reference %.9g", got, want);
    free(out);
    char *prompt = tt_fixture_ids_of(wf->dir, "greedy_prompt"),
         *ids = tt_fixture_ids_of(wf->dir, "greedy_adapter");
    snprintf(args, sizeof args,
             "generate --model '%s' --adapter '%s' --prompt-ids '%s' -n 64 --precision f32", model,
             adapter, prompt);
    out = tt_run_stdout(dir, args);
    out[strcspn(out, "\n")] = '\0';
    ck_assert_str_eq(out, ids);
    free(out);
    snprintf(args, sizeof args, "inspect '%s'", model);
    out = tt_run_stdout(dir, args);
    char line_want[300];
    snprintf(line_want, sizeof line_want,
             "model %s (%s)\n  multimodal: only its language model (model.language_model.*)",
             wf->architecture, wf->model_type);
    ck_assert_msg(strstr(out, line_want), "%s", out);
    free(out);
    free(ids);
    free(prompt);
    json_decref(line);
    json_decref(fx);
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

/* Every tensor of base_dir's checkpoint is in merged_dir's under its name; those outside the
 * language model (prefix lm, and its lm_head `head`) byte-identical in their dtype (the
 * fixture's `others` of them), the language model's in lm_dtype. */
static void check_merged_tensors(const char *base_dir, const char *merged_dir, const char *lm,
                                 const char *head, StDtype lm_dtype, int want_others) {
    char path[4400], err[1024];
    snprintf(path, sizeof path, "%s/model.safetensors", base_dir);
    SafeTensors *a = st_open(path, err, sizeof err);
    ck_assert_msg(a != NULL, "%s", err);
    snprintf(path, sizeof path, "%s/model.safetensors", merged_dir);
    SafeTensors *b = st_open(path, err, sizeof err);
    ck_assert_msg(b != NULL, "%s", err);
    ck_assert_int_eq(st_count(a), st_count(b));
    int others = 0;
    for (int i = 0; i < st_count(a); i++) {
        const StTensor *x = st_tensor_at(a, i), *y = st_find(b, x->name);
        ck_assert_msg(y != NULL, "%s: '%s' is missing", merged_dir, x->name);
        ck_assert_int_eq(x->ndim, y->ndim);
        for (int d = 0; d < x->ndim; d++) ck_assert_int_eq(x->shape[d], y->shape[d]);
        if (strncmp(x->name, lm, strlen(lm)) == 0 || strcmp(x->name, head) == 0) {
            ck_assert_msg(y->dtype == lm_dtype, "%s: %s", x->name, st_dtype_name(y->dtype));
            continue;
        }
        others++;
        ck_assert_msg(x->dtype == ST_BF16 && y->dtype == ST_BF16 && x->nbytes == y->nbytes &&
                          memcmp(x->data, y->data, x->nbytes) == 0,
                      "%s: not byte-identical", x->name);
    }
    ck_assert_int_eq(others, want_others);
    st_close(a);
    st_close(b);
}

START_TEST(test_wrapper_merge_keeps_every_other_tensor_byte_identical) {
    const WrapperFixture *wf = &fixtures[_i];
    char *dir = test_tmpdir(), *model = tt_repo_path(fx_path(wf, "model")), args[8192], path[4400];
    char *adapter = tt_repo_path(fx_path(wf, "init_adapter"));
    /* the merged checkpoint loads back as the wrapper and generates what generate --adapter
     * does (the fixture's greedy ids) */
    tt_check_merged_generates(dir, model, adapter, wf->dir);
    snprintf(path, sizeof path, "%s/merged", dir);
    check_merged_tensors(model, path, LM, "lm_head.weight", ST_F32, wf->vision_tensors);
    json_t *cfg;
    snprintf(path, sizeof path, "%s/merged/config.json", dir);
    ck_assert((cfg = json_load_file(path, 0, NULL)) != NULL);
    ck_assert_str_eq(json_string_value(json_object_get(cfg, "model_type")), wf->model_type);
    ck_assert(json_is_object(json_object_get(cfg, "text_config")) &&
              json_is_object(json_object_get(cfg, "vision_config")));
    json_decref(cfg);
    char a[4400], b[4400];
    snprintf(a, sizeof a, "%s/preprocessor_config.json", model);
    snprintf(b, sizeof b, "%s/merged/preprocessor_config.json", dir);
    ck_assert_msg(tt_same_bytes(a, b), "preprocessor_config.json not copied");
    /* --dtype f16: the language model in f16, the vision tower still its bf16 bytes */
    snprintf(args, sizeof args, "merge --model '%s' --adapter '%s' --out '%s/f16' --dtype f16",
             model, adapter, dir);
    tt_expect(dir, args, 0, "merged");
    snprintf(path, sizeof path, "%s/f16", dir);
    check_merged_tensors(model, path, LM, "lm_head.weight", ST_F16, wf->vision_tensors);
    free(adapter);
    free(model);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- training and the PEFT export ------------------------------------------------------ */

START_TEST(test_wrapper_trains_and_exports_the_adapter_peft_loads) {
    const WrapperFixture *wf = &fixtures[_i];
    char *dir = test_tmpdir(), *model = tt_repo_path(fx_path(wf, "model"));
    char *train = tt_repo_path(fx_path(wf, "train.jsonl")), extra[8192], args[8192], path[4400];
    snprintf(extra, sizeof extra,
             "lora:\n  r: 4\n  alpha: 8\n  target_modules: [q_proj, v_proj, down_proj]\n"
             "data:\n  train: %s\n  seq_len: %d\n  shuffle: false\n"
             "train:\n  batch_size: 2\n  max_steps: 2\n  lr: 1.0e-2\n  precision: f32\n",
             train, wf->seq);
    char *cfg = tt_write_config(dir, model, extra);
    snprintf(args, sizeof args, "train '%s'", cfg);
    tt_expect(dir, args, 0, NULL);
    snprintf(args, sizeof args, "export '%s/out/adapter' --out '%s/peft'", dir, dir);
    tt_expect(dir, args, 0, NULL);
    snprintf(path, sizeof path, "%s/peft/adapter_config.json", dir);
    json_t *ac = json_load_file(path, 0, NULL);
    ck_assert(ac != NULL);
    const char *re = json_string_value(json_object_get(ac, "target_modules"));
    ck_assert_msg(re && !strcmp(re, "model\\.language_model\\.layers\\.[0-9]+\\.(self_attn|mlp)\\."
                                    "(q_proj|v_proj|down_proj)"),
                  "target_modules %s", re ? re : "(not a string)");
    json_decref(ac);
    snprintf(path, sizeof path, "%s/peft/adapter_model.safetensors", dir);
    char err[1024];
    SafeTensors *st = st_open(path, err, sizeof err);
    ck_assert_msg(st != NULL, "%s", err);
    ck_assert_int_eq(st_count(st), 2 * 3 * wf->layers);
    char last[200];
    snprintf(last, sizeof last,
             "base_model.model.model.language_model.layers.%d.mlp.down_proj.lora_B.weight",
             wf->layers - 1);
    ck_assert_msg(st_find(st, last) != NULL, "%s is missing", last);
    st_close(st);
    /* an independent reader: names, shapes and the regex as PEFT's re.fullmatch sees it */
    char root[4096], cmd[16384], out[4400], ok[40];
    ck_assert(realpath(".", root) != NULL);
    snprintf(cmd, sizeof cmd,
             "python3 '%s/tests/check_peft_adapter.py' '%s/peft' '%s/config.json' F32", root, dir,
             model);
    snprintf(out, sizeof out, "%s/py.txt", dir);
    int rc = test_run(cmd, out);
    char *text = test_read_file(out, NULL);
    snprintf(ok, sizeof ok, "ok %d tensors\n", 2 * 3 * wf->layers);
    ck_assert_msg(rc == 0 && text && !strcmp(text, ok), "%s", text ? text : "(no output)");
    free(text);
    /* and lorafit reads its own export back */
    snprintf(args, sizeof args,
             "generate --model '%s' --adapter '%s/peft' --prompt-ids '1 2 3' -n 4 --precision f32",
             model, dir);
    free(tt_run_stdout(dir, args));
    free(cfg);
    free(train);
    free(model);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- GGUF: the language model only ------------------------------------------------------ */

START_TEST(test_wrapper_gguf_holds_the_language_model_only) {
    const WrapperFixture *wf = &fixtures[_i];
    char *dir = test_tmpdir(), *model = tt_repo_path(fx_path(wf, "model")), args[8192], path[4400];
    char *adapter = tt_repo_path(fx_path(wf, "init_adapter")), key[100];
    snprintf(path, sizeof path, "%s/m.gguf", dir);
    snprintf(args, sizeof args, "merge --model '%s' --out '%s'", model, path);
    snprintf(key, sizeof key, "arch %s", wf->model_type); /* both GGUF arches are the model_type */
    tt_expect(dir, args, 0, key);
    TgFile f;
    tg_read(path, &f);
    /* embd, output_norm (and output when untied); the layers' norms and 7 linears */
    ck_assert_int_eq(f.n_tensors, wf->gguf_tensors);
    for (int i = 0; i < f.n_tensors; i++)
        ck_assert_msg(
            !strncmp(f.t[i].name, "blk.", 4) || !strcmp(f.t[i].name, "token_embd.weight") ||
                !strcmp(f.t[i].name, "output_norm.weight") || !strcmp(f.t[i].name, "output.weight"),
            "%s", f.t[i].name);
    /* gemma3's text_config's final_logit_softcapping is not the wrapper's: llama.cpp must not
     * apply it */
    snprintf(key, sizeof key, "%s.final_logit_softcapping", wf->model_type);
    ck_assert(!tg_kv(&f, key));
    tg_free(&f);
    snprintf(path, sizeof path, "%s/a.gguf", dir);
    snprintf(args, sizeof args, "export '%s' --model '%s' --format gguf --out '%s'", adapter, model,
             path);
    tt_expect(dir, args, 0, "GGUF LoRA adapter");
    tg_read(path, &f);
    ck_assert_int_eq(f.n_tensors, 2 * 7 * wf->layers);
    snprintf(key, sizeof key, "blk.%d.ffn_down.weight.lora_b", wf->layers - 1);
    ck_assert(tg_tensor(&f, key) != NULL);
    for (int i = 0; i < f.n_tensors; i++)
        ck_assert_msg(!strncmp(f.t[i].name, "blk.", 4), "%s", f.t[i].name);
    tg_free(&f);
    free(adapter);
    free(model);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- transformers < 4.52's layout ------------------------------------------------------ */

/* dst: wf's model with its tensors under the older names (language_model.model.,
 * language_model.lm_head.weight, vision_tower., multi_modal_projector.), which transformers
 * still loads. */
static void write_legacy_layout(const WrapperFixture *wf, const char *dst) {
    char err[1024], path[4600];
    SafeTensors *st = st_open(fx_path(wf, "model/model.safetensors"), err, sizeof err);
    ck_assert_msg(st != NULL, "%s", err);
    StWriter *w = st_writer_new();
    char(*names)[160] = calloc((size_t)st_count(st), sizeof *names);
    for (int i = 0; i < st_count(st); i++) {
        const StTensor *t = st_tensor_at(st, i);
        if (!strncmp(t->name, LM, strlen(LM)))
            snprintf(names[i], sizeof names[i], "language_model.model.%s", t->name + strlen(LM));
        else if (!strcmp(t->name, "lm_head.weight"))
            snprintf(names[i], sizeof names[i], "language_model.lm_head.weight");
        else
            snprintf(names[i], sizeof names[i], "%s", t->name + strlen("model."));
        ck_assert(
            st_writer_add(w, names[i], t->dtype, t->ndim, t->shape, t->data, err, sizeof err) == 0);
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dst);
    ck_assert_msg(st_writer_save(w, path, err, sizeof err) == 0, "%s", err);
    st_writer_free(w);
    free(names);
    st_close(st);
    static const char *const files[] = {"config.json", "tokenizer.json", "tokenizer_config.json"};
    for (int i = 0; i < 3; i++) {
        char src[600];
        size_t len;
        snprintf(src, sizeof src, "%s/model/%s", wf->dir, files[i]);
        char *bytes = test_read_file(src, &len);
        snprintf(path, sizeof path, "%s/%s", dst, files[i]);
        test_write_file(path, bytes, len);
        free(bytes);
    }
}

START_TEST(test_wrapper_loads_and_merges_the_older_layout) {
    const WrapperFixture *wf = &fixtures[_i];
    char *dir = test_tmpdir(), args[8192], legacy[4400];
    snprintf(legacy, sizeof legacy, "%s/legacy", dir);
    ck_assert(mkdir(legacy, 0755) == 0);
    write_legacy_layout(wf, legacy);
    int64_t na, nb;
    float *a = tt_fixed_batch_logits(legacy, fx_path(wf, "init_adapter"), 320, &na);
    float *b = tt_fixed_batch_logits(fx_path(wf, "model"), fx_path(wf, "init_adapter"), 320, &nb);
    ck_assert(na == nb && memcmp(a, b, (size_t)na * sizeof *a) == 0);
    free(a);
    free(b);
    char *adapter = tt_repo_path(fx_path(wf, "init_adapter"));
    snprintf(args, sizeof args, "merge --model '%s' --adapter '%s' --out '%s/merged'", legacy,
             adapter, dir);
    tt_expect(dir, args, 0, "merged");
    char merged[4400];
    snprintf(merged, sizeof merged, "%s/merged", dir);
    check_merged_tensors(legacy, merged, "language_model.model.", "language_model.lm_head.weight",
                         ST_F32, wf->vision_tensors);
    snprintf(args, sizeof args, "--model '%s'", merged);
    tt_check_generates(dir, args, wf->dir);
    free(adapter);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* PEFT given a list target_modules on a wrapper wraps the vision tower's q_proj too: such an
 * adapter is refused naming a tensor off the language model (lorafit would drop it). */
START_TEST(test_an_adapter_reaching_the_vision_tower_is_refused) {
    const WrapperFixture *wf = &fixtures[_i];
    char *dir = test_tmpdir(), err[1024], path[4400];
    SafeTensors *st =
        st_open(fx_path(wf, "init_adapter/adapter_model.safetensors"), err, sizeof err);
    ck_assert_msg(st != NULL, "%s", err);
    StWriter *w = st_writer_new();
    for (int i = 0; i < st_count(st); i++) {
        const StTensor *t = st_tensor_at(st, i);
        ck_assert(
            st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data, err, sizeof err) == 0);
    }
    static float a[4 * 16], b[16 * 4];
    int64_t sa[2] = {4, 16}, sb[2] = {16, 4};
    const char *v = wf->vision_q;
    char na[200], nb[200];
    snprintf(na, sizeof na, "%sA.weight", v);
    snprintf(nb, sizeof nb, "%sB.weight", v);
    ck_assert(st_writer_add(w, na, ST_F32, 2, sa, a, err, sizeof err) == 0);
    ck_assert(st_writer_add(w, nb, ST_F32, 2, sb, b, err, sizeof err) == 0);
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    ck_assert(st_writer_save(w, path, err, sizeof err) == 0);
    st_writer_free(w);
    st_close(st);
    const char *cfg = "{\"peft_type\": \"LORA\", \"r\": 4, \"lora_alpha\": 8, \"target_modules\": "
                      "[\"q_proj\", \"k_proj\", \"v_proj\", \"o_proj\", \"gate_proj\", "
                      "\"up_proj\", \"down_proj\"]}";
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    test_write_file(path, cfg, strlen(cfg));
    Model *m = model_load(fx_path(wf, "model"), err, sizeof err);
    ck_assert_msg(m != NULL, "%s", err);
    ck_assert(lora_load_adapter(m, dir, err, sizeof err) == NULL);
    ck_assert_msg(strstr(err, "vision_tower") && strstr(err, "language model only"), "%s", err);
    model_free(m);
    test_rmtree(dir);
    free(dir);
}
END_TEST

Suite *wrapper_suite(void) {
    Suite *s = suite_create("wrapper");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_wrapper_computes_its_text_model_without_the_vision_tower, 0,
                        N_FIXTURES);
    tcase_add_test(tc, test_wrapper_configs_are_checked);
    tcase_add_test(tc, test_mistral3_wrapper_configs_are_checked);
    tcase_add_loop_test(tc, test_wrapper_eval_and_generate_give_the_reference, 0, N_FIXTURES);
    tcase_add_loop_test(tc, test_wrapper_merge_keeps_every_other_tensor_byte_identical, 0,
                        N_FIXTURES);
    tcase_add_loop_test(tc, test_wrapper_trains_and_exports_the_adapter_peft_loads, 0, N_FIXTURES);
    tcase_add_loop_test(tc, test_wrapper_gguf_holds_the_language_model_only, 0, N_FIXTURES);
    tcase_add_loop_test(tc, test_wrapper_loads_and_merges_the_older_layout, 0, N_FIXTURES);
    tcase_add_loop_test(tc, test_an_adapter_reaching_the_vision_tower_is_refused, 0, N_FIXTURES);
    suite_add_tcase(s, tc);
    return s;
}
