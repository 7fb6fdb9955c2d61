/* tests/test_quantize_load.c — model.quantize: a Hugging Face base's linear weights quantized
 * at load to llama.cpp's reference blocks, and training on them.
 *
 * quant_quantize_row itself is held to ggml's bytes by test_tensor_quant (committed vectors);
 * here the loaded blocks must be exactly its output for the checkpoint's rows, in the type
 * llama-quantize would pick (its fallbacks for rows a type cannot hold), and a run on the
 * quantized base must be a run on an F32 base holding the dequantized values. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/test_train_util.h"
#include "tests/test_util.h"
#include "trainer/model/model.h"
#include "trainer/store/store.h"

/* out = a + "/" + b, which must fit. */
static void join(char *out, size_t n, const char *a, const char *b) {
    ck_assert((size_t)snprintf(out, n, "%s/%s", a, b) < n);
}

/* A random llama whose linears' rows (IN = 256 or 512) every K-quant holds. */
static void make_model_256(const char *dir, const char *dtype) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "'%s/make_model' --out '%s' --arch llama --hidden 256 --intermediate 512 --layers 2 "
             "--heads 4 --kv-heads 2 --vocab 96 --seed 11 --dtype %s",
             test_tools_dir(), dir, dtype);
    ck_assert_msg(test_run(cmd, "/dev/null") == 0, "make_model failed: %s", cmd);
}

/* Every linear of q (loaded with model.quantize `type`) is in the type want(mod) and holds
 * exactly quant_quantize_row's bytes of the F32 model f's rows; lm_head is not quantized. */
static void check_blocks(const Model *q, const Model *f, GgmlType type, const GgmlType *want) {
    const ModelConfig *c = model_config(q);
    for (int l = 0; l < c->num_hidden_layers; l++)
        for (int mod = 0; mod < MODULE_COUNT; mod++) {
            if (!(model_modules(c) & (1u << mod))) continue;
            const Tensor *w = model_weight(q, l, (ModelModule)mod);
            const Tensor *r = model_weight(f, l, (ModelModule)mod);
            int64_t out = r->shape[0], in = r->shape[1];
            ck_assert_msg(w->quant && !w->data && !w->bf16, "%s layer %d %s not quantized",
                          ggml_type_name(type), l, model_module_name((ModelModule)mod));
            ck_assert_msg(w->quant_type == want[mod], "%s layer %d %s: %s, want %s",
                          ggml_type_name(type), l, model_module_name((ModelModule)mod),
                          ggml_type_name(w->quant_type), ggml_type_name(want[mod]));
            ck_assert(w->shape[0] == out && w->shape[1] == in);
            size_t row = ggml_row_bytes(want[mod], in);
            uint8_t *buf = malloc(row);
            for (int64_t o = 0; o < out; o++) {
                ck_assert_int_eq(quant_quantize_row(want[mod], r->data + o * in, buf, in), 0);
                ck_assert_msg(memcmp(buf, (const uint8_t *)w->quant + o * row, row) == 0,
                              "%s layer %d %s row %lld differs from the reference quantizer",
                              ggml_type_name(type), l, model_module_name((ModelModule)mod),
                              (long long)o);
            }
            free(buf);
        }
    ck_assert(model_lm_head(q)->quant == NULL);
}

static const GgmlType QUANTIZE_TYPES[] = {GGML_TYPE_Q8_0, GGML_TYPE_Q4_0, GGML_TYPE_Q4_K,
                                          GGML_TYPE_Q5_K, GGML_TYPE_Q6_K};

/* Rows of 256 and 512: every type as asked, from an F32 and from a BF16 checkpoint, with the
 * model's matrices F32 or BF16 around them. */
