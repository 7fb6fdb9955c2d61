/* tests/test_gguf_tokenizer.c — a GGUF model's tokenizer (tokenizer.ggml.*) and chat template,
 * read back by train_tokenizer_load: real Hugging Face tokenizers written to GGUF by lorafit's
 * exporter (gguf_vocab_from_json) give the ids of the tokenizer.json they came from on a varied
 * corpus (TinyStories and Alpaca text, unicode, whitespace runs, digits, special tokens written
 * in the text), decode to the same text, and carry the same chat template; files that describe
 * a tokenizer lorafit cannot build are refused naming the key and the file. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tests/test_train_util.h"
#include "tests/test_util.h"
#include "trainer/model/export.h"
#include "trainer/store/store.h"
#include "trainer/train/train.h"

/* Texts the pre-tokenizers and normalizers treat differently. */
static const char *const EDGE_TEXTS[] = {
    "",
    " ",
    "Hello world",
    " Hello  world   ",
    "   leading spaces and trailing   ",
    "tabs\tand\t\tnewlines\n\n\nand\r\nCRLF",
    "a\n \n  \n   b",
    "digits 1 12 123 1234 12345 3.14159 1,000,000 2024-01-01 0x1F",
    "I'm sure you'll see they've done it, WE'LL SEE, Don't",
    "caf\xc3\xa9 na\xc3\xafve r\xc3\xa9sum\xc3\xa9 \xc3\x85ngstr\xc3\xb6m", /* NFC forms */
    "cafe\xcc\x81 combining acute",                                         /* NFD e + U+0301 */
    "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xae\xe6\x96\x87\xe7\xab\xa0",
    "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82 \xd0\xbc\xd0\xb8\xd1\x80",
    "emoji \xf0\x9f\xa4\x97\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd and \xe2\x9c\x93",
    "symbols: <>&$%^*()[]{}|\\/~`@#!?.,;:'\"",
    "<s>Hello</s> and <unk> in text",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>",
    "[INST] question [/INST] answer</s>",
    "def f(x):\n    return x ** 2  # square\n",
    "\xe2\x96\x81"
    "already marked\xe2\x96\x81"
    "spaces",
};

/* Lines of TinyStories' raw text and Alpaca's fields: n texts in total. */
static json_t *corpus(const char *shared, size_t n) {
    json_t *texts = json_array();
    char path[4096];
    snprintf(path, sizeof path, "%s/data/tinystories/raw.txt", shared);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "%s", path);
    char line[8192];
    while (json_array_size(texts) < n / 2 && fgets(line, sizeof line, f))
        json_array_append_new(texts, json_string(line));
    fclose(f);
    snprintf(path, sizeof path, "%s/data/alpaca/raw.json", shared);
    json_t *alpaca = json_load_file(path, 0, NULL);
    ck_assert_msg(json_is_array(alpaca), "%s", path);
    const char *fields[] = {"instruction", "input", "output"};
    for (size_t i = 0; json_array_size(texts) < n && i < json_array_size(alpaca); i++)
        for (int k = 0; k < 3; k++) {
            json_t *v = json_object_get(json_array_get(alpaca, i), fields[k]);
            if (json_is_string(v) && json_string_length(v)) json_array_append(texts, v);
        }
    json_decref(alpaca);
    for (size_t i = 0; i < sizeof EDGE_TEXTS / sizeof *EDGE_TEXTS; i++)
        json_array_append_new(texts, json_string(EDGE_TEXTS[i]));
    return texts;
}

/* dir's tokenizer written to a GGUF file by lorafit's exporter (vocab_size tokens), with
 * tokenizer_config (NULL: dir's tokenizer_config.json). */
static char *export_gguf_as(const char *dir, int vocab_size, const char *tokenizer_config,
                            const char *tmp, bool header);
static char *export_gguf(const char *dir, int vocab_size, const char *tokenizer_config,
                         const char *tmp) {
    return export_gguf_as(dir, vocab_size, tokenizer_config, tmp, false);
}

/* With header, the file also has a llama architecture's header keys (no tensors), enough
 * for llama.cpp to load its vocabulary. */
