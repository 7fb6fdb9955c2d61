/* tests/test_merge.c — merging and the files a finished run ships: merged weights within 1e-6
 * of a float64 merge (sharded like transformers when large), `generate` on the merged
 * directory giving the ids of `generate --adapter`, the model card and its picture, and
 * every exporter refusing to replace an existing output without --force. */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "tests/test_train_util.h"
#include "tests/test_util.h"
#include "trainer/model/model.h"
#include "trainer/store/store.h"
#include "trainer/train/train.h"

static void root_path(char *out, size_t len, const char *rel) {
    const char *root = getenv("LORAFIT_ROOT");
    snprintf(out, len, "%s/%s", root ? root : ".", rel);
}

static float *floats_of(const StTensor *t) {
    char err[256];
    float *f = malloc((size_t)t->numel * sizeof *f);
    ck_assert_msg(st_to_float(t, f, err, sizeof err) == 0, "%s", err);
    return f;
}

/* Merges the fixture's init_adapter into its model through the library, sharded into small
 * files, and compares every weight with W + s B A computed here in double. */
static void check_merge(const char *fixture, double scaling) {
    char dir[4200], model_dir[4300], adapter[4300], err[1024];
    root_path(dir, sizeof dir, fixture);
    snprintf(model_dir, sizeof model_dir, "%s/model", dir);
    snprintf(adapter, sizeof adapter, "%s/init_adapter", dir);
    Model *m = model_load(model_dir, err, sizeof err);
    ck_assert_msg(m, "%s", err);
    Lora *lora = lora_load_adapter(m, adapter, err, sizeof err);
    ck_assert_msg(lora, "%s", err);
    ck_assert_double_eq_tol(lora_scaling(lora), scaling, 1e-6);
    char *out = test_tmpdir();
    MergeOptions opt = {ST_F32, 30000, NULL};
    ck_assert_msg(merge_write_hf(m, lora, model_dir, out, &opt, err, sizeof err) == 0, "%s", err);
    char path[4400];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", out);
    struct stat sb;
    ck_assert_msg(stat(path, &sb) == 0, "no index: the merge was not sharded");
    StCheckpoint *merged = st_checkpoint_open(out, err, sizeof err);
    ck_assert_msg(merged, "%s", err);
    ck_assert_int_gt(st_checkpoint_shards(merged), 1);
    StCheckpoint *base = st_checkpoint_open(model_dir, err, sizeof err);
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", adapter);
    SafeTensors *ad = st_open(path, err, sizeof err);
    ck_assert(base && ad);
    const ModelConfig *c = model_config(m);
    int merged_modules = 0;
    for (int l = 0; l < c->num_hidden_layers; l++)
        for (int k = 0; k < MODULE_COUNT; k++) {
            if (!(model_layer_modules(c, l) & (1u << k))) continue;
            char name[160], an[200], bn[200];
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", l,
                     model_module_path((ModelModule)k));
            snprintf(an, sizeof an, "base_model.model.%s", name);
            snprintf(bn, sizeof bn, "base_model.model.%s", name);
            strcpy(strstr(an, ".weight"), ".lora_A.weight");
            strcpy(strstr(bn, ".weight"), ".lora_B.weight");
            const StTensor *w0 = st_checkpoint_find(base, name),
                           *w1 = st_checkpoint_find(merged, name);
            ck_assert(w0 && w1 && w1->dtype == ST_F32 && w1->numel == w0->numel);
            const StTensor *ta = st_find(ad, an), *tb = st_find(ad, bn);
            float *wf = floats_of(w0), *mf = floats_of(w1);
            float *af = ta ? floats_of(ta) : NULL, *bf = tb ? floats_of(tb) : NULL;
            int64_t rows = w0->shape[0], cols = w0->shape[1], r = ta ? ta->shape[0] : 0;
            for (int64_t o = 0; o < rows; o++)
                for (int64_t i = 0; i < cols; i++) {
                    double ref = wf[o * cols + i];
                    for (int64_t q = 0; q < r; q++)
                        ref += scaling * (double)bf[o * r + q] * (double)af[q * cols + i];
                    double got = mf[o * cols + i];
                    ck_assert_msg(fabs(got - ref) <= 1e-6 * fabs(ref) + 1e-30,
                                  "%s[%lld,%lld]: %.9g vs %.9g", name, (long long)o, (long long)i,
                                  got, ref);
                }
            merged_modules += ta != NULL;
            free(wf), free(mf), free(af), free(bf);
        }
    ck_assert_int_gt(merged_modules, 0);
    /* lorafit loads the merged directory (through the index) */
    Model *m2 = model_load(out, err, sizeof err);
    ck_assert_msg(m2, "%s", err);
    model_free(m2);
    snprintf(path, sizeof path, "%s/config.json", out);
    char *cfg = test_read_file(path, NULL);
    ck_assert(cfg && strstr(cfg, "\"torch_dtype\": \"float32\""));
    free(cfg);
    st_close(ad);
    st_checkpoint_close(base);
    st_checkpoint_close(merged);
    lora_free(lora);
    model_free(m);
    test_rmtree(out);
    free(out);
}

