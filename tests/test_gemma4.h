/* tests/test_gemma4.h — the Gemma 4 fixtures test_gemma4.c and test_gemma4_export.c share:
 * gemma4-keqv (31B-like: three sliding layers with head_dim 16 and window 5, two full layers
 * with head_dim 32, one KV head and K = V, proportional RoPE 0.25, layer scalars, logits
 * soft-capped at 5), gemma4-e2b (E2B-like: per-layer inputs, the last 3 of 7 layers sharing K
 * and V, their MLP doubled), the Gemma4ForConditionalGeneration form of it (gemma4-wrapper)
 * and a tokenizer with the chat template (gemma4-chat). */
#ifndef LORAFIT_TEST_GEMMA4_H
#define LORAFIT_TEST_GEMMA4_H

#define G4   "tests/data/train/gemma4-keqv"
#define E2B  "tests/data/train/gemma4-e2b"
#define WRAP "tests/data/train/gemma4-wrapper"
#define CHAT "tests/data/train/gemma4-chat"

#endif
