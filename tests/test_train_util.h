/* tests/test_train_util.h — helpers for the end-to-end tests of `lorafit train`. */
#ifndef LORAFIT_TEST_TRAIN_UTIL_H
#define LORAFIT_TEST_TRAIN_UTIL_H

#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>

#include "trainer/model/model.h"
#include "trainer/store/store.h"

/* Writes DIR/NAME with the text; returns the path (caller frees). */
char *tt_write_text(const char *dir, const char *name, const char *text);
/* The absolute path of a file of the repository (caller frees); fails the test if missing. */
char *tt_repo_path(const char *rel);
/* `lorafit ARGS` in dir, which must succeed; its stdout (caller frees). */
char *tt_run_stdout(const char *dir, const char *args);
/* DIR/config.yaml: a training config of `extra` lines (lora, data and train keys) on
 * model_dir, output in DIR/out without checkpoints, a metrics line every step; its path. */
char *tt_write_config(const char *dir, const char *model_dir, const char *extra);
/* DST (created) as the model directory SRC with config.json edited: each key of edits set
 * in it (a JSON null deletes the key); the weights are symlinked, not copied. */
void tt_model_with_config(const char *src, const char *dst, json_t *edits);
/* FX/fixture.json of a make_fixture.py fixture (FX a directory, repo-relative or absolute);
 * fails the test when it cannot be read. The caller json_decref's it. */
json_t *tt_fixture(const char *fx);
/* The fixture's integer list `key` as "1 2 3" (caller frees), its length in *n unless n is
 * NULL; fails the test when the list is missing. */
char *tt_fixture_ids(json_t *fx, const char *key, int *n);
/* The same list read from fixture FX's fixture.json (FX a directory). */
char *tt_fixture_ids_of(const char *fx, const char *key);
/* `lorafit generate MODEL_ARGS` (e.g. "--model 'M' --adapter 'A'") run in DIR gives fixture
 * FX's greedy_adapter ids from its greedy_prompt (64 tokens, f32). */
void tt_check_generates(const char *dir, const char *model_args, const char *fx);
/* `lorafit merge` of ADAPTER into MODEL succeeds into DIR/merged, and the merged model
 * generates fixture FX's greedy_adapter ids (tt_check_generates). */
void tt_check_merged_generates(const char *dir, const char *model, const char *adapter,
                               const char *fx);
/* The logits (N, V) of a fixed batch (2 x 12 ids, (i * 37 + 5) % id_bound, or % the
 * model's vocabulary when id_bound is 0) through the model in DIR with the adapter in
 * ADAPTER (NULL: the base model); *n = N * V (caller frees). */
float *tt_fixed_batch_logits(const char *dir, const char *adapter, int id_bound, int64_t *n);
/* Runs `lorafit ARGS` (a shell-quoted argument string), output to DIR/log.txt; exit code. */
int tt_lorafit(const char *dir, const char *args);
/* Runs `lorafit ARGS` in DIR and fails the test unless it exits with want_rc and its output
 * contains needle (when not NULL). */
void tt_expect(const char *dir, const char *args, int want_rc, const char *needle);
/* The text of DIR/log.txt (caller frees). */
char *tt_log(const char *dir);
/* Starts lorafit with argv (NULL-terminated, without the program) in the background,
 * output appended to log_path; returns the pid. */
pid_t tt_spawn(const char *const *argv, const char *log_path);
/* tt_spawn with LORAFIT_FAULT=fault in the child's environment (a fault point, e.g.
 * "kill:step:3" or "stop:rename:2"; see trainer/fsio.h). */
pid_t tt_spawn_fault(const char *const *argv, const char *log_path, const char *fault);
/* Waits until pid has stopped itself (a "stop:" fault point); fails the test if it exits
 * instead, or if it has not stopped after `seconds` (the event never came). */
void tt_wait_stopped(pid_t pid, int seconds);
/* Waits for pid; returns its exit code, or 128 + signal. */
int tt_wait(pid_t pid);
/* The same, for at most `seconds`: fails the test (after killing pid) if it has not ended
 * by then (the event never came). */
int tt_wait_bounded(pid_t pid, int seconds, const char *what);
/* metrics.jsonl of an output dir as a JSON array (caller decrefs); fails the test if absent. */
json_t *tt_metrics(const char *out_dir);
/* The training lines' "loss" values; returns how many (at most max). */
int tt_losses(json_t *metrics, double *loss, int max);
/* Removes the timing fields (tokens_per_s, elapsed_s) from every line, for comparisons. */
void tt_strip_timing(json_t *metrics);
/* Writes n random token rows (lengths in [min_len, max_len], ids in [0, vocab)) as JSONL. */
void tt_random_rows(const char *path, int n, int min_len, int max_len, int vocab, unsigned seed);
/* Compares every tensor of two safetensors files: max over tensors of
 * ||a - b|| / ||b||; fails the test if their names or shapes differ. */
double tt_adapter_rel_diff(const char *a_path, const char *b_path, const char *b_prefix);
/* Batch 0 of a make_fixture.py training fixture (tests/data/train/X, ../shared/fixtures/X):
 * its LoRA (from init_adapter) on model m, ids and next-token targets (B*T), and the float64
 * reference's first loss and gradient norm. tt_fixture_free releases it. */
typedef struct TtFixture {
    Lora *lora;
    int batch, seq;
    int32_t *ids, *targets;
    double loss_ref, norm_ref;
} TtFixture;
void tt_fixture_load(const char *fx, const Model *m, TtFixture *f);
void tt_fixture_free(TtFixture *f);
/* A tensor of a fixture's expected.safetensors as float32 (caller frees); fails the test if
 * absent or of another size. */
float *tt_expected_floats(const SafeTensors *st, const char *name, int64_t numel);
/* Byte equality of two files. */
bool tt_same_bytes(const char *a, const char *b);
/* metrics.jsonl of DIR/out with the timing fields removed (caller decrefs). */
json_t *tt_stripped_metrics(const char *dir);
/* The run in DIR ended byte-identical to the one in REF: DIR/out's adapter and metrics
 * (timing aside); `what` names the run in a failure. */
void tt_assert_same_run(const char *ref, const char *dir, const char *what);

/* The node-llama-cpp install (LLAMACPP_DIR, else build/llamacpp) in buf, or NULL with why
 * when llama.cpp cannot run here (not installed, node < 20). */
const char *tt_llamacpp_dir(char *buf, size_t len, const char **why);

#endif
