/* data/tokenizer/config.c — tokenizer_config.json and special_tokens_map.json: the special
 * token strings (a string or an {"content": ...} object), their ids, add_bos_token /
 * add_eos_token, model_max_length and the chat template (a string, or a list of named
 * templates whose "default" entry is the template). Both files are optional; a file that is
 * present but malformed is an error naming it.
 *
 * The template may also be a file of its own, as transformers >= 4.47 saves it:
 * chat_template.jinja, which wins over tokenizer_config.json's (transformers' order), and
 * named ones in additional_chat_templates/NAME.jinja. */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/tokenizer/internal.h"

static const char *const TOKEN_KEYS[4] = {"bos_token", "eos_token", "pad_token", "unk_token"};

static const char *token_string(json_t *v) {
    if (json_is_string(v)) return json_string_value(v);
    if (json_is_object(v)) return json_string_value(json_object_get(v, "content"));
    return NULL;
}

static json_t *load_optional(const char *dir, const char *name, bool *missing, char *err,
                             size_t errlen) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    struct stat st;
    *missing = stat(path, &st) != 0;
    if (*missing) return NULL;
    json_error_t jerr;
    json_t *j = json_load_file(path, JSON_DECODE_INT_AS_REAL, &jerr);
    if (!j || !json_is_object(j)) {
        tok_err(err, errlen, "%s:%d:%d: %s", path, j ? 1 : jerr.line, j ? 1 : jerr.column,
                j ? "must be a JSON object" : jerr.text);
        json_decref(j);
        return NULL;
    }
    return j;
}

static int set_token(Tokenizer *t, int k, const char *s) {
    if (!s || t->special_strings[k]) return 0;
    if (!(t->special_strings[k] = tok_strndup(s, strlen(s)))) return -1;
    int32_t id = tokenizer_token_to_id(t, s, strlen(s));
    const char **str[4] = {&t->special.bos_token, &t->special.eos_token, &t->special.pad_token,
                           &t->special.unk_token};
    int32_t *ids[4] = {&t->special.bos_id, &t->special.eos_id, &t->special.pad_id,
                       &t->special.unk_id};
    *str[k] = t->special_strings[k];
    *ids[k] = id;
    return 0;
}

static int load_chat_template(Tokenizer *t, json_t *ct, const char *where, char *err,
                              size_t errlen) {
    if (!ct || json_is_null(ct)) return 0;
    if (json_is_string(ct)) {
        t->chat_template = tok_strndup(json_string_value(ct), json_string_length(ct));
        return t->chat_template ? 0 : (tok_err(err, errlen, "out of memory"), -1);
    }
    if (!json_is_array(ct)) {
        tok_err(err, errlen, "%s: chat_template must be a string or a list of {name, template}",
                where);
        return -1;
    }
    size_t n = json_array_size(ct);
    t->templates = calloc(n ? n : 1, sizeof *t->templates);
    if (!t->templates) return tok_err(err, errlen, "out of memory"), -1;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(ct, i);
        json_t *name = json_object_get(e, "name"), *text = json_object_get(e, "template");
        if (!json_is_string(name) || !json_is_string(text)) {
            tok_err(err, errlen, "%s: chat_template[%zu] needs string \"name\" and \"template\"",
                    where, i);
            return -1;
        }
        NamedTemplate *nt = &t->templates[t->n_templates++];
        nt->name = tok_strndup(json_string_value(name), json_string_length(name));
        nt->text = tok_strndup(json_string_value(text), json_string_length(text));
        if (!nt->name || !nt->text) return tok_err(err, errlen, "out of memory"), -1;
    }
    return 0;
}

#define TEMPLATE_FILE_MAX ((size_t)64 << 20)

/* The whole of a template file, NUL-terminated; NULL with err set. */
static char *read_template(const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) return tok_err(err, errlen, "%s: cannot open: %s", path, strerror(errno)), NULL;
    char *text = NULL;
    size_t len = 0, cap = 0, n;
    do {
        if (cap - len < 4096 + 1) {
            char *p = cap < TEMPLATE_FILE_MAX ? realloc(text, cap = cap ? 2 * cap : 65536) : NULL;
            if (!p) {
                tok_err(err, errlen, "%s: larger than %zu MB, or out of memory", path,
                        TEMPLATE_FILE_MAX >> 20);
                free(text);
                fclose(f);
                return NULL;
            }
            text = p;
        }
        n = fread(text + len, 1, 4096, f);
        len += n;
    } while (n == 4096);
    int failed = ferror(f) ? errno : 0;
    fclose(f);
    if (failed || memchr(text, '\0', len)) {
        tok_err(err, errlen, "%s: %s%s", path, failed ? "cannot read: " : "",
                failed ? strerror(failed) : "holds a NUL byte (not a Jinja template)");
        free(text);
        return NULL;
    }
    text[len] = '\0';
    return text;
}

