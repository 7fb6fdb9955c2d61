/* tests/fuzz/fuzz_safetensors.c — st_open on arbitrary bytes, then every accessor and the
 * float conversion of every tensor it accepted: whatever the header claims, the reader must
 * refuse it or hand out tensors that lie inside the file. */
#include "tests/fuzz/fuzz_util.h"
#include "trainer/store/store.h"

static volatile uint8_t sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[1024];
    SafeTensors *st = st_open(fuzz_write("t.safetensors", data, size), err, sizeof err);
    if (!st) {
        if (!err[0]) abort(); /* a refusal must say why */
        return 0;
    }
    size_t fsize = st_file_size(st);
    for (int i = 0; i < st_count(st); i++) {
        const StTensor *t = st_tensor_at(st, i);
        if (st_find(st, t->name) != t) abort();
        if (t->nbytes > fsize) abort();
        if (t->nbytes != (size_t)t->numel * st_dtype_size(t->dtype)) abort();
        /* Touch every byte: ASan flags a pointer outside the mapping. */
        uint8_t sum = 0;
        for (size_t b = 0; b < t->nbytes; b++) sum += ((const uint8_t *)t->data)[b];
        sink += sum;
        if ((t->dtype == ST_F32 || t->dtype == ST_F16 || t->dtype == ST_BF16) &&
            t->numel <= (1 << 20)) {
            float *out = malloc(((size_t)t->numel + 1) * sizeof *out);
            if (!out || st_to_float(t, out, err, sizeof err) != 0) abort();
            free(out);
        }
    }
    for (int i = 0; i < st_metadata_count(st); i++) {
        const char *k, *v;
        st_metadata_at(st, i, &k, &v);
        if (!k || !v || strlen(k) + strlen(v) > fsize) abort();
    }
    st_close(st);
    return 0;
}
