/* tests/test_tensor_vexp.c — the array exps of tensor/vexp.h: vexp_floats gives glibc expf's
 * bits for every input (checked on a spread of all 2^32 bit patterns and at the edges of
 * its special cases), and vexp_shifted_sum is within an ulp of exp(x - shift) with its sum
 * taken in the order it promises; each on the AVX-512 loops (where the CPU has them) and on
 * the AVX2 ones (vexp_force_avx2); and vtanh_floats within 3 ulp of tanh, the same bits on
 * both; vexp_floats_single and vexp_shifted_sum_single (BF16 precision's) within 2 ulp, the
 * same bits on every path (AVX-512, AVX2, the one-by-one tail), NaN kept, sums in their
 * order. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/vexp.h"
#include "tests/test_util.h"

static uint32_t bits_of(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float float_of(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Asserts vexp_floats(x) == expf(x) bit for bit (NaNs: both NaN). One assertion at the
 * end: Check records every ck_assert it passes, which costs a write each. */
static void check_against_expf(const float *x, int64_t n) {
    float *y = malloc((size_t)n * sizeof *y);
    ck_assert(y);
    vexp_floats(y, x, n);
    int64_t bad = -1;
    for (int64_t i = 0; i < n && bad < 0; i++) {
        float want = expf(x[i]);
        if (isnan(want) ? !isnan(y[i]) : bits_of(y[i]) != bits_of(want)) bad = i;
    }
    float got = bad >= 0 ? y[bad] : 0.0f, in = bad >= 0 ? x[bad] : 0.0f;
    free(y);
    ck_assert_msg(bad < 0, "exp(%a) = %a, expf gives %a", in, got, expf(in));
}

START_TEST(test_vexp_floats_is_expf_over_a_spread_of_all_floats) {
    /* every 251st bit pattern (a prime stride: every exponent, mantissas of every shape) */
    const int64_t n = ((int64_t)1 << 32) / 251 + 1;
    float *x = malloc((size_t)n * sizeof *x);
    ck_assert(x);
    for (int64_t i = 0; i < n; i++) x[i] = float_of((uint32_t)(i * 251));
    for (int avx2 = 0; avx2 < 2; avx2++) {
        vexp_force_avx2(avx2);
        check_against_expf(x, n);
    }
    vexp_force_avx2(false);
    free(x);
}
END_TEST

START_TEST(test_vexp_floats_is_expf_at_special_case_edges_and_in_place) {
    /* around 88 (where expf's special cases start), overflow, underflow, 0, inf and NaN, in
     * runs not a multiple of 4 long so the tail and every lane position are covered */
    const float centers[] = {
        88.0f, -88.0f,   88.72283935546875f, -87.33654f, -103.27893f, -103.97208f, 0.0f,
        -0.0f, INFINITY, -INFINITY,          NAN,        1e-30f,      -1e-30f,     0x1p-149f,
        1.0f};
    enum { RUN = 203 };
    float x[RUN], y[RUN];
    for (size_t c = 0; c < 2 * sizeof centers / sizeof centers[0]; c++) {
        vexp_force_avx2(c % 2); /* each center on both paths */
        uint32_t b = bits_of(centers[c / 2]);
        for (int i = 0; i < RUN; i++) x[i] = float_of(b + (uint32_t)(i - RUN / 2));
        x[c / 2 % 8] = centers[c / 2];
        check_against_expf(x, RUN);
        memcpy(y, x, sizeof y);
        vexp_floats(y, y, RUN); /* in place */
        int bad = -1;
        for (int i = 0; i < RUN && bad < 0; i++)
            if (!isnan(x[i]) && bits_of(y[i]) != bits_of(expf(x[i]))) bad = i;
        ck_assert_msg(bad < 0, "in place: exp(%a) = %a", bad >= 0 ? x[bad] : 0.0f,
                      bad >= 0 ? y[bad] : 0.0f);
    }
    vexp_force_avx2(false);
}
END_TEST

static void check_shifted_sum(const float *x, float *e, int64_t n, float mx) {
    double sum = vexp_shifted_sum(e, x, mx, n);
    double lanes[4] = {0, 0, 0, 0};
    int64_t bad = -1;
    for (int64_t i = 0; i < n; i++) {
        double want = exp((double)x[i] - mx);
        double ulp = nextafterf((float)want, INFINITY) - (float)want;
        if (bad < 0 && !(fabs(e[i] - want) <= ulp)) bad = i;
        lanes[i % 4] += e[i];
    }
    int64_t at = bad < 0 ? 0 : bad;
    ck_assert_msg(bad < 0, "exp(%a - %a) = %a, want %a", x[at], mx, e[at], exp((double)x[at] - mx));
    ck_assert(sum == (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]));
    memcpy(e, x, (size_t)n * sizeof *e);
    ck_assert(vexp_shifted_sum(e, e, mx, n) == sum); /* in place, and the same again */
}

