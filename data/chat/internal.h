/* data/chat/internal.h — types shared by the chat-template lexer, parser and renderer.
 *
 * Memory: the parser allocates the syntax tree from the template's arena, the renderer every
 * value and scope from a per-render arena; nothing is freed one by one. That is what lets a
 * failure anywhere unwind with longjmp to the entry point (chat_template_parse/render), which
 * frees the arena and returns the message: no cleanup code on the many error paths of a
 * tree-walking interpreter, and no leaks when one fires.
 *
 * Strings are byte ranges (pointer + length, not NUL-terminated) in UTF-8. A string escape
 * like "\ud83d" can make a lone UTF-16 surrogate, as in JavaScript; those are kept as their
 * 3-byte (WTF-8) encoding and joined or replaced by U+FFFD when the output is produced. */
#ifndef LORAFIT_CHAT_INTERNAL_H
#define LORAFIT_CHAT_INTERNAL_H

#include "data/chat/chat.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* ---- failure and arena (chat_arena.c) ---- */

typedef struct Fail {
    jmp_buf jb;
    char msg[768];
} Fail;

typedef struct ArenaBlock ArenaBlock;
typedef struct Arena {
    ArenaBlock *head;
    size_t used, limit; /* bytes handed out so far, and the most allowed */
    Fail *fail;         /* where an allocation failure jumps */
} Arena;

void ct_arena_init(Arena *a, size_t limit, Fail *fail);
void *ct_arena_alloc(Arena *a, size_t size); /* 8-byte aligned, never NULL (jumps instead) */
void *ct_arena_zalloc(Arena *a, size_t size);
char *ct_arena_strdup(Arena *a, const char *s, size_t len);
void ct_arena_free(Arena *a);

/* Formats the message and jumps to f->jb. `src` and `pos` locate it in the template
 * (pos = byte offset into src; pos == NO_POS gives no location). */
#define NO_POS UINT32_MAX
_Noreturn void ct_fail_at(Fail *f, const char *src, size_t srclen, uint32_t pos, const char *fmt,
                          ...) __attribute__((format(printf, 5, 6)));
void ct_source_line_col(const char *src, size_t len, uint32_t pos, int *line, int *col);

