/* data/tokenizer/vocab.c — a Tokenizer from a plain description of its vocabulary
 * (TokenizerVocabSpec: what a llama.cpp GGUF stores), built as the tokenizer.json Hugging Face's
 * converters make from the same model (see tokenizer.h), part by part into the structures
 * load.c fills from JSON. Messages name the GGUF keys the fields come from. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/tokenizer/internal.h"

#define OOM()      (tok_err(err, errlen, "out of memory"), -1)
#define SPACE_MARK "\xE2\x96\x81" /* U+2581, SentencePiece's space */

static int type_of(const TokenizerVocabSpec *s, size_t i) {
    return s->types ? s->types[i] : TOKENIZER_TYPE_NORMAL;
}

/* Every token but the UNUSED ones, id -> text (a later duplicate wins, as in llama.cpp). */
static int add_vocab(Bpe *bpe, const TokenizerVocabSpec *s, char *err, size_t errlen) {
    for (size_t i = 0; i < s->n_tokens; i++) {
        int type = type_of(s, i);
        if (type < 0 || type > TOKENIZER_TYPE_BYTE) {
            tok_err(err, errlen,
                    "%s: tokenizer.ggml.token_type[%zu] is %d, not a llama.cpp token type (0..6)",
                    s->where, i, type);
            return -1;
        }
        if (type == TOKENIZER_TYPE_UNUSED) continue;
        const char *k = pool_strndup(&bpe->pool, s->tokens[i].s, s->tokens[i].len);
        if (!k || strmap_put(&bpe->vocab, k, (uint32_t)s->tokens[i].len, (int32_t)i)) return OOM();
    }
    return 0;
}

/* One SentencePiece merge: piece = left + right. */
typedef struct SpmMerge {
    float score;
    int32_t piece, left, right;
} SpmMerge;

static int spm_order(const void *pa, const void *pb) {
    const SpmMerge *a = pa, *b = pb;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    if (a->piece != b->piece) return a->piece < b->piece ? -1 : 1;
    if (a->left != b->left) return a->left < b->left ? -1 : 1;
    return (a->right > b->right) - (a->right < b->right);
}

/* transformers' SentencePieceExtractor: every split of a token (at a character boundary) into
 * two tokens is a merge, ranked by the whole token's score, highest first. */
static int spm_merges(Bpe *bpe, const TokenizerVocabSpec *s, char *err, size_t errlen) {
    SpmMerge *m = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    for (size_t p = 0; p < s->n_tokens && rc == 0; p++) {
        const char *t = s->tokens[p].s;
        uint32_t len = (uint32_t)s->tokens[p].len;
        if (type_of(s, p) == TOKENIZER_TYPE_UNUSED || strmap_get(&bpe->vocab, t, len) != (int32_t)p)
            continue;
        float score = s->scores && !isnan(s->scores[p]) ? s->scores[p] : s->scores ? -INFINITY : 0;
        for (uint32_t k = 1; k < len; k++) {
            if (((uint8_t)t[k] & 0xC0) == 0x80) continue;
            int32_t l = strmap_get(&bpe->vocab, t, k), r = strmap_get(&bpe->vocab, t + k, len - k);
            if (l < 0 || r < 0) continue;
            if (n == cap) {
                SpmMerge *g = realloc(m, (cap = cap ? 2 * cap : 4096) * sizeof *g);
                if (!g) {
                    rc = OOM();
                    break;
                }
                m = g;
            }
            m[n++] = (SpmMerge){score, (int32_t)p, l, r};
        }
    }
    if (rc == 0 && n) qsort(m, n, sizeof *m, spm_order);
    for (size_t i = 0; i < n && rc == 0; i++) {
        const TokenizerStr *l = &s->tokens[m[i].left], *r = &s->tokens[m[i].right];
        rc = bpe_add_merge(bpe, l->s, l->len, r->s, r->len, err, errlen);
    }
    free(m);
    return rc;
}

