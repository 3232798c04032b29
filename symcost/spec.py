"""YAML specs -> :class:`~symcost.graph.Model`; the only module that reads files.

Two forms, which may be mixed with ``blocks``::

    name: LeNet-5                       name: residual MLP
    input: [1, 32, 32]                  dims: {D: model width, F: hidden width}
    layers:                             inputs:
      - conv2d: {out_channels: 6,         x: [D]
                 kernel_size: 5}        nodes:
      - relu: {}                          - {id: up, op: linear, inputs: [x], out_features: F}
      ...                                 - {id: out, op: add, inputs: [x, up]}

A sequential layer is ``{op: {args}}`` (optionally ``id:`` and ``repeat:``
among the args) or ``{op: NAME, id: ..., ...args}``; each takes the previous
layer's output.  Files are read with a safe loader that also refuses
duplicate keys, excessive aliasing and oversized files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import yaml

from .errors import SpecError, SymcostError, brief, nearest
from .graph import Model
from .sizes import MAX_BITS, symbol

MAX_FILE_BYTES = 1_000_000     # a spec larger than this is refused
MAX_ALIASES = 100              # YAML aliases (*ref) in one document
MAX_NODES = 100_000            # nodes in one spec
MAX_SCALAR = 10_000            # characters of one YAML scalar (a number, a name, a size expression)
MAX_DEPTH = 100                # nesting of YAML lists and mappings

TOP_KEYS = ("name", "dims", "defaults", "input", "inputs", "layers", "nodes", "outputs", "blocks", "batch", "description")
BLOCK_KEYS = ("inputs", "layers", "nodes", "outputs", "description")
NODE_RESERVED = ("id", "op", "inputs", "repeat")

ZOO = Path(__file__).parent / "zoo"


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and alias bombs."""

    def __init__(self, stream):
        super().__init__(stream)
        self._aliases = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise SpecError(f"more than {MAX_ALIASES} YAML aliases; refusing a possible alias bomb")
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise SpecError(f"line {mark.line + 1}: lists and mappings nested deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_scalar(self, node):
        if isinstance(node.value, str) and len(node.value) > MAX_SCALAR:
            raise SpecError(f"line {node.start_mark.line + 1}: a value longer than {MAX_SCALAR:,} characters")
        return yaml.constructor.SafeConstructor.construct_scalar(self, node)  # (shared with _FastLoader)

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                hashable = key in seen
            except TypeError:
                raise SpecError(f"line {key_node.start_mark.line + 1}: a mapping key must be a plain value") from None
            if hashable:
                raise SpecError(f"line {key_node.start_mark.line + 1}: duplicate key {key!r}")
            seen.add(key)
        return yaml.constructor.SafeConstructor.construct_mapping(self, node, deep=deep)


def _construct_int(loader: _Loader, node) -> int:
    """YAML integers, refused beyond 2**MAX_BITS (they could not be a size, nor be printed)."""
    line = node.start_mark.line + 1
    try:
        value = yaml.SafeLoader.construct_yaml_int(loader, node)
    except ValueError:
        value = None
    if value is None or abs(value).bit_length() > MAX_BITS:
        raise SpecError(f"line {line}: the number {node.value[:20]}... is larger than 2**{MAX_BITS}")
    return value


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)

_SLOW = object()
_FastLoader = None
if hasattr(yaml, "CSafeLoader"):  # libyaml is there: parse and compose in C (5x faster on large specs)

    class _FastLoader(yaml.CSafeLoader):  # type: ignore[no-redef]
        """libyaml's parser and composer with _Loader's constructor checks (scalar length,
        duplicate keys, integer size); its alias and depth limits are checked on libyaml's
        events by :func:`_within_limits` before anything is composed."""

        construct_scalar = _Loader.construct_scalar
        construct_mapping = _Loader.construct_mapping

    _FastLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def _within_limits(text: str) -> bool:
    """Whether a document is well inside _Loader's limits on aliases and nesting depth, from
    libyaml's event stream (iterative: deep nesting would overflow the C composer's stack, so
    it is refused here, after at most MAX_DEPTH // 2 events, before anything is composed)."""
    depth = aliases = 0
    for event in yaml.parse(text, Loader=yaml.CSafeLoader):
        if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            depth += 1
            if depth > MAX_DEPTH // 2:
                return False
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            depth -= 1
        elif isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > MAX_ALIASES // 2:
                return False
    return True


def _parse_fast(text: str) -> Any:
    """The document through libyaml, or _SLOW: whenever anything is unusual (an error, many
    aliases, deep nesting) _Loader reads it again and decides, with its own messages."""
    if _FastLoader is None:
        return _SLOW
    try:
        if not _within_limits(text):
            return _SLOW
        loader = _FastLoader(text)
        try:
            node = loader.get_single_node()
            return None if node is None else loader.construct_document(node)
        finally:
            loader.dispose()
    except Exception:  # noqa: BLE001 - the slow path gives the canonical error
        return _SLOW


