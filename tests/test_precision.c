/* tests/test_precision.c — train.precision: bf16 matrix products close enough to the float64
 * reference to train with, deterministic and resumable; auto resolving by the CPU (forced
 * either way with LORAFIT_CPU_BF16) and saying what it chose.
 *
 * On a CPU without native bf16 the bf16 path is the emulation (bf16-rounded inputs, f32
 * accumulation); on one with AMX-BF16 or AVX512-BF16 it is oneDNN. Both are held to the
 * same bounds here. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/tensor.h"
#include "tests/test_train_util.h"
#include "tests/test_util.h"
#include "trainer/model/model.h"
#include "trainer/store/store.h"

/* The first step of a fixture in bf16 precision, as training runs it (the fused lm_head and
 * loss): its loss within 5e-3 relative of the float64 reference, and all LoRA gradients
 * together within 0.15 (norm of the difference over the norm). For scale: rounding the
 * inputs of the frozen products to bf16 in a float64 emulation gives 2.2e-3 and 0.076 on
 * stories260K. The gradient must also differ from f32's by more than f32 rounding, or the
 * bf16 path did not run. A fixture whose gradients bf16 weights alone move further (Qwen3.5's:
 * the gated RMSNorm of small DeltaNet outputs amplifies any change of in_proj_qkv) says so in
 * fixture.json (bf16_weight_rounding_grad_rel: the float64 reference with its weight matrices
 * rounded to bf16); the bound is then 1.5 times that. */
static double bf16_gradient_bound(const char *fx) {
    char path[4200];
    snprintf(path, sizeof path, "%s/fixture.json", fx);
    json_t *root = json_load_file(path, 0, NULL);
    double floor = json_number_value(json_object_get(root, "bf16_weight_rounding_grad_rel"));
    json_decref(root);
    return fmax(0.15, 1.5 * floor);
}

static void check_bf16_first_step(const char *model_dir, const char *fx) {
    char path[4096], err[1024];
    Model *m = model_load_dtype(model_dir, MODEL_BF16, err, sizeof err);
    ck_assert_msg(m != NULL, "%s", err);
    TtFixture f;
    tt_fixture_load(fx, m, &f);
    Lora *lora = f.lora;
    int batch = f.batch, seq = f.seq;
    int32_t *ids = f.ids, *targets = f.targets;
    double loss_ref = f.loss_ref;

    Graph *g = graph_create();
    ck_assert_int_eq(graph_set_precision(g, TENSOR_PRECISION_BF16), 0);
    Tensor *hidden = model_forward_hidden(m, lora, g, ids, NULL, NULL, batch, seq, 1);
    int64_t count = 0;
    Tensor *loss = op_lm_head_cross_entropy(g, hidden, model_lm_head(m), targets, &count);
    ck_assert_msg(loss != NULL && count > 0, "%s", graph_error(g));
    ck_assert_int_eq(graph_backward(g, loss, 1.0f / (float)count), 0);
    double mean = (double)loss->data[0] / (double)count;
    ck_assert_msg(fabs(mean - loss_ref) <= 5e-3 * fabs(loss_ref), "%s: bf16 loss %.8f vs %.8f", fx,
                  mean, loss_ref);

    snprintf(path, sizeof path, "%s/expected.safetensors", fx);
    SafeTensors *ex = st_open(path, err, sizeof err);
    ck_assert_msg(ex != NULL, "%s", err);
    double d2 = 0, r2 = 0;
    for (int k = 0; k < lora_count(lora); k++) {
        const char *name;
        Tensor *p = lora_tensor(lora, k, &name);
        char key[256];
        snprintf(key, sizeof key, "grad.%s", name);
        float *gref = tt_expected_floats(ex, key, p->size);
        for (int64_t e = 0; e < p->size; e++) {
            d2 += ((double)p->grad[e] - gref[e]) * ((double)p->grad[e] - gref[e]);
            r2 += (double)gref[e] * gref[e];
        }
        free(gref);
    }
    double rel = sqrt(d2 / r2), bound = bf16_gradient_bound(fx);
    ck_assert_msg(rel <= bound, "%s: bf16 LoRA gradient off by %.4f of its norm (bound %.3f)", fx,
                  rel, bound);
    ck_assert_msg(rel > 1e-4, "%s: the gradient is f32's (%.2g): bf16 did not run", fx, rel);
    st_close(ex);
    graph_destroy(g);
    tt_fixture_free(&f);
    model_free(m);
}

