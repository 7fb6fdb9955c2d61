/* trainer/train/internal.h — the Trainer shared by train*.c files; not an API. */
#ifndef LORAFIT_TRAIN_INTERNAL_H
#define LORAFIT_TRAIN_INTERNAL_H

#include <stdbool.h>
#include <stdio.h>

#include "trainer/train/checkpoint.h"
#include "trainer/train/optim.h"
#include "trainer/train/train.h"

/* What of a step was not finite (StepResult.nonfinite): its update is then not applied. */
enum {
    NONFINITE_LOSS = 1,      /* the loss, over every rank's tokens */
    NONFINITE_GRAD_NORM = 2, /* the global gradient norm: NaN or inf exactly when some LoRA
                                gradient is (finite floats' squares cannot overflow a double) */
    NONFINITE_UPDATE = 4     /* loss and gradients finite, but AdamW's result would not be */
};

/* ---- preference.c: train.objective dpo | orpo ---- */
/* The metrics, TRL's names (PREF_METRIC_NAMES); DPO logs the first six, ORPO all. */
enum {
    PREF_REWARDS_CHOSEN,
    PREF_REWARDS_REJECTED,
    PREF_ACCURACIES,
    PREF_MARGINS,
    PREF_LOGPS_CHOSEN,
    PREF_LOGPS_REJECTED,
    PREF_NLL_LOSS,
    PREF_LOG_ODDS_RATIO,
    PREF_LOG_ODDS_CHOSEN,
    PREF_N
};
extern const char *const PREF_METRIC_NAMES[PREF_N];
int pref_metric_count(const Config *c);

/* A micro-batch's pairs as pref_loss reads them: rows i < P chosen, P + i rejected. */
typedef struct PrefPairs {
    int P, n;               /* pairs per batch; real pairs (the first n of each half) */
    const double *logps;    /* (2P) sum of each row's completion-token log-probabilities */
    const double *ref;      /* (2P) the same under the reference (DPO) */
    const int32_t *targets; /* (2P) completion tokens predicted in the row */
    const int32_t *tokens;  /* (2P) completion tokens in the row (IPO's length) */
    double nll_sum;         /* ORPO: the chosen rows' token cross-entropy, every token */
    int64_t nll_count;      /* ORPO: the tokens nll_sum's mean is over (the whole micro-batch's) */
    int mean_over; /* the pairs the means are over: the whole micro-batch's, every rank's */
} PrefPairs;
double pref_loss(const Config *c, const PrefPairs *p, double *metrics, double *d_row,
                 double *d_nll);

/* Pair key -> (chosen, rejected) reference log-probabilities. */
typedef struct PrefRefTable {
    uint64_t *keys; /* (cap) 0 = empty slot */
    double *refs;   /* (2 cap) */
    size_t cap, n;
} PrefRefTable;

/* What a preference run keeps besides the Trainer's: the reference and the buffers. */
typedef struct PrefRun {
    const Config *cfg;
    const Model *model;
    Graph *graph;
    Checkpointing *ckpt;   /* the policy's (train.gradient_checkpointing), or NULL */
    Checkpointing *ref_ck; /* the reference pass's and evaluation's layer graph */
    Lora *ref_lora;        /* the frozen initial adapter, or NULL: the base model */
    /* dpo.precompute_ref_log_probs: the reference log-probabilities of every pair of the
     * training and of the validation data, by pair key (computed once at the start) */
    PrefRefTable *train_refs, *valid_refs;
    PrefRefTable *refs;          /* the table pref_micro_batch reads (NULL: the reference pass) */
    double *ref, *logps, *d_row; /* (2P) */
    int32_t *counted, *tokens;   /* (2P) */
    int32_t *targets;            /* (2P T) ORPO's targets */
    Batch local;                 /* under mpirun: this rank's pairs of an evaluation batch */
    int32_t *local_store;        /* local's buffers (2P (4 T + 2)) */
    uint64_t *local_keys;        /* (P) */
} PrefRun;
int pref_run_init(PrefRun *pr, const Config *c, const Model *m, const Lora *policy, Graph *g,
                  Checkpointing *ckpt, char *err, size_t errlen);
void pref_run_free(PrefRun *pr);
/* Under mpirun, what a rank's pairs are part of: the micro-batch of every rank. */
typedef struct PrefShare {
    int pairs;           /* real pairs of the whole micro-batch (the means' divisor) */
    int64_t nll_tokens;  /* ORPO: the tokens its chosen rows predict (the NLL's divisor) */
    DropoutRows dropout; /* its rows' numbering in the micro-batch's (graph_set_dropout_rows) */
} PrefShare;
/* The tokens ORPO's NLL covers in chosen row r of b (every predicted token, prompt too). */
int64_t pref_nll_tokens(const Batch *b, int r);
/* One micro-batch: *loss and metrics[PREF_N], each the sum over b's pairs of their part of
 * the mean over the micro-batch's pairs (share, or b's own when share is NULL); with train,
 * the LoRA gradients of scale * loss are added. 0, or -1 with err. */
int pref_micro_batch(PrefRun *pr, const Batch *b, const PrefShare *share, const Lora *lora,
                     bool train, uint64_t seed, double scale, double *loss, double *metrics,
                     char *err, size_t errlen);
