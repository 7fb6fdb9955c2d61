/* tests/test_train_util.c — see test_train_util.h. */
#include "tests/test_train_util.h"

#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/test_util.h"
#include "trainer/model/lora.h"
#include "trainer/store/store.h"

char *tt_write_text(const char *dir, const char *name, const char *text) {
    char *path = malloc(strlen(dir) + strlen(name) + 2);
    sprintf(path, "%s/%s", dir, name);
    test_write_file(path, text, strlen(text));
    return path;
}

void tt_model_with_config(const char *src, const char *dst, json_t *edits) {
    char from[4200], to[4200];
    ck_assert_int_eq(mkdir(dst, 0755), 0);
    snprintf(from, sizeof from, "%s/model.safetensors", src);
    snprintf(to, sizeof to, "%s/model.safetensors", dst);
    ck_assert_int_eq(symlink(from, to), 0);
    snprintf(from, sizeof from, "%s/config.json", src);
    json_t *cfg = json_load_file(from, 0, NULL);
    ck_assert_msg(cfg != NULL, "%s: not JSON", from);
    const char *key;
    json_t *v;
    json_object_foreach(edits, key, v) {
        if (json_is_null(v))
            json_object_del(cfg, key);
        else
            json_object_set(cfg, key, v);
    }
    snprintf(to, sizeof to, "%s/config.json", dst);
    ck_assert_int_eq(json_dump_file(cfg, to, 0), 0);
    json_decref(cfg);
}

json_t *tt_fixture(const char *fx) {
    char path[4200];
    snprintf(path, sizeof path, "%s/fixture.json", fx);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    ck_assert_msg(root != NULL, "%s: %s", path, je.text);
    return root;
}

char *tt_fixture_ids(json_t *fx, const char *key, int *n) {
    json_t *a = json_object_get(fx, key);
    ck_assert_msg(json_is_array(a), "fixture.json has no %s", key);
    size_t len = json_array_size(a);
    char *s = malloc(len * 12 + 1);
    ck_assert(s != NULL);
    size_t at = 0;
    s[0] = '\0';
    for (size_t i = 0; i < len; i++)
        at += (size_t)sprintf(s + at, i ? " %lld" : "%lld",
                              (long long)json_integer_value(json_array_get(a, i)));
    if (n) *n = (int)len;
    return s;
}

char *tt_fixture_ids_of(const char *fx, const char *key) {
    json_t *root = tt_fixture(fx);
    char *ids = tt_fixture_ids(root, key, NULL);
    json_decref(root);
    return ids;
}

void tt_check_generates(const char *dir, const char *model_args, const char *fx) {
    char args[16384];
    char *prompt = tt_fixture_ids_of(fx, "greedy_prompt"),
         *want = tt_fixture_ids_of(fx, "greedy_adapter");
    snprintf(args, sizeof args, "generate %s --prompt-ids '%s' -n 64 --precision f32", model_args,
             prompt);
    char *out = tt_run_stdout(dir, args);
    out[strcspn(out, "\n")] = '\0';
    ck_assert_str_eq(out, want);
    free(out);
    free(prompt);
    free(want);
}

void tt_check_merged_generates(const char *dir, const char *model, const char *adapter,
                               const char *fx) {
    char args[16384];
    snprintf(args, sizeof args, "merge --model '%s' --adapter '%s' --out '%s/merged'", model,
             adapter, dir);
    tt_expect(dir, args, 0, "merged");
    snprintf(args, sizeof args, "--model '%s/merged'", dir);
    tt_check_generates(dir, args, fx);
}

float *tt_fixed_batch_logits(const char *dir, const char *adapter, int id_bound, int64_t *n) {
    char err[1024];
    Model *m = model_load(dir, err, sizeof err);
    ck_assert_msg(m != NULL, "%s", err);
    Lora *lora = adapter ? lora_load_adapter(m, adapter, err, sizeof err) : NULL;
    ck_assert_msg(!adapter || lora, "%s", err);
    int bound = id_bound > 0 ? id_bound : model_config(m)->vocab_size;
    int32_t ids[24];
    for (int i = 0; i < 24; i++) ids[i] = (int32_t)((i * 37 + 5) % bound);
    Graph *g = graph_create();
    Tensor *lg = model_forward_eval(m, lora, g, ids, NULL, NULL, 2, 12);
    ck_assert(lg != NULL);
    *n = lg->size;
    float *out = malloc((size_t)lg->size * sizeof *out);
    memcpy(out, lg->data, (size_t)lg->size * sizeof *out);
    graph_destroy(g);
    lora_free(lora);
    model_free(m);
    return out;
}

