/* trainer/config/emit.c — one value as YAML text, config.resolved.yaml and the
 * resume-compatibility fingerprint.
 *
 * Both outputs are built from config_key_path/config_format_value, so they cover every key
 * the schema in config_schema.c knows, and a value prints the same way in both. */
#include "trainer/config/config.h"
#include "trainer/config/internal.h"
#include "trainer/store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VALUE_MAX (1 << 20) /* an inline data.chat_template can be long */

/* ---- one value as YAML text ------------------------------------------------------------- */

/* Appends s to buf as a YAML double-quoted scalar. */
static int put_quoted(char *buf, size_t len, size_t *pos, const char *s) {
    if (*pos < len) buf[(*pos)++] = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\')
            snprintf(esc, sizeof esc, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            snprintf(esc, sizeof esc, "\\x%02x", *p);
        else
            snprintf(esc, sizeof esc, "%c", *p);
        for (char *e = esc; *e; e++)
            if (*pos < len)
                buf[(*pos)++] = *e;
            else
                return -1;
    }
    if (*pos < len) buf[(*pos)++] = '"';
    return *pos < len ? 0 : -1;
}

int config_format_value(const Config *c, int i, char *buf, size_t len) {
    if (i < 0 || i >= config_n_keys || len == 0) return -1;
    const Key *k = &config_keys[i];
    Config *cc = (Config *)c; /* FIELD casts away const; nothing is written */
    int n = 0;
    switch (k->type) {
    case K_STR:
    case K_PATH: {
        const char *s = *FIELD(cc, k, char *);
        if (!s)
            n = snprintf(buf, len, "null");
        else {
            size_t pos = 0;
            if (put_quoted(buf, len, &pos, s) != 0) return -1;
            buf[pos] = '\0';
            n = (int)pos;
        }
        break;
    }
    case K_INT:
        if (k->nullable && *FIELD(cc, k, int64_t) == 0)
            n = snprintf(buf, len, "null");
        else
            n = snprintf(buf, len, "%lld", (long long)*FIELD(cc, k, int64_t));
        break;
    case K_FLOAT:
        n = snprintf(buf, len, "%.17g", *FIELD(cc, k, double));
        break;
    case K_BOOL:
        n = snprintf(buf, len, "%s", *FIELD(cc, k, bool) ? "true" : "false");
        break;
    case K_ENUM:
        n = snprintf(buf, len, "%s", k->names[*FIELD(cc, k, int)]);
        break;
    case K_JSON: /* JSON is a YAML flow mapping: it reads back as the same mapping */
        n = snprintf(buf, len, "%s", *FIELD(cc, k, char *) ? *FIELD(cc, k, char *) : "null");
        break;
    case K_PATHS:
    case K_MODULES: {
        const ConfigList *l = FIELD(cc, k, ConfigList);
        if (l->n == 0) {
            n = snprintf(buf, len, "null");
            break;
        }
        size_t pos = 0;
        for (int j = 0; j < l->n; j++) {
            const char *sep = j ? ", " : "[";
            for (; *sep; sep++)
                if (pos < len) buf[pos++] = *sep;
            if (put_quoted(buf, len, &pos, l->items[j]) != 0) return -1;
        }
        if (pos + 1 >= len) return -1;
        buf[pos++] = ']';
        buf[pos] = '\0';
        n = (int)pos;
        break;
    }
    }
    return n >= 0 && (size_t)n < len ? n : -1;
}

/* ---- config.resolved.yaml ---------------------------------------------------------------- */

/* A growable text buffer; on allocation failure it stays failed and later appends no-op. */
typedef struct Text {
    char *s;
    size_t len, cap;
    int failed;
} Text;

static void text_put(Text *t, const char *a, size_t n) {
    if (t->failed) return;
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 1024;
        while (t->len + n + 1 > cap) cap *= 2;
        char *grown = realloc(t->s, cap);
        if (!grown) {
            t->failed = 1;
            return;
        }
        t->s = grown;
        t->cap = cap;
    }
    memcpy(t->s + t->len, a, n);
    t->len += n;
    t->s[t->len] = '\0';
}

static void text_str(Text *t, const char *a) {
    text_put(t, a, strlen(a));
}

int config_write_resolved(const Config *c, const char *path, char *err, size_t errlen) {
    Text t = {0};
    char *value = malloc(VALUE_MAX);
    char section[32] = "";
    text_str(&t, "# Written by lorafit: every key with its effective value.\n");
    for (int i = 0; value && config_key_path(i); i++) {
        const char *kp = config_key_path(i), *dot = strchr(kp, '.');
        if (strncmp(kp, section, (size_t)(dot - kp)) != 0 || section[dot - kp] != '\0') {
            snprintf(section, sizeof section, "%.*s", (int)(dot - kp), kp);
            text_str(&t, section);
            text_str(&t, ":\n");
        }
        if (config_format_value(c, i, value, VALUE_MAX) < 0) {
            snprintf(err, errlen, "%s: %s: value too long to write", path, kp);
            free(value);
            free(t.s);
            return -1;
        }
        text_str(&t, "  ");
        text_str(&t, dot + 1);
        text_str(&t, ": ");
        text_str(&t, value);
        text_str(&t, "\n");
    }
    int rc = -1;
    if (!value || t.failed)
        snprintf(err, errlen, "%s: out of memory", path);
    else
        rc = fsio_write_file(path, t.s, t.len, err, errlen);
    free(value);
    free(t.s);
    return rc;
}

