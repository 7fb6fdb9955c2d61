/* trainer/config/config.h — the run configuration (SPEC §2): YAML file + --set overrides.
 *
 * The Config struct mirrors the YAML one section per nested struct, so cfg.train.lr is
 * `train: {lr: ...}`. Loading is strict: unknown keys (with a "did you mean"), wrong types,
 * out-of-range values, bad enum values, duplicate keys and missing required keys are all
 * errors naming the key path and file:line:column, and config_load returns CONFIG_INVALID.
 *
 * Run length: train.max_steps [1000] and train.epochs [null]. When epochs is set (non-null,
 * >= 1) it defines the run length and max_steps is ignored; otherwise max_steps does.
 * (The SPEC's example sets max_steps: 1000 with epochs: null, i.e. 1000 steps.)
 *
 * Paths: model.path, lora.init_from, the data.train / data.valid entries and output.dir are
 * made absolute: relative ones in the file against the config file's directory, relative
 * ones in --set against the current directory. So config.resolved.yaml reloads to the same
 * Config from anywhere. data entries may be globs; they are not expanded here.
 *
 * lora.target_modules is a list of the seven Llama projections (q_proj k_proj v_proj o_proj
 * gate_proj up_proj down_proj), stored in that canonical order without duplicates;
 * "all-linear" (alone, as a string or one-element list) means all seven, as in PEFT. Not
 * given, it is empty here and the run takes the model family's default
 * (lora_default_targets: all seven for Llama, Mistral, Qwen2; PEFT's q_proj, v_proj for
 * Qwen3), which config.resolved.yaml then names. */
#ifndef LORAFIT_CONFIG_H
#define LORAFIT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The learning-rate schedules (train.lr_scheduler); trainer/train/optim.h computes them. */
typedef enum { LR_CONSTANT, LR_LINEAR, LR_COSINE } LrKind;

typedef enum { CONFIG_DTYPE_F32, CONFIG_DTYPE_BF16 } ConfigDtype;
/* model.quantize: the type the decoder's linear weights are quantized to at load (none keeps
 * them as model.dtype says). */
typedef enum {
    CONFIG_QUANTIZE_NONE,
    CONFIG_QUANTIZE_Q8_0,
    CONFIG_QUANTIZE_Q4_0,
    CONFIG_QUANTIZE_Q4_K,
    CONFIG_QUANTIZE_Q5_K,
    CONFIG_QUANTIZE_Q6_K
} ConfigQuantize;
/* train.precision: of the frozen model's matrix products (see README "Precision"). */
typedef enum { CONFIG_PRECISION_AUTO, CONFIG_PRECISION_F32, CONFIG_PRECISION_BF16 } ConfigPrecision;
typedef enum { OVERFLOW_TRUNCATE, OVERFLOW_SPLIT, OVERFLOW_DROP } ConfigOverflow;
typedef enum { ON_ERROR_FAIL, ON_ERROR_SKIP } ConfigOnError;
/* train.on_nonfinite: what a step whose loss, gradient or update is not finite does. */
typedef enum { ON_NONFINITE_STOP, ON_NONFINITE_SKIP } ConfigOnNonfinite;
/* train.objective: supervised next-token loss, or preference tuning on (prompt, chosen,
 * rejected) triples (TRL's DPOTrainer / ORPOTrainer; see README "Preference tuning"). */
typedef enum { OBJECTIVE_SFT, OBJECTIVE_DPO, OBJECTIVE_ORPO } ConfigObjective;
typedef enum { DPO_LOSS_SIGMOID, DPO_LOSS_IPO, DPO_LOSS_HINGE } ConfigDpoLoss;
/* dpo.reference: the adapter the run starts from, frozen (= the base without lora.init_from),
 * or the bare base model. */
typedef enum { DPO_REFERENCE_INITIAL, DPO_REFERENCE_BASE } ConfigDpoReference;
/* data.format, in data/data.h's DataFormat order. */
typedef enum {
    CONFIG_FORMAT_AUTO,
    CONFIG_FORMAT_TOKENS,
    CONFIG_FORMAT_TEXT,
    CONFIG_FORMAT_COMPLETION,
    CONFIG_FORMAT_ALPACA,
    CONFIG_FORMAT_CHAT
} ConfigFormat;

typedef struct ConfigList {
    char **items; /* n owned strings */
    int n;
} ConfigList;

