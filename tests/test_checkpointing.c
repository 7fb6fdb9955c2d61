/* tests/test_checkpointing.c — gradient checkpointing (train.gradient_checkpointing).
 *
 * The promise is bit-identity: with checkpointing the loss, the hidden state and every LoRA
 * gradient are the very bits of the plain pass, with LoRA dropout, packed segments,
 * accumulation over micro-batches, BF16 weights and the bf16 precision; `lorafit train`
 * writes the same adapter and metrics, also across a resume that switches it on or off.
 * And the point of it: the activations held are one layer's, so a job that runs out of
 * memory without it (a clear error that suggests it) trains with it. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/test_train_util.h"
#include "tests/test_util.h"
#include "trainer/model/model.h"

#define LAYERS 8
#define VOCAB  101
#define BATCH  2
#define SEQ    24
#define N_ROWS (BATCH * SEQ)
#define MICRO  2 /* micro-batches accumulated per pass */

/* A random Qwen2-style model (q/k/v biases, untied head) of LAYERS layers in dir/model. */
static char *make_test_model(const char *dir) {
    char *path = malloc(strlen(dir) + 16), cmd[8192];
    sprintf(path, "%s/model", dir);
    snprintf(cmd, sizeof cmd,
             "'%s/make_model' --out '%s' --arch qwen2 --hidden 48 --intermediate 64 --layers %d "
             "--heads 4 --kv-heads 2 --vocab %d --std 0.2 --seed 11",
             test_tools_dir(), path, LAYERS, VOCAB);
    ck_assert_msg(test_run(cmd, "/dev/null") == 0, "make_model failed: %s", cmd);
    return path;
}

/* All seven modules, r 4, dropout 0.1; A and B random so every path carries gradient. */
static Lora *test_lora(const Model *m) {
    char err[1024];
    LoraSpec spec = {4, 8.0f, false, 0.1f, LORA_ALL};
    Lora *lora = lora_create(m, &spec, err, sizeof err);
    ck_assert_msg(lora != NULL, "%s", err);
    size_t n;
    float *p = lora_params(lora, &n);
    uint64_t s = 99;
    for (size_t i = 0; i < n; i++) p[i] = test_rand_uniform(&s, -0.3f, 0.3f);
    return lora;
}

/* Micro-batch mb: packed rows (segments of 11, 9 and 4 tokens, positions restarting in
 * each), targets the next token of the segment, a masked prompt in each row. */
typedef struct {
    int32_t ids[N_ROWS], pos[N_ROWS], seg[N_ROWS], targets[N_ROWS];
} Micro;

static void fill_micro(Micro *b, int mb) {
    static const int lens[] = {11, 9, 4};
    for (int r = 0; r < BATCH; r++) {
        int t = 0;
        for (int s = 0; s < 3; s++)
            for (int k = 0; k < lens[s]; k++, t++) {
                int i = r * SEQ + t;
                b->ids[i] = (int32_t)((i * 37 + mb * 11 + 5) % VOCAB);
                b->pos[i] = k;
                b->seg[i] = s;
            }
    }
    for (int i = 0; i < N_ROWS; i++) {
        bool last = i % SEQ == SEQ - 1 || b->seg[i + 1] != b->seg[i];
        b->targets[i] = last || b->pos[i] < 2 ? TENSOR_IGNORE_INDEX : b->ids[i + 1];
    }
}

typedef struct {
    double loss[MICRO];
    float *hidden; /* (N, C) of the last micro-batch */
    int64_t n_hidden;
    float *grads;
    size_t n_grads;
    size_t arena_bytes; /* both graphs' arenas, scratch included */
} Pass;

/* MICRO micro-batches as trainer/train/loop.c runs them: the loss of each, backward with
 * seed 1 / (all targets) into the accumulating LoRA gradients (unless eval). */
