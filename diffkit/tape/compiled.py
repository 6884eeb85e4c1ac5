"""``dk.compile``: record ``f`` once, then replay forward and backward (:mod:`.replay`) on any theta.

Guards (a replay is only valid for the path it recorded):

* theta's shape and dtype: one program per (shape, dtype);
* every constant computed from traced values (comparisons, ``argmax``,
  ``floor``, ``bool()`` of a traced scalar: the material of data-dependent
  branches, masks and indices) is recomputed on replay and compared with the
  recorded result; a difference re-records.  A mask that changes with theta
  (``xp.where(z > 0, z, 0)``) therefore re-records on every change; the
  table's own ``relu``/``maximum`` carry their masks inside their rules and
  replay freely.

What it cannot see: a value read out of a tape array with ``.value`` and used
in Python, and data ``f`` reads from outside that is *rebound* between calls
(constants are captured by identity: an array changed in place is seen, a name
pointed at a new array is not; compile again then).  Re-recording is reported to ``on_rerecord(reason)`` (and printed
with ``verbose=True``); the seconds spent recording and generating are kept
apart from run time in :attr:`Compiled.compile_s`.

``fuse=True`` (numba installed) runs each recorded program as one numba-compiled function instead
(:mod:`.fused`), its guards checked inside it; where that cannot be, the NumPy replay runs and
:attr:`Compiled.fuse_reason` says why.  The fused program is timed beside the NumPy replay where f was
recorded, and kept unless the replay is faster (by more than :data:`FUSED_SLOWER`: numpy's loops can win on
large arrays).  A path that keeps changing is fused again at most :data:`MAX_FUSED_RERECORDS` times (each new
path is a numba compile of seconds); later ones replay in NumPy.

>>> import numpy as np, diffkit as dk
>>> def f(t):
...     xp = dk.namespace(t)
...     return xp.sum(xp.tanh(t) * t)
>>> g = dk.compile(f, np.array([0.5, -1.0]))
>>> value, grad = g(np.array([1.0, 2.0]))
>>> bool(np.allclose(grad, dk.gradient(f, np.array([1.0, 2.0])).grad)), g.records
(True, 1)
"""
from __future__ import annotations

import builtins
import math
import time
from typing import Any, Callable

import numpy as np

from .array import TArray
from .core import Tape
from .replay import NotCompilable, Rerecord, generate, probe_fit
from .rewrite import gathers_first

__all__ = ["compile", "Compiled", "CompiledJacobian", "NotCompilable"]


_F64 = np.dtype(np.float64)
# With fuse=True, a path that changes (a guard fails) is fused again this many times; after that the NumPy
# replay runs each new recording: a mask that changes with theta would otherwise cost a numba compile a call.
MAX_FUSED_RERECORDS = 2
# A fused program is kept unless the NumPy replay, timed beside it where f was recorded, is faster by more than
# this factor (on large arrays numpy's own SIMD loops can beat numba's; the margin keeps the choice stable)
FUSED_SLOWER = 1.1


def _scalar(value: Any) -> float:
    return value if type(value) is float else float(value) if type(value) is np.float64 \
        else float(np.reshape(value, ()))


