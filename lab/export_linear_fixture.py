"""Exports a tiny nn.Linear-based LM the way real-world exports look, as test fixtures.

    /usr/bin/python3 lab/export_linear_fixture.py

With constant folding, torch 1.13 writes each Linear weight as an anonymous pre-transposed
initializer (`onnx::MatMul_123`) and the module path survives only in node-name scopes
(`/h.0/mlp/c_fc/MatMul`); without it, the named (out, in) weight sits behind a Transpose node.
The fixture also stores the PyTorch logits of a fixed input, so the test can check ORT against them.
"""
import json
from pathlib import Path

import torch
import torch.nn as nn

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "test/fixtures/linear-export"


class MLP(nn.Module):
    def __init__(self, d, d_mlp):
        super().__init__()
        self.c_fc = nn.Linear(d, d_mlp)
        self.c_proj = nn.Linear(d_mlp, d)

    def forward(self, x):
        return self.c_proj(torch.relu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, d, d_mlp):
        super().__init__()
        self.mlp = MLP(d, d_mlp)

    def forward(self, x):
        return x + self.mlp(x)


class TinyLinearLM(nn.Module):
    def __init__(self, vocab=32, d=8, d_mlp=16):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.h = nn.ModuleList([Block(d, d_mlp), Block(d, d_mlp)])
        self.lm_head = nn.Linear(d, vocab, bias=False)

    def forward(self, input_ids):
        x = self.wte(input_ids)
        for b in self.h:
            x = b(x)
        return self.lm_head(x)


def main():
    torch.manual_seed(0)
    model = TinyLinearLM().eval()
    OUT.mkdir(parents=True, exist_ok=True)
    ids = torch.tensor([[1, 5, 9, 30, 2]])
    for name, folding in [("folded.onnx", True), ("transposed.onnx", False)]:
        torch.onnx.export(model, ids, str(OUT / name), input_names=["input_ids"], output_names=["logits"],
                          dynamic_axes={"input_ids": {0: "batch", 1: "sequence"}}, opset_version=17,
                          do_constant_folding=folding)
    with torch.no_grad():
        logits = model(ids)
    weights = {f"h.{i}.mlp.{m}": list(getattr(model.h[i].mlp, m).weight.shape) for i in range(2) for m in ("c_fc", "c_proj")}
    (OUT / "expected.json").write_text(json.dumps({
        "input_ids": ids[0].tolist(),
        "logits": [round(v, 6) for v in logits.flatten().tolist()],
        "torch_weight_shapes": weights,
        "c_fc_0_weight": [round(v, 7) for v in model.h[0].mlp.c_fc.weight.flatten().tolist()],
    }) + "\n")


if __name__ == "__main__":
    main()
