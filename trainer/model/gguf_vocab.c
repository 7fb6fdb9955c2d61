/* trainer/model/gguf_vocab.c — a Hugging Face tokenizer.json as llama.cpp's tokenizer metadata
 * (see export.h), following convert_hf_to_gguf.py and gguf-py's vocab.py.
 *
 * Two kinds of tokenizer reach llama.cpp from the Llama family:
 *   - SentencePiece-style BPE with byte fallback (Llama 2, Mistral, TinyStories): model
 *     "llama". The converter reads tokenizer.model; lorafit reads tokenizer.json and gets
 *     the same table, the scores from the order of the merges (spm_scores); byte pieces
 *     <0xNN> are BYTE, the unknown piece UNKNOWN, all scoring 0; added tokens are CONTROL
 *     (special) or USER_DEFINED with score -1000, as the converter's added_tokens_decoder
 *     pass makes them. add_space_prefix and remove_extra_whitespaces say what the normalizer
 *     does (trainer/train/gguf_tokenizer.c reads them back).
 *   - byte-level BPE (Llama 3, Qwen2, SmolLM): model "gpt2" with the merges and the name of
 *     the pre-tokenizer. The converter hashes a test string's tokenization to find that
 *     name; lorafit matches the pre-tokenizer's definition itself against the ones
 *     llama.cpp implements (its regexes are those of llama-vocab.cpp), and refuses others.
 * Special token ids and add_bos / add_eos come from tokenizer_config.json, the
 * TemplateProcessing post-processor and config.json in SpecialVocab's order. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trainer/model/export.h"

enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER = 4, TT_UNUSED = 5, TT_BYTE = 6 };

#define RE_LLAMA3                                                                                  \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+" \
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN2                                                                                   \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+"      \
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

static const char *str_of(json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static bool is_type(json_t *o, const char *type) {
    const char *t = str_of(o, "type");
    return t && strcmp(t, type) == 0;
}

static bool flag(json_t *o, const char *key, bool dflt) {
    json_t *v = json_object_get(o, key);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

/* A Split on exactly this regex, isolated, not inverted. */
static bool split_on(json_t *p, const char *regex) {
    const char *re = str_of(json_object_get(p, "pattern"), "Regex");
    const char *behavior = str_of(p, "behavior");
    return is_type(p, "Split") && re && strcmp(re, regex) == 0 && behavior &&
           strcmp(behavior, "Isolated") == 0 && !flag(p, "invert", false);
}

/* llama.cpp's name for a byte-level pre-tokenizer, or NULL when it has none lorafit knows. */
static const char *byte_level_pre(json_t *pre) {
    json_t *list = is_type(pre, "Sequence") ? json_object_get(pre, "pretokenizers") : NULL;
    size_t n = json_is_array(list) ? json_array_size(list) : 0;
    if (is_type(pre, "ByteLevel") && flag(pre, "use_regex", true)) return "gpt-2";
    if (n == 2) {
        json_t *a = json_array_get(list, 0), *b = json_array_get(list, 1);
        bool bl_plain = is_type(b, "ByteLevel") && !flag(b, "use_regex", true);
        if (split_on(a, RE_LLAMA3) && bl_plain) return "llama-bpe";
        if (split_on(a, RE_QWEN2) && bl_plain) return "qwen2";
        if (is_type(a, "Digits") && flag(a, "individual_digits", false) &&
            is_type(b, "ByteLevel") && flag(b, "use_regex", true))
            return "smollm";
    }
    return NULL;
}

/* convert_hf_to_gguf.py's does_token_look_special. */
static bool looks_special(const char *t) {
    size_t n = strlen(t);
    if (!strcmp(t, "<pad>") || !strcmp(t, "<mask>") || !strcmp(t, "<2mass>") ||
        !strcmp(t, "[@BOS@]"))
        return true;
    if (n >= 4 && !strncmp(t, "<|", 2) && !strcmp(t + n - 2, "|>")) return true;
    if (n >= 6 && !strncmp(t, "<\xef\xbd\x9c", 4) && !strcmp(t + n - 4, "\xef\xbd\x9c>"))
        return true;
    return n >= 8 && !strncmp(t, "<unused", 7) && t[n - 1] == '>';
}

