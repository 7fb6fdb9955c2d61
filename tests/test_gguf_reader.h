/* tests/test_gguf_reader.h — the tests' view of a GGUF file: lorafit's reader
 * (trainer/store/gguf_read.h, itself tested against files gguf-py wrote) with getters that
 * fail the test instead of returning errors, and the checks a writer's output must pass on
 * top of what the reader refuses: version 3 and no bytes after the last tensor's padding. */
#ifndef LORAFIT_TEST_GGUF_READER_H
#define LORAFIT_TEST_GGUF_READER_H

#include <stddef.h>
#include <stdint.h>

typedef struct TgKv {
    char key[256];
    uint32_t type, arr_type; /* arr_type and n for arrays */
    uint64_t n;
    const uint8_t *val; /* the payload after the type (after arr_type and n for arrays) */
} TgKv;

typedef struct TgTensor {
    char name[64];
    uint32_t n_dims, type;
    uint64_t ne[4], offset, nbytes;
    const uint8_t *data;
} TgTensor;

typedef struct TgFile {
    struct GgufFile *g; /* the reader's handle: vals and data point into its mapping */
    uint8_t *buf;
    size_t len;
    uint32_t alignment;
    int n_kv, n_tensors;
    TgKv *kv;
    TgTensor *t;
    size_t data_start;
} TgFile;

void tg_read(const char *path, TgFile *f);
void tg_free(TgFile *f);
const TgKv *tg_kv(const TgFile *f, const char *key); /* NULL when absent */
/* Typed getters: fail the test when the key is absent or of another type. */
uint32_t tg_u32(const TgFile *f, const char *key);
float tg_f32(const TgFile *f, const char *key);
int tg_bool(const TgFile *f, const char *key);
char *tg_str(const TgFile *f, const char *key); /* malloc'ed */
/* Element i of an array of strings (malloc'ed), int32 or float32; n of any array. */
char *tg_arr_str(const TgFile *f, const char *key, uint64_t i);
int32_t tg_arr_i32(const TgFile *f, const char *key, uint64_t i);
float tg_arr_f32(const TgFile *f, const char *key, uint64_t i);
uint64_t tg_arr_n(const TgFile *f, const char *key);
const TgTensor *tg_tensor(const TgFile *f, const char *name); /* NULL when absent */
/* A tensor decoded to floats (F32, F16, BF16, Q8_0); malloc'ed, n elements. */
float *tg_floats(const TgTensor *t, uint64_t *n);

#endif
