/* tests/test_tokenizer.c — the tokenizer against the reference: for every file in
 * tests/data/tokenizer (written by tools/gen_tokenizer_expect.sh from the Rust `tokenizers`
 * library), rebuild the tokenizer it names (a real tokenizer.json, with the recorded component
 * overrides applied) and check the ids with and without special tokens, the decoded text with
 * and without skip_special_tokens, pair encodings, decodes of arbitrary id sequences, and that
 * streaming decode gives the same text piece by piece. Plus the TinyStories rows. */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/tokenizer/tokenizer.h"
#include "tests/test_util.h"

/* Where the npm tokenizers of tools/gen_tokenizer_expect.sh are (a scratch install). */
static const char *npm_dir(void) {
    const char *d = getenv("LORAFIT_TOKREF");
    return d && *d ? d : "build/tokref/node_modules";
}

/* The path of an expectation's source, or NULL (and a reason) when it is not on this machine. */
static int source_path(const char *src, char *path, size_t n, const char **why) {
    if (!strncmp(src, "shared:", 7)) {
        const char *shared = test_shared_dir();
        if (!shared) {
            *why = "LORAFIT_SHARED directory is missing";
            return -1;
        }
        snprintf(path, n, "%s/%s", shared, src + 7);
    } else if (!strncmp(src, "npm:", 4)) {
        const char *pkg = src + 4; /* @scope/name@version/path */
        const char *at = strchr(pkg + 1, '@'), *slash = at ? strchr(at, '/') : NULL;
        ck_assert_msg(at && slash, "bad npm source %s", src);
        snprintf(path, n, "%s/%.*s%s", npm_dir(), (int)(at - pkg), pkg, slash);
    } else {
        ck_abort_msg("bad source %s", src);
    }
    struct stat st;
    if (stat(path, &st) != 0) {
        *why = "tokenizer not installed (tools/gen_tokenizer_expect.sh --install)";
        return -1;
    }
    return 0;
}

/* The same rule as applyOverride in tools/gen_tokenizer_expect.js. */
static void apply_override(json_t *root, json_t *ov) {
    const char *key;
    json_t *v;
    json_object_foreach(ov, key, v) {
        if (!strcmp(key, "model"))
            json_object_update(json_object_get(root, "model"), v);
        else if (!strcmp(key, "added_tokens_extra"))
            json_array_extend(json_object_get(root, "added_tokens"), v);
        else
            json_object_set(root, key, v);
    }
}

static Tokenizer *load_expect(const char *name, json_t **expect, const char **why) {
    char path[4096], err[1024];
    snprintf(path, sizeof path, "tests/data/tokenizer/%s.json", name);
    json_error_t jerr;
    *expect = json_load_file(path, JSON_ALLOW_NUL, &jerr);
    ck_assert_msg(*expect, "%s: %s", path, jerr.text);
    const char *src = json_string_value(json_object_get(*expect, "source"));
    if (!strcmp(src, "inline")) { /* a small synthetic tokenizer, stored in the file */
        char *text = json_dumps(json_object_get(*expect, "tokenizer"), JSON_COMPACT);
        Tokenizer *t = tokenizer_load_json(text, strlen(text), err, sizeof err);
        free(text);
        ck_assert_msg(t, "%s: %s", name, err);
        return t;
    }
    if (source_path(src, path, sizeof path, why)) return NULL;
    json_t *ov = json_object_get(*expect, "override");
    Tokenizer *t;
    if (json_is_null(ov)) {
        *strrchr(path, '/') = 0;
        t = tokenizer_load(path, err, sizeof err);
    } else {
        json_t *root = json_load_file(path, JSON_ALLOW_NUL, &jerr);
        ck_assert_msg(root, "%s: %s", path, jerr.text);
        apply_override(root, ov);
        char *text = json_dumps(root, JSON_COMPACT);
        json_decref(root);
        t = tokenizer_load_json(text, strlen(text), err, sizeof err);
        free(text);
    }
    ck_assert_msg(t, "%s: %s", name, err);
    return t;
}

