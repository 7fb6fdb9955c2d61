/* data/internal.h — shared by the data/ source files only; NOT part of data/'s API (see data.h).
 *
 * Layers, bottom up:
 *   stream.c  LineReader: a gzip-or-plain byte stream cut into lines, seekable by byte offset;
 *             path expansion (globs) and file fingerprints.
 *   record.c  id lists from JSON / CSV cells, and record validation.
 *   text.c    text records (text, completion, alpaca, chat) tokenized into rows.
 *   source.c  Source: records from a list of files in order, with skip/fail handling.
 *   reader.c  DataReader: shuffle buffer, epochs, overflow, batch layout.
 *   cursor.c  save / restore of the reader state. */
#ifndef LORAFIT_DATA_INTERNAL_H
#define LORAFIT_DATA_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <zlib.h>

#include "data/data.h"
#include "tensor/rng.h"

/* Where a record starts: enough to read it again. */
typedef struct Locator {
    uint32_t file;
    uint64_t offset; /* uncompressed byte offset of the record's first line */
    uint64_t line;   /* 1-based line number of that line */
} Locator;

/* One validated record. Buffers are reused (grown, never shrunk). */
typedef struct Row {
    int32_t *ids;    /* (len) */
    int32_t *labels; /* (len) == ids when the file has no labels */
    int len, cap;
    int n_prompt, n_chosen; /* preference rows (pairs.c): ids = prompt ++ chosen ++
                               rejected, these the first two parts' lengths */
    Locator loc;
    int epoch;
} Row;
int row_reserve(Row *r, int n);
void row_free(Row *r);

/* ---- stream.c ---- */
typedef struct LineReader {
    gzFile gz;
    char *buf; /* (cap) buf[pos..end) not yet returned */
    size_t cap, pos, end;
    uint64_t buf_offset; /* stream offset of buf[0] */
    bool eof;
    const char *path;
} LineReader;
int linereader_open(LineReader *lr, const char *path, char *err, size_t errlen);
/* 1: *line (len bytes, including the '\n' if any) starts at stream offset *offset;
 * 0: end of file; -1: I/O or decompression error. */
int linereader_next(LineReader *lr, const char **line, size_t *len, uint64_t *offset, char *err,
                    size_t errlen);
int linereader_seek(LineReader *lr, uint64_t offset, char *err, size_t errlen);
void linereader_close(LineReader *lr);

/* Expands paths and globs into a sorted-per-pattern list of existing files. */
int data_expand_paths(const char *const *paths, int n_paths, char ***files, int *n_files, char *err,
                      size_t errlen);
typedef struct FileFingerprint {
    uint64_t size;
    uint32_t crc_head; /* CRC-32 of the first min(size, 1 MB) bytes on disk */
    uint32_t crc_tail; /* CRC-32 of the last min(size, 64 KB) bytes on disk */
} FileFingerprint;
int data_file_fingerprint(const char *path, FileFingerprint *fp, char *err, size_t errlen);

/* ---- record.c ---- */
typedef struct IdList {
    int32_t *v; /* (n) */
    int n, cap;
} IdList;
/* A cell: "[1, 2, 3]" or "1 2 3". 0, or -1 with `why` filled. */
int ids_parse_text(const char *s, size_t n, IdList *out, char *why, size_t whylen);
/* One JSONL line into row (ids, labels); 0, or -1 with `why`. */
int row_from_json_line(const char *line, size_t len, const char *input_field,
                       const char *labels_field, Row *row, char *why, size_t whylen);
/* The same from an already parsed object (a .json array element, a CSV row as an object). */
int row_from_json_object(const json_t *obj, const char *input_field, const char *labels_field,
                         Row *row, char *why, size_t whylen);
/* A line as a JSON object, or NULL with `why` (invalid JSON, not an object). */
json_t *json_object_from_line(const char *line, size_t len, char *why, size_t whylen);
/* Copies ids/labels into row (labels NULL => ids) and validates. 0 or -1 with `why`. */
int row_set(Row *row, const int32_t *ids, int n_ids, const int32_t *labels, int n_labels,
            const char *input_field, const char *labels_field, char *why, size_t whylen);
