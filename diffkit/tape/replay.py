"""``dk.compile``: record the tape once, then replay forward and backward as generated straight-line NumPy code.

Recording runs ``f`` once on a tape that also keeps a *program* (each op's
primitive, inputs, constants and params; :func:`.core.record`).  From it
:func:`generate` writes two Python functions, ``forward(theta)`` and
``grad(theta) -> (value, gradient)``: one line per op calling the table's
NumPy forward (``np.tanh``, ``np.matmul``...) and one per edge calling the
table's rule, with the rule's arguments bound by name at generation time,
constants and shapes folded in as literals, the broadcasting sums decided once
(a probe run learns each contribution's shape), and ``del`` after each value's
last use so that a replay keeps no more than the tape would.  No per-op
dispatch, plans or node tuples remain.

The guards, the re-recording and the user-facing object are in :mod:`.compiled`.
"""
from __future__ import annotations

import math
from sys import getrefcount
from typing import Any, Callable

import numpy as np

from ..backends import NUMPY
from .array import TArray
from .core import Tape
from .plans import reads as rule_reads, unbroadcast

__all__ = ["NotCompilable", "Rerecord", "generate", "probe_fit", "fit_plan"]


class NotCompilable(ValueError):
    """The recording holds something a replay cannot reproduce (a custom op, a second leaf...)."""


class Rerecord(Exception):
    """A guard failed on replay: the reason says which."""


def _same(new: Any, old: Any) -> bool:
    if getattr(new, "dtype", None) is not None and new.dtype.kind in "biu" and getattr(old, "shape", None) == new.shape:
        return bool((new == old).all())  # (booleans and integers: no NaN to match; array_equal costs ~15 us)
    try:
        return bool(np.array_equal(new, old, equal_nan=True))
    except TypeError:
        return bool(np.array_equal(new, old))


def _literal(obj: Any) -> str | None:
    """Python source for ``obj`` when it is a small exact literal (else None: it becomes a named constant)."""
    if obj is None or type(obj) in (bool, int, str):
        return repr(obj)
    if type(obj) is float and math.isfinite(obj):
        return repr(obj)
    if type(obj) is slice:
        parts = [_literal(p) for p in (obj.start, obj.stop, obj.step)]
        return None if None in parts else f"slice({', '.join(parts)})"
    if type(obj) is tuple:
        parts = [_literal(p) for p in obj]
        return None if None in parts else "(" + "".join(p + ", " for p in parts) + ")"
    return None


class _Source:
    """Lines of a generated function, the constants they name, and which variables each line reads."""

    def __init__(self, env: dict):
        self.env, self.lines = env, []

    def const(self, obj: Any) -> str:
        text = _literal(obj)
        if text is not None:
            return text
        name = f"K{len(self.env)}"
        self.env[name] = obj
        return name

    def emit(self, text: str, reads: tuple = ()) -> None:
        self.lines.append((text, tuple(reads)))

    def function(self, header: str, keep: tuple) -> str:
        """The function's source, with ``del`` after each variable's last read (not for ``keep``)."""
        last: dict = {}
        for k, (_, reads) in enumerate(self.lines):
            for var in reads:
                last[var] = k
        dels: dict = {}
        for var, k in last.items():
            if var not in keep and var != "theta":
                dels.setdefault(k, []).append(var)
        out = [header]
        for k, (text, _) in enumerate(self.lines):
            out.append("    " + text)
            if k in dels and k < len(self.lines) - 1:  # (nothing after the return)
                out.append("    del " + ", ".join(sorted(dels[k])))
        return "\n".join(out) + "\n"


def _split(program: list) -> tuple[list, list]:
    """Node entries (index = node) and guards ``(nodes recorded before it, entry)``."""
    entries, guards = [], []
    for e in program:
        if type(e) is tuple and e and e[0] in ("const", "bool"):
            guards.append((len(entries), e))
        else:
            entries.append(e)
    return entries, guards


