/* trainer/model/hf_rope.c — config.json's RoPE: rope_theta, rope_scaling / rope_parameters
 * (plain, linear, llama3, longrope, yarn, per layer type) parsed and completed as
 * transformers' rope utilities do, and the inverse frequencies they give (see hf_config.h). */
#include "trainer/model/hf_config.h"
#include "trainer/model/family.h"
#include "trainer/model/hf_json.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* longrope's short_factor or long_factor list into out: *n numbers, each positive. */
static int get_factors(json_t *o, const char *key, double *out, int *n, const char *where,
                       char *err, size_t errlen) {
    json_t *a = json_object_get(o, key), *v;
    size_t i;
    if (!json_is_array(a) || json_array_size(a) == 0 || json_array_size(a) > HF_MAX_ROPE_FACTORS) {
        snprintf(err, errlen, "%s.%s must be a list of 1 to %d numbers", where, key,
                 HF_MAX_ROPE_FACTORS);
        return -1;
    }
    json_array_foreach(a, i, v) {
        out[i] = json_number_value(v);
        if (!json_is_number(v) || !isfinite(out[i]) || out[i] <= 0) {
            snprintf(err, errlen, "%s.%s[%zu] must be a positive number", where, key, i);
            return -1;
        }
    }
    *n = (int)json_array_size(a);
    return 0;
}

/* longrope's keys: both factor lists (of one length), and what may stand in the object:
 * original_max_position_embeddings, factor, attention_factor (0 when absent; completed by
 * finish_longrope). */
static int parse_longrope(json_t *o, const char *where, RopeScaling *r, char *err, size_t errlen) {
    int n_short = 0, n_long = 0;
    r->longrope = true;
    if (get_factors(o, "short_factor", r->short_factor, &n_short, where, err, errlen) ||
        get_factors(o, "long_factor", r->long_factor, &n_long, where, err, errlen) ||
        hf_get_number(o, "factor", 0, false, &r->factor, where, err, errlen) ||
        hf_get_number(o, "attention_factor", 0, false, &r->attention_factor, where, err, errlen) ||
        hf_get_int(o, "original_max_position_embeddings", 0, 1 << 30, 0,
                   &r->original_max_position_embeddings, where, err, errlen))
        return -1;
    if (n_short != n_long) {
        snprintf(err, errlen, "%s: short_factor has %d numbers, long_factor %d", where, n_short,
                 n_long);
        return -1;
    }
    r->high_freq_factor = n_short; /* checked against rotary_dim / 2 in finish_longrope */
    return 0;
}

/* A number >= 0 (0 when absent or null): yarn's mscale, mscale_all_dim, beta_fast and
 * beta_slow, which transformers reads with `or` defaults (0 meaning the default). */
static int get_nonnegative(json_t *o, const char *key, double *out, const char *where, char *err,
                           size_t errlen) {
    json_t *v = json_object_get(o, key);
    *out = 0;
    if (!v || json_is_null(v)) return 0;
    *out = json_number_value(v);
    if (!json_is_number(v) || !isfinite(*out) || *out < 0) {
        snprintf(err, errlen, "%s.%s must be a number >= 0", where, key);
        return -1;
    }
    return 0;
}

/* yarn's keys (_compute_yarn_parameters); factor, original_max_position_embeddings and
 * attention_factor 0 when absent (finish_yarn completes them). */
static int parse_yarn(json_t *o, const char *where, RopeScaling *r, char *err, size_t errlen) {
    bool truncate = true;
    r->yarn = true;
    if (hf_get_number(o, "factor", 0, false, &r->factor, where, err, errlen) ||
        hf_get_number(o, "attention_factor", 0, false, &r->attention_factor, where, err, errlen) ||
        hf_get_int(o, "original_max_position_embeddings", 0, 1 << 30, 0,
                   &r->original_max_position_embeddings, where, err, errlen) ||
        get_nonnegative(o, "beta_fast", &r->beta_fast, where, err, errlen) ||
        get_nonnegative(o, "beta_slow", &r->beta_slow, where, err, errlen) ||
        get_nonnegative(o, "mscale", &r->mscale, where, err, errlen) ||
        get_nonnegative(o, "mscale_all_dim", &r->mscale_all_dim, where, err, errlen) ||
        hf_get_bool(o, "truncate", true, &truncate, where, err, errlen))
        return -1;
    r->yarn_no_truncate = !truncate;
    if (!r->beta_fast) r->beta_fast = 32; /* rope_parameters.get("beta_fast") or 32 */
    if (!r->beta_slow) r->beta_slow = 1;
    return 0;
}

