/* trainer/train/card.c — the model card of an exported adapter (see train.h).
 *
 * Hugging Face reads README.md's YAML front matter (PEFT writes base_model and library_name:
 * peft there); people read the rest. The card says what was trained on what, with which
 * settings, for how long and how well, so an adapter found on disk a month later explains
 * itself. Everything comes from files of the run (config.resolved.yaml, metrics.jsonl) and
 * of the adapter (adapter_config.json), so the final adapter and `lorafit export` write the
 * same card. */
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "trainer/store/store.h"
#include "trainer/train/plot.h"
#include "trainer/train/train.h"

/* A YAML double-quoted scalar: backslash and quote escaped, control characters dropped. */
static void yaml_quoted(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', f);
        if ((unsigned char)*s >= 0x20) fputc(*s, f);
    }
    fputc('"', f);
}

static const char *lr_name(LrKind k) {
    return k == LR_CONSTANT ? "constant" : k == LR_LINEAR ? "linear" : "cosine";
}

/* One line per data file of `which`, with the records it holds now (counted when the card
 * is written, without tokenizing; a file gone since training says so). */
static void write_data_files(FILE *f, const Config *c, TrainData which, const char *label) {
    DataOptions o;
    train_data_options(c, which, 0, &o);
    if (o.n_paths == 0) return;
    DataFileRecords *files;
    int n;
    char err[1024];
    if (data_count_records(&o, &files, &n, err, sizeof err) != 0) {
        for (int i = 0; i < o.n_paths; i++) fprintf(f, "- %s: `%s`\n", label, o.paths[i]);
        fprintf(f, "  (records not counted: %s)\n", err);
        return;
    }
    for (int i = 0; i < n; i++)
        fprintf(f, "- %s: `%s`, %" PRId64 " records\n", label, files[i].path, files[i].records);
    data_file_records_free(files, n);
}

static void write_config_tables(FILE *f, const Config *c) {
    fprintf(f, "## Training data\n\n");
    write_data_files(f, c, TRAIN_DATA_TRAIN, "train");
    write_data_files(f, c, TRAIN_DATA_VALID, "valid");
    fprintf(f, "- sequence length %" PRId64 ", packing %s, overflow %s, shuffle %s\n\n",
            c->data.seq_len, c->data.packing ? "on" : "off",
            c->data.overflow == OVERFLOW_TRUNCATE ? "truncate"
            : c->data.overflow == OVERFLOW_SPLIT  ? "split"
                                                  : "drop",
            c->data.shuffle ? "on" : "off");
    fprintf(f, "## Training settings\n\n| setting | value |\n|---|---|\n");
    fprintf(f, "| model | `%s` (%s in memory) |\n", c->model.path,
            c->model.dtype == CONFIG_DTYPE_BF16 ? "bf16" : "f32");
    if (c->train.objective == OBJECTIVE_DPO)
        fprintf(f, "| objective | DPO (%s loss, beta %g, reference: %s%s) |\n",
                c->dpo.loss_type == DPO_LOSS_IPO     ? "ipo"
                : c->dpo.loss_type == DPO_LOSS_HINGE ? "hinge"
                                                     : "sigmoid",
                c->dpo.beta,
                c->dpo.reference == DPO_REFERENCE_BASE ? "the base model"
                : c->lora.init_from                    ? "the initial adapter, frozen"
                                                       : "the base model",
                c->dpo.precompute_ref_log_probs ? ", precomputed" : "");
    else if (c->train.objective == OBJECTIVE_ORPO)
        fprintf(f, "| objective | ORPO (beta %g) |\n", c->orpo.beta);
    fprintf(f, "| batch size x grad accum | %" PRId64 " x %" PRId64 " |\n", c->train.batch_size,
            c->train.grad_accum);
    if (c->train.epochs)
        fprintf(f, "| epochs | %" PRId64 " |\n", c->train.epochs);
    else
        fprintf(f, "| max steps | %" PRId64 " |\n", c->train.max_steps);
    fprintf(f, "| learning rate | %g, %s, warmup %" PRId64 ", floor %g |\n", c->train.lr,
            lr_name(c->train.lr_scheduler), c->train.warmup_steps, c->train.min_lr_ratio);
    fprintf(f, "| AdamW | betas %g / %g, eps %g, weight decay %g |\n", c->train.adam_beta1,
            c->train.adam_beta2, c->train.adam_eps, c->train.weight_decay);
    fprintf(f, "| gradient clipping | %g |\n| seed | %" PRId64 " |\n\n", c->train.max_grad_norm,
            c->train.seed);
}

static void write_results(FILE *f, const LossPoints *p, bool picture) {
    fprintf(f, "## Results\n\n| | |\n|---|---|\n");
    if (p->n_train) {
        fprintf(f, "| steps | %" PRId64 " |\n",
                p->last_step > 0 ? p->last_step : p->train_step[p->n_train - 1]);
        if (p->last_tokens >= 0)
            fprintf(f, "| target tokens trained on | %" PRId64 " |\n", p->last_tokens);
        fprintf(f, "| final training loss | %.4f |\n", p->train_loss[p->n_train - 1]);
    }
    if (p->last_nonfinite_skipped > 0)
        fprintf(f, "| steps skipped as not finite | %" PRId64 " (train.on_nonfinite: skip) |\n",
                p->last_nonfinite_skipped);
    if (p->n_eval) {
        double best = p->eval_loss[0];
        int64_t best_step = p->eval_step[0];
        for (int i = 1; i < p->n_eval; i++)
            if (p->eval_loss[i] < best) best = p->eval_loss[i], best_step = p->eval_step[i];
        fprintf(f, "| final eval loss | %.4f (step %" PRId64 ") |\n", p->eval_loss[p->n_eval - 1],
                p->eval_step[p->n_eval - 1]);
        fprintf(f, "| best eval loss | %.4f (step %" PRId64 ") |\n", best, best_step);
    }
    fprintf(f, "\n");
    if (picture)
        fprintf(f, "![training and evaluation loss against the step](%s)\n\n", CARD_PICTURE);
}

