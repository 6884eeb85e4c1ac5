"""How each ``--method`` evaluates and differentiates an eval's function.

An :class:`Engine` turns one function ``f(theta)`` (written once against
``xp = dk.namespace(theta)``) into three prepared callables:

* ``primal(f)(theta)``: the function's value (an array, any shape);
* ``gradient(f)(theta)``: the gradient of a scalar ``f``;
* ``grad_hvp(f)(theta, v)``: the gradient and the Hessian-vector product ``H v``
  (kmeans' Newton direction needs the Hessian's diagonal): for the tape,
  ``dk.hvp`` (forward over reverse); for forward_ad, forward over forward;
  for the other methods a central difference of their own gradient along v;
  the peers' own double derivatives.

diffkit's own methods go through :func:`diffkit.gradient` (what a user runs)
and evaluate the primal on numpy arrays.  The peers (torch, jax, autograd)
use the preparation of :mod:`diffkit.peers`, so that jax compiles once per
prepared function, and evaluate the primal in the peer itself.

``compiled`` is the tape through ``dk.compile``: the first call records
the function and generates its replay (:mod:`diffkit.tape.replay`), later
calls replay it; the seconds spent compiling are kept on the prepared
engine (``compile_ns``) so that the tool reports them apart from the
steady-state calls.  Its HVP compiles the nested gradient, whose replay
also returns the inner gradient (``has_aux``): one program for both.  Its
primal is the replayed forward where the function is scalar.

A method that cannot run here (a peer that is not installed, a replay of a
nested gradient) raises :class:`MethodUnavailable`, whose message says what is
missing and which methods there are; the tool turns it into an error response.

>>> import numpy as np
>>> engine = engine_for("reverse")
>>> engine.gradient(lambda t: (t * t).sum())(np.array([1.0, -2.0])).tolist()
[2.0, -4.0]
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

import diffkit as dk
from diffkit.methods import METHODS
from diffkit.api import _load_methods
from diffkit.tape.replay import NotCompilable

__all__ = ["Engine", "CompiledGradient", "MethodUnavailable", "engine_for", "METHOD_CHOICES", "PEER_METHODS"]

# The tool's --method choices: diffkit's own differentiators, then the peers on the same definitions.
METHOD_CHOICES = ("reverse", "compiled", "numba", "forward_ad", "central", "complex_step", "symbolic", "torch", "jax", "autograd")
PEER_METHODS = ("torch", "jax", "autograd")


class MethodUnavailable(RuntimeError):
    """The selected method cannot run here (not in this diffkit, or its packages are not installed)."""


def _as_array(out: Any) -> np.ndarray:
    return np.asarray(out, dtype=np.float64)


class Engine:
    """The prepared callables of one method (see the module docstring)."""

    def __init__(self, method: str):
        self.method = method
        self.compile_ns = 0  # nanoseconds spent compiling so far (dk.compile; 0 for the eager methods)
        self.notes: set = set()  # what a bench row should say beside its numbers (a replay that was not fused)

    def primal(self, f: Callable) -> Callable:
        return lambda theta: _as_array(f(theta))

    def gradient(self, f: Callable) -> Callable:
        method = self.method
        return lambda theta: dk.gradient(f, theta, method=method).grad

    def jacobian(self, f: Callable) -> Callable:
        """``jacobian(f)(theta)``: the (outputs, inputs) Jacobian of a vector-valued ``f`` (ht's residuals)."""
        modes = {"reverse": "auto", "forward_ad": "forward", "symbolic": "symbolic"}
        if self.method in modes:
            mode = modes[self.method]
            return lambda theta: dk.jacobian(f, theta, mode=mode).jacobian
        method = self.method  # a difference method: one directional stencil per input
        return lambda theta: np.stack([dk.fd_jvp(f, theta, e, method=method) for e in np.eye(theta.size)], axis=1)

    def grad_hvp(self, f: Callable) -> Callable:
        """``(grad f, H v)``: the method's own gradient, and its derivative along v by the method's own means
        where they nest (reverse: forward over reverse, ``dk.hvp``; forward_ad: forward over forward), else by a
        central difference of that gradient along v: the difference methods; the complex step, whose i would
        meet itself at a second level; symbolic, whose second derivative of kmeans' ``min`` SymEngine leaves
        unevaluated (``Derivative(min(...))``), which it cannot compile."""
        method, gradient = self.method, self.gradient(f)
        if method == "reverse":
            return lambda theta, v: (lambda r: (r.grad, r.hvp))(dk.hvp(f, theta, v))
        if method == "forward_ad":
            def forward_over_forward(theta, v):
                g, hv = dk.jvp(lambda t: dk.gradient(f, t, method="forward_ad").grad, theta, v)
                return _as_array(g), _as_array(hv)
            return forward_over_forward
        return lambda theta, v: (gradient(theta), _as_array(dk.fd_jvp(gradient, theta, v, method="central")))


class _TorchEngine(Engine):
    def primal(self, f):
        import torch  # noqa: PLC0415
        from diffkit.peers import TorchArray  # noqa: PLC0415

        def run(theta):
            with torch.no_grad():
                out = _tensor(f(TorchArray(torch.from_numpy(theta))))
            return out.numpy() if isinstance(out, torch.Tensor) else _as_array(out)
        return run

    def gradient(self, f):
        grad = dk.peers.PEERS["torch"].prepare(f)
        return lambda theta: grad(theta)[1]

    def jacobian(self, f):
        import torch  # noqa: PLC0415
        from diffkit.peers import TorchArray  # noqa: PLC0415
        return lambda theta: torch.autograd.functional.jacobian(
            lambda t: _tensor(f(TorchArray(t))), torch.from_numpy(np.asarray(theta, dtype=np.float64))).numpy()

    def grad_hvp(self, f):
        import torch  # noqa: PLC0415
        from diffkit.peers import TorchArray  # noqa: PLC0415

        def run(theta, v):
            t = torch.tensor(theta, dtype=torch.float64, requires_grad=True)
            (g,) = torch.autograd.grad(_tensor(f(TorchArray(t))), t, create_graph=True)
            (hv,) = torch.autograd.grad(g, t, grad_outputs=torch.from_numpy(np.asarray(v, dtype=np.float64)))
            return g.detach().numpy(), hv.numpy()
        return run


def _tensor(out: Any) -> Any:
    """The tensor inside a TorchArray (a function may also return a plain number)."""
    from diffkit.peers import TorchArray  # noqa: PLC0415
    return out.t if type(out) is TorchArray else out


def _jax():
    """jax with float64 enabled (diffkit.peers turns x64 on when it loads jax.numpy), before anything compiles."""
    from diffkit.peers import _load_jax_numpy  # noqa: PLC0415
    _load_jax_numpy()
    import jax  # noqa: PLC0415
    return jax


class _JaxEngine(Engine):
    def primal(self, f):
        compiled = _jax().jit(f)
        return lambda theta: np.asarray(compiled(theta), dtype=np.float64)

    def gradient(self, f):
        _jax()
        grad = dk.peers.PEERS["jax"].prepare(f)
        return lambda theta: grad(theta)[1]

    def jacobian(self, f):
        compiled = _jax().jit(_jax().jacfwd(f))
        return lambda theta: np.asarray(compiled(theta), dtype=np.float64)

    def grad_hvp(self, f):
        jax = _jax()
        compiled = jax.jit(lambda theta, v: jax.jvp(jax.grad(f), (theta,), (v,)))
        return lambda theta, v: tuple(np.asarray(a, dtype=np.float64) for a in compiled(theta, v))


class _AutogradEngine(Engine):
    def gradient(self, f):
        grad = dk.peers.PEERS["autograd"].prepare(f)
        return lambda theta: grad(theta)[1]

    def jacobian(self, f):
        import autograd  # noqa: PLC0415
        jac = autograd.jacobian(f)  # one forward, one reverse sweep per output
        return lambda theta: np.asarray(jac(theta), dtype=np.float64)

    def grad_hvp(self, f):
        import autograd  # noqa: PLC0415
        grad, hvp = autograd.grad(f), autograd.hessian_vector_product(f)
        return lambda theta, v: (np.asarray(grad(theta)), np.asarray(hvp(theta, v)))


class CompiledGradient:
    """``gradient(theta)`` of ``f`` replayed by ``dk.compile`` (compiled on the first call); ``replay`` returns
    what the compiled call returns.  Seconds spent recording and generating (re-recordings included) add to
    ``engine.compile_ns``."""

    def __init__(self, f: Callable, engine: "Engine", has_aux: bool = False, jacobian: bool = False):
        self.f, self.engine, self.has_aux, self.jacobian, self.compiled = f, engine, has_aux, jacobian, None

    def replay(self, theta):
        fuse = self.engine.method == "numba"
        if self.compiled is None:
            self.compiled = dk.compile(self.f, has_aux=self.has_aux, fuse=fuse, jacobian=self.jacobian)
        return self._counted(self.compiled, theta)

    def value(self, theta):
        """The replayed forward alone (recorded first, if no gradient call has recorded it yet)."""
        if self.compiled is None:
            self.replay(theta)
        return self._counted(self.compiled.value, theta)

    def _counted(self, call, theta):
        """``call(theta)``; the seconds it spends recording or compiling add to ``engine.compile_ns``."""
        before = self.compiled.compile_s
        out = call(theta)
        if self.compiled.compile_s != before:
            self.engine.compile_ns += int((self.compiled.compile_s - before) * 1e9)
            if self.engine.method == "numba" and self.compiled.fuse_reason:
                self.engine.notes.add(f"not fused, the NumPy replay ran: {self.compiled.fuse_reason}")
        return out

    def __call__(self, theta):
        return self.replay(theta)[1]


class _CompiledEngine(Engine):
    def primal(self, f):
        """The replayed forward (``Compiled.value``) of a scalar ``f``, numpy's for any other: the replay folds
        what depends on the data alone, so its gradient is divided by its own forward, not numpy's."""
        numpy_primal, state = super().primal(f), {}

        def run(theta):
            compiled = state.get("compiled")
            if compiled is None:
                try:
                    compiled = CompiledGradient(f, self)
                    compiled.replay(theta)  # records (its seconds go to compile_ns)
                except (ValueError, NotCompilable):  # a vector-valued primal (ode's y, ba's errors)
                    compiled = False
                state["compiled"] = compiled
            return numpy_primal(theta) if compiled is False else _as_array(compiled.value(theta))
        return run

    def gradient(self, f):
        return CompiledGradient(f, self)

    def jacobian(self, f):
        """``dk.compile(f, jacobian=True)``: the Jacobian's forward- or reverse-mode program, replayed."""
        return CompiledGradient(f, self, jacobian=True)

    def grad_hvp(self, f):
        hvps: dict = {}

        def run(theta, v):
            key = id(v)
            if key not in hvps:
                def directional(t, v=v):  # <grad f, v>, whose gradient is H v; grad f itself comes out as aux
                    d = dk.vjp(f, t)[1](1.0)
                    return dk.namespace(t).sum(d * v), d
                hvps[key] = (CompiledGradient(directional, self, has_aux=True), v)  # (v kept: its id stays its own)
            _, hv, grad = hvps[key][0].replay(theta)
            return grad, hv
        return run


_PEER_ENGINES = {"torch": _TorchEngine, "jax": _JaxEngine, "autograd": _AutogradEngine}


def engine_for(method: str) -> Engine:
    """The engine of ``method``, or :class:`MethodUnavailable` saying why it cannot run here."""
    if method not in METHOD_CHOICES:
        raise MethodUnavailable(f"unknown method {method!r}; choose one of: {', '.join(METHOD_CHOICES)}")
    if method in ("compiled", "numba"):
        if method == "numba":
            from ..tape.fused import available  # noqa: PLC0415
            if not available():
                raise MethodUnavailable("method 'numba' (dk.compile(fuse=True)) needs numba: pip install numba, "
                                        "or diffkit's 'fast' extra")
        return _CompiledEngine(method)
    _load_methods()
    spec = METHODS.get(method)
    if spec is None:
        have = ", ".join(m for m in METHOD_CHOICES if m in METHODS and METHODS[m].available)
        raise MethodUnavailable(f"method {method!r} is not a dk.gradient method in this diffkit yet (the forward-"
                                f"mode gradient arrives with the forward-mode issue); methods that run here: {have}")
    if not spec.available:
        raise MethodUnavailable(f"method {method!r} is not available here: {spec.hint}")
    if method in _PEER_ENGINES:
        import diffkit.peers  # noqa: F401, PLC0415  (registers the peers' namespaces)
        return _PEER_ENGINES[method](method)
    return Engine(method)
