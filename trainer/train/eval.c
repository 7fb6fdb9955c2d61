/* trainer/train/eval.c — the loss of a model (+ adapter) on a dataset, without dropout.
 * With gradient checkpointing on, the layers run one at a time in the layer graph, so an
 * evaluation during training holds no more activations than the training steps do. */
#include <stdio.h>

#include "trainer/train/train.h"

int evaluate_loss_checkpointed(const Model *m, const Lora *lora, const DataOptions *o,
                               int max_batches, Graph *g, Checkpointing *ck, double *loss,
                               int64_t *tokens, char *err, size_t errlen) {
    DataReader *r = data_open(o, err, errlen);
    if (!r) return -1;
    double sum = 0;
    int64_t count = 0;
    int rc = 0;
    for (int n = 0; max_batches == 0 || n < max_batches; n++) {
        Batch b;
        rc = data_next_batch(r, &b, err, errlen);
        if (rc <= 0) break;
        graph_reset(g);
        Tensor *hidden =
            ck ? model_forward_hidden_checkpointed_eval(m, lora, g, ck, b.input_ids, b.positions,
                                                        b.segments, b.batch, b.seq_len)
               : model_forward_hidden_eval(m, lora, g, b.input_ids, b.positions, b.segments,
                                           b.batch, b.seq_len);
        int64_t c = 0;
        Tensor *l = op_lm_head_cross_entropy(g, hidden, model_lm_head(m), b.targets, &c);
        if (!l) {
            snprintf(err, errlen, "evaluating (batch_size %d, seq_len %d): %s", b.batch, b.seq_len,
                     checkpointing_error(ck, g));
            rc = -1;
            break;
        }
        sum += l->data[0];
        count += c;
        rc = 0;
    }
    graph_reset(g);
    data_close(r);
    if (rc < 0) return -1;
    *loss = count > 0 ? sum / (double)count : 0.0;
    *tokens = count;
    return 0;
}

int evaluate_loss(const Model *m, const Lora *lora, const DataOptions *o, int max_batches, Graph *g,
                  double *loss, int64_t *tokens, char *err, size_t errlen) {
    return evaluate_loss_checkpointed(m, lora, o, max_batches, g, NULL, loss, tokens, err, errlen);
}
