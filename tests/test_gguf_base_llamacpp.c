/* tests/test_gguf_base_llamacpp.c — an adapter trained on a quantized GGUF base, in llama.cpp
 * (node-llama-cpp 3.21.1, exact mode: F32 KV cache, flash attention off; tools/
 * llamacpp_greedy.mjs, tools/llamacpp_logprobs.mjs). The base is llama-quantize's Q4_K_M of
 * tests/data/gguf_base (Q4_K and Q6_K linears, a Q6_K tied head). lorafit's products on those
 * blocks are its F32 products on the dequantized values, bit for bit (test_gguf_base_quant.c);
 * llama.cpp's are not: it rounds each product's activations to 8-bit blocks (Q8_K) first. So
 * llama.cpp decodes the adapter's greedy ids exactly on an F32 copy of the dequantized base,
 * and on the quantized file itself agrees to that rounding: log-probabilities within 0.1, the
 * same argmax wherever lorafit's is clear (a top-two margin over 0.2).
 *
 * Runs when node >= 20 and node-llama-cpp exist (LLAMACPP_DIR, default build/llamacpp) and is
 * reported skipped by name otherwise. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/test_gguf_base_util.h"
#include "tests/test_train_util.h"
#include "tests/test_util.h"
#include "trainer/model/model.h"

enum { SEQ = 64 };              /* generated ids (a), scored ids (b) */
#define LOGP_TOL            0.1 /* |ln p(llama.cpp) - ln p(lorafit)| on the quantized file */
#define CLEAR_MARGIN        0.2 /* lorafit's top-two logit margin from which the argmax must agree */
#define MIN_CLEAR_POSITIONS 16  /* so that the argmax check is not vacuous */

/* `cmd` (a shell command), which must succeed; its output (caller frees). */
static char *run_capture(const char *dir, const char *cmd) {
    char out[4400];
    snprintf(out, sizeof out, "%s/cmd.txt", dir);
    int rc = test_run(cmd, out);
    char *text = test_read_file(out, NULL);
    ck_assert_msg(rc == 0, "%s: exit %d\n%s", cmd, rc, text ? text : "");
    return text;
}

/* DIR/rows.jsonl: 16 rows of 24..40 ids, each a stretch of `cycle` (16 random ids, written
 * there) from a random start: a pattern 20 steps learn, a top-two margin over CLEAR_MARGIN
 * after most of its ids. */
static char *write_cycle_rows(const char *dir, int32_t cycle[16]) {
    char path[4400];
    snprintf(path, sizeof path, "%s/rows.jsonl", dir);
    FILE *f = fopen(path, "w");
    ck_assert(f != NULL);
    uint64_t rng = 3;
    for (int i = 0; i < 16; i++) cycle[i] = (int32_t)(test_rand_u64(&rng) % 320);
    for (int r = 0; r < 16; r++) {
        int n = 24 + (int)(test_rand_u64(&rng) % 17), at = (int)(test_rand_u64(&rng) % 16);
        fputs("{\"input_ids\": [", f);
        for (int j = 0; j < n; j++) fprintf(f, j ? ", %d" : "%d", cycle[(at + j) % 16]);
        fputs("]}\n", f);
    }
    fclose(f);
    return strdup(path);
}

/* lorafit's teacher-forced pass on ids (SEQ) in f32: for each position i < SEQ - 1,
 * ln p(ids[i + 1]), the argmax (the first on ties) and the top-two logit margin. */
