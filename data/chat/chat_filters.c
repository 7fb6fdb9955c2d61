/* data/chat/chat_filters.c — `x | filter`, `x | filter(args)` and `x is test`.
 *
 * The reference picks a filter by the operand's type and by whether it was written with
 * parentheses (`trim` works, `trim()` does not; `default` only works as `default(...)`), and
 * supports a fixed set on each type. This file follows that table: a known filter on a type
 * it does not take, or an unknown filter, is an error naming it. Extensions where the
 * reference fails: `count` (= length), `d`/`default` with or without arguments, and tests
 * taking an argument (divisibleby, eq/equalto/sameas, ne, in). */
#include "data/chat/render.h"

#include <math.h>
#include <string.h>

static int is_name(const Node *id, const char *name) {
    return id->u.str.len == strlen(name) && memcmp(id->u.str.s, name, id->u.str.len) == 0;
}

static const char *const KNOWN[] = {
    "safe",    "tojson",     "list",       "first",    "last",    "length", "count",
    "reverse", "sort",       "join",       "string",   "unique",  "upper",  "lower",
    "title",   "capitalize", "trim",       "indent",   "int",     "float",  "abs",
    "items",   "keys",       "values",     "dictsort", "get",     "bool",   "default",
    "d",       "selectattr", "rejectattr", "map",      "replace", NULL};

_Noreturn static void no_filter(Render *R, const Node *at, const Node *id, Value operand) {
    for (const char *const *k = KNOWN; *k; k++)
        if (is_name(id, *k))
            ct_rt_fail(R, at, "filter \"%.*s\"%s cannot be applied to %s", (int)id->u.str.len,
                       id->u.str.s, at->kind == N_CALL ? " with arguments" : "",
                       ct_v_kind_name(operand));
    ct_rt_fail(R, at, "filter \"%.*s\" is not supported", (int)id->u.str.len, id->u.str.s);
}

static Value js_join(Render *R, const Node *at, const VArray *a, Value sep) {
    StrBuf b = ct_v_builder(R);
    for (uint32_t i = 0; i < a->len; i++) {
        if (i) ct_sb_add(&b, sep.u.s, sep.len);
        Value x = a->items[i];
        if (x.kind != V_NULL && x.kind != V_UNDEF) ct_v_to_js_string(R, at, x, &b);
    }
    return ct_v_strbuf(R, &b);
}

static Value str_to_output(Render *R, const Node *at, Value v) {
    StrBuf b = ct_v_builder(R);
    ct_v_to_output(R, at, v, &b);
    return ct_v_strbuf(R, &b);
}

static Value to_json_value(Render *R, const Node *at, Value v, const JsonOptions *o) {
    StrBuf b = ct_v_builder(R);
    ct_v_to_json(R, at, v, o, &b);
    return ct_v_strbuf(R, &b);
}

static Value indent_lines(Render *R, Value s, size_t width, int first, int blank) {
    StrBuf b = ct_v_builder(R);
    size_t line = 0, i = 0;
    for (;;) {
        const char *nl = memchr(s.u.s + i, '\n', s.len - i);
        size_t end = nl ? (size_t)(nl - s.u.s) : s.len;
        if (!((!first && line == 0) || (!blank && end == i)))
            for (size_t k = 0; k < width; k++) ct_sb_addc(&b, ' ');
        ct_sb_add(&b, s.u.s + i, end - i);
        if (!nl) break;
        ct_sb_addc(&b, '\n');
        i = end + 1;
        line++;
    }
    return ct_v_strbuf(R, &b);
}

static int same_value_zero(Value a, Value b) {
    if (v_is_num(a) && v_is_num(b) && isnan(a.u.num) && isnan(b.u.num)) return 1;
    return ct_v_strict_eq(a, b);
}

static Value unique(Render *R, const Node *at, const VArray *a) {
    Value out = ct_v_array(R, a->len);
    uint32_t n = 0;
    for (uint32_t i = 0; i < a->len; i++) {
        int seen = 0;
        ct_rt_step(R, at, n + 1);
        for (uint32_t j = 0; j < n && !seen; j++)
            seen = same_value_zero(out.u.arr->items[j], a->items[i]);
        if (!seen) out.u.arr->items[n++] = a->items[i];
    }
    out.u.arr->len = n;
    return out;
}

