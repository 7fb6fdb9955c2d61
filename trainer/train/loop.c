/* trainer/train/loop.c — the training loop: micro-batches, accumulation, clipping, AdamW.
 *
 * Why micro-batches are gathered before any forward pass: the loss of a step is the mean
 * over ALL target tokens of its grad_accum micro-batches (so batch_size 2k equals batch_size
 * k with grad_accum 2), and backward needs that total as its seed, 1 / total_tokens. The
 * batches are copied into buffers allocated once; nothing is allocated per step.
 *
 * Why dropout needs no saved RNG: every LoRA dropout mask is a hash of (seed, step,
 * micro-batch, layer, module, element), so a resumed run draws exactly the same masks.
 *
 * train.gradient_checkpointing swaps the pass for trainer/model's checkpointed one (the
 * layers recomputed one at a time in backward, in a second graph this file owns); it gives
 * the same bits, so nothing else here changes, and a resume may switch it.
 *
 * A step whose loss, gradient norm or AdamW result is not finite applies no update; what
 * follows (skip or stop, train.on_nonfinite) is nonfinite.c's. AdamW's step count and the
 * schedule count the updates applied, so a skipped step moves neither.
 *
 * Under mpirun (data_parallel.c) each rank runs its own rows of every micro-batch, seeds
 * backward with the step's target tokens over all ranks, and sums the gradients over the
 * ranks before clipping; every rank then applies the same update to the same weights. A
 * step ends in a vote, so that a failure or a stop signal anywhere ends every rank at the
 * same step. */
#include "trainer/train/train.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tensor/rng.h"
#include "trainer/train/checkpoint.h"
#include "trainer/store/store.h"
#include "trainer/train/optim.h"
#include "trainer/train/internal.h"

_Static_assert(PREF_N <= RANKS_VOTE_SUMS, "a step's vote carries the preference metrics");

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

/* Under a launcher the stop signals are blocked instead and polled (ranks_stop_requested):
 * SIGINT, SIGTERM and SIGUSR1, which OpenMPI's mpirun forwards to every rank at once (SIGINT
 * and SIGTERM to mpirun reach the ranks as a SIGTERM only odls_base_sigkill_timeout seconds
 * later, with SIGKILL as long again after it). */