def _inputs(entry: Any) -> list:
    """The nodes an entry reads."""
    if entry is None:
        return []
    if entry[0] == "op":
        return [p for p in entry[2] if p >= 0]
    if entry[0] == "const":
        return [ref for is_slot, ref in entry[2] if is_slot]
    if entry[0] == "bool":
        return [entry[1]]
    return [entry[1][0]]  # a view: ("view", (parent, index, view shape, parent shape))


def _check(entries: list) -> None:
    for i, e in enumerate(entries):
        if e is None:
            if i:
                raise NotCompilable("the recording has a second leaf; dk.compile replays functions of one theta")
        elif e[0] not in ("op", "view"):
            raise NotCompilable(f"op {getattr(e[0], 'name', e[0])!r} (a custom op: a dk.Function or a dk.checkpoint "
                                f"segment) cannot be replayed; call dk.gradient, or compile without it")


def _needed(entries: list, guards: list, out: int) -> tuple[set, set]:
    """(nodes on a path to the output: they get gradients, nodes whose forward value is computed)."""
    live = {out}
    for i in range(out, -1, -1):
        if i in live:
            live.update(_graded(entries[i]))
    needed = set(live)
    for _, g in guards:
        needed.update(_inputs(g))
    for i in range(len(entries) - 1, -1, -1):
        if i in needed:
            needed.update(_inputs(entries[i]))
    return live, needed


def _graded(entry: Any) -> list:
    """The nodes an entry sends a gradient to (an input without a rule, like where's condition, gets none)."""
    if entry is None or entry[0] != "op" or entry[1].joint is not None:
        return _inputs(entry)
    _, prim, parents, vals, _ = entry
    return [p for p, rule in zip(parents, prim.vjps[:len(vals)]) if p >= 0 and rule is not None]


def _covering(entries: list, live: set, p: int, shape: tuple) -> bool:
    """Whether the views of 1-D ``p`` are disjoint step-1 slices covering all of it and nothing else adds
    into it: then its gradient buffer can start empty and each view's gradient is assigned, not added."""
    if len(shape) != 1:
        return False
    spans = []
    for i in live:
        e = entries[i]
        if e is None:
            continue
        if e[0] == "op":
            if p in e[2]:
                return False
            continue
        if e[1][0] == p:
            span = _span(e[1][1], shape)
            if span is None:
                return False
            spans.append(span)
    spans.sort()
    end = 0
    for start, stop in spans:
        if start != end:
            return False
        end = stop
    return end == shape[0]


def _span(index: Any, shape: tuple) -> tuple | None:
    """``(start, stop)``: the entries of the first axis that the basic ``index`` takes, when they are one
    step-1 run (an integer: a run of one) and it takes all of every other axis; None for any other index.

    >>> _span(slice(2, 5), (8,)), _span((-1, Ellipsis), (8, 3)), _span(slice(0, 8, 2), (8,))
    ((2, 5), (7, 8), None)
    """
    parts = index if type(index) is tuple else (index,)
    if not shape or not parts or not all(p is Ellipsis or type(p) is slice and p == slice(None) for p in parts[1:]):
        return None
    first, length = parts[0], shape[0]
    if type(first) is int or isinstance(first, np.integer):
        at = int(first)
        return (at % length, at % length + 1) if -length <= at < length else None
    if type(first) is slice and first.step in (None, 1):
        start, stop, _ = first.indices(length)
        return start, max(start, stop)
    return None


def _shape(v: Any) -> tuple:
    return tuple(getattr(v, "shape", ()))


