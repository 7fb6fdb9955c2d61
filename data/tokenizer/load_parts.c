/* data/tokenizer/load_parts.c — the pipeline components of tokenizer.json: normalizer,
 * pre_tokenizer, post_processor and decoder objects (a "type" and its fields, Sequences nest).
 * A type or option this module does not implement is an error that names it, never a silent
 * fallback: a tokenizer that loads gives the library's ids. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/tokenizer/internal.h"

#define OOM() (tok_err(err, errlen, "out of memory"), -1)

static const char *type_of(json_t *j, const char *where, const char *what, char *err,
                           size_t errlen) {
    const char *type = json_string_value(json_object_get(j, "type"));
    if (!json_is_object(j) || !type) {
        tok_err(err, errlen, "tokenizer.json: %s must be an object with a \"type\" (a %s)", where,
                what);
        return NULL;
    }
    return type;
}

static int unsupported(const char *what, const char *type, const char *where, char *err,
                       size_t errlen) {
    tok_err(err, errlen, "tokenizer.json: %s \"%.60s\" is not supported (at %s)", what, type,
            where);
    return -1;
}

int tok_opt_bool(json_t *o, const char *key, bool dflt, bool *out, const char *where, char *err,
                 size_t errlen) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        *out = dflt;
        return 0;
    }
    if (!json_is_boolean(v)) {
        tok_err(err, errlen, "tokenizer.json: %s.%s must be true or false", where, key);
        return -1;
    }
    *out = json_is_true(v);
    return 0;
}

static json_t *need(json_t *o, const char *key, int (*is)(const json_t *), const char *kind,
                    const char *where, char *err, size_t errlen) {
    json_t *v = json_object_get(o, key);
    if (!v || !is(v)) {
        tok_err(err, errlen, "tokenizer.json: %s needs \"%s\" (%s)", where, key, kind);
        return NULL;
    }
    return v;
}
static int is_string(const json_t *v) {
    return json_is_string(v);
}
static int is_array(const json_t *v) {
    return json_is_array(v);
}
static int is_object(const json_t *v) {
    return json_is_object(v);
}
static int is_uint(const json_t *v) {
    return json_is_integer(v) && json_integer_value(v) >= 0;
}

/* {"String": s} or {"Regex": r}. */
static Regex *load_pattern(json_t *o, const char *where, char *err, size_t errlen) {
    json_t *p =
        need(o, "pattern", is_object, "{\"String\": ...} or {\"Regex\": ...}", where, err, errlen);
    if (!p) return NULL;
    json_t *s = json_object_get(p, "String"), *r = json_object_get(p, "Regex");
    if (json_is_string(s)) {
        Regex *re = regex_literal(json_string_value(s), json_string_length(s));
        if (!re) tok_err(err, errlen, "out of memory");
        return re;
    }
    if (json_is_string(r)) {
        char inner[400];
        Regex *re = regex_compile(json_string_value(r), json_string_length(r), inner, sizeof inner);
        if (!re) tok_err(err, errlen, "tokenizer.json: %s.pattern: %s", where, inner);
        return re;
    }
    tok_err(err, errlen, "tokenizer.json: %s.pattern must be {\"String\": ...} or {\"Regex\": ...}",
            where);
    return NULL;
}

/* A string of exactly one character. */
static int one_char(json_t *o, const char *key, uint32_t dflt, uint32_t *out, const char *where,
                    char *err, size_t errlen) {
    json_t *v = json_object_get(o, key);
    if (!v) {
        *out = dflt;
        return 0;
    }
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    uint32_t cp = 0;
    if (s && n && utf8_valid_prefix(s, n) == n && (size_t)utf8_next(s, n, &cp) == n) {
        *out = cp;
        return 0;
    }
    tok_err(err, errlen, "tokenizer.json: %s.%s must be a string of one character", where, key);
    return -1;
}

static int load_list(json_t *arr, const char *key, const char *where, size_t elem, void **items,
                     size_t *n, char *err, size_t errlen) {
    json_t *list = need(arr, key, is_array, "an array", where, err, errlen);
    if (!list) return -1;
    *n = json_array_size(list);
    *items = calloc(*n ? *n : 1, elem);
    return *items ? 0 : OOM();
}

