/* data/chat/parser.h — the parser's state and helpers, shared by chat_parser.c (statements,
 * the symbol table) and chat_parse_expr.c (the expression grammar). */
#ifndef LORAFIT_CHAT_PARSER_H
#define LORAFIT_CHAT_PARSER_H

#include "data/chat/internal.h"

#include <string.h>

#define T_EOF                       255
#define STR_(x)                     #x
#define STR(x)                      STR_(x)
#define CHAT_TEMPLATE_MAX_DEPTH_STR STR(CHAT_TEMPLATE_MAX_DEPTH)

typedef struct Parser {
    ChatTemplate *t;
    Arena *scratch;
    const Token *tok;
    size_t n, cur;
    int depth;
    /* symbol table under construction */
    const char **names;
    uint32_t *lens;
    uint32_t nsym, capsym;
} Parser;

typedef struct NodeVec {
    Node **items;
    uint32_t len, cap;
} NodeVec;

static inline const Token *peek(const Parser *P, size_t ahead) {
    return &P->tok[P->cur + ahead < P->n ? P->cur + ahead : P->n];
}

static inline int is(const Parser *P, int type) {
    return peek(P, 0)->type == type;
}

static inline int tok_is_word(const Token *t, const char *w) {
    return t->type == T_IDENT && t->len == strlen(w) && memcmp(t->s, w, t->len) == 0;
}

static inline int is_word(const Parser *P, const char *w) {
    return tok_is_word(peek(P, 0), w);
}

static inline int is_statement(const Parser *P, const char *const *names) {
    if (peek(P, 0)->type != T_OPEN_STMT) return 0;
    const Token *t = peek(P, 1);
    for (; *names; names++)
        if (tok_is_word(t, *names)) return 1;
    return 0;
}

_Noreturn void ct_perr(Parser *P, const Token *at, const char *fmt, const char *arg);
_Noreturn void ct_unexpected(Parser *P, const Token *at, const char *wanted);
const Token *ct_expect(Parser *P, int type, const char *wanted);
void ct_expect_word(Parser *P, const char *w, const char *wanted);
void ct_enter(Parser *P, const Token *at); /* one nesting level deeper (P->depth-- to leave) */
Node *ct_new_node(Parser *P, NodeKind kind, uint32_t pos);
void ct_nv_push(Parser *P, NodeVec *v, Node *n);
NodeList ct_nv_finish(Parser *P, NodeVec *v);
Node *ct_ident_node(Parser *P, const Token *t);

/* chat_parse_expr.c */
Node *ct_parse_expression(Parser *P);
Node *ct_parse_primary(Parser *P);
NodeList ct_parse_args(Parser *P, int params); /* (a, b=1, *xs, **kw); params: a macro's */
/* chat_parser.c: `a, b` as a tuple, one expression as itself (primary: loop targets) */
Node *ct_parse_expression_sequence(Parser *P, int primary);

#endif