START_TEST(test_bf16_first_step_matches_the_float64_reference_within_bf16_bounds) {
    check_bf16_first_step("tests/data/train/qwen2-untied/model", "tests/data/train/qwen2-untied");
    check_bf16_first_step("tests/data/train/llama-bf16-tied/model",
                          "tests/data/train/llama-bf16-tied");
    check_bf16_first_step("tests/data/train/qwen3-untied/model", "tests/data/train/qwen3-untied");
    check_bf16_first_step("tests/data/train/qwen3-bias-tied/model",
                          "tests/data/train/qwen3-bias-tied");
    check_bf16_first_step("tests/data/train/smollm3-nope/model", "tests/data/train/smollm3-nope");
    check_bf16_first_step("tests/data/train/olmo2-untied/model", "tests/data/train/olmo2-untied");
    check_bf16_first_step("tests/data/train/granite-untied/model",
                          "tests/data/train/granite-untied");
    check_bf16_first_step("tests/data/train/gemma3-tied/model", "tests/data/train/gemma3-tied");
    check_bf16_first_step("tests/data/train/gemma2-tied/model", "tests/data/train/gemma2-tied");
    check_bf16_first_step("tests/data/train/qwen35-text/model", "tests/data/train/qwen35-text");
    check_bf16_first_step("tests/data/train/gemma4-keqv/model", "tests/data/train/gemma4-keqv");
    TEST_NEED_SHARED(shared);
    char model[4096], fx[4096];
    snprintf(model, sizeof model, "%s/models/stories260K", shared);
    snprintf(fx, sizeof fx, "%s/fixtures/stories260K-lora", shared);
    check_bf16_first_step(model, fx);
}
END_TEST

/* A small job on the committed Qwen2 model, with dropout and packing, in `precision`. */
static char *write_job(const char *dir, const char *precision, int steps) {
    char rows[4200], cfg[4096];
    snprintf(rows, sizeof rows, "%s/rows.jsonl", dir);
    tt_random_rows(rows, 40, 3, 40, 97, 9);
    snprintf(cfg, sizeof cfg,
             "model:\n  path: %s/tests/data/train/qwen2-untied/model\n"
             "lora:\n  r: 4\n  alpha: 8\n  dropout: 0.1\n"
             "data:\n  train: rows.jsonl\n  seq_len: 32\n  packing: true\n  shuffle: true\n"
             "train:\n  batch_size: 2\n  max_steps: %d\n  lr: 5.0e-3\n  seed: 3\n"
             "  precision: %s\n"
             "output:\n  dir: out\n  save_every: 2\n"
             "log:\n  every: 1\n",
             getenv("LORAFIT_ROOT") ? getenv("LORAFIT_ROOT") : ".", steps, precision);
    return tt_write_text(dir, "config.yaml", cfg);
}

/* The "precision:" line of OUTPUT_DIR/config.resolved.yaml. */
static void expect_resolved(const char *dir, const char *want) {
    char path[4200], needle[64];
    snprintf(path, sizeof path, "%s/out/config.resolved.yaml", dir);
    char *text = test_read_file(path, NULL);
    ck_assert_msg(text != NULL, "%s is missing", path);
    snprintf(needle, sizeof needle, "  precision: %s\n", want);
    ck_assert_msg(strstr(text, needle) != NULL, "'%s' not in %s:\n%s", needle, path, text);
    free(text);
}

/* A fresh run of the job in dir (its out/ removed) with the CPU check forced to cpu
 * (LORAFIT_CPU_BF16) and `set` added to the command line: it prints needle and resolves
 * the precision to `resolved`. */
static void fresh_run(const char *dir, const char *cfg, const char *cpu, const char *set,
                      const char *needle, const char *resolved) {
    char out[4200], args[4400];
    snprintf(out, sizeof out, "%s/out", dir);
    test_rmtree(out);
    setenv("LORAFIT_CPU_BF16", cpu, 1);
    snprintf(args, sizeof args, "train '%s'%s", cfg, set);
    tt_expect(dir, args, 0, needle);
    expect_resolved(dir, resolved);
}

