/* trainer/model/gguf_base.c — a .gguf file as the base model (see decoder.h): the inverse of
 * gguf_model.c's writer, tensor by tensor.
 *
 * The file is mapped and validated whole by gguf_read, its metadata becomes the ModelConfig
 * (gguf_config.c), and every tensor the config implies is looked up under llama.cpp's name
 * (token_embd, blk.N.attn_q ..., the family's FamilyNorm.gguf_name, output_norm, output) and
 * checked for its shape. Then, as a directory's weights (weights.c):
 *   - matrices in a ggml block type (Q8_0 ... Q6_K) stay in their blocks (tensor_init_quant),
 *     in the mapping; the ops dequantize tiles of them;
 *   - F32 matrices are used in place; F16 and BF16 ones are converted to F32 once (with
 *     model dtype BF16: BF16 used in place, the others rounded to BF16);
 *   - with model.quantize, float linears are quantized at load as a directory's are;
 *   - norm weights and biases (small) are copied to F32 and given back their Hugging Face
 *     form (ModelFamily.gguf_unnorm: Gemma's w + 1 -> w).
 * llama.cpp's Q/K row permutation (arch llama: LlamaModel.permute) is undone by reading the
 * rows of q and k (weights and biases) in the Hugging Face order: whole rows, so a quantized
 * matrix stays in place and is read through a row map (Tensor.quant_row_of: the stored row of
 * each Hugging Face row; no load-time copy of Llama-3.1-8B's 365 MB of Q4_K_M q/k), a float
 * one is permuted into an owned copy, made once at load. A family's own reorder
 * (ModelFamily.gguf_reorder: Qwen3.5's value heads) is undone the same way, its maps taken
 * from the writer's hook applied to indices; columns only in float matrices.
 * Everything not used in place is in one allocation (Model.gguf_owned).
 *
 * The file's identity for the resume fingerprint (model_base_identity): its size and a 64-bit
 * FNV-1a hash of the whole header (metadata and tensor table) and of samples of the data (the
 * first and last 4 KiB of every tensor and 64 bytes of every MiB): cheap at any size, and it
 * tells apart another model, another quantization or a re-export. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "trainer/model/internal.h"

bool model_path_is_gguf(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int model_config_load(const char *path, ModelConfig *cfg, char *err, size_t errlen) {
    if (!model_path_is_gguf(path)) {
        char file[4200];
        if (path_join(file, sizeof file, path, "config.json", err, errlen) != 0) return -1;
        return hf_config_load(file, cfg, err, errlen);
    }
    GgufFile *f = gguf_open(path, err, errlen);
    int rc = f ? gguf_base_config(f, cfg, err, errlen) : -1;
    gguf_close(f);
    return rc;
}

const char *model_base_identity(const Model *m) {
    return m->gguf_identity;
}

/* One tensor the config implies. Shapes are PyTorch's: (rows, cols); a vector is (n, 1). */
typedef struct Piece {
    char name[96];
    Tensor *dst;
    int64_t rows, cols;
    bool vector, linear;
    int permute_heads; /* > 0: q or k rows of that many heads, in llama.cpp's order */
    int64_t *row_of;   /* NULL, or the file's row of each Hugging Face row (gguf_reorder) */
    int64_t *col_of;   /* NULL, or the file's column of each Hugging Face column */
    bool conv;         /* Qwen3.5's conv (CH, KW): F32, its order undone by gguf_unnorm */
    int norm;          /* a norm weight's slot (NORM_SLOTS: the final norm); -1: none */
    const GgufTensorInfo *src;
    GgmlType type; /* in memory */
    size_t owned;  /* bytes in Model.gguf_owned; 0: in place */
} Piece;

typedef struct Pieces {
    Piece *p;
    int n;
} Pieces;

static Piece *add(Pieces *l, Tensor *dst, int64_t rows, int64_t cols, const char *fmt, int layer,
                  const char *leaf) {
    Piece *p = &l->p[l->n++];
    snprintf(p->name, sizeof p->name, fmt, layer, leaf);
    p->dst = dst, p->rows = rows, p->cols = cols, p->vector = cols == 1, p->norm = -1;
    return p;
}

