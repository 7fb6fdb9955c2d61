/* trainer/train/optim.h — AdamW, global-norm clipping and the learning-rate schedule.
 *
 * Everything works on flat float arrays: the trainer passes each LoRA tensor's data, grad
 * and the two Adam moments (all of the same length n). Nothing here allocates.
 *
 * Determinism: the gradient norm is accumulated in double over fixed chunks whose
 * boundaries depend only on the tensor sizes, and the partial sums are added in index
 * order, so the result is bit-identical for any thread count. adamw_step is element-wise,
 * hence thread-count independent by construction. */
#ifndef LORAFIT_OPTIM_H
#define LORAFIT_OPTIM_H

#include <stdbool.h>
#include <stdint.h>

#include "trainer/config/config.h" /* LrKind */

/* PyTorch torch.optim.AdamW hyper-parameters (lr is the current, scheduled value). */
typedef struct AdamWParams {
    double lr;
    double beta1, beta2;
    double eps;
    double weight_decay;
} AdamWParams;

/* sqrt(sum over tensors i, elements j of grads[i][j]^2), in double, deterministic.
 * grads: n arrays; sizes[i] elements each. */
double optim_global_grad_norm(float *const *grads, const int64_t *sizes, int n);

/* Clipping coefficient as torch.nn.utils.clip_grad_norm_: min(1, max_norm / (norm + 1e-6));
 * max_norm <= 0 disables clipping (returns 1). */
float optim_clip_coef(double norm, double max_norm);

/* One AdamW update of p (n elements) with gradient g scaled by clip_coef, moments m and v
 * updated in place; step is 1-based (the count of updates including this one).
 * The order of operations is PyTorch 1.13+'s _single_tensor_adamw, in float32, with the
 * scalars computed in double and rounded to float where PyTorch does:
 *   g     = g * clip_coef                               (clip_grad_norm_ scales grads)
 *   p     = p * (float)(1 - lr*wd)                      (decoupled weight decay)
 *   m     = fmaf(g, (float)(1-b1), m * (float)b1)
 *   v     = fmaf((float)(1-b2) * g, g, v * (float)b2)
 *   denom = sqrtf(v) / (float)sqrt(1 - b2^t) + (float)eps
 *   p     = p + ((float)(-lr / (1 - b1^t)) * m) / denom
 * (PyTorch's AVX2 kernels for add(alpha=) and addcmul are fused multiply-adds; with these
 * fmaf calls the result matched torch 1.13 AdamW bit for bit over 4 steps of 1000 elements.)
 * g itself is not modified. OpenMP-parallel over elements. */
void adamw_step(float *p, const float *g, float *m, float *v, int64_t n, float clip_coef,
                const AdamWParams *hp, int64_t step);
/* Whether that step would leave every p, m and v finite, computed without changing them
 * (the same arithmetic, element by element). Finite gradients can still overflow: a huge
 * learning rate makes lr / (1 - beta1^t) infinite, a gradient above 1.8e19 makes its
 * square infinite in v. The training loop drops such an update instead of applying it. */
bool adamw_step_is_finite(const float *p, const float *g, const float *m, const float *v, int64_t n,
                          float clip_coef, const AdamWParams *hp, int64_t step);

/* Learning-rate schedules. */

typedef struct LrSchedule {
    LrKind kind;
    double lr;            /* peak learning rate */
    int64_t warmup_steps; /* W >= 0 */
    int64_t total_steps;  /* T >= 1: the run's optimizer steps (train.max_steps) */
    double min_lr_ratio;  /* floor of linear/cosine decay, as a fraction of lr */
} LrSchedule;

/* The learning rate of optimizer step `step` (0-based: the first update is step 0).
 *
 *   warmup, s < W:    lr * (s + 1) / (W + 1)          (first step lr/(W+1) > 0, rising)
 *   after,  s >= W:   progress p = (s - W) / (T - 1 - W), clamped to [0, 1];
 *                     p = 0 when T - 1 - W <= 0 (no room to decay: the peak lr is used)
 *     constant:       lr
 *     linear:         lr * (r + (1 - r) * (1 - p))
 *     cosine:         lr * (r + (1 - r) * 0.5 * (1 + cos(pi * p)))
 *   with r = min_lr_ratio. So step W (the first after warmup) runs at exactly lr, the last
 *   step T - 1 at exactly lr * r, and the decay in between is monotone. With W = 0 and
 *   r = 0 the last step's lr is 0 (as in Hugging Face's schedulers), every earlier one > 0. */
double lr_at(const LrSchedule *s, int64_t step);

#endif
