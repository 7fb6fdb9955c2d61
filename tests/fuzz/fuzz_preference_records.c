/* tests/fuzz/fuzz_preference_records.c — preference records (data/pairs.c and the pair
 * layout of data/reader.c): a JSONL, CSV or .json file of standard, conversational,
 * implicit-prompt or token-id pairs, tokenized with the harnesses' byte-level tokenizer and
 * rendered with a small chat template, through data_next_row and data_next_batch. The first
 * input byte picks the container and the options; the rest is the file. A pair must come
 * whole (prompt + chosen + rejected, ids in the vocabulary, prompt shorter than seq_len); a
 * batch's rows must be their pair's prompt + completion cut at seq_len, targets only on the
 * completion; errors must come with a message. */
#include "data/data.h"
#include "tests/fuzz/fuzz_tiny_tokenizer.h"
#include "tests/fuzz/fuzz_util.h"

#define PREF_MAX_PAIRS 4096
#define PREF_VOCAB     257

static void check_pair_batch(const Batch *b) {
    const int P = b->batch / 2, T = b->seq_len;
    if (b->n_rows < 1 || b->n_rows > P) abort();
    for (int r = 0; r < b->batch; r++) {
        int np = b->prompt_len[r], len = b->row_len[r];
        bool real = r % P < b->n_rows;
        if (len < 0 || len > T || np < 0 || (real && (np >= T || np > len)) || (!real && len != 0))
            abort();
        for (int t = 0; t < T; t++) {
            int32_t id = b->input_ids[(size_t)r * T + t], tgt = b->targets[(size_t)r * T + t];
            if (id < 0 || id >= PREF_VOCAB) abort();
            bool counted = t + 1 < len && t + 1 >= np;
            if (counted != (tgt != -100)) abort();
            if (counted && tgt != b->input_ids[(size_t)r * T + t + 1]) abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static Tokenizer *tok;
    static ChatTemplate *tmpl;
    static json_t *ctx;
    if (!tok) {
        tok = fuzz_tiny_tokenizer();
        const char *src = "{% for m in messages %}<s>{{ m.role }}\n{{ m.content }}\n{% endfor %}"
                          "{% if add_generation_prompt %}<s>assistant\n{% endif %}";
        char err[512];
        if (!(tmpl = chat_template_parse(src, strlen(src), err, sizeof err))) abort();
        ctx = json_pack("{s:s}", "bos_token", "<s>");
    }
    if (size < 1) return 0;
    uint8_t opt = data[0];
    static const char *const names[3] = {"d.jsonl", "d.csv", "d.json"};
    const char *path = fuzz_write(names[(opt & 3) % 3], data + 1, size - 1);
    const char *paths[1] = {path};
    DataOptions o = {
        .paths = paths,
        .n_paths = 1,
        .input_field = "input_ids",
        .labels_field = "labels",
        .seq_len = 4 + (opt >> 4) % 12,
        .batch_size = 1 + (opt >> 2) % 3,
        .shuffle = (opt & 64) != 0,
        .shuffle_buffer = 3,
        .on_error = (opt & 128) ? DATA_ON_ERROR_SKIP : DATA_ON_ERROR_FAIL,
        .vocab_size = PREF_VOCAB,
        .seed = 7,
        .epochs = 1,
        .format = DATA_FORMAT_AUTO,
        .add_eos = true,
        .tokenizer = tok,
        .chat_template = tmpl,
        .chat_context = ctx,
        .preference = true,
    };
    char err[1024];
    err[0] = '\0';
    DataReader *r = data_open(&o, err, sizeof err);
    if (!r) {
        if (!err[0]) abort();
        return 0;
    }
    DataRow row;
    int rc, n = 0;
    while (n < PREF_MAX_PAIRS && (rc = data_next_row(r, &row, err, sizeof err)) == 1) {
        if (row.n_prompt < 0 || row.n_chosen < 0 || row.n_prompt + row.n_chosen > row.len ||
            row.n_prompt >= o.seq_len || row.len != row.record_len)
            abort();
        for (int i = 0; i < row.len; i++)
            if (row.ids[i] < 0 || row.ids[i] >= PREF_VOCAB) abort();
        n++;
    }
    if (n < PREF_MAX_PAIRS && rc < 0 && !err[0]) abort();
    data_close(r);
    err[0] = '\0';
    if (!(r = data_open(&o, err, sizeof err))) {
        if (!err[0]) abort();
        return 0;
    }
    Batch b;
    for (n = 0; n < PREF_MAX_PAIRS && (rc = data_next_batch(r, &b, err, sizeof err)) == 1; n++)
        check_pair_batch(&b);
    if (n < PREF_MAX_PAIRS && rc < 0 && !err[0]) abort();
    data_close(r);
    return 0;
}
