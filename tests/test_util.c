/* tests/test_util.c — see test_util.h. */
#include "tests/test_util.h"

#include "tensor/rng.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

const char *test_shared_dir(void) {
    static char path[4096];
    const char *env = getenv("LORAFIT_SHARED");
    if (env && *env) {
        snprintf(path, sizeof path, "%s", env);
    } else {
        const char *root = getenv("LORAFIT_ROOT");
        snprintf(path, sizeof path, "%s/../shared", root && *root ? root : ".");
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) return NULL;
    return path;
}

int test_in_ci(void) {
    const char *ci = getenv("CI");
    return ci && *ci && strcmp(ci, "0") != 0 && strcmp(ci, "false") != 0;
}

void test_skip(const char *name, const char *why) {
    size_t n = strlen(name); /* Check's START_TEST(x) defines the function x_fn */
    if (n > 3 && strcmp(name + n - 3, "_fn") == 0) n -= 3;
    const char *log = getenv(TEST_SKIP_LOG_ENV);
    FILE *f = log ? fopen(log, "a") : NULL;
    if (f) {
        fprintf(f, "%.*s: %s\n", (int)n, name,
                why); /* one short line: an O_APPEND write is atomic */
        fclose(f);
    } else {
        fprintf(stderr, "skipped: %.*s: %s\n", (int)n, name, why);
    }
}

char *test_tmpdir(void) {
    const char *base = getenv("TMPDIR");
    char tmpl[4096];
    snprintf(tmpl, sizeof tmpl, "%s/lorafit-test-XXXXXX", base && *base ? base : "/tmp");
    char *dir = mkdtemp(tmpl);
    ck_assert_msg(dir != NULL, "mkdtemp failed");
    return strdup(dir);
}

void test_rmtree(const char *path) {
    if (!path || !*path || strcmp(path, "/") == 0) return;
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", path);
}

void test_write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot create %s", path);
    ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

char *test_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) buf = realloc(buf, (cap *= 2) + 1);
    }
    fclose(f);
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

const char *test_lorafit_bin(void) {
    const char *b = getenv("LORAFIT_BIN");
    return b && *b ? b : "./lorafit";
}

const char *test_tools_dir(void) {
    const char *t = getenv("LORAFIT_TOOLS");
    return t && *t ? t : "build/tools";
}

int test_run(const char *cmd, const char *out_path) {
    char full[16384];
    if (out_path)
        snprintf(full, sizeof full, "%s >'%s' 2>&1", cmd, out_path);
    else
        snprintf(full, sizeof full, "%s", cmd);
    int st = system(full);
    if (st == -1 || !WIFEXITED(st)) return -1;
    return WEXITSTATUS(st);
}

uint64_t test_rand_u64(uint64_t *state) {
    return rng_splitmix64(state);
}

float test_rand_uniform(uint64_t *state, float lo, float hi) {
    double u = (double)(test_rand_u64(state) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(lo + (hi - lo) * u);
}
