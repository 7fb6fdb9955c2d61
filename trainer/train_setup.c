/* trainer/train_setup.c — from a Config to a running Trainer: paths, model, LoRA, data,
 * resume, and the final export.
 *
 * Resume rules (SPEC section 1): --resume alone takes the newest checkpoint whose MANIFEST
 * verifies (skipping and naming corrupt or incomplete newer ones) or starts from scratch when
 * there is none; --resume DIR takes exactly DIR. A checkpoint whose result-changing config
 * keys differ from the current config is refused (exit 2) with the keys named. Without
 * --resume, an output directory that already holds checkpoints is refused rather than
 * silently overwritten. */
#include <errno.h>
#include <glob.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "trainer/fsio.h"
#include "trainer/manifest.h"
#include "trainer/train_internal.h"

void train_data_options(const Config *cfg, bool train, int vocab_size, DataOptions *o) {
    memset(o, 0, sizeof *o);
    const ConfigList *list = train ? &cfg->data.train : &cfg->data.valid;
    o->paths = (const char **)list->items;
    o->n_paths = list->n;
    o->input_field = cfg->data.input_field;
    o->labels_field = cfg->data.labels_field;
    o->seq_len = (int)cfg->data.seq_len;
    o->batch_size = (int)cfg->train.batch_size;
    o->packing = cfg->data.packing;
    o->overflow = cfg->data.overflow == OVERFLOW_SPLIT  ? DATA_OVERFLOW_SPLIT
                  : cfg->data.overflow == OVERFLOW_DROP ? DATA_OVERFLOW_DROP
                                                        : DATA_OVERFLOW_TRUNCATE;
    o->shuffle = train && cfg->data.shuffle;
    o->shuffle_buffer = (int)cfg->data.shuffle_buffer;
    o->on_error = cfg->data.on_error == ON_ERROR_SKIP ? DATA_ON_ERROR_SKIP : DATA_ON_ERROR_FAIL;
    o->vocab_size = vocab_size;
    o->seed = (uint64_t)cfg->train.seed;
    o->epochs = train ? (int)cfg->train.epochs : 1;
}

int train_lora_spec(const Config *cfg, LoraSpec *spec, char *err, size_t errlen) {
    memset(spec, 0, sizeof *spec);
    spec->r = (int)cfg->lora.r;
    spec->alpha = (float)cfg->lora.alpha;
    spec->rslora = cfg->lora.rslora;
    spec->dropout = (float)cfg->lora.dropout;
    for (int i = 0; i < cfg->lora.target_modules.n; i++) {
        unsigned bit = lora_parse_target(cfg->lora.target_modules.items[i]);
        if (!bit) {
            snprintf(err, errlen, "lora.target_modules: unknown module '%s'",
                     cfg->lora.target_modules.items[i]);
            return -1;
        }
        spec->targets |= bit;
    }
    return 0;
}

static int check_exists(const char *key, const char *path, bool want_dir, char *err,
                        size_t errlen) {
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(err, errlen, "%s: '%s' does not exist (%s)", key, path, strerror(errno));
        return -1;
    }
    if (want_dir != S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s: '%s' is %s", key, path,
                 want_dir ? "not a directory" : "a directory, not a data file");
        return -1;
    }
    return 0;
}

static int check_data_list(const char *key, const ConfigList *l, char *err, size_t errlen) {
    for (int i = 0; i < l->n; i++) {
        const char *p = l->items[i];
        if (strpbrk(p, "*?[") == NULL) {
            if (check_exists(key, p, false, err, errlen) != 0) return -1;
            continue;
        }
        glob_t g;
        int rc = glob(p, 0, NULL, &g);
        size_t n = rc == 0 ? g.gl_pathc : 0;
        if (rc == 0) globfree(&g);
        if (n == 0) {
            snprintf(err, errlen, "%s: no file matches '%s'", key, p);
            return -1;
        }
    }
    return 0;
}

int train_check_paths(const Config *cfg, char *err, size_t errlen) {
    if (check_exists("model.path", cfg->model.path, true, err, errlen) != 0) return -1;
    if (cfg->lora.init_from &&
        check_exists("lora.init_from", cfg->lora.init_from, true, err, errlen) != 0)
        return -1;
    if (check_data_list("data.train", &cfg->data.train, err, errlen) != 0) return -1;
    return check_data_list("data.valid", &cfg->data.valid, err, errlen);
}

/* ---- the final adapter ------------------------------------------------------------- */

typedef struct ExportCtx {
    const Lora *lora;
    const char *base_name;
} ExportCtx;

