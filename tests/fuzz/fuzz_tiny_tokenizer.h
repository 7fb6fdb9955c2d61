/* tests/fuzz/fuzz_tiny_tokenizer.h — the harnesses' tokenizer: byte-level BPE without
 * merges over the 256 bytes (ids 0..255) and "<s>" (256), which the post-processor puts
 * first. Built once from JSON; aborts if that fails. */
#ifndef LORAFIT_FUZZ_TINY_TOKENIZER_H
#define LORAFIT_FUZZ_TINY_TOKENIZER_H

#include <stdio.h>
#include <stdlib.h>

#include "data/data.h"

/* GPT-2's byte -> printable code point map, as UTF-8 into out (returns its length). */
static inline int fuzz_byte_token(int b, char *out) {
    int cp;
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) {
        cp = b;
    } else {
        int n = 0;
        for (int k = 0; k < b; k++)
            if (!((k >= 33 && k <= 126) || (k >= 161 && k <= 172) || (k >= 174 && k <= 255))) n++;
        cp = 256 + n;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

static inline Tokenizer *fuzz_tiny_tokenizer(void) {
    static char json[16384];
    size_t n = 0;
    n += (size_t)snprintf(json + n, sizeof json - n,
                          "{\"version\": \"1.0\", \"added_tokens\": [{\"id\": 256, \"content\": "
                          "\"<s>\", \"single_word\": false, \"lstrip\": false, \"rstrip\": false, "
                          "\"normalized\": false, \"special\": true}], \"normalizer\": null, "
                          "\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": "
                          "false, \"trim_offsets\": true, \"use_regex\": true}, "
                          "\"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": "
                          "[{\"SpecialToken\": {\"id\": \"<s>\", \"type_id\": 0}}, {\"Sequence\": "
                          "{\"id\": \"A\", \"type_id\": 0}}], \"pair\": [{\"Sequence\": {\"id\": "
                          "\"A\", \"type_id\": 0}}, {\"Sequence\": {\"id\": \"B\", \"type_id\": "
                          "1}}], \"special_tokens\": {\"<s>\": {\"id\": \"<s>\", \"ids\": [256], "
                          "\"tokens\": [\"<s>\"]}}}, \"decoder\": {\"type\": \"ByteLevel\"}, "
                          "\"model\": {\"type\": \"BPE\", \"dropout\": null, \"unk_token\": null, "
                          "\"vocab\": {");
    for (int b = 0; b < 256; b++) {
        char tok[4];
        int len = fuzz_byte_token(b, tok);
        const char *esc = tok[0] == '"' ? "\\\"" : tok[0] == '\\' ? "\\\\" : NULL;
        n += (size_t)snprintf(json + n, sizeof json - n, "%s\"%s%.*s\": %d", b ? ", " : "",
                              esc ? esc : "", esc ? 0 : len, tok, b);
    }
    n += (size_t)snprintf(json + n, sizeof json - n, "}, \"merges\": []}}");
    char err[512];
    Tokenizer *t = tokenizer_load_json(json, n, err, sizeof err);
    if (!t) abort();
    return t;
}

#endif
