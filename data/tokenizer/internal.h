/* data/tokenizer/internal.h — the tokenizer module's internal types, shared by its files only.
 *
 * Encoding works on *pieces*: byte ranges of one growing arena (TokenizerScratch.arena), each
 * either an added token already (id >= 0) or text still to split and tokenize. A step that
 * changes text (a normalizer, ByteLevel's byte-to-char map) writes the new text to the end of
 * the arena; a step that only splits makes pieces that point into the same text. Nothing is
 * allocated per piece, and the arena is reused from call to call.
 *
 * The Rust library tracks, for every normalized byte, the span of the original text it came
 * from. Ids depend on that in one place only: Metaspace's prepend_scheme "first" adds "▁" to a
 * piece only when the piece starts at original offset 0. So a piece keeps just what that
 * needs: at_start (its original offset is 0) and zpl, the number of its leading bytes whose
 * original offset is 0 (a split at byte k < zpl of an at_start piece gives an at_start piece). */
#ifndef LORAFIT_TOKENIZER_INTERNAL_H
#define LORAFIT_TOKENIZER_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "data/tokenizer/tokenizer.h"

/* ---- small containers (util.c) ---- */
typedef struct Buf {
    char *p;
    size_t len, cap;
} Buf;
int buf_reserve(Buf *b, size_t extra);
int buf_append(Buf *b, const void *data, size_t n);
int buf_append_cp(Buf *b, uint32_t cp); /* one code point as UTF-8 */
void buf_free(Buf *b);

typedef struct U32Vec {
    uint32_t *v;
    size_t n, cap;
} U32Vec;
int u32vec_push(U32Vec *v, uint32_t x);
int ids_push(TokenizerIds *ids, int32_t id);

void tok_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
char *tok_strndup(const char *s, size_t n);

/* Strings that live as long as the tokenizer (vocabulary keys): chunks that never move. */
typedef struct Pool {
    struct PoolChunk *head;
} Pool;
char *pool_strndup(Pool *pool, const char *s, size_t n);
void pool_free(Pool *pool);

/* string -> int32 (open addressing; keys are borrowed and must outlive the map) */
typedef struct StrMapEntry {
    const char *key;
    uint32_t len, hash;
    int32_t value;
} StrMapEntry;
typedef struct StrMap {
    StrMapEntry *slots;
    size_t cap, n; /* cap is a power of two */
} StrMap;
uint32_t str_hash(const char *s, size_t n);
int strmap_put(StrMap *m, const char *key, uint32_t len, int32_t value); /* replaces */
int32_t strmap_get(const StrMap *m, const char *key, uint32_t len);      /* -1 if absent */
void strmap_free(StrMap *m);

/* ---- Unicode (unicode.c) ---- */
/* Length of the UTF-8 sequence at s (valid input assumed) and its code point. */
int utf8_next(const char *s, size_t len, uint32_t *cp);
/* Offset of the first byte that is not valid UTF-8 (Rust's str rules), or len. */
size_t utf8_valid_prefix(const char *s, size_t len);
/* Appends s to out, each maximal invalid subsequence replaced by U+FFFD (from_utf8_lossy). */
int utf8_append_lossy(Buf *out, const char *s, size_t len);
bool uni_is_whitespace(uint32_t cp);  /* White_Space (Rust char::is_whitespace, regex \s) */
bool uni_is_numeric(uint32_t cp);     /* Nd Nl No (char::is_numeric) */
bool uni_is_punctuation(uint32_t cp); /* ASCII punctuation or P* */
bool uni_is_word(uint32_t cp);        /* Rust regex \w */
bool uni_is_mark(uint32_t cp);        /* Mn Mc Me */
/* NFC/NFD/NFKC/NFKD of s appended to out. form: 'C', 'D', 'c' (NFKC), 'd' (NFKD). */
int uni_normalize(const char *s, size_t len, char form, Buf *out);
/* nf_align.c: the zero-aligned prefix length (see Piece) after normalizing s with form. */
uint32_t nf_zero_prefix(const char *s, size_t len, uint32_t zpl, char form);
/* Rust char::to_lowercase of every character, appended to out. */
int uni_lowercase(const char *s, size_t len, Buf *out);

