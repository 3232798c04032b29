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
duplicate keys, excessive aliasing and oversized files, and reads YAML 1.1 merge
keys (``<<: *anchor``).  Every key is documented in the tables below
(:data:`TOP_KEY_DOCS` ...), from which docs/spec.md is generated.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import yaml

from .errors import SpecError, SymcostError, brief, nearest
from .graph import Model, check_block_name
from .sizes import MAX_BITS, symbol

MAX_FILE_BYTES = 1_000_000     # a spec larger than this is refused
MAX_ALIASES = 100              # YAML aliases (*ref) in one document
MAX_NODES = 100_000            # nodes in one spec
MAX_SCALAR = 10_000            # characters of one YAML scalar (a number, a name, a size expression)
MAX_DEPTH = 100                # nesting of YAML lists and mappings

#: The keys of a spec and what each means (docs/spec.md is generated from these tables).
TOP_KEY_DOCS = {
    "name": "the model's name, one line of text, shown in every report (default `model`)",
    "dims": "the size names the spec uses, each with its meaning: `{D: model width, T: sequence length}`",
    "defaults": "a value for some of the dims, used unless the user sets them: `{d_ff: 4*d_model}` "
                "(each value is a size)",
    "input": "the shape of the single input `x`, one sample without the batch dim: `[1, 32, 32]`, `[T, D]`",
    "inputs": "named inputs instead of `input`: `{x: [T, D], context: [S, D]}`",
    "layers": "a chain: a list of layers, each applied to the output of the one before (the first to the "
              "input); use either `layers` or `nodes`",
    "nodes": "a graph: a list of nodes, each naming its `inputs`",
    "outputs": "the node (or list of nodes) whose output is the model's (default: every node no other node "
               "reads, or the last one)",
    "blocks": "sub-graphs defined once and used by name like a layer kind, `repeat` times if asked: "
              "`{name: {inputs: [x], layers or nodes: [...]}}`; a block may use the blocks defined before it "
              "and may not take a layer kind's name",
    "batch": "the batch size, a size (default 1): multiplies everything but the parameters "
             "(`--batch` on the command line gives it too)",
    "description": "free text about the model (`symcost models` shows its first clause)",
}
BLOCK_KEY_DOCS = {
    "inputs": "the block's input names, a list: `[x]` or `[x, context]`; their shapes come from where the "
              "block is used (a mapping with shapes is accepted too)",
    "layers": "the block's chain of layers, as at the top level",
    "nodes": "the block's graph of nodes, as at the top level",
    "outputs": "the node whose output is the block's (a block has exactly one output)",
    "description": "free text about the block",
}
NODE_KEY_DOCS = {
    "id": "the node's name: letters, digits, `_`, `-` and `.`, unique in its model or block; used by "
          "`inputs`, `outputs`, `tied_to` and the reports (default: the op and a number, `conv2d1`)",
    "op": "the layer kind or block applied (in the chain form `{conv2d: {...}}` the single key names it)",
    "inputs": "the ids of the nodes or model inputs it reads, in order: a list, or one name (required in "
              "`nodes`; in `layers` it defaults to the previous layer; an empty list is refused)",
    "repeat": "blocks only: apply the block this many times in a row, each application reading the "
              "previous one's output (a size, `12` or `n_layer`; the block must keep its input's shape)",
}
TOP_KEYS = tuple(TOP_KEY_DOCS)
BLOCK_KEYS = tuple(BLOCK_KEY_DOCS)
NODE_RESERVED = tuple(NODE_KEY_DOCS)
EXTENSION_PREFIX = "x-"        # top-level keys x-... are ignored: where a spec keeps its YAML anchors

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
        self.flatten_mapping(node)  # then BaseConstructor's (SafeConstructor's would flatten again)
        return yaml.constructor.BaseConstructor.construct_mapping(self, node, deep=deep)

    def flatten_mapping(self, node):
        """YAML 1.1 merge keys (``<<: *base``, ``<<: [*a, *b]``), after refusing a key written
        twice in the mapping itself.  A key the mapping writes overrides a merged one, and the
        first of several merged mappings wins, as in PyYAML; each flattened mapping keeps one
        pair per key, so merging an anchor into itself level after level cannot grow it (and
        flattening it again, where it is used, changes nothing)."""
        if not isinstance(node, yaml.MappingNode):
            return
        seen = set()
        merges = False
        for key_node, _ in node.value:
            if key_node.tag == MERGE_TAG:
                merges = True
                continue
            key = self._key(key_node)
            if key in seen:
                raise SpecError(f"line {key_node.start_mark.line + 1}: duplicate key {key!r}")
            seen.add(key)
        if not merges:
            return
        # Flattened here rather than by PyYAML, whose order of merged pairs changed in 6.0.4
        # (its own result is the same, ours was not): the first merged mapping wins, then the
        # mapping's own keys override.
        own, sources = [], []
        for key_node, value_node in node.value:
            if key_node.tag != MERGE_TAG:
                own.append((key_node, value_node))
                continue
            subs = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            for sub in subs:
                if not isinstance(sub, yaml.MappingNode):  # reported as the loader's other errors are
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping", node.start_mark,
                        f"expected a mapping for merging, but found {sub.id}", sub.start_mark)
                self.flatten_mapping(sub)
                sources.append(sub)
        pairs: dict = {}
        for sub in sources:
            for key_node, value_node in sub.value:
                pairs.setdefault(self._key(key_node), (key_node, value_node))
        for key_node, value_node in own:
            pairs[self._key(key_node)] = (key_node, value_node)
        node.value = list(pairs.values())

    def _key(self, key_node):
        key = self.construct_object(key_node)
        try:
            hash(key)
        except TypeError:
            raise SpecError(f"line {key_node.start_mark.line + 1}: a mapping key must be a plain value") from None
        return key


