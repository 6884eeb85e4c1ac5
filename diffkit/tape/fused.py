"""``dk.compile(f, theta, fuse=True)``: the recorded program, forward and sweep, as one function compiled by numba.

The NumPy replay (:mod:`.replay`) calls numpy once per op and once per edge, about a microsecond of dispatch
each; on small arrays that is most of the time (the 960-parameter MLP of ``diffkit bench --tape``: ~60 calls
for ~40 us of arithmetic).  Fusing writes the whole program as one Python function of numpy calls that numba
compiles: no interpreter between ops.

Every line comes from the primitive table.  Each op's forward and each of its rules is *run* at generation
time on stand-ins (:class:`Sym`: a variable's name and its static shape) with a namespace (:class:`Writer`)
whose functions write numba-compatible numpy source and return new stand-ins.  A rule written against ``xp``,
as every rule in the table is, so becomes its own fused code; nothing is spelled twice.  A stand-in is an
array of another library to the table (no data-dependent indexing while the code is written), so each rule
takes that path: tanh's ``where(|a| > 0.998, sech^2(x), 1 - a**2)``, max's ``(x, ans)`` with ties
sharing ``g``, as the table documents.

The code is written twice: the second writing knows how often the first read each temporary, and writes an
elementwise expression read once into its reader (numba compiles one array expression as one loop), and a
``where`` whose operands all have its shape as an element loop that evaluates one side per entry (tanh's
``exp`` runs only at saturated entries).  An elementwise expression of three or more axes is always such a
loop over flat views: numba compiles a 4-D array expression for 13 s, a flat loop in a fraction of one.
An expression written into part of an array (a concatenation's part, a gradient's block ``x[a:b]``) of at
least :data:`LOOP_MIN` entries is such a loop too, over that run of the flat array: numba evaluates
``buf[a:b] = x * y`` into a temporary and then copies it (ode at n = 1e5: 1.09 ms a gradient before, 0.66 after).
An elementwise function of at least :data:`SIMD_MIN` entries whose numpy loop is clearly faster than numba's on
this CPU (measured once a process: numpy's exp, log, tanh... are SIMD on AVX-512, numba's are scalar libm calls)
is numpy's, called from the compiled code (``numba.objmode``, ~1.3 us a call) on a contiguous copy.

Guards (the recording's branches on data: a comparison, ``bool()``, ``argmax``; see :mod:`.compiled`) are
checked inside the fused function, each as soon as its inputs exist: the op is run again and compared with its
recorded result, and a difference raises :class:`.replay.Rerecord`, as the NumPy replay does.

What it refuses, with the reason (the NumPy replay then runs; :attr:`.compiled.Compiled.fuse_reason`):

* an op or a rule that the writer cannot spell (a function of the namespace it lacks, a shape numba takes
  no reshape of);
* more than :data:`MAX_LINES` lines (numba's compile time grows faster than a function's length: 100 lines
  compile in ~7 s, 200 in ~20 s, 400 in ~230 s; so a program past :data:`PART_LINES` lines is compiled as
  parts of about that many, each its own numba function, which a short Python function calls in turn, handing
  each part the variables it reads from earlier ones: ~0.09 s a line, and a few microseconds a part to run);
* a compile error from numba;
* a value or gradient at the recording's theta that differs from the NumPy replay's by more than rounding.

Skipped as doctests (numba compiles each program for seconds); tests/test_fused.py runs the same.

>>> import numpy as np, diffkit as dk
>>> def f(t):
...     xp = dk.namespace(t)
...     return xp.sum(xp.tanh(t) * t)
>>> g = dk.compile(f, np.array([0.5, -1.0]), fuse=True)   # doctest: +SKIP
>>> g.fused, bool(np.allclose(g(np.array([1.0, 2.0]))[1], dk.gradient(f, np.array([1.0, 2.0])).grad))  # doctest: +SKIP
(True, True)
"""
from __future__ import annotations

import ast
import math
import re
import time
import warnings
from typing import Any, Callable

import numpy as np

from .array import TArray
from .core import Tape
from .replay import NotCompilable, Rerecord, _inputs, _needed, _shape, _span, _split

__all__ = ["NotFusable", "fuse", "available", "MAX_LINES", "PART_LINES", "LOOP_MIN", "SIMD_MIN", "best_times"]

MAX_LINES = 600  # past this the NumPy replay runs: a fused program compiles in ~0.09 s a line (in parts)
PART_LINES = 100  # a longer program is compiled as parts of about this many lines (see _parts)
# A block (a concatenation's part, a gradient's block) of at least this many entries is written by a loop of its
# own (Writer.block): the pass it saves is worth its lines' compile time only on large arrays.
LOOP_MIN = 4096
# An elementwise function of an array of at least this many entries is numpy's, called from the compiled code,
# where numpy's loop is faster than numba's on this CPU (_numpy_faster): the call costs ~1.3 us.
SIMD_MIN = 1024
_NUMPY_FASTER: dict = {}  # function name -> whether numpy's loop beats numba's here (measured once a process)


def best_times(a: Callable, b: Callable, theta: np.ndarray, budget_s: float = 0.05) -> tuple[float, float]:
    """The best of a few interleaved calls of ``a`` and of ``b`` on ``theta`` (seconds), within ``budget_s``: how
    a fused program is chosen over the NumPy replay (:mod:`.compiled`), and numpy's loop over numba's."""
    best_a = best_b = float("inf")
    start = time.perf_counter()
    for _ in range(25):
        t0 = time.perf_counter()
        a(theta)
        t1 = time.perf_counter()
        b(theta)
        t2 = time.perf_counter()
        best_a, best_b = min(best_a, t1 - t0), min(best_b, t2 - t1)
        if t2 - start > budget_s:
            break
    return best_a, best_b


def _numpy_faster(name: str) -> bool:
    """Whether ``np.<name>`` over an array runs clearly faster (1.5x) than numba's compiled loop of it on this
    CPU: numpy's SIMD loops (exp, log, tanh on AVX-512) against numba's scalar libm calls.  Measured once per
    process and function, best of up to 25 interleaved calls on 4096 entries."""
    if name not in _NUMPY_FASTER:
        import numba
        env = {"np": np}
        exec(f"def loop(x):\n    return np.{name}(x)\n", env)  # (our own text: a numpy function's name)
        compiled, numpy_fn, x = numba.njit(env["loop"]), getattr(np, name), np.linspace(0.1, 0.9, 4096)
        compiled(x)
        numba_s, numpy_s = best_times(compiled, numpy_fn, x)
        _NUMPY_FASTER[name] = 1.5 * numpy_s < numba_s
    return _NUMPY_FASTER[name]


class NotFusable(NotCompilable):
    """The recording holds something the fused writer cannot spell; the reason says what."""


class _Unspelled(NotFusable, AttributeError):
    """A namespace function the writer lacks: NotFusable, and to ``getattr(xp, name, default)`` a missing name."""


def available() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


