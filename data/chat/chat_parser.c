/* data/chat/chat_parser.c — tokens to a syntax tree, with @huggingface/jinja's grammar.
 *
 * Precedence, lowest first: `a if c else b` (and `a if c` = undefined when c is false),
 * or, and, not, comparisons and (not) in, + - ~, * / // %, **, `is` tests, `|` filters,
 * unary + -, then member access, calls and primaries. The reference's leniencies are kept
 * (arguments need no commas, `x[a b]` is `x[a]`) because templates it accepts must parse.
 * Extension: a test may take arguments, `is divisibleby(3)` or `is eq 2` (one literal).
 *
 * Nesting (brackets, unary chains, blocks) is limited to CHAT_TEMPLATE_MAX_DEPTH so that a
 * hostile template cannot exhaust the stack here or in the renderer. */
#include "data/chat/internal.h"

#include <stdlib.h>
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

static const char *const FIXED_SYMS[SYM_FIXED_COUNT] = {
    "loop",         "caller", "varargs", "kwargs", "namespace", "raise_exception", "range",
    "strftime_now", "true",   "false",   "none",   "True",      "False",           "None",
};

static const Token *peek(const Parser *P, size_t ahead) {
    return &P->tok[P->cur + ahead < P->n ? P->cur + ahead : P->n];
}

static const char *tok_desc(const Token *t, char *buf, size_t cap) {
    switch (t->type) {
    case T_EOF:
        return "the end of the template";
    case T_TEXT:
        return "text";
    case T_COMMENT:
        return "a comment";
    case T_STRING:
        return "a string";
    case T_NUMBER:
        snprintf(buf, cap, "number %.*s", (int)(t->len > 40 ? 40 : t->len), t->s);
        return buf;
    case T_IDENT:
        snprintf(buf, cap, "'%.*s'", (int)(t->len > 40 ? 40 : t->len), t->s);
        return buf;
    default:
        snprintf(buf, cap, "'%.*s'", (int)t->len, t->s);
        return buf;
    }
}

_Noreturn static void perr(Parser *P, const Token *at, const char *fmt, const char *arg) {
    ct_fail_at(&P->t->fail, P->t->src, P->t->srclen, at->pos, fmt, arg);
}

_Noreturn static void unexpected(Parser *P, const Token *at, const char *wanted) {
    char buf[96], msg[200];
    snprintf(msg, sizeof msg, "expected %s, found %s", wanted, tok_desc(at, buf, sizeof buf));
    perr(P, at, "%s", msg);
}

static int is(const Parser *P, int type) {
    return peek(P, 0)->type == type;
}

static int tok_is_word(const Token *t, const char *w) {
    return t->type == T_IDENT && t->len == strlen(w) && memcmp(t->s, w, t->len) == 0;
}

static int is_word(const Parser *P, const char *w) {
    return tok_is_word(peek(P, 0), w);
}

static const Token *expect(Parser *P, int type, const char *wanted) {
    const Token *t = peek(P, 0);
    if (t->type != type) unexpected(P, t, wanted);
    P->cur++;
    return t;
}

static void expect_word(Parser *P, const char *w, const char *wanted) {
    if (!is_word(P, w)) unexpected(P, peek(P, 0), wanted);
    P->cur++;
}

static int is_statement(const Parser *P, const char *const *names) {
    if (peek(P, 0)->type != T_OPEN_STMT) return 0;
    const Token *t = peek(P, 1);
    for (; *names; names++)
        if (tok_is_word(t, *names)) return 1;
    return 0;
}

static void enter(Parser *P, const Token *at) {
    if (++P->depth > CHAT_TEMPLATE_MAX_DEPTH)
        perr(P, at, "template nests deeper than %s levels", CHAT_TEMPLATE_MAX_DEPTH_STR);
}

static Node *new_node(Parser *P, NodeKind kind, uint32_t pos) {
    Node *n = ct_arena_zalloc(&P->t->arena, sizeof *n);
    n->kind = (uint8_t)kind;
    n->pos = pos;
    return n;
}

static void nv_push(Parser *P, NodeVec *v, Node *n) {
    if (v->len == v->cap) {
        uint32_t cap = v->cap ? v->cap * 2 : 8;
        Node **items = ct_arena_alloc(P->scratch, cap * sizeof *items);
        if (v->len) memcpy(items, v->items, v->len * sizeof *items);
        v->items = items;
        v->cap = cap;
    }
    v->items[v->len++] = n;
}

