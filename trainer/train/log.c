/* trainer/train/log.c — what a run tells its user: metrics.jsonl, progress, the summary.
 *
 * metrics.jsonl is the record a resumed run must reproduce, so on resume it is cut back to
 * the lines of steps up to the checkpoint (a killed run may have logged steps past it) and
 * then appended to. Its training "loss" is the mean of the step losses since the previous
 * line (as Hugging Face's Trainer logs), "lr" and "grad_norm" those of the line's step. */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include "trainer/store/store.h"
#include "trainer/train/internal.h"

#define PROGRESS_WIDTH 24

double train_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void metrics_path(const Trainer *t, char *out, size_t len) {
    snprintf(out, len, "%s/metrics.jsonl", t->cfg->output.dir);
}

/* Keeps the lines whose step is at most `step`; drops a torn or foreign last line. */
static int cut_metrics(const char *path, int64_t step, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0; /* nothing logged yet */
    size_t cap = 1 << 16, len = 0;
    char *kept = malloc(cap);
    char *line = NULL;
    size_t line_cap = 0;
    ssize_t n;
    int rc = kept ? 0 : -1;
    while (rc == 0 && (n = getline(&line, &line_cap, f)) > 0) {
        json_t *j = json_loadb(line, (size_t)n, 0, NULL);
        json_t *s = j ? json_object_get(j, "step") : NULL;
        bool keep = s && json_is_integer(s) && json_integer_value(s) <= step && line[n - 1] == '\n';
        json_decref(j);
        if (!keep) continue;
        if (len + (size_t)n > cap) {
            while (len + (size_t)n > cap) cap *= 2;
            char *grown = realloc(kept, cap);
            if (!grown) {
                rc = -1;
                break;
            }
            kept = grown;
        }
        memcpy(kept + len, line, (size_t)n);
        len += (size_t)n;
    }
    free(line);
    fclose(f);
    if (rc != 0)
        snprintf(err, errlen, "%s: out of memory reading the metrics", path);
    else
        rc = fsio_write_file(path, kept, len, err, errlen);
    free(kept);
    return rc;
}

int train_log_open(Trainer *t, bool resumed, char *err, size_t errlen) {
    char path[4200];
    metrics_path(t, path, sizeof path);
    if (resumed && cut_metrics(path, t->st.step, err, errlen) != 0) return -1;
    t->metrics = fopen(path, resumed ? "ab" : "wb");
    if (!t->metrics) {
        snprintf(err, errlen, "%s: cannot open for writing: %s", path, strerror(errno));
        return -1;
    }
    t->log_time = train_now();
    return 0;
}

static void put_number(FILE *f, const char *key, double v) {
    if (isfinite(v))
        fprintf(f, ", \"%s\": %.17g", key, v);
    else
        fprintf(f, ", \"%s\": null", key);
}

static int flush_metrics(Trainer *t, char *err, size_t errlen) {
    if (fflush(t->metrics) != 0 || ferror(t->metrics)) {
        snprintf(err, errlen, "%s/metrics.jsonl: write failed: %s", t->cfg->output.dir,
                 strerror(errno));
        return -1;
    }
    return 0;
}

static void format_duration(double s, char *out, size_t len) {
    long total = s > 0 && s < 1e9 ? (long)(s + 0.5) : 0;
    if (total >= 3600)
        snprintf(out, len, "%ld:%02ld:%02ld", total / 3600, total / 60 % 60, total % 60);
    else
        snprintf(out, len, "%ld:%02ld", total / 60, total % 60);
}

/* The time the steps left would take at this run's mean step time so far (M:SS, or H:MM:SS from an
 * hour). */
static void format_eta(const Trainer *t, char *out, size_t len) {
    int64_t done = t->st.step - t->first_step, left = t->total_steps - t->st.step;
    double per_step = done > 0 ? (train_now() - t->run_start) / (double)done : 0;
    format_duration(per_step * (double)left, out, len);
}

/* A value as the user reads it: "nan", "inf", "-inf" (never glibc's "-nan"), or with that
 * many decimals. */