MERGE_TAG = "tag:yaml.org,2002:merge"


def _scalar_tag(tag: str, what: str):
    """A constructor for ``!!tag`` that reports a value it cannot read as one line naming it
    (PyYAML raises KeyError for ``!!bool abc``, AttributeError for ``!!timestamp abc``)."""
    construct = getattr(yaml.SafeLoader, f"construct_yaml_{tag}")

    def constructor(loader, node):
        try:
            return construct(loader, node)
        except SymcostError:
            raise
        except Exception:  # noqa: BLE001 - whatever PyYAML raised, the value is not a {what}
            raise SpecError(f"line {node.start_mark.line + 1}: !!{tag} {_quoted(node.value)} is not {what}") from None

    return constructor


def _quoted(value) -> str:
    text = str(value)
    return repr(text if len(text) <= 20 else text[:20] + "...")


SCALAR_TAGS = {"float": "a number", "bool": "true or false", "timestamp": "a date or time",
               "binary": "base64 data"}


def _construct_int(loader: _Loader, node) -> int:
    """YAML integers, refused beyond 2**MAX_BITS (they could not be a size, nor be printed)."""
    line = node.start_mark.line + 1
    try:
        value = yaml.SafeLoader.construct_yaml_int(loader, node)
    except SymcostError:
        raise
    except ValueError as err:  # Python refuses int() of more than 4,300 digits: a number, too long
        if "digits" not in str(err):
            raise SpecError(f"line {line}: !!int {_quoted(node.value)} is not a whole number") from None
        value = None
    except Exception:  # noqa: BLE001 - !!int "" (IndexError), !!int 0x (ValueError above) ...
        raise SpecError(f"line {line}: !!int {_quoted(node.value)} is not a whole number") from None
    if value is None or abs(value).bit_length() > MAX_BITS:
        raise SpecError(f"line {line}: the number {node.value[:20]}... is larger than 2**{MAX_BITS}")
    return value


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
for _tag, _what in SCALAR_TAGS.items():
    _Loader.add_constructor(f"tag:yaml.org,2002:{_tag}", _scalar_tag(_tag, _what))

_SLOW = object()
_FastLoader = None
if hasattr(yaml, "CSafeLoader"):  # libyaml is there: parse and compose in C (5x faster on large specs)

    class _FastLoader(yaml.CSafeLoader):  # type: ignore[no-redef]
        """libyaml's parser and composer with _Loader's constructor checks (scalar length,
        duplicate keys, integer size); its alias and depth limits are checked on libyaml's
        events by :func:`_within_limits` before anything is composed."""

        construct_scalar = _Loader.construct_scalar
        construct_mapping = _Loader.construct_mapping
        flatten_mapping = _Loader.flatten_mapping
        _key = _Loader._key

    _FastLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)
    for _tag, _what in SCALAR_TAGS.items():
        _FastLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _scalar_tag(_tag, _what))


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
    if value == [] or value == {}:
        return f"an empty {'list' if isinstance(value, list) else 'mapping'}"
    return {list: "a list", dict: "a mapping", str: "text", type(None): "empty"}.get(type(value)) or brief(value)


def _check_keys(d: Mapping, allowed: tuple, what: str) -> None:
    for key in d:
        if isinstance(key, str) and key.startswith(EXTENSION_PREFIX) and what == "the spec":
            continue  # x-...: a place for YAML anchors (``x-conv: &conv {...}``), as in docker compose
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
        check_block_name(bname)  # before its body: a block named 'linear' is refused as such
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
    if inputs == [] or inputs == {}:
        raise SpecError(f"{what} has an empty 'inputs'; name at least one input")
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
    if inputs == []:  # an explicit empty list is not "the previous node"
        raise SpecError(f"{node_id or op!r} has 'inputs: []'; name its inputs, or leave 'inputs' out "
                        "to take the previous layer's output" if not graph_form else
                        f"node {node_id or op!r} has 'inputs: []'; name at least one input").at(where)
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
