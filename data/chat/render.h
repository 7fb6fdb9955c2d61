/* data/chat/render.h — runtime values, scopes and the render state, shared by chat_render.c
 * (statements and expressions), chat_value.c (conversions, JSON, comparisons), chat_filters.c
 * (filters and tests) and chat_methods.c (attributes, methods and global functions).
 *
 * Values mirror the reference's runtime classes: numbers are doubles with an integer flag
 * (JavaScript numbers, so arithmetic, overflow and printing match), lists and dicts are
 * shared by reference (`==` on them is identity, as in JavaScript), and dicts keep insertion
 * order. Only namespaces are mutated after creation. */
#ifndef LORAFIT_CHAT_RENDER_H
#define LORAFIT_CHAT_RENDER_H

#include "data/chat/internal.h"

typedef enum {
    V_UNDEF,
    V_NULL,
    V_BOOL,
    V_INT,
    V_FLOAT,
    V_STR,
    V_ARRAY,  /* also tuples (VArray.is_tuple) */
    V_OBJECT, /* also keyword-argument bundles (VObject.is_kwargs) */
    V_NAMESPACE,
    V_FUNC,
} VKind;

typedef struct VArray VArray;
typedef struct VObject VObject;
typedef struct VFunc VFunc;
typedef struct Env Env;

typedef struct Value {
    uint8_t kind;
    uint8_t b;    /* V_BOOL */
    uint32_t len; /* V_STR: bytes */
    union {
        double num;    /* V_INT, V_FLOAT */
        const char *s; /* V_STR */
        VArray *arr;
        VObject *obj; /* V_OBJECT, V_NAMESPACE */
        VFunc *fn;
    } u;
} Value;

struct VArray {
    uint32_t len;
    uint8_t is_tuple;
    Value *items;
};

typedef struct OEntry {
    const char *key;
    uint32_t klen;
    Value v;
} OEntry;

struct VObject {
    uint32_t len, cap;
    uint8_t is_kwargs;
    OEntry *e;
};

typedef enum {
    F_NAMESPACE,
    F_RAISE_EXCEPTION,
    F_RANGE,
    F_STRFTIME_NOW,
    F_METHOD, /* a string or dict method bound to `self` */
    F_MACRO,
    F_CALLER, /* the body of a {% call %} block */
} FuncKind;

struct VFunc {
    uint8_t kind;
    uint8_t method; /* F_METHOD: a Method */
    Value self;
    const Node *node; /* F_MACRO, F_CALLER */
    Env *env;         /* F_CALLER: where the call block stands */
};

typedef enum {
    M_UPPER,
    M_LOWER,
    M_STRIP,
    M_TITLE,
    M_CAPITALIZE,
    M_RSTRIP,
    M_LSTRIP,
    M_STARTSWITH,
    M_ENDSWITH,
    M_SPLIT,
    M_REPLACE,
    M_GET, /* dict methods from here */
    M_ITEMS,
    M_KEYS,
    M_VALUES,
    M_DICTSORT,
} Method;

typedef struct EnvVar {
    int32_t sym;
    Value v;
} EnvVar;

struct Env {
    Env *parent;
    uint32_t len, cap;
    EnvVar *vars;
};

typedef struct Render {
    const ChatTemplate *t;
    Arena arena;
    Fail fail;
    char *out; /* malloc'd: becomes the result */
    size_t out_len, out_cap;
    uint64_t steps;
    int depth, calls;
    jmp_buf *loop_jump; /* innermost loop iteration, for break/continue */
} Render;

