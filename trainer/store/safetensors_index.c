/* trainer/store/safetensors_index.c — a model's weights as one file or as shards with an index.
 *
 * model.safetensors.index.json is {"metadata": {...}, "weight_map": {name: shard file}}.
 * Each distinct shard is opened once; lookups go through the map so a tensor present in
 * the wrong shard (or missing from its shard) is an error rather than silently found. */
#include "trainer/store/safetensors.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
    const char *name; /* into index JSON */
    int shard;
} MapEntry;

struct StCheckpoint {
    SafeTensors **shards;
    int n_shards;
    json_t *index; /* NULL for a single file */
    MapEntry *map; /* (n_map) sorted by name */
    int n_map;
};

static int by_entry_name(const void *a, const void *b) {
    return strcmp(((const MapEntry *)a)->name, ((const MapEntry *)b)->name);
}

static bool file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* A shard file name must stay inside the model directory. */
static bool safe_shard_name(const char *s) {
    return *s && !strchr(s, '/') && strcmp(s, ".") && strcmp(s, "..");
}

static int open_index(StCheckpoint *c, const char *dir, const char *ipath, char *err,
                      size_t errlen) {
    json_error_t je;
    c->index = json_load_file(ipath, JSON_REJECT_DUPLICATES, &je);
    if (!c->index) {
        snprintf(err, errlen, "%s:%d:%d: %s", ipath, je.line, je.column, je.text);
        return -1;
    }
    json_t *wm = json_object_get(c->index, "weight_map");
    if (!json_is_object(wm) || json_object_size(wm) == 0) {
        snprintf(err, errlen, "%s: \"weight_map\" must be a non-empty object {tensor: file}",
                 ipath);
        return -1;
    }
    size_t n = json_object_size(wm);
    c->map = calloc(n, sizeof *c->map);
    c->shards = calloc(n, sizeof *c->shards);
    const char **files = calloc(n, sizeof *files);
    if (!c->map || !c->shards || !files) {
        free(files);
        snprintf(err, errlen, "%s: out of memory", ipath);
        return -1;
    }
    const char *key;
    json_t *v;
    int rc = 0;
    json_object_foreach(wm, key, v) {
        if (!json_is_string(v) || !safe_shard_name(json_string_value(v))) {
            snprintf(err, errlen, "%s: weight_map.%s must be a file name in the model directory",
                     ipath, key);
            rc = -1;
            break;
        }
        const char *file = json_string_value(v);
        int s = 0;
        while (s < c->n_shards && strcmp(files[s], file) != 0) s++;
        if (s == c->n_shards) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", dir, file);
            files[s] = file;
            c->shards[s] = st_open(path, err, errlen);
            if (!c->shards[s]) {
                rc = -1;
                break;
            }
            c->n_shards++;
        }
        if (!st_find(c->shards[s], key)) {
            snprintf(err, errlen,
                     "%s: weight_map puts '%s' in %s but that file has no such "
                     "tensor",
                     ipath, key, file);
            rc = -1;
            break;
        }
        c->map[c->n_map++] = (MapEntry){key, s};
    }
    free(files);
    if (rc == 0) qsort(c->map, (size_t)c->n_map, sizeof *c->map, by_entry_name);
    return rc;
}

StCheckpoint *st_checkpoint_open(const char *dir, char *err, size_t errlen) {
    StCheckpoint *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "%s: out of memory", dir);
        return NULL;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    int rc;
    if (file_exists(path)) {
        c->shards = calloc(1, sizeof *c->shards);
        rc = c->shards && (c->shards[0] = st_open(path, err, errlen)) ? 0 : -1;
        if (rc == 0)
            c->n_shards = 1;
        else if (!c->shards)
            snprintf(err, errlen, "%s: out of memory", path);
    } else {
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
        if (!file_exists(path)) {
            snprintf(err, errlen,
                     "%s: neither model.safetensors nor "
                     "model.safetensors.index.json found (is this a Hugging Face model "
                     "directory?)",
                     dir);
            rc = -1;
        } else {
            rc = open_index(c, dir, path, err, errlen);
        }
    }
    if (rc != 0) {
        st_checkpoint_close(c);
        return NULL;
    }
    return c;
}

void st_checkpoint_close(StCheckpoint *c) {
    if (!c) return;
    for (int i = 0; i < c->n_shards; i++) st_close(c->shards[i]);
    free(c->shards);
    free(c->map);
    json_decref(c->index);
    free(c);
}

const StTensor *st_checkpoint_find(const StCheckpoint *c, const char *name) {
    if (!c->index) return st_find(c->shards[0], name);
    MapEntry key = {name, 0};
    const MapEntry *e = bsearch(&key, c->map, (size_t)c->n_map, sizeof key, by_entry_name);
    return e ? st_find(c->shards[e->shard], name) : NULL;
}

int st_checkpoint_shards(const StCheckpoint *c) {
    return c->n_shards;
}

const SafeTensors *st_checkpoint_shard(const StCheckpoint *c, int i) {
    return c->shards[i];
}

const SafeTensors *st_checkpoint_shard_of(const StCheckpoint *c, const StTensor *t) {
    for (int i = 0; i < c->n_shards; i++)
        if (st_find(c->shards[i], t->name) == t) return c->shards[i];
    return NULL;
}

size_t st_checkpoint_bytes(const StCheckpoint *c) {
    size_t n = 0;
    for (int i = 0; i < c->n_shards; i++) n += st_file_size(c->shards[i]);
    return n;
}
