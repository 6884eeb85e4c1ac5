"""The reverse-mode tape: record each primitive as one node, then sweep back once.

A node is one flat tuple (a small tape stays small), ``(primitive, parent, rule, kept values, shape, ...)``,
four items per input on the tape: only what its rule names (:mod:`.plans`), and the input's shape where it
is not the output's (else None).  The sweep calls each rule with the incoming gradient ``g`` and adds the
results into the parents, so fan-out adds (seed 002's copy gate).
Tapes nest by ``level``: an op mixing two tapes is recorded by the newer one, for which the older one's
arrays are values, and a nested sweep is itself recorded: second derivatives, no perturbation confusion.
"""
from __future__ import annotations

import itertools
from sys import getrefcount
from typing import Any

import numpy as np

from ..backends import NUMPY
from ..dispatch import TRACERS
from ..primitives import PRIMITIVES
from .anomaly import check_finite, shape_error, user_site
from .array import TArray
from .collector import paused_collector
from . import native
from .plans import LINKS, fill_unwritten, joint_links, node_parents, plan, scatter, shared_shape, unbroadcast

__all__ = ["Tape", "apply", "record", "record_op", "unbroadcast", "new_level"]

_F64 = np.dtype(np.float64)
_NUMBERS = (float, int, np.float64)  # contributions a float64 buffer of ours takes in place (not a trace)
_MULTIPLY, _SQUARE = PRIMITIVES["multiply"], PRIMITIVES["square"]
_LEVELS = itertools.count(1)
HOOKS: dict = {}  # filled by .levels, which builds on this module: "levels" (mixed traces), "namespace"


def new_level() -> int:
    """A level above every trace made so far (tapes and duals share the counter)."""
    return next(_LEVELS)


class Tape:
    """A Wengert list over values of namespace ``vxp`` (numpy floats, mpmath, another tape's arrays...)."""

    __slots__ = ("nodes", "vxp", "impls", "level", "anomaly", "sites", "values", "ns", "program", "plain", "convert", "fast")

    def __init__(self, vxp: Any = None, anomaly: bool = False, record_values: bool = False, program: bool = False):
        self.vxp = NUMPY if vxp is None or vxp is np else vxp
        self.impls = self.vxp.impls  # the forward of each primitive, by index, in the value namespace
        self.convert = getattr(self.vxp, "convert", None)
        self.ns = HOOKS["namespace"](self.vxp)
        self.nodes: list = []
        self.level = new_level()
        self.anomaly = anomaly
        self.sites: dict | None = {} if anomaly else None  # node -> the user's line that made it (anomaly mode)
        self.values: list | None = [] if record_values else None  # node i's forward value, for dk.graph
        self.program: list | None = [] if program else None  # what dk.compile replays (see .replay)
        self.plain = not (anomaly or record_values or program)  # nothing beside the nodes to record
        self.fast = self.plain and self.vxp is NUMPY  # what a generated recorder (.plans) records in one call

    def leaf(self, value: Any) -> TArray:  # start recording: a tape array for an input whose gradient we want
        return record(self, None, value)

    def __len__(self) -> int:
        return len(self.nodes)

    def op_name(self, i: int) -> str:  # the primitive that made node i ("input" for a leaf)
        return "input" if self.nodes[i] is None else self.nodes[i][0].name

    def parents(self, i: int) -> list:  # the nodes that node i was computed from, in argument order (on the tape)
        return node_parents(self.nodes[i])

    def backward(self, out: TArray, cotangent: Any = 1.0, *, retain: bool = False, on_edge: Any = None) -> list:
        """Sweep back from ``out``; return the gradient of every node (``None`` where none arrived).

        Each node is freed as the sweep passes it unless ``retain``; ``on_edge(child, parent, contribution)``
        sees every gradient sent along an edge (dk.graph).
        """
        nodes, xp, sites = self.nodes, self.vxp, self.sites
        with paused_collector():  # (the sweep makes no cycles: .collector; paused before its first allocation,
            grads: list = [None] * len(nodes)  # which would otherwise start a collection that walks the tape)
            owned = [False] * len(nodes)  # grads[i] is a float64 buffer of ours that may be added into in place
            unwritten: dict = {}  # leaf -> runs of its gradient buffer that no block has written yet (.plans.scatter)
            grads[out.index] = cotangent
            if sites is None and on_edge is None and native.sweep(xp, nodes, grads, owned, unwritten, out.index,
                                                                  retain):  # the same loop, in C
                fill_unwritten(grads, unwritten)
                return grads
            for i in range(out.index, -1, -1):
                g, node = grads[i], nodes[i]
                if g is None or node is None:
                    continue
                if unwritten and i in unwritten:  # a view's parent, read now: its unreached entries are zeros
                    g = fill_unwritten(grads, unwritten, i)
                prim, site = node[0], None if sites is None else sites.get(i)
                grads[i] = None
                if not retain:
                    nodes[i] = None
                if prim.scatter:  # x[index]: add g into that part of x's gradient
                    scatter(xp, grads, owned, i, node, g, on_edge, unwritten)
                    continue
                if prim.joint is not None:  # one rule for every input: its results become links of their own
                    node = joint_links(node, g)
                for k in LINKS[len(node)]:
                    p, rule, args, shape = node[k], node[k + 1], node[k + 2], node[k + 3]
                    c = rule(g, *args)
                    if c is None:
                        continue
                    if site is not None:
                        check_finite(c, f"the derivative rule of {prim.name}", site)
                    if shape is not None and getattr(c, "shape", ()) != shape:  # (None: the output's shape,
                        c = unbroadcast(xp, c, shape)  # which a contribution computed from g has already)
                    if on_edge is not None:
                        on_edge(i, p, c)
                    acc = grads[p]
                    if acc is None:  # (most inputs get one contribution: whose array it is, is asked at a second)
                        grads[p] = c
                        continue
                    if unwritten and p in unwritten:
                        fill_unwritten(grads, unwritten, p)
                    if not owned[p] and type(acc) is np.ndarray and acc.dtype == _F64 and acc.base is None:
                        owned[p] = getrefcount(acc) == 3  # held by grads[p] alone (and `acc`, and the argument)
                    if owned[p] and (type(c) is np.ndarray and c.dtype == _F64 or type(c) in _NUMBERS):  # (not a trace)
                        acc += c
                        continue
                    # an array the rule has just made, held only here (`c`, the argument): it becomes the accumulator
                    if type(c) is np.ndarray and c.dtype == _F64 and c.base is None and getrefcount(c) == 2 and \
                            type(acc) is np.ndarray and acc.dtype == _F64:
                        c += acc  # (both have p's shape) the fresh one is the accumulator: no new array
                        grads[p], owned[p] = c, True
                    else:
                        acc = acc + c
                        grads[p], owned[p] = acc, type(acc) is np.ndarray and acc.dtype == _F64
            fill_unwritten(grads, unwritten)  # (the leaves' unreached entries)
        return grads


