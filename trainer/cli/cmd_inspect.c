/* trainer/cli/cmd_inspect.c — `lorafit inspect FILE.safetensors | FILE.gguf | DIR`.
 *
 * A file: every tensor (name, dtype, shape), the metadata and the parameter count; a GGUF
 * (told by its magic) in inspect_gguf.c. A
 * directory: its config (config.json or adapter_config.json, parsed and validated) and then
 * each safetensors file it holds (model.safetensors, the shards of an index, or
 * adapter_model.safetensors). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "trainer/cli/cli.h"
#include "trainer/model/model.h"
#include "trainer/store/store.h"

static void inspect_usage(FILE *out) {
    fprintf(out, "usage: lorafit inspect FILE.safetensors | FILE.gguf | DIR\n"
                 "  Lists tensors (name, dtype or GGUF type, shape), metadata and parameter\n"
                 "  count; for a model or adapter directory also the parsed config.\n");
}

static void print_file(const SafeTensors *st) {
    printf("file %s (%zu bytes)\n", st_path(st), st_file_size(st));
    for (int i = 0; i < st_metadata_count(st); i++) {
        const char *k, *v;
        st_metadata_at(st, i, &k, &v);
        printf("  metadata %s = %s\n", k, v);
    }
    int64_t params = 0;
    for (int i = 0; i < st_count(st); i++) {
        const StTensor *t = st_tensor_at(st, i);
        printf("  %-64s %-4s [", t->name, st_dtype_name(t->dtype));
        for (int d = 0; d < t->ndim; d++) printf(d ? ", %lld" : "%lld", (long long)t->shape[d]);
        printf("]\n");
        params += t->numel;
    }
    printf("  %d tensors, %lld parameters\n", st_count(st), (long long)params);
}

/* Whether the file starts with GGUF's magic. */
static bool is_gguf(const char *path) {
    char magic[4] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    bool yes = fread(magic, 1, 4, f) == 4 && memcmp(magic, "GGUF", 4) == 0;
    fclose(f);
    return yes;
}

static int inspect_file(const char *path) {
    if (is_gguf(path)) return inspect_gguf(path);
    char err[1024];
    SafeTensors *st = st_open(path, err, sizeof err);
    if (!st) {
        fprintf(stderr, "lorafit inspect: %s\n", err);
        return 1;
    }
    print_file(st);
    st_close(st);
    return 0;
}

