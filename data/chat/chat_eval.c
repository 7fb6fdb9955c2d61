/* data/chat/chat_eval.c — expressions: literals, names, member access and slices, calls,
 * and the operators with the reference's JavaScript semantics (`==` is JavaScript's loose
 * equality on the values, `+` concatenates as soon as one side is a string, `a and b` gives
 * a or b, integer and float arithmetic are doubles that remember which they are). */
#include "data/chat/render.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_EVAL_DEPTH CT_MAX_EVAL_DEPTH

static const char *const OP_NAMES[] = {
    "+", "-",  "~",  "*",  "/",      "//",  "%",  "**",  "==", "!=", "<",
    ">", "<=", ">=", "in", "not in", "and", "or", "not", "-",  "+"};

/* "loop.cycle", "messages[...]": the expression's text for error messages. */
static void describe(const Node *n, StrBuf *b, int depth) {
    if (depth > 4) {
        ct_sb_add(b, "...", 3);
    } else if (n->kind == N_IDENT) {
        ct_sb_add(b, n->u.str.s, n->u.str.len);
    } else if (n->kind == N_MEMBER) {
        describe(n->u.member.object, b, depth + 1);
        if (n->flag) {
            ct_sb_add(b, "[...]", 5);
        } else if (n->u.member.property->kind == N_IDENT) {
            ct_sb_addc(b, '.');
            ct_sb_add(b, n->u.member.property->u.str.s, n->u.member.property->u.str.len);
        } else {
            ct_sb_addf(b, ".%g", n->u.member.property->u.num);
        }
    } else if (n->kind == N_CALL) {
        describe(n->u.call.callee, b, depth + 1);
        ct_sb_add(b, "(...)", 5);
    } else {
        ct_sb_add(b, "(expression)", 12);
    }
}

static const char *describe_str(Render *R, const Node *n) {
    StrBuf b = ct_v_builder(R);
    describe(n, &b, 0);
    ct_sb_addc(&b, '\0');
    return b.p;
}

Args ct_eval_args(Render *R, const NodeList *args, Env *env) {
    Args a = {NULL, 0, NULL};
    a.kw = ct_v_object(R, 0).u.obj;
    a.kw->is_kwargs = 1;
    uint32_t cap = args->len;
    for (uint32_t i = 0; i < args->len; i++) {
        const Node *n = args->items[i];
        if (n->kind == N_SPREAD) {
            Value v = ct_eval_expr(R, n->u.arg, env);
            if (v.kind != V_ARRAY) ct_rt_fail(R, n, "cannot unpack %s with *", ct_v_kind_name(v));
            Value *pos = ct_arena_alloc(&R->arena, (cap + v.u.arr->len) * sizeof *pos);
            if (a.npos) memcpy(pos, a.pos, a.npos * sizeof *pos);
            memcpy(pos + a.npos, v.u.arr->items, v.u.arr->len * sizeof *pos);
            cap += v.u.arr->len;
            a.pos = pos;
            a.npos += v.u.arr->len;
        } else if (n->kind != N_KWARG && n->kind != N_KWSPREAD) {
            if (!a.pos) a.pos = ct_arena_alloc(&R->arena, cap * sizeof *a.pos);
            Value v = ct_eval_expr(R, n, env);
            a.pos[a.npos++] = v;
        }
    }
    for (uint32_t i = 0; i < args->len; i++) {
        const Node *n = args->items[i];
        if (n->kind == N_KWARG) {
            const Node *k = n->u.kwarg.key;
            if (ct_obj_find(a.kw, k->u.str.s, k->u.str.len))
                ct_rt_fail(R, n, "keyword argument \"%.*s\" is given twice", (int)k->u.str.len,
                           k->u.str.s);
            ct_obj_set(R, a.kw, k->u.str.s, k->u.str.len, ct_eval_expr(R, n->u.kwarg.value, env));
        } else if (n->kind == N_KWSPREAD) {
            Value v = ct_eval_expr(R, n->u.arg, env);
            if (v.kind != V_OBJECT) ct_rt_fail(R, n, "** needs a dict, not %s", ct_v_kind_name(v));
            for (uint32_t j = 0; j < v.u.obj->len; j++) {
                const OEntry *e = &v.u.obj->e[j];
                if (ct_obj_find(a.kw, e->key, e->klen))
                    ct_rt_fail(R, n, "keyword argument \"%.*s\" is given twice", (int)e->klen,
                               e->key);
                ct_obj_set(R, a.kw, e->key, e->klen, e->v);
            }
        }
    }
    return a;
}

