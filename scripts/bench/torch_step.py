"""The PyTorch side of the `torch` bench section (scripts/bench/torch.ts).

Usage: python3 scripts/bench/torch_step.py DIR

DIR (written by torch.ts) holds `weights.bin` (USE-lite's weights, float32 little-endian, this
project's checkpoint names, dense layers stored [in, out]), `manifest.json` ({"weights": [{name,
shape, offset}], "warmup", "lr", ...}) and `batches.json` ({"probe": batch, "batches": [batch]}:
each batch is {q, p, n}, each a padded token batch {batch, seq, ids, mask} exactly as the trainer
pads it).

The model is USE-lite's forward as tests/reference/use_lite_tfjs_ops.ts writes it with TF.js ops
(docs/use_lite_graph.md), with PyTorch's equivalents of the same arithmetic (F.layer_norm with
eps 1e-6 is the graph's mean/variance/rsqrt; addmm is x @ W + b). The loss is the margin loss
with the adaptive target attached and the l2 error; the gradient norm is the global L2 norm over
every parameter's gradient; the optimizer torch.optim.AdamW(lr, betas (0.9, 0.999), eps 1e-8,
weight_decay 0), i.e. the train section's AdamW. The embedding gradient is dense (F.embedding's
default, a full [vocab, 512] tensor).

Timed per step: forward (three encoder forwards and the loss; tokens are tensors already),
backward (loss.backward(), the gradient norm, reading loss and norm), optimizer (step and
zero_grad(set_to_none=True)). Prints one JSON line on stdout; progress goes to stderr.
"""

import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

LN_EPS = 1e-6
PADDING_BIAS = -1e9
L2_EPS = 1e-12
Q_SCALE = [0.125, 0.0883883461356163]  # per layer, as the graph's MultiheadAttention/mul/y
HEADS = 4


def load_weights(directory, manifest):
    raw = np.fromfile(os.path.join(directory, "weights.bin"), dtype="<f4")
    out = {}
    for w in manifest["weights"]:
        size = int(np.prod(w["shape"])) if w["shape"] else 1
        data = raw[w["offset"]:w["offset"] + size].reshape(w["shape"])
        out[w["name"]] = torch.nn.Parameter(torch.from_numpy(data.copy()))
    return out


def token_batch(b):
    """Ids [batch * seq] (int64) and mask [batch, seq] (float32) of one padded batch."""
    ids = torch.tensor(b["ids"], dtype=torch.int64)
    mask = torch.tensor(b["mask"], dtype=torch.float32).reshape(b["batch"], b["seq"])
    return ids, mask


def dense(w, x, name):
    return torch.addmm(w[name + ".bias"], x, w[name + ".weight"])


def layer_norm(w, x, name):
    return F.layer_norm(x, (x.shape[-1],), w[name + ".weight"], w[name + ".bias"], LN_EPS)


def forward(w, ids, mask):
    """USE-lite's L2-normalised embeddings [batch, 512] of one padded batch."""
    B, S = mask.shape
    n = B * S
    mask_col = mask.reshape(n, 1)
    table = w["embeddings.word_embeddings.weight"]
    e = F.embedding(ids, table)  # dense gradient
    half = table.shape[1] // 2
    inv = torch.exp(torch.arange(half, dtype=torch.float32) * (-math.log(1e4) / (half - 1)))
    arg = torch.arange(S, dtype=torch.float32).reshape(S, 1) * inv.reshape(1, half)
    signal = torch.cat([torch.sin(arg), torch.cos(arg)], 1)  # [S, 512], sines first
    e3 = e.reshape(B, S, 2 * half)
    x = (e3 + (e3 + signal)).reshape(n, 2 * half) * mask_col  # 2 E + signal, 0 at padding
    key_bias = ((1 - mask) * PADDING_BIAS).reshape(B, 1, 1, S)
    for l in range(2):
        p = "layers.%d" % l
        din = x.shape[1]
        dh = din // HEADS
        ln = layer_norm(w, x, p + ".attention_norm")
        residual = dense(w, x, p + ".residual") * mask_col if l == 0 else x

        def heads(t):
            return t.reshape(B, S, HEADS, dh).transpose(1, 2)

        q = heads(dense(w, ln, p + ".attention.query")) * Q_SCALE[l]
        k = heads(dense(w, ln, p + ".attention.key"))
        v = heads(dense(w, ln, p + ".attention.value"))
        probs = torch.softmax(q @ k.transpose(-1, -2) + key_bias, -1)
        ctx = (probs @ v).transpose(1, 2).reshape(n, din)
        h = dense(w, ctx, p + ".attention.output") + residual
        f = torch.relu(dense(w, layer_norm(w, h, p + ".ffn_norm"), p + ".ffn.in"))
        x = h + dense(w, f, p + ".ffn.out") * mask_col
    width = x.shape[1]
    length = torch.clamp(mask.sum(1, keepdim=True), min=1)
    pooled = (x.reshape(B, S, width) * mask.reshape(B, S, 1)).sum(1) / length
    y = torch.tanh(dense(w, pooled, "head"))
    return y * torch.rsqrt(torch.clamp((y * y).sum(-1, keepdim=True), min=L2_EPS))


