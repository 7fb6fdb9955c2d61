/* tools/bench_data.c — data/ streaming throughput.
 *
 *   bench_data [FILE.jsonl] [--mb N]
 *
 * Writes a generated JSONL file of N MB (default 1024) uncompressed (into $TMPDIR unless a
 * path is given), streams it through a DataReader (seq_len 512, batch 8, packing, shuffle
 * buffer 10000, vocab 32000), prints rows/s, tokens/s and peak RSS (VmHWM), then deletes it. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "data/data.h"
#include "tensor/rng.h"
#include "tools/bench_util.h"

int main(int argc, char **argv) {
    const char *given = NULL;
    long mb = 1024;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--mb") == 0 && i + 1 < argc)
            mb = atol(argv[++i]);
        else
            given = argv[i];
    }
    char path[4096];
    if (given)
        snprintf(path, sizeof path, "%s", given);
    else {
        const char *tmp = getenv("TMPDIR");
        snprintf(path, sizeof path, "%s/bench_data-%d.jsonl", tmp && *tmp ? tmp : "/tmp",
                 (int)getpid());
    }
    double t0 = bench_now();
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return 1;
    }
    Rng r;
    rng_seed(&r, 1, 0);
    char *line = malloc(1 << 16);
    long long bytes = 0, rows_written = 0, ids_written = 0;
    while (bytes < mb * (1ll << 20)) {
        int len = 64 + (int)rng_below(&r, 900), n = 0;
        n += sprintf(line + n, "{\"input_ids\": [");
        for (int t = 0; t < len; t++)
            n += sprintf(line + n, t ? ", %d" : "%d", (int)rng_below(&r, 32000));
        n += sprintf(line + n, "]}\n");
        if (fwrite(line, 1, (size_t)n, f) != (size_t)n) {
            perror(path);
            return 1;
        }
        bytes += n;
        rows_written++;
        ids_written += len;
    }
    free(line);
    fclose(f);
    double t1 = bench_now();
    printf("wrote %.0f MB (%lld rows) in %.1f s\n", (double)bytes / (1 << 20), rows_written,
           t1 - t0);

    const char *paths[1] = {path};
    DataOptions o = {.paths = paths,
                     .n_paths = 1,
                     .input_field = "input_ids",
                     .labels_field = "labels",
                     .seq_len = 512,
                     .batch_size = 8,
                     .packing = true,
                     .overflow = DATA_OVERFLOW_SPLIT,
                     .shuffle = true,
                     .shuffle_buffer = 10000,
                     .vocab_size = 32000,
                     .seed = 42,
                     .epochs = 1};
    char err[1024];
    DataReader *dr = data_open(&o, err, sizeof err);
    if (!dr) {
        fprintf(stderr, "bench_data: %s\n", err);
        unlink(path);
        return 1;
    }
    Batch b;
    int rc;
    long long rows = 0, batches = 0;
    while ((rc = data_next_batch(dr, &b, err, sizeof err)) == 1) {
        rows += b.n_rows;
        batches++;
    }
    double t2 = bench_now();
    if (rc < 0) fprintf(stderr, "bench_data: %s\n", err);
    data_close(dr);
    unlink(path);
    printf("data: %lld batches, %lld rows (split chunks count as rows) in %.2f s: %.0f rows/s, "
           "%.2f M tokens/s, peak RSS %ld MB\n",
           batches, rows, t2 - t1, (double)rows / (t2 - t1), (double)ids_written / (t2 - t1) / 1e6,
           bench_peak_rss_kb() / 1024);
    return rc < 0;
}
