/* trainer/model/gguf_adapter.c — a PEFT adapter as the GGUF LoRA adapter llama.cpp's
 * convert_lora_to_gguf.py writes (see export.h).
 *
 * What the converter writes, and so lorafit: general.architecture of the base,
 * general.type "adapter", general.name, adapter.type "lora", adapter.lora.alpha (F32),
 * general.quantization_version 2, and per targeted linear two tensors named after the base
 * tensor: blk.N.attn_q.weight.lora_a = A (R, IN), ne {IN, R}, and .lora_b = B (OUT, R),
 * ne {R, OUT}. The base's transformations reach B only (W = B A, so a row permutation of W
 * is the same permutation of B's rows): LlamaModel.permute on q_proj / k_proj for arch
 * llama; Qwen3.5's value-head reordering on B's rows of in_proj_qkv (V rows), in_proj_z,
 * in_proj_a, in_proj_b, and on A's columns of out_proj, whose input columns the base's
 * converter reorders (llama.cpp's convert_lora_to_gguf.py raises NotImplementedError there
 * when key and value head counts differ). No hyperparameters and no tokenizer: llama.cpp takes them
 * from the base.
 *
 * The scale: llama.cpp multiplies B A x by alpha / r (llama_adapter_lora_weight::get_scale)
 * and the converter copies lora_alpha as it is, ignoring use_rslora, so an rsLoRA adapter
 * converted by it runs at the wrong scale. lorafit writes alpha = scaling * r instead,
 * which is lora_alpha itself for plain LoRA and lora_alpha * sqrt(r) for rsLoRA: llama.cpp
 * then applies exactly the scaling the adapter was trained with.
 *
 * A wrapper checkpoint's adapter (Gemma 3 4B+: base_model.model.model.language_model.layers.N
 * ...) gets the same blk.N names: the converter's filter only drops "language_model." from
 * names and so writes model.layers.N..., which llama.cpp's text model does not know. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trainer/model/export.h"
#include "trainer/model/family.h"
#include "trainer/model/internal.h"
#include "trainer/model/lora.h"

typedef struct AdapterItem {
    const StTensor *src;
    GgmlType type;
    int64_t rows, cols;
    int permute_heads;
    const ModelConfig *c; /* the family's gguf_reorder of B's rows or A's columns */
    ModelModule mod;
    bool is_b;
} AdapterItem;

static int fill_adapter_tensor(void *ctx, void *dst, size_t nbytes, char *err, size_t errlen) {
    const AdapterItem *it = ctx;
    int64_t n = it->rows * it->cols;
    (void)nbytes;
    float *f = malloc((size_t)n * 2 * sizeof *f);
    if (!f) return store_error(err, errlen, 0, "gguf: out of memory converting the adapter");
    int rc = st_to_float(it->src, f, err, errlen);
    if (rc == 0 && it->permute_heads)
        gguf_permute_rows(f, it->rows, it->cols, it->permute_heads, f + n);
    if (rc == 0 && it->c->family->gguf_reorder)
        it->c->family->gguf_reorder(it->c, it->mod, f, it->rows, it->cols, it->is_b, f + n);
    if (rc == 0) rc = gguf_encode(it->type, f, n, it->cols, dst);
    free(f);
    return rc;
}

/* The adapter tensor of a module (under the decoder's prefix: a wrapper's
 * "model.language_model."), with or without PEFT's ".default" infix. */
static const StTensor *find(const SafeTensors *st, const ModelConfig *c, int layer, ModelModule mod,
                            char which) {
    char name[200];
    for (int dflt = 0; dflt < 2; dflt++) {
        snprintf(name, sizeof name, "base_model.model.%slayers.%d.%s.lora_%c%s.weight",
                 model_module_prefix(c), layer, model_module_path(mod), which,
                 dflt ? ".default" : "");
        const StTensor *t = st_find(st, name);
        if (t) return t;
    }
    return NULL;
}

