"""The reverse-mode tape: record each primitive as one node, then sweep back once.

A node is ``(primitive, links, site)``; ``links`` holds, per input on the tape,
``(parent, rule, kept values, shape)``: only what that input's rule names
(:mod:`.plans`).  The sweep calls each rule with the incoming gradient ``g``
and adds the results into the parents, so fan-out adds (seed 002's copy gate).
Tapes nest by ``level`` (creation order): an op mixing two tapes is recorded
by the newer one, for which the older one's arrays are values, and a nested
sweep written against ``vxp`` is itself recorded by the outer tape: that is
how second derivatives come out without perturbation confusion.
"""
from __future__ import annotations

import gc
import itertools
from sys import getrefcount
from typing import Any

import numpy as np

from ..backends import NUMPY
from ..dispatch import TRACERS
from .array import TArray
from .plans import plan

__all__ = ["Tape", "apply", "record", "record_op", "unbroadcast", "new_level"]

_F64 = np.dtype(np.float64)
_LEVELS = itertools.count(1)
HOOKS: dict = {}  # filled by .levels, which builds on this module: "levels" (mixed traces), "namespace"


def new_level() -> int:
    """A level above every trace made so far (tapes and duals share the counter)."""
    return next(_LEVELS)


class Tape:
    """A Wengert list over values of namespace ``vxp`` (numpy floats, mpmath, another tape's arrays...)."""

    __slots__ = ("nodes", "vxp", "impls", "level", "anomaly", "values", "ns")

    def __init__(self, vxp: Any = None, anomaly: bool = False, record_values: bool = False):
        self.vxp = NUMPY if vxp is None or vxp is np else vxp
        self.impls = self.vxp.impls  # the forward of each primitive, by index, in the value namespace
        self.ns = HOOKS["namespace"](self.vxp)
        self.nodes: list = []
        self.level = new_level()
        self.anomaly = anomaly
        self.values: list | None = [] if record_values else None  # node i's forward value, for dk.graph

    def leaf(self, value: Any) -> TArray:
        """Start recording: a tape array for an input whose gradient we want."""
        return record(self, None, value)

    def __len__(self) -> int:
        return len(self.nodes)

    def op_name(self, i: int) -> str:
        """The primitive that made node ``i`` (``"input"`` for a leaf)."""
        node = self.nodes[i]
        return "input" if node is None else node[0].name

    def parents(self, i: int) -> list:
        """The nodes that node ``i`` was computed from, in argument order (tape inputs only)."""
        node = self.nodes[i]
        if node is None:
            return []
        prim, links, _ = node
        if prim.scatter:
            return [links[0]]
        return [p for p in links[0] if p >= 0] if prim.joint is not None else [link[0] for link in links]

    def backward(self, out: TArray, cotangent: Any = 1.0, *, retain: bool = False, on_edge: Any = None) -> list:
        """Sweep back from ``out``; return the gradient of every node (``None`` where none arrived).

        Each node is freed as the sweep passes it unless ``retain``; ``on_edge(child,
        parent, contribution)`` sees every gradient sent along an edge (dk.graph).
        """
        nodes, xp = self.nodes, self.vxp
        grads: list = [None] * len(nodes)
        owned = [False] * len(nodes)  # grads[i] is a float64 buffer of ours that may be added into in place
        grads[out.index] = cotangent
        paused = gc.isenabled()
        gc.disable()  # the sweep makes no cycles; collections during it cost a third of a small gradient
        try:
            for i in range(out.index, -1, -1):
                g, node = grads[i], nodes[i]
                if g is None or node is None:
                    continue
                prim, links, site = node
                grads[i] = None
                if not retain:
                    nodes[i] = None
                if prim.scatter:  # x[index]: add g into that part of x's gradient
                    p, index, view_shape, shape = links
                    c = g if view_shape is None else xp.reshape(g, view_shape)
                    if on_edge is not None:
                        on_edge(i, p, c)
                    if owned[p] and type(index) is slice and type(c) is np.ndarray:
                        view = grads[p][index]
                        view += c
                    else:
                        grads[p], owned[p] = xp.scatter_add(grads[p], owned[p], shape, index, c)
                    continue
                if prim.joint is not None:  # one rule for every input: its results become links of their own
                    parents, args, shapes = links
                    links = [(p, _given, (c,), s) for p, c, s in zip(parents, prim.joint(g, *args), shapes) if p >= 0]
                for p, rule, args, shape in links:
                    c = rule(g, *args)
                    if c is None:
                        continue
                    if site is not None:
                        from .anomaly import check_finite
                        check_finite(c, f"the derivative rule of {prim.name}", site)
                    if getattr(c, "shape", ()) != shape:
                        c = unbroadcast(xp, c, shape)
                    if on_edge is not None:
                        on_edge(i, p, c)
                    acc = grads[p]
                    if acc is None:
                        # An array the rule has just made, held only here (getrefcount sees `c` and its own
                        # argument), becomes the accumulator that later contributions add into in place.
                        owned[p] = type(c) is np.ndarray and c.dtype == _F64 and c.base is None and getrefcount(c) == 2
                        grads[p] = c
                    elif owned[p]:
                        acc += c
                    else:
                        acc = acc + c
                        grads[p], owned[p] = acc, type(acc) is np.ndarray and acc.dtype == _F64
        finally:
            if paused:
                gc.enable()
        return grads


