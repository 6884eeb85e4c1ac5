"""Issue 7: dk.testing.check_gradient finds each planted bug, passes correct MLPs, and says 'inconclusive'."""
from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import diffkit as dk
from diffkit.handwritten import mlp_backprop
from diffkit.testing import STEP, GradientCheckInconclusive, assert_stable, check_gradient, rounding_scale

# --- a hand-written gradient with switchable bugs ---------------------------------------------------
# [3, 4, 4] tanh net, squared error (seed 004's E = (y - y_hat)^2, mean over the batch) and L2 on weights.
# W2 is square, so a transposed weight still computes: the bug is silent until checked.
PROB = dk.problems.mlp([3, 4, 4], activation="tanh", loss="squared_error", l2=0.5, batch=6, seed=3)


def hand_gradient(theta, bug=None):
    P = PROB.unpack(theta)
    W1, b1, W2, b2 = P["W1"], P["b1"], P["W2"], P["b2"]
    X, Y = PROB.data["X"], PROB.data["Y"]
    m, l2 = X.shape[0], PROB.meta["l2"]
    a1 = np.tanh(X @ W1 + b1)
    z2 = a1 @ W2 + b2
    dz2 = (2.0 if bug != "missing_factor_2" else 1.0) * (z2 - Y) / m
    if bug == "wrong_sign":
        dz2 = -dz2
    da1 = dz2 @ (W2 if bug == "transposed_weight" else W2.T)
    dz1 = da1 * (1 - a1 * a1)
    decay = 0.0 if bug == "missing_l2_term" else l2 / m
    gW1, gW2 = X.T @ dz1 + decay * W1, a1.T @ dz2 + decay * W2
    return np.concatenate([gW1.ravel(), gW2.ravel(), dz1.sum(0), dz2.sum(0)])  # theta's layout: weights, then biases


def failing_names(err) -> set[str]:
    return {c.where for c in err.value.check.comparisons if c.verdict == "fail" and not c.where.startswith("random")}


def test_the_correct_hand_gradient_passes():
    check = check_gradient(PROB, grad=lambda t: hand_gradient(t), reference=True)
    assert check.verdict == "pass"
    assert np.allclose(check.gradients["grad"], check.gradients["reverse"], rtol=1e-13, atol=1e-15)


def test_bug_wrong_sign():
    with pytest.raises(AssertionError, match="grad disagrees with reverse") as err:
        check_gradient(PROB, grad=lambda t: hand_gradient(t, "wrong_sign"))
    # every component except the L2 part flips: all weights and biases are named
    assert {"W1[0,0]", "b1[0]", "W2[3,3]", "b2[3]"} <= failing_names(err)
    assert "grad disagrees with central" in str(err.value)


def test_bug_missing_factor_2():
    with pytest.raises(AssertionError) as err:
        check_gradient(PROB, grad=lambda t: hand_gradient(t, "missing_factor_2"))
    assert "b2[0]" in failing_names(err) and "b1[0]" in failing_names(err)
    worst = [c for c in err.value.check.comparisons if c.where == "b2[0]" and c.b == "reverse"][0]
    assert worst.value_a == pytest.approx(worst.value_b / 2, rel=1e-12)  # the report's values show the factor


def test_bug_transposed_weight():
    with pytest.raises(AssertionError) as err:
        check_gradient(PROB, grad=lambda t: hand_gradient(t, "transposed_weight"))
    names = failing_names(err)
    # only the layer below the transposed W2 is wrong: W1 and b1 are named, W2 and b2 are not
    assert any(n.startswith("W1[") for n in names) and any(n.startswith("b1[") for n in names)
    assert not any(n.startswith(("W2[", "b2[")) for n in names)


