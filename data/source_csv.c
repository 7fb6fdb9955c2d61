/* data/source_csv.c — CSV data files, streamed: libcsv fed one line at a time.
 *
 * A record always starts at a line start, so its byte offset and line number are known —
 * that is what makes a record's Locator, and hence the cursor, possible. A quoted cell may
 * span lines; a record is complete when libcsv reports its end. The header row is required
 * and read when a file is opened (also when a restore seeks into the file). For the tokens
 * format only the input and labels columns are kept; for the text formats every cell is,
 * and a record becomes an object of its columns. */
#include "data/source.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

void source_csv_free_names(Source *s) {
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

void source_csv_reset(Source *s) {
    if (s->csv_ready) csv_free(&s->csv);
    csv_init(&s->csv, CSV_STRICT | CSV_STRICT_FINI);
    s->csv_ready = true;
    s->in_record = false;
    s->field = s->n_fields = s->records_ended = 0;
    s->record_bytes = 0;
}

/* Feeds CSV lines until one record ends. 1: a record (fields in cells, start in *loc);
 * 0: end of file; -1: I/O error (err); -2: malformed CSV (why). */
int source_csv_next(Source *s, Locator *loc, char *err, size_t errlen, char *why, size_t whylen) {
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
                source_csv_reset(s);
                return -2;
            }
            return 1;
        }
        if (!s->in_record) {
            if (source_blank_line(p, n)) {
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
            source_csv_reset(s);
            return -2;
        }
        if (s->cell_input.oom || s->cell_labels.oom) {
            snprintf(err, errlen, "out of memory reading a CSV cell");
            return -1;
        }
        if (s->records_ended > 1) {
            snprintf(why, whylen, "several records on one line (CR-only line endings?)");
            source_csv_reset(s);
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
            source_csv_reset(s);
            return -2;
        }
    }
}

int source_csv_open(Source *s, const char *path, char *err, size_t errlen) {
    source_csv_reset(s);
    s->header_done = false;
    source_csv_free_names(s);
    s->col_input = s->col_labels = -1;
    Locator loc;
    char why[256];
    int rc = source_csv_next(s, &loc, err, errlen, why, sizeof why);
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

int source_csv_row(Source *s, Row *row, char *why, size_t whylen) {
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

json_t *source_csv_object(Source *s, char *why, size_t whylen) {
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
