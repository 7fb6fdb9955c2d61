/* tests/test_nonfinite.c — a run that diverges stops and says so, and never ships NaN
 * (issue 22): train.on_nonfinite stop and skip, the counters a resume restores, the writers'
 * refusal of a non-finite value, and export and merge refusing a broken checkpoint.
 *
 * The NaN gradient of a chosen step comes from the test fault point LORAFIT_FAULT=nan:step:N
 * (trainer/store/fsio.h); the runs are the committed qwen2-untied test model on random token
 * rows, a few steps each, except the divergence of stories260K the issue reported. */
#include <check.h>
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/test_train_util.h"
#include "tests/test_util.h"
#include "trainer/store/store.h"

/* ---- helpers ------------------------------------------------------------------------ */

/* Sets element `index` of tensor `name` (F32 or BF16) of the safetensors file at path to v,
 * in place, as a bit flip or a tool outside lorafit would. */
static void set_value(const char *path, const char *name, int64_t index, float v) {
    size_t len;
    char *bytes = test_read_file(path, &len);
    ck_assert_msg(bytes && len >= 8, "cannot read %s", path);
    uint64_t hlen = 0;
    memcpy(&hlen, bytes, 8);
    json_t *h = json_loadb(bytes + 8, (size_t)hlen, 0, NULL);
    json_t *t = json_object_get(h, name);
    ck_assert_msg(t != NULL, "%s has no tensor %s", path, name);
    const char *dtype = json_string_value(json_object_get(t, "dtype"));
    size_t begin =
        (size_t)json_integer_value(json_array_get(json_object_get(t, "data_offsets"), 0));
    size_t at = 8 + (size_t)hlen + begin;
    if (strcmp(dtype, "F32") == 0) {
        memcpy(bytes + at + 4 * (size_t)index, &v, 4);
    } else {
        ck_assert_str_eq(dtype, "BF16");
        uint32_t bits;
        memcpy(&bits, &v, 4);
        uint16_t half = (uint16_t)(bits >> 16);
        memcpy(bytes + at + 2 * (size_t)index, &half, 2);
    }
    json_decref(h);
    test_write_file(path, bytes, len);
    free(bytes);
}

/* Fails the test if a floating-point value of a safetensors file under dir (recursively) is
 * not finite; returns how many files it read. */
static int assert_all_finite(const char *dir) {
    DIR *d = opendir(dir);
    ck_assert_msg(d != NULL, "cannot list %s", dir);
    int files = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.') continue;
        char path[4400], err[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat sb;
        ck_assert_int_eq(stat(path, &sb), 0);
        if (S_ISDIR(sb.st_mode)) {
            files += assert_all_finite(path);
            continue;
        }
        size_t n = strlen(e->d_name);
        if (n < 12 || strcmp(e->d_name + n - 12, ".safetensors") != 0) continue;
        SafeTensors *st = st_open(path, err, sizeof err);
        ck_assert_msg(st != NULL, "%s", err);
        for (int i = 0; i < st_count(st); i++) {
            const StTensor *t = st_tensor_at(st, i);
            if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16) continue;
            float *f = malloc((size_t)(t->numel ? t->numel : 1) * sizeof *f);
            ck_assert_int_eq(st_to_float(t, f, err, sizeof err), 0);
            for (int64_t j = 0; j < t->numel; j++)
                ck_assert_msg(isfinite(f[j]), "%s: %s[%lld] = %g", path, t->name, (long long)j,
                              f[j]);
            free(f);
        }
        st_close(st);
        files++;
    }
    closedir(d);
    return files;
}

static bool exists(const char *dir, const char *name) {
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

/* An output at dir/name: a file, or a directory holding more than the lock file an exporter
 * takes before it builds the directory under a temporary name (what a failed export leaves). */
static bool written(const char *dir, const char *name) {
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    DIR *d = opendir(path);
    if (!d) return access(path, F_OK) == 0;
    bool content = false;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        content |= strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, ".lock");
    closedir(d);
    return content;
}