START_TEST(test_merged_weights_within_1e6_of_float64_merge) {
    check_merge("tests/data/train/llama-bf16-tied", 8.0 / 8.0);
    check_merge("tests/data/train/qwen2-untied", 4.0 / sqrt(2.0)); /* rsLoRA */
    check_merge("tests/data/train/qwen3-untied", 8.0 / 4.0);
    check_merge("tests/data/train/qwen35-text", 8.0 / 4.0); /* DeltaNet and attention layers */
    check_merge("tests/data/train/qwen3-bias-tied", 4.0 / sqrt(2.0));
    check_merge("tests/data/train/smollm3-list-bias", 4.0 / sqrt(2.0));
    check_merge("tests/data/train/olmo2-untied", 8.0 / 4.0);
    check_merge("tests/data/train/granite-untied", 8.0 / sqrt(4.0));
}
END_TEST

/* ---- a run on stories260K: card, picture, merge, generate ------------------------- */

static char *train_stories(const char *dir, const char *shared, const char *extra) {
    char cfg[8192];
    snprintf(cfg, sizeof cfg,
             "model:\n  path: %s/models/stories260K\nlora:\n  r: 4\n  alpha: 8\n%s"
             "data:\n  train: %s/fixtures/stories260K-lora/train.jsonl\n"
             "  valid: %s/fixtures/stories260K-lora/train.jsonl\n  seq_len: 32\n  shuffle: false\n"
             "train:\n  batch_size: 2\n  max_steps: 4\n  lr: 2.0e-2\n  lr_scheduler: constant\n"
             "eval:\n  every: 2\nlog:\n  every: 1\noutput:\n  dir: out\n  save_every: 2\n",
             shared, extra, shared, shared);
    char *path = tt_write_text(dir, "job.yaml", cfg);
    char args[8300];
    snprintf(args, sizeof args, "train '%s'", path);
    tt_expect(dir, args, 0, NULL);
    return path;
}

