"""tests/benchmarks holds scripts (``python tests/benchmarks/run.py``), not tests: pytest
never collects them, even when pointed here (the default run also --ignores the folder)."""

collect_ignore_glob = ["*.py"]
