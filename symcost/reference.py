"""The reference of the YAML format, from the definitions themselves: the spec's keys
(:data:`symcost.spec.TOP_KEY_DOCS` ...) and every registered layer kind (its arguments with their
types, defaults and meaning, its input, and the formulas of its docstring).

:func:`spec_markdown` is docs/spec.md (``python -m symcost.tools.regen_spec_doc`` writes it, a
test fails when it is stale); :func:`kind_text` and :func:`kinds_table` are ``symcost ops KIND``
and ``symcost ops``.  Nothing here prints.
"""

from __future__ import annotations

import inspect
import sys
import textwrap

from .layers import REGISTRY, load_all
from .layers.base import REQUIRED, Arg, LayerKind

#: How each argument type reads to a user.
ARG_TYPES = {
    "size": "size ≥ 1",
    "size0": "size ≥ 0",
    "sizes": "size ≥ 1, or one per spatial axis",
    "sizes0": "size ≥ 0, or one per spatial axis",
    "padding": "size ≥ 0, or one per spatial axis, or 'same' or 'valid'",
    "bool": "true or false",
    "int": "whole number",
    "dims": "whole number or list of them",
    "prob": "number in [0, 1]",
    "choice": "one of",
    "name": "a node id",
    "shape": "list of sizes",
}


def kinds() -> list[LayerKind]:
    """Every registered kind, by family (in :data:`symcost.layers.FAMILIES` order), then by name."""
    from .layers import FAMILIES

    load_all()
    order = {f"{__package__}.layers.{f}": i for i, f in enumerate(FAMILIES)}
    return sorted(REGISTRY.values(), key=lambda k: (order.get(type(k).__module__, len(order)), k.name))


def default_text(arg: Arg) -> str:
    """The default as a user writes it in YAML; ``required`` when there is none."""
    d = arg.default
    if d is REQUIRED:
        return "required"
    if d is None:
        return "none"
    if isinstance(d, bool):
        return "true" if d else "false"
    if isinstance(d, str):
        return repr(d)
    return str(d)


def type_text(arg: Arg) -> str:
    if arg.type == "choice":
        return "one of " + ", ".join(repr(c) for c in arg.choices)
    return ARG_TYPES[arg.type]


def arity_text(kind: LayerKind) -> str:
    lo, hi = kind.min_inputs, kind.max_inputs
    if lo == hi:
        return f"{lo} input" + ("s" if lo != 1 else "")
    return f"{lo} or more inputs" if hi is None else f"{lo} to {hi} inputs"


def formula(kind: LayerKind) -> str:
    """The kind's docstring: what it computes and the formulas it counts."""
    return inspect.getdoc(type(kind)) or ""


def family_notes(kind: LayerKind) -> str:
    """The docstring of the kind's module: the family's notation and shared rules."""
    return inspect.getdoc(sys.modules[type(kind).__module__]) or ""


# ------------------------------------------------------------------------------------------------
# Text, for the terminal
# ------------------------------------------------------------------------------------------------


def _wrap(text: str, width: int, indent: str) -> list[str]:
    return textwrap.wrap(text, max(width, len(indent) + 20), initial_indent=indent,
                         subsequent_indent=indent, break_on_hyphens=False) or [indent.rstrip()]


def _arg_call(arg: Arg) -> str:
    return arg.name if arg.default is REQUIRED else f"{arg.name}={default_text(arg)}"


def kinds_table(width: int = 80) -> str:
    """``symcost ops``: one entry per kind, its arguments with their defaults wrapped beside the
    name (under it when the terminal is too narrow for both)."""
    entries = kinds()
    col = max(len(k.name) for k in entries) + 2
    beside = width - col >= 30
    lines = []
    for k in entries:
        args = ", ".join(_arg_call(a) for a in k.args) or "(no arguments)"
        if beside:
            wrapped = _wrap(args, width, " " * col)
            lines.append(k.name.ljust(col) + wrapped[0][col:])
            lines.extend(wrapped[1:])
        else:
            lines.append(k.name)
            lines.extend(_wrap(args, width, "    "))
    lines += ["", "An argument without '=' is required.  'symcost ops KIND' gives the meaning of each, "
                  "the input and the formulas; docs/spec.md has them all."]
    return "\n".join(lines[:-1] + _wrap(lines[-1], width, "")) + "\n"