static int fill_adapter(const char *tmp, void *ctx, char *err, size_t errlen) {
    const ExportCtx *e = ctx;
    return lora_save_peft(e->lora, tmp, e->base_name, LORA_F32, err, errlen);
}

int train_export_adapter(Trainer *t, char *err, size_t errlen) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/adapter", t->cfg->output.dir);
    ExportCtx e = {t->lora, t->base_name};
    return checkpoint_write_dir(dir, fill_adapter, &e, err, errlen);
}

/* ---- setup ------------------------------------------------------------------------ */

static void base_model_name(const char *path, char *out, size_t len) {
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    size_t start = n;
    while (start > 0 && path[start - 1] != '/') start--;
    snprintf(out, len, "%.*s", (int)(n - start), path + start);
}

/* Which checkpoint to resume from: 1 with dir filled, 0 for none, or an exit code < 0. */
static int find_resume_point(const Config *cfg, const TrainOptions *opt, char *dir, size_t dirlen,
                             char *err, size_t errlen) {
    if (opt->resume && opt->resume_dir) {
        if (manifest_verify(opt->resume_dir, err, errlen) != 0) return -EXIT_RUNTIME;
        snprintf(dir, dirlen, "%s", opt->resume_dir);
        return 1;
    }
    if (opt->resume) {
        char skipped[1024];
        int64_t step;
        int rc = manifest_latest_complete(cfg->output.dir, dir, dirlen, &step, skipped,
                                          sizeof skipped, err, errlen);
        if (rc < 0) return -EXIT_RUNTIME;
        if (skipped[0]) fprintf(stderr, "lorafit: warning: %s\n", skipped);
        if (rc == 0)
            fprintf(stderr, "lorafit: no complete checkpoint in %s; starting from scratch\n",
                    cfg->output.dir);
        return rc;
    }
    int64_t *steps = NULL;
    int n = 0;
    if (manifest_list_checkpoints(cfg->output.dir, &steps, &n, err, errlen) != 0)
        return -EXIT_RUNTIME;
    free(steps);
    if (n > 0) {
        snprintf(err, errlen,
                 "output.dir: %s already holds checkpoints; add --resume to continue that run, "
                 "or choose another output.dir",
                 cfg->output.dir);
        return -EXIT_USAGE;
    }
    return 0;
}

static int resume_from(Trainer *t, const char *dir, char *err, size_t errlen) {
    char *saved = NULL, *now = config_result_keys(t->cfg);
    if (checkpoint_read_config_keys(dir, &saved, err, errlen) != 0 || !now) {
        free(saved);
        free(now);
        return EXIT_RUNTIME;
    }
    char diff[1024];
    int ndiff = config_diff_result_keys(saved, now, diff, sizeof diff);
    free(saved);
    free(now);
    if (ndiff != 0) {
        snprintf(err, errlen,
                 "cannot resume from %s: the config differs in %s (only train.max_steps and "
                 "keys that do not change the result may differ); restore them or start a new "
                 "output.dir",
                 dir, diff);
        return EXIT_USAGE;
    }
    TrainState s;
    if (checkpoint_load(dir, t->lora, t->m, t->v, &s, err, errlen) != 0) return EXIT_RUNTIME;
    if (s.threads != tensor_threads())
        fprintf(stderr,
                "lorafit: warning: the checkpoint was written with %d threads and this run uses "
                "%d; results will not be bit-identical to an uninterrupted run\n",
                s.threads, tensor_threads());
    if (data_cursor_restore(t->data, s.cursor, s.cursor_size, err, errlen) != 0) {
        train_state_free(&s);
        return EXIT_RUNTIME;
    }
    t->st = s;
    t->cursor_cap = s.cursor_size;
    t->st.threads = tensor_threads();
    fprintf(stderr, "lorafit: resuming from %s (step %" PRId64 ")\n", dir, s.step);
    return EXIT_OK;
}

