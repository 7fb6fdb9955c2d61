/* tests/test_families.c — SmolLM3, OLMo 2, Granite and Phi-3 through every command, on the
 * tiny fixtures of tests/data/train: smollm3-nope (layer 3 of 4 without RoPE as the config
 * derives it, tied head by SmolLM3's default, rope_parameters), olmo2-untied (no input norms,
 * norms on the sublayer outputs and over the whole q/k projections, all away from 1),
 * granite-untied (embedding, attention, residual and logit multipliers), phi3-window (fused
 * linears, a window shorter than the sequences) and phi4mini-longrope (partial rotary,
 * longrope past its original context, tied) and ministral3-yarn (yarn RoPE and the llama 4
 * query scale past original_max_position_embeddings 16). The numbers are
 * held to the float64 reference in test_model.c and test_train.c; here: gradient
 * checkpointing byte-identical in f32 and bf16 with packing and dropout, eval, generate (ids
 * and --chat), merge (HF, and GGUF laid out as llama.cpp's converter writes each arch), the
 * PEFT and GGUF adapter exports, inspect, and the GGUF refusals where llama.cpp would compute
 * another model. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/test_gguf_reader.h"
#include "tests/test_train_util.h"
#include "tests/test_util.h"
#include "trainer/model/model.h"

typedef struct {
    const char *fixture; /* tests/data/train/... */
    const char *model_type, *architecture;
    int permute_q; /* heads whose q rows the GGUF permutes; 0: none */
} Family;

/* The first three are laid out in GGUF with separate q k v (the layout test below); Phi-3's
 * fused layout and Ministral 3's yarn keys have their own tests. */
#define N_FAMILIES 6
static const Family families[N_FAMILIES] = {
    {"tests/data/train/smollm3-nope", "smollm3", "SmolLM3ForCausalLM", 4},
    {"tests/data/train/olmo2-untied", "olmo2", "Olmo2ForCausalLM", 0},
    {"tests/data/train/granite-untied", "granite", "GraniteForCausalLM", 4},
    {"tests/data/train/phi3-window", "phi3", "Phi3ForCausalLM", 0},
    {"tests/data/train/phi4mini-longrope", "phi3", "Phi3ForCausalLM", 0},
    {"tests/data/train/ministral3-yarn", "ministral3", "Ministral3ForCausalLM", 4},
};

/* ---- gradient checkpointing ------------------------------------------------------------- */

static void check_checkpointing(const Family *f, const char *precision) {
    char *ref = test_tmpdir(), *cut = test_tmpdir(), path[4300], rows[4400], extra[8192],
         args[4400];
    snprintf(path, sizeof path, "%s/model", f->fixture);
    char *model = tt_repo_path(path);
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
    char what[256];
    snprintf(what, sizeof what, "%s %s", f->model_type, precision);
    tt_assert_same_run(ref, cut, what);
    if (!strcmp(f->model_type, "phi3")) { /* all-linear: Phi-3's four fused and plain linears */
        snprintf(path, sizeof path, "%s/out/config.resolved.yaml", ref);
        char *resolved = test_read_file(path, NULL);
        ck_assert_msg(resolved && strstr(resolved, "qkv_proj") &&
                          strstr(resolved, "gate_up_proj") && strstr(resolved, "o_proj") &&
                          strstr(resolved, "down_proj") && !strstr(resolved, "k_proj") &&
                          !strstr(resolved, "gate_proj"),
                      "%s", resolved ? resolved : path);
        free(resolved);
    }
    test_rmtree(ref);
    test_rmtree(cut);
    free(ref);
    free(cut);
    free(model);
}

/* A packed job with dropout and two micro-batches per step, without and with gradient
 * checkpointing: the same adapter bytes and metrics, in f32 and bf16. */
START_TEST(test_checkpointing_is_byte_identical_f32_and_bf16_packed) {
    for (int i = 0; i < N_FAMILIES; i++) {
        check_checkpointing(&families[i], "f32");
        check_checkpointing(&families[i], "bf16");
    }
}
END_TEST

/* ---- eval, generate, merge, export, inspect -------------------------------------------- */

