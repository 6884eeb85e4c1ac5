"""``method="reverse"``: backpropagation on the tape of :mod:`diffkit.tape`."""
from __future__ import annotations

import time

import numpy as np

from .methods import MethodOutput, check_scalar, register_method
from .tape import Tape, TArray, bytes_held

__all__ = ["reverse_gradient", "tape_gradient"]


def tape_gradient(f, theta, *, vxp=None, one=1.0, anomaly: bool = False, count_bytes: bool = False):
    """Record ``f`` at ``theta`` (raw values of namespace ``vxp``) and sweep back once.

    Returns ``(value, grad, tape_length, tape_bytes, forward_s, backward_s)``; ``tape_bytes`` is
    counted (a walk over the tape, about 6% of a small gradient) only with ``count_bytes=True``.
    Shared by the float64 method and the mpmath reference.
    """
    tape = Tape(vxp, anomaly=anomaly)
    x = tape.leaf(theta)
    t0 = time.perf_counter()
    out = f(x)
    check_scalar(out)
    t1 = time.perf_counter()
    length, held = len(tape), (bytes_held(tape) if count_bytes else None)
    vxp = tape.vxp
    if type(out) is not TArray or out.tape is not tape:  # f does not depend on theta
        return out, vxp.zeros(np.shape(theta)), length, held, t1 - t0, 0.0
    g = tape.backward(out, one if out.shape == () else vxp.ones(out.shape))[x.index]
    grad = vxp.zeros(np.shape(theta)) if g is None else g
    return out.value, grad, length, held, t1 - t0, time.perf_counter() - t1


@register_method("reverse", "automatic", "reverse-mode tape (backpropagation): one forward, one backward sweep")
def reverse_gradient(f, theta, *, anomaly: bool = False, memory: bool = False) -> MethodOutput:
    """Backpropagation.  ``anomaly=True`` names the op and the line that first made a NaN/inf."""
    value, grad, length, held, fwd, bwd = tape_gradient(f, theta, anomaly=anomaly, count_bytes=memory)
    return MethodOutput(np.reshape(value, ()), grad, {"tape_length": length, "tape_bytes": held,
                                                     "forward_s": fwd, "backward_s": bwd})
