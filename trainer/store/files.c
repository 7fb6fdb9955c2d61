/* trainer/store/files.c — reading a whole small file (JSON configs, adapter_config.json,
 * tokenizer files): bounded, so a wrong path to a huge file is an error, not an OOM. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "trainer/store/store.h"

/* The whole of the open file f, closed; NULL with err. */
static char *read_open_file(FILE *f, const char *path, size_t max_bytes, size_t *len, char *err,
                            size_t errlen) {
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        if (n == cap) {
            if (cap >= max_bytes) break;
            size_t grown = cap * 2 > max_bytes ? max_bytes : cap * 2;
            char *p = realloc(buf, grown + 1);
            if (!p) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = p;
            cap = grown;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    int read_error = ferror(f) ? (errno ? errno : EIO) : 0,
        more = buf && !read_error && n == cap && fgetc(f) != EOF;
    fclose(f);
    if (!buf || read_error || more) {
        if (!buf)
            store_error(err, errlen, 0, "%s: out of memory reading it", path);
        else if (read_error)
            store_error(err, errlen, read_error, "%s: cannot read", path);
        else
            store_error(err, errlen, 0, "%s: larger than %zu bytes; is this the right file?", path,
                        max_bytes);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

char *store_read_file(const char *path, size_t max_bytes, size_t *len, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        store_error(err, errlen, errno, "%s: cannot open", path);
        return NULL;
    }
    return read_open_file(f, path, max_bytes, len, err, errlen);
}

char *store_read_file_if_there(const char *path, size_t max_bytes, size_t *len, bool *failed,
                               char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    *failed = false;
    if (!f && (errno == ENOENT || errno == ENOTDIR)) return NULL;
    if (!f) {
        *failed = true;
        store_error(err, errlen, errno, "%s: cannot open", path);
        return NULL;
    }
    char *text = read_open_file(f, path, max_bytes, len, err, errlen);
    *failed = !text;
    return text;
}
