/* tests/test_mpi.c — one job on two ranks (`mpirun -np 2 lorafit train`): the rows and the
 * result of a 1-process run with twice the batch, byte-identical reruns, exact resumes after
 * a rank or mpirun is killed, a failure anywhere ending every rank with one message, SIGUSR1
 * to mpirun saving a checkpoint, eval shared out, and a plain run that never starts MPI.
 *
 * Each test is skipped by name when mpirun is missing (and fails under CI, where
 * tools/install-deps has installed it). Every wait is bounded and fails when the event never
 * comes; none measures speed. */
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/test_train_util.h"
#include "tests/test_util.h"
#include "trainer/train/train.h"

/* How the tests start OpenMPI, in one place: as root (tests run as root in containers),
 * more ranks than cores allowed, no binding (the machine is shared), shared memory only,
 * and no single-copy (CMA) transfers, which containers without ptrace rights refuse. */
#define MPIRUN                                                                                     \
    "mpirun --allow-run-as-root --oversubscribe --bind-to none --mca btl self,vader "              \
    "--mca btl_vader_single_copy_mechanism none"

/* Under `make asan` the ranks' LeakSanitizer skips what OpenMPI leaves allocated past
 * MPI_Finalize (tests/lsan_openmpi.supp); the slow unwinder gives the stacks through
 * OpenMPI's libraries that the suppressions match. */
static void suppress_openmpi_leaks(void) {
    if (!getenv("LORAFIT_SANITIZED")) return;
    const char *root = getenv("LORAFIT_ROOT");
    char opts[4300];
    snprintf(opts, sizeof opts,
             "suppressions=%s/tests/lsan_openmpi.supp:fast_unwind_on_malloc=0:print_suppressions=0",
             root ? root : ".");
    setenv("LSAN_OPTIONS", opts, 1);
}

static int have_mpirun(const char *test) {
    suppress_openmpi_leaks();
    if (test_run("command -v mpirun >/dev/null 2>&1", NULL) == 0) return 1;
    if (test_in_ci()) ck_abort_msg("%s: mpirun is missing (needed in CI)", test);
    test_skip(test, "mpirun is not installed (tools/install-deps installs openmpi-bin)");
    return 0;
}
#define NEED_MPIRUN()                                                                              \
    if (!have_mpirun(__func__)) return;

/* The job: stories260K on TinyStories with packing, shuffling, accumulation, a validation
 * set, checkpoints every 2 steps; 2 rows per rank and one thread, as all tests here use. */
static char *write_job(const char *dir, const char *shared) {
    char cfg[4096];
    snprintf(cfg, sizeof cfg,
             "model:\n  path: %s/models/stories260K\n"
             "lora:\n  r: 4\n  alpha: 8\n"
             "data:\n  train: %s/data/tinystories/train.jsonl.gz\n"
             "  valid: %s/data/tinystories/valid.jsonl\n"
             "  seq_len: 64\n  packing: true\n  shuffle: true\n  shuffle_buffer: 64\n"
             "train:\n  batch_size: 2\n  grad_accum: 2\n  max_steps: 6\n  lr: 5.0e-3\n"
             "  seed: 1\n  threads: 1\n"
             "output:\n  dir: out\n  save_every: 2\n"
             "log:\n  every: 1\n"
             "eval:\n  every: 3\n  max_batches: 3\n",
             shared, shared, shared);
    return tt_write_text(dir, "job.yaml", cfg);
}

/* "exec mpirun ... -np NP lorafit ARGS" (ARGS shell-quoted by the caller). */
static void mpi_command(char *cmd, size_t len, int np, const char *args) {
    snprintf(cmd, len, "exec " MPIRUN " -np %d '%s' %s", np, test_lorafit_bin(), args);
}

/* Runs the command in the foreground, output to DIR/NAME; the exit code. */
static int run_logged(const char *dir, const char *cmd, const char *name) {
    char log[4200];
    snprintf(log, sizeof log, "%s/%s", dir, name);
    return test_run(cmd, log);
}

