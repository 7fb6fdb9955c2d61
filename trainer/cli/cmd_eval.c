/* trainer/cli/cmd_eval.c — `lorafit eval CONFIG.yaml [--adapter DIR] [--set KEY=VALUE]...`:
 * the mean loss of the model (with the adapter, if given) on data.valid, or on data.train
 * when no validation set is configured; for a preference config (train.objective dpo |
 * orpo) the loss and metrics of training's evaluation (trainer/train/preference.c).
 * Prints one JSON line on stdout. Under mpirun the ranks share the batches out and rank 0
 * prints the line. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "trainer/cli/cli.h"
#include "trainer/store/store.h"
#include "trainer/train/train.h"

static void eval_usage(FILE *out) {
    fprintf(out,
            "usage: lorafit eval CONFIG.yaml [--adapter DIR] [--precision auto|f32|bf16] "
            "[--set KEY=VALUE]...\n"
            "  Prints {\"eval_loss\", \"eval_tokens\", \"data\"} for the model of CONFIG (plus\n"
            "  the PEFT adapter in DIR) on data.valid, or data.train when valid is unset;\n"
            "  for train.objective dpo | orpo the preference metrics as training's evaluation\n"
            "  logs them (eval_rewards/..., eval_pairs instead of eval_tokens).\n"
            "  eval.max_batches limits the number of batches (0 = all).\n");
}

/* Everything an evaluation holds; zeroed, then filled by prepare_eval. */
typedef struct EvalJob {
    Config resolved; /* shallow copy of the asked config: only train.precision differs */
    Model *model;
    Lora *lora;
    TrainText text;
    Graph *graph;
} EvalJob;

static int prepare_eval(EvalJob *job, const Config *asked, const char *adapter, char *err,
                        size_t errlen) {
    if (train_check_paths(asked, err, errlen) != 0) return EXIT_USAGE;
    job->resolved = *asked;
    const Config *cfg = &job->resolved;
    char note[512];
    job->resolved.train.precision =
        train_resolve_precision(asked->train.precision, note, sizeof note);
    if (ranks_rank() == 0) fprintf(stderr, "lorafit: %s\n", note);
    char p[4200];
    if (adapter && (path_join(p, sizeof p, adapter, "adapter_config.json", err, errlen) != 0 ||
                    access(p, F_OK) != 0)) {
        snprintf(err, errlen, "--adapter: '%s' has no adapter_config.json", adapter);
        return EXIT_USAGE;
    }
    tensor_set_threads((int)cfg->train.threads);
    job->model = train_load_model(cfg, err, errlen);
    if (!job->model) return EXIT_RUNTIME;
    if (train_check_seq_len(cfg, job->model, err, errlen) != 0) return EXIT_USAGE;
    if (adapter && !(job->lora = lora_load_adapter(job->model, adapter, err, errlen)))
        return EXIT_RUNTIME;
    int text_rc = train_text_load(cfg, &job->text, err, errlen);
    if (text_rc != 0) return text_rc == -2 ? EXIT_USAGE : EXIT_RUNTIME;
    job->graph = graph_create();
    if (job->graph &&
        graph_set_precision(job->graph, train_tensor_precision(cfg->train.precision)) != 0) {
        graph_destroy(job->graph);
        job->graph = NULL;
    }
    if (!job->graph) {
        snprintf(err, errlen, "out of memory");
        return EXIT_RUNTIME;
    }
    return EXIT_OK;
}

/* Under mpirun every rank prepares, the ranks vote (so an error is printed once), each
 * evaluates its share of the batches, and rank 0 prints the total. */
