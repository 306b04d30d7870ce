"""Convert a goodfire-ai/spd or param-decomp run into a Scalpel component catalog.

    /usr/bin/python3 lab/import_spd.py RUN.pth --model model.onnx [--labels results.jsonl] --out DIR

RUN is the run's saved state dict (torch `.pt`/`.pth`, or `.safetensors`): its keys
`_components.<module path with '.' replaced by '-'>.V` (d_in, C) and `.U` (C, d_out) become the
catalog's `<module>.V` / `<module>.U`, keeping the convention torch-layout weight ≈ (V @ U).T. Other keys
(the target model's weights, the CI functions, whose architecture varies between versions of those
tools) are ignored. `--labels` reads their autointerp `results.jsonl` rows `{component_key, label,
confidence}`; keys are `<module>:<index>` as in Scalpel. The ONNX model names the initializer (and its
layout) of each module and gives the catalog's model hash. See docs/components.md, "Importing".
"""
import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

from spd import CATALOG_FORMAT, module_entry, onnx_initializers, read_safetensors, sha256_file, write_catalog

COMPONENT_KEY = re.compile(r"(?:^|\.)_components\.([^.]+)\.(V|U)$")
# Their autointerp answers confidence in words.
CONFIDENCE_WORDS = {"high": 0.9, "medium": 0.6, "low": 0.3}


class ConvertError(Exception):
    """A user error: one line, with the file (and line) it comes from."""


def load_state_dict(path):
    if path.suffix == ".safetensors":
        return read_safetensors(path)
    import torch

    try:
        obj = torch.load(path, map_location="cpu")
    except Exception as err:  # torch raises many kinds for a file that is not a checkpoint
        raise ConvertError(f"{path}: not a torch checkpoint ({type(err).__name__}: {err})")
    if not isinstance(obj, dict):
        raise ConvertError(f"{path}: expected a state dict, found {type(obj).__name__}")
    return {k: v.detach().float().numpy() for k, v in obj.items() if hasattr(v, "detach")}


def components_of(state, path):
    """{module path: (V, U)} from the run's `_components.*` keys, checked for shape."""
    found = {}
    for key, value in state.items():
        m = COMPONENT_KEY.search(key)
        if m:
            found.setdefault(m.group(1).replace("-", "."), {})[m.group(2)] = np.asarray(value, dtype=np.float32)
    if not found:
        raise ConvertError(f"{path}: no `_components.<module>.V/U` keys (is this an SPD run's state dict?)")
    out = {}
    for module, vu in sorted(found.items()):
        if set(vu) != {"V", "U"}:
            raise ConvertError(f"{path}: module {module} has {'V' if 'V' in vu else 'U'} but not {'U' if 'V' in vu else 'V'}")
        V, U = vu["V"], vu["U"]
        if V.ndim != 2 or U.ndim != 2 or V.shape[1] != U.shape[0]:
            raise ConvertError(f"{path}: module {module}: V {V.shape} and U {U.shape} do not share C (V is (d_in, C), U is (C, d_out))")
        out[module] = (V, U)
    return out


def parse_confidence(value, where):
    if value is None:
        return None
    if isinstance(value, str) and value.strip().lower() in CONFIDENCE_WORDS:
        return CONFIDENCE_WORDS[value.strip().lower()]
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1:
        return float(value)
    raise ConvertError(f"{where}: confidence {json.dumps(value)} is neither high/medium/low nor a number in [0, 1]")


def read_labels(path, modules):
    """{component key: label} from autointerp results.jsonl; unknown keys are errors."""
    labels = {}
    for n, line in enumerate(Path(path).read_text("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ConvertError(f"{where}: invalid JSON ({err.msg} at column {err.colno})")
        if not isinstance(row, dict) or not isinstance(row.get("component_key"), str) or not isinstance(row.get("label"), str):
            raise ConvertError(f"{where}: expected an object with string fields component_key and label")
        key = row["component_key"]
        module, _, index = key.rpartition(":")
        if module not in modules or not index.isdigit() or int(index) >= modules[module][0].shape[1]:
            raise ConvertError(f"{where}: component {key} is not in the run (modules: {', '.join(modules)})")
        label = {"text": row["label"], "source": "imported"}
        confidence = parse_confidence(row.get("confidence"), where)
        if confidence is not None:
            label["confidence"] = confidence
        labels[key] = label
    return labels


def convert(run, model, labels_path, out, run_id=None):
    state = load_state_dict(run)
    modules = components_of(state, run)
    labels = read_labels(labels_path, modules) if labels_path else {}
    try:
        inits = onnx_initializers(model)
    except ValueError as err:
        raise ConvertError(str(err))
    entries, components, tensors = [], [], {}
    for path, (V, U) in modules.items():
        try:
            entries.append(module_entry(path, V.shape[0], U.shape[1], inits, V.shape[1]))
        except ValueError as err:
            raise ConvertError(f"{model}: {err}")
        tensors[f"{path}.V"], tensors[f"{path}.U"] = V, U
        norms = np.linalg.norm(V, axis=0) * np.linalg.norm(U, axis=1)
        for c in range(V.shape[1]):
            info = {"key": f"{path}:{c}", "module": path, "index": c, "norm": round(float(norms[c]), 6)}
            if info["key"] in labels:
                info["label"] = labels[info["key"]]
            components.append(info)
    catalog = {
        "format": CATALOG_FORMAT,
        "model": {"file": Path(model).name, "sha256": sha256_file(model)},
        "method": {
            "name": "imported-spd",
            "params": {"source": Path(run).name, "run_sha256": sha256_file(run), "labels": Path(labels_path).name if labels_path else None},
            "provenance": f"goodfire-ai/spd or param-decomp run{' ' + run_id if run_id else ''}, converted by lab/import_spd.py",
        },
        "tensors": "components.safetensors",
        "modules": entries,
        "components": components,
    }
    write_catalog(out, catalog, tensors, {"format": CATALOG_FORMAT, "method": "imported-spd"})
    # Round trip: what was written reads back bit for bit.
    back = read_safetensors(Path(out) / "components.safetensors")
    assert all(np.array_equal(back[k], v) for k, v in tensors.items())
    return catalog


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path, help="the SPD run's state dict (.pt, .pth or .safetensors)")
    ap.add_argument("--model", type=Path, required=True, help="the decomposed model's ONNX file")
    ap.add_argument("--labels", type=Path, help="autointerp results.jsonl")
    ap.add_argument("--out", type=Path, required=True, help="catalog folder to write")
    ap.add_argument("--run-id", help="free text recorded as provenance, e.g. wandb:goodfire/spd/runs/abc123")
    args = ap.parse_args()
    for f in (args.run, args.model, args.labels):
        if f is not None and not f.is_file():
            sys.exit(f"error: {f}: no such file")
    try:
        catalog = convert(args.run, args.model, args.labels, args.out, args.run_id)
    except ConvertError as err:
        sys.exit(f"error: {err}")
    labelled = sum(1 for c in catalog["components"] if "label" in c)
    print(f"wrote {args.out}: {len(catalog['modules'])} modules, {len(catalog['components'])} components, {labelled} labelled")


if __name__ == "__main__":
    main()
