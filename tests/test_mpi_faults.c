/* tests/test_mpi_faults.c — a two-rank job that is killed, stopped or fails: a rank or
 * mpirun killed with SIGKILL and the job resumed byte-identical, SIGUSR1 to mpirun saving
 * a checkpoint (exit 130), a failure on all ranks or on one ending every rank with its
 * error printed once, and a NaN gradient on one rank decided alike on both. Every wait is bounded
 * and fails when the event never comes; none measures speed. */
#include <ctype.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/test_mpi_util.h"
#include "tests/test_train_util.h"
#include "tests/test_util.h"

/* How long a step of these tests may take before it counts as a hang. Only a guard: the
 * verdicts are what the processes did, never how fast (a loaded CI machine once took more
 * than 10 s for orphaned ranks to end). */
enum { HANG_GUARD_S = 120 };

/* /proc/PID/stat's state letter and parent; 0 when the process is gone. */
static char proc_state(pid_t pid, pid_t *ppid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *end = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
    char state = 0;
    int parent = 0;
    if (!end || sscanf(end + 1, " %c %d", &state, &parent) != 2) return 0;
    if (ppid) *ppid = parent;
    return state;
}

/* The ranks of a local mpirun: its children, at most max; returns how many. */
static int mpirun_ranks(pid_t mpirun, pid_t *ranks, int max) {
    DIR *d = opendir("/proc");
    ck_assert(d != NULL);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (!isdigit((unsigned char)e->d_name[0])) continue;
        pid_t pid = (pid_t)atoi(e->d_name), parent = 0;
        char state = proc_state(pid, &parent);
        if (state && parent == mpirun && n < max) ranks[n++] = pid;
    }
    closedir(d);
    return n;
}

/* Waits until mpirun has `want` children, every one stopped (a "stop:" fault point);
 * fills ranks. Fails the test if that has not happened within `seconds`. */
static void wait_ranks_stopped(pid_t mpirun, pid_t *ranks, int want, int seconds) {
    for (long ms = 0; ms < 1000L * seconds; ms += 10) {
        int n = mpirun_ranks(mpirun, ranks, want), stopped = 0;
        for (int i = 0; i < n; i++) stopped += proc_state(ranks[i], NULL) == 'T';
        if (n == want && stopped == want) return;
        ck_assert_msg(waitpid(mpirun, NULL, WNOHANG) == 0, "mpirun ended before its ranks stopped");
        usleep(10000);
    }
    kill(mpirun, SIGKILL);
    waitpid(mpirun, NULL, 0);
    ck_abort_msg("the ranks of mpirun %d did not stop within %d s", (int)mpirun, seconds);
}

/* Whether signal sig is pending for pid (either queue of /proc/PID/status). */
static int signal_pending(pid_t pid, int sig) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    int pending = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long long mask;
        if ((sscanf(line, "SigPnd: %llx", &mask) == 1 ||
             sscanf(line, "ShdPnd: %llx", &mask) == 1) &&
            (mask >> (sig - 1) & 1))
            pending = 1;
    }
    fclose(f);
    return pending;
}

/* Waits until every pid has ended (gone or a zombie); fails the test after `seconds`. */
static void wait_gone(const pid_t *pids, int n, int seconds, const char *what) {
    for (long ms = 0; ms < 1000L * seconds; ms += 10) {
        int alive = 0;
        for (int i = 0; i < n; i++) {
            char s = proc_state(pids[i], NULL);
            alive += s != 0 && s != 'Z';
        }
        if (alive == 0) return;
        usleep(10000);
    }
    for (int i = 0; i < n; i++) kill(pids[i], SIGKILL);
    ck_abort_msg("%s: the ranks were still running after %d s", what, seconds);
}

/* ---- kills and resumes ------------------------------------------------- */

/* The same 2-rank command with --resume: it must resume from checkpoint-STEP and end with
 * the bytes of the uninterrupted run ref. Frees ref, dir and cfg (and removes the dirs). */
static void resume_to_the_reference(char *ref, char *dir, char *cfg, int step, const char *what) {
    char args[4400], needle[4400];
    snprintf(args, sizeof args, "train '%s' --resume", cfg);
    mpi_expect(dir, 2, args, 0);
    char *log = tt_log(dir);
    snprintf(needle, sizeof needle, "resuming from %s/out/checkpoint-%d (step %d)", dir, step,
             step);
    ck_assert_msg(strstr(log, needle) != NULL, "expected '%s' in:\n%s", needle, log);
    free(log);
    tt_assert_same_run(ref, dir, what);
    free(cfg);
    test_rmtree(ref);
    test_rmtree(dir);
    free(ref);
    free(dir);
}

