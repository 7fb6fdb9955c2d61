/* tools/make_dataset.c — a synthetic but learnable tokenized dataset for the demo.
 *
 *   make_dataset --out FILE.jsonl --rows N --seq S --vocab V [--seed S]
 *
 * Each row is BOS=1 followed by one of a few deterministic patterns over ids [3, V):
 * mostly a chain through a fixed successor table (next = succ[current], the same table for
 * every seed, so train and valid files share it: a bigram a small model learns quickly),
 * otherwise an arithmetic sequence a, a+d, a+2d ... (mod the range) with d from a small set,
 * or a short motif repeated. Labels are omitted (labels = input_ids). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/rng.h"

static int usage(void) {
    fprintf(stderr, "usage: make_dataset --out FILE.jsonl --rows N --seq S --vocab V [--seed S]\n");
    return 2;
}

int main(int argc, char **argv) {
    const char *out = NULL;
    long rows = -1, seq = -1, vocab = -1;
    unsigned long long seed = 1;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) return usage();
        char *end = NULL;
        const char *k = argv[i], *v = argv[++i];
        if (strcmp(k, "--out") == 0)
            out = v;
        else if (strcmp(k, "--rows") == 0)
            rows = strtol(v, &end, 10);
        else if (strcmp(k, "--seq") == 0)
            seq = strtol(v, &end, 10);
        else if (strcmp(k, "--vocab") == 0)
            vocab = strtol(v, &end, 10);
        else if (strcmp(k, "--seed") == 0)
            seed = strtoull(v, &end, 10);
        else
            return usage();
        if (end && *end) {
            fprintf(stderr, "make_dataset: %s: not a number: %s\n", k, v);
            return 2;
        }
    }
    if (!out || rows < 1 || seq < 2 || vocab < 8 || vocab > INT32_MAX) return usage();
    FILE *f = fopen(out, "w");
    if (!f) {
        perror(out);
        return 1;
    }
    Rng r;
    rng_seed(&r, seed, 0);
    const uint64_t range = (uint64_t)vocab - 3;
    const int steps[4] = {1, 2, 3, 5};
    uint64_t *succ = malloc(range * sizeof *succ);
    if (!succ) {
        fclose(f);
        return 1;
    }
    Rng table; /* fixed: the successor table does not depend on --seed */
    rng_seed(&table, 0x5EED, 1);
    for (uint64_t k = 0; k < range; k++) succ[k] = k;
    for (uint64_t k = range - 1; k > 0; k--) { /* Fisher-Yates */
        uint64_t j = rng_below(&table, k + 1), tmp = succ[k];
        succ[k] = succ[j];
        succ[j] = tmp;
    }
    for (long i = 0; i < rows; i++) {
        fprintf(f, "{\"input_ids\": [1");
        int kind = (int)rng_below(&r, 6); /* 0-3 successor chain, 4 arithmetic, 5 motif */
        uint64_t a = rng_below(&r, range);
        uint64_t d = (uint64_t)steps[rng_below(&r, 4)];
        uint64_t motif[3] = {rng_below(&r, range), rng_below(&r, range), rng_below(&r, range)};
        for (long t = 1; t < seq; t++) {
            uint64_t id;
            if (kind < 4)
                id = t == 1 ? a : (a = succ[a]);
            else if (kind == 4)
                id = (a + d * (uint64_t)(t - 1)) % range;
            else
                id = motif[(t - 1) % 3];
            fprintf(f, ", %llu", (unsigned long long)(id + 3));
        }
        fprintf(f, "]}\n");
    }
    free(succ);
    if (fclose(f) != 0) {
        perror(out);
        return 1;
    }
    return 0;
}
