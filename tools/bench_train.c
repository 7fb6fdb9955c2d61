/* tools/bench_train.c — whole training steps at SmolLM-135M shapes: ms/step, tokens/s, RSS.
 *
 * bench_train [--model DIR] [--shape smollm-135m|llama-1b|qwen3-0.6b|gemma3-1b|qwen3.5-0.8b|small]
 *             [--layers L] [--precision f32|bf16] [--dtype f32|bf16] [--rank R]
 *             [--gradient-checkpointing] [--batch B] [--seq T] [--steps S] [--threads N]
 *             [--dropout P] [--long] [--quantize q8_0|q4_0|q4_k|q5_k|q6_k] [--peaks]
 * Without --model, builds a random F32 model with make_model in a temporary directory:
 * smollm-135m (the default: hidden 576, intermediate 1536, 30 layers, 9/3 heads, vocab
 * 49152, tied; batch 4 x 256) or llama-1b (Llama-3.2-1B: hidden 2048, intermediate 8192,
 * 16 layers, 32/8 heads, vocab 128256, tied; batch 1 x 512; a 4.9 GB file) or small (the
 * long-sequence model of make bench: hidden 256, intermediate 688, 4 layers, 4/2 heads, vocab
 * 512; batch 1 x 1024), or the families' shapes of make_model's presets: qwen3-0.6b (Qwen3:
 * q/k norms, 16/8 heads of 128; batch 1 x 512) and gemma3-1b (Gemma 3: four (1 + w) norms a
 * layer and q/k norms, 4/1 heads of 256, GeGLU, embeddings scaled, window 512 on 5 of 6
 * layers, soft-capped logits; batch 1 x 1024, two windows) and qwen3.5-0.8b (Qwen3.5: 18 Gated
 * DeltaNet layers and 6 gated attention layers; batch 1 x 1024; the DeltaNet layers' share of
 * the step, their products' GFLOP/s and non-product share printed). --layers L builds the shape
 * with L layers instead (the per-layer work is the same; lm_head's share grows).
 * --precision bf16 holds the frozen weights as BF16 (rounded once at load) and runs the
 * graph in TENSOR_PRECISION_BF16, as the trainer does with train.precision: bf16; the
 * kernel is printed (emulated, and slower than f32, on CPUs without native bf16).
 * --dtype bf16 holds the frozen weights as BF16 in the f32 precision (model.dtype: bf16);
 * pass a BF16 model (make_model --dtype bf16) with --model to map it in place.
 * --quantize T holds the decoder's linear weights as ggml type T (model.quantize: T, with its
 * fallbacks for rows the K-quants cannot hold), in the precision's products.
 * --gradient-checkpointing runs the step as train.gradient_checkpointing: true does (the
 * layers recomputed one at a time in backward); peak RSS is the process's (getrusage), so
 * compare runs with and without it in separate processes.
 * Attaches LoRA r R (default 8, alpha 2R) on all seven modules, then times S full steps
 * after one warm-up step: forward + cross-entropy + backward + global-norm clip + AdamW, as
 * trainer/train/loop.c's train_step does for one micro-batch. --long adds batch 1 x seq 512.
 * Token ids come from the project PRNG, so every run trains on the same batch; the loss of
 * each timed step is printed so runs of different builds can be compared for exactness.
 * --peaks measures the precision's peak (tools/bench_peak.h: bf16 oneDNN's, f32 the faster of
 * sgemm and oneDNN's f32) before each timed step and prints each step over its products at the
 * peak measured next to it, and their median: the machine's speed drifts by 10% and more
 * between minutes on shared hosts, which a peak measured minutes before (bench_kernels) does
 * not see. Its operands add 16 MB to peak RSS.
 * A Gemma 4 model with per-layer inputs (--model, make_model --preset gemma4-e2b) also gets
 * its per-layer embedding table's stored size and share of the weights and of peak RSS. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>

#include "tensor/rng.h"
#include "trainer/model/model.h"
#include "trainer/store/store.h"
#include "trainer/train/train.h"
#include "tools/bench_peak.h"

/* Process CPU seconds (all threads, user + system) and minor page faults so far. The CPU
 * time shows the work done when other jobs share the cores and wall time is unreliable. */