static Pass run_pass(const Model *m, Lora *lora, TensorPrecision precision, bool ckpt, bool eval) {
    Pass p = {0};
    Graph *g = graph_create();
    Checkpointing *ck = ckpt ? checkpointing_create() : NULL;
    ck_assert(g && (!ckpt || ck));
    ck_assert_int_eq(graph_set_precision(g, precision), 0);
    Micro b[MICRO];
    int64_t total = 0;
    for (int i = 0; i < MICRO; i++) {
        fill_micro(&b[i], i);
        for (int k = 0; k < N_ROWS; k++) total += b[i].targets[k] != TENSOR_IGNORE_INDEX;
    }
    lora_zero_grad(lora);
    for (int i = 0; i < MICRO; i++) {
        graph_reset(g);
        uint64_t seed = 0xabcdefull + (uint64_t)i;
        Tensor *h;
        if (eval)
            h = ckpt ? model_forward_hidden_checkpointed_eval(m, lora, g, ck, b[i].ids, b[i].pos,
                                                              b[i].seg, BATCH, SEQ)
                     : model_forward_hidden_eval(m, lora, g, b[i].ids, b[i].pos, b[i].seg, BATCH,
                                                 SEQ);
        else
            h = ckpt ? model_forward_hidden_checkpointed(m, lora, g, ck, b[i].ids, b[i].pos,
                                                         b[i].seg, BATCH, SEQ, seed)
                     : model_forward_hidden(m, lora, g, b[i].ids, b[i].pos, b[i].seg, BATCH, SEQ,
                                            seed);
        int64_t count = 0;
        Tensor *loss = op_lm_head_cross_entropy(g, h, model_lm_head(m), b[i].targets, &count);
        ck_assert_msg(loss != NULL, "forward: %s", checkpointing_error(ck, g));
        p.loss[i] = loss->data[0];
        if (!eval) {
            float up = (float)(1.0 / (double)total);
            int rc =
                ckpt ? model_backward_checkpointed(g, ck, loss, up) : graph_backward(g, loss, up);
            ck_assert_msg(rc == 0, "backward: %s", checkpointing_error(ck, g));
        }
        if (i == MICRO - 1) {
            p.n_hidden = h->size;
            p.hidden = malloc((size_t)h->size * sizeof(float));
            memcpy(p.hidden, h->data, (size_t)h->size * sizeof(float));
        }
    }
    float *grads = lora_grads(lora, &p.n_grads);
    p.grads = malloc(p.n_grads * sizeof(float));
    memcpy(p.grads, grads, p.n_grads * sizeof(float));
    p.arena_bytes = graph_arena_bytes(g) + (ck ? graph_arena_bytes(checkpointing_graph(ck)) : 0);
    checkpointing_free(ck);
    graph_destroy(g);
    return p;
}

static void pass_free(Pass *p) {
    free(p->hidden);
    free(p->grads);
}

/* The plain and the checkpointed pass on the same model give the same bits. */
static void assert_bit_identical(ModelDtype dtype, TensorPrecision precision, bool eval) {
    char *dir = test_tmpdir(), *model_dir = make_test_model(dir), err[1024];
    Model *m = model_load_dtype(model_dir, dtype, err, sizeof err);
    ck_assert_msg(m != NULL, "%s", err);
    Lora *lora = test_lora(m);
    Pass plain = run_pass(m, lora, precision, false, eval);
    Pass ckpt = run_pass(m, lora, precision, true, eval);
    for (int i = 0; i < MICRO; i++) {
        ck_assert_msg(isfinite(plain.loss[i]) && plain.loss[i] > 0, "loss %g", plain.loss[i]);
        ck_assert_msg(memcmp(&plain.loss[i], &ckpt.loss[i], sizeof(double)) == 0,
                      "micro-batch %d: loss %.17g with checkpointing, %.17g without", i,
                      ckpt.loss[i], plain.loss[i]);
    }
    ck_assert_int_eq(plain.n_hidden, ckpt.n_hidden);
    ck_assert_msg(memcmp(plain.hidden, ckpt.hidden, (size_t)plain.n_hidden * sizeof(float)) == 0,
                  "the hidden state differs with checkpointing");
    ck_assert_uint_eq(plain.n_grads, ckpt.n_grads);
    if (!eval) {
        size_t nonzero = 0, first_diff = plain.n_grads;
        for (size_t i = 0; i < plain.n_grads; i++) {
            nonzero += plain.grads[i] != 0.0f;
            if (first_diff == plain.n_grads &&
                memcmp(&plain.grads[i], &ckpt.grads[i], sizeof(float)) != 0)
                first_diff = i;
        }
        ck_assert_msg(nonzero > plain.n_grads / 2, "only %zu of %zu gradients are non-zero",
                      nonzero, plain.n_grads);
        ck_assert_msg(first_diff == plain.n_grads,
                      "LoRA gradient %zu of %zu differs: %.9g with checkpointing, %.9g without",
                      first_diff, plain.n_grads, ckpt.grads[first_diff], plain.grads[first_diff]);
    }
    pass_free(&plain);
    pass_free(&ckpt);
    lora_free(lora);
    model_free(m);
    free(model_dir);
    test_rmtree(dir);
    free(dir);
}

