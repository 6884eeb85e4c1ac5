"""Ops on arrays of several traces, tape views, and the tape's namespace: the parts of recording beside the core."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..dispatch import TRACERS, namespace
from ..primitives import PRIMITIVES
from .array import TArray
from . import core
from ..backends import NUMPY
from .core import record, record_op
from . import native
from .plans import LINKS, fast_recorder, shared_shape
from .namespace import TracerNamespace

__all__ = ["levels", "apply_on", "lift", "reshape_view", "index_view", "tape_namespace"]


def apply_on(prim: Any, tape: Tape, args: tuple, params: dict) -> TArray:
    """Record ``prim`` on ``tape``, treating arrays of other (outer) tapes as plain values."""
    vals, parents, mask = [], [], 0
    for k, a in enumerate(args):
        mine = type(a) is TArray and a.tape is tape
        if not mine and type(a) in TRACERS and type(tape.vxp) is not TracerNamespace:
            lift(tape, a)
        vals.append(a.value if mine else a)
        parents.append(a.index if mine else -1)
        mask |= mine << k
    return record_op(prim, tape, tuple(vals), tuple(parents), mask, params)


def lift(tape: Tape, trace: Any) -> None:
    """A tape over plain values meets an outer trace (``f`` closes over a variable of an enclosing
    derivative): from here its values are of that trace's namespace, which takes plain values and traces
    alike, as JAX lifts a closed-over tracer.  The nodes recorded so far hand their rules the new namespace
    too: the gradient that reaches them in the sweep may be a trace now."""
    if tape.program is not None:  # (values a replay would have to take from the enclosing derivative, each call)
        from .replay import NotCompilable
        raise NotCompilable("f reads a variable of an enclosing derivative (a traced value it closes over), which "
                            "a compiled replay cannot update between calls; inside a derivative, call dk.gradient "
                            "or dk.vjp, which follow it")
    old, vxp = tape.vxp, namespace(trace)
    tape.vxp, tape.impls, tape.convert, tape.fast = vxp, vxp.impls, None, False
    tape.ns = tape_namespace(vxp)
    tape.nodes[:] = [_renamed(node, old, vxp) for node in tape.nodes]


def _renamed(node: Any, old: Any, vxp: Any) -> Any:
    if node is None or node[0].scatter:
        return node
    if node[0].joint is not None:
        return (*node[:2], tuple(vxp if a is old else a for a in node[2]), *node[3:])
    node = list(node)
    for k in LINKS[len(node)]:
        node[k + 2] = tuple(vxp if a is old else a for a in node[k + 2])
    return tuple(node)


def levels(prim: Any, args: tuple, params: dict) -> Any:
    """``prim`` on any mix of arrays: the trace of the highest level records it; no trace: the plain forward."""
    top = None
    for a in args:
        if type(a) in TRACERS and (top is None or a._level > top._level):
            top = a
    if top is None:
        ans = namespace(*args).impls[prim.index](*args, **params)
        return ans[0] if prim.residual else ans
    if type(top) is TArray:
        return apply_on(prim, top.tape, args, params)
    return type(top).bind(prim, top, args, params)


def reshape_view(x: Any, shape: Any) -> TArray | None:
    """``reshape`` of a basic slice ``y[index]`` of a tape array, as one view node onto ``y`` (None otherwise).

    The view's gradient is then added straight into ``y``'s buffer: an MLP's
    ``reshape(theta[a:b], shape)`` is one node.
    """
    if type(x) is not TArray or type(x.value) is not np.ndarray:
        return None
    tape = x.tape
    node = tape.nodes[x.index]
    if node is None or not node[0].scatter or node[3] is not None or type(node[2]) is not slice:
        return None
    prim, parent, index, _, parent_shape = node
    try:
        value = x.value.reshape(shape)
    except (ValueError, TypeError):
        return None  # the reshape primitive reports it, naming the op and the shapes
    view = (parent, index, shared_shape(x.value.shape), parent_shape)
    return record(tape, (prim, *view), value, ("view", view))


def _view_part(i: Any) -> bool:
    """An int, a slice, or a numpy array of integers (a gather's indices)."""
    return type(i) in (slice, int) or type(i) is np.ndarray and i.dtype.kind in "iu"


def index_view(x: Any, index: Any) -> TArray | None:
    """``x[i]``, ``x[a:b]``, ``x[idx]`` or ``x[i, a:b, idx]`` (ints, slices and integer arrays) of a numpy tape
    array, recorded straight: the node the getitem primitive records (None: the general path records it)."""
    tape, value = x.tape, x.value
    if type(value) is not np.ndarray or not tape.plain or not (
            _view_part(index) or type(index) is tuple and all(_view_part(i) for i in index)):
        return None
    try:
        part = value[index]
    except IndexError:
        return None  # the getitem primitive reports it, naming the op and the shapes
    nodes = tape.nodes
    nodes.append((_GETITEM, x.index, index, None, shared_shape(value.shape)))
    return TArray(part, tape, len(nodes) - 1)


def _recorder(prim: Any) -> Any:
    """``apply``, ``record_op`` and the plan's builder in one call for a plain numpy tape: in C where the
    extension is built (:func:`.native.recorder`), else generated (:func:`.plans.fast_recorder`); None for the
    ops neither covers."""
    args = (prim, core.apply, NUMPY, TArray, TRACERS, PRIMITIVES["multiply"])
    return native.recorder(*args) or fast_recorder(*args)


_GETITEM = PRIMITIVES["getitem"]
_NAMESPACES: dict = {}


def tape_namespace(vxp: Any) -> TracerNamespace:
    """The namespace of tape arrays over values of ``vxp`` (one per value namespace)."""
    ns = _NAMESPACES.get(id(vxp))
    if ns is None:
        c_index_view, c_reshape_view = native.views(TArray, reshape_view) if vxp is NUMPY else (None, None)
        ns = _NAMESPACES[id(vxp)] = TracerNamespace("tape", vxp, core.apply, c_reshape_view or reshape_view,
                                                    c_index_view or index_view, _recorder)
    return ns


core.HOOKS.update(levels=levels, namespace=tape_namespace)
