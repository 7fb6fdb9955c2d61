/* trainer/cli/cmd_train.c — `lorafit train CONFIG.yaml [--set KEY=VALUE]... [--resume [DIR]]`.
 * Under mpirun every rank runs this; the ranks vote on a config error, so it is printed once,
 * and each rank ends MPI (ranks_finalize) before it exits. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trainer/cli/cli.h"
#include "trainer/train/train.h"

static void train_usage(FILE *out) {
    fprintf(out,
            "usage: lorafit train CONFIG.yaml [--set KEY=VALUE]... [--resume [CHECKPOINT_DIR]]\n"
            "  Fine-tunes a LoRA adapter as CONFIG.yaml describes (see README.md).\n"
            "  --set KEY=VALUE   override a config key by dotted path (repeatable),\n"
            "                    e.g. --set train.lr=1e-4 --set lora.r=16\n"
            "  --resume          continue from the newest complete checkpoint in output.dir\n"
            "                    (or start from scratch when there is none)\n"
            "  --resume DIR      continue from that checkpoint\n"
            "Exit codes: 0 done, 1 runtime failure, 2 usage or config error,\n"
            "130 stopped by SIGINT/SIGTERM after saving a checkpoint.\n");
}

int cmd_train(int argc, char **argv) {
    const char *config = NULL;
    const char **sets = calloc((size_t)argc + 1, sizeof *sets);
    int n_sets = 0, rc = 0;
    TrainOptions opt = {false, NULL};
    if (!sets) return EXIT_RUNTIME;
    for (int i = 1; i < argc && rc == 0; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            train_usage(stdout);
            free(sets);
            return 0;
        }
        if (strcmp(argv[i], "--resume") == 0) {
            opt.resume = true;
            if (i + 1 < argc && argv[i + 1][0] != '-' && config) opt.resume_dir = argv[++i];
            continue;
        }
        if (strncmp(argv[i], "--resume=", 9) == 0) {
            opt.resume = true;
            opt.resume_dir = argv[i] + 9;
            continue;
        }
        rc = cmd_parse_config_args("train", argc, argv, &i, &config, sets, &n_sets);
    }
    if (rc == 0 && !config) {
        train_usage(stderr);
        rc = EXIT_USAGE;
    }
    Config cfg;
    char err[2048] = "";
    bool loaded;
    rc = cmd_start_and_load_config(rc, config, sets, n_sets, &cfg, &loaded, err, sizeof err);
    if (rc == 0) {
        static const int exit_code[] = {[TRAIN_DONE] = EXIT_OK,
                                        [TRAIN_STOPPED] = EXIT_STOPPED,
                                        [TRAIN_FAILED] = EXIT_RUNTIME,
                                        [TRAIN_REFUSED] = EXIT_USAGE};
        rc = exit_code[train_run(&cfg, &opt, err, sizeof err)];
    }
    if (loaded) config_free(&cfg);
    if (err[0]) fprintf(stderr, "lorafit train: %s\n", err);
    free(sets);
    ranks_finalize();
    return rc;
}
