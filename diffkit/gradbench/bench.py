"""``diffkit bench --gradbench``: every GradBench eval through the tape and the installed peers, side by side.

For each eval and size (the eval's default sizes, or ``quick`` ones), each
method builds the eval's primal and gradient jobs from the *same*
definitions (:mod:`diffkit.gradbench.evals`), runs each once as warm-up (jax
compiles then: recorded apart as ``warmup_*_s``), then takes ``repeats``
samples of both, the methods interleaved round by round in a fresh random
order (:func:`diffkit.studies.timing.interleaved`, the protocol every diffkit
timing follows) so that a slow spell of a shared machine touches them all
alike.  A sample is the fastest of a few bursts of back-to-back calls; the
median of the samples is reported.

Columns: ``primal_s`` (each method's own primal: numpy's for the tape and
autograd, torch's under ``no_grad``, jax's jit), ``gradient_s``,
``gradient_over_primal`` (the median over rounds of the gradient over the *numpy* primal, one
denominator for every method: a compiled primal can be slower than its own
compiled gradient, and a ratio below 1 of a function and its own gradient
would be one physics forbids; except for ``compiled`` and ``numba``, divided by their own
replayed forward: the replay folds what depends on the data alone, which
numpy's primal recomputes every call), ``over_tape`` (the method's gradient time over
the tape's, paired by round likewise: above 1, the tape is faster), ``max_difference`` (GradBench's
``|a - b| / max(1, |a| + |b|)`` between the method's gradient and the
tape's: the suite accepts 1e-4), the warm-ups, and ``status``/``note`` for
a method that could not run (kmeans' Newton direction on a diffkit without
``dk.hvp``) or was stopped by the budget.

The nested evals (particle, saddle) have no primal: each of their four
functions (``ff``, ``fr``, ``rf``, ``rr``, the modes of the outer and the
inner level) is a row of its own, its size suffixed by the function, with
``gradient_s`` the seconds of one whole call (a gradient descent over
gradients) and no ratio to a primal; the methods that cannot nest
derivatives (compiled, numba, the peers) are rows marked unavailable, saying why.  A ``numba`` row
whose program could not be fused (too long for numba to compile in reasonable time, an op the fused
writer does not spell) ran the plain replay, and its note says why.

Conventions: one BLAS thread (threadpoolctl, and torch's pool); the process
is pinned to one CPU while it runs (as GradBench's jax tool pins itself), so
that XLA's own thread pool, which cannot be limited in-process, shares that
one CPU; Python's garbage collector is left as a user has it (on), collections forced only between rounds;
glibc is asked to keep freed memory (:func:`diffkit.bench.keep_freed_memory`, as ``diffkit bench`` does), so
that a large temporary is not page-faulted in again on every call, for every method alike.

>>> df = run_gradbench(evals=("lse",), sizes=[{"n": 100}], methods=("reverse",), repeats=3)
>>> df[["eval", "size", "method", "status"]].values.tolist()
[['lse', 'n=100', 'reverse', 'ok']]
>>> bool(df["gradient_over_primal"].iloc[0] > 1)
True
"""
from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd

from ..studies.timing import interleaved
from .engines import MethodUnavailable, PEER_METHODS, engine_for
from .protocol import EVALS, NESTED, load_eval

__all__ = ["run_gradbench", "format_gradbench", "write_csv", "profile", "BENCH_METHODS", "QUICK_SIZES"]

BENCH_METHODS = ("reverse", "compiled", "numba") + PEER_METHODS
BUDGET_S = 20.0  # a method whose warm-up gradient (compile time aside) takes longer is not sampled at larger sizes
# jax.jit traces a Python loop into one unrolled program: XLA's compile time grows fast with its length (ode at
# n = 1000, s = 100, 2,505 tape nodes, had not compiled after 4 minutes; s = 10, 255 nodes, takes seconds).
JIT_MAX_NODES = 1000
DEFAULT_CSV = Path("reports") / "data" / "gradbench.csv"

