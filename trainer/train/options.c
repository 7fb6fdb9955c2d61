/* trainer/train/options.c — what a Config asks of the other modules: the data options of
 * each data set, the LoRA shape, the model's in-memory dtype, and the check that every path
 * the config names exists (so a typo is a usage error before any loading starts). */
#include <inttypes.h>
#include <errno.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "trainer/train/internal.h"

void train_data_options(const Config *cfg, TrainData which, int vocab_size, DataOptions *o) {
    memset(o, 0, sizeof *o);
    bool train = which == TRAIN_DATA_TRAIN;
    bool valid = which == TRAIN_DATA_VALID || (which == TRAIN_DATA_EVAL && cfg->data.valid.n > 0);
    const ConfigList *list = valid ? &cfg->data.valid : &cfg->data.train;
    o->paths = (const char **)list->items;
    o->n_paths = list->n;
    o->input_field = cfg->data.input_field;
    o->labels_field = cfg->data.labels_field;
    o->seq_len = (int)cfg->data.seq_len;
    o->batch_size = (int)cfg->train.batch_size;
    o->packing = cfg->data.packing;
    o->overflow = cfg->data.overflow == OVERFLOW_SPLIT  ? DATA_OVERFLOW_SPLIT
                  : cfg->data.overflow == OVERFLOW_DROP ? DATA_OVERFLOW_DROP
                                                        : DATA_OVERFLOW_TRUNCATE;
    o->shuffle = train && cfg->data.shuffle;
    o->shuffle_buffer = (int)cfg->data.shuffle_buffer;
    o->on_error = cfg->data.on_error == ON_ERROR_SKIP ? DATA_ON_ERROR_SKIP : DATA_ON_ERROR_FAIL;
    o->vocab_size = vocab_size;
    o->seed = (uint64_t)cfg->train.seed;
    o->epochs = train ? (int)cfg->train.epochs : 1;
    o->format = (DataFormat)cfg->data.format;
    o->text_field = cfg->data.text_field;
    o->prompt_field = cfg->data.prompt_field;
    o->completion_field = cfg->data.completion_field;
    o->messages_field = cfg->data.messages_field;
    o->add_eos = cfg->data.add_eos;
    o->train_on_prompt = cfg->data.train_on_prompt;
    o->preference = cfg->train.objective != OBJECTIVE_SFT;
    if (o->preference && o->format == DATA_FORMAT_AUTO) o->format = DATA_FORMAT_PREFERENCE;
}

int train_lora_spec(const Config *cfg, LoraSpec *spec, char *err, size_t errlen) {
    memset(spec, 0, sizeof *spec);
    spec->r = (int)cfg->lora.r;
    spec->alpha = (float)cfg->lora.alpha;
    spec->rslora = cfg->lora.rslora;
    spec->dropout = (float)cfg->lora.dropout;
    for (int i = 0; i < cfg->lora.target_modules.n; i++) {
        unsigned bit = lora_parse_target(cfg->lora.target_modules.items[i]);
        if (!bit) {
            snprintf(err, errlen, "lora.target_modules: unknown module '%s'",
                     cfg->lora.target_modules.items[i]);
            return -1;
        }
        spec->targets |= bit;
    }
    return 0;
}

static int check_exists(const char *key, const char *path, bool want_dir, char *err,
                        size_t errlen) {
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(err, errlen, "%s: '%s' does not exist (%s)", key, path, strerror(errno));
        return -1;
    }
    if (want_dir != S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s: '%s' is %s", key, path,
                 want_dir ? "not a directory" : "a directory, not a data file");
        return -1;
    }
    return 0;
}

