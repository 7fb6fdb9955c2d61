/* trainer/train/preference.c — train.objective dpo and orpo: the loss of a preference
 * micro-batch, its gradient, its metrics, and evaluation on preference data.
 *
 * Semantics are TRL's (trl/trainer/dpo_trainer.py, trl/experimental/orpo/orpo_trainer.py):
 *   DPO   logps = the sum of the completion tokens' log-probabilities of a row; with the
 *         reference's ref_logps, chosen_logratio = logps_c - ref_c, rejected_logratio
 *         likewise, delta = their difference; per pair
 *           sigmoid  -logsigmoid(beta delta)
 *           hinge    relu(1 - beta delta)
 *           ipo      (chosen_logratio / n_c - rejected_logratio / n_r - 1 / (2 beta))^2,
 *                    n the completion tokens of the row (at least 1)
 *         and the micro-batch's loss is the mean over its pairs. rewards/x = beta x_logratio.
 *   ORPO  logps = the MEAN of the completion tokens' log-probabilities (average_log_prob);
 *         log_odds = (lc - lr) - (log(1 - e^lc) - log(1 - e^lr)); the loss is
 *         nll - mean(beta logsigmoid(log_odds)), nll the cross-entropy over every token the
 *         chosen rows predict — prompt included, as TRL's ORPO computes it — averaged over
 *         those tokens. rewards/x = beta logps_x; no reference.
 * The step's loss is the mean of its micro-batches' (TRL under the HF Trainer scales each
 * micro-batch's loss by 1 / grad_accum); every metric is the mean over the micro-batches of
 * the logged steps of each micro-batch's mean over its pairs (TRL appends one value per
 * micro-batch and logs their mean).
 *
 * The pass: the reference (DPO) runs first, forward only, without dropout, one layer at a
 * time in a layer graph (no activations kept); then the policy runs on the 2P rows of the
 * batch (chosen and rejected together, TRL's concatenated forward), the fused lm_head gives
 * each row's token losses (model_token_losses), the loss and d loss / d(each row's logps)
 * are computed here in double, and backward is seeded through op_weighted_sum with those
 * derivatives spread over the rows' tokens. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trainer/train/internal.h"

const char *const PREF_METRIC_NAMES[PREF_N] = {
    "rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins", "logps/chosen",
    "logps/rejected", "nll_loss",         "log_odds_ratio",     "log_odds_chosen"};

_Static_assert(PREF_N == TRAIN_PREF_METRICS, "train.h's TRAIN_PREF_METRICS counts the metrics");

/* TrainState.log_pref (checkpoint.h) holds one sum per metric */
_Static_assert(sizeof(((TrainState *)0)->log_pref) == PREF_N * sizeof(double),
               "TrainState.log_pref must hold PREF_N sums");

int pref_metric_count(const Config *c) {
    return c->train.objective == OBJECTIVE_ORPO ? PREF_N : PREF_NLL_LOSS;
}

static double log1mexp(double x) { /* log(1 - e^x), x < 0 */
    return x < -0.6931471805599453 ? log1p(-exp(x)) : log(-expm1(x));
}

static double softplus(double x) { /* log(1 + e^x) */
    return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x));
}

static double sigmoid(double x) {
    return x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x));
}

/* The loss of one micro-batch of n pairs (rows i and P + i) and its derivatives: d_row[r]
 * = d loss / d(row r's log-probability sum) and *d_nll = d loss / d(the chosen rows' summed
 * token cross-entropy over every predicted token). metrics[PREF_N] gets the means. */