static void print_config(const ModelConfig *c) {
    printf("model %s (%s)\n", hf_architecture(c), c->model_type);
    if (c->wrapper)
        printf("  multimodal: only its language model (%s*) is loaded and trained, not the "
               "vision tower or projector\n",
               model_module_prefix(c));
    printf("  hidden_size %d, intermediate_size %d, layers %d, heads %d, kv_heads %d, "
           "head_dim %d, vocab %d\n",
           c->hidden_size, c->intermediate_size, c->num_hidden_layers, c->num_attention_heads,
           c->num_key_value_heads, c->head_dim, c->vocab_size);
    printf("  max_position_embeddings %d, rms_norm_eps %g, rope_theta %g, tied %s, "
           "qkv_bias %s, o_bias %s\n",
           c->max_position_embeddings, c->rms_norm_eps, c->rope_theta,
           c->tie_word_embeddings ? "yes" : "no", c->qkv_bias ? "yes" : "no",
           c->o_bias ? "yes" : "no");
    if (c->rope_scaling.llama3)
        printf("  rope_scaling llama3: factor %g, low_freq_factor %g, high_freq_factor %g, "
               "original_max_position_embeddings %d\n",
               c->rope_scaling.factor, c->rope_scaling.low_freq_factor,
               c->rope_scaling.high_freq_factor, c->rope_scaling.original_max_position_embeddings);
    if (c->rope_scaling.linear)
        printf("  rope_scaling linear: factor %g\n", c->rope_scaling.factor);
    if (c->rope_scaling.yarn)
        printf("  rope_scaling yarn: factor %g, original_max_position_embeddings %d, beta_fast %g, "
               "beta_slow %g, attention factor %.6g\n",
               c->rope_scaling.factor, c->rope_scaling.original_max_position_embeddings,
               c->rope_scaling.beta_fast, c->rope_scaling.beta_slow,
               c->rope_scaling.attention_factor);
    if (c->llama4_scaling_beta)
        printf("  query scale 1 + %g ln(1 + floor(position / %d)) (llama_4_scaling_beta)\n",
               c->llama4_scaling_beta, c->rope_scaling.original_max_position_embeddings);
    int sliding = 0;
    for (int l = 0; l < c->num_hidden_layers; l++) sliding += hf_layer_window(c, l) > 0;
    if (sliding && c->rope_local_theta > 0)
        printf("  sliding_window %d on %d of %d layers, their rope_theta %g\n", c->sliding_window,
               sliding, c->num_hidden_layers, c->rope_local_theta);
    else if (sliding)
        printf("  sliding_window %d on %d of %d layers\n", c->sliding_window, sliding,
               c->num_hidden_layers);
    if (c->attn_softcap > 0 || c->final_softcap > 0)
        printf("  soft-caps: attention %g, final logits %g (0: none)\n", c->attn_softcap,
               c->final_softcap);
    if (c->full.head_dim) {
        char rope[64] = "plain";
        if (c->rope_scaling.proportional)
            snprintf(rope, sizeof rope, "proportional, %g of the frequencies",
                     c->rope_scaling.proportion);
        printf("  full layers: head_dim %d, kv_heads %d%s, RoPE %s\n", c->full.head_dim,
               c->full.kv_heads ? c->full.kv_heads : c->num_key_value_heads,
               c->full.k_eq_v ? ", V = K (no v_proj)" : "", rope);
    }
    if (c->ple_dim)
        printf("  per-layer inputs of %d per layer (table of %d rows)\n", c->ple_dim, c->ple_vocab);
    if (c->kv_shared)
        printf("  the last %d layers reuse earlier layers' K and V%s\n", c->kv_shared,
               c->double_wide_mlp ? ", their MLP twice as wide" : "");
    int linear = 0;
    for (int l = 0; l < c->num_hidden_layers; l++) linear += hf_layer_is_linear(c, l);
    if (linear)
        printf("  Gated DeltaNet on %d of %d layers: %d key heads of %d, %d value heads of %d, "
               "conv kernel %d; rotary dims %d of head_dim %d\n",
               linear, c->num_hidden_layers, c->linear.n_k_heads, c->linear.k_dim,
               c->linear.n_v_heads, c->linear.v_dim, c->linear.conv_kernel, c->rotary_dim,
               c->head_dim);
}

static bool exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

static int inspect_dir(const char *dir) {
    char path[4096], err[1024];
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (exists(path)) {
        ModelConfig cfg;
        if (hf_config_load(path, &cfg, err, sizeof err) != 0) {
            fprintf(stderr, "lorafit inspect: %s\n", err);
            return 1;
        }
        print_config(&cfg);
        StCheckpoint *c = st_checkpoint_open(dir, err, sizeof err);
        if (!c) {
            fprintf(stderr, "lorafit inspect: %s\n", err);
            return 1;
        }
        for (int i = 0; i < st_checkpoint_shards(c); i++) print_file(st_checkpoint_shard(c, i));
        st_checkpoint_close(c);
        return 0;
    }
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    if (exists(path)) {
        json_error_t je;
        json_t *root = json_load_file(path, 0, &je);
        if (!root) {
            fprintf(stderr, "lorafit inspect: %s:%d:%d: %s\n", path, je.line, je.column, je.text);
            return 1;
        }
        char *text = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
        printf("adapter config %s\n%s\n", path, text ? text : "");
        free(text);
        json_decref(root);
        snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
        return inspect_file(path);
    }
    fprintf(stderr, "lorafit inspect: %s has neither config.json nor adapter_config.json\n", dir);
    return 1;
}

int cmd_inspect(int argc, char **argv) {
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        inspect_usage(stdout);
        return 0;
    }
    if (argc != 2 || argv[1][0] == '-') {
        inspect_usage(stderr);
        return EXIT_USAGE;
    }
    struct stat sb;
    if (stat(argv[1], &sb) != 0) {
        fprintf(stderr, "lorafit inspect: %s: no such file or directory\n", argv[1]);
        return 1;
    }
    return S_ISDIR(sb.st_mode) ? inspect_dir(argv[1]) : inspect_file(argv[1]);
}