int load_normalizer(Tokenizer *t, json_t *j, const char *where, Normalizer *n, char *err,
                    size_t errlen) {
    const char *type = type_of(j, where, "normalizer", err, errlen);
    if (!type) return -1;
    if (!strcmp(type, "NFC"))
        n->kind = NORM_NFC;
    else if (!strcmp(type, "NFD"))
        n->kind = NORM_NFD;
    else if (!strcmp(type, "NFKC"))
        n->kind = NORM_NFKC;
    else if (!strcmp(type, "NFKD"))
        n->kind = NORM_NFKD;
    else if (!strcmp(type, "Lowercase"))
        n->kind = NORM_LOWERCASE;
    else if (!strcmp(type, "StripAccents"))
        n->kind = NORM_STRIP_ACCENTS;
    else if (!strcmp(type, "Prepend")) {
        n->kind = NORM_PREPEND;
        json_t *p = need(j, "prepend", is_string, "a string", where, err, errlen);
        if (!p) return -1;
        n->text_len = json_string_length(p);
        if (!(n->text = tok_strndup(json_string_value(p), n->text_len))) return OOM();
    } else if (!strcmp(type, "Replace")) {
        n->kind = NORM_REPLACE;
        json_t *c = need(j, "content", is_string, "a string", where, err, errlen);
        if (!c || !(n->re = load_pattern(j, where, err, errlen))) return -1;
        n->text_len = json_string_length(c);
        if (!(n->text = tok_strndup(json_string_value(c), n->text_len))) return OOM();
    } else if (!strcmp(type, "Strip")) {
        n->kind = NORM_STRIP;
        if (tok_opt_bool(j, "strip_left", true, &n->left, where, err, errlen) ||
            tok_opt_bool(j, "strip_right", true, &n->right, where, err, errlen))
            return -1;
    } else if (!strcmp(type, "Sequence")) {
        n->kind = NORM_SEQUENCE;
        if (load_list(j, "normalizers", where, sizeof *n->items, (void **)&n->items, &n->n_items,
                      err, errlen))
            return -1;
        json_t *list = json_object_get(j, "normalizers");
        for (size_t i = 0; i < n->n_items; i++) {
            char sub[256];
            snprintf(sub, sizeof sub, "%s.normalizers[%zu]", where, i);
            if (load_normalizer(t, json_array_get(list, i), sub, &n->items[i], err, errlen))
                return -1;
        }
    } else {
        return unsupported("normalizer", type, where, err, errlen);
    }
    return 0;
}

static int behavior_of(json_t *j, const char *where, bool required, SplitBehavior *out, char *err,
                       size_t errlen) {
    json_t *b = json_object_get(j, "behavior");
    if (!b && !required) {
        *out = SPLIT_ISOLATED;
        return 0;
    }
    const char *s = json_string_value(b);
    static const char *names[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext",
                                  "Contiguous"};
    for (int i = 0; s && i < 5; i++)
        if (!strcmp(s, names[i])) {
            *out = (SplitBehavior)i;
            return 0;
        }
    tok_err(err, errlen,
            "tokenizer.json: %s.behavior must be one of Removed, Isolated, "
            "MergedWithPrevious, MergedWithNext, Contiguous",
            where);
    return -1;
}

static int prepend_scheme_of(json_t *j, const char *where, PrependScheme *out, char *err,
                             size_t errlen) {
    json_t *ps = json_object_get(j, "prepend_scheme");
    *out = PREPEND_ALWAYS;
    if (ps) {
        const char *s = json_string_value(ps);
        if (s && !strcmp(s, "always"))
            *out = PREPEND_ALWAYS;
        else if (s && !strcmp(s, "first"))
            *out = PREPEND_FIRST;
        else if (s && !strcmp(s, "never"))
            *out = PREPEND_NEVER;
        else {
            tok_err(err, errlen, "tokenizer.json: %s.prepend_scheme must be first, always or never",
                    where);
            return -1;
        }
    }
    json_t *aps = json_object_get(j, "add_prefix_space");
    if (json_is_false(aps)) { /* the legacy field, as the library reads it */
        if (*out != PREPEND_NEVER) {
            tok_err(err, errlen,
                    "tokenizer.json: %s: add_prefix_space does not match declared "
                    "prepend_scheme",
                    where);
            return -1;
        }
        *out = PREPEND_NEVER;
    }
    return 0;
}

