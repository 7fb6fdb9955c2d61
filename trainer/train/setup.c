/* trainer/train/setup.c — from a Config to a running Trainer: model, LoRA, data, the lock
 * on the output directory, resume; then the loop (loop.c) and the teardown.
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

#include "trainer/store/store.h"
#include "trainer/train/internal.h"

/* ---- setup ------------------------------------------------------------------------ */

static void base_model_name(const char *path, char *out, size_t len) {
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    size_t start = n;
    while (start > 0 && path[start - 1] != '/') start--;
    snprintf(out, len, "%.*s", (int)(n - start), path + start);
}

/* Which checkpoint to resume from: dir is filled, or left "" for a fresh start. */
static TrainResult find_resume_point(const Config *cfg, const TrainOptions *opt, char *dir,
                                     size_t dirlen, char *err, size_t errlen) {
    dir[0] = '\0';
    if (opt->resume && opt->resume_dir) {
        if (manifest_verify(opt->resume_dir, err, errlen) != 0) return TRAIN_FAILED;
        snprintf(dir, dirlen, "%s", opt->resume_dir);
        return TRAIN_DONE;
    }
    if (opt->resume) {
        char skipped[1024];
        int64_t step;
        int rc = manifest_latest_complete(cfg->output.dir, dir, dirlen, &step, skipped,
                                          sizeof skipped, err, errlen);
        if (rc < 0) return TRAIN_FAILED;
        if (skipped[0]) fprintf(stderr, "lorafit: warning: %s\n", skipped);
        if (rc == 0) {
            dir[0] = '\0';
            fprintf(stderr, "lorafit: no complete checkpoint in %s; starting from scratch\n",
                    cfg->output.dir);
        }
        return TRAIN_DONE;
    }
    int64_t *steps = NULL;
    int n = 0;
    if (manifest_list_checkpoints(cfg->output.dir, &steps, &n, err, errlen) != 0)
        return TRAIN_FAILED;
    free(steps);
    if (n > 0) {
        snprintf(err, errlen,
                 "output.dir: %s already holds checkpoints; add --resume to continue that run, "
                 "or choose another output.dir",
                 cfg->output.dir);
        return TRAIN_REFUSED;
    }
    return TRAIN_DONE;
}

/* The run's fingerprint: config_result_keys, and a GGUF base's identity (the file at
 * model.path may be replaced by another under the same name). NULL when out of memory. */
static char *run_result_keys(const Trainer *t) {
    char *keys = config_result_keys(t->cfg);
    const char *id = model_base_identity(t->model);
    if (!keys || !id[0]) return keys;
    size_t n = strlen(keys), len = n + strlen(id) + 32;
    char *all = realloc(keys, len);
    if (!all) {
        free(keys);
        return NULL;
    }
    snprintf(all + n, len - n, "model.base_file=%s\n", id);
    return all;
}

static TrainResult resume_from(Trainer *t, const char *dir, char *err, size_t errlen) {
    char *saved = NULL, *now = run_result_keys(t);
    if (checkpoint_read_config_keys(dir, &saved, err, errlen) != 0 || !now) {
        free(saved);
        free(now);
        return TRAIN_FAILED;
    }
    char diff[1024], then[128] = "none (a Hugging Face directory)";
    int ndiff = config_diff_result_keys(saved, now, diff, sizeof diff);
    size_t len = 0;
    const char *was = config_result_value(saved, "model.base_file", &len);
    if (was) snprintf(then, sizeof then, "%.*s", (int)(len < 100 ? len : 100), was);
    free(saved);
    free(now);
    if (ndiff != 0 && strstr(diff, "model.base_file")) {
        const char *id = model_base_identity(t->model);
        snprintf(err, errlen,
                 "cannot resume from %s: model.path %s is not the base file the run was trained "
                 "on (then: %s; now: %s); point model.path at that file or start a new "
                 "output.dir",
                 dir, t->cfg->model.path, then, id[0] ? id : "a Hugging Face directory");
        return TRAIN_REFUSED;
    }
    if (ndiff != 0) {
        snprintf(err, errlen,
                 "cannot resume from %s: the config differs in %s (only train.max_steps and "
                 "keys that do not change the result may differ); restore them or start a new "
                 "output.dir",
                 dir, diff);
        return TRAIN_REFUSED;
    }
    TrainState s;
    if (checkpoint_load(dir, t->lora, t->m, t->v, &s, err, errlen) != 0) return TRAIN_FAILED;
    if (s.ranks != t->ranks) {
        char how[64];
        if (s.ranks == 1)
            snprintf(how, sizeof how, "without mpirun");
        else
            snprintf(how, sizeof how, "with mpirun -np %d", s.ranks);
        snprintf(err, errlen,
                 "cannot resume from %s: it was trained on %d rank%s and this run has %d; resume "
                 "it %s (the rank count decides the rows of each step and their order)",
                 dir, s.ranks, s.ranks == 1 ? "" : "s", t->ranks, how);
        train_state_free(&s);
        return TRAIN_REFUSED;
    }
    if (s.threads != tensor_threads())
        fprintf(stderr,
                "lorafit: warning: the checkpoint was written with %d threads and this run uses "
                "%d; results will not be bit-identical to an uninterrupted run\n",
                s.threads, tensor_threads());
    if (data_cursor_restore(t->data, s.cursor, s.cursor_size, err, errlen) != 0) {
        train_state_free(&s);
        return TRAIN_FAILED;
    }
    t->st = s;
    t->cursor_cap = s.cursor_size;
    t->st.threads = tensor_threads();
    snprintf(t->last_checkpoint, sizeof t->last_checkpoint, "%s", dir);
    fprintf(stderr, "lorafit: resuming from %s (step %" PRId64 ")\n", dir, s.step);
    return TRAIN_DONE;
}

