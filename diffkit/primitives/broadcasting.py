"""Broadcasting undone: a contribution summed down to the shape of the input that was broadcast.

Here, apart from the table's modules, so that a rule of any family can use it without changing the order in
which the families fill the table.
"""
from __future__ import annotations

import numpy as np

__all__ = ["unbroadcast"]


def unbroadcast(xp, c, shape: tuple):
    """Sum ``c`` down to ``shape``, undoing broadcasting: the reverse of
    :func:`diffkit.primitives.reductions.expand`, and what a rule's
    contribution to a broadcast input is summed by (the sweep, subtract's rule for ``y``).

    On numpy, a 2-D contribution summed over one axis of at most :data:`BLAS_SUM_MAX` (a batch's rows for a
    bias, a row's entries for ``x - max(x)``) is a product with ones: BLAS takes ~1 us where numpy's reduction
    takes ~2.3 on a (64, 20) array; the same sum in another order of additions.

    >>> import numpy as np
    >>> unbroadcast(np, np.arange(6.0).reshape(2, 3), (3,)).tolist(), unbroadcast(np, np.ones((2, 3)), (2, 1)).tolist()
    ([3.0, 5.0, 7.0], [[3.0], [3.0]])
    """
    cshape = getattr(c, "shape", ())
    plan = _PLANS.get((cshape, shape))
    if plan is None:
        plan = _plan(cshape, shape)
    axes, left, right = plan
    if type(c) is np.ndarray and c.dtype is _F64:  # the ufunc itself: numpy's sum and reshape are Python wrappers
        if left is not None:
            return (left @ c).reshape(shape)
        if right is not None:
            return (c @ right).reshape(shape)
        return (np.add.reduce(c, axes) if axes else c).reshape(shape)
    if left is not None or right is not None:
        ns = _library(xp, c)
        if ns is not None:  # another library's floats (CuPy, array-api-strict): the same product with ones, so
            ones = ns.ones((left if left is not None else right).shape[0], dtype=c.dtype, device=c.device)
            return ns.reshape(ns.matmul(ones, c) if left is not None else ns.matmul(c, ones), shape)  # numpy's
            # bits where the library runs on numpy (array-api-strict), and one kernel on a GPU
    return xp.reshape(xp.sum(c, axis=axes) if axes else c, shape)


def _library(xp, c):
    """The namespace of ``c``, another array library's real floating array, where ``xp`` is diffkit's namespace of
    that library's values (:mod:`diffkit.backends_array_api`); else None (traces, mpmath objects, a writer's
    symbols)."""
    if getattr(xp, "__dict__", {}).get("backend") != "array_api" or not hasattr(c, "__array_namespace__"):
        return None
    ns = c.__array_namespace__()
    return ns if c.dtype in (ns.float32, ns.float64) else None


_PLANS: dict = {}  # (broadcast shape, input shape) -> (axes to sum over, ones for ones @ c, ones for c @ ones)
BLAS_SUM_MAX = 4096  # longer sums keep numpy's pairwise summation (an error growing as log n, not n)
_F64 = np.dtype(np.float64)


def _plan(cshape: tuple, shape: tuple) -> tuple:
    lead = len(cshape) - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, n in enumerate(shape) if n == 1 and cshape[i + lead] != 1)
    left = right = None
    if len(cshape) == 2 and len(axes) == 1 and cshape[axes[0]] <= BLAS_SUM_MAX:
        ones = np.ones(cshape[axes[0]])
        ones.flags.writeable = False
        left, right = (ones, None) if axes[0] == 0 else (None, ones)
    plan = axes, left, right
    if len(_PLANS) < 4096:
        _PLANS[cshape, shape] = plan
    return plan