/* s with every U+2581 (the SentencePiece space) replaced by ' '; malloc'ed. */
static char *unspace(const char *s) {
    char *out = malloc(strlen(s) + 1), *o = out;
    if (!out) return NULL;
    while (*s) {
        if (!strncmp(s, "\xe2\x96\x81", 3)) {
            *o++ = ' ';
            s += 3;
        } else {
            *o++ = *s++;
        }
    }
    *o = '\0';
    return out;
}

static bool is_byte_piece(const char *t) {
    return strlen(t) == 6 && !strncmp(t, "<0x", 3) && t[5] == '>' &&
           strchr("0123456789ABCDEFabcdef", t[3]) && strchr("0123456789ABCDEFabcdef", t[4]) &&
           t[3] && t[4];
}

typedef struct Vocab {
    int n;
    char **tokens; /* (n) owned */
    int32_t *types;
    float *scores;
} Vocab;

static void vocab_free(Vocab *v) {
    for (int i = 0; v->tokens && i < v->n; i++) free(v->tokens[i]);
    free(v->tokens);
    free(v->types);
    free(v->scores);
}

static int set_token(Vocab *v, int id, const char *text) {
    char *t = strdup(text);
    if (!t) return -1;
    free(v->tokens[id]);
    v->tokens[id] = t;
    return 0;
}

/* The id of the token a merge ("a b" or [a, b]) makes, or -1. */
static int merged_id(json_t *vocab, json_t *m) {
    char buf[512];
    const char *s = json_string_value(m), *sp = s ? strchr(s, ' ') : NULL;
    const char *a = sp ? s : json_string_value(json_array_get(m, 0));
    const char *b = sp ? sp + 1 : json_string_value(json_array_get(m, 1));
    size_t a_len = sp ? (size_t)(sp - s) : a ? strlen(a) : 0;
    if (!a || !b || a_len + strlen(b) >= sizeof buf) return -1;
    snprintf(buf, sizeof buf, "%.*s%s", (int)a_len, a, b);
    json_t *id = json_object_get(vocab, buf);
    return json_is_integer(id) ? (int)json_integer_value(id) : -1;
}

typedef struct PieceRank {
    size_t rank; /* of the first merge that makes the piece; SIZE_MAX for none */
    int id;
} PieceRank;

static int by_rank(const void *pa, const void *pb) {
    const PieceRank *a = pa, *b = pb;
    if (a->rank != b->rank) return a->rank < b->rank ? -1 : 1;
    return (a->id > b->id) - (a->id < b->id);
}

/* SentencePiece's scores, as far as they decide anything: transformers ranked the merges by
 * the score of the piece each makes, so the normal pieces in the order of their first merge
 * (pieces no merge makes, single characters, after them in id order) score 0, -1, -2, ...
 * SentencePiece numbers its pieces in score order, so this is -id for most models
 * (stories260K's tokenizer.model, checked in the tests); Llama 2's and Mistral's whitespace
 * pieces score -1e9 there and come last here, as their merges come last. */
static int spm_scores(Vocab *v, json_t *model) {
    json_t *vocab = json_object_get(model, "vocab"), *merges = json_object_get(model, "merges");
    PieceRank *order = malloc((size_t)v->n * sizeof *order);
    if (!order) return -1;
    for (int t = 0; t < v->n; t++) order[t] = (PieceRank){SIZE_MAX, t};
    for (size_t i = 0; i < json_array_size(merges); i++) {
        int id = merged_id(vocab, json_array_get(merges, i));
        if (id >= 0 && id < v->n && order[id].rank == SIZE_MAX) order[id].rank = i;
    }
    qsort(order, (size_t)v->n, sizeof *order, by_rank);
    int k = 0;
    for (int i = 0; i < v->n; i++)
        if (v->types[order[i].id] == TT_NORMAL) v->scores[order[i].id] = -(float)k++;
    free(order);
    return 0;
}

