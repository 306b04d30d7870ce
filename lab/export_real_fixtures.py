"""Exports tiny models in the layouts users' exporters produce, as test fixtures.

    /usr/bin/python3 lab/export_real_fixtures.py

Each folder of test/fixtures/real/ is a model the way it arrives from Hugging Face + torch.onnx.export
(or optimum): module trees named as in `transformers` (GPT-2: `transformer.h.N.attn.c_attn` Conv1D, which
exports as Gemm on flattened tokens, tied lm_head; Llama/Qwen: `model.layers.N.self_attn.q_proj`, gate/up/down,
RMSNorm, rotary, grouped-query attention), with constant folding on and off, opset 14 (LayerNorm decomposed)
and 17, float32, float16 and bfloat16 (weights behind Cast), external data, and a decoder with `past_key_values.*` inputs. The weights are
random (seeded): the fixtures test file layouts and arithmetic, not what a model knows. `expected.json` holds the
PyTorch logits of a fixed input (for bfloat16 weights, of the model with its matrices rounded to bfloat16), so the tests can check onnxruntime against them. The tokenizer is byte-level
(256 tokens, no merges).
"""
import copy
import json
import math
import shutil
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn as nn
from onnx import TensorProto, numpy_helper

import bpe

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "test/fixtures/real"
VOCAB, D, LAYERS, CTX = 256, 32, 2, 64
IDS = [[72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100, 33, 10]]


# ---- GPT-2, as transformers' modeling_gpt2 writes it ------------------------------------------------------------

class Conv1D(nn.Module):
    """transformers.pytorch_utils.Conv1D: weight (in, out), addmm on the flattened tokens (exports as Gemm)."""

    def __init__(self, nf, nx):
        super().__init__()
        self.nf = nf
        self.weight = nn.Parameter(torch.randn(nx, nf) * 0.2)
        self.bias = nn.Parameter(torch.randn(nf) * 0.05)

    def forward(self, x):
        size_out = x.size()[:-1] + (self.nf,)
        x = torch.addmm(self.bias, x.view(-1, x.size(-1)), self.weight)
        return x.view(size_out)


