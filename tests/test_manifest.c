/* tests/test_manifest.c — checkpoint MANIFEST: complete dirs verify, every damage is caught. */
#include "trainer/store/store.h"
#include "tests/test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const FILES[2] = {"adapter_model.safetensors", "trainer_state.safetensors"};

/* A checkpoint directory under root with two files and a MANIFEST; returns its path. */
static char *make_checkpoint(const char *root, int step) {
    char *dir = malloc(4200), path[4300], err[512];
    snprintf(dir, 4200, "%s/checkpoint-%d", root, step);
    ck_assert_int_eq(fsio_mkdirs(dir, err, sizeof err), 0);
    uint64_t seed = (uint64_t)step;
    unsigned char buf[3000];
    for (int f = 0; f < 2; f++) {
        for (size_t i = 0; i < sizeof buf; i++) buf[i] = (unsigned char)test_rand_u64(&seed);
        snprintf(path, sizeof path, "%s/%s", dir, FILES[f]);
        test_write_file(path, buf, sizeof buf - (size_t)f * 1000);
    }
    ck_assert_msg(manifest_write(dir, FILES, 2, err, sizeof err) == 0, "%s", err);
    return dir;
}

static void expect_failure(const char *dir, const char *needle) {
    char err[1024] = "";
    ck_assert_int_eq(manifest_verify(dir, err, sizeof err), -1);
    ck_assert_msg(strstr(err, needle) != NULL, "expected '%s' in: %s", needle, err);
}

START_TEST(test_good_checkpoint_verifies) {
    char *root = test_tmpdir(), err[512], path[4300];
    char *dir = make_checkpoint(root, 200);
    ck_assert_msg(manifest_verify(dir, err, sizeof err) == 0, "%s", err);
    snprintf(path, sizeof path, "%s/MANIFEST", dir);
    char *text = test_read_file(path, NULL);
    ck_assert_msg(strncmp(text, "lorafit-manifest 1\n3000 ", 24) == 0, "%s", text);
    ck_assert_ptr_nonnull(strstr(text, " adapter_model.safetensors\n2000 "));
    free(text);
    free(dir);
    test_rmtree(root);
    free(root);
}
END_TEST

START_TEST(test_flipped_byte_is_a_crc_mismatch) {
    char *root = test_tmpdir(), path[4300];
    char *dir = make_checkpoint(root, 200);
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    size_t len;
    char *data = test_read_file(path, &len);
    data[1234] ^= 0x10;
    test_write_file(path, data, len);
    free(data);
    expect_failure(dir, "checkpoint-200/adapter_model.safetensors: CRC mismatch (expected ");
    expect_failure(dir, "the checkpoint is corrupt");
    free(dir);
    test_rmtree(root);
    free(root);
}
END_TEST

START_TEST(test_truncated_and_missing_files_are_detected) {
    char *root = test_tmpdir(), path[4300];
    char *dir = make_checkpoint(root, 7);
    snprintf(path, sizeof path, "%s/trainer_state.safetensors", dir);
    ck_assert_int_eq(truncate(path, 1500), 0);
    expect_failure(dir, "trainer_state.safetensors: size mismatch (expected 2000 bytes, got 1500)");
    ck_assert_int_eq(unlink(path), 0);
    expect_failure(dir, "trainer_state.safetensors: listed in MANIFEST but missing");
    snprintf(path, sizeof path, "%s/MANIFEST", dir);
    ck_assert_int_eq(unlink(path), 0);
    expect_failure(dir, "no MANIFEST; the checkpoint is incomplete");
    free(dir);
    test_rmtree(root);
    free(root);
}
END_TEST

