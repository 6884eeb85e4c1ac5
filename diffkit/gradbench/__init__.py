"""diffkit as a GradBench tool: the public suite's evals, each function written once against ``dk.namespace``.

GradBench (github.com/gradbench/gradbench) drives a tool over stdin/stdout
with JSON lines: ``start``, ``define {module}``, ``evaluate {module,
function, input}``, each answered with the same ``id``
(:mod:`diffkit.gradbench.protocol`).  ``python -m diffkit.gradbench
--method M`` is that tool; ``M`` is one of
:data:`~diffkit.gradbench.engines.METHOD_CHOICES` (diffkit's tape, its compiled
replay ``compiled`` (``dk.compile``) and that replay fused into one
numba-compiled function ``numba`` (``dk.compile(fuse=True)``), finite differences, complex step,
symbolic, and the peers torch, jax, autograd on the same definitions).

Evals (one module each under ``diffkit.gradbench.evals``): hello, lse, llsq,
det, ode, gmm, kmeans, lstm, ba, ht, and the nested ones (``NESTED``: gradient
descent over gradients) particle and saddle.  Each module's ``inputs`` makes
inputs the way the eval makes them (same seeds, distributions and layouts; ht
and ba, whose evals read ADBench's data files, get seeded data of the files'
shapes).

``diffkit bench --gradbench`` (:mod:`diffkit.gradbench.bench`) times every
eval through the tape, its compiled replay (plain and fused) and the installed peers; the
default report's GradBench section shows its CSV.

>>> from diffkit.gradbench import Tool
>>> Tool("reverse").handle({"id": 7, "kind": "evaluate", "module": "hello", "function": "square",
...                         "input": 3.0})["output"]
9.0
"""
from __future__ import annotations

from .protocol import EVALS, NESTED, Tool, load_eval, serve

__all__ = ["Tool", "EVALS", "NESTED", "load_eval", "serve"]
