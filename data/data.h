/* data/data.h — streaming tokenized datasets: files in, micro-batches of int32 arrays out.
 *
 * data/ knows nothing of models or training. A DataReader reads JSONL or CSV files (each
 * optionally gzip-compressed) record by record, validates every record, passes the records
 * through a seeded streaming shuffle buffer, applies the overflow rule (truncate | split |
 * drop) and lays the resulting rows into fixed-shape batches, packed or one row per sequence.
 * Memory never grows with file size: the reader holds the shuffle buffer, one batch and one
 * pending record. Text records (data.format text | completion | alpaca | chat) are tokenized
 * as they are read (data/text.c); `.json` files (one JSON array of objects) are read whole.
 *
 * Order of operations: records -> shuffle buffer (records, not pieces) -> overflow -> rows ->
 * batch. A record that `split` cuts into chunks yields its chunks consecutively; each chunk is
 * a row of its own. Batches may span an epoch boundary; the last batch of the last epoch is
 * padded with empty sequences (n_rows tells how many rows are real).
 *
 * Determinism: the shuffle of epoch e is seeded from (seed, e) with tensor/rng.h, so the same
 * options give the same batches, and every epoch has its own order.
 *
 * Exact resume: data_cursor_save() captures the whole reader state in a small blob (see
 * data/cursor.c for the layout: file fingerprints, record *locators* — file, byte offset, line —
 * for every row in the shuffle buffer and the pending record, the source position, PRNG state,
 * epoch and skip counts). Rows are not stored; a restore re-reads them from the files (for .gz
 * that means decompressing forward from the start of the file, never holding it in memory).
 * A file whose size, first MB or last 64 KB changed since the save is refused. */
#ifndef LORAFIT_DATA_H
#define LORAFIT_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "data/chat/chat.h"
#include "data/tokenizer/tokenizer.h"

/* What a record holds (data.format). AUTO decides from the first record of the first file:
 * input_ids -> TOKENS, messages -> CHAT, instruction + output -> ALPACA, prompt + completion
 * -> COMPLETION, text -> TEXT (the configured field names are the ones looked for). */
typedef enum {
    DATA_FORMAT_AUTO,
    DATA_FORMAT_TOKENS,
    DATA_FORMAT_TEXT,
    DATA_FORMAT_COMPLETION,
    DATA_FORMAT_ALPACA,
    DATA_FORMAT_CHAT,
    DATA_FORMAT_PREFERENCE /* (prompt, chosen, rejected) records: DataOptions.preference */
} DataFormat;

typedef enum { DATA_OVERFLOW_TRUNCATE, DATA_OVERFLOW_SPLIT, DATA_OVERFLOW_DROP } DataOverflow;
typedef enum { DATA_ON_ERROR_FAIL, DATA_ON_ERROR_SKIP } DataOnError;

typedef struct DataOptions {
    const char **paths;       /* (n_paths) each a file path or a glob(3) pattern; .jsonl, .csv  */
    int n_paths;              /* or .json, optionally .gz; a glob's matches in sorted order       */
    const char *input_field;  /* JSONL key / CSV column of token ids: "input_ids"          */
    const char *labels_field; /* "labels"; missing key/column (or NULL) => labels = input_ids */
    int seq_len;              /* T */
    int batch_size;           /* B */
    bool packing;
    DataOverflow overflow;
    bool shuffle;
    int shuffle_buffer; /* records held for shuffling (>= 1 when shuffle) */
    DataOnError on_error;
    int vocab_size; /* ids must be in [0, vocab_size); 0 = no upper bound check */
    uint64_t seed;
    int epochs; /* passes over the data; 0 = cycle forever */

    /* Text formats (see data/text.c for what each yields). Everything here is owned by the
     * caller and must outlive the reader; the tokenizer and template are only read. */
    DataFormat format;
    const char *text_field;            /* TEXT: "text" */
    const char *prompt_field;          /* COMPLETION: "prompt" */
    const char *completion_field;      /* COMPLETION: "completion" */
    const char *messages_field;        /* CHAT: "messages" */
    bool add_eos;                      /* TEXT, COMPLETION, ALPACA: end every row with EOS */
    bool train_on_prompt;              /* COMPLETION, ALPACA: loss on the prompt too */
    const Tokenizer *tokenizer;        /* needed by every format but TOKENS */
    const ChatTemplate *chat_template; /* CHAT */
    const json_t *chat_context; /* CHAT: the template's other variables (bos_token, eos_token,
                                   ..., extra keys such as enable_thinking); may be NULL */

    /* Preference data (format PREFERENCE, data/pairs.c has the record forms): each
     * record is a pair, batch_size pairs make a batch of 2 * batch_size rows (see Batch).
     * Text needs the tokenizer; conversations the chat template (add_eos: EOS after text
     * completions). Overflow and packing do not apply: each row keeps its first seq_len
     * tokens, and a pair whose prompt alone has seq_len tokens or more is dropped (counted
     * as too long), as TRL does with max_length. */
    bool preference;
} DataOptions;