/* Ranked "a b" merges, each part and their join a token (else refused naming the merge). */
static int gpt2_merges(Bpe *bpe, const TokenizerVocabSpec *s, char *err, size_t errlen) {
    if (s->n_merges == 0) {
        tok_err(err, errlen, "%s: a gpt2 tokenizer needs tokenizer.ggml.merges (there are none)",
                s->where);
        return -1;
    }
    for (size_t i = 0; i < s->n_merges; i++) {
        const char *m = s->merges[i].s;
        size_t len = s->merges[i].len;
        const char *sp = len > 1 ? memchr(m + 1, ' ', len - 1) : NULL; /* llama.cpp: find(' ', 1) */
        if (!sp) {
            tok_err(err, errlen,
                    "%s: tokenizer.ggml.merges[%zu] '%.*s' is not two tokens separated by a space",
                    s->where, i, (int)(len < 100 ? len : 100), m);
            return -1;
        }
        size_t a_len = (size_t)(sp - m), b_len = len - a_len - 1;
        const char *part[2] = {m, sp + 1};
        size_t part_len[2] = {a_len, b_len};
        for (int k = 0; k < 2; k++)
            if (strmap_get(&bpe->vocab, part[k], (uint32_t)part_len[k]) < 0) {
                tok_err(err, errlen,
                        "%s: tokenizer.ggml.merges[%zu] '%.*s' names '%.*s', which is not in "
                        "tokenizer.ggml.tokens",
                        s->where, i, (int)(len < 100 ? len : 100), m,
                        (int)(part_len[k] < 100 ? part_len[k] : 100), part[k]);
                return -1;
            }
        char inner[400];
        if (bpe_add_merge(bpe, part[0], a_len, part[1], b_len, inner, sizeof inner)) {
            tok_err(err, errlen, "%s: tokenizer.ggml.merges[%zu] '%.*s': %s", s->where, i,
                    (int)(len < 100 ? len : 100), m,
                    strstr(inner, "vocabulary") ? "the two tokens joined are not a token" : inner);
            return -1;
        }
    }
    return 0;
}

static int added_tokens(Tokenizer *t, const TokenizerVocabSpec *s, char *err, size_t errlen) {
    for (size_t i = 0; i < s->n_tokens; i++) {
        int type = type_of(s, i);
        if (type != TOKENIZER_TYPE_CONTROL && type != TOKENIZER_TYPE_UNKNOWN &&
            type != TOKENIZER_TYPE_USER_DEFINED)
            continue;
        AddedToken at = {.content = (char *)s->tokens[i].s,
                         .len = s->tokens[i].len,
                         .special = type != TOKENIZER_TYPE_USER_DEFINED};
        if (added_add(&t->added, &t->bpe, &at, err, errlen)) return -1;
    }
    TokenizerScratch *sc = tokenizer_scratch_new();
    if (!sc) return OOM();
    int rc = added_build(&t->added, t->normalizer, sc, err, errlen);
    tokenizer_scratch_free(sc);
    return rc;
}

static int replace_norm(Normalizer *n, Regex *re, const char *content, char *err, size_t errlen) {
    n->kind = NORM_REPLACE;
    n->re = re;
    n->text_len = strlen(content);
    if (!re || !(n->text = tok_strndup(content, n->text_len))) return OOM();
    return 0;
}

/* SentencePiece's normalizing as tokenizer.json spells it: squeeze spaces, prepend one, mark
 * them; decoding undoes the marks, the pieces' bytes and the prepended space. */
