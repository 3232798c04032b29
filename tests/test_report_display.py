"""How a report shows itself: the terminal table fitted to its width (issue 12, item 6), and the
rich displays of Jupyter (issue 12, "Jupyter")."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import sympy

import symcost
from symcost.cli import main

ROOT = Path(__file__).resolve().parent.parent
ZOO = sorted(p.stem for p in (ROOT / "symcost" / "zoo").glob("*.yaml"))
GLUE = "*×/(_"  # the table's rule: a line ending in one of these continues without a space


def run(capsys, monkeypatch, columns, *argv):
    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", str(columns))
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 0 and err == "", err
    return out


def text(expr) -> str:
    """A value as the table writes it: a whole number with thousands separators, else sympy's text."""
    return f"{int(expr):,}" if expr.is_Integer else sympy.sstr(expr)


def rejoin(pieces) -> str:
    out = ""
    for p in pieces:
        out += p if not out or out[-1] in GLUE else " " + p
    return out


def columns(block):
    """Column extents of a block of table lines: the runs of at least two positions that are a
    space on every line separate the columns."""
    width = max(len(x) for x in block)
    blank = [all(x[i:i + 1] in ("", " ") for x in block) for i in range(width)]
    spans, start, i = [], 0, 0
    while i < width:
        if blank[i] and i + 1 < width and blank[i + 1]:
            j = i
            while j < width and blank[j]:
                j += 1
            spans.append((start, i))
            start = i = j
        else:
            i += 1
    spans.append((start, width))
    return spans


def parse(out):
    """(header, rows, extras) of a printed table; a row is the list of its lines, each cut into
    its columns; the extras a list of (name, pieces)."""
    lines = out.splitlines()
    rules = [i for i, x in enumerate(lines) if x and set(x) == {"-"}]
    assert len(rules) == 4, out
    body = lines[rules[0] + 1:rules[1]] + lines[rules[1] + 1:rules[2]] + lines[rules[2] + 1:rules[3]]
    spans = columns(body)
    cells = lambda x: [x[a:b].rstrip() if a == 0 else x[a:b].strip() for a, b in spans]  # noqa: E731
    header = [rejoin([p for p in col if p]) for col in zip(*map(cells, lines[rules[0] + 1:rules[1]]))]
    rows = []
    for x in lines[rules[1] + 1:rules[3]]:
        if x == lines[rules[2]]:
            continue
        c = cells(x)
        if c[0]:
            rows.append([c])
        else:
            rows[-1].append(c)
    extras = []
    first = lines[rules[3] + 1]
    at = re.search(r"\S  +(\S)", first).start(1)  # where the values start
    for x in lines[rules[3] + 1:]:
        if x[:1] != " ":
            extras.append((x[:at].strip(), [x[at:].strip()]))
        else:
            extras[-1][1].append(x.strip())
    return header, rows, extras


def expected_rows(report, indent=""):
    out = []
    for r in report.rows:
        op = r.op if r.children is None else f"{r.op} ×{text(r.repeat)}"
        shape = "×".join(text(d) for d in r.shape) if r.shape else "scalar"
        out.append((indent + r.name, op, shape, text(r.cost.params), text(r.cost.macs), text(r.cost.flops)))
        if r.children is not None:
            out += expected_rows(r.children, indent + "  ")
    return out