static NodeList nv_finish(Parser *P, NodeVec *v) {
    NodeList l = {NULL, v->len};
    if (v->len) {
        l.items = ct_arena_alloc(&P->t->arena, v->len * sizeof *l.items);
        memcpy(l.items, v->items, v->len * sizeof *l.items);
    }
    return l;
}

static int32_t intern(Parser *P, const char *s, uint32_t len) {
    for (uint32_t i = 0; i < P->nsym; i++)
        if (P->lens[i] == len && memcmp(P->names[i], s, len) == 0) return (int32_t)i;
    if (P->nsym == P->capsym) {
        uint32_t cap = P->capsym * 2;
        const char **names = ct_arena_alloc(P->scratch, cap * sizeof *names);
        uint32_t *lens = ct_arena_alloc(P->scratch, cap * sizeof *lens);
        memcpy(names, P->names, P->nsym * sizeof *names);
        memcpy(lens, P->lens, P->nsym * sizeof *lens);
        P->names = names;
        P->lens = lens;
        P->capsym = cap;
    }
    P->names[P->nsym] = s;
    P->lens[P->nsym] = len;
    return (int32_t)P->nsym++;
}

static Node *ident_node(Parser *P, const Token *t) {
    Node *n = new_node(P, N_IDENT, t->pos);
    n->u.str.s = t->s;
    n->u.str.len = t->len;
    n->u.str.sym = intern(P, t->s, t->len);
    if (n->u.str.sym == SYM_LOOP) P->t->uses_loop = 1;
    return n;
}

static Node *parse_any(Parser *P);
static Node *parse_expression(Parser *P);
static Node *parse_primary(Parser *P);
static NodeList parse_args(Parser *P, int params);

/* Statements until one of `ends` ({% name ...); `open` names the block for errors. */
static NodeList parse_body(Parser *P, const char *const *ends, const Token *open,
                           const char *what) {
    NodeVec v = {0};
    while (!is_statement(P, ends)) {
        if (is(P, T_EOF)) perr(P, open, "%s is not closed", what);
        nv_push(P, &v, parse_any(P));
    }
    return nv_finish(P, &v);
}

static void parse_end(Parser *P, const char *word, const char *wanted) {
    expect(P, T_OPEN_STMT, wanted);
    expect_word(P, word, wanted);
    expect(P, T_CLOSE_STMT, "'%}'");
}

static Node *parse_expression_sequence(Parser *P, int primary) {
    const Token *start = peek(P, 0);
    Node *first = primary ? parse_primary(P) : parse_expression(P);
    if (!is(P, T_COMMA)) return first;
    NodeVec v = {0};
    nv_push(P, &v, first);
    while (is(P, T_COMMA)) {
        P->cur++;
        nv_push(P, &v, primary ? parse_primary(P) : parse_expression(P));
    }
    Node *n = new_node(P, N_TUPLE, start->pos);
    n->u.list = nv_finish(P, &v);
    return n;
}

static Node *parse_set(Parser *P, const Token *open) {
    Node *n = new_node(P, N_SET, open->pos);
    n->u.set.target = parse_expression_sequence(P, 0);
    if (is(P, T_EQUALS)) {
        P->cur++;
        n->u.set.value = parse_expression_sequence(P, 0);
    } else {
        expect(P, T_CLOSE_STMT, "'=' or '%}'");
        static const char *const ends[] = {"endset", NULL};
        n->u.set.body = parse_body(P, ends, open, "{% set %} block");
        expect(P, T_OPEN_STMT, "'{%'");
        expect_word(P, "endset", "'endset'");
    }
    expect(P, T_CLOSE_STMT, "'%}'");
    return n;
}

static Node *parse_if(Parser *P, const Token *open) {
    Node *n = new_node(P, N_IF, open->pos);
    n->u.if_.test = parse_expression(P);
    expect(P, T_CLOSE_STMT, "'%}'");
    static const char *const ends[] = {"elif", "else", "endif", NULL};
    n->u.if_.body = parse_body(P, ends, open, "{% if %}");
    if (tok_is_word(peek(P, 1), "elif")) {
        const Token *elif = peek(P, 1);
        P->cur += 2;
        enter(P, elif);
        NodeVec v = {0};
        nv_push(P, &v, parse_if(P, elif));
        P->depth--;
        n->u.if_.alt = nv_finish(P, &v);
    } else if (tok_is_word(peek(P, 1), "else")) {
        P->cur += 2;
        expect(P, T_CLOSE_STMT, "'%}'");
        static const char *const endif[] = {"endif", NULL};
        n->u.if_.alt = parse_body(P, endif, open, "{% if %}");
    }
    return n;
}

