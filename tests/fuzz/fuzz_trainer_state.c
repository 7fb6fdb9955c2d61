/* tests/fuzz/fuzz_trainer_state.c — checkpoint_load with an arbitrary
 * trainer_state.safetensors. The MANIFEST is rewritten for every input so the CRC check
 * passes and the bytes reach the state reader (metadata numbers, the counters of skipped
 * steps, moments, data cursor).
 * The adapter is a real one for the committed qwen2-untied test model (r 2, q_proj). */
#include "tests/fuzz/fuzz_trainer_state.h"
#include "tests/fuzz/fuzz_util.h"

#include "trainer/train/train.h"
#include "trainer/store/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static FuzzStateFixture fx;
    if (!fx.lora && fuzz_state_fixture(&fx, fuzz_scratch_dir()) != 0) abort();
    char path[700];
    snprintf(path, sizeof path, "%s/trainer_state.safetensors", fx.ckpt);
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size)) abort();
    fclose(f);
    char err[1024];
    const char *files[] = {"adapter_model.safetensors", "adapter_config.json",
                           "trainer_state.safetensors"};
    if (manifest_write(fx.ckpt, files, 3, err, sizeof err) != 0) abort();
    TrainState s;
    err[0] = '\0';
    if (checkpoint_load(fx.ckpt, fx.lora, fx.m, fx.v, &s, err, sizeof err) == 0) {
        if (s.cursor_size && !s.cursor) abort();
        if (!s.config_keys) abort();
        /* what a resumed run relies on: the skip counters within the step counts */
        if (s.nonfinite_skipped < 0 || s.nonfinite_skipped > s.step || s.nonfinite_streak < 0 ||
            s.nonfinite_streak > s.nonfinite_skipped || s.log_skipped < 0 ||
            s.log_skipped > s.log_steps)
            abort();
        train_state_free(&s);
    } else if (!err[0]) {
        abort();
    }
    return 0;
}
