/* tests/test_gguf_llamacpp.c — lorafit's GGUF files in the real client: llama.cpp through
 * node-llama-cpp 3.21.1 (tools/llamacpp_greedy.mjs). Adapters trained by lorafit on
 * stories260K — attention only, rsLoRA, all seven modules — exported with --format gguf and
 * loaded with the base GGUF of `lorafit merge --format gguf`, and the merged GGUFs alone,
 * give llama.cpp's greedy decoding the ids of `lorafit generate --adapter` for 200 tokens.
 * A Q8_0 GGUF of stories260K loads and generates; its 50 ids are printed next to F32's.
 * Qwen3 (arch qwen3: q/k norms, head_dim 16 != hidden / heads, GQA, untied) on the
 * tests/data/train/qwen3-untied fixture: the base GGUF alone and with the GGUF of the
 * fixture's initial adapter give the float64 reference's 64 greedy ids, and an adapter
 * trained by lorafit (every linear) gives llama.cpp the ids of `lorafit generate --adapter`,
 * with the base GGUF and merged. The same on tests/data/train/gemma3-tied (arch gemma3:
 * sliding and full layers with their own RoPE, linear scaling, (1 + w) norms, the attention
 * scale folded into q_norm), and tests/data/train/gemma2-tied (arch gemma2: attention and
 * final-logit soft-caps).
 *
 * Runs when node >= 20 and the scratch install exist (LLAMACPP_DIR, default
 * build/llamacpp under the repository):
 *   npm i -E --omit=optional node-llama-cpp@3.21.1 @node-llama-cpp/linux-x64@3.21.1
 * and is reported skipped by name otherwise. */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tests/test_train_util.h"
#include "tests/test_util.h"

/* The scratch install, or NULL (with why) when llama.cpp cannot run here. */
static const char *llamacpp_dir(char *buf, size_t len, const char **why) {
    const char *root = getenv("LORAFIT_ROOT"), *env = getenv("LLAMACPP_DIR");
    if (env)
        snprintf(buf, len, "%s", env);
    else
        snprintf(buf, len, "%s/build/llamacpp", root ? root : ".");
    char probe[4300];
    snprintf(probe, sizeof probe, "%s/node_modules/node-llama-cpp/dist/index.js", buf);
    struct stat st;
    if (stat(probe, &st) != 0) {
        *why = "node-llama-cpp 3.21.1 is not installed in LLAMACPP_DIR (default build/llamacpp)";
        return NULL;
    }
    FILE *p = popen(
        "node -e 'process.stdout.write(process.versions.node.split(\".\")[0])' 2>/dev/null", "r");
    int major = 0;
    if (!p || fscanf(p, "%d", &major) != 1) major = 0;
    if (p) pclose(p);
    if (major < 20) {
        *why = "node >= 20 is not available";
        return NULL;
    }
    return buf;
}

static void train(const char *dir, const char *shared, const char *name, const char *lora) {
    char cfg[8192], args[8400];
    snprintf(cfg, sizeof cfg,
             "model:\n  path: %s/models/stories260K\nlora:\n%s"
             "data:\n  train: %s/fixtures/stories260K-lora/train.jsonl\n  seq_len: 32\n"
             "  shuffle: false\ntrain:\n  batch_size: 2\n  max_steps: 4\n  lr: 2.0e-2\n"
             "  lr_scheduler: constant\noutput:\n  dir: %s\n  save_every: 0\n",
             shared, lora, shared, name);
    char file[256];
    snprintf(file, sizeof file, "%s.yaml", name);
    char *path = tt_write_text(dir, file, cfg);
    snprintf(args, sizeof args, "train '%s'", path);
    tt_expect(dir, args, 0, NULL);
    free(path);
}

static char *run_capture(const char *dir, const char *cmd, const char *name) {
    char out[4400];
    snprintf(out, sizeof out, "%s/%s", dir, name);
    int rc = test_run(cmd, out);
    char *text = test_read_file(out, NULL);
    ck_assert_msg(rc == 0, "%s: exit %d\n%s", cmd, rc, text ? text : "");
    return text;
}

