/* data/pairs.c — preference records into (prompt, chosen, rejected) token rows, as
 * TRL's DPOTrainer prepares its dataset (trl/trainer/dpo_trainer.py, _prepare_dataset, and
 * trl/data_utils.py).
 *
 * The forms a record may take (decided per record from its fields):
 *   token ids     prompt_ids, chosen_ids, rejected_ids (TRL's tokenized columns) or
 *                 prompt_input_ids, chosen_input_ids, rejected_input_ids: used as they are.
 *   standard      "prompt", "chosen", "rejected" strings. EOS (the tokenizer's eos_token text)
 *                 is appended to chosen and rejected unless they end with it (data.add_eos:
 *                 false turns that off); prompt_ids = encode(prompt, special tokens) and
 *                 chosen_ids = encode(prompt + chosen, special tokens)[len(prompt_ids):].
 *   conversational "prompt", "chosen", "rejected" lists of messages: prompt_ids = the chat
 *                 template over the prompt with add_generation_prompt, encoded without special
 *                 tokens (the template writes them); chosen_ids = the template over prompt +
 *                 chosen, encoded, from len(prompt_ids) on. No EOS is added (the template
 *                 ends the turn).
 *   implicit prompt "chosen" and "rejected" only (text or messages): the prompt is their
 *                 shared start, as trl.extract_prompt finds it (below).
 * Like TRL, the completion is cut at the prompt's token count even when prompt + completion
 * tokenizes the prompt's last token differently (TRL only warns).
 *
 * The row: ids = prompt_ids ++ chosen_ids ++ rejected_ids, with n_prompt and n_chosen;
 * labels = ids (unused). The reader lays a pair out as two rows (see reader.c). */
#include "data/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const ID_FIELDS[2][3] = {
    {"prompt_ids", "chosen_ids", "rejected_ids"},
    {"prompt_input_ids", "chosen_input_ids", "rejected_input_ids"},
};

static bool is_messages(const json_t *v) {
    const json_t *first = json_array_get(v, 0);
    return json_is_array(v) && json_is_object(first) && json_object_get(first, "role");
}

/* Appends the ids of field `name` (a JSON array, or a CSV cell "[1, 2]" / "1 2") to out. */
static int append_ids(const json_t *v, const char *name, IdList *out, char *why, size_t whylen) {
    if (json_is_string(v)) {
        IdList cell = {0};
        char cwhy[200];
        int rc =
            ids_parse_text(json_string_value(v), json_string_length(v), &cell, cwhy, sizeof cwhy);
        for (int i = 0; rc == 0 && i < cell.n; i++) {
            if (out->n == out->cap) {
                int nc = out->cap ? 2 * out->cap : 256;
                int32_t *g = realloc(out->v, (size_t)nc * sizeof *g);
                if (!g) {
                    free(cell.v);
                    snprintf(why, whylen, "out of memory");
                    return -1;
                }
                out->v = g, out->cap = nc;
            }
            out->v[out->n++] = cell.v[i];
        }
        free(cell.v);
        if (rc != 0) snprintf(why, whylen, "'%s': %s", name, cwhy);
        return rc;
    }
    if (!json_is_array(v)) {
        snprintf(why, whylen, "'%s' is not an array of token ids", name);
        return -1;
    }
    for (size_t i = 0; i < json_array_size(v); i++) {
        const json_t *x = json_array_get(v, i);
        json_int_t id = json_is_integer(x) ? json_integer_value(x) : -1;
        if (!json_is_integer(x) || id < 0 || id > INT32_MAX) {
            snprintf(why, whylen, "%s[%zu] is not a token id (a non-negative integer)", name, i);
            return -1;
        }
        if (out->n == out->cap) {
            int nc = out->cap ? 2 * out->cap : 256;
            int32_t *g = realloc(out->v, (size_t)nc * sizeof *g);
            if (!g) {
                snprintf(why, whylen, "out of memory");
                return -1;
            }
            out->v = g, out->cap = nc;
        }
        out->v[out->n++] = (int32_t)id;
    }
    return 0;
}