/* ---- regexes (regex.c) ---- */
typedef struct Regex {
    pcre2_code *code; /* NULL for a literal */
    char *literal;
    size_t literal_len;
    char *source; /* as written in tokenizer.json */
} Regex;
typedef struct RegexScratch {
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit;
} RegexScratch;
Regex *regex_compile(const char *onig_pattern, size_t len, char *err, size_t errlen);
Regex *regex_literal(const char *s, size_t len);
void regex_free(Regex *re);
int regex_scratch_init(RegexScratch *rs);
void regex_scratch_free(RegexScratch *rs);
/* Every match of re in s as (start, end) pairs appended to out, with the iteration rules of
 * the onig crate's find_iter (an empty match right after a match is skipped). */
int regex_find_all(const Regex *re, RegexScratch *rs, const char *s, size_t len, U32Vec *out,
                   char *err, size_t errlen);

/* ---- pieces ---- */
typedef struct Piece {
    uint32_t off, len; /* in the arena */
    int32_t id;        /* >= 0: an added token, not split or tokenized further */
    bool at_start;
    uint32_t zpl;
} Piece;
typedef struct PieceList {
    Piece *v;
    size_t n, cap;
} PieceList;
int pieces_push(PieceList *l, Piece p);
/* The sub-piece [k, k + len) of p (at_start / zpl follow the slice rule above). */
Piece piece_slice(const Piece *p, uint32_t k, uint32_t len);

typedef struct Bpe Bpe;
typedef struct BpeCache BpeCache;

struct TokenizerScratch {
    const struct Tokenizer *tok; /* the tokenizer of the call under way */
    uint64_t cache_owner;        /* Tokenizer.serial of the words in the cache */
    Buf arena, tmp, tmp2;
    PieceList a, b;
    U32Vec matches, spans;
    RegexScratch rs;
    BpeCache *cache;
    TokenizerIds ids_a, ids_b;
};

/* ---- normalizers (normalize.c) ---- */
typedef enum {
    NORM_NFC,
    NORM_NFD,
    NORM_NFKC,
    NORM_NFKD,
    NORM_LOWERCASE,
    NORM_STRIP_ACCENTS,
    NORM_PREPEND,
    NORM_REPLACE,
    NORM_STRIP,
    NORM_SEQUENCE
} NormKind;
typedef struct Normalizer {
    NormKind kind;
    struct Normalizer *items; /* Sequence */
    size_t n_items;
    char *text; /* Prepend: prepend; Replace: content */
    size_t text_len;
    Regex *re; /* Replace */
    bool left, right;
} Normalizer;
/* Normalizes the piece p (text in sc->arena); the result is appended to the arena and p is
 * updated to point at it. */
int normalizer_run(const Normalizer *n, TokenizerScratch *sc, Piece *p, char *err, size_t errlen);
void normalizer_free(Normalizer *n);

/* ---- pre-tokenizers (pretokenize.c) ---- */
typedef enum {
    SPLIT_REMOVED,
    SPLIT_ISOLATED,
    SPLIT_MERGED_WITH_PREVIOUS,
    SPLIT_MERGED_WITH_NEXT,
    SPLIT_CONTIGUOUS
} SplitBehavior;
typedef enum { PREPEND_ALWAYS, PREPEND_FIRST, PREPEND_NEVER } PrependScheme;
typedef enum {
    PRE_SPLIT,
    PRE_BYTE_LEVEL,
    PRE_METASPACE,
    PRE_DIGITS,
    PRE_WHITESPACE,
    PRE_WHITESPACE_SPLIT,
    PRE_PUNCTUATION,
    PRE_SEQUENCE
} PreKind;
typedef struct PreTokenizer {
    PreKind kind;
    struct PreTokenizer *items;
    size_t n_items;
    Regex *re; /* Split */
    SplitBehavior behavior;
    bool invert;
    bool add_prefix_space, use_regex; /* ByteLevel */
    uint32_t replacement;             /* Metaspace */
    char replacement_utf8[5];
    PrependScheme prepend_scheme;
    bool split;
    bool individual_digits;
} PreTokenizer;
/* Splits every text piece of *list (pieces with an id pass through); swaps lists. */
int pretokenizer_run(const PreTokenizer *pt, TokenizerScratch *sc, PieceList **list, char *err,
                     size_t errlen);
