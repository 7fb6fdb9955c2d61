/* trainer/cli/cmd_plot.c — `lorafit plot OUTPUT_DIR [--out FILE.png]`: redraws the loss curve
 * (training and evaluation loss against the step) from OUTPUT_DIR/metrics.jsonl, also for a
 * run in progress. The picture is written atomically, so a viewer never sees half of it. */
#include <stdio.h>
#include <string.h>

#include "trainer/cli/cli.h"
#include "trainer/store/store.h"
#include "trainer/train/train.h"

static void plot_usage(FILE *out) {
    fprintf(out, "usage: lorafit plot OUTPUT_DIR [--out FILE.png]\n"
                 "  Draws OUTPUT_DIR/metrics.jsonl's training and eval loss against the step\n"
                 "  into OUTPUT_DIR/loss.png (or FILE.png).\n");
}

int cmd_plot(int argc, char **argv) {
    const char *dir = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            plot_usage(stdout);
            return EXIT_OK;
        }
        if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) {
            out = argv[++i];
        } else if (argv[i][0] == '-' || dir) {
            fprintf(stderr, "lorafit plot: unexpected argument '%s'\n", argv[i]);
            plot_usage(stderr);
            return EXIT_USAGE;
        } else {
            dir = argv[i];
        }
    }
    if (!dir) {
        plot_usage(stderr);
        return EXIT_USAGE;
    }
    char metrics[4200], png[4200], err[2048] = "";
    if (path_join(metrics, sizeof metrics, dir, "metrics.jsonl", err, sizeof err) != 0 ||
        path_join(png, sizeof png, dir, CARD_PICTURE, err, sizeof err) != 0) {
        fprintf(stderr, "lorafit plot: %s\n", err);
        return EXIT_USAGE;
    }
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    size_t start = n;
    while (start > 0 && dir[start - 1] != '/') start--;
    char title[128];
    snprintf(title, sizeof title, "%.*s", (int)(n - start > 60 ? 60 : n - start), dir + start);
    if (train_plot_loss(metrics, INT64_MAX, title, out ? out : png, err, sizeof err) != 0) {
        fprintf(stderr, "lorafit plot: %s\n", err);
        return EXIT_RUNTIME;
    }
    fprintf(stderr, "loss curve: %s\n", out ? out : png);
    return EXIT_OK;
}