static double cpu_seconds(long *minor_faults) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    *minor_faults = ru.ru_minflt;
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec * 1e-6;
}

/* Runs DIR/make_model from $LORAFIT_TOOLS, else from this program's own directory; the model
 * takes sequences up to seq (at least 2048). */
static int make_model(const char *dir, const char *shape_args, int seq) {
    char tools[4096], cmd[8800];
    const char *env = getenv("LORAFIT_TOOLS");
    if (env && *env) {
        snprintf(tools, sizeof tools, "%s", env);
    } else {
        ssize_t len = readlink("/proc/self/exe", tools, sizeof tools - 1);
        if (len <= 0) return -1;
        tools[len] = '\0';
        char *slash = strrchr(tools, '/');
        if (!slash) return -1;
        *slash = '\0';
    }
    snprintf(cmd, sizeof cmd, "'%s/make_model' --out '%s' %s --max-position %d >/dev/null", tools,
             dir, shape_args, seq > 2048 ? seq : 2048);
    return system(cmd) == 0 ? 0 : -1;
}

typedef struct {
    Model *model;
    Lora *lora;
    Graph *graph;
    Checkpointing *ckpt; /* --gradient-checkpointing; NULL without */
    float *m, *v;        /* AdamW moments, one per LoRA parameter */
    int64_t step;
} Bench;

/* One optimizer step on one micro-batch (train_step with grad_accum 1). *loss gets the mean. */
static int train_step(Bench *b, const int32_t *ids, const int32_t *targets, int batch, int seq,
                      double *loss) {
    lora_zero_grad(b->lora);
    graph_reset(b->graph);
    /* As trainer/train.c: the output layer and the loss fused, logits never held whole. */
    uint64_t seed = 0x5eedull + (uint64_t)b->step;
    Tensor *hidden =
        b->ckpt
            ? model_forward_hidden_checkpointed(b->model, b->lora, b->graph, b->ckpt, ids, NULL,
                                                NULL, batch, seq, seed)
            : model_forward_hidden(b->model, b->lora, b->graph, ids, NULL, NULL, batch, seq, seed);
    int64_t count = 0;
    Tensor *l = model_loss(b->model, b->graph, hidden, targets, &count);
    if (!l || graph_failed(b->graph) || count == 0) {
        fprintf(stderr, "bench_train: forward: %s\n", checkpointing_error(b->ckpt, b->graph));
        return -1;
    }
    *loss = l->data[0] / (double)count;
    float up = (float)(1.0 / (double)count);
    if ((b->ckpt ? model_backward_checkpointed(b->graph, b->ckpt, l, up)
                 : graph_backward(b->graph, l, up)) != 0) {
        fprintf(stderr, "bench_train: backward: %s\n", checkpointing_error(b->ckpt, b->graph));
        return -1;
    }
    size_t n;
    float *p = lora_params(b->lora, &n);
    float *g = lora_grads(b->lora, &n);
    int64_t size = (int64_t)n;
    double norm = optim_global_grad_norm(&g, &size, 1);
    AdamWParams hp = {1e-3, 0.9, 0.999, 1e-8, 0.0};
    adamw_step(p, g, b->m, b->v, size, optim_clip_coef(norm, 1.0), &hp, ++b->step);
    return 0;
}

/* Each op class's share of the timed steps (tensor_profile_begin), biggest first, and the
 * matrix products' GFLOP/s; "outside ops" is the optimizer, gradient zeroing and the rest. */