/* eval --adapter on the fixture's first batch gives the reference's first loss (1e-6). */
static void check_eval(const Family *f, const char *dir, const char *model, const char *adapter) {
    char path[4400], extra[8192], args[8192];
    snprintf(path, sizeof path, "%s/train.jsonl", f->fixture);
    char *rows = test_read_file(path, NULL);
    char *second = strchr(strchr(rows, '\n') + 1, '\n'); /* batch 0: rows 0 and 1 */
    second[1] = '\0';
    char *valid = tt_write_text(dir, "valid.jsonl", rows);
    snprintf(extra, sizeof extra,
             "data:\n  train: %s\n  valid: %s\n  seq_len: 24\n  shuffle: false\n"
             "train:\n  batch_size: 2\n  precision: f32\n",
             valid, valid);
    char *cfg = tt_write_config(dir, model, extra);
    snprintf(args, sizeof args, "eval '%s' --adapter '%s'", cfg, adapter);
    char *out = tt_run_stdout(dir, args);
    json_t *line = json_loads(out, 0, NULL), *fx = tt_fixture(f->fixture);
    ck_assert_msg(line != NULL, "%s", out);
    double got = json_number_value(json_object_get(line, "eval_loss"));
    double want = json_number_value(json_array_get(json_object_get(fx, "losses"), 0));
    ck_assert_msg(fabs(got - want) <= 1e-6 * want, "%s: eval_loss %.9g, reference %.9g",
                  f->model_type, got, want);
    json_decref(line);
    json_decref(fx);
    free(out);
    free(cfg);
    free(valid);
    free(rows);
}

/* `generate --prompt-ids` from model (with adapter unless NULL) prints the ids `want`. */
static void check_generate(const Family *f, const char *dir, const char *model, const char *adapter,
                           const char *prompt, const char *want) {
    char args[8192], with[4400] = "";
    if (adapter) snprintf(with, sizeof with, "--adapter '%s'", adapter);
    snprintf(args, sizeof args, "generate --model '%s' %s --prompt-ids '%s' -n 64 --precision f32",
             model, with, prompt);
    char *out = tt_run_stdout(dir, args);
    out[strcspn(out, "\n")] = '\0';
    ck_assert_msg(!strcmp(out, want), "%s: generate printed\n%s\nthe reference's\n%s",
                  f->model_type, out, want);
    free(out);
}

START_TEST(test_eval_generate_merge_export_inspect) {
    for (int i = 0; i < N_FAMILIES; i++) {
        const Family *f = &families[i];
        char *dir = test_tmpdir(), path[4400], args[8192], src[4400];
        snprintf(path, sizeof path, "%s/model", f->fixture);
        char *model = tt_repo_path(path);
        snprintf(path, sizeof path, "%s/init_adapter", f->fixture);
        char *adapter = tt_repo_path(path);
        json_t *fx = tt_fixture(f->fixture);
        char *prompt = tt_fixture_ids(fx, "greedy_prompt", NULL),
             *want = tt_fixture_ids(fx, "greedy_adapter", NULL);
        check_eval(f, dir, model, adapter);
        check_generate(f, dir, model, adapter, prompt, want);
        /* the merged Hugging Face directory generates the adapter's ids on its own */
        snprintf(args, sizeof args, "merge --model '%s' --adapter '%s' --out '%s/merged'", model,
                 adapter, dir);
        tt_expect(dir, args, 0, "merged");
        snprintf(path, sizeof path, "%s/merged", dir);
        check_generate(f, dir, path, NULL, prompt, want);
        snprintf(args, sizeof args, "export '%s' --out '%s/peft'", adapter, dir);
        tt_expect(dir, args, 0, NULL);
        snprintf(path, sizeof path, "%s/peft/adapter_model.safetensors", dir);
        snprintf(src, sizeof src, "%s/adapter_model.safetensors", adapter);
        ck_assert_msg(tt_adapter_rel_diff(path, src, "") == 0.0, "%s: the PEFT export changed",
                      f->model_type);
        snprintf(args, sizeof args, "inspect '%s'", model);
        char *out = tt_run_stdout(dir, args), line[256];
        snprintf(line, sizeof line, "model %s (%s)", f->architecture, f->model_type);
        ck_assert_msg(strstr(out, line), "%s", out);
        free(out);
        /* --chat renders the model's template (ChatML here) and generates */
        snprintf(args, sizeof args,
                 "generate --model '%s' --adapter '%s' --prompt 'Hi there' --chat -n 8 "
                 "--precision f32",
                 model, adapter);
        free(tt_run_stdout(dir, args));
        free(prompt);
        free(want);
        json_decref(fx);
        free(adapter);
        free(model);
        test_rmtree(dir);
        free(dir);
    }
}
END_TEST

