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

from typing import Any, Callable

import numpy as np

from ..backends import NUMPY
from ..dispatch import TRACERS, namespace, register_tracer
from .collector import paused_collector
from .core import new_level
from .levels import levels
from .namespace import TracerNamespace
from .operators import NamespaceOperators
from .plans import _source
from .batched import Batched, unbatched

__all__ = ["Dual", "jvp", "dual_namespace"]


class Dual(NamespaceOperators):
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
    def dtype(self):
        return getattr(self.primal, "dtype", np.dtype(object))

    def __len__(self) -> int:
        return len(self.primal)

    def __repr__(self) -> str:
        return f"Dual({self.primal!r}, tangent={self.tangent!r})"

    @classmethod
    def bind(cls, prim: Any, top: "Dual", args: tuple, params: dict) -> "Dual":
        return _push(prim, top, args, params)

    def __bool__(self) -> bool:  # a branch on the primal, which forward mode has at hand
        return bool(self.primal)

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


_PLAIN = (float, int, np.float64)


def _push(prim, top: Dual, args: tuple, params: dict) -> Dual:
    """One primitive on duals of ``top``'s level: the forward on the primals, the JVP on the tangents."""
    level, ns = top.level, top.ns
    xp = ns.vxp  # the primals' namespace, unless an argument belongs to another
    if len(args) == 1:
        primals, tangents, mask = (top.primal,), (top.tangent,), 1  # (a deferred tangent stays deferred)
    else:
        mask, primals, tangents = 0, [], []
        for k, a in enumerate(args):
            t = type(a)
            if t is Dual and a.level == level:
                primals.append(a.primal)
                tangents.append(a.tangent)
                mask |= 1 << k
                xp = xp if a.ns is ns else None
            else:
                primals.append(a)
                tangents.append(None)
                xp = xp if t in _PLAIN or t is np.ndarray and a.dtype.kind in "fiub" else None
        if xp is None:
            xp = namespace(*primals)
            ns = dual_namespace(xp)
    rule = _JVPS.get((prim.index, mask, len(args))) or _jvp_rule(prim, mask, len(args))
    res = None
    if prim.residual and xp is NUMPY and not rule.reads_res:  # numpy's value alone: no residual nobody reads
        ans = prim.value(*primals, **params)
    else:
        ans = xp.impls[prim.index](*primals, **params) if params else xp.impls[prim.index](*primals)
        if prim.residual:
            ans, res = ans
    job = (rule, xp, ans, res, primals, tangents, params)
    return Dual(ans, _Deferred(job) if level in _DEFERRING else _tangent(*job), level, ns)


def _tangent(rule, xp, ans, res, primals, tangents, params):
    """The JVP of one push: ``rule`` on the tangents, broadcast to the output's shape."""
    txp = xp  # the tangents' namespace: a batch of tangents, or tangents on a tape, have their own
    for t in tangents:
        if type(t) is Batched:
            txp = t.ns
            break
        if type(t) in TRACERS:
            txp = namespace(*primals, *[u for u in tangents if u is not None])
            break
    t = rule(txp, ans, res, primals, tangents, params)
    shape = getattr(ans, "shape", ())
    if getattr(t, "shape", ()) != shape:
        t = txp.broadcast_to(t, shape)
    return t


_DEFERRING: set = set()  # the levels of jvp(..., lazy=True) calls under way


class _Deferred:
    """A tangent not computed yet: the arguments of its :func:`_tangent` (``job``), or its ``value`` once
    something has read it (:func:`_forced`)."""

    __slots__ = ("job", "value")

    def __init__(self, job: tuple):
        self.job, self.value = job, None


def _forced(t: Any) -> Any:
    """The value of a tangent, computing the deferred ones it depends on first (an explicit stack: a chain of
    thousands of pushes would exceed Python's recursion limit)."""
    if type(t) is not _Deferred:
        return t
    stack = [t]
    while stack:
        d = stack[-1]
        if d.job is None:
            stack.pop()
            continue
        waiting = [u for u in d.job[5] if type(u) is _Deferred and u.job is not None]
        if waiting:
            stack.extend(waiting)
            continue
        stack.pop()
        rule, xp, ans, res, primals, tangents, params = d.job
        tangents = tuple(u.value if type(u) is _Deferred else u for u in tangents)
        d.value, d.job = _tangent(rule, xp, ans, res, primals, tangents, params), None
    return t.value


_JVPS: dict = {}  # (primitive index, which inputs are duals, number of inputs) -> its generated JVP


