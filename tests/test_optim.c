/* tests/test_optim.c — AdamW, clipping, grad-norm determinism and the lr schedules. */
#include "trainer/train/train.h"
#include "tests/test_util.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* Textbook AdamW in double for one scalar: the closed form the float kernel must follow. */
static void adamw_reference(double *p, double g, double *m, double *v, const AdamWParams *hp,
                            int t) {
    *p *= 1.0 - hp->lr * hp->weight_decay;
    *m = hp->beta1 * *m + (1.0 - hp->beta1) * g;
    *v = hp->beta2 * *v + (1.0 - hp->beta2) * g * g;
    double mhat = *m / (1.0 - pow(hp->beta1, t));
    double vhat = *v / (1.0 - pow(hp->beta2, t));
    *p -= hp->lr * mhat / (sqrt(vhat) + hp->eps);
}

START_TEST(test_adamw_matches_closed_form_for_three_steps) {
    const AdamWParams hp = {
        .lr = 0.01, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.05};
    /* Three elements with different gradient histories, including a sign change. */
    const float g[3][3] = {{0.5f, -0.25f, 2.0f}, {1e-3f, 1e-3f, 1e-3f}, {-4.0f, 3.0f, -0.5f}};
    float p[3] = {1.0f, -2.0f, 0.25f}, m[3] = {0}, v[3] = {0};
    double pr[3] = {1.0, -2.0, 0.25}, mr[3] = {0}, vr[3] = {0};
    for (int t = 1; t <= 3; t++) {
        float gt[3];
        for (int i = 0; i < 3; i++) gt[i] = g[i][t - 1];
        adamw_step(p, gt, m, v, 3, 1.0f, &hp, t);
        for (int i = 0; i < 3; i++) {
            adamw_reference(&pr[i], gt[i], &mr[i], &vr[i], &hp, t);
            ck_assert_double_eq_tol(p[i], pr[i], 1e-6);
            ck_assert_double_eq_tol(m[i], mr[i], 1e-6 * fabs(mr[i]) + 1e-12);
            ck_assert_double_eq_tol(v[i], vr[i], 1e-6 * fabs(vr[i]) + 1e-15);
        }
    }
    /* A constant gradient moves p by almost exactly lr per step (bias correction works). */
    float q = 0.0f, mq = 0.0f, vq = 0.0f, gq = 0.3f;
    AdamWParams no_wd = hp;
    no_wd.weight_decay = 0.0;
    for (int t = 1; t <= 3; t++) adamw_step(&q, &gq, &mq, &vq, 1, 1.0f, &no_wd, t);
    ck_assert_double_eq_tol(q, -0.03, 1e-7);
}
END_TEST

START_TEST(test_weight_decay_is_decoupled) {
    const AdamWParams hp = {
        .lr = 0.1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.5};
    /* Zero gradient: only the decay acts, p *= 1 - lr*wd per step. */
    float p = 2.0f, m = 0.0f, v = 0.0f, zero = 0.0f;
    adamw_step(&p, &zero, &m, &v, 1, 1.0f, &hp, 1);
    ck_assert_float_eq(p, 2.0f * (float)(1.0 - 0.1 * 0.5));
    /* The decay's effect does not depend on the gradient's scale: with coupled L2 (Adam with
     * wd added to g) a huge gradient would swamp it. p1 = p0 (1 - lr wd) - lr sign(g). */
    for (int k = 0; k < 2; k++) {
        float g = k == 0 ? 1e-2f : 1e4f;
        float q = 2.0f, mq = 0.0f, vq = 0.0f;
        adamw_step(&q, &g, &mq, &vq, 1, 1.0f, &hp, 1);
        ck_assert_double_eq_tol(q, 2.0 * 0.95 - 0.1, 1e-5);
    }
}
END_TEST

START_TEST(test_clip_coefficient_and_scaled_gradient) {
    ck_assert_float_eq(optim_clip_coef(10.0, 1.0), 1.0f / (10.0f + 1e-6f));
    ck_assert_float_eq(optim_clip_coef(0.5, 1.0), 1.0f);
    ck_assert_float_eq(optim_clip_coef(1e9, 0.0), 1.0f); /* max_norm 0 = off */
    ck_assert_float_lt(optim_clip_coef(1.0, 1.0), 1.0f); /* the 1e-6 keeps it just below */
    /* Passing clip_coef equals pre-scaling the gradient, bit for bit. */
    const AdamWParams hp = {
        .lr = 1e-3, .beta1 = 0.9, .beta2 = 0.99, .eps = 1e-8, .weight_decay = 0.0};
    float g[4] = {3.0f, -1.0f, 0.5f, 8.0f}, gs[4];
    float coef =
        optim_clip_coef(optim_global_grad_norm((float *const[]){g}, (int64_t[]){4}, 1), 1.0);
    ck_assert_float_lt(coef, 0.12f);
    for (int i = 0; i < 4; i++) gs[i] = g[i] * coef;
    float p1[4] = {1, 2, 3, 4}, p2[4] = {1, 2, 3, 4}, m1[4] = {0}, m2[4] = {0}, v1[4] = {0},
          v2[4] = {0};
    adamw_step(p1, g, m1, v1, 4, coef, &hp, 1);
    adamw_step(p2, gs, m2, v2, 4, 1.0f, &hp, 1);
    ck_assert_int_eq(memcmp(m1, m2, sizeof m1), 0);
    ck_assert_int_eq(memcmp(v1, v2, sizeof v1), 0);
    ck_assert_int_eq(memcmp(p1, p2, sizeof p1), 0);
    ck_assert_float_eq(g[0], 3.0f); /* the caller's gradient is untouched */
}
END_TEST