void pretokenizer_free(PreTokenizer *pt);
/* The GPT-2 regex ByteLevel uses when use_regex is set (compiled once per tokenizer). */
extern const char *const BYTE_LEVEL_GPT2_PATTERN;
/* GPT-2's byte -> code point table, and its inverse (-1 for code points outside it). */
uint32_t byte_level_char(uint8_t b);
int byte_level_byte(uint32_t cp);

/* ---- BPE (bpe.c) ---- */
typedef struct PairMapSlot {
    uint64_t key; /* left << 32 | right; UINT64_MAX when empty */
    int32_t rank, new_id;
} PairMapSlot;
struct Bpe {
    StrMap vocab;
    Pool pool;
    const char **id_str; /* (n_ids) the model's string for each id, or NULL */
    uint32_t *id_len;
    int32_t n_ids; /* max id + 1 */
    size_t vocab_count;
    PairMapSlot *merges;
    size_t merges_cap;
    int32_t (*merge_list)[2]; /* (n_merges, 2) by rank */
    size_t n_merges;
    char *unk_token;
    bool fuse_unk, byte_fallback, ignore_merges;
    char *prefix, *suffix; /* continuing_subword_prefix, end_of_word_suffix (NULL = unset) */
    int32_t byte_ids[256]; /* "<0xXX>" ids, -1 when absent */
};
int bpe_add_merge(Bpe *bpe, const char *a, size_t a_len, const char *b, size_t b_len, char *err,
                  size_t errlen);
int bpe_finish(Bpe *bpe, char *err, size_t errlen); /* after vocab and merges are in */
/* Appends the ids of one pre-tokenized piece. */
int bpe_encode(const Bpe *bpe, TokenizerScratch *sc, const char *s, size_t len, TokenizerIds *out,
               char *err, size_t errlen);
void bpe_free(Bpe *bpe);
BpeCache *bpe_cache_new(void);
void bpe_cache_clear(BpeCache *c);
void bpe_cache_free(BpeCache *c);

/* ---- added tokens (added.c) ---- */
typedef struct AddedToken {
    char *content;
    size_t len;
    int32_t id;
    bool special, single_word, lstrip, rstrip, normalized;
} AddedToken;
typedef struct TrieNode {
    int32_t first_child, next_sibling, token; /* token: index into Added.tokens or -1 */
    uint8_t byte;
} TrieNode;
typedef struct Trie {
    TrieNode *nodes;
    size_t n, cap;
    int32_t root_child[256];
} Trie;
typedef struct Added {
    AddedToken *tokens; /* unique contents, in tokenizer.json order */
    size_t n, cap;
    StrMap by_content;
    int32_t *by_id; /* (n_ids) index into tokens or -1 */
    int32_t n_ids;
    int32_t next_id; /* the id the next new token gets */
    Trie raw, norm;
    Pool pool;
} Added;
/* Adds tokens as AddedVocabulary::add_tokens does (an existing content keeps its id, a new one
 * gets the next id after the model's vocabulary). */
int added_add(Added *a, const Bpe *bpe, const AddedToken *t, char *err, size_t errlen);
/* Builds the two tries; normalized tokens are matched by their normalized form. */
int added_build(Added *a, const Normalizer *norm, TokenizerScratch *sc, char *err, size_t errlen);
/* Cuts the added tokens of the trie out of piece p, appending the pieces to out. */
int added_split(const Added *a, const Trie *trie, TokenizerScratch *sc, const Piece *p,
                PieceList *out);