/* ---- GGUF ------------------------------------------------------------------------------ */

/* The merged GGUF as convert_hf_to_gguf.py writes each arch: SmolLM3Model (a LlamaModel:
 * q/k permuted, vocab_size and rope.dimension_count, no output tensor when tied), Olmo2Model
 * (a TextModel: post_attention_norm, post_ffw_norm, attn_q_norm (NH*D), attn_k_norm (NKV*D), no
 * attn_norm / ffn_norm, rows unpermuted), GraniteModel (a LlamaModel with the four scales). */
START_TEST(test_merge_gguf_is_laid_out_as_llamacpp_writes_each_arch) {
    for (int i = 0; i < 3; i++) {
        const Family *f = &families[i];
        char *dir = test_tmpdir(), path[4400], args[8192], key[128], err[1024];
        snprintf(path, sizeof path, "%s/model", f->fixture);
        char *model = tt_repo_path(path);
        snprintf(path, sizeof path, "%s/init_adapter", f->fixture);
        char *adapter = tt_repo_path(path);
        Model *m = model_load(model, err, sizeof err);
        ck_assert_msg(m != NULL, "%s", err);
        Lora *lora = lora_load_adapter(m, adapter, err, sizeof err);
        ck_assert_msg(lora != NULL, "%s", err);
        const ModelConfig *c = model_config(m);
        snprintf(path, sizeof path, "%s/m.gguf", dir);
        snprintf(args, sizeof args, "merge --model '%s' --adapter '%s' --out '%s'", model, adapter,
                 path);
        tt_expect(dir, args, 0, f->model_type);
        TgFile g;
        tg_read(path, &g);
        char *s = tg_str(&g, "general.architecture");
        ck_assert_str_eq(s, f->model_type);
        free(s);
#define K(suffix) (snprintf(key, sizeof key, "%s." suffix, f->model_type), key)
        ck_assert_uint_eq(tg_u32(&g, K("block_count")), (uint32_t)c->num_hidden_layers);
        ck_assert_uint_eq(tg_u32(&g, K("attention.head_count_kv")),
                          (uint32_t)c->num_key_value_heads);
        ck_assert_int_eq(tg_kv(&g, K("vocab_size")) != NULL, f->permute_q != 0);
        ck_assert_int_eq(tg_kv(&g, K("rope.dimension_count")) != NULL, f->permute_q != 0);
        ck_assert_int_eq(tg_tensor(&g, "output.weight") != NULL, !c->tie_word_embeddings);
        if (!strcmp(f->model_type, "smollm3"))
            ck_assert_float_eq(tg_f32(&g, K("rope.freq_base")), 20000.0f);
        if (!strcmp(f->model_type, "granite")) {
            ck_assert_float_eq(tg_f32(&g, K("attention.scale")), 0.3f);
            ck_assert_float_eq(tg_f32(&g, K("embedding_scale")), 2.5f);
            ck_assert_float_eq(tg_f32(&g, K("residual_scale")), 0.6f);
            ck_assert_float_eq(tg_f32(&g, K("logit_scale")), 3.0f);
        }
#undef K
        for (int l = 0; l < c->num_hidden_layers; l++) {
            bool olmo2 = !strcmp(f->model_type, "olmo2");
            static const char *const olmo[4] = {"post_attention_norm", "post_ffw_norm",
                                                "attn_q_norm", "attn_k_norm"};
            static const char *const llama[2] = {"attn_norm", "ffn_norm"};
            int64_t olmo_len[4] = {c->hidden_size, c->hidden_size,
                                   (int64_t)c->num_attention_heads * c->head_dim,
                                   (int64_t)c->num_key_value_heads * c->head_dim};
            for (int k = 0; k < 4; k++) {
                snprintf(path, sizeof path, "blk.%d.%s.weight", l, olmo[k]);
                const TgTensor *t = tg_tensor(&g, path);
                ck_assert_msg(olmo2 == (t != NULL), "%s: %s", f->model_type, path);
                if (t)
                    ck_assert(t->type == 0 && t->n_dims == 1 && t->ne[0] == (uint64_t)olmo_len[k]);
                if (k < 2) {
                    snprintf(path, sizeof path, "blk.%d.%s.weight", l, llama[k]);
                    ck_assert_msg(olmo2 == !tg_tensor(&g, path), "%s: %s", f->model_type, path);
                }
            }
            /* the merged q rows, permuted as LlamaModel.permute does for llama-like arches */
            int out, in;
            model_module_dims(c, MODULE_Q, &out, &in);
            float *want = malloc((size_t)out * in * sizeof *want);
            merge_linear(m, lora, l, MODULE_Q, want);
            snprintf(path, sizeof path, "blk.%d.attn_q.weight", l);
            const TgTensor *tq = tg_tensor(&g, path);
            ck_assert(tq && tq->ne[0] == (uint64_t)in && tq->ne[1] == (uint64_t)out);
            uint64_t cnt;
            float *got = tg_floats(tq, &cnt);
            int hd = out / (f->permute_q ? f->permute_q : 1), half = hd / 2;
            for (int r = 0; r < out; r++) {
                int src = f->permute_q ? r / hd * hd + r % 2 * half + r % hd / 2 : r;
                ck_assert_msg(!memcmp(got + (size_t)r * in, want + (size_t)src * in,
                                      (size_t)in * sizeof *got),
                              "%s: %s row %d", f->model_type, path, r);
            }
            free(got);
            free(want);
        }
        tg_free(&g);
        snprintf(args, sizeof args, "merge --model '%s' --out '%s/q8.gguf' --dtype q8_0", model,
                 dir);
        tt_expect(dir, args, 0, f->model_type);
        snprintf(args, sizeof args, "export '%s' --model '%s' --format gguf --out '%s/a.gguf'",
                 adapter, model, dir);
        tt_expect(dir, args, 0, f->model_type);
        lora_free(lora);
        model_free(m);
        free(adapter);
        free(model);
        test_rmtree(dir);
        free(dir);
    }
}
END_TEST

