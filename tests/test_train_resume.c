/* tests/test_train_resume.c — checkpoints a user can trust: a run killed at any instant and
 * resumed ends bit-identical to an uninterrupted one; SIGINT saves and exits 130; resuming
 * with a config that would change the result is refused with the keys named. */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/test_train_util.h"
#include "tests/test_util.h"
#include "trainer/store/store.h"

/* A small but complete job: packing, shuffling, LoRA dropout, accumulation, warmup + cosine,
 * checkpoints every 2 steps, metrics every 3 — everything a resume must restore. */
static char *write_resume_config(const char *dir, int max_steps, int save_every) {
    char rows[4200], cfg[8192], root[4096];
    ck_assert(realpath(".", root) != NULL);
    snprintf(rows, sizeof rows, "%s/rows.jsonl", dir);
    if (access(rows, F_OK) != 0) tt_random_rows(rows, 50, 3, 40, 97, 5);
    snprintf(cfg, sizeof cfg,
             "model:\n  path: %s/tests/data/train/qwen2-untied/model\n"
             "lora:\n  r: 4\n  alpha: 8\n  dropout: 0.1\n"
             "data:\n  train: rows.jsonl\n  seq_len: 32\n  packing: true\n  overflow: split\n"
             "  shuffle: true\n  shuffle_buffer: 16\n"
             "train:\n  batch_size: 2\n  grad_accum: 2\n  max_steps: %d\n  lr: 5.0e-3\n"
             "  warmup_steps: 2\n  lr_scheduler: cosine\n  weight_decay: 0.01\n  seed: 7\n"
             "output:\n  dir: out\n  save_every: %d\n  keep: 2\n"
             "log:\n  every: 3\n",
             root, max_steps, save_every);
    return tt_write_text(dir, "config.yaml", cfg);
}

/* The newest checkpoint-N directory in out (-1 when there is none), read straight from the
 * directory: a checkpoint is renamed into place only once complete, so this is the one a
 * resume must pick, found without the code under test. */
static int64_t newest_checkpoint_dir(const char *out) {
    DIR *d = opendir(out);
    int64_t best = -1;
    if (!d) return best;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        char *end;
        if (strncmp(e->d_name, "checkpoint-", 11) != 0) continue;
        long long n = strtoll(e->d_name + 11, &end, 10);
        if (end != e->d_name + 11 && *end == '\0' && n > best) best = n;
    }
    closedir(d);
    return best;
}

/* Kills the job at fault point kind:1, kind:2, ... until a run no longer reaches the point.
 * After each kill, the same command line resumes: it must name the newest complete
 * checkpoint (or start from scratch when there is none) and end byte-identical to ref.
 * Returns how many points were walked. */
static int walk_kill_points(const char *ref, const char *cut, const char *cfg, const char *kind) {
    const char *argv[] = {"train", cfg, "--resume", NULL};
    char out[4200], log_path[4200], fault[64], what[128];
    snprintf(out, sizeof out, "%s/out", cut);
    snprintf(log_path, sizeof log_path, "%s/log.txt", cut);
    for (int k = 1; k < 1000; k++) {
        test_rmtree(out);
        unlink(log_path);
        snprintf(fault, sizeof fault, "kill:%s:%d", kind, k);
        snprintf(what, sizeof what, "after a kill at %s", fault);
        int code = tt_wait(tt_spawn_fault(argv, log_path, fault));
        char *log = test_read_file(log_path, NULL);
        if (code == 0) { /* past the run's last such point: an uninterrupted run */
            free(log);
            tt_assert_same_run(ref, cut, fault);
            return k - 1;
        }
        ck_assert_msg(code == 128 + SIGKILL, "%s: exit %d:\n%s", fault, code, log);
        free(log);
        int64_t want = newest_checkpoint_dir(out);
        unlink(log_path);
        code = tt_wait(tt_spawn(argv, log_path));
        log = test_read_file(log_path, NULL);
        ck_assert_msg(code == 0, "%s: the resumed run failed (%d):\n%s", what, code, log);
        char needle[4400];
        if (want >= 0)
            snprintf(needle, sizeof needle, "resuming from %s/checkpoint-%lld (step %lld)", out,
                     (long long)want, (long long)want);
        else
            snprintf(needle, sizeof needle, "no complete checkpoint in %s; starting from scratch",
                     out);
        ck_assert_msg(strstr(log, needle) != NULL, "%s: expected '%s' in:\n%s", what, needle, log);
        free(log);
        tt_assert_same_run(ref, cut, what);
    }
    ck_abort_msg("kill:%s: the run never got past its fault points", kind);
    return 0;
}

