/* trainer/model/export.h — shipping what was trained: an adapter merged into its base, and
 * the GGUF files llama.cpp and Ollama load, written without Python.
 *
 *   merge        W += scaling * B A for every targeted linear, computed in double, written
 *                as a Hugging Face model directory (safetensors, sharded with an index
 *                when large; config.json, generation_config.json, tokenizer files copied)
 *   GGUF model   the base (or merged) model as llama.cpp's convert_hf_to_gguf.py writes
 *                it: architecture metadata, the tokenizer (from tokenizer.json) and the
 *                tensors under llama.cpp's names, with the Q/K row permutation of
 *                LlamaModel for Llama and Mistral
 *   GGUF adapter a PEFT adapter as convert_lora_to_gguf.py writes it (general.type
 *                adapter, adapter.lora.alpha, blk.N.<name>.weight.lora_a / .lora_b)
 *
 * Every writer goes through trainer/store (temporary name, fsync, rename); the caller owns
 * directory-level atomicity and the --force policy. */
#ifndef LORAFIT_EXPORT_H
#define LORAFIT_EXPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "trainer/model/decoder.h"
#include "trainer/store/store.h"

/* ---- merge (merge.c) -------------------------------------------------------------- */

/* out (OUT, IN) = W + scaling * B A of one linear, each element summed in double over the
 * rank, then rounded once to float. No adapter on that module: out = W. */
void merge_linear(const Model *m, const Lora *lora, int layer, ModelModule mod, float *out);

/* transformers' default max_shard_size ("5GB"): a merged model larger than this is split. */
#define MERGE_SHARD_BYTES 5000000000ull

/* A Hugging Face model directory's chat template (transformers >= 4.47 saves it so) and the
 * folder of its named ones (NAME.jinja); a lorafit adapter directory holds, as
 * CHAT_TEMPLATE_FILE, the template its training rendered its chat data with, which the
 * merged model takes instead of the base's default one. */
#define CHAT_TEMPLATE_FILE  "chat_template.jinja"
#define NAMED_TEMPLATES_DIR "additional_chat_templates"

typedef struct MergeOptions {
    StDtype dtype;           /* ST_F32, ST_F16 or ST_BF16: every floating-point tensor */
    uint64_t shard_size;     /* split the weights into shards of at most this (0: the default) */
    const char *adapter_dir; /* its CHAT_TEMPLATE_FILE, when there, replaces the base's */
} MergeOptions;

/* Writes the base model_dir with lora folded in (lora NULL: the base re-encoded) into
 * out_dir, which must exist (the caller builds it under a temporary name): every tensor of
 * the base checkpoint, in its dtype converted to opt->dtype (a wrapper's tensors outside the
 * language model byte-identical, in their own dtype); model.safetensors or
 * model-0000K-of-0000N.safetensors + model.safetensors.index.json; config.json with its
 * torch_dtype updated; generation_config.json, the (pre)processor and tokenizer files and the chat
 * template files copied when present (the adapter's chat template over the base's). */
int merge_write_hf(const Model *m, const Lora *lora, const char *model_dir, const char *out_dir,
                   const MergeOptions *opt, char *err, size_t errlen);

/* ---- GGUF (gguf_model.c, gguf_adapter.c, gguf_vocab.c) -------------------------------- */

/* What an export did, for the command to report. */
typedef struct GgufReport {
    int tensors;
    int fell_back_f16;         /* Q8_0 asked, row length not a multiple of 32: F16 instead */
    char fallback_example[64]; /* one such tensor */
    int requantized;           /* GGUF base: merged linears re-encoded in a block type (lossy) */
    char arch[16];             /* "llama", "qwen2" */
    char tokenizer[16];        /* "llama", "gpt2" */
    char pre[32];              /* tokenizer.ggml.pre */
    int window_ignored;        /* > 0: llama.cpp's arch has no sliding window, the model this
                                  one: llama.cpp differs past this many positions */
    int longrope_original;     /* > 0: longrope's original_max_position_embeddings, where
                                  llama.cpp picks the factors by its context size */
} GgufReport;

/* > 0 when llama.cpp's architecture for cfg has no sliding window and one of cfg's layers
 * slides: the positions past which llama.cpp's results differ (GgufReport.window_ignored). */
int gguf_window_ignored(const ModelConfig *cfg);

/* > 0 when cfg's RoPE is longrope: its original_max_position_embeddings. lorafit (as
 * transformers) takes the long factors for a pass whose sequence is longer than that, llama.cpp
 * (llama_model::get_rope_factors) for every position once its context, which it rounds up to
 * a multiple of 256, is longer (GgufReport.longrope_original). */
