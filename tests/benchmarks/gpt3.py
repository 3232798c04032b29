"""GPT-3-shaped decoder-only transformers as symcost specs (and the same model in PyTorch).

The GPT-3 175B shape (Brown et al. 2020, table 2.1): 96 blocks, d_model 12,288,
96 heads, n_ctx 2,048, vocabulary 50,257 (GPT-2's BPE).  Sizes are symbolic in
the spec -- ``D`` (d_model), ``T`` (n_ctx), ``V`` (vocabulary), ``h`` (heads),
``L`` (blocks, in the repeated-block form) -- and :data:`GPT3` substitutes them.

Each block is pre-norm (GPT-2/3): x + attn(ln1(x)), then x + mlp(ln2(x)) with a
4·D hidden width and GELU.  Attention comes in two forms that must agree on
params and MACs:

- ``primitives``: q, k, v linears, reshape/transpose into h heads, matmul,
  softmax, matmul, transpose/reshape back, output projection (23 nodes a block);
- ``mha``: one ``multihead_attention`` node (8 nodes a block), once that kind
  exists in symcost.

The token embedding is tied to the output head (GPT-2/3 do this), the position
embedding is learned; dense attention only (GPT-3's alternating sparse bands do
not change parameters or the dense-attention MAC count this benchmark models).

``python tests/benchmarks/gpt3.py`` writes the YAML files next to this script.
"""

from __future__ import annotations

from pathlib import Path

import yaml

HERE = Path(__file__).parent

#: GPT-3 175B.
GPT3 = {"D": 12288, "T": 2048, "V": 50257, "h": 96, "L": 96}
N_BLOCKS = 96
DIMS = {"D": "model width d_model", "T": "context length n_ctx", "V": "vocabulary size",
        "h": "attention heads", "L": "number of blocks"}


def mha_available() -> bool:
    from symcost.layers import REGISTRY, load_all

    load_all()
    return "multihead_attention" in REGISTRY


def block_nodes(x: str, prefix: str = "", attention: str = "primitives") -> tuple[list[dict], str]:
    """The nodes of one pre-norm decoder block reading ``x``; returns (nodes, output id)."""
    p = prefix
    n: list[dict] = []

    def add(id_, op, inputs, **args):
        n.append({"id": p + id_, "op": op, "inputs": [p + i if i != x else i for i in inputs], **args})

    add("ln1", "layernorm", [x])
    if attention == "mha":
        add("attn", "multihead_attention", ["ln1"], embed_dim="D", num_heads="h")
        attn_out = "attn"
    else:
        for name in ("q", "k", "v"):
            add(name, "linear", ["ln1"], out_features="D")
            add(name + "_heads", "reshape", [name], shape=["T", "h", "D/h"])
            add(name + "_t", "transpose", [name + "_heads"], dim0=0, dim1=1)       # [h, T, D/h]
        add("k_tt", "transpose", ["k_t"], dim0=1, dim1=2)                          # [h, D/h, T]
        add("scores", "matmul", ["q_t", "k_tt"])                                   # [h, T, T]
        add("probs", "softmax", ["scores"], dim=-1)
        add("ctx", "matmul", ["probs", "v_t"])                                     # [h, T, D/h]
        add("ctx_t", "transpose", ["ctx"], dim0=0, dim1=1)                         # [T, h, D/h]
        add("ctx_flat", "reshape", ["ctx_t"], shape=["T", "D"])
        add("proj", "linear", ["ctx_flat"], out_features="D")
        attn_out = "proj"
    n.append({"id": p + "res1", "op": "add", "inputs": [x, p + attn_out]})
    add("ln2", "layernorm", ["res1"])
    add("fc1", "linear", ["ln2"], out_features="4*D")
    add("gelu", "gelu", ["fc1"])
    add("fc2", "linear", ["gelu"], out_features="D")
    add("res2", "add", ["res1", "fc2"])
    return n, p + "res2"


def _stem() -> list[dict]:
    return [
        {"id": "wte", "op": "embedding", "inputs": ["tokens"], "num_embeddings": "V", "embedding_dim": "D"},
        {"id": "wpe", "op": "embedding", "inputs": ["positions"], "num_embeddings": "T", "embedding_dim": "D"},
        {"id": "embed", "op": "add", "inputs": ["wte", "wpe"]},
    ]


def _head(x: str) -> list[dict]:
    return [
        {"id": "ln_f", "op": "layernorm", "inputs": [x]},
        {"id": "lm_head", "op": "linear", "inputs": ["ln_f"], "out_features": "V", "bias": False, "tied_to": "wte"},
    ]


