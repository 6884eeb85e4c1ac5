"""The tape's per-node bookkeeping in C (``diffkit.tape._ctape``), where the optional extension was built.

Three parts, each the twin of a Python reference that stays, and runs where no C compiler built the extension:

- **the sweep's loop**: :meth:`diffkit.tape.Tape.backward` runs it when nothing watches the sweep (no
  ``on_edge``, no anomaly mode); the reference is the loop in :mod:`.core`;
- **the one-call recorder** of each primitive on a plain numpy tape, and the tape array's three fields as a C
  struct it fills directly; the reference is :func:`.plans.fast_recorder`'s generated function;
- **views** of a tape array (``x[a:b]``, ``x[i, a:b]``, and a reshape of a slice): the references are
  :func:`.levels.index_view` and :func:`.levels.reshape_view`.

Each takes the same steps in the same order as its reference, so the nodes and the gradients are the same,
bit for bit (tested).  The rules and the forwards stay Python and numpy: only the loop and the bookkeeping
around them (reading a node's links, fitting a contribution's shape, adding into an accumulator in place when
it is ours; picking the tape, building the node) are compiled, ~0.9 µs of bytecode per node in the sweep and
~0.5 µs in the recording.

``DIFFKIT_PURE_PYTHON=1`` in the environment turns all three off at import; ``use(False)`` turns the loop off.

>>> from diffkit.tape import native
>>> native.loop() in ("C", "Python")
True
"""
from __future__ import annotations

import functools
import os
from typing import Any

import numpy as np

from ..primitives import PRIMITIVES
from .plans import _SHAPES as SHAPES, _shared_shape as share_shape, fill_unwritten, joint_links, one_call, reads, \
    scatter, unbroadcast

__all__ = ["loop", "use", "sweep", "ArrayFields", "recorder", "views"]

try:
    from . import _ctape
    _ctape.configure(np.ndarray, np.dtype(np.float64), np.float64, SHAPES, share_shape)
except ImportError:  # not built (no C compiler at install): the Python loop runs
    _ctape = None
if os.environ.get("DIFFKIT_PURE_PYTHON"):
    _ctape = None

_state = {"on": _ctape is not None}


def loop() -> str:
    """Which loop sweeps: ``"C"`` or ``"Python"``."""
    return "C" if _state["on"] else "Python"


def use(on: bool) -> bool:
    """Sweep with the C loop (``True``, where it is built) or the Python one; returns the previous choice."""
    was = _state["on"]
    _state["on"] = bool(on) and _ctape is not None
    return was


def _special(prim: Any) -> int:  # nodes that leave the C loop's links: 1 a view's scatter, 2 a joint rule
    return 1 if prim.scatter else 2 if prim.joint is not None else 0


def sweep(xp: Any, nodes: list, grads: list, owned: list, unwritten: dict, start: int, retain: bool) -> bool:
    """Run the sweep from node ``start`` down in C; False (nothing done) where the C loop is off."""
    if not _state["on"]:
        return False

    def on_special(i: int, node: tuple, g: Any) -> Any:
        if node[0].scatter:
            scatter(xp, grads, owned, i, node, g, None, unwritten)
            return None
        return joint_links(node, g)

    _ctape.sweep(nodes, grads, owned, unwritten, start, retain, _special, on_special,
                 functools.partial(unbroadcast, xp), fill_unwritten)
    return True


class _Fields:
    """A tape array's fields in Python: the stand-in for the C struct ``_ctape.TArrayFields``."""

    __slots__ = ("value", "tape", "index")

    def __init__(self, value: Any, tape: Any, index: int):
        self.value = value
        self.tape = tape
        self.index = index


ArrayFields = _Fields if _ctape is None else _ctape.TArrayFields  # TArray's base: (value, tape, index)
_KINDS = {"input": 0, "shape": 1, "ans": 2, "xp": 3, "res": 4, "param": 5}


def recorder(prim: Any, apply: Any, numpy_ns: Any, tarray: type, tracers: dict, multiply: Any) -> Any:
    """The C twin of :func:`.plans.fast_recorder` (the same arguments, the same cover), or None where the
    extension is not built or does not cover ``prim``."""
    if _ctape is None or not issubclass(tarray, _ctape.TArrayFields) or not one_call(prim):
        return None
    n = len(prim.inputs)
    links = []
    for rule, names in zip(prim.vjps[:n], prim.rule_args):
        spec = []
        for name in names:
            kind, k = reads(prim, name, n)  # (a param's k is its name)
            spec.append((_KINDS[kind], 0, name, prim.params[name]) if kind == "param" else
                        (_KINDS[kind], k or 0, name, None))
        links.append((rule, tuple(spec)))
    same = recorder(PRIMITIVES["square"], apply, numpy_ns, tarray, tracers, multiply) if prim is multiply else None
    positional = tuple(prim.params) if prim.params and not prim.variadic else None  # (xp.sum(x, 1), as numpy)
    return _ctape.Recorder(prim, numpy_ns.impls[prim.index], apply, tarray, tracers, numpy_ns, bool(prim.residual),
                           tuple(links), same, positional)  # (same: x * x is recorded as square)


def views(tarray: type, python_reshape_view: Any) -> tuple:
    """``(index_view, reshape_view)`` in C (the twins of :func:`.levels.index_view` and
    :func:`.levels.reshape_view`), or ``(None, None)`` where the extension is not built."""
    if _ctape is None or not issubclass(tarray, _ctape.TArrayFields):
        return None, None
    _ctape.configure_views(PRIMITIVES["getitem"], tarray, _special, python_reshape_view)
    return _ctape.index_view, _ctape.reshape_view