static void list_pieces(Model *m, Pieces *l) {
    const ModelConfig *c = &m->cfg;
    const ModelFamily *f = c->family;
    add(l, &m->embed, c->vocab_size, c->hidden_size, "token_embd.weight%.0d%s", 0, "");
    for (int i = 0; i < c->num_hidden_layers; i++) {
        ModelLayer *L = &m->layers[i];
        for (int k = 0; k < f->n_norms; k++) {
            const FamilyNorm *n = &f->norms[k];
            if (!family_layer_has_norm(c, i, n)) continue;
            bool conv = n->slot == LINEAR_CONV;
            Piece *p = add(l, &L->norm[n->slot], family_norm_length(c, i, n),
                           conv ? c->linear.conv_kernel : 1, "blk.%d.%s", i, n->gguf_name);
            p->norm = (int)n->slot, p->conv = conv;
        }
        for (int mod = 0; mod < MODULE_COUNT; mod++) {
            if (!(model_layer_modules(c, i) & (1u << mod))) continue;
            int out, in;
            model_layer_module_dims(c, i, (ModelModule)mod, &out, &in);
            int heads = !f->gguf_permute_qk ? 0
                        : mod == MODULE_Q   ? c->num_attention_heads
                        : mod == MODULE_K   ? c->num_key_value_heads
                                            : 0;
            Piece *w = add(l, &L->w[mod], out, in, "blk.%d.%s.weight", i,
                           gguf_module_name((ModelModule)mod));
            w->linear = true, w->permute_heads = heads;
            bool bias = ((mod <= MODULE_V || mod == MODULE_QKV) && c->qkv_bias) ||
                        (mod == MODULE_O && c->o_bias);
            if (bias)
                add(l, &L->b[mod], out, 1, "blk.%d.%s.bias", i, gguf_module_name((ModelModule)mod))
                    ->permute_heads = heads;
        }
    }
    add(l, &m->final_norm, c->hidden_size, 1, "output_norm.weight%.0d%s", 0, "")->norm = NORM_SLOTS;
    if (!c->tie_word_embeddings)
        add(l, &m->lm_head, c->vocab_size, c->hidden_size, "output.weight%.0d%s", 0, "");
}

/* The family's gguf_reorder of linear p, as maps: the writer's hook applied to the indices
 * (exact in float below 2^24) gives the Hugging Face index at each file position. NULL where
 * it keeps the order. 0, or -1 when out of memory. */
static int reorder_maps(const Model *m, Piece *p, ModelModule mod) {
    const ModelFamily *f = m->cfg.family;
    for (int side = 0; side < 2; side++) {
        int64_t n = side == 0 ? p->rows : p->cols;
        float *idx = malloc((size_t)n * 2 * sizeof *idx);
        int64_t *map = malloc((size_t)n * sizeof *map);
        if (!idx || !map) {
            free(idx), free(map);
            return -1;
        }
        for (int64_t i = 0; i < n; i++) idx[i] = (float)i;
        if (side == 0)
            f->gguf_reorder(&m->cfg, mod, idx, n, 1, true, idx + n);
        else
            f->gguf_reorder(&m->cfg, mod, idx, 1, n, false, idx + n);
        bool same = true;
        for (int64_t at = 0; at < n; at++) map[(int64_t)idx[at]] = at, same &= idx[at] == at;
        free(idx);
        if (same) free(map), map = NULL;
        *(side == 0 ? &p->row_of : &p->col_of) = map;
    }
    return 0;
}

static bool is_float_type(GgmlType t) {
    return t == GGML_TYPE_F32 || t == GGML_TYPE_F16 || t == GGML_TYPE_BF16;
}

static size_t align64(size_t n) {
    return (n + 63) / 64 * 64;
}

static bool reordered(const Piece *p) {
    return p->permute_heads || p->row_of || p->col_of;
}

