/* data/chat/chat_render.c — runs the syntax tree: statements write the output (expressions are
 * evaluated in chat_eval.c). Scoping follows the reference: a for loop opens one scope for all its
 * iterations (a `set` in the body is seen by later iterations, not after the loop), if
 * blocks open none, and a macro body's scope hangs off the *caller's* scope.
 *
 * break and continue unwind with longjmp to the innermost loop iteration (they may come from
 * a macro called in the body); as in the reference, the output of the interrupted iteration
 * is dropped, and a loop whose iterations all ended that way renders its else block.
 *
 * Every node evaluated and every element touched by a filter costs a step; steps, memory,
 * output size, nesting and macro recursion are bounded (chat_template.h). */
#include "data/chat/render.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_EVAL_DEPTH CT_MAX_EVAL_DEPTH
enum { SIG_BREAK = 1, SIG_CONTINUE = 2 };

void ct_rt_fail(Render *R, const Node *at, const char *fmt, ...) {
    char msg[640];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ct_fail_at(&R->fail, R->t->src, R->t->srclen, at ? at->pos : NO_POS, "%s", msg);
}

void ct_rt_step(Render *R, const Node *at, uint64_t n) {
    R->steps += n;
    if (R->steps > CHAT_TEMPLATE_MAX_STEPS)
        ct_rt_fail(R, at, "chat template takes more than %u steps (a runaway loop?)",
                   CHAT_TEMPLATE_MAX_STEPS);
}

static void out_add(Render *R, const Node *at, const char *s, size_t n) {
    if (!n) return;
    if (n > CHAT_TEMPLATE_MAX_OUTPUT - R->out_len)
        ct_rt_fail(R, at, "chat template output exceeds %u MiB", CHAT_TEMPLATE_MAX_OUTPUT >> 20);
    if (R->out_len + n + 1 > R->out_cap) {
        size_t cap = R->out_cap ? R->out_cap : 4096;
        while (cap < R->out_len + n + 1) cap *= 2;
        char *p = realloc(R->out, cap);
        if (!p) ct_rt_fail(R, at, "out of memory for the chat template output");
        R->out = p;
        R->out_cap = cap;
    }
    memcpy(R->out + R->out_len, s, n);
    R->out_len += n;
}

/* ---- scopes ---- */

Env *ct_env_new(Render *R, Env *parent) {
    Env *e = ct_arena_alloc(&R->arena, sizeof *e);
    e->parent = parent;
    e->len = e->cap = 0;
    e->vars = NULL;
    return e;
}

void ct_env_set(Render *R, Env *e, int32_t sym, Value v) {
    for (uint32_t i = 0; i < e->len; i++)
        if (e->vars[i].sym == sym) {
            e->vars[i].v = v;
            return;
        }
    if (e->len == e->cap) {
        uint32_t cap = e->cap ? e->cap * 2 : 4;
        EnvVar *nv = ct_arena_alloc(&R->arena, cap * sizeof *nv);
        if (e->len) memcpy(nv, e->vars, e->len * sizeof *nv);
        e->vars = nv;
        e->cap = cap;
    }
    e->vars[e->len++] = (EnvVar){sym, v};
}

Value ct_env_get(const Env *e, int32_t sym) {
    for (; e; e = e->parent)
        for (uint32_t i = 0; i < e->len; i++)
            if (e->vars[i].sym == sym) return e->vars[i].v;
    return v_undef();
}

/* ---- statements ---- */

static void eval_block(Render *R, const NodeList *body, Env *env);

static Value capture(Render *R, const NodeList *body, Env *env) {
    size_t mark = R->out_len;
    eval_block(R, body, env);
    ct_rt_step(R, NULL, (R->out_len - mark) >> 6);
    Value s = v_str(ct_arena_strdup(&R->arena, R->out ? R->out + mark : "", R->out_len - mark),
                    R->out_len - mark);
    R->out_len = mark;
    return s;
}