int row_validate(const Row *row, int vocab_size, const char *input_field, const char *labels_field,
                 char *why, size_t whylen);

/* ---- text.c ---- */
/* The format a record's fields suggest (data.format: auto), or DATA_FORMAT_AUTO for none. */
DataFormat text_detect_format(const json_t *obj, const DataOptions *o);
/* Checks that the options carry what format f needs (tokenizer, template, EOS). */
int text_check_options(const DataOptions *o, DataFormat f, char *err, size_t errlen);
/* Per-reader working state of the text formats (one per thread that tokenizes). */
typedef struct TextState {
    TokenizerScratch *scratch;
    TokenizerIds a, b;
} TextState;
int text_state_init(TextState *ts);
void text_state_free(TextState *ts);
/* One record object of format f (not TOKENS) into row: ids and labels (-100 where no loss).
 * 0, or -1 with `why` (a missing field, a wrong type, a template error, ...). */
int text_row(const DataOptions *o, DataFormat f, TextState *ts, const json_t *obj, Row *row,
             char *why, size_t whylen);

/* ---- pairs.c ---- */
/* A preference record (DataOptions.preference) into row: its (prompt, chosen, rejected) ids as
 * TRL tokenizes them. 0, or -1 with `why`. */
int preference_row(const DataOptions *o, TextState *ts, const json_t *obj, Row *row, char *why,
                   size_t whylen);

/* ---- source.c ---- */
typedef struct Source Source;
Source *source_create(char **files, int n_files, const DataOptions *o, int64_t *bad_counts,
                      char *err, size_t errlen);
/* Resolves data.format auto (from the first record); with check, also checks the options the
 * format needs (tokenizer, template). */
int source_resolve_format(Source *s, bool check, char *err, size_t errlen);
DataFormat source_format(const Source *s);
/* Next good record of the pass into row: 1, 0 (all files read), -1 error. */
int source_next(Source *s, Row *row, char *err, size_t errlen);
void source_rewind(Source *s);
void source_set_counting(Source *s, bool on);
/* Position: the next record is searched from (file, offset) with `line` lines consumed. */
void source_position(const Source *s, uint32_t *file, uint64_t *offset, uint64_t *line);
int source_seek(Source *s, uint32_t file, uint64_t offset, uint64_t line, char *err, size_t errlen);
/* Re-reads the record at loc (must be a good record there). */
int source_read_at(Source *s, const Locator *loc, Row *row, char *err, size_t errlen);
/* records[i] = the records file i holds, good or bad, read without tokenizing; rewinds. */
int source_count_records(Source *s, int64_t *records, char *err, size_t errlen);
void source_free(Source *s);

/* ---- reader.c internals used by cursor.c ---- */
struct DataReader {
    DataOptions o; /* paths not kept; input_field / labels_field owned copies */
    char **files;  /* (n_files) owned */
    int n_files;
    FileFingerprint *fps; /* (n_files) taken at open */
    Source *src;
    int64_t *bad;     /* (n_files) bad records skipped */
    int64_t *dropped; /* (n_files) records dropped by overflow: drop */

    Row *pool; /* (pool_cap) shuffle buffer; pool[0..pool_n) hold records */
    int pool_n, pool_cap;
    Rng rng;
    int epoch;          /* epoch the source is reading */
    bool src_done;      /* the source finished this epoch's pass */
    bool finished;      /* all epochs done */
    int64_t epoch_rows; /* records kept (not dropped) this epoch (0 at an epoch end => no usable
                           data) */

    Row cur; /* the record being laid out; pieces start at cur_off */
    bool cur_valid;
    int cur_off;

    Batch batch;
    int32_t *buf;       /* (4*B*T) the batch arrays */
    uint64_t *pair_key; /* preference data: (B) the pairs' keys */
};

#endif
