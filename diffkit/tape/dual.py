"""Forward mode: dual arrays that carry a tangent beside each value, propagated by the table's JVP rules.

A :class:`Dual` holds ``primal``, ``tangent`` and a ``level`` from the same
counter as the tapes, so forward and reverse mode nest in either order (a dual
of tape arrays is reverse-over-forward; a tape over duals, forward-over-
reverse).  Each primitive's JVP comes from its table entry: the forward on the
tangents for linear ops, the VJP rules applied to the tangents for
elementwise ops (their Jacobian is diagonal), one input's tangent at a time for
multilinear products, or the entry's own ``jvp``.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import numpy as np

from ..dispatch import namespace, register_tracer
from .core import new_level
from .levels import levels
from .namespace import TracerNamespace

__all__ = ["Dual", "jvp", "dual_namespace"]


class Dual:
    """A value and its tangent, at one level of forward-mode differentiation."""

    __slots__ = ("primal", "tangent", "level", "ns")

    def __init__(self, primal: Any, tangent: Any, level: int, ns: Any = None):
        self.primal, self.tangent, self.level = primal, tangent, level
        self.ns = ns if ns is not None else dual_namespace(namespace(primal))

    @property
    def _level(self) -> int:
        return self.level

    @property
    def _inner(self) -> Any:
        return self.primal

    @property
    def shape(self) -> tuple:
        return getattr(self.primal, "shape", ())

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def T(self):
        return self.ns.permute_dims(self, tuple(range(self.ndim))[::-1])

    @property
    def dtype(self):
        return getattr(self.primal, "dtype", np.dtype(object))

    def __len__(self) -> int:
        return len(self.primal)

    def __repr__(self) -> str:
        return f"Dual({self.primal!r}, tangent={self.tangent!r})"

    @classmethod
    def bind(cls, prim: Any, top: "Dual", args: tuple, params: dict) -> "Dual":
        return _push(prim, top.level, args, params)

    __array_priority__ = 1000  # CuPy (and numpy's legacy rule) hand a mixed operator to our reflected one
    __array_ufunc__ = None  # numpy defers to the reflected operators below
    def __add__(self, o): return self.ns.add(self, o)
    def __radd__(self, o): return self.ns.add(o, self)
    def __sub__(self, o): return self.ns.subtract(self, o)
    def __rsub__(self, o): return self.ns.subtract(o, self)
    def __mul__(self, o): return self.ns.multiply(self, o)
    def __rmul__(self, o): return self.ns.multiply(o, self)
    def __truediv__(self, o): return self.ns.divide(self, o)
    def __rtruediv__(self, o): return self.ns.divide(o, self)
    def __matmul__(self, o): return self.ns.matmul(self, o)
    def __rmatmul__(self, o): return self.ns.matmul(o, self)
    def __pow__(self, o): return self.ns.pow(self, o)
    def __rpow__(self, o): return self.ns.pow(o, self)
    def __neg__(self): return self.ns.negative(self)
    def __pos__(self): return self
    def __abs__(self): return self.ns.abs(self)
    def __getitem__(self, index): return self.ns.getitem(self, index)
    def reshape(self, *shape): return self.ns.reshape(self, shape[0] if len(shape) == 1 else shape)
    def sum(self, axis=None, keepdims=False): return self.ns.sum(self, axis=axis, keepdims=keepdims)
    def __lt__(self, o): return self.primal < _plain(o)
    def __le__(self, o): return self.primal <= _plain(o)
    def __gt__(self, o): return self.primal > _plain(o)
    def __ge__(self, o): return self.primal >= _plain(o)
    def __eq__(self, o): return self.primal == _plain(o)
    def __ne__(self, o): return self.primal != _plain(o)
    __hash__ = object.__hash__


def _plain(x):
    from ..dispatch import strip
    return strip(x)


register_tracer(Dual, lambda d: d.ns)


def _zeros_like(xp, p):
    return xp.zeros(getattr(p, "shape", ())) if getattr(p, "shape", ()) else 0.0


def _push(prim, level: int, args: tuple, params: dict) -> Dual:
    """One primitive on duals of ``level``: the forward on the primals, the JVP on the tangents."""
    primals = tuple(a.primal if type(a) is Dual and a.level == level else a for a in args)
    tangents = tuple(a.tangent if type(a) is Dual and a.level == level else None for a in args)
    xp = namespace(*primals)
    ans = xp.impls[prim.index](*primals, **params)
    res = None
    if prim.residual:
        ans, res = ans
    mode = prim.jvp
    if mode == "linear":
        tan = [t if t is not None else (p if k in prim.nondiff else _zeros_like(xp, p))
               for k, (p, t) in enumerate(zip(primals, tangents))]
        t = xp.impls[prim.index](*tan, **params)
        t = t[0] if prim.residual else t
    elif mode == "multilinear":
        t = None
        for k, tk in enumerate(tangents):
            if tk is not None:
                part = xp.impls[prim.index](*primals[:k], tk, *primals[k + 1:], **params)
                t = part if t is None else t + part
    elif mode == "elementwise":
        t = _elementwise(prim, xp, ans, res, primals, tangents, params)
    else:
        t = mode(xp, ans, primals, tangents, **params)
    if getattr(t, "shape", ()) != getattr(ans, "shape", ()):
        t = xp.broadcast_to(t, getattr(ans, "shape", ()))
    return Dual(ans, t, level, dual_namespace(xp))


def _elementwise(prim, xp, ans, res, primals, tangents, params):
    pool = {"ans": ans, "xp": xp, "res": res, **{**prim.params, **params}}
    for name, p in zip(prim.inputs, primals):
        pool[name], pool[name + "_shape"] = p, getattr(p, "shape", ())
    t = None
    for rule, names, tk in zip(prim.vjps, prim.rule_args, tangents):
        if tk is not None and rule is not None:
            part = rule(tk, *[pool[n] for n in names])
            t = part if t is None else t + part
    return t


def _apply(prim, *args, **params):
    return levels(prim, args, params)


_NAMESPACES: dict = {}


def dual_namespace(vxp: Any) -> TracerNamespace:
    ns = _NAMESPACES.get(id(vxp))
    if ns is None:
        ns = _NAMESPACES[id(vxp)] = TracerNamespace("dual", vxp, _apply)
    return ns


def jvp(f: Callable, theta: Any, v: Any) -> tuple[Any, Any]:
    """``(f(theta), J v)`` by forward mode: one pass, exact like reverse mode.

    >>> import numpy as np, diffkit as dk
    >>> value, tangent = dk.jvp(lambda t: t[0] * dk.namespace(t).sin(t[1]), np.array([2.0, 0.0]), np.array([0.0, 1.0]))
    >>> float(value), float(tangent)                # 2 sin(0), 2 cos(0)
    (0.0, 2.0)
    """
    vxp = namespace(theta)
    if vxp.name == "numpy":
        theta, v = np.array(theta, dtype=float), np.array(v, dtype=float)
        if v.shape != theta.shape:
            raise ValueError(f"the tangent v has shape {v.shape}; theta has shape {theta.shape}")
    out = f(Dual(theta, v, new_level(), dual_namespace(vxp)))
    if type(out) is not Dual:
        return out, _zeros_like(vxp, out)
    return out.primal, out.tangent
