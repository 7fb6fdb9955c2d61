#!/usr/bin/python3
"""tools/bench_torch.py - the bench_train step in PyTorch, for comparison.

A SmolLM-135M-shaped Llama (hidden 576, intermediate 1536, 30 layers, 9 / 3 heads, vocab
49152, tied embeddings), random float32 weights, frozen; LoRA r 8 (alpha 16) on all seven
linears of every layer as PEFT does it (y = x W^T + s * (x A^T) B^T, only A and B train).
One step = forward + cross-entropy + backward + clip_grad_norm_ + AdamW, on the CPU with
torch.set_num_threads(2) (override with --threads). Prints ms/step and tokens/s after one
warm-up step, like bench_train.

--amp bf16 runs forward and loss under torch.autocast("cpu", dtype=torch.bfloat16), as
Hugging Face's Trainer does with bf16=True on a CPU; the adapters (and their AdamW state)
stay float32. --shape llama-1b is bench_train's Llama-3.2-1B shape (hidden 2048,
intermediate 8192, 16 layers, 32 / 8 heads, vocab 128256, tied; batch 1 x 512).

--shape qwen3-0.6b and gemma3-1b are bench_train's family shapes with their family's forward,
as transformers' modeling_qwen3.py / modeling_gemma3.py compute it:
  qwen3-0.6b: hidden 1024, intermediate 3072, 28 layers, 16 / 8 heads of head_dim 128, vocab
    151936, tied, RoPE base 1e6; Llama's layer with an RMSNorm over each head of q and k
    before RoPE (batch 1 x 512).
  gemma3-1b: hidden 1152, intermediate 6912, 26 layers, 4 / 1 heads of 256, vocab 262144,
    tied; RMSNorm as (1 + w) in float32, four per layer (input, post-attention,
    pre-feedforward, post-feedforward) and per head on q and k; embeddings times
    sqrt(hidden) rounded to their dtype; scores scaled by query_pre_attn_scalar^-1/2 (256);
    gelu (tanh) gated MLP; 5 local : 1 global layers, the local ones with a sliding window
    of 512 and RoPE base 1e4, the global ones 1e6; final logits soft-capped at 30, as
    bench_train's model (batch 1 x 1024: two windows).
--layers L builds the shape with L layers (as bench_train --layers).

usage: bench_torch.py [--shape smollm-135m|llama-1b|qwen3-0.6b|gemma3-1b] [--layers L]
                      [--amp none|bf16] [--batch B] [--seq T] [--steps 2] [--threads 2] [--long]
"""
import argparse
import math
import resource
import time

import torch
import torch.nn.functional as F

SHAPES = {  # family, hidden, intermediate, layers, heads, kv heads, head_dim, vocab, batch, seq
    "smollm-135m": ("llama", 576, 1536, 30, 9, 3, 64, 49152, 4, 256),
    "llama-1b": ("llama", 2048, 8192, 16, 32, 8, 64, 128256, 1, 512),
    "qwen3-0.6b": ("qwen3", 1024, 3072, 28, 16, 8, 128, 151936, 1, 512),
    "gemma3-1b": ("gemma3", 1152, 6912, 26, 4, 1, 256, 262144, 1, 1024),
}
FAMILY, HIDDEN, INTER, LAYERS, HEADS, KV_HEADS, HEAD_DIM, VOCAB, _, _ = SHAPES["smollm-135m"]
RANK, ALPHA, EPS, THETA = 8, 16.0, 1e-5, 10000.0
# Gemma 3 (make_model's gemma3_text): window, every 6th layer global, local / global RoPE
# bases, query_pre_attn_scalar, final_logit_softcapping
WINDOW, PATTERN, LOCAL_THETA, QUERY_SCALAR, FINAL_CAP = 512, 6, 10000.0, 256.0, 30.0