/* Growable byte string in an arena (doubling, old copies stay in the arena). */
typedef struct StrBuf {
    Arena *arena;
    char *p;
    size_t len, cap;
} StrBuf;
void ct_sb_init(StrBuf *b, Arena *a);
void ct_sb_add(StrBuf *b, const char *s, size_t n);
void ct_sb_addc(StrBuf *b, char c);
void ct_sb_addf(StrBuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- text helpers (chat_text.c): JavaScript string semantics on UTF-8 ---- */

/* Decodes one code point (WTF-8: surrogates allowed). Returns its length (>= 1). */
size_t ct_u8_decode(const char *s, size_t n, uint32_t *cp);
size_t ct_u8_encode(uint32_t cp, char *out); /* out: 4 bytes */
/* Offset of the first invalid UTF-8 byte, or n if valid (surrogates are invalid here). */
size_t ct_u8_invalid_at(const char *s, size_t n);
int ct_js_is_space(uint32_t cp); /* JavaScript \s: WhiteSpace and LineTerminator */
size_t ct_js_ws_prefix(const char *s, size_t n);
size_t ct_js_ws_suffix(const char *s, size_t n);
size_t ct_js_utf16_len(const char *s, size_t n);
uint32_t ct_js_upper_cp(uint32_t cp);
uint32_t ct_js_lower_cp(uint32_t cp);
/* Number.prototype.toString / JSON.stringify for finite, and "NaN"/"Infinity" otherwise. */
void ct_js_number_str(double v, char out[40]);
void ct_js_float_str(double v, char out[40]);              /* the reference's FloatValue.toString */
int ct_js_parse_int(const char *s, size_t n, double *out); /* parseInt(s, 10); 0 if NaN */
int ct_js_parse_float(const char *s, size_t n, double *out); /* parseFloat(s); 0 if NaN */
double ct_js_to_number(const char *s, size_t n);             /* Number(s) */
/* Turns WTF-8 into UTF-8: surrogate pairs joined, lone surrogates -> U+FFFD. In place;
 * returns the new length (never longer). */
size_t ct_wtf8_to_utf8(char *s, size_t n);

/* ---- tokens (chat_lexer.c) ---- */

typedef enum {
    T_TEXT,
    T_NUMBER,
    T_STRING,
    T_IDENT,
    T_EQUALS,
    T_LPAREN,
    T_RPAREN,
    T_OPEN_STMT,
    T_CLOSE_STMT,
    T_OPEN_EXPR,
    T_CLOSE_EXPR,
    T_LBRACKET,
    T_RBRACKET,
    T_LBRACE,
    T_RBRACE,
    T_COMMA,
    T_DOT,
    T_COLON,
    T_PIPE,
    T_ADD_OP, /* + - ~ */
    T_MUL_OP, /* * / // % */
    T_POW_OP, /* ** */
    T_CMP_OP, /* == != < > <= >= */
    T_UNARY_OP,
    T_COMMENT,
} TokType;

typedef struct Token {
    uint8_t type;
    uint32_t pos;  /* byte offset in the original template source */
    const char *s; /* text, decoded string literal, identifier, number or operator */
    uint32_t len;
} Token;

typedef struct TokenList {
    Token *items;
    size_t len;
} TokenList;

/* Applies the reference's preprocessing (trailing newline, lstrip_blocks, trim_blocks, the
 * generation tag) and tokenizes. Token strings live in `keep` (they end up in the syntax
 * tree), the token array and working copies in `scratch`. */
TokenList ct_lex_template(Arena *keep, Arena *scratch, Fail *f, const char *src, size_t len);

/* ---- syntax tree (chat_parser.c) ---- */

typedef enum {
    OP_ADD,
    OP_SUB,
    OP_CONCAT,
    OP_MUL,
    OP_DIV,
    OP_FLOORDIV,
    OP_MOD,
    OP_POW,
    OP_EQ,
    OP_NE,
    OP_LT,
    OP_GT,
    OP_LE,
    OP_GE,
    OP_IN,
    OP_NOT_IN,
    OP_AND,
    OP_OR,
    OP_NOT,
    OP_NEG,
    OP_POS,
} Op;

typedef enum {
    N_STRING,
    N_INT,
    N_FLOAT,
    N_IDENT,
    N_ARRAY,
    N_TUPLE,
    N_OBJECT,
    N_MEMBER,
    N_SLICE,
    N_CALL,
    N_KWARG,
    N_SPREAD,
    N_KWSPREAD,
    N_UNARY,
    N_BINARY,
    N_FILTER,
    N_TEST,
    N_SELECT,
    N_TERNARY,
    /* statements */
    N_COMMENT,
    N_SET,
    N_IF,
    N_FOR,
    N_MACRO,
    N_CALLBLOCK,
    N_FILTERBLOCK,
    N_BREAK,
    N_CONTINUE,
} NodeKind;

typedef struct Node Node;
typedef struct NodeList {
    Node **items;
    uint32_t len;
} NodeList;

struct Node {
    uint8_t kind;
    uint8_t op;   /* N_UNARY, N_BINARY */
    uint8_t flag; /* N_MEMBER: computed; N_TEST: negated; N_MACRO/N_CALLBLOCK: USES_* */
    uint32_t pos;
    union {
        struct {
            const char *s;
            uint32_t len;
            int32_t sym; /* N_IDENT: index in the template's symbol table */
        } str;           /* N_STRING, N_IDENT */
        double num;      /* N_INT, N_FLOAT */
        NodeList list;   /* N_ARRAY, N_TUPLE */
        struct {
            NodeList keys, values;
        } obj;
        struct {
            Node *object, *property;
        } member;
        struct {
            Node *start, *stop, *step; /* NULL when omitted */
        } slice;
        struct {
            Node *callee;
            NodeList args;
        } call;
        struct {
            Node *key, *value; /* key: N_IDENT */
        } kwarg;
        Node *arg; /* N_SPREAD, N_KWSPREAD, N_UNARY */
        struct {
            Node *left, *right;
        } binary;
        struct {
            Node *operand, *filter; /* filter: N_IDENT or N_CALL of an N_IDENT */
        } filter;
        struct {
            Node *operand, *name; /* name: N_IDENT */
            NodeList args;        /* extension: `is divisibleby(3)` */
            int has_args;
        } test;
        struct {
            Node *lhs, *test;
        } select;
        struct {
            Node *cond, *yes, *no;
        } ternary;
        struct {
            Node *target, *value; /* value NULL: block set, body is the value */
            NodeList body;
        } set;
        struct {
            Node *test;
            NodeList body, alt;
        } if_;
        struct {
            Node *target, *iterable;
            NodeList body, alt;
        } for_;
        struct {
            Node *name;      /* N_IDENT; NULL for a call block's caller */
            Node *call;      /* N_CALLBLOCK: the N_CALL made */
            NodeList params; /* N_IDENT or N_KWARG (default value) */
            NodeList body;
        } macro; /* N_MACRO, N_CALLBLOCK */
        struct {
            Node *filter;
            NodeList body;
        } filterblock;
    } u;
};

#define USES_VARARGS 1
#define USES_KWARGS  2

/* Identifiers the renderer looks up by number. */
enum {
    SYM_LOOP,
    SYM_CALLER,
    SYM_VARARGS,
    SYM_KWARGS,
    SYM_NAMESPACE,
    SYM_RAISE_EXCEPTION,
    SYM_RANGE,
    SYM_STRFTIME_NOW,
    SYM_TRUE,
    SYM_FALSE,
    SYM_NONE,
    SYM_TRUE_TITLE,
    SYM_FALSE_TITLE,
    SYM_NONE_TITLE,
    SYM_FIXED_COUNT
};

struct ChatTemplate {
    Arena arena;
    Fail fail; /* only used while parsing */
    char *src; /* the original source, for error locations */
    size_t srclen;
    NodeList body;
    const char **sym_name; /* symbol table: SYM_* first, then every other identifier */
    uint32_t *sym_len;
    uint32_t n_sym;
    int has_break; /* any break/continue: loops then set up a jump target */
    int uses_loop; /* the name `loop` appears: loops then build the loop object */
};

/* Parses tokens into t->body and t->sym_*; jumps to t->fail on a syntax error. Working
 * memory comes from `scratch`, the tree from t->arena. */
void ct_parse_template(ChatTemplate *t, Arena *scratch, const TokenList *tokens);
int32_t ct_template_symbol(const ChatTemplate *t, const char *name, size_t len); /* -1: absent */

#endif
