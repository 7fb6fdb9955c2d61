/* trainer/model/merge_gguf.c — an adapter merged into a GGUF base, written back as a GGUF
 * file (see export.h).
 *
 * The base file is rewritten tensor by tensor in its own order: every key-value kept as it
 * is (architecture, hyperparameters, the tokenizer and its chat template; the adapter's
 * template over the base's), every tensor that is not a decoder linear (embeddings, norms,
 * biases, rope factors) copied byte for byte from the mapping. A linear becomes
 * W' = dequant(W) + s B A, each element's rank sum in double and rounded once to float
 * (merge_linear, as for a Hugging Face base), then brought back into the file's layout (the
 * Q/K row permutation and the family's reorder, as gguf_model.c's writer applies them: the
 * inverse of what gguf_base.c undid at load) and encoded row by row in the tensor's own type
 * with llama.cpp's reference quantizers, or in the dtype asked for. Re-quantizing is lossy:
 * the blocks of dequant(W) + s B A are not dequant(W) + s B A (the command says so). A linear
 * the adapter does not touch keeps its bytes unless a dtype is asked for.
 *
 * One tensor is in memory at a time besides the mapping (fill callbacks). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trainer/model/export.h"
#include "trainer/model/internal.h"
#include "trainer/model/lora.h"

typedef struct Linear {
    const Model *m;
    const Lora *lora;
    int layer;
    ModelModule mod;
    int permute_heads; /* > 0: q or k rows, stored in llama.cpp's interleaved order */
    GgmlType type;     /* written */
} Linear;

static int fill_linear(void *ctx, void *dst, size_t nbytes, char *err, size_t errlen) {
    const Linear *it = ctx;
    const ModelConfig *c = &it->m->cfg;
    const Tensor *w = model_weight(it->m, it->layer, it->mod);
    const int64_t rows = w->shape[0], cols = w->shape[1], n = rows * cols;
    const size_t row_bytes = ggml_row_bytes(it->type, cols);
    (void)nbytes;
    float *f = malloc((size_t)n * 2 * sizeof *f); /* (rows, cols) and a scratch as large */
    if (!f) return store_error(err, errlen, 0, "merge: out of memory merging a linear");
    merge_linear(it->m, it->lora, it->layer, it->mod, f); /* Hugging Face order */
    if (it->permute_heads) gguf_permute_rows(f, rows, cols, it->permute_heads, f + n);
    for (int side = 0; c->family->gguf_reorder && side < 2; side++)
        c->family->gguf_reorder(c, it->mod, f, rows, cols, side == 0, f + n);
    int failed = 0;
#pragma omp parallel for schedule(static) reduction(| : failed) if (n > (1 << 16))
    for (int64_t r = 0; r < rows; r++)
        failed |= quant_quantize_row(it->type, f + r * cols, (uint8_t *)dst + (size_t)r * row_bytes,
                                     cols) != 0;
    free(f);
    return failed ? store_error(err, errlen, 0, "merge: cannot encode a linear as %s",
                                ggml_type_name(it->type))
                  : 0;
}

/* The decoder linear stored as tensor `name`, or NULL. */
static const Linear *find_linear(const Linear *lin, int n, const char *name) {
    for (int i = 0; i < n; i++) {
        char want[96];
        snprintf(want, sizeof want, "blk.%d.%s.weight", lin[i].layer, gguf_module_name(lin[i].mod));
        if (strcmp(want, name) == 0) return &lin[i];
    }
    return NULL;
}

/* The adapter's chat template (the one its training rendered) as tokenizer.chat_template. */
static int adapter_template(GgufWriter *w, const char *adapter_dir, char *err, size_t errlen) {
    char path[4200];
    if (!adapter_dir ||
        path_join(path, sizeof path, adapter_dir, CHAT_TEMPLATE_FILE, err, errlen) != 0)
        return adapter_dir ? -1 : 0;
    size_t len;
    bool failed;
    char *text = store_read_file_if_there(path, (size_t)64 << 20, &len, &failed, err, errlen);
    int rc = failed ? -1 : text ? gguf_set_str(w, "tokenizer.chat_template", text, err, errlen) : 0;
    free(text);
    return rc;
}

/* The report's tokenizer model and pre-tokenizer, as the metadata names them. */
static void report_tokenizer(const GgufFile *f, GgufReport *report) {
    const char *s;
    size_t len;
    const GgufKv *kv = gguf_find_kv(f, "tokenizer.ggml.model");
    if (kv && gguf_kv_str(kv, &s, &len))
        snprintf(report->tokenizer, sizeof report->tokenizer, "%.*s", (int)len, s);
    kv = gguf_find_kv(f, "tokenizer.ggml.pre");
    snprintf(report->pre, sizeof report->pre, "%s", "default");
    if (kv && gguf_kv_str(kv, &s, &len))
        snprintf(report->pre, sizeof report->pre, "%.*s", (int)len, s);
}

