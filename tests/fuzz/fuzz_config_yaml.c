/* tests/fuzz/fuzz_config_yaml.c — config_load on an arbitrary YAML file. Lines of the input
 * that start with "#set " are also passed as --set overrides (they are YAML comments, so the
 * file stays the same), which fuzzes the override parser with the same bytes. An accepted
 * config is formatted key by key and written back, as `lorafit train` does. */
#include "tests/fuzz/fuzz_util.h"
#include "trainer/config/config.h"

#define MAX_SETS 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write("config.yaml", data, size);
    char *text = fuzz_cstr(data, size);
    const char *sets[MAX_SETS];
    int n_sets = 0;
    for (char *line = text; line && n_sets < MAX_SETS;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        if (strncmp(line, "#set ", 5) == 0) sets[n_sets++] = line + 5;
        line = nl ? nl + 1 : NULL;
    }
    Config c;
    char err[2048];
    err[0] = '\0';
    int rc = config_load(path, sets, n_sets, &c, err, sizeof err);
    if (rc != 0) {
        if (!err[0] || (rc != CONFIG_UNREADABLE && rc != CONFIG_INVALID)) abort();
        free(text);
        return 0;
    }
    char buf[8192];
    for (int i = 0; config_key_path(i); i++) (void)config_format_value(&c, i, buf, sizeof buf);
    char *keys = config_result_keys(&c);
    if (keys) {
        char diff[512];
        if (config_diff_result_keys(keys, keys, diff, sizeof diff) != 0) abort();
        free(keys);
    }
    char out[600];
    snprintf(out, sizeof out, "%s/resolved.yaml", fuzz_scratch_dir());
    if (config_write_resolved(&c, out, err, sizeof err) == 0) {
        /* What lorafit writes must load back. */
        Config again;
        if (config_load(out, NULL, 0, &again, err, sizeof err) != 0) {
            fprintf(stderr, "resolved config does not reload: %s\n", err);
            abort();
        }
        config_free(&again);
    }
    config_free(&c);
    free(text);
    return 0;
}
