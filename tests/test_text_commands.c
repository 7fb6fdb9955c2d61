/* tests/test_text_commands.c — the commands around text data, run as a user runs them:
 * what a text format needs and says when it is missing (a tokenizer, a chat template), the
 * chat template's variables (data.chat_template_kwargs), `lorafit tokenize`,
 * `lorafit generate --prompt`, and the chat template going with the adapter to every
 * output. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/test_gguf_reader.h"
#include "tests/test_train_util.h"
#include "tests/test_util.h"

START_TEST(test_missing_tokenizer_or_template_exit_2) {
    TEST_NEED_SHARED(shared);
    char *dir = test_tmpdir(), text[8192], args[8192];
    char *data = tt_write_text(dir, "t.jsonl", "{\"text\": \"Once upon a time\"}\n");
    char *chat = tt_write_text(dir, "c.jsonl",
                               "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n");
    snprintf(text, sizeof text,
             "model: {path: %s/tests/data/model/llama3/model}\ndata: {train: t.jsonl}\n"
             "output: {dir: out}\n",
             getenv("LORAFIT_ROOT") ? getenv("LORAFIT_ROOT") : ".");
    char *cfg = tt_write_text(dir, "a.yaml", text);
    snprintf(args, sizeof args, "prepare '%s' --out '%s/o.jsonl'", cfg, dir);
    tt_expect(dir, args, 2, "has no tokenizer.json (set data.tokenizer");
    snprintf(args, sizeof args, "train '%s'", cfg);
    tt_expect(dir, args, 2, "has no tokenizer.json (set data.tokenizer");
    /* stories260K's tokenizer has no chat template */
    snprintf(args, sizeof args,
             "prepare '%s' --out '%s/o.jsonl' --set data.train=%s --set data.tokenizer=%s/models/"
             "stories260K",
             cfg, dir, chat, shared);
    tt_expect(dir, args, 2,
              "has no chat_template (neither chat_template.jinja nor tokenizer_config.json's); "
              "set data.chat_template");
    /* an inline template that does not parse */
    snprintf(args, sizeof args,
             "prepare '%s' --out '%s/o.jsonl' --set data.train=%s --set data.tokenizer=%s/models/"
             "stories260K --set 'data.chat_template=\"{%% for %%}\"'",
             cfg, dir, chat, shared);
    tt_expect(dir, args, 2, "data.chat_template: chat template line 1");
    /* a template file */
    char *tf = tt_write_text(dir, "t.jinja",
                             "{% for m in messages %}<{{ m.role }}>{{ m.content }}"
                             "{% endfor %}");
    snprintf(args, sizeof args,
             "prepare '%s' --out '%s/o.jsonl' --set data.train=%s --set data.tokenizer=%s/models/"
             "stories260K --set data.chat_template=%s --set model.path=%s/models/stories260K",
             cfg, dir, chat, shared, tf, shared);
    tt_expect(dir, args, 0, "\"format\": \"chat\"");
    /* data.chat_template_kwargs reach the template, typed: false is the boolean */
    char *kt = tt_write_text(dir, "k.jinja",
                             "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}"
                             "{% if enable_thinking is defined and not enable_thinking %}"
                             "[no thinking]{% endif %}");
    size_t plain_len = 0, kw_len = 0, true_len = 0;
    const char *kwargs[] = {"", " --set 'data.chat_template_kwargs={enable_thinking: false}'",
                            " --set 'data.chat_template_kwargs={enable_thinking: true}'"};
    size_t *lens[] = {&plain_len, &kw_len, &true_len};
    char *rows[3];
    for (int i = 0; i < 3; i++) {
        snprintf(args, sizeof args,
                 "prepare '%s' --out '%s/k%d.jsonl' --set data.train=%s --set data.tokenizer=%s/"
                 "models/stories260K --set data.chat_template=%s --set model.path=%s/models/"
                 "stories260K%s",
                 cfg, dir, i, chat, shared, kt, shared, kwargs[i]);
        tt_expect(dir, args, 0, "\"format\": \"chat\"");
        char rp[4300];
        snprintf(rp, sizeof rp, "%s/k%d.jsonl", dir, i);
        rows[i] = test_read_file(rp, lens[i]);
        ck_assert_ptr_nonnull(rows[i]);
    }
    ck_assert_msg(kw_len > plain_len + 10, "enable_thinking: false changed nothing:\n%s\n%s",
                  rows[0], rows[1]);
    ck_assert_str_eq(rows[0], rows[2]);
    for (int i = 0; i < 3; i++) free(rows[i]);
    free(kt);
    free(tf);
    free(cfg);
    free(data);
    free(chat);
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_tokenize_command) {
    TEST_NEED_SHARED(shared);
    char *dir = test_tmpdir(), cmd[8192], out[4200];
    char *in = tt_write_text(
        dir, "in.jsonl",
        "{\"text\": \"Hello world\"}\n{\"messages\": [{\"role\": \"user\", \"content\": "
        "\"Hi\"}], \"add_generation_prompt\": true}\n");
    snprintf(out, sizeof out, "%s/out.jsonl", dir);
    snprintf(cmd, sizeof cmd, "'%s' tokenize '%s/tokenizers/llama3' < '%s'", test_lorafit_bin(),
             shared, in);
    ck_assert_int_eq(test_run(cmd, out), 0);
    char *text = test_read_file(out, NULL);
    ck_assert_msg(strstr(text, "{\"input_ids\": [128000, 9906, 1917]}\n") != NULL, "%s", text);
    ck_assert_msg(strstr(text, "\"text\": \"<|begin_of_text|><|start_header_id|>user<|end_header_"
                               "id|>\\n\\nHi<|eot_id|><|start_header_id|>assistant<|end_header_"
                               "id|>\\n\\n\", \"input_ids\": [128000, 128006, 882, 128007, 271, "
                               "13347, 128009, 128006, 78191, 128007, 271]}") != NULL,
                  "%s", text);
    free(text);
    free(in);
    in = tt_write_text(dir, "ids.jsonl", "{\"input_ids\": [128000, 9906, 1917]}\n");
    snprintf(cmd, sizeof cmd, "'%s' tokenize '%s/tokenizers/llama3' --decode < '%s'",
             test_lorafit_bin(), shared, in);
    ck_assert_int_eq(test_run(cmd, out), 0);
    text = test_read_file(out, NULL);
    ck_assert_str_eq(text, "{\"text\": \"<|begin_of_text|>Hello world\"}\n");
    free(text);
    snprintf(cmd, sizeof cmd,
             "'%s' tokenize '%s/tokenizers/llama3' --decode --skip-special-tokens < '%s'",
             test_lorafit_bin(), shared, in);
    ck_assert_int_eq(test_run(cmd, out), 0);
    text = test_read_file(out, NULL);
    ck_assert_str_eq(text, "{\"text\": \"Hello world\"}\n");
    free(text);
    free(in);
    in = tt_write_text(dir, "bad.jsonl", "{\"text\": \"a\"}\n{\"txt\": 1}\n");
    snprintf(cmd, sizeof cmd, "'%s' tokenize '%s/tokenizers/llama3' --no-special-tokens < '%s'",
             test_lorafit_bin(), shared, in);
    ck_assert_int_eq(test_run(cmd, out), 1);
    text = test_read_file(out, NULL);
    ck_assert_msg(strstr(text, "{\"input_ids\": [64]}") && strstr(text, "stdin:2: expected"), "%s",
                  text);
    free(text);
    free(in);
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_generate_prompt_prints_text) {
    TEST_NEED_SHARED(shared);
    char *dir = test_tmpdir(), cmd[8192], out[4200];
    snprintf(out, sizeof out, "%s/out.txt", dir);
    snprintf(cmd, sizeof cmd,
             "'%s' generate --model '%s/models/stories260K' --prompt 'Once upon a time' -n 40",
             test_lorafit_bin(), shared);
    ck_assert_int_eq(test_run(cmd, out), 0);
    char *log = test_read_file(out, NULL);
    /* the prompt, then at least a few more words of text (no ids) */
    char *text = strstr(log, "Once upon a time");
    ck_assert_msg(text != NULL, "%s", log);
    int spaces = 0;
    for (const char *p = text + 16; *p; p++) spaces += *p == ' ';
    ck_assert_msg(spaces >= 5, "no continuation: '%s'", text);
    ck_assert_msg(strpbrk(text, "0123456789") == NULL, "ids printed: '%s'", text);
    free(log);
    test_rmtree(dir);
    free(dir);
}
END_TEST

