"""Batched tangents: k tangents in one array with a leading batch axis, so that one forward-mode pass carries k
directions (what JAX's ``vmap(jvp)`` and ``jacfwd`` do).

A :class:`Batched` is a trace, like a tape array or a dual: its ``shape`` is a
member's shape (the batch axis hidden), and every primitive applied to it runs
once on the whole batch by the rules of :mod:`.batching`.  A dual whose tangent
is a :class:`Batched` pushes k tangents through the table's JVP rules
unchanged: a rule such as ``xp.sum(t * share, axis=axis)`` sees one tangent of
the member's shape, and the batched namespace moves the axis.  A value
without the batch axis (a primal, a constant) is the same for every member.

>>> import numpy as np, diffkit as dk
>>> value, tangents = dk.jvp(lambda t: dk.namespace(t).sin(t) * t[0], np.array([0.0, 1.0]), np.eye(2), batch=True)
>>> np.round(tangents, 12).tolist()        # row i: the tangent along direction i (column i of the Jacobian)
[[0.0, 0.841470984808], [0.0, 0.0]]
"""
from __future__ import annotations

import functools
from typing import Any

import numpy as np

from ..backends import install, user_form
from ..dispatch import TRACERS, namespace, register_tracer, strip
from ..primitives import PRIMITIVES
from .batching import batched_call
from .levels import levels
from .namespace import TracerNamespace
from .operators import NamespaceOperators

__all__ = ["Batched", "batched_namespace", "unbatched"]
_PLAIN = (float, int, np.float64)


class Batched(NamespaceOperators):
    """``value`` holds k members along its first axis; ``level`` is the level of the dual that carries it."""

    __slots__ = ("value", "level", "ns")

    def __init__(self, value: Any, level: int, ns: Any = None):
        self.value, self.level = value, level
        self.ns = ns if ns is not None else batched_namespace(namespace(value))

    @property
    def _level(self) -> int:
        return self.level

    @property
    def _inner(self) -> Any:
        return self.value

    @property
    def shape(self) -> tuple:
        return tuple(getattr(self.value, "shape", ())[1:])

    @property
    def dtype(self):
        return getattr(self.value, "dtype", np.dtype(object))

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"Batched({self.value!r})"

    def __bool__(self):
        raise TypeError("the truth of a batched tangent is one per member: branch on the primal instead")

    @classmethod
    def bind(cls, prim: Any, top: "Batched", args: tuple, params: dict) -> "Batched":
        level, ns = top.level, top.ns
        xp = ns.vxp  # the inner values' namespace, unless an argument belongs to another
        which, vals = [], []
        for a in args:
            t = type(a)
            if t is Batched and a.level == level:
                which.append(True)
                vals.append(a.value)
                xp = xp if a.ns is ns else None
            else:
                which.append(False)
                vals.append(a)
                xp = xp if t in _PLAIN or t is np.ndarray and a.dtype.kind in "fiub" else None
        out = batched_call(prim, vals, which, params, len(top.value), xp)
        return Batched(out, level, ns if xp is not None and type(out) is np.ndarray else None)

    def __lt__(self, o): return self.ns.less(self, o)
    def __le__(self, o): return self.ns.less_equal(self, o)
    def __gt__(self, o): return self.ns.greater(self, o)
    def __ge__(self, o): return self.ns.greater_equal(self, o)
    def __eq__(self, o): return self.ns.equal(self, o)
    def __ne__(self, o): return self.ns.not_equal(self, o)
    __hash__ = object.__hash__


register_tracer(Batched, lambda b: b.ns)


def _apply(prim, *args, **params):
    """A batched namespace's op: straight to the rule when the batch is the only trace (the common case)."""
    if len(args) == 1:
        if type(args[0]) is Batched:
            return Batched.bind(prim, args[0], args, params)
    elif len(args) == 2:
        a, b = args
        ta, tb = type(a), type(b)
        if ta is Batched and (tb is Batched and b.level == a.level or tb not in TRACERS):
            return Batched.bind(prim, a, args, params)
        if tb is Batched and ta not in TRACERS:
            return Batched.bind(prim, b, args, params)
    return levels(prim, args, params)


def _member(x: Any) -> Any:
    """A plain stand-in with one member's shape and dtype (for constants shaped like a batched array)."""
    plain = strip(x)
    return plain[0] if type(x) is Batched else plain


def _like(name: str):
    def make(x, *args, **kwargs):
        member = _member(x)
        return getattr(namespace(member), name)(member, *args, **kwargs)
    return make


def _to_float(x):
    if type(x) is Batched:
        return Batched(namespace(x.value).to_float(x.value), x.level, x.ns)
    return namespace(strip(x)).to_float(strip(x))


_NAMESPACES: dict = {}


def batched_namespace(vxp: Any) -> TracerNamespace:
    """The namespace of batched arrays over values of ``vxp``: comparisons and other constant ops keep the batch
    axis too (a mask differs from member to member)."""
    ns = _NAMESPACES.get(id(vxp))
    if ns is None:
        ns = _NAMESPACES[id(vxp)] = TracerNamespace("batched", vxp, _apply)
        for prim in PRIMITIVES.values():
            if prim.kind == "constant":
                fn = functools.partial(_apply, prim)
                ns.impls[prim.index] = fn
                install(ns, prim, user_form(prim, fn, traced=True))
        for name in ("zeros_like", "ones_like", "full_like"):
            setattr(ns, name, _like(name))
        ns.to_float = _to_float
    return ns


def unbatched(t: Any, k: int, shape: tuple) -> Any:
    """The k tangents as one array (k, *shape): a batched tangent's value, or an unbatched one repeated."""
    if type(t) is Batched:
        return t.value
    plain = t if getattr(t, "shape", None) == shape else namespace(t).broadcast_to(t, shape)
    return namespace(plain).broadcast_to(plain, (k,) + tuple(shape))