int tt_lorafit(const char *dir, const char *args) {
    char cmd[8192], log[4200];
    snprintf(cmd, sizeof cmd, "'%s' %s", test_lorafit_bin(), args);
    snprintf(log, sizeof log, "%s/log.txt", dir);
    return test_run(cmd, log);
}

void tt_expect(const char *dir, const char *args, int want_rc, const char *needle) {
    int rc = tt_lorafit(dir, args);
    char *log = tt_log(dir);
    ck_assert_msg(rc == want_rc, "lorafit %s: exit %d, expected %d:\n%s", args, rc, want_rc, log);
    if (needle) ck_assert_msg(strstr(log, needle) != NULL, "'%s' not in:\n%s", needle, log);
    free(log);
}

char *tt_log(const char *dir) {
    char log[4200];
    snprintf(log, sizeof log, "%s/log.txt", dir);
    char *text = test_read_file(log, NULL);
    return text ? text : strdup("");
}

pid_t tt_spawn_fault(const char *const *argv, const char *log_path, const char *fault) {
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        if (fault)
            setenv("LORAFIT_FAULT", fault, 1);
        else
            unsetenv("LORAFIT_FAULT");
        int n = 0;
        while (argv[n]) n++;
        char **args = calloc((size_t)n + 2, sizeof *args);
        args[0] = (char *)test_lorafit_bin();
        for (int i = 0; i < n; i++) args[i + 1] = (char *)argv[i];
        execv(args[0], args);
        _exit(127);
    }
    return pid;
}

pid_t tt_spawn(const char *const *argv, const char *log_path) {
    return tt_spawn_fault(argv, log_path, NULL);
}

