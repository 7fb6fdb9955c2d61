/* tests/test_faults_e2e.c — the lorafit binary under I/O faults, a full disk, corrupted
 * checkpoints and a dataset changed behind its back. Every case starts from a copy of a
 * reference run's directory cut back to its checkpoint-2, so each costs one or two short runs,
 * and every recoverable case must end with an adapter byte-identical to the uninterrupted
 * reference (the same config and thread count). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/test_train_util.h"
#include "tests/test_util.h"

/* Config paths resolve to absolute ones, so every case runs in the reference's own
 * directory, restored from a pristine copy first. */
typedef struct Ref {
    char *dir;   /* where every run happens: config.yaml, rows.jsonl, out/ */
    char *saved; /* pristine/ (dir cut back to checkpoint-2), adapter.safetensors and the
                    reference's checkpoint-4/ */
} Ref;

static int sh(const char *fmt, const char *a, const char *b) {
    char cmd[9000];
    snprintf(cmd, sizeof cmd, fmt, a, b);
    return test_run(cmd, NULL);
}

/* A 6-step job with checkpoints every 2 steps; packing, shuffle and dropout all on, so the
 * resume has a cursor, a shuffle buffer and an RNG state to restore. */
static void ref_make(Ref *r) {
    r->dir = test_tmpdir();
    r->saved = test_tmpdir();
    char root[4096], rows[4200], cfg[8192];
    ck_assert(realpath(".", root) != NULL);
    snprintf(rows, sizeof rows, "%s/rows.jsonl", r->dir);
    tt_random_rows(rows, 40, 3, 30, 97, 5);
    snprintf(cfg, sizeof cfg,
             "model:\n  path: %s/tests/data/train/qwen2-untied/model\n"
             "lora:\n  r: 4\n  alpha: 8\n  dropout: 0.1\n"
             "data:\n  train: rows.jsonl\n  seq_len: 16\n  packing: true\n  shuffle: true\n"
             "  shuffle_buffer: 8\n"
             "train:\n  batch_size: 2\n  max_steps: 6\n  lr: 5.0e-3\n  seed: 7\n  threads: 1\n"
             "output:\n  dir: out\n  save_every: 2\n  keep: 5\n"
             "log:\n  every: 1\n",
             root);
    free(tt_write_text(r->dir, "config.yaml", cfg));
    char args[4400];
    snprintf(args, sizeof args, "train '%s/config.yaml'", r->dir);
    int rc = tt_lorafit(r->dir, args);
    char *log = tt_log(r->dir);
    ck_assert_msg(rc == 0, "reference run failed (%d):\n%s", rc, log);
    free(log);
    ck_assert_int_eq(sh("cp '%s/out/adapter/adapter_model.safetensors' '%s/adapter.safetensors'",
                        r->dir, r->saved),
                     0);
    ck_assert_int_eq(sh("cp -a '%s/out/checkpoint-4' '%s/'", r->dir, r->saved), 0);
    ck_assert_int_eq(sh("cd '%s/out' && rm -rf checkpoint-4 checkpoint-6 adapter%s", r->dir, ""),
                     0);
    ck_assert_int_eq(sh("cp -a '%s' '%s/pristine'", r->dir, r->saved), 0);
}

static void ref_free(Ref *r) {
    test_rmtree(r->dir);
    test_rmtree(r->saved);
    free(r->dir);
    free(r->saved);
}

/* Restores the run directory to its cut-back state; returns it. */
static const char *case_dir(const Ref *r) {
    test_rmtree(r->dir);
    ck_assert_int_eq(sh("cp -a '%s/pristine' '%s'", r->saved, r->dir), 0);
    return r->dir;
}

/* Runs `[ENV] lorafit train DIR/config.yaml --resume [EXTRA]` with a shell prefix (env
 * assignments, ulimit); output to DIR/log.txt; returns the exit code. */