static int setup(Trainer *t, const TrainOptions *opt, char *err, size_t errlen) {
    const Config *c = t->cfg;
    if (train_check_paths(c, err, errlen) != 0) return EXIT_USAGE;
    if (fsio_mkdirs(c->output.dir, err, errlen) != 0) return EXIT_RUNTIME;
    int locked = fsio_lock_dir(c->output.dir, &t->lock_fd, err, errlen);
    if (locked != 0) return locked > 0 ? EXIT_USAGE : EXIT_RUNTIME;
    char resume_dir[4096] = "";
    int found = find_resume_point(c, opt, resume_dir, sizeof resume_dir, err, errlen);
    if (found < 0) return -found;
    tensor_set_threads((int)c->train.threads);
    t->model = model_load_dtype(
        c->model.path, c->model.dtype == CONFIG_DTYPE_BF16 ? MODEL_BF16 : MODEL_F32, err, errlen);
    if (!t->model) return EXIT_RUNTIME;
    const ModelConfig *mc = model_config(t->model);
    if (c->data.seq_len > model_max_positions(t->model)) {
        snprintf(err, errlen, "data.seq_len: %" PRId64 " exceeds the model's %d positions",
                 c->data.seq_len, model_max_positions(t->model));
        return EXIT_USAGE;
    }
    LoraSpec spec;
    if (train_lora_spec(c, &spec, err, errlen) != 0) return EXIT_USAGE;
    t->lora = lora_create(t->model, &spec, err, errlen);
    if (!t->lora) return EXIT_USAGE;
    size_t n;
    lora_params(t->lora, &n);
    t->m = calloc(n ? n : 1, sizeof(float));
    t->v = calloc(n ? n : 1, sizeof(float));
    t->graph = graph_create();
    if (!t->m || !t->v || !t->graph) {
        snprintf(err, errlen, "out of memory for %zu LoRA parameters", n);
        return EXIT_RUNTIME;
    }
    DataOptions o;
    train_data_options(c, true, mc->vocab_size, &o);
    t->data = data_open(&o, err, errlen);
    if (!t->data) return EXIT_RUNTIME;
    t->total_steps = c->train.max_steps;
    if (c->train.epochs > 0) {
        int64_t batches = data_count_batches(&o, err, errlen);
        if (batches < 0) return EXIT_RUNTIME;
        t->total_steps = (batches + c->train.grad_accum - 1) / c->train.grad_accum;
    }
    t->schedule = (LrSchedule){c->train.lr_scheduler, c->train.lr, c->train.warmup_steps,
                               t->total_steps > 0 ? t->total_steps : 1, c->train.min_lr_ratio};
    t->st.best_eval_loss = INFINITY;
    t->st.threads = tensor_threads();
    t->st.config_keys = config_result_keys(c);
    if (found == 1) {
        free(t->st.config_keys);
        t->st.config_keys = NULL;
        int rc = resume_from(t, resume_dir, err, errlen);
        if (rc != EXIT_OK) return rc;
    } else if (c->lora.init_from) {
        if (lora_load_peft(t->lora, c->lora.init_from, err, errlen) != 0) return EXIT_USAGE;
    } else {
        lora_init_fresh(t->lora, (uint64_t)c->train.seed);
    }
    t->first_step = t->st.step;
    t->first_tokens = t->st.tokens;
    t->last_saved_step = found == 1 ? t->st.step : -1;
    t->elapsed_base = t->st.elapsed_s;
    base_model_name(c->model.path, t->base_name, sizeof t->base_name);
    char path[4200];
    snprintf(path, sizeof path, "%s/config.resolved.yaml", c->output.dir);
    if (config_write_resolved(c, path, err, errlen) != 0) return EXIT_RUNTIME;
    return train_log_open(t, found == 1, err, errlen) != 0 ? EXIT_RUNTIME : EXIT_OK;
}

static void teardown(Trainer *t) {
    if (t->metrics) fclose(t->metrics);
    data_close(t->data);
    graph_destroy(t->graph);
    lora_free(t->lora);
    model_free(t->model);
    free(t->m);
    free(t->v);
    free(t->mb);
    free(t->mb_store);
    train_state_free(&t->st);
    if (t->lock_fd >= 0) close(t->lock_fd);
}

int train_run(const Config *cfg, const TrainOptions *opt, char *err, size_t errlen) {
    Trainer t;
    memset(&t, 0, sizeof t);
    t.cfg = cfg;
    t.lock_fd = -1;
    t.run_start = train_now();
    t.tty = isatty(STDERR_FILENO);
    int rc = setup(&t, opt, err, errlen);
    if (rc == EXIT_OK && t.st.step >= t.total_steps) {
        fprintf(stderr, "lorafit: this run already reached its %" PRId64 " steps; nothing to do\n",
                t.total_steps);
        char adapter[4200];
        snprintf(adapter, sizeof adapter, "%s/adapter", cfg->output.dir);
        if (access(adapter, F_OK) != 0 && train_export_adapter(&t, err, errlen) != 0)
            rc = EXIT_RUNTIME;
        teardown(&t);
        return rc;
    }
    if (rc == EXIT_OK) {
        rc = train_loop(&t, err, errlen);
        if (rc == EXIT_OK) train_summary(&t);
    }
    teardown(&t);
    return rc;
}