static void install_signal_handlers(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* ---- micro-batch buffers ---------------------------------------------------------- */

static int alloc_micro_batches(Trainer *t, char *err, size_t errlen) {
    int n = t->cfg->train.grad_accum;
    size_t rows = (size_t)t->cfg->train.batch_size * (t->preference ? 2 : 1);
    size_t per = rows * (size_t)t->data_options.seq_len;
    size_t lens = t->preference ? 2 * rows : 0; /* a preference batch's prompt_len, row_len */
    t->mb = calloc((size_t)n, sizeof *t->mb);
    t->mb_store = malloc((size_t)n * (4 * per + lens) * sizeof(int32_t));
    if (t->preference) {
        t->mb_keys = calloc((size_t)n * rows / 2, sizeof *t->mb_keys);
        t->mb_share = calloc((size_t)n, sizeof *t->mb_share);
    }
    if (!t->mb || !t->mb_store || (t->preference && (!t->mb_keys || !t->mb_share))) {
        snprintf(err, errlen, "out of memory allocating %d micro-batches", n);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        int32_t *base = t->mb_store + (size_t)i * (4 * per + lens);
        t->mb[i].input_ids = base;
        t->mb[i].targets = base + per;
        t->mb[i].positions = base + 2 * per;
        t->mb[i].segments = base + 3 * per;
        if (t->preference) {
            t->mb[i].prompt_len = base + 4 * per;
            t->mb[i].row_len = base + 4 * per + rows;
            t->mb[i].pair_key = t->mb_keys + (size_t)i * rows / 2;
        }
    }
    return 0;
}

static void copy_batch(Batch *dst, const Batch *src) {
    size_t per = (size_t)src->batch * (size_t)src->seq_len * sizeof(int32_t);
    memcpy(dst->input_ids, src->input_ids, per);
    memcpy(dst->targets, src->targets, per);
    memcpy(dst->positions, src->positions, per);
    memcpy(dst->segments, src->segments, per);
    if (src->prompt_len) {
        memcpy(dst->prompt_len, src->prompt_len, (size_t)src->batch * sizeof(int32_t));
        memcpy(dst->row_len, src->row_len, (size_t)src->batch * sizeof(int32_t));
        memcpy(dst->pair_key, src->pair_key, (size_t)src->batch / 2 * sizeof(uint64_t));
    }
    dst->batch = src->batch;
    dst->seq_len = src->seq_len;
    dst->n_targets = src->n_targets;
    dst->n_rows = src->n_rows;
    dst->epoch = src->epoch;
}

/* Fills up to grad_accum micro-batches, each this rank's rows of the reader's batch; *n gets
 * how many (0 when the data has ended), *targets their target tokens. */
static int gather_micro_batches(Trainer *t, int *n, int64_t *targets, char *err, size_t errlen) {
    *n = 0;
    *targets = 0;
    for (int i = 0; i < t->cfg->train.grad_accum; i++) {
        Batch b;
        int rc = data_next_batch(t->data, &b, err, errlen);
        if (rc < 0) return -1;
        if (rc == 0) break;
        int rows = (int)t->cfg->train.batch_size;
        if (t->ranks > 1 && t->preference)
            train_take_pairs(&t->mb[i], &b, t->rank * rows, rows, &t->mb_share[i]);
        else if (t->ranks > 1)
            train_take_rows(&t->mb[i], &b, t->rank * rows, rows);
        else
            copy_batch(&t->mb[i], &b);
        *targets += t->mb[i].n_targets;
        (*n)++;
    }
    return 0;
}

/* The seed of micro-batch `micro` of a step. Every rank uses it: a rank's rows are rows
 * [rank B, (rank + 1) B) of the micro-batch a 1-process run with batch B x ranks takes, and
 * the graph's dropout row offset numbers them so, so its masks are that run's. */
static uint64_t dropout_seed(uint64_t seed, int64_t step, int micro) {
    uint64_t s = seed ^ 0x6A09E667F3BCC909ull;
    s ^= rng_splitmix64(&s) + (uint64_t)step * 0x9E3779B97F4A7C15ull;
    s ^= (uint64_t)micro * 0xBF58476D1CE4E5B9ull;
    return rng_splitmix64(&s);
}

/* Why the step's graphs failed: the layer graph's error (naming the layer) or t->graph's. */
static const char *step_error(const Trainer *t) {
    return checkpointing_error(t->ckpt, t->graph);
}

/* What to do about a step that ran out of memory (nothing to add for other failures). */
static const char *oom_hint(const Trainer *t) {
    if (!strstr(step_error(t), "out of memory")) return "";
    return t->ckpt ? "; lower train.batch_size or data.seq_len"
                   : "; set train.gradient_checkpointing: true (each layer is recomputed in "
                     "backward, so only one layer's activations are held), or lower "
                     "train.batch_size or data.seq_len";
}

/* ---- one optimizer step ----------------------------------------------------------- */

/* total: the target tokens of the whole step, every rank's (the seed of backward, so the
 * loss is the mean over all of them). */
static TrainResult train_step(Trainer *t, int n_micro, int64_t total, StepResult *res, char *err,
                              size_t errlen) {
    const Config *c = t->cfg;
    lora_zero_grad(t->lora);
    double loss_sum = 0;
    TrainResult rc = TRAIN_DONE;
    /* preference objectives: the step's loss is the mean of its micro-batches' losses, and
     * a metric the sum over the micro-batches of their means (divided below); under mpirun
     * each rank has its pairs' parts of those means, and the vote adds them up */
    RankVote v = {0};
    memset(res->pref, 0, sizeof res->pref);
    for (int i = 0; t->preference && i < n_micro && rc == TRAIN_DONE; i++) {
        double l, mb[PREF_N];
        uint64_t seed = dropout_seed(c->train.seed, t->st.step, i);
        const PrefShare *share = t->ranks > 1 ? &t->mb_share[i] : NULL;
        if (pref_micro_batch(&t->pref, &t->mb[i], share, t->lora, true, seed, 1.0 / n_micro, &l, mb,
                             err, errlen) != 0) {
            rc = TRAIN_FAILED;
            break;
        }
        loss_sum += l / n_micro;
        for (int k = 0; k < PREF_N; k++) v.sums[k] += mb[k];
    }
    for (int i = 0; !t->preference && i < n_micro && rc == TRAIN_DONE; i++) {
        const Batch *b = &t->mb[i];
        uint64_t seed = dropout_seed(c->train.seed, t->st.step, i);
        graph_reset(t->graph);
        graph_set_dropout_rows(t->graph,
                               dropout_rows_from((int64_t)t->rank * b->batch * b->seq_len));
        Tensor *hidden =
            t->ckpt ? model_forward_hidden_checkpointed(t->model, t->lora, t->graph, t->ckpt,
                                                        b->input_ids, b->positions, b->segments,
                                                        b->batch, b->seq_len, seed)
                    : model_forward_hidden(t->model, t->lora, t->graph, b->input_ids, b->positions,
                                           b->segments, b->batch, b->seq_len, seed);
        int64_t count = 0;
        Tensor *loss = model_loss(t->model, t->graph, hidden, b->targets, &count);
        if (!loss || graph_failed(t->graph)) {
            snprintf(err, errlen, "forward pass (batch_size %d, seq_len %d): %s%s", b->batch,
                     b->seq_len, step_error(t), oom_hint(t));
            rc = TRAIN_FAILED;
            break;
        }
        loss_sum += loss->data[0];
        if (total == 0) continue;
        float up = (float)(1.0 / (double)total);
        int brc = t->ckpt ? model_backward_checkpointed(t->graph, t->ckpt, loss, up)
                          : graph_backward(t->graph, loss, up);
        if (brc != 0) {
            snprintf(err, errlen, "backward pass (batch_size %d, seq_len %d): %s%s", b->batch,
                     b->seq_len, step_error(t), oom_hint(t));
            rc = TRAIN_FAILED;
        }
    }
    v.value = loss_sum;
    if ((rc = train_agree(rc, &v, err, errlen)) != TRAIN_DONE) return rc;
    loss_sum = v.value; /* every rank's, added in rank order */
    for (int k = 0; t->preference && k < PREF_N; k++) {
        res->pref[k] = v.sums[k] / n_micro;
        t->st.log_pref[k] += v.sums[k];
    }
    t->st.log_pref_n += t->preference ? n_micro : 0;
    size_t n;
    float *p = lora_params(t->lora, &n);
    float *g = lora_grads(t->lora, &n);
    if (fsio_fault_nan_step(t->st.step + 1)) g[0] = NAN; /* tests only: LORAFIT_FAULT=nan:step:N */
    ranks_sum_floats(g, n, t->sum_scratch);
    int64_t size = (int64_t)n;
    double norm = optim_global_grad_norm(&g, &size, 1);
    /* The updates applied so far: a skipped step advances neither AdamW's count nor the
     * schedule, as in Hugging Face's Trainer when the GradScaler skips one. */
    int64_t updates = t->st.step - t->st.nonfinite_skipped;
    float coef = optim_clip_coef(norm, c->train.max_grad_norm);
    AdamWParams hp = {lr_at(&t->schedule, updates), c->train.adam_beta1, c->train.adam_beta2,
                      c->train.adam_eps, c->train.weight_decay};
    res->loss = t->preference ? loss_sum : total > 0 ? loss_sum / (double)total : 0.0;
    res->grad_norm = norm;
    res->lr = hp.lr;
    res->tokens = total;
    /* The same on every rank: the loss is the vote's sum, and the gradients, summed into the
     * same bits everywhere, give the same norm and the same update (ranks.h). */
    res->nonfinite =
        (isfinite(res->loss) ? 0 : NONFINITE_LOSS) | (isfinite(norm) ? 0 : NONFINITE_GRAD_NORM);
    if (!res->nonfinite && !adamw_step_is_finite(p, g, t->m, t->v, size, coef, &hp, updates + 1))
        res->nonfinite = NONFINITE_UPDATE;
    if (!res->nonfinite) adamw_step(p, g, t->m, t->v, size, coef, &hp, updates + 1);
    return TRAIN_DONE;
}

/* ---- the loop --------------------------------------------------------------------- */

/* Rank 0 only: the other ranks write nothing to the output directory. */
static int save_checkpoint(Trainer *t, char *err, size_t errlen) {
    double t0 = train_now();
    TrainState *s = &t->st;
    s->elapsed_s = t->elapsed_base + (t0 - t->run_start);
    size_t need = data_cursor_size(t->data);
    if (need > t->cursor_cap) {
        uint8_t *grown = realloc(s->cursor, need);
        if (!grown) {
            snprintf(err, errlen, "out of memory saving the data cursor");
            return -1;
        }
        s->cursor = grown;
        t->cursor_cap = need;
    }
    s->cursor_size = need;
    if (data_cursor_save(t->data, s->cursor, need, err, errlen) != 0) return -1;
    if (checkpoint_save(t->cfg->output.dir, t->lora, t->m, t->v, s, t->base_name, err, errlen) != 0)
        return -1;
    t->last_saved_step = s->step;
    snprintf(t->last_checkpoint, sizeof t->last_checkpoint, "%s/checkpoint-%" PRId64,
             t->cfg->output.dir, s->step);
    t->save_seconds += train_now() - t0;
    return checkpoint_prune(t->cfg->output.dir, t->cfg->output.keep, err, errlen);
}

/* Every rank evaluates its share of the validation set (eval.c); rank 0 logs the result.
 * -1 when the evaluation failed, on every rank at once; 0 otherwise, with *rc set to
 * TRAIN_FAILED when rank 0 could not log it (for the next agreement to spread). */
static int run_eval(Trainer *t, TrainResult *rc, char *err, size_t errlen) {
    if (t->cfg->data.valid.n == 0) return 0;
    double loss;
    int64_t tokens;
    DataOptions o;
    train_data_options(t->cfg, TRAIN_DATA_VALID, model_config(t->model)->vocab_size, &o);
    train_text_attach(&t->text, &o);
    if (t->preference) {
        double metrics[PREF_N];
        if (pref_evaluate(&t->pref, t->lora, &o, (int)t->cfg->eval.max_batches, &loss, metrics,
                          &tokens, err, errlen) != 0)
            return -1;
        if (loss < t->st.best_eval_loss) t->st.best_eval_loss = loss;
        t->last_eval_loss = loss;
        t->evaluated = true;
        if (t->rank == 0 && train_log_pref_eval(t, loss, metrics, tokens, err, errlen) != 0)
            *rc = TRAIN_FAILED;
        return 0;
    }
    if (evaluate_loss_checkpointed(t->model, t->lora, &o, t->cfg->eval.max_batches, t->graph,
                                   t->ckpt, &loss, &tokens, err, errlen) != 0)
        return -1;
    if (loss < t->st.best_eval_loss) t->st.best_eval_loss = loss;
    t->last_eval_loss = loss;
    t->evaluated = true;
    if (t->rank == 0 && train_log_eval(t, loss, tokens, err, errlen) != 0) *rc = TRAIN_FAILED;
    return 0;
}

/* Every rank stops after the same step: rank 0 saves a checkpoint, and all exit alike. */
static TrainResult stop_run(Trainer *t, char *err, size_t errlen) {
    TrainResult rc = TRAIN_DONE;
    if (t->rank == 0) {
        train_progress_end(t);
        if (t->last_saved_step != t->st.step && save_checkpoint(t, err, errlen) != 0)
            rc = TRAIN_FAILED;
    }
    if ((rc = train_agree_status(rc, err, errlen)) != TRAIN_DONE) return rc;
    if (t->rank == 0)
        fprintf(stderr,
                "lorafit: stopped by signal after step %" PRId64
                "; checkpoint saved, resume with --resume\n",
                t->st.step);
    return TRAIN_STOPPED;
}

/* The end of the data or of the steps: the last metrics line, the final evaluation, the
 * final checkpoint and the adapter. */
static TrainResult finish_run(Trainer *t, char *err, size_t errlen) {
    TrainResult rc = TRAIN_DONE;
    if (t->rank == 0) {
        train_progress_end(t);
        if (t->st.log_steps > 0 && /* data ended between metrics lines */
            train_log_step(t, &t->last, err, errlen) != 0)
            rc = TRAIN_FAILED;
    }
    if ((rc = train_agree_status(rc, err, errlen)) != TRAIN_DONE) return rc;
    if (run_eval(t, &rc, err, errlen) != 0) return TRAIN_FAILED;
    if (rc == TRAIN_DONE && t->rank == 0 &&
        ((t->last_saved_step != t->st.step && save_checkpoint(t, err, errlen) != 0) ||
         checkpoint_write_adapter(t->cfg->output.dir, t->lora, t->base_name, err, errlen) != 0))
        rc = TRAIN_FAILED;
    return train_agree_status(rc, err, errlen);
}

/* Every failure below is voted on before anyone returns (see setup.c); rank 0 alone logs,
 * evaluates into metrics.jsonl and saves. */
static TrainResult run_steps(Trainer *t, char *err, size_t errlen) {
    const Config *c = t->cfg;
    install_signal_handlers();
    while (t->st.step < t->total_steps) {
        int n_micro;
        int64_t targets;
        TrainResult rc = gather_micro_batches(t, &n_micro, &targets, err, errlen) != 0
                             ? TRAIN_FAILED
                             : TRAIN_DONE;
        RankVote v = {.same = n_micro, .count = targets};
        if ((rc = train_agree(rc, &v, err, errlen)) != TRAIN_DONE) return rc;
        if (v.differ) {
            if (t->rank == 0)
                snprintf(err, errlen,
                         "the ranks read different numbers of micro-batches at step %" PRId64
                         ": every rank must see the same data files",
                         t->st.step + 1);
            return TRAIN_FAILED;
        }
        if (n_micro == 0) break; /* the configured epochs have ended */
        double t0 = train_now();
        StepResult r;
        if ((rc = train_step(t, n_micro, v.count, &r, err, errlen)) != TRAIN_DONE) return rc;
        t->step_seconds += train_now() - t0;
        TrainState *s = &t->st;
        if (r.nonfinite && (rc = train_nonfinite_step(t, &r, err, errlen)) != TRAIN_DONE) return rc;
        if (!r.nonfinite) { /* a skipped step trained on nothing */
            s->nonfinite_streak = 0;
            s->tokens += r.tokens;
            s->log_loss_sum += r.loss;
        }
        s->step++;
        s->log_steps++;
        s->log_tokens += r.tokens;
        t->last = r;
        bool last = s->step == t->total_steps;
        if (t->rank == 0 && (s->step % c->log.every == 0 || last) &&
            train_log_step(t, &r, err, errlen) != 0)
            rc = TRAIN_FAILED;
        if (rc == TRAIN_DONE && t->rank == 0) train_progress(t, &r);
        if (c->eval.every > 0 && s->step % c->eval.every == 0 && !last) {
            if ((rc = train_agree_status(rc, err, errlen)) != TRAIN_DONE) return rc;
            if (run_eval(t, &rc, err, errlen) != 0) return TRAIN_FAILED;
        }
        if (rc == TRAIN_DONE && t->rank == 0 && c->output.save_every > 0 &&
            s->step % c->output.save_every == 0 && !last && save_checkpoint(t, err, errlen) != 0)
            rc = TRAIN_FAILED;
        if (rc == TRAIN_DONE) fsio_fault_point_step(s->step);
        RankVote end = {.stop = stop_requested || ranks_stop_requested()};
        if ((rc = train_agree(rc, &end, err, errlen)) != TRAIN_DONE) return rc;
        if (end.stop) return stop_run(t, err, errlen);
    }
    return finish_run(t, err, errlen);
}

/* dpo.precompute_ref_log_probs: one reference pass over the training (and validation) data
 * before the first step — and again on a resume, which gives the same bits, so nothing of it
 * is saved. */
static int precompute_refs(Trainer *t, char *err, size_t errlen) {
    double t0 = train_now();
    DataOptions o = t->data_options;
    o.batch_size /= t->ranks; /* pref_precompute deals batches of batch_size pairs per rank */
    if (pref_precompute(&t->pref, &o, &t->pref.train_refs, err, errlen) != 0) return -1;
    if (t->cfg->data.valid.n > 0) {
        train_data_options(t->cfg, TRAIN_DATA_VALID, model_config(t->model)->vocab_size, &o);
        train_text_attach(&t->text, &o);
        if (pref_precompute(&t->pref, &o, &t->pref.valid_refs, err, errlen) != 0) return -1;
    }
    t->pref.refs = t->pref.train_refs;
    if (t->rank == 0)
        fprintf(stderr,
                "lorafit: reference log-probabilities of %zu training pairs precomputed "
                "(%.1f s)\n",
                t->pref.train_refs->n, train_now() - t0);
    return 0;
}

/* The buffers of the steps, allocated once: micro-batches, the layer graph of gradient
 * checkpointing, and the receive buffer of the gradient sum over ranks. */
static int alloc_step_buffers(Trainer *t, char *err, size_t errlen) {
    if (alloc_micro_batches(t, err, errlen) != 0) return -1;
    if (t->cfg->train.gradient_checkpointing) {
        t->ckpt = checkpointing_create();
        if (!t->ckpt) {
            snprintf(err, errlen, "out of memory setting up gradient checkpointing");
            return -1;
        }
    }
    if (t->preference &&
        pref_run_init(&t->pref, t->cfg, t->model, t->lora, t->graph, t->ckpt, err, errlen) != 0)
        return -1;
    if (t->preference && t->cfg->train.objective == OBJECTIVE_DPO &&
        t->cfg->dpo.precompute_ref_log_probs && precompute_refs(t, err, errlen) != 0)
        return -1;
    if (t->ranks > 1) {
        size_t n;
        lora_grads(t->lora, &n);
        t->sum_scratch = malloc(ranks_sum_scratch(n) * sizeof(float));
        if (!t->sum_scratch) {
            snprintf(err, errlen, "out of memory for summing %zu gradients over the ranks", n);
            return -1;
        }
    }
    return 0;
}

TrainResult train_loop(Trainer *t, char *err, size_t errlen) {
    TrainResult rc = alloc_step_buffers(t, err, errlen) != 0 ? TRAIN_FAILED : TRAIN_DONE;
    if ((rc = train_agree_status(rc, err, errlen)) == TRAIN_DONE) rc = run_steps(t, err, errlen);
    pref_run_free(&t->pref);
    checkpointing_free(t->ckpt);
    t->ckpt = NULL;
    return rc;
}