/* Rank 1 alone dies with SIGKILL after step 3 (MPMD: its own environment): mpirun ends the
 * job, and the same command resumes from checkpoint-2 to the uninterrupted run's bytes. */
START_TEST(test_a_rank_killed_mid_run_resumes_byte_identical) {
    NEED_MPIRUN();
    TEST_NEED_SHARED(shared);
    char *ref = reference_run(shared), *dir = test_tmpdir();
    char *cfg = write_job(dir, shared);
    char cmd[16384], log_path[4200];
    snprintf(cmd, sizeof cmd,
             "exec " MPIRUN " -np 1 '%s' train '%s' : -np 1 env LORAFIT_FAULT=kill:step:3 '%s' "
             "train '%s'",
             test_lorafit_bin(), cfg, test_lorafit_bin(), cfg);
    snprintf(log_path, sizeof log_path, "%s/killed.txt", dir);
    int code =
        tt_wait_bounded(spawn_command(cmd, log_path), HANG_GUARD_S, "the job with a killed rank");
    char *log = test_read_file(log_path, NULL);
    ck_assert_msg(code != 0, "the job survived its killed rank:\n%s", log);
    ck_assert_msg(strstr(log, "rank 1") != NULL, "mpirun did not name the dead rank:\n%s", log);
    free(log);
    resume_to_the_reference(ref, dir, cfg, 2, "resumed after rank 1 was killed");
}
END_TEST

/* `mpirun -np 2 lorafit train CFG` with both ranks stopped after step 3 (a stop fault
 * point): mpirun's pid, the ranks' pids in ranks[2]. */
static pid_t start_stopped_after_step_3(const char *cfg, const char *log_path, pid_t *ranks) {
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "LORAFIT_FAULT=stop:step:3 exec " MPIRUN " -np 2 '%s' train '%s'",
             test_lorafit_bin(), cfg);
    pid_t mpirun = spawn_command(cmd, log_path);
    wait_ranks_stopped(mpirun, ranks, 2, HANG_GUARD_S);
    return mpirun;
}

/* mpirun itself dies with SIGKILL while its ranks wait after step 3: the ranks end on their
 * own (their process groups are orphaned while stopped, so the kernel hangs them up), and
 * the same command resumes to the uninterrupted run's bytes. */
START_TEST(test_a_killed_mpirun_takes_its_ranks_and_the_job_resumes_byte_identical) {
    NEED_MPIRUN();
    TEST_NEED_SHARED(shared);
    char *ref = reference_run(shared), *dir = test_tmpdir();
    char *cfg = write_job(dir, shared);
    char log_path[4200];
    snprintf(log_path, sizeof log_path, "%s/killed.txt", dir);
    pid_t ranks[2], mpirun = start_stopped_after_step_3(cfg, log_path, ranks);
    kill(mpirun, SIGKILL);
    ck_assert_int_eq(tt_wait_bounded(mpirun, HANG_GUARD_S, "mpirun after SIGKILL"), 128 + SIGKILL);
    wait_gone(ranks, 2, HANG_GUARD_S, "after mpirun was killed");
    resume_to_the_reference(ref, dir, cfg, 2, "resumed after mpirun was killed");
}
END_TEST

/* SIGUSR1 to mpirun, which forwards it at once: both ranks stop after the same step (the
 * signal is pending while they wait after step 3), rank 0 saves checkpoint-3, every rank
 * and mpirun exit 130, and a resume ends byte-identical to the uninterrupted run. */
