/* tools/bench_tokenizer.c — tokenizer throughput on one thread: loads DIR/tokenizer.json, then
 * encodes every line of a text file (each line on its own, no special tokens), a few passes,
 * and prints the best pass as tokens/s and MB/s. tools/bench_tokenizer.js does the same with the
 * Rust library (npm @anush008/tokenizers) for a side-by-side figure.
 *
 *   bench_tokenizer DIR TEXT_FILE [PASSES]     (default 3 passes)
 *   bench_tokenizer                            the team's llama3 tokenizer on TinyStories raw.txt
 *                                              ($LORAFIT_SHARED or ../shared; skipped if absent) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/tokenizer/tokenizer.h"
#include "tools/bench_util.h"

int main(int argc, char **argv) {
    char dir[4096], file[4096];
    if (argc == 1) { /* make bench */
        const char *shared = getenv("LORAFIT_SHARED");
        if (!shared || !*shared) shared = "../shared";
        snprintf(dir, sizeof dir, "%s/tokenizers/llama3", shared);
        snprintf(file, sizeof file, "%s/data/tinystories/raw.txt", shared);
        FILE *probe = fopen(file, "rb");
        if (!probe) {
            printf("tokenizer: skipped (%s is missing)\n", file);
            return 0;
        }
        fclose(probe);
    } else if (argc >= 3) {
        snprintf(dir, sizeof dir, "%s", argv[1]);
        snprintf(file, sizeof file, "%s", argv[2]);
    } else {
        fprintf(stderr, "usage: %s [TOKENIZER_DIR TEXT_FILE [PASSES]]\n", argv[0]);
        return 2;
    }
    int passes = argc > 3 ? atoi(argv[3]) : 3;
    char err[1024];
    double t0 = bench_now();
    Tokenizer *tok = tokenizer_load(dir, err, sizeof err);
    if (!tok) {
        fprintf(stderr, "bench_tokenizer: %s\n", err);
        return 1;
    }
    double load_s = bench_now() - t0;
    FILE *f = fopen(file, "rb");
    if (!f) {
        perror(file);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)size + 1);
    if (!text || fread(text, 1, (size_t)size, f) != (size_t)size) {
        fprintf(stderr, "bench_tokenizer: cannot read %s\n", file);
        return 1;
    }
    fclose(f);
    TokenizerScratch *sc = tokenizer_scratch_new();
    TokenizerIds ids = {0};
    double best = 1e30;
    size_t tokens = 0;
    for (int p = 0; p < passes; p++) {
        tokens = 0;
        double s = bench_now();
        for (long i = 0; i < size;) {
            char *nl = memchr(text + i, '\n', (size_t)(size - i));
            long end = nl ? nl - text : size;
            ids.n = 0;
            if (tokenizer_encode(tok, sc, text + i, (size_t)(end - i), false, &ids, err,
                                 sizeof err)) {
                fprintf(stderr, "bench_tokenizer: %s\n", err);
                return 1;
            }
            tokens += ids.n;
            i = end + 1;
        }
        double e = bench_now() - s;
        if (e < best) best = e;
    }
    printf("tokenizer C     %-28s load %.2f s  %zu tokens  %.0f tokens/s  %.1f MB/s\n", dir, load_s,
           tokens, (double)tokens / best, (double)size / best / 1e6);
    tokenizer_ids_free(&ids);
    tokenizer_scratch_free(sc);
    tokenizer_free(tok);
    free(text);
    return 0;
}