/* `mpirun -np NP lorafit ARGS` in DIR's log.txt; fails the test unless it exits want_rc. */
static void mpi_expect(const char *dir, int np, const char *args, int want_rc) {
    char cmd[16384];
    mpi_command(cmd, sizeof cmd, np, args);
    int rc = run_logged(dir, cmd, "log.txt");
    char *log = tt_log(dir);
    ck_assert_msg(rc == want_rc, "%s: exit %d, expected %d:\n%s", cmd, rc, want_rc, log);
    free(log);
}

/* sh -c CMD in the background, output to log_path; the shell execs, so the pid is the
 * command's own (mpirun's). */
static pid_t spawn_command(const char *cmd, const char *log_path) {
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* The exit code of pid (128 + signal); fails the test (after killing it) if it has not
 * ended within `seconds`. */
static int wait_bounded(pid_t pid, int seconds, const char *what) {
    for (long ms = 0; ms < 1000L * seconds; ms += 10) {
        int st;
        pid_t got = waitpid(pid, &st, WNOHANG);
        ck_assert_int_ge(got, 0);
        if (got == pid) return WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    ck_abort_msg("%s did not end within %d s", what, seconds);
    return -1;
}

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

static int count_of(const char *text, const char *needle) {
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle)) n++;
    return n;
}

static void adapter_path(char *out, size_t len, const char *dir) {
    snprintf(out, len, "%s/out/adapter/adapter_model.safetensors", dir);
}

/* The run's adapter and metrics (timing aside) are byte-identical to the reference's. */
static void assert_same_run(const char *ref, const char *dir, const char *what) {
    char a[4400], b[4400];
    adapter_path(a, sizeof a, ref);
    adapter_path(b, sizeof b, dir);
    ck_assert_msg(tt_same_bytes(a, b), "%s: the adapter differs from the reference run's", what);
    char out_a[4200], out_b[4200];
    snprintf(out_a, sizeof out_a, "%s/out", ref);
    snprintf(out_b, sizeof out_b, "%s/out", dir);
    json_t *ma = tt_metrics(out_a), *mb = tt_metrics(out_b);
    tt_strip_timing(ma);
    tt_strip_timing(mb);
    char *ta = json_dumps(ma, JSON_SORT_KEYS), *tb = json_dumps(mb, JSON_SORT_KEYS);
    ck_assert_msg(strcmp(ta, tb) == 0, "%s: metrics differ:\n%s\nvs\n%s", what, ta, tb);
    free(ta);
    free(tb);
    json_decref(ma);
    json_decref(mb);
}

/* A reference: the job, uninterrupted, on 2 ranks in a fresh directory. */
static char *reference_run(const char *shared) {
    char *ref = test_tmpdir(), args[4400];
    char *cfg = write_job(ref, shared);
    snprintf(args, sizeof args, "train '%s'", cfg);
    mpi_expect(ref, 2, args, 0);
    free(cfg);
    return ref;
}

/* ---- the result of one process with twice the batch --------------------------------- */