/* The precision this run uses, into t->resolved (which t->cfg then points at, so the
 * fingerprint and config.resolved.yaml hold the resolved value). A resume with auto keeps
 * the precision the run started with; bf16 on a CPU without native bf16 then stops with
 * what to do, since an emulated resume would not give the uninterrupted run's bits. */
static TrainResult choose_precision(Trainer *t, const char *resume_dir, char *err, size_t errlen) {
    t->resolved = *t->cfg;
    ConfigPrecision asked = t->cfg->train.precision;
    if (resume_dir[0] && asked == CONFIG_PRECISION_AUTO) {
        char *saved = NULL;
        if (checkpoint_read_config_keys(resume_dir, &saved, err, errlen) != 0) return TRAIN_FAILED;
        size_t len = 0;
        const char *v = config_result_value(saved, "train.precision", &len);
        bool bf16 = v && len == 4 && !strncmp(v, "bf16", 4);
        free(saved);
        asked = bf16 ? CONFIG_PRECISION_BF16 : CONFIG_PRECISION_F32;
        if (bf16 && !tensor_cpu_has_native_bf16()) {
            snprintf(err, errlen,
                     "%s was trained in bf16 and this CPU has no native bf16 matrix instructions "
                     "(AMX-BF16 or AVX512-BF16): resume it on such a machine, or set "
                     "train.precision: bf16 to resume emulated (slower, and not bit-identical to "
                     "an uninterrupted run)",
                     resume_dir);
            return TRAIN_REFUSED;
        }
    }
    char note[512];
    t->resolved.train.precision = train_resolve_precision(asked, note, sizeof note);
    fprintf(stderr, "lorafit: %s\n", note);
    t->cfg = &t->resolved;
    return TRAIN_DONE;
}

/* Rank 0's claim on the output directory: the lock, the checkpoint to resume from (into
 * resume_dir, "" for a fresh start) and the precision. */
static TrainResult claim_output(Trainer *t, const TrainOptions *opt, char *resume_dir,
                                size_t dirlen, char *err, size_t errlen) {
    const Config *c = t->cfg;
    if (fsio_mkdirs(c->output.dir, err, errlen) != 0) return TRAIN_FAILED;
    int locked = fsio_lock_dir(c->output.dir, &t->lock_fd, err, errlen);
    if (locked != 0) return locked > 0 ? TRAIN_REFUSED : TRAIN_FAILED;
    TrainResult rc = find_resume_point(c, opt, resume_dir, dirlen, err, errlen);
    if (rc != TRAIN_DONE) return rc;
    return choose_precision(t, resume_dir, err, errlen);
}

/* lora.target_modules not given: the model family's default (lora_default_targets); all-linear
 * (every module name): the modules the family has. Written into the run's config so that
 * config.resolved.yaml and the resume fingerprint name the modules trained. */
static TrainResult resolve_targets(Trainer *t, char *err, size_t errlen) {
    LoraSpec given;
    if (train_lora_spec(t->cfg, &given, err, errlen) != 0 ||
        lora_check_targets(model_config(t->model), given.targets, err, errlen) != 0)
        return TRAIN_REFUSED;
    if (t->cfg->lora.target_modules.n > 0 && given.targets != LORA_ALL) return TRAIN_DONE;
    if (t->cfg != &t->resolved) {
        t->resolved = *t->cfg;
        t->cfg = &t->resolved;
    }
    const ModelConfig *mc = model_config(t->model);
    unsigned mask = given.targets == LORA_ALL ? model_modules(mc) : lora_default_targets(mc);
    int n = 0;
    for (int m = 0; m < MODULE_COUNT; m++) {
        if (!(mask & (1u << m))) continue;
        if (!(t->default_targets[n++] = strdup(model_module_name((ModelModule)m)))) {
            snprintf(err, errlen, "out of memory");
            return TRAIN_FAILED;
        }
    }
    t->resolved.lora.target_modules = (ConfigList){t->default_targets, n};
    return TRAIN_DONE;
}