/* The argument list a function receives: positional values, then kwargs if any. */
Value *ct_call_list(Render *R, const Args *a, int always_kw, uint32_t *n) {
    int with_kw = always_kw || a->kw->len > 0;
    *n = a->npos + (uint32_t)with_kw;
    Value *v = ct_arena_alloc(&R->arena, (*n + 1) * sizeof *v);
    if (a->npos) memcpy(v, a->pos, a->npos * sizeof *v);
    if (with_kw) v[a->npos] = (Value){.kind = V_OBJECT, .u.obj = a->kw};
    return v;
}

_Noreturn void ct_not_callable(Render *R, const Node *at, const Node *callee, Value fn) {
    if (callee->kind == N_IDENT && fn.kind == V_UNDEF)
        ct_rt_fail(R, at, "function \"%.*s\" is not supported", (int)callee->u.str.len,
                   callee->u.str.s);
    ct_rt_fail(R, at, "cannot call \"%s\": it is %s, not a function", describe_str(R, callee),
               ct_v_kind_name(fn));
}

static Value eval_call(Render *R, const Node *n, Env *env) {
    Args a = ct_eval_args(R, &n->u.call.args, env);
    Value fn = ct_eval_expr(R, n->u.call.callee, env);
    if (fn.kind != V_FUNC) ct_not_callable(R, n, n->u.call.callee, fn);
    uint32_t nargs;
    Value *args = ct_call_list(R, &a, 0, &nargs);
    return ct_call_function(R, n, fn, args, nargs, env);
}

/* Python-style slicing as the reference's slice(): indices clamp, step 0 gives nothing. */
static void slice_bounds(double len, Value start, Value stop, Value step, double *s, double *e,
                         double *st) {
    double dir = step.kind == V_UNDEF ? 1 : (step.u.num > 0) - (step.u.num < 0);
    *st = step.kind == V_UNDEF ? 1 : step.u.num;
    double a, b;
    if (dir >= 0) {
        a = start.kind == V_UNDEF ? 0 : start.u.num;
        b = stop.kind == V_UNDEF ? len : stop.u.num;
        a = a < 0 ? fmax(len + a, 0) : fmin(a, len);
        b = b < 0 ? fmax(len + b, 0) : fmin(b, len);
    } else {
        a = start.kind == V_UNDEF ? len - 1 : start.u.num;
        b = stop.kind == V_UNDEF ? -1 : stop.u.num;
        a = a < 0 ? fmax(len + a, -1) : fmin(a, len - 1);
        b = b < -1 ? fmax(len + b, -1) : fmin(b, len - 1);
    }
    *s = a;
    *e = b;
    if (dir == 0) *e = *s; /* the loop condition 0 * i < 0 * stop never holds */
}

