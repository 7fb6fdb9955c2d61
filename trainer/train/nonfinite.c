/* trainer/train/nonfinite.c — a step whose loss, gradient or update is not finite, under
 * train.on_nonfinite: skipped (skip), or the end of the run with what to do (stop, or skip
 * after train.max_nonfinite_skips such steps in a row).
 *
 * Why no checkpoint can hold a NaN: train_step (loop.c) applies no update whose loss,
 * gradient norm or result is not finite, so the LoRA weights and AdamW moments stay the
 * last finite ones; a skipped step's checkpoint holds them, and when the run stops here
 * nothing more is written, so the newest checkpoint stays the last good one. The store's
 * writers refuse a non-finite value besides (store_check_finite), in case a path not
 * foreseen here produced one.
 *
 * A skipped step is what PyTorch's GradScaler makes of a step with an inf or NaN gradient
 * under Hugging Face's Trainer: the step counts (toward train.max_steps, in metrics.jsonl,
 * for checkpoints and evaluations), the optimizer step does not (AdamW's moments and step
 * count, and the learning-rate schedule, stay where they were). */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "trainer/train/internal.h"

/* A value for the user: "NaN", "inf", "-inf" or %.4g. */
static const char *value_text(double v, char *buf, size_t len) {
    if (isnan(v)) return "NaN";
    if (isinf(v)) return v > 0 ? "inf" : "-inf";
    snprintf(buf, len, "%.4g", v);
    return buf;
}

/* "the loss (NaN) and the gradient norm (NaN) are not finite", or the update's case. */
static void describe(const StepResult *r, char *out, size_t len) {
    char a[32], b[32];
    const char *loss = value_text(r->loss, a, sizeof a),
               *norm = value_text(r->grad_norm, b, sizeof b);
    if (r->nonfinite & NONFINITE_UPDATE)
        snprintf(out, len,
                 "the loss (%s) and the gradient norm (%s) are finite, but the update at learning "
                 "rate %g would make LoRA weights or AdamW moments not finite",
                 loss, norm, r->lr);
    else if ((r->nonfinite & NONFINITE_LOSS) && (r->nonfinite & NONFINITE_GRAD_NORM))
        snprintf(out, len, "the loss (%s) and the gradient norm (%s) are not finite", loss, norm);
    else if (r->nonfinite & NONFINITE_LOSS)
        snprintf(out, len, "the loss (%s) is not finite (the gradient norm is %s)", loss, norm);
    else
        snprintf(out, len,
                 "the gradient norm (%s) is not finite: a LoRA gradient is NaN or infinite (the "
                 "loss is %s)",
                 norm, loss);
}

/* What to try. At the first step of a fresh adapter the LoRA changes nothing yet (every B
 * is zero), so a loss that is not finite there comes from the base model or the data. */
static void advice(const Trainer *t, const StepResult *r, char *out, size_t len) {
    const Config *c = t->cfg;
    bool fresh = t->st.step == 0 && !c->lora.init_from && !t->last_checkpoint[0];
    if (fresh && (r->nonfinite & NONFINITE_LOSS)) {
        snprintf(out, len,
                 "At the first step of a fresh adapter the LoRA has no effect yet (its B matrices "
                 "are zero), so the base model's own loss is not finite on this data: check the "
                 "weights of %s (`lorafit eval` without --adapter shows the base model's loss), "
                 "or try train.precision: f32.",
                 c->model.path);
        return;
    }
    char clip[64], from[4400] = "";
    if (c->train.max_grad_norm > 0)
        snprintf(clip, sizeof clip, "now %g", c->train.max_grad_norm);
    else
        snprintf(clip, sizeof clip, "clipping is off; 1.0 is usual");
    if (t->last_checkpoint[0])
        snprintf(from, sizeof from, " (lora.init_from: %s starts from its weights)",
                 t->last_checkpoint);
    snprintf(out, len,
             "Try a lower train.lr (now %g), train.max_grad_norm (%s) or train.precision: f32, "
             "in a new output.dir%s; %s.",
             c->train.lr, clip, from,
             c->train.on_nonfinite == ON_NONFINITE_SKIP
                 ? "or a larger train.max_nonfinite_skips to skip more such steps in a row"
                 : "or resume with train.on_nonfinite: skip to drop such steps and go on");
}

/* Rank 0: the message that ends the run at step r. */
static void stop_message(const Trainer *t, const StepResult *r, char *err, size_t errlen) {
    const Config *c = t->cfg;
    char what[512], why[160], where[4400], todo[4800];
    describe(r, what, sizeof what);
    if (c->train.on_nonfinite == ON_NONFINITE_SKIP)
        snprintf(why, sizeof why,
                 "train.on_nonfinite: skip, and %" PRId64
                 " steps in a row were not finite: train.max_nonfinite_skips",
                 t->st.nonfinite_streak + 1);
    else
        snprintf(why, sizeof why, "train.on_nonfinite: stop");
    if (t->last_checkpoint[0])
        snprintf(where, sizeof where,
                 "The last checkpoint is %s, and every value in it is finite (--resume continues "
                 "from it).",
                 t->last_checkpoint);
    else
        snprintf(where, sizeof where, "No checkpoint was written yet.");
    advice(t, r, todo, sizeof todo);
    snprintf(err, errlen,
             "step %" PRId64 ": %s; its update was not applied and the run stops (%s), without "
             "writing a checkpoint or an adapter. %s %s",
             t->st.step + 1, what, why, where, todo);
}

TrainResult train_nonfinite_step(Trainer *t, const StepResult *r, char *err, size_t errlen) {
    const Config *c = t->cfg;
    TrainState *s = &t->st;
    bool skip = c->train.on_nonfinite == ON_NONFINITE_SKIP &&
                s->nonfinite_streak + 1 < c->train.max_nonfinite_skips;
    if (skip) {
        s->nonfinite_skipped++;
        s->nonfinite_streak++;
        s->log_skipped++;
        if (t->rank == 0) {
            char what[512];
            describe(r, what, sizeof what);
            train_progress_end(t);
            fprintf(stderr,
                    "lorafit: step %" PRId64
                    ": %s; update skipped (train.on_nonfinite: skip), %" PRId64
                    " in a row (the run stops at %" PRId64 "), %" PRId64 " in all\n",
                    s->step + 1, what, s->nonfinite_streak, c->train.max_nonfinite_skips,
                    s->nonfinite_skipped);
        }
        return TRAIN_DONE;
    }
    if (t->rank == 0) {
        train_progress_end(t);
        /* The steps finished since the last metrics line, so that metrics.jsonl ends where the
         * run did (not when no step of this process finished: t->last would be empty). */
        char log_err[512];
        if (s->log_steps > 0 && s->step > t->first_step &&
            train_log_step(t, &t->last, log_err, sizeof log_err) != 0)
            fprintf(stderr, "lorafit: %s\n", log_err);
        stop_message(t, r, err, errlen);
    } else {
        snprintf(err, errlen, "step %" PRId64 " is not finite", s->step + 1);
    }
    /* Every rank stops here alike (the decision is the same everywhere); the vote keeps rank
     * 0's message alone. */
    return train_agree_status(TRAIN_FAILED, err, errlen);
}