/* Keys excluded from the result fingerprint (see config.h for why). */
static int affects_result(const char *kp) {
    static const char *const skip[] = {"data.valid",         "train.max_steps",
                                       "train.threads",      "train.gradient_checkpointing",
                                       "train.on_nonfinite", "train.max_nonfinite_skips"};
    for (size_t i = 0; i < sizeof skip / sizeof skip[0]; i++)
        if (!strcmp(kp, skip[i])) return 0;
    return strncmp(kp, "eval.", 5) != 0 && strncmp(kp, "log.", 4) != 0 &&
           strncmp(kp, "output.", 7) != 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

char *config_result_keys(const Config *c) {
    int n = 0;
    while (config_key_path(n)) n++;
    char **lines = calloc((size_t)n, sizeof *lines);
    char *value = malloc(VALUE_MAX);
    int m = 0, ok = lines && value;
    for (int i = 0; ok && i < n; i++) {
        const char *kp = config_key_path(i);
        if (!affects_result(kp)) continue;
        if (config_format_value(c, i, value, VALUE_MAX) < 0) {
            ok = 0;
            break;
        }
        size_t len = strlen(kp) + strlen(value) + 3;
        lines[m] = malloc(len);
        if (!lines[m]) {
            ok = 0;
            break;
        }
        snprintf(lines[m++], len, "%s=%s\n", kp, value);
    }
    Text t = {0};
    if (ok) {
        qsort(lines, (size_t)m, sizeof *lines, cmp_str);
        for (int i = 0; i < m; i++) text_str(&t, lines[i]);
    }
    for (int i = 0; i < m; i++) free(lines[i]);
    free(lines);
    free(value);
    if (!ok || t.failed) {
        free(t.s);
        return NULL;
    }
    return t.s;
}

const char *config_result_value(const char *text, const char *kp, size_t *len) {
    size_t kl = strlen(kp);
    for (const char *line = text; line && *line;) {
        const char *nl = strchr(line, '\n');
        size_t ll = nl ? (size_t)(nl - line) : strlen(line);
        if (ll > kl && !strncmp(line, kp, kl) && line[kl] == '=') {
            *len = ll - kl - 1;
            return line + kl + 1;
        }
        line = nl ? nl + 1 : NULL;
    }
    return NULL;
}

/* Appends to out each key of a whose value differs in b (both) or that b lacks (!both). */
static int diff_one_way(const char *a, const char *b, int both, char *out, size_t outlen,
                        size_t *pos) {
    int count = 0;
    for (const char *line = a; line && *line;) {
        const char *nl = strchr(line, '\n');
        size_t ll = nl ? (size_t)(nl - line) : strlen(line);
        const char *eq = memchr(line, '=', ll);
        if (eq && eq > line) {
            char kp[128];
            snprintf(kp, sizeof kp, "%.*s", (int)(eq - line), line);
            size_t blen, alen = ll - (size_t)(eq - line) - 1;
            const char *bv = config_result_value(b, kp, &blen);
            int differs =
                both ? (bv && (blen != alen || memcmp(bv, eq + 1, alen) != 0)) || !bv : !bv;
            if (differs) {
                if (out && outlen && *pos < outlen)
                    *pos +=
                        (size_t)snprintf(out + *pos, outlen - *pos, "%s%s", *pos ? ", " : "", kp);
                if (*pos >= outlen) *pos = outlen;
                count++;
            }
        }
        line = nl ? nl + 1 : NULL;
    }
    return count;
}

/* The fingerprint lines a checkpoint written before key kp existed stands for: what that
 * lorafit did, which is the key's default (new keys default to the old behaviour), except
 * train.precision, whose fingerprint holds the resolved value: before it, every product was
 * f32. Appended to text for each result key that text lacks and current has. NULL when out
 * of memory. */
static char *with_keys_before_they_existed(const char *text, const char *current) {
    Config d;
    char *value = malloc(VALUE_MAX);
    Text t = {0};
    if (!value || config_defaults(&d) != 0) {
        free(value);
        return NULL;
    }
    text_str(&t, text);
    for (int i = 0; config_key_path(i); i++) {
        const char *kp = config_key_path(i);
        size_t len;
        if (!affects_result(kp) || config_result_value(text, kp, &len) ||
            !config_result_value(current, kp, &len))
            continue;
        if (!strcmp(kp, "train.precision"))
            snprintf(value, VALUE_MAX, "f32");
        else if (config_format_value(&d, i, value, VALUE_MAX) < 0)
            t.failed = 1;
        text_str(&t, kp);
        text_str(&t, "=");
        text_str(&t, value);
        text_str(&t, "\n");
    }
    config_free(&d);
    free(value);
    if (t.failed) {
        free(t.s);
        return NULL;
    }
    return t.s;
}

int config_diff_result_keys(const char *saved, const char *current, char *out, size_t outlen) {
    size_t pos = 0;
    if (out && outlen) out[0] = '\0';
    char *old = with_keys_before_they_existed(saved ? saved : "", current ? current : "");
    if (old) saved = old;
    /* Keys of saved that differ or vanished, then keys only current has. */
    int n = diff_one_way(saved ? saved : "", current ? current : "", 1, out, outlen, &pos);
    n += diff_one_way(current ? current : "", saved ? saved : "", 0, out, outlen, &pos);
    free(old);
    return n;
}
