"""Forward mode and second derivatives in the peers: ``peer_jvp``, ``peer_hvp``, ``peer_jacobian``.

The same user function (written against ``dk.namespace``) goes to each peer's
own machinery, so that the comparison with ``dk.jvp``/``dk.hvp``/``dk.jacobian``
runs side by side:

========  ====================================  ==============================  ===========================
peer      jvp (forward mode)                    hvp                             jacobian
========  ====================================  ==============================  ===========================
torch     ``torch.func.jvp`` (dual tensors)     ``jvp`` of ``torch.func.grad``  ``jacfwd`` / ``jacrev``
jax       ``jax.jvp``                           ``jax.jvp`` of ``jax.grad``     ``jax.jacfwd`` / ``jacrev``
autograd  ``make_jvp`` (its forward mode,      ``hessian_vector_product``      ``autograd.jacobian``
          JVP nodes)                            (reverse-over-reverse)          (reverse only)
========  ====================================  ==============================  ===========================

Every result is a float64 numpy array.  ``mode`` of ``peer_jacobian`` is
``"forward"`` or ``"reverse"`` (``"auto"``: forward when outputs > inputs).

>>> import numpy as np
>>> f = lambda t: t[0] ** 2 * t[1]
>>> peer_hvp("jax", f, np.array([1.0, 3.0]), np.array([1.0, 0.0])).tolist()
[6.0, 2.0]
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .peers import PEERS, TorchArray, _load_jax_numpy

__all__ = ["peer_jvp", "peer_hvp", "peer_jacobian"]


def _check(name: str) -> None:
    if name not in PEERS:
        raise ValueError(f"unknown peer {name!r}; valid peers: {', '.join(PEERS)}")
    if not PEERS[name].available:
        raise ValueError(f"peer {name!r} is not installed: {PEERS[name].skip_reason()}")


def _torch_fn(f: Callable) -> Callable:
    def g(t):
        out = f(TorchArray(t))
        return out.t if type(out) is TorchArray else out
    return g


def _torch_tensor(x):
    import torch  # noqa: PLC0415
    return torch.tensor(np.asarray(x, dtype=np.float64), dtype=torch.float64)


def _np(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().numpy()
    return np.array(x, dtype=np.float64)


def peer_jvp(name: str, f: Callable, theta: Any, v: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(f(theta), J v)`` by the peer's own forward mode."""
    _check(name)
    theta, v = np.asarray(theta, dtype=np.float64), np.asarray(v, dtype=np.float64)
    if name == "torch":
        import torch.func  # noqa: PLC0415
        value, tangent = torch.func.jvp(_torch_fn(f), (_torch_tensor(theta),), (_torch_tensor(v),))
    elif name == "jax":
        import jax  # noqa: PLC0415
        _load_jax_numpy()
        value, tangent = jax.jvp(f, (theta,), (v,))
    else:
        from autograd.differential_operators import make_jvp  # noqa: PLC0415
        value, tangent = make_jvp(f)(theta)(v)
    return _np(value), _np(tangent)


def peer_hvp(name: str, f: Callable, theta: Any, v: Any) -> np.ndarray:
    """H v: forward-over-reverse in torch and jax, reverse-over-reverse in autograd."""
    _check(name)
    theta, v = np.asarray(theta, dtype=np.float64), np.asarray(v, dtype=np.float64)
    if name == "torch":
        import torch.func  # noqa: PLC0415
        _, hv = torch.func.jvp(torch.func.grad(_torch_fn(f)), (_torch_tensor(theta),), (_torch_tensor(v),))
    elif name == "jax":
        import jax  # noqa: PLC0415
        _load_jax_numpy()
        _, hv = jax.jvp(jax.grad(f), (theta,), (v,))
    else:
        from autograd import hessian_vector_product  # noqa: PLC0415
        hv = hessian_vector_product(f)(theta, v)
    return _np(hv)


def peer_jacobian(name: str, f: Callable, theta: Any, mode: str = "auto") -> tuple[np.ndarray, str]:
    """``(J, mode used)``, J of shape ``f.shape + theta.shape``; autograd has reverse mode only."""
    _check(name)
    if mode not in ("auto", "forward", "reverse"):
        raise ValueError(f"unknown mode {mode!r}; valid modes: auto, forward, reverse")
    theta = np.asarray(theta, dtype=np.float64)
    if mode == "auto":
        mode = "forward" if np.size(f(theta)) > theta.size else "reverse"  # f on numpy: diffkit's namespace
    if name == "torch":
        import torch.func  # noqa: PLC0415
        jac = (torch.func.jacfwd if mode == "forward" else torch.func.jacrev)(_torch_fn(f))(_torch_tensor(theta))
    elif name == "jax":
        import jax  # noqa: PLC0415
        _load_jax_numpy()
        jac = (jax.jacfwd if mode == "forward" else jax.jacrev)(f)(theta)
    else:
        import autograd  # noqa: PLC0415
        jac, mode = autograd.jacobian(f)(theta), "reverse"
    return _np(jac), mode
