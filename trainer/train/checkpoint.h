/* trainer/train/checkpoint.h — checkpoint directories that a run can resume from exactly.
 *
 *   OUTPUT_DIR/checkpoint-STEP/
 *     adapter_model.safetensors   the LoRA tensors (PEFT layout, always F32 so resume is exact)
 *     adapter_config.json
 *     trainer_state.safetensors   AdamW moments "exp_avg.<name>" / "exp_avg_sq.<name>" (F32),
 *                                 the data cursor "data_cursor" (U8), and in __metadata__ the
 *                                 step, token count, timing, log accumulators, config
 *                                 fingerprint and format version (numbers as %.17g text),
 *                                 and "ranks" for a job of several MPI ranks
 *     MANIFEST                    size + CRC-32 of the three files above, written last
 *
 * A checkpoint is built in "checkpoint-STEP.tmp-PID" and renamed into place only when its
 * MANIFEST is written, so a run killed at any instant leaves the previous checkpoint intact
 * and never a half-written one under a real name. */
#ifndef LORAFIT_CHECKPOINT_H
#define LORAFIT_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "trainer/model/model.h"

#define CHECKPOINT_FORMAT_VERSION "1"

/* Everything besides the LoRA tensors and moments that a resumed run needs to continue
 * exactly where the saved one was. */
typedef struct TrainState {
    int64_t step;        /* optimizer steps completed */
    int64_t tokens;      /* non-ignored target tokens trained on so far */
    double elapsed_s;    /* training wall time so far, across resumes */
    double log_loss_sum; /* sum of step losses since the last metrics line */
    int64_t log_steps;   /* steps since the last metrics line */
    int64_t log_tokens;  /* tokens since the last metrics line */
    /* train.objective dpo | orpo: sums of the micro-batch metrics since the last metrics
     * line, and their count (saved as metadata "log_preference" when the count is > 0) */
    double log_pref[9];
    int64_t log_pref_n;
    double best_eval_loss; /* +inf before the first evaluation */
    /* train.on_nonfinite: skip — steps whose update was dropped (loss, gradient or update not
     * finite): in all, in a row up to the last step, and since the last metrics line. Saved
     * (as metadata of those names) once the first step was skipped; absent means 0. */
    int64_t nonfinite_skipped, nonfinite_streak, log_skipped;
    int threads;       /* thread count the run used (results are exact per count) */
    int ranks;         /* MPI ranks of the job (batches of batch_size x ranks rows); 1 for
                          a plain run, saved as metadata "ranks" only when above 1 */
    char *config_keys; /* config_result_keys() of the run; owned (malloc) */
    uint8_t *cursor;   /* the data reader's cursor blob; owned (malloc) */
    size_t cursor_size;
} TrainState;

void train_state_free(TrainState *s);

/* Writes OUT_DIR/checkpoint-STEP (replacing one of the same step). m and v are the AdamW
 * moments, flat in lora_params() order. */
int checkpoint_save(const char *out_dir, const Lora *lora, const float *m, const float *v,
                    const TrainState *state, const char *base_model_name, char *err, size_t errlen);

/* Verifies DIR's MANIFEST, then loads the adapter into lora, the moments into m and v and
 * the rest into *state (which the caller frees with train_state_free). */
int checkpoint_load(const char *dir, Lora *lora, float *m, float *v, TrainState *state, char *err,
                    size_t errlen);

/* The config fingerprint (config_result_keys text) a checkpoint was saved with, so that a
 * resume can name the differing keys before it tries to load tensors of another shape.
 * *keys is malloc'ed. 0 or -1 with err. */
int checkpoint_read_config_keys(const char *dir, char **keys, char *err, size_t errlen);

/* Deletes the oldest checkpoint-STEP directories so that `keep` remain, and any leftover
 * temporaries ("checkpoint-*.tmp-*", "*.old-*") from runs that were killed. */
int checkpoint_prune(const char *out_dir, int keep, char *err, size_t errlen);

/* Writes a directory atomically: builds DIR.tmp-PID with fill(), then swaps it into place
 * (an existing DIR is replaced only after the new one is complete). */
int checkpoint_write_dir(const char *dir,
                         int (*fill)(const char *tmp_dir, void *ctx, char *err, size_t errlen),
                         void *ctx, char *err, size_t errlen);

/* The final adapter: OUTPUT_DIR/adapter as a PEFT directory (F32), written like a checkpoint
 * (built under a temporary name, renamed into place when complete). */
int checkpoint_write_adapter(const char *output_dir, const Lora *lora, const char *base_name,
                             char *err, size_t errlen);

#endif