def test_bug_missing_l2_term():
    with pytest.raises(AssertionError) as err:
        check_gradient(PROB, grad=lambda t: hand_gradient(t, "missing_l2_term"))
    names = failing_names(err)
    assert any(n.startswith("W1[") for n in names) and any(n.startswith("W2[") for n in names)
    assert not any(n.startswith("b") for n in names)  # biases carry no L2 term


class WrongTanh(dk.Function):
    """tanh with a wrong backward rule: 1 - y instead of 1 - y^2."""

    @staticmethod
    def forward(ctx, x):
        y = np.tanh(x) if isinstance(x, np.ndarray) and x.dtype != object else dk.namespace(x).tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved
        return g * (1 - y)


def _custom_net(theta):
    xp = dk.namespace(theta)
    W = xp.reshape(theta[:6], (3, 2))
    h = WrongTanh.apply(np.array([[0.3, -1.2, 0.8], [1.0, 0.4, -0.5]]) @ W)
    return xp.sum(h * h)


def test_bug_wrong_rule_in_a_custom_op():
    theta = np.linspace(-0.9, 1.1, 6)
    with pytest.raises(AssertionError, match="reverse disagrees with central") as err:
        check_gradient(_custom_net, theta, reference=True)
    assert "theta[0]" in failing_names(err)
    # the mpmath reference runs the same (wrong) custom rule, so its own certification catches it
    assert "reference failed its certification" in str(err.value)


def test_reference_says_which_method_is_wrong():
    with pytest.raises(AssertionError) as err:
        check_gradient(PROB, grad=lambda t: hand_gradient(t, "missing_factor_2"), reference=True)
    report = str(err.value)
    line = {ln.split()[0]: ln for ln in report.splitlines() if "->" in ln}
    assert line["grad"].endswith("WRONG") and line["reverse"].endswith("right")


# --- random directions for large P --------------------------------------------------------------------

def test_random_directions_keep_large_p_cheap_and_still_catch_a_bug():
    prob = dk.problems.mlp([30, 30, 10], activation="tanh", loss="softmax_cross_entropy", batch=8)
    assert prob.size == 1240
    calls = []

    def f(theta):
        calls.append(1)
        return prob.fn(theta)

    good = check_gradient(f, prob.theta0, grad=lambda t: mlp_backprop(prob, t)[1], methods=("central",))
    # the scalar check, one traced run for f's rounding scale, and 4 evaluations per direction
    assert good.verdict == "pass" and len(calls) == 1 + 1 + 4 * 3
    with pytest.raises(AssertionError, match="random direction"):
        check_gradient(f, prob.theta0, grad=lambda t: -mlp_backprop(prob, t)[1], methods=("central",))


# --- inconclusive instead of a false failure -------------------------------------------------------------

def _cube(t):
    return dk.namespace(t).sum(t ** 3)


def test_inconclusive_when_the_requested_tolerance_is_below_the_fd_floor():
    theta = np.array([1.0, -2.0])
    with pytest.warns(GradientCheckInconclusive, match="INCONCLUSIVE"):
        check = check_gradient(_cube, theta, grad=lambda t: 3 * t ** 2, rtol=1e-14)
    assert check.verdict == "inconclusive"
    with pytest.raises(GradientCheckInconclusive):
        check_gradient(_cube, theta, grad=lambda t: 3 * t ** 2, rtol=1e-14, strict=True)
    # a bug far above the floor still fails at that tolerance
    with pytest.raises(AssertionError):
        check_gradient(_cube, theta, grad=lambda t: 2 * t ** 2, rtol=1e-14)


def test_inconclusive_when_round_off_swamps_the_differences():
    offset = 1e12  # f ~ 1e12: one ulp of f is 1.2e-4, against a step of 7e-6
    f = lambda t: offset + dk.namespace(t).sum(t * t)  # noqa: E731
    theta = np.array([0.3, -0.7])
    with pytest.warns(GradientCheckInconclusive):
        check = check_gradient(f, theta, grad=lambda t: 2 * t)
    assert check.verdict == "inconclusive"
    fd = [c for c in check.comparisons if c.b == "central"]
    # a fixed tolerance would have failed: the differences are off by far more than 1e-3 relative
    assert max(abs(c.value_a - c.value_b) / abs(c.value_a) for c in fd) > 1e-3


