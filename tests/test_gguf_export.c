/* tests/test_gguf_export.c — the GGUF files of an adapter and of a model say what llama.cpp's
 * converters would write: llama.cpp's tensor names and shapes, LlamaModel's Q/K permutation
 * (on the B matrices of an adapter), the alpha that gives llama.cpp lorafit's rsLoRA
 * scaling, and tokenizer metadata equal to what SentencePiece's own tokenizer.model holds. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/test_gguf_reader.h"
#include "tests/test_util.h"
#include "trainer/model/model.h"
#include "trainer/store/store.h"

static void root_path(char *out, size_t len, const char *rel) {
    const char *root = getenv("LORAFIT_ROOT");
    snprintf(out, len, "%s/%s", root ? root : ".", rel);
}

/* B's rows in llama.cpp's order, written from the definition of LlamaModel.permute:
 * reshape(n_head, 2, rows/n_head/2, cols).swapaxes(1, 2). */
static float permuted(const float *b, int64_t rows, int64_t cols, int heads, int64_t r, int64_t c) {
    int64_t hd = rows / heads, half = hd / 2, h = r / hd, i = r % hd / 2, j = r % 2;
    return b[(h * hd + j * half + i) * cols + c];
}

static void check_adapter(const char *fixture, int perm_q, int perm_k, float want_alpha) {
    char dir[4200], cfgp[4400], adapter[4300], err[1024];
    root_path(dir, sizeof dir, fixture);
    snprintf(cfgp, sizeof cfgp, "%s/model/config.json", dir);
    snprintf(adapter, sizeof adapter, "%s/init_adapter", dir);
    ModelConfig cfg;
    ck_assert_msg(hf_config_load(cfgp, &cfg, err, sizeof err) == 0, "%s", err);
    char *tmp = test_tmpdir(), out[4300];
    snprintf(out, sizeof out, "%s/a.gguf", tmp);
    GgufReport rep;
    ck_assert_msg(
        gguf_export_adapter(adapter, &cfg, "model", GGML_TYPE_F32, out, &rep, err, sizeof err) == 0,
        "%s", err);
    TgFile f;
    tg_read(out, &f);
    char *s = tg_str(&f, "general.type");
    ck_assert_str_eq(s, "adapter");
    free(s);
    s = tg_str(&f, "adapter.type");
    ck_assert_str_eq(s, "lora");
    free(s);
    s = tg_str(&f, "general.architecture");
    /* llama.cpp's arch is the model_type but for Mistral's */
    ck_assert_str_eq(s, !strcmp(cfg.model_type, "mistral") ? "llama" : cfg.model_type);
    free(s);
    ck_assert_float_eq_tol(tg_f32(&f, "adapter.lora.alpha"), want_alpha, 1e-6);
    LoraSpec spec;
    ck_assert(lora_read_peft_spec(adapter, &cfg, &spec, err, sizeof err) == 0);
    snprintf(cfgp, sizeof cfgp, "%s/adapter_model.safetensors", adapter);
    SafeTensors *st = st_open(cfgp, err, sizeof err);
    ck_assert(st);
    static const char *const gg[] = {"attn_q", "attn_k",   "attn_v",   "attn_output", "ffn_gate",
                                     "ffn_up", "ffn_down", "attn_qkv", "ffn_up"};
    int found = 0;
    for (int l = 0; l < cfg.num_hidden_layers; l++)
        for (int m = 0; m < MODULE_COUNT; m++) {
            if (!(model_modules(&cfg) & (1u << m))) continue;
            char name[96], peft[160];
            snprintf(name, sizeof name, "blk.%d.%s.weight.lora_b", l, gg[m]);
            const TgTensor *tb = tg_tensor(&f, name);
            if (!(spec.targets & (1u << m))) {
                ck_assert_msg(!tb, "%s written for an untargeted module", name);
                continue;
            }
            name[strlen(name) - 1] = 'a';
            const TgTensor *ta = tg_tensor(&f, name);
            ck_assert_msg(ta && tb, "%s missing", name);
            int out_dim, in_dim;
            model_module_dims(&cfg, (ModelModule)m, &out_dim, &in_dim);
            ck_assert(ta->ne[0] == (uint64_t)in_dim && ta->ne[1] == (uint64_t)spec.r);
            ck_assert(tb->ne[0] == (uint64_t)spec.r && tb->ne[1] == (uint64_t)out_dim);
            for (int ab = 0; ab < 2; ab++) {
                snprintf(peft, sizeof peft, "base_model.model.model.layers.%d.%s.lora_%c.weight", l,
                         model_module_path((ModelModule)m), ab ? 'B' : 'A');
                const StTensor *src = st_find(st, peft);
                ck_assert(src);
                float *want = malloc((size_t)src->numel * sizeof *want);
                st_to_float(src, want, err, sizeof err);
                uint64_t n;
                float *got = tg_floats(ab ? tb : ta, &n);
                int heads = ab && m == MODULE_Q ? perm_q : ab && m == MODULE_K ? perm_k : 0;
                for (int64_t r = 0; r < src->shape[0]; r++)
                    for (int64_t c = 0; c < src->shape[1]; c++) {
                        float w = heads ? permuted(want, src->shape[0], src->shape[1], heads, r, c)
                                        : want[r * src->shape[1] + c];
                        ck_assert_msg(got[r * src->shape[1] + c] == w, "%s[%lld,%lld]", peft,
                                      (long long)r, (long long)c);
                    }
                free(got);
                free(want);
            }
            found += 2;
        }
    ck_assert_int_eq(found, f.n_tensors);
    ck_assert_int_eq(rep.tensors, f.n_tensors);
    st_close(st);
    tg_free(&f);
    test_rmtree(tmp);
    free(tmp);
}

