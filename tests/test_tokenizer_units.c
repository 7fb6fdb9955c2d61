/* tests/test_tokenizer_units.c — the tokenizer's components one at a time, on tiny inline
 * tokenizer.json texts: each Split behaviour and invert, Metaspace's prepend schemes, Digits,
 * added-token lstrip/rstrip/single_word, normalizers, TemplateProcessing single and pair,
 * decoders (byte fallback to U+FFFD), streaming decode, the config files, the exporter
 * accessors, the errors for unsupported or malformed input, and encoding from two threads.
 *
 * Most tests use ignore_merges with a vocabulary holding the pieces a step should produce:
 * a piece in the vocabulary is one token, anything else falls apart into characters, so the
 * token strings joined with '|' show exactly where the pipeline cut the text. */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/tokenizer/tokenizer.h"
#include "tests/test_util.h"

static const char *const CHARS[] = {"a",
                                    "b",
                                    "c",
                                    "d",
                                    "e",
                                    "f",
                                    "g",
                                    "h",
                                    "i",
                                    "j",
                                    "k",
                                    "l",
                                    "m",
                                    "n",
                                    "o",
                                    "p",
                                    "q",
                                    "r",
                                    "s",
                                    "t",
                                    "u",
                                    "v",
                                    "w",
                                    "x",
                                    "y",
                                    "z",
                                    "H",
                                    "-",
                                    " ",
                                    ",",
                                    ".",
                                    "!",
                                    "0",
                                    "1",
                                    "2",
                                    "3",
                                    "4",
                                    "5",
                                    "6",
                                    "7",
                                    "8",
                                    "9",
                                    "\xE2\x96\x81",
                                    "\xCC\x81",
                                    NULL};

/* A tokenizer.json: the characters above plus `pieces` (NULL-terminated) as the vocabulary,
 * and the given component JSON texts ("null" when absent). */
static char *tiny_json(const char *const *pieces, const char *normalizer, const char *pretok,
                       const char *post, const char *decoder, const char *added,
                       const char *model_extra) {
    size_t cap = 1 << 16, len = 0;
    char *s = malloc(cap);
    len += (size_t)snprintf(s + len, cap - len,
                            "{\"version\":\"1.0\",\"added_tokens\":[%s],\"normalizer\":%s,"
                            "\"pre_tokenizer\":%s,\"post_processor\":%s,\"decoder\":%s,"
                            "\"model\":{\"type\":\"BPE\",\"ignore_merges\":true,%s\"vocab\":{",
                            added ? added : "", normalizer ? normalizer : "null",
                            pretok ? pretok : "null", post ? post : "null",
                            decoder ? decoder : "null", model_extra ? model_extra : "");
    int id = 0;
    for (int i = 0; CHARS[i]; i++)
        len += (size_t)snprintf(s + len, cap - len, "%s\"%s\":%d", id ? "," : "", CHARS[i], id),
            id++;
    for (int i = 0; pieces && pieces[i]; i++)
        len += (size_t)snprintf(s + len, cap - len, ",\"%s\":%d", pieces[i], id++);
    snprintf(s + len, cap - len, "},\"merges\":[]}}");
    return s;
}

static Tokenizer *tiny(const char *const *pieces, const char *normalizer, const char *pretok,
                       const char *post, const char *decoder, const char *added) {
    char *json = tiny_json(pieces, normalizer, pretok, post, decoder, added, NULL);
    char err[512];
    Tokenizer *t = tokenizer_load_json(json, strlen(json), err, sizeof err);
    ck_assert_msg(t, "%s", err);
    free(json);
    return t;
}

/* The tokens of encode(text) joined with '|'. Static buffer. */
static const char *pieces_of(const Tokenizer *t, const char *text, bool special) {
    static char out[4096];
    TokenizerScratch *sc = tokenizer_scratch_new();
    TokenizerIds ids = {0};
    char err[512];
    ck_assert_msg(tokenizer_encode(t, sc, text, strlen(text), special, &ids, err, sizeof err) == 0,
                  "%s", err);
    out[0] = 0;
    for (size_t i = 0; i < ids.n; i++) {
        size_t len;
        const char *s = tokenizer_id_to_token(t, ids.ids[i], &len);
        ck_assert(s);
        if (i) strcat(out, "|");
        strncat(out, s, len);
    }
    tokenizer_ids_free(&ids);
    tokenizer_scratch_free(sc);
    return out;
}