def _forward_lines(src: _Source, entries: list, guards: list, needed: set, values: list, upto: int,
                   live: set = frozenset()) -> None:
    """One line per needed op up to node ``upto``, guards where their inputs exist.  A primitive with a
    residual runs its value-only forward (tanh: no saturation scan; max: no hit mask) unless it is ``live``:
    only a node that a gradient passes through runs its rule."""
    pending = list(guards)
    # (a guard may read a node recorded after the output: `part * 2 if xp.sum(t) > 0 else part` returns part)
    upto = max([upto] + [p for _, g in guards for p in _inputs(g)])
    for i in range(upto + 1):
        while pending and pending[0][0] <= i:
            _guard_line(src, pending.pop(0)[1])
        if i not in needed:
            continue
        e = entries[i]
        if e is None:
            src.emit(f"v{i} = theta", ("theta",))
        elif e[0] == "op":
            _, prim, parents, vals, params = e
            args, reads = _args(src, parents, vals)
            call = _fast_forward(src, prim, args, vals, params)
            plain = prim.residual and i not in live
            if call is None:
                fn = prim.value if plain else NUMPY.impls[prim.index]
                call = f"{src.const(fn)}({', '.join(args)}{_kwargs(src, params)})"
            src.emit(f"v{i}, r{i} = {call}" if prim.residual and not plain else f"v{i} = {call}", reads)
        else:
            p, index, view_shape, _ = e[1]
            text = f"v{i} = v{p}[{src.const(index)}]"
            if view_shape is not None:
                text += f".reshape({src.const(_shape(values[i]))})"
            src.emit(text, (f"v{p}",))
    for _, g in pending:
        _guard_line(src, g)


def _is_array(v: Any) -> bool:
    return type(v) is np.ndarray and v.dtype == np.float64


_OPERATORS = {"add": "+", "subtract": "-", "multiply": "*", "divide": "/"}


def _numeric(v: Any) -> bool:
    """A float or complex numpy value, or a Python number: what numpy's operators treat as the ufuncs do."""
    return type(v) in (float, int) or isinstance(v, (np.ndarray, np.inexact)) and v.dtype.kind in "fc"


def _fast_forward(src: _Source, prim, args: list, vals: tuple, params: dict) -> str | None:
    """A forward as an ndarray method or operator where numpy's module function is a Python wrapper (or, for
    arithmetic on numpy's scalars, ten times slower than the operator: the same ufunc, the same number)."""
    name = prim.name
    if name in _OPERATORS and len(vals) == 2 and all(_numeric(v) for v in vals) and \
            any(isinstance(v, (np.ndarray, np.generic)) for v in vals):
        return f"({args[0]} {_OPERATORS[name]} {args[1]})"
    if name == "negative" and isinstance(vals[0], (np.ndarray, np.inexact)) and _numeric(vals[0]):
        return f"(-{args[0]})"
    if name == "sum" and _is_array(vals[0]):  # the ufunc's reduce: ndarray.sum is a Python wrapper
        p = {"axis": None, "keepdims": False, **params}
        return f"ADD_REDUCE({args[0]}, {src.const(p['axis'])}, keepdims={src.const(p['keepdims'])})"
    if name == "mean" and _is_array(vals[0]):
        p = {"axis": None, "keepdims": False, **params}
        return f"{args[0]}.{name}(axis={src.const(p['axis'])}, keepdims={src.const(p['keepdims'])})"
    if name == "reshape" and _is_array(vals[0]):
        return f"{args[0]}.reshape({src.const(params['shape'])})"
    if name in ("matmul", "affine") and all(_is_array(v) and v.ndim == (1 if k == 2 else 2)
                                             for k, v in enumerate(vals)):
        return f"{args[0]} @ {args[1]}" + (f" + {args[2]}" if name == "affine" else "")
    return None


