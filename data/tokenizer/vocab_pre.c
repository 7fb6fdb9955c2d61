/* data/tokenizer/vocab_pre.c — the pipelines of a "gpt2" (byte-level BPE) tokenizer described by
 * llama.cpp's pre-tokenizer name (tokenizer.ggml.pre), as the Hugging Face tokenizer.json of the
 * model the name stands for has them. The names and the flags ignore_merges and add_bos are
 * llama-vocab.cpp's; the regexes are the tokenizer.json originals that llama.cpp adapts to its
 * own regex engine (both split text the same way); Qwen's tokenizers normalize to NFC first,
 * which llama.cpp skips. llama.cpp's own "default" (a GGUF whose converter knew no better) is
 * its four regexes applied in turn. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/tokenizer/internal.h"

#define RE_LLAMA3                                                                                  \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+" \
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN2                                                                                   \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+"      \
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN35                                                                                  \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| "                  \
    "?[^\\s\\p{L}\\p{M}"                                                                           \
    "\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_TEKKEN                                                                                  \
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+|"   \
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*|"   \
    "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_GPT4O                                                                                   \
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"    \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+"    \
    "[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}| "                    \
    "?[^\\s\\p{L}\\p{N}]+"                                                                         \
    "[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_GPT2_NO_FALLBACK                                                                        \
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"

/* How a family's pre-tokenizer splits: Split regexes (Isolated) then ByteLevel without its
 * regex, or Digits (individual) / nothing before a ByteLevel with GPT-2's regex. */
typedef enum { SPLITS, DIGITS_GPT2, GPT2 } PreShape;

typedef struct PreDef {
    const char *names; /* llama.cpp's names for it, space-separated */
    PreShape shape;
    const char *regexes[4];
    bool nfc, ignore_merges, add_bos;
} PreDef;

static const PreDef PRES[] = {
    {"llama3 llama-v3 llama-bpe falcon3 pixtral", SPLITS, {RE_LLAMA3}, false, true, true},
    {"dbrx smaug-bpe", SPLITS, {RE_LLAMA3}, false, false, false},
    {"qwen2 deepseek-r1-qwen", SPLITS, {RE_QWEN2}, true, false, false},
    {"qwen35", SPLITS, {RE_QWEN35}, true, false, false},
    {"tekken", SPLITS, {RE_TEKKEN}, false, true, true},
    {"gpt-4o llama4", SPLITS, {RE_GPT4O}, false, false, false},
    {"smollm starcoder refact codeshell", DIGITS_GPT2, {0}, false, false, false},
    {"gpt-2 phi-2 olmo mpt", GPT2, {0}, false, false, false},
    {"default",
     SPLITS,
     {"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2_NO_FALLBACK, "\\p{N}+", "[0-9][0-9][0-9]"},
     false,
     false,
     false},
};

const char *tokenizer_pre_names(void) {
    return "llama3, llama-v3, llama-bpe, falcon3, pixtral, dbrx, smaug-bpe, qwen2, "
           "deepseek-r1-qwen, qwen35, tekken, gpt-4o, llama4, smollm, starcoder, refact, "
           "codeshell, gpt-2, "
           "phi-2, olmo, mpt, default";
}

static bool has_name(const char *names, const char *name) {
    size_t n = strlen(name);
    for (const char *p = names; *p;) {
        const char *end = strchr(p, ' ');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && memcmp(p, name, n) == 0) return true;
        p += len + (end ? 1 : 0);
    }
    return false;
}

static int compile_into(PreTokenizer *p, const char *re, const char *where, char *err,
                        size_t errlen) {
    char inner[300];
    p->kind = PRE_SPLIT;
    p->behavior = SPLIT_ISOLATED;
    if (!(p->re = regex_compile(re, strlen(re), inner, sizeof inner))) {
        tok_err(err, errlen, "%s: pre-tokenizer regex: %s", where, inner);
        return -1;
    }
    return 0;
}

int vocab_gpt2_pipeline(Tokenizer *t, const char *pre, const char *where, VocabDefaults *out,
                        char *err, size_t errlen) {
    const PreDef *d = NULL;
    for (size_t i = 0; i < sizeof PRES / sizeof *PRES && !d; i++)
        if (has_name(PRES[i].names, pre)) d = &PRES[i];
    if (!d) {
        tok_err(err, errlen,
                "%s: tokenizer.ggml.pre '%.60s' is a pre-tokenizer lorafit does not know (it "
                "knows %s)",
                where, pre, tokenizer_pre_names());
        return -1;
    }
    out->ignore_merges = d->ignore_merges;
    out->add_bos = d->add_bos;
    if (d->nfc) {
        if (!(t->normalizer = calloc(1, sizeof *t->normalizer)))
            return tok_err(err, errlen, "out of memory"), -1;
        t->normalizer->kind = NORM_NFC;
    }
    size_t n_re = 0;
    while (n_re < 4 && d->regexes[n_re]) n_re++;
    size_t n = (d->shape == SPLITS ? n_re : d->shape == DIGITS_GPT2 ? 1 : 0) + 1;
    PreTokenizer *seq = calloc(1, sizeof *seq);
    PreTokenizer *items = calloc(n, sizeof *items);
    if (!seq || !items) {
        free(seq);
        free(items);
        return tok_err(err, errlen, "out of memory"), -1;
    }
    t->pretok = seq;
    seq->kind = PRE_SEQUENCE;
    seq->items = items;
    seq->n_items = n;
    for (size_t i = 0; d->shape == SPLITS && i < n_re; i++)
        if (compile_into(&items[i], d->regexes[i], where, err, errlen)) return -1;
    if (d->shape == DIGITS_GPT2) {
        items[0].kind = PRE_DIGITS;
        items[0].individual_digits = true;
    }
    PreTokenizer *bl = &items[n - 1];
    bl->kind = PRE_BYTE_LEVEL;
    bl->use_regex = d->shape != SPLITS;
    if (bl->use_regex) {
        char inner[300];
        t->gpt2 = regex_compile(BYTE_LEVEL_GPT2_PATTERN, strlen(BYTE_LEVEL_GPT2_PATTERN), inner,
                                sizeof inner);
        if (!t->gpt2) return tok_err(err, errlen, "%s: %s", where, inner), -1;
    }
    if (!(t->decoder = calloc(1, sizeof *t->decoder)))
        return tok_err(err, errlen, "out of memory"), -1;
    t->decoder->kind = DEC_BYTE_LEVEL;
    return 0;
}