START_TEST(test_sigusr1_to_mpirun_saves_a_checkpoint_and_exits_130) {
    NEED_MPIRUN();
    TEST_NEED_SHARED(shared);
    char *ref = reference_run(shared), *dir = test_tmpdir();
    char *cfg = write_job(dir, shared);
    char log_path[4200];
    snprintf(log_path, sizeof log_path, "%s/stopped.txt", dir);
    pid_t ranks[2], mpirun = start_stopped_after_step_3(cfg, log_path, ranks);
    kill(mpirun, SIGUSR1);
    for (long ms = 0; !(signal_pending(ranks[0], SIGUSR1) && signal_pending(ranks[1], SIGUSR1));
         ms += 10) {
        ck_assert_msg(ms < 1000L * HANG_GUARD_S, "mpirun did not forward SIGUSR1 within %d s",
                      HANG_GUARD_S);
        usleep(10000);
    }
    kill(ranks[0], SIGCONT);
    kill(ranks[1], SIGCONT);
    int code = tt_wait_bounded(mpirun, HANG_GUARD_S, "the stopped job");
    char *log = test_read_file(log_path, NULL);
    ck_assert_msg(code == 130, "mpirun exit %d after SIGUSR1:\n%s", code, log);
    ck_assert_msg(count_of(log, "stopped by signal after step 3; checkpoint saved") == 1,
                  "expected one word of the checkpoint:\n%s", log);
    free(log);
    resume_to_the_reference(ref, dir, cfg, 3, "resumed after SIGUSR1");
}
END_TEST

/* ---- failures ------------------------------------------------------------------------ */

/* A record that is not token ids, in the rows rank 1 trains (no shuffle, 1 row per
 * sequence: batch 1 of the job is records 5-8, rank 1 takes 7 and 8): every rank stops,
 * exit 1, with the file and line printed once, well within 10 s. */