static char *export_gguf_as(const char *dir, int vocab_size, const char *tokenizer_config,
                            const char *tmp, bool header) {
    char path[4200];
    size_t len, cfg_len;
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    char *tok = test_read_file(path, &len);
    ck_assert_msg(tok != NULL, "%s", path);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    char *cfg = tokenizer_config ? strdup(tokenizer_config) : test_read_file(path, &cfg_len);
    GgufWriter *w = gguf_writer_new();
    char err[1024], *out = malloc(4096);
    ck_assert_ptr_nonnull(w);
    GgufReport rep;
    ck_assert_msg(gguf_vocab_from_json(w, tok, len, cfg, NULL, NULL, vocab_size, "tokenizer.json",
                                       &rep, err, sizeof err) == 0,
                  "%s", err);
    static int serial;
    static const char *const keys[] = {
        "llama.context_length",      "llama.embedding_length",     "llama.block_count",
        "llama.feed_forward_length", "llama.attention.head_count", "llama.attention.head_count_kv",
        "llama.rope.dimension_count"};
    static const uint32_t values[] = {2048, 64, 1, 128, 4, 4, 16};
    for (size_t k = 0; header && k < sizeof keys / sizeof *keys; k++)
        ck_assert_int_eq(gguf_set_u32(w, keys[k], values[k], err, sizeof err), 0);
    if (header) {
        ck_assert_int_eq(gguf_set_str(w, "general.architecture", "llama", err, sizeof err), 0);
        ck_assert_int_eq(
            gguf_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f, err, sizeof err), 0);
    }
    snprintf(out, 4096, "%s/tokenizer%d.gguf", tmp, serial++);
    ck_assert_msg(gguf_writer_save(w, out, err, sizeof err) == 0, "%s", err);
    gguf_writer_free(w);
    free(tok);
    free(cfg);
    return out;
}

/* The ids from a little before `from`. */
static void show_ids(const char *what, const TokenizerIds *ids, size_t from) {
    size_t start = from > 8 ? from - 8 : 0;
    fprintf(stderr, "  %s (from %zu of %zu):", what, start, ids->n);
    for (size_t i = start; i < ids->n && i < start + 24; i++) fprintf(stderr, " %d", ids->ids[i]);
    fprintf(stderr, "\n");
}

/* Every text's ids (with and without special tokens) and decoded text are the same through
 * both tokenizers; returns how many texts were compared. */
static size_t compare(const Tokenizer *hf, const Tokenizer *gg, json_t *texts) {
    TokenizerScratch *sc = tokenizer_scratch_new();
    char err[512];
    int bad = 0;
    for (size_t i = 0; i < json_array_size(texts); i++) {
        json_t *t = json_array_get(texts, i);
        const char *s = json_string_value(t);
        size_t len = json_string_length(t);
        for (int special = 0; special < 2; special++) {
            TokenizerIds a = {0}, b = {0};
            ck_assert_msg(tokenizer_encode(hf, sc, s, len, special, &a, err, sizeof err) == 0, "%s",
                          err);
            ck_assert_msg(tokenizer_encode(gg, sc, s, len, special, &b, err, sizeof err) == 0, "%s",
                          err);
            bool same = a.n == b.n && (a.n == 0 || !memcmp(a.ids, b.ids, a.n * sizeof *a.ids));
            if (!same && bad++ < 5) {
                size_t k = 0;
                while (k < a.n && k < b.n && a.ids[k] == b.ids[k]) k++;
                fprintf(stderr, "text %zu (special %d) \"%.120s\":\n", i, special, s);
                show_ids("tokenizer.json", &a, k);
                show_ids("gguf          ", &b, k);
            }
            char *da = NULL, *db = NULL;
            size_t la, lb;
            ck_assert_int_eq(tokenizer_decode(hf, a.ids, a.n, false, &da, &la, err, sizeof err), 0);
            ck_assert_int_eq(tokenizer_decode(gg, a.ids, a.n, false, &db, &lb, err, sizeof err), 0);
            if ((la != lb || memcmp(da, db, la)) && bad++ < 5)
                fprintf(stderr, "text %zu decodes to \"%s\" and \"%s\"\n", i, da, db);
            free(da);
            free(db);
            tokenizer_ids_free(&a);
            tokenizer_ids_free(&b);
        }
    }
    tokenizer_scratch_free(sc);
    ck_assert_msg(bad == 0, "%d texts tokenize differently (above)", bad);
    return json_array_size(texts);
}

