/* trainer/cli/main.c — the lorafit command line: dispatches to one command per file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/tensor.h"
#include "trainer/cli/cli.h"
#include "trainer/store/store.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} Command;

static const Command commands[] = {
    {"train", cmd_train, "train CONFIG.yaml [--set KEY=VALUE]... [--resume [CHECKPOINT_DIR]]"},
    {"export", cmd_export,
     "export CHECKPOINT_OR_ADAPTER_DIR --out DIR|FILE.gguf [--format peft|gguf] "
     "[--dtype f32|bf16|f16] [--model DIR] [--force]"},
    {"merge", cmd_merge,
     "merge --model DIR|FILE.gguf [--adapter DIR] --out DIR|FILE.gguf [--format hf|gguf] "
     "[--dtype f32|f16|bf16|q8_0] [--force]"},
    {"plot", cmd_plot, "plot OUTPUT_DIR [--out FILE.png]   redraws the loss curve"},
    {"eval", cmd_eval, "eval CONFIG.yaml [--adapter DIR]"},
    {"prepare", cmd_prepare, "prepare CONFIG.yaml --out FILE.jsonl   the rows training would see"},
    {"tokenize", cmd_tokenize,
     "tokenize DIR [--no-special-tokens] [--decode [--skip-special-tokens]]"},
    {"inspect", cmd_inspect, "inspect FILE.safetensors | DIR   tensors, dtypes, shapes, config"},
    {"generate", cmd_generate,
     "generate --model DIR [--adapter DIR] --prompt-ids \"1 2 3\" [-n N] [--temperature T] "
     "[--seed S]"},
};

/* A float default at its shortest round-trip text (2e-4, not 0.00020000000000000001). */
static void shorten_number(char *value, size_t len) {
    char *end;
    double d = strtod(value, &end);
    if (end == value || *end || !strpbrk(value, ".eE")) return;
    for (int digits = 1; digits <= 17; digits++) {
        char buf[64];
        snprintf(buf, sizeof buf, "%.*g", digits, d);
        if (strtod(buf, NULL) == d) {
            snprintf(value, len, "%s", buf);
            return;
        }
    }
}

/* lorafit --config-keys: every config key, one a line, "KEY<TAB>DEFAULT[<TAB>A|B|...]" (the
 * values it takes when they are a list): the schema as the shell completion and the man
 * page's test read it, and a quick reference for users. */
static int print_config_keys(void) {
    Config defaults;
    if (config_defaults(&defaults) != 0) {
        fprintf(stderr, "lorafit: out of memory\n");
        return EXIT_RUNTIME;
    }
    for (int i = 0; config_key_path(i); i++) {
        char value[512];
        if (config_format_value(&defaults, i, value, sizeof value) < 0) snprintf(value, 4, "...");
        shorten_number(value, sizeof value);
        printf("%s\t%s", config_key_path(i), value);
        const char *const *choices = config_key_choices(i);
        for (int c = 0; choices && choices[c]; c++) printf("%s%s", c ? "|" : "\t", choices[c]);
        printf("\n");
    }
    config_free(&defaults);
    return EXIT_OK;
}

static void usage(FILE *out) {
    fprintf(out, "usage: lorafit COMMAND [ARGS]\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  lorafit %s\n", commands[i].summary);
    fprintf(out, "  lorafit --version | --help | COMMAND --help\n");
    fprintf(out, "  lorafit --config-keys   every config key with its default\n");
}

int main(int argc, char **argv) {
    tensor_blas_use_cpu_kernels(argv);
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("lorafit %s\n", LORAFIT_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "--config-keys") == 0) return print_config_keys();
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "lorafit: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return EXIT_USAGE;
}
