"""The sweep adds a node's contributions in place only into an array that nothing else holds.

A contribution is stored as it comes; at a node's second contribution the sweep asks
whether the stored array is held by that node's gradient slot alone, and only then adds
into it.  ``a + b`` sends the same g to both a and b (one array, two slots), and
``t + t`` sends it twice to one slot: adding into it in place would change the other
slot's gradient.  Every expected gradient below is a closed form worked by hand.
"""
from __future__ import annotations

import numpy as np
import pytest

import diffkit as dk

THETA = np.array([0.5, -1.0, 2.0, 3.0])


def shared_then_own(t):
    # the sweep reaches a + b first (one g for both), then a * a and b * b
    xp = dk.namespace(t)
    a, b = t[0:2], t[2:4]
    return xp.sum(a * a) + xp.sum(b * b) + xp.sum((a + b) * np.array([1.0, 2.0]))


def twice_to_one(t):
    # d/dt sum((t + t) * t) = 4 t, then + 1 from sum(t), reached after the shared g
    xp = dk.namespace(t)
    return xp.sum(t) + xp.sum((t + t) * t)


def fan_out_of_a_view(t):
    # x[0] and x both used: the scatter of x[0] lands on a gradient that a rule made
    xp = dk.namespace(t)
    x = t * 3.0
    return xp.sum(x * x) + x[0] * 5.0


def identity_rule_after_a_view(t):
    # x + y hands one g to x and to y, while x already holds a view (reshape's rule, swept first): the sum of
    # the two is a new array, not g added into, which y still reads. d/dt: x = 2 t[0:2] gets 1 + 1, so 4;
    # y = 5 t[2:4] gets 1, so 5
    xp = dk.namespace(t)
    x, y = t[0:2] * 2.0, t[2:4] * 5.0
    s = x + y
    r = xp.reshape(x, (2, 1))
    return xp.sum(s) + xp.sum(r)


CASES = [
    (shared_then_own, lambda t: 2 * t + np.array([1.0, 2.0, 1.0, 2.0])),
    (twice_to_one, lambda t: 4 * t + 1),
    (fan_out_of_a_view, lambda t: 18 * t + np.array([15.0, 0.0, 0.0, 0.0])),  # x = 3t: 2x * 3, and 5 * 3 at t0
    (identity_rule_after_a_view, lambda t: np.array([4.0, 4.0, 5.0, 5.0])),
]


@pytest.mark.parametrize("f, grad", CASES, ids=[c[0].__name__ for c in CASES])
@pytest.mark.parametrize("compiled", [False, True])
def test_each_contribution_lands_once_in_the_right_gradient(f, grad, compiled):
    for theta in (THETA, -THETA, THETA[::-1].copy()):
        r = dk.gradient(f, theta, compile=compiled)
        np.testing.assert_allclose(r.grad, grad(theta), rtol=1e-15, atol=0)


@pytest.mark.parametrize("f, grad", CASES, ids=[c[0].__name__ for c in CASES])
def test_the_sweep_leaves_a_gradient_it_returned_untouched(f, grad):
    # backward() hands back every node's gradient: a later contribution must not have been added into one of them
    from diffkit.tape import Tape
    tape = Tape()
    x = tape.leaf(THETA)
    grads = tape.backward(f(x))
    np.testing.assert_allclose(grads[x.index], grad(THETA), rtol=1e-15, atol=0)


# --- blocks of a flat theta: the gradient buffer starts empty and each block is written where it lands ---------

N = 1000


@pytest.fixture(params=[0, 10 ** 9], ids=["zeroed late", "zeroed at once"])
def nan_filled_buffers(request, monkeypatch):
    # the sweep's empty buffers hold whatever memory held: NaN here, so that an entry left unwritten shows;
    # both sides of the size from which the unreached entries are zeroed late
    from diffkit.tape import plans
    monkeypatch.setattr(plans, "EMPTY", lambda shape: np.full(shape, np.nan))
    monkeypatch.setattr(plans, "LAZY_ZEROS", request.param)


def blocks_with_gaps(t):
    # entries 0..99, 400..499 and 900..999 are read nowhere: their gradient is exactly 0
    xp, u = dk.namespace(t), t[100:400]
    return xp.sum(u * u) + 3.0 * xp.sum(t[500:900])


def overlapping_blocks(t):
    # the sweep reaches t[200:600] first, then t[100:250], half on entries t[200:600] wrote: those add
    xp = dk.namespace(t)
    first = xp.sum(t[0:300]) + 2.0 * xp.sum(t[500:1000]) + xp.sum(t[100:250])
    u = t[200:600]
    return first + xp.sum(u * u)


def blocks_and_the_whole(t):
    # a block first, then theta itself through a rule: the unreached entries must be zeros before the add
    xp = dk.namespace(t)
    whole = xp.sum(t * 5.0)
    u = t[700:800]  # (made after t * 5: the sweep reaches it first)
    return whole + xp.sum(u * u)


def blocks_of_a_computed_vector(t):
    # the blocks are of y = 2 t (a node, not a leaf): y's gradient is read when the sweep reaches y
    xp = dk.namespace(t)
    y = t * 2.0
    u = y[0:10]
    return xp.sum(u * u) + xp.sum(y[990:1000])