START_TEST(test_auto_resolves_by_the_cpu_and_says_so) {
    char *dir = test_tmpdir();
    char *cfg = write_job(dir, "auto", 2), args[4400];
    const char *bf16 = " --set train.precision=bf16";
    fresh_run(dir, cfg, "0", "", "precision f32 (auto: this CPU has no native bf16", "f32");
    /* bf16 asked for on such a CPU runs, emulated, and says so. */
    fresh_run(dir, cfg, "0", bf16, "precision bf16 (EMULATED: this CPU has no native bf16", "bf16");
    /* A CPU with native bf16: auto takes bf16. */
    fresh_run(dir, cfg, "1", "", "precision bf16 (auto: ", "bf16");
    /* Native bf16 that multiplies no faster than f32 (AVX512-BF16 without AMX on Intel's
     * AVX512-FP16 cores): auto takes f32 and says why; bf16 asked for still runs. */
    fresh_run(dir, cfg, "slow", "", "precision f32 (auto: this CPU's bf16 matrix instructions",
              "f32");
    fresh_run(dir, cfg, "slow", bf16, "precision bf16 (", "bf16");
    /* A run trained in bf16 under auto, for the resumes below. */
    fresh_run(dir, cfg, "1", "", "precision bf16 (auto: ", "bf16");
    /* Its checkpoint resumes only where bf16 runs natively, unless bf16 is asked for. */
    setenv("LORAFIT_CPU_BF16", "0", 1);
    snprintf(args, sizeof args, "train '%s' --resume --set train.max_steps=3", cfg);
    tt_expect(dir, args, 2, "was trained in bf16 and this CPU has no native bf16");
    snprintf(args, sizeof args,
             "train '%s' --resume --set train.max_steps=3 --set train.precision=bf16", cfg);
    tt_expect(dir, args, 0, "(step 2)");
    unsetenv("LORAFIT_CPU_BF16");
    free(cfg);
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_bf16_runs_are_byte_identical_and_resume_exactly) {
    char *a = test_tmpdir(), *b = test_tmpdir();
    char *ca = write_job(a, "bf16", 4), *cb = write_job(b, "bf16", 4), args[4400];
    snprintf(args, sizeof args, "train '%s'", ca);
    ck_assert_int_eq(tt_lorafit(a, args), 0);
    /* The same job killed after step 3 (checkpoint at step 2) and resumed. */
    const char *argv[] = {"train", cb, "--resume", NULL};
    char log[4200];
    snprintf(log, sizeof log, "%s/log.txt", b);
    ck_assert_int_eq(tt_wait(tt_spawn_fault(argv, log, "kill:step:3")), 128 + 9);
    ck_assert_int_eq(tt_wait(tt_spawn(argv, log)), 0);
    char *text = test_read_file(log, NULL);
    ck_assert_msg(strstr(text, "(step 2)") != NULL, "did not resume:\n%s", text);
    free(text);
    char pa[4400], pb[4400];
    snprintf(pa, sizeof pa, "%s/out/adapter/adapter_model.safetensors", a);
    snprintf(pb, sizeof pb, "%s/out/adapter/adapter_model.safetensors", b);
    ck_assert_msg(tt_same_bytes(pa, pb), "bf16: the resumed adapter differs");
    /* And bf16 is not f32: the same job in f32 gives another adapter. */
    char *c = test_tmpdir(), *cc = write_job(c, "f32", 4), pc[4400];
    snprintf(args, sizeof args, "train '%s'", cc);
    ck_assert_int_eq(tt_lorafit(c, args), 0);
    snprintf(pc, sizeof pc, "%s/out/adapter/adapter_model.safetensors", c);
    ck_assert_msg(!tt_same_bytes(pa, pc), "the bf16 adapter equals the f32 one");
    free(ca);
    free(cb);
    free(cc);
    test_rmtree(a);
    test_rmtree(b);
    test_rmtree(c);
    free(a);
    free(b);
    free(c);
}
END_TEST

/* OpenBLAS falls back to its SSE3 "Prescott" kernels on CPUs newer than it knows, and takes
 * Zen 4 for a Cooper Lake; lorafit then runs itself again with OPENBLAS_CORETYPE naming the
 * faster kernels the CPU has, and a
 * user's own OPENBLAS_CORETYPE is kept. The start line names the kernels. */