/* One RoPE description: transformers 4's "rope_scaling" (null: plain RoPE) or transformers
 * 5's "rope_parameters" (which also holds rope_theta). Its rope_type (or the older "type")
 * is "default" (plain), "linear", "llama3", "longrope", or the family's own (fam: NULL for
 * none) "yarn" or "proportional" (none given: plain when untyped_is_default, as
 * rope_parameters may leave it out); `where` names it in messages. */
static int parse_rope_object(json_t *o, const char *where, bool untyped_is_default,
                             const ModelFamily *fam, RopeScaling *r, char *err, size_t errlen) {
    memset(r, 0, sizeof *r);
    if (!json_is_object(o)) {
        snprintf(err, errlen, "%s must be null or an object", where);
        return -1;
    }
    json_t *t = json_object_get(o, "rope_type");
    if (!t) t = json_object_get(o, "type");
    const char *type = json_string_value(t);
    if ((type && strcmp(type, "default") == 0) || (!t && untyped_is_default)) return 0;
    if (type && strcmp(type, "linear") == 0) {
        r->linear = true;
        return hf_get_number(o, "factor", 0, true, &r->factor, where, err, errlen);
    }
    if (type && strcmp(type, "longrope") == 0) return parse_longrope(o, where, r, err, errlen);
    if (type && strcmp(type, "yarn") == 0 && fam && fam->yarn)
        return parse_yarn(o, where, r, err, errlen);
    if (type && strcmp(type, "proportional") == 0 && fam && fam->proportional_rope) {
        r->proportional = true; /* _compute_proportional_rope_parameters' defaults: 1 */
        if (hf_get_number(o, "factor", 1.0, false, &r->factor, where, err, errlen) ||
            hf_get_number(o, "partial_rotary_factor", 1.0, false, &r->proportion, where, err,
                          errlen))
            return -1;
        if (r->proportion > 1.0) {
            snprintf(err, errlen, "%s.partial_rotary_factor must be at most 1", where);
            return -1;
        }
        return 0;
    }
    if (!type || strcmp(type, "llama3") != 0) {
        snprintf(err, errlen,
                 "%s.rope_type \"%s\" is not supported (only \"default\", \"linear\", \"llama3\", "
                 "\"longrope\"; \"yarn\" for Ministral 3, \"proportional\" for Gemma 4)",
                 where, type ? type : "(missing)");
        return -1;
    }
    r->llama3 = true;
    if (hf_get_number(o, "factor", 0, true, &r->factor, where, err, errlen) ||
        hf_get_number(o, "low_freq_factor", 0, true, &r->low_freq_factor, where, err, errlen) ||
        hf_get_number(o, "high_freq_factor", 0, true, &r->high_freq_factor, where, err, errlen) ||
        hf_get_int(o, "original_max_position_embeddings", 1, 1 << 30, 0,
                   &r->original_max_position_embeddings, where, err, errlen))
        return -1;
    if (r->high_freq_factor <= r->low_freq_factor) {
        snprintf(err, errlen, "%s.high_freq_factor must exceed low_freq_factor", where);
        return -1;
    }
    return 0;
}

/* transformers 5's rope_parameters of a model with local RoPE (Gemma 3): one description per
 * layer type, {"full_attention": {...}, "sliding_attention": {...}}; the full layers' is
 * the model's RoPE, the sliding layers' must be plain (its rope_theta the local base). */
static int parse_rope_per_layer_type(json_t *rp, ModelConfig *cfg, const char *where, char *err,
                                     size_t errlen) {
    json_t *full = json_object_get(rp, "full_attention"),
           *local = json_object_get(rp, "sliding_attention");
    char at[700];
    RopeScaling none;
    if (!local || !full) {
        snprintf(err, errlen, "%s needs both \"full_attention\" and \"sliding_attention\"", where);
        return -1;
    }
    snprintf(at, sizeof at, "%s.sliding_attention", where);
    if (parse_rope_object(local, at, true, NULL, &none, err, errlen) ||
        hf_get_number(local, "rope_theta", 0, true, &cfg->rope_local_theta, at, err, errlen))
        return -1;
    if (none.llama3 || none.linear) {
        snprintf(err, errlen, "%s: the sliding layers' RoPE must be plain (\"default\")", at);
        return -1;
    }
    snprintf(at, sizeof at, "%s.full_attention", where);
    return parse_rope_object(full, at, true, cfg->family, &cfg->rope_scaling, err, errlen) ||
           hf_get_number(full, "rope_theta", cfg->rope_theta, false, &cfg->rope_theta, at, err,
                         errlen);
}

