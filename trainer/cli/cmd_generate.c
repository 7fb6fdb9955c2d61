/* trainer/cli/cmd_generate.c — `lorafit generate --model DIR [--adapter DIR]
 * (--prompt-ids "1 2 3" | --prompt TEXT [--chat [--chat-template-kwargs JSON]]) [-n N]
 * [--temperature T] [--seed S]`.
 *
 * With --prompt-ids it prints the prompt and the generated ids on one line. With --prompt the
 * text is encoded with the model directory's tokenizer (its special tokens, e.g. BOS, added);
 * with --chat it is wrapped as one user message by the chat template with the generation
 * prompt (the adapter's CHAT_TEMPLATE_FILE, the template it was trained on, when --adapter
 * names one that has it; else the tokenizer's), with --chat-template-kwargs' keys as further
 * template variables (Qwen3's {"enable_thinking": false}, as data.chat_template_kwargs gives
 * them in training). The text is printed as it is generated (streaming
 * decode: the prompt's ids go through the decoder first, so the continuation's first word keeps its
 * space; in --chat mode only the reply is printed), and generation stops after N tokens or at an
 * end-of-turn token: EOS (tokenizer_config.json's or config.json's eos_token_id) or one of the
 * usual end-of-turn specials (<|eot_id|>, <|im_end|>, <|end|>, <end_of_turn>, <|endoftext|>,
 * Gemma 4's <turn|>). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trainer/cli/cli.h"
#include "trainer/model/model.h"
#include "trainer/train/train.h"

static void generate_usage(FILE *out) {
    fprintf(
        out,
        "usage: lorafit generate --model DIR [--adapter DIR] (--prompt-ids \"1 2 3\" | "
        "--prompt TEXT [--chat])\n"
        "                        [--chat-template-kwargs JSON] [-n N] [--temperature T] [--seed "
        "S]\n"
        "                        [--precision auto|f32|bf16] [--quantize none|q8_0|q4_0|q4_k|"
        "q5_k|q6_k]\n"
        "  --prompt-ids: prints the prompt ids followed by N generated ids (default 32).\n"
        "  --prompt: the text, encoded with DIR's tokenizer; prints the text as it is\n"
        "  generated and stops at EOS or an end-of-turn token. --chat wraps it as a user\n"
        "  message with the chat template and the generation prompt, and prints the reply;\n"
        "  --chat-template-kwargs '{\"enable_thinking\": false}' sets template variables.\n"
        "  --temperature 0 (the default) is greedy; otherwise sampling seeded by --seed.\n"
        "  --precision of the matrix products (default auto: bf16 on CPUs with native bf16).\n"
        "  --quantize the linear weights at load, as model.quantize does (default none).\n");
}

/* "1 2 3" (spaces or commas) -> ids; -1 on a malformed or empty list. */
static int parse_ids(const char *s, int32_t **ids, int *n) {
    int cap = 16;
    *ids = malloc((size_t)cap * sizeof **ids);
    *n = 0;
    if (!*ids) return -1;
    while (*s) {
        while (*s == ' ' || *s == ',' || *s == '\t') s++;
        if (!*s) break;
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (end == s || errno || v < 0 || v > INT32_MAX) return -1;
        if (*n == cap) {
            int32_t *grown = realloc(*ids, (size_t)(cap *= 2) * sizeof **ids);
            if (!grown) return -1;
            *ids = grown;
        }
        (*ids)[(*n)++] = (int32_t)v;
        s = end;
    }
    return *n > 0 ? 0 : -1;
}

static int parse_number(const char *flag, const char *s, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    *out = strtod(s, &end);
    if (end == s || *end || errno || !(*out >= lo && *out <= hi)) {
        fprintf(stderr, "lorafit generate: %s '%s' must be a number in [%g, %g]\n", flag, s, lo,
                hi);
        return -1;
    }
    return 0;
}

typedef struct TextOut {
    const Tokenizer *tok;
    TokenizerStream *stream;
    int32_t stops[8];
    int n_stops;
    bool printing;
    char err[512];
} TextOut;

static int feed(TextOut *o, int32_t id) {
    const char *piece;
    size_t len;
    if (tokenizer_stream_step(o->stream, id, &piece, &len, o->err, sizeof o->err) != 0) return -1;
    if (piece && o->printing) {
        fwrite(piece, 1, len, stdout);
        fflush(stdout);
    }
    return 0;
}

static int on_token(void *ctx, int32_t id) {
    TextOut *o = ctx;
    for (int i = 0; i < o->n_stops; i++)
        if (id == o->stops[i]) return 1;
    return feed(o, id);
}

static void add_stop(TextOut *o, int32_t id) {
    if (id < 0 || o->n_stops == 8) return;
    for (int i = 0; i < o->n_stops; i++)
        if (o->stops[i] == id) return;
    o->stops[o->n_stops++] = id;
}

