#!/usr/bin/python3
"""Expected logits of a small random Llama with llama3 rope_scaling, for tests/test_model_llama3.c.

Uses the float64 reference /work/shared/reference/ref_llama.py (or $LORAFIT_SHARED/reference),
which ignores rope_scaling: its forward computes inv_freq = 1 / theta ** (arange(0, D, 2) / D)
inline, so the model's `theta` is replaced by an object whose power is 1 / inv_freq_llama3
(an independent transcription of transformers' _compute_llama3_parameters), and the
reference then rotates with the scaled frequencies. The unscaled logits are saved too, so the
test can check that the scaling really changes the result at these positions.

Run: /usr/bin/python3 tools/ref_llama3_logits.py MODEL_DIR OUT.safetensors
where MODEL_DIR/config.json already holds the rope_scaling block (see tests/data/model/README.md)."""
import json, math, os, sys
import numpy as np
import torch

shared = os.environ.get("LORAFIT_SHARED", "/work/shared")
sys.path.insert(0, os.path.join(shared, "reference"))
import ref_llama, st  # noqa: E402


def llama3_inv_freq(dim, base, rs):
    inv = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
    factor, low, high = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
    old = rs["original_max_position_embeddings"]
    low_wavelen, high_wavelen = old / low, old / high
    wavelen = 2 * math.pi / inv
    out = torch.where(wavelen > low_wavelen, inv / factor, inv)
    smooth = (old / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * out / factor + smooth * out
    medium = ~(wavelen < high_wavelen) * ~(wavelen > low_wavelen)
    return torch.where(medium, smoothed, out)


class ScaledTheta:
    """Stands in for rope_theta inside Ref.forward: theta ** (arange(0, D, 2) / D) becomes
    1 / inv_freq_llama3, so 1 / that is the scaled inverse frequency."""
    def __init__(self, inv):
        self.inv = inv

    def __pow__(self, exponent):
        assert exponent.shape == self.inv.shape
        return 1.0 / self.inv


def main():
    model_dir, out = sys.argv[1], sys.argv[2]
    ref = ref_llama.Ref(model_dir)
    rs = ref.cfg["rope_scaling"]
    assert rs["rope_type"] == "llama3"
    B, T, V = 2, 40, ref.cfg["vocab_size"]
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(0, V, (B, T), generator=g)
    with torch.no_grad():
        plain = ref.forward(ids)
        inv = llama3_inv_freq(ref.hd, ref.theta, rs)
        ref.theta = ScaledTheta(inv)
        scaled = ref.forward(ids)
    st.save(out, {"input_ids": ids.numpy().astype(np.int32),
                  "logits": scaled.numpy().astype(np.float32),
                  "logits_plain": plain.numpy().astype(np.float32)}, {"format": "pt"})
    print(json.dumps({"inv_freq_llama3": inv.tolist(),
                      "max_abs_scaled_minus_plain": float((scaled - plain).abs().max())}))


if __name__ == "__main__":
    main()
