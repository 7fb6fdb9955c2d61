/* trainer/train/text_setup.c — the tokenizer and chat template behind a text data.format.
 *
 * They are loaded only when the data needs them: the format is resolved first (data.format,
 * or for auto the first record of the training data), so a tokens dataset never reads a
 * tokenizer. The tokenizer comes from data.tokenizer, else from model.path: a directory's
 * tokenizer.json, or a GGUF file's tokenizer metadata (train_tokenizer_load). The chat
 * template is data.chat_template (inline Jinja, or a file holding it), else the tokenizer's
 * chat_template; its context carries the special tokens (bos_token, eos_token, pad_token,
 * unk_token) as transformers passes them, then data.chat_template_kwargs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "trainer/store/store.h"
#include "trainer/train/internal.h"

void train_text_free(TrainText *tt) {
    tokenizer_free(tt->tokenizer);
    chat_template_free(tt->chat_template);
    free(tt->chat_template_text);
    json_decref(tt->chat_context);
    memset(tt, 0, sizeof *tt);
}

void train_text_attach(const TrainText *tt, DataOptions *o) {
    o->format = tt->format;
    o->tokenizer = tt->tokenizer;
    o->chat_template = tt->chat_template;
    o->chat_context = tt->chat_context;
}

static int load_template(const Config *cfg, TrainText *tt, char *err, size_t errlen) {
    const char *src = NULL, *what = "data.chat_template";
    char *owned = NULL;
    size_t len = 0;
    const char *cfg_t = cfg->data.chat_template;
    if (cfg_t && strchr(cfg_t, '{')) {
        src = cfg_t;
        len = strlen(cfg_t);
    } else if (cfg_t) {
        char ferr[512];
        if (!(owned = store_read_file(cfg_t, 64u << 20, &len, ferr, sizeof ferr))) {
            snprintf(err, errlen, "%s: %s", what, ferr);
            return -2;
        }
        src = owned;
    } else {
        src = tokenizer_special(tt->tokenizer)->chat_template;
        what = "the tokenizer's chat_template";
        if (!src) {
            const char *dir = cfg->data.tokenizer ? cfg->data.tokenizer : cfg->model.path;
            snprintf(err, errlen,
                     "data.format chat: %s has no chat_template (%s); set data.chat_template "
                     "(inline Jinja or a file)",
                     dir,
                     train_path_is_file(dir) ? "no tokenizer.chat_template in the GGUF file"
                                             : "neither chat_template.jinja nor "
                                               "tokenizer_config.json's");
            return -2;
        }
        len = strlen(src);
    }
    char perr[512];
    tt->chat_template = chat_template_parse(src, len, perr, sizeof perr);
    tt->chat_template_text = owned ? owned : strndup(src, len);
    if (!tt->chat_template) {
        snprintf(err, errlen, "%s: %s", what, perr);
        return -2;
    }
    if (!tt->chat_template_text) {
        snprintf(err, errlen, "%s: out of memory", what);
        return -1;
    }
    const TokenizerSpecial *sp = tokenizer_special(tt->tokenizer);
    tt->chat_context = json_object();
    if (!tt->chat_context) return -1;
    const char *names[] = {"bos_token", "eos_token", "pad_token", "unk_token"};
    const char *values[] = {sp->bos_token, sp->eos_token, sp->pad_token, sp->unk_token};
    for (int i = 0; i < 4; i++)
        if (values[i]) json_object_set_new(tt->chat_context, names[i], json_string(values[i]));
    /* data.chat_template_kwargs last: like apply_chat_template(**kwargs), they win */
    const char *kw = cfg->data.chat_template_kwargs;
    json_t *extra = kw ? json_loads(kw, 0, NULL) : NULL;
    if (kw && (!json_is_object(extra) || json_object_update(tt->chat_context, extra) != 0)) {
        json_decref(extra);
        snprintf(err, errlen, "data.chat_template_kwargs: not a mapping: %s", kw);
        return -2;
    }
    json_decref(extra);
    return 0;
}

int train_text_load(const Config *cfg, TrainText *tt, char *err, size_t errlen) {
    memset(tt, 0, sizeof *tt);
    DataOptions o;
    train_data_options(cfg, TRAIN_DATA_TRAIN, 0, &o);
    if (data_resolve_format(&o, &tt->format, err, errlen) != 0) return -1;
    if (tt->format == DATA_FORMAT_TOKENS) return 0;
    const char *dir = cfg->data.tokenizer ? cfg->data.tokenizer : cfg->model.path;
    const char *key = cfg->data.tokenizer ? "data.tokenizer" : "model.path";
    char json[4200];
    struct stat st;
    bool gguf = train_path_is_file(dir); /* a GGUF model: its metadata holds the tokenizer */
    if (!gguf && path_join(json, sizeof json, dir, "tokenizer.json", err, errlen) != 0) return -2;
    bool missing = !gguf && stat(json, &st) != 0;
    if (missing && tt->format == DATA_FORMAT_PREFERENCE && !cfg->data.tokenizer)
        return 0; /* token-id pairs need none; a text pair then says what is missing */
    if (missing) {
        snprintf(err, errlen,
                 "data.format %s needs a tokenizer: %s '%s' has no tokenizer.json (set "
                 "data.tokenizer to a directory that has one)",
                 data_format_name(tt->format), key, dir);
        return -2;
    }
    char terr[1024];
    tt->tokenizer = train_tokenizer_load(dir, terr, sizeof terr);
    if (!tt->tokenizer) {
        snprintf(err, errlen, "%s: %s", key, terr);
        return -1;
    }
    /* preference data: conversational records need the template, the others do not */
    bool pref_chat = tt->format == DATA_FORMAT_PREFERENCE &&
                     (cfg->data.chat_template || tokenizer_special(tt->tokenizer)->chat_template);
    int rc = tt->format == DATA_FORMAT_CHAT || pref_chat ? load_template(cfg, tt, err, errlen) : 0;
    if (rc != 0) train_text_free(tt);
    return rc;
}