static void check_same_specials(const Tokenizer *hf, const Tokenizer *gg) {
    const TokenizerSpecial *a = tokenizer_special(hf), *b = tokenizer_special(gg);
    ck_assert_int_eq(a->bos_id, b->bos_id);
    ck_assert_int_eq(a->eos_id, b->eos_id);
    ck_assert_str_eq(a->bos_token ? a->bos_token : "(none)",
                     b->bos_token ? b->bos_token : "(none)");
    ck_assert_str_eq(a->eos_token ? a->eos_token : "(none)",
                     b->eos_token ? b->eos_token : "(none)");
    ck_assert_int_eq(!a->chat_template, !b->chat_template);
    if (a->chat_template) ck_assert_str_eq(a->chat_template, b->chat_template);
}

/* The tokenizer in dir (shared/sub, or the repository's sub when repo), through tokenizer.json
 * and through a GGUF of it. */
static void round_trip_in(const char *shared, const char *sub, bool repo, int vocab_size,
                          size_t n_texts) {
    char dir[4096], err[1024];
    snprintf(dir, sizeof dir, "%s/%s", repo ? "." : shared, sub);
    char *tmp = test_tmpdir(), *gguf = export_gguf(dir, vocab_size, NULL, tmp);
    Tokenizer *hf = tokenizer_load(dir, err, sizeof err);
    ck_assert_msg(hf != NULL, "%s", err);
    Tokenizer *gg = train_tokenizer_load(gguf, err, sizeof err);
    ck_assert_msg(gg != NULL, "%s", err);
    check_same_specials(hf, gg);
    json_t *texts = corpus(shared, n_texts);
    ck_assert_uint_ge(compare(hf, gg, texts), n_texts);
    json_decref(texts);
    tokenizer_free(hf);
    tokenizer_free(gg);
    test_rmtree(tmp);
    free(tmp);
    free(gguf);
}

static void round_trip(const char *sub, int vocab_size, size_t n_texts) {
    TEST_NEED_SHARED(shared);
    round_trip_in(shared, sub, false, vocab_size, n_texts);
}

START_TEST(test_llama_spm_stories260k_same_ids) {
    round_trip("models/stories260K", 512, 400); /* remove_extra_whitespaces, byte fallback */
}
END_TEST

START_TEST(test_llama_spm_mistral_same_ids) {
    round_trip("tokenizers/mistral-v0.1", 32000, 300);
}
END_TEST

START_TEST(test_gpt2_llama_bpe_llama3_same_ids_and_template) {
    round_trip("tokenizers/llama3", 128256, 300); /* ignore_merges, BOS, the chat template */
}
END_TEST

START_TEST(test_gpt2_qwen2_nfc_fixture_same_ids) {
    TEST_NEED_SHARED(shared); /* the corpus */
    round_trip_in(shared, "tests/data/train/qwen3-untied/model", true, 320, 200);
}
END_TEST

/* Texts SentencePiece's remove_extra_whitespaces leaves alone (no run of spaces, none at either
 * end of the text or of a piece between special tokens: no "<s>"), of texts. */
static json_t *without_space_runs(json_t *texts) {
    json_t *kept = json_array();
    for (size_t i = 0; i < json_array_size(texts); i++) {
        const char *s = json_string_value(json_array_get(texts, i));
        size_t n = strlen(s);
        if (!strstr(s, "  ") && !(n && (s[0] == ' ' || s[n - 1] == ' ')) && !strstr(s, "<s>"))
            json_array_append(kept, json_array_get(texts, i));
    }
    return kept;
}

/* stories260K's tokenizer as llama.cpp's gguf-py writes it from tokenizer.model, the scores and
 * types SentencePiece's own (tests/reference/make_gguf_vocab.py): tokenizer.json's ids wherever
 * the file can say what tokenizer.json does (it has no remove_extra_whitespaces key, so runs
 * of spaces stay, as in llama.cpp). */
