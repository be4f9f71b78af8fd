#!/usr/bin/python3
"""PyTorch peer for bench/train: the same GPT-2 computation (pre-LayerNorm
blocks, tanh GELU, causal attention, tied lm_head) with LoRA on attn.c_attn,
frozen base weights, AdamW on the LoRA parameters only, at the same shapes.

Run by bench/train with the same OpenBLAS kernel set and thread count as
sealora (Debian's torch calls the system libblas.so.3, which must be
OpenBLAS: `update-alternatives --display libblas.so.3-x86_64-linux-gnu`).
Prints one line: `peer train_tok_s=... fwd_tok_s=... threads=... blas=...`.
For benchmarking only; never part of the product."""
import argparse
import math
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--embd", type=int, default=768)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--vocab", type=int, default=50257)
    ap.add_argument("--ctx", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--steps", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    C, L, NH, V = a.embd, a.layers, a.heads, a.vocab
    hs = C // NH
    g = lambda *s: (torch.randn(*s) * 0.02)
    wte, wpe = g(V, C), g(a.ctx, C)
    blocks = []
    for _ in range(L):
        blocks.append(dict(
            ln1w=torch.ones(C), ln1b=torch.zeros(C), attw=g(C, 3 * C), attb=torch.zeros(3 * C),
            prw=g(C, C), prb=torch.zeros(C), ln2w=torch.ones(C), ln2b=torch.zeros(C),
            fcw=g(C, 4 * C), fcb=torch.zeros(4 * C), fpw=g(4 * C, C), fpb=torch.zeros(C),
            A=(torch.rand(a.rank, C) * 2 - 1).div(math.sqrt(C)).requires_grad_(),
            B=torch.zeros(3 * C, a.rank).requires_grad_()))
    lnfw, lnfb = torch.ones(C), torch.zeros(C)
    scale = 16.0 / a.rank
    params = [p for b in blocks for p in (b["A"], b["B"])]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
    mask = torch.full((a.seq, a.seq), float("-inf")).triu(1)

    def forward(x, y):
        Bq, T = x.shape
        h = wte[x] + wpe[:T]
        for b in blocks:
            z = F.layer_norm(h, (C,), b["ln1w"], b["ln1b"], 1e-5)
            qkv = torch.addmm(b["attb"], z.view(-1, C), b["attw"]).view(Bq, T, 3 * C)
            qkv = qkv + scale * (z @ b["A"].t()) @ b["B"].t()
            q, k, v = qkv.split(C, dim=2)
            q = q.view(Bq, T, NH, hs).transpose(1, 2)
            k = k.view(Bq, T, NH, hs).transpose(1, 2)
            v = v.view(Bq, T, NH, hs).transpose(1, 2)
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs)) + mask[:T, :T]
            o = (att.softmax(-1) @ v).transpose(1, 2).reshape(Bq * T, C)
            h = h + torch.addmm(b["prb"], o, b["prw"]).view(Bq, T, C)
            z = F.layer_norm(h, (C,), b["ln2w"], b["ln2b"], 1e-5).view(-1, C)
            f = F.gelu(torch.addmm(b["fcb"], z, b["fcw"]), approximate="tanh")
            h = h + torch.addmm(b["fpb"], f, b["fpw"]).view(Bq, T, C)
        h = F.layer_norm(h, (C,), lnfw, lnfb, 1e-5)
        logits = h.view(-1, C) @ wte.t()
        return F.cross_entropy(logits, y.view(-1))

    x = torch.randint(0, V, (a.batch, a.seq))
    y = torch.randint(0, V, (a.batch, a.seq))
    ntok = a.batch * a.seq
    tr, fw = [], []
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = forward(x, y)
        loss.backward()
        opt.step()
        dt = time.perf_counter() - t0
        if i >= a.warmup:
            tr.append(ntok / dt)
    with torch.no_grad():
        for i in range(a.warmup + a.steps):
            t0 = time.perf_counter()
            forward(x, y)
            dt = time.perf_counter() - t0
            if i >= a.warmup:
                fw.append(ntok / dt)
    print("peer train_tok_s=%.1f fwd_tok_s=%.1f threads=%d blas=%s cap=%s" % (
        statistics.median(tr), statistics.median(fw), torch.get_num_threads(),
        os.environ.get("OPENBLAS_CORETYPE", "auto"), torch.backends.cpu.get_cpu_capability()
        if hasattr(torch.backends, "cpu") else "?"))


if __name__ == "__main__":
    sys.exit(main())
