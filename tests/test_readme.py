"""The README's Python examples run as written (doctest of every ```python block)."""

import doctest
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block(index):
    block = BLOCKS[index]
    test = doctest.DocTestParser().get_doctest(block, {}, f"README block {index}", str(README), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert runner.failures == 0, f"README python block {index} does not run as written (see output above)"


def test_readme_has_python_examples():
    assert len(BLOCKS) >= 2