@pytest.mark.parametrize("width", [100, 80])
@pytest.mark.parametrize("model", ZOO)
def test_the_table_fits_the_terminal_and_loses_nothing(capsys, monkeypatch, model, width):
    out = run(capsys, monkeypatch, width, "cost", model)
    too_long = [x for x in out.splitlines() if len(x) > width]
    assert not too_long, f"{len(too_long)} lines longer than {width}, e.g. {too_long[0]!r}"
    report = symcost.load(model).cost()
    header, rows, extras = parse(out)
    want = expected_rows(report)
    assert len(rows) == len(want) + 1  # and the totals row
    stacked = header[-1] == "value"
    for got, exp in zip(rows, want):
        cols = [[p for p in col if p] for col in zip(*got)]
        assert len(cols[0]) == 1  # a layer's name is never broken
        assert tuple(rejoin(c) for c in cols[:3]) == exp[:3]
        if stacked:  # count | value: each count's label on the first line of its value
            counts = []
            for line in got:
                if line[3]:
                    counts.append((line[3], []))
                if line[4]:
                    counts[-1][1].append(line[4])
            assert counts and counts[0][0] == "params" and len(got[0][4]) > 0
            assert [(k, rejoin(v)) for k, v in counts] == list(zip(("params", "MACs", "FLOPs"), exp[3:]))
        else:
            assert tuple(rejoin(c) for c in cols[3:]) == exp[3:]
    totals = dict((k, rejoin(v)) for k, v in extras)
    total_row = [rejoin([p for p in col if p]) for col in zip(*rows[-1])]
    assert total_row[0] == "total"
    shapes = report.output_shapes
    assert total_row[2] == ("×".join(text(d) for d in shapes[0]) if shapes else "")
    want_totals = {"params": report.params, "MACs": report.macs, "FLOPs": report.flops}
    if "params" in totals:  # fitted: the three totals under the table
        assert {k: totals[k] for k in want_totals} == {k: text(v) for k, v in want_totals.items()}
    else:
        assert total_row[3:6] == [text(v) for v in want_totals.values()]
    mem = report.memory_bytes
    others = {"input elements": report.input, "activations": report.activations,
              "fma_ops (pipelined)": report.fma_ops, "steps (critical path)": report.steps,
              "memory params (fp32, bytes)": mem["params"], "memory activations (fp32, bytes)": mem["activations"],
              "memory total (fp32, bytes)": mem["total"]}
    for k, v in others.items():
        assert totals[k] == text(v), k
    ops = ", ".join(f"{k} {text(v)}" for k, v in report.ops.items() if v != 0) or "0"
    assert totals["ops by kind"] == ops
    conditions = [" ".join(rejoin(v).split()) for k, v in extras if k == "condition"]
    assert conditions == [" ".join(f"{sympy.sstr(e)} >= 1 ({what})".split()) for e, what in report.conditions]


def readme_lenet5():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```console\n\$ symcost cost lenet5\n(.*?)```", readme, flags=re.S)
    assert block, "the README's tour no longer shows `symcost cost lenet5`"
    return block.group(1)


@pytest.mark.parametrize("width", [None, 100, 80, 72])
def test_lenet5_prints_as_the_readme_shows(capsys, monkeypatch, width):
    """Concrete numbers that fit keep the classic table, whatever the width down to its own."""
    assert run(capsys, monkeypatch, width, "cost", "lenet5") == readme_lenet5()


def test_not_a_terminal_and_no_columns_is_100_wide():
    env = {k: v for k, v in __import__("os").environ.items() if k != "COLUMNS"}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run([sys.executable, "-m", "symcost", "cost", "gpt2"], capture_output=True, text=True,
                         env=env, check=True, stdin=subprocess.DEVNULL).stdout
    assert max(len(x) for x in out.splitlines()) <= 100 < len(out.splitlines()[1]) + 10


def test_wide_is_the_unfitted_table_one_line_per_layer(capsys, monkeypatch):
    out = run(capsys, monkeypatch, 80, "cost", "gpt2", "--wide")
    report = symcost.load("gpt2").cost()
    lines = out.splitlines()
    rule = lines[1]
    assert max(map(len, lines)) == 494 and lines.count(rule) == 4  # the old view, kept behind --wide
    body = lines[4:lines.index(rule, 4)]
    assert [x.split()[0] for x in body] == [r[0].strip() for r in expected_rows(report)]
    assert all(x.rstrip().endswith(r[5]) for x, r in zip(body, expected_rows(report)))


def test_a_narrow_terminal_is_taken_as_40_columns(capsys, monkeypatch):
    out = run(capsys, monkeypatch, 12, "cost", "mnist_mlp")
    assert max(len(x) for x in out.splitlines()) <= 40


# ----------------------------------------------------------------------------- Jupyter


def mathml_numbers(html_text):
    return re.findall(r"<mn>([0-9,]+)</mn>", html_text)


