/* tests/test_gemma4_export.c — what leaves lorafit for Gemma 4 (tests/test_gemma4.h's
 * fixtures): merge (HF), folding the per-layer gate and projection, all-linear as PEFT names
 * them, the GGUF adapter and merges, the GGUF export's metadata and tensors
 * (gemma4-e2b-gguf, gemma4-keqv-gguf; test_gguf_llamacpp.c runs them in llama.cpp) and its
 * refusal where llama.cpp would share other layers' K and V, inspect, and the
 * Gemma4ForConditionalGeneration form (its logits the text model's, its merge keeping the
 * towers). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/test_gemma4.h"
#include "tests/test_gguf_reader.h"
#include "tests/test_train_util.h"
#include "tests/test_util.h"
#include "trainer/model/lora.h"
#include "trainer/model/model.h"
#include "trainer/store/store.h"

/* merge --format hf folds the adapter into fixture fx and the merged model generates the
 * adapter's greedy ids; the GGUF exports are refused with the reason and the way out
 * (refusal), or (refusal NULL) the adapter's is written and the merged model's refused for
 * the tokenizer the fixture lacks, the message saying why it cannot be read. */
static void check_merge_of(const char *model_fx, const char *fx, const char *refusal) {
    char *dir = test_tmpdir(), rel[256], args[8192];
    snprintf(rel, sizeof rel, "%s/model", model_fx);
    char *model = tt_repo_path(rel);
    snprintf(rel, sizeof rel, "%s/init_adapter", fx);
    char *adapter = tt_repo_path(rel);
    tt_check_merged_generates(dir, model, adapter, fx);
    snprintf(args, sizeof args, "merge --model '%s' --adapter '%s' --out '%s/m.gguf'", model,
             adapter, dir);
    tt_expect(dir, args, 1,
              refusal ? "--format hf"
                      : "tokenizer.json is needed: llama.cpp loads a model only with its tokenizer "
                        "(");
    if (!refusal) tt_expect(dir, args, 1, "tokenizer.json: cannot open: No such file");
    snprintf(args, sizeof args, "export '%s' --format gguf --model '%s' --out '%s/a.gguf'", adapter,
             model, dir);
    tt_expect(dir, args, refusal ? 1 : 0, refusal ? refusal : "GGUF LoRA adapter");
    free(adapter);
    free(model);
    test_rmtree(dir);
    free(dir);
}

static void check_merge(const char *fx, const char *refusal) {
    check_merge_of(fx, fx, refusal);
}

/* What gemma4-e2b's KV sharing is refused for: layer 4 (full) reads layer 1's K and V in
 * transformers, llama.cpp would take layer 3 (the last before the sharing layers). */
#define E2B_SHARING_REFUSAL                                                                        \
    "layer 4 shares the K and V of layer 1 (the last earlier full layer, as transformers does), "  \
    "but llama.cpp's gemma4 would give it layer 3's"

/* 31B-like: v_proj's delta only on the sliding layers (the full ones have none), the
 * adapter's GGUF written (the model's: gemma4-keqv-gguf, which has a tokenizer); E2B-like: no k/v
 * deltas on the sharing layers, the per-layer tensors copied, the GGUFs refused (its sharing layers
 * read other layers than llama.cpp's would). */
START_TEST(test_merge_hf_generates_the_adapter_ids_and_gguf_is_refused) {
    check_merge(G4, NULL);
    check_merge(E2B, E2B_SHARING_REFUSAL);
}
END_TEST

/* gemma4-e2b-ple's adapter (LoRA on per_layer_input_gate and per_layer_projection too, as
 * PEFT names them): merge --format hf folds those deltas into the per-layer gate and
 * projection, so the merged model generates the reference's adapter ids. */
START_TEST(test_merge_hf_folds_the_per_layer_gate_and_projection) {
    check_merge_of(E2B, E2B "-ple", E2B_SHARING_REFUSAL);
}
END_TEST

/* all-linear on gemma4-wrapper: the adapter wraps every layer's per_layer_input_gate and
 * per_layer_projection too (PEFT's names, under model.language_model.), its target_modules
 * the regex whose parent group is optional, and lorafit reads that adapter back. */
