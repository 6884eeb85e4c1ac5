"""``method="forward_ad"``: the gradient from P forward-mode passes, and nested ``dk.gradient`` on traced arrays.

Forward mode is exact like reverse mode, but one pass carries one tangent, so a
gradient of P parameters costs P passes (one JVP along each coordinate), like
finite differences: the other half of why backprop wins.  The cost record counts
the passes.

This method runs one plain JVP per coordinate, so that its cost record counts
what forward mode costs pass by pass; ``dk.jvp(..., batch=True)`` carries
several tangents in one pass (:mod:`diffkit.tape.batched`), and
``dk.jacobian`` in forward mode uses it.

>>> import numpy as np, diffkit as dk
>>> r = dk.gradient(lambda t: t[0] * dk.namespace(t).sin(t[1]), np.array([2.0, 0.0]), method="forward_ad")
>>> r.grad.tolist(), r.cost.counters["passes"]
([0.0, 2.0], 2)
"""
from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

from . import reverse  # noqa: F401  (reverse registers first, so that the methods list in the same order)
from .dispatch import TRACERS, strip
from .methods import GradientResult, Cost, MethodOutput, register_method
from .tape import jvp, vjp
from .tape.jacobian import basis

__all__ = ["forward_gradient", "traced_gradient", "gradient_of", "basis"]


@register_method("forward_ad", "automatic", "forward-mode AD: one dual-number pass per parameter (P JVPs)")
def forward_gradient(f, theta) -> MethodOutput:
    """P JVPs, one along each coordinate; ``counters["passes"]`` is P."""
    shape = np.shape(strip(theta))
    size = int(np.prod(shape))
    grad, value = [None] * size, None
    t0 = time.perf_counter()
    for i in range(size):
        value, grad[i] = jvp(f, theta, basis(shape, i))
    nested = type(theta) in TRACERS or any(type(v) in TRACERS for v in (value, *grad))  # (or f closed over a trace)
    if nested:  # keep the trace: an outer tape or dual differentiates this gradient
        return MethodOutput(value, _stack(grad, shape, theta), {"passes": size}, evaluations=size)
    counters = {"passes": size, "forward_s": time.perf_counter() - t0}
    return MethodOutput(np.reshape(value, ()), np.reshape(np.array(grad, dtype=float), shape), counters)


def _stack(parts: list, shape: tuple, like: Any) -> Any:
    from .dispatch import namespace
    xp = namespace(like, *parts)
    return xp.reshape(xp.stack([xp.reshape(p, ()) for p in parts]), shape)


def gradient_of(fn: Callable, theta: Any) -> Any:
    """The reverse-mode gradient of scalar ``fn`` at ``theta`` (plain or traced), as a traced-or-plain array.

    The building block of second derivatives: ``dk.jvp(lambda t: gradient_of(f, t), theta, v)`` is H v.
    """
    value, back = vjp(fn, theta)
    shape = np.shape(strip(value))
    if shape not in ((), (1,)):
        raise ValueError(f"f must return a scalar to have a gradient; it returned shape {shape}")
    return back(1.0 if shape == () else np.ones(shape))


def traced_gradient(fn: Callable, theta: Any, method: str, names: Callable) -> GradientResult:
    """``dk.gradient`` of a traced theta: nested differentiation inside a function being differentiated.

    The result's ``value`` and ``grad`` stay traced (an outer tape or dual sees through them), so
    d/dx [x * d/dy (x + y)] = 1 comes out with no perturbation confusion (levels keep the traces apart).
    """
    if method not in ("reverse", "forward_ad"):
        raise ValueError(f"dk.gradient was called on a traced theta ({type(theta).__name__}): that is nested "
                         f"differentiation, which method='reverse' or 'forward_ad' supports; got method={method!r}")
    start = time.perf_counter()
    if method == "reverse":
        value, back = vjp(fn, theta)
        shape = np.shape(strip(value))
        grad, passes = back(1.0 if shape == () else np.ones(shape)), 1
    else:
        out = forward_gradient(fn, theta)
        value, grad, passes = out.value, out.grad, out.counters["passes"]
    cost = Cost(time.perf_counter() - start, passes, None, {"nested": 1, "passes": passes})
    return GradientResult(value, grad, method, cost, names)
