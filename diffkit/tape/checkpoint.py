"""``dk.checkpoint``: recompute a segment's intermediates in the backward sweep instead of keeping them.

What ``jax.checkpoint`` and ``torch.utils.checkpoint`` do.  The tape records a
checkpointed call as one node that keeps the call's inputs only; when the sweep
reaches it, the segment runs again on a tape of its own and is swept there, so
its intermediates live only while that happens.  Memory falls from every
intermediate of the segment to its inputs, for one more forward pass of it.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

from ..dispatch import TRACERS, dtype_kind, namespace
from .array import TArray
from .core import Tape
from .custom import newest_tape, record_joint

__all__ = ["checkpoint"]


class _Segment:
    """The tape's view of one checkpointed function: a joint rule that re-records and sweeps it."""

    scatter = False
    residual = False

    def __init__(self, fn: Callable):
        self.name = f"checkpoint({getattr(fn, '__name__', 'fn')})"

        def joint(g, *inputs):
            tape = Tape(namespace(*inputs, g))  # (an enclosing trace's, when this sweep is itself recorded)
            leaves = [tape.leaf(v) if _differentiable(v) else v for v in inputs]
            out = fn(*leaves)
            if type(out) is not TArray or out.tape is not tape:  # the output does not depend on the inputs
                return (None,) * len(inputs)
            grads = tape.backward(out, g)
            return tuple(grads[v.index] if type(v) is TArray else None for v in leaves)
        self.joint = joint


def _differentiable(v: Any) -> bool:
    """A float (or an enclosing trace's, or mpmath's) value: a leaf of the recomputation.  Integers, booleans and
    other data pass through as constants."""
    if type(v) in TRACERS or isinstance(v, float):
        return True
    dtype = getattr(v, "dtype", None)
    return dtype is not None and dtype_kind(dtype) in "fO"


def checkpoint(fn: Callable) -> Callable:
    """``fn`` with its intermediates recomputed in the backward sweep, not kept on the tape.

    ``fn(*arrays)`` returns one array; every traced value it reads must be an argument (a traced array it reads
    from a closure is refused: the segment's own tape could not send it a gradient).  On a tape, a call keeps
    only its arguments; the sweep runs ``fn`` again and sweeps that.  Gradients agree with those without it to
    rounding: the same operations, but an argument used several times inside the segment sums its
    contributions there before they join the rest.  Elsewhere (plain values, forward mode, mpmath) it is ``fn``
    itself; a sweep that is itself recorded (second derivatives) records the recomputation.  ``dk.compile``
    refuses it, as any custom op.

    >>> import numpy as np, diffkit as dk
    >>> def layer(a, W):
    ...     return dk.namespace(a, W).tanh(a @ W)
    >>> def f(t):
    ...     xp = dk.namespace(t)
    ...     a = np.ones((4, 3))
    ...     for _ in range(3):
    ...         a = dk.checkpoint(layer)(a, xp.reshape(t, (3, 3)))
    ...     return xp.sum(a)
    >>> def plain(t):
    ...     xp = dk.namespace(t)
    ...     a = np.ones((4, 3))
    ...     for _ in range(3):
    ...         a = layer(a, xp.reshape(t, (3, 3)))
    ...     return xp.sum(a)
    >>> theta = np.linspace(-0.5, 0.5, 9)
    >>> bool(np.allclose(dk.gradient(f, theta).grad, dk.gradient(plain, theta).grad, rtol=1e-15, atol=0))
    True
    """
    segment = _Segment(fn)

    @functools.wraps(fn)
    def run(*args: Any) -> Any:
        tape, vals = newest_tape(args)
        if tape is None:  # nothing recorded here: plain values, duals, mpmath
            return fn(*args)
        ans = fn(*vals)
        if isinstance(ans, (tuple, list, dict)):
            raise TypeError(f"dk.checkpoint({segment.name[11:-1]}): the function returned a {type(ans).__name__}; a "
                            f"checkpointed segment returns one array (stack its outputs into one, or checkpoint "
                            f"each output's function)")
        if type(ans) in TRACERS and _on(ans, tape):
            raise ValueError(f"dk.checkpoint({segment.name[11:-1]}): the function reads a traced array that is not "
                             f"one of its arguments (from a closure); pass every traced array it reads as an "
                             f"argument, so that its recomputation can send that array its gradient")
        return record_joint(tape, segment, args, vals, vals, ans)
    return run


def _on(x: Any, tape: Any) -> bool:
    while type(x) in TRACERS:
        if type(x) is TArray and x.tape is tape:
            return True
        x = x._inner
    return False