# What --quick runs: for each eval, its smallest default size and one or two that the table names.
QUICK_SIZES = {
    "hello": [{"x": 1.0}],
    "lse": [{"n": 2500}, {"n": 1280000}],
    "llsq": [{"n": 16, "m": 128}, {"n": 16392, "m": 128}],
    "det": [{"ell": 5}, {"ell": 11}],
    "ode": [{"n": 1000, "s": 10}, {"n": 1000, "s": 100}, {"n": 100000, "s": 1}],
    "gmm": [{"d": 2, "k": 5, "n": 1000}, {"d": 64, "k": 10, "n": 1000}],
    "kmeans": [{"k": 10, "n": 1000, "d": 8}, {"k": 100, "n": 10000, "d": 16}],
    "lstm": [{"l": 2, "c": 1024}],
    "ba": [{"n": 49, "m": 7776, "p": 31843}],
    "ht": [{"vertices": 544, "points": 100, "complicated": False}, {"vertices": 544, "points": 100, "complicated": True}],
    "particle": [{"w": 0.0}],  # (the evals' one input each: every function a full descent, 10-20 s on the tape)
    "saddle": [{"start": [1.0, 1.0]}],
}

COLUMNS = ["eval", "size", "method", "status", "primal_s", "gradient_s", "gradient_over_primal", "over_tape",
           "max_difference", "warmup_primal_s", "warmup_gradient_s", "compile_s", "samples", "tape_nodes", "note"]


def _function_names(module) -> list[tuple[str, str | None, str]]:
    """(row label, primal, derivative) per row of an eval: the derivative is the function that differentiates;
    a nested eval's functions are a row each, with no primal."""
    names = list(module.FUNCTIONS)
    if module.__name__.rsplit(".", 1)[-1] in NESTED:
        return [(name, None, name) for name in names]
    derivative = next(n for n in names if n in ("gradient", "jacobian", "double", "dir"))
    return [("", next(n for n in names if n != derivative), derivative)]


def _difference(a: Any, b: Any) -> float:
    """GradBench's comparison metric, the worst entry: |a - b| / max(1, |a| + |b|)."""
    a, b = _numbers(a), _numbers(b)
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(a) + np.abs(b)))) if a.size else 0.0


def _numbers(output: Any) -> np.ndarray:
    if isinstance(output, dict):
        return np.concatenate([_numbers(output[k]) for k in sorted(output)]) if output else np.zeros(0)
    if isinstance(output, (list, tuple)):
        return np.concatenate([_numbers(v) for v in output]) if output else np.zeros(0)
    return np.atleast_1d(np.asarray(output, dtype=np.float64)).ravel()


class _Cell:
    """One method on one input: its primal and gradient jobs, warm-ups, samples and the gradient's output.

    A job that cannot be built or fails (kmeans' direction without ``dk.hvp``)
    sets ``status`` and ``note``; the other job is still timed.
    """

    def __init__(self, method: str, module=None, input=None, names: tuple[str | None, str] = ("", "")):
        self.method, self.status, self.note, self.compile_s = method, "ok", "", float("nan")
        self.jobs: dict[str, Any] = {}
        self.samples: dict[str, list[float]] = {"primal": [], "gradient": []}
        self.warmup: dict[str, float] = {}
        self.output = None
        if module is None:
            return
        try:
            engine = engine_for(method)
        except MethodUnavailable as err:
            self.status, self.note = "unavailable", str(err)
            return
        for kind, name in zip(("primal", "gradient"), names):
            if name is None:  # (a nested eval's function: no primal of its own)
                continue
            try:
                job = module.FUNCTIONS[name](input, engine)
                start = time.perf_counter()
                out = job.run()
                self.warmup[kind] = time.perf_counter() - start
            except Exception as err:  # noqa: BLE001  (a method that fails on an eval is a row, not a crash)
                self.status = "unavailable" if isinstance(err, MethodUnavailable) else "error"
                prefix = "" if names[0] is None else f"{name}: "  # (a nested eval's row: its size names it)
                self.note = prefix + (str(err) if self.status == "unavailable" else f"{type(err).__name__}: {err}")
                continue
            self.jobs[kind] = job
            self.compile_s = engine.compile_ns / 1e9
            if engine.notes:
                self.note = "; ".join(sorted(engine.notes))
            if kind == "gradient":
                self.output = job.encode(out)

    def median(self, kind: str) -> float:
        return float(np.median(self.samples[kind])) if self.samples.get(kind) else float("nan")


