/* data/source.c — validated records from a list of files, in file order.
 *
 * JSONL: one json_loadb per non-blank line. CSV: libcsv fed one line at a time (streamed),
 * so a record always starts at a line start and its byte offset and line number are known —
 * that is what makes a record's Locator, and hence the cursor, possible. A quoted cell may
 * span lines; a record is complete when libcsv reports its end. The header row is required
 * and read when a CSV file is opened (also when a restore seeks into the file).
 *
 * `.json` files (one JSON array of objects, as Hugging Face datasets loads them) are read whole
 * when opened; a record's locator is its index in the array (offset = index, line = index+1).
 * Text formats (data.format other than tokens) turn each record object — a CSV row becomes an
 * object of its columns as strings, a messages column parsed as JSON — into a row with
 * data/text.c. With data.format auto the first record of the first file decides the format
 * when the source is created.
 *
 * Tokenizing is the expensive part of a text record, so text records are read ahead in
 * groups of PREFETCH (the raw objects, in file order, on the calling thread) and tokenized on
 * OpenMP threads (each with its own TextState); they are then served strictly in file order,
 * so the rows, the skip counts and every error are the same as one record at a time. The
 * source position reported for the cursor is that of the last record served, never of the
 * read-ahead.
 *
 * Bad records: on_error fail returns -1 with "file:line: [column 'x': ]why (fix the row or
 * set data.on_error: skip)"; skip counts the record (while counting is on) and goes on. */
#include "data/internal.h"

#include <csv.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static int add_name(Source *s, const char *f, size_t len) {
    char **nn = realloc(s->col_names, (size_t)(s->n_names + 1) * sizeof *nn);
    if (!nn) return -1;
    s->col_names = nn;
    Cell *nc = realloc(s->cells, (size_t)(s->n_names + 1) * sizeof *nc);
    if (!nc) return -1;
    s->cells = nc;
    memset(&s->cells[s->n_names], 0, sizeof *s->cells);
    if (!(s->col_names[s->n_names] = strndup(f, len))) return -1;
    s->n_names++;
    return 0;
}

static void free_names(Source *s) {
    for (int i = 0; i < s->n_names; i++) {
        free(s->col_names[i]);
        free(s->cells[i].s);
    }
    free(s->col_names);
    free(s->cells);
    s->col_names = NULL;
    s->cells = NULL;
    s->n_names = 0;
}

static void cell_set(Cell *c, const void *s, size_t n) {
    if (n + 1 > c->cap) {
        size_t nc = c->cap ? c->cap : 4096;
        while (nc < n + 1) nc *= 2;
        char *ns = realloc(c->s, nc);
        if (!ns) {
            c->oom = true;
            return;
        }
        c->s = ns;
        c->cap = nc;
    }
    if (n) memcpy(c->s, s, n);
    c->s[n] = '\0';
    c->n = n;
}

static void on_field(void *data, size_t len, void *ctx) {
    Source *s = ctx;
    const char *f = data ? data : "";
    if (!s->header_done) {
        if (s->field == 0 && len >= 3 && memcmp(f, "\xEF\xBB\xBF", 3) == 0) f += 3, len -= 3;
        if (add_name(s, f, len) != 0) s->cell_input.oom = true;
        if (strlen(s->input_field) == len && memcmp(f, s->input_field, len) == 0)
            s->col_input = s->field;
        if (s->labels_field && strlen(s->labels_field) == len &&
            memcmp(f, s->labels_field, len) == 0)
            s->col_labels = s->field;
    } else if (s->format != DATA_FORMAT_TOKENS) {
        if (s->field < s->n_names) cell_set(&s->cells[s->field], f, len);
        if (s->field < s->n_names && s->cells[s->field].oom) s->cell_input.oom = true;
    } else if (s->field == s->col_input) {
        cell_set(&s->cell_input, f, len);
    } else if (s->field == s->col_labels) {
        cell_set(&s->cell_labels, f, len);
    }
    s->field++;
}

static void on_record(int c, void *ctx) {
    (void)c;
    Source *s = ctx;
    s->records_ended++;
    s->n_fields = s->field;
    s->field = 0;
}

