/* tests/main.c — runs every suite the Makefile found in the tests directory (see suites.h).
 *
 * The closing line is "tests: N passed, N failed, N skipped": skipped tests (see
 * test_skip) are listed by name with their reason and are not counted as passes. Every test
 * runs with TMPDIR pointing at one directory of this run, removed at the end whatever the
 * outcome, so a failing test leaves nothing behind in /tmp. */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tensor/tensor.h"
#include "tests/test_util.h"

#define SUITE(name) Suite *name(void);
#include "suites.h"
#undef SUITE

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
    (void)st;
    (void)ftw;
    return type == FTW_DP ? rmdir(path) : unlink(path);
}

/* Prints each skip ("  skipped: test_name: reason") and returns how many there were. */
static int report_skips(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    int n = 0;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        printf("skipped: %s", line);
        n++;
    }
    fclose(f);
    return n;
}

static void report_failures(SRunner *sr) {
    int n = srunner_ntests_failed(sr);
    TestResult **failures = srunner_failures(sr);
    for (int i = 0; i < n; i++)
        printf("FAILED: %s:%d: %s: %s\n", tr_lfile(failures[i]), tr_lno(failures[i]),
               tr_tcname(failures[i]), tr_msg(failures[i]));
    free(failures);
}

int main(int argc, char **argv) {
    (void)argc;
    tensor_blas_use_cpu_kernels(argv); /* the products in-process run at the CPU's speed */
    /* Long tests (end-to-end training) need more than Check's 4 s default; sanitizer
     * builds multiply it. Set before any TCase is created, since tcase_create reads it. */
    setenv("CK_DEFAULT_TIMEOUT", "600", 0);
    const char *base = getenv("TMPDIR");
    char run_dir[4096], skip_log[4200];
    snprintf(run_dir, sizeof run_dir, "%s/lorafit-tests-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(run_dir)) {
        perror("tests: cannot create a temporary directory");
        return EXIT_FAILURE;
    }
    snprintf(skip_log, sizeof skip_log, "%s/skips.txt", run_dir);
    setenv("TMPDIR", run_dir, 1);
    setenv(TEST_SKIP_LOG_ENV, skip_log, 1);

    SRunner *sr = srunner_create(NULL);
#define SUITE(name) srunner_add_suite(sr, name());
#include "suites.h"
#undef SUITE
    srunner_run_all(sr, CK_SILENT);
    int run = srunner_ntests_run(sr), failed = srunner_ntests_failed(sr);
    report_failures(sr);
    int skipped = report_skips(skip_log);
    srunner_free(sr);
    nftw(run_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    printf("tests: %d passed, %d failed, %d skipped\n", run - failed - skipped, failed, skipped);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
