"""``diffkit bench``: the table's structure on tiny quick runs (no timing assertions)."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

import diffkit as dk
from diffkit import bench
from diffkit.cli import main
from diffkit.methods import METHODS, Method
from diffkit.problems import mlp_size


@pytest.fixture(scope="module")
def tiny():
    return bench.run_bench(sizes=(100, 1000), threads=(1,), methods=("handwritten", "reverse", "central"),
                           repeats=7, fd_budget_s=0.05)


def test_one_row_per_size_thread_and_method_with_the_documented_columns(tiny):
    assert list(tiny.columns) == bench.COLUMNS + bench.EXTRA
    assert len(tiny) == 2 * 1 * 3
    assert set(tiny["method"]) == {"handwritten", "reverse", "central"}
    # P is the size of the [h, h, h, 10] MLP closest to the target: 90 = 4*4+4 + 4*4+4 + 4*10+10
    assert sorted(set(tiny["P"])) == [90, 960] == [mlp_size([4, 4, 4, 10]), mlp_size([19, 19, 19, 10])]
    assert tiny.attrs["repeats"] == 7


def test_ok_rows_have_times_ratios_with_intervals_and_tape_memory(tiny):
    measured = tiny[tiny["status"].isin(["ok", "unreliable"])]
    assert (measured["grad_ms"] > 0).all() and (measured["forward_ms"] > 0).all()
    assert (measured["repeats"] >= 2).all()
    ok = tiny[tiny["status"] == "ok"]
    # a printed ratio is never below its floor, and its interval holds it
    assert (ok["grad_over_forward"] >= ok["floor"]).all() and (ok["floor"] >= 1).all()
    assert ((ok["ratio_low"] <= ok["grad_over_forward"]) & (ok["grad_over_forward"] <= ok["ratio_high"])).all()
    unreliable = tiny[tiny["status"] == "unreliable"]
    assert unreliable["grad_over_forward"].isna().all() and (unreliable["note"].str.contains("floor")).all()
    hw = measured[measured["method"] == "handwritten"]
    assert (hw["vs_handwritten"] == 1.0).all()  # its own time over itself
    tape = measured[measured["method"] == "reverse"].iloc[0]
    assert tape["vs_handwritten"] == pytest.approx(tape["grad_ms"] / hw.iloc[0]["grad_ms"])
    assert tape["peak_bytes"] > 0 and tape["held_bytes"] > 0
    # what a hand-written tanh backprop keeps at P = 90: two hidden layers of 4 and the softmax of the 10 outputs,
    # batch 64, 8 bytes each
    assert hw.set_index("P").loc[90, "held_bytes"] == 64 * (4 + 4 + 10) * 8


def test_central_is_skipped_past_its_budget_and_says_why(monkeypatch):
    # the forward's time injected (0.1 ms), so the decision is the budget's arithmetic, not the machine's speed:
    # 2 * 90 * 0.1 ms = 0.018 s fits in 0.05 s, 2 * 960 * 0.1 ms = 0.192 s does not
    monkeypatch.setattr(bench, "_forward_times", lambda probs: {p.size: 1e-4 for p in probs})
    df = bench.run_bench(sizes=(100, 1000), threads=(1,), methods=("handwritten", "central"), repeats=7,
                         fd_budget_s=0.05, memory=False)
    central = df[df["method"] == "central"].set_index("P")
    assert central.loc[90, "status"] not in ("skipped", "budget")
    assert central.loc[960, "status"] == "skipped"
    assert central.loc[960, "note"] == "2P forward passes would take 0.192 s, over the 0.05 s finite-difference budget"


def test_unavailable_peer_gets_a_skipped_row_with_the_install_hint(monkeypatch):
    hint = "pip install 'diffkit[peers]'"
    monkeypatch.setitem(METHODS, "torch", Method("torch", "peer", "stand-in", None, available=False, hint=hint))
    df = bench.run_bench(sizes=(100,), threads=(1,), methods=("handwritten", "torch"), repeats=7, memory=False)
    row = df[df["method"] == "torch"].iloc[0]
    assert row["status"] == "skipped" and row["note"] == hint and math.isnan(row["grad_ms"])


def test_format_has_ratio_time_and_memory_tables_in_words(tiny):
    text = bench.format_bench(tiny)
    assert "| P | hand-written | diffkit tape | central FD | floor (measured) | floor (matmul flops) |" in text
    assert "| P | forward (numpy) | hand-written | diffkit tape | central FD |" in text
    assert "peak tape / hand-written" in text and "holds / activations" in text
    assert "| 960 |" in text and "| ---: |" in text  # numbers right-aligned
    assert "issue" not in text.lower()  # no internal names in what users read


def test_measured_floor_of_a_backprop_by_injected_clock():
    # products after the forward cost 1.5 forward: the floor is 2.5; share 1.5 / (F - 1)
    prob = dk.problems.mlp_for_size(100, **bench.FAMILY)
    now = [0.0]

    def forward():
        now[0] += 1.0
    real = bench._products_after_forward
    try:
        bench._products_after_forward = lambda layers, batch: (lambda: now.__setitem__(0, now[0] + 1.5))
        floor, share = bench.measured_floor(prob, forward, clock=lambda: now[0], budget_s=1e6)
    finally:
        bench._products_after_forward = real
    assert floor == 2.5
    assert share == pytest.approx(min(1.0, 1.5 / (bench.matmul_flop_floor(prob.meta["layers"]) - 1)))


def test_matmul_flop_floor_counts_by_hand():
    # [3, 5, 2]: forward 3*5 + 5*2 = 25 multiply-adds per row; the gradient repeats them, adds a^T delta for both
    # layers (25) and delta W^T for the second only (10): 60 / 25
    assert bench.matmul_flop_floor([3, 5, 2]) == pytest.approx(60 / 25)
    assert bench.matmul_flop_floor([4, 9]) == pytest.approx(2.0)  # one layer: no input gradient at all


def test_bad_arguments_are_refused_with_the_valid_choices():
    with pytest.raises(ValueError, match="repeats must be >= 7"):
        bench.run_bench(sizes=(100,), repeats=3)
    with pytest.raises(ValueError, match="unknown bench method.*valid: handwritten"):
        bench.run_bench(sizes=(100,), methods=("tape",))
    with pytest.raises(ValueError, match="threads must list positive"):
        bench.run_bench(sizes=(100,), threads=(0,))


def test_cli_prints_the_table_and_writes_csv(tmp_path, capsys):
    out = tmp_path / "bench.csv"
    code = main(["bench", "--quick", "--sizes", "100", "--threads", "1", "--methods", "handwritten,reverse",
                 "--csv", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| P | forward (numpy) | hand-written | diffkit tape |" in printed
    df = pd.read_csv(out)
    assert list(df["method"]) == ["handwritten", "reverse"] and list(df["P"]) == [90, 90]


@pytest.mark.parametrize("argv, message", [
    (["bench", "--threads", "0"], "--threads must list positive integers"),
    (["bench", "--methods", "tape"], "--methods: unknown tape"),
    (["bench", "--repeats", "3"], "--repeats must be >= 7"),
    (["bench", "--tape", "--processes", "0"], "--processes must be a positive integer"),
    (["bench", "--processes", "2"], "--processes pools runs of --tape"),
])
def test_cli_usage_errors_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


# --- the tape's speed-ups (issue 8) keep its results --------------------------------------------------------

X = np.random.default_rng(1).standard_normal((3, 4))


def _fan_out(t):  # one value feeding many uses: contributions accumulate in place into a buffer the sweep made
    xp = dk.namespace(t)
    a = xp.reshape(t, (3, 4))
    b = a + a
    c = b * a
    d = c + b
    return xp.sum(xp.tanh(d) * a * xp.tanh(d) * a) + xp.sum(d)


def _shared_slices(t):  # the same slice taken twice, reductions broadcast back, a matmul with a constant
    xp = dk.namespace(t)
    a = xp.reshape(t, (3, 4))
    u, v = a[0], a[0]
    m = a * xp.sum(a, axis=0)
    return xp.sum(u * v) + xp.sum(a[1:] * u) + xp.sum((m.T @ X) ** 2) + xp.sum(xp.concatenate([u, v, u]))


def _long_chain(t):  # a scalar chain with fan-out at every step
    xp = dk.namespace(t)
    s = t[0]
    acc = s
    for k in range(1, 12):
        acc = acc * t[k] + s
    return acc + xp.sum(t * t)


@pytest.mark.parametrize("f", [_fan_out, _shared_slices, _long_chain], ids=lambda f: f.__name__)
def test_lean_tape_agrees_with_the_certified_reference_on_fan_out_graphs(f):
    theta = 0.5 * np.random.default_rng(2).standard_normal(12)
    ref = dk.reference(f, theta, digits=30)  # certified by high-precision central differences, no rule reused
    e = dk.error(dk.gradient(f, theta), ref)
    assert e.digits >= 14, e


# --- diffkit bench --tape pooled over processes -------------------------------------------------------------

def test_tape_ratio_interval_spans_the_processes_when_they_are_the_blocks():
    from diffkit.bench_tape import _ratio
    # one process measured every round at 1.0, the other at 2.0: pooled, the median lies between, and the
    # interval resamples processes, so it reaches both (a bootstrap over thirds of one run would not see it)
    samples = {"eager": [1.0] * 6 + [2.0] * 6, "handwritten": [1.0] * 12}
    process = {"eager": [0] * 6 + [1] * 6, "handwritten": [0] * 6 + [1] * 6}
    median, low, high = _ratio(samples, "eager", "handwritten", process)
    assert (low, high) == (1.0, 2.0) and 1.0 <= median <= 2.0
    # a case one process lacks (a peer it could not load): paired only within the processes that have both
    samples["jax"], process["jax"] = [4.0] * 6, [1] * 6
    assert _ratio(samples, "eager", "jax", process) == (0.5, 0.5, 0.5)
    assert _ratio({"eager": [3.0] * 7, "handwritten": [1.5] * 7}, "eager", "handwritten") == (2.0, 2.0, 2.0)
    assert _ratio({"eager": [1.0] * 7}, "eager", "jax") is None  # a peer not installed: no ratio


@pytest.mark.slow
def test_tape_bench_pools_rounds_from_fresh_processes():
    from diffkit.bench_tape import run
    rows = run(sizes=(100,), rounds=3, peers=(), memory=False, processes=2)
    (row,) = rows
    assert row["P"] == 90 and row["processes"] == 2
    median, low, high = row["ratios"]["eager/hand"]
    assert 1.0 < low <= median <= high < 20.0  # the tape does more than backprop by hand, and not absurdly more
    assert row["ratios"]["compiled/jax"] is None


def test_a_failed_bench_process_loses_its_own_rounds_only(monkeypatch):
    import subprocess
    from diffkit import bench_tape

    calls = []
    samples = [[90, "eager", [2.0] * 7], [90, "handwritten", [1.0] * 7]]

    def answer(numba_note):
        return json.dumps({"rows": [{"P": 90, "layers": [], "compile_s": 0.0, "notes": {"numba": numba_note},
                                     "rerecords": 0}], "samples": samples})

    def fake_run(argv, **kwargs):  # the second process dies; the first and third answer, with other notes
        calls.append(argv)
        failed = len(calls) == 2
        note = "compiled in 5.0 s" if len(calls) == 1 else "not fused: the NumPy replay was faster (1.0 ms)"
        return subprocess.CompletedProcess(argv, 1 if failed else 0, "" if failed else answer(note),
                                           "MemoryError" if failed else "")
    monkeypatch.setattr(subprocess, "run", fake_run)
    (row,) = bench_tape.run(sizes=(100,), rounds=7, peers=(), memory=False, processes=3)
    assert len(calls) == 3 and row["ratios"]["eager/hand"] == (2.0, 2.0, 2.0)
    assert row["notes"]["processes"].startswith("1 of 3 failed; process 2 failed (exit 1): MemoryError")
    assert row["notes"]["eager"] == "measured in 2 of 3 processes"
    # a process whose note differs (its dk.compile found the NumPy replay faster) is named beside the first's
    assert row["notes"]["numba"] == "compiled in 5.0 s; process 3: not fused: the NumPy replay was faster (1.0 ms)"
    from diffkit.bench_tape import _merge_notes  # a note that differs in its numbers alone is not repeated
    rows = [{"notes": {"numba": "compiled in 5.0 s; process 2: not fused (1.1 ms)"}}]
    _merge_notes(rows, [{"notes": {"numba": "compiled in 5.4 s"}}], 3)
    _merge_notes(rows, [{"notes": {"numba": "not fused (0.9 ms)"}}], 4)
    assert rows[0]["notes"]["numba"] == "compiled in 5.0 s; process 2: not fused (1.1 ms)"
    monkeypatch.setattr(subprocess, "run", lambda argv, **kw: subprocess.CompletedProcess(argv, 1, "", "boom"))
    with pytest.raises(RuntimeError, match="every bench process failed; the first: process 1 failed.*boom"):
        bench_tape.run(sizes=(100,), rounds=7, peers=(), memory=False, processes=2)