static const char *SPLIT_PIECES[] = {"the",    "final",  "countdown",  "--", "the-",
                                     "final-", "-final", "-countdown", NULL};

static void check_split(const char *pattern, const char *behavior, bool invert, const char *want) {
    char pre[256];
    snprintf(pre, sizeof pre,
             "{\"type\":\"Split\",\"pattern\":%s,\"behavior\":\"%s\",\"invert\":%s}", pattern,
             behavior, invert ? "true" : "false");
    Tokenizer *t = tiny(SPLIT_PIECES, NULL, pre, NULL, NULL, NULL);
    ck_assert_str_eq(pieces_of(t, "the-final--countdown", false), want);
    tokenizer_free(t);
}

START_TEST(test_split_behaviours_cut_as_documented) {
    const char *dash = "{\"String\":\"-\"}";
    check_split(dash, "Removed", false, "the|final|countdown");
    check_split(dash, "Isolated", false, "the|-|final|-|-|countdown");
    check_split(dash, "MergedWithPrevious", false, "the-|final-|-|countdown");
    check_split(dash, "MergedWithNext", false, "the|-final|-|-countdown");
    check_split(dash, "Contiguous", false, "the|-|final|--|countdown");
    /* invert: the regex matches the words, so the dashes are the delimiters */
    check_split("{\"Regex\":\"[a-z]+\"}", "Removed", true, "the|final|countdown");
    /* the text between two regex matches is one span: "--" stays whole */
    check_split("{\"Regex\":\"[a-z]+\"}", "Isolated", true, "the|-|final|--|countdown");
}
END_TEST

START_TEST(test_metaspace_prepend_schemes) {
    static const char *pieces[] = {"\xE2\x96\x81Hey", "Hey", "\xE2\x96\x81you", "you", "<s>", NULL};
    const char *added = "{\"id\":0,\"content\":\"<s>\",\"special\":true,\"normalized\":false}";
    const char *fmt = "{\"type\":\"Metaspace\",\"replacement\":\"\xE2\x96\x81\",\"prepend_scheme\":"
                      "\"%s\",\"split\":true}";
    char pre[200];
    snprintf(pre, sizeof pre, fmt, "always");
    Tokenizer *t = tiny(pieces, NULL, pre, NULL, NULL, added);
    ck_assert_str_eq(pieces_of(t, "Hey you", false), "\xE2\x96\x81Hey|\xE2\x96\x81you");
    ck_assert_str_eq(pieces_of(t, "Hey<s>you", false), "\xE2\x96\x81Hey|<s>|\xE2\x96\x81you");
    tokenizer_free(t);
    snprintf(pre, sizeof pre, fmt, "first"); /* only the piece at the start of the text */
    t = tiny(pieces, NULL, pre, NULL, NULL, added);
    ck_assert_str_eq(pieces_of(t, "Hey<s>you", false), "\xE2\x96\x81Hey|<s>|you");
    ck_assert_str_eq(pieces_of(t, "<s>Hey", false), "<s>|Hey");
    tokenizer_free(t);
    snprintf(pre, sizeof pre, fmt, "never");
    t = tiny(pieces, NULL, pre, NULL, NULL, added);
    ck_assert_str_eq(pieces_of(t, "Hey you", false), "Hey|\xE2\x96\x81you");
    tokenizer_free(t);
}
END_TEST