START_TEST(test_llama_spm_written_by_gguf_py_same_ids) {
    TEST_NEED_SHARED(shared);
    char dir[4096], err[1024];
    snprintf(dir, sizeof dir, "%s/models/stories260K", shared);
    Tokenizer *hf = tokenizer_load(dir, err, sizeof err);
    ck_assert_msg(hf != NULL, "%s", err);
    Tokenizer *gg =
        train_tokenizer_load("tests/data/tokenizer/stories260K_gguf_py.gguf", err, sizeof err);
    ck_assert_msg(gg != NULL, "%s", err);
    check_same_specials(hf, gg);
    json_t *all = corpus(shared, 400), *texts = without_space_runs(all);
    ck_assert_uint_ge(compare(hf, gg, texts), 300);
    json_decref(all);
    json_decref(texts);
    tokenizer_free(hf);
    tokenizer_free(gg);
}
END_TEST

/* ---- against llama.cpp's own tokenizer on the same file ---- */

/* Texts llama.cpp tokenizes as transformers does for this tokenizer: it skips Qwen's NFC
 * (no text that NFC changes: the combining accent) and remove_extra_whitespaces. */
static json_t *llamacpp_comparable(json_t *texts, bool nfc, bool squeeze) {
    json_t *kept = squeeze ? without_space_runs(texts) : json_deep_copy(texts), *out = json_array();
    for (size_t i = 0; i < json_array_size(kept); i++) {
        const char *s = json_string_value(json_array_get(kept, i));
        if (!(nfc && strstr(s, "\xcc\x81"))) json_array_append(out, json_array_get(kept, i));
    }
    json_decref(kept);
    return out;
}

/* lorafit's tokenizer of the GGUF (no special tokens added) gives llama.cpp's ids. */
static void same_as_llamacpp(const char *ldir, const char *tmp, const char *gguf, json_t *texts) {
    char path[4300], cmd[16384], err[512];
    snprintf(path, sizeof path, "%s/texts.json", tmp);
    ck_assert_int_eq(json_dump_file(texts, path, 0), 0);
    char root[4096];
    ck_assert_ptr_nonnull(realpath(".", root));
    snprintf(cmd, sizeof cmd, "LLAMACPP_DIR='%s' node '%s/tools/llamacpp_tokenize.mjs' '%s' '%s'",
             ldir, root, gguf, path);
    snprintf(path, sizeof path, "%s/llamacpp.json", tmp);
    ck_assert_msg(test_run(cmd, path) == 0, "%s", cmd);
    char *text = test_read_file(path, NULL);
    const char *json = text ? strstr(text, "[[") : NULL; /* after llama.cpp's log lines */
    json_t *want = json ? json_loads(json, 0, NULL) : NULL;
    ck_assert_msg(json_array_size(want) == json_array_size(texts), "%s", text ? text : "");
    Tokenizer *tok = train_tokenizer_load(gguf, err, sizeof err);
    ck_assert_msg(tok != NULL, "%s", err);
    TokenizerScratch *sc = tokenizer_scratch_new();
    int bad = 0;
    for (size_t i = 0; i < json_array_size(texts); i++) {
        const char *s = json_string_value(json_array_get(texts, i));
        TokenizerIds got = {0}, w = {0};
        ck_assert_int_eq(tokenizer_encode(tok, sc, s, strlen(s), false, &got, err, sizeof err), 0);
        json_t *wi = json_array_get(want, i);
        for (size_t k = 0; k < json_array_size(wi); k++) {
            if (w.n == w.cap) {
                w.cap = w.cap ? 2 * w.cap : 64;
                w.ids = realloc(w.ids, w.cap * sizeof *w.ids);
            }
            w.ids[w.n++] = (int32_t)json_integer_value(json_array_get(wi, k));
        }
        bool same = got.n == w.n && (!w.n || !memcmp(got.ids, w.ids, w.n * sizeof *w.ids));
        if (!same && bad++ < 5) {
            size_t k = 0;
            while (k < got.n && k < w.n && got.ids[k] == w.ids[k]) k++;
            fprintf(stderr, "text %zu \"%.100s\":\n", i, s);
            show_ids("llama.cpp", &w, k);
            show_ids("lorafit  ", &got, k);
        }
        tokenizer_ids_free(&got);
        tokenizer_ids_free(&w);
    }
    ck_assert_msg(bad == 0, "%s: %d of %zu texts tokenize differently in llama.cpp (above)", gguf,
                  bad, json_array_size(texts));
    tokenizer_scratch_free(sc);
    tokenizer_free(tok);
    json_decref(want);
    free(text);
}

