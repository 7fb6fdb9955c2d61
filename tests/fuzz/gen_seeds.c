/* tests/fuzz/gen_seeds.c — writes the seed inputs that only the library can make: real data
 * cursors for the cursor harness (one per option variant and position) and a real
 * trainer_state.safetensors / adapter for the state and safetensors harnesses.
 * Run by `tools/fuzz.sh --gen-seeds` from the repository root; argv[1] is the corpus root. */
#include "tests/fuzz/fuzz_util.h"

#include "tests/fuzz/fuzz_cursor_data.h"
#include "tests/fuzz/fuzz_trainer_state.h"

static void save(const char *root, const char *harness, const char *name, const void *a, size_t na,
                 const void *b, size_t nb) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", root, harness);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/%s", root, harness, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(a, 1, na, f) != na || (nb && fwrite(b, 1, nb, f) != nb)) abort();
    fclose(f);
}

static void copy_file(const char *root, const char *harness, const char *name, const char *src) {
    FILE *f = fopen(src, "rb");
    if (!f) abort();
    static uint8_t buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    save(root, harness, name, buf, n, NULL, 0);
}

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    const char *root = argv[1];
    const char *path =
        fuzz_write("cursor.jsonl", (const uint8_t *)FUZZ_CURSOR_ROWS, strlen(FUZZ_CURSOR_ROWS));
    char err[1024];
    static const int advance[] = {0, 1, 3, 9};
    for (int variant = 0; variant < 4; variant++) {
        for (int k = 0; k < 4; k++) {
            DataOptions o;
            fuzz_cursor_options(&o, &path, variant);
            DataReader *r = data_open(&o, err, sizeof err);
            if (!r) return fprintf(stderr, "%s\n", err), 1;
            Batch b;
            for (int i = 0; i < advance[k]; i++)
                if (data_next_batch(r, &b, err, sizeof err) != 1) return 1;
            size_t n = data_cursor_size(r);
            uint8_t *blob = malloc(n);
            if (!blob || data_cursor_save(r, blob, n, err, sizeof err) != 0) return 1;
            uint8_t v = (uint8_t)variant;
            char name[64];
            snprintf(name, sizeof name, "v%d-after-%d", variant, advance[k]);
            save(root, "cursor", name, &v, 1, blob, n);
            free(blob);
            data_close(r);
        }
    }
    FuzzStateFixture fx = {0};
    if (fuzz_state_fixture(&fx, fuzz_scratch_dir()) != 0) return 1;
    char src[800];
    snprintf(src, sizeof src, "%s/trainer_state.safetensors", fx.ckpt);
    copy_file(root, "trainer_state", "real-state", src);
    copy_file(root, "safetensors", "trainer-state", src);
    snprintf(src, sizeof src, "%s/adapter_model.safetensors", fx.ckpt);
    copy_file(root, "safetensors", "adapter", src);
    snprintf(src, sizeof src, "%s/MANIFEST", fx.ckpt);
    copy_file(root, "manifest", "real-checkpoint", src);
    free(fx.m);
    free(fx.v);
    lora_free(fx.lora);
    model_free(fx.model);
    return 0;
}