typedef struct Config {
    struct {
        char *path;              /* required */
        ConfigDtype dtype;       /* [f32] */
        ConfigQuantize quantize; /* [none] */
    } model;
    struct {
        int64_t r;                 /* [8], >= 1 */
        double alpha;              /* [16], > 0 */
        double dropout;            /* [0.0], in [0, 1) */
        ConfigList target_modules; /* [null -> n == 0: the model family's default] */
        bool rslora;               /* [false] */
        char *init_from;           /* [null] -> NULL */
    } lora;
    struct {
        ConfigList train;           /* required, >= 1 entry */
        ConfigList valid;           /* [null] -> n == 0 */
        ConfigFormat format;        /* [auto]: from the first record's fields */
        char *tokenizer;            /* [null] -> NULL = model.path; a tokenizer directory */
        char *chat_template;        /* [null] -> the tokenizer's; inline Jinja or a file path */
        char *chat_template_kwargs; /* [null] extra template variables (e.g. enable_thinking:
                                       false) as a JSON object text, keys sorted */
        bool add_eos;               /* [true] */
        bool train_on_prompt;       /* [false] */
        char *input_field;          /* [input_ids] */
        char *labels_field;         /* [labels]; null -> NULL (labels = input_ids) */
        char *text_field;           /* [text] */
        char *prompt_field;         /* [prompt] */
        char *completion_field;     /* [completion] */
        char *messages_field;       /* [messages] */
        int64_t seq_len;            /* [512], >= 2 */
        bool packing;               /* [false] */
        ConfigOverflow overflow;    /* [truncate] */
        bool shuffle;               /* [true] */
        int64_t shuffle_buffer;     /* [10000], >= 1 */
        ConfigOnError on_error;     /* [fail] */
    } data;
    struct {
        int64_t batch_size;        /* [4], >= 1 */
        int64_t grad_accum;        /* [1], >= 1 */
        int64_t max_steps;         /* [1000], >= 1 */
        int64_t epochs;            /* [null] -> 0 = unset; else >= 1 and it wins over max_steps */
        double lr;                 /* [2e-4], > 0 */
        LrKind lr_scheduler;       /* [cosine] */
        int64_t warmup_steps;      /* [0], >= 0 */
        double min_lr_ratio;       /* [0.0], in [0, 1] */
        double weight_decay;       /* [0.0], >= 0 */
        double adam_beta1;         /* [0.9], in [0, 1) */
        double adam_beta2;         /* [0.999], in [0, 1) */
        double adam_eps;           /* [1e-8], > 0 */
        double max_grad_norm;      /* [1.0], >= 0; 0 disables clipping */
        int64_t seed;              /* [42], >= 0 */
        int64_t threads;           /* [0] = all cores, >= 0 */
        ConfigPrecision precision; /* [auto]: bf16 where the CPU multiplies bf16 natively */
        /* [false]: keep only each layer's input; recompute the layer in backward */
        bool gradient_checkpointing;
        ConfigOnNonfinite on_nonfinite; /* [stop] */
        int64_t max_nonfinite_skips;    /* [10], >= 1: skip stops after that many in a row */
        ConfigObjective objective;      /* [sft] */
    } train;
    struct {
        double beta;                   /* [0.1], > 0 */
        ConfigDpoLoss loss_type;       /* [sigmoid] */
        ConfigDpoReference reference;  /* [initial] */
        bool precompute_ref_log_probs; /* [false] */
    } dpo;
    struct {
        double beta; /* [0.1], > 0 */
    } orpo;
    struct {
        int64_t every;       /* [0], >= 0 */
        int64_t max_batches; /* [0] = whole valid set, >= 0 */
    } eval;
    struct {
        char *dir;          /* required */
        int64_t save_every; /* [100], >= 0; 0 = only at the end */
        int64_t keep;       /* [3], >= 1 */
    } output;
    struct {
        int64_t every; /* [10], >= 1 */
    } log;
} Config;

/* config_load's results: the config is loaded; the file cannot be read; its content (or a
 * --set) is not a valid config. */
enum { CONFIG_OK = 0, CONFIG_UNREADABLE = -1, CONFIG_INVALID = -2 };

/* Fills *out with the defaults, then the YAML file at path, then each "KEY=VALUE" of sets
 * in order (VALUE parsed as a YAML scalar or flow sequence against the key's type).
 * Returns CONFIG_OK, CONFIG_INVALID or CONFIG_UNREADABLE. On error *out holds nothing to
 * free and err says what, where, and what to do. */
int config_load(const char *path, const char *const *sets, int n_sets, Config *out, char *err,
                size_t errlen);

/* The defaults alone (required keys NULL / empty). 0, or -1 when out of memory. */
int config_defaults(Config *c);

void config_free(Config *c);

/* Every key, in file order: its dotted path for i in [0, count), NULL past the end. */
const char *config_key_path(int i);
/* The values key i takes, NULL-terminated (enum names; true, false for a bool), or NULL
 * when it takes any value of its type: what --config-keys and the shell completion offer. */
const char *const *config_key_choices(int i);
/* The key's effective value as YAML text (strings double-quoted, floats %.17g, lists in
 * flow style, null for unset). Returns the length, or -1 when it does not fit. */
int config_format_value(const Config *c, int i, char *buf, size_t len);

/* Writes every key with its effective value as YAML that config_load reads back to an equal
 * Config (through fsio: atomic). 0 or -1 with err. */
int config_write_resolved(const Config *c, const char *path, char *err, size_t errlen);
/* The value of key kp in a config_result_keys() text, as (start, length); NULL if absent. */
const char *config_result_value(const char *keys, const char *kp, size_t *len);

/* Resume compatibility. config_result_keys returns (malloc'ed) "key=value\n" lines, sorted
 * by key, for every key that changes the training result:
 *   model.*, lora.*, data.* except data.valid, and train.* except train.max_steps (a run
 *   may be extended; note that the lr schedule's horizon then moves with it) and
 *   train.threads (it changes speed only up to floating-point summation order, and a
 *   preempted job may land on another machine) and train.gradient_checkpointing (the
 *   result is bit-identical either way; a job that ran out of memory may resume with it)
 *   and train.on_nonfinite / train.max_nonfinite_skips (they decide what happens at a
 *   step that is not finite, not the steps before it: a run stopped there may resume
 *   with skip).
 * Not counted: eval.*, log.*, output.* — they change what is observed or kept, not the
 * trained weights. NULL when out of memory. */
char *config_result_keys(const Config *c);
/* Compares two config_result_keys texts; writes the differing key paths, comma-separated,
 * to out (keys present in only one count too) and returns how many differ. A key saved
 * lacks (a checkpoint of a lorafit from before the key) counts as its default value, and
 * train.precision as f32, which is what that lorafit did. */
int config_diff_result_keys(const char *saved, const char *current, char *out, size_t outlen);

#endif
