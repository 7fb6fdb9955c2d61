/* trainer/train/train.h — the training run behind `lorafit train`, and evaluation.
 *
 * A run: load the model, attach LoRA (fresh, from lora.init_from, or from a checkpoint),
 * stream micro-batches, and for each optimizer step average the loss over every target
 * token of its grad_accum micro-batches, clip the global gradient norm, and apply AdamW at
 * the scheduled learning rate, unless the loss, the gradient or the update is not finite
 * (train.on_nonfinite: the run stops, exit 1, or the update is skipped). Metrics go to
 * OUTPUT_DIR/metrics.jsonl, progress to stderr, checkpoints every output.save_every steps, the
 * final adapter to OUTPUT_DIR/adapter.
 *
 * This header is trainer/train/'s whole API (it includes optim.h, checkpoint.h and ranks.h:
 * the optimizer, the checkpoint format, and the ranks of a job started by mpirun); code
 * outside the folder includes only it.
 * Dependencies: trainer/model, trainer/config, trainer/store, data/, tensor/, and OpenMPI
 * (ranks.c alone).
 *
 * Under `mpirun -np N` a run is data-parallel (data_parallel.c): train.batch_size rows per
 * rank, the gradients summed over ranks in rank order, rank 0 alone writing. */
#ifndef LORAFIT_TRAIN_H
#define LORAFIT_TRAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "data/data.h"
#include "trainer/config/config.h"
#include "trainer/model/model.h"
#include "trainer/train/checkpoint.h"
#include "trainer/train/optim.h"
#include "trainer/train/ranks.h"

/* How a run ended; trainer/cli/ maps these to exit codes 0, 130, 1 and 2. */
typedef enum {
    TRAIN_DONE,    /* every step ran and the final adapter is written */
    TRAIN_STOPPED, /* SIGINT/SIGTERM: stopped after a step, checkpoint saved */
    TRAIN_FAILED,  /* a runtime failure: I/O, corrupt files, bad data, out of memory, a step
                      that is not finite */
    TRAIN_REFUSED  /* the config or the command asks for something that cannot be done: a
                      missing path, a resume that would change the result, a directory in use */
} TrainResult;

typedef struct TrainOptions {
    bool resume;            /* --resume given */
    const char *resume_dir; /* --resume DIR, or NULL for the newest complete checkpoint */
} TrainOptions;

/* Runs (or resumes) the training job described by cfg. Prints progress and a summary to
 * stderr; err is filled when the result is TRAIN_FAILED or TRAIN_REFUSED. */
TrainResult train_run(const Config *cfg, const TrainOptions *opt, char *err, size_t errlen);

/* Which data a DataOptions describes: the training set (shuffled as configured, for the
 * configured epochs), the validation set, or for `lorafit eval` the validation set when
 * there is one and else the training set (both in order, one pass). */
typedef enum { TRAIN_DATA_TRAIN, TRAIN_DATA_VALID, TRAIN_DATA_EVAL } TrainData;
/* The data options of cfg for that data; o->paths points into cfg. */
void train_data_options(const Config *cfg, TrainData which, int vocab_size, DataOptions *o);

/* The tokenizer of a model path: a directory's tokenizer.json (tokenizer_load), or, when path
 * is a file, a GGUF model's tokenizer.ggml.* and tokenizer.chat_template* metadata
 * (gguf_tokenizer.c). NULL with err (a file that is no GGUF, carries no tokenizer, or one
 * lorafit cannot build, named with what and where). */
Tokenizer *train_tokenizer_load(const char *path, char *err, size_t errlen);
/* path names a regular file (a GGUF model, where a directory would be a Hugging Face one). */
bool train_path_is_file(const char *path);

/* What a text data.format needs, loaded once and shared read-only by every reader. */
typedef struct TrainText {
    DataFormat format;           /* resolved (auto decided from the first record) */
    Tokenizer *tokenizer;        /* NULL for tokens */
    ChatTemplate *chat_template; /* chat only: data.chat_template, else the tokenizer's */
    char *chat_template_text;    /* its source (the run keeps it as CHAT_TEMPLATE_FILE) */
    json_t *chat_context;        /* the template's special-token variables */
} TrainText;
/* Loads, for cfg's training data, the tokenizer (data.tokenizer, or model.path) when the
 * format is a text one and the chat template when it is chat. 0; -1 for a runtime failure
 * (unreadable or unsupported tokenizer); -2 for a usage error (no tokenizer.json where one
 * is needed, no chat template, a template that does not parse). err says what. */
int train_text_load(const Config *cfg, TrainText *tt, char *err, size_t errlen);
void train_text_free(TrainText *tt);
/* Points the text fields of o (filled by train_data_options) at tt. */
void train_text_attach(const TrainText *tt, DataOptions *o);

/* The LoRA shape of cfg; -1 with err for an unknown target module name. */
int train_lora_spec(const Config *cfg, LoraSpec *spec, char *err, size_t errlen);