START_TEST(test_same_ids_as_llamacpp) {
    TEST_NEED_SHARED(shared);
    char buf[4096], dir[4200];
    const char *why = NULL, *ldir = tt_llamacpp_dir(buf, sizeof buf, &why);
    if (!ldir) {
        test_skip(__func__, why);
        return;
    }
    static const struct {
        const char *sub;
        bool repo;
        int vocab;
        bool nfc, squeeze;
    } cases[] = {
        {"tokenizers/llama3", false, 128256, false, false},
        {"tokenizers/mistral-v0.1", false, 32000, false, false},
        {"models/stories260K", false, 512, false, true},
        {"tests/data/train/qwen3-untied/model", true, 320, true, false},
    };
    json_t *all = corpus(shared, 300);
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        char *tmp = test_tmpdir();
        snprintf(dir, sizeof dir, "%s/%s", cases[c].repo ? "." : shared, cases[c].sub);
        char *gguf = export_gguf_as(dir, cases[c].vocab, NULL, tmp, true);
        json_t *texts = llamacpp_comparable(all, cases[c].nfc, cases[c].squeeze);
        same_as_llamacpp(ldir, tmp, gguf, texts);
        json_decref(texts);
        free(gguf);
        test_rmtree(tmp);
        free(tmp);
    }
    json_decref(all);
}
END_TEST

/* `lorafit CMD` with stdin from in; its stdout (exit code checked). */
static char *run_stdout(const char *tmp, const char *cmd_args, const char *in, int want_rc) {
    char cmd[16384], out[4200];
    snprintf(out, sizeof out, "%s/stdout.txt", tmp);
    snprintf(cmd, sizeof cmd, "'%s' %s < '%s'", test_lorafit_bin(), cmd_args, in);
    int rc = test_run(cmd, out);
    char *text = test_read_file(out, NULL);
    ck_assert_msg(rc == want_rc, "%s: exit %d\n%s", cmd, rc, text ? text : "");
    return text;
}

START_TEST(test_tokenize_command_reads_a_gguf) {
    TEST_NEED_SHARED(shared);
    char *tmp = test_tmpdir(), dir[4096], args[9000];
    snprintf(dir, sizeof dir, "%s/tokenizers/llama3", shared);
    char *gguf = export_gguf(dir, 128256, NULL, tmp);
    char *in = tt_write_text(tmp, "in.jsonl",
                             "{\"text\": \"Hello world <|eot_id|> 12345\"}\n"
                             "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, "
                             "{\"role\": \"user\", \"content\": \"Hi  there\\n\"}], "
                             "\"add_generation_prompt\": true}\n");
    snprintf(args, sizeof args, "tokenize '%s'", dir);
    char *want = run_stdout(tmp, args, in, 0);
    snprintf(args, sizeof args, "tokenize '%s'", gguf);
    char *got = run_stdout(tmp, args, in, 0);
    ck_assert_str_eq(got, want);
    ck_assert_msg(strstr(got, "<|start_header_id|>system") != NULL, "%s", got);
    free(got);
    free(want);
    /* a file that is no GGUF is refused naming it */
    char *junk = tt_write_text(tmp, "junk.gguf", "not a gguf");
    snprintf(args, sizeof args, "tokenize '%s'", junk);
    got = run_stdout(tmp, args, in, 2);
    ck_assert_msg(strstr(got, "junk.gguf") && strstr(got, "not a GGUF file"), "%s", got);
    free(got);
    free(junk);
    free(in);
    free(gguf);
    test_rmtree(tmp);
    free(tmp);
}
END_TEST