/* The picture: an 800x500 RGB PNG whose chunks check out, holding both curves' colours. */
static void check_png(const char *path) {
    size_t len;
    uint8_t *p = (uint8_t *)test_read_file(path, &len);
    ck_assert_msg(p && len > 33 && memcmp(p, "\x89PNG\r\n\x1a\n", 8) == 0, "%s: not a PNG", path);
    uint8_t *idat = NULL;
    size_t idat_len = 0, at = 8;
    uint32_t w = 0, h = 0;
    while (at + 12 <= len) {
        uint32_t n = (uint32_t)p[at] << 24 | p[at + 1] << 16 | p[at + 2] << 8 | p[at + 3];
        ck_assert(at + 12 + n <= len);
        uint32_t crc = (uint32_t)p[at + 8 + n] << 24 | p[at + 9 + n] << 16 | p[at + 10 + n] << 8 |
                       p[at + 11 + n];
        ck_assert_msg(crc == (uint32_t)crc32(0, p + at + 4, n + 4), "bad chunk CRC");
        if (!memcmp(p + at + 4, "IHDR", 4)) {
            w = (uint32_t)p[at + 8] << 24 | p[at + 9] << 16 | p[at + 10] << 8 | p[at + 11];
            h = (uint32_t)p[at + 12] << 24 | p[at + 13] << 16 | p[at + 14] << 8 | p[at + 15];
            ck_assert_int_eq(p[at + 16], 8);
            ck_assert_int_eq(p[at + 17], 2);
        }
        if (!memcmp(p + at + 4, "IDAT", 4)) idat = p + at + 8, idat_len = n;
        at += 12 + n;
    }
    ck_assert(w == 800 && h == 500 && idat);
    uLongf raw_len = (uLongf)(w * 3 + 1) * h;
    uint8_t *raw = malloc(raw_len);
    ck_assert_int_eq(uncompress(raw, &raw_len, idat, (uLong)idat_len), Z_OK);
    ck_assert_int_eq(raw_len, (w * 3 + 1) * h);
    int train_px = 0, eval_px = 0, ink = 0;
    for (uint32_t y = 0; y < h; y++) {
        const uint8_t *row = raw + y * (w * 3 + 1);
        ck_assert_int_eq(row[0], 0);
        for (uint32_t x = 0; x < w; x++) {
            const uint8_t *c = row + 1 + 3 * x;
            train_px += c[0] == 31 && c[1] == 119 && c[2] == 180;
            eval_px += c[0] == 230 && c[1] == 97 && c[2] == 1;
            ink += c[0] == 30 && c[1] == 30 && c[2] == 30;
        }
    }
    ck_assert_msg(train_px > 200 && eval_px > 100 && ink > 1000, "curves %d %d, text/axes %d",
                  train_px, eval_px, ink);
    free(raw);
    free(p);
}

START_TEST(test_merged_directory_keeps_transformers_newer_files) {
    /* transformers 5 calls it "dtype"; a merged config keeping the base's "bfloat16" there
     * beside torch_dtype "float32" would load as the wrong type. The chat templates saved as
     * files (transformers >= 4.47) come along. */
    char src[4096], model_dir[4300], path[4400], err[1024];
    root_path(src, sizeof src, "tests/data/train/qwen2-untied/model");
    char *dir = test_tmpdir();
    snprintf(model_dir, sizeof model_dir, "%s/model", dir);
    json_t *edits = json_pack("{s:n, s:s}", "torch_dtype", "dtype", "bfloat16");
    tt_model_with_config(src, model_dir, edits);
    json_decref(edits);
    snprintf(path, sizeof path, "%s/chat_template.jinja", model_dir);
    test_write_file(path, "{{ messages }}", 14);
    snprintf(path, sizeof path, "%s/additional_chat_templates", model_dir);
    ck_assert_int_eq(mkdir(path, 0755), 0);
    snprintf(path, sizeof path, "%s/additional_chat_templates/rag.jinja", model_dir);
    test_write_file(path, "R", 1);
    Model *m = model_load(model_dir, err, sizeof err);
    ck_assert_msg(m, "%s", err);
    char *out = test_tmpdir();
    MergeOptions opt = {ST_F32, 0, NULL};
    ck_assert_msg(merge_write_hf(m, NULL, model_dir, out, &opt, err, sizeof err) == 0, "%s", err);
    snprintf(path, sizeof path, "%s/config.json", out);
    json_t *merged = json_load_file(path, 0, NULL);
    ck_assert(merged != NULL);
    ck_assert_str_eq(json_string_value(json_object_get(merged, "dtype")), "float32");
    ck_assert(json_object_get(merged, "torch_dtype") == NULL);
    json_decref(merged);
    const char *files[] = {"chat_template.jinja", "additional_chat_templates/rag.jinja"};
    const char *texts[] = {"{{ messages }}", "R"};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", out, files[i]);
        char *got = test_read_file(path, NULL);
        ck_assert_msg(got && !strcmp(got, texts[i]), "%s: not copied", files[i]);
        free(got);
    }
    model_free(m);
    test_rmtree(out);
    free(out);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* A side file (or the named-templates folder) that is there but cannot be read is an error
 * naming it, never a merged model silently without it. Tests run as root, whom permissions
 * do not stop: a symlink loop (ELOOP) and a directory where a file belongs (EISDIR) are the
 * failures other than absence that root meets too. */
