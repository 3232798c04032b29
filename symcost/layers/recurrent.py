"""Recurrent layers: ``rnn`` (Elman), ``lstm`` and ``gru``, as PyTorch's nn.RNN/LSTM/GRU.

The input is one unbatched, time-major sequence [T, I]; the output is [T, D·H]
(D = 2 directions when bidirectional, else 1).  Notation (the slides'):

- T time steps, I input size, H hidden size, L layers (num_layers), D directions,
  G gates (1 for the Elman cell, 4 for the LSTM, 3 for the GRU), b = 1 with biases;
- layer 1 reads I features per step, every later layer reads D·H (the previous
  layer's output, both directions concatenated): I₁ = I, I_l = D·H for l ≥ 2.

Per layer, direction and time step one cell runs on an input of n features:

    params (per layer, direction)   G·H·(n + H) + 2·b·G·H     (W_ih, W_hh, b_ih, b_hh)
    macs   (per cell)               G·(n·H + H·H)             (the slides' (I×H + H×H))

so the seed's Elman RNN costs (I×H + H×H)·T MACs.  Summed over the network:
``cost = T·D·(cell(I) + (L − 1)·cell(D·H))``.

Operations of one cell, exactly what the naive cells of ``tests/bruteforce.py``
execute (a dot product of n terms: n mul + n − 1 add, a bias: 1 add; the sum of
the two halves W_ih·x + b_ih and W_hh·h + b_hh: 1 add per gate unit;
sigmoid(v) = 1/(1 + exp(−v)): 1 exp + 1 add + 1 div; subtraction counts as add):

    rnn   h' = act(W_ih x + b_ih + W_hh h + b_hh)
          mul H(n + H); add H(n + H − 1) + 2bH; tanh H   (nonlinearity relu: cmp H)
    lstm  i, f, o = σ(·), g = tanh(·);  c' = f·c + i·g;  h' = o·tanh(c')
          mul 4H(n + H) + 3H; add 4H(n + H) + 8bH; exp 3H; div 3H; tanh 2H
    gru   r, z = σ(·);  m = tanh(x_m + r·(W_hm h + b_hm));  h' = (1 − z)·m + z·h
          mul 3H(n + H) + 3H; add 3H(n + H) + H + 6bH; exp 2H; div 2H; tanh H

With fused multiply-add (``fma_ops``) each dot product of n terms is n FMAs and
every other operation stays as above: rnn G·H·(n + H) + (1 + 2b)H + H, and so on
(see :meth:`_Recurrent.cell`).

Activations: what the unrolled cell keeps per step -- the hidden state h_t of
every time step, layer and direction (L·T·D·H; the last layer's is the output),
and for the LSTM also the cell state c_t (another L·T·D·H).  Gate values are
transient (inference: consumed inside the step) and not counted; the GRU keeps
h_t only.

Work and span: a cell needs its own previous step and the step below it, so a
unidirectional stack of L layers is a wavefront: the first output is ready L
steps after the first input, the last T + L − 1 steps after it (not L·T).
A bidirectional layer's reverse direction needs the last input first, so each
bidirectional layer waits for its whole input and takes T steps: L·T in all
(position 0 of an even stack fed by a stream is ready earlier; see ``timing``).
"""

from __future__ import annotations

import sympy

from ..cost import Cost, ops
from ..errors import ShapeError
from .base import Arg, LayerKind, Quantities, fmt_shape, register, require_rank, same


