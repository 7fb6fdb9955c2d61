/* tests/fuzz/fuzz_hf_config.c — hf_config_parse on arbitrary config.json text; an accepted
 * config must have the invariants the model code relies on. */
#include "tests/fuzz/fuzz_util.h"
#include "trainer/model/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *json = malloc(size ? size : 1); /* exact size: ASan sees any read past the end */
    if (!json) abort();
    memcpy(json, data, size);
    ModelConfig cfg;
    char err[1024];
    err[0] = '\0';
    if (hf_config_parse(json, size, "config.json", &cfg, err, sizeof err) != 0) {
        if (!err[0]) abort();
        free(json);
        return 0;
    }
    if (cfg.hidden_size <= 0 || cfg.num_hidden_layers <= 0 || cfg.num_attention_heads <= 0 ||
        cfg.num_key_value_heads <= 0 || cfg.head_dim <= 0 || cfg.vocab_size <= 0 ||
        cfg.num_attention_heads % cfg.num_key_value_heads != 0 || cfg.sliding_window < 0 ||
        !(cfg.rope_theta > 0))
        abort();
    if (cfg.head_dim <= 1 << 16) {
        double *inv = malloc(((size_t)cfg.head_dim / 2 + 1) * sizeof *inv);
        if (!inv) abort();
        hf_rope_inv_freq(&cfg, inv);
        free(inv);
    }
    (void)hf_architecture(&cfg);
    free(json);
    return 0;
}
