/* data/text.c — text records into token rows: the text, completion, alpaca and chat formats.
 *
 * What each format yields (ids, and labels with -100 where there is no loss):
 *   text        encode(text, special tokens) — e.g. BOS for Llama-style tokenizers — then EOS
 *               unless the tokens already end with it (add_eos: false: no EOS); loss on all.
 *   completion  encode(prompt, special tokens) + encode(completion, none) + EOS; the prompt
 *               part is masked unless train_on_prompt.
 *   alpaca      a completion whose prompt is "### Instruction:\n{instruction}\n\n", then
 *               "### Input:\n{input}\n\n" when input is not empty, then "### Response:\n",
 *               and whose completion is the output.
 *   chat        the chat template rendered over the messages (add_generation_prompt false)
 *               and encoded without special tokens (the template writes BOS itself). Loss
 *               only on assistant turns: for assistant message i the span runs from the end
 *               of render(messages[0..i), add_generation_prompt true) to the end of
 *               render(messages[0..i]) — its content and what ends the turn — as TRL and
 *               axolotl find it. Each prefix must render as a prefix of the whole
 *               conversation, or the record is refused (the template rewrites history).
 *               A span's token boundary is the number of leading ids that the prefix's
 *               encoding shares with the whole's. */
#include "data/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IGNORE_INDEX (-100)

const char *data_format_name(DataFormat f) {
    static const char *const names[] = {"auto",   "tokens", "text",      "completion",
                                        "alpaca", "chat",   "preference"};
    return (unsigned)f <= DATA_FORMAT_PREFERENCE ? names[f] : "?";
}

DataFormat text_detect_format(const json_t *obj, const DataOptions *o) {
    if (!json_is_object(obj)) return DATA_FORMAT_AUTO;
    if (o->preference) return DATA_FORMAT_PREFERENCE;
    if (o->input_field && json_object_get(obj, o->input_field)) return DATA_FORMAT_TOKENS;
    if (o->messages_field && json_object_get(obj, o->messages_field)) return DATA_FORMAT_CHAT;
    if (json_object_get(obj, "instruction") && json_object_get(obj, "output"))
        return DATA_FORMAT_ALPACA;
    if (o->prompt_field && o->completion_field && json_object_get(obj, o->prompt_field) &&
        json_object_get(obj, o->completion_field))
        return DATA_FORMAT_COMPLETION;
    if (o->text_field && json_object_get(obj, o->text_field)) return DATA_FORMAT_TEXT;
    return DATA_FORMAT_AUTO;
}

int text_check_options(const DataOptions *o, DataFormat f, char *err, size_t errlen) {
    if (f == DATA_FORMAT_TOKENS || f == DATA_FORMAT_PREFERENCE) return 0; /* pairs.c checks */
    const char *name = data_format_name(f);
    if (!o->tokenizer) {
        snprintf(err, errlen, "data.format %s needs a tokenizer (data.tokenizer or model.path)",
                 name);
        return -1;
    }
    const char *missing = f == DATA_FORMAT_TEXT && !o->text_field           ? "data.text_field"
                          : f == DATA_FORMAT_COMPLETION && !o->prompt_field ? "data.prompt_field"
                          : f == DATA_FORMAT_COMPLETION && !o->completion_field
                              ? "data.completion_field"
                          : f == DATA_FORMAT_CHAT && !o->messages_field ? "data.messages_field"
                                                                        : NULL;
    if (missing) {
        snprintf(err, errlen, "data.format %s: %s must be set", name, missing);
        return -1;
    }
    if (f == DATA_FORMAT_CHAT && !o->chat_template) {
        snprintf(err, errlen,
                 "data.format chat needs a chat template: the tokenizer's tokenizer_config.json "
                 "has no chat_template (set data.chat_template)");
        return -1;
    }
    if (f != DATA_FORMAT_CHAT && f != DATA_FORMAT_PREFERENCE && o->add_eos &&
        tokenizer_special(o->tokenizer)->eos_id < 0) {
        snprintf(err, errlen,
                 "data.add_eos: the tokenizer has no EOS token (no eos_token in "
                 "tokenizer_config.json); set data.add_eos: false");
        return -1;
    }
    return 0;
}