/* The model of cfg (model.path) in the configured in-memory dtype: BF16 weights when
 * model.dtype is bf16 or train.precision is bf16 (the products then read them in place).
 * NULL with err. */
Model *train_load_model(const Config *cfg, char *err, size_t errlen);
/* model.quantize's ggml type (GGML_TYPE_F32 for none), for model_load_quantized. */
GgmlType train_quantize_type(ConfigQuantize q);
/* 0 when data.seq_len fits the positions model m computes exactly, else -1 with err. */
int train_check_seq_len(const Config *cfg, const Model *m, char *err, size_t errlen);

/* The precision asked for (train.precision or a --precision option) resolved on this CPU:
 * auto is bf16 where the CPU multiplies bf16 natively and faster than f32
 * (tensor_cpu_bf16_faster: AMX-BF16, or AVX512-BF16 outside Intel's AVX512-FP16 cores) and
 * f32 elsewhere; bf16 asked for explicitly on another CPU runs emulated (bf16-rounded inputs
 * through OpenBLAS, slower than f32). note gets one line for the user: what runs and why. */
ConfigPrecision train_resolve_precision(ConfigPrecision asked, char *note, size_t notelen);
/* The TensorPrecision of a resolved ConfigPrecision (f32 or bf16). */
TensorPrecision train_tensor_precision(ConfigPrecision resolved);

/* Mean loss over the data of o (at most max_batches micro-batches, 0 = all):
 * *loss = sum of token losses / *tokens. Returns 0, or -1 with err. Under mpirun every rank
 * calls it: the ranks share the batches out (a micro-batch of the job is o->batch_size rows
 * on each rank) and all return the same total, or all -1 (err kept on one rank only). */
int evaluate_loss(const Model *m, const Lora *lora, const DataOptions *o, int max_batches, Graph *g,
                  double *loss, int64_t *tokens, char *err, size_t errlen);
/* The same with the decoder layers run one at a time in ck's layer graph (gradient
 * checkpointing: one layer's activations held; the same bits); ck NULL = evaluate_loss. */
int evaluate_loss_checkpointed(const Model *m, const Lora *lora, const DataOptions *o,
                               int max_batches, Graph *g, Checkpointing *ck, double *loss,
                               int64_t *tokens, char *err, size_t errlen);

/* train.objective dpo | orpo: the evaluation of lorafit train on the data of o (o's
 * batch_size pairs per rank, at most max_batches batches, 0 = all) with policy lora (NULL:
 * the base model) and c's reference: *loss the mean over pairs, metrics[k] (k < *n_metrics,
 * at most TRAIN_PREF_METRICS) the mean over batches of each batch's, named names[k] (TRL's
 * names, without "eval_"), *pairs the pairs. 0, or -1 with err; under mpirun every rank calls
 * it and all return the same, as evaluate_loss. */
#define TRAIN_PREF_METRICS 9
int evaluate_preference(const Config *c, const Model *m, const Lora *lora, const DataOptions *o,
                        int max_batches, Graph *g, double *loss, double *metrics,
                        const char *const **names, int *n_metrics, int64_t *pairs, char *err,
                        size_t errlen);

/* The loss-curve picture of a run (plot.c): training and evaluation loss of metrics_path's
 * lines up to max_step (INT64_MAX: all) against the step, as an 800x500 PNG at png_path
 * (written atomically). -1 with err when the file cannot be read or holds no loss. */
int train_plot_loss(const char *metrics_path, int64_t max_step, const char *title,
                    const char *png_path, char *err, size_t errlen);

/* The model card of an adapter directory (card.c): README.md as PEFT writes one (YAML front
 * matter with base_model, library_name peft, tags lora and lorafit) with what was trained,
 * from run_dir's config.resolved.yaml and metrics.jsonl (lines up to max_step), and next
 * to it loss.png. run_dir NULL or without those files: the card says what the adapter's
 * adapter_config.json says. */
#define CARD_FILE    "README.md"
#define CARD_PICTURE "loss.png"
int train_write_model_card(const char *adapter_dir, const char *run_dir, int64_t max_step,
                           char *err, size_t errlen);

/* The chat template a run rendered its chat data with: train_run keeps it in the output
 * directory as CHAT_TEMPLATE_FILE (and removes one a run without chat data finds there);
 * train_copy_chat_template copies run_dir's into adapter_dir, so that the adapter carries the
 * template it was trained on (merge, generate --chat and the serving notes take it from
 * there). Nothing to do when run_dir is NULL or has none. */
int train_copy_chat_template(const char *adapter_dir, const char *run_dir, char *err,
                             size_t errlen);

/* Checks that every path the config names exists (model.path, lora.init_from, data files
 * or glob matches); an error names the key. Returns 0 or -1. */
int train_check_paths(const Config *cfg, char *err, size_t errlen);

#endif