class LoraLinear(torch.nn.Module):
    def __init__(self, inp, out):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(out, inp) * 0.02, requires_grad=False)
        bound = 1.0 / math.sqrt(inp)
        self.A = torch.nn.Parameter(torch.empty(RANK, inp).uniform_(-bound, bound))
        self.B = torch.nn.Parameter(torch.zeros(out, RANK))
        self.scaling = ALPHA / RANK

    def forward(self, x):
        return F.linear(x, self.weight) + self.scaling * F.linear(F.linear(x, self.A), self.B)


def rms_norm(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * w


def gemma_norm(x, w):  # Gemma3RMSNorm: float32, times (1 + w), back to x's dtype
    xf = x.float()
    out = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + EPS)
    return (out * (1.0 + w.float())).type_as(x)


def norm(x, w):
    return gemma_norm(x, w) if FAMILY == "gemma3" else rms_norm(x, w)


def rope_tables(t, theta):
    inv = 1.0 / (theta ** (torch.arange(0, HEAD_DIM, 2, dtype=torch.float32) / HEAD_DIM))
    ang = torch.outer(torch.arange(t, dtype=torch.float32), inv)
    ang = torch.cat((ang, ang), dim=-1)
    return ang.cos(), ang.sin()


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def norm_weight(n):  # at its identity: 1, Gemma's (1 + w) 0
    return torch.nn.Parameter(torch.full((n,), 0.0 if FAMILY == "gemma3" else 1.0),
                              requires_grad=False)


class Layer(torch.nn.Module):
    def __init__(self, index):
        super().__init__()
        q, kv = HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM
        self.q, self.k = LoraLinear(HIDDEN, q), LoraLinear(HIDDEN, kv)
        self.v, self.o = LoraLinear(HIDDEN, kv), LoraLinear(q, HIDDEN)
        self.gate, self.up = LoraLinear(HIDDEN, INTER), LoraLinear(HIDDEN, INTER)
        self.down = LoraLinear(INTER, HIDDEN)
        self.n1, self.n2 = norm_weight(HIDDEN), norm_weight(HIDDEN)
        if FAMILY in ("qwen3", "gemma3"):
            self.qn, self.kn = norm_weight(HEAD_DIM), norm_weight(HEAD_DIM)
        if FAMILY == "gemma3":  # post-attention, pre- and post-feedforward
            self.n3, self.n4 = norm_weight(HIDDEN), norm_weight(HIDDEN)
        self.sliding = FAMILY == "gemma3" and (index + 1) % PATTERN != 0
        self.scale = QUERY_SCALAR ** -0.5 if FAMILY == "gemma3" else 1.0 / math.sqrt(HEAD_DIM)

    def forward(self, x, ropes, masks):
        b, t, _ = x.shape
        cos, sin = ropes[self.sliding]
        h = norm(x, self.n1)
        q = self.q(h).view(b, t, HEADS, HEAD_DIM).transpose(1, 2)
        k = self.k(h).view(b, t, KV_HEADS, HEAD_DIM).transpose(1, 2)
        v = self.v(h).view(b, t, KV_HEADS, HEAD_DIM).transpose(1, 2)
        if FAMILY in ("qwen3", "gemma3"):
            q, k = norm(q, self.qn), norm(k, self.kn)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = HEADS // KV_HEADS
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        s = (q @ k.transpose(-1, -2)) * self.scale + masks[self.sliding]
        a = torch.softmax(s, dim=-1) @ v
        a = self.o(a.transpose(1, 2).reshape(b, t, HEADS * HEAD_DIM))
        if FAMILY != "gemma3":
            x = x + a
            h = norm(x, self.n2)
            return x + self.down(F.silu(self.gate(h)) * self.up(h))
        x = x + norm(a, self.n2)
        h = norm(x, self.n3)
        return x + norm(self.down(F.gelu(self.gate(h), approximate="tanh") * self.up(h)), self.n4)


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Parameter(torch.randn(VOCAB, HIDDEN) * 0.02, requires_grad=False)
        self.layers = torch.nn.ModuleList([Layer(i) for i in range(LAYERS)])
        self.norm = norm_weight(HIDDEN)

    def forward(self, ids):
        t = ids.shape[1]
        causal = torch.full((t, t), float("-inf")).triu(1)
        ropes, masks = [rope_tables(t, THETA)] * 2, [causal] * 2
        x = F.embedding(ids, self.embed)
        if FAMILY == "gemma3":  # [global, sliding]: the window masks keys t - s >= WINDOW
            ropes[1] = rope_tables(t, LOCAL_THETA)
            masks[1] = causal + torch.full((t, t), float("-inf")).tril(-WINDOW)
            x = x * torch.tensor(HIDDEN ** 0.5, dtype=x.dtype)
        for layer in self.layers:
            x = layer(x, ropes, masks)
        logits = F.linear(norm(x, self.norm), self.embed)  # tied lm_head
        if FAMILY == "gemma3":
            logits = torch.tanh(logits / FINAL_CAP) * FINAL_CAP
        return logits