int text_state_init(TextState *ts) {
    memset(ts, 0, sizeof *ts);
    ts->scratch = tokenizer_scratch_new();
    return ts->scratch ? 0 : -1;
}

void text_state_free(TextState *ts) {
    tokenizer_scratch_free(ts->scratch);
    tokenizer_ids_free(&ts->a);
    tokenizer_ids_free(&ts->b);
    memset(ts, 0, sizeof *ts);
}

/* A string field: 0 with *s, -1 with `why` (missing, or not a string). optional: missing = "". */
static int string_field(const json_t *obj, const char *name, bool optional, const char **s,
                        size_t *n, char *why, size_t whylen) {
    const json_t *v = json_object_get(obj, name);
    if (!v || (optional && json_is_null(v))) {
        if (optional) {
            *s = "", *n = 0;
            return 0;
        }
        snprintf(why, whylen, "missing field '%s'", name);
        return -1;
    }
    if (!json_is_string(v)) {
        snprintf(why, whylen, "'%s' is not a string", name);
        return -1;
    }
    *s = json_string_value(v);
    *n = json_string_length(v);
    return 0;
}

static int encode(const DataOptions *o, TextState *ts, const char *s, size_t n, bool special,
                  TokenizerIds *out, const char *what, char *why, size_t whylen) {
    char terr[300];
    if (tokenizer_encode(o->tokenizer, ts->scratch, s, n, special, out, terr, sizeof terr) != 0) {
        snprintf(why, whylen, "'%s': %s", what, terr);
        return -1;
    }
    return 0;
}

/* Row = ids (masked below `prompt_len` unless train_on_prompt), plus EOS when asked. */
static int finish_row(const DataOptions *o, const TokenizerIds *ids, size_t prompt_len,
                      bool eos_if_missing, Row *row, char *why, size_t whylen) {
    int32_t eos = tokenizer_special(o->tokenizer)->eos_id;
    bool add = eos_if_missing && o->add_eos && (ids->n == 0 || ids->ids[ids->n - 1] != eos);
    size_t n = ids->n + (add ? 1 : 0);
    if (n > INT32_MAX / 2 || row_reserve(row, (int)n) != 0) {
        snprintf(why, whylen, n > INT32_MAX / 2 ? "record too long" : "out of memory");
        return -1;
    }
    row->len = (int)n;
    if (ids->n) memcpy(row->ids, ids->ids, ids->n * sizeof *ids->ids);
    if (add) row->ids[ids->n] = eos;
    for (size_t i = 0; i < n; i++)
        row->labels[i] = i < prompt_len && !o->train_on_prompt ? IGNORE_INDEX : row->ids[i];
    return 0;
}

static int text_record(const DataOptions *o, TextState *ts, const json_t *obj, Row *row, char *why,
                       size_t whylen) {
    const char *s;
    size_t n;
    if (string_field(obj, o->text_field, false, &s, &n, why, whylen) != 0) return -1;
    ts->a.n = 0;
    if (encode(o, ts, s, n, true, &ts->a, o->text_field, why, whylen) != 0) return -1;
    return finish_row(o, &ts->a, 0, true, row, why, whylen);
}

/* prompt (with special tokens) + completion (without), masked prompt, EOS. */
static int completion_row(const DataOptions *o, TextState *ts, const char *p, size_t pn,
                          const char *pname, const char *c, size_t cn, const char *cname, Row *row,
                          char *why, size_t whylen) {
    ts->a.n = 0;
    if (encode(o, ts, p, pn, true, &ts->a, pname, why, whylen) != 0) return -1;
    size_t prompt_len = ts->a.n;
    if (encode(o, ts, c, cn, false, &ts->a, cname, why, whylen) != 0) return -1;
    return finish_row(o, &ts->a, prompt_len, true, row, why, whylen);
}

static int completion_record(const DataOptions *o, TextState *ts, const json_t *obj, Row *row,
                             char *why, size_t whylen) {
    const char *p, *c;
    size_t pn, cn;
    if (string_field(obj, o->prompt_field, false, &p, &pn, why, whylen) != 0 ||
        string_field(obj, o->completion_field, false, &c, &cn, why, whylen) != 0)
        return -1;
    return completion_row(o, ts, p, pn, o->prompt_field, c, cn, o->completion_field, row, why,
                          whylen);
}

