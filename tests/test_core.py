"""Core: the tape against the seeds' printed numbers, closed forms, hand-written backprop and mpmath."""
from __future__ import annotations

import re
import warnings
from decimal import Decimal

import mpmath

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import diffkit as dk
from diffkit import handwritten
from diffkit.primitives import PRIMITIVES
from diffkit.backends import MP, to_mp


def printed_tolerance(text: str) -> float:
    """Half a unit in the last printed place: '0.39' -> 0.005, '80' -> 0.5."""
    exponent = Decimal(text).as_tuple().exponent
    return 0.5 * 10.0 ** exponent


# --- the seeds' worked examples ----------------------------------------------------------

@pytest.mark.parametrize("problem", dk.problems.seed_examples(), ids=lambda p: p.name)
def test_tape_reproduces_the_seeds_printed_numbers(problem):
    r = dk.gradient(problem, method="reverse")
    for key, text in problem.expected.items():
        got = r.value if key == "value" else r.grad[[problem.component_name(i) for i in range(problem.size)].index(key)]
        assert abs(got - float(text)) <= printed_tolerance(text), (key, got, text)


def test_seed_numbers_exactly():
    assert dk.gradient(dk.problems.seed_circuit()).grad.tolist() == [-4.0, -4.0, 3.0]
    assert dk.gradient(dk.problems.seed_relu_chain()).grad[0] == 80.0  # 5 * 1 * 2 * 8
    r = dk.gradient(dk.problems.seed_sigmoid_neuron())
    s = 1 / (1 + np.exp(-1.0))  # w.x + b = 1 at the seed's point
    np.testing.assert_allclose(r.grad, np.array([-1, -2, 1, 2, -3]) * s * (1 - s), rtol=1e-15)


# --- MLPs against the certified mpmath reference (property test) -------------------------

ACTIVATIONS = sorted(dk.nn.ACTIVATIONS)
COSTS = sorted(dk.nn.COSTS)


@settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    hidden=st.lists(st.integers(1, 5), min_size=1, max_size=4),
    n_in=st.integers(1, 4), n_out=st.integers(1, 4), batch=st.integers(1, 5),
    activation=st.sampled_from(ACTIVATIONS), loss=st.sampled_from(COSTS),
    seed=st.integers(0, 2**16), scale=st.sampled_from([0.1, 1.0, 3.0]), l2=st.sampled_from([0.0, 1e-2]),
)
def test_tape_agrees_with_reference_to_13_digits(hidden, n_in, n_out, batch, activation, loss, seed, scale, l2):
    prob = dk.problems.mlp([n_in, *hidden, n_out], activation=activation, loss=loss, l2=l2, batch=batch,
                           seed=seed, scale=scale)
    ref = dk.reference(prob, digits=40, directions=2, max_coordinates=0)
    tape = dk.error(dk.gradient(prob, method="reverse"), ref)
    # A gradient component can be a sum whose terms are far larger than the sum (a bias gradient summed over
    # rows: 0.5 - 1 + 0.4999 - 0); then cancellation makes 13 relative digits unreachable for ANY float64
    # method (seen: 12.7 digits on b2[1] = -4.8e-5).  There the tape must match the accuracy of the independent
    # hand-written backprop, the float64 floor, to within one digit (their rounding orders differ, which moves
    # a cancelling sum by a few units of its terms' rounding: seen 12.9 against 13.7 digits).
    hand = dk.error(handwritten.mlp_backprop(prob, prob.theta0)[1], ref)
    assert tape.digits >= min(13.0, hand.digits - 1.0), f"tape: {tape}; hand-written: {hand}"


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("loss", COSTS)
def test_every_activation_and_cost_certified_per_coordinate(activation, loss):
    prob = dk.problems.mlp([3, 4, 2], activation=activation, loss=loss, l2=1e-2, batch=3, seed=1)
    ref = dk.reference(prob, digits=30)  # certifies every coordinate (P = 26)
    assert ref.certification.coordinates == prob.size
    assert ref.certification.agreement_digits >= 20
    assert dk.error(dk.gradient(prob), ref).digits >= 13