class Sym:
    """A value of the fused function at generation time: its variable (or literal) and its static shape."""

    __slots__ = ("text", "shape", "kind", "writer", "tree")
    # The table's residual forwards tell diffkit's own traces (recorded again) from other array libraries'
    # values by module; a Sym is the latter, a value of the numba function being written.
    __module__ = "numba_fused"
    __array_ufunc__ = None  # numpy operators defer to ours (a constant array times a Sym writes a line)

    def __init__(self, writer: "Writer", text: str, shape: tuple, kind: str = "f", tree: tuple | None = None):
        self.writer, self.text, self.shape, self.kind = writer, text, tuple(shape), kind
        self.tree = tree  # an inlined elementwise expression: (op, operands...); None for a variable or literal

    def __array_namespace__(self, api_version=None):
        return self.writer  # (the table's forwards then take their path for other array libraries: no
        # data-dependent indexing while the code is written; tanh keeps x, max keeps (x, ans))

    ndim = property(lambda self: len(self.shape))
    size = property(lambda self: math.prod(self.shape))
    dtype = property(lambda self: np.dtype(bool if self.kind == "b" else np.float64))
    T = property(lambda self: self.writer.permute_dims(self, None))
    mT = property(lambda self: self.writer.matrix_transpose(self))

    def reshape(self, *shape):
        return self.writer.reshape(self, shape[0] if len(shape) == 1 and type(shape[0]) is tuple else shape)

    def __bool__(self):
        raise NotFusable("a branch on a traced value (bool() of an array of the program)")

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, index):
        return self.writer.getitem(self, index)

    __hash__ = None  # (== writes a comparison)


def _binary(op: str, kind: str = "f", reverse: bool = False) -> Callable:
    def method(self, other):
        a, b = (other, self) if reverse else (self, other)
        return self.writer.binary(op, a, b, kind)
    return method


for _name, _op in (("add", "+"), ("sub", "-"), ("mul", "*"), ("truediv", "/"), ("pow", "**"), ("matmul", "@")):
    setattr(Sym, f"__{_name}__", _binary(_op))
    setattr(Sym, f"__r{_name}__", _binary(_op, reverse=True))
for _name, _op in (("eq", "=="), ("ne", "!="), ("lt", "<"), ("le", "<="), ("gt", ">"), ("ge", ">=")):
    setattr(Sym, f"__{_name}__", _binary(_op, kind="b"))
Sym.__neg__ = lambda self: self.writer.line(f"-{self.text}", self.shape, self.kind, tree=("neg", self))
Sym.__pos__ = lambda self: self


def _literal(value: Any) -> str | None:
    """Source for a finite number (a negative one in parentheses: ``(-2.0) ** x`` is not ``-(2.0 ** x)``)."""
    if isinstance(value, (bool, np.bool_)):
        return repr(bool(value))
    if isinstance(value, (int, np.integer)):
        text = repr(int(value))
    elif isinstance(value, (float, np.floating)) and math.isfinite(value):
        text = repr(float(value))
    else:
        return None
    return f"({text})" if text.startswith("-") else text


_ELEMENTWISE = ("exp", "log", "sqrt", "sin", "cos", "tan", "tanh", "sinh", "cosh", "arctan", "arcsin", "arccos",
                "log1p", "expm1", "abs", "sign", "floor", "ceil", "negative", "log2", "log10", "arcsinh", "arccosh",
                "arctanh", "exp2", "cbrt", "reciprocal")  # numpy's names; numba compiles each ufunc
_BINARY = ("hypot", "arctan2")
_PREDICATES = ("isnan", "isfinite", "isinf", "logical_not")  # elementwise, with a boolean result
_COMPARISONS = {"less": "<", "less_equal": "<=", "greater": ">", "greater_equal": ">=", "equal": "==",
                "not_equal": "!="}
_SPELLED = {"asin": "arcsin", "acos": "arccos", "atan": "arctan", "asinh": "arcsinh", "acosh": "arccosh",
            "atanh": "arctanh", "atan2": "arctan2", "absolute": "abs"}


