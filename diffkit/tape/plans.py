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
from typing import Callable

__all__ = ["plan"]


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
    """``(getters, param names)``: ``getters`` is ``(k, rule, getter)`` per input ``k`` on the tape
    (or the one getter of a joint rule)."""
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
    result = prim.plans[(mask, n_args)] = (getters, tuple(params))
    return result
