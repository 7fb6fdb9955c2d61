/* tests/test_faults.c — no I/O fault may cost the last good checkpoint (in-process part).
 *
 * checkpoint_save is driven with fsio's fault hook failing the 1st, 2nd, ... write, fsync and
 * rename until a save gets through: every failing save must say what failed, leave no new
 * or half-written checkpoint-STEP visible, and leave the previous checkpoint loading back
 * bit-exactly — also when the failing save replaces a checkpoint of the same step. Headers
 * that declare absurd sizes are refused with a message naming the size. The end-to-end
 * cases (the lorafit binary under LORAFIT_FAULT, a full disk, corrupted checkpoints, a
 * changed dataset) are in tests/test_faults_e2e.c. */
#include <dirent.h>
#include <math.h>
#include <stdbool.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/test_util.h"
#include "trainer/train/train.h"
#include "trainer/store/store.h"
#include "trainer/model/model.h"

#define MODEL_DIR "tests/data/train/qwen2-untied/model"

typedef struct Job {
    Model *model;
    Lora *lora;
    float *m, *v; /* (n) */
    size_t n;
    uint8_t cursor[40];
    TrainState state;
} Job;

static void job_open(Job *j) {
    char err[1024];
    memset(j, 0, sizeof *j);
    j->model = model_load(MODEL_DIR, err, sizeof err);
    ck_assert_msg(j->model != NULL, "%s", err);
    LoraSpec spec = {.r = 2, .alpha = 4, .targets = LORA_Q | LORA_V | LORA_DOWN};
    j->lora = lora_create(j->model, &spec, err, sizeof err);
    ck_assert_msg(j->lora != NULL, "%s", err);
    lora_params(j->lora, &j->n);
    j->m = malloc(j->n * sizeof *j->m);
    j->v = malloc(j->n * sizeof *j->v);
    ck_assert(j->m && j->v);
    j->state.config_keys = "lora.r=2\n";
    j->state.cursor = j->cursor;
    j->state.cursor_size = sizeof j->cursor;
}

/* Fills parameters, moments, cursor and counters from a seed: each "step" differs. */
static void job_fill(Job *j, int64_t step, uint64_t seed) {
    size_t n;
    float *p = lora_params(j->lora, &n);
    for (size_t i = 0; i < n; i++) {
        p[i] = test_rand_uniform(&seed, -1, 1);
        j->m[i] = test_rand_uniform(&seed, -1e-2f, 1e-2f);
        j->v[i] = test_rand_uniform(&seed, 0, 1e-4f);
    }
    for (size_t i = 0; i < sizeof j->cursor; i++) j->cursor[i] = (uint8_t)test_rand_u64(&seed);
    j->state.step = step;
    j->state.tokens = 100 * step;
    j->state.elapsed_s = 0.1 * (double)step + 1.0 / 3.0;
    j->state.log_loss_sum = 4.0 + 1.0 / 7.0;
    j->state.log_steps = 1;
    j->state.log_tokens = 17;
    j->state.best_eval_loss = INFINITY;
    j->state.threads = 2;
}

static void job_close(Job *j) {
    free(j->m);
    free(j->v);
    lora_free(j->lora);
    model_free(j->model);
}

typedef struct Snapshot {
    float *p, *m, *v;
    size_t n;
    TrainState state;
    uint8_t cursor[40];
} Snapshot;

static void snapshot(const Job *j, Snapshot *s) {
    size_t n;
    const float *p = lora_params(j->lora, &n);
    s->n = n;
    s->p = malloc(n * sizeof *s->p);
    s->m = malloc(n * sizeof *s->m);
    s->v = malloc(n * sizeof *s->v);
    ck_assert(s->p && s->m && s->v);
    memcpy(s->p, p, n * sizeof *p);
    memcpy(s->m, j->m, n * sizeof *s->m);
    memcpy(s->v, j->v, n * sizeof *s->v);
    memcpy(s->cursor, j->cursor, sizeof s->cursor);
    s->state = j->state;
}