static int append(char **buf, size_t *n, size_t *cap, const char *s, size_t len) {
    if (*n + len + 1 > *cap) {
        size_t nc = *cap ? *cap : 256;
        while (nc < *n + len + 1) nc *= 2;
        char *nb = realloc(*buf, nc);
        if (!nb) return -1;
        *buf = nb;
        *cap = nc;
    }
    memcpy(*buf + *n, s, len);
    *n += len;
    (*buf)[*n] = '\0';
    return 0;
}

static int alpaca_record(const DataOptions *o, TextState *ts, const json_t *obj, Row *row,
                         char *why, size_t whylen) {
    const char *ins, *in, *out;
    size_t ins_n, in_n, out_n;
    if (string_field(obj, "instruction", false, &ins, &ins_n, why, whylen) != 0 ||
        string_field(obj, "input", true, &in, &in_n, why, whylen) != 0 ||
        string_field(obj, "output", false, &out, &out_n, why, whylen) != 0)
        return -1;
    char *p = NULL;
    size_t pn = 0, cap = 0;
    int ok = append(&p, &pn, &cap, "### Instruction:\n", 17) == 0 &&
             append(&p, &pn, &cap, ins, ins_n) == 0 && append(&p, &pn, &cap, "\n\n", 2) == 0;
    if (ok && in_n > 0)
        ok = append(&p, &pn, &cap, "### Input:\n", 11) == 0 &&
             append(&p, &pn, &cap, in, in_n) == 0 && append(&p, &pn, &cap, "\n\n", 2) == 0;
    if (ok) ok = append(&p, &pn, &cap, "### Response:\n", 14) == 0;
    int rc = -1;
    if (!ok)
        snprintf(why, whylen, "out of memory");
    else
        rc = completion_row(o, ts, p, pn, "instruction", out, out_n, "output", row, why, whylen);
    free(p);
    return rc;
}