Source *source_create(char **files, int n_files, const DataOptions *o, int64_t *bad_counts,
                      char *err, size_t errlen) {
    Source *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->files = files;
    s->n_files = n_files;
    s->o = o;
    s->format = o->format;
    s->input_field = o->input_field;
    s->labels_field = o->labels_field;
    s->vocab_size = o->vocab_size;
    s->on_error = o->on_error;
    s->bad = bad_counts;
    s->counting = true;
    if (text_state_init(&s->ts) != 0) {
        snprintf(err, errlen, "out of memory");
        free(s);
        return NULL;
    }
    return s;
}

static void close_file(Source *s) {
    if (s->open && !s->is_json) linereader_close(&s->lr);
    json_decref(s->array);
    s->array = NULL;
    free_names(s);
    if (s->csv_ready) csv_free(&s->csv);
    s->csv_ready = false;
    s->open = false;
}

void source_free(Source *s) {
    if (!s) return;
    close_file(s);
    free(s->cell_input.s);
    free(s->cell_labels.s);
    free(s->ids.v);
    free(s->labels.v);
    text_state_free(&s->ts);
    for (int i = 0; i < s->n_tss; i++) text_state_free(&s->tss[i]);
    free(s->tss);
    if (s->ahead) {
        for (int i = 0; i < PREFETCH; i++) {
            json_decref(s->ahead[i].obj);
            row_free(&s->ahead[i].row);
        }
        free(s->ahead);
    }
    free(s);
}

void source_set_counting(Source *s, bool on) {
    s->counting = on;
}

static void csv_reset(Source *s) {
    if (s->csv_ready) csv_free(&s->csv);
    csv_init(&s->csv, CSV_STRICT | CSV_STRICT_FINI);
    s->csv_ready = true;
    s->in_record = false;
    s->field = s->n_fields = s->records_ended = 0;
    s->record_bytes = 0;
}

static bool blank(const char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n') return false;
    return true;
}

/* Feeds CSV lines until one record ends. 1: a record (fields in cells, start in *loc);
 * 0: end of file; -1: I/O error (err); -2: malformed CSV (why). */
static int csv_next_record(Source *s, Locator *loc, char *err, size_t errlen, char *why,
                           size_t whylen) {
    for (;;) {
        const char *p;
        size_t n;
        uint64_t off;
        int rc = linereader_next(&s->lr, &p, &n, &off, err, errlen);
        if (rc < 0) return -1;
        if (rc == 0) {
            s->records_ended = 0;
            if (!s->in_record) return 0;
            s->in_record = false;
            if (csv_fini(&s->csv, on_field, on_record, s) != 0 || s->records_ended == 0) {
                snprintf(why, whylen, "unterminated quoted field at end of file");
                csv_reset(s);
                return -2;
            }
            return 1;
        }
        if (!s->in_record) {
            if (blank(p, n)) {
                s->line++;
                s->next_offset = off + n;
                continue;
            }
            loc->offset = off;
            loc->line = s->line + 1;
            s->record_bytes = 0;
        }
        s->line++;
        s->next_offset = off + n;
        s->records_ended = 0;
        s->record_bytes += n;
        if (csv_parse(&s->csv, p, n, on_field, on_record, s) != n) {
            snprintf(why, whylen, "malformed CSV: %s", csv_strerror(csv_error(&s->csv)));
            csv_reset(s);
            return -2;
        }
        if (s->cell_input.oom || s->cell_labels.oom) {
            snprintf(err, errlen, "out of memory reading a CSV cell");
            return -1;
        }
        if (s->records_ended > 1) {
            snprintf(why, whylen, "several records on one line (CR-only line endings?)");
            csv_reset(s);
            return -2;
        }
        if (s->records_ended == 1) {
            s->in_record = false;
            return 1;
        }
        s->in_record = true;
        if (s->record_bytes > MAX_CSV_RECORD) {
            snprintf(why, whylen, "record longer than %zu MB (unterminated quote?)",
                     MAX_CSV_RECORD >> 20);
            csv_reset(s);
            return -2;
        }
    }
}