static Node *parse_for(Parser *P, const Token *open) {
    Node *n = new_node(P, N_FOR, open->pos);
    Node *target = parse_expression_sequence(P, 1);
    if (target->kind != N_IDENT && target->kind != N_TUPLE)
        perr(P, open, "%s", "expected a variable name or names after 'for'");
    n->u.for_.target = target;
    expect_word(P, "in", "'in'");
    n->u.for_.iterable = parse_expression(P);
    expect(P, T_CLOSE_STMT, "'%}'");
    static const char *const ends[] = {"endfor", "else", NULL};
    n->u.for_.body = parse_body(P, ends, open, "{% for %}");
    if (tok_is_word(peek(P, 1), "else")) {
        P->cur += 2;
        expect(P, T_CLOSE_STMT, "'%}'");
        static const char *const endfor[] = {"endfor", NULL};
        n->u.for_.alt = parse_body(P, endfor, open, "{% for %}");
    }
    parse_end(P, "endfor", "'{% endfor %}'");
    return n;
}

/* Marks which of varargs/kwargs a macro body reads (it then accepts extra arguments). */
static void find_uses(const Node *n, uint8_t *flags) {
    if (!n) return;
    const NodeList *lists[4] = {0};
    const Node *kids[4] = {0};
    switch (n->kind) {
    case N_IDENT:
        if (n->u.str.sym == SYM_VARARGS) *flags |= USES_VARARGS;
        if (n->u.str.sym == SYM_KWARGS) *flags |= USES_KWARGS;
        return;
    case N_ARRAY:
    case N_TUPLE:
        lists[0] = &n->u.list;
        break;
    case N_OBJECT:
        lists[0] = &n->u.obj.keys, lists[1] = &n->u.obj.values;
        break;
    case N_MEMBER:
        kids[0] = n->u.member.object;
        if (n->flag) kids[1] = n->u.member.property;
        break;
    case N_SLICE:
        kids[0] = n->u.slice.start, kids[1] = n->u.slice.stop, kids[2] = n->u.slice.step;
        break;
    case N_CALL:
        kids[0] = n->u.call.callee, lists[0] = &n->u.call.args;
        break;
    case N_KWARG:
        kids[0] = n->u.kwarg.value;
        break;
    case N_SPREAD:
    case N_KWSPREAD:
    case N_UNARY:
        kids[0] = n->u.arg;
        break;
    case N_BINARY:
        kids[0] = n->u.binary.left, kids[1] = n->u.binary.right;
        break;
    case N_FILTER:
        kids[0] = n->u.filter.operand;
        if (n->u.filter.filter->kind == N_CALL) lists[0] = &n->u.filter.filter->u.call.args;
        break;
    case N_TEST:
        kids[0] = n->u.test.operand, lists[0] = &n->u.test.args;
        break;
    case N_SELECT:
        kids[0] = n->u.select.lhs, kids[1] = n->u.select.test;
        break;
    case N_TERNARY:
        kids[0] = n->u.ternary.cond, kids[1] = n->u.ternary.yes, kids[2] = n->u.ternary.no;
        break;
    case N_SET:
        kids[0] = n->u.set.value, lists[0] = &n->u.set.body;
        break;
    case N_IF:
        kids[0] = n->u.if_.test, lists[0] = &n->u.if_.body, lists[1] = &n->u.if_.alt;
        break;
    case N_FOR:
        kids[0] = n->u.for_.iterable, lists[0] = &n->u.for_.body, lists[1] = &n->u.for_.alt;
        break;
    case N_MACRO:
    case N_CALLBLOCK:
        kids[0] = n->u.macro.call, lists[0] = &n->u.macro.params, lists[1] = &n->u.macro.body;
        break;
    case N_FILTERBLOCK:
        lists[0] = &n->u.filterblock.body;
        break;
    default:
        return;
    }
    for (int i = 0; i < 4; i++) find_uses(kids[i], flags);
    for (int i = 0; i < 4; i++)
        if (lists[i])
            for (uint32_t j = 0; j < lists[i]->len; j++) find_uses(lists[i]->items[j], flags);
}

