/* trainer/cli/cmd_tokenize.c — `lorafit tokenize DIR [--no-special-tokens]
 * [--decode [--skip-special-tokens]]`: the tokenizer (and chat template) of a model or
 * tokenizer directory, or of a GGUF model file, as a filter, JSON lines on stdin to JSON lines on
 * stdout:
 *   {"text": S}                                   -> {"input_ids": [...]}
 *   {"messages": [...], "add_generation_prompt": B, ...other keys for the template}
 *                                                 -> {"text": rendered, "input_ids": [...]}
 *   --decode: {"input_ids": [...]}                -> {"text": S}
 * Text gets the post-processor's special tokens unless --no-special-tokens; a rendered chat
 * never does (the template writes them), as apply_chat_template(tokenize=True). The special
 * tokens (bos_token, eos_token, ...) are in the template's context unless the line sets them.
 * A bad line stops the command (exit 1) naming its line number. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trainer/cli/cli.h"
#include "trainer/train/train.h"

static void tokenize_usage(FILE *out) {
    fprintf(out,
            "usage: lorafit tokenize DIR [--no-special-tokens] [--decode [--skip-special-tokens]]\n"
            "  Reads JSON lines on stdin, writes one line for each on stdout:\n"
            "    {\"text\": S} -> {\"input_ids\": [...]}\n"
            "    {\"messages\": [...], \"add_generation_prompt\": B, ...} -> {\"text\": rendered,\n"
            "      \"input_ids\": [...]} (DIR's chat template; other keys go to the template)\n"
            "    --decode: {\"input_ids\": [...]} -> {\"text\": S}\n"
            "  DIR is a model or tokenizer directory (tokenizer.json, tokenizer_config.json),\n"
            "  or a GGUF model file (its tokenizer.ggml.* and tokenizer.chat_template).\n");
}

typedef struct Tok {
    Tokenizer *tok;
    TokenizerScratch *scratch;
    ChatTemplate *tmpl; /* parsed on the first messages line */
    bool special, decode, skip_special;
} Tok;

static json_t *ids_json(const TokenizerIds *ids) {
    json_t *a = json_array();
    for (size_t i = 0; a && i < ids->n; i++) json_array_append_new(a, json_integer(ids->ids[i]));
    return a;
}

static json_t *decode_line(Tok *t, const json_t *in, char *err, size_t errlen) {
    const json_t *a = json_object_get(in, "input_ids");
    if (!json_is_array(a)) {
        snprintf(err, errlen, "expected an array 'input_ids' (--decode)");
        return NULL;
    }
    size_t n = json_array_size(a);
    int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    if (!ids) return NULL;
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_array_get(a, i);
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX) {
            snprintf(err, errlen, "input_ids[%zu] is not a token id", i);
            free(ids);
            return NULL;
        }
        ids[i] = (int32_t)json_integer_value(v);
    }
    char *text;
    size_t len;
    int rc = tokenizer_decode(t->tok, ids, n, t->skip_special, &text, &len, err, errlen);
    free(ids);
    if (rc != 0) return NULL;
    json_t *out = json_pack("{s:s%}", "text", text, len);
    free(text);
    return out;
}

static json_t *chat_line(Tok *t, const json_t *in, char *err, size_t errlen) {
    if (!t->tmpl) {
        const char *src = tokenizer_special(t->tok)->chat_template;
        if (!src) {
            snprintf(err, errlen, "the tokenizer has no chat_template (tokenizer_config.json)");
            return NULL;
        }
        char perr[512];
        if (!(t->tmpl = chat_template_parse(src, strlen(src), perr, sizeof perr))) {
            snprintf(err, errlen, "chat_template: %s", perr);
            return NULL;
        }
    }
    json_t *ctx = json_copy((json_t *)in);
    if (!ctx) return NULL;
    const TokenizerSpecial *sp = tokenizer_special(t->tok);
    const char *names[] = {"bos_token", "eos_token", "pad_token", "unk_token"};
    const char *values[] = {sp->bos_token, sp->eos_token, sp->pad_token, sp->unk_token};
    for (int i = 0; i < 4; i++)
        if (values[i] && !json_object_get(ctx, names[i]))
            json_object_set_new(ctx, names[i], json_string(values[i]));
    if (!json_object_get(ctx, "add_generation_prompt"))
        json_object_set_new(ctx, "add_generation_prompt", json_false());
    size_t len;
    char *text = chat_template_render(t->tmpl, ctx, &len, err, errlen);
    json_decref(ctx);
    if (!text) return NULL;
    TokenizerIds ids = {0};
    json_t *out = NULL;
    if (tokenizer_encode(t->tok, t->scratch, text, len, false, &ids, err, errlen) == 0)
        out = json_pack("{s:s%,s:o}", "text", text, len, "input_ids", ids_json(&ids));
    free(text);
    tokenizer_ids_free(&ids);
    return out;
}

