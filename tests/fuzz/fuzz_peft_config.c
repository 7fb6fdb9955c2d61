/* tests/fuzz/fuzz_peft_config.c — lora_read_peft_spec on an arbitrary adapter_config.json:
 * a PEFT adapter comes from anywhere (the Hub, another trainer), and merge, export, eval,
 * generate and init_from read its config first. An accepted spec has the r the rest relies
 * on; a refusal says why. */
#include "tests/fuzz/fuzz_util.h"
#include "trainer/model/model.h"

/* The base: a Gemma3ForConditionalGeneration, whose adapters' target_modules are a regex
 * (what lorafit matches against the language model's module names). */
static const char base_config[] =
    "{\"model_type\": \"gemma3\", \"text_config\": {\"hidden_size\": 32, "
    "\"intermediate_size\": 48, \"num_hidden_layers\": 3, \"num_attention_heads\": 4, "
    "\"num_key_value_heads\": 2, \"head_dim\": 16, \"vocab_size\": 320}}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static ModelConfig cfg;
    static bool parsed;
    char err[1024];
    if (!parsed &&
        hf_config_parse(base_config, sizeof base_config - 1, "base", &cfg, err, sizeof err) != 0)
        abort();
    parsed = true;
    fuzz_write("adapter_config.json", data, size);
    LoraSpec spec;
    err[0] = '\0';
    if (lora_read_peft_spec(fuzz_scratch_dir(), &cfg, &spec, err, sizeof err) != 0) {
        if (!err[0]) abort();
        return 0;
    }
    if (spec.r < 1 || spec.r > 65536 || spec.targets >> MODULE_COUNT) abort();
    return 0;
}