def bench(model, opt, batch, seq, steps, amp):
    g = torch.Generator().manual_seed(42)
    ids = torch.randint(0, VOCAB, (batch, seq), generator=g)
    targets = torch.cat((ids[:, 1:], torch.full((batch, 1), -100)), dim=1)
    params = [p for p in model.parameters() if p.requires_grad]

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp == "bf16"):
            logits = model(ids)
            loss = F.cross_entropy(logits.view(-1, VOCAB), targets.reshape(-1), ignore_index=-100)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        return loss.item()

    t0 = time.perf_counter()
    loss = step()
    print(f"bench_torch: B {batch} x T {seq}: warm-up {(time.perf_counter() - t0) * 1e3:.0f} ms "
          f"(loss {loss:.6f})")
    total = 0.0
    for s in range(steps):
        t0 = time.perf_counter()
        loss = step()
        dt = time.perf_counter() - t0
        total += dt
        print(f"bench_torch: B {batch} x T {seq}: step {s + 1} {dt * 1e3:.0f} ms (loss {loss:.6f})")
    ms = total / steps * 1e3
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    prec = "bf16 autocast" if amp == "bf16" else "float32"
    print(f"bench_torch: B {batch} x T {seq}, {torch.get_num_threads()} threads, {prec}: "
          f"{ms:.0f} ms/step, "
          f"{batch * seq / (ms / 1e3):.0f} tokens/s, peak RSS {rss:.0f} MB (torch {torch.__version__})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", choices=sorted(SHAPES), default="smollm-135m")
    ap.add_argument("--amp", choices=["none", "bf16"], default="none")
    ap.add_argument("--batch", type=int, default=0)
    ap.add_argument("--seq", type=int, default=0)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--long", action="store_true")
    ap.add_argument("--layers", type=int, default=0)
    a = ap.parse_args()
    global FAMILY, HIDDEN, INTER, LAYERS, HEADS, KV_HEADS, HEAD_DIM, VOCAB, EPS, THETA
    FAMILY, HIDDEN, INTER, LAYERS, HEADS, KV_HEADS, HEAD_DIM, VOCAB, batch, seq = SHAPES[a.shape]
    LAYERS = a.layers or LAYERS
    EPS, THETA = (1e-6, 1e6) if FAMILY != "llama" else (EPS, THETA)
    a.batch, a.seq = a.batch or batch, a.seq or seq
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = Model()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.0)
    with torch.no_grad():
        print(f"bench_torch: {sum(p.numel() for p in model.parameters() if not p.requires_grad)} "
              f"base parameters, {sum(p.numel() for p in params)} LoRA parameters (r {RANK})")
    bench(model, opt, a.batch, a.seq, a.steps, a.amp)
    if a.long:
        bench(model, opt, 1, 512, a.steps, a.amp)


if __name__ == "__main__":
    main()