def _fast_rule(src: _Source, prim, k: int, i: int, parents: tuple, vals: tuple, params: dict,
               lean: bool = False) -> tuple | None:
    """``(expression, reads)`` of a rule written inline, for the common 2-D and elementwise cases.

    ``lean``: a sum's gradient may stay in the reduced shape (its input's rules broadcast it; see
    :func:`_lean_reductions`)."""
    name, g = prim.name, f"g{i}"

    def ref(j, transpose=False):  # input j (a constant is folded, transposed once here)
        if parents[j] >= 0:
            return f"v{parents[j]}" + (".T" if transpose else ""), (f"v{parents[j]}",)
        return src.const(np.ascontiguousarray(vals[j].T) if transpose else vals[j]), ()  # (BLAS: a copy once)
    if name in ("add", "positive") or (name == "subtract" and k == 0):
        return g, (g,)
    if name == "negative" or (name == "subtract" and k == 1 and _shape(vals[1]) == _shape(vals[0])):
        return f"-{g}", (g,)  # (a broadcast y's rule sums first: the table's, called)
    if name in ("matmul", "affine") and k < 2 and all(_is_array(v) and v.ndim == 2 for v in vals[:2]):
        other, reads = ref(1 - k, transpose=True)
        return (f"{g} @ {other}" if k == 0 else f"{other} @ {g}"), (g, *reads)
    if name in ("sum", "mean") and _is_array(vals[0]):
        p = {"axis": None, "keepdims": False, **params}
        shape = vals[0].shape
        kept = _kept(shape, p["axis"])
        scale = "" if name == "sum" else f" / {src.const(float(math.prod(shape) // max(1, math.prod(kept))))}"
        if lean and not any(n != 1 for n in kept):  # a full reduction: a float64 number stays as it is
            return f"({g} if type({g}) is F64 else KEPT({g}, {src.const(kept)})){scale}", (g,)
        if lean:
            return f"KEPT({g}, {src.const(kept)}){scale}", (g,)
        return f"EXPAND({g}, {src.const(kept)}, {src.const(shape)}){scale}", (g,)
    if name == "reshape" and _is_array(vals[0]):
        return f"{g}.reshape({src.const(vals[0].shape)})", (g,)
    return None


def _ours(a: Any) -> bool:
    """Whether ``a`` is a writable float64 array that only the generated code's variable holds: no view of it,
    no alias, no constant, no residual (each would hold a reference).  References: that variable, the helper's
    parameter, and getrefcount's argument."""
    return type(a) is np.ndarray and a.dtype == np.float64 and a.base is None and a.flags.writeable and \
        getrefcount(a) == 4  # (+1: the caller of _ours)


def _added_in_place(acc: Any, c: Any) -> Any:
    """``acc + c``, written into ``acc`` when it is ours (the eager sweep's refcount test, made at run time)."""
    if (type(c) is np.ndarray and c.dtype == np.float64 and c.shape == acc.shape or type(c) in (float, np.float64)) \
            and _ours(acc):
        acc += c
        return acc
    return acc + c


def _own(a: Any) -> Any:
    """The gradient handed back: ``a`` itself when it is ours, else a copy (it may be a view of a constant)."""
    return a if _ours(a) else np.array(a)


def _kept_grad(g: Any, kept: tuple) -> Any:
    """A reduction's gradient in the reduced shape with the reduced axes kept (a number stays a number)."""
    if not any(n != 1 for n in kept) and type(g) is np.float64:
        return g
    return g.reshape(kept) if type(g) in (np.ndarray, np.float64) else np.reshape(g, kept)


def _lean_reductions(entries: list, live: set) -> set:
    """Sums and means whose gradient need not be spread to the input's shape: the input is an elementwise op
    (its rules broadcast ``g`` against its operands) whose gradient comes from that reduction alone, and whose
    traced operands all have its shape.  Each contribution then comes out full-size, or is spread by the fit,
    with the same numbers (an exact rewrite: a rule of a broadcast ``g`` is the rule of ``g`` spread).  An
    operand broadcast up in the forward would need its contribution summed over what the small ``g`` never
    spread: that case keeps the spread ``g``."""
    senders: dict = {}
    for i in live:
        for p in _graded(entries[i]):
            senders.setdefault(p, []).append(i)
    lean = set()
    for i in live:
        e = entries[i]
        if e is None or e[0] != "op" or e[1].name not in ("sum", "mean") or e[2][0] < 0:
            continue
        p = e[2][0]
        source = entries[p]
        if (source is not None and source[0] == "op" and source[1].kind == "elementwise" and source[1].joint is None
                and senders.get(p) == [i] and _is_array(e[3][0])
                and all(_shape(v) == e[3][0].shape for q, v in zip(source[2], source[3]) if q >= 0)):
            lean.add(i)
    return lean