int gguf_export_adapter(const char *adapter_dir, const ModelConfig *c, const char *base_name,
                        GgmlType dtype, const char *path, GgufReport *report, char *err,
                        size_t errlen) {
    if (dtype != GGML_TYPE_F32 && dtype != GGML_TYPE_F16 && dtype != GGML_TYPE_BF16)
        return store_error(err, errlen, 0, "gguf adapter: dtype must be F32, F16 or BF16");
    if (c->family->gguf_check && c->family->gguf_check(c, err, errlen) != 0) return -1;
    LoraSpec spec;
    if (lora_read_peft_spec(adapter_dir, c, &spec, err, errlen) != 0) return -1;
    char file[4200];
    if (path_join(file, sizeof file, adapter_dir, "adapter_model.safetensors", err, errlen) != 0)
        return -1;
    SafeTensors *st = st_open(file, err, errlen);
    if (!st) return -1;
    int n_items = 0;
    for (int l = 0; l < c->num_hidden_layers; l++)
        n_items += 2 * __builtin_popcount(spec.targets & model_layer_targets(c, l));
    AdapterItem *items = calloc((size_t)(n_items ? n_items : 1), sizeof *items);
    GgufWriter *w = gguf_writer_new();
    int rc = items && w ? 0 : store_error(err, errlen, 0, "gguf adapter: out of memory");
    if (rc == 0 && st_count(st) != n_items)
        rc = store_error(err, errlen, 0,
                         "%s: %d tensors, but r and target_modules of adapter_config.json and the "
                         "base's %d layers make %d",
                         file, st_count(st), c->num_hidden_layers, n_items);
    /* lorafit's scaling, times r: what llama.cpp divides by r again. */
    double scaling = spec.rslora ? (double)(float)(spec.alpha / sqrt((double)spec.r))
                                 : (double)(spec.alpha / (float)spec.r);
    float alpha = spec.rslora ? (float)(scaling * spec.r) : spec.alpha;
    const char *arch = gguf_arch_name(c);
    if (rc == 0) rc = gguf_set_str(w, "general.architecture", arch, err, errlen);
    if (rc == 0) rc = gguf_set_str(w, "general.type", "adapter", err, errlen);
    if (rc == 0 && base_name && *base_name)
        rc = gguf_set_str(w, "general.name", base_name, err, errlen);
    if (rc == 0) rc = gguf_set_str(w, "adapter.type", "lora", err, errlen);
    if (rc == 0) rc = gguf_set_f32(w, "adapter.lora.alpha", alpha, err, errlen);
    if (rc == 0) rc = gguf_set_u32(w, "general.quantization_version", 2, err, errlen);
    int k = 0;
    for (int l = 0; rc == 0 && l < c->num_hidden_layers; l++)
        for (int m = 0; rc == 0 && m < MODULE_COUNT; m++) {
            if (!(spec.targets & model_layer_targets(c, l) & (1u << m))) continue;
            int out, in;
            model_layer_module_dims(c, l, (ModelModule)m, &out, &in);
            const StTensor *a = find(st, c, l, (ModelModule)m, 'A');
            const StTensor *b = find(st, c, l, (ModelModule)m, 'B');
            if (!a || !b || a->ndim != 2 || b->ndim != 2 || a->shape[0] != spec.r ||
                a->shape[1] != in || b->shape[0] != out || b->shape[1] != spec.r) {
                rc = store_error(err, errlen, 0,
                                 "%s: layer %d %s: lora_A must be [%d, %d] and lora_B [%d, %d] "
                                 "for this base model (missing or another shape)",
                                 file, l, model_module_name((ModelModule)m), spec.r, in, out,
                                 spec.r);
                break;
            }
            bool permute = c->family->gguf_permute_qk;
            int heads = !permute        ? 0
                        : m == MODULE_Q ? c->num_attention_heads
                        : m == MODULE_K ? c->num_key_value_heads
                                        : 0;
            AdapterItem *ia = &items[k++], *ib = &items[k++];
            *ia = (AdapterItem){a, dtype, spec.r, in, 0, c, (ModelModule)m, false};
            *ib = (AdapterItem){b, dtype, out, spec.r, heads, c, (ModelModule)m, true};
            char name[64];
            int64_t ne_a[2] = {in, spec.r}, ne_b[2] = {spec.r, out};
            /* llama.cpp's names (its gemma4 applies adapters to inp_gate and proj too) */
            snprintf(name, sizeof name, "blk.%d.%s.weight.lora_a", l,
                     gguf_module_name((ModelModule)m));
            rc = gguf_add_tensor(w, name, dtype, 2, ne_a, NULL, fill_adapter_tensor, ia, err,
                                 errlen);
            snprintf(name, sizeof name, "blk.%d.%s.weight.lora_b", l,
                     gguf_module_name((ModelModule)m));
            if (rc == 0)
                rc = gguf_add_tensor(w, name, dtype, 2, ne_b, NULL, fill_adapter_tensor, ib, err,
                                     errlen);
        }
    if (rc == 0) rc = gguf_writer_save(w, path, err, errlen);
    if (rc == 0 && report) {
        memset(report, 0, sizeof *report);
        report->tensors = k;
        snprintf(report->arch, sizeof report->arch, "%s", arch);
        report->window_ignored = gguf_window_ignored(c);
        report->longrope_original = gguf_longrope_original(c);
    }
    gguf_writer_free(w);
    free(items);
    st_close(st);
    return rc;
}