START_TEST(test_checkpointed_pass_is_bit_identical_f32) {
    assert_bit_identical(MODEL_F32, TENSOR_PRECISION_F32, false);
}
END_TEST

START_TEST(test_checkpointed_pass_is_bit_identical_one_thread) {
    tensor_set_threads(1);
    assert_bit_identical(MODEL_F32, TENSOR_PRECISION_F32, false);
    tensor_set_threads(0);
}
END_TEST

START_TEST(test_checkpointed_pass_is_bit_identical_bf16_weights) {
    assert_bit_identical(MODEL_BF16, TENSOR_PRECISION_F32, false);
}
END_TEST

START_TEST(test_checkpointed_pass_is_bit_identical_bf16_precision) {
    assert_bit_identical(MODEL_BF16, TENSOR_PRECISION_BF16, false);
}
END_TEST

START_TEST(test_checkpointed_pass_is_bit_identical_bf16_precision_onednn) {
    /* oneDNN's primitives (f32 on bf16-rounded values where the CPU has no bf16) */
    setenv("LORAFIT_BF16_EMULATION", "onednn", 1);
    assert_bit_identical(MODEL_BF16, TENSOR_PRECISION_BF16, false);
    unsetenv("LORAFIT_BF16_EMULATION");
}
END_TEST

START_TEST(test_checkpointed_eval_pass_is_bit_identical) {
    assert_bit_identical(MODEL_F32, TENSOR_PRECISION_F32, true);
}
END_TEST

/* The point of it: at 2048 tokens the two graphs together hold a fraction of the plain
 * pass's arena (deterministic sizes, not timing). The plain pass reuses dead gradients
 * (graph.c), so it holds every layer's activations but about one layer's gradients. */
