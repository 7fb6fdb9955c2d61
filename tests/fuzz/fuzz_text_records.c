/* tests/fuzz/fuzz_text_records.c — text dataset records (data/text.c and the text paths of
 * data/source.c): a JSONL, CSV or .json file of text, completion, alpaca or chat records,
 * tokenized with a small byte-level tokenizer and rendered with a small chat template, through
 * data_open / data_next_row and data_next_batch. The first input byte picks the container,
 * the format and the options; the rest is the file. Rows must be non-empty with ids in the
 * vocabulary and labels -100 or equal to the id; errors must come with a message. */
#include "data/data.h"
#include "tests/fuzz/fuzz_tiny_tokenizer.h"
#include "tests/fuzz/fuzz_util.h"

#define MAX_ROWS 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static Tokenizer *tok;
    static ChatTemplate *tmpl;
    static json_t *ctx;
    if (!tok) {
        tok = fuzz_tiny_tokenizer();
        const char *src = "{% if tools %}<s>tools {{ tools | tojson }}\n{% endif %}"
                          "{% for m in messages %}{% if m.role not in ['user', 'assistant', "
                          "'system'] %}{{ raise_exception('bad role') }}{% endif %}<s>{{ m.role "
                          "}}\n{{ m.content | trim }}\n{% endfor %}{% if add_generation_prompt "
                          "%}<s>assistant\n{% endif %}";
        char err[512];
        if (!(tmpl = chat_template_parse(src, strlen(src), err, sizeof err))) abort();
        ctx = json_pack("{s:s}", "bos_token", "<s>");
    }
    if (size < 1) return 0;
    uint8_t opt = data[0];
    static const char *const names[3] = {"d.jsonl", "d.csv", "d.json"};
    static const DataFormat formats[5] = {DATA_FORMAT_AUTO, DATA_FORMAT_TEXT,
                                          DATA_FORMAT_COMPLETION, DATA_FORMAT_ALPACA,
                                          DATA_FORMAT_CHAT};
    const char *path = fuzz_write(names[(opt & 3) % 3], data + 1, size - 1);
    const char *paths[1] = {path};
    DataOptions o = {
        .paths = paths,
        .n_paths = 1,
        .input_field = "input_ids",
        .labels_field = "labels",
        .seq_len = 16,
        .batch_size = 2,
        .packing = (opt & 4) != 0,
        .overflow = (DataOverflow)((opt >> 3) % 3),
        .shuffle = (opt & 32) != 0,
        .shuffle_buffer = 3,
        .on_error = (opt & 64) ? DATA_ON_ERROR_SKIP : DATA_ON_ERROR_FAIL,
        .vocab_size = 257,
        .seed = 7,
        .epochs = 1,
        .format = formats[((opt >> 5) ^ (opt >> 2)) % 5],
        .text_field = "text",
        .prompt_field = "prompt",
        .completion_field = "completion",
        .messages_field = "messages",
        .add_eos = false,
        .train_on_prompt = (opt & 128) != 0,
        .tokenizer = tok,
        .chat_template = tmpl,
        .chat_context = ctx,
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
    while (n < MAX_ROWS && (rc = data_next_row(r, &row, err, sizeof err)) == 1) {
        if (row.len < 1 || row.len > o.seq_len) abort();
        for (int i = 0; i < row.len; i++) {
            if (row.ids[i] < 0 || row.ids[i] >= 257) abort();
            if (row.labels[i] != -100 && row.labels[i] != row.ids[i]) abort();
        }
        n++;
    }
    if (n < MAX_ROWS && rc < 0 && !err[0]) abort();
    data_close(r);
    return 0;
}
