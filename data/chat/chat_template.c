/* data/chat/chat_template.c — chat_template_parse and chat_template_free: checks the source,
 * runs the lexer and parser with one failure jump, and keeps the tree in the template's own
 * arena (a parsed template is read-only from then on, so renders may share it). */
#include "data/chat/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_protected(ChatTemplate *t, Arena *scratch) {
    if (setjmp(t->fail.jb)) return -1;
    size_t bad = ct_u8_invalid_at(t->src, t->srclen);
    if (bad < t->srclen)
        ct_fail_at(&t->fail, t->src, t->srclen, (uint32_t)bad, "the template is not valid UTF-8");
    TokenList tokens = ct_lex_template(&t->arena, scratch, &t->fail, t->src, t->srclen);
    ct_parse_template(t, scratch, &tokens);
    return 0;
}

/* The source copied and parsed; an allocation failure inside jumps back here (-1). A function
 * of its own so that nothing of the caller's lives across the setjmp (gcc's -Wclobbered
 * under Debian's hardening flags). */
static int parse_guarded(ChatTemplate *t, Arena *scratch, const char *src, size_t len) {
    if (setjmp(t->fail.jb)) return -1;
    t->src = ct_arena_strdup(&t->arena, src, len);
    t->srclen = len;
    return parse_protected(t, scratch);
}

ChatTemplate *chat_template_parse(const char *src, size_t len, char *err, size_t errlen) {
    if (len >= UINT32_MAX / 8) {
        if (err && errlen) snprintf(err, errlen, "chat template of %zu bytes is too large", len);
        return NULL;
    }
    ChatTemplate *t = calloc(1, sizeof *t);
    if (!t) {
        if (err && errlen) snprintf(err, errlen, "out of memory parsing a chat template");
        return NULL;
    }
    ct_arena_init(&t->arena, (size_t)1 << 30, &t->fail);
    Arena scratch;
    ct_arena_init(&scratch, (size_t)1 << 30, &t->fail);
    int rc = parse_guarded(t, &scratch, src ? src : "", len);
    ct_arena_free(&scratch);
    if (rc != 0) {
        if (err && errlen) snprintf(err, errlen, "%s", t->fail.msg);
        ct_arena_free(&t->arena);
        free(t);
        return NULL;
    }
    return t;
}

void chat_template_free(ChatTemplate *t) {
    if (!t) return;
    ct_arena_free(&t->arena);
    free(t);
}