def kind_text(name: str, width: int = 80) -> str:
    """``symcost ops KIND``: the reference of one kind."""
    from .layers import get_kind

    k = get_kind(name)
    out = [f"{k.name}  ({k.family}; {arity_text(k)})", ""]
    out += _wrap(f"Input: {k.takes}", width, "")
    out.append("")
    if k.args:
        out.append("Arguments:")
        name_w = max(len(a.name) for a in k.args) + 2
        default_w = max(len(default_text(a)) for a in k.args) + 2
        for a in k.args:
            head = "  " + a.name.ljust(name_w) + default_text(a).ljust(default_w)
            body = f"{a.doc} [{type_text(a)}]"
            if width - len(head) >= 30:
                wrapped = _wrap(body, width, " " * len(head))
                out.append(head + wrapped[0][len(head):])
                out.extend(wrapped[1:])
            else:
                out.append(head.rstrip())
                out.extend(_wrap(body, width, "      "))
    else:
        out.append("Arguments: none")
    out += ["", "What it counts:", textwrap.indent(formula(k), "  "), "",
            f"Notation of the {k.family} family:", textwrap.indent(family_notes(k), "  ")]
    return "\n".join(line.rstrip() for line in "\n".join(out).splitlines()) + "\n"


# ------------------------------------------------------------------------------------------------
# Markdown: docs/spec.md
# ------------------------------------------------------------------------------------------------


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _key_table(docs: dict) -> list[str]:
    return ["| key | meaning |", "|---|---|"] + [f"| `{k}` | {_cell(v)} |" for k, v in docs.items()]


RESNET_BLOCK = """\
name: ResNet basic blocks
dims: {C: channels, M: height, N: width, L: blocks}
input: [C, M, N]
blocks:
  basic:                       # conv-bn-relu-conv-bn, plus the block's input, then relu
    inputs: [x]
    nodes:
      - {id: conv1, op: conv2d, inputs: [x], out_channels: C, kernel_size: 3, padding: 1, bias: false}
      - {id: bn1, op: batchnorm2d, inputs: [conv1]}
      - {id: relu1, op: relu, inputs: [bn1]}
      - {id: conv2, op: conv2d, inputs: [relu1], out_channels: C, kernel_size: 3, padding: 1, bias: false}
      - {id: bn2, op: batchnorm2d, inputs: [conv2]}
      - {id: skip, op: add, inputs: [x, bn2]}
      - {id: out, op: relu, inputs: [skip]}
layers:
  - basic: {id: stage, repeat: L}
"""

TRANSFORMER_BLOCK = """\
name: Transformer encoder blocks
dims: {T: tokens, D: model width, heads: attention heads, F: feed-forward width, L: blocks}
defaults: {F: 4*D}
input: [T, D]
blocks:
  encoder:                     # post-norm, as nn.TransformerEncoderLayer (norm_first=False)
    inputs: [x]
    nodes:
      - {id: attn, op: multihead_attention, inputs: [x], num_heads: heads}
      - {id: res1, op: add, inputs: [x, attn]}
      - {id: norm1, op: layernorm, inputs: [res1]}
      - {id: up, op: linear, inputs: [norm1], out_features: F}
      - {id: act, op: relu, inputs: [up]}
      - {id: down, op: linear, inputs: [act], out_features: D}
      - {id: res2, op: add, inputs: [norm1, down]}
      - {id: norm2, op: layernorm, inputs: [res2]}
layers:
  - encoder: {id: layers, repeat: L}
"""

EXAMPLES = {"A ResNet-style block": RESNET_BLOCK, "A transformer block": TRANSFORMER_BLOCK}

_INTRO = """\
# The YAML format

<!-- Generated by `python -m symcost.tools.regen_spec_doc` from symcost/spec.py's key tables and
the layer registry (symcost/layers); do not edit: tests/test_spec_doc.py fails when it is stale. -->

A spec describes one sample of a network (no batch dim; `batch:` or `--batch` puts it back)
with sizes that are numbers or names.  `symcost cost FILE.yaml` costs it, `symcost.load(...)`
reads it in Python, `symcost ops KIND` prints one layer kind's entry below.

Two forms, which may be mixed with `blocks`: a chain (`layers:`, each layer reads the one
before) and a graph (`nodes:`, each node names its `inputs`).

```yaml
name: LeNet-5                              # a chain
input: [1, 32, 32]
layers:
  - conv2d: {out_channels: 6, kernel_size: 5}
  - relu: {}
  - maxpool2d: {kernel_size: 2}
  - flatten: {}
  - linear: {out_features: 10}
```

```yaml
name: residual MLP                         # a graph
dims: {D: model width, F: hidden width}
inputs: {x: [D]}
nodes:
  - {id: up, op: linear, inputs: [x], out_features: F}
  - {id: act, op: relu, inputs: [up]}
  - {id: down, op: linear, inputs: [act], out_features: D}
  - {id: out, op: add, inputs: [x, down]}
```
"""

