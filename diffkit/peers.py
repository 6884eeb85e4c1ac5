"""Peer methods: PyTorch, JAX and HIPS autograd differentiate the *same* user function.

``pip install 'diffkit[peers]'`` adds three methods to :func:`diffkit.gradient`:

==========  ====================================================================
method      what runs
==========  ====================================================================
torch       ``torch`` autograd on CPU, float64: one forward, ``out.backward()``
jax         ``jax.jit(jax.value_and_grad(f))`` with x64 enabled and synchronous CPU
            dispatch; the first call (trace + compile) is timed apart from a
            second, steady-state call
autograd    HIPS ``autograd.value_and_grad(f)``
==========  ====================================================================

The user function asks ``xp = dk.namespace(theta)`` as always.  Here each peer's
arrays get a numpy-style namespace (built on ``array_api_compat`` for torch,
``jax.numpy`` for jax, ``autograd.numpy`` for autograd) whose ``fused`` table is
empty, so :mod:`diffkit.nn` runs the shared stable formulas of
:mod:`diffkit.formulas` and the peer differentiates their decomposition.
Constant numpy arrays mix with peer arrays (``X @ W``): jax and autograd accept
them, and torch tensors travel in a thin :class:`TorchArray` wrapper that turns
numpy operands into tensors (``torch.from_numpy``, no copy).

A peer is listed by :func:`diffkit.methods` as available when its packages are
installed (found by ``importlib.util.find_spec``); it is imported on first use
only, because importing torch and jax takes seconds.  Peer results are
ordinary :class:`~diffkit.GradientResult` objects, so they go through the
same reference, errors and cost records as diffkit's own methods.

>>> import diffkit as dk  # with the peers extra; the test run skips this example without torch (conftest.py)
>>> dk.gradient(dk.problems.seed_circuit(), method="torch").grad.tolist()
[-4.0, -4.0, 3.0]
"""
from __future__ import annotations

import importlib
import importlib.util
import operator
import sys
import time
import types
import weakref
from typing import Any, Callable

import numpy as np

from .backends import register_backend
from .methods import MethodOutput, register_method

__all__ = ["PEERS", "Peer", "TorchArray", "available", "HINT"]

HINT = "pip install 'diffkit[peers]'  (torch==2.13.0 CPU, jax, autograd, array-api-compat)"


def _installed(*modules: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in modules)


def _module_of(name: str) -> Any:
    """The module if it is already imported (a peer array can only exist then), else None."""
    return sys.modules.get(name)


class PeerNamespace:
    """Numpy-style names over a peer's array functions, loaded on first use.

    ``fused`` is empty: the activations and costs of :mod:`diffkit.nn` run the
    shared stable formulas.  ``aliases`` maps numpy names to the peer's names;
    ``wrap`` adapts each function (torch: unwrap/re-wrap :class:`TorchArray`).
    """

    fused: dict = {}

    def __init__(self, name: str, load: Callable[[], Any], aliases: dict | None = None,
                 wrap: Callable[[Callable], Callable] | None = None):
        self.name = name
        self._load = load
        self._aliases = aliases or {}
        self._wrap = wrap
        self._module = None

    def __getattr__(self, op: str):
        if op.startswith("_"):
            raise AttributeError(op)
        if self._module is None:
            self._module = self._load()
        target = self._aliases.get(op, op)
        fn = target if callable(target) else getattr(self._module, target, None)
        if fn is None:
            raise NotImplementedError(f"op {op!r} is not available in the {self.name} backend (diffkit.peers); "
                                      f"compose it from the ops it has")
        if self._wrap is not None and isinstance(fn, types.ModuleType):  # xp.linalg: its functions adapted too
            fn = PeerNamespace(f"{self.name}.{op}", lambda module=fn: module, wrap=self._wrap)
        elif self._wrap is not None and callable(fn):
            fn = self._wrap(fn)
        setattr(self, op, fn)  # resolve each name once
        return fn

    def __repr__(self) -> str:
        return f"<diffkit namespace {self.name!r}>"


# --- torch: tensors in a thin wrapper so that numpy constants mix with them -------------------