/* What every rank builds for itself: the model, the LoRA, the optimizer moments, the graph,
 * the tokenizer and the training data reader (batches of batch_size x ranks rows). */
static TrainResult build_run(Trainer *t, char *err, size_t errlen) {
    const Config *c = t->cfg;
    t->preference = c->train.objective != OBJECTIVE_SFT;
    tensor_set_threads((int)c->train.threads);
    t->model = train_load_model(c, err, errlen);
    if (!t->model) return TRAIN_FAILED;
    char note[512];
    model_quant_note(t->model, note, sizeof note);
    if (note[0]) fprintf(stderr, "lorafit: %s\n", note);
    const ModelConfig *mc = model_config(t->model);
    if (train_check_seq_len(c, t->model, err, errlen) != 0) return TRAIN_REFUSED;
    TrainResult targets = resolve_targets(t, err, errlen);
    if (targets != TRAIN_DONE) return targets;
    c = t->cfg;
    LoraSpec spec;
    if (train_lora_spec(c, &spec, err, errlen) != 0) return TRAIN_REFUSED;
    t->lora = lora_create(t->model, &spec, err, errlen);
    if (!t->lora) return TRAIN_REFUSED;
    size_t n;
    lora_params(t->lora, &n);
    t->m = calloc(n ? n : 1, sizeof(float));
    t->v = calloc(n ? n : 1, sizeof(float));
    t->graph = graph_create();
    if (t->graph &&
        graph_set_precision(t->graph, train_tensor_precision(c->train.precision)) != 0) {
        graph_destroy(t->graph);
        t->graph = NULL;
    }
    if (!t->m || !t->v || !t->graph) {
        snprintf(err, errlen, "out of memory for %zu LoRA parameters", n);
        return TRAIN_FAILED;
    }
    if (graph_lora_uses_room(t->graph) && model_make_lora_room(t->model, t->lora, err, errlen) != 0)
        return TRAIN_FAILED;
    int text_rc = train_text_load(c, &t->text, err, errlen);
    if (text_rc != 0) return text_rc == -2 ? TRAIN_REFUSED : TRAIN_FAILED;
    DataOptions *o = &t->data_options;
    train_data_options(c, TRAIN_DATA_TRAIN, mc->vocab_size, o);
    o->batch_size *= t->ranks;
    train_text_attach(&t->text, o);
    t->data = data_open(o, err, errlen);
    if (!t->data) return TRAIN_FAILED;
    t->total_steps = c->train.max_steps;
    if (c->train.epochs > 0) {
        int64_t batches = data_count_batches(o, err, errlen);
        if (batches < 0) return TRAIN_FAILED;
        t->total_steps = (batches + c->train.grad_accum - 1) / c->train.grad_accum;
    }
    t->schedule = (LrSchedule){c->train.lr_scheduler, c->train.lr, c->train.warmup_steps,
                               t->total_steps > 0 ? t->total_steps : 1, c->train.min_lr_ratio};
    t->st.best_eval_loss = INFINITY;
    t->st.threads = tensor_threads();
    t->st.ranks = t->ranks;
    t->st.config_keys = run_result_keys(t);
    return TRAIN_DONE;
}

/* The run's chat template as OUTPUT_DIR/CHAT_TEMPLATE_FILE (text NULL: none, and one left
 * there by an earlier run removed). */
static int keep_chat_template(const char *output_dir, const char *text, char *err, size_t errlen) {
    char path[4200];
    if (path_join(path, sizeof path, output_dir, CHAT_TEMPLATE_FILE, err, errlen) != 0) return -1;
    if (text) return fsio_write_file(path, text, strlen(text), err, errlen);
    if (unlink(path) != 0 && errno != ENOENT)
        return store_error(err, errlen, errno, "%s: cannot remove", path);
    return 0;
}

/* Rank 0's start of the run: the LoRA resumed, loaded from lora.init_from or fresh, and the
 * files of the output directory opened. */