/* `lorafit ARGS` in dir with LORAFIT_FAULT=fault (NULL: none); the exit code. */
static int lorafit_with_fault(const char *dir, const char *fault, const char *args) {
    if (fault) setenv("LORAFIT_FAULT", fault, 1);
    int rc = tt_lorafit(dir, args);
    unsetenv("LORAFIT_FAULT");
    return rc;
}

static void expect_in_log(const char *dir, const char *needle) {
    char *log = tt_log(dir);
    ck_assert_msg(strstr(log, needle) != NULL, "'%s' not in:\n%s", needle, log);
    free(log);
}

/* The last metrics line's integer `key`. */
static int64_t last_metric(const char *out_dir, const char *key) {
    json_t *m = tt_metrics(out_dir);
    json_t *v = NULL;
    size_t i;
    json_t *line;
    json_array_foreach(m, i, line) if (json_object_get(line, "loss")) v =
        json_object_get(line, key);
    ck_assert_msg(json_is_integer(v), "no integer %s in %s/metrics.jsonl", key, out_dir);
    int64_t n = json_integer_value(v);
    json_decref(m);
    return n;
}

/* The job on qwen2-untied: 2 rows a step, in file order, constant lr after 3 warmup steps
 * (the warmup shows whether a skipped step moved the schedule), weight decay (whether it
 * moved the weights), no dropout; a checkpoint every step. DIR/job.yaml (caller frees). */
static char *write_job(const char *dir, const char *rows, int max_steps) {
    char cfg[8192], root[4096];
    ck_assert(realpath(".", root) != NULL);
    snprintf(cfg, sizeof cfg,
             "model:\n  path: %s/tests/data/train/qwen2-untied/model\n"
             "lora:\n  r: 4\n  alpha: 8\n"
             "data:\n  train: %s\n  seq_len: 16\n  shuffle: false\n"
             "train:\n  batch_size: 2\n  max_steps: %d\n  lr: 2.0e-2\n  lr_scheduler: constant\n"
             "  warmup_steps: 3\n  weight_decay: 0.1\n  seed: 3\n  threads: 1\n"
             "output:\n  dir: out\n  save_every: 1\n  keep: 100\n"
             "log:\n  every: 1\n",
             root, rows, max_steps);
    return tt_write_text(dir, "job.yaml", cfg);
}

/* Every tensor of a and b whose name starts with prefix holds the same bytes. */
static void assert_same_tensors(const char *a, const char *b, const char *prefix) {
    char err[1024];
    SafeTensors *sa = st_open(a, err, sizeof err), *sb = st_open(b, err, sizeof err);
    ck_assert_msg(sa && sb, "%s", err);
    int compared = 0;
    for (int i = 0; i < st_count(sa); i++) {
        const StTensor *ta = st_tensor_at(sa, i);
        if (strncmp(ta->name, prefix, strlen(prefix)) != 0) continue;
        const StTensor *tb = st_find(sb, ta->name);
        ck_assert_msg(tb && tb->nbytes == ta->nbytes && !memcmp(ta->data, tb->data, ta->nbytes),
                      "%s differs between %s and %s", ta->name, a, b);
        compared++;
    }
    ck_assert_int_gt(compared, 0);
    st_close(sa);
    st_close(sb);
}

/* ---- the writers ------------------------------------------------------------------- */

/* Every encoding the writers produce is checked on its bytes, the first bad element named;
 * a refused file leaves nothing behind. */
