/* data/reader.c — the DataReader: shuffle buffer, epochs, overflow and batch layout.
 *
 * Records flow source -> shuffle buffer -> `cur` (the record being laid out) -> batch.
 * The shuffle buffer is the classic streaming one: fill up to shuffle_buffer records, then
 * each draw takes a uniformly random slot and refills it from the source; when the pass ends
 * the buffer drains. It never mixes epochs, and epoch e draws from rng_seed(seed, e).
 * Slots swap their buffers with `cur` instead of copying, so nothing is allocated per batch
 * once the buffers have grown to the longest record.
 *
 * Batch layout of one row (a record, or a chunk of a split one) of length L placed at column
 * c of sequence s: input_ids = ids, positions 0..L-1, segments = the row's index within the
 * sequence, targets[t] = labels[t+1] for t < L-1 and -100 at t = L-1 (the last token of a
 * row predicts nothing: the next token belongs to another row or to padding). */
#include "data/internal.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IGNORE_INDEX (-100)

static char *dup_or_null(const char *s) {
    return s ? strdup(s) : NULL;
}

void data_close(DataReader *r) {
    if (!r) return;
    source_free(r->src);
    for (int i = 0; i < r->n_files; i++) free(r->files[i]);
    free(r->files);
    free(r->fps);
    free(r->bad);
    free(r->dropped);
    for (int i = 0; r->pool && i < r->pool_cap; i++) row_free(&r->pool[i]);
    free(r->pool);
    row_free(&r->cur);
    free(r->buf);
    free(r->pair_key);
    free((char *)r->o.input_field);
    free((char *)r->o.labels_field);
    free((char *)r->o.text_field);
    free((char *)r->o.prompt_field);
    free((char *)r->o.completion_field);
    free((char *)r->o.messages_field);
    free(r);
}

static int check_options(const DataOptions *o, char *err, size_t errlen) {
    const char *bad = NULL;
    if (!o->paths || o->n_paths <= 0)
        bad = "data.train: no paths given";
    else if (!o->input_field || !*o->input_field)
        bad = "data.input_field: must be set";
    else if (o->seq_len < 2)
        bad = "data.seq_len: must be at least 2";
    else if (o->batch_size < 1)
        bad = "train.batch_size: must be at least 1";
    else if ((int64_t)o->seq_len * o->batch_size > (1 << 28))
        bad = "batch_size * seq_len too big";
    else if (o->shuffle && o->shuffle_buffer < 1)
        bad = "data.shuffle_buffer: must be at least 1 when shuffle is true";
    else if (o->shuffle_buffer > (1 << 26))
        bad = "data.shuffle_buffer: too big";
    else if (o->epochs < 0)
        bad = "train.epochs: must be >= 0";
    else if (o->vocab_size < 0)
        bad = "model vocab_size: must be >= 0";
    else if ((unsigned)o->overflow > DATA_OVERFLOW_DROP)
        bad = "data.overflow: unknown value";
    else if ((unsigned)o->on_error > DATA_ON_ERROR_SKIP)
        bad = "data.on_error: unknown value";
    else if ((unsigned)o->format > DATA_FORMAT_PREFERENCE)
        bad = "data.format: unknown value";
    else if (o->preference != (o->format == DATA_FORMAT_PREFERENCE) &&
             o->format != DATA_FORMAT_AUTO)
        bad = "data.format: preference data takes its forms from the fields (set data.format: "
              "auto)";
    if (bad) snprintf(err, errlen, "%s", bad);
    return bad ? -1 : 0;
}