static void print_profile(const TensorProfile *p, double total, int steps) {
    bool done[TENSOR_OP_CLASSES] = {false};
    printf("bench_train: where a step goes (ms/step, share):");
    for (int n = 0; n < TENSOR_OP_CLASSES; n++) {
        int best = -1;
        for (int c = 0; c < TENSOR_OP_CLASSES; c++)
            if (!done[c] && (best < 0 || p->seconds[c] > p->seconds[best])) best = c;
        done[best] = true;
        if (p->seconds[best] * 1e3 / steps < 0.5) continue;
        printf("%s %s %.0f %.1f%%", n ? "," : "", tensor_op_class_name((TensorOpClass)best),
               p->seconds[best] / steps * 1e3, 100.0 * p->seconds[best] / total);
    }
    double products = p->seconds[TENSOR_OP_PRODUCTS];
    printf("\nbench_train: matrix products: %.1f GFLOP per step at %.1f GFLOP/s; by op:",
           p->product_flops / steps * 1e-9,
           products > 0 ? p->product_flops / products * 1e-9 : 0.0);
    for (int c = 0, n = 0; c < TENSOR_OP_CLASSES; c++) {
        double sec = p->product_seconds_in[c];
        if (sec <= 0) continue;
        const char *op = c == TENSOR_OP_LINEAR      ? "linear and LoRA"
                         : c == TENSOR_OP_ATTENTION ? "attention"
                         : c == TENSOR_OP_DELTANET  ? "delta rule"
                         : c == TENSOR_OP_LOSS      ? "lm_head"
                                                    : tensor_op_class_name((TensorOpClass)c);
        printf("%s %s %.0f ms/step at %.1f GFLOP/s", n++ ? "," : "", op, sec / steps * 1e3,
               p->product_flops_in[c] / sec * 1e-9);
    }
    printf("\n");
}

/* The DeltaNet layers' share of one layer linears' work: their projections' (in_proj_*,
 * out_proj) multiply-adds over those of every layer's linears (forward and d(input) alike);
 * 0 without DeltaNet layers. */
static double deltanet_linear_fraction(const ModelConfig *c) {
    double all = 0, deltanet = 0;
    for (int l = 0; l < c->num_hidden_layers; l++)
        for (int mod = 0; mod < MODULE_COUNT; mod++) {
            if (!(model_layer_modules(c, l) & (1u << mod))) continue;
            int out, in;
            model_layer_module_dims(c, l, (ModelModule)mod, &out, &in);
            all += (double)out * in;
            if (hf_layer_is_linear(c, l) && mod >= MODULE_IN_QKV) deltanet += (double)out * in;
        }
    return all > 0 ? deltanet / all : 0;
}

/* The Gated DeltaNet layers' mixers (issue 25's acceptance 6): the DeltaNet class (delta rule,
 * conv, L2 and gated norms, gates) with the delta rule's own products, plus their projections'
 * share of the linear class (products and LoRA element-wise) by multiply-adds: the profile
 * times op classes, not layers, and the projections are linears like the MLP's. */
static void print_deltanet(const Model *m, const TensorProfile *p, double total, int steps,
                           int64_t tokens) {
    const ModelConfig *c = model_config(m);
    int n = 0;
    for (int l = 0; l < c->num_hidden_layers; l++) n += hf_layer_is_linear(c, l);
    double f = deltanet_linear_fraction(c);
    if (!n || f <= 0) return;
    double prod =
        p->product_seconds_in[TENSOR_OP_DELTANET] + f * p->product_seconds_in[TENSOR_OP_LINEAR];
    double flops =
        p->product_flops_in[TENSOR_OP_DELTANET] + f * p->product_flops_in[TENSOR_OP_LINEAR];
    double other = p->seconds[TENSOR_OP_DELTANET] + f * p->seconds[TENSOR_OP_LINEAR];
    double sec = prod + other;
    printf("bench_train: DeltaNet layers (%d of %d; mixers: projections at %.1f%% of the "
           "linears' multiply-adds, conv, norms, gates, delta rule): %.0f ms/step, %.1f%% of the "
           "step, %.1f us/token; products %.1f GFLOP/s (delta rule's own %.1f); non-product %.1f%% "
           "of their time (the target is <= 25%%)\n",
           n, c->num_hidden_layers, 100.0 * f, sec / steps * 1e3, 100.0 * sec / total,
           sec / steps / (double)tokens * 1e6, prod > 0 ? flops / prod * 1e-9 : 0.0,
           p->product_seconds_in[TENSOR_OP_DELTANET] > 0
               ? p->product_flops_in[TENSOR_OP_DELTANET] /
                     p->product_seconds_in[TENSOR_OP_DELTANET] * 1e-9
               : 0.0,
           sec > 0 ? 100.0 * other / sec : 0.0);
}