static const char *number_text(double v, int decimals, char *buf, size_t len) {
    if (isnan(v)) return "nan";
    if (isinf(v)) return v > 0 ? "inf" : "-inf";
    snprintf(buf, len, "%.*f", decimals, v);
    return buf;
}

static const char *loss_text(double v, char *buf, size_t len) {
    return number_text(v, 4, buf, len);
}

/* The mean loss of the steps since the last line whose update was applied (a skipped step's
 * loss is not finite or belongs to no update, as Hugging Face's logging_nan_inf_filter
 * leaves such losses out); NaN when every one was skipped. */
static double window_loss(const TrainState *s) {
    int64_t applied = s->log_steps - s->log_skipped;
    return applied > 0 ? s->log_loss_sum / (double)applied : s->log_steps ? NAN : 0.0;
}

int train_log_step(Trainer *t, const StepResult *r, char *err, size_t errlen) {
    TrainState *s = &t->st;
    double now = train_now();
    double interval = now - t->log_time;
    fprintf(t->metrics, "{\"step\": %" PRId64, s->step);
    put_number(t->metrics, "loss", window_loss(s));
    put_number(t->metrics, "lr", r->lr);
    put_number(t->metrics, "grad_norm", r->grad_norm);
    fprintf(t->metrics,
            ", \"tokens\": %" PRId64 ", \"skipped\": %" PRId64 ", \"nonfinite_skipped\": %" PRId64,
            s->tokens, data_skipped(t->data), s->nonfinite_skipped);
    put_number(t->metrics, "tokens_per_s", interval > 0 ? (double)s->log_tokens / interval : 0.0);
    put_number(t->metrics, "elapsed_s", t->elapsed_base + (now - t->run_start));
    /* preference metrics: the mean over the micro-batches since the last line (TRL's) */
    int n_pref = t->preference ? pref_metric_count(t->cfg) : 0;
    double pref[PREF_N];
    for (int k = 0; k < n_pref; k++) {
        pref[k] = s->log_pref_n > 0 ? s->log_pref[k] / (double)s->log_pref_n : NAN;
        put_number(t->metrics, PREF_METRIC_NAMES[k], pref[k]);
    }
    fputs("}\n", t->metrics);
    if (!t->tty) {
        char eta[32], loss[32], norm[32], extra[160] = "", a[32], m[32];
        format_eta(t, eta, sizeof eta);
        if (n_pref)
            snprintf(extra, sizeof extra, "  rewards/accuracies %s  rewards/margins %s",
                     number_text(pref[PREF_ACCURACIES], 3, a, sizeof a),
                     number_text(pref[PREF_MARGINS], 4, m, sizeof m));
        fprintf(stderr,
                "step %" PRId64 "/%" PRId64
                "  loss %s%s  lr %.3g  grad_norm %s  %.0f tok/s  eta %s\n",
                s->step, t->total_steps, loss_text(window_loss(s), loss, sizeof loss), extra, r->lr,
                number_text(r->grad_norm, 3, norm, sizeof norm),
                interval > 0 ? (double)s->log_tokens / interval : 0.0, eta);
    }
    memset(s->log_pref, 0, sizeof s->log_pref);
    s->log_pref_n = 0;
    s->log_loss_sum = 0;
    s->log_steps = 0;
    s->log_skipped = 0;
    s->log_tokens = 0;
    t->log_time = now;
    return flush_metrics(t, err, errlen);
}

int train_log_eval(Trainer *t, double loss, int64_t tokens, char *err, size_t errlen) {
    fprintf(t->metrics, "{\"step\": %" PRId64, t->st.step);
    put_number(t->metrics, "eval_loss", loss);
    fprintf(t->metrics, ", \"eval_tokens\": %" PRId64 "}\n", tokens);
    train_progress_end(t);
    char text[32];
    fprintf(stderr, "step %" PRId64 "  eval_loss %s over %" PRId64 " tokens%s\n", t->st.step,
            loss_text(loss, text, sizeof text), tokens,
            isfinite(loss) ? "" : " (not finite; the run goes on)");
    return flush_metrics(t, err, errlen);
}