def _jvp_rule(prim, mask: int, n: int) -> Callable:
    """``jvp(xp, ans, res, v, t, prm)``: the tangent of ``prim``'s output, generated once per call pattern from
    the entry's JVP mode (see :mod:`diffkit.primitives.table`), so that a push runs no loop and builds no dict.

    * ``linear``: the forward on the tangents; a constant input's tangent is 0 (a number where the op
      broadcasts elementwise, zeros of its shape otherwise), a non-differentiable one passes its value;
    * ``multilinear``: the forward with one input replaced by its tangent, summed over the inputs;
    * ``elementwise``: the VJP rules applied to the tangents (the local Jacobian is diagonal);
    * a function: the entry's own ``jvp(xp, ans, inputs, tangents, **params)``.
    """
    mode, on = prim.jvp, [k for k in range(n) if mask >> k & 1]
    scope = {"I": prim.index, "MODE": mode, "ZEROS": _zeros_like, "DEFAULTS": prim.params}
    out = "out[0] if RES else out"
    if mode == "linear":
        args = [f"t[{k}]" if k in on else f"v[{k}]" if k in prim.nondiff else
                "0.0" if prim.kind == "elementwise" else f"ZEROS(xp, v[{k}])" for k in range(n)]
        body = f"out = xp.impls[I]({''.join(a + ', ' for a in args)}**prm)\n    return {out}"
    elif mode == "multilinear":
        parts = [f"xp.impls[I]({''.join((f't[{k}]' if j == k else f'v[{j}]') + ', ' for j in range(n))}**prm)"
                 for k in on]
        body = f"return {' + '.join(parts)}"
    elif mode == "elementwise":
        parts = []
        for k in on:
            if prim.vjps[k] is not None:
                scope[f"R{k}"] = prim.vjps[k]
                parts.append(f"R{k}(t[{k}]{''.join(', ' + _source(prim, name, n) for name in prim.rule_args[k])})")
        total = ' + '.join(parts) or '0.0'
        shapes = [f"s{k} = getattr(v[{k}], 'shape', ())\n    " for k in range(n) if f"s{k}" in total]
        body = f"{''.join(shapes)}return {total}"
    else:
        body = "return MODE(xp, ans, v, t, **prm)"
    scope["RES"] = prim.residual
    source = f"def jvp(xp, ans, res, v, t, prm):\n    {body}\n"
    exec(compile(source, f"<jvp of {prim.name}>", "exec"), scope)  # our own table's names only
    scope["jvp"].reads_res = "res" in body  # (else a push on numpy runs the value-only forward)
    _JVPS[prim.index, mask, n] = scope["jvp"]
    return scope["jvp"]


def _apply(prim, *args, **params):
    """A dual namespace's op: straight to the push when the duals are the only traces (the common case)."""
    if len(args) == 1:
        if type(args[0]) is Dual:
            return _push(prim, args[0], args, params)
    elif len(args) == 2:
        a, b = args
        ta, tb = type(a), type(b)
        if ta is Dual and (tb is Dual and b.level == a.level or tb not in TRACERS):
            return _push(prim, a, args, params)
        if tb is Dual and ta not in TRACERS:
            return _push(prim, b, args, params)
    return levels(prim, args, params)


_NAMESPACES: dict = {}


def dual_namespace(vxp: Any) -> TracerNamespace:
    ns = _NAMESPACES.get(id(vxp))
    if ns is None:
        ns = _NAMESPACES[id(vxp)] = TracerNamespace("dual", vxp, _apply)
    return ns


def jvp(f: Callable, theta: Any, v: Any, batch: bool = False, lazy: bool = False) -> tuple[Any, Any]:
    """``(f(theta), J v)`` by forward mode: one pass, exact like reverse mode.

    With ``batch=True``, ``v`` holds k tangents along a leading axis (shape ``(k, *theta.shape)``) and the
    one pass carries all of them (:mod:`.batched`): the tangent that comes back has the same leading axis,
    ``(k, *f(theta).shape)``.  With ``lazy=True`` each tangent is computed only when the output's tangent
    needs it: forward over reverse (``dk.hvp``) skips the tangents of forward values that the gradient's
    rules read only through comparisons, or not at all; every intermediate is kept until the end.

    >>> import numpy as np, diffkit as dk
    >>> value, tangent = dk.jvp(lambda t: t[0] * dk.namespace(t).sin(t[1]), np.array([2.0, 0.0]), np.array([0.0, 1.0]))
    >>> float(value), float(tangent)                # 2 sin(0), 2 cos(0)
    (0.0, 2.0)
    >>> _, tangents = dk.jvp(lambda t: t[0] * dk.namespace(t).sin(t[1]), np.array([2.0, 0.0]), np.eye(2), batch=True)
    >>> tangents.tolist()                           # the gradient (sin t1, t0 cos t1), one direction per row
    [0.0, 2.0]
    """
    vxp = namespace(theta)
    if vxp.name == "numpy":
        theta, v = np.array(theta, dtype=float), np.array(v, dtype=float)
        want = v.shape[1:] if batch else v.shape
        if want != theta.shape or batch and v.ndim == 0:
            raise ValueError(f"the tangent v has shape {v.shape}; theta has shape {theta.shape}"
                             + (" (with batch=True, v is (k, *theta.shape): k tangents along its first axis)"
                                if batch else ""))
    level = new_level()
    tangent = Batched(v, level) if batch else v
    if lazy:
        _DEFERRING.add(level)
    try:
        with paused_collector():  # (a forward pass makes no cycles: .collector)
            out = f(Dual(theta, tangent, level, dual_namespace(vxp)))
            mine = type(out) is Dual and out.level == level
            primal, t = (out.primal, _forced(out.tangent)) if mine else (out, None)
    finally:
        _DEFERRING.discard(level)
    if not batch:
        return primal, _zeros_like(vxp, out) if t is None else t
    return primal, unbatched(0.0 if t is None else t, len(v), getattr(primal, "shape", ()))