def _t(x: Any) -> Any:
    """The tensor of a TorchArray; numpy arrays as tensors (no copy); numbers unchanged."""
    if type(x) is TorchArray:
        return x.t
    if isinstance(x, np.ndarray):
        return _module_of("torch").from_numpy(x)
    if isinstance(x, (list, tuple)):
        return type(x)(_t(v) for v in x)
    return x


def _w(x: Any) -> Any:
    """Tensors in results (also inside the named tuples of eigh, svd, qr, slogdet) as TorchArrays."""
    torch = _module_of("torch")
    if isinstance(x, torch.Tensor):
        return TorchArray(x)
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return type(x)(*[_w(v) for v in x])
    return x


def _torch_wrap(fn: Callable) -> Callable:
    def call(*args, **kwargs):
        return _w(fn(*[_t(a) for a in args], **kwargs))
    return call


def _binary(op: Callable, reflected: bool = False) -> Callable:
    if reflected:
        return lambda self, other: TorchArray(op(_t(other), self.t))
    return lambda self, other: TorchArray(op(self.t, _t(other)))


class TorchArray:
    """A torch tensor that numpy defers to (``ndarray @ TorchArray`` works); ``.t`` is the tensor."""

    __slots__ = ("t",)
    __array_ufunc__ = None

    def __init__(self, t: Any):
        self.t = t

    shape = property(lambda self: tuple(self.t.shape))
    ndim = property(lambda self: self.t.dim())
    size = property(lambda self: self.t.numel())
    dtype = property(lambda self: self.t.dtype)
    T = property(lambda self: TorchArray(self.t.permute(*reversed(range(self.t.dim())))))

    __add__, __radd__ = _binary(operator.add), _binary(operator.add, True)
    __sub__, __rsub__ = _binary(operator.sub), _binary(operator.sub, True)
    __mul__, __rmul__ = _binary(operator.mul), _binary(operator.mul, True)
    __truediv__, __rtruediv__ = _binary(operator.truediv), _binary(operator.truediv, True)
    __matmul__, __rmatmul__ = _binary(operator.matmul), _binary(operator.matmul, True)
    __pow__, __rpow__ = _binary(operator.pow), _binary(operator.pow, True)
    __lt__, __le__ = _binary(operator.lt), _binary(operator.le)
    __gt__, __ge__ = _binary(operator.gt), _binary(operator.ge)
    __eq__, __ne__ = _binary(operator.eq), _binary(operator.ne)
    __hash__ = object.__hash__

    def __neg__(self): return TorchArray(-self.t)
    def __pos__(self): return self
    def __abs__(self): return TorchArray(self.t.abs())
    def __len__(self): return len(self.t)
    def __bool__(self): return bool(self.t)
    def __getitem__(self, index): return TorchArray(self.t[_t(index)])
    def __repr__(self): return f"TorchArray({self.t!r})"

    def reshape(self, *shape):
        return TorchArray(self.t.reshape(shape[0] if len(shape) == 1 else shape))

    def sum(self, axis=None, keepdims=False): return TORCH.sum(self, axis=axis, keepdims=keepdims)
    def mean(self, axis=None, keepdims=False): return TORCH.mean(self, axis=axis, keepdims=keepdims)
    def max(self, axis=None, keepdims=False): return TORCH.max(self, axis=axis, keepdims=keepdims)


def _load_torch_namespace():
    import array_api_compat.torch as xp  # noqa: PLC0415  (heavy: imported on first use)
    return xp


def _torch_transpose(x, axes=None):
    t = _t(x)
    return TorchArray(t.permute(*(reversed(range(t.dim())) if axes is None else axes)))


TORCH = PeerNamespace("torch", _load_torch_namespace, aliases={
    "concatenate": "concat", "power": "pow", "true_divide": "divide",
}, wrap=_torch_wrap)
TORCH.transpose = _torch_transpose  # already adapted; not to be wrapped again