def _kept(shape: tuple, axis: Any) -> tuple:
    axes = range(len(shape)) if axis is None else [a % len(shape) for a in (axis if type(axis) is tuple else (axis,))]
    return tuple(1 if k in axes else n for k, n in enumerate(shape))


def _expand(g: Any, kept: tuple, shape: tuple) -> np.ndarray:
    """A reduction's gradient filled back to the input's shape (a broadcast view when large)."""
    g = g.reshape(kept) if type(g) in (np.ndarray, np.float64) else np.reshape(g, kept)
    size = math.prod(shape)
    if size > 1 << 16 or (size > 4096 and g.size == 1):  # a view of one number costs its consumer no pass
        return np.broadcast_to(g, shape)
    out = np.empty(shape)
    out[...] = g
    return out


def _args(src: _Source, parents: tuple, vals: tuple) -> tuple[list, list]:
    args = [f"v{p}" if p >= 0 else src.const(v) for p, v in zip(parents, vals)]
    return args, [f"v{p}" for p in parents if p >= 0]


def _kwargs(src: _Source, params: dict) -> str:
    return "".join(f", {k}={src.const(v)}" for k, v in params.items())


def _guard_line(src: _Source, g: tuple) -> None:
    if g[0] == "bool":
        _, node, result = g
        src.emit(f"if bool(v{node}) is not {result!r}: raise RERECORD('bool() of node {node} changed')", (f"v{node}",))
        return
    _, prim, slots, params, result = g
    args = [f"v{ref}" if is_slot else src.const(ref) for is_slot, ref in slots]
    reads = tuple(f"v{ref}" for is_slot, ref in slots if is_slot)
    src.emit(f"if not SAME({src.const(NUMPY.impls[prim.index])}({', '.join(args)}{_kwargs(src, params)}), "
             f"{src.const(result)}): raise RERECORD('the result of {prim.name} changed')", reads)


def _rule_call(src: _Source, prim, rule, names: tuple, i: int, parents: tuple, vals: tuple, params: dict) -> tuple:
    """``(call text, variables read)`` of a rule with its arguments bound by name (:func:`.plans.reads`)."""
    n = len(vals)
    args, reads = [f"g{i}"], [f"g{i}"]

    def value(k):
        if parents[k] >= 0:
            reads.append(f"v{parents[k]}")
            return f"v{parents[k]}"
        return src.const(vals[k])
    for name in names:
        kind, k = rule_reads(prim, name, n)
        if kind == "input":
            args.append(value(k))
        elif kind == "shape":
            args.append(src.const(_shape(vals[k])))
        elif kind in ("ans", "res"):  # (the op's value v{i}, its residual r{i})
            args.append(f"v{i}" if kind == "ans" else f"r{i}")
            reads.append(args[-1])
        elif kind == "xp":
            args.append("XP")
        elif kind == "inputs":
            args.append("(" + "".join(value(k) + ", " for k in range(n)) + ")")
        elif kind == "shapes":
            args.append(src.const(tuple(_shape(v) for v in vals)))
        else:
            args.append(src.const(params[k] if k in params else prim.params[k]))
    return f"{src.const(rule)}({', '.join(args)})", tuple(reads)


_ZEROED_PASS = 1 << 13  # from here a pass over a buffer costs more than the two calls that skip it (~0.2 us)