static json_t *encode_line(Tok *t, const json_t *in, char *err, size_t errlen) {
    if (t->decode) return decode_line(t, in, err, errlen);
    if (json_object_get(in, "messages")) return chat_line(t, in, err, errlen);
    const json_t *s = json_object_get(in, "text");
    if (!json_is_string(s)) {
        snprintf(err, errlen, "expected a string 'text' or an array 'messages'");
        return NULL;
    }
    TokenizerIds ids = {0};
    json_t *out = NULL;
    if (tokenizer_encode(t->tok, t->scratch, json_string_value(s), json_string_length(s),
                         t->special, &ids, err, errlen) == 0)
        out = json_pack("{s:o}", "input_ids", ids_json(&ids));
    tokenizer_ids_free(&ids);
    return out;
}

static int run(Tok *t) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long lineno = 0;
    int rc = EXIT_OK;
    while (rc == EXIT_OK && (n = getline(&line, &cap, stdin)) >= 0) {
        lineno++;
        size_t k = (size_t)n;
        while (k && (line[k - 1] == '\n' || line[k - 1] == '\r' || line[k - 1] == ' ')) k--;
        if (k == 0) continue;
        json_error_t jerr;
        json_t *in = json_loadb(line, k, 0, &jerr);
        char err[1024] = "out of memory";
        json_t *out = NULL;
        if (!in)
            snprintf(err, sizeof err, "invalid JSON at column %d: %s", jerr.column, jerr.text);
        else if (!json_is_object(in))
            snprintf(err, sizeof err, "expected a JSON object");
        else
            out = encode_line(t, in, err, sizeof err);
        json_decref(in);
        char *text = out ? json_dumps(out, 0) : NULL;
        json_decref(out);
        if (!text) {
            fprintf(stderr, "lorafit tokenize: stdin:%ld: %s\n", lineno, err);
            rc = EXIT_RUNTIME;
        } else {
            puts(text);
            free(text);
        }
    }
    free(line);
    if (fflush(stdout) != 0) rc = EXIT_RUNTIME;
    return rc;
}

int cmd_tokenize(int argc, char **argv) {
    const char *dir = NULL;
    Tok t = {.special = true};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            tokenize_usage(stdout);
            return EXIT_OK;
        } else if (!strcmp(a, "--no-special-tokens")) {
            t.special = false;
        } else if (!strcmp(a, "--decode")) {
            t.decode = true;
        } else if (!strcmp(a, "--skip-special-tokens")) {
            t.skip_special = true;
        } else if (a[0] == '-' || dir) {
            fprintf(stderr, "lorafit tokenize: unexpected argument '%s'\n", a);
            tokenize_usage(stderr);
            return EXIT_USAGE;
        } else {
            dir = a;
        }
    }
    if (!dir || (t.skip_special && !t.decode)) {
        tokenize_usage(stderr);
        return EXIT_USAGE;
    }
    char err[1024];
    if (!(t.tok = train_tokenizer_load(dir, err, sizeof err))) {
        fprintf(stderr, "lorafit tokenize: %s\n", err);
        return EXIT_USAGE;
    }
    int rc = EXIT_RUNTIME;
    if ((t.scratch = tokenizer_scratch_new())) rc = run(&t);
    tokenizer_scratch_free(t.scratch);
    chat_template_free(t.tmpl);
    tokenizer_free(t.tok);
    return rc;
}