START_TEST(test_all_linear_adapts_the_per_layer_gate_and_projection_as_peft_names_them) {
    char *dir = test_tmpdir(), *model = tt_repo_path(WRAP "/model");
    char *rows = tt_repo_path(WRAP "/train.jsonl"), extra[8192], args[8192], path[4400], err[1024];
    snprintf(extra, sizeof extra,
             "lora:\n  r: 2\n  alpha: 4\n  target_modules: all-linear\n"
             "data:\n  train: %s\n  seq_len: 16\n"
             "train:\n  batch_size: 2\n  max_steps: 1\n",
             rows);
    char *cfg = tt_write_config(dir, model, extra);
    snprintf(args, sizeof args, "train '%s'", cfg);
    tt_expect(dir, args, 0, NULL);
    snprintf(path, sizeof path, "%s/out/adapter/adapter_config.json", dir);
    json_error_t je;
    json_t *ac = json_load_file(path, 0, &je);
    ck_assert_msg(ac != NULL, "%s: %s", path, je.text);
    ck_assert_str_eq(json_string_value(json_object_get(ac, "target_modules")),
                     "model\\.language_model\\.layers\\.[0-9]+\\.((self_attn|mlp)\\.)?(q_proj|"
                     "k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj|per_layer_input_gate|"
                     "per_layer_projection)");
    json_decref(ac);
    snprintf(path, sizeof path, "%s/out/adapter/adapter_model.safetensors", dir);
    SafeTensors *st = st_open(path, err, sizeof err);
    ck_assert_msg(st != NULL, "%s", err);
    /* 7 layers x (gate, projection) + 4 layers x 7 + the 3 KV-sharing layers x 5, A and B */
    ck_assert_int_eq(st_count(st), 2 * (7 * 2 + 4 * 7 + 3 * 5));
    for (int l = 0; l < 7; l++) {
        const char *pre = "base_model.model.model.language_model.layers";
        char name[200];
        snprintf(name, sizeof name, "%s.%d.per_layer_input_gate.lora_A.weight", pre, l);
        const StTensor *a = st_find(st, name);
        ck_assert_msg(a && a->shape[0] == 2 && a->shape[1] == 32, "%s", name);
        snprintf(name, sizeof name, "%s.%d.per_layer_projection.lora_B.weight", pre, l);
        const StTensor *b = st_find(st, name);
        ck_assert_msg(b && b->shape[0] == 32 && b->shape[1] == 2, "%s", name);
    }
    st_close(st);
    snprintf(args, sizeof args,
             "generate --model '%s' --adapter '%s/out/adapter' --prompt-ids '1 2 3' -n 4", model,
             dir);
    tt_expect(dir, args, 0, NULL);
    /* PEFT's all-linear also wraps per_layer_model_projection (before the layers), which
     * lorafit leaves frozen: an adapter that lists it is refused by that name, with the way
     * out, not taken without it */
    char init[4400];
    snprintf(init, sizeof init, "%s/out/adapter/adapter_config.json", dir);
    json_t *cfgj = json_load_file(init, 0, &je);
    ck_assert_ptr_nonnull(cfgj);
    json_t *list =
        json_pack("[sss]", "q_proj", "per_layer_input_gate", "per_layer_model_projection");
    json_object_set_new(cfgj, "target_modules", list);
    ck_assert_int_eq(json_dump_file(cfgj, init, 0), 0);
    json_decref(cfgj);
    snprintf(
        extra, sizeof extra,
        "lora:\n  r: 2\n  alpha: 4\n  target_modules: all-linear\n  init_from: %s/out/adapter\n"
        "data:\n  train: %s\n  seq_len: 16\n"
        "train:\n  batch_size: 2\n  max_steps: 1\n",
        dir, rows);
    char *cfg2 = tt_write_config(dir, model, extra);
    snprintf(args, sizeof args, "train '%s' --set output.dir=%s/out2", cfg2, dir);
    tt_expect(dir, args, 2,
              "target_modules[2] is \"per_layer_model_projection\", which lorafit does not adapt");
    char *log = tt_log(dir);
    ck_assert_msg(strstr(log, "drop that module from target_modules"), "%s", log);
    free(log);
    free(cfg2);
    free(cfg);
    free(rows);
    free(model);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* all-linear on gemma4-e2b-gguf (a model llama.cpp's gemma4 runs as transformers does): the
 * GGUF adapter holds blk.N.inp_gate and blk.N.proj (what llama.cpp adapts, build_lora_mm) with
 * the PEFT adapter's A and B as they are, and merge --format gguf folds their deltas in
 * (W + (alpha / r) B A). The training is test_gguf_llamacpp.c's (F32 precision, seed 12),
 * which runs such an adapter and merge in llama.cpp. */
START_TEST(test_gguf_adapter_and_merges_carry_the_per_layer_gate_and_projection) {
    char *dir = test_tmpdir(), *model = tt_repo_path("tests/data/train/gemma4-e2b-gguf/model");
    char *rows = tt_repo_path("tests/data/train/gemma4-e2b-gguf/train.jsonl");
    char extra[8192], args[8192], path[4400], err[1024];
    snprintf(extra, sizeof extra,
             "lora:\n  r: 4\n  alpha: 8\n  target_modules: all-linear\n"
             "data:\n  train: %s\n  seq_len: 16\n  shuffle: false\n"
             "train:\n  batch_size: 2\n  max_steps: 4\n  lr: 2.0e-2\n  lr_scheduler: constant\n"
             "  precision: f32\n  seed: 12\n",
             rows);
    char *cfg = tt_write_config(dir, model, extra);
    snprintf(args, sizeof args, "train '%s'", cfg);
    tt_expect(dir, args, 0, NULL);
    snprintf(args, sizeof args,
             "merge --model '%s' --adapter '%s/out/adapter' --out '%s/m.gguf' --dtype f32", model,
             dir, dir);
    tt_expect(dir, args, 0, "adapter merged");
    snprintf(args, sizeof args,
             "export '%s/out/adapter' --format gguf --dtype f32 --model '%s' --out '%s/a.gguf'",
             dir, model, dir);
    tt_expect(dir, args, 0, "GGUF LoRA adapter");
    snprintf(path, sizeof path, "%s/out/adapter/adapter_model.safetensors", dir);
    SafeTensors *st = st_open(path, err, sizeof err);
    ck_assert_msg(st != NULL, "%s", err);
    snprintf(path, sizeof path, "%s/a.gguf", dir);
    TgFile f;
    tg_read(path, &f);
    static const char *const peft[2] = {"per_layer_input_gate", "per_layer_projection"},
                             *gguf[2] = {"inp_gate", "proj"};
    for (int l = 0; l < 8; l++)
        for (int k = 0; k < 2; k++)
            for (int ab = 0; ab < 2; ab++) {
                char name[200], want[200];
                snprintf(name, sizeof name, "blk.%d.%s.weight.lora_%c", l, gguf[k], ab ? 'b' : 'a');
                snprintf(want, sizeof want, "base_model.model.model.layers.%d.%s.lora_%c.weight", l,
                         peft[k], ab ? 'B' : 'A');
                const TgTensor *t = tg_tensor(&f, name);
                const StTensor *src = st_find(st, want);
                ck_assert_msg(t && src, "%s or %s missing", name, want);
                /* ggml's ne is (columns, rows) */
                ck_assert(t->ne[0] == (uint64_t)src->shape[1] &&
                          t->ne[1] == (uint64_t)src->shape[0]);
                ck_assert_int_eq(src->shape[ab ? 0 : 1],
                                 k == ab ? 32 : 8); /* gate 32 -> 8, proj 8 -> 32 */
                uint64_t n;
                float *got = tg_floats(t, &n), *ref = malloc((size_t)src->numel * sizeof *ref);
                ck_assert(st_to_float(src, ref, err, sizeof err) == 0 && n == (uint64_t)src->numel);
                ck_assert_msg(memcmp(got, ref, n * sizeof *got) == 0, "%s differs from %s", name,
                              want);
                free(got);
                free(ref);
            }
    /* m.gguf's blk.N.inp_gate / proj: W + (alpha / r) B A of the base and the adapter */
    snprintf(path, sizeof path, "%s/m.gguf", dir);
    TgFile mf;
    tg_read(path, &mf);
    snprintf(path, sizeof path, "%s/model.safetensors", model);
    SafeTensors *base = st_open(path, err, sizeof err);
    ck_assert_msg(base != NULL, "%s", err);
    for (int l = 0; l < 8; l++)
        for (int k = 0; k < 2; k++) {
            char name[200], an[200], bn[200];
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, peft[k]);
            snprintf(an, sizeof an, "base_model.model.model.layers.%d.%s.lora_A.weight", l,
                     peft[k]);
            snprintf(bn, sizeof bn, "base_model.model.model.layers.%d.%s.lora_B.weight", l,
                     peft[k]);
            const StTensor *w = st_find(base, name), *ta = st_find(st, an), *tb = st_find(st, bn);
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, gguf[k]);
            const TgTensor *t = tg_tensor(&mf, name);
            ck_assert_msg(w && ta && tb && t, "%s", name);
            int64_t rows = w->shape[0], cols = w->shape[1], r = ta->shape[0];
            float *fw = malloc((size_t)(rows * cols) * sizeof *fw),
                  *fa = malloc((size_t)(r * cols) * sizeof *fa),
                  *fb = malloc((size_t)(rows * r) * sizeof *fb);
            ck_assert(st_to_float(w, fw, err, sizeof err) == 0 &&
                      st_to_float(ta, fa, err, sizeof err) == 0 &&
                      st_to_float(tb, fb, err, sizeof err) == 0);
            uint64_t n;
            float *got = tg_floats(t, &n);
            ck_assert(n == (uint64_t)(rows * cols));
            double delta = 0, off = 0;
            for (int64_t o = 0; o < rows; o++)
                for (int64_t i = 0; i < cols; i++) {
                    double d = 0;
                    for (int64_t j = 0; j < r; j++) d += (double)fb[o * r + j] * fa[j * cols + i];
                    double want = fw[o * cols + i] + 8.0 / 4.0 * d;
                    delta = fmax(delta, fabs(d));
                    off = fmax(off, fabs(got[o * cols + i] - want));
                }
            ck_assert_msg(delta > 1e-3 && off < 1e-6, "%s: delta %g, off by %g", name, delta, off);
            free(got);
            free(fw);
            free(fa);
            free(fb);
        }
    st_close(base);
    tg_free(&mf);
    tg_free(&f);
    st_close(st);
    free(cfg);
    free(rows);
    free(model);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* A uint32 array's element i (the typed getters know int32 only). */
static uint32_t arr_u32(const TgFile *f, const char *key, int i) {
    const TgKv *kv = tg_kv(f, key);
    ck_assert_msg(kv && kv->type == 9 && kv->arr_type == 4 && (uint64_t)i < kv->n, "%s", key);
    uint32_t v;
    memcpy(&v, kv->val + 4 * i, 4);
    return v;
}

/* The GGUF of gemma4-e2b-gguf (layers S F S S F S S F, the last 3 sharing layer 3's and
 * layer 4's K and V, as llama.cpp reads them) holds what convert_hf_to_gguf.py's Gemma4Model
 * writes: the full layers' head size 32 as key / value length and RoPE dimensions, the
 * sliding layers' 16 as the _swa keys, the MLP widths per layer (doubled on the sharing
 * ones), the sliding layers as a list of flags, the window, both RoPE bases, the sharing
 * layers, the per-layer input width and its tensors (the table's rows the checkpoint's),
 * rope_freqs 1 for the 4 turning pairs and 1e30 for the 12 still ones, no k/v in the sharing
 * layers; gemma4-keqv-gguf's KV heads per layer (2 sliding, 1 full) and no v in its full
 * layers. */
START_TEST(test_gguf_holds_what_the_converter_writes) {
    char *dir = test_tmpdir(), args[8192], path[4400], err[1024];
    char *model = tt_repo_path("tests/data/train/gemma4-e2b-gguf/model");
    snprintf(args, sizeof args, "merge --model '%s' --out '%s/e.gguf'", model, dir);
    tt_expect(dir, args, 0, "arch gemma4");
    snprintf(path, sizeof path, "%s/e.gguf", dir);
    TgFile f;
    tg_read(path, &f);
    ck_assert_uint_eq(tg_u32(&f, "gemma4.attention.key_length"), 32);
    ck_assert_uint_eq(tg_u32(&f, "gemma4.attention.value_length"), 32);
    ck_assert_uint_eq(tg_u32(&f, "gemma4.attention.key_length_swa"), 16);
    ck_assert_uint_eq(tg_u32(&f, "gemma4.attention.value_length_swa"), 16);
    ck_assert_uint_eq(tg_u32(&f, "gemma4.rope.dimension_count"), 32);
    ck_assert_uint_eq(tg_u32(&f, "gemma4.rope.dimension_count_swa"), 16);
    ck_assert_uint_eq(tg_u32(&f, "gemma4.attention.head_count_kv"), 1);
    ck_assert_uint_eq(tg_u32(&f, "gemma4.attention.sliding_window"), 5);
    ck_assert_uint_eq(tg_u32(&f, "gemma4.attention.shared_kv_layers"), 3);
    ck_assert_uint_eq(tg_u32(&f, "gemma4.embedding_length_per_layer_input"), 8);
    ck_assert(tg_f32(&f, "gemma4.rope.freq_base") == 1e6f);
    ck_assert(tg_f32(&f, "gemma4.rope.freq_base_swa") == 1e4f);
    ck_assert(tg_f32(&f, "gemma4.final_logit_softcapping") == 5.0f);
    const TgKv *swa = tg_kv(&f, "gemma4.attention.sliding_window_pattern");
    ck_assert(swa && swa->type == 9 && swa->arr_type == 7 && swa->n == 8);
    for (int l = 0; l < 8; l++) {
        ck_assert_int_eq(swa->val[l], l != 1 && l != 4 && l != 7);
        ck_assert_uint_eq(arr_u32(&f, "gemma4.feed_forward_length", l), l < 5 ? 24 : 48);
        char name[64];
        snprintf(name, sizeof name, "blk.%d.attn_k.weight", l);
        ck_assert_int_eq(tg_tensor(&f, name) != NULL, l < 5);
        snprintf(name, sizeof name, "blk.%d.layer_output_scale.weight", l);
        ck_assert(tg_tensor(&f, name) && tg_tensor(&f, name)->ne[0] == 1);
    }
    const TgTensor *rf = tg_tensor(&f, "rope_freqs.weight");
    uint64_t n;
    float *v = tg_floats(rf, &n);
    ck_assert_uint_eq(n, 16);
    for (int i = 0; i < 16; i++) ck_assert(v[i] == (i < 4 ? 1.0f : 1e30f));
    free(v);
    const TgTensor *t = tg_tensor(&f, "per_layer_token_embd.weight");
    ck_assert(t && t->n_dims == 2 && t->ne[0] == 64 && t->ne[1] == 320);
    v = tg_floats(t, &n);
    snprintf(path, sizeof path, "%s/model.safetensors", model);
    SafeTensors *st = st_open(path, err, sizeof err);
    ck_assert_msg(st != NULL, "%s", err);
    const StTensor *table = st_find(st, "model.embed_tokens_per_layer.weight");
    ck_assert(table && table->dtype == ST_F32 && (uint64_t)table->nbytes == n * sizeof(float));
    ck_assert(memcmp(v, table->data, table->nbytes) == 0);
    free(v);
    st_close(st);
    t = tg_tensor(&f, "per_layer_model_proj.weight");
    ck_assert(t && t->ne[0] == 32 && t->ne[1] == 64);
    t = tg_tensor(&f, "per_layer_proj_norm.weight");
    ck_assert(t && t->n_dims == 1 && t->ne[0] == 8);
    t = tg_tensor(&f, "blk.0.inp_gate.weight");
    ck_assert(t && t->ne[0] == 32 && t->ne[1] == 8);
    t = tg_tensor(&f, "blk.0.proj.weight");
    ck_assert(t && t->ne[0] == 8 && t->ne[1] == 32);
    ck_assert(tg_tensor(&f, "blk.0.post_norm.weight") != NULL);
    tg_free(&f);
    free(model);
    model = tt_repo_path("tests/data/train/gemma4-keqv-gguf/model");
    snprintf(args, sizeof args, "merge --model '%s' --out '%s/k.gguf'", model, dir);
    tt_expect(dir, args, 0, "arch gemma4");
    snprintf(path, sizeof path, "%s/k.gguf", dir);
    tg_read(path, &f);
    for (int l = 0; l < 5; l++) {
        bool full = l == 2 || l == 4;
        ck_assert_uint_eq(arr_u32(&f, "gemma4.attention.head_count_kv", l), full ? 1 : 2);
        char name[64];
        snprintf(name, sizeof name, "blk.%d.attn_v.weight", l);
        ck_assert_int_eq(tg_tensor(&f, name) != NULL, !full);
    }
    ck_assert_uint_eq(tg_u32(&f, "gemma4.embedding_length_per_layer_input"), 0);
    ck_assert(tg_tensor(&f, "per_layer_token_embd.weight") == NULL);
    tg_free(&f);
    free(model);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* inspect names what Gemma 4's layers hold beyond the shared keys. */
START_TEST(test_inspect_shows_the_gemma4_layers) {
    char *dir = test_tmpdir(), *model = tt_repo_path(E2B "/model"), args[4400];
    snprintf(args, sizeof args, "inspect '%s'", model);
    char *out = tt_run_stdout(dir, args);
    ck_assert_msg(strstr(out, "model Gemma4ForCausalLM (gemma4_text)") &&
                      strstr(out, "full layers: head_dim 32, kv_heads 1, RoPE proportional, "
                                  "0.25 of the frequencies") &&
                      strstr(out, "per-layer inputs of 8 per layer (table of 97 rows)") &&
                      strstr(out, "the last 3 layers reuse earlier layers' K and V, their MLP "
                                  "twice as wide"),
                  "%s", out);
    free(out);
    free(model);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* gemma4-wrapper: gemma4-e2b's decoder as Gemma4ForConditionalGeneration holds it (under
 * model.language_model., text_config) beside bf16 vision and audio tensors. The decoder is
 * the text model's to the bit (the wrapper soft-caps too), and merge writes every tensor
 * outside the language model back byte-identical in its own dtype, whatever --dtype. */
START_TEST(test_wrapper_is_the_text_model_and_merge_keeps_the_towers) {
    int64_t n_text, n_wrap;
    float *text = tt_fixed_batch_logits(E2B "/model", NULL, 97, &n_text),
          *wrap = tt_fixed_batch_logits(WRAP "/model", NULL, 97, &n_wrap);
    ck_assert(n_text == n_wrap && memcmp(text, wrap, (size_t)n_text * sizeof *text) == 0);
    free(text);
    free(wrap);
    char *dir = test_tmpdir(), *model = tt_repo_path(WRAP "/model"), args[8192], path[4400];
    char *adapter = tt_repo_path(WRAP "/init_adapter"), err[1024];
    snprintf(args, sizeof args, "merge --model '%s' --adapter '%s' --out '%s/m' --dtype f32", model,
             adapter, dir);
    tt_expect(dir, args, 0, NULL);
    snprintf(path, sizeof path, "%s/model.safetensors", model);
    SafeTensors *src = st_open(path, err, sizeof err);
    snprintf(path, sizeof path, "%s/m/model.safetensors", dir);
    SafeTensors *dst = st_open(path, err, sizeof err);
    ck_assert_msg(src && dst, "%s", err);
    int towers = 0;
    for (int i = 0; i < st_count(src); i++) {
        const StTensor *a = st_tensor_at(src, i), *b = st_find(dst, a->name);
        ck_assert_msg(b != NULL, "merge dropped %s", a->name);
        if (!strncmp(a->name, "model.language_model.", 21)) continue;
        towers++;
        ck_assert_msg(a->dtype == ST_BF16 && b->dtype == ST_BF16 && a->nbytes == b->nbytes &&
                          !memcmp(a->data, b->data, a->nbytes),
                      "%s changed", a->name);
    }
    ck_assert_int_eq(towers, 5);
    ck_assert_int_eq(st_count(dst), st_count(src));
    st_close(src);
    st_close(dst);
    free(adapter);
    free(model);
    test_rmtree(dir);
    free(dir);
    check_merge(WRAP, E2B_SHARING_REFUSAL);
}
END_TEST

Suite *gemma4_export_suite(void) {
    Suite *s = suite_create("gemma4_export");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_merge_hf_generates_the_adapter_ids_and_gguf_is_refused);
    tcase_add_test(tc, test_merge_hf_folds_the_per_layer_gate_and_projection);
    tcase_add_test(tc, test_all_linear_adapts_the_per_layer_gate_and_projection_as_peft_names_them);
    tcase_add_test(tc, test_gguf_adapter_and_merges_carry_the_per_layer_gate_and_projection);
    tcase_add_test(tc, test_gguf_holds_what_the_converter_writes);
    tcase_add_test(tc, test_inspect_shows_the_gemma4_layers);
    tcase_add_test(tc, test_wrapper_is_the_text_model_and_merge_keeps_the_towers);
    suite_add_tcase(s, tc);
    return s;
}