def test_a_report_has_an_html_table_with_mathml():
    r = symcost.load("lenet5").cost()
    page = r._repr_html_()
    assert page.count("<math") >= 3 * len(r.rows) and "<html" not in page and "<style" not in page
    for row in r.rows:
        assert f"<code>{row.name}</code>" in page
    # the notes' numbers: 156 + 2,416 + 48,120 + 10,164 + 850 = 61,706 parameters; conv1 235,200 FLOPs
    assert {"61,706", "416,520", "844,276", "235,200", "8,094", "279,200"} <= set(mathml_numbers(page))


def test_a_symbolic_report_shows_every_total_in_html_and_latex():
    r = symcost.load("mnist_mlp").cost()
    page, tex = r._repr_html_(), r._repr_latex_()
    fields = [r.params, r.input, r.activations, r.macs, r.flops, r.fma_ops, r.steps,
              *(v for v in r.ops.values() if v != 0), *r.memory_bytes.values()]
    for value in fields:
        assert symcost.latex(value) in tex
        assert symcost.show(value)._repr_html_() in page
    for label in ("params", "input elements", "activations", "MACs", "FLOPs", "FMA ops", "steps", "memory total"):
        assert label in tex and label in page
    assert r"795 \cdot \mathrm{Nh} + 10" in tex  # symcost's LaTeX, not sympy's 795 Nh + 10


def test_conditions_show_and_text_is_escaped():
    m = symcost.load("gpt2")
    m.name = "<b>&gpt</b>"
    r = m.cost()
    page, tex = r._repr_html_(), r._repr_latex_()
    assert "<b>&gpt</b>" not in page and "&lt;b&gt;&amp;gpt&lt;/b&gt;" in page
    assert page.count("condition") == len(r.conditions) == tex.count(r"\text{condition}") > 0
    assert "_" not in re.sub(r"\\mathrm\{[^}]*\}|_\{", "", tex.replace(r"\text{", "{"))  # no raw _ in \text


def test_show_prints_as_symcost_does():
    nh = symcost.symbol("Nh")
    shown = symcost.show(795 * nh + 10)
    assert shown._repr_latex_() == r"$795 \cdot \mathrm{Nh} + 10$"
    assert "<mi>Nh</mi>" in shown._repr_html_() and "<mn>795</mn>" in shown._repr_html_()
    assert repr(shown) == "795*Nh + 10"
    assert symcost.show(61706)._repr_html_().count("61,706") == 1
    r = symcost.load("lenet5").cost()
    assert symcost.show(r) is r
    with pytest.raises(TypeError):
        symcost.show("795*Nh + 10")  # text is never parsed


def test_a_model_displays_its_layers_shapes_and_costs():
    m = symcost.Model("mlp", inputs={"x": ["N"]})
    m.add("linear", out_features="K", id="fc")
    m.add("relu", id="act")
    page = m._repr_html_()
    assert "<code>fc</code>" in page and "<code>act</code>" in page and "2 nodes" in page
    assert "<mi>K</mi>" in page and "<mi>N</mi>" in page
    broken = symcost.Model("bad", inputs={"x": [3], "y": [4]})
    broken.add("add", "x", "y", id="sum")  # 3 and 4 do not broadcast: the display says so, it does not raise
    with pytest.raises(symcost.SymcostError) as err:
        broken.cost()
    shown = broken._repr_html_()
    assert "symcost: error:" in shown and __import__("html").escape(str(err.value)) in shown


def test_a_derivation_displays_as_the_pages_content():
    from symcost.derivation import derive, render

    d = derive(symcost.load("lenet5"))
    page = d._repr_html_()
    assert page.startswith('<div class="symcost-derivation">') and "<math" in page
    assert "<html" not in page and "<style" not in page and "<body" not in page and "<head" not in page
    full = render(d, "html")
    assert page[len('<div class="symcost-derivation">'):-len("</div>")] in full


def test_a_comparison_displays_as_its_table():
    from symcost.analysis import Scaling, compare

    rows = compare([symcost.load("rnn"), symcost.load("attention")], ["T"])
    assert isinstance(rows, list) and all(isinstance(r, Scaling) for r in rows) and len(rows) == 2
    page = rows._repr_html_()
    assert "<code>RNN</code>" in page and "<code>Attention</code>" in page and page.count("<math") >= 12
    assert "<html" not in page and "Θ" in page


