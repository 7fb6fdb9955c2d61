/* tests/fuzz/fuzz_cursor_data.h — the dataset and reader options of the cursor harness,
 * shared with gen_seeds.c so that the seed cursors fit them. The first input byte picks one
 * of four option sets (shuffle / packing / split combinations); the rest is the cursor. */
#ifndef LORAFIT_FUZZ_CURSOR_DATA_H
#define LORAFIT_FUZZ_CURSOR_DATA_H

#include <string.h>

#include "data/data.h"

#define FUZZ_CURSOR_ROWS                                                                           \
    "{\"input_ids\": [1, 2, 3, 4, 5]}\n"                                                           \
    "{\"input_ids\": [6, 7]}\n"                                                                    \
    "\n"                                                                                           \
    "{\"input_ids\": [8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18], \"labels\": [8, 9, 10, 11, "      \
    "-100, -100, 14, 15, 16, 17, 18]}\n"                                                           \
    "{\"input_ids\": [19]}\n"                                                                      \
    "{\"input_ids\": [20, 21, 22, 23]}\n"                                                          \
    "{\"input_ids\": [24, 25, 26, 27, 28, 29, 30]}\n"                                              \
    "{\"input_ids\": [31, 32, 33]}\n"                                                              \
    "{\"input_ids\": [34, 35, 36, 37, 38, 39, 40, 41, 42, 43]}\n"                                  \
    "{\"input_ids\": [44, 45]}\n"

static inline void fuzz_cursor_options(DataOptions *o, const char **path, int variant) {
    memset(o, 0, sizeof *o);
    o->paths = path;
    o->n_paths = 1;
    o->input_field = "input_ids";
    o->labels_field = "labels";
    o->seq_len = 6;
    o->batch_size = 2;
    o->packing = (variant & 1) != 0;
    o->overflow = (variant & 2) ? DATA_OVERFLOW_SPLIT : DATA_OVERFLOW_TRUNCATE;
    o->shuffle = variant != 0;
    o->shuffle_buffer = 4;
    o->on_error = DATA_ON_ERROR_FAIL;
    o->vocab_size = 97;
    o->seed = 11;
    o->epochs = 0; /* cycle forever: the cursor may point into any epoch */
}

#endif
