/* trainer/train/plot.h — internals of the loss-curve picture (plot.c, plot_font.c); the API
 * is train_plot_loss in train.h. */
#ifndef LORAFIT_TRAIN_PLOT_H
#define LORAFIT_TRAIN_PLOT_H

#include <stdint.h>

/* The 7 rows of 5 columns ('#' = ink) of a character; NULL for a space. Characters without
 * a glyph are drawn as '?'; upper case as lower case. */
const char *const *plot_glyph(char c);

/* The points of a run's metrics.jsonl up to max_step: training loss lines and evaluation
 * lines, each in file order. */
typedef struct LossPoints {
    int64_t *train_step, *eval_step;
    double *train_loss, *eval_loss;
    int n_train, n_eval;
    int64_t last_tokens;            /* "tokens" of the last training line, -1 when none */
    int64_t last_step;              /* its "step" (its loss may be null: a skipped step's) */
    int64_t last_nonfinite_skipped; /* its "nonfinite_skipped" (0 when absent) */
} LossPoints;

int loss_points_read(const char *metrics_path, int64_t max_step, LossPoints *p, char *err,
                     size_t errlen);
void loss_points_free(LossPoints *p);

#endif