/* Walks every fault point of one kind through a 4-step job with checkpoints at steps 2 and 4
 * (and the final adapter): each point is a place where a preempted job can die. */
static void check_kill_points(const char *kind, int min_points) {
    char *ref = test_tmpdir(), *cut = test_tmpdir();
    char *ref_cfg = write_resume_config(ref, 4, 2);
    char *cut_cfg = write_resume_config(cut, 4, 2);
    char args[4400];
    snprintf(args, sizeof args, "train '%s'", ref_cfg);
    int rc = tt_lorafit(ref, args);
    char *log = tt_log(ref);
    ck_assert_msg(rc == 0, "uninterrupted run failed (%d):\n%s", rc, log);
    free(log);
    int points = walk_kill_points(ref, cut, cut_cfg, kind);
    ck_assert_msg(points >= min_points, "kill:%s: only %d points", kind, points);
    free(ref_cfg);
    free(cut_cfg);
    test_rmtree(ref);
    test_rmtree(cut);
    free(ref);
    free(cut);
}

START_TEST(test_resume_after_a_kill_at_every_step_end_is_bit_identical) {
    check_kill_points("step", 4);
}
END_TEST

START_TEST(test_resume_after_a_kill_at_every_write_is_bit_identical) {
    check_kill_points("write", 5); /* each file of both checkpoints and the adapter */
}
END_TEST

START_TEST(test_resume_after_a_kill_at_every_fsync_is_bit_identical) {
    check_kill_points("fsync", 10); /* files and directories */
}
END_TEST

START_TEST(test_resume_after_a_kill_at_every_rename_is_bit_identical) {
    check_kill_points("rename", 6);
}
END_TEST

/* One train.on_nonfinite: skip run in dir (its config cfg, in dir), with the NaN gradients
 * of `nan` ("nan:step:N,...") and, when kill_step > 0, SIGKILL after that step; the exit
 * code. resume: with --resume. */
static int skip_run(const char *dir, const char *cfg, const char *nan, int kill_step, bool resume) {
    const char *argv[] = {"train",
                          cfg,
                          "--set",
                          "train.on_nonfinite=skip",
                          "--set",
                          "train.max_nonfinite_skips=3",
                          resume ? "--resume" : NULL,
                          NULL};
    char fault[256], log_path[4200];
    snprintf(fault, sizeof fault, "%s", nan);
    if (kill_step > 0)
        snprintf(fault + strlen(fault), sizeof fault - strlen(fault), ",kill:step:%d", kill_step);
    snprintf(log_path, sizeof log_path, "%s/log.txt", dir);
    unlink(log_path);
    return tt_wait(tt_spawn_fault(argv, log_path, fault));
}

/* A skip run killed after a step and resumed ends byte-identical to an uninterrupted one:
 * AdamW's count and the schedule (which skipped steps do not advance), the counters of
 * skipped steps in all, in a row and in the metrics window (whose loss leaves them out) all
 * come back from the checkpoint. With NaN at steps 4, 5, 6 and max_nonfinite_skips 3, a run
 * killed after step 4 (checkpoint-4: one in a row) stops at step 6 like the uninterrupted
 * one, which it would not if the count in a row started again at 0. */
