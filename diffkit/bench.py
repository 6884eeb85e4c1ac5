"""``diffkit bench``: diffkit's tape beside a hand-written backprop and the peers, on the same MLPs.

The problems are MLPs ``[h, h, h, 10]`` (tanh, softmax cross-entropy, L2 =
1e-3, batch 64) at P ~ 1e2 .. 1e6 (:func:`diffkit.problems.mlp_for_size`).
For each size, each BLAS thread count and each method the benchmark records
gradient / forward as one paired measurement (:func:`diffkit.studies.timing.paired_ratios`:
the gradient and the method's own forward timed in turn, the ratio per pair,
its median and bootstrap interval), the two times, the ratio's floor, the
ratio to the hand-written backprop, and the peak memory of one gradient call
under tracemalloc.  All the ratios of one thread count are measured in one
round-robin (each round takes a pair of every ratio still measuring), so
every ratio's pairs spread over the whole run, and its interval is a block
bootstrap over the run's start, middle and end: a drift of the machine
during the run is in the stated interval.

Methods: ``handwritten`` (seed 001's matrix-form delta rule,
:func:`diffkit.handwritten.mlp_backprop`, the floor a numpy tape can approach),
``reverse`` (diffkit's tape), the peers ``torch``, ``jax`` (jit; compile time
recorded apart, in ``note``) and ``autograd`` (:mod:`diffkit.peers`), ``central``
finite differences while P x forward time stays under ``fd_budget_s``, and
``symbolic`` while P <= ``symbolic_max_p`` and its build finishes inside
``symbolic_budget_s``.  A method that does not run gets a row with status
``skipped`` (or ``budget``) and the reason.

Measurement conventions:

* BLAS threads are limited with ``threadpoolctl`` (numpy's OpenBLAS, and
  ``torch.set_num_threads``).  JAX's XLA CPU runtime sizes its thread pool
  when it starts and cannot be limited in-process: its rows are marked.
* torch and jax allocate outside Python's allocator, so tracemalloc does not
  see their memory: their ``peak_bytes`` is empty.
* ``keep_memory=True`` (the default) asks glibc (``mallopt``) to keep freed
  memory instead of returning every block above 128 KiB to the kernel.  Without
  it, each fresh large array is page-faulted in again, and on this virtual
  machine that costs more than the arithmetic: the hand-written backprop
  at P = 1e5 measures ~4.5x its forward instead of ~2x.  It applies to every
  method alike; ``keep_memory=False`` measures the system default.

>>> df = run_bench(sizes=(100,), threads=(1,), methods=("handwritten", "reverse"), repeats=7, memory=False)
>>> sorted(df["method"]), int(df["P"].iloc[0])
(['handwritten', 'reverse'], 90)
"""
from __future__ import annotations

import contextlib
import ctypes
import json
import math
import sys
import time
import tracemalloc
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd

from . import problems
from .handwritten import mlp_backprop, mlp_forward
from .methods import METHODS
from .api import gradient, get_method, _load_methods
from .tape.gradient import tape_gradient
from .studies.timing import PairedRatio, Ratio, interleaved, paired_ratios
from .tape import Tape

__all__ = ["run_bench", "format_bench", "print_bench", "METHOD_ORDER", "SIZES"]

SIZES = (100, 1_000, 10_000, 100_000, 1_000_000)
METHOD_ORDER = ("handwritten", "reverse", "torch", "jax", "autograd", "central", "symbolic")
PEER_NAMES = ("torch", "jax", "autograd")
COLUMNS = ["P", "layers", "threads", "method", "status", "forward_ms", "grad_ms", "grad_min_ms", "repeats",
           "grad_over_forward", "ratio_low", "ratio_high", "ratio_width", "floor", "reliable", "vs_handwritten",
           "peak_bytes", "held_bytes", "note"]

# The peer benchmark's MLP family: [h, h, h, 10], tanh, softmax cross-entropy, L2, batch 64
FAMILY = dict(depth=3, n_out=10, activation="tanh", loss="softmax_cross_entropy", l2=1e-3, batch=64, seed=0)

