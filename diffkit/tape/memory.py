"""What a tape holds for its backward sweep, in bytes (``dk.gradient(..., memory=True)`` and the benchmarks)."""
from __future__ import annotations

import numpy as np

from .custom import Context

__all__ = ["bytes_held"]


def bytes_held(tape) -> int:
    """Bytes of the arrays that the recorded nodes keep for the backward sweep (views own nothing)."""
    seen, total = set(), 0
    for node in tape.nodes:
        if node is None or node[0].scatter:
            continue
        for args in ((node[2],) if node[0].joint is not None else node[3::4]):
            for v in _flat(args):
                if type(v) is np.ndarray and v.base is None and id(v) not in seen:
                    seen.add(id(v))
                    total += v.nbytes
    return total


def _flat(args: tuple):
    """The values in a rule's arguments, residual tuples (tanh's saturated entries) and a custom op's saved
    values opened."""
    for v in args:
        if type(v) is tuple:
            yield from _flat(v)
        elif type(v) is Context:
            yield from _flat(v.saved)
        else:
            yield v
