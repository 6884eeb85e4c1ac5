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
    contribution to a broadcast input is summed by (the sweep, subtract's rule for ``y``)."""
    cshape = getattr(c, "shape", ())
    axes = _AXES.get((cshape, shape))
    if axes is None:
        lead = len(cshape) - len(shape)
        axes = tuple(range(lead)) + tuple(i + lead for i, n in enumerate(shape) if n == 1 and cshape[i + lead] != 1)
        if len(_AXES) < 4096:
            _AXES[cshape, shape] = axes
    if type(c) is np.ndarray and c.dtype == _F64:  # the ufunc itself: numpy's sum and reshape are Python wrappers
        if not axes:
            return c.reshape(shape)
        if len(cshape) == 2 and len(axes) == 1 and cshape[axes[0]] <= BLAS_SUM_MAX:
            # a batch's rows or a row's entries summed as a product with ones: BLAS takes ~1 us where numpy's
            # reduction machinery takes ~2.5 on a (64, 20) array; the same sum, in another order of additions
            ones = _ones(cshape[axes[0]])
            return (ones @ c if axes[0] == 0 else c @ ones).reshape(shape)
        return np.add.reduce(c, axes).reshape(shape)
    return xp.reshape(xp.sum(c, axis=axes) if axes else c, shape)


_AXES: dict = {}  # (broadcast shape, input shape) -> the axes to sum over
_ONES: dict = {}  # n -> a read-only vector of n ones
BLAS_SUM_MAX = 4096  # longer sums keep numpy's pairwise summation (an error growing as log n, not n)


def _ones(n: int) -> np.ndarray:
    ones = _ONES.get(n)
    if ones is None:
        ones = np.ones(n)
        ones.flags.writeable = False
        if len(_ONES) < 256:
            _ONES[n] = ones
    return ones
_F64 = np.dtype(np.float64)