DataReader *data_open(const DataOptions *o, char *err, size_t errlen) {
    if (check_options(o, err, errlen) != 0) return NULL;
    DataReader *r = calloc(1, sizeof *r);
    if (!r) goto oom;
    r->o = *o;
    r->o.paths = NULL;
    r->o.n_paths = 0;
    r->o.input_field = NULL;
    r->o.labels_field = NULL;
    r->o.text_field = r->o.prompt_field = r->o.completion_field = r->o.messages_field = NULL;
    if (!(r->o.input_field = dup_or_null(o->input_field))) goto oom;
    if ((o->text_field && !(r->o.text_field = strdup(o->text_field))) ||
        (o->prompt_field && !(r->o.prompt_field = strdup(o->prompt_field))) ||
        (o->completion_field && !(r->o.completion_field = strdup(o->completion_field))) ||
        (o->messages_field && !(r->o.messages_field = strdup(o->messages_field))))
        goto oom;
    if (o->labels_field && *o->labels_field && !(r->o.labels_field = dup_or_null(o->labels_field)))
        goto oom;
    if (data_expand_paths(o->paths, o->n_paths, &r->files, &r->n_files, err, errlen) != 0) {
        data_close(r);
        return NULL;
    }
    r->fps = calloc((size_t)r->n_files, sizeof *r->fps);
    r->bad = calloc((size_t)r->n_files, sizeof *r->bad);
    r->dropped = calloc((size_t)r->n_files, sizeof *r->dropped);
    if (!r->fps || !r->bad || !r->dropped) goto oom;
    for (int i = 0; i < r->n_files; i++) {
        if (data_file_fingerprint(r->files[i], &r->fps[i], err, errlen) != 0) {
            data_close(r);
            return NULL;
        }
    }
    r->pool_cap = o->shuffle ? o->shuffle_buffer : 0;
    if (r->pool_cap && !(r->pool = calloc((size_t)r->pool_cap, sizeof *r->pool))) goto oom;
    int rows = o->preference ? 2 * o->batch_size : o->batch_size;
    size_t bt = (size_t)rows * (size_t)o->seq_len;
    if (!(r->buf = malloc((4 * bt + 2 * (size_t)rows) * sizeof *r->buf))) goto oom;
    r->batch.batch = rows;
    r->batch.seq_len = o->seq_len;
    r->batch.input_ids = r->buf;
    r->batch.targets = r->buf + bt;
    r->batch.positions = r->buf + 2 * bt;
    r->batch.segments = r->buf + 3 * bt;
    if (o->preference) {
        r->batch.prompt_len = r->buf + 4 * bt;
        r->batch.row_len = r->buf + 4 * bt + rows;
        if (!(r->pair_key = calloc((size_t)o->batch_size, sizeof *r->pair_key))) goto oom;
        r->batch.pair_key = r->pair_key;
    }
    if (!(r->src = source_create(r->files, r->n_files, &r->o, r->bad, err, errlen)) ||
        source_resolve_format(r->src, true, err, errlen) != 0) {
        data_close(r);
        return NULL;
    }
    r->o.format = source_format(r->src);
    rng_seed(&r->rng, o->seed, 0);
    return r;
oom:
    snprintf(err, errlen, "out of memory opening the data reader");
    data_close(r);
    return NULL;
}

static void swap_rows(Row *a, Row *b) {
    Row t = *a;
    *a = *b;
    *b = t;
}

/* The pass of this epoch is over (source and buffer empty): start the next one. */
static int end_epoch(DataReader *r, char *err, size_t errlen) {
    if (r->epoch_rows == 0) {
        int64_t seen = 0; /* records read and set aside: bad ones, dropped ones */
        for (int i = 0; i < r->n_files; i++) seen += r->bad[i] + r->dropped[i];
        if (seen == 0 && r->n_files == 1)
            snprintf(err, errlen, "%s: the data file holds no records (is it empty?)", r->files[0]);
        else if (seen == 0)
            snprintf(err, errlen, "%s and the %d other data file%s hold no records (empty?)",
                     r->files[0], r->n_files - 1, r->n_files > 2 ? "s" : "");
        else
            snprintf(err, errlen, "%s%s: no usable records in the data files%s", r->files[0],
                     r->n_files > 1 ? " (and the other data files)" : "",
                     r->o.overflow == DATA_OVERFLOW_DROP
                         ? " (every record was bad, or longer than seq_len with overflow: drop)"
                         : " (every record was skipped as bad)");
        return -1;
    }
    if (r->epoch == INT_MAX) { /* only a forged cursor starts this close */
        snprintf(err, errlen, "%s: the data reader's epoch counter is at its maximum", r->files[0]);
        return -1;
    }
    r->epoch++;
    r->epoch_rows = 0;
    if (r->o.epochs > 0 && r->epoch >= r->o.epochs) {
        r->finished = true;
        return 0;
    }
    source_rewind(r->src);
    source_set_counting(r->src, false);
    rng_seed(&r->rng, r->o.seed, (uint64_t)r->epoch);
    r->src_done = false;
    return 0;
}