double pref_loss(const Config *c, const PrefPairs *p, double *metrics, double *d_row,
                 double *d_nll) {
    const int n = p->n, P = p->P;
    bool orpo = c->train.objective == OBJECTIVE_ORPO;
    double beta = orpo ? c->orpo.beta : c->dpo.beta, loss = 0;
    memset(metrics, 0, PREF_N * sizeof *metrics);
    for (int r = 0; r < 2 * P; r++) d_row[r] = 0;
    *d_nll = 0;
    for (int i = 0; i < n; i++) {
        int ci = i, ri = P + i;
        double lc = p->logps[ci], lr = p->logps[ri], rc_, rr;
        if (orpo) {
            double nc = p->targets[ci] > 0 ? p->targets[ci] : 1;
            double nr = p->targets[ri] > 0 ? p->targets[ri] : 1;
            lc /= nc, lr /= nr; /* average_log_prob */
            double odds = (lc - lr) - (log1mexp(lc) - log1mexp(lr));
            double ratio = -softplus(-odds); /* logsigmoid */
            loss -= beta * ratio;
            double g = -beta * sigmoid(-odds) / p->mean_over; /* d loss / d odds */
            d_row[ci] = g / (1.0 - exp(lc)) / nc;
            d_row[ri] = -g / (1.0 - exp(lr)) / nr;
            metrics[PREF_LOG_ODDS_RATIO] += ratio;
            metrics[PREF_LOG_ODDS_CHOSEN] += odds;
            rc_ = beta * lc, rr = beta * lr;
        } else {
            double cl = lc - p->ref[ci], rl = lr - p->ref[ri], delta = cl - rl, l, dd;
            switch (c->dpo.loss_type) {
            case DPO_LOSS_HINGE:
                l = 1 - beta * delta > 0 ? 1 - beta * delta : 0;
                dd = 1 - beta * delta > 0 ? -beta : 0;
                d_row[ci] = dd / p->mean_over, d_row[ri] = -dd / p->mean_over;
                break;
            case DPO_LOSS_IPO: {
                double nc = p->tokens[ci] > 0 ? p->tokens[ci] : 1;
                double nr = p->tokens[ri] > 0 ? p->tokens[ri] : 1;
                double e = cl / nc - rl / nr - 1 / (2 * beta);
                l = e * e;
                d_row[ci] = 2 * e / nc / p->mean_over, d_row[ri] = -2 * e / nr / p->mean_over;
                break;
            }
            default: /* sigmoid */
                l = softplus(-beta * delta);
                dd = -beta * sigmoid(-beta * delta);
                d_row[ci] = dd / p->mean_over, d_row[ri] = -dd / p->mean_over;
            }
            loss += l;
            rc_ = beta * cl, rr = beta * rl;
        }
        metrics[PREF_REWARDS_CHOSEN] += rc_;
        metrics[PREF_REWARDS_REJECTED] += rr;
        metrics[PREF_ACCURACIES] += rc_ > rr;
        metrics[PREF_MARGINS] += rc_ - rr;
        metrics[PREF_LOGPS_CHOSEN] += lc;
        metrics[PREF_LOGPS_REJECTED] += lr;
    }
    const int over = p->mean_over; /* n, or every rank's pairs under mpirun */
    for (int k = 0; k < PREF_N; k++) metrics[k] = over > 0 ? metrics[k] / over : 0;
    loss = over > 0 ? loss / over : 0;
    if (orpo) {
        double nll = p->nll_count > 0 ? p->nll_sum / (double)p->nll_count : 0;
        metrics[PREF_NLL_LOSS] = nll;
        loss += nll;
        *d_nll = p->nll_count > 0 ? 1.0 / (double)p->nll_count : 0;
    }
    return loss;
}

/* ---- the passes --------------------------------------------------------------------- */

/* Per row: the sum of log-probabilities over the counted targets (double, in order). */
static void row_logps(const Tensor *token_losses, const int32_t *targets, int rows, int T,
                      double *logps, int32_t *counted) {
    for (int r = 0; r < rows; r++) {
        double s = 0;
        int k = 0;
        for (int t = 0; t < T; t++) {
            size_t at = (size_t)r * T + t;
            if (targets[at] == TENSOR_IGNORE_INDEX) continue;
            s -= token_losses->data[at];
            k++;
        }
        logps[r] = s;
        counted[r] = k;
    }
}

int64_t pref_nll_tokens(const Batch *b, int r) {
    const size_t T = (size_t)b->seq_len;
    int64_t n = 0;
    for (size_t t = 0; t < T; t++) /* orpo_targets' rule, counted */
        n += (int)t + 1 < b->row_len[r] || b->targets[r * T + t] != TENSOR_IGNORE_INDEX;
    return n;
}

/* ORPO's targets: the chosen rows predict every next token of the row (prompt too), the
 * rejected rows their completion only. */
