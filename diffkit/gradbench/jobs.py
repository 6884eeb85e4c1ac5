"""What every eval module shares: a :class:`Problem` (theta and the functions of it) and :class:`Job`.

An eval module (``diffkit.gradbench.evals.<name>``) defines

* ``problem(input) -> Problem``: the eval's input unpacked into the variable
  ``theta`` (flat float64) and the functions written once against
  ``xp = dk.namespace(theta)``;
* ``FUNCTIONS``: the eval's function names mapped to ``build(input, engine) -> Job``;
* ``inputs(sizes=None, seed=...)``: ``(description, input)`` pairs made the
  way the eval makes its own (same seed, draws, order and layout), for
  ``SIZES`` (the eval's defaults) unless other sizes are given; ``TEST_SIZES``
  are small ones for the tests.

A :class:`Job` is what the tool times: ``run()`` computes the raw result and
``encode(result)`` turns it into the eval's JSON output (encoding is not timed).

>>> import numpy as np
>>> from diffkit.gradbench.engines import engine_for
>>> p = Problem(np.array([3.0]), objective=lambda t: (t * t).sum())
>>> job = gradient_job(p, engine_for("reverse"), encode=lambda g: float(g[0]))
>>> job.encode(job.run())
6.0
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

__all__ = ["Problem", "Job", "primal_job", "gradient_job", "floats", "as_float"]


@dataclass
class Problem:
    """``theta`` (flat float64); ``objective(theta)`` the scalar that is differentiated;
    ``primal(theta)`` what the eval's primal function returns (the objective unless it differs)."""

    theta: np.ndarray
    objective: Callable[[Any], Any]
    primal: Callable[[Any], Any] | None = None

    def __post_init__(self):
        self.theta = np.ascontiguousarray(self.theta, dtype=np.float64).ravel()
        if self.primal is None:
            self.primal = self.objective


@dataclass
class Job:
    run: Callable[[], Any]
    encode: Callable[[Any], Any]


def as_float(value: Any) -> float:
    return float(np.reshape(np.asarray(value, dtype=np.float64), ()))


def floats(values: Any) -> list:
    """A float64 array as nested JSON lists."""
    return np.asarray(values, dtype=np.float64).tolist()


def primal_job(problem: Problem, engine, encode: Callable[[Any], Any] = as_float) -> Job:
    run, theta = engine.primal(problem.primal), problem.theta
    return Job(lambda: run(theta), encode)


def gradient_job(problem: Problem, engine, encode: Callable[[Any], Any] = floats) -> Job:
    run, theta = engine.gradient(problem.objective), problem.theta
    return Job(lambda: run(theta), encode)