/* Renders messages[0..n) with add_generation_prompt agp (and the record's tools, or NULL). */
static char *render_prefix(const DataOptions *o, const json_t *messages, const json_t *tools,
                           size_t n, bool agp, size_t *len, char *why, size_t whylen) {
    json_t *ctx = o->chat_context ? json_copy((json_t *)o->chat_context) : json_object();
    json_t *part = json_array();
    char *out = NULL;
    if (!ctx || !part) {
        snprintf(why, whylen, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) json_array_append(part, json_array_get(messages, i));
    json_object_set(ctx, "messages", part);
    if (tools) json_object_set(ctx, "tools", (json_t *)tools);
    json_object_set_new(ctx, "add_generation_prompt", json_boolean(agp));
    char terr[400];
    out = chat_template_render(o->chat_template, ctx, len, terr, sizeof terr);
    if (!out) snprintf(why, whylen, "%s", terr);
done:
    json_decref(part);
    json_decref(ctx);
    return out;
}

/* The number of leading ids of `whole` that encode(text[0..n)) shares with it. */
static int boundary(const DataOptions *o, TextState *ts, const char *text, size_t n,
                    const TokenizerIds *whole, size_t *at, char *why, size_t whylen) {
    ts->b.n = 0;
    if (encode(o, ts, text, n, false, &ts->b, o->messages_field, why, whylen) != 0) return -1;
    size_t k = 0;
    while (k < ts->b.n && k < whole->n && ts->b.ids[k] == whole->ids[k]) k++;
    *at = k;
    return 0;
}

static int check_messages(const json_t *messages, const char *field, char *why, size_t whylen) {
    if (!json_is_array(messages)) {
        snprintf(why, whylen, "'%s' is not an array", field);
        return -1;
    }
    if (json_array_size(messages) == 0) {
        snprintf(why, whylen, "'%s' is empty", field);
        return -1;
    }
    for (size_t i = 0; i < json_array_size(messages); i++) {
        const json_t *m = json_array_get(messages, i);
        const json_t *role = json_object_get(m, "role");
        if (!json_is_object(m) || !json_is_string(role)) {
            snprintf(why, whylen, "%s[%zu] is not an object with a string 'role'", field, i);
            return -1;
        }
    }
    return 0;
}

/* A record's "tools" for the template, as TRL passes them to apply_chat_template: a list of
 * function schemas, or that list as a JSON string (how datasets often store it). *tools is
 * NULL when the record has none; a new reference otherwise. */
static int record_tools(const json_t *obj, json_t **tools, char *why, size_t whylen) {
    const json_t *v = json_object_get(obj, "tools");
    *tools = NULL;
    if (!v || json_is_null(v)) return 0;
    json_t *list =
        json_is_string(v) ? json_loads(json_string_value(v), 0, NULL) : json_incref((json_t *)v);
    if (!json_is_array(list)) {
        json_decref(list);
        snprintf(why, whylen, "'tools' must be a list of tool schemas (or a JSON string of one)");
        return -1;
    }
    *tools = list;
    return 0;
}

static int chat_record(const DataOptions *o, TextState *ts, const json_t *obj, Row *row, char *why,
                       size_t whylen) {
    const json_t *messages = json_object_get(obj, o->messages_field);
    if (!messages) {
        snprintf(why, whylen, "missing field '%s'", o->messages_field);
        return -1;
    }
    if (check_messages(messages, o->messages_field, why, whylen) != 0) return -1;
    json_t *tools;
    if (record_tools(obj, &tools, why, whylen) != 0) return -1;
    size_t n_msg = json_array_size(messages), full_n;
    char *full = render_prefix(o, messages, tools, n_msg, false, &full_n, why, whylen);
    if (!full) {
        json_decref(tools);
        return -1;
    }
    int rc = -1;
    ts->a.n = 0;
    if (encode(o, ts, full, full_n, false, &ts->a, o->messages_field, why, whylen) != 0) goto done;
    if (finish_row(o, &ts->a, ts->a.n, false, row, why, whylen) != 0) goto done;
    /* finish_row masked everything (unless train_on_prompt); unmask the assistant spans */
    for (size_t i = 0; i < n_msg; i++) {
        const char *role = json_string_value(json_object_get(json_array_get(messages, i), "role"));
        if (strcmp(role, "assistant") != 0) continue;
        size_t bn, en, bt, et;
        char *before = render_prefix(o, messages, tools, i, true, &bn, why, whylen);
        if (!before) goto done;
        char *end = render_prefix(o, messages, tools, i + 1, false, &en, why, whylen);
        if (!end) {
            free(before);
            goto done;
        }
        bool prefix =
            bn <= en && en <= full_n && memcmp(before, full, bn) == 0 && memcmp(end, full, en) == 0;
        free(before);
        free(end);
        if (!prefix) {
            snprintf(why, whylen,
                     "the chat template does not render the conversation up to %s[%zu] as a "
                     "prefix of the whole conversation, so the assistant turn cannot be found "
                     "(templates that rewrite earlier turns are not supported for training)",
                     o->messages_field, i);
            goto done;
        }
        if (boundary(o, ts, full, bn, &ts->a, &bt, why, whylen) != 0 ||
            boundary(o, ts, full, en, &ts->a, &et, why, whylen) != 0)
            goto done;
        for (size_t t = bt; t < et; t++) row->labels[t] = row->ids[t];
    }
    rc = 0;
done:
    free(full);
    json_decref(tools);
    return rc;
}

int text_row(const DataOptions *o, DataFormat f, TextState *ts, const json_t *obj, Row *row,
             char *why, size_t whylen) {
    if (!json_is_object(obj)) {
        snprintf(why, whylen, "expected a JSON object, got another JSON value");
        return -1;
    }
    switch (f) {
    case DATA_FORMAT_TEXT:
        return text_record(o, ts, obj, row, why, whylen);
    case DATA_FORMAT_COMPLETION:
        return completion_record(o, ts, obj, row, why, whylen);
    case DATA_FORMAT_ALPACA:
        return alpaca_record(o, ts, obj, row, why, whylen);
    case DATA_FORMAT_CHAT:
        return chat_record(o, ts, obj, row, why, whylen);
    case DATA_FORMAT_PREFERENCE:
        return preference_row(o, ts, obj, row, why, whylen);
    default:
        snprintf(why, whylen, "internal error: format %s", data_format_name(f));
        return -1;
    }
}
