/* tests/test_mpi_util.c — see test_mpi_util.h. */
#include "tests/test_mpi_util.h"

#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/test_train_util.h"
#include "tests/test_util.h"

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

int have_mpirun(const char *test) {
    suppress_openmpi_leaks();
    if (test_run("command -v mpirun >/dev/null 2>&1", NULL) == 0) return 1;
    if (test_in_ci()) ck_abort_msg("%s: mpirun is missing (needed in CI)", test);
    test_skip(test, "mpirun is not installed (tools/install-deps installs openmpi-bin)");
    return 0;
}
/* The job: stories260K on TinyStories with packing, shuffling, accumulation, a validation
 * set, checkpoints every 2 steps; 2 rows per rank and one thread, as all tests here use. */
char *write_job(const char *dir, const char *shared) {
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
void mpi_command(char *cmd, size_t len, int np, const char *args) {
    snprintf(cmd, len, "exec " MPIRUN " -np %d '%s' %s", np, test_lorafit_bin(), args);
}

/* Runs the command in the foreground, output to DIR/NAME; the exit code. */
int run_logged(const char *dir, const char *cmd, const char *name) {
    char log[4200];
    snprintf(log, sizeof log, "%s/%s", dir, name);
    return test_run(cmd, log);
}

/* `mpirun -np NP lorafit ARGS` in DIR's log.txt; fails the test unless it exits want_rc. */
void mpi_expect(const char *dir, int np, const char *args, int want_rc) {
    char cmd[16384];
    mpi_command(cmd, sizeof cmd, np, args);
    int rc = run_logged(dir, cmd, "log.txt");
    char *log = tt_log(dir);
    ck_assert_msg(rc == want_rc, "%s: exit %d, expected %d:\n%s", cmd, rc, want_rc, log);
    free(log);
}

/* sh -c CMD in the background, output to log_path; the shell execs, so the pid is the
 * command's own (mpirun's). */
pid_t spawn_command(const char *cmd, const char *log_path) {
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

int count_of(const char *text, const char *needle) {
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle)) n++;
    return n;
}

void adapter_path(char *out, size_t len, const char *dir) {
    snprintf(out, len, "%s/out/adapter/adapter_model.safetensors", dir);
}

/* A reference: the job, uninterrupted, on 2 ranks in a fresh directory. */
char *reference_run(const char *shared) {
    char *ref = test_tmpdir(), args[4400];
    char *cfg = write_job(ref, shared);
    snprintf(args, sizeof args, "train '%s'", cfg);
    mpi_expect(ref, 2, args, 0);
    free(cfg);
    return ref;
}

/* A job on the fixture's model (packing, dropout, all-linear): DIR/job.yaml. */
static char *write_fixture_job(const char *dir, const char *model, const char *rows) {
    char extra[8192];
    snprintf(extra, sizeof extra,
             "lora:\n  r: 4\n  alpha: 8\n  dropout: 0.1\n  target_modules: all-linear\n"
             "data:\n  train: %s\n  seq_len: 32\n  packing: true\n  shuffle: false\n"
             "train:\n  batch_size: 2\n  max_steps: 3\n  lr: 1.0e-2\n  precision: f32\n"
             "  threads: 1\n  seed: 3\n",
             rows);
    return tt_write_config(dir, model, extra);
}

void check_fixture_two_ranks(const char *fixture, int vocab) {
    char *one = test_tmpdir(), *two = test_tmpdir(), rows[4400], args[4400], rel_model[256];
    snprintf(rel_model, sizeof rel_model, "tests/data/train/%s/model", fixture);
    char *model = tt_repo_path(rel_model);
    snprintf(rows, sizeof rows, "%s/rows.jsonl", one);
    tt_random_rows(rows, 48, 3, 30, vocab, 29);
    char *cfg_one = write_fixture_job(one, model, rows),
         *cfg_two = write_fixture_job(two, model, rows);
    snprintf(args, sizeof args, "train '%s' --set train.batch_size=4", cfg_one);
    tt_expect(one, args, 0, NULL);
    snprintf(args, sizeof args, "train '%s'", cfg_two);
    mpi_expect(two, 2, args, 0);
    char out_one[4200], out_two[4200];
    snprintf(out_one, sizeof out_one, "%s/out", one);
    snprintf(out_two, sizeof out_two, "%s/out", two);
    json_t *ma = tt_metrics(out_one), *mb = tt_metrics(out_two);
    ck_assert_int_eq((int)json_array_size(ma), 3);
    ck_assert_int_eq((int)json_array_size(mb), 3);
    for (size_t i = 0; i < 3; i++) {
        static const char *const keys[] = {"loss", "grad_norm"};
        static const double later[] = {5e-3, 2e-2};
        for (int k = 0; k < 2; k++) {
            double x = json_number_value(json_object_get(json_array_get(ma, i), keys[k]));
            double y = json_number_value(json_object_get(json_array_get(mb, i), keys[k]));
            double tol = i == 0 ? 1e-6 : later[k];
            ck_assert_msg(x > 0 && fabs(x - y) <= tol * x,
                          "%s step %zu %s: %.9g (1 process) vs %.9g", fixture, i + 1, keys[k], x,
                          y);
        }
        ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(ma, i), "tokens")),
                         json_integer_value(json_object_get(json_array_get(mb, i), "tokens")));
    }
    char a[4400], b[4400];
    adapter_path(a, sizeof a, two);
    adapter_path(b, sizeof b, one);
    double rel = tt_adapter_rel_diff(a, b, "");
    ck_assert_msg(rel < 0.1, "%s: adapters differ by %.3g", fixture, rel);
    json_decref(ma);
    json_decref(mb);
    free(cfg_one);
    free(cfg_two);
    free(model);
    test_rmtree(one);
    test_rmtree(two);
    free(one);
    free(two);
}