/* tokens, types and scores of both kinds; added tokens applied last. */
static int build_vocab(Vocab *v, json_t *model, json_t *added, bool spm, const char *what,
                       char *err, size_t errlen) {
    v->tokens = calloc((size_t)v->n, sizeof *v->tokens);
    v->types = malloc((size_t)v->n * sizeof *v->types);
    v->scores = malloc((size_t)v->n * sizeof *v->scores);
    if (!v->tokens || !v->types || !v->scores) goto oom;
    for (int i = 0; i < v->n; i++) {
        char pad[32];
        snprintf(pad, sizeof pad, "[PAD%d]", i);
        if (set_token(v, i, pad) != 0) goto oom;
        v->types[i] = TT_UNUSED;
        v->scores[i] = -10000.0f;
    }
    json_t *vocab = json_object_get(model, "vocab");
    if (!json_is_object(vocab))
        return store_error(err, errlen, 0, "%s: model.vocab is not an object", what);
    const char *unk = str_of(model, "unk_token");
    const char *key;
    json_t *idv;
    json_object_foreach(vocab, key, idv) {
        json_int_t id = json_is_integer(idv) ? json_integer_value(idv) : -1;
        if (id < 0 || id >= v->n)
            return store_error(err, errlen, 0,
                               "%s: token '%.60s' has id %lld, outside the model's %d tokens", what,
                               key, (long long)id, v->n);
        if (set_token(v, (int)id, key) != 0) goto oom;
        v->types[id] = spm && unk && !strcmp(key, unk) ? TT_UNKNOWN
                       : spm && is_byte_piece(key)     ? TT_BYTE
                                                       : TT_NORMAL;
        v->scores[id] = 0.0f;
    }
    size_t i;
    json_t *a;
    json_array_foreach(added, i, a) { /* added tokens may be outside model.vocab */
        json_t *idv2 = json_object_get(a, "id");
        const char *content = str_of(a, "content");
        json_int_t id = json_is_integer(idv2) ? json_integer_value(idv2) : -1;
        if (!content || id < 0 || id >= v->n)
            return store_error(err, errlen, 0,
                               "%s: added_tokens[%zu] needs a string content and an id below %d",
                               what, i, v->n);
        bool special = flag(a, "special", false) || looks_special(content);
        char *text = special ? strdup(content) : unspace(content);
        if (!text) goto oom;
        free(v->tokens[id]);
        v->tokens[id] = text;
        v->types[id] = special ? TT_CONTROL : TT_USER;
        v->scores[id] = -1000.0f;
    }
    if (spm && spm_scores(v, model) != 0) goto oom;
    return 0;
oom:
    return store_error(err, errlen, 0, "%s: out of memory reading the vocabulary", what);
}

/* The merges as "a b" strings, spaces inside a part encoded as U+0120 (gguf-py's rule). */
static int write_merges(GgufWriter *w, json_t *merges, const char *what, char *err, size_t errlen) {
    size_t n = json_is_array(merges) ? json_array_size(merges) : 0;
    if (n == 0) return store_error(err, errlen, 0, "%s: a byte-level BPE needs model.merges", what);
    char **m = calloc(n, sizeof *m);
    int rc = m ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        json_t *e = json_array_get(merges, i);
        if (json_is_string(e)) {
            m[i] = strdup(json_string_value(e));
        } else if (json_is_array(e) && json_array_size(e) == 2 &&
                   json_is_string(json_array_get(e, 0)) && json_is_string(json_array_get(e, 1))) {
            const char *p[2] = {json_string_value(json_array_get(e, 0)),
                                json_string_value(json_array_get(e, 1))};
            size_t len = 2 * (strlen(p[0]) + strlen(p[1])) + 2;
            char *s = m[i] = malloc(len);
            for (int k = 0; s && k < 2; k++) {
                for (const char *c = p[k]; *c; c++) {
                    if (*c == ' ') { /* chr(ord(' ') + 256) = U+0120 */
                        *s++ = '\xc4';
                        *s++ = '\xa0';
                    } else {
                        *s++ = *c;
                    }
                }
                *s++ = k == 0 ? ' ' : '\0';
            }
        } else {
            rc = store_error(err, errlen, 0, "%s: model.merges[%zu] is neither \"a b\" nor [a, b]",
                             what, i);
            break;
        }
        if (!m[i]) rc = store_error(err, errlen, 0, "%s: out of memory", what);
    }
    if (rc == 0)
        rc = gguf_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)m, NULL, n, err,
                              errlen);
    for (size_t i = 0; m && i < n; i++) free(m[i]);
    free(m);
    return rc;
}

#define N_SPECIAL 6
static const char *const special_types[N_SPECIAL] = {"bos", "eos", "unk", "sep", "pad", "mask"};
static const char *const special_keys[N_SPECIAL] = {
    "tokenizer.ggml.bos_token_id",     "tokenizer.ggml.eos_token_id",
    "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.seperator_token_id",
    "tokenizer.ggml.padding_token_id", "tokenizer.ggml.mask_token_id"};