START_TEST(test_vexp_shifted_sum_is_within_an_ulp_and_sums_in_its_order) {
    const int64_t n = 49157; /* a vocabulary-sized row, not a multiple of 4 */
    float *x = malloc((size_t)n * sizeof *x), *e = malloc((size_t)n * sizeof *e);
    ck_assert(x && e);
    uint64_t seed = 7;
    float mx = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        x[i] = test_rand_uniform(&seed, -40.0f, 12.0f);
        if (i % 1000 == 0) x[i] = -95.0f - (float)(i % 7); /* the scalar fallback lanes */
        mx = x[i] > mx ? x[i] : mx;
    }
    for (int avx2 = 0; avx2 < 2; avx2++) {
        vexp_force_avx2(avx2);
        check_shifted_sum(x, e, n, mx);
    }
    vexp_force_avx2(false);
    free(x);
    free(e);
}
END_TEST

/* |got - want| in units of want's last place (as a float), NaN only for NaN. */
static double ulps_off(float got, double want) {
    if (isnan(want)) return isnan(got) ? 0.0 : INFINITY;
    double ulp = ldexp(1.0, (want < 0x1p-126 ? -126 : ilogb(want)) - 23);
    return fabs(got - want) / ulp;
}

/* vexp_floats_single: within 2 ulp of exp over [-87, 88]; 0 below -87 (and for -inf); NaN
 * kept; the same bits on the AVX-512 and AVX2 paths and in the one-by-one tail (each input
 * at every lane position of a run 7 long and of one 16 long). */
START_TEST(test_vexp_floats_single_is_within_2_ulp_and_the_same_on_every_path) {
    const int64_t n = 100003;
    float *x = malloc((size_t)n * sizeof *x), *y[2], tail[7];
    y[0] = malloc((size_t)n * sizeof(float)), y[1] = malloc((size_t)n * sizeof(float));
    ck_assert(x && y[0] && y[1]);
    uint64_t seed = 5;
    for (int64_t i = 0; i < n; i++) x[i] = test_rand_uniform(&seed, -87.0f, 88.0f);
    x[0] = NAN, x[1] = -INFINITY, x[2] = -87.5f, x[3] = -1000.0f, x[4] = 0.0f, x[5] = -0.0f;
    for (int avx2 = 0; avx2 < 2; avx2++) {
        vexp_force_avx2(avx2);
        memcpy(y[avx2], x, (size_t)n * sizeof(float));
        vexp_floats_single(y[avx2], y[avx2], n); /* in place */
    }
    ck_assert_msg(memcmp(y[0], y[1], (size_t)n * sizeof(float)) == 0, "AVX2 and AVX-512 differ");
    for (int64_t i0 = 0; i0 + 7 <= 4096; i0 += 7) { /* every element in the tail (n < 8) */
        vexp_floats_single(tail, x + i0, 7);
        ck_assert_msg(memcmp(tail, y[0] + i0, sizeof tail) == 0, "the tail differs at %lld",
                      (long long)i0);
    }
    vexp_force_avx2(false);
    ck_assert(isnan(y[0][0]) && y[0][1] == 0.0f && y[0][2] == 0.0f && y[0][3] == 0.0f);
    int64_t bad = -1;
    for (int64_t i = 4; i < n && bad < 0; i++)
        if (ulps_off(y[0][i], exp((double)x[i])) > 2.0) bad = i;
    float in = bad >= 0 ? x[bad] : 0.0f, got = bad >= 0 ? y[0][bad] : 0.0f;
    free(x), free(y[0]), free(y[1]);
    ck_assert_msg(bad < 0, "exp(%a) = %a, want %a", in, got, exp((double)in));
}
END_TEST

/* vexp_shifted_sum_single: e = exp(x - shift) (the difference in float) within 2 ulp, summed
 * in its order, on both paths with the same bits; NaN kept. */