START_TEST(test_digits_contiguous_and_individual) {
    static const char *pieces[] = {"abc", "123", "de", NULL};
    Tokenizer *t =
        tiny(pieces, NULL, "{\"type\":\"Digits\",\"individual_digits\":false}", NULL, NULL, NULL);
    ck_assert_str_eq(pieces_of(t, "abc123de4", false), "abc|123|de|4");
    tokenizer_free(t);
    t = tiny(pieces, NULL, "{\"type\":\"Digits\",\"individual_digits\":true}", NULL, NULL, NULL);
    ck_assert_str_eq(pieces_of(t, "abc123de4", false), "abc|1|2|3|de|4");
    tokenizer_free(t);
}
END_TEST

START_TEST(test_added_tokens_lstrip_rstrip_single_word) {
    static const char *pieces[] = {"a ", " b", NULL};
    Tokenizer *t = tiny(pieces, NULL, NULL, NULL, NULL,
                        "{\"id\":0,\"content\":\"[M]\",\"lstrip\":true,\"rstrip\":true,\"special\":"
                        "true,\"normalized\":false},"
                        "{\"id\":0,\"content\":\"[N]\",\"special\":true,\"normalized\":false},"
                        "{\"id\":0,\"content\":\"hi\",\"single_word\":true,\"special\":false,"
                        "\"normalized\":false}");
    ck_assert_str_eq(pieces_of(t, "a [M] b", false), "a|[M]|b");   /* spaces go with [M] */
    ck_assert_str_eq(pieces_of(t, "a [N] b", false), "a |[N]| b"); /* and stay without strips */
    ck_assert_str_eq(pieces_of(t, "hi chip hi!", false), "hi| |c|h|i|p| |hi|!");
    /* the added ids follow the vocabulary, in tokenizer.json order */
    int32_t m = tokenizer_token_to_id(t, "[M]", 3), h = tokenizer_token_to_id(t, "hi", 2);
    ck_assert_int_eq(h, m + 2);
    ck_assert_int_eq(tokenizer_token_flags(t, m), TOKENIZER_TOKEN_ADDED | TOKENIZER_TOKEN_SPECIAL |
                                                      TOKENIZER_TOKEN_LSTRIP |
                                                      TOKENIZER_TOKEN_RSTRIP);
    ck_assert_int_eq(tokenizer_token_flags(t, h),
                     TOKENIZER_TOKEN_ADDED | TOKENIZER_TOKEN_SINGLE_WORD);
    tokenizer_free(t);
}
END_TEST

START_TEST(test_normalizers_lowercase_strip_replace_nfkc_nfd) {
    static const char *pieces[] = {"hello", "\xE2\x96\x81hello", "fi", NULL};
    Tokenizer *t =
        tiny(pieces,
             "{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFKC\"},{\"type\":\"Lowercase\"},"
             "{\"type\":\"Strip\",\"strip_left\":true,\"strip_right\":true},"
             "{\"type\":\"Replace\",\"pattern\":{\"Regex\":\"\\\\s+\"},\"content\":\" \"}]}",
             NULL, NULL, NULL, NULL);
    ck_assert_str_eq(pieces_of(t, "  HeLLo  ", false), "hello");
    ck_assert_str_eq(pieces_of(t, "\xEF\xAC\x81", false), "fi"); /* U+FB01 -> "fi" */
    tokenizer_free(t);
    t = tiny(pieces,
             "{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFD\"},{\"type\":\"Prepend\","
             "\"prepend\":\"\xE2\x96\x81\"}]}",
             NULL, NULL, NULL, NULL);
    ck_assert_str_eq(pieces_of(t, "hello", false), "\xE2\x96\x81hello");
    ck_assert_str_eq(pieces_of(t, "\xC3\xA9", false),
                     "\xE2\x96\x81|e|\xCC\x81"); /* é -> e + U+0301 */
    tokenizer_free(t);
}
END_TEST