/* ids ++ into row with the part lengths; the ids are checked against the vocabulary. */
static int set_triple(const DataOptions *o, const int32_t *ids, size_t n, size_t n_prompt,
                      size_t n_chosen, const char *const names[3], Row *row, char *why,
                      size_t whylen) {
    if (n > INT32_MAX / 4 || row_reserve(row, (int)(n ? n : 1)) != 0) {
        snprintf(why, whylen, n > INT32_MAX / 4 ? "record too long" : "out of memory");
        return -1;
    }
    uint32_t hi = o->vocab_size > 0 ? (uint32_t)o->vocab_size : (uint32_t)INT32_MAX + 1u;
    for (size_t i = 0; i < n; i++) {
        if ((uint32_t)ids[i] >= hi) {
            int part = i < n_prompt ? 0 : i < n_prompt + n_chosen ? 1 : 2;
            size_t at = part == 0 ? i : part == 1 ? i - n_prompt : i - n_prompt - n_chosen;
            snprintf(why, whylen, "%s[%zu] = %d is outside [0, vocab_size=%d)", names[part], at,
                     ids[i], o->vocab_size);
            return -1;
        }
    }
    if (n) memcpy(row->ids, ids, n * sizeof *ids);
    if (n) memcpy(row->labels, ids, n * sizeof *ids);
    row->len = (int)n;
    row->n_prompt = (int)n_prompt;
    row->n_chosen = (int)n_chosen;
    return 0;
}

static int ids_record(const DataOptions *o, const json_t *obj, int form, Row *row, char *why,
                      size_t whylen) {
    IdList all = {0};
    size_t len[3];
    int rc = 0;
    for (int k = 0; k < 3 && rc == 0; k++) {
        const json_t *v = json_object_get(obj, ID_FIELDS[form][k]);
        if (!v) {
            snprintf(
                why, whylen, "missing field '%s' (a token-id record needs '%s', '%s' and '%s')",
                ID_FIELDS[form][k], ID_FIELDS[form][0], ID_FIELDS[form][1], ID_FIELDS[form][2]);
            rc = -1;
            break;
        }
        int before = all.n;
        rc = append_ids(v, ID_FIELDS[form][k], &all, why, whylen);
        len[k] = (size_t)(all.n - before);
    }
    if (rc == 0)
        rc = set_triple(o, all.v, (size_t)all.n, len[0], len[1], ID_FIELDS[form], row, why, whylen);
    free(all.v);
    return rc;
}

/* ---- the shared prompt of an implicit-prompt record (trl.extract_prompt) -------------
 *
 *   for idx in range(min(len(chosen), len(rejected))):
 *       if chosen[idx] != rejected[idx]:
 *           if chosen[idx - 1] == " ": idx -= 1
 *           break
 *   prompt, chosen, rejected = chosen[:idx], chosen[idx:], rejected[idx:]
 *
 * over characters for text and over messages for conversations. Its corners are kept: when
 * one is a prefix of the other the loop ends with idx = the shorter length - 1 (its last
 * character or message stays in the completions), and a difference at idx 0 looks at
 * chosen[-1], the last character. Text is compared by code point (UTF-8 here). */

static size_t utf8_start(const char *s, size_t i) {
    while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80) i--;
    return i;
}

/* Byte index where the completions of text chosen / rejected start, and (when the quirk of
 * a difference at 0 applies) the byte index in rejected; -1 when both are empty. */