static Value reversed(Render *R, const VArray *a) {
    Value out = ct_v_array(R, a->len);
    for (uint32_t i = 0; i < a->len; i++) out.u.arr->items[i] = a->items[a->len - 1 - i];
    return out;
}

/* getAttributeValue: "a.b.0" through dicts, namespaces and list indices. */
static Value attribute_path(Value item, const char *path, size_t len) {
    size_t i = 0;
    for (;;) {
        const char *dot = memchr(path + i, '.', len - i);
        size_t end = dot ? (size_t)(dot - path) : len;
        if (item.kind == V_OBJECT || item.kind == V_NAMESPACE) {
            const OEntry *e = ct_obj_find(item.u.obj, path + i, end - i);
            item = e ? e->v : v_undef();
        } else if (item.kind == V_ARRAY) {
            double idx;
            if (!ct_js_parse_int(path + i, end - i, &idx) || idx < 0 || idx >= item.u.arr->len)
                return v_undef();
            item = item.u.arr->items[(size_t)idx];
        } else {
            return v_undef();
        }
        if (!dot) return item;
        i = end + 1;
    }
}

typedef struct SortBy {
    Value attribute; /* V_NULL: the items themselves */
    int case_sensitive, reverse;
} SortBy;

static int sort_cmp(Render *R, const Node *at, const void *ctx, Value a, Value b) {
    const SortBy *s = ctx;
    if (s->attribute.kind != V_NULL) {
        a = attribute_path(a, s->attribute.u.s, s->attribute.len);
        b = attribute_path(b, s->attribute.u.s, s->attribute.len);
    }
    int r = ct_v_compare(R, at, a, b, s->case_sensitive);
    return s->reverse ? -r : r;
}

static Value sorted(Render *R, const Node *at, const VArray *a, const SortBy *by) {
    Value out = ct_v_array(R, a->len);
    if (a->len) memcpy(out.u.arr->items, a->items, a->len * sizeof(Value));
    ct_sort_values(R, at, out.u.arr->items, a->len, sort_cmp, by);
    return out;
}

static Value filter_plain(Render *R, const Node *at, const Node *id, Value v) {
    if (is_name(id, "safe")) return v;
    if (is_name(id, "tojson")) {
        JsonOptions o = {.undefined_as_null = 1};
        return to_json_value(R, at, v, &o);
    }
    if (is_name(id, "default") || is_name(id, "d")) return v.kind == V_UNDEF ? v_str("", 0) : v;
    int count = is_name(id, "count");
    if (v.kind == V_ARRAY) {
        const VArray *a = v.u.arr;
        if (is_name(id, "list")) return v;
        if (is_name(id, "first")) return a->len ? a->items[0] : v_undef();
        if (is_name(id, "last")) return a->len ? a->items[a->len - 1] : v_undef();
        if (is_name(id, "length") || count) return v_int(a->len);
        if (is_name(id, "reverse")) return reversed(R, a);
        if (is_name(id, "sort")) {
            SortBy by = {v_null(), 0, 0};
            return sorted(R, at, a, &by);
        }
        if (is_name(id, "join")) return js_join(R, at, a, v_str("", 0));
        if (is_name(id, "string")) return str_to_output(R, at, v);
        if (is_name(id, "unique")) return unique(R, at, a);
    } else if (v.kind == V_STR) {
        ct_rt_step(R, at, v.len >> 6);
        if (is_name(id, "length") || count) return v_int((double)ct_js_utf16_len(v.u.s, v.len));
        if (is_name(id, "upper")) return ct_str_upper(R, v);
        if (is_name(id, "lower")) return ct_str_lower(R, v);
        if (is_name(id, "title")) return ct_str_title(R, v);
        if (is_name(id, "capitalize")) return ct_str_capitalize(R, v);
        if (is_name(id, "trim")) return ct_str_trim(v, 1, 1);
        if (is_name(id, "indent")) return indent_lines(R, v, 4, 0, 0);
        if (is_name(id, "join") || is_name(id, "string")) return v;
        double d;
        if (is_name(id, "int"))
            return v_int(ct_js_parse_int(v.u.s, v.len, &d) && !isnan(d) ? d : 0);
        if (is_name(id, "float")) return v_float(ct_js_parse_float(v.u.s, v.len, &d) ? d : 0);
    } else if (v_is_num(v)) {
        if (is_name(id, "abs"))
            return v.kind == V_INT ? v_int(fabs(v.u.num)) : v_float(fabs(v.u.num));
        if (is_name(id, "int")) return v_int(floor(v.u.num));
        if (is_name(id, "float")) return v_float(v.u.num);
        if (is_name(id, "string")) return str_to_output(R, at, v);
    } else if (v.kind == V_OBJECT) {
        if (is_name(id, "items"))
            return ct_call_function(R, at, ct_get_member(R, at, v, v_str("items", 5)), NULL, 0,
                                    NULL);
        if (is_name(id, "length") || count) return v_int(v.u.obj->len);
        static const char *const methods[] = {"get", "keys", "values", "dictsort", NULL};
        for (const char *const *m = methods; *m; m++)
            if (is_name(id, *m)) {
                Value f = ct_get_member(R, at, v, v_str(*m, strlen(*m)));
                if (f.kind == V_FUNC) return ct_call_function(R, at, f, NULL, 0, NULL);
                return f; /* a key of that name */
            }
    } else if (v.kind == V_BOOL) {
        if (is_name(id, "bool")) return v;
        if (is_name(id, "int")) return v_int(v.b);
        if (is_name(id, "float")) return v_float(v.b);
        if (is_name(id, "string")) return v.b ? v_str("true", 4) : v_str("false", 5);
    }
    no_filter(R, at, id, v);
}