@contextlib.contextmanager
def _one_cpu():
    """Pin this process to one CPU while the block runs (where the OS allows it)."""
    if not hasattr(os, "sched_getaffinity"):
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def run_gradbench(evals: Iterable[str] | None = None, sizes: str | list | None = "quick",
                  methods: Iterable[str] | None = None, repeats: int = 5,
                  progress: Callable[[str], None] | None = None,
                  on_rows: Callable[[pd.DataFrame], None] | None = None) -> pd.DataFrame:
    """Time every eval (``evals``, default all) at ``sizes`` ("quick", "default", a list of size dicts, or
    a dict of such lists by eval) through ``methods`` (default: the tape and the installed peers); one row per eval, size and method.

    ``on_rows(frame so far)`` is called after each eval (to save partial results).
    """
    from diffkit.bench import blas_threads, keep_freed_memory  # noqa: PLC0415

    keep_freed_memory()
    evals = tuple(EVALS if evals is None else evals)
    methods = tuple(m for m in (BENCH_METHODS if methods is None else methods)
                    if methods is not None or m == "reverse" or _installed(m))
    rows: list[dict] = []
    with blas_threads(1), _one_cpu():
        for name in evals:
            module = load_eval(name)
            chosen = (QUICK_SIZES[name] if sizes == "quick" else None if sizes == "default"
                      else sizes.get(name) if isinstance(sizes, dict) else sizes)
            functions, slow = _function_names(module), {}  # (slow: per function row, over the sizes)
            for description, input in module.inputs(chosen):
                if progress:
                    progress(f"{name} {description}")
                nodes = _tape_nodes(module, input)
                for label, primal, derivative in functions:
                    size = f"{description} {label}" if label else description
                    rows += _measure(name, module, size, input, (primal, derivative), methods, repeats,
                                     slow.setdefault(label, set()), nodes)
            if on_rows:
                on_rows(pd.DataFrame(rows, columns=COLUMNS))
    return pd.DataFrame(rows, columns=COLUMNS)


def _installed(method: str) -> bool:
    try:
        engine_for(method)
    except MethodUnavailable:
        return False
    return True


def _tape_nodes(module, input) -> int:
    """How many nodes the tape records for the eval's objective (its graph's length, as jax.jit would unroll it)."""
    from diffkit.tape.gradient import tape_gradient  # noqa: PLC0415

    problem = module.problem(input)
    try:
        return int(tape_gradient(problem.objective, problem.theta)[2])
    except Exception:  # noqa: BLE001  (an op the tape lacks: the reverse row says so; the count is unknown)
        return -1


def _measure(name, module, description, input, names, methods, repeats, slow: set, nodes: int) -> list[dict]:
    cells = []
    for method in methods:
        if method in slow:
            cell = _Cell(method)
            cell.status, cell.note = "budget", f"its gradient took over {BUDGET_S:.0f} s at a smaller size of {name}"
        elif method == "jax" and nodes > JIT_MAX_NODES:
            cell = _Cell(method)
            cell.status, cell.note = "budget", (f"jax.jit would unroll a {nodes}-node graph (a Python loop); its "
                                                f"compile takes minutes past {JIT_MAX_NODES} nodes")
        else:
            cell = _Cell(method, module, input, names)
            compile_s = cell.compile_s if np.isfinite(cell.compile_s) else 0.0  # (kept apart: not the gradient's)
            if cell.warmup.get("gradient", 0.0) - compile_s > BUDGET_S:
                slow.add(method)
        cells.append(cell)
    samples = interleaved({(i, kind): job.run for i, c in enumerate(cells) for kind, job in c.jobs.items()}, repeats)
    for (i, kind), times in samples.items():
        cells[i].samples[kind] = times
    tape = next((c for c in cells if c.method == "reverse"), None)
    none: list = []
    tape_grad, numpy_primal = (tape.samples["gradient"], tape.samples["primal"]) if tape else (none, none)
    rows = []
    for cell in cells:
        primal, grad = cell.median("primal"), cell.median("gradient")
        own = cell.method in ("compiled", "numba") and np.isfinite(primal)  # (a replay: over its own forward)
        ratio = _paired(cell.samples["gradient"], cell.samples["primal"] if own else numpy_primal)
        status, note = cell.status, cell.note
        if status == "ok" and cell.method not in PEER_METHODS and ratio < 1:  # its own function's forward: a floor
            status, note = "unreliable", (f"gradient / primal measured {ratio:.2f} < 1, below the floor of a "
                                          "gradient that runs its own forward: a timing fault, not a result")
        rows.append({"eval": name, "size": description, "method": cell.method, "status": status,
                     "note": note, "primal_s": primal, "gradient_s": grad,
                     "gradient_over_primal": ratio, "over_tape": _paired(cell.samples["gradient"], tape_grad),
                     "warmup_primal_s": cell.warmup.get("primal", float("nan")),
                     "warmup_gradient_s": cell.warmup.get("gradient", float("nan")), "compile_s": cell.compile_s,
                     "samples": repeats if cell.jobs else 0, "tape_nodes": nodes,
                     "max_difference": _difference(cell.output, tape.output)
                     if tape is not None and tape.output is not None and cell.output is not None else float("nan")})
    return rows