START_TEST(test_vexp_shifted_sum_single_is_within_2_ulp_and_sums_in_its_order) {
    const int64_t n = 49157; /* a vocabulary-sized row, not a multiple of 8 */
    float *x = malloc((size_t)n * sizeof *x), *e[2];
    e[0] = malloc((size_t)n * sizeof(float)), e[1] = malloc((size_t)n * sizeof(float));
    ck_assert(x && e[0] && e[1]);
    uint64_t seed = 9;
    float mx = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        x[i] = test_rand_uniform(&seed, -40.0f, 12.0f);
        mx = x[i] > mx ? x[i] : mx;
    }
    double sum[2];
    for (int avx2 = 0; avx2 < 2; avx2++) {
        vexp_force_avx2(avx2);
        memcpy(e[avx2], x, (size_t)n * sizeof(float));
        sum[avx2] = vexp_shifted_sum_single(e[avx2], e[avx2], mx, n); /* in place */
    }
    vexp_force_avx2(false);
    ck_assert(sum[0] == sum[1] && memcmp(e[0], e[1], (size_t)n * sizeof(float)) == 0);
    double lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t bad = -1;
    for (int64_t i = 0; i < n; i++) {
        if (bad < 0 && ulps_off(e[0][i], exp((double)(x[i] - mx))) > 2.0) bad = i;
        lanes[i % 8] += e[0][i];
    }
    int64_t at = bad < 0 ? 0 : bad;
    ck_assert_msg(bad < 0, "exp(%a - %a) = %a", x[at], mx, e[0][at]);
    ck_assert(sum[0] == ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) +
                            ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7])));
    x[n / 2] = NAN;
    ck_assert(isnan(vexp_shifted_sum_single(e[0], x, mx, n)) && isnan(e[0][n / 2]));
    free(x), free(e[0]), free(e[1]);
}
END_TEST

/* vtanh_floats within 3 ulp of tanh (taken in double) on a spread of inputs around the
 * series / exp switch at 0.4, tiny and huge ones, infinities and NaN; in place; and the
 * same bits on the AVX-512 and AVX2 paths. */
START_TEST(test_vtanh_floats_is_within_3_ulp_and_the_same_on_every_path) {
    const int64_t n = 200003;
    float *x = malloc((size_t)n * sizeof *x), *y[2];
    y[0] = malloc((size_t)n * sizeof(float)), y[1] = malloc((size_t)n * sizeof(float));
    ck_assert(x && y[0] && y[1]);
    uint64_t seed = 11;
    for (int64_t i = 0; i < n; i++) {
        float r = test_rand_uniform(&seed, -1.0f, 1.0f);
        x[i] = i % 4 == 0   ? r * 12.0f                      /* the whole curve */
               : i % 4 == 1 ? 0.4f * (1.0f + r * 0.01f)      /* the switch */
               : i % 4 == 2 ? r * 1e-3f                      /* near 0 */
                            : ldexpf(r, (int)(i % 61) - 40); /* every scale */
    }
    x[0] = INFINITY, x[1] = -INFINITY, x[2] = NAN, x[3] = 0.0f, x[4] = -0.0f;
    for (int avx2 = 0; avx2 < 2; avx2++) {
        vexp_force_avx2(avx2);
        memcpy(y[avx2], x, (size_t)n * sizeof(float));
        vtanh_floats(y[avx2], y[avx2], n); /* in place */
    }
    vexp_force_avx2(false);
    ck_assert_msg(memcmp(y[0], y[1], (size_t)n * sizeof(float)) == 0, "AVX2 and AVX-512 differ");
    int64_t bad = -1;
    for (int64_t i = 0; i < n && bad < 0; i++) {
        double want = tanh((double)x[i]);
        if (isnan(want)) { /* ilogb(NaN) is INT_MIN */
            if (!isnan(y[0][i])) bad = i;
            continue;
        }
        double ulp = ldexp(1.0, ilogb(want == 0 ? 1e-38 : want) - 23);
        if (fabs(y[0][i] - want) > 3 * ulp) bad = i;
    }
    float in = bad >= 0 ? x[bad] : 0.0f, got = bad >= 0 ? y[0][bad] : 0.0f;
    free(x), free(y[0]), free(y[1]);
    ck_assert_msg(bad < 0, "tanh(%a) = %a, want %a", in, got, tanh((double)in));
}
END_TEST

Suite *tensor_vexp_suite(void) {
    Suite *s = suite_create("tensor_vexp");
    TCase *tc = tcase_create("vexp");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_vexp_floats_is_expf_over_a_spread_of_all_floats);
    tcase_add_test(tc, test_vexp_floats_is_expf_at_special_case_edges_and_in_place);
    tcase_add_test(tc, test_vexp_shifted_sum_is_within_an_ulp_and_sums_in_its_order);
    tcase_add_test(tc, test_vtanh_floats_is_within_3_ulp_and_the_same_on_every_path);
    tcase_add_test(tc, test_vexp_floats_single_is_within_2_ulp_and_the_same_on_every_path);
    tcase_add_test(tc, test_vexp_shifted_sum_single_is_within_2_ulp_and_sums_in_its_order);
    suite_add_tcase(s, tc);
    return s;
}