static Value filter_tojson(Render *R, const Node *at, const Args *a, Value v) {
    const Value *indent = ct_args_get(a, -1, "indent"), *ascii = ct_args_get(a, -1, "ensure_ascii"),
                *sort = ct_args_get(a, -1, "sort_keys"), *seps = ct_args_get(a, -1, "separators");
    JsonOptions o = {.undefined_as_null = 1};
    if (indent && indent->kind != V_NULL) {
        if (indent->kind != V_INT) ct_rt_fail(R, at, "tojson indent must be an integer");
        if (indent->u.num < 0 || indent->u.num > 1000)
            ct_rt_fail(R, at, "tojson indent %g is out of range", indent->u.num);
        o.indent = (int)indent->u.num;
    }
    if (ascii && ascii->kind != V_BOOL) ct_rt_fail(R, at, "tojson ensure_ascii must be a boolean");
    if (sort && sort->kind != V_BOOL) ct_rt_fail(R, at, "tojson sort_keys must be a boolean");
    o.ensure_ascii = ascii && ascii->b;
    o.sort_keys = sort && sort->b;
    if (seps && seps->kind != V_NULL) {
        if (seps->kind != V_ARRAY || seps->u.arr->len != 2 || seps->u.arr->items[0].kind != V_STR ||
            seps->u.arr->items[1].kind != V_STR)
            ct_rt_fail(R, at, "tojson separators must be a pair of strings");
        o.item_sep = seps->u.arr->items[0].u.s;
        o.item_sep_len = seps->u.arr->items[0].len;
        o.key_sep = seps->u.arr->items[1].u.s;
        o.key_sep_len = seps->u.arr->items[1].len;
    }
    return to_json_value(R, at, v, &o);
}

