/* tests/test_fuzz_regressions.c — every input of the committed fuzz corpora, replayed through
 * the very harness code (tests/fuzz/fuzz_*.c, included here with its entry point renamed) in
 * the normal build, and so under `make asan` with ASan + UBSan too.
 *
 * tests/fuzz/corpus/NAME/ holds the seeds; tests/fuzz/regressions/NAME/ holds every input a
 * fuzzer ever crashed on (copy the artifact there when fixing the bug). A harness aborts when
 * a parser breaks its contract, which fails the test naming the input. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/test_util.h"

#define LLVMFuzzerTestOneInput fuzz_one_safetensors
#include "tests/fuzz/fuzz_safetensors.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_one_hf_config
#include "tests/fuzz/fuzz_hf_config.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_one_config_yaml
#include "tests/fuzz/fuzz_config_yaml.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_one_jsonl_record
#include "tests/fuzz/fuzz_jsonl_record.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_one_data_file
#include "tests/fuzz/fuzz_data_file.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_one_cursor
#include "tests/fuzz/fuzz_cursor.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_one_manifest
#include "tests/fuzz/fuzz_manifest.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_one_trainer_state
#include "tests/fuzz/fuzz_trainer_state.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_one_st_index
#include "tests/fuzz/fuzz_st_index.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_one_tokenizer_json
#include "tests/fuzz/fuzz_tokenizer_json.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_one_tokenizer_text
#include "tests/fuzz/fuzz_tokenizer_text.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_one_metrics
#include "tests/fuzz/fuzz_metrics.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_one_peft_config
#include "tests/fuzz/fuzz_peft_config.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_one_tokenizer_config
#include "tests/fuzz/fuzz_tokenizer_config.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_one_gguf_read
#include "tests/fuzz/fuzz_gguf_read.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_one_preference_records
#include "tests/fuzz/fuzz_preference_records.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_one_gguf_tokenizer
#include "tests/fuzz/fuzz_gguf_tokenizer.c"
#undef LLVMFuzzerTestOneInput

typedef int (*FuzzOne)(const uint8_t *data, size_t size);

/* Feeds every file of tests/fuzz/{corpus,regressions}/NAME to one; returns how many. */
static int replay(const char *name, FuzzOne one) {
    static const char *const kinds[] = {"corpus", "regressions"};
    int n = 0;
    for (int k = 0; k < 2; k++) {
        char dir[512];
        snprintf(dir, sizeof dir, "tests/fuzz/%s/%s", kinds[k], name);
        DIR *d = opendir(dir);
        if (!d) continue;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.') continue;
            char path[1024];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            size_t len;
            char *data = test_read_file(path, &len);
            ck_assert_msg(data != NULL, "%s: unreadable", path);
            one((const uint8_t *)data, len);
            free(data);
            n++;
        }
        closedir(d);
    }
    test_rmtree(fuzz_scratch_dir());
    return n;
}

#define REPLAY_TEST(NAME, MIN)                                                                     \
    START_TEST(test_fuzz_inputs_##NAME##_do_not_crash) {                                           \
        ck_assert_int_ge(replay(#NAME, fuzz_one_##NAME), MIN);                                     \
    }                                                                                              \
    END_TEST

REPLAY_TEST(safetensors, 2)
REPLAY_TEST(hf_config, 3)
REPLAY_TEST(config_yaml, 3)
REPLAY_TEST(jsonl_record, 4)
REPLAY_TEST(data_file, 6)
REPLAY_TEST(cursor, 16)
REPLAY_TEST(manifest, 4)
REPLAY_TEST(trainer_state, 1)
REPLAY_TEST(st_index, 10)
REPLAY_TEST(tokenizer_json, 10)
REPLAY_TEST(tokenizer_text, 3)
REPLAY_TEST(metrics, 3)
REPLAY_TEST(peft_config, 3)
REPLAY_TEST(tokenizer_config, 3)
REPLAY_TEST(gguf_read, 3)
REPLAY_TEST(preference_records, 4)
REPLAY_TEST(gguf_tokenizer, 3)

Suite *fuzz_regressions_suite(void) {
    Suite *s = suite_create("fuzz_regressions");
    TCase *tc = tcase_create("replay");
    tcase_add_test(tc, test_fuzz_inputs_safetensors_do_not_crash);
    tcase_add_test(tc, test_fuzz_inputs_hf_config_do_not_crash);
    tcase_add_test(tc, test_fuzz_inputs_config_yaml_do_not_crash);
    tcase_add_test(tc, test_fuzz_inputs_jsonl_record_do_not_crash);
    tcase_add_test(tc, test_fuzz_inputs_data_file_do_not_crash);
    tcase_add_test(tc, test_fuzz_inputs_cursor_do_not_crash);
    tcase_add_test(tc, test_fuzz_inputs_manifest_do_not_crash);
    tcase_add_test(tc, test_fuzz_inputs_trainer_state_do_not_crash);
    tcase_add_test(tc, test_fuzz_inputs_st_index_do_not_crash);
    tcase_add_test(tc, test_fuzz_inputs_tokenizer_json_do_not_crash);
    tcase_add_test(tc, test_fuzz_inputs_tokenizer_text_do_not_crash);
    tcase_add_test(tc, test_fuzz_inputs_metrics_do_not_crash);
    tcase_add_test(tc, test_fuzz_inputs_peft_config_do_not_crash);
    tcase_add_test(tc, test_fuzz_inputs_tokenizer_config_do_not_crash);
    tcase_add_test(tc, test_fuzz_inputs_gguf_read_do_not_crash);
    tcase_add_test(tc, test_fuzz_inputs_preference_records_do_not_crash);
    tcase_add_test(tc, test_fuzz_inputs_gguf_tokenizer_do_not_crash);
    suite_add_tcase(s, tc);
    return s;
}
