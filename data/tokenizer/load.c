/* data/tokenizer/load.c — tokenizer.json -> Tokenizer: the top level, the BPE model and the
 * added tokens (the pipeline components are in load_parts.c), plus the read-only accessors.
 * Built in the library's order: model, normalizer, added tokens (whose normalized forms need
 * the normalizer), then pre-tokenizer, post-processor and decoder. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/tokenizer/internal.h"

/* A string or null member, copied (NULL for null/absent). */
static int get_opt_string(json_t *o, const char *key, char **out, const char *where, char *err,
                          size_t errlen) {
    json_t *v = json_object_get(o, key);
    *out = NULL;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_string(v)) {
        tok_err(err, errlen, "tokenizer.json: %s.%s must be a string or null", where, key);
        return -1;
    }
    *out = tok_strndup(json_string_value(v), json_string_length(v));
    if (!*out) return tok_err(err, errlen, "out of memory"), -1;
    return 0;
}

static int load_merge(Bpe *bpe, json_t *m, size_t i, char *err, size_t errlen) {
    if (json_is_string(m)) { /* "a b": exactly two parts around one space */
        const char *s = json_string_value(m);
        size_t n = json_string_length(m);
        const char *sp = memchr(s, ' ', n);
        if (!sp || memchr(sp + 1, ' ', n - (size_t)(sp + 1 - s))) {
            tok_err(err, errlen,
                    "tokenizer.json: model.merges[%zu] \"%.100s\" is not two tokens "
                    "separated by one space",
                    i, s);
            return -1;
        }
        return bpe_add_merge(bpe, s, (size_t)(sp - s), sp + 1, n - (size_t)(sp + 1 - s), err,
                             errlen);
    }
    if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
        json_is_string(json_array_get(m, 1))) {
        json_t *a = json_array_get(m, 0), *b = json_array_get(m, 1);
        return bpe_add_merge(bpe, json_string_value(a), json_string_length(a), json_string_value(b),
                             json_string_length(b), err, errlen);
    }
    tok_err(err, errlen,
            "tokenizer.json: model.merges[%zu] must be a string \"a b\" or a pair "
            "[\"a\", \"b\"]",
            i);
    return -1;
}

static int load_model(Tokenizer *t, json_t *m, char *err, size_t errlen) {
    Bpe *bpe = &t->bpe;
    if (!json_is_object(m)) {
        tok_err(err, errlen, "tokenizer.json: \"model\" must be an object");
        return -1;
    }
    json_t *type = json_object_get(m, "type");
    if (type && !json_is_string(type)) {
        tok_err(err, errlen, "tokenizer.json: model.type must be a string");
        return -1;
    }
    if (type && strcmp(json_string_value(type), "BPE") != 0) {
        tok_err(err, errlen, "tokenizer.json: model \"%.60s\" is not supported (only BPE is)",
                json_string_value(type));
        return -1;
    }
    if (!type && !json_object_get(m, "merges")) {
        tok_err(err, errlen,
                "tokenizer.json: model has no \"type\" and no merges: only BPE is supported");
        return -1;
    }
    json_t *dropout = json_object_get(m, "dropout");
    if (dropout && !json_is_null(dropout) &&
        !(json_is_number(dropout) && json_number_value(dropout) == 0)) {
        tok_err(err, errlen,
                "tokenizer.json: model.dropout must be null or 0 (BPE dropout is not supported)");
        return -1;
    }
    if (get_opt_string(m, "unk_token", &bpe->unk_token, "model", err, errlen) ||
        get_opt_string(m, "continuing_subword_prefix", &bpe->prefix, "model", err, errlen) ||
        get_opt_string(m, "end_of_word_suffix", &bpe->suffix, "model", err, errlen) ||
        tok_opt_bool(m, "fuse_unk", false, &bpe->fuse_unk, "model", err, errlen) ||
        tok_opt_bool(m, "byte_fallback", false, &bpe->byte_fallback, "model", err, errlen) ||
        tok_opt_bool(m, "ignore_merges", false, &bpe->ignore_merges, "model", err, errlen))
        return -1;
    json_t *vocab = json_object_get(m, "vocab");
    if (!json_is_object(vocab)) {
        tok_err(err, errlen, "tokenizer.json: model.vocab must be an object of token -> id");
        return -1;
    }
    const char *key;
    size_t klen;
    json_t *v;
    json_object_keylen_foreach(vocab, key, klen, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            json_integer_value(v) >= INT32_MAX) {
            tok_err(err, errlen, "tokenizer.json: model.vocab[\"%.100s\"] must be an id in [0, %d)",
                    key, INT32_MAX);
            return -1;
        }
        const char *k = pool_strndup(&bpe->pool, key, klen);
        if (!k || strmap_put(&bpe->vocab, k, (uint32_t)klen, (int32_t)json_integer_value(v)))
            return tok_err(err, errlen, "out of memory"), -1;
    }
    json_t *merges = json_object_get(m, "merges");
    if (merges && !json_is_null(merges) && !json_is_array(merges)) {
        tok_err(err, errlen, "tokenizer.json: model.merges must be an array");
        return -1;
    }
    for (size_t i = 0; merges && i < json_array_size(merges); i++)
        if (load_merge(bpe, json_array_get(merges, i), i, err, errlen)) {
            if (strncmp(err, "tokenizer.json", 14) != 0) {
                char inner[400];
                snprintf(inner, sizeof inner, "%s", err);
                tok_err(err, errlen, "tokenizer.json: %s", inner);
            }
            return -1;
        }
    return bpe_finish(bpe, err, errlen);
}