void tt_wait_stopped(pid_t pid, int seconds) {
    for (long waited_ms = 0; waited_ms < 1000L * seconds; waited_ms += 5) {
        int st;
        pid_t got = waitpid(pid, &st, WNOHANG | WUNTRACED);
        ck_assert_int_ge(got, 0);
        if (got == pid && WIFSTOPPED(st)) return;
        ck_assert_msg(got == 0, "process %d ended (status 0x%x) before its stop point", (int)pid,
                      st);
        usleep(5000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    ck_abort_msg("process %d did not reach its stop point within %d s", (int)pid, seconds);
}

int tt_wait(pid_t pid) {
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
    return WEXITSTATUS(st);
}

/* The exit code of pid (128 + signal); fails the test (after killing it) if it has not
 * ended within `seconds`. */
int tt_wait_bounded(pid_t pid, int seconds, const char *what) {
    for (long ms = 0; ms < 1000L * seconds; ms += 10) {
        int st;
        pid_t got = waitpid(pid, &st, WNOHANG);
        ck_assert_int_ge(got, 0);
        if (got == pid) return WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    ck_abort_msg("%s did not end within %d s", what, seconds);
    return -1;
}

json_t *tt_metrics(const char *out_dir) {
    char path[4200];
    snprintf(path, sizeof path, "%s/metrics.jsonl", out_dir);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "%s is missing", path);
    json_t *all = json_array();
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        json_error_t e;
        json_t *j = json_loadb(line, (size_t)n, 0, &e);
        ck_assert_msg(j != NULL, "%s: bad line: %s", path, e.text);
        json_array_append_new(all, j);
    }
    free(line);
    fclose(f);
    return all;
}

int tt_losses(json_t *metrics, double *loss, int max) {
    int n = 0;
    size_t i;
    json_t *line;
    json_array_foreach(metrics, i, line) {
        json_t *l = json_object_get(line, "loss");
        if (l && n < max) loss[n++] = json_number_value(l);
    }
    return n;
}

void tt_strip_timing(json_t *metrics) {
    size_t i;
    json_t *line;
    json_array_foreach(metrics, i, line) {
        json_object_del(line, "tokens_per_s");
        json_object_del(line, "elapsed_s");
    }
}

void tt_random_rows(const char *path, int n, int min_len, int max_len, int vocab, unsigned seed) {
    FILE *f = fopen(path, "w");
    ck_assert(f != NULL);
    uint64_t s = seed;
    for (int r = 0; r < n; r++) {
        int len = min_len + (int)(test_rand_u64(&s) % (uint64_t)(max_len - min_len + 1));
        fputs("{\"input_ids\": [1", f);
        for (int i = 1; i < len; i++)
            fprintf(f, ", %d", (int)(test_rand_u64(&s) % (uint64_t)vocab));
        fputs("]}\n", f);
    }
    ck_assert_int_eq(fclose(f), 0);
}

double tt_adapter_rel_diff(const char *a_path, const char *b_path, const char *b_prefix) {
    char err[1024];
    SafeTensors *a = st_open(a_path, err, sizeof err);
    ck_assert_msg(a != NULL, "%s", err);
    SafeTensors *b = st_open(b_path, err, sizeof err);
    ck_assert_msg(b != NULL, "%s", err);
    double worst = 0;
    for (int i = 0; i < st_count(a); i++) {
        const StTensor *ta = st_tensor_at(a, i);
        char name[512];
        snprintf(name, sizeof name, "%s%s", b_prefix, ta->name);
        const StTensor *tb = st_find(b, name);
        ck_assert_msg(tb != NULL, "%s has no %s", b_path, name);
        ck_assert_int_eq(ta->numel, tb->numel);
        float *fa = malloc((size_t)ta->numel * sizeof(float));
        float *fb = malloc((size_t)tb->numel * sizeof(float));
        ck_assert_int_eq(st_to_float(ta, fa, err, sizeof err), 0);
        ck_assert_int_eq(st_to_float(tb, fb, err, sizeof err), 0);
        double num = 0, den = 0;
        for (int64_t j = 0; j < ta->numel; j++) {
            num += ((double)fa[j] - fb[j]) * ((double)fa[j] - fb[j]);
            den += (double)fb[j] * fb[j];
        }
        double rel = den > 0 ? sqrt(num / den) : sqrt(num);
        if (rel > worst) worst = rel;
        free(fa);
        free(fb);
    }
    st_close(a);
    st_close(b);
    return worst;
}

bool tt_same_bytes(const char *a, const char *b) {
    size_t na, nb;
    char *da = test_read_file(a, &na), *db = test_read_file(b, &nb);
    bool same = da && db && na == nb && memcmp(da, db, na) == 0;
    free(da);
    free(db);
    return same;
}

json_t *tt_stripped_metrics(const char *dir) {
    char out[4200];
    snprintf(out, sizeof out, "%s/out", dir);
    json_t *m = tt_metrics(out);
    tt_strip_timing(m);
    return m;
}

void tt_assert_same_run(const char *ref, const char *dir, const char *what) {
    char a[4400], b[4400];
    snprintf(a, sizeof a, "%s/out/adapter/adapter_model.safetensors", ref);
    snprintf(b, sizeof b, "%s/out/adapter/adapter_model.safetensors", dir);
    ck_assert_msg(tt_same_bytes(a, b), "%s: the adapter differs from the reference run's", what);
    json_t *ma = tt_stripped_metrics(ref), *mb = tt_stripped_metrics(dir);
    char *ta = json_dumps(ma, JSON_SORT_KEYS), *tb = json_dumps(mb, JSON_SORT_KEYS);
    ck_assert_msg(strcmp(ta, tb) == 0, "%s: metrics differ:\n%s\nvs\n%s", what, ta, tb);
    free(ta);
    free(tb);
    json_decref(ma);
    json_decref(mb);
}

/* Rows [0, batch) of a fixture's train.jsonl: ids and next-token targets (B*T). */
static void read_batch(const char *path, int batch, int seq, int32_t *ids, int32_t *targets) {
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    char line[65536];
    for (int b = 0; b < batch; b++) {
        ck_assert(fgets(line, sizeof line, f) != NULL);
        json_error_t je;
        json_t *row = json_loads(line, 0, &je);
        ck_assert(row != NULL);
        json_t *in = json_object_get(row, "input_ids"), *lab = json_object_get(row, "labels");
        ck_assert_int_eq((int)json_array_size(in), seq);
        for (int t = 0; t < seq; t++) {
            ids[b * seq + t] = (int32_t)json_integer_value(json_array_get(in, (size_t)t));
            targets[b * seq + t] =
                t + 1 < seq ? (int32_t)json_integer_value(json_array_get(lab, (size_t)t + 1))
                            : TENSOR_IGNORE_INDEX;
        }
        json_decref(row);
    }
    fclose(f);
}

float *tt_expected_floats(const SafeTensors *st, const char *name, int64_t numel) {
    const StTensor *t = st_find(st, name);
    ck_assert_msg(t != NULL, "expected.safetensors has no %s", name);
    ck_assert_int_eq(t->numel, numel);
    float *out = malloc((size_t)numel * sizeof *out);
    char err[256];
    ck_assert_int_eq(st_to_float(t, out, err, sizeof err), 0);
    return out;
}

void tt_fixture_load(const char *fx, const Model *m, TtFixture *f) {
    char path[4096], err[1024];
    snprintf(path, sizeof path, "%s/fixture.json", fx);
    json_error_t je;
    json_t *fj = json_load_file(path, 0, &je);
    ck_assert_msg(fj != NULL, "%s", je.text);
    LoraSpec spec = {.r = (int)json_integer_value(json_object_get(fj, "r")),
                     .alpha = (float)json_number_value(json_object_get(fj, "alpha")),
                     .rslora = json_is_true(json_object_get(fj, "rslora"))};
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(fj, "targets"), i, t) spec.targets |=
        lora_parse_target(json_string_value(t));
    f->batch = (int)json_integer_value(json_object_get(fj, "batch"));
    f->seq = (int)json_integer_value(json_object_get(fj, "seq"));
    f->loss_ref = json_number_value(json_array_get(json_object_get(fj, "losses"), 0));
    f->norm_ref = json_number_value(json_object_get(fj, "grad_norm_step0"));
    json_decref(fj);
    f->lora = lora_create(m, &spec, err, sizeof err);
    ck_assert_msg(f->lora != NULL, "%s", err);
    snprintf(path, sizeof path, "%s/init_adapter", fx);
    ck_assert_msg(lora_load_peft(f->lora, path, err, sizeof err) == 0, "%s", err);
    int n = f->batch * f->seq;
    f->ids = malloc((size_t)n * sizeof *f->ids);
    f->targets = malloc((size_t)n * sizeof *f->targets);
    snprintf(path, sizeof path, "%s/train.jsonl", fx);
    read_batch(path, f->batch, f->seq, f->ids, f->targets);
}