/* rope_theta and the scaling: from "rope_parameters" when the config has it (transformers
 * 5 writes only that: reading the top-level keys alone would silently give RoPE the default
 * base), else from "rope_theta" and "rope_scaling". Where both are there they must agree. */
int hf_rope_parse(json_t *root, ModelConfig *cfg, const char *src, char *err, size_t errlen) {
    char where[600];
    snprintf(where, sizeof where, "%s: rope_scaling", src);
    json_t *rs = json_object_get(root, "rope_scaling"),
           *rp = json_object_get(root, "rope_parameters");
    double theta_default =
        cfg->family->default_rope_theta > 0 ? cfg->family->default_rope_theta : 10000.0;
    if (hf_get_number(root, "rope_theta", theta_default, false, &cfg->rope_theta, src, err, errlen))
        return -1;
    memset(&cfg->rope_scaling, 0, sizeof cfg->rope_scaling);
    const ModelFamily *fam = cfg->family;
    if ((!rs || json_is_null(rs)) && (!rp || json_is_null(rp)) &&
        cfg->family->default_rope_parameters) {
        /* the config class's default rope_parameters, its rope_theta over the top-level one
         * (convert_rope_params_to_dict only sets a rope_theta the dict lacks) */
        json_t *d = json_loads(cfg->family->default_rope_parameters, 0, NULL);
        snprintf(where, sizeof where, "%s: %s's default rope_parameters", src,
                 cfg->family->architecture);
        if (!d) {
            snprintf(err, errlen, "%s: out of memory", where);
            return -1;
        }
        if (json_object_get(d, "full_attention")) { /* one per layer type (Gemma 4) */
            int rc = parse_rope_per_layer_type(d, cfg, where, err, errlen);
            json_decref(d);
            return rc;
        }
        int rc = parse_rope_object(d, where, true, fam, &cfg->rope_scaling, err, errlen);
        if (rc == 0)
            rc = hf_get_number(d, "rope_theta", cfg->rope_theta, false, &cfg->rope_theta, where,
                               err, errlen);
        json_decref(d);
        return rc;
    }
    if (rs && !json_is_null(rs) &&
        parse_rope_object(rs, where, false, fam, &cfg->rope_scaling, err, errlen))
        return -1;
    if (!rp || json_is_null(rp)) return 0;
    snprintf(where, sizeof where, "%s: rope_parameters", src);
    if (json_is_object(rp) &&
        (json_object_get(rp, "full_attention") || json_object_get(rp, "sliding_attention"))) {
        if (!(cfg->rope_local_theta > 0)) {
            snprintf(err, errlen, "%s: RoPE per layer type is not supported", where);
            return -1;
        }
        return parse_rope_per_layer_type(rp, cfg, where, err, errlen);
    }
    RopeScaling r;
    double theta, partial, family_partial = cfg->partial_rotary_factor;
    if (parse_rope_object(rp, where, true, fam, &r, err, errlen) ||
        hf_get_number(rp, "rope_theta", cfg->rope_theta, false, &theta, where, err, errlen) ||
        hf_get_number(rp, "partial_rotary_factor", family_partial ? family_partial : 1.0, false,
                      &partial, where, err, errlen))
        return -1;
    if (partial != 1.0 && !family_partial) {
        snprintf(err, errlen, "%s.partial_rotary_factor %g is not supported (only 1)", where,
                 partial);
        return -1;
    }
    if (family_partial) cfg->partial_rotary_factor = partial;
    bool has_theta =
        json_object_get(root, "rope_theta") && !json_is_null(json_object_get(root, "rope_theta"));
    bool has_scaling = rs && !json_is_null(rs);
    if ((has_theta && theta != cfg->rope_theta) ||
        (has_scaling && memcmp(&r, &cfg->rope_scaling, sizeof r) != 0)) {
        snprintf(err, errlen,
                 "%s: rope_parameters and the top-level rope_theta / rope_scaling disagree "
                 "(rope_theta %g vs %g); keep one of them",
                 src, theta, cfg->rope_theta);
        return -1;
    }
    cfg->rope_theta = theta;
    cfg->rope_scaling = r;
    return 0;
}