/* adapter_dir/CHAT_TEMPLATE_FILE, or NULL (none there, or no adapter); *failed when it is
 * there and cannot be read (err says why). */
static char *adapter_template(const char *adapter_dir, bool *failed, char *err, size_t errlen) {
    char path[4200];
    *failed = false;
    if (!adapter_dir) return NULL;
    if (path_join(path, sizeof path, adapter_dir, CHAT_TEMPLATE_FILE, err, errlen) != 0) {
        *failed = true;
        return NULL;
    }
    return store_read_file_if_there(path, (size_t)64 << 20, NULL, failed, err, errlen);
}

/* The prompt text as ids: encoded (with special tokens), or rendered by the chat template
 * (template, else the tokenizer's) as one user message with the generation prompt and the
 * variables of kwargs (a JSON object, or NULL), and encoded without. */
static int text_prompt(const Tokenizer *tok, const char *template, const char *text, bool chat,
                       const char *kwargs, int32_t **ids, int *n, char *err, size_t errlen) {
    TokenizerIds out = {0};
    char *rendered = NULL;
    size_t len = strlen(text);
    int rc = -1;
    if (chat) {
        const TokenizerSpecial *sp = tokenizer_special(tok);
        if (!template) template = sp->chat_template;
        if (!template) {
            snprintf(err, errlen, "--chat: the tokenizer has no chat_template");
            return -1;
        }
        json_t *extra = NULL;
        if (kwargs) {
            json_error_t je;
            extra = json_loads(kwargs, 0, &je);
            if (!json_is_object(extra)) {
                snprintf(err, errlen, "--chat-template-kwargs: not a JSON object (%s)",
                         extra ? "another JSON value" : je.text);
                json_decref(extra);
                return -1;
            }
        }
        ChatTemplate *t = chat_template_parse(template, strlen(template), err, errlen);
        if (!t) {
            json_decref(extra);
            return -1;
        }
        json_t *ctx = json_pack("{s:[{s:s,s:s}],s:b}", "messages", "role", "user", "content", text,
                                "add_generation_prompt", 1);
        if (ctx && extra) json_object_update(ctx, extra);
        json_decref(extra);
        const char *names[] = {"bos_token", "eos_token", "pad_token", "unk_token"};
        const char *values[] = {sp->bos_token, sp->eos_token, sp->pad_token, sp->unk_token};
        for (int i = 0; ctx && i < 4; i++)
            if (values[i]) json_object_set_new(ctx, names[i], json_string(values[i]));
        rendered = ctx ? chat_template_render(t, ctx, &len, err, errlen) : NULL;
        json_decref(ctx);
        chat_template_free(t);
        if (!rendered) return -1;
        text = rendered;
    }
    TokenizerScratch *sc = tokenizer_scratch_new();
    if (sc && tokenizer_encode(tok, sc, text, len, !chat, &out, err, errlen) == 0) {
        if (out.n == 0 || out.n > INT32_MAX) {
            snprintf(err, errlen, "--prompt: the text encodes to no tokens");
        } else {
            *ids = out.ids;
            *n = (int)out.n;
            out.ids = NULL;
            rc = 0;
        }
    }
    tokenizer_scratch_free(sc);
    tokenizer_ids_free(&out);
    free(rendered);
    return rc;
}

/* --quantize: model.quantize's values, in ConfigQuantize's order. */
static int parse_quantize(const char *value, ConfigQuantize *out) {
    static const char *const names[] = {"none", "q8_0", "q4_0", "q4_k", "q5_k", "q6_k"};
    for (int i = 0; i < 6; i++)
        if (strcmp(value, names[i]) == 0) {
            *out = (ConfigQuantize)i;
            return 0;
        }
    fprintf(stderr,
            "lorafit generate: --quantize must be none, q8_0, q4_0, q4_k, q5_k or q6_k, not "
            "'%s'\n",
            value);
    return -1;
}