int train_log_pref_eval(Trainer *t, double loss, const double *metrics, int64_t pairs, char *err,
                        size_t errlen) {
    fprintf(t->metrics, "{\"step\": %" PRId64, t->st.step);
    put_number(t->metrics, "eval_loss", loss);
    char key[64];
    for (int k = 0; k < pref_metric_count(t->cfg); k++) {
        snprintf(key, sizeof key, "eval_%s", PREF_METRIC_NAMES[k]);
        put_number(t->metrics, key, metrics[k]);
    }
    fprintf(t->metrics, ", \"eval_pairs\": %" PRId64 "}\n", pairs);
    train_progress_end(t);
    char text[32], acc[32];
    fprintf(stderr,
            "step %" PRId64 "  eval_loss %s  eval_rewards/accuracies %s over %" PRId64 " pairs%s\n",
            t->st.step, loss_text(loss, text, sizeof text),
            number_text(metrics[PREF_ACCURACIES], 3, acc, sizeof acc), pairs,
            isfinite(loss) ? "" : " (not finite; the run goes on)");
    return flush_metrics(t, err, errlen);
}

void train_progress(Trainer *t, const StepResult *r) {
    if (!t->tty) return;
    double spent = train_now() - t->run_start;
    double tok_s = spent > 0 ? (double)(t->st.tokens - t->first_tokens) / spent : 0;
    int filled = (int)(PROGRESS_WIDTH * t->st.step / (t->total_steps ? t->total_steps : 1));
    char bar[PROGRESS_WIDTH + 1], eta[32];
    for (int i = 0; i < PROGRESS_WIDTH; i++) bar[i] = i < filled ? '#' : '.';
    bar[PROGRESS_WIDTH] = '\0';
    format_eta(t, eta, sizeof eta);
    char loss[32], acc[48] = "", a[32];
    if (t->preference)
        snprintf(acc, sizeof acc, " | acc %s",
                 number_text(r->pref[PREF_ACCURACIES], 2, a, sizeof a));
    fprintf(stderr, "\rstep %" PRId64 "/%" PRId64 " [%s] loss %s%s | %.0f tok/s | ETA %s  ",
            t->st.step, t->total_steps, bar, loss_text(r->loss, loss, sizeof loss), acc, tok_s,
            eta);
    t->progress_open = true;
}

void train_progress_end(Trainer *t) {
    if (t->progress_open) fputc('\n', stderr);
    t->progress_open = false;
}

void train_summary(const Trainer *t) {
    char took[32], skips[2048];
    format_duration(t->elapsed_base + (train_now() - t->run_start), took, sizeof took);
    fprintf(stderr, "\ndone: %" PRId64 " steps, %" PRId64 " target tokens, %s", t->st.step,
            t->st.tokens, took);
    char a[32], b[32];
    fprintf(stderr, "; final loss %s", loss_text(t->last.loss, a, sizeof a));
    if (t->st.nonfinite_skipped > 0)
        fprintf(stderr, "; %" PRId64 " step%s skipped as not finite (train.on_nonfinite: skip)",
                t->st.nonfinite_skipped, t->st.nonfinite_skipped == 1 ? "" : "s");
    fprintf(stderr, "\nthis run: %.1f s in training steps, %.1f s writing checkpoints\n",
            t->step_seconds, t->save_seconds);
    if (t->evaluated)
        fprintf(stderr, "eval loss: final %s, best %s\n", loss_text(t->last_eval_loss, a, sizeof a),
                isinf(t->st.best_eval_loss) ? "none finite"
                                            : loss_text(t->st.best_eval_loss, b, sizeof b));
    int64_t skipped = data_skipped(t->data);
    if (skipped > 0) {
        data_skip_report(t->data, skips, sizeof skips);
        fprintf(stderr, "skipped %" PRId64 " records:\n%s", skipped, skips);
    }
    fprintf(stderr, "adapter: %s/adapter\nmetrics: %s/metrics.jsonl\n", t->cfg->output.dir,
            t->cfg->output.dir);
}