/* add_bos / add_eos from a TemplateProcessing (alone or in a Sequence), SpecialVocab's
 * crude parse: a leading special token adds BOS when it is the BOS token (and becomes it
 * when there is none), a trailing one becomes the EOS token and adds it. */
static void template_adds(json_t *post, const char **bos, const char **eos, int *add_bos,
                          int *add_eos) {
    json_t *list = json_object_get(post, "processors");
    size_t n = json_is_array(list) ? json_array_size(list) : 1;
    for (size_t i = 0; i < n; i++) {
        json_t *p = json_is_array(list) ? json_array_get(list, i) : post;
        json_t *single = json_object_get(p, "single");
        if (!is_type(p, "TemplateProcessing") || !json_is_array(single) ||
            json_array_size(single) < 2)
            continue;
        const char *first =
            str_of(json_object_get(json_array_get(single, 0), "SpecialToken"), "id");
        const char *last = str_of(
            json_object_get(json_array_get(single, json_array_size(single) - 1), "SpecialToken"),
            "id");
        if (first) {
            if (!*bos) *bos = first;
            *add_bos = !strcmp(first, *bos);
        }
        if (last) {
            *eos = last;
            *add_eos = 1;
        }
    }
}

static const char *token_content(json_t *entry) {
    if (json_is_string(entry)) return json_string_value(entry);
    return json_is_object(entry) ? str_of(entry, "content") : NULL;
}

static int write_specials(GgufWriter *w, json_t *tok, json_t *tcfg, json_t *cfg, int n_vocab,
                          char *err, size_t errlen) {
    json_t *added = json_object_get(tok, "added_tokens");
    int64_t ids[N_SPECIAL];
    int add[N_SPECIAL];
    for (int t = 0; t < N_SPECIAL; t++) ids[t] = -1, add[t] = -1;
    const char *content[N_SPECIAL];
    for (int t = 0; t < N_SPECIAL; t++) {
        char key[32];
        snprintf(key, sizeof key, "%s_token", special_types[t]);
        content[t] = token_content(json_object_get(tcfg, key));
    }
    template_adds(json_object_get(tok, "post_processor"), &content[0], &content[1], &add[0],
                  &add[1]);
    for (int t = 0; tcfg && t < N_SPECIAL; t++) {
        char key[32];
        snprintf(key, sizeof key, "add_%s_token", special_types[t]);
        json_t *a = json_object_get(tcfg, key);
        if (json_is_boolean(a)) add[t] = json_is_true(a);
        size_t i;
        json_t *e;
        json_array_foreach(added, i, e) {
            const char *c = str_of(e, "content");
            json_t *id = json_object_get(e, "id");
            if (content[t] && c && !strcmp(c, content[t]) && json_is_integer(id)) {
                ids[t] = json_integer_value(id);
                break;
            }
        }
    }
    for (int t = 0; cfg && t < N_SPECIAL; t++) {
        char key[32];
        snprintf(key, sizeof key, "%s_token_id", special_types[t]);
        json_t *id = json_object_get(cfg, key);
        if (ids[t] < 0 && json_is_integer(id)) ids[t] = json_integer_value(id);
    }
    for (int t = 0; t < N_SPECIAL; t++)
        if (ids[t] >= 0 && ids[t] < n_vocab &&
            gguf_set_u32(w, special_keys[t], (uint32_t)ids[t], err, errlen) != 0)
            return -1;
    static const char *const add_keys[] = {"tokenizer.ggml.add_bos_token",
                                           "tokenizer.ggml.add_eos_token", NULL,
                                           "tokenizer.ggml.add_sep_token"};
    for (int t = 0; t < 4; t++)
        if (add_keys[t] && add[t] >= 0 && gguf_set_bool(w, add_keys[t], add[t], err, errlen) != 0)
            return -1;
    return 0;
}

/* The chat templates to write: the default one and up to MAX_NAMED named ones, their names
 * already in the [A-Za-z0-9_] alphabet of gguf-py's add_chat_template. */
#define MAX_NAMED 64
typedef struct Templates {
    const char *def;
    char name[MAX_NAMED][64];
    const char *text[MAX_NAMED];
    size_t n;
} Templates;

/* A named template; "default" is the default one, and a name seen before keeps its first
 * template (the one lorafit's tokenizer finds by that name). */