static void orpo_targets(const Batch *b, int32_t *out) {
    const int P = b->batch / 2, T = b->seq_len;
    memcpy(out, b->targets, (size_t)b->batch * T * sizeof *out);
    for (int r = 0; r < P; r++)
        for (int t = 0; t + 1 < b->row_len[r]; t++)
            out[(size_t)r * T + t] = b->input_ids[(size_t)r * T + t + 1];
}

/* ---- precomputed reference log-probabilities ---------------------------------------- */

static size_t slot_of(const PrefRefTable *t, uint64_t key) {
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    size_t i = (size_t)(h >> 17) & (t->cap - 1);
    while (t->keys[i] && t->keys[i] != key) i = (i + 1) & (t->cap - 1);
    return i;
}

static int table_put(PrefRefTable *t, uint64_t key, double c, double r) {
    if (2 * (t->n + 1) > t->cap) { /* grow to keep the load under 1/2 */
        PrefRefTable g = {calloc(t->cap ? 2 * t->cap : 1024, sizeof *g.keys), NULL,
                          t->cap ? 2 * t->cap : 1024, 0};
        g.refs = malloc(2 * g.cap * sizeof *g.refs);
        if (!g.keys || !g.refs) {
            free(g.keys);
            free(g.refs);
            return -1;
        }
        for (size_t i = 0; i < t->cap; i++) {
            if (!t->keys[i]) continue;
            size_t s = slot_of(&g, t->keys[i]);
            g.keys[s] = t->keys[i];
            g.refs[2 * s] = t->refs[2 * i], g.refs[2 * s + 1] = t->refs[2 * i + 1];
            g.n++;
        }
        free(t->keys);
        free(t->refs);
        *t = g;
    }
    size_t s = slot_of(t, key);
    if (!t->keys[s]) t->n++;
    t->keys[s] = key;
    t->refs[2 * s] = c, t->refs[2 * s + 1] = r;
    return 0;
}

static void table_free(PrefRefTable *t) {
    if (!t) return;
    free(t->keys);
    free(t->refs);
    free(t);
}

/* The reference log-probabilities of batch b's rows into ref (DPO), forward only. */
static int reference_pass(PrefRun *pr, const Batch *b, double *ref, char *err, size_t errlen) {
    Graph *g = pr->graph;
    graph_reset(g);
    Tensor *h =
        model_forward_hidden_checkpointed_eval(pr->model, pr->ref_lora, g, pr->ref_ck, b->input_ids,
                                               b->positions, b->segments, b->batch, b->seq_len);
    int64_t n = 0;
    Tensor *y = h ? model_token_losses(pr->model, g, h, b->targets, &n) : NULL;
    if (!y || graph_failed(g)) {
        snprintf(err, errlen, "reference pass (batch_size %d pairs, seq_len %d): %s", b->batch / 2,
                 b->seq_len, checkpointing_error(pr->ref_ck, g));
        return -1;
    }
    row_logps(y, b->targets, b->batch, b->seq_len, ref, pr->counted);
    graph_reset(g);
    return 0;
}