static void snapshot_free(Snapshot *s) {
    free(s->p);
    free(s->m);
    free(s->v);
}

/* Loads DIR into a fresh job and checks every value is bit-identical to the snapshot. */
static void assert_loads_exactly(const char *dir, const Snapshot *want) {
    Job j;
    job_open(&j);
    TrainState got;
    char err[1024];
    ck_assert_msg(checkpoint_load(dir, j.lora, j.m, j.v, &got, err, sizeof err) == 0, "%s", err);
    size_t n;
    const float *p = lora_params(j.lora, &n);
    ck_assert_int_eq(n, want->n);
    ck_assert_msg(memcmp(p, want->p, n * sizeof *p) == 0, "%s: LoRA weights differ", dir);
    ck_assert_msg(memcmp(j.m, want->m, n * sizeof *j.m) == 0, "%s: exp_avg differs", dir);
    ck_assert_msg(memcmp(j.v, want->v, n * sizeof *j.v) == 0, "%s: exp_avg_sq differs", dir);
    ck_assert_int_eq(got.step, want->state.step);
    ck_assert_int_eq(got.tokens, want->state.tokens);
    ck_assert(got.elapsed_s == want->state.elapsed_s);
    ck_assert(got.log_loss_sum == want->state.log_loss_sum);
    ck_assert(isinf(got.best_eval_loss));
    ck_assert_int_eq(got.cursor_size, sizeof want->cursor);
    ck_assert(memcmp(got.cursor, want->cursor, sizeof want->cursor) == 0);
    ck_assert_str_eq(got.config_keys, want->state.config_keys);
    train_state_free(&got);
    job_close(&j);
}

/* The names in out_dir other than "." and ".."; fails on anything but the expected ones. */
static void assert_dir_holds_only(const char *out_dir, const char *only) {
    DIR *d = opendir(out_dir);
    ck_assert(d != NULL);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        ck_assert_msg(strcmp(e->d_name, only) == 0, "%s: unexpected '%s' left after a failed save",
                      out_dir, e->d_name);
    }
    closedir(d);
}

/* Fails the nth call of op for nth = 1, 2, ... until a save succeeds; returns how many
 * saves failed. new_step == old step exercises the replace-in-place path. */
