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
#include "data/chat/parser.h"

#include <stdio.h>
#include <stdlib.h>

static const char *const FIXED_SYMS[SYM_FIXED_COUNT] = {
    "loop",         "caller", "varargs", "kwargs", "namespace", "raise_exception", "range",
    "strftime_now", "true",   "false",   "none",   "True",      "False",           "None",
};

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

_Noreturn void ct_perr(Parser *P, const Token *at, const char *fmt, const char *arg) {
    ct_fail_at(&P->t->fail, P->t->src, P->t->srclen, at->pos, fmt, arg);
}

_Noreturn void ct_unexpected(Parser *P, const Token *at, const char *wanted) {
    char buf[96], msg[200];
    snprintf(msg, sizeof msg, "expected %s, found %s", wanted, tok_desc(at, buf, sizeof buf));
    ct_perr(P, at, "%s", msg);
}

const Token *ct_expect(Parser *P, int type, const char *wanted) {
    const Token *t = peek(P, 0);
    if (t->type != type) ct_unexpected(P, t, wanted);
    P->cur++;
    return t;
}

void ct_expect_word(Parser *P, const char *w, const char *wanted) {
    if (!is_word(P, w)) ct_unexpected(P, peek(P, 0), wanted);
    P->cur++;
}

void ct_enter(Parser *P, const Token *at) {
    if (++P->depth > CHAT_TEMPLATE_MAX_DEPTH)
        ct_perr(P, at, "template nests deeper than %s levels", CHAT_TEMPLATE_MAX_DEPTH_STR);
}

Node *ct_new_node(Parser *P, NodeKind kind, uint32_t pos) {
    Node *n = ct_arena_zalloc(&P->t->arena, sizeof *n);
    n->kind = (uint8_t)kind;
    n->pos = pos;
    return n;
}

void ct_nv_push(Parser *P, NodeVec *v, Node *n) {
    if (v->len == v->cap) {
        uint32_t cap = v->cap ? v->cap * 2 : 8;
        Node **items = ct_arena_alloc(P->scratch, cap * sizeof *items);
        if (v->len) memcpy(items, v->items, v->len * sizeof *items);
        v->items = items;
        v->cap = cap;
    }
    v->items[v->len++] = n;
}