/* Finds p's tensor, checks it and decides its type in memory and its owned bytes. */
static int check_piece(const Model *m, Piece *p, const char *path, char *err, size_t errlen) {
    const GgufTensorInfo *t = p->src = gguf_find_tensor(m->gguf, p->name);
    if (!t) {
        snprintf(err, errlen, "%s: tensor %s is missing (the metadata's %s model needs it)", path,
                 p->name, m->cfg.family->gguf_arch);
        return -1;
    }
    bool shape_ok = p->vector ? t->n_dims == 1 && t->ne[0] == p->rows
                              : t->n_dims == 2 && t->ne[0] == p->cols && t->ne[1] == p->rows;
    if (!shape_ok) {
        char want[64];
        if (p->vector)
            snprintf(want, sizeof want, "[%lld]", (long long)p->rows);
        else
            snprintf(want, sizeof want, "[%lld, %lld]", (long long)p->cols, (long long)p->rows);
        snprintf(err, errlen,
                 "%s: tensor %s has %d dimensions [%lld, %lld, ...] (ggml order) but the "
                 "metadata implies %s",
                 path, p->name, t->n_dims, (long long)t->ne[0], (long long)t->ne[1], want);
        return -1;
    }
    GgmlType src = t->type;
    if (p->col_of && !is_float_type(src)) {
        snprintf(err, errlen,
                 "%s: tensor %s is %s, and lorafit cannot undo llama.cpp's order of its columns "
                 "(value heads) inside quantized blocks",
                 path, p->name, ggml_type_name(src));
        return -1;
    }
    if (p->conv) {
        if (src != GGML_TYPE_F32) {
            snprintf(err, errlen,
                     "%s: tensor %s is %s; lorafit reads it as F32 (as the converter "
                     "writes it)",
                     path, p->name, ggml_type_name(src));
            return -1;
        }
        p->type = GGML_TYPE_F32;
        p->owned = align64((size_t)p->rows * (size_t)p->cols * sizeof(float));
        return 0;
    }
    if (p->vector) {
        if (!is_float_type(src)) {
            snprintf(err, errlen,
                     "%s: tensor %s is %s; lorafit reads norm weights and biases as F32, F16 or "
                     "BF16",
                     path, p->name, ggml_type_name(src));
            return -1;
        }
        p->type = GGML_TYPE_F32;
        p->owned = align64((size_t)p->rows * sizeof(float));
        return 0;
    }
    size_t cells = (size_t)p->rows * (size_t)p->cols;
    if (!is_float_type(src)) { /* a block type: kept in place, read through a row map */
        p->type = src;
        p->owned = p->permute_heads || p->row_of ? align64((size_t)p->rows * sizeof(int64_t)) : 0;
    } else if (p->linear && m->quant != GGML_TYPE_F32) {
        p->type = model_quant_type_for(m->quant, p->cols);
        p->owned = align64((size_t)p->rows * ggml_row_bytes(p->type, p->cols));
    } else if (m->dtype == MODEL_BF16) {
        p->type = GGML_TYPE_BF16;
        p->owned = src == GGML_TYPE_BF16 && !reordered(p) ? 0 : align64(cells * 2);
    } else {
        p->type = GGML_TYPE_F32;
        bool aligned = (uintptr_t)t->data % sizeof(float) == 0;
        p->owned = src == GGML_TYPE_F32 && !reordered(p) && aligned ? 0 : align64(cells * 4);
    }
    return 0;
}

/* The file's row of Hugging Face row r: LlamaModel.permute put row h*D + j*D/2 + i (j the
 * half) at h*D + 2i + j. */
static int64_t file_row(const Piece *p, int64_t r) {
    if (p->row_of) return p->row_of[r];
    if (!p->permute_heads) return r;
    int64_t hd = p->rows / p->permute_heads, half = hd / 2, h = r / hd, in = r % hd;
    return h * hd + 2 * (in % half) + in / half;
}

static const uint8_t *src_row(const Piece *p, int64_t r) {
    size_t bytes = ggml_row_bytes(p->src->type, p->vector ? 1 : p->cols);
    return (const uint8_t *)p->src->data + (size_t)file_row(p, r) * bytes;
}