class Writer:
    """The namespace the table's forwards and rules see while the fused function is written: each call
    appends one line and returns a :class:`Sym`."""

    def __init__(self, uses: dict | None = None, lazy: frozenset = frozenset()):
        self.uses = uses  # how often each temporary is read (from a first writing): one read is inlined
        self.lazy = lazy  # temporaries read only by element loops (see where): computed there, per entry
        self.elementwise: set = set()  # temporaries that are elementwise expressions (inlinable)
        self.lines: list = []
        self.constants: list = []  # arrays the function takes as arguments (K0, K1 ...)
        self._ids: dict = {}  # id of a constant -> (its argument name, the constant: held, so no other takes its id)
        self.count = 0
        self.settled = 0  # operands computed once before they are broadcast (b0, b1 ...: see settle)
        self.blocks = 0  # flat views of buffers written by a loop (see block); the first writing writes none, so
        # they take no number of self.count, which must name the same temporaries in both writings
        self.helpers: set = set()  # the loop functions the lines call (ROWS_EXTREMUM)

    # --- plumbing -----------------------------------------------------------------------------------------
    def line(self, text: str, shape: tuple, kind: str = "f", tree: tuple | None = None) -> Sym:
        """``t<n> = text``; an elementwise expression (``tree`` given) read once is written into its reader
        instead (numba compiles one array expression as one loop: no temporary, a shorter function)."""
        name, self.count = f"t{self.count}", self.count + 1
        if tree is not None and kind == "f" and len(shape) >= 3:  # numba compiles an array expression of three
            return self._flat_loop(name, Sym(self, text, shape, kind, tree))  # or more axes for seconds (4-D +: 13 s)
        if tree is not None:
            self.elementwise.add(name)
        if tree is not None and self.uses is not None and (self.uses.get(name, 0) <= 1 or name in self.lazy):
            return Sym(self, f"({text})", shape, kind, tree)
        self.lines.append(f"{name} = {text}")
        return Sym(self, name, shape, kind)

    def _flat_loop(self, name: str, v: Sym) -> Sym:
        """``name = v`` as a loop over flat views of ``v``'s arrays."""
        return self._element_loop(name, v.shape, v.kind, [v], lambda value: value)

    def _element_loop(self, name: str, shape: tuple, kind: str, operands: list, spell: Callable) -> Sym:
        """``name``, a new array of ``shape``, filled entry by entry: ``spell(*texts)`` with each operand's text
        at flat index ``_k``, its arrays read through flat views.  An operand whose axes of more than one entry
        are one run of the result's axes is read in place: broadcast along leading axes (a bias: (544,) beside
        (26, 3, 544)) at ``_k % 544``, along trailing ones ((26, 3, 1) beside (26, 3, 544)) at ``_k // 544``,
        along both ((3, 1) beside (26, 3, 88)) at ``(_k // 88) % 3``; any other broadcast is copied out to the
        full shape first."""
        size = math.prod(shape)
        self.lines += [f"{name} = np.empty({shape!r})", f"{name}_out = {name}.reshape(({size},))"]
        self._fill(f"{name}_out", 0, name + "_", shape, operands, spell)
        return Sym(self, name, shape, kind)

    def _fill(self, out: str, offset: int, prefix: str, shape: tuple, operands: list, spell: Callable,
              op: str = "=") -> None:
        """``out[offset:offset + size] = spell(*operands)`` (or ``+=``: ``op``), ``out`` a flat view, ``shape``
        the operands' broadcast: entry by entry, the loop of :meth:`_element_loop`, which also writes the parts
        of a concatenation and the blocks of a gradient (numba evaluates ``buf[a:b] = x * y`` into a temporary,
        then copies it: two passes, not one)."""
        size, flats, leaves = math.prod(shape), {}, {}
        for v in operands:
            leaves.update(_leaf_shapes(v))
        reads = {text: at for text, s in leaves.items() if s != shape and (at := _broadcast_read(s, shape))}
        body = spell(*(_element(v, flats, prefix, reads) for v in operands))
        for array, flat in flats.items():
            whole = leaves[array] == shape or array in reads
            full = array if whole else f"np.broadcast_to({array}, {shape!r})"
            length = math.prod(leaves[array]) if array in reads else size
            self.lines.append(f"{flat} = np.ascontiguousarray({full}).reshape(({length},))")
        at = "_k" if not offset else f"{offset} + _k"
        self.lines += [f"for _k in range({size}):", f"    {out}[{at}] {op} {body}"]

    def settle(self, v: Sym, shape: tuple) -> Sym:
        """``v`` as an operand of an elementwise result of ``shape``: an inlined expression that does more than
        add and multiply, broadcast to a larger shape, is computed once into a variable of its own (numba would
        compute it again for every entry it is broadcast to: in ht, the cosines of a (22,) vector 26 times)."""
        if v.tree is None or not v.shape or v.shape == shape or not _costly(v):
            return v
        name, self.settled = f"b{self.settled}", self.settled + 1
        self.lines.append(f"{name} = {v.text}")
        return Sym(self, name, v.shape, v.kind)

    def wrap(self, value: Any) -> Sym:
        if type(value) is Sym:
            return value
        text = _literal(value)
        if text is not None:
            return Sym(self, text, (), "b" if type(value) in (bool, np.bool_) else "f")
        if isinstance(value, np.ndarray) and value.dtype.kind in "fiub":
            if value.ndim == 0:
                return self.wrap(value[()])
            key = id(value)
            if key not in self._ids:
                self._ids[key] = (f"K{len(self.constants)}", value)
                self.constants.append(np.ascontiguousarray(value))
            return Sym(self, self._ids[key][0], value.shape, "b" if value.dtype.kind == "b" else "f")
        raise NotFusable(f"a constant of type {type(value).__name__}")

    def binary(self, op: str, a: Any, b: Any, kind: str = "f") -> Sym:
        if op == "@":
            return self.matmul(a, b)
        a, b, shape = self._operands(a, b)
        if op == "**" and b.kind == "f" and b.text == "2.0" and a.tree is None:
            return self.line(f"{a.text} * {a.text}", shape, tree=("*", a, a))
        return self.line(f"{a.text} {op} {b.text}", shape, kind, tree=(op, a, b))

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        raise _Unspelled(f"xp.{name} (the fused writer has no such function)")

    # --- elementwise --------------------------------------------------------------------------------------
    def unary(self, name: str, x: Any) -> Sym:
        x = self.wrap(x)
        if x.kind == "f" and math.prod(x.shape) >= SIMD_MIN and _numpy_faster(name):
            # numpy's own loop, called from the compiled code: numba's is a scalar libm call per entry, and
            # numpy's is SIMD on some CPUs (AVX-512: exp over 4096 entries, 3.5 us against 17.9)
            arg = self.line(f"np.ascontiguousarray({x.text})", x.shape)
            out, self.count = f"t{self.count}", self.count + 1
            layout = "float64[" + ":, " * (len(x.shape) - 1) + "::1]"
            self.lines += [f"with numba.objmode({out}='{layout}'):", f"    {out} = np.{name}({arg.text})"]
            return Sym(self, out, x.shape)
        return self.line(f"np.{name}({x.text})", x.shape, tree=(name, x))

    def call2(self, name: str, a: Any, b: Any) -> Sym:
        a, b, shape = self._operands(a, b)
        return self.line(f"np.{name}({a.text}, {b.text})", shape, tree=(f"np.{name}", a, b))

    def _operands(self, *values: Any) -> tuple:
        """The operands of an elementwise op, wrapped and settled (see :meth:`settle`), then the result's shape."""
        syms = [self.wrap(v) for v in values]
        shape = np.broadcast_shapes(*(v.shape for v in syms))
        return (*(self.settle(v, shape) for v in syms), shape)

    def clip(self, x, min=None, max=None):  # noqa: A002 (the table's parameter names)
        x = self.wrap(x)
        if min is not None:
            x = self.maximum(x, min)
        return x if max is None else self.minimum(x, max)

    def where(self, c, a, b):
        """``a`` where ``c``, else ``b``: a loop that evaluates one side per entry when every operand has the
        result's shape or none (tanh's rule: sech^2 only at the saturated entries); else numpy's where."""
        c, a, b, shape = self._operands(c, a, b)
        if not shape:
            return self.line(f"{a.text} if {c.text} else {b.text}", ())
        if c.text in ("True", "False"):  # a condition folded to a constant: one side (np.where compiles for seconds)
            side = a if c.text == "True" else b
            return side if side.shape == shape else self.broadcast_to(side, shape)
        if not all(_whole(v, shape) for v in (c, a, b)):
            return self.line(f"np.where({c.text}, {a.text}, {b.text})", shape)
        name, self.count = f"t{self.count}", self.count + 1
        return self._element_loop(name, shape, "f", [c, a, b], lambda c, a, b: f"{a} if {c} else {b}")

    def to_float(self, x):
        x = self.wrap(x)
        return self.line(f"np.where({x.text}, 1.0, 0.0)", x.shape) if x.shape else self.line(
            f"1.0 if {x.text} else 0.0", ())

    def asarray(self, x, dtype=None):
        return self.wrap(x)

    def square(self, x):
        x = self.wrap(x)
        return self.line(f"{x.text} * {x.text}", x.shape, tree=("*", x, x) if x.tree is None else None)

    def add(self, a, b):
        return self.binary("+", a, b)

    def subtract(self, a, b):
        return self.binary("-", a, b)

    def multiply(self, a, b):
        return self.binary("*", a, b)

    def divide(self, a, b):
        return self.binary("/", a, b)

    def pow(self, a, b):
        return self.binary("**", a, b)

    def argmax(self, x, axis=None, keepdims=False):
        return self._arg("argmax", x, axis, keepdims)

    def argmin(self, x, axis=None, keepdims=False):
        return self._arg("argmin", x, axis, keepdims)

    def _arg(self, how: str, x, axis, keepdims):
        x = self.wrap(x)
        if axis is None:
            out = self.line(f"np.{how}({x.text})", (), "i")
            return self.reshape(out, (1,) * x.ndim) if keepdims else out
        axis %= x.ndim
        out = self.line(f"np.{how}({x.text}, axis={axis})", x.shape[:axis] + x.shape[axis + 1:], "i")
        return self.reshape(out, x.shape[:axis] + (1,) + x.shape[axis + 1:]) if keepdims else out

    def maximum(self, a, b):
        a, b, shape = self._operands(a, b)
        return self.line(f"np.maximum({a.text}, {b.text})", shape)

    def minimum(self, a, b):
        a, b, shape = self._operands(a, b)
        return self.line(f"np.minimum({a.text}, {b.text})", shape)

    # --- shapes -------------------------------------------------------------------------------------------
    def reshape(self, x, shape, copy=None):
        x = self.wrap(x)
        shape = tuple(int(n) for n in np.empty(x.shape)[...].reshape(shape).shape)  # (-1 resolved)
        if shape == x.shape:
            return x
        if not x.shape:
            return self.line(f"np.full({shape!r}, {x.text})", shape, x.kind)
        if not shape:
            return self.line(f"{x.text}.ravel()[0]", (), x.kind)
        return self.line(f"np.ascontiguousarray({x.text}).reshape({shape!r})", shape, x.kind)

    def broadcast_to(self, x, shape):
        x, shape = self.wrap(x), tuple(shape)
        if x.shape == shape:
            return x
        if not x.shape:
            return self.line(f"np.full({shape!r}, {x.text})", shape, x.kind)
        return self.line(f"np.broadcast_to({x.text}, {shape!r})", shape, x.kind)

    def expand_dims(self, x, axis=0):
        x = self.wrap(x)
        return self.reshape(x, np.expand_dims(np.empty(x.shape), axis).shape)

    def permute_dims(self, x, axes=None):
        x = self.wrap(x)
        if x.ndim < 2:
            return x
        axes = tuple(reversed(range(x.ndim))) if axes is None else tuple(a % x.ndim for a in axes)
        if axes == tuple(range(x.ndim)):
            return x
        shape = np.transpose(np.empty(x.shape), axes).shape
        if axes == tuple(reversed(range(x.ndim))):  # (.T: a C array becomes an F one, which BLAS takes as it is)
            return self.line(f"{x.text}.T", shape)
        return self.line(f"{x.text}.transpose({axes!r})", shape)  # (np.transpose(x, axes): 4 s to compile; this 0.4)

    def matrix_transpose(self, x):
        x = self.wrap(x)
        axes = tuple(range(x.ndim - 2)) + (x.ndim - 1, x.ndim - 2)
        return self.permute_dims(x, axes)

    def getitem(self, x, index):
        x = self.wrap(x)
        text = self.index_text(index)
        if text is None or x.kind != "f":
            raise NotFusable(f"an index the fused writer does not spell: {index!r}")
        shape = np.empty(x.shape)[index].shape
        if x.tree is not None and _gather_at(index) is None and _whole(x, x.shape):
            # an inlined elementwise expression, indexed: computed at the entries taken, not everywhere
            # (ode's y[-1] of a sum of five vectors of 1e5: five reads of one entry, not a pass over all)
            return self.line(_spell(x, lambda a: f"{a.text}[{text}]"), shape)
        return self.line(f"{x.text}[{text}]", shape)

    def index_text(self, index: Any) -> str | None:
        """Source for ``index``: basic slices and integers, or a gather: one 1-D integer array (a constant
        argument), alone or among slices."""
        if _gather_at(index) is not None:
            parts = index if type(index) is tuple else (index,)
            return ", ".join(self.wrap(p).text if isinstance(p, np.ndarray) else _index_text(p) for p in parts)
        return _index_text(index)

    def first_block(self, shape: tuple, index: Any, c: Sym) -> Sym:
        """A new gradient buffer of ``shape`` holding ``c`` at the basic ``index``, zeros elsewhere.  Where
        the index is a run of more than one entry of the first axis (``x[a:b]``, :func:`.replay._span`), only the
        entries outside it are zeroed; else the buffer starts as zeros.  Either way ``c`` is assigned: a pass fewer
        than zeros then ``+=``."""
        start, stop = _span(index, shape) or (0, 0)
        run = stop - start > 1  # (one entry: zeroing all the others is the same pass as zeros)
        buffer = self.line(f"np.empty({shape!r})" if run else f"np.zeros({shape!r})", shape)
        if run:
            self.lines += [f"{buffer.text}[{lo}:{hi}] = 0.0" for lo, hi in ((0, start), (stop, shape[0])) if lo < hi]
        self.block(buffer, index, c, "=")
        return buffer

    def block(self, buffer: Sym, index: Any, c: Sym, op: str) -> None:
        """``buffer[index] = c`` or ``+= c`` (``op``) for a basic ``index``.  Where ``c`` is an inlined
        expression and the index a run of the first axis (:func:`.replay._span`), one loop over that run of the
        flat buffer: numba evaluates ``buffer[a:b] += x * y`` into a temporary first, a second pass."""
        start, stop = _span(index, buffer.shape) or (0, 0)
        rows = math.prod(buffer.shape[1:])
        if not _looped(c, (stop - start) * rows):
            self.lines.append(f"{buffer.text}[{_index_text(index)}] {op} {c.text}")
            return
        block = (stop - start,) + tuple(buffer.shape[1:])
        flat, self.blocks = f"{buffer.text}_out{self.blocks}", self.blocks + 1  # (not self.count: see line)
        self.lines.append(f"{flat} = {buffer.text}.reshape(({math.prod(buffer.shape)},))")
        stretched = c if c.shape == block else Sym(self, c.text, block, c.kind, c.tree)  # (leaves keep their shapes)
        self._fill(flat, start * rows, flat + "_", block, [stretched], lambda value: value, op)

    def scatter_add(self, buffer: Sym, index: Any, c: Sym) -> None:
        """``buffer[index] += c`` for a gather ``index`` (one integer array among slices): one
        ``+=`` per entry of the array, so that repeated entries add up (as ``np.add.at``)."""
        parts = index if type(index) is tuple else (index,)
        c = self.line(f"np.ascontiguousarray({c.text})", c.shape)
        into, read = [], []
        for p in parts:
            if isinstance(p, np.ndarray):
                into.append(f"{self.wrap(p).text}[_j]")
                read.append("_j")
                size = len(p)
            else:
                into.append(_index_text(p))
                read.append(":")
        self.lines += [f"for _j in range({size}):", f"    {buffer.text}[{', '.join(into)}] += {c.text}[{', '.join(read)}]"]

    def concat(self, xs, axis=0):
        xs = [self.wrap(x) for x in xs]
        axis %= len(xs[0].shape)
        shape = xs[0].shape[:axis] + (sum(x.shape[axis] for x in xs),) + xs[0].shape[axis + 1:]
        if axis or not any(_looped(x, math.prod(x.shape)) for x in xs):
            parts = "".join(f"{x.text}, " for x in xs)
            return self.line(f"np.concatenate(({parts}), axis={axis})", shape)
        # along the first axis each part is a block of the result (see block): an inlined expression is written
        # there by one loop (numba's concatenate would first evaluate it into a temporary), any other part copied
        result, start = self.line(f"np.empty({shape!r})", shape), 0
        for x in xs:
            self.block(result, slice(start, start + x.shape[0]), x, "=")
            start += x.shape[0]
        return result

    concatenate = concat

    def stack(self, xs, axis=0):
        xs = [self.wrap(x) for x in xs]
        shape = xs[0].shape
        if any(x.shape != shape for x in xs):  # (the table broadcasts nothing here: shapes agree)
            raise NotFusable(f"stack of shapes {[x.shape for x in xs]}")
        axis %= len(shape) + 1
        parts = "".join(f"np.ascontiguousarray({x.text}), " if x.shape else f"np.asarray({x.text}), " for x in xs)
        return self.line(f"np.stack(({parts}), axis={axis})", shape[:axis] + (len(xs),) + shape[axis:])

    # --- reductions and products --------------------------------------------------------------------------
    def sum(self, x, axis=None, keepdims=False, dtype=None):
        return self._reduce("sum", x, axis, keepdims)

    def max(self, x, axis=None, keepdims=False):
        return self._reduce("max", x, axis, keepdims)

    def min(self, x, axis=None, keepdims=False):
        return self._reduce("min", x, axis, keepdims)

    def _reduce(self, how: str, x, axis, keepdims):
        x = self.wrap(x)
        if not x.shape:
            return x
        axes = tuple(range(x.ndim)) if axis is None else tuple(sorted(a % x.ndim for a in (
            axis if type(axis) is tuple else (axis,))))
        kept = tuple(1 if k in axes else n for k, n in enumerate(x.shape))
        reduced = tuple(n for k, n in enumerate(x.shape) if k not in axes)
        if len(axes) == x.ndim:
            out = self.line(f"np.{how}({x.text})", ())
        elif how == "sum":
            out = x
            for a in reversed(axes):  # (numba's sum takes one axis)
                out = self.line(f"np.sum({out.text}, axis={a})", out.shape[:a] + out.shape[a + 1:])
        else:  # max/min over some axes: those axes moved last, rows of a contiguous copy, one loop per row
            rest = tuple(k for k in range(x.ndim) if k not in axes)
            moved = self.wrap(x) if rest + axes == tuple(range(x.ndim)) else self.line(
                f"np.ascontiguousarray({x.text}.transpose({rest + axes!r}))", tuple(x.shape[k] for k in rest + axes))
            rows = self.line(f"np.ascontiguousarray({moved.text}).reshape(({math.prod(reduced)}, "
                             f"{math.prod(x.shape[k] for k in axes)}))",
                             (math.prod(reduced), math.prod(x.shape[k] for k in axes)))
            self.helpers.add("ROWS_EXTREMUM")
            out = self.line(f"ROWS_EXTREMUM({rows.text}, {how == 'max'}).reshape({reduced!r})", reduced)
        return self.reshape(out, kept) if keepdims else out

    def matmul(self, a, b):
        """Vectors and matrices by np.dot; a stack times one matrix as one product of the stacked rows (as the
        table's numpy forward); other stacks (broadcast) one product per matrix, small ones as plain loops
        (BLAS costs more to call than a 3 x 3 product takes)."""
        a, b = self.wrap(a), self.wrap(b)
        if not a.ndim or not b.ndim or max(a.ndim, b.ndim) > 2 and min(a.ndim, b.ndim) < 2:
            raise NotFusable(f"matmul of shapes {a.shape} and {b.shape} (fused: vectors, matrices, stacks)")
        shape = _matmul_shape(a.shape, b.shape)
        if a.ndim <= 2 and b.ndim <= 2:
            return self.line(f"np.dot({a.text}, {b.text})", shape)
        (m, k), n = a.shape[-2:], b.shape[-1]
        stack = shape[:-2]
        count = math.prod(stack)
        if b.ndim == 2:
            rows = self.line(f"np.ascontiguousarray({a.text}).reshape(({count * m}, {k}))", (count * m, k))
            return self.line(f"np.dot({rows.text}, {b.text}).reshape({shape!r})", shape)
        x, y = (self._stack_of(v, stack, count) for v in (a, b))
        self.helpers.add("STACKED_MATMUL")
        return self.reshape(self.line(f"STACKED_MATMUL({x.text}, {y.text}, {count})", (count, m, n)), shape)

    def _stack_of(self, v: Sym, stack: tuple, count: int) -> Sym:
        """``v``'s matrices as one contiguous (matrices, rows, columns) array: its own, where it repeats along
        leading axes of the stack (STACKED_MATMUL reads matrix ``s % matrices``: no copy); else copied out
        over the whole broadcast stack."""
        own = math.prod(v.shape[:-2])
        if _trailing(v.shape[:-2], stack):
            count, text = own, v.text
        else:
            text = f"np.broadcast_to({v.text}, {stack + v.shape[-2:]!r})"
        return self.line(f"np.ascontiguousarray({text}).reshape(({count}, {v.shape[-2]}, {v.shape[-1]}))",
                         (count,) + v.shape[-2:])

    def mean(self, x, axis=None, keepdims=False):
        x = self.wrap(x)
        total = self._reduce("sum", x, axis, keepdims)
        return self.binary("/", total, float(x.size // max(1, total.size)))


def _matmul_shape(a: tuple, b: tuple) -> tuple:
    """numpy's matmul shape, worked out (a product of placeholder arrays would compute one)."""
    if len(a) == 1 and len(b) == 1:
        return ()
    if len(a) == 1:
        return b[:-2] + b[-1:]
    if len(b) == 1:
        return a[:-1]
    return tuple(np.broadcast_shapes(a[:-2], b[:-2])) + (a[-2], b[-1])


def _looped(c: Sym, size: int) -> bool:
    """Whether ``c``, written into a block of ``size`` entries, is written by a loop of its own (:data:`LOOP_MIN`)."""
    return size >= LOOP_MIN and c.tree is not None and c.kind == "f"


_CHEAP = ("+", "-", "*", "neg")  # ops that cost less to repeat per broadcast entry than a variable costs


def _costly(v: Sym) -> bool:
    """Whether the inlined expression ``v`` calls anything beyond addition and multiplication."""
    return v.tree is not None and (v.tree[0] not in _CHEAP or any(_costly(p) for p in v.tree[1:]))


def _whole(v: Sym, shape: tuple) -> bool:
    """Whether every array under ``v`` has ``shape`` (an element loop can read them all at one flat index)."""
    if v.tree is None:
        return v.shape in ((), shape)
    return all(_whole(part, shape) for part in v.tree[1:])


def _leaf_shapes(v: Sym) -> dict:
    """The shape of each array under ``v``, by its text."""
    if v.tree is None:
        return {v.text: v.shape} if v.shape else {}
    return {text: shape for part in v.tree[1:] for text, shape in _leaf_shapes(part).items()}


def _run(small: tuple, shape: tuple) -> tuple | None:
    """``(every, count)`` when the axes of ``small`` longer than one are one run of ``shape``'s axes (equal
    there): broadcast to ``shape``, its entry at the result's flat index ``k`` is its flat entry
    ``(k // every) % count``; None for any other broadcast."""
    small = (1,) * (len(shape) - len(small)) + tuple(small)
    kept = [k for k, n in enumerate(small) if n != 1]
    if not kept:
        return math.prod(shape), 1
    first, last = kept[0], kept[-1] + 1
    if small[first:last] != shape[first:last]:
        return None
    return math.prod(shape[last:]), math.prod(shape[first:last])


def _trailing(small: tuple, shape: tuple) -> bool:
    """Whether ``small`` broadcast to ``shape`` only along leading axes (its entries repeat in flat order)."""
    run = _run(small, shape)
    return run is not None and 1 in run


def _broadcast_read(small: tuple, shape: tuple) -> str | None:
    """Where a flat view of ``small``, broadcast to ``shape``, holds the entry at flat index ``_k`` of the
    result (see :func:`_run`); None for a broadcast that has no such index."""
    run = _run(small, shape)
    if run is None:
        return None
    every, count = run
    if count == 1:
        return "0"
    at = "_k" if every == 1 else f"(_k // {every})"
    return at if every * count == math.prod(shape) else f"{at} % {count}"


def _spell(v: Sym, leaf: Callable[[Sym], str]) -> str:
    """The elementwise expression ``v`` with each array under it spelled by ``leaf`` (scalars as they are)."""
    if v.tree is None:
        return leaf(v) if v.shape else v.text
    op, *parts = v.tree
    if op.startswith("np."):  # a binary ufunc: np.hypot(a, b)
        return f"{op}({', '.join(_spell(p, leaf) for p in parts)})"
    if op == "neg":
        return f"(-{_spell(parts[0], leaf)})"
    if len(parts) == 1:
        return f"np.{op}({_spell(parts[0], leaf)})"
    return f"({_spell(parts[0], leaf)} {op} {_spell(parts[1], leaf)})"


def _element(v: Sym, flats: dict, prefix: str, reads: dict | None = None) -> str:
    """``v`` at flat index ``_k``: its arrays read through flat views (named in ``flats``); an array in
    ``reads`` (text -> index expression, see :func:`_broadcast_read`) at that index."""
    def leaf(a: Sym) -> str:
        flat = flats.setdefault(a.text, f"{prefix}{len(flats)}")
        return f"{flat}[{reads[a.text]}]" if reads and a.text in reads else f"{flat}[_k]"
    return _spell(v, leaf)


def _gather_at(index: Any) -> int | None:
    """Where the one 1-D integer array of a gather index is (the index itself, or a tuple of it among
    slices); None for any other index."""
    parts = index if type(index) is tuple else (index,)
    arrays = [k for k, p in enumerate(parts) if isinstance(p, np.ndarray)]
    if len(arrays) != 1 or parts[arrays[0]].ndim != 1 or parts[arrays[0]].dtype.kind not in "iu":
        return None
    # (slices only beside it: numpy moves the axes of an array and an integer apart to the front)
    return arrays[0] if all(type(p) is slice for k, p in enumerate(parts) if k != arrays[0]) else None


def _index_text(index: Any) -> str | None:
    parts = index if type(index) is tuple else (index,)
    out = []
    for p in parts:
        if type(p) is slice:
            if not all(v is None or type(v) is int for v in (p.start, p.stop, p.step)):
                return None
            out.append(":".join("" if v is None else str(v) for v in (p.start, p.stop)) +
                       ("" if p.step is None else f":{p.step}"))
        elif type(p) is int or isinstance(p, np.integer):
            out.append(str(int(p)))
        elif p is Ellipsis:
            out.append("...")
        else:
            return None
    return ", ".join(out) if out else ":"


for _name in _ELEMENTWISE:
    setattr(Writer, _name, (lambda n: lambda self, x: self.unary(n, x))(_name))
for _name in _BINARY:
    setattr(Writer, _name, (lambda n: lambda self, a, b: self.call2(n, a, b))(_name))
for _name, _op in _COMPARISONS.items():
    setattr(Writer, _name, (lambda op: lambda self, a, b: self.binary(op, a, b, "b"))(_op))
for _name in _PREDICATES:
    setattr(Writer, _name, (lambda n: lambda self, x: (lambda v: self.line(f"np.{n}({v.text})", v.shape, "b"))(
        self.wrap(x)))(_name))
for _alias, _name in _SPELLED.items():
    setattr(Writer, _alias, getattr(Writer, _name))


def _rows_extremum(rows, biggest):  # numba compiles it: a plain loop, one row at a time
    out = np.empty(rows.shape[0])
    for i in range(rows.shape[0]):
        out[i] = rows[i].max() if biggest else rows[i].min()
    return out


def _same(new, old):  # numba compiles it: a guard's result against the recorded one (NaN equal to NaN)
    a, b = np.ascontiguousarray(new).ravel(), np.ascontiguousarray(old).ravel()
    if a.size != b.size:
        return False
    for k in range(a.size):
        if a[k] != b[k] and not (a[k] != a[k] and b[k] != b[k]):
            return False
    return True


def _stacked_matmul(x, y, count):  # numba compiles it once for every stack in a program (inline, each anew)
    """``count`` products of matrices ``x[s % len(x)] @ y[s % len(y)]``: a stack broadcast along leading axes
    repeats its matrices in that order, so it is read, not copied out."""
    cx, m, k = x.shape
    cy, n = y.shape[0], y.shape[2]
    out = np.empty((count, m, n))
    if m * k * n > 64:  # BLAS costs more to call than a 3 x 3 product takes: small ones as plain loops
        for s in range(count):
            out[s] = np.dot(x[s % cx], y[s % cy])
        return out
    for s in range(count):
        sx, sy = s % cx, s % cy
        for i in range(m):
            for j in range(n):
                acc = 0.0
                for l in range(k):  # noqa: E741
                    acc += x[sx, i, l] * y[sy, l, j]
                out[s, i, j] = acc
    return out


_HELPERS = {"ROWS_EXTREMUM": _rows_extremum, "SAME": _same, "STACKED_MATMUL": _stacked_matmul}


Sym._level, Sym._inner = 0, None  # (a trace to dk.namespace: a residual forward asks its namespace)


def _bind(prim, names: tuple, g: Sym, i: int, syms: dict, parents: tuple, vals: tuple, params: dict,
          w: Writer) -> list:
    """A rule's arguments by name (:func:`.plans.reads`), as stand-ins and constants."""
    from .plans import reads

    def value(k):
        return syms[parents[k]] if parents[k] >= 0 else vals[k]
    args = [g]
    for name in names:
        kind, k = reads(prim, name, len(vals))
        if kind == "input":
            args.append(value(k))
        elif kind == "shape":
            args.append(_shape(vals[k]))
        elif kind == "ans":
            args.append(syms[i])
        elif kind == "xp":
            args.append(w)
        elif kind == "res":
            args.append(syms[("res", i)])
        elif kind == "inputs":
            args.append(tuple(value(k) for k in range(len(vals))))
        elif kind == "shapes":
            args.append(tuple(_shape(v) for v in vals))
        else:
            args.append(params[k] if k in params else prim.params[k])
    return args


def _forward(w: Writer, prim, args: list, params: dict, i: int, syms: dict) -> Sym:
    """The op's value (and residual) as the table's numpy forward computes it on a trace."""
    if prim.residual:  # (tanh, max, min: their numpy forward takes a trace's generic path: value, residual)
        ans, syms[("res", i)] = prim.impls["numpy"](*args, **params)
        return ans
    if prim.variadic:
        return getattr(w, prim.name)(args, **params)
    if not hasattr(type(w), prim.name):  # a forward written against the namespace (diffkit.formulas) spells itself
        try:
            out = prim.impls["numpy"](*args, **params)
        except NotFusable:
            raise
        except Exception as err:  # (a numpy function: numpy refuses a Sym)
            raise NotFusable(f"{prim.name} (its numpy forward does not run on the fused writer: {err})") from None
        if isinstance(out, np.ndarray) and out.dtype == object:  # (numpy took the stand-ins as Python objects)
            raise NotFusable(f"{prim.name} (its numpy forward does not run on the fused writer)")
        return out
    return getattr(w, prim.name)(*args, **params)


def _guard(w: Writer, g: tuple, syms: dict) -> None:
    """A guard of the recording (:func:`.replay._guard_line`), checked in the fused function: the op run again
    and compared with what it gave when recorded; a difference raises :class:`.replay.Rerecord`."""
    if g[0] == "bool":
        _, node, result = g
        v = syms[node]
        text = v.text if not v.shape else f"np.ascontiguousarray({v.text}).ravel()[0]"
        truth = text if v.kind == "b" else f"{text} != 0"
        w.lines.append(f"if ({truth}) != {bool(result)!r}: raise RERECORD('bool() of node {node} changed')")
        return
    _, prim, slots, params, result = g
    args = [syms[ref] if is_slot else ref for is_slot, ref in slots]
    again = w.wrap(_forward(w, prim, args, params, -1, syms))
    recorded = np.asarray(result)
    if again.shape != recorded.shape:
        raise NotFusable(f"guard {prim.name}: shape {again.shape} written, {recorded.shape} recorded")
    if recorded.ndim:
        w.helpers.add("SAME")
        check = f"SAME({again.text}, {w.wrap(recorded).text})"
    else:
        expected = _literal(recorded[()])
        if expected is None:  # (a NaN or an infinity recorded)
            raise NotFusable(f"guard {prim.name}: its recorded result {recorded[()]!r} has no literal")
        check = f"{again.text} == {expected}"
    w.lines.append(f"if not ({check}): raise RERECORD('the result of {prim.name} changed')")


def write(tape: Tape, out: TArray, aux: Any = None, forward_only: bool = False) -> tuple[str, list, set]:
    """``(source of grad(theta, K0, K1, ...), the constants K, the helpers called)`` for a recorded program:
    written twice, the second time with each temporary's number of reads from the first (see Writer.line).
    ``grad`` returns ``(value, gradient)``, and ``aux`` third when it is an array of the tape; with
    ``forward_only``, the function is ``forward`` and returns the value alone."""
    first, _, _, elementwise = _write(tape, out, None, frozenset(), aux, forward_only)
    uses: dict = {}
    readers: dict = {}
    for line in first.splitlines()[1:]:
        target, _, rhs = line.strip().partition(" = ")
        if not rhs:  # (a return, or an update in place: `b[i] += c`)
            target, rhs = "", line
        for name in re.findall(r"\bt\d+\b", rhs):
            uses[name] = uses.get(name, 0) + 1
            readers.setdefault(name, []).append(target)
    lazy: set = set()  # elementwise temporaries that only element loops read (directly, or through lazy ones)
    grew = True
    while grew:
        grew = False
        for name in elementwise - lazy:
            if readers.get(name) and all(r in lazy or re.fullmatch(r"t\d+_\d+", r) for r in readers[name]):
                lazy.add(name)
                grew = True
    return _write(tape, out, uses, frozenset(lazy), aux, forward_only)[:3]


def _write(tape: Tape, out: TArray, uses: dict | None, lazy: frozenset = frozenset(), aux: Any = None,
           forward_only: bool = False) -> tuple:
    from ..dispatch import TRACERS, register_tracer
    from .plans import unbroadcast
    if Sym not in TRACERS:
        register_tracer(Sym, lambda s: s.writer)
    entries, guards = _split(tape.program)
    for k, e in enumerate(entries):
        if (e is None) != (k == 0) or e is not None and e[0] not in ("op", "view"):
            raise NotFusable("a second leaf or a custom dk.Function")
    values = tape.values
    if not _shape(values[0]) or np.asarray(values[0]).dtype != np.float64:
        raise NotFusable("theta must be a float64 array of at least one dimension")
    live, needed = _needed(entries, guards, out.index)
    if forward_only:  # (a guard's inputs too: the value holds the constants that the guards vouch for)
        needed = _inputs_of(entries, {out.index}.union(*(_inputs(g) for _, g in guards)))
    elif type(aux) is TArray:
        needed |= _inputs_of(entries, {aux.index})
    w = Writer(uses, lazy)
    syms: dict = {0: Sym(w, "theta", _shape(values[0]))}
    pending = list(guards)
    for i in sorted(needed):
        while pending and pending[0][0] <= i:  # each guard as soon as its inputs are written
            _guard(w, pending.pop(0)[1], syms)
        e = entries[i]
        if i == 0:
            continue
        if e[0] == "view":
            p, index, view_shape, _ = e[1]
            v = w.getitem(syms[p], index)
            syms[i] = w.reshape(v, _shape(values[i])) if view_shape is not None else v
        else:
            _, prim, parents, vals, params = e
            syms[i] = w.wrap(_forward(w, prim, [syms[p] if p >= 0 else v for p, v in zip(parents, vals)],
                                      params, i, syms))
        if syms[i].shape != _shape(values[i]):
            raise NotFusable(f"node {i} ({getattr(e[1], 'name', 'a view')}): shape {syms[i].shape} written, "
                             f"{_shape(values[i])} recorded")
    for _, g in pending:
        _guard(w, g, syms)
    value = syms[out.index]
    if forward_only:
        body = "\n".join("    " + line for line in w.lines)
        args = "".join(f", K{k}" for k in range(len(w.constants)))
        return f"def forward(theta{args}):\n{body}\n    return {value.text}\n", w.constants, w.helpers, w.elementwise
    contributions: dict = {}
    buffers: dict = {}
    owned: set = set()  # variables holding arrays made here and held by nothing else
    seed = Sym(w, "1.0", ()) if not value.shape else w.line(f"np.ones({value.shape!r})", value.shape)
    contributions[out.index] = [seed]
    grad = None
    for i in range(out.index, -1, -1):
        parts = contributions.pop(i, [])
        if i in buffers:
            parts.insert(0, buffers.pop(i))
        if not parts or i not in live:
            continue
        g = parts[0]
        for c in parts[1:]:
            g = w.binary("+", g, c)
            owned.add(g.text)
        if i == 0:
            grad = g
            break
        e = entries[i]
        if e[0] == "view":
            p, index, _, parent_shape = e[1]
            part = np.empty(parent_shape)[index].shape
            c = w.reshape(g, part) if g.shape != part else g
            gather = _gather_at(index) is not None
            if p not in buffers and not gather:  # the first block: written, not added to zeros
                buffers[p] = w.first_block(tuple(parent_shape), index, c)
                owned.add(buffers[p].text)
                continue
            if p not in buffers:
                buffers[p] = w.line(f"np.zeros({tuple(parent_shape)!r})", tuple(parent_shape))
                owned.add(buffers[p].text)
            if gather:  # repeated entries add up
                w.scatter_add(buffers[p], index, c)
            else:
                w.block(buffers[p], index, c, "+=")
            continue
        _, prim, parents, vals, params = e
        if prim.joint is not None:
            from .replay import _joint_args
            results = prim.joint(*_bind(prim, _joint_args(prim), g, i, syms, parents, vals, params, w))
            rules = [(k, c) for k, c in enumerate(results)]
        else:
            rules = [(k, prim.vjps[k](*_bind(prim, names, g, i, syms, parents, vals, params, w)))
                     for k, (rule, names) in enumerate(zip(prim.vjps[:len(vals)], prim.rule_args))
                     if parents[k] >= 0 and rule is not None and parents[k] in live]
        for k, c in rules:
            p = parents[k]
            if p < 0 or p not in live or c is None:
                continue
            c, shape = w.wrap(c), _shape(vals[k])
            if c.shape != shape:
                c = w.wrap(unbroadcast(w, c, shape))
            contributions.setdefault(p, []).append(c)
    theta_shape = _shape(values[0])
    if grad is None:
        grad_text = f"np.zeros({theta_shape!r})"
    elif not grad.shape:
        grad_text = f"np.full({theta_shape!r}, {grad.text})"
    elif grad.text in owned:  # a buffer or a sum made here: a new array that nothing else holds
        grad_text = grad.text
    else:  # (a view of a constant, of theta, or a broadcast: the caller gets an array of its own)
        grad_text = f"np.ascontiguousarray({grad.text}).copy()"
    args = "".join(f", K{k}" for k in range(len(w.constants)))
    body = "\n".join("    " + line for line in w.lines)
    tail = ""
    if type(aux) is TArray:  # (an array of the caller's own: a copy, as the NumPy replay hands back)
        kept = syms[aux.index]
        tail = f", np.ascontiguousarray({kept.text}).copy()" if kept.shape else f", {kept.text}"
    source = f"def grad(theta{args}):\n{body}\n    return {value.text}, {grad_text}{tail}\n"
    return source, w.constants, w.helpers, w.elementwise


def _inputs_of(entries: list, wanted: set) -> set:
    """``wanted`` and every node they are computed from."""
    from .replay import _inputs
    needed = set(wanted)
    for i in range(max(wanted), -1, -1):
        if i in needed:
            needed.update(_inputs(entries[i]))
    return needed


def _agrees(value: Any, gradient: Any, expected: tuple) -> bool:
    """Whether the fused value and gradient are the NumPy replay's up to rounding: the value to 1e-10, the
    gradient normwise to 1e-8 (another order of summation moves an entry that cancels, like lse's
    ``softmax_max + (1 - sum(softmax))``, by ~1e-14 absolute; a writer's mistake moves the whole vector),
    with NaN where the replay has NaN."""
    want_value, want = float(np.reshape(expected[0], -1)[0]), np.asarray(expected[1])
    got_value, got = float(np.reshape(value, -1)[0]), np.asarray(gradient)
    if not (abs(got_value - want_value) <= 1e-10 * abs(want_value) + 1e-12 or got_value == want_value
            or np.isnan(got_value) and np.isnan(want_value)):
        return False
    if gradient is None:  # (a forward alone)
        return True
    if got.shape != want.shape or not np.array_equal(np.isnan(got), np.isnan(want)):
        return False
    finite = np.isfinite(want)
    if not np.array_equal(got[~finite & ~np.isnan(want)], want[~finite & ~np.isnan(want)]):
        return False
    return bool(np.linalg.norm(got[finite] - want[finite]) <= 1e-8 * np.linalg.norm(want[finite]) + 1e-300)


def _build(source: str, constants: list, helpers: set, name: str) -> Callable:
    """numba's compiled ``name`` from ``source``, called with theta alone (the constants bound)."""
    import numba
    lines = source.count("\n") - 1
    if lines > MAX_LINES:
        raise NotFusable(f"{lines} lines (more than {MAX_LINES}: numba would compile it for minutes)")
    env = {"np": np, "RERECORD": Rerecord, "numba": numba}
    jit = numba.njit(cache=False, error_model="numpy")
    for helper in helpers:
        env[helper] = jit(_HELPERS[helper])
    if lines > PART_LINES:
        source, parts = _parts(source, name, PART_LINES)
        for part in parts:
            exec(compile(part, f"<dk.compile fused {name}, a part>", "exec"), env)  # (our own generated text)
            part_name = part[4:part.index("(")]
            env[part_name] = jit(env[part_name])
        env = {**env, **{f"K{k}": constant for k, constant in enumerate(constants)}}  # (the driver's globals)
        exec(compile(source, f"<dk.compile fused {name}, its parts in turn>", "exec"), env)
        driver = env[name]
        driver.parts = len(parts)
        return driver
    exec(compile(source, f"<dk.compile fused {name}>", "exec"), env)  # our own generated text, not user input
    fn, constants = jit(env[name]), tuple(constants)
    whole = lambda theta: fn(theta, *constants)  # noqa: E731
    whole.parts = 1
    return whole


def _parts(source: str, name: str, per_part: int) -> tuple[str, list[str]]:
    """``(driver, parts)``: the straight-line function ``name`` of ``source`` cut between statements into
    functions ``{name}_part{j}`` of about ``per_part`` lines, and a plain Python ``name(theta)`` that calls
    them in turn.  Each part takes the variables it reads that earlier parts (or the arguments) made, and
    returns those it makes that later parts read; arrays pass by reference, so an update in place
    (``b[i] += c``) is seen by later parts.  The last part returns what ``name`` returns."""
    function = ast.parse(source).body[0]
    chunks: list[list] = [[]]
    size = 0
    for statement in function.body:
        length = statement.end_lineno - statement.lineno + 1
        if chunks[-1] and size + length > per_part:
            chunks.append([])
            size = 0
        chunks[-1].append(statement)
        size += length
    reads, made = [], []
    for chunk in chunks:  # what each part reads before it writes it, and what it writes
        read, wrote = set(), set()
        for statement in chunk:
            read |= _names_read(statement) - wrote
            wrote |= _names_written(statement)
        reads.append(read)
        made.append(wrote)
    known = {a.arg for a in function.args.args}  # theta and the constants K0, K1, ...
    parts, calls = [], []
    for j, chunk in enumerate(chunks):
        inputs = sorted(reads[j] & known)
        later = set().union(*reads[j + 1:])
        outputs = sorted(made[j] & later)
        body = [ast.unparse(s) for s in chunk]
        if j < len(chunks) - 1:
            body.append(f"return ({''.join(o + ', ' for o in outputs)})")
        text = "\n".join("    " + line for b in body for line in b.splitlines())
        parts.append(f"def {name}_part{j}({', '.join(inputs)}):\n{text}\n")
        call = f"{name}_part{j}({', '.join(inputs)})"
        calls.append(f"return {call}" if j == len(chunks) - 1 else
                     f"({''.join(o + ', ' for o in outputs)}) = {call}")
        known |= set(outputs)
    driver = f"def {name}(theta):\n" + "".join(f"    {c}\n" for c in calls)
    return driver, parts


def _names_read(statement: ast.stmt) -> set:
    """The variables a statement reads before it writes them (an update in place, ``x += c``, reads ``x``;
    a loop's body reads its own counter, which the loop writes first)."""
    names = {n.id for n in ast.walk(statement) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    if isinstance(statement, ast.AugAssign) and isinstance(statement.target, ast.Name):
        names.add(statement.target.id)
    if isinstance(statement, ast.For):
        names -= _names_written(statement.target) - {n.id for n in ast.walk(statement.iter)
                                                      if isinstance(n, ast.Name)}
    return names


def _names_written(node: ast.AST) -> set:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}


def _first_call(fn: Callable, theta: np.ndarray) -> Any:
    import numba
    try:
        with warnings.catch_warnings():  # (numba's advice on non-contiguous dot operands: transposes, on purpose)
            warnings.simplefilter("ignore", numba.NumbaPerformanceWarning)
            return fn(theta)  # (numba compiles on the first call)
    except Exception as err:  # numba's typing and lowering errors have many classes
        first = str(err).strip().splitlines()
        raise NotFusable(f"numba could not compile it: {first[0] if first else type(err).__name__}") from err


def fuse(tape: Tape, out: TArray, theta: np.ndarray, expected: tuple, aux: Any = None) -> tuple:
    """``(grad, make_forward)``: ``grad(theta) -> (value, gradient[, aux])`` compiled by numba and checked at
    ``theta`` against ``expected`` (the NumPy replay's answer there), and ``make_forward()``, which compiles
    and checks ``forward(theta) -> value`` the same way when first asked (a third of the compile time, which
    a caller of the gradient alone never waits for); :class:`NotFusable` with the reason when they cannot be."""
    if not available():
        raise NotFusable("numba is not installed (pip install numba, or diffkit's 'fast' extra)")
    source, constants, helpers = write(tape, out, aux)
    grad = _build(source, constants, helpers, "grad")
    got = _first_call(grad, theta)
    same_aux = type(aux) is not TArray or np.allclose(got[2], expected[2], rtol=1e-9, atol=1e-300, equal_nan=True)
    if not (_agrees(got[0], got[1], expected) and same_aux):
        raise NotFusable("the fused result differs from the NumPy replay's at the recording's theta "
                         "(a gap in the fused writer: the replay runs instead)")
    if type(aux) is not TArray and aux is not None:  # a constant: handed back as the replay does, a copy
        fused_grad = grad
        grad = lambda theta: (*fused_grad(theta), np.array(aux))  # noqa: E731
    forward_source = write(tape, out, forward_only=True)

    def make_forward() -> Callable:
        forward = _build(*forward_source, "forward")
        if not _agrees(_first_call(forward, theta), None, expected):
            raise NotFusable("the fused forward differs from the NumPy replay's at the recording's theta")
        return forward
    grad.source = source
    return grad, make_forward