int load_pretokenizer(Tokenizer *t, json_t *j, const char *where, PreTokenizer *p, char *err,
                      size_t errlen) {
    const char *type = type_of(j, where, "pre-tokenizer", err, errlen);
    if (!type) return -1;
    if (!strcmp(type, "Split")) {
        p->kind = PRE_SPLIT;
        if (behavior_of(j, where, true, &p->behavior, err, errlen) ||
            tok_opt_bool(j, "invert", false, &p->invert, where, err, errlen) ||
            !(p->re = load_pattern(j, where, err, errlen)))
            return -1;
    } else if (!strcmp(type, "ByteLevel")) {
        p->kind = PRE_BYTE_LEVEL;
        if (tok_opt_bool(j, "add_prefix_space", true, &p->add_prefix_space, where, err, errlen) ||
            tok_opt_bool(j, "use_regex", true, &p->use_regex, where, err, errlen))
            return -1;
        if (p->use_regex && !t->gpt2) {
            char inner[300];
            t->gpt2 = regex_compile(BYTE_LEVEL_GPT2_PATTERN, strlen(BYTE_LEVEL_GPT2_PATTERN), inner,
                                    sizeof inner);
            if (!t->gpt2) return tok_err(err, errlen, "%s", inner), -1;
        }
    } else if (!strcmp(type, "Metaspace")) {
        p->kind = PRE_METASPACE;
        if (one_char(j, "replacement", 0x2581, &p->replacement, where, err, errlen) ||
            prepend_scheme_of(j, where, &p->prepend_scheme, err, errlen) ||
            tok_opt_bool(j, "split", true, &p->split, where, err, errlen))
            return -1;
        Buf b = {0};
        if (buf_append_cp(&b, p->replacement)) return OOM();
        memcpy(p->replacement_utf8, b.p, b.len + 1);
        buf_free(&b);
    } else if (!strcmp(type, "Digits")) {
        p->kind = PRE_DIGITS;
        if (tok_opt_bool(j, "individual_digits", false, &p->individual_digits, where, err, errlen))
            return -1;
    } else if (!strcmp(type, "Whitespace")) {
        p->kind = PRE_WHITESPACE;
    } else if (!strcmp(type, "WhitespaceSplit")) {
        p->kind = PRE_WHITESPACE_SPLIT;
    } else if (!strcmp(type, "Punctuation")) {
        p->kind = PRE_PUNCTUATION;
        if (behavior_of(j, where, false, &p->behavior, err, errlen)) return -1;
    } else if (!strcmp(type, "Sequence")) {
        p->kind = PRE_SEQUENCE;
        if (load_list(j, "pretokenizers", where, sizeof *p->items, (void **)&p->items, &p->n_items,
                      err, errlen))
            return -1;
        json_t *list = json_object_get(j, "pretokenizers");
        for (size_t i = 0; i < p->n_items; i++) {
            char sub[256];
            snprintf(sub, sizeof sub, "%s.pretokenizers[%zu]", where, i);
            if (load_pretokenizer(t, json_array_get(list, i), sub, &p->items[i], err, errlen))
                return -1;
        }
    } else {
        return unsupported("pre_tokenizer", type, where, err, errlen);
    }
    return 0;
}

/* One template: [{"SpecialToken": {"id", "type_id"}} | {"Sequence": {"id": "A"|"B", ...}}]. */
static int load_template(json_t *tpl, json_t *specials, const char *where, bool pair,
                         TemplateItem **out, size_t *n_out, char *err, size_t errlen) {
    if (!json_is_array(tpl)) {
        tok_err(err, errlen, "tokenizer.json: %s must be an array of template pieces", where);
        return -1;
    }
    size_t n = json_array_size(tpl);
    TemplateItem *items = calloc(n ? n : 1, sizeof *items);
    if (!items) return OOM();
    *out = items;
    *n_out = n;
    bool has_a = false, has_b = false;
    for (size_t i = 0; i < n; i++) {
        json_t *piece = json_array_get(tpl, i);
        json_t *seq = json_object_get(piece, "Sequence"),
               *sp = json_object_get(piece, "SpecialToken");
        const char *id = json_string_value(json_object_get(seq ? seq : sp, "id"));
        if (!id || (!seq == !sp)) {
            tok_err(err, errlen,
                    "tokenizer.json: %s[%zu] must be {\"Sequence\": {\"id\": ...}} or "
                    "{\"SpecialToken\": {\"id\": ...}}",
                    where, i);
            return -1;
        }
        if (seq) {
            if (strcmp(id, "A") && strcmp(id, "B")) {
                tok_err(err, errlen, "tokenizer.json: %s[%zu]: sequence id must be A or B", where,
                        i);
                return -1;
            }
            items[i].seq = id[0] == 'A' ? 0 : 1;
            has_a = has_a || id[0] == 'A';
            has_b = has_b || id[0] == 'B';
            continue;
        }
        items[i].seq = -1;
        json_t *tok = json_object_get(specials, id);
        json_t *ids = json_object_get(tok, "ids");
        if (!json_is_array(ids)) {
            tok_err(err, errlen,
                    "tokenizer.json: %s[%zu]: special token \"%.60s\" is not in "
                    "special_tokens (or has no \"ids\")",
                    where, i, id);
            return -1;
        }
        items[i].n_ids = json_array_size(ids);
        items[i].ids = calloc(items[i].n_ids ? items[i].n_ids : 1, sizeof *items[i].ids);
        if (!items[i].ids) return OOM();
        for (size_t k = 0; k < items[i].n_ids; k++) {
            json_t *v = json_array_get(ids, k);
            if (!is_uint(v) || json_integer_value(v) >= INT32_MAX) {
                tok_err(err, errlen,
                        "tokenizer.json: special_tokens[\"%.60s\"].ids[%zu] must be an id", id, k);
                return -1;
            }
            items[i].ids[k] = (int32_t)json_integer_value(v);
        }
    }
    if (!pair && has_b) {
        tok_err(err, errlen, "tokenizer.json: %s uses sequence B in the single template", where);
        return -1;
    }
    if (pair && !(has_a && has_b)) {
        tok_err(err, errlen, "tokenizer.json: %s: template for `pair` must use both sequences",
                where);
        return -1;
    }
    return 0;
}