START_TEST(test_checkpointing_holds_one_layer_of_activations) {
    char *dir = test_tmpdir(), *model_dir = make_test_model(dir), err[1024];
    Model *m = model_load(model_dir, err, sizeof err);
    ck_assert_msg(m != NULL, "%s", err);
    Lora *lora = test_lora(m);
    enum { B = 8, T = 256 };
    static int32_t ids[B * T], targets[B * T];
    for (int i = 0; i < B * T; i++) ids[i] = (int32_t)((i * 7 + 3) % VOCAB);
    for (int i = 0; i < B * T; i++) targets[i] = i % T == T - 1 ? TENSOR_IGNORE_INDEX : ids[i + 1];
    size_t bytes[2];
    for (int ckpt = 0; ckpt < 2; ckpt++) {
        Graph *g = graph_create();
        Checkpointing *ck = ckpt ? checkpointing_create() : NULL;
        Tensor *h =
            ckpt ? model_forward_hidden_checkpointed(m, lora, g, ck, ids, NULL, NULL, B, T, 1)
                 : model_forward_hidden(m, lora, g, ids, NULL, NULL, B, T, 1);
        int64_t count;
        Tensor *loss = op_lm_head_cross_entropy(g, h, model_lm_head(m), targets, &count);
        ck_assert(loss != NULL);
        ck_assert_int_eq(ckpt ? model_backward_checkpointed(g, ck, loss, 1e-3f)
                              : graph_backward(g, loss, 1e-3f),
                         0);
        /* in use (a chunk's untouched tail is never resident); the layer graph was released
         * after backward, so its capacity is what one layer's forward and backward held */
        bytes[ckpt] = graph_arena_used(g) + (ck ? graph_arena_bytes(checkpointing_graph(ck)) : 0);
        checkpointing_free(ck);
        graph_destroy(g);
    }
    ck_assert_msg(bytes[1] * 2 < bytes[0], "checkpointing holds %zu bytes, the plain pass %zu",
                  bytes[1], bytes[0]);
    lora_free(lora);
    model_free(m);
    free(model_dir);
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_backward_without_a_checkpointed_forward_is_an_error) {
    char *dir = test_tmpdir(), *model_dir = make_test_model(dir), err[1024];
    Model *m = model_load(model_dir, err, sizeof err);
    ck_assert_msg(m != NULL, "%s", err);
    Lora *lora = test_lora(m);
    Graph *g = graph_create();
    Checkpointing *ck = checkpointing_create();
    Micro b;
    fill_micro(&b, 0);
    Tensor *h = model_forward_hidden(m, lora, g, b.ids, b.pos, b.seg, BATCH, SEQ, 1);
    int64_t count;
    Tensor *loss = op_lm_head_cross_entropy(g, h, model_lm_head(m), b.targets, &count);
    ck_assert(loss != NULL);
    ck_assert_int_eq(model_backward_checkpointed(g, ck, loss, 1.0f), -1);
    ck_assert_msg(strstr(checkpointing_error(ck, g), "without a checkpointed forward") != NULL,
                  "%s", checkpointing_error(ck, g));
    /* a checkpointed pass takes exactly one backward */
    graph_reset(g);
    h = model_forward_hidden_checkpointed(m, lora, g, ck, b.ids, b.pos, b.seg, BATCH, SEQ, 1);
    loss = op_lm_head_cross_entropy(g, h, model_lm_head(m), b.targets, &count);
    ck_assert(loss != NULL);
    ck_assert_int_eq(model_backward_checkpointed(g, ck, loss, 1.0f), 0);
    ck_assert_str_eq(checkpointing_error(ck, g), "");
    ck_assert_int_eq(model_backward_checkpointed(g, ck, loss, 1.0f), -1);
    checkpointing_free(ck);
    graph_destroy(g);
    lora_free(lora);
    model_free(m);
    free(model_dir);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- end to end through the lorafit binary ------------------------------------------ */

/* Dropout, packing, grad_accum 2, shuffling, warmup + cosine, evaluation, checkpoints. */
static char *write_job(const char *dir, const char *model_dir) {
    char rows[4200], valid[4200], cfg[8192];
    snprintf(rows, sizeof rows, "%s/rows.jsonl", dir);
    snprintf(valid, sizeof valid, "%s/valid.jsonl", dir);
    if (access(rows, F_OK) != 0) tt_random_rows(rows, 60, 3, 40, VOCAB, 5);
    if (access(valid, F_OK) != 0) tt_random_rows(valid, 10, 3, 40, VOCAB, 6);
    snprintf(cfg, sizeof cfg,
             "model:\n  path: %s\n"
             "lora:\n  r: 4\n  alpha: 8\n  dropout: 0.1\n"
             "data:\n  train: rows.jsonl\n  valid: valid.jsonl\n  seq_len: 32\n"
             "  packing: true\n  overflow: split\n  shuffle: true\n  shuffle_buffer: 16\n"
             "train:\n  batch_size: 2\n  grad_accum: 2\n  max_steps: 6\n  lr: 5.0e-3\n"
             "  warmup_steps: 2\n  lr_scheduler: cosine\n  weight_decay: 0.01\n  seed: 7\n"
             "eval:\n  every: 2\n"
             "output:\n  dir: out\n  save_every: 2\n  keep: 2\n"
             "log:\n  every: 1\n",
             model_dir);
    return tt_write_text(dir, "config.yaml", cfg);
}

/* tt_assert_same_run, on a job long enough to have been cut: 6 steps + 3 evaluations. */
static void assert_same_result(const char *ref, const char *cut, const char *what) {
    json_t *m = tt_stripped_metrics(ref);
    ck_assert_int_ge(json_array_size(m), 9);
    json_decref(m);
    tt_assert_same_run(ref, cut, what);
}

static void train_ok(const char *dir, const char *cfg, const char *sets) {
    char args[8192];
    snprintf(args, sizeof args, "train '%s' %s", cfg, sets);
    tt_expect(dir, args, 0, NULL);
}

/* A job trained with `sets`, then again with gradient checkpointing on too: the same
 * adapter bytes and metrics; config.resolved.yaml records the key. */
static void check_checkpointing_changes_nothing(const char *sets, const char *what) {
    char *ref = test_tmpdir(), *cut = test_tmpdir(), *model_dir = make_test_model(ref);
    char *ref_cfg = write_job(ref, model_dir), *cut_cfg = write_job(cut, model_dir);
    char with[512];
    snprintf(with, sizeof with, "%s --set train.gradient_checkpointing=true", sets);
    train_ok(ref, ref_cfg, sets);
    train_ok(cut, cut_cfg, with);
    assert_same_result(ref, cut, what);
    char path[4400];
    snprintf(path, sizeof path, "%s/out/config.resolved.yaml", cut);
    char *resolved = test_read_file(path, NULL);
    ck_assert_msg(resolved && strstr(resolved, "gradient_checkpointing: true"), "%s", resolved);
    free(resolved);
    test_rmtree(ref);
    test_rmtree(cut);
    free(ref_cfg);
    free(cut_cfg);
    free(ref);
    free(cut);
    free(model_dir);
}

START_TEST(test_train_with_checkpointing_writes_the_same_adapter_and_metrics) {
    check_checkpointing_changes_nothing("", "with gradient checkpointing");
}
END_TEST

START_TEST(test_train_bf16_weights_with_checkpointing_writes_the_same_adapter) {
    check_checkpointing_changes_nothing("--set model.dtype=bf16",
                                        "BF16 weights with gradient checkpointing");
}
END_TEST

/* A job killed with checkpointing on and resumed with it off (and the other way round)
 * ends as the uninterrupted run: the key may change on resume. */
START_TEST(test_resume_may_switch_checkpointing_and_stays_bit_identical) {
    char *ref = test_tmpdir(), *cut = test_tmpdir(), *model_dir = make_test_model(ref);
    char *ref_cfg = write_job(ref, model_dir), *cut_cfg = write_job(cut, model_dir);
    train_ok(ref, ref_cfg, "");
    char log_path[4200];
    snprintf(log_path, sizeof log_path, "%s/log.txt", cut);
    for (int on_first = 0; on_first < 2; on_first++) {
        char out[4200];
        snprintf(out, sizeof out, "%s/out", cut);
        test_rmtree(out);
        const char *first =
            on_first ? "train.gradient_checkpointing=true" : "train.gradient_checkpointing=false";
        const char *second =
            on_first ? "train.gradient_checkpointing=false" : "train.gradient_checkpointing=true";
        const char *argv1[] = {"train", cut_cfg, "--set", first, NULL};
        int code = tt_wait(tt_spawn_fault(argv1, log_path, "kill:step:3"));
        ck_assert_int_eq(code, 128 + SIGKILL);
        const char *argv2[] = {"train", cut_cfg, "--resume", "--set", second, NULL};
        code = tt_wait(tt_spawn(argv2, log_path));
        char *log = test_read_file(log_path, NULL);
        ck_assert_msg(code == 0, "resume with %s failed (%d):\n%s", second, code, log);
        ck_assert_msg(strstr(log, "(step 2)") != NULL, "no resume from step 2:\n%s", log);
        free(log);
        unlink(log_path);
        assert_same_result(ref, cut, second);
    }
    test_rmtree(ref);
    test_rmtree(cut);
    free(ref_cfg);
    free(cut_cfg);
    free(ref);
    free(cut);
    free(model_dir);
}
END_TEST

/* Runs lorafit under an address-space limit of limit_mb (setrlimit through the shell's
 * ulimit -v, in the child only); returns its exit code. One OpenBLAS / OpenMP thread, so
 * the process's own mappings (OpenBLAS reserves 128 MB per thread) do not depend on the
 * machine's core count. Bounded in time: below what OpenBLAS needs to start at all, its
 * allocator retries forever (exit 137 then). */
static int train_limited(const char *dir, const char *cfg, int limit_mb, const char *sets) {
    char cmd[8192], log[4200];
    snprintf(cmd, sizeof cmd,
             "OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 timeout -s KILL 120 sh -c "
             "\"ulimit -v %d && exec '%s' train '%s' %s\"",
             limit_mb * 1024, test_lorafit_bin(), cfg, sets);
    snprintf(log, sizeof log, "%s/log.txt", dir);
    return test_run(cmd, log);
}

/* Out of memory is an error that names the bytes and suggests checkpointing; with it, the
 * same job trains under the same limit. */
START_TEST(test_out_of_memory_suggests_checkpointing_which_then_fits) {
    if (getenv("LORAFIT_SANITIZED")) { /* ASan maps terabytes of shadow: no ulimit -v fits */
        test_skip(__func__, "an address-space limit cannot work under AddressSanitizer");
        return;
    }
    char *dir = test_tmpdir(), *model_dir = make_test_model(dir), cfg_text[4096];
    char rows[4200];
    snprintf(rows, sizeof rows, "%s/rows.jsonl", dir);
    tt_random_rows(rows, 40, 3, 40, VOCAB, 9);
    /* 8 layers x 8 sequences x 512 tokens: the plain step holds every layer's activations,
     * a checkpointed one each layer's input and one layer's activations (the fused attention
     * stores no T x T probabilities in either, so the gap is the layers' other activations). */
    snprintf(cfg_text, sizeof cfg_text,
             "model:\n  path: %s\nlora:\n  r: 4\n"
             "data:\n  train: rows.jsonl\n  seq_len: 512\n"
             "train:\n  batch_size: 8\n  max_steps: 1\n  threads: 1\n"
             "output:\n  dir: out\n",
             model_dir);
    char *cfg = tt_write_text(dir, "config.yaml", cfg_text);
    /* The limit: what the checkpointed job needs, plus margin (the process's mappings —
     * libraries, thread stacks — count in the address space). Measured, not guessed: the
     * smallest limit (in steps of 25%, from 256 MB, where even OpenBLAS and the model fit
     * and the step fails at once as out of memory) under which the checkpointed job trains.
     * From 512 MB the scan missed once the LoRA products stopped calling OpenBLAS: both jobs
     * then fitted in 512 MB, the plain one in about 100 MB more than the checkpointed one. */
    int limit = 0;
    for (int mb = 256; mb <= 8192 && !limit; mb += mb / 4) {
        char out[4200];
        snprintf(out, sizeof out, "%s/out", dir);
        test_rmtree(out);
        if (train_limited(dir, cfg, mb, "--set train.gradient_checkpointing=true") == 0) limit = mb;
    }
    ck_assert_msg(limit > 0, "the checkpointed job never trained:\n%s", tt_log(dir));
    char out[4200];
    snprintf(out, sizeof out, "%s/out", dir);
    test_rmtree(out);
    int rc = train_limited(dir, cfg, limit, "");
    char *log = tt_log(dir);
    ck_assert_msg(rc == 1, "exit %d without checkpointing under %d MB:\n%s", rc, limit, log);
    ck_assert_msg(strstr(log, "out of memory: cannot allocate") != NULL, "%s", log);
    ck_assert_msg(strstr(log, "set train.gradient_checkpointing: true") != NULL, "%s", log);
    ck_assert_msg(strstr(log, "train.batch_size") && strstr(log, "data.seq_len"), "%s", log);
    free(log);
    /* With checkpointing on and a batch far too big, the error names the layer and no
     * longer suggests what is already on. */
    test_rmtree(out);
    rc = train_limited(dir, cfg, limit,
                       "--set train.gradient_checkpointing=true --set train.batch_size=64");
    log = tt_log(dir);
    ck_assert_msg(rc == 1, "exit %d with checkpointing, batch 64, under %d MB:\n%s", rc, limit,
                  log);
    ck_assert_msg(strstr(log, "out of memory") != NULL, "%s", log);
    ck_assert_msg(strstr(log, "gradient_checkpointing") == NULL, "%s", log);
    ck_assert_msg(strstr(log, "train.batch_size") != NULL, "%s", log);
    free(log);
    free(cfg);
    free(model_dir);
    test_rmtree(dir);
    free(dir);
}
END_TEST

Suite *checkpointing_suite(void) {
    Suite *s = suite_create("checkpointing");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_checkpointed_pass_is_bit_identical_f32);
    tcase_add_test(tc, test_checkpointed_pass_is_bit_identical_one_thread);
    tcase_add_test(tc, test_checkpointed_pass_is_bit_identical_bf16_weights);
    tcase_add_test(tc, test_checkpointed_pass_is_bit_identical_bf16_precision);
    tcase_add_test(tc, test_checkpointed_pass_is_bit_identical_bf16_precision_onednn);
    tcase_add_test(tc, test_checkpointed_eval_pass_is_bit_identical);
    tcase_add_test(tc, test_checkpointing_holds_one_layer_of_activations);
    tcase_add_test(tc, test_backward_without_a_checkpointed_forward_is_an_error);
    tcase_add_test(tc, test_train_with_checkpointing_writes_the_same_adapter_and_metrics);
    tcase_add_test(tc, test_train_bf16_weights_with_checkpointing_writes_the_same_adapter);
    tcase_add_test(tc, test_resume_may_switch_checkpointing_and_stays_bit_identical);
    tcase_add_test(tc, test_out_of_memory_suggests_checkpointing_which_then_fits);
    suite_add_tcase(s, tc);
    return s;
}
