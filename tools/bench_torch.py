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

usage: bench_torch.py [--shape smollm-135m|llama-1b] [--amp none|bf16] [--batch B] [--seq T]
                      [--steps 2] [--threads 2] [--long]
"""
import argparse
import math
import resource
import time

import torch
import torch.nn.functional as F

SHAPES = {  # hidden, intermediate, layers, heads, kv heads, vocab, batch, seq
    "smollm-135m": (576, 1536, 30, 9, 3, 49152, 4, 256),
    "llama-1b": (2048, 8192, 16, 32, 8, 128256, 1, 512),
}
HIDDEN, INTER, LAYERS, HEADS, KV_HEADS, VOCAB, _, _ = SHAPES["smollm-135m"]
HEAD_DIM = HIDDEN // HEADS
RANK, ALPHA, EPS, THETA = 8, 16.0, 1e-5, 10000.0


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


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Layer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        kv = KV_HEADS * HEAD_DIM
        self.q, self.k = LoraLinear(HIDDEN, HIDDEN), LoraLinear(HIDDEN, kv)
        self.v, self.o = LoraLinear(HIDDEN, kv), LoraLinear(HIDDEN, HIDDEN)
        self.gate, self.up = LoraLinear(HIDDEN, INTER), LoraLinear(HIDDEN, INTER)
        self.down = LoraLinear(INTER, HIDDEN)
        self.n1 = torch.nn.Parameter(torch.ones(HIDDEN), requires_grad=False)
        self.n2 = torch.nn.Parameter(torch.ones(HIDDEN), requires_grad=False)

    def forward(self, x, cos, sin, mask):
        b, t, _ = x.shape
        h = rms_norm(x, self.n1)
        q = self.q(h).view(b, t, HEADS, HEAD_DIM).transpose(1, 2)
        k = self.k(h).view(b, t, KV_HEADS, HEAD_DIM).transpose(1, 2)
        v = self.v(h).view(b, t, KV_HEADS, HEAD_DIM).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = HEADS // KV_HEADS
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(HEAD_DIM) + mask
        a = torch.softmax(s, dim=-1) @ v
        x = x + self.o(a.transpose(1, 2).reshape(b, t, HIDDEN))
        h = rms_norm(x, self.n2)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Parameter(torch.randn(VOCAB, HIDDEN) * 0.02, requires_grad=False)
        self.layers = torch.nn.ModuleList([Layer() for _ in range(LAYERS)])
        self.norm = torch.nn.Parameter(torch.ones(HIDDEN), requires_grad=False)

    def forward(self, ids):
        t = ids.shape[1]
        inv = 1.0 / (THETA ** (torch.arange(0, HEAD_DIM, 2, dtype=torch.float32) / HEAD_DIM))
        ang = torch.outer(torch.arange(t, dtype=torch.float32), inv)
        ang = torch.cat((ang, ang), dim=-1)
        cos, sin = ang.cos(), ang.sin()
        mask = torch.full((t, t), float("-inf")).triu(1)
        x = F.embedding(ids, self.embed)
        for layer in self.layers:
            x = layer(x, cos, sin, mask)
        return F.linear(rms_norm(x, self.norm), self.embed)  # tied lm_head


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
    a = ap.parse_args()
    global HIDDEN, INTER, LAYERS, HEADS, KV_HEADS, VOCAB, HEAD_DIM
    HIDDEN, INTER, LAYERS, HEADS, KV_HEADS, VOCAB, batch, seq = SHAPES[a.shape]
    HEAD_DIM = HIDDEN // HEADS
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
