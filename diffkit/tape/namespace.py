"""The namespaces of the traces (tape arrays, forward-mode duals), generated from the same primitive table.

Each trace namespace is bound to the namespace of the values under it, so
constants and constructors (``xp.zeros``, ``xp.pi``) come from there and a
trace over mpmath values makes mpmath zeros.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

from ..backends import _LINALG_ONLY, _At, finish, install, user_form
from ..dispatch import TRACERS, namespace, strip
from ..primitives import PRIMITIVES

__all__ = ["TracerNamespace"]
_CONSTANT_NAMES = ("pi", "e", "inf", "nan", "newaxis", "float64", "float32", "int64", "int32", "bool", "bool_",
                   "zeros", "ones", "full", "empty", "eye", "arange", "linspace", "asarray", "array", "zeros_like",
                   "ones_like", "full_like", "shape", "ndim", "size", "result_type", "finfo", "iinfo", "isscalar",
                   "errstate", "meshgrid", "indices", "ix_", "tri")


def _constant_op(prim) -> Callable:
    """An op with no derivative: run it on the plain values under every trace."""
    def run(*args, **params):
        plain = [strip(a) for a in args]
        return namespace(*plain).impls[prim.index](*plain, **params)
    return run


class TracerNamespace:
    """The namespace of one kind of trace (``"tape"`` or ``"dual"``) over values of namespace ``vxp``."""

    from_table = True  # (diffkit.nn asks this of the class: a peer namespace's getattr would raise)

    def __init__(self, kind: str, vxp: Any, apply: Callable, reshape_view: Callable | None = None):
        self.name = kind
        self.vxp = vxp
        self.impls: list = [None] * len(PRIMITIVES)
        for prim in PRIMITIVES.values():
            fn = _constant_op(prim) if prim.kind == "constant" else functools.partial(apply, prim)
            self.impls[prim.index] = fn
            install(self, prim, user_form(prim, fn, traced=prim.kind != "constant"))
        finish(self, {n: getattr(vxp, n) for n in _CONSTANT_NAMES if _has(vxp, n)})
        for name in ("zeros_like", "ones_like", "full_like"):  # constants shaped like a traced array
            setattr(self, name, _like(name))
        self.asarray = self.array = _asarray(vxp)
        if reshape_view is not None:  # a reshape of a basic slice: one view node straight onto the sliced array
            plain_reshape = self.reshape
            def reshape(x, shape, copy=None):
                view = reshape_view(x, shape)
                return plain_reshape(x, shape) if view is None else view
            self.reshape = reshape

    def at(self, x):
        return _At(self, x)

    def scatter_add(self, buf, owned, shape, index, c):
        """``buf[index] += c`` as a recorded functional update (the sweep of a nested tape is differentiated)."""
        base = self.zeros(shape) if buf is None else buf
        return self.at_add(base, c, index=index), False

    def __getattr__(self, op: str):
        if op.startswith("_"):
            raise AttributeError(op)
        hint = f" (did you mean xp.linalg.{op}?)" if op in _LINALG_ONLY else ""
        raise NotImplementedError(f"op {op!r} is not available on {self.name} arrays: it is not in diffkit's "
                                  f"primitive table{hint}; compose it from the table's ops (`diffkit primitives` "
                                  f"lists them) or define it with dk.Function")

    def __repr__(self) -> str:
        return f"<diffkit namespace {self.name!r} over {self.vxp!r}>"


def _like(name: str) -> Callable:
    def make(x, *args, **kwargs):
        plain = strip(x)
        return getattr(namespace(plain), name)(plain, *args, **kwargs)
    return make


def _asarray(vxp: Any) -> Callable:
    def asarray(x, dtype=None, copy=None):
        return x if type(x) in TRACERS else vxp.asarray(x, dtype=dtype)
    return asarray


def _has(ns: Any, name: str) -> bool:
    try:
        getattr(ns, name)
    except (AttributeError, NotImplementedError):
        return False
    return True
