/* trainer/train/eval.c — the loss of a model (+ adapter) on a dataset, without dropout.
 * With gradient checkpointing on, the layers run one at a time in the layer graph, so an
 * evaluation during training holds no more activations than the training steps do.
 *
 * Under mpirun the batches are dealt out: rank r computes batches r, r + N, r + 2N, ...
 * (every rank reads them all, which is cheap), and the loss sums and token counts are added
 * in rank order: the loss of one process, to the order of the summation. As in training,
 * a batch of the job is batch_size rows on each of N ranks, so max_batches allows N times
 * as many batches of batch_size rows: the rows a 1-process run with batch_size x N sees. */
#include <stdio.h>

#include "trainer/train/train.h"

int evaluate_loss_checkpointed(const Model *m, const Lora *lora, const DataOptions *o,
                               int max_batches, Graph *g, Checkpointing *ck, double *loss,
                               int64_t *tokens, char *err, size_t errlen) {
    DataReader *r = data_open(o, err, errlen);
    double sum = 0;
    int64_t count = 0;
    int rc = r ? 0 : -1;
    int64_t limit = (int64_t)max_batches * ranks_size(); /* batches of batch_size rows */
    for (int64_t n = 0; r && (limit == 0 || n < limit); n++) {
        Batch b;
        rc = data_next_batch(r, &b, err, errlen);
        if (rc <= 0) break;
        rc = 0;
        if (n % ranks_size() != ranks_rank()) continue; /* another rank's batch */
        graph_reset(g);
        Tensor *hidden =
            ck ? model_forward_hidden_checkpointed_eval(m, lora, g, ck, b.input_ids, b.positions,
                                                        b.segments, b.batch, b.seq_len)
               : model_forward_hidden_eval(m, lora, g, b.input_ids, b.positions, b.segments,
                                           b.batch, b.seq_len);
        int64_t c = 0;
        Tensor *l = model_loss(m, g, hidden, b.targets, &c);
        if (!l) {
            snprintf(err, errlen, "evaluating (batch_size %d, seq_len %d): %s", b.batch, b.seq_len,
                     checkpointing_error(ck, g));
            rc = -1;
            break;
        }
        sum += l->data[0];
        count += c;
    }
    graph_reset(g);
    data_close(r);
    RankVote v = {.status = rc < 0, .count = count, .value = sum};
    ranks_vote(&v, err, errlen); /* every rank's share; one process: unchanged */
    if (v.status != 0) return -1;
    *loss = v.count > 0 ? v.value / (double)v.count : 0.0;
    *tokens = v.count;
    return 0;
}

int evaluate_loss(const Model *m, const Lora *lora, const DataOptions *o, int max_batches, Graph *g,
                  double *loss, int64_t *tokens, char *err, size_t errlen) {
    return evaluate_loss_checkpointed(m, lora, o, max_batches, g, NULL, loss, tokens, err, errlen);
}