def test_tape_matches_handwritten_backprop():
    for activation in ACTIVATIONS:
        for loss in COSTS:
            prob = dk.problems.mlp([5, 7, 6, 3], activation=activation, loss=loss, l2=0.1, batch=8, seed=3)
            J, g = handwritten.mlp_backprop(prob, prob.theta0)
            r = dk.gradient(prob)
            assert r.value == pytest.approx(J, rel=1e-13)
            np.testing.assert_allclose(r.grad, g, rtol=1e-11, atol=1e-14 * np.abs(g).max())


# --- the reference ----------------------------------------------------------------------

def test_reference_at_30_and_60_digits_agree_to_28():
    prob = dk.problems.mlp([3, 5, 2], activation="softplus", loss="binary_cross_entropy", l2=1e-3, batch=4)
    r30 = dk.reference(prob, digits=30, max_coordinates=0)
    r60 = dk.reference(prob, digits=60, max_coordinates=0)
    with mpmath.workdps(80):
        worst = max(abs(a - b) / max(abs(b), mpmath.mpf(10) ** -40) for a, b in zip(r30.grad_mp, r60.grad_mp))
    assert -mpmath.log10(worst) >= 28


def test_reference_value_matches_direct_mpmath():
    x = np.array([0.3, -1.7])
    ref = dk.reference(lambda t: dk.nn.tanh(t[0]) * dk.namespace(t).exp(t[1]), x, digits=50)
    with mpmath.workdps(60):
        a, b = mpmath.mpf(0.3), mpmath.mpf(-1.7)
        assert abs(ref.value_mp - mpmath.tanh(a) * mpmath.exp(b)) < mpmath.mpf(10) ** -49
        assert abs(ref.grad_mp[0] - mpmath.sech(a) ** 2 * mpmath.exp(b)) < mpmath.mpf(10) ** -49


def test_certification_catches_an_injected_wrong_rule(monkeypatch):
    tanh = PRIMITIVES["tanh"]
    monkeypatch.setattr(tanh, "vjps", (lambda g, ans: g * (1 - ans),))  # should be g * (1 - ans**2)
    monkeypatch.setattr(tanh, "rule_args", (("ans",),))
    monkeypatch.setattr(tanh, "plans", {})
    prob = dk.problems.mlp([3, 4, 2], activation="tanh", loss="half_squared_error", batch=3)
    with pytest.raises(dk.CertificationError, match="digits"):
        dk.reference(prob, digits=30)


# --- conventions at kinks (documented in diffkit/primitives/) --------------------------------

def grad(f, x):
    return dk.gradient(f, np.asarray(x, dtype=float)).grad


def test_relu_derivative_at_zero_is_one_as_in_seeds_003_004():
    assert grad(lambda t: dk.namespace(t).sum(dk.nn.relu(t)), [0.0, -1.0, 2.0]).tolist() == [1.0, 0.0, 1.0]


def test_abs_derivative_at_zero_is_zero():
    assert grad(lambda t: dk.namespace(t).sum(dk.namespace(t).abs(t)), [0.0, -2.0, 3.0]).tolist() == [0.0, -1.0, 1.0]


def test_maximum_tie_splits_half_and_half():
    def f(t):
        xp = dk.namespace(t)
        return xp.sum(xp.maximum(t[:2], t[2:]))
    assert grad(f, [1.0, 5.0, 1.0, 2.0]).tolist() == [0.5, 1.0, 0.5, 0.0]


def test_max_reduction_ties_share_the_gradient_equally():
    assert grad(lambda t: dk.namespace(t).max(t), [3.0, 1.0, 3.0, 3.0]).tolist() == [1 / 3, 0.0, 1 / 3, 1 / 3]


def test_max_routes_add_distributes_mul_swaps():
    # seed 000/002 gate patterns: f = max(x, y) + z * w
    def f(t):
        xp = dk.namespace(t)
        return xp.max(t[:2]) + t[2] * t[3]
    assert grad(f, [4.0, 2.0, 3.0, -5.0]).tolist() == [1.0, 0.0, -5.0, 3.0]


