/* tests/test_train_resume.c — checkpoints a user can trust: a run killed at any instant and
 * resumed ends bit-identical to an uninterrupted one; SIGINT saves and exits 130; resuming
 * with a config that would change the result is refused with the keys named. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tests/test_train_util.h"
#include "tests/test_util.h"
#include "trainer/manifest.h"

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

static json_t *stripped_metrics(const char *dir) {
    char out[4200];
    snprintf(out, sizeof out, "%s/out", dir);
    json_t *m = tt_metrics(out);
    tt_strip_timing(m);
    return m;
}

START_TEST(test_resume_after_kill_is_bit_identical) {
    char *ref = test_tmpdir(), *cut = test_tmpdir();
    char *ref_cfg = write_resume_config(ref, 24, 2);
    char *cut_cfg = write_resume_config(cut, 24, 2);
    char args[4400];
    snprintf(args, sizeof args, "train '%s'", ref_cfg);
    int rc = tt_lorafit(ref, args);
    char *log = tt_log(ref);
    ck_assert_msg(rc == 0, "uninterrupted run failed (%d):\n%s", rc, log);
    free(log);

    /* Kill the job with SIGKILL at pseudo-random moments, checkpoint writing included, and
     * start it again with the same command line each time, as a preempted job would be. */
    uint64_t rng = 2024;
    char log_path[4200];
    snprintf(log_path, sizeof log_path, "%s/log.txt", cut);
    const char *argv[] = {"train", cut_cfg, "--resume", NULL};
    int kills = 0, finished = 0;
    for (int attempt = 0; attempt < 60 && !finished; attempt++) {
        pid_t pid = tt_spawn(argv, log_path);
        struct timespec ts = {0, (long)(test_rand_u64(&rng) % 60000000ull)};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int code = tt_wait(pid);
        if (code == 128 + SIGKILL)
            kills++;
        else {
            log = test_read_file(log_path, NULL);
            ck_assert_msg(code == 0, "resumed run failed (%d):\n%s", code, log);
            free(log);
            finished = 1;
        }
    }
    if (!finished) {
        pid_t pid = tt_spawn(argv, log_path);
        ck_assert_int_eq(tt_wait(pid), 0);
    }
    ck_assert_msg(kills >= 3, "only %d runs were killed before finishing", kills);

    char a[4400], b[4400];
    snprintf(a, sizeof a, "%s/out/adapter/adapter_model.safetensors", ref);
    snprintf(b, sizeof b, "%s/out/adapter/adapter_model.safetensors", cut);
    ck_assert_msg(tt_same_bytes(a, b), "the resumed adapter differs from the uninterrupted one");
    json_t *ma = stripped_metrics(ref), *mb = stripped_metrics(cut);
    char *ta = json_dumps(ma, JSON_SORT_KEYS), *tb = json_dumps(mb, JSON_SORT_KEYS);
    ck_assert_msg(strcmp(ta, tb) == 0, "metrics differ:\n%s\nvs\n%s", ta, tb);
    free(ta);
    free(tb);
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
    char log_path[4200], metrics[4200];
    snprintf(log_path, sizeof log_path, "%s/log.txt", dir);
    snprintf(metrics, sizeof metrics, "%s/out/metrics.jsonl", dir);
    const char *argv[] = {"train", cfg, NULL};
    pid_t pid = tt_spawn(argv, log_path);
    for (int i = 0; i < 2000; i++) { /* until the first metrics line (at most 20 s) */
        size_t len = 0;
        char *m = test_read_file(metrics, &len);
        free(m);
        if (len > 0) break;
        usleep(10000);
    }
    kill(pid, SIGINT);
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
    ck_assert_int_ge(step, 3);
    /* The saved checkpoint resumes: finish two steps later (max_steps may change). */
    char args[4400];
    snprintf(args, sizeof args, "train '%s' --resume --set train.max_steps=%lld", cfg,
             (long long)step + 2);
    tt_expect(dir, args, 0, "resuming from");
    free(cfg);
    test_rmtree(dir);
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
    char *before = test_read_file(final_a, NULL);
    /* --resume DIR from step 6 recomputes steps 7 and 8 identically. */
    snprintf(args, sizeof args, "train '%s' --resume '%s/checkpoint-6'", cfg, out);
    tt_expect(dir, args, 0, "step 6");
    size_t len;
    char *after = test_read_file(final_a, &len);
    ck_assert(after && before && memcmp(before, after, len) == 0);
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
    tcase_add_test(tc, test_resume_after_kill_is_bit_identical);
    tcase_add_test(tc, test_sigint_saves_a_checkpoint_and_exits_130);
    tcase_add_test(tc, test_resume_refuses_a_config_that_changes_the_result);
    tcase_add_test(tc, test_resume_starts_fresh_without_checkpoint_and_finished_run_exits_0);
    tcase_add_test(tc, test_resume_from_a_named_checkpoint_and_keep_prunes_old_ones);
    suite_add_tcase(s, tc);
    return s;
}
