"""Regenerate docs/spec.md, the reference of the YAML format, from the spec's key tables and
the layer registry (:func:`symcost.reference.spec_markdown`).

    python -m symcost.tools.regen_spec_doc            # writes docs/spec.md at the repository root
    python -m symcost.tools.regen_spec_doc --check    # exit 1 if docs/spec.md is stale, write nothing

``tests/test_spec_doc.py`` fails, naming this command, when the file differs from a fresh rendering.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

COMMAND = "python -m symcost.tools.regen_spec_doc"
PATH = Path(__file__).resolve().parents[2] / "docs" / "spec.md"


def main(argv=None) -> int:
    from ..reference import spec_markdown

    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that docs/spec.md is up to date")
    args = parser.parse_args(argv)
    text = spec_markdown()
    current = PATH.read_text(encoding="utf-8") if PATH.exists() else None
    if args.check:
        if current != text:
            print(f"{PATH} is stale; run {COMMAND}", file=sys.stderr)
            return 1
        return 0
    if current != text:
        PATH.write_text(text, encoding="utf-8")
        print(f"wrote {PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