static int resume(const char *dir, const char *prefix, const char *extra) {
    char cmd[9000], log[4200];
    snprintf(cmd, sizeof cmd, "cd '%s' && %s '%s' train config.yaml --resume %s", dir, prefix,
             test_lorafit_bin(), extra);
    snprintf(log, sizeof log, "%s/log.txt", dir);
    return test_run(cmd, log);
}

static void assert_same_adapter(const Ref *r, const char *dir) {
    char a[4200], b[4200];
    snprintf(a, sizeof a, "%s/out/adapter/adapter_model.safetensors", dir);
    snprintf(b, sizeof b, "%s/adapter.safetensors", r->saved);
    ck_assert_msg(tt_same_bytes(a, b), "%s: the resumed adapter is not byte-identical", dir);
}

/* ---- I/O faults in the lorafit process ---------------------------------------------- */

/* For op, fails its n-th call for a spread of n until a run gets through: each failing run
 * exits 1 naming the I/O error, and a plain --resume afterwards ends bit-identical. */
static int faults_until_clean_run(const Ref *r, const char *op) {
    static const int nth[] = {1, 2, 4, 7, 12, 20, 33, 55, 90, 150, 250, 400, 650, 1000, 1600, 2500};
    int failed = 0;
    for (size_t i = 0; i < sizeof nth / sizeof nth[0]; i++) {
        const char *d = case_dir(r);
        char prefix[64];
        snprintf(prefix, sizeof prefix, "LORAFIT_FAULT=%s:%d", op, nth[i]);
        int rc = resume(d, prefix, "");
        char *log = tt_log(d);
        if (rc == 0) {
            assert_same_adapter(r, d);
            free(log);
            return failed;
        }
        ck_assert_msg(rc == 1, "%s: exit %d, want 1:\n%s", prefix, rc, log);
        ck_assert_msg(strstr(log, "Input/output error") != NULL, "%s: no clear error:\n%s", prefix,
                      log);
        free(log);
        failed++;
        rc = resume(d, "", "");
        log = tt_log(d);
        ck_assert_msg(rc == 0, "resume after %s failed (%d):\n%s", prefix, rc, log);
        free(log);
        assert_same_adapter(r, d);
    }
    ck_abort_msg("%s: every sampled fault point failed the run", op);
    return failed;
}

START_TEST(test_lorafit_io_faults_then_resume_is_bit_identical) {
    Ref r;
    ref_make(&r);
    ck_assert_int_ge(faults_until_clean_run(&r, "write"), 3);
    ck_assert_int_ge(faults_until_clean_run(&r, "fsync"), 3);
    ck_assert_int_ge(faults_until_clean_run(&r, "rename"), 3);
    ref_free(&r);
}
END_TEST

START_TEST(test_full_disk_during_checkpoint_then_resume_is_bit_identical) {
    Ref r;
    ref_make(&r);
    const char *d = case_dir(&r);
    /* RLIMIT_FSIZE of 8 KB (dash counts 512-byte blocks; bash 1 KB: 16 KB) lets the config
     * and metrics through and stops the 19 KB adapter of checkpoint-4; with SIGXFSZ ignored
     * the write returns EFBIG as on a full disk. */
    int rc = resume(d, "trap '' XFSZ; ulimit -f 16;", "");
    char *log = tt_log(d);
    ck_assert_msg(rc == 1, "exit %d, want 1:\n%s", rc, log);
    ck_assert_msg(strstr(log, "File too large") != NULL, "no clear error:\n%s", log);
    free(log);
    char path[4300];
    snprintf(path, sizeof path, "%s/out/checkpoint-4", d);
    ck_assert_msg(access(path, F_OK) != 0, "a partial checkpoint-4 is visible");
    rc = resume(d, "", "");
    log = tt_log(d);
    ck_assert_msg(rc == 0, "resume after the full disk failed (%d):\n%s", rc, log);
    free(log);
    assert_same_adapter(&r, d);
    ref_free(&r);
}
END_TEST

/* ---- corrupted checkpoints ------------------------------------------------------------ */

/* checkpoint-4 of the reference, damaged by `damage` (a shell command run in it): --resume
 * must name it, fall back to checkpoint-2 and still end bit-identical; --resume naming it
 * must refuse it. */