NodeList ct_nv_finish(Parser *P, NodeVec *v) {
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

Node *ct_ident_node(Parser *P, const Token *t) {
    Node *n = ct_new_node(P, N_IDENT, t->pos);
    n->u.str.s = t->s;
    n->u.str.len = t->len;
    n->u.str.sym = intern(P, t->s, t->len);
    if (n->u.str.sym == SYM_LOOP) P->t->uses_loop = 1;
    return n;
}

static Node *parse_any(Parser *P);

/* Statements until one of `ends` ({% name ...); `open` names the block for errors. */
static NodeList parse_body(Parser *P, const char *const *ends, const Token *open,
                           const char *what) {
    NodeVec v = {0};
    while (!is_statement(P, ends)) {
        if (is(P, T_EOF)) ct_perr(P, open, "%s is not closed", what);
        ct_nv_push(P, &v, parse_any(P));
    }
    return ct_nv_finish(P, &v);
}

static void parse_end(Parser *P, const char *word, const char *wanted) {
    ct_expect(P, T_OPEN_STMT, wanted);
    ct_expect_word(P, word, wanted);
    ct_expect(P, T_CLOSE_STMT, "'%}'");
}

Node *ct_parse_expression_sequence(Parser *P, int primary) {
    const Token *start = peek(P, 0);
    Node *first = primary ? ct_parse_primary(P) : ct_parse_expression(P);
    if (!is(P, T_COMMA)) return first;
    NodeVec v = {0};
    ct_nv_push(P, &v, first);
    while (is(P, T_COMMA)) {
        P->cur++;
        ct_nv_push(P, &v, primary ? ct_parse_primary(P) : ct_parse_expression(P));
    }
    Node *n = ct_new_node(P, N_TUPLE, start->pos);
    n->u.list = ct_nv_finish(P, &v);
    return n;
}

static Node *parse_set(Parser *P, const Token *open) {
    Node *n = ct_new_node(P, N_SET, open->pos);
    n->u.set.target = ct_parse_expression_sequence(P, 0);
    if (is(P, T_EQUALS)) {
        P->cur++;
        n->u.set.value = ct_parse_expression_sequence(P, 0);
    } else {
        ct_expect(P, T_CLOSE_STMT, "'=' or '%}'");
        static const char *const ends[] = {"endset", NULL};
        n->u.set.body = parse_body(P, ends, open, "{% set %} block");
        ct_expect(P, T_OPEN_STMT, "'{%'");
        ct_expect_word(P, "endset", "'endset'");
    }
    ct_expect(P, T_CLOSE_STMT, "'%}'");
    return n;
}

static Node *parse_if(Parser *P, const Token *open) {
    Node *n = ct_new_node(P, N_IF, open->pos);
    n->u.if_.test = ct_parse_expression(P);
    ct_expect(P, T_CLOSE_STMT, "'%}'");
    static const char *const ends[] = {"elif", "else", "endif", NULL};
    n->u.if_.body = parse_body(P, ends, open, "{% if %}");
    if (tok_is_word(peek(P, 1), "elif")) {
        const Token *elif = peek(P, 1);
        P->cur += 2;
        ct_enter(P, elif);
        NodeVec v = {0};
        ct_nv_push(P, &v, parse_if(P, elif));
        P->depth--;
        n->u.if_.alt = ct_nv_finish(P, &v);
    } else if (tok_is_word(peek(P, 1), "else")) {
        P->cur += 2;
        ct_expect(P, T_CLOSE_STMT, "'%}'");
        static const char *const endif[] = {"endif", NULL};
        n->u.if_.alt = parse_body(P, endif, open, "{% if %}");
    }
    return n;
}

static Node *parse_for(Parser *P, const Token *open) {
    Node *n = ct_new_node(P, N_FOR, open->pos);
    Node *target = ct_parse_expression_sequence(P, 1);
    if (target->kind != N_IDENT && target->kind != N_TUPLE)
        ct_perr(P, open, "%s", "expected a variable name or names after 'for'");
    n->u.for_.target = target;
    ct_expect_word(P, "in", "'in'");
    n->u.for_.iterable = ct_parse_expression(P);
    ct_expect(P, T_CLOSE_STMT, "'%}'");
    static const char *const ends[] = {"endfor", "else", NULL};
    n->u.for_.body = parse_body(P, ends, open, "{% for %}");
    if (tok_is_word(peek(P, 1), "else")) {
        P->cur += 2;
        ct_expect(P, T_CLOSE_STMT, "'%}'");
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
    Node *n = ct_new_node(P, N_MACRO, open->pos);
    const Token *name = peek(P, 0);
    Node *id = ct_parse_primary(P);
    if (id->kind != N_IDENT) ct_perr(P, name, "%s", "expected a macro name after 'macro'");
    n->u.macro.name = id;
    n->u.macro.params = ct_parse_args(P, 1);
    ct_expect(P, T_CLOSE_STMT, "'%}'");
    static const char *const ends[] = {"endmacro", NULL};
    n->u.macro.body = parse_body(P, ends, open, "{% macro %}");
    parse_end(P, "endmacro", "'{% endmacro %}'");
    n->flag = macro_uses(n);
    return n;
}

static Node *parse_callblock(Parser *P, const Token *open) {
    Node *n = ct_new_node(P, N_CALLBLOCK, open->pos);
    if (is(P, T_LPAREN)) n->u.macro.params = ct_parse_args(P, 1);
    const Token *name = peek(P, 0);
    Node *callee = ct_parse_primary(P);
    if (callee->kind != N_IDENT) ct_perr(P, name, "%s", "expected a macro name after 'call'");
    Node *call = ct_new_node(P, N_CALL, name->pos);
    call->u.call.callee = callee;
    call->u.call.args = ct_parse_args(P, 0);
    n->u.macro.call = call;
    ct_expect(P, T_CLOSE_STMT, "'%}'");
    static const char *const ends[] = {"endcall", NULL};
    n->u.macro.body = parse_body(P, ends, open, "{% call %}");
    parse_end(P, "endcall", "'{% endcall %}'");
    n->flag = macro_uses(n);
    return n;
}

static Node *parse_filterblock(Parser *P, const Token *open) {
    Node *n = ct_new_node(P, N_FILTERBLOCK, open->pos);
    const Token *name = peek(P, 0);
    Node *f = ct_parse_primary(P);
    if (f->kind != N_IDENT) ct_perr(P, name, "%s", "expected a filter name after 'filter'");
    if (is(P, T_LPAREN)) {
        Node *call = ct_new_node(P, N_CALL, name->pos);
        call->u.call.callee = f;
        call->u.call.args = ct_parse_args(P, 0);
        f = call;
    }
    n->u.filterblock.filter = f;
    ct_expect(P, T_CLOSE_STMT, "'%}'");
    static const char *const ends[] = {"endfilter", NULL};
    n->u.filterblock.body = parse_body(P, ends, open, "{% filter %}");
    parse_end(P, "endfilter", "'{% endfilter %}'");
    return n;
}

static Node *parse_statement(Parser *P) {
    const Token *open = ct_expect(P, T_OPEN_STMT, "'{%'");
    const Token *name = peek(P, 0);
    if (name->type != T_IDENT) ct_unexpected(P, name, "a statement name after '{%'");
    P->cur++;
    ct_enter(P, open);
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
        n = ct_new_node(P, tok_is_word(name, "break") ? N_BREAK : N_CONTINUE, open->pos);
        ct_expect(P, T_CLOSE_STMT, "'%}'");
        P->t->has_break = 1;
    } else {
        char word[48];
        snprintf(word, sizeof word, "%.*s", (int)(name->len > 40 ? 40 : name->len), name->s);
        static const char *const orphans[] = {"elif",   "else",     "endif",   "endfor",
                                              "endset", "endmacro", "endcall", "endfilter",
                                              "endraw", NULL};
        for (const char *const *o = orphans; *o; o++)
            if (strcmp(*o, word) == 0)
                ct_perr(P, open, "{%% %s %%} without a matching block", word);
        ct_perr(P, open, "statement \"%s\" is not supported", word);
    }
    P->depth--;
    return n;
}

static Node *parse_output(Parser *P) {
    ct_expect(P, T_OPEN_EXPR, "'{{'");
    Node *n = ct_parse_expression(P);
    ct_expect(P, T_CLOSE_EXPR, "'}}'");
    return n;
}

static Node *parse_any(Parser *P) {
    const Token *t = peek(P, 0);
    switch (t->type) {
    case T_COMMENT:
        P->cur++;
        return ct_new_node(P, N_COMMENT, t->pos);
    case T_TEXT: {
        P->cur++;
        Node *n = ct_new_node(P, N_STRING, t->pos);
        n->u.str.s = t->s;
        n->u.str.len = t->len;
        return n;
    }
    case T_OPEN_STMT:
        return parse_statement(P);
    case T_OPEN_EXPR:
        return parse_output(P);
    default:
        ct_unexpected(P, t, "text, '{{' or '{%'");
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
    while (!is(&P, T_EOF)) ct_nv_push(&P, &body, parse_any(&P));
    t->body = ct_nv_finish(&P, &body);
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