static Value select_reject(Render *R, const Node *call, Value v, Env *env, int select) {
    const VArray *a = v.u.arr;
    const char *what = select ? "selectattr" : "rejectattr";
    for (uint32_t i = 0; i < a->len; i++)
        if (a->items[i].kind != V_OBJECT && a->items[i].kind != V_NAMESPACE)
            ct_rt_fail(R, call, "%s can only be applied to a list of dicts", what);
    const NodeList *args = &call->u.call.args;
    for (uint32_t i = 0; i < args->len; i++)
        if (args->items[i]->kind != N_STRING)
            ct_rt_fail(R, call, "the arguments of %s must be strings", what);
    if (args->len == 0) ct_rt_fail(R, call, "%s needs an attribute name", what);
    Value attr = ct_eval_expr(R, args->items[0], env);
    Value test = args->len > 1 ? ct_eval_expr(R, args->items[1], env) : v_undef();
    Value arg = args->len > 2 ? ct_eval_expr(R, args->items[2], env) : v_undef();
    Value out = ct_v_array(R, a->len);
    uint32_t n = 0;
    for (uint32_t i = 0; i < a->len; i++) {
        const OEntry *e = ct_obj_find(a->items[i].u.obj, attr.u.s, attr.len);
        int result = 0;
        if (e && test.kind == V_STR) {
            int known;
            result = ct_run_named_test(R, call, test.u.s, test.len, e->v,
                                       args->len > 2 ? &arg : NULL, &known);
            if (!known)
                ct_rt_fail(R, call, "test \"%.*s\" is not supported", (int)test.len, test.u.s);
        } else if (e) {
            result = ct_v_truthy(e->v);
        }
        if (result == select) out.u.arr->items[n++] = a->items[i];
        ct_rt_step(R, call, 1);
    }
    out.u.arr->len = n;
    return out;
}

