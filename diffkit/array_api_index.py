"""NumPy-style indexing on any array-API library: gathers, and scatters whose repeated indices add up.

The standard's ``__getitem__`` takes basic indices and (since 2024.12) integer
arrays alone; its ``__setitem__`` takes basic indices only.  numpy's index
forms (lists, integer arrays beside slices, boolean masks) and ``np.add.at``
(repeated indices accumulate) are rebuilt here from standard functions:

* an index is turned into the *flat positions* it selects, on the host, by
  indexing broadcast views of ``arange`` with numpy's own indexing (so the
  semantics are numpy's exactly; index arrays are the user's data, lists or
  numpy arrays; a device index is copied to the host once);
* a gather is ``take`` at those positions;
* a scatter sorts the positions (``argsort(stable=True)``), finds each
  target's run with ``searchsorted``, and adds one occurrence per round
  (``where`` + ``take``): round k adds every target's k-th value, in the
  index's order, so the sums are numpy's ``np.add.at`` bit for bit.  Rounds
  = the largest multiplicity, each O(size of x): no m x n one-hot matrix.

>>> import pytest; xp = pytest.importorskip("array_api_strict")  # the standard's checker (the array-api extra)
>>> x = xp.asarray([1.0, 2.0, 3.0])
>>> index_add(x, ([0, 2, 2],), xp.asarray([10.0, 20.0, 30.0]))
Array([11.,  2., 53.], dtype=array_api_strict.float64)
>>> index_set(x, ([0, 2, 2],), xp.asarray([10.0, 20.0, 30.0]))  # numpy's last write wins
Array([10.,  2., 30.], dtype=array_api_strict.float64)
>>> gather(xp.reshape(xp.arange(6.0), (2, 3)), (slice(None), [2, 0]))
Array([[2., 0.],
       [5., 3.]], dtype=array_api_strict.float64)
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .array_api import array_namespace_of, device_of, to_host

__all__ = ["is_basic", "positions", "gather", "index_add", "index_set"]

_BASIC = (slice, int, type(None), type(Ellipsis))


def is_basic(index: Any) -> bool:
    """Only slices, integers, ``None`` and ``...``: what every array library's ``__setitem__`` takes.

    >>> is_basic((slice(1, 3), 0, Ellipsis)), is_basic(([0, 2],))
    (True, False)
    """
    parts = index if type(index) is tuple else (index,)
    return all(isinstance(p, _BASIC) and type(p) is not bool or isinstance(p, np.integer) for p in parts)


def _padded(index: Any) -> tuple:
    """A basic index as the standard spells it: a tuple, with a trailing ``...`` where numpy implies one."""
    parts = index if type(index) is tuple else (index,)
    return parts if any(p is Ellipsis for p in parts) else parts + (Ellipsis,)


def _host_index(index: Any) -> Any:
    """The index with every array part as host data (lists and device arrays become numpy arrays)."""
    parts = index if type(index) is tuple else (index,)
    host = tuple(p if isinstance(p, _BASIC) else _host_array(p) for p in parts)
    return host if type(index) is tuple else host[0]


def _host_array(p: Any) -> np.ndarray:
    arr = np.asarray(p) if isinstance(p, (list, np.ndarray, np.generic)) else to_host(p)
    return arr.astype(np.intp) if arr.size == 0 else arr  # numpy reads [] as an empty integer index


def positions(shape: tuple, index: Any) -> np.ndarray:
    """The flat (C-order) positions that ``x[index]`` selects from an array of ``shape``, in its result's shape.

    numpy's indexing does the work, on broadcast views of ``arange`` (no array of x's size is made).

    >>> positions((3, 4), (slice(None), [1, 1])).tolist()
    [[1, 1], [5, 5], [9, 9]]
    """
    shape = tuple(int(n) for n in shape)
    index = _host_index(index)
    strides = np.cumprod((1,) + shape[:0:-1])[::-1] if shape else ()
    out = np.zeros((), dtype=np.int64)[index] if not shape else 0
    for axis, (n, stride) in enumerate(zip(shape, strides)):
        along = np.arange(n, dtype=np.int64).reshape((-1,) + (1,) * (len(shape) - axis - 1)) * int(stride)
        out = out + np.broadcast_to(along, shape)[index]
    return np.asarray(out, dtype=np.int64)


def _device_positions(lib: Any, like: Any, shape: tuple, index: Any):
    return lib.asarray(positions(shape, index), device=device_of(like))


def gather(x: Any, index: Any) -> Any:
    """``x[index]`` with numpy's semantics: basic indices by the library's own indexing, others by ``take``."""
    if is_basic(index):
        return x[_padded(index)]
    lib = array_namespace_of(x)
    pos = _device_positions(lib, x, x.shape, index)
    return lib.reshape(lib.take(lib.reshape(x, (-1,)), lib.reshape(pos, (-1,)), axis=0), pos.shape)


def _values(lib: Any, base: Any, values: Any, shape: tuple) -> Any:
    """The update values broadcast to the selection's shape, flat, in base's dtype family."""
    if not hasattr(values, "shape"):
        return lib.full(shape, values, dtype=base.dtype, device=device_of(base))
    return lib.broadcast_to(values, shape)


def _runs(lib: Any, pos: Any, n: int):
    """For targets 0..n-1: the positions sorted (stable), each target's run [start, stop) in them."""
    order = lib.argsort(pos, stable=True)
    ordered = lib.take(pos, order)
    targets = lib.arange(n, dtype=ordered.dtype, device=device_of(pos))
    return order, lib.searchsorted(ordered, targets, side="left"), lib.searchsorted(ordered, targets, side="right")


def index_add(base: Any, index: Any, values: Any) -> Any:
    """A copy of ``base`` with ``values`` added at ``base[index]``; repeated indices add up (``np.add.at``)."""
    return _updated(base, index, values, add=True)


def index_set(base: Any, index: Any, values: Any) -> Any:
    """A copy of ``base`` with ``base[index] = values``; where an index repeats, the last write wins (numpy's)."""
    return _updated(base, index, values, add=False)


def _updated(base: Any, index: Any, values: Any, add: bool) -> Any:
    lib = array_namespace_of(base)
    dtype = lib.result_type(base, values) if hasattr(values, "dtype") else base.dtype
    if is_basic(index):  # the standard's __setitem__
        out, index = lib.asarray(base, dtype=dtype, copy=True), _padded(index)
        out[index] = out[index] + values if add else values
        return out
    pos = _device_positions(lib, base, base.shape, index)
    flat_pos = lib.reshape(pos, (-1,))
    m, n = int(flat_pos.shape[0]), int(np.prod(base.shape, dtype=np.int64))
    out = lib.astype(lib.reshape(base, (-1,)), dtype, copy=True)
    if m:
        order, start, stop = _runs(lib, flat_pos, n)
        vals = lib.astype(lib.take(lib.reshape(_values(lib, base, values, pos.shape), (-1,)), order), dtype)
        if add:
            count = stop - start
            for k in range(int(lib.max(count))):  # round k: each target's k-th value, in the index's order
                out = out + lib.where(count > k, lib.take(vals, lib.clip(start + k, 0, m - 1)), lib.zeros_like(out))
        else:
            out = lib.where(stop > start, lib.take(vals, lib.clip(stop - 1, 0, m - 1)), out)
    return lib.reshape(out, base.shape)