START_TEST(test_two_ranks_train_what_one_process_trains_with_twice_the_batch) {
    NEED_MPIRUN();
    TEST_NEED_SHARED(shared);
    char *one = test_tmpdir(), *two = test_tmpdir(), args[4400];
    char *cfg_one = write_job(one, shared), *cfg_two = write_job(two, shared);
    snprintf(args, sizeof args, "train '%s' --set train.batch_size=4", cfg_one);
    tt_expect(one, args, 0, NULL);
    snprintf(args, sizeof args, "train '%s'", cfg_two);
    mpi_expect(two, 2, args, 0);
    char *log = tt_log(two);
    ck_assert_msg(strstr(log, "2 ranks, train.batch_size 2 each: 4 sequences per micro-batch"),
                  "no word of the ranks:\n%s", log);
    free(log);
    char out_one[4200], out_two[4200];
    snprintf(out_one, sizeof out_one, "%s/out", one);
    snprintf(out_two, sizeof out_two, "%s/out", two);
    json_t *ma = tt_metrics(out_one), *mb = tt_metrics(out_two);
    ck_assert_int_eq((int)json_array_size(ma), (int)json_array_size(mb));
    int losses = 0, evals = 0;
    for (size_t i = 0; i < json_array_size(ma); i++) {
        json_t *a = json_array_get(ma, i), *b = json_array_get(mb, i);
        ck_assert_int_eq(json_integer_value(json_object_get(a, "step")),
                         json_integer_value(json_object_get(b, "step")));
        static const char *const keys[] = {"loss", "eval_loss", "grad_norm"};
        for (int k = 0; k < 3; k++) {
            json_t *va = json_object_get(a, keys[k]), *vb = json_object_get(b, keys[k]);
            ck_assert((va == NULL) == (vb == NULL));
            if (!va) continue;
            double x = json_number_value(va), y = json_number_value(vb);
            ck_assert_msg(fabs(x - y) <= 1e-5 * fabs(x), "line %zu %s: %.9g (1 process) vs %.9g",
                          i + 1, keys[k], x, y);
            losses += k == 0, evals += k == 1;
        }
        static const char *const counts[] = {"tokens", "eval_tokens"};
        for (int k = 0; k < 2; k++)
            ck_assert_int_eq(json_integer_value(json_object_get(a, counts[k])),
                             json_integer_value(json_object_get(b, counts[k])));
    }
    ck_assert_int_eq(losses, 6);
    ck_assert_int_eq(evals, 2);
    /* Adam divides by sqrt(v) + eps, so a weight whose gradient nearly cancels (~1e-8)
     * amplifies the last-bit differences of a different summation order: this job's
     * adapters agree to ~3e-6, others measured up to ~8e-5, as with grad_accum. */
    char a[4400], b[4400];
    adapter_path(a, sizeof a, two);
    adapter_path(b, sizeof b, one);
    double rel = tt_adapter_rel_diff(a, b, "");
    ck_assert_msg(rel < 1e-4, "adapters differ by %.3g", rel);
    json_decref(ma);
    json_decref(mb);
    free(cfg_one);
    free(cfg_two);
    test_rmtree(one);
    test_rmtree(two);
    free(one);
    free(two);
}
END_TEST

/* ---- determinism, kills and resumes ------------------------------------------------- */

START_TEST(test_two_rank_runs_are_byte_identical) {
    NEED_MPIRUN();
    TEST_NEED_SHARED(shared);
    char *ref = reference_run(shared), *again = reference_run(shared);
    assert_same_run(ref, again, "a second run");
    test_rmtree(ref);
    test_rmtree(again);
    free(ref);
    free(again);
}
END_TEST

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
    int code = wait_bounded(spawn_command(cmd, log_path), 60, "the job with a killed rank");
    char *log = test_read_file(log_path, NULL);
    ck_assert_msg(code != 0, "the job survived its killed rank:\n%s", log);
    ck_assert_msg(strstr(log, "rank 1") != NULL, "mpirun did not name the dead rank:\n%s", log);
    free(log);
    char args[4400];
    snprintf(args, sizeof args, "train '%s' --resume", cfg);
    mpi_expect(dir, 2, args, 0);
    log = tt_log(dir);
    char needle[4400];
    snprintf(needle, sizeof needle, "resuming from %s/out/checkpoint-2 (step 2)", dir);
    ck_assert_msg(strstr(log, needle) != NULL, "expected '%s' in:\n%s", needle, log);
    free(log);
    assert_same_run(ref, dir, "resumed after rank 1 was killed");
    free(cfg);
    test_rmtree(ref);
    test_rmtree(dir);
    free(ref);
    free(dir);
}
END_TEST

/* mpirun itself dies with SIGKILL while its ranks wait after step 3: the ranks end on their
 * own (their process groups are orphaned while stopped, so the kernel hangs them up), and
 * the same command resumes to the uninterrupted run's bytes. */
