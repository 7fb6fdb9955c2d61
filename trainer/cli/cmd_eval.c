/* trainer/cli/cmd_eval.c — `lorafit eval CONFIG.yaml [--adapter DIR] [--set KEY=VALUE]...`:
 * the mean loss of the model (with the adapter, if given) on data.valid, or on data.train
 * when no validation set is configured. Prints one JSON line on stdout. */
#include <inttypes.h>
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
            "  the PEFT adapter in DIR) on data.valid, or data.train when valid is unset.\n"
            "  eval.max_batches limits the number of batches (0 = all).\n");
}

static int run_eval(const Config *asked, const char *adapter, char *err, size_t errlen) {
    if (train_check_paths(asked, err, errlen) != 0) return EXIT_USAGE;
    Config resolved = *asked; /* shallow: only train.precision differs */
    const Config *cfg = &resolved;
    char note[256];
    resolved.train.precision = train_resolve_precision(asked->train.precision, note, sizeof note);
    fprintf(stderr, "lorafit: %s\n", note);
    char p[4200];
    if (adapter && (path_join(p, sizeof p, adapter, "adapter_config.json", err, errlen) != 0 ||
                    access(p, F_OK) != 0)) {
        snprintf(err, errlen, "--adapter: '%s' has no adapter_config.json", adapter);
        return EXIT_USAGE;
    }
    tensor_set_threads((int)cfg->train.threads);
    Model *m = train_load_model(cfg, err, errlen);
    if (!m) return EXIT_RUNTIME;
    Lora *lora = NULL;
    int rc = EXIT_OK;
    if (adapter && !(lora = lora_load_adapter(m, adapter, err, errlen))) rc = EXIT_RUNTIME;
    TrainText text;
    int text_rc = rc == EXIT_OK ? train_text_load(cfg, &text, err, errlen) : 0;
    if (rc != EXIT_OK) memset(&text, 0, sizeof text);
    if (text_rc != 0) rc = text_rc == -2 ? EXIT_USAGE : EXIT_RUNTIME;
    DataOptions o;
    train_data_options(cfg, TRAIN_DATA_EVAL, model_config(m)->vocab_size, &o);
    train_text_attach(&text, &o);
    Graph *g = graph_create();
    if (g && graph_set_precision(g, train_tensor_precision(cfg->train.precision)) != 0) {
        graph_destroy(g);
        g = NULL;
    }
    double loss = 0;
    int64_t tokens = 0;
    if (rc == EXIT_OK && !g) rc = EXIT_RUNTIME, snprintf(err, errlen, "out of memory");
    /* train.gradient_checkpointing: one layer's activations at a time here too (same bits) */
    Checkpointing *ck = cfg->train.gradient_checkpointing ? checkpointing_create() : NULL;
    if (rc == EXIT_OK && cfg->train.gradient_checkpointing && !ck)
        rc = EXIT_RUNTIME, snprintf(err, errlen, "out of memory");
    if (rc == EXIT_OK && evaluate_loss_checkpointed(m, lora, &o, (int)cfg->eval.max_batches, g, ck,
                                                    &loss, &tokens, err, errlen) != 0)
        rc = EXIT_RUNTIME;
    checkpointing_free(ck);
    if (rc == EXIT_OK)
        printf("{\"eval_loss\": %.9g, \"eval_tokens\": %" PRId64 ", \"data\": \"%s\"}\n", loss,
               tokens, cfg->data.valid.n > 0 ? "valid" : "train");
    graph_destroy(g);
    train_text_free(&text);
    lora_free(lora);
    model_free(m);
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
    if (rc == 0) rc = cmd_load_config(config, sets, n_sets, &cfg, err, sizeof err);
    if (rc == 0) {
        rc = run_eval(&cfg, adapter, err, sizeof err);
        config_free(&cfg);
    }
    if (err[0]) fprintf(stderr, "lorafit eval: %s\n", err);
    free(sets);
    return rc;
}
