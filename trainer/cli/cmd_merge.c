/* trainer/cli/cmd_merge.c — `lorafit merge --model DIR [--adapter DIR] --out OUT
 * [--format hf|gguf] [--dtype f32|f16|bf16|q8_0] [--force]`.
 *
 * hf (the default): the base with W += scaling B A folded in, as a Hugging Face model
 * directory that lorafit and transformers load, built under a temporary name. gguf (also
 * chosen by an OUT ending in .gguf): the merged model, or without --adapter the base
 * itself, as a GGUF model for llama.cpp / Ollama, with its tokenizer. A GGUF base (--model
 * FILE.gguf) merges into a GGUF file only: each linear back in its own type (re-quantized,
 * lossy: said on stderr) unless --dtype names one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trainer/cli/cli.h"
#include "trainer/model/model.h"
#include "trainer/store/store.h"

static void merge_usage(FILE *out) {
    fprintf(out,
            "usage: lorafit merge --model DIR [--adapter DIR] --out OUT_DIR [--dtype f32|f16|bf16] "
            "[--force]\n"
            "       lorafit merge --model DIR [--adapter DIR] --format gguf --out FILE.gguf\n"
            "              [--dtype f32|f16|bf16|q8_0] [--force]\n"
            "  Folds the adapter into the base (W += scaling B A, in double) and writes a\n"
            "  Hugging Face model directory, or a GGUF file for llama.cpp (without --adapter:\n"
            "  the base model as GGUF). dtype default f32. Existing outputs need --force.\n"
            "  A GGUF base (--model FILE.gguf) merges into a GGUF file: each linear\n"
            "  re-quantized to its own type (lossy), or all of them in --dtype.\n"
            "  --max-shard-size BYTES splits the safetensors (default 5 GB, as transformers).\n");
}

typedef struct HfMerge {
    const Model *m;
    const Lora *lora;
    const char *model_dir;
    MergeOptions opt;
} HfMerge;

static int fill_hf(const char *tmp, void *ctx, char *err, size_t errlen) {
    const HfMerge *h = ctx;
    return merge_write_hf(h->m, h->lora, h->model_dir, tmp, &h->opt, err, errlen);
}

int cmd_merge(int argc, char **argv) {
    const char *model_dir = NULL, *adapter_dir = NULL, *out = NULL, *format = NULL,
               *dtype_name = NULL, *shard = NULL;
    bool force = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            merge_usage(stdout);
            return EXIT_OK;
        }
        if (strcmp(a, "--force") == 0) {
            force = true;
            continue;
        }
        const char **slot = strcmp(a, "--model") == 0            ? &model_dir
                            : strcmp(a, "--adapter") == 0        ? &adapter_dir
                            : strcmp(a, "--out") == 0            ? &out
                            : strcmp(a, "--format") == 0         ? &format
                            : strcmp(a, "--dtype") == 0          ? &dtype_name
                            : strcmp(a, "--max-shard-size") == 0 ? &shard
                                                                 : NULL;
        if (!slot || i + 1 >= argc) {
            fprintf(stderr, "lorafit merge: %s '%s'\n",
                    slot ? "a value is needed after" : "unknown argument", a);
            merge_usage(stderr);
            return EXIT_USAGE;
        }
        *slot = argv[++i];
    }
    if (!model_dir || !out) {
        fprintf(stderr, "lorafit merge: --model and --out are required\n");
        merge_usage(stderr);
        return EXIT_USAGE;
    }
    if (!format) format = cmd_is_gguf_path(out) ? "gguf" : "hf";
    bool gguf = strcmp(format, "gguf") == 0;
    if (!gguf && strcmp(format, "hf") != 0) {
        fprintf(stderr, "lorafit merge: --format must be hf or gguf, not '%s'\n", format);
        return EXIT_USAGE;
    }
    if (!gguf && !adapter_dir) {
        fprintf(stderr, "lorafit merge: --adapter is needed for a Hugging Face directory (without "
                        "it, --format gguf converts the base alone)\n");
        return EXIT_USAGE;
    }
    bool gguf_base = model_path_is_gguf(model_dir), keep_types = gguf_base && !dtype_name;
    if (gguf_base && !gguf) {
        fprintf(stderr,
                "lorafit merge: %s is a GGUF base: it merges into a GGUF file (--format gguf, "
                "or an --out ending in .gguf)\n",
                model_dir);
        return EXIT_USAGE;
    }
    GgmlType dtype = GGML_TYPE_F32;
    if (dtype_name && cmd_parse_dtype("merge", dtype_name, gguf, &dtype) != EXIT_OK)
        return EXIT_USAGE;
    unsigned long long shard_size = 0;
    char *end = NULL;
    if (shard && ((shard_size = strtoull(shard, &end, 10)) == 0 || *end)) {
        fprintf(stderr, "lorafit merge: --max-shard-size must be a number of bytes, not '%s'\n",
                shard);
        return EXIT_USAGE;
    }
    int rc = cmd_check_overwrite("merge", out, !gguf, force);
    if (rc != EXIT_OK) return rc;
    char err[2048] = "";
    Model *m = model_load(model_dir, err, sizeof err);
    Lora *lora = NULL;
    if (!m || (adapter_dir && !(lora = lora_load_adapter(m, adapter_dir, err, sizeof err)))) {
        fprintf(stderr, "lorafit merge: %s\n", err);
        lora_free(lora);
        model_free(m);
        return EXIT_RUNTIME;
    }
    if (gguf) {
        GgufReport report;
        rc = gguf_base ? gguf_merge_base(m, lora, adapter_dir, keep_types, dtype, out, &report, err,
                                         sizeof err)
                       : gguf_export_model(m, lora, model_dir, adapter_dir, dtype, out, &report,
                                           err, sizeof err);
        if (rc != 0) {
            fprintf(stderr, "lorafit merge: %s\n", err);
            rc = EXIT_RUNTIME;
        } else {
            fprintf(stderr, "wrote %s: %d tensors (%s), arch %s, tokenizer %s (pre %s)%s\n", out,
                    report.tensors, keep_types ? "the base's types" : ggml_type_name(dtype),
                    report.arch, report.tokenizer, report.pre, lora ? ", adapter merged" : "");
            if (report.requantized)
                fprintf(stderr,
                        "note: %d merged linears were re-quantized (%s): lossy, the file holds "
                        "the nearest blocks to base + scaling B A, not the sum itself (--dtype "
                        "f32 keeps it exactly, f16 or bf16 rounded)\n",
                        report.requantized,
                        keep_types ? "each to its own type" : ggml_type_name(dtype));
            if (report.fell_back_f16)
                fprintf(stderr,
                        "note: %d matrices have rows Q8_0 cannot hold (length not a multiple of "
                        "32, e.g. %s) and are F16, as llama.cpp's converter does\n",
                        report.fell_back_f16, report.fallback_example);
            cmd_warn_gguf_llamacpp(&report);
        }
    } else {
        StDtype st = dtype == GGML_TYPE_BF16 ? ST_BF16 : dtype == GGML_TYPE_F16 ? ST_F16 : ST_F32;
        HfMerge h = {m, lora, model_dir, {st, shard_size, adapter_dir}};
        rc = cmd_write_dir("merge", out, force, fill_hf, &h);
        if (rc == EXIT_OK) fprintf(stderr, "merged %s into %s: %s\n", adapter_dir, model_dir, out);
    }
    lora_free(lora);
    model_free(m);
    return rc;
}
