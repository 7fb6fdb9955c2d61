/* trainer/cli/cmd_generate.c — `lorafit generate --model DIR [--adapter DIR] --prompt-ids "1 2 3"
 * [-n N] [--temperature T] [--seed S]`: prints the prompt and the generated ids on one line. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trainer/cli/cli.h"
#include "trainer/model/model.h"
#include "trainer/train/train.h"

static void generate_usage(FILE *out) {
    fprintf(
        out,
        "usage: lorafit generate --model DIR [--adapter DIR] --prompt-ids \"1 2 3\" "
        "[-n N] [--temperature T] [--seed S] [--precision auto|f32|bf16]\n"
        "  Prints the prompt ids followed by N generated ids (default 32) on one line.\n"
        "  --temperature 0 (the default) is greedy; otherwise sampling seeded by --seed.\n"
        "  --precision of the matrix products (default auto: bf16 on CPUs with native bf16).\n");
}

/* "1 2 3" (spaces or commas) -> ids; -1 on a malformed or empty list. */
static int parse_ids(const char *s, int32_t **ids, int *n) {
    int cap = 16;
    *ids = malloc((size_t)cap * sizeof **ids);
    *n = 0;
    if (!*ids) return -1;
    while (*s) {
        while (*s == ' ' || *s == ',' || *s == '\t') s++;
        if (!*s) break;
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (end == s || errno || v < 0 || v > INT32_MAX) return -1;
        if (*n == cap) {
            int32_t *grown = realloc(*ids, (size_t)(cap *= 2) * sizeof **ids);
            if (!grown) return -1;
            *ids = grown;
        }
        (*ids)[(*n)++] = (int32_t)v;
        s = end;
    }
    return *n > 0 ? 0 : -1;
}

static int parse_number(const char *flag, const char *s, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    *out = strtod(s, &end);
    if (end == s || *end || errno || !(*out >= lo && *out <= hi)) {
        fprintf(stderr, "lorafit generate: %s '%s' must be a number in [%g, %g]\n", flag, s, lo,
                hi);
        return -1;
    }
    return 0;
}

int cmd_generate(int argc, char **argv) {
    const char *model_dir = NULL, *adapter_dir = NULL, *prompt = NULL;
    double n = 32, temperature = 0, seed = 0;
    ConfigPrecision precision = CONFIG_PRECISION_AUTO;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            generate_usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "lorafit generate: %s needs a value\n", a);
            generate_usage(stderr);
            return EXIT_USAGE;
        }
        const char *v = argv[++i];
        if (strcmp(a, "--model") == 0)
            model_dir = v;
        else if (strcmp(a, "--adapter") == 0)
            adapter_dir = v;
        else if (strcmp(a, "--prompt-ids") == 0)
            prompt = v;
        else if (strcmp(a, "-n") == 0) {
            if (parse_number(a, v, 0, 1 << 20, &n)) return EXIT_USAGE;
        } else if (strcmp(a, "--temperature") == 0) {
            if (parse_number(a, v, 0, 1e6, &temperature)) return EXIT_USAGE;
        } else if (strcmp(a, "--precision") == 0) {
            if (cmd_parse_precision("generate", v, &precision) != 0) return EXIT_USAGE;
        } else if (strcmp(a, "--seed") == 0) {
            if (parse_number(a, v, 0, 9007199254740992.0, &seed)) return EXIT_USAGE;
        } else {
            fprintf(stderr, "lorafit generate: unknown option '%s'\n", a);
            generate_usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (!model_dir || !prompt) {
        fprintf(stderr, "lorafit generate: --model and --prompt-ids are required\n");
        generate_usage(stderr);
        return EXIT_USAGE;
    }
    int32_t *ids = NULL, *out = NULL;
    int n_prompt = 0, rc = 1;
    if (parse_ids(prompt, &ids, &n_prompt) != 0) {
        fprintf(stderr,
                "lorafit generate: --prompt-ids '%s' must be non-negative integers "
                "separated by spaces\n",
                prompt);
        free(ids);
        return EXIT_USAGE;
    }
    char err[1024];
    char note[256];
    precision = train_resolve_precision(precision, note, sizeof note);
    if (precision == CONFIG_PRECISION_BF16) fprintf(stderr, "lorafit: %s\n", note); /* f32: quiet */
    Model *m = model_load_dtype(
        model_dir, precision == CONFIG_PRECISION_BF16 ? MODEL_BF16 : MODEL_F32, err, sizeof err);
    Lora *lora = NULL;
    if (!m) goto fail;
    if (adapter_dir && !(lora = lora_load_adapter(m, adapter_dir, err, sizeof err))) goto fail;
    out = malloc(((size_t)n_prompt + (size_t)n) * sizeof *out);
    if (!out) {
        snprintf(err, sizeof err, "out of memory");
        goto fail;
    }
    if (model_generate(m, lora, ids, n_prompt, (int)n, (float)temperature, (uint64_t)seed,
                       train_tensor_precision(precision), out, err, sizeof err) != 0)
        goto fail;
    for (int i = 0; i < n_prompt + (int)n; i++) printf(i ? " %d" : "%d", out[i]);
    printf("\n");
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "lorafit generate: %s\n", err);
done:
    free(ids);
    free(out);
    lora_free(lora);
    model_free(m);
    return rc;
}