static int run_eval(const Config *asked, const char *adapter, char *err, size_t errlen) {
    EvalJob job;
    memset(&job, 0, sizeof job);
    RankVote v = {.status = prepare_eval(&job, asked, adapter, err, errlen)};
    ranks_vote(&v, err, errlen);
    int rc = v.status;
    const Config *cfg = &job.resolved;
    double loss = 0, metrics[TRAIN_PREF_METRICS];
    int64_t tokens = 0; /* pairs for a preference config */
    bool preference = cfg->train.objective != OBJECTIVE_SFT;
    const char *const *names = NULL;
    int n_metrics = 0;
    /* train.gradient_checkpointing: one layer's activations at a time here too (same bits) */
    Checkpointing *ck = NULL;
    if (rc == EXIT_OK && cfg->train.gradient_checkpointing && !(ck = checkpointing_create()))
        rc = EXIT_RUNTIME, snprintf(err, errlen, "out of memory");
    if (rc == EXIT_OK) {
        DataOptions o;
        train_data_options(cfg, TRAIN_DATA_EVAL, model_config(job.model)->vocab_size, &o);
        train_text_attach(&job.text, &o);
        if (preference
                ? evaluate_preference(cfg, job.model, job.lora, &o, (int)cfg->eval.max_batches,
                                      job.graph, &loss, metrics, &names, &n_metrics, &tokens, err,
                                      errlen)
                : evaluate_loss_checkpointed(job.model, job.lora, &o, (int)cfg->eval.max_batches,
                                             job.graph, ck, &loss, &tokens, err, errlen))
            rc = EXIT_RUNTIME;
    }
    checkpointing_free(ck);
    if (rc == EXIT_OK && ranks_rank() == 0) {
        char value[32] = "null"; /* not finite: JSON has no NaN, and metrics.jsonl writes null */
        if (isfinite(loss)) snprintf(value, sizeof value, "%.9g", loss);
        printf("{\"eval_loss\": %s", value);
        for (int k = 0; k < n_metrics; k++) { /* as metrics.jsonl's evaluation lines */
            snprintf(value, sizeof value, "null");
            if (isfinite(metrics[k])) snprintf(value, sizeof value, "%.9g", metrics[k]);
            printf(", \"eval_%s\": %s", names[k], value);
        }
        printf(", \"%s\": %" PRId64 ", \"data\": \"%s\"}\n",
               preference ? "eval_pairs" : "eval_tokens", tokens,
               cfg->data.valid.n > 0 ? "valid" : "train");
    }
    graph_destroy(job.graph);
    train_text_free(&job.text);
    lora_free(job.lora);
    model_free(job.model);
    return rc;
}

int cmd_eval(int argc, char **argv) {
    const char *config = NULL, *adapter = NULL, *precision = NULL;
    char precision_set[64];
    const char **sets = calloc((size_t)argc + 1, sizeof *sets);
    int n_sets = 0, rc = 0;
    if (!sets) return 1;
    for (int i = 1; i < argc && rc == 0; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            eval_usage(stdout);
            free(sets);
            return 0;
        }
        if (strcmp(argv[i], "--adapter") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "lorafit eval: --adapter needs a directory\n");
                rc = EXIT_USAGE;
                break;
            }
            adapter = argv[++i];
            continue;
        }
        if (strcmp(argv[i], "--precision") == 0) { /* the same as --set train.precision=... */
            ConfigPrecision p;
            if (i + 1 >= argc || cmd_parse_precision("eval", argv[i + 1], &p) != 0) {
                if (i + 1 >= argc) fprintf(stderr, "lorafit eval: --precision needs a value\n");
                rc = EXIT_USAGE;
                break;
            }
            precision = argv[++i];
            continue;
        }
        rc = cmd_parse_config_args("eval", argc, argv, &i, &config, sets, &n_sets);
    }
    if (rc == 0 && !config) {
        eval_usage(stderr);
        rc = EXIT_USAGE;
    }
    if (precision) { /* after the config's own --set options, so it wins */
        snprintf(precision_set, sizeof precision_set, "train.precision=%s", precision);
        sets[n_sets++] = precision_set;
    }
    Config cfg;
    char err[2048] = "";
    bool loaded;
    rc = cmd_start_and_load_config(rc, config, sets, n_sets, &cfg, &loaded, err, sizeof err);
    if (rc == 0) rc = run_eval(&cfg, adapter, err, sizeof err);
    if (loaded) config_free(&cfg);
    if (err[0]) fprintf(stderr, "lorafit eval: %s\n", err);
    free(sets);
    ranks_finalize();
    return rc;
}