# --- no false failure over the MLP family -------------------------------------------------------------------

@st.composite
def mlps(draw):
    layers = [draw(st.integers(1, 3))] + draw(st.lists(st.integers(1, 4), max_size=2)) + [draw(st.integers(1, 3))]
    return dk.problems.mlp(layers, activation=draw(st.sampled_from(sorted(dk.nn.ACTIVATIONS))),
                           loss=draw(st.sampled_from(sorted(dk.nn.COSTS))), l2=draw(st.sampled_from([0.0, 1e-3, 0.5])),
                           batch=draw(st.integers(1, 6)), seed=draw(st.integers(0, 10 ** 6)),
                           scale=draw(st.floats(0.2, 2.0)))


KINKED = {"relu", "leaky_relu"}  # piecewise linear: the slope jumps where a pre-activation crosses 0
SATURATED = 1e-7  # below: u (1.1e-16) over the gradient is past EXACT_RTOL (1.5e-8), for unit-size terms


def _kink_signs(prob, theta) -> np.ndarray:
    """The side of its kink (z >= 0) of every hidden pre-activation, recomputed by hand."""
    blocks, a, sides = prob.unpack(theta), prob.data["X"], []
    slope = 0.01 if prob.meta["activation"] == "leaky_relu" else 0.0
    for l in range(1, len(prob.meta["layers"]) - 1):  # the hidden layers only: the output layer is linear
        z = a @ blocks[f"W{l}"] + blocks[f"b{l}"]
        sides.append((z >= 0).ravel())
        a = np.where(z >= 0, z, slope * z)
    return np.concatenate(sides) if sides else np.zeros(0, dtype=bool)


def _stencil_straddles_a_kink(prob, h: float) -> bool:
    """Whether some central-difference stencil of check_gradient (theta +- h v, +- 2h v) crosses a kink."""
    theta, P = prob.theta0, prob.size
    rng = np.random.default_rng(0)  # check_gradient's default seed: the same random directions
    dirs = list(np.eye(P)) if P <= 64 else []
    dirs += [v / np.linalg.norm(v) for v in (rng.standard_normal(P) for _ in range(3))]
    here = _kink_signs(prob, theta)
    return any((_kink_signs(prob, theta + s * h * v) != here).any() for v in dirs for s in (-2, -1, 1, 2))


def _check_family(prob):
    """Never a false failure, and 'pass', wherever the error model's premise holds.

    Central differences assume f smooth on the stencil [theta - 2h v, theta + 2h v].  A relu-type net with a
    pre-activation that close to its kink breaks that premise: the check then says 'inconclusive' (the Richardson
    estimate sees the jump in slope) or, when the kink is within one step, gives a false failure (a known
    limitation, pinned by the strict xfail below).  Those draws are discarded, not judged.
    """
    h = STEP * max(1.0, float(np.max(np.abs(prob.theta0))))
    assume(prob.meta["activation"] not in KINKED or not _stencil_straddles_a_kink(prob, h))
    # a saturated net (every probability within ~1e-9 of its label): the whole gradient is the rounding of
    # unit-size terms, which neither |f| nor |grad| shows, so no tolerance drawn from them can judge it (documented
    # in dk.testing: pass atol there)
    assume(np.max(np.abs(mlp_backprop(prob, prob.theta0)[1])) > SATURATED)
    with warnings.catch_warnings():
        warnings.simplefilter("error", GradientCheckInconclusive)  # none expected where f is smooth on the stencil
        check = check_gradient(prob, grad=lambda t: mlp_backprop(prob, t)[1])
    assert check.step == h and check.verdict == "pass"


