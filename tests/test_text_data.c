/* tests/test_text_data.c — the text dataset formats (data/text.c) through the reader and
 * `lorafit prepare` (the tokenize and generate commands: test_text_commands.c).
 *
 * Acceptance: alpaca raw.json through `lorafit prepare` gives exactly the committed ids and
 * labels of ../shared/data/alpaca/train.jsonl; the TinyStories paragraphs as {"text"}
 * records give exactly the ids of ../shared/data/tinystories; chat masking with the llama3
 * template keeps the loss on the assistant turns only, checked token by token. Plus bad
 * records, completion masking, CSV and .json inputs and an exact resume on a text dataset. */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "data/data.h"
#include "tests/test_data_util.h"
#include "tests/test_train_util.h"
#include "tests/test_util.h"

#define IGNORE (-100)

static Tokenizer *load_tok(const char *shared, const char *sub) {
    char dir[4096], err[1024];
    snprintf(dir, sizeof dir, "%s/%s", shared, sub);
    Tokenizer *t = tokenizer_load(dir, err, sizeof err);
    ck_assert_msg(t != NULL, "%s: %s", dir, err);
    return t;
}

static DataOptions text_options(const char **paths, DataFormat f, const Tokenizer *tok) {
    DataOptions o;
    memset(&o, 0, sizeof o);
    o.paths = paths;
    o.n_paths = 1;
    o.input_field = "input_ids";
    o.labels_field = "labels";
    o.seq_len = 1 << 16;
    o.batch_size = 1;
    o.epochs = 1;
    o.format = f;
    o.text_field = "text";
    o.prompt_field = "prompt";
    o.completion_field = "completion";
    o.messages_field = "messages";
    o.add_eos = true;
    o.tokenizer = tok;
    return o;
}

/* Reads every row of a reader into a JSON array of [ids, labels] pairs. */
static json_t *all_rows(const DataOptions *o) {
    char err[2048];
    DataReader *r = data_open(o, err, sizeof err);
    ck_assert_msg(r != NULL, "data_open: %s", err);
    json_t *rows = json_array();
    DataRow row;
    int rc;
    while ((rc = data_next_row(r, &row, err, sizeof err)) == 1) {
        json_t *ids = json_array(), *labels = json_array();
        for (int i = 0; i < row.len; i++) {
            json_array_append_new(ids, json_integer(row.ids[i]));
            json_array_append_new(labels, json_integer(row.labels[i]));
        }
        json_array_append_new(rows, json_pack("[o,o]", ids, labels));
    }
    ck_assert_msg(rc == 0, "data_next_row: %s", err);
    data_close(r);
    return rows;
}

/* The error data_open or the first rows give, or "" when there is none. */
static void first_error(const DataOptions *o, char *err, size_t errlen) {
    err[0] = '\0';
    DataReader *r = data_open(o, err, errlen);
    if (!r) return;
    DataRow row;
    int rc;
    while ((rc = data_next_row(r, &row, err, errlen)) == 1) {
    }
    if (rc == 0) err[0] = '\0';
    data_close(r);
}