int pref_micro_batch(PrefRun *pr, const Batch *b, const PrefShare *share, const Lora *lora,
                     bool train, uint64_t seed, double scale, double *loss, double *metrics,
                     char *err, size_t errlen) {
    const Config *c = pr->cfg;
    const int rows = b->batch, T = b->seq_len, P = rows / 2;
    bool orpo = c->train.objective == OBJECTIVE_ORPO;
    if (!orpo && pr->refs) { /* precomputed: looked up by the pairs' records */
        for (int i = 0; i < b->n_rows; i++) {
            size_t s = pr->refs->cap ? slot_of(pr->refs, b->pair_key[i]) : 0;
            if (!pr->refs->cap || pr->refs->keys[s] != b->pair_key[i]) {
                snprintf(err, errlen,
                         "a pair without a precomputed reference log-probability (did a data "
                         "file change during the run?)");
                return -1;
            }
            pr->ref[i] = pr->refs->refs[2 * s];
            pr->ref[P + i] = pr->refs->refs[2 * s + 1];
        }
    } else if (!orpo && reference_pass(pr, b, pr->ref, err, errlen) != 0) {
        return -1;
    }
    const int32_t *targets = b->targets;
    if (orpo) {
        orpo_targets(b, pr->targets);
        targets = pr->targets;
    }
    Graph *g = pr->graph;
    graph_reset(g);
    graph_set_dropout_rows(g, share ? share->dropout : dropout_rows_from(0));
    Tensor *h;
    if (train && pr->ckpt)
        h = model_forward_hidden_checkpointed(pr->model, lora, g, pr->ckpt, b->input_ids,
                                              b->positions, b->segments, rows, T, seed);
    else if (train)
        h = model_forward_hidden(pr->model, lora, g, b->input_ids, b->positions, b->segments, rows,
                                 T, seed);
    else
        h = model_forward_hidden_checkpointed_eval(pr->model, lora, g, pr->ref_ck, b->input_ids,
                                                   b->positions, b->segments, rows, T);
    int64_t n = 0;
    Tensor *y = h ? model_token_losses(pr->model, g, h, targets, &n) : NULL;
    Checkpointing *ck = train ? pr->ckpt : pr->ref_ck;
    if (!y || graph_failed(g)) {
        snprintf(err, errlen, "forward pass (batch_size %d pairs, seq_len %d): %s", P, T,
                 checkpointing_error(ck, g));
        return -1;
    }
    /* completion sums: the batch's own targets; ORPO's NLL: the chosen rows' every token */
    row_logps(y, b->targets, rows, T, pr->logps, pr->counted);
    PrefPairs pp = {.P = P,
                    .n = b->n_rows,
                    .logps = pr->logps,
                    .ref = pr->ref,
                    .targets = pr->counted,
                    .tokens = pr->tokens,
                    .mean_over = share ? share->pairs : b->n_rows};
    for (int r = 0; r < rows; r++) pr->tokens[r] = b->row_len[r] - b->prompt_len[r];
    if (orpo) {
        for (int r = 0; r < P; r++)
            for (int t = 0; t < T; t++)
                if (targets[(size_t)r * T + t] != TENSOR_IGNORE_INDEX &&
                    (r < b->n_rows)) { /* padding pairs predict nothing */
                    pp.nll_sum += y->data[(size_t)r * T + t];
                    pp.nll_count++;
                }
    }
    if (share) pp.nll_count = share->nll_tokens;
    double d_nll;
    *loss = pref_loss(c, &pp, metrics, pr->d_row, &d_nll);
    if (!train) {
        graph_reset(g);
        return 0;
    }
    /* d(step loss)/d(token loss): token loss = -log p, the micro-batch's share `scale` */
    Tensor *w = graph_tensor(g, 1, (int64_t[]){(int64_t)rows * T});
    if (!w) {
        snprintf(err, errlen, "backward pass: %s", graph_error(g));
        return -1;
    }
    for (int r = 0; r < rows; r++)
        for (int t = 0; t < T; t++) {
            size_t at = (size_t)r * T + t;
            double d = 0;
            if (b->targets[at] != TENSOR_IGNORE_INDEX) d -= pr->d_row[r];
            if (orpo && r < b->n_rows && targets[at] != TENSOR_IGNORE_INDEX) d += d_nll;
            w->data[at] = (float)(d * scale);
        }
    Tensor *root = op_weighted_sum(g, y, w);
    int brc = !root      ? -1
              : pr->ckpt ? model_backward_checkpointed(g, pr->ckpt, root, 1.0f)
                         : graph_backward(g, root, 1.0f);
    if (brc != 0) {
        snprintf(err, errlen, "backward pass (batch_size %d pairs, seq_len %d): %s", P, T,
                 checkpointing_error(pr->ckpt, g));
        return -1;
    }
    return 0;
}

/* ---- setup ------------------------------------------------------------------------ */

