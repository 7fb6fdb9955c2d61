/* tests/fuzz/fuzz_gguf_vocab.c — gguf_vocab_from_json (tokenizer.json -> llama.cpp tokenizer
 * metadata) on arbitrary input. The first byte sets the model's vocabulary size (1..256);
 * the rest is tokenizer.json, and after a "\n---\n" line, tokenizer_config.json. A refusal
 * must come with a message; an acceptance must have written the token list. */
#include "tests/fuzz/fuzz_util.h"
#include "trainer/model/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int vocab = 1 + data[0];
    const char *text = (const char *)data + 1;
    size_t len = size - 1, tok_len = len;
    char *cfg = NULL;
    for (size_t i = 0; i + 5 <= len; i++)
        if (!memcmp(text + i, "\n---\n", 5)) {
            tok_len = i;
            cfg = malloc(len - i - 5 + 1);
            if (!cfg) abort();
            memcpy(cfg, text + i + 5, len - i - 5);
            cfg[len - i - 5] = '\0';
            break;
        }
    char *tok = malloc(tok_len ? tok_len : 1); /* exact size: ASan sees reads past the end */
    if (!tok) abort();
    memcpy(tok, text, tok_len);
    GgufWriter *w = gguf_writer_new();
    if (!w) abort();
    char err[1024];
    err[0] = '\0';
    GgufReport rep;
    int rc = gguf_vocab_from_json(w, tok, tok_len, cfg, NULL, NULL, vocab, "tokenizer.json", &rep,
                                  err, sizeof err);
    if (rc != 0 && !err[0]) abort();
    if (rc == 0 && !gguf_has_key(w, "tokenizer.ggml.tokens")) abort();
    gguf_writer_free(w);
    free(tok);
    free(cfg);
    return 0;
}