START_TEST(test_adapter_gguf_names_shapes_and_llama_permutation) {
    /* Llama, 4 heads / 1 kv head, targets k, o, gate, up; alpha 8 as written */
    check_adapter("tests/data/train/llama-bf16-tied", 4, 1, 8.0f);
}
END_TEST

START_TEST(test_adapter_gguf_qwen2_rslora_alpha_gives_lorafit_scaling) {
    /* Qwen2: no permutation; rsLoRA r 2, alpha 4: llama.cpp's alpha / r must be 4 / sqrt(2) */
    check_adapter("tests/data/train/qwen2-untied", 0, 0, (float)(4.0 / sqrt(2.0) * 2.0));
}
END_TEST

START_TEST(test_adapter_gguf_smollm3_olmo2_granite) {
    /* SmolLM3 and Granite permute q/k as LlamaModel does; OLMo 2 does not; Granite rsLoRA */
    check_adapter("tests/data/train/smollm3-nope", 4, 2, 8.0f);
    check_adapter("tests/data/train/olmo2-untied", 0, 0, 8.0f);
    check_adapter("tests/data/train/granite-untied", 4, 1, (float)(8.0 / sqrt(4.0) * 4.0));
}
END_TEST

START_TEST(test_adapter_gguf_qwen3_names_without_permutation) {
    /* Qwen3: arch qwen3, no permutation, all seven modules, alpha 8 */
    check_adapter("tests/data/train/qwen3-untied", 0, 0, 8.0f);
    check_adapter("tests/data/train/qwen3-bias-tied", 0, 0, (float)(4.0 / sqrt(2.0) * 2.0));
}
END_TEST

/* ---- a model: stories260K against its own tokenizer.model -------------------------- */

typedef struct {
    char piece[64];
    float score;
    int type;
} SpPiece;