static void lorafit_logprobs(const char *base, const char *adapter, const int32_t *ids,
                             double *logp, int32_t *argmax, double *margin) {
    char err[2048];
    Model *m = model_load(base, err, sizeof err);
    ck_assert_msg(m != NULL, "%s", err);
    Lora *lora = lora_load_adapter(m, adapter, err, sizeof err);
    ck_assert_msg(lora != NULL, "%s", err);
    Graph *g = graph_create();
    Tensor *logits = model_forward_eval(m, lora, g, ids, NULL, NULL, 1, SEQ);
    ck_assert_msg(logits != NULL, "%s", graph_error(g));
    int v = model_config(m)->vocab_size;
    for (int i = 0; i + 1 < SEQ; i++) {
        const float *row = logits->data + (size_t)i * (size_t)v;
        int best = 0, second = -1;
        for (int k = 1; k < v; k++)
            if (row[k] > row[best])
                second = best, best = k;
            else if (second < 0 || row[k] > row[second])
                second = k;
        double sum = 0;
        for (int k = 0; k < v; k++) sum += exp((double)row[k] - row[best]);
        logp[i] = (double)row[ids[i + 1]] - row[best] - log(sum);
        argmax[i] = best;
        margin[i] = (double)row[best] - row[second];
    }
    graph_destroy(g);
    lora_free(lora);
    model_free(m);
}

/* A run of 20 steps (r 8 on every linear) on the Q4_K_M base, its adapter exported as GGUF:
 * (a) llama.cpp on the F32 copy of the dequantized base with that GGUF greedy-decodes the 64
 * ids of `lorafit generate --adapter` on the Q4_K_M file (which the adapter changes);
 * (b) llama.cpp on the Q4_K_M file itself, teacher-forced on 32 random ids and then two
 * cycles of the training pattern: every ln p(next id) within LOGP_TOL of lorafit's, and the
 * argmax lorafit's wherever lorafit's top-two margin exceeds CLEAR_MARGIN (at
 * MIN_CLEAR_POSITIONS positions at least). Measured: the log-probabilities agree to 0.008;
 * with the adapter at scale 0.95 instead of 1 in llama.cpp the greedy ids of (a) differ, at
 * 0.9 an argmax of (b) differs and a log-probability by 0.12. */