/* Draws the next record into r->cur: 1, 0 (finished), -1 error. */
static int draw_record(DataReader *r, char *err, size_t errlen) {
    for (;;) {
        if (r->finished) return 0;
        if (!r->o.shuffle) {
            int rc = r->src_done ? 0 : source_next(r->src, &r->cur, err, errlen);
            if (rc < 0) return -1;
            if (rc == 1) {
                r->cur.epoch = r->epoch;
                return 1;
            }
            r->src_done = true;
            if (end_epoch(r, err, errlen) != 0) return -1;
            continue;
        }
        while (!r->src_done && r->pool_n < r->pool_cap) {
            int rc = source_next(r->src, &r->pool[r->pool_n], err, errlen);
            if (rc < 0) return -1;
            if (rc == 0) {
                r->src_done = true;
                break;
            }
            r->pool[r->pool_n++].epoch = r->epoch;
        }
        if (r->pool_n == 0) {
            if (end_epoch(r, err, errlen) != 0) return -1;
            continue;
        }
        int j = (int)rng_below(&r->rng, (uint64_t)r->pool_n);
        swap_rows(&r->cur, &r->pool[j]);
        int rc = r->src_done ? 0 : source_next(r->src, &r->pool[j], err, errlen);
        if (rc < 0) return -1;
        if (rc == 1) {
            r->pool[j].epoch = r->epoch;
        } else {
            r->src_done = true;
            swap_rows(&r->pool[j], &r->pool[r->pool_n - 1]);
            r->pool_n--;
        }
        return 1;
    }
}

/* The next row (piece of r->cur) without consuming it: 1, 0 (finished), -1 error. */
static int peek_piece(DataReader *r, int *start, int *len, char *err, size_t errlen) {
    const int T = r->o.seq_len;
    while (!r->cur_valid) {
        int rc = draw_record(r, err, errlen);
        if (rc <= 0) return rc;
        bool too_long = r->o.preference ? r->cur.n_prompt >= T
                                        : r->cur.len > T && r->o.overflow == DATA_OVERFLOW_DROP;
        if (too_long) {
            if (r->cur.epoch == 0) r->dropped[r->cur.loc.file]++;
            continue;
        }
        r->cur_valid = true;
        r->cur_off = 0;
        r->epoch_rows++;
    }
    if (r->o.preference) { /* a pair is laid out whole (preference_place) */
        *start = 0;
        *len = r->cur.len;
        return 1;
    }
    int rest = r->cur.len - r->cur_off;
    *start = r->cur_off;
    *len = rest < T ? rest : T;
    return 1;
}

static void consume_piece(DataReader *r, int len) {
    r->cur_off += len;
    if (r->o.preference || r->o.overflow != DATA_OVERFLOW_SPLIT || r->cur_off >= r->cur.len)
        r->cur_valid = false;
}

static int64_t place_row(Batch *b, int seq, int col, int segment, const Row *row, int start,
                         int len) {
    size_t at = (size_t)seq * (size_t)b->seq_len + (size_t)col;
    const int32_t *ids = row->ids + start, *labels = row->labels + start;
    int64_t n = 0;
    memcpy(b->input_ids + at, ids, (size_t)len * sizeof *ids);
    for (int t = 0; t < len; t++) {
        int32_t tgt = t + 1 < len ? labels[t + 1] : IGNORE_INDEX;
        b->targets[at + t] = tgt;
        b->positions[at + t] = t;
        b->segments[at + t] = segment;
        n += tgt != IGNORE_INDEX;
    }
    return n;
}

static void pad_row(Batch *b, int seq, int col, int segment) {
    size_t at = (size_t)seq * (size_t)b->seq_len;
    for (int t = col; t < b->seq_len; t++) {
        b->input_ids[at + t] = 0;
        b->targets[at + t] = IGNORE_INDEX;
        b->positions[at + t] = t - col;
        b->segments[at + t] = segment;
    }
}

