/* tests/test_install.c — lorafit installs like a Debian tool: make install / uninstall under
 * DESTDIR leave nothing behind, and the man page (trainer/cli/lorafit.1) and the bash
 * completion (trainer/cli/lorafit.bash) cover every command and flag that `lorafit COMMAND
 * --help` names and every config key of the schema (`lorafit --config-keys`), so none can be
 * added without them. The completion is run, not grepped: bash sources it and completes. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tests/test_util.h"

#define BIG 65536

static const char *root_dir(void) {
    const char *root = getenv("LORAFIT_ROOT");
    return root ? root : ".";
}

/* The output of a shell command (caller frees); fails the test unless it exits 0. */
static char *run_capture(const char *cmd) {
    char *dir = test_tmpdir(), out[4096];
    snprintf(out, sizeof out, "%s/out.txt", dir);
    int rc = test_run(cmd, out);
    size_t len;
    char *text = test_read_file(out, &len);
    ck_assert_msg(rc == 0 && text, "`%s` exited %d: %s", cmd, rc, text ? text : "");
    test_rmtree(dir);
    free(dir);
    return text;
}

/* The man page source with roff's escaped hyphens and quotes as plain text. */
static char *man_text(void) {
    char path[4096];
    snprintf(path, sizeof path, "%s/trainer/cli/lorafit.1", root_dir());
    size_t len;
    char *s = test_read_file(path, &len);
    ck_assert_msg(s != NULL, "cannot read %s", path);
    char *w = s;
    for (const char *r = s; *r; r++) {
        if (r[0] == '\\' && r[1] == '-') continue; /* \- is - */
        if (strncmp(r, "\\(dq", 4) == 0)
            *w++ = '"', r += 3; /* \(dq is " */
        else
            *w++ = *r;
    }
    *w = '\0';
    return s;
}

/* The part of the man page that documents command `cmd`: from its ".B cmd" line to the next
 * command's (a ".B word" line of lowercase letters) or the next section. */
static char *man_command_section(const char *man, const char *cmd) {
    char head[128];
    snprintf(head, sizeof head, "\n.B %s\n", cmd);
    const char *start = strstr(man, head);
    ck_assert_msg(start != NULL, "the man page has no entry \".B %s\" under COMMANDS", cmd);
    const char *end = start + strlen(head);
    for (const char *p = end; *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : p + strlen(p)) {
        if (strncmp(p, ".SH", 3) == 0) {
            end = p;
            break;
        }
        if (strncmp(p, ".B ", 3) == 0) {
            const char *q = p + 3;
            while (*q >= 'a' && *q <= 'z') q++;
            if (*q == '\n' && q > p + 3) {
                end = p;
                break;
            }
        }
        end = p + strlen(p);
    }
    return strndup(start, (size_t)(end - start));
}

/* The commands `lorafit --help` lists ("  lorafit NAME ..."), space-separated. */
static void help_commands(char *out, size_t len) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' --help", test_lorafit_bin());
    char *help = run_capture(cmd);
    out[0] = '\0';
    char *lsave;
    for (char *line = strtok_r(help, "\n", &lsave); line; line = strtok_r(NULL, "\n", &lsave)) {
        char name[64];
        if (sscanf(line, " lorafit %63[a-z]", name) == 1 && strlen(out) + strlen(name) + 2 < len)
            strcat(strcat(out, name), " ");
    }
    free(help);
}

/* Appends word to the space-separated list out unless it is there already. */
static void add_word(char *out, size_t len, const char *word, size_t n) {
    char padded[BIG], key[128];
    snprintf(padded, sizeof padded, " %s", out);
    snprintf(key, sizeof key, " %.*s ", (int)n, word);
    if (!strstr(padded, key) && strlen(out) + n + 2 < len) strncat(out, key + 1, n + 1);
}

/* The flags of `lorafit CMD --help` (of `lorafit --help` when command is NULL), space-separated:
 * every "-x" or "--word" of its usage lines, and the one that starts an option's description
 * line ("  --resume DIR  continue from ..."); of `lorafit --help`, the flags of its
 * "lorafit --..." lines. */
static void help_flags(const char *command, char *out, size_t len) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' %s --help", test_lorafit_bin(), command ? command : "");
    char *help = run_capture(cmd);
    out[0] = '\0';
    bool in_usage = false;
    char *lsave;
    for (char *line = strtok_r(help, "\n", &lsave); line; line = strtok_r(NULL, "\n", &lsave)) {
        const char *t = line + strspn(line, " ");
        bool usage = strncmp(line, "usage:", 6) == 0 ||
                     (in_usage && t > line && (*t == '[' || *t == '(' || *t == 'l'));
        in_usage = usage;
        if (!command) usage = strncmp(t, "lorafit -", 9) == 0; /* lorafit --version | ... */
        if (!usage && *t != '-') continue;
        for (const char *p = t; (p = strchr(p, '-')) != NULL;) {
            bool starts = p == line || strchr(" [(|", p[-1]);
            size_t n = strspn(p, "-abcdefghijklmnopqrstuvwxyz");
            if (starts && n >= 2 && p[n - 1] != '-' && (p[1] == '-' || n == 2))
                add_word(out, len, p, n);
            p += n ? n : 1;
            if (!usage) break; /* a description line: only its leading flag */
        }
    }
    free(help);
}

