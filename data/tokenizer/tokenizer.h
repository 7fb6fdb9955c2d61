/* data/tokenizer/tokenizer.h — Hugging Face tokenizers (tokenizer.json) in C: text -> ids -> text,
 * giving the same ids and decoded text as the Rust `tokenizers` library (0.22).
 *
 * A Tokenizer is loaded once from a model directory (tokenizer.json, plus tokenizer_config.json
 * and special_tokens_map.json when present) and is then read-only: any number of threads may
 * encode and decode with one shared `const Tokenizer *`. Encoding needs a TokenizerScratch per
 * thread (buffers and the cache of words already split by BPE); it is never shared.
 *
 * The encode pipeline is the library's: added tokens (special or not) are cut out of the raw
 * text first — literal "<|begin_of_text|>" or "<s>" in the text becomes that token, as in
 * transformers — then each remaining piece is normalized, the normalized added tokens are cut
 * out, the pre-tokenizers split the pieces, the BPE model turns each piece into ids, and the
 * post-processor adds the template's special tokens when add_special_tokens is set.
 *
 * Supported (anything else is refused at load with a message naming the component and option):
 *   normalizers     NFC NFD NFKC NFKD Lowercase Prepend Replace(String|Regex) Strip StripAccents
 * Sequence pre_tokenizers  Split(String|Regex; Isolated Removed MergedWithPrevious MergedWithNext
 *                   Contiguous; invert) ByteLevel Metaspace Digits Whitespace WhitespaceSplit
 *                   Punctuation Sequence
 *   model           BPE (merges as "a b" strings or [a, b] pairs; byte_fallback, fuse_unk,
 *                   ignore_merges, unk_token, continuing_subword_prefix, end_of_word_suffix;
 *                   dropout null or 0)
 *   post_processor  TemplateProcessing ByteLevel Sequence
 *   decoder         ByteLevel Metaspace Replace ByteFallback Fuse Strip BPEDecoder Sequence
 * Regexes (Split, Replace) are Oniguruma patterns, as in the Rust library; they are translated
 * to PCRE2 (UTF, UCP, JIT) with Oniguruma's meaning of \s \w \h, ^ $ (line anchors) and (?m).
 * "truncation" and "padding" in tokenizer.json are ignored, as transformers ignores them unless
 * a call asks for truncation or padding.
 *
 * Errors: functions return 0 / a pointer on success and -1 / NULL on failure, with a message in
 * err (what failed and where, e.g. `tokenizer.json: normalizer "Precompiled" is not supported`). */
#ifndef LORAFIT_TOKENIZER_H
#define LORAFIT_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct Tokenizer Tokenizer;
typedef struct TokenizerScratch TokenizerScratch;

/* A growable array of token ids; zero-initialise it, free it with tokenizer_ids_free. */
typedef struct TokenizerIds {
    int32_t *ids;
    size_t n, cap;
} TokenizerIds;
void tokenizer_ids_free(TokenizerIds *ids);

/* dir holds tokenizer.json; tokenizer_config.json and special_tokens_map.json are read when
 * present (see TokenizerSpecial). */
Tokenizer *tokenizer_load(const char *dir, char *err, size_t errlen);
/* From the text of a tokenizer.json alone (no config files). */
Tokenizer *tokenizer_load_json(const char *json_text, size_t len, char *err, size_t errlen);

/* A tokenizer described by plain arrays: what a llama.cpp GGUF file stores as tokenizer.ggml.*
 * (vocab.c). It is built as the tokenizer.json Hugging Face's converters make from the same
 * model, so it gives that tokenizer's ids:
 *   "llama"  SentencePiece BPE with byte fallback (Llama 2, Mistral, Gemma, TinyStories): every
 *            token but UNUSED ones is in the vocabulary; the merges are every split of a token
 *            into two tokens, ranked by the token's score (highest first; ties by token id, then
 *            the parts' ids), as transformers' SentencePieceExtractor ranks them; the normalizer
 *            replaces ' ' by U+2581 after prepending one (add_space_prefix, default on) and,
 *            with remove_extra_whitespaces, trimming and squeezing spaces first; the decoder
 *            undoes it.
 *   "gpt2"   byte-level BPE with ranked merges ("a b") and the pre-tokenizer `pre` names
 *            (tokenizer_pre_names lists them); an unknown name is refused.
 * CONTROL and UNKNOWN tokens become special added tokens, USER_DEFINED ones non-special added
 * tokens, all matched in the raw text (llama.cpp's rule). add_bos / add_eos make the
 * post-processor's template; the chat templates are kept as tokenizer_config.json's are. */
