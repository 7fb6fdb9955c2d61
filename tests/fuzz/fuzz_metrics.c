/* tests/fuzz/fuzz_metrics.c — the loss picture (train_plot_loss: loss_points_read, then the
 * drawing) from an arbitrary metrics.jsonl. A run's own file is well formed, but `lorafit
 * plot` and the model card read whatever is on disk: a torn line, a hand edit, a diverged
 * run's numbers. It must finish (libFuzzer's -timeout catches a loop) and never write
 * outside the canvas; a refusal must say why. */
#include "tests/fuzz/fuzz_util.h"
#include "trainer/train/plot.h"
#include "trainer/train/train.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *metrics = fuzz_write("metrics.jsonl", data, size);
    char png[600], err[1024];
    snprintf(png, sizeof png, "%s/loss.png", fuzz_scratch_dir());
    err[0] = '\0';
    if (train_plot_loss(metrics, INT64_MAX, "fuzz", png, err, sizeof err) != 0 && !err[0]) abort();
    /* the card's reading: points up to a step */
    LossPoints p;
    if (loss_points_read(metrics, 100, &p, err, sizeof err) == 0) {
        for (int i = 0; i < p.n_train; i++)
            if (p.train_step[i] < 0 || p.train_step[i] > 100) abort();
        loss_points_free(&p);
    }
    return 0;
}
