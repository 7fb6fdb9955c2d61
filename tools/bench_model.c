/* tools/bench_model.c — model load time and peak RSS against the checkpoint size.
 *
 * bench_model [MODEL_DIR]: without a directory, builds a SmolLM-135M-shaped F32 model with
 * make_model in a temporary directory first. The loader copies the matrices the products read
 * out of the mapping into huge-page memory and drops each one's file pages after its copy, so
 * peak RSS should stay below 1.2x the file size even after touching every weight. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "trainer/model/model.h"
#include "tools/bench_util.h"

int main(int argc, char **argv) {
    tensor_blas_use_cpu_kernels(argv);
    char dir[4096], err[1024];
    bool made = false;
    if (argc > 1) {
        snprintf(dir, sizeof dir, "%s", argv[1]);
    } else {
        snprintf(dir, sizeof dir, "/tmp/lorafit-bench-model-XXXXXX");
        if (!mkdtemp(dir)) return 1;
        char cmd[8400], self[4096];
        ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
        if (len <= 0) return 1;
        self[len] = '\0';
        *strrchr(self, '/') = '\0';
        snprintf(cmd, sizeof cmd, "%s/make_model --out %s --preset smollm-135m >/dev/null", self,
                 dir);
        if (system(cmd) != 0) {
            fprintf(stderr, "bench_model: make_model failed\n");
            return 1;
        }
        made = true;
    }
    long rss0 = bench_peak_rss_kb();
    double t0 = bench_now();
    Model *m = model_load(dir, err, sizeof err);
    if (!m) {
        fprintf(stderr, "bench_model: %s\n", err);
        return 1;
    }
    double t1 = bench_now();
    /* Touch every weight page as a forward pass would. */
    const ModelConfig *c = model_config(m);
    double sum = 0;
    for (int l = 0; l < c->num_hidden_layers; l++)
        for (int mod = 0; mod < MODULE_COUNT; mod++) {
            const Tensor *w = model_weight(m, l, (ModelModule)mod);
            for (int64_t k = 0; k < w->size; k += 1024) sum += w->data[k];
        }
    size_t bytes = model_param_count(m) * sizeof(float);
    long rss = bench_peak_rss_kb();
    printf("bench_model: %s: %zu parameters, %.1f MB of weights, load %.3f s, peak RSS %.1f MB "
           "(%.2fx weights; %.1f MB before load; converted %.1f MB)%s\n",
           dir, model_param_count(m), bytes / 1e6, t1 - t0, rss / 1024.0,
           rss * 1024.0 / (double)bytes, rss0 / 1024.0, model_converted_bytes(m) / 1e6,
           sum == 12345.678 ? "!" : "");
    model_free(m);
    if (made) {
        char cmd[4200];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0) return 1;
    }
    return rss * 1024.0 < 1.2 * (double)bytes ? 0 : 1;
}
