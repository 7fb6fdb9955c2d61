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
 * scale folded into q_norm), tests/data/train/gemma2-tied (arch gemma2: attention and
 * final-logit soft-caps), tests/data/train/ministral3-yarn (arch mistral3: yarn, the
 * llama 4 query scale, and an attention factor llama.cpp gets only through lorafit's
 * rope.scaling.attn_factor) and the wrappers around two of them (gemma3-wrapper,
 * mistral3-wrapper: the language model only), and tests/data/train/gemma4-keqv-gguf and
 * gemma4-e2b-gguf (arch gemma4: per-layer head sizes, K = V, proportional RoPE, per-layer
 * inputs, KV sharing).
 *
 * Runs when node >= 20 and the scratch install exist (LLAMACPP_DIR, default
 * build/llamacpp under the repository):
 *   npm i -E --omit=optional node-llama-cpp@3.21.1 @node-llama-cpp/linux-x64@3.21.1
 * and is reported skipped by name otherwise. */
#include <check.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/test_train_util.h"
#include "tests/test_util.h"

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
    if (!tt_llamacpp_dir(ldir, sizeof ldir, &why)) {
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

/* llama.cpp's greedy lines for the jobs (llamacpp_greedy.mjs's format) written to DIR/jobs.tsv
 * (caller frees). */
static char *llamacpp_greedy(const char *dir, const char *ldir, const char *jobs_text) {
    const char *root = getenv("LORAFIT_ROOT") ? getenv("LORAFIT_ROOT") : ".";
    char *jobs = tt_write_text(dir, "jobs.tsv", jobs_text), args[16384];
    snprintf(
        args, sizeof args,
        "LLAMACPP_DIR='%s' LLAMACPP_THREADS=1 node '%s/tools/llamacpp_greedy.mjs' --jobs '%s' 2>&1",
        ldir, root, jobs);
    free(jobs);
    return run_capture(dir, args, "llamacpp.txt");
}

/* `lorafit generate` of 64 greedy ids (f32) after prompt, with adapter when not NULL. */
static char *lorafit_greedy(const char *dir, const char *model, const char *adapter,
                            const char *prompt) {
    char args[16384], with[4400] = "";
    if (adapter) snprintf(with, sizeof with, "--adapter '%s' ", adapter);
    snprintf(args, sizeof args,
             "'%s' generate --precision f32 --model '%s' %s--prompt-ids '%s' -n 64",
             test_lorafit_bin(), model, with, prompt);
    return run_capture(dir, args, "gen.txt");
}

/* A fixture of tests/data/train (with a tokenizer) in llama.cpp: the base GGUF alone and with
 * the initial adapter's GGUF, the base GGUF with the GGUF of an adapter lorafit trained on
 * every linear, and that adapter merged. */
typedef struct LlamacppRun {
    const char *fixture;
    int seq_len;        /* of the training run */
    const char *needle; /* what lorafit merge --format gguf prints (arch, tokenizer, warnings) */
    const char *edits;  /* config.json keys (a JSON object) set in a copy of the model, or NULL */
    const char *prompt; /* the prompt ids, or NULL: the fixture's greedy_prompt */
    int context;        /* llama.cpp's context size, or 0: llamacpp_greedy.mjs's default */
    int seed;           /* train.seed of the trained adapter, or 0: the default */
} LlamacppRun;

/* The model as the fixture has it, or (run->edits) a copy in DIR/model with config.json
 * edited and the tokenizer files linked. */
static void run_model(const LlamacppRun *run, const char *fxdir, const char *dir, char *model,
                      size_t len) {
    snprintf(model, len, "%s/model", fxdir);
    if (!run->edits) return;
    char src[4400], from[4500], to[4500];
    snprintf(src, sizeof src, "%s", model);
    snprintf(model, len, "%s/model", dir);
    json_error_t je;
    json_t *edits = json_loads(run->edits, 0, &je);
    ck_assert_msg(edits != NULL, "%s: %s", run->edits, je.text);
    tt_model_with_config(src, model, edits);
    json_decref(edits);
    static const char *const files[2] = {"tokenizer.json", "tokenizer_config.json"};
    for (int i = 0; i < 2; i++) {
        snprintf(from, sizeof from, "%s/%s", src, files[i]);
        snprintf(to, sizeof to, "%s/%s", model, files[i]);
        ck_assert_int_eq(symlink(from, to), 0);
    }
}

/* Runs run in llama.cpp, each of its 64 greedy ids checked: with the fixture's model and
 * prompt, the base GGUF alone and with the initial adapter give the float64 reference's ids
 * (fixture.json), else those of lorafit generate; the trained adapter's GGUF and the merged
 * GGUF those of lorafit generate --adapter. The adapter trains in F32 precision, so it is the
 * same whatever precision `auto` picks on this CPU. */
static void check_fixture_run_in_llamacpp(const LlamacppRun *run) {
    char ldir[4200];
    const char *why = NULL;
    if (!tt_llamacpp_dir(ldir, sizeof ldir, &why)) {
        test_skip(__func__, why);
        return;
    }
    char *fxdir = tt_repo_path("tests/data/train"), *dir = test_tmpdir();
    char fx_path[4096], model[4400], init[4400], args[16384], path[4400];
    snprintf(fx_path, sizeof fx_path, "%s/%s", fxdir, run->fixture);
    free(fxdir);
    run_model(run, fx_path, dir, model, sizeof model);
    snprintf(init, sizeof init, "%s/init_adapter", fx_path);
    snprintf(path, sizeof path, "%s/fixture.json", fx_path);
    json_error_t je;
    json_t *fx = json_load_file(path, 0, &je);
    ck_assert_msg(fx != NULL, "%s: %s", path, je.text);
    char *prompt = run->prompt ? strdup(run->prompt) : tt_fixture_ids(fx, "greedy_prompt", NULL);
    bool reference = !run->prompt && !run->edits;
    char cfg[16384], seed[32] = "";
    if (run->seed) snprintf(seed, sizeof seed, "  seed: %d\n", run->seed);
    snprintf(cfg, sizeof cfg,
             "model:\n  path: %s\nlora:\n  r: 4\n  alpha: 8\n  target_modules: all-linear\n"
             "data:\n  train: %s/train.jsonl\n  seq_len: %d\n  shuffle: false\n"
             "train:\n  batch_size: 2\n  max_steps: 4\n  lr: 2.0e-2\n  lr_scheduler: constant\n"
             "  precision: f32\n%s"
             "output:\n  dir: run\n  save_every: 0\n",
             model, fx_path, run->seq_len, seed);
    char *cfg_path = tt_write_text(dir, "run.yaml", cfg);
    snprintf(args, sizeof args, "train '%s'", cfg_path);
    tt_expect(dir, args, 0, NULL);
    snprintf(args, sizeof args, "merge --model '%s' --out '%s/base.gguf'", model, dir);
    tt_expect(dir, args, 0, run->needle);
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
    char trained_adapter[4400];
    snprintf(trained_adapter, sizeof trained_adapter, "%s/run/adapter", dir);
    char *want[4];
    want[0] = reference ? tt_fixture_ids(fx, "greedy_base", NULL)
                        : lorafit_greedy(dir, model, NULL, prompt);
    want[1] = reference ? tt_fixture_ids(fx, "greedy_adapter", NULL)
                        : lorafit_greedy(dir, model, init, prompt);
    want[2] = lorafit_greedy(dir, model, trained_adapter, prompt);
    want[3] = strdup(want[2]);
    char ctx[32] = "";
    if (run->context) snprintf(ctx, sizeof ctx, "\t%d", run->context);
    char jobs[4 * 9000];
    snprintf(jobs, sizeof jobs,
             "%s/base.gguf\t-\t%s\t64%s\n%s/base.gguf\t%s/init.gguf\t%s\t64%s\n"
             "%s/base.gguf\t%s/run.gguf\t%s\t64%s\n%s/run-merged.gguf\t-\t%s\t64%s\n",
             dir, prompt, ctx, dir, dir, prompt, ctx, dir, dir, prompt, ctx, dir, prompt, ctx);
    char *got = llamacpp_greedy(dir, ldir, jobs);
    const char *what[4] = {
        reference ? "base GGUF (the reference's greedy ids)" : "base GGUF (lorafit generate)",
        reference ? "base GGUF + the initial adapter's GGUF (the reference's greedy ids)"
                  : "base GGUF + the initial adapter's GGUF (lorafit generate --adapter)",
        "base GGUF + the trained adapter's GGUF (lorafit generate --adapter)",
        "merged GGUF (lorafit generate --adapter)"};
    char *line = got, *next;
    for (int i = 0; i < 4; i++, line = next) {
        next = strchr(line, '\n');
        ck_assert_msg(next, "llama.cpp printed too few lines:\n%s", got);
        *next++ = '\0';
        size_t n = strcspn(want[i], "\n");
        ck_assert_msg(strlen(line) == n && !strncmp(line, want[i], n),
                      "%s%s, %s: llama.cpp\n%s\nwant\n%s", run->fixture,
                      run->edits ? run->edits : "", what[i], line, want[i]);
    }
    for (int i = 0; i < 4; i++) free(want[i]);
    free(got);
    free(cfg_path);
    free(prompt);
    json_decref(fx);
    test_rmtree(dir);
    free(dir);
}

/* The fixture as it is, with its reference's greedy ids. */
static void check_fixture_in_llamacpp(const char *fixture, int seq_len, const char *needle) {
    LlamacppRun run = {.fixture = fixture, .seq_len = seq_len, .needle = needle};
    check_fixture_run_in_llamacpp(&run);
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

/* The same decoder as Mistral3ForConditionalGeneration (mistral3-wrapper, ministral3-yarn's
 * beside a Pixtral tower): the GGUFs hold the language model only (its untied lm_head as
 * output), the adapter's names without language_model.; yarn and the llama 4 query scale as
 * ministral3-yarn's. */
START_TEST(test_llamacpp_runs_lorafit_mistral3_wrapper_gguf_with_the_same_greedy_ids) {
    check_fixture_in_llamacpp("mistral3-wrapper", 24, "arch mistral3, tokenizer gpt2 (pre qwen2)");
}
END_TEST

/* Gemma 4 (arch gemma4), 31B-like (gemma4-keqv-gguf: full layers of head size 32 with one
 * KV head and V from k_proj, sliding ones of 16 with two and window 5, proportional RoPE
 * through rope_freqs, layer scalars, soft-cap 5) and E2B-like (gemma4-e2b-gguf: per-layer
 * inputs, the last 3 layers sharing the K and V of layers 3 and 4 with a doubled MLP; its
 * trained adapter, all-linear, adapts blk.N.inp_gate and proj too). The E2B-like run trains
 * with seed 12: the float64 reference's best two logits on the greedy path of most seeds'
 * adapters come within 2e-4 to 1.5e-3 of each other somewhere, which llama.cpp can flip
 * (ggml's GELU goes through an F16 table; its logits differ by about 1e-3); seed 12's
 * smallest gap is 1.7e-2 (its f32 training, as every run here: 4 steps of seed 8 came to a
 * 4.0e-4 gap). */
START_TEST(test_llamacpp_runs_lorafit_gemma4_gguf_with_the_same_greedy_ids) {
    check_fixture_in_llamacpp("gemma4-keqv-gguf", 16, "arch gemma4, tokenizer gpt2 (pre qwen2)");
    LlamacppRun e2b = {.fixture = "gemma4-e2b-gguf",
                       .seq_len = 16,
                       .needle = "arch gemma4, tokenizer gpt2 (pre qwen2)",
                       .seed = 12};
    check_fixture_run_in_llamacpp(&e2b);
}
END_TEST

/* Gemma 2 (arch gemma2): scores soft-capped at 2 and logits at 3, the even layers sliding. */
START_TEST(test_llamacpp_runs_lorafit_gemma2_gguf_with_the_same_greedy_ids) {
    check_fixture_in_llamacpp("gemma2-tied", 16, "arch gemma2, tokenizer gpt2 (pre qwen2)");
}
END_TEST

/* Ministral 3 (arch mistral3): yarn RoPE past original_max_position_embeddings 16 with an
 * attention factor from mscale 1 / mscale_all_dim 0.5, the llama 4 query scale
 * (temperature_scale) from position 16 on, head_dim 12, GQA, untied. Then the same model
 * with mscale 0.25, an attention factor llama.cpp computes otherwise (it takes mscale as 1):
 * with the rope.scaling.attn_factor lorafit writes, llama.cpp greedy-decodes the ids of
 * lorafit generate. */
START_TEST(test_llamacpp_runs_lorafit_ministral3_gguf_with_the_same_greedy_ids) {
    check_fixture_in_llamacpp("ministral3-yarn", 24, "arch mistral3, tokenizer gpt2 (pre qwen2)");
    char ldir[4200];
    const char *why = NULL;
    if (!tt_llamacpp_dir(ldir, sizeof ldir, &why)) return; /* skipped by name above */
    const char *root = getenv("LORAFIT_ROOT") ? getenv("LORAFIT_ROOT") : ".";
    char *dir = test_tmpdir(), model[4300], edited[4400], path[4600], from[4600], args[16384];
    snprintf(model, sizeof model, "%s/tests/data/train/ministral3-yarn/model", root);
    snprintf(path, sizeof path, "%s/config.json", model);
    json_t *cfg = json_load_file(path, 0, NULL);
    ck_assert(cfg != NULL);
    json_t *rope = json_deep_copy(json_object_get(cfg, "rope_parameters"));
    json_object_set_new(rope, "mscale", json_real(0.25));
    json_object_set_new(rope, "mscale_all_dim", json_real(1.0));
    snprintf(edited, sizeof edited, "%s/model", dir);
    json_t *edits = json_pack("{s:o}", "rope_parameters", rope);
    tt_model_with_config(model, edited, edits);
    json_decref(edits);
    json_decref(cfg);
    static const char *const files[2] = {"tokenizer.json", "tokenizer_config.json"};
    for (int i = 0; i < 2; i++) {
        snprintf(from, sizeof from, "%s/%s", model, files[i]);
        snprintf(path, sizeof path, "%s/%s", edited, files[i]);
        ck_assert_int_eq(symlink(from, path), 0);
    }
    snprintf(args, sizeof args, "merge --model '%s' --out '%s/e.gguf'", edited, dir);
    tt_expect(dir, args, 0, "arch mistral3");
    snprintf(args, sizeof args,
             "'%s' generate --precision f32 --model '%s' --prompt-ids '1 2 3 4' -n 64",
             test_lorafit_bin(), edited);
    char *want = run_capture(dir, args, "gen.txt");
    snprintf(args, sizeof args,
             "LLAMACPP_DIR='%s' LLAMACPP_THREADS=1 node '%s/tools/llamacpp_greedy.mjs' --model "
             "'%s/e.gguf' --prompt-ids '1 2 3 4' -n 64 2>&1",
             ldir, root, dir);
    char *got = run_capture(dir, args, "llamacpp.txt");
    size_t n = strcspn(want, "\n");
    ck_assert_msg(strcspn(got, "\n") == n && !strncmp(got, want, n),
                  "mscale 0.25: llama.cpp\n%s\nlorafit generate\n%s", got, want);
    free(got);
    free(want);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* The length of ids' first n ids ("1 2 3 ..."), without the space after them. */
static size_t ids_prefix(const char *ids, int n) {
    size_t at = 0;
    for (int i = 0; i < n && ids[at] && ids[at] != '\n'; i++) {
        at += strspn(ids + at, " ");
        at += strcspn(ids + at, " \n");
    }
    return at;
}

/* phi3-window as it is (window 5) in llama.cpp, which has no sliding window for phi3: merge
 * warns from which length the results differ, and up to there (the ids at positions 0..5,
 * each from logits over at most 5 positions) llama.cpp gives lorafit generate's ids. */
static void check_phi3_window_prefix(void) {
    char ldir[4200];
    const char *why = NULL;
    if (!tt_llamacpp_dir(ldir, sizeof ldir, &why)) {
        test_skip(__func__, why);
        return;
    }
    char *model = tt_repo_path("tests/data/train/phi3-window/model"), *dir = test_tmpdir();
    char args[16384], jobs[4400];
    snprintf(args, sizeof args, "merge --model '%s' --out '%s/base.gguf'", model, dir);
    tt_expect(dir, args, 0,
              "warning: llama.cpp's phi3 has no sliding window: past 5 positions (the model's "
              "sliding_window) its results differ");
    char *want = lorafit_greedy(dir, model, NULL, "304");
    snprintf(jobs, sizeof jobs, "%s/base.gguf\t-\t304\t64\n", dir);
    char *got = llamacpp_greedy(dir, ldir, jobs);
    size_t n = ids_prefix(want, 6);
    ck_assert_msg(ids_prefix(got, 6) == n && !strncmp(got, want, n),
                  "phi3-window, the first 6 positions: llama.cpp\n%s\nlorafit generate\n%s", got,
                  want);
    free(got);
    free(want);
    free(model);
    test_rmtree(dir);
    free(dir);
}

/* Phi-3 / Phi-4-mini (arch phi3: attn_qkv and ffn_up fused, partial rotary 0.75, longrope's
 * factors as tensors). llama.cpp takes longrope's long factors for every position once its
 * context (rounded up to a multiple of 256) exceeds original_max_position_embeddings, lorafit
 * (as transformers) for a sequence longer than that: phi4mini-longrope (original 16) from a
 * 20-token prompt, both long; the same with original 256 (max positions 2048) in a context
 * of 256 from its 4-token prompt, both short. phi3-window with Phi-3-mini-4k's window of 2047
 * (llama.cpp ignores it; longer than the 68 positions), and as it is up to its window. */
START_TEST(test_llamacpp_runs_lorafit_phi3_gguf_with_the_same_greedy_ids) {
    static const LlamacppRun runs[3] = {
        {"phi4mini-longrope", 24, "results differ for sequences of up to 16 positions", NULL,
         "304 12 55 200 17 89 3 140 230 66 91 18 250 7 77 120 33 199 45 61", 0, 0},
        {"phi4mini-longrope", 24,
         "exceeds 256 (original_max_position_embeddings), lorafit and transformers only for "
         "sequences longer than that: with a context of at most 256 llama.cpp's results are the "
         "model's",
         "{\"original_max_position_embeddings\": 256, \"max_position_embeddings\": 2048}", NULL,
         256, 0},
        {"phi3-window", 24, "past 2047 positions", "{\"sliding_window\": 2047}", NULL, 0, 0},
    };
    for (int i = 0; i < 3; i++) check_fixture_run_in_llamacpp(&runs[i]);
    check_phi3_window_prefix();
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
    tcase_add_test(tc, test_llamacpp_runs_lorafit_mistral3_wrapper_gguf_with_the_same_greedy_ids);
    tcase_add_test(tc, test_llamacpp_runs_lorafit_gemma2_gguf_with_the_same_greedy_ids);
    tcase_add_test(tc, test_llamacpp_runs_lorafit_gemma4_gguf_with_the_same_greedy_ids);
    tcase_add_test(tc, test_llamacpp_runs_lorafit_ministral3_gguf_with_the_same_greedy_ids);
    tcase_add_test(tc, test_llamacpp_runs_lorafit_phi3_gguf_with_the_same_greedy_ids);
    tcase_add_test(tc, test_llamacpp_runs_lorafit_qwen3_5_gguf_with_the_same_greedy_ids);
    suite_add_tcase(s, tc);
    return s;
}