static void expect_file_text(const char *dir, const char *name, const char *want) {
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *got = test_read_file(path, NULL);
    ck_assert_msg(got != NULL, "%s: missing", path);
    ck_assert_str_eq(got, want);
    free(got);
}

/* A chat fine-tune of a base model without a chat template (stories260K) with
 * data.chat_template: the template it was trained on goes with the adapter (the run's
 * directory, the final adapter, an exported checkpoint) and from there into the merged
 * model (chat_template.jinja), its GGUF (tokenizer.chat_template) and generate --chat. A run
 * without chat data removes one an earlier run left in its directory. */
START_TEST(test_adapter_carries_the_chat_template_it_was_trained_on) {
    TEST_NEED_SHARED(shared);
    static const char *const tmpl = "{% for m in messages %}<{{ m.role }}>{{ m.content }}"
                                    "{% endfor %}{% if add_generation_prompt %}<assistant>"
                                    "{% endif %}";
    char *dir = test_tmpdir(), text[8192], args[8192], out[4300], path[4400];
    char *tf = tt_write_text(dir, "t.jinja", tmpl);
    char *chat = tt_write_text(
        dir, "c.jsonl",
        "{\"messages\": [{\"role\": \"user\", \"content\": \"Tell a story\"}, {\"role\": "
        "\"assistant\", \"content\": \"Once upon a time there was a cat.\"}]}\n"
        "{\"messages\": [{\"role\": \"user\", \"content\": \"And then?\"}, {\"role\": "
        "\"assistant\", \"content\": \"The cat found a big red ball.\"}]}\n");
    snprintf(text, sizeof text,
             "model: {path: %s/models/stories260K}\n"
             "data: {train: c.jsonl, format: chat, chat_template: t.jinja, seq_len: 64}\n"
             "train: {batch_size: 1, max_steps: 2}\noutput: {dir: out, save_every: 1}\n",
             shared);
    char *cfg = tt_write_text(dir, "chat.yaml", text);
    snprintf(args, sizeof args, "train '%s'", cfg);
    tt_expect(dir, args, 0, NULL);
    snprintf(out, sizeof out, "%s/out", dir);
    expect_file_text(out, "chat_template.jinja", tmpl);
    expect_file_text(out, "adapter/chat_template.jinja", tmpl);
    snprintf(args, sizeof args, "export '%s/checkpoint-1' --out '%s/exported'", out, dir);
    tt_expect(dir, args, 0, NULL);
    expect_file_text(dir, "exported/chat_template.jinja", tmpl);
    /* merged as a Hugging Face directory, then as a GGUF */
    const char *merged[] = {"merged", "merged.gguf"};
    for (int i = 0; i < 2; i++) {
        snprintf(args, sizeof args,
                 "merge --model '%s/models/stories260K' --adapter '%s/adapter' --out '%s/%s'",
                 shared, out, dir, merged[i]);
        tt_expect(dir, args, 0, NULL);
    }
    expect_file_text(dir, "merged/chat_template.jinja", tmpl);
    snprintf(path, sizeof path, "%s/merged.gguf", dir);
    TgFile f;
    tg_read(path, &f);
    char *s = tg_str(&f, "tokenizer.chat_template");
    ck_assert_str_eq(s, tmpl);
    free(s);
    tg_free(&f);
    /* generate --chat: the base has no template of its own; the adapter's serves */
    snprintf(args, sizeof args,
             "generate --model '%s/models/stories260K' --prompt 'Tell a story' --chat -n 4",
             shared);
    tt_expect(dir, args, 2, "--chat: the tokenizer has no chat_template");
    snprintf(args, sizeof args,
             "generate --model '%s/models/stories260K' --adapter '%s/adapter' --prompt 'Tell a "
             "story' --chat -n 4",
             shared, out);
    tt_expect(dir, args, 0, NULL);
    /* a run on plain text in a directory an earlier chat run left a template in */
    char *plain = tt_write_text(dir, "p.jsonl", "{\"text\": \"Once upon a time\"}\n");
    snprintf(path, sizeof path, "%s/out2", dir);
    snprintf(args, sizeof args,
             "train '%s' --set data.train=%s --set data.format=text --set output.dir=%s", cfg,
             plain, path);
    ck_assert_int_eq(mkdir(path, 0755), 0);
    char *stale = tt_write_text(path, "chat_template.jinja", tmpl);
    tt_expect(dir, args, 0, NULL);
    ck_assert_msg(access(stale, F_OK) != 0, "%s: left from the earlier run", stale);
    snprintf(path, sizeof path, "%s/out2/adapter/chat_template.jinja", dir);
    ck_assert_msg(access(path, F_OK) != 0, "%s: an adapter not trained on chat", path);
    free(stale);
    free(plain);
    free(cfg);
    free(chat);
    free(tf);
    test_rmtree(dir);
    free(dir);
}
END_TEST

Suite *text_commands_suite(void) {
    Suite *s = suite_create("text_commands");
    TCase *tc = tcase_create("formats");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_missing_tokenizer_or_template_exit_2);
    tcase_add_test(tc, test_tokenize_command);
    tcase_add_test(tc, test_generate_prompt_prints_text);
    tcase_add_test(tc, test_adapter_carries_the_chat_template_it_was_trained_on);
    suite_add_tcase(s, tc);
    return s;
}