START_TEST(test_malformed_manifest_lines_are_rejected) {
    char *root = test_tmpdir(), path[4300];
    char *dir = make_checkpoint(root, 3);
    snprintf(path, sizeof path, "%s/MANIFEST", dir);
    char *good = test_read_file(path, NULL);
    const char *first_entry = strchr(good, '\n') + 1;
    char line[512];
    snprintf(line, sizeof line, "%.*s", (int)(strchr(first_entry, '\n') - first_entry + 1),
             first_entry);
    struct {
        const char *text;
        const char *needle;
    } cases[] = {
        {"", "empty or does not end with a newline"},
        {"lorafit-manifest 2\n", "expected the header"},
        {"lorafit-manifest 1\n", "lists no files"},
        {"lorafit-manifest 1\n12 zzzzzzzz adapter_model.safetensors\n", "MANIFEST:2: malformed"},
        {"lorafit-manifest 1\n-1 00000000 adapter_model.safetensors\n", "MANIFEST:2: malformed"},
        {"lorafit-manifest 1\n99999999999999999999999 00000000 a\n", "MANIFEST:2: malformed"},
        {"lorafit-manifest 1\n12 0000000 adapter_model.safetensors\n", "MANIFEST:2: malformed"},
        {"lorafit-manifest 1\n12 00000000\n", "MANIFEST:2: malformed"},
        {"lorafit-manifest 1\n12 00000000 ../../etc/passwd\n", "MANIFEST:2: malformed"},
        {"lorafit-manifest 1\n12 00000000 ..\n", "MANIFEST:2: malformed"},
        {"lorafit-manifest 1\n12 00000000 MANIFEST\n", "lists itself"},
        {"lorafit-manifest 1\n12 00000000 a", "does not end with a newline"},
        {"lorafit-manifest 1\n\n", "MANIFEST:2: malformed"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        test_write_file(path, cases[i].text, strlen(cases[i].text));
        expect_failure(dir, cases[i].needle);
    }
    /* A line listed twice. */
    char twice[2048];
    snprintf(twice, sizeof twice, "lorafit-manifest 1\n%s%s", line, line);
    test_write_file(path, twice, strlen(twice));
    expect_failure(dir, "twice");
    /* A NUL byte inside. */
    test_write_file(path, "lorafit-manifest 1\n1\0 x\n", 24);
    expect_failure(dir, "NUL");
    /* Restoring the original makes it verify again: the checks above were not vacuous. */
    char err[512];
    test_write_file(path, good, strlen(good));
    ck_assert_msg(manifest_verify(dir, err, sizeof err) == 0, "%s", err);
    free(good);
    free(dir);
    test_rmtree(root);
    free(root);
}
END_TEST

START_TEST(test_checkpoints_listed_by_numeric_step_ignoring_junk) {
    char *root = test_tmpdir(), path[4300], err[512];
    int64_t *steps;
    int n;
    ck_assert_int_eq(manifest_list_checkpoints(root, &steps, &n, err, sizeof err), 0);
    ck_assert_int_eq(n, 0);
    const char *dirs[] = {"checkpoint-200",          "checkpoint-1000", "checkpoint-30",
                          "checkpoint-200.tmp-99-1", "checkpoint-",     "checkpoint-0100",
                          "checkpoint-12a",          "adapter",         "checkpoint-0"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", root, dirs[i]);
        ck_assert_int_eq(mkdir(path, 0755), 0);
    }
    snprintf(path, sizeof path, "%s/checkpoint-5", root); /* a file, not a directory */
    test_write_file(path, "x", 1);
    ck_assert_int_eq(manifest_list_checkpoints(root, &steps, &n, err, sizeof err), 0);
    ck_assert_int_eq(n, 4);
    ck_assert_int_eq(steps[0], 0);
    ck_assert_int_eq(steps[1], 30);
    ck_assert_int_eq(steps[2], 200);
    ck_assert_int_eq(steps[3], 1000);
    free(steps);
    snprintf(path, sizeof path, "%s/missing", root);
    ck_assert_int_eq(manifest_list_checkpoints(path, &steps, &n, err, sizeof err), 0);
    ck_assert_int_eq(n, 0);
    test_rmtree(root);
    free(root);
}
END_TEST

START_TEST(test_latest_complete_skips_damaged_newer_checkpoint) {
    char *root = test_tmpdir(), path[4300], out[4300], skipped[2048], err[512];
    int64_t step = -1;
    ck_assert_int_eq(manifest_latest_complete(root, out, sizeof out, &step, skipped, sizeof skipped,
                                              err, sizeof err),
                     0);
    free(make_checkpoint(root, 100));
    char *newer = make_checkpoint(root, 200);
    ck_assert_int_eq(manifest_latest_complete(root, out, sizeof out, &step, skipped, sizeof skipped,
                                              err, sizeof err),
                     1);
    ck_assert_int_eq(step, 200);
    ck_assert_str_eq(skipped, "");
    snprintf(path, sizeof path, "%s/MANIFEST", newer);
    ck_assert_int_eq(unlink(path), 0);
    ck_assert_int_eq(manifest_latest_complete(root, out, sizeof out, &step, skipped, sizeof skipped,
                                              err, sizeof err),
                     1);
    ck_assert_int_eq(step, 100);
    snprintf(path, sizeof path, "%s/checkpoint-100", root);
    ck_assert_str_eq(out, path);
    ck_assert_msg(strstr(skipped, "checkpoint-200") && strstr(skipped, "incomplete"), "%s",
                  skipped);
    free(newer);
    test_rmtree(root);
    free(root);
}
END_TEST

Suite *manifest_suite(void) {
    Suite *s = suite_create("manifest");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_good_checkpoint_verifies);
    tcase_add_test(tc, test_flipped_byte_is_a_crc_mismatch);
    tcase_add_test(tc, test_truncated_and_missing_files_are_detected);
    tcase_add_test(tc, test_malformed_manifest_lines_are_rejected);
    tcase_add_test(tc, test_checkpoints_listed_by_numeric_step_ignoring_junk);
    tcase_add_test(tc, test_latest_complete_skips_damaged_newer_checkpoint);
    suite_add_tcase(s, tc);
    return s;
}