_SIZES = """\
## Sizes

A size is a whole number or an expression in symcost's restricted grammar: names (a letter,
then letters, digits and `_`, at most %(max_name)s characters), whole numbers, `+ - * / // **`, parentheses,
`floor`, `ceil`, `min`, `max` (`4*D`, `D//heads`, `floor((M - 5)/2) + 1`).  User text is
never evaluated by Python.  A name stands for a positive whole number; `--set NAME=VALUE`
(or `Report.subs`) puts values in.  Where a size must divide another, or an output length
must stay at least 1 for every value, symcost records the condition and checks it when the
sizes are given.

## YAML

Files are read with a safe loader: no `!!python` tags, no duplicate keys, at most %(max_aliases)s
aliases, lists and mappings nested at most %(max_depth)s deep, %(max_bytes)s bytes.  Anchors and YAML 1.1
merge keys work: a key written beside `<<` overrides the merged one, and of several merged
mappings the first wins.  Top-level keys starting with `x-` are ignored, a place to keep
anchors:

```yaml
x-conv: &conv {kernel_size: 3, padding: 1, bias: false}
input: [3, 32, 32]
layers:
  - conv2d: {<<: *conv, out_channels: 16}
  - conv2d: {<<: *conv, out_channels: 32}
```
"""


def spec_markdown() -> str:
    """docs/spec.md."""
    from .sizes import MAX_NAME
    from .spec import BLOCK_KEY_DOCS, MAX_ALIASES, MAX_DEPTH, MAX_FILE_BYTES, NODE_KEY_DOCS, TOP_KEY_DOCS

    out = [_INTRO, "## Keys of a spec", ""] + _key_table(TOP_KEY_DOCS) + [
        "", "## Keys of a block", "",
        "A block (under `blocks:`) is a spec of its own with these keys; its sizes are the spec's.", "",
    ] + _key_table(BLOCK_KEY_DOCS) + [
        "", "## Keys of a layer or node", "",
        "A layer of a chain is `{KIND: {arguments}}` or `{op: KIND, arguments...}`; a node of a graph is "
        "`{id: ..., op: KIND, inputs: [...], arguments...}`.  Besides the kind's arguments (below) a "
        "layer or node takes:", "",
    ] + _key_table(NODE_KEY_DOCS) + ["", _SIZES % dict(
        max_name=MAX_NAME, max_aliases=MAX_ALIASES, max_depth=MAX_DEPTH, max_bytes=f"{MAX_FILE_BYTES:,}"), "## Examples", ""]
    for title, text in EXAMPLES.items():
        out += [f"### {title}", "", "```yaml", text.rstrip(), "```", ""]
    out += ["## Layer kinds", "",
            "Each kind takes PyTorch's argument names and defaults.  Argument types: a *size* is a number or a "
            "size expression; *one per spatial axis* is a list (`kernel_size: [3, 5]`) or one value for every "
            "axis; *none* as a default means the argument is optional and unset.  Every count follows the "
            "conventions of docs/conventions.md (a dot product of n terms: n mul and n − 1 add).", ""]
    out += ["| kind | family | input |", "|---|---|---|"]
    out += [f"| [`{k.name}`](#{k.name}) | {k.family} | {_cell(k.takes)} |" for k in kinds()]
    out.append("")
    family = None
    for k in kinds():
        if k.family != family:
            family = k.family
            out += [f"### The {family} family", "", "```text", family_notes(k), "```", ""]
        out += [f"#### {k.name}", "", f"Input: {k.takes}; {arity_text(k)}.", ""]
        if k.args:
            out += ["| argument | type | default | meaning |", "|---|---|---|---|"]
            out += [f"| `{a.name}` | {_cell(type_text(a))} | `{default_text(a)}` | {_cell(a.doc)} |" for a in k.args]
        else:
            out.append("No arguments.")
        out += ["", "```text", formula(k), "```", ""]
    return "\n".join(out).rstrip() + "\n"