static int fail_every_point(FsioOp op, int64_t new_step) {
    char *out = test_tmpdir();
    Job j;
    job_open(&j);
    job_fill(&j, 2, 99);
    char err[1024];
    ck_assert_msg(checkpoint_save(out, j.lora, j.m, j.v, &j.state, "m", err, sizeof err) == 0, "%s",
                  err);
    Snapshot good;
    snapshot(&j, &good);
    char good_dir[4200];
    snprintf(good_dir, sizeof good_dir, "%s/checkpoint-2", out);
    int failures = 0;
    for (long nth = 1; nth < 1000; nth++) {
        job_fill(&j, new_step, 1000 + (uint64_t)nth);
        err[0] = '\0';
        fsio_inject_fault(op, nth);
        int rc = checkpoint_save(out, j.lora, j.m, j.v, &j.state, "m", err, sizeof err);
        fsio_inject_fault(op, 0);
        if (rc == 0) break;
        failures++;
        ck_assert_msg(strstr(err, "Input/output error") != NULL,
                      "fault %d #%ld: the error does not name the I/O failure: '%s'", (int)op, nth,
                      err);
        /* Only a failing fsync of the output directory after the final rename leaves the
         * new checkpoint in place: complete, just not yet durable. Then it must hold
         * exactly the new values; otherwise the previous one must, untouched. */
        Snapshot attempted;
        snapshot(&j, &attempted);
        char new_dir[4200];
        snprintf(new_dir, sizeof new_dir, "%s/checkpoint-%lld", out, (long long)new_step);
        bool new_visible = false;
        if (new_step != 2 && access(new_dir, F_OK) == 0) {
            ck_assert_msg(op == FSIO_OP_FSYNC, "fault %d #%ld left %s", (int)op, nth, new_dir);
            assert_loads_exactly(new_dir, &attempted);
            test_rmtree(new_dir); /* back to the previous state for the next point */
            new_visible = true;
        }
        assert_dir_holds_only(out, "checkpoint-2");
        char latest[4200];
        int64_t step = -1;
        char skipped[512];
        ck_assert_int_eq(manifest_latest_complete(out, latest, sizeof latest, &step, skipped,
                                                  sizeof skipped, err, sizeof err),
                         1);
        ck_assert_int_eq(step, 2);
        if (new_step == 2 && op == FSIO_OP_FSYNC && !new_visible) {
            /* Replacing in place: the old or the complete new one, nothing else. */
            char e2[1024];
            Job probe;
            job_open(&probe);
            TrainState st;
            ck_assert_msg(
                checkpoint_load(good_dir, probe.lora, probe.m, probe.v, &st, e2, sizeof e2) == 0,
                "%s", e2);
            bool is_new = memcmp(probe.m, attempted.m, attempted.n * sizeof *probe.m) == 0;
            train_state_free(&st);
            job_close(&probe);
            assert_loads_exactly(good_dir, is_new ? &attempted : &good);
            if (is_new) { /* restore the old one for the next point */
                Job back;
                job_open(&back);
                job_fill(&back, 2, 99);
                ck_assert(checkpoint_save(out, back.lora, back.m, back.v, &back.state, "m", e2,
                                          sizeof e2) == 0);
                back.state.config_keys = NULL;
                job_close(&back);
            }
        } else {
            assert_loads_exactly(good_dir, &good);
        }
        snapshot_free(&attempted);
    }
    /* The save that got through is complete and holds the new values. */
    Snapshot fresh;
    snapshot(&j, &fresh);
    char new_dir[4200];
    snprintf(new_dir, sizeof new_dir, "%s/checkpoint-%lld", out, (long long)new_step);
    assert_loads_exactly(new_dir, &fresh);
    snapshot_free(&fresh);
    snapshot_free(&good);
    j.state.config_keys = NULL;
    job_close(&j);
    test_rmtree(out);
    free(out);
    return failures;
}

START_TEST(test_failed_write_at_each_point_keeps_previous_checkpoint) {
    /* adapter, config, state and MANIFEST: several writes each. */
    ck_assert_int_ge(fail_every_point(FSIO_OP_WRITE, 4), 4);
}
END_TEST

START_TEST(test_failed_fsync_at_each_point_keeps_previous_checkpoint) {
    ck_assert_int_ge(fail_every_point(FSIO_OP_FSYNC, 4), 4);
}
END_TEST

START_TEST(test_failed_rename_at_each_point_keeps_previous_checkpoint) {
    /* four files and the directory */
    ck_assert_int_ge(fail_every_point(FSIO_OP_RENAME, 4), 5);
}
END_TEST

START_TEST(test_failed_save_over_same_step_keeps_the_old_one) {
    ck_assert_int_ge(fail_every_point(FSIO_OP_WRITE, 2), 4);
    ck_assert_int_ge(fail_every_point(FSIO_OP_FSYNC, 2), 4);
    ck_assert_int_ge(fail_every_point(FSIO_OP_RENAME, 2), 5);
}
END_TEST

/* ---- absurd sizes ----------------------------------------------------------------- */

static char *write_st(const char *dir, uint64_t header_len, const char *header, const void *payload,
                      size_t payload_len) {
    char *path = malloc(4200);
    snprintf(path, 4200, "%s/x.safetensors", dir);
    size_t hl = strlen(header);
    char *buf = malloc(8 + hl + payload_len + 1);
    for (int i = 0; i < 8; i++) buf[i] = (char)(header_len >> (8 * i));
    memcpy(buf + 8, header, hl);
    if (payload_len) memcpy(buf + 8 + hl, payload, payload_len);
    test_write_file(path, buf, 8 + hl + payload_len);
    free(buf);
    return path;
}