static int load_added(Tokenizer *t, json_t *list, char *err, size_t errlen) {
    if (!list || json_is_null(list)) return 0;
    if (!json_is_array(list)) {
        tok_err(err, errlen, "tokenizer.json: \"added_tokens\" must be an array");
        return -1;
    }
    for (size_t i = 0; i < json_array_size(list); i++) {
        json_t *o = json_array_get(list, i);
        char where[64];
        snprintf(where, sizeof where, "added_tokens[%zu]", i);
        json_t *content = json_object_get(o, "content");
        if (!json_is_object(o) || !json_is_string(content)) {
            tok_err(err, errlen, "tokenizer.json: %s needs a string \"content\"", where);
            return -1;
        }
        AddedToken at = {.content = (char *)json_string_value(content),
                         .len = json_string_length(content)};
        if (tok_opt_bool(o, "special", false, &at.special, where, err, errlen) ||
            tok_opt_bool(o, "single_word", false, &at.single_word, where, err, errlen) ||
            tok_opt_bool(o, "lstrip", false, &at.lstrip, where, err, errlen) ||
            tok_opt_bool(o, "rstrip", false, &at.rstrip, where, err, errlen) ||
            tok_opt_bool(o, "normalized", !at.special, &at.normalized, where, err, errlen) ||
            added_add(&t->added, &t->bpe, &at, err, errlen))
            return -1;
    }
    return 0;
}

static void collect_split_regexes(Tokenizer *t, const PreTokenizer *pt) {
    if (pt->kind == PRE_SEQUENCE) {
        for (size_t i = 0; i < pt->n_items; i++) collect_split_regexes(t, &pt->items[i]);
        return;
    }
    if (pt->kind == PRE_BYTE_LEVEL) {
        t->info.byte_level = true;
        t->info.add_prefix_space = t->info.add_prefix_space || pt->add_prefix_space;
    }
    if (pt->kind == PRE_METASPACE) {
        t->info.metaspace = true;
        t->info.add_prefix_space = t->info.add_prefix_space || pt->prepend_scheme != PREPEND_NEVER;
    }
    if (pt->kind == PRE_SPLIT && pt->re && pt->re->code) {
        const char **v = realloc(t->split_regexes, (t->n_split_regexes + 1) * sizeof *v);
        if (!v) return;
        t->split_regexes = v;
        v[t->n_split_regexes++] = pt->re->source;
    }
}

static bool has_prepend_meta(const Normalizer *n) {
    if (n->kind == NORM_PREPEND) return strcmp(n->text, "\xE2\x96\x81") == 0;
    for (size_t i = 0; i < n->n_items; i++)
        if (has_prepend_meta(&n->items[i])) return true;
    return false;
}

