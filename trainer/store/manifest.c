/* trainer/store/manifest.c — checkpoint MANIFEST writing, verification and listing (manifest.h). */
#include "trainer/store/manifest.h"

#include "trainer/store/store.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define MANIFEST_HEADER   "lorafit-manifest 1"
#define MANIFEST_MAX_SIZE (1 << 20) /* far above any real checkpoint's listing */

/* Size and CRC-32 of a file's content. 0, or -1 with err naming path. */
static int file_digest(const char *path, uint64_t *size, uint32_t *crc, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        store_error(err, errlen, 0, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    unsigned char buf[1 << 16];
    uLong c = crc32(0L, Z_NULL, 0);
    uint64_t n = 0;
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0) {
        c = crc32(c, buf, (uInt)got);
        n += got;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        store_error(err, errlen, 0, "%s: read error", path);
        return -1;
    }
    *size = n;
    *crc = (uint32_t)c;
    return 0;
}

static int valid_name(const char *name) {
    if (!*name || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) return 0;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p == '/' || *p < 0x20 || *p == 0x7f) return 0;
    return 1;
}

int manifest_write(const char *dir, const char *const *names, int n, char *err, size_t errlen) {
    size_t cap = 64, len = 0;
    char *text = malloc(cap);
    if (!text) {
        store_error(err, errlen, 0, "%s/%s: out of memory", dir, MANIFEST_NAME);
        return -1;
    }
    len = (size_t)snprintf(text, cap, "%s\n", MANIFEST_HEADER);
    for (int i = 0; i < n; i++) {
        if (!valid_name(names[i])) {
            store_error(err, errlen, 0, "%s: invalid file name '%s' for a MANIFEST", dir, names[i]);
            free(text);
            return -1;
        }
        char path[4096];
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, names[i]) >= sizeof path) {
            store_error(err, errlen, 0, "%s/%s: path too long", dir, names[i]);
            free(text);
            return -1;
        }
        uint64_t size;
        uint32_t crc;
        if (file_digest(path, &size, &crc, err, errlen) != 0) {
            free(text);
            return -1;
        }
        size_t need = len + strlen(names[i]) + 64;
        if (need > cap) {
            while (cap < need) cap *= 2;
            char *grown = realloc(text, cap);
            if (!grown) {
                store_error(err, errlen, 0, "%s/%s: out of memory", dir, MANIFEST_NAME);
                free(text);
                return -1;
            }
            text = grown;
        }
        len += (size_t)snprintf(text + len, cap - len, "%" PRIu64 " %08" PRIx32 " %s\n", size, crc,
                                names[i]);
    }
    char path[4096];
    int rc = path_join(path, sizeof path, dir, MANIFEST_NAME, err, errlen);
    if (rc == 0) rc = fsio_write_file(path, text, len, err, errlen);
    free(text);
    return rc;
}

/* Parses one MANIFEST line (NUL-terminated, without '\n'). 0 or -1. */
static int parse_line(char *line, uint64_t *size, uint32_t *crc, char **name) {
    char *p = line;
    if (*p < '0' || *p > '9') return -1;
    uint64_t s = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (s > (UINT64_MAX - 9) / 10) return -1;
        s = s * 10 + (uint64_t)(*p - '0');
    }
    if (*p++ != ' ') return -1;
    uint32_t c = 0;
    for (int i = 0; i < 8; i++, p++) {
        int d = (*p >= '0' && *p <= '9')   ? *p - '0'
                : (*p >= 'a' && *p <= 'f') ? *p - 'a' + 10
                : (*p >= 'A' && *p <= 'F') ? *p - 'A' + 10
                                           : -1;
        if (d < 0) return -1;
        c = c << 4 | (uint32_t)d;
    }
    if (*p++ != ' ' || !valid_name(p)) return -1;
    *size = s;
    *crc = c;
    *name = p;
    return 0;
}

