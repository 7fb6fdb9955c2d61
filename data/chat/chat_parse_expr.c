/* data/chat/chat_parse_expr.c — the expression grammar (see chat_parser.c for precedence
 * and the reference's leniencies). */
#include "data/chat/parser.h"

#include <stdio.h>
#include <stdlib.h>

static Node *parse_call_rest(Parser *P, Node *callee);

/* ---- expressions ---- */

static Node *binary(Parser *P, const Token *op_tok, Op op, Node *l, Node *r) {
    Node *n = ct_new_node(P, N_BINARY, op_tok->pos);
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
        Node *n = ct_new_node(P, N_TERNARY, t->pos);
        n->u.ternary.cond = test;
        n->u.ternary.yes = a;
        ct_enter(P, t);
        n->u.ternary.no = parse_if_expr(P);
        P->depth--;
        return n;
    }
    Node *n = ct_new_node(P, N_SELECT, t->pos);
    n->u.select.lhs = a;
    n->u.select.test = test;
    return n;
}

Node *ct_parse_expression(Parser *P) {
    ct_enter(P, peek(P, 0));
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
    ct_enter(P, t);
    Node *n = ct_new_node(P, N_UNARY, t->pos);
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
        Node *n = ct_new_node(P, N_TEST, t->pos);
        if (is_word(P, "not")) {
            P->cur++;
            n->flag = 1;
        }
        const Token *name = peek(P, 0);
        Node *id = ct_parse_primary(P);
        if (id->kind != N_IDENT) ct_perr(P, name, "%s", "expected a test name after 'is'");
        n->u.test.operand = operand;
        n->u.test.name = id;
        if (is(P, T_LPAREN)) { /* extension: is divisibleby(3) */
            n->u.test.args = ct_parse_args(P, 0);
            n->u.test.has_args = 1;
        } else if (is(P, T_NUMBER) || is(P, T_STRING) || is(P, T_LBRACKET)) { /* is eq 2 */
            NodeVec v = {0};
            ct_nv_push(P, &v, ct_parse_primary(P));
            n->u.test.args = ct_nv_finish(P, &v);
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
        Node *f = ct_parse_primary(P);
        if (f->kind != N_IDENT) ct_perr(P, name, "%s", "expected a filter name after '|'");
        if (is(P, T_LPAREN)) f = parse_call_rest(P, f);
        Node *n = ct_new_node(P, N_FILTER, t->pos);
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
        ct_enter(P, t);
        Node *n = ct_new_node(P, N_UNARY, t->pos);
        n->op = t->s[0] == '-' ? OP_NEG : OP_POS;
        n->u.arg = parse_unary(P);
        P->depth--;
        return n;
    }
    Node *member = parse_member(P, ct_parse_primary(P));
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
        Node *call = ct_new_node(P, N_CALL, expr_start(callee));
        call->u.call.callee = callee;
        call->u.call.args = ct_parse_args(P, 0);
        callee = parse_member(P, call);
        if (!is(P, T_LPAREN)) return callee;
    }
}

/* (a, b=1, *xs, **kw); `params` for macro parameter lists. */
NodeList ct_parse_args(Parser *P, int params) {
    const Token *open = ct_expect(P, T_LPAREN, "'('");
    NodeVec v = {0};
    int saw_keyword = 0, saw_spread = 0;
    while (!is(P, T_RPAREN)) {
        const Token *t = peek(P, 0);
        if (t->type == T_EOF) ct_perr(P, open, "%s", "'(' is not closed");
        int kw_spread = t->type == T_POW_OP;
        int spread = t->type == T_MUL_OP && t->s[0] == '*' && t->len == 1;
        if (params && (kw_spread || spread))
            ct_perr(P, t, "%s", "argument unpacking is not allowed in a parameter list");
        if (kw_spread) {
            P->cur++;
            Node *n = ct_new_node(P, N_KWSPREAD, t->pos);
            n->u.arg = ct_parse_expression(P);
            ct_nv_push(P, &v, n);
            if (is(P, T_COMMA)) P->cur++;
            if (!is(P, T_RPAREN)) ct_unexpected(P, peek(P, 0), "')' after the ** argument");
            break;
        }
        Node *arg;
        if (spread) {
            if (saw_spread) ct_perr(P, t, "%s", "only one * argument is allowed");
            saw_spread = 1;
            P->cur++;
            arg = ct_new_node(P, N_SPREAD, t->pos);
            arg->u.arg = ct_parse_expression(P);
        } else {
            arg = ct_parse_expression(P);
            if (is(P, T_EQUALS)) {
                P->cur++;
                if (arg->kind != N_IDENT) ct_perr(P, t, "%s", "expected a name before '='");
                Node *kw = ct_new_node(P, N_KWARG, t->pos);
                kw->u.kwarg.key = arg;
                kw->u.kwarg.value = ct_parse_expression(P);
                arg = kw;
            }
            if (params) {
                if (arg->kind != N_IDENT && arg->kind != N_KWARG)
                    ct_perr(P, t, "%s", "expected a parameter name");
                const Node *id = arg->kind == N_KWARG ? arg->u.kwarg.key : arg;
                for (uint32_t i = 0; i < v.len; i++) {
                    const Node *o =
                        v.items[i]->kind == N_KWARG ? v.items[i]->u.kwarg.key : v.items[i];
                    if (o->u.str.sym == id->u.str.sym)
                        ct_perr(P, t, "%s", "duplicate parameter name");
                }
            }
            if (arg->kind == N_KWARG) {
                saw_keyword = 1;
            } else if (saw_keyword) {
                ct_perr(P, t, "%s",
                        params ? "a parameter without a default follows one with a default"
                               : "a positional argument follows a keyword argument");
            } else if (saw_spread) {
                ct_perr(P, t, "%s", "a positional argument follows the * argument");
            }
        }
        ct_nv_push(P, &v, arg);
        if (is(P, T_COMMA)) P->cur++;
    }
    ct_expect(P, T_RPAREN, "')'");
    return ct_nv_finish(P, &v);
}