class _Recurrent(LayerKind):
    """Shared rules of rnn, lstm and gru (see the module docstring for the formulas)."""

    family = "recurrent"
    recurrent = True
    takes = "x [T, I]: one unbatched, time-major sequence of T steps of I features (rank 2)"
    gates: int = 1
    states: int = 1  # state vectors kept per step: h (and c for the LSTM)
    args = (
        Arg("hidden_size", "size", doc="H: features of the hidden state h (and of the LSTM's cell state c)"),
        Arg("num_layers", "size", 1, doc="L: stacked layers, each reading the previous one's output"),
        Arg("bias", "bool", True, doc="learnable biases b_ih and b_hh (2·G·H per layer and direction)"),
        Arg("bidirectional", "bool", False, doc="run each layer forward and backward (D = 2); output [T, 2H]"),
        Arg("input_size", "size", None, doc="I: checked against the input's last dimension when given"),
        Arg("dropout", "prob", 0, doc="between layers in training; the identity at inference"),
    )

    def quantities(self, a, inputs):
        (x,) = inputs
        require_rank(x, 2, f"{self.name} (an unbatched sequence [T, I])")
        T, I = x
        if a.input_size is not None and not same(a.input_size, I):
            raise ShapeError(f"{self.name} expects input_size {a.input_size}, but its input is {fmt_shape(x)}")
        return Quantities(
            T=T, I=I, H=a.hidden_size, L=a.num_layers, D=sympy.Integer(2 if a.bidirectional else 1),
            b=int(a.bias), G=self.gates, nonlinearity=getattr(a, "nonlinearity", "tanh"),
        )

    def shape(self, q):
        return (q["T"], q["D"] * q["H"])

    def cell(self, q, n, fused: bool) -> dict:
        """Operations of one cell step on n input features (``fused``: dot products as FMAs)."""
        raise NotImplementedError

    def _dots(self, q, n, fused: bool) -> dict:
        """The G·H dot products of W_ih·x (n terms) and W_hh·h (H terms), their biases, and
        the sum of the two halves (1 add per gate unit)."""
        G, H, b = q["G"], q["H"], q["b"]
        if fused:
            return {"fma": G * H * (n + H), "add": 2 * b * G * H + G * H}
        return {"mul": G * H * (n + H), "add": G * H * (n + H - 2) + 2 * b * G * H + G * H}

    def cost(self, q):
        T, I, H, L, D, b, G = (q[k] for k in ("T", "I", "H", "L", "D", "b", "G"))
        per_layer_in = (I, D * H)        # layer 1 reads I features, layers 2..L read D·H
        weight = (1, L - 1)              # ... and there are L − 1 of the latter

        def network(counts_of):
            total: dict = {}
            for n, k in zip(per_layer_in, weight):
                for kind, v in counts_of(n).items():
                    total[kind] = total.get(kind, 0) + T * D * k * v
            return total

        plain = network(lambda n: self.cell(q, n, False))
        fused = network(lambda n: self.cell(q, n, True))
        params = D * (G * H * (I + H) + (L - 1) * G * H * (D * H + H) + L * 2 * b * G * H)
        macs = T * D * (G * (I * H + H * H) + (L - 1) * G * (D * H * H + H * H))
        return Cost(
            params=params,
            activations=self.states * L * T * D * H,
            macs=macs,
            ops=ops(**plain),
            fma_ops=sympy.Add(*fused.values()),
        )

    def timing(self, q, start_in, end_in):
        """Unidirectional: a wavefront over (layer, step) -- first output start_in + L,
        last max(start_in + T + L − 1, end_in + L).  Bidirectional: each layer waits for
        all of its input and takes T steps -- its last output at end_in + L·T, its first
        (position 0) at that end too, unless the input streams in and L is even."""
        T, L = q["T"], q["L"]
        if q["D"] == 2:
            # Position 0 of a bidirectional layer is ready when its reverse pass ends, its
            # last position when its forward pass ends.  For a stack this gives (derived on
            # the unrolled cells, checked in tests/test_steps.py): odd L, position 0 at the
            # very end; even L, max(end_in + (L − 1)·T + 1, start_in + L·T) -- earlier than
            # the end only when the input streams in.  A symbolic L takes the end (a bound).
            end = end_in + L * T
            if L.is_Integer and L % 2 == 0:
                return sympy.Max(end_in + (L - 1) * T + 1, start_in + L * T), end
            return end, end
        return start_in + L, sympy.Max(start_in + T + L - 1, end_in + L)


