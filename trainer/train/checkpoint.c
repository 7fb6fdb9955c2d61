/* trainer/train/checkpoint.c — save, load and prune checkpoint directories; see checkpoint.h.
 *
 * Why the state lives in a safetensors file: the moments are large float tensors that
 * safetensors stores exactly, and its string metadata carries the small scalars. Numbers are
 * written with %.17g, which round-trips every double, so a resumed run is bit-identical. */
#include "trainer/train/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "trainer/store/store.h"
#include "trainer/train/train.h"

#define STATE_FILE   "trainer_state.safetensors"
#define ADAPTER_FILE "adapter_model.safetensors"
#define CONFIG_FILE  "adapter_config.json"

void train_state_free(TrainState *s) {
    free(s->config_keys);
    free(s->cursor);
    s->config_keys = NULL;
    s->cursor = NULL;
    s->cursor_size = 0;
}

/* ---- atomic directories ----------------------------------------------------------- */

/* fsio_rename_dir fails after the rename itself took effect when the parent's fsync fails;
 * tell the two cases apart by looking. */
static int renamed_anyway(const char *from, const char *to) {
    return access(from, F_OK) != 0 && access(to, F_OK) == 0;
}

int checkpoint_write_dir(const char *dir,
                         int (*fill)(const char *tmp_dir, void *ctx, char *err, size_t errlen),
                         void *ctx, char *err, size_t errlen) {
    char tmp[4096], old[4096];
    long pid = (long)getpid();
    snprintf(tmp, sizeof tmp, "%s.tmp-%ld", dir, pid);
    snprintf(old, sizeof old, "%s.old-%ld", dir, pid);
    char ignore[256];
    fsio_remove_tree(tmp, ignore, sizeof ignore);
    if (fsio_mkdirs(tmp, err, errlen) != 0) return -1;
    if (fill(tmp, ctx, err, errlen) != 0) {
        fsio_remove_tree(tmp, ignore, sizeof ignore);
        return -1;
    }
    int had_old = access(dir, F_OK) == 0;
    if (had_old && fsio_rename_dir(dir, old, err, errlen) != 0) {
        /* The rename may have happened with only the parent's fsync failing: move it back,
         * or the previous checkpoint would sit under a name that prune deletes. */
        if (renamed_anyway(dir, old)) fsio_rename_dir(old, dir, ignore, sizeof ignore);
        fsio_remove_tree(tmp, ignore, sizeof ignore);
        return -1;
    }
    if (fsio_rename_dir(tmp, dir, err, errlen) != 0) {
        if (renamed_anyway(tmp, dir)) {
            /* The complete new directory is in place, only not yet durable: keep it (it
             * verifies), drop the old one, and still report the failure. */
            if (had_old) fsio_remove_tree(old, ignore, sizeof ignore);
            return -1;
        }
        /* Put the previous directory back so nothing is lost. */
        if (had_old) fsio_rename_dir(old, dir, ignore, sizeof ignore);
        fsio_remove_tree(tmp, ignore, sizeof ignore);
        return -1;
    }
    if (had_old) fsio_remove_tree(old, ignore, sizeof ignore);
    return 0;
}

/* ---- save ------------------------------------------------------------------------- */

typedef struct SaveCtx {
    const Lora *lora;
    const float *m, *v;
    const TrainState *state;
    const char *base_model_name;
} SaveCtx;

static int add_meta_i64(StWriter *w, const char *key, int64_t value, char *err, size_t errlen) {
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRId64, value);
    return st_writer_set_metadata(w, key, buf, err, errlen);
}

static int add_meta_f64(StWriter *w, const char *key, double value, char *err, size_t errlen) {
    char buf[40];
    if (isinf(value))
        snprintf(buf, sizeof buf, "inf");
    else
        snprintf(buf, sizeof buf, "%.17g", value);
    return st_writer_set_metadata(w, key, buf, err, errlen);
}