static uint8_t macro_uses(const Node *m) {
    uint8_t flags = 0;
    for (uint32_t j = 0; j < m->u.macro.body.len; j++) find_uses(m->u.macro.body.items[j], &flags);
    for (uint32_t j = 0; j < m->u.macro.params.len; j++) { /* a parameter of that name */
        const Node *p = m->u.macro.params.items[j];
        int32_t sym = (p->kind == N_KWARG ? p->u.kwarg.key : p)->u.str.sym;
        if (sym == SYM_VARARGS) flags &= (uint8_t)~USES_VARARGS;
        if (sym == SYM_KWARGS) flags &= (uint8_t)~USES_KWARGS;
    }
    return flags;
}

static Node *parse_macro(Parser *P, const Token *open) {
    Node *n = new_node(P, N_MACRO, open->pos);
    const Token *name = peek(P, 0);
    Node *id = parse_primary(P);
    if (id->kind != N_IDENT) perr(P, name, "%s", "expected a macro name after 'macro'");
    n->u.macro.name = id;
    n->u.macro.params = parse_args(P, 1);
    expect(P, T_CLOSE_STMT, "'%}'");
    static const char *const ends[] = {"endmacro", NULL};
    n->u.macro.body = parse_body(P, ends, open, "{% macro %}");
    parse_end(P, "endmacro", "'{% endmacro %}'");
    n->flag = macro_uses(n);
    return n;
}

static Node *parse_callblock(Parser *P, const Token *open) {
    Node *n = new_node(P, N_CALLBLOCK, open->pos);
    if (is(P, T_LPAREN)) n->u.macro.params = parse_args(P, 1);
    const Token *name = peek(P, 0);
    Node *callee = parse_primary(P);
    if (callee->kind != N_IDENT) perr(P, name, "%s", "expected a macro name after 'call'");
    Node *call = new_node(P, N_CALL, name->pos);
    call->u.call.callee = callee;
    call->u.call.args = parse_args(P, 0);
    n->u.macro.call = call;
    expect(P, T_CLOSE_STMT, "'%}'");
    static const char *const ends[] = {"endcall", NULL};
    n->u.macro.body = parse_body(P, ends, open, "{% call %}");
    parse_end(P, "endcall", "'{% endcall %}'");
    n->flag = macro_uses(n);
    return n;
}

static Node *parse_call_rest(Parser *P, Node *callee);

static Node *parse_filterblock(Parser *P, const Token *open) {
    Node *n = new_node(P, N_FILTERBLOCK, open->pos);
    const Token *name = peek(P, 0);
    Node *f = parse_primary(P);
    if (f->kind != N_IDENT) perr(P, name, "%s", "expected a filter name after 'filter'");
    if (is(P, T_LPAREN)) {
        Node *call = new_node(P, N_CALL, name->pos);
        call->u.call.callee = f;
        call->u.call.args = parse_args(P, 0);
        f = call;
    }
    n->u.filterblock.filter = f;
    expect(P, T_CLOSE_STMT, "'%}'");
    static const char *const ends[] = {"endfilter", NULL};
    n->u.filterblock.body = parse_body(P, ends, open, "{% filter %}");
    parse_end(P, "endfilter", "'{% endfilter %}'");
    return n;
}

static Node *parse_statement(Parser *P) {
    const Token *open = expect(P, T_OPEN_STMT, "'{%'");
    const Token *name = peek(P, 0);
    if (name->type != T_IDENT) unexpected(P, name, "a statement name after '{%'");
    P->cur++;
    enter(P, open);
    Node *n;
    if (tok_is_word(name, "set")) {
        n = parse_set(P, open);
    } else if (tok_is_word(name, "if")) {
        n = parse_if(P, open);
        parse_end(P, "endif", "'{% endif %}'");
    } else if (tok_is_word(name, "for")) {
        n = parse_for(P, open);
    } else if (tok_is_word(name, "macro")) {
        n = parse_macro(P, open);
    } else if (tok_is_word(name, "call")) {
        n = parse_callblock(P, open);
    } else if (tok_is_word(name, "filter")) {
        n = parse_filterblock(P, open);
    } else if (tok_is_word(name, "break") || tok_is_word(name, "continue")) {
        n = new_node(P, tok_is_word(name, "break") ? N_BREAK : N_CONTINUE, open->pos);
        expect(P, T_CLOSE_STMT, "'%}'");
        P->t->has_break = 1;
    } else {
        char word[48];
        snprintf(word, sizeof word, "%.*s", (int)(name->len > 40 ? 40 : name->len), name->s);
        static const char *const orphans[] = {"elif",   "else",     "endif",   "endfor",
                                              "endset", "endmacro", "endcall", "endfilter",
                                              "endraw", NULL};
        for (const char *const *o = orphans; *o; o++)
            if (strcmp(*o, word) == 0) perr(P, open, "{%% %s %%} without a matching block", word);
        perr(P, open, "statement \"%s\" is not supported", word);
    }
    P->depth--;
    return n;
}