def test_fan_out_accumulates_copy_gate_is_an_adder():
    # f = x*x + x*x*x + x: f' = 2x + 3x^2 + 1
    x = 1.5
    assert grad(lambda t: t[0] * t[0] + t[0] * t[0] * t[0] + t[0], [x])[0] == pytest.approx(2 * x + 3 * x * x + 1,
                                                                                            rel=1e-15)


# --- every op of the core list, on every backend ---------------------------------------

X = np.random.default_rng(0).standard_normal((4, 3))

OPS = {
    "arith": lambda xp, t: xp.sum((t[:3] + 2.0) * t[3:6] / (1.5 + t[6:9] ** 2) - (-t[:3])),
    "scalar_broadcast": lambda xp, t: xp.sum(dk.nn.logsumexp(t[:3]) + t[3:6] * t[6]),
    "rpow": lambda xp, t: xp.sum(2.0 ** t[:3]),
    "matmul_matrix": lambda xp, t: xp.sum(xp.tanh(X @ xp.reshape(t[:6], (3, 2)))),
    "matmul_vector": lambda xp, t: (t[:3] @ t[3:6]) + xp.sum(X @ t[6:9]) + xp.sum(t[:4] @ X),
    "exp_log": lambda xp, t: xp.sum(xp.exp(t[:3]) * xp.log(2.0 + t[3:6] ** 2) + xp.log1p(t[6:9] ** 2)),
    "expm1_sqrt": lambda xp, t: xp.sum(xp.expm1(t[:3]) + xp.sqrt(1.0 + t[3:6] ** 2)),
    "trig": lambda xp, t: xp.sum(xp.sin(t[:3]) * xp.cos(t[3:6])),
    "abs_min_max": lambda xp, t: xp.sum(xp.abs(t[:3]) + xp.maximum(t[:3], t[3:6]) - xp.minimum(t[3:6], 0.2)),
    "where": lambda xp, t: xp.sum(xp.where(t[:3] > 0, t[3:6] ** 2, 3.0 * t[6:9])),
    "reductions": lambda xp, t: xp.sum(xp.mean(xp.reshape(t[:6], (2, 3)), axis=0) ** 2)
    + xp.sum(xp.max(xp.reshape(t[:6], (2, 3)), axis=1, keepdims=True) * t[6:8]),
    "structure": lambda xp, t: xp.sum(xp.concatenate([t[:3], xp.reshape(t[3:9], (2, 3)).T[1]]) ** 3)
    + xp.sum(xp.stack([t[:3], t[3:6]], axis=1) @ t[6:8]),
    # dense layers: rows, one vector, a stack of matrices; a vector, a row and a scalar as bias
    "affine": lambda xp, t: xp.sum(xp.tanh(dk.nn.affine(X, xp.reshape(t[:6], (3, 2)), t[6:8])))
    + xp.sum(dk.nn.affine(t[:3], xp.reshape(t[3:9], (3, 2)), t[0]) ** 2)
    + xp.sum(dk.nn.affine(xp.reshape(xp.concatenate([t, t[:3]]), (2, 2, 3)), xp.reshape(t[3:9], (3, 2)),
                          xp.reshape(t[7:9], (1, 2))) ** 2),
    "sum_of_squares": lambda xp, t: dk.nn.sum_of_squares(xp.reshape(t[:6], (2, 3))) * t[6]
    + dk.nn.sum_of_squares(t[3:9] * t[0]),
    # reshapes of slices (recorded as one view node) used several times, beside the slice itself and a
    # reshape of a fancy index (which stays a reshape node)
    "views": lambda xp, t: xp.sum(xp.reshape(t[:6], (2, 3)) ** 2) + xp.sum(xp.reshape(t[:6], (3, 2)) @ t[6:8])
    + t[:6] @ t[3:9] + xp.sum(xp.reshape(t[2:8], (2, 3))[1] ** 3) + xp.sum(xp.reshape(t[[0, 2, 4, 0]], (2, 2)) ** 2),
    "activations": lambda xp, t: xp.sum(dk.nn.sigmoid(t[:3]) + dk.nn.softplus(t[3:6]) + dk.nn.log_sigmoid(t[6:9])
                                        + dk.nn.leaky_relu(t[:3] - 0.05)) + dk.nn.softmax(t[3:6])[0]
    + xp.sum(dk.nn.logsumexp(xp.reshape(t[:6], (2, 3)))) + dk.nn.log_softmax(t[:3])[1],
}