static int write_state_file(const char *path, const SaveCtx *c, char *err, size_t errlen) {
    StWriter *w = st_writer_new();
    if (!w) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    int n = lora_count(c->lora), rc = 0;
    char(*names)[320] = calloc((size_t)n * 2, sizeof *names);
    if (!names) rc = -1, snprintf(err, errlen, "%s: out of memory", path);
    size_t off = 0;
    for (int i = 0; rc == 0 && i < n; i++) {
        const char *peft;
        Tensor *t = lora_tensor(c->lora, i, &peft);
        snprintf(names[2 * i], sizeof names[0], "exp_avg.%s", peft);
        snprintf(names[2 * i + 1], sizeof names[0], "exp_avg_sq.%s", peft);
        rc = st_writer_add(w, names[2 * i], ST_F32, t->ndim, t->shape, c->m + off, err, errlen);
        if (rc == 0)
            rc = st_writer_add(w, names[2 * i + 1], ST_F32, t->ndim, t->shape, c->v + off, err,
                               errlen);
        off += (size_t)t->size;
    }
    const TrainState *s = c->state;
    int64_t cursor_shape[1] = {(int64_t)s->cursor_size};
    static const uint8_t empty[1];
    if (rc == 0)
        rc = st_writer_add(w, "data_cursor", ST_U8, 1, cursor_shape, s->cursor ? s->cursor : empty,
                           err, errlen);
    if (rc == 0)
        rc = st_writer_set_metadata(w, "lorafit_state", CHECKPOINT_FORMAT_VERSION, err, errlen);
    if (rc == 0) rc = add_meta_i64(w, "step", s->step, err, errlen);
    if (rc == 0) rc = add_meta_i64(w, "tokens", s->tokens, err, errlen);
    if (rc == 0) rc = add_meta_f64(w, "elapsed_s", s->elapsed_s, err, errlen);
    if (rc == 0) rc = add_meta_f64(w, "log_loss_sum", s->log_loss_sum, err, errlen);
    if (rc == 0) rc = add_meta_i64(w, "log_steps", s->log_steps, err, errlen);
    if (rc == 0) rc = add_meta_i64(w, "log_tokens", s->log_tokens, err, errlen);
    if (rc == 0) rc = add_meta_f64(w, "best_eval_loss", s->best_eval_loss, err, errlen);
    if (rc == 0) rc = add_meta_i64(w, "threads", s->threads, err, errlen);
    if (s->nonfinite_skipped > 0) { /* a run that never skipped keeps its old bytes */
        if (rc == 0) rc = add_meta_i64(w, "nonfinite_skipped", s->nonfinite_skipped, err, errlen);
        if (rc == 0) rc = add_meta_i64(w, "nonfinite_streak", s->nonfinite_streak, err, errlen);
        if (rc == 0) rc = add_meta_i64(w, "log_skipped", s->log_skipped, err, errlen);
    }
    if (rc == 0 && s->log_pref_n > 0) { /* preference metrics pending for the next line */
        char text[9 * 26 + 32];
        int k = snprintf(text, sizeof text, "%" PRId64, s->log_pref_n);
        for (int i = 0; i < 9; i++)
            k += snprintf(text + k, sizeof text - (size_t)k, " %.17g", s->log_pref[i]);
        rc = st_writer_set_metadata(w, "log_preference", text, err, errlen);
    }
    /* Only a job of several ranks records them: a 1-process checkpoint keeps its old bytes. */
    if (rc == 0 && s->ranks > 1) rc = add_meta_i64(w, "ranks", s->ranks, err, errlen);
    if (rc == 0)
        rc = st_writer_set_metadata(w, "config", s->config_keys ? s->config_keys : "", err, errlen);
    if (rc == 0) rc = st_writer_save(w, path, err, errlen);
    st_writer_free(w);
    free(names);
    return rc;
}