class _Grads:
    """Emits the accumulation of contributions into ``g{p}``: first assignment, then sums (or a zero buffer
    that scatters add into)."""

    def __init__(self, src: _Source, buffered: set, shapes: dict, fits: dict | None, fresh: set):
        self.src, self.buffered, self.shapes, self.fits, self.fresh = src, buffered, shapes, fits, fresh
        self.started: set = set()
        self.owned: set = set()  # gradients that are arrays of ours: later contributions add in place
        self.assigned: set = set()  # buffers that views cover exactly once
        self.edges = 0

    def fit(self, shape: tuple) -> None:
        """Fit ``c`` to its input's shape: in the probe, learn the shape; in the final code, only where needed
        (sum what broadcasting spread, spread what a lean reduction gradient left unexpanded)."""
        key, self.edges = self.edges, self.edges + 1
        if self.fits is None:
            self.src.emit(f"c = FIT(c, {self.src.const(shape)}, {key})", ("c",))
            return
        got = self.fits.get(key)
        if got is None or got == shape:
            return
        if got == "other":
            self.src.emit(f"c = UNB(XP, c, {self.src.const(shape)})", ("c",))
            return
        axes, after, expand = fit_plan(got, shape)
        text = "c"
        if axes:  # the ufunc's reduce (ndarray.sum is a Python wrapper), keeping the summed axes only if needed
            dropped = tuple(n for k, n in enumerate(got) if k not in axes)
            keep = dropped != after
            text = f"ADD_REDUCE(c, {self.src.const(axes)}{', keepdims=True' if keep else ''})"
            if keep and len(got) != len(shape):
                text += f".reshape({self.src.const(after)})"
        elif len(got) != len(shape):
            text += f".reshape({self.src.const(after)})"
        if expand:
            text = f"BCAST({text}, {self.src.const(shape)})"
        self.src.emit(f"c = {text}", ("c",))

    def sums(self, shape: tuple) -> bool:
        """Whether the next edge's fit (final code only) is a plain sum of an ndarray down to ``shape``."""
        got = None if self.fits is None else self.fits.get(self.edges)
        if type(got) is not tuple or got == shape:
            return False
        axes, _, spread = fit_plan(got, shape)
        return bool(axes) and not spread

    def add(self, p: int, index: Any = None, scatter: bool = False) -> None:
        src, shape = self.src, self.shapes[p]
        if p in self.buffered:
            if p not in self.started:
                self.started.add(p)
                if p not in self.assigned and self._started_by(p, index, scatter, shape):
                    return
                src.emit(f"g{p} = {'EMPTY' if p in self.assigned else 'ZEROS'}({src.const(shape)})")
            if p in self.assigned:  # (disjoint views covering p: each part written once)
                src.emit(f"g{p}[{src.const(index)}] = c", (f"g{p}", "c"))
            elif not scatter:
                src.emit(f"g{p} += c", (f"g{p}", "c"))
            elif _basic(index):
                src.emit(f"g{p}[{src.const(index)}] += c", (f"g{p}", "c"))
            else:
                src.emit(f"ADD_AT(g{p}, {src.const(index)}, c)", (f"g{p}", "c"))
        elif p not in self.started:
            src.emit(f"g{p} = c", ("c",))
            self.started.add(p)
            if self.edges - 1 in self.fresh:
                self.owned.add(p)
        elif p in self.owned:
            src.emit(f"g{p} += c", (f"g{p}", "c"))
        elif math.prod(shape) >= _ZEROED_PASS:  # a large sum: into g{p} itself when, at run time, it is ours
            src.emit(f"g{p} = IADD(g{p}, c)", (f"g{p}", "c"))
        else:
            src.emit(f"g{p} = g{p} + c", (f"g{p}", "c"))


    def _started_by(self, p: int, index: Any, scatter: bool, shape: tuple) -> bool:
        """Start view-parent ``p``'s buffer with its first contribution where that saves a pass over it: a whole
        contribution becomes the buffer (itself when it is a new array of ours, else a copy); a step-1 slice
        of a large 1-D buffer is ``0 + c`` in an empty buffer whose rest is zeroed (as the eager sweep's first
        block).  False: a zero buffer, then the contribution added (any other index)."""
        src = self.src
        if not scatter:
            src.emit(f"g{p} = c" if self.edges - 1 in self.fresh else f"g{p} = COPY(c)", ("c",))
            return True
        if len(shape) != 1 or shape[0] < _ZEROED_PASS or type(index) is not slice or index.step not in (None, 1):
            return False
        start, stop, _ = index.indices(shape[0])
        if stop <= start:
            return False
        src.emit(f"g{p} = EMPTY({src.const(shape)})")
        if start:
            src.emit(f"g{p}[:{start}] = 0.0", (f"g{p}",))
        if stop < shape[0]:
            src.emit(f"g{p}[{stop}:] = 0.0", (f"g{p}",))
        src.emit(f"ADD(c, 0.0, out=g{p}[{start}:{stop}])", (f"g{p}", "c"))
        return True