/* The pieces of a SentencePiece ModelProto (field 1: piece 1, score 2, type 3). */
static int read_sentencepiece(const char *path, SpPiece *out, int max) {
    size_t len;
    uint8_t *b = (uint8_t *)test_read_file(path, &len);
    ck_assert(b);
    size_t i = 0;
    int n = 0;
#define VARINT(v)                                                                                  \
    do {                                                                                           \
        v = 0;                                                                                     \
        for (int sh = 0;; sh += 7) {                                                               \
            uint8_t c_ = b[i++];                                                                   \
            v |= (uint64_t)(c_ & 0x7f) << sh;                                                      \
            if (c_ < 0x80) break;                                                                  \
        }                                                                                          \
    } while (0)
    while (i < len) {
        uint64_t key, l;
        VARINT(key);
        if ((key & 7) == 0) {
            VARINT(l);
            continue;
        }
        if ((key & 7) == 5) {
            i += 4;
            continue;
        }
        if ((key & 7) == 1) {
            i += 8;
            continue;
        }
        VARINT(l);
        size_t end = i + l;
        if (key >> 3 == 1 && n < max) {
            SpPiece *p = &out[n++];
            p->type = 1;
            p->score = 0;
            while (i < end) {
                uint64_t k2, v;
                VARINT(k2);
                if ((k2 & 7) == 2) {
                    VARINT(v);
                    snprintf(p->piece, sizeof p->piece, "%.*s", (int)v, (char *)b + i);
                    i += v;
                } else if ((k2 & 7) == 5) {
                    memcpy(&p->score, b + i, 4);
                    i += 4;
                } else {
                    VARINT(v);
                    p->type = (int)v;
                }
            }
        }
        i = end;
    }
#undef VARINT
    free(b);
    return n;
}