static Node *parse_output(Parser *P) {
    expect(P, T_OPEN_EXPR, "'{{'");
    Node *n = parse_expression(P);
    expect(P, T_CLOSE_EXPR, "'}}'");
    return n;
}

static Node *parse_any(Parser *P) {
    const Token *t = peek(P, 0);
    switch (t->type) {
    case T_COMMENT:
        P->cur++;
        return new_node(P, N_COMMENT, t->pos);
    case T_TEXT: {
        P->cur++;
        Node *n = new_node(P, N_STRING, t->pos);
        n->u.str.s = t->s;
        n->u.str.len = t->len;
        return n;
    }
    case T_OPEN_STMT:
        return parse_statement(P);
    case T_OPEN_EXPR:
        return parse_output(P);
    default:
        unexpected(P, t, "text, '{{' or '{%'");
    }
}

/* ---- expressions ---- */

static Node *binary(Parser *P, const Token *op_tok, Op op, Node *l, Node *r) {
    Node *n = new_node(P, N_BINARY, op_tok->pos);
    n->op = (uint8_t)op;
    n->u.binary.left = l;
    n->u.binary.right = r;
    return n;
}

static Node *parse_or(Parser *P);

static Node *parse_if_expr(Parser *P) {
    Node *a = parse_or(P);
    if (!is_word(P, "if")) return a;
    const Token *t = peek(P, 0);
    P->cur++;
    Node *test = parse_or(P);
    if (is_word(P, "else")) {
        P->cur++;
        Node *n = new_node(P, N_TERNARY, t->pos);
        n->u.ternary.cond = test;
        n->u.ternary.yes = a;
        enter(P, t);
        n->u.ternary.no = parse_if_expr(P);
        P->depth--;
        return n;
    }
    Node *n = new_node(P, N_SELECT, t->pos);
    n->u.select.lhs = a;
    n->u.select.test = test;
    return n;
}

static Node *parse_expression(Parser *P) {
    enter(P, peek(P, 0));
    Node *n = parse_if_expr(P);
    P->depth--;
    return n;
}

static Node *parse_not(Parser *P);
static Node *parse_and(Parser *P) {
    Node *l = parse_not(P);
    while (is_word(P, "and")) {
        const Token *t = &P->tok[P->cur++];
        l = binary(P, t, OP_AND, l, parse_not(P));
    }
    return l;
}

static Node *parse_or(Parser *P) {
    Node *l = parse_and(P);
    while (is_word(P, "or")) {
        const Token *t = &P->tok[P->cur++];
        l = binary(P, t, OP_OR, l, parse_and(P));
    }
    return l;
}

static Node *parse_comparison(Parser *P);
static Node *parse_not(Parser *P) {
    if (!is_word(P, "not")) return parse_comparison(P);
    const Token *t = &P->tok[P->cur++];
    enter(P, t);
    Node *n = new_node(P, N_UNARY, t->pos);
    n->op = OP_NOT;
    n->u.arg = parse_not(P);
    P->depth--;
    return n;
}

static Node *parse_additive(Parser *P);
static Node *parse_comparison(Parser *P) {
    Node *l = parse_additive(P);
    for (;;) {
        const Token *t = peek(P, 0);
        Op op;
        if (tok_is_word(t, "not") && tok_is_word(peek(P, 1), "in")) {
            op = OP_NOT_IN;
            P->cur += 2;
        } else if (tok_is_word(t, "in")) {
            op = OP_IN;
            P->cur++;
        } else if (t->type == T_CMP_OP) {
            op = t->s[0] == '='   ? OP_EQ
                 : t->s[0] == '!' ? OP_NE
                 : t->s[0] == '<' ? (t->len == 2 ? OP_LE : OP_LT)
                                  : (t->len == 2 ? OP_GE : OP_GT);
            P->cur++;
        } else {
            return l;
        }
        l = binary(P, t, op, l, parse_additive(P));
    }
}

static Node *parse_multiplicative(Parser *P);
static Node *parse_additive(Parser *P) {
    Node *l = parse_multiplicative(P);
    while (is(P, T_ADD_OP)) {
        const Token *t = &P->tok[P->cur++];
        Op op = t->s[0] == '+' ? OP_ADD : t->s[0] == '-' ? OP_SUB : OP_CONCAT;
        l = binary(P, t, op, l, parse_multiplicative(P));
    }
    return l;
}