def _given(g: Any, c: Any) -> Any:
    return c  # the 'rule' of a contribution that a joint rule has already computed


def unbroadcast(xp: Any, c: Any, shape: tuple) -> Any:
    """Sum ``c`` down to ``shape``, undoing broadcasting."""
    cshape = getattr(c, "shape", ())
    lead = len(cshape) - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, n in enumerate(shape) if n == 1 and cshape[i + lead] != 1)
    if type(c) is np.ndarray and c.dtype == _F64:  # the methods skip numpy's dispatch wrappers
        return (c.sum(axis=axes) if axes else c).reshape(shape)
    return xp.reshape(xp.sum(c, axis=axes) if axes else c, shape)


def record(tape: Tape, node: Any, value: Any) -> TArray:
    """Append ``node`` (``None`` for a leaf) and return the tape array of ``value``."""
    nodes = tape.nodes
    nodes.append(node)
    if tape.values is not None:
        tape.values.append(value)
    return TArray(value, tape, len(nodes) - 1)


def apply(prim: Any, *args: Any, **params: Any) -> Any:
    """Run ``prim`` on ``args``; record a node when an argument is on a tape."""
    n = len(args)  # one and two arguments (nearly every op) take a path without loops: this is per-op overhead
    if n == 1:
        a = args[0]
        if type(a) is not TArray:
            return HOOKS["levels"](prim, args, params)
        tape, vals, parents, mask = a.tape, (a.value,), (a.index,), 1
    elif n == 2:
        a, b = args
        ta, tb = type(a) is TArray, type(b) is TArray
        if ta and (tb and b.tape is a.tape or not tb and type(b) not in TRACERS):
            tape, vals, parents, mask = a.tape, (a.value, b.value if tb else b), (a.index, b.index if tb else -1), 1 + 2 * tb
        elif tb and not ta and type(a) not in TRACERS:
            tape, vals, parents, mask = b.tape, (a, b.value), (-1, b.index), 2
        else:
            return HOOKS["levels"](prim, args, params)
    else:
        return HOOKS["levels"](prim, args, params)
    return record_op(prim, tape, vals, parents, mask, params)


def record_op(prim, tape, vals, parents, mask, params):
    shapes = tuple([getattr(v, "shape", ()) for v in vals])
    try:
        ans = tape.impls[prim.index](*vals, **params)
    except (ValueError, TypeError, IndexError) as err:
        from .anomaly import shape_error
        raise shape_error(prim, vals, err) from err
    res = None
    if prim.residual:  # the forward also returned a value its rule reuses (``res``), not part of the output
        ans, res = ans
    site = None
    if tape.anomaly:
        from .anomaly import check_finite, user_site
        site = user_site()
        check_finite(ans, prim.name, site)
    if prim.scatter:
        return record(tape, (prim, (parents[0], params["index"], None, shapes[0]), site), ans)
    getters, pnames = prim.plans.get((mask, len(vals))) or plan(prim, mask, len(vals))
    pool = [*vals, *shapes, ans, tape.vxp, vals, shapes, res]
    if pnames:
        pdefaults = prim.params
        pool += [params[k] if k in params else pdefaults[k] for k in pnames]
    if prim.joint is not None:
        links = (parents, getters(pool), shapes)
    else:
        links = tuple([(parents[k], rule, get(pool), shapes[k]) for k, rule, get in getters])
    return record(tape, (prim, links, site), ans)