static bool has_suffix(const char *p, const char *suf) {
    size_t n = strlen(p), m = strlen(suf);
    return n >= m && strcmp(p + n - m, suf) == 0;
}

/* A .json file: the whole array, read through zlib (so .json.gz works too). */
static int open_json(Source *s, const char *path, char *err, size_t errlen) {
    gzFile gz = gzopen(path, "rb");
    if (!gz) {
        snprintf(err, errlen, "%s: cannot open", path);
        return -1;
    }
    size_t n = 0, cap = 1 << 20;
    char *buf = malloc(cap);
    int got = 0;
    while (buf && (got = gzread(gz, buf + n, (unsigned)(cap - n))) > 0) {
        n += (size_t)got;
        if (n == cap) {
            char *nb = cap < ((size_t)1 << 34) ? realloc(buf, cap * 2) : NULL;
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    gzclose(gz);
    if (!buf || got < 0) {
        snprintf(err, errlen, "%s: %s", path, buf ? "read error" : "out of memory");
        free(buf);
        return -1;
    }
    json_error_t jerr;
    s->array = json_loadb(buf, n, 0, &jerr);
    free(buf);
    if (!s->array) {
        snprintf(err, errlen, "%s:%d:%d: invalid JSON: %s", path, jerr.line, jerr.column,
                 jerr.text);
        return -1;
    }
    if (!json_is_array(s->array)) {
        snprintf(err, errlen, "%s: a .json data file must hold one array of record objects", path);
        json_decref(s->array);
        s->array = NULL;
        return -1;
    }
    s->is_json = true;
    s->open = true;
    s->json_index = 0;
    return 0;
}

static int open_file(Source *s, char *err, size_t errlen) {
    const char *path = s->files[s->file];
    s->line = 0;
    s->next_offset = 0;
    s->is_json = has_suffix(path, ".json") || has_suffix(path, ".json.gz");
    if (s->is_json) return open_json(s, path, err, errlen);
    if (linereader_open(&s->lr, path, err, errlen) != 0) return -1;
    s->open = true;
    size_t pl = strlen(path);
    s->is_csv = (pl >= 4 && strcmp(path + pl - 4, ".csv") == 0) ||
                (pl >= 7 && strcmp(path + pl - 7, ".csv.gz") == 0);
    if (!s->is_csv) return 0;
    csv_reset(s);
    s->header_done = false;
    free_names(s);
    s->col_input = s->col_labels = -1;
    Locator loc;
    char why[256];
    int rc = csv_next_record(s, &loc, err, errlen, why, sizeof why);
    if (rc == -2) snprintf(err, errlen, "%s:1: CSV header: %s", path, why);
    if (rc == 0) snprintf(err, errlen, "%s: empty CSV file (a header row is required)", path);
    if (rc != 1) return -1;
    s->header_done = true;
    s->n_cols = s->n_fields;
    if (s->cell_input.oom) {
        snprintf(err, errlen, "%s: out of memory reading the CSV header", path);
        return -1;
    }
    if (s->col_input < 0 && s->format == DATA_FORMAT_TOKENS) {
        snprintf(err, errlen, "%s:%llu: CSV header has no column '%s' (set data.input_field)", path,
                 (unsigned long long)loc.line, s->input_field);
        return -1;
    }
    return 0;
}

static int csv_row(Source *s, Row *row, char *why, size_t whylen) {
    char cwhy[200];
    if (s->n_fields != s->n_cols) {
        snprintf(why, whylen, "row has %d fields but the header has %d", s->n_fields, s->n_cols);
        return -1;
    }
    if (ids_parse_text(s->cell_input.s, s->cell_input.n, &s->ids, cwhy, sizeof cwhy) != 0) {
        snprintf(why, whylen, "column '%s' (%d): %s", s->input_field, s->col_input + 1, cwhy);
        return -1;
    }
    bool has_labels = s->col_labels >= 0;
    if (has_labels &&
        ids_parse_text(s->cell_labels.s, s->cell_labels.n, &s->labels, cwhy, sizeof cwhy) != 0) {
        snprintf(why, whylen, "column '%s' (%d): %s", s->labels_field, s->col_labels + 1, cwhy);
        return -1;
    }
    if (row_set(row, s->ids.v, s->ids.n, has_labels ? s->labels.v : NULL, s->labels.n,
                s->input_field, s->labels_field, cwhy, sizeof cwhy) != 0) {
        snprintf(why, whylen, "column '%s' (%d): %s", has_labels ? s->labels_field : s->input_field,
                 (has_labels ? s->col_labels : s->col_input) + 1, cwhy);
        return -1;
    }
    if (row_validate(row, s->vocab_size, s->input_field, s->labels_field, cwhy, sizeof cwhy)) {
        snprintf(why, whylen, "%s", cwhy);
        return -1;
    }
    return 0;
}

/* A CSV record of a text format as an object: every column a string, the messages column
 * parsed as JSON. NULL with `why`. */
static json_t *csv_object(Source *s, char *why, size_t whylen) {
    if (s->n_fields != s->n_cols) {
        snprintf(why, whylen, "row has %d fields but the header has %d", s->n_fields, s->n_cols);
        return NULL;
    }
    json_t *obj = json_object();
    for (int i = 0; obj && i < s->n_names; i++) {
        const Cell *c = &s->cells[i];
        json_t *v;
        if (s->format == DATA_FORMAT_CHAT && s->o->messages_field &&
            strcmp(s->col_names[i], s->o->messages_field) == 0) {
            json_error_t jerr;
            v = json_loadb(c->s ? c->s : "", c->n, JSON_DECODE_ANY, &jerr);
            if (!v) {
                snprintf(why, whylen, "column '%s' (%d): invalid JSON at column %d: %s",
                         s->col_names[i], i + 1, jerr.column, jerr.text);
                json_decref(obj);
                return NULL;
            }
        } else {
            v = json_stringn_nocheck(c->s ? c->s : "", c->n);
        }
        if (!v || json_object_set_new(obj, s->col_names[i], v) != 0) {
            json_decref(obj);
            obj = NULL;
        }
    }
    if (!obj) snprintf(why, whylen, "out of memory");
    return obj;
}

/* The record object into row, by format, validated. 0, or -1 with `why`. */
static int object_row(const Source *s, TextState *ts, const json_t *obj, Row *row, char *why,
                      size_t whylen) {
    int rc = s->format == DATA_FORMAT_TOKENS
                 ? row_from_json_object(obj, s->input_field, s->labels_field, row, why, whylen)
                 : text_row(s->o, s->format, ts, obj, row, why, whylen);
    if (rc != 0) return -1;
    const char *in = s->format == DATA_FORMAT_TOKENS ? s->input_field : "tokenized record";
    return row_validate(row, s->vocab_size, in, s->labels_field, why, whylen);
}

/* A text-format record as an object (*obj, owned by the caller): 1, 0 end of file, -1 error
 * (err), -2 bad record (why, loc). */
static int read_raw(Source *s, json_t **obj, Locator *loc, char *err, size_t errlen, char *why,
                    size_t whylen) {
    loc->file = (uint32_t)s->file;
    *obj = NULL;
    if (s->is_json) {
        if (s->json_index >= json_array_size(s->array)) return 0;
        size_t i = s->json_index++;
        loc->offset = i;
        loc->line = i + 1;
        s->line = i + 1;
        s->next_offset = i + 1;
        *obj = json_incref(json_array_get(s->array, i));
        return 1;
    }
    if (s->is_csv) {
        int rc = csv_next_record(s, loc, err, errlen, why, whylen);
        if (rc != 1) return rc;
        return (*obj = csv_object(s, why, whylen)) ? 1 : -2;
    }
    for (;;) {
        const char *p;
        size_t n;
        uint64_t off;
        int rc = linereader_next(&s->lr, &p, &n, &off, err, errlen);
        if (rc <= 0) return rc;
        s->line++;
        s->next_offset = off + n;
        if (blank(p, n)) continue;
        loc->offset = off;
        loc->line = s->line;
        return (*obj = json_object_from_line(p, n, why, whylen)) ? 1 : -2;
    }
}

/* 1 a good record, 0 end of file, -1 error (err), -2 bad record (why, loc). */
static int read_record(Source *s, Row *row, Locator *loc, char *err, size_t errlen, char *why,
                       size_t whylen) {
    loc->file = (uint32_t)s->file;
    if (s->format != DATA_FORMAT_TOKENS || s->is_json) {
        json_t *obj;
        int rc = read_raw(s, &obj, loc, err, errlen, why, whylen);
        if (rc == 1 && object_row(s, &s->ts, obj, row, why, whylen) != 0) rc = -2;
        json_decref(obj);
        return rc;
    }
    if (s->is_csv) {
        int rc = csv_next_record(s, loc, err, errlen, why, whylen);
        if (rc != 1) return rc;
        return csv_row(s, row, why, whylen) == 0 ? 1 : -2;
    }
    for (;;) {
        const char *p;
        size_t n;
        uint64_t off;
        int rc = linereader_next(&s->lr, &p, &n, &off, err, errlen);
        if (rc <= 0) return rc;
        s->line++;
        s->next_offset = off + n;
        if (blank(p, n)) continue;
        loc->offset = off;
        loc->line = s->line;
        if (row_from_json_line(p, n, s->input_field, s->labels_field, row, why, whylen) != 0)
            return -2;
        if (row_validate(row, s->vocab_size, s->input_field, s->labels_field, why, whylen))
            return -2;
        return 1;
    }
}

/* "file:line" or, in a .json file, "file: record N". */
static void where(const Source *s, uint32_t file, uint64_t line, char *out, size_t len) {
    const char *path = s->files[file];
    if (has_suffix(path, ".json") || has_suffix(path, ".json.gz"))
        snprintf(out, len, "%s: record %llu", path, (unsigned long long)line);
    else
        snprintf(out, len, "%s:%llu", path, (unsigned long long)line);
}

/* The first record of the current (open) file as an object, for detect_format: 1 (*probe),
 * 0 no record in the file, -1 error. A first line that is not JSON probes as an empty object
 * (the format then falls back to tokens, whose per-record errors and on_error apply). */
static int probe_file(Source *s, json_t **probe, char *err, size_t errlen) {
    *probe = NULL;
    if (s->is_json) {
        if (json_array_size(s->array) == 0) return 0;
        *probe = json_incref(json_array_get(s->array, 0));
        return 1;
    }
    if (s->is_csv) {
        *probe = json_object();
        for (int i = 0; *probe && i < s->n_names; i++)
            json_object_set_new(*probe, s->col_names[i], json_null());
        return *probe ? 1 : -1;
    }
    for (;;) {
        const char *p;
        size_t n;
        uint64_t off;
        int rc = linereader_next(&s->lr, &p, &n, &off, err, errlen);
        if (rc <= 0) return rc;
        if (blank(p, n)) continue;
        char why[300];
        *probe = json_object_from_line(p, n, why, sizeof why);
        if (!*probe) *probe = json_object();
        return *probe ? 1 : -1;
    }
}

/* data.format auto: the first record of the data decides (a CSV file: its header). No
 * record at all, or a first record that is not a JSON object: tokens, as before text formats
 * existed (the usual errors follow). */
static int detect_format(Source *s, char *err, size_t errlen) {
    s->format = DATA_FORMAT_TEXT; /* a CSV header without input_ids is no error yet */
    json_t *probe = NULL;
    int rc = 0;
    for (s->file = 0; s->file < s->n_files && rc == 0; s->file++) {
        if (open_file(s, err, errlen) != 0) {
            s->file = 0;
            return -1;
        }
        rc = probe_file(s, &probe, err, errlen);
        close_file(s);
        if (rc < 0) {
            s->file = 0;
            return -1;
        }
        if (rc == 1) break;
    }
    uint32_t at = (uint32_t)(s->file < s->n_files ? s->file : 0);
    s->file = 0;
    s->line = 0;
    if (rc == 0 || json_object_size(probe) == 0) {
        json_decref(probe);
        s->format = DATA_FORMAT_TOKENS;
        return 0;
    }
    DataFormat f = text_detect_format(probe, s->o);
    json_decref(probe);
    if (f == DATA_FORMAT_AUTO) {
        snprintf(err, errlen,
                 "%s: data.format auto: the first record has none of the fields '%s', '%s', "
                 "'instruction' + 'output', '%s' + '%s', '%s' (set data.format and the field "
                 "names)",
                 s->files[at], s->o->input_field, s->o->messages_field ? s->o->messages_field : "",
                 s->o->prompt_field ? s->o->prompt_field : "",
                 s->o->completion_field ? s->o->completion_field : "",
                 s->o->text_field ? s->o->text_field : "");
        return -1;
    }
    s->format = f;
    return 0;
}

DataFormat source_format(const Source *s) {
    return s->format;
}

int source_resolve_format(Source *s, bool check, char *err, size_t errlen) {
    if (s->format == DATA_FORMAT_AUTO && detect_format(s, err, errlen) != 0) return -1;
    return check ? text_check_options(s->o, s->format, err, errlen) : 0;
}

static void drop_ahead(Source *s) {
    for (int i = s->ahead_at; i < s->ahead_n; i++) {
        json_decref(s->ahead[i].obj);
        s->ahead[i].obj = NULL;
    }
    s->ahead_n = s->ahead_at = 0;
}

/* Tokenizes ahead[0..ahead_n) on up to MAX_TOKENIZERS threads; frees the objects. */
static void tokenize_ahead(Source *s) {
    int nt = omp_get_max_threads();
    if (nt > MAX_TOKENIZERS) nt = MAX_TOKENIZERS;
    if (nt > s->ahead_n) nt = s->ahead_n;
    if (nt > 1 && s->n_tss < nt) {
        TextState *grown = realloc(s->tss, (size_t)nt * sizeof *grown);
        if (grown) {
            s->tss = grown;
            while (s->n_tss < nt && text_state_init(&s->tss[s->n_tss]) == 0) s->n_tss++;
        }
        if (s->n_tss < nt) nt = s->n_tss > 0 ? s->n_tss : 1;
    }
    if (nt < 1) nt = 1;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (int i = 0; i < s->ahead_n; i++) {
        Ahead *a = &s->ahead[i];
        int t = omp_get_thread_num();
        TextState *ts = t == 0 ? &s->ts : &s->tss[t];
        if (a->rc == 1 && object_row(s, ts, a->obj, &a->row, a->why, sizeof a->why) != 0)
            a->rc = -2;
        json_decref(a->obj);
        a->obj = NULL;
    }
}

/* Reads up to PREFETCH text records ahead (in file order) and tokenizes them. 0 or -1. */
static int fill_ahead(Source *s, char *err, size_t errlen) {
    s->ahead_n = s->ahead_at = 0;
    if (!s->ahead && !(s->ahead = calloc(PREFETCH, sizeof *s->ahead))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    while (s->ahead_n < PREFETCH && s->file < s->n_files) {
        if (!s->open && open_file(s, err, errlen) != 0) break;
        Ahead *a = &s->ahead[s->ahead_n];
        int rc = read_raw(s, &a->obj, &a->loc, err, errlen, a->why, sizeof a->why);
        if (rc == -1) break;
        if (rc == 0) {
            close_file(s);
            s->file++;
            continue;
        }
        a->rc = rc;
        a->file = (uint32_t)s->file;
        a->offset = s->next_offset;
        a->line = s->line;
        s->ahead_n++;
    }
    bool failed = s->ahead_n < PREFETCH && s->file < s->n_files;
    if (failed) { /* an I/O error or a file that does not open: the run stops here */
        drop_ahead(s);
        return -1;
    }
    tokenize_ahead(s);
    return 0;
}

static int next_ahead(Source *s, Row *row, char *err, size_t errlen) {
    for (;;) {
        if (s->ahead_at == s->ahead_n) {
            if (fill_ahead(s, err, errlen) != 0) return -1;
            if (s->ahead_n == 0) return 0;
        }
        Ahead *a = &s->ahead[s->ahead_at++];
        s->pos_file = a->file;
        s->pos_offset = a->offset;
        s->pos_line = a->line;
        if (a->rc == 1) {
            Row t = *row;
            *row = a->row;
            a->row = t;
            row->loc = a->loc;
            return 1;
        }
        if (s->on_error == DATA_ON_ERROR_FAIL) {
            char at[300];
            where(s, a->loc.file, a->loc.line, at, sizeof at);
            snprintf(err, errlen, "%s: %s (fix the row or set data.on_error: skip)", at, a->why);
            return -1;
        }
        if (s->counting) s->bad[a->loc.file]++;
    }
}

int source_next(Source *s, Row *row, char *err, size_t errlen) {
    if (s->format != DATA_FORMAT_TOKENS) return next_ahead(s, row, err, errlen);
    for (;;) {
        if (s->file >= s->n_files) return 0;
        if (!s->open && open_file(s, err, errlen) != 0) return -1;
        char why[400];
        Locator loc;
        int rc = read_record(s, row, &loc, err, errlen, why, sizeof why);
        if (rc == 1) {
            row->loc = loc;
            return 1;
        }
        if (rc == 0) {
            close_file(s);
            s->file++;
            continue;
        }
        if (rc == -1) return -1;
        if (s->on_error == DATA_ON_ERROR_FAIL) {
            char at[300];
            where(s, (uint32_t)s->file, loc.line, at, sizeof at);
            snprintf(err, errlen, "%s: %s (fix the row or set data.on_error: skip)", at, why);
            return -1;
        }
        if (s->counting) s->bad[s->file]++;
    }
}

void source_rewind(Source *s) {
    drop_ahead(s);
    close_file(s);
    s->file = 0;
    s->line = 0;
    s->next_offset = 0;
}

void source_position(const Source *s, uint32_t *file, uint64_t *offset, uint64_t *line) {
    if (s->ahead_at < s->ahead_n) { /* records read ahead are not consumed yet */
        *file = s->pos_file;
        *offset = s->pos_offset;
        *line = s->pos_line;
        return;
    }
    *file = (uint32_t)s->file;
    *offset = s->open ? s->next_offset : 0; /* .json: the next index + 1 */
    *line = s->open ? s->line : 0;
}

int source_seek(Source *s, uint32_t file, uint64_t offset, uint64_t line, char *err,
                size_t errlen) {
    drop_ahead(s);
    if (file >= (uint32_t)s->n_files) {
        close_file(s);
        s->file = s->n_files;
        return 0;
    }
    if (offset == 0 || !s->open || s->file != (int)file) {
        /* offset 0 means "file not started": a fresh open reads a CSV header again */
        close_file(s);
        s->file = (int)file;
        if (open_file(s, err, errlen) != 0) return -1;
        if (offset == 0) return 0;
    }
    if (s->is_json) {
        /* offset = index + 1 of the last record consumed (source_position), or a locator's
           index when read_at seeks to a record: the caller says which through line */
        s->json_index = (size_t)line;
        s->line = line;
        s->next_offset = line;
        return 0;
    }
    if (linereader_seek(&s->lr, offset, err, errlen) != 0) return -1;
    if (s->is_csv) {
        bool hd = s->header_done;
        int ci = s->col_input, cl = s->col_labels, nc = s->n_cols;
        csv_reset(s);
        s->header_done = hd, s->col_input = ci, s->col_labels = cl, s->n_cols = nc;
    }
    s->line = line;
    s->next_offset = offset;
    return 0;
}

int source_read_at(Source *s, const Locator *loc, Row *row, char *err, size_t errlen) {
    if (loc->file >= (uint32_t)s->n_files || loc->line == 0) {
        snprintf(err, errlen, "data cursor: invalid record locator");
        return -1;
    }
    if (source_seek(s, loc->file, loc->offset, loc->line - 1, err, errlen) != 0) return -1;
    char why[400];
    Locator got;
    int rc = read_record(s, row, &got, err, errlen, why, sizeof why);
    if (rc == -1) return -1;
    if (rc != 1 || got.offset != loc->offset) {
        char at[300];
        where(s, loc->file, loc->line, at, sizeof at);
        snprintf(err, errlen,
                 "%s: data cursor: the record saved at this position is no longer there "
                 "(%s); the file changed since the checkpoint",
                 at, rc == -2 ? why : "no record");
        return -1;
    }
    row->loc = *loc;
    return 0;
}