static void print_value(Render *R, const Node *at, Value v) {
    if (v.kind == V_NULL || v.kind == V_UNDEF) return;
    if (v.kind == V_STR) {
        out_add(R, at, v.u.s, v.len);
        return;
    }
    StrBuf b = ct_v_builder(R);
    ct_v_to_output(R, at, v, &b);
    out_add(R, at, b.p, b.len);
}

static void assign(Render *R, const Node *target, Value v, Env *env) {
    if (target->kind == N_IDENT) {
        ct_env_set(R, env, target->u.str.sym, v);
    } else if (target->kind == N_TUPLE) {
        const NodeList *names = &target->u.list;
        if (v.kind != V_ARRAY) ct_rt_fail(R, target, "cannot unpack %s in set", ct_v_kind_name(v));
        if (v.u.arr->len != names->len)
            ct_rt_fail(R, target, "too %s items to unpack in set",
                       names->len > v.u.arr->len ? "few" : "many");
        for (uint32_t i = 0; i < names->len; i++) {
            if (names->items[i]->kind != N_IDENT)
                ct_rt_fail(R, names->items[i], "can only unpack into names");
            ct_env_set(R, env, names->items[i]->u.str.sym, v.u.arr->items[i]);
        }
    } else if (target->kind == N_MEMBER) {
        Value obj = ct_eval_expr(R, target->u.member.object, env);
        if (obj.kind != V_NAMESPACE)
            ct_rt_fail(R, target, "cannot set an attribute of %s (only of a namespace)",
                       ct_v_kind_name(obj));
        const Node *p = target->u.member.property;
        if (p->kind != N_IDENT) ct_rt_fail(R, target, "a namespace attribute must be a name");
        ct_obj_set(R, obj.u.obj, p->u.str.s, p->u.str.len, v);
    } else {
        ct_rt_fail(R, target, "cannot assign to this expression");
    }
}

/* Binds a for-loop item to the loop variable(s). */
static void bind_item(Render *R, const Node *target, Value item, Env *env) {
    if (target->kind == N_IDENT) {
        ct_env_set(R, env, target->u.str.sym, item);
        return;
    }
    for (uint32_t j = 0; j < target->u.list.len; j++) {
        const Node *name = target->u.list.items[j];
        if (name->kind != N_IDENT) ct_rt_fail(R, name, "can only unpack into names");
        ct_env_set(R, env, name->u.str.sym, item.u.arr->items[j]);
    }
}

static Value loop_object(Render *R, const Value *items, size_t i, size_t n) {
    static const char *const keys[] = {"index", "index0", "revindex", "revindex0", "first",
                                       "last",  "length", "previtem", "nextitem"};
    Value v[9] = {v_int((double)i + 1),
                  v_int((double)i),
                  v_int((double)(n - i)),
                  v_int((double)(n - i - 1)),
                  v_bool(i == 0),
                  v_bool(i == n - 1),
                  v_int((double)n),
                  i > 0 ? items[i - 1] : v_undef(),
                  i + 1 < n ? items[i + 1] : v_undef()};
    Value loop = ct_v_object(R, 9);
    for (int k = 0; k < 9; k++)
        loop.u.obj->e[k] = (OEntry){keys[k], (uint32_t)strlen(keys[k]), v[k]};
    loop.u.obj->len = 9;
    return loop;
}