@pytest.mark.parametrize("name", sorted(OPS))
def test_each_op_on_tape_against_certified_reference(name):
    theta = np.random.default_rng(7).uniform(-1.5, 1.5, 9)
    f = lambda t: OPS[name](dk.namespace(t), t)  # noqa: E731
    ref = dk.reference(f, theta, digits=30)  # per-coordinate certification
    assert dk.error(dk.gradient(f, theta), ref).digits >= 13


@pytest.mark.parametrize("name", sorted(OPS))
def test_each_op_runs_unchanged_on_numpy_complex_and_mpmath(name):
    theta = np.random.default_rng(7).uniform(-1.5, 1.5, 9)
    plain = OPS[name](dk.namespace(theta), theta)
    with mpmath.workdps(30):
        high = OPS[name](MP, to_mp(theta))
        assert float(np.reshape(np.asarray(high, dtype=object), ())[()]) == pytest.approx(float(plain), rel=1e-13)
    if name != "activations":  # leaky_relu refuses the complex step (tested with the finite differences)
        z = OPS[name](dk.namespace(theta + 0j), theta + 0j)
        assert complex(z).real == pytest.approx(float(plain), rel=1e-13)


def test_namespace_dispatch():
    assert dk.namespace(np.ones(2)).name == "numpy" and dk.namespace(np.ones(2)) is not np
    assert dk.namespace(1.0).name == "numpy"
    assert dk.namespace(np.ones(2) + 0j).name == "complex"
    assert dk.namespace(to_mp([1.0])) is MP


def test_missing_op_names_the_op_and_backend():
    with pytest.raises(NotImplementedError, match=r"'bessel_j0'.*mpmath"):
        MP.bessel_j0
    with pytest.raises(NotImplementedError, match=r"'bessel_j0'.*tape"):
        dk.gradient(lambda t: dk.namespace(t).bessel_j0(t[0]), np.ones(2))
    with pytest.raises(NotImplementedError, match=r"'cholesky'.*complex.*central"):
        dk.gradient(lambda t: dk.namespace(t).sum(dk.namespace(t).linalg.cholesky(t.reshape(1, 1) + 1.0)),
                    np.ones(1), method="complex_step")


# --- VJP, custom ops, anomaly mode -------------------------------------------------------

def test_vjp_of_a_vector_function_matches_closed_form():
    A = np.array([[1.0, 2.0], [3.0, -1.0], [0.5, 0.0]])
    value, vjp_fn = dk.vjp(lambda t: dk.namespace(t).tanh(A @ t), np.array([0.2, -0.4]))
    u = np.array([1.0, -2.0, 0.5])
    expected = A.T @ (u * (1 - np.tanh(A @ np.array([0.2, -0.4])) ** 2))
    np.testing.assert_allclose(vjp_fn(u), expected, rtol=1e-15)
    np.testing.assert_allclose(vjp_fn(u), expected, rtol=1e-15)  # callable more than once


class Multiply(dk.Function):
    """Seed 003's custom autograd function: forward saves its inputs, backward swaps them."""

    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return x * y

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        return g * y, g * x


def test_custom_op_like_seed_003():
    f = lambda t: dk.namespace(t).sum(Multiply.apply(t[:2], t[2:]) ** 2)  # noqa: E731
    t = np.array([1.0, 2.0, 3.0, -4.0])
    # d/dx (xy)^2 = 2 x y^2, d/dy = 2 x^2 y
    assert grad(f, t).tolist() == [18.0, 64.0, 6.0, -32.0]


def test_anomaly_mode_names_the_op_and_the_line():
    def f(t):
        xp = dk.namespace(t)
        return xp.sum(xp.log(t - 1.0))  # log(0) at t = 1
    with pytest.raises(FloatingPointError, match=r"log produced inf.*test_core.py:\d+ in f"):
        dk.gradient(f, np.array([1.0, 2.0]), anomaly=True)