class _Program:
    """One recorded path: its generated functions and what the recording returned."""

    def __init__(self, f: Callable, theta: np.ndarray, has_aux: bool = False, fuse: bool = False):
        tape = Tape(program=True, record_values=True)
        out, aux = f(tape.leaf(theta)), None
        if has_aux:
            if not (type(out) is tuple and len(out) == 2):
                raise ValueError(f"with has_aux=True f must return (scalar, aux); it returned {type(out).__name__}")
            out, aux = out
            if type(aux) is TArray and aux.tape is not tape:
                raise NotCompilable("f's auxiliary output is an array of another tape")
            aux = aux if type(aux) is TArray else np.asarray(aux, dtype=np.float64)
        if type(out) is not TArray or out.tape is not tape:
            raise NotCompilable("f does not depend on theta (its output is not on the tape)")
        if out.shape not in ((), (1,)):
            raise ValueError(f"f must return a scalar; it returned shape {out.shape}")
        rewritten = gathers_first(tape.program, tape.values, (out.index, getattr(aux, "index", -1)))
        if rewritten is not None:  # (.rewrite: the same function, less work)
            tape.program, tape.values, moved = rewritten
            out = TArray(out.value, tape, moved[out.index])
            aux = TArray(aux.value, tape, moved[aux.index]) if type(aux) is TArray else aux
        fits, fresh = {}, set()
        _, probe_src, env = generate(tape, out, aux=aux)
        env["FIT"] = probe_fit(fits, fresh)
        probe = _define(probe_src, "grad", env)
        self.first = probe(theta)  # the probe run: the value and gradient (and aux) at the recording's theta
        fwd_src, self.source, self.env = generate(tape, out, fits, fresh, aux=aux)
        self.grad = _define(self.source, "grad", self.env)
        self.forward_source, self._forward, self._fused_forward = fwd_src, None, None
        self.nodes = len(tape)
        self.fused, self.fuse_reason = False, None
        if fuse:
            from .fused import NotFusable, best_times, fuse as fused_program
            try:
                grad, make_forward = fused_program(tape, out, theta, self.first, aux if has_aux else None)
            except NotFusable as err:
                self.fuse_reason = str(err)
            else:
                fused_s, replay_s = best_times(grad, self.grad, theta)
                if fused_s > FUSED_SLOWER * replay_s:  # (large arrays: numpy's own loops can win)
                    self.fuse_reason = (f"the NumPy replay was faster where f was recorded ({replay_s * 1e3:.3g} ms "
                                        f"against {fused_s * 1e3:.3g} ms fused)")
                else:
                    self.grad, self._fused_forward, self.fused, self.source = grad, make_forward, True, grad.source

    @property
    def forward(self) -> Callable:
        """The value alone (compiled on first use: Python's compiler takes seconds on a program of 1e4 nodes)."""
        if self._forward is None and self._fused_forward is not None:
            from .fused import NotFusable
            try:
                self._forward = self._fused_forward()
            except NotFusable as err:  # (the gradient stays fused; the value alone replays in NumPy)
                self.fuse_reason = f"the forward alone replays in NumPy: {err}"
            self._fused_forward = None
        if self._forward is None:
            self._forward = _define(self.forward_source, "forward", self.env)
        return self._forward


def _define(source: str, name: str, env: dict) -> Callable:
    scope = dict(env)
    exec(builtins.compile(source, f"<dk.compile {name}>", "exec"), scope)  # our own generated text, not user input
    return scope[name]