static int fill_checkpoint(const char *tmp, void *ctx, char *err, size_t errlen) {
    const SaveCtx *c = ctx;
    if (lora_save_peft(c->lora, tmp, c->base_model_name, LORA_F32, err, errlen) != 0) return -1;
    char path[4200];
    if (path_join(path, sizeof path, tmp, STATE_FILE, err, errlen) != 0 ||
        write_state_file(path, c, err, errlen) != 0)
        return -1;
    const char *files[] = {ADAPTER_FILE, CONFIG_FILE, STATE_FILE};
    return manifest_write(tmp, files, 3, err, errlen);
}

int checkpoint_save(const char *out_dir, const Lora *lora, const float *m, const float *v,
                    const TrainState *state, const char *base_model_name, char *err,
                    size_t errlen) {
    char dir[4096];
    char name[64];
    snprintf(name, sizeof name, "checkpoint-%" PRId64, state->step);
    if (path_join(dir, sizeof dir, out_dir, name, err, errlen) != 0) return -1;
    SaveCtx c = {lora, m, v, state, base_model_name};
    return checkpoint_write_dir(dir, fill_checkpoint, &c, err, errlen);
}

/* ---- load ------------------------------------------------------------------------- */

static int meta_i64(const SafeTensors *st, const char *key, int64_t *out, char *err,
                    size_t errlen) {
    const char *s = st_metadata(st, key);
    char *end;
    errno = 0;
    long long v = s ? strtoll(s, &end, 10) : 0;
    if (!s || end == s || *end || errno) {
        snprintf(err, errlen, "%s: metadata '%s' is missing or not an integer", st_path(st), key);
        return -1;
    }
    *out = v;
    return 0;
}

static int meta_f64(const SafeTensors *st, const char *key, double *out, char *err, size_t errlen) {
    const char *s = st_metadata(st, key);
    char *end;
    double v = s ? strtod(s, &end) : 0;
    if (!s || end == s || *end || isnan(v)) {
        snprintf(err, errlen, "%s: metadata '%s' is missing or not a number", st_path(st), key);
        return -1;
    }
    *out = v;
    return 0;
}

static int load_moment(const SafeTensors *st, const char *prefix, const char *peft, const Tensor *t,
                       float *dst, char *err, size_t errlen) {
    char name[400];
    snprintf(name, sizeof name, "%s.%s", prefix, peft);
    const StTensor *s = st_find(st, name);
    if (!s) {
        snprintf(err, errlen, "%s: tensor '%s' is missing", st_path(st), name);
        return -1;
    }
    int same = s->dtype == ST_F32 && s->ndim == t->ndim;
    for (int d = 0; same && d < t->ndim; d++) same = s->shape[d] == t->shape[d];
    if (!same) {
        snprintf(err, errlen,
                 "%s: tensor '%s' does not match the adapter's shape (the checkpoint belongs to "
                 "another LoRA configuration)",
                 st_path(st), name);
        return -1;
    }
    memcpy(dst, s->data, s->nbytes);
    return 0;
}

/* The counters of skipped steps (absent before the first skip): each within what the step
 * counts allow, so a forged file cannot make a resumed run log nonsense. */
static int read_skips(const SafeTensors *st, TrainState *s, char *err, size_t errlen) {
    s->nonfinite_skipped = s->nonfinite_streak = s->log_skipped = 0;
    if (!st_metadata(st, "nonfinite_skipped")) return 0;
    if (meta_i64(st, "nonfinite_skipped", &s->nonfinite_skipped, err, errlen) ||
        meta_i64(st, "nonfinite_streak", &s->nonfinite_streak, err, errlen) ||
        meta_i64(st, "log_skipped", &s->log_skipped, err, errlen))
        return -1;
    const char *bad =
        s->nonfinite_skipped < 0 || s->nonfinite_skipped > s->step ? "nonfinite_skipped"
        : s->nonfinite_streak < 0 || s->nonfinite_streak > s->nonfinite_skipped ? "nonfinite_streak"
        : s->log_skipped < 0 || s->log_skipped > s->log_steps                   ? "log_skipped"
                                                                                : NULL;
    if (bad) {
        snprintf(err, errlen, "%s: metadata '%s' is out of range for step %" PRId64, st_path(st),
                 bad, s->step);
        return -1;
    }
    return 0;
}

