/* tests/fuzz/fuzz_gguf_read.c — gguf_open on arbitrary bytes, then every accessor on what it
 * accepted: every value of every key-value (each array element), and every byte of every
 * tensor, dequantized. Whatever the header claims, the reader must refuse it with a message
 * or hand out values and tensors that lie inside the file. */
#include "tests/fuzz/fuzz_util.h"
#include "tensor/tensor.h"
#include "trainer/store/store.h"

static volatile uint8_t sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[1024];
    err[0] = '\0';
    GgufFile *f = gguf_open(fuzz_write("t.gguf", data, size), err, sizeof err);
    if (!f) {
        if (!err[0]) abort(); /* a refusal must say why */
        return 0;
    }
    size_t fsize = gguf_file_size(f);
    for (int i = 0; i < gguf_kv_total(f); i++) {
        const GgufKv *kv = gguf_kv_at(f, i);
        if (gguf_find_kv(f, kv->key) != kv) abort();
        int64_t v;
        double d;
        const char *s;
        size_t len;
        uint8_t sum = 0;
        if (gguf_kv_str(kv, &s, &len))
            for (size_t b = 0; b < len; b++) sum += (uint8_t)s[b];
        if (gguf_kv_int(kv, &v)) sum += (uint8_t)v;
        if (gguf_kv_float(kv, &d)) sum += (uint8_t)(d != d);
        if (kv->type == GGUF_TYPE_ARRAY && kv->n > fsize) abort();
        for (uint64_t e = 0; kv->type == GGUF_TYPE_ARRAY && e < kv->n; e++) {
            if (gguf_elem_str(kv, e, &s, &len)) {
                if (len > fsize) abort();
                for (size_t b = 0; b < len; b++) sum += (uint8_t)s[b];
            } else if (gguf_elem_int(kv, e, &v))
                sum += (uint8_t)v;
            else if (gguf_elem_float(kv, e, &d))
                sum += (uint8_t)(d != d);
            else if (kv->arr_type != GGUF_TYPE_UINT64)
                abort(); /* every element of an accepted array is readable (u64 > INT64_MAX aside)
                          */
        }
        sink += sum;
    }
    for (int i = 0; i < gguf_tensor_total(f); i++) {
        const GgufTensorInfo *t = gguf_tensor_at(f, i);
        if (gguf_find_tensor(f, t->name) != t || t->nbytes > fsize) abort();
        size_t row = ggml_row_bytes(t->type, t->ne[0]);
        if (row == 0 || t->nbytes % row) abort();
        /* touch every byte through the dequantizer: ASan flags anything outside the mapping */
        float *out = malloc((size_t)t->ne[0] * sizeof *out);
        if (!out) abort();
        for (size_t r = 0; r < t->nbytes / row && r < 64; r++)
            if (quant_dequantize_row(t->type, (const uint8_t *)t->data + r * row, out, t->ne[0]))
                abort();
        uint8_t sum = 0;
        for (size_t b = 0; b < t->nbytes; b++) sum += ((const uint8_t *)t->data)[b];
        sink += sum + (uint8_t)(out[0] != out[0]);
        free(out);
    }
    gguf_close(f);
    return 0;
}
