/* tests/fuzz/fuzz_cursor.c — data_cursor_restore on arbitrary blobs against a fixed small
 * dataset (the one the seed cursors were saved from, see gen_seeds.c), then a few batches:
 * a cursor is outside input (it comes from trainer_state.safetensors on disk), so a bad one
 * must be refused, never followed out of bounds. */
#include "tests/fuzz/fuzz_util.h"

#include "data/data.h"
#include "tests/fuzz/fuzz_cursor_data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *path;
    if (!path)
        path =
            fuzz_write("cursor.jsonl", (const uint8_t *)FUZZ_CURSOR_ROWS, strlen(FUZZ_CURSOR_ROWS));
    if (size == 0) return 0;
    DataOptions o;
    fuzz_cursor_options(&o, &path, data[0] & 3);
    char err[1024];
    DataReader *r = data_open(&o, err, sizeof err);
    if (!r) abort(); /* the fixed dataset is good */
    err[0] = '\0';
    if (data_cursor_restore(r, data + 1, size - 1, err, sizeof err) == 0) {
        Batch b;
        for (int i = 0; i < 64 && data_next_batch(r, &b, err, sizeof err) == 1; i++)
            if (b.n_rows < 0 || b.n_rows > o.batch_size * o.seq_len) abort();
        size_t n = data_cursor_size(r);
        void *blob = malloc(n ? n : 1);
        if (!blob || data_cursor_save(r, blob, n, err, sizeof err) != 0) abort();
        free(blob);
    } else if (!err[0]) {
        abort();
    }
    data_close(r);
    return 0;
}