static Node *parse_power(Parser *P);
static Node *parse_multiplicative(Parser *P) {
    Node *l = parse_power(P);
    while (is(P, T_MUL_OP)) {
        const Token *t = &P->tok[P->cur++];
        Op op = t->s[0] == '*'   ? OP_MUL
                : t->s[0] == '%' ? OP_MOD
                : t->len == 2    ? OP_FLOORDIV
                                 : OP_DIV;
        l = binary(P, t, op, l, parse_power(P));
    }
    return l;
}

static Node *parse_test(Parser *P);
static Node *parse_power(Parser *P) {
    Node *l = parse_test(P);
    while (is(P, T_POW_OP)) {
        const Token *t = &P->tok[P->cur++];
        l = binary(P, t, OP_POW, l, parse_test(P));
    }
    return l;
}

static Node *parse_filter(Parser *P);
static Node *parse_test(Parser *P) {
    Node *operand = parse_filter(P);
    while (is_word(P, "is")) {
        const Token *t = &P->tok[P->cur++];
        Node *n = new_node(P, N_TEST, t->pos);
        if (is_word(P, "not")) {
            P->cur++;
            n->flag = 1;
        }
        const Token *name = peek(P, 0);
        Node *id = parse_primary(P);
        if (id->kind != N_IDENT) perr(P, name, "%s", "expected a test name after 'is'");
        n->u.test.operand = operand;
        n->u.test.name = id;
        if (is(P, T_LPAREN)) { /* extension: is divisibleby(3) */
            n->u.test.args = parse_args(P, 0);
            n->u.test.has_args = 1;
        } else if (is(P, T_NUMBER) || is(P, T_STRING) || is(P, T_LBRACKET)) { /* is eq 2 */
            NodeVec v = {0};
            nv_push(P, &v, parse_primary(P));
            n->u.test.args = nv_finish(P, &v);
            n->u.test.has_args = 1;
        }
        operand = n;
    }
    return operand;
}

static Node *parse_unary(Parser *P);
static Node *parse_filter(Parser *P) {
    Node *operand = parse_unary(P);
    while (is(P, T_PIPE)) {
        const Token *t = &P->tok[P->cur++];
        const Token *name = peek(P, 0);
        Node *f = parse_primary(P);
        if (f->kind != N_IDENT) perr(P, name, "%s", "expected a filter name after '|'");
        if (is(P, T_LPAREN)) f = parse_call_rest(P, f);
        Node *n = new_node(P, N_FILTER, t->pos);
        n->u.filter.operand = operand;
        n->u.filter.filter = f;
        operand = n;
    }
    return operand;
}

static Node *parse_member(Parser *P, Node *object);
static Node *parse_unary(Parser *P) {
    const Token *t = peek(P, 0);
    if ((t->type == T_UNARY_OP || t->type == T_ADD_OP) && (t->s[0] == '-' || t->s[0] == '+')) {
        P->cur++;
        enter(P, t);
        Node *n = new_node(P, N_UNARY, t->pos);
        n->op = t->s[0] == '-' ? OP_NEG : OP_POS;
        n->u.arg = parse_unary(P);
        P->depth--;
        return n;
    }
    Node *member = parse_member(P, parse_primary(P));
    return is(P, T_LPAREN) ? parse_call_rest(P, member) : member;
}

/* Where an expression starts: errors about a call point at the called name. */
static uint32_t expr_start(const Node *n) {
    while (n->kind == N_MEMBER || n->kind == N_CALL)
        n = n->kind == N_MEMBER ? n->u.member.object : n->u.call.callee;
    return n->pos;
}

static Node *parse_call_rest(Parser *P, Node *callee) {
    for (;;) {
        Node *call = new_node(P, N_CALL, expr_start(callee));
        call->u.call.callee = callee;
        call->u.call.args = parse_args(P, 0);
        callee = parse_member(P, call);
        if (!is(P, T_LPAREN)) return callee;
    }
}