/* [i], [a:b:c] (any part optional) */
static Node *parse_subscript(Parser *P, const Token *open) {
    Node *parts[4] = {0};
    int n = 0, is_slice = 0;
    while (!is(P, T_RBRACKET)) {
        if (is(P, T_EOF)) ct_perr(P, open, "%s", "'[' is not closed");
        if (n == 4) ct_perr(P, open, "%s", "a slice has at most 3 parts");
        if (is(P, T_COLON)) {
            parts[n++] = NULL;
            P->cur++;
            is_slice = 1;
        } else {
            parts[n++] = ct_parse_expression(P);
            if (is(P, T_COLON)) {
                P->cur++;
                is_slice = 1;
            }
        }
    }
    if (n == 0) ct_perr(P, open, "%s", "expected an index or slice inside []");
    if (!is_slice) return parts[0];
    if (n > 3) ct_perr(P, open, "%s", "a slice has at most 3 parts");
    Node *s = ct_new_node(P, N_SLICE, open->pos);
    s->u.slice.start = parts[0];
    s->u.slice.stop = parts[1];
    s->u.slice.step = parts[2];
    return s;
}

static Node *parse_member(Parser *P, Node *object) {
    while (is(P, T_DOT) || is(P, T_LBRACKET)) {
        const Token *t = &P->tok[P->cur++];
        Node *m = ct_new_node(P, N_MEMBER, t->pos);
        m->u.member.object = object;
        if (t->type == T_LBRACKET) {
            ct_enter(P, t);
            m->u.member.property = parse_subscript(P, t);
            P->depth--;
            ct_expect(P, T_RBRACKET, "']'");
            m->flag = 1;
        } else {
            const Token *name = peek(P, 0);
            Node *prop = ct_parse_primary(P);
            if (prop->kind != N_IDENT && prop->kind != N_INT)
                ct_perr(P, name, "%s", "expected a name or number after '.'");
            m->u.member.property = prop;
        }
        object = m;
    }
    return object;
}

Node *ct_parse_primary(Parser *P) {
    const Token *t = peek(P, 0);
    if (t->type == T_EOF) ct_unexpected(P, t, "an expression");
    P->cur++;
    switch (t->type) {
    case T_NUMBER: {
        char buf[400];
        size_t len = t->len < sizeof buf - 1 ? t->len : sizeof buf - 1;
        memcpy(buf, t->s, len);
        buf[len] = '\0';
        int is_float = memchr(t->s, '.', t->len) != NULL;
        Node *n = ct_new_node(P, is_float ? N_FLOAT : N_INT, t->pos);
        n->u.num = strtod(buf, NULL);
        if (t->len > len) n->u.num = buf[0] == '-' ? -1.0 / 0.0 : 1.0 / 0.0; /* 400+ digits */
        return n;
    }
    case T_STRING: {
        Node *n = ct_new_node(P, N_STRING, t->pos);
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
        return ct_ident_node(P, t);
    case T_LPAREN: {
        ct_enter(P, t);
        Node *n = ct_parse_expression_sequence(P, 0);
        P->depth--;
        ct_expect(P, T_RPAREN, "')'");
        return n;
    }
    case T_LBRACKET: {
        ct_enter(P, t);
        Node *n = ct_new_node(P, N_ARRAY, t->pos);
        NodeVec v = {0};
        while (!is(P, T_RBRACKET)) {
            if (is(P, T_EOF)) ct_perr(P, t, "%s", "'[' is not closed");
            ct_nv_push(P, &v, ct_parse_expression(P));
            if (is(P, T_COMMA)) P->cur++;
        }
        P->cur++;
        P->depth--;
        n->u.list = ct_nv_finish(P, &v);
        return n;
    }
    case T_LBRACE: {
        ct_enter(P, t);
        Node *n = ct_new_node(P, N_OBJECT, t->pos);
        NodeVec k = {0}, v = {0};
        while (!is(P, T_RBRACE)) {
            if (is(P, T_EOF)) ct_perr(P, t, "%s", "'{' is not closed");
            ct_nv_push(P, &k, ct_parse_expression(P));
            ct_expect(P, T_COLON, "':' in a dict literal");
            ct_nv_push(P, &v, ct_parse_expression(P));
            if (is(P, T_COMMA)) P->cur++;
        }
        P->cur++;
        P->depth--;
        n->u.obj.keys = ct_nv_finish(P, &k);
        n->u.obj.values = ct_nv_finish(P, &v);
        return n;
    }
    default:
        P->cur--;
        ct_unexpected(P, t, "an expression");
    }
}
