/* tests/main.c — runs every suite the Makefile found in the tests directory (see suites.h). */
#include "tests/test_util.h"

#include <stdlib.h>

#define SUITE(name) Suite *name(void);
#include "suites.h"
#undef SUITE

int main(void) {
    /* Long tests (end-to-end training) need more than Check's 4 s default; sanitizer
     * builds multiply it. Set before any TCase is created, since tcase_create reads it. */
    setenv("CK_DEFAULT_TIMEOUT", "600", 0);
    SRunner *sr = srunner_create(NULL);
#define SUITE(name) srunner_add_suite(sr, name());
#include "suites.h"
#undef SUITE
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