START_TEST(test_merge_fails_on_a_side_file_it_cannot_read) {
    char src[4096], model_dir[4300], path[4400], err[1024];
    root_path(src, sizeof src, "tests/data/train/qwen2-untied/model");
    char *dir = test_tmpdir();
    snprintf(model_dir, sizeof model_dir, "%s/model", dir);
    json_t *edits = json_object();
    tt_model_with_config(src, model_dir, edits);
    json_decref(edits);
    Model *m = model_load(model_dir, err, sizeof err);
    ck_assert_msg(m, "%s", err);
    MergeOptions opt = {ST_F32, 0, NULL};
    struct {
        const char *name, *why;
        bool loop;
    } cases[] = {{"tokenizer.json", "Too many levels of symbolic links", true},
                 {"special_tokens_map.json", "Is a directory", false},
                 {"additional_chat_templates", "Too many levels of symbolic links", true}};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", model_dir, cases[i].name);
        if (cases[i].loop)
            ck_assert_int_eq(symlink(cases[i].name, path), 0);
        else
            ck_assert_int_eq(mkdir(path, 0755), 0);
        char *out = test_tmpdir();
        ck_assert_int_eq(merge_write_hf(m, NULL, model_dir, out, &opt, err, sizeof err), -1);
        ck_assert_msg(strstr(err, path) && strstr(err, cases[i].why), "%s", err);
        test_rmtree(out);
        free(out);
        ck_assert_int_eq(remove(path), 0);
    }
    model_free(m);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* metrics.jsonl files no healthy run writes, but a diverged run or a hand edit can: each is
 * drawn (both curves, the axes) and finishes; near-equal losses once looped forever on
 * ticks too close to step apart. */