START_TEST(test_a_skip_run_killed_and_resumed_is_byte_identical) {
    char *ref = test_tmpdir(), *cut = test_tmpdir(), out[4200];
    char *ref_cfg = write_resume_config(ref, 8, 2), *cut_cfg = write_resume_config(cut, 8, 2);
    snprintf(out, sizeof out, "%s/out", cut);
    const char *nan = "nan:step:3,nan:step:4";
    ck_assert_int_eq(skip_run(ref, ref_cfg, nan, 0, false), 0);
    char *log = tt_log(ref);
    ck_assert_msg(strstr(log, "2 steps skipped as not finite"), "%s", log);
    free(log);
    for (int kill_at = 3; kill_at <= 5; kill_at++) {
        char what[64];
        snprintf(what, sizeof what, "killed after step %d", kill_at);
        test_rmtree(out);
        ck_assert_int_eq(skip_run(cut, cut_cfg, nan, kill_at, false), 128 + SIGKILL);
        ck_assert_int_eq(skip_run(cut, cut_cfg, nan, 0, true), 0);
        log = tt_log(cut);
        ck_assert_msg(strstr(log, "resuming from"), "%s: %s", what, log);
        free(log);
        tt_assert_same_run(ref, cut, what);
    }

    const char *run = "nan:step:4,nan:step:5,nan:step:6";
    test_rmtree(out);
    snprintf(out, sizeof out, "%s/out", ref);
    test_rmtree(out);
    ck_assert_int_eq(skip_run(ref, ref_cfg, run, 0, false), 1);
    ck_assert_int_eq(skip_run(cut, cut_cfg, run, 4, false), 128 + SIGKILL);
    ck_assert_int_eq(skip_run(cut, cut_cfg, run, 0, true), 1);
    log = tt_log(cut);
    ck_assert_msg(strstr(log, "resuming from") && strstr(log, "lorafit train: step 6:") &&
                      strstr(log, "3 steps in a row were not finite"),
                  "%s", log);
    free(log);
    json_t *ma = tt_stripped_metrics(ref), *mb = tt_stripped_metrics(cut);
    ck_assert_msg(json_equal(ma, mb), "the stopped runs' metrics differ");
    json_decref(ma);
    json_decref(mb);
    free(ref_cfg);
    free(cut_cfg);
    test_rmtree(ref);
    test_rmtree(cut);
    free(ref);
    free(cut);
}
END_TEST

