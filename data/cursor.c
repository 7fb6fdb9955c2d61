/* data/cursor.c — the reader's exact position as a small, self-checking blob.
 *
 * Layout (little-endian):
 *   "LFDC" u32 version u32 total_len u64 options_hash u32 n_files
 *   n_files x { u64 size u32 crc_head u32 crc_tail i64 bad i64 dropped }
 *   u32 epoch u8 flags(src_done, finished, cur_valid) u64 epoch_rows u64 rng[4]
 *   u32 src_file u64 src_offset u64 src_line
 *   u32 cur_file u64 cur_offset u64 cur_line u32 cur_epoch u32 cur_off
 *   u32 pool_n, pool_n x { u32 file u64 offset u64 line }
 * Rows are stored as locators (20 bytes each), not tokens: a restore re-reads them in file
 * order (one forward pass per file, also for .gz) and checks each is still the same good
 * record at the same offset. The per-file size and CRC-32 of the first MB and last 64 KB
 * make a restore against a shortened, extended or rewritten file fail loudly. */
#include "data/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CURSOR_MAGIC   0x4344464cu /* "LFDC" */
#define CURSOR_VERSION 1u
#define HEADER_BYTES   (4 + 4 + 8 + 8 + 4)
#define FILE_BYTES     (8 + 4 + 4 + 8 + 8)
#define STATE_BYTES    (4 + 1 + 8 + 32 + 20 + 20 + 4 + 4 + 4)
#define LOC_BYTES      20

typedef struct Cur {
    unsigned char *p;
    size_t n, at;
    bool bad;
} Cur;

static void put(Cur *c, uint64_t v, int bytes) {
    if (c->at + (size_t)bytes > c->n) {
        c->bad = true;
        return;
    }
    for (int i = 0; i < bytes; i++) c->p[c->at++] = (unsigned char)(v >> (8 * i));
}