START_TEST(test_writers_refuse_a_nonfinite_value_in_every_encoding) {
    char err[1024];
    float f32[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    ck_assert_int_eq(store_check_finite(STORE_F32, f32, sizeof f32, "f", "t", err, sizeof err), 0);
    f32[5] = -INFINITY;
    ck_assert_int_eq(store_check_finite(STORE_F32, f32, sizeof f32, "f", "t", err, sizeof err), -1);
    ck_assert_msg(strstr(err, "f: tensor 't' holds -inf at element 5 (as F32)"), "%s", err);
    static float big[10000]; /* past the first blocks the check takes at once */
    big[9000] = NAN;
    ck_assert_int_eq(store_check_finite(STORE_F32, big, sizeof big, "f", "t", err, sizeof err), -1);
    ck_assert_msg(strstr(err, "holds NaN at element 9000 (as F32)"), "%s", err);
    double f64[3] = {0, NAN, 1};
    ck_assert_int_eq(store_check_finite(STORE_F64, f64, sizeof f64, "f", "t", err, sizeof err), -1);
    ck_assert_msg(strstr(err, "holds NaN at element 1 (as F64)"), "%s", err);
    uint16_t half[4] = {0x3c00, 0xbc00, 0x7c00, 0}; /* 1, -1, inf (65504 < x rounds here) */
    ck_assert_int_eq(store_check_finite(STORE_F16, half, sizeof half, "f", "t", err, sizeof err),
                     -1);
    ck_assert_msg(strstr(err, "inf at element 2 (as F16)") && strstr(err, "65504"), "%s", err);
    half[2] = 0x7bff; /* 65504 */
    ck_assert_int_eq(store_check_finite(STORE_F16, half, sizeof half, "f", "t", err, sizeof err),
                     0);
    uint16_t bf16[2] = {0x3f80, 0x7fc0}; /* 1, NaN */
    ck_assert_int_eq(store_check_finite(STORE_BF16, bf16, sizeof bf16, "f", "t", err, sizeof err),
                     -1);
    ck_assert_msg(strstr(err, "NaN at element 1 (as BF16)"), "%s", err);
    float q[64];
    for (int i = 0; i < 64; i++) q[i] = (float)i - 20;
    uint8_t blocks[2 * GGML_Q8_0_BLOCK_BYTES];
    quant_quantize_row(GGML_TYPE_Q8_0, q, blocks, 64);
    ck_assert_int_eq(
        store_check_finite(STORE_Q8_0, blocks, sizeof blocks, "f", "t", err, sizeof err), 0);
    q[40] = 1e7f; /* finite, but its block's scale 1e7 / 127 overflows F16 */
    quant_quantize_row(GGML_TYPE_Q8_0, q, blocks, 64);
    ck_assert_int_eq(
        store_check_finite(STORE_Q8_0, blocks, sizeof blocks, "f", "t", err, sizeof err), -1);
    ck_assert_msg(strstr(err, "inf at element 32 (the scale of its Q8_0 block)"), "%s", err);
    int32_t ints[2] = {-1, 0x7fffffff}; /* integers are never floating point */
    ck_assert_int_eq(
        store_check_finite(STORE_NOT_FLOAT, ints, sizeof ints, "f", "t", err, sizeof err), 0);

    /* Through the writers: refused, the file absent, no temporary left. */
    char *dir = test_tmpdir(), path[4400];
    snprintf(path, sizeof path, "%s/a.safetensors", dir);
    float good[2] = {1, 2}, bad[2] = {3, NAN};
    int64_t shape[1] = {2};
    StWriter *w = st_writer_new();
    ck_assert_int_eq(st_writer_add(w, "good", ST_F32, 1, shape, good, err, sizeof err), 0);
    ck_assert_int_eq(st_writer_add(w, "bad", ST_F32, 1, shape, bad, err, sizeof err), 0);
    ck_assert_int_eq(st_writer_save(w, path, err, sizeof err), -1);
    st_writer_free(w);
    ck_assert_msg(strstr(err, "a.safetensors: tensor 'bad' holds NaN at element 1"), "%s", err);
    snprintf(path, sizeof path, "%s/a.gguf", dir);
    GgufWriter *g = gguf_writer_new();
    ck_assert_int_eq(
        gguf_add_tensor(g, "blk.0.bad", GGML_TYPE_F32, 1, shape, bad, NULL, NULL, err, sizeof err),
        0);
    ck_assert_int_eq(gguf_writer_save(g, path, err, sizeof err), -1);
    gguf_writer_free(g);
    ck_assert_msg(strstr(err, "a.gguf: tensor 'blk.0.bad' holds NaN at element 1"), "%s", err);
    DIR *d = opendir(dir);
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        ck_assert_msg(e->d_name[0] == '.', "%s was left in %s", e->d_name, dir);
    closedir(d);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- stories260K diverging, as the issue reported it -------------------------------- */

static void diverge_args(char *args, size_t len, const char *shared, const char *dir,
                         const char *extra) {
    char root[4096];
    ck_assert(realpath(".", root) != NULL);
    snprintf(args, len,
             "train '%s/configs/tinystories-stories260K.yaml' --set 'model.path=%s/models/"
             "stories260K' --set 'data.train=%s/data/tinystories/train.jsonl.gz' --set "
             "'data.valid=%s/data/tinystories/valid.jsonl' --set 'output.dir=%s/out' --set "
             "train.lr=1e38 --set train.max_grad_norm=0 --set train.max_steps=6 --set "
             "train.batch_size=2 --set data.seq_len=64 --set data.shuffle_buffer=64 --set "
             "eval.max_batches=2 --set output.save_every=1 --set train.threads=1 %s",
             root, shared, shared, shared, dir, extra);
}

/* lr 1e38 without clipping: step 1 lands finite weights (the config's warmup divides the lr
 * by 21), step 2's loss is NaN. The run stops there naming step 2 and checkpoint-1, writes
 * nothing after it, and no file under the output directory holds a non-finite value; a
 * resume continues from checkpoint-1 as usual (with skip, to the end: its NaN evaluation is
 * reported and ends nothing). Without warmup step 1's update itself would overflow, and the
 * run stops before anything is written. */
START_TEST(test_diverging_stories260K_stops_at_its_last_good_checkpoint) {
    TEST_NEED_SHARED(shared);
    char *dir = test_tmpdir(), args[16384], out[4300], needle[4400];
    snprintf(out, sizeof out, "%s/out", dir);
    diverge_args(args, sizeof args, shared, dir, "");
    tt_expect(dir, args, 1,
              "lorafit train: step 2: the loss (NaN) and the gradient norm (NaN) "
              "are not finite; its update was not applied");
    snprintf(needle, sizeof needle, "The last checkpoint is %s/checkpoint-1, and every value", out);
    expect_in_log(dir, needle);
    expect_in_log(dir, "Try a lower train.lr (now 1e+38), train.max_grad_norm (clipping is off");
    expect_in_log(dir, "train.precision: f32");
    ck_assert(exists(out, "checkpoint-1") && !exists(out, "checkpoint-2"));
    ck_assert(!exists(out, "adapter"));
    ck_assert_int_eq(assert_all_finite(out), 2);
    json_t *m = tt_metrics(out); /* step 1 logged; the stopped step is not a finished one */
    ck_assert_int_eq((int)json_array_size(m), 1);
    json_decref(m);

    diverge_args(args, sizeof args, shared, dir, "--resume --set train.on_nonfinite=skip");
    tt_expect(dir, args, 0, "5 steps skipped as not finite (train.on_nonfinite: skip)");
    snprintf(needle, sizeof needle, "resuming from %s/checkpoint-1 (step 1)", out);
    expect_in_log(dir, needle);
    expect_in_log(dir, "eval_loss nan over");
    expect_in_log(dir, "(not finite; the run goes on)");
    ck_assert_int_eq(last_metric(out, "nonfinite_skipped"), 5);
    ck_assert(exists(out, "adapter"));
    ck_assert_int_gt(assert_all_finite(out), 2);
    m = tt_metrics(out);
    json_t *last = json_array_get(m, json_array_size(m) - 1);
    ck_assert_msg(json_is_null(json_object_get(last, "eval_loss")), "eval_loss is not null");
    json_decref(m);

    test_rmtree(out);
    diverge_args(args, sizeof args, shared, dir, "--set train.warmup_steps=0");
    tt_expect(dir, args, 1,
              "are finite, but the update at learning rate 1e+38 would make LoRA "
              "weights or AdamW moments not finite");
    expect_in_log(dir, "lorafit train: step 1: the loss (");
    expect_in_log(dir, "No checkpoint was written yet.");
    ck_assert(!exists(out, "checkpoint-1") && !exists(out, "adapter"));
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- skip, against a run that never saw the step ------------------------------------ */

/* Rows 0..39; rows_without 4 and 5 are what step 3 (rows 4, 5) would have trained on. */
static void write_rows(const char *dir) {
    char all[4400], without[4400];
    snprintf(all, sizeof all, "%s/rows.jsonl", dir);
    snprintf(without, sizeof without, "%s/rows_without_step3.jsonl", dir);
    tt_random_rows(all, 40, 4, 14, 97, 11);
    FILE *in = fopen(all, "r"), *out = fopen(without, "w");
    char line[4096];
    for (int i = 0; fgets(line, sizeof line, in); i++)
        if (i != 4 && i != 5) fputs(line, out);
    fclose(in);
    fclose(out);
}

/* A NaN gradient at step 3 with skip: the run ends with the adapter, AdamW moments and all of
 * a run whose data lacked step 3's rows (one step shorter), so the skipped step moved
 * neither the weights (not even by weight decay), nor the moments, nor AdamW's step count,
 * nor the warmup; checkpoint-3 holds checkpoint-2's tensors; nonfinite_skipped is 1. With
 * stop, the same step ends the run naming checkpoint-2. */
START_TEST(test_skip_drops_the_update_like_data_without_that_step) {
    char *skip = test_tmpdir(), *ref = test_tmpdir(), *stop = test_tmpdir();
    write_rows(skip);
    write_rows(ref);
    write_rows(stop);
    char *cfg = write_job(skip, "rows.jsonl", 6),
         *ref_cfg = write_job(ref, "rows_without_step3.jsonl", 5);
    char args[8192], a[4400], b[4400];
    snprintf(args, sizeof args, "train '%s' --set train.on_nonfinite=skip", cfg);
    ck_assert_int_eq(lorafit_with_fault(skip, "nan:step:3", args), 0);
    expect_in_log(skip, "lorafit: step 3: the gradient norm (NaN) is not finite: a LoRA gradient "
                        "is NaN or infinite");
    expect_in_log(skip, "update skipped (train.on_nonfinite: skip), 1 in a row");
    expect_in_log(skip, "1 step skipped as not finite");
    snprintf(args, sizeof args, "train '%s'", ref_cfg);
    tt_expect(ref, args, 0, NULL);
    snprintf(a, sizeof a, "%s/out/adapter/adapter_model.safetensors", skip);
    snprintf(b, sizeof b, "%s/out/adapter/adapter_model.safetensors", ref);
    ck_assert_msg(tt_same_bytes(a, b), "the adapter differs from the run without step 3's rows");
    snprintf(a, sizeof a, "%s/out/checkpoint-6/trainer_state.safetensors", skip);
    snprintf(b, sizeof b, "%s/out/checkpoint-5/trainer_state.safetensors", ref);
    assert_same_tensors(a, b, "exp_avg");
    snprintf(a, sizeof a, "%s/out/checkpoint-3/trainer_state.safetensors", skip);
    snprintf(b, sizeof b, "%s/out/checkpoint-2/trainer_state.safetensors", skip);
    assert_same_tensors(a, b, "exp_avg");
    snprintf(a, sizeof a, "%s/out/checkpoint-3/adapter_model.safetensors", skip);
    snprintf(b, sizeof b, "%s/out/checkpoint-2/adapter_model.safetensors", skip);
    assert_same_tensors(a, b, "base_model");
    char out[4400];
    snprintf(out, sizeof out, "%s/out", skip);
    ck_assert_int_eq(last_metric(out, "nonfinite_skipped"), 1);
    snprintf(a, sizeof a, "%s/out/adapter/README.md", skip); /* the model card counts it too */
    char *card = test_read_file(a, NULL);
    ck_assert_msg(
        card && strstr(card, "| steps | 6 |") &&
            strstr(card, "| steps skipped as not finite | 1 (train.on_nonfinite: skip) |"),
        "%s", card);
    free(card);
    json_t *m = tt_metrics(out); /* step 3's line: no loss of its own, the lr it did not take */
    json_t *l3 = json_array_get(m, 2), *l4 = json_array_get(m, 3);
    ck_assert(json_is_null(json_object_get(l3, "loss")) &&
              json_is_null(json_object_get(l3, "grad_norm")));
    ck_assert_int_eq(json_integer_value(json_object_get(l3, "nonfinite_skipped")), 1);
    ck_assert_double_eq(json_number_value(json_object_get(l3, "lr")),
                        json_number_value(json_object_get(l4, "lr")));
    json_decref(m);

    char *stop_cfg = write_job(stop, "rows.jsonl", 6);
    snprintf(args, sizeof args, "train '%s'", stop_cfg);
    ck_assert_int_eq(lorafit_with_fault(stop, "nan:step:3", args), 1);
    char needle[4600];
    snprintf(needle, sizeof needle,
             "lorafit train: step 3: the gradient norm (NaN) is not finite: a LoRA gradient is "
             "NaN or infinite (the loss is ");
    expect_in_log(stop, needle);
    snprintf(needle, sizeof needle,
             "(train.on_nonfinite: stop), without writing a checkpoint or an adapter. The last "
             "checkpoint is %s/out/checkpoint-2",
             stop);
    expect_in_log(stop, needle);
    ck_assert(!exists(stop, "out/checkpoint-3") && !exists(stop, "out/adapter"));
    free(stop_cfg);
    free(cfg);
    free(ref_cfg);
    test_rmtree(skip), test_rmtree(ref), test_rmtree(stop);
    free(skip), free(ref), free(stop);
}
END_TEST

/* train.max_nonfinite_skips steps in a row stop a skip run at the last of them, with the
 * message of stop; as many that are not in a row do not. */
START_TEST(test_max_nonfinite_skips_in_a_row_stop_the_run) {
    char *dir = test_tmpdir();
    write_rows(dir);
    char *cfg = write_job(dir, "rows.jsonl", 7), args[8192], out[4300];
    snprintf(out, sizeof out, "%s/out", dir);
    snprintf(args, sizeof args,
             "train '%s' --set train.on_nonfinite=skip --set train.max_nonfinite_skips=3", cfg);
    ck_assert_int_eq(lorafit_with_fault(dir, "nan:step:2,nan:step:3,nan:step:5,nan:step:6", args),
                     0);
    ck_assert_int_eq(last_metric(out, "nonfinite_skipped"), 4);
    expect_in_log(dir, "4 steps skipped as not finite");
    test_rmtree(out);
    ck_assert_int_eq(lorafit_with_fault(dir, "nan:step:2,nan:step:3,nan:step:4", args), 1);
    expect_in_log(dir, "lorafit train: step 4: the gradient norm (NaN) is not finite");
    expect_in_log(dir, "(train.on_nonfinite: skip, and 3 steps in a row were not finite: "
                       "train.max_nonfinite_skips)");
    expect_in_log(dir, "or a larger train.max_nonfinite_skips");
    ck_assert(exists(out, "checkpoint-3") && !exists(out, "checkpoint-4"));
    ck_assert(!exists(out, "adapter"));
    ck_assert_int_eq(last_metric(out, "nonfinite_skipped"), 2);
    free(cfg);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- a broken base model, a broken checkpoint -------------------------------------- */

/* One NaN weight in the base model: the run stops at step 1, says that the base model's own
 * loss is not finite (a fresh adapter changes nothing yet), and writes no checkpoint. */
START_TEST(test_a_nan_base_weight_stops_the_run_at_step_1) {
    char *dir = test_tmpdir(), model[4300], from[4300], to[4400], args[8192];
    snprintf(model, sizeof model, "%s/model", dir);
    ck_assert_int_eq(mkdir(model, 0755), 0);
    const char *files[] = {"config.json", "model.safetensors"};
    for (int i = 0; i < 2; i++) {
        size_t len;
        snprintf(from, sizeof from, "tests/data/train/qwen2-untied/model/%s", files[i]);
        char *bytes = test_read_file(from, &len);
        snprintf(to, sizeof to, "%s/%s", model, files[i]);
        test_write_file(to, bytes, len);
        free(bytes);
    }
    set_value(to, "model.layers.1.mlp.up_proj.weight", 77, NAN);
    write_rows(dir);
    char *cfg = write_job(dir, "rows.jsonl", 4);
    snprintf(args, sizeof args, "train '%s' --set 'model.path=%s'", cfg, model);
    tt_expect(dir, args, 1, "lorafit train: step 1: the loss (NaN) and the gradient norm (NaN)");
    expect_in_log(dir, "No checkpoint was written yet.");
    expect_in_log(dir, "the base model's own loss is not finite on this data: check the weights");
    ck_assert(!exists(dir, "out/checkpoint-1") && !exists(dir, "out/adapter"));
    free(cfg);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* A checkpoint edited to hold a NaN (its MANIFEST rewritten, as a lorafit before this check
 * would have written it): export (PEFT and GGUF), merge (HF and GGUF) and a resume refuse it,
 * naming the tensor, and leave no output. A finite adapter whose export or merge would
 * overflow (F16's range, W + s B A beyond float) is refused the same way. */
START_TEST(test_export_and_merge_refuse_a_nonfinite_checkpoint) {
    char *dir = test_tmpdir(), args[16384], ckpt[4300], st[4400], err[1024];
    write_rows(dir);
    char *cfg = write_job(dir, "rows.jsonl", 2);
    snprintf(args, sizeof args, "train '%s'", cfg);
    tt_expect(dir, args, 0, NULL);
    snprintf(ckpt, sizeof ckpt, "%s/out/checkpoint-2", dir);
    snprintf(st, sizeof st, "%s/adapter_model.safetensors", ckpt);
    const char *files[] = {"adapter_model.safetensors", "adapter_config.json",
                           "trainer_state.safetensors"};
    const char *b = "base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight";
    set_value(st, b, 3, NAN);
    ck_assert_msg(manifest_write(ckpt, files, 3, err, sizeof err) == 0, "%s", err);
    char model[4300], needle[4600];
    ck_assert(realpath("tests/data/train/qwen2-untied/model", model) != NULL);
    snprintf(needle, sizeof needle, "tensor '%s' holds NaN at element 3", b);
    const char *commands[] = {
        "export '%s' --out '%s/exp'",
        "export '%s' --format gguf --out '%s/exp.gguf'",
        "merge --model '%s' --adapter '%s' --out '%s/merged'",
        "merge --model '%s' --adapter '%s' --format gguf --out '%s/merged.gguf'",
    };
    for (int i = 0; i < 4; i++) {
        if (i < 2)
            snprintf(args, sizeof args, commands[i], ckpt, dir);
        else
            snprintf(args, sizeof args, commands[i], model, ckpt, dir);
        tt_expect(dir, args, 1, i == 1 ? "tensor 'blk.1.attn_q.weight.lora_b' holds NaN" : needle);
    }
    const char *outputs[] = {"exp", "exp.gguf", "merged", "merged.gguf"};
    for (int i = 0; i < 4; i++)
        ck_assert_msg(!written(dir, outputs[i]), "%s was written", outputs[i]);
    snprintf(args, sizeof args, "train '%s' --resume '%s' --set train.max_steps=3", cfg, ckpt);
    tt_expect(dir, args, 1, needle);
    expect_in_log(dir, "this adapter is broken");

    /* Finite, but not once converted: 1e5 as F16; W + s B A beyond float's range. */
    set_value(st, b, 3, 1e5f);
    ck_assert_msg(manifest_write(ckpt, files, 3, err, sizeof err) == 0, "%s", err);
    snprintf(args, sizeof args, "export '%s' --dtype f16 --out '%s/exp'", ckpt, dir);
    tt_expect(dir, args, 1, "holds inf at element 3 (as F16)");
    expect_in_log(dir, "F16 holds at most ±65504");
    set_value(st, b, 3, 1e30f); /* B[0][3], times A[3][i] = 1e30: 1e60 */
    set_value(st, "base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight", 3 * 32, 1e30f);
    ck_assert_msg(manifest_write(ckpt, files, 3, err, sizeof err) == 0, "%s", err);
    snprintf(args, sizeof args, "merge --model '%s' --adapter '%s' --out '%s/merged'", model, ckpt,
             dir);
    tt_expect(dir, args, 1, "tensor 'model.layers.1.self_attn.q_proj.weight' holds inf at element");
    ck_assert(!written(dir, "exp") && !written(dir, "merged"));
    free(cfg);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* An evaluation whose loss is not finite (a NaN embedding row of a token only the
 * validation rows hold) is logged as null and "nan", and the run (stop) goes on to its end;
 * `lorafit eval` prints null too, as JSON has no NaN. */
START_TEST(test_a_nonfinite_eval_loss_is_reported_and_ends_nothing) {
    char *dir = test_tmpdir(), model[4300], from[4300], to[4400], args[8192], rows[4300];
    snprintf(model, sizeof model, "%s/model", dir);
    ck_assert_int_eq(mkdir(model, 0755), 0);
    const char *files[] = {"config.json", "model.safetensors"};
    for (int i = 0; i < 2; i++) {
        size_t len;
        snprintf(from, sizeof from, "tests/data/train/qwen2-untied/model/%s", files[i]);
        char *bytes = test_read_file(from, &len);
        snprintf(to, sizeof to, "%s/%s", model, files[i]);
        test_write_file(to, bytes, len);
        free(bytes);
    }
    set_value(to, "model.embed_tokens.weight", 96 * 32 + 5, NAN); /* token 96's row */
    snprintf(rows, sizeof rows, "%s/rows.jsonl", dir);
    tt_random_rows(rows, 40, 4, 14, 90, 11); /* ids below 90 */
    char *valid = tt_write_text(dir, "valid.jsonl", "{\"input_ids\": [1, 5, 96, 7, 8]}\n");
    char *cfg = write_job(dir, "rows.jsonl", 4);
    snprintf(args, sizeof args,
             "train '%s' --set 'model.path=%s' --set 'data.valid=%s' --set eval.every=2", cfg,
             model, valid);
    tt_expect(dir, args, 0, "step 2  eval_loss nan over 4 tokens (not finite; the run goes on)");
    expect_in_log(dir, "eval loss: final nan, best none finite");
    char out[4300];
    snprintf(out, sizeof out, "%s/out", dir);
    json_t *m = tt_metrics(out);
    int evals = 0;
    size_t i;
    json_t *line;
    json_array_foreach(m, i, line) {
        json_t *e = json_object_get(line, "eval_loss");
        if (e) ck_assert(json_is_null(e)), evals++;
    }
    ck_assert_int_eq(evals, 2);
    json_decref(m);
    ck_assert(exists(out, "adapter"));
    snprintf(args, sizeof args, "eval '%s' --set 'model.path=%s' --set 'data.valid=%s'", cfg, model,
             valid);
    tt_expect(dir, args, 0, "{\"eval_loss\": null, \"eval_tokens\": 4, \"data\": \"valid\"}");
    free(valid);
    free(cfg);
    test_rmtree(dir);
    free(dir);
}
END_TEST

Suite *nonfinite_suite(void) {
    Suite *s = suite_create("nonfinite");
    TCase *tc = tcase_create("nonfinite");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_writers_refuse_a_nonfinite_value_in_every_encoding);
    tcase_add_test(tc, test_diverging_stories260K_stops_at_its_last_good_checkpoint);
    tcase_add_test(tc, test_skip_drops_the_update_like_data_without_that_step);
    tcase_add_test(tc, test_max_nonfinite_skips_in_a_row_stop_the_run);
    tcase_add_test(tc, test_a_nan_base_weight_stops_the_run_at_step_1);
    tcase_add_test(tc, test_export_and_merge_refuse_a_nonfinite_checkpoint);
    tcase_add_test(tc, test_a_nonfinite_eval_loss_is_reported_and_ends_nothing);
    suite_add_tcase(s, tc);
    return s;
}
