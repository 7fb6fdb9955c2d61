#!/usr/bin/python3
"""Expected llama3 rope_scaling inv_freq for tests/data/model/llama3_rope.json.

An independent transcription of transformers' _compute_llama3_parameters (rope_utils.py),
in float64 torch. Run: /usr/bin/python3 tools/ref_llama3_rope.py > tests/data/model/llama3_rope.json"""
import json, math, torch

cfg = {"head_dim": 16, "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
       "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
dim, base = cfg["head_dim"], cfg["rope_theta"]
inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
factor, low, high, old = cfg["factor"], cfg["low_freq_factor"], cfg["high_freq_factor"], cfg["original_max_position_embeddings"]
low_wavelen, high_wavelen = old / low, old / high
wavelen = 2 * math.pi / inv_freq
llama = torch.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)
smooth = (old / wavelen - low) / (high - low)
smoothed = (1 - smooth) * llama / factor + smooth * llama
medium = ~(wavelen < high_wavelen) * ~(wavelen > low_wavelen)
llama = torch.where(medium, smoothed, llama)
print(json.dumps({"config": cfg, "inv_freq_plain": inv_freq.tolist(), "inv_freq_llama3": llama.tolist()}, indent=1))