static void eval_for(Render *R, const Node *n, Env *env) {
    Env *scope = ct_env_new(R, env);
    const Node *it = n->u.for_.iterable, *test = NULL, *target = n->u.for_.target;
    if (it->kind == N_SELECT) {
        test = it->u.select.test;
        it = it->u.select.lhs;
    }
    Value seq = ct_eval_expr(R, it, scope);
    if (seq.kind == V_OBJECT)
        seq = ct_call_function(R, n, ct_get_member(R, n, seq, v_str("keys", 4)), NULL, 0, env);
    if (seq.kind != V_ARRAY) ct_rt_fail(R, n, "cannot loop over %s", ct_v_kind_name(seq));
    size_t total = seq.u.arr->len, n_items = 0;
    Value *items = ct_arena_alloc(&R->arena, (total + 1) * sizeof *items);
    for (size_t i = 0; i < total; i++) {
        Value item = seq.u.arr->items[i];
        ct_rt_step(R, n, 1);
        if (target->kind == N_TUPLE) {
            if (item.kind != V_ARRAY || item.u.arr->is_tuple)
                ct_rt_fail(R, target, "cannot unpack %s into loop variables", ct_v_kind_name(item));
            if (item.u.arr->len != target->u.list.len)
                ct_rt_fail(R, target, "too %s items to unpack",
                           target->u.list.len > item.u.arr->len ? "few" : "many");
        }
        if (test) {
            Env *ls = ct_env_new(R, scope);
            bind_item(R, target, item, ls);
            if (!ct_v_truthy(ct_eval_expr(R, test, ls))) continue;
        }
        items[n_items++] = item;
    }
    jmp_buf jb;
    jmp_buf *volatile outer = R->loop_jump;
    volatile int no_iteration = 1;
    for (volatile size_t i = 0; i < n_items; i++) {
        ct_rt_step(R, n, 1);
        if (R->t->uses_loop) ct_env_set(R, scope, SYM_LOOP, loop_object(R, items, i, n_items));
        bind_item(R, target, items[i], scope);
        if (R->t->has_break) {
            size_t mark = R->out_len;
            int depth = R->depth, calls = R->calls;
            R->loop_jump = &jb;
            int sig = setjmp(jb);
            if (sig) {
                R->out_len = mark; /* the interrupted iteration's output is dropped */
                R->depth = depth;
                R->calls = calls;
                R->loop_jump = outer;
                if (sig == SIG_BREAK) break;
                continue;
            }
        }
        eval_block(R, &n->u.for_.body, scope);
        R->loop_jump = outer;
        no_iteration = 0;
    }
    R->loop_jump = outer;
    if (no_iteration) eval_block(R, &n->u.for_.alt, scope);
}

static const char *macro_name(const Node *m, char *buf, size_t cap) {
    if (!m->u.macro.name) return "None";
    snprintf(buf, cap, "'%.*s'", (int)m->u.macro.name->u.str.len, m->u.macro.name->u.str.s);
    return buf;
}

static void bind_macro_args(Render *R, const Node *at, const Node *m, Value *args, uint32_t nargs,
                            Env *scope) {
    const NodeList *params = &m->u.macro.params;
    VObject *kw = NULL;
    if (nargs && ct_v_is_kwargs(args[nargs - 1])) kw = args[--nargs].u.obj;
    uint8_t *used = kw && kw->len ? ct_arena_zalloc(&R->arena, kw->len) : NULL;
    uint8_t *pending = params->len ? ct_arena_zalloc(&R->arena, params->len) : NULL;
    for (uint32_t i = 0; i < params->len; i++) {
        const Node *p = params->items[i];
        const Node *name = p->kind == N_KWARG ? p->u.kwarg.key : p;
        Value v = v_undef();
        int given = i < nargs;
        if (given) v = args[i];
        if (!given && kw) {
            const OEntry *e = ct_obj_find(kw, name->u.str.s, name->u.str.len);
            if (e) {
                v = e->v;
                used[e - kw->e] = 1;
                given = 1;
            }
        }
        if (!given && p->kind == N_KWARG) pending[i] = 1;
        ct_env_set(R, scope, name->u.str.sym, v);
    }
    char nb[80];
    if (m->flag & USES_KWARGS) {
        Value rest = ct_v_object(R, kw ? kw->len : 0);
        for (uint32_t i = 0; kw && i < kw->len; i++)
            if (!used[i]) ct_obj_set(R, rest.u.obj, kw->e[i].key, kw->e[i].klen, kw->e[i].v);
        ct_env_set(R, scope, SYM_KWARGS, rest);
    } else {
        for (uint32_t i = 0; kw && i < kw->len; i++)
            if (!used[i])
                ct_rt_fail(R, at, "macro %s takes no keyword argument '%.*s'",
                           macro_name(m, nb, sizeof nb), (int)kw->e[i].klen, kw->e[i].key);
    }
    if (m->flag & USES_VARARGS) {
        uint32_t extra = nargs > params->len ? nargs - params->len : 0;
        Value rest = ct_v_array(R, extra);
        for (uint32_t i = 0; i < extra; i++) rest.u.arr->items[i] = args[params->len + i];
        ct_env_set(R, scope, SYM_VARARGS, rest);
    } else if (nargs > params->len) {
        ct_rt_fail(R, at, "macro %s takes not more than %u argument(s)",
                   macro_name(m, nb, sizeof nb), params->len);
    }
    for (uint32_t i = 0; i < params->len; i++)
        if (pending[i])
            ct_env_set(R, scope, params->items[i]->u.kwarg.key->u.str.sym,
                       ct_eval_expr(R, params->items[i]->u.kwarg.value, scope));
}

