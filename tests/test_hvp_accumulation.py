"""Second derivatives where a node's gradient gathers a plain contribution and then a traced one.

In ``sum(t * t) + sum(t * w)`` the sweep reaches t first through ``t * w``
(a plain array, g w, which the tape adopts as t's accumulator and adds into in
place) and then through ``t * t`` (2 g t: a dual under forward-over-reverse, a
tape array under reverse-over-reverse), which must not be added in place.
The closed form: H = 2 I.
"""
from __future__ import annotations

import numpy as np
import pytest

import diffkit as dk

W = np.array([1.0, 2.0, 3.0])
THETA = np.array([0.5, 1.0, 2.0])
V = np.array([1.0, -2.0, 0.5])


def f(t):
    xp = dk.namespace(t)
    return xp.sum(t * t) + xp.sum(t * W)


def f_other_order(t):
    xp = dk.namespace(t)
    return xp.sum(t * W) + xp.sum(t * t)


@pytest.mark.parametrize("fn", [f, f_other_order])
@pytest.mark.parametrize("mode", ["forward_over_reverse", "reverse_over_reverse"])
def test_hvp_whichever_contribution_comes_first(fn, mode):
    np.testing.assert_array_equal(dk.hvp(fn, THETA, V, mode=mode).hvp, 2.0 * V)