def parse_yaml(text: str) -> Any:
    if len(text.encode("utf-8", "replace")) > MAX_FILE_BYTES:
        raise SpecError(f"spec larger than {MAX_FILE_BYTES:,} bytes")
    fast = _parse_fast(text)
    if fast is not _SLOW:
        return fast
    try:
        return yaml.load(text, Loader=_Loader)  # safe: _Loader is a SafeLoader subclass
    except SymcostError:
        raise
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise SpecError(f"{where}invalid YAML: {problem}") from None
    except RecursionError:
        raise SpecError("YAML nested too deeply") from None
    except (ValueError, OverflowError) as err:  # a scalar the safe constructors reject (bad date...)
        raise SpecError(f"invalid YAML value: {str(err)[:200]}") from None


def builtin_names() -> list[str]:
    return sorted(p.stem for p in ZOO.glob("*.yaml"))


def load(source: str | os.PathLike) -> Model:
    """Load a model from a YAML file path, YAML text, or the name of a built-in model."""
    if isinstance(source, os.PathLike):
        return load_file(source)
    if not isinstance(source, str):
        raise SpecError(f"load() takes a path, YAML text or a built-in name, not {type(source).__name__}")
    if "\n" in source or ":" in source and not os.path.exists(source):
        return from_text(source)
    if os.path.exists(source):
        return load_file(source)
    if (ZOO / f"{source}.yaml").exists():
        return load_file(ZOO / f"{source}.yaml", label=source)
    raise SpecError(
        f"no file or built-in model named {source!r}" + nearest(source, builtin_names())
        + f"; built-in models: {', '.join(builtin_names())}"
    )


def load_file(path: str | os.PathLike, label: str | None = None) -> Model:
    label = label or os.fspath(path)
    try:
        # Read at most one byte past the limit: the size on disk says nothing about /dev/zero
        # or a pipe (getsize gives 0), which would otherwise be read until memory runs out.
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise SpecError(f"file is larger than the limit of {MAX_FILE_BYTES:,} bytes")
        text = data.decode("utf-8")
    except SymcostError as err:
        raise err.at(label) from None
    except (OSError, UnicodeDecodeError) as err:
        raise SpecError(f"cannot read the file: {getattr(err, 'strerror', None) or err}").at(label) from None
    return from_text(text, label=label)


def from_text(text: str, label: str = "spec") -> Model:
    try:
        return from_dict(parse_yaml(text))
    except SymcostError as err:
        raise err.at(label) from None


