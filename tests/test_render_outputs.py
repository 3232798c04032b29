"""Rendered derivations: the golden files in derivations/, the .tex through pdflatex, the HTML in a real
headless Chromium.  pdflatex and chromium are optional (Debian: texlive-latex-base,
texlive-latex-recommended, chromium); their tests skip with the reason when they are missing."""

from __future__ import annotations

import re
import subprocess
from html.parser import HTMLParser

import pytest
from optional_tools import requires, which

import symcost
from symcost.derivation import derive, render
from symcost.tools import regen_derivations as regen

LENET = dict(dtype="fp32", speed="1GFLOPS")


# ---------------------------------------------------------------------------
# Golden files
# ---------------------------------------------------------------------------


def test_derivations_directory_is_up_to_date():
    stale = regen.stale()
    assert not stale, (
        f"derivations/ is out of date ({', '.join(stale)}); regenerate it with `{regen.COMMAND}` "
        "and commit the result"
    )


def test_derivations_directory_has_the_issue_models():
    names = {stem for stem, _, _ in regen.available()}
    assert {"lenet5", "perceptron", "mnist_mlp", "dnn_autoencoder", "cnn_autoencoder"} <= names
    for stem in names:
        for ext in regen.FORMATS:
            assert (regen.DEFAULT_DIR / f"{stem}.{ext}").exists(), f"run `{regen.COMMAND}`"


# ---------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------


def test_markdown_math_is_balanced_and_printed_by_sympy():
    text = render(derive(symcost.load("lenet5"), **LENET), "markdown")
    assert text.count("$$") % 2 == 0
    for line in text.splitlines():
        if not line.startswith("$$"):
            assert line.count("$") % 2 == 0, line          # inline math closes on its line
    assert "None" not in text and "Dims" not in text and "Symbol(" not in text
    assert r"6 \cdot 28 \cdot 28 \cdot 2 \cdot 1 \cdot 5 \cdot 5" in text
    assert "235{,}200" in text and "61{,}706" in text


# ---------------------------------------------------------------------------
# LaTeX through pdflatex
# ---------------------------------------------------------------------------


def _latex_cases():
    from symcost.spec import builtin_names

    special = {"lenet5": LENET, "perceptron": {"symbolic": True}}
    return [(name, special.get(name, {})) for name in builtin_names()]


@requires("pdflatex")
@pytest.mark.parametrize("name, options", _latex_cases())
def test_latex_document_compiles(tmp_path, name, options):
    """Every built-in model's derivation compiles, and no formula runs into the margin (a long
    sum, or a product n_layer·(a long sum), is broken into lines)."""
    tex = render(derive(symcost.load(name), **options), "latex", command=f"symcost derive {name}")
    (tmp_path / "d.tex").write_text(tex, encoding="utf-8")
    run = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape", "d.tex"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-3000:]
    assert (tmp_path / "d.pdf").stat().st_size > 10_000
    log = (tmp_path / "d.log").read_text(encoding="utf-8", errors="replace")
    assert "Missing character" not in log
    assert "Overfull \\hbox" not in log, "a formula runs into the margin"  # long sums are broken into lines


# ---------------------------------------------------------------------------
# HTML in a real browser
# ---------------------------------------------------------------------------


def _chromium() -> str | None:
    return which("chromium")


def _headless(tmp_path, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
         f"--user-data-dir={tmp_path / 'profile'}", *args],
        capture_output=True, text=True, timeout=120,
    )


class _Visible(HTMLParser):
    """Text a reader sees outside <math> (and outside <style>/<head>), and the count of MathML elements."""

    def __init__(self):
        super().__init__()
        self.stack: list[str] = []
        self.text: list[str] = []
        self.math = self.mfrac = self.msub = 0
        self.tags: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.math += tag == "math"
        self.mfrac += tag == "mfrac"
        self.msub += tag == "msub"
        if tag not in ("meta", "br", "link", "img"):
            self.stack.append(tag)

    def handle_endtag(self, tag):
        while self.stack and self.stack.pop() != tag:
            pass

    def handle_data(self, data):
        if not any(t in ("math", "style", "head", "title", "script") for t in self.stack):
            self.text.append(data)


def test_html_is_self_contained():
    html = render(derive(symcost.load("lenet5"), **LENET), "html")
    assert "<script" not in html.lower() and "<link" not in html.lower() and "@import" not in html
    urls = set(re.findall(r"(?:https?:)?//[\w.-]+[^\s\"'<>]*", html))
    assert urls <= {"http://www.w3.org/1998/Math/MathML"}, urls
    assert "$" not in html and "\\frac" not in html and "\\cdot" not in html