# --- bad input ---------------------------------------------------------------------------

def test_non_scalar_output_is_refused():
    with pytest.raises(ValueError, match=r"scalar.*shape \(3,\).*dk.vjp"):
        dk.gradient(lambda t: t * 2, np.ones(3))


def test_non_finite_theta_names_the_indices():
    with pytest.raises(ValueError, match=r"theta\[1\]=nan, theta\[3\]=inf"):
        dk.gradient(lambda t: dk.namespace(t).sum(t), np.array([0.0, np.nan, 1.0, np.inf]))
    prob = dk.problems.mlp([2, 3, 1], loss="squared_error")
    theta = prob.theta0.copy()
    theta[7] = np.nan  # W1 is theta[0:6], W2 theta[6:9], then b1 and b2
    with pytest.raises(ValueError, match=r"W2\[1,0\]=nan"):
        dk.gradient(prob, theta)


def test_shape_mismatch_names_the_op_and_shapes():
    with pytest.raises(ValueError, match=r"matmul.*\(4, 3\).*\(2, 2\)"):
        dk.gradient(lambda t: dk.namespace(t).sum(X @ dk.namespace(t).reshape(t, (2, 2))), np.ones(4))


def test_unknown_method_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown method 'backprop'.*reverse"):
        dk.gradient(lambda t: t[0], np.ones(1), method="backprop")


def test_empty_theta_is_refused():
    with pytest.raises(ValueError, match="theta is empty"):
        dk.gradient(lambda t: 0.0, np.array([]))


def test_unknown_problem_choices_are_listed():
    with pytest.raises(ValueError, match=r"unknown activation 'swish'; valid choices: identity"):
        dk.problems.mlp([2, 2], activation="swish")


def test_methods_lists_reverse():
    assert any(line.startswith("reverse") for line in dk.methods())


# --- tanh: the rule reads the output, the tape keeps x only where tanh saturates -----------------------

def test_tanh_gradient_is_exact_to_13_digits_on_both_sides_of_the_saturation_threshold():
    # 1 - a**2 below |tanh| = 1 - 2**-9 (|x| ~ 3.47), 4e/(1+e)^2 from the kept x above it: every
    # entry against mpmath's sech^2 at 40 digits, the threshold's neighbourhood sampled densely
    x = np.concatenate([np.linspace(-25, 25, 501), np.linspace(3.4, 3.55, 151), -np.linspace(3.4, 3.55, 151)])
    grad = dk.gradient(lambda t: dk.namespace(t).sum(dk.namespace(t).tanh(t)), x).grad
    with mpmath.workdps(40):
        want = np.array([float(mpmath.sech(mpmath.mpf(v)) ** 2) for v in x])
    assert np.max(np.abs(grad - want) / want) < 1e-13


def test_tanh_gradient_far_into_saturation_keeps_its_digits_and_warns_of_nothing():
    # 4e/(1+e)^2, e = exp(-2|x|), at the saturated entries: against mpmath's sech^2, relative where it is a
    # normal float, and 0 (or a subnormal within 1e-315) past |x| ~ 354; exp(-2|x|) underflows without a warning
    x = np.array([0.5, 20.0, -40.0, 300.0, -350.0, 354.0, 360.0, 709.0, 710.0, -711.0, 1e5, -1e300])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        grad = dk.gradient(lambda t: dk.namespace(t).sum(dk.namespace(t).tanh(t)), x).grad
    with mpmath.workdps(40):
        want = np.array([float(mpmath.sech(mpmath.mpf(v)) ** 2) for v in x])
    normal = want > 1e-300
    assert np.max(np.abs(grad[normal] - want[normal]) / want[normal]) < 1e-15
    assert np.all(np.abs(grad[~normal] - want[~normal]) < 1e-315) and np.all(grad >= 0)


