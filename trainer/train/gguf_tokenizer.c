/* trainer/train/gguf_tokenizer.c — the tokenizer and chat templates of a GGUF model file: its
 * tokenizer.ggml.* and tokenizer.chat_template* metadata read into a TokenizerVocabSpec
 * (data/tokenizer builds it; the GGUF layout stays here, in the trainer). The keys and their
 * defaults are llama-vocab.cpp's: a "llama" model without special ids has <unk> 0, <s> 1,
 * </s> 2; a special id outside the vocabulary is ignored, as llama.cpp ignores it. The inverse,
 * a tokenizer.json written as this metadata, is trainer/model/gguf_vocab.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "trainer/store/store.h"
#include "trainer/train/internal.h"

bool train_path_is_file(const char *path) {
    struct stat st;
    return path && stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* A string value, or NULL (the key absent or of another type). */
static const char *str_value(const GgufFile *f, const char *key, size_t *len) {
    const char *s;
    return gguf_kv_str(gguf_find_kv(f, key), &s, len) ? s : NULL;
}

/* key's array of strings (or of numbers), of n elements when n > 0; NULL with err when it is
 * of another type or length, or absent and required (absent and optional: NULL, err empty). */
static const GgufKv *array_of(const GgufFile *f, const char *key, bool strings, uint64_t n,
                              bool required, char *err, size_t errlen) {
    const GgufKv *kv = gguf_find_kv(f, key);
    if (!kv) {
        if (required) snprintf(err, errlen, "%s: no %s", gguf_file_path(f), key);
        return NULL;
    }
    bool is_str = kv->type == GGUF_TYPE_ARRAY && kv->arr_type == GGUF_TYPE_STRING;
    if (kv->type != GGUF_TYPE_ARRAY || is_str != strings) {
        snprintf(err, errlen, "%s: %s must be an array of %s (it is %s%s%s)", gguf_file_path(f),
                 key, strings ? "strings" : "numbers", gguf_type_name((int)kv->type),
                 kv->type == GGUF_TYPE_ARRAY ? " of " : "",
                 kv->type == GGUF_TYPE_ARRAY ? gguf_type_name((int)kv->arr_type) : "");
        return NULL;
    }
    if (n && kv->n != n) {
        snprintf(err, errlen, "%s: %s has %llu values for %llu tokens", gguf_file_path(f), key,
                 (unsigned long long)kv->n, (unsigned long long)n);
        return NULL;
    }
    return kv;
}

static TokenizerStr *strings_of(const GgufKv *kv) {
    TokenizerStr *v = calloc(kv->n ? kv->n : 1, sizeof *v);
    for (uint64_t i = 0; v && i < kv->n; i++) gguf_elem_str(kv, i, &v[i].s, &v[i].len);
    return v;
}

static int32_t id_value(const GgufFile *f, const char *key, int32_t dflt) {
    int64_t v;
    if (!gguf_kv_int(gguf_find_kv(f, key), &v)) return dflt;
    return v >= 0 && v < INT32_MAX ? (int32_t)v : -1;
}

static int flag_value(const GgufFile *f, const char *key) {
    int64_t v;
    return gguf_kv_int(gguf_find_kv(f, key), &v) ? v != 0 : -1;
}

typedef struct Owned {
    TokenizerStr *tokens, *merges, *names, *texts;
    float *scores;
    int32_t *types;
} Owned;

static void owned_free(Owned *o) {
    free(o->tokens);
    free(o->merges);
    free(o->names);
    free(o->texts);
    free(o->scores);
    free(o->types);
}

/* tokenizer.chat_templates names the tokenizer.chat_template.NAME keys of named templates. */
static int named_templates(const GgufFile *f, TokenizerVocabSpec *s, Owned *o, char *err,
                           size_t errlen) {
    const GgufKv *list = array_of(f, "tokenizer.chat_templates", true, 0, false, err, errlen);
    if (!list) return err[0] ? -1 : 0;
    o->names = calloc(list->n ? list->n : 1, sizeof *o->names);
    o->texts = calloc(list->n ? list->n : 1, sizeof *o->texts);
    if (!o->names || !o->texts) return snprintf(err, errlen, "out of memory"), -1;
    for (uint64_t i = 0; i < list->n; i++) {
        char key[320];
        TokenizerStr *name = &o->names[s->n_templates], *text = &o->texts[s->n_templates];
        gguf_elem_str(list, i, &name->s, &name->len);
        snprintf(key, sizeof key, "tokenizer.chat_template.%.*s",
                 (int)(name->len < 256 ? name->len : 256), name->s);
        if ((text->s = str_value(f, key, &text->len))) s->n_templates++;
    }
    s->template_names = o->names;
    s->template_texts = o->texts;
    return 0;
}

