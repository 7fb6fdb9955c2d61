/* trainer/cli/cmd_export.c — `lorafit export CHECKPOINT_DIR --out DIR [--dtype f32|bf16|f16]`:
 * writes the checkpoint's adapter as a PEFT adapter directory (adapter_model.safetensors +
 * adapter_config.json), converting the tensors to the requested dtype. A checkpoint with a
 * MANIFEST is verified first, so a corrupt checkpoint is never exported. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tensor/tensor.h"
#include "trainer/cli/cli.h"
#include "trainer/store/store.h"

static void export_usage(FILE *out) {
    fprintf(out, "usage: lorafit export CHECKPOINT_DIR --out DIR [--dtype f32|bf16|f16]\n"
                 "  Writes DIR/adapter_model.safetensors and DIR/adapter_config.json (PEFT),\n"
                 "  with the LoRA tensors in the given dtype (default f32).\n");
}

/* Converts every tensor of src to dtype into one buffer and writes dst. */
static int convert_adapter(const SafeTensors *src, StDtype dtype, const char *dst, char *err,
                           size_t errlen) {
    int n = st_count(src);
    size_t total = 0;
    for (int i = 0; i < n; i++) total += (size_t)st_tensor_at(src, i)->numel;
    float *f32 = malloc((total ? total : 1) * sizeof(float));
    uint16_t *half = dtype == ST_F32 ? NULL : malloc((total ? total : 1) * sizeof(uint16_t));
    StWriter *w = st_writer_new();
    int rc = f32 && w && (dtype == ST_F32 || half) ? 0 : -1;
    if (rc) snprintf(err, errlen, "out of memory converting %s", st_path(src));
    size_t off = 0;
    for (int i = 0; rc == 0 && i < n; i++) {
        const StTensor *t = st_tensor_at(src, i);
        float *f = f32 + off;
        if (st_to_float(t, f, err, errlen) != 0) {
            rc = -1;
            break;
        }
        const void *data = f;
        if (dtype != ST_F32) {
            tensor_floats_to_half(half + off, f, t->numel, dtype == ST_BF16);
            data = half + off;
        }
        rc = st_writer_add(w, t->name, dtype, t->ndim, t->shape, data, err, errlen);
        off += (size_t)t->numel;
    }
    if (rc == 0) rc = st_writer_save(w, dst, err, errlen);
    st_writer_free(w);
    free(f32);
    free(half);
    return rc;
}

static int export_adapter(const char *ckpt, const char *out, StDtype dtype, char *err,
                          size_t errlen) {
    char path[4200];
    if (path_join(path, sizeof path, ckpt, MANIFEST_NAME, err, errlen) != 0) return EXIT_USAGE;
    if (access(path, F_OK) == 0 && manifest_verify(ckpt, err, errlen) != 0) return EXIT_RUNTIME;
    if (path_join(path, sizeof path, ckpt, "adapter_config.json", err, errlen) != 0)
        return EXIT_USAGE;
    size_t config_len;
    char *config = store_read_file(path, 1 << 20, &config_len, err, errlen);
    if (!config) return 1;
    SafeTensors *src = NULL;
    if (path_join(path, sizeof path, ckpt, "adapter_model.safetensors", err, errlen) == 0)
        src = st_open(path, err, errlen);
    int rc = src ? 0 : 1;
    if (rc == 0 && fsio_mkdirs(out, err, errlen) != 0) rc = 1;
    int lock_fd = -1;
    if (rc == 0) {
        int locked = fsio_lock_dir(out, &lock_fd, err, errlen);
        if (locked != 0) rc = locked > 0 ? EXIT_USAGE : EXIT_RUNTIME;
    }
    if (rc == 0) {
        if (path_join(path, sizeof path, out, "adapter_model.safetensors", err, errlen) != 0 ||
            convert_adapter(src, dtype, path, err, errlen) != 0)
            rc = 1;
    }
    if (rc == 0) {
        if (path_join(path, sizeof path, out, "adapter_config.json", err, errlen) != 0 ||
            fsio_write_file(path, config, config_len, err, errlen) != 0)
            rc = 1;
    }
    if (rc == 0)
        fprintf(stderr, "exported %d tensors (%s) to %s\n", st_count(src), st_dtype_name(dtype),
                out);
    if (lock_fd >= 0) close(lock_fd);
    st_close(src);
    free(config);
    return rc;
}

int cmd_export(int argc, char **argv) {
    const char *ckpt = NULL, *out = NULL, *dtype_name = "f32";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            export_usage(stdout);
            return 0;
        }
        if (strcmp(a, "--out") == 0 || strcmp(a, "--dtype") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "lorafit export: %s needs a value\n", a);
                return EXIT_USAGE;
            }
            *(a[2] == 'o' ? &out : &dtype_name) = argv[++i];
        } else if (a[0] == '-') {
            fprintf(stderr, "lorafit export: unknown option '%s'\n", a);
            export_usage(stderr);
            return EXIT_USAGE;
        } else if (!ckpt) {
            ckpt = a;
        } else {
            fprintf(stderr, "lorafit export: one checkpoint directory only\n");
            return EXIT_USAGE;
        }
    }
    if (!ckpt || !out) {
        export_usage(stderr);
        return EXIT_USAGE;
    }
    StDtype dtype;
    if (strcmp(dtype_name, "f32") == 0)
        dtype = ST_F32;
    else if (strcmp(dtype_name, "bf16") == 0)
        dtype = ST_BF16;
    else if (strcmp(dtype_name, "f16") == 0)
        dtype = ST_F16;
    else {
        fprintf(stderr, "lorafit export: --dtype must be f32, bf16 or f16, not '%s'\n", dtype_name);
        return EXIT_USAGE;
    }
    char err[2048] = "";
    int rc = export_adapter(ckpt, out, dtype, err, sizeof err);
    if (rc) fprintf(stderr, "lorafit export: %s\n", err);
    return rc;
}
