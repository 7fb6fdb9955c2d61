/* trainer/model/hf_json.h — config.json's field readers, shared by hf_config.c (the decoder's
 * keys) and hf_rope.c (its RoPE). Private to trainer/model/. Each returns 0, or -1 with a
 * message naming `src` and the key in err. */
#ifndef LORAFIT_MODEL_HF_JSON_H
#define LORAFIT_MODEL_HF_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "trainer/model/hf_config.h"

/* An integer field in [lo, hi]; absent -> *out = dflt, or an error when dflt < lo. */
int hf_get_int(json_t *root, const char *key, int lo, int hi, int dflt, int *out, const char *src,
               char *err, size_t errlen);
/* A positive finite number; absent -> dflt, or an error when required. */
int hf_get_number(json_t *root, const char *key, double dflt, bool required, double *out,
                  const char *src, char *err, size_t errlen);
int hf_get_bool(json_t *root, const char *key, bool dflt, bool *out, const char *src, char *err,
                size_t errlen);

/* rope_theta and the RoPE scaling into cfg (hf_rope.c); the family's read_config has run. */
int hf_rope_parse(json_t *root, ModelConfig *cfg, const char *src, char *err, size_t errlen);
/* Completes longrope and yarn once rotary_dim is known. */
int hf_rope_finish(json_t *root, ModelConfig *cfg, const char *src, char *err, size_t errlen);

#endif