def test_the_tape_keeps_tanhs_input_only_at_its_saturated_entries():
    from diffkit.tape import Tape
    from diffkit.tape.memory import bytes_held
    tape = Tape()
    x = np.array([[0.1, -2.0, 5.0], [20.0, 0.3, -0.7]])
    node = tape.nodes[tape.ns.tanh(tape.leaf(x)).index]
    ans, (flat, kept) = node[3][:2]  # (prim, parent, rule, the rule's arguments, shape)
    assert flat.tolist() == [2, 3] and kept.tolist() == [5.0, 20.0]  # |x| > 3.47: entries 2 and 3, flat
    healthy = Tape()
    y = healthy.ns.tanh(healthy.leaf(np.linspace(-3.0, 3.0, 1000)))
    assert healthy.nodes[y.index][3][1] is None
    assert bytes_held(healthy) == 8000  # the output alone, which the next layer's rule keeps anyway


@pytest.mark.parametrize("x", [[0.1, 5.0, 3.0, 20.0], [-0.1, -5.0, -3.0, -20.0], [4.0, -4.0, 0.0, 1.0],
                               [np.nan, 4.0, 0.0, 1.0], list(np.linspace(-30, 30, 41))],
                         ids=["high side only", "low side only", "both sides", "NaN", "more than 16 saturated"])
def test_tanhs_saturated_entries_are_found_on_either_side_and_get_sech2(x):
    # one side past the screen takes a one-sided scan; a few saturated entries take sech^2 in Python floats,
    # many the array formula: the kept entries are exactly |x| > 3.47, every slope against mpmath's sech^2
    from diffkit.tape import Tape
    x = np.array(x)
    tape = Tape()
    node = tape.nodes[tape.ns.tanh(tape.leaf(x)).index]
    flat, kept = node[3][1]
    assert flat.tolist() == np.flatnonzero(np.abs(x) > 3.47).tolist() and kept.tolist() == x[flat].tolist()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (the NaN case)
        grad = dk.gradient(lambda t: dk.namespace(t).sum(dk.namespace(t).tanh(t)), np.nan_to_num(x)).grad
        slope = dk.vjp(lambda t: dk.namespace(t).tanh(t), x)[1](np.ones_like(x))
    with mpmath.workdps(40):
        want = np.array([float(mpmath.sech(mpmath.mpf(v)) ** 2) for v in np.nan_to_num(x)])
    tolerance = np.where(np.abs(np.nan_to_num(x)) > 3.47, 1e-15, 1e-13)  # sech^2 itself; 1 - a**2
    assert np.all(np.abs(grad - want) / want < tolerance)
    finite = ~np.isnan(x)
    assert np.array_equal(np.isnan(slope), ~finite)
    assert np.all(np.abs(slope[finite] - want[finite]) / want[finite] < tolerance[finite])


def test_the_tape_keeps_where_max_sits_not_its_input():
    from diffkit.tape import Tape
    from diffkit.tape.memory import bytes_held
    z = np.random.default_rng(0).standard_normal((64, 10))
    tape = Tape()
    tape.ns.max(tape.leaf(z), axis=1, keepdims=True)
    assert bytes_held(tape) == 64 * 10  # one boolean per entry (the hit mask), not the 8-byte logits
    tied = Tape()
    tied.ns.max(tied.leaf(np.array([[1.0, 3.0, 3.0], [2.0, 0.0, 1.0]])), axis=1)
    assert bytes_held(tied) == 6 + 2 * np.dtype(np.intp).itemsize  # the mask and the ties per row


def test_a_memory_measurement_cut_short_stops_tracing_allocations():
    # a study's cell budget can fire during dk.gradient(memory=True)'s second, traced call; tracemalloc left on
    # would make every later allocation of the process ~10x dearer (what slowed a report's last sections)
    import tracemalloc

    calls = {"n": 0}

    def f(theta):
        calls["n"] += 1
        if calls["n"] > 1:  # the traced repeat
            raise KeyboardInterrupt("the budget")
        return dk.namespace(theta).sum(theta * theta)
    assert not tracemalloc.is_tracing()
    with pytest.raises(KeyboardInterrupt):
        dk.gradient(f, np.ones(3), memory=True)
    assert calls["n"] == 2 and not tracemalloc.is_tracing()


# --- square's rule: 2 g x, in one pass when g is one number -------------------------------------------------