void added_free(Added *a);

/* ---- post-processor (post.c) ---- */
typedef struct TemplateItem {
    int seq; /* 0 = A, 1 = B, -1 = special token */
    int32_t *ids;
    size_t n_ids;
} TemplateItem;
typedef struct Post {
    bool has_template;
    TemplateItem *single, *pair;
    size_t n_single, n_pair;
} Post;
int post_apply(const Post *post, const TokenizerIds *a, const TokenizerIds *b,
               bool add_special_tokens, TokenizerIds *out);
void post_free(Post *post);

/* ---- decoders (decode.c) ---- */
typedef enum {
    DEC_BYTE_LEVEL,
    DEC_METASPACE,
    DEC_REPLACE,
    DEC_BYTE_FALLBACK,
    DEC_FUSE,
    DEC_STRIP,
    DEC_BPE,
    DEC_SEQUENCE
} DecKind;
typedef struct Decoder {
    DecKind kind;
    struct Decoder *items;
    size_t n_items;
    Regex *re;     /* Replace */
    char *content; /* Replace content; BPEDecoder suffix */
    size_t content_len;
    uint32_t strip_char; /* Strip */
    size_t start, stop;
    uint32_t replacement; /* Metaspace */
    PrependScheme prepend_scheme;
} Decoder;
void decoder_free(Decoder *d);

/* ---- the tokenizer ---- */
typedef struct NamedTemplate {
    char *name, *text;
} NamedTemplate;
struct Tokenizer {
    uint64_t serial; /* unique per loaded tokenizer: a scratch's cache belongs to one */
    Bpe bpe;
    Added added;
    Normalizer *normalizer;
    PreTokenizer *pretok;
    Post post;
    Decoder *decoder;
    Regex *gpt2; /* shared by ByteLevel pre-tokenizers with use_regex */
    int32_t vocab_size;
    TokenizerModelInfo info;
    const char **split_regexes;
    size_t n_split_regexes;
    TokenizerSpecial special;
    char *special_strings[4];
    char *chat_template;
    NamedTemplate *templates;
    size_t n_templates;
};

/* load.c: an empty tokenizer (no model, special ids -1), and the derived fields (vocab_size,
 * info, split_regexes) once its parts are in. */
Tokenizer *tokenizer_alloc(char *err, size_t errlen);
void tokenizer_finish(Tokenizer *t);

/* vocab_pre.c: a gpt2 tokenizer's normalizer, pre-tokenizer and decoder for llama.cpp's
 * pre-tokenizer name, and the defaults that name implies. */
typedef struct VocabDefaults {
    bool ignore_merges, add_bos;
} VocabDefaults;
int vocab_gpt2_pipeline(Tokenizer *t, const char *pre, const char *where, VocabDefaults *out,
                        char *err, size_t errlen);

/* load_parts.c: the components of tokenizer.json (jansson values). */
struct json_t;
/* o[key] as a bool: dflt when absent or null; -1 with err ("WHERE.KEY must be true or false")
 * for another type. */
int tok_opt_bool(struct json_t *o, const char *key, bool dflt, bool *out, const char *where,
                 char *err, size_t errlen);
int load_normalizer(Tokenizer *t, struct json_t *j, const char *where, Normalizer *out, char *err,
                    size_t errlen);
int load_pretokenizer(Tokenizer *t, struct json_t *j, const char *where, PreTokenizer *out,
                      char *err, size_t errlen);
int load_post(Tokenizer *t, struct json_t *j, const char *where, char *err, size_t errlen);
int load_decoder(Tokenizer *t, struct json_t *j, const char *where, Decoder *out, char *err,
                 size_t errlen);
/* config.c */
int tokcfg_load(Tokenizer *t, const char *dir, char *err, size_t errlen);
void tokcfg_free(Tokenizer *t);

#endif
