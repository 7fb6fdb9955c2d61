/* tests/fuzz/fuzz_chat_template.c — chat_template_parse on arbitrary template text, and
 * chat_template_render of what parses with a fixed conversation. A failure must come with a
 * message; an output must be valid UTF-8 and the same when rendered again. */
#include "data/chat/chat.h"
#include "tests/fuzz/fuzz_util.h"

static const char CONTEXT[] =
    "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"},"
    " {\"role\": \"user\", \"content\": \"Hi \\u00fc \\ud83d\\ude00 <think>x</think>\"},"
    " {\"role\": \"assistant\", \"content\": \"\\n<think>\\nr\\n</think>\\n\\nHello\","
    "  \"tool_calls\": [{\"id\": \"abc123xyz\", \"type\": \"function\","
    "  \"function\": {\"name\": \"f\", \"arguments\": {\"a\": [1, 2.5, null, true]}}}]},"
    " {\"role\": \"tool\", \"content\": \"{\\\"ok\\\": 1}\", \"tool_call_id\": \"abc123xyz\"},"
    " {\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"part\"}, {\"type\": "
    "\"image\"}]}],"
    " \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", \"description\": \"d\","
    "  \"parameters\": {\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"array\"}}}}}],"
    " \"add_generation_prompt\": true, \"bos_token\": \"<s>\", \"eos_token\": \"</s>\","
    " \"enable_thinking\": false, \"date_string\": \"26 Jul 2024\", \"n\": 3}";

static int valid_utf8(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t k = u[i] < 0x80             ? 1
                   : (u[i] & 0xE0) == 0xC0 ? 2
                   : (u[i] & 0xF0) == 0xE0 ? 3
                   : (u[i] & 0xF8) == 0xF0 ? 4
                                           : 0;
        if (!k || n - i < k) return 0;
        for (size_t j = 1; j < k; j++)
            if ((u[i + j] & 0xC0) != 0x80) return 0;
        if (k == 3 && u[i] == 0xED && u[i + 1] >= 0xA0) return 0; /* a surrogate */
        i += k;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static json_t *ctx;
    if (!ctx) {
        ctx = json_loads(CONTEXT, 0, NULL);
        if (!ctx) abort();
    }
    char *src = malloc(size ? size : 1); /* exact size: ASan sees any read past the end */
    if (!src) abort();
    memcpy(src, data, size);
    char err[1024];
    err[0] = '\0';
    ChatTemplate *t = chat_template_parse(src, size, err, sizeof err);
    free(src); /* the template keeps its own copy */
    if (!t) {
        if (!err[0]) abort();
        return 0;
    }
    size_t len = 0, len2 = 0;
    err[0] = '\0';
    char *out = chat_template_render(t, ctx, &len, err, sizeof err);
    if (!out) {
        if (!err[0]) abort();
    } else {
        if (!valid_utf8(out, len) || out[len] != '\0') abort();
        if (!memmem(data, size, "strftime_now", 12)) { /* the clock may tick between */
            char *again = chat_template_render(t, ctx, &len2, err, sizeof err);
            if (!again || len2 != len || memcmp(again, out, len) != 0) abort();
            free(again);
        }
        free(out);
    }
    chat_template_free(t);
    return 0;
}