START_TEST(test_llamacpp_runs_lorafit_gguf_with_the_same_greedy_ids) {
    char ldir[4200];
    const char *why = NULL;
    if (!llamacpp_dir(ldir, sizeof ldir, &why)) {
        test_skip(__func__, why);
        return;
    }
    TEST_NEED_SHARED(shared);
    char *dir = test_tmpdir();
    const char *L = test_lorafit_bin();
    char model[4300], args[16384];
    snprintf(model, sizeof model, "%s/models/stories260K", shared);
    static const char *const names[3] = {"attn", "rslora", "all7"};
    static const char *const specs[3] = {
        "  r: 4\n  alpha: 8\n  target_modules: [q_proj, k_proj, v_proj, o_proj]\n",
        "  r: 4\n  alpha: 4\n  rslora: true\n  target_modules: [q_proj, k_proj, gate_proj]\n",
        "  r: 8\n  alpha: 16\n"};
    snprintf(args, sizeof args, "merge --model '%s' --out '%s/base.gguf'", model, dir);
    tt_expect(dir, args, 0, "tokenizer llama");
    snprintf(args, sizeof args, "merge --model '%s' --out '%s/q8.gguf' --dtype q8_0", model, dir);
    tt_expect(dir, args, 0, "F16, as llama.cpp's converter does");
    char jobs[4400];
    snprintf(jobs, sizeof jobs, "%s/jobs.tsv", dir);
    FILE *jf = fopen(jobs, "w");
    char *want[3];
    for (int i = 0; i < 3; i++) {
        train(dir, shared, names[i], specs[i]);
        snprintf(args, sizeof args, "export '%s/%s/adapter' --format gguf --out '%s/%s.gguf'", dir,
                 names[i], dir, names[i]);
        tt_expect(dir, args, 0, "GGUF LoRA adapter"); /* the base found from the run's config */
        snprintf(args, sizeof args,
                 "merge --model '%s' --adapter '%s/%s/adapter' --out '%s/%s-merged.gguf'", model,
                 dir, names[i], dir, names[i]);
        tt_expect(dir, args, 0, "adapter merged");
        snprintf(args, sizeof args,
                 "'%s' generate --precision f32 --model '%s' --adapter '%s/%s/adapter' "
                 "--prompt-ids 1 -n 200",
                 L, model, dir, names[i]);
        want[i] = run_capture(dir, args, "gen.txt");
        fprintf(jf, "%s/base.gguf\t%s/%s.gguf\t1\t200\n", dir, dir, names[i]);
        fprintf(jf, "%s/%s-merged.gguf\t-\t1\t200\n", dir, names[i]);
    }
    fprintf(jf, "%s/base.gguf\t-\t1\t50\n%s/q8.gguf\t-\t1\t50\n", dir, dir);
    fclose(jf);
    const char *root = getenv("LORAFIT_ROOT");
    snprintf(
        args, sizeof args,
        "LLAMACPP_DIR='%s' LLAMACPP_THREADS=1 node '%s/tools/llamacpp_greedy.mjs' --jobs '%s' 2>&1",
        ldir, root ? root : ".", jobs);
    char *got = run_capture(dir, args, "llamacpp.txt");
    char *line = got, *next, *q[2] = {NULL, NULL};
    for (int i = 0; i < 8; i++, line = next) {
        next = strchr(line, '\n');
        ck_assert_msg(next, "llama.cpp printed too few lines:\n%s", got);
        *next++ = '\0';
        if (i < 6) {
            const char *w = want[i / 2];
            ck_assert_msg(!strncmp(line, w, strlen(line)) && strlen(line) + 1 == strlen(w),
                          "%s (%s): llama.cpp\n%s\nlorafit generate --adapter\n%s", names[i / 2],
                          i % 2 ? "merged GGUF" : "base GGUF + adapter GGUF", line, w);
        } else {
            q[i - 6] = strdup(line);
            int n = 0;
            for (char *t = strtok(line, " "); t; t = strtok(NULL, " ")) {
                ck_assert_int_lt(atoi(t), 512);
                n++;
            }
            ck_assert_int_eq(n, 51);
        }
    }
    /* the Q8_0 and F32 greedy outputs side by side (they may differ) */
    fprintf(stderr, "llama.cpp stories260K greedy, 50 tokens from BOS:\n  F32  %s\n  Q8_0 %s\n",
            q[0], q[1]);
    free(q[0]);
    free(q[1]);
    free(got);
    for (int i = 0; i < 3; i++) free(want[i]);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* fixture.json's list `key` as "1 2 3" (caller frees). */
static char *fixture_ids(json_t *fx, const char *key) {
    json_t *a = json_object_get(fx, key);
    ck_assert_msg(json_is_array(a), "fixture.json has no %s", key);
    char *s = malloc(json_array_size(a) * 12 + 1);
    size_t at = 0;
    s[0] = '\0';
    for (size_t i = 0; i < json_array_size(a); i++)
        at += (size_t)sprintf(s + at, i ? " %lld" : "%lld",
                              (long long)json_integer_value(json_array_get(a, i)));
    return s;
}

/* A fixture of tests/data/train (with a tokenizer) in llama.cpp: the base GGUF alone and with
 * the initial adapter's GGUF give the float64 reference's greedy ids, and with the GGUF of an
 * adapter lorafit trained on every linear, and merged, the ids of lorafit generate. `needle`:
 * what lorafit merge says of the arch and tokenizer. */
static void check_fixture_in_llamacpp(const char *fixture, int seq_len, const char *needle) {
    char ldir[4200];
    const char *why = NULL;
    if (!llamacpp_dir(ldir, sizeof ldir, &why)) {
        test_skip(__func__, why);
        return;
    }
    const char *root = getenv("LORAFIT_ROOT") ? getenv("LORAFIT_ROOT") : ".";
    char *dir = test_tmpdir(), fxdir[4200], model[4300], init[4300], args[16384], path[4400];
    const char *L = test_lorafit_bin();
    snprintf(fxdir, sizeof fxdir, "%s/tests/data/train/%s", root, fixture);
    snprintf(model, sizeof model, "%s/model", fxdir);
    snprintf(init, sizeof init, "%s/init_adapter", fxdir);
    snprintf(path, sizeof path, "%s/fixture.json", fxdir);
    json_error_t je;
    json_t *fx = json_load_file(path, 0, &je);
    ck_assert_msg(fx != NULL, "%s: %s", path, je.text);
    char *prompt = fixture_ids(fx, "greedy_prompt"), *ref_base = fixture_ids(fx, "greedy_base"),
         *ref_adapter = fixture_ids(fx, "greedy_adapter");
    char cfg[16384];
    snprintf(cfg, sizeof cfg,
             "model:\n  path: %s\nlora:\n  r: 4\n  alpha: 8\n  target_modules: all-linear\n"
             "data:\n  train: %s/train.jsonl\n  seq_len: %d\n  shuffle: false\n"
             "train:\n  batch_size: 2\n  max_steps: 4\n  lr: 2.0e-2\n  lr_scheduler: constant\n"
             "output:\n  dir: run\n  save_every: 0\n",
             model, fxdir, seq_len);
    char *cfg_path = tt_write_text(dir, "run.yaml", cfg);
    snprintf(args, sizeof args, "train '%s'", cfg_path);
    tt_expect(dir, args, 0, NULL);
    snprintf(args, sizeof args, "merge --model '%s' --out '%s/base.gguf'", model, dir);
    tt_expect(dir, args, 0, needle);
    snprintf(args, sizeof args, "export '%s' --model '%s' --format gguf --out '%s/init.gguf'", init,
             model, dir);
    tt_expect(dir, args, 0, "as a GGUF LoRA adapter");
    snprintf(args, sizeof args, "export '%s/run/adapter' --format gguf --out '%s/run.gguf'", dir,
             dir);
    tt_expect(dir, args, 0, "GGUF LoRA adapter");
    snprintf(args, sizeof args,
             "merge --model '%s' --adapter '%s/run/adapter' --out '%s/run-merged.gguf'", model, dir,
             dir);
    tt_expect(dir, args, 0, "adapter merged");
    snprintf(args, sizeof args,
             "'%s' generate --precision f32 --model '%s' --adapter '%s/run/adapter' "
             "--prompt-ids '%s' -n 64",
             L, model, dir, prompt);
    char *trained = run_capture(dir, args, "gen.txt");
    char jobs[4400];
    snprintf(jobs, sizeof jobs, "%s/jobs.tsv", dir);
    FILE *jf = fopen(jobs, "w");
    fprintf(jf, "%s/base.gguf\t-\t%s\t64\n", dir, prompt);
    fprintf(jf, "%s/base.gguf\t%s/init.gguf\t%s\t64\n", dir, dir, prompt);
    fprintf(jf, "%s/base.gguf\t%s/run.gguf\t%s\t64\n", dir, dir, prompt);
    fprintf(jf, "%s/run-merged.gguf\t-\t%s\t64\n", dir, prompt);
    fclose(jf);
    snprintf(
        args, sizeof args,
        "LLAMACPP_DIR='%s' LLAMACPP_THREADS=1 node '%s/tools/llamacpp_greedy.mjs' --jobs '%s' 2>&1",
        ldir, root, jobs);
    char *got = run_capture(dir, args, "llamacpp.txt");
    static const char *const what[4] = {
        "base GGUF (the reference's greedy ids)",
        "base GGUF + the initial adapter's GGUF (the reference's greedy ids)",
        "base GGUF + the trained adapter's GGUF (lorafit generate --adapter)",
        "merged GGUF (lorafit generate --adapter)"};
    const char *want[4] = {ref_base, ref_adapter, trained, trained};
    char *line = got, *next;
    for (int i = 0; i < 4; i++, line = next) {
        next = strchr(line, '\n');
        ck_assert_msg(next, "llama.cpp printed too few lines:\n%s", got);
        *next++ = '\0';
        size_t n = strcspn(want[i], "\n");
        ck_assert_msg(strlen(line) == n && !strncmp(line, want[i], n),
                      "%s, %s: llama.cpp\n%s\nwant\n%s", fixture, what[i], line, want[i]);
    }
    free(got);
    free(trained);
    free(cfg_path);
    free(prompt);
    free(ref_base);
    free(ref_adapter);
    json_decref(fx);
    test_rmtree(dir);
    free(dir);
}

START_TEST(test_llamacpp_runs_lorafit_qwen3_gguf_with_the_same_greedy_ids) {
    check_fixture_in_llamacpp("qwen3-untied", 24, "arch qwen3, tokenizer gpt2 (pre qwen2)");
}
END_TEST

/* SmolLM3 (arch smollm3: layer 3 without RoPE, tied, q/k permuted), OLMo 2 (arch olmo2: no
 * input norms, post-sublayer norms, q/k norms over the projections) and Granite (arch granite:
 * the four multipliers as llama.cpp's scales). */
START_TEST(test_llamacpp_runs_lorafit_smollm3_olmo2_granite_gguf_with_the_same_greedy_ids) {
    check_fixture_in_llamacpp("smollm3-nope", 24, "arch smollm3, tokenizer gpt2 (pre qwen2)");
    check_fixture_in_llamacpp("olmo2-untied", 24, "arch olmo2, tokenizer gpt2 (pre qwen2)");
    check_fixture_in_llamacpp("granite-untied", 24, "arch granite, tokenizer gpt2 (pre qwen2)");
}
END_TEST

/* Gemma 3 (arch gemma3): sliding layers of window 5 with their own RoPE base and a full one
 * with linear scaling, (1 + w) norms written + 1, query_pre_attn_scalar folded into q_norm. */
START_TEST(test_llamacpp_runs_lorafit_gemma3_gguf_with_the_same_greedy_ids) {
    check_fixture_in_llamacpp("gemma3-tied", 16, "arch gemma3, tokenizer gpt2 (pre qwen2)");
}
END_TEST

/* The same decoder as Gemma3ForConditionalGeneration (gemma3-wrapper): the GGUFs hold the
 * language model only, the adapter's names without language_model., and no logit soft-cap
 * (text_config's final_logit_softcapping, which the wrapper never applies). */
START_TEST(test_llamacpp_runs_lorafit_gemma3_wrapper_gguf_with_the_same_greedy_ids) {
    check_fixture_in_llamacpp("gemma3-wrapper", 16, "arch gemma3, tokenizer gpt2 (pre qwen2)");
}
END_TEST

/* Gemma 2 (arch gemma2): scores soft-capped at 2 and logits at 3, the even layers sliding. */
START_TEST(test_llamacpp_runs_lorafit_gemma2_gguf_with_the_same_greedy_ids) {
    check_fixture_in_llamacpp("gemma2-tied", 16, "arch gemma2, tokenizer gpt2 (pre qwen2)");
}
END_TEST

/* Qwen3.5 (arch qwen35): Gated DeltaNet layers (2 key heads, 4 value heads: the value-head
 * reordering on in_proj_qkv's V rows, in_proj_z, in_proj_a, in_proj_b, A_log, dt_bias, the
 * conv, and out_proj's columns; in an adapter on B's rows and out_proj's A columns) and gated
 * attention layers (every second), LoRA on every linear (out_proj included). */
START_TEST(test_llamacpp_runs_lorafit_qwen3_5_gguf_with_the_same_greedy_ids) {
    check_fixture_in_llamacpp("qwen35-gguf", 80, "arch qwen35, tokenizer gpt2 (pre qwen2)");
}
END_TEST

Suite *gguf_llamacpp_suite(void) {
    Suite *s = suite_create("gguf_llamacpp");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_llamacpp_runs_lorafit_gguf_with_the_same_greedy_ids);
    tcase_add_test(tc, test_llamacpp_runs_lorafit_qwen3_gguf_with_the_same_greedy_ids);
    tcase_add_test(tc,
                   test_llamacpp_runs_lorafit_smollm3_olmo2_granite_gguf_with_the_same_greedy_ids);
    tcase_add_test(tc, test_llamacpp_runs_lorafit_gemma3_gguf_with_the_same_greedy_ids);
    tcase_add_test(tc, test_llamacpp_runs_lorafit_gemma3_wrapper_gguf_with_the_same_greedy_ids);
    tcase_add_test(tc, test_llamacpp_runs_lorafit_gemma2_gguf_with_the_same_greedy_ids);
    tcase_add_test(tc, test_llamacpp_runs_lorafit_qwen3_5_gguf_with_the_same_greedy_ids);
    suite_add_tcase(s, tc);
    return s;
}
