"""The namespaces of the traces (tape arrays, forward-mode duals), generated from the same primitive table.

Each trace namespace is bound to the namespace of the values under it, so
constants and constructors (``xp.zeros``, ``xp.pi``) come from there and a
trace over mpmath values makes mpmath zeros.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

from ..backends import CONSTANT_NAMES, _At, finish, install, not_in_table, user_form
from ..dispatch import TRACERS, namespace, strip
from ..primitives import PRIMITIVES
from .array import TArray

__all__ = ["TracerNamespace"]


def _constant_op(prim) -> Callable:
    """An op with no derivative: run it on the plain values under every trace."""
    def run(*args, **params):
        plain = [strip(a) for a in args]
        out = namespace(*plain).impls[prim.index](*plain, **params)
        tape = _compiling(args)
        if tape is not None:  # dk.compile re-runs it on replay and re-records if the result changes
            tape.program.append(("const", prim, tuple(_slot(a, tape) for a in args), params, out))
        return out
    return run


def _compiling(args: tuple) -> Any:
    """The tape under dk.compile (``program`` set) that one of ``args`` is traced on, at any depth, or None."""
    for a in args:
        while type(a) in TRACERS:
            if type(a) is TArray and a.tape.program is not None:
                return a.tape
            a = a._inner
    return None


def _slot(a: Any, tape: Any) -> tuple:
    """``(True, node)`` for an array of ``tape`` (under any traces), else ``(False, plain value)``."""
    while type(a) in TRACERS:
        if type(a) is TArray and a.tape is tape:
            return True, a.index
        a = a._inner
    return False, a


class TracerNamespace:
    """The namespace of one kind of trace (``"tape"`` or ``"dual"``) over values of namespace ``vxp``."""

    from_table = True  # (diffkit.nn asks this of the class: a peer namespace's getattr would raise)
    convert = None

    def __init__(self, kind: str, vxp: Any, apply: Callable, reshape_view: Callable | None = None,
                 index_view: Callable | None = None, recorder: Callable = lambda prim: None):
        self.name = kind
        self.vxp = vxp
        self.impls: list = [None] * len(PRIMITIVES)
        for prim in PRIMITIVES.values():
            fn = _constant_op(prim) if prim.kind == "constant" else (
                recorder(prim) or functools.partial(apply, prim))  # (recorder: the tape's one-call path)
            # impls are in primitive form, like a value namespace's: a residual primitive returns (ans, res), so
            # a tape over traced values (nested differentiation) runs its numpy forward, composed of primitives
            self.impls[prim.index] = prim.impls["numpy"] if prim.residual else fn
            install(self, prim, user_form(prim, fn, traced=prim.kind != "constant"))
        finish(self, {n: getattr(vxp, n) for n in CONSTANT_NAMES if _has(vxp, n)})
        for name in ("zeros_like", "ones_like", "full_like", "empty_like"):  # constants shaped like a trace
            setattr(self, name, _like(name))
        self.asarray = self.array = _asarray(vxp)
        self.to_float = _like("to_float")
        # indexing and reshape without the user-signature adapter: a tape array's x[i] is the commonest op
        getitem = functools.partial(apply, PRIMITIVES["getitem"])
        if index_view is None:
            self.index_op = getitem
        else:
            def index_op(x, index):  # a numpy array's x[i], x[a:b]: one node, straight
                view = index_view(x, index)
                return getitem(x, index=index) if view is None else view
            self.index_op = index_op
        reshape_op = functools.partial(apply, PRIMITIVES["reshape"])
        view_of = reshape_view or (lambda x, shape: None)

        def reshape(x, shape, copy=None):  # a reshape of a basic slice: one view node onto the sliced array
            shape = tuple(shape) if isinstance(shape, (tuple, list)) else (shape,)
            view = view_of(x, shape)
            return reshape_op(x, shape=shape) if view is None else view
        self.reshape = reshape

    def at(self, x):
        return _At(self, x)

    def scatter_add(self, buf, owned, shape, index, c):
        """``buf[index] += c`` as a recorded functional update (the sweep of a nested tape is differentiated)."""
        base = self.zeros(shape) if buf is None else buf
        return self.at_add(base, c, index=index), False

    def __getattr__(self, op: str):
        raise not_in_table(op, f"on {self.name} arrays")

    def __repr__(self) -> str:
        return f"<diffkit namespace {self.name!r} over {self.vxp!r}>"


def _like(name: str) -> Callable:
    """A constant made from a traced array's plain value (its shape, or a mask of it) by the value namespace."""
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