static Value eval_slice(Render *R, const Node *at, Value obj, const Node *sl, Env *env) {
    if (obj.kind != V_ARRAY && obj.kind != V_STR)
        ct_rt_fail(R, at, "only a list or a string can be sliced, not %s", ct_v_kind_name(obj));
    Value p[3] = {v_undef(), v_undef(), v_undef()};
    const Node *parts[3] = {sl->u.slice.start, sl->u.slice.stop, sl->u.slice.step};
    for (int i = 0; i < 3; i++) {
        if (parts[i]) p[i] = ct_eval_expr(R, parts[i], env);
        if (p[i].kind != V_INT && p[i].kind != V_UNDEF)
            ct_rt_fail(R, at, "slice bounds must be integers, not %s", ct_v_kind_name(p[i]));
    }
    /* strings slice by code point (Array.from) */
    size_t n = 0;
    const char **cps = NULL;
    if (obj.kind == V_STR) {
        for (size_t i = 0; i < obj.len; n++) {
            uint32_t cp;
            i += ct_u8_decode(obj.u.s + i, obj.len - i, &cp);
        }
        cps = ct_arena_alloc(&R->arena, (n + 1) * sizeof *cps);
        size_t k = 0;
        for (size_t i = 0; i < obj.len; k++) {
            uint32_t cp;
            cps[k] = obj.u.s + i;
            i += ct_u8_decode(obj.u.s + i, obj.len - i, &cp);
        }
        cps[n] = obj.u.s + obj.len;
    } else {
        n = obj.u.arr->len;
    }
    double s, e, st;
    slice_bounds((double)n, p[0], p[1], p[2], &s, &e, &st);
    double dir = st > 0 ? 1 : st < 0 ? -1 : 0;
    double count = dir == 0 || dir * s >= dir * e ? 0 : ceil((dir * e - dir * s) / fabs(st));
    ct_rt_step(R, at, (uint64_t)count);
    if (obj.kind == V_ARRAY) {
        Value out = ct_v_array(R, (size_t)count);
        size_t k = 0;
        for (double i = s; k < (size_t)count; i += st)
            out.u.arr->items[k++] = obj.u.arr->items[(size_t)i];
        return out;
    }
    StrBuf b = ct_v_builder(R);
    size_t k = 0;
    for (double i = s; k < (size_t)count; i += st, k++) {
        size_t c = (size_t)i;
        ct_sb_add(&b, cps[c], (size_t)(cps[c + 1] - cps[c]));
    }
    return ct_v_strbuf(R, &b);
}

static Value eval_member(Render *R, const Node *n, Env *env) {
    Value obj = ct_eval_expr(R, n->u.member.object, env);
    const Node *p = n->u.member.property;
    Value prop;
    if (n->flag) {
        if (p->kind == N_SLICE) return eval_slice(R, n, obj, p, env);
        prop = ct_eval_expr(R, p, env);
    } else if (p->kind == N_INT) {
        prop = v_int(p->u.num);
    } else {
        prop = v_str(p->u.str.s, p->u.str.len);
    }
    return ct_get_member(R, n, obj, prop);
}

static int num_like(Value v) {
    return v_is_num(v) || v.kind == V_BOOL;
}

static Value concat_js(Render *R, const Node *at, Value a, Value b) {
    ct_rt_step(R, at, ((uint64_t)a.len + b.len) >> 6);
    StrBuf s = ct_v_builder(R);
    ct_v_to_js_string(R, at, a, &s);
    ct_v_to_js_string(R, at, b, &s);
    return ct_v_strbuf(R, &s);
}

_Noreturn static void bad_operands(Render *R, const Node *n, Value l, Value r) {
    const Node *ln = n->u.binary.left, *rn = n->u.binary.right;
    const char *op = OP_NAMES[n->op];
    if (l.kind == V_UNDEF || r.kind == V_UNDEF) {
        const Node *u = l.kind == V_UNDEF ? ln : rn;
        ct_rt_fail(R, n, "\"%s\" is undefined (operator \"%s\")", describe_str(R, u), op);
    }
    ct_rt_fail(R, n, "operator \"%s\" cannot be applied to %s and %s", op, ct_v_kind_name(l),
               ct_v_kind_name(r));
}