static int spm_pipeline(Tokenizer *t, bool space_prefix, bool squeeze, char *err, size_t errlen) {
    Normalizer *seq = t->normalizer = calloc(1, sizeof *seq);
    Normalizer *n = seq ? calloc(4, sizeof *n) : NULL;
    if (!n) return OOM();
    seq->kind = NORM_SEQUENCE;
    seq->items = n;
    char inner[300];
    if (squeeze &&
        (replace_norm(&n[seq->n_items++], regex_compile("\\A +| +\\z", 9, inner, 300), "", err,
                      errlen) ||
         replace_norm(&n[seq->n_items++], regex_compile(" {2,}", 5, inner, 300), " ", err, errlen)))
        return -1;
    if (space_prefix) {
        Normalizer *p = &n[seq->n_items++];
        p->kind = NORM_PREPEND;
        p->text_len = 3;
        if (!(p->text = tok_strndup(SPACE_MARK, 3))) return OOM();
    }
    if (replace_norm(&n[seq->n_items++], regex_literal(" ", 1), SPACE_MARK, err, errlen)) return -1;
    Decoder *d = t->decoder = calloc(1, sizeof *d);
    Decoder *items = d ? calloc(4, sizeof *items) : NULL;
    if (!items) return OOM();
    d->kind = DEC_SEQUENCE;
    d->items = items;
    d->n_items = space_prefix ? 4 : 3;
    items[0] = (Decoder){.kind = DEC_REPLACE, .re = regex_literal(SPACE_MARK, 3), .content_len = 1};
    if (!items[0].re || !(items[0].content = tok_strndup(" ", 1))) return OOM();
    items[1].kind = DEC_BYTE_FALLBACK;
    items[2].kind = DEC_FUSE;
    items[3] = (Decoder){.kind = DEC_STRIP, .strip_char = ' ', .start = 1, .stop = 0};
    return 0;
}

static int push_item(TemplateItem *items, size_t *n, int seq, int32_t id) {
    TemplateItem *it = &items[(*n)++];
    it->seq = seq;
    if (seq >= 0) return 0;
    if (!(it->ids = malloc(sizeof *it->ids))) return -1;
    it->ids[0] = id;
    it->n_ids = 1;
    return 0;
}

/* [BOS] seq [EOS], each special token when there is one. */
static int lay_out(TemplateItem *items, size_t *n, int seq, int32_t bos, int32_t eos) {
    return (bos >= 0 && push_item(items, n, -1, bos)) || push_item(items, n, seq, 0) ||
                   (eos >= 0 && push_item(items, n, -1, eos))
               ? -1
               : 0;
}

/* [BOS] A [EOS] and [BOS] A [EOS] [BOS] B [EOS], as transformers' Llama tokenizer lays them out. */
static int post_template(Post *post, int32_t bos, int32_t eos, char *err, size_t errlen) {
    post->has_template = bos >= 0 || eos >= 0;
    if (!post->has_template) return 0;
    post->single = calloc(3, sizeof *post->single);
    post->pair = calloc(6, sizeof *post->pair);
    if (!post->single || !post->pair || lay_out(post->single, &post->n_single, 0, bos, eos) ||
        lay_out(post->pair, &post->n_pair, 0, bos, eos) ||
        lay_out(post->pair, &post->n_pair, 1, bos, eos))
        return OOM();
    return 0;
}

static int32_t valid_id(const TokenizerVocabSpec *s, int32_t id) {
    return id >= 0 && (size_t)id < s->n_tokens ? id : -1;
}

/* The special tokens' strings and ids, add_bos / add_eos, the chat templates. */
static int specials(Tokenizer *t, const TokenizerVocabSpec *s, bool add_bos, bool add_eos,
                    char *err, size_t errlen) {
    int32_t ids[4] = {valid_id(s, s->bos_id), valid_id(s, s->eos_id), valid_id(s, s->pad_id),
                      valid_id(s, s->unk_id)};
    const char **str[4] = {&t->special.bos_token, &t->special.eos_token, &t->special.pad_token,
                           &t->special.unk_token};
    int32_t *id_of[4] = {&t->special.bos_id, &t->special.eos_id, &t->special.pad_id,
                         &t->special.unk_id};
    for (int k = 0; k < 4; k++) {
        if (ids[k] < 0) continue;
        const TokenizerStr *tok = &s->tokens[ids[k]];
        if (!(t->special_strings[k] = tok_strndup(tok->s, tok->len))) return OOM();
        *str[k] = t->special_strings[k];
        *id_of[k] = ids[k];
    }
    t->special.add_bos_token = add_bos;
    t->special.add_eos_token = add_eos;
    if (s->chat_template.s &&
        !(t->chat_template = tok_strndup(s->chat_template.s, s->chat_template.len)))
        return OOM();
    if (s->n_templates && !(t->templates = calloc(s->n_templates, sizeof *t->templates)))
        return OOM();
    for (size_t i = 0; i < s->n_templates; i++) {
        NamedTemplate *nt = &t->templates[t->n_templates++];
        nt->name = tok_strndup(s->template_names[i].s, s->template_names[i].len);
        nt->text = tok_strndup(s->template_texts[i].s, s->template_texts[i].len);
        if (!nt->name || !nt->text) return OOM();
    }
    t->special.chat_template =
        t->chat_template ? t->chat_template : tokenizer_chat_template(t, "default");
    return post_template(&t->post, add_bos ? ids[0] : -1, add_eos ? ids[1] : -1, err, errlen);
}