static int check_data_list(const char *key, const ConfigList *l, char *err, size_t errlen) {
    for (int i = 0; i < l->n; i++) {
        const char *p = l->items[i];
        if (strpbrk(p, "*?[") == NULL) {
            if (check_exists(key, p, false, err, errlen) != 0) return -1;
            continue;
        }
        glob_t g;
        int rc = glob(p, 0, NULL, &g);
        size_t n = rc == 0 ? g.gl_pathc : 0;
        if (rc == 0) globfree(&g);
        if (n == 0) {
            snprintf(err, errlen, "%s: no file matches '%s'", key, p);
            return -1;
        }
    }
    return 0;
}

int train_check_paths(const Config *cfg, char *err, size_t errlen) {
    if (!model_path_is_gguf(cfg->model.path) && /* a file is a GGUF base */
        check_exists("model.path", cfg->model.path, true, err, errlen) != 0)
        return -1;
    if (cfg->lora.init_from &&
        check_exists("lora.init_from", cfg->lora.init_from, true, err, errlen) != 0)
        return -1;
    if (check_data_list("data.train", &cfg->data.train, err, errlen) != 0) return -1;
    return check_data_list("data.valid", &cfg->data.valid, err, errlen);
}

Model *train_load_model(const Config *cfg, char *err, size_t errlen) {
    bool bf16 =
        cfg->model.dtype == CONFIG_DTYPE_BF16 || cfg->train.precision == CONFIG_PRECISION_BF16;
    return model_load_quantized(cfg->model.path, bf16 ? MODEL_BF16 : MODEL_F32,
                                train_quantize_type(cfg->model.quantize), err, errlen);
}

GgmlType train_quantize_type(ConfigQuantize q) {
    static const GgmlType types[] = {GGML_TYPE_F32,  GGML_TYPE_Q8_0, GGML_TYPE_Q4_0,
                                     GGML_TYPE_Q4_K, GGML_TYPE_Q5_K, GGML_TYPE_Q6_K};
    return types[q];
}

int train_check_seq_len(const Config *cfg, const Model *m, char *err, size_t errlen) {
    int max = model_max_positions(m);
    if (cfg->data.seq_len <= max) return 0;
    snprintf(err, errlen, "data.seq_len: %" PRId64 " exceeds the model's %d positions",
             cfg->data.seq_len, max);
    return -1;
}

ConfigPrecision train_resolve_precision(ConfigPrecision asked, char *note, size_t notelen) {
    bool native = tensor_cpu_has_native_bf16();
    ConfigPrecision p = asked;
    if (asked == CONFIG_PRECISION_AUTO)
        p = tensor_cpu_bf16_faster() ? CONFIG_PRECISION_BF16 : CONFIG_PRECISION_F32;
    Graph *probe = graph_create();
    if (probe && p == CONFIG_PRECISION_BF16) graph_set_precision(probe, TENSOR_PRECISION_BF16);
    const char *why = asked == CONFIG_PRECISION_AUTO ? "auto: " : "";
    const char *kernel = probe ? graph_matmul_kernel(probe) : "?";
    if (p == CONFIG_PRECISION_F32)
        snprintf(note, notelen, "precision f32 (%s%s; %s)", why,
                 asked != CONFIG_PRECISION_AUTO ? "as configured"
                 : native ? "this CPU's bf16 matrix instructions, AVX512-BF16 without AMX, "
                            "multiply no faster than f32 here; train.precision: bf16 halves "
                            "the frozen weights' memory"
                          : "this CPU has no native bf16 matrix instructions",
                 kernel);
    else if (probe && graph_matmul_native_bf16(probe))
        snprintf(note, notelen, "precision bf16 (%s%s)", why, kernel);
    else
        snprintf(note, notelen,
                 "precision bf16 (%sEMULATED: this CPU has no native bf16 matrix instructions, "
                 "AMX-BF16 or AVX512-BF16, so the products run as %s, slower than f32)",
                 why, kernel);
    graph_destroy(probe);
    return p;
}

TensorPrecision train_tensor_precision(ConfigPrecision resolved) {
    return resolved == CONFIG_PRECISION_BF16 ? TENSOR_PRECISION_BF16 : TENSOR_PRECISION_F32;
}