def a_block_then_an_entry(t):
    xp = dk.namespace(t)
    return xp.sum(t[10:20]) + t[5] * 7.0 + t[15] * 7.0


def _where(n, parts):
    out = np.zeros(n)
    for sl, value in parts:
        out[sl] += value
    return out


BLOCK_CASES = [
    (blocks_with_gaps, lambda t: _where(N, [(slice(100, 400), 2 * t[100:400]), (slice(500, 900), 3.0)])),
    (overlapping_blocks, lambda t: _where(N, [(slice(0, 300), 1.0), (slice(500, 1000), 2.0), (slice(100, 250), 1.0),
                                               (slice(200, 600), 2 * t[200:600])])),
    (blocks_and_the_whole, lambda t: _where(N, [(slice(None), 5.0), (slice(700, 800), 2 * t[700:800])])),
    (blocks_of_a_computed_vector, lambda t: _where(N, [(slice(0, 10), 8 * t[0:10]), (slice(990, 1000), 2.0)])),
    (a_block_then_an_entry, lambda t: _where(N, [(slice(10, 20), 1.0), (5, 7.0), (15, 7.0)])),
]


@pytest.mark.parametrize("f, by_hand", BLOCK_CASES, ids=[c[0].__name__ for c in BLOCK_CASES])
@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_blocks_of_theta_give_the_gradient_worked_by_hand(f, by_hand, compiled, nan_filled_buffers):
    theta = np.random.default_rng(3).standard_normal(N)
    grad = dk.compile(f, theta)(theta)[1] if compiled else dk.gradient(f, theta).grad
    np.testing.assert_allclose(grad, by_hand(theta), rtol=1e-15, atol=0)  # (sums in another order: an ulp)


# --- a broadcast input's gradient: its contributions summed over the broadcast axis ---------------------------
# The sweep sums a (m, n) contribution down to a bias's (n,) or a column's (m, 1) as a product with ones (BLAS)
# where the summed axis is at most BLAS_SUM_MAX long, with numpy's pairwise sum past it.  The reference is
# math.fsum of the same weights: the exact sum, rounded once.

import math  # noqa: E402

from hypothesis import given, settings, strategies as st  # noqa: E402
from hypothesis.extra.numpy import arrays  # noqa: E402

from diffkit.primitives.broadcasting import BLAS_SUM_MAX  # noqa: E402


def _bias_and_column_gradients(weights):
    m, n = weights.shape
    X = np.linspace(-1.0, 1.0, m * n).reshape(m, n)

    def f(t):  # d/db_j = sum_i w_ij, d/dy_i = -sum_j w_ij
        xp = dk.namespace(t)
        b, y = t[:n], xp.reshape(t[n:], (m, 1))
        return xp.sum(weights * (X + b)) + xp.sum(weights * (X - y))
    return dk.gradient(f, np.zeros(n + m)).grad


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 70), st.integers(1, 70)),
              elements=st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)))
def test_a_broadcast_inputs_gradient_is_the_sum_of_its_contributions(weights):
    m, n = weights.shape
    grad = _bias_and_column_gradients(weights)
    bias = [math.fsum(weights[:, j]) for j in range(n)]
    column = [-math.fsum(weights[i, :]) for i in range(m)]
    scale = np.abs(weights).sum() + 1e-300
    np.testing.assert_allclose(grad, bias + column, rtol=0, atol=8 * m * n * 2.0 ** -52 * scale)


def test_a_long_broadcast_axis_keeps_numpys_pairwise_sum():
    m = BLAS_SUM_MAX + 904  # past the BLAS route: 5000 rows of one column
    weights = np.random.default_rng(4).uniform(0.5, 1.5, (m, 1))
    grad = _bias_and_column_gradients(weights)
    assert abs(grad[0] - math.fsum(weights[:, 0])) <= 4 * 2.0 ** -52 * math.fsum(weights[:, 0])


def test_inf_and_nan_in_a_broadcast_inputs_contributions_carry_into_its_gradient():
    weights = np.ones((3, 4))
    weights[1, 0] = np.inf  # column 0: inf; row 1: inf
    weights[0, 2], weights[2, 2] = np.inf, -np.inf  # column 2: inf - inf = nan; rows 0 and 2 likewise
    weights[2, 3] = np.nan  # column 3 and row 2: nan
    with np.errstate(invalid="ignore"):  # (inf - inf: numpy says so, as it would for its own sum)
        grad = _bias_and_column_gradients(weights)
    assert grad[0] == np.inf and grad[1] == 3.0 and np.isnan(grad[2]) and np.isnan(grad[3])
    assert grad[4] == -np.inf and grad[5] == -np.inf and np.isnan(grad[6])


@pytest.mark.parametrize("n", [19, 80, 300])  # sum's g filled (361 entries), a broadcast view (6,400; 90,000)
def test_an_l2_terms_gradient_is_twice_its_weight_times_theta_exactly(n):
    # d/dt 3 sum(W * W) = 6 t; x * x is recorded as square, whose rule doubles g x (exact) in any order
    theta = np.random.default_rng(n).standard_normal(n * n)

    def f(t):
        xp = dk.namespace(t)
        W = xp.reshape(t, (n, n))
        return 3.0 * xp.sum(W * W)
    assert dk.gradient(f, theta).grad.tobytes() == (6.0 * theta).tobytes()