/* llama_ftype of a whole-file dtype: ALL_F32, MOSTLY_F16, MOSTLY_Q8_0, MOSTLY_BF16. */
static uint32_t file_type(GgmlType t) {
    return t == GGML_TYPE_F16 ? 1 : t == GGML_TYPE_Q8_0 ? 7 : t == GGML_TYPE_BF16 ? 32 : 0;
}

int gguf_merge_base(const Model *m, const Lora *lora, const char *adapter_dir, bool keep_types,
                    GgmlType dtype, const char *path, GgufReport *report, char *err,
                    size_t errlen) {
    const ModelConfig *c = &m->cfg;
    if (!m->gguf) return store_error(err, errlen, 0, "merge: the base is not a GGUF file");
    const char *base = gguf_file_path(m->gguf);
    if (m->dtype != MODEL_F32 || m->quant != GGML_TYPE_F32)
        return store_error(err, errlen, 0, "merge: %s must be loaded as F32, unquantized", base);
    if (!keep_types && dtype != GGML_TYPE_F32 && dtype != GGML_TYPE_F16 &&
        dtype != GGML_TYPE_BF16 && dtype != GGML_TYPE_Q8_0)
        return store_error(err, errlen, 0, "merge: dtype must be F32, F16, BF16 or Q8_0");
    if (report) memset(report, 0, sizeof *report);
    int max = c->num_hidden_layers * MODULE_COUNT;
    Linear *lin = calloc((size_t)(max ? max : 1), sizeof *lin);
    GgufWriter *w = gguf_writer_new();
    int rc = lin && w ? 0 : store_error(err, errlen, 0, "merge: out of memory");
    int n_lin = 0;
    for (int l = 0; rc == 0 && l < c->num_hidden_layers; l++)
        for (int k = 0; k < MODULE_COUNT; k++) {
            /* Gemma 4's per-layer gate and projection: re-encoded only when the adapter has
             * them (otherwise copied as they are, like any tensor that is not a linear) */
            Tensor *A, *B;
            bool own = !(model_layer_modules(c, l) & (1u << k));
            if (!(model_layer_targets(c, l) & (1u << k)) ||
                (own && !(lora && lora_module(lora, l, (ModelModule)k, &A, &B))))
                continue;
            Linear *it = &lin[n_lin++];
            *it = (Linear){m, lora, l, (ModelModule)k, 0, dtype};
            if (c->family->gguf_permute_qk && (k == MODULE_Q || k == MODULE_K))
                it->permute_heads = k == MODULE_Q ? c->num_attention_heads : c->num_key_value_heads;
        }
    for (int i = 0; rc == 0 && i < gguf_kv_total(m->gguf); i++)
        rc = gguf_copy_kv(w, gguf_kv_at(m->gguf, i), err, errlen);
    if (rc == 0 && !keep_types)
        rc = gguf_set_u32(w, "general.file_type", file_type(dtype), err, errlen);
    if (rc == 0) rc = adapter_template(w, adapter_dir, err, errlen);
    for (int i = 0; rc == 0 && i < gguf_tensor_total(m->gguf); i++) {
        const GgufTensorInfo *t = gguf_tensor_at(m->gguf, i);
        Linear *it = (Linear *)find_linear(lin, n_lin, t->name);
        Tensor *A, *B;
        bool touched = it && lora && lora_module(lora, it->layer, it->mod, &A, &B);
        if (it && (touched || !keep_types)) {
            it->type = keep_types ? t->type : dtype;
            if (ggml_row_bytes(it->type, t->ne[0]) == 0) { /* the converter's Q8_0 fallback */
                it->type = GGML_TYPE_F16;
                if (report && report->fell_back_f16++ == 0)
                    snprintf(report->fallback_example, sizeof report->fallback_example, "%s",
                             t->name);
            }
            if (report && touched && ggml_block_size(it->type) > 1) report->requantized++;
            rc = gguf_add_tensor(w, t->name, it->type, t->n_dims, t->ne, NULL, fill_linear, it, err,
                                 errlen);
        } else {
            rc = gguf_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, NULL, NULL, err,
                                 errlen);
        }
    }
    if (rc == 0) rc = gguf_writer_save(w, path, err, errlen);
    if (rc == 0 && report) {
        report->tensors = gguf_tensor_total(m->gguf);
        report_tokenizer(m->gguf, report);
        snprintf(report->arch, sizeof report->arch, "%s", gguf_arch_name(c));
        report->window_ignored = gguf_window_ignored(c);
        report->longrope_original = gguf_longrope_original(c);
    }
    gguf_writer_free(w);
    free(lin);
    return rc;
}