START_TEST(test_loss_picture_of_degenerate_metrics) {
    static const char *const cases[] = {
        /* equal to the last bit but one: no tick spacing between them */
        "{\"step\": 1, \"loss\": 1}\n{\"step\": 2, \"loss\": 1.0000000000000002}\n"
        "{\"step\": 2, \"eval_loss\": 1}\n",
        /* a span that overflows a double, with ordinary points beside it */
        "{\"step\": 1, \"loss\": 1e308}\n{\"step\": 2, \"loss\": -1e308}\n"
        "{\"step\": 3, \"loss\": 2.5}\n{\"step\": 4, \"loss\": 2}\n"
        "{\"step\": 4, \"eval_loss\": 2.1}\n{\"step\": 5, \"eval_loss\": 1.9}\n",
        /* steps near INT64_MAX, tiny losses */
        "{\"step\": 1, \"loss\": 1e-300}\n{\"step\": 9223372036854775807, \"loss\": "
        "3e-300}\n{\"step\": 9223372036854775806, \"eval_loss\": 2e-300}\n",
    };
    char *dir = test_tmpdir();
    char metrics[4200], png[4200], err[1024];
    snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", dir);
    snprintf(png, sizeof png, "%s/loss.png", dir);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        test_write_file(metrics, cases[i], strlen(cases[i]));
        ck_assert_msg(train_plot_loss(metrics, INT64_MAX, "degenerate", png, err, sizeof err) == 0,
                      "case %zu: %s", i, err);
        check_png(png);
    }
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_run_card_merge_and_generate_match_the_adapter) {
    TEST_NEED_SHARED(shared);
    char *dir = test_tmpdir();
    char *job = train_stories(dir, shared, "");
    char path[4400], args[16384];
    snprintf(path, sizeof path, "%s/out/adapter/README.md", dir);
    char *card = test_read_file(path, NULL);
    ck_assert_msg(card &&
                      !strncmp(card, "---\nbase_model: \"stories260K\"\nlibrary_name: peft\n", 49),
                  "%s", card ? card : "(no card)");
    ck_assert(strstr(card, "tags:\n- lora\n- lorafit\n---\n"));
    ck_assert(strstr(card, "lorafit " LORAFIT_VERSION));
    ck_assert(strstr(card, "| steps | 4 |"));
    ck_assert(strstr(card, "| 4 | 8 | 2 | no |"));
    /* each data file with the records it holds: its non-blank lines */
    snprintf(path, sizeof path, "%s/fixtures/stories260K-lora/train.jsonl", shared);
    char *data = test_read_file(path, NULL);
    int records = 0;
    for (char *l = data; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : l + strlen(l))
        records += *l != '\n';
    free(data);
    char want[128];
    snprintf(want, sizeof want, "stories260K-lora/train.jsonl`, %d records", records);
    ck_assert_msg(records > 1 && strstr(card, "- train: `") && strstr(card, "- valid: `") &&
                      strstr(card, want),
                  "'%s' not in\n%s", want, card);
    ck_assert(strstr(card, "](loss.png)"));
    /* the figures are metrics.jsonl's */
    json_t *metrics = tt_metrics(strcat(strcpy(path, dir), "/out"));
    double last_eval = NAN, best = INFINITY;
    size_t i;
    json_t *line;
    json_array_foreach(metrics, i, line) {
        json_t *e = json_object_get(line, "eval_loss");
        if (json_is_number(e)) {
            last_eval = json_number_value(e);
            if (last_eval < best) best = last_eval;
        }
    }
    json_decref(metrics);
    snprintf(want, sizeof want, "| final eval loss | %.4f (step 4) |", last_eval);
    ck_assert_msg(strstr(card, want), "'%s' not in\n%s", want, card);
    snprintf(want, sizeof want, "| best eval loss | %.4f", best);
    ck_assert_msg(strstr(card, want), "'%s' not in\n%s", want, card);
    free(card);
    snprintf(path, sizeof path, "%s/out/adapter/loss.png", dir);
    check_png(path);
    /* lorafit plot redraws it; export --out carries the card of the checkpoint's step */
    snprintf(args, sizeof args, "plot '%s/out'", dir);
    tt_expect(dir, args, 0, "loss.png");
    snprintf(path, sizeof path, "%s/out/loss.png", dir);
    check_png(path);
    snprintf(args, sizeof args, "export '%s/out/checkpoint-2' --out '%s/exp'", dir, dir);
    tt_expect(dir, args, 0, NULL);
    snprintf(path, sizeof path, "%s/exp/README.md", dir);
    card = test_read_file(path, NULL);
    ck_assert_msg(card && strstr(card, "| steps | 2 |") && strstr(card, "checkpoint at step 2"),
                  "%s", card ? card : "");
    free(card);
    /* merge, then generate on the merged directory: the ids of generate --adapter */
    snprintf(args, sizeof args,
             "merge --model '%s/models/stories260K' --adapter '%s/out/adapter' --out '%s/merged'",
             shared, dir, dir);
    tt_expect(dir, args, 0, NULL);
    snprintf(path, sizeof path, "%s/merged/tokenizer.json", dir);
    struct stat sb;
    ck_assert(stat(path, &sb) == 0);
    char a_out[4400], m_out[4400], b_out[4400];
    snprintf(a_out, sizeof a_out, "%s/a.txt", dir);
    snprintf(m_out, sizeof m_out, "%s/m.txt", dir);
    snprintf(b_out, sizeof b_out, "%s/b.txt", dir);
    snprintf(
        args, sizeof args,
        "'%s' generate --precision f32 --model '%s/models/stories260K' --adapter '%s/out/adapter' "
        "--prompt-ids '1 403' -n 60",
        test_lorafit_bin(), shared, dir);
    ck_assert_int_eq(test_run(args, a_out), 0);
    snprintf(args, sizeof args,
             "'%s' generate --precision f32 --model '%s/merged' --prompt-ids '1 403' -n 60",
             test_lorafit_bin(), dir);
    ck_assert_int_eq(test_run(args, m_out), 0);
    snprintf(
        args, sizeof args,
        "'%s' generate --precision f32 --model '%s/models/stories260K' --prompt-ids '1 403' -n 60",
        test_lorafit_bin(), shared);
    ck_assert_int_eq(test_run(args, b_out), 0);
    char *a = test_read_file(a_out, NULL), *mg = test_read_file(m_out, NULL),
         *b = test_read_file(b_out, NULL);
    ck_assert_msg(a && mg && !strcmp(a, mg), "adapter: %s\nmerged: %s", a, mg);
    ck_assert_msg(strcmp(a, b) != 0, "the adapter changes nothing: the test would prove nothing");
    free(a), free(mg), free(b);
    free(job);
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_exporters_refuse_to_overwrite_without_force) {
    char *dir = test_tmpdir();
    char fx[4200], args[16384], path[4400];
    root_path(fx, sizeof fx, "tests/data/train/llama-bf16-tied");
    /* a PEFT export into a directory with content */
    snprintf(path, sizeof path, "%s/exp", dir);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/exp/keep.txt", dir);
    test_write_file(path, "x", 1);
    snprintf(args, sizeof args, "export '%s/init_adapter' --out '%s/exp'", fx, dir);
    tt_expect(dir, args, 2, "--force");
    struct stat sb;
    ck_assert(stat(path, &sb) == 0); /* untouched */
    snprintf(args, sizeof args, "export '%s/init_adapter' --out '%s/exp' --force", fx, dir);
    tt_expect(dir, args, 0, NULL);
    ck_assert(stat(path, &sb) != 0); /* replaced as a whole */
    snprintf(path, sizeof path, "%s/exp/README.md", dir);
    ck_assert(stat(path, &sb) == 0);
    /* a GGUF adapter file */
    snprintf(args, sizeof args, "export '%s/init_adapter' --out '%s/a.gguf' --model '%s/model'", fx,
             dir, fx);
    tt_expect(dir, args, 0, "GGUF LoRA adapter");
    tt_expect(dir, args, 2, "already exists");
    strcat(args, " --force");
    tt_expect(dir, args, 0, NULL);
    /* a GGUF adapter without a known base says how to name it */
    snprintf(args, sizeof args, "export '%s/init_adapter' --out '%s/b.gguf'", fx, dir);
    tt_expect(dir, args, 2, "--model");
    /* merge into a directory */
    snprintf(args, sizeof args,
             "merge --model '%s/model' --adapter '%s/init_adapter' --out '%s/mg'", fx, fx, dir);
    tt_expect(dir, args, 0, NULL);
    tt_expect(dir, args, 2, "already exists");
    strcat(args, " --force");
    tt_expect(dir, args, 0, NULL);
    /* a GGUF of a model without tokenizer.json: a clear error, and no file left behind */
    snprintf(args, sizeof args, "merge --model '%s/model' --out '%s/m.gguf'", fx, dir);
    tt_expect(dir, args, 1, "tokenizer.json");
    snprintf(path, sizeof path, "%s/m.gguf", dir);
    ck_assert(stat(path, &sb) != 0);
    test_rmtree(dir);
    free(dir);
}
END_TEST

Suite *merge_suite(void) {
    Suite *s = suite_create("merge");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_merged_weights_within_1e6_of_float64_merge);
    tcase_add_test(tc, test_run_card_merge_and_generate_match_the_adapter);
    tcase_add_test(tc, test_exporters_refuse_to_overwrite_without_force);
    tcase_add_test(tc, test_merged_directory_keeps_transformers_newer_files);
    tcase_add_test(tc, test_merge_fails_on_a_side_file_it_cannot_read);
    TCase *pic = tcase_create("picture");
    tcase_set_timeout(pic, 30); /* a draw takes milliseconds; the old tick loop never ended */
    tcase_add_test(pic, test_loss_picture_of_degenerate_metrics);
    suite_add_tcase(s, pic);
    suite_add_tcase(s, tc);
    return s;
}