static int read_state(const SafeTensors *st, const Lora *lora, float *m, float *v, TrainState *s,
                      char *err, size_t errlen) {
    const char *version = st_metadata(st, "lorafit_state");
    if (!version || strcmp(version, CHECKPOINT_FORMAT_VERSION) != 0) {
        snprintf(err, errlen, "%s: not a lorafit trainer state of format version %s", st_path(st),
                 CHECKPOINT_FORMAT_VERSION);
        return -1;
    }
    int64_t threads = 0, ranks = 1;
    if (meta_i64(st, "step", &s->step, err, errlen) ||
        meta_i64(st, "tokens", &s->tokens, err, errlen) ||
        meta_f64(st, "elapsed_s", &s->elapsed_s, err, errlen) ||
        meta_f64(st, "log_loss_sum", &s->log_loss_sum, err, errlen) ||
        meta_i64(st, "log_steps", &s->log_steps, err, errlen) ||
        meta_i64(st, "log_tokens", &s->log_tokens, err, errlen) ||
        meta_f64(st, "best_eval_loss", &s->best_eval_loss, err, errlen) ||
        meta_i64(st, "threads", &threads, err, errlen) ||
        (st_metadata(st, "ranks") && meta_i64(st, "ranks", &ranks, err, errlen)))
        return -1;
    if (read_skips(st, s, err, errlen) != 0) return -1;
    const char *pref = st_metadata(st, "log_preference");
    if (pref) {
        char *end;
        s->log_pref_n = strtoll(pref, &end, 10);
        for (int i = 0; i < 9; i++) s->log_pref[i] = strtod(end, &end);
        if (s->log_pref_n < 0 || *end != '\0') {
            snprintf(err, errlen, "%s: metadata 'log_preference' is not a count and 9 numbers",
                     st_path(st));
            return -1;
        }
    }
    if (ranks < 1 || ranks > INT32_MAX) {
        snprintf(err, errlen, "%s: metadata 'ranks' is %" PRId64 ", not a rank count", st_path(st),
                 ranks);
        return -1;
    }
    s->threads = (int)threads;
    s->ranks = (int)ranks;
    const char *keys = st_metadata(st, "config");
    s->config_keys = strdup(keys ? keys : "");
    const StTensor *cur = st_find(st, "data_cursor");
    if (!cur || cur->dtype != ST_U8 || cur->ndim != 1) {
        snprintf(err, errlen, "%s: tensor 'data_cursor' is missing or not U8", st_path(st));
        return -1;
    }
    s->cursor_size = cur->nbytes;
    s->cursor = malloc(cur->nbytes ? cur->nbytes : 1);
    if (!s->config_keys || !s->cursor) {
        snprintf(err, errlen, "%s: out of memory", st_path(st));
        return -1;
    }
    memcpy(s->cursor, cur->data, cur->nbytes);
    size_t off = 0;
    for (int i = 0; i < lora_count(lora); i++) {
        const char *peft;
        Tensor *t = lora_tensor(lora, i, &peft);
        if (load_moment(st, "exp_avg", peft, t, m + off, err, errlen) ||
            load_moment(st, "exp_avg_sq", peft, t, v + off, err, errlen))
            return -1;
        off += (size_t)t->size;
    }
    return 0;
}

int checkpoint_load(const char *dir, Lora *lora, float *m, float *v, TrainState *state, char *err,
                    size_t errlen) {
    memset(state, 0, sizeof *state);
    if (manifest_verify(dir, err, errlen) != 0) return -1;
    if (lora_load_peft(lora, dir, err, errlen) != 0) return -1;
    char path[4200];
    if (path_join(path, sizeof path, dir, STATE_FILE, err, errlen) != 0) return -1;
    SafeTensors *st = st_open(path, err, errlen);
    if (!st) return -1;
    int rc = read_state(st, lora, m, v, state, err, errlen);
    st_close(st);
    if (rc != 0) train_state_free(state);
    return rc;
}