Value ct_invoke_macro(Render *R, const Node *at, VFunc *fn, Value *args, uint32_t nargs, Env *env) {
    if (++R->calls > CHAT_TEMPLATE_MAX_CALLS)
        ct_rt_fail(R, at, "macro calls nest deeper than %d levels", CHAT_TEMPLATE_MAX_CALLS);
    const Node *m = fn->node;
    Env *scope = ct_env_new(R, fn->kind == F_CALLER ? fn->env : env);
    bind_macro_args(R, at, m, args, nargs, scope);
    Value out = capture(R, &m->u.macro.body, scope);
    R->calls--;
    return out;
}

static void eval_callblock(Render *R, const Node *n, Env *env) {
    Value caller = ct_v_func(R, F_CALLER);
    caller.u.fn->node = n;
    caller.u.fn->env = env;
    const Node *call = n->u.macro.call;
    Args a = ct_eval_args(R, &call->u.call.args, env);
    Value fn = ct_eval_expr(R, call->u.call.callee, env);
    if (fn.kind != V_FUNC) ct_not_callable(R, call, call->u.call.callee, fn);
    Env *with_caller = ct_env_new(R, env);
    ct_env_set(R, with_caller, SYM_CALLER, caller);
    uint32_t nargs;
    Value *args = ct_call_list(R, &a, 1, &nargs);
    print_value(R, n, ct_call_function(R, call, fn, args, nargs, with_caller));
}

static void eval_stmt(Render *R, const Node *n, Env *env) {
    switch (n->kind) {
    case N_STRING:
        out_add(R, n, n->u.str.s, n->u.str.len);
        return;
    case N_COMMENT:
        return;
    case N_SET:
        assign(R, n->u.set.target,
               n->u.set.value ? ct_eval_expr(R, n->u.set.value, env)
                              : capture(R, &n->u.set.body, env),
               env);
        return;
    case N_IF:
        eval_block(
            R, ct_v_truthy(ct_eval_expr(R, n->u.if_.test, env)) ? &n->u.if_.body : &n->u.if_.alt,
            env);
        return;
    case N_FOR:
        eval_for(R, n, env);
        return;
    case N_MACRO: {
        Value f = ct_v_func(R, F_MACRO);
        f.u.fn->node = n;
        ct_env_set(R, env, n->u.macro.name->u.str.sym, f);
        return;
    }
    case N_CALLBLOCK:
        eval_callblock(R, n, env);
        return;
    case N_FILTERBLOCK:
        print_value(R, n,
                    ct_apply_filter(R, n->u.filterblock.filter,
                                    capture(R, &n->u.filterblock.body, env), env));
        return;
    case N_BREAK:
    case N_CONTINUE:
        if (!R->loop_jump)
            ct_rt_fail(R, n, "{%% %s %%} outside a loop",
                       n->kind == N_BREAK ? "break" : "continue");
        longjmp(*R->loop_jump, n->kind == N_BREAK ? SIG_BREAK : SIG_CONTINUE);
    default:
        print_value(R, n, ct_eval_expr(R, n, env));
    }
}

static void eval_block(Render *R, const NodeList *body, Env *env) {
    if (++R->depth > MAX_EVAL_DEPTH)
        ct_rt_fail(R, body->len ? body->items[0] : NULL,
                   "chat template evaluation nests deeper than %d levels", MAX_EVAL_DEPTH);
    for (uint32_t i = 0; i < body->len; i++) {
        ct_rt_step(R, body->items[i], 1);
        eval_stmt(R, body->items[i], env);
    }
    R->depth--;
}