START_TEST(test_alpaca_prepare_matches_committed_ids) {
    TEST_NEED_SHARED(shared);
    char *dir = test_tmpdir(), cfg_text[8192], args[8192];
    snprintf(cfg_text, sizeof cfg_text,
             "model: {path: %s/models/stories260K}\n"
             "data: {train: %s/data/alpaca/raw.json, format: alpaca, seq_len: 512, overflow: "
             "drop}\n"
             "output: {dir: out}\n",
             shared, shared);
    char *cfg = tt_write_text(dir, "job.yaml", cfg_text);
    snprintf(args, sizeof args, "prepare '%s' --out '%s/rows.jsonl'", cfg, dir);
    tt_expect(dir, args, 0, "\"rows\": 596");
    char path[4300], want_path[4300];
    snprintf(path, sizeof path, "%s/rows.jsonl", dir);
    snprintf(want_path, sizeof want_path, "%s/data/alpaca/train.jsonl", shared);
    FILE *got = fopen(path, "r"), *want = fopen(want_path, "r");
    ck_assert(got && want);
    char *a = NULL, *b = NULL;
    size_t ca = 0, cb = 0;
    int n = 0;
    for (;; n++) {
        ssize_t la = getline(&a, &ca, got), lb = getline(&b, &cb, want);
        ck_assert_msg((la < 0) == (lb < 0), "row %d: one file ends first", n);
        if (la < 0) break;
        json_t *ja = json_loads(a, 0, NULL), *jb = json_loads(b, 0, NULL);
        ck_assert(ja && jb);
        ck_assert_msg(
            json_equal(json_object_get(ja, "input_ids"), json_object_get(jb, "input_ids")),
            "row %d: input_ids differ", n);
        ck_assert_msg(json_equal(json_object_get(ja, "labels"), json_object_get(jb, "labels")),
                      "row %d: labels differ", n);
        json_decref(ja);
        json_decref(jb);
    }
    ck_assert_int_eq(n, 596);
    free(a);
    free(b);
    fclose(got);
    fclose(want);
    char *log = tt_log(dir);
    ck_assert_msg(strstr(log, "\"dropped\": 403") && strstr(log, "\"skipped\": 0"), "%s", log);
    free(log);
    free(cfg);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* raw.txt's paragraphs as {"text"} lines, as ../shared/data/README.md describes them. */
static void write_paragraphs(const char *raw_path, const char *out_path) {
    size_t n;
    char *raw = test_read_file(raw_path, &n);
    ck_assert(raw != NULL);
    FILE *f = fopen(out_path, "w");
    ck_assert(f != NULL);
    size_t i = 0;
    while (i < n) {
        char *end = strstr(raw + i, "\n\n");
        size_t stop = end ? (size_t)(end - raw) : n;
        size_t s = i, e = stop;
        for (size_t k = s; k < e; k++)
            if (raw[k] == '\n') raw[k] = ' ';
        while (s < e && (raw[s] == ' ' || raw[s] == '\t' || raw[s] == '\r')) s++;
        while (e > s && (raw[e - 1] == ' ' || raw[e - 1] == '\t' || raw[e - 1] == '\r')) e--;
        if (e > s) {
            json_t *o = json_pack("{s:s%}", "text", raw + s, e - s);
            char *line = json_dumps(o, 0);
            fprintf(f, "%s\n", line);
            free(line);
            json_decref(o);
        }
        i = stop + 2;
    }
    fclose(f);
    free(raw);
}

START_TEST(test_tinystories_text_matches_committed_ids) {
    TEST_NEED_SHARED(shared);
    char *dir = test_tmpdir(), raw[4200], text_path[4200], valid[4200], train[4200];
    snprintf(raw, sizeof raw, "%s/data/tinystories/raw.txt", shared);
    snprintf(text_path, sizeof text_path, "%s/paragraphs.jsonl", dir);
    write_paragraphs(raw, text_path);
    Tokenizer *tok = load_tok(shared, "models/stories260K");
    const char *p1[] = {text_path};
    DataOptions o = text_options(p1, DATA_FORMAT_AUTO, tok);
    json_t *got = all_rows(&o);
    snprintf(valid, sizeof valid, "%s/data/tinystories/valid.jsonl", shared);
    snprintf(train, sizeof train, "%s/data/tinystories/train.jsonl.gz", shared);
    const char *p2[] = {valid, train};
    DataOptions w = text_options(p2, DATA_FORMAT_TOKENS, NULL);
    w.n_paths = 2;
    json_t *want = all_rows(&w);
    ck_assert_int_eq(json_array_size(got), 4662);
    ck_assert_int_eq(json_array_size(got), json_array_size(want));
    for (size_t i = 0; i < json_array_size(got); i++)
        ck_assert_msg(json_equal(json_array_get(json_array_get(got, i), 0),
                                 json_array_get(json_array_get(want, i), 0)),
                      "paragraph %zu: ids differ", i);
    /* add_eos: false drops the EOS (2) and nothing else */
    o.add_eos = false;
    json_t *no_eos = all_rows(&o);
    const json_t *a = json_array_get(json_array_get(got, 0), 0);
    const json_t *b = json_array_get(json_array_get(no_eos, 0), 0);
    ck_assert_int_eq(json_array_size(a), json_array_size(b) + 1);
    ck_assert_int_eq(json_integer_value(json_array_get(a, json_array_size(a) - 1)), 2);
    json_decref(no_eos);
    json_decref(got);
    json_decref(want);
    tokenizer_free(tok);
    test_rmtree(dir);
    free(dir);
}
END_TEST

static ChatTemplate *tokenizer_template(const Tokenizer *tok) {
    const char *src = tokenizer_special(tok)->chat_template;
    ck_assert(src != NULL);
    char err[512];
    ChatTemplate *t = chat_template_parse(src, strlen(src), err, sizeof err);
    ck_assert_msg(t != NULL, "%s", err);
    return t;
}

static void encode_into(const Tokenizer *tok, const char *s, TokenizerIds *out) {
    TokenizerScratch *sc = tokenizer_scratch_new();
    char err[256];
    out->n = 0;
    ck_assert_int_eq(tokenizer_encode(tok, sc, s, strlen(s), false, out, err, sizeof err), 0);
    tokenizer_scratch_free(sc);
}

START_TEST(test_chat_llama3_masks_all_but_assistant_turns) {
    TEST_NEED_SHARED(shared);
    Tokenizer *tok = load_tok(shared, "tokenizers/llama3");
    ChatTemplate *tmpl = tokenizer_template(tok);
    char *dir = test_tmpdir();
    const char *contents[] = {"You are terse.", "Name a colour.", "Blue.",
                              "And another one, please?", "Green, like grass."};
    const char *roles[] = {"system", "user", "assistant", "user", "assistant"};
    json_t *msgs = json_array();
    for (int i = 0; i < 5; i++)
        json_array_append_new(msgs,
                              json_pack("{s:s,s:s}", "role", roles[i], "content", contents[i]));
    json_t *rec = json_pack("{s:o}", "messages", msgs);
    char *line = json_dumps(rec, 0), path[4200];
    snprintf(path, sizeof path, "%s/chat.jsonl", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "%s\n", line);
    fclose(f);
    free(line);
    json_decref(rec);
    const char *paths[] = {path};
    DataOptions o = text_options(paths, DATA_FORMAT_AUTO, tok);
    o.chat_template = tmpl;
    json_t *ctx =
        json_pack("{s:s,s:s}", "bos_token", "<|begin_of_text|>", "eos_token", "<|end_of_text|>");
    o.chat_context = ctx;
    json_t *rows = all_rows(&o);
    ck_assert_int_eq(json_array_size(rows), 1);
    const json_t *ids = json_array_get(json_array_get(rows, 0), 0);
    const json_t *labels = json_array_get(json_array_get(rows, 0), 1);
    size_t n = json_array_size(ids);
    /* The expected row, built from the llama3 format: BOS, then per message
     * <|start_header_id|> role <|end_header_id|> "\n\n" content <|eot_id|>; the labels keep
     * the assistant contents and their <|eot_id|> only. */
    const int32_t bos = 128000, start = 128006, end = 128007, eot = 128009, nl2 = 271;
    TokenizerIds want = {0}, piece = {0};
    int32_t *want_labels = malloc(4096 * sizeof *want_labels);
    size_t w = 0;
#define PUSH(id, keep)                                                                             \
    do {                                                                                           \
        if (want.n == want.cap) {                                                                  \
            want.cap = want.cap ? want.cap * 2 : 64;                                               \
            want.ids = realloc(want.ids, want.cap * sizeof *want.ids);                             \
        }                                                                                          \
        want.ids[want.n++] = (id);                                                                 \
        want_labels[w++] = (keep) ? (id) : IGNORE;                                                 \
    } while (0)
    PUSH(bos, false);
    for (int i = 0; i < 5; i++) {
        bool keep = !strcmp(roles[i], "assistant");
        PUSH(start, false);
        encode_into(tok, roles[i], &piece);
        for (size_t k = 0; k < piece.n; k++) PUSH(piece.ids[k], false);
        PUSH(end, false);
        PUSH(nl2, false);
        encode_into(tok, contents[i], &piece);
        for (size_t k = 0; k < piece.n; k++) PUSH(piece.ids[k], keep);
        PUSH(eot, keep);
    }
#undef PUSH
    ck_assert_int_eq(n, want.n);
    int kept = 0;
    for (size_t t = 0; t < n; t++) {
        ck_assert_msg(json_integer_value(json_array_get(ids, t)) == want.ids[t],
                      "token %zu: id %lld, expected %d", t,
                      (long long)json_integer_value(json_array_get(ids, t)), want.ids[t]);
        ck_assert_msg(json_integer_value(json_array_get(labels, t)) == want_labels[t],
                      "token %zu: label %lld, expected %d", t,
                      (long long)json_integer_value(json_array_get(labels, t)), want_labels[t]);
        kept += want_labels[t] != IGNORE;
    }
    ck_assert_int_ge(kept, 6); /* "Blue." + eot and "Green, like grass." + eot */
    /* train_on_prompt keeps everything */
    o.train_on_prompt = true;
    json_t *all = all_rows(&o);
    ck_assert(json_equal(json_array_get(json_array_get(all, 0), 0),
                         json_array_get(json_array_get(all, 0), 1)));
    json_decref(all);
    free(want_labels);
    tokenizer_ids_free(&want);
    tokenizer_ids_free(&piece);
    json_decref(rows);
    json_decref(ctx);
    chat_template_free(tmpl);
    tokenizer_free(tok);
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_chat_record_tools_reach_the_template_as_in_trl) {
    /* "tools" of a record goes to the template as `tools` (a list, or a JSON string holding
     * it), for the whole conversation and the assistant-turn prefixes alike (templates render
     * with trim_blocks, as transformers does: hence the newline as an expression) */
    TEST_NEED_SHARED(shared);
    Tokenizer *tok = load_tok(shared, "models/stories260K");
    const char *src =
        "{% if tools %}tools:{% for t in tools %} {{ t.function.name }}{% endfor %}{{ '\\n' }}"
        "{% endif %}{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}"
        "{% if add_generation_prompt %}assistant: {% endif %}";
    char err[2048];
    ChatTemplate *t = chat_template_parse(src, strlen(src), err, sizeof err);
    ck_assert_msg(t != NULL, "%s", err);
    const char *msgs = "\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, "
                       "{\"role\": \"assistant\", \"content\": \"ok\"}]";
    const char *tools = "[{\"type\": \"function\", \"function\": {\"name\": \"get_weather\"}}]";
    char text[2048];
    snprintf(text, sizeof text,
             "{%s, \"tools\": %s}\n{%s, \"tools\": \"%s\"}\n{%s}\n{%s, \"tools\": null}\n", msgs,
             tools, msgs,
             "[{\\\"type\\\": \\\"function\\\", \\\"function\\\": {\\\"name\\\": "
             "\\\"get_weather\\\"}}]",
             msgs, msgs);
    char *dir = test_tmpdir();
    char *path = tt_write_text(dir, "c.jsonl", text);
    const char *paths[] = {path};
    DataOptions o = text_options(paths, DATA_FORMAT_CHAT, tok);
    o.chat_template = t;
    json_t *rows = all_rows(&o);
    ck_assert_int_eq(json_array_size(rows), 4);
    TokenizerIds with = {0}, without = {0};
    encode_into(tok, "tools: get_weather\nuser: hi\nassistant: ok\n", &with);
    encode_into(tok, "user: hi\nassistant: ok\n", &without);
    for (size_t r = 0; r < 4; r++) {
        const TokenizerIds *want = r < 2 ? &with : &without;
        json_t *ids = json_array_get(json_array_get(rows, r), 0);
        ck_assert_msg(json_array_size(ids) == want->n, "row %zu: %zu ids, want %zu", r,
                      json_array_size(ids), want->n);
        for (size_t i = 0; i < want->n; i++)
            ck_assert_int_eq(json_integer_value(json_array_get(ids, i)), want->ids[i]);
    }
    /* tools that are not a list: the record is bad, named */
    free(tt_write_text(dir, "c.jsonl",
                       "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], "
                       "\"tools\": 3}\n"));
    first_error(&o, err, sizeof err);
    ck_assert_msg(strstr(err, "c.jsonl:1:") && strstr(err, "'tools' must be a list"), "%s", err);
    tokenizer_ids_free(&with);
    tokenizer_ids_free(&without);
    json_decref(rows);
    chat_template_free(t);
    tokenizer_free(tok);
    free(path);
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_chat_template_that_rewrites_history_is_refused) {
    TEST_NEED_SHARED(shared);
    Tokenizer *tok = load_tok(shared, "models/stories260K");
    /* Drops every assistant turn but the last: the prefixes are not prefixes. */
    const char *src = "{% for m in messages %}{% if m.role != 'assistant' or loop.last %}"
                      "{{ m.role }}: {{ m.content }}\n{% endif %}{% endfor %}"
                      "{% if add_generation_prompt %}assistant: {% endif %}";
    char err[2048];
    ChatTemplate *t = chat_template_parse(src, strlen(src), err, sizeof err);
    ck_assert_msg(t != NULL, "%s", err);
    char *dir = test_tmpdir();
    char *path = tt_write_text(
        dir, "c.jsonl",
        "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"assistant\", "
        "\"content\": \"b\"}, {\"role\": \"user\", \"content\": \"c\"}, {\"role\": "
        "\"assistant\", \"content\": \"d\"}]}\n");
    const char *paths[] = {path};
    DataOptions o = text_options(paths, DATA_FORMAT_CHAT, tok);
    o.chat_template = t;
    first_error(&o, err, sizeof err);
    ck_assert_msg(strstr(err, "c.jsonl:1:") && strstr(err, "messages[1]") &&
                      strstr(err, "as a prefix"),
                  "%s", err);
    chat_template_free(t);
    tokenizer_free(tok);
    free(path);
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_completion_masks_prompt_and_formats_read_alike) {
    TEST_NEED_SHARED(shared);
    Tokenizer *tok = load_tok(shared, "models/stories260K");
    char *dir = test_tmpdir();
    char *jl = tt_write_text(dir, "a.jsonl",
                             "{\"prompt\": \"Once upon a time\", \"completion\": \"there was a "
                             "cat.\"}\n\n{\"prompt\": \"Tom\", \"completion\": \"ran.\"}\n");
    char *csv = tt_write_text(dir, "a.csv",
                              "prompt,completion\n\"Once upon a time\",there was a cat.\nTom,"
                              "ran.\n");
    char *js = tt_write_text(dir, "a.json",
                             "[{\"prompt\": \"Once upon a time\", \"completion\": \"there was a "
                             "cat.\"}, {\"prompt\": \"Tom\", \"completion\": \"ran.\"}]");
    const char *p[] = {jl};
    DataOptions o = text_options(p, DATA_FORMAT_AUTO, tok);
    json_t *a = all_rows(&o);
    p[0] = csv;
    o.format = DATA_FORMAT_COMPLETION;
    json_t *b = all_rows(&o);
    p[0] = js;
    o.format = DATA_FORMAT_AUTO;
    json_t *c = all_rows(&o);
    ck_assert_int_eq(json_array_size(a), 2);
    ck_assert(json_equal(a, b));
    ck_assert(json_equal(a, c));
    /* Row 0: BOS + prompt masked, the completion and EOS kept. */
    TokenizerIds prompt = {0}, comp = {0};
    encode_into(tok, "Once upon a time", &prompt);
    encode_into(tok, "there was a cat.", &comp);
    const json_t *ids = json_array_get(json_array_get(a, 0), 0);
    const json_t *labels = json_array_get(json_array_get(a, 0), 1);
    size_t np = 1 + prompt.n, n = np + comp.n + 1;
    ck_assert_int_eq(json_array_size(ids), n);
    ck_assert_int_eq(json_integer_value(json_array_get(ids, 0)), 1);
    ck_assert_int_eq(json_integer_value(json_array_get(ids, n - 1)), 2);
    for (size_t t = 0; t < n; t++) {
        long long id = json_integer_value(json_array_get(ids, t));
        long long want_id = t == 0      ? 1
                            : t < np    ? prompt.ids[t - 1]
                            : t < n - 1 ? comp.ids[t - np]
                                        : 2;
        ck_assert_int_eq(id, want_id);
        ck_assert_int_eq(json_integer_value(json_array_get(labels, t)), t < np ? IGNORE : id);
    }
    tokenizer_ids_free(&prompt);
    tokenizer_ids_free(&comp);
    json_decref(a);
    json_decref(b);
    json_decref(c);
    free(jl);
    free(csv);
    free(js);
    tokenizer_free(tok);
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_bad_text_records_name_file_and_line) {
    TEST_NEED_SHARED(shared);
    Tokenizer *tok = load_tok(shared, "models/stories260K");
    char *dir = test_tmpdir(), err[2048];
    struct {
        DataFormat f;
        const char *name, *text, *needle;
    } cases[] = {
        {DATA_FORMAT_TEXT, "a.jsonl", "{\"text\": \"ok\"}\n{\"txt\": \"no\"}\n",
         "a.jsonl:2: missing field 'text'"},
        {DATA_FORMAT_TEXT, "b.jsonl", "{\"text\": \"ok\"}\n\n{\"text\": 3}\n",
         "b.jsonl:3: 'text' is not a string"},
        {DATA_FORMAT_ALPACA, "c.json",
         "[{\"instruction\": \"x\", \"output\": \"y\"}, {\"output\": "
         "\"y\"}]",
         "c.json: record 2: missing field 'instruction'"},
        {DATA_FORMAT_COMPLETION, "d.csv", "prompt,completion\na,b\nc\n",
         "d.csv:3: row has 1 fields but the header has 2"},
        {DATA_FORMAT_CHAT, "e.jsonl",
         "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n{\"messages\": "
         "[{\"role\": \"robot\", \"content\": \"hi\"}]}\n",
         "e.jsonl:2: "},
        {DATA_FORMAT_CHAT, "f.jsonl", "{\"messages\": \"hi\"}\n",
         "f.jsonl:1: 'messages' is not "
         "an array"},
    };
    const char *src = "{% for m in messages %}{% if m.role not in ['user', 'assistant'] %}"
                      "{{ raise_exception('unknown role ' + m.role) }}{% endif %}"
                      "{{ m.role }}: {{ m.content }}\n{% endfor %}";
    ChatTemplate *t = chat_template_parse(src, strlen(src), err, sizeof err);
    ck_assert_msg(t != NULL, "%s", err);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *path = tt_write_text(dir, cases[i].name, cases[i].text);
        const char *p[] = {path};
        DataOptions o = text_options(p, cases[i].f, tok);
        o.chat_template = t;
        first_error(&o, err, sizeof err);
        ck_assert_msg(strstr(err, cases[i].needle), "%s: '%s' not in '%s'", cases[i].name,
                      cases[i].needle, err);
        if (i == 4) ck_assert_msg(strstr(err, "unknown role robot"), "%s", err);
        /* on_error: skip counts it instead */
        o.on_error = DATA_ON_ERROR_SKIP;
        DataReader *r = data_open(&o, err, sizeof err);
        ck_assert_msg(r != NULL, "%s", err);
        DataRow row;
        while (data_next_row(r, &row, err, sizeof err) == 1) {
        }
        ck_assert_int_eq(data_skipped(r), 1);
        data_close(r);
        free(path);
    }
    /* A format that needs a tokenizer, without one */
    char *path = tt_write_text(dir, "g.jsonl", "{\"text\": \"hi\"}\n");
    const char *p[] = {path};
    DataOptions o = text_options(p, DATA_FORMAT_AUTO, NULL);
    first_error(&o, err, sizeof err);
    ck_assert_msg(strstr(err, "needs a tokenizer"), "%s", err);
    /* auto on a record with none of the fields */
    free(path);
    path = tt_write_text(dir, "h.jsonl", "{\"body\": \"hi\"}\n");
    p[0] = path;
    o = text_options(p, DATA_FORMAT_AUTO, tok);
    first_error(&o, err, sizeof err);
    ck_assert_msg(strstr(err, "h.jsonl: data.format auto: the first record has none"), "%s", err);
    free(path);
    chat_template_free(t);
    tokenizer_free(tok);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* auto: an empty first file defers to the next; a first line that is not JSON means tokens
 * (as before text formats existed), so on_error: skip still applies to it. */
START_TEST(test_auto_format_edge_cases) {
    TEST_NEED_SHARED(shared);
    Tokenizer *tok = load_tok(shared, "models/stories260K");
    char *dir = test_tmpdir(), err[1024];
    char *empty = tt_write_text(dir, "a.jsonl", "\n\n");
    char *text = tt_write_text(dir, "b.jsonl", "{\"text\": \"Tom ran.\"}\n");
    const char *p[] = {empty, text};
    DataOptions o = text_options(p, DATA_FORMAT_AUTO, tok);
    o.n_paths = 2;
    DataFormat f;
    ck_assert_int_eq(data_resolve_format(&o, &f, err, sizeof err), 0);
    ck_assert_int_eq(f, DATA_FORMAT_TEXT);
    json_t *rows = all_rows(&o);
    ck_assert_int_eq(json_array_size(rows), 1);
    json_decref(rows);
    char *bad = tt_write_text(dir, "c.jsonl", "not json\n{\"input_ids\": [1, 2]}\n");
    const char *q[] = {bad};
    o = text_options(q, DATA_FORMAT_AUTO, NULL);
    o.on_error = DATA_ON_ERROR_SKIP;
    rows = all_rows(&o);
    ck_assert_int_eq(json_array_size(rows), 1);
    json_decref(rows);
    o.on_error = DATA_ON_ERROR_FAIL;
    first_error(&o, err, sizeof err);
    ck_assert_msg(strstr(err, "c.jsonl:1: invalid JSON"), "%s", err);
    free(empty);
    free(text);
    free(bad);
    tokenizer_free(tok);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* The commands: a missing tokenizer or template is a usage error (exit 2). */
START_TEST(test_text_cursor_restores_exactly) {
    TEST_NEED_SHARED(shared);
    Tokenizer *tok = load_tok(shared, "models/stories260K");
    char *dir = test_tmpdir(), path[4200];
    snprintf(path, sizeof path, "%s/t.jsonl", dir);
    FILE *f = fopen(path, "w");
    for (int k = 0; k < 150; k++)
        fprintf(f, "%s{\"text\": \"Lily saw %d birds%s.\"}\n", k % 7 ? "" : "\n", k,
                k % 3 ? " in the park" : "");
    fprintf(f, "{\"txt\": \"bad\"}\n");
    fclose(f);
    const char *paths[] = {path};
    DataOptions o = text_options(paths, DATA_FORMAT_TEXT, tok);
    o.seq_len = 12;
    o.batch_size = 3;
    o.packing = true;
    o.overflow = DATA_OVERFLOW_SPLIT;
    o.shuffle = true;
    o.shuffle_buffer = 20;
    o.seed = 3;
    o.epochs = 2;
    o.on_error = DATA_ON_ERROR_SKIP;
    o.vocab_size = 512;
    TestStream *full = test_stream_collect(&o, -1);
    ck_assert_int_gt(full->n_batches, 100);
    const int cuts[] = {1, 7, 40, full->n_batches / 2 + 3, full->n_batches - 1};
    for (int c = 0; c < 5; c++) {
        char err[1024];
        DataReader *r = test_open(&o);
        Batch b;
        for (int i = 0; i < cuts[c]; i++)
            ck_assert_int_eq(data_next_batch(r, &b, err, sizeof err), 1);
        size_t n = data_cursor_size(r);
        void *blob = malloc(n);
        ck_assert_int_eq(data_cursor_save(r, blob, n, err, sizeof err), 0);
        data_close(r);
        DataReader *r2 = test_open(&o);
        ck_assert_msg(data_cursor_restore(r2, blob, n, err, sizeof err) == 0, "%s", err);
        TestStream *rest = test_stream_new(&o);
        test_stream_append(rest, r2, -1);
        test_stream_assert_equal(full, rest, cuts[c]);
        ck_assert_int_eq(data_skipped(r2), 1);
        test_stream_free(rest);
        data_close(r2);
        free(blob);
    }
    test_stream_free(full);
    tokenizer_free(tok);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* A job on a text dataset killed after step 3 and resumed ends byte-identical. */
START_TEST(test_text_dataset_resumes_exactly) {
    TEST_NEED_SHARED(shared);
    char *a = test_tmpdir(), *b = test_tmpdir(), text[8192];
    const char *job = "model: {path: %s/models/stories260K}\n"
                      "lora: {r: 4}\n"
                      "data: {train: %s/data.jsonl, seq_len: 64, shuffle_buffer: 4, packing: "
                      "true}\n"
                      "train: {batch_size: 2, max_steps: 5, lr: 1.0e-2, threads: 1}\n"
                      "output: {dir: %s/out, save_every: 2}\n";
    char *cfgs[2];
    char *dirs[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/data.jsonl", dirs[i]);
        FILE *f = fopen(path, "w");
        for (int k = 0; k < 40; k++)
            fprintf(f, "{\"text\": \"Tom had %s ball number %d. He liked to play.\"}\n",
                    k % 2 ? "a red" : "a big", k);
        fclose(f);
        snprintf(text, sizeof text, job, shared, dirs[i], dirs[i]);
        cfgs[i] = tt_write_text(dirs[i], "job.yaml", text);
    }
    char args[4400];
    snprintf(args, sizeof args, "train '%s'", cfgs[0]);
    ck_assert_int_eq(tt_lorafit(a, args), 0);
    const char *argv[] = {"train", cfgs[1], "--resume", NULL};
    char log[4200];
    snprintf(log, sizeof log, "%s/log.txt", b);
    ck_assert_int_eq(tt_wait(tt_spawn_fault(argv, log, "kill:step:3")), 128 + SIGKILL);
    ck_assert_int_eq(tt_wait(tt_spawn(argv, log)), 0);
    char *t = test_read_file(log, NULL);
    ck_assert_msg(strstr(t, "(step 2)") != NULL, "did not resume:\n%s", t);
    free(t);
    char pa[4400], pb[4400];
    snprintf(pa, sizeof pa, "%s/out/adapter/adapter_model.safetensors", a);
    snprintf(pb, sizeof pb, "%s/out/adapter/adapter_model.safetensors", b);
    ck_assert_msg(tt_same_bytes(pa, pb), "the resumed adapter differs");
    for (int i = 0; i < 2; i++) free(cfgs[i]);
    test_rmtree(a);
    test_rmtree(b);
    free(a);
    free(b);
}
END_TEST

Suite *text_data_suite(void) {
    Suite *s = suite_create("text_data");
    TCase *tc = tcase_create("formats");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_alpaca_prepare_matches_committed_ids);
    tcase_add_test(tc, test_tinystories_text_matches_committed_ids);
    tcase_add_test(tc, test_chat_llama3_masks_all_but_assistant_turns);
    tcase_add_test(tc, test_chat_template_that_rewrites_history_is_refused);
    tcase_add_test(tc, test_chat_record_tools_reach_the_template_as_in_trl);
    tcase_add_test(tc, test_completion_masks_prompt_and_formats_read_alike);
    tcase_add_test(tc, test_bad_text_records_name_file_and_line);
    tcase_add_test(tc, test_auto_format_edge_cases);
    tcase_add_test(tc, test_text_dataset_resumes_exactly);
    tcase_add_test(tc, test_text_cursor_restores_exactly);
    suite_add_tcase(s, tc);
    return s;
}