static void ids_of(json_t *arr, int32_t **ids, size_t *n) {
    *n = json_array_size(arr);
    *ids = malloc((*n + 1) * sizeof **ids);
    for (size_t i = 0; i < *n; i++) (*ids)[i] = (int32_t)json_integer_value(json_array_get(arr, i));
}

static int same_ids(const TokenizerIds *got, json_t *want) {
    if (got->n != json_array_size(want)) return 0;
    for (size_t i = 0; i < got->n; i++)
        if (got->ids[i] != json_integer_value(json_array_get(want, i))) return 0;
    return 1;
}

static void show_ids(const char *what, const int32_t *ids, size_t n) {
    fprintf(stderr, "  %s:", what);
    for (size_t i = 0; i < n && i < 40; i++) fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, "%s\n", n > 40 ? " ..." : "");
}

static int check_decode(const Tokenizer *t, const int32_t *ids, size_t n, bool skip, json_t *want,
                        const char *label) {
    char *text, err[512];
    size_t len;
    ck_assert_msg(tokenizer_decode(t, ids, n, skip, &text, &len, err, sizeof err) == 0, "%s", err);
    int ok = len == json_string_length(want) && memcmp(text, json_string_value(want), len) == 0;
    if (!ok)
        fprintf(stderr, "%s: decode(skip=%d) gave \"%s\", want \"%s\"\n", label, skip, text,
                json_string_value(want));
    free(text);
    return ok;
}

/* Streaming decode: the pieces concatenate to the full decode (up to a trailing U+FFFD). */
static int check_stream(const Tokenizer *t, const int32_t *ids, size_t n, const char *label) {
    char *full, err[512];
    size_t full_len;
    ck_assert(tokenizer_decode(t, ids, n, false, &full, &full_len, err, sizeof err) == 0);
    TokenizerStream *s = tokenizer_stream_new(t, false);
    char *acc = calloc(1, full_len + 64);
    size_t acc_len = 0;
    int ok = 1;
    for (size_t i = 0; i < n && ok; i++) {
        const char *piece;
        size_t len;
        if (tokenizer_stream_step(s, ids[i], &piece, &len, err, sizeof err)) {
            fprintf(stderr, "%s: stream step %zu: %s\n", label, i, err);
            ok = 0;
            break;
        }
        if (piece) {
            if (acc_len + len > full_len)
                ok = 0;
            else
                memcpy(acc + acc_len, piece, len), acc_len += len;
        }
    }
    if (ok)
        ok = acc_len <= full_len && memcmp(acc, full, acc_len) == 0 &&
             (acc_len == full_len ||
              (full_len - acc_len <= 64 && strstr(full + acc_len, "\xEF\xBF\xBD")));
    if (!ok)
        fprintf(stderr, "%s: stream gave \"%.*s\", decode \"%s\"\n", label, (int)acc_len, acc,
                full);
    free(acc);
    free(full);
    tokenizer_stream_free(s);
    return ok;
}

