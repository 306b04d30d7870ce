"""A GPT-2-style causal LM in one readable file (pre-LayerNorm blocks, learned positions).

Linear layers keep their weight as (in, out) and call torch.matmul, like GPT-2's Conv1D: the ONNX
export then shows `MatMul(x, h.1.mlp.c_fc.weight)` with the initializer named by module path.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class Conv1D(nn.Module):
    def __init__(self, d_in, d_out):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(d_in, d_out) * 0.02)
        self.bias = nn.Parameter(torch.zeros(d_out))

    def forward(self, x):
        return torch.matmul(x, self.weight) + self.bias


class Attention(nn.Module):
    def __init__(self, d, n_head, ctx):
        super().__init__()
        self.n_head = n_head
        self.c_attn = Conv1D(d, 3 * d)
        self.c_proj = Conv1D(d, d)
        self.register_buffer("causal", torch.tril(torch.ones(ctx, ctx)).view(1, 1, ctx, ctx) == 0, persistent=False)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.c_attn(x).split(d, dim=2)
        heads = lambda y: y.view(b, t, self.n_head, d // self.n_head).transpose(1, 2)
        q, k, v = heads(q), heads(k), heads(v)
        att = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(d // self.n_head))
        att = att.masked_fill(self.causal[:, :, :t, :t], float("-inf"))
        y = torch.matmul(F.softmax(att, dim=-1), v)
        return self.c_proj(y.transpose(1, 2).reshape(b, t, d))


class MLP(nn.Module):
    def __init__(self, d, d_mlp):
        super().__init__()
        self.c_fc = Conv1D(d, d_mlp)
        self.c_proj = Conv1D(d_mlp, d)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, d, n_head, d_mlp, ctx):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d)
        self.attn = Attention(d, n_head, ctx)
        self.ln_2 = nn.LayerNorm(d)
        self.mlp = MLP(d, d_mlp)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, vocab, d=128, n_layer=4, n_head=4, d_mlp=512, ctx=128):
        super().__init__()
        self.config = dict(vocab=vocab, d=d, n_layer=n_layer, n_head=n_head, d_mlp=d_mlp, ctx=ctx)
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(ctx, d)
        self.h = nn.ModuleList([Block(d, n_head, d_mlp, ctx) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(d)
        # Untied unembedding, stored (d, vocab): the logit lens reads it as a named initializer.
        self.lm_head = Conv1D(d, vocab)
        nn.init.normal_(self.wte.weight, std=0.02)
        nn.init.normal_(self.wpe.weight, std=0.01)

    def forward(self, input_ids):
        t = input_ids.shape[1]
        pos = torch.arange(t, device=input_ids.device).unsqueeze(0)
        x = self.wte(input_ids) + self.wpe(pos)
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def load_onnx_weights(model, onnx_path):
    """Loads the model's weights from its ONNX export (initializer names are the state-dict keys)."""
    import onnx
    from onnx import numpy_helper

    inits = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(onnx_path)).graph.initializer}
    state = model.state_dict()
    missing = [k for k in state if k not in inits]
    if missing:
        raise SystemExit(f"error: {onnx_path} has no initializer for {', '.join(missing[:5])}")
    model.load_state_dict({k: torch.from_numpy(inits[k].copy()) for k in state})