def fit_plan(got: tuple, shape: tuple) -> tuple[tuple, tuple, bool]:
    """How a contribution of shape ``got`` becomes the gradient of an input of ``shape``: ``(axes summed with
    keepdims, the shape after that (ranks aligned), whether it is then broadcast up to shape)``.

    >>> fit_plan((64, 10), (10,)), fit_plan((64, 1), (64, 10)), fit_plan((), (2, 3))
    (((0,), (10,), False), ((), (64, 1), True), ((), (1, 1), True))
    """
    n, lead = len(shape), len(got) - len(shape)
    aligned = got[lead:] if lead >= 0 else (1,) * -lead + tuple(got)
    axes = tuple(range(max(lead, 0))) + tuple(k + lead for k in range(n)
                                                if shape[k] == 1 and aligned[k] != 1 and k + lead >= 0)
    after = tuple(1 if shape[k] == 1 else aligned[k] for k in range(n))
    return axes, after, after != tuple(shape)


def _fit_value(c: Any, got: tuple, shape: tuple) -> Any:
    axes, after, expand = fit_plan(got, shape)
    if axes:
        c = c.sum(axis=axes, keepdims=True)
    if len(got) != len(shape):
        c = c.reshape(after)
    return np.broadcast_to(c, shape) if expand else c


def _basic(index: Any) -> bool:
    parts = index if type(index) is tuple else (index,)
    return all(type(p) in (slice, int, type(None), type(Ellipsis)) or isinstance(p, np.integer) for p in parts)


def _backward_lines(src: _Source, entries: list, live: set, values: list, out: int, fits: dict | None,
                    fresh: set, aux: str = "") -> None:
    buffered = {e[1][0] for i, e in enumerate(entries) if i in live and e is not None and e[0] != "op"}
    shapes = {i: _shape(values[i]) for i in live}
    grads = _Grads(src, buffered, shapes, fits, fresh)
    grads.assigned = {p for p in buffered if _covering(entries, live, p, shapes[p])}
    lean = _lean_reductions(entries, live)
    src.emit(f"g{out} = {src.const(np.ones(shapes[out]) if shapes[out] else np.float64(1.0))}")
    grads.started.add(out)
    for i in range(out, 0, -1):
        e = entries[i]
        if i not in live or i not in grads.started:
            continue
        if e[0] != "op":  # a view: its gradient goes straight into its part of the parent's buffer
            p, index, view_shape, _ = e[1]
            src.emit(f"c = g{i}" + (f".reshape({src.const(view_shape)})" if view_shape is not None else ""),
                     (f"g{i}",))
            grads.add(p, index, scatter=True)
            continue
        _, prim, parents, vals, params = e
        if prim.joint is not None:
            call, reads = _rule_call(src, prim, prim.joint, _joint_args(prim), i, parents, vals, params)
            src.emit(f"cs = {call}", reads)
            for k, p in enumerate(parents):
                if p >= 0:
                    src.emit(f"c = cs[{k}]", ("cs",))
                    grads.fit(_shape(vals[k]))
                    grads.add(p)
            continue
        for k, (rule, names) in enumerate(zip(prim.vjps[:len(vals)], prim.rule_args)):
            p = parents[k]
            if p < 0 or rule is None:
                continue
            if prim.name == "negative" and grads.sums(_shape(vals[k])):
                src.emit(f"c = g{i}", (f"g{i}",))  # sum, then negate: the same numbers, a pass on fewer entries
                grads.fit(_shape(vals[k]))
                src.emit("c = -c", ("c",))
                grads.add(p)
                continue
            call = _fast_rule(src, prim, k, i, parents, vals, params, i in lean)
            call, reads = call or _rule_call(src, prim, rule, names, i, parents, vals, params)
            src.emit(f"c = {call}", reads)
            if i not in lean:  # (a lean reduction's gradient stays in the reduced shape on purpose)
                grads.fit(_shape(vals[k]))
            grads.add(p)
    tail = f", COPY({aux})" if aux else ""  # (an auxiliary value may be a view of theta or of a constant)
    reads = (aux,) if aux.startswith("v") else ()
    if 0 not in grads.started:
        src.emit(f"return v{out}, ZEROS(theta.shape){tail}", reads)
    else:  # a buffer of ours is returned as it is; anything else is copied unless, at run time, it is ours
        own = 0 in buffered or 0 in grads.owned  # (a new array of ours, held by nobody else)
        src.emit(f"return v{out}, " + ("g0" if own else "OWN(g0)") + tail, (f"v{out}", "g0", *reads))