START_TEST(test_model_gguf_of_stories260K_matches_converter_layout) {
    TEST_NEED_SHARED(shared);
    char mdir[4200], err[1024];
    snprintf(mdir, sizeof mdir, "%s/models/stories260K", shared);
    Model *m = model_load(mdir, err, sizeof err);
    ck_assert_msg(m, "%s", err);
    char *tmp = test_tmpdir(), out[4300], q8[4300];
    snprintf(out, sizeof out, "%s/m.gguf", tmp);
    snprintf(q8, sizeof q8, "%s/q8.gguf", tmp);
    GgufReport rep;
    ck_assert_msg(
        gguf_export_model(m, NULL, mdir, NULL, GGML_TYPE_F32, out, &rep, err, sizeof err) == 0,
        "%s", err);
    TgFile f;
    tg_read(out, &f);
    ck_assert_uint_eq(tg_u32(&f, "llama.block_count"), 5);
    ck_assert_uint_eq(tg_u32(&f, "llama.embedding_length"), 64);
    ck_assert_uint_eq(tg_u32(&f, "llama.feed_forward_length"), 172);
    ck_assert_uint_eq(tg_u32(&f, "llama.attention.head_count"), 8);
    ck_assert_uint_eq(tg_u32(&f, "llama.attention.head_count_kv"), 4);
    ck_assert_uint_eq(tg_u32(&f, "llama.rope.dimension_count"), 8);
    ck_assert_uint_eq(tg_u32(&f, "llama.context_length"), 512);
    ck_assert_uint_eq(tg_u32(&f, "llama.vocab_size"), 512);
    ck_assert_float_eq(tg_f32(&f, "llama.rope.freq_base"), 10000.0f);
    ck_assert_float_eq(tg_f32(&f, "llama.attention.layer_norm_rms_epsilon"), 1e-5f);
    ck_assert_uint_eq(tg_u32(&f, "general.file_type"), 0);
    ck_assert_uint_eq(tg_u32(&f, "general.quantization_version"), 2);
    ck_assert_uint_eq(tg_u32(&f, "tokenizer.ggml.bos_token_id"), 1);
    ck_assert_uint_eq(tg_u32(&f, "tokenizer.ggml.eos_token_id"), 2);
    ck_assert_uint_eq(tg_u32(&f, "tokenizer.ggml.unknown_token_id"), 0);
    ck_assert_int_eq(tg_bool(&f, "tokenizer.ggml.add_bos_token"), 1);
    ck_assert_int_eq(tg_bool(&f, "tokenizer.ggml.add_eos_token"), 0);
    char *s = tg_str(&f, "tokenizer.ggml.model");
    ck_assert_str_eq(s, "llama");
    free(s);
    s = tg_str(&f, "tokenizer.ggml.pre");
    ck_assert_str_eq(s, "default");
    free(s);
    /* Tokens, scores and types as _create_vocab_sentencepiece makes them from tokenizer.model
     * (added_tokens_decoder marking 0, 1, 2 CONTROL with score -1000). */
    static SpPiece sp[600];
    char spm[4300];
    snprintf(spm, sizeof spm, "%s/tokenizer.model", mdir);
    int n = read_sentencepiece(spm, sp, 600);
    ck_assert_int_eq(n, 512);
    ck_assert_int_eq(tg_arr_n(&f, "tokenizer.ggml.tokens"), 512);
    for (int i = 0; i < n; i++) {
        char *tok = tg_arr_str(&f, "tokenizer.ggml.tokens", (uint64_t)i);
        ck_assert_msg(!strcmp(tok, sp[i].piece), "token %d: %s vs %s", i, tok, sp[i].piece);
        free(tok);
        int type =
            sp[i].type == 2 ? 1 : sp[i].type; /* SentencePiece: 1 normal 2 unk 3 ctrl 6 byte */
        float score = sp[i].score;
        if (i < 3)
            type = 3, score = -1000.0f;
        else if (sp[i].type == 2)
            type = 2;
        ck_assert_msg(tg_arr_i32(&f, "tokenizer.ggml.token_type", (uint64_t)i) == type,
                      "type of %d", i);
        ck_assert_msg(tg_arr_f32(&f, "tokenizer.ggml.scores", (uint64_t)i) == score, "score of %d",
                      i);
    }
    /* 2 + 5 * 9 tensors, no output.weight (tied); attn_q permuted with 8 heads, attn_k 4 */
    ck_assert_int_eq(f.n_tensors, 47);
    ck_assert(tg_tensor(&f, "output.weight") == NULL);
    const TgTensor *tq = tg_tensor(&f, "blk.3.attn_q.weight"),
                   *tk = tg_tensor(&f, "blk.3.attn_k.weight");
    ck_assert(tq && tk && tq->ne[0] == 64 && tq->ne[1] == 64 && tk->ne[1] == 32);
    const Tensor *wq = model_weight(m, 3, MODULE_Q), *wk = model_weight(m, 3, MODULE_K);
    uint64_t cnt;
    float *gq = tg_floats(tq, &cnt), *gk = tg_floats(tk, &cnt);
    for (int64_t r = 0; r < 64; r++)
        for (int64_t c = 0; c < 64; c++) {
            ck_assert(gq[r * 64 + c] == permuted(wq->data, 64, 64, 8, r, c));
            if (r < 32) ck_assert(gk[r * 64 + c] == permuted(wk->data, 32, 64, 4, r, c));
        }
    free(gq);
    free(gk);
    tg_free(&f);
    /* Q8_0: matrices of 64-wide rows quantized, ffn_down (rows of 172) F16, norms F32 */
    ck_assert_msg(
        gguf_export_model(m, NULL, mdir, NULL, GGML_TYPE_Q8_0, q8, &rep, err, sizeof err) == 0,
        "%s", err);
    ck_assert_int_eq(rep.fell_back_f16, 5);
    tg_read(q8, &f);
    ck_assert_uint_eq(tg_u32(&f, "general.file_type"), 7);
    ck_assert_int_eq(tg_tensor(&f, "blk.0.attn_v.weight")->type, GGML_TYPE_Q8_0);
    ck_assert_int_eq(tg_tensor(&f, "token_embd.weight")->type, GGML_TYPE_Q8_0);
    ck_assert_int_eq(tg_tensor(&f, "blk.0.ffn_down.weight")->type, GGML_TYPE_F16);
    ck_assert_int_eq(tg_tensor(&f, "blk.0.ffn_norm.weight")->type, GGML_TYPE_F32);
    tg_free(&f);
    model_free(m);
    test_rmtree(tmp);
    free(tmp);
}
END_TEST

/* ---- byte-level BPE ------------------------------------------------------------ */

static const char *BYTE_LEVEL =
    "{\"added_tokens\": [{\"id\": 5, \"content\": \"<|begin_of_text|>\", \"special\": true},"
    " {\"id\": 6, \"content\": \"<|eot_id|>\", \"special\": true},"
    " {\"id\": 7, \"content\": \"my\\u2581word\", \"special\": false}],"
    " \"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\","
    " \"pattern\": {\"Regex\": "
    "\"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|"
    "\\\\p{N}{1,3}| "
    "?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+\"},"
    " \"behavior\": \"Isolated\", \"invert\": false}, {\"type\": \"ByteLevel\", \"use_regex\": "
    "false}]},"
    " \"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": "
    "{\"id\":"
    " \"<|begin_of_text|>\"}}, {\"Sequence\": {\"id\": \"A\"}}]},"
    " \"model\": {\"type\": \"BPE\", \"ignore_merges\": true, \"vocab\": {\"a\": 0, \"b\": 1,"
    " \"ab\": 2, \"\\u0120a\": 3, \"a b\": 4}, \"merges\": [[\"a\", \"b\"], [\"\\u0120\", \"a\"],"
    " [\"a\", \" b\"]]}}";

