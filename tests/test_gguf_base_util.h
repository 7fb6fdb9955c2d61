/* tests/test_gguf_base_util.h — what the GGUF base suites share (test_gguf_base.c,
 * test_gguf_base_quant.c): small models, their GGUF files, a first training step to compare. */
#ifndef LORAFIT_TEST_GGUF_BASE_UTIL_H
#define LORAFIT_TEST_GGUF_BASE_UTIL_H

#include <stdbool.h>
#include <stddef.h>

#include "trainer/model/model.h"
#include "trainer/store/store.h"

/* A random model of make_model's arch (2 layers, hidden 256, intermediate 512) in dir, with
 * qwen3-untied's tokenizer (vocab 320), which the GGUF writer needs. */
void gb_make_hf(const char *dir, const char *arch);
/* model_dir as an F32 GGUF at path, by lorafit's writer (what merge --format gguf writes). */
void gb_export_f32(const char *model_dir, const char *path);

typedef struct GbStep {
    double loss;
    float *grads; /* every LoRA gradient (caller frees) */
    size_t n;
} GbStep;
/* The first step on m: a LoRA of r 4 on every linear, A and B random (seeded), a batch of
 * 2 x 24 random ids. */
GbStep gb_first_step(const Model *m);
/* The steps agree: bit for bit (tol 0), or the loss within tol relative and the gradients
 * within 10 tol of their norm. */
void gb_same_step(GbStep a, GbStep b, double tol, const char *what);

/* Every key-value of f into w but those whose key starts with skip_prefix (NULL: none). */
void gb_copy_metadata(const GgufFile *f, GgufWriter *w, const char *skip_prefix);
/* src (an F32 GGUF) into dst with the layers' linear matrices quantized to type row by row
 * (llama-quantize's blocks without an importance matrix); embeddings: token_embd and output
 * too; dequantized: stored F32, holding the blocks' values. */
void gb_requantize(const char *src, const char *dst, GgmlType type, bool dequantized,
                   bool embeddings);
/* src with every quantized tensor dequantized: an F32 GGUF of the values its blocks hold. */
void gb_dequantize_file(const char *src, const char *dst);
/* src (a GGUF) into dst with tensor `name` (F32 in src, 1 or 2 dimensions) stored in `type`,
 * quantized row by row; the rest as it is. */
void gb_retype(const char *src, const char *dst, const char *name, GgmlType type);
/* src into dst without the keys that start with prefix ("tokenizer.": no tokenizer). */
void gb_without_keys(const char *src, const char *dst, const char *prefix);

#endif
