"""docs/spec.md, the reference of the YAML format: generated from the spec's key tables and the
layer registry, never stale, complete, and its examples load, cost, and agree with PyTorch."""

import re
from pathlib import Path

import pytest
import sympy

import symcost
from symcost.errors import SymcostError
from symcost.layers import REGISTRY, load_all
from symcost.layers.base import REQUIRED
from symcost.reference import EXAMPLES, default_text, formula, spec_markdown
from symcost.sizes import symbol
from symcost.tools.regen_spec_doc import COMMAND, PATH

load_all()
KINDS = sorted(REGISTRY)


def test_docs_spec_md_is_up_to_date():
    assert PATH.exists(), f"docs/spec.md is missing; run {COMMAND}"
    assert PATH.read_text(encoding="utf-8") == spec_markdown(), f"docs/spec.md is stale; run {COMMAND}"


def test_the_check_mode_names_a_stale_file(tmp_path, monkeypatch, capsys):
    from symcost.tools import regen_spec_doc

    stale = tmp_path / "spec.md"
    stale.write_text("old\n", encoding="utf-8")
    monkeypatch.setattr(regen_spec_doc, "PATH", stale)
    assert regen_spec_doc.main(["--check"]) == 1 and COMMAND in capsys.readouterr().err
    assert stale.read_text(encoding="utf-8") == "old\n"
    assert regen_spec_doc.main([]) == 0 and regen_spec_doc.main(["--check"]) == 0


@pytest.mark.parametrize("name", KINDS)
def test_every_kind_is_documented_with_every_argument(name):
    kind = REGISTRY[name]
    assert kind.takes, f"{name} has no 'takes' (its input)"
    assert formula(kind), f"{name} has no docstring (the formulas it counts)"
    for arg in kind.args:
        assert arg.doc, f"{name}.{arg.name} has no doc"
    text = PATH.read_text(encoding="utf-8")
    section = text.split(f"\n#### {name}\n", 1)[1].split("\n#### ", 1)[0]
    assert kind.takes in section and formula(kind) in section
    for arg in kind.args:
        assert f"| `{arg.name}` |" in section and f"`{default_text(arg)}`" in section and arg.doc in section


def test_every_key_the_loader_accepts_is_documented():
    from symcost.spec import BLOCK_KEYS, NODE_RESERVED, TOP_KEYS

    text = PATH.read_text(encoding="utf-8")
    for keys, title in ((TOP_KEYS, "## Keys of a spec"), (BLOCK_KEYS, "## Keys of a block"),
                        (NODE_RESERVED, "## Keys of a layer or node")):
        section = text.split(title, 1)[1].split("\n## ", 1)[0]
        for key in keys:
            assert f"| `{key}` |" in section, (title, key)
    for key in ("name", "description", "dims", "defaults", "input", "inputs", "layers", "nodes", "blocks",
                "repeat", "outputs", "batch", "id", "op", "tied_to"):
        assert f"`{key}`" in text, key


# ------------------------------------------------------------------------------------------------
# The input rank each kind states is the rank it accepts
# ------------------------------------------------------------------------------------------------

RANK_RE = re.compile(r"\((?:rank (\d+)(?: or (\d+))?|rank ≥ (\d+)|(any rank))\)$")
PROBED = range(6)


def _required(kind, arg):
    """A value for a required argument that constrains nothing (reshape infers its one -1)."""
    if arg.name == "num_heads":
        return 1
    if arg.type == "shape":
        return [-1] if kind.name == "reshape" else ["N"]
    return {"size": "K", "sizes": 1}[arg.type]


def _accepts(kind, rank: int) -> bool:
    n = symbol("N")
    inputs = [(n,) * rank] * kind.min_inputs
    raw = {a.name: _required(kind, a) for a in kind.args if a.default is REQUIRED}
    try:
        q = kind.quantities(kind.normalize(raw), inputs)
        kind.shape(q)
        kind.cost(q)
    except SymcostError:
        return False
    return True


