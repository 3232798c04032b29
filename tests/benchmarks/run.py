"""symcost's benchmarks: derive, sweep, start-up -- each beside a baseline measured in the same run.

    python tests/benchmarks/run.py                # everything (about a minute); prints the results
    python tests/benchmarks/run.py --quick        # fewer repetitions and torch points
    python tests/benchmarks/run.py --write-docs   # and rewrites the results in docs/performance.md

Timings are wall-clock (time.perf_counter).  In-process timings clear symcost's memo
caches and sympy's cache before every repetition and report the best of the repetitions
(the median is printed beside it); subprocess timings report the best of several runs.
Every benchmark also checks its result against the baseline's (the same totals), so a
fast wrong answer cannot pass.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

import sympy  # noqa: E402

import gpt3  # noqa: E402
import naive  # noqa: E402
import symcost  # noqa: E402
from symcost.spec import from_dict  # noqa: E402

DOC = ROOT / "docs" / "performance.md"
START, END = "<!-- results:start (written by tests/benchmarks/run.py) -->", "<!-- results:end -->"


# ---------------------------------------------------------------------------
# Timing helpers
# ---------------------------------------------------------------------------


def clear_caches() -> None:
    """Forget everything a previous repetition memoised: symcost's and sympy's caches."""
    from symcost import cost, render

    for fn in (getattr(cost, "_tidy", None), getattr(render, "_sstr", None)):
        if fn is not None and hasattr(fn, "cache_clear"):
            fn.cache_clear()
    sympy.core.cache.clear_cache()


CPU: dict[str, float] = {}  # best CPU time (time.process_time) of the last timed() call, by label


def timed(fn, repeat: int, label: str = "") -> tuple[float, float, object]:
    """(best, median, last result) of ``repeat`` cold runs of ``fn``; the best CPU time goes to
    CPU[label] (less sensitive than wall time to other processes on a busy machine)."""
    times, cpus, result = [], [], None
    for _ in range(repeat):
        clear_caches()
        t0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        times.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    if label:
        CPU[label] = min(cpus)
    return min(times), statistics.median(times), result


def wall(cmd: list[str], repeat: int) -> float:
    """Best wall time of a subprocess (output discarded; it must succeed)."""
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
        best = min(best, time.perf_counter() - t0)
    return best


def fmt_t(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:.1f} µs"
    if s < 1:
        return f"{s * 1e3:.1f} ms"
    return f"{s:.2f} s"


class Table:
    def __init__(self):
        self.rows: list[tuple] = []

    def add(self, name, ours, baseline_name, baseline, ratio, target, met):
        self.rows.append((name, ours, baseline_name, baseline, ratio, target, met))
        print(f"  {name:<46} {ours:>10}   {baseline_name}: {baseline:>10}   ratio {ratio:<12} "
              f"target {target:<24} {'met' if met else 'MISSED'}", flush=True)

    def markdown(self) -> str:
        out = ["| benchmark | symcost | baseline | baseline time | ratio | target | met |",
               "|---|---:|---|---:|---:|---|:-:|"]
        for name, ours, bname, base, ratio, target, met in self.rows:
            out.append(f"| {name} | {ours} | {bname} | {base} | {ratio} | {target} | {'yes' if met else '**no**'} |")
        return "\n".join(out)


# ---------------------------------------------------------------------------
# derive
# ---------------------------------------------------------------------------


def derive_full(spec: dict):
    """Everything in the contract: build, analyse, totals (flops by kind), steps, per-layer rows, to_dict."""
    model = from_dict(spec)
    report = model.cost()
    report.total, report.ops, report.steps, report.rows
    return report, report.to_dict()


def check_same(report, base: dict, what: str) -> None:
    for field, expr in base.items():
        if sympy.expand(getattr(report, field) - expr) != 0:
            raise SystemExit(f"{what}: symcost's {field} differs from the naive prototype's")


def bench_derive(table: Table, notes: list[str], quick: bool) -> dict:
    rep = 3 if quick else 7
    attention = "mha" if gpt3.mha_available() else "primitives"
    forms = [attention] + (["primitives"] if attention == "mha" else [])
    results = {}
    for att in forms:
        spec = gpt3.unrolled_spec(attention=att)
        best, med, (report, _) = timed(lambda: derive_full(spec), rep, "derive")
        nb, nmed, base = timed(lambda: naive.derive(spec), rep)
        check_same(report, base, f"unrolled ({att})")
        n = len(report.rows)
        table.add(f"derive GPT-3 unrolled, {n} nodes ({att})", fmt_t(best), "naive Add", fmt_t(nb),
                  f"{best / nb:.1f}× naive", "≤ 0.5 s", best <= 0.5)
        notes.append(f"derive unrolled ({att}): best {fmt_t(best)} (CPU {fmt_t(CPU['derive'])}), median {fmt_t(med)}; "
                     f"naive best {fmt_t(nb)}, median {fmt_t(nmed)}; {n} nodes")
        results[f"unrolled_{att}"] = best
    for repeat in ("L", gpt3.N_BLOCKS):
        spec = gpt3.repeated_spec(repeat, attention)
        best, med, (report, _) = timed(lambda: derive_full(spec), rep, "derive")
        nb, _, base = timed(lambda: naive.derive(spec), rep)
        check_same(report, base, f"block x {repeat}")
        notes.append(f"derive one block x {repeat} ({attention}): best {fmt_t(best)} (CPU {fmt_t(CPU['derive'])}), "
                     f"median {fmt_t(med)}")
        table.add(f"derive GPT-3 as one block × {repeat} ({attention})", fmt_t(best), "naive Add", fmt_t(nb),
                  f"{best / nb:.1f}× naive", "≤ 0.05 s", best <= 0.05)
        results[f"block_{repeat}"] = best
    # The repeated block and the unrolled graph agree (the invariant tests check more points).
    blk = from_dict(gpt3.repeated_spec(gpt3.N_BLOCKS, attention)).cost()
    unr = from_dict(gpt3.unrolled_spec(attention=attention)).cost()
    for f in ("params", "activations", "macs", "flops", "fma_ops", "steps"):
        if sympy.expand(getattr(blk, f) - getattr(unr, f)) != 0:
            raise SystemExit(f"block × 96 and unrolled differ in {f}")
    return results


def fit_exponent(ns, ts) -> float:
    import numpy as np

    return float(np.polyfit(np.log(ns), np.log(ts), 1)[0])


def bench_growth(table: Table, notes: list[str], quick: bool) -> None:
    attention = "mha" if gpt3.mha_available() else "primitives"
    sizes = [10, 30, 100, 300, 1000, 3000, 10000]
    ns, ts, nts, cpus = [], [], [], []
    for target in sizes:
        spec = gpt3.chain_spec(target, attention)
        rep = 1 if target >= 3000 and quick else (2 if target >= 3000 else (3 if quick else 5))
        best, _, (report, _) = timed(lambda: derive_full(spec), rep, "growth")
        nb, _, _ = timed(lambda: naive.total(spec["nodes"]), rep)
        ns.append(len(report.rows))
        ts.append(best)
        cpus.append(CPU["growth"])
        nts.append(nb)
    k, kn = fit_exponent(ns, ts), fit_exponent(ns, nts)
    k_tail = fit_exponent(ns[-3:], ts[-3:])
    table.add("growth exponent, 10 → 10,000 nodes", f"{k:.2f}", "naive Add", f"{kn:.2f}",
              f"{k / kn:.2f}× naive", "≤ 1.1", k <= 1.1)
    notes.append("growth: " + ", ".join(f"{n} nodes {fmt_t(t)}" for n, t in zip(ns, ts))
                 + f"; exponent {k:.2f} over all sizes, {k_tail:.2f} over the last three; in CPU time "
                 f"{fit_exponent(ns, cpus):.2f} and {fit_exponent(ns[-3:], cpus[-3:]):.2f}; "
                 f"naive prototype {', '.join(fmt_t(t) for t in nts)} (exponent {kn:.2f})")


# ---------------------------------------------------------------------------
# sweep
# ---------------------------------------------------------------------------


def sweep_grid():
    """10^6 points: D = 384·i (multiples of the 96 heads), T = 64·j, L = k, for i, j, k = 1..100."""
    return {"D": [384 * i for i in range(1, 101)], "T": [64 * j for j in range(1, 101)],
            "L": list(range(1, 101))}


def lambdify_core(expr, names, grid):
    """The floor of a sweep: the expression lambdified to numpy, evaluated on int64 columns
    (exact: the grid's maximum keeps every term and partial sum far below 2**63)."""
    import numpy as np

    syms = [symcost.symbol(n) for n in names]
    fn = sympy.lambdify(syms, sympy.expand(expr), modules="numpy")
    cols = np.meshgrid(*(np.array(grid[n], dtype=np.int64) for n in names), indexing="ij")
    return np.broadcast_to(fn(*(c.ravel() for c in cols)), (cols[0].size,))


def bench_sweep(table: Table, notes: list[str], quick: bool) -> None:
    import numpy as np

    attention = "mha" if gpt3.mha_available() else "primitives"
    report = from_dict(gpt3.repeated_spec("L", attention)).cost().subs(V=50257, h=96)
    grid = sweep_grid()
    names = list(grid)
    points = math.prod(len(v) for v in grid.values())
    expr = report.flops

    best, med, values = timed(lambda: lambdify_core(expr, names, grid), 3 if quick else 7, "core")
    # exact? compare sampled points with substitution into the derived expression (Python ints)
    rng = random.Random(6)
    for _ in range(20):
        idx = [rng.randrange(len(grid[n])) for n in names]
        flat = np.ravel_multi_index(idx, [len(grid[n]) for n in names])
        point = {n: grid[n][i] for n, i in zip(names, idx)}
        if int(values[flat]) != int(report.subs(point).flops):
            raise SystemExit(f"sweep value differs from substitution at {point}")

    # The library's own sweep (symcost.sweep), when it exists: all contract fields or flops only.
    api = None
    try:
        from symcost import sweep as sweep_mod
    except ImportError:
        sweep_mod = None
    if sweep_mod is not None:
        api_best, api_med, res = timed(lambda: sweep_mod.sweep(report, grid, fields=("flops",)), 1 if quick else 3, "api")
        api = api_best
        col = res.fields["flops"]
        if len(col) != points or any(int(col[i]) != int(values[i]) for i in (0, points // 3, points - 1)):
            raise SystemExit("symcost.sweep disagrees with the lambdified expression")

    # Baseline: FlopCounterMode on meta, the same decoder in PyTorch, at points of the same grid.
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    k = 5 if quick else 20
    rng = random.Random(20)
    sample = [{n: rng.choice(grid[n]) for n in names} for _ in range(k)]
    t0 = time.perf_counter()
    counted = []
    for p in sample:
        m = gpt3.torch_decoder(p["D"], p["T"], 50257, 96, p["L"], device="meta")
        x = torch.zeros(p["T"], dtype=torch.long, device="meta")
        with FlopCounterMode(display=False) as fc:
            m(x)
        counted.append((p, fc.get_total_flops(), sum(q.numel() for q in m.parameters())))
    per_point_torch = (time.perf_counter() - t0) / k
    for p, flops, params in counted:  # FlopCounterMode's FLOPs are 2 × MACs
        s = report.subs(p)
        if flops != 2 * s.macs or params != s.params:
            raise SystemExit(f"torch and symcost disagree at {p}: {flops} vs 2×{s.macs}, {params} vs {s.params}")

    per_point = best / points
    speedup = per_point_torch / per_point
    table.add(f"sweep flops, {points:,} points (lambdify → int64)", fmt_t(best), "FlopCounterMode/meta",
              f"{fmt_t(per_point_torch)}/pt", f"{speedup:,.0f}× per point", "≤ 0.25 s, ≥ 100,000×",
              best <= 0.25 and speedup >= 100_000)
    if api is not None:
        sp = per_point_torch / (api / points)
        table.add(f"sweep via symcost.sweep.sweep, {points:,} points", fmt_t(api), "FlopCounterMode/meta",
                  f"{fmt_t(per_point_torch)}/pt", f"{sp:,.0f}× per point", "≤ 0.25 s, ≥ 100,000×",
                  api <= 0.25 and sp >= 100_000)
    notes.append(f"sweep: grid D = 384·i, T = 64·j, L = k (i, j, k = 1..100), V = 50,257, h = 96; "
                 f"lambdify core best {fmt_t(best)} (CPU {fmt_t(CPU['core'])}), median {fmt_t(med)}"
                 + (f"; symcost.sweep.sweep best {fmt_t(api)} (CPU {fmt_t(CPU['api'])})" if api is not None
                    else "; symcost.sweep not present")
                 + f"; FlopCounterMode on meta: {k} points, {fmt_t(per_point_torch)} a point "
                 f"(FLOPs = 2 × symcost's MACs and parameter counts equal at every one)")


# ---------------------------------------------------------------------------
# start-up and end to end
# ---------------------------------------------------------------------------


def symcost_cmd() -> list[str]:
    exe = shutil.which("symcost")
    return [exe] if exe else [sys.executable, "-m", "symcost.cli"]


def bench_startup(table: Table, notes: list[str], quick: bool) -> None:
    rep = 5 if quick else 9
    py = sys.executable
    base = wall([py, "-c", "import sympy, networkx"], rep)
    imp = wall([py, "-c", "import symcost"], rep)
    table.add("`import symcost` (subprocess)", fmt_t(imp), "import sympy, networkx", fmt_t(base),
              f"{imp / base:.2f}×", "≤ 1.3×", imp <= 1.3 * base)
    lenet = wall(symcost_cmd() + ["cost", "lenet5", "--format", "json"], rep)
    table.add("`symcost cost lenet5 --format json`", fmt_t(lenet), "import sympy, networkx", fmt_t(base),
              f"{lenet / base:.2f}×", "≤ 1 s", lenet <= 1.0)
    gpt3.write_files()
    sets = [f"--set={k}={v}" for k, v in gpt3.GPT3.items() if k != "L"]
    for att, path in [("mha" if gpt3.mha_available() else "primitives", HERE / "gpt3_unrolled.yaml"),
                      ("primitives", HERE / "gpt3_unrolled_primitives.yaml")]:
        if not path.exists():
            continue
        e2e = wall(symcost_cmd() + ["cost", str(path.relative_to(ROOT)), *sets, "--format", "json"], 3 if quick else 5)
        table.add(f"`symcost cost` unrolled GPT-3 YAML ({att}), JSON", fmt_t(e2e), "import sympy, networkx",
                  fmt_t(base), f"{e2e / base:.2f}×", "≤ 1.5 s", e2e <= 1.5)
    notes.append(f"start-up: best of {rep} subprocess runs; the command is {' '.join(symcost_cmd()[-1:])}")


# ---------------------------------------------------------------------------
# refusing hostile input
# ---------------------------------------------------------------------------


def bench_refuse(table: Table, notes: list[str], quick: bool) -> None:
    """Inputs that would run for hours if computed are refused in the time of an ordinary small
    model (the hostile-input tests only guard against a hang)."""
    import contextlib
    import io
    import tempfile

    from symcost.cli import main as cli

    sys.path.insert(0, str(HERE.parent))
    from test_hostile import alias_bomb      # the hostile-input tests' own payload

    def run(*argv) -> int:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            return cli(list(argv))

    rep = 3 if quick else 7
    base, _, code = timed(lambda: run("cost", "mnist_mlp", "--format", "json"), rep)
    assert code == 0
    with tempfile.TemporaryDirectory() as tmp:
        bomb = Path(tmp) / "bomb.yaml"
        defs, ref = alias_bomb(12, 12)                  # 12**11 references if expanded
        bomb.write_text(defs + f"input: {ref}\nlayers: [{{relu: {{}}}}]\n")
        cases = [("billion-laughs YAML", ["cost", str(bomb)]),
                 ("size 9**9**9**9", ["cost", "mnist_mlp", "--set", "Nh=9**9**9**9"]),
                 ("size (a+b+c+d+1)**64", ["cost", "mnist_mlp", "--set", "Nh=(a+b+c+d+1)**64"]),
                 ("--torch sys:exit", ["cost", "--torch", "sys:exit", "--input", "3"])]
        for name, argv in cases:
            best, med, code = timed(lambda: run(*argv), rep)
            assert code == 2, (name, code)
            table.add(f"refuse {name}", fmt_t(best), "cost mnist_mlp", fmt_t(base), f"{best / base:.2f}×",
                      "≤ 1 s", best <= 1.0)
            notes.append(f"refuse {name}: best {fmt_t(best)}, median {fmt_t(med)} (in process, exit 2)")


# ---------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------


def machine() -> str:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import networkx
    import numpy

    try:
        import torch
        tv = torch.__version__
    except ImportError:
        tv = "not installed"
    return (f"{os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else '?'}), "
            f"{cpu}; {platform.system()} {platform.release()}; Python {platform.python_version()}; "
            f"sympy {sympy.__version__}, networkx {networkx.__version__}, numpy {numpy.__version__}, torch {tv}; "
            f"load average {load()}")


def load() -> str:
    """The 1-minute load average: other work on the machine slows every figure alike."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "unknown"


def write_doc(table: Table, notes: list[str], quick: bool, info: str) -> None:
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    block = "\n".join([
        START,
        f"Measured {when} with `python tests/benchmarks/run.py --write-docs{' --quick' if quick else ''}` on: {info} "
        f"(at the end of the run: {load()}).",
        "",
        table.markdown(),
        "",
        *[f"- {n}" for n in notes],
        END,
    ])
    text = DOC.read_text(encoding="utf-8") if DOC.exists() else f"# Performance\n\n{START}\n{END}\n"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        _, tail = rest.split(END, 1)
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOC.write_text(text, encoding="utf-8")
    print(f"wrote {DOC.relative_to(ROOT)}")


ALL = ("derive", "growth", "sweep", "startup", "refuse")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions and torch points")
    ap.add_argument("--write-docs", action="store_true",
                    help="rewrite the results in docs/performance.md (a tracked file: only when asked)")
    ap.add_argument("--no-write", action="store_true", help=argparse.SUPPRESS)  # the old default's opt-out
    ap.add_argument("--only", default=",".join(ALL), help="comma-separated subset")
    args = ap.parse_args(argv)
    only = set(args.only.split(","))
    if args.write_docs and only != set(ALL):
        ap.error("--write-docs records the whole run: leave out --only")
    info = machine()
    print(info)
    table, notes = Table(), []
    if "derive" in only:
        bench_derive(table, notes, args.quick)
    if "growth" in only:
        bench_growth(table, notes, args.quick)
    if "sweep" in only:
        bench_sweep(table, notes, args.quick)
    if "startup" in only:
        bench_startup(table, notes, args.quick)
    if "refuse" in only:
        bench_refuse(table, notes, args.quick)
    if args.write_docs:
        write_doc(table, notes, args.quick, info)
    missed = [r[0] for r in table.rows if not r[6]]
    print("all targets met" if not missed else "missed: " + "; ".join(missed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
