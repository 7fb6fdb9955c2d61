/* data/record.c — token-id lists from JSON lines and CSV cells, and record validation.
 *
 * Every record is checked in full before it can reach a batch: a value that is not an
 * integer or does not fit int32, an id outside [0, vocab_size), labels that are neither -100
 * nor a valid id, labels of another length, an empty row. The `why` strings name the field
 * and the index so the caller only has to prefix "file:line:". */
#include "data/internal.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IGNORE_INDEX (-100)

int row_reserve(Row *r, int n) {
    if (n <= r->cap) return 0;
    int nc = r->cap ? r->cap : 64;
    while (nc < n) nc = nc > INT32_MAX / 2 ? n : nc * 2;
    int32_t *ids = realloc(r->ids, (size_t)nc * sizeof *ids);
    if (!ids) return -1;
    r->ids = ids;
    int32_t *labels = realloc(r->labels, (size_t)nc * sizeof *labels);
    if (!labels) return -1;
    r->labels = labels;
    r->cap = nc;
    return 0;
}

void row_free(Row *r) {
    free(r->ids);
    free(r->labels);
    memset(r, 0, sizeof *r);
}

static int idlist_push(IdList *l, int32_t v) {
    if (l->n == l->cap) {
        int nc = l->cap ? l->cap * 2 : 256;
        int32_t *nv = realloc(l->v, (size_t)nc * sizeof *nv);
        if (!nv) return -1;
        l->v = nv;
        l->cap = nc;
    }
    l->v[l->n++] = v;
    return 0;
}

static bool is_ws(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Parses an integer at s[*i]; the character after it must be a delimiter in `delims` or end. */
static int parse_int(const char *s, size_t n, size_t *i, const char *delims, int index,
                     int32_t *out, char *why, size_t whylen) {
    size_t st = *i, k = *i;
    bool neg = false;
    if (k < n && s[k] == '-') neg = true, k++;
    int64_t v = 0;
    size_t digits = 0;
    while (k < n && s[k] >= '0' && s[k] <= '9') {
        if (v <= (int64_t)1 << 40) v = v * 10 + (s[k] - '0');
        k++, digits++;
    }
    if (digits == 0 || (k < n && !is_ws(s[k]) && !strchr(delims, s[k]))) {
        size_t e = k;
        while (e < n && !is_ws(s[e]) && !strchr(delims, s[e]) && e - st < 24) e++;
        snprintf(why, whylen, "value %d ('%.*s') is not an integer", index, (int)(e - st), s + st);
        return -1;
    }
    if (neg) v = -v;
    if (v < INT32_MIN || v > INT32_MAX) {
        snprintf(why, whylen, "value %d (%.*s) is out of int32 range", index, (int)(k - st),
                 s + st);
        return -1;
    }
    *out = (int32_t)v;
    *i = k;
    return 0;
}

int ids_parse_text(const char *s, size_t n, IdList *out, char *why, size_t whylen) {
    size_t i = 0;
    out->n = 0;
    while (i < n && is_ws(s[i])) i++;
    if (i < n && s[i] == '[') { /* JSON array */
        i++;
        while (i < n && is_ws(s[i])) i++;
        if (i < n && s[i] == ']') {
            i++;
        } else {
            for (;;) {
                int32_t v;
                if (parse_int(s, n, &i, ",]", out->n, &v, why, whylen) != 0) return -1;
                if (idlist_push(out, v) != 0) goto oom;
                while (i < n && is_ws(s[i])) i++;
                if (i < n && s[i] == ',') {
                    i++;
                    while (i < n && is_ws(s[i])) i++;
                    continue;
                }
                if (i < n && s[i] == ']') {
                    i++;
                    break;
                }
                snprintf(why, whylen, "malformed id array: expected ',' or ']' after value %d",
                         out->n - 1);
                return -1;
            }
        }
        while (i < n && is_ws(s[i])) i++;
        if (i != n) {
            snprintf(why, whylen, "unexpected text after the closing ']'");
            return -1;
        }
        return 0;
    }
    for (;;) { /* space-separated */
        while (i < n && is_ws(s[i])) i++;
        if (i == n) return 0;
        int32_t v;
        if (parse_int(s, n, &i, "", out->n, &v, why, whylen) != 0) return -1;
        if (idlist_push(out, v) != 0) goto oom;
    }
oom:
    snprintf(why, whylen, "out of memory");
    return -1;
}

/* JSON array of integers into dst (capacity already reserved). */
static int json_ids(const json_t *a, const char *name, int32_t *dst, char *why, size_t whylen) {
    size_t n = json_array_size(a);
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_array_get(a, i);
        if (!json_is_integer(v)) {
            snprintf(why, whylen, "%s[%zu] is not an integer", name, i);
            return -1;
        }
        json_int_t x = json_integer_value(v);
        if (x < INT32_MIN || x > INT32_MAX) {
            snprintf(why, whylen, "%s[%zu] = %lld is out of int32 range", name, i, (long long)x);
            return -1;
        }
        dst[i] = (int32_t)x;
    }
    return 0;
}

