"""Second derivatives where a node's gradient gathers a plain contribution and then a traced one.

In ``sum(t * t) + sum(t * w)`` the sweep reaches t first through ``t * w``
(a plain array, g w, which the tape adopts as t's accumulator and adds into in
place) and then through ``t * t`` (2 g t: a dual under forward-over-reverse, a
tape array under reverse-over-reverse).  The closed form: H = 2 I.
"""
from __future__ import annotations

import numpy as np
import pytest

import diffkit as dk

W = np.array([1.0, 2.0, 3.0])
THETA = np.array([0.5, 1.0, 2.0])


def f(t):
    xp = dk.namespace(t)
    return xp.sum(t * t) + xp.sum(t * W)


def f_other_order(t):
    xp = dk.namespace(t)
    return xp.sum(t * W) + xp.sum(t * t)


@pytest.mark.parametrize("mode", ["forward_over_reverse", "reverse_over_reverse"])
def test_hvp_when_the_traced_contribution_comes_first(mode):
    np.testing.assert_array_equal(dk.hvp(f_other_order, THETA, np.array([1.0, -2.0, 0.5]), mode=mode).hvp,
                                  [2.0, -4.0, 1.0])


@pytest.mark.xfail(strict=True, reason="Tape.backward adds a traced contribution into a plain accumulator it owns "
                                       "in place (acc += c in diffkit/tape/core.py): numpy refuses a Dual or a tape "
                                       "array as the operand of an in-place ufunc")
@pytest.mark.parametrize("mode", ["forward_over_reverse", "reverse_over_reverse"])
def test_hvp_when_the_plain_contribution_comes_first(mode):
    np.testing.assert_array_equal(dk.hvp(f, THETA, np.array([1.0, -2.0, 0.5]), mode=mode).hvp, [2.0, -4.0, 1.0])
