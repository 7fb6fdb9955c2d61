/* trainer/train/data_parallel.c — one job on N ranks: how they agree and what they share.
 *
 * Why every rank reads the whole stream: each rank opens the same reader with batches of
 * B × N rows (B = train.batch_size) and keeps rows [rank·B, (rank+1)·B) of every batch. So a
 * global step holds exactly the rows a 1-process run with batch_size B × N would take, the
 * data cursor is the same on every rank (one cursor in the checkpoint serves them all), and
 * a resume needs nothing per rank. Reading token data is cheap next to a training step.
 *
 * Why votes: a collective that one rank skips hangs the others, so a rank never returns on
 * a failure of its own. It carries the failure to the job's next vote (train_agree), where
 * every rank learns it at the same point and every rank returns the same result; the first
 * failed rank alone keeps the message, so it is printed once.
 *
 * Without a launcher (N = 1) every function here returns at once and changes nothing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/tensor.h"
#include "trainer/train/internal.h"

TrainResult train_agree(TrainResult mine, RankVote *v, char *err, size_t errlen) {
    v->status = (int)mine;
    ranks_vote(v, err, errlen);
    return (TrainResult)v->status;
}

TrainResult train_agree_status(TrainResult mine, char *err, size_t errlen) {
    RankVote v = {0};
    return train_agree(mine, &v, err, errlen);
}

/* The keys every rank must agree on, as "key=value\n" lines: all but where and how often
 * rank 0 writes (output.*, log.*) and what may differ per machine without changing a bit
 * (train.threads, train.gradient_checkpointing). Unlike the resume fingerprint this keeps
 * train.max_steps, eval.* and data.valid: they decide which collectives a rank runs. */
static char *job_keys(const Config *c) {
    size_t cap = 4096, len = 0;
    char *text = malloc(cap), value[4096];
    for (int i = 0; text && config_key_path(i); i++) {
        const char *kp = config_key_path(i);
        if (!strncmp(kp, "output.", 7) || !strncmp(kp, "log.", 4) || !strcmp(kp, "train.threads") ||
            !strcmp(kp, "train.gradient_checkpointing"))
            continue;
        if (config_format_value(c, i, value, sizeof value) < 0) value[0] = '\0';
        size_t need = strlen(kp) + strlen(value) + 3;
        if (len + need > cap) {
            while (len + need > cap) cap *= 2;
            char *grown = realloc(text, cap);
            if (!grown) free(text);
            text = grown;
            if (!text) break;
        }
        len += (size_t)snprintf(text + len, cap - len, "%s=%s\n", kp, value);
    }
    return text;
}

/* Rank 0's job text to every rank; a rank whose own differs refuses, naming the keys. */
static TrainResult check_same_job(Trainer *t, char *err, size_t errlen) {
    char *mine = job_keys(t->cfg);
    int64_t len = mine ? (int64_t)strlen(mine) : -1;
    ranks_broadcast(&len, sizeof len); /* rank 0's */
    char *first = t->rank == 0 ? mine : len >= 0 ? malloc((size_t)len + 1) : NULL;
    TrainResult rc = mine && first ? TRAIN_DONE : TRAIN_FAILED;
    if (rc != TRAIN_DONE) snprintf(err, errlen, "out of memory comparing the ranks' configs");
    if ((rc = train_agree_status(rc, err, errlen)) == TRAIN_DONE) {
        ranks_broadcast(first, (size_t)len + 1);
        char diff[1024];
        if (t->rank != 0 && config_diff_result_keys(first, mine, diff, sizeof diff) != 0) {
            snprintf(err, errlen,
                     "the config differs from rank 0's in %s: every rank must run the same job "
                     "(the same config file and --set options)",
                     diff);
            rc = TRAIN_REFUSED;
        }
    }
    if (first != mine) free(first);
    free(mine);
    return rc;
}

TrainResult train_agree_plan(Trainer *t, TrainResult rc, char *err, size_t errlen) {
    if ((rc = train_agree_status(rc, err, errlen)) != TRAIN_DONE || t->ranks == 1) return rc;
    int32_t precision = (int32_t)t->cfg->train.precision; /* resolved by rank 0 */
    ranks_broadcast(&precision, sizeof precision);
    if (t->rank != 0) {
        t->resolved = *t->cfg;
        t->resolved.train.precision = (ConfigPrecision)precision;
        t->cfg = &t->resolved;
    }
    rc = check_same_job(t, err, errlen);
    return train_agree_status(rc, err, errlen);
}

/* What a resumed run continues from besides tensors and cursor (TrainState's numbers). */
typedef struct SharedProgress {
    int64_t step, tokens, log_steps, log_tokens, nonfinite_skipped, nonfinite_streak, log_skipped;
    double elapsed_s, log_loss_sum, best_eval_loss;
} SharedProgress;

