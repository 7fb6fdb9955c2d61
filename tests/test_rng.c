/* tests/test_rng.c — the seeded generator behind shuffling, init and dropout. */
#include "tensor/rng.h"
#include "tests/test_util.h"

START_TEST(test_xoshiro_matches_reference_sequence) {
    /* Reference values: xoshiro256** from the state {1, 2, 3, 4} (prng.di.unimi.it code). */
    Rng r = {{1, 2, 3, 4}};
    const uint64_t expect[4] = {11520ull, 0ull, 1509978240ull, 1215971899390074240ull};
    for (int i = 0; i < 4; i++) ck_assert_uint_eq(rng_next(&r), expect[i]);
}
END_TEST

START_TEST(test_same_seed_same_stream_and_streams_differ) {
    Rng a, b, c;
    rng_seed(&a, 42, 0);
    rng_seed(&b, 42, 0);
    rng_seed(&c, 42, 1);
    int same_c = 0;
    for (int i = 0; i < 100; i++) {
        uint64_t x = rng_next(&a);
        ck_assert_uint_eq(x, rng_next(&b));
        same_c += x == rng_next(&c);
    }
    ck_assert_int_lt(same_c, 2);
}
END_TEST

START_TEST(test_below_stays_in_range_and_covers_it) {
    Rng r;
    rng_seed(&r, 7, 0);
    int seen[10] = {0};
    for (int i = 0; i < 10000; i++) {
        uint64_t x = rng_below(&r, 10);
        ck_assert_uint_lt(x, 10);
        seen[x]++;
    }
    for (int i = 0; i < 10; i++) ck_assert_int_gt(seen[i], 850);
    for (int i = 0; i < 1000; i++) {
        double u = rng_uniform(&r);
        ck_assert(u >= 0.0 && u < 1.0);
    }
}
END_TEST

Suite *rng_suite(void) {
    Suite *s = suite_create("rng");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_xoshiro_matches_reference_sequence);
    tcase_add_test(tc, test_same_seed_same_stream_and_streams_differ);
    tcase_add_test(tc, test_below_stays_in_range_and_covers_it);
    suite_add_tcase(s, tc);
    return s;
}