/* One micro-batch. Owned by the reader and overwritten by the next data_next_batch(). */
typedef struct Batch {
    int batch, seq_len; /* B, T */
    int32_t *input_ids; /* (B*T) token ids, 0 on padding */
    int32_t *targets;   /* (B*T) labels[t+1] of the same segment; TENSOR_IGNORE_INDEX (-100) at
                           each segment's last position, on padding and where labels say -100 */
    int32_t *positions; /* (B*T) 0.. restarting at each segment (padding restarts too) */
    int32_t *segments;  /* (B*T) per sequence: real rows are segments 0..k-1 in order, padding
                           is segment k, so it never matches a real row */
    int64_t n_targets;  /* positions whose target is not -100 */
    int n_rows;         /* rows (records, or chunks of split records) in this batch */
    int epoch;          /* epoch of the batch's first row */
    /* Preference batches: batch = 2 P rows for P = DataOptions.batch_size pairs; row i < P is
     * pair i's prompt + chosen and row P + i its prompt + rejected (TRL's concatenated
     * batch), each cut at seq_len; targets only on completion tokens. n_rows counts the real
     * pairs (the first n_rows of each half). NULL for other data. */
    int32_t *prompt_len; /* (batch) prompt tokens of the row (all kept: prompt < seq_len) */
    int32_t *row_len;    /* (batch) tokens of the row after the cut; 0 for padding */
    uint64_t *pair_key;  /* (batch / 2) each pair's record: file index << 48 | its offset
                            (data_pair_key); 0 for padding. Stable across runs and resumes */
} Batch;

typedef struct DataReader DataReader;

/* The key of the record at byte offset (a .json file: index) of file index `file`. */
static inline uint64_t data_pair_key(uint32_t file, uint64_t offset) {
    return ((uint64_t)(file + 1) << 48) | (offset & (((uint64_t)1 << 48) - 1));
}

/* Expands the paths, checks options fingerprints every file (size, CRC-32 of the first MB and last
 * 64 KB). NULL + err on error. */
DataReader *data_open(const DataOptions *o, char *err, size_t errlen);
/* The format the reader would use: o->format, or for DATA_FORMAT_AUTO the one the first record
 * of the first file suggests (what a caller needs to know before loading a tokenizer). No
 * tokenizer is needed. 0, or -1 with err. */
int data_resolve_format(const DataOptions *o, DataFormat *out, char *err, size_t errlen);
const char *data_format_name(DataFormat f);

/* Fills the next micro-batch into *b (pointers into reader-owned buffers; no allocation per
 * call once warm). Returns 1 (a batch), 0 (the configured epochs are finished) or -1 (a bad
 * record under on_error: fail, an I/O error, ...; err names file, line, CSV column and why).
 * A bad record is reported before any batch containing it is returned. */
int data_next_batch(DataReader *r, Batch *b, char *err, size_t errlen);
void data_close(DataReader *r);

/* One row as training would lay it into a batch (after overflow, before packing), for
 * `lorafit prepare`. Pointers are reader-owned and valid until the next call. */
typedef struct DataRow {
    const int32_t *ids, *labels; /* (len) labels -100 where there is no loss */
    int len;
    int record_len;         /* tokens of the whole record (> len when truncated or split) */
    bool first_piece;       /* the record's first (or only) row */
    bool last_piece;        /* its last row */
    int n_prompt, n_chosen; /* preference data: ids = prompt ++ chosen ++ rejected, whole
                               (uncut; len = record_len); 0 otherwise */
    const char *file;       /* where the record is */
    uint64_t line;          /* its line (a .json file: its index + 1) */
} DataRow;
/* The next row instead of a batch: 1, 0 (finished), -1 with err. Do not mix with
 * data_next_batch on one reader. */
int data_next_row(DataReader *r, DataRow *row, char *err, size_t errlen);

/* Cursor: the exact position of the stream. data_cursor_size() is the size of the blob for the
 * current state (it changes with the shuffle buffer fill). data_cursor_save() needs
 * size >= data_cursor_size(r). data_cursor_restore() expects a reader freshly opened with the
 * same options; afterwards it yields exactly the batches the saved reader would have. */
size_t data_cursor_size(const DataReader *r);
int data_cursor_save(const DataReader *r, void *blob, size_t size, char *err, size_t errlen);
int data_cursor_restore(DataReader *r, const void *blob, size_t size, char *err, size_t errlen);

/* Skipped records: bad records (on_error: skip) and rows dropped by overflow: drop, counted
 * once per record (during the first epoch). The report is one line per file with skips, e.g.
 * "data/a.jsonl: 3 bad, 1 too long\n"; returns the length written (truncated to outlen). */
int data_skip_report(const DataReader *r, char *out, size_t outlen);
int64_t data_skipped(const DataReader *r);
/* The two kinds apart: bad records skipped, records dropped as too long. */
void data_skip_counts(const DataReader *r, int64_t *bad, int64_t *dropped);

/* The exact number of micro-batches a run with these options yields over all epochs: a dry
 * pass with a fresh reader. -1 with err when epochs == 0 or the data is bad. */
int64_t data_count_batches(const DataOptions *o, char *err, size_t errlen);

/* A data file and how many records it holds (non-blank JSONL lines, CSV records after the
 * header, elements of a .json array; good or bad), counted without tokenizing. */
typedef struct DataFileRecords {
    char *path;
    int64_t records;
} DataFileRecords;
/* The files o->paths expand to (globs in sorted order), each with its record count: *out
 * (n_out entries, freed with data_file_records_free). -1 with err when a path matches
 * nothing or a file cannot be read. */
int data_count_records(const DataOptions *o, DataFileRecords **out, int *n_out, char *err,
                       size_t errlen);
void data_file_records_free(DataFileRecords *f, int n);

#endif