/* The precision's peak now (bench_peak.h), best of 5. */
static double peak_now(const Bench *b, const PeakOperands *po) {
    if (graph_precision(b->graph) == TENSOR_PRECISION_BF16)
        return bench_peak_gflops(PEAK_ONEDNN_BF16, po, 5);
    double sgemm = bench_peak_gflops(PEAK_SGEMM, po, 5);
    double onednn = bench_peak_gflops(PEAK_ONEDNN_F32, po, 5);
    return sgemm > onednn ? sgemm : onednn;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Each step's time over its products (gflop) at the peak measured just before it, and the
 * median of those ratios. */
static void print_peak_ratios(const double *ms, const double *peaks, int steps, double gflop) {
    double sorted[64];
    int n = steps < 64 ? steps : 64;
    printf("bench_train: step / its products at the peak measured before it (GFLOP/s, ratio):");
    for (int s = 0; s < n; s++) {
        sorted[s] = peaks[s] > 0 ? ms[s] / (gflop / peaks[s] * 1e3) : 0;
        printf("%s %.0f %.2fx", s ? "," : "", peaks[s], sorted[s]);
    }
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_double);
    double median = n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
    printf("; median %.2fx\n", median);
}

/* Times `steps` steps at (batch, seq) after one warm-up step; prints one line. With po, the
 * peak before each step too (--peaks). */
static int bench_shape(Bench *b, int batch, int seq, int steps, const PeakOperands *po) {
    const ModelConfig *c = model_config(b->model);
    int64_t n = (int64_t)batch * seq;
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    int32_t *targets = malloc((size_t)n * sizeof *targets);
    if (!ids || !targets) {
        free(ids);
        free(targets);
        return -1;
    }
    Rng r;
    rng_seed(&r, 42, (uint64_t)n);
    for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)rng_below(&r, (uint64_t)c->vocab_size);
    for (int64_t i = 0; i < n; i++)
        targets[i] = (i + 1) % seq == 0 ? TENSOR_IGNORE_INDEX : ids[i + 1];
    double loss = 0, t0 = bench_now();
    int rc = train_step(b, ids, targets, batch, seq, &loss);
    double warm = bench_now() - t0, total = 0, cpu_total = 0;
    long faults_total = 0;
    TensorProfile prof;
    tensor_profile_begin();
    printf("bench_train: B %d x T %d: warm-up %.0f ms (loss %.6f)\n", batch, seq, warm * 1e3, loss);
    double step_ms[64], peaks[64], peak_seconds = 0; /* the peaks' time is no op's */
    for (int s = 0; s < steps && rc == 0; s++) {
        if (po && s < 64) {
            double p0 = bench_now();
            peaks[s] = peak_now(b, po);
            peak_seconds += bench_now() - p0;
        }
        long f0, f1;
        double c0 = cpu_seconds(&f0);
        t0 = bench_now();
        rc = train_step(b, ids, targets, batch, seq, &loss);
        double dt = bench_now() - t0, cpu = cpu_seconds(&f1) - c0;
        total += dt;
        cpu_total += cpu;
        if (s < 64) step_ms[s] = dt * 1e3;
        faults_total += f1 - f0;
        printf("bench_train: B %d x T %d: step %d %.0f ms, CPU %.0f ms, %ld page faults (loss "
               "%.6f)\n",
               batch, seq, s + 1, dt * 1e3, cpu * 1e3, f1 - f0, loss);
    }
    tensor_profile_end(&prof);
    prof.seconds[TENSOR_OP_OTHER] -= peak_seconds;
    free(ids);
    free(targets);
    if (rc != 0) {
        fprintf(stderr, "bench_train: step failed (out of memory?)\n");
        return -1;
    }
    double ms = total / steps * 1e3;
    printf("bench_train: B %d x T %d, %d threads, %s%s: %.0f ms/step, %.0f tokens/s, CPU %.0f "
           "ms/step, %ld page faults/step, peak RSS %.0f MB, graph arena %.0f MB",
           batch, seq, tensor_threads(),
           graph_precision(b->graph) == TENSOR_PRECISION_BF16 ? "bf16" : "f32",
           b->ckpt ? ", gradient checkpointing" : "", ms, (double)n / (ms / 1e3),
           cpu_total / steps * 1e3, faults_total / steps, bench_peak_rss_kb() / 1024.0,
           graph_arena_bytes(b->graph) / 1e6);
    if (b->ckpt)
        printf(" + layer arena %.0f MB", graph_arena_bytes(checkpointing_graph(b->ckpt)) / 1e6);
    printf("\n");
    print_profile(&prof, total, steps);
    if (po) print_peak_ratios(step_ms, peaks, steps, prof.product_flops / steps * 1e-9);
    print_deltanet(b->model, &prof, total, steps, n);
    return 0;
}