START_TEST(test_openblas_runs_the_kernels_this_cpu_has) {
    ck_assert_str_eq(tensor_blas_better_core("Prescott", false, true, true), "SkylakeX");
    ck_assert_str_eq(tensor_blas_better_core("Prescott", true, false, true), "Haswell");
    ck_assert_ptr_null(tensor_blas_better_core("Prescott", false, false, false));
    ck_assert_ptr_null(tensor_blas_better_core("Haswell", false, true, true));
    ck_assert_ptr_null(tensor_blas_better_core("Zen", true, true, true));
    ck_assert_ptr_null(tensor_blas_better_core(NULL, false, true, true));
    /* Zen 4 (AVX512-BF16): OpenBLAS 0.3.21 takes it for a Cooper Lake */
    ck_assert_str_eq(tensor_blas_better_core("Cooperlake", true, true, true), "SkylakeX");
    ck_assert_ptr_null(tensor_blas_better_core("Cooperlake", false, true, true));

    char *dir = test_tmpdir();
    char *cfg = write_job(dir, "f32", 1), args[4400], out[4200];
    snprintf(args, sizeof args, "train '%s'", cfg);
    snprintf(out, sizeof out, "%s/out", dir);
    const char *saved = getenv("OPENBLAS_CORETYPE");
    char *keep = saved ? strdup(saved) : NULL;
    unsetenv("OPENBLAS_CORETYPE");
    tt_expect(dir, args, 0, "kernels (f32))");
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        char *log = tt_log(dir);
        ck_assert_msg(strstr(log, "Prescott kernels") == NULL, "%s", log);
        if (__builtin_cpu_is("amd") && __builtin_cpu_supports("avx512f"))
            ck_assert_msg(strstr(log, "Cooperlake kernels") == NULL, "%s", log);
        free(log);
    }
    test_rmtree(out);
    setenv("OPENBLAS_CORETYPE", "Prescott", 1);
    tt_expect(dir, args, 0, "OpenBLAS sgemm, Prescott kernels (f32))");
    if (keep)
        setenv("OPENBLAS_CORETYPE", keep, 1);
    else
        unsetenv("OPENBLAS_CORETYPE");
    free(keep);
    free(cfg);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* Running again (above) must not pin lorafit to one CPU: with OMP_PROC_BIND set, libgomp
 * binds the first thread to the first place before main, and the program run again took
 * that thread's one CPU for all its places (seen: '{0},{1}', then '{0}', and half the speed
 * on 2 cores). OMP_DISPLAY_ENV prints the places of each run: the last run's must be the
 * first's. Where lorafit does not run itself again (OpenBLAS knows the CPU) there is one run. */
START_TEST(test_running_again_keeps_every_openmp_place) {
    char *dir = test_tmpdir();
    const char *saved = getenv("OPENBLAS_CORETYPE");
    char *keep = saved ? strdup(saved) : NULL;
    unsetenv("OPENBLAS_CORETYPE");
    setenv("OMP_PROC_BIND", "close", 1);
    setenv("OMP_DISPLAY_ENV", "true", 1);
    int rc = tt_lorafit(dir, "--version");
    unsetenv("OMP_PROC_BIND");
    unsetenv("OMP_DISPLAY_ENV");
    if (keep) setenv("OPENBLAS_CORETYPE", keep, 1);
    free(keep);
    char *log = tt_log(dir);
    ck_assert_msg(rc == 0, "%s", log);
    const char *key = "OMP_PLACES = ", *first = strstr(log, key);
    ck_assert_msg(first != NULL, "no OMP_PLACES in:\n%s", log);
    size_t len = strcspn(first, "\n");
    for (const char *at = strstr(first + 1, key); at; at = strstr(at + 1, key))
        ck_assert_msg(strcspn(at, "\n") == len && strncmp(at, first, len) == 0,
                      "the places changed when lorafit ran itself again:\n%s", log);
    free(log);
    test_rmtree(dir);
    free(dir);
}
END_TEST

Suite *precision_suite(void) {
    Suite *s = suite_create("precision");
    TCase *tc = tcase_create("bf16");
    tcase_add_test(tc, test_bf16_first_step_matches_the_float64_reference_within_bf16_bounds);
    tcase_add_test(tc, test_auto_resolves_by_the_cpu_and_says_so);
    tcase_add_test(tc, test_openblas_runs_the_kernels_this_cpu_has);
    tcase_add_test(tc, test_running_again_keeps_every_openmp_place);
    tcase_add_test(tc, test_bf16_runs_are_byte_identical_and_resume_exactly);
    suite_add_tcase(s, tc);
    return s;
}