/* Phi-3's GGUF as Phi3MiniModel writes it: arch phi3, blk.N.attn_qkv and blk.N.ffn_up
 * holding the merged fused weights unpermuted, rope.dimension_count the rotary dimensions,
 * attention.sliding_window (0 without one); with longrope rope_factors_long / _short (F32,
 * rotary_dim / 2), rope.scaling.original_context_length and attn_factor; no output tensor
 * when tied. The adapter GGUF names attn_qkv / ffn_up lora_a and lora_b. The window's export
 * warns from which length llama.cpp differs. */
START_TEST(test_phi3_gguf_is_laid_out_as_llamacpp_writes_it) {
    for (int i = 3; i < 5; i++) {
        const Family *f = &families[i];
        char *dir = test_tmpdir(), path[4400], args[8192], err[1024];
        snprintf(path, sizeof path, "%s/model", f->fixture);
        char *model = tt_repo_path(path);
        snprintf(path, sizeof path, "%s/init_adapter", f->fixture);
        char *adapter = tt_repo_path(path);
        Model *m = model_load(model, err, sizeof err);
        ck_assert_msg(m != NULL, "%s", err);
        Lora *lora = lora_load_adapter(m, adapter, err, sizeof err);
        ck_assert_msg(lora != NULL, "%s", err);
        const ModelConfig *c = model_config(m);
        snprintf(path, sizeof path, "%s/m.gguf", dir);
        snprintf(args, sizeof args, "merge --model '%s' --adapter '%s' --out '%s'", model, adapter,
                 path);
        tt_expect(dir, args, 0,
                  c->sliding_window ? "llama.cpp's phi3 has no sliding window: past 5 positions"
                                    : "phi3");
        TgFile g;
        tg_read(path, &g);
        char *s = tg_str(&g, "general.architecture");
        ck_assert_str_eq(s, "phi3");
        free(s);
        ck_assert_uint_eq(tg_u32(&g, "phi3.rope.dimension_count"), (uint32_t)c->rotary_dim);
        ck_assert_uint_eq(tg_u32(&g, "phi3.attention.sliding_window"), (uint32_t)c->sliding_window);
        ck_assert_int_eq(tg_tensor(&g, "output.weight") != NULL, !c->tie_word_embeddings);
        bool longrope = c->rope_scaling.longrope;
        ck_assert_int_eq(tg_kv(&g, "phi3.rope.scaling.attn_factor") != NULL, longrope);
        if (longrope) {
            ck_assert_uint_eq(tg_u32(&g, "phi3.rope.scaling.original_context_length"), 16);
            ck_assert_float_eq_tol(tg_f32(&g, "phi3.rope.scaling.attn_factor"),
                                   sqrt(1 + log(8.0) / log(16.0)), 1e-6);
            const TgTensor *tl = tg_tensor(&g, "rope_factors_long.weight");
            ck_assert(tl && tl->type == 0 && tl->ne[0] == (uint64_t)c->rotary_dim / 2);
            uint64_t n;
            float *lf = tg_floats(tl, &n);
            for (uint64_t k = 0; k < n; k++)
                ck_assert_float_eq(lf[k], (float)c->rope_scaling.long_factor[k]);
            free(lf);
            ck_assert(tg_tensor(&g, "rope_factors_short.weight"));
        }
        for (int l = 0; l < c->num_hidden_layers; l++) {
            static const ModelModule fused[2] = {MODULE_QKV, MODULE_GATE_UP};
            static const char *const names[2] = {"attn_qkv", "ffn_up"};
            for (int k = 0; k < 2; k++) {
                int out, in;
                model_module_dims(c, fused[k], &out, &in);
                float *want = malloc((size_t)out * in * sizeof *want);
                merge_linear(m, lora, l, fused[k], want);
                snprintf(path, sizeof path, "blk.%d.%s.weight", l, names[k]);
                const TgTensor *t = tg_tensor(&g, path);
                ck_assert_msg(t && t->ne[0] == (uint64_t)in && t->ne[1] == (uint64_t)out, "%s",
                              path);
                uint64_t cnt;
                float *got = tg_floats(t, &cnt);
                ck_assert_msg(!memcmp(got, want, (size_t)out * in * sizeof *got), "%s", path);
                free(got);
                free(want);
            }
            snprintf(path, sizeof path, "blk.%d.attn_q.weight", l);
            ck_assert(!tg_tensor(&g, path));
            snprintf(path, sizeof path, "blk.%d.ffn_gate.weight", l);
            ck_assert(!tg_tensor(&g, path));
        }
        tg_free(&g);
        snprintf(path, sizeof path, "%s/a.gguf", dir);
        snprintf(args, sizeof args, "export '%s' --model '%s' --format gguf --out '%s'", adapter,
                 model, path);
        tt_expect(dir, args, 0, NULL);
        tg_read(path, &g);
        ck_assert(tg_tensor(&g, "blk.1.attn_qkv.weight.lora_a"));
        ck_assert(tg_tensor(&g, "blk.1.ffn_up.weight.lora_b"));
        ck_assert(tg_tensor(&g, "blk.1.attn_output.weight.lora_a"));
        ck_assert(tg_tensor(&g, "blk.1.ffn_down.weight.lora_b"));
        tg_free(&g);
        lora_free(lora);
        model_free(m);
        free(adapter);
        free(model);
        test_rmtree(dir);
        free(dir);
    }
}
END_TEST

