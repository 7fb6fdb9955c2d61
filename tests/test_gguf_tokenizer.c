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

/* dir's tokenizer written to a GGUF file by lorafit's exporter (vocab_size tokens). */
static char *export_gguf(const char *dir, int vocab_size, const char *tmp) {
    char path[4200];
    size_t len, cfg_len;
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    char *tok = test_read_file(path, &len);
    ck_assert_msg(tok != NULL, "%s", path);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    char *cfg = test_read_file(path, &cfg_len);
    GgufWriter *w = gguf_writer_new();
    char err[1024], *out = malloc(4096);
    ck_assert_ptr_nonnull(w);
    GgufReport rep;
    ck_assert_msg(gguf_vocab_from_json(w, tok, len, cfg, NULL, NULL, vocab_size, "tokenizer.json",
                                       &rep, err, sizeof err) == 0,
                  "%s", err);
    snprintf(out, 4096, "%s/tokenizer.gguf", tmp);
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
    ck_assert_str_eq(a->bos_token, b->bos_token);
    ck_assert_str_eq(a->eos_token, b->eos_token);
    ck_assert_int_eq(!a->chat_template, !b->chat_template);
    if (a->chat_template) ck_assert_str_eq(a->chat_template, b->chat_template);
}

/* The tokenizer in shared/sub, through tokenizer.json and through a GGUF of it. */
static void round_trip(const char *sub, int vocab_size, size_t n_texts) {
    TEST_NEED_SHARED(shared);
    char dir[4096], err[1024];
    snprintf(dir, sizeof dir, "%s/%s", shared, sub);
    char *tmp = test_tmpdir(), *gguf = export_gguf(dir, vocab_size, tmp);
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

Suite *gguf_tokenizer_suite(void) {
    Suite *s = suite_create("gguf_tokenizer");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_llama_spm_stories260k_same_ids);
    tcase_add_test(tc, test_llama_spm_mistral_same_ids);
    tcase_add_test(tc, test_gpt2_llama_bpe_llama3_same_ids_and_template);
    suite_add_tcase(s, tc);
    return s;
}
