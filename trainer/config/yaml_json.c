/* trainer/config/yaml_json.c — a YAML node as a JSON value, for keys whose value is free-form
 * (data.chat_template_kwargs: whatever variables a chat template reads).
 *
 * Plain scalars are typed as everywhere else in the config (true/false, null, integers,
 * numbers), quoted ones are strings, so `enable_thinking: false` is the boolean false and
 * `mode: "false"` the string. Mapping keys are strings. Nesting deeper than MAX_DEPTH is an
 * error rather than a deep recursion. */
#include "trainer/config/internal.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <yaml.h>

#define MAX_DEPTH 32

static json_t *scalar_json(const yaml_node_t *n) {
    const char *s = (const char *)n->data.scalar.value;
    if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return json_string(s);
    bool b;
    int64_t i;
    double d;
    if (config_is_null_text(s)) return json_null();
    if (config_parse_bool(s, &b) == 0) return json_boolean(b);
    if (config_parse_int(s, &i) == 0) return json_integer((json_int_t)i);
    if (config_parse_float(s, &d) == 0 && isfinite(d)) return json_real(d);
    return json_string(s);
}

static json_t *node_json(yaml_document_t *doc, const yaml_node_t *n, int depth, char *why,
                         size_t whylen) {
    if (!n) return json_null();
    if (depth > MAX_DEPTH) {
        snprintf(why, whylen, "nested deeper than %d levels", MAX_DEPTH);
        return NULL;
    }
    if (n->type == YAML_SCALAR_NODE) {
        json_t *v = scalar_json(n);
        if (!v) snprintf(why, whylen, "a string that is not valid UTF-8");
        return v;
    }
    json_t *out = n->type == YAML_SEQUENCE_NODE ? json_array() : json_object();
    if (!out) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    if (n->type == YAML_SEQUENCE_NODE) {
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
             it++) {
            json_t *v = node_json(doc, yaml_document_get_node(doc, *it), depth + 1, why, whylen);
            if (!v || json_array_append_new(out, v) != 0) goto fail;
        }
        return out;
    }
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        const yaml_node_t *k = yaml_document_get_node(doc, p->key);
        if (!k || k->type != YAML_SCALAR_NODE) {
            snprintf(why, whylen, "a key that is not a string");
            goto fail;
        }
        json_t *v = node_json(doc, yaml_document_get_node(doc, p->value), depth + 1, why, whylen);
        if (!v || json_object_set_new(out, (const char *)k->data.scalar.value, v) != 0) {
            if (v) snprintf(why, whylen, "a key that is not valid UTF-8");
            goto fail;
        }
    }
    return out;
fail:
    json_decref(out);
    return NULL;
}

char *config_yaml_mapping_json(yaml_document_t *doc, const yaml_node_t *n, char *why,
                               size_t whylen) {
    if (n->type != YAML_MAPPING_NODE) {
        snprintf(why, whylen, "expected a mapping (key: value lines, or {key: value})");
        return NULL;
    }
    json_t *v = node_json(doc, n, 0, why, whylen);
    char *text = v ? json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;
    if (v && !text) snprintf(why, whylen, "out of memory");
    json_decref(v);
    return text;
}