static int text_split(const char *c, size_t cn, const char *r, size_t rn, size_t *at_c,
                      size_t *at_r) {
    size_t n = cn < rn ? cn : rn, i = 0;
    if (n == 0) return -1;
    while (i < n && c[i] == r[i]) i++;
    if (i == n) { /* no difference: idx = the last character of the shorter one */
        size_t last = utf8_start(c, n - 1);
        *at_c = *at_r = last;
        return 0;
    }
    size_t idx = utf8_start(c, i); /* the first differing character */
    if (idx > 0) {
        size_t prev = utf8_start(c, idx - 1);
        if (c[prev] == ' ' && idx - prev == 1) idx = prev;
        *at_c = *at_r = idx;
        return 0;
    }
    /* idx 0: Python's chosen[-1] is the last character; idx -1 keeps only that character */
    if (c[cn - 1] == ' ') {
        *at_c = cn - 1;
        *at_r = utf8_start(r, rn - 1);
        return 0;
    }
    *at_c = *at_r = 0;
    return 0;
}

/* The number of leading messages the prompt takes, with the same corners (the idx -1 case
 * needs chosen[-1] == " ", which a message never equals). -1 when one list is empty. */
static int messages_split(const json_t *c, const json_t *r, size_t *at) {
    size_t n = json_array_size(c) < json_array_size(r) ? json_array_size(c) : json_array_size(r);
    if (n == 0) return -1;
    for (size_t i = 0; i < n; i++) {
        if (!json_equal(json_array_get(c, i), json_array_get(r, i))) {
            *at = i;
            return 0;
        }
    }
    *at = n - 1;
    return 0;
}

/* ---- text and conversations ---------------------------------------------------------- */

static int encode(const DataOptions *o, TextState *ts, const char *s, size_t n, bool special,
                  TokenizerIds *out, const char *what, char *why, size_t whylen) {
    char terr[300];
    out->n = 0;
    if (tokenizer_encode(o->tokenizer, ts->scratch, s, n, special, out, terr, sizeof terr) != 0) {
        snprintf(why, whylen, "'%s': %s", what, terr);
        return -1;
    }
    return 0;
}

typedef struct Buf {
    char *s;
    size_t n, cap;
} Buf;

static int buf_add(Buf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->n + n + 1) nc *= 2;
        char *g = realloc(b->s, nc);
        if (!g) return -1;
        b->s = g, b->cap = nc;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
    return 0;
}

static const char *const TEXT_NAMES[3] = {"prompt", "chosen", "rejected"};

/* The completion ids of prompt + completion (+ EOS text) beyond the prompt's n_prompt ids,
 * appended to all. */