static int load_post_one(Tokenizer *t, json_t *j, const char *where, char *err, size_t errlen) {
    const char *type = type_of(j, where, "post-processor", err, errlen);
    if (!type) return -1;
    if (!strcmp(type, "ByteLevel")) return 0; /* trims offsets only */
    if (!strcmp(type, "TemplateProcessing")) {
        if (t->post.has_template)
            return unsupported("post_processor", "a second TemplateProcessing", where, err, errlen);
        t->post.has_template = true;
        json_t *specials = json_object_get(j, "special_tokens");
        char sub[256];
        snprintf(sub, sizeof sub, "%s.single", where);
        if (load_template(json_object_get(j, "single"), specials, sub, false, &t->post.single,
                          &t->post.n_single, err, errlen))
            return -1;
        snprintf(sub, sizeof sub, "%s.pair", where);
        return load_template(json_object_get(j, "pair"), specials, sub, true, &t->post.pair,
                             &t->post.n_pair, err, errlen);
    }
    if (!strcmp(type, "Sequence")) {
        json_t *list = need(j, "processors", is_array, "an array", where, err, errlen);
        if (!list) return -1;
        for (size_t i = 0; i < json_array_size(list); i++) {
            char sub[256];
            snprintf(sub, sizeof sub, "%s.processors[%zu]", where, i);
            if (load_post_one(t, json_array_get(list, i), sub, err, errlen)) return -1;
        }
        return 0;
    }
    return unsupported("post_processor", type, where, err, errlen);
}

int load_post(Tokenizer *t, json_t *j, const char *where, char *err, size_t errlen) {
    return load_post_one(t, j, where, err, errlen);
}

int load_decoder(Tokenizer *t, json_t *j, const char *where, Decoder *d, char *err, size_t errlen) {
    const char *type = type_of(j, where, "decoder", err, errlen);
    if (!type) return -1;
    if (!strcmp(type, "ByteLevel"))
        d->kind = DEC_BYTE_LEVEL;
    else if (!strcmp(type, "ByteFallback"))
        d->kind = DEC_BYTE_FALLBACK;
    else if (!strcmp(type, "Fuse"))
        d->kind = DEC_FUSE;
    else if (!strcmp(type, "Metaspace")) {
        d->kind = DEC_METASPACE;
        if (one_char(j, "replacement", 0x2581, &d->replacement, where, err, errlen) ||
            prepend_scheme_of(j, where, &d->prepend_scheme, err, errlen))
            return -1;
    } else if (!strcmp(type, "Replace")) {
        d->kind = DEC_REPLACE;
        json_t *c = need(j, "content", is_string, "a string", where, err, errlen);
        if (!c || !(d->re = load_pattern(j, where, err, errlen))) return -1;
        d->content_len = json_string_length(c);
        if (!(d->content = tok_strndup(json_string_value(c), d->content_len))) return OOM();
    } else if (!strcmp(type, "Strip")) {
        d->kind = DEC_STRIP;
        json_t *start = need(j, "start", is_uint, "a count", where, err, errlen);
        json_t *stop = start ? need(j, "stop", is_uint, "a count", where, err, errlen) : NULL;
        if (!stop || one_char(j, "content", ' ', &d->strip_char, where, err, errlen)) return -1;
        d->start = (size_t)json_integer_value(start);
        d->stop = (size_t)json_integer_value(stop);
    } else if (!strcmp(type, "BPEDecoder")) {
        d->kind = DEC_BPE;
        json_t *s = json_object_get(j, "suffix");
        const char *suffix = json_is_string(s) ? json_string_value(s) : "</w>";
        d->content_len = json_is_string(s) ? json_string_length(s) : 4;
        if (!(d->content = tok_strndup(suffix, d->content_len))) return OOM();
    } else if (!strcmp(type, "Sequence")) {
        d->kind = DEC_SEQUENCE;
        if (load_list(j, "decoders", where, sizeof *d->items, (void **)&d->items, &d->n_items, err,
                      errlen))
            return -1;
        json_t *list = json_object_get(j, "decoders");
        for (size_t i = 0; i < d->n_items; i++) {
            char sub[256];
            snprintf(sub, sizeof sub, "%s.decoders[%zu]", where, i);
            if (load_decoder(t, json_array_get(list, i), sub, &d->items[i], err, errlen)) return -1;
        }
    } else {
        return unsupported("decoder", type, where, err, errlen);
    }
    return 0;
}
