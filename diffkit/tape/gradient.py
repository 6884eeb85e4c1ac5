"""Record a function on a tape at theta and sweep back once: the engine call under dk.gradient and dk.reference."""
from __future__ import annotations

import time

import numpy as np

from ..dispatch import namespace
from .array import TArray
from .collector import paused_collector
from .core import Tape
from .memory import bytes_held

__all__ = ["tape_gradient"]


def tape_gradient(f, theta, *, vxp=None, one=1.0, anomaly: bool = False, count_bytes: bool = False,
                  check=None):
    """Record ``f`` at ``theta`` (raw values of namespace ``vxp``) and sweep back once.

    Returns ``(value, grad, tape_length, tape_bytes, forward_s, backward_s)``; ``tape_bytes`` is
    counted (a walk over the tape, about 6% of a small gradient) only with ``count_bytes=True``.
    Shared by the float64 method and the mpmath reference; ``check(out)`` may refuse a non-scalar output.
    """
    tape = Tape(vxp if vxp is not None or type(theta) is np.ndarray else namespace(theta), anomaly=anomaly)
    x = tape.leaf(theta)
    t0 = time.perf_counter()
    # One pause from the recording to the end of the sweep (neither makes cycles: .collector).  Paused twice,
    # the first allocation between the two (the sweep's lists) would start a collection that walks every node
    # just recorded, all alive: a few ms a gradient of an LSTM's 60,000 nodes.
    with paused_collector():
        out = f(x)
        if check is not None:
            check(out)
        t1 = time.perf_counter()
        length, held = len(tape), (bytes_held(tape) if count_bytes else None)
        vxp = tape.vxp
        if type(out) is not TArray or out.tape is not tape:  # f does not depend on theta
            return out, vxp.zeros(np.shape(theta)), length, held, t1 - t0, 0.0
        seed = one if out.shape == () and vxp.convert is None else vxp.ones(out.shape)  # (the array API takes arrays)
        g = tape.backward(out, seed)[x.index]
    grad = vxp.zeros(np.shape(theta)) if g is None else g
    if type(grad) is np.ndarray and not grad.flags.writeable:  # a read-only view (sum's rule broadcasts one
        grad = grad.copy()  # number over a large theta): the caller gets a gradient of its own
    return out.value, grad, length, held, t1 - t0, time.perf_counter() - t1