def _with_a_kink_near_theta(steps_away: float):
    """A leaky-relu net whose first row's pre-activation z[0, 0] sits ``steps_away`` check steps from its kink."""
    prob = dk.problems.mlp([2, 3, 1], activation="leaky_relu", loss="bce", batch=4, seed=3)
    theta = prob.theta0.copy()
    h = check_gradient(prob, grad=lambda t: mlp_backprop(prob, t)[1]).step
    b1 = next(b for b in prob.blocks if b.name == "b1")
    theta[b1.start] = -(prob.data["X"][0] @ prob.unpack(theta)["W1"][:, 0]) + steps_away * h
    return prob, dataclasses.replace(prob, theta0=theta)


def test_the_kink_detector_sees_a_kink_inside_the_stencil():
    prob, moved = _with_a_kink_near_theta(1.5)  # the 2h points along b1[0] cross it, the h points do not
    h = check_gradient(prob, grad=lambda t: mlp_backprop(prob, t)[1]).step
    assert not _stencil_straddles_a_kink(prob, h) and _stencil_straddles_a_kink(moved, h)


@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason="known false failure: with a kink within h of theta both D(h) and D(2h) straddle it, so "
                          "the Richardson estimate misses the jump and a correct gradient is reported FAILED (hypothesis "
                          "found one: mlp([3, 3, 3, 3], leaky_relu, bce, batch=1, seed=174), z1[1] = 7.7e-7)")
def test_a_kink_within_one_step_is_not_a_false_failure():
    _, moved = _with_a_kink_near_theta(0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GradientCheckInconclusive)
        check_gradient(moved, grad=lambda t: mlp_backprop(moved, t)[1])


# 200 examples take ~1 s here (measured), so the 200 run by default; 2000 under -m slow, derandomized: fresh
# draws found three cancellation corners this stop (pinned above), a third of runs, and CI must not flip on a draw
@settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(mlps())
def test_no_false_failure_on_200_correct_mlps(prob):
    _check_family(prob)


def test_a_small_component_made_of_cancelling_terms_is_judged_to_the_rounding_of_the_large_ones():
    # the draw that the 2000 random MLPs found: W1, W2 and b1 reach the cost through a relu path whose gradient is
    # ~1e-12, the difference of terms the size of the largest component (0.33); the tape and the hand-written
    # backprop round those terms differently, by 1.5e-16, 1e4 times their own ~1e-20 relative allowance
    prob = dk.problems.mlp([1, 1, 3, 2], activation="relu", loss="softmax_cross_entropy", l2=0.0, batch=3, seed=13,
                           scale=2.0)
    tape, hand = dk.gradient(prob).grad, mlp_backprop(prob, prob.theta0)[1]
    small = np.abs(hand) < 1e-9
    assert small.sum() >= 5 and np.max(np.abs(tape - hand)) > 1e-8 * 1.5e-8 * np.max(np.abs(hand))  # (the old floor)
    assert np.max(np.abs(hand)) > SATURATED  # (not a saturated net: the family's premise holds)
    assert _check_family(prob) is None  # a pass, with the rounding of the large components allowed
    with pytest.raises(AssertionError, match="disagree"):  # and a real error in a small component still fails
        check_gradient(prob, grad=lambda t: mlp_backprop(prob, t)[1] + np.where(small, 1e-13, 0.0))


SATURATED_NET = dict(layers=[1, 4, 3, 2], activation="identity", loss="softmax_cross_entropy", l2=0.0, batch=1,
                     seed=514045, scale=2.0)  # found by the 2000 random MLPs: max |grad| 6.6e-10


