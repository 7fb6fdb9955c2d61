/* tests/fuzz/fuzz_trainer_state.h — the model, adapter and checkpoint directory behind the
 * trainer-state harness; gen_seeds.c saves its seed state from the same fixture. */
#ifndef LORAFIT_FUZZ_TRAINER_STATE_H
#define LORAFIT_FUZZ_TRAINER_STATE_H

#include <stdio.h>
#include <stdlib.h>

#include "trainer/train/train.h"
#include "trainer/model/model.h"

#define FUZZ_STATE_MODEL "tests/data/train/qwen2-untied/model" /* relative to the repo root */

typedef struct FuzzStateFixture {
    Model *model;
    Lora *lora;
    float *m, *v; /* (n) AdamW moments */
    size_t n;
    char ckpt[600]; /* OUT/checkpoint-1 */
} FuzzStateFixture;

/* Loads the model, makes the adapter and saves checkpoint-1 under out_dir. */
static inline int fuzz_state_fixture(FuzzStateFixture *fx, const char *out_dir) {
    char err[1024];
    fx->model = model_load(FUZZ_STATE_MODEL, err, sizeof err);
    if (!fx->model) {
        fprintf(stderr, "%s (run from the repository root)\n", err);
        return -1;
    }
    LoraSpec spec = {.r = 2, .alpha = 4, .rslora = false, .dropout = 0, .targets = LORA_Q};
    fx->lora = lora_create(fx->model, &spec, err, sizeof err);
    if (!fx->lora) return -1;
    lora_init_fresh(fx->lora, 5);
    lora_params(fx->lora, &fx->n);
    fx->m = calloc(fx->n, sizeof *fx->m);
    fx->v = calloc(fx->n, sizeof *fx->v);
    if (!fx->m || !fx->v) return -1;
    for (size_t i = 0; i < fx->n; i++) fx->m[i] = 0.5f / (float)(i + 1), fx->v[i] = 1e-3f;
    uint8_t cursor[24] = {1, 2, 3, 4};
    TrainState s = {.step = 1,
                    .tokens = 40,
                    .elapsed_s = 0.25,
                    .log_steps = 1,
                    .log_tokens = 40,
                    .log_loss_sum = 4.5,
                    .best_eval_loss = 1.0 / 0.0,
                    .nonfinite_skipped = 1, /* the skip counters' metadata in the seed too */
                    .nonfinite_streak = 1,
                    .log_skipped = 1,
                    .threads = 1,
                    .config_keys = "lora.r=2\n",
                    .cursor = cursor,
                    .cursor_size = sizeof cursor};
    if (checkpoint_save(out_dir, fx->lora, fx->m, fx->v, &s, "model", err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    snprintf(fx->ckpt, sizeof fx->ckpt, "%s/checkpoint-1", out_dir);
    return 0;
}

#endif