static Value filter_call(Render *R, const Node *call, Value v, Env *env) {
    const Node *id = call->u.call.callee;
    if (id->kind != N_IDENT) ct_rt_fail(R, call, "a filter must be a name");
    if (v.kind == V_ARRAY && (is_name(id, "selectattr") || is_name(id, "rejectattr")))
        return select_reject(R, call, v, env, is_name(id, "selectattr"));
    Args a = ct_eval_args(R, &call->u.call.args, env);
    if (is_name(id, "tojson")) return filter_tojson(R, call, &a, v);
    if (is_name(id, "join")) {
        const Value *sepp = ct_args_get(&a, 0, "separator");
        Value sep = sepp ? *sepp : v_str("", 0);
        if (sep.kind != V_STR) ct_rt_fail(R, call, "join separator must be a string");
        if (v.kind == V_ARRAY) return js_join(R, call, v.u.arr, sep);
        if (v.kind == V_STR) { /* Array.from(s).join(sep) */
            StrBuf b = ct_v_builder(R);
            for (size_t i = 0; i < v.len;) {
                uint32_t cp;
                size_t k = ct_u8_decode(v.u.s + i, v.len - i, &cp);
                if (i) ct_sb_add(&b, sep.u.s, sep.len);
                ct_sb_add(&b, v.u.s + i, k);
                i += k;
            }
            return ct_v_strbuf(R, &b);
        }
        no_filter(R, call, id, v);
    }
    if (is_name(id, "int") || is_name(id, "float")) {
        int is_int = is_name(id, "int");
        const Value *dp = ct_args_get(&a, 0, "default");
        Value dflt = dp ? *dp : is_int ? v_int(0) : v_float(0);
        double d;
        if (v.kind == V_STR) {
            int ok =
                is_int ? ct_js_parse_int(v.u.s, v.len, &d) : ct_js_parse_float(v.u.s, v.len, &d);
            return !ok || isnan(d) ? dflt : is_int ? v_int(d) : v_float(d);
        }
        if (v_is_num(v)) return v;
        if (v.kind == V_BOOL) return is_int ? v_int(v.b) : v_float(v.b);
        no_filter(R, call, id, v);
    }
    if (is_name(id, "default") || is_name(id, "d")) {
        Value dflt = a.npos > 0 ? a.pos[0] : v_str("", 0);
        const Value *bp = ct_args_get(&a, 1, "boolean");
        if (bp && bp->kind != V_BOOL)
            ct_rt_fail(R, call, "the boolean argument of default must be a boolean");
        return v.kind == V_UNDEF || (bp && bp->b && !ct_v_truthy(v)) ? dflt : v;
    }
    if (v.kind == V_ARRAY) {
        if (is_name(id, "sort")) {
            const Value *rev = ct_args_get(&a, 0, "reverse"),
                        *cs = ct_args_get(&a, 1, "case_sensitive"),
                        *attr = ct_args_get(&a, 2, "attribute");
            if (rev && rev->kind != V_BOOL) ct_rt_fail(R, call, "sort reverse must be a boolean");
            if (cs && cs->kind != V_BOOL)
                ct_rt_fail(R, call, "sort case_sensitive must be a boolean");
            if (attr && attr->kind != V_STR && attr->kind != V_INT && attr->kind != V_NULL)
                ct_rt_fail(R, call, "sort attribute must be a string, an integer or none");
            SortBy by = {attr ? *attr : v_null(), cs && cs->b, rev && rev->b};
            if (by.attribute.kind == V_INT) {
                char num[40];
                ct_js_number_str(by.attribute.u.num, num);
                by.attribute = v_str(ct_arena_strdup(&R->arena, num, strlen(num)), strlen(num));
            }
            return sorted(R, call, v.u.arr, &by);
        }
        if (is_name(id, "map")) {
            const Value *attr = ct_args_get(&a, -1, "attribute"),
                        *dflt = ct_args_get(&a, -1, "default");
            if (!attr) ct_rt_fail(R, call, "map is only supported with attribute=");
            if (attr->kind != V_STR) ct_rt_fail(R, call, "map attribute must be a string");
            Value out = ct_v_array(R, v.u.arr->len);
            for (uint32_t i = 0; i < v.u.arr->len; i++) {
                Value item = v.u.arr->items[i];
                if (item.kind != V_OBJECT && item.kind != V_NAMESPACE)
                    ct_rt_fail(R, call, "map(attribute=) needs a list of dicts");
                Value x = attribute_path(item, attr->u.s, attr->len);
                out.u.arr->items[i] = x.kind == V_UNDEF && dflt ? *dflt : x;
            }
            return out;
        }
    } else if (v.kind == V_STR) {
        if (is_name(id, "indent")) {
            const Value *w = ct_args_get(&a, 0, "width"), *first = ct_args_get(&a, 1, "first"),
                        *blank = ct_args_get(&a, 2, "blank");
            if (w && w->kind != V_INT) ct_rt_fail(R, call, "indent width must be an integer");
            double width = w ? w->u.num : 4;
            if (width < 0 || width > 1e6)
                ct_rt_fail(R, call, "indent width %g is out of range", width);
            return indent_lines(R, v, (size_t)width, first && ct_v_truthy(*first),
                                blank && ct_v_truthy(*blank));
        }
        if (is_name(id, "replace")) {
            Value fn = ct_get_member(R, call, v, v_str("replace", 7));
            Value *args = ct_arena_alloc(&R->arena, (a.npos + 1) * sizeof *args);
            if (a.npos) memcpy(args, a.pos, a.npos * sizeof *args);
            args[a.npos] = (Value){.kind = V_OBJECT, .u.obj = a.kw};
            return ct_call_function(R, call, fn, args, a.npos + 1, env);
        }
    } else if (v.kind == V_OBJECT) {
        Value fn = ct_get_member(R, call, v, v_str(id->u.str.s, id->u.str.len));
        if (fn.kind == V_FUNC && fn.u.fn->kind == F_METHOD) {
            uint32_t n = a.npos + (a.kw->len > 0);
            Value *args = ct_arena_alloc(&R->arena, (n + 1) * sizeof *args);
            if (a.npos) memcpy(args, a.pos, a.npos * sizeof *args);
            if (a.kw->len) args[a.npos] = (Value){.kind = V_OBJECT, .u.obj = a.kw};
            return ct_call_function(R, call, fn, args, n, env);
        }
    }
    no_filter(R, call, id, v);
}

Value ct_apply_filter(Render *R, const Node *filter, Value operand, Env *env) {
    if (filter->kind == N_IDENT) return filter_plain(R, filter, filter, operand);
    return filter_call(R, filter, operand, env);
}