static void assert_st_refused(const char *path, const char *why) {
    char err[1024] = "";
    SafeTensors *st = st_open(path, err, sizeof err);
    ck_assert_msg(st == NULL, "accepted a file whose header %s", why);
    ck_assert_msg(strstr(err, "out of memory") == NULL, "tried to allocate: %s", err);
    ck_assert_msg(strstr(err, path) != NULL, "error does not name the file: %s", err);
}

START_TEST(test_safetensors_absurd_sizes_refused_before_allocation) {
    char *dir = test_tmpdir();
    char *p = write_st(dir, UINT64_MAX, "{}      ", NULL, 0);
    assert_st_refused(p, "length is 2^64-1");
    free(p);
    p = write_st(dir, 1ull << 40, "{}      ", NULL, 0);
    assert_st_refused(p, "length is 1 TB");
    free(p);
    p = write_st(dir, 99u * 1000u * 1000u, "{}      ", NULL, 0); /* under the limit, past EOF */
    assert_st_refused(p, "length runs past the end of the file");
    free(p);
    const char *h1 = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1099511627776,1099511627776],"
                     "\"data_offsets\":[0,4]}}";
    char hdr[512];
    snprintf(hdr, sizeof hdr, "%-*s", (int)((strlen(h1) + 7) / 8 * 8), h1);
    p = write_st(dir, strlen(hdr), hdr, "abcd", 4);
    assert_st_refused(p, "shape product overflows");
    free(p);
    const char *h2 = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1000000000000],"
                     "\"data_offsets\":[0,4000000000000]}}";
    snprintf(hdr, sizeof hdr, "%-*s", (int)((strlen(h2) + 7) / 8 * 8), h2);
    p = write_st(dir, strlen(hdr), hdr, "abcd", 4);
    assert_st_refused(p, "declares 4 TB of data in a small file");
    free(p);
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_manifest_absurd_size_is_refused) {
    char *dir = test_tmpdir();
    char path[4200];
    snprintf(path, sizeof path, "%s/a.bin", dir);
    test_write_file(path, "0123456789", 10);
    const char *bad[] = {
        "lorafit-manifest 1\n18446744073709551615 a5d0bde4 a.bin\n",
        "lorafit-manifest 1\n99999999999999999999999999 a5d0bde4 a.bin\n",
        "lorafit-manifest 1\n10 a5d0bde4 ../a.bin\n",
        "lorafit-manifest 1\n10 a5d0bde4 /etc/passwd\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(path, sizeof path, "%s/MANIFEST", dir);
        test_write_file(path, bad[i], strlen(bad[i]));
        char err[1024] = "";
        ck_assert_msg(manifest_verify(dir, err, sizeof err) != 0, "accepted: %s", bad[i]);
        ck_assert_msg(err[0] && strstr(err, "out of memory") == NULL, "%s", err);
    }
    test_rmtree(dir);
    free(dir);
}
END_TEST

Suite *faults_suite(void) {
    Suite *s = suite_create("faults");
    TCase *tc = tcase_create("checkpoint_save");
    tcase_add_test(tc, test_failed_write_at_each_point_keeps_previous_checkpoint);
    tcase_add_test(tc, test_failed_fsync_at_each_point_keeps_previous_checkpoint);
    tcase_add_test(tc, test_failed_rename_at_each_point_keeps_previous_checkpoint);
    tcase_add_test(tc, test_failed_save_over_same_step_keeps_the_old_one);
    suite_add_tcase(s, tc);
    TCase *sz = tcase_create("absurd_sizes");
    tcase_add_test(sz, test_safetensors_absurd_sizes_refused_before_allocation);
    tcase_add_test(sz, test_manifest_absurd_size_is_refused);
    suite_add_tcase(s, sz);
    return s;
}
