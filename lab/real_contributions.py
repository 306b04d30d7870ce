"""Expected debugger contributions for the exporter-layout fixtures, computed by PyTorch autograd.

    /usr/bin/python3 lab/real_contributions.py

The debugger attributes a target logit to each component of a module (engine/trace/analysis.ts): the module's
output at one position, followed to the logits along its sublayer's path with the attention probabilities frozen,
the MLP's nonlinearity replaced by its secant slope f(h)/h (SwiGLU: silu(gate)/gate, the up projection exact given
the gate), and only the direct path from the sublayer's writer to the final norm (later blocks left out). This
script computes the same quantity through the fixtures' own PyTorch modules (lab/export_real_fixtures.py, same seeds),
with autograd instead of the engine's hand-written index arithmetic (fused q|k|v splits, grouped-query heads):

- the softmax returns the recorded probabilities, detached;
- the nonlinearity is `(f(h) / h).detach() * h`;
- each sublayer's writer returns its output detached, and the live part goes straight to the final norm's input.

For each module and position it writes the module's input x and r = d logit[target] / d (module output); a test
forms (x · V[:, c]) · (U[c, :] · r) from any catalog and compares it with the engine's contributions.
Output: test/fixtures/real/{gpt2,llama}/contributions.json.
"""
import json

import torch
import torch.nn as nn

import export_real_fixtures as fx

POSITIONS = [6, 12]


def record(model, ids, extra, modules, writers, final_norm, module, position, target):
    """x at `position` into `module`, and d logit[target] / d output of `module` at `position`."""
    probs = []
    softmax = nn.functional.softmax

    def frozen_softmax(x, *a, **k):
        y = softmax(x, *a, **k)
        probs.append(y)
        return y.detach()

    silu, gelu = nn.functional.silu, fx.new_gelu

    def secant(f):
        return lambda h: (f(h) / h).detach() * h

    direct = []
    hooks = []
    captured = {}
    target_module = modules[module]
    delta = None

    def on_target(m, inp, out):
        nonlocal delta
        captured["x"] = inp[0].detach().reshape(-1, inp[0].shape[-1])[position].clone()
        delta = torch.zeros_like(out, requires_grad=True)
        return out + delta

    def on_writer(m, inp, out):
        direct.append(out - out.detach())
        return out.detach()

    def on_final(m, inp):
        return (inp[0] + sum(direct),)

    hooks.append(target_module.register_forward_hook(on_target))
    for w in writers:
        hooks.append(w.register_forward_hook(on_writer))
    hooks.append(final_norm.register_forward_pre_hook(on_final))
    nn.functional.softmax, nn.functional.silu, fx.new_gelu = frozen_softmax, secant(silu), secant(gelu)
    try:
        out = model(ids, *extra)
    finally:
        nn.functional.softmax, nn.functional.silu, fx.new_gelu = softmax, silu, gelu
        for h in hooks:
            h.remove()
    logits = out[0] if isinstance(out, tuple) else out
    logits[0, position, target].backward()
    r = delta.grad.reshape(-1, delta.shape[-1])[position]
    return captured["x"], r


def write(folder, model, ids, extra, modules, writers, final_norm):
    with torch.no_grad():
        logits = model(ids, *extra)
    expected = json.loads((fx.OUT / folder / "expected.json").read_text())["logits"]
    assert (logits[0] - torch.tensor(expected)).abs().max() < 1e-5, f"{folder}: not the exported model's weights"
    targets = [fx.IDS[0][p + 1] for p in POSITIONS]
    out = {"input_ids": fx.IDS[0], "positions": POSITIONS, "targets": targets, "modules": {}}
    for name in modules:
        xs, rs = [], []
        for p, t in zip(POSITIONS, targets):
            x, r = record(model, ids, extra, modules, writers, final_norm, name, p, t)
            xs.append([round(float(v), 7) for v in x])
            rs.append([round(float(v), 7) for v in r])
        out["modules"][name] = {"x": xs, "r": rs}
    (fx.OUT / folder / "contributions.json").write_text(json.dumps(out, separators=(",", ":")) + "\n")


def main():
    ids = torch.tensor(fx.IDS)
    torch.manual_seed(1)
    gpt2 = fx.GPT2LMHeadModel().eval()
    h = gpt2.transformer.h
    modules = {}
    for i, block in enumerate(h):
        for path in ["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"]:
            modules[f"transformer.h.{i}.{path}"] = block.get_submodule(path)
    write("gpt2", gpt2, ids, (), modules, [m for b in h for m in (b.attn.c_proj, b.mlp.c_proj)], gpt2.transformer.ln_f)

    torch.manual_seed(2)
    llama = fx.LlamaForCausalLM().eval()
    layers = llama.model.layers
    modules = {}
    for i, layer in enumerate(layers):
        for path in ["self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]:
            modules[f"model.layers.{i}.{path}"] = layer.get_submodule(path)
    mask = torch.ones_like(ids)
    pos = torch.arange(ids.shape[1])[None]
    write("llama", llama, ids, (mask, pos), modules, [m for l in layers for m in (l.self_attn.o_proj, l.mlp.down_proj)], llama.model.norm)


if __name__ == "__main__":
    main()
