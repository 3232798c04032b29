"""Training cost: one optimisation step (forward, backward, optional recomputation) and its memory.

Notation as the report's: M the forward MACs, F the forward FLOPs (symcost's exact
count), P the parameters, A the activation elements, B the batch, b the bytes of the
dtype.

Backward rule, per layer kind (docs/transformers.md has the table):

- a layer with linear algebra (``linear``, ``matmul``, convolutions, attention,
  recurrent): every product of the forward pass has two products of the same size in
  the backward pass -- the gradient with respect to its input (dX = dY·Wᵀ) and with
  respect to its weight or second operand (dW = Xᵀ·dY) -- so

      backward MACs = 2·M,   backward FLOPs = 2·F(layer)

  (the layer's other operations -- biases, the softmax of attention, the gates of a cell --
  are counted twice as well);
- every other layer (elementwise, norms, softmax, add, embeddings): one pass of the same
  size, backward FLOPs = F(layer), no MACs (a lookup's gradient is a scatter-add of its
  output, which symcost counts as it counts the lookup: 0);
- recomputation (``recompute=True``, full activation checkpointing at block boundaries,
  as Megatron-LM does): the repeated blocks run their forward pass once more in the
  backward pass, + M(blocks) and F(blocks); the layers outside blocks are not recomputed.

So a training step costs 3·M MACs without recomputation (the "6N FLOPs per token" of the
scaling papers at 2 FLOPs per MAC), and 4·M(blocks) + 3·M(rest) with it (Megatron's 96 = 4·24).

Memory of training, in bytes:

    weights          P·b                (under mixed precision: P·2, fp16/bf16 copies)
    gradients        P·b                (mixed precision: P·2)
    master weights   0                  (mixed precision: P·4, the fp32 copy the optimizer updates)
    optimizer state  k·P·b              (mixed precision: k·P·4); k = 0 SGD, 1 momentum, 2 Adam
    activations      A·B·b              (mixed precision: A·B·2); with recomputation only each
                                        block's input per repetition, plus one repetition's
                                        activations (recomputed one block at a time), plus the
                                        layers outside blocks

Mixed-precision Adam is the 16 bytes per parameter (2 + 2 + 4 + 4 + 4) of Rajbhandari et
al. 2020 (ZeRO).  ``A`` is symcost's activation count of the forward pass (every layer
output, in-place ops 0): an estimate of what autograd keeps, not a measurement of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sympy

from .cost import tidy
from .errors import SpecError, nearest
from .layers.base import numel
from .sizes import to_size

#: Optimizer state values per parameter.
OPTIMIZERS = {"sgd": 0, "momentum": 1, "adam": 2}
MASTER_BYTES = 4          # fp32 master weights and optimizer state under mixed precision
HALF_BYTES = 2            # fp16/bf16 weights, gradients and activations under mixed precision


def _split(analysis) -> dict:
    """Forward MACs and FLOPs of ``analysis``, split into products (layers with MACs) and the
    rest, and the part inside repeated blocks (for recomputation) with its saved inputs."""
    out = {k: sympy.Integer(0) for k in ("mm_macs", "mm_flops", "other_flops", "block_macs", "block_flops",
                                         "acts", "ckpt_acts")}
    for n in analysis.nodes:
        if n.children is not None:
            inner = _split(n.children)
            r = n.repeat
            for k in ("mm_macs", "mm_flops", "other_flops", "acts"):
                out[k] += r * inner[k]
            out["block_macs"] += r * inner["mm_macs"]
            out["block_flops"] += r * (inner["mm_flops"] + inner["other_flops"])
            shapes = {**analysis.input_shapes, **{m.id: m.shape for m in analysis.nodes}}
            block_in = sympy.Add(*(numel(shapes[src]) for src in analysis.model.node(n.id).inputs))
            # kept: the input of every repetition; recomputed: one repetition's activations
            out["ckpt_acts"] += r * block_in + inner["acts"]
            continue
        c = n.cost
        if c.macs != 0:
            out["mm_macs"] += c.macs
            out["mm_flops"] += c.flops
        else:
            out["other_flops"] += c.flops
        out["acts"] += c.activations
        out["ckpt_acts"] += c.activations
    return out


@dataclass(frozen=True)
class Training:
    """One training step of a model (the report's batch): costs and memory, as expressions."""

    name: str
    optimizer: str
    mixed_precision: bool
    recompute: bool
    tokens: sympy.Expr           # tokens per sequence (per-token figures divide by it × batch)
    batch: sympy.Expr
    forward_macs: sympy.Expr
    backward_macs: sympy.Expr
    recompute_macs: sympy.Expr
    forward_flops: sympy.Expr
    backward_flops: sympy.Expr
    recompute_flops: sympy.Expr
    memory: dict                 # bytes: weights, gradients, master_weights, optimizer_state, activations, total

    @property
    def macs(self) -> sympy.Expr:
        return tidy(self.forward_macs + self.backward_macs + self.recompute_macs)

    @property
    def flops(self) -> sympy.Expr:
        return tidy(self.forward_flops + self.backward_flops + self.recompute_flops)

    @property
    def flops_per_token(self) -> sympy.Expr:
        return tidy(sympy.cancel(self.flops / (self.tokens * self.batch)))

    @property
    def macs_per_token(self) -> sympy.Expr:
        return tidy(sympy.cancel(self.macs / (self.tokens * self.batch)))

    def to_dict(self) -> dict[str, Any]:
        from .render import jsonable

        return {
            "model": self.name, "optimizer": self.optimizer, "mixed_precision": self.mixed_precision,
            "recompute": self.recompute, "batch": jsonable(self.batch), "tokens": jsonable(self.tokens),
            "macs": {"forward": jsonable(self.forward_macs), "backward": jsonable(self.backward_macs),
                     "recompute": jsonable(self.recompute_macs), "total": jsonable(self.macs),
                     "per_token": jsonable(self.macs_per_token)},
            "flops": {"forward": jsonable(self.forward_flops), "backward": jsonable(self.backward_flops),
                      "recompute": jsonable(self.recompute_flops), "total": jsonable(self.flops),
                      "per_token": jsonable(self.flops_per_token)},
            "memory_bytes": {k: jsonable(v) for k, v in self.memory.items()},
        }

    def table(self) -> str:
        from .render import number as text

        rows = [
            ("forward MACs", self.forward_macs), ("backward MACs", self.backward_macs),
            ("recompute MACs", self.recompute_macs), ("MACs per step", self.macs),
            ("MACs per token", self.macs_per_token),
            ("forward FLOPs", self.forward_flops), ("backward FLOPs", self.backward_flops),
            ("recompute FLOPs", self.recompute_flops), ("FLOPs per step", self.flops),
            ("FLOPs per token", self.flops_per_token),
        ] + [(f"memory {k} (bytes)", v) for k, v in self.memory.items()]
        width = max(len(r[0]) for r in rows)
        head = (f"{self.name}  training step: {self.optimizer}"
                + (", mixed precision" if self.mixed_precision else "")
                + (", recomputation" if self.recompute else "") + f", batch {text(self.batch)}")
        return head + "\n" + "\n".join(f"{k:<{width}}  {text(v)}" for k, v in rows) + "\n"


def training(report, *, optimizer: str = "adam", mixed_precision: bool = False, recompute: bool = False,
             tokens: Any = "T") -> Training:
    """The training step of ``report``'s model (its batch, dtype and substituted sizes).

    ``tokens`` is the size that counts tokens per sequence (default ``T``), for per-token figures.
    """
    if optimizer not in OPTIMIZERS:
        raise SpecError(f"unknown optimizer {optimizer!r}" + nearest(str(optimizer), OPTIMIZERS)
                        + f"; choose one of {', '.join(OPTIMIZERS)}")
    values, batch = report.values, report.batch

    def s(e):
        return tidy((batch * e).xreplace(values) if values else batch * e)

    parts = _split(report.analysis)
    mm_macs, mm_flops, other = parts["mm_macs"], parts["mm_flops"], parts["other_flops"]
    fwd_macs, fwd_flops = s(mm_macs), s(mm_flops + other)
    bwd_macs, bwd_flops = s(2 * mm_macs), s(2 * mm_flops + other)
    rc_macs = s(parts["block_macs"]) if recompute else sympy.Integer(0)
    rc_flops = s(parts["block_flops"]) if recompute else sympy.Integer(0)

    P = report.params
    b = report.bytes_per_element
    k = OPTIMIZERS[optimizer]
    acts = s(parts["ckpt_acts"] if recompute else parts["acts"])
    if mixed_precision:
        memory = {"weights": HALF_BYTES * P, "gradients": HALF_BYTES * P, "master_weights": MASTER_BYTES * P,
                  "optimizer_state": k * MASTER_BYTES * P, "activations": HALF_BYTES * acts}
    else:
        memory = {"weights": b * P, "gradients": b * P, "master_weights": sympy.Integer(0),
                  "optimizer_state": k * b * P, "activations": b * acts}
    memory = {key: tidy(v if isinstance(v, sympy.Basic) else sympy.Integer(v)) for key, v in memory.items()}
    memory["total"] = tidy(sympy.Add(*memory.values()))
    t = to_size(tokens, "tokens")
    unknown = {x.name for x in t.free_symbols} - report.known_names()
    if unknown:
        raise SpecError(f"tokens: {', '.join(sorted(unknown))} is not a size of the model; its sizes: "
                        f"{', '.join(sorted(report.known_names()))}")
    t = t.xreplace(values) if values else t
    return Training(report.name, optimizer, mixed_precision, recompute, t, batch.xreplace(values) if values else batch, fwd_macs, bwd_macs,
                    rc_macs, fwd_flops, bwd_flops, rc_flops, memory)