/* A chat dataset prepared with data.tokenizer = a GGUF file gives the rows it gives with the
 * directory the GGUF was made from; its chat template is the GGUF's tokenizer.chat_template. */
START_TEST(test_prepare_chat_with_a_gguf_tokenizer) {
    TEST_NEED_SHARED(shared);
    char *tmp = test_tmpdir(), dir[4096], args[16384], path[4300];
    snprintf(dir, sizeof dir, "%s/models/stories260K", shared);
    const char *tcfg = "{\"bos_token\": \"<s>\", \"eos_token\": \"</s>\", \"add_bos_token\": true, "
                       "\"chat_template\": \"{{ bos_token }}{% for m in messages %}[{{ m.role }}]"
                       " {{ m.content }}{{ eos_token }}{% endfor %}\"}";
    char *gguf = export_gguf(dir, 512, tcfg, tmp);
    char *plain = export_gguf(dir, 512, "{}", tmp); /* no chat template */
    /* the same tokenizer as a directory */
    snprintf(path, sizeof path, "%s/tokdir", tmp);
    ck_assert_int_eq(mkdir(path, 0755), 0);
    size_t len;
    snprintf(args, sizeof args, "%s/tokenizer.json", dir);
    char *tok = test_read_file(args, &len);
    ck_assert_ptr_nonnull(tok);
    snprintf(args, sizeof args, "%s/tokenizer.json", path);
    test_write_file(args, tok, len);
    snprintf(args, sizeof args, "%s/tokenizer_config.json", path);
    test_write_file(args, tcfg, strlen(tcfg));
    free(tok);
    char *chat = tt_write_text(
        tmp, "c.jsonl",
        "{\"messages\": [{\"role\": \"user\", \"content\": \"Once upon a time, there was a "
        "cat.\"}, {\"role\": \"assistant\", \"content\": \"The cat  was happy!  \"}]}\n"
        "{\"messages\": [{\"role\": \"user\", \"content\": \"Tell me about Lily.\"}, "
        "{\"role\": \"assistant\", \"content\": \"Lily liked to play in the park with Tom.\"}]}\n");
    char cfg_text[8192];
    snprintf(cfg_text, sizeof cfg_text,
             "model: {path: %s}\ndata: {train: %s, format: chat}\noutput: {dir: %s/out}\n", dir,
             chat, tmp);
    char *cfg = tt_write_text(tmp, "p.yaml", cfg_text);
    const char *tokenizers[2] = {path, gguf};
    char *rows[2];
    for (int i = 0; i < 2; i++) {
        snprintf(args, sizeof args, "prepare '%s' --out '%s/rows%d.jsonl' --set data.tokenizer=%s",
                 cfg, tmp, i, tokenizers[i]);
        tt_expect(tmp, args, 0, "\"format\": \"chat\"");
        char rp[4400];
        snprintf(rp, sizeof rp, "%s/rows%d.jsonl", tmp, i);
        rows[i] = test_read_file(rp, NULL);
        ck_assert_ptr_nonnull(rows[i]);
    }
    ck_assert_str_eq(rows[1], rows[0]);
    ck_assert_msg(strlen(rows[0]) > 200, "%s", rows[0]);
    free(rows[0]);
    free(rows[1]);
    snprintf(args, sizeof args, "prepare '%s' --out '%s/none.jsonl' --set data.tokenizer=%s", cfg,
             tmp, plain);
    tt_expect(tmp, args, 2, "no tokenizer.chat_template in the GGUF file");
    free(cfg);
    free(chat);
    free(plain);
    free(gguf);
    test_rmtree(tmp);
    free(tmp);
}
END_TEST

/* ---- refusals: hand-made tokenizer metadata ---- */

typedef struct Tiny {
    const char *model, *pre; /* NULL: no key */
    bool no_tokens, tokens_as_ints, short_scores;
    const char *bad_merge; /* replaces the second merge */
} Tiny;

/* A tiny gpt2 tokenizer ("a", "b", "c", "ab", "abc", "Ġ", "Ġab", "<|end|>") with the keys
 * Tiny says; its path. */