_Noreturn void ct_rt_fail(Render *R, const Node *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void ct_rt_step(Render *R, const Node *at, uint64_t n); /* charges n steps against the limit */

/* ---- chat_value.c ---- */
static inline Value v_undef(void) {
    return (Value){.kind = V_UNDEF};
}
static inline Value v_null(void) {
    return (Value){.kind = V_NULL};
}
static inline Value v_bool(int b) {
    return (Value){.kind = V_BOOL, .b = (uint8_t)(b != 0)};
}
static inline Value v_int(double d) {
    return (Value){.kind = V_INT, .u.num = d};
}
static inline Value v_float(double d) {
    return (Value){.kind = V_FLOAT, .u.num = d};
}
static inline Value v_str(const char *s, size_t len) {
    return (Value){.kind = V_STR, .len = (uint32_t)len, .u.s = s};
}
static inline int v_is_num(Value v) {
    return v.kind == V_INT || v.kind == V_FLOAT;
}
Value ct_v_strbuf(Render *R, StrBuf *b); /* the builder's bytes as a string value */
Value ct_v_array(Render *R, size_t n);   /* n undefined items to fill in */
Value ct_v_object(Render *R, uint32_t cap);
Value ct_v_namespace(Render *R, uint32_t cap);
Value ct_v_func(Render *R, FuncKind kind);
StrBuf ct_v_builder(Render *R);

OEntry *ct_obj_find(const VObject *o, const char *key, size_t klen);
void ct_obj_set(Render *R, VObject *o, const char *key, size_t klen, Value v);

int ct_v_truthy(Value v);
const char *ct_v_kind_name(Value v); /* "string", "list", ... for error messages */
/* The reference's RuntimeValue.toString(): what {{ v }} prints. */
void ct_v_to_output(Render *R, const Node *at, Value v, StrBuf *b);
/* JavaScript's String(v.value): used by + and ~ (3.0 prints "3", a dict "[object Map]"). */
void ct_v_to_js_string(Render *R, const Node *at, Value v, StrBuf *b);

typedef struct JsonOptions {
    int indent; /* 0: none */
    int ensure_ascii, sort_keys;
    const char *item_sep, *key_sep; /* NULL: the defaults */
    uint32_t item_sep_len, key_sep_len;
    int undefined_as_null; /* tojson: null; printing a list: undefined */
} JsonOptions;
void ct_v_to_json(Render *R, const Node *at, Value v, const JsonOptions *o, StrBuf *b);

int ct_v_loose_eq(Render *R, const Node *at, Value a, Value b); /* JavaScript == on the values */
int ct_v_strict_eq(Value a, Value b);                           /* JavaScript === */
/* Ordering for sort/dictsort; fails on values of different types. */
int ct_v_compare(Render *R, const Node *at, Value a, Value b, int case_sensitive);

Value ct_v_from_json(Render *R, const json_t *j, int depth);

/* ---- chat_string.c: string helpers shared by filters and methods ---- */
Value ct_str_upper(Render *R, Value s);
Value ct_str_lower(Render *R, Value s);
Value ct_str_trim(Value s, int start, int end);
Value ct_str_title(Render *R, Value s);
Value ct_str_capitalize(Render *R, Value s);
Value ct_str_replace(Render *R, const Node *at, Value s, Value from, Value to, double count);

/* ---- chat_methods.c ---- */
Value ct_get_member(Render *R, const Node *at, Value object, Value property);
Value ct_call_function(Render *R, const Node *at, Value fn, Value *args, uint32_t nargs, Env *env);
/* Evaluated call arguments, as the reference's evaluateArguments returns them (functions
 * get them as one list: the positional values, then the keywords as a kwargs dict). */
typedef struct Args {
    Value *pos;
    uint32_t npos;
    VObject *kw; /* never NULL */
} Args;
/* Positional argument i if given (i may be -1 for none), else keyword `name`, else NULL. */
const Value *ct_args_get(const Args *a, int i, const char *name);
int ct_v_is_kwargs(Value v);

typedef int (*SortCmp)(Render *R, const Node *at, const void *ctx, Value a, Value b);
void ct_sort_values(Render *R, const Node *at, Value *v, size_t n, SortCmp cmp, const void *ctx);

/* ---- chat_filters.c ---- */
Value ct_apply_filter(Render *R, const Node *filter, Value operand, Env *env);
Value ct_apply_test(Render *R, const Node *test, Value operand, Env *env);
/* Runs a named test (for selectattr): *known = 0 when there is no such test. */
int ct_run_named_test(Render *R, const Node *at, const char *name, size_t len, Value a, Value *arg,
                      int *known);

/* ---- chat_render.c (statements, scopes) and chat_eval.c (expressions) ---- */
#define CT_MAX_EVAL_DEPTH 1000 /* nested evaluations, macro bodies included */
Env *ct_env_new(Render *R, Env *parent);
void ct_env_set(Render *R, Env *e, int32_t sym, Value v); /* in e itself */
Value ct_env_get(const Env *e, int32_t sym);              /* e, then its parents */
/* The argument list a function receives: positional values, then kwargs if any (always_kw:
 * even when empty, as call blocks pass them). */
Value *ct_call_list(Render *R, const Args *a, int always_kw, uint32_t *n);
_Noreturn void ct_not_callable(Render *R, const Node *at, const Node *callee, Value fn);
Value ct_eval_expr(Render *R, const Node *n, Env *env);
Args ct_eval_args(Render *R, const NodeList *args, Env *env);
Value ct_invoke_macro(Render *R, const Node *at, VFunc *fn, Value *args, uint32_t nargs, Env *env);

#endif