START_TEST(test_grad_norm_is_exact_and_thread_count_independent) {
    float a[2] = {3.0f, 4.0f};
    ck_assert_double_eq(optim_global_grad_norm((float *const[]){a}, (int64_t[]){2}, 1), 5.0);
    const int64_t sizes[3] = {1, 5000, 300001};
    float *g[3];
    uint64_t seed = 11;
    double plain = 0.0;
    for (int i = 0; i < 3; i++) {
        g[i] = malloc((size_t)sizes[i] * sizeof(float));
        for (int64_t j = 0; j < sizes[i]; j++) {
            g[i][j] = test_rand_uniform(&seed, -1.0f, 1.0f) * (i == 0 ? 100.0f : 1.0f);
            plain += (double)g[i][j] * g[i][j];
        }
    }
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    double n1 = optim_global_grad_norm(g, sizes, 3);
    omp_set_num_threads(2);
    double n2 = optim_global_grad_norm(g, sizes, 3);
    omp_set_num_threads(3);
    double n3 = optim_global_grad_norm(g, sizes, 3);
    omp_set_num_threads(saved);
    ck_assert_int_eq(memcmp(&n1, &n2, sizeof n1), 0);
    ck_assert_int_eq(memcmp(&n1, &n3, sizeof n1), 0);
    ck_assert_double_eq_tol(n1, sqrt(plain), 1e-9 * sqrt(plain));
    for (int i = 0; i < 3; i++) free(g[i]);
}
END_TEST

START_TEST(test_adamw_is_thread_count_independent) {
    enum { N = 100000 };
    float *buf = malloc(8 * N * sizeof(float));
    float *g = buf, *p[2] = {buf + N, buf + 2 * N}, *m[2] = {buf + 3 * N, buf + 4 * N},
          *v[2] = {buf + 5 * N, buf + 6 * N};
    uint64_t seed = 3;
    for (int i = 0; i < N; i++) {
        g[i] = test_rand_uniform(&seed, -1, 1);
        p[0][i] = p[1][i] = test_rand_uniform(&seed, -1, 1);
        m[0][i] = m[1][i] = v[0][i] = v[1][i] = 0.0f;
    }
    const AdamWParams hp = {
        .lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.01};
    int saved = omp_get_max_threads();
    for (int k = 0; k < 2; k++) {
        omp_set_num_threads(k + 1);
        for (int t = 1; t <= 2; t++) adamw_step(p[k], g, m[k], v[k], N, 0.7f, &hp, t);
    }
    omp_set_num_threads(saved);
    ck_assert_int_eq(memcmp(p[0], p[1], N * sizeof(float)), 0);
    ck_assert_int_eq(memcmp(v[0], v[1], N * sizeof(float)), 0);
    free(buf);
}
END_TEST

START_TEST(test_schedules_at_key_points) {
    const LrKind kinds[3] = {LR_CONSTANT, LR_LINEAR, LR_COSINE};
    for (int k = 0; k < 3; k++) {
        LrSchedule s = {.kind = kinds[k],
                        .lr = 2e-4,
                        .warmup_steps = 10,
                        .total_steps = 100,
                        .min_lr_ratio = 0.1};
        ck_assert_double_gt(lr_at(&s, 0), 0.0);
        ck_assert_double_eq(lr_at(&s, 0), 2e-4 / 11.0);
        for (int64_t t = 1; t < 10; t++) ck_assert_double_gt(lr_at(&s, t), lr_at(&s, t - 1));
        ck_assert_double_eq(lr_at(&s, 10), 2e-4); /* end of warmup */
        double last = kinds[k] == LR_CONSTANT ? 2e-4 : 2e-4 * 0.1;
        ck_assert_double_eq_tol(lr_at(&s, 99), last, 1e-18);
        for (int64_t t = 11; t < 100; t++) {
            if (kinds[k] == LR_CONSTANT)
                ck_assert_double_eq(lr_at(&s, t), 2e-4);
            else
                ck_assert_double_lt(lr_at(&s, t), lr_at(&s, t - 1)); /* strictly decaying */
        }
        ck_assert_double_eq_tol(lr_at(&s, 150), last, 1e-18); /* past the end: stays at floor */
    }
    /* Midpoints: linear halfway between lr and the floor; cosine too (cos(pi/2) = 0). */
    LrSchedule lin = {LR_LINEAR, 1.0, 0, 101, 0.0};
    ck_assert_double_eq_tol(lr_at(&lin, 50), 0.5, 1e-12);
    LrSchedule cosine = {LR_COSINE, 1.0, 0, 101, 0.0};
    ck_assert_double_eq_tol(lr_at(&cosine, 50), 0.5, 1e-12);
    ck_assert_double_eq_tol(lr_at(&cosine, 25), 0.5 * (1 + cos(M_PI / 4)), 1e-12);
    /* No warmup: the first step runs at the peak; a one-step run too. */
    ck_assert_double_eq(lr_at(&cosine, 0), 1.0);
    LrSchedule one = {LR_COSINE, 1e-3, 0, 1, 0.0};
    ck_assert_double_eq(lr_at(&one, 0), 1e-3);
}
END_TEST

Suite *optim_suite(void) {
    Suite *s = suite_create("optim");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_adamw_matches_closed_form_for_three_steps);
    tcase_add_test(tc, test_weight_decay_is_decoupled);
    tcase_add_test(tc, test_clip_coefficient_and_scaled_gradient);
    tcase_add_test(tc, test_grad_norm_is_exact_and_thread_count_independent);
    tcase_add_test(tc, test_adamw_is_thread_count_independent);
    tcase_add_test(tc, test_schedules_at_key_points);
    suite_add_tcase(s, tc);
    return s;
}
