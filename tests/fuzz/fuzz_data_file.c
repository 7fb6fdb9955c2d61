/* tests/fuzz/fuzz_data_file.c — a whole data file through data_open / data_next_batch: the
 * CSV record parser (libcsv + id cells), the JSONL line reader, optional gzip, and the batch
 * layout under every option. The first input byte picks the format and options; the rest is
 * the file. Every batch returned must satisfy the Batch contract of data/data.h. */
#include "data/data.h"
#include "tests/fuzz/fuzz_util.h"

#define MAX_BATCHES 4096

static void check_batch(const Batch *b, int vocab) {
    int64_t n = 0;
    for (int i = 0; i < b->batch * b->seq_len; i++) {
        if (b->input_ids[i] < 0 || b->input_ids[i] >= vocab) abort();
        if (b->targets[i] != -100) {
            if (b->targets[i] < 0 || b->targets[i] >= vocab) abort();
            n++;
        }
        if (b->positions[i] < 0 || b->positions[i] >= b->seq_len) abort();
    }
    if (n != b->n_targets || b->n_rows < 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    uint8_t opt = data[0];
    static const char *const names[4] = {"d.jsonl", "d.csv", "d.jsonl.gz", "d.csv.gz"};
    const char *path = fuzz_write(names[opt & 3], data + 1, size - 1);
    const char *paths[1] = {path};
    DataOptions o = {
        .paths = paths,
        .n_paths = 1,
        .input_field = "input_ids",
        .labels_field = (opt & 4) ? NULL : "labels",
        .seq_len = 8,
        .batch_size = 2,
        .packing = (opt & 8) != 0,
        .overflow = (DataOverflow)((opt >> 4) % 3),
        .shuffle = (opt & 64) != 0,
        .shuffle_buffer = 3,
        .on_error = (opt & 128) ? DATA_ON_ERROR_SKIP : DATA_ON_ERROR_FAIL,
        .vocab_size = 97,
        .seed = 7,
        .epochs = 2,
    };
    char err[1024];
    err[0] = '\0';
    DataReader *r = data_open(&o, err, sizeof err);
    if (!r) {
        if (!err[0]) abort();
        return 0;
    }
    Batch b;
    int rc = 0, n = 0;
    while (n < MAX_BATCHES && (rc = data_next_batch(r, &b, err, sizeof err)) == 1) {
        check_batch(&b, 97);
        n++;
    }
    if (rc < 0 && !err[0]) abort();
    char report[512];
    (void)data_skip_report(r, report, sizeof report);
    data_close(r);
    return 0;
}