def test_a_saturated_net_is_judged_with_the_documented_atol():
    prob = dk.problems.mlp(**SATURATED_NET)
    assert np.max(np.abs(mlp_backprop(prob, prob.theta0)[1])) < SATURATED  # outside the family's premise
    assert check_gradient(prob, grad=lambda t: mlp_backprop(prob, t)[1], atol=1e-14).verdict == "pass"
    with pytest.raises(AssertionError, match="disagree"):  # and a wrong component is still caught under that atol
        check_gradient(prob, grad=lambda t: mlp_backprop(prob, t)[1] + np.eye(prob.size)[3] * 1e-12, atol=1e-14)


NEAR_A_ZERO_RESIDUAL = dict(layers=[1, 1], activation="identity", loss="half_squared_error", l2=0.0, batch=1,
                            seed=499, scale=1.021484375)  # f = r^2 / 2 with r ~ 1e-3 the difference of unit-size terms


@pytest.mark.xfail(strict=True, reason="known limit (dk.testing's docstring): the exact comparisons' tolerances come "
                                       "from the gradients, and these are far below the unit-size terms they are "
                                       "computed from, whose rounding they do not show")
def test_a_saturated_net_fails_falsely_without_atol():
    prob = dk.problems.mlp(**SATURATED_NET)
    check_gradient(prob, grad=lambda t: mlp_backprop(prob, t)[1])


def test_a_near_zero_residual_gets_the_floor_of_its_terms_and_still_catches_an_error():
    # f = r^2 / 2 = 1.8e-5 with r the difference of unit-size terms: u |f| / h is 1/230 of f's real rounding, which
    # sum |adjoint| |value| over f's steps sees (4.2e-3 here, hand-checked on r: |r| |z| + |r| |r| + ...)
    prob = dk.problems.mlp(**NEAR_A_ZERO_RESIDUAL)
    fn = lambda t: prob.fn(t)  # noqa: E731
    assert rounding_scale(fn, prob.theta0) > 100 * abs(float(fn(prob.theta0)))
    assert check_gradient(prob, grad=lambda t: mlp_backprop(prob, t)[1]).verdict == "pass"
    with pytest.raises(AssertionError, match="disagree"):
        check_gradient(prob, grad=lambda t: mlp_backprop(prob, t)[1] + np.eye(prob.size)[0] * 1e-9)


def test_rounding_scale_is_sum_of_adjoint_times_value_over_the_steps_and_zero_for_plain_numpy():
    # f = (t0 - t1)^2 / 2 at (3, 1): r = 2 (adjoint r = 2), r^2 = 4 (adjoint 1/2), f = 2 (adjoint 1): 4 + 2 + 2
    assert rounding_scale(lambda t: (t[0] - t[1]) ** 2 / 2, np.array([3.0, 1.0])) == 8.0
    assert rounding_scale(lambda t: float(np.sum(np.asarray(t))), np.ones(2)) == 0.0  # (not tape code: |f| only)


