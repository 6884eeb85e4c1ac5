"""The array API's set and search functions with data-dependent shapes, and its bitwise functions, on every namespace.

``nonzero``, ``unique_values``, ``unique_counts``, ``unique_inverse`` and
``unique_all`` are composed (in :data:`diffkit.backends.DERIVED`) from the
constant primitives of :mod:`diffkit.primitives.constant` and one gather:

* ``nonzero(x)`` is the tuple of the rows of ``nonzero_indices(x)`` (one
  (ndim, k) integer array: one primitive, so ``dk.compile`` guards one result);
* the distinct values are ``take(x, unique_first_indices(x))``, where the
  indices are each distinct value's *first occurrence* in x flattened in
  row-major order, in ascending order of value.  So the values are
  differentiable and **the gradient of a distinct value goes to its first
  occurrence** (zeros to the later ones: JAX's convention too).  Equality is
  ``==``: each NaN is a value of its own (after the numbers, in the order they
  occur, with a count of 1), and -0.0 and 0.0 are one value (the one that
  occurs first);
* ``indices``, ``inverse_indices`` (x's shape, as the 2023.12 standard has it)
  and ``counts`` are constants, returned in named tuples with the standard's
  field names.

The bitwise functions (``bitwise_and``, ``bitwise_or``, ``bitwise_xor``,
``bitwise_invert``, ``bitwise_left_shift``, ``bitwise_right_shift``) take
integer or bool arrays only and have no derivative: they are the values'
library's own, and a traced array (whose floats are being differentiated) or a
float array is refused with an error naming the op.

>>> import numpy as np, diffkit as dk
>>> xp = dk.namespace(np.ones(2))
>>> r = xp.unique_all(np.array([[2.0, 1.0], [2.0, 3.0]]))
>>> r.values.tolist(), r.indices.tolist(), r.inverse_indices.tolist(), r.counts.tolist()
([1.0, 2.0, 3.0], [1, 0, 3], [[1, 0], [1, 2]], [1, 2, 1])
>>> dk.gradient(lambda t: dk.namespace(t).sum(dk.namespace(t).unique_values(t) * np.array([1.0, 10.0])),
...             np.array([5.0, 4.0, 5.0])).grad.tolist()
[10.0, 1.0, 0.0]
"""
from __future__ import annotations

from collections import namedtuple
from typing import Any, Callable

import numpy as np

from .dispatch import TRACERS, dtype_kind, namespace

__all__ = ["UniqueAllResult", "UniqueCountsResult", "UniqueInverseResult", "SETS", "BITWISE"]

UniqueAllResult = namedtuple("UniqueAllResult", "values indices inverse_indices counts")
UniqueCountsResult = namedtuple("UniqueCountsResult", "values counts")
UniqueInverseResult = namedtuple("UniqueInverseResult", "values inverse_indices")


def nonzero(xp, x) -> tuple:
    """The indices of x's nonzero entries (NaN counts as nonzero), one integer array per axis, row-major."""
    rows = xp.nonzero_indices(x)
    return tuple(rows[d, :] for d in range(rows.shape[0]))


def unique_values(xp, x):
    """x's distinct values, ascending; each one's gradient goes to its first occurrence (row-major)."""
    return xp.take(x, xp.unique_first_indices(x))


def unique_counts(xp, x) -> UniqueCountsResult:
    return UniqueCountsResult(unique_values(xp, x), xp.unique_value_counts(x))


def unique_inverse(xp, x) -> UniqueInverseResult:
    return UniqueInverseResult(unique_values(xp, x), xp.unique_inverse_indices(x))


def unique_all(xp, x) -> UniqueAllResult:
    first = xp.unique_first_indices(x)
    return UniqueAllResult(xp.take(x, first), first, xp.unique_inverse_indices(x), xp.unique_value_counts(x))


SETS: dict[str, Callable] = {"nonzero": nonzero, "unique_values": unique_values, "unique_counts": unique_counts,
                             "unique_inverse": unique_inverse, "unique_all": unique_all}


# --- bitwise: integer and bool arrays only, by the values' own library ------------------------------------------

def _kind(a: Any) -> str:
    """numpy's kind letter of a value's dtype, any array library's (Python numbers as numpy reads them)."""
    dtype = getattr(a, "dtype", None)
    return np.asarray(a).dtype.kind if dtype is None else dtype_kind(dtype)


def _bitwise(name: str) -> Callable:
    def op(xp, *args, **kwargs):
        for a in args:
            if type(a) in TRACERS:
                raise TypeError(f"{name}: its inputs must be integer or bool arrays; got a traced array "
                                f"({type(a).__name__}), whose floats are being differentiated. Bitwise ops have no "
                                f"derivative: apply {name} to integer data (xp.astype(x, xp.int64) is a constant)")
            if _kind(a) not in "biu":
                raise TypeError(f"{name}: its inputs must be integer or bool arrays; got dtype "
                                f"{getattr(a, 'dtype', type(a).__name__)}")
        values = namespace(*args)
        if getattr(type(values), "from_table", False):  # diffkit's: numpy's values, or an array API library's
            lib = vars(values).get("library") or np
        else:  # a peer's array-API namespace
            lib = values
        return getattr(lib, name)(*args, **kwargs)
    op.__name__ = name
    return op


BITWISE: dict[str, Callable] = {name: _bitwise(name) for name in (
    "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_invert", "bitwise_left_shift", "bitwise_right_shift")}
