/* trainer/cli/args.c — what the commands that take a config file share: CONFIG and --set
 * parsing, and loading the config with its result mapped to an exit code. */
#include <stdio.h>
#include <string.h>

#include "trainer/cli/cli.h"
#include "trainer/train/train.h" /* ranks_init, ranks_vote */

/* Shared by train and eval: CONFIG plus --set options. Returns 0 or EXIT_USAGE. */
int cmd_parse_config_args(const char *cmd, int argc, char **argv, int *i, const char **config,
                          const char **sets, int *n_sets) {
    const char *a = argv[*i];
    if (strcmp(a, "--set") == 0 || strncmp(a, "--set=", 6) == 0) {
        const char *v = a[5] == '=' ? a + 6 : (*i + 1 < argc ? argv[++*i] : NULL);
        if (!v || !strchr(v, '=')) {
            fprintf(stderr, "lorafit %s: --set needs KEY=VALUE, e.g. --set train.lr=1e-4\n", cmd);
            return EXIT_USAGE;
        }
        sets[(*n_sets)++] = v;
        return 0;
    }
    if (a[0] == '-' && a[1] != '\0') {
        fprintf(stderr, "lorafit %s: unknown option '%s' (see lorafit %s --help)\n", cmd, a, cmd);
        return EXIT_USAGE;
    }
    if (*config) {
        fprintf(stderr, "lorafit %s: one config file only ('%s' and '%s')\n", cmd, *config, a);
        return EXIT_USAGE;
    }
    *config = a;
    return 0;
}

int cmd_load_config(const char *path, const char *const *sets, int n_sets, Config *cfg, char *err,
                    size_t errlen) {
    int rc = config_load(path, sets, n_sets, cfg, err, errlen);
    return rc == CONFIG_OK ? EXIT_OK : rc == CONFIG_INVALID ? EXIT_USAGE : EXIT_RUNTIME;
}

int cmd_start_and_load_config(int rc, const char *path, const char *const *sets, int n_sets,
                              Config *cfg, bool *loaded, char *err, size_t errlen) {
    *loaded = false;
    if (rc == 0 && ranks_init(err, errlen) != 0) rc = EXIT_RUNTIME;
    if (rc == 0) *loaded = (rc = cmd_load_config(path, sets, n_sets, cfg, err, errlen)) == 0;
    RankVote v = {.status = rc};
    ranks_vote(&v, err, errlen);
    return v.status;
}

int cmd_parse_precision(const char *cmd, const char *value, ConfigPrecision *out) {
    static const char *const names[] = {"auto", "f32", "bf16"};
    for (int i = 0; i < 3; i++)
        if (strcmp(value, names[i]) == 0) {
            *out = (ConfigPrecision)i; /* the enum's order */
            return 0;
        }
    fprintf(stderr, "lorafit %s: --precision must be auto, f32 or bf16, not '%s'\n", cmd, value);
    return -1;
}
