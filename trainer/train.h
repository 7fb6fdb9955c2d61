/* trainer/train.h — the training run behind `lorafit train`, and evaluation.
 *
 * A run: load the model, attach LoRA (fresh, from lora.init_from, or from a checkpoint),
 * stream micro-batches, and for each optimizer step average the loss over every target
 * token of its grad_accum micro-batches, clip the global gradient norm, and apply AdamW at
 * the scheduled learning rate. Metrics go to OUTPUT_DIR/metrics.jsonl, progress to stderr,
 * checkpoints every output.save_every steps, the final adapter to OUTPUT_DIR/adapter. */
#ifndef LORAFIT_TRAIN_H
#define LORAFIT_TRAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "data/data.h"
#include "trainer/config.h"
#include "trainer/lora.h"
#include "trainer/model.h"

/* Exit codes (SPEC section 1). */
enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2, EXIT_STOPPED = 130 };

typedef struct TrainOptions {
    bool resume;            /* --resume given */
    const char *resume_dir; /* --resume DIR, or NULL for the newest complete checkpoint */
} TrainOptions;

/* Runs (or resumes) the training job described by cfg. Prints progress and a summary to
 * stderr; returns an exit code, with err filled when it is not EXIT_OK / EXIT_STOPPED. */
int train_run(const Config *cfg, const TrainOptions *opt, char *err, size_t errlen);

/* The data options of cfg for the training set (train = true) or the validation set
 * (shuffle off, one epoch). o->paths points into cfg. */
void train_data_options(const Config *cfg, bool train, int vocab_size, DataOptions *o);

/* The LoRA shape of cfg (exit-2 style error for an unknown target module name). */
int train_lora_spec(const Config *cfg, LoraSpec *spec, char *err, size_t errlen);

/* Mean loss over the validation data (at most max_batches micro-batches, 0 = all):
 * *loss = sum of token losses / *tokens. Returns 0, or -1 with err. */
int evaluate_loss(const Model *m, const Lora *lora, const DataOptions *o, int max_batches, Graph *g,
                  double *loss, int64_t *tokens, char *err, size_t errlen);

/* Checks that every path the config names exists (model.path, lora.init_from, data files
 * or glob matches); an error names the key. Returns 0 or -1. */
int train_check_paths(const Config *cfg, char *err, size_t errlen);

#endif
