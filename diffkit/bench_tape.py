"""``diffkit bench --tape``: the *user-written* MLP through the public API, beside hand-written backprop and the peers.

The function is what a user writes (:func:`user_mlp`): ``[h, h, h, 10]``,
tanh, softmax cross-entropy spelled ``max``/``exp``/``sum``/``log``, L2 as
``sum(W * W)``, batch 64, plain code against ``xp = dk.namespace(theta)``.
It is timed through ``dk.gradient`` (eager tape) and ``dk.compile`` (replay),
the fused problem (:func:`diffkit.problems.mlp`) through ``dk.gradient``, and
the same user function under JAX-jit, PyTorch and HIPS autograd, beside
:func:`diffkit.handwritten.mlp_backprop`, with one BLAS thread.

Protocol (:mod:`diffkit.studies.timing`, as every diffkit timing): one
*round* takes a sample of every method at every P (the fastest of a few
bursts of back-to-back calls), in a fresh random order each round, forward
and gradient alike, so every size's samples spread over the whole run;
ratios are formed inside a round (paired, so a slow spell of the shared
machine hits both sides) and summarised as the median over rounds with a
95 % bootstrap interval over the run's start, middle and end (what drifted
during the run is in the interval).  The garbage collector stays on, as a
user has it.

>>> rows = run(sizes=(100,), rounds=3, peers=(), memory=False)
>>> rows[0]["P"], {"compiled", "eager", "handwritten"} <= set(rows[0]["ms"])
(90, True)
"""
from __future__ import annotations

import gc
import time
import tracemalloc
from typing import Callable

import numpy as np

from . import problems
from .handwritten import mlp_backprop, mlp_forward
from .api import gradient
from .tape.compiled import compile as dk_compile
from .studies.timing import block_bootstrap, blocks_of, interleaved

__all__ = ["user_mlp", "run", "format_rows"]

FAMILY = dict(depth=3, n_out=10, activation="tanh", loss="softmax_cross_entropy", l2=1e-3, batch=64, seed=0)
SIZES = (100, 1_000, 10_000, 100_000, 1_000_000)
BLOCKS = 3  # a ratio's interval: the rounds cut into start, middle and end, resampled as blocks


def user_mlp(prob: problems.Problem) -> Callable:
    """The MLP of ``prob`` as a user writes it: composed ops only, nothing fused."""
    from .dispatch import namespace

    X, Y = prob.data["X"], prob.data["Y"]
    l2, m = prob.meta["l2"], prob.meta["batch"]
    weights = [b for b in prob.blocks if b.name[0] == "W"]
    biases = [b for b in prob.blocks if b.name[0] == "b"]

    def f(theta):
        xp = namespace(theta)
        a, reg = X, 0.0
        for l, (wb, bb) in enumerate(zip(weights, biases)):
            W = xp.reshape(theta[wb.start:wb.stop], wb.shape)
            z = a @ W + theta[bb.start:bb.stop]
            a = xp.tanh(z) if l < len(weights) - 1 else z
            reg = reg + xp.sum(W * W)
        s = a - xp.max(a, axis=1, keepdims=True)
        log_p = s - xp.log(xp.sum(xp.exp(s), axis=1, keepdims=True))
        return -xp.sum(Y * log_p) / m + (l2 / (2 * m)) * reg
    return f


def _ratio(samples: dict, a: str, b: str, process: dict | None = None) -> tuple | None:
    """Median over rounds of a/b (paired), and its 95 % bootstrap interval over the run's start, middle and end,
    or, where ``process`` labels each case's samples with the process that took them, over the processes
    (paired within each process that measured both)."""
    if a not in samples or b not in samples:
        return None
    if process is None:
        r = np.array(samples[a]) / np.array(samples[b])
        return block_bootstrap(r, blocks_of(r.size, BLOCKS))
    ratios, labels = [], []
    for k in sorted(set(process[a]) & set(process[b])):
        top = [v for v, q in zip(samples[a], process[a]) if q == k]
        bottom = [v for v, q in zip(samples[b], process[b]) if q == k]
        ratios += [x / y for x, y in zip(top, bottom, strict=True)]
        labels += [k] * len(top)
    return block_bootstrap(np.array(ratios), labels) if ratios else None