/* (a, b=1, *xs, **kw); `params` for macro parameter lists. */
static NodeList parse_args(Parser *P, int params) {
    const Token *open = expect(P, T_LPAREN, "'('");
    NodeVec v = {0};
    int saw_keyword = 0, saw_spread = 0;
    while (!is(P, T_RPAREN)) {
        const Token *t = peek(P, 0);
        if (t->type == T_EOF) perr(P, open, "%s", "'(' is not closed");
        int kw_spread = t->type == T_POW_OP;
        int spread = t->type == T_MUL_OP && t->s[0] == '*' && t->len == 1;
        if (params && (kw_spread || spread))
            perr(P, t, "%s", "argument unpacking is not allowed in a parameter list");
        if (kw_spread) {
            P->cur++;
            Node *n = new_node(P, N_KWSPREAD, t->pos);
            n->u.arg = parse_expression(P);
            nv_push(P, &v, n);
            if (is(P, T_COMMA)) P->cur++;
            if (!is(P, T_RPAREN)) unexpected(P, peek(P, 0), "')' after the ** argument");
            break;
        }
        Node *arg;
        if (spread) {
            if (saw_spread) perr(P, t, "%s", "only one * argument is allowed");
            saw_spread = 1;
            P->cur++;
            arg = new_node(P, N_SPREAD, t->pos);
            arg->u.arg = parse_expression(P);
        } else {
            arg = parse_expression(P);
            if (is(P, T_EQUALS)) {
                P->cur++;
                if (arg->kind != N_IDENT) perr(P, t, "%s", "expected a name before '='");
                Node *kw = new_node(P, N_KWARG, t->pos);
                kw->u.kwarg.key = arg;
                kw->u.kwarg.value = parse_expression(P);
                arg = kw;
            }
            if (params) {
                if (arg->kind != N_IDENT && arg->kind != N_KWARG)
                    perr(P, t, "%s", "expected a parameter name");
                const Node *id = arg->kind == N_KWARG ? arg->u.kwarg.key : arg;
                for (uint32_t i = 0; i < v.len; i++) {
                    const Node *o =
                        v.items[i]->kind == N_KWARG ? v.items[i]->u.kwarg.key : v.items[i];
                    if (o->u.str.sym == id->u.str.sym) perr(P, t, "%s", "duplicate parameter name");
                }
            }
            if (arg->kind == N_KWARG) {
                saw_keyword = 1;
            } else if (saw_keyword) {
                perr(P, t, "%s",
                     params ? "a parameter without a default follows one with a default"
                            : "a positional argument follows a keyword argument");
            } else if (saw_spread) {
                perr(P, t, "%s", "a positional argument follows the * argument");
            }
        }
        nv_push(P, &v, arg);
        if (is(P, T_COMMA)) P->cur++;
    }
    expect(P, T_RPAREN, "')'");
    return nv_finish(P, &v);
}

/* [i], [a:b:c] (any part optional) */
static Node *parse_subscript(Parser *P, const Token *open) {
    Node *parts[4] = {0};
    int n = 0, is_slice = 0;
    while (!is(P, T_RBRACKET)) {
        if (is(P, T_EOF)) perr(P, open, "%s", "'[' is not closed");
        if (n == 4) perr(P, open, "%s", "a slice has at most 3 parts");
        if (is(P, T_COLON)) {
            parts[n++] = NULL;
            P->cur++;
            is_slice = 1;
        } else {
            parts[n++] = parse_expression(P);
            if (is(P, T_COLON)) {
                P->cur++;
                is_slice = 1;
            }
        }
    }
    if (n == 0) perr(P, open, "%s", "expected an index or slice inside []");
    if (!is_slice) return parts[0];
    if (n > 3) perr(P, open, "%s", "a slice has at most 3 parts");
    Node *s = new_node(P, N_SLICE, open->pos);
    s->u.slice.start = parts[0];
    s->u.slice.stop = parts[1];
    s->u.slice.step = parts[2];
    return s;
}

static Node *parse_member(Parser *P, Node *object) {
    while (is(P, T_DOT) || is(P, T_LBRACKET)) {
        const Token *t = &P->tok[P->cur++];
        Node *m = new_node(P, N_MEMBER, t->pos);
        m->u.member.object = object;
        if (t->type == T_LBRACKET) {
            enter(P, t);
            m->u.member.property = parse_subscript(P, t);
            P->depth--;
            expect(P, T_RBRACKET, "']'");
            m->flag = 1;
        } else {
            const Token *name = peek(P, 0);
            Node *prop = parse_primary(P);
            if (prop->kind != N_IDENT && prop->kind != N_INT)
                perr(P, name, "%s", "expected a name or number after '.'");
            m->u.member.property = prop;
        }
        object = m;
    }
    return object;
}