def _paired(numerator: list, denominator: list) -> float:
    """The median over rounds of numerator / denominator, each pair taken in the same round (NaN without both)."""
    if not numerator or len(numerator) != len(denominator):
        return float("nan")
    return float(np.median(np.asarray(numerator) / np.asarray(denominator)))


def format_gradbench(df: pd.DataFrame) -> str:
    """The table as text: per eval and size, gradient/primal of each method and each peer's time over the tape's."""
    lines = [f"{'eval':<8} {'size':<22} {'method':<9} {'primal':>10} {'gradient':>10} {'grad/numpy':>11} "
             f"{'/tape':>7} {'diff':>8}  note"]
    for row in df.itertuples():
        note = f"warm-up {_seconds(row.warmup_gradient_s)}" if row.status == "ok" else f"{row.status}: {row.note}"
        shown = row.status == "ok" and np.isfinite(row.gradient_over_primal)  # (never a fault; none: no primal)
        ratio = f"{row.gradient_over_primal:>11.2f}" if shown else f"{'-':>11}"
        lines.append(f"{row.eval:<8} {row.size:<22} {row.method:<9} {_seconds(row.primal_s):>10} "
                     f"{_seconds(row.gradient_s):>10} {ratio} {row.over_tape:>7.2f} "
                     f"{row.max_difference:>8.1e}  {note[:100]}")
    return "\n".join(lines)


def _seconds(s: float) -> str:
    if not np.isfinite(s):
        return "-"
    return f"{s * 1e3:.3g} ms" if s < 1 else f"{s:.3g} s"


def write_csv(df: pd.DataFrame, path) -> Path:
    """Write ``df`` to ``path`` whole or not at all (a temporary file, then a rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    df.to_csv(partial, index=False)
    partial.replace(path)
    return path


def profile(name: str, size: dict, method: str = "reverse", top: int = 12) -> str:
    """cProfile of one gradient call of eval ``name`` at ``size``: the ``top`` functions by own time."""
    import cProfile  # noqa: PLC0415
    import io  # noqa: PLC0415
    import pstats  # noqa: PLC0415

    module = load_eval(name)
    _, input = next(module.inputs([size]))
    job = module.FUNCTIONS[_function_names(module)[0][2]](input, engine_for(method))
    job.run()
    profiler = cProfile.Profile()
    profiler.runcall(job.run)
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


def command(args) -> int:
    """``diffkit bench --gradbench [--quick] [--evals ...] [--methods ...] [--repeats N] [--csv FILE]``."""
    import sys  # noqa: PLC0415

    from diffkit.commands import UsageError  # noqa: PLC0415

    evals = _choices(args.evals, EVALS, "--evals")
    methods = _choices(args.methods, BENCH_METHODS, "--methods")
    repeats = 5 if args.repeats is None else args.repeats
    if repeats < 3:
        raise UsageError(f"--repeats must be >= 3 with --gradbench (a median of at least 3 samples); got {repeats}")
    path = Path(args.csv) if args.csv else DEFAULT_CSV
    df = run_gradbench(evals, "quick" if args.quick else "default", methods, repeats,
                       progress=lambda msg: print(f"  {msg}", file=sys.stderr, flush=True),
                       on_rows=lambda partial: write_csv(partial, path))  # each finished eval is kept
    print(format_gradbench(df))
    write_csv(df, path)
    print(f"wrote {path} ({len(df)} rows)")
    return 0


def _choices(text: str | None, valid: tuple, option: str) -> tuple | None:
    from diffkit.commands import UsageError  # noqa: PLC0415

    if text is None:
        return None
    values = [text] if isinstance(text, str) else list(text)  # (--methods may be repeated: a list)
    chosen = tuple(v.strip() for value in values for v in str(value).split(",") if v.strip())
    bad = [v for v in chosen if v not in valid]
    if bad or not chosen:
        raise UsageError(f"{option}: unknown {', '.join(bad) or '(none given)'}; valid with --gradbench: "
                         f"{', '.join(valid)}")
    return chosen
