/* tests/test_util.h — helpers shared by the test suites.
 *
 * Each tests/test_NAME.c defines one or more `Suite *name_suite(void)` (non-static, at the start
 * of a line); the Makefile collects them into the runner in tests/main.c. */
#ifndef LORAFIT_TEST_UTIL_H
#define LORAFIT_TEST_UTIL_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>

/* The shared reference directory ($LORAFIT_SHARED, default ../shared from the repo root),
 * or NULL when it is missing. A test that needs it calls TEST_NEED_SHARED(): when the
 * directory is missing the test fails under CI (CI set) and is reported skipped otherwise. */
const char *test_shared_dir(void);
#define TEST_NEED_SHARED(dir)                                                                      \
    const char *dir = test_shared_dir();                                                           \
    if (!dir) {                                                                                    \
        if (test_in_ci())                                                                          \
            ck_abort_msg("%s: the LORAFIT_SHARED directory is missing (needed in CI)", __func__);  \
        test_skip(__func__, "the LORAFIT_SHARED directory is missing");                            \
        return;                                                                                    \
    }
int test_in_ci(void);
/* Records that the test `name` is skipped and why. The runner (tests/main.c) lists every
 * skip by name at the end and counts skips apart from passes; the test then returns. A test
 * that must not be skipped under CI checks test_in_ci() first and fails instead. */
void test_skip(const char *name, const char *why);
/* The environment variable through which tests/main.c collects the skips of the forked
 * test processes: the path of a file each skip appends one line to. */
#define TEST_SKIP_LOG_ENV "LORAFIT_TEST_SKIP_LOG"

/* A fresh empty directory under $TMPDIR for this test; removed by test_rmtree. The runner
 * points TMPDIR at a directory of its own and removes it at the end, pass or fail. */
char *test_tmpdir(void);
void test_rmtree(const char *path);
/* Writes `len` bytes to path (creating parents is the caller's job). */
void test_write_file(const char *path, const void *data, size_t len);
/* Reads a whole file; *len gets its size. The caller frees. NULL if unreadable. */
char *test_read_file(const char *path, size_t *len);
/* Paths of the build under test: the lorafit binary and the tools directory. */
const char *test_lorafit_bin(void);
const char *test_tools_dir(void);
/* Runs a shell command; returns its exit status (or -1). Output goes to out_path if given. */
int test_run(const char *cmd, const char *out_path);

/* Deterministic pseudo-random numbers for tests (splitmix64). */
uint64_t test_rand_u64(uint64_t *state);
float test_rand_uniform(uint64_t *state, float lo, float hi);

#endif