static Value eval_binary(Render *R, const Node *n, Env *env) {
    Op op = (Op)n->op;
    Value l = ct_eval_expr(R, n->u.binary.left, env);
    if (op == OP_AND) return ct_v_truthy(l) ? ct_eval_expr(R, n->u.binary.right, env) : l;
    if (op == OP_OR) return ct_v_truthy(l) ? l : ct_eval_expr(R, n->u.binary.right, env);
    Value r = ct_eval_expr(R, n->u.binary.right, env);
    if (op == OP_EQ) return v_bool(ct_v_loose_eq(R, n, l, r));
    if (op == OP_NE) return v_bool(!ct_v_loose_eq(R, n, l, r));
    if (l.kind == V_UNDEF || r.kind == V_UNDEF) {
        if (r.kind == V_UNDEF && (op == OP_IN || op == OP_NOT_IN)) return v_bool(op == OP_NOT_IN);
        bad_operands(R, n, l, r);
    }
    if (l.kind == V_NULL || r.kind == V_NULL) bad_operands(R, n, l, r);
    if (op == OP_CONCAT) return concat_js(R, n, l, r);
    if (op == OP_POW && num_like(l) && num_like(r)) {
        double a = l.kind == V_BOOL ? l.b : l.u.num, b = r.kind == V_BOOL ? r.b : r.u.num;
        if (a == 0 && b < 0) ct_rt_fail(R, n, "0 cannot be raised to a negative power");
        double res = (fabs(a) == 1 && isinf(b)) ? NAN : pow(a, b);
        if (!isfinite(res)) ct_rt_fail(R, n, "the result of ** is not a finite real number");
        return (l.kind == V_FLOAT || r.kind == V_FLOAT || b < 0) ? v_float(res) : v_int(res);
    } else if (v_is_num(l) && v_is_num(r)) {
        double a = l.u.num, b = r.u.num;
        int fl = l.kind == V_FLOAT || r.kind == V_FLOAT;
        switch (op) {
        case OP_ADD:
            return fl ? v_float(a + b) : v_int(a + b);
        case OP_SUB:
            return fl ? v_float(a - b) : v_int(a - b);
        case OP_MUL:
            return fl ? v_float(a * b) : v_int(a * b);
        case OP_DIV:
            return v_float(a / b);
        case OP_FLOORDIV:
            return fl ? v_float(floor(a / b)) : v_int(floor(a / b));
        case OP_MOD:
            return fl ? v_float(fmod(a, b)) : v_int(fmod(a, b));
        case OP_LT:
            return v_bool(a < b);
        case OP_GT:
            return v_bool(a > b);
        case OP_LE:
            return v_bool(a <= b);
        case OP_GE:
            return v_bool(a >= b);
        default:
            break;
        }
    } else if (l.kind == V_ARRAY && r.kind == V_ARRAY) {
        if (op == OP_ADD) {
            const VArray *x = l.u.arr, *y = r.u.arr;
            Value out = ct_v_array(R, (size_t)x->len + y->len);
            if (x->len) memcpy(out.u.arr->items, x->items, x->len * sizeof(Value));
            if (y->len) memcpy(out.u.arr->items + x->len, y->items, y->len * sizeof(Value));
            ct_rt_step(R, n, out.u.arr->len);
            return out;
        }
    } else if (r.kind == V_ARRAY) {
        if (op == OP_IN || op == OP_NOT_IN) {
            int found = 0;
            for (uint32_t i = 0; i < r.u.arr->len && !found; i++)
                found = ct_v_strict_eq(r.u.arr->items[i], l);
            ct_rt_step(R, n, r.u.arr->len);
            return v_bool(found == (op == OP_IN));
        }
    }
    if ((l.kind == V_STR || r.kind == V_STR) && op == OP_ADD) return concat_js(R, n, l, r);
    if (l.kind == V_STR && r.kind == V_STR && (op == OP_IN || op == OP_NOT_IN)) {
        ct_rt_step(R, n, r.len >> 6);
        int found = l.len == 0 || (r.len >= l.len && memmem(r.u.s, r.len, l.u.s, l.len) != NULL);
        return v_bool(found == (op == OP_IN));
    }
    if (l.kind == V_STR && r.kind == V_OBJECT && (op == OP_IN || op == OP_NOT_IN))
        return v_bool((ct_obj_find(r.u.obj, l.u.s, l.len) != NULL) == (op == OP_IN));
    bad_operands(R, n, l, r);
}

