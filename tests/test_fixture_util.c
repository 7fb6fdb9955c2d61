/* tests/test_fixture_util.c — see test_fixture_util.h. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/tensor.h"
#include "tests/test_fixture_util.h"
#include "tests/test_train_util.h"
#include "tests/test_util.h"
#include "trainer/model/model.h"
#include "trainer/store/store.h"

void fx_check_step(const char *model_dir, const char *fx, double loss_tol) {
    char path[4096], err[1024];
    Model *m = model_load(model_dir, err, sizeof err);
    ck_assert_msg(m != NULL, "%s", err);
    TtFixture f;
    tt_fixture_load(fx, m, &f);
    Lora *lora = f.lora;
    int batch = f.batch, seq = f.seq, n = batch * seq, v = model_config(m)->vocab_size;
    int32_t *ids = f.ids, *targets = f.targets;
    double loss_ref = f.loss_ref, norm_ref = f.norm_ref;

    Graph *g = graph_create();
    Tensor *logits = model_forward(m, lora, g, ids, NULL, NULL, batch, seq, 1);
    int64_t count = 0;
    Tensor *loss = op_cross_entropy(g, logits, targets, &count);
    ck_assert(loss != NULL && count > 0);
    ck_assert_int_eq(graph_backward(g, loss, 1.0f / (float)count), 0);

    snprintf(path, sizeof path, "%s/expected.safetensors", fx);
    SafeTensors *ex = st_open(path, err, sizeof err);
    ck_assert_msg(ex != NULL, "%s", err);
    float *ref = tt_expected_floats(ex, "logits_step0", (int64_t)n * v);
    double max_diff = 0;
    for (int64_t k = 0; k < (int64_t)n * v; k++)
        max_diff = fmax(max_diff, fabs((double)logits->data[k] - ref[k]));
    free(ref);
    ck_assert_msg(max_diff < 1e-3, "%s: logits differ by %g", fx, max_diff);
    double loss_mean = (double)loss->data[0] / (double)count;
    ck_assert_msg(fabs(loss_mean - loss_ref) < loss_tol * fabs(loss_ref), "loss %.10f vs %.10f",
                  loss_mean, loss_ref);

    double norm2 = 0;
    for (int k = 0; k < lora_count(lora); k++) {
        const char *name;
        Tensor *p = lora_tensor(lora, k, &name);
        char key[256];
        snprintf(key, sizeof key, "grad.%s", name);
        float *gref = tt_expected_floats(ex, key, p->size);
        double d2 = 0, r2 = 0;
        for (int64_t e = 0; e < p->size; e++) {
            d2 += ((double)p->grad[e] - gref[e]) * ((double)p->grad[e] - gref[e]);
            r2 += (double)gref[e] * gref[e];
            norm2 += (double)p->grad[e] * p->grad[e];
        }
        free(gref);
        ck_assert_msg(sqrt(d2) < 1e-4 * sqrt(r2), "%s: relative error %g", key, sqrt(d2 / r2));
    }
    ck_assert_msg(fabs(sqrt(norm2) - norm_ref) < 1e-4 * norm_ref, "grad norm %.8f vs %.8f",
                  sqrt(norm2), norm_ref);
    st_close(ex);
    graph_destroy(g);
    tt_fixture_free(&f);
    model_free(m);
}

/* Trains with the fixture's hyperparameters (from its fixture.json) and checks the losses,
 * the first step's gradient norm and the final adapter within the fixture's tolerances. */
void fx_check_train(const char *fixture_rel, const char *model_rel) {
    char fixture[4096], model[4096];
    ck_assert(realpath(fixture_rel, fixture) != NULL);
    ck_assert(realpath(model_rel, model) != NULL);
    char *dir = test_tmpdir();
    char path[4200];
    snprintf(path, sizeof path, "%s/fixture.json", fixture);
    json_error_t je;
    json_t *fx = json_load_file(path, 0, &je);
    ck_assert_msg(fx != NULL, "%s: %s", path, je.text);
    json_t *targets = json_object_get(fx, "targets");
    char tlist[256] = "";
    size_t i;
    json_t *t;
    json_array_foreach(targets, i, t) {
        strcat(tlist, i ? ", " : "");
        strcat(tlist, json_string_value(t));
    }
#define NUM(k) json_number_value(json_object_get(fx, k))
    int steps = (int)NUM("steps");
    char cfg[16384];
    snprintf(cfg, sizeof cfg,
             "model:\n  path: %s\n"
             "lora:\n  r: %d\n  alpha: %.17g\n  rslora: %s\n  target_modules: [%s]\n"
             "  init_from: %s/init_adapter\n"
             "data:\n  train: %s/train.jsonl\n  seq_len: %d\n  shuffle: false\n"
             "train:\n  batch_size: %d\n  max_steps: %d\n  lr: %.17g\n  lr_scheduler: constant\n  "
             "precision: f32\n"
             "  weight_decay: %.17g\n  max_grad_norm: %.17g\n  adam_beta1: %.17g\n"
             "  adam_beta2: %.17g\n  adam_eps: %.17g\n"
             "output:\n  dir: %s/out\n  save_every: 0\n"
             "log:\n  every: 1\n",
             model, (int)NUM("r"), NUM("alpha"),
             json_is_true(json_object_get(fx, "rslora")) ? "true" : "false", tlist, fixture,
             fixture, (int)NUM("seq"), (int)NUM("batch"), steps, NUM("lr"), NUM("wd"), NUM("clip"),
             NUM("b1"), NUM("b2"), NUM("eps"), dir);
    char *cfg_path = tt_write_text(dir, "config.yaml", cfg);
    char args[4400];
    snprintf(args, sizeof args, "train '%s'", cfg_path);
    int rc = tt_lorafit(dir, args);
    char *log = tt_log(dir);
    ck_assert_msg(rc == 0, "lorafit train failed (%d):\n%s", rc, log);
    snprintf(path, sizeof path, "%s/out", dir);
    json_t *metrics = tt_metrics(path);
    double loss[16];
    ck_assert_int_eq(tt_losses(metrics, loss, 16), steps);
    json_t *want = json_object_get(fx, "losses");
    for (int s = 0; s < steps; s++) {
        double ref = json_number_value(json_array_get(want, (size_t)s));
        ck_assert_msg(fabs(loss[s] - ref) <= 1e-4 * fabs(ref), "step %d loss %.9g, reference %.9g",
                      s + 1, loss[s], ref);
    }
    double norm = json_number_value(json_object_get(json_array_get(metrics, 0), "grad_norm"));
    double ref_norm = NUM("grad_norm_step0");
    ck_assert_msg(fabs(norm - ref_norm) <= 1e-4 * ref_norm, "grad norm %.9g, reference %.9g", norm,
                  ref_norm);
    char adapter[4400], expected[4400];
    snprintf(adapter, sizeof adapter, "%s/out/adapter/adapter_model.safetensors", dir);
    snprintf(expected, sizeof expected, "%s/expected.safetensors", fixture);
    double rel = tt_adapter_rel_diff(adapter, expected, "final.");
    ck_assert_msg(rel < 2e-3, "final adapter differs from the reference by %.3g", rel);
#undef NUM
    json_decref(metrics);
    json_decref(fx);
    free(log);
    free(cfg_path);
    test_rmtree(dir);
    free(dir);
}