static void check_expectations(const char *name) {
    json_t *expect;
    const char *why = NULL;
    Tokenizer *t = load_expect(name, &expect, &why);
    if (!t) {
        json_decref(expect);
        if (test_in_ci() && !strcmp(why, "LORAFIT_SHARED directory is missing"))
            ck_abort_msg("LORAFIT_SHARED directory is missing (needed in CI)");
        test_skip(why);
        return;
    }
    ck_assert_int_eq(tokenizer_vocab_size(t) >=
                         (int)json_integer_value(json_object_get(expect, "vocab_size")),
                     1);
    TokenizerScratch *sc = tokenizer_scratch_new();
    int bad = 0;
    char err[512], label[128];
    json_t *cases = json_object_get(expect, "cases");
    for (size_t i = 0; i < json_array_size(cases); i++) {
        json_t *c = json_array_get(cases, i);
        json_t *text = json_object_get(c, "text");
        snprintf(label, sizeof label, "%s case %zu", name, i);
        for (int special = 1; special >= 0; special--) {
            TokenizerIds got = {0};
            ck_assert_msg(tokenizer_encode(t, sc, json_string_value(text), json_string_length(text),
                                           special, &got, err, sizeof err) == 0,
                          "%s: %s", label, err);
            json_t *want = json_object_get(c, special ? "ids" : "ids_no_special");
            if (!same_ids(&got, want)) {
                int32_t *w;
                size_t wn;
                ids_of(want, &w, &wn);
                fprintf(stderr, "%s (special=%d) text \"%s\":\n", label, special,
                        json_string_value(text));
                show_ids("got ", got.ids, got.n);
                show_ids("want", w, wn);
                free(w);
                bad++;
            }
            tokenizer_ids_free(&got);
        }
        int32_t *ids;
        size_t n;
        ids_of(json_object_get(c, "ids"), &ids, &n);
        bad += !check_decode(t, ids, n, false, json_object_get(c, "decode"), label);
        bad += !check_decode(t, ids, n, true, json_object_get(c, "decode_skip"), label);
        /* streaming equals the full decode only for decoders whose output on a prefix of the
         * ids is a prefix of the output (the real tokenizers'; not e.g. Strip with start 2) */
        if (json_is_null(json_object_get(expect, "override")))
            bad += !check_stream(t, ids, n, label);
        free(ids);
    }
    json_t *pairs = json_object_get(expect, "pairs");
    for (size_t i = 0; i < json_array_size(pairs); i++) {
        json_t *p = json_array_get(pairs, i), *a = json_object_get(p, "a"),
               *b = json_object_get(p, "b");
        for (int special = 1; special >= 0; special--) {
            TokenizerIds got = {0};
            ck_assert(tokenizer_encode_pair(t, sc, json_string_value(a), json_string_length(a),
                                            json_string_value(b), json_string_length(b), special,
                                            &got, err, sizeof err) == 0);
            if (!same_ids(&got, json_object_get(p, special ? "ids" : "ids_no_special"))) {
                fprintf(stderr, "%s pair %zu (special=%d) differs\n", name, i, special);
                bad++;
            }
            tokenizer_ids_free(&got);
        }
    }
    json_t *decodes = json_object_get(expect, "decodes");
    for (size_t i = 0; i < json_array_size(decodes); i++) {
        json_t *d = json_array_get(decodes, i);
        int32_t *ids;
        size_t n;
        ids_of(json_object_get(d, "ids"), &ids, &n);
        snprintf(label, sizeof label, "%s decode %zu", name, i);
        bad += !check_decode(t, ids, n, false, json_object_get(d, "text"), label);
        bad += !check_decode(t, ids, n, true, json_object_get(d, "text_skip"), label);
        free(ids);
    }
    tokenizer_scratch_free(sc);
    tokenizer_free(t);
    json_decref(expect);
    ck_assert_msg(bad == 0, "%s: %d mismatches with the reference (details above)", name, bad);
}

static const char *const EXPECTATIONS[] = {
    "deepseek_v3",
    "gemma3",
    "inline_prefix_suffix",
    "inline_prefix_suffix_fused",
    "llama3",
    "llama3_gpt2",
    "llama3_merges",
    "llama3_prefix_added",
    "llama3_template",
    "mistral",
    "mistral_metaspace_always",
    "mistral_metaspace_first",
    "mistral_metaspace_never",
    "mistral_nfc_whitespace",
    "mistral_nfd_strip",
    "mistral_nfkc_lower",
    "mistral_nfkd_accents",
    "mistral_underscore_first",
    "mistral_unk",
    "mistral_unk_fused",
    "qwen3",
    "stories260k",
    "stories_split_contiguous",
    "stories_split_contiguous_invert",
    "stories_split_isolated",
    "stories_split_isolated_invert",
    "stories_split_mergedwithnext",
    "stories_split_mergedwithnext_invert",
    "stories_split_mergedwithprevious",
    "stories_split_mergedwithprevious_invert",
    "stories_split_regex_features",
    "stories_split_removed",
    "stories_split_removed_invert",
    "stories_split_string",
};
#define N_EXPECT (int)(sizeof EXPECTATIONS / sizeof *EXPECTATIONS)

