/* trainer/cmd_eval.c — `lorafit eval CONFIG.yaml [--adapter DIR] [--set KEY=VALUE]...`:
 * the mean loss of the model (with the adapter, if given) on data.valid, or on data.train
 * when no validation set is configured. Prints one JSON line on stdout. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trainer/cmd_args.h"
#include "trainer/commands.h"
#include "trainer/train.h"

static void eval_usage(FILE *out) {
    fprintf(out,
            "usage: lorafit eval CONFIG.yaml [--adapter DIR] [--set KEY=VALUE]...\n"
            "  Prints {\"eval_loss\", \"eval_tokens\", \"data\"} for the model of CONFIG (plus\n"
            "  the PEFT adapter in DIR) on data.valid, or data.train when valid is unset.\n"
            "  eval.max_batches limits the number of batches (0 = all).\n");
}

static int run_eval(const Config *cfg, const char *adapter, char *err, size_t errlen) {
    if (train_check_paths(cfg, err, errlen) != 0) return 2;
    if (adapter) {
        FILE *f = NULL;
        char p[4200];
        snprintf(p, sizeof p, "%s/adapter_config.json", adapter);
        if (!(f = fopen(p, "rb"))) {
            snprintf(err, errlen, "--adapter: '%s' has no adapter_config.json", adapter);
            return 2;
        }
        fclose(f);
    }
    tensor_set_threads((int)cfg->train.threads);
    Model *m = model_load_dtype(cfg->model.path,
                                cfg->model.dtype == CONFIG_DTYPE_BF16 ? MODEL_BF16 : MODEL_F32, err,
                                errlen);
    if (!m) return 1;
    Lora *lora = NULL;
    int rc = 0;
    if (adapter) {
        LoraSpec spec;
        rc = lora_read_peft_spec(adapter, &spec, err, errlen) != 0 ? 1 : 0;
        if (rc == 0 && !(lora = lora_create(m, &spec, err, errlen))) rc = 1;
        if (rc == 0 && lora_load_peft(lora, adapter, err, errlen) != 0) rc = 1;
    }
    bool valid = cfg->data.valid.n > 0;
    DataOptions o;
    train_data_options(cfg, !valid, model_config(m)->vocab_size, &o);
    o.shuffle = false;
    o.epochs = 1;
    Graph *g = graph_create();
    double loss = 0;
    int64_t tokens = 0;
    if (rc == 0 && !g) rc = 1, snprintf(err, errlen, "out of memory");
    if (rc == 0 &&
        evaluate_loss(m, lora, &o, (int)cfg->eval.max_batches, g, &loss, &tokens, err, errlen) != 0)
        rc = 1;
    if (rc == 0)
        printf("{\"eval_loss\": %.9g, \"eval_tokens\": %" PRId64 ", \"data\": \"%s\"}\n", loss,
               tokens, valid ? "valid" : "train");
    graph_destroy(g);
    lora_free(lora);
    model_free(m);
    return rc;
}

int cmd_eval(int argc, char **argv) {
    const char *config = NULL, *adapter = NULL;
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
                rc = 2;
                break;
            }
            adapter = argv[++i];
            continue;
        }
        rc = cmd_parse_config_args("eval", argc, argv, &i, &config, sets, &n_sets);
    }
    if (rc == 0 && !config) {
        eval_usage(stderr);
        rc = 2;
    }
    Config cfg;
    char err[2048] = "";
    if (rc == 0) rc = config_load(config, sets, n_sets, &cfg, err, sizeof err);
    if (rc == 0) {
        rc = run_eval(&cfg, adapter, err, sizeof err);
        config_free(&cfg);
    }
    if (err[0]) fprintf(stderr, "lorafit eval: %s\n", err);
    free(sets);
    return rc;
}