NOTEBOOK = [
    "import symcost\nprint(symcost.__file__)",
    'm = symcost.Model("mlp", inputs={"x": ["N"]})\nm.add("linear", out_features="K", id="fc")\n'
    'm.add("relu", id="act")\nr = m.cost()\nr',
    "r.subs(N=784, K=100)",
    'from symcost.analysis import compare\ncompare([symcost.load("rnn"), symcost.load("attention")], ["T"])',
    "symcost.show(r.params)",
    "m",
]


def test_a_notebook_shows_reports_and_a_comparison_as_html_with_mathml(tmp_path, monkeypatch):
    """A real notebook, executed by a Jupyter kernel (nbclient), exported by nbconvert."""
    import os
    from contextlib import ExitStack

    import nbformat
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in NOTEBOOK]
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))  # connection files stay here
    env = dict(os.environ, IPYTHONDIR=str(tmp_path / "ipython"),  # no user profile, this checkout's symcost
               PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    client = NotebookClient(nb, kernel_name="python3", timeout=120, startup_timeout=120,
                            resources={"metadata": {"path": str(tmp_path)}})
    with ExitStack() as stack:
        stack.enter_context(client.setup_kernel(env=env))  # ipykernel is a test dependency: no skip
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
    outs = [cell.outputs for cell in nb.cells]
    assert outs[0][0]["text"].strip() == str(ROOT / "symcost" / "__init__.py")

    def data(i):
        (result,) = [o for o in outs[i] if o["output_type"] == "execute_result"]
        return result["data"]

    symbolic, concrete, comparison, shown, model = (data(i) for i in range(1, 6))
    for d in (symbolic, concrete, comparison, model):
        assert "<math" in d["text/html"] and "<table>" in d["text/html"]
    # linear N -> K: params K·N + K, MACs K·N; at N = 784, K = 100: 78,500 and 78,400
    assert "<mi>K</mi>" in symbolic["text/html"] and "<code>fc</code>" in symbolic["text/html"]
    assert {"78,500", "78,400", "100", "784"} <= set(mathml_numbers(concrete["text/html"]))
    assert r"\text{params} & 78500" in concrete["text/latex"]
    assert "<code>RNN</code>" in comparison["text/html"] and "<code>Attention</code>" in comparison["text/html"]
    assert shown["text/latex"] == r"$K \cdot N + K$" and "<mi>K</mi>" in shown["text/html"]
    assert "Model &#x27;mlp&#x27;" in model["text/html"] or "Model &#39;mlp&#39;" in model["text/html"]
    page, _ = HTMLExporter().from_notebook_node(nb)
    assert page.count("<math") >= symbolic["text/html"].count("<math") + comparison["text/html"].count("<math")
    assert "78,500" in page


def test_a_long_sum_displays_term_by_term_so_that_it_wraps():
    """Browsers never break a line inside <math>: a long total is one <math> per term."""
    from symcost.render.mathprint import arrange
    from symcost.render.rich import math_html

    flops = symcost.load("gpt2").cost().flops
    shown = math_html(flops)
    terms = arrange(flops).args
    assert len(terms) > 5 and shown.count("<math") == len(terms) == shown.count('<mo form="infix">') + 1
    assert symcost.load("gpt2").cost()._repr_html_().count(shown) == 1  # in the totals, not in the totals row
    assert math_html(symcost.symbol("T") + 1).count("<math") == 1  # a short sum stays one formula


@pytest.mark.parametrize("argv", [
    ["compare", "dnn", "cnn1d", "cnn2d", "rnn", "attention", "gpt2", "llama", "--in", "T"],
    ["cost", "gpt2", "--convention", "kaplan"],
    ["cost", "llama", "--convention", "symcost"],
])
@pytest.mark.parametrize("columns", [100, 80])
def test_the_other_text_tables_fit_the_terminal_too(capsys, monkeypatch, argv, columns):
    """compare's table and a convention's table fit as the cost table does (compare printed 105
    columns at 100 and a convention's header was one 120-character line)."""
    from symcost.cli import main

    monkeypatch.setenv("COLUMNS", str(columns))
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= columns, max(out.splitlines(), key=len)
