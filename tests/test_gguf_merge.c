/* tests/test_gguf_merge.c — an adapter merged into a GGUF base (trainer/model/merge_gguf.c,
 * `lorafit merge --format gguf --model FILE.gguf`).
 *
 * On llama-quantize's own mixes (tests/data/gguf_base: Q2_K .. Q6_K tensors, q/k rows in
 * llama.cpp's permuted order), whose every block lorafit's quantizers reproduce from the F32
 * source, with an adapter on q k v gate down (o and up untouched):
 *   - each merged linear is exactly quantize(dequant(W) + s B A) in its own type, computed
 *     here from the file's rows with the Q/K permutation written out independently;
 *   - every other tensor (o, up, token_embd, norms) is byte-identical, and so is the whole
 *     header: every key-value (tokenizer included) and tensor record;
 *   - --dtype f32 holds dequant(W) + s B A itself, and loads back as a GGUF base whose loss
 *     is base + adapter's;
 *   - the command says the merge is lossy and refuses what it cannot do;
 *   - llama.cpp (when node-llama-cpp is there) loads the re-quantized merge and generates. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tensor/tensor.h"
#include "tests/test_gguf_base_util.h"
#include "tests/test_train_util.h"
#include "tests/test_util.h"
#include "trainer/model/lora.h"
#include "trainer/model/model.h"
#include "trainer/store/store.h"

static const char *const fixtures[] = {"Q2_K", "Q3_K_M", "Q4_K_M", "Q5_K_M"};
#define TOUCHED (LORA_Q | LORA_K | LORA_V | LORA_GATE | LORA_DOWN)

static char *fixture_path(const char *name) {
    char rel[256];
    snprintf(rel, sizeof rel, "tests/data/gguf_base/%s.gguf", name);
    return tt_repo_path(rel);
}

/* A LoRA of r 4, alpha 8 (scaling 2) on targets with every A and B random (seeded). */
static Lora *random_lora(const Model *m, unsigned targets) {
    char err[1024];
    LoraSpec spec = {.r = 4, .alpha = 8, .targets = targets};
    Lora *lora = lora_create(m, &spec, err, sizeof err);
    ck_assert_msg(lora != NULL, "%s", err);
    size_t n;
    float *p = lora_params(lora, &n);
    uint64_t rng = 17;
    for (size_t i = 0; i < n; i++) p[i] = test_rand_uniform(&rng, -0.05f, 0.05f);
    return lora;
}

/* "blk.3.attn_k.weight" -> layer 3, MODULE_K; false for any other tensor. */
static bool linear_of(const char *name, int *layer, ModelModule *mod) {
    static const char *const leaves[] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                                         "ffn_gate", "ffn_up", "ffn_down"};
    char leaf[64];
    if (sscanf(name, "blk.%d.%63[a-z_].weight", layer, leaf) != 2) return false;
    for (int k = 0; k < 7; k++)
        if (strcmp(leaf, leaves[k]) == 0) return *mod = (ModelModule)k, true;
    return false;
}

/* dequant(t) + 2 B A in the file's row order, each element's rank sum in double and rounded
 * once: Hugging Face row h*D + j*D/2 + i of q and k is the file's row h*D + 2i + j
 * (convert_hf_to_gguf.py's LlamaModel.permute). */
static float *expected_linear(const Model *m, const Lora *lora, const GgufTensorInfo *t, int layer,
                              ModelModule mod) {
    const int64_t rows = t->ne[1], cols = t->ne[0];
    const size_t row_bytes = ggml_row_bytes(t->type, cols);
    float *w = malloc((size_t)(rows * cols) * sizeof *w);
    for (int64_t r = 0; r < rows; r++)
        ck_assert_int_eq(quant_dequantize_row(t->type, (const uint8_t *)t->data + r * row_bytes,
                                              w + r * cols, cols),
                         0);
    Tensor *A, *B;
    ck_assert(lora_module(lora, layer, mod, &A, &B));
    const ModelConfig *c = model_config(m);
    int heads = mod == MODULE_Q   ? c->num_attention_heads
                : mod == MODULE_K ? c->num_key_value_heads
                                  : 0;
    const int64_t r = A->shape[0];
    for (int64_t o = 0; o < rows; o++) {
        int64_t fr = o;
        if (heads) {
            int64_t hd = rows / heads, half = hd / 2, in = o % hd;
            fr = o / hd * hd + 2 * (in % half) + in / half;
        }
        for (int64_t i = 0; i < cols; i++) {
            double sum = 0.0;
            for (int64_t k = 0; k < r; k++)
                sum += (double)B->data[o * r + k] * (double)A->data[k * cols + i];
            w[fr * cols + i] = (float)((double)w[fr * cols + i] + 2.0 * sum);
        }
    }
    return w;
}

