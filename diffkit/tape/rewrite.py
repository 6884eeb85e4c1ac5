"""Rewrites of a recorded program before ``dk.compile`` writes it (:mod:`.replay`, :mod:`.fused`): the same
function, less work.

**Gathers before products.**  ``(A @ C)[..., idx]``, ``C`` a constant matrix and ``idx`` an integer array taking
fewer columns than ``C`` has, is ``A @ C[:, idx]``: the product of the columns taken, not of all of them; and
the rows of a matrix product by a constant on the left, ``(X @ W)[rows]``, are ``X[rows] @ W`` (a minibatch of
a fixed data matrix).  The gather also passes through elementwise ops whose other operand is the same along the
gathered axis (``+ b`` with ``b`` of last axis 1 for columns, a bias row for rows, ``* 2.0``):
``(A @ C + b)[..., idx] = A @ C[:, idx] + b``.  A hand's mesh posed by a matrix product and read at 100 of its
544 vertices (GradBench ht) computes 100 columns, not 544, and its gradient sends back 100.  A chain is
rewritten only when nothing else reads it (every reader of its last node is such a gather, all along one
axis; each of its other nodes is read once, by the next), and when the gathers take fewer columns (rows) than
the product has: else the whole product is computed anyway, and the gathered ones would be extra work.

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

_COMMUTING = ("add", "subtract", "multiply")  # elementwise: a gather passes through them when the other operand
# is the same along the gathered axis
_LAST, _ROWS = -1, -2  # the gathered axis: a product's columns (C on the right), or a matrix product's rows (C left)


def _gather(entry: Any) -> tuple | None:
    """``(axis, integer array)`` of a view that takes some columns of an array and all of its other axes
    (``x[:, :, idx]``), or some rows of a matrix (``x[idx]``, ``x[idx, :]``); None for any other entry."""
    if entry is None or entry[0] != "view":
        return None
    _, index, view_shape, shape = entry[1]
    parts = index if type(index) is tuple else (index,)
    if view_shape is not None or len(shape) < 2:
        return None
    if len(parts) == len(shape) and all(type(p) is slice and p == slice(None) for p in parts[:-1]):
        axis, taken = _LAST, parts[-1]
    elif len(shape) == 2 and len(parts) in (1, 2) and all(type(p) is slice and p == slice(None) for p in parts[1:]):
        axis, taken = _ROWS, parts[0]
    else:
        return None
    if isinstance(taken, np.ndarray) and taken.ndim == 1 and taken.dtype.kind in "iu" and taken.size < shape[axis]:
        return axis, taken
    return None


def _chain(entries: list, top: int, axis: int) -> list | None:
    """``[(node, side)]`` from the product up to ``top``: a matmul by a constant matrix (on the right for columns,
    on the left for rows), then elementwise ops whose operand ``side`` is the chain and whose other operand is
    the same along ``axis``; None if ``top`` is not such a chain."""
    chain, i = [], top
    constant = 1 if axis == _LAST else 0  # (the side of the product that the gather moves onto)
    while True:
        e = entries[i]
        if e is None or e[0] != "op":
            return None
        _, prim, parents, vals, params = e
        if prim.name == "matmul" and len(vals) == 2 and parents[constant] < 0 and parents[1 - constant] >= 0:
            c, other = vals[constant], vals[1 - constant]
            if not (type(c) is np.ndarray and c.ndim == 2 and c.dtype == np.float64 and np.ndim(other) >= 2):
                return None
            if axis == _ROWS and np.ndim(other) != 2:
                return None
            return [(i, 1 - constant)] + chain
        if prim.name not in _COMMUTING or len(vals) != 2 or params:
            return None
        whole = np.broadcast_shapes(np.shape(vals[0]), np.shape(vals[1]))
        sides = [k for k in (0, 1) if parents[k] >= 0 and np.shape(vals[k]) == whole
                 and _extent(np.shape(vals[1 - k]), axis) == 1]
        if not sides:
            return None
        chain.insert(0, (i, sides[0]))
        i = parents[sides[0]]


def _extent(shape: tuple, axis: int) -> int:
    """How many entries an operand of ``shape`` has along ``axis`` of the result (1: the same all along it)."""
    return shape[axis] if len(shape) >= -axis else 1


def gathers_first(program: list, values: list, keep: tuple) -> tuple[list, list, dict] | None:
    """``(program, values, new index of each old node)`` with every gather of an unshared product chain
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
    plans: dict = {}  # view node -> (its axis and entries, the chain below it)
    for top in {e[1][0] for e in entries if _gather(e) is not None}:
        gathers = [_gather(entries[r]) for r in readers[top]]
        if top in keep or None in gathers or len({axis for axis, _ in gathers}) != 1:
            continue
        axis = gathers[0][0]
        chain = _chain(entries, top, axis)
        if chain is None or any(readers.get(i) != [chain[k + 1][0]] or i in keep for k, (i, _) in enumerate(
                chain[:-1])):
            continue
        if sum(taken.size for _, taken in gathers) >= entries[readers[top][0]][1][3][axis]:
            continue  # (the gathers take as many columns, or rows, as the product has, or more)
        for view, gather in zip(readers[top], gathers):
            plans[view] = (gather, chain)
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
            (axis, taken), chain = plans[index]
            below = None  # the rewritten node below this one (None: this one is the product)
            for i, side in chain:
                _, prim, parents, vals, params = entries[i]
                parents, vals = [moved[p] if p >= 0 else p for p in parents], list(vals)
                if below is None:  # the constant's columns (rows) taken: the other side is the chain's
                    vals[1 - side] = np.ascontiguousarray(vals[1][:, taken] if axis == _LAST else vals[0][taken])
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