/* The tokenizer metadata of BYTE_LEVEL with tokenizer_config.json text tcfg and the template
 * files (NULL: none), written to a GGUF in a fresh directory (*tmp, caller removes) and read
 * back into f. */
static void vocab_gguf(const char *tcfg, const GgufTemplateFiles *files, GgufReport *rep,
                       char **tmp, TgFile *f) {
    char out[4300], err[1024];
    *tmp = test_tmpdir();
    snprintf(out, sizeof out, "%s/v.gguf", *tmp);
    GgufWriter *w = gguf_writer_new();
    ck_assert_msg(gguf_vocab_from_json(w, BYTE_LEVEL, strlen(BYTE_LEVEL), tcfg, NULL, files, 10,
                                       "t.json", rep, err, sizeof err) == 0,
                  "%s", err);
    ck_assert_int_eq(gguf_writer_save(w, out, err, sizeof err), 0);
    gguf_writer_free(w);
    tg_read(out, f);
}

START_TEST(test_byte_level_vocab_names_pre_tokenizer_and_encodes_merges) {
    const char *tcfg = "{\"bos_token\": \"<|begin_of_text|>\", \"eos_token\": \"<|eot_id|>\","
                       " \"chat_template\": \"{{ messages }}\"}";
    char *tmp;
    GgufReport rep;
    TgFile f;
    vocab_gguf(tcfg, NULL, &rep, &tmp, &f);
    char *s = tg_str(&f, "tokenizer.ggml.model");
    ck_assert_str_eq(s, "gpt2");
    free(s);
    s = tg_str(&f, "tokenizer.ggml.pre");
    ck_assert_str_eq(s, "llama-bpe");
    free(s);
    s = tg_str(&f, "tokenizer.chat_template");
    ck_assert_str_eq(s, "{{ messages }}");
    free(s);
    ck_assert(tg_kv(&f, "tokenizer.ggml.scores") == NULL);
    ck_assert_int_eq(tg_arr_n(&f, "tokenizer.ggml.tokens"), 10);
    const char *want[10] = {"a",
                            "b",
                            "ab",
                            "\xc4\xa0"
                            "a",
                            "a b",
                            "<|begin_of_text|>",
                            "<|eot_id|>",
                            "my word",
                            "[PAD8]",
                            "[PAD9]"};
    const int types[10] = {1, 1, 1, 1, 1, 3, 3, 4, 5, 5};
    for (int i = 0; i < 10; i++) {
        s = tg_arr_str(&f, "tokenizer.ggml.tokens", (uint64_t)i);
        ck_assert_str_eq(s, want[i]);
        free(s);
        ck_assert_int_eq(tg_arr_i32(&f, "tokenizer.ggml.token_type", (uint64_t)i), types[i]);
    }
    /* merges in the old "a b" form, a space inside a part as U+0120 */
    ck_assert_int_eq(tg_arr_n(&f, "tokenizer.ggml.merges"), 3);
    s = tg_arr_str(&f, "tokenizer.ggml.merges", 2);
    ck_assert_str_eq(s, "a \xc4\xa0"
                        "b");
    free(s);
    ck_assert_uint_eq(tg_u32(&f, "tokenizer.ggml.bos_token_id"), 5);
    ck_assert_uint_eq(tg_u32(&f, "tokenizer.ggml.eos_token_id"), 6);
    ck_assert_int_eq(tg_bool(&f, "tokenizer.ggml.add_bos_token"), 1);
    tg_free(&f);
    test_rmtree(tmp);
    free(tmp);
}
END_TEST

