"""Writes test/fixtures/tokenizer-parity.json: texts and the ids lab/bpe.py gives them with the committed
models/polyglot/tokenizer.json. The TypeScript test checks tokenizers.js gives the same ids, i.e. that
the model is evaluated on the tokenization it was trained on.

    /usr/bin/python3 lab/tokenizer_parity_fixture.py
"""
import json
from pathlib import Path

import bpe

ROOT = Path(__file__).resolve().parent.parent
TEXTS = [
    "Die Würde des Menschen ist unantastbar.",
    "Toute personne a droit à la liberté d'opinion et d'expression ; ce droit implique…",
    "Nadie será sometido a torturas ni a penas o tratos crueles, inhumanos o degradantes.",
    "L'uomo è libero — 3,14 perché? «Sì»\n\n  doppio  spazio\tTab",
    "Everyone's got rights: they're 100% real, aren't they?  Ünïcödé naïve café ß ẞ Ωμέγα 漢字 🙂",
    "def f(x):\n    return x**2  # comment\n",
]


def main():
    tok = json.loads((ROOT / "models/polyglot/tokenizer.json").read_text("utf-8"))
    vocab = tok["model"]["vocab"]
    merges = [tuple(m.split(" ")) for m in tok["model"]["merges"]]
    enc = bpe.Encoder(vocab, merges)
    cases = [{"text": t, "ids": enc.encode(t)} for t in TEXTS]
    (ROOT / "test/fixtures/tokenizer-parity.json").write_text(json.dumps(cases, ensure_ascii=False, indent=1) + "\n")


if __name__ == "__main__":
    main()
