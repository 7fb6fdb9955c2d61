/* trainer/train/internal.h — the Trainer shared by train*.c files; not an API. */
#ifndef LORAFIT_TRAIN_INTERNAL_H
#define LORAFIT_TRAIN_INTERNAL_H

#include <stdbool.h>
#include <stdio.h>

#include "trainer/train/checkpoint.h"
#include "trainer/train/optim.h"
#include "trainer/train/train.h"

typedef struct StepResult {
    double loss;      /* mean over the step's target tokens */
    double grad_norm; /* before clipping */
    double lr;
    int64_t tokens;
} StepResult;

typedef struct Trainer {
    const Config *cfg; /* = &resolved once setup has chosen the precision */
    Config resolved;   /* the run's config with train.precision resolved (shallow copy) */
    Model *model;
    Lora *lora;
    DataReader *data;
    DataOptions data_options; /* of the training set; its paths point into cfg */
    TrainText text;           /* the tokenizer and template of a text data.format */
    Graph *graph;
    /* train.gradient_checkpointing: the layer graph (loop.c); NULL when off */
    Checkpointing *ckpt;
    float *m, *v; /* AdamW moments, flat in lora_params() order */
    Batch *mb;    /* (grad_accum) micro-batches of the current step */
    int32_t *mb_store;
    LrSchedule schedule;
    int64_t total_steps;
    TrainState st;
    size_t cursor_cap;
    int64_t first_step; /* step the run (or resume) started from */
    int64_t last_saved_step;
    StepResult last;
    double last_eval_loss;
    bool evaluated;
    FILE *metrics; /* OUTPUT_DIR/metrics.jsonl, appended */
    char base_name[256];
    double run_start, elapsed_base;    /* this process's start; elapsed before a resume */
    double step_seconds, save_seconds; /* this process's time in steps / checkpoints */
    double log_time;                   /* train_now() at the previous metrics line */
    int lock_fd; /* holds OUTPUT_DIR/.lock for the whole run; -1 before setup takes it */
    bool tty;
    bool progress_open;   /* a progress line awaits its newline */
    int64_t first_tokens; /* st.tokens when this process started */
} Trainer;

/* loop.c: the steps, evaluations and checkpoints until the run ends or is stopped. */
TrainResult train_loop(Trainer *t, char *err, size_t errlen);

/* log.c: the clock, metrics.jsonl lines, the progress display, the summary. */
double train_now(void); /* monotonic seconds */
int train_log_open(Trainer *t, bool resumed, char *err, size_t errlen);
int train_log_step(Trainer *t, const StepResult *r, char *err, size_t errlen);
int train_log_eval(Trainer *t, double loss, int64_t tokens, char *err, size_t errlen);
void train_progress(Trainer *t, const StepResult *r);
void train_progress_end(Trainer *t);
void train_summary(const Trainer *t);

#endif