TrainResult train_share_state(Trainer *t, TrainResult rc, char *err, size_t errlen) {
    if ((rc = train_agree_status(rc, err, errlen)) != TRAIN_DONE || t->ranks == 1) return rc;
    size_t n;
    float *p = lora_params(t->lora, &n);
    ranks_broadcast(p, n * sizeof *p);
    ranks_broadcast(t->m, n * sizeof *t->m);
    ranks_broadcast(t->v, n * sizeof *t->v);
    TrainState *s = &t->st;
    SharedProgress sp = {s->step,
                         s->tokens,
                         s->log_steps,
                         s->log_tokens,
                         s->nonfinite_skipped,
                         s->nonfinite_streak,
                         s->log_skipped,
                         s->elapsed_s,
                         s->log_loss_sum,
                         s->best_eval_loss};
    ranks_broadcast(&sp, sizeof sp);
    s->step = sp.step, s->tokens = sp.tokens, s->log_steps = sp.log_steps;
    s->log_tokens = sp.log_tokens, s->elapsed_s = sp.elapsed_s;
    s->nonfinite_skipped = sp.nonfinite_skipped, s->nonfinite_streak = sp.nonfinite_streak;
    s->log_skipped = sp.log_skipped;
    s->log_loss_sum = sp.log_loss_sum, s->best_eval_loss = sp.best_eval_loss;
    /* The data cursor: rank 0's, restored by the others (which also proves that every rank
     * sees the same data files: the cursor fingerprints them). */
    uint64_t size = t->rank == 0 ? data_cursor_size(t->data) : 0;
    ranks_broadcast(&size, sizeof size);
    uint8_t *blob = malloc(size ? size : 1);
    rc = blob ? TRAIN_DONE : TRAIN_FAILED;
    if (!blob)
        snprintf(err, errlen, "out of memory for the data cursor (%llu bytes)",
                 (unsigned long long)size);
    if (rc == TRAIN_DONE && t->rank == 0 && data_cursor_save(t->data, blob, size, err, errlen) != 0)
        rc = TRAIN_FAILED;
    if ((rc = train_agree_status(rc, err, errlen)) == TRAIN_DONE) {
        ranks_broadcast(blob, size);
        if (t->rank != 0 && data_cursor_restore(t->data, blob, size, err, errlen) != 0)
            rc = TRAIN_FAILED;
        rc = train_agree_status(rc, err, errlen);
    }
    free(blob);
    if (t->rank != 0) {
        t->first_step = s->step, t->first_tokens = s->tokens;
        t->last_saved_step = s->step, t->elapsed_base = s->elapsed_s;
    }
    return rc;
}

void train_take_rows(Batch *dst, const Batch *src, int row0, int rows) {
    size_t T = (size_t)src->seq_len, skip = (size_t)row0 * T, len = (size_t)rows * T;
    memcpy(dst->input_ids, src->input_ids + skip, len * sizeof(int32_t));
    memcpy(dst->targets, src->targets + skip, len * sizeof(int32_t));
    memcpy(dst->positions, src->positions + skip, len * sizeof(int32_t));
    memcpy(dst->segments, src->segments + skip, len * sizeof(int32_t));
    int64_t n_targets = 0;
    for (size_t i = 0; i < len; i++) n_targets += dst->targets[i] != TENSOR_IGNORE_INDEX;
    dst->batch = rows;
    dst->seq_len = src->seq_len;
    dst->n_targets = n_targets;
    dst->n_rows = src->n_rows; /* of the whole batch: a packed row may span none of ours */
    dst->epoch = src->epoch;
}

void train_take_pairs(Batch *dst, const Batch *src, int pair0, int pairs, PrefShare *share) {
    const int P = src->batch / 2;
    size_t T = (size_t)src->seq_len, len = (size_t)pairs * T;
    int64_t n_targets = 0, nll_tokens = 0;
    for (int r = 0; r < src->n_rows; r++) nll_tokens += pref_nll_tokens(src, r);
    for (int half = 0; half < 2; half++) { /* chosen rows, then rejected */
        size_t from = ((size_t)half * P + pair0) * T, to = (size_t)half * pairs * T;
        memcpy(dst->input_ids + to, src->input_ids + from, len * sizeof(int32_t));
        memcpy(dst->targets + to, src->targets + from, len * sizeof(int32_t));
        memcpy(dst->positions + to, src->positions + from, len * sizeof(int32_t));
        memcpy(dst->segments + to, src->segments + from, len * sizeof(int32_t));
        memcpy(dst->prompt_len + (size_t)half * pairs, src->prompt_len + half * P + pair0,
               (size_t)pairs * sizeof(int32_t));
        memcpy(dst->row_len + (size_t)half * pairs, src->row_len + half * P + pair0,
               (size_t)pairs * sizeof(int32_t));
        for (size_t i = 0; i < len; i++) n_targets += dst->targets[to + i] != TENSOR_IGNORE_INDEX;
    }
    memcpy(dst->pair_key, src->pair_key + pair0, (size_t)pairs * sizeof(uint64_t));
    int mine = src->n_rows - pair0; /* real pairs come first: ours are those below n_rows */
    dst->batch = 2 * pairs;
    dst->seq_len = src->seq_len;
    dst->n_targets = n_targets;
    dst->n_rows = mine < 0 ? 0 : mine > pairs ? pairs : mine;
    dst->epoch = src->epoch;
    /* dropout rows numbered as in the whole batch: ours chosen, then ours rejected */
    int64_t T64 = (int64_t)T;
    *share = (PrefShare){src->n_rows, nll_tokens,
                         (DropoutRows){pair0 * T64, pairs * T64, ((int64_t)P + pair0) * T64}};
}
