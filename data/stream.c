/* data/stream.c — byte streams cut into lines, path lists and file fingerprints.
 *
 * zlib's gzopen/gzread reads gzip files and, transparently, plain files, so one code path
 * serves .jsonl and .jsonl.gz alike; gzseek on a plain file is an lseek and on a gzip file
 * decompresses forward (backward seeks restart from the beginning). Lines are found with
 * memchr in a 1 MB buffer that grows only for a longer line (capped at MAX_LINE). */
#include "data/internal.h"

#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define LINE_BUF_INIT (1u << 20)
#define MAX_LINE      ((size_t)256 << 20)
#define FP_HEAD       (1u << 20)
#define FP_TAIL       (64u << 10)

int linereader_open(LineReader *lr, const char *path, char *err, size_t errlen) {
    memset(lr, 0, sizeof *lr);
    lr->path = path;
    lr->gz = gzopen(path, "rb");
    if (!lr->gz) {
        snprintf(err, errlen, "%s: cannot open: %s", path, errno ? strerror(errno) : "gzopen");
        return -1;
    }
    gzbuffer(lr->gz, 1u << 18);
    lr->cap = LINE_BUF_INIT;
    lr->buf = malloc(lr->cap);
    if (!lr->buf) {
        gzclose(lr->gz);
        lr->gz = NULL;
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    return 0;
}

void linereader_close(LineReader *lr) {
    if (lr->gz) gzclose(lr->gz);
    free(lr->buf);
    memset(lr, 0, sizeof *lr);
}

static int fill(LineReader *lr, char *err, size_t errlen) {
    if (lr->pos > 0) {
        memmove(lr->buf, lr->buf + lr->pos, lr->end - lr->pos);
        lr->buf_offset += lr->pos;
        lr->end -= lr->pos;
        lr->pos = 0;
    }
    if (lr->end == lr->cap) {
        if (lr->cap >= MAX_LINE) {
            snprintf(err, errlen, "%s: a line at byte %llu is longer than %zu MB", lr->path,
                     (unsigned long long)lr->buf_offset, MAX_LINE >> 20);
            return -1;
        }
        char *nb = realloc(lr->buf, lr->cap * 2);
        if (!nb) {
            snprintf(err, errlen, "%s: out of memory for a long line", lr->path);
            return -1;
        }
        lr->buf = nb;
        lr->cap *= 2;
    }
    size_t want = lr->cap - lr->end;
    if (want > INT_MAX) want = INT_MAX;
    int n = gzread(lr->gz, lr->buf + lr->end, (unsigned)want);
    int zerr = Z_OK;
    const char *msg = gzerror(lr->gz, &zerr);
    if (n < 0 || (zerr != Z_OK && zerr != Z_STREAM_END)) {
        snprintf(err, errlen, "%s: read error near byte %llu: %s (is the file truncated?)",
                 lr->path, (unsigned long long)(lr->buf_offset + lr->end),
                 zerr == Z_ERRNO ? strerror(errno) : msg);
        return -1;
    }
    if (n == 0) lr->eof = true;
    lr->end += (size_t)n;
    return 0;
}

int linereader_next(LineReader *lr, const char **line, size_t *len, uint64_t *offset, char *err,
                    size_t errlen) {
    size_t scanned = lr->pos;
    for (;;) {
        char *nl = memchr(lr->buf + scanned, '\n', lr->end - scanned);
        if (nl) {
            *line = lr->buf + lr->pos;
            *len = (size_t)(nl + 1 - (lr->buf + lr->pos));
            *offset = lr->buf_offset + lr->pos;
            lr->pos += *len;
            return 1;
        }
        if (lr->eof) {
            if (lr->pos == lr->end) return 0;
            *line = lr->buf + lr->pos;
            *len = lr->end - lr->pos;
            *offset = lr->buf_offset + lr->pos;
            lr->pos = lr->end;
            return 1;
        }
        size_t done = lr->end - lr->pos;
        if (fill(lr, err, errlen) != 0) return -1;
        scanned = lr->pos + done;
    }
}

int linereader_seek(LineReader *lr, uint64_t offset, char *err, size_t errlen) {
    if (offset > (uint64_t)INT64_MAX || gzseek(lr->gz, (z_off_t)offset, SEEK_SET) < 0) {
        int zerr;
        snprintf(err, errlen, "%s: cannot seek to byte %llu: %s", lr->path,
                 (unsigned long long)offset, gzerror(lr->gz, &zerr));
        return -1;
    }
    gzclearerr(lr->gz);
    lr->pos = lr->end = 0;
    lr->buf_offset = offset;
    lr->eof = false;
    return 0;
}

static bool has_suffix(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && strcmp(s + n - m, suf) == 0;
}

static bool supported_name(const char *p) {
    return has_suffix(p, ".jsonl") || has_suffix(p, ".csv") || has_suffix(p, ".jsonl.gz") ||
           has_suffix(p, ".csv.gz") || has_suffix(p, ".json") || has_suffix(p, ".json.gz");
}

static int push_file(char ***files, int *n, int *cap, const char *p, char *err, size_t errlen) {
    if (!supported_name(p)) {
        snprintf(err, errlen,
                 "%s: unsupported data file extension (expected .jsonl, .csv or .json, "
                 "optionally .gz)",
                 p);
        return -1;
    }
    if (*n == *cap) {
        int nc = *cap ? *cap * 2 : 8;
        char **nf = realloc(*files, (size_t)nc * sizeof *nf);
        if (!nf) goto oom;
        *files = nf;
        *cap = nc;
    }
    if (!((*files)[*n] = strdup(p))) goto oom;
    (*n)++;
    return 0;
oom:
    snprintf(err, errlen, "out of memory listing data files");
    return -1;
}

int data_expand_paths(const char *const *paths, int n_paths, char ***files, int *n_files, char *err,
                      size_t errlen) {
    char **out = NULL;
    int n = 0, cap = 0;
    for (int i = 0; i < n_paths; i++) {
        const char *p = paths[i];
        if (!p || !*p) {
            snprintf(err, errlen, "data path %d is empty", i);
            goto fail;
        }
        if (strpbrk(p, "*?[")) {
            glob_t g;
            int rc = glob(p, GLOB_ERR, NULL, &g);
            if (rc == GLOB_NOMATCH) {
                snprintf(err, errlen, "%s: the pattern matches no files", p);
                goto fail;
            }
            if (rc != 0) {
                snprintf(err, errlen, "%s: cannot expand the pattern (read error)", p);
                goto fail;
            }
            for (size_t k = 0; k < g.gl_pathc; k++) {
                if (push_file(&out, &n, &cap, g.gl_pathv[k], err, errlen) != 0) {
                    globfree(&g);
                    goto fail;
                }
            }
            globfree(&g);
        } else {
            struct stat st;
            if (stat(p, &st) != 0) {
                snprintf(err, errlen, "%s: %s (check data.train / data.valid)", p, strerror(errno));
                goto fail;
            }
            if (!S_ISREG(st.st_mode)) {
                snprintf(err, errlen, "%s: not a regular file", p);
                goto fail;
            }
            if (push_file(&out, &n, &cap, p, err, errlen) != 0) goto fail;
        }
    }
    if (n == 0) {
        snprintf(err, errlen, "no data files given");
        goto fail;
    }
    *files = out;
    *n_files = n;
    return 0;
fail:
    for (int i = 0; i < n; i++) free(out[i]);
    free(out);
    return -1;
}

static int crc_range(FILE *f, const char *path, long off, size_t n, uint32_t *crc, char *err,
                     size_t errlen) {
    unsigned char chunk[1 << 14];
    uLong c = crc32(0L, Z_NULL, 0);
    if (fseek(f, off, SEEK_SET) != 0) goto fail;
    while (n > 0) {
        size_t want = n < sizeof chunk ? n : sizeof chunk;
        if (fread(chunk, 1, want, f) != want) goto fail;
        c = crc32(c, chunk, (uInt)want);
        n -= want;
    }
    *crc = (uint32_t)c;
    return 0;
fail:
    snprintf(err, errlen, "%s: read error: %s", path, strerror(errno));
    return -1;
}

int data_file_fingerprint(const char *path, FileFingerprint *fp, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (!f || fstat(fileno(f), &st) != 0) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        if (f) fclose(f);
        return -1;
    }
    fp->size = (uint64_t)st.st_size;
    size_t head = fp->size < FP_HEAD ? (size_t)fp->size : FP_HEAD;
    size_t tail = fp->size < FP_TAIL ? (size_t)fp->size : FP_TAIL;
    int rc = crc_range(f, path, 0, head, &fp->crc_head, err, errlen);
    if (rc == 0) rc = crc_range(f, path, (long)(fp->size - tail), tail, &fp->crc_tail, err, errlen);
    fclose(f);
    return rc;
}