START_TEST(test_template_processing_single_and_pair) {
    const char *post =
        "{\"type\":\"TemplateProcessing\","
        "\"single\":[{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}},{\"Sequence\":{\"id\":\"A\","
        "\"type_id\":0}}],"
        "\"pair\":[{\"Sequence\":{\"id\":\"A\",\"type_id\":0}},{\"SpecialToken\":{\"id\":\"SEP\","
        "\"type_id\":0}},"
        "{\"Sequence\":{\"id\":\"B\",\"type_id\":1}},{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":"
        "1}}],"
        "\"special_tokens\":{\"<s>\":{\"id\":\"<s>\",\"ids\":[7],\"tokens\":[\"h\"]},"
        "\"SEP\":{\"id\":\"SEP\",\"ids\":[0,1],\"tokens\":[\"a\",\"b\"]}}}";
    Tokenizer *t = tiny(NULL, NULL, NULL, post, NULL, NULL);
    TokenizerScratch *sc = tokenizer_scratch_new();
    TokenizerIds ids = {0};
    char err[256];
    ck_assert(tokenizer_encode(t, sc, "c", 1, true, &ids, err, sizeof err) == 0);
    ck_assert_uint_eq(ids.n, 2);
    ck_assert_int_eq(ids.ids[0], 7);
    ck_assert_int_eq(ids.ids[1], 2);
    ids.n = 0;
    ck_assert(tokenizer_encode_pair(t, sc, "c", 1, "d", 1, true, &ids, err, sizeof err) == 0);
    int32_t want[] = {2, 0, 1, 3, 7};
    ck_assert_uint_eq(ids.n, 5);
    for (int i = 0; i < 5; i++) ck_assert_int_eq(ids.ids[i], want[i]);
    ids.n = 0;
    ck_assert(tokenizer_encode_pair(t, sc, "c", 1, "d", 1, false, &ids, err, sizeof err) == 0);
    ck_assert_uint_eq(ids.n, 2);
    tokenizer_ids_free(&ids);
    tokenizer_scratch_free(sc);
    tokenizer_free(t);
}
END_TEST

static const char *decode_str(const Tokenizer *t, const int32_t *ids, size_t n, bool skip) {
    static char out[1024];
    char *s, err[256];
    size_t len;
    ck_assert_msg(tokenizer_decode(t, ids, n, skip, &s, &len, err, sizeof err) == 0, "%s", err);
    snprintf(out, sizeof out, "%s", s);
    free(s);
    return out;
}

START_TEST(test_byte_fallback_decodes_invalid_utf8_to_replacement_chars) {
    static const char *pieces[] = {"<0xC3>", "<0xA9>", "<0xFF>", "<0x41>", NULL};
    Tokenizer *t =
        tiny(pieces, NULL, NULL, NULL,
             "{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"},"
             "{\"type\":\"Strip\",\"content\":\"a\",\"start\":1,\"stop\":1}]}",
             NULL);
    int32_t c3 = tokenizer_token_to_id(t, "<0xC3>", 6), a9 = tokenizer_token_to_id(t, "<0xA9>", 6);
    int32_t ff = tokenizer_token_to_id(t, "<0xFF>", 6), x41 = tokenizer_token_to_id(t, "<0x41>", 6);
    int32_t a = tokenizer_token_to_id(t, "a", 1), b = tokenizer_token_to_id(t, "b", 1);
    ck_assert_str_eq(decode_str(t, (int32_t[]){b, c3, a9, b}, 4, false), "b\xC3\xA9"
                                                                         "b");
    /* one U+FFFD per byte of an invalid run, as the library */
    ck_assert_str_eq(decode_str(t, (int32_t[]){b, c3, ff, x41, b}, 5, false),
                     "b\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"
                     "b");
    ck_assert_str_eq(decode_str(t, (int32_t[]){a, b, a}, 3, false),
                     "b"); /* Strip: one 'a' each side */
    ck_assert_str_eq(decode_str(t, (int32_t[]){b, 99999, -5, b}, 4, false),
                     "bb"); /* unknown ids skipped */
    tokenizer_free(t);
}
END_TEST