void tt_fixture_free(TtFixture *f) {
    free(f->ids);
    free(f->targets);
    lora_free(f->lora);
}

char *tt_repo_path(const char *rel) {
    char *p = realpath(rel, NULL);
    ck_assert_msg(p != NULL, "%s is missing", rel);
    return p;
}

char *tt_run_stdout(const char *dir, const char *args) {
    char cmd[16384], out[4200], errp[4200];
    snprintf(out, sizeof out, "%s/stdout.txt", dir);
    snprintf(errp, sizeof errp, "%s/stderr.txt", dir);
    snprintf(cmd, sizeof cmd, "'%s' %s >'%s' 2>'%s'", test_lorafit_bin(), args, out, errp);
    int rc = test_run(cmd, NULL);
    char *err = test_read_file(errp, NULL);
    ck_assert_msg(rc == 0, "lorafit %s: exit %d\n%s", args, rc, err ? err : "");
    free(err);
    char *text = test_read_file(out, NULL);
    ck_assert(text != NULL);
    return text;
}

char *tt_write_config(const char *dir, const char *model_dir, const char *extra) {
    char cfg[24576];
    snprintf(cfg, sizeof cfg,
             "model:\n  path: %s\n%s"
             "output:\n  dir: %s/out\n  save_every: 0\n"
             "log:\n  every: 1\n",
             model_dir, extra, dir);
    return tt_write_text(dir, "config.yaml", cfg);
}

/* The node-llama-cpp install (LLAMACPP_DIR, else build/llamacpp), or NULL (with why) when llama.cpp
 * cannot run here. */
const char *tt_llamacpp_dir(char *buf, size_t len, const char **why) {
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