int pref_run_init(PrefRun *pr, const Config *c, const Model *m, const Lora *policy, Graph *g,
                  Checkpointing *ckpt, char *err, size_t errlen) {
    memset(pr, 0, sizeof *pr);
    pr->cfg = c;
    pr->model = m;
    pr->graph = g;
    pr->ckpt = ckpt;
    size_t rows = 2 * (size_t)c->train.batch_size, T = (size_t)c->data.seq_len;
    pr->ref_ck = checkpointing_create();
    pr->ref = calloc(rows, sizeof *pr->ref);
    pr->logps = calloc(rows, sizeof *pr->logps);
    pr->d_row = calloc(rows, sizeof *pr->d_row);
    pr->counted = calloc(rows, sizeof *pr->counted);
    pr->tokens = calloc(rows, sizeof *pr->tokens);
    pr->targets = calloc(rows * T, sizeof *pr->targets);
    if (ranks_size() > 1) { /* evaluation batches split as the training's (pref_evaluate) */
        pr->local_store = malloc(rows * (4 * T + 2) * sizeof *pr->local_store);
        pr->local_keys = calloc(rows / 2, sizeof *pr->local_keys);
        int32_t *base = pr->local_store;
        pr->local = (Batch){.input_ids = base,
                            .targets = base + rows * T,
                            .positions = base + 2 * rows * T,
                            .segments = base + 3 * rows * T,
                            .prompt_len = base + 4 * rows * T,
                            .row_len = base + 4 * rows * T + rows,
                            .pair_key = pr->local_keys};
    }
    if (!pr->ref_ck || !pr->ref || !pr->logps || !pr->d_row || !pr->counted || !pr->tokens ||
        !pr->targets || (ranks_size() > 1 && (!pr->local_store || !pr->local_keys))) {
        snprintf(err, errlen, "out of memory setting up train.objective");
        return -1;
    }
    /* dpo.reference initial with lora.init_from: that adapter, frozen (TRL's "ref" adapter,
     * a copy of the loaded one); otherwise the base with the adapter off */
    if (c->train.objective == OBJECTIVE_DPO && c->dpo.reference == DPO_REFERENCE_INITIAL &&
        c->lora.init_from) {
        if (policy) { /* the policy's spec, as the training's LoRA reads init_from */
            pr->ref_lora = lora_create(m, lora_spec(policy), err, errlen);
            if (!pr->ref_lora || lora_load_peft(pr->ref_lora, c->lora.init_from, err, errlen) != 0)
                return -1;
        } else if (!(pr->ref_lora = lora_load_adapter(m, c->lora.init_from, err, errlen))) {
            return -1; /* lorafit eval of the base model: the adapter's own spec */
        }
        for (int i = 0; i < lora_count(pr->ref_lora); i++) /* frozen: no backward recorded */
            lora_tensor(pr->ref_lora, i, NULL)->requires_grad = false;
    }
    return 0;
}

