"""GradBench ``llsq`` (cmpad's llsq_obj): y(x) = 1/2 sum_i (s_i - sum_j x_j t_i^j)^2 and its gradient.

t_i = -1 + 2 i / (n - 1), s_i = sign(t_i), i < n; x has m entries.  Input
``{"x": [m floats], "n": int}``.  The eval seeds ``np.random.seed(31337)``
and draws ``x = rand(m)`` per (n, m), in order of n * m (m = 128 by default).

>>> input = {"x": [1.0, 0.0], "n": 3}     # t = -1, 0, 1 and s = -1, 0, 1: residuals -2, -1, 0
>>> float(problem(input).objective(np.array(input["x"])))
2.5
"""
from __future__ import annotations

import numpy as np

import diffkit as dk

from ..jobs import Problem, gradient_job, primal_job
from ._inputs import integer, vector

__all__ = ["objective", "problem", "FUNCTIONS", "inputs", "SIZES", "TEST_SIZES"]


def design(n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """The constant powers ``T[i, j] = t_i^j`` and the targets ``s = sign(t)``."""
    t = -1.0 + np.arange(n) * 2.0 / (n - 1) if n > 1 else np.array([-1.0])
    return t[:, None] ** np.arange(m)[None, :], np.sign(t)


def objective(x, powers, signs):
    xp = dk.namespace(x)
    residual = signs - powers @ x
    return xp.sum(residual * residual) / 2


def problem(input) -> Problem:
    x, n = vector(input, "x"), integer(input, "n")
    powers, signs = design(n, x.size)
    return Problem(x, lambda theta: objective(theta, powers, signs))


FUNCTIONS = {
    "primal": lambda input, engine: primal_job(problem(input), engine),
    "gradient": lambda input, engine: gradient_job(problem(input), engine),
}

SIZES = [{"n": n, "m": 128} for n in (16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8196, 16392)]
TEST_SIZES = [{"n": 2, "m": 1}, {"n": 9, "m": 4}, {"n": 16, "m": 6}]


def inputs(sizes=None, seed: int = 31337):
    """``(description, input)`` in the eval's order (by n * m), one seeded stream of ``rand(m)`` draws."""
    state = np.random.RandomState(seed)
    for size in sorted(SIZES if sizes is None else sizes, key=lambda s: s["n"] * s["m"]):
        yield f"n={size['n']},m={size['m']}", {"x": state.random_sample(size["m"]).tolist(), "n": size["n"]}