int cmd_generate(int argc, char **argv) {
    const char *model_dir = NULL, *adapter_dir = NULL, *prompt = NULL, *text = NULL, *kwargs = NULL;
    bool chat = false;
    double n = 32, temperature = 0, seed = 0;
    ConfigPrecision precision = CONFIG_PRECISION_AUTO;
    ConfigQuantize quantize = CONFIG_QUANTIZE_NONE;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            generate_usage(stdout);
            return 0;
        }
        if (strcmp(a, "--chat") == 0) {
            chat = true;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "lorafit generate: %s needs a value\n", a);
            generate_usage(stderr);
            return EXIT_USAGE;
        }
        const char *v = argv[++i];
        if (strcmp(a, "--model") == 0)
            model_dir = v;
        else if (strcmp(a, "--adapter") == 0)
            adapter_dir = v;
        else if (strcmp(a, "--prompt-ids") == 0)
            prompt = v;
        else if (strcmp(a, "--prompt") == 0)
            text = v;
        else if (strcmp(a, "--chat-template-kwargs") == 0)
            kwargs = v;
        else if (strcmp(a, "-n") == 0) {
            if (parse_number(a, v, 0, 1 << 20, &n)) return EXIT_USAGE;
        } else if (strcmp(a, "--temperature") == 0) {
            if (parse_number(a, v, 0, 1e6, &temperature)) return EXIT_USAGE;
        } else if (strcmp(a, "--precision") == 0) {
            if (cmd_parse_precision("generate", v, &precision) != 0) return EXIT_USAGE;
        } else if (strcmp(a, "--quantize") == 0) {
            if (parse_quantize(v, &quantize) != 0) return EXIT_USAGE;
        } else if (strcmp(a, "--seed") == 0) {
            if (parse_number(a, v, 0, 9007199254740992.0, &seed)) return EXIT_USAGE;
        } else {
            fprintf(stderr, "lorafit generate: unknown option '%s'\n", a);
            generate_usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (!model_dir || !prompt == !text || (chat && !text) || (kwargs && !chat)) {
        fprintf(stderr, "lorafit generate: --model and one of --prompt-ids or --prompt are "
                        "required (--chat goes with --prompt, --chat-template-kwargs with "
                        "--chat)\n");
        generate_usage(stderr);
        return EXIT_USAGE;
    }
    int32_t *ids = NULL, *out = NULL;
    int n_prompt = 0, rc = 1;
    char err[1024];
    TextOut to = {0};
    if (text) {
        bool failed = false;
        char *template = chat ? adapter_template(adapter_dir, &failed, err, sizeof err) : NULL;
        Tokenizer *tok = failed ? NULL : train_tokenizer_load(model_dir, err, sizeof err);
        if (!tok ||
            text_prompt(tok, template, text, chat, kwargs, &ids, &n_prompt, err, sizeof err) != 0) {
            fprintf(stderr, "lorafit generate: %s\n", err);
            tokenizer_free(tok);
            free(template);
            return EXIT_USAGE;
        }
        free(template);
        to.tok = tok;
        if (!(to.stream = tokenizer_stream_new(tok, true))) {
            fprintf(stderr, "lorafit generate: out of memory\n");
            tokenizer_free(tok);
            free(ids);
            return EXIT_RUNTIME;
        }
        add_stop(&to, tokenizer_special(tok)->eos_id);
        const char *ends[] = {"<|eot_id|>",    "<|im_end|>",    "<|end|>",
                              "<end_of_turn>", "<|endoftext|>", "<turn|>"};
        for (int i = 0; i < 6; i++)
            add_stop(&to, tokenizer_token_to_id(tok, ends[i], strlen(ends[i])));
    } else if (parse_ids(prompt, &ids, &n_prompt) != 0) {
        fprintf(stderr,
                "lorafit generate: --prompt-ids '%s' must be non-negative integers "
                "separated by spaces\n",
                prompt);
        free(ids);
        return EXIT_USAGE;
    }
    char note[512];
    precision = train_resolve_precision(precision, note, sizeof note);
    if (precision == CONFIG_PRECISION_BF16) fprintf(stderr, "lorafit: %s\n", note); /* f32: quiet */
    Model *m =
        model_load_quantized(model_dir, precision == CONFIG_PRECISION_BF16 ? MODEL_BF16 : MODEL_F32,
                             train_quantize_type(quantize), err, sizeof err);
    Lora *lora = NULL;
    if (!m) goto fail;
    if (adapter_dir && !(lora = lora_load_adapter(m, adapter_dir, err, sizeof err))) goto fail;
    out = malloc(((size_t)n_prompt + (size_t)n) * sizeof *out);
    if (!out) {
        snprintf(err, sizeof err, "out of memory");
        goto fail;
    }
    if (to.stream) {
        add_stop(&to, model_config(m)->eos_token_id);
        to.printing = !chat;
        for (int i = 0; i < n_prompt; i++)
            if (feed(&to, ids[i]) != 0) {
                snprintf(err, sizeof err, "%s", to.err);
                goto fail;
            }
        to.printing = true;
        if (model_generate_stream(m, lora, ids, n_prompt, (int)n, (float)temperature,
                                  (uint64_t)seed, train_tensor_precision(precision), out, on_token,
                                  &to, NULL, err, sizeof err) != 0) {
            if (to.err[0]) snprintf(err, sizeof err, "%s", to.err);
            goto fail;
        }
        printf("\n");
    } else {
        if (model_generate(m, lora, ids, n_prompt, (int)n, (float)temperature, (uint64_t)seed,
                           train_tensor_precision(precision), out, err, sizeof err) != 0)
            goto fail;
        for (int i = 0; i < n_prompt + (int)n; i++) printf(i ? " %d" : "%d", out[i]);
        printf("\n");
    }
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "lorafit generate: %s\n", err);
done:
    free(ids);
    free(out);
    lora_free(lora);
    model_free(m);
    tokenizer_stream_free(to.stream);
    tokenizer_free((Tokenizer *)to.tok);
    return rc;
}