def _peak(fn: Callable) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        fn()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def _held_after_forward(f: Callable, theta: np.ndarray) -> int:
    """Bytes the tape keeps once ``f`` is recorded (what the sweep will read)."""
    from .tape import Tape

    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tape = Tape()
        out = f(tape.leaf(theta))
        return tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()


def _peer_cases(names: tuple, f: Callable, th: np.ndarray, notes: dict) -> dict:
    from .peers import PEERS
    cases = {}
    for name in names:
        peer = PEERS.get(name)
        if peer is None or not peer.available:
            notes[name] = "not installed"
            continue
        start = time.perf_counter()
        grad_fn = peer.prepare(f)
        grad_fn(th)
        notes[name] = f"first call {time.perf_counter() - start:.2f} s" if name == "jax" else ""
        cases[name] = lambda g=grad_fn: g(th)
    return cases


def run(sizes: tuple = (1_000, 10_000, 100_000), rounds: int = 15, peers: tuple = ("jax", "torch", "autograd"),
        memory: bool = True, progress: Callable[[str], None] | None = None, processes: int = 1) -> list[dict]:
    """One row per P: per-method median ms, paired ratios with intervals, memory, compile seconds.

    Every (P, method) is one case of one :func:`~diffkit.studies.timing.interleaved` run of ``rounds`` rounds.
    With ``processes > 1`` that run is repeated in as many fresh Python processes and the rounds are pooled:
    a process's memory layout moves a ratio by a few percent, more than one run's interval shows, so each
    process is then a block of the bootstrap (the interval spans the processes' spread).
    """
    if processes < 1:
        raise ValueError(f"processes must be >= 1; got {processes}")
    if processes == 1:
        rows, samples = _measure(sizes, rounds, peers, progress)
        process = None
    else:
        rows, samples, process = _in_processes(sizes, rounds, peers, processes, progress)
    for row in rows:
        mine = {name: v for (P, name), v in samples.items() if P == row["P"]}
        by = None if process is None else {name: v for (P, name), v in process.items() if P == row["P"]}
        row["ms"] = {k: float(np.median(v)) * 1e3 for k, v in mine.items()}
        row["ratios"] = {k: _ratio(mine, a, b, by) for k, (a, b) in PAIRS.items()}
        row["processes"] = processes
        for name, labels in (by or {}).items():  # (a peer that one process could not load, say)
            if len(set(labels)) < processes:
                note = row["notes"].get(name, "")
                row["notes"][name] = f"{note}{'; ' if note else ''}measured in {len(set(labels))} of {processes} processes"
        prepared = row.pop("_memory", None)
        if memory:
            row["memory"] = _memory(prepared or _prepared_for_memory(row["P"]))
    return rows


def _measure(sizes: tuple, rounds: int, peers: tuple, progress) -> tuple[list[dict], dict]:
    """This process's rows (their compile times and notes) and the samples of every (P, method)."""
    from .bench import blas_threads, keep_freed_memory

    keep_freed_memory()
    rows, cases = [], {}
    with blas_threads(1):
        for target in sizes:
            prob = problems.mlp_for_size(target, **FAMILY)
            rows.append(_prepare(prob, peers, cases))
        if progress:
            progress(f"P = {', '.join(str(r['P']) for r in rows)}: {len(cases)} cases x {rounds} rounds")
        samples = interleaved(cases, rounds)
    return rows, samples