# glibc mallopt parameters (malloc.h): keep freed blocks instead of unmapping them
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_KEEP_BYTES = 1 << 30  # never trim or mmap below 1 GiB: the largest bench array is ~8 MB


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory (see the module docstring); False where that is not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, _KEEP_BYTES // 4) and libc.mallopt(_M_TRIM_THRESHOLD,
                                                                                       _KEEP_BYTES))
    except (OSError, AttributeError):
        return False


@contextlib.contextmanager
def blas_threads(n: int):
    """Limit numpy's BLAS (threadpoolctl, as the studies do) and torch's intra-op pool to ``n`` threads."""
    from .studies.env import blas_threads as limit_blas  # noqa: PLC0415

    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch else None
    if torch:
        torch.set_num_threads(n)
    try:
        with limit_blas(n):
            yield
    finally:
        if torch:
            torch.set_num_threads(before)


BACKPROP = ("handwritten", "reverse", "torch", "jax", "autograd")  # methods whose gradient includes a forward
NUMPY_BACKPROP = ("handwritten", "reverse", "autograd")  # ... on numpy's BLAS, the floor's own products


def _products_after_forward(layers: list[int], batch: int, seed: int = 0) -> Callable[[], None]:
    """The matrix products a backprop does beyond its forward: ``a^T delta`` per layer, ``delta W^T`` per layer
    but the first (random arrays of the real shapes: BLAS time does not depend on the values)."""
    rng = np.random.default_rng(seed)
    a = [rng.standard_normal((batch, n)) for n in layers[:-1]]
    w = [rng.standard_normal((m, n)) for m, n in zip(layers[:-1], layers[1:])]
    d = [rng.standard_normal((batch, n)) for n in layers[1:]]

    def products() -> None:
        for layer in range(len(w)):
            a[layer].T @ d[layer]
            if layer:
                d[layer] @ w[layer].T
    return products


def floor_ratio(prob, forward: Callable[[], Any], budget_s: float = 1.0) -> Ratio:
    """The ratio t(backward products) / t(forward) of :func:`measured_floor`, for a round-robin."""
    products = _products_after_forward(prob.meta["layers"], prob.meta["batch"])
    return Ratio(products, forward, floor=0.0, budget_s=budget_s, blocks=BLOCKS)


def floor_from(r: PairedRatio, layers: list[int]) -> tuple[float, float]:
    """(floor, BLAS share) from the measured :func:`floor_ratio` (see :func:`measured_floor`)."""
    return 1.0 + r.low, min(1.0, r.low / max(matmul_flop_floor(layers) - 1.0, 1e-12))


def measured_floor(prob, forward: Callable[[], Any], *, budget_s: float = 1.0,
                   clock: Callable[[], float] = time.perf_counter) -> tuple[float, float]:
    """(floor, BLAS share) of gradient/forward for a backprop on this MLP, measured on this machine.

    A backprop runs its forward and then at least the products of
    :func:`_products_after_forward`, so gradient/forward >= 1 + t(products) / t(forward); the lower end of
    that ratio's bootstrap interval is used, so the floor errs low.  Where BLAS dominates it approaches
    :func:`matmul_flop_floor`; where Python overhead dominates, 1.  The share is t(products)/t(forward)
    over (F - 1), the forward's time that is matrix products (about; capped at 1).
    """
    r = paired_ratios({0: floor_ratio(prob, forward, budget_s)}, clock=clock)[0]
    return floor_from(r, prob.meta["layers"])