/* What the completion offers for the words of a command line, the last one being completed:
 * newline-separated (caller frees). */
static char *complete(const char *words) {
    char script[4096], cmd[8192];
    snprintf(script, sizeof script, "%s/trainer/cli/lorafit.bash", root_dir());
    snprintf(cmd, sizeof cmd,
             "bash -c 'shopt -s extglob; . \"%s\"; COMP_WORDS=(\"%s\" %s); "
             "COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _lorafit; printf \"%%s\\n\" "
             "\"${COMPREPLY[@]}\"'",
             script, test_lorafit_bin(), words);
    return run_capture(cmd);
}

static bool has_line(const char *text, const char *line) {
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p += n)
        if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0')) return true;
    return false;
}

START_TEST(test_man_page_documents_every_command_and_flag) {
    char *man = man_text();
    char commands[4096], flags[BIG];
    help_commands(commands, sizeof commands);
    ck_assert_msg(strstr(commands, "train ") && strstr(commands, "generate "), "%s", commands);
    char *csave;
    for (char *c = strtok_r(commands, " ", &csave); c; c = strtok_r(NULL, " ", &csave)) {
        char *section = man_command_section(man, c);
        help_flags(c, flags, sizeof flags);
        char *save;
        for (char *f = strtok_r(flags, " ", &save); f; f = strtok_r(NULL, " ", &save)) {
            if (strcmp(f, "--help") == 0) continue; /* every command's, documented once */
            ck_assert_msg(strstr(section, f), "lorafit.1: `%s` lacks its flag %s", c, f);
        }
        free(section);
    }
    help_flags(NULL, flags, sizeof flags);
    ck_assert_msg(strstr(flags, "--config-keys"), "lorafit --help: %s", flags);
    char *save;
    for (char *f = strtok_r(flags, " ", &save); f; f = strtok_r(NULL, " ", &save)) {
        char entry[128];
        snprintf(entry, sizeof entry, ".B %s", f);
        ck_assert_msg(has_line(man, entry), "lorafit.1 has no entry \"%s\"", entry);
    }
    free(man);
}
END_TEST

START_TEST(test_man_page_documents_every_config_key_with_its_default) {
    char *man = man_text(), cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' --config-keys", test_lorafit_bin());
    char *keys = run_capture(cmd);
    int n = 0;
    char *ksave;
    for (char *line = strtok_r(keys, "\n", &ksave); line;
         line = strtok_r(NULL, "\n", &ksave), n++) {
        char *key = line, *def = strchr(line, '\t');
        ck_assert_ptr_nonnull(def);
        *def++ = '\0';
        char *tab = strchr(def, '\t');
        if (tab) *tab = '\0';
        char entry[1024], *w = entry + snprintf(entry, sizeof entry, ".B %s = ", key);
        for (const char *r = def; *r && w < entry + sizeof entry - 1; r++)
            if (*r != '"') *w++ = *r; /* the man page writes lists without quotes */
        *w = '\0';
        ck_assert_msg(has_line(man, entry), "lorafit.1 lacks the key line \"%s\"", entry);
    }
    ck_assert_int_gt(n, 40);
    free(keys);
    free(man);
}
END_TEST

START_TEST(test_completion_offers_every_command_flag_and_config_key) {
    char commands[4096], flags[BIG];
    help_commands(commands, sizeof commands);
    char *top = complete("\"\"");
    char *csave;
    for (char *c = strtok_r(commands, " ", &csave); c; c = strtok_r(NULL, " ", &csave)) {
        ck_assert_msg(has_line(top, c), "the completion does not offer the command %s", c);
        char words[256];
        snprintf(words, sizeof words, "%s -", c);
        char *offered = complete(words);
        help_flags(c, flags, sizeof flags);
        char *save;
        for (char *f = strtok_r(flags, " ", &save); f; f = strtok_r(NULL, " ", &save))
            ck_assert_msg(has_line(offered, f), "the completion of `lorafit %s -` lacks %s:\n%s", c,
                          f, offered);
        free(offered);
    }
    help_flags(NULL, flags, sizeof flags);
    char *save;
    for (char *f = strtok_r(flags, " ", &save); f; f = strtok_r(NULL, " ", &save))
        ck_assert_msg(has_line(top, f), "the completion does not offer %s", f);
    free(top);

    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' --config-keys", test_lorafit_bin());
    char *keys = run_capture(cmd);
    char *offered = complete("train job.yaml --set \"\"");
    char *ksave;
    for (char *line = strtok_r(keys, "\n", &ksave); line; line = strtok_r(NULL, "\n", &ksave)) {
        char want[256];
        snprintf(want, sizeof want, "%.*s=", (int)strcspn(line, "\t"), line);
        ck_assert_msg(has_line(offered, want), "the completion of --set lacks %s", want);
    }
    free(offered);
    free(keys);
    /* a key's values, from the schema */
    offered = complete("train job.yaml --set data.overflow=");
    ck_assert_msg(has_line(offered, "data.overflow=split"), "%s", offered);
    free(offered);
    offered = complete("merge --dtype \"\"");
    ck_assert_msg(has_line(offered, "q8_0"), "%s", offered);
    free(offered);
}
END_TEST