static int text_completion(const DataOptions *o, TextState *ts, const char *p, size_t pn,
                           const char *c, size_t cn, const char *name, size_t n_prompt, IdList *all,
                           char *why, size_t whylen) {
    const char *eos = tokenizer_special(o->tokenizer)->eos_token;
    size_t en = eos ? strlen(eos) : 0;
    bool add = o->add_eos && eos && !(cn >= en && memcmp(c + cn - en, eos, en) == 0);
    Buf full = {0};
    int rc = buf_add(&full, p, pn) | buf_add(&full, c, cn) | (add ? buf_add(&full, eos, en) : 0);
    if (rc != 0) {
        free(full.s);
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    rc = encode(o, ts, full.s, full.n, true, &ts->b, name, why, whylen);
    free(full.s);
    if (rc != 0) return -1;
    for (size_t i = n_prompt; i < ts->b.n; i++) {
        if (all->n == all->cap) {
            int nc = all->cap ? 2 * all->cap : 256;
            int32_t *g = realloc(all->v, (size_t)nc * sizeof *g);
            if (!g) {
                snprintf(why, whylen, "out of memory");
                return -1;
            }
            all->v = g, all->cap = nc;
        }
        all->v[all->n++] = ts->b.ids[i];
    }
    return 0;
}

static int push_ids(IdList *all, const TokenizerIds *ids, size_t from, char *why, size_t whylen) {
    for (size_t i = from; i < ids->n; i++) {
        if (all->n == all->cap) {
            int nc = all->cap ? 2 * all->cap : 256;
            int32_t *g = realloc(all->v, (size_t)nc * sizeof *g);
            if (!g) {
                snprintf(why, whylen, "out of memory");
                return -1;
            }
            all->v = g, all->cap = nc;
        }
        all->v[all->n++] = ids->ids[i];
    }
    return 0;
}

static int text_record(const DataOptions *o, TextState *ts, const json_t *prompt,
                       const json_t *chosen, const json_t *rejected, Row *row, char *why,
                       size_t whylen) {
    const json_t *v[3] = {prompt, chosen, rejected};
    for (int k = prompt ? 0 : 1; k < 3; k++) {
        if (!json_is_string(v[k])) {
            snprintf(why, whylen, "'%s' is not a string (the chosen's form: text)", TEXT_NAMES[k]);
            return -1;
        }
    }
    const char *c = json_string_value(chosen), *r = json_string_value(rejected), *p = "";
    size_t cn = json_string_length(chosen), rn = json_string_length(rejected), pn = 0;
    if (prompt) {
        p = json_string_value(prompt);
        pn = json_string_length(prompt);
    } else {
        size_t at_c, at_r;
        if (text_split(c, cn, r, rn, &at_c, &at_r) != 0) {
            snprintf(why, whylen,
                     "no 'prompt', and 'chosen' or 'rejected' is empty, so no shared prompt can "
                     "be taken from them");
            return -1;
        }
        p = c, pn = at_c;
        c += at_c, cn -= at_c;
        r += at_r, rn -= at_r;
    }
    if (encode(o, ts, p, pn, true, &ts->a, "prompt", why, whylen) != 0) return -1;
    size_t n_prompt = ts->a.n;
    IdList all = {0};
    int rc = push_ids(&all, &ts->a, 0, why, whylen);
    if (rc == 0) rc = text_completion(o, ts, p, pn, c, cn, "chosen", n_prompt, &all, why, whylen);
    size_t n_chosen = (size_t)all.n - n_prompt;
    if (rc == 0) rc = text_completion(o, ts, p, pn, r, rn, "rejected", n_prompt, &all, why, whylen);
    if (rc == 0)
        rc = set_triple(o, all.v, (size_t)all.n, n_prompt, n_chosen, TEXT_NAMES, row, why, whylen);
    free(all.v);
    return rc;
}

/* The template over messages (a JSON array), encoded without special tokens into out. */
static int render_encode(const DataOptions *o, TextState *ts, const json_t *messages,
                         const json_t *tools, bool agp, TokenizerIds *out, const char *what,
                         char *why, size_t whylen) {
    json_t *ctx = o->chat_context ? json_copy((json_t *)o->chat_context) : json_object();
    if (!ctx) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    json_object_set(ctx, "messages", (json_t *)messages);
    if (tools) json_object_set(ctx, "tools", (json_t *)tools);
    json_object_set_new(ctx, "add_generation_prompt", json_boolean(agp));
    char terr[400];
    size_t n;
    char *text = chat_template_render(o->chat_template, ctx, &n, terr, sizeof terr);
    json_decref(ctx);
    if (!text) {
        snprintf(why, whylen, "'%s': %s", what, terr);
        return -1;
    }
    int rc = encode(o, ts, text, n, false, out, what, why, whylen);
    free(text);
    return rc;
}

static json_t *concat(const json_t *a, size_t a_from, const json_t *b, size_t b_from) {
    json_t *out = json_array();
    for (size_t i = a_from; out && a && i < json_array_size(a); i++)
        json_array_append(out, json_array_get(a, i));
    for (size_t i = b_from; out && i < json_array_size(b); i++)
        json_array_append(out, json_array_get(b, i));
    return out;
}

static int chat_record(const DataOptions *o, TextState *ts, const json_t *prompt,
                       const json_t *chosen, const json_t *rejected, const json_t *tools, Row *row,
                       char *why, size_t whylen) {
    const json_t *v[3] = {prompt, chosen, rejected};
    for (int k = prompt ? 0 : 1; k < 3; k++) {
        if (!is_messages(v[k])) {
            snprintf(why, whylen,
                     "'%s' is not a list of messages (objects with a 'role'), as 'chosen' is",
                     TEXT_NAMES[k]);
            return -1;
        }
    }
    if (!o->chat_template) {
        snprintf(why, whylen,
                 "a conversational record needs a chat template: the tokenizer has none (set "
                 "data.chat_template)");
        return -1;
    }
    size_t from = 0;
    json_t *p;
    if (prompt) {
        p = json_incref((json_t *)prompt);
    } else {
        if (messages_split(chosen, rejected, &from) != 0) {
            snprintf(why, whylen, "no 'prompt', and 'chosen' or 'rejected' is empty");
            return -1;
        }
        p = json_array();
        for (size_t i = 0; p && i < from; i++) json_array_append(p, json_array_get(chosen, i));
    }
    json_t *pc = concat(p, 0, chosen, from), *pr = concat(p, 0, rejected, from);
    IdList all = {0};
    int rc = -1;
    if (!p || !pc || !pr) {
        snprintf(why, whylen, "out of memory");
        goto done;
    }
    if (render_encode(o, ts, p, tools, true, &ts->a, "prompt", why, whylen) != 0) goto done;
    size_t n_prompt = ts->a.n;
    if (push_ids(&all, &ts->a, 0, why, whylen) != 0 ||
        render_encode(o, ts, pc, tools, false, &ts->b, "chosen", why, whylen) != 0 ||
        push_ids(&all, &ts->b, n_prompt, why, whylen) != 0)
        goto done;
    size_t n_chosen = (size_t)all.n - n_prompt;
    if (render_encode(o, ts, pr, tools, false, &ts->b, "rejected", why, whylen) != 0 ||
        push_ids(&all, &ts->b, n_prompt, why, whylen) != 0)
        goto done;
    rc = set_triple(o, all.v, (size_t)all.n, n_prompt, n_chosen, TEXT_NAMES, row, why, whylen);
done:
    free(all.v);
    json_decref(p);
    json_decref(pc);
    json_decref(pr);
    return rc;
}

static bool have_tokenizer(const DataOptions *o, char *why, size_t whylen) {
    if (!o->tokenizer)
        snprintf(why, whylen,
                 "a text or conversational pair needs a tokenizer: model.path has no "
                 "tokenizer.json (set data.tokenizer)");
    return o->tokenizer != NULL;
}

int preference_row(const DataOptions *o, TextState *ts, const json_t *obj, Row *row, char *why,
                   size_t whylen) {
    if (!json_is_object(obj)) {
        snprintf(why, whylen, "expected a JSON object, got another JSON value");
        return -1;
    }
    for (int form = 0; form < 2; form++)
        if (json_object_get(obj, ID_FIELDS[form][1]))
            return ids_record(o, obj, form, row, why, whylen);
    const json_t *prompt = json_object_get(obj, "prompt");
    const json_t *chosen = json_object_get(obj, "chosen");
    const json_t *rejected = json_object_get(obj, "rejected");
    if (!chosen || !rejected) {
        snprintf(why, whylen,
                 "missing field '%s': a preference record has 'chosen' and 'rejected' (and "
                 "'prompt' unless it is their shared start), or chosen_ids and rejected_ids",
                 chosen ? "rejected" : "chosen");
        return -1;
    }
    if (prompt && json_is_null(prompt)) prompt = NULL;
    if (!have_tokenizer(o, why, whylen)) return -1;
    if (!is_messages(chosen)) return text_record(o, ts, prompt, chosen, rejected, row, why, whylen);
    const json_t *tv = json_object_get(obj, "tools");
    json_t *tools = NULL;
    if (tv && !json_is_null(tv)) {
        tools = json_is_string(tv) ? json_loads(json_string_value(tv), 0, NULL)
                                   : json_incref((json_t *)tv);
        if (!json_is_array(tools)) {
            json_decref(tools);
            snprintf(why, whylen,
                     "'tools' must be a list of tool schemas (or a JSON string of one)");
            return -1;
        }
    }
    int rc = chat_record(o, ts, prompt, chosen, rejected, tools, row, why, whylen);
    json_decref(tools);
    return rc;
}