/* The first n bytes of two files are the same. */
static bool same_prefix(const char *a, const char *b, size_t n) {
    size_t la, lb;
    char *x = test_read_file(a, &la), *y = test_read_file(b, &lb);
    bool same = la >= n && lb >= n && memcmp(x, y, n) == 0;
    free(x);
    free(y);
    return same;
}

/* Every fixture: the merged linears re-quantized to their own types as the reference says,
 * the rest byte for byte, the header (metadata, tensor records) unchanged; between them the
 * fixtures re-quantize into each of Q2_K .. Q6_K. */
START_TEST(test_merge_requantizes_each_linear_to_its_type) {
    char *dir = test_tmpdir(), out[4200], err[2048];
    unsigned types_merged = 0;
    for (size_t fx = 0; fx < sizeof fixtures / sizeof fixtures[0]; fx++) {
        char *base = fixture_path(fixtures[fx]);
        snprintf(out, sizeof out, "%s/%s-merged.gguf", dir, fixtures[fx]);
        Model *m = model_load(base, err, sizeof err);
        ck_assert_msg(m != NULL, "%s", err);
        Lora *lora = random_lora(m, TOUCHED);
        GgufReport rep;
        ck_assert_msg(
            gguf_merge_base(m, lora, NULL, true, GGML_TYPE_F32, out, &rep, err, sizeof err) == 0,
            "%s", err);
        ck_assert_int_eq(rep.requantized, 5 * model_config(m)->num_hidden_layers);
        GgufFile *fb = gguf_open(base, err, sizeof err), *fo = gguf_open(out, err, sizeof err);
        ck_assert_msg(fb && fo, "%s", err);
        ck_assert_int_eq(gguf_tensor_total(fo), gguf_tensor_total(fb));
        ck_assert_msg(gguf_data_offset(fo) == gguf_data_offset(fb) &&
                          same_prefix(base, out, gguf_data_offset(fb)),
                      "%s: the header (key-values, tensor records) changed", fixtures[fx]);
        int merged = 0;
        for (int i = 0; i < gguf_tensor_total(fb); i++) {
            const GgufTensorInfo *tb = gguf_tensor_at(fb, i), *to = gguf_tensor_at(fo, i);
            ck_assert_str_eq(tb->name, to->name);
            ck_assert_int_eq(tb->type, to->type);
            ck_assert_uint_eq(tb->nbytes, to->nbytes);
            int layer;
            ModelModule mod;
            if (!linear_of(tb->name, &layer, &mod) || !(TOUCHED & (1u << mod))) {
                ck_assert_msg(memcmp(tb->data, to->data, tb->nbytes) == 0,
                              "%s: %s is not byte-identical", fixtures[fx], tb->name);
                continue;
            }
            float *want = expected_linear(m, lora, tb, layer, mod);
            uint8_t *q = malloc(tb->nbytes);
            size_t row_bytes = ggml_row_bytes(tb->type, tb->ne[0]);
            for (int64_t r = 0; r < tb->ne[1]; r++)
                ck_assert_int_eq(quant_quantize_row(tb->type, want + r * tb->ne[0],
                                                    q + r * row_bytes, tb->ne[0]),
                                 0);
            ck_assert_msg(memcmp(q, to->data, tb->nbytes) == 0,
                          "%s: %s (%s) is not quantize(dequant(W) + s B A)", fixtures[fx], tb->name,
                          ggml_type_name(tb->type));
            ck_assert_msg(memcmp(tb->data, to->data, tb->nbytes) != 0, "%s: %s unchanged",
                          fixtures[fx], tb->name);
            types_merged |= 1u << tb->type;
            merged++;
            free(q);
            free(want);
        }
        ck_assert_int_eq(merged, 5 * model_config(m)->num_hidden_layers);
        gguf_close(fb);
        gguf_close(fo);
        lora_free(lora);
        model_free(m);
        free(base);
    }
    for (int t = GGML_TYPE_Q2_K; t <= GGML_TYPE_Q6_K; t++)
        ck_assert_msg(types_merged & (1u << t), "no %s linear was merged", ggml_type_name(t));
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* What a merge writes back is what llama-quantize would write: the F32 GGUF the fixtures
 * were quantized from, rebuilt as their README says, quantized tensor by tensor with
 * quant_quantize_row, gives every block of every fixture (Q2_K .. Q6_K, 256-wide rows). */
START_TEST(test_quantizers_write_llama_quantize_blocks) {
    char *dir = test_tmpdir(), model[4200], f32[4200], cmd[16384], err[2048];
    snprintf(model, sizeof model, "%s/m", dir);
    snprintf(f32, sizeof f32, "%s/f32.gguf", dir);
    char *tok = tt_repo_path("tests/data/train/qwen3-untied/model");
    snprintf(cmd, sizeof cmd,
             "'%s/make_model' --out '%s' --arch llama --hidden 256 --intermediate 256 --layers 1 "
             "--heads 2 --kv-heads 1 --vocab 320 --seed 31 --dtype f32 --tied && ln -s "
             "'%s/tokenizer.json' '%s/tokenizer_config.json' '%s/'",
             test_tools_dir(), model, tok, tok, model);
    free(tok);
    ck_assert_msg(test_run(cmd, "/dev/null") == 0, "failed: %s", cmd);
    gb_export_f32(model, f32);
    GgufFile *src = gguf_open(f32, err, sizeof err);
    ck_assert_msg(src != NULL, "%s", err);
    unsigned types = 0;
    for (size_t fx = 0; fx < sizeof fixtures / sizeof fixtures[0]; fx++) {
        char *path = fixture_path(fixtures[fx]);
        GgufFile *q = gguf_open(path, err, sizeof err);
        ck_assert_msg(q != NULL, "%s", err);
        for (int i = 0; i < gguf_tensor_total(q); i++) {
            const GgufTensorInfo *t = gguf_tensor_at(q, i), *s = gguf_find_tensor(src, t->name);
            ck_assert_msg(s && s->type == GGML_TYPE_F32, "%s: no F32 source", t->name);
            if (ggml_block_size(t->type) == 1) continue;
            uint8_t *got = malloc(t->nbytes);
            size_t row = ggml_row_bytes(t->type, t->ne[0]);
            for (int64_t r = 0; r < t->ne[1]; r++)
                ck_assert_int_eq(quant_quantize_row(t->type, (const float *)s->data + r * t->ne[0],
                                                    got + r * row, t->ne[0]),
                                 0);
            ck_assert_msg(memcmp(got, t->data, t->nbytes) == 0,
                          "%s: %s (%s) is not llama-quantize's", fixtures[fx], t->name,
                          ggml_type_name(t->type));
            types |= 1u << t->type;
            free(got);
        }
        gguf_close(q);
        free(path);
    }
    for (int t = GGML_TYPE_Q2_K; t <= GGML_TYPE_Q6_K; t++)
        ck_assert_msg(types & (1u << t), "no %s tensor in the fixtures", ggml_type_name(t));
    gguf_close(src);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* The loss of model (with lora when not NULL) on a fixed batch of 2 x 24 ids. */
static double batch_loss(const Model *m, const Lora *lora) {
    enum { B = 2, T = 24 };
    int32_t ids[B * T], targets[B * T];
    uint64_t rng = 3;
    int v = model_config(m)->vocab_size;
    for (int i = 0; i < B * T; i++) ids[i] = (int32_t)(test_rand_u64(&rng) % (uint64_t)v);
    for (int i = 0; i < B * T; i++) targets[i] = i % T == T - 1 ? -100 : ids[i + 1];
    Graph *g = graph_create();
    Tensor *h = model_forward_hidden(m, lora, g, ids, NULL, NULL, B, T, 1);
    int64_t count = 0;
    Tensor *loss = h ? model_loss(m, g, h, targets, &count) : NULL;
    ck_assert_msg(loss != NULL && count > 0, "%s", graph_error(g));
    double l = loss->data[0] / (double)count;
    graph_destroy(g);
    return l;
}

/* --dtype f32: every linear F32 (general.file_type ALL_F32), the merged ones exactly
 * dequant(W) + s B A, the untouched ones exactly dequant(W), the rest byte for byte; the file
 * loads as a GGUF base and its loss is base + adapter's (up to the float rounding of the two
 * ways to compute it). */
START_TEST(test_merge_f32_is_the_exact_sum_and_loads_back) {
    char *dir = test_tmpdir(), out[4200], err[2048];
    char *base = fixture_path("Q4_K_M");
    snprintf(out, sizeof out, "%s/merged-f32.gguf", dir);
    Model *m = model_load(base, err, sizeof err);
    ck_assert_msg(m != NULL, "%s", err);
    Lora *lora = random_lora(m, TOUCHED);
    GgufReport rep;
    ck_assert_msg(
        gguf_merge_base(m, lora, NULL, false, GGML_TYPE_F32, out, &rep, err, sizeof err) == 0, "%s",
        err);
    ck_assert_int_eq(rep.requantized, 0);
    GgufFile *fb = gguf_open(base, err, sizeof err), *fo = gguf_open(out, err, sizeof err);
    ck_assert_msg(fb && fo, "%s", err);
    int64_t ft = -1;
    ck_assert(gguf_kv_int(gguf_find_kv(fo, "general.file_type"), &ft) && ft == 0);
    for (int i = 0; i < gguf_tensor_total(fb); i++) {
        const GgufTensorInfo *tb = gguf_tensor_at(fb, i), *to = gguf_tensor_at(fo, i);
        int layer;
        ModelModule mod;
        if (!linear_of(tb->name, &layer, &mod)) {
            ck_assert_int_eq(tb->type, to->type);
            ck_assert_msg(tb->nbytes == to->nbytes && memcmp(tb->data, to->data, tb->nbytes) == 0,
                          "%s is not byte-identical", tb->name);
            continue;
        }
        ck_assert_msg(to->type == GGML_TYPE_F32, "%s is %s", to->name, ggml_type_name(to->type));
        int64_t n = tb->ne[0] * tb->ne[1];
        float *want = malloc((size_t)n * sizeof *want);
        if (TOUCHED & (1u << mod)) {
            free(want);
            want = expected_linear(m, lora, tb, layer, mod);
        } else {
            ck_assert_int_eq(quant_dequantize_row(tb->type, tb->data, want, n), 0);
        }
        ck_assert_msg(memcmp(want, to->data, (size_t)n * sizeof *want) == 0,
                      "%s: not dequant(W)%s exactly", tb->name,
                      TOUCHED & (1u << mod) ? " + s B A" : "");
        free(want);
    }
    gguf_close(fb);
    gguf_close(fo);
    Model *merged = model_load(out, err, sizeof err);
    ck_assert_msg(merged != NULL, "%s", err);
    double with_adapter = batch_loss(m, lora), folded = batch_loss(merged, NULL);
    ck_assert_msg(fabs(folded - with_adapter) <= 1e-5 * fabs(with_adapter),
                  "merged f32 loss %.9g, base + adapter %.9g", folded, with_adapter);
    ck_assert_msg(fabs(batch_loss(m, NULL) - with_adapter) > 1e-3, "the adapter changes nothing");
    model_free(merged);
    lora_free(lora);
    model_free(m);
    free(base);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* The families whose GGUF layout differs from Hugging Face's beyond the Q/K permutation
 * (Qwen3.5's reordered value heads, Phi-4-mini's fused qkv and gate_up, Gemma 2's norms
 * stored + 1) and Qwen3 (no permutation), as F32 GGUF bases with an adapter on every linear:
 * the merge (F32 kept, so exact) loads back with base + adapter's loss. */
START_TEST(test_merge_keeps_each_family_layout) {
    static const char *const fx[] = {"qwen35-gguf", "phi4mini-longrope", "gemma2-tied",
                                     "qwen3-untied"};
    char *dir = test_tmpdir(), base[4200], out[4200], rel[256], err[2048];
    for (size_t i = 0; i < sizeof fx / sizeof fx[0]; i++) {
        snprintf(rel, sizeof rel, "tests/data/train/%s/model", fx[i]);
        char *model_dir = tt_repo_path(rel);
        snprintf(base, sizeof base, "%s/%s.gguf", dir, fx[i]);
        snprintf(out, sizeof out, "%s/%s-merged.gguf", dir, fx[i]);
        gb_export_f32(model_dir, base);
        Model *m = model_load(base, err, sizeof err);
        ck_assert_msg(m != NULL, "%s: %s", fx[i], err);
        Lora *lora = random_lora(m, LORA_ALL);
        ck_assert_msg(
            gguf_merge_base(m, lora, NULL, true, GGML_TYPE_F32, out, NULL, err, sizeof err) == 0,
            "%s: %s", fx[i], err);
        Model *merged = model_load(out, err, sizeof err);
        ck_assert_msg(merged != NULL, "%s: %s", fx[i], err);
        double with_adapter = batch_loss(m, lora), folded = batch_loss(merged, NULL);
        ck_assert_msg(fabs(folded - with_adapter) <= 1e-5 * fabs(with_adapter),
                      "%s: merged loss %.9g, base + adapter %.9g", fx[i], folded, with_adapter);
        ck_assert_msg(fabs(batch_loss(m, NULL) - with_adapter) > 1e-3, "%s: no change", fx[i]);
        model_free(merged);
        lora_free(lora);
        model_free(m);
        free(model_dir);
    }
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* The command: the base's types by default with the lossy note, the same file as the API
 * writes; --dtype f32 without the note; without an adapter the base's very bytes; what it
 * cannot do refused with exit 2 saying why. */
START_TEST(test_merge_command_on_a_gguf_base) {
    char *dir = test_tmpdir(), adapter[4200], args[16384], err[2048], a[4200], b[4200];
    char *base = fixture_path("Q3_K_M");
    snprintf(adapter, sizeof adapter, "%s/adapter", dir);
    snprintf(a, sizeof a, "%s/api.gguf", dir);
    snprintf(b, sizeof b, "%s/cli.gguf", dir);
    Model *m = model_load(base, err, sizeof err);
    ck_assert_msg(m != NULL, "%s", err);
    Lora *lora = random_lora(m, TOUCHED);
    ck_assert_int_eq(mkdir(adapter, 0755), 0);
    ck_assert_msg(lora_save_peft(lora, adapter, "base", LORA_F32, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(gguf_merge_base(m, lora, NULL, true, GGML_TYPE_F32, a, NULL, err, sizeof err) ==
                      0,
                  "%s", err);
    snprintf(args, sizeof args, "merge --model '%s' --adapter '%s' --out '%s'", base, adapter, b);
    tt_expect(dir, args, 0, "re-quantized (each to its own type): lossy");
    ck_assert_msg(tt_same_bytes(a, b), "the command wrote another file than gguf_merge_base");
    snprintf(args, sizeof args, "merge --model '%s' --adapter '%s' --out '%s/f32.gguf' --dtype f32",
             base, adapter, dir);
    tt_expect(dir, args, 0, "(F32)");
    char *log = tt_log(dir);
    ck_assert_msg(!strstr(log, "lossy"), "%s", log);
    free(log);
    snprintf(args, sizeof args, "merge --model '%s' --out '%s/copy.gguf'", base, dir);
    tt_expect(dir, args, 0, "the base's types");
    snprintf(a, sizeof a, "%s/copy.gguf", dir);
    ck_assert_msg(tt_same_bytes(base, a), "without an adapter the file is not the base's bytes");
    snprintf(args, sizeof args, "merge --model '%s' --adapter '%s' --out '%s/x.gguf' --dtype q4_k",
             base, adapter, dir);
    tt_expect(dir, args, 2, "--dtype must be f32, f16, q8_0 or bf16, not 'q4_k'");
    snprintf(args, sizeof args, "merge --model '%s' --adapter '%s' --out '%s/hf' --format hf", base,
             adapter, dir);
    tt_expect(dir, args, 2, "is a GGUF base: it merges into a GGUF file");
    lora_free(lora);
    model_free(m);
    free(base);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* `lorafit ARGS`-style shell command cmd (in dir), which must succeed: its output. */
static char *run_capture(const char *dir, const char *cmd, const char *name) {
    char out[4400];
    snprintf(out, sizeof out, "%s/%s", dir, name);
    int rc = test_run(cmd, out);
    char *text = test_read_file(out, NULL);
    ck_assert_msg(rc == 0, "%s: exit %d\n%s", cmd, rc, text ? text : "");
    return text;
}

/* llama.cpp (node-llama-cpp; skipped by name without it) on merges into a GGUF base of
 * stories260K whose linears are Q8_0 (F16 where rows of 172 cannot be Q8_0; the base itself
 * made by merge --dtype q8_0 from the F32 GGUF, embeddings F32): the --dtype f32 merge, F32
 * throughout, gives lorafit's greedy ids for base + adapter (64 tokens, exact mode), so
 * llama.cpp reads the merged q/k rows in the order lorafit wrote them; the re-quantized merge
 * loads and generates 64 ids in the vocabulary. */
START_TEST(test_llamacpp_runs_the_merged_gguf) {
    char ldir[4096];
    const char *why = NULL;
    if (!tt_llamacpp_dir(ldir, sizeof ldir, &why)) {
        test_skip(__func__, why);
        return;
    }
    TEST_NEED_SHARED(shared);
    char *dir = test_tmpdir(), err[2048], args[16384];
    snprintf(args, sizeof args, "merge --model '%s/models/stories260K' --out '%s/f32.gguf'", shared,
             dir);
    tt_expect(dir, args, 0, "tokenizer llama");
    snprintf(args, sizeof args, "merge --model '%s/f32.gguf' --out '%s/q8.gguf' --dtype q8_0", dir,
             dir);
    tt_expect(dir, args, 0, "are F16, as llama.cpp's converter does");
    char base[4200], adapter[4200];
    snprintf(base, sizeof base, "%s/q8.gguf", dir);
    snprintf(adapter, sizeof adapter, "%s/adapter", dir);
    Model *m = model_load(base, err, sizeof err);
    ck_assert_msg(m != NULL, "%s", err);
    ck_assert_int_eq(model_weight(m, 0, MODULE_Q)->quant_type, GGML_TYPE_Q8_0);
    Lora *lora = random_lora(m, TOUCHED);
    ck_assert_int_eq(mkdir(adapter, 0755), 0);
    ck_assert_msg(lora_save_peft(lora, adapter, "q8.gguf", LORA_F32, err, sizeof err) == 0, "%s",
                  err);
    lora_free(lora);
    model_free(m);
    snprintf(args, sizeof args, "merge --model '%s' --adapter '%s' --out '%s/mq.gguf'", base,
             adapter, dir);
    tt_expect(dir, args, 0, "lossy");
    snprintf(args, sizeof args, "merge --model '%s' --adapter '%s' --out '%s/mf.gguf' --dtype f32",
             base, adapter, dir);
    tt_expect(dir, args, 0, "adapter merged");
    snprintf(args, sizeof args,
             "'%s' generate --precision f32 --model '%s' --adapter '%s' --prompt-ids 1 -n 64",
             test_lorafit_bin(), base, adapter);
    char *want = run_capture(dir, args, "gen.txt");
    char jobs_text[9000];
    snprintf(jobs_text, sizeof jobs_text, "%s/mf.gguf\t-\t1\t64\n%s/mq.gguf\t-\t1\t64\n", dir, dir);
    char *jobs = tt_write_text(dir, "jobs.tsv", jobs_text);
    const char *root = getenv("LORAFIT_ROOT") ? getenv("LORAFIT_ROOT") : ".";
    snprintf(
        args, sizeof args,
        "LLAMACPP_DIR='%s' LLAMACPP_THREADS=1 node '%s/tools/llamacpp_greedy.mjs' --jobs '%s' 2>&1",
        ldir, root, jobs);
    char *got = run_capture(dir, args, "llamacpp.txt");
    char *nl = strchr(got, '\n');
    ck_assert_msg(nl != NULL, "llama.cpp printed:\n%s", got);
    *nl = '\0';
    ck_assert_msg(strncmp(got, want, strlen(got)) == 0 && strlen(got) + 1 == strlen(want),
                  "the f32 merge in llama.cpp\n%s\nlorafit generate --adapter on the base\n%s", got,
                  want);
    int n = 0;
    for (char *t = strtok(nl + 1, " \n"); t; t = strtok(NULL, " \n"), n++)
        ck_assert_int_lt(atoi(t), 512);
    ck_assert_msg(n == 65, "the re-quantized merge in llama.cpp: %d ids", n);
    free(got);
    free(want);
    free(jobs);
    test_rmtree(dir);
    free(dir);
}
END_TEST

Suite *gguf_merge_suite(void) {
    Suite *s = suite_create("gguf_merge");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_quantizers_write_llama_quantize_blocks);
    tcase_add_test(tc, test_merge_requantizes_each_linear_to_its_type);
    tcase_add_test(tc, test_merge_f32_is_the_exact_sum_and_loads_back);
    tcase_add_test(tc, test_merge_keeps_each_family_layout);
    tcase_add_test(tc, test_merge_command_on_a_gguf_base);
    tcase_add_test(tc, test_llamacpp_runs_the_merged_gguf);
    suite_add_tcase(s, tc);
    return s;
}
