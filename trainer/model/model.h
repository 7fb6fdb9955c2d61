/* trainer/model/model.h — the model: a frozen Hugging Face decoder of a supported family and
 * its LoRA adapters. This header is the folder's whole API; code outside trainer/model/
 * includes only it.
 *
 *   hf_config.h  config.json of the supported families, parsed and checked (each family is
 *                a file of its own, family_*.c, described by family.h inside the folder)
 *   decoder.h    loading the weights, the forward pass (training and inference), generation
 *   lora.h       LoRA adapters with PEFT semantics, fresh or loaded, saved in PEFT's format
 *   export.h     an adapter merged into its base (Hugging Face directory), and GGUF files
 *                of a model and of an adapter for llama.cpp / Ollama
 *
 * Dependencies: tensor/ (the ops and autograd) and trainer/store/ (safetensors, files).
 * The file formats themselves (safetensors, GGUF) are trainer/store/'s; what goes into
 * them (names, layouts, the merge W += scaling B A) is this folder's. */
#ifndef LORAFIT_MODEL_H
#define LORAFIT_MODEL_H

#include "trainer/model/decoder.h"
#include "trainer/model/export.h"
#include "trainer/model/hf_config.h"
#include "trainer/model/lora.h"

#endif
