/* trainer/cli/cmd_export.c — `lorafit export CHECKPOINT_OR_ADAPTER_DIR --out DIR|FILE.gguf
 * [--format peft|gguf] [--dtype f32|bf16|f16] [--model DIR] [--force]`.
 *
 * peft (the default): a PEFT adapter directory (adapter_model.safetensors in the dtype,
 * adapter_config.json) with its model card (README.md, loss.png) and the run's chat
 * template (chat data only), built under a temporary name and renamed into place. gguf: one
 * GGUF LoRA adapter file for llama.cpp / Ollama, which needs the base model's config (its
 * config.json, or a GGUF base's metadata): --model DIR|FILE.gguf, else the run's
 * config.resolved.yaml (model.path), else adapter_config.json's
 * base_model_name_or_path when that is a directory. A checkpoint with a MANIFEST is verified
 * first, so a corrupt checkpoint is never exported; an existing output is replaced only with
 * --force. */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tensor/tensor.h"
#include "trainer/cli/cli.h"
#include "trainer/model/model.h"
#include "trainer/store/store.h"
#include "trainer/train/train.h"

static void export_usage(FILE *out) {
    fprintf(out, "usage: lorafit export CHECKPOINT_OR_ADAPTER_DIR --out DIR [--dtype f32|bf16|f16] "
                 "[--force]\n"
                 "       lorafit export CHECKPOINT_OR_ADAPTER_DIR --format gguf --out FILE.gguf\n"
                 "              [--dtype f32|bf16|f16] [--model BASE_DIR|BASE.gguf] [--force]\n"
                 "  peft (default): DIR/adapter_model.safetensors, adapter_config.json, README.md\n"
                 "  (model card), loss.png, and the run's chat_template.jinja when it trained on\n"
                 "  chat data. gguf: a llama.cpp LoRA adapter (llama-cli --lora).\n"
                 "  An existing output is replaced only with --force.\n");
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

/* The run directory of a checkpoint-N or adapter directory (its parent), with the last step
 * the card may show; NULL run for any other directory. */
static void find_run(const char *src, char *run, size_t len, int64_t *max_step) {
    size_t n = strlen(src);
    while (n > 1 && src[n - 1] == '/') n--;
    size_t start = n;
    while (start > 0 && src[start - 1] != '/') start--;
    const char *name = src + start;
    int64_t step;
    int used = 0;
    *max_step = INT64_MAX;
    run[0] = '\0';
    bool ckpt =
        sscanf(name, "checkpoint-%" SCNd64 "%n", &step, &used) == 1 && (size_t)used == n - start;
    if (ckpt) *max_step = step;
    if (!ckpt && !(n - start == 7 && strncmp(name, "adapter", 7) == 0)) return;
    snprintf(run, len, "%.*s", start ? (int)(start - 1) : 1, start ? src : ".");
}

typedef struct PeftExport {
    const char *src;
    SafeTensors *tensors;
    const char *config;
    size_t config_len;
    StDtype dtype;
    const char *run; /* or NULL */
    int64_t max_step;
} PeftExport;

static int fill_peft(const char *tmp, void *ctx, char *err, size_t errlen) {
    const PeftExport *e = ctx;
    char path[4200];
    if (path_join(path, sizeof path, tmp, "adapter_model.safetensors", err, errlen) != 0 ||
        convert_adapter(e->tensors, e->dtype, path, err, errlen) != 0 ||
        path_join(path, sizeof path, tmp, "adapter_config.json", err, errlen) != 0 ||
        fsio_write_file(path, e->config, e->config_len, err, errlen) != 0 ||
        train_write_model_card(tmp, e->run, e->max_step, err, errlen) != 0)
        return -1;
    return train_copy_chat_template(tmp, e->run, err, errlen);
}

static int export_peft(const char *src, const char *out, StDtype dtype, bool force) {
    char err[2048] = "", path[4200], run[4200];
    int64_t max_step;
    find_run(src, run, sizeof run, &max_step);
    size_t config_len = 0;
    char *config = NULL;
    SafeTensors *tensors = NULL;
    int rc = EXIT_RUNTIME;
    if (path_join(path, sizeof path, src, "adapter_config.json", err, sizeof err) == 0 &&
        (config = store_read_file(path, 1 << 20, &config_len, err, sizeof err)) != NULL &&
        path_join(path, sizeof path, src, "adapter_model.safetensors", err, sizeof err) == 0 &&
        (tensors = st_open(path, err, sizeof err)) != NULL) {
        PeftExport e = {src, tensors, config, config_len, dtype, run[0] ? run : NULL, max_step};
        rc = cmd_write_dir("export", out, force, fill_peft, &e);
        if (rc == EXIT_OK)
            fprintf(stderr, "exported %d tensors (%s) with a model card to %s\n", st_count(tensors),
                    st_dtype_name(dtype), out);
    } else {
        fprintf(stderr, "lorafit export: %s\n", err);
    }
    st_close(tensors);
    free(config);
    return rc;
}

/* The base model directory for a GGUF adapter; "" when none is found. */
static void find_base(const char *src, const char *model_opt, char *out, size_t len) {
    char run[4200], path[4300], ignore[1024];
    int64_t max_step;
    out[0] = '\0';
    if (model_opt) {
        snprintf(out, len, "%s", model_opt);
        return;
    }
    find_run(src, run, sizeof run, &max_step);
    Config cfg;
    if (run[0] &&
        path_join(path, sizeof path, run, "config.resolved.yaml", ignore, sizeof ignore) == 0 &&
        access(path, R_OK) == 0 && config_load(path, NULL, 0, &cfg, ignore, sizeof ignore) == 0) {
        snprintf(out, len, "%s", cfg.model.path);
        config_free(&cfg);
        if (model_path_is_gguf(out)) return; /* a GGUF base: its metadata is the config */
        if (path_join(path, sizeof path, out, "config.json", ignore, sizeof ignore) == 0 &&
            access(path, R_OK) == 0)
            return;
        out[0] = '\0';
    }
    /* base_model_name_or_path, when it names a directory holding a config.json */
    if (path_join(path, sizeof path, src, "adapter_config.json", ignore, sizeof ignore) != 0)
        return;
    json_t *ac = json_load_file(path, 0, NULL);
    const char *name = json_string_value(json_object_get(ac, "base_model_name_or_path"));
    if (name && *name &&
        path_join(path, sizeof path, name, "config.json", ignore, sizeof ignore) == 0 &&
        access(path, R_OK) == 0)
        snprintf(out, len, "%s", name);
    json_decref(ac);
}

static int export_gguf(const char *src, const char *out, GgmlType dtype, const char *model_opt,
                       bool force) {
    int rc = cmd_check_overwrite("export", out, false, force);
    if (rc != EXIT_OK) return rc;
    char base[4200], path[4300], err[2048] = "";
    find_base(src, model_opt, base, sizeof base);
    if (!base[0]) {
        fprintf(stderr,
                "lorafit export: cannot tell which base model %s belongs to (no run config "
                "next to it); pass --model BASE_DIR (the directory with its config.json) or the "
                "GGUF base file\n",
                src);
        return EXIT_USAGE;
    }
    ModelConfig cfg;
    if (model_config_load(base, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "lorafit export: %s\n", err);
        bool there = model_path_is_gguf(base) ||
                     (path_join(path, sizeof path, base, "config.json", err, sizeof err) == 0 &&
                      access(path, R_OK) == 0);
        return there ? EXIT_RUNTIME : EXIT_USAGE;
    }
    size_t n = strlen(base);
    while (n > 1 && base[n - 1] == '/') n--;
    if (n > 5 && strncmp(base + n - 5, ".gguf", 5) == 0) n -= 5; /* a GGUF base: its stem */
    size_t start = n;
    while (start > 0 && base[start - 1] != '/') start--;
    char name[256];
    snprintf(name, sizeof name, "%.*s", (int)(n - start), base + start);
    GgufReport report;
    if (gguf_export_adapter(src, &cfg, name, dtype, out, &report, err, sizeof err) != 0) {
        fprintf(stderr, "lorafit export: %s\n", err);
        return EXIT_RUNTIME;
    }
    fprintf(stderr, "exported %d tensors (%s, arch %s) as a GGUF LoRA adapter to %s\n",
            report.tensors, ggml_type_name(dtype), report.arch, out);
    cmd_warn_gguf_llamacpp(&report);
    return EXIT_OK;
}

int cmd_export(int argc, char **argv) {
    const char *src = NULL, *out = NULL, *dtype_name = "f32", *format = NULL, *model = NULL;
    bool force = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            export_usage(stdout);
            return 0;
        }
        if (strcmp(a, "--force") == 0) {
            force = true;
        } else if (strcmp(a, "--out") == 0 || strcmp(a, "--dtype") == 0 ||
                   strcmp(a, "--format") == 0 || strcmp(a, "--model") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "lorafit export: %s needs a value\n", a);
                return EXIT_USAGE;
            }
            const char **slot = a[2] == 'o'   ? &out
                                : a[2] == 'd' ? &dtype_name
                                : a[2] == 'f' ? &format
                                              : &model;
            *slot = argv[++i];
        } else if (a[0] == '-') {
            fprintf(stderr, "lorafit export: unknown option '%s'\n", a);
            export_usage(stderr);
            return EXIT_USAGE;
        } else if (!src) {
            src = a;
        } else {
            fprintf(stderr, "lorafit export: one checkpoint directory only\n");
            return EXIT_USAGE;
        }
    }
    if (!src || !out) {
        export_usage(stderr);
        return EXIT_USAGE;
    }
    if (!format) format = cmd_is_gguf_path(out) ? "gguf" : "peft";
    if (strcmp(format, "peft") != 0 && strcmp(format, "gguf") != 0) {
        fprintf(stderr, "lorafit export: --format must be peft or gguf, not '%s'\n", format);
        return EXIT_USAGE;
    }
    GgmlType dtype;
    if (cmd_parse_dtype("export", dtype_name, false, &dtype) != EXIT_OK) return EXIT_USAGE;
    char err[2048] = "", path[4200];
    if (path_join(path, sizeof path, src, MANIFEST_NAME, err, sizeof err) != 0) {
        fprintf(stderr, "lorafit export: %s\n", err);
        return EXIT_USAGE;
    }
    if (access(path, F_OK) == 0 && manifest_verify(src, err, sizeof err) != 0) {
        fprintf(stderr, "lorafit export: %s\n", err);
        return EXIT_RUNTIME;
    }
    if (strcmp(format, "gguf") == 0) return export_gguf(src, out, dtype, model, force);
    StDtype st = dtype == GGML_TYPE_BF16 ? ST_BF16 : dtype == GGML_TYPE_F16 ? ST_F16 : ST_F32;
    return export_peft(src, out, st, force);
}