def unrolled_spec(n_blocks: int = N_BLOCKS, attention: str = "primitives") -> dict:
    """The decoder with every block written out: about 23·n_blocks nodes (8·n_blocks with mha)."""
    nodes = _stem()
    x = "embed"
    for i in range(n_blocks):
        block, x = block_nodes(x, f"b{i}_", attention)
        nodes += block
    nodes += _head(x)
    return {"name": f"GPT-3 shape, {n_blocks} blocks unrolled ({attention})",
            "dims": {k: v for k, v in DIMS.items() if k != "L"},
            "inputs": {"tokens": ["T"], "positions": ["T"]}, "nodes": nodes}


def repeated_spec(repeat: int | str = "L", attention: str = "primitives") -> dict:
    """The decoder as one block defined once and repeated ``repeat`` times."""
    block, out = block_nodes("x", "", attention)
    nodes = _stem() + [{"id": "blocks", "op": "decoder", "inputs": ["embed"], "repeat": repeat}] + _head("blocks")
    return {"name": f"GPT-3 shape, one block x {repeat} ({attention})", "dims": DIMS,
            "blocks": {"decoder": {"inputs": ["x"], "nodes": block, "outputs": [out]}},
            "inputs": {"tokens": ["T"], "positions": ["T"]}, "nodes": nodes}


def chain_spec(n_nodes: int, attention: str = "primitives") -> dict:
    """A graph of about ``n_nodes`` nodes for the growth curve: whole decoder blocks,
    then single layernorms to reach the exact count (the node mix stays the same)."""
    per_block = len(block_nodes("x", "", attention)[0])
    fixed = len(_stem()) + len(_head("x"))
    n_blocks = max(0, (n_nodes - fixed) // per_block)
    spec = unrolled_spec(n_blocks, attention)
    extra = n_nodes - fixed - n_blocks * per_block
    x = spec["nodes"][-3]["id"] if n_blocks else "embed"
    tail = spec["nodes"][-2:]
    body = spec["nodes"][:-2]
    for i in range(max(0, extra)):
        body.append({"id": f"pad{i}", "op": "layernorm", "inputs": [x]})
        x = f"pad{i}"
    tail[0] = dict(tail[0], inputs=[x])
    spec["nodes"] = body + tail
    spec["name"] = f"decoder chain, {len(spec['nodes'])} nodes"
    return spec


def dump(spec: dict) -> str:
    return yaml.safe_dump(spec, sort_keys=False, default_flow_style=None, width=200)


def write_files(directory: Path = HERE) -> list[Path]:
    """gpt3_unrolled.yaml and gpt3_block.yaml (multihead_attention when symcost has it), and
    gpt3_unrolled_primitives.yaml (attention from linear, reshape, matmul, softmax)."""
    att = "mha" if mha_available() else "primitives"
    paths = []
    for name, spec in [("gpt3_unrolled.yaml", unrolled_spec(attention=att)),
                       ("gpt3_block.yaml", repeated_spec(attention=att)),
                       ("gpt3_unrolled_primitives.yaml", unrolled_spec(attention="primitives"))]:
        path = directory / name
        path.write_text("# generated by tests/benchmarks/gpt3.py; do not edit\n" + dump(spec), encoding="utf-8")
        paths.append(path)
    return paths


# ---------------------------------------------------------------------------
# The same model in PyTorch (for FlopCounterMode and parameter counts)
# ---------------------------------------------------------------------------


def torch_decoder(D: int, T: int, V: int, h: int, L: int, device: str = "meta"):
    """The equivalent PyTorch module (batch-free: input token ids of shape [T])."""
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(D), nn.LayerNorm(D)
            self.q, self.k, self.v, self.proj = (nn.Linear(D, D) for _ in range(4))
            self.fc1, self.fc2 = nn.Linear(D, 4 * D), nn.Linear(4 * D, D)

        def forward(self, x):
            a = self.ln1(x)
            q = self.q(a).reshape(T, h, D // h).transpose(0, 1)
            k = self.k(a).reshape(T, h, D // h).transpose(0, 1)
            v = self.v(a).reshape(T, h, D // h).transpose(0, 1)
            p = torch.softmax(q @ k.transpose(1, 2), dim=-1)
            x = x + self.proj((p @ v).transpose(0, 1).reshape(T, D))
            return x + self.fc2(nn.functional.gelu(self.fc1(self.ln2(x))))

    class Decoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte, self.wpe = nn.Embedding(V, D), nn.Embedding(T, D)
            self.blocks = nn.ModuleList(Block() for _ in range(L))
            self.ln_f = nn.LayerNorm(D)
            self.lm_head = nn.Linear(D, V, bias=False)
            self.lm_head.weight = self.wte.weight  # tied

        def forward(self, tokens):
            x = self.wte(tokens) + self.wpe(torch.arange(T, device=tokens.device))
            for b in self.blocks:
                x = b(x)
            return self.lm_head(self.ln_f(x))

    with torch.device(device):  # built on the device: no initialisation work on meta, weights stay tied
        return Decoder()


if __name__ == "__main__":
    for p in write_files():
        print(p)
