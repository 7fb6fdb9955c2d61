/* tests/test_fsio.c — crash-safe writes: round trip, CRC, injected faults, directory helpers. */
#include "trainer/store/store.h"
#include "tests/test_util.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* Number of entries in dir whose name contains ".tmp-". */
static int count_temporaries(const char *dir) {
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) n += strstr(e->d_name, ".tmp-") != NULL;
    closedir(d);
    return n;
}

static int path_exists(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0;
}

START_TEST(test_write_file_round_trip) {
    char *dir = test_tmpdir(), path[4200], err[512];
    snprintf(path, sizeof path, "%s/out.bin", dir);
    const char content[] = "hello, checkpoint\n\0binary\xff";
    ck_assert_int_eq(fsio_write_file(path, content, sizeof content, err, sizeof err), 0);
    size_t len;
    char *got = test_read_file(path, &len);
    ck_assert_ptr_nonnull(got);
    ck_assert_uint_eq(len, sizeof content);
    ck_assert_int_eq(memcmp(got, content, len), 0);
    free(got);
    /* Overwrite replaces the content completely. */
    ck_assert_int_eq(fsio_write_file(path, "x", 1, err, sizeof err), 0);
    got = test_read_file(path, &len);
    ck_assert_uint_eq(len, 1);
    ck_assert_int_eq(got[0], 'x');
    free(got);
    ck_assert_int_eq(count_temporaries(dir), 0);
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_crc_and_size_match_zlib_over_pieces) {
    char *dir = test_tmpdir(), path[4200], err[512];
    snprintf(path, sizeof path, "%s/pieces.bin", dir);
    uint64_t seed = 5;
    unsigned char buf[10000];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (unsigned char)test_rand_u64(&seed);
    FsioFile *f = fsio_create(path, err, sizeof err);
    ck_assert_msg(f != NULL, "%s", err);
    /* Uneven pieces, including an empty one. */
    size_t cuts[] = {0, 1, 1, 777, 4096, 10000};
    for (int i = 0; i + 1 < 6; i++)
        ck_assert_int_eq(fsio_write(f, buf + cuts[i], cuts[i + 1] - cuts[i], err, sizeof err), 0);
    uint32_t want = (uint32_t)crc32(crc32(0L, Z_NULL, 0), buf, sizeof buf);
    ck_assert_uint_eq(fsio_crc32(f), want);
    ck_assert_uint_eq(fsio_size(f), sizeof buf);
    /* Not visible under the final name before commit. */
    ck_assert(!path_exists(path));
    ck_assert_int_eq(fsio_commit(f, err, sizeof err), 0);
    size_t len;
    char *got = test_read_file(path, &len);
    ck_assert_uint_eq(len, sizeof buf);
    ck_assert_uint_eq((uint32_t)crc32(crc32(0L, Z_NULL, 0), (unsigned char *)got, len), want);
    free(got);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* For each op kind and each of its first few calls: the final path holds either the old
 * content or the complete new one, never a torn file, and no temporary is left behind. */
START_TEST(test_injected_fault_keeps_old_file_and_no_temporary) {
    char *dir = test_tmpdir(), path[4200], err[512];
    snprintf(path, sizeof path, "%s/state.bin", dir);
    const char old[] = "old complete content";
    const char fresh[] = "the new content, somewhat longer than the old one";
    for (int op = 0; op < FSIO_OP_COUNT; op++) {
        for (long nth = 1; nth <= 2; nth++) {
            test_write_file(path, old, sizeof old);
            fsio_inject_fault((FsioOp)op, nth);
            err[0] = '\0';
            int rc = fsio_write_file(path, fresh, sizeof fresh, err, sizeof err);
            fsio_inject_fault((FsioOp)op, 0);
            size_t len;
            char *got = test_read_file(path, &len);
            ck_assert_ptr_nonnull(got);
            int is_old = len == sizeof old && memcmp(got, old, len) == 0;
            int is_new = len == sizeof fresh && memcmp(got, fresh, len) == 0;
            ck_assert_msg(is_old || is_new, "op %d call %ld left a torn file", op, nth);
            free(got);
            ck_assert_int_eq(count_temporaries(dir), 0);
            /* One write, two fsyncs (file then directory) and one rename per file:
             * the first call of each kind must fail, and the failure before the rename
             * must leave the old file. */
            if (nth == 1) {
                ck_assert_int_eq(rc, -1);
                ck_assert_msg(strstr(err, "Input/output error") != NULL, "err: %s", err);
                ck_assert_msg(strstr(err, dir) != NULL, "error must name the path: %s", err);
                ck_assert(is_old);
            }
            if (op == FSIO_OP_FSYNC && nth == 2) { /* the directory sync, after the rename */
                ck_assert_int_eq(rc, -1);
                ck_assert(is_new);
            }
        }
    }
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_missing_directory_gives_clear_error) {
    char *dir = test_tmpdir(), path[4200], err[512] = "";
    snprintf(path, sizeof path, "%s/no/such/dir/file.bin", dir);
    ck_assert_int_eq(fsio_write_file(path, "x", 1, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "no/such/dir") != NULL, "err: %s", err);
    ck_assert_msg(strstr(err, "No such file or directory") != NULL, "err: %s", err);
    ck_assert_ptr_null(fsio_create("", err, sizeof err));
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_abort_removes_temporary_and_keeps_old) {
    char *dir = test_tmpdir(), path[4200], err[512];
    snprintf(path, sizeof path, "%s/a.txt", dir);
    test_write_file(path, "old", 3);
    FsioFile *f = fsio_create(path, err, sizeof err);
    ck_assert_int_eq(fsio_write(f, "new!", 4, err, sizeof err), 0);
    ck_assert_int_eq(count_temporaries(dir), 1);
    fsio_abort(f);
    ck_assert_int_eq(count_temporaries(dir), 0);
    size_t len;
    char *got = test_read_file(path, &len);
    ck_assert_uint_eq(len, 3);
    free(got);
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_mkdirs_rename_dir_and_remove_tree) {
    char *dir = test_tmpdir(), a[4200], b[4200], c[4200], err[512];
    snprintf(a, sizeof a, "%s/x/y/z/", dir);
    ck_assert_int_eq(fsio_mkdirs(a, err, sizeof err), 0);
    ck_assert_int_eq(fsio_mkdirs(a, err, sizeof err), 0); /* idempotent */
    snprintf(b, sizeof b, "%s/x/y/z/f.bin", dir);
    ck_assert_int_eq(fsio_write_file(b, "data", 4, err, sizeof err), 0);
    /* A file in the way is an error naming it. */
    snprintf(c, sizeof c, "%s/x/y/z/f.bin/sub", dir);
    ck_assert_int_eq(fsio_mkdirs(c, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "f.bin") != NULL, "err: %s", err);

    snprintf(a, sizeof a, "%s/x", dir);
    snprintf(b, sizeof b, "%s/moved", dir);
    ck_assert_int_eq(fsio_rename_dir(a, b, err, sizeof err), 0);
    ck_assert(!path_exists(a));
    snprintf(c, sizeof c, "%s/moved/y/z/f.bin", dir);
    ck_assert(path_exists(c));
    ck_assert_int_eq(fsio_rename_dir(a, b, err, sizeof err), -1);
    ck_assert_msg(strstr(err, a) != NULL, "err: %s", err);

    /* A symlink inside the tree pointing outside: the link goes, the target stays. */
    char outside[4200], outfile[4200], link[4200];
    snprintf(outside, sizeof outside, "%s/outside", dir);
    ck_assert_int_eq(fsio_mkdirs(outside, err, sizeof err), 0);
    snprintf(outfile, sizeof outfile, "%s/outside/keep.txt", dir);
    test_write_file(outfile, "keep", 4);
    snprintf(link, sizeof link, "%s/moved/y/link", dir);
    ck_assert_int_eq(symlink(outside, link), 0);
    ck_assert_int_eq(fsio_remove_tree(b, err, sizeof err), 0);
    ck_assert(!path_exists(b));
    ck_assert(path_exists(outfile));
    /* Removing what is already gone succeeds. */
    ck_assert_int_eq(fsio_remove_tree(b, err, sizeof err), 0);
    test_rmtree(dir);
    free(dir);
}
END_TEST

Suite *fsio_suite(void) {
    Suite *s = suite_create("fsio");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_write_file_round_trip);
    tcase_add_test(tc, test_crc_and_size_match_zlib_over_pieces);
    tcase_add_test(tc, test_injected_fault_keeps_old_file_and_no_temporary);
    tcase_add_test(tc, test_missing_directory_gives_clear_error);
    tcase_add_test(tc, test_abort_removes_temporary_and_keeps_old);
    tcase_add_test(tc, test_mkdirs_rename_dir_and_remove_tree);
    suite_add_tcase(s, tc);
    return s;
}
