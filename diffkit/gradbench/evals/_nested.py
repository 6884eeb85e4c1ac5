"""What particle and saddle share: GradBench's gradient-descent solver and a gradient operator per mode.

Both evals (Pearlmutter & Siskind's nested-AD benchmarks) minimise, by
gradient descent, a function that itself takes gradients.  Their four
functions ``ff``, ``fr``, ``rf``, ``rr`` name the mode of each level: the
first letter the outer argmin's, the second the inner one's.  A gradient
operator ``grad(f, x)`` works at either level: ``x`` may be plain or traced
by an outer level, and ``f`` may close over outer traces.

:func:`argmin` is GradBench's ``multivariate_argmin`` (cpp/gradbench/gd.hpp):
start at eta = 1e-5, double eta after 10 accepted steps in a row, halve it
on a step that does not decrease f, stop when |g| <= 1e-5 or a step moves x
by at most 1e-5.  Its decisions read the plain values under any traces; its
iterates stay traced, so an outer level differentiates through the solver.

>>> import numpy as np
>>> bowl = lambda x: dk.namespace(x).sum((x - 3.0) ** 2)
>>> [round(float(v), 4) for v in argmin(bowl, reverse, np.array([0.0, 1.0]))]
[3.0, 3.0]
>>> [round(float(v), 4) for v in argmin(bowl, forward, np.array([0.0, 1.0]))]
[3.0, 3.0]
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

import diffkit as dk
from diffkit.dispatch import strip

from ..engines import MethodUnavailable
from ..jobs import Job

__all__ = ["VARIANTS", "reverse", "forward", "differences", "plain", "argmin", "argmax", "maximum", "operators",
           "variant_functions"]

VARIANTS = ("ff", "fr", "rf", "rr")
_DIFFERENCES = ("forward", "backward", "central", "central4", "richardson")  # real steps: they nest (see operators)


def reverse(f: Callable, x: Any) -> Any:
    """The gradient of scalar ``f`` at ``x`` by reverse mode (``dk.vjp``), traced where ``x`` is or where ``f``
    closes over an outer level's trace (the tape lifts it, as JAX lifts a closed-over tracer)."""
    return dk.vjp(f, x)[1](1.0)


def forward(f: Callable, x: Any) -> Any:
    """The gradient of scalar ``f`` at ``x`` by forward mode: one ``dk.jvp`` pass carrying a tangent per entry
    (a dual over plain ``x`` takes outer traces in ``f`` as they come)."""
    return dk.jvp(f, x, np.eye(x.shape[0]), batch=True)[1]


def differences(method: str) -> Callable:
    """A gradient operator by the difference ``method`` (``dk.gradient``): plain values only, at either level."""
    def gradient(f: Callable, x: Any) -> np.ndarray:
        return dk.gradient(f, x, method=method).grad
    return gradient


def plain(a: Any) -> np.ndarray:
    """The float64 value under any traces: what a decision (a branch, a stopping test) reads, unrecorded."""
    return np.asarray(strip(a), dtype=np.float64)


def argmin(f: Callable, grad: Callable, x: Any) -> Any:
    """GradBench's gradient descent from ``x`` (see the module doc); ``grad(f, x)`` gives f's gradient."""
    fx, gx = f(x), grad(f, x)
    eta, accepted = 1e-5, 0
    while True:
        if np.sqrt(np.sum(plain(gx) ** 2)) <= 1e-5:
            return x
        if accepted == 10:
            eta, accepted = 2 * eta, 0
            continue
        x_new = x - eta * gx
        if np.sqrt(np.sum((plain(x) - plain(x_new)) ** 2)) <= 1e-5:
            return x
        f_new = f(x_new)
        if plain(f_new) < plain(fx):
            x, fx, gx, accepted = x_new, f_new, grad(f, x_new), accepted + 1
        else:
            eta, accepted = eta / 2, 0


def argmax(f: Callable, grad: Callable, x: Any) -> Any:
    """The argmin of -f (GradBench's ``multivariate_argmax``)."""
    return argmin(lambda y: -f(y), grad, x)


def maximum(f: Callable, grad: Callable, x: Any) -> Any:
    """f at its argmax (GradBench's ``multivariate_max``)."""
    return f(argmax(f, grad, x))


_MODES = {"f": forward, "r": reverse}
_WORKS = ("reverse and forward_ad (the function's name picks each level's mode), or the difference methods "
          f"({', '.join(_DIFFERENCES)}; the tool offers central) at both levels")


def operators(engine, variant: str, eval_name: str) -> tuple[Callable, Callable]:
    """(outer, inner) gradient operators of ``variant`` under ``engine``'s method, or MethodUnavailable."""
    method = engine.method
    if method in ("reverse", "forward_ad"):
        return _MODES[variant[0]], _MODES[variant[1]]
    if method in _DIFFERENCES:
        return differences(method), differences(method)
    why = {"complex_step": "both levels would perturb along the one imaginary unit (perturbation confusion: the "
                           "outer step's i^2 = -1 mixes into the inner derivative)",
           "compiled": "dk.compile replays one recorded gradient of a scalar function, and a function of this "
                       "eval is a whole descent whose objective takes gradients itself; the tool does not compile it",
           "symbolic": "SymPy would have to build expressions through loops whose length depends on the values"}
    reason = why.get(method, f"method {method!r} is not wired for nested derivatives here (the peers would need "
                             "their own nested transforms, forward and reverse, on the same definitions)")
    raise MethodUnavailable(f"{eval_name} nests a gradient inside a gradient; method {method!r} cannot: {reason}. "
                            f"Methods that can: {_WORKS}")


def variant_functions(eval_name: str, solve: Callable[[Any, Callable, Callable], Any],
                      parse: Callable[[Any], Any], encode: Callable[[Any], Any]) -> dict:
    """FUNCTIONS of a nested eval: each variant runs ``solve(parse(input), outer, inner)``."""
    def build(variant: str) -> Callable[[Any, Any], Job]:
        def job(input, engine) -> Job:
            start = parse(input)
            outer, inner = operators(engine, variant, eval_name)
            return Job(lambda: solve(start, outer, inner), encode)
        return job
    return {variant: build(variant) for variant in VARIANTS}