static int in_container(Render *R, const Node *at, Value x, Value seq, int *ok) {
    *ok = 1;
    if (seq.kind == V_ARRAY) {
        for (uint32_t i = 0; i < seq.u.arr->len; i++)
            if (ct_v_strict_eq(seq.u.arr->items[i], x)) return 1;
        return 0;
    }
    if (x.kind == V_STR && seq.kind == V_STR)
        return x.len == 0 || (seq.len >= x.len && memmem(seq.u.s, seq.len, x.u.s, x.len) != NULL);
    if (x.kind == V_STR && seq.kind == V_OBJECT)
        return ct_obj_find(seq.u.obj, x.u.s, x.len) != NULL;
    (void)R, (void)at;
    *ok = 0;
    return 0;
}

int ct_run_named_test(Render *R, const Node *at, const char *name, size_t len, Value a, Value *arg,
                      int *known) {
#define IS(s) (len == strlen(s) && memcmp(name, s, len) == 0)
    *known = 1;
    if (IS("boolean")) return a.kind == V_BOOL;
    if (IS("callable")) return a.kind == V_FUNC;
    if (IS("odd") || IS("even")) {
        if (a.kind != V_INT)
            ct_rt_fail(R, at, "test \"%.*s\" needs an integer, not %s", (int)len, name,
                       ct_v_kind_name(a));
        return (fmod(a.u.num, 2) != 0) == IS("odd");
    }
    if (IS("false")) return a.kind == V_BOOL && !a.b;
    if (IS("true")) return a.kind == V_BOOL && a.b;
    if (IS("none")) return a.kind == V_NULL;
    if (IS("string")) return a.kind == V_STR;
    if (IS("number")) return v_is_num(a);
    if (IS("integer")) return a.kind == V_INT;
    if (IS("float")) return a.kind == V_FLOAT;
    if (IS("iterable")) return (a.kind == V_ARRAY && !a.u.arr->is_tuple) || a.kind == V_STR;
    if (IS("mapping")) return a.kind == V_OBJECT;
    if (IS("sequence")) return a.kind == V_ARRAY || a.kind == V_OBJECT || a.kind == V_STR;
    if (IS("lower") || IS("upper")) {
        if (a.kind != V_STR) return 0;
        Value c = IS("lower") ? ct_str_lower(R, a) : ct_str_upper(R, a);
        return c.len == a.len && memcmp(c.u.s, a.u.s, a.len) == 0;
    }
    if (IS("defined")) return a.kind != V_UNDEF;
    if (IS("undefined")) return a.kind == V_UNDEF;
    if (IS("eq") || IS("equalto") || IS("sameas") || IS("ne") || IS("divisibleby") || IS("in")) {
        if (!arg) ct_rt_fail(R, at, "test \"%.*s\" needs an argument", (int)len, name);
        if (IS("ne")) return !ct_v_strict_eq(a, *arg);
        if (IS("divisibleby")) {
            if (!v_is_num(a) || !v_is_num(*arg))
                ct_rt_fail(R, at, "test \"divisibleby\" needs numbers");
            return arg->u.num != 0 && fmod(a.u.num, arg->u.num) == 0;
        }
        if (IS("in")) {
            int ok, r = in_container(R, at, a, *arg, &ok);
            if (!ok) ct_rt_fail(R, at, "test \"in\" cannot look in %s", ct_v_kind_name(*arg));
            return r;
        }
        return ct_v_strict_eq(a, *arg);
    }
#undef IS
    *known = 0;
    return 0;
}

Value ct_apply_test(Render *R, const Node *test, Value operand, Env *env) {
    const Node *id = test->u.test.name;
    Value arg = v_undef();
    if (test->u.test.has_args) {
        Args a = ct_eval_args(R, &test->u.test.args, env);
        if (a.npos != 1 || a.kw->len) ct_rt_fail(R, test, "a test takes one argument");
        arg = a.pos[0];
    }
    int known;
    int r = ct_run_named_test(R, test, id->u.str.s, id->u.str.len, operand,
                              test->u.test.has_args ? &arg : NULL, &known);
    if (!known)
        ct_rt_fail(R, test, "test \"%.*s\" is not supported", (int)id->u.str.len, id->u.str.s);
    return v_bool(test->flag ? !r : r);
}
