/* tests/fuzz/fuzz_gguf_tokenizer.c — train_tokenizer_load on arbitrary GGUF bytes: the
 * tokenizer.ggml.* metadata read into a TokenizerVocabSpec and built (tokenizer_from_vocab).
 * A refusal must come with a message; an accepted tokenizer must encode a few texts, decode
 * what it encoded, and name its special tokens within its vocabulary. */
#include "tests/fuzz/fuzz_util.h"
#include "trainer/train/train.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[1024];
    err[0] = '\0';
    Tokenizer *tok = train_tokenizer_load(fuzz_write("t.gguf", data, size), err, sizeof err);
    if (!tok) {
        if (!err[0]) abort(); /* a refusal must say why */
        return 0;
    }
    static const char *const texts[] = {"", "Hello  world\n", "<s>a b</s> 123 caf\xc3\xa9",
                                        "\xf0\x9f\xa4\x97 \t\r\n x"};
    TokenizerScratch *sc = tokenizer_scratch_new();
    if (!sc) abort();
    int vocab = tokenizer_vocab_size(tok);
    const TokenizerSpecial *sp = tokenizer_special(tok);
    if (sp->bos_id >= vocab || sp->eos_id >= vocab) abort();
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        TokenizerIds ids = {0};
        if (tokenizer_encode(tok, sc, texts[i], strlen(texts[i]), i & 1, &ids, err, sizeof err))
            abort(); /* valid UTF-8 always encodes */
        for (size_t k = 0; k < ids.n; k++)
            if (ids.ids[k] < 0 || ids.ids[k] >= vocab) abort();
        char *text = NULL;
        size_t len;
        if (tokenizer_decode(tok, ids.ids, ids.n, false, &text, &len, err, sizeof err)) abort();
        free(text);
        tokenizer_ids_free(&ids);
    }
    tokenizer_scratch_free(sc);
    tokenizer_free(tok);
    return 0;
}