static int build(Tokenizer *t, const TokenizerVocabSpec *s, char *err, size_t errlen) {
    bool spm = !strcmp(s->model, "llama");
    VocabDefaults dflt = {.add_bos = spm};
    if (!spm && vocab_gpt2_pipeline(t, s->pre ? s->pre : "default", s->where, &dflt, err, errlen))
        return -1;
    if (spm &&
        spm_pipeline(t, s->add_space_prefix != 0, s->remove_extra_whitespaces == 1, err, errlen))
        return -1;
    Bpe *bpe = &t->bpe;
    bpe->byte_fallback = bpe->fuse_unk = spm;
    bpe->ignore_merges = dflt.ignore_merges;
    if (add_vocab(bpe, s, err, errlen)) return -1;
    /* the unknown piece stands for what byte fallback cannot spell, when it is a token */
    int32_t unk = valid_id(s, s->unk_id);
    for (size_t i = 0; unk < 0 && spm && i < s->n_tokens; i++)
        if (type_of(s, i) == TOKENIZER_TYPE_UNKNOWN) unk = (int32_t)i;
    const TokenizerStr *u = unk >= 0 ? &s->tokens[unk] : NULL;
    if (spm && u && u->len && !memchr(u->s, 0, u->len) &&
        strmap_get(&bpe->vocab, u->s, (uint32_t)u->len) >= 0 &&
        !(bpe->unk_token = tok_strndup(u->s, u->len)))
        return OOM();
    if ((spm ? spm_merges(bpe, s, err, errlen) : gpt2_merges(bpe, s, err, errlen)) ||
        bpe_finish(bpe, err, errlen) || added_tokens(t, s, err, errlen))
        return -1;
    bool add_bos = s->add_bos >= 0 ? s->add_bos : dflt.add_bos, add_eos = s->add_eos == 1;
    if (specials(t, s, add_bos, add_eos, err, errlen)) return -1;
    tokenizer_finish(t);
    return 0;
}

Tokenizer *tokenizer_from_vocab(const TokenizerVocabSpec *s, char *err, size_t errlen) {
    if (err && errlen) err[0] = 0;
    const char *where = s->where ? s->where : "tokenizer";
    if (!s->model || (strcmp(s->model, "llama") && strcmp(s->model, "gpt2"))) {
        tok_err(err, errlen,
                "%s: tokenizer.ggml.model '%.60s' is not a tokenizer lorafit can build (it builds "
                "'llama', SentencePiece BPE with byte fallback, and 'gpt2', byte-level BPE)",
                where, s->model ? s->model : "(none)");
        return NULL;
    }
    if (s->n_tokens < 1 || s->n_tokens > (1u << 24)) {
        tok_err(err, errlen, "%s: tokenizer.ggml.tokens has %zu tokens (1 to 2^24 expected)", where,
                s->n_tokens);
        return NULL;
    }
    for (size_t i = 0; i < s->n_tokens; i++)
        if (s->tokens[i].len > UINT32_MAX / 8) {
            tok_err(err, errlen, "%s: tokenizer.ggml.tokens[%zu] is too long", where, i);
            return NULL;
        }
    Tokenizer *t = tokenizer_alloc(err, errlen);
    TokenizerVocabSpec named = *s;
    named.where = where;
    if (t && build(t, &named, err, errlen)) {
        tokenizer_free(t);
        return NULL;
    }
    return t;
}
