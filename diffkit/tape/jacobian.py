"""Jacobians by the tape: forward mode's batched JVP or reverse mode's sweeps, on numpy or traced arrays.

:func:`ad_jacobian` is ``dk.jacobian``'s forward and reverse modes (:mod:`diffkit.higher`) and what
``dk.compile(f, theta, jacobian=True)`` records (:mod:`.compiled`): written against ``dk.namespace``, so it
runs on a traced theta as on numpy's.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from ..dispatch import namespace
from .dual import jvp
from .vjp import vjp

__all__ = ["ad_jacobian", "forward_columns", "batch_size", "basis", "BATCH_ENTRIES", "MAX_BATCH"]


def basis(shape: tuple, i: int) -> np.ndarray:
    """The i-th coordinate direction (flat index) of an array of ``shape``."""
    e = np.zeros(shape)
    e.flat[i] = 1.0
    return e


BATCH_ENTRIES = 1 << 22  # forward mode: tangents per pass up to this many entries of the output (32 MB)
MAX_BATCH = 64


def batch_size(P: int, M: int, batch: int | None) -> int:
    """Tangents per forward pass: all P when small, else chunks whose output tangents stay within
    :data:`BATCH_ENTRIES` (an intermediate larger than the output grows with it too: pass ``batch``)."""
    if batch is not None:
        if not isinstance(batch, (int, np.integer)) or batch < 1:
            raise ValueError(f"batch must be a positive integer (tangents per forward pass); got {batch!r}")
        return int(min(batch, P))
    return max(1, min(P, MAX_BATCH, BATCH_ENTRIES // max(M, 1)))


def _rows(tangent: Any, k: int, M: int) -> Any:
    """``tangent`` as k rows of M: a numpy array, or the trace's own (a Jacobian recorded by dk.compile)."""
    if isinstance(tangent, (np.ndarray, float, int, np.floating)):
        return np.asarray(tangent, dtype=float).reshape(k, M)
    return namespace(tangent).reshape(tangent, (k, M))


def _joined(rows: list, transpose: bool) -> Any:
    """The (k, n) pieces one after another (transposed, with ``transpose``)."""
    if all(type(r) is np.ndarray for r in rows):
        out = np.concatenate(rows)
        return out.T if transpose else out
    xp = namespace(*rows)
    out = rows[0] if len(rows) == 1 else xp.concat(rows, axis=0)
    return xp.matrix_transpose(out) if transpose else out


def forward_columns(fn: Callable, arr: Any, M: int, batch: int, lazy: bool = False) -> tuple:
    """``(f's value, J (M, P))`` by forward mode: ``batch`` coordinate directions per pass
    (``dk.jvp(..., batch=True)``)."""
    P, shape, cols, value = math.prod(arr.shape), tuple(arr.shape), [], None
    for start in range(0, P, batch):
        k = min(batch, P - start)
        directions = np.zeros((k, P))
        directions[np.arange(k), np.arange(start, start + k)] = 1.0
        if batch == 1:
            value, tangent = jvp(fn, arr, directions[0].reshape(shape), lazy=lazy)
            cols.append(_rows(tangent, 1, M))
        else:
            value, tangents = jvp(fn, arr, directions.reshape((k,) + shape), batch=True, lazy=lazy)
            cols.append(_rows(tangents, k, M))
    return value, _joined(cols, transpose=True)


def ad_jacobian(fn: Callable, arr: Any, value_shape: tuple, mode: str = "auto", batch: int | None = None) -> tuple:
    """``(f's value, J as (M, P), the mode that ran, passes)`` by forward mode (P tangents, ``batch`` per pass)
    or reverse mode (one sweep of one tape per output); ``auto``: forward when outputs outnumber inputs.
    ``arr`` may be traced: ``dk.compile(f, theta, jacobian=True)`` records this."""
    P, M = math.prod(arr.shape), math.prod(value_shape)
    chosen = ("forward" if M > P else "reverse") if mode == "auto" else mode
    if chosen == "forward":
        size = batch_size(P, M, batch)
        return (*forward_columns(fn, arr, M, size), chosen, -(-P // size))
    value, back = vjp(fn, arr)
    rows = [_rows(back(basis(value_shape, i)), 1, P) for i in range(M)]
    return value, _joined(rows, transpose=False) if M else np.zeros((0, P)), chosen, M
