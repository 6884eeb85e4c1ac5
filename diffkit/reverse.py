"""``method="reverse"``: backpropagation on the tape of :mod:`diffkit.tape`."""
from __future__ import annotations

import weakref

import numpy as np

from .methods import CountedFunction, MethodOutput, check_scalar, register_method
from .tape.compiled import Compiled
from .tape.gradient import tape_gradient

__all__ = ["reverse_gradient", "eager", "tape_gradient"]


_COMPILED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # user function -> its dk.compile


@register_method("reverse", "automatic", "reverse-mode tape (backpropagation): one forward, one backward sweep")
def reverse_gradient(f, theta, *, anomaly: bool = False, memory: bool = False, compile: bool = False) -> MethodOutput:
    """Backpropagation.  ``anomaly=True`` names the op and the line that first made a NaN/inf.

    ``compile=True`` records ``f`` once (per shape) and replays it (:func:`diffkit.compile`); the compiled
    replay is kept per function, as jax.jit keeps its cache, and the counters say what it cost.
    """
    if compile and not anomaly:
        base = getattr(f, "fn", f)  # dk.gradient hands a counting wrapper; the user's function is its .fn
        try:
            compiled = _COMPILED.get(base)
            if compiled is None:
                compiled = _COMPILED[base] = Compiled(base)
        except TypeError:  # not weak-referenceable: compiled for this call only
            compiled = Compiled(base)
        value, grad = compiled(theta)
        return MethodOutput(value, grad, {"compile_s": compiled.compile_s, "records": compiled.records,
                                          "rerecords": len(compiled.reasons)}, evaluations=1)
    return MethodOutput(*eager(f, theta, anomaly=anomaly, memory=memory,
                               check=None if type(f) is CountedFunction else check_scalar))


def eager(f, theta, *, anomaly: bool = False, memory: bool = False, check=check_scalar) -> tuple:
    """``(value, grad, counters)`` of one recording and one sweep: the method's run, and ``dk.gradient``'s
    own call for a plain float64 theta (:func:`diffkit.api.gradient`).  ``check(out)`` refuses what f
    may not return (a :class:`CountedFunction` checks for itself)."""
    value, grad, length, held, fwd, bwd = tape_gradient(f, theta, anomaly=anomaly, count_bytes=memory, check=check)
    if getattr(value, "shape", None) != ():  # a 0-d value stays as it is (a device's value stays on its device)
        value = value.reshape(()) if type(value) is np.ndarray else np.reshape(value, ())
    return value, grad, {"tape_length": length, "tape_bytes": held, "forward_s": fwd, "backward_s": bwd}
