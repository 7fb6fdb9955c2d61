/* trainer/store/gguf_values.c — the typed reads of a GGUF key-value (see gguf_read.h) and
 * the names of GGUF value types and ggml tensor types for messages. gguf_open has checked
 * every value's bytes against the file, so these only read. */
#include <string.h>

#include "trainer/store/gguf_read.h"

size_t gguf_value_size(int type) {
    switch (type) {
    case GGUF_TYPE_UINT8:
    case GGUF_TYPE_INT8:
    case GGUF_TYPE_BOOL:
        return 1;
    case GGUF_TYPE_UINT16:
    case GGUF_TYPE_INT16:
        return 2;
    case GGUF_TYPE_UINT32:
    case GGUF_TYPE_INT32:
    case GGUF_TYPE_FLOAT32:
        return 4;
    case GGUF_TYPE_UINT64:
    case GGUF_TYPE_INT64:
    case GGUF_TYPE_FLOAT64:
        return 8;
    }
    return 0;
}

const char *gguf_type_name(int type) {
    static const char *const names[] = {"u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
                                        "bool", "string", "array", "u64", "i64", "f64"};
    return type >= 0 && type <= GGUF_TYPE_FLOAT64 ? names[type] : "?";
}

const char *gguf_ggml_type_name_any(int type) {
    static const char *const names[] = {
        [9] = "Q8_1",   [15] = "Q8_K",   [16] = "IQ2_XXS", [17] = "IQ2_XS", [18] = "IQ3_XXS",
        [19] = "IQ1_S", [20] = "IQ4_NL", [21] = "IQ3_S",   [22] = "IQ2_S",  [23] = "IQ4_XS",
        [24] = "I8",    [25] = "I16",    [26] = "I32",     [27] = "I64",    [28] = "F64",
        [29] = "IQ1_M", [34] = "TQ1_0",  [35] = "TQ2_0",   [39] = "MXFP4",  [40] = "NVFP4",
        [41] = "Q1_0",  [42] = "Q2_0"};
    if (ggml_type_name(type)) return ggml_type_name(type);
    return type >= 0 && type < (int)(sizeof names / sizeof names[0]) ? names[type] : NULL;
}

/* ---- values -------------------------------------------------------------------------- */

static bool int_at(GgufType t, const uint8_t *p, int64_t *out) {
    uint8_t b[8];
    memcpy(b, p, gguf_value_size(t) ? gguf_value_size(t) : 1);
    switch (t) {
    case GGUF_TYPE_UINT8:
    case GGUF_TYPE_BOOL:
        *out = b[0];
        return true;
    case GGUF_TYPE_INT8:
        *out = (int8_t)b[0];
        return true;
    case GGUF_TYPE_UINT16: {
        uint16_t v;
        memcpy(&v, b, 2);
        *out = v;
        return true;
    }
    case GGUF_TYPE_INT16: {
        int16_t v;
        memcpy(&v, b, 2);
        *out = v;
        return true;
    }
    case GGUF_TYPE_UINT32: {
        uint32_t v;
        memcpy(&v, b, 4);
        *out = v;
        return true;
    }
    case GGUF_TYPE_INT32: {
        int32_t v;
        memcpy(&v, b, 4);
        *out = v;
        return true;
    }
    case GGUF_TYPE_UINT64: {
        uint64_t v;
        memcpy(&v, b, 8);
        if (v > INT64_MAX) return false;
        *out = (int64_t)v;
        return true;
    }
    case GGUF_TYPE_INT64:
        memcpy(out, b, 8);
        return true;
    default:
        return false;
    }
}

static bool float_at(GgufType t, const uint8_t *p, double *out) {
    if (t == GGUF_TYPE_FLOAT32) {
        float v;
        memcpy(&v, p, 4);
        *out = v;
        return true;
    }
    if (t == GGUF_TYPE_FLOAT64) {
        memcpy(out, p, 8);
        return true;
    }
    return false;
}

static void str_at(const uint8_t *p, const char **s, size_t *len) {
    uint64_t n;
    memcpy(&n, p, 8);
    *s = (const char *)p + 8;
    *len = (size_t)n;
}

bool gguf_kv_int(const GgufKv *kv, int64_t *out) {
    return kv && kv->type != GGUF_TYPE_ARRAY && int_at(kv->type, kv->val, out);
}

bool gguf_kv_float(const GgufKv *kv, double *out) {
    return kv && float_at(kv->type, kv->val, out);
}

bool gguf_kv_str(const GgufKv *kv, const char **s, size_t *len) {
    if (!kv || kv->type != GGUF_TYPE_STRING) return false;
    str_at(kv->val, s, len);
    return true;
}

static bool elem(const GgufKv *kv, uint64_t i) {
    return kv && kv->type == GGUF_TYPE_ARRAY && i < kv->n;
}

bool gguf_elem_int(const GgufKv *kv, uint64_t i, int64_t *out) {
    if (!elem(kv, i) || kv->arr_type == GGUF_TYPE_STRING) return false;
    return int_at(kv->arr_type, kv->val + i * gguf_value_size(kv->arr_type), out);
}

bool gguf_elem_float(const GgufKv *kv, uint64_t i, double *out) {
    if (!elem(kv, i) || kv->arr_type == GGUF_TYPE_STRING) return false;
    return float_at(kv->arr_type, kv->val + i * gguf_value_size(kv->arr_type), out);
}

bool gguf_elem_str(const GgufKv *kv, uint64_t i, const char **s, size_t *len) {
    if (!elem(kv, i) || kv->arr_type != GGUF_TYPE_STRING) return false;
    str_at(kv->val + kv->str_at[i], s, len);
    return true;
}