/* longrope as _compute_longrope_parameters completes it: original_max_position_embeddings
 * from the rope object or config.json's top level (Phi3Config's attribute); with it, factor
 * = max_position_embeddings / original (the object's factor is then unused), without it
 * original = max_position_embeddings and the object's factor; attention_factor when the
 * object has none: sqrt(1 + ln(factor) / ln(original)) for factor > 1, else 1. */
static int finish_longrope(json_t *root, ModelConfig *cfg, const char *src, char *err,
                           size_t errlen) {
    RopeScaling *r = &cfg->rope_scaling;
    int n = (int)r->high_freq_factor;
    r->high_freq_factor = 0;
    if (n != cfg->rotary_dim / 2) {
        snprintf(err, errlen,
                 "%s: rope_scaling's short_factor and long_factor have %d numbers; the rotary "
                 "dimensions (%d) need %d",
                 src, n, cfg->rotary_dim, cfg->rotary_dim / 2);
        return -1;
    }
    if (!r->original_max_position_embeddings &&
        hf_get_int(root, "original_max_position_embeddings", 0, 1 << 30, 0,
                   &r->original_max_position_embeddings, src, err, errlen))
        return -1;
    double orig = r->original_max_position_embeddings, factor = r->factor;
    if (orig)
        factor = cfg->max_position_embeddings / orig;
    else
        r->original_max_position_embeddings = cfg->max_position_embeddings;
    orig = r->original_max_position_embeddings;
    if (!r->attention_factor)
        r->attention_factor = factor > 1.0 ? sqrt(1 + log(factor) / log(orig)) : 1.0;
    return 0;
}

/* _compute_yarn_parameters' get_mscale: 1 up to a factor of 1. */
static double yarn_mscale(double factor, double mscale) {
    return factor <= 1 ? 1.0 : 0.1 * mscale * log(factor) + 1.0;
}

/* yarn as transformers 5 completes it (standardize_rope_params, _compute_yarn_parameters):
 * original_max_position_embeddings from the rope object, else config.json's top level, else
 * max_position_embeddings; factor, when the object has none, max_position_embeddings /
 * original; attention_factor, when the object has none, get_mscale(factor, mscale) /
 * get_mscale(factor, mscale_all_dim) when both are non-zero, else get_mscale(factor). */
static int finish_yarn(json_t *root, ModelConfig *cfg, const char *src, char *err, size_t errlen) {
    RopeScaling *r = &cfg->rope_scaling;
    if (!r->original_max_position_embeddings &&
        hf_get_int(root, "original_max_position_embeddings", 1, 1 << 30,
                   cfg->max_position_embeddings, &r->original_max_position_embeddings, src, err,
                   errlen))
        return -1;
    if (!r->factor)
        r->factor = (double)cfg->max_position_embeddings / r->original_max_position_embeddings;
    if (!r->attention_factor)
        r->attention_factor =
            r->mscale && r->mscale_all_dim
                ? yarn_mscale(r->factor, r->mscale) / yarn_mscale(r->factor, r->mscale_all_dim)
                : yarn_mscale(r->factor, 1.0);
    return 0;
}

int hf_rope_finish(json_t *root, ModelConfig *cfg, const char *src, char *err, size_t errlen) {
    if (cfg->rope_scaling.yarn) return finish_yarn(root, cfg, src, err, errlen);
    return cfg->rope_scaling.longrope ? finish_longrope(root, cfg, src, err, errlen) : 0;
}

/* longrope: 1 / (ext_factor[i] * base^(2i / dim)). */
static void longrope_inv_freq(const ModelConfig *cfg, const double *ext, double *inv_freq) {
    int d = cfg->rotary_dim;
    for (int i = 0; i < d / 2; i++)
        inv_freq[i] = 1.0 / (ext[i] * pow(cfg->rope_theta, (double)(2 * i) / d));
}

void hf_rope_inv_freq_long(const ModelConfig *cfg, double *inv_freq) {
    longrope_inv_freq(cfg, cfg->rope_scaling.long_factor, inv_freq);
}