static Tokenizer *from_file(const GgufFile *f, char *err, size_t errlen) {
    TokenizerVocabSpec s = {.where = gguf_file_path(f)};
    Owned o = {0};
    Tokenizer *t = NULL;
    size_t len;
    char model[64], pre[64];
    const char *m = str_value(f, "tokenizer.ggml.model", &len);
    if (!m) {
        snprintf(err, errlen,
                 "%s: no tokenizer.ggml.model: the file carries no tokenizer (set data.tokenizer "
                 "to a directory with the model's tokenizer.json)",
                 s.where);
        return NULL;
    }
    snprintf(model, sizeof model, "%.*s", (int)(len < 63 ? len : 63), m);
    s.model = model;
    const char *p = str_value(f, "tokenizer.ggml.pre", &len);
    if (p) snprintf(pre, sizeof pre, "%.*s", (int)(len < 63 ? len : 63), p);
    s.pre = p ? pre : NULL;
    const GgufKv *tokens = array_of(f, "tokenizer.ggml.tokens", true, 0, true, err, errlen);
    if (!tokens) return NULL;
    s.n_tokens = (size_t)tokens->n;
    const GgufKv *scores =
        array_of(f, "tokenizer.ggml.scores", false, tokens->n, false, err, errlen);
    const GgufKv *types =
        err[0] ? NULL
               : array_of(f, "tokenizer.ggml.token_type", false, tokens->n, false, err, errlen);
    const GgufKv *merges =
        err[0] ? NULL : array_of(f, "tokenizer.ggml.merges", true, 0, false, err, errlen);
    if (err[0]) return NULL;
    o.tokens = strings_of(tokens);
    o.merges = merges ? strings_of(merges) : NULL;
    o.scores = scores ? malloc(s.n_tokens * sizeof *o.scores) : NULL;
    o.types = types ? malloc(s.n_tokens * sizeof *o.types) : NULL;
    if (!o.tokens || (merges && !o.merges) || (scores && !o.scores) || (types && !o.types)) {
        snprintf(err, errlen, "%s: out of memory reading the tokenizer", s.where);
        goto out;
    }
    for (size_t i = 0; i < s.n_tokens; i++) {
        double v;
        int64_t k;
        if (scores && gguf_elem_float(scores, i, &v))
            o.scores[i] = (float)v;
        else if (scores)
            o.scores[i] = 0;
        if (types) o.types[i] = gguf_elem_int(types, i, &k) && k >= 0 && k < 64 ? (int32_t)k : -1;
    }
    s.tokens = o.tokens;
    s.scores = o.scores;
    s.types = o.types;
    s.merges = o.merges;
    s.n_merges = merges ? (size_t)merges->n : 0;
    bool spm = !strcmp(model, "llama");
    s.bos_id = id_value(f, "tokenizer.ggml.bos_token_id", spm ? 1 : -1);
    s.eos_id = id_value(f, "tokenizer.ggml.eos_token_id", spm ? 2 : -1);
    s.unk_id = id_value(f, "tokenizer.ggml.unknown_token_id", spm ? 0 : -1);
    s.pad_id = id_value(f, "tokenizer.ggml.padding_token_id", -1);
    s.add_bos = flag_value(f, "tokenizer.ggml.add_bos_token");
    s.add_eos = flag_value(f, "tokenizer.ggml.add_eos_token");
    s.add_space_prefix = flag_value(f, "tokenizer.ggml.add_space_prefix");
    s.remove_extra_whitespaces = flag_value(f, "tokenizer.ggml.remove_extra_whitespaces");
    s.chat_template.s = str_value(f, "tokenizer.chat_template", &s.chat_template.len);
    if (named_templates(f, &s, &o, err, errlen) == 0) t = tokenizer_from_vocab(&s, err, errlen);
out:
    owned_free(&o);
    return t;
}

Tokenizer *train_tokenizer_load(const char *path, char *err, size_t errlen) {
    err[0] = '\0';
    if (!train_path_is_file(path)) return tokenizer_load(path, err, errlen);
    GgufFile *f = gguf_open(path, err, errlen);
    if (!f) return NULL;
    Tokenizer *t = from_file(f, err, errlen);
    gguf_close(f);
    return t;
}