START_TEST(test_stream_waits_for_complete_characters) {
    static const char *pieces[] = {"<0xC3>", "<0xA9>", NULL};
    Tokenizer *t = tiny(
        pieces, NULL, NULL, NULL,
        "{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"}]}",
        NULL);
    TokenizerStream *s = tokenizer_stream_new(t, false);
    const char *piece;
    size_t len;
    char err[256];
    ck_assert(tokenizer_stream_step(s, tokenizer_token_to_id(t, "a", 1), &piece, &len, err,
                                    sizeof err) == 0);
    ck_assert(piece && len == 1 && piece[0] == 'a');
    ck_assert(tokenizer_stream_step(s, tokenizer_token_to_id(t, "<0xC3>", 6), &piece, &len, err,
                                    sizeof err) == 0);
    ck_assert(piece == NULL); /* half a character */
    ck_assert(tokenizer_stream_step(s, tokenizer_token_to_id(t, "<0xA9>", 6), &piece, &len, err,
                                    sizeof err) == 0);
    ck_assert(piece && len == 2 && memcmp(piece, "\xC3\xA9", 2) == 0);
    tokenizer_stream_free(s);
    tokenizer_free(t);
}
END_TEST

START_TEST(test_bpe_merges_by_rank_and_exposes_them) {
    const char *json = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"c\":2,\"ab\":3,"
                       "\"bc\":4,\"abc\":5},"
                       "\"merges\":[\"b c\",[\"a\",\"bc\"],\"a b\"]},"
                       "\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\s+\"},"
                       "\"behavior\":\"Removed\",\"invert\":false}}";
    char err[256];
    Tokenizer *t = tokenizer_load_json(json, strlen(json), err, sizeof err);
    ck_assert_msg(t, "%s", err);
    ck_assert_str_eq(pieces_of(t, "abc ab abab", false), "abc|ab|ab|ab"); /* b c first, then a bc */
    TokenizerModelInfo info;
    tokenizer_model_info(t, &info);
    ck_assert_uint_eq(info.n_merges, 3);
    ck_assert_uint_eq(info.n_split_regexes, 1);
    ck_assert_str_eq(tokenizer_split_regex(t, 0), "\\s+");
    const char *l, *r;
    ck_assert(tokenizer_merge(t, 1, &l, &r) == 0);
    ck_assert_str_eq(l, "a");
    ck_assert_str_eq(r, "bc");
    ck_assert(tokenizer_merge(t, 3, &l, &r) == -1);
    ck_assert_int_eq(tokenizer_vocab_size(t), 6);
    ck_assert(tokenizer_id_to_token(t, 6, NULL) == NULL);
    tokenizer_free(t);
}
END_TEST

static void check_load_error(const char *json, const char *want) {
    char err[512] = "";
    Tokenizer *t = tokenizer_load_json(json, strlen(json), err, sizeof err);
    ck_assert_msg(!t, "loaded: %s", json);
    ck_assert_msg(strstr(err, want), "error \"%s\" does not say \"%s\"", err, want);
}

#define MODEL "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},\"merges\":[]}"
START_TEST(test_unsupported_and_malformed_tokenizers_are_refused_by_name) {
    check_load_error("{" MODEL
                     ",\"normalizer\":{\"type\":\"Precompiled\",\"precompiled_charsmap\":\"\"}}",
                     "tokenizer.json: normalizer \"Precompiled\" is not supported");
    check_load_error("{" MODEL ",\"pre_tokenizer\":{\"type\":\"BertPreTokenizer\"}}",
                     "pre_tokenizer \"BertPreTokenizer\" is not supported");
    check_load_error("{" MODEL ",\"post_processor\":{\"type\":\"RobertaProcessing\"}}",
                     "post_processor \"RobertaProcessing\" is not supported");
    check_load_error("{" MODEL ",\"decoder\":{\"type\":\"WordPiece\"}}",
                     "decoder \"WordPiece\" is not supported");
    check_load_error("{\"model\":{\"type\":\"Unigram\",\"vocab\":[]}}",
                     "model \"Unigram\" is not supported");
    check_load_error("{\"model\":{\"type\":\"BPE\",\"dropout\":0.1,\"vocab\":{},\"merges\":[]}}",
                     "dropout");
    check_load_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"a b\"]}}",
                     "model.merges[0]: token \"b\" is not in the vocabulary");
    check_load_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"a a a\"]}}",
                     "not two tokens");
    check_load_error("{" MODEL
                     ",\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(a\"},"
                     "\"behavior\":\"Isolated\",\"invert\":false}}",
                     "pre_tokenizer.pattern: regex \"(a\"");
    check_load_error(
        "{" MODEL
        ",\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\","
        "\"pattern\":{\"String\":\"a\"},\"behavior\":\"Sideways\"}]}}",
        "pre_tokenizer.pretokenizers[0].behavior must be one of");
    check_load_error(
        "{" MODEL
        ",\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":"
        "{\"id\":\"X\",\"type_id\":0}}],\"pair\":[],\"special_tokens\":{}}}",
        "special token \"X\" is not in special_tokens");
    check_load_error("{\"model\":", "tokenizer.json:1:");
    check_load_error("[1, 2]", "the top level must be an object");
    check_load_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":-1},\"merges\":[]}}",
                     "model.vocab[\"a\"]");
}
END_TEST

