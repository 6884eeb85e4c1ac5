"""GradBench ``saddle``: the saddle point of f(x, y) = |x|^2 - |y|^2 by gradient descent over gradient ascent.

With x = (x1, y1) and y = (x2, y2) in the eval's notation, f = (x1^2 + y1^2)
- (x2^2 + y2^2).  Step 1 finds x = argmin_x max_y f(x, y): every value of
the outer objective runs an inner gradient ascent in y from the start
point, and the outer gradient differentiates through that ascent (nested
AD).  Step 2 finds y = argmax_y f(x, y) at that x, with the outer mode.
Every descent is GradBench's (:func:`._nested.argmin`), started at the
input's ``{"start": [s1, s2]}``.  ``ff``, ``fr``, ``rf``, ``rr`` each return
x and y concatenated (4 numbers); the letters name the modes (outer argmin,
inner argmax) under methods reverse and forward_ad.  The eval expects
8.246324826140356e-06 four times from (1, 1).

The outer objective and its gradient, the inner ascent differentiated through (y* does not depend on x, so
the gradient is 2 x):

>>> from diffkit.gradbench.evals._nested import forward, reverse
>>> start, x = np.array([1.0, 1.0]), np.array([1.0, 2.0])
>>> round(float(inner_maximum(x, start, reverse)), 9)
5.0
>>> reverse(lambda x: inner_maximum(x, start, forward), x).tolist()
[2.0, 4.0]
"""
from __future__ import annotations

import numpy as np

import diffkit as dk

from ..jobs import Problem, floats
from ._inputs import vector
from ._nested import argmax, argmin, maximum, reverse, variant_functions

__all__ = ["objective", "inner_maximum", "solve", "problem", "FUNCTIONS", "inputs", "SIZES", "TEST_SIZES"]


def objective(x, y):
    """f(x, y) = |x|^2 - |y|^2; either may be traced (x by the outer level, y by the inner one)."""
    xp = dk.namespace(x, y)
    return xp.sum(x * x) - xp.sum(y * y)


def inner_maximum(x, start: np.ndarray, grad):
    """max_y f(x, y), by gradient ascent from ``start`` with gradients by ``grad``: the outer objective."""
    return maximum(lambda y: objective(x, y), grad, start)


def solve(start: np.ndarray, outer, inner) -> np.ndarray:
    """(x, y): step 1's argmin (outer gradients by ``outer``, the inner ascent's by ``inner``), step 2's argmax."""
    x = argmin(lambda x: inner_maximum(x, start, inner), outer, start)
    y = argmax(lambda y: objective(x, y), outer, start)
    return np.concatenate([x, y])


def _start(input) -> np.ndarray:
    return vector(input, "start", size=2)


def problem(input) -> Problem:
    """theta = x; the objective max_y f(x, y) at the start point, the inner ascent by reverse mode."""
    start = _start(input)
    return Problem(start, lambda theta: inner_maximum(theta, start, reverse))


FUNCTIONS = variant_functions("saddle", solve, _start, floats)

SIZES = [{"start": [1.0, 1.0]}]
TEST_SIZES = [{"start": [1.0, 1.0]}, {"start": [-0.5, 2.0]}]


def inputs(sizes=None, seed: int = 0):
    """The eval's one input, ``{"start": [1.0, 1.0]}`` (no randomness: ``seed`` is unused)."""
    for size in SIZES if sizes is None else sizes:
        s1, s2 = size["start"]
        yield f"start=({s1:g},{s2:g})", {"start": [float(s1), float(s2)]}
