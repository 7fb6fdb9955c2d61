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

void adamw_step(float *p, const float *g, float *m, float *v, int64_t n, float clip_coef,
                const AdamWParams *hp, int64_t step) {
    const double t = (double)step;
    const double bias_correction1 = 1.0 - pow(hp->beta1, t);
    const double bias_correction2 = 1.0 - pow(hp->beta2, t);
    const float decay = (float)(1.0 - hp->lr * hp->weight_decay);
    const float b1 = (float)hp->beta1, one_minus_b1 = (float)(1.0 - hp->beta1);
    const float b2 = (float)hp->beta2, one_minus_b2 = (float)(1.0 - hp->beta2);
    const float neg_step_size = (float)(-(hp->lr / bias_correction1));
    const float bias_correction2_sqrt = (float)sqrt(bias_correction2);
    const float eps = (float)hp->eps;
#pragma omp parallel for schedule(static) if (n > 32768)
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i] * clip_coef;
        float pi = p[i] * decay;
        /* PyTorch's vectorised add(alpha) and addcmul are fused multiply-adds. */
        float mi = fmaf(gi, one_minus_b1, m[i] * b1);
        float vi = fmaf(one_minus_b2 * gi, gi, v[i] * b2);
        float denom = sqrtf(vi) / bias_correction2_sqrt + eps;
        p[i] = pi + neg_step_size * mi / denom;
        m[i] = mi;
        v[i] = vi;
    }
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
