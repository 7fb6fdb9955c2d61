/* data/chat/chat.h — render a model's chat template (the Jinja text in
 * tokenizer_config.json's "chat_template") the way transformers' apply_chat_template does.
 *
 * The reference is @huggingface/jinja 0.5.11 (Jinja with trim_blocks and lstrip_blocks, as
 * transformers configures it): output is byte-identical to its Template.render for every
 * construct it supports, including its departures from Python Jinja2 (e.g. `none` prints as
 * "", `true` as "true", `s.strip('x')` strips whitespace). Where the reference fails and
 * Jinja2 has an obvious meaning, a few extensions are accepted: `{% raw %}`, the `count` and
 * `d` filters, `default` without parentheses, tests with an argument (`is divisibleby(3)`,
 * `is eq 2`, `is in [..]`). Anything else unsupported is an error naming the construct and
 * its line and column in the template.
 *
 * A parsed template is immutable: any number of threads may render it at once. Each render
 * allocates its own working memory and frees it before returning. */
#ifndef LORAFIT_CHAT_TEMPLATE_H
#define LORAFIT_CHAT_TEMPLATE_H

#include <jansson.h>
#include <stddef.h>

typedef struct ChatTemplate ChatTemplate;

/* Parses template source (UTF-8, `len` bytes, need not be NUL-terminated). NULL on a syntax
 * error, with "chat template line L, column C: ..." in err. */
ChatTemplate *chat_template_parse(const char *src, size_t len, char *err, size_t errlen);

/* Renders with `context`, a JSON object whose keys become the template's variables:
 * messages (list of {role, content, ...}; content a string or a list of parts),
 * add_generation_prompt, bos_token, eos_token and the other special tokens, tools,
 * documents, and any extra keys (e.g. enable_thinking). raise_exception(msg), namespace(),
 * range() and strftime_now() are provided. Returns the text (malloc'd, NUL-terminated,
 * *len its length without the NUL; len may be NULL) or NULL with a message in err: the
 * template's own raise_exception message ("... raise_exception: <msg>"), a runtime error, or
 * a limit (output size, memory, steps, nesting depth) that a runaway template hit. */
char *chat_template_render(const ChatTemplate *t, const json_t *context, size_t *len, char *err,
                           size_t errlen);

void chat_template_free(ChatTemplate *t);

/* Limits of one render; exceeding one is an error naming it. */
#define CHAT_TEMPLATE_MAX_OUTPUT (64u << 20)     /* bytes of rendered text */
#define CHAT_TEMPLATE_MAX_MEMORY (256u << 20)    /* bytes of working memory */
#define CHAT_TEMPLATE_MAX_STEPS  (20u * 1000000) /* evaluated nodes and element operations */
#define CHAT_TEMPLATE_MAX_DEPTH  200             /* nesting of template constructs */
#define CHAT_TEMPLATE_MAX_CALLS  64              /* nested macro calls */

#endif