def _in_processes(sizes: tuple, rounds: int, peers: tuple, processes: int, progress) -> tuple:
    """:func:`_measure` in ``processes`` fresh interpreters, one after another, its samples pooled (JSON)."""
    import json
    import subprocess
    import sys

    pooled: dict = {}
    process: dict = {}  # (P, method) -> the process of each of its samples
    rows: list = []
    failed: list = []  # (a process that fails loses its own rounds only: the others' are kept)
    for k in range(processes):
        if progress:
            progress(f"process {k + 1} of {processes}")
        config = json.dumps({"sizes": list(sizes), "rounds": rounds, "peers": list(peers)})
        done = subprocess.run([sys.executable, "-m", "diffkit.bench_tape", "--child"], input=config,
                              capture_output=True, text=True)
        if done.returncode != 0:
            failed.append(f"process {k + 1} failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}")
            if progress:
                progress(failed[-1])
            continue
        answer = json.loads(done.stdout)
        if not rows:
            rows = answer["rows"]  # (compile times and notes: the first process's that ran)
        else:  # a note another process wrote otherwise (dk.compile timed the fused replay slower there)
            _merge_notes(rows, answer["rows"], k + 1)
        for P, name, values in answer["samples"]:
            pooled.setdefault((P, name), []).extend(values)
            process.setdefault((P, name), []).extend([k] * len(values))
    if not rows:
        raise RuntimeError(f"every bench process failed; the first: {failed[0]}")
    for row in rows:
        if failed:
            row["notes"]["processes"] = f"{len(failed)} of {processes} failed; " + "; ".join(failed)[:300]
    return rows, pooled, process


def _merge_notes(rows: list, theirs: list, process: int) -> None:
    """Add to ``rows``' notes each note of a later process's rows that says something else, naming the process
    (not one that differs in its numbers alone: each process compiles in its own seconds)."""
    for row, other in zip(rows, theirs):
        for name, note in other["notes"].items():
            mine = row["notes"].get(name, "")
            said = {_wording(part.split(": ", 1)[-1] if part.startswith("process ") else part)
                    for part in mine.split("; ")}
            if note and _wording(note) not in said:
                row["notes"][name] = f"{mine}{'; ' if mine else ''}process {process}: {note}"


def _wording(note: str) -> str:
    """A note without its numbers."""
    import re
    return re.sub(r"\d+(\.\d+)?", "#", note)


def _child() -> None:
    """``python -m diffkit.bench_tape --child``: :func:`_measure` with the JSON config on stdin, JSON out."""
    import json
    import sys

    config = json.loads(sys.stdin.read())
    rows, samples = _measure(tuple(config["sizes"]), config["rounds"], tuple(config["peers"]),
                             lambda msg: print(f"    {msg}", file=sys.stderr, flush=True))
    for row in rows:
        row.pop("_memory")
    json.dump({"rows": rows, "samples": [[P, name, list(v)] for (P, name), v in samples.items()]}, sys.stdout)


def _prepared_for_memory(P: int) -> tuple:
    """What :func:`_memory` measures, each run once first: a first call's one-off allocations (caches) are not
    what a call holds, and the timing processes made them elsewhere."""
    prob = problems.mlp_for_size(P, **FAMILY)
    f, th = user_mlp(prob), prob.theta0
    compiled = dk_compile(f, th)
    gradient(f, th), compiled(th), mlp_backprop(prob, th)
    return prob, f, th, compiled


PAIRS = {"eager/hand": ("eager", "handwritten"), "fused/hand": ("fused", "handwritten"),
         "compiled/hand": ("compiled", "handwritten"), "compiled/jax": ("compiled", "jax"),
         "numba/hand": ("numba", "handwritten"), "numba/jax": ("numba", "jax"),
         "eager/torch": ("eager", "torch"), "autograd/eager": ("autograd", "eager"),
         "hand/forward": ("handwritten", "forward")}


def _prepare(prob, peers: tuple, cases: dict) -> dict:
    """Add the cases of one problem to ``cases`` ((P, method) -> callable); its row so far."""
    f, th = user_mlp(prob), prob.theta0
    start = time.perf_counter()
    compiled = dk_compile(f, th)
    compile_s = time.perf_counter() - start
    notes: dict = {}
    mine = {"forward": lambda: f(th), "hand_forward": lambda: mlp_forward(prob, th),
            "handwritten": lambda: mlp_backprop(prob, th), "eager": lambda: gradient(f, th),
            "fused": lambda: gradient(prob, th), "compiled": lambda: compiled(th)}
    from .tape.fused import available
    if available():  # the fused replay: the same recording as one numba-compiled function
        start = time.perf_counter()
        fused = dk_compile(f, th, fuse=True)
        notes["numba"] = f"compiled in {time.perf_counter() - start:.1f} s" if fused.fused else \
            f"not fused: {fused.fuse_reason}"
        if fused.fused:
            mine["numba"] = lambda: fused(th)
    else:
        notes["numba"] = "not installed (the 'fast' extra)"
    mine.update(_peer_cases(peers, f, th, notes))
    cases.update({(prob.size, name): fn for name, fn in mine.items()})
    return {"P": prob.size, "layers": prob.meta["layers"], "compile_s": compile_s, "notes": notes,
            "rerecords": len(compiled.reasons), "_memory": (prob, f, th, compiled)}