START_TEST(test_a_killed_mpirun_takes_its_ranks_and_the_job_resumes_byte_identical) {
    NEED_MPIRUN();
    TEST_NEED_SHARED(shared);
    char *ref = reference_run(shared), *dir = test_tmpdir();
    char *cfg = write_job(dir, shared);
    char cmd[16384], args[4400], log_path[4200];
    snprintf(args, sizeof args, "train '%s'", cfg);
    snprintf(cmd, sizeof cmd, "LORAFIT_FAULT=stop:step:3 exec " MPIRUN " -np 2 '%s' %s",
             test_lorafit_bin(), args);
    snprintf(log_path, sizeof log_path, "%s/killed.txt", dir);
    pid_t mpirun = spawn_command(cmd, log_path), ranks[2];
    wait_ranks_stopped(mpirun, ranks, 2, 60);
    kill(mpirun, SIGKILL);
    ck_assert_int_eq(wait_bounded(mpirun, 10, "mpirun after SIGKILL"), 128 + SIGKILL);
    wait_gone(ranks, 2, 10, "after mpirun was killed");
    snprintf(args, sizeof args, "train '%s' --resume", cfg);
    mpi_expect(dir, 2, args, 0);
    char *log = tt_log(dir), needle[4400];
    snprintf(needle, sizeof needle, "resuming from %s/out/checkpoint-2 (step 2)", dir);
    ck_assert_msg(strstr(log, needle) != NULL, "expected '%s' in:\n%s", needle, log);
    free(log);
    assert_same_run(ref, dir, "resumed after mpirun was killed");
    free(cfg);
    test_rmtree(ref);
    test_rmtree(dir);
    free(ref);
    free(dir);
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
    char cmd[16384], args[4400], log_path[4200];
    snprintf(args, sizeof args, "train '%s'", cfg);
    snprintf(cmd, sizeof cmd, "LORAFIT_FAULT=stop:step:3 exec " MPIRUN " -np 2 '%s' %s",
             test_lorafit_bin(), args);
    snprintf(log_path, sizeof log_path, "%s/stopped.txt", dir);
    pid_t mpirun = spawn_command(cmd, log_path), ranks[2];
    wait_ranks_stopped(mpirun, ranks, 2, 60);
    kill(mpirun, SIGUSR1);
    for (long ms = 0; !(signal_pending(ranks[0], SIGUSR1) && signal_pending(ranks[1], SIGUSR1));
         ms += 10) {
        ck_assert_msg(ms < 10000, "mpirun did not forward SIGUSR1 within 10 s");
        usleep(10000);
    }
    kill(ranks[0], SIGCONT);
    kill(ranks[1], SIGCONT);
    int code = wait_bounded(mpirun, 60, "the stopped job");
    char *log = test_read_file(log_path, NULL);
    ck_assert_msg(code == 130, "mpirun exit %d after SIGUSR1:\n%s", code, log);
    ck_assert_msg(count_of(log, "stopped by signal after step 3; checkpoint saved") == 1,
                  "expected one word of the checkpoint:\n%s", log);
    free(log);
    snprintf(args, sizeof args, "train '%s' --resume", cfg);
    mpi_expect(dir, 2, args, 0);
    log = tt_log(dir);
    char needle[4400];
    snprintf(needle, sizeof needle, "resuming from %s/out/checkpoint-3 (step 3)", dir);
    ck_assert_msg(strstr(log, needle) != NULL, "expected '%s' in:\n%s", needle, log);
    free(log);
    assert_same_run(ref, dir, "resumed after SIGUSR1");
    free(cfg);
    test_rmtree(ref);
    test_rmtree(dir);
    free(ref);
    free(dir);
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
    int code = wait_bounded(spawn_command(cmd, log_path), 10, "the job with a bad record");
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
    int code = wait_bounded(spawn_command(cmd, log_path), 60, "the job with a failed write");
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

START_TEST(test_ranks_given_different_configs_refuse_to_start) {
    NEED_MPIRUN();
    TEST_NEED_SHARED(shared);
    char *dir = test_tmpdir();
    char *cfg = write_job(dir, shared);
    char cmd[16384];
    snprintf(cmd, sizeof cmd,
             "exec " MPIRUN " -np 1 '%s' train '%s' : -np 1 '%s' train '%s' --set train.lr=1e-3",
             test_lorafit_bin(), cfg, test_lorafit_bin(), cfg);
    int code = run_logged(dir, cmd, "log.txt");
    char *log = tt_log(dir);
    ck_assert_msg(code == 2, "exit %d, expected 2:\n%s", code, log);
    ck_assert_msg(count_of(log, "rank 1 of 2: the config differs from rank 0's in train.lr") == 1,
                  "expected rank 1's refusal once:\n%s", log);
    free(log);
    free(cfg);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* The rank count decides each step's rows, so a checkpoint resumes only on its own. */
START_TEST(test_resume_with_another_rank_count_is_refused) {
    NEED_MPIRUN();
    TEST_NEED_SHARED(shared);
    char *two = test_tmpdir(), *one = test_tmpdir(), args[4400];
    char *cfg_two = write_job(two, shared), *cfg_one = write_job(one, shared);
    snprintf(args, sizeof args, "train '%s' --set train.max_steps=2", cfg_two);
    mpi_expect(two, 2, args, 0);
    snprintf(args, sizeof args, "train '%s' --resume --set train.max_steps=4", cfg_two);
    tt_expect(two, args, 2, "trained on 2 ranks and this run has 1");
    tt_expect(two, args, 2, "resume it with mpirun -np 2");

    snprintf(args, sizeof args, "train '%s' --set train.max_steps=2", cfg_one);
    tt_expect(one, args, 0, NULL);
    snprintf(args, sizeof args, "train '%s' --resume --set train.max_steps=4", cfg_one);
    mpi_expect(one, 2, args, 2);
    char *log = tt_log(one);
    ck_assert_msg(count_of(log, "trained on 1 rank and this run has 2; resume it without mpirun") ==
                      1,
                  "expected the refusal once:\n%s", log);
    free(log);
    free(cfg_two);
    free(cfg_one);
    test_rmtree(two);
    test_rmtree(one);
    free(two);
    free(one);
}
END_TEST

/* ---- eval ------------------------------------------------------------------------------ */

static double eval_loss_of(const char *log, int64_t *tokens) {
    const char *p = strstr(log, "{\"eval_loss\": ");
    ck_assert_msg(p != NULL, "no eval line in:\n%s", log);
    double loss = 0;
    long long n = 0;
    ck_assert(sscanf(p, "{\"eval_loss\": %lf, \"eval_tokens\": %lld", &loss, &n) == 2);
    *tokens = n;
    return loss;
}

START_TEST(test_eval_on_two_ranks_reports_the_loss_of_one_process) {
    NEED_MPIRUN();
    TEST_NEED_SHARED(shared);
    char *dir = test_tmpdir();
    char *cfg = write_job(dir, shared), args[4400];
    snprintf(args, sizeof args, "eval '%s' --set eval.max_batches=0", cfg);
    tt_expect(dir, args, 0, NULL);
    char *log = tt_log(dir);
    int64_t tokens_one, tokens_two;
    double one = eval_loss_of(log, &tokens_one);
    free(log);
    mpi_expect(dir, 2, args, 0);
    log = tt_log(dir);
    double two = eval_loss_of(log, &tokens_two);
    ck_assert_msg(count_of(log, "eval_loss") == 1, "one line expected:\n%s", log);
    free(log);
    ck_assert_int_eq(tokens_one, tokens_two);
    ck_assert_msg(fabs(one - two) <= 1e-6 * one, "eval loss %.9g (1 process) vs %.9g", one, two);
    free(cfg);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- a plain run ---------------------------------------------------------------------- */

/* Without a launcher nothing of MPI runs: in this process, ranks_init leaves MPI alone and
 * every collective is the identity; and a plain lorafit leaves no OpenMPI session directory
 * in its TMPDIR (MPI_Init would create one, as the mpirun control run shows). */
START_TEST(test_a_plain_run_never_starts_mpi) {
    NEED_MPIRUN();
    TEST_NEED_SHARED(shared);
    static const char *const marks[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK"};
    for (int i = 0; i < 3; i++) unsetenv(marks[i]);
    char err[256] = "untouched";
    ck_assert_int_eq(ranks_init(err, sizeof err), 0);
    ck_assert(!ranks_launched());
    ck_assert_int_eq(ranks_size(), 1);
    ck_assert_int_eq(ranks_rank(), 0);
    RankVote v = {.status = 2, .stop = true, .same = 5, .count = 7, .value = 0.25};
    ranks_vote(&v, err, sizeof err);
    ck_assert(v.status == 2 && v.failed_rank == 0 && v.stop && v.same == 5 && !v.differ);
    ck_assert(v.count == 7 && v.value == 0.25 && strcmp(err, "untouched") == 0);
    float x[3] = {1.5f, -2.0f, 3.25f};
    ranks_sum_floats(x, 3, NULL);
    ck_assert(x[0] == 1.5f && x[1] == -2.0f && x[2] == 3.25f);
    ck_assert(!ranks_stop_requested());
    ranks_finalize();

    char *dir = test_tmpdir();
    char *cfg = write_job(dir, shared), cmd[32768], probe[4200];
    snprintf(probe, sizeof probe, "%s/tmp", dir);
    ck_assert_int_eq(mkdir(probe, 0755), 0);
    snprintf(
        cmd, sizeof cmd,
        "{ TMPDIR='%s' '%s' train '%s' --set train.max_steps=2 && TMPDIR='%s' '%s' eval '%s'; }",
        probe, test_lorafit_bin(), cfg, probe, test_lorafit_bin(), cfg);
    ck_assert_int_eq(run_logged(dir, cmd, "plain.txt"), 0);
    snprintf(cmd, sizeof cmd, "ls -A '%s' | grep -q '^ompi'", probe);
    ck_assert_msg(test_run(cmd, NULL) != 0, "a plain run left an OpenMPI session in %s", probe);
    char plain_log[4200];
    snprintf(plain_log, sizeof plain_log, "%s/plain.txt", dir);
    char *log = test_read_file(plain_log, NULL);
    ck_assert_msg(strstr(log, "ranks") == NULL, "a plain run spoke of ranks:\n%s", log);
    free(log);
    /* The control: a run under mpirun does leave its session there while it runs. */
    snprintf(cmd, sizeof cmd,
             "TMPDIR='%s' " MPIRUN " -np 1 sh -c 'ls -A \"$TMPDIR\" | grep -q ^ompi'", probe);
    ck_assert_msg(test_run(cmd, NULL) == 0, "the probe cannot see an MPI session in %s", probe);
    free(cfg);
    test_rmtree(dir);
    free(dir);
}
END_TEST

Suite *mpi_suite(void) {
    Suite *s = suite_create("mpi");
    TCase *tc = tcase_create("mpi");
    tcase_add_test(tc, test_two_ranks_train_what_one_process_trains_with_twice_the_batch);
    tcase_add_test(tc, test_two_rank_runs_are_byte_identical);
    tcase_add_test(tc, test_a_rank_killed_mid_run_resumes_byte_identical);
    tcase_add_test(tc, test_a_killed_mpirun_takes_its_ranks_and_the_job_resumes_byte_identical);
    tcase_add_test(tc, test_sigusr1_to_mpirun_saves_a_checkpoint_and_exits_130);
    tcase_add_test(tc, test_a_bad_record_stops_every_rank_with_its_line_printed_once);
    tcase_add_test(tc, test_a_failure_on_one_rank_stops_the_job_and_names_the_rank);
    tcase_add_test(tc, test_ranks_given_different_configs_refuse_to_start);
    tcase_add_test(tc, test_resume_with_another_rank_count_is_refused);
    tcase_add_test(tc, test_eval_on_two_ranks_reports_the_loss_of_one_process);
    tcase_add_test(tc, test_a_plain_run_never_starts_mpi);
    suite_add_tcase(s, tc);
    return s;
}