START_TEST(test_sigint_saves_a_checkpoint_and_exits_130) {
    char *dir = test_tmpdir();
    char *cfg = write_resume_config(dir, 1000000, 0);
    char log_path[4200];
    snprintf(log_path, sizeof log_path, "%s/log.txt", dir);
    const char *argv[] = {"train", cfg, NULL};
    /* The job stops itself after step 3; SIGINT arrives while it is stopped, so it is seen
     * right after that step, whatever the machine's speed. It goes to the main thread (the
     * one that stopped): a signal to the process could be taken by an OpenMP thread woken
     * first by SIGCONT, its handler running after the main thread checked for a stop. */
    pid_t pid = tt_spawn_fault(argv, log_path, "stop:step:3");
    tt_wait_stopped(pid, 300);
    ck_assert_int_eq(syscall(SYS_tgkill, pid, pid, SIGINT), 0);
    kill(pid, SIGCONT);
    int code = tt_wait(pid);
    char *log = test_read_file(log_path, NULL);
    ck_assert_msg(code == 130, "exit code %d after SIGINT:\n%s", code, log);
    ck_assert_msg(strstr(log, "checkpoint saved") != NULL, "no word of the checkpoint:\n%s", log);
    free(log);
    char out[4200], path[4300], err[1024], skipped[512];
    snprintf(out, sizeof out, "%s/out", dir);
    int64_t step = 0;
    ck_assert_int_eq(manifest_latest_complete(out, path, sizeof path, &step, skipped,
                                              sizeof skipped, err, sizeof err),
                     1);
    ck_assert_int_eq(step, 3);
    /* The saved checkpoint resumes: finish two steps later (max_steps may change). */
    char args[4400];
    snprintf(args, sizeof args, "train '%s' --resume --set train.max_steps=5", cfg);
    tt_expect(dir, args, 0, "(step 3)");
    free(cfg);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* Runs `lorafit ARGS` in the background and waits at most `seconds` for it: a second writer
 * must give up at once, never wait for the lock. Returns the exit code. */
static int run_bounded(const char *const *argv, const char *log_path, int seconds) {
    char what[64];
    snprintf(what, sizeof what, "lorafit %s", argv[0]);
    return tt_wait_bounded(tt_spawn(argv, log_path), seconds, what);
}

START_TEST(test_one_writer_per_output_dir_and_a_killed_holder_never_blocks) {
    char *ref = test_tmpdir(), *dir = test_tmpdir();
    char *ref_cfg = write_resume_config(ref, 6, 2), *cfg = write_resume_config(dir, 6, 2);
    char args[4400], log_path[4200], second_log[4200], out[4200], needle[4600];
    snprintf(args, sizeof args, "train '%s'", ref_cfg);
    ck_assert_int_eq(tt_lorafit(ref, args), 0);
    snprintf(log_path, sizeof log_path, "%s/log.txt", dir);
    snprintf(second_log, sizeof second_log, "%s/second.txt", dir);
    snprintf(out, sizeof out, "%s/out", dir);
    const char *plain[] = {"train", cfg, NULL}, *resume[] = {"train", cfg, "--resume", NULL};

    /* The first run holds the directory (stopped after step 2); a second train, with or
     * without --resume, is refused at once, naming the directory and the holder. */
    pid_t first = tt_spawn_fault(plain, log_path, "stop:step:2");
    tt_wait_stopped(first, 300);
    snprintf(needle, sizeof needle, "%s is in use by another lorafit process (pid %d)", out,
             (int)first);
    for (int i = 0; i < 2; i++) {
        unlink(second_log);
        int code = run_bounded(i ? resume : plain, second_log, 60);
        char *log = test_read_file(second_log, NULL);
        ck_assert_msg(code == 2, "second writer: exit %d:\n%s", code, log);
        ck_assert_msg(strstr(log, needle) != NULL, "expected '%s' in:\n%s", needle, log);
        free(log);
    }
    kill(first, SIGCONT);
    ck_assert_int_eq(tt_wait(first), 0);
    tt_assert_same_run(ref, dir, "the first run, after a refused second writer");

    /* A holder killed with SIGKILL leaves the lock file behind, but not the lock. */
    test_rmtree(out);
    first = tt_spawn_fault(plain, log_path, "stop:step:2");
    tt_wait_stopped(first, 300);
    kill(first, SIGKILL);
    ck_assert_int_eq(tt_wait(first), 128 + SIGKILL);
    unlink(second_log);
    int code = run_bounded(resume, second_log, 300);
    char *log = test_read_file(second_log, NULL);
    ck_assert_msg(code == 0, "resume after the holder was killed: exit %d:\n%s", code, log);
    ck_assert_msg(strstr(log, "checkpoint-2 (step 2)") != NULL, "did not resume:\n%s", log);
    free(log);
    tt_assert_same_run(ref, dir, "the resumed run");

    /* export --out takes the same lock: held here by this process. */
    char adapter[4300], dst[4300];
    snprintf(adapter, sizeof adapter, "%s/adapter", out);
    snprintf(dst, sizeof dst, "%s/exported", dir);
    ck_assert_int_eq(mkdir(dst, 0755), 0);
    int fd = -1;
    char err[1024];
    ck_assert_int_eq(fsio_lock_dir(dst, &fd, err, sizeof err), 0);
    const char *export[] = {"export", adapter, "--out", dst, NULL};
    unlink(second_log);
    code = run_bounded(export, second_log, 60);
    log = test_read_file(second_log, NULL);
    snprintf(needle, sizeof needle, "%s is in use by another lorafit process (pid %d)", dst,
             (int)getpid());
    ck_assert_msg(code == 2 && strstr(log, needle), "export into a locked dir: %d\n%s", code, log);
    free(log);
    close(fd);
    ck_assert_int_eq(run_bounded(export, second_log, 60), 0);
    free(ref_cfg);
    free(cfg);
    test_rmtree(ref);
    test_rmtree(dir);
    free(ref);
    free(dir);
}
END_TEST

START_TEST(test_resume_refuses_a_config_that_changes_the_result) {
    char *dir = test_tmpdir();
    char *cfg = write_resume_config(dir, 2, 0);
    char args[4400];
    snprintf(args, sizeof args, "train '%s'", cfg);
    ck_assert_int_eq(tt_lorafit(dir, args), 0);
    snprintf(args, sizeof args,
             "train '%s' --resume --set lora.r=8 --set train.lr=0.5 --set train.max_steps=4", cfg);
    /* Exactly the two result-changing keys: raising max_steps is allowed. */
    tt_expect(dir, args, 2, "differs in lora.r, train.lr (");
    /* Only max_steps raised: accepted and continued. */
    snprintf(args, sizeof args, "train '%s' --resume --set train.max_steps=4", cfg);
    tt_expect(dir, args, 0, "step 2");
    free(cfg);
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_resume_starts_fresh_without_checkpoint_and_finished_run_exits_0) {
    char *dir = test_tmpdir();
    char *cfg = write_resume_config(dir, 2, 0);
    char args[4400];
    snprintf(args, sizeof args, "train '%s' --resume", cfg);
    tt_expect(dir, args, 0, "starting from scratch");
    tt_expect(dir, args, 0, "already reached");
    /* Without --resume, an output directory with checkpoints is not overwritten. */
    snprintf(args, sizeof args, "train '%s'", cfg);
    tt_expect(dir, args, 2, "--resume");
    free(cfg);
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_resume_from_a_named_checkpoint_and_keep_prunes_old_ones) {
    char *dir = test_tmpdir();
    char *cfg = write_resume_config(dir, 8, 2);
    char args[4400];
    snprintf(args, sizeof args, "train '%s'", cfg);
    ck_assert_int_eq(tt_lorafit(dir, args), 0);
    char out[4200], err[512];
    snprintf(out, sizeof out, "%s/out", dir);
    int64_t *steps = NULL;
    int n = 0;
    ck_assert_int_eq(manifest_list_checkpoints(out, &steps, &n, err, sizeof err), 0);
    ck_assert_int_eq(n, 2); /* keep: 2 */
    ck_assert_int_eq(steps[0], 6);
    ck_assert_int_eq(steps[1], 8);
    free(steps);
    char final_a[4400];
    snprintf(final_a, sizeof final_a, "%s/out/adapter/adapter_model.safetensors", dir);
    size_t before_len = 0;
    char *before = test_read_file(final_a, &before_len);
    /* --resume DIR from step 6 recomputes steps 7 and 8 identically. */
    snprintf(args, sizeof args, "train '%s' --resume '%s/checkpoint-6'", cfg, out);
    tt_expect(dir, args, 0, "step 6");
    size_t len = 0;
    char *after = test_read_file(final_a, &len);
    ck_assert(before && after && len == before_len && memcmp(before, after, len) == 0);
    free(before);
    free(after);
    /* A named checkpoint that is corrupt is an error, not a silent fresh start. */
    char state[4400];
    snprintf(state, sizeof state, "%s/checkpoint-6/trainer_state.safetensors", out);
    FILE *f = fopen(state, "r+b");
    ck_assert(f != NULL);
    fseek(f, 100, SEEK_SET);
    fputc('#', f);
    fclose(f);
    tt_expect(dir, args, 1, "CRC");
    free(cfg);
    test_rmtree(dir);
    free(dir);
}
END_TEST

Suite *train_resume_suite(void) {
    Suite *s = suite_create("train_resume");
    TCase *tc = tcase_create("resume");
    tcase_add_test(tc, test_resume_after_a_kill_at_every_step_end_is_bit_identical);
    tcase_add_test(tc, test_resume_after_a_kill_at_every_write_is_bit_identical);
    tcase_add_test(tc, test_resume_after_a_kill_at_every_fsync_is_bit_identical);
    tcase_add_test(tc, test_resume_after_a_kill_at_every_rename_is_bit_identical);
    tcase_add_test(tc, test_a_skip_run_killed_and_resumed_is_byte_identical);
    tcase_add_test(tc, test_sigint_saves_a_checkpoint_and_exits_130);
    tcase_add_test(tc, test_one_writer_per_output_dir_and_a_killed_holder_never_blocks);
    tcase_add_test(tc, test_resume_refuses_a_config_that_changes_the_result);
    tcase_add_test(tc, test_resume_starts_fresh_without_checkpoint_and_finished_run_exits_0);
    tcase_add_test(tc, test_resume_from_a_named_checkpoint_and_keep_prunes_old_ones);
    suite_add_tcase(s, tc);
    return s;
}
