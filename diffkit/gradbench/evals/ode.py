"""GradBench ``ode`` (cmpad's an_ode): s classical Runge-Kutta steps over [0, 2] of y' = f(x, y), y(0) = 0.

f_0 = x_0 and f_i = x_i y_{i-1} for i > 0.  Input ``{"x": [n floats], "s": int}``.
``primal`` returns y(2), n floats; ``gradient`` is the gradient of its last
entry y_{n-1}(2) with respect to x, n floats.  The eval seeds 31337 and draws
``x = rand(n)`` per (n, s) in order of n * s.

>>> y = problem({"x": [1.0, 1.0], "s": 4}).primal(np.array([1.0, 1.0]))   # y0 = t, y1 = t^2/2: RK4 is exact
>>> [round(float(v), 12) for v in y]
[2.0, 2.0]
"""
from __future__ import annotations

import numpy as np

import diffkit as dk

from ..jobs import Problem, gradient_job, primal_job
from ._inputs import integer, vector

__all__ = ["solve", "problem", "FUNCTIONS", "inputs", "SIZES", "TEST_SIZES"]

END_TIME = 2.0


def solve(x, steps: int):
    """y(2) after ``steps`` RK4 steps, with whole-vector operations (one tape node each)."""
    xp = dk.namespace(x)
    first, rest = x[:1], x[1:]

    def rate(y):
        return xp.concatenate([first, rest * y[:-1]])

    h = END_TIME / steps
    y = x * 0.0  # y(0) = 0, in x's namespace (a tape array on the tape)
    for _ in range(steps):
        k1 = rate(y)
        k2 = rate(y + (h / 2) * k1)
        k3 = rate(y + (h / 2) * k2)
        k4 = rate(y + h * k3)
        y = y + (h / 6) * (k1 + 2 * k2 + 2 * k3 + k4)
    return y


def problem(input) -> Problem:
    x, steps = vector(input, "x"), integer(input, "s")
    return Problem(x, lambda theta: solve(theta, steps)[-1], primal=lambda theta: solve(theta, steps))


FUNCTIONS = {
    "primal": lambda input, engine: primal_job(problem(input), engine, encode=lambda y: np.asarray(y).tolist()),
    "gradient": lambda input, engine: gradient_job(problem(input), engine),
}

SIZES = [{"n": n, "s": s} for n in (1000, 10000, 100000) for s in (1, 10, 100)]
TEST_SIZES = [{"n": 1, "s": 1}, {"n": 5, "s": 3}, {"n": 12, "s": 10}]


def inputs(sizes=None, seed: int = 31337):
    """``(description, input)`` in the eval's order (by n * s), one seeded stream of ``rand(n)`` draws."""
    state = np.random.RandomState(seed)
    for size in sorted(SIZES if sizes is None else sizes, key=lambda v: v["n"] * v["s"]):
        yield f"n={size['n']},s={size['s']}", {"x": state.random_sample(size["n"]).tolist(), "s": size["s"]}