START_TEST(test_characters_outside_the_vocabulary_without_unk_are_dropped) {
    /* the library drops them silently; a word of only such characters gives no id */
    Tokenizer *t = tiny(NULL, NULL, "{\"type\":\"WhitespaceSplit\"}", NULL, NULL, NULL);
    ck_assert_str_eq(pieces_of(t, "ab \xE4\xBD\xA0 QQ c", false), "a|b|c");
    tokenizer_free(t);
}
END_TEST

START_TEST(test_invalid_utf8_text_is_an_error) {
    Tokenizer *t = tiny(NULL, NULL, NULL, NULL, NULL, NULL);
    TokenizerScratch *sc = tokenizer_scratch_new();
    TokenizerIds ids = {0};
    char err[256];
    ck_assert(tokenizer_encode(t, sc, "ab\xC3(", 4, false, &ids, err, sizeof err) == -1);
    ck_assert_msg(strstr(err, "not valid UTF-8 (byte 2 of 4)"), "%s", err);
    tokenizer_ids_free(&ids);
    tokenizer_scratch_free(sc);
    tokenizer_free(t);
}
END_TEST

START_TEST(test_config_files_give_special_tokens_and_chat_template) {
    char *dir = test_tmpdir(), path[4096];
    char *json = tiny_json(NULL, NULL, NULL, NULL, NULL,
                           "{\"id\":0,\"content\":\"<s>\",\"special\":true},{\"id\":0,\"content\":"
                           "\"</s>\",\"special\":true}",
                           NULL);
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    test_write_file(path, json, strlen(json));
    free(json);
    const char *cfg =
        "{\"bos_token\":{\"content\":\"<s>\",\"lstrip\":false},\"add_bos_token\":true,"
        "\"model_max_length\":1000000000000000019884624838656,"
        "\"chat_template\":[{\"name\":\"default\",\"template\":\"{{ x "
        "}}\"},{\"name\":\"tool_use\",\"template\":\"T\"}]}";
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    test_write_file(path, cfg, strlen(cfg));
    const char *map = "{\"eos_token\":\"</s>\",\"bos_token\":\"ignored, the config names it\"}";
    snprintf(path, sizeof path, "%s/special_tokens_map.json", dir);
    test_write_file(path, map, strlen(map));
    char err[512];
    Tokenizer *t = tokenizer_load(dir, err, sizeof err);
    ck_assert_msg(t, "%s", err);
    const TokenizerSpecial *sp = tokenizer_special(t);
    ck_assert_str_eq(sp->bos_token, "<s>");
    ck_assert_str_eq(sp->eos_token, "</s>");
    ck_assert_int_eq(sp->bos_id, tokenizer_token_to_id(t, "<s>", 3));
    ck_assert_int_eq(sp->eos_id, sp->bos_id + 1);
    ck_assert(sp->pad_token == NULL && sp->pad_id == -1);
    ck_assert_int_eq(sp->add_bos_token, 1);
    ck_assert_int_eq(sp->add_eos_token, -1);
    ck_assert(sp->model_max_length == -1); /* HF's "no limit" sentinel */
    ck_assert_str_eq(sp->chat_template, "{{ x }}");
    ck_assert_str_eq(tokenizer_chat_template(t, "tool_use"), "T");
    /* skip_special_tokens drops the special added tokens */
    int32_t ids[] = {sp->bos_id, 0, sp->eos_id};
    ck_assert_str_eq(decode_str(t, ids, 3, true), "a");
    ck_assert_str_eq(decode_str(t, ids, 3, false), "<s> a </s>"); /* no decoder: joined by spaces */
    tokenizer_free(t);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    test_write_file(path, "{bad", 4);
    ck_assert(tokenizer_load(dir, err, sizeof err) == NULL);
    ck_assert_msg(strstr(err, "tokenizer_config.json:1:"), "%s", err);
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_chat_template_files_win_over_the_config_as_in_transformers) {
    /* transformers >= 4.47 saves the template as chat_template.jinja (and named ones as
     * additional_chat_templates/NAME.jinja); the file wins over tokenizer_config.json's */
    char *dir = test_tmpdir(), path[4096];
    char *json = tiny_json(NULL, NULL, NULL, NULL, NULL, NULL, NULL);
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    test_write_file(path, json, strlen(json));
    free(json);
    const char *cfg = "{\"chat_template\":[{\"name\":\"default\",\"template\":\"old\"},"
                      "{\"name\":\"tool_use\",\"template\":\"old tools\"}]}";
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    test_write_file(path, cfg, strlen(cfg));
    char err[512];
    Tokenizer *t = tokenizer_load(dir, err, sizeof err);
    ck_assert_msg(t, "%s", err);
    ck_assert_str_eq(tokenizer_special(t)->chat_template, "old"); /* no files: the config's */
    tokenizer_free(t);
    const char *jinja = "{{ messages[0]['content'] }}\n";
    snprintf(path, sizeof path, "%s/chat_template.jinja", dir);
    test_write_file(path, jinja, strlen(jinja));
    snprintf(path, sizeof path, "%s/additional_chat_templates", dir);
    ck_assert_int_eq(mkdir(path, 0755), 0);
    snprintf(path, sizeof path, "%s/additional_chat_templates/tool_use.jinja", dir);
    test_write_file(path, "T", 1);
    snprintf(path, sizeof path, "%s/additional_chat_templates/rag.jinja", dir);
    test_write_file(path, "R", 1);
    snprintf(path, sizeof path, "%s/additional_chat_templates/notes.txt", dir);
    test_write_file(path, "not a template", 14);
    t = tokenizer_load(dir, err, sizeof err);
    ck_assert_msg(t, "%s", err);
    ck_assert_str_eq(tokenizer_special(t)->chat_template, jinja);
    ck_assert_str_eq(tokenizer_chat_template(t, "tool_use"), "T");
    ck_assert_str_eq(tokenizer_chat_template(t, "rag"), "R");
    ck_assert(tokenizer_chat_template(t, "notes") == NULL);
    ck_assert(tokenizer_chat_template(t, "default") == NULL); /* the config's list is replaced */
    tokenizer_free(t);
    /* a template file with a NUL byte is refused, naming it */
    snprintf(path, sizeof path, "%s/chat_template.jinja", dir);
    test_write_file(path, "a\0b", 3);
    ck_assert(tokenizer_load(dir, err, sizeof err) == NULL);
    ck_assert_msg(strstr(err, "chat_template.jinja: holds a NUL byte"), "%s", err);
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_one_scratch_serves_two_tokenizers) {
    /* the same word, merged in one vocabulary and not in the other: the word cache of a
     * scratch must not carry ids from one tokenizer to the next */
    const char *merged = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"h\":0,\"e\":1,\"y\":2,\"he\":3,"
                         "\"hey\":4},\"merges\":[\"h e\",\"he y\"]}}";
    const char *plain =
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"h\":0,\"e\":1,\"y\":2},\"merges\":[]}}";
    char err[256];
    Tokenizer *a = tokenizer_load_json(merged, strlen(merged), err, sizeof err);
    Tokenizer *b = tokenizer_load_json(plain, strlen(plain), err, sizeof err);
    ck_assert(a && b);
    TokenizerScratch *sc = tokenizer_scratch_new();
    TokenizerIds ia = {0}, ib = {0};
    ck_assert(tokenizer_encode(a, sc, "hey", 3, false, &ia, err, sizeof err) == 0);
    ck_assert(tokenizer_encode(b, sc, "hey", 3, false, &ib, err, sizeof err) == 0);
    ck_assert_uint_eq(ia.n, 1);
    ck_assert_int_eq(ia.ids[0], 4);
    ck_assert_uint_eq(ib.n, 3);
    tokenizer_ids_free(&ia);
    tokenizer_ids_free(&ib);
    tokenizer_scratch_free(sc);
    tokenizer_free(a);
    tokenizer_free(b);
}
END_TEST