/* The ministral3-yarn model with its rope_parameters' `key` set to value (a number, or
 * false), with its tokenizer, in dir/model; its path (caller frees). */
static char *ministral3_with_rope(const char *dir, const char *key, json_t *value) {
    char *model = tt_repo_path("tests/data/train/ministral3-yarn/model"), path[4400], from[4400];
    snprintf(path, sizeof path, "%s/config.json", model);
    json_t *cfg = json_load_file(path, 0, NULL);
    json_t *rope = json_deep_copy(json_object_get(cfg, "rope_parameters"));
    json_object_set_new(rope, key, value);
    char *edited = malloc(4400);
    snprintf(edited, 4400, "%s/model", dir);
    json_t *edits = json_pack("{s:o}", "rope_parameters", rope);
    tt_model_with_config(model, edited, edits);
    json_decref(edits);
    static const char *const files[2] = {"tokenizer.json", "tokenizer_config.json"};
    for (int i = 0; i < 2; i++) {
        snprintf(from, sizeof from, "%s/%s", model, files[i]);
        snprintf(path, sizeof path, "%s/%s", edited, files[i]);
        ck_assert_int_eq(symlink(from, path), 0);
    }
    json_decref(cfg);
    free(model);
    return edited;
}

/* _compute_yarn_parameters' get_mscale. */
static double yarn_mscale(double factor, double mscale) {
    return factor <= 1 ? 1.0 : 0.1 * mscale * log(factor) + 1.0;
}