static char *tiny_gguf(const char *tmp, const char *name, Tiny t) {
    static const char *const tokens[] = {"a",
                                         "b",
                                         "c",
                                         "ab",
                                         "abc",
                                         "\xc4\xa0",
                                         "\xc4\xa0"
                                         "ab",
                                         "<|end|>"};
    static const int32_t types[] = {1, 1, 1, 1, 1, 1, 1, 3};
    const char *merges[] = {"a b", t.bad_merge ? t.bad_merge : "ab c", "\xc4\xa0 ab"};
    float scores[8] = {0};
    char err[512], *path = malloc(4200);
    GgufWriter *w = gguf_writer_new();
    ck_assert_ptr_nonnull(w);
    int rc = 0;
    if (t.model) rc |= gguf_set_str(w, "tokenizer.ggml.model", t.model, err, sizeof err);
    if (t.pre) rc |= gguf_set_str(w, "tokenizer.ggml.pre", t.pre, err, sizeof err);
    if (t.tokens_as_ints)
        rc |= gguf_set_arr_i32(w, "tokenizer.ggml.tokens", types, 8, err, sizeof err);
    else if (!t.no_tokens)
        rc |= gguf_set_arr_str(w, "tokenizer.ggml.tokens", tokens, NULL, 8, err, sizeof err);
    rc |= gguf_set_arr_i32(w, "tokenizer.ggml.token_type", types, 8, err, sizeof err);
    if (t.short_scores)
        rc |= gguf_set_arr_f32(w, "tokenizer.ggml.scores", scores, 3, err, sizeof err);
    rc |= gguf_set_arr_str(w, "tokenizer.ggml.merges", merges, NULL, 3, err, sizeof err);
    rc |= gguf_set_u32(w, "tokenizer.ggml.eos_token_id", 7, err, sizeof err);
    snprintf(path, 4200, "%s/%s.gguf", tmp, name);
    ck_assert_msg(rc == 0 && gguf_writer_save(w, path, err, sizeof err) == 0, "%s", err);
    gguf_writer_free(w);
    return path;
}

/* train_tokenizer_load refuses the file with a message holding each needle (NULL-ended). */
static void expect_refusal(const char *tmp, const char *name, Tiny t, const char *needle1,
                           const char *needle2) {
    char *path = tiny_gguf(tmp, name, t), err[1024];
    Tokenizer *tok = train_tokenizer_load(path, err, sizeof err);
    ck_assert_msg(tok == NULL, "%s: loaded", name);
    ck_assert_msg(strstr(err, path) != NULL, "%s: the message does not name the file: %s", name,
                  err);
    ck_assert_msg(strstr(err, needle1) != NULL, "%s: %s", name, err);
    ck_assert_msg(!needle2 || strstr(err, needle2) != NULL, "%s: %s", name, err);
    free(path);
}