/* Pair `pair` of a preference batch of P pairs: prompt + chosen as row pair, prompt +
 * rejected as row P + pair, each cut at T (TRL's keep_start truncation); targets are the
 * next tokens where those are completion tokens. An empty pair (padding) is two empty rows. */
static void preference_place(Batch *b, int pair, const Row *row) {
    const int P = b->batch / 2, T = b->seq_len;
    for (int half = 0; half < 2; half++) {
        int r = half * P + pair;
        size_t at = (size_t)r * (size_t)T;
        int np = row ? row->n_prompt : 0;
        int nc = !row ? 0 : half == 0 ? row->n_chosen : row->len - row->n_prompt - row->n_chosen;
        const int32_t *comp = row ? row->ids + np + (half ? row->n_chosen : 0) : NULL;
        int len = np + nc < T ? np + nc : T;
        for (int t = 0; t < T; t++) {
            int32_t id = t >= len ? 0 : t < np ? row->ids[t] : comp[t - np];
            bool counted = t + 1 < len && t + 1 >= np;
            int32_t next = !counted ? 0 : comp[t + 1 - np];
            b->input_ids[at + t] = id;
            b->targets[at + t] = counted ? next : IGNORE_INDEX;
            b->positions[at + t] = t < len ? t : t - len;
            b->segments[at + t] = t < len ? 0 : 1;
            b->n_targets += counted;
        }
        b->prompt_len[r] = row ? np : 0;
        b->row_len[r] = len;
    }
    b->pair_key[pair] = row ? data_pair_key(row->loc.file, row->loc.offset) : 0;
}

static int preference_batch(DataReader *r, Batch *b, char *err, size_t errlen) {
    Batch *out = &r->batch;
    const int P = r->o.batch_size;
    out->n_targets = 0;
    out->n_rows = 0;
    out->epoch = r->epoch;
    for (int pair = 0; pair < P; pair++) {
        int start, len, rc = 0;
        if (out->n_rows == pair) rc = peek_piece(r, &start, &len, err, errlen);
        if (rc < 0) return -1;
        if (rc == 0) {
            preference_place(out, pair, NULL);
            continue;
        }
        if (out->n_rows == 0) out->epoch = r->cur.epoch;
        preference_place(out, pair, &r->cur);
        out->n_rows++;
        consume_piece(r, len);
    }
    if (out->n_rows == 0) return 0;
    *b = *out;
    return 1;
}

int data_next_batch(DataReader *r, Batch *b, char *err, size_t errlen) {
    if (r->o.preference) return preference_batch(r, b, err, errlen);
    Batch *out = &r->batch;
    const int B = r->o.batch_size, T = r->o.seq_len;
    out->n_targets = 0;
    out->n_rows = 0;
    out->epoch = r->epoch;
    int seq = 0, col = 0, segment = 0;
    while (seq < B) {
        int start, len;
        int rc = peek_piece(r, &start, &len, err, errlen);
        if (rc < 0) return -1;
        if (rc == 0) break;
        if (r->o.packing && col > 0 && col + len > T) { /* close this sequence */
            pad_row(out, seq, col, segment);
            seq++, col = 0, segment = 0;
            continue;
        }
        if (out->n_rows == 0) out->epoch = r->cur.epoch;
        out->n_targets += place_row(out, seq, col, segment, &r->cur, start, len);
        out->n_rows++;
        consume_piece(r, len);
        if (r->o.packing) {
            col += len, segment++;
        } else {
            pad_row(out, seq, len, 1);
            seq++;
        }
    }
    if (out->n_rows == 0) return 0;
    if (seq < B && col > 0) pad_row(out, seq++, col, segment);
    for (; seq < B; seq++) pad_row(out, seq, 0, 0);
    *b = *out;
    return 1;
}