class Compiled:
    """``g(theta) -> (value, gradient)`` replaying a recorded tape; ``g.value(theta)`` replays the forward.

    ``records`` counts recordings, ``compile_s`` their seconds (recording, code generation, probe run),
    ``reasons`` why each re-recording happened; ``source`` is the generated gradient code.
    """

    def __init__(self, f: Callable, theta: Any = None, *, verbose: bool = False,
                 on_rerecord: Callable[[str], None] | None = None, has_aux: bool = False, fuse: bool = False):
        self.f, self.verbose, self.on_rerecord, self.has_aux, self.fuse = f, verbose, on_rerecord, has_aux, fuse
        self.programs: dict = {}
        self._last = None  # (shape, program, key) of the last float64 call: its fast path
        self.records, self.compile_s, self.reasons = 0, 0.0, []
        self.fused_rerecords = 0  # re-recordings after a guard failed, with fuse=True (see MAX_FUSED_RERECORDS)
        if theta is not None:
            self._record(*self._key(theta), None)

    @staticmethod
    def _key(theta: Any) -> tuple:
        arr = theta if type(theta) is np.ndarray and theta.dtype == np.float64 else np.asarray(theta)
        key = (arr.shape, arr.dtype.str)
        if arr.dtype != np.float64:
            arr = np.asarray(arr, dtype=np.float64)
        return key, arr

    def _record(self, key: tuple, arr: np.ndarray, reason: str | None) -> tuple:
        if reason is not None:
            self.reasons.append(reason)
            if self.on_rerecord is not None:
                self.on_rerecord(reason)
            if self.verbose:
                print(f"dk.compile: re-recording ({reason})")
        start = time.perf_counter()
        fuse = self.fuse
        if fuse and key in self.programs:  # a guard failed: the path through f changed
            self.fused_rerecords += 1
            fuse = self.fused_rerecords <= MAX_FUSED_RERECORDS
        program = self.programs[key] = _Program(self.f, arr, self.has_aux, fuse)
        if self.fuse and not fuse:
            program.fuse_reason = (f"its guards failed {self.fused_rerecords} times (more than "
                                   f"{MAX_FUSED_RERECORDS}): numba would compile each new path again, for seconds")
        self.compile_s += time.perf_counter() - start
        if self._last is not None and self._last[2] == key:  # (the fast path's program is this one now)
            self._last = (self._last[0], program, key)
        if program.fuse_reason is not None and self.verbose:
            print(f"dk.compile: not fused, the NumPy replay runs ({program.fuse_reason})")
        self.records += 1
        return program.first

    def _program(self, theta: Any) -> tuple:
        key, arr = self._key(theta)
        program = self.programs.get(key)
        if program is None:
            why = None if not self.programs else f"theta's shape/dtype {key} was not recorded before"
            return None, arr, key, why
        return program, arr, key, None

    def __call__(self, theta: Any) -> tuple:
        last = self._last
        if type(theta) is np.ndarray and theta.dtype is _F64 and last is not None and theta.shape == last[0]:
            try:  # the steady state: the same shape as the call before, nothing to look up
                out = last[1].grad(theta)
            except Rerecord as err:
                out = self._record(last[2], theta, str(err))
            return (_scalar(out[0]), out[1], out[2]) if self.has_aux else (_scalar(out[0]), out[1])
        program, arr, key, why = self._program(theta)
        if program is not None:
            try:
                out = program.grad(arr)
            except Rerecord as err:
                out = self._record(key, arr, str(err))
        else:
            out = self._record(key, arr, why)
        if type(theta) is np.ndarray and theta.dtype is _F64:
            self._last = (theta.shape, self.programs[key], key)
        return (_scalar(out[0]), out[1], out[2]) if self.has_aux else (_scalar(out[0]), out[1])

    def value(self, theta: Any) -> float:
        last = self._last
        if type(theta) is np.ndarray and theta.dtype is _F64 and last is not None and theta.shape == last[0]:
            try:  # (the same fast path as a gradient call)
                return _scalar(self._forward_of(last[1])(theta))
            except Rerecord as err:
                return _scalar(self._record(last[2], theta, str(err))[0])
        program, arr, key, why = self._program(theta)
        if program is None:
            return self(theta)[0]
        try:
            return _scalar(self._forward_of(program)(arr))
        except Rerecord as err:
            return _scalar(self._record(key, arr, str(err))[0])

    def _forward_of(self, program: _Program) -> Callable:
        """The program's forward; the seconds its first use spends compiling count in ``compile_s``."""
        if program._forward is None:
            start = time.perf_counter()
            forward = program.forward
            self.compile_s += time.perf_counter() - start
            return forward
        return program._forward

    @property
    def fused(self) -> bool:
        """Whether every recorded program runs fused (``fuse=True`` and numba could take each)."""
        return bool(self.programs) and all(p.fused for p in self.programs.values())

    @property
    def fuse_reason(self) -> str | None:
        """Why a program was not fused (None: all were, or fusing was not asked for)."""
        return next((p.fuse_reason for p in self.programs.values() if p.fuse_reason), None)

    @property
    def source(self) -> str:
        return "\n".join(p.source for p in self.programs.values())

    def __repr__(self) -> str:
        return f"<dk.compile of {getattr(self.f, '__name__', self.f)!r}: {self.records} recording(s), " \
               f"{self.compile_s * 1e3:.1f} ms compiling>"