def new_gelu(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class GPT2Attention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.c_attn = Conv1D(3 * d, d)
        self.c_proj = Conv1D(d, d)
        self.register_buffer("bias", torch.tril(torch.ones(CTX, CTX, dtype=torch.bool)).view(1, 1, CTX, CTX))

    def split_heads(self, x):
        b, t, d = x.size()
        return x.view(b, t, self.heads, d // self.heads).permute(0, 2, 1, 3)

    def forward(self, x):
        q, k, v = self.c_attn(x).split(x.size(-1), dim=2)
        q, k, v = self.split_heads(q), self.split_heads(k), self.split_heads(v)
        w = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(v.size(-1))
        t = q.size(-2)
        causal = self.bias[:, :, :t, :t]
        w = torch.where(causal, w, torch.tensor(torch.finfo(w.dtype).min, dtype=w.dtype))
        w = nn.functional.softmax(w, dim=-1)
        a = torch.matmul(w, v).permute(0, 2, 1, 3).contiguous()
        return self.c_proj(a.view(a.size(0), a.size(1), -1))


class GPT2MLP(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.c_fc = Conv1D(4 * d, d)
        self.c_proj = Conv1D(d, 4 * d)

    def forward(self, x):
        return self.c_proj(new_gelu(self.c_fc(x)))


class GPT2Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d)
        self.attn = GPT2Attention(d, heads)
        self.ln_2 = nn.LayerNorm(d)
        self.mlp = GPT2MLP(d)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT2Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(VOCAB, D)
        self.wpe = nn.Embedding(CTX, D)
        self.h = nn.ModuleList([GPT2Block(D, 4) for _ in range(LAYERS)])
        self.ln_f = nn.LayerNorm(D)

    def forward(self, input_ids):
        pos = torch.arange(0, input_ids.size(-1), dtype=torch.long).unsqueeze(0)
        x = self.wte(input_ids) + self.wpe(pos)
        for block in self.h:
            x = block(x)
        return self.ln_f(x)


class GPT2LMHeadModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.transformer = GPT2Model()
        self.lm_head = nn.Linear(D, VOCAB, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # tied, as GPT-2 is

    def forward(self, input_ids):
        return self.lm_head(self.transformer(input_ids))


# ---- Llama / Qwen, as transformers' modeling_llama writes it ----------------------------------------------------

class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(1 + 0.1 * torch.randn(d))
        self.eps = eps

    def forward(self, x):
        variance = x.pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(variance + self.eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class LlamaAttention(nn.Module):
    def __init__(self, d, heads, kv_heads):
        super().__init__()
        self.heads, self.kv_heads, self.hd = heads, kv_heads, d // heads
        self.q_proj = nn.Linear(d, heads * self.hd, bias=False)
        self.k_proj = nn.Linear(d, kv_heads * self.hd, bias=False)
        self.v_proj = nn.Linear(d, kv_heads * self.hd, bias=False)
        self.o_proj = nn.Linear(heads * self.hd, d, bias=False)
        inv_freq = 1.0 / (10000 ** (torch.arange(0, self.hd, 2).float() / self.hd))
        self.register_buffer("inv_freq", inv_freq)

    def forward(self, x, position_ids, mask, past=None):
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.heads, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.kv_heads, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.kv_heads, self.hd).transpose(1, 2)
        freqs = position_ids[:, :, None].float() * self.inv_freq[None, None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos()[:, None].to(x.dtype), emb.sin()[:, None].to(x.dtype)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if past is not None:
            k = torch.cat((past[0], k), dim=2)
            v = torch.cat((past[1], v), dim=2)
        present = (k, v)
        rep = self.heads // self.kv_heads
        k = k[:, :, None].expand(b, self.kv_heads, rep, k.shape[2], self.hd).reshape(b, self.heads, k.shape[2], self.hd)
        v = v[:, :, None].expand(b, self.kv_heads, rep, v.shape[2], self.hd).reshape(b, self.heads, v.shape[2], self.hd)
        w = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(self.hd) + mask
        w = nn.functional.softmax(w, dim=-1, dtype=torch.float32).to(q.dtype)
        a = torch.matmul(w, v).transpose(1, 2).reshape(b, t, -1)
        return self.o_proj(a), present


class LlamaMLP(nn.Module):
    def __init__(self, d, hidden):
        super().__init__()
        self.gate_proj = nn.Linear(d, hidden, bias=False)
        self.up_proj = nn.Linear(d, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, d, bias=False)

    def forward(self, x):
        return self.down_proj(nn.functional.silu(self.gate_proj(x)) * self.up_proj(x))


class LlamaDecoderLayer(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.self_attn = LlamaAttention(d, 4, 2)
        self.mlp = LlamaMLP(d, 2 * d)
        self.input_layernorm = RMSNorm(d)
        self.post_attention_layernorm = RMSNorm(d)

    def forward(self, x, position_ids, mask, past=None):
        a, present = self.self_attn(self.input_layernorm(x), position_ids, mask, past)
        x = x + a
        return x + self.mlp(self.post_attention_layernorm(x)), present


class LlamaModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed_tokens = nn.Embedding(VOCAB, D)
        self.layers = nn.ModuleList([LlamaDecoderLayer(D) for _ in range(LAYERS)])
        self.norm = RMSNorm(D)

    def forward(self, input_ids, attention_mask, position_ids, past):
        x = self.embed_tokens(input_ids)
        t = input_ids.shape[1]
        s = attention_mask.shape[1]  # past + current
        causal = torch.arange(s)[None, :] <= (torch.arange(t)[:, None] + (s - t))
        allowed = causal[None, None] & attention_mask[:, None, None, :].bool()
        mask = torch.where(allowed, torch.tensor(0.0, dtype=x.dtype), torch.tensor(torch.finfo(x.dtype).min, dtype=x.dtype))
        presents = []
        for i, layer in enumerate(self.layers):
            x, present = layer(x, position_ids, mask, (past[2 * i], past[2 * i + 1]) if past else None)
            presents.extend(present)
        return self.norm(x), presents


class LlamaForCausalLM(nn.Module):
    def __init__(self, with_past=False):
        super().__init__()
        self.model = LlamaModel()
        self.lm_head = nn.Linear(D, VOCAB, bias=False)
        self.with_past = with_past

    def forward(self, input_ids, attention_mask, position_ids, *past):
        x, presents = self.model(input_ids, attention_mask, position_ids, past)
        logits = self.lm_head(x)
        return (logits, *presents) if self.with_past else logits


# ---- export ------------------------------------------------------------------------------------------------------

def to_float16(model_proto):
    """Every float32 tensor, value and Cast target of the graph as float16 (a model exported in half precision)."""
    g = model_proto.graph
    for t in g.initializer:
        if t.data_type == TensorProto.FLOAT:
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float16), t.name))
    for n in g.node:
        for a in n.attribute:
            if n.op_type in ("Constant", "ConstantOfShape") and a.name == "value" and a.t.data_type == TensorProto.FLOAT:
                a.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(a.t).astype(np.float16)))
            if n.op_type == "Cast" and a.name == "to" and a.i == TensorProto.FLOAT:
                a.i = TensorProto.FLOAT16
    for v in list(g.input) + list(g.output) + list(g.value_info):
        if v.type.tensor_type.elem_type == TensorProto.FLOAT:
            v.type.tensor_type.elem_type = TensorProto.FLOAT16
    return model_proto


def weights_behind_cast(model_proto):
    """Weight matrices stored float16, each read through a Cast to float32 (mixed-precision exports)."""
    g = model_proto.graph
    casts = []
    for t in g.initializer:
        if t.data_type == TensorProto.FLOAT and len(t.dims) == 2:
            name = t.name
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float16), name + "_fp16"))
            casts.append(onnx.helper.make_node("Cast", [name + "_fp16"], [name], to=TensorProto.FLOAT, name=f"/Cast_{len(casts)}"))
    for c in reversed(casts):
        g.node.insert(0, c)
    return model_proto