enum {
    TOKENIZER_TYPE_NORMAL = 1, /* llama.cpp's token types (tokenizer.ggml.token_type) */
    TOKENIZER_TYPE_UNKNOWN = 2,
    TOKENIZER_TYPE_CONTROL = 3,
    TOKENIZER_TYPE_USER_DEFINED = 4,
    TOKENIZER_TYPE_UNUSED = 5,
    TOKENIZER_TYPE_BYTE = 6,
};
typedef struct TokenizerStr { /* len bytes, not necessarily NUL-terminated */
    const char *s;
    size_t len;
} TokenizerStr;
typedef struct TokenizerVocabSpec {
    const char *where;          /* named in messages, e.g. the file's path */
    const char *model;          /* "llama" or "gpt2" */
    const char *pre;            /* gpt2: the pre-tokenizer's name; NULL = "default" */
    const TokenizerStr *tokens; /* (n_tokens) id -> text */
    size_t n_tokens;            /* 1 .. 2^24 */
    const float *scores;        /* (n_tokens) or NULL (all 0) */
    const int32_t *types;       /* (n_tokens) TOKENIZER_TYPE_*, or NULL (all NORMAL) */
    const TokenizerStr *merges; /* (n_merges) gpt2: "a b", lowest rank first */
    size_t n_merges;
    int32_t bos_id, eos_id, unk_id, pad_id; /* -1: none */
    int add_bos, add_eos;                   /* 1, 0, or -1: llama 1 / 0, gpt2 by `pre` */
    int add_space_prefix;                   /* llama: 1, 0, or -1 (1) */
    int remove_extra_whitespaces;           /* llama: 1, 0, or -1 (0) */
    TokenizerStr chat_template;             /* .s NULL when none */
    const TokenizerStr *template_names, *template_texts; /* (n_templates) named ones */
    size_t n_templates;
} TokenizerVocabSpec;
Tokenizer *tokenizer_from_vocab(const TokenizerVocabSpec *spec, char *err, size_t errlen);
/* The gpt2 pre-tokenizer names tokenizer_from_vocab knows, comma-separated (for messages). */
const char *tokenizer_pre_names(void);
void tokenizer_free(Tokenizer *tok);

/* A scratch may serve several tokenizers in turn (its word cache starts over on a switch). */
TokenizerScratch *tokenizer_scratch_new(void);
void tokenizer_scratch_free(TokenizerScratch *scratch);

/* Appends the ids of `text` (len bytes of UTF-8; invalid UTF-8 is an error) to out. With
 * add_special_tokens the post-processor's template tokens (e.g. BOS) are added. */
int tokenizer_encode(const Tokenizer *tok, TokenizerScratch *scratch, const char *text, size_t len,
                     bool add_special_tokens, TokenizerIds *out, char *err, size_t errlen);
/* A pair of sequences (the template's "pair" form). */
int tokenizer_encode_pair(const Tokenizer *tok, TokenizerScratch *scratch, const char *a,
                          size_t a_len, const char *b, size_t b_len, bool add_special_tokens,
                          TokenizerIds *out, char *err, size_t errlen);

/* Decodes ids into a malloc'ed NUL-terminated string (*len bytes, valid UTF-8: bytes that do not
 * form UTF-8 become U+FFFD as in the Rust library). Ids with no token are skipped; with
 * skip_special_tokens so are special added tokens. The caller frees *text. */
int tokenizer_decode(const Tokenizer *tok, const int32_t *ids, size_t n, bool skip_special_tokens,
                     char **text, size_t *len, char *err, size_t errlen);

/* Streaming decode (the library's DecodeStream, step for step): feed ids one at a time; each
 * step yields the text that became complete (possibly none: a character still cut in half).
 * For the usual decoders (ByteLevel; Replace + ByteFallback + Fuse + Strip of one leading
 * space; Metaspace) the pieces concatenate to tokenizer_decode of all ids, less a trailing
 * U+FFFD that never completes. */