START_TEST(test_tokenizer_matches_reference) {
    check_expectations(EXPECTATIONS[_i]);
}
END_TEST

/* /work/shared/data: valid.jsonl row i = BOS + encode(paragraph i) + EOS, where paragraphs are
 * raw.txt split on blank lines, single newlines turned into spaces, stripped, empty dropped. */
START_TEST(test_tokenizer_reproduces_tinystories_valid) {
    TEST_NEED_SHARED(shared);
    char path[4096], err[1024];
    snprintf(path, sizeof path, "%s/models/stories260K", shared);
    Tokenizer *t = tokenizer_load(path, err, sizeof err);
    ck_assert_msg(t, "%s", err);
    const TokenizerSpecial *sp = tokenizer_special(t);
    ck_assert_int_eq(sp->bos_id, 1);
    ck_assert_int_eq(sp->eos_id, 2);
    snprintf(path, sizeof path, "%s/data/tinystories/raw.txt", shared);
    size_t raw_len;
    char *raw = test_read_file(path, &raw_len);
    ck_assert(raw);
    snprintf(path, sizeof path, "%s/data/tinystories/valid.jsonl", shared);
    FILE *f = fopen(path, "r");
    ck_assert(f);
    TokenizerScratch *sc = tokenizer_scratch_new();
    char *line = NULL;
    size_t cap = 0, pos = 0;
    int rows = 0;
    while (getline(&line, &cap, f) > 0) {
        /* the next non-empty paragraph */
        char *para = NULL;
        size_t plen = 0;
        while (pos < raw_len && !plen) {
            const char *end = strstr(raw + pos, "\n\n");
            size_t stop = end ? (size_t)(end - raw) : raw_len;
            free(para);
            para = malloc(stop - pos + 1);
            plen = 0;
            for (size_t i = pos; i < stop; i++) para[plen++] = raw[i] == '\n' ? ' ' : raw[i];
            size_t a = 0;
            while (a < plen && strchr(" \t\r\n\v\f", para[a])) a++;
            while (plen > a && strchr(" \t\r\n\v\f", para[plen - 1])) plen--;
            memmove(para, para + a, plen - a);
            plen -= a;
            pos = end ? stop + 2 : raw_len;
        }
        ck_assert(plen);
        json_error_t jerr;
        json_t *row = json_loads(line, 0, &jerr);
        ck_assert(row);
        TokenizerIds got = {0};
        /* the template adds BOS; the data's rows end with EOS */
        ck_assert_msg(tokenizer_encode(t, sc, para, plen, true, &got, err, sizeof err) == 0, "%s",
                      err);
        json_t *want = json_object_get(row, "input_ids");
        ck_assert_uint_eq(got.n + 1, json_array_size(want));
        for (size_t i = 0; i < got.n; i++)
            ck_assert_int_eq(got.ids[i], json_integer_value(json_array_get(want, i)));
        ck_assert_int_eq(json_integer_value(json_array_get(want, got.n)), sp->eos_id);
        json_decref(row);
        free(para);
        tokenizer_ids_free(&got);
        rows++;
    }
    ck_assert_int_eq(rows, 40);
    free(line);
    fclose(f);
    free(raw);
    tokenizer_scratch_free(sc);
    tokenizer_free(t);
}
END_TEST

Suite *tokenizer_suite(void) {
    Suite *s = suite_create("tokenizer");
    TCase *tc = tcase_create("reference");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_tokenizer_matches_reference, 0, N_EXPECT);
    tcase_add_test(tc, test_tokenizer_reproduces_tinystories_valid);
    suite_add_tcase(s, tc);
    return s;
}
