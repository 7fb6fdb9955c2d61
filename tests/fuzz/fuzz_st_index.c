/* tests/fuzz/fuzz_st_index.c — st_checkpoint_open on an arbitrary
 * model.safetensors.index.json in a directory that holds two small valid shards, a file that
 * is not safetensors and a subdirectory. It must refuse with a reason, or accept an index
 * whose every weight_map entry names a tensor that lies in the shard the map says, and then
 * find exactly the names the map lists (never one only present in some shard). */
#include <jansson.h>

#include "tests/fuzz/fuzz_util.h"
#include "trainer/store/store.h"

/* SCRATCH/st_index holds shard 1 (model.a F32 [2], model.b F16 [1, 2]), shard 2
 * (model.c BF16 [3]), notes.txt (not safetensors) and sub/ (a directory). */
#define FUZZ_IDX_DIR    "st_index"
#define FUZZ_IDX_SHARD1 "model-00001-of-00002.safetensors"
#define FUZZ_IDX_SHARD2 "model-00002-of-00002.safetensors"

static volatile uint8_t idx_sink;

static void idx_save_shard(const char *dir, const char *file, int first) {
    static const float a[2] = {1.0f, -2.0f};
    static const uint16_t b[2] = {0x3c00, 0xc000};
    static const uint16_t c[3] = {0x3f80, 0x4000, 0x4040};
    char path[700], err[1024];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    StWriter *w = st_writer_new();
    if (!w) abort();
    int rc;
    if (first) {
        rc = st_writer_add(w, "model.a", ST_F32, 1, (const int64_t[]){2}, a, err, sizeof err);
        rc = rc ||
             st_writer_add(w, "model.b", ST_F16, 2, (const int64_t[]){1, 2}, b, err, sizeof err);
    } else {
        rc = st_writer_add(w, "model.c", ST_BF16, 1, (const int64_t[]){3}, c, err, sizeof err);
    }
    if (rc || st_writer_save(w, path, err, sizeof err) != 0) abort();
    st_writer_free(w);
}

/* SCRATCH/st_index with the shards (made again if the replay test removed the scratch dir). */
static const char *idx_fixture(void) {
    static char dir[512];
    snprintf(dir, sizeof dir, "%s/" FUZZ_IDX_DIR, fuzz_scratch_dir());
    char probe[700];
    snprintf(probe, sizeof probe, "%s/" FUZZ_IDX_SHARD2, dir);
    if (access(probe, F_OK) == 0) return dir;
    mkdir(fuzz_scratch_dir(), 0700);
    mkdir(dir, 0700);
    snprintf(probe, sizeof probe, "%s/sub", dir);
    mkdir(probe, 0700);
    fuzz_write(FUZZ_IDX_DIR "/notes.txt", (const uint8_t *)"not a safetensors file\n", 23);
    idx_save_shard(dir, FUZZ_IDX_SHARD1, 1);
    idx_save_shard(dir, FUZZ_IDX_SHARD2, 0);
    return dir;
}

/* The shard of c holding t, or -1. */
static int idx_shard_of(const StCheckpoint *c, const StTensor *t) {
    for (int i = 0; i < st_checkpoint_shards(c); i++)
        if (st_find(st_checkpoint_shard(c, i), t->name) == t) return i;
    return -1;
}

static void idx_check_accepted(const StCheckpoint *c, const char *dir, const uint8_t *data,
                               size_t size) {
    int n = st_checkpoint_shards(c);
    if (n < 1 || n > 2) abort(); /* only two safetensors files exist */
    size_t bytes = 0;
    for (int i = 0; i < n; i++) bytes += st_file_size(st_checkpoint_shard(c, i));
    if (st_checkpoint_bytes(c) != bytes) abort();

    json_t *root = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    json_t *wm = json_object_get(root, "weight_map");
    if (!json_is_object(wm)) { /* the file reader and loadb disagree: nothing to compare */
        json_decref(root);
        return;
    }
    const char *key;
    json_t *v;
    json_object_foreach(wm, key, v) {
        const StTensor *t = st_checkpoint_find(c, key);
        if (!t || strcmp(t->name, key) != 0 || !json_is_string(v)) abort();
        int s = idx_shard_of(c, t);
        if (s < 0) abort();
        char want[4096];
        snprintf(want, sizeof want, "%s/%s", dir, json_string_value(v));
        if (strcmp(st_path(st_checkpoint_shard(c, s)), want) != 0) abort();
        uint8_t sum = 0;
        for (size_t i = 0; i < t->nbytes; i++) sum += ((const uint8_t *)t->data)[i];
        idx_sink += sum;
    }
    /* Lookups go through the map: a tensor of an opened shard the map omits is absent. */
    static const char *const probes[] = {"model.a", "model.b", "model.c", "model.missing", ""};
    for (size_t i = 0; i < sizeof probes / sizeof *probes; i++) {
        const StTensor *t = st_checkpoint_find(c, probes[i]);
        if ((t != NULL) != (json_object_get(wm, probes[i]) != NULL)) abort();
        if (t && strcmp(t->name, probes[i]) != 0) abort();
    }
    json_decref(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *dir = idx_fixture();
    fuzz_write(FUZZ_IDX_DIR "/model.safetensors.index.json", data, size);
    char err[1024];
    err[0] = '\0';
    StCheckpoint *c = st_checkpoint_open(dir, err, sizeof err);
    if (!c) {
        if (!err[0]) abort(); /* a refusal must say why */
        return 0;
    }
    idx_check_accepted(c, dir, data, size);
    st_checkpoint_close(c);
    return 0;
}
