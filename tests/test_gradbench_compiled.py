"""The GradBench tool with ``--method compiled`` (``dk.compile``'s replay), over the protocol, against the referee.

Each eval's gradient at its small inputs is checked against the mpmath
referee on the eval's own definition; kmeans' Newton direction against its
closed form (centroid minus cluster mean).  The replay's guards are checked
where an eval's data decides a branch: kmeans' nearest centroid.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import diffkit as dk
from diffkit.gradbench import EVALS, NESTED, Tool, load_eval
from diffkit.gradbench.engines import engine_for
from diffkit.gradbench.evals import ba, kmeans

from test_gradbench import _cluster_direction, _driver, _flat_gradient, assert_close, small_inputs


@pytest.fixture(scope="module")
def compiled_tool():
    yield from _driver("compiled")


# (ht: the eager Jacobian; particle and saddle: no replay, test_gradbench_nested.py)
@pytest.mark.parametrize("name", [e for e in EVALS if e not in ("kmeans", "hello", "ba", "ht", *NESTED)])
def test_compiled_gradients_match_the_mpmath_referee(compiled_tool, name):
    module = load_eval(name)
    for _, input in small_inputs(name):
        problem = module.problem(input)
        ref = dk.reference(problem.objective, problem.theta)
        assert_close(_flat_gradient(compiled_tool, name, input), ref.grad.ravel(), 1e-10)


def test_compiled_hello_and_kmeans_direction_match_their_closed_forms(compiled_tool):
    for x in (1.0, -2.5, 1e100):
        assert compiled_tool.output("hello", "double", x) == 2 * x
    for _, input in small_inputs("kmeans"):
        assert_close(compiled_tool.output("kmeans", "dir", input), _cluster_direction(input), 1e-10)


def test_compiled_ba_jacobian_blocks_match_the_referee(compiled_tool):
    for _, input in small_inputs("ba"):
        out = compiled_tool.output("ba", "jacobian", input)
        gathered, feats = ba.gathered_blocks(input)
        rows = [dk.reference(lambda t, r=r: ba.error_sum(t, r, feats), gathered).grad.reshape(input["p"], 15)[0]
                for r in (0, 1)]
        assert_close(out["vals"][:30], np.concatenate(rows), 1e-10)
        assert out["vals"][-1] == -2 * input["w"]


def test_compile_time_is_reported_apart_from_the_steady_state_calls(compiled_tool):
    response = compiled_tool.evaluate("lse", "gradient", {"x": [0.5, -1.0, 2.0]}, min_runs=4)
    names = [t["name"] for t in response["timings"]]
    assert names[:3] == ["prepare", "compile", "warmup"] and names[3:] == ["evaluate"] * 4
    assert response["timings"][1]["nanoseconds"] > 0
    eager = Tool("reverse").handle({"id": 0, "kind": "evaluate", "module": "lse", "function": "gradient",
                                    "input": {"x": [0.5, -1.0, 2.0]}})
    assert "compile" not in [t["name"] for t in eager["timings"]]  # the eager tape compiles nothing


def _points(seed=3, n=12, k=3):
    return np.random.default_rng(seed).uniform(0, 1, (n, 2)), k


def test_kmeans_replayed_where_the_nearest_centroids_change_follows_them():
    points, k = _points()
    first, moved = points[-k:].ravel(), points[:k].ravel()
    f = lambda t: kmeans.cost(t, points, k)  # noqa: E731
    g = dk.compile(f, first)

    def by_hand(c):  # d/dC_j sum_i min_j |C_j - P_i|^2 = 2 (|cluster j| C_j - sum of its points)
        c = c.reshape(k, 2)
        nearest = np.argmin(((points[:, None] - c[None]) ** 2).sum(2), axis=1)
        return np.concatenate([2 * ((nearest == j).sum() * c[j] - points[nearest == j].sum(0)) for j in range(k)])
    for theta in (first, moved, first):
        np.testing.assert_allclose(g(theta)[1], by_hand(theta), rtol=1e-12, atol=1e-14)
    assert g.records == 1  # min's rule takes its mask from the replayed values: no guard to fail

    direction = engine_for("compiled").grad_hvp(f)
    ones = np.ones(first.size)
    for theta in (first, moved):
        grad, h_diag = direction(theta, ones)
        input = {"points": points.tolist(), "centroids": theta.reshape(k, 2).tolist()}
        assert_close((grad / h_diag).reshape(k, 2), _cluster_direction(input), 1e-12)


def test_the_nested_hvp_re_records_exactly_when_an_assignment_changes():
    points, k = _points()
    first = points[-k:].ravel()
    f = lambda t: kmeans.cost(t, points, k)  # noqa: E731
    ones = np.ones(first.size)
    hvp = dk.compile(lambda t: dk.namespace(t).sum(dk.vjp(f, t)[1](1.0) * ones), first)
    nudged = first + 1e-9  # the same nearest centroids: the guard holds
    np.testing.assert_allclose(hvp(nudged)[1], hvp(first)[1], rtol=0)
    assert hvp.records == 1
    hvp(points[:k].ravel())  # other nearest centroids: the recorded mask is stale, the guard re-records
    assert hvp.records == 2 and "changed" in hvp.reasons[0]
    counts = np.bincount(np.argmin(((points[:, None] - points[:k][None]) ** 2).sum(2), axis=1), minlength=k)
    np.testing.assert_allclose(hvp(points[:k].ravel())[1], np.repeat(2.0 * counts, 2), rtol=1e-14)  # H = 2 |cluster|
    assert math.isfinite(hvp.compile_s) and hvp.compile_s > 0


def test_the_budget_that_stops_a_slow_method_leaves_its_compile_time_out(monkeypatch):
    from diffkit.gradbench import bench

    class Warmed:  # a cell whose warm-up gradient took 30 s; for numba, 25 s of those were numba compiling
        def __init__(self, method, *args):
            self.method, self.status, self.note = method, "ok", ""
            self.compile_s = 25.0 if method == "numba" else float("nan")
            self.jobs, self.samples, self.warmup, self.output = {}, {"primal": [], "gradient": []}, {"gradient": 30.0}, None

        def median(self, kind):
            return float("nan")
    monkeypatch.setattr(bench, "_Cell", Warmed)
    slow: set = set()
    try:
        bench._measure("gmm", None, "2_5_1000", {}, ("primal", "gradient"), ["reverse", "numba"], 7, slow, 10)
    except Exception:  # noqa: BLE001  (the rows of cells that never ran are not this test's business)
        pass
    assert slow == {"reverse"}  # 30 s of gradient > 20 s; numba's gradient itself took 5 s


def test_the_numba_tool_speaks_the_protocol_and_its_fused_gradients_match_the_referee():
    pytest.importorskip("numba")
    for tool in _driver("numba"):  # (a generator fixture's body: the tool's process, closed after)
        for x in (1.0, -2.5):
            assert tool.output("hello", "double", x) == 2 * x  # d(x^2)/dx, by hand
        _, input = next(iter(small_inputs("llsq")))
        problem = load_eval("llsq").problem(input)
        assert_close(_flat_gradient(tool, "llsq", input), dk.reference(problem.objective, problem.theta).grad.ravel(),
                     1e-10)