def _load_jax_numpy():
    import jax  # noqa: PLC0415
    jax.config.update("jax_enable_x64", True)  # float64 everywhere, as diffkit's other methods
    # Run each call on the calling thread, as numpy and torch do: with asynchronous dispatch a small jitted
    # gradient waits for a hand-off to XLA's worker thread, which on a busy 2-core machine costs up to 10x the
    # computation itself (0.1 ms -> 1 ms at P = 1e3) and would be timed as JAX's cost.
    if "jax_cpu_enable_async_dispatch" in jax.config.values:
        jax.config.update("jax_cpu_enable_async_dispatch", False)
    import jax.numpy as jnp  # noqa: PLC0415
    return jnp


def _load_autograd_numpy():
    import autograd.numpy as anp  # noqa: PLC0415
    return anp


def _slices(ndim: int, axis: Any, part: slice) -> tuple:
    axes = range(ndim) if axis is None else [a % ndim for a in (axis if isinstance(axis, tuple) else (axis,))]
    return tuple(part if i in axes else slice(None) for i in range(ndim))


def _autograd_take(x, indices, axis=None):
    if axis is None:
        return x.reshape(-1)[indices] if hasattr(x, "reshape") else np.ravel(x)[indices]
    return x[(slice(None),) * (axis % np.ndim(x)) + (indices,)]


# autograd.numpy wraps numpy 2's array-API names (concat, matrix_transpose, flip, take, cumulative_sum...) as
# primitives without a derivative: concat of a list of boxes even returns an object array of boxes, which fails
# far from its cause.  These are the same ops spelled with the functions autograd differentiates.
_AUTOGRAD_SPELLINGS = {
    "concat": lambda arrays, axis=0: _module_of("autograd.numpy").concatenate(arrays, axis=axis),
    "matrix_transpose": lambda x: _module_of("autograd.numpy").swapaxes(x, -1, -2),
    "flip": lambda x, axis=None: x[_slices(np.ndim(x), axis, slice(None, None, -1))],
    "take": _autograd_take,
    "cumulative_sum": lambda x, axis=None: _module_of("autograd.numpy").cumsum(x, axis=axis),
    "positive": lambda x: x,
}

JAX = PeerNamespace("jax", _load_jax_numpy)
AUTOGRAD = PeerNamespace("autograd", _load_autograd_numpy, aliases=_AUTOGRAD_SPELLINGS)


def _is_jax(x: Any) -> bool:
    jax = _module_of("jax")
    return jax is not None and isinstance(x, jax.Array)  # tracers under jit and grad are jax.Arrays too


def _is_autograd(x: Any) -> bool:
    tracer = _module_of("autograd.tracer")
    return tracer is not None and isinstance(x, tracer.Box)


register_backend("torch", lambda x: type(x) is TorchArray, TORCH)
register_backend("jax", _is_jax, JAX)
register_backend("autograd", _is_autograd, AUTOGRAD)


# --- the peers: prepare once (compile), then call -----------------------------------------------

class Peer:
    """How one peer differentiates: ``prepare(f)`` returns ``grad(theta) -> (value, grad)``.

    ``forward(f)`` returns the peer's own forward ``theta -> value`` (for the
    benchmark's forward column).  ``modules`` are the packages it needs.
    """

    def __init__(self, name: str, modules: tuple, prepare: Callable, forward: Callable, summary: str):
        self.name, self.modules, self.prepare, self.forward, self.summary = name, modules, prepare, forward, summary

    @property
    def available(self) -> bool:
        return _installed(*self.modules)

    def skip_reason(self) -> str:
        missing = [m for m in self.modules if importlib.util.find_spec(m) is None]
        return f"not installed ({', '.join(missing)}): {HINT}" if missing else ""


def _match_blas_threads(torch: Any) -> None:
    """Give torch's own thread pool numpy's BLAS thread count, once, when diffkit first uses torch.

    A study fixes BLAS threads (threadpoolctl) before torch is imported, so
    the limit misses torch's pool; on a busy 2-core machine its 2 OpenMP
    threads then wait on each other, and a 0.5 ms gradient takes ~300 ms.
    """
    global _TORCH_THREADS_SET
    if _TORCH_THREADS_SET:
        return
    _TORCH_THREADS_SET = True
    try:
        from threadpoolctl import threadpool_info  # noqa: PLC0415
    except ImportError:
        return
    counts = {p["num_threads"] for p in threadpool_info() if p.get("user_api") == "blas"}
    if len(counts) == 1:
        torch.set_num_threads(counts.pop())


