/* data/source_ahead.c — the text formats' side of a Source: data.format auto, and records
 * read ahead to be tokenized on threads.
 *
 * Tokenizing is the expensive part of a text record, so text records are read ahead in
 * groups of PREFETCH (the raw objects, in file order, on the calling thread) and tokenized on
 * OpenMP threads (each with its own TextState); they are then served strictly in file order,
 * so the rows, the skip counts and every error are the same as one record at a time. The
 * source position reported for the cursor is that of the last record served, never of the
 * read-ahead. */
#include "data/source.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    const char *p;
    size_t n;
    uint64_t off;
    int rc = source_next_line(s, &p, &n, &off, err, errlen);
    if (rc <= 0) return rc;
    char why[300];
    *probe = json_object_from_line(p, n, why, sizeof why);
    if (!*probe) *probe = json_object();
    return *probe ? 1 : -1;
}

/* data.format auto: the first record of the data decides (a CSV file: its header). No
 * record at all, or a first record that is not a JSON object: tokens, as before text formats
 * existed (the usual errors follow). */
static int detect_format(Source *s, char *err, size_t errlen) {
    s->format = DATA_FORMAT_TEXT; /* a CSV header without input_ids is no error yet */
    json_t *probe = NULL;
    int rc = 0;
    for (s->file = 0; s->file < s->n_files && rc == 0; s->file++) {
        if (source_open_file(s, err, errlen) != 0) {
            s->file = 0;
            return -1;
        }
        rc = probe_file(s, &probe, err, errlen);
        source_close_file(s);
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
    if (s->o->preference) s->format = DATA_FORMAT_PREFERENCE; /* its forms are per record */
    if (s->format == DATA_FORMAT_AUTO && detect_format(s, err, errlen) != 0) return -1;
    return check ? text_check_options(s->o, s->format, err, errlen) : 0;
}

void source_drop_ahead(Source *s) {
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
        if (a->rc == 1 && source_object_row(s, ts, a->obj, &a->row, a->why, sizeof a->why) != 0)
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
        if (!s->open && source_open_file(s, err, errlen) != 0) break;
        Ahead *a = &s->ahead[s->ahead_n];
        int rc = source_read_raw(s, &a->obj, &a->loc, err, errlen, a->why, sizeof a->why);
        if (rc == -1) break;
        if (rc == 0) {
            source_close_file(s);
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
        source_drop_ahead(s);
        return -1;
    }
    tokenize_ahead(s);
    return 0;
}

int source_next_ahead(Source *s, Row *row, char *err, size_t errlen) {
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
            source_where(s, a->loc.file, a->loc.line, at, sizeof at);
            snprintf(err, errlen, "%s: %s (fix the row or set data.on_error: skip)", at, a->why);
            return -1;
        }
        if (s->counting) s->bad[a->loc.file]++;
    }
}
