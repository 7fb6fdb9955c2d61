/* tests/fuzz/fuzz_tokenizer_config.c — tokenizer_load's side files on arbitrary contents: the
 * input is tokenizer_config.json, optionally followed by a 0xFF byte and chat_template.jinja
 * (0xFF never occurs in UTF-8), beside a fixed small tokenizer.json. These come with any model
 * directory. A refusal must say why; an accepted tokenizer's special ids are in the vocabulary
 * or -1, and its template is a string. */
#include "data/tokenizer/tokenizer.h"
#include "tests/fuzz/fuzz_util.h"

static const char TOKENIZER_JSON[] =
    "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": "
    "[\"a b\"]}, \"added_tokens\": [{\"id\": 3, \"content\": \"<s>\", \"special\": true}, "
    "{\"id\": 4, \"content\": \"</s>\", \"special\": true}]}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int ready;
    if (!ready) {
        fuzz_write("tokenizer.json", (const uint8_t *)TOKENIZER_JSON, sizeof TOKENIZER_JSON - 1);
        ready = 1;
    }
    const uint8_t *cut = memchr(data, 0xFF, size);
    size_t cfg_n = cut ? (size_t)(cut - data) : size;
    fuzz_write("tokenizer_config.json", data, cfg_n);
    char jinja[600];
    snprintf(jinja, sizeof jinja, "%s/chat_template.jinja", fuzz_scratch_dir());
    if (cut)
        fuzz_write("chat_template.jinja", cut + 1, size - cfg_n - 1);
    else
        unlink(jinja);
    char err[1024];
    err[0] = '\0';
    Tokenizer *t = tokenizer_load(fuzz_scratch_dir(), err, sizeof err);
    if (!t) {
        if (!err[0]) abort();
        return 0;
    }
    const TokenizerSpecial *sp = tokenizer_special(t);
    int v = tokenizer_vocab_size(t);
    const int32_t ids[] = {sp->bos_id, sp->eos_id, sp->pad_id, sp->unk_id};
    for (int i = 0; i < 4; i++)
        if (ids[i] < -1 || ids[i] >= v) abort();
    if (sp->chat_template && strlen(sp->chat_template) > size) abort();
    (void)tokenizer_chat_template(t, "tool_use");
    tokenizer_free(t);
    return 0;
}