static int count_files(const char *dir) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "find '%s' -type f -o -type l | wc -l", dir);
    char *out = run_capture(cmd);
    int n = atoi(out);
    free(out);
    return n;
}

START_TEST(test_make_install_then_uninstall_leaves_no_file) {
    char *dir = test_tmpdir(), cmd[32768], bin[4096];
    /* the binary under test as it is (-o: make does not rebuild it) */
    snprintf(bin, sizeof bin, "%s", test_lorafit_bin());
    char *slash = strrchr(bin, '/');
    ck_assert_ptr_nonnull(slash);
    *slash = '\0';
    const char *make = "env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make --no-print-directory";
    snprintf(cmd, sizeof cmd,
             "%s -C '%s' BUILD='%s' -o '%s/lorafit' DESTDIR='%s/dest' PREFIX=/usr install", make,
             root_dir(), bin, bin, dir);
    free(run_capture(cmd));
    const char *installed[] = {"usr/bin/lorafit", "usr/share/man/man1/lorafit.1",
                               "usr/share/bash-completion/completions/lorafit",
                               "usr/share/lorafit/configs/demo.yaml"};
    for (size_t i = 0; i < sizeof installed / sizeof installed[0]; i++) {
        char path[8192];
        struct stat st;
        snprintf(path, sizeof path, "%s/dest/%s", dir, installed[i]);
        ck_assert_msg(stat(path, &st) == 0, "make install did not write %s", installed[i]);
    }
    /* the installed binary runs, and the man page names its version and the config folder */
    snprintf(cmd, sizeof cmd, "'%s/dest/usr/bin/lorafit' --version", dir);
    char *version = run_capture(cmd);
    version[strcspn(version, "\n")] = '\0';
    snprintf(cmd, sizeof cmd, "%s/dest/usr/share/man/man1/lorafit.1", dir);
    size_t len;
    char *man = test_read_file(cmd, &len);
    ck_assert_ptr_nonnull(man);
    char th[256];
    snprintf(th, sizeof th, "\"%s\" \"User Commands\"", version);
    ck_assert_msg(strstr(man, th), "the installed man page's .TH lacks %s", th);
    ck_assert_msg(!strstr(man, "@VERSION@") && !strstr(man, "@DATADIR@") &&
                      strstr(man, "/usr/share/lorafit/configs/"),
                  "the installed man page's placeholders were not filled");
    free(man);
    free(version);
    ck_assert_int_gt(count_files(dir), 6);

    snprintf(cmd, sizeof cmd, "%s -C '%s' BUILD='%s' DESTDIR='%s/dest' PREFIX=/usr uninstall", make,
             root_dir(), bin, dir);
    free(run_capture(cmd));
    ck_assert_int_eq(count_files(dir), 0);
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_version_is_written_in_debian_changelog_only) {
    char path[4096], cmd[4096];
    snprintf(path, sizeof path, "%s/debian/changelog", root_dir());
    size_t len;
    char *changelog = test_read_file(path, &len);
    ck_assert_ptr_nonnull(changelog);
    char version[64];
    ck_assert_int_eq(sscanf(changelog, "lorafit (%63[^)])", version), 1);
    snprintf(cmd, sizeof cmd, "'%s' --version", test_lorafit_bin());
    char *out = run_capture(cmd), want[128];
    snprintf(want, sizeof want, "lorafit %s\n", version);
    ck_assert_str_eq(out, want);
    free(out);
    free(changelog);
}
END_TEST

Suite *install_suite(void) {
    Suite *s = suite_create("install");
    TCase *tc = tcase_create("install");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_man_page_documents_every_command_and_flag);
    tcase_add_test(tc, test_man_page_documents_every_config_key_with_its_default);
    tcase_add_test(tc, test_completion_offers_every_command_flag_and_config_key);
    tcase_add_test(tc, test_make_install_then_uninstall_leaves_no_file);
    tcase_add_test(tc, test_version_is_written_in_debian_changelog_only);
    suite_add_tcase(s, tc);
    return s;
}