def bfloat16_bits(a):
    """float32 → bfloat16 bit patterns, rounded to nearest even (numpy has no bfloat16)."""
    bits = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def weights_behind_cast_bf16(model_proto):
    """Weight matrices stored bfloat16, each read through a Cast to float32 (bf16 checkpoints exported this way)."""
    g = model_proto.graph
    casts = []
    for t in g.initializer:
        if t.data_type == TensorProto.FLOAT and len(t.dims) == 2:
            name, dims = t.name, list(t.dims)
            raw = bfloat16_bits(numpy_helper.to_array(t)).tobytes()
            t.CopyFrom(onnx.helper.make_tensor(name + "_bf16", TensorProto.BFLOAT16, dims, raw, raw=True))
            casts.append(onnx.helper.make_node("Cast", [name + "_bf16"], [name], to=TensorProto.FLOAT, name=f"/Cast_{len(casts)}"))
    for c in reversed(casts):
        g.node.insert(0, c)
    return model_proto


def rounded_to_bfloat16(model):
    """A copy whose matrices hold bfloat16 values (as the weights-behind-Cast export stores them), for its expected logits."""
    twin = copy.deepcopy(model)
    with torch.no_grad():
        for p in twin.parameters():
            if p.dim() == 2:
                p.copy_(p.to(torch.bfloat16).to(torch.float32))
    return twin


def export(model, name, args, input_names, output_names, dynamic_axes, opset, folding, post=None, external=False, config=None, reference=None):
    folder = OUT / name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    tmp = folder / "export.onnx"
    torch.onnx.export(model, args, str(tmp), input_names=input_names, output_names=output_names,
                      dynamic_axes=dynamic_axes, opset_version=opset, do_constant_folding=folding)
    proto = onnx.load(str(tmp))
    tmp.unlink()
    if post:
        proto = post(proto)
    if external:
        onnx.save(proto, str(folder / "model.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                  location="model.onnx_data", size_threshold=1024)
    else:
        onnx.save(proto, str(folder / "model.onnx"))
    bpe.write(folder / "tokenizer.json", {c: i for i, c in enumerate(bpe.bytes_to_unicode().values())}, [])
    (folder / "config.json").write_text(json.dumps({"n_positions": CTX, **(config or {})}, indent=2) + "\n")
    with torch.no_grad():
        out = (reference or model)(*args)
    logits = out[0] if isinstance(out, tuple) else out
    expected = {"input_ids": IDS[0], "logits": [[round(float(v), 6) for v in row] for row in logits[0]]}
    (folder / "expected.json").write_text(json.dumps(expected, separators=(",", ":")) + "\n")


def main():
    ids = torch.tensor(IDS)
    seq = {0: "batch", 1: "sequence"}

    torch.manual_seed(1)
    gpt2 = GPT2LMHeadModel().eval()
    for name, opset, folding, post, external in [
        ("gpt2", 17, True, None, False),
        ("gpt2-unfolded-opset14", 14, False, None, False),
        ("gpt2-external", 17, True, None, True),
        ("gpt2-fp16-weights", 17, True, weights_behind_cast, False),
    ]:
        export(gpt2, name, (ids,), ["input_ids"], ["logits"], {"input_ids": seq, "logits": seq}, opset, folding, post, external)

    torch.manual_seed(2)
    llama = LlamaForCausalLM().eval()
    mask = torch.ones_like(ids)
    pos = torch.arange(ids.shape[1])[None]
    io = ["input_ids", "attention_mask", "position_ids"]
    axes = {"input_ids": seq, "attention_mask": {0: "batch", 1: "past_sequence + sequence"}, "position_ids": seq, "logits": seq}
    for name, opset, folding, post, reference in [
        ("llama", 17, True, None, None),
        ("llama-unfolded-opset14", 14, False, None, None),
        ("llama-fp16", 17, True, to_float16, None),
        ("llama-bf16-weights", 17, True, weights_behind_cast_bf16, rounded_to_bfloat16(llama)),
    ]:
        export(llama, name, (ids, mask, pos), io, ["logits"], axes, opset, folding, post, config={"max_position_embeddings": CTX}, reference=reference)

    # optimum's decoder: past_key_values.N.key/value in, present.N.key/value out (scored here with an empty past).
    torch.manual_seed(2)
    cached = LlamaForCausalLM(with_past=True).eval()
    cached.load_state_dict(llama.state_dict())
    hd = D // 4
    past = [torch.zeros(1, 2, 0, hd) for _ in range(2 * LAYERS)]
    past_names = [f"past_key_values.{i}.{kv}" for i in range(LAYERS) for kv in ("key", "value")]
    present_names = [f"present.{i}.{kv}" for i in range(LAYERS) for kv in ("key", "value")]
    axes_past = {**axes, **{n: {0: "batch", 2: "past_sequence"} for n in past_names},
                 **{n: {0: "batch", 2: "past_sequence + sequence"} for n in present_names}}
    export(cached, "llama-with-past", (ids, mask, pos, *past), io + past_names, ["logits"] + present_names, axes_past, 17, True,
           config={"max_position_embeddings": CTX})


if __name__ == "__main__":
    main()
    import real_contributions  # the debugger's expected contributions, in the folders just rewritten

    real_contributions.main()