def _joint_args(prim) -> tuple:
    from ..primitives.table import _rule_args
    return _rule_args(prim.joint)


def generate(tape: Tape, out: TArray, fits: dict | None = None, fresh: set = frozenset(),
             aux: Any = None) -> tuple[str | None, str, dict]:
    """``(forward source, gradient source, their globals)`` of a recorded tape (``program`` and ``values`` set).

    With ``fits=None`` the gradient calls ``FIT(c, shape, edge)`` at every edge (the probe run fills ``fits``),
    and no forward is written (the probe's would be thrown away: on a program of 1e5 nodes, about a second).
    ``aux`` (a tape array of the recording, or a constant) is returned third by the gradient, copied.
    """
    entries, guards = _split(tape.program)
    _check(entries)
    live, needed = _needed(entries, guards, out.index)
    if type(aux) is TArray:
        needed.add(aux.index)
        for i in range(aux.index, -1, -1):
            if i in needed:
                needed.update(_inputs(entries[i]))
    env = {"XP": NUMPY, "SAME": _same, "RERECORD": Rerecord, "ZEROS": np.zeros, "EMPTY": np.empty, "ADD": np.add,
           "ADD_AT": np.add.at, "UNB": unbroadcast, "COPY": np.array, "BCAST": np.broadcast_to, "KEPT": _kept_grad,
           "EXPAND": _expand, "ADD_REDUCE": np.add.reduce, "F64": np.float64,
           "IADD": _added_in_place, "OWN": _own}
    fwd = _Source(env)
    if fits is not None:
        _forward_lines(fwd, entries, guards, needed, tape.values, out.index)
        fwd.emit(f"return v{out.index}")
    grad = _Source(env)
    last = max(out.index, aux.index) if type(aux) is TArray else out.index  # (aux may be computed after the value)
    _forward_lines(grad, entries, guards, needed, tape.values, last, live)
    aux_name = "" if aux is None else f"v{aux.index}" if type(aux) is TArray else _Source(env).const(aux)
    _backward_lines(grad, entries, live, tape.values, out.index, fits, fresh, aux_name)
    forward = fwd.function("def forward(theta):", ()) if fits is not None else None
    return forward, grad.function("def grad(theta):", ()), env


def probe_fit(fits: dict, fresh: set) -> Callable:
    """The probe's ``FIT``: learns each edge's contribution shape, and whether the contribution is a new
    float64 array held by nothing else (then the parent's gradient may be summed into it in place)."""
    def fit(c, shape, key):
        numeric = type(c) in (np.ndarray, np.float64)
        got = tuple(c.shape) if numeric else "other" if _shape(c) != shape else shape
        fits[key] = got
        if got == "other":
            return unbroadcast(NUMPY, c, shape)
        axes, _, spread = fit_plan(got, shape) if got != shape else ((), (), False)
        # references: the caller's `c`, this parameter and getrefcount's argument; a view or an alias has more.
        # A summed contribution is a new array; a spread one a read-only view, never added into in place.
        if type(c) is np.ndarray and c.dtype == np.float64 and not spread and (
                axes or c.base is None and c.flags.writeable and getrefcount(c) == 3):
            fresh.add(key)
        return c if got == shape else _fit_value(c, got, shape)
    return fit
