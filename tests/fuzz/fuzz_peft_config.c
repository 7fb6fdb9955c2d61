/* tests/fuzz/fuzz_peft_config.c — lora_read_peft_spec on an arbitrary adapter_config.json:
 * a PEFT adapter comes from anywhere (the Hub, another trainer), and merge, export, eval,
 * generate and init_from read its config first. An accepted spec has the r the rest relies
 * on; a refusal says why. */
#include "tests/fuzz/fuzz_util.h"
#include "trainer/model/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_write("adapter_config.json", data, size);
    LoraSpec spec;
    char err[1024];
    err[0] = '\0';
    if (lora_read_peft_spec(fuzz_scratch_dir(), &spec, err, sizeof err) != 0) {
        if (!err[0]) abort();
        return 0;
    }
    if (spec.r < 1 || spec.r > 65536 || spec.targets >> MODULE_COUNT) abort();
    return 0;
}