/* /proc/self/status's "key:" in MB of 2^20 bytes (RssFile, RssAnon); -1 when not there. */
static double status_mb(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    size_t n = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, key, n) == 0 && line[n] == ':') kb = atol(line + n + 1);
    if (f) fclose(f);
    return kb < 0 ? -1.0 : kb / 1024.0;
}

/* Gemma 4's per-layer embedding table (issue 28's acceptance 4): its size as the checkpoint
 * stores it against the weights the model holds and the step's peak RSS. The table is used
 * in place from the mapped file, never widened: the weights count it once, at its stored
 * size, and the RSS holds the pages of it the run touched (file-backed). */
static void print_ple_table(const Model *m, const char *dir) {
    const ModelConfig *c = model_config(m);
    if (!c->ple_dim) return;
    char path[4200], err[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    SafeTensors *st = st_open(path, err, sizeof err);
    const StTensor *t = st ? st_find(st, "model.embed_tokens_per_layer.weight") : NULL;
    if (t) { /* MB as the step's line: 2^20 bytes */
        double params = (double)c->ple_vocab * c->num_hidden_layers * c->ple_dim, M = 1048576.0;
        double mb = (double)t->nbytes / M, held = model_weight_bytes(m) / M;
        double peak = bench_peak_rss_kb() / 1024.0;
        printf("bench_train: per-layer embedding table %d x %d (%.2f B params) stored %s: %.0f MB "
               "= %.1f%% of the weights held (%.0f MB, the table counted once at its stored "
               "size; widened to F32 it alone would be %.0f MB) and %.1f%% of the peak RSS "
               "(%.0f MB); RSS now %.0f MB file-backed (the mapped checkpoint's pages read), "
               "%.0f MB anonymous\n",
               c->ple_vocab, c->num_hidden_layers * c->ple_dim, params / 1e9,
               t->dtype == ST_BF16  ? "BF16"
               : t->dtype == ST_F16 ? "F16"
                                    : "F32",
               mb, 100.0 * mb / held, held, params * 4 / M, 100.0 * mb / peak, peak,
               status_mb("RssFile"), status_mb("RssAnon"));
    }
    st_close(st);
}

/* Which OpenBLAS kernel set runs the products. OpenBLAS 0.3.21 does not know AMD Zen 4/5 and
 * falls back to its Haswell (AVX2) kernels even when the CPU has AVX-512 (and this machine's
 * environment sets OPENBLAS_CORETYPE=Haswell); its SkylakeX kernels
 * (OPENBLAS_CORETYPE=SkylakeX) did these steps ~1.7x faster. */
static void print_blas_core(void) {
    const char *core = openblas_get_corename(), *env = getenv("OPENBLAS_CORETYPE");
    printf("bench_train: OpenBLAS core %s%s\n", core ? core : "?",
           env ? " (set by OPENBLAS_CORETYPE)" : "");
    __builtin_cpu_init();
    if (core && strcmp(core, "Haswell") == 0 && __builtin_cpu_supports("avx512f") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512cd"))
        printf("bench_train: this CPU has AVX-512: OPENBLAS_CORETYPE=SkylakeX may be faster\n");
}

static int usage(void) {
    fprintf(stderr, "usage: bench_train [--model DIR] "
                    "[--shape smollm-135m|llama-1b|qwen3-0.6b|gemma3-1b|qwen3.5-0.8b|small] "
                    "[--layers L] "
                    "[--precision f32|bf16] [--dtype f32|bf16] [--rank R] "
                    "[--gradient-checkpointing] [--batch B] [--seq T] [--steps S] [--threads N] "
                    "[--dropout P] [--long] [--quantize q8_0|q4_0|q4_k|q5_k|q6_k] [--peaks]\n");
    return 2;
}

/* --quantize's type: q8_0 -> GGML_TYPE_Q8_0 (model.quantize's names); GGML_TYPE_F32 if none. */
static GgmlType quant_type_named(const char *name) {
    static const GgmlType types[] = {GGML_TYPE_Q8_0, GGML_TYPE_Q4_0, GGML_TYPE_Q4_K, GGML_TYPE_Q5_K,
                                     GGML_TYPE_Q6_K};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strcasecmp(name, ggml_type_name(types[i])) == 0) return types[i];
    return GGML_TYPE_F32;
}

int main(int argc, char **argv) {
    tensor_blas_use_cpu_kernels(argv);
    const char *model_dir = NULL;
    int batch = 0, seq = 0, steps = 2, threads = 0, rank = 8, layers = 0;
    float dropout = 0.0f;
    bool long_too = false, bf16 = false, bf16_weights = false, checkpointing = false, peaks = false;
    const char *shape = "smollm-135m";
    GgmlType quant = GGML_TYPE_F32;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--long") == 0 || strcmp(a, "--gradient-checkpointing") == 0 ||
            strcmp(a, "--peaks") == 0) {
            *(a[2] == 'l' ? &long_too : a[2] == 'p' ? &peaks : &checkpointing) = true;
            continue;
        }
        if (!v) return usage();
        i++;
        if (strcmp(a, "--model") == 0)
            model_dir = v;
        else if (strcmp(a, "--batch") == 0)
            batch = atoi(v);
        else if (strcmp(a, "--seq") == 0)
            seq = atoi(v);
        else if (strcmp(a, "--layers") == 0)
            layers = atoi(v);
        else if (strcmp(a, "--steps") == 0)
            steps = atoi(v);
        else if (strcmp(a, "--threads") == 0)
            threads = atoi(v);
        else if (strcmp(a, "--dropout") == 0)
            dropout = strtof(v, NULL);
        else if (strcmp(a, "--shape") == 0)
            shape = v;
        else if (strcmp(a, "--precision") == 0 && (strcmp(v, "f32") == 0 || strcmp(v, "bf16") == 0))
            bf16 = strcmp(v, "bf16") == 0;
        else if (strcmp(a, "--dtype") == 0 && (strcmp(v, "f32") == 0 || strcmp(v, "bf16") == 0))
            bf16_weights = strcmp(v, "bf16") == 0;
        else if (strcmp(a, "--rank") == 0)
            rank = atoi(v);
        else if (strcmp(a, "--quantize") == 0 && (quant = quant_type_named(v)) != GGML_TYPE_F32)
            continue;
        else
            return usage();
    }
    const char *shape_args;
    bool llama1b = strcmp(shape, "llama-1b") == 0, small = strcmp(shape, "small") == 0;
    bool qwen3 = strcmp(shape, "qwen3-0.6b") == 0, gemma3 = strcmp(shape, "gemma3-1b") == 0;
    bool qwen35 = strcmp(shape, "qwen3.5-0.8b") == 0;
    if (llama1b)
        shape_args = "--hidden 2048 --intermediate 8192 --layers 16 --heads 32 --kv-heads 8 "
                     "--vocab 128256 --tied";
    else if (small)
        shape_args = "--hidden 256 --intermediate 688 --layers 4 --heads 4 --kv-heads 2 "
                     "--vocab 512";
    else if (strcmp(shape, "smollm-135m") == 0)
        shape_args = "--preset smollm-135m";
    else if (qwen3)
        shape_args = "--preset qwen3-0.6b";
    else if (gemma3)
        shape_args = "--preset gemma3-1b";
    else if (qwen35)
        shape_args = "--preset qwen3.5-0.8b";
    else
        return usage();
    if (!batch) batch = llama1b || small || qwen3 || gemma3 || qwen35 ? 1 : 4;
    if (!seq) seq = llama1b || qwen3 ? 512 : small || gemma3 || qwen35 ? 1024 : 256;
    if (batch < 1 || seq < 2 || steps < 1 || rank < 1 || layers < 0 || layers > 64) return usage();
    char shape_layers[256];
    if (layers) { /* after the preset, which sets every field */
        snprintf(shape_layers, sizeof shape_layers, "%s --layers %d", shape_args, layers);
        shape_args = shape_layers;
    }
    if (bf16) bf16_weights = true; /* the bf16 precision reads BF16 weights in place */
    tensor_set_threads(threads);
    char dir[4096], err[1024];
    if (model_dir) {
        snprintf(dir, sizeof dir, "%s", model_dir);
    } else {
        snprintf(dir, sizeof dir, "/tmp/lorafit-bench-train-XXXXXX");
        if (!mkdtemp(dir) || make_model(dir, shape_args, seq > 512 ? seq : 512) != 0) {
            fprintf(stderr, "bench_train: make_model failed (set LORAFIT_TOOLS?)\n");
            return 1;
        }
    }
    Bench b = {0};
    int rc = 1;
    b.model =
        model_load_quantized(dir, bf16_weights ? MODEL_BF16 : MODEL_F32, quant, err, sizeof err);
    if (!b.model) {
        fprintf(stderr, "bench_train: %s\n", err);
        goto done;
    }
    LoraSpec spec = {rank, 2.0f * (float)rank, false, dropout, LORA_ALL};
    b.lora = lora_create(b.model, &spec, err, sizeof err);
    if (!b.lora) {
        fprintf(stderr, "bench_train: %s\n", err);
        goto done;
    }
    lora_init_fresh(b.lora, 1);
    size_t n;
    lora_params(b.lora, &n);
    b.m = calloc(n, sizeof(float));
    b.v = calloc(n, sizeof(float));
    b.graph = graph_create();
    if (checkpointing) b.ckpt = checkpointing_create();
    if (!b.m || !b.v || !b.graph || (checkpointing && !b.ckpt)) goto done;
    graph_set_precision(b.graph, bf16 ? TENSOR_PRECISION_BF16 : TENSOR_PRECISION_F32);
    if (graph_lora_uses_room(b.graph) && model_make_lora_room(b.model, b.lora, err, sizeof err)) {
        fprintf(stderr, "bench_train: %s\n", err);
        goto done;
    }
    print_blas_core();
    printf("bench_train: %s %s, precision %s: %s%s\n", model_dir ? "model" : "shape",
           model_dir ? model_dir : shape, bf16 ? "bf16" : "f32", graph_matmul_kernel(b.graph),
           bf16 && !graph_matmul_native_bf16(b.graph)
               ? " -- this CPU has no native bf16: emulated, slower than f32"
               : "");
    printf("bench_train: %zu base parameters (%s weights%s%s, %.0f MB), %zu LoRA parameters (r "
           "%d, all modules)%s\n",
           model_param_count(b.model), bf16_weights ? "BF16" : "F32",
           quant != GGML_TYPE_F32 ? ", linears " : "",
           quant != GGML_TYPE_F32 ? ggml_type_name(quant) : "", model_weight_bytes(b.model) / 1e6,
           n, rank, checkpointing ? ", gradient checkpointing" : "");
    PeakOperands po = {0};
    if (peaks && !bench_peak_operands(&po, 1024)) goto done;
    int shape_rc = bench_shape(&b, batch, seq, steps, peaks ? &po : NULL);
    bench_peak_operands_free(&po);
    if (shape_rc != 0) goto done;
    print_ple_table(b.model, dir);
    if (long_too && bench_shape(&b, 1, 512, steps, NULL) != 0) goto done;
    rc = 0;
done:
    checkpointing_free(b.ckpt);
    graph_destroy(b.graph);
    free(b.m);
    free(b.v);
    lora_free(b.lora);
    model_free(b.model);
    if (!model_dir) {
        char cmd[4200];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0) rc = 1;
    }
    return rc;
}