def _memory(prepared) -> dict:
    prob, f, th, compiled = prepared
    out = {"hand_peak": _peak(lambda: mlp_backprop(prob, th)), "eager_peak": _peak(lambda: gradient(f, th)),
           "compiled_peak": _peak(lambda: compiled(th)), "tape_held": _held_after_forward(f, th)}
    out["hand_keeps"] = prob.meta["batch"] * sum(prob.meta["layers"][1:]) * 8
    return out


def _fmt_ratio(r: tuple | None) -> str:
    return "-" if r is None else f"{r[0]:.2f} [{r[1]:.2f}, {r[2]:.2f}]"


def format_rows(rows: list[dict]) -> str:
    """The table: median ms per method, then paired ratios (median over rounds, bootstrap 95% interval)."""
    methods = ["forward", "handwritten", "eager", "fused", "compiled", "numba", "jax", "torch", "autograd"]
    lines = ["user-written MLP [h,h,h,10] (tanh, max/exp/sum/log cross-entropy, sum(W*W) L2, batch 64), "
             "1 BLAS thread; medians of interleaved rounds (every P and method in each round)" +
             (f", pooled over {rows[0]['processes']} processes (the intervals resample processes)"
              if rows and rows[0].get("processes", 1) > 1 else ""),
             "| P | " + " | ".join(f"{m} ms" for m in methods) + " |", "|" + " --- |" * (len(methods) + 1)]
    for row in rows:
        lines.append(f"| {row['P']:,} | " + " | ".join(f"{row['ms'][m]:.3f}" if m in row["ms"] else "-"
                                                       for m in methods) + " |")
    keys = list(rows[0]["ratios"]) if rows else []
    lines += ["", "| P | " + " | ".join(keys) + " |", "|" + " --- |" * (len(keys) + 1)]
    for row in rows:
        lines.append(f"| {row['P']:,} | " + " | ".join(_fmt_ratio(row["ratios"][k]) for k in keys) + " |")
    if rows and "memory" in rows[0]:
        lines += ["", "| P | hand-written keeps (activations) | tape holds | peak: hand | eager | compiled |",
                  "|" + " --- |" * 6]
        for row in rows:
            m = row["memory"]
            lines.append(f"| {row['P']:,} | {m['hand_keeps'] / 1e3:.0f} kB | {m['tape_held'] / 1e3:.0f} kB "
                         f"({m['tape_held'] / m['hand_keeps']:.2f}x) | {m['hand_peak'] / 1e3:.0f} kB | "
                         f"{m['eager_peak'] / 1e3:.0f} kB | {m['compiled_peak'] / 1e3:.0f} kB |")
    lines.append("")
    for row in rows:
        notes = "; ".join(f"{k}: {v}" for k, v in row["notes"].items() if v)
        lines.append(f"P={row['P']:,}: dk.compile {row['compile_s'] * 1e3:.1f} ms (recorded apart), "
                     f"re-recordings {row['rerecords']}; {notes}")
    return "\n".join(lines)


def main(sizes: tuple | None = None, rounds: int = 15, peers: tuple = ("jax", "torch", "autograd"),
         memory: bool = True, processes: int = 1) -> str:
    import sys
    rows = run(sizes or (1_000, 10_000, 100_000), rounds, peers, memory,
               progress=lambda msg: print(f"  {msg}", file=sys.stderr, flush=True), processes=processes)
    text = format_rows(rows)
    print(text)
    return text


if __name__ == "__main__":  # pragma: no cover
    import sys as _sys
    _child() if _sys.argv[1:] == ["--child"] else main()