@pytest.mark.slow
@settings(max_examples=2000, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(mlps())
def test_no_false_failure_on_2000_random_correct_mlps(prob):
    _check_family(prob)


# --- assert_stable ----------------------------------------------------------------------------------------

def test_assert_stable_passes_stable_and_names_the_first_naive_failure():
    assert assert_stable(lambda t: dk.nn.log_sigmoid(t)) == 17
    with pytest.raises(AssertionError, match=r"first at input #12 \(-709.8\)") as err:
        assert_stable(lambda t: dk.nn.sigmoid(t, stable=False))  # 0 * inf in the gradient below -709.78
    assert "3 of 17 inputs" in str(err.value)
    bce = lambda t: dk.nn.binary_cross_entropy(t, np.ones(2), stable=False)  # noqa: E731
    with pytest.raises(AssertionError, match=r"first at input #0 \(\[36.8 -1. \]\): value nan"):
        assert_stable(bce, [np.array([36.8, -1.0]), np.array([1.0, 2.0])])


# --- bad input --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("call, error, match", [
    (lambda: check_gradient(lambda t: t * 2, np.ones(3)), ValueError, "must return a scalar.*shape \\(3,\\)"),
    (lambda: check_gradient(_cube, np.array([1.0, np.nan])), ValueError, "non-finite.*theta\\[1\\]=nan"),
    (lambda: check_gradient(_cube, np.ones(2), methods=("reverse", "backprop")), ValueError,
     "unknown method 'backprop'; valid methods: reverse"),
    (lambda: check_gradient(_cube, np.ones(2), rtol=-1e-6), ValueError, "rtol must be a finite number >= 0"),
    (lambda: check_gradient(_cube, np.ones(2), atol=-1.0), ValueError, "atol must be a finite number >= 0"),
    (lambda: check_gradient(_cube, np.ones(2), grad=np.ones(3)), ValueError, "grad has shape \\(3,\\).*\\(2,\\)"),
    (lambda: check_gradient(_cube, np.ones(2), methods="reverse"), TypeError, "sequence of method names"),
    (lambda: check_gradient(_cube, np.ones(2), methods=("reverse",)), ValueError, "nothing to compare"),
    (lambda: assert_stable(_cube, [np.array([1.0, np.inf])]), ValueError, "non-finite"),
])
def test_bad_input_gets_a_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_finite_difference_method_names_are_refused_with_the_reason():
    dk.methods()  # loads the method modules
    numeric = [m.name for m in dk.methods.__globals__["METHODS"].values() if m.kind == "numeric" and m.available]
    if not numeric or numeric == ["central"]:
        pytest.skip("no finite-difference method other than central is registered yet")
    other = next(n for n in numeric if n != "central")
    with pytest.raises(ValueError, match=f"{other!r} is a finite-difference method.*'central'"):
        check_gradient(_cube, np.ones(2), methods=("reverse", other))


def test_step_and_tolerance_come_from_the_error_model():
    check = check_gradient(_cube, np.array([0.5, 3.0]), grad=lambda t: 3 * t ** 2)
    assert check.step == pytest.approx((3 * 2.0 ** -53) ** (1 / 3) * 3.0)  # optimal step, scaled by max|theta|
    fd = [c for c in check.comparisons if c.b == "central" and c.where == "theta[1]"][0]
    # truncation of central differences on x^3 is h^2 f'''/6 = h^2 exactly: the floor is of that order
    assert check.step ** 2 < fd.floor < 100 * check.step ** 2
    # (x+h)^3 - (x-h)^3 = 6 x^2 h + 2 h^3: the difference quotient is 3x^2 + h^2, up to f's round-off
    assert abs(fd.value_b - fd.value_a - check.step ** 2) <= 4 * 2.0 ** -53 * 28 / check.step
    assert math.isclose(fd.tol, fd.floor)


# --- the first line says what the verdict means ------------------------------------------------------------

def test_headlines_count_what_each_verdict_means():
    theta = np.array([1.0, -2.0])
    good = check_gradient(_cube, theta, grad=lambda t: 3 * t ** 2)
    n = len(good.comparisons)
    assert str(good).splitlines()[0] == f"check_gradient passed: all {n} checks agree (P=2)"
    assert "0 of" not in str(good)
    with pytest.raises(AssertionError) as err:
        check_gradient(_cube, theta, grad=lambda t: 2 * t ** 2)  # wrong where t != 0: 2 t^2 against 3 t^2
    first = str(err.value).splitlines()[0]
    assert first.startswith("check_gradient FAILED: ") and "checks disagree" in first
    failed, total = (int(w) for w in first.split(": ")[1].split(" checks")[0].split(" of "))
    agree = int(first.split(", ")[-1].split(" agree")[0])
    assert 0 < failed <= total and failed + agree <= total
    with pytest.warns(GradientCheckInconclusive) as caught:
        check_gradient(_cube, theta, grad=lambda t: 3 * t ** 2, rtol=1e-14)
    assert "INCONCLUSIVE: " in str(caught[0].message) and "undecided" in str(caught[0].message)