@requires("chromium")
def test_html_math_renders_in_chromium(tmp_path):
    page = tmp_path / "lenet5.html"
    page.write_text(render(derive(symcost.load("lenet5"), **LENET), "html"), encoding="utf-8")
    run = _headless(tmp_path, "--dump-dom", page.as_uri())
    assert run.returncode == 0, run.stderr[-2000:]
    dom = _Visible()
    dom.feed(run.stdout)
    # the browser built MathML elements (not text): fractions of the output-size formula, subscripts
    assert dom.math > 100 and dom.mfrac >= 4 and dom.msub > 50
    visible = " ".join(dom.text)
    for source in ("$", "\\frac", "\\cdot", "\\left", "\\mathrm", "&#", "<math", "<mi>"):
        assert source not in visible, source
    assert "235,200" not in visible  # numbers of the formulas live inside MathML ...
    shot = tmp_path / "shot.png"  # ... and the page paints
    run = _headless(tmp_path, "--window-size=1000,1400", f"--screenshot={shot}", page.as_uri())
    assert run.returncode == 0 and shot.stat().st_size > 20_000


# ---------------------------------------------------------------------------
# HTML layout in a real browser: nothing runs out of its box, on screen or on paper
# ---------------------------------------------------------------------------

SCREEN_WIDTH = 1200  # a laptop's browser window
# The text of a printed A4 page at Chromium's default margins (0.4 in): (210 mm − 2·10.16 mm)·96 px/in ÷ 25.4 mm/in
# = 717 px, narrower than Letter's 739 px.  A page that fits it prints without being cut or shrunk.
PAPER_WIDTH = 717

#: The compare pages: derivations/scaling_in_T.html's command, and every built-in transformer beside them
#: (the widest formulas a table cell gets).
COMPARE_PAGES = {
    "compare-scaling_in_T": dict(regen.EXTRA)["scaling_in_T.html"],
    "compare-transformers": ("compare", "dnn", "cnn1d", "cnn2d", "rnn", "lstm", "gru", "attention",
                             "transformer_encoder", "transformer_lm", "gpt2", "bert", "llama", "palm",
                             "--in", "T", "--format", "html"),
}


def _layout_pages() -> list[str]:
    from symcost.spec import builtin_names

    return [f"derive-{name}" for name in builtin_names()] + list(COMPARE_PAGES)


def _page_html(page: str) -> str:
    if page in COMPARE_PAGES:
        return regen._run(list(COMPARE_PAGES[page]))
    name = page.removeprefix("derive-")
    return render(derive(symcost.load(name), **(LENET if name == "lenet5" else {})), "html",
                  command=f"symcost derive {name} --format html")


@pytest.fixture(scope="module")
def layout_findings(tmp_path_factory):
    """page -> {"screen": [...], "print": [...]}: what tests/html_overflow.js finds in each page, every page
    measured in one Chromium run (a harness page holding each page in a frame as wide as a 1200 px window
    and in one as wide as a printed page's text)."""
    import html
    import json
    from pathlib import Path

    tmp = tmp_path_factory.mktemp("layout")
    frames = []
    for page in _layout_pages():
        source = html.escape(_page_html(page), quote=True)
        for mode, width in (("screen", SCREEN_WIDTH), ("print", PAPER_WIDTH)):
            frames.append(f'<iframe data-page="{page}" data-mode="{mode}" style="display:block;border:0;'
                          f'width:{width}px;height:900px" srcdoc="{source}"></iframe>')
    script = (Path(__file__).with_name("html_overflow.js")).read_text(encoding="utf-8")
    harness = tmp / "harness.html"
    harness.write_text("<!DOCTYPE html><html><head><meta charset='utf-8'></head><body style='margin:0'>"
                       + "".join(frames) + f"<script>{script}</script></body></html>", encoding="utf-8")
    run = _headless(tmp, f"--window-size={SCREEN_WIDTH + 40},900", "--dump-dom", harness.as_uri())
    assert run.returncode == 0, run.stderr[-2000:]
    found = re.findall(r'<pre id="symcost-overflow">(.*?)</pre>', run.stdout, re.S)
    assert found, "the overflow measurement did not run: " + run.stderr[-2000:]
    return json.loads(html.unescape(found[-1]))


@requires("chromium")
@pytest.mark.parametrize("page", _layout_pages())
def test_html_fits_screen_and_paper(layout_findings, page):
    """Every built-in model's derivation and the compare pages, in Chromium: at 1200 px and on an A4 page
    (print media), no formula runs out of its box, no table out of the text column, nothing hides behind
    a scroll bar or past the page's edge, and no Θ(…) order breaks over two lines.  MathML Core never
    breaks a formula, so long sums must be printed breakable (mathprint.mathml_lines)."""
    result = layout_findings[page]
    assert set(result) == {"screen", "print"}
    problems = [f"{mode} ({SCREEN_WIDTH if mode == 'screen' else PAPER_WIDTH} px): {p}"
                for mode in ("screen", "print") for p in result[mode]]
    assert not problems, f"{page}:\n" + "\n".join(problems[:12])
