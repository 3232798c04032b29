"""The naive prototype: one sympy Add per field over per-node cost expressions built directly.

This is the floor the issue measures symcost against: no graph library, no shape
propagation, no per-layer records, no steps, no report -- just the textbook formula
of each node of the GPT-3-shaped specs of :mod:`gpt3`, written out by hand from the
node's role (the shapes are known by construction), and ``sympy.Add(*terms)``.

The formulas are written independently of symcost's layer code (from the counting
contract in README.md: a dot product of n terms is n mul and n − 1 add, a bias one
add; layernorm 7n + 2 ops per vector; gelu 5 per element; softmax 5n − 2 per row), so
the benchmark also checks that both give the same totals.
"""

from __future__ import annotations

import sympy

from symcost.sizes import symbol

D, T, V, h, L = (symbol(n) for n in ("D", "T", "V", "h", "L"))


def _linear(rows, n, k, bias=True, tied=False):
    params = (0 if tied else n * k) + (k if bias else 0)
    macs = rows * k * n
    flops = rows * k * (2 * n - 1 + (1 if bias else 0))
    return params, rows * k, macs, flops


def _layernorm(rows, n):
    return 2 * n, rows * n, 0, rows * (7 * n + 2)


def node_cost(node: dict) -> tuple:
    """(params, activations, macs, flops) of one node of a :mod:`gpt3` spec."""
    op, role = node["op"], node["id"].rsplit("_", 1)[-1] if "_" in node["id"] else node["id"]
    if op == "embedding":
        rows = V if node["id"] == "wte" else T
        return rows * D, T * D, 0, 0
    if op == "add":
        return 0, T * D, 0, T * D
    if op == "layernorm":
        return _layernorm(T, D)
    if op == "gelu":
        return 0, 0, 0, 5 * T * 4 * D
    if op in ("reshape", "transpose"):
        return 0, 0, 0, 0
    if op == "linear":
        if node["id"] == "lm_head":
            return _linear(T, D, V, bias=False, tied=True)
        if role == "fc1":
            return _linear(T, D, 4 * D)
        if role == "fc2":
            return _linear(T, 4 * D, D)
        return _linear(T, D, D)                       # q, k, v, proj
    if op == "matmul":                                # h heads, T×T scores or T×(D/h) context
        if role == "scores":
            return 0, h * T * T, T * T * D, h * T * T * (2 * D / h - 1)
        return 0, T * D, T * T * D, T * D * (2 * T - 1)
    if op == "softmax":                               # h·T rows of T
        return 0, h * T * T, 0, h * T * (5 * T - 2)
    if op == "multihead_attention":                   # 4 projections + scaled-dot-product core
        params = 4 * D * D + 4 * D
        macs = 4 * T * D * D + 2 * T * T * D
        flops = 4 * T * D * 2 * D + (4 * T * T * D - T * D + 5 * h * T * T - 2 * h * T)
        return params, 5 * T * D + h * T * T, macs, flops
    raise ValueError(f"the naive prototype does not know {op!r}")


def total(nodes: list[dict]) -> dict[str, sympy.Expr]:
    """One sympy Add per field over the nodes' expressions."""
    columns = list(zip(*(node_cost(n) for n in nodes)))
    return {f: sympy.Add(*col) for f, col in zip(("params", "activations", "macs", "flops"), columns)}


def derive(spec: dict) -> dict[str, sympy.Expr]:
    """Totals of a spec from :mod:`gpt3` (unrolled, or one block × its repeat)."""
    nodes = [n for n in spec["nodes"] if n["op"] != "decoder"]
    out = total(nodes)
    if "blocks" in spec:
        (use,) = [n for n in spec["nodes"] if n["op"] == "decoder"]
        repeat = use["repeat"]
        count = L if repeat == "L" else sympy.Integer(repeat)
        block = total(spec["blocks"]["decoder"]["nodes"])
        out = {f: out[f] + count * block[f] for f in out}
    return out