int data_next_row(DataReader *r, DataRow *row, char *err, size_t errlen) {
    int start, len;
    int rc = peek_piece(r, &start, &len, err, errlen);
    if (rc <= 0) return rc;
    row->ids = r->cur.ids + start;
    row->labels = r->cur.labels + start;
    row->len = len;
    row->record_len = r->cur.len;
    row->n_prompt = r->o.preference ? r->cur.n_prompt : 0;
    row->n_chosen = r->o.preference ? r->cur.n_chosen : 0;
    row->first_piece = start == 0;
    row->last_piece = r->o.overflow != DATA_OVERFLOW_SPLIT || start + len >= r->cur.len;
    row->file = r->files[r->cur.loc.file];
    row->line = r->cur.loc.line;
    consume_piece(r, len);
    return 1;
}

int data_skip_report(const DataReader *r, char *out, size_t outlen) {
    size_t n = 0;
    if (outlen) out[0] = '\0';
    for (int i = 0; i < r->n_files; i++) {
        if (!r->bad[i] && !r->dropped[i]) continue;
        int k = snprintf(out + n, n < outlen ? outlen - n : 0, "%s: %lld bad, %lld too long\n",
                         r->files[i], (long long)r->bad[i], (long long)r->dropped[i]);
        if (k > 0) n += (size_t)k;
    }
    return (int)(n < outlen ? n : (outlen ? outlen - 1 : 0));
}

int64_t data_skipped(const DataReader *r) {
    int64_t n = 0;
    for (int i = 0; i < r->n_files; i++) n += r->bad[i] + r->dropped[i];
    return n;
}

int data_resolve_format(const DataOptions *o, DataFormat *out, char *err, size_t errlen) {
    if (o->format != DATA_FORMAT_AUTO) {
        *out = o->format;
        return 0;
    }
    char **files = NULL;
    int n_files = 0;
    if (data_expand_paths(o->paths, o->n_paths, &files, &n_files, err, errlen) != 0) return -1;
    Source *s = source_create(files, n_files, o, NULL, err, errlen);
    int rc = s ? source_resolve_format(s, false, err, errlen) : -1;
    if (rc == 0) *out = source_format(s);
    source_free(s);
    for (int i = 0; i < n_files; i++) free(files[i]);
    free(files);
    return rc;
}

void data_skip_counts(const DataReader *r, int64_t *bad, int64_t *dropped) {
    *bad = *dropped = 0;
    for (int i = 0; i < r->n_files; i++) *bad += r->bad[i], *dropped += r->dropped[i];
}

int64_t data_count_batches(const DataOptions *o, char *err, size_t errlen) {
    if (o->epochs <= 0) {
        snprintf(err, errlen, "train.epochs: the batch count needs a finite number of epochs");
        return -1;
    }
    DataReader *r = data_open(o, err, errlen);
    if (!r) return -1;
    int64_t n = 0;
    Batch b;
    int rc;
    while ((rc = data_next_batch(r, &b, err, errlen)) == 1) n++;
    data_close(r);
    return rc < 0 ? -1 : n;
}

int data_count_records(const DataOptions *o, DataFileRecords **out, int *n_out, char *err,
                       size_t errlen) {
    *out = NULL;
    *n_out = 0;
    char **files = NULL;
    int n_files = 0;
    if (data_expand_paths(o->paths, o->n_paths, &files, &n_files, err, errlen) != 0) return -1;
    int64_t *records = calloc((size_t)n_files + 1, sizeof *records);
    DataFileRecords *f = calloc((size_t)n_files + 1, sizeof *f);
    Source *s = records && f ? source_create(files, n_files, o, NULL, err, errlen) : NULL;
    int rc = s ? source_count_records(s, records, err, errlen) : -1;
    if (!records || !f) snprintf(err, errlen, "out of memory");
    source_free(s);
    for (int i = 0; i < n_files; i++) {
        if (rc == 0)
            f[i] = (DataFileRecords){files[i], records[i]};
        else
            free(files[i]);
    }
    free(files);
    free(records);
    if (rc != 0) {
        free(f);
        return -1;
    }
    *out = f;
    *n_out = n_files;
    return 0;
}

void data_file_records_free(DataFileRecords *f, int n) {
    for (int i = 0; f && i < n; i++) free(f[i].path);
    free(f);
}