def test_square_gradient_is_exactly_2x_when_its_g_is_a_broadcast_number():
    # sum(W * W) over 90,000 entries: the sum's g reaches the square as a broadcast view of 1.0
    W = np.random.default_rng(4).standard_normal(90_000)
    grad = dk.gradient(lambda t: dk.namespace(t).sum(t * t), W).grad
    assert np.array_equal(grad, 2.0 * W)  # doubling is exact: no rounding at all
    half = dk.gradient(lambda t: 0.5 * dk.namespace(t).sum(t * t), W).grad
    assert np.array_equal(half, W)


def test_square_of_an_empty_slice_on_every_backend():
    def f(t):
        xp = dk.namespace(t)
        r = xp.reshape(t[:0], (1, 0))
        return xp.sum(t * t) + xp.sum(r * r)  # (r * r is a square node: gmm's empty-cluster case)
    theta = np.array([0.5, -2.0])
    assert dk.gradient(f, theta).grad.tolist() == [1.0, -4.0]
    assert [float(v) for v in dk.reference(f, theta).grad] == [1.0, -4.0]


# --- the collector is paused while a trace runs (diffkit.tape.collector) -------------------

_T, _V = np.array([1.0, -2.0, 0.5]), np.array([0.5, 1.0, -1.0])
# each entry point with the closed form it must return for f = sum(t^3): grad 3 t^2, H v = 6 t v, J v = 3 t^2 . v
_TRACES = {
    "gradient": (lambda f: dk.gradient(f, _T, method="reverse").grad, 3 * _T ** 2),
    "vjp": (lambda f: dk.vjp(f, _T)[1](1.0), 3 * _T ** 2),
    "jvp": (lambda f: dk.jvp(f, _T, _V)[1], np.dot(3 * _T ** 2, _V)),
    "hvp": (lambda f: dk.hvp(f, _T, _V).hvp, 6 * _T * _V),
}


def _watched(seen: list):
    def f(t):
        import gc
        seen.append(gc.isenabled())
        return dk.namespace(t).sum(t * t * t)
    return f


@pytest.mark.parametrize("entry", sorted(_TRACES))
def test_the_collector_is_off_while_a_trace_runs_and_back_on_after(entry):
    import gc
    call, expected = _TRACES[entry]
    seen: list = []
    assert gc.isenabled()
    np.testing.assert_allclose(call(_watched(seen)), expected, rtol=1e-14)
    assert seen and not any(seen)  # off inside f, at every level (hvp's inner gradient too)
    assert gc.isenabled()


@pytest.mark.parametrize("entry", sorted(_TRACES))
def test_the_collector_comes_back_after_an_error_and_stays_off_if_the_caller_had_it_off(entry):
    import gc
    call, _ = _TRACES[entry]

    def broken(t):
        raise ZeroDivisionError("the user's bug")
    with pytest.raises(ZeroDivisionError, match="the user's bug"):
        call(broken)
    assert gc.isenabled()
    gc.disable()
    try:
        call(_watched([]))
        assert not gc.isenabled()  # (a caller that turned it off keeps it off)
    finally:
        gc.enable()


@pytest.mark.parametrize("size", [10, 100_000])
def test_the_gradient_is_the_callers_own_writeable_array(size):
    # d/dt sum(t) = 1 everywhere; sum's rule hands back one number broadcast over a large theta (a read-only
    # view): the caller must still be able to update its gradient in place
    grad = dk.gradient(lambda t: dk.namespace(t).sum(t), np.full(size, 0.5)).grad
    assert grad.flags.writeable and grad.flags.c_contiguous
    grad *= 2.0
    np.testing.assert_array_equal(grad, np.full(size, 2.0))


# --- dk.gradient's direct call (method="reverse", no options, a float64 array): the generic contract ------------

@pytest.mark.parametrize("theta", [np.array(1.5), np.array([1.5, -2.0, 0.25]), np.arange(6.0).reshape(2, 3) - 2.5],
                         ids=["0-d", "vector", "matrix"])
