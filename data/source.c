/* data/source.c — validated records from a list of files, in file order.
 *
 * JSONL: one json_loadb per non-blank line; a record's locator is its byte offset and line.
 * `.json` files (one JSON array of objects, as Hugging Face datasets loads them) are read whole
 * when opened; a record's locator is its index in the array (offset = index, line = index+1).
 * CSV files are parsed by source_csv.c. Text formats (data.format other than tokens) turn each
 * record object — a CSV row becomes an object of its columns as strings, a messages column
 * parsed as JSON — into a row with data/text.c, read ahead and tokenized on threads by
 * source_ahead.c; with data.format auto the first record of the first file decides the format
 * when the source is created.
 *
 * Bad records: on_error fail returns -1 with "file:line: [column 'x': ]why (fix the row or
 * set data.on_error: skip)"; skip counts the record (while counting is on) and goes on. */
#include "data/source.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

void source_close_file(Source *s) {
    if (s->open && !s->is_json) linereader_close(&s->lr);
    json_decref(s->array);
    s->array = NULL;
    source_csv_free_names(s);
    if (s->csv_ready) csv_free(&s->csv);
    s->csv_ready = false;
    s->open = false;
}

void source_free(Source *s) {
    if (!s) return;
    source_close_file(s);
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

bool source_blank_line(const char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n') return false;
    return true;
}

int source_next_line(Source *s, const char **p, size_t *n, uint64_t *off, char *err,
                     size_t errlen) {
    for (;;) {
        int rc = linereader_next(&s->lr, p, n, off, err, errlen);
        if (rc <= 0) return rc;
        s->line++;
        s->next_offset = *off + *n;
        if (!source_blank_line(*p, *n)) return 1;
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

int source_open_file(Source *s, char *err, size_t errlen) {
    const char *path = s->files[s->file];
    s->line = 0;
    s->next_offset = 0;
    s->is_json = has_suffix(path, ".json") || has_suffix(path, ".json.gz");
    if (s->is_json) return open_json(s, path, err, errlen);
    if (linereader_open(&s->lr, path, err, errlen) != 0) return -1;
    s->open = true;
    s->is_csv = has_suffix(path, ".csv") || has_suffix(path, ".csv.gz");
    return s->is_csv ? source_csv_open(s, path, err, errlen) : 0;
}

/* The record object into row, by format, validated. 0, or -1 with `why`. */
int source_object_row(const Source *s, TextState *ts, const json_t *obj, Row *row, char *why,
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
int source_read_raw(Source *s, json_t **obj, Locator *loc, char *err, size_t errlen, char *why,
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
        int rc = source_csv_next(s, loc, err, errlen, why, whylen);
        if (rc != 1) return rc;
        return (*obj = source_csv_object(s, why, whylen)) ? 1 : -2;
    }
    const char *p;
    size_t n;
    int rc = source_next_line(s, &p, &n, &loc->offset, err, errlen);
    if (rc <= 0) return rc;
    loc->line = s->line;
    return (*obj = json_object_from_line(p, n, why, whylen)) ? 1 : -2;
}

/* 1 a good record, 0 end of file, -1 error (err), -2 bad record (why, loc). */
static int read_record(Source *s, Row *row, Locator *loc, char *err, size_t errlen, char *why,
                       size_t whylen) {
    loc->file = (uint32_t)s->file;
    if (s->format != DATA_FORMAT_TOKENS || s->is_json) {
        json_t *obj;
        int rc = source_read_raw(s, &obj, loc, err, errlen, why, whylen);
        if (rc == 1 && source_object_row(s, &s->ts, obj, row, why, whylen) != 0) rc = -2;
        json_decref(obj);
        return rc;
    }
    if (s->is_csv) {
        int rc = source_csv_next(s, loc, err, errlen, why, whylen);
        if (rc != 1) return rc;
        return source_csv_row(s, row, why, whylen) == 0 ? 1 : -2;
    }
    const char *p;
    size_t n;
    int rc = source_next_line(s, &p, &n, &loc->offset, err, errlen);
    if (rc <= 0) return rc;
    loc->line = s->line;
    if (row_from_json_line(p, n, s->input_field, s->labels_field, row, why, whylen) != 0) return -2;
    if (row_validate(row, s->vocab_size, s->input_field, s->labels_field, why, whylen)) return -2;
    return 1;
}

/* "file:line" or, in a .json file, "file: record N". */
void source_where(const Source *s, uint32_t file, uint64_t line, char *out, size_t len) {
    const char *path = s->files[file];
    if (has_suffix(path, ".json") || has_suffix(path, ".json.gz"))
        snprintf(out, len, "%s: record %llu", path, (unsigned long long)line);
    else
        snprintf(out, len, "%s:%llu", path, (unsigned long long)line);
}

int source_next(Source *s, Row *row, char *err, size_t errlen) {
    if (s->format != DATA_FORMAT_TOKENS) return source_next_ahead(s, row, err, errlen);
    for (;;) {
        if (s->file >= s->n_files) return 0;
        if (!s->open && source_open_file(s, err, errlen) != 0) return -1;
        char why[400];
        Locator loc;
        int rc = read_record(s, row, &loc, err, errlen, why, sizeof why);
        if (rc == 1) {
            row->loc = loc;
            return 1;
        }
        if (rc == 0) {
            source_close_file(s);
            s->file++;
            continue;
        }
        if (rc == -1) return -1;
        if (s->on_error == DATA_ON_ERROR_FAIL) {
            char at[300];
            source_where(s, (uint32_t)s->file, loc.line, at, sizeof at);
            snprintf(err, errlen, "%s: %s (fix the row or set data.on_error: skip)", at, why);
            return -1;
        }
        if (s->counting) s->bad[s->file]++;
    }
}

void source_rewind(Source *s) {
    source_drop_ahead(s);
    source_close_file(s);
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
    source_drop_ahead(s);
    if (file >= (uint32_t)s->n_files) {
        source_close_file(s);
        s->file = s->n_files;
        return 0;
    }
    if (offset == 0 || !s->open || s->file != (int)file) {
        /* offset 0 means "file not started": a fresh open reads a CSV header again */
        source_close_file(s);
        s->file = (int)file;
        if (source_open_file(s, err, errlen) != 0) return -1;
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
        source_csv_reset(s);
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
        source_where(s, loc->file, loc->line, at, sizeof at);
        snprintf(err, errlen,
                 "%s: data cursor: the record saved at this position is no longer there "
                 "(%s); the file changed since the checkpoint",
                 at, rc == -2 ? why : "no record");
        return -1;
    }
    row->loc = *loc;
    return 0;
}

int source_count_records(Source *s, int64_t *records, char *err, size_t errlen) {
    source_rewind(s);
    DataFormat kept = s->format;
    s->format = DATA_FORMAT_TEXT; /* a CSV file needs no particular column to be counted */
    int rc = 0;
    for (int f = 0; f < s->n_files && rc == 0; f++) {
        s->file = f;
        records[f] = 0;
        if (source_open_file(s, err, errlen) != 0) rc = -1;
        while (rc == 0) {
            json_t *obj;
            Locator loc;
            char why[400];
            int got = source_read_raw(s, &obj, &loc, err, errlen, why, sizeof why);
            json_decref(obj);
            if (got == 0) break;
            if (got == -1)
                rc = -1;
            else
                records[f]++; /* a malformed record is still one of the file's records */
        }
        source_close_file(s);
    }
    s->format = kept;
    source_rewind(s);
    return rc;
}
