/* tests/fuzz/fuzz_tokenizer_text.c — arbitrary text through fixed tokenizers (the llama3-like,
 * mistral-like, Metaspace and pre-tokenizer-mix seeds of fuzz_tokenizer_json, read from the
 * corpus directory at start): encode must succeed on valid UTF-8 and refuse anything else with
 * a message; the ids must lie in the vocabulary and decode to valid UTF-8; the input read as
 * little-endian 16-bit ids must decode too, in one call and streaming. */
#include "data/tokenizer/tokenizer.h"
#include "tests/fuzz/fuzz_util.h"

static const char *const SEEDS[] = {"llama3_like", "mistral_like", "metaspace_first", "pretok_mix"};
#define N_TOK (int)(sizeof SEEDS / sizeof *SEEDS)
static Tokenizer *toks[N_TOK];
static TokenizerScratch *scratch;

static void load_all(void) {
    for (int i = 0; i < N_TOK; i++) {
        char path[512], err[512];
        snprintf(path, sizeof path, "tests/fuzz/corpus/tokenizer_json/%s.json", SEEDS[i]);
        FILE *f = fopen(path, "rb");
        if (!f) abort(); /* run from the repository root (tools/fuzz.sh does) */
        static char buf[1 << 20];
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        const char *end = memchr(buf, 0xFF, n); /* the seed's own text follows a 0xFF */
        toks[i] = tokenizer_load_json(buf, end ? (size_t)(end - buf) : n, err, sizeof err);
        if (!toks[i]) abort();
    }
    scratch = tokenizer_scratch_new();
    if (!scratch) abort();
}

static int utf8_ok(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!k || i + k > n) return 0;
        i += k;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!scratch) load_all();
    char *text = malloc(size ? size : 1);
    if (!text) abort();
    memcpy(text, data, size);
    size_t n_ids = size / 2;
    int32_t *raw = malloc((n_ids ? n_ids : 1) * sizeof *raw);
    if (!raw) abort();
    for (size_t i = 0; i < n_ids; i++) raw[i] = (int32_t)(data[2 * i] | data[2 * i + 1] << 8) - 16;
    for (int k = 0; k < N_TOK; k++) {
        const Tokenizer *t = toks[k];
        TokenizerIds ids = {0};
        char err[512];
        err[0] = 0;
        if (tokenizer_encode(t, scratch, text, size, k & 1, &ids, err, sizeof err) != 0) {
            if (!err[0]) abort();
        } else {
            for (size_t i = 0; i < ids.n; i++)
                if (ids.ids[i] < 0 || ids.ids[i] >= tokenizer_vocab_size(t)) abort();
        }
        char *out;
        size_t len;
        if (tokenizer_decode(t, ids.ids, ids.n, false, &out, &len, err, sizeof err) != 0) abort();
        if (!utf8_ok(out, len)) abort();
        free(out);
        if (tokenizer_decode(t, raw, n_ids, k & 1, &out, &len, err, sizeof err) != 0) abort();
        if (!utf8_ok(out, len)) abort();
        free(out);
        TokenizerStream *st = tokenizer_stream_new(t, false);
        for (size_t i = 0; i < n_ids && i < 256; i++) {
            const char *piece;
            size_t plen;
            if (tokenizer_stream_step(st, raw[i], &piece, &plen, err, sizeof err) != 0) {
                if (!err[0]) abort();
                break;
            }
            if (piece && !utf8_ok(piece, plen)) abort();
        }
        tokenizer_stream_free(st);
        tokenizer_ids_free(&ids);
    }
    free(raw);
    free(text);
    return 0;
}