int gguf_longrope_original(const ModelConfig *cfg);

/* The llama.cpp architecture name for a config ("llama" for Llama and Mistral, "qwen2"). */
const char *gguf_arch_name(const ModelConfig *cfg);

/* m (loaded from model_dir, F32) with lora merged in when not NULL, as a GGUF model file:
 * dtype F32, F16, BF16 or Q8_0 for the matrices (norms and biases stay F32). The tokenizer
 * comes from model_dir/tokenizer.json (+ tokenizer_config.json, config.json, the chat
 * template files); adapter_dir's CHAT_TEMPLATE_FILE, when adapter_dir is not NULL and has
 * one, is the default chat template instead of the base's. */
int gguf_export_model(const Model *m, const Lora *lora, const char *model_dir,
                      const char *adapter_dir, GgmlType dtype, const char *path, GgufReport *report,
                      char *err, size_t errlen);

/* lora merged into m loaded from a GGUF base (merge_gguf.c), written to path as a GGUF file
 * in the base's layout: every key-value kept (adapter_dir's CHAT_TEMPLATE_FILE, when there,
 * as tokenizer.chat_template), every tensor but the decoder's linears byte-identical, each
 * linear W + scaling B A (merge_linear) re-encoded in its own type (keep_types; a linear
 * lora does not touch keeps its bytes) or, every linear, in dtype F32, F16, BF16 or Q8_0
 * (general.file_type set to it). Re-quantizing into a block type is lossy. */
int gguf_merge_base(const Model *m, const Lora *lora, const char *adapter_dir, bool keep_types,
                    GgmlType dtype, const char *path, GgufReport *report, char *err, size_t errlen);

/* The PEFT adapter in adapter_dir, for the base whose config.json is model_config, as a GGUF
 * LoRA adapter in dtype F32, F16 or BF16. rsLoRA: llama.cpp scales by alpha / r, so the
 * alpha written is lorafit's scaling * r (= alpha * sqrt(r)). */
int gguf_export_adapter(const char *adapter_dir, const ModelConfig *model_config,
                        const char *base_name, GgmlType dtype, const char *path, GgufReport *report,
                        char *err, size_t errlen);

/* llama.cpp's Q/K row permutation of convert_hf_to_gguf.py's LlamaModel.permute: rows
 * (n_head, 2, rows / n_head / 2) swapped to (n_head, rows / n_head / 2, 2), HF's rotate-half
 * layout to ggml's interleaved pairs. data is (rows, cols), permuted in place (scratch
 * holds rows * cols floats). */
void gguf_permute_rows(float *data, int64_t rows, int64_t cols, int n_head, float *scratch);

/* A model directory's chat template files, as transformers saves them: chat_template.jinja's
 * text (NULL when there is none), which replaces tokenizer_config.json's template, named ones
 * included, and the named templates of additional_chat_templates/NAME.jinja (names[i], texts[i]:
 * the file's stem and text, in name order). */
typedef struct GgufTemplateFiles {
    char *jinja;
    char **names, **texts;
    size_t n;
} GgufTemplateFiles;

/* The tokenizer metadata llama.cpp needs, from the texts of tokenizer.json and (either may
 * be NULL) tokenizer_config.json and config.json, and the template files (NULL: none), for a
 * model of vocab_size tokens: tokenizer.ggml.model ("llama" for SentencePiece-style BPE with
 * byte fallback, "gpt2" for byte-level BPE), .pre, .tokens, .token_type, .scores ("llama") or
 * .merges ("gpt2"), the special token ids, add_bos / add_eos, and the chat templates: the
 * default one as tokenizer.chat_template, named ones ("tool_use", ...) as
 * tokenizer.chat_template.NAME listed in tokenizer.chat_templates, as gguf-py writes them.
 * Where tokenizer_config.json and chat_template.jinja both hold one, the file's wins, as in
 * transformers and lorafit's tokenizer (gguf-py's convert_hf_to_gguf.py takes the config's).
 * what names the files in errors. A tokenizer llama.cpp cannot represent (another model type,
 * an unknown pre-tokenizer) is an error naming it. */
int gguf_vocab_from_json(GgufWriter *w, const char *tokenizer_json, size_t len,
                         const char *tokenizer_config, const char *config_json,
                         const GgufTemplateFiles *template_files, int vocab_size, const char *what,
                         GgufReport *report, char *err, size_t errlen);

#endif