/* Named chat templates as gguf-py writes them: "default" as tokenizer.chat_template, the rest
 * as tokenizer.chat_template.NAME (names in [A-Za-z0-9_]) listed in tokenizer.chat_templates.
 * chat_template.jinja replaces tokenizer_config.json's templates, named ones included, and
 * additional_chat_templates' files add theirs, as lorafit's tokenizer reads them for training. */
static void expect_templates(const char *tcfg, const GgufTemplateFiles *files, const char *def,
                             const char *const *names, const char *const *texts, int n) {
    char *tmp;
    TgFile f;
    vocab_gguf(tcfg, files, NULL, &tmp, &f);
    char *s = tg_str(&f, "tokenizer.chat_template");
    ck_assert_str_eq(s, def);
    free(s);
    if (n == 0) ck_assert(tg_kv(&f, "tokenizer.chat_templates") == NULL);
    if (n > 0) ck_assert_int_eq(tg_arr_n(&f, "tokenizer.chat_templates"), n);
    for (int i = 0; i < n; i++) {
        s = tg_arr_str(&f, "tokenizer.chat_templates", (uint64_t)i);
        ck_assert_str_eq(s, names[i]);
        free(s);
        char key[128];
        snprintf(key, sizeof key, "tokenizer.chat_template.%s", names[i]);
        s = tg_str(&f, key);
        ck_assert_str_eq(s, texts[i]);
        free(s);
    }
    ck_assert(tg_kv(&f, "tokenizer.chat_template.default") == NULL);
    tg_free(&f);
    test_rmtree(tmp);
    free(tmp);
}

START_TEST(test_named_chat_templates_from_config_and_files) {
    const char *tcfg = "{\"chat_template\": [{\"name\": \"default\", \"template\": \"CFG\"},"
                       " {\"name\": \"tool_use\", \"template\": \"CFG-TOOL\"}]}";
    const char *cfg_names[] = {"tool_use"}, *cfg_texts[] = {"CFG-TOOL"};
    expect_templates(tcfg, NULL, "CFG", cfg_names, cfg_texts, 1);
    char *names[] = {"rag", "tool-use"}, *texts[] = {"R", "T"};
    GgufTemplateFiles files = {.jinja = "J", .names = names, .texts = texts, .n = 2};
    const char *want_names[] = {"rag", "tool_use"}, *want_texts[] = {"R", "T"};
    expect_templates(tcfg, &files, "J", want_names, want_texts, 2);
    GgufTemplateFiles named_only = {.names = names, .texts = texts, .n = 2};
    const char *all_names[] = {"tool_use", "rag"}, *all_texts[] = {"CFG-TOOL", "R"};
    expect_templates(tcfg, &named_only, "CFG", all_names, all_texts, 2);
    GgufTemplateFiles jinja_only = {.jinja = "J"};
    expect_templates("{\"chat_template\": \"CFG\"}", &jinja_only, "J", NULL, NULL, 0);
}
END_TEST