/* Points p's tensor at its data: the mapping, or `owned` filled. */
static int place_piece(Model *m, Piece *p, uint8_t *owned, char *err, size_t errlen) {
    const int64_t shape[2] = {p->rows, p->cols};
    GgmlType src = p->src->type;
    if (p->vector || p->conv) {
        float *v = (float *)owned;
        int64_t n = p->rows * p->cols;
        if (p->conv)
            memcpy(v, p->src->data, (size_t)n * sizeof *v);
        else
            for (int64_t r = 0; r < n; r++) quant_dequantize_row(src, src_row(p, r), v + r, 1);
        if (p->norm >= 0 && m->cfg.family->gguf_unnorm)
            m->cfg.family->gguf_unnorm(&m->cfg, (LayerNormSlot)p->norm, v, n);
        for (int64_t i = 0; i < n; i++)
            if (!isfinite(v[i])) {
                snprintf(err, errlen,
                         "%s: tensor %s: value %lld is not finite (as lorafit reads it)",
                         gguf_file_path(m->gguf), p->name, (long long)i);
                return -1;
            }
        tensor_init(p->dst, v, p->conv ? 2 : 1, shape);
        m->weight_bytes += (size_t)n * sizeof(float);
        return 0;
    }
    if (!is_float_type(src)) { /* in place; rows in llama.cpp's order read through a map */
        if (tensor_init_quant(p->dst, p->src->data, src, p->rows, p->cols) != 0) goto fail;
        if (p->owned) {
            int64_t *stored = (int64_t *)owned;
            for (int64_t r = 0; r < p->rows; r++) stored[r] = file_row(p, r);
            p->dst->quant_row_of = stored;
        }
        m->weight_bytes += p->src->nbytes;
        return 0;
    }
    m->weight_bytes += p->owned ? p->owned : p->src->nbytes;
    if (!p->owned) {
        if (p->type == GGML_TYPE_F32)
            tensor_init(p->dst, (float *)p->src->data, 2, shape); /* read-only, never written */
        else if (p->type == GGML_TYPE_BF16)
            tensor_init_bf16(p->dst, p->src->data, 2, shape);
        else if (tensor_init_quant(p->dst, p->src->data, p->type, p->rows, p->cols) != 0)
            goto fail;
        return 0;
    }
    size_t row_bytes = ggml_row_bytes(p->type, p->cols);
    int failed = 0;
#pragma omp parallel reduction(| : failed)
    {
        float *row = malloc((size_t)p->cols * 2 * sizeof *row);
        failed |= row == NULL;
#pragma omp for schedule(static)
        for (int64_t r = 0; r < p->rows; r++) {
            if (!row) continue;
            uint8_t *dst = owned + (size_t)r * row_bytes;
            if (p->type == src && !p->col_of) { /* the same bytes, in the Hugging Face row order */
                memcpy(dst, src_row(p, r), row_bytes);
                continue;
            }
            failed |= quant_dequantize_row(src, src_row(p, r), row, p->cols) != 0;
            if (p->col_of) { /* the Hugging Face column order, through the row's second half */
                float *tmp = row + p->cols;
                for (int64_t i = 0; i < p->cols; i++) tmp[i] = row[p->col_of[i]];
                memcpy(row, tmp, (size_t)p->cols * sizeof *row);
            }
            if (p->type == GGML_TYPE_BF16)
                for (int64_t i = 0; i < p->cols; i++)
                    ((uint16_t *)dst)[i] = tensor_float_to_bf16(row[i]);
            else if (p->type == GGML_TYPE_F32)
                memcpy(dst, row, (size_t)p->cols * sizeof *row);
            else
                failed |= quant_quantize_row(p->type, row, dst, p->cols) != 0;
        }
        free(row);
    }
    if (failed) goto fail;
    tensor_release_pages(p->src->data, p->src->nbytes); /* copied: not resident twice */
    if (p->type == GGML_TYPE_F32)
        tensor_init(p->dst, (float *)owned, 2, shape);
    else if (p->type == GGML_TYPE_BF16)
        tensor_init_bf16(p->dst, (uint16_t *)owned, 2, shape);
    else if (tensor_init_quant(p->dst, owned, p->type, p->rows, p->cols) != 0)
        goto fail;
    return 0;
fail:
    snprintf(err, errlen, "%s: tensor %s: converting %s to %s failed (out of memory?)",
             gguf_file_path(m->gguf), p->name, ggml_type_name(src), ggml_type_name(p->type));
    return -1;
}