@register
class RNN(_Recurrent):
    """Elman RNN, h_t = tanh(W_ih x_t + b_ih + W_hh h_{t−1} + b_hh) (nonlinearity tanh or relu).

    params = D·(H(I + H) + (L − 1)·H(D·H + H) + 2·b·L·H);  macs = T·D·((I·H + H·H) + (L − 1)(D·H·H + H·H)).
    Per cell on n inputs: mul H(n + H), add H(n + H − 1) + 2bH, tanh H (relu: cmp H);
    fused: fma H(n + H), add H + 2bH, tanh H.  Keeps h_t per step and layer: L·T·D·H activations.
    """

    name = "rnn"
    gates = 1
    args = _Recurrent.args + (Arg("nonlinearity", "choice", "tanh", choices=("tanh", "relu"),
                                  doc="the cell's activation: 'tanh' (1 tanh per unit) or 'relu' (1 cmp)"),)

    def cell(self, q, n, fused):
        c = self._dots(q, n, fused)
        c["cmp" if q["nonlinearity"] == "relu" else "tanh"] = q["H"]
        return c


@register
class LSTM(_Recurrent):
    """LSTM: i, f, g, o = σ, σ, tanh, σ of (W_ih x + b_ih + W_hh h + b_hh); c' = f·c + i·g; h' = o·tanh(c').

    params = D·(4H(I + H) + (L − 1)·4H(D·H + H) + 8·b·L·H);  macs = 4·T·D·((I·H + H·H) + (L − 1)(D·H·H + H·H)).
    Per cell on n inputs: mul 4H(n + H) + 3H, add 4H(n + H) + 8bH, exp 3H, div 3H, tanh 2H;
    fused: fma 4H(n + H), add 8H + 8bH, mul 3H, exp 3H, div 3H, tanh 2H.
    Keeps h_t and c_t per step and layer: 2·L·T·D·H activations.
    """

    name = "lstm"
    gates = 4
    states = 2

    def cell(self, q, n, fused):
        H = q["H"]
        c = self._dots(q, n, fused)
        c["add"] += 3 * H + H        # 3 sigmoids (1 + exp(−v)), c' = f·c + i·g
        c["mul"] = c.get("mul", 0) + 3 * H   # f·c, i·g, o·tanh(c')
        c.update(exp=3 * H, div=3 * H, tanh=2 * H)
        return c


@register
class GRU(_Recurrent):
    """GRU: r, z = σ(·), m = tanh(W_im x + b_im + r·(W_hm h + b_hm)), h' = (1 − z)·m + z·h.

    params = D·(3H(I + H) + (L − 1)·3H(D·H + H) + 6·b·L·H);  macs = 3·T·D·((I·H + H·H) + (L − 1)(D·H·H + H·H)).
    Per cell on n inputs: mul 3H(n + H) + 3H, add 3H(n + H) + H + 6bH, exp 2H, div 2H, tanh H;
    fused: fma 3H(n + H), add 7H + 6bH, mul 3H, exp 2H, div 2H, tanh H.
    Keeps h_t per step and layer: L·T·D·H activations (r, z and m are transient).
    """

    name = "gru"
    gates = 3

    def cell(self, q, n, fused):
        H = q["H"]
        c = self._dots(q, n, fused)
        # _dots added one "sum of halves" per gate unit (3H); the candidate m instead
        # adds x_m + r·h_m, which is the same add plus 1 mul.  Then: 2 sigmoids (2H add),
        # 1 − z (H add), (1 − z)·m and z·h (2H mul), their sum (H add).
        c["add"] += 2 * H + H + H
        c["mul"] = c.get("mul", 0) + H + 2 * H
        c.update(exp=2 * H, div=2 * H, tanh=H)
        return c
