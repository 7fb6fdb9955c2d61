/* tests/fuzz/fuzz_tokenizer_json.c — tokenizer_load_json on an arbitrary tokenizer.json, then
 * encode and decode. The input is the JSON, optionally followed by a 0xFF byte and a text to
 * encode (0xFF never occurs in UTF-8, so the JSON part stays valid text); fixed texts are
 * encoded too. A refusal must carry a message; an accepted tokenizer must encode valid UTF-8
 * without error into ids that decode (with and without skip_special_tokens, and streaming) to
 * valid UTF-8, and must refuse invalid UTF-8 text with a message. */
#include "data/tokenizer/tokenizer.h"
#include "tests/fuzz/fuzz_util.h"

static const char *const TEXTS[] = {
    "Hello world, it's 2024!  \t\n x",
    " <s>a</s> <|endoftext|>",
    "caf\xC3\xA9 e\xCC\x81 \xE4\xBD\xA0\xE5\xA5\xBD \xF0\x9F\x91\x8D",
    "",
};

static size_t valid_utf8_len(const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!k || i + k > n) return i;
        for (size_t j = 1; j < k; j++)
            if (((unsigned char)s[i + j] & 0xC0) != 0x80) return i;
        i += k;
    }
    return i;
}

static void exercise(const Tokenizer *t, TokenizerScratch *sc, const char *text, size_t len) {
    TokenizerIds ids = {0};
    char err[1024];
    err[0] = 0;
    int rc = tokenizer_encode(t, sc, text, len, true, &ids, err, sizeof err);
    if (rc != 0) {
        if (!err[0]) abort(); /* refusals say why (invalid UTF-8, a regex limit, an unk token) */
        tokenizer_ids_free(&ids);
        return;
    }
    for (int skip = 0; skip < 2; skip++) {
        char *out;
        size_t out_len;
        if (tokenizer_decode(t, ids.ids, ids.n, skip, &out, &out_len, err, sizeof err) == 0) {
            if (valid_utf8_len(out, out_len) != out_len || out[out_len] != 0) abort();
            free(out);
        } else if (!err[0]) {
            abort();
        }
    }
    TokenizerStream *st = tokenizer_stream_new(t, false);
    if (!st) abort();
    for (size_t i = 0; i < ids.n && i < 64; i++) {
        const char *piece;
        size_t plen;
        if (tokenizer_stream_step(st, ids.ids[i], &piece, &plen, err, sizeof err) != 0) break;
        if (piece && valid_utf8_len(piece, plen) != plen) abort();
    }
    tokenizer_stream_free(st);
    tokenizer_ids_free(&ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *sep = memchr(data, 0xFF, size);
    size_t json_len = sep ? (size_t)(sep - data) : size;
    char *json = malloc(json_len ? json_len : 1); /* exact size: ASan sees any over-read */
    if (!json) abort();
    memcpy(json, data, json_len);
    char err[1024];
    err[0] = 0;
    Tokenizer *t = tokenizer_load_json(json, json_len, err, sizeof err);
    free(json);
    if (!t) {
        if (!err[0]) abort();
        return 0;
    }
    TokenizerScratch *sc = tokenizer_scratch_new();
    if (!sc) abort();
    for (size_t i = 0; i < sizeof TEXTS / sizeof *TEXTS; i++)
        exercise(t, sc, TEXTS[i], strlen(TEXTS[i]));
    if (sep) {
        size_t n = size - json_len - 1;
        char *text = malloc(n ? n : 1);
        if (!text) abort();
        memcpy(text, sep + 1, n);
        exercise(t, sc, text, n);
        free(text);
    }
    int v = tokenizer_vocab_size(t);
    for (int id = -1; id <= v && id < 4096; id++) (void)tokenizer_token_flags(t, id);
    tokenizer_scratch_free(sc);
    tokenizer_free(t);
    return 0;
}