static Value eval_unary(Render *R, const Node *n, Env *env) {
    Value v = ct_eval_expr(R, n->u.arg, env);
    if (n->op == OP_NOT) return v_bool(!ct_v_truthy(v));
    if (!num_like(v))
        ct_rt_fail(R, n, "unary \"%s\" cannot be applied to %s", OP_NAMES[n->op],
                   ct_v_kind_name(v));
    double x = v.kind == V_BOOL ? v.b : v.u.num;
    if (n->op == OP_NEG) x = -x;
    return v.kind == V_FLOAT ? v_float(x) : v_int(x);
}

Value ct_eval_expr(Render *R, const Node *n, Env *env) {
    if (++R->depth > MAX_EVAL_DEPTH)
        ct_rt_fail(R, n, "chat template evaluation nests deeper than %d levels", MAX_EVAL_DEPTH);
    ct_rt_step(R, n, 1);
    Value v;
    switch (n->kind) {
    case N_STRING:
        v = v_str(n->u.str.s, n->u.str.len);
        break;
    case N_INT:
        v = v_int(n->u.num);
        break;
    case N_FLOAT:
        v = v_float(n->u.num);
        break;
    case N_IDENT:
        v = ct_env_get(env, n->u.str.sym);
        break;
    case N_ARRAY:
    case N_TUPLE:
        v = ct_v_array(R, n->u.list.len);
        v.u.arr->is_tuple = n->kind == N_TUPLE;
        for (uint32_t i = 0; i < n->u.list.len; i++)
            v.u.arr->items[i] = ct_eval_expr(R, n->u.list.items[i], env);
        break;
    case N_OBJECT:
        v = ct_v_object(R, n->u.obj.keys.len);
        for (uint32_t i = 0; i < n->u.obj.keys.len; i++) {
            Value k = ct_eval_expr(R, n->u.obj.keys.items[i], env);
            if (k.kind != V_STR)
                ct_rt_fail(R, n->u.obj.keys.items[i], "dict keys must be strings, not %s",
                           ct_v_kind_name(k));
            ct_obj_set(R, v.u.obj, k.u.s, k.len, ct_eval_expr(R, n->u.obj.values.items[i], env));
        }
        break;
    case N_MEMBER:
        v = eval_member(R, n, env);
        break;
    case N_CALL:
        v = eval_call(R, n, env);
        break;
    case N_UNARY:
        v = eval_unary(R, n, env);
        break;
    case N_BINARY:
        v = eval_binary(R, n, env);
        break;
    case N_FILTER:
        v = ct_apply_filter(R, n->u.filter.filter, ct_eval_expr(R, n->u.filter.operand, env), env);
        break;
    case N_TEST:
        v = ct_apply_test(R, n, ct_eval_expr(R, n->u.test.operand, env), env);
        break;
    case N_SELECT:
        v = ct_v_truthy(ct_eval_expr(R, n->u.select.test, env))
                ? ct_eval_expr(R, n->u.select.lhs, env)
                : v_undef();
        break;
    case N_TERNARY:
        v = ct_eval_expr(R,
                         ct_v_truthy(ct_eval_expr(R, n->u.ternary.cond, env)) ? n->u.ternary.yes
                                                                              : n->u.ternary.no,
                         env);
        break;
    default:
        ct_rt_fail(R, n, "this expression cannot be evaluated here");
    }
    R->depth--;
    return v;
}