START_TEST(test_tiny_gpt2_tokenizer_and_refusals) {
    char *tmp = test_tmpdir(), err[1024];
    /* the good one: BPE merges, the GPT-2 split, a control token cut out of the text */
    char *path = tiny_gguf(tmp, "good", (Tiny){.model = "gpt2", .pre = "gpt-2"});
    Tokenizer *tok = train_tokenizer_load(path, err, sizeof err);
    ck_assert_msg(tok != NULL, "%s", err);
    TokenizerScratch *sc = tokenizer_scratch_new();
    TokenizerIds ids = {0};
    const char *text = "abc ab<|end|>cab";
    ck_assert_int_eq(tokenizer_encode(tok, sc, text, strlen(text), true, &ids, err, sizeof err), 0);
    const int32_t want[] = {4, 6, 7, 2, 3};
    ck_assert_uint_eq(ids.n, 5);
    ck_assert_mem_eq(ids.ids, want, sizeof want);
    ck_assert_int_eq(tokenizer_special(tok)->eos_id, 7);
    ck_assert_int_eq(tokenizer_token_flags(tok, 7) & TOKENIZER_TOKEN_SPECIAL,
                     TOKENIZER_TOKEN_SPECIAL);
    char *decoded;
    size_t len;
    ck_assert_int_eq(tokenizer_decode(tok, ids.ids, ids.n, false, &decoded, &len, err, sizeof err),
                     0);
    ck_assert_str_eq(decoded, text);
    free(decoded);
    tokenizer_ids_free(&ids);
    tokenizer_scratch_free(sc);
    tokenizer_free(tok);
    free(path);
    /* every pre-tokenizer name lorafit knows builds (its regexes compile) and encodes */
    char names[1024];
    snprintf(names, sizeof names, "%s", tokenizer_pre_names());
    int n_names = 0;
    for (char *save = NULL, *name = strtok_r(names, ", ", &save); name;
         name = strtok_r(NULL, ", ", &save), n_names++) {
        path = tiny_gguf(tmp, "pre", (Tiny){.model = "gpt2", .pre = name});
        tok = train_tokenizer_load(path, err, sizeof err);
        ck_assert_msg(tok != NULL, "%s: %s", name, err);
        sc = tokenizer_scratch_new();
        ck_assert_msg(tokenizer_encode(tok, sc, text, strlen(text), true, &ids, err, sizeof err) ==
                          0,
                      "%s: %s", name, err);
        ck_assert_msg(ids.n >= 5 && ids.ids[ids.n - 3] == 7, "%s: %zu ids", name, ids.n);
        tokenizer_ids_free(&ids);
        tokenizer_scratch_free(sc);
        tokenizer_free(tok);
        free(path);
    }
    ck_assert_int_ge(n_names, 20);
    expect_refusal(tmp, "bert", (Tiny){.model = "bert", .pre = "gpt-2"},
                   "tokenizer.ggml.model 'bert' is not a tokenizer lorafit can build", NULL);
    expect_refusal(tmp, "pre", (Tiny){.model = "gpt2", .pre = "mystery-7b"},
                   "tokenizer.ggml.pre 'mystery-7b' is a pre-tokenizer lorafit does not know",
                   "llama-bpe");
    expect_refusal(tmp, "notokens", (Tiny){.model = "gpt2", .pre = "gpt-2", .no_tokens = true},
                   "no tokenizer.ggml.tokens", NULL);
    expect_refusal(tmp, "inttokens",
                   (Tiny){.model = "gpt2", .pre = "gpt-2", .tokens_as_ints = true},
                   "tokenizer.ggml.tokens must be an array of strings", NULL);
    expect_refusal(tmp, "scores", (Tiny){.model = "llama", .short_scores = true},
                   "tokenizer.ggml.scores has 3 values for 8 tokens", NULL);
    expect_refusal(tmp, "merge", (Tiny){.model = "gpt2", .pre = "gpt-2", .bad_merge = "ab z"},
                   "tokenizer.ggml.merges[1] 'ab z' names 'z', which is not in "
                   "tokenizer.ggml.tokens",
                   NULL);
    expect_refusal(tmp, "join", (Tiny){.model = "gpt2", .pre = "gpt-2", .bad_merge = "b a"},
                   "tokenizer.ggml.merges[1] 'b a'", "joined are not a token");
    expect_refusal(tmp, "nomodel", (Tiny){.pre = "gpt-2"}, "no tokenizer.ggml.model",
                   "carries no tokenizer");
    test_rmtree(tmp);
    free(tmp);
}
END_TEST

Suite *gguf_tokenizer_suite(void) {
    Suite *s = suite_create("gguf_tokenizer");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_llama_spm_stories260k_same_ids);
    tcase_add_test(tc, test_llama_spm_mistral_same_ids);
    tcase_add_test(tc, test_llama_spm_written_by_gguf_py_same_ids);
    tcase_add_test(tc, test_gpt2_llama_bpe_llama3_same_ids_and_template);
    tcase_add_test(tc, test_gpt2_qwen2_nfc_fixture_same_ids);
    tcase_add_test(tc, test_tokenize_command_reads_a_gguf);
    tcase_add_test(tc, test_prepare_chat_with_a_gguf_tokenizer);
    tcase_add_test(tc, test_tiny_gpt2_tokenizer_and_refusals);
    tcase_add_test(tc, test_same_ids_as_llamacpp);
    suite_add_tcase(s, tc);
    return s;
}