typedef struct TokenizerStream TokenizerStream;
TokenizerStream *tokenizer_stream_new(const Tokenizer *tok, bool skip_special_tokens);
/* *text = NULL (and *len = 0) when nothing new is complete; otherwise *text points into the
 * stream and stays valid until the next call. */
int tokenizer_stream_step(TokenizerStream *stream, int32_t id, const char **text, size_t *len,
                          char *err, size_t errlen);
void tokenizer_stream_free(TokenizerStream *stream);

/* Vocabulary. Ids run over [0, tokenizer_vocab_size): the model's vocabulary and the added
 * tokens (some ids of that range may have no token). */
int tokenizer_vocab_size(const Tokenizer *tok);
/* -1 when the string is neither an added token nor in the model's vocabulary. */
int32_t tokenizer_token_to_id(const Tokenizer *tok, const char *token, size_t len);
/* The token's string (added token content first, then the model's), or NULL; *len may be NULL. */
const char *tokenizer_id_to_token(const Tokenizer *tok, int32_t id, size_t *len);

enum {
    TOKENIZER_TOKEN_ADDED = 1 << 0,      /* in added_tokens */
    TOKENIZER_TOKEN_SPECIAL = 1 << 1,    /* a special added token (skipped by skip_special) */
    TOKENIZER_TOKEN_NORMALIZED = 1 << 2, /* added token matched in normalized text */
    TOKENIZER_TOKEN_LSTRIP = 1 << 3,     /* added token flags, as in tokenizer.json */
    TOKENIZER_TOKEN_RSTRIP = 1 << 4,
    TOKENIZER_TOKEN_SINGLE_WORD = 1 << 5,
    TOKENIZER_TOKEN_BYTE = 1 << 6,   /* a byte-fallback token "<0xXX>" of a byte_fallback model */
    TOKENIZER_TOKEN_UNUSED = 1 << 7, /* no token has this id */
};
int tokenizer_token_flags(const Tokenizer *tok, int32_t id);

/* Read access for exporters (e.g. GGUF). */
typedef struct TokenizerModelInfo {
    const char *kind; /* "BPE" */
    bool byte_level;  /* a ByteLevel pre-tokenizer maps bytes to the GPT-2 alphabet */
    bool byte_fallback, fuse_unk, ignore_merges;
    int32_t unk_id;                                             /* -1 when none */
    const char *continuing_subword_prefix, *end_of_word_suffix; /* NULL when unset */
    bool metaspace;        /* a Metaspace pre-tokenizer, or the Prepend+Replace legacy form */
    bool add_prefix_space; /* ByteLevel add_prefix_space, or Metaspace prepend_scheme != never */
    size_t n_merges;
    size_t n_split_regexes; /* Split pre-tokenizers with Regex patterns, in pipeline order */
} TokenizerModelInfo;
void tokenizer_model_info(const Tokenizer *tok, TokenizerModelInfo *info);
/* Merge `rank` (0 = applied first) as its two token strings. -1 when rank is out of range. */
int tokenizer_merge(const Tokenizer *tok, size_t rank, const char **left, const char **right);
/* The i-th Split regex (the Oniguruma source text from tokenizer.json), or NULL. */
const char *tokenizer_split_regex(const Tokenizer *tok, size_t i);
/* Added tokens in tokenizer.json order: content and id. -1 when i is out of range. */
size_t tokenizer_added_count(const Tokenizer *tok);
int tokenizer_added(const Tokenizer *tok, size_t i, const char **content, int32_t *id);

/* From tokenizer_config.json (and special_tokens_map.json for tokens it does not name). Strings
 * are NULL and ids -1 when absent; flags are -1 when unset. */
typedef struct TokenizerSpecial {
    const char *bos_token, *eos_token, *pad_token, *unk_token;
    int32_t bos_id, eos_id, pad_id, unk_id; /* the strings' ids in this vocabulary */
    const char *chat_template; /* a string, or the "default" entry of a list of named templates */
    int add_bos_token, add_eos_token; /* 1, 0 or -1 */
    int64_t model_max_length; /* -1 when absent or not a sane integer (HF's 1e30 sentinel) */
} TokenizerSpecial;
const TokenizerSpecial *tokenizer_special(const Tokenizer *tok);
/* A named chat template from a list-form chat_template ("tool_use", ...), or NULL. */
const char *tokenizer_chat_template(const Tokenizer *tok, const char *name);

#endif