static uint64_t get(Cur *c, int bytes) {
    if (c->at + (size_t)bytes > c->n) {
        c->bad = true;
        return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) v |= (uint64_t)c->p[c->at++] << (8 * i);
    return v;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static uint64_t options_hash(const DataReader *r) {
    const DataOptions *o = &r->o;
    int64_t v[] = {r->n_files,
                   o->seq_len,
                   o->batch_size,
                   o->packing,
                   o->overflow,
                   o->shuffle,
                   o->shuffle ? o->shuffle_buffer : 0,
                   o->on_error,
                   o->vocab_size,
                   (int64_t)o->seed,
                   o->epochs,
                   o->format,
                   o->add_eos,
                   o->train_on_prompt};
    uint64_t h = fnv(0xcbf29ce484222325ull, v, sizeof v);
    h = fnv(h, o->input_field, strlen(o->input_field) + 1);
    if (o->labels_field) h = fnv(h, o->labels_field, strlen(o->labels_field) + 1);
    const char *text_fields[] = {o->text_field, o->prompt_field, o->completion_field,
                                 o->messages_field};
    for (int i = 0; i < 4; i++)
        if (o->format != DATA_FORMAT_TOKENS && text_fields[i])
            h = fnv(h, text_fields[i], strlen(text_fields[i]) + 1);
    return h;
}

static void put_loc(Cur *c, const Locator *l) {
    put(c, l->file, 4);
    put(c, l->offset, 8);
    put(c, l->line, 8);
}

static void get_loc(Cur *c, Locator *l) {
    l->file = (uint32_t)get(c, 4);
    l->offset = get(c, 8);
    l->line = get(c, 8);
}

size_t data_cursor_size(const DataReader *r) {
    return HEADER_BYTES + (size_t)r->n_files * FILE_BYTES + STATE_BYTES +
           (size_t)r->pool_n * LOC_BYTES;
}

int data_cursor_save(const DataReader *r, void *blob, size_t size, char *err, size_t errlen) {
    size_t need = data_cursor_size(r);
    if (size < need) {
        snprintf(err, errlen, "data cursor: buffer of %zu bytes, need %zu", size, need);
        return -1;
    }
    Cur c = {blob, need, 0, false};
    put(&c, CURSOR_MAGIC, 4);
    put(&c, CURSOR_VERSION, 4);
    put(&c, need, 8);
    put(&c, options_hash(r), 8);
    put(&c, (uint64_t)r->n_files, 4);
    for (int i = 0; i < r->n_files; i++) {
        put(&c, r->fps[i].size, 8);
        put(&c, r->fps[i].crc_head, 4);
        put(&c, r->fps[i].crc_tail, 4);
        put(&c, (uint64_t)r->bad[i], 8);
        put(&c, (uint64_t)r->dropped[i], 8);
    }
    put(&c, (uint64_t)r->epoch, 4);
    put(&c, (uint64_t)(r->src_done | r->finished << 1 | r->cur_valid << 2), 1);
    put(&c, (uint64_t)r->epoch_rows, 8);
    for (int i = 0; i < 4; i++) put(&c, r->rng.s[i], 8);
    Locator src;
    source_position(r->src, &src.file, &src.offset, &src.line);
    put_loc(&c, &src);
    Locator none = {0, 0, 0};
    put_loc(&c, r->cur_valid ? &r->cur.loc : &none);
    put(&c, (uint64_t)(r->cur_valid ? r->cur.epoch : 0), 4);
    put(&c, (uint64_t)(r->cur_valid ? r->cur_off : 0), 4);
    put(&c, (uint64_t)r->pool_n, 4);
    for (int i = 0; i < r->pool_n; i++) put_loc(&c, &r->pool[i].loc);
    if (c.bad || c.at != need) {
        snprintf(err, errlen, "data cursor: internal size mismatch");
        return -1;
    }
    return 0;
}

typedef struct Pending {
    Locator loc;
    Row *row; /* where to read it */
} Pending;

static int pending_cmp(const void *a, const void *b) {
    const Locator *x = &((const Pending *)a)->loc, *y = &((const Pending *)b)->loc;
    if (x->file != y->file) return x->file < y->file ? -1 : 1;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

int data_cursor_restore(DataReader *r, const void *blob, size_t size, char *err, size_t errlen) {
    Cur c = {(unsigned char *)blob, size, 0, false};
    const char *why = NULL;
    if (get(&c, 4) != CURSOR_MAGIC)
        why = "not a lorafit data cursor";
    else if (get(&c, 4) != CURSOR_VERSION)
        why = "unsupported data cursor version";
    else if ((c.n = get(&c, 8)) > size || c.n < HEADER_BYTES)
        why = "truncated data cursor";
    else if (get(&c, 8) != options_hash(r))
        why = "the data options (files, seq_len, batch size, packing, shuffle, seed, ...) "
              "differ from the run that saved it";
    else if (get(&c, 4) != (uint64_t)r->n_files)
        why = "the number of data files changed";
    if (why || c.bad) {
        snprintf(err, errlen, "data cursor: %s", why ? why : "truncated data cursor");
        return -1;
    }
    for (int i = 0; i < r->n_files; i++) {
        FileFingerprint fp;
        fp.size = get(&c, 8);
        fp.crc_head = (uint32_t)get(&c, 4);
        fp.crc_tail = (uint32_t)get(&c, 4);
        r->bad[i] = (int64_t)get(&c, 8);
        r->dropped[i] = (int64_t)get(&c, 8);
        if (c.bad) break;
        if (fp.size != r->fps[i].size || fp.crc_head != r->fps[i].crc_head ||
            fp.crc_tail != r->fps[i].crc_tail) {
            snprintf(err, errlen,
                     "%s: the file changed since the checkpoint was saved (size %llu -> %llu%s); "
                     "refusing to resume on different data (restore the original file or start "
                     "a new run)",
                     r->files[i], (unsigned long long)fp.size, (unsigned long long)r->fps[i].size,
                     fp.size == r->fps[i].size ? ", contents differ" : "");
            return -1;
        }
    }
    uint64_t epoch = get(&c, 4);
    unsigned flags = (unsigned)get(&c, 1);
    r->epoch_rows = (int64_t)get(&c, 8);
    for (int i = 0; i < 4; i++) r->rng.s[i] = get(&c, 8);
    Locator src, cur;
    get_loc(&c, &src);
    get_loc(&c, &cur);
    int cur_epoch = (int)get(&c, 4);
    int cur_off = (int)get(&c, 4);
    uint64_t pool_n = get(&c, 4);
    /* an epoch at INT32_MAX could not be followed by another: no run gets there */
    if (c.bad || epoch >= INT32_MAX || pool_n > (uint64_t)r->pool_cap ||
        c.at + pool_n * LOC_BYTES != c.n) {
        snprintf(err, errlen, "data cursor: truncated or inconsistent (shuffle buffer of %llu)",
                 (unsigned long long)pool_n);
        return -1;
    }
    /* xoshiro256** never reaches the all-zero state, and from it yields only zeros (a shuffle
     * that would never finish), so such a cursor was not written by lorafit. */
    if ((r->rng.s[0] | r->rng.s[1] | r->rng.s[2] | r->rng.s[3]) == 0) {
        snprintf(err, errlen, "data cursor: invalid shuffle generator state (all zero)");
        return -1;
    }
    r->epoch = (int)epoch;
    r->src_done = flags & 1;
    r->finished = flags & 2;
    r->cur_valid = flags & 4;
    r->cur_off = cur_off;
    r->pool_n = (int)pool_n;
    Pending *todo = malloc((pool_n + 1) * sizeof *todo);
    if (!todo) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    size_t n = 0;
    for (uint64_t i = 0; i < pool_n; i++) {
        get_loc(&c, &todo[n].loc);
        todo[n++].row = &r->pool[i];
    }
    if (r->cur_valid) todo[n++] = (Pending){cur, &r->cur};
    qsort(todo, n, sizeof *todo, pending_cmp);
    source_set_counting(r->src, false);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = source_read_at(r->src, &todo[i].loc, todo[i].row, err, errlen);
        todo[i].row->epoch = r->epoch;
    }
    free(todo);
    if (rc != 0) return -1;
    if (r->cur_valid) {
        r->cur.epoch = cur_epoch;
        if (cur_off < 0 || cur_off >= r->cur.len) {
            snprintf(err, errlen, "data cursor: inconsistent pending record");
            return -1;
        }
    }
    if (source_seek(r->src, src.file, src.offset, src.line, err, errlen) != 0) return -1;
    source_set_counting(r->src, r->epoch == 0);
    return 0;
}
