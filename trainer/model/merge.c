/* trainer/model/merge.c — an adapter folded into its base (see export.h).
 *
 * W' = W + scaling * B A, each element's sum over the rank taken in double and W' rounded
 * once to float: the merged weights are then the float64 merge rounded, within 6e-8
 * relative (one float rounding), far inside what any consumer can tell apart.
 *
 * The Hugging Face directory is written tensor by tensor through fill callbacks, so a
 * merge holds one tensor in memory besides the memory-mapped base. Every tensor of the base
 * checkpoint is kept (also those lorafit does not model), in the base's order; floating
 * point tensors are converted to the requested dtype, others copied. A wrapper checkpoint's
 * tensors outside the language model (vision tower, projector) are copied byte for byte in
 * their own dtype: lorafit did not train them and does not model them. */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tensor/tensor.h"
#include "trainer/model/export.h"
#include "trainer/model/internal.h"
#include "trainer/model/lora.h"

void merge_linear(const Model *m, const Lora *lora, int layer, ModelModule mod, float *out) {
    const Tensor *w = model_weight(m, layer, mod);
    int64_t rows = w->shape[0], cols = w->shape[1];
    Tensor *A = NULL, *B = NULL;
    if (w->quant) /* model.quantize: the dequantized base, as PEFT merges into a 4-bit one */
        tensor_dequantize_rows(out, w, 0, rows);
    else if (w->bf16)
        tensor_bf16_rows_to_float(out, w, 0, rows);
    else
        memcpy(out, w->data, (size_t)(rows * cols) * sizeof(float));
    if (!lora || !lora_module(lora, layer, mod, &A, &B)) return;
    /* alpha / r (or alpha / sqrt(r)) in double: lora_scaling's float rounding would cost
     * 3e-8 of the update, relative errors of 1e-5 where W and s B A nearly cancel */
    const LoraSpec *spec = lora_spec(lora);
    const double s = spec->rslora ? (double)spec->alpha / sqrt((double)spec->r)
                                  : (double)spec->alpha / (double)spec->r;
    const int64_t r = A->shape[0];
    const float *a = A->data, *b = B->data; /* A (R, IN), B (OUT, R): both small */
#pragma omp parallel for schedule(static) if (rows * cols * r > (1 << 20))
    for (int64_t o = 0; o < rows; o++)
        for (int64_t i = 0; i < cols; i++) {
            double sum = 0.0;
            for (int64_t k = 0; k < r; k++) sum += (double)b[o * r + k] * (double)a[k * cols + i];
            out[o * cols + i] = (float)((double)out[o * cols + i] + s * sum);
        }
}

/* "model.layers.7.self_attn.q_proj.weight" (the decoder's prefix m->prefix, "model." unless
 * a wrapper's) -> layer 7, MODULE_Q. */
static bool parse_linear(const Model *m, const char *name, int *layer, ModelModule *mod) {
    int l, used = 0;
    size_t skip = strlen(m->prefix);
    if (strncmp(name, m->prefix, skip) != 0) return false;
    name += skip;
    if (sscanf(name, "layers.%d.%n", &l, &used) != 1 || used == 0 || l < 0 ||
        l >= m->cfg.num_hidden_layers)
        return false;
    for (int k = 0; k < MODULE_COUNT; k++) {
        char tail[64];
        snprintf(tail, sizeof tail, "%s.weight", model_module_path((ModelModule)k));
        if (strcmp(name + used, tail) == 0) {
            *layer = l;
            *mod = (ModelModule)k;
            return true;
        }
    }
    return false;
}

typedef struct MergeItem {
    const Model *m;
    const Lora *lora;
    const StTensor *src;
    StDtype dtype; /* output */
    int layer;     /* >= 0: a linear to merge */
    ModelModule mod;
} MergeItem;

static int fill_merged(void *ctx, void *dst, size_t nbytes, char *err, size_t errlen) {
    const MergeItem *it = ctx;
    (void)nbytes;
    if (it->dtype == it->src->dtype && it->layer < 0) {
        memcpy(dst, it->src->data, it->src->nbytes);
        return 0;
    }
    float *f = it->dtype == ST_F32 ? dst : malloc((size_t)it->src->numel * sizeof(float));
    if (!f) return store_error(err, errlen, 0, "out of memory merging '%s'", it->src->name);
    int rc = 0;
    if (it->layer >= 0)
        merge_linear(it->m, it->lora, it->layer, it->mod, f);
    else
        rc = st_to_float(it->src, f, err, errlen);
    if (rc == 0 && it->dtype != ST_F32)
        tensor_floats_to_half(dst, f, it->src->numel, it->dtype == ST_BF16);
    if (f != dst) free(f);
    return rc;
}

static bool is_float(StDtype d) {
    return d == ST_F32 || d == ST_F16 || d == ST_BF16;
}

static const char *torch_dtype_name(StDtype d) {
    return d == ST_F16 ? "float16" : d == ST_BF16 ? "bfloat16" : "float32";
}

