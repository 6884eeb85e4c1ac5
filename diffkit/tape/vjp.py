"""``dk.vjp``: the vector-Jacobian product of a function of any output shape."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..dispatch import namespace
from .array import TArray
from .collector import paused_collector
from .core import Tape

__all__ = ["vjp"]


def vjp(f: Callable, theta: Any) -> tuple[Any, Callable]:
    """Evaluate ``f(theta)`` on a tape; return its value and a VJP function.

    ``vjp_fn(cotangent)`` returns ``cotangent . J`` (shape of ``theta``), for
    outputs of any shape.  It may be called repeatedly.  ``theta`` may itself
    be a traced array (nested differentiation).

    >>> import numpy as np, diffkit as dk
    >>> value, vjp_fn = dk.vjp(lambda t: t * t, np.array([1.0, 2.0, 3.0]))
    >>> vjp_fn(np.array([1.0, 0.0, 1.0])).tolist()
    [2.0, 0.0, 6.0]
    """
    vxp = namespace(theta)
    if vxp.name == "numpy":
        theta = np.array(theta, dtype=float)
    tape = Tape(vxp)
    x = tape.leaf(theta)
    with paused_collector():  # (recording makes no cycles: .collector)
        out = f(x)
    shape = getattr(theta, "shape", ())
    if type(out) is not TArray or out.tape is not tape:
        return out, lambda cot: vxp.zeros(shape)

    def vjp_fn(cotangent):
        xp = tape.vxp  # (theta's namespace, or an outer trace's where f closed over one: .levels.lift)
        cot = np.asarray(cotangent, dtype=float) if vxp.name == "numpy" else cotangent
        if tuple(getattr(cot, "shape", ())) != tuple(out.shape):
            raise ValueError(f"cotangent has shape {getattr(cot, 'shape', ())}; the output has shape {out.shape}")
        g = tape.backward(out, cot, retain=True)[x.index]
        if g is None:
            return xp.zeros(shape)
        return np.array(np.broadcast_to(g, shape), dtype=float) if xp.name == "numpy" else xp.broadcast_to(g, shape)

    return out.value, vjp_fn