int pref_precompute(PrefRun *pr, const DataOptions *o, PrefRefTable **out, char *err,
                    size_t errlen) {
    const int ranks = ranks_size(), mine = o->batch_size; /* pairs per rank */
    DataOptions po = *o;
    po.shuffle = false;
    po.epochs = 1;
    po.batch_size *= ranks;
    PrefRefTable *t = calloc(1, sizeof *t);
    double *part = malloc(2 * (size_t)mine * sizeof *part); /* (2 mine) chosen, rejected */
    double *all = malloc(2 * (size_t)mine * (size_t)ranks * sizeof *all); /* (ranks, 2 mine) */
    DataReader *r = t && part && all ? data_open(&po, err, errlen) : NULL;
    int rc = r ? 0 : -1;
    if (!t || !part || !all) snprintf(err, errlen, "out of memory");
    for (;;) {
        Batch b;
        int got = rc == 0 ? data_next_batch(r, &b, err, errlen) : -1;
        if (got < 0) rc = -1;
        if (got > 0 && ranks > 1) {
            PrefShare share;
            train_take_pairs(&pr->local, &b, ranks_rank() * mine, mine, &share);
            if (reference_pass(pr, &pr->local, pr->ref, err, errlen) != 0) rc = -1;
        } else if (got > 0 && reference_pass(pr, &b, pr->ref, err, errlen) != 0) {
            rc = -1;
        }
        /* every rank reads the same batches: each one ends in a vote (a failure anywhere
         * stops all), then the ranks' parts are gathered */
        RankVote v = {.status = rc != 0, .same = got};
        ranks_vote(&v, err, errlen);
        if (v.status != 0 || v.same <= 0) {
            rc = v.status != 0 ? -1 : 0;
            break;
        }
        for (int i = 0; i < mine; i++) part[i] = pr->ref[i], part[mine + i] = pr->ref[mine + i];
        const double *from = part;
        if (ranks > 1) {
            ranks_gather(part, all, 2 * (size_t)mine * sizeof *part);
            from = all;
        }
        for (int i = 0; rc == 0 && i < b.n_rows; i++) { /* pair i: rank i / mine's */
            const double *rank_part = from + 2 * (size_t)mine * (size_t)(i / mine);
            int at = i % mine;
            if (table_put(t, b.pair_key[i], rank_part[at], rank_part[mine + at]) != 0) {
                snprintf(err, errlen, "out of memory for the reference log-probabilities");
                rc = -1;
            }
        }
        /* an out-of-memory here is voted on with the next batch */
    }
    data_close(r);
    free(part);
    free(all);
    if (rc != 0) {
        table_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

void pref_run_free(PrefRun *pr) {
    table_free(pr->train_refs);
    table_free(pr->valid_refs);
    checkpointing_free(pr->ref_ck);
    lora_free(pr->ref_lora);
    free(pr->ref);
    free(pr->logps);
    free(pr->d_row);
    free(pr->counted);
    free(pr->tokens);
    free(pr->targets);
    free(pr->local_store);
    free(pr->local_keys);
    memset(pr, 0, sizeof *pr);
}

/* ---- evaluation --------------------------------------------------------------------- */

int pref_evaluate(PrefRun *pr, const Lora *lora, const DataOptions *o, int max_batches,
                  double *loss, double *metrics, int64_t *pairs, char *err, size_t errlen) {
    const int ranks = ranks_size(), mine = o->batch_size; /* pairs per rank */
    DataOptions job = *o;
    job.batch_size *= ranks;
    DataReader *r = data_open(&job, err, errlen);
    double sum = 0, mb[PREF_N];
    RankVote v = {0}; /* .sums: every metric's sum of the batches' means */
    pr->refs = pr->valid_refs;
    int64_t n = 0, batches = 0;
    int rc = r ? 0 : -1;
    while (r && (max_batches == 0 || batches < max_batches)) {
        Batch b;
        rc = data_next_batch(r, &b, err, errlen);
        if (rc <= 0) break;
        rc = 0;
        PrefShare share, *sh = NULL;
        const Batch *part = &b;
        if (ranks > 1) {
            train_take_pairs(&pr->local, &b, ranks_rank() * mine, mine, &share);
            part = &pr->local, sh = &share;
        }
        double l;
        if (pref_micro_batch(pr, part, sh, lora, false, 0, 0, &l, mb, err, errlen) != 0) {
            rc = -1;
            break;
        }
        sum += l * b.n_rows; /* HF's evaluation loss: the mean over the pairs */
        n += b.n_rows;
        for (int k = 0; k < PREF_N; k++) v.sums[k] += mb[k];
        batches++;
    }
    data_close(r);
    pr->refs = pr->train_refs;
    v.status = rc < 0, v.value = sum;
    ranks_vote(&v, err, errlen); /* every rank's parts; one process: unchanged */
    if (v.status != 0) return -1;
    *loss = n > 0 ? v.value / (double)n : 0;
    for (int k = 0; k < PREF_N; k++) metrics[k] = batches > 0 ? v.sums[k] / (double)batches : 0;
    *pairs = n;
    return 0;
}

int evaluate_preference(const Config *c, const Model *m, const Lora *lora, const DataOptions *o,
                        int max_batches, Graph *g, double *loss, double *metrics,
                        const char *const **names, int *n_metrics, int64_t *pairs, char *err,
                        size_t errlen) {
    PrefRun pr;
    RankVote v = {.status = pref_run_init(&pr, c, m, lora, g, NULL, err, errlen) != 0};
    ranks_vote(&v, err, errlen); /* before pref_evaluate's own vote, which every rank joins */
    int rc = v.status != 0
                 ? -1
                 : pref_evaluate(&pr, lora, o, max_batches, loss, metrics, pairs, err, errlen);
    pref_run_free(&pr);
    *names = PREF_METRIC_NAMES;
    *n_metrics = pref_metric_count(c);
    return rc;
}