int row_from_json_object(const json_t *root, const char *input_field, const char *labels_field,
                         Row *row, char *why, size_t whylen) {
    if (!json_is_object(root)) {
        snprintf(why, whylen, "expected a JSON object, got another JSON value");
        return -1;
    }
    const json_t *ids = json_object_get(root, input_field);
    const json_t *labels = labels_field ? json_object_get(root, labels_field) : NULL;
    if (labels && json_is_null(labels)) labels = NULL;
    if (!ids) {
        snprintf(why, whylen, "missing field '%s'", input_field);
        return -1;
    }
    if (!json_is_array(ids)) {
        snprintf(why, whylen, "'%s' is not an array", input_field);
        return -1;
    }
    if (labels && !json_is_array(labels)) {
        snprintf(why, whylen, "'%s' is not an array", labels_field);
        return -1;
    }
    size_t n = json_array_size(ids);
    if (n > INT32_MAX / 2) {
        snprintf(why, whylen, "'%s' is too long", input_field);
        return -1;
    }
    if (labels && json_array_size(labels) != n) {
        snprintf(why, whylen, "%s has %zu ids but %s has %zu", labels_field,
                 json_array_size(labels), input_field, n);
        return -1;
    }
    if (row_reserve(row, (int)n) != 0) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    row->len = (int)n;
    if (json_ids(ids, input_field, row->ids, why, whylen) != 0) return -1;
    if (labels) {
        if (json_ids(labels, labels_field, row->labels, why, whylen) != 0) return -1;
    } else if (n) {
        memcpy(row->labels, row->ids, n * sizeof *row->ids);
    }
    return 0;
}

json_t *json_object_from_line(const char *line, size_t len, char *why, size_t whylen) {
    json_error_t jerr;
    json_t *root = json_loadb(line, len, 0, &jerr);
    if (!root) {
        snprintf(why, whylen, "invalid JSON at column %d: %s", jerr.column, jerr.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        snprintf(why, whylen, "expected a JSON object, got another JSON value");
        json_decref(root);
        return NULL;
    }
    return root;
}

int row_from_json_line(const char *line, size_t len, const char *input_field,
                       const char *labels_field, Row *row, char *why, size_t whylen) {
    json_t *root = json_object_from_line(line, len, why, whylen);
    if (!root) return -1;
    int rc = row_from_json_object(root, input_field, labels_field, row, why, whylen);
    json_decref(root);
    return rc;
}

int row_set(Row *row, const int32_t *ids, int n_ids, const int32_t *labels, int n_labels,
            const char *input_field, const char *labels_field, char *why, size_t whylen) {
    if (labels && n_labels != n_ids) {
        snprintf(why, whylen, "%s has %d ids but %s has %d", labels_field, n_labels, input_field,
                 n_ids);
        return -1;
    }
    if (row_reserve(row, n_ids) != 0) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    row->len = n_ids;
    if (n_ids) {
        memcpy(row->ids, ids, (size_t)n_ids * sizeof *ids);
        memcpy(row->labels, labels ? labels : ids, (size_t)n_ids * sizeof *ids);
    }
    return 0;
}

int row_validate(const Row *row, int vocab_size, const char *input_field, const char *labels_field,
                 char *why, size_t whylen) {
    if (row->len == 0) {
        snprintf(why, whylen, "'%s' is empty", input_field);
        return -1;
    }
    uint32_t hi = vocab_size > 0 ? (uint32_t)vocab_size : (uint32_t)INT32_MAX + 1u;
    for (int i = 0; i < row->len; i++) {
        if ((uint32_t)row->ids[i] >= hi) {
            snprintf(why, whylen, "%s[%d] = %d is outside [0, vocab_size=%d)", input_field, i,
                     row->ids[i], vocab_size);
            return -1;
        }
    }
    if (row->labels == row->ids) return 0;
    for (int i = 0; i < row->len; i++) {
        int32_t l = row->labels[i];
        if (l != IGNORE_INDEX && (uint32_t)l >= hi) {
            snprintf(why, whylen, "%s[%d] = %d is neither -100 nor in [0, vocab_size=%d)",
                     labels_field ? labels_field : "labels", i, l, vocab_size);
            return -1;
        }
    }
    return 0;
}