static void corrupt_and_resume(const Ref *r, const char *damage, const char *want_reason) {
    const char *d = case_dir(r);
    char ck[4300];
    snprintf(ck, sizeof ck, "%s/out/checkpoint-4", d);
    ck_assert_int_eq(sh("cp -a '%s/checkpoint-4' '%s'", r->saved, ck), 0);
    ck_assert_int_eq(sh("cd '%s' && %s", ck, damage), 0);

    int rc = resume(d, "", ck);
    char *log = tt_log(d);
    ck_assert_msg(rc != 0, "resumed from a damaged checkpoint (%s):\n%s", damage, log);
    ck_assert_msg(strstr(log, "checkpoint-4") && strstr(log, want_reason),
                  "%s: the refusal does not say '%s':\n%s", damage, want_reason, log);
    free(log);

    rc = resume(d, "", "");
    log = tt_log(d);
    ck_assert_msg(rc == 0, "%s: resume failed (%d):\n%s", damage, rc, log);
    ck_assert_msg(strstr(log, "warning") && strstr(log, "checkpoint-4") && strstr(log, want_reason),
                  "%s: the skipped checkpoint is not reported:\n%s", damage, log);
    ck_assert_msg(strstr(log, "checkpoint-2 (step 2)") != NULL, "%s: did not fall back:\n%s",
                  damage, log);
    free(log);
    assert_same_adapter(r, d);
}

START_TEST(test_corrupt_checkpoint_detected_and_resume_falls_back) {
    Ref r;
    ref_make(&r);
    /* one flipped byte inside the tensor data */
    corrupt_and_resume(&r,
                       "printf '\\377' | dd of=adapter_model.safetensors bs=1 seek=4000 "
                       "conv=notrunc 2>/dev/null",
                       "CRC");
    corrupt_and_resume(&r, "truncate -s 1000 trainer_state.safetensors", "size");
    corrupt_and_resume(&r, "rm MANIFEST", "MANIFEST");
    ref_free(&r);
}
END_TEST

/* ---- the dataset changed between checkpoint and resume ------------------------------- */

static void change_data_and_resume(const Ref *r, const char *change) {
    const char *d = case_dir(r);
    ck_assert_int_eq(sh("cd '%s' && %s", d, change), 0);
    int rc = resume(d, "", "");
    char *log = tt_log(d);
    ck_assert_msg(rc != 0, "trained on a changed dataset (%s):\n%s", change, log);
    ck_assert_msg(strstr(log, "rows.jsonl") && strstr(log, "changed"),
                  "%s: the error does not name the changed file:\n%s", change, log);
    free(log);
    char path[4300];
    snprintf(path, sizeof path, "%s/out/checkpoint-4", d);
    ck_assert_msg(access(path, F_OK) != 0, "%s: trained past the checkpoint", change);
}

START_TEST(test_dataset_changed_since_checkpoint_is_refused) {
    Ref r;
    ref_make(&r);
    change_data_and_resume(&r, "head -n 30 rows.jsonl > x && mv x rows.jsonl"); /* shortened */
    /* same size, one digit changed in the middle */
    change_data_and_resume(&r, "sed -i '20s/\\([0-9]\\)\\]/\\1]/; 20s/ 1/ 2/' rows.jsonl");
    change_data_and_resume(&r, "echo '{\"input_ids\": [1, 2]}' >> rows.jsonl"); /* grown */
    ref_free(&r);
}
END_TEST

Suite *faults_e2e_suite(void) {
    Suite *s = suite_create("faults_e2e");
    TCase *tc = tcase_create("lorafit");
    tcase_add_test(tc, test_lorafit_io_faults_then_resume_is_bit_identical);
    tcase_add_test(tc, test_full_disk_during_checkpoint_then_resume_is_bit_identical);
    tcase_add_test(tc, test_corrupt_checkpoint_detected_and_resume_falls_back);
    tcase_add_test(tc, test_dataset_changed_since_checkpoint_is_refused);
    suite_add_tcase(s, tc);
    return s;
}
