#!/usr/bin/env python3
"""Independent check of a PEFT adapter directory written by lorafit (standard library only).

Usage: check_peft_adapter.py ADAPTER_DIR MODEL_CONFIG_JSON DTYPE
Reads adapter_model.safetensors with its own parser (not lorafit's) and checks what PEFT's
PeftModel.from_pretrained relies on: tensor names, [r, in] / [out, r] shapes, the dtype,
{"format": "pt"} metadata, contiguous offsets, and the adapter_config.json fields.
A multimodal wrapper base (config.json with text_config, Gemma3ForConditionalGeneration):
the decoder's dimensions from text_config (Gemma3TextConfig's defaults for what it omits),
tensors under base_model.model.model.language_model.layers as PEFT names them with
transformers >= 4.52, and target_modules a string that PEFT re.fullmatch-es against each
module name: it must match every adapted module and none of the vision tower's linears.
Prints "ok N tensors" and exits 0, or prints the first problem and exits 1."""
import json, os, re, struct, sys

def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)

def main():
    d, model_cfg_path, want_dtype = sys.argv[1], sys.argv[2], sys.argv[3].upper()
    mc = json.load(open(model_cfg_path))
    prefix, wrapped = "model.", "text_config" in mc
    if wrapped:  # Gemma3TextConfig's defaults under the checkpoint's text_config
        text = {"num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256}
        text.update(mc["text_config"]); mc, prefix = text, "model.language_model."
    cfg = json.load(open(os.path.join(d, "adapter_config.json")))
    required = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "bias": "none", "use_dora": False,
                "fan_in_fan_out": False, "init_lora_weights": True, "inference_mode": True,
                "modules_to_save": None}
    for k, v in required.items():
        if k not in cfg or cfg[k] != v:
            fail("adapter_config.json: %s should be %r, is %r" % (k, v, cfg.get(k, "<missing>")))
    for k in ("r", "lora_alpha", "lora_dropout", "target_modules", "use_rslora",
              "base_model_name_or_path"):
        if k not in cfg:
            fail("adapter_config.json: %s is missing" % k)
    raw = open(os.path.join(d, "adapter_model.safetensors"), "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    if n % 8:
        fail("header length %d is not a multiple of 8" % n)
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    if header.pop("__metadata__", None) != {"format": "pt"}:
        fail("__metadata__ should be {'format': 'pt'}")
    size = {"F32": 4, "BF16": 2, "F16": 2}[want_dtype]
    h, nh, nkv = mc["hidden_size"], mc["num_attention_heads"], mc.get("num_key_value_heads", mc["num_attention_heads"])
    hd = mc.get("head_dim") or h // nh
    dims = {"q_proj": (nh * hd, h), "k_proj": (nkv * hd, h), "v_proj": (nkv * hd, h),
            "o_proj": (h, nh * hd), "gate_proj": (mc["intermediate_size"], h),
            "up_proj": (mc["intermediate_size"], h), "down_proj": (h, mc["intermediate_size"])}
    pat = re.compile(r"^base_model\.model\." + re.escape(prefix) + r"layers\.(\d+)\.(self_attn|mlp)\."
                     r"(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)\.lora_([AB])\.weight$")
    targets = cfg["target_modules"]
    if wrapped:
        if not isinstance(targets, str):
            fail("target_modules must be a regex for a wrapper (a list reaches the vision tower too)")
        for v in ("model.vision_tower.vision_model.encoder.layers.0.self_attn.q_proj",
                  "model.vision_tower.vision_model.encoder.layers.0.self_attn.k_proj",
                  "model.vision_tower.vision_model.encoder.layers.0.self_attn.v_proj",
                  "model.vision_tower.vision_model.encoder.layers.0.mlp.fc1", "lm_head"):
            if re.fullmatch(targets, v):
                fail("target_modules %r matches %s" % (targets, v))
    mods = set()
    spans, r = [], cfg["r"]
    for name, t in header.items():
        m = pat.match(name)
        if not m:
            fail("unexpected tensor name " + name)
        layer, parent, mod, ab = int(m.group(1)), m.group(2), m.group(3), m.group(4)
        if layer >= mc["num_hidden_layers"] or (parent == "mlp") != (mod in ("gate_proj", "up_proj", "down_proj")):
            fail("bad layer or parent in " + name)
        key = name[len("base_model.model."):name.index(".lora_")]  # PEFT's module name
        if not (re.fullmatch(targets, key) if isinstance(targets, str) else mod in targets):
            fail(name + " is not in target_modules")
        mods.add(mod)
        out, inn = dims[mod]
        want = [r, inn] if ab == "A" else [out, r]
        if t["shape"] != want:
            fail("%s has shape %s, expected %s" % (name, t["shape"], want))
        if t["dtype"] != want_dtype:
            fail("%s has dtype %s, expected %s" % (name, t["dtype"], want_dtype))
        b, e = t["data_offsets"]
        if e - b != want[0] * want[1] * size:
            fail(name + ": byte size does not match its shape")
        spans.append((b, e))
    spans.sort()
    pos = 0
    for b, e in spans:
        if b != pos:
            fail("tensor data is not contiguous at byte %d" % b)
        pos = e
    if 8 + n + pos != len(raw):
        fail("file size does not match the header")
    if isinstance(targets, str):  # every language-model linear the regex reaches is adapted
        for l in range(mc["num_hidden_layers"]):
            for mod in dims:
                parent = "mlp" if mod in ("gate_proj", "up_proj", "down_proj") else "self_attn"
                if re.fullmatch(targets, "%slayers.%d.%s.%s" % (prefix, l, parent, mod)) and mod not in mods:
                    fail("target_modules matches layer %d's %s, which has no tensors" % (l, mod))
    want_count = 2 * mc["num_hidden_layers"] * (len(mods) if isinstance(targets, str) else len(targets))
    if len(header) != want_count:
        fail("%d tensors, expected %d" % (len(header), want_count))
    print("ok %d tensors" % len(header))

main()