def _held_by_tape(prob) -> int:
    """Bytes the tape holds once the forward is recorded (tracemalloc: what it allocated and still keeps)."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tape = Tape()
        out = prob.fn(tape.leaf(prob.theta0))
        return tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()


def _activation_bytes(prob) -> int:
    """What a hand-written tanh backprop must keep: a_l of every hidden layer (tanh' = 1 - a^2, and a^T delta),
    and the output layer's softmax (or its delta), which y_hat - y needs."""
    layers, batch = prob.meta["layers"], prob.meta["batch"]
    return batch * sum(layers[1:]) * np.dtype(np.float64).itemsize


def matmul_flop_floor(layers: list[int]) -> float:
    """Gradient time over forward time that the matrix products alone impose on an MLP with these layer sizes.

    The forward multiplies ``a W`` per layer; the gradient does that again, plus ``a^T delta`` per layer and
    ``delta W^T`` per layer but the first (the input needs no gradient).  Where BLAS dominates (large P),
    no backprop, hand-written or taped, can go below it.

    >>> round(matmul_flop_floor([700, 700, 700, 10]), 3)  # [h, h, h, 10]: 2 h^2 forward, 5 h^2 for the gradient
    2.504
    """
    products = [a * b for a, b in zip(layers[:-1], layers[1:])]
    forward = sum(products)
    return (2 * forward + sum(products[1:])) / forward


_HELD = {"reverse": _held_by_tape, "handwritten": _activation_bytes}  # the memory table's last columns


def _peak(fn: Callable[[], Any]) -> int:
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        fn()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        if not was_tracing:
            tracemalloc.stop()


def _method_available(name: str) -> str:
    """'' if the method can run here, else why not."""
    get_method_ok = METHODS.get(name)
    if name in ("handwritten", "reverse"):
        return ""
    if get_method_ok is None:
        _load_methods()  # every method module present
        get_method_ok = METHODS.get(name)
    if get_method_ok is None:
        return f"method {name!r} is not in this tree"
    return "" if get_method_ok.available else get_method_ok.hint


class _Case:
    """The callables of one method on one problem: ``forward()``, ``grad()`` and a note."""

    def __init__(self, forward, grad, note="", memory=True):
        self.forward, self.grad, self.note, self.memory = forward, grad, note, memory


def _case(name: str, prob, fwd_s: float, opts: dict) -> _Case | str:
    """Build the case, or return the reason it is skipped."""
    th = prob.theta0
    numpy_forward = lambda: prob.fn(th)  # noqa: E731
    if name == "handwritten":  # against its own forward: the same lean numpy code without the backward
        return _Case(lambda: mlp_forward(prob, th), lambda: mlp_backprop(prob, th))
    if name == "reverse":
        return _Case(numpy_forward, lambda: tape_gradient(prob.fn, th))
    reason = _method_available(name)
    if reason:
        return reason
    if name in PEER_NAMES:
        from .peers import PEERS  # noqa: PLC0415
        peer = PEERS[name]
        start = time.perf_counter()
        grad_fn = peer.prepare(prob.fn)
        grad_fn(th)
        first = time.perf_counter() - start
        forward = peer.forward(prob.fn)
        forward(th)
        note = f"first call (trace+compile) {first:.2f} s" if name == "jax" else ""
        return _Case(lambda: forward(th), lambda: grad_fn(th), note, memory=name == "autograd")
    if name == "central":
        estimate = 2 * prob.size * fwd_s
        if estimate > opts["fd_budget_s"]:
            return (f"2P forward passes would take {estimate:.3g} s, over the {opts['fd_budget_s']:g} s "
                    "finite-difference budget")
        return _Case(numpy_forward, lambda: gradient(prob, method="central"), f"est. {estimate:.2g} s/gradient",
                     memory=False)
    if name == "symbolic":
        if prob.size > opts["symbolic_max_p"]:
            return f"P above the symbolic limit of {opts['symbolic_max_p']} (its expressions swell)"
        from .symbolic import BudgetExceeded, compile_gradient  # noqa: PLC0415
        start = time.perf_counter()
        try:
            compiled = compile_gradient(prob.fn, th, max_seconds=opts["symbolic_budget_s"])
        except BudgetExceeded as err:
            return f"budget: {err}"
        return _Case(numpy_forward, lambda: compiled(th), f"build+compile {time.perf_counter() - start:.2f} s",
                     memory=False)
    return f"unknown bench method {name!r}; valid: {', '.join(METHOD_ORDER)}"


def _forward_times(probs: list) -> dict[int, float]:
    """Median seconds of each problem's numpy forward (7 interleaved samples), by P."""
    samples = interleaved({p.size: (lambda p=p: p.fn(p.theta0)) for p in probs}, 7)
    return {P: float(np.median(v)) for P, v in samples.items()}


def _floor_for(name: str, measured: float) -> float:
    """gradient/forward may not go below this: 1 for all; the measured product floor for numpy backprops."""
    return measured if name in NUMPY_BACKPROP else 1.0


def run_bench(quick: bool = True, threads: Iterable[int] = (1, 2), *, sizes: Iterable[int] | None = None,
              methods: Iterable[str] | None = None, repeats: int | None = None, memory: bool = True,
              keep_memory: bool = True, fd_budget_s: float | None = None, symbolic_max_p: int | None = None,
              symbolic_budget_s: float | None = None, ratio_budget_s: float | None = None,
              progress: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Time every method on the MLP family; one row per (P, threads, method).

    Each gradient/forward is one ratio of a :func:`~diffkit.studies.timing.paired_ratios`
    round-robin over every size and method: the method's gradient and its own
    forward (numpy's for the tape, central and symbolic; mlp_forward for the
    hand-written backprop; the peer's own), interleaved, at least ``repeats``
    pairs, until the bootstrap interval is within +-10 % or ``ratio_budget_s``
    of its own sampling is spent.  A ratio below its floor (1, and for numpy
    backprops the measured product floor, :func:`measured_floor`, measured
    first in a round-robin of its own) is measured again and, if it stays
    below, marked unreliable.

    ``quick`` (the default) keeps ``diffkit bench --quick`` to a few minutes on
    2 cores: 7 pairs at least, 1 s per ratio, central FD only where 2P forwards
    fit in 2 s, symbolic only at P <= 100.  The full run takes 15 pairs, 4 s,
    a 60 s FD budget and symbolic up to P = 1000.  Columns: see ``COLUMNS``;
    ``df.attrs`` holds the settings.  See the module docstring for the conventions.
    """
    repeats = repeats or (7 if quick else 15)
    if repeats < 7:
        raise ValueError(f"repeats must be >= 7 (the median of at least 7 runs); got {repeats}")
    threads = tuple(int(n) for n in threads)
    if not threads or min(threads) < 1:
        raise ValueError(f"threads must list positive thread counts, e.g. (1, 2); got {threads}")
    methods = tuple(methods or METHOD_ORDER)
    unknown = [m for m in methods if m not in METHOD_ORDER]
    if unknown:
        raise ValueError(f"unknown bench method(s) {', '.join(unknown)}; valid: {', '.join(METHOD_ORDER)}")
    opts = {"fd_budget_s": fd_budget_s if fd_budget_s is not None else (2.0 if quick else 60.0),
            "symbolic_max_p": symbolic_max_p if symbolic_max_p is not None else (100 if quick else 1000),
            "symbolic_budget_s": symbolic_budget_s if symbolic_budget_s is not None else (30.0 if quick else 120.0),
            "ratio_budget_s": ratio_budget_s if ratio_budget_s is not None else (1.0 if quick else 4.0)}
    kept = keep_freed_memory() if keep_memory else False
    if "torch" in methods and not _method_available("torch"):
        import torch  # noqa: F401, PLC0415  (now, so that blas_threads sets torch's pool from the first cell)
    say = progress or (lambda msg: None)
    probs = [problems.mlp_for_size(int(target), **FAMILY) for target in sizes or SIZES]
    cases: dict = {}  # (P, method) -> _Case or the reason it does not run: prepared once (jax compiles here)
    rows = []
    for n in threads:
        with blas_threads(n):
            rows += _bench_threads(probs, n, methods, cases, opts, repeats, memory, say)
    order = {P: i for i, P in enumerate(p.size for p in probs)}
    rows.sort(key=lambda r: (order[r["P"]], threads.index(r["threads"]), methods.index(r["method"])))
    df = pd.DataFrame(rows)
    for col in COLUMNS + EXTRA:
        if col not in df:
            df[col] = None
    df = df[COLUMNS + EXTRA]
    df.attrs.update(dict(quick=quick, repeats=repeats, keep_memory=kept, family=FAMILY, **opts))
    return df


EXTRA = ["numpy_forward_ms", "blas_share", "batch"]
BLOCKS = 3  # every ratio's interval: its pairs cut into the run's start, middle and end, resampled as blocks


def _bench_threads(probs: list, n: int, methods: tuple, cases: dict, opts: dict, repeats: int, memory: bool,
                   say: Callable[[str], None]) -> list[dict]:
    """The rows of one BLAS thread count: every (P, method) ratio measured in one round-robin, floors first."""
    fwd_s = _forward_times(probs)
    say(f"threads={n}: floors of P = {', '.join(str(p.size) for p in probs)}")
    floors = paired_ratios({p.size: floor_ratio(p, lambda p=p: p.fn(p.theta0), opts["ratio_budget_s"] / 2)
                            for p in probs})
    floors = {p.size: floor_from(floors[p.size], p.meta["layers"]) for p in probs}
    rows, specs = {}, {}
    for prob in probs:
        for name in methods:
            if (prob.size, name) not in cases:
                say(f"P={prob.size} {name}: preparing")
                cases[(prob.size, name)] = _case(name, prob, fwd_s[prob.size], opts)
            case = cases[(prob.size, name)]
            row = dict(P=prob.size, layers=str(prob.meta["layers"]), threads=n, method=name, batch=prob.meta["batch"])
            if isinstance(case, str):
                rows[(prob.size, name)] = {**row, "status": "budget" if case.startswith("budget") else "skipped",
                                           "note": case}
                continue
            rows[(prob.size, name)] = row
            specs[(prob.size, name)] = Ratio(
                case.grad, case.forward, floor=_floor_for(name, floors[prob.size][0]), blocks=BLOCKS,
                budget_s=opts["fd_budget_s"] if name == "central" else opts["ratio_budget_s"],
                min_pairs=repeats if name != "central" else 2)
    say(f"threads={n}: {len(specs)} ratios, round-robin")
    measured = paired_ratios(specs)
    by_p = {p.size: p for p in probs}
    for (P, name), r in measured.items():
        case, hw = cases[(P, name)], measured.get((P, "handwritten"))
        rows[(P, name)].update(
            _ratio_row(r), vs_handwritten=r.numerator_s / hw.numerator_s if hw else math.nan,
            peak_bytes=_peak(case.grad) if memory and case.memory else None,
            held_bytes=_HELD[name](by_p[P]) if memory and name in _HELD else None,
            note="; ".join(filter(None, [case.note, r.note])), numpy_forward_ms=1e3 * fwd_s[P],
            blas_share=floors[P][1])
    return list(rows.values())


def _ratio_row(r: PairedRatio) -> dict:
    """A bench row's timing columns from one paired measurement; an unreliable ratio is not stored as a number."""
    shown = r.ratio if r.reliable else math.nan
    return {"status": "ok" if r.reliable else "unreliable", "forward_ms": 1e3 * r.denominator_s,
            "grad_ms": 1e3 * r.numerator_s, "grad_min_ms": 1e3 * min(r.numerator_samples), "repeats": r.pairs,
            "grad_over_forward": shown, "ratio_low": r.low if r.reliable else math.nan,
            "ratio_high": r.high if r.reliable else math.nan, "ratio_width": r.width, "floor": r.floor,
            "reliable": r.reliable}


def _fmt_ms(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.3g}" if v < 100 else f"{v:.0f}"


def _table(header: list[str], body: list[list[str]]) -> str:
    """Markdown, numbers right-aligned (every column but the first)."""
    lines = ["| " + " | ".join(header) + " |", "| --- | " + " | ".join("---:" for _ in header[1:]) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines)


METHOD_NAMES = {"handwritten": "hand-written", "reverse": "diffkit tape", "torch": "PyTorch", "jax": "JAX (jit)",
                "autograd": "autograd", "central": "central FD", "symbolic": "symbolic"}


def _ratio_cell(r) -> str:
    """'2.61 (2.55-2.70)'; a cell that did not run shows its status, with a footnote mark."""
    if r.status != "ok":
        return f"{r.status} ‡" if r.status == "unreliable" else r.status
    return f"{r.grad_over_forward:.2f} ({r.ratio_low:.2f}-{r.ratio_high:.2f})"


def format_bench(df: pd.DataFrame) -> str:
    """The benchmark as markdown tables: per thread count, gradient/forward with intervals, times, memory."""
    out = []
    methods = [m for m in METHOD_ORDER if m in set(df["method"])]
    names = [METHOD_NAMES.get(m, m) for m in methods]
    for n, part in df.groupby("threads", sort=True):
        threads = f"{n} BLAS thread{'s' if n > 1 else ''}"
        out.append(f"### {threads}: gradient time / forward time (median of interleaved pairs, 95 % interval)\n")
        body, times = [], []
        for P, rows in part.groupby("P", sort=True):
            by = {r.method: r for r in rows.itertuples()}
            first = rows.iloc[0]
            floor = f"{matmul_flop_floor(json.loads(first['layers'])):.2f}"
            measured = rows.loc[rows["method"].isin(NUMPY_BACKPROP), "floor"].dropna()
            body.append([f"{P:,}"] + [_ratio_cell(by[m]) if m in by else "-" for m in methods]
                        + [f"{measured.iloc[0]:.2f}" if len(measured) else "-", floor])
            times.append([f"{P:,}", _fmt_ms(first["numpy_forward_ms"])]
                         + [_fmt_ms(by[m].grad_ms) if m in by and by[m].status in ("ok", "unreliable")
                            else (by[m].status if m in by else "-") for m in methods])
        out.append(_table(["P"] + names + ["floor (measured)", "floor (matmul flops)"], body))
        out.append("")
        out.append(f"Gradient time, ms ({threads}; median)\n")
        out.append(_table(["P", "forward (numpy)"] + names, times))
        out.append("")
        mem = part[part["peak_bytes"].notna()]
        if len(mem):
            out.append(f"Memory, KiB ({threads}): peak of one gradient (tracemalloc; PyTorch and JAX allocate "
                       f"outside Python and are invisible to it); what the tape holds after the forward against "
                       f"what a hand-written backprop must keep (the hidden activations and the output's softmax)\n")
            shown = [m for m in methods if m in set(mem["method"])]
            mbody = []
            for P, rows in mem.groupby("P", sort=True):
                by = {r.method: r for r in rows.itertuples()}
                hw, tp = by.get("handwritten"), by.get("reverse")
                both = hw is not None and tp is not None
                mbody.append([f"{P:,}"] + [f"{by[m].peak_bytes / 1024:.0f}" if m in by else "-" for m in shown]
                             + [f"{tp.peak_bytes / hw.peak_bytes:.2f}" if both else "-",
                                f"{tp.held_bytes / 1024:.0f}" if both else "-", f"{hw.held_bytes / 1024:.0f}" if both
                                else "-", f"{tp.held_bytes / hw.held_bytes:.2f}" if both else "-"])
            out.append(_table(["P"] + [f"peak, {METHOD_NAMES.get(m, m)}" for m in shown]
                              + ["peak tape / hand-written", "tape holds", "activations", "holds / activations"],
                              mbody))
            out.append("")
    bad = df[df["status"] == "unreliable"]
    if len(bad):
        out.append("‡ unreliable: the ratio stayed below its floor after re-measuring, so the machine's noise, not "
                   "the code, set it; it is not reported. " + "; ".join(
                       f"{METHOD_NAMES.get(r.method, r.method)} at P = {r.P:,}, {r.threads} thread(s): {r.note}"
                       for r in bad.itertuples()))
        out.append("")
    notes = df[(df["note"].fillna("") != "") & (df["status"] != "unreliable")].drop_duplicates(["P", "method", "note"])
    if len(notes):
        out.append("Notes: " + "; ".join(f"{METHOD_NAMES.get(r.method, r.method)} at P = {r.P:,}: {r.note}"
                                         for r in notes.itertuples()))
        out.append("")
    attrs = df.attrs
    if attrs:
        out.append(f"Each ratio: the method's gradient and its own forward timed in turn (forward, gradient, "
                   f"forward, ...), at least {attrs.get('repeats')} pairs, until the bootstrap interval of the "
                   f"median is within +-10 % or {attrs.get('ratio_budget_s'):g} s pass. Floors: no gradient "
                   f"costs less than its forward (1); a numpy backprop also does the backward matrix products, "
                   f"timed here (measured floor), which where BLAS dominates approach the matmul-flop floor. "
                   f"glibc keeps freed memory: {attrs.get('keep_memory')}. JAX's thread pool is fixed when it "
                   f"starts, so its rows are not thread-limited.")
    return "\n".join(out)


def print_bench(df: pd.DataFrame, file=None) -> None:
    """Print :func:`format_bench` (to stdout unless ``file`` is given)."""
    print(format_bench(df), file=file or sys.stdout)