/* config.json with the dtype set to the merged weights': "torch_dtype" (transformers 4) and
 * "dtype" (transformers 5's name) where the base has it, key order kept. */
static int write_config(const char *model_dir, const char *out_dir, StDtype dtype, char *err,
                        size_t errlen) {
    char path[4200];
    if (path_join(path, sizeof path, model_dir, "config.json", err, errlen) != 0) return -1;
    json_error_t je;
    json_t *cfg = json_load_file(path, 0, &je);
    if (!json_is_object(cfg)) {
        json_decref(cfg);
        return store_error(err, errlen, 0, "%s:%d:%d: %s", path, je.line, je.column, je.text);
    }
    bool v5 = json_object_get(cfg, "dtype") != NULL;
    if (v5) json_object_set_new(cfg, "dtype", json_string(torch_dtype_name(dtype)));
    if (!v5 || json_object_get(cfg, "torch_dtype"))
        json_object_set_new(cfg, "torch_dtype", json_string(torch_dtype_name(dtype)));
    char *text = json_dumps(cfg, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
    json_decref(cfg);
    int rc = text ? path_join(path, sizeof path, out_dir, "config.json", err, errlen)
                  : store_error(err, errlen, 0, "out of memory writing config.json");
    if (rc == 0) {
        size_t n = strlen(text);
        text[n] = '\n';
        rc = fsio_write_file(path, text, n + 1, err, errlen);
    }
    free(text);
    return rc;
}

/* Files a Hugging Face model directory carries besides the weights and config.json. */
static const char *const copied_files[] = {"generation_config.json",
                                           "preprocessor_config.json", /* a wrapper's images */
                                           "processor_config.json",
                                           "tokenizer.json",
                                           "tokenizer_config.json",
                                           "special_tokens_map.json",
                                           "tokenizer.model",
                                           "vocab.json",
                                           "merges.txt",
                                           "added_tokens.json",
                                           CHAT_TEMPLATE_FILE};

/* model_dir/name to out_dir/name when it exists (name may hold one folder). Only its
 * absence skips it: a file that is there but cannot be read (no permission, a directory, a
 * symlink loop) is an error naming it, never a merged model silently missing its tokenizer. */
static int copy_if_there(const char *model_dir, const char *out_dir, const char *name, char *err,
                         size_t errlen) {
    char src[4200], dst[4200];
    if (path_join(src, sizeof src, model_dir, name, err, errlen) != 0 ||
        path_join(dst, sizeof dst, out_dir, name, err, errlen) != 0)
        return -1;
    size_t len;
    bool failed;
    char *data = store_read_file_if_there(src, (size_t)1 << 30, &len, &failed, err, errlen);
    int rc = failed ? -1 : data ? fsio_write_file(dst, data, len, err, errlen) : 0;
    free(data);
    return rc;
}

static int copy_side_files(const char *model_dir, const char *out_dir, char *err, size_t errlen) {
    for (size_t i = 0; i < sizeof copied_files / sizeof copied_files[0]; i++)
        if (copy_if_there(model_dir, out_dir, copied_files[i], err, errlen) != 0) return -1;
    char dir[4200];
    if (path_join(dir, sizeof dir, model_dir, NAMED_TEMPLATES_DIR, err, errlen) != 0) return -1;
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? 0 : store_error(err, errlen, errno, "%s: cannot open", dir);
    int rc = path_join(dir, sizeof dir, out_dir, NAMED_TEMPLATES_DIR, err, errlen);
    if (rc == 0 && mkdir(dir, 0755) != 0 && errno != EEXIST)
        rc = store_error(err, errlen, errno, "%s: cannot create", dir);
    for (struct dirent *e; rc == 0 && (e = readdir(d)) != NULL;) {
        if (!is_named_template(e->d_name)) continue;
        char name[600];
        snprintf(name, sizeof name, "%s/%.500s", NAMED_TEMPLATES_DIR, e->d_name);
        rc = copy_if_there(model_dir, out_dir, name, err, errlen);
    }
    closedir(d);
    return rc;
}

/* The adapter's chat template, the one its training rendered, over the base's. */
static int copy_adapter_template(const char *adapter_dir, const char *out_dir, char *err,
                                 size_t errlen) {
    return adapter_dir ? copy_if_there(adapter_dir, out_dir, CHAT_TEMPLATE_FILE, err, errlen) : 0;
}

/* Writes one shard (items[begin, end)) to path. */
static int write_shard(MergeItem *items, int begin, int end, const char *path, char *err,
                       size_t errlen) {
    StWriter *w = st_writer_new();
    if (!w) return store_error(err, errlen, 0, "%s: out of memory", path);
    int rc = 0;
    for (int i = begin; rc == 0 && i < end; i++) {
        const StTensor *t = items[i].src;
        rc = st_writer_add_fill(w, t->name, items[i].dtype, t->ndim, t->shape, fill_merged,
                                &items[i], err, errlen);
    }
    if (rc == 0) rc = st_writer_save(w, path, err, errlen);
    st_writer_free(w);
    return rc;
}

static size_t out_bytes(const MergeItem *it) {
    return (size_t)it->src->numel * st_dtype_size(it->dtype);
}

static int write_index(const MergeItem *items, int n, const int *shard_of, int n_shards,
                       uint64_t total, const char *out_dir, char *err, size_t errlen) {
    json_t *map = json_object(), *root = json_object();
    for (int i = 0; i < n; i++) {
        char file[64];
        snprintf(file, sizeof file, "model-%05d-of-%05d.safetensors", shard_of[i] + 1, n_shards);
        json_object_set_new(map, items[i].src->name, json_string(file));
    }
    json_object_set_new(root, "metadata", json_pack("{s:I}", "total_size", (json_int_t)total));
    json_object_set_new(root, "weight_map", map);
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(root);
    char path[4200];
    int rc =
        text ? path_join(path, sizeof path, out_dir, "model.safetensors.index.json", err, errlen)
             : store_error(err, errlen, 0, "out of memory writing the index");
    if (rc == 0) rc = fsio_write_file(path, text, strlen(text), err, errlen);
    free(text);
    return rc;
}

int merge_write_hf(const Model *m, const Lora *lora, const char *model_dir, const char *out_dir,
                   const MergeOptions *opt, char *err, size_t errlen) {
    if (m->gguf)
        return store_error(err, errlen, 0,
                           "merge: %s is a GGUF base: it merges into a GGUF file (--format gguf, "
                           "or an --out ending in .gguf), or merge into the Hugging Face model "
                           "it was made from",
                           model_dir);
    if (m->dtype != MODEL_F32)
        return store_error(err, errlen, 0, "merge: the base must be loaded as F32");
    if (!is_float(opt->dtype))
        return store_error(err, errlen, 0, "merge: dtype must be F32, F16 or BF16");
    int n = 0;
    for (int s = 0; s < st_checkpoint_shards(m->ckpt); s++)
        n += st_count(st_checkpoint_shard(m->ckpt, s));
    MergeItem *items = calloc((size_t)(n ? n : 1), sizeof *items);
    int *shard_of = calloc((size_t)(n ? n : 1), sizeof *shard_of);
    if (!items || !shard_of) {
        free(items);
        free(shard_of);
        return store_error(err, errlen, 0, "merge: out of memory");
    }
    int k = 0;
    uint64_t total = 0;
    for (int s = 0; s < st_checkpoint_shards(m->ckpt); s++) {
        const SafeTensors *st = st_checkpoint_shard(m->ckpt, s);
        for (int i = 0; i < st_count(st); i++, k++) {
            MergeItem *it = &items[k];
            it->m = m;
            it->lora = lora;
            it->src = st_tensor_at(st, i);
            /* a wrapper's vision tower and projector are not lorafit's: written as they are */
            bool ours = model_is_language_tensor(m, it->src->name);
            it->dtype = is_float(it->src->dtype) && ours ? opt->dtype : it->src->dtype;
            it->layer = -1;
            if (!parse_linear(m, it->src->name, &it->layer, &it->mod) ||
                !(model_layer_targets(&m->cfg, it->layer) & (1u << it->mod)))
                it->layer = -1;
            total += out_bytes(it);
        }
    }
    /* transformers' rule: a new shard when the next tensor would pass the limit. */
    uint64_t limit = opt->shard_size ? opt->shard_size : MERGE_SHARD_BYTES, in_shard = 0;
    int n_shards = 1;
    for (int i = 0; i < n; i++) {
        if (in_shard > 0 && in_shard + out_bytes(&items[i]) > limit) {
            n_shards++;
            in_shard = 0;
        }
        shard_of[i] = n_shards - 1;
        in_shard += out_bytes(&items[i]);
    }
    int rc = 0;
    char path[4200];
    for (int s = 0, begin = 0; rc == 0 && s < n_shards; s++) {
        int end = begin;
        while (end < n && shard_of[end] == s) end++;
        char file[64];
        if (n_shards == 1)
            snprintf(file, sizeof file, "model.safetensors");
        else
            snprintf(file, sizeof file, "model-%05d-of-%05d.safetensors", s + 1, n_shards);
        rc = path_join(path, sizeof path, out_dir, file, err, errlen);
        if (rc == 0) rc = write_shard(items, begin, end, path, err, errlen);
        begin = end;
    }
    if (rc == 0 && n_shards > 1)
        rc = write_index(items, n, shard_of, n_shards, total, out_dir, err, errlen);
    if (rc == 0) rc = write_config(model_dir, out_dir, opt->dtype, err, errlen);
    if (rc == 0) rc = copy_side_files(model_dir, out_dir, err, errlen);
    if (rc == 0) rc = copy_adapter_template(opt->adapter_dir, out_dir, err, errlen);
    free(items);
    free(shard_of);
    return rc;
}