START_TEST(test_linears_hold_the_reference_blocks_of_each_type) {
    char *dir = test_tmpdir(), err[1024], path[4200];
    for (int bf16 = 0; bf16 < 2; bf16++) {
        snprintf(path, sizeof path, "%s/%s", dir, bf16 ? "bf16" : "f32");
        make_model_256(path, bf16 ? "bf16" : "f32");
        Model *f = model_load(path, err, sizeof err);
        ck_assert_msg(f != NULL, "%s", err);
        for (int t = 0; t < 5; t++) {
            GgmlType want[MODULE_COUNT];
            for (int k = 0; k < MODULE_COUNT; k++) want[k] = QUANTIZE_TYPES[t];
            Model *q = model_load_quantized(path, bf16 ? MODEL_BF16 : MODEL_F32, QUANTIZE_TYPES[t],
                                            err, sizeof err);
            ck_assert_msg(q != NULL, "%s", err);
            check_blocks(q, f, QUANTIZE_TYPES[t], want);
            ck_assert(model_lm_head(q)->quant == NULL &&
                      (bf16 ? model_lm_head(q)->bf16 != NULL : model_lm_head(q)->data != NULL));
            model_free(q);
        }
        model_free(f);
    }
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* stories260K (rows of 64, down_proj's of 172): llama-quantize's fallbacks, Q4_K -> Q5_0,
 * Q5_K -> Q5_1, Q6_K -> Q8_0, and F16 where 32 does not divide the row either. */
START_TEST(test_rows_a_type_cannot_hold_fall_back_as_llama_quantize_does) {
    TEST_NEED_SHARED(shared);
    char path[4200], err[1024];
    snprintf(path, sizeof path, "%s/models/stories260K", shared);
    const GgmlType rows64[] = {GGML_TYPE_Q8_0, GGML_TYPE_Q4_0, GGML_TYPE_Q5_0, GGML_TYPE_Q5_1,
                               GGML_TYPE_Q8_0};
    Model *f = model_load(path, err, sizeof err);
    ck_assert_msg(f != NULL, "%s", err);
    for (int t = 0; t < 5; t++) {
        GgmlType want[MODULE_COUNT];
        for (int k = 0; k < MODULE_COUNT; k++) want[k] = rows64[t];
        want[MODULE_DOWN] = GGML_TYPE_F16;
        Model *q = model_load_quantized(path, MODEL_F32, QUANTIZE_TYPES[t], err, sizeof err);
        ck_assert_msg(q != NULL, "%s", err);
        check_blocks(q, f, QUANTIZE_TYPES[t], want);
        ck_assert(model_weight_bytes(q) < model_weight_bytes(f));
        model_free(q);
    }
    model_free(f);
    ck_assert_int_eq(model_quant_type_for(GGML_TYPE_Q4_K, 768), GGML_TYPE_Q4_K);
    ck_assert_int_eq(model_quant_type_for(GGML_TYPE_Q6_K, 96), GGML_TYPE_Q8_0);
    ck_assert_int_eq(model_quant_type_for(GGML_TYPE_Q5_K, 48), GGML_TYPE_F16);
    ck_assert_int_eq(model_quant_type_for(GGML_TYPE_Q8_0, 48), GGML_TYPE_F16);
    ck_assert(model_load_quantized(path, MODEL_F32, GGML_TYPE_Q3_K, err, sizeof err) == NULL);
    ck_assert_msg(strstr(err, "cannot quantize") != NULL, "%s", err);
}
END_TEST

typedef struct {
    const Tensor *w;
    const StTensor *src;
} DequantFill;

static int fill_dequantized(void *ctx, void *dst, size_t nbytes, char *err, size_t errlen) {
    const DequantFill *d = ctx;
    (void)nbytes;
    if (!d->w) return st_to_float(d->src, dst, err, errlen);
    tensor_dequantize_rows(dst, d->w, 0, d->w->shape[0]);
    return 0;
}

/* DST: the model SRC with every linear weight replaced by q's dequantized values (F32). */
static void write_dequantized(const char *src, const char *dst, const Model *q) {
    char path[4200], err[1024];
    mkdir(dst, 0755);
    join(path, sizeof path, src, "config.json");
    size_t len;
    char *cfg = test_read_file(path, &len);
    join(path, sizeof path, dst, "config.json");
    test_write_file(path, cfg, len);
    free(cfg);
    join(path, sizeof path, src, "model.safetensors");
    SafeTensors *st = st_open(path, err, sizeof err);
    ck_assert_msg(st != NULL, "%s", err);
    int n = st_count(st);
    DequantFill *fills = calloc((size_t)n, sizeof *fills);
    StWriter *w = st_writer_new();
    const ModelConfig *c = model_config(q);
    for (int i = 0; i < n; i++) {
        const StTensor *t = st_tensor_at(st, i);
        fills[i].src = t;
        for (int l = 0; l < c->num_hidden_layers; l++)
            for (int mod = 0; mod < MODULE_COUNT; mod++) {
                char name[128];
                snprintf(name, sizeof name, "model.layers.%d.%s.weight", l,
                         model_module_path((ModelModule)mod));
                if (strcmp(name, t->name) == 0) fills[i].w = model_weight(q, l, (ModelModule)mod);
            }
        ck_assert(st_writer_add_fill(w, t->name, ST_F32, t->ndim, t->shape, fill_dequantized,
                                     &fills[i], err, sizeof err) == 0);
    }
    join(path, sizeof path, dst, "model.safetensors");
    ck_assert_msg(st_writer_save(w, path, err, sizeof err) == 0, "%s", err);
    st_writer_free(w);
    free(fills);
    st_close(st);
}

/* 3 steps on the quantized base and on the dequantized F32 base. In f32 precision the same
 * losses (1e-6 relative) and adapters within 1e-3: the products dequantize tiles of W into
 * single-threaded sgemms, an F32 weight goes whole to oneDNN's f32 matmul, and the two sum in
 * different orders (measured 8e-5 and 1.4e-4 for q8_0: from B = 0 Adam's first steps move an
 * element by about lr whatever its gradient's size, so a rounding that flips a tiny
 * gradient's sign moves it by 2 lr; bit-identical while both were OpenBLAS). In bf16 precision both
 * round the same W to bf16, but the tiles' products sum in another order than the BF16 weight's,
 * and a last-bit difference before a bf16 rounding moves a value by 2^-8: losses within 1e-4,
 * adapters within 0.05 after 3 Adam steps from B = 0 (measured: 6e-3 for q8_0). */
START_TEST(test_training_on_a_quantized_base_is_training_on_its_dequantized_values) {
    char *dir = test_tmpdir(), err[1024], model[4200], deq[4200], rows[4200], args[8192];
    snprintf(model, sizeof model, "%s/model", dir);
    make_model_256(model, "f32");
    snprintf(rows, sizeof rows, "%s/rows.jsonl", dir);
    tt_random_rows(rows, 24, 8, 40, 96, 3);
    const GgmlType types[] = {GGML_TYPE_Q8_0, GGML_TYPE_Q4_K};
    const char *names[] = {"q8_0", "q4_k"};
    for (int t = 0; t < 2; t++) {
        Model *q = model_load_quantized(model, MODEL_F32, types[t], err, sizeof err);
        ck_assert_msg(q != NULL, "%s", err);
        snprintf(deq, sizeof deq, "%s/deq-%s", dir, names[t]);
        write_dequantized(model, deq, q);
        model_free(q);
        for (int bf16 = 0; bf16 < 2; bf16++) {
            char *run[2];
            double loss[2][3];
            for (int k = 0; k < 2; k++) {
                run[k] = test_tmpdir();
                char extra[8192];
                int len =
                    snprintf(extra, sizeof extra,
                             "  quantize: %s\nlora:\n  r: 4\n  alpha: 8\n"
                             "data:\n  train: %s\n  seq_len: 32\n  packing: true\n"
                             "train:\n  batch_size: 2\n  max_steps: 3\n  lr: 1.0e-2\n  seed: 5\n"
                             "  precision: %s\n",
                             k ? "none" : names[t], rows, bf16 ? "bf16" : "f32");
                ck_assert(len > 0 && (size_t)len < sizeof extra);
                char *cfg = tt_write_config(run[k], k ? deq : model, extra);
                snprintf(args, sizeof args, "train '%s'", cfg);
                int rc = tt_lorafit(run[k], args);
                char *log = tt_log(run[k]);
                ck_assert_msg(rc == 0, "%s:\n%s", names[t], log);
                free(log);
                free(cfg);
                snprintf(extra, sizeof extra, "%s/out", run[k]);
                json_t *m = tt_metrics(extra);
                ck_assert_int_eq(tt_losses(m, loss[k], 3), 3);
                json_decref(m);
            }
            for (int s = 0; s < 3; s++)
                ck_assert_msg(fabs(loss[0][s] - loss[1][s]) <=
                                  (bf16 ? 1e-4 : 1e-6) * fabs(loss[1][s]),
                              "%s %s step %d: loss %.9g on the quantized base, %.9g dequantized",
                              names[t], bf16 ? "bf16" : "f32", s + 1, loss[0][s], loss[1][s]);
            char a[4400], b[4400];
            snprintf(a, sizeof a, "%s/out/adapter/adapter_model.safetensors", run[0]);
            snprintf(b, sizeof b, "%s/out/adapter/adapter_model.safetensors", run[1]);
            double rel = tt_adapter_rel_diff(a, b, "");
            ck_assert_msg(rel <= (bf16 ? 0.05 : 1e-3), "%s %s: adapters differ by %.3g", names[t],
                          bf16 ? "bf16" : "f32", rel);
            for (int k = 0; k < 2; k++) {
                test_rmtree(run[k]);
                free(run[k]);
            }
        }
    }
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* `lorafit generate --quantize q4_0` greedily continues as generate on the dequantized F32
 * base does, and `lorafit eval` with model.quantize q4_0 gives its loss; an unknown type is a
 * usage error. */
START_TEST(test_generate_and_eval_on_a_quantized_base_use_its_dequantized_values) {
    char *dir = test_tmpdir(), err[1024], model[4200], deq[4200], args[16384];
    join(model, sizeof model, dir, "model");
    join(deq, sizeof deq, dir, "deq");
    make_model_256(model, "f32");
    Model *q = model_load_quantized(model, MODEL_F32, GGML_TYPE_Q4_0, err, sizeof err);
    ck_assert_msg(q != NULL, "%s", err);
    write_dequantized(model, deq, q);
    model_free(q);
    const char *base[] = {model, deq}, *quant[] = {"q4_0", "none"};
    char *ids[2];
    for (int k = 0; k < 2; k++) {
        snprintf(args, sizeof args,
                 "generate --model '%s' --prompt-ids '1 17 42 5' -n 24 --precision f32 "
                 "--quantize %s",
                 base[k], quant[k]);
        ids[k] = tt_run_stdout(dir, args);
    }
    ck_assert_msg(strcmp(ids[0], ids[1]) == 0, "quantized: %s\ndequantized: %s", ids[0], ids[1]);
    free(ids[0]);
    free(ids[1]);
    /* lorafit eval with model.quantize in the config: the dequantized base's loss */
    char rows[4200], extra[8192];
    join(rows, sizeof rows, dir, "rows.jsonl");
    tt_random_rows(rows, 8, 8, 40, 96, 9);
    double loss[2];
    for (int k = 0; k < 2; k++) {
        ck_assert((size_t)snprintf(extra, sizeof extra,
                                   "  quantize: %s\ndata:\n  train: %s\n  valid: %s\n"
                                   "  seq_len: 32\n",
                                   quant[k], rows, rows) < sizeof extra);
        char *run = test_tmpdir(), *cfg = tt_write_config(run, base[k], extra);
        snprintf(args, sizeof args, "eval '%s' --precision f32", cfg);
        char *json = tt_run_stdout(run, args), *at = strstr(json, "\"eval_loss\": ");
        ck_assert_msg(at != NULL, "%s", json);
        loss[k] = strtod(at + 13, NULL);
        free(json);
        free(cfg);
        test_rmtree(run);
        free(run);
    }
    ck_assert_msg(fabs(loss[0] - loss[1]) <= 1e-6 * fabs(loss[1]), "eval_loss %.9g vs %.9g",
                  loss[0], loss[1]);
    snprintf(args, sizeof args, "generate --model '%s' --prompt-ids '1' --quantize q3_k", model);
    tt_expect(dir, args, 2, "--quantize must be none, q8_0, q4_0, q4_k, q5_k or q6_k");
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* A job on a q4_k base checkpointing every 2 steps: its config's path. */
static char *write_quantized_job(const char *dir, const char *model, const char *rows,
                                 const char *extra_train) {
    char cfg[16384];
    int len = snprintf(cfg, sizeof cfg,
                       "model:\n  path: %s\n  quantize: q4_k\n"
                       "lora:\n  r: 4\n  alpha: 8\n  dropout: 0.1\n"
                       "data:\n  train: %s\n  seq_len: 32\n  packing: true\n  shuffle: true\n"
                       "train:\n  batch_size: 2\n  max_steps: 4\n  lr: 5.0e-3\n  seed: 7\n%s"
                       "output:\n  dir: out\n  save_every: 2\n"
                       "log:\n  every: 1\n",
                       model, rows, extra_train);
    ck_assert(len > 0 && (size_t)len < sizeof cfg);
    return tt_write_text(dir, "config.yaml", cfg);
}

/* On a quantized base: gradient checkpointing changes no bit; a run killed after step 3 and
 * resumed ends byte-identical to an uninterrupted one; a resume with another
 * model.quantize is refused, naming the key. */
START_TEST(test_quantized_base_checkpointing_and_resume_are_exact) {
    char *dir = test_tmpdir(), model[4200], rows[4200], args[8192], log_path[4400];
    snprintf(model, sizeof model, "%s/model", dir);
    make_model_256(model, "f32");
    snprintf(rows, sizeof rows, "%s/rows.jsonl", dir);
    tt_random_rows(rows, 40, 8, 40, 96, 4);
    char *ref = test_tmpdir(), *gc = test_tmpdir(), *cut = test_tmpdir();
    char *ref_cfg = write_quantized_job(ref, model, rows, "");
    char *gc_cfg = write_quantized_job(gc, model, rows, "  gradient_checkpointing: true\n");
    char *cut_cfg = write_quantized_job(cut, model, rows, "");
    snprintf(args, sizeof args, "train '%s'", ref_cfg);
    ck_assert_int_eq(tt_lorafit(ref, args), 0);
    snprintf(args, sizeof args, "train '%s'", gc_cfg);
    ck_assert_int_eq(tt_lorafit(gc, args), 0);
    tt_assert_same_run(ref, gc, "gradient checkpointing on a q4_k base");

    const char *argv[] = {"train", cut_cfg, "--resume", NULL};
    snprintf(log_path, sizeof log_path, "%s/kill.txt", cut);
    ck_assert_int_eq(tt_wait(tt_spawn_fault(argv, log_path, "kill:step:3")), 128 + SIGKILL);
    snprintf(args, sizeof args, "train '%s' --resume --set model.quantize=q8_0", cut_cfg);
    tt_expect(cut, args, 2, "differs in model.quantize (");
    snprintf(args, sizeof args, "train '%s' --resume", cut_cfg);
    tt_expect(cut, args, 0, "(step 2)");
    tt_assert_same_run(ref, cut, "killed after step 3 on a q4_k base and resumed");
    free(ref_cfg);
    free(gc_cfg);
    free(cut_cfg);
    char *dirs[] = {ref, gc, cut, dir};
    for (int i = 0; i < 4; i++) {
        test_rmtree(dirs[i]);
        free(dirs[i]);
    }
}
END_TEST

Suite *quantize_load_suite(void) {
    Suite *s = suite_create("quantize_load");
    TCase *tc = tcase_create("quantize_load");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_linears_hold_the_reference_blocks_of_each_type);
    tcase_add_test(tc, test_rows_a_type_cannot_hold_fall_back_as_llama_quantize_does);
    tcase_add_test(tc, test_training_on_a_quantized_base_is_training_on_its_dequantized_values);
    tcase_add_test(tc, test_quantized_base_checkpointing_and_resume_are_exact);
    tcase_add_test(tc, test_generate_and_eval_on_a_quantized_base_use_its_dequantized_values);
    suite_add_tcase(s, tc);
    return s;
}