/* Ministral 3's GGUF as Mistral3Model.Ministral3Model writes it: arch mistral3 (a LlamaModel:
 * q/k rows permuted, vocab_size, rope.dimension_count, key_length for head_dim 12), the yarn
 * keys (type, factor 8, original_context_length 16, betas 32 / 1), yarn_log_multiplier =
 * mscale_all_dim 0.5 and attention.temperature_scale = llama_4_scaling_beta 0.2; no
 * rope.scaling.attn_factor where llama.cpp's attention factor (mscale taken as 1) is already
 * transformers' one, and the ratio where it is not (mscale 0.5); the adapter GGUF of arch
 * mistral3 names blk.N.attn_q lora_a / lora_b (not a copy of the base, as
 * convert_lora_to_gguf.py writes for this arch); truncate false refused. */
START_TEST(test_ministral3_gguf_is_laid_out_as_llamacpp_writes_it) {
    char *dir = test_tmpdir(), path[4400], args[8192], err[1024];
    char *model = tt_repo_path("tests/data/train/ministral3-yarn/model");
    char *adapter = tt_repo_path("tests/data/train/ministral3-yarn/init_adapter");
    Model *m = model_load(model, err, sizeof err);
    ck_assert_msg(m != NULL, "%s", err);
    Lora *lora = lora_load_adapter(m, adapter, err, sizeof err);
    ck_assert_msg(lora != NULL, "%s", err);
    const ModelConfig *c = model_config(m);
    snprintf(path, sizeof path, "%s/m.gguf", dir);
    snprintf(args, sizeof args, "merge --model '%s' --adapter '%s' --out '%s'", model, adapter,
             path);
    tt_expect(dir, args, 0, "arch mistral3");
    TgFile g;
    tg_read(path, &g);
    char *s = tg_str(&g, "general.architecture");
    ck_assert_str_eq(s, "mistral3");
    free(s);
    s = tg_str(&g, "mistral3.rope.scaling.type");
    ck_assert_str_eq(s, "yarn");
    free(s);
    ck_assert_float_eq(tg_f32(&g, "mistral3.rope.scaling.factor"), 8.0f);
    ck_assert_uint_eq(tg_u32(&g, "mistral3.rope.scaling.original_context_length"), 16);
    ck_assert_float_eq(tg_f32(&g, "mistral3.rope.scaling.yarn_beta_fast"), 32.0f);
    ck_assert_float_eq(tg_f32(&g, "mistral3.rope.scaling.yarn_beta_slow"), 1.0f);
    ck_assert_float_eq(tg_f32(&g, "mistral3.rope.scaling.yarn_log_multiplier"), 0.5f);
    ck_assert_float_eq(tg_f32(&g, "mistral3.attention.temperature_scale"), 0.2f);
    ck_assert_float_eq(tg_f32(&g, "mistral3.rope.freq_base"), 100.0f);
    ck_assert_uint_eq(tg_u32(&g, "mistral3.rope.dimension_count"), 12);
    ck_assert_uint_eq(tg_u32(&g, "mistral3.attention.key_length"), 12);
    ck_assert_uint_eq(tg_u32(&g, "mistral3.vocab_size"), 320);
    ck_assert(!tg_kv(&g, "mistral3.rope.scaling.attn_factor"));
    ck_assert(tg_tensor(&g, "output.weight"));
    for (int l = 0; l < c->num_hidden_layers; l++) { /* q rows as LlamaModel.permute puts them */
        int out, in;
        model_module_dims(c, MODULE_Q, &out, &in);
        float *want = malloc((size_t)out * in * sizeof *want);
        merge_linear(m, lora, l, MODULE_Q, want);
        snprintf(path, sizeof path, "blk.%d.attn_q.weight", l);
        uint64_t cnt;
        float *got = tg_floats(tg_tensor(&g, path), &cnt);
        ck_assert_uint_eq(cnt, (uint64_t)out * in);
        int hd = c->head_dim, half = hd / 2;
        for (int r = 0; r < out; r++) {
            int src = r / hd * hd + r % 2 * half + r % hd / 2;
            ck_assert_msg(
                !memcmp(got + (size_t)r * in, want + (size_t)src * in, (size_t)in * sizeof *got),
                "%s row %d", path, r);
        }
        free(got);
        free(want);
    }
    tg_free(&g);
    snprintf(path, sizeof path, "%s/a.gguf", dir);
    snprintf(args, sizeof args, "export '%s' --model '%s' --format gguf --out '%s'", adapter, model,
             path);
    tt_expect(dir, args, 0, "arch mistral3");
    tg_read(path, &g);
    s = tg_str(&g, "general.type");
    ck_assert_str_eq(s, "adapter");
    free(s);
    ck_assert(tg_tensor(&g, "blk.1.attn_q.weight.lora_a") && !tg_tensor(&g, "token_embd.weight"));
    tg_free(&g);
    snprintf(args, sizeof args, "inspect '%s'", model);
    char *out = tt_run_stdout(dir, args);
    ck_assert_msg(strstr(out, "rope_scaling yarn: factor 8, original_max_position_embeddings 16, "
                              "beta_fast 32, beta_slow 1, attention factor 1.09418") &&
                      strstr(out, "query scale 1 + 0.2 ln(1 + floor(position / 16))"),
                  "%s", out);
    free(out);
    /* mscale 0.5 with mscale_all_dim 0.5: transformers' factor is 1, llama.cpp's
     * get_mscale(8, 1) / get_mscale(8, 0.5): the GGUF carries the ratio */
    char *sub = test_tmpdir();
    char *edited = ministral3_with_rope(sub, "mscale", json_real(0.5));
    snprintf(args, sizeof args, "merge --model '%s' --out '%s/e.gguf'", edited, sub);
    tt_expect(sub, args, 0, "arch mistral3");
    snprintf(path, sizeof path, "%s/e.gguf", sub);
    tg_read(path, &g);
    ck_assert_float_eq_tol(tg_f32(&g, "mistral3.rope.scaling.attn_factor"),
                           yarn_mscale(8, 0.5) / yarn_mscale(8, 1), 1e-6);
    tg_free(&g);
    free(edited);
    test_rmtree(sub);
    free(sub);
    sub = test_tmpdir();
    edited = ministral3_with_rope(sub, "truncate", json_false());
    snprintf(args, sizeof args, "merge --model '%s' --out '%s/t.gguf'", edited, sub);
    tt_expect(sub, args, 1, "truncate is false, but llama.cpp always rounds");
    free(edited);
    test_rmtree(sub);
    free(sub);
    lora_free(lora);
    model_free(m);
    free(adapter);
    free(model);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* fixture's model with config.json edits, merged and its adapter exported to GGUF: both
 * refused with `why`. */
static void check_gguf_refused(const char *fixture, json_t *edits, const char *why) {
    char *dir = test_tmpdir(), path[4400], args[8192], edited[4400];
    snprintf(path, sizeof path, "%s/model", fixture);
    char *model = tt_repo_path(path);
    snprintf(path, sizeof path, "%s/init_adapter", fixture);
    char *adapter = tt_repo_path(path);
    snprintf(edited, sizeof edited, "%s/model", dir);
    tt_model_with_config(model, edited, edits);
    json_decref(edits);
    snprintf(args, sizeof args, "merge --model '%s' --out '%s/m.gguf'", edited, dir);
    tt_expect(dir, args, 1, why);
    snprintf(args, sizeof args, "export '%s' --model '%s' --format gguf --out '%s/a.gguf'", adapter,
             edited, dir);
    tt_expect(dir, args, 1, why);
    snprintf(args, sizeof args, "merge --model '%s' --adapter '%s' --out '%s/hf'", edited, adapter,
             dir);
    tt_expect(dir, args, 0, NULL); /* the Hugging Face format holds it */
    free(adapter);
    free(model);
    test_rmtree(dir);
    free(dir);
}

/* Where llama.cpp would compute another model than transformers, the GGUF is refused with
 * the reason: SmolLM3 NoPE layers other than every fourth (llama.cpp hard-codes that), a
 * tied OLMo 2 (llama.cpp's olmo2 needs an output tensor). */
START_TEST(test_gguf_refused_where_llamacpp_computes_another_model) {
    check_gguf_refused("tests/data/train/smollm3-nope",
                       json_pack("{s:[i,i,i,i]}", "no_rope_layers", 1, 0, 1, 1),
                       "layer 1 applies no RoPE (no_rope_layers), but llama.cpp's smollm3 skips");
    check_gguf_refused("tests/data/train/smollm3-nope",
                       json_pack("{s:i}", "no_rope_layer_interval", 2),
                       "layer 1 applies no RoPE (no_rope_layers)");
    json_t *tied = json_pack("{s:b}", "tie_word_embeddings", 1);
    check_gguf_refused("tests/data/train/olmo2-untied", tied,
                       "tie_word_embeddings is true, but llama.cpp's olmo2 needs an output");
}
END_TEST

/* A module Phi-3 does not have is refused by name, with the family's modules. */
START_TEST(test_phi3_refuses_unfused_targets) {
    char *dir = test_tmpdir(), path[4400], extra[8192], args[4400];
    char *model = tt_repo_path("tests/data/train/phi3-window/model");
    snprintf(path, sizeof path, "%s/rows.jsonl", dir);
    tt_random_rows(path, 24, 3, 30, 320, 17);
    snprintf(extra, sizeof extra,
             "lora:\n  target_modules: [q_proj, o_proj]\n"
             "data:\n  train: %s\n  seq_len: 16\n"
             "train:\n  batch_size: 2\n  max_steps: 1\n",
             path);
    char *cfg = tt_write_config(dir, model, extra);
    snprintf(args, sizeof args, "train '%s'", cfg);
    tt_expect(dir, args, 2, /* refused: the usage exit code */
              "Phi3ForCausalLM has no q_proj; its linear modules: o_proj, down_proj, qkv_proj, "
              "gate_up_proj, or all-linear");
    free(cfg);
    free(model);
    test_rmtree(dir);
    free(dir);
}
END_TEST

Suite *families_suite(void) {
    Suite *s = suite_create("families");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 600); /* its checkpointing test: ~30 s, 5x that under ASan */
    tcase_add_test(tc, test_checkpointing_is_byte_identical_f32_and_bf16_packed);
    tcase_add_test(tc, test_eval_generate_merge_export_inspect);
    tcase_add_test(tc, test_merge_gguf_is_laid_out_as_llamacpp_writes_each_arch);
    tcase_add_test(tc, test_phi3_gguf_is_laid_out_as_llamacpp_writes_it);
    tcase_add_test(tc, test_ministral3_gguf_is_laid_out_as_llamacpp_writes_it);
    tcase_add_test(tc, test_phi3_refuses_unfused_targets);
    tcase_add_test(tc, test_gguf_refused_where_llamacpp_computes_another_model);
    suite_add_tcase(s, tc);
    return s;
}
