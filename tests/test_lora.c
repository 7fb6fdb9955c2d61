/* tests/test_lora.c — PEFT adapter layout, fresh init and the save/load round trip. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/test_util.h"
#include "trainer/model/model.h"
#include "trainer/store/store.h"

static Model *stories(void) {
    const char *shared = test_shared_dir();
    if (!shared) return NULL;
    char path[4096], err[1024];
    snprintf(path, sizeof path, "%s/models/stories260K", shared);
    Model *m = model_load(path, err, sizeof err);
    ck_assert_msg(m != NULL, "%s", err);
    return m;
}

START_TEST(test_fresh_init_is_kaiming_uniform_a_and_zero_b) {
    TEST_NEED_SHARED(shared);
    (void)shared;
    Model *m = stories();
    char err[512];
    LoraSpec spec = {.r = 4, .alpha = 8, .targets = LORA_Q | LORA_DOWN};
    Lora *l = lora_create(m, &spec, err, sizeof err);
    ck_assert_msg(l != NULL, "%s", err);
    ck_assert_int_eq(lora_count(l), 5 * 2 * 2);
    ck_assert(lora_scaling(l) == 2.0f);
    lora_init_fresh(l, 42);
    for (int i = 0; i < lora_count(l); i++) {
        const char *name;
        Tensor *t = lora_tensor(l, i, &name);
        ck_assert(t->requires_grad && t->grad != NULL);
        double bound = 1.0 / sqrt((double)t->shape[1]), maxabs = 0;
        for (int64_t k = 0; k < t->size; k++) maxabs = fmax(maxabs, fabs(t->data[k]));
        if (i % 2)
            ck_assert_msg(maxabs == 0, "%s is not zero", name);
        else
            ck_assert_msg(maxabs > 0.5 * bound && maxabs <= bound, "%s range %g", name, maxabs);
    }
    lora_tensor(l, 0, NULL);
    const char *n0, *n3;
    lora_tensor(l, 0, &n0);
    lora_tensor(l, 3, &n3);
    ck_assert_str_eq(n0, "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight");
    ck_assert_str_eq(n3, "base_model.model.model.layers.0.mlp.down_proj.lora_B.weight");
    ck_assert_int_eq(lora_tensor(l, 3, NULL)->shape[0], 64);  /* B (OUT = C, R) */
    ck_assert_int_eq(lora_tensor(l, 2, NULL)->shape[1], 172); /* A (R, IN = FF) */
    lora_free(l);
    model_free(m);
}
END_TEST