/* The files themselves, read from the model directory by the model's GGUF export. */
START_TEST(test_model_gguf_carries_the_template_files) {
    TEST_NEED_SHARED(shared);
    char src[4200], dir_path[4300], path[4400], err[1024];
    snprintf(src, sizeof src, "%s/models/stories260K", shared);
    char *tmp = test_tmpdir();
    snprintf(dir_path, sizeof dir_path, "%s/model", tmp);
    ck_assert_int_eq(mkdir(dir_path, 0755), 0);
    const char *linked[] = {"config.json", "model.safetensors", "tokenizer.json", "tokenizer.model",
                            "tokenizer_config.json"};
    for (int i = 0; i < 5; i++) {
        char from[4400];
        snprintf(from, sizeof from, "%s/%s", src, linked[i]);
        snprintf(path, sizeof path, "%s/%s", dir_path, linked[i]);
        ck_assert_int_eq(symlink(from, path), 0);
    }
    snprintf(path, sizeof path, "%s/chat_template.jinja", dir_path);
    test_write_file(path, "{{ messages }}", 14);
    snprintf(path, sizeof path, "%s/additional_chat_templates", dir_path);
    ck_assert_int_eq(mkdir(path, 0755), 0);
    const char *files[] = {"tool_use.jinja", "rag.jinja", "notes.txt"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/additional_chat_templates/%s", dir_path, files[i]);
        test_write_file(path, files[i], strlen(files[i]));
    }
    Model *m = model_load(dir_path, err, sizeof err);
    ck_assert_msg(m, "%s", err);
    snprintf(path, sizeof path, "%s/m.gguf", tmp);
    GgufReport rep;
    ck_assert_msg(
        gguf_export_model(m, NULL, dir_path, NULL, GGML_TYPE_F32, path, &rep, err, sizeof err) == 0,
        "%s", err);
    model_free(m);
    TgFile f;
    tg_read(path, &f);
    char *s = tg_str(&f, "tokenizer.chat_template");
    ck_assert_str_eq(s, "{{ messages }}");
    free(s);
    ck_assert_int_eq(tg_arr_n(&f, "tokenizer.chat_templates"), 2);
    const char *names[] = {"rag", "tool_use"};
    for (int i = 0; i < 2; i++) {
        s = tg_arr_str(&f, "tokenizer.chat_templates", (uint64_t)i);
        ck_assert_str_eq(s, names[i]);
        free(s);
        char key[128], want[64];
        snprintf(key, sizeof key, "tokenizer.chat_template.%s", names[i]);
        snprintf(want, sizeof want, "%s.jinja", names[i]);
        s = tg_str(&f, key);
        ck_assert_str_eq(s, want);
        free(s);
    }
    tg_free(&f);
    test_rmtree(tmp);
    free(tmp);
}
END_TEST

START_TEST(test_vocab_llama_cpp_cannot_represent_is_a_clear_error) {
    char err[1024];
    GgufWriter *w = gguf_writer_new();
    const char *unigram = "{\"model\": {\"type\": \"Unigram\", \"vocab\": [[\"a\", 0.0]]}}";
    ck_assert_int_eq(gguf_vocab_from_json(w, unigram, strlen(unigram), NULL, NULL, NULL, 4,
                                          "u.json", NULL, err, sizeof err),
                     -1);
    ck_assert_msg(strstr(err, "u.json") && strstr(err, "Unigram"), "%s", err);
    const char *odd =
        "{\"pre_tokenizer\": {\"type\": \"Whitespace\"}, \"model\": {\"type\": \"BPE\","
        " \"vocab\": {\"a\": 0}, \"merges\": []}}";
    ck_assert_int_eq(gguf_vocab_from_json(w, odd, strlen(odd), NULL, NULL, NULL, 4, "w.json", NULL,
                                          err, sizeof err),
                     -1);
    ck_assert_msg(strstr(err, "pre_tokenizer") && strstr(err, "Whitespace"), "%s", err);
    const char *big =
        "{\"model\": {\"type\": \"BPE\", \"byte_fallback\": true, \"vocab\": {\"a\": 9}}}";
    ck_assert_int_eq(gguf_vocab_from_json(w, big, strlen(big), NULL, NULL, NULL, 4, "b.json", NULL,
                                          err, sizeof err),
                     -1);
    ck_assert_msg(strstr(err, "id 9"), "%s", err);
    ck_assert_int_eq(
        gguf_vocab_from_json(w, "[1", 2, NULL, NULL, NULL, 4, "x.json", NULL, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "x.json:"), "%s", err);
    gguf_writer_free(w);
}
END_TEST

Suite *gguf_export_suite(void) {
    Suite *s = suite_create("gguf_export");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_adapter_gguf_names_shapes_and_llama_permutation);
    tcase_add_test(tc, test_adapter_gguf_qwen2_rslora_alpha_gives_lorafit_scaling);
    tcase_add_test(tc, test_adapter_gguf_qwen3_names_without_permutation);
    tcase_add_test(tc, test_adapter_gguf_smollm3_olmo2_granite);
    tcase_add_test(tc, test_model_gguf_of_stories260K_matches_converter_layout);
    tcase_add_test(tc, test_byte_level_vocab_names_pre_tokenizer_and_encodes_merges);
    tcase_add_test(tc, test_named_chat_templates_from_config_and_files);
    tcase_add_test(tc, test_model_gguf_carries_the_template_files);
    tcase_add_test(tc, test_vocab_llama_cpp_cannot_represent_is_a_clear_error);
    suite_add_tcase(s, tc);
    return s;
}