@pytest.mark.parametrize("name", KINDS)
def test_the_stated_input_rank_is_the_rank_accepted(name):
    kind = REGISTRY[name]
    m = RANK_RE.search(kind.takes)
    assert m, f"{name}.takes must end with (rank R), (rank R or S), (rank ≥ R) or (any rank): {kind.takes!r}"
    exact1, exact2, at_least, any_rank = m.groups()
    if any_rank:
        stated = set(PROBED)
    elif at_least:
        stated = {r for r in PROBED if r >= int(at_least)}
    else:
        stated = {int(exact1)} | ({int(exact2)} if exact2 else set())
    assert {r for r in PROBED if _accepts(kind, r)} == stated


# ------------------------------------------------------------------------------------------------
# The examples work, and count what PyTorch counts
# ------------------------------------------------------------------------------------------------

YAML_BLOCKS = re.findall(r"```yaml\n(.*?)```", PATH.read_text(encoding="utf-8"), flags=re.S)


def test_the_examples_are_in_the_document():
    for text in EXAMPLES.values():
        assert text in YAML_BLOCKS


@pytest.mark.parametrize("index", range(len(YAML_BLOCKS)))
def test_every_yaml_example_loads_and_costs(index):
    report = symcost.load(YAML_BLOCKS[index]).cost()
    assert report.macs != 0 and report.steps != 0


def _torch_counts(module, x):
    """Parameters, and FLOPs as FlopCounterMode counts them (2 per multiply-accumulate).  The
    attention core runs on PyTorch's math backend: the fused CPU kernel is not counted at all."""
    import torch  # noqa: F401
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    module.eval()
    counter = FlopCounterMode(display=False)
    with sdpa_kernel(SDPBackend.MATH), counter:
        module(x)
    return sum(p.numel() for p in module.parameters()), counter.get_total_flops()


def test_the_resnet_example_counts_what_torch_counts():
    import torch
    nn = torch.nn

    class Basic(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(c)
            self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(c)

        def forward(self, x):
            return torch.relu(x + self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))

    sizes = {"C": 8, "M": 10, "N": 12, "L": 3}
    report = symcost.load(EXAMPLES["A ResNet-style block"]).cost()
    C, L = symbol("C"), symbol("L")
    assert sympy.expand(report.params - L * (2 * 9 * C**2 + 2 * 2 * C)) == 0  # two 3×3 convs, two bns (γ, β)
    params, flops = _torch_counts(nn.Sequential(*(Basic(sizes["C"]) for _ in range(sizes["L"]))),
                                  torch.randn(1, sizes["C"], sizes["M"], sizes["N"]))
    exact = report.subs(**sizes)
    assert exact.params == params and 2 * exact.macs == flops


def test_the_transformer_example_counts_what_torch_counts():
    import torch
    nn = torch.nn
    sizes = {"T": 7, "D": 16, "heads": 4, "L": 2}
    layer = nn.TransformerEncoderLayer(sizes["D"], sizes["heads"], 4 * sizes["D"], dropout=0.0, batch_first=True)
    model = nn.TransformerEncoder(layer, sizes["L"], enable_nested_tensor=False)
    params, flops = _torch_counts(model, torch.randn(1, sizes["T"], sizes["D"]))
    exact = symcost.load(EXAMPLES["A transformer block"]).cost().subs(**sizes)  # F defaults to 4*D
    assert exact.params == params and 2 * exact.macs == flops


# ------------------------------------------------------------------------------------------------
# help(symcost) lists the public API
# ------------------------------------------------------------------------------------------------


def test_help_lists_the_public_api_with_from_torch():
    import pydoc

    text = pydoc.render_doc(symcost, renderer=pydoc.plaintext)
    doc = symcost.__doc__.split("The public API:", 1)[1]
    for name in symcost.__all__:
        assert re.search(rf"^ {{4}}.*\b{re.escape(name)}\b", doc, flags=re.M), f"{name} is not in symcost's docstring"
    assert "from_torch" in text and "docs/spec.md" in doc


def test_the_readme_links_the_reference_from_writing_a_model():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Writing a model", 1)[1].split("\n## ", 1)[0]
    assert "(docs/spec.md)" in section