START_TEST(test_a_bad_record_stops_every_rank_with_its_line_printed_once) {
    NEED_MPIRUN();
    TEST_NEED_SHARED(shared);
    char *dir = test_tmpdir();
    char *cfg = write_job(dir, shared), rows[4200];
    snprintf(rows, sizeof rows, "%s/rows.jsonl", dir);
    FILE *f = fopen(rows, "w");
    ck_assert(f != NULL);
    for (int line = 1; line <= 40; line++) {
        if (line == 7)
            fprintf(f, "{\"input_ids\": [1, 2, \"three\"]}\n");
        else
            fprintf(f, "{\"input_ids\": [1, %d, %d, %d, 2]}\n", 300 + line, 301 + line, 302 + line);
    }
    fclose(f);
    char cmd[16384], args[8400], log_path[4200];
    snprintf(args, sizeof args,
             "train '%s' --set 'data.train=%s' --set data.shuffle=false --set data.packing=false "
             "--set data.on_error=fail --set train.grad_accum=1",
             cfg, rows);
    mpi_command(cmd, sizeof cmd, 2, args);
    snprintf(log_path, sizeof log_path, "%s/failed.txt", dir);
    int code =
        tt_wait_bounded(spawn_command(cmd, log_path), HANG_GUARD_S, "the job with a bad record");
    char *log = test_read_file(log_path, NULL);
    ck_assert_msg(code == 1, "exit %d, expected 1:\n%s", code, log);
    char needle[4300];
    snprintf(needle, sizeof needle, "%s:7", rows);
    ck_assert_msg(count_of(log, needle) == 1, "expected '%s' once in:\n%s", needle, log);
    ck_assert_msg(count_of(log, "lorafit train:") == 1, "one error line expected:\n%s", log);
    free(log);
    free(cfg);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* Rank 0 alone writes, so an I/O error in its first checkpoint is a failure of one rank:
 * the other learns it at the end of the step and both exit 1, the error printed once and
 * naming the rank. */
START_TEST(test_a_failure_on_one_rank_stops_the_job_and_names_the_rank) {
    NEED_MPIRUN();
    TEST_NEED_SHARED(shared);
    char *dir = test_tmpdir();
    char *cfg = write_job(dir, shared);
    char cmd[16384], args[4400], log_path[4200];
    snprintf(args, sizeof args, "train '%s'", cfg);
    snprintf(cmd, sizeof cmd, "LORAFIT_FAULT=write:2 exec " MPIRUN " -np 2 '%s' %s",
             test_lorafit_bin(), args);
    snprintf(log_path, sizeof log_path, "%s/failed.txt", dir);
    int code =
        tt_wait_bounded(spawn_command(cmd, log_path), HANG_GUARD_S, "the job with a failed write");
    char *log = test_read_file(log_path, NULL);
    ck_assert_msg(code == 1, "exit %d, expected 1:\n%s", code, log);
    ck_assert_msg(count_of(log, "lorafit train: rank 0 of 2: ") == 1 &&
                      count_of(log, "lorafit train:") == 1 && strstr(log, "checkpoint-2"),
                  "expected one error of rank 0 about checkpoint-2:\n%s", log);
    ck_assert_msg(strstr(log, "step 3/") == NULL, "a rank trained past the failure:\n%s", log);
    free(log);
    free(cfg);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* `mpirun -np 1 lorafit ... : -np 1 lorafit ...` with LORAFIT_FAULT=nan:step:2 on rank
 * `faulty` alone, in dir (output to NAME.txt); the exit code. */
static int nan_on_one_rank(const char *dir, const char *cfg, int faulty, const char *extra,
                           const char *name) {
    char cmd[16384], log_path[4200], rank[2][4600];
    for (int r = 0; r < 2; r++)
        snprintf(rank[r], sizeof rank[r], "-np 1 %s'%s' train '%s' %s",
                 r == faulty ? "env LORAFIT_FAULT=nan:step:2 " : "", test_lorafit_bin(), cfg,
                 extra);
    snprintf(cmd, sizeof cmd, "exec " MPIRUN " %s : %s", rank[0], rank[1]);
    snprintf(log_path, sizeof log_path, "%s/%s.txt", dir, name);
    return tt_wait_bounded(spawn_command(cmd, log_path), HANG_GUARD_S,
                           "the job with a NaN gradient");
}

/* A NaN gradient on one rank reaches every rank through the gradient sum, so all decide
 * alike: with stop both exit 1 at step 2, the message printed once and naming no rank; with
 * skip both go on, and the job ends with the same adapter whichever rank saw the NaN. */
START_TEST(test_a_nan_gradient_on_one_rank_is_decided_alike_on_every_rank) {
    NEED_MPIRUN();
    TEST_NEED_SHARED(shared);
    char *dir = test_tmpdir(), *other = test_tmpdir();
    char *cfg = write_job(dir, shared), *other_cfg = write_job(other, shared);
    int code = nan_on_one_rank(dir, cfg, 1, "", "stop");
    char log_path[4200];
    snprintf(log_path, sizeof log_path, "%s/stop.txt", dir);
    char *log = test_read_file(log_path, NULL);
    ck_assert_msg(code == 1, "exit %d, expected 1:\n%s", code, log);
    ck_assert_msg(count_of(log, "lorafit train:") == 1 &&
                      count_of(log, "lorafit train: step 2: the gradient norm (NaN) is not "
                                    "finite") == 1 &&
                      strstr(log, "No checkpoint was written yet.") && !strstr(log, "rank 1 of"),
                  "expected one message about step 2:\n%s", log);
    free(log);
    char out[4300];
    snprintf(out, sizeof out, "%s/out", dir);
    test_rmtree(out);
    const char *skip = "--set train.on_nonfinite=skip";
    ck_assert_int_eq(nan_on_one_rank(dir, cfg, 1, skip, "skip"), 0);
    ck_assert_int_eq(nan_on_one_rank(other, other_cfg, 0, skip, "skip"), 0);
    snprintf(log_path, sizeof log_path, "%s/skip.txt", dir);
    log = test_read_file(log_path, NULL);
    ck_assert_msg(count_of(log, "update skipped") == 1 &&
                      strstr(log, "1 step skipped as not finite"),
                  "expected one skipped step:\n%s", log);
    free(log);
    char a[4400], b[4400];
    adapter_path(a, sizeof a, dir);
    adapter_path(b, sizeof b, other);
    ck_assert_msg(tt_same_bytes(a, b), "the adapter depends on which rank saw the NaN");
    free(cfg);
    free(other_cfg);
    test_rmtree(dir);
    test_rmtree(other);
    free(dir);
    free(other);
}
END_TEST

Suite *mpi_faults_suite(void) {
    Suite *s = suite_create("mpi_faults");
    TCase *tc = tcase_create("mpi_faults");
    tcase_add_test(tc, test_a_rank_killed_mid_run_resumes_byte_identical);
    tcase_add_test(tc, test_a_killed_mpirun_takes_its_ranks_and_the_job_resumes_byte_identical);
    tcase_add_test(tc, test_sigusr1_to_mpirun_saves_a_checkpoint_and_exits_130);
    tcase_add_test(tc, test_a_bad_record_stops_every_rank_with_its_line_printed_once);
    tcase_add_test(tc, test_a_failure_on_one_rank_stops_the_job_and_names_the_rank);
    tcase_add_test(tc, test_a_nan_gradient_on_one_rank_is_decided_alike_on_every_rank);
    suite_add_tcase(s, tc);
    return s;
}
