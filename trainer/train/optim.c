/* trainer/train/optim.c — AdamW, gradient clipping and learning-rate schedules (see optim.h). */
#include "trainer/train/optim.h"

#include <math.h>

/* Chunking of the norm reduction: at least NORM_CHUNK_MIN elements per chunk and at most
 * NORM_MAX_CHUNKS chunks per tensor, so the partial sums fit on the stack and their
 * boundaries depend only on the tensor size, never on the thread count. */
#define NORM_CHUNK_MIN  4096
#define NORM_MAX_CHUNKS 256

static double sum_squares(const float *x, int64_t n) {
    double partial[NORM_MAX_CHUNKS];
    int64_t chunk = (n + NORM_MAX_CHUNKS - 1) / NORM_MAX_CHUNKS;
    if (chunk < NORM_CHUNK_MIN) chunk = NORM_CHUNK_MIN;
    int n_chunks = (int)((n + chunk - 1) / chunk);
#pragma omp parallel for schedule(static) if (n_chunks > 1)
    for (int c = 0; c < n_chunks; c++) {
        int64_t lo = (int64_t)c * chunk, hi = lo + chunk < n ? lo + chunk : n;
        double s = 0.0;
        for (int64_t j = lo; j < hi; j++) s += (double)x[j] * (double)x[j];
        partial[c] = s;
    }
    double total = 0.0;
    for (int c = 0; c < n_chunks; c++) total += partial[c];
    return total;
}

double optim_global_grad_norm(float *const *grads, const int64_t *sizes, int n) {
    double total = 0.0;
    for (int i = 0; i < n; i++)
        if (grads[i] && sizes[i] > 0) total += sum_squares(grads[i], sizes[i]);
    return sqrt(total);
}

float optim_clip_coef(double norm, double max_norm) {
    if (!(max_norm > 0.0)) return 1.0f;
    /* PyTorch computes the coefficient in the gradients' dtype (float32) and clamps it. */
    float coef = (float)max_norm / ((float)norm + 1e-6f);
    return coef < 1.0f ? coef : 1.0f;
}

/* The scalars of one update, computed once and rounded where PyTorch rounds them. */
typedef struct AdamWScalars {
    float decay, b1, one_minus_b1, b2, one_minus_b2, neg_step_size, bias_correction2_sqrt, eps;
} AdamWScalars;

static AdamWScalars adamw_scalars(const AdamWParams *hp, int64_t step) {
    const double t = (double)step;
    const double bias_correction1 = 1.0 - pow(hp->beta1, t);
    const double bias_correction2 = 1.0 - pow(hp->beta2, t);
    return (AdamWScalars){(float)(1.0 - hp->lr * hp->weight_decay),
                          (float)hp->beta1,
                          (float)(1.0 - hp->beta1),
                          (float)hp->beta2,
                          (float)(1.0 - hp->beta2),
                          (float)(-(hp->lr / bias_correction1)),
                          (float)sqrt(bias_correction2),
                          (float)hp->eps};
}

/* One element's update: *p, *m, *v become the new values. adamw_step and
 * adamw_step_is_finite both run it, so the check sees exactly the values the step writes. */
static inline void adamw_element(const AdamWScalars *k, float g, float clip_coef, float *p,
                                 float *m, float *v) {
    float gi = g * clip_coef;
    float pi = *p * k->decay;
    /* PyTorch's vectorised add(alpha) and addcmul are fused multiply-adds. */
    float mi = fmaf(gi, k->one_minus_b1, *m * k->b1);
    float vi = fmaf(k->one_minus_b2 * gi, gi, *v * k->b2);
    float denom = sqrtf(vi) / k->bias_correction2_sqrt + k->eps;
    *p = pi + k->neg_step_size * mi / denom;
    *m = mi;
    *v = vi;
}

void adamw_step(float *p, const float *g, float *m, float *v, int64_t n, float clip_coef,
                const AdamWParams *hp, int64_t step) {
    const AdamWScalars k = adamw_scalars(hp, step);
#pragma omp parallel for schedule(static) if (n > 32768)
    for (int64_t i = 0; i < n; i++) adamw_element(&k, g[i], clip_coef, &p[i], &m[i], &v[i]);
}

bool adamw_step_is_finite(const float *p, const float *g, const float *m, const float *v, int64_t n,
                          float clip_coef, const AdamWParams *hp, int64_t step) {
    const AdamWScalars k = adamw_scalars(hp, step);
    int bad = 0;
#pragma omp parallel for schedule(static) reduction(| : bad) if (n > 32768)
    for (int64_t i = 0; i < n; i++) {
        float pi = p[i], mi = m[i], vi = v[i];
        adamw_element(&k, g[i], clip_coef, &pi, &mi, &vi);
        bad |= !isfinite(pi) | !isfinite(mi) | !isfinite(vi);
    }
    return !bad;
}

double lr_at(const LrSchedule *s, int64_t step) {
    const int64_t w = s->warmup_steps > 0 ? s->warmup_steps : 0;
    if (step < 0) step = 0;
    if (step < w) return s->lr * (double)(step + 1) / (double)(w + 1);
    if (s->kind == LR_CONSTANT) return s->lr;
    const int64_t span = s->total_steps - 1 - w;
    double progress = span > 0 ? (double)(step - w) / (double)span : 0.0;
    if (progress > 1.0) progress = 1.0;
    const double r = s->min_lr_ratio;
    double shape = s->kind == LR_LINEAR ? 1.0 - progress : 0.5 * (1.0 + cos(M_PI * progress));
    /* At p = 1 cos(pi) is exactly -1, so the last step is exactly lr * r. */
    return s->lr * (r + (1.0 - r) * shape);
}
