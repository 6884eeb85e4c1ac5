"""GradBench ``lse``: LogSumExp of x and its gradient, composed from max, exp, sum and log as the eval asks.

Input ``{"x": [n floats]}``; ``primal`` returns a float, ``gradient`` a list of n.
The eval draws ``x = rand(n)`` after ``np.random.seed(31337)``, one draw per
size in its order (n = 2500 ... 1280000).

>>> [(name, len(input["x"])) for name, input in inputs([{"n": 3}, {"n": 2}])]
[('n=3', 3), ('n=2', 2)]
>>> x = next(inputs([{"n": 3}]))[1]["x"]
>>> round(float(logsumexp(np.array(x))), 12) == round(float(np.log(np.exp(x).sum())), 12)
True
"""
from __future__ import annotations

import numpy as np

import diffkit as dk

from ..jobs import Problem, gradient_job, primal_job
from ._inputs import vector

__all__ = ["logsumexp", "problem", "FUNCTIONS", "inputs", "SIZES", "TEST_SIZES"]


def logsumexp(x):
    """max + log(sum(exp(x - max))): the LogSumExp trick, in primitive elements."""
    xp = dk.namespace(x)
    top = xp.max(x)
    return top + xp.log(xp.sum(xp.exp(x - top)))


def problem(input) -> Problem:
    return Problem(vector(input, "x"), logsumexp)


FUNCTIONS = {
    "primal": lambda input, engine: primal_job(problem(input), engine),
    "gradient": lambda input, engine: gradient_job(problem(input), engine),
}

SIZES = [{"n": n} for n in (2500, 5000, 10000, 20000, 40000, 80000, 160000, 320000, 640000, 1280000)]
TEST_SIZES = [{"n": 1}, {"n": 7}, {"n": 40}]


def inputs(sizes=None, seed: int = 31337):
    """``(description, input)`` per size, drawn as the eval draws them: one seeded stream, ``rand(n)`` each."""
    state = np.random.RandomState(seed)
    for size in SIZES if sizes is None else sizes:
        yield f"n={size['n']}", {"x": state.random_sample(size["n"]).tolist()}
