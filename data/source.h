/* data/source.h — a Source's state, shared by the three files that read it (internal to data/).
 *
 * source.c walks the list of files and keeps the position (JSONL lines, .json arrays, the
 * cursor's seek and re-read); source_csv.c parses CSV files (libcsv fed one line at a time);
 * source_ahead.c decides data.format auto and reads text records ahead to tokenize them on
 * threads. See source.c for what a record, its locator and a bad record are. */
#ifndef LORAFIT_DATA_SOURCE_H
#define LORAFIT_DATA_SOURCE_H

#include "data/internal.h"

#include <csv.h>

#define MAX_CSV_RECORD ((size_t)64 << 20)
#define PREFETCH       64 /* text records read ahead and tokenized together */
#define MAX_TOKENIZERS 8  /* threads tokenizing them */

/* A record read ahead: its object, then (once tokenized) its row or why it is bad. */
typedef struct Ahead {
    json_t *obj;
    Locator loc;
    int rc; /* 1 a good row, -2 a bad record (why) */
    char why[400];
    Row row;
    uint32_t file; /* the source position right after this record */
    uint64_t offset, line;
} Ahead;

typedef struct Cell {
    char *s;
    size_t n, cap;
    bool oom;
} Cell;

struct Source {
    char **files; /* borrowed from the reader */
    int n_files;
    const DataOptions *o; /* the reader's */
    DataFormat format;    /* resolved: never AUTO */
    TextState ts;
    const char *input_field, *labels_field;
    int vocab_size;
    DataOnError on_error;
    int64_t *bad; /* (n_files) borrowed */
    bool counting;

    int file; /* current file; n_files after the pass */
    bool open, is_csv;
    LineReader lr;
    uint64_t line;        /* lines consumed in the current file */
    uint64_t next_offset; /* where the next record is searched from */

    struct csv_parser csv;
    bool csv_ready, header_done, in_record;
    int col_input, col_labels, n_cols, field, n_fields, records_ended;
    size_t record_bytes;
    Cell cell_input, cell_labels;
    IdList ids, labels;
    char **col_names; /* (n_names) CSV header, for the text formats */
    int n_names;
    Cell *cells; /* (n_names) the current CSV record's cells, for the text formats */

    bool is_json;      /* a .json file: array held whole */
    json_t *array;     /* its records */
    size_t json_index; /* next record */

    Ahead *ahead; /* (PREFETCH) text records read ahead; ahead[ahead_at..ahead_n) not served */
    int ahead_n, ahead_at;
    TextState *tss; /* (n_tss) per-thread tokenizing state; tss[0] unused (s->ts serves) */
    int n_tss;
    uint32_t pos_file; /* the position after the last record served from `ahead` */
    uint64_t pos_offset, pos_line;
};

/* ---- source.c ---- */
/* Opens s->files[s->file] (a CSV file's header is read here). 0 or -1 (err). */
int source_open_file(Source *s, char *err, size_t errlen);
void source_close_file(Source *s);
/* A text-format record as an object (*obj, owned by the caller): 1, 0 end of file, -1 error
 * (err), -2 bad record (why, loc). */
int source_read_raw(Source *s, json_t **obj, Locator *loc, char *err, size_t errlen, char *why,
                    size_t whylen);
/* The record object into row, by format, validated. 0, or -1 with `why`. */
int source_object_row(const Source *s, TextState *ts, const json_t *obj, Row *row, char *why,
                      size_t whylen);
/* "file:line" or, in a .json file, "file: record N". */
void source_where(const Source *s, uint32_t file, uint64_t line, char *out, size_t len);
bool source_blank_line(const char *p, size_t n);
/* The next non-blank line of an open JSONL file: 1 (*p, *n, its byte offset *off), 0 at the
 * end, -1 (err). s->line and s->next_offset count what it consumed. */
int source_next_line(Source *s, const char **p, size_t *n, uint64_t *off, char *err, size_t errlen);

/* ---- source_csv.c ---- */
/* The CSV part of opening a file: a fresh parser and the header row. 0 or -1 (err). */
int source_csv_open(Source *s, const char *path, char *err, size_t errlen);
/* A fresh parser (after a seek or a malformed record); the header is kept. */
void source_csv_reset(Source *s);
void source_csv_free_names(Source *s);
/* Feeds CSV lines until one record ends. 1: a record (fields in cells, start in *loc);
 * 0: end of file; -1: I/O error (err); -2: malformed CSV (why). */
int source_csv_next(Source *s, Locator *loc, char *err, size_t errlen, char *why, size_t whylen);
/* The current record of a tokens-format file as a row, validated. 0, or -1 with `why`. */
int source_csv_row(Source *s, Row *row, char *why, size_t whylen);
/* The current record of a text-format file as an object: every column a string, the
 * messages column parsed as JSON. NULL with `why`. */
json_t *source_csv_object(Source *s, char *why, size_t whylen);

/* ---- source_ahead.c ---- */
/* Next good text record, served in file order from the tokenized read-ahead: 1, 0, -1. */
int source_next_ahead(Source *s, Row *row, char *err, size_t errlen);
/* Forgets the records read ahead (a rewind or a seek). */
void source_drop_ahead(Source *s);

#endif
