"""What a node keeps: each rule's arguments, resolved once per primitive and call pattern.

A rule's parameters name what it reads (the vocabulary is documented in
:mod:`diffkit.primitives.table`).  :func:`plan` turns those names into
C-level getters over the pool that :func:`diffkit.tape.core.apply` builds,
``[*values, *shapes, ans, xp, values, shapes, res, *params]``, once for each
(inputs on the tape, number of inputs): a node then holds only what its rules
read, and nothing for inputs that are constants.
"""
from __future__ import annotations

import operator
from typing import Any, Callable

import numpy as np

__all__ = ["plan", "unbroadcast", "given", "node_parents", "scatter"]
_F64 = np.dtype(np.float64)


def _pool_index(prim, name: str, n_args: int, params: list) -> int:
    inputs = prim.inputs if not prim.variadic else ()
    positional = inputs[:n_args]
    if name in positional:
        return positional.index(name)
    if name.endswith("_shape") and name[:-6] in positional:
        return n_args + positional.index(name[:-6])
    special = {"ans": 0, "xp": 1, "res": 4}
    if prim.variadic:
        special.update({prim.inputs[0]: 2, prim.inputs[0] + "_shape": 3})
    if name in special:
        return 2 * n_args + special[name]
    if name not in prim.params:
        raise TypeError(f"rule of {prim.name} reads {name!r}, which is neither an input, a shape, ans, xp, res "
                        f"nor one of its params {sorted(prim.params)}")
    if name not in params:
        params.append(name)
    return 2 * n_args + 5 + params.index(name)


def _getter(indices: list) -> Callable:
    """A C-level function pool -> the rule's arguments (always a sequence)."""
    if len(indices) == 1:
        return operator.itemgetter(slice(indices[0], indices[0] + 1))
    return operator.itemgetter(*indices) if indices else operator.itemgetter(slice(0, 0))


def plan(prim, mask: int, n_args: int) -> tuple:
    """``(getters, param names, plain)``, cached in ``prim.plans`` under ``mask << 8 | n_args``: ``getters``
    is ``(k, rule, getter)`` per input ``k`` on the tape (or the one getter of a joint rule); ``plain``: no
    residual, view or joint rule."""
    params: list = []
    if prim.joint is not None:
        from ..primitives.table import _rule_args
        getters = _getter([_pool_index(prim, n, n_args, params) for n in _rule_args(prim.joint)])
    elif prim.scatter:
        getters = ()
    else:
        getters = tuple((k, rule, _getter([_pool_index(prim, n, n_args, params) for n in names]))
                        for k, (rule, names) in enumerate(zip(prim.vjps[:n_args], prim.rule_args))
                        if mask >> k & 1 and rule is not None)
    plain = prim.joint is None and not prim.scatter and not prim.residual  # record_op's short path
    result = prim.plans[mask << 8 | n_args] = (getters, tuple(params), plain)
    return result


def given(g: Any, c: Any) -> Any:
    return c  # the 'rule' of a contribution that a joint rule has already computed


def unbroadcast(xp: Any, c: Any, shape: tuple) -> Any:
    """Sum ``c`` down to ``shape``, undoing broadcasting."""
    cshape = getattr(c, "shape", ())
    lead = len(cshape) - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, n in enumerate(shape) if n == 1 and cshape[i + lead] != 1)
    if type(c) is np.ndarray and c.dtype == _F64:  # the methods skip numpy's dispatch wrappers
        return (c.sum(axis=axes) if axes else c).reshape(shape)
    return xp.reshape(xp.sum(c, axis=axes) if axes else c, shape)


def node_parents(node: Any) -> list:
    """The nodes a tape node was computed from, in argument order (tape inputs only)."""
    if node is None:
        return []
    prim, links, _ = node
    if prim.scatter:
        return [links[0]]
    return [p for p in links[0] if p >= 0] if prim.joint is not None else [link[0] for link in links]


def scatter(xp: Any, grads: list, owned: list, i: int, links: tuple, g: Any, on_edge: Any) -> None:
    """The sweep at view node ``i`` (``x[index]``, maybe reshaped): add ``g`` into that part of x's gradient."""
    p, index, view_shape, shape = links
    c = g if view_shape is None else xp.reshape(g, view_shape)
    if on_edge is not None:
        on_edge(i, p, c)
    if owned[p] and type(index) is slice and type(c) is np.ndarray:
        view = grads[p][index]
        view += c
    else:
        grads[p], owned[p] = xp.scatter_add(grads[p], owned[p], shape, index, c)