static void write_usage(FILE *f, const char *base) {
    fprintf(f,
            "## Use it\n\n```python\nfrom transformers import AutoModelForCausalLM\n"
            "from peft import PeftModel\n\n"
            "base = AutoModelForCausalLM.from_pretrained(\"%s\")\n"
            "model = PeftModel.from_pretrained(base, \"path/to/this/directory\")\n```\n\n"
            "For llama.cpp and Ollama: `lorafit export THIS_DIR --format gguf --out "
            "adapter.gguf --model BASE_DIR`, then `llama-cli -m base.gguf --lora "
            "adapter.gguf`.\n",
            base);
}

static char *build_card(const char *adapter_dir, const char *run_dir, int64_t max_step, json_t *ac,
                        bool picture, const LossPoints *p, const Config *cfg) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return NULL;
    const char *base = json_string_value(json_object_get(ac, "base_model_name_or_path"));
    if (!base || !*base) base = "unknown";
    fprintf(f, "---\nbase_model: ");
    yaml_quoted(f, base);
    fprintf(
        f,
        "\nlibrary_name: peft\npipeline_tag: text-generation\ntags:\n- lora\n- lorafit\n---\n\n");
    fprintf(f, "# LoRA adapter for %s\n\n", base);
    fprintf(f, "Fine-tuned with lorafit %s", LORAFIT_VERSION);
    if (run_dir && cfg) fprintf(f, " (run directory `%s`", run_dir);
    if (run_dir && cfg && max_step != INT64_MAX)
        fprintf(f, ", checkpoint at step %" PRId64, max_step);
    fprintf(f, "%s.\n\n", run_dir && cfg ? ")" : "");
    json_t *r = json_object_get(ac, "r"), *alpha = json_object_get(ac, "lora_alpha"),
           *targets = json_object_get(ac, "target_modules");
    bool rslora = json_is_true(json_object_get(ac, "use_rslora"));
    double rv = json_is_integer(r) ? (double)json_integer_value(r) : NAN;
    double av = json_number_value(alpha);
    fprintf(f, "## LoRA\n\n| r | alpha | scaling | rsLoRA | dropout | target modules |\n"
               "|---|---|---|---|---|---|\n");
    fprintf(f, "| %g | %g | %g | %s | %g | ", rv, av, rslora ? av / sqrt(rv) : av / rv,
            rslora ? "yes" : "no",
            cfg ? cfg->lora.dropout : json_number_value(json_object_get(ac, "lora_dropout")));
    size_t i;
    json_t *t;
    json_array_foreach(targets, i, t) fprintf(f, "%s%s", i ? ", " : "", json_string_value(t));
    fprintf(f, " |\n\n");
    if (cfg) write_config_tables(f, cfg);
    if (p->n_train + p->n_eval) write_results(f, p, picture);
    write_usage(f, base);
    (void)adapter_dir;
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

int train_write_model_card(const char *adapter_dir, const char *run_dir, int64_t max_step,
                           char *err, size_t errlen) {
    char path[4200], metrics[4200], resolved[4200];
    if (path_join(path, sizeof path, adapter_dir, "adapter_config.json", err, errlen) != 0)
        return -1;
    json_error_t je;
    json_t *ac = json_load_file(path, 0, &je);
    if (!json_is_object(ac)) {
        json_decref(ac);
        return store_error(err, errlen, 0, "%s:%d:%d: %s", path, je.line, je.column, je.text);
    }
    Config cfg;
    bool have_cfg = false;
    LossPoints p = {0};
    char ignore[1024];
    if (run_dir &&
        path_join(resolved, sizeof resolved, run_dir, "config.resolved.yaml", ignore,
                  sizeof ignore) == 0 &&
        access(resolved, R_OK) == 0)
        have_cfg = config_load(resolved, NULL, 0, &cfg, ignore, sizeof ignore) == CONFIG_OK;
    bool have_metrics =
        run_dir &&
        path_join(metrics, sizeof metrics, run_dir, "metrics.jsonl", ignore, sizeof ignore) == 0 &&
        access(metrics, R_OK) == 0 &&
        loss_points_read(metrics, max_step, &p, ignore, sizeof ignore) == 0;
    int rc = 0;
    bool picture = false;
    if (have_metrics && p.n_train + p.n_eval > 0) {
        const char *base = json_string_value(json_object_get(ac, "base_model_name_or_path"));
        char title[128];
        snprintf(title, sizeof title, "lora on %.40s", base && *base ? base : "the base model");
        rc = path_join(path, sizeof path, adapter_dir, CARD_PICTURE, err, errlen);
        if (rc == 0) rc = train_plot_loss(metrics, max_step, title, path, err, errlen);
        picture = rc == 0;
    }
    char *text = rc == 0 ? build_card(adapter_dir, run_dir, max_step, ac, picture, &p,
                                      have_cfg ? &cfg : NULL)
                         : NULL;
    if (rc == 0 && !text)
        rc = store_error(err, errlen, 0, "%s: out of memory writing the card", adapter_dir);
    if (rc == 0) rc = path_join(path, sizeof path, adapter_dir, CARD_FILE, err, errlen);
    if (rc == 0) rc = fsio_write_file(path, text, strlen(text), err, errlen);
    free(text);
    if (have_cfg) config_free(&cfg);
    loss_points_free(&p);
    json_decref(ac);
    return rc;
}