int checkpoint_read_config_keys(const char *dir, char **keys, char *err, size_t errlen) {
    char path[4200];
    if (path_join(path, sizeof path, dir, STATE_FILE, err, errlen) != 0) return -1;
    SafeTensors *st = st_open(path, err, errlen);
    if (!st) return -1;
    const char *k = st_metadata(st, "config");
    *keys = k ? strdup(k) : NULL;
    st_close(st);
    if (!*keys) {
        snprintf(err, errlen, "%s: metadata 'config' is missing", path);
        return -1;
    }
    return 0;
}

/* ---- prune ------------------------------------------------------------------------ */

static int is_leftover(const char *name) {
    int ours = strncmp(name, "checkpoint-", 11) == 0 || strncmp(name, "adapter.", 8) == 0;
    return ours && (strstr(name, ".tmp-") != NULL || strstr(name, ".old-") != NULL);
}

int checkpoint_prune(const char *out_dir, int keep, char *err, size_t errlen) {
    char path[4200];
    DIR *d = opendir(out_dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (!is_leftover(e->d_name)) continue;
            if (path_join(path, sizeof path, out_dir, e->d_name, err, errlen) != 0 ||
                fsio_remove_tree(path, err, errlen) != 0) {
                closedir(d);
                return -1;
            }
        }
        closedir(d);
    }
    int64_t *steps = NULL;
    int n = 0;
    if (manifest_list_checkpoints(out_dir, &steps, &n, err, errlen) != 0) return -1;
    int rc = 0;
    for (int i = 0; rc == 0 && i < n - keep; i++) {
        char name[64];
        snprintf(name, sizeof name, "checkpoint-%" PRId64, steps[i]);
        rc = path_join(path, sizeof path, out_dir, name, err, errlen);
        if (rc == 0) rc = fsio_remove_tree(path, err, errlen);
    }
    free(steps);
    return rc;
}

/* ---- the final adapter (OUTPUT_DIR/adapter) ------------------------------------------- */

typedef struct ExportCtx {
    const Lora *lora;
    const char *base_name;
    const char *output_dir;
} ExportCtx;

/* The PEFT files, then the model card (README.md, loss.png) and the chat template from the
 * run's files. */
static int fill_adapter(const char *tmp, void *ctx, char *err, size_t errlen) {
    const ExportCtx *e = ctx;
    if (lora_save_peft(e->lora, tmp, e->base_name, LORA_F32, err, errlen) != 0 ||
        train_write_model_card(tmp, e->output_dir, INT64_MAX, err, errlen) != 0)
        return -1;
    return train_copy_chat_template(tmp, e->output_dir, err, errlen);
}

int train_copy_chat_template(const char *adapter_dir, const char *run_dir, char *err,
                             size_t errlen) {
    char from[4200], to[4200];
    if (!run_dir) return 0;
    if (path_join(from, sizeof from, run_dir, CHAT_TEMPLATE_FILE, err, errlen) != 0 ||
        path_join(to, sizeof to, adapter_dir, CHAT_TEMPLATE_FILE, err, errlen) != 0)
        return -1;
    size_t len;
    bool failed;
    char *text = store_read_file_if_there(from, (size_t)64 << 20, &len, &failed, err, errlen);
    int rc = failed ? -1 : text ? fsio_write_file(to, text, len, err, errlen) : 0;
    free(text);
    return rc;
}

int checkpoint_write_adapter(const char *output_dir, const Lora *lora, const char *base_name,
                             char *err, size_t errlen) {
    char dir[4096];
    if (path_join(dir, sizeof dir, output_dir, "adapter", err, errlen) != 0) return -1;
    ExportCtx e = {lora, base_name, output_dir};
    return checkpoint_write_dir(dir, fill_adapter, &e, err, errlen);
}