double hf_rope_attention_factor(const ModelConfig *cfg) {
    const RopeScaling *r = &cfg->rope_scaling;
    return r->longrope || r->yarn ? r->attention_factor : 1.0;
}

double hf_query_scale(const ModelConfig *cfg, int pos) {
    /* _get_llama_4_attn_scale: 1 + beta * log(1 + floor(pos / original)) */
    int orig = cfg->rope_scaling.original_max_position_embeddings;
    if (!cfg->llama4_scaling_beta || orig <= 0) return 1.0;
    return 1.0 + cfg->llama4_scaling_beta * log(1.0 + floor((double)pos / orig));
}

/* _compute_yarn_parameters: the dimensions below the correction dim of beta_fast keep their
 * frequency (extrapolation), those above beta_slow's are divided by factor (interpolation),
 * a linear ramp blends the ones between. */
static void yarn_inv_freq(const ModelConfig *cfg, double *inv_freq) {
    const RopeScaling *r = &cfg->rope_scaling;
    int d = cfg->rotary_dim;
    double base = cfg->rope_theta, orig = r->original_max_position_embeddings;
    double low = d * log(orig / (r->beta_fast * 2 * M_PI)) / (2 * log(base));
    double high = d * log(orig / (r->beta_slow * 2 * M_PI)) / (2 * log(base));
    if (!r->yarn_no_truncate) low = floor(low), high = ceil(high);
    low = low > 0 ? low : 0;
    high = high < d - 1 ? high : d - 1;
    if (low == high) high += 0.001; /* linear_ramp_factor's guard against a singularity */
    for (int i = 0; i < d / 2; i++) {
        double ramp = (i - low) / (high - low);
        ramp = ramp < 0 ? 0 : ramp > 1 ? 1 : ramp;
        double extrapolation = 1.0 - ramp, pos_freq = pow(base, (double)(2 * i) / d);
        inv_freq[i] =
            1.0 / (r->factor * pos_freq) * (1 - extrapolation) + 1.0 / pos_freq * extrapolation;
    }
}

void hf_rope_inv_freq(const ModelConfig *cfg, double *inv_freq) {
    int d = cfg->rotary_dim;
    if (cfg->rope_scaling.longrope || cfg->rope_scaling.gguf_factors) {
        longrope_inv_freq(cfg, cfg->rope_scaling.short_factor, inv_freq);
        return;
    }
    if (cfg->rope_scaling.yarn) {
        yarn_inv_freq(cfg, inv_freq);
        return;
    }
    for (int i = 0; i < d / 2; i++) inv_freq[i] = 1.0 / pow(cfg->rope_theta, (double)(2 * i) / d);
    const RopeScaling *r = &cfg->rope_scaling;
    if (r->proportional) { /* int(proportion * head_dim // 2) rotate, the rest stand still */
        int angles = (int)floor(r->proportion * d / 2);
        for (int i = 0; i < d / 2; i++) inv_freq[i] = i < angles ? inv_freq[i] / r->factor : 0.0;
        return;
    }
    if (r->linear) { /* _compute_linear_scaling_rope_parameters: positions / factor */
        for (int i = 0; i < d / 2; i++) inv_freq[i] /= r->factor;
        return;
    }
    if (!r->llama3) return;
    /* transformers' _compute_llama3_parameters: low frequencies are divided by factor,
     * high ones kept, and the band between interpolated smoothly. */
    double old_len = r->original_max_position_embeddings;
    double low_freq_wavelen = old_len / r->low_freq_factor;
    double high_freq_wavelen = old_len / r->high_freq_factor;
    for (int i = 0; i < d / 2; i++) {
        double f = inv_freq[i], wavelen = 2 * M_PI / f;
        double scaled = wavelen > low_freq_wavelen ? f / r->factor : f;
        if (!(wavelen < high_freq_wavelen) && !(wavelen > low_freq_wavelen)) {
            double smooth = (old_len / wavelen - r->low_freq_factor) /
                            (r->high_freq_factor - r->low_freq_factor);
            scaled = (1 - smooth) * scaled / r->factor + smooth * scaled;
        }
        inv_freq[i] = scaled;
    }
}

void hf_rope_local_inv_freq(const ModelConfig *cfg, double *inv_freq) {
    int d = cfg->head_dim;
    for (int i = 0; i < d / 2; i++)
        inv_freq[i] = 1.0 / pow(cfg->rope_local_theta, (double)(2 * i) / d);
}