def _mapping(value: Any, what: str) -> Mapping:
    if not isinstance(value, Mapping):
        raise SpecError(f"{what} must be a mapping, not {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    return {list: "a list", dict: "a mapping", str: "text", type(None): "empty"}.get(type(value)) or brief(value)


def _check_keys(d: Mapping, allowed: tuple, what: str) -> None:
    for key in d:
        if key not in allowed:
            raise SpecError(f"unknown key {key!r} in {what}" + nearest(str(key), allowed)
                            + f"; allowed: {', '.join(allowed)}")


def from_dict(spec: Any) -> Model:
    """Build a model from a parsed spec (the structure of the YAML)."""
    spec = _mapping(spec, "a spec")
    _check_keys(spec, TOP_KEYS, "the spec")
    name = spec.get("name", "model")
    if isinstance(name, bool) or not isinstance(name, (str, int)):
        raise SpecError(f"name must be text, not {_kind(name)}")
    if isinstance(name, str) and (len(name) > 200 or not name.isprintable()):
        raise SpecError("name must be one line of printable text, at most 200 characters")
    dims = spec.get("dims") or {}
    _mapping(dims, "dims")
    for dim, desc in dims.items():
        if not isinstance(dim, str):
            raise SpecError(f"dims: {dim!r} is not a size name")
        symbol(dim)  # validates the name
        if desc is not None and not isinstance(desc, (str, int)):
            raise SpecError(f"dims: the description of {dim!r} must be text")
    model = Model(str(name), dims={k: "" if v is None else str(v) for k, v in dims.items()},
                  batch=spec.get("batch", 1), defaults=_defaults(spec.get("defaults"), dims))
    for bname, bspec in (_mapping(spec.get("blocks") or {}, "blocks")).items():
        try:
            model.add_block(str(bname), _block(bspec, model))
        except SymcostError as err:
            raise err.at(f"block {bname!r}") from None
    _inputs(spec, model, "the spec")
    _body(spec, model)
    return model


def _defaults(value: Any, dims: Mapping) -> dict:
    """``defaults: {d_ff: 4*d_model}``: a size given a value unless the user sets it
    (sizes, not Python: each value is read by the size grammar)."""
    from .sizes import to_size

    out = {}
    for dim, default in _mapping(value or {}, "defaults").items():
        if not isinstance(dim, str) or dim not in dims:
            raise SpecError(f"defaults: {brief(dim)} is not one of the dims {', '.join(map(str, dims)) or '(none)'}")
        out[dim] = to_size(default, f"the default of {dim}")
    return out


def _inputs(spec: Mapping, model: Model, what: str) -> None:
    if "input" in spec and "inputs" in spec:
        raise SpecError(f"{what} has both 'input' and 'inputs'; use one")
    if "input" in spec:
        model.add_input("x", _shape(spec["input"], "input"))
        return
    inputs = spec.get("inputs")
    if inputs is None:
        raise SpecError(f"{what} needs 'input: [shape]' or 'inputs: {{name: [shape]}}'")
    if isinstance(inputs, list):  # block inputs by name only: shapes come from the caller
        for iname in inputs:
            model.add_input(str(iname), None)
        return
    for iname, shape in _mapping(inputs, "inputs").items():
        model.add_input(str(iname), None if shape is None else _shape(shape, f"input {iname!r}"))


def _shape(value: Any, what: str) -> list:
    if isinstance(value, (int, str)) and not isinstance(value, bool):
        return [value]
    if not isinstance(value, list) or not value:
        raise SpecError(f"{what} must be a list of sizes such as [1, 32, 32], not {_kind(value)}")
    return value


def _body(spec: Mapping, model: Model) -> None:
    if "layers" in spec and "nodes" in spec:
        raise SpecError("use either 'layers' (a chain) or 'nodes' (a graph), not both")
    if "layers" not in spec and "nodes" not in spec:
        raise SpecError("the spec has no 'layers' or 'nodes'")
    items = spec.get("layers") if "layers" in spec else spec.get("nodes")
    if not isinstance(items, list) or not items:
        raise SpecError(f"'{'layers' if 'layers' in spec else 'nodes'}' must be a non-empty list")
    if len(items) > MAX_NODES:
        raise SpecError(f"more than {MAX_NODES:,} nodes")
    graph_form = "nodes" in spec
    for i, item in enumerate(items, 1):
        _node(item, model, graph_form, i)
    if "outputs" in spec:
        outs = spec["outputs"]
        outs = [outs] if isinstance(outs, str) else outs
        if not isinstance(outs, list) or not outs or not all(isinstance(o, str) for o in outs):
            raise SpecError(f"outputs must be a node name or a list of node names, not {_kind(spec['outputs'])}")
        model.set_outputs(outs)


def _node(item: Any, model: Model, graph_form: bool, index: int) -> None:
    where = f"{'node' if graph_form else 'layer'} {index}"
    if not isinstance(item, Mapping):
        raise SpecError(f"must be a mapping such as {{conv2d: {{...}}}}, not {_kind(item)}").at(where)
    if "op" in item:
        fields = dict(item)
        op = fields.pop("op")
    elif len(item) == 1:
        ((op, args),) = item.items()
        if args is None:
            args = {}
        if not isinstance(args, Mapping):
            raise SpecError(f"the arguments of {op!r} must be a mapping, not {_kind(args)}").at(where)
        fields = dict(args)
    else:
        raise SpecError("a node needs an 'op' key (or must be a single {op: {args}} mapping)").at(where)
    if not isinstance(op, str):
        raise SpecError(f"op must be a name, not {_kind(op)}").at(where)
    node_id = fields.pop("id", None)
    if node_id is not None and not isinstance(node_id, str):
        raise SpecError(f"id must be text, not {_kind(node_id)}").at(where)
    inputs = fields.pop("inputs", None)
    if graph_form and inputs is None:
        raise SpecError(f"node {node_id or op!r} needs 'inputs: [...]'").at(where)
    if isinstance(inputs, str):
        inputs = [inputs]
    if inputs is not None and (not isinstance(inputs, list) or not all(isinstance(s, str) for s in inputs)):
        raise SpecError("inputs must be a list of node names").at(where)
    repeat = fields.pop("repeat", 1)
    model.add(op, *(inputs or ()), id=node_id, repeat=repeat, **{str(k): v for k, v in fields.items()})


def _block(bspec: Any, parent: Model) -> Model:
    bspec = _mapping(bspec, "a block")
    _check_keys(bspec, BLOCK_KEYS, "a block")
    block = Model("block")
    for name, sub in parent.blocks.items():  # earlier blocks are usable inside later ones
        block.blocks[name] = sub
    _inputs(bspec, block, "a block")
    _body(bspec, block)
    return block