def record(tape: Tape, node: Any, value: Any, entry: Any = None) -> TArray:
    """Append ``node`` (``None`` for a leaf; ``entry``: the op as dk.compile replays it); return its array."""
    nodes = tape.nodes
    nodes.append(node)
    if tape.values is not None:
        tape.values.append(value)
    if tape.program is not None:
        tape.program.append(node if entry is None else entry)
    return TArray(value, tape, len(nodes) - 1)


def apply(prim: Any, *args: Any, **params: Any) -> Any:
    """Run ``prim`` on ``args``; record a node when an argument is on a tape."""
    n = len(args)  # one and two arguments (nearly every op) take a path without loops: this is per-op overhead
    if n == 1:
        if type(a := args[0]) is not TArray:
            return HOOKS["levels"](prim, args, params)
        tape, vals, parents, mask = a.tape, (a.value,), (a.index,), 1
    elif n == 2:
        a, b = args
        ta, tb = type(a) is TArray, type(b) is TArray
        if a is b and ta and prim is _MULTIPLY:  # x * x: one contribution 2 g x instead of two (same values)
            return record_op(_SQUARE, a.tape, (a.value,), (a.index,), 1, params)
        if ta and (tb and b.tape is a.tape or not tb and type(b) not in TRACERS):
            tape, vals, parents, mask = a.tape, (a.value, b.value if tb else b), (a.index, b.index if tb else -1), 1 + 2 * tb
        elif tb and not ta and type(a) not in TRACERS:
            tape, vals, parents, mask = b.tape, (a, b.value), (-1, b.index), 2
        else:
            return HOOKS["levels"](prim, args, params)
    elif n == 3 and type(args[1]) is TArray:  # a dense layer's x, W, b (x a constant or on the same tape)
        a, b, c = args
        tape, ta, tc = b.tape, type(a) is TArray, type(c) is TArray
        if (a.tape is not tape if ta else type(a) in TRACERS) or (c.tape is not tape if tc else type(c) in TRACERS):
            return HOOKS["levels"](prim, args, params)
        vals, mask = (a.value if ta else a, b.value, c.value if tc else c), ta | 2 | tc << 2
        parents = (a.index if ta else -1, b.index, c.index if tc else -1)
    else:
        return HOOKS["levels"](prim, args, params)
    return record_op(prim, tape, vals, parents, mask, params)


def record_op(prim, tape, vals, parents, mask, params):
    if tape.convert is not None:  # constants join the values' library (numpy data beside CuPy values)
        vals = tuple([tape.convert(v) for v in vals])
    try:
        ans = tape.impls[prim.index](*vals, **params) if params else tape.impls[prim.index](*vals)
    except (ValueError, TypeError, IndexError) as err:
        raise shape_error(prim, vals, err) from err
    fast, build = prim.plans.get(mask << 8 | len(vals)) or plan(prim, mask, len(vals))
    ans, res = ans if prim.residual else (ans, None)  # a residual: a value the rule reuses, not the output
    if fast and tape.plain:  # no view, joint rule, anomaly check or extra recording: every op's path
        tape.nodes.append(build(vals, ans, tape.vxp, parents, params, res))
        return TArray(ans, tape, len(tape.nodes) - 1)
    if tape.anomaly:
        tape.sites[len(tape.nodes)] = site = user_site()
        check_finite(ans, prim.name, site)
    if prim.scatter:
        view = (parents[0], params["index"], None, shared_shape(getattr(vals[0], "shape", ())))
        return record(tape, (prim, *view), ans, ("view", view))
    node = build(vals, ans, tape.vxp, parents, params, res)
    return record(tape, node, ans, None if tape.program is None else ("op", prim, parents, vals, params))