int manifest_verify(const char *dir, char *err, size_t errlen) {
    char path[4096];
    if (path_join(path, sizeof path, dir, MANIFEST_NAME, err, errlen) != 0) return -1;
    if (access(path, F_OK) != 0 && errno == ENOENT)
        return store_error(err, errlen, 0,
                           "%s: no %s; the checkpoint is incomplete (saving it was interrupted)",
                           dir, MANIFEST_NAME);
    size_t len;
    char *text = store_read_file(path, MANIFEST_MAX_SIZE, &len, err, errlen);
    if (!text) return -1;
    int rc = -1;
    if (memchr(text, '\0', len)) {
        store_error(err, errlen, 0, "%s: contains NUL bytes; the checkpoint is corrupt", path);
        goto done;
    }
    if (len == 0 || text[len - 1] != '\n') {
        store_error(err, errlen, 0,
                    "%s: empty or does not end with a newline; the checkpoint is corrupt", path);
        goto done;
    }
    int lineno = 1, entries = 0;
    char *line = text, *nl = strchr(line, '\n');
    *nl = '\0';
    if (strcmp(line, MANIFEST_HEADER) != 0) {
        store_error(err, errlen, 0, "%s:1: expected the header '%s'; the checkpoint is corrupt",
                    path, MANIFEST_HEADER);
        goto done;
    }
    for (line = nl + 1; *line; line = nl + 1) {
        lineno++;
        nl = strchr(line, '\n');
        *nl = '\0';
        uint64_t size;
        uint32_t crc;
        char *name;
        if (parse_line(line, &size, &crc, &name) != 0) {
            store_error(err, errlen, 0,
                        "%s:%d: malformed line (expected '<size> <crc32 hex> <name>'); the "
                        "checkpoint is corrupt",
                        path, lineno);
            goto done;
        }
        /* The MANIFEST may not vouch for itself, nor list a file twice. */
        if (strcmp(name, MANIFEST_NAME) == 0) {
            store_error(err, errlen, 0, "%s:%d: lists itself; the checkpoint is corrupt", path,
                        lineno);
            goto done;
        }
        for (char *q = text + strlen(MANIFEST_HEADER) + 1; q < line; q += strlen(q) + 1) {
            char *other = strchr(strchr(q, ' ') + 1, ' ') + 1;
            if (strcmp(other, name) == 0) {
                store_error(err, errlen, 0, "%s:%d: lists %s twice; the checkpoint is corrupt",
                            path, lineno, name);
                goto done;
            }
        }
        char fpath[4096];
        if ((size_t)snprintf(fpath, sizeof fpath, "%s/%s", dir, name) >= sizeof fpath) {
            store_error(err, errlen, 0, "%s:%d: path too long", path, lineno);
            goto done;
        }
        struct stat st;
        if (lstat(fpath, &st) != 0 || !S_ISREG(st.st_mode)) {
            store_error(err, errlen, 0,
                        "%s: listed in %s but missing; the checkpoint is incomplete", fpath,
                        MANIFEST_NAME);
            goto done;
        }
        uint64_t got_size;
        uint32_t got_crc;
        if (file_digest(fpath, &got_size, &got_crc, err, errlen) != 0) goto done;
        if (got_size != size) {
            store_error(err, errlen, 0,
                        "%s: size mismatch (expected %" PRIu64 " bytes, got %" PRIu64
                        "); the checkpoint is corrupt",
                        fpath, size, got_size);
            goto done;
        }
        if (got_crc != crc) {
            store_error(err, errlen, 0,
                        "%s: CRC mismatch (expected %08" PRIx32 ", got %08" PRIx32
                        "); the checkpoint is corrupt",
                        fpath, crc, got_crc);
            goto done;
        }
        entries++;
    }
    if (entries == 0) {
        store_error(err, errlen, 0, "%s: lists no files; the checkpoint is corrupt", path);
        goto done;
    }
    rc = 0;
done:
    free(text);
    return rc;
}

/* The step of a "checkpoint-STEP" name, or -1 when the name is anything else. */
static int64_t checkpoint_step(const char *name) {
    static const char prefix[] = "checkpoint-";
    if (strncmp(name, prefix, sizeof prefix - 1) != 0) return -1;
    const char *p = name + sizeof prefix - 1;
    if (!*p || (p[0] == '0' && p[1] != '\0')) return -1;
    int64_t step = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9' || step > (INT64_MAX - 9) / 10) return -1;
        step = step * 10 + (*p - '0');
    }
    return step;
}

static int cmp_step(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int manifest_list_checkpoints(const char *out_dir, int64_t **steps, int *n, char *err,
                              size_t errlen) {
    *steps = NULL;
    *n = 0;
    DIR *d = opendir(out_dir);
    if (!d) {
        if (errno == ENOENT) return 0;
        store_error(err, errlen, 0, "%s: cannot list: %s", out_dir, strerror(errno));
        return -1;
    }
    int cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int64_t step = checkpoint_step(e->d_name);
        if (step < 0) continue;
        char path[4096];
        struct stat st;
        if ((size_t)snprintf(path, sizeof path, "%s/%s", out_dir, e->d_name) >= sizeof path ||
            lstat(path, &st) != 0 || !S_ISDIR(st.st_mode))
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            int64_t *grown = realloc(*steps, (size_t)cap * sizeof **steps);
            if (!grown) {
                closedir(d);
                free(*steps);
                *steps = NULL;
                *n = 0;
                store_error(err, errlen, 0, "%s: out of memory listing checkpoints", out_dir);
                return -1;
            }
            *steps = grown;
        }
        (*steps)[(*n)++] = step;
    }
    closedir(d);
    if (*n > 1) qsort(*steps, (size_t)*n, sizeof **steps, cmp_step);
    return 0;
}

int manifest_latest_complete(const char *out_dir, char *path_out, size_t path_len, int64_t *step,
                             char *skipped, size_t skipped_len, char *err, size_t errlen) {
    int64_t *steps;
    int n;
    if (path_len) path_out[0] = '\0';
    if (skipped && skipped_len) skipped[0] = '\0';
    if (manifest_list_checkpoints(out_dir, &steps, &n, err, errlen) != 0) return -1;
    int found = 0;
    for (int i = n - 1; i >= 0 && !found; i--) {
        char path[4096], why[1024];
        snprintf(path, sizeof path, "%s/checkpoint-%" PRId64, out_dir, steps[i]);
        if (manifest_verify(path, why, sizeof why) == 0) {
            if ((size_t)snprintf(path_out, path_len, "%s", path) >= path_len) {
                store_error(err, errlen, 0, "%s: path too long", path);
                free(steps);
                return -1;
            }
            *step = steps[i];
            found = 1;
        } else if (skipped && skipped_len && !skipped[0]) {
            snprintf(skipped, skipped_len, "skipped %s: %s", path, why);
        }
    }
    free(steps);
    return found;
}
