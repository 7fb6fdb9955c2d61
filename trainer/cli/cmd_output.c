/* trainer/cli/cmd_output.c — what every exporting command does with its output path: refuse
 * to replace something that exists unless --force, take the directory lock, and build a
 * directory under a temporary name that is renamed into place only when complete. */
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "trainer/cli/cli.h"
#include "trainer/store/store.h"
#include "trainer/train/train.h"

/* A directory with anything in it but the lock file of a finished lorafit process. */
static bool dir_has_content(const char *path) {
    DIR *d = opendir(path);
    if (!d) return true;
    struct dirent *e;
    bool content = false;
    while (!content && (e = readdir(d)) != NULL)
        content = strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, ".lock");
    closedir(d);
    return content;
}

int cmd_check_overwrite(const char *cmd, const char *path, bool want_dir, bool force) {
    struct stat st;
    if (stat(path, &st) != 0) return EXIT_OK;
    if (want_dir != S_ISDIR(st.st_mode)) {
        fprintf(stderr, "lorafit %s: %s exists and is not a %s\n", cmd, path,
                want_dir ? "directory" : "file");
        return EXIT_USAGE;
    }
    if (!force && (!want_dir || dir_has_content(path))) {
        fprintf(stderr, "lorafit %s: %s already exists; pass --force to replace it\n", cmd, path);
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

int cmd_write_dir(const char *cmd, const char *out, bool force,
                  int (*fill)(const char *tmp_dir, void *ctx, char *err, size_t errlen),
                  void *ctx) {
    int rc = cmd_check_overwrite(cmd, out, true, force);
    if (rc != EXIT_OK) return rc;
    char err[2048] = "";
    int lock_fd = -1;
    if (fsio_mkdirs(out, err, sizeof err) != 0) {
        fprintf(stderr, "lorafit %s: %s\n", cmd, err);
        return EXIT_RUNTIME;
    }
    int locked = fsio_lock_dir(out, &lock_fd, err, sizeof err);
    if (locked != 0) {
        fprintf(stderr, "lorafit %s: %s\n", cmd, err);
        return locked > 0 ? EXIT_USAGE : EXIT_RUNTIME;
    }
    if (checkpoint_write_dir(out, fill, ctx, err, sizeof err) != 0) {
        fprintf(stderr, "lorafit %s: %s\n", cmd, err);
        rc = EXIT_RUNTIME;
    }
    close(lock_fd);
    return rc;
}

int cmd_parse_dtype(const char *cmd, const char *name, bool allow_q8, GgmlType *out) {
    static const struct {
        const char *name;
        GgmlType type;
    } names[] = {{"f32", GGML_TYPE_F32},
                 {"f16", GGML_TYPE_F16},
                 {"bf16", GGML_TYPE_BF16},
                 {"q8_0", GGML_TYPE_Q8_0}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(name, names[i].name) == 0 && (allow_q8 || names[i].type != GGML_TYPE_Q8_0)) {
            *out = names[i].type;
            return EXIT_OK;
        }
    fprintf(stderr, "lorafit %s: --dtype must be f32, f16%s or bf16, not '%s'\n", cmd,
            allow_q8 ? ", q8_0" : "", name);
    return EXIT_USAGE;
}

bool cmd_is_gguf_path(const char *path) {
    size_t n = strlen(path);
    return n > 5 && strcmp(path + n - 5, ".gguf") == 0;
}

void cmd_warn_gguf_llamacpp(const GgufReport *r) {
    if (r->window_ignored)
        fprintf(stderr,
                "warning: llama.cpp's %s has no sliding window: past %d positions (the "
                "model's sliding_window) its results differ from the model's\n",
                r->arch, r->window_ignored);
    int orig = r->longrope_original, short_ctx = orig / 256 * 256; /* llama.cpp's n_ctx rounding */
    if (orig && short_ctx)
        fprintf(stderr,
                "warning: llama.cpp's %s takes longrope's long factors for every position once "
                "its context (rounded up to a multiple of 256) exceeds %d "
                "(original_max_position_embeddings), lorafit and transformers only for sequences "
                "longer than that: with a context of at most %d llama.cpp's results are the "
                "model's, with a larger one they differ for sequences of up to %d positions\n",
                r->arch, orig, short_ctx, orig);
    else if (orig)
        fprintf(stderr,
                "warning: llama.cpp's %s takes longrope's long factors for every position, its "
                "context (a multiple of 256) exceeding %d (original_max_position_embeddings); "
                "lorafit and transformers only for sequences longer than that: llama.cpp's "
                "results differ for sequences of up to %d positions\n",
                r->arch, orig, orig);
}