/* The reference log-probabilities of every pair of o's data (one pass, in file order)
 * into a new table (*out). Under mpirun each rank computes its pairs of every batch (o's
 * batch_size pairs per rank, as in training) and every rank gets the whole table. 0, or -1
 * with err, on every rank alike. */
int pref_precompute(PrefRun *pr, const DataOptions *o, PrefRefTable **out, char *err,
                    size_t errlen);
/* The loss (mean over pairs) and metrics (mean over batches) of the data of o. Under mpirun
 * a batch is o's batch_size pairs on each rank (the batch of one process with batch_size x
 * ranks, dealt out as in training) and max_batches counts those batches; every rank gets the
 * job's results, and a failure on any rank fails every rank. */
int pref_evaluate(PrefRun *pr, const Lora *lora, const DataOptions *o, int max_batches,
                  double *loss, double *metrics, int64_t *pairs, char *err, size_t errlen);

typedef struct StepResult {
    double loss;      /* mean over the step's target tokens */
    double grad_norm; /* before clipping */
    double lr;
    int64_t tokens;
    unsigned nonfinite;  /* NONFINITE_* bits; 0 when the update was applied */
    double pref[PREF_N]; /* preference objectives: the step's metrics (mean of micro-batches) */
} StepResult;

typedef struct Trainer {
    const Config *cfg; /* = &resolved once setup has chosen the precision */
    Config resolved;   /* the run's config with train.precision resolved (shallow copy) */
    /* lora.target_modules of resolved when the config has none: the family's default */
    char *default_targets[MODULE_COUNT];
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
    uint64_t *mb_keys;   /* preference data: the micro-batches' pair keys */
    PrefShare *mb_share; /* (grad_accum) under mpirun: what each micro-batch's means are over */
    LrSchedule schedule;
    int64_t total_steps;
    TrainState st;
    size_t cursor_cap;
    int64_t first_step; /* step the run (or resume) started from */
    int64_t last_saved_step;
    char last_checkpoint[4200]; /* rank 0: the newest checkpoint written or resumed from ("") */
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
    /* Data parallelism (data_parallel.c): this process is rank `rank` of `ranks` (0 of 1
     * without a launcher); it trains rows [rank*B, (rank+1)*B) of batches of B*ranks rows,
     * B = train.batch_size (data_options.batch_size is B*ranks). */
    int rank, ranks;
    float *sum_scratch; /* (ranks_sum_scratch(n)) for summing the gradients; NULL for 1 rank */
    bool preference;    /* train.objective dpo or orpo */
    PrefRun pref;
} Trainer;

/* data_parallel.c: the ranks' agreements. train_agree puts mine into v->status, votes
 * (ranks_vote) and returns the job's result: TRAIN_DONE when every rank is fine, else the
 * first failed rank's (err kept there only). train_agree_status votes on the result alone. */
TrainResult train_agree(TrainResult mine, RankVote *v, char *err, size_t errlen);
TrainResult train_agree_status(TrainResult mine, char *err, size_t errlen);
/* After rank 0 has claimed the output directory and chosen the precision (rc its result):
 * every rank takes rank 0's precision and checks that it runs the same job. */
TrainResult train_agree_plan(Trainer *t, TrainResult rc, char *err, size_t errlen);
/* After rank 0 has resumed or initialized the LoRA (rc): every rank gets rank 0's weights,
 * moments, progress and data cursor. */
TrainResult train_share_state(Trainer *t, TrainResult rc, char *err, size_t errlen);
/* Rows [row0, row0 + rows) of src into dst (buffers of rows * seq_len), targets recounted. */
void train_take_rows(Batch *dst, const Batch *src, int row0, int rows);
/* A preference batch's pairs [pair0, pair0 + pairs): their chosen and rejected rows, both on
 * this rank; share gets what the means of the whole batch are over. */
void train_take_pairs(Batch *dst, const Batch *src, int pair0, int pairs, PrefShare *share);

/* loop.c: the steps, evaluations and checkpoints until the run ends or is stopped. */
TrainResult train_loop(Trainer *t, char *err, size_t errlen);

/* nonfinite.c: a step r whose update was not applied (r->nonfinite set) under
 * train.on_nonfinite. TRAIN_DONE when it is skipped (counted; the loop goes on with the next
 * step), TRAIN_FAILED on every rank when the run stops there: the pending metrics line
 * written, nothing saved, and err (rank 0's) naming the step, what was not finite, the last
 * checkpoint and what to try. */
TrainResult train_nonfinite_step(Trainer *t, const StepResult *r, char *err, size_t errlen);

/* log.c: the clock, metrics.jsonl lines, the progress display, the summary. */
double train_now(void); /* monotonic seconds */
int train_log_open(Trainer *t, bool resumed, char *err, size_t errlen);
int train_log_step(Trainer *t, const StepResult *r, char *err, size_t errlen);
int train_log_eval(Trainer *t, double loss, int64_t tokens, char *err, size_t errlen);
int train_log_pref_eval(Trainer *t, double loss, const double *metrics, int64_t pairs, char *err,
                        size_t errlen);
void train_progress(Trainer *t, const StepResult *r);
void train_progress_end(Trainer *t);
void train_summary(const Trainer *t);

#endif