static int load_root(Tokenizer *t, json_t *root, char *err, size_t errlen) {
    if (!json_is_object(root)) {
        tok_err(err, errlen, "tokenizer.json: the top level must be an object");
        return -1;
    }
    json_t *version = json_object_get(root, "version");
    if (version && !(json_is_string(version) && strcmp(json_string_value(version), "1.0") == 0)) {
        tok_err(err, errlen, "tokenizer.json: unknown version (only \"1.0\" is known)");
        return -1;
    }
    json_t *model = json_object_get(root, "model");
    if (!model) {
        tok_err(err, errlen, "tokenizer.json: no \"model\"");
        return -1;
    }
    if (load_model(t, model, err, errlen)) return -1;
    json_t *j = json_object_get(root, "normalizer");
    if (j && !json_is_null(j)) {
        t->normalizer = calloc(1, sizeof *t->normalizer);
        if (!t->normalizer) return tok_err(err, errlen, "out of memory"), -1;
        if (load_normalizer(t, j, "normalizer", t->normalizer, err, errlen)) return -1;
    }
    TokenizerScratch *sc = tokenizer_scratch_new();
    if (!sc) return tok_err(err, errlen, "out of memory"), -1;
    int rc = load_added(t, json_object_get(root, "added_tokens"), err, errlen) ||
             added_build(&t->added, t->normalizer, sc, err, errlen);
    tokenizer_scratch_free(sc);
    if (rc) return -1;
    j = json_object_get(root, "pre_tokenizer");
    if (j && !json_is_null(j)) {
        t->pretok = calloc(1, sizeof *t->pretok);
        if (!t->pretok) return tok_err(err, errlen, "out of memory"), -1;
        if (load_pretokenizer(t, j, "pre_tokenizer", t->pretok, err, errlen)) return -1;
    }
    j = json_object_get(root, "post_processor");
    if (j && !json_is_null(j) && load_post(t, j, "post_processor", err, errlen)) return -1;
    j = json_object_get(root, "decoder");
    if (j && !json_is_null(j)) {
        t->decoder = calloc(1, sizeof *t->decoder);
        if (!t->decoder) return tok_err(err, errlen, "out of memory"), -1;
        if (load_decoder(t, j, "decoder", t->decoder, err, errlen)) return -1;
    }
    tokenizer_finish(t);
    return 0;
}

void tokenizer_finish(Tokenizer *t) {
    if (t->pretok) collect_split_regexes(t, t->pretok);
    t->vocab_size = t->bpe.n_ids > t->added.n_ids ? t->bpe.n_ids : t->added.n_ids;
    TokenizerModelInfo *info = &t->info;
    info->kind = "BPE";
    info->byte_fallback = t->bpe.byte_fallback;
    info->fuse_unk = t->bpe.fuse_unk;
    info->ignore_merges = t->bpe.ignore_merges;
    info->unk_id = t->bpe.unk_token
                       ? tokenizer_token_to_id(t, t->bpe.unk_token, strlen(t->bpe.unk_token))
                       : -1;
    info->continuing_subword_prefix = t->bpe.prefix;
    info->end_of_word_suffix = t->bpe.suffix;
    if (t->normalizer && has_prepend_meta(t->normalizer))
        info->metaspace = info->add_prefix_space = true;
    info->n_merges = t->bpe.n_merges;
    info->n_split_regexes = t->n_split_regexes;
}

/* A Tokenizer from tokenizer.json's parsed root (consumed). NULL with err. */
Tokenizer *tokenizer_alloc(char *err, size_t errlen) {
    Tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        tok_err(err, errlen, "out of memory");
        return NULL;
    }
    static uint64_t next_serial;
    t->serial = __atomic_add_fetch(&next_serial, 1, __ATOMIC_RELAXED);
    t->special.bos_id = t->special.eos_id = t->special.pad_id = t->special.unk_id = -1;
    t->special.add_bos_token = t->special.add_eos_token = -1;
    t->special.model_max_length = -1;
    return t;
}

static Tokenizer *from_root(json_t *root, char *err, size_t errlen) {
    Tokenizer *t = tokenizer_alloc(err, errlen);
    if (!t) {
        json_decref(root);
        return NULL;
    }
    int rc = load_root(t, root, err, errlen);
    json_decref(root);
    if (rc) {
        tokenizer_free(t);
        return NULL;
    }
    return t;
}

Tokenizer *tokenizer_load_json(const char *text, size_t len, char *err, size_t errlen) {
    if (err && errlen) err[0] = 0;
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_ALLOW_NUL, &jerr);
    if (!root) {
        tok_err(err, errlen, "tokenizer.json:%d:%d: %s", jerr.line, jerr.column, jerr.text);
        return NULL;
    }
    return from_root(root, err, errlen);
}