START_TEST(test_llamacpp_runs_the_adapter_of_a_q4_k_m_base) {
    char ldir[4200];
    const char *why = NULL;
    if (!tt_llamacpp_dir(ldir, sizeof ldir, &why)) {
        test_skip(__func__, why);
        return;
    }
    const char *root = getenv("LORAFIT_ROOT") ? getenv("LORAFIT_ROOT") : ".";
    char *dir = test_tmpdir(), *base = tt_repo_path("tests/data/gguf_base/Q4_K_M.gguf");
    int32_t cycle[16];
    char *rows = write_cycle_rows(dir, cycle), cfg[16384], args[16384], f32[4400], adapter[4400];
    snprintf(cfg, sizeof cfg,
             "model:\n  path: %s\nlora:\n  r: 8\n  alpha: 16\n  target_modules: all-linear\n"
             "data:\n  train: %s\n  seq_len: 32\n  shuffle: false\n"
             "train:\n  batch_size: 2\n  max_steps: 20\n  lr: 1.0e-2\n  lr_scheduler: constant\n"
             "  precision: f32\noutput:\n  dir: run\n  save_every: 0\n",
             base, rows);
    char *cfg_path = tt_write_text(dir, "run.yaml", cfg);
    snprintf(args, sizeof args, "train '%s'", cfg_path);
    tt_expect(dir, args, 0, "done: 20 steps");
    snprintf(args, sizeof args, "export '%s/run/adapter' --format gguf --out '%s/run.gguf'", dir,
             dir);
    tt_expect(dir, args, 0, "GGUF LoRA adapter"); /* the GGUF base found from the run's config */
    snprintf(f32, sizeof f32, "%s/f32.gguf", dir);
    gb_dequantize_file(base, f32);
    snprintf(adapter, sizeof adapter, "%s/run/adapter", dir);

    /* (a) greedy ids */
    snprintf(args, sizeof args,
             "'%s' generate --precision f32 --model '%s' --adapter '%s' --prompt-ids '1 2 3' "
             "-n %d",
             test_lorafit_bin(), base, adapter, SEQ);
    char *want = run_capture(dir, args);
    snprintf(args, sizeof args,
             "'%s' generate --precision f32 --model '%s' --prompt-ids '1 2 3' -n %d",
             test_lorafit_bin(), base, SEQ);
    char *plain = run_capture(dir, args);
    ck_assert_msg(strcmp(plain, want) != 0, "the adapter does not change the greedy ids: %s", want);
    snprintf(args, sizeof args,
             "LLAMACPP_DIR='%s' LLAMACPP_THREADS=1 node '%s/tools/llamacpp_greedy.mjs' --model "
             "'%s' --lora '%s/run.gguf' --prompt-ids '1 2 3' -n %d 2>&1",
             ldir, root, f32, dir, SEQ);
    char *got = run_capture(dir, args);
    size_t n = strcspn(want, "\n");
    ck_assert_msg(strcspn(got, "\n") == n && !strncmp(got, want, n),
                  "llama.cpp, F32 copy of the base + GGUF adapter:\n%s\n"
                  "lorafit generate --adapter on the Q4_K_M file:\n%s",
                  got, want);

    /* (b) teacher-forced on the quantized file */
    int32_t ids[SEQ], argmax[SEQ];
    double logp[SEQ], margin[SEQ];
    uint64_t rng = 5;
    for (int i = 0; i < SEQ; i++)
        ids[i] = i < SEQ / 2 ? (int32_t)(test_rand_u64(&rng) % 320) : cycle[i % 16];
    lorafit_logprobs(base, adapter, ids, logp, argmax, margin);
    char id_text[SEQ * 12] = "";
    for (int i = 0, at = 0; i < SEQ; i++)
        at += snprintf(id_text + at, sizeof id_text - (size_t)at, i ? " %d" : "%d", ids[i]);
    snprintf(args, sizeof args,
             "LLAMACPP_DIR='%s' LLAMACPP_THREADS=1 node '%s/tools/llamacpp_logprobs.mjs' --model "
             "'%s' --lora '%s/run.gguf' --ids '%s' 2>&1",
             ldir, root, base, dir, id_text);
    char *scored = run_capture(dir, args), *line = scored;
    double worst = 0;
    int clear = 0;
    for (int i = 0; i + 1 < SEQ; i++) {
        int top;
        double lp;
        int used;
        ck_assert_msg(sscanf(line, "%d %lf%n", &top, &lp, &used) == 2, "llama.cpp's line %d: %s", i,
                      line);
        line += used;
        double d = fabs(lp - logp[i]);
        worst = fmax(worst, d);
        ck_assert_msg(d <= LOGP_TOL,
                      "position %d (next id %d): ln p %.6f in llama.cpp, %.6f in lorafit", i,
                      ids[i + 1], lp, logp[i]);
        if (margin[i] > CLEAR_MARGIN) {
            clear++;
            ck_assert_msg(top == argmax[i],
                          "position %d: llama.cpp's argmax %d, lorafit's %d (margin %.3f)", i, top,
                          argmax[i], margin[i]);
        }
    }
    ck_assert_msg(clear >= MIN_CLEAR_POSITIONS, "only %d positions with a margin over %g", clear,
                  CLEAR_MARGIN);
    fprintf(stderr,
            "llama.cpp on Q4_K_M + adapter, teacher-forced: max |d ln p| %.4f over %d positions, "
            "argmax checked at %d\n",
            worst, SEQ - 1, clear);
    free(scored);
    free(got);
    free(plain);
    free(want);
    free(cfg_path);
    free(rows);
    free(base);
    test_rmtree(dir);
    free(dir);
}
END_TEST

Suite *gguf_base_llamacpp_suite(void) {
    Suite *s = suite_create("gguf_base_llamacpp");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_llamacpp_runs_the_adapter_of_a_q4_k_m_base);
    suite_add_tcase(s, tc);
    return s;
}