class CompiledJacobian(Compiled):
    """``g(theta) -> (value, jacobian)``: f's Jacobian (shape ``value.shape + theta.shape``, as
    :func:`diffkit.jacobian`'s) recorded once, by forward or reverse mode, and replayed; ``g.modes`` maps
    each recorded theta shape to the mode that ran.

    The recording is the Jacobian's own program (:func:`.jacobian.ad_jacobian` on a traced theta:
    forward mode's batched JVP, or one reverse sweep per output), run as a ``has_aux`` program whose scalar
    is a zero; so guards, re-recording and ``fuse`` work as for a gradient.
    """

    def __init__(self, f: Callable, theta: Any = None, *, mode: str = "auto", batch: int | None = None,
                 **options: Any):
        if mode not in ("auto", "forward", "reverse"):
            raise ValueError(f"unknown Jacobian mode {mode!r} for dk.compile; valid modes: auto, forward, reverse "
                             f"(differences and SymPy have no tape to record: use dk.jacobian)")
        self.modes: dict = {}
        self._shapes: dict = {}  # theta's shape -> the value's shape
        super().__init__(self._recording(f, mode, batch), theta, has_aux=True, **options)

    def _recording(self, f: Callable, mode: str, batch: int | None) -> Callable:
        from ..dispatch import namespace
        from .jacobian import ad_jacobian

        def jacobian_program(t):
            xp = namespace(t)
            shape = tuple(getattr(f(t), "shape", ()))  # (its nodes feed nothing: the replay drops them)
            value, J, chosen, _ = ad_jacobian(f, t, shape, mode, batch)
            self._shapes[tuple(t.shape)], self.modes[tuple(t.shape)] = shape, chosen
            packed = xp.concat([xp.reshape(value, (-1, 1)), xp.reshape(J, (-1, math.prod(t.shape)))], axis=1)
            return xp.sum(t) * 0.0, packed  # (M, 1 + P): the value and J side by side, one aux
        jacobian_program.__name__ = f"the Jacobian of {getattr(f, '__name__', f)}"
        return jacobian_program

    def __call__(self, theta: Any) -> tuple:
        packed = super().__call__(theta)[2]
        shape = np.shape(theta)
        value_shape = self._shapes[shape]
        return packed[:, 0].reshape(value_shape), packed[:, 1:].reshape(value_shape + shape)

    def value(self, theta: Any) -> np.ndarray:
        """f's value (the whole program runs: its forward is the Jacobian's)."""
        return self(theta)[0]


def compile(f: Callable, theta: Any = None, *, verbose: bool = False,
            on_rerecord: Callable[[str], None] | None = None, has_aux: bool = False, fuse: bool = False,
            jacobian: bool | str = False) -> Compiled:  # noqa: A001 (dk.compile, like jax.jit)
    """Record ``f`` at ``theta`` once; the result replays value and gradient at any theta (see the module doc).

    With ``has_aux=True``, ``f`` returns ``(scalar, aux)`` and a call returns ``(value, gradient, aux)``,
    ``aux`` replayed too (an array computed on the way, e.g. an inner gradient; as ``jax``'s ``has_aux``).
    With ``fuse=True`` the replay is one numba-compiled function where numba is installed, the program
    allows, and it is not slower than the NumPy replay where f was recorded (:mod:`diffkit.tape.fused`;
    ``g.fused`` and ``g.fuse_reason`` say whether and why not).
    With ``jacobian=True`` (or a mode: ``"forward"``, ``"reverse"``; ``True`` is ``"auto"``, as
    :func:`diffkit.jacobian`), ``f`` may return an array and a call returns ``(value, jacobian)``: the
    Jacobian's forward- or reverse-mode program recorded and replayed (:class:`CompiledJacobian`; as
    ``jax.jit(jax.jacfwd(f))``).

    >>> import numpy as np, diffkit as dk
    >>> g = dk.compile(lambda t: dk.namespace(t).stack([t[0] * t[1], t[0], t[1]]), np.array([2.0, 5.0]),
    ...                jacobian=True)
    >>> value, J = g(np.array([3.0, 4.0]))
    >>> value.tolist(), J.tolist(), g.modes
    ([12.0, 3.0, 4.0], [[4.0, 3.0], [1.0, 0.0], [0.0, 1.0]], {(2,): 'forward'})
    """
    if jacobian is not False:
        if has_aux:
            raise ValueError("jacobian=True and has_aux=True cannot be combined: the Jacobian takes the aux slot")
        return CompiledJacobian(f, theta, mode="auto" if jacobian is True else jacobian, verbose=verbose,
                                on_rerecord=on_rerecord, fuse=fuse)
    return Compiled(f, theta, verbose=verbose, on_rerecord=on_rerecord, has_aux=has_aux, fuse=fuse)