Tokenizer *tokenizer_load(const char *dir, char *err, size_t errlen) {
    if (err && errlen) err[0] = 0;
    char path[4096];
    if (snprintf(path, sizeof path, "%s/tokenizer.json", dir) >= (int)sizeof path) {
        tok_err(err, errlen, "%s: path too long", dir);
        return NULL;
    }
    json_error_t jerr;
    errno = 0;
    json_t *root = json_load_file(path, JSON_ALLOW_NUL, &jerr);
    if (!root) {
        if (jerr.line < 1) /* it could not be opened or read: fopen's errno */
            tok_err(err, errlen, "%s: %s", path, errno ? strerror(errno) : jerr.text);
        else
            tok_err(err, errlen, "%s:%d:%d: %s", path, jerr.line, jerr.column, jerr.text);
        return NULL;
    }
    Tokenizer *t = from_root(root, err, errlen);
    if (!t) {
        char inner[512];
        snprintf(inner, sizeof inner, "%s", err ? err : "");
        tok_err(err, errlen, "%s/%s", dir, inner);
        return NULL;
    }
    if (tokcfg_load(t, dir, err, errlen)) {
        tokenizer_free(t);
        return NULL;
    }
    return t;
}

void tokenizer_free(Tokenizer *t) {
    if (!t) return;
    bpe_free(&t->bpe);
    added_free(&t->added);
    normalizer_free(t->normalizer);
    free(t->normalizer);
    pretokenizer_free(t->pretok);
    free(t->pretok);
    post_free(&t->post);
    decoder_free(t->decoder);
    free(t->decoder);
    regex_free(t->gpt2);
    free(t->split_regexes);
    tokcfg_free(t);
    free(t);
}

int tokenizer_vocab_size(const Tokenizer *t) {
    return t->vocab_size;
}

int32_t tokenizer_token_to_id(const Tokenizer *t, const char *token, size_t len) {
    int32_t k = strmap_get(&t->added.by_content, token, (uint32_t)len);
    if (k >= 0) return t->added.tokens[k].id;
    return strmap_get(&t->bpe.vocab, token, (uint32_t)len);
}

const char *tokenizer_id_to_token(const Tokenizer *t, int32_t id, size_t *len) {
    if (id < 0) return NULL;
    if (id < t->added.n_ids && t->added.by_id[id] >= 0) {
        const AddedToken *a = &t->added.tokens[t->added.by_id[id]];
        if (len) *len = a->len;
        return a->content;
    }
    if (id < t->bpe.n_ids && t->bpe.id_str[id]) {
        if (len) *len = t->bpe.id_len[id];
        return t->bpe.id_str[id];
    }
    return NULL;
}

int tokenizer_token_flags(const Tokenizer *t, int32_t id) {
    size_t len;
    const char *s = tokenizer_id_to_token(t, id, &len);
    if (!s) return TOKENIZER_TOKEN_UNUSED;
    int f = 0;
    if (id < t->added.n_ids && t->added.by_id[id] >= 0) {
        const AddedToken *a = &t->added.tokens[t->added.by_id[id]];
        f |= TOKENIZER_TOKEN_ADDED;
        if (a->special) f |= TOKENIZER_TOKEN_SPECIAL;
        if (a->normalized) f |= TOKENIZER_TOKEN_NORMALIZED;
        if (a->lstrip) f |= TOKENIZER_TOKEN_LSTRIP;
        if (a->rstrip) f |= TOKENIZER_TOKEN_RSTRIP;
        if (a->single_word) f |= TOKENIZER_TOKEN_SINGLE_WORD;
    }
    if (t->bpe.byte_fallback && len == 6 && memcmp(s, "<0x", 3) == 0 && s[5] == '>') {
        for (int b = 0; b < 256; b++)
            if (t->bpe.byte_ids[b] == id) f |= TOKENIZER_TOKEN_BYTE;
    }
    return f;
}

void tokenizer_model_info(const Tokenizer *t, TokenizerModelInfo *info) {
    *info = t->info;
}

int tokenizer_merge(const Tokenizer *t, size_t rank, const char **left, const char **right) {
    if (rank >= t->bpe.n_merges) return -1;
    *left = t->bpe.id_str[t->bpe.merge_list[rank][0]];
    *right = t->bpe.id_str[t->bpe.merge_list[rank][1]];
    return 0;
}

const char *tokenizer_split_regex(const Tokenizer *t, size_t i) {
    return i < t->n_split_regexes ? t->split_regexes[i] : NULL;
}

size_t tokenizer_added_count(const Tokenizer *t) {
    return t->added.n;
}

int tokenizer_added(const Tokenizer *t, size_t i, const char **content, int32_t *id) {
    if (i >= t->added.n) return -1;
    *content = t->added.tokens[i].content;
    *id = t->added.tokens[i].id;
    return 0;
}