static Node *parse_primary(Parser *P) {
    const Token *t = peek(P, 0);
    if (t->type == T_EOF) unexpected(P, t, "an expression");
    P->cur++;
    switch (t->type) {
    case T_NUMBER: {
        char buf[400];
        size_t len = t->len < sizeof buf - 1 ? t->len : sizeof buf - 1;
        memcpy(buf, t->s, len);
        buf[len] = '\0';
        int is_float = memchr(t->s, '.', t->len) != NULL;
        Node *n = new_node(P, is_float ? N_FLOAT : N_INT, t->pos);
        n->u.num = strtod(buf, NULL);
        if (t->len > len) n->u.num = buf[0] == '-' ? -1.0 / 0.0 : 1.0 / 0.0; /* 400+ digits */
        return n;
    }
    case T_STRING: {
        Node *n = new_node(P, N_STRING, t->pos);
        if (!is(P, T_STRING)) {
            n->u.str.s = t->s;
            n->u.str.len = t->len;
            return n;
        }
        StrBuf b; /* adjacent literals concatenate: 'a' "b" */
        ct_sb_init(&b, &P->t->arena);
        ct_sb_add(&b, t->s, t->len);
        while (is(P, T_STRING)) {
            const Token *u = &P->tok[P->cur++];
            ct_sb_add(&b, u->s, u->len);
        }
        n->u.str.s = b.p;
        n->u.str.len = (uint32_t)b.len;
        return n;
    }
    case T_IDENT:
        return ident_node(P, t);
    case T_LPAREN: {
        enter(P, t);
        Node *n = parse_expression_sequence(P, 0);
        P->depth--;
        expect(P, T_RPAREN, "')'");
        return n;
    }
    case T_LBRACKET: {
        enter(P, t);
        Node *n = new_node(P, N_ARRAY, t->pos);
        NodeVec v = {0};
        while (!is(P, T_RBRACKET)) {
            if (is(P, T_EOF)) perr(P, t, "%s", "'[' is not closed");
            nv_push(P, &v, parse_expression(P));
            if (is(P, T_COMMA)) P->cur++;
        }
        P->cur++;
        P->depth--;
        n->u.list = nv_finish(P, &v);
        return n;
    }
    case T_LBRACE: {
        enter(P, t);
        Node *n = new_node(P, N_OBJECT, t->pos);
        NodeVec k = {0}, v = {0};
        while (!is(P, T_RBRACE)) {
            if (is(P, T_EOF)) perr(P, t, "%s", "'{' is not closed");
            nv_push(P, &k, parse_expression(P));
            expect(P, T_COLON, "':' in a dict literal");
            nv_push(P, &v, parse_expression(P));
            if (is(P, T_COMMA)) P->cur++;
        }
        P->cur++;
        P->depth--;
        n->u.obj.keys = nv_finish(P, &k);
        n->u.obj.values = nv_finish(P, &v);
        return n;
    }
    default:
        P->cur--;
        unexpected(P, t, "an expression");
    }
}

void ct_parse_template(ChatTemplate *t, Arena *scratch, const TokenList *tokens) {
    Token *tok = ct_arena_alloc(scratch, (tokens->len + 1) * sizeof *tok);
    if (tokens->len) memcpy(tok, tokens->items, tokens->len * sizeof *tok);
    tok[tokens->len] = (Token){.type = T_EOF, .pos = (uint32_t)t->srclen, .s = "", .len = 0};
    Parser P = {.t = t, .scratch = scratch, .tok = tok, .n = tokens->len};
    P.capsym = 64;
    P.names = ct_arena_alloc(scratch, P.capsym * sizeof *P.names);
    P.lens = ct_arena_alloc(scratch, P.capsym * sizeof *P.lens);
    for (int i = 0; i < SYM_FIXED_COUNT; i++)
        intern(&P, FIXED_SYMS[i], (uint32_t)strlen(FIXED_SYMS[i]));
    NodeVec body = {0};
    while (!is(&P, T_EOF)) nv_push(&P, &body, parse_any(&P));
    t->body = nv_finish(&P, &body);
    t->n_sym = P.nsym;
    t->sym_name = ct_arena_alloc(&t->arena, P.nsym * sizeof *t->sym_name);
    t->sym_len = ct_arena_alloc(&t->arena, P.nsym * sizeof *t->sym_len);
    for (uint32_t i = 0; i < P.nsym; i++) {
        t->sym_name[i] = ct_arena_strdup(&t->arena, P.names[i], P.lens[i]);
        t->sym_len[i] = P.lens[i];
    }
}

int32_t ct_template_symbol(const ChatTemplate *t, const char *name, size_t len) {
    for (uint32_t i = 0; i < t->n_sym; i++)
        if (t->sym_len[i] == len && memcmp(t->sym_name[i], name, len) == 0) return (int32_t)i;
    return -1;
}
