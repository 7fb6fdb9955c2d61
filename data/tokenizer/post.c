/* data/tokenizer/post.c — the post-processor's effect on ids: TemplateProcessing lays out the
 * sequences and the template's special tokens (only the sequences when add_special_tokens is
 * off); ByteLevel only trims offsets, so it changes no id; Sequence chains them. Without a
 * template the sequences are concatenated. */
#include <stdlib.h>

#include "data/tokenizer/internal.h"

int post_apply(const Post *post, const TokenizerIds *a, const TokenizerIds *b,
               bool add_special_tokens, TokenizerIds *out) {
    if (!post->has_template) {
        for (size_t i = 0; i < a->n; i++)
            if (ids_push(out, a->ids[i])) return -1;
        for (size_t i = 0; b && i < b->n; i++)
            if (ids_push(out, b->ids[i])) return -1;
        return 0;
    }
    const TemplateItem *items = b ? post->pair : post->single;
    size_t n = b ? post->n_pair : post->n_single;
    for (size_t k = 0; k < n; k++) {
        const TemplateItem *it = &items[k];
        if (it->seq >= 0) {
            const TokenizerIds *s = it->seq == 0 ? a : b;
            for (size_t i = 0; s && i < s->n; i++)
                if (ids_push(out, s->ids[i])) return -1;
        } else if (add_special_tokens) {
            for (size_t i = 0; i < it->n_ids; i++)
                if (ids_push(out, it->ids[i])) return -1;
        }
    }
    return 0;
}

static void free_items(TemplateItem *items, size_t n) {
    for (size_t i = 0; i < n; i++) free(items[i].ids);
    free(items);
}

void post_free(Post *post) {
    free_items(post->single, post->n_single);
    free_items(post->pair, post->n_pair);
    post->single = post->pair = NULL;
    post->n_single = post->n_pair = 0;
    post->has_template = false;
}
