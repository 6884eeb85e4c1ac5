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


CASES = [
    (shared_then_own, lambda t: 2 * t + np.array([1.0, 2.0, 1.0, 2.0])),
    (twice_to_one, lambda t: 4 * t + 1),
    (fan_out_of_a_view, lambda t: 18 * t + np.array([15.0, 0.0, 0.0, 0.0])),  # x = 3t: 2x * 3, and 5 * 3 at t0
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