/* ---- entry point ---- */

static const struct {
    int32_t sym;
    FuncKind fn; /* or -1: a constant */
    int value;   /* 1 true, 0 false, -1 none */
} GLOBALS[] = {
    {SYM_NAMESPACE, F_NAMESPACE, 0},
    {SYM_RAISE_EXCEPTION, F_RAISE_EXCEPTION, 0},
    {SYM_RANGE, F_RANGE, 0},
    {SYM_STRFTIME_NOW, F_STRFTIME_NOW, 0},
    {SYM_TRUE, (FuncKind)-1, 1},
    {SYM_FALSE, (FuncKind)-1, 0},
    {SYM_NONE, (FuncKind)-1, -1},
    {SYM_TRUE_TITLE, (FuncKind)-1, 1},
    {SYM_FALSE_TITLE, (FuncKind)-1, 0},
    {SYM_NONE_TITLE, (FuncKind)-1, -1},
};

static Env *root_scope(Render *R, const json_t *context) {
    Env *root = ct_env_new(R, NULL);
    for (size_t i = 0; i < sizeof GLOBALS / sizeof GLOBALS[0]; i++) {
        Value v = (int)GLOBALS[i].fn >= 0 ? ct_v_func(R, GLOBALS[i].fn)
                  : GLOBALS[i].value < 0  ? v_null()
                                          : v_bool(GLOBALS[i].value);
        ct_env_set(R, root, GLOBALS[i].sym, v);
    }
    if (!context) return root;
    if (!json_is_object(context))
        ct_rt_fail(R, NULL, "chat template context must be a JSON object");
    void *it = json_object_iter((json_t *)context);
    for (; it; it = json_object_iter_next((json_t *)context, it)) {
        const char *key = json_object_iter_key(it);
        size_t klen = json_object_iter_key_len(it);
        int32_t sym = ct_template_symbol(R->t, key, klen);
        for (size_t i = 0; i < sizeof GLOBALS / sizeof GLOBALS[0]; i++)
            if (sym == GLOBALS[i].sym)
                ct_rt_fail(R, NULL, "chat template context key \"%s\" would replace a built-in",
                           key);
        if (sym < 0) {
            static const char *const builtins[] = {
                "namespace", "raise_exception", "range", "strftime_now", "true", "false", "none",
                "True",      "False",           "None"};
            for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++)
                if (strlen(builtins[i]) == klen && memcmp(builtins[i], key, klen) == 0)
                    ct_rt_fail(R, NULL, "chat template context key \"%s\" would replace a built-in",
                               key);
            continue; /* the template never names it */
        }
        ct_env_set(R, root, sym, ct_v_from_json(R, json_object_iter_value(it), 0));
    }
    return root;
}

static int render_protected(Render *R, const json_t *context) {
    if (setjmp(R->fail.jb)) return -1;
    Env *root = root_scope(R, context);
    eval_block(R, &R->t->body, root);
    return 0;
}

char *chat_template_render(const ChatTemplate *t, const json_t *context, size_t *len, char *err,
                           size_t errlen) {
    Render *R = calloc(1, sizeof *R);
    if (!R) {
        if (err && errlen) snprintf(err, errlen, "out of memory rendering a chat template");
        return NULL;
    }
    R->t = t;
    ct_arena_init(&R->arena, CHAT_TEMPLATE_MAX_MEMORY, &R->fail);
    char *out = NULL;
    if (render_protected(R, context) == 0) {
        out_add(R, NULL, "", 0);
        out = R->out ? R->out : malloc(1);
        size_t n = R->out ? R->out_len : 0;
        if (out && n && memchr(out, 0xED, n)) n = ct_wtf8_to_utf8(out, n);
        if (out) out[n] = '\0';
        if (len) *len = n;
        if (!out && err && errlen) snprintf(err, errlen, "out of memory rendering a chat template");
    } else {
        if (err && errlen) snprintf(err, errlen, "%s", R->fail.msg);
        free(R->out);
    }
    ct_arena_free(&R->arena);
    free(R);
    return out;
}