static uint64_t fnv1a(uint64_t h, const void *data, size_t n) {
    const uint8_t *b = data;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* h extended by n bytes of fp at offset `at`: 0, or -1 when they cannot be read. */
static int hash_at(FILE *fp, uint64_t at, size_t n, uint64_t *h) {
    uint8_t buf[65536];
    if (fseeko(fp, (off_t)at, SEEK_SET) != 0) return -1;
    while (n) {
        size_t got = fread(buf, 1, n < sizeof buf ? n : sizeof buf, fp);
        if (got == 0) return -1;
        *h = fnv1a(*h, buf, got), n -= got;
    }
    return 0;
}

/* See the top: the header, then samples of each tensor's data, read from the file rather
 * than the mapping (whose folios around each sample would stay resident: embed_rows.c). */
static int identify(Model *m, const char *path, char *err, size_t errlen) {
    uint64_t h = 0xcbf29ce484222325ull;
    FILE *fp = fopen(path, "rb");
    size_t data = gguf_data_offset(m->gguf);
    int rc = fp ? hash_at(fp, 0, data, &h) : -1;
    for (int i = 0; rc == 0 && i < gguf_tensor_total(m->gguf); i++) {
        const GgufTensorInfo *t = gguf_tensor_at(m->gguf, i);
        uint64_t d = data + t->offset;
        size_t edge = t->nbytes < 4096 ? t->nbytes : 4096;
        rc = hash_at(fp, d, edge, &h) | hash_at(fp, d + t->nbytes - edge, edge, &h);
        for (size_t at = (size_t)1 << 20; rc == 0 && at + 64 <= t->nbytes; at += (size_t)1 << 20)
            rc = hash_at(fp, d + at, 64, &h);
    }
    if (fp) fclose(fp);
    if (rc != 0) {
        snprintf(err, errlen, "%s: cannot read it again to identify it", path);
        return -1;
    }
    snprintf(m->gguf_identity, sizeof m->gguf_identity, "gguf %zu bytes, sample hash %016llx",
             gguf_file_size(m->gguf), (unsigned long long)h);
    return 0;
}

int gguf_base_load(Model *m, const char *path, char *err, size_t errlen) {
    if (!(m->gguf = gguf_open(path, err, errlen))) return -1;
    if (gguf_base_config(m->gguf, &m->cfg, err, errlen) != 0) return -1;
    const ModelConfig *c = &m->cfg;
    m->prefix = "model.", m->lm_head_name = "lm_head.weight";
    m->layers = calloc((size_t)c->num_hidden_layers, sizeof *m->layers);
    int max = 3 + c->num_hidden_layers * (c->family->n_norms + 2 * MODULE_COUNT);
    Pieces l = {calloc((size_t)max, sizeof(Piece)), 0};
    int rc = m->layers && l.p ? 0 : -1;
    if (rc != 0) snprintf(err, errlen, "%s: out of memory", path);
    if (rc == 0) list_pieces(m, &l);
    for (int i = 0; rc == 0 && c->family->gguf_reorder && i < l.n; i++)
        for (int k = 0; l.p[i].linear && k < c->num_hidden_layers; k++)
            for (int mod = 0; mod < MODULE_COUNT; mod++)
                if (l.p[i].dst == &m->layers[k].w[mod] &&
                    reorder_maps(m, &l.p[i], (ModelModule)mod) != 0) {
                    snprintf(err, errlen, "%s: out of memory", path);
                    rc = -1;
                }
    size_t owned = 0;
    for (int i = 0; rc == 0 && i < l.n; i++) {
        rc = check_piece(m, &l.p[i], path, err, errlen);
        owned += l.p[i].owned;
    }
    if (rc == 0 && owned && !(m->gguf_owned = aligned_alloc(64, owned))) {
        snprintf(err, errlen, "%s: out of memory for %zu bytes of converted weights", path, owned);
        rc = -1;
    }
    m->converted_bytes = owned;
    uint8_t *next = m->gguf_owned;
    for (int i = 0; rc == 0 && i < l.n; i++) {
        rc = place_piece(m, &l.p[i], next, err, errlen);
        next += l.p[i].owned;
        m->param_count += (size_t)(l.p[i].rows * l.p[i].cols);
    }
    if (rc == 0 && c->tie_word_embeddings) m->lm_head = m->embed;
    for (int i = 0; rc == 0 && !c->tie_word_embeddings && i < l.n; i++)
        if (l.p[i].dst == &m->embed && !l.p[i].owned)
            rc = model_embed_from_file(m, path, gguf_data_offset(m->gguf) + l.p[i].src->offset, err,
                                       errlen);
    if (rc == 0) rc = identify(m, path, err, errlen);
    for (int i = 0; l.p && i < l.n; i++) free(l.p[i].row_of), free(l.p[i].col_of);
    free(l.p);
    return rc;
}
