"""Builds Hugging Face parity fixtures for the BERT-family encoders (run on a machine with
PyTorch and transformers; the device machine has both).

For each of BertModel, DistilBertModel and MPNetModel: a seeded random tiny model saved as a
Hugging Face model directory (config.json + model.safetensors), a batch of input ids with
padding, the outputs (last_hidden_state, pooler_output where the model has one), and the
PyTorch-autograd gradients of a distributed-margin self-distillation loss (DESIGN.md's method,
target attached, l2 error) w.r.t. every parameter. Outputs and gradients are computed in
float64 from the float32 weights that are saved, so they are exact references for f32 code.

Usage: python3 make_hf_fixtures.py OUT_DIR
"""
import json
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import (BertConfig, BertModel, DistilBertConfig, DistilBertModel, MPNetConfig,
                          MPNetModel)

OUT = sys.argv[1]
VOCAB = 512

# A large initializer_range: with the usual 0.02 every pooled vector is nearly the same
# (cos ~ 1 - 1e-5), the margins cancel catastrophically in float32, and the gradients test
# float32 rounding instead of the code.
INIT = 0.4
COMMON = dict(vocab_size=VOCAB, max_position_embeddings=64, initializer_range=INIT)
MODELS = {
    "bert": (BertModel, BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                   intermediate_size=64, type_vocab_size=2,
                                   hidden_act="gelu", layer_norm_eps=1e-12, **COMMON)),
    "distilbert": (DistilBertModel, DistilBertConfig(dim=32, n_layers=2, n_heads=4, hidden_dim=64,
                                                     activation="gelu", sinusoidal_pos_embds=False,
                                                     **COMMON)),
    "mpnet": (MPNetModel, MPNetConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                      intermediate_size=64, relative_attention_num_buckets=32,
                                      layer_norm_eps=1e-5, vocab_size=VOCAB,
                                      max_position_embeddings=66, initializer_range=INIT)),
}


def batch(gen, rows, length, pad_id, cls_id, sep_id):
    ids, mask = [], []
    for r in range(rows):
        n = length - (r * 3) % (length - 3)  # varied true lengths, some padded
        body = torch.randint(5, VOCAB, (n - 2,), generator=gen).tolist()
        row = [cls_id] + body + [sep_id]
        ids.append(row + [pad_id] * (length - n))
        mask.append([1] * n + [0] * (length - n))
    return torch.tensor(ids), torch.tensor(mask)


def pooled(name, model, ids, mask):
    out = model(input_ids=ids, attention_mask=mask)
    if name == "bert":
        return out, out.pooler_output
    return out, out.last_hidden_state[:, 0]


def cos_matrix(x, y):
    x = x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    y = y / y.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return x @ y.T


def distributed_margin_l2(q, p, n):
    # m_j = cos(q_j, p_j) - cos(q_j, n_j); T[i, j] = cos(p_i, n_j)/2 + 1/2; loss = mean (m_j - T[i,j])^2
    qp = (torch.nn.functional.normalize(q, dim=-1) * torch.nn.functional.normalize(p, dim=-1)).sum(-1)
    qn = (torch.nn.functional.normalize(q, dim=-1) * torch.nn.functional.normalize(n, dim=-1)).sum(-1)
    m = qp - qn
    t = cos_matrix(p, n) / 2 + 0.5
    return ((m[None, :] - t) ** 2).mean()


for name, (cls, config) in MODELS.items():
    torch.manual_seed(1234)
    model = cls(config).eval()
    # Random LayerNorm and bias parameters too, so a wrong gamma/beta or bias use shows.
    with torch.no_grad():
        for pname, prm in model.named_parameters():
            if prm.dim() == 1:
                prm.add_(torch.randn_like(prm) * 0.1)
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    model.save_pretrained(d)
    model = model.double()
    gen = torch.Generator().manual_seed(7)
    pad, cls_id, sep = (1, 0, 2) if name == "mpnet" else (0, 101 % VOCAB, 102 % VOCAB)
    ids, mask = batch(gen, 4, 12, pad, cls_id, sep)
    with torch.no_grad():
        out, pool = pooled(name, model, ids, mask)
    record = {
        "model_class": cls.__name__,
        "torch": torch.__version__,
        "input_ids": ids.tolist(),
        "attention_mask": mask.tolist(),
        "last_hidden_state": out.last_hidden_state.tolist(),
        "pooled": pool.tolist(),
        "pooling": "pooler" if name == "bert" else "cls",
    }
    # Gradient fixture: 3 triples, queries 6 tokens, documents 10 tokens.
    qi, qm = batch(gen, 3, 6, pad, cls_id, sep)
    pi, pm = batch(gen, 3, 10, pad, cls_id, sep)
    ni, nm = batch(gen, 3, 10, pad, cls_id, sep)
    model.zero_grad()
    q = pooled(name, model, qi, qm)[1]
    p = pooled(name, model, pi, pm)[1]
    n = pooled(name, model, ni, nm)[1]
    loss = distributed_margin_l2(q, p, n)
    print(name, "cos(p, n) matrix", cos_matrix(p, n).detach().numpy().round(3).tolist())
    loss.backward()
    record["loss"] = {
        "kind": "margin", "target": "distributed", "error": "l2", "inBatch": False,
        "detachTarget": False, "value": loss.item(),
        "q_ids": qi.tolist(), "q_mask": qm.tolist(),
        "p_ids": pi.tolist(), "p_mask": pm.tolist(),
        "n_ids": ni.tolist(), "n_mask": nm.tolist(),
    }
    grads = {k: v.grad.float().contiguous() for k, v in model.named_parameters()
             if v.grad is not None}
    save_file(grads, os.path.join(d, "grads.safetensors"))
    with open(os.path.join(d, "fixture.json"), "w") as f:
        json.dump(record, f)
    print(name, "loss", loss.item(), "params", len(grads), "saved to", d)