def cosine_rows(a, b, eps=1e-8):
    def norm(t):
        return torch.clamp(torch.sqrt((t * t).sum(-1)), min=eps)

    return (a * b).sum(-1) / (norm(a) * norm(b))


def triple_loss(w, batch):
    """Margin loss, adaptive target (attached), l2 error: mean_j (m_j - T_j)^2."""
    q = forward(w, *batch["q"])
    p = forward(w, *batch["p"])
    n = forward(w, *batch["n"])
    m = cosine_rows(q, p) - cosine_rows(q, n)
    t = cosine_rows(p, n) * 0.5 + 0.5
    return ((m - t) ** 2).mean()


def tensors(batch):
    return {k: token_batch(batch[k]) for k in ("q", "p", "n")}


def blas_library():
    """The BLAS shared libraries this process mapped (Linux), e.g. OpenBLAS or netlib's reference
    libblas.so.3 (Debian's default for python3-torch without libopenblas0: many times slower)."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "blas" in line.split()[-1].lower()}
    except OSError:
        return None
    return sorted(paths)


def median(xs):
    s = sorted(xs)
    h = len(s) // 2
    return s[h] if len(s) % 2 else (s[h - 1] + s[h]) / 2


def main():
    if len(sys.argv) != 2:
        print("torch_step.py: usage: torch_step.py DIR", file=sys.stderr)
        sys.exit(2)
    directory = sys.argv[1]
    with open(os.path.join(directory, "manifest.json")) as f:
        manifest = json.load(f)
    with open(os.path.join(directory, "batches.json")) as f:
        data = json.load(f)
    threads = manifest.get("threads") or (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    )
    torch.set_num_threads(threads)
    w = load_weights(directory, manifest)
    params = list(w.values())
    opt = torch.optim.AdamW(
        params, lr=manifest["lr"], betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0
    )
    with torch.no_grad():
        probe_loss = triple_loss(w, tensors(data["probe"])).item()
    batches = [tensors(b) for b in data["batches"]]
    warmup = manifest["warmup"]
    times = []
    for i, batch in enumerate(batches):
        t0 = time.perf_counter()
        loss = triple_loss(w, batch)
        t1 = time.perf_counter()
        loss.backward()
        norm = torch.sqrt(sum((p.grad * p.grad).sum() for p in params))
        loss_value, norm_value = loss.item(), norm.item()
        if not (math.isfinite(loss_value) and math.isfinite(norm_value)):
            raise RuntimeError(
                "step %d: loss %s, gradient norm %s" % (i + 1, loss_value, norm_value)
            )
        t2 = time.perf_counter()
        opt.step()
        opt.zero_grad(set_to_none=True)
        t3 = time.perf_counter()
        ms = {
            "forward": (t1 - t0) * 1e3,
            "backward": (t2 - t1) * 1e3,
            "optimizer": (t3 - t2) * 1e3,
            "total": (t3 - t0) * 1e3,
        }
        if i >= warmup:
            times.append(ms)
        print(
            "torch: step %d%s: forward %.0f ms, backward %.0f ms, optimizer %.0f ms, loss %.6f"
            % (i + 1, " (warm-up)" if i < warmup else "", ms["forward"], ms["backward"],
               ms["optimizer"], loss_value),
            file=sys.stderr,
            flush=True,
        )

    def summary(agg):
        return {
            key + "Ms": agg([t[phase] for t in times])
            for key, phase in (("step", "total"), ("forward", "forward"),
                               ("backward", "backward"), ("optimizer", "optimizer"))
        }

    print(json.dumps({
        "version": torch.__version__,
        "threads": torch.get_num_threads(),
        "steps": len(times),
        "median": summary(median),
        "min": summary(min),
        "probeLoss": probe_loss,
        "blas": blas_library(),
    }))


if __name__ == "__main__":
    main()