START_TEST(test_peft_save_load_round_trip_is_bit_exact) {
    TEST_NEED_SHARED(shared);
    (void)shared;
    Model *m = stories();
    char err[1024];
    LoraSpec spec = {.r = 3, .alpha = 6, .rslora = true, .targets = LORA_ALL};
    Lora *a = lora_create(m, &spec, err, sizeof err), *b = lora_create(m, &spec, err, sizeof err);
    lora_init_fresh(a, 7);
    size_t n, nb;
    float *pa = lora_params(a, &n);
    for (size_t i = 0; i < n; i++) pa[i] += (float)i * 1e-3f; /* B non-zero too */
    char *dir = test_tmpdir();
    ck_assert_msg(lora_save_peft(a, dir, "stories260K", LORA_F32, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(lora_load_peft(b, dir, err, sizeof err) == 0, "%s", err);
    float *pb = lora_params(b, &nb);
    ck_assert_uint_eq(n, nb);
    ck_assert_int_eq(memcmp(pa, pb, n * sizeof *pa), 0);

    /* The file layout PEFT expects. */
    char path[4200];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    SafeTensors *st = st_open(path, err, sizeof err);
    ck_assert_msg(st != NULL, "%s", err);
    ck_assert_int_eq(st_count(st), 5 * 7 * 2);
    ck_assert_str_eq(st_metadata(st, "format"), "pt");
    const StTensor *t =
        st_find(st, "base_model.model.model.layers.4.self_attn.k_proj.lora_B.weight");
    ck_assert(t && t->dtype == ST_F32 && t->shape[0] == 32 && t->shape[1] == 3);
    t = st_find(st, "base_model.model.model.layers.2.mlp.up_proj.lora_A.weight");
    ck_assert(t && t->shape[0] == 3 && t->shape[1] == 64);
    st_close(st);
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    json_error_t je;
    json_t *cfg = json_load_file(path, 0, &je);
    ck_assert(cfg != NULL);
    ck_assert_str_eq(json_string_value(json_object_get(cfg, "peft_type")), "LORA");
    ck_assert_str_eq(json_string_value(json_object_get(cfg, "task_type")), "CAUSAL_LM");
    ck_assert_int_eq(json_integer_value(json_object_get(cfg, "r")), 3);
    ck_assert(json_number_value(json_object_get(cfg, "lora_alpha")) == 6);
    ck_assert(json_is_true(json_object_get(cfg, "use_rslora")));
    ck_assert(json_is_false(json_object_get(cfg, "use_dora")));
    ck_assert(json_is_false(json_object_get(cfg, "fan_in_fan_out")));
    ck_assert(json_is_true(json_object_get(cfg, "init_lora_weights")));
    ck_assert(json_is_true(json_object_get(cfg, "inference_mode")));
    ck_assert(json_is_null(json_object_get(cfg, "modules_to_save")));
    ck_assert_str_eq(json_string_value(json_object_get(cfg, "bias")), "none");
    ck_assert_str_eq(json_string_value(json_object_get(cfg, "base_model_name_or_path")),
                     "stories260K");
    ck_assert_int_eq((int)json_array_size(json_object_get(cfg, "target_modules")), 7);
    json_decref(cfg);

    /* BF16 export loads back within bf16 rounding; a spec mismatch is refused clearly. */
    ck_assert(lora_save_peft(a, dir, "stories260K", LORA_BF16, err, sizeof err) == 0);
    ck_assert_msg(lora_load_peft(b, dir, err, sizeof err) == 0, "%s", err);
    for (size_t i = 0; i < n; i++) ck_assert(fabsf(pa[i] - pb[i]) <= fabsf(pa[i]) * 4e-3f);
    LoraSpec other = spec;
    other.r = 2;
    Lora *c = lora_create(m, &other, err, sizeof err);
    ck_assert_int_ne(lora_load_peft(c, dir, err, sizeof err), 0);
    ck_assert_msg(strstr(err, "lora.r = 2") != NULL, "%s", err);
    lora_free(c);
    test_rmtree(dir);
    free(dir);
    lora_free(a);
    lora_free(b);
    model_free(m);
}
END_TEST

/* Writes the qwen2 fixture's init_adapter into dir with `key` of its adapter_config.json set
 * to the JSON `value` (nothing changed when key is NULL). */
static void foreign_adapter(const char *dir, const char *key, const char *value) {
    const char *root = getenv("LORAFIT_ROOT");
    char src[4200], dst[4200];
    snprintf(src, sizeof src, "%s/tests/data/train/qwen2-untied/init_adapter", root ? root : ".");
    char path[4300];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", src);
    size_t len;
    char *bytes = test_read_file(path, &len);
    ck_assert(bytes != NULL);
    snprintf(dst, sizeof dst, "%s/adapter_model.safetensors", dir);
    test_write_file(dst, bytes, len);
    free(bytes);
    snprintf(path, sizeof path, "%s/adapter_config.json", src);
    json_t *cfg = json_load_file(path, 0, NULL);
    ck_assert(cfg != NULL);
    if (key) {
        json_t *v = json_loads(value, JSON_DECODE_ANY, NULL);
        ck_assert_msg(v != NULL, "%s", value);
        json_object_set_new(cfg, key, v);
    }
    snprintf(dst, sizeof dst, "%s/adapter_config.json", dir);
    ck_assert_int_eq(json_dump_file(cfg, dst, 0), 0);
    json_decref(cfg);
}

START_TEST(test_peft_features_lorafit_would_misapply_are_refused_by_name) {
    const char *root = getenv("LORAFIT_ROOT");
    char model_dir[4200], err[1024];
    snprintf(model_dir, sizeof model_dir, "%s/tests/data/train/qwen2-untied/model",
             root ? root : ".");
    Model *m = model_load(model_dir, err, sizeof err);
    ck_assert_msg(m != NULL, "%s", err);
    char *dir = test_tmpdir();
    /* PEFT 0.14's adapter_config.json holds these keys unset: still loads */
    static const char *const unset[][2] = {
        {"rank_pattern", "{}"},
        {"alpha_pattern", "{}"},
        {"layers_to_transform", "null"},
        {"layers_pattern", "null"},
        {"exclude_modules", "null"},
        {"modules_to_save", "null"},
        {"lora_bias", "false"},
        {"use_dora", "false"},
        {"fan_in_fan_out", "false"},
        {"trainable_token_indices", "null"},
        /* the fixture's q_proj, v_proj, down_proj as a regex, Python's (?:) and \d in it */
        {"target_modules",
         "\"model\\\\.layers\\\\.\\\\d+\\\\.(?:self_attn|mlp)\\\\.(q|v|down)_proj\""},
    };
    for (size_t i = 0; i < sizeof unset / sizeof unset[0]; i++) {
        foreign_adapter(dir, unset[i][0], unset[i][1]);
        Lora *l = lora_load_adapter(m, dir, err, sizeof err);
        ck_assert_msg(l != NULL, "%s = %s: %s", unset[i][0], unset[i][1], err);
        lora_free(l);
    }
    /* set, each changes what the tensors mean: refused naming the key, on every path
     * (merge/generate/eval, init_from and resume, GGUF export) */
    static const char *const set[][2] = {
        {"alpha_pattern", "{\"q_proj\": 16}"},
        {"rank_pattern", "{\"q_proj\": 4}"},
        {"layers_to_transform", "[0]"},
        {"exclude_modules", "[\"model.layers.0.self_attn.q_proj\"]"},
        {"modules_to_save", "[\"lm_head\"]"},
        {"trainable_token_indices", "[1, 2]"},
        {"lora_bias", "true"},
        {"use_dora", "true"},
        {"fan_in_fan_out", "true"},
        /* Python regex syntax lorafit does not read (an inline flag) */
        {"target_modules", "\"(?i)MODEL\\\\.layers\\\\..*_proj\""},
        /* a regex (PEFT re.fullmatch-es it) that targets layer 0 only */
        {"target_modules", "\"model\\\\.layers\\\\.0\\\\.self_attn\\\\.q_proj\""},
    };
    char fixture[4200];
    snprintf(fixture, sizeof fixture, "%s/tests/data/train/qwen2-untied/init_adapter",
             root ? root : ".");
    LoraSpec spec; /* the fixture's own, for the init_from path */
    ck_assert_msg(lora_read_peft_spec(fixture, model_config(m), &spec, err, sizeof err) == 0, "%s",
                  err);
    for (size_t i = 0; i < sizeof set / sizeof set[0]; i++) {
        foreign_adapter(dir, set[i][0], set[i][1]);
        const char *key = set[i][0];
        ck_assert_msg(lora_load_adapter(m, dir, err, sizeof err) == NULL, "%s accepted", key);
        ck_assert_msg(strstr(err, key) != NULL, "%s: '%s'", key, err);
        LoraSpec got;
        ck_assert_int_eq(lora_read_peft_spec(dir, model_config(m), &got, err, sizeof err), -1);
        ck_assert_msg(strstr(err, key) != NULL, "%s: '%s'", key, err);
        Lora *l = lora_create(m, &spec, err, sizeof err);
        ck_assert_msg(l != NULL, "%s", err);
        ck_assert_int_eq(lora_load_peft(l, dir, err, sizeof err), -1);
        ck_assert_msg(strstr(err, key) != NULL, "%s: '%s'", key, err);
        lora_free(l);
    }
    model_free(m);
    test_rmtree(dir);
    free(dir);
}
END_TEST

Suite *lora_suite(void) {
    Suite *s = suite_create("lora");
    TCase *tc = tcase_create("peft");
    tcase_add_test(tc, test_fresh_init_is_kaiming_uniform_a_and_zero_b);
    tcase_add_test(tc, test_peft_save_load_round_trip_is_bit_exact);
    tcase_add_test(tc, test_peft_features_lorafit_would_misapply_are_refused_by_name);
    suite_add_tcase(s, tc);
    return s;
}