static bool is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* additional_chat_templates/NAME.jinja, as named templates in name order. */
static int load_additional_templates(Tokenizer *t, const char *dir, char *err, size_t errlen) {
    char path[4096];
    snprintf(path, sizeof path, "%s/additional_chat_templates", dir);
    DIR *d = opendir(path);
    if (!d) return 0;
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    for (struct dirent *e; rc == 0 && (e = readdir(d)) != NULL;) {
        size_t len = strlen(e->d_name);
        if (len <= 6 || strcmp(e->d_name + len - 6, ".jinja") != 0 || e->d_name[0] == '.') continue;
        char **grown = n == cap ? realloc(names, (cap = cap ? 2 * cap : 8) * sizeof *names) : names;
        char *name = grown ? tok_strndup(e->d_name, len - 6) : NULL;
        if (grown) names = grown;
        if (!name)
            rc = (tok_err(err, errlen, "out of memory"), -1);
        else
            names[n++] = name;
    }
    closedir(d);
    if (rc == 0 && n > 0) {
        qsort(names, n, sizeof *names, by_name);
        NamedTemplate *grown = realloc(t->templates, (t->n_templates + n) * sizeof *grown);
        if (!grown)
            rc = (tok_err(err, errlen, "out of memory"), -1);
        else
            t->templates = grown;
    }
    for (size_t i = 0; i < n; i++) {
        if (rc == 0) {
            char file[4096 + 256];
            snprintf(file, sizeof file, "%s/%s.jinja", path, names[i]);
            char *text = read_template(file, err, errlen);
            if (!text)
                rc = -1;
            else
                t->templates[t->n_templates++] = (NamedTemplate){names[i], text};
        }
        if (rc != 0) free(names[i]);
    }
    free(names);
    return rc;
}

/* chat_template.jinja replaces tokenizer_config.json's template, named ones included. */
static int load_template_files(Tokenizer *t, const char *dir, char *err, size_t errlen) {
    char path[4096];
    snprintf(path, sizeof path, "%s/chat_template.jinja", dir);
    if (is_file(path)) {
        char *text = read_template(path, err, errlen);
        if (!text) return -1;
        free(t->chat_template);
        t->chat_template = text;
        for (size_t i = 0; i < t->n_templates; i++) {
            free(t->templates[i].name);
            free(t->templates[i].text);
        }
        t->n_templates = 0;
    }
    return load_additional_templates(t, dir, err, errlen);
}

int tokcfg_load(Tokenizer *t, const char *dir, char *err, size_t errlen) {
    bool missing_cfg, missing_map;
    json_t *cfg = load_optional(dir, "tokenizer_config.json", &missing_cfg, err, errlen);
    if (!cfg && !missing_cfg) return -1;
    json_t *map = load_optional(dir, "special_tokens_map.json", &missing_map, err, errlen);
    int rc = 0;
    if (!map && !missing_map) rc = -1;
    for (int k = 0; k < 4 && !rc; k++) {
        if (cfg) rc = set_token(t, k, token_string(json_object_get(cfg, TOKEN_KEYS[k])));
        if (!rc && map) rc = set_token(t, k, token_string(json_object_get(map, TOKEN_KEYS[k])));
        if (rc) tok_err(err, errlen, "out of memory");
    }
    if (!rc && cfg) {
        json_t *b = json_object_get(cfg, "add_bos_token"),
               *e = json_object_get(cfg, "add_eos_token");
        if (json_is_boolean(b)) t->special.add_bos_token = json_is_true(b);
        if (json_is_boolean(e)) t->special.add_eos_token = json_is_true(e);
        json_t *m = json_object_get(cfg, "model_max_length");
        if (json_is_number(m) && json_number_value(m) >= 0 && json_number_value(m) < 1e15)
            t->special.model_max_length = (int64_t)json_number_value(m);
        rc = load_chat_template(t, json_object_get(cfg, "chat_template"), "tokenizer_config.json",
                                err, errlen);
    }
    if (!rc) rc = load_template_files(t, dir, err, errlen);
    if (!rc) {
        t->special.chat_template = t->chat_template;
        if (!t->special.chat_template)
            t->special.chat_template = tokenizer_chat_template(t, "default");
    }
    json_decref(cfg);
    json_decref(map);
    return rc;
}

const TokenizerSpecial *tokenizer_special(const Tokenizer *t) {
    return &t->special;
}

const char *tokenizer_chat_template(const Tokenizer *t, const char *name) {
    for (size_t i = 0; i < t->n_templates; i++)
        if (!strcmp(t->templates[i].name, name)) return t->templates[i].text;
    return NULL;
}

void tokcfg_free(Tokenizer *t) {
    for (int k = 0; k < 4; k++) free(t->special_strings[k]);
    free(t->chat_template);
    for (size_t i = 0; i < t->n_templates; i++) {
        free(t->templates[i].name);
        free(t->templates[i].text);
    }
    free(t->templates);
}
