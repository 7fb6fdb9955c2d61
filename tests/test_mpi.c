/* tests/test_mpi.c — one job on two ranks (`mpirun -np 2 lorafit train`): the rows and the
 * result of a 1-process run with twice the batch, byte-identical reruns, ranks that refuse
 * another job or another rank count, eval shared out, and a plain run that never starts
 * MPI. Kills, signals and failures are in test_mpi_faults.c.
 *
 * Each test is skipped by name when mpirun is missing (and fails under CI, where
 * tools/install-deps has installed it). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/test_mpi_util.h"
#include "tests/test_train_util.h"
#include "tests/test_util.h"
#include "trainer/train/train.h"

/* ---- the result of one process with twice the batch --------------------------------- */

/* np 2 with batch_size 2 against one process with batch_size 4, `extra` --set on both. */
static void check_two_ranks_match_one_process(const char *shared, const char *extra) {
    char *one = test_tmpdir(), *two = test_tmpdir(), args[4400];
    char *cfg_one = write_job(one, shared), *cfg_two = write_job(two, shared);
    snprintf(args, sizeof args, "train '%s' --set train.batch_size=4%s", cfg_one, extra);
    tt_expect(one, args, 0, NULL);
    snprintf(args, sizeof args, "train '%s'%s", cfg_two, extra);
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
    /* The first step runs on the same weights in both: only the order of the gradient's
     * sums differs (1e-9 measured). After it, Adam turns last-bit differences into whole
     * updates: at a weight whose gradient nearly cancels (~1e-8, and every lora_A entry at its
     * first update, while B was still 0) the sign of a rounding error picks +lr or -lr. How
     * many weights that hits depends on the machine's kernels (OpenBLAS sizes its blocks by
     * the caches): measured on an AMD EPYC Zen 4, the later lines differ by up to 2e-4 (loss),
     * 4e-4 (eval_loss) and 2e-3 (grad_norm), the adapters' tensors by 1.1-1.3%; as much as a
     * single process differs from itself with batch 2 x grad_accum 4 instead of 4 x 2 (the
     * same rows, summed in another order). An Intel Emerald Rapids VM had them within 1e-5.
     * A rank on other rows, or one that skipped an update, moves these by percents. */
    int losses = 0, evals = 0;
    for (size_t i = 0; i < json_array_size(ma); i++) {
        json_t *a = json_array_get(ma, i), *b = json_array_get(mb, i);
        ck_assert_int_eq(json_integer_value(json_object_get(a, "step")),
                         json_integer_value(json_object_get(b, "step")));
        static const char *const keys[] = {"loss", "eval_loss", "grad_norm"};
        static const double later[] = {5e-3, 5e-3, 2e-2};
        for (int k = 0; k < 3; k++) {
            json_t *va = json_object_get(a, keys[k]), *vb = json_object_get(b, keys[k]);
            ck_assert((va == NULL) == (vb == NULL));
            if (!va) continue;
            double x = json_number_value(va), y = json_number_value(vb);
            double tol = i == 0 ? 1e-6 : later[k];
            ck_assert_msg(fabs(x - y) <= tol * fabs(x), "line %zu %s: %.9g (1 process) vs %.9g",
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
    char a[4400], b[4400];
    adapter_path(a, sizeof a, two);
    adapter_path(b, sizeof b, one);
    double rel = tt_adapter_rel_diff(a, b, "");
    ck_assert_msg(rel < 0.1, "adapters differ by %.3g", rel);
    json_decref(ma);
    json_decref(mb);
    free(cfg_one);
    free(cfg_two);
    test_rmtree(one);
    test_rmtree(two);
    free(one);
    free(two);
}

START_TEST(test_two_ranks_train_what_one_process_trains_with_twice_the_batch) {
    NEED_MPIRUN();
    TEST_NEED_SHARED(shared);
    check_two_ranks_match_one_process(shared, "");
    /* LoRA dropout too: each rank's masks are those of its rows in the 1-process batch */
    check_two_ranks_match_one_process(shared, " --set lora.dropout=0.1");
    /* a base quantized at load: each rank quantizes its own copy to the same blocks */
    check_two_ranks_match_one_process(shared, " --set model.quantize=q4_k");
}
END_TEST

/* Qwen3 (q/k norms, head_dim 16 != hidden / heads) and Phi-3 (the fused qkv_proj and
 * gate_up_proj, a window of 5 in the packed sequences of 32) as Gemma 3 is in test_gemma3.c. */
START_TEST(test_two_ranks_train_qwen3_and_phi3_as_one_process_with_twice_the_batch) {
    NEED_MPIRUN();
    check_fixture_two_ranks("qwen3-untied", 320);
    check_fixture_two_ranks("phi3-window", 320);
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

/* ---- preference tuning ------------------------------------------------------------------ */

/* DIR/job.yaml: the preference fixture's first 21 pairs (19 kept at seq_len 40), so the
 * last micro-batch has 1 pair of 4 and rank 1 none of it; LoRA from the fixture's adapter,
 * shuffled, validation on the same pairs, 3 steps of 2 micro-batches. */
static char *write_preference_job(const char *dir, const char *shared, const char *objective,
                                  const char *extra) {
    char *pairs = tt_repo_path("tests/data/preference/train.jsonl");
    char *init = tt_repo_path("tests/data/preference/init_adapter");
    char cmd[8800], cfg[16384];
    snprintf(cmd, sizeof cmd, "head -n 21 '%s' > '%s/pairs.jsonl'", pairs, dir);
    ck_assert_int_eq(test_run(cmd, NULL), 0);
    snprintf(cfg, sizeof cfg,
             "model:\n  path: %s/models/stories260K\n"
             "lora:\n  r: 4\n  alpha: 8\n  init_from: %s\n"
             "data:\n  train: %s/pairs.jsonl\n  valid: %s/pairs.jsonl\n  seq_len: 40\n"
             "  shuffle: true\n  shuffle_buffer: 8\n"
             "train:\n  objective: %s\n  batch_size: 2\n  grad_accum: 2\n  max_steps: 3\n"
             "  lr: 0.01\n  lr_scheduler: constant\n  precision: f32\n  threads: 1\n  seed: 5\n"
             "output:\n  dir: out\n  save_every: 0\n"
             "log:\n  every: 1\n"
             "eval:\n  every: 2\n%s",
             shared, init, dir, dir, objective, extra);
    free(pairs);
    free(init);
    return tt_write_text(dir, "job.yaml", cfg);
}

/* Every number of two metrics lines: integers equal, the rest within tol relative (an exact
 * 0 within 1e-12: the rewards of step 1, where the policy is its reference). */
static int check_same_numbers(json_t *a, json_t *b, double tol, size_t line) {
    const char *key;
    json_t *va;
    int n = 0;
    ck_assert_int_eq((int)json_object_size(a), (int)json_object_size(b));
    json_object_foreach(a, key, va) {
        json_t *vb = json_object_get(b, key);
        ck_assert_msg(vb != NULL, "line %zu: %s only in the 1-process run", line, key);
        if (json_is_integer(va)) {
            ck_assert_msg(json_integer_value(va) == json_integer_value(vb), "line %zu %s", line,
                          key);
            continue;
        }
        double x = json_number_value(va), y = json_number_value(vb);
        double bound = x == 0 ? 1e-12 : tol * fabs(x);
        ck_assert_msg(fabs(x - y) <= bound, "line %zu %s: %.12g (1 process) vs %.12g", line, key, x,
                      y);
        n++;
    }
    return n;
}

/* np 2 with batch_size 2 against one process with batch_size 4: every metric of every line
 * (the preference metrics, eval's too), the adapter after 3 steps, and lorafit eval. Not
 * bit-identical: a rank's forward pass runs on its 4 rows instead of 8 and its gradient sums its
 * rows before the ranks' parts are added, so the floats are summed in another order; measured on an
 * AMD EPYC (OpenBLAS SkylakeX kernels) the first step's numbers agree to 3e-8, later ones to 7e-5
 * (a reward is beta times a difference of log-probabilities near -100), the adapters to 2e-6.
 * The bounds leave room for other kernels; a pair on the wrong rank, its rows split, or a
 * mean over a rank's pairs instead of the micro-batch's moves these by percents. */
static void check_preference_two_ranks(const char *shared, const char *objective, const char *extra,
                                       const char *sets) {
    char *one = test_tmpdir(), *two = test_tmpdir(), args[4400];
    char *cfg_one = write_preference_job(one, shared, objective, extra);
    char *cfg_two = write_preference_job(two, shared, objective, extra);
    snprintf(args, sizeof args, "train '%s' --set train.batch_size=4%s", cfg_one, sets);
    tt_expect(one, args, 0, NULL);
    snprintf(args, sizeof args, "train '%s'%s", cfg_two, sets);
    mpi_expect(two, 2, args, 0);
    json_t *ma = tt_stripped_metrics(one), *mb = tt_stripped_metrics(two);
    ck_assert_int_eq((int)json_array_size(ma), 5); /* 3 steps, 2 evaluations */
    ck_assert_int_eq((int)json_array_size(mb), 5);
    int numbers = 0;
    for (size_t i = 0; i < json_array_size(ma); i++)
        numbers += check_same_numbers(json_array_get(ma, i), json_array_get(mb, i),
                                      i == 0 ? 1e-6 : 1e-3, i + 1);
    ck_assert_int_ge(numbers, 5 * 7);
    ck_assert(json_object_get(json_array_get(ma, 2), "eval_rewards/accuracies") != NULL);
    char a[4400], b[4400];
    adapter_path(a, sizeof a, two);
    adapter_path(b, sizeof b, one);
    double rel = tt_adapter_rel_diff(a, b, "");
    ck_assert_msg(rel < 1e-4, "%s%s: adapters differ by %.3g", objective, extra, rel);
    /* lorafit eval of one adapter: 2 ranks report what one process with twice the batch
     * does (the same weights: only the order of the sums differs) */
    snprintf(args, sizeof args, "eval '%s' --adapter '%s/out/adapter' --set train.batch_size=4",
             cfg_one, one);
    char *line_one = tt_run_stdout(one, args);
    snprintf(args, sizeof args, "eval '%s' --adapter '%s/out/adapter'", cfg_two, one);
    mpi_expect(two, 2, args, 0);
    char *log = tt_log(two), *at = strstr(log, "{\"eval_loss\"");
    ck_assert_msg(at != NULL, "no eval line:\n%s", log);
    json_error_t je;
    json_t *ea = json_loads(line_one, 0, &je), *eb = json_loadb(at, strcspn(at, "\n"), 0, &je);
    ck_assert_msg(ea && eb, "eval lines: %s / %s", line_one, at);
    json_object_del(ea, "data");
    json_object_del(eb, "data");
    ck_assert_int_ge(check_same_numbers(ea, eb, 1e-6, 0), 7);
    json_decref(ea);
    json_decref(eb);
    free(line_one);
    free(log);
    json_decref(ma);
    json_decref(mb);
    free(cfg_one);
    free(cfg_two);
    test_rmtree(one);
    test_rmtree(two);
    free(one);
    free(two);
}

START_TEST(test_two_ranks_train_dpo_and_orpo_as_one_process_with_twice_the_batch) {
    NEED_MPIRUN();
    TEST_NEED_SHARED(shared);
    check_preference_two_ranks(shared, "dpo", "", "");
    check_preference_two_ranks(shared, "dpo", "dpo:\n  precompute_ref_log_probs: true\n", "");
    check_preference_two_ranks(shared, "orpo", "", "");
    /* LoRA dropout: each rank's chosen and rejected rows draw their 1-process masks */
    check_preference_two_ranks(shared, "dpo", "", " --set lora.dropout=0.25");
}
END_TEST

/* A 2-rank DPO run stopped after 2 steps and resumed ends byte-identical to one that ran
 * through (precomputed reference log-probabilities, recomputed on the resume). */
START_TEST(test_two_rank_dpo_resumes_exactly) {
    NEED_MPIRUN();
    TEST_NEED_SHARED(shared);
    const char *extra = "dpo:\n  precompute_ref_log_probs: true\n";
    char *ref = test_tmpdir(), *cut = test_tmpdir(), args[4400];
    char *cfg_ref = write_preference_job(ref, shared, "dpo", extra);
    char *cfg_cut = write_preference_job(cut, shared, "dpo", extra);
    snprintf(args, sizeof args, "train '%s'", cfg_ref);
    mpi_expect(ref, 2, args, 0);
    snprintf(args, sizeof args, "train '%s' --set train.max_steps=2 --set output.save_every=2",
             cfg_cut);
    mpi_expect(cut, 2, args, 0);
    snprintf(args, sizeof args, "train '%s' --resume", cfg_cut);
    mpi_expect(cut, 2, args, 0);
    tt_assert_same_run(ref, cut, "the resumed 2-rank DPO run");
    free(cfg_ref);
    free(cfg_cut);
    test_rmtree(ref);
    test_rmtree(cut);
    free(ref);
    free(cut);
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

START_TEST(test_two_rank_runs_are_byte_identical) {
    NEED_MPIRUN();
    TEST_NEED_SHARED(shared);
    char *ref = reference_run(shared), *again = reference_run(shared);
    tt_assert_same_run(ref, again, "a second run");
    test_rmtree(ref);
    test_rmtree(again);
    free(ref);
    free(again);
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
    tcase_add_test(tc, test_two_ranks_train_qwen3_and_phi3_as_one_process_with_twice_the_batch);
    tcase_add_test(tc, test_two_rank_runs_are_byte_identical);
    tcase_add_test(tc, test_two_ranks_train_dpo_and_orpo_as_one_process_with_twice_the_batch);
    tcase_add_test(tc, test_two_rank_dpo_resumes_exactly);
    tcase_add_test(tc, test_ranks_given_different_configs_refuse_to_start);
    tcase_add_test(tc, test_resume_with_another_rank_count_is_refused);
    tcase_add_test(tc, test_eval_on_two_ranks_reports_the_loss_of_one_process);
    tcase_add_test(tc, test_a_plain_run_never_starts_mpi);
    suite_add_tcase(s, tc);
    return s;
}