def test_the_direct_call_keeps_dk_gradients_contract(theta):
    # f = sum(t^3): grad 3 t^2 by hand; three nodes (input, cube as power, sum); a float value, a float64
    # gradient of theta's shape, one evaluation, the tape's counters, theta itself untouched
    before = theta.copy()
    r = dk.gradient(lambda t: dk.namespace(t).sum(t ** 3), theta)
    assert type(r.value) is float and r.value == float(np.sum(before ** 3))
    assert r.grad.dtype == np.float64 and r.grad.shape == theta.shape
    np.testing.assert_allclose(r.grad, 3 * before ** 2, rtol=1e-15)
    assert r.method == "reverse" and r.cost.evaluations == 1 and r.cost.peak_bytes is None
    assert r.cost.counters["tape_length"] == 3 and r.cost.counters["tape_bytes"] is None
    assert r.cost.counters["forward_s"] > 0 and r.cost.wall_s >= r.cost.counters["forward_s"]
    np.testing.assert_array_equal(theta, before)


def test_the_direct_call_refuses_what_the_generic_one_refuses():
    with pytest.raises(ValueError, match=r"theta has 1 non-finite entry: theta\[1\]=inf"):
        dk.gradient(lambda t: t[0], np.array([1.0, np.inf]))
    with pytest.raises(ValueError, match="shape \\(2,\\)"):
        dk.gradient(lambda t: t * 2.0, np.array([1.0, 2.0]))
    with pytest.raises(TypeError, match="returned None"):
        dk.gradient(lambda t: None, np.array([1.0, 2.0]))
    assert dk.gradient(lambda t: t[:1] * 3.0, np.array([1.0, 2.0])).value == 3.0  # a (1,) output is a scalar


@pytest.mark.parametrize("shape", [(), (3,), (64, 10), (300, 300)])
def test_a_full_sums_rule_is_one_number_over_the_inputs_shape(shape):
    # d/dx (2.5 sum(x)) = 2.5 at every entry, read-only (no rule may write into it), a view of one number
    from diffkit.primitives.reductions import expand
    for g in (2.5, np.float64(2.5), np.array(2.5), np.array([[2.5]])):
        out = expand(g, np, shape, None, keepdims=type(g) is np.ndarray and g.ndim == 2)
        assert out.shape == shape and out.dtype == np.float64 and not out.flags.writeable
        assert np.all(out == 2.5) and not any(out.strides)


def test_a_problem_with_its_own_theta_takes_the_direct_call_and_names_its_components():
    # an MLP problem's gradient at theta0 through the direct call equals the
    # hand-written delta rule (diffkit.handwritten, written apart from the tape), and a bad entry is named by block
    from diffkit.handwritten import mlp_backprop
    prob = dk.problems.mlp([3, 4, 2], "tanh", "softmax_cross_entropy", l2=1e-2, batch=5, seed=1)
    r = dk.gradient(prob, prob.theta0.copy())
    J, grad = mlp_backprop(prob, prob.theta0)
    assert r.value == pytest.approx(J, rel=1e-14) and r.cost.evaluations == 1
    np.testing.assert_allclose(r.grad, grad, rtol=1e-12, atol=1e-15)
    assert r.component_name(0) == prob.component_name(0) != "theta[0]"
    bad = prob.theta0.copy()
    bad[0] = np.nan
    with pytest.raises(ValueError, match=f"theta has 1 non-finite entry: {re.escape(prob.component_name(0))}=nan"):
        dk.gradient(prob, bad)


def test_no_collection_walks_the_tape_between_its_recording_and_its_sweep():
    # d/dt sum(t * 1.001^3000) = 1.001^3000 (3,000 recorded multiplies, all alive until the sweep frees them):
    # any collection that starts inside dk.gradient may find the call's own few objects, never the tape's nodes
    import gc
    young: list = []

    def watch(phase, info):
        if phase == "start":
            young.append(len(gc.get_objects(generation=0)))

    def f(t):
        for _ in range(3000):
            t = t * 1.001
        return dk.namespace(t).sum(t)
    gc.collect()
    gc.callbacks.append(watch)
    try:
        grad = dk.gradient(f, np.ones(3)).grad
    finally:
        gc.callbacks.remove(watch)
    np.testing.assert_allclose(grad, np.full(3, 1.001 ** 3000), rtol=1e-12)
    assert all(n < 1000 for n in young), young
