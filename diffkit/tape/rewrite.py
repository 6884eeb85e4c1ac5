"""Rewrites of a recorded program before ``dk.compile`` writes it (:mod:`.replay`, :mod:`.fused`): the same
function, less work.

**Gathers before products.**  ``(A @ C)[..., idx]``, ``C`` a constant matrix and ``idx`` an integer array taking
fewer columns than ``C`` has, is ``A @ C[:, idx]``: the product of the columns taken, not of all of them.  The
gather also passes through elementwise ops whose other operand is the same along the last axis (``+ b`` with
``b`` of last axis 1, ``* 2.0``): ``(A @ C + b)[..., idx] = A @ C[:, idx] + b``.  A hand's mesh posed by a
matrix product and read at 100 of its 544 vertices (GradBench ht) computes 100 columns, not 544, and its
gradient sends back 100.  A chain is rewritten only when nothing else reads it (every reader of its last node
is such a gather, each of its other nodes is read once, by the next): else the whole product is computed
anyway, and the gathered ones would be extra work.

>>> import numpy as np, diffkit as dk
>>> C, idx = np.arange(12.0).reshape(3, 4), np.array([3, 0])
>>> def f(t):
...     xp = dk.namespace(t)
...     return xp.sum((xp.reshape(t, (2, 3)) @ C + 1.0)[:, idx] ** 2)
>>> g = dk.compile(f, np.ones(6))          # (2, 3) @ C[:, idx], (3, 2): two columns of the four
>>> g(np.arange(6.0))[1].tolist()          # 2 (A C_idx + 1) C_idx^T, A = (0 1 2; 3 4 5), row by row
[180.0, 588.0, 996.0, 558.0, 1758.0, 2958.0]
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..backends import NUMPY
from .replay import _inputs, _split

__all__ = ["gathers_first"]

_COMMUTING = ("add", "subtract", "multiply")  # elementwise: a gather of the last axis passes through them when
# the other operand is the same along that axis


def _column_gather(entry: Any) -> np.ndarray | None:
    """The integer array of a view that takes whole leading axes and some entries of the last: ``x[:, :, idx]``."""
    if entry is None or entry[0] != "view":
        return None
    _, index, view_shape, shape = entry[1]
    parts = index if type(index) is tuple else (index,)
    if view_shape is not None or len(shape) < 2 or len(parts) != len(shape):
        return None
    *lead, last = parts
    if not all(type(p) is slice and p == slice(None) for p in lead):
        return None
    if not (isinstance(last, np.ndarray) and last.ndim == 1 and last.dtype.kind in "iu" and last.size < shape[-1]):
        return None
    return last


def _chain(entries: list, top: int) -> list | None:
    """``[(node, side)]`` from the product up to ``top``: a matmul by a constant matrix, then elementwise ops
    whose operand ``side`` is the chain and whose other operand is the same along the last axis; None if
    ``top`` is not such a chain."""
    chain, i = [], top
    while True:
        e = entries[i]
        if e is None or e[0] != "op":
            return None
        _, prim, parents, vals, params = e
        if prim.name == "matmul" and len(vals) == 2 and parents[1] < 0 and parents[0] >= 0:
            c = vals[1]
            if not (type(c) is np.ndarray and c.ndim == 2 and np.ndim(vals[0]) >= 2 and c.dtype == np.float64):
                return None
            return [(i, 0)] + chain
        if prim.name not in _COMMUTING or len(vals) != 2 or params:
            return None
        whole = np.broadcast_shapes(np.shape(vals[0]), np.shape(vals[1]))
        sides = [k for k in (0, 1) if parents[k] >= 0 and np.shape(vals[k]) == whole
                 and np.shape(vals[1 - k])[-1:] in ((), (1,))]
        if not sides:
            return None
        chain.insert(0, (i, sides[0]))
        i = parents[sides[0]]


def gathers_first(program: list, values: list, keep: tuple) -> tuple[list, list, dict] | None:
    """``(program, values, new index of each old node)`` with every column gather of an unshared product chain
    computed from the gathered columns (see the module doc); None when there is none.  ``keep``: the nodes
    the caller reads (the output, an aux), whose chains are left whole."""
    entries, guards = _split(program)
    readers: dict = {}
    for i, e in enumerate(entries):
        for p in _inputs(e):
            readers.setdefault(p, []).append(i)
    for _, g in guards:
        for p in _inputs(g):
            readers.setdefault(p, []).append(-1)  # (a guard reads it: left as it is)
    plans: dict = {}  # view node -> (its columns, the chain below it)
    for top in {e[1][0] for e in entries if _column_gather(e) is not None}:
        chain = _chain(entries, top)
        if chain is None or top in keep or not all(_column_gather(entries[r]) is not None for r in readers[top]):
            continue
        if any(readers.get(i) != [chain[k + 1][0]] or i in keep for k, (i, _) in enumerate(chain[:-1])):
            continue
        if sum(_column_gather(entries[r]).size for r in readers[top]) >= entries[chain[0][0]][3][1].shape[1]:
            continue  # (the gathers take as many columns as the product has, or more)
        for view in readers[top]:
            plans[view] = (_column_gather(entries[view]), chain)
    if not plans:
        return None
    new_program, new_values, moved = [], [], {}
    index = -1
    for e in program:
        if type(e) is tuple and e and e[0] in ("const", "bool"):
            new_program.append(_renamed_guard(e, moved))
            continue
        index += 1
        if index in plans:
            columns, chain = plans[index]
            below = None  # the rewritten node below this one (None: this one is the product)
            for i, side in chain:
                _, prim, parents, vals, params = entries[i]
                parents, vals = [moved[p] if p >= 0 else p for p in parents], list(vals)
                if below is None:
                    vals[1] = np.ascontiguousarray(vals[1][:, columns])
                else:
                    parents[side], vals[side] = below, new_values[below]
                new_program.append(("op", prim, tuple(parents), tuple(vals), params))
                new_values.append(NUMPY.impls[prim.index](*vals, **params))
                below = len(new_values) - 1
            moved[index] = below
            continue
        moved[index] = len(new_values)
        new_program.append(_renamed(e, moved))
        new_values.append(values[index])
    return new_program, new_values, moved


def _renamed(entry: Any, moved: dict) -> Any:
    """A node entry with its inputs' new indices."""
    if entry is None:
        return None
    if entry[0] == "op":
        _, prim, parents, vals, params = entry
        return ("op", prim, tuple(moved[p] if p >= 0 else p for p in parents), vals, params)
    p, index, view_shape, shape = entry[1]
    return ("view", (moved[p], index, view_shape, shape))


def _renamed_guard(guard: tuple, moved: dict) -> tuple:
    if guard[0] == "bool":
        return ("bool", moved[guard[1]], guard[2])
    kind, prim, slots, params, out = guard
    return (kind, prim, tuple((is_slot, moved[ref] if is_slot else ref) for is_slot, ref in slots), params, out)