_TORCH_THREADS_SET = False


def _torch_prepare(f: Callable) -> Callable:
    import torch  # noqa: PLC0415
    _match_blas_threads(torch)

    def grad(theta):
        t = torch.tensor(np.asarray(theta, dtype=np.float64), dtype=torch.float64, requires_grad=True)
        out = f(TorchArray(t))
        out_t = out.t if type(out) is TorchArray else out
        out_t.backward()
        g = t.grad
        return float(out_t.detach()), (np.zeros_like(theta) if g is None else g.numpy())
    return grad


def _torch_forward(f: Callable) -> Callable:
    import torch  # noqa: PLC0415

    def forward(theta):
        with torch.no_grad():
            out = f(TorchArray(torch.from_numpy(np.asarray(theta, dtype=np.float64))))
        return float(out.t if type(out) is TorchArray else out)
    return forward


def _jax_prepare(f: Callable) -> Callable:
    import jax  # noqa: PLC0415
    _load_jax_numpy()
    compiled = jax.jit(jax.value_and_grad(f))

    def grad(theta):
        value, g = compiled(theta)
        return float(value), np.array(g)  # waits for the result (block_until_ready); a writable copy
    return grad


def _jax_forward(f: Callable) -> Callable:
    import jax  # noqa: PLC0415
    _load_jax_numpy()
    compiled = jax.jit(f)
    return lambda theta: float(compiled(theta))


def _autograd_prepare(f: Callable) -> Callable:
    import autograd  # noqa: PLC0415
    vg = autograd.value_and_grad(f)

    def grad(theta):
        value, g = vg(np.asarray(theta, dtype=np.float64))
        return float(value), np.asarray(g, dtype=np.float64)
    return grad


def _numpy_forward(f: Callable) -> Callable:
    return lambda theta: float(f(np.asarray(theta, dtype=np.float64)))  # autograd's forward is numpy's


PEERS: dict[str, Peer] = {
    "torch": Peer("torch", ("torch", "array_api_compat"), _torch_prepare, _torch_forward,
                  "PyTorch autograd (CPU, float64) on the same function"),
    "jax": Peer("jax", ("jax", "jaxlib"), _jax_prepare, _jax_forward,
                "jax.jit(jax.value_and_grad(f)), x64; compile timed apart"),
    "autograd": Peer("autograd", ("autograd",), _autograd_prepare, _numpy_forward,
                     "HIPS autograd value_and_grad on the same function"),
}


def available() -> list[str]:
    """Names of the peers whose packages are installed."""
    return [name for name, peer in PEERS.items() if peer.available]


# jax.jit compiles per function: keep the compiled gradient per user function (by identity, as jax.jit's own
# cache does), so that repeated dk.gradient calls time the steady state and compile once.
_COMPILED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _run_peer(name: str, f: Callable, theta: np.ndarray) -> MethodOutput:
    peer = PEERS[name]
    base = getattr(f, "fn", f)  # dk.gradient hands a counting wrapper; the user's function is its .fn
    cached = name == "jax" and base in _COMPILED
    start = time.perf_counter()
    grad_fn = _COMPILED[base] if cached else peer.prepare(f)
    value, g = grad_fn(theta)
    first = time.perf_counter() - start
    counters = {"first_call_s": first}
    if name == "jax":  # a first call traces and compiles; a second call is the steady state
        _COMPILED[base] = grad_fn
        start = time.perf_counter()
        value, g = grad_fn(theta)
        counters = {"compile_s": 0.0 if cached else first, "steady_s": time.perf_counter() - start,
                    "cached": int(cached)}
    return MethodOutput(value, np.reshape(g, np.shape(theta)), counters, evaluations=1)


def _register(name: str) -> None:
    peer = PEERS[name]

    def run(f, theta):
        return _run_peer(name, f, theta)
    run.__doc__ = peer.summary
    register_method(name, "peer", peer.summary, available=peer.available, hint=peer.skip_reason())(run)


for _name in PEERS:
    _register(_name)