static TrainResult start_state(Trainer *t, const char *resume_dir, char *err, size_t errlen) {
    const Config *c = t->cfg;
    bool resuming = resume_dir[0] != '\0';
    if (resuming) {
        free(t->st.config_keys);
        t->st.config_keys = NULL;
        TrainResult rc = resume_from(t, resume_dir, err, errlen);
        if (rc != TRAIN_DONE) return rc;
    } else if (c->lora.init_from) {
        if (lora_load_peft(t->lora, c->lora.init_from, err, errlen) != 0) return TRAIN_REFUSED;
    } else {
        lora_init_fresh(t->lora, (uint64_t)c->train.seed);
    }
    t->first_step = t->st.step;
    t->first_tokens = t->st.tokens;
    t->last_saved_step = resuming ? t->st.step : -1;
    t->elapsed_base = t->st.elapsed_s;
    base_model_name(c->model.path, t->base_name, sizeof t->base_name);
    char path[4200];
    if (path_join(path, sizeof path, c->output.dir, "config.resolved.yaml", err, errlen) != 0 ||
        config_write_resolved(c, path, err, errlen) != 0 ||
        keep_chat_template(c->output.dir, t->text.chat_template_text, err, errlen) != 0)
        return TRAIN_FAILED;
    if (t->ranks > 1)
        fprintf(stderr,
                "lorafit: %d ranks, train.batch_size %" PRId64 " each: %" PRId64
                " sequences per micro-batch\n",
                t->ranks, c->train.batch_size, c->train.batch_size * t->ranks);
    return train_log_open(t, resuming, err, errlen) != 0 ? TRAIN_FAILED : TRAIN_DONE;
}

/* Each step ends in a vote of the ranks (data_parallel.c), so a failure here is carried to
 * the next agreement instead of returned at once: a rank that left early would hang the
 * others. With one rank every agreement returns its input, and the order is the old one. */
static TrainResult setup(Trainer *t, const TrainOptions *opt, char *err, size_t errlen) {
    char resume_dir[4096] = "";
    TrainResult rc = train_check_paths(t->cfg, err, errlen) != 0 ? TRAIN_REFUSED : TRAIN_DONE;
    if (rc == TRAIN_DONE && t->rank == 0)
        rc = claim_output(t, opt, resume_dir, sizeof resume_dir, err, errlen);
    if ((rc = train_agree_plan(t, rc, err, errlen)) != TRAIN_DONE) return rc;
    rc = build_run(t, err, errlen);
    if (rc == TRAIN_DONE && t->rank == 0) rc = start_state(t, resume_dir, err, errlen);
    return train_share_state(t, rc, err, errlen);
}

static void teardown(Trainer *t) {
    if (t->metrics) fclose(t->metrics);
    data_close(t->data);
    train_text_free(&t->text);
    graph_destroy(t->graph);
    lora_free(t->lora);
    model_free(t->model);
    for (int m = 0; m < MODULE_COUNT; m++) free(t->default_targets[m]);
    free(t->m);
    free(t->v);
    free(t->mb);
    free(t->mb_store);
    free(t->mb_keys);
    free(t->mb_share);
    free(t->sum_scratch);
    train_state_free(&t->st);
    if (t->lock_fd >= 0) close(t->lock_fd);
}

/* A resume of a run that already reached its steps: the final adapter, if it is missing. */
static TrainResult finish_early(Trainer *t, char *err, size_t errlen) {
    fprintf(stderr, "lorafit: this run already reached its %" PRId64 " steps; nothing to do\n",
            t->total_steps);
    char adapter[4200];
    if (path_join(adapter, sizeof adapter, t->cfg->output.dir, "adapter", err, errlen) != 0 ||
        (access(adapter, F_OK) != 0 &&
         checkpoint_write_adapter(t->cfg->output.dir, t->lora, t->base_name, err, errlen) != 0))
        return TRAIN_FAILED;
    return TRAIN_DONE;
}

TrainResult train_run(const Config *cfg, const TrainOptions *opt, char *err, size_t errlen) {
    Trainer t;
    memset(&t, 0, sizeof t);
    t.cfg = cfg;
    t.lock_fd = -1;
    t.run_start = train_now();
    t.rank = ranks_rank();
    t.ranks = ranks_size();
    t.tty = t.rank == 0 && isatty(STDERR_FILENO);
    TrainResult rc = setup(&t, opt, err, errlen);
    if (rc == TRAIN_DONE && t.st.step >= t.total_steps) {
        if (t.rank == 0) rc = finish_early(&t, err, errlen);
        rc = train_agree_status(rc, err, errlen);
        teardown(&t);
        return rc;
    }
    if (rc == TRAIN_DONE) {
        rc = train_loop(&t, err, errlen);
        if (rc == TRAIN_DONE && t.rank == 0) train_summary(&t);
    }
    teardown(&t);
    return rc;
}
