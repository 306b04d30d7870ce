"""PyTorch eager GPT-2 forward on the weights of bench/gpt2-model.ts's ONNX file, for bench:scale's speed ratio.

    /usr/bin/python3 bench/torch_gpt2.py MODEL_DIR TOKENS.json THREADS

TOKENS.json: {"windows": [[ids...], ...] (inputs), "targets": [[ids...], ...], "batch": B}. Prints one JSON line:
the mean next-token loss over all targets (to check the weights and tokens are the engine's) and the seconds of the
scoring loop (the best of two runs after a warm-up), with torch.set_num_threads(THREADS).
"""
import json
import math
import sys
import time

import onnx
import torch
from onnx import numpy_helper


def main():
    model_dir, tokens_file, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    torch.set_num_threads(threads)
    m = onnx.load(f"{model_dir}/model.onnx")
    w = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in m.graph.initializer}
    cfg = json.load(open(f"{model_dir}/config.json"))
    d, heads, layers = cfg["n_embd"], cfg["n_head"], cfg["n_layer"]
    hd = d // heads
    spec = json.load(open(tokens_file))

    def ln(x, p):
        return torch.nn.functional.layer_norm(x, (d,), w[f"{p}.weight"], w[f"{p}.bias"], 1e-5)

    def conv1d(x, p):
        return torch.addmm(w[f"{p}.bias"], x.reshape(-1, x.shape[-1]), w[f"{p}.weight"]).reshape(*x.shape[:-1], -1)

    def forward(ids):
        b, t = ids.shape
        x = w["transformer.wte.weight"][ids] + w["transformer.wpe.weight"][torch.arange(t)]
        mask = w["transformer.h.attn.bias"][:, :, :t, :t]
        for l in range(layers):
            h = f"transformer.h.{l}"
            q, k, v = conv1d(ln(x, f"{h}.ln_1"), f"{h}.attn.c_attn").split(d, dim=2)
            q, k, v = (y.reshape(b, t, heads, hd).transpose(1, 2) for y in (q, k, v))
            p = torch.softmax(q @ k.transpose(-1, -2) * (1 / math.sqrt(hd)) + mask, dim=-1)
            x = x + conv1d((p @ v).transpose(1, 2).reshape(b, t, d), f"{h}.attn.c_proj")
            a = conv1d(ln(x, f"{h}.ln_2"), f"{h}.mlp.c_fc")
            g = 0.5 * a * (1 + torch.tanh(math.sqrt(2 / math.pi) * (a + 0.044715 * a ** 3)))
            x = x + conv1d(g, f"{h}.mlp.c_proj")
        return ln(x, "transformer.ln_f") @ w["transformer.wte.weight"].T

    def score():
        total, count = 0.0, 0
        windows, targets, batch = spec["windows"], spec["targets"], spec["batch"]
        with torch.no_grad():
            for i in range(0, len(windows), batch):
                ids = torch.tensor(windows[i:i + batch])
                tg = torch.tensor(targets[i:i + batch])
                logp = torch.log_softmax(forward(ids), dim=-1)
                nll = -logp.gather(-1, tg.unsqueeze(-1)).squeeze(-1)
                total += float(nll.sum())
                count += tg.numel()
        return total / count

    score()  # warm-up
    runs = []
    for _ in range(2):
        t0 = time.perf_counter()
        loss = score()
        runs.append(time.perf_counter() - t0)
    print(json.dumps({"seconds": min(runs), "loss": loss, "threads": torch.get_num_threads()}))


main()
