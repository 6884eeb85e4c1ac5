"""diffkit: one function, differentiated three ways, refereed by mpmath.

>>> import numpy as np, diffkit as dk
>>> X = np.random.default_rng(0).standard_normal((5, 2))
>>> def loss(theta):
...     xp = dk.namespace(theta)
...     W = xp.reshape(theta[:6], (2, 3))
...     return xp.sum(xp.tanh(X @ W) ** 2)
>>> theta = np.linspace(-1, 1, 6)
>>> r = dk.gradient(loss, theta, method="reverse")
>>> ref = dk.reference(loss, theta, digits=50)
>>> dk.error(r, ref).digits >= 14
True
"""
from __future__ import annotations

from . import backends_array_api, nn, problems  # noqa: F401  (array-API libraries get namespaces from the table)
from .accuracy import ErrorReport, error
from .backends import NotAnalyticError, namespace
from .methods import Cost, GradientResult, register_method
from .api import gradient, methods
from .reference import CertificationError, Reference, reference
from .tape import Function, checkpoint, jvp, vjp
from .tape.compiled import compile  # noqa: A004 (dk.compile, like jax.jit)

__version__ = "0.1.0"

# Names provided by modules that load on first use (heavy imports stay out of `import diffkit`).
_LAZY = {
    "step_sweep": "diffkit.fd_sweep",
    "directional_derivative": "diffkit.finite_differences",
    "fd_jvp": "diffkit.finite_differences",
    "jacobian": "diffkit.higher",
    "hvp": "diffkit.higher",
    "hessian": "diffkit.higher",
    "reference_jacobian": "diffkit.reference_higher",
    "reference_hvp": "diffkit.reference_higher",
    "reference_hessian": "diffkit.reference_higher",
    "BudgetExceeded": "diffkit.symbolic",
    "stability_sweep": "diffkit.stability",
    "testing": "diffkit.testing",
    "studies": "diffkit.studies",
    "report": "diffkit.report",
    "graph": "diffkit.graph",  # a callable module: dk.graph(f, theta)
    "name": "diffkit.graph",
}


def __getattr__(name: str):
    import importlib

    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        return module if module.__name__ == f"diffkit.{name}" else getattr(module, name)
    raise AttributeError(f"module 'diffkit' has no attribute {name!r}")

__all__ = ["namespace", "gradient", "compile", "reference", "error", "methods", "problems", "nn", "vjp", "jvp", "Function",
           "GradientResult", "Cost", "Reference", "ErrorReport", "CertificationError", "NotAnalyticError",
           "register_method", "__version__"]
