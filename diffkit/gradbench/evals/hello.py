"""GradBench ``hello``: ``square`` is x^2 and ``double`` its derivative 2x; the input is a bare number.

>>> from diffkit.gradbench.engines import engine_for
>>> job = FUNCTIONS["double"](1.5, engine_for("reverse"))
>>> job.encode(job.run())
3.0
"""
from __future__ import annotations

import numbers

import numpy as np

from ..jobs import Problem, as_float, gradient_job, primal_job

__all__ = ["square", "problem", "FUNCTIONS", "inputs", "SIZES", "TEST_SIZES"]


def square(theta):
    return (theta * theta)[0]


def problem(input) -> Problem:
    if isinstance(input, bool) or not isinstance(input, numbers.Real):
        raise ValueError(f"hello's input must be a number; got {type(input).__name__} {str(input)[:40]}")
    return Problem(np.array([float(input)]), square)


FUNCTIONS = {
    "square": lambda input, engine: primal_job(problem(input), engine),
    "double": lambda input, engine: gradient_job(problem(input), engine, encode=lambda g: as_float(g[0])),
}



def inputs(sizes=None, seed: int = 0):
    """The eval starts at x = 1 and feeds each output back (square, double, square ...): its first input."""
    for size in SIZES if sizes is None else sizes:
        yield f"x={size['x']}", float(size["x"])


SIZES = [{"x": 1.0}]
TEST_SIZES = [{"x": 1.0}, {"x": -2.5}]