static void add_named(Templates *t, const char *name, const char *text) {
    char key[64];
    snprintf(key, sizeof key, "%s", name);
    for (char *c = key; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9')))
            *c = '_';
    if (!key[0]) return;
    if (!strcmp(key, "default")) {
        if (!t->def) t->def = text;
        return;
    }
    for (size_t i = 0; i < t->n; i++)
        if (!strcmp(t->name[i], key)) return;
    if (t->n == MAX_NAMED) return;
    memcpy(t->name[t->n], key, sizeof key);
    t->text[t->n++] = text;
}

/* tokenizer.chat_template, and tokenizer.chat_template.NAME with the list of names in
 * tokenizer.chat_templates for named ones: tokenizer_config.json's chat_template (a string, or
 * a list of {name, template}), replaced by chat_template.jinja when there is one, with
 * additional_chat_templates' named files added (lorafit's tokenizer reads them so). */
static int write_chat_templates(GgufWriter *w, json_t *config_template,
                                const GgufTemplateFiles *files, char *err, size_t errlen) {
    Templates t = {0};
    if (files && files->jinja) {
        t.def = files->jinja;
    } else if (json_is_string(config_template)) {
        t.def = json_string_value(config_template);
    } else {
        size_t i;
        json_t *e;
        json_array_foreach(config_template, i, e) {
            const char *name = str_of(e, "name"), *text = str_of(e, "template");
            if (name && text) add_named(&t, name, text);
        }
    }
    for (size_t i = 0; files && i < files->n; i++) add_named(&t, files->names[i], files->texts[i]);
    if (t.def && gguf_set_str(w, "tokenizer.chat_template", t.def, err, errlen) != 0) return -1;
    const char *names[MAX_NAMED];
    for (size_t i = 0; i < t.n; i++) {
        char key[96];
        snprintf(key, sizeof key, "tokenizer.chat_template.%s", t.name[i]);
        if (gguf_set_str(w, key, t.text[i], err, errlen) != 0) return -1;
        names[i] = t.name[i];
    }
    return t.n ? gguf_set_arr_str(w, "tokenizer.chat_templates", names, NULL, t.n, err, errlen) : 0;
}

/* A normalizer (alone or in a Sequence) of this type for which match(n) holds. */
static bool has_normalizer(json_t *n, const char *type,
                           bool (*match)(json_t *, const char *, const char *), const char *a,
                           const char *b) {
    json_t *list = json_object_get(n, "normalizers");
    for (size_t i = 0; is_type(n, "Sequence") && i < json_array_size(list); i++)
        if (has_normalizer(json_array_get(list, i), type, match, a, b)) return true;
    return is_type(n, type) && match(n, a, b);
}

static bool replaces(json_t *n, const char *regex, const char *content) {
    const char *re = str_of(json_object_get(n, "pattern"), "Regex"), *c = str_of(n, "content");
    return re && c && !strcmp(re, regex) && !strcmp(c, content);
}

static bool prepends(json_t *n, const char *text, const char *unused) {
    (void)unused;
    const char *p = str_of(n, "prepend");
    return p && !strcmp(p, text);
}

/* SentencePiece's remove_extra_whitespaces, as transformers spells it (Replace " {2,}"). */
static bool has_replace(json_t *norm, const char *regex, const char *content) {
    return has_normalizer(norm, "Replace", replaces, regex, content);
}

/* SentencePiece's add_dummy_prefix: a Prepend "▁" normalizer (the legacy form) or a Metaspace
 * pre-tokenizer that prepends. */
static bool prepends_space(json_t *norm, json_t *pre) {
    if (has_normalizer(norm, "Prepend", prepends, "\xe2\x96\x81", NULL)) return true;
    json_t *list = json_object_get(pre, "pretokenizers");
    size_t n = is_type(pre, "Sequence") ? json_array_size(list) : 1;
    for (size_t i = 0; i < n; i++) {
        json_t *p = is_type(pre, "Sequence") ? json_array_get(list, i) : pre;
        const char *scheme = str_of(p, "prepend_scheme");
        if (is_type(p, "Metaspace") && flag(p, "add_prefix_space", true) &&
            !(scheme && !strcmp(scheme, "never")))
            return true;
    }
    return false;
}

int gguf_vocab_from_json(GgufWriter *w, const char *tokenizer_json, size_t len,
                         const char *tokenizer_config, const char *config_json,
                         const GgufTemplateFiles *template_files, int vocab_size, const char *what,
                         GgufReport *report, char *err, size_t errlen) {
    json_error_t je;
    json_t *tok = json_loadb(tokenizer_json, len, 0, &je), *tcfg = NULL, *cfg = NULL;
    if (!json_is_object(tok)) {
        json_decref(tok);
        return store_error(err, errlen, 0, "%s:%d:%d: %s", what, je.line, je.column,
                           json_is_object(tok) ? ""
                           : je.text[0]        ? je.text
                                               : "not a JSON object");
    }
    /* JSON_DECODE_INT_AS_REAL: model_max_length is often 1e30 written as an integer */
    if (tokenizer_config) tcfg = json_loads(tokenizer_config, JSON_DECODE_INT_AS_REAL, NULL);
    if (config_json) cfg = json_loads(config_json, 0, NULL);
    if (!json_is_object(tcfg)) json_decref(tcfg), tcfg = NULL;
    if (!json_is_object(cfg)) json_decref(cfg), cfg = NULL;
    Vocab v = {.n = vocab_size};
    int rc = 0;
    json_t *model = json_object_get(tok, "model"), *added = json_object_get(tok, "added_tokens");
    const char *type = str_of(model, "type");
    bool spm = flag(model, "byte_fallback", false);
    const char *pre = spm ? "default" : byte_level_pre(json_object_get(tok, "pre_tokenizer"));
    if (vocab_size < 1 || vocab_size > (1 << 24)) {
        rc = store_error(err, errlen, 0, "%s: vocabulary size %d out of range", what, vocab_size);
    } else if (!type || strcmp(type, "BPE") != 0) {
        rc = store_error(err, errlen, 0,
                         "%s: tokenizer model '%s' cannot be written for llama.cpp by lorafit "
                         "(BPE only: SentencePiece-style with byte_fallback, or byte-level)",
                         what, type ? type : "(none)");
    } else if (!pre) {
        char *p = json_dumps(json_object_get(tok, "pre_tokenizer"), JSON_COMPACT);
        rc = store_error(err, errlen, 0,
                         "%s: pre_tokenizer %.300s is not one llama.cpp implements that lorafit "
                         "recognises (Llama 3, Qwen2, SmolLM, GPT-2 byte-level)",
                         what, p ? p : "null");
        free(p);
    } else if (added && !json_is_array(added)) {
        rc = store_error(err, errlen, 0, "%s: added_tokens is not a list", what);
    } else {
        rc = build_vocab(&v, model, added, spm, what, err, errlen);
    }
    const char *model_name = spm ? "llama" : "gpt2";
    if (rc == 0) rc = gguf_set_str(w, "tokenizer.ggml.model", model_name, err, errlen);
    if (rc == 0) rc = gguf_set_str(w, "tokenizer.ggml.pre", pre, err, errlen);
    if (rc == 0)
        rc = gguf_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v.tokens, NULL,
                              (size_t)v.n, err, errlen);
    if (rc == 0 && spm)
        rc = gguf_set_arr_f32(w, "tokenizer.ggml.scores", v.scores, (size_t)v.n, err, errlen);
    if (rc == 0)
        rc = gguf_set_arr_i32(w, "tokenizer.ggml.token_type", v.types, (size_t)v.n, err, errlen);
    if (rc == 0 && !spm) rc = write_merges(w, json_object_get(model, "merges"), what, err, errlen);
    if (rc == 0) rc = write_specials(w, tok, tcfg, cfg, v.n, err, errlen);
    if (rc == 0)
        rc = write_chat_templates(w, json_object_get(tcfg, "chat_template"), template_files, err,
                                  errlen);
    json_t *prefix = json_object_get(tcfg, "add_prefix_space");
    json_t *norm = json_object_get(tok, "normalizer");
    if (rc == 0 && (json_is_boolean(prefix) || spm))
        rc = gguf_set_bool(w, "tokenizer.ggml.add_space_prefix",
                           json_is_boolean(prefix)
                               ? json_is_true(prefix)
                               : prepends_space(norm, json_object_get(tok, "pre_tokenizer")),
                           err, errlen);
    if (rc == 0 && spm && has_replace(norm, " {2,}", " "))
        rc = gguf_set_bool(w, "tokenizer.ggml.remove_extra_whitespaces", true, err, errlen);
    if (rc == 0 && report) {
        snprintf(report->tokenizer, sizeof report->tokenizer, "%s", model_name);
        snprintf(report->pre, sizeof report->pre, "%s", pre);
    }
    vocab_free(&v);
    json_decref(tok);
    json_decref(tcfg);
    json_decref(cfg);
    return rc;
}
