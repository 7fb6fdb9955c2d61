/* trainer/cli/inspect_gguf.c — `lorafit inspect FILE.gguf`: the metadata (long strings and
 * arrays abridged), every tensor (name, ggml type, shape in ggml order: the row length
 * first, as llama.cpp's gguf-dump prints it) and the totals by type. */
#include <stdio.h>
#include <string.h>

#include "trainer/cli/cli.h"
#include "trainer/store/store.h"

#define SHOW_CHARS 72 /* of a string value */
#define SHOW_ELEMS 4  /* of an array */

/* s (len bytes) quoted, control characters escaped, cut after SHOW_CHARS. */
static void print_str(const char *s, size_t len) {
    putchar('"');
    for (size_t i = 0; i < len && i < SHOW_CHARS; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c == '\n')
            printf("\\n");
        else if (c < 0x20 || c == 0x7f)
            printf("\\x%02x", c);
        else
            putchar(c);
    }
    printf(len > SHOW_CHARS ? "\"... (%zu bytes)" : "\"", len);
}

static void print_elem(const GgufKv *kv, uint64_t i) {
    int64_t v;
    double d;
    const char *s;
    size_t len;
    if (gguf_elem_str(kv, i, &s, &len))
        print_str(s, len);
    else if (gguf_elem_int(kv, i, &v))
        printf("%lld", (long long)v);
    else if (gguf_elem_float(kv, i, &d))
        printf("%g", d);
    else
        printf("(u64 above 2^63)");
}

static void print_kv(const GgufKv *kv) {
    printf("  metadata %s = ", kv->key);
    int64_t v;
    double d;
    const char *s;
    size_t len;
    if (kv->type == GGUF_TYPE_ARRAY) {
        printf("[%llu %s:", (unsigned long long)kv->n, gguf_type_name(kv->arr_type));
        for (uint64_t i = 0; i < kv->n && i < SHOW_ELEMS; i++) {
            printf(i ? ", " : " ");
            print_elem(kv, i);
        }
        printf("%s]\n", kv->n > SHOW_ELEMS ? ", ..." : "");
        return;
    }
    if (gguf_kv_str(kv, &s, &len))
        print_str(s, len);
    else if (kv->type == GGUF_TYPE_BOOL && gguf_kv_int(kv, &v))
        printf("%s", v ? "true" : "false");
    else if (gguf_kv_int(kv, &v))
        printf("%lld", (long long)v);
    else if (gguf_kv_float(kv, &d))
        printf("%g", d);
    else
        printf("(u64 above 2^63)");
    printf(" (%s)\n", gguf_type_name(kv->type));
}

int inspect_gguf(const char *path) {
    char err[1024];
    GgufFile *f = gguf_open(path, err, sizeof err);
    if (!f) {
        fprintf(stderr, "lorafit inspect: %s\n", err);
        return EXIT_RUNTIME;
    }
    printf("file %s (%zu bytes), GGUF version %u, alignment %u\n", path, gguf_file_size(f),
           gguf_file_version(f), gguf_file_alignment(f));
    for (int i = 0; i < gguf_kv_total(f); i++) print_kv(gguf_kv_at(f, i));
    int count[64] = {0}; /* tensors by ggml type id */
    int64_t params = 0;
    for (int i = 0; i < gguf_tensor_total(f); i++) {
        const GgufTensorInfo *t = gguf_tensor_at(f, i);
        printf("  %-48s %-5s [", t->name, ggml_type_name(t->type));
        int64_t n = 1;
        for (int d = 0; d < t->n_dims; d++) {
            printf(d ? ", %lld" : "%lld", (long long)t->ne[d]);
            n *= t->ne[d];
        }
        printf("]\n");
        params += n;
        if ((int)t->type >= 0 && (int)t->type < 64) count[t->type]++;
    }
    printf("  %d tensors (shapes in ggml order, row length first), %lld parameters:",
           gguf_tensor_total(f), (long long)params);
    for (int t = 0; t < 64; t++)
        if (count[t]) printf(" %s %d", ggml_type_name(t), count[t]);
    printf("\n");
    gguf_close(f);
    return EXIT_OK;
}
