"""GradBench ``particle``: steer a charged particle to the origin, a gradient descent through an ODE of gradients.

Two fixed unit charges at (10, 10 - w) and (10, 0) make the potential
p(x; w) = 1/|x - (10, 10 - w)| + 1/|x - (10, 0)|.  A unit particle leaves
x = (0, 8) with velocity (0.75, 0) under the force -grad_x p (an inner
derivative); naive Euler steps of 0.1 run until the next step would leave
y > 0, and linear interpolation along the velocity gives the crossing x(t_f)
of the x-axis.  ``ff``, ``fr``, ``rf``, ``rr`` each return the w that
GradBench's gradient descent (:func:`._nested.argmin`) finds for
min_w x_0(t_f)^2 from the input's ``{"w": w0}``: its outer gradient
differentiates the trajectory, and every inner gradient in it, by w.  The
letters name the modes (outer argmin, inner force) under methods reverse and
forward_ad; the eval expects 0.2071918746486116 from w0 = 0.

Every function runs that descent from w0 (seconds); here the pieces, nested:

>>> from diffkit.gradbench.evals._nested import forward, reverse
>>> x = np.array([0.0, 8.0])
>>> [round(float(g), 8) for g in reverse(lambda y: potential(y, 0.0), x)]  # grad_x p: the force's minus
[0.01419006, -0.00192338]
>>> d_force = forward(lambda t: reverse(lambda y: potential(y, t[0]), x), np.array([0.0]))
>>> [round(float(g), 8) for g in d_force.ravel()]  # d/dw grad_x p: -(0, 1)/r^3 + 3 d d_y/r^5, d = x - (10, 10)
[0.00054396, -0.00083407]
>>> round(float(miss(0.0, reverse)), 6), float(miss(0.2071918746486116, reverse)) < 1e-8
(3.199079, True)
"""
from __future__ import annotations

import numbers

import numpy as np

import diffkit as dk

from ..jobs import Problem, as_float
from ._inputs import field
from ._nested import argmin, plain, reverse, variant_functions

__all__ = ["potential", "miss", "solve", "problem", "FUNCTIONS", "inputs", "SIZES", "TEST_SIZES"]

X0, XDOT0, DT = np.array([0.0, 8.0]), np.array([0.75, 0.0]), 0.1
# The charges' positions, one row each, at w = 0 and per unit of w: (10, 10 - w) and (10, 0).
CHARGES, PER_W = np.array([[10.0, 10.0], [10.0, 0.0]]), np.array([[0.0, -1.0], [0.0, 0.0]])


def potential(x, w):
    """p(x; w): the two charges' potential at x (2 entries); w may be traced by an outer level.

    Both charges in one (2, 2) array: a nested gradient through six array ops costs half what it costs through
    the sixteen scalar ones of the same sum.
    """
    xp = dk.namespace(x, w)
    d = x - (CHARGES + w * PER_W)
    return xp.sum(1.0 / xp.sqrt(xp.sum(d * d, axis=1)))


def miss(w, grad):
    """x_0(t_f)^2, the crossing's squared distance from the origin, with the force by ``grad`` (a mode's operator)."""
    x, xdot = X0, XDOT0
    while True:
        x_new = x + DT * xdot
        if not plain(x_new)[1] > 0:  # (a decision: read off the traces, not recorded)
            break
        xddot = -grad(lambda y: potential(y, w), x)  # at the step's start, as the Euler rule has it
        x, xdot = x_new, xdot + DT * xddot
    t_f = -x[1] / xdot[1]  # the last point above the axis, moved along its velocity to y = 0
    crossing = x[0] + t_f * xdot[0]
    return crossing * crossing


def solve(w0: float, outer, inner) -> float:
    """The w that gradient descent from ``w0`` finds, outer gradients by ``outer``, the force by ``inner``."""
    return argmin(lambda t: miss(t[0], inner), outer, np.array([w0]))[0]


def _start(input) -> float:
    w = field(input, "w")
    if isinstance(w, bool) or not isinstance(w, numbers.Real) or not np.isfinite(w):
        raise ValueError(f"input.w must be a finite number; got {w!r}")
    return float(w)


def problem(input) -> Problem:
    """theta = [w]; the objective x_0(t_f)^2 at w, its force by reverse mode (what an outer level differentiates)."""
    return Problem(np.array([_start(input)]), lambda theta: miss(theta[0], reverse))


FUNCTIONS = variant_functions("particle", solve, _start, as_float)

SIZES = [{"w": 0.0}]
TEST_SIZES = [{"w": 0.0}]  # (no start is cheap: from 0.2 as from 0, the descent takes ~80 steps)


def inputs(sizes=None, seed: int = 0):
    """The eval's one input, ``{"w": 0.0}`` (no randomness: ``seed`` is unused)."""
    for size in SIZES if sizes is None else sizes:
        yield f"w={size['w']}", {"w": float(size["w"])}