typedef struct {
    const Tokenizer *t;
    TokenizerIds ids;
} ThreadJob;

static void *encode_job(void *arg) {
    ThreadJob *j = arg;
    TokenizerScratch *sc = tokenizer_scratch_new();
    char err[256];
    for (int rep = 0; rep < 200; rep++) {
        j->ids.n = 0;
        if (tokenizer_encode(j->t, sc, "the final countdown, the-final--countdown", 41, true,
                             &j->ids, err, sizeof err))
            break;
    }
    tokenizer_scratch_free(sc);
    return NULL;
}

START_TEST(test_shared_tokenizer_encodes_the_same_on_two_threads) {
    Tokenizer *t = tiny(SPLIT_PIECES, NULL,
                        "{\"type\":\"Split\",\"pattern\":{\"String\":\"-\"},\"behavior\":"
                        "\"Isolated\",\"invert\":false}",
                        NULL, NULL, NULL);
    ThreadJob a = {t, {0}}, b = {t, {0}};
    pthread_t ta, tb;
    ck_assert(pthread_create(&ta, NULL, encode_job, &a) == 0);
    ck_assert(pthread_create(&tb, NULL, encode_job, &b) == 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    ck_assert_uint_gt(a.ids.n, 0);
    ck_assert_uint_eq(a.ids.n, b.ids.n);
    ck_assert(memcmp(a.ids.ids, b.ids.ids, a.ids.n * sizeof *a.ids.ids) == 0);
    tokenizer_ids_free(&a.ids);
    tokenizer_ids_free(&b.ids);
    tokenizer_free(t);
}
END_TEST

Suite *tokenizer_units_suite(void) {
    Suite *s = suite_create("tokenizer_units");
    TCase *tc = tcase_create("components");
    tcase_add_test(tc, test_split_behaviours_cut_as_documented);
    tcase_add_test(tc, test_metaspace_prepend_schemes);
    tcase_add_test(tc, test_digits_contiguous_and_individual);
    tcase_add_test(tc, test_added_tokens_lstrip_rstrip_single_word);
    tcase_add_test(tc, test_normalizers_lowercase_strip_replace_nfkc_nfd);
    tcase_add_test(tc, test_template_processing_single_and_pair);
    tcase_add_test(tc, test_byte_fallback_decodes_invalid_utf8_to_replacement_chars);
    tcase_add_test(tc, test_stream_waits_for_complete_characters);
    tcase_add_test(tc, test_bpe_merges_by_rank_and_exposes_them);
    tcase_add_test(tc, test_unsupported_and_malformed_tokenizers_are_refused_by_name);
    tcase_add_test(tc, test_characters_outside_the_vocabulary_without_unk_are_dropped);
    tcase_add_test(tc, test_invalid_utf8_text_is_an_error);
    tcase_add_test(tc, test_config_files_give_special_tokens_and_chat_template);
    tcase_add_test(tc, test_chat_template_files_win_over_the_config_as_in_transformers);
    tcase_add_test(tc, test_shared_tokenizer_encodes_the_same_on_two_threads);
    tcase_add_test(tc, test_one_scratch_serves_two_tokenizers);
    suite_add_tcase(s, tc);
    return s;
}
